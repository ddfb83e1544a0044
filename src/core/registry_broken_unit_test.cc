// The core over a broken SMMUv3 (a CMD_SYNC that timed out on the host model) next to a healthy
// unit: every operation on the broken unit's contexts is refused with -EIO before the backend is
// called and consumes nothing shared (context slots), and the core refuses to map a unit's own
// structures (-EPERM). CTest labels `core` and `smmuv3`.

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "core/testing/fake_unit.h"
#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "smmuv3/hw.h"
#include "smmuv3/smmuv3.h"
#include "smmuv3/testing/registry_rig.h"

namespace deviso {
namespace {

constexpr uint64_t kPage = 4096;
constexpr Iova kIova = 0x1000'0000;

// The SMMUv3 without 64 KiB tables and without interrupt handlers: the timeout is seen by the
// call that waits.
smmuv3::testing::RegistryRig::Options RigOptions() {
  smmuv3::testing::RegistryRig::Options o;
  o.smmu.name = "smmuv3@broken";
  o.smmu.dma_coherent = true;
  o.smmu.timeout_ns = 20'000'000;
  o.tables_64k = false;
  o.irq_handlers = false;
  return o;
}

struct Rig : smmuv3::testing::RegistryRig {
  Rig() : RegistryRig(RigOptions()) {}
};

TEST(RegistryBrokenUnit, RefusedWithEioAndNoContextSlotIsConsumed) {
  Rig rig;
  ASSERT_TRUE(rig.smmu->Probe().ok());
  ASSERT_TRUE(rig.smmu->Init(false).ok());
  testing::FakeUnit healthy;
  ASSERT_TRUE(rig.registry->RegisterUnit(*rig.smmu).ok());
  ASSERT_TRUE(rig.registry->RegisterUnit(healthy).ok());
  device smmu_dev;
  const uint32_t sids[2] = {1, 2};
  ASSERT_TRUE(rig.registry->BindDevice(&smmu_dev, *rig.smmu, sids).ok());
  Result<Context> ctx = rig.registry->AllocContext(&smmu_dev, 1);
  ASSERT_TRUE(ctx.ok());
  Result<DmaBuffer> buf = rig.memory.dma().Allocate(2 * kPage, kPage);
  ASSERT_TRUE(buf.ok());
  ASSERT_TRUE(ctx->Map(kIova, buf->pa, kPage, kPermReadWrite).ok());

  rig.model.SetCmdSyncStall(true);
  EXPECT_EQ(ctx->Unmap(kIova, kPage), Status::TimedOut());
  ASSERT_TRUE(rig.smmu->broken());
  const size_t tables = rig.memory.tables_4k().free_granules();
  const size_t dma = rig.memory.dma_free_pages();
  EXPECT_EQ(ctx->Map(0x7000'0000, buf->pa + kPage, kPage, kPermRead), Status::IoError());
  EXPECT_EQ(ctx->Unmap(kIova, kPage), Status::IoError());
  // More attempts than there are context slots: none may be retired for the broken unit.
  for (size_t i = 0; i < kMaxContexts + 8; ++i) {
    EXPECT_EQ(rig.registry->AllocContext(&smmu_dev, 2).status(), Status::IoError());
    EXPECT_EQ(rig.registry->CreateDomain(*rig.smmu).status(), Status::IoError());
  }
  EXPECT_EQ(rig.memory.tables_4k().free_granules(), tables);
  EXPECT_EQ(rig.memory.dma_free_pages(), dma);

  // The healthy unit still has every other slot: kMaxContexts - 1 (one is the broken unit's
  // live context), through shared domains.
  std::vector<Context> others;
  for (size_t i = 0; i + 1 < kMaxContexts; ++i) {
    Result<Context> c = rig.registry->CreateDomain(healthy);
    ASSERT_TRUE(c.ok()) << i << ": " << c.status().str();
    others.push_back(*c);
  }
  EXPECT_EQ(rig.registry->CreateDomain(healthy).status(), Status::NoMemory());
  for (const Context& c : others) EXPECT_TRUE(rig.registry->DestroyDomain(c).ok());
}

// Issue 15: an AllocContext whose attach timed out broke the unit, so destroying the new domain
// failed too (-EIO), and the SMMUv3's domain stayed allocated for good: enough of these, each
// followed by Recover(), used up the unit's domains (and the registry's slots). Each is now
// destroyed by the first allocation after the recovery.
TEST(RegistryBrokenUnit, AFailedAllocContextLeaksNoDomainAcrossRecoveries) {
  Rig rig;
  ASSERT_TRUE(rig.smmu->Probe().ok());
  ASSERT_TRUE(rig.smmu->Init(false).ok());
  ASSERT_TRUE(rig.registry->RegisterUnit(*rig.smmu).ok());
  device dev;
  const uint32_t sid = 1;
  ASSERT_TRUE(rig.registry->BindDevice(&dev, *rig.smmu, {&sid, 1}).ok());
  // One context first, so the stream table's level-2 array for the stream exists (it stays).
  ASSERT_TRUE(rig.registry->AllocContext(&dev, sid).ok());
  ASSERT_TRUE(rig.registry->FreeContext(&dev, sid).ok());
  const size_t tables = rig.memory.tables_4k().free_granules();
  const size_t dma = rig.memory.dma_free_pages();
  const size_t rounds = std::max<size_t>(smmuv3::Smmuv3::kMaxDomains, kMaxContexts) + 2;
  for (size_t i = 0; i < rounds; ++i) {
    // The attach's CFGI_STE never completes (from the second round on, the retried
    // destruction of the last round's domain is what times out: -EIO, refused before a slot is
    // taken).
    rig.model.SetCmdSyncStall(true);
    const Status st = rig.registry->AllocContext(&dev, sid).status();
    ASSERT_TRUE(st == (i == 0 ? Status::TimedOut() : Status::IoError())) << i << ": " << st.str();
    ASSERT_TRUE(rig.smmu->broken());
    rig.model.SetCmdSyncStall(false);
    ASSERT_TRUE(rig.smmu->Recover().ok()) << i;
  }
  // Every domain and slot is still available: a context works, and the memory is as before.
  Result<Context> ctx = rig.registry->AllocContext(&dev, sid);
  ASSERT_TRUE(ctx.ok()) << ctx.status().str();
  Result<DmaBuffer> buf = rig.memory.dma().Allocate(kPage, kPage);
  ASSERT_TRUE(buf.ok());
  ASSERT_TRUE(ctx->Map(kIova, buf->pa, kPage, kPermReadWrite).ok());
  uint64_t v = 0x1234;
  EXPECT_TRUE(rig.model.DeviceWrite(sid, kIova, &v, sizeof v).ok());
  ASSERT_TRUE(ctx->Unmap(kIova, kPage).ok());
  ASSERT_TRUE(rig.registry->FreeContext(&dev, sid).ok());
  rig.memory.dma().Free(*buf);
  EXPECT_EQ(rig.memory.tables_4k().free_granules(), tables);
  EXPECT_EQ(rig.memory.dma_free_pages(), dma);
  ASSERT_TRUE(rig.registry->UnbindDevice(&dev).ok());
  EXPECT_TRUE(rig.registry->UnregisterUnit(*rig.smmu).ok());
}

TEST(RegistryOwnMemory, MappingTheUnitsStructuresIsRefusedWithEperm) {
  Rig rig;
  ASSERT_TRUE(rig.smmu->Probe().ok());
  ASSERT_TRUE(rig.smmu->Init(false).ok());
  ASSERT_TRUE(rig.registry->RegisterUnit(*rig.smmu).ok());
  device dev;
  const uint32_t sid = 1;
  ASSERT_TRUE(rig.registry->BindDevice(&dev, *rig.smmu, {&sid, 1}).ok());
  Result<Context> ctx = rig.registry->AllocContext(&dev, sid);
  ASSERT_TRUE(ctx.ok());
  const uint64_t strtab = rig.model.Read64(smmuv3::reg::kStrtabBase) & 0x0000'ffff'ffff'f000ULL;
  const uint64_t cmdq = rig.model.Read64(smmuv3::reg::kCmdqBase) & 0x0000'ffff'ffff'f000ULL;
  EXPECT_EQ(ctx->Map(kIova, strtab, kPage, kPermReadWrite), Status::PermissionDenied());
  EXPECT_EQ(ctx->Map(kIova, cmdq, kPage, kPermRead), Status::PermissionDenied());
  uint8_t b;
  EXPECT_FALSE(rig.model.DeviceRead(sid, kIova, &b, 1).ok());
  EXPECT_TRUE(rig.registry->FreeContext(&dev, sid).ok());
}

}  // namespace
}  // namespace deviso
