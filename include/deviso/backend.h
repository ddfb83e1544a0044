// The interface between deviso's core and an isolation technology (a backend): Arm SMMUv3,
// virtio-iommu, Intel VT-d. The core validates arguments, owns devices, StreamIDs and
// contexts, and serialises calls per domain; a backend owns the hardware.
//
// Locking contract:
//   * The core never calls Map/Unmap/IovaToPhys concurrently on one domain (it holds that
//     context's lock), but calls on different domains, and Create/Destroy/Attach/Detach, may
//     run concurrently from different threads. A backend protects its shared state (command
//     queue, ID allocators, stream table) with its own port::InterruptSpinLock.
//   * Faults are delivered to FaultSink::OnFault from the backend's event handling, which on
//     bare metal is an interrupt handler: OnFault must not block. Once Detach() of a stream
//     (or DestroyDomain()) has returned, the backend no longer calls that domain's sink for
//     it, so the core may retire the sink. A Detach() that failed may be retried.

#ifndef DEVISO_BACKEND_H_
#define DEVISO_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "deviso/deviso.h"
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
  // What a check can prove on this unit (documented capabilities, not options):
  // The unit caches translations, so that a missing invalidation after an unmap would let a
  // DMA through a stale entry (SMMUv3's TLBs). False where the driver sends no invalidation of
  // its own (virtio-iommu: an UNMAP's completion covers whatever the device caches).
  bool caches_translations = false;
  // A lost fault (its queue overflowed) is reported as DEVISO_FAULT_OVERFLOW on the unit.
  // False on virtio-iommu: the device drops events it has no buffer for without a word.
  bool reports_fault_overflow = false;
  // A translation fault (nothing mapped) always says which way the access went. False on
  // virtio-iommu: READ/WRITE are optional in a MAPPING fault (QEMU 7.2 leaves them out).
  bool reports_translation_fault_direction = false;
};

// The unit's work so far in backend-neutral terms (IsolationUnit::unit_stats()); each backend
// keeps finer counters of its own (Smmuv3::stats(), VirtioIommu::stats()).
struct UnitStats {
  uint64_t commands = 0;             // SMMUv3: commands queued; virtio-iommu: requests completed
  uint64_t syncs = 0;                // SMMUv3: CMD_SYNCs; virtio-iommu: request notifications
  uint64_t invalidations = 0;        // TLB invalidation commands (0 where none is sent)
  uint64_t events = 0;               // event records consumed
  uint64_t unrouted_faults = 0;      // faults of streams with no domain (default-deny hits)
  uint64_t unrouted_suppressed = 0;  // of the unit's reports, those its rate limit held back
  uint64_t event_overflows = 0;      // fault-queue overflows reported (faults lost)
  uint64_t timeouts = 0;             // hardware waits that ran out (a request, a CMD_SYNC)
  uint64_t recoveries = 0;           // successful Recover()
};

// The unrouted handler's default rate, as a context's (kDefaultFaultCallbacksPerSecond).
inline constexpr uint32_t kDefaultUnroutedFaultsPerSecond = 16;

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

// One mapped extent of a domain, as IsolationUnit::ForEachLeaf() and NearLeaf() report it:
// leaves that follow each other in IOVA and in PA with the same permissions, memory type and
// leaf size, merged into one range.
struct LeafExtent {
  Iova iova = 0;                    // first device address
  Paddr pa = 0;                     // the physical address `iova` translates to
  uint64_t size = 0;                // bytes (> 0)
  Perms perms = 0;                  // kPermRead | kPermWrite | kPermExec
  MemType type = MemType::kNormal;  // memory type of every leaf in the extent
  uint64_t leaf_size = 0;           // bytes of each leaf entry (page or block) in the extent
};

// Receives the extents of IsolationUnit::ForEachLeaf(), in ascending IOVA order.
class LeafVisitor {
 public:
  virtual ~LeafVisitor() = default;
  // One extent; return false to stop the walk.
  virtual bool Visit(const LeafExtent& extent) = 0;
};

// Where an address lies relative to a domain's mappings (IsolationUnit::NearLeaf()).
struct NearestLeaf {
  // How `extent` relates to the address asked about.
  enum class Where : uint8_t {
    kInside,  // the address lies in `extent`
    kAfter,   // the address lies past the end of `extent` (an extent below it)
    kBefore,  // the address lies before `extent` (an extent above it)
  };
  LeafExtent extent;             // the nearest extent (merged as ForEachLeaf() merges)
  Where where = Where::kInside;  // how `extent` relates to the address
  // kInside: offset from extent.iova; kAfter: bytes past the extent's last byte, counted from
  // its end (iova - (extent.iova + extent.size)); kBefore: extent.iova - iova.
  uint64_t distance = 0;
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

  // Lifecycle and reports, the same on every backend, so that a platform drives any unit
  // through one path. Probe and Init take what is the backend's own (its Config) and stay on
  // the backend; once Init succeeded these apply. The defaults are a unit with no event queue
  // and no teardown or recovery (test doubles).
  //
  // Consumes a bounded number of event records, delivering each fault to its domain's sink or
  // the unrouted handler; true if records remain (call again until false: a drain). Safe from
  // the unit's interrupt handler. Nothing on a broken unit.
  virtual bool HandleEvents() { return false; }
  // HandleEvents() until it reports nothing left, but bounded: a unit that keeps producing
  // records (a fault storm, a hostile or broken part) cannot hold the caller; what it produces
  // meanwhile waits for the next drain. Returns true if records remain. Use this, never a
  // `while (HandleEvents())` loop. The default is one HandleEvents() call, for a backend whose
  // every call takes all that is there (virtio-iommu); SMMUv3 calls it up to one full event
  // queue's worth of times.
  virtual bool DrainEvents() { return HandleEvents(); }
  // Stops the unit translating (bus masters must be stopped first) and releases its queues.
  // Errors: -EINVAL (not running), -ETIMEDOUT, -ENOTSUP (no teardown in this build or backend).
  virtual Status Shutdown() { return Status::NotSupported(); }
  // Re-initialises a broken() unit, keeping its domains, attachments and mappings (the
  // backend documents what it resets). Errors: -EINVAL (not broken or not initialised),
  // -ETIMEDOUT/-EIO (still broken), -ENOTSUP.
  virtual Status Recover() { return Status::NotSupported(); }
  // Receives faults of StreamIDs with no domain (default-deny hits) and unit-level faults
  // (DEVISO_FAULT_OVERFLOW, sid ~0), in event-handling context, at most `per_second` times a
  // second (bursts of `per_second`; the rest is counted in unit_stats().unrouted_suppressed).
  // Errors: -EINVAL (per_second 0), -ENOTSUP (built with DEVISO_CONFIG_FAULT_REPORTS=OFF).
  virtual Status SetUnroutedFaultHandler(deviso_fault_handler_t handler, void* user,
                                         uint32_t per_second = kDefaultUnroutedFaultsPerSecond) {
    (void)handler;
    (void)user;
    (void)per_second;
    return Status::NotSupported();
  }
  // A snapshot of the unit's counters (callable from any thread).
  virtual UnitStats unit_stats() const { return {}; }
  // Writes one line (no newline) describing the unit and what it offers to `out`, as
  // snprintf does (truncated to out_size, always terminated if out_size > 0); returns the
  // length of the whole line.
  virtual size_t Describe(char* out, size_t out_size) const;

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

  // Visits every mapped extent of `domain` in ascending IOVA order (LeafExtent: contiguous
  // leaves merged), stopping early if the visitor returns false. Called under the domain's
  // context lock, as Map; reads only, changes nothing. The visitor must not call into the unit.
  // Errors: -ENOTSUP (the backend cannot list its mappings: the default).
  virtual Status ForEachLeaf(Domain* domain, LeafVisitor& visitor) {
    (void)domain;
    (void)visitor;
    return Status::NotSupported();
  }
  // The extent of `domain` holding `iova`, else the nearer of the closest extent below it and
  // the closest above it (a tie goes to the one below; see NearestLeaf). The default scans
  // ForEachLeaf() (cost linear in the number of extents). Called under the context lock. Errors:
  // -ENOENT (nothing mapped), -ENOTSUP (as ForEachLeaf).
  virtual Result<NearestLeaf> NearLeaf(Domain* domain, Iova iova);

 private:
  bool broken_ = false;  // __atomic: set from error paths under any of the backend's locks
};

}  // namespace deviso

#endif  // DEVISO_BACKEND_H_
