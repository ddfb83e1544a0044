// Differential test of the translation-table engine against a page-by-page reference model
// (CTest label `pgtable`). At least 1,000,000 operations in the plain build; fewer under
// sanitizers. DEVISO_PGTABLE_SEED=<n> replays a run; DEVISO_PGTABLE_OPS=<n> changes the count;
// DEVISO_PGTABLE_LONG=1 is the long run (10,000,000 operations, every granule and stage).
// Every scenario ends with a leak check: every table back in its pool.
// Scenarios whose stage or granule is compiled out (the minimal profile) are left out.

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <vector>

#include "pgtable/testing/differential.h"

namespace deviso::pgtable::testing {
namespace {

class RandomSource : public ChoiceSource {
 public:
  explicit RandomSource(uint64_t seed) : rng_(seed) {}
  uint64_t Below(uint64_t bound) override { return rng_() % bound; }

 private:
  std::mt19937_64 rng_;
};

#if defined(DEVISO_UNDER_SANITIZER)
constexpr uint64_t kDefaultTotalOps = 200'000;
#else
constexpr uint64_t kDefaultTotalOps = 1'000'000;
#endif
constexpr uint64_t kLongRunTotalOps = 10'000'000;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::strtoull(v, nullptr, 0) : fallback;
}

struct Scenario {
  const char* name;
  Config config;
  unsigned window_bits;  // window of 2^bits pages
  size_t pool_granules;
};

std::vector<Scenario> Scenarios(bool long_run) {
  std::vector<Scenario> out;
  // 4K stage 1: 2 GiB window, 1 GiB and 2 MiB blocks, break-before-make.
  out.push_back({"4K-S1-ias48", Config::SmmuStage1(Granule::k4KiB, 48, 48, true), 19, 2048});
  // 4K stage 2, concatenated root, BBML2 splits.
  Config s2 = Config::SmmuStage2(Granule::k4KiB, 40, 44, true);
  s2.bbml2 = true;
  out.push_back({"4K-S2-ias40-bbml2", s2, 19, 2048});
  // 16K stage 1 with a non-coherent walker (every write cleaned).
  out.push_back(
      {"16K-S1-noncoherent", Config::SmmuStage1(Granule::k16KiB, 48, 48, false), 14, 256});
  // 64K stage 2 (512 MiB blocks).
  out.push_back({"64K-S2-ias42", Config::SmmuStage2(Granule::k64KiB, 42, 48, true), 15, 64});
  // The CPU's kernel tables.
  out.push_back({"4K-cpu-ias39", Config::CpuKernel(Granule::k4KiB, 39, 40), 16, 1024});
  if (long_run) {
    // The documented long run adds the remaining granule x stage combinations.
    Config s2_16k = Config::SmmuStage2(Granule::k16KiB, 40, 40, true);
    out.push_back({"16K-S2-ias40", s2_16k, 15, 512});
    Config s1_64k = Config::SmmuStage1(Granule::k64KiB, 48, 48, false);
    s1_64k.bbml2 = true;
    out.push_back({"64K-S1-noncoherent-bbml2", s1_64k, 15, 64});
    Config pages = Config::SmmuStage1(Granule::k4KiB, 48, 48, true);
    pages.min_leaf_level = kMaxLevel;
    out.push_back({"4K-S1-pages-only", pages, 16, 1024});
  }
  std::erase_if(out, [](const Scenario& sc) {
    return (!config::kStage2 && sc.config.stage == Stage::kStage2) ||
           (!config::kGranule16K64K && sc.config.granule != Granule::k4KiB);
  });
  return out;
}

TEST(PgtableDifferential, RandomSequencesAgreeWithTheModel) {
  const uint64_t seed = EnvOr("DEVISO_PGTABLE_SEED", std::random_device{}());
  // DEVISO_PGTABLE_LONG=1: the long run (not in CI), 10,000,000 operations over every
  // granule and stage; DEVISO_PGTABLE_OPS still overrides the count.
  const bool long_run = EnvOr("DEVISO_PGTABLE_LONG", 0) != 0;
  const uint64_t total =
      EnvOr("DEVISO_PGTABLE_OPS", long_run ? kLongRunTotalOps : kDefaultTotalOps);
  const std::vector<Scenario> scenarios = Scenarios(long_run);
  const uint64_t per_scenario = total / scenarios.size() + 1;
  uint64_t done = 0;
  for (size_t k = 0; k < scenarios.size(); ++k) {
    const Scenario& sc = scenarios[k];
    SCOPED_TRACE(::testing::Message() << sc.name << ": replay with DEVISO_PGTABLE_SEED=" << seed);
    RandomSource src(seed + k);
    DifferentialHarness h(sc.config, sc.window_bits, sc.pool_granules);
    ASSERT_TRUE(h.ok());
    for (uint64_t i = 0; i < per_scenario; ++i) {
      ASSERT_TRUE(h.Step(src)) << h.error();
      if (i % 25'000 == 24'999) {
        ASSERT_TRUE(h.CheckAll()) << h.error();
      }
    }
    ASSERT_TRUE(h.CheckAll()) << h.error();
    ASSERT_TRUE(h.DrainAndCheckEmpty()) << h.error();
    ASSERT_TRUE(h.ReleaseAndCheckNoLeak()) << h.error();
    done += h.operations();
    // The run must have exercised what it claims to test.
    const DifferentialHarness::Coverage& c = h.coverage();
    std::printf(
        "%-20s maps %llu unmaps %llu protects %llu refused %llu enomem %llu "
        "block-lookups %llu splits %llu unsupported %llu\n",
        sc.name, static_cast<unsigned long long>(c.maps), static_cast<unsigned long long>(c.unmaps),
        static_cast<unsigned long long>(c.protects), static_cast<unsigned long long>(c.refused),
        static_cast<unsigned long long>(c.no_memory),
        static_cast<unsigned long long>(c.block_leaves), static_cast<unsigned long long>(c.splits),
        static_cast<unsigned long long>(c.unsupported));
    EXPECT_GT(c.maps, 0U);
    EXPECT_GT(c.unmaps, 0U);
    EXPECT_GT(c.protects, 0U);
    EXPECT_GT(c.refused, 0U);
    EXPECT_GT(c.no_memory, 0U);
    if (sc.config.min_leaf_level == kMaxLevel) continue;  // pages only: no block to see or cut
    EXPECT_GT(c.block_leaves, 0U);
    if constexpr (config::kBlockSplit) {
      EXPECT_GT(c.splits, 0U);
    } else {
      EXPECT_GT(c.unsupported, 0U) << "edits cutting a block must have been tried";
    }
  }
  EXPECT_GE(done, total);
  std::printf("pgtable differential: %llu operations, seed %llu\n",
              static_cast<unsigned long long>(done), static_cast<unsigned long long>(seed));
}

}  // namespace
}  // namespace deviso::pgtable::testing
