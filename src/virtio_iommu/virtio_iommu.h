// virtio-iommu driver (OASIS virtio 1.2, 5.13; virtio-over-PCI 4.1): deviso's second
// isolation backend. Design and the device's real behaviour: docs/virtio_iommu.md.
//
// One VirtioIommu drives one virtio-iommu PCI function. Each deviso domain is a virtio-iommu
// domain (an ID from the device's domain range); Attach/Detach send ATTACH/DETACH, Map/Unmap
// send MAP/UNMAP on the request queue; faults arrive on the event queue.
//
// Default-deny: Init() negotiates VIRTIO_IOMMU_F_BYPASS_CONFIG and writes config.bypass = 0
// before DRIVER_OK, so from the moment Init() returns every endpoint that is not attached is
// blocked (and its DMA is reported). A device without BYPASS_CONFIG is refused (-ENOTSUP)
// unless Config::allow_without_bypass_config: the spec (5.13.3) then says the device should
// block, but QEMU 7.2 lets every unattached endpoint bypass. Recover() keeps bypass cleared
// across a device reset.
//
// MAP granularity: one MAP request per page (the domain's granule), batched up to kBatch
// requests per notification. The device refuses an UNMAP that covers part of a mapping (RANGE)
// and a MAP that overlaps one (INVAL), so a mapping can never be split in place, nor its
// remainder mapped before it is gone; with one mapping per page, every page-aligned UNMAP
// covers whole mappings and the pages left mapped are never touched. One UNMAP request removes
// any number of them.
//
// The record: each domain keeps its mapped extents (extent_map.h; kMaxExtents per domain). It
// answers IovaToPhys, turns the device's INVAL-on-overlap into -EEXIST and its OK-on-nothing
// into -ENOENT before any request is sent, and lets Recover() and a re-attach replay the
// mappings. Map and Unmap validate (arguments, then the record's plan), send, then record.
//
// Strict: Unmap returns only after the device acknowledged the UNMAP in the used ring.
// Completion is polled under a deadline (Config::timeout_ns); a request that never completes
// fails with -ETIMEDOUT and marks the unit broken: every later operation fails with -EIO until
// Recover() succeeds. A garbled answer (docs/virtio_iommu.md "A hostile device"; Stats::
// protocol_errors) fails with -EIO and marks the unit broken the same way: the request's
// effect is unknown, so the record keeps what it held (an Unmap's range stays recorded as
// reachable; a Map's pages the device may hold stay reachable until Recover() resets it) and
// nothing is reused before the reset.
//
// Locking: `lock_` protects the domains, streams, probe cache and the request queue (a request
// is sent and waited for under it); `evt_lock_` the event queue. Order: evt_lock_, then lock_.
// On bare metal both are IRQ-masking spin locks, so HandleEvents() may run from an interrupt.

#ifndef DEVISO_SRC_VIRTIO_IOMMU_VIRTIO_IOMMU_H_
#define DEVISO_SRC_VIRTIO_IOMMU_VIRTIO_IOMMU_H_

#include <cstddef>
#include <cstdint>

#include "core/dma_memory.h"
#include "core/domain_slots.h"
#include "core/stream_slots.h"
#include "core/unit_faults.h"
#include "deviso/backend.h"
#include "deviso/config.h"
#include "deviso/port/os.h"
#include "virtio_iommu/extent_map.h"
#include "virtio_iommu/hw.h"
#include "virtio_iommu/transport.h"
#include "virtio_iommu/virtio_pci.h"
#include "virtio_iommu/virtqueue.h"

namespace deviso::virtio_iommu {

class VirtioIommu;

// Counters for tests and diagnostics (updated with relaxed atomics; the backend-neutral subset:
// IsolationUnit::unit_stats()).
struct Stats {
  uint64_t requests = 0;         // requests completed by the device
  uint64_t notifies = 0;         // request-queue notifications (batches)
  uint64_t request_errors = 0;   // requests the device answered with a status other than OK
  uint64_t events = 0;           // event buffers consumed
  uint64_t unrouted_faults = 0;  // faults of endpoints with no domain (default-deny hits)
  uint64_t timeouts = 0;         // requests that never completed
  uint64_t recoveries = 0;       // successful Recover() calls
  // Answers that broke the rules (each marks the unit broken): a used element for a chain not
  // in flight or answered already, used.idx moved backwards, a used length outside the
  // writable buffer, a status no spec defines, a write past a buffer's end (into its guard).
  uint64_t protocol_errors = 0;
  uint64_t unrouted_suppressed = 0;  // unrouted faults the rate limit kept from the handler
};

// A domain: the core's slot state (SlotDomain: in use, sink, attached endpoints) and what is
// the virtio-iommu's own.
class VirtioIommuDomain final : public SlotDomain {
 public:
  static constexpr size_t kMaxExtents = ExtentMap::kCapacity;
  using Extent = ExtentMap::Extent;  // one Map() call's range, or what a partial Unmap() left

  uint32_t id() const { return id_; }
  size_t extent_count() const { return extents_.size(); }
  const Extent& extent(size_t i) const { return extents_[i]; }

 private:
  friend class VirtioIommu;
  uint32_t id_ = 0;
  // The device may still hold a domain with this ID and mappings in it (it was attached once
  // and a device is free to keep it after the last DETACH): cleared by the next first ATTACH.
  bool device_may_hold_ = false;
  ExtentMap extents_;  // what the domain maps (extent_map.h)
};

class VirtioIommu final : public IsolationUnit {
 public:
  static constexpr size_t kMaxDomains = config::kMaxDomainsPerUnit;  // DEVISO_MAX_DOMAINS_PER_UNIT
  static constexpr size_t kMaxStreams = config::kMaxStreamsPerUnit;  // attached, fault routing
  static constexpr size_t kMaxProbed = 64;   // endpoints whose PROBE result is cached
  static constexpr size_t kMaxReserved = 4;  // reserved regions kept per endpoint
  static constexpr uint16_t kBatch = 32;     // requests per notification
  // One request slot: the readable part at 0, the tail at kTailOffset, then a guard of
  // kGuardBytes that holds no state: a device writing past the tail (or past PROBE's buffer,
  // which has a guard too) lands there, is detected by the guard's pattern and marks the unit
  // broken. A device that writes further, or anywhere else, is not contained by any driver:
  // the virtio-iommu device itself is not behind an IOMMU.
  static constexpr size_t kSlotBytes = 256;
  static constexpr size_t kTailOffset = 128;
  static constexpr size_t kGuardBytes = kSlotBytes - kTailOffset - sizeof(ReqTail);
  static constexpr uint8_t kGuardPattern = 0x5a;
  static constexpr uint16_t kMaxEventBuffers = 256;  // event-queue entries (buffers posted)
  static constexpr size_t kMaxProbeSize = 4096;      // larger probe_size: PROBE not negotiated
  // The unrouted handler's default rate (as a context's, kDefaultFaultCallbacksPerSecond).
  static constexpr uint32_t kUnroutedFaultsPerSecond = kDefaultUnroutedFaultsPerSecond;

  struct Config {
    PciConfig* pci = nullptr;
    BarIo* bars[VirtioPci::kBars] = {};
    DmaMemory* dma = nullptr;  // the queues, request slots and event buffers
    const char* name = "virtio-iommu";
    bool coherent = true;  // the device snoops CPU caches (virtio PCI devices in a VM do)
    uint64_t timeout_ns = 100'000'000;  // every request and the reset
    // Largest endpoint ID accepted. QEMU 7.2 checks only the low 16 bits of an endpoint ID
    // (0x10018 would alias 0x18), so IDs above 0xffff are refused; the registry binds only
    // the IDs the devicetree's iommu-map gives.
    uint32_t max_endpoint = 0xffff;
    uint8_t oas = 48;                // physical address bits accepted by Map
    uint16_t event_queue_size = 64;  // capped by the device's maximum
    // Accept a device that does not offer BYPASS_CONFIG, trusting it to block unattached
    // endpoints as 5.13.3 asks (QEMU 7.2 does not: keep this false there).
    bool allow_without_bypass_config = false;
    // Physical ranges no device may be given beyond the unit's own queues and buffers: the
    // platform lists memory deviso keeps to itself here (e.g. the CPU map's page tables).
    // Map refuses overlaps with -EPERM (UsesMemory()).
    struct Range {
      Paddr base = 0;
      uint64_t size = 0;
    };
    Range own_memory[4] = {};
  };

  explicit VirtioIommu(const Config& config);
  // Resets the device (every DMA of attached endpoints then faults, with bypass left 0) and
  // frees the queues.
  ~VirtioIommu() override;
  VirtioIommu(const VirtioIommu&) = delete;
  VirtioIommu& operator=(const VirtioIommu&) = delete;

  // Finds the virtio structures (4.1.4), resets the device and reads what it offers.
  // Errors: -EINVAL (config, or called twice), -ENOTSUP (not a modern virtio device, or it
  // lacks VIRTIO_F_VERSION_1 or VIRTIO_IOMMU_F_MAP_UNMAP, or BYPASS_CONFIG (see Config)),
  // -ETIMEDOUT (the reset never completed).
  Status Probe();
  // The initialisation sequence (3.1.1): reset, ACKNOWLEDGE, DRIVER, features (VERSION_1,
  // MAP_UNMAP, BYPASS_CONFIG, and INPUT_RANGE, DOMAIN_RANGE, PROBE, MMIO where offered),
  // FEATURES_OK checked, config.bypass = 0 (read back), the request and event queues, DRIVER_OK.
  // On return every endpoint is blocked. Errors: -ENOTSUP (FEATURES_OK refused, bypass did not
  // clear, too few queues), -ENOMEM (DMA memory), -ETIMEDOUT, -EIO (the device failed).
  // On error the device is left reset (or FAILED) and nothing is allocated.
  Status Init();
  // Recovery after a timeout or DEVICE_NEEDS_RESET: resets the device (which drops every
  // domain and mapping), runs Init()'s sequence again with bypass cleared before DRIVER_OK,
  // then replays every attachment and mapping from the record. Bus masters need not stop if
  // the device keeps bypass = 0 across the reset (QEMU does, 5.13.4 leaves it to the device);
  // during recovery attached endpoints fault instead of reaching memory.
  // Errors: as Init(), and those of the replayed requests (the unit then stays broken).
  Status Recover() override;

  // Consumes the event queue: decodes each fault and delivers it to the domain's sink (or the
  // unrouted handler), then re-posts the buffer. Safe from an interrupt handler; the platform
  // calls it from its poll loop or the device's interrupt. One call consumes at most the
  // queue's buffers (the device cannot return more before they are re-posted): returns false.
  bool HandleEvents() override;
  // Receives faults of endpoints with no domain (default-deny hits), rate-limited to
  // `per_second` (the core's UnitFaultReporter; the rest is counted in
  // stats().unrouted_suppressed). Errors: -EINVAL (per_second 0), -ENOTSUP (built with
  // DEVISO_CONFIG_FAULT_REPORTS=OFF).
  Status SetUnroutedFaultHandler(deviso_fault_handler_t handler, void* user,
                                 uint32_t per_second = kUnroutedFaultsPerSecond) override;

  // Sends PROBE for `sid` (if negotiated) and caches its reserved regions; Attach does this
  // for each new endpoint. Errors: -EINVAL (sid), -ENOMEM (cache full), -ETIMEDOUT/-EIO, and
  // the device's status as an errno.
  Status ProbeEndpoint(uint32_t sid);

  Stats stats() const;
  UnitStats unit_stats() const override;
  // "virtio-iommu at <name>: features offered ..., domains [a, b], ...; bypass cleared".
  size_t Describe(char* out, size_t out_size) const override;
  bool coherent() const { return config_.coherent; }
  uint64_t device_features() const { return device_features_; }
  uint64_t driver_features() const { return driver_features_; }
  uint64_t page_size_mask() const { return page_size_mask_; }
  uint64_t granule() const { return granule_; }
  Range64 input_range() const { return input_range_; }
  Range32 domain_range() const { return domain_range_; }
  uint32_t probe_size() const { return probe_size_; }

  // IsolationUnit
  const UnitCaps& caps() const override { return caps_; }
  size_t ReservedRegions(uint32_t sid, std::span<ReservedRegion> out) const override;
  // -EINVAL unless probed and sid <= min(Config::max_endpoint, 0xffff).
  Status ValidateStream(uint32_t sid) const override;
  // Errors: -EINVAL (not initialised), -ENOTSUP (stage 2, or a page size other than the
  // granule), -ENOMEM (no domain slot or ID left in the device's domain range), -EIO (broken).
  Result<Domain*> CreateDomain(const DomainOptions& options, FaultSink* sink) override;
  // Errors: -EINVAL, -EBUSY (endpoints attached). The device dropped the domain with its last
  // endpoint; no request is sent.
  Status DestroyDomain(Domain* domain) override;
  // ATTACH (after a PROBE of a new endpoint). On a domain's first endpoint the record's
  // mappings are sent too. Errors: -EINVAL (sid, domain, or the domain maps a reserved region
  // of this endpoint), -EEXIST (attached elsewhere, or already here), -ENOMEM, -ETIMEDOUT/-EIO,
  // the device's status as an errno.
  Status Attach(Domain* domain, uint32_t sid) override;
  // DETACH: the endpoint is blocked again (bypass is 0). Errors: -ENOENT (not attached there),
  // -ETIMEDOUT/-EIO, the device's status.
  Status Detach(Domain* domain, uint32_t sid) override;
  // One MAP per page, batched. Errors, with no change: -EINVAL (alignment, size 0, wrap,
  // outside the input range or OAS, no READ/WRITE, overlaps a reserved region of an attached
  // endpoint), -ENOTSUP (kDevice/kDeviceStrict without VIRTIO_IOMMU_F_MMIO), -EEXIST (any part
  // mapped), -ENOMEM (record full), -ETIMEDOUT/-EIO, the device's status as an errno (pages it
  // took are unmapped again first). EXEC is granted with READ: the device cannot tell
  // instruction fetches apart.
  Status Map(Domain* domain, Iova iova, Paddr pa, uint64_t size, Perms perms,
             MemType type) override;
  // One UNMAP for the range, acknowledged before returning. Errors, with no change: -EINVAL,
  // -ENOENT (any page in the range not mapped), -ENOMEM (the record cannot hold the pieces
  // left), -ETIMEDOUT/-EIO, the device's status as an errno.
  Status Unmap(Domain* domain, Iova iova, uint64_t size) override;
  // From the record. Errors: -ENOENT (not mapped).
  Result<Paddr> IovaToPhys(Domain* domain, Iova iova) override;
  // The domain's extents from the driver's record (the device cannot be asked), each made of
  // page-sized leaves, under the caller's context lock alone (IsolationUnit::ForEachLeaf;
  // NearLeaf is the default scan). Errors: -EINVAL (not this unit's domain).
  Status ForEachLeaf(Domain* domain, LeafVisitor& visitor) override;
  // Both virtqueues, the request slots, the PROBE and event buffers: the device reads them.
  bool UsesMemory(Paddr pa, uint64_t size) const override;

  // A device status as deviso's errno (docs/virtio_iommu.md "Errors").
  static Status StatusToErrno(uint8_t status);
  // Decodes one fault record (pure; table-tested). `attached`: the endpoint has a domain;
  // `mapped`: the address is in that domain's record (then a MAPPING fault is a permission
  // fault: the device reports both as MAPPING).
  static Fault DecodeFault(const FaultEvent& event, const char* unit_name, bool attached,
                           bool mapped);

 private:
  struct ProbeEntry {
    bool used = false;
    uint32_t sid = 0;
    size_t total = 0;  // regions the device reported (may exceed kMaxReserved)
    ReservedRegion regions[kMaxReserved];
  };

  Status Negotiate();
  Status SetupQueues();
  void FreeQueues();
  Status CheckUsable() const;

  // Requests (lock_ held). A slot is filled, then Exchange sends slots [0, n) and waits.
  uint8_t* Slot(size_t i) const;
  void FillSlot(size_t i, const void* req, size_t len);
  Status Exchange(size_t n, const size_t* writable_len = nullptr);
  uint8_t SlotStatus(size_t i) const;
  // A guard (kGuardBytes of kGuardPattern) is intact.
  bool GuardIntact(const uint8_t* guard) const;
  // The device broke the protocol: counted, logged, unit broken. Returns -EIO.
  Status Garbled(const char* what);
  // The status of an answer as an errno; a status no spec defines is Garbled().
  Status AnswerStatus(uint8_t status);
  // Sends one request; the device's status as an errno. A NOENT answer is not counted as a
  // request error when `noent_expected` (the UNMAP that empties a domain the device may have
  // dropped).
  Status SendOne(const void* req, size_t len, bool noent_expected = false);
  // MAPs [iova, iova + size) one page at a time.
  Status MapPages(const VirtioIommuDomain& d, Iova iova, Paddr pa, uint64_t size, uint32_t flags);
  // UNMAPs [iova, last] (inclusive, as the request).
  Status UnmapRange(uint32_t domain_id, Iova iova, Iova last, bool noent_expected = false);
  Status AttachLocked(VirtioIommuDomain& d, uint32_t sid);
  Status ReplayDomain(VirtioIommuDomain& d);
  Status ProbeLocked(uint32_t sid);

  VirtioIommuDomain* CheckDomain(Domain* domain);
  const ProbeEntry* FindProbe(uint32_t sid) const;
  bool OverlapsReserved(const VirtioIommuDomain& d, uint32_t extra_sid, Iova iova,
                        uint64_t size) const;
  void DeliverFault(const Fault& fault);

  Config config_;
  VirtioPci pci_;
  UnitCaps caps_;
  Stats stats_;
  char name_[32] = {};
  bool probed_ = false;
  bool initialised_ = false;
  uint64_t device_features_ = 0;
  uint64_t driver_features_ = 0;
  uint64_t page_size_mask_ = 0;
  uint64_t granule_ = 0;
  Range64 input_range_{};
  Range32 domain_range_{};
  uint32_t probe_size_ = 0;
  size_t req_notify_ = 0;
  size_t evt_notify_ = 0;
  UnitFaultReporter unrouted_;  // under evt_lock_ and lock_

  mutable port::InterruptSpinLock lock_;  // ReservedRegions() is const
  port::InterruptSpinLock evt_lock_;
  SplitQueue reqq_;
  SplitQueue evtq_;
  DmaBuffer slots_;   // kBatch request slots
  DmaBuffer probe_;   // PROBE's device-writable part: probe_size + tail
  DmaBuffer events_;  // one FaultEvent per event-queue entry
  uint64_t evt_posted_[kMaxEventBuffers / 64] = {};  // event buffers the device holds
  DomainSlots<VirtioIommuDomain, kMaxDomains> domains_;
  StreamSlots<VirtioIommuDomain, kMaxStreams> streams_;  // attached endpoints, fault routing
  ProbeEntry probed_eps_[kMaxProbed];
};

}  // namespace deviso::virtio_iommu

#endif  // DEVISO_SRC_VIRTIO_IOMMU_VIRTIO_IOMMU_H_
