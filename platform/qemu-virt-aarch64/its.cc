// GICv3 ITS on QEMU `virt` (see its.h): the board's glue around ItsDriver (its_driver.h): the
// ITS frames from the devicetree, mapped in the CPU map; this CPU's redistributor from the GIC
// driver; the tables in one static block; cache cleaning; the GIC dispatcher's LPI hook.

#include "its.h"

#include <optional>

#include "arch.h"
#include "core/mmio.h"
#include "its_driver.h"
#include "mmu.h"

namespace deviso::qemu_virt {
namespace {

ItsMemoryBlock g_mem;
std::optional<DirectMmio> g_its_regs;
std::optional<DirectMmio> g_rd_regs;
ItsDriver* g_driver = nullptr;
uint64_t g_doorbell = 0;

void Clean(const void* p, size_t n) { arch::CleanDcacheRange(p, n); }

void DispatchLpi(uint32_t intid) {
  if (g_driver != nullptr) {
    g_driver->Dispatch(intid);
  }
}

}  // namespace

Region ItsMemory() { return {reinterpret_cast<uintptr_t>(&g_mem), sizeof(g_mem)}; }

bool ItsReady() { return g_driver != nullptr && g_driver->ready(); }

uint64_t ItsDoorbell() { return ItsReady() ? g_doorbell : 0; }

Status ItsInit(const PlatformInfo& info) {
  if (info.gic.version != 3 || info.gic.its.size == 0 || GicRedistributorBase() == 0) {
    return Status::NotFound();
  }
  static ItsDriver driver;  // constructed on first use (the port's lock needs the runtime)
  if (driver.ready()) {
    return Status::AlreadyExists();
  }
  const Status mapped = MmuMapDevice(info.gic.its.base, info.gic.its.size);
  if (!mapped.ok() && mapped != Status::AlreadyExists()) {
    return mapped;
  }
  g_its_regs.emplace(static_cast<uintptr_t>(info.gic.its.base));
  g_rd_regs.emplace(GicRedistributorBase());
  ItsDriver::Config c;
  c.its = &*g_its_regs;
  c.rd = &*g_rd_regs;
  c.rd_pa = GicRedistributorBase();  // identity map
  c.memory = &g_mem;
  c.memory_pa = reinterpret_cast<uintptr_t>(&g_mem);
  c.clean = &Clean;
  DEVISO_TRY(driver.Init(c));
  g_doorbell = info.gic.its.base + kItsDoorbellOffset;
  g_driver = &driver;
  SetLpiDispatcher(&DispatchLpi);
  return Status::Ok();
}

Result<uint32_t> ItsDeviceId(const PlatformInfo& info, uint16_t rid) {
  return MsiDeviceId(info, rid);
}

Result<uint32_t> ItsMapEvent(uint32_t device_id, uint32_t event_id, IrqHandler handler, void* ctx) {
  if (!ItsReady()) return Status::IoError();
  return g_driver->MapEvent(device_id, event_id, handler, ctx);
}

Status ItsUnmapEvent(uint32_t device_id, uint32_t event_id) {
  if (!ItsReady()) return Status::IoError();
  return g_driver->UnmapEvent(device_id, event_id);
}

Status ItsTrigger(uint32_t device_id, uint32_t event_id) {
  if (!ItsReady()) return Status::IoError();
  return g_driver->Trigger(device_id, event_id);
}

uint64_t LpiCount(uint32_t intid) { return g_driver != nullptr ? g_driver->lpi_count(intid) : 0; }
uint64_t ItsSpuriousLpis() { return g_driver != nullptr ? g_driver->spurious() : 0; }
uint64_t ItsCommandsIssued() { return g_driver != nullptr ? g_driver->commands_issued() : 0; }

}  // namespace deviso::qemu_virt
