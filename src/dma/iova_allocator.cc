#include "dma/iova_allocator.h"

#include "dma/block_pool.h"

namespace deviso::dma {
namespace {

// Ranges are compared by their inclusive last address so that one ending at 2^64 is fine.
bool Wraps(Iova start, uint64_t size) { return size == 0 || size - 1 > UINT64_MAX - start; }
Iova Last(Iova start, uint64_t size) { return start + (size - 1); }
bool Intersect(Iova a, uint64_t a_size, Iova b, uint64_t b_size) {
  return a <= Last(b, b_size) && b <= Last(a, a_size);
}

}  // namespace

// ---- ReservedWindows --------------------------------------------------------------------------

Status ReservedWindows::Add(Iova start, uint64_t size) {
  if (Wraps(start, size)) return Status::InvalidArgument();
  if (count_ == kMaxWindows) return Status::NoMemory();
  windows_[count_++] = IovaRange{start, size};
  return Status::Ok();
}

Status ReservedWindows::AddFromUnit(const IsolationUnit& unit, uint32_t sid) {
  ReservedRegion regions[kMaxUnitRegions];
  const size_t n = unit.ReservedRegions(sid, regions);
  if (n > kMaxUnitRegions || n > kMaxWindows - count_) return Status::NoMemory();
  for (size_t i = 0; i < n; ++i) {
    if (Wraps(regions[i].start, regions[i].size)) return Status::InvalidArgument();
  }
  for (size_t i = 0; i < n; ++i) windows_[count_++] = IovaRange{regions[i].start, regions[i].size};
  return Status::Ok();
}

bool ReservedWindows::Overlaps(Iova start, uint64_t size) const {
  if (Wraps(start, size)) return true;
  for (size_t i = 0; i < count_; ++i) {
    if (Intersect(start, size, windows_[i].start, windows_[i].size)) return true;
  }
  return false;
}

// ---- IovaAllocator ----------------------------------------------------------------------------

IovaAllocator::IovaAllocator(Iova base, uint64_t size, uint64_t granule,
                             const ReservedWindows* reserved, std::span<IovaRange> storage)
    : base_(base), size_(size), granule_(granule), reserved_(reserved), ranges_(storage) {
  valid_ = IsPowerOfTwo(granule) && base % granule == 0 && size % granule == 0 && size != 0 &&
           !Wraps(base, size) && !storage.empty();
}

Result<Iova> IovaAllocator::Alloc(uint64_t size, uint64_t align) {
  if (!valid_ || size == 0 || (align != 0 && !IsPowerOfTwo(align))) {
    return Status::InvalidArgument();
  }
  if (size > size_) return Status::NoMemory();
  size = RoundUp(size);
  if (align < granule_) align = granule_;
  const Iova last = Last(base_, size_);
  port::LockGuard guard(lock_);
  if (count_ == ranges_.size()) return Status::NoMemory();
  Iova candidate = base_;
  for (;;) {
    // Align up; give up when that, or the range, runs past the window.
    if ((candidate & (align - 1)) != 0) {
      if ((candidate | (align - 1)) >= last) return Status::NoMemory();
      candidate = (candidate | (align - 1)) + 1;
    }
    if (candidate > last || size - 1 > last - candidate) return Status::NoMemory();
    // The first thing in the way (an allocated range or a reserved window) moves the
    // candidate past its end.
    Iova past = candidate;
    bool blocked = false;
    for (size_t i = 0; i < count_; ++i) {
      if (Intersect(candidate, size, ranges_[i].start, ranges_[i].size)) {
        const Iova end_last = Last(ranges_[i].start, ranges_[i].size);
        if (end_last >= past) past = end_last;
        blocked = true;
      }
    }
    if (reserved_ != nullptr) {
      for (const IovaRange& w : reserved_->windows()) {
        if (Intersect(candidate, size, w.start, w.size)) {
          const Iova end_last = Last(w.start, w.size);
          if (end_last >= past) past = end_last;
          blocked = true;
        }
      }
    }
    if (!blocked) break;
    if (past >= last) return Status::NoMemory();
    candidate = past + 1;
  }
  // Insert, keeping the list sorted by start.
  size_t at = count_;
  while (at > 0 && ranges_[at - 1].start > candidate) {
    ranges_[at] = ranges_[at - 1];
    --at;
  }
  ranges_[at] = IovaRange{candidate, size};
  ++count_;
  return candidate;
}

Status IovaAllocator::Free(Iova iova, uint64_t size) {
  if (!valid_ || size == 0) return Status::NotFound();
  size = RoundUp(size);
  port::LockGuard guard(lock_);
  for (size_t i = 0; i < count_; ++i) {
    if (ranges_[i].start != iova || ranges_[i].size != size) continue;
    for (size_t j = i + 1; j < count_; ++j) ranges_[j - 1] = ranges_[j];
    --count_;
    return Status::Ok();
  }
  return Status::NotFound();
}

size_t IovaAllocator::allocated_ranges() const {
  port::LockGuard guard(lock_);
  return count_;
}

}  // namespace deviso::dma
