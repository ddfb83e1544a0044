// Unit tests of the fixed-block pool and the multi-pool chooser (CTest label `pool`).

#include "dma/block_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <set>
#include <vector>

namespace deviso::dma {
namespace {

constexpr size_t kBlock = 4096;

TEST(BlockPool, StaticPoolIsAlignedAndEmpty) {
  DEVISO_DMA_BLOCKS_DEFINE_STATIC(pool, kBlock, 8, 65536);
  ASSERT_TRUE(pool.valid());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(pool.buffer()) % 65536, 0U);
  EXPECT_EQ(pool.buffer_pa(), reinterpret_cast<uintptr_t>(pool.buffer())) << "identity";
  EXPECT_EQ(pool.block_count(), 8U);
  EXPECT_EQ(pool.free_blocks(), 8U);
}

TEST(BlockPool, InvalidDefinitionsAreRefusedByEveryCall) {
  alignas(8192) static uint8_t buf[8192 * 4];
  uint64_t bitmap[1] = {};
  BlockPool small(buf, 0x1000, 2048, 4, bitmap);  // block smaller than a page
  EXPECT_FALSE(small.valid());
  BlockPool odd(buf, 0x1000, 12288, 2, bitmap);  // not a power of two
  EXPECT_FALSE(odd.valid());
  BlockPool misaligned_pa(buf, 0x1000, 8192, 4, bitmap);
  EXPECT_FALSE(misaligned_pa.valid());
  BlockPool misaligned_cpu(buf + 4096, 0x2000, 8192, 3, bitmap);
  EXPECT_FALSE(misaligned_cpu.valid());
  void* out[1];
  EXPECT_EQ(small.Alloc(out), Status::InvalidArgument());
  EXPECT_EQ(small.AllocContiguous(1).status(), Status::InvalidArgument());
  EXPECT_EQ(small.Free(std::span<void* const>(out, 0)), Status::InvalidArgument());
}

TEST(BlockPool, AllocGivesDistinctBlocksAndExhaustionIsNoMemory) {
  StaticBlockPool<kBlock, 8> pool;
  void* a[5];
  ASSERT_TRUE(pool.Alloc(a).ok());
  std::set<void*> seen(a, a + 5);
  EXPECT_EQ(seen.size(), 5U);
  for (void* p : a) {
    EXPECT_TRUE(pool.Contains(p, kBlock));
    EXPECT_EQ((static_cast<uint8_t*>(p) - static_cast<uint8_t*>(pool.buffer())) % kBlock, 0);
  }
  void* b[4];
  EXPECT_EQ(pool.Alloc(b), Status::NoMemory()) << "3 left, 4 asked: all or nothing";
  EXPECT_EQ(pool.free_blocks(), 3U);
  void* c[3];
  ASSERT_TRUE(pool.Alloc(c).ok());
  EXPECT_EQ(pool.free_blocks(), 0U);
  EXPECT_EQ(pool.AllocContiguous(1).status(), Status::NoMemory());
  ASSERT_TRUE(pool.Free(a).ok());
  ASSERT_TRUE(pool.Free(c).ok());
  EXPECT_EQ(pool.free_blocks(), 8U);
}

TEST(BlockPool, AllocIsNotNecessarilyContiguousButContiguousIs) {
  StaticBlockPool<kBlock, 8> pool;
  void* all[8];
  ASSERT_TRUE(pool.Alloc(all).ok());
  // Free blocks 1, 3, 4, 6: the largest free run is 2 (3-4).
  void* const holes[] = {all[1], all[3], all[4], all[6]};
  ASSERT_TRUE(pool.Free(holes).ok());
  EXPECT_EQ(pool.AllocContiguous(3).status(), Status::NoMemory());
  void* scattered[3];
  ASSERT_TRUE(pool.Alloc(scattered).ok()) << "3 free blocks, not adjacent";
  ASSERT_TRUE(pool.Free(scattered).ok());
  Result<void*> run = pool.AllocContiguous(2);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(*run, all[3]);
  EXPECT_TRUE(pool.IsAllocated(*run, 2));
}

TEST(BlockPool, ContiguousHonoursPhysicalAlignment) {
  // 32 blocks at physical [0xf_d000, 0x11_d000): 16 KiB boundaries at 0x10_0000, 0x10_4000...,
  // and a single 1 MiB boundary, 0x10_0000 (block 3).
  alignas(4096) static uint8_t buf[4096 * 32];
  uint64_t bitmap[1];
  BlockPool pool(buf, 0xf'd000, kBlock, 32, bitmap);
  ASSERT_TRUE(pool.valid());
  Result<void*> aligned = pool.AllocContiguous(2, 16384);
  ASSERT_TRUE(aligned.ok());
  EXPECT_EQ(pool.PaOf(*aligned), 0x10'0000U);
  EXPECT_EQ(pool.AllocContiguous(1, 1u << 20).status(), Status::NoMemory())
      << "the only MiB-aligned block is taken";
  Result<void*> next = pool.AllocContiguous(1, 16384);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(pool.PaOf(*next), 0x10'4000U);
  Result<void*> unaligned = pool.AllocContiguous(3);
  ASSERT_TRUE(unaligned.ok());
  EXPECT_EQ(pool.PaOf(*unaligned), 0xf'd000U) << "block alignment: the first free run";
  EXPECT_EQ(pool.AllocContiguous(1, 3).status(), Status::InvalidArgument());
  EXPECT_EQ(pool.free_blocks(), 32U - 6);
}

TEST(BlockPool, DoubleFreeIsNotFoundAndChangesNothing) {
  StaticBlockPool<kBlock, 4> pool;
  void* a[2];
  ASSERT_TRUE(pool.Alloc(a).ok());
  void* const one[] = {a[0]};
  ASSERT_TRUE(pool.Free(one).ok());
  EXPECT_EQ(pool.Free(one), Status::NotFound());
  // A list with one live and one already-freed block: nothing is freed.
  void* const mixed[] = {a[1], a[0]};
  EXPECT_EQ(pool.Free(mixed), Status::NotFound());
  EXPECT_TRUE(pool.IsAllocated(a[1]));
  // The same block twice in one call is a double free too.
  void* const twice[] = {a[1], a[1]};
  EXPECT_EQ(pool.Free(twice), Status::NotFound());
  EXPECT_TRUE(pool.IsAllocated(a[1]));
  EXPECT_EQ(pool.free_blocks(), 3U);
  // Still works.
  void* b[3];
  ASSERT_TRUE(pool.Alloc(b).ok());
  EXPECT_EQ(pool.free_blocks(), 0U);
}

TEST(BlockPool, ForeignPointersAreInvalidAndChangeNothing) {
  StaticBlockPool<kBlock, 4> pool;
  void* a[2];
  ASSERT_TRUE(pool.Alloc(a).ok());
  static uint8_t elsewhere[64];
  void* const foreign[] = {a[0], elsewhere};
  EXPECT_EQ(pool.Free(foreign), Status::InvalidArgument());
  void* const inside[] = {static_cast<uint8_t*>(a[1]) + 8};  // not at a block boundary
  EXPECT_EQ(pool.Free(inside), Status::InvalidArgument());
  void* const past[] = {static_cast<uint8_t*>(pool.buffer()) + pool.size_bytes()};
  EXPECT_EQ(pool.Free(past), Status::InvalidArgument());
  EXPECT_EQ(pool.FreeContiguous(a[0], 5), Status::InvalidArgument()) << "beyond the pool";
  EXPECT_EQ(pool.free_blocks(), 2U);
  EXPECT_TRUE(pool.IsAllocated(a[0]));
  EXPECT_TRUE(pool.IsAllocated(a[1]));
  ASSERT_TRUE(pool.Free(a).ok());
  EXPECT_EQ(pool.free_blocks(), 4U);
}

TEST(BlockPool, FreeContiguousChecksTheWholeRunFirst) {
  StaticBlockPool<kBlock, 4> pool;
  Result<void*> run = pool.AllocContiguous(2);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(pool.FreeContiguous(*run, 3), Status::NotFound()) << "block 2 is free";
  EXPECT_TRUE(pool.IsAllocated(*run, 2));
  ASSERT_TRUE(pool.FreeContiguous(*run, 2).ok());
  EXPECT_EQ(pool.FreeContiguous(*run, 2), Status::NotFound());
}

TEST(BlockPool, AddressConversions) {
  alignas(4096) static uint8_t buf[kBlock * 4];
  uint64_t bitmap[1] = {};
  BlockPool pool(buf, 0x8000'0000, kBlock, 4, bitmap);
  ASSERT_TRUE(pool.valid());
  EXPECT_EQ(pool.PaOf(buf + kBlock + 12), 0x8000'100cU);
  EXPECT_EQ(pool.CpuOf(0x8000'3000), buf + 3 * kBlock);
  EXPECT_EQ(pool.CpuOf(0x8000'4000), nullptr);
  EXPECT_EQ(pool.PaOf(buf + 4 * kBlock), 0U);
}

// ---- MultiBlockPool --------------------------------------------------------------------------

TEST(MultiBlockPool, ChooseBySizePicksTheSmallestBlockThatFits) {
  StaticBlockPool<4096, 4> small;
  StaticBlockPool<16384, 4> medium;
  StaticBlockPool<65536, 2> large;
  MultiBlockPool group(&MultiBlockPool::ChooseBySize);
  ASSERT_TRUE(group.AddPool(large).ok());
  ASSERT_TRUE(group.AddPool(small).ok());
  ASSERT_TRUE(group.AddPool(medium).ok());
  EXPECT_EQ(group.AddPool(small), Status::AlreadyExists());
  EXPECT_EQ(group.pool_count(), 3U);

  const size_t want_8k = 8192;
  void* out[2];
  size_t block = 0;
  ASSERT_TRUE(group.Alloc(&want_8k, out, &block).ok());
  EXPECT_EQ(block, 16384U);
  EXPECT_EQ(group.PoolOf(out[0]), &medium);
  EXPECT_EQ(medium.free_blocks(), 2U);

  const size_t want_1m = 1u << 20;
  EXPECT_EQ(group.Alloc(&want_1m, out, &block), Status::InvalidArgument()) << "no pool fits";
  const size_t want_64k = 65536;
  void* three[3];
  EXPECT_EQ(group.Alloc(&want_64k, three, &block), Status::NoMemory()) << "the pool's error";
  EXPECT_EQ(large.free_blocks(), 2U);

  ASSERT_TRUE(group.Free(out).ok());
  EXPECT_EQ(medium.free_blocks(), 4U);
}

TEST(MultiBlockPool, FreeRejectsForeignAndMixedBlocks) {
  StaticBlockPool<4096, 4> a;
  StaticBlockPool<4096, 4> b;
  MultiBlockPool group([](std::span<BlockPool* const> pools, const void* config) {
    return pools[*static_cast<const size_t*>(config)];
  });
  ASSERT_TRUE(group.AddPool(a).ok());
  ASSERT_TRUE(group.AddPool(b).ok());
  const size_t first = 0;
  const size_t second = 1;
  void* from_a[1];
  void* from_b[1];
  ASSERT_TRUE(group.Alloc(&first, from_a).ok());
  ASSERT_TRUE(group.Alloc(&second, from_b).ok());
  EXPECT_EQ(group.PoolOf(from_a[0]), &a);
  EXPECT_EQ(group.PoolOf(from_b[0]), &b);
  void* const mixed[] = {from_a[0], from_b[0]};
  EXPECT_EQ(group.Free(mixed), Status::InvalidArgument());
  static uint8_t elsewhere[16];
  void* const foreign[] = {elsewhere};
  EXPECT_EQ(group.Free(foreign), Status::InvalidArgument());
  EXPECT_EQ(a.free_blocks(), 3U);
  EXPECT_EQ(b.free_blocks(), 3U);
  ASSERT_TRUE(group.Free(from_a).ok());
  EXPECT_EQ(group.Free(from_a), Status::NotFound()) << "double free, through the group";
  ASSERT_TRUE(group.Free(from_b).ok());
}

TEST(MultiBlockPool, CapacityAndAChoiceOutsideTheGroup) {
  std::vector<std::unique_ptr<StaticBlockPool<4096, 1>>> pools;
  MultiBlockPool group([](std::span<BlockPool* const>, const void* config) {
    return static_cast<BlockPool*>(const_cast<void*>(config));
  });
  for (size_t i = 0; i < MultiBlockPool::kMaxPools + 1; ++i) {
    pools.push_back(std::make_unique<StaticBlockPool<4096, 1>>());
  }
  for (size_t i = 0; i < MultiBlockPool::kMaxPools; ++i) {
    ASSERT_TRUE(group.AddPool(*pools[i]).ok());
  }
  EXPECT_EQ(group.AddPool(*pools.back()), Status::NoMemory());
  void* out[1];
  EXPECT_EQ(group.Alloc(pools.back().get(), out), Status::InvalidArgument())
      << "a pool the group does not hold";
  EXPECT_EQ(pools.back()->free_blocks(), 1U);
  ASSERT_TRUE(group.Alloc(pools[2].get(), out).ok());
  EXPECT_EQ(group.PoolOf(out[0]), pools[2].get());
}

}  // namespace
}  // namespace deviso::dma
