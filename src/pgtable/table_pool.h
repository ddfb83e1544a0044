// A fixed-capacity pool of translation-table granules.
//
// The TableMemory that deviso's ports and tests use: capacity and storage are fixed by the
// caller (StaticTablePool puts both in static storage, as TF-A's xlat_tables does), there is
// no heap, and allocation of 2^order contiguous, size-aligned granules serves concatenated
// stage 2 start-level tables. Freed granules are reused last-in first-out, so a table freed by
// an unmap is the next one a map takes, while it is still in the cache. Beside the tables the
// pool keeps one TableCounts per granule (the engine's per-table counts; for a free granule,
// its free-list link), so nothing is ever stored in a table that a walker reads. Not internally
// locked; its users (page tables) are serialised by their context lock, and a pool shared by
// several contexts needs the caller's lock.

#ifndef DEVISO_SRC_PGTABLE_TABLE_POOL_H_
#define DEVISO_SRC_PGTABLE_TABLE_POOL_H_

#include <cstddef>
#include <cstdint>

#include "pgtable/pgtable.h"

namespace deviso::pgtable {

class TablePool : public TableMemory {
 public:
  // Largest supported allocation: 16 concatenated tables (Arm ARM D8.2.7).
  static constexpr unsigned kMaxOrder = 4;

  // `storage` holds `count` granules of `granule_bytes` and must be aligned to
  // granule_bytes; `storage_pa` is its physical address (equal to the pointer on an
  // identity-mapped port). `bitmap` holds (count + 63) / 64 zeroed words; `counts` holds
  // `count` entries (any contents).
  TablePool(void* storage, Paddr storage_pa, size_t granule_bytes, size_t count, uint64_t* bitmap,
            TableCounts* counts);

  // Errors: -ENOMEM, -EINVAL (order > kMaxOrder), -ENOTSUP (order > 0 in a build without
  // stage 2, DEVISO_CONFIG_STAGE2=OFF: the pool then serves single granules only).
  Result<Paddr> Allocate(unsigned order) override;
  void Free(Paddr table, unsigned order) override;
  uint64_t* PhysToVirt(Paddr table) override;
  TableLayout layout() const override;
  // Calls the clean hook, if any (a port's DC CVAC loop + DSB).
  void CleanToPoc(const void* p, size_t bytes) override;

  void set_clean_hook(void (*hook)(const void*, size_t)) { clean_hook_ = hook; }
  size_t capacity() const { return count_; }
  size_t free_granules() const { return free_; }
  size_t granule_bytes() const { return granule_bytes_; }
  // The physical range of the pool's storage: every table it hands out lies in it (a
  // platform lists it as memory no device may be given, e.g. Smmuv3::Config::own_memory).
  Paddr storage_pa() const { return storage_pa_; }
  uint64_t storage_bytes() const { return uint64_t{count_} * granule_bytes_; }
  // True when `pa` lies in this pool's storage.
  bool Contains(Paddr pa) const {
    return pa >= storage_pa_ && pa - storage_pa_ < count_ * granule_bytes_;
  }

 private:
  static constexpr uint32_t kNoGranule = ~0U;
  bool IsFree(size_t i) const { return ((bitmap_[i / 64] >> (i % 64)) & 1) == 0; }
  void SetRun(size_t first, size_t n, bool used);
  // The free list of single granules, linked through the counts of the free granules.
  uint32_t Next(size_t i) const {
    return static_cast<uint32_t>(counts_[i].valid) | (static_cast<uint32_t>(counts_[i].full) << 16);
  }
  void Push(size_t i);
  void RebuildFreeList();

  uint8_t* storage_;
  Paddr storage_pa_;
  size_t granule_bytes_;
  size_t count_;
  uint64_t* bitmap_;  // bit set: granule in use
  TableCounts* counts_;
  size_t free_;
  unsigned granule_shift_ = 0;
  uint32_t free_head_ = kNoGranule;  // most recently freed granule
  void (*clean_hook_)(const void*, size_t) = nullptr;
};

namespace internal {
// The storage of a StaticTablePool, a base so that it exists before the TablePool base that
// uses it.
template <size_t kGranuleBytes, size_t kCount>
struct StaticTableStorage {
  alignas(kGranuleBytes) uint8_t storage[kGranuleBytes * kCount];
  uint64_t bitmap[(kCount + 63) / 64] = {};
  TableCounts counts[kCount];
};
}  // namespace internal

// A pool whose storage is part of the object, so it can be a static.
// Example: `StaticTablePool<4096, 256> g_tables;` on a port with identity mapping.
template <size_t kGranuleBytes, size_t kCount>
class StaticTablePool : private internal::StaticTableStorage<kGranuleBytes, kCount>,
                        public TablePool {
  using Storage = internal::StaticTableStorage<kGranuleBytes, kCount>;

 public:
  StaticTablePool()
      : TablePool(Storage::storage, reinterpret_cast<uintptr_t>(Storage::storage), kGranuleBytes,
                  kCount, Storage::bitmap, Storage::counts) {}
};

}  // namespace deviso::pgtable

#endif  // DEVISO_SRC_PGTABLE_TABLE_POOL_H_
