// virtio-iommu driver. See virtio_iommu.h and docs/virtio_iommu.md; sections refer to
// OASIS virtio 1.2.

#include "virtio_iommu/virtio_iommu.h"

#include <cstdio>
#include <cstring>

#include "core/counters.h"
#include "deviso/config.h"

namespace deviso::virtio_iommu {
namespace {

// A status value no device writes: a tail still holding it was never written.
constexpr uint8_t kStatusUnwritten = 0xff;

uint16_t FloorPow2(uint16_t v) {
  uint16_t p = 1;
  while (p <= v / 2) p = static_cast<uint16_t>(p * 2);
  return v == 0 ? 0 : p;
}

template <typename T>
T Zeroed() {
  T v;
  std::memset(&v, 0, sizeof(v));
  return v;
}

}  // namespace

VirtioIommu::VirtioIommu(const Config& config) : config_(config), pci_(config.pci, config.bars) {}

VirtioIommu::~VirtioIommu() {
  if (!probed_) return;
  // A reset drops every domain; with bypass = 0 (which QEMU keeps across it) every endpoint
  // is then blocked. Only if the reset completed may the device no longer touch the queues.
  if (pci_.Reset(config_.timeout_ns).ok()) FreeQueues();
}

// ---------------------------------------------------------------------------------------------
// Probe and initialisation (3.1.1, 4.1.4, 5.13.4-5)

Status VirtioIommu::Probe() {
  if (probed_ || config_.pci == nullptr || config_.dma == nullptr) {
    return Status::InvalidArgument();
  }
  DEVISO_TRY(pci_.Probe());
  DEVISO_TRY(pci_.Reset(config_.timeout_ns));
  device_features_ = pci_.ReadDeviceFeatures();
  using feature::Bit;
  if ((device_features_ & Bit(feature::kVersion1)) == 0 ||
      (device_features_ & Bit(feature::kMapUnmap)) == 0) {
    return Status::NotSupported();
  }
  if ((device_features_ & Bit(feature::kBypassConfig)) == 0 &&
      !config_.allow_without_bypass_config) {
    return Status::NotSupported();
  }
  if (pci_.device_cfg_length() < sizeof(DeviceConfig)) return Status::NotSupported();
  // 3.1.1 step 4: the configuration may be read (not written) before FEATURES_OK. Fields of
  // features not offered keep the spec's defaults (5.13.4: the whole range).
  page_size_mask_ = pci_.ConfigRead64(devcfg::kPageSizeMask);
  input_range_ = {0, ~uint64_t{0}};
  if ((device_features_ & Bit(feature::kInputRange)) != 0) {
    input_range_.start = pci_.ConfigRead64(devcfg::kInputStart);
    input_range_.end = pci_.ConfigRead64(devcfg::kInputEnd);
  }
  domain_range_ = {0, ~uint32_t{0}};
  if ((device_features_ & Bit(feature::kDomainRange)) != 0) {
    domain_range_.start = pci_.ConfigRead32(devcfg::kDomainStart);
    domain_range_.end = pci_.ConfigRead32(devcfg::kDomainEnd);
  }
  probe_size_ = 0;
  if ((device_features_ & Bit(feature::kProbe)) != 0) {
    probe_size_ = pci_.ConfigRead32(devcfg::kProbeSize);
  }
  if (page_size_mask_ == 0 || input_range_.end < input_range_.start ||
      domain_range_.end < domain_range_.start) {
    return Status::NotSupported();
  }
  granule_ = page_size_mask_ & (~page_size_mask_ + 1);
  // The granule must be a page the input range can hold at least once.
  if (granule_ > (uint64_t{1} << 40)) return Status::NotSupported();

  std::snprintf(name_, sizeof(name_), "%s", config_.name);
  caps_.backend = "virtio-iommu";
  caps_.name = name_;
  // Every mapping is made of granule-sized MAPs (virtio_iommu.h): the only leaf size used.
  caps_.page_sizes = granule_;
  caps_.ias = input_range_.end == ~uint64_t{0}
                  ? 64
                  : static_cast<uint8_t>(64 - __builtin_clzll(input_range_.end | 1));
  caps_.oas = config_.oas;
  caps_.stages = 1;
  caps_.coherent = config_.coherent;
  // No invalidation of its own (an UNMAP's completion covers the device's caches), no overflow
  // signal (5.13.6.9: events without a buffer are dropped), READ/WRITE optional in a fault.
  caps_.caches_translations = false;
  caps_.reports_fault_overflow = false;
  caps_.reports_translation_fault_direction = false;
  caps_.max_sid = config_.max_endpoint < 0xffff ? config_.max_endpoint : 0xffff;
  probed_ = true;
  return Status::Ok();
}

Status VirtioIommu::Negotiate() {
  using feature::Bit;
  // 3.1.1: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK (re-read), device setup.
  DEVISO_TRY(pci_.Reset(config_.timeout_ns));
  pci_.WriteStatus(status::kAcknowledge);
  pci_.WriteStatus(status::kAcknowledge | status::kDriver);
  uint64_t wanted = Bit(feature::kVersion1) | Bit(feature::kMapUnmap) |
                    Bit(feature::kBypassConfig) | Bit(feature::kInputRange) |
                    Bit(feature::kDomainRange) | Bit(feature::kMmio);
  if (probe_size_ >= sizeof(ProbeProperty) && probe_size_ <= kMaxProbeSize) {
    wanted |= Bit(feature::kProbe);
  }
  // Not VIRTIO_IOMMU_F_BYPASS (the legacy bypass): unattached endpoints must be blocked.
  driver_features_ = device_features_ & wanted;
  pci_.WriteDriverFeatures(driver_features_);
  pci_.WriteStatus(status::kAcknowledge | status::kDriver | status::kFeaturesOk);
  // 3.1.1 step 6: the device may refuse the subset.
  if ((pci_.ReadStatus() & status::kFeaturesOk) == 0) {
    pci_.WriteStatus(status::kFailed);
    return Status::NotSupported();
  }
  if ((driver_features_ & Bit(feature::kBypassConfig)) != 0) {
    // 5.13.4: default-deny before any bus master is enabled, and before DRIVER_OK. Writing
    // bypass without BYPASS_CONFIG would put QEMU in NEEDS_RESET: only here.
    pci_.ConfigWrite8(devcfg::kBypass, 0);
    if (pci_.ConfigRead8(devcfg::kBypass) != 0) {
      pci_.WriteStatus(status::kFailed);
      return Status::NotSupported();
    }
  }
  if (pci_.NumQueues() < 2) {
    pci_.WriteStatus(status::kFailed);
    return Status::NotSupported();
  }
  return Status::Ok();
}

Status VirtioIommu::SetupQueues() {
  DmaMemory& dma = *config_.dma;
  // The request queue: two descriptors per request (readable part, writable tail).
  pci_.SelectQueue(kRequestQueue);
  const uint16_t req_max = pci_.QueueMaxSize();
  const uint16_t req_size = FloorPow2(req_max < 2 * kBatch ? req_max : 2 * kBatch);
  pci_.SelectQueue(kEventQueue);
  const uint16_t evt_max = pci_.QueueMaxSize();
  uint16_t evt_want =
      config_.event_queue_size < kMaxEventBuffers ? config_.event_queue_size : kMaxEventBuffers;
  if (evt_max < evt_want) evt_want = evt_max;
  const uint16_t evt_size = FloorPow2(evt_want);
  if (req_size < 2 || evt_size < 1) return Status::NotSupported();

  // Allocated once; Recover() reuses them (the device was reset: nothing is in flight).
  if (reqq_.allocated() && reqq_.size() != req_size) return Status::NotSupported();
  if (evtq_.allocated() && evtq_.size() != evt_size) return Status::NotSupported();
  if (!reqq_.allocated()) DEVISO_TRY(reqq_.Allocate(dma, req_size, config_.coherent));
  if (!evtq_.allocated()) DEVISO_TRY(evtq_.Allocate(dma, evt_size, config_.coherent));
  if (slots_.cpu == nullptr) {
    DEVISO_ASSIGN_OR_RETURN(slots_, dma.Allocate(size_t{kBatch} * kSlotBytes, 64));
  }
  if (events_.cpu == nullptr) {
    DEVISO_ASSIGN_OR_RETURN(events_, dma.Allocate(size_t{evt_size} * sizeof(FaultEvent), 64));
  }
  if ((driver_features_ & feature::Bit(feature::kProbe)) != 0 && probe_.cpu == nullptr) {
    DEVISO_ASSIGN_OR_RETURN(probe_, dma.Allocate(probe_size_ + sizeof(ReqTail) + kGuardBytes, 64));
  }
  reqq_.ResetRings();
  evtq_.ResetRings();
  // The driver polls the used ring: no interrupts for requests (2.7.7).
  reqq_.SetAvailFlags(vq::kAvailFNoInterrupt);

  pci_.SelectQueue(kRequestQueue);
  pci_.SetQueue(req_size, reqq_.desc_pa(), reqq_.avail_pa(), reqq_.used_pa());
  req_notify_ = pci_.QueueNotifyOffset();
  pci_.EnableQueue();

  // 5.13.6.9: the event queue holds device-writable buffers the size of a fault record.
  std::memset(evt_posted_, 0, sizeof(evt_posted_));
  for (uint16_t i = 0; i < evt_size; ++i) {
    evtq_.SetDesc(i, events_.pa + size_t{i} * sizeof(FaultEvent), sizeof(FaultEvent),
                  vq::kDescFWrite, 0);
    evtq_.AddAvail(i);
    evt_posted_[i / 64] |= uint64_t{1} << (i % 64);
  }
  evtq_.PublishAvail();
  pci_.SelectQueue(kEventQueue);
  pci_.SetQueue(evt_size, evtq_.desc_pa(), evtq_.avail_pa(), evtq_.used_pa());
  evt_notify_ = pci_.QueueNotifyOffset();
  pci_.EnableQueue();
  return Status::Ok();
}

void VirtioIommu::FreeQueues() {
  reqq_.Free();
  evtq_.Free();
  for (DmaBuffer* b : {&slots_, &events_, &probe_}) {
    if (b->cpu != nullptr) config_.dma->Free(*b);
    *b = DmaBuffer{};
  }
}

Status VirtioIommu::Init() {
  if (!probed_ || initialised_) return Status::InvalidArgument();
  port::LockGuard evt(evt_lock_);
  port::LockGuard guard(lock_);
  Status s = Negotiate();
  if (s.ok()) s = SetupQueues();
  if (!s.ok()) {
    // Leave nothing behind: the device reset (or FAILED), no memory held.
    if (pci_.Reset(config_.timeout_ns).ok()) FreeQueues();
    return s;
  }
  pci_.WriteStatus(status::kAcknowledge | status::kDriver | status::kFeaturesOk |
                   status::kDriverOk);
  if ((pci_.ReadStatus() & (status::kDeviceNeedsReset | status::kFailed)) != 0) {
    if (pci_.Reset(config_.timeout_ns).ok()) FreeQueues();
    return Status::IoError();
  }
  // 3.1.1: notifications only after DRIVER_OK; the event buffers are already posted.
  pci_.Notify(evt_notify_, kEventQueue);
  initialised_ = true;
  SetBroken(false);
  return Status::Ok();
}

Status VirtioIommu::Recover() {
  if (!probed_ || !initialised_) return Status::InvalidArgument();
  port::LockGuard evt(evt_lock_);
  port::LockGuard guard(lock_);
  SetBroken(true);  // until the replay below completes
  // The reset drops every domain and mapping; Negotiate() clears bypass again before
  // DRIVER_OK, so no endpoint reaches memory untranslated at any point after it.
  DEVISO_TRY(Negotiate());
  DEVISO_TRY(SetupQueues());
  pci_.WriteStatus(status::kAcknowledge | status::kDriver | status::kFeaturesOk |
                   status::kDriverOk);
  if ((pci_.ReadStatus() & (status::kDeviceNeedsReset | status::kFailed)) != 0) {
    return Status::IoError();
  }
  pci_.Notify(evt_notify_, kEventQueue);
  SetBroken(false);
  // Replay: each domain with endpoints gets them attached again and its record mapped.
  for (VirtioIommuDomain& d : domains_) {
    if (!d.in_use() || d.streams() == 0) continue;
    bool first = true;
    Status st = Status::Ok();
    streams_.ForEachOf(&d, [&](uint32_t sid) {
      if (!st.ok()) return;
      ReqAttach req = Zeroed<ReqAttach>();
      req.head.type = static_cast<uint8_t>(ReqType::kAttach);
      req.domain = d.id_;
      req.endpoint = sid;
      st = SendOne(&req, sizeof(req));
      if (st.ok() && first) {
        first = false;
        st = ReplayDomain(d);
      }
    });
    if (!st.ok()) {
      SetBroken(true);
      return st;
    }
  }
  Count(stats_.recoveries);
  return Status::Ok();
}

Status VirtioIommu::CheckUsable() const {
  if (!initialised_) return Status::InvalidArgument();
  if (broken()) return Status::IoError();
  return Status::Ok();
}

Stats VirtioIommu::stats() const {
  Stats s = SnapshotCounters(stats_);
  s.unrouted_faults = unrouted_.unrouted();
  s.unrouted_suppressed = unrouted_.suppressed();
  return s;
}

UnitStats VirtioIommu::unit_stats() const {
  const Stats st = stats();
  UnitStats u;
  u.commands = st.requests;
  u.syncs = st.notifies;
  u.events = st.events;
  u.unrouted_faults = st.unrouted_faults;
  u.unrouted_suppressed = st.unrouted_suppressed;
  u.timeouts = st.timeouts;
  u.recoveries = st.recoveries;
  return u;
}

size_t VirtioIommu::Describe(char* out, size_t out_size) const {
  const int n = std::snprintf(
      out, out_size,
      "virtio-iommu at %s: features offered 0x%llx, accepted 0x%llx; page sizes 0x%llx, input "
      "range [0x%llx, 0x%llx], domains [%u, %u], probe size %u; bypass cleared (default-deny)",
      name_, static_cast<unsigned long long>(device_features_),
      static_cast<unsigned long long>(driver_features_),
      static_cast<unsigned long long>(page_size_mask_),
      static_cast<unsigned long long>(input_range_.start),
      static_cast<unsigned long long>(input_range_.end), static_cast<unsigned>(domain_range_.start),
      static_cast<unsigned>(domain_range_.end), static_cast<unsigned>(probe_size_));
  return n < 0 ? 0 : static_cast<size_t>(n);
}

// ---------------------------------------------------------------------------------------------
// Requests (5.13.6), sent on the request queue with lock_ held

uint8_t* VirtioIommu::Slot(size_t i) const {
  return static_cast<uint8_t*>(slots_.cpu) + i * kSlotBytes;
}

void VirtioIommu::FillSlot(size_t i, const void* req, size_t len) {
  uint8_t* slot = Slot(i);
  std::memcpy(slot, req, len);
  // Marks the tail unwritten, so a device that returns the buffer without a status is caught.
  slot[kTailOffset] = kStatusUnwritten;
  std::memset(slot + kTailOffset + 1, 0, sizeof(ReqTail) - 1);
  std::memset(slot + kTailOffset + sizeof(ReqTail), kGuardPattern, kGuardBytes);
  // Record the readable length in the descriptor now: Exchange() writes the chains.
  reqq_.SetDesc(static_cast<uint16_t>(2 * i), slots_.pa + i * kSlotBytes,
                static_cast<uint32_t>(len), vq::kDescFNext, static_cast<uint16_t>(2 * i + 1));
  if (!config_.coherent) config_.dma->Clean(slot, kSlotBytes);
}

uint8_t VirtioIommu::SlotStatus(size_t i) const {
  const uint8_t* tail = Slot(i) + kTailOffset;
  if (!config_.coherent) config_.dma->Invalidate(tail, sizeof(ReqTail));
  return __atomic_load_n(tail, __ATOMIC_RELAXED);
}

bool VirtioIommu::GuardIntact(const uint8_t* guard) const {
  if (!config_.coherent) config_.dma->Invalidate(guard, kGuardBytes);
  for (size_t i = 0; i < kGuardBytes; ++i) {
    if (__atomic_load_n(&guard[i], __ATOMIC_RELAXED) != kGuardPattern) return false;
  }
  return true;
}

Status VirtioIommu::Garbled(const char* what) {
  SetBroken(true);
  Count(stats_.protocol_errors);
  if constexpr (config::kLogging) {
    port::Log("deviso: %s: device broke the protocol (%s): unit marked broken\n", name_, what);
  }
  return Status::IoError();
}

Status VirtioIommu::Exchange(size_t n, const size_t* writable_len) {
  // An element already waiting was never asked for (a late second answer).
  if (reqq_.UsedWaiting()) return Garbled("used element before the request");
  // 2.6.4 message framing: each request is a readable descriptor (head and body) chained to
  // a writable one (the tail; for PROBE the properties and the tail, in probe_).
  const size_t writable = writable_len != nullptr ? *writable_len : sizeof(ReqTail);
  for (size_t i = 0; i < n; ++i) {
    const auto w = static_cast<uint16_t>(2 * i + 1);
    if (writable_len != nullptr) {
      reqq_.SetDesc(w, probe_.pa, static_cast<uint32_t>(writable), vq::kDescFWrite, 0);
    } else {
      reqq_.SetDesc(w, slots_.pa + i * kSlotBytes + kTailOffset, sizeof(ReqTail), vq::kDescFWrite,
                    0);
    }
    reqq_.AddAvail(static_cast<uint16_t>(2 * i));
  }
  reqq_.PublishAvail();
  pci_.Notify(req_notify_, kRequestQueue);
  Count(stats_.notifies);
  // Completion inside the notify write is QEMU's habit, not the spec's: poll the used ring.
  // Each slot is answered once, in any order (2.7.8 without VIRTIO_F_IN_ORDER).
  uint32_t awaited = n >= 32 ? ~0U : (1U << n) - 1;
  const auto take = [&](const vq::UsedElem& e) -> const char* {
    const uint32_t slot = e.id / 2;
    if (e.id % 2 != 0 || slot >= n) return "used element names no request chain";
    if ((awaited & (1U << slot)) == 0) return "request answered twice";
    // 2.7.8: len is what the device wrote into the writable buffer: at least the tail, at most
    // the buffer.
    if (e.len < sizeof(ReqTail) || e.len > writable) return "used length outside the buffer";
    awaited &= ~(1U << slot);
    return nullptr;
  };
  const port::Deadline deadline = port::Deadline::In(config_.timeout_ns);
  vq::UsedElem used;
  while (awaited != 0) {
    if (reqq_.PopUsed(&used)) {
      if (const char* what = take(used); what != nullptr) return Garbled(what);
      continue;
    }
    if (reqq_.corrupt()) return Garbled("used index moved backwards or past the requests");
    if (deadline.Expired()) {
      // One last look after the deadline: a completion written while this thread was not
      // running (preempted after its previous look) is a completion, not a timeout.
      while (awaited != 0 && reqq_.PopUsed(&used)) {
        if (const char* what = take(used); what != nullptr) return Garbled(what);
      }
      if (awaited == 0) break;
      if (reqq_.corrupt()) return Garbled("used index moved backwards or past the requests");
      // The device may still write these slots: nothing is reused before Recover() resets it.
      SetBroken(true);
      Count(stats_.timeouts);
      if constexpr (config::kLogging) {
        port::Log("deviso: %s: request not completed in time: unit marked broken\n", name_);
      }
      return Status::TimedOut();
    }
  }
  // Anything more in the used ring is an answer nobody asked for.
  if (reqq_.UsedWaiting()) return Garbled("more answers than requests");
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* guard = writable_len != nullptr
                               ? static_cast<const uint8_t*>(probe_.cpu) + writable
                               : Slot(i) + kTailOffset + sizeof(ReqTail);
    if (!GuardIntact(guard)) return Garbled("write past the end of a response buffer");
  }
  Count(stats_.requests, n);
  return Status::Ok();
}

Status VirtioIommu::StatusToErrno(uint8_t status) {
  switch (static_cast<ReqStatus>(status)) {
    case ReqStatus::kOk:
      return Status::Ok();
    case ReqStatus::kUnsupp:
      return Status::NotSupported();
    case ReqStatus::kInval:
      return Status::InvalidArgument();
    case ReqStatus::kRange:
      return Status::OutOfRange();
    case ReqStatus::kNoEnt:
      return Status::NotFound();
    case ReqStatus::kNoMem:
      return Status::NoMemory();
    case ReqStatus::kIoErr:
    case ReqStatus::kDevErr:
    case ReqStatus::kFault:  // the device could not read the request: -EFAULT is not deviso's
    default:                 // unwritten or unknown status
      return Status::IoError();
  }
}

Status VirtioIommu::AnswerStatus(uint8_t status) {
  // 5.13.6: these are all the statuses there are. Anything else (a tail left unwritten
  // included) says nothing about what the device did.
  if (status > static_cast<uint8_t>(ReqStatus::kNoMem)) return Garbled("unknown status");
  return StatusToErrno(status);
}

Status VirtioIommu::SendOne(const void* req, size_t len, bool noent_expected) {
  FillSlot(0, req, len);
  DEVISO_TRY(Exchange(1));
  const uint8_t st = SlotStatus(0);
  const bool expected = noent_expected && st == static_cast<uint8_t>(ReqStatus::kNoEnt);
  if (st != static_cast<uint8_t>(ReqStatus::kOk) && !expected) Count(stats_.request_errors);
  return AnswerStatus(st);
}

Status VirtioIommu::MapPages(const VirtioIommuDomain& d, Iova iova, Paddr pa, uint64_t size,
                             uint32_t flags) {
  const uint64_t page = d.page_size_;
  const size_t batch = reqq_.size() / 2 < kBatch ? reqq_.size() / 2 : kBatch;
  Status first_error;
  uint64_t off = 0;
  while (off < size && first_error.ok()) {
    size_t n = 0;
    for (; n < batch && off < size; ++n, off += page) {
      ReqMap req = Zeroed<ReqMap>();
      req.head.type = static_cast<uint8_t>(ReqType::kMap);
      req.domain = d.id_;
      req.virt_start = iova + off;
      req.virt_end = iova + off + page - 1;
      req.phys_start = pa + off;
      req.flags = flags;
      FillSlot(n, &req, kReqMapBytes);
    }
    DEVISO_TRY(Exchange(n));
    for (size_t i = 0; i < n; ++i) {
      const uint8_t st = SlotStatus(i);
      if (st == static_cast<uint8_t>(ReqStatus::kOk)) continue;
      Count(stats_.request_errors);
      const Status e = AnswerStatus(st);
      if (broken()) return e;  // garbled: what the device took is unknown
      if (first_error.ok()) first_error = e;
    }
  }
  return first_error;
}

Status VirtioIommu::UnmapRange(uint32_t domain_id, Iova iova, Iova last, bool noent_expected) {
  ReqUnmap req = Zeroed<ReqUnmap>();
  req.head.type = static_cast<uint8_t>(ReqType::kUnmap);
  req.domain = domain_id;
  req.virt_start = iova;
  req.virt_end = last;
  return SendOne(&req, kReqUnmapBytes, noent_expected);
}

Status VirtioIommu::ReplayDomain(VirtioIommuDomain& d) {
  for (const ExtentMap::Extent& e : d.extents_) {
    DEVISO_TRY(MapPages(d, e.iova, e.pa, e.size, e.flags));
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// PROBE and reserved regions (5.13.6.8)

const VirtioIommu::ProbeEntry* VirtioIommu::FindProbe(uint32_t sid) const {
  for (const ProbeEntry& p : probed_eps_) {
    if (p.used && p.sid == sid) return &p;
  }
  return nullptr;
}

Status VirtioIommu::ProbeLocked(uint32_t sid) {
  if ((driver_features_ & feature::Bit(feature::kProbe)) == 0 || FindProbe(sid) != nullptr) {
    return Status::Ok();
  }
  ProbeEntry* entry = nullptr;
  for (ProbeEntry& p : probed_eps_) {
    if (!p.used) {
      entry = &p;
      break;
    }
  }
  if (entry == nullptr) return Status::NoMemory();
  ReqProbe req = Zeroed<ReqProbe>();
  req.head.type = static_cast<uint8_t>(ReqType::kProbe);
  req.endpoint = sid;
  auto* props = static_cast<uint8_t*>(probe_.cpu);
  const size_t writable = probe_size_ + sizeof(ReqTail);
  std::memset(props, 0, writable);
  props[probe_size_] = kStatusUnwritten;
  std::memset(props + writable, kGuardPattern, kGuardBytes);
  if (!config_.coherent) config_.dma->Clean(props, writable + kGuardBytes);
  FillSlot(0, &req, sizeof(req));
  DEVISO_TRY(Exchange(1, &writable));
  if (!config_.coherent) config_.dma->Invalidate(props, writable);
  const uint8_t st = __atomic_load_n(&props[probe_size_], __ATOMIC_RELAXED);
  if (st != static_cast<uint8_t>(ReqStatus::kOk)) {
    Count(stats_.request_errors);
    return AnswerStatus(st);
  }
  // 5.13.6.8.1: a sequence of properties, ended by a NONE property or the buffer's end.
  ProbeEntry result;
  result.used = true;
  result.sid = sid;
  size_t off = 0;
  while (off + sizeof(ProbeProperty) <= probe_size_) {
    ProbeProperty prop;
    std::memcpy(&prop, props + off, sizeof(prop));
    const uint16_t type = ProbeType{prop.type}.type();
    if (type == kProbeTNone) break;
    const size_t end = off + sizeof(ProbeProperty) + prop.length;
    if (end > probe_size_) return Status::IoError();  // malformed: nothing cached
    if (type == kProbeTResvMem) {
      if (prop.length < kProbeResvMemValueBytes) return Status::IoError();
      ProbeResvMem r;
      std::memcpy(&r, props + off, sizeof(r));
      if (r.end < r.start) return Status::IoError();
      // A region the driver cannot keep would later be mapped over: refuse instead.
      if (result.total == kMaxReserved) return Status::NoMemory();
      ReservedRegion& out = result.regions[result.total++];
      out.start = r.start;
      out.size = r.end - r.start + 1;  // 0 only for the whole 64-bit space
      if (out.size == 0) out.size = ~uint64_t{0};
      out.kind =
          r.subtype == kResvMemMsi ? ReservedRegion::Kind::kMsi : ReservedRegion::Kind::kReserved;
    }
    // Unknown properties are skipped (5.13.6.8.1: the driver ignores them).
    off = end;
  }
  *entry = result;
  return Status::Ok();
}

Status VirtioIommu::ProbeEndpoint(uint32_t sid) {
  DEVISO_TRY(ValidateStream(sid));
  DEVISO_TRY(CheckUsable());
  port::LockGuard guard(lock_);
  return ProbeLocked(sid);
}

size_t VirtioIommu::ReservedRegions(uint32_t sid, std::span<ReservedRegion> out) const {
  port::LockGuard guard(lock_);
  const ProbeEntry* p = FindProbe(sid);
  if (p == nullptr) return 0;
  for (size_t i = 0; i < p->total && i < out.size(); ++i) out[i] = p->regions[i];
  return p->total;
}

bool VirtioIommu::OverlapsReserved(const VirtioIommuDomain& d, uint32_t extra_sid, Iova iova,
                                   uint64_t size) const {
  auto hits = [&](uint32_t sid) {
    const ProbeEntry* p = FindProbe(sid);
    if (p == nullptr) return false;
    for (size_t i = 0; i < p->total; ++i) {
      const ReservedRegion& r = p->regions[i];
      const uint64_t r_last = r.start + (r.size - 1);
      if (iova <= r_last && r.start <= iova + (size - 1)) return true;
    }
    return false;
  };
  if (extra_sid != ~0U && hits(extra_sid)) return true;
  bool any = false;
  streams_.ForEachOf(&d, [&](uint32_t sid) { any = any || hits(sid); });
  return any;
}

// ---------------------------------------------------------------------------------------------
// Domains and endpoints

VirtioIommuDomain* VirtioIommu::CheckDomain(Domain* domain) { return domains_.Find(domain); }

Status VirtioIommu::ValidateStream(uint32_t sid) const {
  if (!probed_ || sid > caps_.max_sid) return Status::InvalidArgument();
  return Status::Ok();
}

Result<Domain*> VirtioIommu::CreateDomain(const DomainOptions& options, FaultSink* sink) {
  DEVISO_TRY(CheckUsable());
  if (options.stage == DomainOptions::Stage::kStage2) return Status::NotSupported();
  if (options.stage != DomainOptions::Stage::kDefault &&
      options.stage != DomainOptions::Stage::kStage1) {
    return Status::InvalidArgument();
  }
  if (options.page_size != 0 && options.page_size != granule_) return Status::NotSupported();
  if (options.ias > caps_.ias) return Status::InvalidArgument();
  port::LockGuard guard(lock_);
  // One ID per slot, from the device's domain range (5.13.4 domain_range): only as many slots
  // as the range has IDs.
  VirtioIommuDomain* d = domains_.FreeSlot(uint64_t{domain_range_.end} - domain_range_.start + 1);
  if (d == nullptr) return Status::NoMemory();
  d->id_ = domain_range_.start + static_cast<uint32_t>(domains_.IndexOf(*d));
  d->page_size_ = granule_;
  d->ias_ = options.ias != 0 ? options.ias : caps_.ias;
  d->extents_.Clear();
  // d->device_may_hold_ stays: a device may still hold this ID from an earlier domain.
  domains_.Activate(d, sink);
  return static_cast<Domain*>(d);
}

Status VirtioIommu::DestroyDomain(Domain* domain) {
  port::LockGuard guard(lock_);
  VirtioIommuDomain* d = CheckDomain(domain);
  if (d == nullptr) return Status::InvalidArgument();
  if (d->streams() != 0) return Status::Busy();
  // 5.13.6.4 / QEMU: the device dropped the domain with its last endpoint. A device that keeps
  // it is handled by device_may_hold_ when the ID is attached again.
  d->extents_.Clear();
  domains_.Release(d);
  return Status::Ok();
}

Status VirtioIommu::AttachLocked(VirtioIommuDomain& d, uint32_t sid) {
  DEVISO_TRY(ProbeLocked(sid));
  if (const ProbeEntry* p = FindProbe(sid); p != nullptr) {
    for (const ExtentMap::Extent& e : d.extents_) {
      if (OverlapsReserved(d, sid, e.iova, e.size)) {
        return Status::InvalidArgument();
      }
    }
  }
  const bool first = d.streams() == 0;
  if (first && d.device_may_hold_) {
    // Empty whatever the device may have kept under this ID before mapping the record: OK if
    // it kept a domain, NOENT if it dropped it (QEMU).
    const Status s =
        UnmapRange(d.id_, input_range_.start, input_range_.end, /*noent_expected=*/true);
    if (!s.ok() && s != Status::NotFound()) return s;
  }
  ReqAttach req = Zeroed<ReqAttach>();
  req.head.type = static_cast<uint8_t>(ReqType::kAttach);
  req.domain = d.id_;
  req.endpoint = sid;
  req.flags = 0;  // never ATTACH_F_BYPASS: a bypass domain is not isolation
  DEVISO_TRY(SendOne(&req, sizeof(req)));
  d.device_may_hold_ = true;
  if (first) {
    // The device created the domain with this ATTACH: give it the record's mappings.
    if (const Status s = ReplayDomain(d); !s.ok()) {
      if (broken()) return s;
      ReqDetach det = Zeroed<ReqDetach>();
      det.head.type = static_cast<uint8_t>(ReqType::kDetach);
      det.domain = d.id_;
      det.endpoint = sid;
      if (!SendOne(&det, sizeof(det)).ok()) SetBroken(true);  // attached, half mapped: unknown
      return s;
    }
  }
  return Status::Ok();
}

Status VirtioIommu::Attach(Domain* domain, uint32_t sid) {
  DEVISO_TRY(ValidateStream(sid));
  DEVISO_TRY(CheckUsable());
  port::LockGuard guard(lock_);
  VirtioIommuDomain* d = CheckDomain(domain);
  if (d == nullptr) return Status::InvalidArgument();
  // -EEXIST: the device would silently move the endpoint (5.13.6.3); deviso's contract refuses.
  DEVISO_TRY(streams_.CanAttach(sid));
  DEVISO_TRY(AttachLocked(*d, sid));
  streams_.Add(sid, d);
  return Status::Ok();
}

Status VirtioIommu::Detach(Domain* domain, uint32_t sid) {
  DEVISO_TRY(CheckUsable());
  port::LockGuard guard(lock_);
  const VirtioIommuDomain* d = CheckDomain(domain);
  if (d == nullptr || !streams_.IsAttached(d, sid)) return Status::NotFound();
  ReqDetach req = Zeroed<ReqDetach>();
  req.head.type = static_cast<uint8_t>(ReqType::kDetach);
  req.domain = d->id_;
  req.endpoint = sid;
  // With bypass = 0 a detached endpoint is blocked (5.13.4), its DMA reported.
  DEVISO_TRY(SendOne(&req, sizeof(req)));
  streams_.Remove(sid);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Map / Unmap / lookup

bool VirtioIommu::UsesMemory(Paddr pa, uint64_t size) const {
  const DmaBuffer* own[] = {&reqq_.buffer(), &evtq_.buffer(), &slots_, &probe_, &events_};
  for (const DmaBuffer* b : own) {
    if (b->size != 0 && pa < b->pa + b->size && b->pa < pa + size) return true;
  }
  for (const Config::Range& r : config_.own_memory) {
    if (r.size != 0 && pa < r.base + r.size && r.base < pa + size) return true;
  }
  return false;
}

Status VirtioIommu::Map(Domain* domain, Iova iova, Paddr pa, uint64_t size, Perms perms,
                        MemType type) {
  DEVISO_TRY(CheckUsable());
  VirtioIommuDomain* d = CheckDomain(domain);
  if (d == nullptr) return Status::InvalidArgument();
  const uint64_t page = d->page_size_;
  // The device accepts unaligned MAPs (QEMU 7.2 checks nothing): refuse sub-page ranges here.
  if (size == 0 || ((iova | pa | size) & (page - 1)) != 0) return Status::InvalidArgument();
  if (UsesMemory(pa, size)) return Status::PermissionDenied();
  const Iova last = iova + (size - 1);
  if (last < iova || pa + (size - 1) < pa) return Status::InvalidArgument();
  const uint64_t ias_last = d->ias_ >= 64 ? ~uint64_t{0} : (uint64_t{1} << d->ias_) - 1;
  if (iova < input_range_.start || last > input_range_.end || last > ias_last) {
    return Status::InvalidArgument();
  }
  if (config_.oas < 64 && ((pa + (size - 1)) >> config_.oas) != 0) {
    return Status::InvalidArgument();
  }
  if ((perms & ~(kPermRead | kPermWrite | kPermExec)) != 0 || (perms & kPermReadWrite) == 0) {
    return Status::InvalidArgument();
  }
  uint32_t flags = 0;
  if ((perms & (kPermRead | kPermExec)) != 0) flags |= kMapFRead;
  if ((perms & kPermWrite) != 0) flags |= kMapFWrite;
  switch (type) {
    case MemType::kNormal:
    case MemType::kNormalNonCacheable:  // virtio-iommu has no cacheability attribute
      break;
    case MemType::kDevice:
    case MemType::kDeviceStrict:
      if ((driver_features_ & feature::Bit(feature::kMmio)) == 0) return Status::NotSupported();
      flags |= kMapFMmio;
      break;
    default:
      return Status::InvalidArgument();
  }

  port::LockGuard guard(lock_);
  // The record answers what the device would not: it says INVAL for an overlap.
  DEVISO_ASSIGN_OR_RETURN(const ExtentMap::InsertPlan plan,
                          d->extents_.PlanInsert(iova, pa, size, flags));
  if (OverlapsReserved(*d, ~0U, iova, size)) return Status::InvalidArgument();
  if (d->streams() != 0) {
    // A domain with no endpoint does not exist on the device yet (QEMU creates it at the first
    // ATTACH): its record is mapped then.
    if (const Status s = MapPages(*d, iova, pa, size, flags); !s.ok()) {
      if (broken()) return s;
      // Undo what the device took: every page is inside the range, which held nothing.
      if (!UnmapRange(d->id_, iova, last).ok()) SetBroken(true);
      return s;
    }
  }
  d->extents_.CommitInsert(plan, iova, pa, size, flags);
  return Status::Ok();
}

Status VirtioIommu::Unmap(Domain* domain, Iova iova, uint64_t size) {
  DEVISO_TRY(CheckUsable());
  VirtioIommuDomain* d = CheckDomain(domain);
  if (d == nullptr) return Status::InvalidArgument();
  const uint64_t page = d->page_size_;
  if (size == 0 || ((iova | size) & (page - 1)) != 0) return Status::InvalidArgument();
  const Iova end = iova + size;  // exclusive; 0 if the range ends at 2^64
  if (end != 0 && end < iova) return Status::InvalidArgument();
  const Iova last = iova + (size - 1);

  port::LockGuard guard(lock_);
  // The whole range must be mapped (as the page-table engine's Unmap): the device would
  // answer OK for nothing mapped, deviso says -ENOENT.
  DEVISO_ASSIGN_OR_RETURN(const ExtentMap::RemovePlan plan, d->extents_.PlanRemove(iova, size));
  if (d->streams() != 0) {
    // One UNMAP removes every per-page mapping inside the range, none partly (5.13.6.6): the
    // pages left mapped are never touched. Strict: it returns once the device acknowledged.
    DEVISO_TRY(UnmapRange(d->id_, iova, last));
  }
  d->extents_.CommitRemove(plan, iova, size);
  return Status::Ok();
}

Result<Paddr> VirtioIommu::IovaToPhys(Domain* domain, Iova iova) {
  VirtioIommuDomain* d = CheckDomain(domain);
  if (d == nullptr) return Status::InvalidArgument();
  port::LockGuard guard(lock_);
  const ExtentMap::Extent* e = d->extents_.Find(iova);
  if (e == nullptr) return Status::NotFound();
  return e->pa + (iova - e->iova);
}

// The record is what the domain maps: its extents are already merged (same flags, contiguous
// in IOVA and PA), and every one is made of page-sized MAPs (one MAP per page). Map and Unmap
// change the record holding both the context lock and lock_, so the caller's context lock is
// enough to read it; lock_ is not taken, because fault delivery holds it and a fault handler
// may ask for the nearest mapping (Registry::FormatFault).
Status VirtioIommu::ForEachLeaf(Domain* domain, LeafVisitor& visitor) {
  VirtioIommuDomain* d = CheckDomain(domain);
  if (d == nullptr) return Status::InvalidArgument();
  for (const ExtentMap::Extent& e : d->extents_) {
    LeafExtent leaf;
    leaf.iova = e.iova;
    leaf.pa = e.pa;
    leaf.size = e.size;
    leaf.perms = ((e.flags & kMapFRead) != 0 ? kPermRead : 0) |
                 ((e.flags & kMapFWrite) != 0 ? kPermWrite : 0);
    leaf.type = (e.flags & kMapFMmio) != 0 ? MemType::kDevice : MemType::kNormal;
    leaf.leaf_size = d->page_size();
    if (!visitor.Visit(leaf)) break;
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Faults (5.13.6.9)

Fault VirtioIommu::DecodeFault(const FaultEvent& e, const char* unit_name, bool attached,
                               bool mapped) {
  Fault f{};
  f.sid = e.endpoint;
  f.raw_type = e.reason;
  f.unit = unit_name;
  if (!attached) {
    // Default-deny: QEMU says UNKNOWN for a never-attached endpoint, DOMAIN after a detach.
    f.reason = DEVISO_FAULT_BLOCKED;
  } else {
    switch (e.reason) {
      case kFaultRMapping:
        // The device says MAPPING both for nothing mapped and for a mapping without the
        // access's permission: the record tells them apart.
        f.reason = mapped ? DEVISO_FAULT_PERMISSION : DEVISO_FAULT_TRANSLATION;
        break;
      case kFaultRDomain:
        // Attached as far as deviso knows, yet the device found no domain.
        f.reason = DEVISO_FAULT_BAD_CONFIG;
        break;
      default:
        f.reason = DEVISO_FAULT_UNKNOWN;
        break;
    }
  }
  if ((e.flags & kFaultFRead) != 0) f.flags |= DEVISO_FAULT_READ;
  if ((e.flags & kFaultFWrite) != 0) f.flags |= DEVISO_FAULT_WRITE;
  if ((e.flags & kFaultFExec) != 0) f.flags |= DEVISO_FAULT_EXEC;
  if ((e.flags & kFaultFAddress) != 0) {
    f.flags |= DEVISO_FAULT_ADDR_VALID;
    f.iova = e.address;
  }
  return f;
}

void VirtioIommu::DeliverFault(const Fault& fault) {
  // lock_ held: the streams cannot change under us, so a sink is never called after the
  // Detach() of its stream returned.
  if (!streams_.Route(fault)) unrouted_.ReportUnrouted(fault);
}

bool VirtioIommu::HandleEvents() {
  port::LockGuard evt(evt_lock_);
  if (!initialised_ || !evtq_.allocated()) return false;
  (void)pci_.ReadIsr();  // 4.1.4.5: acknowledges a legacy interrupt, if one was raised
  // Buffers go back only after the pass, so that one returned twice in it is caught.
  uint16_t repost[kMaxEventBuffers];
  size_t reposts = 0;
  const char* garbled = nullptr;
  vq::UsedElem used;
  while (garbled == nullptr && evtq_.PopUsed(&used)) {
    Count(stats_.events);
    // Only a buffer the device holds may come back, and only once: anything else would post
    // a buffer twice (the avail ring would overflow) or one that does not exist.
    const uint32_t id = used.id;
    if (id >= evtq_.size() || (evt_posted_[id / 64] & (uint64_t{1} << (id % 64))) == 0) {
      garbled = "event buffer returned that the device does not hold";
      break;
    }
    evt_posted_[id / 64] &= ~(uint64_t{1} << (id % 64));
    auto* rec = static_cast<FaultEvent*>(events_.cpu) + id;
    // 5.13.6.9: a fault record fills its buffer; any other length is a garbled record (not
    // delivered), but the buffer is the driver's again and goes back.
    if (used.len != sizeof(FaultEvent)) garbled = "event length is not a fault record";
    if constexpr (config::kFaultReports) {
      if (garbled == nullptr) {
        if (!config_.coherent) config_.dma->Invalidate(rec, sizeof(*rec));
        FaultEvent e;
        std::memcpy(&e, rec, sizeof(e));
        port::LockGuard guard(lock_);
        const VirtioIommuDomain* d = streams_.DomainOf(e.endpoint);
        const bool mapped = d != nullptr && (e.flags & kFaultFAddress) != 0 &&
                            d->extents_.Find(e.address) != nullptr;
        DeliverFault(DecodeFault(e, name_, d != nullptr, mapped));
      }
    }
    repost[reposts++] = static_cast<uint16_t>(id);
  }
  if (garbled == nullptr && evtq_.corrupt()) garbled = "event used index moved backwards";
  // 5.13.6.9: the buffers go back to the device for the next faults.
  for (size_t i = 0; i < reposts; ++i) {
    const uint16_t id = repost[i];
    evtq_.SetDesc(id, events_.pa + size_t{id} * sizeof(FaultEvent), sizeof(FaultEvent),
                  vq::kDescFWrite, 0);
    evtq_.AddAvail(id);
    evt_posted_[id / 64] |= uint64_t{1} << (id % 64);
  }
  if (reposts != 0) {
    evtq_.PublishAvail();
    pci_.Notify(evt_notify_, kEventQueue);
  }
  if (garbled != nullptr) {
    // Faults may have been lost and the device is proven faulty: stop trusting it until
    // Recover() resets it (which also empties both rings).
    port::LockGuard guard(lock_);
    (void)Garbled(garbled);
  }
  return false;
}

Status VirtioIommu::SetUnroutedFaultHandler(deviso_fault_handler_t handler, void* user,
                                            uint32_t per_second) {
  if constexpr (!config::kFaultReports) return Status::NotSupported();
  port::LockGuard evt(evt_lock_);
  port::LockGuard guard(lock_);
  if (per_second == 0) return Status::InvalidArgument();
  unrouted_.Set(handler, user, per_second);
  return Status::Ok();
}

}  // namespace deviso::virtio_iommu
