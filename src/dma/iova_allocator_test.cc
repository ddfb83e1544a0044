// Unit tests of the reserved windows and the IOVA allocator (CTest label `pool`).

#include "dma/iova_allocator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace deviso::dma {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kMiB = 1u << 20;

// A unit that reports fixed reserved regions (as virtio-iommu's PROBE would).
class ReservingUnit final : public IsolationUnit {
 public:
  explicit ReservingUnit(std::vector<ReservedRegion> regions) : regions_(std::move(regions)) {}
  const UnitCaps& caps() const override { return caps_; }
  size_t ReservedRegions(uint32_t sid, std::span<ReservedRegion> out) const override {
    last_sid = sid;
    for (size_t i = 0; i < regions_.size() && i < out.size(); ++i) out[i] = regions_[i];
    return regions_.size();
  }
  Status ValidateStream(uint32_t) const override { return Status::Ok(); }
  Result<Domain*> CreateDomain(const DomainOptions&, FaultSink*) override {
    return Status::NotSupported();
  }
  Status DestroyDomain(Domain*) override { return Status::NotSupported(); }
  Status Attach(Domain*, uint32_t) override { return Status::NotSupported(); }
  Status Detach(Domain*, uint32_t) override { return Status::NotSupported(); }
  Status Map(Domain*, Iova, Paddr, uint64_t, Perms, MemType) override {
    return Status::NotSupported();
  }
  Status Unmap(Domain*, Iova, uint64_t) override { return Status::NotSupported(); }
  Result<Paddr> IovaToPhys(Domain*, Iova) override { return Status::NotSupported(); }
  mutable uint32_t last_sid = 0;

 private:
  UnitCaps caps_;
  std::vector<ReservedRegion> regions_;
};

TEST(ReservedWindows, OverlapIsInclusiveOfEdgesAndHandlesTheTopOfTheSpace) {
  ReservedWindows w;
  ASSERT_TRUE(w.Add(0x1000'0000, 0x2eff'0000).ok());  // QEMU virt's 32-bit PCI MMIO window
  ASSERT_TRUE(w.Add(0xffff'ffff'ffff'0000ULL, 0x1'0000).ok()) << "ends exactly at 2^64";
  EXPECT_EQ(w.Add(0xffff'ffff'ffff'0000ULL, 0x1'0001), Status::InvalidArgument());
  EXPECT_EQ(w.Add(0x1000, 0), Status::InvalidArgument());
  EXPECT_FALSE(w.Overlaps(0x0fff'f000, kPage)) << "ends just below the window";
  EXPECT_TRUE(w.Overlaps(0x0fff'f000, kPage + 1));
  EXPECT_TRUE(w.Overlaps(0x3eff'0000 - kPage, kPage)) << "the window's last page";
  EXPECT_FALSE(w.Overlaps(0x3eff'0000, kPage)) << "just past it";
  EXPECT_TRUE(w.Overlaps(0xffff'ffff'ffff'f000ULL, kPage));
  EXPECT_TRUE(w.Overlaps(0xffff'ffff'ffff'f000ULL, 2 * kPage)) << "a wrapping range";
}

TEST(ReservedWindows, CapacityIsNoMemory) {
  ReservedWindows w;
  for (size_t i = 0; i < ReservedWindows::kMaxWindows; ++i) {
    ASSERT_TRUE(w.Add(i * kMiB, kPage).ok());
  }
  EXPECT_EQ(w.Add(0x4000'0000, kPage), Status::NoMemory());
  EXPECT_EQ(w.windows().size(), ReservedWindows::kMaxWindows);
}

TEST(ReservedWindows, FromTheUnit) {
  ReservingUnit unit({{0x0800'0000, kMiB, ReservedRegion::Kind::kMsi},
                      {0xfee0'0000, kMiB, ReservedRegion::Kind::kReserved}});
  ReservedWindows w;
  ASSERT_TRUE(w.AddFromUnit(unit, 0x10).ok());
  EXPECT_EQ(unit.last_sid, 0x10U);
  EXPECT_TRUE(w.Overlaps(0x0800'0000, kPage)) << "an MSI window is not isolated either";
  EXPECT_TRUE(w.Overlaps(0xfee0'0000 + kMiB - kPage, kPage));
  EXPECT_FALSE(w.Overlaps(0x0810'0000, kPage));

  ReservingUnit bad({{0x1000, 0, ReservedRegion::Kind::kReserved}});
  ReservedWindows w2;
  EXPECT_EQ(w2.AddFromUnit(bad, 0), Status::InvalidArgument());
  EXPECT_TRUE(w2.windows().empty());
  ReservingUnit many(std::vector<ReservedRegion>(ReservedWindows::kMaxUnitRegions + 1,
                                                 {0x1000, kPage, ReservedRegion::Kind::kMsi}));
  EXPECT_EQ(w2.AddFromUnit(many, 0), Status::NoMemory());
  EXPECT_TRUE(w2.windows().empty()) << "nothing added on error";
}

TEST(IovaAllocator, FirstFitAlignedAndExactFree) {
  StaticIovaAllocator<8> a(0x100'0000, 16 * kMiB, kPage, nullptr);
  ASSERT_TRUE(a.valid());
  Result<Iova> x = a.Alloc(kPage);
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(*x, 0x100'0000U);
  Result<Iova> y = a.Alloc(100);  // rounded up to a page
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(*y, 0x100'1000U);
  Result<Iova> big = a.Alloc(2 * kMiB, 2 * kMiB);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(*big, 0x120'0000U) << "the first 2 MiB boundary after the two pages";
  EXPECT_EQ(a.Free(*y, 2 * kPage), Status::NotFound()) << "not the size allocated";
  EXPECT_EQ(a.Free(*y + kPage, kPage), Status::NotFound());
  ASSERT_TRUE(a.Free(*y, 100).ok());
  EXPECT_EQ(a.Free(*y, 100), Status::NotFound()) << "double free";
  Result<Iova> again = a.Alloc(kPage);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *y) << "the hole is reused";
  EXPECT_EQ(a.allocated_ranges(), 3U);
  EXPECT_EQ(a.Alloc(kPage, 3).status(), Status::InvalidArgument());
  EXPECT_EQ(a.Alloc(0).status(), Status::InvalidArgument());
}

TEST(IovaAllocator, ExhaustionOfTheWindowAndOfTheStorage) {
  StaticIovaAllocator<2> a(0, 4 * kPage, kPage, nullptr);
  ASSERT_TRUE(a.Alloc(3 * kPage).ok());
  EXPECT_EQ(a.Alloc(2 * kPage).status(), Status::NoMemory()) << "one page left";
  ASSERT_TRUE(a.Alloc(kPage).ok());
  EXPECT_EQ(a.Alloc(kPage).status(), Status::NoMemory());
  StaticIovaAllocator<1> b(0, 16 * kPage, kPage, nullptr);
  ASSERT_TRUE(b.Alloc(kPage).ok());
  EXPECT_EQ(b.Alloc(kPage).status(), Status::NoMemory()) << "storage for one range";
  EXPECT_EQ(b.Alloc(32 * kPage).status(), Status::NoMemory()) << "larger than the window";
}

TEST(IovaAllocator, KeepsOutOfEveryReservedWindow) {
  // The window spans QEMU virt's PCI MMIO window and an IOMMU MSI region.
  ReservedWindows reserved;
  ASSERT_TRUE(reserved.Add(0x1000'0000, 0x2eff'0000).ok());
  ReservingUnit unit({{0x0800'0000, 0x10'0000, ReservedRegion::Kind::kMsi}});
  ASSERT_TRUE(reserved.AddFromUnit(unit, 0).ok());
  StaticIovaAllocator<64> a(0x07f0'0000, 0x8000'0000 - 0x07f0'0000, kPage, &reserved);
  // [0x07f0_0000, 0x0800_0000) is 1 MiB before the MSI window.
  Result<Iova> first = a.Alloc(kMiB);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, 0x07f0'0000U);
  Result<Iova> second = a.Alloc(2 * kMiB);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, 0x0810'0000U) << "past the MSI window";
  // 0x0830_0000..0x1000_0000 is 125 MiB; 128 MiB must skip the PCI window entirely.
  Result<Iova> large = a.Alloc(128 * kMiB);
  ASSERT_TRUE(large.ok());
  EXPECT_EQ(*large, 0x3eff'0000U) << "placed after the PCI MMIO window";
  EXPECT_FALSE(reserved.Overlaps(*large, 128 * kMiB));
  // Fill the window page by page: no page ever lands in a reserved window.
  int pages = 0;
  for (;;) {
    Result<Iova> p = a.Alloc(kPage);
    if (!p.ok()) {
      EXPECT_EQ(p.status(), Status::NoMemory());
      break;
    }
    EXPECT_FALSE(reserved.Overlaps(*p, kPage)) << std::hex << *p;
    ++pages;
    if (pages == 50) break;  // storage (64) is the limit otherwise
  }
  EXPECT_EQ(pages, 50);
}

TEST(IovaAllocator, AWindowAtTheTopOfTheAddressSpace) {
  const Iova base = 0xffff'ffff'fff0'0000ULL;
  StaticIovaAllocator<4> a(base, kMiB, kPage, nullptr);
  ASSERT_TRUE(a.valid());
  Result<Iova> all = a.Alloc(kMiB);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, base);
  EXPECT_EQ(a.Alloc(kPage).status(), Status::NoMemory());
  ASSERT_TRUE(a.Free(base, kMiB).ok());
  EXPECT_FALSE(StaticIovaAllocator<1>(base, 2 * kMiB, kPage, nullptr).valid()) << "wraps";
  EXPECT_FALSE(StaticIovaAllocator<1>(0x800, kMiB, kPage, nullptr).valid()) << "unaligned";
}

}  // namespace
}  // namespace deviso::dma
