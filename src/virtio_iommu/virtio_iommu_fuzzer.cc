// libFuzzer target: a hostile virtio-iommu device. The fuzzer's bytes drive a sequence of
// deviso calls (attach, detach, map, unmap, probe, event handling, device DMA, recovery) and
// shape every answer the fake device gives (FakeVirtioIommu::SetAnswerHook/SetEventHook):
// statuses no spec defines, used elements for the wrong chain, twice or never, used lengths
// outside the buffer, writes past it (up to the guard), used.idx backwards, PROBE properties
// of any shape, event records with any content.
//
// The judgement is isolation, after every step: while the unit is not broken, every endpoint
// the device has attached is attached in deviso to the same domain, and every page the device
// maps there is in deviso's record with the same address and no more permission. A broken unit
// must refuse work until Recover(); after a successful Recover() the judgement holds again.
// (Out of scope, as for any driver: a device that answers OK to a request it did not carry out,
// or a known error to one it did: such a lie is indistinguishable from the truth. The hook only
// replaces statuses with undefined ones.)
//
// Seeds: virtio_iommu_fuzzer_corpus/. scripts/fuzz virtio_iommu_fuzzer SECONDS | CRASH_FILE.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <vector>

#include "ports/host/test_clock.h"
#include "testing/sim_memory.h"
#include "virtio_iommu/testing/fake_device.h"
#include "virtio_iommu/virtio_iommu.h"

namespace deviso::virtio_iommu {
namespace {

using Faked = testing::FakeVirtioIommu;

constexpr uint64_t kPage = 4096;
constexpr uint32_t kSids[] = {0x8, 0x10, 0x18, 0x20};
constexpr size_t kDomains = 3;
constexpr Paddr kPa = 0x4000'0000;

void Check(bool ok) {
  if (!ok) std::abort();
}

class Run {
 public:
  explicit Run(FuzzedDataProvider& in) : in_(in), fake_(mem_, Faked::Options{}) {}

  void Go() {
    VirtioIommu::Config c;
    c.pci = &fake_.config();
    c.bars[Faked::kBar] = &fake_.bar();
    c.dma = &mem_.dma();
    c.name = "virtio-iommu@fuzz";
    c.timeout_ns = 200'000;  // 200 readings of the stepping clock: a lost answer is quick
    unit_.emplace(c);
    Check(unit_->Probe().ok());
    Check(unit_->Init().ok());
    for (size_t i = 0; i < kDomains; ++i) {
      Result<Domain*> d = unit_->CreateDomain(DomainOptions{}, nullptr);
      Check(d.ok());
      domains_[i] = static_cast<VirtioIommuDomain*>(*d);
    }
    fake_.SetAnswerHook([this](Faked::Answer& a) { Garble(a); });
    fake_.SetEventHook([this](Faked::EventAnswer& a) { GarbleEvent(a); });
    for (int step = 0; step < 64 && in_.remaining_bytes() > 0; ++step) {
      Step();
      Judge();
    }
    fake_.SetAnswerHook(nullptr);
    fake_.SetEventHook(nullptr);
  }

 private:
  // One answer in four is garbled in one or more ways.
  void Garble(Faked::Answer& a) {
    if (in_.remaining_bytes() == 0 || in_.ConsumeIntegral<uint8_t>() < 192) return;
    const auto how = in_.ConsumeIntegral<uint16_t>();
    if ((how & 0x001) != 0) a.status = in_.ConsumeIntegralInRange<uint8_t>(9, 255);
    if ((how & 0x002) != 0) a.head = in_.ConsumeIntegral<uint16_t>();
    if ((how & 0x004) != 0) a.used_len = in_.ConsumeIntegral<uint32_t>();
    if ((how & 0x008) != 0) a.copies = in_.ConsumeIntegralInRange<uint8_t>(0, 3);
    if ((how & 0x010) != 0) {
      a.overrun = in_.ConsumeIntegralInRange<uint32_t>(1, VirtioIommu::kGuardBytes);
      a.overrun_byte = in_.ConsumeIntegral<uint8_t>();
    }
    if ((how & 0x020) != 0) a.reverse_batch = true;
    if ((how & 0x040) != 0) a.idx_backwards = true;
    if ((how & 0x080) != 0 && !a.payload.empty()) {
      // PROBE properties of any shape (the buffer's length stays probe_size).
      const std::vector<uint8_t> bytes = in_.ConsumeBytes<uint8_t>(a.payload.size());
      std::copy(bytes.begin(), bytes.end(), a.payload.begin());
    }
  }
  void GarbleEvent(Faked::EventAnswer& a) {
    if (in_.remaining_bytes() == 0) return;
    // The record's content is the device's to choose: any endpoint, reason, flags, address.
    a.record.reason = in_.ConsumeIntegral<uint8_t>();
    a.record.flags = in_.ConsumeIntegral<uint32_t>();
    a.record.endpoint = kSids[in_.ConsumeIntegralInRange<size_t>(0, 3)] ^
                        (in_.ConsumeBool() ? in_.ConsumeIntegral<uint32_t>() : 0);
    a.record.address = in_.ConsumeIntegral<uint64_t>();
    if (in_.ConsumeIntegral<uint8_t>() < 192) return;
    const auto how = in_.ConsumeIntegral<uint8_t>();
    if ((how & 0x01) != 0) a.head = in_.ConsumeIntegral<uint16_t>();
    if ((how & 0x02) != 0) a.used_len = in_.ConsumeIntegral<uint32_t>();
    if ((how & 0x04) != 0) a.copies = in_.ConsumeIntegralInRange<uint8_t>(0, 3);
    if ((how & 0x08) != 0) a.idx_backwards = true;
    if ((how & 0x10) != 0) a.overrun = in_.ConsumeIntegralInRange<uint32_t>(1, 32);
  }

  void Step() {
    const uint8_t op = in_.ConsumeIntegralInRange<uint8_t>(0, 8);
    const size_t di = in_.ConsumeIntegralInRange<size_t>(0, kDomains - 1);
    VirtioIommuDomain* d = domains_[di];
    const uint32_t sid = kSids[in_.ConsumeIntegralInRange<size_t>(0, 3)];
    const uint64_t page = in_.ConsumeIntegralInRange<uint64_t>(0, 63);
    const uint64_t pages = in_.ConsumeIntegralInRange<uint64_t>(1, 40);
    const Iova iova = 0x100'0000 * (di + 1) + page * kPage;
    const bool was_broken = unit_->broken();
    Status s;
    switch (op) {
      case 0:
        s = unit_->Attach(d, sid);
        if (s.ok()) attached_[sid] = d;
        break;
      case 1:
        s = unit_->Detach(d, sid);
        if (s.ok()) attached_.erase(sid);
        break;
      case 2:
      case 3:
        s = unit_->Map(d, iova, kPa + page * kPage, pages * kPage,
                       in_.ConsumeBool() ? kPermReadWrite : kPermRead, MemType::kNormal);
        break;
      case 4:
        s = unit_->Unmap(d, iova, pages * kPage);
        break;
      case 5:
        s = unit_->ProbeEndpoint(sid);
        break;
      case 6: {
        // Device DMA: blocked accesses are reported on the event queue.
        (void)fake_.Translate(sid, iova, in_.ConsumeBool());
        unit_->HandleEvents();
        break;
      }
      case 7: {
        FaultEvent e{};
        e.endpoint = sid;
        (void)fake_.InjectEvent(e);  // the event hook gives it its content
        unit_->HandleEvents();
        break;
      }
      default:
        s = unit_->Recover();
        if (!s.ok()) Check(unit_->broken());
        break;
    }
    // A broken unit refuses everything but Recover() (and never crashes).
    if (was_broken && op <= 5) Check(s == Status::IoError() || s == Status::InvalidArgument());
    // Stream slots are not kept for a broken unit's failed detach/attach: our model follows
    // deviso's answers, which is what a caller sees.
  }

  // The isolation judgement (see the file comment).
  void Judge() {
    if (unit_->broken()) return;
    Check(fake_.bypass() == 0);
    const auto eps = fake_.endpoints();
    const auto doms = fake_.domains();
    for (const auto& [ep, dom_id] : eps) {
      const auto it = attached_.find(ep);
      Check(it != attached_.end());  // the device lets no endpoint deviso did not attach
      const VirtioIommuDomain* d = it->second;
      Check(d->id() == dom_id);
      const auto dom = doms.find(dom_id);
      if (dom == doms.end()) continue;
      for (const auto& [start, m] : dom->second.mappings) {
        bool covered = false;
        for (size_t i = 0; i < d->extent_count() && !covered; ++i) {
          const VirtioIommuDomain::Extent& x = d->extent(i);
          covered = start >= x.iova && m.virt_end <= x.iova + (x.size - 1) &&
                    m.phys == x.pa + (start - x.iova) && (m.flags & ~x.flags) == 0;
        }
        Check(covered);
      }
    }
  }

  FuzzedDataProvider& in_;
  port::host::TestClock clock_{1'000};  // deadlines are numbers of polls
  deviso::testing::SimPhysMemory mem_{[] {
    deviso::testing::SimPhysMemory::Options o;
    o.dma_bytes = 256u << 10;
    o.tables_4k_bytes = 64u << 10;
    o.tables_64k_bytes = 64u << 10;
    return o;
  }()};
  Faked fake_;
  std::optional<VirtioIommu> unit_;
  VirtioIommuDomain* domains_[kDomains] = {};
  std::map<uint32_t, VirtioIommuDomain*> attached_;  // what deviso said it attached
};

}  // namespace
}  // namespace deviso::virtio_iommu

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool silenced = deviso::port::host::SetLogSilenced(true) || true;
  (void)silenced;
  FuzzedDataProvider in(data, size);
  deviso::virtio_iommu::Run(in).Go();
  return 0;
}
