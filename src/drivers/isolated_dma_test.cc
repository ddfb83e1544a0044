// Host tests of IsolatedDmaAllocator: every region is whole pages of the mapper's page size,
// mapped through the hook before it is handed out (at the mapper's device address) and
// unmapped before its memory goes back; nothing stays allocated or mapped on any error.

#include "drivers/isolated_dma.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

namespace deviso::drivers {
namespace {

constexpr uint64_t kIovaBase = uint64_t{1} << 56;

// Host memory; device address = physical address = the host pointer.
// NOLINTNEXTLINE(cppcoreguidelines-virtual-class-destructor): never deleted through the base.
class HostMemory final : public DmaAllocator {
 public:
  Result<DmaRegion> Alloc(size_t size, size_t align) override {
    void* p = std::aligned_alloc(align, (size + align - 1) / align * align);
    std::memset(p, 0, size);
    ++live;
    last_align = align;
    return DmaRegion{p, reinterpret_cast<uintptr_t>(p), size};
  }
  void Free(const DmaRegion& r) override {
    std::free(r.cpu);
    --live;
  }
  void SyncForDevice(const DmaRegion& r, size_t, size_t) override { synced.push_back(r.cpu); }
  void SyncForCpu(const DmaRegion& r, size_t, size_t) override { synced.push_back(r.cpu); }
  int live = 0;
  size_t last_align = 0;
  std::vector<void*> synced;
};

class Mapper final : public DmaMapper {  // NOLINT(cppcoreguidelines-virtual-class-destructor)
 public:
  Result<DmaMapping> MapForDevice(uint64_t pa, size_t size, DmaDirection direction) override {
    if (pa % page != 0 || size % page != 0 || size == 0) return Status::InvalidArgument();
    if (!fail_map.ok()) return fail_map;
    const DmaMapping m{pa, kIovaBase + pa, size, direction};
    live.push_back(m);
    return m;
  }
  Status UnmapForDevice(const DmaMapping& m) override {
    if (!fail_unmap.ok()) return fail_unmap;
    for (auto it = live.begin(); it != live.end(); ++it) {
      if (it->pa == m.pa && it->device_addr == m.device_addr && it->size == m.size) {
        live.erase(it);
        return Status::Ok();
      }
    }
    return Status::NotFound();
  }
  size_t page_size() const override { return page; }
  size_t page = 4096;
  Status fail_map = Status::Ok();
  Status fail_unmap = Status::Ok();
  std::vector<DmaMapping> live;
};

TEST(IsolatedDmaAllocator, RegionsAreWholePagesMappedThroughTheHook) {
  HostMemory memory;
  Mapper mapper;
  IsolatedDmaAllocator dma(memory, mapper);
  const Result<DmaRegion> r = dma.Alloc(100, 64);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size, 4096U);
  EXPECT_EQ(memory.last_align, 4096U);
  ASSERT_EQ(mapper.live.size(), 1U);
  EXPECT_EQ(mapper.live[0].pa, reinterpret_cast<uintptr_t>(r->cpu));
  EXPECT_EQ(mapper.live[0].size, 4096U);
  EXPECT_EQ(mapper.live[0].direction, DmaDirection::kBidirectional);
  EXPECT_EQ(r->device_addr, mapper.live[0].device_addr);  // the mapper's address, not the PA
  dma.SyncForDevice(*r, 0, 100);
  ASSERT_EQ(memory.synced.size(), 1U);
  dma.Free(*r);
  EXPECT_TRUE(mapper.live.empty());
  EXPECT_EQ(memory.live, 0);
  EXPECT_EQ(dma.live(), 0U);
}

TEST(IsolatedDmaAllocator, FollowsTheMappersPageSizeAndLargerAlignments) {
  HostMemory memory;
  Mapper mapper;
  mapper.page = size_t{64} * 1024;
  IsolatedDmaAllocator dma(memory, mapper);
  const Result<DmaRegion> r = dma.Alloc(size_t{70} * 1024, size_t{1} << 20);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size, 128U * 1024);
  EXPECT_EQ(memory.last_align, 1U << 20);
  dma.Free(*r);
  EXPECT_EQ(memory.live, 0);
}

TEST(IsolatedDmaAllocator, FailedMapLeavesNothingAllocated) {
  HostMemory memory;
  Mapper mapper;
  mapper.fail_map = Status::NoMemory();
  IsolatedDmaAllocator dma(memory, mapper);
  EXPECT_EQ(dma.Alloc(4096, 4096).status(), Status::NoMemory());
  EXPECT_EQ(memory.live, 0);
  EXPECT_EQ(dma.Alloc(0, 4096).status(), Status::InvalidArgument());
  EXPECT_EQ(dma.Alloc(4096, 3).status(), Status::InvalidArgument());
  EXPECT_EQ(memory.live, 0);
}

TEST(IsolatedDmaAllocator, UnconfirmedUnmapLeaksTheMemory) {
  HostMemory memory;
  Mapper mapper;
  IsolatedDmaAllocator dma(memory, mapper);
  const Result<DmaRegion> r = dma.Alloc(4096, 4096);
  ASSERT_TRUE(r.ok());
  mapper.fail_unmap = Status::TimedOut();
  dma.Free(*r);
  EXPECT_EQ(dma.leaked(), 1U);
  EXPECT_EQ(memory.live, 1);  // never reused while the device might reach it
  dma.Free(*r);               // no longer live: not freed twice
  EXPECT_EQ(dma.foreign_frees(), 1U);
  std::free(r->cpu);
}

TEST(IsolatedDmaAllocator, ForeignRegionsAreIgnored) {
  HostMemory memory;
  Mapper mapper;
  IsolatedDmaAllocator dma(memory, mapper);
  const Result<DmaRegion> r = dma.Alloc(4096, 4096);
  ASSERT_TRUE(r.ok());
  DmaRegion other = *r;
  other.device_addr += 4096;
  dma.Free(other);
  EXPECT_EQ(dma.foreign_frees(), 1U);
  EXPECT_EQ(mapper.live.size(), 1U);
  dma.Free(*r);
  EXPECT_EQ(memory.live, 0);
}

TEST(IsolatedDmaAllocator, CapacityIsFixed) {
  HostMemory memory;
  Mapper mapper;
  IsolatedDmaAllocator dma(memory, mapper);
  std::vector<DmaRegion> regions;
  for (size_t i = 0; i < IsolatedDmaAllocator::kMaxRegions; ++i) {
    const Result<DmaRegion> r = dma.Alloc(4096, 4096);
    ASSERT_TRUE(r.ok());
    regions.push_back(*r);
  }
  EXPECT_EQ(dma.Alloc(4096, 4096).status(), Status::NoMemory());
  EXPECT_EQ(memory.live, static_cast<int>(IsolatedDmaAllocator::kMaxRegions));
  for (const DmaRegion& r : regions) dma.Free(r);
  EXPECT_EQ(memory.live, 0);
}

}  // namespace
}  // namespace deviso::drivers
