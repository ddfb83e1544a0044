// A host fake of a virtio-iommu PCI function, for the driver's unit tests: the virtio-pci
// modern transport (config space with vendor capabilities, BAR4 with the common, ISR, device
// and notify structures laid out as QEMU 7.2 does), split virtqueues in SimPhysMemory, and the
// request semantics QEMU 7.2's virtio-iommu really has (../shared/notes/qemu-virtio-iommu.md):
//   * config.bypass = 1 by default; it survives a reset, which drops every domain and mapping;
//     writing it without BYPASS_CONFIG negotiated sets DEVICE_NEEDS_RESET;
//   * ATTACH silently moves an endpoint; a domain and its mappings go with its last endpoint;
//   * MAP overlapping a mapping: INVAL; unaligned MAPs accepted; bad flags: INVAL;
//   * UNMAP of part of a mapping: RANGE; of nothing: OK;
//   * endpoint IDs compared on their low 16 bits only;
//   * PROBE reports the reserved regions given in Options (QEMU: the MSI doorbell page).
// Requests complete inside the notify write, like QEMU, unless Options::complete_in_notify is
// false: then only Process() (from a test thread) completes them. Written from the spec and the
// note, not from QEMU's source.
//
// A hostile device (issue 15): SetHostile() makes the next answers break the virtqueue and
// virtio-iommu rules in one way each (out of order, twice, past the buffer, unknown status, a
// used length beyond the buffer, used.idx backwards, lost); SetAnswerHook() / SetEventHook()
// let a fuzzer shape every answer and event record.
//
// Host test code: standard library, one mutex around the whole device.

#ifndef DEVISO_SRC_VIRTIO_IOMMU_TESTING_FAKE_DEVICE_H_
#define DEVISO_SRC_VIRTIO_IOMMU_TESTING_FAKE_DEVICE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

#include "testing/sim_memory.h"
#include "virtio_iommu/hw.h"
#include "virtio_iommu/transport.h"

namespace deviso::virtio_iommu::testing {

class FakeVirtioIommu {
 public:
  static constexpr unsigned kBar = 4;
  static constexpr size_t kCommonOffset = 0x0000;
  static constexpr size_t kIsrOffset = 0x1000;
  static constexpr size_t kDeviceOffset = 0x2000;
  static constexpr size_t kNotifyOffset = 0x3000;
  static constexpr uint32_t kNotifyMultiplier = 4;
  static constexpr size_t kBarSize = 0x4000;

  struct Reserved {
    uint64_t start;
    uint64_t end;  // inclusive
    uint8_t subtype;
  };

  struct Options {
    // QEMU 7.2's offer (the note): INPUT_RANGE, DOMAIN_RANGE, MAP_UNMAP, PROBE, MMIO,
    // BYPASS_CONFIG, INDIRECT_DESC (28), EVENT_IDX (29), VERSION_1, RING_RESET (40).
    uint64_t features = feature::Bit(feature::kInputRange) | feature::Bit(feature::kDomainRange) |
                        feature::Bit(feature::kMapUnmap) | feature::Bit(feature::kProbe) |
                        feature::Bit(feature::kMmio) | feature::Bit(feature::kBypassConfig) |
                        feature::Bit(28) | feature::Bit(29) | feature::Bit(feature::kVersion1) |
                        feature::Bit(40);
    uint64_t page_size_mask = 0xffff'ffff'ffff'f000;
    Range64 input_range{0, ~uint64_t{0}};
    Range32 domain_range{0, ~uint32_t{0}};
    uint32_t probe_size = 512;
    uint8_t bypass = 1;  // QEMU's default (boot-bypass=on)
    uint16_t queue_max = 256;
    std::vector<Reserved> reserved{{0x0802'0000, 0x0802'0fff, kResvMemMsi}};
    bool complete_in_notify = true;
    // Endpoint IDs (low 16 bits) that exist; empty: all.
    std::set<uint32_t> endpoints;
    // Refuse FEATURES_OK (as a device that dislikes the subset).
    bool refuse_features = false;
    // Ignore writes of bypass (it stays at its value).
    bool bypass_read_only = false;
    // A reset restores bypass to its default (QEMU keeps it; the spec leaves it open).
    bool reset_restores_bypass = false;
    // Keep every request in log() (tests read it; a benchmark turns it off: unbounded).
    bool log_requests = true;
  };

  struct Mapping {
    uint64_t virt_end;  // inclusive
    uint64_t phys;
    uint32_t flags;
  };
  struct DomainState {
    bool bypass = false;
    std::map<uint64_t, Mapping> mappings;  // by virt_start
  };
  struct LoggedRequest {
    uint8_t type;
    std::vector<uint8_t> bytes;  // the device-readable part, as received
    uint8_t status;
  };

  FakeVirtioIommu(deviso::testing::SimPhysMemory& memory, const Options& options);

  PciConfig& config() { return config_; }
  BarIo& bar() { return bar_; }

  // ---- Inspection (all under the device lock) ----
  std::map<uint32_t, DomainState> domains() const;
  std::map<uint32_t, uint32_t> endpoints() const;  // endpoint (low 16 bits) -> domain
  std::vector<LoggedRequest> log() const;
  void ClearLog();
  uint8_t device_status() const;
  uint8_t bypass() const;
  uint64_t driver_features() const;
  uint64_t notifies() const;
  uint64_t resets() const;
  uint64_t dropped_events() const;
  // The device status when bypass was last written (0xff: never written).
  uint8_t status_at_bypass_write() const;
  // The mappings of `domain` as "[start, end] -> phys" for readable test failures.
  std::vector<std::pair<uint64_t, uint64_t>> Ranges(uint32_t domain) const;

  // ---- Control ----
  // The next request of `type` (0: any) is answered with `status` (nothing changes).
  void FailNext(uint8_t type, ReqStatus status);
  // Disarms a FailNext no request consumed yet.
  void ClearFailNext();
  // Stop completing requests (they stay in the avail ring): a hung device.
  void SetHung(bool hung);
  // Completes whatever is pending (complete_in_notify = false).
  void Process();

  // ---- A hostile device ----
  enum class Hostile : uint8_t {
    kNone,
    kOutOfOrder,        // a batch's answers enter the used ring last first (legal, 2.7.8)
    kAnswerTwice,       // each answer enters the used ring twice
    kOverrun,           // kOverrunBytes of 0xee written past each writable buffer's end
    kUnknownStatus,     // the request is carried out, the tail says kUnknownStatus
    kUsedLenTooLarge,   // the used element's len is 64 bytes more than the writable buffer
    kUsedIdxBackwards,  // after a pass, used.idx moves back by one
    kLoseAnswer,        // the request is carried out, its answer never enters the used ring
  };
  static constexpr size_t kOverrunBytes = 64;
  static constexpr uint8_t kUnknownStatus = 0x42;
  // The next `count` requests (of any type, or of `type` if not 0) are answered that way.
  void SetHostile(Hostile mode, unsigned count = 1, uint8_t type = 0);
  // One answer, as the device is about to write it: every field may be changed by a hook.
  struct Answer {
    uint8_t type = 0;       // the request's type (0: unreadable)
    uint8_t status = 0;     // written to the tail
    bool carry_out = true;  // (in) false: the request was refused, nothing changed
    uint16_t head = 0;      // the used element's id
    uint32_t used_len = 0;  // the used element's len (what was written, as QEMU says)
    uint32_t overrun = 0;   // bytes written past the end of the writable buffer
    uint8_t overrun_byte = 0xee;
    uint8_t copies = 1;            // used elements for it (0: lost)
    bool reverse_batch = false;    // this pass's used elements enter the ring last first
    bool idx_backwards = false;    // after the pass, used.idx ends 1 below its value before it
    std::vector<uint8_t> payload;  // written before the tail (PROBE: the properties)
  };
  void SetAnswerHook(std::function<void(Answer&)> hook);
  // One event, as the device is about to write it to the next event buffer.
  struct EventAnswer {
    FaultEvent record{};
    uint16_t head = 0;      // the used element's id
    uint32_t used_len = 0;  // sizeof(FaultEvent) as QEMU says
    uint32_t overrun = 0;   // bytes written past the event buffer
    uint8_t copies = 1;
    bool idx_backwards = false;  // used.idx ends 1 below its value before the event
  };
  void SetEventHook(std::function<void(EventAnswer&)> hook);
  // Bytes written outside every writable buffer (overruns), for "lands in a guard" checks:
  // (address, length) of each.
  std::vector<std::pair<uint64_t, size_t>> overruns() const;
  // Sets DEVICE_NEEDS_RESET.
  void SetNeedsReset();

  // A DMA by `endpoint`: where it goes, or nullopt if blocked (and then a fault event is
  // written, as QEMU does). `write`: a device write.
  std::optional<uint64_t> Translate(uint32_t endpoint, uint64_t iova, bool write);
  // Writes `event` into the next event buffer. False if none is posted (the event is lost).
  bool InjectEvent(const FaultEvent& event);

 private:
  struct Queue {
    uint16_t size = 0;
    uint64_t desc = 0, driver = 0, device = 0;
    bool enabled = false;
    uint16_t last_avail = 0;
    uint16_t used_idx = 0;
  };

  class Config final : public PciConfig {
   public:
    explicit Config(FakeVirtioIommu& d) : d_(d) {}
    uint8_t Read8(size_t o) override;
    uint16_t Read16(size_t o) override;
    uint32_t Read32(size_t o) override;
    void Write8(size_t o, uint8_t v) override;
    void Write16(size_t o, uint16_t v) override;
    void Write32(size_t o, uint32_t v) override;

   private:
    FakeVirtioIommu& d_;
  };
  class Bar final : public BarIo {
   public:
    explicit Bar(FakeVirtioIommu& d) : d_(d) {}
    uint8_t Read8(size_t o) override { return static_cast<uint8_t>(d_.BarRead(o, 1)); }
    uint16_t Read16(size_t o) override { return static_cast<uint16_t>(d_.BarRead(o, 2)); }
    uint32_t Read32(size_t o) override { return d_.BarRead(o, 4); }
    void Write8(size_t o, uint8_t v) override { d_.BarWrite(o, v, 1); }
    void Write16(size_t o, uint16_t v) override { d_.BarWrite(o, v, 2); }
    void Write32(size_t o, uint32_t v) override { d_.BarWrite(o, v, 4); }

   private:
    FakeVirtioIommu& d_;
  };

  uint32_t BarRead(size_t offset, unsigned width);
  void BarWrite(size_t offset, uint32_t value, unsigned width);
  uint32_t CommonRead(size_t offset, unsigned width);
  void CommonWrite(size_t offset, uint32_t value, unsigned width);
  void ResetLocked();
  void ProcessLocked();
  void ProcessRequestQueue();
  uint8_t Handle(const std::vector<uint8_t>& in, std::vector<uint8_t>* out);
  uint8_t HandleAttach(const std::vector<uint8_t>& in);
  uint8_t HandleDetach(const std::vector<uint8_t>& in);
  uint8_t HandleMap(const std::vector<uint8_t>& in);
  uint8_t HandleUnmap(const std::vector<uint8_t>& in);
  uint8_t HandleProbe(const std::vector<uint8_t>& in, std::vector<uint8_t>* out);
  bool EndpointExists(uint32_t ep) const;
  void DetachLocked(uint32_t ep);
  bool InjectEventLocked(const FaultEvent& event);
  void ApplyHostile(Answer& a);
  uint16_t Read16Pa(uint64_t pa);
  void Write16Pa(uint64_t pa, uint16_t v);

  deviso::testing::SimPhysMemory& mem_;
  Options options_;
  Config config_;
  Bar bar_;
  mutable std::mutex mu_;
  uint8_t cfg_space_[256] = {};
  DeviceConfig dev_cfg_{};
  uint8_t status_ = 0;
  uint8_t isr_ = 0;
  uint32_t device_feature_select_ = 0;
  uint32_t driver_feature_select_ = 0;
  uint64_t driver_features_ = 0;
  uint16_t queue_select_ = 0;
  Queue queues_[2];
  bool hung_ = false;
  bool pending_ = false;
  std::optional<std::pair<uint8_t, ReqStatus>> fail_next_;
  Hostile hostile_ = Hostile::kNone;
  unsigned hostile_count_ = 0;
  uint8_t hostile_type_ = 0;
  std::function<void(Answer&)> answer_hook_;
  std::function<void(EventAnswer&)> event_hook_;
  std::vector<std::pair<uint64_t, size_t>> overruns_;
  std::map<uint32_t, DomainState> domains_;
  std::map<uint32_t, uint32_t> endpoints_;
  std::set<uint32_t> ever_attached_;
  std::vector<LoggedRequest> log_;
  uint64_t notifies_ = 0;
  uint64_t resets_ = 0;
  uint64_t dropped_events_ = 0;
  uint8_t status_at_bypass_write_ = 0xff;
};

}  // namespace deviso::virtio_iommu::testing

#endif  // DEVISO_SRC_VIRTIO_IOMMU_TESTING_FAKE_DEVICE_H_
