// The DMA-driver hook (drivers::DmaMapper) over a deviso context: a driver handed a buffer
// (e.g. by a Zephyr-style dma_config()) makes it reachable by its device for one transfer,
// through deviso, identity-mapped or at an IOVA from an allocator (DeviceBinding).
//
// Per direction:
//   kToDevice      mapped read-only for the device;
//   kFromDevice    mapped write-only where the context can express it; stage 1 cannot (its
//                  -ENOTSUP), and there it is mapped read-write: the device could then read
//                  back only its own buffer's pages, nothing else;
//   kBidirectional read-write.
// Cache maintenance when the device is not coherent: MapForDevice cleans the buffer for every
// direction (for kFromDevice too, so no dirty line can later be written back over what the
// device wrote; as Linux on arm64 does since 5.19), UnmapForDevice invalidates it for
// kFromDevice and kBidirectional.
//
// Buffers the context already maps (DeviceBinding::adopt_identity_mappings): a range the
// context maps identically with sufficient permissions is used in place, neither mapped nor
// unmapped by the hook, so a program may deviso_map() a buffer itself and still hand it to a
// driver that maps every transfer (the seed README's example, examples/seed_dma).
//
// Sub-page buffers (dma/bounce.h, docs/dma_pool.md): with a BounceConfig, a buffer that is not
// page-aligned in address or size (or every buffer, with BounceConfig::always) is copied
// through a run of whole bounce pages, and only that run is mapped: its DmaMapping keeps the
// buffer's own pa and size, and device_addr is the run's device address (the buffer's first
// byte). Without one such a buffer is -EINVAL, as before.
//
// Capacity: at most `storage.size()` live mappings (StaticContextDmaMapper<N> holds its own).
// Thread-safe: a port::InterruptSpinLock serialises calls on one mapper.

#ifndef DEVISO_SRC_DMA_DMA_MAPPER_H_
#define DEVISO_SRC_DMA_DMA_MAPPER_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "deviso/port/os.h"
#include "dma/bounce.h"
#include "dma/device_binding.h"
#include "drivers/dma_allocator.h"

namespace deviso::dma {

// Final, and never deleted through DmaMapper (whose destructor is protected).
// NOLINTNEXTLINE(cppcoreguidelines-virtual-class-destructor)
class ContextDmaMapper final : public drivers::DmaMapper {
 public:
  // One live mapping: what MapForDevice returned (size 0: a free slot), and whether it was
  // adopted (the context mapped the range before; UnmapForDevice leaves it mapped).
  struct Slot {
    drivers::DmaMapping mapping;
    bool adopted = false;
    BounceRun bounce;  // cpu != null: a bounced buffer, mapped through this run
  };
  // The hook's work so far.
  struct Counters {
    uint64_t maps = 0;       // MapForDevice calls that mapped the range
    uint64_t adoptions = 0;  // MapForDevice calls that used a range the context already mapped
    uint64_t releases = 0;   // successful UnmapForDevice calls (of either kind)
    uint64_t bounces = 0;    // MapForDevice calls that mapped a run of bounce pages
  };

  // `binding` as in DeviceBinding; `storage` records live mappings. The binding is checked by
  // every MapForDevice (-EINVAL if DeviceBinding::Validate() fails).
  ContextDmaMapper(const DeviceBinding& binding, std::span<Slot> storage)
      : binding_(binding), live_(storage) {}
  // The same, with sub-page buffers bounced (`bounce` checked by every MapForDevice: -EINVAL
  // if BounceConfig::Validate fails).
  ContextDmaMapper(const DeviceBinding& binding, const BounceConfig& bounce,
                   std::span<Slot> storage)
      : binding_(binding), bounce_(bounce), live_(storage) {}
  ContextDmaMapper(const ContextDmaMapper&) = delete;
  ContextDmaMapper& operator=(const ContextDmaMapper&) = delete;
  ~ContextDmaMapper() = default;

  // drivers::DmaMapper. A buffer bounced (see above) is never adopted, and besides the errors
  // below MapForDevice gives -ENOMEM when the bounce pool has no run of its size free.
  // With binding().adopt_identity_mappings, a range whose first page the
  // context already maps is adopted if every page of it translates to itself and the
  // direction's permissions are within adopt_identity_mappings: the mapping returned is
  // identity, nothing is mapped (the buffer is still cleaned for a non-coherent device), and
  // UnmapForDevice unmaps nothing (it still invalidates). Errors of MapForDevice, with no
  // change: -EINVAL (size 0, unaligned, wrap, unknown direction, a bad binding, identity and the
  // range overlaps a reserved window), -EEXIST (overlaps a live mapping of this mapper, or
  // already mapped in the context and not adopted: adoption off, partly mapped, mapped
  // elsewhere, or permissions beyond adopt_identity_mappings),
  // -ENOMEM (mapping table full, IOVA window or page tables exhausted), and the IOMMU's
  // -ETIMEDOUT/-EIO. UnmapForDevice: -ENOENT unless `mapping` equals a live mapping of this
  // mapper field for field (no change); Context::Unmap's -ETIMEDOUT/-EIO (the mapping stays
  // recorded as live: the buffer must not be reused; the call may be retried; a bounced
  // buffer's run stays held and nothing is copied back).
  Result<drivers::DmaMapping> MapForDevice(uint64_t pa, size_t size,
                                           drivers::DmaDirection direction) override;
  Status UnmapForDevice(const drivers::DmaMapping& mapping) override;
  size_t page_size() const override { return static_cast<size_t>(binding_.context.page_size()); }
  bool bounces_sub_page() const override { return bounce_.enabled(); }

  // For a mapping that stays live across transfers (a ring the device reads and writes):
  // SyncForDevice makes what the CPU wrote to the buffer visible to the device (a bounced
  // buffer is copied into its run again, then cleaned; otherwise the buffer is cleaned);
  // SyncForCpu makes what the device wrote visible to the CPU (invalidate; a bounced buffer's
  // run is then copied back over it). Each does only what the mapping's direction needs.
  // Errors, with no change: -ENOENT (not a live mapping of this mapper, as UnmapForDevice).
  Status SyncForDevice(const drivers::DmaMapping& mapping);
  Status SyncForCpu(const drivers::DmaMapping& mapping);

  size_t live_mappings() const;
  Counters counters() const;
  const DeviceBinding& binding() const { return binding_; }

 private:
  // Whether [pa, pa + size) is adoptable: see MapForDevice. -EEXIST if the context maps some of
  // it otherwise; Ok(false) if its first page is not mapped (map it as usual).
  Result<bool> Adoptable(uint64_t pa, size_t size, Perms perms) const;
  // The live slot equal to `mapping` field for field, or null. lock_ held.
  Slot* FindLocked(const drivers::DmaMapping& mapping);

  const DeviceBinding binding_;
  const BounceConfig bounce_;
  mutable port::InterruptSpinLock lock_;
  std::span<Slot> live_;  // guarded by lock_
  Counters counters_;     // guarded by lock_
};

// A mapper with storage for kMaxMappings live mappings inside the object.
template <size_t kMaxMappings>
// NOLINTNEXTLINE(cppcoreguidelines-virtual-class-destructor)
class StaticContextDmaMapper final : public drivers::DmaMapper {
 public:
  explicit StaticContextDmaMapper(const DeviceBinding& binding) : mapper_(binding, storage_) {}
  StaticContextDmaMapper(const DeviceBinding& binding, const BounceConfig& bounce)
      : mapper_(binding, bounce, storage_) {}
  Result<drivers::DmaMapping> MapForDevice(uint64_t pa, size_t size,
                                           drivers::DmaDirection direction) override {
    return mapper_.MapForDevice(pa, size, direction);
  }
  Status UnmapForDevice(const drivers::DmaMapping& mapping) override {
    return mapper_.UnmapForDevice(mapping);
  }
  size_t page_size() const override { return mapper_.page_size(); }
  bool bounces_sub_page() const override { return mapper_.bounces_sub_page(); }
  Status SyncForDevice(const drivers::DmaMapping& mapping) {
    return mapper_.SyncForDevice(mapping);
  }
  Status SyncForCpu(const drivers::DmaMapping& mapping) { return mapper_.SyncForCpu(mapping); }
  size_t live_mappings() const { return mapper_.live_mappings(); }
  ContextDmaMapper::Counters counters() const { return mapper_.counters(); }
  const DeviceBinding& binding() const { return mapper_.binding(); }

 private:
  ContextDmaMapper::Slot storage_[kMaxMappings];
  ContextDmaMapper mapper_;
};

}  // namespace deviso::dma

#endif  // DEVISO_SRC_DMA_DMA_MAPPER_H_
