// MSI doorbells in isolation contexts (include/deviso/msi.h).

#include "deviso/msi.h"

#include <array>

#include "deviso/backend.h"

namespace deviso {
namespace {

Registry& Reg() { return Registry::Default(); }

// How the unit treats accesses to `doorbell` for `sid`: a reserved region covering it, if any.
// Units report a handful of regions (virtio-iommu: the MSI window and a few reserved ones);
// only the first kMaxRegions are looked at, which covers every unit deviso drives.
struct Coverage {
  bool reserved = false;  // covered by a region
  ReservedRegion::Kind kind = ReservedRegion::Kind::kReserved;
};
Coverage CoverageOf(const IsolationUnit& unit, uint32_t sid, Paddr doorbell) {
  constexpr size_t kMaxRegions = 8;
  std::array<ReservedRegion, kMaxRegions> regions{};
  const size_t n = unit.ReservedRegions(sid, regions);
  for (size_t i = 0; i < n && i < regions.size(); ++i) {
    const ReservedRegion& r = regions[i];
    if (doorbell >= r.start && doorbell - r.start < r.size) {
      return {true, r.kind};
    }
  }
  return {};
}

Status CheckDoorbell(const Context& context, Paddr doorbell) {
  if (doorbell == 0 || (doorbell & 3) != 0) {
    return Status::InvalidArgument();
  }
  if (context.unit() == nullptr) {
    return Status::NotFound();
  }
  return Status::Ok();
}

}  // namespace

Result<MsiDoorbell> MapMsiDoorbell(const Context& context, uint32_t sid, Paddr doorbell) {
  DEVISO_TRY(CheckDoorbell(context, doorbell));
  MsiDoorbell out;
  out.iova = doorbell;
  const Coverage coverage = CoverageOf(*context.unit(), sid, doorbell);
  if (coverage.reserved) {
    if (coverage.kind != ReservedRegion::Kind::kMsi) {
      return Status::NotSupported();  // accesses there fault: no MSI can be delivered
    }
    out.bypass = true;
    return out;
  }
  const uint64_t page = context.page_size();
  out.page = doorbell & ~(page - 1);
  out.page_size = page;
  // Write-only first: a stage 1 context cannot express it and refuses with -ENOTSUP, having
  // changed nothing; read-write is then the narrowest it has.
  const Status write_only = context.Map(out.page, out.page, page, kPermWrite, MemType::kDevice);
  if (write_only.ok()) {
    out.write_only = true;
    return out;
  }
  if (write_only != Status::NotSupported()) {
    return write_only;
  }
  DEVISO_TRY(context.Map(out.page, out.page, page, kPermReadWrite, MemType::kDevice));
  return out;
}

Status UnmapMsiDoorbell(const Context& context, uint32_t sid, Paddr doorbell) {
  DEVISO_TRY(CheckDoorbell(context, doorbell));
  const Coverage coverage = CoverageOf(*context.unit(), sid, doorbell);
  if (coverage.reserved) {
    return coverage.kind == ReservedRegion::Kind::kMsi ? Status::Ok() : Status::NotSupported();
  }
  const uint64_t page = context.page_size();
  return context.Unmap(doorbell & ~(page - 1), page);
}

}  // namespace deviso

extern "C" int deviso_map_msi_doorbell(const struct device* dev, uint32_t sid, uint64_t doorbell,
                                       uint64_t* iova, int* bypass) {
  using deviso::Status;
  if (dev == nullptr || iova == nullptr || bypass == nullptr) {
    return Status::InvalidArgument().ToC();
  }
  const deviso::Result<deviso::Context> context = deviso::Reg().FindContext(dev, sid);
  if (!context.ok()) {
    return context.status().ToC();
  }
  const deviso::Result<deviso::MsiDoorbell> mapped =
      deviso::MapMsiDoorbell(*context, sid, doorbell);
  if (!mapped.ok()) {
    return mapped.status().ToC();
  }
  *iova = mapped->iova;
  *bypass = mapped->bypass ? 1 : 0;
  return 0;
}

extern "C" int deviso_unmap_msi_doorbell(const struct device* dev, uint32_t sid,
                                         uint64_t doorbell) {
  using deviso::Status;
  if (dev == nullptr) {
    return Status::InvalidArgument().ToC();
  }
  const deviso::Result<deviso::Context> context = deviso::Reg().FindContext(dev, sid);
  if (!context.ok()) {
    return context.status().ToC();
  }
  return deviso::UnmapMsiDoorbell(*context, sid, doorbell).ToC();
}
