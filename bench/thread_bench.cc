// Thread scaling of map + unmap through the registry (issue 12): 1, 2 and 4 threads, each on a
// context of its own (BM_ThreadsContext) or all on one shared context (BM_ThreadsSharedContext),
// into the SMMUv3 driver on its host register model and into the virtio-iommu driver on its
// fake device. Plus the cost of the UsesMemory() check every map pays (BM_UsesMemory).
//
// One iteration is a batch: the threads are released together, each makes kOpsPerThread
// map+unmap pairs of one 4 KiB page (strict: each unmap invalidates and waits), and the batch
// ends when the last thread is done. Wall time (UseRealTime), so ops_per_s is the throughput of
// all threads together; x_one_thread is it divided by the same family's one-thread figure from
// this run (the Threads:1 case runs first). A ratio within one run, so it holds on a loaded
// machine; on a 2-core host N = 4 cannot scale past 2.
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
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "raw_baseline.h"
#include "smmuv3/testing/registry_rig.h"
#include "testing/sim_memory.h"
#include "virtio_iommu/testing/fake_device.h"
#include "virtio_iommu/virtio_iommu.h"

namespace deviso {
namespace {

constexpr uint64_t kPage = 4096;
constexpr int kMaxThreads = 4;
constexpr uint64_t kOpsPerThread = 2048;
constexpr uint32_t kSidBase = 0x20;
// Each thread's page lies in a 2 MiB region of its own, beside a neighbour that keeps the tables
// in place: the same walk for every thread, no table freed or allocated in the loop.
constexpr Iova kIovaBase = 0x4000'0000;
constexpr uint64_t kRegion = 2ULL << 20;
constexpr Paddr kPaBase = 0x1'0000'0000;  // outside the simulated RAM: nothing the unit owns

void Check(bool ok) {
  if (!ok) std::abort();
}

// A registry over one unit with kMaxThreads bound devices, each with a context, and one more
// device whose context every thread shares.
struct Fleet {
  virtual ~Fleet() = default;
  Registry* registry = nullptr;
  IsolationUnit* unit = nullptr;
  device devs[kMaxThreads + 1] = {};
  Context own[kMaxThreads];
  Context shared;

  void Bind() {
    Check(registry->RegisterUnit(*unit).ok());
    for (int i = 0; i <= kMaxThreads; ++i) {
      const uint32_t sid = kSidBase + static_cast<uint32_t>(i);
      Check(registry->BindDevice(&devs[i], *unit, {&sid, 1}).ok());
      Result<Context> ctx = registry->AllocContext(&devs[i], sid);
      Check(ctx.ok());
      if (i < kMaxThreads) {
        own[i] = *ctx;
      } else {
        shared = *ctx;
      }
    }
    // The neighbours: one page at the start of every thread's region, in every context.
    for (int t = 0; t < kMaxThreads; ++t) {
      const Iova region = kIovaBase + static_cast<uint64_t>(t) * kRegion;
      const Paddr pa = kPaBase + static_cast<uint64_t>(t) * kRegion;
      Check(own[t].Map(region, pa, kPage, kPermReadWrite).ok());
      Check(shared.Map(region, pa, kPage, kPermReadWrite).ok());
    }
  }
};

// The SMMUv3 driver on the register-level model (QEMU 7.2's profile: RIL, BBML2, 2-level
// stream table), through its own registry.
struct SmmuFleet final : Fleet {
  static smmuv3::testing::RegistryRig::Options Options() {
    smmuv3::testing::RegistryRig::Options o;
    o.smmu.name = "smmuv3@bench";
    o.smmu.dma_coherent = true;
    o.memory.base = 0x4000'0000;
    o.memory.tables_4k_bytes = 8u << 20;
    return o;
  }
  SmmuFleet() : rig(Options()) {
    Check(rig.Start(false).ok());
    registry = rig.registry;
    unit = rig.smmu.get();
    Bind();
  }
  smmuv3::testing::RegistryRig rig;
};

// The virtio-iommu driver on the fake virtio-iommu-pci (requests complete inside the notify
// write, as QEMU does), through its own registry.
struct VirtioFleet final : Fleet {
  static testing::SimPhysMemory::Options MemoryOptions() {
    testing::SimPhysMemory::Options o;
    o.base = 0x4000'0000;
    return o;
  }
  static virtio_iommu::VirtioIommu::Config Config(testing::SimPhysMemory& memory,
                                                  virtio_iommu::testing::FakeVirtioIommu& fake) {
    virtio_iommu::VirtioIommu::Config c;
    c.pci = &fake.config();
    c.bars[virtio_iommu::testing::FakeVirtioIommu::kBar] = &fake.bar();
    c.dma = &memory.dma();
    c.name = "virtio-iommu@bench";
    return c;
  }
  VirtioFleet()
      : memory(MemoryOptions()), fake(memory, {}), iommu(Config(memory, fake)), own_registry() {
    Check(iommu.Probe().ok());
    Check(iommu.Init().ok());
    registry = &own_registry;
    unit = &iommu;
    Bind();
  }
  ~VirtioFleet() override {
    // The registry first (it calls no backend), then the unit.
    own_registry.~Registry();
    new (&own_registry) Registry();
  }
  testing::SimPhysMemory memory;
  virtio_iommu::testing::FakeVirtioIommu fake;
  virtio_iommu::VirtioIommu iommu;
  Registry own_registry;
};

enum class Backend { kSmmu, kVirtio };

// One fleet per backend for the whole run (set-up is not measured; each case leaves the
// contexts as it found them).
Fleet& FleetFor(Backend b) {
  static std::unique_ptr<Fleet> smmu;
  static std::unique_ptr<Fleet> virtio;
  std::unique_ptr<Fleet>& f = b == Backend::kSmmu ? smmu : virtio;
  if (!f) {
    if (b == Backend::kSmmu) {
      f = std::make_unique<SmmuFleet>();
    } else {
      f = std::make_unique<VirtioFleet>();
    }
  }
  return *f;
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
    const auto start = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    for (std::thread& th : pool) th.join();
    const auto end = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(end - start).count();
    state.SetIterationTime(s);
    seconds += s;
    ops += kOpsPerThread * static_cast<uint64_t>(threads);
  }
  const double rate = static_cast<double>(ops) / seconds;
  state.counters["ops_per_s"] = rate;
  state.counters["ns_per_op"] = 1e9 / rate;
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
void BM_ThreadsContext_Virtio(benchmark::State& state) {
  RunThreads(state, Backend::kVirtio, false, "ctx_virtio");
}
void BM_ThreadsSharedContext_Virtio(benchmark::State& state) {
  RunThreads(state, Backend::kVirtio, true, "shared_virtio");
}
BENCHMARK(BM_ThreadsContext_Smmu)->Arg(1)->Arg(2)->Arg(4)->UseManualTime();
BENCHMARK(BM_ThreadsSharedContext_Smmu)->Arg(1)->Arg(2)->Arg(4)->UseManualTime();
BENCHMARK(BM_ThreadsContext_Virtio)->Arg(1)->Arg(2)->Arg(4)->UseManualTime();
BENCHMARK(BM_ThreadsSharedContext_Virtio)->Arg(1)->Arg(2)->Arg(4)->UseManualTime();

// The UsesMemory() check each map makes (twice: the registry's Context::Map, then the driver's
// Map), on the SMMUv3 unit with its 6 domains. Arg 0: a range outside every structure the unit
// allocated (the map path's case: answered from the hull, no lock); 1: a range inside the hull
// of its L2 tables and CDs that overlaps none of them (the lock and a scan of every slot).
void BM_UsesMemory_Smmu(benchmark::State& state) {
  auto& fleet = static_cast<SmmuFleet&>(FleetFor(Backend::kSmmu));
  // A page of the DMA region that the unit does not own, between the fleet's CDs (below it) and
  // one more domain's CD (above it): taken from the DMA memory and kept, never given to the
  // unit. Once for the run.
  static const Paddr inside = [&fleet] {
    Result<DmaBuffer> page = fleet.rig.memory.dma().Allocate(kPage, kPage);
    Check(page.ok());
    Check(fleet.registry->CreateDomain(*fleet.unit).ok());
    return page->pa;
  }();
  const Paddr pa = state.range(0) == 0 ? kPaBase : inside;
  Check(!fleet.unit->UsesMemory(pa, kPage));
  for (auto _ : state) {
    benchmark::DoNotOptimize(fleet.unit->UsesMemory(pa, kPage));
  }
  state.counters["in_hull"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_UsesMemory_Smmu)->Arg(0)->Arg(1);

// The frozen baseline, for ratios within this run.
void BM_RawMapUnmap4K(benchmark::State& state) { bench::RawMapUnmap4K(state); }
BENCHMARK(BM_RawMapUnmap4K);

}  // namespace
}  // namespace deviso
