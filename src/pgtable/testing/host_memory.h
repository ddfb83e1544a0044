// Host-side test doubles for the translation-table engine: table memory placed in host memory
// under made-up physical addresses, with allocation-failure injection and a model of what a
// non-coherent walker sees at the point of coherency; and a TLB flush that records what it is
// asked to invalidate.

#ifndef DEVISO_SRC_PGTABLE_TESTING_HOST_MEMORY_H_
#define DEVISO_SRC_PGTABLE_TESTING_HOST_MEMORY_H_

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "pgtable/pgtable.h"
#include "pgtable/table_pool.h"

namespace deviso::pgtable::testing {

// "Physical" memory starts here, far from any host pointer value, so an engine that confuses
// pointers with physical addresses fails at once.
inline constexpr Paddr kHostPhysBase = 0x0000'0123'4000'0000ULL;

// Storage for HostTableMemory, a base so it exists before the TablePool base that uses it.
struct HostTableStorage {
  struct Deleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  using Buffer = std::unique_ptr<uint8_t[], Deleter>;

  HostTableStorage(size_t granule_bytes, size_t count)
      : storage(static_cast<uint8_t*>(std::aligned_alloc(granule_bytes, granule_bytes * count))),
        poc(static_cast<uint8_t*>(std::calloc(granule_bytes * count, 1))),
        bitmap((count + 63) / 64, 0),
        counts(count) {
    // Garbage, not zeroes: the engine must initialise every table it takes.
    std::memset(storage.get(), 0xa5, granule_bytes * count);
  }

  Buffer storage;
  Buffer poc;  // what a non-coherent walker sees: the bytes last cleaned to PoC
  std::vector<uint64_t> bitmap;
  std::vector<TableCounts> counts;
};

class HostTableMemory : private HostTableStorage, public TablePool {
 public:
  HostTableMemory(size_t granule_bytes, size_t count)
      : HostTableStorage(granule_bytes, count),
        TablePool(storage.get(), kHostPhysBase, granule_bytes, count, bitmap.data(),
                  counts.data()) {}

  Result<Paddr> Allocate(unsigned order) override {
    ++allocations_;
    if (fail_at_ != 0 && allocations_ == fail_at_) return Status::NoMemory();
    return TablePool::Allocate(order);
  }

  void CleanToPoc(const void* p, size_t bytes) override {
    ++cleans_;
    const auto* src = static_cast<const uint8_t*>(p);
    const size_t offset = static_cast<size_t>(src - storage.get());
    std::memcpy(poc.get() + offset, src, bytes);
  }

  // The `n`th Allocate() from now (1-based) fails with -ENOMEM; 0 disables.
  void FailAllocation(size_t n) {
    allocations_ = 0;
    fail_at_ = n;
  }
  size_t allocations() const { return allocations_; }
  size_t cleans() const { return cleans_; }

  // What a non-coherent walker reads at `pa`: the bytes last cleaned to PoC.
  uint64_t PocDescriptor(Paddr pa) const {
    uint64_t d;
    std::memcpy(&d, poc.get() + (pa - kHostPhysBase), sizeof(d));
    return d;
  }

 private:
  size_t allocations_ = 0;
  size_t fail_at_ = 0;
  size_t cleans_ = 0;
};

// Records invalidations; optionally fails them or inspects the tables during them.
class RecordingFlush : public TlbFlush {
 public:
  Status Invalidate(const InvalidationRange& range) override {
    calls.push_back(range);
    if (on_invalidate) on_invalidate(range);
    if (fail_next > 0) {
      --fail_next;
      return Status::TimedOut();
    }
    return Status::Ok();
  }

  std::vector<InvalidationRange> calls;
  std::function<void(const InvalidationRange&)> on_invalidate;
  int fail_next = 0;
};

// Every table reachable from the root with its bytes: "the tables", for byte-for-byte checks.
inline std::map<Paddr, std::vector<uint64_t>> SnapshotTables(const PageTable& pt,
                                                             TableMemory& memory) {
  std::map<Paddr, std::vector<uint64_t>> out;
  const unsigned stride = static_cast<unsigned>(pt.config().granule) - 3;
  std::function<void(Paddr, unsigned, size_t)> walk = [&](Paddr t, unsigned level, size_t n) {
    const uint64_t* p = memory.PhysToVirt(t);
    out[t] = std::vector<uint64_t>(p, p + n);
    if (level == kMaxLevel) return;
    for (size_t i = 0; i < n; ++i) {
      if (ds::IsTable(p[i], level)) {
        walk(p[i] & ds::AddressMask(static_cast<unsigned>(pt.config().granule)), level + 1,
             size_t{1} << stride);
      }
    }
  };
  walk(pt.root(), pt.start_level(), pt.root_tables() * (size_t{1} << stride));
  return out;
}

// All leaves, in order.
inline std::vector<Mapping> AllMappings(const PageTable& pt) {
  struct Collect : MappingVisitor {
    bool Visit(const Mapping& m) override {
      out.push_back(m);
      return true;
    }
    std::vector<Mapping> out;
  } collect;
  pt.ForEachMapping(collect);
  return collect.out;
}

}  // namespace deviso::pgtable::testing

#endif  // DEVISO_SRC_PGTABLE_TESTING_HOST_MEMORY_H_
