// Arm SMMUv3 driver. See smmu.h; section numbers refer to Arm IHI0070.

#include "smmuv3/smmu.h"

#include <cstdio>
#include <cstring>

#include "core/barrier.h"
#include "core/counters.h"
#include "core/leaf_merger.h"
#include "deviso/assert.h"
#include "ports/poll.h"
#include "smmuv3/errata.h"
#include "smmuv3/tlbi_range.h"

namespace deviso::smmuv3 {
namespace {

uint64_t Load64(const uint64_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
void Store64(uint64_t* p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

// Encoding of an address size in IDR5.OAS / CD.IPS / STE.S2PS.
uint64_t AddressSizeEncoding(uint8_t bits) {
  for (uint64_t i = 0; i < sizeof(reg::kAddressSizeBits); ++i) {
    if (reg::kAddressSizeBits[i] >= bits) return i;
  }
  return 5;
}

unsigned GranuleShift(uint64_t page_size) {
  if constexpr (!config::kGranule16K64K) return 12;
  return page_size == (1U << 16) ? 16 : page_size == (1U << 14) ? 14 : 12;
}

// A granule as CD.TG0 / STE.S2TG encode it (5.4, 5.2).
uint64_t TgField(uint64_t page_size) {
  if constexpr (!config::kGranule16K64K) return ds::kTg4K;
  return page_size == (1U << 16) ? ds::kTg64K : page_size == (1U << 14) ? ds::kTg16K : ds::kTg4K;
}

ds::Command Cmd(uint8_t opcode) {
  ds::Command c;
  c.raw[0] = ds::Command::W0{}.set_opcode(opcode).raw;
  return c;
}

ds::Command CfgiSte(uint32_t sid) {
  ds::Command c = Cmd(ds::kOpCfgiSte);
  c.raw[0] = ds::Command::W0{c.raw[0]}.set_sid(sid).raw;
  c.raw[1] = ds::Command::W1{}.set_leaf(0).raw;  // the STE and what was fetched through it
  return c;
}

ds::Command CfgiCdAll(uint32_t sid) {
  ds::Command c = Cmd(ds::kOpCfgiCdAll);
  c.raw[0] = ds::Command::W0{c.raw[0]}.set_sid(sid).raw;
  return c;
}

// CFGI_ALL is CFGI_STE_RANGE with Range = 31 (4.3.3).
ds::Command CfgiAll() {
  ds::Command c = Cmd(ds::kOpCfgiSteRange);
  c.raw[1] = ds::Command::W1{}.set_range(31).raw;
  return c;
}

unsigned Log2Floor(uint64_t v) { return 63U - static_cast<unsigned>(__builtin_clzll(v)); }

}  // namespace

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
  idr0_.raw = regs_->Read32(reg::kIdr0);
  idr1_.raw = regs_->Read32(reg::kIdr1);
  idr3_.raw = regs_->Read32(reg::kIdr3);
  idr5_.raw = regs_->Read32(reg::kIdr5);
  iidr_ = regs_->Read32(reg::kIidr);
  aidr_ = regs_->Read32(reg::kAidr);
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
  constexpr uint32_t kMask = 0x1f;  // SMMUEN, PRIQEN, EVENTQEN, CMDQEN, ATSCHK
  if ((value.raw & kMask) != 0) may_read_memory_ = true;
  regs_->Write32(reg::kCr0, value.raw);
  DEVISO_TRY(WaitAck(reg::kCr0Ack, value.raw, kMask));
  // Only an acknowledged CR0 with every enable clear means the SMMU reads no memory of ours.
  if ((value.raw & kMask) == 0) may_read_memory_ = false;
  return Status::Ok();
}

void Smmuv3::ProgramMsis() {
  // 6.3: with IDR0.MSI the *_IRQ_CFG0 ADDR fields reset to UNKNOWN values, so the SMMU's own
  // interrupts could be written to an unknown address. This driver uses wired interrupts (or
  // polling): ADDR = 0 sends no MSI. Without IDR0.MSI the registers are absent.
  if (idr0_.msi() == 0) return;
  regs_->Write64(reg::kGerrorIrqCfg0, 0);
  regs_->Write32(reg::kGerrorIrqCfg1, 0);
  regs_->Write32(reg::kGerrorIrqCfg2, 0);
  regs_->Write64(reg::kEventqIrqCfg0, 0);
  regs_->Write32(reg::kEventqIrqCfg1, 0);
  regs_->Write32(reg::kEventqIrqCfg2, 0);
  if (idr0_.pri() != 0) {
    regs_->Write64(reg::kPriqIrqCfg0, 0);
    regs_->Write32(reg::kPriqIrqCfg1, 0);
    regs_->Write32(reg::kPriqIrqCfg2, 0);
  }
}

Status Smmuv3::WriteGbpa(reg::Gbpa value) {
  // 6.3.14: GBPA may only be written while Update is 0; the write is complete when the SMMU
  // clears Update again.
  const uint32_t update = reg::Gbpa{}.set_update(1).raw;
  DEVISO_TRY(WaitAck(reg::kGbpa, 0, update));
  regs_->Write32(reg::kGbpa, value.set_update(1).raw);
  return WaitAck(reg::kGbpa, 0, update);
}

void Smmuv3::CleanForSmmu(const void* p, size_t n) const {
  if (!coherent_) config_.dma->Clean(p, n);
}

Status Smmuv3::SetupStreamTable() {
  const uint64_t table_sh = coherent_ ? reg::kShareInner : reg::kShareOuter;
  (void)table_sh;
  reg::StrtabBaseCfg cfg;
  size_t bytes;
  if (two_level()) {
    bytes = (size_t{1} << (sid_bits_ - kL2SplitBits)) * sizeof(ds::L1Std);
    cfg.set_fmt(reg::kStrtabFmt2Level).set_split(kL2SplitBits).set_log2size(sid_bits_);
  } else {
    bytes = (size_t{1} << sid_bits_) * sizeof(ds::Ste);
    cfg.set_fmt(reg::kStrtabFmtLinear).set_log2size(sid_bits_);
  }
  // Aligned to its size (6.3.24); all zero: every STE invalid (V=0) or every L1 descriptor
  // invalid (Span=0): default-deny from the start, with events recorded.
  DEVISO_ASSIGN_OR_RETURN(strtab_, config_.dma->Allocate(bytes, bytes < 64 ? 64 : bytes));
  reg::StrtabBase base;
  base.set_addr(strtab_.pa >> 6).set_ra(coherent_ ? 1 : 0);
  regs_->Write64(reg::kStrtabBase, base.raw);
  regs_->Write32(reg::kStrtabBaseCfg, cfg.raw);
  return Status::Ok();
}

Status Smmuv3::SetupQueues() {
  const size_t cmdq_bytes = (size_t{1} << cmdq_.log2) * sizeof(ds::Command);
  const size_t evtq_bytes = (size_t{1} << evtq_.log2) * sizeof(ds::Event);
  DEVISO_ASSIGN_OR_RETURN(cmdq_.buffer, config_.dma->Allocate(cmdq_bytes, cmdq_bytes));
  DEVISO_ASSIGN_OR_RETURN(evtq_.buffer, config_.dma->Allocate(evtq_bytes, evtq_bytes));
  reg::QueueBase cmdq_base;
  cmdq_base.set_addr(cmdq_.buffer.pa >> 5).set_log2size(cmdq_.log2).set_ra_wa(coherent_ ? 1 : 0);
  regs_->Write64(reg::kCmdqBase, cmdq_base.raw);
  regs_->Write32(reg::kCmdqProd, 0);
  regs_->Write32(reg::kCmdqCons, 0);
  cmdq_.prod = cmdq_.cons = 0;
  reg::QueueBase evtq_base;
  evtq_base.set_addr(evtq_.buffer.pa >> 5).set_log2size(evtq_.log2).set_ra_wa(coherent_ ? 1 : 0);
  regs_->Write64(reg::kEventqBase, evtq_base.raw);
  regs_->Write32(reg::kEventqProd, 0);
  regs_->Write32(reg::kEventqCons, 0);
  evtq_.prod = evtq_.cons = 0;
  return Status::Ok();
}

Status Smmuv3::Init(bool enable_irqs) {
  if (!probed_ || enabled_) return Status::InvalidArgument();
  // Left enabled by firmware or an earlier boot: abort incoming DMA while disabled (where
  // GBPA exists), then turn everything off.
  reg::Cr0 cr0{regs_->Read32(reg::kCr0)};
  if (cr0.smmuen() != 0) {
    // Firmware handover: GBPA.ABORT before SMMUEN is cleared, so no device bypasses during the
    // re-initialisation. An SMMU without GBPA (QEMU 7.2: RAZ/WI) lets incoming DMA bypass
    // from here until SMMUEN is set again: its bus masters must be stopped first.
    may_read_memory_ = true;
    DEVISO_TRY(WriteGbpa(reg::Gbpa{}.set_abort(1)));
  }
  DEVISO_TRY(WriteCr0(reg::Cr0{}));
  regs_->Write32(reg::kIrqCtrl, 0);
  DEVISO_TRY(WaitAck(reg::kIrqCtrlAck, 0, 0x7));
  ProgramMsis();

  // 6.3.11: table and queue accesses cacheable and inner-shareable only when coherent.
  reg::Cr1 cr1;
  const uint64_t cache = coherent_ ? reg::kCacheWriteBack : reg::kCacheNonCacheable;
  const uint64_t share = coherent_ ? reg::kShareInner : reg::kShareOuter;
  cr1.set_queue_ic(cache).set_queue_oc(cache).set_queue_sh(share);
  cr1.set_table_ic(cache).set_table_oc(cache).set_table_sh(share);
  regs_->Write32(reg::kCr1, cr1.raw);
  // 6.3.12: record C_BAD_STREAMID for out-of-range StreamIDs; private TLB maintenance.
  regs_->Write32(reg::kCr2, reg::Cr2{}.set_recinvsid(1).set_ptm(1).raw);

  if (strtab_.cpu == nullptr) DEVISO_TRY(SetupStreamTable());
  if (cmdq_.buffer.cpu == nullptr) {
    DEVISO_TRY(SetupQueues());
  } else {
    regs_->Write32(reg::kCmdqProd, 0);
    regs_->Write32(reg::kCmdqCons, 0);
    regs_->Write32(reg::kEventqProd, 0);
    regs_->Write32(reg::kEventqCons, 0);
    cmdq_.prod = cmdq_.cons = evtq_.prod = evtq_.cons = 0;
  }

  reg::Cr0 on;
  on.set_cmdqen(1);
  DEVISO_TRY(WriteCr0(on));
  // Forget anything cached from before: configuration and all non-secure TLB entries.
  ds::Command init[3] = {CfgiAll(), Cmd(ds::kOpTlbiNsnhAll), Cmd(ds::kOpTlbiEl2All)};
  DEVISO_TRY(Submit(init, idr0_.hyp() != 0 ? 3 : 2));

  on.set_eventqen(1);
  DEVISO_TRY(WriteCr0(on));
  const uint32_t irqs =
      enable_irqs ? reg::IrqCtrl{}.set_eventq_irqen(1).set_gerror_irqen(1).raw : 0;
  regs_->Write32(reg::kIrqCtrl, irqs);
  DEVISO_TRY(WaitAck(reg::kIrqCtrlAck, irqs, 0x7));

  // 6.3.14: abort, rather than bypass, whatever arrives while SMMUEN is 0 (e.g. after
  // Shutdown). QEMU 7.2 does not implement GBPA: it reads back 0.
  DEVISO_TRY(WriteGbpa(reg::Gbpa{}.set_abort(1)));
  gbpa_implemented_ = reg::Gbpa{regs_->Read32(reg::kGbpa)}.abort() != 0;

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
  regs_->Write32(reg::kIrqCtrl, 0);
  return WaitAck(reg::kIrqCtrlAck, 0, 0x7);
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
  const uint32_t gerror = regs_->Read32(reg::kGerror);
  const uint32_t gerrorn = regs_->Read32(reg::kGerrorN);
  regs_->Write32(reg::kGerrorN, gerrorn ^ ((gerror ^ gerrorn) & reg::kGerrorDefined));
  regs_->Write32(reg::kCmdqProd, 0);
  regs_->Write32(reg::kCmdqCons, 0);
  regs_->Write32(reg::kEventqProd, 0);
  regs_->Write32(reg::kEventqCons, 0);
  cmdq_.prod = cmdq_.cons = evtq_.prod = evtq_.cons = 0;
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

// ---------------------------------------------------------------------------------------------
// Command queue (3.5, 4.x)

void Smmuv3::WriteCommandLocked(const ds::Command& command) {
  auto* slot = static_cast<ds::Command*>(cmdq_.buffer.cpu) + QueueIdx(cmdq_, cmdq_.prod);
  Store64(&slot->raw[0], command.raw[0]);
  Store64(&slot->raw[1], command.raw[1]);
  CleanForSmmu(slot, sizeof(*slot));
  cmdq_.prod = QueueInc(cmdq_, cmdq_.prod);
  Count(stats_.commands);
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

Result<bool> Smmuv3::RefreshConsLocked(uint32_t first, uint32_t end, bool* lost) {
  const reg::QueueIndex cons{regs_->Read32(reg::kCmdqCons)};
  const uint32_t mask = (2U << cmdq_.log2) - 1;
  // 6.3.27: RD and WRAP for this queue's size, ERR; every other bit is RES0. CONS never moves
  // backwards nor past PROD.
  const uint32_t new_cons = static_cast<uint32_t>(cons.wr_rd()) & mask;
  if ((cons.raw & ~(mask | reg::QueueIndex{}.set_err(0x7f).raw)) != 0 ||
      ((new_cons - cmdq_.cons) & mask) > ((cmdq_.prod - cmdq_.cons) & mask)) {
    ImpossibleRead("CMDQ_CONS", cons.raw);
    return Status::IoError();
  }
  cmdq_.cons = new_cons;
  // Everything queued was consumed: no command stopped the queue (7.1: the SMMU halts with
  // CONS at the erroneous command), so there is no CMDQ_ERR to look for. Saves two MMIO reads
  // on every completed sync.
  if (cmdq_.cons == cmdq_.prod) return false;
  const reg::Gerror gerror{regs_->Read32(reg::kGerror)};
  const reg::Gerror gerrorn{regs_->Read32(reg::kGerrorN)};
  if (((gerror.raw | gerrorn.raw) & ~reg::kGerrorDefined) != 0) {
    ImpossibleRead("GERROR", gerror.raw);
    return Status::IoError();
  }
  if (gerror.cmdq_err() == gerrorn.cmdq_err()) return false;

  // 7.1: the SMMU stopped at CONS because that command was illegal (or could not be
  // fetched). Report it, replace it by a harmless CMD_SYNC, and acknowledge through GERRORN;
  // the SMMU then resumes from CONS. Software never writes CMDQ_CONS.
  Count(stats_.command_errors);
  auto* bad = static_cast<ds::Command*>(cmdq_.buffer.cpu) + QueueIdx(cmdq_, cmdq_.cons);
  if constexpr (config::kLogging) {
    port::Log("deviso: %s: command error %u at cmdq[%u]: opcode 0x%02x (%s)\n", name_,
              static_cast<unsigned>(cons.err()), QueueIdx(cmdq_, cmdq_.cons),
              static_cast<unsigned>(Load64(&bad->raw[0]) & 0xff),
              cons.err() == reg::kCerrorIll ? "illegal" : "abort");
  }
  const uint32_t pos = (cmdq_.cons - first) & mask;
  if (pos < ((end - first) & mask)) *lost = true;
  const ds::Command sync = Cmd(ds::kOpSync);
  Store64(&bad->raw[0], sync.raw[0]);
  Store64(&bad->raw[1], sync.raw[1]);
  CleanForSmmu(bad, sizeof(*bad));
  DmaWriteBarrier();
  regs_->Write32(reg::kGerrorN, gerrorn.raw ^ reg::Gerror{}.set_cmdq_err(1).raw);
  return true;
}

Status Smmuv3::LookAtConsLocked(uint32_t first, uint32_t end, bool* lost) {
  // Twice at most: a hostile SMMU reporting an error on every look cannot hold the poll.
  DEVISO_ASSIGN_OR_RETURN(const bool acknowledged, RefreshConsLocked(first, end, lost));
  if (acknowledged) DEVISO_TRY(RefreshConsLocked(first, end, lost).status());
  return Status::Ok();
}

Status Smmuv3::WaitForSpaceLocked(uint32_t first, bool* lost) {
  if (!QueueFull(cmdq_)) return Status::Ok();
  // Let the SMMU consume what is queued so far.
  DmaWriteBarrier();
  regs_->Write32(reg::kCmdqProd, cmdq_.prod);
  // Every earlier batch completed before this one started: an error now is this batch's.
  return port::PollUntil(config_.timeout_ns, [&]() -> Result<bool> {
    DEVISO_TRY(LookAtConsLocked(first, cmdq_.prod, lost));
    return !QueueFull(cmdq_);
  });
}

Status Smmuv3::SubmitLocked(const ds::Command* commands, size_t count) {
  if (!probed_ || cmdq_.buffer.cpu == nullptr) return Status::InvalidArgument();
  if (broken()) return Status::IoError();
  const uint32_t first = cmdq_.prod;
  bool lost = false;
  for (size_t i = 0; i <= count; ++i) {
    if (const Status s = WaitForSpaceLocked(first, &lost); !s.ok()) {
      SetBroken(true);
      return s;
    }
    // CMD_SYNC with CS=SIG_NONE: its completion is CONS moving past it (4.7.3). QEMU 7.2
    // has no MSI (IDR0.MSI=0), so polling CONS is the only completion there is.
    WriteCommandLocked(i < count ? commands[i] : Cmd(ds::kOpSync));
  }
  Count(stats_.syncs);
  const uint32_t end = cmdq_.prod;
  // Commands must be visible in memory before the SMMU sees the new PROD (3.5.2).
  DmaWriteBarrier();
  regs_->Write32(reg::kCmdqProd, cmdq_.prod);

  // Done when CONS passed everything up to and including the sync. A sync that completed
  // while this thread was not running is not a timeout (which would break the unit for good):
  // PollUntil looks once more after the deadline.
  const auto look = [&]() -> Result<bool> {
    DEVISO_TRY(LookAtConsLocked(first, end, &lost));
    return cmdq_.cons == cmdq_.prod;
  };
  // One look before the deadline starts: an SMMU that is already done costs no clock reading.
  const Result<bool> at_once = look();
  const Status s = !at_once.ok() ? at_once.status()
                   : *at_once    ? Status::Ok()
                                 : port::PollUntil(config_.timeout_ns, look);
  if (s == Status::TimedOut()) {
    // Completion cannot be confirmed: nothing this unit does can be trusted any more, and
    // nothing it may still be using is freed.
    if constexpr (config::kLogging) {
      port::Log("deviso: %s: CMD_SYNC did not complete within %llu ns\n", name_,
                static_cast<unsigned long long>(config_.timeout_ns));
    }
    SetBroken(true);
  }
  DEVISO_TRY(s);
  return lost ? Status::IoError() : Status::Ok();
}

Status Smmuv3::Submit(const ds::Command* commands, size_t count) {
  port::LockGuard guard(cmdq_lock_);
  return SubmitLocked(commands, count);
}

// ---------------------------------------------------------------------------------------------
// TLB invalidation (4.4)

ds::Command Smmuv3::ContextTlbi(const SmmuDomain& d) const {
  if (d.stage2()) {
    ds::Command c = Cmd(ds::kOpTlbiS12Vmall);
    c.raw[0] = ds::Command::W0{c.raw[0]}.set_vmid(d.vmid_).raw;
    return c;
  }
  ds::Command c = Cmd(ds::kOpTlbiNhAsid);
  c.raw[0] = ds::Command::W0{c.raw[0]}.set_asid(d.asid_).raw;
  return c;
}

// Range invalidation (IDR3.RIL=1): at most two commands for any range (tlbi_range.h).
//
// 4.4.1.1: with TG != 0 the encoding TTL == 0, NUM == 0, SCALE == 0 is Reserved (CERROR_ILL
// on an SMMU with RIL=1), and TTL == 0b01 (level 1) is Reserved for the 16 KiB and 64 KiB
// granules (no level 1 leaves without 52-bit addresses). A piece of one granule with no TTL
// hint is therefore issued in the non-range form (TG = 0, NUM = SCALE = TTL = 0), which
// invalidates every entry, of any level, covering its one address: the same coverage.
size_t Smmuv3::BuildRangeTlbi(const SmmuDomain& d, uint64_t iova, uint64_t pages, unsigned ttl,
                              bool leaf, ds::Command* out) const {
  const uint64_t page = d.page_size();
  const uint64_t tg = !config::kGranule16K64K ? ds::kTlbiTg4K
                      : page == (1U << 16)    ? ds::kTlbiTg64K
                      : page == (1U << 14)    ? ds::kTlbiTg16K
                                              : ds::kTlbiTg4K;
  if (tg != ds::kTlbiTg4K && ttl == 1) ttl = 0;  // a hint that would be Reserved: none
  TlbiRange ranges[2];
  const size_t n = SplitTlbiRange(pages, ranges);
  for (size_t i = 0; i < n; ++i) {
    ds::Command c = Cmd(d.stage2() ? ds::kOpTlbiS2Ipa : ds::kOpTlbiNhVa);
    ds::Command::W0 w0{c.raw[0]};
    const bool single = ttl == 0 && ranges[i].count == 1 && ranges[i].scale == 0;
    if (!single) w0.set_num(ranges[i].count - 1).set_scale(ranges[i].scale);
    if (d.stage2()) {
      w0.set_vmid(d.vmid_);
    } else {
      w0.set_asid(d.asid_);
    }
    c.raw[0] = w0.raw;
    ds::Command::W1 w1;
    w1.set_leaf(leaf ? 1 : 0);
    if (!single) w1.set_ttl(ttl).set_tg(tg);
    w1.set_address((iova + ranges[i].first * page) >> 12);
    c.raw[1] = w1.raw;
    out[i] = c;
  }
  return n;
}

Status Smmuv3::InvalidateDomainRange(SmmuDomain& d, const pgtable::InvalidationRange& r) {
  if (r.leaf_levels == 0 && !r.tables) return Status::Ok();
  if (d.pending_end_ > d.pending_start_) {
    // An earlier invalidation of this domain did not complete: this one covers it too (the
    // whole ASID/VMID, walk caches included), and only its completion clears the debt.
    const ds::Command all = ContextTlbi(d);
    Count(stats_.tlbi_context);
    if (const Status s = Submit(&all, 1); !s.ok()) {
      if (r.iova < d.pending_start_) d.pending_start_ = r.iova;
      if (r.iova + r.size > d.pending_end_) d.pending_end_ = r.iova + r.size;
      return s;
    }
    d.pending_start_ = d.pending_end_ = 0;
    return Status::Ok();
  }
  const Status s = InvalidateDomainRangeOnce(d, r);
  if (!s.ok()) {
    // Completion not confirmed: the range stays owed (a retried Unmap converges on it).
    d.pending_start_ = r.iova;
    d.pending_end_ = r.iova + r.size;
  }
  return s;
}

Status Smmuv3::InvalidateDomainRangeOnce(SmmuDomain& d, const pgtable::InvalidationRange& r) {
  const uint64_t page = d.page_size();
  // A TTL hint only when every changed entry is a leaf at one level (4.4.1: a wrong TTL may
  // leave entries of other levels cached). Level 0 leaves do not exist.
  const bool one_level = (r.leaf_levels & (r.leaf_levels - 1)) == 0;
  const unsigned ttl = !r.tables && one_level && r.leaf_levels > 1 ? Log2Floor(r.leaf_levels) : 0;
  const bool leaf = !r.tables;
  if (config::kRangeTlbi && idr3_.ril() != 0 && r.size / page < kMaxTlbiRangeGranules) {
    // At most two commands: no 64-entry array to construct on the strict unmap's hot path.
    ds::Command range[2];
    const size_t n = BuildRangeTlbi(d, r.iova, r.size / page, ttl, leaf, range);
    Count(stats_.tlbi_va, n);
    return Submit(range, n);
  }
  ds::Command cmds[64];
  size_t n = 0;
  // One command per leaf: step by the leaf size when there is one level, else by page.
  const uint64_t step = ttl != 0 ? d.table_->LevelSize(ttl) : page;
  const uint64_t count = (r.size + step - 1) / step;
  if (count > config_.max_tlbi_per_range || count > 64) {
    cmds[n++] = ContextTlbi(d);
    Count(stats_.tlbi_context);
  } else {
    for (uint64_t i = 0; i < count; ++i) {
      ds::Command c = Cmd(d.stage2() ? ds::kOpTlbiS2Ipa : ds::kOpTlbiNhVa);
      ds::Command::W0 w0{c.raw[0]};
      if (d.stage2()) {
        w0.set_vmid(d.vmid_);
      } else {
        w0.set_asid(d.asid_);
      }
      c.raw[0] = w0.raw;
      c.raw[1] =
          ds::Command::W1{}.set_leaf(leaf ? 1 : 0).set_address((r.iova + i * step) >> 12).raw;
      cmds[n++] = c;
    }
    Count(stats_.tlbi_va, n);
  }
  return Submit(cmds, n);
}

Status SmmuDomain::Flush::Invalidate(const pgtable::InvalidationRange& range) {
  return domain->smmu_->InvalidateDomainRange(*domain, range);
}

// ---------------------------------------------------------------------------------------------
// Stream table entries and context descriptors (5.1, 5.2, 5.4)

Result<ds::Ste*> Smmuv3::SteSlot(uint32_t sid, bool allocate) {
  if constexpr (!config::kTwoLevelStreamTable) {
    (void)allocate;
    return static_cast<ds::Ste*>(strtab_.cpu) + sid;
  }
  if (!two_level()) return static_cast<ds::Ste*>(strtab_.cpu) + sid;
  const uint32_t l1 = sid >> kL2SplitBits;
  if (l2_[l1].cpu == nullptr) {
    if (!allocate) return Status::NotFound();
    const size_t bytes = (size_t{1} << kL2SplitBits) * sizeof(ds::Ste);
    DEVISO_ASSIGN_OR_RETURN(l2_[l1], config_.dma->Allocate(bytes, bytes));
    GrowDynamicHull(l2_[l1]);
    // The L2 table is all invalid STEs (zeroed and cleaned by Allocate): publishing the L1
    // descriptor changes nothing a device can do, except that it now reports C_BAD_STE
    // instead of C_BAD_STREAMID.
    auto* l1std = static_cast<uint64_t*>(strtab_.cpu) + l1;
    DmaWriteBarrier();
    Store64(l1std, ds::L1Std{}.set_span(kL2SplitBits + 1).set_l2ptr(l2_[l1].pa >> 6).raw);
    CleanForSmmu(l1std, sizeof(*l1std));
  }
  return static_cast<ds::Ste*>(l2_[l1].cpu) + (sid & ((1U << kL2SplitBits) - 1));
}

const ds::Ste* Smmuv3::SteForTest(uint32_t sid) const {
  if (!two_level()) return static_cast<const ds::Ste*>(strtab_.cpu) + sid;
  const DmaBuffer& l2 = l2_[sid >> kL2SplitBits];
  if (l2.cpu == nullptr) return nullptr;
  return static_cast<const ds::Ste*>(l2.cpu) + (sid & ((1U << kL2SplitBits) - 1));
}

void Smmuv3::BuildCd(const SmmuDomain& d, ds::Cd* cd) const {
  const pgtable::PageTable& t = *d.table_;
  const uint64_t page = t.page_size();
  ds::Cd::W0 w0;
  w0.set_t0sz(64 - t.config().ias);
  w0.set_tg0(TgField(page));
  const uint64_t cache = coherent_ ? reg::kCacheWriteBack : reg::kCacheNonCacheable;
  w0.set_ir0(cache).set_or0(cache).set_sh0(coherent_ ? reg::kShareInner : reg::kShareOuter);
  w0.set_epd1(1);  // no TTB1 walks
  w0.set_ips(AddressSizeEncoding(t.config().oas));
  w0.set_aa64(1);
  // Record faults (QEMU 7.2 records translation faults only with R=1) and abort, not stall.
  w0.set_r(1).set_a(1);
  w0.set_asid(d.asid_);
  w0.set_v(1);
  cd->raw[0] = w0.raw;
  cd->raw[1] = ds::Cd::W1{}.set_ttb0(t.root() >> 4).raw;
  cd->raw[3] = pgtable::Config::kDefaultMair;
}

ds::Ste Smmuv3::BuildSte(const SmmuDomain& d) const {
  ds::Ste ste;
  const uint64_t cache = coherent_ ? reg::kCacheWriteBack : reg::kCacheNonCacheable;
  const uint64_t share = coherent_ ? reg::kShareInner : reg::kShareOuter;
  ds::Ste::W0 w0;
  w0.set_v(1);
  ds::Ste::W1 w1;
  w1.set_shcfg(1);  // incoming shareability
  if (!d.stage2()) {
    w0.set_config(ds::kConfigS1Translate).set_s1_context_ptr(d.cd_.pa >> 6);
    w1.set_s1cir(cache).set_s1cor(cache).set_s1csh(share);
  } else {
    const pgtable::PageTable& t = *d.table_;
    const uint64_t page = t.page_size();
    w0.set_config(ds::kConfigS2Translate);
    ds::Ste::W2 w2;
    w2.set_s2vmid(d.vmid_).set_s2t0sz(64 - t.config().ias);
    // 5.2 STE.S2SL0: 4K granule: 0 = level 2, 1 = level 1, 2 = level 0; 16K and 64K:
    // 0 = level 3, 1 = level 2, 2 = level 1.
    const unsigned sl0 = page == (1U << 12) ? 2 - t.start_level() : 3 - t.start_level();
    w2.set_s2sl0(sl0).set_s2ir0(cache).set_s2or0(cache).set_s2sh0(share);
    w2.set_s2tg(TgField(page));
    w2.set_s2ps(AddressSizeEncoding(t.config().oas)).set_s2aa64(1).set_s2r(1);
    ste.raw[2] = w2.raw;
    ste.raw[3] = ds::Ste::W3{}.set_s2ttb(t.root() >> 4).raw;
  }
  ste.raw[0] = w0.raw;
  ste.raw[1] = w1.raw;
  return ste;
}

// The one writer of STEs (3.21.3, "Structure update procedures"). The SMMU reads an STE as
// several 64-bit single-copy-atomic words; every state it can observe is the old entry or
// the new one in every bit it uses:
//   blocked -> valid: words 1-7 while V=0 (only V is used), CFGI+SYNC so no fetch can mix
//                     them with an older word 0, then word 0 (V=1), CFGI+SYNC. 2 syncs.
//   valid -> blocked: word 0 (V=0), CFGI+SYNC, then words 1-7 (unused once V=0). 1 sync.
//   valid -> valid:   through blocked (not hitless; the API never needs it). 3 syncs.
void Smmuv3::StoreSteWord(uint32_t sid, ds::Ste* ste, size_t word, uint64_t value) {
  Store64(&ste->raw[word], value);
  if (config_.ste_observer != nullptr) config_.ste_observer(config_.ste_observer_ctx, sid, *ste);
}

Status Smmuv3::WriteSte(uint32_t sid, const ds::Ste& target, bool invalidate_blocked) {
  DEVISO_ASSIGN_OR_RETURN(ds::Ste * ste, SteSlot(sid, true));
  const ds::Command cfgi[2] = {CfgiSte(sid), CfgiCdAll(sid)};
  const bool was_valid = (Load64(&ste->raw[0]) & 1) != 0;
  const bool valid = (target.raw[0] & 1) != 0;
  // An STE that reads V=0 may still be cached valid by the SMMU when an earlier CFGI+SYNC for
  // it failed (a retried Detach): `invalidate_blocked` redoes the invalidation all the same.
  if (was_valid || invalidate_blocked) {
    StoreSteWord(sid, ste, 0, 0);
    CleanForSmmu(ste, sizeof(*ste));
    if (const Status s = Submit(cfgi, 2); !s.ok()) {
      config_unconfirmed_ = true;
      return s;
    }
    for (size_t i = 1; i < ds::Ste::kWords; ++i) StoreSteWord(sid, ste, i, 0);
    CleanForSmmu(ste, sizeof(*ste));
  }
  if (!valid) return Status::Ok();
  for (size_t i = 1; i < ds::Ste::kWords; ++i) StoreSteWord(sid, ste, i, target.raw[i]);
  CleanForSmmu(ste, sizeof(*ste));
  Status s = Submit(cfgi, 1);
  if (s.ok()) {
    DmaWriteBarrier();
    StoreSteWord(sid, ste, 0, target.raw[0]);
    CleanForSmmu(ste, sizeof(*ste));
    s = Submit(cfgi, 1);
    if (s.ok()) return s;
  }
  // Not confirmed: leave the stream blocked in memory (the unit is marked broken if the
  // sync timed out, so nothing it may use is freed). If even this invalidation fails the SMMU
  // may hold the new entry: DestroyDomain then issues CFGI_ALL before the CD and tables it
  // names can be freed.
  StoreSteWord(sid, ste, 0, 0);
  for (size_t i = 1; i < ds::Ste::kWords; ++i) StoreSteWord(sid, ste, i, 0);
  CleanForSmmu(ste, sizeof(*ste));
  const ds::Command cleanup[2] = {CfgiSte(sid), CfgiCdAll(sid)};
  if (!Submit(cleanup, 2).ok()) config_unconfirmed_ = true;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Domains

pgtable::TableMemory* Smmuv3::TablesFor(uint64_t page_size) {
  // The platform's pools, behind this unit's lock (domains change in parallel).
  switch (page_size) {
    case 1U << 12:
      return idr5_.gran4k() != 0 && config_.tables_4k != nullptr ? &tables_4k_ : nullptr;
    case 1U << 14:
      return config::kGranule16K64K && idr5_.gran16k() != 0 && config_.tables_16k != nullptr
                 ? &tables_16k_
                 : nullptr;
    case 1U << 16:
      return config::kGranule16K64K && idr5_.gran64k() != 0 && config_.tables_64k != nullptr
                 ? &tables_64k_
                 : nullptr;
    default:
      return nullptr;
  }
}

Status Smmuv3::AllocId(uint64_t* bitmap, unsigned bits, uint16_t* id) {
  // IDs 1..kMaxDomains (0 is left unused so a zeroed CD/STE never matches a live domain).
  const unsigned limit = bits >= 16 ? kMaxDomains : (1U << bits) - 1;
  for (unsigned i = 1; i <= limit && i <= kMaxDomains; ++i) {
    if ((bitmap[i / 64] & (1ULL << (i % 64))) == 0) {
      bitmap[i / 64] |= 1ULL << (i % 64);
      *id = static_cast<uint16_t>(i);
      return Status::Ok();
    }
  }
  return Status::NoMemory();
}

Result<Domain*> Smmuv3::CreateDomain(const DomainOptions& options, FaultSink* sink) {
  if (!probed_) return Status::InvalidArgument();
  bool stage2;
  switch (options.stage) {
    case DomainOptions::Stage::kDefault:
      stage2 = idr0_.s1p() == 0;
      break;
    case DomainOptions::Stage::kStage1:
      stage2 = false;
      break;
    case DomainOptions::Stage::kStage2:
      stage2 = true;
      break;
    default:
      return Status::InvalidArgument();
  }
  if (stage2 && !config::kStage2) return Status::NotSupported();  // compiled out
  if (stage2 ? idr0_.s2p() == 0 : idr0_.s1p() == 0) return Status::NotSupported();
  uint64_t page = options.page_size;
  if (page == 0)
    page = (caps_.page_sizes & (1ULL << 12)) != 0   ? (1ULL << 12)
           : (caps_.page_sizes & (1ULL << 14)) != 0 ? (1ULL << 14)
                                                    : (1ULL << 16);
  pgtable::TableMemory* tables = TablesFor(page);
  if (tables == nullptr) return Status::NotSupported();
  uint8_t ias = options.ias != 0 ? options.ias : stage2 ? oas_bits_ : caps_.ias;
  if (ias > 48 || ias < 32 || (stage2 && ias > oas_bits_)) return Status::InvalidArgument();

  port::LockGuard guard(lock_);
  if (broken()) return Status::IoError();  // nothing allocated for a unit that cannot confirm
  SmmuDomain* d = domains_.FreeSlot();
  if (d == nullptr) return Status::NoMemory();
  uint16_t id = 0;
  DEVISO_TRY(AllocId(stage2 ? vmid_map_ : asid_map_,
                     stage2 ? (idr0_.vmid16() ? 16 : 8) : (idr0_.asid16() ? 16 : 8), &id));
  auto release_id = [&] {
    uint64_t* map = stage2 ? vmid_map_ : asid_map_;
    map[id / 64] &= ~(1ULL << (id % 64));
  };

  const pgtable::Granule g = static_cast<pgtable::Granule>(GranuleShift(page));
  pgtable::Config cfg = stage2 ? pgtable::Config::SmmuStage2(g, ias, oas_bits_, coherent_)
                               : pgtable::Config::SmmuStage1(g, ias, oas_bits_, coherent_);
  cfg.bbml2 = config_.use_bbml2 && idr3_.bbml() == 2;
  // BBML=1: hitless through nT (IHI0070 3.21.1.2).
  cfg.bbml1 = config_.use_bbml2 && idr3_.bbml() == 1;
  d->split_allowed_ = cfg.bbml2 || cfg.bbml1 || options.allow_block_split_window;
  d->smmu_ = this;
  d->stage2_ = stage2;
  d->asid_ = stage2 ? 0 : id;
  d->vmid_ = stage2 ? id : 0;
  d->flush_.domain = d;
  d->table_.emplace(cfg, *tables, d->flush_);
  if (const Status s = d->table_->Init(); !s.ok()) {
    d->table_.reset();
    release_id();
    return s;
  }
  d->page_size_ = page;
  d->ias_ = ias;
  if (!stage2) {
    Result<DmaBuffer> cd = config_.dma->Allocate(sizeof(ds::Cd), 64);
    if (!cd.ok()) {
      d->table_.reset();
      release_id();
      return cd.status();
    }
    d->cd_ = *cd;
    GrowDynamicHull(d->cd_);
    // Written before any STE points at it: word 0 (V) last all the same.
    ds::Cd image;
    BuildCd(*d, &image);
    auto* words = static_cast<uint64_t*>(d->cd_.cpu);
    for (size_t i = 1; i < ds::Cd::kWords; ++i) Store64(&words[i], image.raw[i]);
    DmaWriteBarrier();
    Store64(&words[0], image.raw[0]);
    CleanForSmmu(words, sizeof(ds::Cd));
  }
  d->pending_start_ = d->pending_end_ = 0;
  d->failed_start_ = d->failed_end_ = 0;
  domains_.Activate(d, sink);
  return static_cast<Domain*>(d);
}

Status Smmuv3::DestroyDomain(Domain* domain) {
  port::LockGuard guard(lock_);
  SmmuDomain* d = domains_.Find(domain);
  if (d == nullptr) return Status::InvalidArgument();
  if (d->streams() != 0) return Status::Busy();
  if (broken()) return Status::IoError();
  // No stream reaches the domain any more; drop its ASID/VMID's TLB and walk-cache entries
  // before its tables and CD can be reused. If an STE invalidation failed earlier the SMMU may
  // still hold an STE naming this domain's CD or tables: drop every cached configuration too.
  const bool cfgi_all = config_unconfirmed_;
  const ds::Command cmds[2] = {ContextTlbi(*d), CfgiAll()};
  DEVISO_TRY(Submit(cmds, cfgi_all ? 2 : 1));
  if (cfgi_all) config_unconfirmed_ = false;
  Count(stats_.tlbi_context);
  d->table_.reset();  // PageTable::Release: frees every table
  if (d->cd_.cpu != nullptr) {
    config_.dma->Free(d->cd_);
    d->cd_ = DmaBuffer{};
  }
  uint64_t* map = d->stage2() ? vmid_map_ : asid_map_;
  const uint16_t id = d->stage2() ? d->vmid_ : d->asid_;
  map[id / 64] &= ~(1ULL << (id % 64));
  domains_.Release(d);
  return Status::Ok();
}

Status Smmuv3::ValidateStream(uint32_t sid) const {
  if (!probed_ || (sid_bits_ < 32 && sid >= (1U << sid_bits_))) return Status::InvalidArgument();
  return Status::Ok();
}

Status Smmuv3::Attach(Domain* domain, uint32_t sid) {
  DEVISO_TRY(ValidateStream(sid));
  port::LockGuard guard(lock_);
  SmmuDomain* d = domains_.Find(domain);
  if (d == nullptr) return Status::InvalidArgument();
  DEVISO_TRY(streams_.CanAttach(sid));  // -EEXIST (attached anywhere), -ENOMEM
  if (broken()) return Status::IoError();
  DEVISO_TRY(WriteSte(sid, BuildSte(*d)));
  streams_.Add(sid, d);
  return Status::Ok();
}

Status Smmuv3::Detach(Domain* domain, uint32_t sid) {
  port::LockGuard guard(lock_);
  const SmmuDomain* d = domains_.Find(domain);
  if (d == nullptr || !streams_.IsAttached(d, sid)) return Status::NotFound();
  if (broken()) return Status::IoError();
  // Always invalidates, even if a failed Detach already cleared V in memory.
  DEVISO_TRY(WriteSte(sid, ds::Ste{}, /*invalidate_blocked=*/true));
  streams_.Remove(sid);
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

Status Smmuv3::BypassStream(uint32_t sid) {
  DEVISO_TRY(ValidateStream(sid));
  port::LockGuard guard(lock_);
  if (streams_.attached(sid)) return Status::AlreadyExists();
  ds::Ste ste;
  ste.raw[0] = ds::Ste::W0{}.set_v(1).set_config(ds::kConfigBypass).raw;
  ste.raw[1] = ds::Ste::W1{}.set_shcfg(1).raw;
  return WriteSte(sid, ste);
}

Status Smmuv3::BlockStream(uint32_t sid) {
  DEVISO_TRY(ValidateStream(sid));
  port::LockGuard guard(lock_);
  if (streams_.attached(sid)) return Status::AlreadyExists();
  return WriteSte(sid, ds::Ste{}, /*invalidate_blocked=*/true);
}

// ---------------------------------------------------------------------------------------------
// Mapping: the translation-table engine, with this driver's invalidation.

namespace {
pgtable::MemType EngineType(MemType t) {
  switch (t) {
    case MemType::kNormal:
      return pgtable::MemType::kNormalWriteBack;
    case MemType::kNormalNonCacheable:
      return pgtable::MemType::kNormalNonCacheable;
    case MemType::kDevice:
      return pgtable::MemType::kDeviceNGnRE;
    default:
      return pgtable::MemType::kDeviceNGnRnE;
  }
}
}  // namespace

Status Smmuv3::Map(Domain* domain, Iova iova, Paddr pa, uint64_t size, Perms perms, MemType type) {
  auto* d = static_cast<SmmuDomain*>(domain);
  if (perms > 0xff || static_cast<unsigned>(type) > 3) return Status::InvalidArgument();
  if (broken()) return Status::IoError();  // no table is allocated for a broken unit
  if (UsesMemory(pa, size)) return Status::PermissionDenied();
  // A failed strict unmap left an invalidation owed: the SMMU may still hold its old entries
  // and walk-cache pointers to the tables it unlinked, through which the new entries would not
  // be seen (a fault) or an old translation would. The owed invalidation (whole context) comes
  // first; if it cannot be confirmed nothing is mapped.
  if (d->pending_end_ > d->pending_start_) {
    const ds::Command all = ContextTlbi(*d);
    Count(stats_.tlbi_context);
    DEVISO_TRY(Submit(&all, 1));
    d->pending_start_ = d->pending_end_ = 0;
  }
  DEVISO_TRY(d->table_->Map(iova, pa, size, static_cast<pgtable::Perms>(perms), EngineType(type)));
  // Mapped again over all of it: the failed unmaps' range is ordinary mapped memory now. (A map
  // over only a part keeps the record: the rest, possibly another failed unmap's range that the
  // record's hull joined, is still owed.)
  if (iova <= d->failed_start_ && d->failed_end_ - iova <= size) {
    d->failed_start_ = d->failed_end_ = 0;
  }
  return Status::Ok();
}

Status Smmuv3::Unmap(Domain* domain, Iova iova, uint64_t size) {
  auto* d = static_cast<SmmuDomain*>(domain);
  if (broken()) return Status::IoError();  // nothing changes on a unit that cannot confirm
  if (!d->split_allowed_ && size != 0) {
    // No hitless split (BBML = 0) and the context did not accept the break-before-make window
    // (DomainOptions::allow_block_split_window): an unmap that starts or ends inside a block
    // is refused, nothing changed (docs/smmuv3.md "Break-before-make window").
    const uint64_t page = d->page_size();
    const Result<pgtable::Mapping> first = d->table_->Lookup(iova);
    const Result<pgtable::Mapping> last = d->table_->Lookup(iova + size - 1);
    if ((first.ok() && first->size > page && first->iova != iova) ||
        (last.ok() && last->size > page && last->iova + last->size != iova + size)) {
      // A range that is not wholly mapped is -ENOENT first, as everywhere else (only this
      // refusal path walks the range).
      for (uint64_t pos = iova; pos - iova < size;) {
        const Result<pgtable::Mapping> m = d->table_->Lookup(pos);
        if (!m.ok()) return Status::NotFound();
        pos = m->iova + m->size;
      }
      return Status::NotSupported();
    }
  }
  // Remembers a failed unmap: its entries may be gone, its retry must converge.
  auto remember = [d, iova, size](const Status& failed) {
    if (failed != Status::IoError() && failed != Status::TimedOut()) return failed;
    if (d->failed_end_ <= d->failed_start_) {
      d->failed_start_ = iova;
      d->failed_end_ = iova + size;
    } else {
      if (iova < d->failed_start_) d->failed_start_ = iova;
      if (iova + size > d->failed_end_) d->failed_end_ = iova + size;
    }
    return failed;
  };
  const Status s = remember(d->table_->Unmap(iova, size));
  // The error-path contract (docs/smmuv3.md): a strict unmap whose invalidation failed has
  // already cleared its entries, so the engine answers its retry with -ENOENT. A retry inside
  // the range of that failed invalidation converges instead: what is still mapped in it is
  // unmapped, and the invalidation is redone (whole context); 0 once it completed.
  const uint64_t page = d->page_size();
  const uint64_t owed_start = d->failed_start_;
  const uint64_t owed_end = d->failed_end_;
  if (s != Status::NotFound() || owed_end <= owed_start || iova >= owed_end ||
      (owed_start > iova && owed_start - iova >= size)) {
    return s;
  }
  // The range may reach past the owed one: -ENOENT (nothing changed) unless every page of it that
  // is not mapped lies in the owed range.
  for (Iova a = iova; a < iova + size;) {
    const Result<pgtable::Mapping> m = d->table_->Lookup(a);
    if (m.ok()) {
      a = m->iova + m->size;
    } else if (a < owed_start || a >= owed_end) {
      return s;
    } else {
      a += page;
    }
  }
  for (Iova a = iova; a < iova + size;) {
    const Result<pgtable::Mapping> m = d->table_->Lookup(a);
    if (!m.ok()) {
      a += page;
      continue;
    }
    const Iova run_end = m->iova + m->size < iova + size ? m->iova + m->size : iova + size;
    // A failure here leaves this whole range owed as well (it may reach past the owed one).
    DEVISO_TRY(remember(d->table_->Unmap(a, run_end - a)));
    a = run_end;
  }
  // The engine may have completed the owed invalidation in this very call (folding in the
  // tables a failed sync kept), even though it answered -ENOENT.
  if (d->pending_end_ > d->pending_start_) {
    DEVISO_TRY(
        remember(InvalidateDomainRange(*d, pgtable::InvalidationRange{iova, size, 0, true})));
  }
  if (iova <= owed_start && owed_end - iova <= size) d->failed_start_ = d->failed_end_ = 0;
  return Status::Ok();
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

Result<Paddr> Smmuv3::IovaToPhys(Domain* domain, Iova iova) {
  auto* d = static_cast<SmmuDomain*>(domain);
  return d->table_->IovaToPhys(iova);
}

namespace {

// Feeds the engine's leaves (ascending IOVA) to a LeafMerger.
class LeafFeed final : public pgtable::MappingVisitor {
 public:
  explicit LeafFeed(LeafMerger& merger) : merger_(merger) {}
  bool Visit(const pgtable::Mapping& m) override {
    LeafExtent leaf;
    leaf.iova = m.iova;
    leaf.pa = m.pa;
    leaf.size = m.size;
    leaf.perms = m.perms;
    // pgtable::MemType and deviso::MemType list the same four types in the same order.
    leaf.type = static_cast<MemType>(static_cast<uint8_t>(m.type));
    leaf.leaf_size = m.size;
    return merger_.Add(leaf);
  }

 private:
  LeafMerger& merger_;
};

}  // namespace

// Reads the domain's tables through the engine's visitor (the context lock keeps them still).
Status Smmuv3::ForEachLeaf(Domain* domain, LeafVisitor& visitor) {
  auto* d = static_cast<SmmuDomain*>(domain);
  LeafMerger merger(visitor);
  LeafFeed feed(merger);
  d->table_->ForEachMapping(feed);
  merger.Finish();
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Events (7.3) and global errors (7.2)

const char* Smmuv3::EventName(uint8_t id) {
  switch (id) {
    case ds::kEvtUut:
      return "F_UUT";
    case ds::kEvtBadStreamId:
      return "C_BAD_STREAMID";
    case ds::kEvtSteFetch:
      return "F_STE_FETCH";
    case ds::kEvtBadSte:
      return "C_BAD_STE";
    case ds::kEvtBadAtsTreq:
      return "F_BAD_ATS_TREQ";
    case ds::kEvtStreamDisabled:
      return "F_STREAM_DISABLED";
    case ds::kEvtTranslForbidden:
      return "F_TRANSL_FORBIDDEN";
    case ds::kEvtBadSubstreamId:
      return "C_BAD_SUBSTREAMID";
    case ds::kEvtCdFetch:
      return "F_CD_FETCH";
    case ds::kEvtBadCd:
      return "C_BAD_CD";
    case ds::kEvtWalkEabt:
      return "F_WALK_EABT";
    case ds::kEvtTranslation:
      return "F_TRANSLATION";
    case ds::kEvtAddrSize:
      return "F_ADDR_SIZE";
    case ds::kEvtAccess:
      return "F_ACCESS";
    case ds::kEvtPermission:
      return "F_PERMISSION";
    case ds::kEvtTlbConflict:
      return "F_TLB_CONFLICT";
    case ds::kEvtCfgConflict:
      return "F_CFG_CONFLICT";
    case ds::kEvtPageRequest:
      return "E_PAGE_REQUEST";
    case ds::kEvtVmsFetch:
      return "F_VMS_FETCH";
    default:
      return id >= 0xe0 && id <= 0xef ? "IMPDEF" : "UNKNOWN";
  }
}

Fault Smmuv3::DecodeFault(const ds::Event& e, const char* unit_name, bool stream_attached) {
  const ds::Event::W0 w0{e.raw[0]};
  const ds::Event::W1 w1{e.raw[1]};
  Fault f{};
  f.sid = static_cast<uint32_t>(w0.stream_id());
  f.raw_type = static_cast<uint32_t>(w0.event_id());
  f.unit = unit_name;
  bool has_access = false;  // RnW/PnU/InD/InputAddr are defined for this event
  switch (w0.event_id()) {
    case ds::kEvtTranslation:
      f.reason = DEVISO_FAULT_TRANSLATION;
      has_access = true;
      break;
    case ds::kEvtAddrSize:
      f.reason = DEVISO_FAULT_ADDR_SIZE;
      has_access = true;
      break;
    case ds::kEvtAccess:
      f.reason = DEVISO_FAULT_ACCESS;
      has_access = true;
      break;
    case ds::kEvtPermission:
      f.reason = DEVISO_FAULT_PERMISSION;
      has_access = true;
      break;
    case ds::kEvtBadStreamId:
    case ds::kEvtStreamDisabled:
      f.reason = DEVISO_FAULT_BLOCKED;
      break;
    case ds::kEvtBadSte:
      // An invalid STE is how deviso blocks a stream with no context; on an attached
      // stream it would mean a configuration deviso wrote is illegal.
      f.reason = stream_attached ? DEVISO_FAULT_BAD_CONFIG : DEVISO_FAULT_BLOCKED;
      break;
    case ds::kEvtTranslForbidden:
    case ds::kEvtBadAtsTreq:
      f.reason = DEVISO_FAULT_BLOCKED;
      has_access = true;
      break;
    case ds::kEvtBadSubstreamId:
    case ds::kEvtBadCd:
    case ds::kEvtTlbConflict:
    case ds::kEvtCfgConflict:
      f.reason = DEVISO_FAULT_BAD_CONFIG;
      has_access = w0.event_id() == ds::kEvtTlbConflict;
      break;
    case ds::kEvtSteFetch:
    case ds::kEvtCdFetch:
    case ds::kEvtVmsFetch:
      f.reason = DEVISO_FAULT_EXTERNAL;
      break;
    case ds::kEvtWalkEabt:
      f.reason = DEVISO_FAULT_EXTERNAL;
      has_access = true;
      break;
    case ds::kEvtUut:
      f.reason = DEVISO_FAULT_UNKNOWN;
      has_access = true;
      break;
    default:
      f.reason = DEVISO_FAULT_UNKNOWN;
      break;
  }
  if (has_access) {
    f.flags |= w1.rnw() != 0 ? DEVISO_FAULT_READ : DEVISO_FAULT_WRITE;
    if (w1.pnu() != 0) f.flags |= DEVISO_FAULT_PRIV;
    if (w1.ind() != 0) f.flags |= DEVISO_FAULT_EXEC;
    f.iova = e.raw[2];
    f.flags |= DEVISO_FAULT_ADDR_VALID;
    if (w1.s2() != 0 && w0.event_id() >= ds::kEvtTranslation &&
        w0.event_id() <= ds::kEvtPermission) {
      f.flags |= DEVISO_FAULT_STAGE2;
      f.ipa = ds::Event::W3{e.raw[3]}.ipa() << 12;
    }
  }
  return f;
}

void Smmuv3::DeliverFault(const Fault& fault, bool to_all) {
  // Called with evtq_lock_ held. lock_ guards the stream slots against Attach/Detach.
  port::LockGuard guard(lock_);
  if (to_all) {
    (void)streams_.RouteToAll(fault);
  } else if (!streams_.Route(fault)) {
    unrouted_.ReportUnrouted(fault);  // rate-limited like a context's handler (core/unit_faults.h)
  }
}

void Smmuv3::ReportOverflow() {
  Count(stats_.event_overflows);
  if constexpr (config::kLogging) {
    port::Log("deviso: %s: event queue overflow: faults were lost\n", name_);
  }
  if constexpr (config::kFaultReports) {
    // Lost faults belong to the unit, not to any context (which of them faulted is unknown):
    // counted in stats().event_overflows and reported once to the unit's handler; no context's
    // fault count changes.
    Fault f{};
    f.sid = ~0U;
    f.reason = DEVISO_FAULT_OVERFLOW;
    f.unit = name_;
    unrouted_.Report(f);
  }
}

bool Smmuv3::HandleEvents() {
  if (evtq_.buffer.cpu == nullptr || broken()) return false;
  port::LockGuard guard(evtq_lock_);
  const uint32_t mask = (2U << evtq_.log2) - 1;
  DrainBudget budget(config_.events_per_call);
  bool more = false;
  for (;;) {
    const reg::QueueIndex prod{regs_->Read32(reg::kEventqProd)};
    // 6.3.30: WR and WRAP for this queue's size and OVFLG; the rest is RES0. PROD never moves
    // backwards, and never more than a queue ahead of CONS. Anything else (all-ones: the
    // device is gone) is a hardware failure, not records or an overflow.
    const uint32_t new_prod = static_cast<uint32_t>(prod.wr_rd()) & mask;
    if ((prod.raw & ~(mask | reg::QueueIndex{}.set_ovf(1).raw)) != 0 ||
        ((new_prod - evtq_.cons) & mask) > (1U << evtq_.log2) ||
        ((new_prod - evtq_.cons) & mask) < ((evtq_.prod - evtq_.cons) & mask)) {
      ImpossibleRead("EVENTQ_PROD", prod.raw);
      return false;
    }
    // Records must be read after PROD (3.5.2).
    DmaReadBarrier();
    if (prod.ovf() != evtq_ovf_ack_) {
      // 7.4: OVFLG toggled: records were lost. Acknowledge with OVACKFLG.
      evtq_ovf_ack_ = static_cast<uint32_t>(prod.ovf());
      ReportOverflow();
    }
    evtq_.prod = static_cast<uint32_t>(prod.wr_rd()) & mask;
    if (QueueEmpty(evtq_)) break;
    if (budget.spent()) {
      more = true;  // records left for the next call: bounded time in the interrupt handler
      break;
    }
    while (!QueueEmpty(evtq_) && budget.Take()) {
      Count(stats_.events);
      if constexpr (config::kFaultReports) {
        auto* rec = static_cast<ds::Event*>(evtq_.buffer.cpu) + QueueIdx(evtq_, evtq_.cons);
        if (!coherent_) config_.dma->Invalidate(rec, sizeof(*rec));
        ds::Event e;
        for (size_t i = 0; i < 4; ++i) e.raw[i] = Load64(&rec->raw[i]);
        const uint32_t sid = static_cast<uint32_t>(ds::Event::W0{e.raw[0]}.stream_id());
        bool attached = false;
        {
          port::LockGuard streams_guard(lock_);
          attached = streams_.attached(sid);
        }
        DeliverFault(DecodeFault(e, name_, attached), false);
      }
      // Built without fault reports the record is not read at all: only counted and freed.
      evtq_.cons = QueueInc(evtq_, evtq_.cons);
    }
    // Free the records for the SMMU: they have been read.
    regs_->Write32(reg::kEventqCons, evtq_.cons | (evtq_ovf_ack_ << 31));
  }
  return more;
}

bool Smmuv3::DrainEvents() {
  // One queue's worth of records (evtq_.log2 is fixed after Probe), and one call more for the
  // record that tells an empty queue from a full one.
  const size_t calls =
      ((size_t{1} << evtq_.log2) + config_.events_per_call - 1) / config_.events_per_call + 1;
  for (size_t i = 0; i < calls; ++i) {
    if (!HandleEvents()) return false;
  }
  return true;
}

void Smmuv3::HandleGlobalErrors() {
  const reg::Gerror gerror{regs_->Read32(reg::kGerror)};
  const reg::Gerror gerrorn{regs_->Read32(reg::kGerrorN)};
  if (((gerror.raw | gerrorn.raw) & ~reg::kGerrorDefined) != 0) {
    ImpossibleRead("GERROR", gerror.raw);  // not a list of errors to acknowledge
    return;
  }
  // CMDQ_ERR stays for the submitter that waits on the queue (it knows which command).
  const uint32_t active = (gerror.raw ^ gerrorn.raw) & ~reg::Gerror{}.set_cmdq_err(1).raw;
  if (active == 0) return;
  const reg::Gerror a{active};
  if (a.eventq_abt_err() != 0) {
    // QEMU 7.2 reports a full event queue this way rather than with OVFLG.
    {
      port::LockGuard guard(evtq_lock_);
      ReportOverflow();
    }
    HandleEvents();
  }
  if (a.sfm_err() != 0) {
    SetBroken(true);
    if constexpr (config::kLogging) {
      port::Log(
          "deviso: %s: SMMU entered service failure mode (GERROR.SFM_ERR): DMA is "
          "terminated and the unit must be reset\n",
          name_);
    }
  }
  if (config::kLogging &&
      (active & ~(reg::Gerror{}.set_eventq_abt_err(1).set_sfm_err(1).raw)) != 0) {
    port::Log("deviso: %s: global error 0x%x\n", name_, active);
  }
  Count(stats_.gerrors);
  regs_->Write32(reg::kGerrorN, gerrorn.raw ^ active);
}

Status Smmuv3::SetUnroutedFaultHandler(deviso_fault_handler_t handler, void* user,
                                       uint32_t per_second) {
  if constexpr (!config::kFaultReports) return Status::NotSupported();
  port::LockGuard guard(evtq_lock_);
  if (per_second == 0) return Status::InvalidArgument();
  unrouted_.Set(handler, user, per_second);
  return Status::Ok();
}

}  // namespace deviso::smmuv3
