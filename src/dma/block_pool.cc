#include "dma/block_pool.h"

namespace deviso::dma {

BlockPool::BlockPool(void* buffer, Paddr buffer_pa, size_t block_size, size_t block_count,
                     uint64_t* bitmap)
    : buffer_(static_cast<uint8_t*>(buffer)),
      buffer_pa_(buffer_pa),
      block_size_(block_size),
      block_count_(block_count),
      bitmap_(bitmap) {
  const uintptr_t cpu = reinterpret_cast<uintptr_t>(buffer);
  valid_ = buffer != nullptr && bitmap != nullptr && block_count > 0 && IsPowerOfTwo(block_size) &&
           block_size >= kMinBlockSize && cpu % block_size == 0 && buffer_pa % block_size == 0 &&
           block_count <= SIZE_MAX / block_size && cpu <= UINTPTR_MAX - block_count * block_size &&
           buffer_pa <= UINT64_MAX - block_count * block_size;
  if (!valid_) {
    block_count_ = 0;
    return;
  }
  // Every block starts free. (StaticBlockPool's bitmap is a member, initialised only after this
  // base constructor: it is never read here.)
  for (size_t i = 0; i < BitmapWords(block_count_); ++i) bitmap_[i] = 0;
  free_ = block_count_;
}

void BlockPool::SetLocked(size_t i, bool used) {
  const uint64_t bit = uint64_t{1} << (i % 64);
  if (used) {
    bitmap_[i / 64] |= bit;
  } else {
    bitmap_[i / 64] &= ~bit;
  }
}

Result<size_t> BlockPool::IndexOf(const void* p) const {
  if (!valid_ || !Contains(p)) return Status::InvalidArgument();
  const size_t offset = static_cast<size_t>(static_cast<const uint8_t*>(p) - buffer_);
  if (offset % block_size_ != 0) return Status::InvalidArgument();
  return offset / block_size_;
}

Status BlockPool::Alloc(std::span<void*> out) {
  if (!valid_ || out.empty()) return Status::InvalidArgument();
  port::LockGuard guard(lock_);
  if (out.size() > free_) return Status::NoMemory();
  size_t n = 0;
  for (size_t i = 0; i < block_count_ && n < out.size(); ++i) {
    if (IsUsedLocked(i)) continue;
    SetLocked(i, true);
    out[n++] = buffer_ + i * block_size_;
  }
  free_ -= n;
  return Status::Ok();
}

Result<void*> BlockPool::AllocContiguous(size_t count, size_t align) {
  if (!valid_ || count == 0) return Status::InvalidArgument();
  if (align == 0) align = block_size_;
  if (!IsPowerOfTwo(align)) return Status::InvalidArgument();
  if (count > block_count_) return Status::NoMemory();
  port::LockGuard guard(lock_);
  if (count > free_) return Status::NoMemory();
  size_t first = 0;
  while (first + count <= block_count_) {
    const Paddr pa = buffer_pa_ + first * block_size_;
    if (pa % align != 0) {
      // Skip to the next block at an aligned physical address.
      const Paddr next = (pa | (align - 1)) + 1;
      first = static_cast<size_t>((next - buffer_pa_) / block_size_);
      continue;
    }
    size_t run = 0;
    while (run < count && !IsUsedLocked(first + run)) ++run;
    if (run == count) {
      for (size_t i = first; i < first + count; ++i) SetLocked(i, true);
      free_ -= count;
      return static_cast<void*>(buffer_ + first * block_size_);
    }
    first += run + 1;
  }
  return Status::NoMemory();
}

Status BlockPool::Free(std::span<void* const> blocks) {
  if (!valid_) return Status::InvalidArgument();
  // Check every pointer (and that none is listed twice) before changing anything.
  for (void* const p : blocks) {
    DEVISO_TRY(IndexOf(p));
  }
  port::LockGuard guard(lock_);
  for (size_t k = 0; k < blocks.size(); ++k) {
    const size_t i = IndexOf(blocks[k]).value();
    if (!IsUsedLocked(i)) return Status::NotFound();
    for (size_t j = 0; j < k; ++j) {
      if (blocks[j] == blocks[k]) return Status::NotFound();
    }
  }
  for (void* const p : blocks) SetLocked(IndexOf(p).value(), false);
  free_ += blocks.size();
  return Status::Ok();
}

Status BlockPool::FreeContiguous(void* first, size_t count) {
  DEVISO_ASSIGN_OR_RETURN(const size_t start, IndexOf(first));
  if (count == 0 || count > block_count_ - start) return Status::InvalidArgument();
  port::LockGuard guard(lock_);
  for (size_t i = start; i < start + count; ++i) {
    if (!IsUsedLocked(i)) return Status::NotFound();
  }
  for (size_t i = start; i < start + count; ++i) SetLocked(i, false);
  free_ += count;
  return Status::Ok();
}

bool BlockPool::Contains(const void* p, size_t size) const {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  const uintptr_t base = reinterpret_cast<uintptr_t>(buffer_);
  const size_t total = block_count_ * block_size_;
  return valid_ && a >= base && size <= total && a - base <= total - size;
}

bool BlockPool::IsAllocated(const void* first, size_t count) const {
  const Result<size_t> start = IndexOf(first);
  if (!start.ok() || count == 0 || count > block_count_ - *start) return false;
  port::LockGuard guard(lock_);
  for (size_t i = *start; i < *start + count; ++i) {
    if (!IsUsedLocked(i)) return false;
  }
  return true;
}

Paddr BlockPool::PaOf(const void* p) const {
  if (!Contains(p)) return 0;
  return buffer_pa_ + static_cast<Paddr>(static_cast<const uint8_t*>(p) - buffer_);
}

void* BlockPool::CpuOf(Paddr pa) const {
  if (!valid_ || pa < buffer_pa_ || pa - buffer_pa_ >= size_bytes()) return nullptr;
  return buffer_ + (pa - buffer_pa_);
}

size_t BlockPool::free_blocks() const {
  port::LockGuard guard(lock_);
  return free_;
}

// ---- MultiBlockPool ---------------------------------------------------------------------------

Status MultiBlockPool::AddPool(BlockPool& pool) {
  if (!pool.valid()) return Status::InvalidArgument();
  port::LockGuard guard(lock_);
  const uintptr_t base = reinterpret_cast<uintptr_t>(pool.buffer());
  for (size_t i = 0; i < count_; ++i) {
    const uintptr_t other = reinterpret_cast<uintptr_t>(pools_[i]->buffer());
    if (pools_[i] == &pool ||
        (base < other + pools_[i]->size_bytes() && other < base + pool.size_bytes())) {
      return Status::AlreadyExists();
    }
  }
  if (count_ == kMaxPools) return Status::NoMemory();
  pools_[count_++] = &pool;
  return Status::Ok();
}

Status MultiBlockPool::Alloc(const void* config, std::span<void*> out, size_t* block_size) {
  if (out.empty()) return Status::InvalidArgument();
  BlockPool* pools[kMaxPools];
  size_t n = 0;
  {
    port::LockGuard guard(lock_);
    for (; n < count_; ++n) pools[n] = pools_[n];
  }
  BlockPool* const chosen = choice_ == nullptr ? nullptr : choice_({pools, n}, config);
  bool member = false;
  for (size_t i = 0; i < n; ++i) member = member || pools[i] == chosen;
  if (chosen == nullptr || !member) return Status::InvalidArgument();
  DEVISO_TRY(chosen->Alloc(out));
  if (block_size != nullptr) *block_size = chosen->block_size();
  return Status::Ok();
}

Status MultiBlockPool::Free(std::span<void* const> blocks) {
  if (blocks.empty()) return Status::Ok();
  BlockPool* const pool = PoolOf(blocks[0]);
  if (pool == nullptr) return Status::InvalidArgument();
  for (void* const p : blocks) {
    if (!pool->Contains(p)) return Status::InvalidArgument();
  }
  return pool->Free(blocks);
}

BlockPool* MultiBlockPool::PoolOf(const void* p) const {
  port::LockGuard guard(lock_);
  for (size_t i = 0; i < count_; ++i) {
    if (pools_[i]->Contains(p)) return pools_[i];
  }
  return nullptr;
}

size_t MultiBlockPool::pool_count() const {
  port::LockGuard guard(lock_);
  return count_;
}

BlockPool* MultiBlockPool::ChooseBySize(std::span<BlockPool* const> pools, const void* config) {
  const size_t bytes = config == nullptr ? 0 : *static_cast<const size_t*>(config);
  BlockPool* best = nullptr;
  for (BlockPool* const pool : pools) {
    if (pool->block_size() < bytes) continue;
    if (best == nullptr || pool->block_size() < best->block_size()) best = pool;
  }
  return best;
}

}  // namespace deviso::dma
