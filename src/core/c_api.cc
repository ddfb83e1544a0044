// The C ABI (deviso.h) on Registry::Default(). Every function is a lookup of (dev, sid) and one
// call of the C++ API; the errors and the "no change on failure" rule are the C++ API's.

#include <span>

#include "deviso/deviso.h"
#include "deviso/dump.h"
#include "deviso/registry.h"

namespace deviso {
namespace {

constexpr uint32_t kPermFlags = DEVISO_PERM_READ | DEVISO_PERM_WRITE | DEVISO_PERM_EXEC;

Registry& Reg() { return Registry::Default(); }

// Converts deviso_map_iova() flags. Unknown bits and attribute values are -EINVAL.
Status DecodeFlags(uint32_t flags, Perms& perms, MemType& type) {
  if ((flags & ~(kPermFlags | DEVISO_ATTR_MASK)) != 0) {
    return Status::InvalidArgument();
  }
  const uint32_t attr = (flags & DEVISO_ATTR_MASK) >> DEVISO_ATTR_SHIFT;
  if (attr > static_cast<uint32_t>(MemType::kDeviceStrict)) {
    return Status::InvalidArgument();
  }
  perms = flags & kPermFlags;
  type = static_cast<MemType>(attr);
  return Status::Ok();
}

Status MapIova(const device* dev, uint32_t sid, uint64_t iova, uint64_t pa, size_t size,
               uint32_t flags) {
  Perms perms = 0;
  MemType type = MemType::kNormal;
  DEVISO_ASSIGN_OR_RETURN(const Context context, Reg().FindContext(dev, sid));
  DEVISO_TRY(DecodeFlags(flags, perms, type));
  return context.Map(iova, pa, size, perms, type);
}

Status UnmapIova(const device* dev, uint32_t sid, uint64_t iova, size_t size) {
  DEVISO_ASSIGN_OR_RETURN(const Context context, Reg().FindContext(dev, sid));
  return context.Unmap(iova, size);
}

Status IovaToPhys(const device* dev, uint32_t sid, uint64_t iova, uint64_t* pa) {
  if (pa == nullptr) {
    return Status::InvalidArgument();
  }
  DEVISO_ASSIGN_OR_RETURN(const Context context, Reg().FindContext(dev, sid));
  DEVISO_ASSIGN_OR_RETURN(*pa, context.IovaToPhys(iova));
  return Status::Ok();
}

Status SetFaultHandler(const device* dev, uint32_t sid, deviso_fault_handler_t handler,
                       void* user) {
  DEVISO_ASSIGN_OR_RETURN(const Context context, Reg().FindContext(dev, sid));
  return context.SetFaultHandler(handler, user);
}

Status FaultCount(const device* dev, uint32_t sid, uint64_t* count) {
  if (count == nullptr) {
    return Status::InvalidArgument();
  }
  DEVISO_ASSIGN_OR_RETURN(const Context context, Reg().FindContext(dev, sid));
  DEVISO_ASSIGN_OR_RETURN(*count, context.fault_count());
  return Status::Ok();
}

Status DeviceBind(const device* dev, const char* unit_name, const uint32_t* sids, size_t num_sids) {
  if (sids == nullptr) {
    return Status::InvalidArgument();
  }
  DEVISO_ASSIGN_OR_RETURN(IsolationUnit* const unit, Reg().FindUnit(unit_name));
  return Reg().BindDevice(dev, *unit, std::span<const uint32_t>(sids, num_sids));
}

Status GetCaps(const device* dev, deviso_caps* caps) {
  if (caps == nullptr) {
    return Status::InvalidArgument();
  }
  DEVISO_ASSIGN_OR_RETURN(const IsolationUnit* const unit, Reg().UnitOf(dev));
  const UnitCaps& c = unit->caps();
  *caps = deviso_caps{
      .backend = c.backend,
      .page_sizes = c.page_sizes,
      .ias = c.ias,
      .oas = c.oas,
      .stages = c.stages,
      .coherent = static_cast<uint8_t>(c.coherent ? 1 : 0),
      .max_sid = c.max_sid,
  };
  return Status::Ok();
}

}  // namespace
}  // namespace deviso

using deviso::Reg;

extern "C" {

int deviso_device_bind(const struct device* dev, const char* unit, const uint32_t* sids,
                       size_t num_sids) {
  return deviso::DeviceBind(dev, unit, sids, num_sids).ToC();
}

int deviso_device_unbind(const struct device* dev) { return Reg().UnbindDevice(dev).ToC(); }

int deviso_ctx_alloc(const struct device* dev, uint32_t sid) {
  return Reg().AllocContext(dev, sid).status().ToC();
}

int deviso_ctx_free(const struct device* dev, uint32_t sid) {
  return Reg().FreeContext(dev, sid).ToC();
}

int deviso_map(const struct device* dev, uint32_t sid, uintptr_t base, size_t size) {
  // Identity: the device sees the buffer at its physical address.
  return deviso::MapIova(dev, sid, base, base, size, DEVISO_PERM_RW | DEVISO_ATTR_NORMAL).ToC();
}

int deviso_unmap(const struct device* dev, uint32_t sid, uintptr_t base, size_t size) {
  return deviso::UnmapIova(dev, sid, base, size).ToC();
}

int deviso_map_iova(const struct device* dev, uint32_t sid, uint64_t iova, uint64_t pa, size_t size,
                    uint32_t flags) {
  return deviso::MapIova(dev, sid, iova, pa, size, flags).ToC();
}

int deviso_unmap_iova(const struct device* dev, uint32_t sid, uint64_t iova, size_t size) {
  return deviso::UnmapIova(dev, sid, iova, size).ToC();
}

int deviso_iova_to_phys(const struct device* dev, uint32_t sid, uint64_t iova, uint64_t* pa) {
  return deviso::IovaToPhys(dev, sid, iova, pa).ToC();
}

int deviso_set_fault_handler(const struct device* dev, uint32_t sid, deviso_fault_handler_t handler,
                             void* user) {
  return deviso::SetFaultHandler(dev, sid, handler, user).ToC();
}

int deviso_fault_count(const struct device* dev, uint32_t sid, uint64_t* count) {
  return deviso::FaultCount(dev, sid, count).ToC();
}

int deviso_get_caps(const struct device* dev, struct deviso_caps* caps) {
  return deviso::GetCaps(dev, caps).ToC();
}

namespace {

// Hands Registry::Dump()'s lines to a C function.
class CDumpSink final : public deviso::DumpSink {
 public:
  CDumpSink(deviso_dump_line_t line, void* user) : line_(line), user_(user) {}
  void Line(const char* line) override { line_(line, user_); }

 private:
  deviso_dump_line_t line_;
  void* user_;
};

}  // namespace

int deviso_dump(deviso_dump_line_t line, void* user) {
  if (line == nullptr) {
    return -EINVAL;
  }
  CDumpSink sink(line, user);
  return deviso::Registry::Default().Dump(sink).ToC();
}

}  // extern "C"
