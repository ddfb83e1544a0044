// Benchmarks of the VMSAv8-64 translation-table engine (issue 2). Run with scripts/bench.
//
// The engine writes into a TablePool over host memory with identity "physical" addresses, as
// on the bare-metal port, and a TlbFlush that does nothing: these figures are the engine's
// own cost, not an IOMMU's invalidation cost.

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "pgtable/pgtable.h"
#include "pgtable/table_pool.h"

namespace deviso::pgtable {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kMiB = 1ULL << 20;
constexpr uint64_t kGiB = 1ULL << 30;
constexpr size_t kLeafTablesPerGiB = kGiB / (2 * kMiB);  // 512
constexpr size_t kDescriptorsPerGiB = kGiB / kPage;      // 262,144

class NullFlush : public TlbFlush {
 public:
  Status Invalidate(const InvalidationRange&) override { return Status::Ok(); }
};

// Table memory for one benchmark: 8 MiB of 4 KiB granules, identity-mapped.
class BenchMemory {
 public:
  static constexpr size_t kGranules = 2048;
  BenchMemory()
      : storage_(static_cast<uint8_t*>(std::aligned_alloc(kPage, kPage * kGranules))),
        bitmap_((kGranules + 63) / 64, 0),
        pool_(storage_.get(), reinterpret_cast<uintptr_t>(storage_.get()), kPage, kGranules,
              bitmap_.data()) {
    std::memset(storage_.get(), 0, kPage * kGranules);  // fault the pages in
  }
  TablePool& pool() { return pool_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t[], Free> storage_;
  std::vector<uint64_t> bitmap_;
  TablePool pool_;
};

struct Bench {
  Bench() : pt(Config::SmmuStage1(Granule::k4KiB, 48, 48, true), memory.pool(), flush) {
    if (!pt.Init().ok()) std::abort();
  }
  BenchMemory memory;
  NullFlush flush;
  PageTable pt;
};

void Check(Status s) {
  if (!s.ok()) std::abort();
}

// Map then unmap one page, repeated. A neighbouring page stays mapped so every table stays
// in place (hot tables): this is the per-call cost, with its strict invalidation callback.
void BM_MapUnmap4K(benchmark::State& state) {
  Bench b;
  Check(b.pt.Map(0x4000'0000, 0x8000'0000, kPage, kPermReadWrite, MemType::kNormalWriteBack));
  for (auto _ : state) {
    Check(b.pt.Map(0x4000'1000, 0x8000'1000, kPage, kPermReadWrite, MemType::kNormalWriteBack));
    Check(b.pt.Unmap(0x4000'1000, kPage));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_MapUnmap4K);

// Map 1 GiB as 4 KiB pages in one call. The output address is 4 KiB off any 2 MiB boundary,
// which rules out blocks. Every iteration maps into tables the previous unmap freed, so it
// includes allocating and zeroing 513 tables, as the raw baseline includes zeroing.
void BM_MapRange4K_1GiB(benchmark::State& state) {
  Bench b;
  const Paddr pa = 0x1'0000'0000 + kPage;
  for (auto _ : state) {
    Check(b.pt.Map(kGiB, pa, kGiB, kPermReadWrite, MemType::kNormalWriteBack));
    state.PauseTiming();
    Check(b.pt.Unmap(kGiB, kGiB));
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kGiB));
  state.counters["ns_per_page"] =
      benchmark::Counter(static_cast<double>(state.iterations() * kDescriptorsPerGiB),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_MapRange4K_1GiB)->Unit(benchmark::kMicrosecond);

// Unmap that range: checks every page is mapped (the -ENOENT contract), unlinks the tables
// and returns them to the pool after the (null) invalidation.
void BM_UnmapRange4K_1GiB(benchmark::State& state) {
  Bench b;
  const Paddr pa = 0x1'0000'0000 + kPage;
  for (auto _ : state) {
    state.PauseTiming();
    Check(b.pt.Map(kGiB, pa, kGiB, kPermReadWrite, MemType::kNormalWriteBack));
    state.ResumeTiming();
    Check(b.pt.Unmap(kGiB, kGiB));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kGiB));
}
BENCHMARK(BM_UnmapRange4K_1GiB)->Unit(benchmark::kMicrosecond);

// The same GiB with 2 MiB blocks: the output address is 2 MiB- but not 1 GiB-aligned, so
// 512 block descriptors in one level-2 table.
void BM_MapRange2M_1GiB(benchmark::State& state) {
  Bench b;
  const Paddr pa = 0x1'0000'0000 + 2 * kMiB;
  for (auto _ : state) {
    Check(b.pt.Map(kGiB, pa, kGiB, kPermReadWrite, MemType::kNormalWriteBack));
    state.PauseTiming();
    Check(b.pt.Unmap(kGiB, kGiB));
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kGiB));
}
BENCHMARK(BM_MapRange2M_1GiB)->Unit(benchmark::kMicrosecond);

// iova -> pa through a four-level walk, over 64 MiB of pages.
void BM_IovaToPhys(benchmark::State& state) {
  Bench b;
  Check(b.pt.Map(kGiB, 0x1'0000'0000 + kPage, 64 * kMiB, kPermRead, MemType::kNormalWriteBack));
  uint64_t i = 0;
  for (auto _ : state) {
    const Iova iova = kGiB + ((i++ * 2654435761ULL) % (64 * kMiB));
    Result<Paddr> pa = b.pt.IovaToPhys(iova);
    benchmark::DoNotOptimize(pa);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_IovaToPhys);

// The physical limit of a fresh 1 GiB map: zero the 512 leaf tables, then write the same
// 262,144 leaf descriptors with plain stores. No checks, no walk, no allocation.
void BM_RawDescriptorStores_1GiB(benchmark::State& state) {
  BenchMemory memory;
  std::vector<uint64_t*> tables;
  for (size_t t = 0; t < kLeafTablesPerGiB; ++t) {
    Result<Paddr> pa = memory.pool().Allocate(0);
    if (!pa.ok()) std::abort();
    tables.push_back(memory.pool().PhysToVirt(*pa));
  }
  // The descriptor the engine writes for the first page (same attributes).
  const uint64_t first = (0x1'0000'0000 + kPage) | 0x0060'0000'0000'0f43ULL;
  for (auto _ : state) {
    for (uint64_t* t : tables) std::memset(t, 0, kPage);
    uint64_t d = first;
    for (uint64_t* t : tables) {
      for (size_t i = 0; i < kPage / sizeof(uint64_t); ++i, d += kPage) t[i] = d;
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kGiB));
}
BENCHMARK(BM_RawDescriptorStores_1GiB)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace deviso::pgtable
