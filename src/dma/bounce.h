// Sub-page DMA buffers through bounce pages (issue 15; docs/dma_pool.md "Sub-page buffers").
//
// deviso maps whole pages only: mapping the page of a buffer smaller than a page, or one that
// does not start and end on page boundaries, would let the device reach the bytes beside it
// (the classic DMA attack: Thunderclap, NDSS 2019). Drivers still get such buffers from their
// OS (network packets, small descriptors). Like Linux's swiotlb for untrusted devices, the
// DMA-driver hook (ContextDmaMapper) can copy such a buffer through a run of whole pages taken
// from a pool the caller sizes, and map only that run: the device sees the buffer's bytes and
// zeros, never a neighbour.
//
// Per direction, around one transfer (ContextDmaMapper::MapForDevice / UnmapForDevice, and
// SyncForDevice / SyncForCpu in the middle of a long-lived mapping):
//   map:    zero the run, copy the buffer in (every direction: a device that writes only part
//           of the buffer must not make the copy-out overwrite the rest with zeros, as Linux
//           does since 5.19), clean the run for a non-coherent device, map it;
//   unmap:  unmap (strictly); only once that is confirmed, for kFromDevice / kBidirectional
//           invalidate the run and copy it back over the buffer; give the run back.
// The buffer itself is never mapped, so it needs no cache maintenance for the device.
//
// No heap: the pages are a BlockPool of page-sized blocks in DMA memory (its storage is the
// caller's), at most one run per live bounced mapping. Copies reach the caller's buffer through
// a physical-to-CPU hook (identity on bare metal).

#ifndef DEVISO_SRC_DMA_BOUNCE_H_
#define DEVISO_SRC_DMA_BOUNCE_H_

#include <cstddef>
#include <cstdint>

#include "deviso/status.h"
#include "deviso/types.h"
#include "dma/block_pool.h"
#include "dma/device_binding.h"
#include "drivers/dma_allocator.h"

namespace deviso::dma {

struct BounceConfig {
  // Bounce pages: blocks of exactly the context's page size, in memory the device may be given
  // (not the unit's own). Null: nothing is bounced, a sub-page buffer is -EINVAL.
  BlockPool* pool = nullptr;
  // The CPU's pointer to physical address `pa` of a caller's buffer (the port's conversion;
  // identity on bare metal). Required with a pool.
  void* (*phys_to_cpu)(void* user, Paddr pa) = nullptr;
  void* user = nullptr;
  // Bounce every buffer, page-aligned ones too (opt-in per context: the device then never sees
  // a caller's page at all). Otherwise only buffers that are not page-aligned in address and
  // size are bounced.
  bool always = false;

  bool enabled() const { return pool != nullptr; }
  // -EINVAL if enabled and the pool is invalid, its block size is not `page_size`, or
  // phys_to_cpu is missing.
  Status Validate(uint64_t page_size) const;
};

// A run of bounce pages holding one buffer.
struct BounceRun {
  void* cpu = nullptr;  // null: no run
  Paddr pa = 0;
  size_t pages = 0;
};

// Takes ceil(size / page) adjacent pages from the pool, zeroes them, copies [pa, pa + size) of
// the caller's buffer into their start and cleans them for a non-coherent device (`binding`'s
// cache hooks). Errors, with no change: -ENOMEM (no such run free).
Result<BounceRun> BounceAcquire(const BounceConfig& config, const DeviceBinding& binding, Paddr pa,
                                size_t size);
// Copies the buffer into the run again (after the CPU changed it during a mapping) and cleans
// the run: the device then reads the new bytes. Nothing for kFromDevice.
void BounceSyncForDevice(const BounceConfig& config, const DeviceBinding& binding,
                         const BounceRun& run, Paddr pa, size_t size,
                         drivers::DmaDirection direction);
// Invalidates the run and copies its first `size` bytes back over the buffer: the CPU then sees
// what the device wrote. Nothing for kToDevice.
void BounceSyncForCpu(const BounceConfig& config, const DeviceBinding& binding,
                      const BounceRun& run, Paddr pa, size_t size, drivers::DmaDirection direction);
// Gives the run back to the pool. The device must no longer reach it (its unmap was confirmed).
void BounceRelease(const BounceConfig& config, const BounceRun& run);

}  // namespace deviso::dma

#endif  // DEVISO_SRC_DMA_BOUNCE_H_
