// A DmaAllocator whose memory the device can reach only because the DMA-driver hook mapped it.
// Every region comes from a backing allocator of physical memory (its device address is the
// physical address), is rounded out to whole pages of the mapper's page size so it never
// shares a page with anything else, and is mapped for the device with
// DmaMapper::MapForDevice(kBidirectional) before it is handed out, at the device address the
// mapper chose (identity or translated). Free() ends the mapping with UnmapForDevice()
// (strict: the device can no longer reach it) before the memory goes back to the backing
// allocator.
//
// Capacity: at most kMaxRegions regions live at once (a driver's rings, tables and identify
// buffers). Not internally locked: one caller at a time (as the drivers that use it).

#ifndef DEVISO_SRC_DRIVERS_ISOLATED_DMA_H_
#define DEVISO_SRC_DRIVERS_ISOLATED_DMA_H_

#include <cstddef>
#include <cstdint>

#include "deviso/deviso.h"
#include "drivers/dma_allocator.h"

namespace deviso::drivers {

// Final, and never deleted through DmaAllocator (whose destructor is protected).
// NOLINTNEXTLINE(cppcoreguidelines-virtual-class-destructor)
class IsolatedDmaAllocator final : public DmaAllocator {
 public:
  static constexpr size_t kMaxRegions = 16;

  // `backing` hands out physical memory (device address == physical address); `mapper` makes
  // it reachable by one device (e.g. a dma::ContextDmaMapper over that device's context). Both
  // must outlive the allocator.
  IsolatedDmaAllocator(DmaAllocator& backing, DmaMapper& mapper)
      : backing_(backing), mapper_(mapper) {}
  IsolatedDmaAllocator(const IsolatedDmaAllocator&) = delete;
  IsolatedDmaAllocator& operator=(const IsolatedDmaAllocator&) = delete;

  // Zeroed whole pages, mapped for the device; region.device_addr is the mapper's device
  // address. Errors, with nothing allocated or mapped: -EINVAL (size 0, align not a power of
  // two, a mapper page size that is not one), -ENOMEM (kMaxRegions live, or the backing
  // allocator), and MapForDevice()'s (-EEXIST, -ENOMEM, the IOMMU's -ETIMEDOUT/-EIO, ...).
  Result<DmaRegion> Alloc(size_t size, size_t align) override;
  // Unmaps, then frees. If the unmap cannot be confirmed the memory is leaked, never reused
  // while the device might still reach it; `leaked()` counts such regions. A region this
  // allocator did not hand out is ignored (counted in `foreign_frees()`).
  void Free(const DmaRegion& region) override;
  // Through the backing allocator, for the region's memory.
  void SyncForDevice(const DmaRegion& region, size_t offset, size_t size) override;
  void SyncForCpu(const DmaRegion& region, size_t offset, size_t size) override;

  size_t leaked() const { return leaked_; }
  size_t foreign_frees() const { return foreign_frees_; }
  size_t live() const;

 private:
  struct Record {
    DmaRegion backing;  // as the backing allocator returned it (backing.cpu null: free slot)
    DmaRegion handed;   // as Alloc() returned it
    DmaMapping mapping;
    bool leaked = false;
  };
  Record* Find(const DmaRegion& region);

  DmaAllocator& backing_;
  DmaMapper& mapper_;
  Record records_[kMaxRegions];
  size_t leaked_ = 0;
  size_t foreign_frees_ = 0;
};

}  // namespace deviso::drivers

#endif  // DEVISO_SRC_DRIVERS_ISOLATED_DMA_H_
