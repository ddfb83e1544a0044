#include "dma/device_binding.h"

namespace deviso::dma {

Status DeviceBinding::Validate() const {
  const uint64_t page = context.page_size();
  if (page == 0) return Status::InvalidArgument();
  if (adopt_identity_mappings != 0 &&
      (addressing != Addressing::kIdentity || (adopt_identity_mappings & ~kPermReadWrite) != 0)) {
    return Status::InvalidArgument();
  }
  if (addressing == Addressing::kTranslated) {
    if (iova == nullptr || !iova->valid() || iova->granule() % page != 0) {
      return Status::InvalidArgument();
    }
  }
  return Status::Ok();
}

Result<Iova> DeviceBinding::MapRange(Paddr pa, uint64_t size, uint64_t align, Perms perms) const {
  const uint64_t page = context.page_size();
  if (page == 0 || size == 0 || pa % page != 0 || size % page != 0 || size - 1 > UINT64_MAX - pa) {
    return Status::InvalidArgument();
  }
  if (addressing == Addressing::kIdentity) {
    // A physical range inside a PCI MMIO window or an IOMMU-reserved region cannot serve as a
    // device address: the DMA would go to a peer or pass untranslated.
    if (reserved != nullptr && reserved->Overlaps(pa, size)) return Status::InvalidArgument();
    if (align > 1 && pa % align != 0) return Status::InvalidArgument();
    DEVISO_TRY(context.Map(pa, pa, size, perms, mem_type()));
    return pa;
  }
  if (iova == nullptr) return Status::InvalidArgument();
  const uint64_t leaf_align = leaf_aligned_iova ? LeafAlignment(pa, size) : 0;
  Result<Iova> allocated = Status::NoMemory();
  if (leaf_align > align) allocated = iova->Alloc(size, leaf_align);
  // No gap aligned for larger leaves (or none asked for): as aligned as the caller asked.
  if (!allocated.ok()) allocated = iova->Alloc(size, align);
  DEVISO_TRY(allocated);
  const Iova device_addr = *allocated;
  const Status mapped = context.Map(device_addr, pa, size, perms, mem_type());
  if (!mapped.ok()) {
    (void)iova->Free(device_addr, size);
    return mapped;
  }
  return device_addr;
}

uint64_t DeviceBinding::LeafAlignment(Paddr pa, uint64_t size) {
  uint64_t align = kMaxLeafAlign;
  while (align > 1 && (align > size || pa % align != 0)) align >>= 1;
  return align;
}

Status DeviceBinding::UnmapRange(Iova device_addr, uint64_t size) const {
  DEVISO_TRY(context.Unmap(device_addr, size));
  if (addressing == Addressing::kTranslated && iova != nullptr) {
    (void)iova->Free(device_addr, size);
  }
  return Status::Ok();
}

}  // namespace deviso::dma
