#include "drivers/isolated_dma.h"

namespace deviso::drivers {

Result<DmaRegion> IsolatedDmaAllocator::Alloc(size_t size, size_t align) {
  if (size == 0 || (align & (align - 1)) != 0) return Status::InvalidArgument();
  // Whole pages only: a DMA buffer sharing a page with other data would expose that data.
  const size_t bytes = RoundUp(size);
  DEVISO_ASSIGN_OR_RETURN(DmaRegion region, backing_.Alloc(bytes, align > page_ ? align : page_));
  const int rc = deviso_map(dev_, sid_, static_cast<uintptr_t>(region.device_addr), bytes);
  if (rc != 0) {
    backing_.Free(region);
    return Status::FromC(rc);
  }
  region.size = bytes;
  return region;
}

void IsolatedDmaAllocator::Free(const DmaRegion& region) {
  if (deviso_unmap(dev_, sid_, static_cast<uintptr_t>(region.device_addr), region.size) != 0) {
    ++leaked_;
    return;
  }
  backing_.Free(region);
}

void IsolatedDmaAllocator::SyncForDevice(const DmaRegion& region, size_t offset, size_t size) {
  backing_.SyncForDevice(region, offset, size);
}

void IsolatedDmaAllocator::SyncForCpu(const DmaRegion& region, size_t offset, size_t size) {
  backing_.SyncForCpu(region, offset, size);
}

}  // namespace deviso::drivers
