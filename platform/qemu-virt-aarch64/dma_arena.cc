#include "dma_arena.h"

#include <cstring>

#include "arch.h"

namespace deviso::qemu_virt {

void DmaArena::Mark(size_t first, size_t n, bool used) {
  for (size_t i = first; i < first + n; ++i) {
    if (used) {
      bitmap_[i / 64] |= 1ULL << (i % 64);
    } else {
      bitmap_[i / 64] &= ~(1ULL << (i % 64));
    }
  }
}

Result<drivers::DmaRegion> DmaArena::Alloc(size_t size, size_t align) {
  if (size == 0 || align == 0 || (align & (align - 1)) != 0 || size > kBytes) {
    return Status::InvalidArgument();
  }
  const size_t n = (size + kGranule - 1) / kGranule;
  // storage_ is aligned to kMaxAlign, so granule indexes that are multiples of the step are
  // aligned addresses.
  const size_t step = align > kGranule ? align / kGranule : 1;
  if (align > kMaxAlign) {
    return Status::InvalidArgument();
  }
  port::LockGuard guard(lock_);
  for (size_t first = 0; first + n <= kGranules; first += step) {
    size_t i = 0;
    while (i < n && !Used(first + i)) {
      ++i;
    }
    if (i == n) {
      Mark(first, n, true);
      used_ += n;
      uint8_t* p = storage_ + first * kGranule;
      std::memset(p, 0, n * kGranule);
      drivers::DmaRegion r{p, reinterpret_cast<uintptr_t>(p), size};
      SyncForDevice(r, 0, size);
      return r;
    }
  }
  return Status::NoMemory();
}

void DmaArena::Free(const drivers::DmaRegion& region) {
  auto* p = static_cast<uint8_t*>(region.cpu);
  DEVISO_ASSERT(p >= storage_ && p < storage_ + kBytes && region.size != 0);
  const size_t first = static_cast<size_t>(p - storage_) / kGranule;
  const size_t n = (region.size + kGranule - 1) / kGranule;
  port::LockGuard guard(lock_);
  Mark(first, n, false);
  used_ -= n;
}

void DmaArena::SyncForDevice(const drivers::DmaRegion& region, size_t offset, size_t size) {
  if (!coherent_) {
    arch::CleanDcacheRange(static_cast<uint8_t*>(region.cpu) + offset, size);
  }
}

void DmaArena::SyncForCpu(const drivers::DmaRegion& region, size_t offset, size_t size) {
  if (!coherent_) {
    // Clean+invalidate (DC CIVAC would be exact); invalidate after the device wrote.
    arch::InvalidateDcacheRange(static_cast<uint8_t*>(region.cpu) + offset, size);
  }
}

Result<DmaBuffer> ArenaDmaMemory::Allocate(size_t size, size_t align) {
  DEVISO_ASSIGN_OR_RETURN(drivers::DmaRegion r, arena_.Alloc(size, align));
  Clean(r.cpu, size);  // the arena zeroed it
  return DmaBuffer{r.cpu, r.device_addr, size};
}

void ArenaDmaMemory::Free(const DmaBuffer& buffer) {
  arena_.Free(drivers::DmaRegion{buffer.cpu, buffer.pa, buffer.size});
}

void ArenaDmaMemory::Clean(const void* p, size_t n) {
  if (!coherent_) arch::CleanDcacheRange(p, n);
}

void ArenaDmaMemory::Invalidate(const void* p, size_t n) {
  if (!coherent_) arch::InvalidateDcacheRange(p, n);
}

}  // namespace deviso::qemu_virt
