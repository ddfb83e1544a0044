// The DMA-buffer seam for device drivers (AHCI, later NVMe and others).
//
// A driver never chooses a physical address: every structure a device reads or writes by DMA
// (command lists, FIS areas, command tables, data buffers) comes from a DmaAllocator, which
// returns the CPU's pointer and the address the *device* must use. On a system without an IOMMU
// (or with the SMMU in bypass) the device address is the physical address; under deviso it is
// the IOVA of an isolation mapping in the device's context, so the allocator is where the
// integration happens.
//
// This differs from deviso::DmaMemory (src/core/dma_memory.h), which serves the IOMMU's own
// structures (queues, stream tables) by physical address.

#ifndef DEVISO_SRC_DRIVERS_DMA_ALLOCATOR_H_
#define DEVISO_SRC_DRIVERS_DMA_ALLOCATOR_H_

#include <cstddef>
#include <cstdint>

#include "deviso/status.h"

namespace deviso::drivers {

// Memory a device may access by DMA.
struct DmaRegion {
  void* cpu = nullptr;       // the CPU's pointer
  uint64_t device_addr = 0;  // the address the device uses (PA, or IOVA behind an IOMMU)
  size_t size = 0;
};

class DmaAllocator {
 public:
  // Zeroed memory of at least `size` bytes whose CPU pointer and device address are both aligned
  // to `align` (a power of two) and contiguous in the device's address space.
  // Errors: -EINVAL (size 0, align not a power of two), -ENOMEM.
  virtual Result<DmaRegion> Alloc(size_t size, size_t align) = 0;
  // Returns a region from Alloc(). The device must no longer access it.
  virtual void Free(const DmaRegion& region) = 0;
  // Makes CPU writes to [offset, offset + size) of `region` visible to the device (a cache
  // clean for a non-coherent device; nothing for a coherent one, e.g. QEMU `virt` PCIe).
  virtual void SyncForDevice(const DmaRegion& region, size_t offset, size_t size) = 0;
  // Makes device writes to [offset, offset + size) visible to the CPU (a cache invalidate for a
  // non-coherent device).
  virtual void SyncForCpu(const DmaRegion& region, size_t offset, size_t size) = 0;

 protected:
  ~DmaAllocator() = default;
};

// A piece of a transfer: `bytes` at `offset` into an allocated region.
struct DmaSegment {
  const DmaRegion* region = nullptr;
  size_t offset = 0;
  size_t bytes = 0;
  uint64_t device_addr() const { return region->device_addr + offset; }
};

}  // namespace deviso::drivers

#endif  // DEVISO_SRC_DRIVERS_DMA_ALLOCATOR_H_
