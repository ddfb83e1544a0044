// Device addresses for DMA buffers: the windows a device address must never fall into, and a
// fixed-capacity allocator of IOVA ranges that keeps out of them.
//
// Reserved windows come from two places:
//   * the platform: the PCI host bridge's MMIO windows. A DMA whose address falls in one may be
//     routed by the root complex to a peer device's BAR and never reach the IOMMU, so no
//     mapping there would be honoured, and none must be handed out (Linux reserves them too:
//     iova_reserve_pci_windows);
//   * the IOMMU: IsolationUnit::ReservedRegions(sid) (virtio-iommu's PROBE reserved and MSI
//     regions; none for SMMUv3).
// Both the translating allocator and the identity path (device address = physical address)
// check against the same ReservedWindows.

#ifndef DEVISO_SRC_DMA_IOVA_ALLOCATOR_H_
#define DEVISO_SRC_DMA_IOVA_ALLOCATOR_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "deviso/backend.h"
#include "deviso/port/os.h"
#include "deviso/status.h"
#include "deviso/types.h"

namespace deviso::dma {

// A half-open device-address range [start, start + size).
struct IovaRange {
  Iova start = 0;
  uint64_t size = 0;
  Iova end() const { return start + size; }  // may be 2^64 (0) only for a range ending there
};

// A fixed list of device-address windows nothing may be mapped at. Not locked: fill it at
// start-up, before the allocators and pools that read it are used.
class ReservedWindows {
 public:
  static constexpr size_t kMaxWindows = 16;
  // Regions asked of a unit at once by AddFromUnit().
  static constexpr size_t kMaxUnitRegions = 8;

  // Adds [start, start + size). Overlapping windows are allowed. Errors, with no change:
  // -EINVAL (size 0, or the range wraps past 2^64), -ENOMEM (kMaxWindows).
  Status Add(Iova start, uint64_t size);
  // Adds every region `unit` reports for `sid` (IsolationUnit::ReservedRegions), of either
  // kind: an MSI window passes accesses through untranslated, so a buffer there would not be
  // isolated either. Errors, with no change: -ENOMEM (the unit reports more than
  // kMaxUnitRegions, or they do not fit), -EINVAL (a region of size 0 or wrapping).
  Status AddFromUnit(const IsolationUnit& unit, uint32_t sid);

  // Whether [start, start + size) overlaps a window (a wrapping range always does).
  bool Overlaps(Iova start, uint64_t size) const;
  std::span<const IovaRange> windows() const { return {windows_, count_}; }

 private:
  IovaRange windows_[kMaxWindows];
  size_t count_ = 0;
};

// Hands out page-aligned ranges of [base, base + size) that overlap no reserved window,
// first fit. Capacity: at most `storage.size()` ranges are allocated at once; storage is the
// caller's (StaticIovaAllocator holds its own). Locked with a port::InterruptSpinLock.
class IovaAllocator {
 public:
  // `granule` is the smallest unit (a context's page size: a power of two); base and size
  // must be multiples of it. `reserved` (may be null) must outlive the allocator. valid() is
  // false (every Alloc fails with -EINVAL) for bad arguments.
  IovaAllocator(Iova base, uint64_t size, uint64_t granule, const ReservedWindows* reserved,
                std::span<IovaRange> storage);
  IovaAllocator(const IovaAllocator&) = delete;
  IovaAllocator& operator=(const IovaAllocator&) = delete;

  // A range of `size` bytes (rounded up to the granule) at an address aligned to `align` (a
  // power of two; 0 or less than the granule: the granule). Errors, with no change: -EINVAL
  // (invalid allocator, size 0, align not a power of two), -ENOMEM (no gap that fits outside
  // the reserved windows, or `storage` is full).
  Result<Iova> Alloc(uint64_t size, uint64_t align = 0);
  // Returns exactly a range Alloc() gave (same start and size as asked for, rounded up).
  // Errors, with no change: -ENOENT (no allocated range starts at `iova` with that size).
  Status Free(Iova iova, uint64_t size);

  bool valid() const { return valid_; }
  uint64_t granule() const { return granule_; }
  IovaRange window() const { return {base_, size_}; }
  size_t allocated_ranges() const;

 private:
  uint64_t RoundUp(uint64_t n) const { return (n + granule_ - 1) & ~(granule_ - 1); }

  Iova base_;
  uint64_t size_;
  uint64_t granule_;
  const ReservedWindows* reserved_;
  std::span<IovaRange> ranges_;  // sorted by start; guarded by lock_
  size_t count_ = 0;             // guarded by lock_
  bool valid_;
  mutable port::InterruptSpinLock lock_;
};

// An allocator with storage for kMaxRanges ranges inside the object.
template <size_t kMaxRanges>
class StaticIovaAllocator : public IovaAllocator {
 public:
  StaticIovaAllocator(Iova base, uint64_t size, uint64_t granule, const ReservedWindows* reserved)
      : IovaAllocator(base, size, granule, reserved, storage_) {}

 private:
  IovaRange storage_[kMaxRanges];
};

}  // namespace deviso::dma

#endif  // DEVISO_SRC_DMA_IOVA_ALLOCATOR_H_
