// Arm SMMUv3 event queue (3.5, 7.3 event records, 7.4 overflow) and global errors (7.2
// GERROR): draining, decoding, delivery to the domain's sink or the unrouted handler. See
// events.h.

#include "smmuv3/events.h"

#include "core/barrier.h"
#include "core/counters.h"
#include "smmuv3/cmdq.h"
#include "smmuv3/dma_word.h"
#include "smmuv3/smmuv3.h"

namespace deviso::smmuv3 {

// ---------------------------------------------------------------------------------------------
// Events (7.3) and global errors (7.2)

const char* EventName(uint8_t id) {
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
      return id >= ds::kEvtImpdefFirst && id <= ds::kEvtImpdefLast ? "IMPDEF" : "UNKNOWN";
  }
}

Fault DecodeFault(const ds::Event& e, const char* unit_name, bool stream_attached) {
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
      f.ipa = ds::Event::W3{e.raw[3]}.ipa();
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
  const uint32_t mask = QueuePtrMask(evtq_);
  DrainBudget budget(config_.events_per_call);
  bool more = false;
  for (;;) {
    const reg::QueueIndex prod = reg::QueueIndex::ReadAt(*regs_, reg::kEventqProd);
    // 6.3.30: WR and WRAP for this queue's size and OVFLG; the rest is RES0. PROD never moves
    // backwards, and never more than a queue ahead of CONS. Anything else (all-ones: the
    // device is gone) is a hardware failure, not records or an overflow.
    const uint32_t new_prod = static_cast<uint32_t>(prod.wr_rd()) & mask;
    if ((prod.raw & ~(mask | reg::kQueueIndexOvf)) != 0 ||
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
    reg::QueueIndex{}
        .set_wr_rd(evtq_.cons)
        .set_ovf(evtq_ovf_ack_)
        .WriteAt(*regs_, reg::kEventqCons);
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
  const reg::Gerror gerror = reg::Gerror::ReadAt(*regs_, reg::kGerror);
  const reg::Gerror gerrorn = reg::Gerror::ReadAt(*regs_, reg::kGerrorN);
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
  reg::Gerror{gerrorn.raw ^ active}.WriteAt(*regs_, reg::kGerrorN);
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
