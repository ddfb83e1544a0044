// Tests of MSI doorbell mapping (deviso/msi.h), C++ and C, on a fake unit: what is mapped
// (one page, identity, Device memory, write-only only where the stage has it), the bypass of a
// unit that reports an MSI reserved region, and that every refused call changes nothing and
// argument errors never reach the backend.

#include "deviso/msi.h"

#include <gtest/gtest.h>

#include "core/testing/fake_unit.h"
#include "deviso/port/device.h"
#include "deviso/registry.h"

namespace deviso {
namespace {

using testing::FakeUnit;
using Op = FakeUnit::Op;

constexpr uint64_t kPage = 4096;
// GICv3 ITS on QEMU `virt`: frame at 0x08080000, GITS_TRANSLATER at +0x10040 (IHI0069 12.19).
constexpr Paddr kDoorbell = 0x0809'0040;
constexpr Paddr kDoorbellPage = 0x0809'0000;
constexpr uint32_t kSid = 0x10;

class MsiTest : public ::testing::Test {
 protected:
  void Bind(FakeUnit& unit) {
    ASSERT_EQ(registry_.RegisterUnit(unit).ToC(), 0);
    const uint32_t sids[] = {kSid};
    ASSERT_EQ(registry_.BindDevice(&dev_, unit, sids).ToC(), 0);
  }
  Context Alloc(const DomainOptions& options = {}) {
    Result<Context> ctx = registry_.AllocContext(&dev_, kSid, options);
    EXPECT_TRUE(ctx.ok()) << ctx.status().str();
    return ctx.ok() ? *ctx : Context{};
  }

  Registry registry_;
  device dev_{"nvme0"};
};

TEST_F(MsiTest, Stage1MapsTheDoorbellPageReadWriteAsDeviceMemory) {
  FakeUnit unit;
  Bind(unit);
  const Context ctx = Alloc();
  const Result<MsiDoorbell> db = MapMsiDoorbell(ctx, kSid, kDoorbell);
  ASSERT_TRUE(db.ok()) << db.status().str();
  EXPECT_EQ(db->iova, kDoorbell);  // identity: the message address is the doorbell itself
  EXPECT_EQ(db->page, kDoorbellPage);
  EXPECT_EQ(db->page_size, kPage);
  EXPECT_FALSE(db->write_only);
  EXPECT_FALSE(db->bypass);
  const Domain* domain = unit.DomainOf(kSid);
  EXPECT_EQ(unit.mapped_pages(domain), 1U);  // that page and nothing else
  const std::optional<FakeUnit::Page> page = unit.PageAt(domain, kDoorbellPage);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->pa, kDoorbellPage);
  EXPECT_EQ(page->perms, kPermReadWrite);
  EXPECT_EQ(page->type, MemType::kDevice);
  // Tried write-only (refused by stage 1, nothing changed), then read-write.
  EXPECT_EQ(unit.calls(Op::kMap), 2U);
}

TEST_F(MsiTest, Stage2MapsItWriteOnly) {
  FakeUnit unit(FakeUnit::Options{.stage2 = true});
  Bind(unit);
  const Context ctx = Alloc(DomainOptions{.stage = DomainOptions::Stage::kStage2});
  const Result<MsiDoorbell> db = MapMsiDoorbell(ctx, kSid, kDoorbell);
  ASSERT_TRUE(db.ok()) << db.status().str();
  EXPECT_TRUE(db->write_only);
  const std::optional<FakeUnit::Page> page = unit.PageAt(unit.DomainOf(kSid), kDoorbellPage);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->perms, kPermWrite);
  EXPECT_EQ(page->type, MemType::kDevice);
  EXPECT_EQ(unit.calls(Op::kMap), 1U);
}

TEST_F(MsiTest, The64KiBGranuleMapsTheWholeFrame) {
  FakeUnit unit(FakeUnit::Options{.page_sizes = (1ULL << 16) | (1ULL << 29)});
  Bind(unit);
  const Context ctx = Alloc();
  const Result<MsiDoorbell> db = MapMsiDoorbell(ctx, kSid, kDoorbell);
  ASSERT_TRUE(db.ok()) << db.status().str();
  EXPECT_EQ(db->page, 0x0809'0000U);  // 0x0809'0040 rounded down to 64 KiB
  EXPECT_EQ(db->page_size, 0x1'0000U);
}

TEST_F(MsiTest, BadArgumentsNeverReachTheBackend) {
  FakeUnit unit;
  Bind(unit);
  const Context ctx = Alloc();
  EXPECT_EQ(MapMsiDoorbell(ctx, kSid, 0).status(), Status::InvalidArgument());
  EXPECT_EQ(MapMsiDoorbell(ctx, kSid, kDoorbell + 2).status(), Status::InvalidArgument());
  EXPECT_EQ(MapMsiDoorbell(Context{}, kSid, kDoorbell).status(), Status::NotFound());
  EXPECT_EQ(UnmapMsiDoorbell(ctx, kSid, kDoorbell + 1), Status::InvalidArgument());
  EXPECT_EQ(UnmapMsiDoorbell(Context{}, kSid, kDoorbell), Status::NotFound());
  EXPECT_EQ(unit.calls(Op::kMap), 0U);
  EXPECT_EQ(unit.calls(Op::kUnmap), 0U);
  EXPECT_EQ(unit.mapped_pages(unit.DomainOf(kSid)), 0U);
}

TEST_F(MsiTest, RefusalsChangeNothing) {
  FakeUnit unit;
  Bind(unit);
  const Context ctx = Alloc();
  // Tables exhausted: nothing mapped, the error passed on (not retried read-write).
  unit.FailNext(Op::kMap, Status::NoMemory());
  EXPECT_EQ(MapMsiDoorbell(ctx, kSid, kDoorbell).status(), Status::NoMemory());
  EXPECT_EQ(unit.mapped_pages(unit.DomainOf(kSid)), 0U);
  // Mapped once; the second time -EEXIST, and the first mapping is untouched.
  ASSERT_TRUE(MapMsiDoorbell(ctx, kSid, kDoorbell).ok());
  EXPECT_EQ(MapMsiDoorbell(ctx, kSid, kDoorbell + 4).status(), Status::AlreadyExists());
  EXPECT_EQ(unit.mapped_pages(unit.DomainOf(kSid)), 1U);
}

TEST_F(MsiTest, APageMappedForSomethingElseIsRefused) {
  FakeUnit unit;
  Bind(unit);
  const Context ctx = Alloc();
  ASSERT_EQ(ctx.Map(kDoorbellPage, 0x4000'0000, kPage, kPermReadWrite), Status::Ok());
  EXPECT_EQ(MapMsiDoorbell(ctx, kSid, kDoorbell).status(), Status::AlreadyExists());
  const std::optional<FakeUnit::Page> page = unit.PageAt(unit.DomainOf(kSid), kDoorbellPage);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->pa, 0x4000'0000U);  // untouched
  EXPECT_EQ(page->type, MemType::kNormal);
}

TEST_F(MsiTest, UnmapBlocksTheDoorbellAgain) {
  FakeUnit unit;
  Bind(unit);
  const Context ctx = Alloc();
  ASSERT_TRUE(MapMsiDoorbell(ctx, kSid, kDoorbell).ok());
  EXPECT_EQ(UnmapMsiDoorbell(ctx, kSid, kDoorbell), Status::Ok());
  EXPECT_EQ(unit.mapped_pages(unit.DomainOf(kSid)), 0U);
  EXPECT_EQ(UnmapMsiDoorbell(ctx, kSid, kDoorbell), Status::NotFound());
}

// virtio-iommu's PROBE MSI region (virtio 1.2 5.13.6.8.2.1): MSIs pass untranslated, so
// nothing is mapped and the caller is told.
TEST_F(MsiTest, MsiReservedRegionIsABypassAndMapsNothing) {
  FakeUnit unit(FakeUnit::Options{
      .reserved = {ReservedRegion{0x0809'0000, 0x1'0000, ReservedRegion::Kind::kMsi}}});
  Bind(unit);
  const Context ctx = Alloc();
  const Result<MsiDoorbell> db = MapMsiDoorbell(ctx, kSid, kDoorbell);
  ASSERT_TRUE(db.ok()) << db.status().str();
  EXPECT_TRUE(db->bypass);
  EXPECT_EQ(db->iova, kDoorbell);
  EXPECT_EQ(db->page_size, 0U);
  EXPECT_EQ(unit.calls(Op::kMap), 0U);
  EXPECT_EQ(UnmapMsiDoorbell(ctx, kSid, kDoorbell), Status::Ok());
  EXPECT_EQ(unit.calls(Op::kUnmap), 0U);
  // A doorbell outside the region is mapped as usual.
  const Result<MsiDoorbell> elsewhere = MapMsiDoorbell(ctx, kSid, 0x0c00'0040);
  ASSERT_TRUE(elsewhere.ok());
  EXPECT_FALSE(elsewhere->bypass);
  EXPECT_EQ(unit.mapped_pages(unit.DomainOf(kSid)), 1U);
}

TEST_F(MsiTest, FaultingReservedRegionIsNotSupported) {
  FakeUnit unit(FakeUnit::Options{
      .reserved = {ReservedRegion{0x0800'0000, 0x20'0000, ReservedRegion::Kind::kReserved}}});
  Bind(unit);
  const Context ctx = Alloc();
  EXPECT_EQ(MapMsiDoorbell(ctx, kSid, kDoorbell).status(), Status::NotSupported());
  EXPECT_EQ(unit.calls(Op::kMap), 0U);
}

// The C calls, on Registry::Default().
TEST(MsiCApiTest, MapAndUnmapThroughTheCAbi) {
  FakeUnit unit(FakeUnit::Options{.name = "fake@msi", .max_sid = 0xff});
  ASSERT_EQ(Registry::Default().RegisterUnit(unit).ToC(), 0);
  device dev{"nvme0"};
  device other{"other"};
  const uint32_t sids[] = {kSid};
  ASSERT_EQ(deviso_device_bind(&dev, "fake@msi", sids, 1), 0);
  uint64_t iova = 1;
  int bypass = 7;
  // Arguments first, then the context: none of these reach the backend or touch the outputs.
  EXPECT_EQ(deviso_map_msi_doorbell(nullptr, kSid, kDoorbell, &iova, &bypass), -EINVAL);
  EXPECT_EQ(deviso_map_msi_doorbell(&dev, kSid, kDoorbell, nullptr, &bypass), -EINVAL);
  EXPECT_EQ(deviso_map_msi_doorbell(&dev, kSid, kDoorbell, &iova, nullptr), -EINVAL);
  EXPECT_EQ(deviso_map_msi_doorbell(&dev, kSid, kDoorbell, &iova, &bypass), -ENOENT);
  EXPECT_EQ(deviso_map_msi_doorbell(&dev, kSid + 1, kDoorbell, &iova, &bypass), -EINVAL);
  EXPECT_EQ(deviso_map_msi_doorbell(&other, kSid, kDoorbell, &iova, &bypass), -EINVAL);
  ASSERT_EQ(deviso_ctx_alloc(&dev, kSid), 0);
  EXPECT_EQ(deviso_map_msi_doorbell(&dev, kSid, kDoorbell + 1, &iova, &bypass), -EINVAL);
  EXPECT_EQ(iova, 1U);
  EXPECT_EQ(bypass, 7);
  EXPECT_EQ(unit.calls(Op::kMap), 0U);

  ASSERT_EQ(deviso_map_msi_doorbell(&dev, kSid, kDoorbell, &iova, &bypass), 0);
  EXPECT_EQ(iova, kDoorbell);
  EXPECT_EQ(bypass, 0);
  uint64_t pa = 0;
  EXPECT_EQ(deviso_iova_to_phys(&dev, kSid, kDoorbell, &pa), 0);
  EXPECT_EQ(pa, kDoorbell);
  EXPECT_EQ(deviso_map_msi_doorbell(&dev, kSid, kDoorbell, &iova, &bypass), -EEXIST);
  EXPECT_EQ(deviso_unmap_msi_doorbell(nullptr, kSid, kDoorbell), -EINVAL);
  EXPECT_EQ(deviso_unmap_msi_doorbell(&dev, kSid, kDoorbell), 0);
  EXPECT_EQ(deviso_iova_to_phys(&dev, kSid, kDoorbell, &pa), -ENOENT);
  EXPECT_EQ(deviso_unmap_msi_doorbell(&dev, kSid, kDoorbell), -ENOENT);

  EXPECT_EQ(deviso_ctx_free(&dev, kSid), 0);
  EXPECT_EQ(deviso_device_unbind(&dev), 0);
  EXPECT_EQ(Registry::Default().UnregisterUnit(unit).ToC(), 0);
}

// The C call on a unit whose MSI region covers the doorbell: 0, *bypass = 1, nothing mapped.
TEST(MsiCApiTest, BypassIsReportedThroughTheCAbi) {
  FakeUnit unit(FakeUnit::Options{
      .name = "fake@msi2",
      .max_sid = 0xff,
      .reserved = {ReservedRegion{0x0809'0000, 0x1'0000, ReservedRegion::Kind::kMsi}}});
  ASSERT_EQ(Registry::Default().RegisterUnit(unit).ToC(), 0);
  device dev{"nvme0"};
  const uint32_t sids[] = {kSid};
  ASSERT_EQ(deviso_device_bind(&dev, "fake@msi2", sids, 1), 0);
  ASSERT_EQ(deviso_ctx_alloc(&dev, kSid), 0);
  uint64_t iova = 0;
  int bypass = 0;
  EXPECT_EQ(deviso_map_msi_doorbell(&dev, kSid, kDoorbell, &iova, &bypass), 0);
  EXPECT_EQ(iova, kDoorbell);
  EXPECT_EQ(bypass, 1);
  EXPECT_EQ(unit.calls(Op::kMap), 0U);
  EXPECT_EQ(deviso_unmap_msi_doorbell(&dev, kSid, kDoorbell), 0);
  EXPECT_EQ(unit.calls(Op::kUnmap), 0U);
  EXPECT_EQ(deviso_ctx_free(&dev, kSid), 0);
  EXPECT_EQ(deviso_device_unbind(&dev), 0);
  EXPECT_EQ(Registry::Default().UnregisterUnit(unit).ToC(), 0);
}

}  // namespace
}  // namespace deviso
