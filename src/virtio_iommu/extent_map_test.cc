// ExtentMap on its own: merging, splitting, capacity and the plan/commit split that lets the
// driver send a request between checking and recording.

#include "virtio_iommu/extent_map.h"

#include <gtest/gtest.h>

#include <vector>

namespace deviso::virtio_iommu {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint32_t kRw = 3;
constexpr uint32_t kRo = 1;

struct Want {
  Iova iova;
  Paddr pa;
  uint64_t size;
};

void ExpectExtents(const ExtentMap& m, const std::vector<Want>& want) {
  ASSERT_EQ(m.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(m[i].iova, want[i].iova) << "extent " << i;
    EXPECT_EQ(m[i].pa, want[i].pa) << "extent " << i;
    EXPECT_EQ(m[i].size, want[i].size) << "extent " << i;
  }
}

Status Insert(ExtentMap& m, Iova iova, Paddr pa, uint64_t size, uint32_t flags = kRw) {
  Result<ExtentMap::InsertPlan> plan = m.PlanInsert(iova, pa, size, flags);
  if (!plan.ok()) return plan.status();
  m.CommitInsert(*plan, iova, pa, size, flags);
  return Status::Ok();
}

Status Remove(ExtentMap& m, Iova iova, uint64_t size) {
  Result<ExtentMap::RemovePlan> plan = m.PlanRemove(iova, size);
  if (!plan.ok()) return plan.status();
  m.CommitRemove(*plan, iova, size);
  return Status::Ok();
}

TEST(ExtentMap, KeepsExtentsSortedAndMergesWhatContinuesInIovaAndPaWithTheSameFlags) {
  ExtentMap m;
  ASSERT_TRUE(Insert(m, 0x3000, 0x83000, kPage).ok());
  ASSERT_TRUE(Insert(m, 0x1000, 0x81000, kPage).ok());
  ExpectExtents(m, {{0x1000, 0x81000, kPage}, {0x3000, 0x83000, kPage}});
  // Fills the gap: both neighbours continue it, three become one.
  ASSERT_TRUE(Insert(m, 0x2000, 0x82000, kPage).ok());
  ExpectExtents(m, {{0x1000, 0x81000, 3 * kPage}});
  // Continues in IOVA but not in PA, or with other flags: a new extent.
  ASSERT_TRUE(Insert(m, 0x4000, 0x90000, kPage).ok());
  ASSERT_TRUE(Insert(m, 0x5000, 0x91000, kPage, kRo).ok());
  ExpectExtents(m,
                {{0x1000, 0x81000, 3 * kPage}, {0x4000, 0x90000, kPage}, {0x5000, 0x91000, kPage}});
  // Joins the next one only (inserted below it).
  ASSERT_TRUE(Insert(m, 0x0, 0x80000, kPage).ok());
  ExpectExtents(m, {{0x0, 0x80000, 4 * kPage}, {0x4000, 0x90000, kPage}, {0x5000, 0x91000, kPage}});
}

TEST(ExtentMap, AnOverlapIsEexistAndChangesNothing) {
  ExtentMap m;
  ASSERT_TRUE(Insert(m, 0x10000, 0x80000, 4 * kPage).ok());
  for (Iova iova : {Iova{0xf000}, Iova{0x10000}, Iova{0x13000}}) {
    EXPECT_EQ(m.PlanInsert(iova, 0x100000, 2 * kPage, kRw).status().ToC(), -EEXIST) << iova;
  }
  ExpectExtents(m, {{0x10000, 0x80000, 4 * kPage}});
  EXPECT_TRUE(m.Overlaps(0x13000, kPage));
  EXPECT_FALSE(m.Overlaps(0x14000, kPage));
  EXPECT_FALSE(m.Overlaps(0xf000, kPage));
}

TEST(ExtentMap, RemovingTheMiddleSplitsAndRemovingAHoleIsEnoent) {
  ExtentMap m;
  ASSERT_TRUE(Insert(m, 0x10000, 0x80000, 8 * kPage).ok());
  ASSERT_TRUE(Remove(m, 0x12000, 2 * kPage).ok());
  ExpectExtents(m, {{0x10000, 0x80000, 2 * kPage}, {0x14000, 0x84000, 4 * kPage}});
  // A range with a hole (0x12000..0x13fff) is refused whole.
  EXPECT_EQ(m.PlanRemove(0x11000, 4 * kPage).status().ToC(), -ENOENT);
  EXPECT_EQ(m.PlanRemove(0x20000, kPage).status().ToC(), -ENOENT);
  ExpectExtents(m, {{0x10000, 0x80000, 2 * kPage}, {0x14000, 0x84000, 4 * kPage}});
  // A range across two extents with no hole between them removes both parts it covers.
  ASSERT_TRUE(Insert(m, 0x12000, 0x50000, 2 * kPage).ok());  // other PA: its own extent
  ASSERT_EQ(m.size(), 3u);
  ASSERT_TRUE(Remove(m, 0x11000, 4 * kPage).ok());
  ExpectExtents(m, {{0x10000, 0x80000, kPage}, {0x15000, 0x85000, 3 * kPage}});
  EXPECT_EQ(m.Find(0x15000)->pa, 0x85000u);
  EXPECT_EQ(m.Find(0x11000), nullptr);
}

TEST(ExtentMap, CapacityIsEnomemForANewExtentOrASplitAndChangesNothing) {
  ExtentMap m;
  // Every other page, each with its own PA far away: nothing merges.
  for (size_t i = 0; i < ExtentMap::kCapacity; ++i) {
    ASSERT_TRUE(Insert(m, 2 * i * kPage, 0x1000'0000 + 4 * i * kPage, kPage).ok()) << i;
  }
  EXPECT_EQ(m.PlanInsert(2 * ExtentMap::kCapacity * kPage, 0x9000'0000, kPage, kRw).status().ToC(),
            -ENOMEM);
  // A range that merges needs no new extent: it fits.
  EXPECT_TRUE(m.PlanInsert(kPage, 0x1000'0000 + kPage, kPage, kRw).ok());
  // Splitting one extent in two needs one more: refused. The last extent becomes 3 pages.
  const Iova last_iova = 2 * (ExtentMap::kCapacity - 1) * kPage;
  ASSERT_TRUE(Remove(m, last_iova, kPage).ok());
  ASSERT_TRUE(Insert(m, last_iova, 0x2000'0000, 3 * kPage).ok());
  ASSERT_EQ(m.size(), ExtentMap::kCapacity);
  EXPECT_EQ(m.PlanRemove(last_iova + kPage, kPage).status().ToC(), -ENOMEM);
  EXPECT_EQ(m.size(), ExtentMap::kCapacity);
  EXPECT_EQ(m[ExtentMap::kCapacity - 1].size, 3 * kPage);
  // Removing its head or tail needs no new extent.
  EXPECT_TRUE(m.PlanRemove(last_iova, kPage).ok());
}

TEST(ExtentMap, ARangeEndingAtTheTopOfTheAddressSpaceNeitherWrapsNorMerges) {
  ExtentMap m;
  const Iova top = ~Iova{0} - kPage + 1;
  ASSERT_TRUE(Insert(m, top, 0x80000, kPage).ok());
  ASSERT_TRUE(Insert(m, 0, 0x81000, kPage).ok());  // continues the PA, but not the IOVA
  ExpectExtents(m, {{0, 0x81000, kPage}, {top, 0x80000, kPage}});
  EXPECT_EQ(m.Find(~Iova{0})->pa, 0x80000u);
  EXPECT_EQ(m.PlanInsert(top, 0x90000, kPage, kRw).status().ToC(), -EEXIST);
  ASSERT_TRUE(Remove(m, top, kPage).ok());
  ExpectExtents(m, {{0, 0x81000, kPage}});
}

TEST(ExtentMap, APlanIsOnlyAPlanUntilCommitted) {
  ExtentMap m;
  ASSERT_TRUE(Insert(m, 0x10000, 0x80000, 2 * kPage).ok());
  // The driver's request failed between plan and commit: nothing was recorded or removed.
  ASSERT_TRUE(m.PlanInsert(0x20000, 0x90000, kPage, kRw).ok());
  ASSERT_TRUE(m.PlanRemove(0x10000, kPage).ok());
  ExpectExtents(m, {{0x10000, 0x80000, 2 * kPage}});
  m.Clear();
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.Find(0x10000), nullptr);
}

}  // namespace
}  // namespace deviso::virtio_iommu
