#include "pgtable/table_pool.h"

#include "deviso/assert.h"

namespace deviso::pgtable {

TablePool::TablePool(void* storage, Paddr storage_pa, size_t granule_bytes, size_t count,
                     uint64_t* bitmap, TableCounts* counts)
    : storage_(static_cast<uint8_t*>(storage)),
      storage_pa_(storage_pa),
      granule_bytes_(granule_bytes),
      count_(count),
      bitmap_(bitmap),
      counts_(counts),
      free_(count) {
  DEVISO_ASSERT((granule_bytes & (granule_bytes - 1)) == 0);
  DEVISO_ASSERT(storage_pa % granule_bytes == 0);
  DEVISO_ASSERT(count < kNoGranule);
  granule_shift_ = static_cast<unsigned>(__builtin_ctzll(granule_bytes));
  RebuildFreeList();
}

void TablePool::SetRun(size_t first, size_t n, bool used) {
  for (size_t i = first; i < first + n; ++i) {
    const uint64_t bit = 1ULL << (i % 64);
    if (used) {
      bitmap_[i / 64] |= bit;
    } else {
      bitmap_[i / 64] &= ~bit;
    }
  }
  free_ = used ? free_ - n : free_ + n;
}

void TablePool::Push(size_t i) {
  counts_[i].valid = static_cast<uint16_t>(free_head_ & 0xffffU);
  counts_[i].full = static_cast<uint16_t>(free_head_ >> 16);
  free_head_ = static_cast<uint32_t>(i);
}

// Every free granule, the lowest first out (the order a fresh pool hands them out).
void TablePool::RebuildFreeList() {
  free_head_ = kNoGranule;
  for (size_t i = count_; i-- > 0;) {
    if (IsFree(i)) Push(i);
  }
}

Result<Paddr> TablePool::Allocate(unsigned order) {
  if (order > kMaxOrder) return Status::InvalidArgument();
  // Only concatenated stage 2 start tables need more than one granule.
  if (!config::kStage2 && order != 0) return Status::NotSupported();
  const size_t n = size_t{1} << order;
  if (free_ < n) return Status::NoMemory();
  if (order == 0) {
    // The granule freed last: still in the cache.
    DEVISO_ASSERT(free_head_ != kNoGranule && IsFree(free_head_));
    const size_t i = free_head_;
    free_head_ = Next(i);
    SetRun(i, 1, true);
    return storage_pa_ + (Paddr{i} << granule_shift_);
  }
  // Several granules, aligned to their total size in the physical address space (rare: a
  // stage 2 root). The free list is rebuilt without them.
  const uint64_t align = n * granule_bytes_;
  size_t first = static_cast<size_t>(((storage_pa_ + align - 1) & ~(align - 1)) - storage_pa_) /
                 granule_bytes_;
  for (; first + n <= count_; first += n) {
    bool all_free = true;
    for (size_t i = first; i < first + n && all_free; ++i) all_free = IsFree(i);
    if (all_free) {
      SetRun(first, n, true);
      RebuildFreeList();
      return storage_pa_ + first * granule_bytes_;
    }
  }
  return Status::NoMemory();
}

void TablePool::Free(Paddr table, unsigned order) {
  // A foreign or double free means the caller's bookkeeping is corrupt: continuing could hand
  // a live table out twice, so it is fatal.
  DEVISO_ASSERT(order <= kMaxOrder && Contains(table));
  DEVISO_ASSERT((table - storage_pa_) % granule_bytes_ == 0);
  const size_t first = static_cast<size_t>((table - storage_pa_) >> granule_shift_);
  const size_t n = size_t{1} << order;
  DEVISO_ASSERT(first + n <= count_);
  for (size_t i = first; i < first + n; ++i) DEVISO_ASSERT(!IsFree(i));
  SetRun(first, n, false);
  for (size_t i = first + n; i-- > first;) Push(i);
}

uint64_t* TablePool::PhysToVirt(Paddr table) {
  DEVISO_ASSERT(Contains(table));
  return reinterpret_cast<uint64_t*>(storage_ + (table - storage_pa_));
}

TableLayout TablePool::layout() const {
  TableLayout l;
  l.pa = storage_pa_;
  l.virt = storage_;
  l.bytes = uint64_t{count_} * granule_bytes_;
  l.granule_shift = granule_shift_;
  l.counts = counts_;
  return l;
}

void TablePool::CleanToPoc(const void* p, size_t bytes) {
  if (clean_hook_ != nullptr) clean_hook_(p, bytes);
}

}  // namespace deviso::pgtable
