// A DmaAllocator over a static arena of RAM, for devices that reach memory by physical address
// (no IOMMU, or the SMMU with SMMUEN=0 so that all DMA bypasses): the device address is the
// physical address, which is the CPU address under the identity map.
//
// This is the piece deviso replaces: an isolating allocator hands out the same kind of memory
// but returns an IOVA mapped in the device's context.

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_DMA_ARENA_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_DMA_ARENA_H_

#include <cstddef>
#include <cstdint>

#include "core/dma_memory.h"
#include "deviso/port/os.h"
#include "drivers/dma_allocator.h"

namespace deviso::qemu_virt {

class DmaArena final : public drivers::DmaAllocator {
 public:
  static constexpr size_t kGranule = 256;  // allocation unit
  static constexpr size_t kBytes = 4 << 20;
  // Largest alignment served: queues and stream tables of an SMMU are aligned to their size,
  // and 2 MiB lets a buffer be mapped with block descriptors.
  static constexpr size_t kMaxAlign = 2 << 20;

  // `coherent`: the devices snoop the CPU caches (the DTB's dma-coherent), so the Sync calls
  // need no cache maintenance.
  explicit DmaArena(bool coherent) : coherent_(coherent) {}

  // First fit over a bitmap of 256-byte granules; zeroes the memory. Errors: -EINVAL (size 0,
  // align not a power of two or above kMaxAlign), -ENOMEM.
  Result<drivers::DmaRegion> Alloc(size_t size, size_t align) override;
  void Free(const drivers::DmaRegion& region) override;
  void SyncForDevice(const drivers::DmaRegion& region, size_t offset, size_t size) override;
  void SyncForCpu(const drivers::DmaRegion& region, size_t offset, size_t size) override;

  size_t bytes_in_use() const { return used_ * kGranule; }
  uint64_t base() const { return reinterpret_cast<uintptr_t>(storage_); }

 private:
  static constexpr size_t kGranules = kBytes / kGranule;
  bool Used(size_t i) const { return ((bitmap_[i / 64] >> (i % 64)) & 1) != 0; }
  void Mark(size_t first, size_t n, bool used);

  bool coherent_;
  port::InterruptSpinLock lock_;
  size_t used_ = 0;
  uint64_t bitmap_[kGranules / 64] = {};
  alignas(kMaxAlign) uint8_t storage_[kBytes];
};

// DmaMemory (an IOMMU's own structures: queues, stream tables, virtqueues) over the arena. Clean
// and Invalidate are DC CVAC / DC CIVAC loops when the SMMU is not coherent, nothing when it is.
class ArenaDmaMemory final : public DmaMemory {
 public:
  ArenaDmaMemory(DmaArena& arena, bool coherent) : arena_(arena), coherent_(coherent) {}
  Result<DmaBuffer> Allocate(size_t size, size_t align) override;
  void Free(const DmaBuffer& buffer) override;
  void Clean(const void* p, size_t n) override;
  void Invalidate(const void* p, size_t n) override;

 private:
  DmaArena& arena_;
  bool coherent_;
};

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_DMA_ARENA_H_
