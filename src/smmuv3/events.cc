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

namespace {

// 7.3: every architected event, once: its name, what deviso reports it as, and which of the
// record's fields are defined for it. EventName() and DecodeFault() both read this table.
struct EventInfo {
  uint8_t id;
  const char* name;
  deviso_fault_reason reason;
  // The reason on a stream with a domain, if it differs (C_BAD_STE: an invalid STE is how deviso
  // blocks a stream with no context; on an attached stream a configuration it wrote is illegal).
  deviso_fault_reason reason_if_attached;
  bool has_access;  // RnW, PnU, InD and InputAddr are defined
  bool has_ipa;     // S2 and IPA are defined (the stage 2 translation-class faults)
};

constexpr EventInfo kEvents[] = {
    {ds::kEvtUut, "F_UUT", DEVISO_FAULT_UNKNOWN, DEVISO_FAULT_UNKNOWN, true, false},
    {ds::kEvtBadStreamId, "C_BAD_STREAMID", DEVISO_FAULT_BLOCKED, DEVISO_FAULT_BLOCKED, false,
     false},
    {ds::kEvtSteFetch, "F_STE_FETCH", DEVISO_FAULT_EXTERNAL, DEVISO_FAULT_EXTERNAL, false, false},
    {ds::kEvtBadSte, "C_BAD_STE", DEVISO_FAULT_BLOCKED, DEVISO_FAULT_BAD_CONFIG, false, false},
    {ds::kEvtBadAtsTreq, "F_BAD_ATS_TREQ", DEVISO_FAULT_BLOCKED, DEVISO_FAULT_BLOCKED, true, false},
    {ds::kEvtStreamDisabled, "F_STREAM_DISABLED", DEVISO_FAULT_BLOCKED, DEVISO_FAULT_BLOCKED, false,
     false},
    {ds::kEvtTranslForbidden, "F_TRANSL_FORBIDDEN", DEVISO_FAULT_BLOCKED, DEVISO_FAULT_BLOCKED,
     true, false},
    {ds::kEvtBadSubstreamId, "C_BAD_SUBSTREAMID", DEVISO_FAULT_BAD_CONFIG, DEVISO_FAULT_BAD_CONFIG,
     false, false},
    {ds::kEvtCdFetch, "F_CD_FETCH", DEVISO_FAULT_EXTERNAL, DEVISO_FAULT_EXTERNAL, false, false},
    {ds::kEvtBadCd, "C_BAD_CD", DEVISO_FAULT_BAD_CONFIG, DEVISO_FAULT_BAD_CONFIG, false, false},
    {ds::kEvtWalkEabt, "F_WALK_EABT", DEVISO_FAULT_EXTERNAL, DEVISO_FAULT_EXTERNAL, true, false},
    {ds::kEvtTranslation, "F_TRANSLATION", DEVISO_FAULT_TRANSLATION, DEVISO_FAULT_TRANSLATION, true,
     true},
    {ds::kEvtAddrSize, "F_ADDR_SIZE", DEVISO_FAULT_ADDR_SIZE, DEVISO_FAULT_ADDR_SIZE, true, true},
    {ds::kEvtAccess, "F_ACCESS", DEVISO_FAULT_ACCESS, DEVISO_FAULT_ACCESS, true, true},
    {ds::kEvtPermission, "F_PERMISSION", DEVISO_FAULT_PERMISSION, DEVISO_FAULT_PERMISSION, true,
     true},
    {ds::kEvtTlbConflict, "F_TLB_CONFLICT", DEVISO_FAULT_BAD_CONFIG, DEVISO_FAULT_BAD_CONFIG, true,
     false},
    {ds::kEvtCfgConflict, "F_CFG_CONFLICT", DEVISO_FAULT_BAD_CONFIG, DEVISO_FAULT_BAD_CONFIG, false,
     false},
    {ds::kEvtPageRequest, "E_PAGE_REQUEST", DEVISO_FAULT_UNKNOWN, DEVISO_FAULT_UNKNOWN, false,
     false},
    {ds::kEvtVmsFetch, "F_VMS_FETCH", DEVISO_FAULT_EXTERNAL, DEVISO_FAULT_EXTERNAL, false, false},
};

const EventInfo* FindEvent(uint64_t id) {
  for (const EventInfo& e : kEvents) {
    if (e.id == id) return &e;
  }
  return nullptr;
}

}  // namespace

const char* EventName(uint8_t id) {
  if (const EventInfo* e = FindEvent(id); e != nullptr) return e->name;
  return id >= ds::kEvtImpdefFirst && id <= ds::kEvtImpdefLast ? "IMPDEF" : "UNKNOWN";
}

Fault DecodeFault(const ds::Event& e, const char* unit_name, bool stream_attached) {
  const ds::Event::W0 w0{e.raw[0]};
  const ds::Event::W1 w1{e.raw[1]};
  Fault f{};
  f.sid = static_cast<uint32_t>(w0.stream_id());
  f.raw_type = static_cast<uint32_t>(w0.event_id());
  f.unit = unit_name;
  const EventInfo* info = FindEvent(w0.event_id());
  f.reason = info == nullptr   ? DEVISO_FAULT_UNKNOWN
             : stream_attached ? info->reason_if_attached
                               : info->reason;
  const bool has_access = info != nullptr && info->has_access;
  if (has_access) {
    f.flags |= w1.rnw() != 0 ? DEVISO_FAULT_READ : DEVISO_FAULT_WRITE;
    if (w1.pnu() != 0) f.flags |= DEVISO_FAULT_PRIV;
    if (w1.ind() != 0) f.flags |= DEVISO_FAULT_EXEC;
    f.iova = e.raw[2];
    f.flags |= DEVISO_FAULT_ADDR_VALID;
    if (w1.s2() != 0 && info->has_ipa) {
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
