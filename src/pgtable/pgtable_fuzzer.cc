// libFuzzer target: the differential harness of pgtable_differential_test, driven by the
// fuzzer's bytes instead of a PRNG. Built by the `host-fuzz` preset (clang only):
//   cmake --preset host-fuzz && cmake --build --preset host-fuzz
//   build/host-fuzz/src/pgtable/pgtable_fuzzer -max_total_time=60

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>

#include "pgtable/testing/differential.h"

namespace deviso::pgtable::testing {
namespace {

class FuzzSource : public ChoiceSource {
 public:
  explicit FuzzSource(FuzzedDataProvider& data) : data_(data) {}
  uint64_t Below(uint64_t bound) override {
    return data_.ConsumeIntegralInRange<uint64_t>(0, bound - 1);
  }
  bool More() const override { return data_.remaining_bytes() > 0; }

 private:
  FuzzedDataProvider& data_;
};

Config ScenarioConfig(unsigned which) {
  switch (which % 4) {
    case 0:
      return Config::SmmuStage1(Granule::k4KiB, 48, 48, true);
    case 1: {
      Config c = Config::SmmuStage2(Granule::k4KiB, 40, 44, false);
      c.bbml2 = true;
      return c;
    }
    case 2:
      return Config::SmmuStage1(Granule::k16KiB, 36, 40, true);
    default:
      return Config::SmmuStage2(Granule::k64KiB, 42, 48, true);
  }
}

}  // namespace
}  // namespace deviso::pgtable::testing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using deviso::pgtable::testing::DifferentialHarness;
  FuzzedDataProvider provider(data, size);
  deviso::pgtable::testing::FuzzSource src(provider);
  const unsigned which = provider.ConsumeIntegral<uint8_t>();
  // Windows of 2^11..2^13 pages: big enough for 2 MiB (4K) and 32 MiB (16K) blocks, small
  // enough that each input starts quickly.
  static constexpr unsigned kWindowBits[] = {11, 11, 12, 13};
  const deviso::pgtable::Config config = deviso::pgtable::testing::ScenarioConfig(which);
  DifferentialHarness h(config, kWindowBits[which % 4],
                        (size_t{1} << 20) >> static_cast<unsigned>(config.granule));
  if (!h.ok()) std::abort();
  while (src.More() && h.operations() < 4096) {
    if (!h.Step(src)) {
      std::fprintf(stderr, "pgtable_fuzzer: %s\n", h.error().c_str());
      std::abort();
    }
  }
  if (!h.CheckAll() || !h.DrainAndCheckEmpty() || !h.ReleaseAndCheckNoLeak()) {
    std::fprintf(stderr, "pgtable_fuzzer: %s\n", h.error().c_str());
    std::abort();
  }
  return 0;
}
