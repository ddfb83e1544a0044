// The device-bound pool (both modes, both addressings) and the DMA-driver hook against the fake
// unit (src/core/testing): what is mapped, with which permissions and memory type, when it is
// unmapped, which cache maintenance is called, and the errors (CTest label `pool`).

#include "dma/device_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "core/testing/fake_unit.h"
#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "dma/dma_mapper.h"

namespace deviso::dma {
namespace {

using drivers::DmaDirection;
using drivers::DmaMapping;
using drivers::DmaRegion;
using testing::FakeUnit;

constexpr uint64_t kPage = 4096;
constexpr uint64_t k2MiB = 2u << 20;
constexpr Paddr kPoolPa = 0x4020'0000;  // 2 MiB-aligned, as a platform's DMA carve-out
constexpr size_t kPoolBytes = 4u << 20;
constexpr uint32_t kSid = 0x10;

struct CacheCall {
  bool clean;
  Paddr pa;
  size_t size;
  bool operator==(const CacheCall&) const = default;
};

// The whole set-up: a fake unit, a registry with one device and its context, and a pool of
// 4 KiB blocks over a 2 MiB-aligned buffer standing for physical memory at kPoolPa.
class Fixture : public ::testing::Test {
 protected:
  Fixture()
      : buffer_(static_cast<uint8_t*>(std::aligned_alloc(k2MiB, kPoolBytes))),
        bitmap_(BitmapWords(kPoolBytes / kPage)),
        blocks_(buffer_.get(), kPoolPa, kPage, kPoolBytes / kPage, bitmap_.data()) {}

  void SetUp() override {
    ASSERT_TRUE(registry_.RegisterUnit(unit_).ok());
    ASSERT_TRUE(registry_.BindDevice(&dev_, unit_, {&kSid, 1}).ok());
    Result<Context> ctx = registry_.AllocContext(&dev_, kSid);
    ASSERT_TRUE(ctx.ok());
    ctx_ = *ctx;
    ASSERT_TRUE(reserved_.Add(0x1000'0000, 0x2eff'0000).ok());  // the PCI MMIO window
  }

  DeviceBinding Binding(Addressing addressing, bool coherent = true) {
    DeviceBinding b;
    b.context = ctx_;
    b.addressing = addressing;
    b.iova = &iova_;
    b.reserved = &reserved_;
    b.coherent = coherent;
    b.cache.user = &cache_calls_;
    b.cache.clean = [](void* user, Paddr pa, size_t size) {
      static_cast<std::vector<CacheCall>*>(user)->push_back({true, pa, size});
    };
    b.cache.invalidate = [](void* user, Paddr pa, size_t size) {
      static_cast<std::vector<CacheCall>*>(user)->push_back({false, pa, size});
    };
    return b;
  }
  const Domain* domain() const { return unit_.DomainOf(kSid); }
  Paddr PaOf(const void* cpu) const { return blocks_.PaOf(cpu); }

  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t[], FreeDeleter> buffer_;
  std::vector<uint64_t> bitmap_;
  BlockPool blocks_;
  FakeUnit unit_;
  Registry registry_;
  device dev_{"dev"};
  Context ctx_;
  ReservedWindows reserved_;
  // Device addresses 0x1000_0000.. would be in the PCI window; the allocator avoids it.
  StaticIovaAllocator<32> iova_{0x0f00'0000, 0x4000'0000, kPage, &reserved_};
  std::vector<CacheCall> cache_calls_;
};

using DevicePoolTest = Fixture;

TEST_F(DevicePoolTest, StrictIdentityMapsEachAllocationAndUnmapsItOnFree) {
  StaticDevicePool<8> pool(blocks_);
  ASSERT_TRUE(pool->Bind(PoolMode::kStrict, Binding(Addressing::kIdentity)).ok());
  EXPECT_EQ(unit_.mapped_pages(domain()), 0U) << "nothing mapped at bind";
  std::memset(buffer_.get(), 0xaa, 3 * kPage);
  Result<DmaRegion> r = pool->Alloc(5000, 8);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size, 2 * kPage) << "whole blocks: no sub-page exposure";
  EXPECT_EQ(r->device_addr, PaOf(r->cpu)) << "identity";
  EXPECT_EQ(static_cast<uint8_t*>(r->cpu)[0], 0) << "zeroed";
  EXPECT_EQ(static_cast<uint8_t*>(r->cpu)[2 * kPage - 1], 0);
  EXPECT_EQ(unit_.mapped_pages(domain()), 2U);
  const auto page = unit_.PageAt(domain(), r->device_addr + kPage);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->pa, PaOf(r->cpu) + kPage);
  EXPECT_EQ(page->perms, kPermReadWrite);
  EXPECT_EQ(page->type, MemType::kNormal) << "coherent device";
  EXPECT_TRUE(cache_calls_.empty()) << "no cache maintenance for a coherent device";
  const size_t unmaps = unit_.calls(FakeUnit::Op::kUnmap);
  ASSERT_TRUE(pool->Release(*r).ok());
  EXPECT_EQ(unit_.calls(FakeUnit::Op::kUnmap), unmaps + 1);
  EXPECT_EQ(unit_.mapped_pages(domain()), 0U) << "strict: unmapped before reuse";
  EXPECT_EQ(blocks_.free_blocks(), blocks_.block_count());
  EXPECT_TRUE(pool->Unbind().ok());
}

TEST_F(DevicePoolTest, StrictTranslatedUsesTheAllocatorsAddresses) {
  StaticDevicePool<8> pool(blocks_);
  ASSERT_TRUE(pool->Bind(PoolMode::kStrict, Binding(Addressing::kTranslated)).ok());
  Result<DmaRegion> a = pool->Alloc(kPage, 0);
  Result<DmaRegion> b = pool->Alloc(3 * kPage, 16384);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->device_addr, 0x0f00'0000U);
  EXPECT_EQ(b->device_addr % 16384, 0U);
  EXPECT_EQ(PaOf(b->cpu) % 16384, 0U);
  EXPECT_FALSE(reserved_.Overlaps(b->device_addr, b->size));
  EXPECT_EQ(ctx_.IovaToPhys(b->device_addr + 2 * kPage + 4).value_or(0),
            PaOf(b->cpu) + 2 * kPage + 4);
  EXPECT_EQ(iova_.allocated_ranges(), 2U);
  ASSERT_TRUE(pool->Release(*a).ok());
  ASSERT_TRUE(pool->Release(*b).ok());
  EXPECT_EQ(iova_.allocated_ranges(), 0U) << "device addresses returned after the unmap";
  EXPECT_EQ(unit_.mapped_pages(domain()), 0U);
}

TEST_F(DevicePoolTest, PoolWideMapsOnceAndFreedBlocksStayReachable) {
  for (const Addressing addressing : {Addressing::kIdentity, Addressing::kTranslated}) {
    SCOPED_TRACE(addressing == Addressing::kIdentity ? "identity" : "translated");
    StaticDevicePool<8> pool(blocks_);
    ASSERT_TRUE(pool->Bind(PoolMode::kPoolWide, Binding(addressing)).ok());
    EXPECT_EQ(pool->Bind(PoolMode::kPoolWide, Binding(addressing)), Status::AlreadyExists());
    EXPECT_EQ(unit_.mapped_pages(domain()), kPoolBytes / kPage);
    EXPECT_EQ(pool->device_base() % k2MiB, 0U);
    EXPECT_EQ(pool->device_base(), addressing == Addressing::kIdentity ? kPoolPa : 0x0f00'0000U);
    const size_t maps = unit_.calls(FakeUnit::Op::kMap);
    const size_t unmaps = unit_.calls(FakeUnit::Op::kUnmap);
    Result<DmaRegion> r = pool->Alloc(kPage, 0);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->device_addr, pool->device_base() + (PaOf(r->cpu) - kPoolPa));
    ASSERT_TRUE(pool->Release(*r).ok());
    EXPECT_EQ(unit_.calls(FakeUnit::Op::kMap), maps) << "no table change per allocation";
    EXPECT_EQ(unit_.calls(FakeUnit::Op::kUnmap), unmaps);
    EXPECT_TRUE(unit_.PageAt(domain(), r->device_addr).has_value())
        << "the documented trade-off: a freed block stays reachable";
    Result<DmaRegion> live = pool->Alloc(kPage, 0);
    ASSERT_TRUE(live.ok());
    EXPECT_EQ(pool->Unbind(), Status::Busy());
    ASSERT_TRUE(pool->Release(*live).ok());
    ASSERT_TRUE(pool->Unbind().ok());
    EXPECT_EQ(unit_.mapped_pages(domain()), 0U);
    EXPECT_EQ(iova_.allocated_ranges(), 0U);
  }
}

TEST_F(DevicePoolTest, PoolWideNeedsTwoMiBAlignmentAndSize) {
  uint64_t bitmap[BitmapWords(512)] = {};
  BlockPool shifted(buffer_.get(), kPoolPa + kPage, kPage, 256, bitmap);
  StaticDevicePool<4> a(shifted);
  EXPECT_EQ(a->Bind(PoolMode::kPoolWide, Binding(Addressing::kIdentity)),
            Status::InvalidArgument());
  BlockPool short_pool(buffer_.get(), kPoolPa, kPage, 256 + 1, bitmap);
  StaticDevicePool<4> b(short_pool);
  EXPECT_EQ(b->Bind(PoolMode::kPoolWide, Binding(Addressing::kIdentity)),
            Status::InvalidArgument());
  EXPECT_TRUE(b->Bind(PoolMode::kStrict, Binding(Addressing::kIdentity)).ok()) << "strict: any";
  EXPECT_EQ(unit_.mapped_pages(domain()), 0U);
}

TEST_F(DevicePoolTest, IdentityRefusesAPoolInAReservedWindow) {
  ReservedWindows over_pool;
  ASSERT_TRUE(over_pool.Add(kPoolPa + kPage, kPage).ok());
  DeviceBinding b = Binding(Addressing::kIdentity);
  b.reserved = &over_pool;
  StaticDevicePool<4> wide(blocks_);
  EXPECT_EQ(wide->Bind(PoolMode::kPoolWide, b), Status::InvalidArgument());
  StaticDevicePool<4> strict(blocks_);
  ASSERT_TRUE(strict->Bind(PoolMode::kStrict, b).ok());
  Result<DmaRegion> first = strict->Alloc(kPage, 0);  // block 0: outside the window
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(strict->Alloc(kPage, 0).status(), Status::InvalidArgument()) << "block 1 is in it";
  EXPECT_EQ(blocks_.free_blocks(), blocks_.block_count() - 1) << "nothing kept on error";
  EXPECT_EQ(unit_.mapped_pages(domain()), 1U);
  ASSERT_TRUE(strict->Release(*first).ok());
}

TEST_F(DevicePoolTest, NonCoherentDeviceGetsNonCacheableMappingsAndCacheMaintenance) {
  StaticDevicePool<4> pool(blocks_);
  ASSERT_TRUE(pool->Bind(PoolMode::kStrict, Binding(Addressing::kTranslated, false)).ok());
  Result<DmaRegion> r = pool->Alloc(2 * kPage, 0);
  ASSERT_TRUE(r.ok());
  const Paddr pa = PaOf(r->cpu);
  EXPECT_EQ(unit_.PageAt(domain(), r->device_addr)->type, MemType::kNormalNonCacheable);
  ASSERT_EQ(cache_calls_.size(), 1U);
  EXPECT_EQ(cache_calls_[0], (CacheCall{true, pa, 2 * kPage})) << "the zeroes cleaned";
  cache_calls_.clear();
  pool->SyncForDevice(*r, 100, 200);
  pool->SyncForCpu(*r, kPage, kPage);
  pool->SyncForCpu(*r, kPage, 2 * kPage);  // beyond the region: ignored
  DmaRegion stranger = *r;
  stranger.device_addr += kPage;
  pool->SyncForDevice(stranger, 0, 1);  // not a live region: ignored
  ASSERT_EQ(cache_calls_.size(), 2U);
  EXPECT_EQ(cache_calls_[0], (CacheCall{true, pa + 100, 200}));
  EXPECT_EQ(cache_calls_[1], (CacheCall{false, pa + kPage, kPage}));
  ASSERT_TRUE(pool->Release(*r).ok());
}

TEST_F(DevicePoolTest, ExhaustionIsNoMemoryAndNothingLeaks) {
  StaticDevicePool<4> pool(blocks_);
  ASSERT_TRUE(pool->Bind(PoolMode::kStrict, Binding(Addressing::kIdentity)).ok());
  EXPECT_EQ(pool->Alloc(kPoolBytes + 1, 0).status(), Status::NoMemory());
  std::vector<DmaRegion> held;
  for (int i = 0; i < 4; ++i) {
    Result<DmaRegion> r = pool->Alloc(kPage, 0);
    ASSERT_TRUE(r.ok());
    held.push_back(*r);
  }
  EXPECT_EQ(pool->Alloc(kPage, 0).status(), Status::NoMemory()) << "records full";
  for (const DmaRegion& r : held) ASSERT_TRUE(pool->Release(r).ok());
  Result<DmaRegion> all = pool->Alloc(kPoolBytes, 0);
  ASSERT_TRUE(all.ok()) << "the whole pool at once";
  EXPECT_EQ(pool->Alloc(kPage, 0).status(), Status::NoMemory()) << "no blocks";
  ASSERT_TRUE(pool->Release(*all).ok());
  EXPECT_EQ(blocks_.free_blocks(), blocks_.block_count());
  EXPECT_EQ(unit_.mapped_pages(domain()), 0U);
}

TEST_F(DevicePoolTest, DoubleFreeAndForeignRegionsFailAndCorruptNothing) {
  StaticDevicePool<8> pool(blocks_);
  ASSERT_TRUE(pool->Bind(PoolMode::kStrict, Binding(Addressing::kTranslated)).ok());
  Result<DmaRegion> a = pool->Alloc(2 * kPage, 0);
  Result<DmaRegion> b = pool->Alloc(kPage, 0);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(pool->Release(*a).ok());
  EXPECT_EQ(pool->Release(*a), Status::NotFound()) << "double free";
  DmaRegion half = *b;
  half.size = kPage / 2;
  EXPECT_EQ(pool->Release(half), Status::NotFound()) << "not as allocated";
  DmaRegion moved = *b;
  moved.device_addr += kPage;
  EXPECT_EQ(pool->Release(moved), Status::NotFound()) << "wrong device address";
  static uint8_t elsewhere[64];
  EXPECT_EQ(pool->Release(DmaRegion{elsewhere, 0x1234000, kPage}), Status::InvalidArgument());
  pool->Free(*a);  // the DmaAllocator seam counts what it cannot report
  EXPECT_EQ(pool->free_errors(), 1U);
  // Nothing was corrupted: b is still mapped and live, everything else is free.
  EXPECT_EQ(pool->live_allocations(), 1U);
  EXPECT_EQ(unit_.mapped_pages(domain()), 1U);
  EXPECT_EQ(ctx_.IovaToPhys(b->device_addr).value_or(0), PaOf(b->cpu));
  EXPECT_EQ(blocks_.free_blocks(), blocks_.block_count() - 1);
  // And the pool still works.
  Result<DmaRegion> c = pool->Alloc(3 * kPage, 0);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(pool->Release(*b).ok());
  ASSERT_TRUE(pool->Release(*c).ok());
  EXPECT_EQ(blocks_.free_blocks(), blocks_.block_count());
  EXPECT_EQ(iova_.allocated_ranges(), 0U);
}

TEST_F(DevicePoolTest, FailedMapKeepsNothingAndUnconfirmedUnmapLeaks) {
  StaticDevicePool<8> pool(blocks_);
  ASSERT_TRUE(pool->Bind(PoolMode::kStrict, Binding(Addressing::kTranslated)).ok());
  unit_.FailNext(FakeUnit::Op::kMap, Status::NoMemory());
  EXPECT_EQ(pool->Alloc(kPage, 0).status(), Status::NoMemory());
  EXPECT_EQ(blocks_.free_blocks(), blocks_.block_count());
  EXPECT_EQ(iova_.allocated_ranges(), 0U);
  EXPECT_EQ(pool->live_allocations(), 0U);

  Result<DmaRegion> r = pool->Alloc(kPage, 0);
  ASSERT_TRUE(r.ok());
  unit_.FailNext(FakeUnit::Op::kUnmap, Status::TimedOut());
  EXPECT_EQ(pool->Release(*r), Status::TimedOut());
  EXPECT_EQ(pool->leaked_blocks(), 1U);
  EXPECT_EQ(blocks_.free_blocks(), blocks_.block_count() - 1) << "never reused";
  EXPECT_EQ(iova_.allocated_ranges(), 1U) << "nor its device address";
  EXPECT_EQ(pool->Release(*r), Status::NotFound());
  EXPECT_EQ(pool->Unbind(), Status::Busy());
}

TEST_F(DevicePoolTest, AllocBlocksGivesSeparatelyMappedBlocksAllOrNothing) {
  StaticDevicePool<8> pool(blocks_);
  ASSERT_TRUE(pool->Bind(PoolMode::kStrict, Binding(Addressing::kTranslated)).ok());
  DmaRegion regions[3];
  ASSERT_TRUE(pool->AllocBlocks(regions).ok());
  for (const DmaRegion& r : regions) {
    EXPECT_EQ(r.size, kPage);
    EXPECT_EQ(ctx_.IovaToPhys(r.device_addr).value_or(0), PaOf(r.cpu));
  }
  EXPECT_EQ(unit_.mapped_pages(domain()), 3U);
  DmaRegion too_many[6];
  EXPECT_EQ(pool->AllocBlocks(too_many), Status::NoMemory()) << "5 records left";
  for (const DmaRegion& r : regions) ASSERT_TRUE(pool->Release(r).ok());
  // A map failing part-way gives back what the call took: the second block's device address
  // (the allocator's next, first fit) is already mapped in the context by someone else.
  ASSERT_TRUE(ctx_.Map(0x0f00'1000, 0x7000'0000, kPage, kPermRead).ok());
  DmaRegion two[2];
  EXPECT_EQ(pool->AllocBlocks(two), Status::AlreadyExists());
  EXPECT_EQ(unit_.mapped_pages(domain()), 1U) << "only the foreign page";
  EXPECT_EQ(blocks_.free_blocks(), blocks_.block_count());
  EXPECT_EQ(iova_.allocated_ranges(), 0U);
  EXPECT_EQ(pool->live_allocations(), 0U);
  ASSERT_TRUE(ctx_.Unmap(0x0f00'1000, kPage).ok());
  ASSERT_TRUE(pool->AllocBlocks(two).ok());
  for (const DmaRegion& r : two) ASSERT_TRUE(pool->Release(r).ok());
  EXPECT_EQ(unit_.mapped_pages(domain()), 0U);
}

TEST_F(DevicePoolTest, BindChecksTheBinding) {
  StaticDevicePool<4> pool(blocks_);
  DeviceBinding none = Binding(Addressing::kIdentity);
  none.context = Context();
  EXPECT_EQ(pool->Bind(PoolMode::kStrict, none), Status::InvalidArgument());
  DeviceBinding no_allocator = Binding(Addressing::kTranslated);
  no_allocator.iova = nullptr;
  EXPECT_EQ(pool->Bind(PoolMode::kStrict, no_allocator), Status::InvalidArgument());
  EXPECT_EQ(pool->Alloc(kPage, 0).status(), Status::InvalidArgument()) << "not bound";
  EXPECT_EQ(pool->Unbind(), Status::NotFound());
  EXPECT_FALSE(pool->bound());
}

// ---- The DMA-driver hook --------------------------------------------------------------------

using ContextDmaMapperTest = Fixture;

TEST_F(ContextDmaMapperTest, PermissionsFollowTheDirection) {
  StaticContextDmaMapper<4> mapper(Binding(Addressing::kIdentity));
  EXPECT_EQ(mapper.page_size(), kPage);
  Result<DmaMapping> to = mapper.MapForDevice(kPoolPa, kPage, DmaDirection::kToDevice);
  Result<DmaMapping> from = mapper.MapForDevice(kPoolPa + kPage, kPage, DmaDirection::kFromDevice);
  Result<DmaMapping> both =
      mapper.MapForDevice(kPoolPa + 2 * kPage, 2 * kPage, DmaDirection::kBidirectional);
  ASSERT_TRUE(to.ok() && from.ok() && both.ok());
  EXPECT_EQ(to->device_addr, kPoolPa);
  EXPECT_EQ(unit_.PageAt(domain(), to->device_addr)->perms, kPermRead);
  EXPECT_EQ(unit_.PageAt(domain(), from->device_addr)->perms, kPermReadWrite)
      << "stage 1 has no write-only: read-write over the buffer's own page";
  EXPECT_EQ(unit_.PageAt(domain(), both->device_addr + kPage)->perms, kPermReadWrite);
  EXPECT_EQ(mapper.live_mappings(), 3U);
  for (const auto* m : {&to, &from, &both}) ASSERT_TRUE(mapper.UnmapForDevice(**m).ok());
  EXPECT_EQ(unit_.mapped_pages(domain()), 0U);
  EXPECT_EQ(mapper.live_mappings(), 0U);
}

TEST_F(ContextDmaMapperTest, CacheMaintenanceAroundTransfers) {
  StaticContextDmaMapper<4> mapper(Binding(Addressing::kTranslated, false));
  Result<DmaMapping> to = mapper.MapForDevice(kPoolPa, kPage, DmaDirection::kToDevice);
  Result<DmaMapping> from =
      mapper.MapForDevice(kPoolPa + kPage, 2 * kPage, DmaDirection::kFromDevice);
  ASSERT_TRUE(to.ok() && from.ok());
  EXPECT_EQ(unit_.PageAt(domain(), to->device_addr)->type, MemType::kNormalNonCacheable);
  ASSERT_TRUE(mapper.UnmapForDevice(*to).ok());
  ASSERT_TRUE(mapper.UnmapForDevice(*from).ok());
  const std::vector<CacheCall> want = {
      {true, kPoolPa, kPage},               // map, to-device: clean
      {true, kPoolPa + kPage, 2 * kPage},   // map, from-device: clean too (no later write-back)
      {false, kPoolPa + kPage, 2 * kPage},  // unmap, from-device: invalidate
  };
  EXPECT_EQ(cache_calls_, want) << "to-device needs no invalidate at unmap";
}

TEST_F(ContextDmaMapperTest, TranslatedAddressesAvoidReservedWindows) {
  StaticContextDmaMapper<8> mapper(Binding(Addressing::kTranslated));
  // The allocator's window starts 16 MiB below the PCI window: 16 MiB fit, the next one not.
  Result<DmaMapping> low = mapper.MapForDevice(kPoolPa, 16u << 20, DmaDirection::kToDevice);
  Result<DmaMapping> next = mapper.MapForDevice(0x5000'0000, kPage, DmaDirection::kToDevice);
  ASSERT_TRUE(low.ok() && next.ok());
  EXPECT_EQ(low->device_addr, 0x0f00'0000U);
  EXPECT_EQ(next->device_addr, 0x3eff'0000U) << "past the PCI MMIO window";
  EXPECT_EQ(ctx_.IovaToPhys(next->device_addr).value_or(0), 0x5000'0000U);
}

// LeafAlignment: the largest power of two dividing pa, at most the size and 1 GiB.
TEST(LeafAlignment, FollowsThePhysicalAlignmentUpToTheSize) {
  struct Case {
    Paddr pa;
    uint64_t size;
    uint64_t want;
  };
  for (const Case& c : {
           Case{0x4020'0000, k2MiB, k2MiB},            // 2 MiB-aligned 2 MiB: a block
           Case{0x4020'0000, 16u << 20, k2MiB},        // 0x4020'0000 = 2^21 * 0x201
           Case{0x4000'0000, 4ULL << 30, 1ULL << 30},  // capped at kMaxLeafAlign
           Case{0x4020'1000, k2MiB, kPage},            // pa only page-aligned
           Case{0x4021'0000, 1u << 20, 64u << 10},     // 0x4021'0000 = 2^16 * 0x4021
           Case{0x4020'0000, 3 * kPage, 2 * kPage},    // not above the size
           Case{0, 8 * kPage, 8 * kPage},              // 0 is aligned to everything
       }) {
    EXPECT_EQ(DeviceBinding::LeafAlignment(c.pa, c.size), c.want)
        << std::hex << c.pa << " size " << c.size;
  }
}

// With a page mapped at the window's start (a ring, say), first fit at page alignment would put
// every later buffer 4 KiB off any block boundary: the hook aligns device addresses as the
// buffer's physical address, so the engine can use blocks and contiguous runs.
TEST_F(ContextDmaMapperTest, TranslatedAddressesAreAlignedForLargeLeaves) {
  StaticContextDmaMapper<8> mapper(Binding(Addressing::kTranslated));
  Result<DmaMapping> ring = mapper.MapForDevice(0x5000'0000, kPage, DmaDirection::kToDevice);
  Result<DmaMapping> big = mapper.MapForDevice(kPoolPa, k2MiB, DmaDirection::kToDevice);
  Result<DmaMapping> mid =
      mapper.MapForDevice(0x5001'0000, 64u << 10, DmaDirection::kBidirectional);
  ASSERT_TRUE(ring.ok() && big.ok() && mid.ok());
  EXPECT_EQ(ring->device_addr, 0x0f00'0000U);
  EXPECT_EQ(big->device_addr, 0x0f20'0000U) << "2 MiB-aligned like its physical address";
  EXPECT_EQ(mid->device_addr % (64u << 10), 0U);
  EXPECT_EQ(mid->device_addr, 0x0f01'0000U) << "first fit among 64 KiB-aligned gaps";
  EXPECT_EQ(ctx_.IovaToPhys(big->device_addr + k2MiB - 4).value_or(0), kPoolPa + k2MiB - 4);
  for (const auto* m : {&ring, &big, &mid}) ASSERT_TRUE(mapper.UnmapForDevice(**m).ok());
  EXPECT_EQ(iova_.allocated_ranges(), 0U);

  // Off: the densest packing, right after the ring.
  DeviceBinding dense = Binding(Addressing::kTranslated);
  dense.leaf_aligned_iova = false;
  StaticContextDmaMapper<8> packed(dense);
  ring = packed.MapForDevice(0x5000'0000, kPage, DmaDirection::kToDevice);
  big = packed.MapForDevice(kPoolPa, k2MiB, DmaDirection::kToDevice);
  ASSERT_TRUE(ring.ok() && big.ok());
  EXPECT_EQ(big->device_addr, 0x0f00'1000U);
  for (const auto* m : {&ring, &big}) ASSERT_TRUE(packed.UnmapForDevice(**m).ok());
}

// A window with no gap aligned for the larger leaves: the caller's alignment, not -ENOMEM.
TEST_F(ContextDmaMapperTest, LeafAlignmentFallsBackWhenTheWindowHasNoAlignedGap) {
  StaticIovaAllocator<4> narrow{0x0f00'1000, k2MiB, kPage, &reserved_};
  DeviceBinding b = Binding(Addressing::kTranslated);
  b.iova = &narrow;
  StaticContextDmaMapper<4> mapper(b);
  Result<DmaMapping> big = mapper.MapForDevice(kPoolPa, k2MiB, DmaDirection::kToDevice);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->device_addr, 0x0f00'1000U);
  EXPECT_EQ(mapper.MapForDevice(kPoolPa + k2MiB, kPage, DmaDirection::kToDevice).status(),
            Status::NoMemory())
      << "the window is full";
  EXPECT_EQ(narrow.allocated_ranges(), 1U) << "the failed map kept no device address";
  ASSERT_TRUE(mapper.UnmapForDevice(*big).ok());
}

TEST_F(ContextDmaMapperTest, IdentityRefusesABufferInAReservedWindow) {
  StaticContextDmaMapper<4> mapper(Binding(Addressing::kIdentity));
  EXPECT_EQ(mapper.MapForDevice(0x2000'0000, kPage, DmaDirection::kToDevice).status(),
            Status::InvalidArgument())
      << "a DMA there would be routed to a PCI peer";
  EXPECT_EQ(mapper.MapForDevice(0x3eff'0000 - kPage, 2 * kPage, DmaDirection::kToDevice).status(),
            Status::InvalidArgument());
  EXPECT_EQ(unit_.mapped_pages(domain()), 0U);
  EXPECT_TRUE(mapper.MapForDevice(0x3eff'0000, kPage, DmaDirection::kToDevice).ok());
}

TEST_F(ContextDmaMapperTest, Errors) {
  StaticContextDmaMapper<2> mapper(Binding(Addressing::kIdentity));
  EXPECT_EQ(mapper.MapForDevice(kPoolPa + 8, kPage, DmaDirection::kToDevice).status(),
            Status::InvalidArgument());
  EXPECT_EQ(mapper.MapForDevice(kPoolPa, 100, DmaDirection::kToDevice).status(),
            Status::InvalidArgument())
      << "nothing is rounded: the rest of the page would be exposed";
  EXPECT_EQ(mapper.MapForDevice(kPoolPa, 0, DmaDirection::kToDevice).status(),
            Status::InvalidArgument());
  EXPECT_EQ(mapper.MapForDevice(kPoolPa, kPage, static_cast<DmaDirection>(7)).status(),
            Status::InvalidArgument());
  Result<DmaMapping> a = mapper.MapForDevice(kPoolPa, 2 * kPage, DmaDirection::kToDevice);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(mapper.MapForDevice(kPoolPa + kPage, kPage, DmaDirection::kToDevice).status(),
            Status::AlreadyExists());
  ASSERT_TRUE(mapper.MapForDevice(kPoolPa + 2 * kPage, kPage, DmaDirection::kToDevice).ok());
  EXPECT_EQ(mapper.MapForDevice(kPoolPa + 3 * kPage, kPage, DmaDirection::kToDevice).status(),
            Status::NoMemory())
      << "mapping table full";
  DmaMapping foreign = *a;
  foreign.direction = DmaDirection::kFromDevice;
  EXPECT_EQ(mapper.UnmapForDevice(foreign), Status::NotFound());
  EXPECT_EQ(mapper.UnmapForDevice(DmaMapping{0x9000'0000, 0x9000'0000, kPage}), Status::NotFound());
  EXPECT_EQ(unit_.mapped_pages(domain()), 3U) << "nothing changed";
  ASSERT_TRUE(mapper.UnmapForDevice(*a).ok());
  EXPECT_EQ(mapper.UnmapForDevice(*a), Status::NotFound()) << "twice";
  // An unconfirmed unmap keeps the mapping live; a retry completes it.
  Result<DmaMapping> b = mapper.MapForDevice(kPoolPa, kPage, DmaDirection::kFromDevice);
  ASSERT_TRUE(b.ok());
  unit_.FailNext(FakeUnit::Op::kUnmap, Status::TimedOut());
  EXPECT_EQ(mapper.UnmapForDevice(*b), Status::TimedOut());
  EXPECT_EQ(mapper.live_mappings(), 2U);
  EXPECT_TRUE(mapper.UnmapForDevice(*b).ok());
}

// The seed README's flow: the program deviso_map()s its buffer itself (identity, read-write),
// then hands it to a driver whose hook maps every transfer.
TEST_F(ContextDmaMapperTest, AdoptsARangeTheContextAlreadyMapsIdentically) {
  DeviceBinding binding = Binding(Addressing::kIdentity, /*coherent=*/false);
  binding.adopt_identity_mappings = kPermReadWrite;
  StaticContextDmaMapper<4> mapper(binding);
  ASSERT_TRUE(ctx_.Map(kPoolPa, kPoolPa, 2 * kPage, kPermReadWrite).ok());  // the program's
  Result<DmaMapping> window = mapper.MapForDevice(kPoolPa, 2 * kPage, DmaDirection::kFromDevice);
  Result<DmaMapping> source =
      mapper.MapForDevice(kPoolPa + 4 * kPage, kPage, DmaDirection::kToDevice);
  ASSERT_TRUE(window.ok() && source.ok());
  EXPECT_EQ(window->device_addr, kPoolPa);
  EXPECT_EQ(unit_.mapped_pages(domain()), 3U) << "the window was used in place, not mapped again";
  EXPECT_EQ(unit_.PageAt(domain(), source->device_addr)->perms, kPermRead);
  EXPECT_EQ(mapper.MapForDevice(kPoolPa + kPage, kPage, DmaDirection::kToDevice).status(),
            Status::AlreadyExists())
      << "an adopted range is a live mapping of the hook like any other";
  ASSERT_TRUE(mapper.UnmapForDevice(*window).ok());
  ASSERT_TRUE(mapper.UnmapForDevice(*source).ok());
  EXPECT_EQ(unit_.mapped_pages(domain()), 2U) << "the program's mapping stays; the source went";
  EXPECT_EQ(ctx_.IovaToPhys(kPoolPa + kPage).value_or(0), kPoolPa + kPage);
  EXPECT_FALSE(ctx_.IovaToPhys(kPoolPa + 4 * kPage).ok());
  const ContextDmaMapper::Counters c = mapper.counters();
  EXPECT_EQ(c.maps, 1U);
  EXPECT_EQ(c.adoptions, 1U);
  EXPECT_EQ(c.releases, 2U);
  EXPECT_EQ(mapper.live_mappings(), 0U);
  // Cache maintenance is the same for an adopted range: clean at map, invalidate at unmap.
  const std::vector<CacheCall> want = {
      {true, kPoolPa, 2 * kPage},
      {true, kPoolPa + 4 * kPage, kPage},
      {false, kPoolPa, 2 * kPage},
  };
  EXPECT_EQ(cache_calls_, want);
  // Once the owner unmaps it, the next transfer maps (and unmaps) it as usual.
  ASSERT_TRUE(ctx_.Unmap(kPoolPa, 2 * kPage).ok());
  Result<DmaMapping> again = mapper.MapForDevice(kPoolPa, 2 * kPage, DmaDirection::kFromDevice);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(unit_.mapped_pages(domain()), 2U);
  ASSERT_TRUE(mapper.UnmapForDevice(*again).ok());
  EXPECT_EQ(unit_.mapped_pages(domain()), 0U);
  EXPECT_EQ(mapper.counters().maps, 2U);
}

TEST_F(ContextDmaMapperTest, AdoptsOnlyWholeIdentityRangesWithSufficientPermissions) {
  DeviceBinding binding = Binding(Addressing::kIdentity);
  binding.adopt_identity_mappings = kPermRead;  // the owner mapped read-only
  StaticContextDmaMapper<4> mapper(binding);
  StaticContextDmaMapper<4> plain(Binding(Addressing::kIdentity));
  ASSERT_TRUE(ctx_.Map(kPoolPa, kPoolPa, kPage, kPermRead).ok());
  ASSERT_TRUE(ctx_.Map(kPoolPa + 2 * kPage, kPoolPa + 3 * kPage, kPage, kPermRead).ok());
  const size_t pages = unit_.mapped_pages(domain());
  struct Case {
    StaticContextDmaMapper<4>* mapper;
    uint64_t pa;
    uint64_t size;
    DmaDirection direction;
    const char* why;
  };
  const Case refused[] = {
      {&plain, kPoolPa, kPage, DmaDirection::kToDevice, "adoption off: mapped already"},
      {&mapper, kPoolPa, kPage, DmaDirection::kFromDevice, "write beyond the owner's read"},
      {&mapper, kPoolPa, 2 * kPage, DmaDirection::kToDevice, "only its first page is mapped"},
      {&mapper, kPoolPa - kPage, 2 * kPage, DmaDirection::kToDevice, "its first page is not"},
      {&mapper, kPoolPa + 2 * kPage, kPage, DmaDirection::kToDevice, "mapped, not identity"},
  };
  for (const Case& c : refused) {
    EXPECT_EQ(c.mapper->MapForDevice(c.pa, c.size, c.direction).status(), Status::AlreadyExists())
        << c.why;
  }
  EXPECT_EQ(unit_.mapped_pages(domain()), pages) << "nothing changed";
  EXPECT_EQ(mapper.live_mappings() + plain.live_mappings(), 0U);
  EXPECT_TRUE(mapper.MapForDevice(kPoolPa, kPage, DmaDirection::kToDevice).ok());
  EXPECT_EQ(mapper.counters().adoptions, 1U);

  // In a reserved window, adopted or not, a range cannot serve as a device address.
  ASSERT_TRUE(ctx_.Map(0x2000'0000, 0x2000'0000, kPage, kPermRead).ok());
  EXPECT_EQ(mapper.MapForDevice(0x2000'0000, kPage, DmaDirection::kToDevice).status(),
            Status::InvalidArgument());
  // The binding is checked: identity only, and read/write bits only.
  DeviceBinding translated = Binding(Addressing::kTranslated);
  translated.adopt_identity_mappings = kPermReadWrite;
  EXPECT_EQ(translated.Validate(), Status::InvalidArgument());
  StaticContextDmaMapper<1> bad(translated);
  EXPECT_EQ(bad.MapForDevice(kPoolPa + 8 * kPage, kPage, DmaDirection::kToDevice).status(),
            Status::InvalidArgument());
  DeviceBinding odd = Binding(Addressing::kIdentity);
  odd.adopt_identity_mappings = kPermReadWrite | 0x100;
  EXPECT_EQ(odd.Validate(), Status::InvalidArgument());
}

}  // namespace
}  // namespace deviso::dma
