// A DmaAllocator whose memory the device can reach only because deviso mapped it: the
// integration point the RFC describes for DMA drivers. Every region comes from a backing
// allocator of physical memory (device address = physical address), is rounded out to whole
// pages so it never shares a page with anything else, and is identity-mapped for one
// (device, StreamID) with deviso_map() before it is handed out. Free() unmaps it with
// deviso_unmap() (strict: the device can no longer reach it) before the memory is reused.

#ifndef DEVISO_SRC_DRIVERS_ISOLATED_DMA_H_
#define DEVISO_SRC_DRIVERS_ISOLATED_DMA_H_

#include <cstddef>
#include <cstdint>

#include "deviso/deviso.h"
#include "drivers/dma_allocator.h"

namespace deviso::drivers {

class IsolatedDmaAllocator final : public DmaAllocator {
 public:
  // `backing` hands out physical memory (device address == physical address); `page` is the
  // granule of the device's isolation context (deviso_get_caps / Context::page_size()).
  IsolatedDmaAllocator(DmaAllocator& backing, const device* dev, uint32_t sid, size_t page)
      : backing_(backing), dev_(dev), sid_(sid), page_(page) {}

  // Errors: those of the backing allocator, and of deviso_map (-ENOENT: no context, ...);
  // on any error nothing stays allocated or mapped.
  Result<DmaRegion> Alloc(size_t size, size_t align) override;
  // Unmaps, then frees. If the unmap cannot be confirmed the memory is leaked, never reused
  // while the device might still reach it; `leaked()` counts such regions.
  void Free(const DmaRegion& region) override;
  void SyncForDevice(const DmaRegion& region, size_t offset, size_t size) override;
  void SyncForCpu(const DmaRegion& region, size_t offset, size_t size) override;

  size_t leaked() const { return leaked_; }

 private:
  size_t RoundUp(size_t n) const { return (n + page_ - 1) & ~(page_ - 1); }

  DmaAllocator& backing_;
  const device* dev_;
  uint32_t sid_;
  size_t page_;
  size_t leaked_ = 0;
};

}  // namespace deviso::drivers

#endif  // DEVISO_SRC_DRIVERS_ISOLATED_DMA_H_
