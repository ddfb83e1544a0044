// Arm SMMUv3 driver: probe, initialisation, shutdown and recovery, and the unit's views.
// See smmuv3.h; section numbers refer to Arm IHI0070. The other concerns: cmdq.cc (command
// queue), stream_table.cc (STEs), domains.cc (domains, mapping, invalidation), events.cc (event
// queue, global errors).

#include "smmuv3/smmuv3.h"

#include <cstdio>

#include "core/barrier.h"
#include "core/counters.h"
#include "deviso/assert.h"
#include "ports/poll.h"
#include "smmuv3/cmdq.h"
#include "smmuv3/errata.h"

namespace deviso::smmuv3 {

// ---------------------------------------------------------------------------------------------
// Probe and initialisation

Smmuv3::~Smmuv3() {
  if constexpr (!config::kTeardown) {
    // Units are never torn down in this build (DEVISO_CONFIG_TEARDOWN=OFF). The members'
    // destructors return the domains' tables to the pool: only safe if the SMMU never walked
    // them.
    DEVISO_ASSERT(!enabled_);
  } else {
    if (enabled_) (void)Shutdown();
    if (may_read_memory_ && !WriteCr0(reg::Cr0{}).ok()) {
      // CR0ACK never showed the SMMU disabled: it may still read the stream table, CDs, page
      // tables and queues. None of it is freed (the domains' tables are kept by their pools).
      if constexpr (config::kLogging) {
        port::Log("deviso: %s: destroyed while the SMMU may be enabled: its memory is kept\n",
                  name_);
      }
      tables_4k_.Retain();
      tables_16k_.Retain();
      tables_64k_.Retain();
      return;
    }
    for (SmmuDomain& d : domains_) {
      if (!d.in_use()) continue;
      d.table_.reset();
      if (d.cd_.cpu != nullptr) config_.dma->Free(d.cd_);
    }
    if (config_.dma == nullptr) return;
    for (DmaBuffer& b : l2_) {
      if (b.cpu != nullptr) config_.dma->Free(b);
    }
    if (strtab_.cpu != nullptr) config_.dma->Free(strtab_);
    if (cmdq_.buffer.cpu != nullptr) config_.dma->Free(cmdq_.buffer);
    if (evtq_.buffer.cpu != nullptr) config_.dma->Free(evtq_.buffer);
  }
}

Status Smmuv3::Probe() {
  if (config_.regs == nullptr || config_.dma == nullptr || probed_ ||
      config_.events_per_call == 0) {
    return Status::InvalidArgument();
  }
  regs_ = config_.regs;
  tables_4k_.set_memory(config_.tables_4k);
  tables_16k_.set_memory(config_.tables_16k);
  tables_64k_.set_memory(config_.tables_64k);
  idr0_ = reg::Idr0::ReadFrom(*regs_);
  idr1_ = reg::Idr1::ReadFrom(*regs_);
  idr3_ = reg::Idr3::ReadFrom(*regs_);
  idr5_ = reg::Idr5::ReadFrom(*regs_);
  iidr_ = reg::Iidr::ReadFrom(*regs_).raw;
  aidr_ = reg::Aidr::ReadFrom(*regs_).raw;
  // Implementation errata (errata.h): MMU-700 #2812531 caps a batch at 63 commands per sync.
  errata_ = MatchErrata(iidr_);
  if ((errata_.workarounds & kWorkaroundSyncEvery63Commands) != 0 &&
      config_.max_tlbi_per_range > kErratum2812531MaxCommands) {
    config_.max_tlbi_per_range = kErratum2812531MaxCommands;
  }
  if constexpr (config::kLogging) {
    if (errata_.workarounds != 0) {
      port::Log("deviso: %s: IIDR 0x%08x: erratum workarounds 0x%x\n", config_.name,
                static_cast<unsigned>(iidr_), static_cast<unsigned>(errata_.workarounds));
    }
  }

  // 6.3.1: TTF bit 1 = AArch64 tables; TTENDIAN 0b11 = big-endian only.
  if ((idr0_.ttf() & 0b10) == 0 || idr0_.ttendian() == 0b11) return Status::NotSupported();
  const bool stage2 = config::kStage2 && idr0_.s2p() != 0;
  if (idr0_.s1p() == 0 && !stage2) return Status::NotSupported();
  if (idr5_.oas() >= sizeof(reg::kAddressSizeBits)) return Status::NotSupported();
  // 6.3.2: with TABLES_PRESET / QUEUES_PRESET the stream table / queue bases are fixed by the
  // implementation (read-only registers); this driver places its own structures: refused.
  if (idr1_.tables_preset() != 0 || idr1_.queues_preset() != 0) return Status::NotSupported();
  // The engine produces 48-bit output addresses at most (no FEAT_LPA formats).
  oas_bits_ = reg::kAddressSizeBits[idr5_.oas()];
  if (oas_bits_ > 48) oas_bits_ = 48;

  uint64_t page_sizes = 0;
  if (idr5_.gran4k() != 0 && config_.tables_4k != nullptr) {
    page_sizes |= (1ULL << 12) | (1ULL << 21) | (1ULL << 30);
  }
  if (config::kGranule16K64K && idr5_.gran16k() != 0 && config_.tables_16k != nullptr) {
    page_sizes |= (1ULL << 14) | (1ULL << 25);
  }
  if (config::kGranule16K64K && idr5_.gran64k() != 0 && config_.tables_64k != nullptr) {
    page_sizes |= (1ULL << 16) | (1ULL << 29);
  }
  if (page_sizes == 0) return Status::NotSupported();

  // Stream table: linear for small StreamID spaces; 2-level (if IDR0.ST_LEVEL allows) with
  // 256-STE L2 tables for large ones, the L1 table limited to 256 entries (16-bit SIDs).
  sid_bits_ = static_cast<unsigned>(idr1_.sidsize());
  two_level_ = config::kTwoLevelStreamTable && idr0_.st_level() == 1 &&
               sid_bits_ > config_.max_linear_sid_bits;
  if (two_level()) {
    if (sid_bits_ > kL2SplitBits + 8) sid_bits_ = kL2SplitBits + 8;
  } else if (sid_bits_ > config_.max_linear_sid_bits) {
    sid_bits_ = config_.max_linear_sid_bits;
  }
  coherent_ = idr0_.cohacc() != 0 && config_.dma_coherent;
  cmdq_.log2 =
      config_.cmdq_log2 < idr1_.cmdqs() ? config_.cmdq_log2 : static_cast<unsigned>(idr1_.cmdqs());
  evtq_.log2 = config_.eventq_log2 < idr1_.eventqs() ? config_.eventq_log2
                                                     : static_cast<unsigned>(idr1_.eventqs());
  if (cmdq_.log2 < 2 || evtq_.log2 < 1) return Status::NotSupported();

  std::snprintf(name_, sizeof(name_), "%s", config_.name);
  caps_.backend = "smmuv3";
  caps_.name = name_;
  caps_.page_sizes = page_sizes;
  caps_.ias = config_.ias > 48 ? 48 : config_.ias;
  caps_.oas = oas_bits_;
  caps_.stages = static_cast<uint8_t>((idr0_.s1p() != 0 ? 1 : 0) | (stage2 ? 2 : 0));
  caps_.coherent = coherent_;
  caps_.caches_translations = true;     // TLBs and configuration caches: every unmap invalidates
  caps_.reports_fault_overflow = true;  // EVENTQ OVFLG / EVENTQ_ABT_ERR
  caps_.reports_translation_fault_direction = true;  // F_TRANSLATION carries RnW
  caps_.max_sid = (sid_bits_ >= 32) ? ~0U : (1U << sid_bits_) - 1;
  probed_ = true;
  return Status::Ok();
}

Status Smmuv3::WaitAck(size_t ack_offset, uint32_t want, uint32_t mask) {
  // port::PollUntil looks once more after the deadline expired: an acknowledgement that came
  // while this thread was preempted is not a timeout.
  return port::PollUntil(config_.timeout_ns, [&]() -> Result<bool> {
    return (regs_->Read32(ack_offset) & mask) == (want & mask);
  });
}

Status Smmuv3::WriteCr0(reg::Cr0 value) {
  // 6.3.9: each CR0 change is complete when CR0ACK shows it.
  if ((value.raw & reg::kCr0Enables) != 0) may_read_memory_ = true;
  value.WriteAt(*regs_, reg::kCr0);
  DEVISO_TRY(WaitAck(reg::kCr0Ack, value.raw, reg::kCr0Enables));
  // Only an acknowledged CR0 with every enable clear means the SMMU reads no memory of ours.
  if ((value.raw & reg::kCr0Enables) == 0) may_read_memory_ = false;
  return Status::Ok();
}

void Smmuv3::ProgramMsis() {
  // 6.3: with IDR0.MSI the *_IRQ_CFG0 ADDR fields reset to UNKNOWN values, so the SMMU's own
  // interrupts could be written to an unknown address. This driver uses wired interrupts (or
  // polling): ADDR = 0 sends no MSI. Without IDR0.MSI the registers are absent.
  if (idr0_.msi() == 0) return;
  reg::IrqCfg0{}.WriteAt(*regs_, reg::kGerrorIrqCfg0);
  reg::IrqCfg1{}.WriteAt(*regs_, reg::kGerrorIrqCfg1);
  reg::IrqCfg2{}.WriteAt(*regs_, reg::kGerrorIrqCfg2);
  reg::IrqCfg0{}.WriteAt(*regs_, reg::kEventqIrqCfg0);
  reg::IrqCfg1{}.WriteAt(*regs_, reg::kEventqIrqCfg1);
  reg::IrqCfg2{}.WriteAt(*regs_, reg::kEventqIrqCfg2);
  if (idr0_.pri() != 0) {
    reg::IrqCfg0{}.WriteAt(*regs_, reg::kPriqIrqCfg0);
    reg::IrqCfg1{}.WriteAt(*regs_, reg::kPriqIrqCfg1);
    reg::IrqCfg2{}.WriteAt(*regs_, reg::kPriqIrqCfg2);
  }
}

Status Smmuv3::WriteGbpa(reg::Gbpa value) {
  // 6.3.14: GBPA may only be written while Update is 0; the write is complete when the SMMU
  // clears Update again.
  const uint32_t update = reg::Gbpa{}.set_update(1).raw;
  DEVISO_TRY(WaitAck(reg::kGbpa, 0, update));
  value.set_update(1).WriteTo(*regs_);
  return WaitAck(reg::kGbpa, 0, update);
}

void Smmuv3::CleanForSmmu(const void* p, size_t n) const {
  if (!coherent_) config_.dma->Clean(p, n);
}

void Smmuv3::ResetQueueIndices() {
  // 6.3.27-6.3.31: both queues empty (index 0, wrap 0; OVACKFLG 0).
  reg::QueueIndex{}.WriteAt(*regs_, reg::kCmdqProd);
  reg::QueueIndex{}.WriteAt(*regs_, reg::kCmdqCons);
  reg::QueueIndex{}.WriteAt(*regs_, reg::kEventqProd);
  reg::QueueIndex{}.WriteAt(*regs_, reg::kEventqCons);
  cmdq_.prod = cmdq_.cons = evtq_.prod = evtq_.cons = 0;
}

Status Smmuv3::SetupQueues() {
  const size_t cmdq_bytes = (size_t{1} << cmdq_.log2) * sizeof(ds::Command);
  const size_t evtq_bytes = (size_t{1} << evtq_.log2) * sizeof(ds::Event);
  DEVISO_ASSIGN_OR_RETURN(cmdq_.buffer, config_.dma->Allocate(cmdq_bytes, cmdq_bytes));
  DEVISO_ASSIGN_OR_RETURN(evtq_.buffer, config_.dma->Allocate(evtq_bytes, evtq_bytes));
  reg::QueueBase{}
      .set_addr(cmdq_.buffer.pa)
      .set_log2size(cmdq_.log2)
      .set_ra_wa(coherent_ ? 1 : 0)
      .WriteAt(*regs_, reg::kCmdqBase);
  reg::QueueBase{}
      .set_addr(evtq_.buffer.pa)
      .set_log2size(evtq_.log2)
      .set_ra_wa(coherent_ ? 1 : 0)
      .WriteAt(*regs_, reg::kEventqBase);
  ResetQueueIndices();
  return Status::Ok();
}

Status Smmuv3::Init(bool enable_irqs) {
  if (!probed_ || enabled_) return Status::InvalidArgument();
  // Left enabled by firmware or an earlier boot: abort incoming DMA while disabled (where
  // GBPA exists), then turn everything off.
  const reg::Cr0 cr0 = reg::Cr0::ReadAt(*regs_, reg::kCr0);
  if (cr0.smmuen() != 0) {
    // Firmware handover: GBPA.ABORT before SMMUEN is cleared, so no device bypasses during the
    // re-initialisation. An SMMU without GBPA (QEMU 7.2: RAZ/WI) lets incoming DMA bypass
    // from here until SMMUEN is set again: its bus masters must be stopped first.
    may_read_memory_ = true;
    DEVISO_TRY(WriteGbpa(reg::Gbpa{}.set_abort(1)));
  }
  DEVISO_TRY(WriteCr0(reg::Cr0{}));
  reg::IrqCtrl{}.WriteAt(*regs_, reg::kIrqCtrl);
  DEVISO_TRY(WaitAck(reg::kIrqCtrlAck, 0, reg::kIrqCtrlAll));
  ProgramMsis();

  // 6.3.11: table and queue accesses cacheable and inner-shareable only when coherent.
  reg::Cr1 cr1;
  const uint64_t cache = coherent_ ? reg::kCacheWriteBack : reg::kCacheNonCacheable;
  const uint64_t share = coherent_ ? reg::kShareInner : reg::kShareOuter;
  cr1.set_queue_ic(cache).set_queue_oc(cache).set_queue_sh(share);
  cr1.set_table_ic(cache).set_table_oc(cache).set_table_sh(share);
  cr1.WriteTo(*regs_);
  // 6.3.12: record C_BAD_STREAMID for out-of-range StreamIDs; private TLB maintenance.
  reg::Cr2{}.set_recinvsid(1).set_ptm(1).WriteTo(*regs_);

  if (strtab_.cpu == nullptr) DEVISO_TRY(SetupStreamTable());
  if (cmdq_.buffer.cpu == nullptr) {
    DEVISO_TRY(SetupQueues());
  } else {
    ResetQueueIndices();
  }

  reg::Cr0 on;
  on.set_cmdqen(1);
  DEVISO_TRY(WriteCr0(on));
  // Forget anything cached from before: configuration and all non-secure TLB entries.
  ds::Command init[3] = {CfgiAll(), Cmd(ds::kOpTlbiNsnhAll), Cmd(ds::kOpTlbiEl2All)};
  DEVISO_TRY(Submit(init, idr0_.hyp() != 0 ? 3 : 2));

  on.set_eventqen(1);
  DEVISO_TRY(WriteCr0(on));
  const reg::IrqCtrl irqs =
      enable_irqs ? reg::IrqCtrl{}.set_eventq_irqen(1).set_gerror_irqen(1) : reg::IrqCtrl{};
  irqs.WriteAt(*regs_, reg::kIrqCtrl);
  DEVISO_TRY(WaitAck(reg::kIrqCtrlAck, irqs.raw, reg::kIrqCtrlAll));

  // 6.3.14: abort, rather than bypass, whatever arrives while SMMUEN is 0 (e.g. after
  // Shutdown). QEMU 7.2 does not implement GBPA: it reads back 0.
  DEVISO_TRY(WriteGbpa(reg::Gbpa{}.set_abort(1)));
  gbpa_implemented_ = reg::Gbpa::ReadFrom(*regs_).abort() != 0;

  on.set_smmuen(1);
  DEVISO_TRY(WriteCr0(on));
  enabled_ = true;
  return Status::Ok();
}

Status Smmuv3::Shutdown() {
  if constexpr (!config::kTeardown) return Status::NotSupported();
  if (!enabled_) return Status::InvalidArgument();
  // Enabled until CR0ACK says otherwise: a timeout leaves the unit enabled (a retry works)
  // and the destructor keeps every structure the SMMU may still read.
  DEVISO_TRY(WriteCr0(reg::Cr0{}));
  enabled_ = false;
  reg::IrqCtrl{}.WriteAt(*regs_, reg::kIrqCtrl);
  return WaitAck(reg::kIrqCtrlAck, 0, reg::kIrqCtrlAll);
}

Status Smmuv3::Recover() {
  if (!probed_ || strtab_.cpu == nullptr || cmdq_.buffer.cpu == nullptr) {
    return Status::InvalidArgument();
  }
  // Everything stops: event handling, control operations, the command queue (lock order).
  port::LockGuard evt(evtq_lock_);
  port::LockGuard guard(lock_);
  port::LockGuard cmdq(cmdq_lock_);
  if (!broken()) return Status::InvalidArgument();
  // 1. The SMMU stops reading memory: incoming DMA aborts (GBPA, where implemented), then
  //    every enable off. Until CR0ACK confirms it nothing is touched.
  if (gbpa_implemented_) DEVISO_TRY(WriteGbpa(reg::Gbpa{}.set_abort(1)));
  DEVISO_TRY(WriteCr0(reg::Cr0{}));
  // 2. Known state: global errors acknowledged, both queues empty.
  const reg::Gerror gerror = reg::Gerror::ReadAt(*regs_, reg::kGerror);
  const reg::Gerror gerrorn = reg::Gerror::ReadAt(*regs_, reg::kGerrorN);
  reg::Gerror{gerrorn.raw ^ ((gerror.raw ^ gerrorn.raw) & reg::kGerrorDefined)}.WriteAt(
      *regs_, reg::kGerrorN);
  ResetQueueIndices();
  evtq_ovf_ack_ = 0;
  // 3. As Init: command queue, forget every cached configuration and translation (which
  //    completes every invalidation that was in doubt), event queue, translation.
  reg::Cr0 on;
  on.set_cmdqen(1);
  DEVISO_TRY(WriteCr0(on));
  SetBroken(false);
  ds::Command init[3] = {CfgiAll(), Cmd(ds::kOpTlbiNsnhAll), Cmd(ds::kOpTlbiEl2All)};
  Status s = SubmitLocked(init, idr0_.hyp() != 0 ? 3 : 2);
  if (s.ok()) {
    config_unconfirmed_ = false;
    on.set_eventqen(1);
    s = WriteCr0(on);
  }
  if (s.ok()) {
    on.set_smmuen(1);
    s = WriteCr0(on);
  }
  if (!s.ok()) {
    SetBroken(true);
    return s;
  }
  enabled_ = true;
  Count(stats_.recoveries);
  return Status::Ok();
}

void Smmuv3::ImpossibleRead(const char* what, uint32_t value) {
  // A register no SMMU can hold this value in: the device is gone (all-ones reads) or broken.
  // Nothing it reports can be trusted, in particular no completion.
  Count(stats_.impossible_reads);
  SetBroken(true);
  if constexpr (config::kLogging) {
    port::Log("deviso: %s: %s read 0x%08x, impossible: unit marked broken\n", name_, what, value);
  } else {
    (void)what;
    (void)value;
  }
}

Status Smmuv3::ValidateStream(uint32_t sid) const {
  if (!probed_ || (sid_bits_ < 32 && sid >= (1U << sid_bits_))) return Status::InvalidArgument();
  return Status::Ok();
}

Stats Smmuv3::stats() const {
  Stats out = SnapshotCounters(stats_);
  out.unrouted_faults = unrouted_.unrouted();
  out.unrouted_suppressed = unrouted_.suppressed();
  return out;
}

UnitStats Smmuv3::unit_stats() const {
  const Stats st = stats();
  UnitStats u;
  u.commands = st.commands;
  u.syncs = st.syncs;
  u.invalidations = st.tlbi_va + st.tlbi_context;
  u.events = st.events;
  u.unrouted_faults = st.unrouted_faults;
  u.unrouted_suppressed = st.unrouted_suppressed;
  u.event_overflows = st.event_overflows;
  u.recoveries = st.recoveries;
  return u;
}

size_t Smmuv3::Describe(char* out, size_t out_size) const {
  const int n = std::snprintf(
      out, out_size,
      "SMMUv3 at %s: stage1 %s, stage2 %s, %s, %s stream table, OAS %u bits, granules%s%s%s, "
      "range invalidation %s, BBML %u, GBPA %s",
      name_, idr0_.s1p() ? "yes" : "no", idr0_.s2p() ? "yes" : "no",
      coherent_ ? "coherent" : "non-coherent", two_level() ? "2-level" : "linear", caps_.oas,
      idr5_.gran4k() ? " 4K" : "", idr5_.gran16k() ? " 16K" : "", idr5_.gran64k() ? " 64K" : "",
      idr3_.ril() ? "yes" : "no", static_cast<unsigned>(idr3_.bbml()),
      gbpa_implemented_ ? "implemented" : "not implemented (SMMUEN=0 would bypass)");
  return n < 0 ? 0 : static_cast<size_t>(n);
}

namespace {
bool Overlaps(Paddr pa, uint64_t size, Paddr base, uint64_t bytes) {
  return bytes != 0 && pa < base + bytes && base < pa + size;
}
}  // namespace

void Smmuv3::GrowDynamicHull(const DmaBuffer& b) {
  if (b.size == 0) return;
  // Release: a UsesMemory() that runs after the buffer is published sees the hull cover it.
  if (b.pa < dynamic_lo_) __atomic_store_n(&dynamic_lo_, b.pa, __ATOMIC_RELEASE);
  if (b.pa + b.size > dynamic_hi_) __atomic_store_n(&dynamic_hi_, b.pa + b.size, __ATOMIC_RELEASE);
}

bool Smmuv3::UsesMemory(Paddr pa, uint64_t size) const {
  for (const Config::Range& r : config_.own_memory) {
    if (Overlaps(pa, size, r.base, r.size)) return true;
  }
  if (Overlaps(pa, size, strtab_.pa, strtab_.size) ||
      Overlaps(pa, size, cmdq_.buffer.pa, cmdq_.buffer.size) ||
      Overlaps(pa, size, evtq_.buffer.pa, evtq_.buffer.size)) {
    return true;
  }
  // Outside the hull of every L2 table and CD ever allocated: none of them (the map path's
  // usual answer, without the lock or a scan of every slot).
  const uint64_t lo = __atomic_load_n(&dynamic_lo_, __ATOMIC_ACQUIRE);
  const uint64_t hi = __atomic_load_n(&dynamic_hi_, __ATOMIC_ACQUIRE);
  if (hi <= lo || !Overlaps(pa, size, lo, hi - lo)) return false;
  port::LockGuard guard(lock_);
  for (const DmaBuffer& b : l2_) {
    if (Overlaps(pa, size, b.pa, b.size)) return true;
  }
  for (const SmmuDomain& d : domains_) {
    if (d.in_use() && Overlaps(pa, size, d.cd_.pa, d.cd_.size)) return true;
  }
  return false;
}

}  // namespace deviso::smmuv3
