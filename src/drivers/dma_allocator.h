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

// Which way a transfer moves data: decides the permissions of its mapping and the cache
// maintenance around it (clean before a device reads, invalidate after a device wrote).
enum class DmaDirection : uint8_t {
  kToDevice = 1,       // the device reads memory (mapped read-only for it)
  kFromDevice = 2,     // the device writes memory (mapped for writes)
  kBidirectional = 3,  // both
};

// One buffer made reachable by one device for a transfer (DmaMapper::MapForDevice).
struct DmaMapping {
  uint64_t pa = 0;           // the buffer's physical address
  uint64_t device_addr = 0;  // the address the device must use (IOVA, or PA without an IOMMU)
  size_t size = 0;           // whole pages of page_size(), or a bounced buffer's own size
  DmaDirection direction = DmaDirection::kBidirectional;
};

// The DMA-driver hook (map-for-device / unmap): how a driver makes an existing buffer, e.g.
// one a caller handed to a Zephyr-style dma_config(), reachable by its device for one
// transfer. Drivers call it and never deviso directly, so the same driver runs with an IOMMU
// (deviso maps the pages for that device's context only) and without one (identity).
class DmaMapper {
 public:
  // Makes physical [pa, pa + size) reachable by the device for `direction` and returns the
  // address the device must be given. `pa` and `size` must be multiples of page_size(): a
  // mapping never exposes the rest of a page (a mapper that bounces, ContextDmaMapper with a
  // BounceConfig, takes any buffer and maps a copy of it in whole pages of its own instead). Cleans
  // the CPU caches over the buffer when the device is not cache-coherent. Errors, with no change:
  // -EINVAL (size 0, unaligned, wrap), -EEXIST (already mapped for this device), -ENOMEM (device
  // address space or tables), and the IOMMU's -ETIMEDOUT/-EIO.
  virtual Result<DmaMapping> MapForDevice(uint64_t pa, size_t size, DmaDirection direction) = 0;
  // Ends the mapping, strictly: on success the device can no longer reach the buffer, and for
  // kFromDevice/kBidirectional the CPU caches over it were invalidated so the CPU sees what the
  // device wrote. Errors: -ENOENT (not a live mapping of this mapper; no change), -ETIMEDOUT/
  // -EIO (the IOMMU did not confirm: the buffer may still be reachable and must not be reused).
  virtual Status UnmapForDevice(const DmaMapping& mapping) = 0;
  // The granule MapForDevice() requires (the device's isolation context's page size).
  virtual size_t page_size() const = 0;
  // Whether MapForDevice() takes a buffer of any alignment and size and maps a copy of it in
  // whole pages of its own (bounce pages), so the pages around the buffer are never exposed: a
  // driver then passes its exact range instead of the whole pages around it.
  virtual bool bounces_sub_page() const { return false; }

 protected:
  ~DmaMapper() = default;
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
