// Driver-level benchmarks of the SMMUv3 backend (issues 3 and 12): map + unmap with strict
// invalidation, and unmap of N contiguous pages. BM_RawMapUnmap4K (bench/raw_baseline.h, the
// frozen baseline) runs in the same executable: quote BM_SmmuMapUnmap4K as a cpu_time ratio to
// it within one run (docs/performance.md). The SMMU is a register stub that completes
// every command at once (CONS follows PROD), so the figures are the driver's own cost: the
// translation-table work, command building and queue handling. Commands and CMD_SYNCs per
// iteration are reported as counters.

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>

#include "instant_smmu.h"
#include "raw_baseline.h"
#include "smmuv3/smmuv3.h"
#include "testing/sim_memory.h"

namespace deviso::smmuv3 {
namespace {

using bench::InstantSmmu;

struct Rig {
  Rig() : memory(Options()), smmu(MakeConfig()) {
    if (!smmu.Probe().ok() || !smmu.Init(false).ok()) std::abort();
    Result<Domain*> d = smmu.CreateDomain(DomainOptions{}, nullptr);
    if (!d.ok() || !smmu.Attach(*d, 0x10).ok()) std::abort();
    domain = *d;
  }
  static testing::SimPhysMemory::Options Options() {
    testing::SimPhysMemory::Options o;
    o.base = 0x4000'0000;
    o.tables_4k_bytes = 8u << 20;
    return o;
  }
  Smmuv3::Config MakeConfig() {
    Smmuv3::Config c;
    c.regs = &regs;
    c.dma = &memory.dma();
    c.tables_4k = &memory.tables_4k();
    c.dma_coherent = true;
    return c;
  }
  InstantSmmu regs;
  testing::SimPhysMemory memory;
  Smmuv3 smmu;
  Domain* domain = nullptr;
};

void Check(Status s) {
  if (!s.ok()) std::abort();
}

void ReportQueue(benchmark::State& state, const SmmuStats& before, const SmmuStats& after) {
  const double n = static_cast<double>(state.iterations());
  state.counters["cmds_per_iter"] = static_cast<double>(after.commands - before.commands) / n;
  state.counters["syncs_per_iter"] = static_cast<double>(after.syncs - before.syncs) / n;
}

// The frozen baseline, for the ratio within this run.
void BM_RawMapUnmap4K(benchmark::State& state) { bench::RawMapUnmap4K(state); }
BENCHMARK(BM_RawMapUnmap4K);

void BM_SmmuMapUnmap4K(benchmark::State& state) {
  Rig rig;
  // A neighbour keeps the tables in place.
  Check(rig.smmu.Map(rig.domain, 0x10'0000, 0x8000'0000, 4096, kPermReadWrite, MemType::kNormal));
  const SmmuStats before = rig.smmu.stats();
  for (auto _ : state) {
    Check(rig.smmu.Map(rig.domain, 0x10'1000, 0x8000'1000, 4096, kPermReadWrite, MemType::kNormal));
    Check(rig.smmu.Unmap(rig.domain, 0x10'1000, 4096));
  }
  ReportQueue(state, before, rig.smmu.stats());
}
BENCHMARK(BM_SmmuMapUnmap4K);

// Unmap N contiguous 4 KiB pages (mapped as pages: the output address rules out blocks).
void BM_SmmuUnmapRange(benchmark::State& state) {
  Rig rig;
  // A neighbour below the range keeps the upper-level tables in place.
  Check(rig.smmu.Map(rig.domain, (1ULL << 30) - 4096, 0x8000'0000, 4096, kPermReadWrite,
                     MemType::kNormal));
  const uint64_t pages = static_cast<uint64_t>(state.range(0));
  const uint64_t size = pages * 4096;
  SmmuStats sum_before{};
  SmmuStats sum_after{};
  for (auto _ : state) {
    Check(rig.smmu.Map(rig.domain, 1ULL << 30, (1ULL << 32) + 4096, size, kPermReadWrite,
                       MemType::kNormal));
    const SmmuStats before = rig.smmu.stats();
    // Manual timing: only the unmap (pausing the timer costs more than a small unmap).
    const auto start = std::chrono::steady_clock::now();
    Check(rig.smmu.Unmap(rig.domain, 1ULL << 30, size));
    const auto end = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(end - start).count());
    sum_before.commands += before.commands;
    sum_before.syncs += before.syncs;
    sum_after.commands += rig.smmu.stats().commands;
    sum_after.syncs += rig.smmu.stats().syncs;
  }
  ReportQueue(state, sum_before, sum_after);
  state.counters["pages"] = static_cast<double>(pages);
}
BENCHMARK(BM_SmmuUnmapRange)
    ->Arg(1)
    ->Arg(16)
    ->Arg(512)
    ->Arg(262144)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace deviso::smmuv3
