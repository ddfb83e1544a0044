// Arm SMMUv3 driver: deviso's first isolation backend (Arm IHI0070).
//
// One Smmuv3 object drives one SMMU. It implements deviso::IsolationUnit: domains are
// stage 1 (a CD with its ASID) or stage 2 (a VMID) address spaces whose tables are built by
// the VMSAv8-64 engine (src/pgtable/), and attaching a StreamID points its STE at one.
//
// Default-deny: every StreamID without a domain has an invalid STE (V=0) or, with a 2-level
// stream table, an invalid L1 descriptor; the SMMU aborts its DMA and records C_BAD_STE or
// C_BAD_STREAMID, so a rogue device is reported. (A valid STE with Config=abort would record
// nothing.) This holds from the moment SMMUEN is set.
//
// Strict invalidation: Unmap returns only after TLBI + CMD_SYNC completed; any failure to
// confirm completion (deadline, command error) is returned as an error.
//
// Locking: `lock_` protects the stream table, domain slots and ID allocators; `cmdq_lock_`
// the command queue; `evtq_lock_` the event queue consumer. Map/Unmap on one domain are
// serialised by the caller (deviso's core holds the context lock). On bare metal these are
// IRQ-masking spin locks, so HandleEvents() may run from the SMMU's interrupt handler.
//
// Build-time options (deviso/config.h; docs/smmuv3.md "Build-time options"), each refusing
// what it leaves out:
//   DEVISO_CONFIG_STAGE2=OFF            stage 2 domains: -ENOTSUP (a unit with only stage 2
//                                       fails Probe with -ENOTSUP).
//   DEVISO_CONFIG_GRANULE_16K_64K=OFF   4 KiB domains only (others: -ENOTSUP).
//   DEVISO_CONFIG_TWO_LEVEL_STRTAB=OFF  linear stream table: StreamIDs are capped at
//                                       Config::max_linear_sid_bits (others: -EINVAL).
//   DEVISO_CONFIG_RANGE_TLBI=OFF        per-leaf TLBIs, then the whole ASID, even with RIL.
//   DEVISO_CONFIG_FAULT_REPORTS=OFF     events are drained and counted (stats()), not decoded
//                                       or delivered; SetUnroutedFaultHandler: -ENOTSUP.
//   DEVISO_CONFIG_TEARDOWN=OFF          Shutdown: -ENOTSUP; destroying an enabled unit panics.
//   DEVISO_CONFIG_LOGGING=OFF           no port::Log diagnostics (errors are still returned).

#ifndef DEVISO_SRC_SMMUV3_SMMUV3_H_
#define DEVISO_SRC_SMMUV3_SMMUV3_H_

#include <cstddef>
#include <cstdint>

#include "core/dma_memory.h"
#include "core/domain_slots.h"
#include "core/mmio.h"
#include "core/stream_slots.h"
#include "core/unit_faults.h"
#include "deviso/backend.h"
#include "deviso/config.h"
#include "deviso/port/os.h"
#include "pgtable/pgtable.h"
#include "smmuv3/cmdq.h"
#include "smmuv3/domains.h"
#include "smmuv3/errata.h"
#include "smmuv3/events.h"
#include "smmuv3/hw.h"
#include "smmuv3/stream_table.h"

namespace deviso::smmuv3 {

// Counters for tests, benchmarks and diagnostics (all uint64_t, updated atomically; the
// backend-neutral subset: IsolationUnit::unit_stats()).
struct Stats {
  uint64_t commands = 0;             // commands written to the queue, CMD_SYNC included
  uint64_t syncs = 0;                // CMD_SYNCs
  uint64_t tlbi_va = 0;              // per-address/range TLBI commands (NH_VA, S2_IPA)
  uint64_t tlbi_context = 0;         // whole-ASID / whole-VMID invalidations
  uint64_t events = 0;               // event records consumed
  uint64_t unrouted_faults = 0;      // events for streams with no domain (default-deny hits)
  uint64_t event_overflows = 0;      // EVENTQ overflow (OVFLG) or EVENTQ_ABT_ERR
  uint64_t command_errors = 0;       // GERROR.CMDQ_ERR
  uint64_t gerrors = 0;              // other global errors
  uint64_t impossible_reads = 0;     // registers read back values no SMMU can hold (all-ones)
  uint64_t recoveries = 0;           // successful Recover()
  uint64_t unrouted_suppressed = 0;  // unrouted faults the rate limit kept from the handler
};
using SmmuStats = Stats;  // the name before issue 13 aligned it with virtio_iommu::Stats

class Smmuv3 final : public IsolationUnit {
 public:
  static constexpr size_t kMaxDomains = config::kMaxDomainsPerUnit;  // DEVISO_MAX_DOMAINS_PER_UNIT
  static constexpr size_t kMaxStreams = config::kMaxStreamsPerUnit;  // attached, fault routing
  static constexpr unsigned kL2SplitBits = kStrtabSplitBits;         // 256 STEs per L2 table
  // The unrouted handler's default rate (as a context's, kDefaultFaultCallbacksPerSecond).
  static constexpr uint32_t kUnroutedFaultsPerSecond = kDefaultUnroutedFaultsPerSecond;

  struct Config {
    Mmio* regs = nullptr;
    DmaMemory* dma = nullptr;
    // Table memory for each granule the platform provides (nullptr: granule unused).
    pgtable::TableMemory* tables_4k = nullptr;
    pgtable::TableMemory* tables_16k = nullptr;
    pgtable::TableMemory* tables_64k = nullptr;
    const char* name = "smmuv3";
    // The devicetree's `dma-coherent`: with IDR0.COHACC it makes table walks and queue
    // accesses coherent; otherwise every structure is cleaned to PoC.
    bool dma_coherent = false;
    unsigned cmdq_log2 = 8;    // entries, capped by IDR1.CMDQS
    unsigned eventq_log2 = 9;  // entries, capped by IDR1.EVENTQS
    // Linear stream tables up to this many StreamID bits; beyond it a 2-level table (if
    // IDR0.ST_LEVEL allows), else StreamIDs are capped here.
    unsigned max_linear_sid_bits = 8;
    uint64_t timeout_ns = 100'000'000;  // every hardware wait
    // Event records HandleEvents() consumes per call (at least 1).
    size_t events_per_call = kDefaultEventsPerDrain;
    // Without range invalidation: per-leaf TLBI up to this many leaves, then whole-ASID.
    unsigned max_tlbi_per_range = 32;
    // Break-before-make is always used for block splits unless this is set and the SMMU
    // reports IDR3.BBML == 2 (block replaced in place) or 1 (the nT procedure of IHI0070
    // 3.21.1.2). Both are hitless.
    bool use_bbml2 = true;
    // Default input size of stage 1 domains (stage 2: the OAS, capped at 48).
    uint8_t ias = 48;
    // Physical ranges no device may be given beyond the driver's own DMA structures: the
    // platform lists its page-table pools here (and anything else deviso must keep to itself).
    // Map refuses overlaps with -EPERM (UsesMemory()).
    struct Range {
      Paddr base = 0;
      uint64_t size = 0;
    };
    Range own_memory[4] = {};
  };

  explicit Smmuv3(const Config& config) : config_(config) {}
  // Shuts the unit down (if enabled) and frees its queues, stream table and domains' tables.
  // Built with DEVISO_CONFIG_TEARDOWN=OFF a unit is never torn down: destroying one that Init()
  // enabled is a deviso_panic (its tables would go back to the pool while the SMMU walks them).
  ~Smmuv3() override;
  Smmuv3(const Smmuv3&) = delete;
  Smmuv3& operator=(const Smmuv3&) = delete;

  // Reads IDR0-5, IIDR and AIDR and decides what this driver can serve.
  // Errors: -ENOTSUP (no AArch64 table format, no stage 1 or 2, no 4K/16K/64K granule this
  // platform has table memory for, big-endian-only, OAS unknown), -EINVAL (config).
  Status Probe();
  // The initialisation sequence (IHI0070 3.x and 6.3 register descriptions): disable if left
  // enabled, queues, stream table with every StreamID blocked, CFGI_ALL + TLBI_NSNH_ALL +
  // CMD_SYNC, event queue and interrupts, GBPA abort, SMMUEN. Every wait has a deadline.
  // Errors: -ETIMEDOUT (an ACK or Update bit never came), -ENOMEM, -EIO.
  Status Init(bool enable_irqs);
  // Clears SMMUEN (bus masters must be stopped first: with SMMUEN=0 the SMMU bypasses or
  // aborts per GBPA), then the queues and interrupts.
  // Errors: -EINVAL (not enabled), -ETIMEDOUT, -ENOTSUP (DEVISO_CONFIG_TEARDOWN=OFF).
  Status Shutdown() override;

  // Drains the event queue, decoding each record and delivering it to the domain's sink (or
  // the unit's rate-limited unrouted handler); handles overflow. Safe from the eventq
  // interrupt. Consumes at most Config::events_per_call records, so an interrupt handler in a
  // fault storm returns in bounded time; returns true if records remain (the interrupt is
  // edge-triggered: call again, e.g. from a poll loop or a deferred handler, until false).
  // Nothing on a broken unit. Built with DEVISO_CONFIG_FAULT_REPORTS=OFF records are only
  // counted (stats().events, stats().event_overflows).
  bool HandleEvents() override;
  // HandleEvents() until it reports nothing left, but at most as many calls as one full event
  // queue needs: an SMMU that keeps producing records (a fault storm, a hostile or broken part)
  // cannot hold the caller; what it produces meanwhile waits for the next drain. Returns true
  // if records remain. Use this, never a `while (HandleEvents())` loop.
  bool DrainEvents() override;
  // Decodes and acknowledges global errors (GERROR/GERRORN). From the gerror interrupt.
  void HandleGlobalErrors();

  // IsolationUnit
  const UnitCaps& caps() const override { return caps_; }
  Status ValidateStream(uint32_t sid) const override;
  Result<Domain*> CreateDomain(const DomainOptions& options, FaultSink* sink) override;
  Status DestroyDomain(Domain* domain) override;
  Status Attach(Domain* domain, uint32_t sid) override;
  Status Detach(Domain* domain, uint32_t sid) override;
  Status Map(Domain* domain, Iova iova, Paddr pa, uint64_t size, Perms perms,
             MemType type) override;
  Status Unmap(Domain* domain, Iova iova, uint64_t size) override;
  Result<Paddr> IovaToPhys(Domain* domain, Iova iova) override;
  // The domain's leaves from its page table, merged (IsolationUnit::ForEachLeaf); NearLeaf is
  // the default scan. Under the context lock; never fails.
  Status ForEachLeaf(Domain* domain, LeafVisitor& visitor) override;
  // The stream table (and L2 tables), every domain's CD, both queues, Config::own_memory.
  bool UsesMemory(Paddr pa, uint64_t size) const override;

  // Sets `sid`'s STE to bypass (Config=0b100): the device reaches all memory untranslated.
  // Only for measuring isolation overhead or for a device trusted by construction; never used
  // by deviso's core. The stream must not be attached; BlockStream() undoes it.
  // Errors: -EINVAL, -EEXIST (attached), -ETIMEDOUT/-EIO.
  Status BypassStream(uint32_t sid);
  // Returns a bypassed `sid` to blocked (invalid STE). Errors: -EINVAL, -EEXIST (attached).
  Status BlockStream(uint32_t sid);

  // Receives faults of StreamIDs with no domain (default-deny hits) and event-queue overflows
  // (DEVISO_FAULT_OVERFLOW, sid ~0: faults were lost; reported on the unit, never on a
  // context). Runs in event-handling context, like FaultSink::OnFault, at most `per_second`
  // times a second (bursts of `per_second`, the core's UnitFaultReporter); the rest is
  // counted (stats().unrouted_suppressed).
  // Errors: -EINVAL (per_second 0), -ENOTSUP (built with DEVISO_CONFIG_FAULT_REPORTS=OFF).
  Status SetUnroutedFaultHandler(deviso_fault_handler_t handler, void* user,
                                 uint32_t per_second = kUnroutedFaultsPerSecond) override;
  // broken() (IsolationUnit): set once a CMD_SYNC timed out, or the SMMU entered service
  // failure mode, or a register read back an impossible value (all-ones: the device is gone).
  // Every later operation (CreateDomain, DestroyDomain, Attach, Detach, Map, Unmap,
  // BypassStream, BlockStream) fails with -EIO, changes nothing and frees nothing the SMMU
  // may still read.
  //
  // The way back: a full re-initialisation of a broken unit. It first stops the SMMU reading
  // memory: GBPA.ABORT (where implemented) then CR0 = 0, and only once CR0ACK shows SMMUEN,
  // CMDQEN and EVENTQEN clear is anything touched. Until then every structure the SMMU may still
  // read (stream table, CDs, page tables, queues) is in doubt and Recover refuses (-ETIMEDOUT,
  // nothing changed in memory, still broken; it may be called again). Once disabled it
  // acknowledges global errors, resets both queues, re-enables the command queue, issues
  // CFGI_ALL + TLBI_NSNH_ALL (+ TLBI_EL2_ALL) + CMD_SYNC (which completes every invalidation that
  // was in doubt), then the event queue and SMMUEN. Domains, attachments and mappings are kept:
  // contexts work again as they were; tables a failed invalidation kept are freed by the next
  // one. Bus masters need not stop: while SMMUEN = 0 incoming DMA is aborted (GBPA) or, without
  // GBPA (QEMU 7.2), bypasses: stop them first there.
  // Errors: -EINVAL (not initialised, or not broken), -ETIMEDOUT (GBPA.Update or CR0ACK never
  // came: memory in doubt, nothing freed, still broken), -EIO (the re-initialisation's own
  // CMD_SYNC failed: still broken).
  Status Recover() override;

  // Read-only views for tests and diagnostics.
  // A snapshot of the counters.
  Stats stats() const;
  UnitStats unit_stats() const override;
  // "SMMUv3 at <name>: stage1 yes, stage2 yes, coherent, ..." (the IDRs this driver uses).
  size_t Describe(char* out, size_t out_size) const override;
  reg::Idr0 idr0() const { return idr0_; }
  reg::Idr1 idr1() const { return idr1_; }
  reg::Idr3 idr3() const { return idr3_; }
  reg::Idr5 idr5() const { return idr5_; }
  uint32_t iidr() const { return iidr_; }
  uint32_t aidr() const { return aidr_; }
  // The errata table entries that match the IIDR, and the workarounds enabled (errata.h).
  ErrataReport errata() const { return errata_; }
  bool two_level_stream_table() const { return two_level(); }
  bool coherent() const { return coherent_; }
  bool gbpa_implemented() const { return gbpa_implemented_; }
  // The STE the SMMU would read for `sid` (nullptr if its L2 table does not exist).
  const ds::Ste* SteForTest(uint32_t sid) const;
  // Test seam, not configuration: `observer(ctx, sid, ste)` is called after every 64-bit store
  // to an STE, with the entry as it now is, so a test can check that each state the SMMU could
  // fetch is the old or the new entry (smmu_ste_test). nullptr (the default) removes it. Set it
  // before the unit is shared between threads; it runs under the unit's lock.
  using SteObserver = void (*)(void* ctx, uint32_t sid, const ds::Ste& ste);
  void SetSteObserverForTest(SteObserver observer, void* ctx) {
    ste_observer_ = observer;
    ste_observer_ctx_ = ctx;
  }

  // Decodes one event record into deviso's fault record (pure; table-tested).
  static Fault DecodeFault(const ds::Event& event, const char* unit_name, bool stream_attached) {
    return smmuv3::DecodeFault(event, unit_name, stream_attached);
  }
  // The name before issue 13 aligned it with VirtioIommu::DecodeFault.
  static Fault DecodeEvent(const ds::Event& event, const char* unit_name, bool stream_attached) {
    return smmuv3::DecodeFault(event, unit_name, stream_attached);
  }
  // The event's name from IHI0070 7.3, e.g. "F_TRANSLATION"; "UNKNOWN" if not architected.
  static const char* EventName(uint8_t event_id) { return smmuv3::EventName(event_id); }

 private:
  friend class SmmuDomain;
  // The members of each concern are defined in that concern's file.

  // Lifecycle (smmuv3.cc).
  Status WaitAck(size_t ack_offset, uint32_t want, uint32_t mask);
  Status WriteCr0(reg::Cr0 value);
  Status WriteGbpa(reg::Gbpa value);
  // MSI doorbells off (ADDR = 0) where IDR0.MSI says the registers exist.
  void ProgramMsis();
  Status SetupQueues();
  // Both queues' PROD and CONS registers and the driver's copies to 0.
  void ResetQueueIndices();
  // A register read back a value no SMMU produces: counted, logged, the unit marked broken.
  void ImpossibleRead(const char* what, uint32_t value);
  // Cleans what the driver wrote for the SMMU to PoC, unless the SMMU is coherent.
  void CleanForSmmu(const void* p, size_t n) const;

  // Command queue (cmdq.cc).
  // Submits commands followed by one CMD_SYNC and waits for it. Fails (-EIO) if the SMMU
  // flagged any of these commands as illegal, -ETIMEDOUT if the sync never completed.
  Status Submit(const ds::Command* commands, size_t count);
  Status SubmitLocked(const ds::Command* commands, size_t count);
  // Publishes what is queued and waits for room; a command error meanwhile sets *lost (it
  // belongs to this batch, which then fails).
  Status WaitForSpaceLocked(uint32_t first, bool* lost);
  // Reads CMDQ_CONS; handles GERROR.CMDQ_ERR (sets *lost if the erroring command lies in
  // [first, end) of this submission). Returns whether it acknowledged a command error (the
  // SMMU then resumes from CONS); -EIO for an impossible register value.
  Result<bool> RefreshConsLocked(uint32_t first, uint32_t end, bool* lost);
  // One look at the command queue for a poll: RefreshConsLocked, and once more at once if it
  // acknowledged a command error, so that a look after the deadline sees CONS move on.
  Status LookAtConsLocked(uint32_t first, uint32_t end, bool* lost);
  void WriteCommandLocked(const ds::Command& command);

  // Events and global errors (events.cc).
  void DeliverFault(const Fault& fault, bool to_all);
  void ReportOverflow();

  // Domains and invalidation (domains.cc).
  Status InvalidateDomainRange(SmmuDomain& d, const pgtable::InvalidationRange& range);
  Status InvalidateDomainRangeOnce(SmmuDomain& d, const pgtable::InvalidationRange& range);
  pgtable::TableMemory* TablesFor(uint64_t page_size);
  Status AllocId(uint64_t* bitmap, unsigned bits, uint16_t* id);

  // Stream table (stream_table.cc).
  Status SetupStreamTable();
  Result<ds::Ste*> SteSlot(uint32_t sid, bool allocate);
  // `invalidate_blocked`: issue the CFGI+SYNC of a valid->blocked change even if the entry
  // already reads blocked (a retry after a failed invalidation).
  Status WriteSte(uint32_t sid, const ds::Ste& target, bool invalidate_blocked = false);
  void StoreSteWord(uint32_t sid, ds::Ste* ste, size_t word, uint64_t value);
  // Adds `b` to the hull of dynamically allocated structures (under lock_, before `b` is
  // published to the SMMU).
  void GrowDynamicHull(const DmaBuffer& b);
  bool two_level() const { return config::kTwoLevelStreamTable && two_level_; }

  Config config_;
  SteObserver ste_observer_ = nullptr;  // SetSteObserverForTest
  void* ste_observer_ctx_ = nullptr;
  Mmio* regs_ = nullptr;
  UnitCaps caps_;
  Stats stats_;
  char name_[32] = {};
  reg::Idr0 idr0_;
  reg::Idr1 idr1_;
  reg::Idr3 idr3_;
  reg::Idr5 idr5_;
  uint32_t iidr_ = 0;
  uint32_t aidr_ = 0;
  ErrataReport errata_;
  bool probed_ = false;
  bool enabled_ = false;
  bool coherent_ = false;
  bool two_level_ = false;
  bool gbpa_implemented_ = false;
  // A CR0 with an enable bit was written and no CR0 = 0 has been acknowledged since: the SMMU
  // may read the stream table, CDs, page tables and queues.
  bool may_read_memory_ = false;
  // Under lock_: an STE change whose CFGI+SYNC failed; the SMMU may still hold the old (or an
  // abandoned new) entry until a CFGI_ALL completes.
  bool config_unconfirmed_ = false;
  unsigned sid_bits_ = 0;
  uint32_t evtq_ovf_ack_ = 0;
  UnitFaultReporter unrouted_;  // under evtq_lock_
  uint8_t oas_bits_ = 0;

  SharedTableMemory tables_4k_;
  SharedTableMemory tables_16k_;
  SharedTableMemory tables_64k_;
  mutable port::InterruptSpinLock lock_;  // mutable: UsesMemory() reads the domains under it
  port::InterruptSpinLock cmdq_lock_;
  port::InterruptSpinLock evtq_lock_;
  Queue cmdq_;
  Queue evtq_;
  DmaBuffer strtab_;  // linear table, or the L1 table
  // 2-level: L2 tables by L1 index (SIDSIZE <= 16). One unused entry without 2-level tables.
  DmaBuffer l2_[config::kTwoLevelStreamTable ? 1U << 8 : 1] = {};
  DomainSlots<SmmuDomain, kMaxDomains> domains_;
  // The hull [lo, hi) of every L2 table and CD allocated since Init (grown under lock_ before
  // the memory is published, never shrunk; read with acquire loads): UsesMemory() answers a
  // range outside it without the lock and without scanning l2_ and domains_, which is the
  // common case on the map path (docs/performance.md).
  uint64_t dynamic_lo_ = UINT64_MAX;
  uint64_t dynamic_hi_ = 0;
  StreamSlots<SmmuDomain, kMaxStreams> streams_;  // attached StreamIDs, for fault routing
  uint64_t asid_map_[kMaxDomains / 64 + 1] = {};
  uint64_t vmid_map_[kMaxDomains / 64 + 1] = {};
};

}  // namespace deviso::smmuv3

#endif  // DEVISO_SRC_SMMUV3_SMMUV3_H_
