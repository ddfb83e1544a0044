// Host fake of QEMU 7.2's virtio-iommu-pci. See fake_device.h; sections refer to virtio 1.2.

#include "virtio_iommu/testing/fake_device.h"

#include <algorithm>
#include <cstring>

namespace deviso::virtio_iommu::testing {

namespace {

template <typename T>
T Get(const std::vector<uint8_t>& in) {
  T v;
  std::memset(&v, 0, sizeof(v));
  std::memcpy(&v, in.data(), in.size() < sizeof(v) ? in.size() : sizeof(v));
  return v;
}

uint8_t S(ReqStatus s) { return static_cast<uint8_t>(s); }

}  // namespace

FakeVirtioIommu::FakeVirtioIommu(deviso::testing::SimPhysMemory& memory, const Options& options)
    : mem_(memory), options_(options), config_(*this), bar_(*this) {
  // PCI 3.0 type 0 header.
  auto put16 = [&](size_t o, uint16_t v) { std::memcpy(&cfg_space_[o], &v, 2); };
  auto put32 = [&](size_t o, uint32_t v) { std::memcpy(&cfg_space_[o], &v, 4); };
  put16(0x00, pci::kVendorVirtio);
  put16(0x02, pci::kDeviceIommu);
  put16(pci::kCfgStatus, pci::kStatusCapList);
  cfg_space_[pci::kCfgCapPtr] = 0x40;
  // A non-virtio capability first (PCI Express, 0x10): the driver must walk past it.
  cfg_space_[0x40] = 0x10;
  cfg_space_[0x41] = 0x50;
  auto cap = [&](size_t at, size_t next, pci::CfgType type, size_t offset, size_t len,
                 uint8_t cap_len) {
    cfg_space_[at] = pci::kCapIdVendor;
    cfg_space_[at + 1] = static_cast<uint8_t>(next);
    cfg_space_[at + 2] = cap_len;
    cfg_space_[at + pci::kCapCfgType] = static_cast<uint8_t>(type);
    cfg_space_[at + pci::kCapBar] = kBar;
    put32(at + pci::kCapOffset, static_cast<uint32_t>(offset));
    put32(at + pci::kCapLength, static_cast<uint32_t>(len));
  };
  cap(0x50, 0x60, pci::CfgType::kCommon, kCommonOffset, 0x1000, 16);
  cap(0x60, 0x70, pci::CfgType::kIsr, kIsrOffset, 0x1000, 16);
  cap(0x70, 0x80, pci::CfgType::kDevice, kDeviceOffset, 0x1000, 16);
  cap(0x80, 0x00, pci::CfgType::kNotify, kNotifyOffset, 0x1000, 20);
  put32(0x80 + pci::kNotifyCapMultiplier, kNotifyMultiplier);

  dev_cfg_.page_size_mask = options.page_size_mask;
  dev_cfg_.input_range = options.input_range;
  dev_cfg_.domain_range = options.domain_range;
  dev_cfg_.probe_size = options.probe_size;
  dev_cfg_.bypass = options.bypass;
}

// ---- Config space ----

uint8_t FakeVirtioIommu::Config::Read8(size_t o) {
  std::lock_guard<std::mutex> l(d_.mu_);
  return o < 256 ? d_.cfg_space_[o] : 0xff;
}
uint16_t FakeVirtioIommu::Config::Read16(size_t o) {
  std::lock_guard<std::mutex> l(d_.mu_);
  uint16_t v = 0xffff;
  if (o + 2 <= 256) std::memcpy(&v, &d_.cfg_space_[o], 2);
  return v;
}
uint32_t FakeVirtioIommu::Config::Read32(size_t o) {
  std::lock_guard<std::mutex> l(d_.mu_);
  uint32_t v = ~0U;
  if (o + 4 <= 256) std::memcpy(&v, &d_.cfg_space_[o], 4);
  return v;
}
// The header is read-only for these tests (BARs are given, not assigned).
void FakeVirtioIommu::Config::Write8(size_t, uint8_t) {}
void FakeVirtioIommu::Config::Write16(size_t, uint16_t) {}
void FakeVirtioIommu::Config::Write32(size_t, uint32_t) {}

// ---- BAR4 ----

uint32_t FakeVirtioIommu::BarRead(size_t offset, unsigned width) {
  std::lock_guard<std::mutex> l(mu_);
  if (offset < kIsrOffset) return CommonRead(offset - kCommonOffset, width);
  if (offset < kDeviceOffset) {
    const uint8_t v = isr_;  // 4.1.4.5: reading clears it
    isr_ = 0;
    return v;
  }
  if (offset < kNotifyOffset) {
    const size_t o = offset - kDeviceOffset;
    uint32_t v = 0;
    if (o + width <= sizeof(dev_cfg_))
      std::memcpy(&v, reinterpret_cast<uint8_t*>(&dev_cfg_) + o, width);
    return v;
  }
  return 0;
}

void FakeVirtioIommu::BarWrite(size_t offset, uint32_t value, unsigned width) {
  std::lock_guard<std::mutex> l(mu_);
  if (offset < kIsrOffset) {
    CommonWrite(offset - kCommonOffset, value, width);
    return;
  }
  if (offset >= kDeviceOffset && offset < kNotifyOffset) {
    // 5.13.4: only bypass is writable, and only with BYPASS_CONFIG negotiated.
    if (offset - kDeviceOffset != devcfg::kBypass || width != 1) return;
    if ((driver_features_ & feature::Bit(feature::kBypassConfig)) == 0 ||
        (status_ & status::kFeaturesOk) == 0) {
      status_ |= status::kDeviceNeedsReset;  // what QEMU 7.2 does
      return;
    }
    status_at_bypass_write_ = status_;
    if (!options_.bypass_read_only) dev_cfg_.bypass = static_cast<uint8_t>(value & 1);
    return;
  }
  if (offset >= kNotifyOffset && width == 2) {
    ++notifies_;
    const size_t q = (offset - kNotifyOffset) / kNotifyMultiplier;
    if (q != value || q > 1) return;
    if ((status_ & status::kDriverOk) == 0) return;
    pending_ = true;
    if (options_.complete_in_notify) ProcessLocked();
  }
}

uint32_t FakeVirtioIommu::CommonRead(size_t o, unsigned width) {
  namespace c = pci::common;
  Queue* q = queue_select_ < 2 ? &queues_[queue_select_] : nullptr;
  switch (o) {
    case c::kDeviceFeatureSelect:
      return device_feature_select_;
    case c::kDeviceFeature:
      return device_feature_select_ < 2
                 ? static_cast<uint32_t>(options_.features >> (32 * device_feature_select_))
                 : 0;
    case c::kDriverFeatureSelect:
      return driver_feature_select_;
    case c::kDriverFeature:
      return driver_feature_select_ < 2
                 ? static_cast<uint32_t>(driver_features_ >> (32 * driver_feature_select_))
                 : 0;
    case c::kConfigMsixVector:
      return pci::kNoVector;
    case c::kNumQueues:
      return 2;
    case c::kDeviceStatus:
      return width == 1 ? status_ : 0;
    case c::kConfigGeneration:
      return 0;
    case c::kQueueSelect:
      return queue_select_;
    case c::kQueueSize:
      return q != nullptr ? (q->size != 0 ? q->size : options_.queue_max) : 0;
    case c::kQueueMsixVector:
      return pci::kNoVector;
    case c::kQueueEnable:
      return q != nullptr && q->enabled ? 1 : 0;
    case c::kQueueNotifyOff:
      return queue_select_;
    default:
      return 0;
  }
}

void FakeVirtioIommu::CommonWrite(size_t o, uint32_t v, unsigned width) {
  namespace c = pci::common;
  Queue* q = queue_select_ < 2 ? &queues_[queue_select_] : nullptr;
  auto set_half = [&](uint64_t& field, bool high) {
    if (high) {
      field = (field & 0xffff'ffffULL) | (uint64_t{v} << 32);
    } else {
      field = (field & ~0xffff'ffffULL) | v;
    }
  };
  switch (o) {
    case c::kDeviceFeatureSelect:
      device_feature_select_ = v;
      break;
    case c::kDriverFeatureSelect:
      driver_feature_select_ = v;
      break;
    case c::kDriverFeature:
      if (driver_feature_select_ < 2 && (status_ & status::kFeaturesOk) == 0) {
        const unsigned shift = 32 * driver_feature_select_;
        driver_features_ = (driver_features_ & ~(0xffff'ffffULL << shift)) | (uint64_t{v} << shift);
      }
      break;
    case c::kDeviceStatus:
      if (width != 1) break;
      if (v == 0) {
        ResetLocked();
        break;
      }
      if ((v & status::kFeaturesOk) != 0 && (status_ & status::kFeaturesOk) == 0) {
        // 3.1.1 step 5-6: accept only offered features, VERSION_1 included.
        const bool ok = !options_.refuse_features && (driver_features_ & ~options_.features) == 0 &&
                        (driver_features_ & feature::Bit(feature::kVersion1)) != 0;
        if (!ok) v &= ~uint32_t{status::kFeaturesOk};
      }
      status_ = static_cast<uint8_t>(v | (status_ & status::kDeviceNeedsReset));
      break;
    case c::kQueueSelect:
      queue_select_ = static_cast<uint16_t>(v);
      break;
    case c::kQueueSize:
      if (q != nullptr && v <= options_.queue_max) q->size = static_cast<uint16_t>(v);
      break;
    case c::kQueueEnable:
      if (q != nullptr && v == 1) q->enabled = true;
      break;
    case c::kQueueDesc:
    case c::kQueueDesc + 4:
      if (q != nullptr) set_half(q->desc, o != c::kQueueDesc);
      break;
    case c::kQueueDriver:
    case c::kQueueDriver + 4:
      if (q != nullptr) set_half(q->driver, o != c::kQueueDriver);
      break;
    case c::kQueueDevice:
    case c::kQueueDevice + 4:
      if (q != nullptr) set_half(q->device, o != c::kQueueDevice);
      break;
    default:
      break;
  }
}

void FakeVirtioIommu::ResetLocked() {
  ++resets_;
  status_ = 0;
  isr_ = 0;
  driver_features_ = 0;
  queue_select_ = 0;
  queues_[0] = Queue{};
  queues_[1] = Queue{};
  pending_ = false;
  hung_ = false;
  // Every domain and mapping goes; bypass stays (QEMU 7.2: the note) unless told otherwise.
  if (options_.reset_restores_bypass) dev_cfg_.bypass = options_.bypass;
  domains_.clear();
  endpoints_.clear();
}

// ---- Virtqueues (2.7) ----

uint16_t FakeVirtioIommu::Read16Pa(uint64_t pa) {
  uint16_t v = 0;
  (void)mem_.UnitRead(pa, &v, 2);
  return v;
}

void FakeVirtioIommu::Write16Pa(uint64_t pa, uint16_t v) { (void)mem_.UnitWrite(pa, &v, 2); }

void FakeVirtioIommu::Process() {
  std::lock_guard<std::mutex> l(mu_);
  ProcessLocked();
}

void FakeVirtioIommu::ProcessLocked() {
  if (!pending_ || hung_) return;
  pending_ = false;
  ProcessRequestQueue();
}

void FakeVirtioIommu::ProcessRequestQueue() {
  Queue& q = queues_[kRequestQueue];
  if (!q.enabled || q.size == 0) return;
  // The driver publishes avail.idx after the entries; read it first (acquire), then them.
  uint16_t avail = 0;
  (void)mem_.UnitLoad16Acquire(q.driver + vq::kAvailIdx, &avail);
  std::vector<vq::UsedElem> pass;  // this pass's used elements, written at its end
  bool reverse = false;
  bool backwards = false;
  while (q.last_avail != avail) {
    const uint16_t head =
        Read16Pa(q.driver + vq::kAvailRing + uint64_t{2} * (q.last_avail % q.size));
    ++q.last_avail;
    // Gather the chain: readable buffers, then writable ones (2.7.4.2).
    std::vector<uint8_t> in;
    std::vector<std::pair<uint64_t, uint32_t>> out_bufs;
    uint16_t i = head;
    for (unsigned n = 0; n < q.size; ++n) {
      vq::Desc d;
      (void)mem_.UnitRead(q.desc + 16 * static_cast<uint64_t>(i % q.size), &d, sizeof(d));
      if ((d.flags & vq::kDescFWrite) != 0) {
        out_bufs.emplace_back(d.addr, d.len);
      } else {
        const size_t at = in.size();
        in.resize(at + d.len);
        (void)mem_.UnitRead(d.addr, in.data() + at, d.len);
      }
      if ((d.flags & vq::kDescFNext) == 0) break;
      i = d.next;
    }
    std::vector<uint8_t> out;
    Answer a;
    a.type = in.empty() ? uint8_t{0} : in[0];
    a.head = head;
    if (fail_next_ && (fail_next_->first == 0 || (!in.empty() && in[0] == fail_next_->first))) {
      a.status = S(fail_next_->second);
      a.carry_out = false;
      fail_next_.reset();
    } else {
      a.status = Handle(in, &out);
    }
    size_t total = 0;
    for (const auto& buf : out_bufs) total += buf.second;
    // Non-PROBE: the tail is the whole writable part; PROBE: properties, then the tail.
    const size_t wanted = out.size() + sizeof(ReqTail);
    a.used_len = static_cast<uint32_t>(wanted < total ? wanted : total);
    a.payload = std::move(out);
    ApplyHostile(a);
    if (answer_hook_) answer_hook_(a);
    out = std::move(a.payload);
    out.push_back(a.status);
    out.push_back(0);
    out.push_back(0);
    out.push_back(0);
    if (options_.log_requests) log_.push_back(LoggedRequest{a.type, in, a.status});
    size_t written = 0;
    for (const auto& [pa, len] : out_bufs) {
      const size_t n = out.size() - written < len ? out.size() - written : len;
      (void)mem_.UnitWrite(pa, out.data() + written, n);
      written += n;
    }
    if (a.overrun != 0 && !out_bufs.empty()) {
      const uint64_t end = out_bufs.back().first + out_bufs.back().second;
      const std::vector<uint8_t> junk(a.overrun, a.overrun_byte);
      (void)mem_.UnitWrite(end, junk.data(), junk.size());
      overruns_.emplace_back(end, junk.size());
    }
    for (unsigned c = 0; c < a.copies; ++c) pass.push_back(vq::UsedElem{a.head, a.used_len});
    reverse = reverse || a.reverse_batch;
    backwards = backwards || a.idx_backwards;
  }
  if (reverse) std::reverse(pass.begin(), pass.end());
  const uint16_t before = q.used_idx;
  for (const vq::UsedElem& e : pass) {
    (void)mem_.UnitWrite(q.device + vq::kUsedRing + 8 * static_cast<uint64_t>(q.used_idx % q.size),
                         &e, sizeof(e));
    ++q.used_idx;
  }
  if (backwards) q.used_idx = static_cast<uint16_t>(before - 1);
  // Published after the elements and the buffers they name (release).
  if (!pass.empty() || backwards)
    (void)mem_.UnitStore16Release(q.device + vq::kUsedIdx, q.used_idx);
}

void FakeVirtioIommu::ApplyHostile(Answer& a) {
  if (hostile_ == Hostile::kNone || hostile_count_ == 0) return;
  if (hostile_type_ != 0 && a.type != hostile_type_) return;
  --hostile_count_;  // at 0, later answers are honest again
  switch (hostile_) {
    case Hostile::kNone:
      break;
    case Hostile::kOutOfOrder:
      a.reverse_batch = true;
      break;
    case Hostile::kAnswerTwice:
      a.copies = 2;
      break;
    case Hostile::kOverrun:
      a.overrun = kOverrunBytes;
      break;
    case Hostile::kUnknownStatus:
      a.status = kUnknownStatus;
      break;
    case Hostile::kUsedLenTooLarge:
      a.used_len += 64;
      break;
    case Hostile::kUsedIdxBackwards:
      a.idx_backwards = true;
      break;
    case Hostile::kLoseAnswer:
      a.copies = 0;
      break;
  }
}

bool FakeVirtioIommu::InjectEventLocked(const FaultEvent& event) {
  Queue& q = queues_[kEventQueue];
  if (!q.enabled || q.size == 0 || (status_ & status::kDriverOk) == 0) {
    ++dropped_events_;
    return false;
  }
  // The driver publishes avail.idx after the entries; read it first (acquire), then them.
  uint16_t avail = 0;
  (void)mem_.UnitLoad16Acquire(q.driver + vq::kAvailIdx, &avail);
  if (q.last_avail == avail) {
    ++dropped_events_;  // QEMU drops events when the queue is full
    return false;
  }
  const uint16_t head = Read16Pa(q.driver + vq::kAvailRing + uint64_t{2} * (q.last_avail % q.size));
  ++q.last_avail;
  vq::Desc d;
  (void)mem_.UnitRead(q.desc + 16 * static_cast<uint64_t>(head % q.size), &d, sizeof(d));
  EventAnswer a;
  a.record = event;
  a.head = head;
  const bool fits = (d.flags & vq::kDescFWrite) != 0 && d.len >= sizeof(event);
  a.used_len = fits ? sizeof(event) : 0;
  if (event_hook_) event_hook_(a);
  if (fits) (void)mem_.UnitWrite(d.addr, &a.record, sizeof(a.record));
  if (a.overrun != 0) {
    const std::vector<uint8_t> junk(a.overrun, 0xee);
    (void)mem_.UnitWrite(d.addr + d.len, junk.data(), junk.size());
    overruns_.emplace_back(d.addr + d.len, junk.size());
  }
  const uint16_t before = q.used_idx;
  for (unsigned c = 0; c < a.copies; ++c) {
    vq::UsedElem e{a.head, a.used_len};
    (void)mem_.UnitWrite(q.device + vq::kUsedRing + 8 * static_cast<uint64_t>(q.used_idx % q.size),
                         &e, sizeof(e));
    ++q.used_idx;
  }
  if (a.idx_backwards) q.used_idx = static_cast<uint16_t>(before - 1);
  (void)mem_.UnitStore16Release(q.device + vq::kUsedIdx, q.used_idx);
  isr_ |= 1;
  return true;
}

bool FakeVirtioIommu::InjectEvent(const FaultEvent& event) {
  std::lock_guard<std::mutex> l(mu_);
  return InjectEventLocked(event);
}

// ---- Requests (5.13.6), with QEMU 7.2's semantics ----

bool FakeVirtioIommu::EndpointExists(uint32_t ep) const {
  return options_.endpoints.empty() || options_.endpoints.count(ep & 0xffff) != 0;
}

void FakeVirtioIommu::DetachLocked(uint32_t ep) {
  auto it = endpoints_.find(ep);
  if (it == endpoints_.end()) return;
  const uint32_t dom = it->second;
  endpoints_.erase(it);
  for (const auto& [e, d] : endpoints_) {
    if (d == dom) return;
  }
  domains_.erase(dom);  // the last endpoint left: the domain and its mappings go
}

uint8_t FakeVirtioIommu::Handle(const std::vector<uint8_t>& in, std::vector<uint8_t>* out) {
  if (in.size() < sizeof(ReqHead)) return S(ReqStatus::kInval);
  switch (static_cast<ReqType>(in[0])) {
    case ReqType::kAttach:
      return HandleAttach(in);
    case ReqType::kDetach:
      return HandleDetach(in);
    case ReqType::kMap:
      return HandleMap(in);
    case ReqType::kUnmap:
      return HandleUnmap(in);
    case ReqType::kProbe:
      if ((driver_features_ & feature::Bit(feature::kProbe)) == 0) return S(ReqStatus::kUnsupp);
      return HandleProbe(in, out);
    default:
      return S(ReqStatus::kUnsupp);
  }
}

uint8_t FakeVirtioIommu::HandleAttach(const std::vector<uint8_t>& in) {
  if (in.size() < sizeof(ReqAttach)) return S(ReqStatus::kInval);
  const auto r = Get<ReqAttach>(in);
  const uint32_t ep = r.endpoint & 0xffff;  // QEMU compares the low 16 bits only
  if (!EndpointExists(ep)) return S(ReqStatus::kNoEnt);
  if ((r.flags & ~kAttachFBypass) != 0) return S(ReqStatus::kInval);
  const bool bypass = (r.flags & kAttachFBypass) != 0;
  auto dom = domains_.find(r.domain);
  if (dom != domains_.end() && dom->second.bypass != bypass) return S(ReqStatus::kInval);
  // Silently leaves its old domain (freed if it was the last endpoint there).
  auto cur = endpoints_.find(ep);
  if (cur != endpoints_.end() && cur->second == r.domain) return S(ReqStatus::kOk);
  DetachLocked(ep);
  DomainState& d = domains_[r.domain];
  d.bypass = bypass;
  endpoints_[ep] = r.domain;
  ever_attached_.insert(ep);
  return S(ReqStatus::kOk);
}

uint8_t FakeVirtioIommu::HandleDetach(const std::vector<uint8_t>& in) {
  if (in.size() < sizeof(ReqDetach)) return S(ReqStatus::kInval);
  const auto r = Get<ReqDetach>(in);
  const uint32_t ep = r.endpoint & 0xffff;
  if (!EndpointExists(ep)) return S(ReqStatus::kNoEnt);
  if (domains_.count(r.domain) == 0) return S(ReqStatus::kNoEnt);
  auto cur = endpoints_.find(ep);
  if (cur == endpoints_.end() || cur->second != r.domain) return S(ReqStatus::kInval);
  DetachLocked(ep);
  return S(ReqStatus::kOk);
}

uint8_t FakeVirtioIommu::HandleMap(const std::vector<uint8_t>& in) {
  if (in.size() < kReqMapBytes) return S(ReqStatus::kInval);
  const auto r = Get<ReqMap>(in);
  auto dom = domains_.find(r.domain);
  if (dom == domains_.end()) return S(ReqStatus::kNoEnt);
  uint32_t allowed = kMapFRead | kMapFWrite;
  if ((driver_features_ & feature::Bit(feature::kMmio)) != 0) allowed |= kMapFMmio;
  if ((r.flags & ~allowed) != 0) return S(ReqStatus::kInval);
  if (dom->second.bypass) return S(ReqStatus::kInval);
  if (r.virt_end < r.virt_start) return S(ReqStatus::kInval);
  // No alignment check at all (QEMU 7.2). Overlap: INVAL.
  for (const auto& [start, m] : dom->second.mappings) {
    if (r.virt_start <= m.virt_end && start <= r.virt_end) return S(ReqStatus::kInval);
  }
  dom->second.mappings[r.virt_start] = Mapping{r.virt_end, r.phys_start, r.flags};
  return S(ReqStatus::kOk);
}

uint8_t FakeVirtioIommu::HandleUnmap(const std::vector<uint8_t>& in) {
  if (in.size() < kReqUnmapBytes) return S(ReqStatus::kInval);
  const auto r = Get<ReqUnmap>(in);
  auto dom = domains_.find(r.domain);
  if (dom == domains_.end()) return S(ReqStatus::kNoEnt);
  auto& maps = dom->second.mappings;
  for (auto it = maps.begin(); it != maps.end();) {
    const uint64_t start = it->first;
    const uint64_t end = it->second.virt_end;
    if (end < r.virt_start || start > r.virt_end) {
      ++it;
      continue;
    }
    // Mappings cannot be split: one that is only partly inside stops the request.
    if (start < r.virt_start || end > r.virt_end) return S(ReqStatus::kRange);
    it = maps.erase(it);
  }
  return S(ReqStatus::kOk);  // also when nothing was mapped there
}

uint8_t FakeVirtioIommu::HandleProbe(const std::vector<uint8_t>& in, std::vector<uint8_t>* out) {
  out->assign(options_.probe_size, 0);
  if (in.size() < sizeof(ReqProbe)) return S(ReqStatus::kInval);
  const auto r = Get<ReqProbe>(in);
  if (!EndpointExists(r.endpoint & 0xffff)) return S(ReqStatus::kNoEnt);
  size_t off = 0;
  for (const Reserved& res : options_.reserved) {
    if (off + sizeof(ProbeResvMem) > options_.probe_size) return S(ReqStatus::kInval);
    ProbeResvMem p{};
    p.head.type = kProbeTResvMem;
    p.head.length = kProbeResvMemValueBytes;
    p.subtype = res.subtype;
    p.start = res.start;
    p.end = res.end;
    std::memcpy(out->data() + off, &p, sizeof(p));
    off += sizeof(p);
  }
  return S(ReqStatus::kOk);
}

// ---- DMA translation (what a device behind the IOMMU gets) ----

std::optional<uint64_t> FakeVirtioIommu::Translate(uint32_t endpoint, uint64_t iova, bool write) {
  std::lock_guard<std::mutex> l(mu_);
  const uint32_t ep = endpoint & 0xffff;
  FaultEvent f{};
  f.endpoint = endpoint;
  f.address = iova;
  f.flags = (write ? kFaultFWrite : kFaultFRead) | kFaultFAddress;
  auto cur = endpoints_.find(ep);
  if (cur == endpoints_.end()) {
    if (dev_cfg_.bypass != 0) return iova;  // QEMU 7.2: unattached endpoints bypass
    f.reason = ever_attached_.count(ep) != 0 ? kFaultRDomain : kFaultRUnknown;
    (void)InjectEventLocked(f);
    return std::nullopt;
  }
  const DomainState& d = domains_.at(cur->second);
  if (d.bypass) return iova;
  for (const Reserved& r : options_.reserved) {
    if (r.subtype == kResvMemMsi && iova >= r.start && iova <= r.end) return iova;
  }
  for (const auto& [start, m] : d.mappings) {
    if (iova < start || iova > m.virt_end) continue;
    const uint32_t need = write ? kMapFWrite : kMapFRead;
    if ((m.flags & need) == 0) break;
    return m.phys + (iova - start);
  }
  f.reason = kFaultRMapping;
  (void)InjectEventLocked(f);
  return std::nullopt;
}

// ---- Inspection and control ----

std::map<uint32_t, FakeVirtioIommu::DomainState> FakeVirtioIommu::domains() const {
  std::lock_guard<std::mutex> l(mu_);
  return domains_;
}
std::map<uint32_t, uint32_t> FakeVirtioIommu::endpoints() const {
  std::lock_guard<std::mutex> l(mu_);
  return endpoints_;
}
std::vector<FakeVirtioIommu::LoggedRequest> FakeVirtioIommu::log() const {
  std::lock_guard<std::mutex> l(mu_);
  return log_;
}
void FakeVirtioIommu::ClearLog() {
  std::lock_guard<std::mutex> l(mu_);
  log_.clear();
}
uint8_t FakeVirtioIommu::device_status() const {
  std::lock_guard<std::mutex> l(mu_);
  return status_;
}
uint8_t FakeVirtioIommu::bypass() const {
  std::lock_guard<std::mutex> l(mu_);
  return dev_cfg_.bypass;
}
uint64_t FakeVirtioIommu::driver_features() const {
  std::lock_guard<std::mutex> l(mu_);
  return driver_features_;
}
uint64_t FakeVirtioIommu::notifies() const {
  std::lock_guard<std::mutex> l(mu_);
  return notifies_;
}
uint64_t FakeVirtioIommu::resets() const {
  std::lock_guard<std::mutex> l(mu_);
  return resets_;
}
uint64_t FakeVirtioIommu::dropped_events() const {
  std::lock_guard<std::mutex> l(mu_);
  return dropped_events_;
}
uint8_t FakeVirtioIommu::status_at_bypass_write() const {
  std::lock_guard<std::mutex> l(mu_);
  return status_at_bypass_write_;
}
std::vector<std::pair<uint64_t, uint64_t>> FakeVirtioIommu::Ranges(uint32_t domain) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::pair<uint64_t, uint64_t>> r;
  auto it = domains_.find(domain);
  if (it == domains_.end()) return r;
  for (const auto& [start, m] : it->second.mappings) r.emplace_back(start, m.virt_end);
  return r;
}
void FakeVirtioIommu::FailNext(uint8_t type, ReqStatus status) {
  std::lock_guard<std::mutex> l(mu_);
  fail_next_ = std::make_pair(type, status);
}
void FakeVirtioIommu::ClearFailNext() {
  std::lock_guard<std::mutex> l(mu_);
  fail_next_.reset();
}
void FakeVirtioIommu::SetHostile(Hostile mode, unsigned count, uint8_t type) {
  std::lock_guard<std::mutex> l(mu_);
  hostile_ = mode;
  hostile_count_ = count;
  hostile_type_ = type;
}
void FakeVirtioIommu::SetAnswerHook(std::function<void(Answer&)> hook) {
  std::lock_guard<std::mutex> l(mu_);
  answer_hook_ = std::move(hook);
}
void FakeVirtioIommu::SetEventHook(std::function<void(EventAnswer&)> hook) {
  std::lock_guard<std::mutex> l(mu_);
  event_hook_ = std::move(hook);
}
std::vector<std::pair<uint64_t, size_t>> FakeVirtioIommu::overruns() const {
  std::lock_guard<std::mutex> l(mu_);
  return overruns_;
}
void FakeVirtioIommu::SetHung(bool hung) {
  std::lock_guard<std::mutex> l(mu_);
  hung_ = hung;
}
void FakeVirtioIommu::SetNeedsReset() {
  std::lock_guard<std::mutex> l(mu_);
  status_ |= status::kDeviceNeedsReset;
}

}  // namespace deviso::virtio_iommu::testing
