// The interface between deviso's core and an isolation technology (a backend): Arm SMMUv3,
// virtio-iommu, Intel VT-d. The core validates arguments, owns devices, StreamIDs and
// contexts, and serialises calls per domain; a backend owns the hardware.
//
// Locking contract:
//   * The core never calls Map/Unmap/IovaToPhys concurrently on one domain (it holds that
//     context's lock), but calls on different domains, and Create/Destroy/Attach/Detach, may
//     run concurrently from different threads. A backend protects its shared state (command
//     queue, ID allocators, stream table) with its own port::Mutex.
//   * Faults are delivered to FaultSink::OnFault from the backend's event handling, which on
//     bare metal is an interrupt handler: OnFault must not block. Once Detach() of a stream
//     (or DestroyDomain()) has returned, the backend no longer calls that domain's sink for
//     it, so the core may retire the sink. A Detach() that failed may be retried.

#ifndef DEVISO_BACKEND_H_
#define DEVISO_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "deviso/status.h"
#include "deviso/types.h"

namespace deviso {

// What a unit offers (deviso_caps without the C layout).
struct UnitCaps {
  const char* backend = "";  // "smmuv3", "virtio-iommu", ...
  const char* name = "";     // instance name for reports, e.g. "smmuv3@9050000"
  uint64_t page_sizes = 0;   // bit n: 2^n-byte leaves can be mapped
  uint8_t ias = 0;           // input (device) address bits of a default domain
  uint8_t oas = 0;           // output (physical) address bits
  uint8_t stages = 0;        // bit 0: stage 1, bit 1: stage 2
  bool coherent = false;     // table walks and queues are cache-coherent
  uint32_t max_sid = 0;      // largest valid StreamID / endpoint ID
};

// How IsolationUnit::CreateDomain() (Registry::AllocContext(), CreateDomain()) builds a domain.
struct DomainOptions {
  // The translation stage of the domain's tables.
  enum class Stage : uint8_t { kDefault, kStage1, kStage2 };
  Stage stage = Stage::kDefault;  // kDefault: the backend's preferred (stage 1 on SMMUv3)
  uint64_t page_size = 0;         // 0: the smallest the unit supports
  uint8_t ias = 0;                // 0: the unit's default
  // On a unit that cannot replace a block by a table without a break (SMMUv3 IDR3.BBML = 0),
  // splitting a block for a partial unmap is break-before-make: for the time of one
  // invalidation the addresses that stay mapped in that block fault, and a DMA to them is
  // lost. Such an unmap is refused (-ENOTSUP, nothing changed) unless this is set. Units
  // with hitless replacement (BBML = 2, virtio-iommu) ignore it.
  bool allow_block_split_window = false;
};

// A device-address range a unit does not translate normally, reported so that IOVA allocators
// keep out of it: virtio-iommu's PROBE reserved regions (virtio 1.2, 5.13.6.8.2), e.g. an MSI
// doorbell window that passes through untranslated.
struct ReservedRegion {
  // What happens to an access in the region.
  enum class Kind : uint8_t {
    kReserved,  // accesses are not translated and fault
    kMsi,       // MSI doorbell: accesses pass through untranslated (bypass)
  };
  Iova start = 0;               // first device address of the region
  uint64_t size = 0;            // bytes
  Kind kind = Kind::kReserved;  // how the unit treats accesses there
};

// Receives the faults of the streams attached to one domain. Implemented by the core.
class FaultSink {
 public:
  virtual ~FaultSink() = default;
  // One fault of a stream of the domain; called from event handling (may be an interrupt).
  virtual void OnFault(const Fault& fault) = 0;
};

// A backend's translation domain (an address space). Backends derive from it and downcast
// their own objects with static_cast (no RTTI).
class Domain {
 public:
  // The granule of this domain: "page" in the API's sense.
  uint64_t page_size() const { return page_size_; }
  // Its input (device) address size in bits.
  uint8_t ias() const { return ias_; }

 protected:
  Domain() = default;
  ~Domain() = default;
  uint64_t page_size_ = 0;  // set by the backend when it creates the domain
  uint8_t ias_ = 0;         // set by the backend when it creates the domain
};

// One isolation unit (an IOMMU instance) as the core drives it: what a backend implements
// (see the top of this file for the locking contract).
class IsolationUnit {
 public:
  virtual ~IsolationUnit() = default;
  // What the unit offers, and its name for reports; fixed once the unit is registered.
  virtual const UnitCaps& caps() const = 0;

  // True once the unit can no longer confirm that its hardware completed what it was asked
  // (an SMMU CMD_SYNC that timed out, service failure mode, a virtio-iommu request never
  // completed): whatever it was asked last may or may not have taken effect, so nothing it may
  // still read can be freed or reused. The core then refuses every operation on the unit's
  // contexts with -EIO before calling the backend, and consumes nothing for it (no context
  // slot); the backend refuses them too. Only the backend's documented recovery clears it
  // (Smmuv3::Recover, VirtioIommu::Recover). Read with acquire: callable from any thread.
  bool broken() const { return __atomic_load_n(&broken_, __ATOMIC_ACQUIRE); }

 protected:
  // Backends set and clear the shared broken state (see broken()).
  void SetBroken(bool broken) { __atomic_store_n(&broken_, broken, __ATOMIC_RELEASE); }

 public:
  // Writes up to out.size() of the unit's reserved regions (ReservedRegion) for `sid` to `out`
  // and returns how many there are in all (which may exceed out.size()). The default: none.
  virtual size_t ReservedRegions(uint32_t sid, std::span<ReservedRegion> out) const {
    (void)sid;
    (void)out;
    return 0;
  }

  // True if [pa, pa + size) overlaps memory the unit itself reads or writes: for an SMMU its
  // stream table, CDs, command and event queues and page-table pools; for virtio-iommu its
  // virtqueues and request buffers. The core refuses to map such memory for any device
  // (-EPERM): a device given it could rewrite translations (a bypass STE for a sibling stream)
  // and escape. Backends refuse it in Map too. The default: none.
  virtual bool UsesMemory(Paddr pa, uint64_t size) const {
    (void)pa;
    (void)size;
    return false;
  }

  // -EINVAL if `sid` is not a StreamID this unit can serve.
  virtual Status ValidateStream(uint32_t sid) const = 0;

  // Creates an empty domain; `sink` (may be null) receives faults of its streams.
  // Errors: -EINVAL/-ENOTSUP (options), -ENOMEM (domain, table or ID pools).
  virtual Result<Domain*> CreateDomain(const DomainOptions& options, FaultSink* sink) = 0;
  // Destroys a domain with no streams attached, reclaiming every table after invalidation.
  // Errors: -EBUSY (streams attached), -ETIMEDOUT/-EIO (invalidation not confirmed: the
  // domain stays allocated).
  virtual Status DestroyDomain(Domain* domain) = 0;

  // Makes `sid` translate through `domain`. Errors: -EINVAL, -EEXIST (attached elsewhere),
  // -ENOMEM (e.g. a second-level stream table), -ETIMEDOUT/-EIO.
  virtual Status Attach(Domain* domain, uint32_t sid) = 0;
  // Returns `sid` to blocked (default-deny, reported) and invalidates its cached
  // configuration and translations. Errors: -ENOENT (not attached there), -ETIMEDOUT/-EIO.
  virtual Status Detach(Domain* domain, uint32_t sid) = 0;

  // As pgtable::PageTable::Map/Unmap; Unmap is strict: it returns 0 only after the
  // invalidation completed.
  virtual Status Map(Domain* domain, Iova iova, Paddr pa, uint64_t size, Perms perms,
                     MemType type) = 0;
  // See Map.
  virtual Status Unmap(Domain* domain, Iova iova, uint64_t size) = 0;
  // As pgtable::PageTable::IovaToPhys: -ENOENT if not mapped, -EINVAL beyond the input size.
  virtual Result<Paddr> IovaToPhys(Domain* domain, Iova iova) = 0;

 private:
  bool broken_ = false;  // __atomic: set from error paths under any of the backend's locks
};

}  // namespace deviso

#endif  // DEVISO_BACKEND_H_
