// Fixed-block memory pools with Zephyr `sys_mem_blocks` semantics (include/zephyr/sys/
// mem_blocks.h), for DMA buffers.
//
// A BlockPool hands out blocks of one size from one buffer: block size (a power of two, at
// least a 4 KiB page), block count and buffer alignment are fixed when it is defined, and its
// storage is the caller's (StaticBlockPool / DEVISO_DMA_BLOCKS_DEFINE_STATIC put it in static
// storage, as SYS_MEM_BLOCKS_DEFINE_STATIC does). A bitmap records the blocks in use; a
// port::InterruptSpinLock serialises every call, so a pool may be shared by threads.
//
// As in Zephyr:
//   * Alloc(n) gives n blocks, not necessarily contiguous, into an array (all or none);
//   * AllocContiguous(n) gives n adjacent blocks;
//   * Free() returns blocks (all or none).
// Unlike Zephyr, Free() checks every pointer before it changes anything: a pointer outside the
// pool or not at a block boundary is -EINVAL, a block that is not allocated (a double free) is
// -ENOENT, and in both cases the pool is left exactly as it was.
//
// MultiBlockPool is `sys_multi_mem_blocks`: a group of pools and a choice function that picks
// the pool for each allocation; frees find their pool by address.
//
// Blocks are whole pages at page-aligned addresses, so a DMA buffer made of blocks never shares
// a page with anything else (see DevicePool in dma/device_pool.h for the device side).

#ifndef DEVISO_SRC_DMA_BLOCK_POOL_H_
#define DEVISO_SRC_DMA_BLOCK_POOL_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "deviso/port/os.h"
#include "deviso/status.h"
#include "deviso/types.h"

namespace deviso::dma {

// The smallest block: one 4 KiB page, the smallest granule an IOMMU maps.
inline constexpr size_t kMinBlockSize = 4096;

constexpr bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }
constexpr size_t BitmapWords(size_t blocks) { return (blocks + 63) / 64; }

class BlockPool {
 public:
  // `buffer` (the CPU's pointer) holds `block_count` blocks of `block_size` bytes; `buffer_pa`
  // is its physical address (the pointer itself on an identity-mapped port). `bitmap` holds
  // BitmapWords(block_count) words, which the constructor clears: every block starts free. The pool
  // is usable (valid()) only if block_size is a power of two >= kMinBlockSize, block_count > 0,
  // both addresses are aligned to block_size and the buffer does not wrap; otherwise every call
  // fails with -EINVAL.
  BlockPool(void* buffer, Paddr buffer_pa, size_t block_size, size_t block_count, uint64_t* bitmap);
  ~BlockPool() = default;
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // Allocates out.size() blocks, not necessarily contiguous, and writes their CPU pointers to
  // `out` (sys_mem_blocks_alloc). Errors, with no change: -EINVAL (invalid pool, out empty),
  // -ENOMEM (fewer free blocks than out.size()).
  Status Alloc(std::span<void*> out);

  // Allocates `count` adjacent blocks whose first block's physical address is aligned to
  // `align` (0: block_size; a power of two) and returns the first (sys_mem_blocks_alloc_
  // contiguous, plus alignment). Errors, with no change: -EINVAL (invalid pool, count 0, align
  // not a power of two), -ENOMEM (no such run of free blocks).
  Result<void*> AllocContiguous(size_t count, size_t align = 0);

  // Frees the blocks at `blocks` (sys_mem_blocks_free). Every pointer is checked first:
  // -EINVAL if one is outside the pool or not at a block boundary (a foreign pointer), -ENOENT
  // if one is not allocated or listed twice (a double free); on either error nothing changes.
  Status Free(std::span<void* const> blocks);
  // Frees `count` adjacent blocks from `first` (sys_mem_blocks_free_contiguous). Errors as
  // Free(), also -EINVAL for count 0 or a run beyond the pool; nothing changes on error.
  Status FreeContiguous(void* first, size_t count);

  // Whether [p, p + size) lies inside the pool's buffer.
  bool Contains(const void* p, size_t size = 1) const;
  // Whether every block of [first, first + count) is allocated. False for bad arguments.
  bool IsAllocated(const void* first, size_t count = 1) const;
  // The physical address of `p` (which must lie in the pool), and the reverse; 0 / nullptr
  // when outside.
  Paddr PaOf(const void* p) const;
  void* CpuOf(Paddr pa) const;

  bool valid() const { return valid_; }
  size_t block_size() const { return block_size_; }
  size_t block_count() const { return block_count_; }
  size_t size_bytes() const { return block_size_ * block_count_; }
  void* buffer() const { return buffer_; }
  Paddr buffer_pa() const { return buffer_pa_; }
  size_t free_blocks() const;
  size_t allocated_blocks() const { return block_count_ - free_blocks(); }

 private:
  bool IsUsedLocked(size_t i) const { return ((bitmap_[i / 64] >> (i % 64)) & 1) != 0; }
  void SetLocked(size_t i, bool used);
  // The block index of `p`, or -EINVAL (outside, or not at a block boundary).
  Result<size_t> IndexOf(const void* p) const;

  uint8_t* buffer_;
  Paddr buffer_pa_;
  size_t block_size_;
  size_t block_count_;
  uint64_t* bitmap_;  // bit set: block allocated
  bool valid_;
  mutable port::InterruptSpinLock lock_;
  size_t free_ = 0;  // guarded by lock_
};

// A pool whose buffer and bitmap are part of the object, so it can be a static (identity
// mapping: the physical address is the pointer). Checked at compile time.
// Example: `StaticBlockPool<4096, 64> g_dma_pool;`, or with 2 MiB alignment for a pool mapped
// pool-wide: `StaticBlockPool<4096, 512, 2 << 20> g_nvme_pool;`.
template <size_t kBlockSize, size_t kBlockCount, size_t kAlign = kBlockSize>
class StaticBlockPool : public BlockPool {
  static_assert(IsPowerOfTwo(kBlockSize) && kBlockSize >= kMinBlockSize,
                "block size must be a power of two and at least a page");
  static_assert(kBlockCount > 0, "a pool needs blocks");
  static_assert(IsPowerOfTwo(kAlign) && kAlign >= kBlockSize,
                "alignment must be a power of two and at least the block size");

 public:
  StaticBlockPool()
      : BlockPool(buffer_, reinterpret_cast<uintptr_t>(buffer_), kBlockSize, kBlockCount, bitmap_) {
  }

 private:
  alignas(kAlign) uint8_t buffer_[kBlockSize * kBlockCount];
  uint64_t bitmap_[BitmapWords(kBlockCount)] = {};
};

// SYS_MEM_BLOCKS_DEFINE_STATIC's shape: a static pool named `name`.
#define DEVISO_DMA_BLOCKS_DEFINE_STATIC(name, block_size, block_count, align) \
  static ::deviso::dma::StaticBlockPool<(block_size), (block_count), (align)> name

// sys_multi_mem_blocks: several pools, and a choice function that picks one per allocation.
class MultiBlockPool {
 public:
  static constexpr size_t kMaxPools = 8;

  // Returns the pool to allocate from for `config` (the caller's argument, passed through), or
  // nullptr for none. `pools` are the pools added so far, in the order they were added.
  using Choice = BlockPool* (*)(std::span<BlockPool* const> pools, const void* config);

  explicit MultiBlockPool(Choice choice) : choice_(choice) {}
  MultiBlockPool(const MultiBlockPool&) = delete;
  MultiBlockPool& operator=(const MultiBlockPool&) = delete;

  // Adds `pool` (which must outlive the group). Errors, with no change: -EINVAL (pool invalid),
  // -EEXIST (already added, or its buffer overlaps an added pool's), -ENOMEM (kMaxPools).
  Status AddPool(BlockPool& pool);

  // Allocates out.size() blocks from the pool the choice function picks for `config`, and
  // tells their size in *block_size (may be null). Errors, with no change: -EINVAL (out empty,
  // or the choice function picked no pool or one not in the group), and the pool's -ENOMEM.
  Status Alloc(const void* config, std::span<void*> out, size_t* block_size = nullptr);

  // Frees blocks, which must all come from one pool of the group: -EINVAL if a pointer is in
  // no pool of the group or the blocks span several pools; otherwise the pool's Free() errors.
  // Nothing changes on error.
  Status Free(std::span<void* const> blocks);

  // The group's pool holding `p`, or nullptr.
  BlockPool* PoolOf(const void* p) const;
  size_t pool_count() const;

  // A ready-made choice function: `config` points to a size_t byte count; picks the pool with
  // the smallest blocks that hold that many bytes (any pool when config is null).
  static BlockPool* ChooseBySize(std::span<BlockPool* const> pools, const void* config);

 private:
  Choice choice_;
  mutable port::InterruptSpinLock lock_;
  BlockPool* pools_[kMaxPools] = {};  // guarded by lock_
  size_t count_ = 0;                  // guarded by lock_
};

}  // namespace deviso::dma

#endif  // DEVISO_SRC_DMA_BLOCK_POOL_H_
