// Thread scaling of map + unmap through the registry (issue 12): 1, 2 and 4 threads, each on a
// context of its own (BM_ThreadsContext) or all on one shared context (BM_ThreadsSharedContext),
// into the SMMUv3 driver on its host register model and into the virtio-iommu driver on its
// fake device, and into the SMMUv3 driver on a register stub that completes every command at
// once (*_InstantSmmu: the driver's own scaling, no model lock). Plus the cost of the
// UsesMemory() check every map pays (BM_UsesMemory_Smmu).
//
// One iteration is a batch: the threads are released together, each makes kOpsPerThread
// map+unmap pairs of one 4 KiB page (strict: each unmap invalidates and waits), and the batch
// ends when the last thread is done. Wall time (UseRealTime), so ops_per_s is the throughput of
// all threads together; x_one_thread is it divided by the same family's one-thread figure from
// this run (the Threads:1 case runs first); cpu_ns_per_op is the process's CPU time per op while
// the batch ran (it grows with lock hand-offs and cache-line transfers, not with waiting). On a
// loaded machine wall-clock scaling is not the code's alone: N threads get N shares of the CPUs
// that other processes compete for, so x_one_thread can pass the core count (2 here); read it
// with cpu_ns_per_op.
//
// What limits the scaling is reported, not hidden: both drivers serialise their queue (the
// SMMUv3 command queue lock, the virtio request queue lock) and both host models hold one lock
// per register access or request, so the figures say how much of a map+unmap runs outside
// those locks.
//
// Run: build/host-release/bench/thread_bench (preset host-release; scripts/bench).

#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_units.h"
#include "raw_baseline.h"

namespace deviso {
namespace {

constexpr uint64_t kPage = 4096;
constexpr size_t kMaxThreads = 4;
constexpr uint64_t kOpsPerThread = 2048;
// Each thread's page lies in a 2 MiB region of its own, beside a neighbour that keeps the tables
// in place: the same walk for every thread, no table freed or allocated in the loop.
constexpr Iova kIovaBase = 0x4000'0000;
constexpr uint64_t kRegion = 2ULL << 20;
constexpr Paddr kPaBase = 0x1'0000'0000;  // outside the simulated RAM: nothing the unit owns

using bench::Check;

// kMaxThreads devices, each with a context, and one more device whose context every thread
// shares, on one unit.
struct Fleet {
  explicit Fleet(std::unique_ptr<bench::BenchUnit> u) : unit(std::move(u)) {
    for (size_t i = 0; i <= kMaxThreads; ++i) {
      Result<Context> ctx = unit->registry().AllocContext(unit->dev(i), bench::BenchUnit::Sid(i));
      Check(ctx.ok());
      if (i < kMaxThreads) {
        own[i] = *ctx;
      } else {
        shared = *ctx;
      }
    }
    // The neighbours: one page at the start of every thread's region, in every context.
    for (size_t t = 0; t < kMaxThreads; ++t) {
      const Iova region = kIovaBase + t * kRegion;
      const Paddr pa = kPaBase + t * kRegion;
      Check(own[t].Map(region, pa, kPage, kPermReadWrite).ok());
      Check(shared.Map(region, pa, kPage, kPermReadWrite).ok());
    }
  }
  std::unique_ptr<bench::BenchUnit> unit;
  Context own[kMaxThreads];
  Context shared;
};

enum class Backend { kSmmu, kInstantSmmu, kVirtio };

// One fleet per backend for the whole run (set-up is not measured; each case leaves the
// contexts as it found them).
Fleet& FleetFor(Backend b) {
  // Function-local statics: built once, on first use.
  switch (b) {
    case Backend::kSmmu: {
      static Fleet smmu(std::make_unique<bench::SmmuBenchUnit>(kMaxThreads + 1));
      return smmu;
    }
    case Backend::kInstantSmmu: {
      static Fleet instant(std::make_unique<bench::InstantSmmuBenchUnit>(kMaxThreads + 1));
      return instant;
    }
    case Backend::kVirtio:
    default: {
      static Fleet virtio(std::make_unique<bench::VirtioBenchUnit>(kMaxThreads + 1));
      return virtio;
    }
  }
}

// kOpsPerThread map+unmap pairs of the second page of thread `t`'s region.
void Worker(const Context& ctx, int t) {
  const Iova iova = kIovaBase + static_cast<uint64_t>(t) * kRegion + kPage;
  const Paddr pa = kPaBase + static_cast<uint64_t>(t) * kRegion + kPage;
  for (uint64_t i = 0; i < kOpsPerThread; ++i) {
    Check(ctx.Map(iova, pa, kPage, kPermReadWrite).ok());
    Check(ctx.Unmap(iova, kPage).ok());
  }
}

// CPU time of the whole process: the threads' work while the main thread waits in join().
double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// One-thread throughput of each family in this run, for x_one_thread.
std::map<std::string, double>& OneThreadRates() {
  static std::map<std::string, double> rates;
  return rates;
}

// Arg 0: threads. `shared`: every thread on Fleet::shared, else thread t on Fleet::own[t].
void RunThreads(benchmark::State& state, Backend backend, bool shared, const char* family) {
  Fleet& fleet = FleetFor(backend);
  const int threads = static_cast<int>(state.range(0));
  double seconds = 0;
  double cpu_seconds = 0;
  uint64_t ops = 0;
  for (auto _ : state) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(threads));
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) {
        }
        Worker(shared ? fleet.shared : fleet.own[t], t);
      });
    }
    while (ready.load() != threads) {
    }
    const double cpu_start = ProcessCpuSeconds();
    const auto start = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    for (std::thread& th : pool) th.join();
    const auto end = std::chrono::steady_clock::now();
    cpu_seconds += ProcessCpuSeconds() - cpu_start;
    const double s = std::chrono::duration<double>(end - start).count();
    state.SetIterationTime(s);
    seconds += s;
    ops += kOpsPerThread * static_cast<uint64_t>(threads);
  }
  const double rate = static_cast<double>(ops) / seconds;
  state.counters["ops_per_s"] = rate;
  state.counters["ns_per_op"] = 1e9 / rate;
  state.counters["cpu_ns_per_op"] = cpu_seconds * 1e9 / static_cast<double>(ops);
  state.counters["threads"] = threads;
  if (threads == 1) {
    OneThreadRates()[family] = rate;
  } else if (OneThreadRates().count(family) != 0) {
    state.counters["x_one_thread"] = rate / OneThreadRates()[family];
  }
}

void BM_ThreadsContext_Smmu(benchmark::State& state) {
  RunThreads(state, Backend::kSmmu, false, "ctx_smmu");
}
void BM_ThreadsSharedContext_Smmu(benchmark::State& state) {
  RunThreads(state, Backend::kSmmu, true, "shared_smmu");
}
void BM_ThreadsContext_InstantSmmu(benchmark::State& state) {
  RunThreads(state, Backend::kInstantSmmu, false, "ctx_instant");
}
void BM_ThreadsSharedContext_InstantSmmu(benchmark::State& state) {
  RunThreads(state, Backend::kInstantSmmu, true, "shared_instant");
}
void BM_ThreadsContext_Virtio(benchmark::State& state) {
  RunThreads(state, Backend::kVirtio, false, "ctx_virtio");
}
void BM_ThreadsSharedContext_Virtio(benchmark::State& state) {
  RunThreads(state, Backend::kVirtio, true, "shared_virtio");
}
BENCHMARK(BM_ThreadsContext_Smmu)->Arg(1)->Arg(2)->Arg(4)->UseManualTime();
BENCHMARK(BM_ThreadsSharedContext_Smmu)->Arg(1)->Arg(2)->Arg(4)->UseManualTime();
BENCHMARK(BM_ThreadsContext_InstantSmmu)->Arg(1)->Arg(2)->Arg(4)->UseManualTime();
BENCHMARK(BM_ThreadsSharedContext_InstantSmmu)->Arg(1)->Arg(2)->Arg(4)->UseManualTime();
BENCHMARK(BM_ThreadsContext_Virtio)->Arg(1)->Arg(2)->Arg(4)->UseManualTime();
BENCHMARK(BM_ThreadsSharedContext_Virtio)->Arg(1)->Arg(2)->Arg(4)->UseManualTime();

// The UsesMemory() check each map makes (twice: the registry's Context::Map, then the driver's
// Map), on the SMMUv3 unit with its 6 domains. Arg 0: a range outside every structure the unit
// allocated (the map path's case: answered from the hull, no lock); 1: a range inside the hull
// of its L2 tables and CDs that overlaps none of them (the lock and a scan of every slot).
void BM_UsesMemory_Smmu(benchmark::State& state) {
  Fleet& fleet = FleetFor(Backend::kSmmu);
  auto& smmu = static_cast<bench::SmmuBenchUnit&>(*fleet.unit);
  // A page of the DMA region that the unit does not own, between the fleet's CDs (below it) and
  // one more domain's CD (above it): taken from the DMA memory and kept, never given to the
  // unit. Once for the run.
  static const Paddr inside = [&smmu] {
    Result<DmaBuffer> page = smmu.rig().memory.dma().Allocate(kPage, kPage);
    Check(page.ok());
    Check(smmu.registry().CreateDomain(smmu.unit()).ok());
    return page->pa;
  }();
  const Paddr pa = state.range(0) == 0 ? kPaBase : inside;
  Check(!smmu.unit().UsesMemory(pa, kPage));
  for (auto _ : state) {
    benchmark::DoNotOptimize(smmu.unit().UsesMemory(pa, kPage));
  }
  state.counters["in_hull"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_UsesMemory_Smmu)->Arg(0)->Arg(1);

// The frozen baseline, for ratios within this run.
void BM_RawMapUnmap4K(benchmark::State& state) { bench::RawMapUnmap4K(state); }
BENCHMARK(BM_RawMapUnmap4K);

}  // namespace
}  // namespace deviso
