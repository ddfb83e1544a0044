// Arm SMMUv3 command queue (IHI0070 3.5, 4.x): writing commands, publishing them, CMD_SYNC
// completion, command errors (7.1), and the TLBI encodings. See cmdq.h.

#include "smmuv3/cmdq.h"

#include "core/barrier.h"
#include "core/counters.h"
#include "ports/poll.h"
#include "smmuv3/dma_word.h"
#include "smmuv3/domains.h"
#include "smmuv3/smmuv3.h"
#include "smmuv3/tlbi_range.h"

namespace deviso::smmuv3 {

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

Result<bool> Smmuv3::RefreshConsLocked(uint32_t first, uint32_t end, bool* lost) {
  const reg::QueueIndex cons = reg::QueueIndex::ReadAt(*regs_, reg::kCmdqCons);
  const uint32_t mask = QueuePtrMask(cmdq_);
  // 6.3.27: RD and WRAP for this queue's size, ERR; every other bit is RES0. CONS never moves
  // backwards nor past PROD.
  const uint32_t new_cons = static_cast<uint32_t>(cons.wr_rd()) & mask;
  if ((cons.raw & ~(mask | reg::kQueueIndexErr)) != 0 ||
      ((new_cons - cmdq_.cons) & mask) > ((cmdq_.prod - cmdq_.cons) & mask)) {
    ImpossibleRead("CMDQ_CONS", cons.raw);
    return Status::IoError();
  }
  cmdq_.cons = new_cons;
  // Everything queued was consumed: no command stopped the queue (7.1: the SMMU halts with
  // CONS at the erroneous command), so there is no CMDQ_ERR to look for. Saves two MMIO reads
  // on every completed sync.
  if (cmdq_.cons == cmdq_.prod) return false;
  const reg::Gerror gerror = reg::Gerror::ReadAt(*regs_, reg::kGerror);
  const reg::Gerror gerrorn = reg::Gerror::ReadAt(*regs_, reg::kGerrorN);
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
              static_cast<unsigned>(ds::Command::W0{Load64(&bad->raw[0])}.opcode()),
              cons.err() == reg::kCerrorIll ? "illegal" : "abort");
  }
  const uint32_t pos = (cmdq_.cons - first) & mask;
  if (pos < ((end - first) & mask)) *lost = true;
  const ds::Command sync = Cmd(ds::kOpSync);
  Store64(&bad->raw[0], sync.raw[0]);
  Store64(&bad->raw[1], sync.raw[1]);
  CleanForSmmu(bad, sizeof(*bad));
  DmaWriteBarrier();
  reg::Gerror{gerrorn}.set_cmdq_err(gerrorn.cmdq_err() ^ 1).WriteAt(*regs_, reg::kGerrorN);
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
  reg::QueueIndex{}.set_wr_rd(cmdq_.prod).WriteAt(*regs_, reg::kCmdqProd);
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
  reg::QueueIndex{}.set_wr_rd(cmdq_.prod).WriteAt(*regs_, reg::kCmdqProd);

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

ds::Command ContextTlbi(TlbiScope scope) {
  if (scope.stage2) {
    ds::Command c = Cmd(ds::kOpTlbiS12Vmall);
    c.raw[0] = ds::Command::W0{c.raw[0]}.set_vmid(scope.vmid).raw;
    return c;
  }
  ds::Command c = Cmd(ds::kOpTlbiNhAsid);
  c.raw[0] = ds::Command::W0{c.raw[0]}.set_asid(scope.asid).raw;
  return c;
}

ds::Command AddressTlbi(TlbiScope scope, uint64_t address, bool leaf) {
  ds::Command c = Cmd(scope.stage2 ? ds::kOpTlbiS2Ipa : ds::kOpTlbiNhVa);
  ds::Command::W0 w0{c.raw[0]};
  if (scope.stage2) {
    w0.set_vmid(scope.vmid);
  } else {
    w0.set_asid(scope.asid);
  }
  c.raw[0] = w0.raw;
  c.raw[1] = ds::Command::W1{}.set_leaf(leaf ? 1 : 0).set_address(address).raw;
  return c;
}

// Range invalidation (IDR3.RIL=1): at most two commands for any range (tlbi_range.h).
//
// 4.4.1.1: with TG != 0 the encoding TTL == 0, NUM == 0, SCALE == 0 is Reserved (CERROR_ILL
// on an SMMU with RIL=1), and TTL == 0b01 (level 1) is Reserved for the 16 KiB and 64 KiB
// granules (no level 1 leaves without 52-bit addresses). A piece of one granule with no TTL
// hint is therefore issued in the non-range form (TG = 0, NUM = SCALE = TTL = 0), which
// invalidates every entry, of any level, covering its one address: the same coverage.
size_t BuildRangeTlbi(TlbiScope scope, uint64_t page, uint64_t iova, uint64_t pages, unsigned ttl,
                      bool leaf, ds::Command* out) {
  const uint64_t tg = !config::kGranule16K64K ? ds::kTlbiTg4K
                      : page == kGranule64K   ? ds::kTlbiTg64K
                      : page == kGranule16K   ? ds::kTlbiTg16K
                                              : ds::kTlbiTg4K;
  if (tg != ds::kTlbiTg4K && ttl == 1) ttl = 0;  // a hint that would be Reserved: none
  TlbiRange ranges[2];
  const size_t n = SplitTlbiRange(pages, ranges);
  for (size_t i = 0; i < n; ++i) {
    ds::Command c = Cmd(scope.stage2 ? ds::kOpTlbiS2Ipa : ds::kOpTlbiNhVa);
    ds::Command::W0 w0{c.raw[0]};
    const bool single = ttl == 0 && ranges[i].count == 1 && ranges[i].scale == 0;
    if (!single) w0.set_num(ranges[i].count - 1).set_scale(ranges[i].scale);
    if (scope.stage2) {
      w0.set_vmid(scope.vmid);
    } else {
      w0.set_asid(scope.asid);
    }
    c.raw[0] = w0.raw;
    ds::Command::W1 w1;
    w1.set_leaf(leaf ? 1 : 0);
    if (!single) w1.set_ttl(ttl).set_tg(tg);
    w1.set_address(iova + ranges[i].first * page);
    c.raw[1] = w1.raw;
    out[i] = c;
  }
  return n;
}

}  // namespace deviso::smmuv3
