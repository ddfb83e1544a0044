// A block pool bound to one device's deviso context: the RFC's Memory Blocks Allocator
// integration. Drivers take it as a drivers::DmaAllocator: Alloc() returns memory the device
// can reach, at its device address; the memory never shares a page with anything else (blocks
// are whole pages), so there is no sub-page exposure.
//
// Two modes:
//
//   kStrict    Alloc() maps the allocation's blocks for the device (identity or at an IOVA)
//              and Free() unmaps them, strictly (the IOTLB invalidation completed), before the
//              blocks go back to the pool. The device reaches exactly the live allocations,
//              never a freed block. Cost: a map per allocation and an unmap + invalidation +
//              sync per free, and leaves of the context's page size (4 KiB: one IOTLB entry per
//              page). Any pool; page-granular.
//
//   kPoolWide  Bind() maps the whole pool once, with block mappings (its physical base and its
//              size must be multiples of 2 MiB, and its device base too: 2 MiB leaves with a
//              4 KiB granule, the fast path the QEMU benchmark measured at bypass speed);
//              Alloc()/Free() touch no page table. Trade-off: a freed block stays reachable by
//              the device, so whatever the next owner writes there is visible to it. Use it
//              only for a pool private to that one device (its rings and buffers), never for
//              memory handed on to anything else.
//
// Cache maintenance for a non-coherent device (DeviceBinding::coherent = false): Alloc()
// zeroes and cleans the memory; SyncForDevice() cleans and SyncForCpu() invalidates the given
// range through DeviceBinding::cache. Mappings are kNormal for a coherent device,
// kNormalNonCacheable otherwise.
//
// Errors: exhaustion is -ENOMEM; Release() of a region the pool did not hand out, or handed out
// and got back already, fails (-EINVAL foreign, -ENOENT double free) and changes nothing.
// Capacity: at most `records.size()` allocations live at once (StaticDevicePool<N>).
// Thread-safe: a port::InterruptSpinLock serialises the pool's bookkeeping.

#ifndef DEVISO_SRC_DMA_DEVICE_POOL_H_
#define DEVISO_SRC_DMA_DEVICE_POOL_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "deviso/port/os.h"
#include "dma/block_pool.h"
#include "dma/device_binding.h"
#include "drivers/dma_allocator.h"

namespace deviso::dma {

enum class PoolMode : uint8_t { kStrict, kPoolWide };

// The alignment and size granule of a pool mapped pool-wide: one level-2 block (4 KiB granule).
inline constexpr uint64_t kPoolWideAlign = uint64_t{2} << 20;

// Final, and never deleted through DmaAllocator (whose destructor is protected).
// NOLINTNEXTLINE(cppcoreguidelines-virtual-class-destructor)
class DevicePool final : public drivers::DmaAllocator {
 public:
  // One live allocation.
  struct Record {
    void* cpu = nullptr;  // null: free record
    Paddr pa = 0;
    Iova device_addr = 0;
    size_t size = 0;      // whole blocks
    bool leaked = false;  // the unmap was not confirmed: never reused
  };

  // `blocks` (which must outlive the pool) provides the memory; `records` the bookkeeping.
  DevicePool(BlockPool& blocks, std::span<Record> records) : blocks_(blocks), records_(records) {}
  // Unbinds (ignoring failure: see Unbind).
  ~DevicePool();
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;

  // Binds the pool to `device` in `mode`. kPoolWide maps the whole pool here, read-write.
  // Errors, with no change:
  //   -EEXIST  already bound
  //   -EINVAL  the binding is bad (DeviceBinding::Validate); the pool invalid; its block size
  //            not a multiple of the context's page size; kPoolWide with the pool's physical
  //            base or size not a multiple of kPoolWideAlign; kIdentity and the pool overlaps a
  //            reserved window (kPoolWide; kStrict checks each allocation)
  //   -ENOMEM  kPoolWide, kTranslated: no 2 MiB-aligned IOVA range; the context's tables
  //   and Context::Map's other errors (kPoolWide).
  Status Bind(PoolMode mode, const DeviceBinding& device);
  // Unbinds: kPoolWide unmaps the pool (strictly). Errors, with no change: -ENOENT (not bound),
  // -EBUSY (allocations live, leaked ones included), Context::Unmap's -ETIMEDOUT/-EIO (the pool
  // stays bound and mapped; the call may be retried).
  Status Unbind();

  // drivers::DmaAllocator. Alloc: zeroed whole blocks (size rounded up), contiguous, with the
  // physical and device address aligned to `align` (and so the CPU pointer, on an identity-
  // mapped port). Errors, with no change: -EINVAL (size 0, align not a power of two, not bound,
  // kPoolWide + kTranslated with align > kPoolWideAlign, kStrict + kIdentity and the blocks
  // fall in a reserved window), -ENOMEM (no such run of blocks, records full, IOVA window or
  // tables exhausted), Context::Map's errors (kStrict).
  Result<drivers::DmaRegion> Alloc(size_t size, size_t align) override;
  // sys_mem_blocks_alloc on the device side: out.size() single blocks, not necessarily
  // adjacent, each as its own region (kStrict: each mapped). All or nothing. Errors, with no
  // change: -EINVAL (out empty, not bound), -ENOMEM (fewer free blocks or records than asked),
  // and Alloc()'s.
  Status AllocBlocks(std::span<drivers::DmaRegion> out);
  // Release(), with errors counted in free_errors().
  void Free(const drivers::DmaRegion& region) override;
  void SyncForDevice(const drivers::DmaRegion& region, size_t offset, size_t size) override;
  void SyncForCpu(const drivers::DmaRegion& region, size_t offset, size_t size) override;

  // Returns a region Alloc() gave (cpu, device_addr and size as returned). kStrict unmaps it
  // first. Errors, with no change: -EINVAL (not from this pool: the pointer is outside it),
  // -ENOENT (inside the pool but not a live allocation with that device address and size: a
  // double free, or a part of one), Context::Unmap's -ETIMEDOUT/-EIO (kStrict: the blocks are
  // leaked, never reused, and counted in leaked_blocks(); the region is no longer live).
  Status Release(const drivers::DmaRegion& region);

  bool bound() const;
  PoolMode mode() const { return mode_; }
  // kPoolWide: the device address of the pool's first block.
  Iova device_base() const { return device_base_; }
  BlockPool& blocks() const { return blocks_; }
  size_t live_allocations() const;
  size_t leaked_blocks() const;
  size_t free_errors() const;

 private:
  // The record of a live region, or null. Callers hold lock_.
  Record* FindLocked(const drivers::DmaRegion& region);
  // Whether `region` + [offset, offset + size) is a live allocation's range. Callers hold lock_.
  bool InRegionLocked(const drivers::DmaRegion& region, size_t offset, size_t size);

  BlockPool& blocks_;
  std::span<Record> records_;  // guarded by lock_
  mutable port::InterruptSpinLock lock_;
  // Guarded by lock_.
  bool bound_ = false;
  PoolMode mode_ = PoolMode::kStrict;
  DeviceBinding device_;
  Iova device_base_ = 0;
  size_t leaked_blocks_ = 0;
  size_t free_errors_ = 0;
};

// A pool with records for kMaxAllocations live allocations inside the object.
template <size_t kMaxAllocations>
class StaticDevicePool {
 public:
  explicit StaticDevicePool(BlockPool& blocks) : pool_(blocks, records_) {}
  DevicePool& pool() { return pool_; }
  DevicePool* operator->() { return &pool_; }

 private:
  DevicePool::Record records_[kMaxAllocations];
  DevicePool pool_;
};

}  // namespace deviso::dma

#endif  // DEVISO_SRC_DMA_DEVICE_POOL_H_
