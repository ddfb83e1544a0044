// The IIDR-keyed errata table (errata.h) and the driver's use of it, on the host model with
// the IIDR values of the affected parts.

#include "smmuv3/errata.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>

#include "smmuv3/smmuv3.h"
#include "smmuv3/testing/smmu_model.h"
#include "smmuv3/testing/smmu_model_profiles.h"
#include "testing/sim_memory.h"

namespace deviso::smmuv3 {
namespace {

using deviso::testing::SimPhysMemory;
using testing::FindModelProfile;
using testing::MakeIidr;
using testing::SmmuModel;

// The table index of erratum `number` (the bit of ErrataReport::matched).
uint32_t Bit(uint32_t number) {
  size_t n = 0;
  const Erratum* t = ErrataTable(&n);
  for (size_t i = 0; i < n; ++i) {
    if (t[i].number == number) return 1U << i;
  }
  ADD_FAILURE() << "erratum " << number << " is not in the table";
  return 0;
}

TEST(ErrataTable, EveryLinuxMmu600AndMmu700ErratumHasAnEntryThatSaysWhatDevisoDoes) {
  size_t n = 0;
  const Erratum* t = ErrataTable(&n);
  ASSERT_EQ(n, 4U);
  for (uint32_t number : {1076982U, 1209401U, 2268618U, 2812531U}) EXPECT_NE(Bit(number), 0U);
  for (size_t i = 0; i < n; ++i) {
    SCOPED_TRACE(t[i].number);
    EXPECT_GT(std::strlen(t[i].issue), 20U);
    EXPECT_GT(std::strlen(t[i].deviso), 20U);
    EXPECT_EQ(t[i].handling == Erratum::Handling::kWorkaround, t[i].workaround != 0);
  }
}

TEST(ErrataTable, MatchesByProductVariantAndRevision) {
  struct Case {
    const char* part;
    uint32_t iidr;
    uint32_t matched;
    uint32_t workarounds;
  };
  const Case cases[] = {
      {"QEMU (IIDR 0)", 0, 0, 0},
      {"MMU-600 r0p0", MakeIidr(kIidrProductMmu600, 0, 0), Bit(1076982) | Bit(1209401), 0},
      {"MMU-600 r0p2", MakeIidr(kIidrProductMmu600, 0, 2), Bit(1076982) | Bit(1209401), 0},
      {"MMU-600 r0p3", MakeIidr(kIidrProductMmu600, 0, 3), Bit(1209401), 0},
      {"MMU-600 r1p0", MakeIidr(kIidrProductMmu600, 1, 0), Bit(1209401), 0},
      {"MMU-600 r2p0", MakeIidr(kIidrProductMmu600, 2, 0), 0, 0},
      {"MMU-700 r0p0", MakeIidr(kIidrProductMmu700, 0, 0), Bit(2268618) | Bit(2812531),
       kWorkaroundSyncEvery63Commands},
      {"MMU-700 r1p0", MakeIidr(kIidrProductMmu700, 1, 0), Bit(2268618) | Bit(2812531),
       kWorkaroundSyncEvery63Commands},
      {"MMU-700 r1p1", MakeIidr(kIidrProductMmu700, 1, 1), Bit(2812531),
       kWorkaroundSyncEvery63Commands},
      {"not Arm's 0x487", MakeIidr(kIidrProductMmu700, 0, 0, 0x36B), 0, 0},
  };
  for (const Case& c : cases) {
    const ErrataReport r = MatchErrata(c.iidr);
    EXPECT_EQ(r.matched, c.matched) << c.part;
    EXPECT_EQ(r.workarounds, c.workarounds) << c.part;
  }
}

// A unit on the model with `options` and max_tlbi_per_range = 64: the per-page path then
// issues up to 64 invalidations before its CMD_SYNC.
struct Unit {
  explicit Unit(const SmmuModel::Options& options)
      : memory(SimPhysMemory::Options()), model(memory, options) {
    Smmuv3::Config c;
    c.regs = &model;
    c.dma = &memory.dma();
    c.tables_4k = &memory.tables_4k();
    c.tables_64k = &memory.tables_64k();
    c.name = "smmuv3@errata";
    c.max_tlbi_per_range = 64;
    smmu = std::make_unique<Smmuv3>(c);
  }
  ~Unit() {
    if constexpr (!config::kTeardown) (void)smmu.release();
  }
  Unit(const Unit&) = delete;
  Unit& operator=(const Unit&) = delete;
  SimPhysMemory memory;
  SmmuModel model;
  std::unique_ptr<Smmuv3> smmu;
};

constexpr Iova kIova = 0x1000'0000;
constexpr uint64_t kPage = 4096;

// Maps 64 pages, touches each, unmaps them in one call; returns whether every page faults now.
bool UnmapSixtyFourPages(Unit& u) {
  Result<Domain*> d = u.smmu->CreateDomain(DomainOptions{}, nullptr);
  if (!d.ok() || !u.smmu->Attach(*d, 1).ok()) return false;
  Result<DmaBuffer> buf = u.memory.dma().Allocate(64 * kPage, kPage);
  if (!buf.ok()) return false;
  if (!u.smmu->Map(*d, kIova, buf->pa, 64 * kPage, kPermRead, MemType::kNormal).ok()) {
    return false;
  }
  uint8_t b = 0;
  for (uint64_t i = 0; i < 64; ++i) {
    if (!u.model.DeviceRead(1, kIova + i * kPage, &b, 1).ok()) return false;  // now cached
  }
  if (!u.smmu->Unmap(*d, kIova, 64 * kPage).ok()) return false;
  for (uint64_t i = 0; i < 64; ++i) {
    if (u.model.DeviceRead(1, kIova + i * kPage, &b, 1).ok()) return false;  // stale entry
  }
  return true;
}

TEST(ErrataOnTheModel, Mmu700CapsEveryBatchAt63CommandsPerSync) {
  SmmuModel::Options o = FindModelProfile("mmu700")->options;
  o.ril = false;  // the per-page path: one command per page
  Unit u(o);
  ASSERT_TRUE(u.smmu->Probe().ok());
  EXPECT_EQ(u.smmu->errata().workarounds, kWorkaroundSyncEvery63Commands);
  EXPECT_EQ(u.smmu->errata().matched, Bit(2268618) | Bit(2812531));
  ASSERT_TRUE(u.smmu->Init(true).ok());
  ASSERT_TRUE(UnmapSixtyFourPages(u));
  EXPECT_LE(u.model.max_commands_between_syncs(), kErratum2812531MaxCommands);
  EXPECT_EQ(u.model.command_count(ds::kOpTlbiNhAsid), 1U) << "64 > 63: the whole context";
}

TEST(ErrataOnTheModel, AnUnaffectedPartKeepsTheConfiguredBatch) {
  SmmuModel::Options o = FindModelProfile("mmu700")->options;
  o.ril = false;
  o.iidr = 0;  // the same ID registers without the MMU-700 IIDR
  Unit u(o);
  ASSERT_TRUE(u.smmu->Probe().ok());
  EXPECT_EQ(u.smmu->errata().matched, 0U);
  EXPECT_EQ(u.smmu->errata().workarounds, 0U);
  ASSERT_TRUE(u.smmu->Init(true).ok());
  ASSERT_TRUE(UnmapSixtyFourPages(u));
  EXPECT_EQ(u.model.max_commands_between_syncs(), 64U) << "64 per-page invalidations";
  EXPECT_EQ(u.model.command_count(ds::kOpTlbiNhAsid), 0U);
}

TEST(ErrataOnTheModel, Mmu600R0p0IsRecognisedAndNeverGetsASevSync) {
  SmmuModel::Options o = FindModelProfile("mmu600")->options;
  o.iidr = MakeIidr(kIidrProductMmu600, 0, 0);
  Unit u(o);
  ASSERT_TRUE(u.smmu->Probe().ok());
  EXPECT_EQ(u.smmu->errata().matched, Bit(1076982) | Bit(1209401));
  EXPECT_EQ(u.smmu->errata().workarounds, 0U) << "1076982 and 1209401 need no workaround";
  ASSERT_TRUE(u.smmu->Init(true).ok());
  ASSERT_TRUE(UnmapSixtyFourPages(u));
  EXPECT_GT(u.model.sync_count(), 0U);
  EXPECT_EQ(u.model.sev_count(), 0U) << "erratum 1076982: CS=SIG_SEV is never used";
}

}  // namespace
}  // namespace deviso::smmuv3
