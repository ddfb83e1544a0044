// Firmware-reserved regions (/reserved-memory iommu-addresses) on the host: what
// ReadIommuAddresses finds for each device of testdata/reserved_iommu.dts, and that
// AllocContextWithReservedRegions maps them, as described, in that device's new context before
// its stream is attached, and nowhere else (not for another device, not through a plain
// AllocContext). CTest label `dt`.

#include <gtest/gtest.h>

#include <vector>

extern "C" {
#include <libfdt.h>
}

#include "core/testing/fake_unit.h"
#include "deviso/registry.h"
#include "dt/bind.h"
#include "dt/devicetree.h"
#include "dt/dt_test_util.h"

namespace deviso::dt {
namespace {

using deviso::testing::FakeUnit;
using testing::LoadBlob;
using testing::Node;

class ReservedRegions : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(fdt_.empty());
    ASSERT_TRUE(registry_.RegisterUnit(smmu_).ok());
    units_[0] = {fdt_get_phandle(fdt_.data(), Node(fdt_, "/iommu@9050000")), &smmu_};
  }
  // Binds the node's device from its `iommus` (as the platform does).
  void Bind(const char* path, const device* dev) {
    const NodeDevice nodes[] = {{path, dev}};
    BindRequest r;
    r.fdt = fdt_.data();
    r.units = units_;
    r.nodes = nodes;
    DeviceStreams out[1];
    ASSERT_TRUE(BindFromDevicetree(registry_, r, out).ok()) << path;
  }
  Result<size_t> Read(const char* path, std::span<IommuAddressRegion> out) {
    return ReadIommuAddresses(fdt_.data(), Node(fdt_, path), out);
  }

  std::vector<uint8_t> fdt_ = LoadBlob("reserved_iommu");
  FakeUnit smmu_;
  Registry registry_;
  UnitEntry units_[1];
  device display_{"display"};
  device dma_{"dma"};
  device plain_{"plain"};
};

TEST_F(ReservedRegions, ReadsTheEntriesNamingTheDeviceInMemoryRegionOrder) {
  IommuAddressRegion r[kMaxIommuAddresses];
  const Result<size_t> n = Read("/display@20000000", r);
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, 3U);  // fb, fw, hole; not `other` (the dma engine's), not `plain` (none)
  EXPECT_EQ(r[0].node, Node(fdt_, "/reserved-memory/framebuffer@48000000"));
  EXPECT_TRUE(r[0].mapped);
  EXPECT_EQ(r[0].iova, 0x48000000U);
  EXPECT_EQ(r[0].pa, 0x48000000U);
  EXPECT_EQ(r[0].size, 0x200000U);
  EXPECT_TRUE(r[1].mapped);  // another device address for the firmware's memory
  EXPECT_EQ(r[1].iova, 0x80000000U);
  EXPECT_EQ(r[1].pa, 0x50000000U);
  EXPECT_EQ(r[1].size, 0x4000U);
  EXPECT_FALSE(r[2].mapped);  // no reg: a reservation
  EXPECT_EQ(r[2].iova, 0xf0000000U);
  EXPECT_EQ(r[2].size, 0x100000U);

  const Result<size_t> d = Read("/dma@21000000", r);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(*d, 2U);  // other, then its window of the framebuffer
  EXPECT_EQ(r[0].iova, 0x60000000U);
  EXPECT_EQ(r[1].iova, 0x10000000U);
  EXPECT_EQ(r[1].pa, 0x48000000U);
  EXPECT_EQ(r[1].size, 0x1000U);

  const Result<size_t> none = Read("/dev@22000000", r);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0U);
}

TEST_F(ReservedRegions, MalformedDescriptionsAreRefusedWithOutputUnchanged) {
  IommuAddressRegion r[kMaxIommuAddresses];
  r[0].iova = 0x1234;
  EXPECT_EQ(Read("/bad@23000000", r).status(), Status::InvalidArgument());  // not reserved-memory
  EXPECT_EQ(Read("/bad@24000000", r).status(), Status::InvalidArgument());  // larger than reg
  EXPECT_EQ(Read("/bad@25000000", r).status(), Status::InvalidArgument());  // truncated entry
  EXPECT_EQ(r[0].iova, 0x1234U);
  IommuAddressRegion two[2];
  EXPECT_EQ(Read("/display@20000000", two).status(), Status::NoMemory());
}

TEST_F(ReservedRegions, MappedInTheNewContextBeforeItsStreamIsAttached) {
  Bind("/display@20000000", &display_);
  Bind("/dma@21000000", &dma_);
  const Result<Context> ctx = AllocContextWithReservedRegions(
      registry_, fdt_.data(), Node(fdt_, "/display@20000000"), &display_, 0x20);
  ASSERT_TRUE(ctx.ok()) << ctx.status().str();
  const Domain* domain = smmu_.DomainOf(0x20);
  ASSERT_NE(domain, nullptr);
  // The framebuffer, identity, every page of it; the firmware at its other device address.
  for (uint64_t off = 0; off < 0x200000; off += 0x1000) {
    const auto page = smmu_.PageAt(domain, 0x48000000 + off);
    ASSERT_TRUE(page.has_value()) << off;
    EXPECT_EQ(page->pa, 0x48000000 + off);
    EXPECT_EQ(page->perms, kPermReadWrite);
  }
  EXPECT_EQ(ctx->IovaToPhys(0x80000000 + 0x3008).value_or(0), 0x50003008U);
  // Nothing else: not the reservation, not other devices' regions.
  EXPECT_FALSE(smmu_.PageAt(domain, 0xf0000000).has_value());
  EXPECT_FALSE(smmu_.PageAt(domain, 0x60000000).has_value());  // the dma engine's region
  EXPECT_FALSE(smmu_.PageAt(domain, 0x61000000).has_value());  // no iommu-addresses at all
  EXPECT_FALSE(smmu_.PageAt(domain, 0x10000000).has_value());  // dma's window, not display's
  EXPECT_EQ(ctx->IovaToPhys(0x80004000).status(), Status::NotFound());
  EXPECT_EQ(smmu_.calls(FakeUnit::Op::kAttach), 1U);
  EXPECT_EQ(registry_.FindContext(&display_, 0x20)->IovaToPhys(0x48000000).value_or(0),
            0x48000000U);

  // The other device's context has its own regions only.
  const Result<Context> dctx = AllocContextWithReservedRegions(
      registry_, fdt_.data(), Node(fdt_, "/dma@21000000"), &dma_, 0x21);
  ASSERT_TRUE(dctx.ok());
  EXPECT_EQ(dctx->IovaToPhys(0x10000000).value_or(0), 0x48000000U);
  EXPECT_EQ(dctx->IovaToPhys(0x60000000).value_or(0), 0x60000000U);
  EXPECT_EQ(dctx->IovaToPhys(0x48000000).status(), Status::NotFound());

  // FreeContext tears it down with its mappings; a plain AllocContext maps nothing.
  ASSERT_TRUE(registry_.FreeContext(&display_, 0x20).ok());
  EXPECT_EQ(smmu_.DomainOf(0x20), nullptr);
  const Result<Context> plain = registry_.AllocContext(&display_, 0x20);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->IovaToPhys(0x48000000).status(), Status::NotFound());
  EXPECT_EQ(smmu_.mapped_pages(smmu_.DomainOf(0x20)), 0U);
}

TEST_F(ReservedRegions, DeviceWithoutRegionsGetsAnEmptyContext) {
  Bind("/dev@22000000", &plain_);
  const Result<Context> ctx = AllocContextWithReservedRegions(
      registry_, fdt_.data(), Node(fdt_, "/dev@22000000"), &plain_, 0x22);
  ASSERT_TRUE(ctx.ok());
  EXPECT_EQ(smmu_.mapped_pages(smmu_.DomainOf(0x22)), 0U);
}

TEST_F(ReservedRegions, FailuresLeaveNoContextBehind) {
  Bind("/display@20000000", &display_);
  const int node = Node(fdt_, "/display@20000000");
  // Not its StreamID, or not bound: nothing created.
  EXPECT_EQ(AllocContextWithReservedRegions(registry_, fdt_.data(), node, &display_, 0x21).status(),
            Status::InvalidArgument());
  EXPECT_EQ(AllocContextWithReservedRegions(registry_, fdt_.data(), node, &dma_, 0x21).status(),
            Status::InvalidArgument());
  EXPECT_EQ(smmu_.calls(FakeUnit::Op::kCreateDomain), 0U);
  // The attach fails: the domain with its mappings is destroyed again.
  smmu_.FailNext(FakeUnit::Op::kAttach, Status::TimedOut());
  EXPECT_EQ(AllocContextWithReservedRegions(registry_, fdt_.data(), node, &display_, 0x20).status(),
            Status::TimedOut());
  EXPECT_EQ(smmu_.live_domains(), 0U);
  EXPECT_EQ(registry_.FindContext(&display_, 0x20).status(), Status::NotFound());
  // A map fails: the same, and the stream was never attached (the maps come first).
  const size_t attaches = smmu_.calls(FakeUnit::Op::kAttach);
  smmu_.FailNext(FakeUnit::Op::kMap, Status::NoMemory());
  EXPECT_EQ(AllocContextWithReservedRegions(registry_, fdt_.data(), node, &display_, 0x20).status(),
            Status::NoMemory());
  EXPECT_EQ(smmu_.live_domains(), 0U);
  EXPECT_EQ(smmu_.calls(FakeUnit::Op::kAttach), attaches);
  // A region the unit cannot map (half a page): refused, nothing left.
  device bad{"bad"};
  Bind("/bad@26000000", &bad);
  EXPECT_EQ(AllocContextWithReservedRegions(registry_, fdt_.data(), Node(fdt_, "/bad@26000000"),
                                            &bad, 0x26)
                .status(),
            Status::InvalidArgument());
  EXPECT_EQ(smmu_.live_domains(), 0U);
  // Already has a context: -EEXIST, and that context is untouched.
  ASSERT_TRUE(registry_.AllocContext(&display_, 0x20).ok());
  const size_t domains = smmu_.live_domains();
  EXPECT_EQ(AllocContextWithReservedRegions(registry_, fdt_.data(), node, &display_, 0x20).status(),
            Status::AlreadyExists());
  EXPECT_EQ(smmu_.live_domains(), domains);
  EXPECT_EQ(smmu_.mapped_pages(smmu_.DomainOf(0x20)), 0U);
}

}  // namespace
}  // namespace deviso::dt
