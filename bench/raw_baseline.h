// The frozen baseline BM_RawMapUnmap4K (issue 12), shared by every benchmark executable that
// quotes a ratio to it (pgtable_bench, smmu_bench, thread_bench, dma_map_bench), so each ratio is
// taken within one run. Plain code, not engine code: do not change.
//
// The physical limit of mapping and unmapping one 4 KiB page in tables that exist: two walks
// of four dependent loads down hand-built level 0-3 tables (4 KiB granule, 48-bit input: three
// table descriptors and the leaf entry), one store of a page descriptor and one clear. The eight
// loads form one dependency chain, as a map followed by an unmap of the same page does: each walk
// starts from the slot the previous one found (`carry` is always 0, but neither the compiler nor
// the CPU knows it). Without the chain the CPU overlaps consecutive iterations and this measures
// load throughput (about 2.5 ns here), not a walk. ClobberMemory after each write keeps the
// compiler from reusing a walk.

#ifndef DEVISO_BENCH_RAW_BASELINE_H_
#define DEVISO_BENCH_RAW_BASELINE_H_

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace deviso::bench {

// Runs the baseline's loop in `state`. Four zeroed 4 KiB tables, allocated here.
inline void RawMapUnmap4K(benchmark::State& state) {
  constexpr size_t kPage = 4096;
  auto* storage = static_cast<uint64_t*>(std::aligned_alloc(kPage, 4 * kPage));
  if (storage == nullptr) std::abort();
  std::memset(storage, 0, 4 * kPage);
  uint64_t* t[4];
  for (size_t i = 0; i < 4; ++i) t[i] = storage + i * (kPage / sizeof(uint64_t));
  constexpr uint64_t kTable = 0x3;  // table descriptor type bits (Arm ARM D8.3.1)
  constexpr uint64_t kAddr = 0x0000'ffff'ffff'f000ULL;
  const uint64_t iova = 0x4000'1000;
  const auto index = [](uint64_t va, unsigned level) {
    return static_cast<size_t>(va >> (12 + 9 * (3 - level))) & 511;
  };
  for (unsigned l = 0; l < 3; ++l) {
    t[l][index(iova, l)] = reinterpret_cast<uintptr_t>(t[l + 1]) | kTable;
  }
  const uint64_t leaf = 0x8000'1000ULL | 0x0060'0000'0000'0f43ULL;
  uint64_t* root = t[0];
  benchmark::DoNotOptimize(root);
  const auto walk = [root, index](uint64_t va) {
    uint64_t* table = root;
    for (unsigned l = 0; l < 3; ++l) {
      table = reinterpret_cast<uint64_t*>(table[index(va, l)] & kAddr);
    }
    return &table[index(va, 3)];
  };
  // Zero, computed at run time from the slot a walk found and the descriptor it read there
  // (bit 63 of a user pointer and of an invalid or page descriptor is 0). The empty asms hide
  // both the inputs and the result's range from the compiler (which could otherwise prove the
  // indexes do not depend on it) and keep the data dependency the CPU sees.
  const auto carry = [](const uint64_t* slot, uint64_t old) {
    uintptr_t p = reinterpret_cast<uintptr_t>(slot) | old;
    asm volatile("" : "+r"(p));
    uint64_t c = static_cast<uint64_t>(p >> 63);
    asm volatile("" : "+r"(c));
    return c;
  };
  uint64_t* slot = t[3];
  uint64_t old = 0;
  for (auto _ : state) {
    slot = walk(iova + carry(slot, old));
    old = *slot;  // the fourth load: the leaf entry is invalid
    *slot = leaf;
    benchmark::ClobberMemory();
    slot = walk(iova + carry(slot, old));
    old = *slot;  // the fourth load: the leaf entry is the page
    *slot = 0;
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  std::free(storage);
}

}  // namespace deviso::bench

#endif  // DEVISO_BENCH_RAW_BASELINE_H_
