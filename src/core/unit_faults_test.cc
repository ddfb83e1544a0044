#include "core/unit_faults.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/counters.h"
#include "ports/host/test_clock.h"

namespace deviso {
namespace {

void Record(const deviso_fault* f, void* user) {
  static_cast<std::vector<uint32_t>*>(user)->push_back(f->sid);
}

TEST(DrainBudgetTest, TakesUpToItsRecords) {
  DrainBudget budget(2);
  EXPECT_FALSE(budget.spent());
  EXPECT_TRUE(budget.Take());
  EXPECT_TRUE(budget.Take());
  EXPECT_TRUE(budget.spent());
  EXPECT_FALSE(budget.Take());
}

TEST(UnitFaultReporterTest, CountsUnroutedApartFromUnitFaults) {
  UnitFaultReporter r;
  std::vector<uint32_t> seen;
  r.Set(&Record, &seen, 16);
  Fault f{};
  f.sid = 3;
  r.ReportUnrouted(f);
  f.sid = ~0U;
  r.Report(f);  // an overflow: the unit's, not a stream's
  EXPECT_EQ(r.reported(), 2U);
  EXPECT_EQ(r.unrouted(), 1U);
  EXPECT_EQ(r.suppressed(), 0U);
  EXPECT_EQ(seen, (std::vector<uint32_t>{3, ~0U}));
}

TEST(UnitFaultReporterTest, RateLimitedLikeAContext) {
  port::host::TestClock clock;  // stands still: no token comes back
  UnitFaultReporter r;
  std::vector<uint32_t> seen;
  r.Set(&Record, &seen, 2);
  Fault f{};
  for (int i = 0; i < 5; ++i) r.ReportUnrouted(f);
  EXPECT_EQ(seen.size(), 2U);  // a burst of 2
  EXPECT_EQ(r.unrouted(), 5U);
  EXPECT_EQ(r.suppressed(), 3U);
  clock.Advance(500'000'000);  // half a second: one token
  r.ReportUnrouted(f);
  r.ReportUnrouted(f);
  EXPECT_EQ(seen.size(), 3U);
  EXPECT_EQ(r.suppressed(), 4U);
}

TEST(UnitFaultReporterTest, NoHandlerOnlyCounts) {
  UnitFaultReporter r;
  Fault f{};
  r.ReportUnrouted(f);
  EXPECT_EQ(r.unrouted(), 1U);
  EXPECT_EQ(r.suppressed(), 0U);
}

struct TwoCounters {
  uint64_t a = 0;
  uint64_t b = 0;
};

TEST(CountersTest, SnapshotCopiesEveryCounter) {
  TwoCounters c;
  Count(c.a);
  Count(c.b, 5);
  const TwoCounters s = SnapshotCounters(c);
  EXPECT_EQ(s.a, 1U);
  EXPECT_EQ(s.b, 5U);
  EXPECT_EQ(ReadCounter(c.b), 5U);
}

}  // namespace
}  // namespace deviso
