// A dma_map_benchmark in the manner of Linux's (kernel/dma/map_benchmark.c, driven by
// tools/testing/selftests/dma/dma_map_benchmark.c), through deviso's DMA-driver hook
// (dma::ContextDmaMapper over a context, translated addresses from an IovaAllocator), over the
// SMMUv3 driver on its host model and the virtio-iommu driver on its fake (issue 12).
//
// Each request, in each thread: MapForDevice of the thread's buffer (timed), a DMA-sized gap
// (not timed), UnmapForDevice (timed, strict: it returns after the invalidation completed).
// Arguments: buffer size (4 KiB .. 2 MiB), gap (0: none; 1: the time a 4 GB/s device takes to
// move the buffer, busy-waited), leaf_aligned (DeviceBinding::leaf_aligned_iova, the default, or
// off: page-aligned first fit), threads 1 and 2 on one mapper, as Linux's threads share one
// device. Each hook keeps a 4 KiB ring mapped at the start of its window. Counters, per request:
// map_ns and unmap_ns (averaged over threads and requests), cmds_per_req and syncs_per_req (SMMUv3:
// commands queued with CMD_SYNC, and CMD_SYNCs; virtio-iommu: requests and notifications), pages (4
// KiB pages per buffer; the SMMUv3 engine maps a 2 MiB buffer whose IOVA and physical address are
// both 2 MiB-aligned as one block).
//
// Strict invalidation only: deferred invalidation (a per-context batched mode) does not exist
// yet, so there is no deferred column. Buffers are size-aligned, as a DMA pool's are.
//
// Run: build/host-release/bench/dma_map_bench (preset host-release; scripts/bench).

#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>

#include "bench_units.h"
#include "dma/dma_mapper.h"
#include "dma/iova_allocator.h"
#include "raw_baseline.h"

namespace deviso {
namespace {

using bench::Check;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kPage = 4096;
constexpr int kMaxThreads = 2;
constexpr Iova kWindowBase = 1ULL << 32;
constexpr uint64_t kWindowSize = 1ULL << 32;
constexpr Paddr kBufferBase = 1ULL << 36;        // outside the simulated RAM: nothing the unit owns
constexpr uint64_t kBufferStride = 64ULL << 20;  // each thread's buffer, size-aligned
constexpr double kDeviceBytesPerNs = 4.0;        // the gap's device: 4 GB/s
constexpr Paddr kRingPa = kBufferBase - kPage;   // the resident ring page

// One device's context, its IOVA window and its hook, with a 4 KiB "ring" mapped first and kept
// (as a driver maps its descriptor rings at start-up): first fit at page alignment then puts
// every buffer 4 KiB past a block boundary. `leaf_aligned`: DeviceBinding::leaf_aligned_iova.
struct Hook {
  Hook(bench::BenchUnit& u, size_t dev, bool leaf_aligned)
      : unit(u), iova(kWindowBase, kWindowSize, kPage, &reserved) {
    const uint32_t sid = bench::BenchUnit::Sid(dev);
    Result<Context> ctx = unit.registry().AllocContext(unit.dev(dev), sid);
    Check(ctx.ok());
    Check(reserved.AddFromUnit(unit.unit(), sid).ok());
    dma::DeviceBinding binding;
    binding.context = *ctx;
    binding.addressing = dma::Addressing::kTranslated;
    binding.iova = &iova;
    binding.reserved = &reserved;
    binding.coherent = true;
    binding.leaf_aligned_iova = leaf_aligned;
    mapper = std::make_unique<dma::StaticContextDmaMapper<16>>(binding);
    Check(mapper->MapForDevice(kRingPa, kPage, drivers::DmaDirection::kBidirectional).ok());
  }
  bench::BenchUnit& unit;
  dma::ReservedWindows reserved;
  dma::StaticIovaAllocator<64> iova;
  std::unique_ptr<dma::StaticContextDmaMapper<16>> mapper;
};

enum class Backend { kSmmu, kVirtio };

Hook& HookFor(Backend b, bool leaf_aligned) {
  // Function-local statics: initialised once, whichever benchmark thread comes first. Device 0
  // with leaf-aligned device addresses, device 1 without, on one unit per backend.
  if (b == Backend::kSmmu) {
    static bench::SmmuBenchUnit unit(2);
    static Hook aligned(unit, 0, true);
    static Hook packed(unit, 1, false);
    return leaf_aligned ? aligned : packed;
  }
  static bench::VirtioBenchUnit unit(2);
  static Hook aligned(unit, 0, true);
  static Hook packed(unit, 1, false);
  return leaf_aligned ? aligned : packed;
}

void Gap(uint64_t ns) {
  if (ns == 0) return;
  const auto until = Clock::now() + std::chrono::nanoseconds(ns);
  while (Clock::now() < until) {
  }
}

// Args: buffer bytes, gap (0 or 1), leaf-aligned device addresses (0 or 1).
void RunDmaMap(benchmark::State& state, Backend backend) {
  Hook& hook = HookFor(backend, state.range(2) != 0);
  const auto size = static_cast<size_t>(state.range(0));
  const uint64_t gap_ns = state.range(1) != 0
                              ? static_cast<uint64_t>(static_cast<double>(size) / kDeviceBytesPerNs)
                              : 0;
  const Paddr pa = kBufferBase + static_cast<uint64_t>(state.thread_index()) * kBufferStride;
  const bench::UnitWork before = hook.unit.work();
  double map_ns = 0;
  double unmap_ns = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    Result<drivers::DmaMapping> m =
        hook.mapper->MapForDevice(pa, size, drivers::DmaDirection::kBidirectional);
    const auto t1 = Clock::now();
    Check(m.ok());
    Gap(gap_ns);
    const auto t2 = Clock::now();
    Check(hook.mapper->UnmapForDevice(*m).ok());
    const auto t3 = Clock::now();
    const double map = std::chrono::duration<double, std::nano>(t1 - t0).count();
    const double unmap = std::chrono::duration<double, std::nano>(t3 - t2).count();
    map_ns += map;
    unmap_ns += unmap;
    if (gap_ns != 0) state.SetIterationTime((map + unmap) * 1e-9);
  }
  const auto n = static_cast<double>(state.iterations());
  state.counters["map_ns"] = benchmark::Counter(map_ns / n, benchmark::Counter::kAvgThreads);
  state.counters["unmap_ns"] = benchmark::Counter(unmap_ns / n, benchmark::Counter::kAvgThreads);
  if (state.thread_index() == 0) {
    // After the loop every thread has finished its requests (the benchmark's stop barrier).
    const bench::UnitWork after = hook.unit.work();
    const double requests = n * state.threads();
    state.counters["cmds_per_req"] =
        static_cast<double>(after.commands - before.commands) / requests;
    state.counters["syncs_per_req"] = static_cast<double>(after.syncs - before.syncs) / requests;
    state.counters["pages"] = static_cast<double>(size / kPage);
  }
}

void BM_DmaMap_Smmu(benchmark::State& state) { RunDmaMap(state, Backend::kSmmu); }
void BM_DmaMap_Virtio(benchmark::State& state) { RunDmaMap(state, Backend::kVirtio); }

// gap 0: cpu_time is the figure (map + unmap per request, the four clock readings included;
// stable on a loaded machine). gap 1: manual time, the timed map and unmap only (wall clock).
void Sizes(benchmark::internal::Benchmark* b, int64_t gap) {
  for (int64_t aligned : {1, 0}) {
    for (int64_t size : {4096, 64 << 10, 1 << 20, 2 << 20}) b->Args({size, gap, aligned});
  }
  b->ArgNames({"bytes", "gap", "leaf_aligned"});
  b->ThreadRange(1, kMaxThreads);
  // The gap is not timed: a fixed count keeps a 2 MiB case (0.5 ms gap) to about a second.
  if (gap != 0) b->UseManualTime()->Iterations(2000);
}
void NoGap(benchmark::internal::Benchmark* b) { Sizes(b, 0); }
void WithGap(benchmark::internal::Benchmark* b) { Sizes(b, 1); }
BENCHMARK(BM_DmaMap_Smmu)->Apply(NoGap);
BENCHMARK(BM_DmaMap_Virtio)->Apply(NoGap);
BENCHMARK(BM_DmaMap_Smmu)->Apply(WithGap);
BENCHMARK(BM_DmaMap_Virtio)->Apply(WithGap);

// The frozen baseline, for ratios within this run.
void BM_RawMapUnmap4K(benchmark::State& state) { bench::RawMapUnmap4K(state); }
BENCHMARK(BM_RawMapUnmap4K);

}  // namespace
}  // namespace deviso
