// virtio-iommu and virtio-over-PCI layouts (OASIS virtio 1.2, cs01). Section numbers refer to
// that specification: 4.1 virtio over PCI bus, 2.7 split virtqueues, 5.13 the IOMMU device.
//
// Every structure is declared with its fields in spec order; multi-byte fields are little-endian
// (2.4: "le16/le32/le64"), which is the byte order of every CPU deviso runs on (static_assert
// below). Sizes and offsets are checked against the spec's C declarations, so a layout that
// drifts fails the build, and the unit tests compare encoded requests byte by byte. Registers
// and flag words are core/hwreg.h types; each flag constant below is derived from its type.

#ifndef DEVISO_SRC_VIRTIO_IOMMU_HW_H_
#define DEVISO_SRC_VIRTIO_IOMMU_HW_H_

#include <cstddef>
#include <cstdint>

#include "core/hwreg.h"

namespace deviso::virtio_iommu {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "virtio structures are little-endian");

// ---- PCI (4.1) --------------------------------------------------------------------------------
namespace pci {

inline constexpr uint16_t kVendorVirtio = 0x1af4;
// 4.1.2.1: modern device ID = 0x1040 + device type; type 23 is the IOMMU (5.13).
inline constexpr uint16_t kDeviceIommu = 0x1040 + 23;

// PCI 3.0 6.2: the standard header fields the transport reads.
inline constexpr size_t kCfgStatus = 0x06;  // bit 4: capability list present
inline constexpr size_t kCfgCapPtr = 0x34;
// PCI 3.0 6.2.3 Status register.
struct CfgStatus : hwreg::Register<CfgStatus, uint16_t, kCfgStatus> {
  DEVISO_REG_BIT(4, cap_list);  // capabilities list present
};
inline constexpr uint16_t kStatusCapList = CfgStatus{}.set_cap_list(1).raw;
// PCI 3.0 6.7 Capabilities Pointer (and each capability's next pointer): the low two bits are
// reserved.
struct CapPtr : hwreg::Register<CapPtr, uint8_t, kCfgCapPtr> {
  DEVISO_REG_RSVDZ({1, 0});
  DEVISO_REG_ADDR(7, 2, ptr);
};
inline constexpr size_t kCfgBar0 = 0x10;
inline constexpr uint8_t kCapIdVendor = 0x09;  // PCI 3.0 Appendix H: vendor specific

// 4.1.4 struct virtio_pci_cap: one per structure, in the PCI capability list.
struct Cap {
  uint8_t cap_vndr;  // kCapIdVendor
  uint8_t cap_next;
  uint8_t cap_len;
  uint8_t cfg_type;  // CfgType
  uint8_t bar;       // 0..5
  uint8_t id;
  uint8_t padding[2];
  uint32_t offset;  // within the BAR
  uint32_t length;
};
static_assert(sizeof(Cap) == 16);
inline constexpr size_t kCapCfgType = offsetof(Cap, cfg_type);
inline constexpr size_t kCapBar = offsetof(Cap, bar);
inline constexpr size_t kCapOffset = offsetof(Cap, offset);
inline constexpr size_t kCapLength = offsetof(Cap, length);
// 4.1.4.4 struct virtio_pci_notify_cap: the cap, then le32 notify_off_multiplier.
inline constexpr size_t kNotifyCapMultiplier = sizeof(Cap);

// 4.1.4 "cfg_type" values.
enum class CfgType : uint8_t {
  kCommon = 1,
  kNotify = 2,
  kIsr = 3,
  kDevice = 4,
  kPci = 5,
  kSharedMemory = 8,
  kVendor = 9,
};

// 4.1.4.3 struct virtio_pci_common_cfg, as offsets: the driver must access each field with its
// own width (4.1.3.1), 64-bit fields as two 32-bit halves, low first.
namespace common {
inline constexpr size_t kDeviceFeatureSelect = 0x00;  // le32
inline constexpr size_t kDeviceFeature = 0x04;        // le32, read-only
inline constexpr size_t kDriverFeatureSelect = 0x08;  // le32
inline constexpr size_t kDriverFeature = 0x0c;        // le32
inline constexpr size_t kConfigMsixVector = 0x10;     // le16
inline constexpr size_t kNumQueues = 0x12;            // le16, read-only
inline constexpr size_t kDeviceStatus = 0x14;         // u8
inline constexpr size_t kConfigGeneration = 0x15;     // u8, read-only
inline constexpr size_t kQueueSelect = 0x16;          // le16
inline constexpr size_t kQueueSize = 0x18;            // le16
inline constexpr size_t kQueueMsixVector = 0x1a;      // le16
inline constexpr size_t kQueueEnable = 0x1c;          // le16
inline constexpr size_t kQueueNotifyOff = 0x1e;       // le16, read-only
inline constexpr size_t kQueueDesc = 0x20;            // le64
inline constexpr size_t kQueueDriver = 0x28;          // le64
inline constexpr size_t kQueueDevice = 0x30;          // le64
inline constexpr size_t kQueueNotifData = 0x38;       // le16 (VIRTIO_F_NOTIF_CONFIG_DATA)
inline constexpr size_t kQueueReset = 0x3a;           // le16 (VIRTIO_F_RING_RESET)
inline constexpr size_t kSize = 0x3c;

// The fields as registers (offsets from the common structure: pass its offset as `base`).
struct DeviceFeatureSelect : hwreg::Register<DeviceFeatureSelect, uint32_t, kDeviceFeatureSelect> {
  DEVISO_REG_FIELD(31, 0, select);  // 0: feature bits 31:0, 1: 63:32
};
struct DeviceFeature : hwreg::Register<DeviceFeature, uint32_t, kDeviceFeature> {
  DEVISO_REG_FIELD(31, 0, bits);
};
struct DriverFeatureSelect : hwreg::Register<DriverFeatureSelect, uint32_t, kDriverFeatureSelect> {
  DEVISO_REG_FIELD(31, 0, select);
};
struct DriverFeature : hwreg::Register<DriverFeature, uint32_t, kDriverFeature> {
  DEVISO_REG_FIELD(31, 0, bits);
};
struct NumQueues : hwreg::Register<NumQueues, uint16_t, kNumQueues> {
  DEVISO_REG_FIELD(15, 0, value);
};
struct ConfigGeneration : hwreg::Register<ConfigGeneration, uint8_t, kConfigGeneration> {
  DEVISO_REG_FIELD(7, 0, value);
};
struct QueueSelect : hwreg::Register<QueueSelect, uint16_t, kQueueSelect> {
  DEVISO_REG_FIELD(15, 0, index);
};
struct QueueSize : hwreg::Register<QueueSize, uint16_t, kQueueSize> {
  DEVISO_REG_FIELD(15, 0, entries);
};
struct QueueMsixVector : hwreg::Register<QueueMsixVector, uint16_t, kQueueMsixVector> {
  DEVISO_REG_FIELD(15, 0, vector);
};
struct QueueEnable : hwreg::Register<QueueEnable, uint16_t, kQueueEnable> {
  DEVISO_REG_BIT(0, enable);
};
struct QueueNotifyOff : hwreg::Register<QueueNotifyOff, uint16_t, kQueueNotifyOff> {
  DEVISO_REG_FIELD(15, 0, offset);
};
}  // namespace common

// 4.1.4.3.1: "no vector" for config_msix_vector / queue_msix_vector.
inline constexpr uint16_t kNoVector = 0xffff;

}  // namespace pci

// ---- Device status (2.1) and feature bits (6, 5.13.3) -------------------------------------------
namespace status {
// 2.1 Device Status Field (common cfg device_status, 4.1.4.3).
struct DeviceStatus : hwreg::Register<DeviceStatus, uint8_t, pci::common::kDeviceStatus> {
  DEVISO_REG_RSVDZ({5, 4});
  DEVISO_REG_BIT(0, acknowledge);
  DEVISO_REG_BIT(1, driver);
  DEVISO_REG_BIT(2, driver_ok);
  DEVISO_REG_BIT(3, features_ok);
  DEVISO_REG_BIT(6, device_needs_reset);
  DEVISO_REG_BIT(7, failed);
};
inline constexpr uint8_t kAcknowledge = DeviceStatus{}.set_acknowledge(1).raw;
inline constexpr uint8_t kDriver = DeviceStatus{}.set_driver(1).raw;
inline constexpr uint8_t kDriverOk = DeviceStatus{}.set_driver_ok(1).raw;
inline constexpr uint8_t kFeaturesOk = DeviceStatus{}.set_features_ok(1).raw;
inline constexpr uint8_t kDeviceNeedsReset = DeviceStatus{}.set_device_needs_reset(1).raw;
inline constexpr uint8_t kFailed = DeviceStatus{}.set_failed(1).raw;
}  // namespace status

namespace feature {
// 5.13.3 Feature bits.
inline constexpr unsigned kInputRange = 0;
inline constexpr unsigned kDomainRange = 1;
inline constexpr unsigned kMapUnmap = 2;
inline constexpr unsigned kBypass = 3;
inline constexpr unsigned kProbe = 4;
inline constexpr unsigned kMmio = 5;
inline constexpr unsigned kBypassConfig = 6;
// 6 Reserved feature bits (device-independent).
inline constexpr unsigned kVersion1 = 32;
constexpr uint64_t Bit(unsigned n) { return uint64_t{1} << n; }
// The 64 feature bits as one word (read and written as two 32-bit halves, 4.1.4.3).
struct Features : hwreg::Register<Features, uint64_t> {
  DEVISO_REG_FIELD(31, 0, low);
  DEVISO_REG_FIELD(63, 32, high);
};
}  // namespace feature

// ---- Split virtqueues (2.7) --------------------------------------------------------------------
namespace vq {

// 2.7.5 struct virtq_desc.
struct Desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(Desc) == 16);
// 2.7.5 virtq_desc.flags.
struct DescFlags : hwreg::Register<DescFlags, uint16_t> {
  DEVISO_REG_BIT(0, next);
  DEVISO_REG_BIT(1, write);  // device-writable
  DEVISO_REG_BIT(2, indirect);
};
inline constexpr uint16_t kDescFNext = DescFlags{}.set_next(1).raw;
inline constexpr uint16_t kDescFWrite = DescFlags{}.set_write(1).raw;
inline constexpr uint16_t kDescFIndirect = DescFlags{}.set_indirect(1).raw;

// 2.7.6 struct virtq_avail: flags, idx, ring[queue size], used_event.
inline constexpr size_t kAvailFlags = 0;
inline constexpr size_t kAvailIdx = 2;
inline constexpr size_t kAvailRing = 4;
// 2.7.6 virtq_avail.flags.
struct AvailFlags : hwreg::Register<AvailFlags, uint16_t> {
  DEVISO_REG_BIT(0, no_interrupt);
};
inline constexpr uint16_t kAvailFNoInterrupt = AvailFlags{}.set_no_interrupt(1).raw;
constexpr size_t AvailBytes(uint16_t n) { return 6 + 2 * size_t{n}; }

// 2.7.8 struct virtq_used: flags, idx, ring[queue size] of virtq_used_elem, avail_event.
struct UsedElem {
  uint32_t id;   // head of the descriptor chain
  uint32_t len;  // bytes written into device-writable buffers
};
static_assert(sizeof(UsedElem) == 8);
inline constexpr size_t kUsedFlags = 0;
inline constexpr size_t kUsedIdx = 2;
inline constexpr size_t kUsedRing = 4;
constexpr size_t UsedBytes(uint16_t n) { return 6 + 8 * size_t{n}; }

// 2.7.10.1 alignment: descriptor table 16, available ring 2, used ring 4.
inline constexpr size_t kDescAlign = 16;
inline constexpr size_t kAvailAlign = 2;
inline constexpr size_t kUsedAlign = 4;

}  // namespace vq

// ---- virtio-iommu (5.13) -----------------------------------------------------------------------

// 5.13.2 Virtqueues.
inline constexpr uint16_t kRequestQueue = 0;
inline constexpr uint16_t kEventQueue = 1;

// 5.13.4 struct virtio_iommu_config.
struct Range64 {
  uint64_t start;
  uint64_t end;  // inclusive
};
struct Range32 {
  uint32_t start;
  uint32_t end;  // inclusive
};
struct DeviceConfig {
  uint64_t page_size_mask;
  Range64 input_range;
  Range32 domain_range;
  uint32_t probe_size;
  uint8_t bypass;
  uint8_t reserved[3];
};
static_assert(sizeof(DeviceConfig) == 40);
namespace devcfg {
inline constexpr size_t kPageSizeMask = offsetof(DeviceConfig, page_size_mask);
inline constexpr size_t kInputStart = offsetof(DeviceConfig, input_range.start);
inline constexpr size_t kInputEnd = offsetof(DeviceConfig, input_range.end);
inline constexpr size_t kDomainStart = offsetof(DeviceConfig, domain_range.start);
inline constexpr size_t kDomainEnd = offsetof(DeviceConfig, domain_range.end);
inline constexpr size_t kProbeSize = offsetof(DeviceConfig, probe_size);
inline constexpr size_t kBypass = offsetof(DeviceConfig, bypass);
static_assert(kInputStart == 8 && kDomainStart == 24 && kProbeSize == 32 && kBypass == 36);
}  // namespace devcfg

// 5.13.6 Device operations: request types and status values.
enum class ReqType : uint8_t {
  kAttach = 1,
  kDetach = 2,
  kMap = 3,
  kUnmap = 4,
  kProbe = 5,
};

enum class ReqStatus : uint8_t {
  kOk = 0,
  kIoErr = 1,
  kUnsupp = 2,
  kDevErr = 3,
  kInval = 4,
  kRange = 5,
  kNoEnt = 6,
  kFault = 7,
  kNoMem = 8,
};

// 5.13.6 struct virtio_iommu_req_head / _tail. Every request is a device-readable part that
// starts with the head, then a device-writable part that ends with the tail.
struct ReqHead {
  uint8_t type;  // ReqType
  uint8_t reserved[3];
};
struct ReqTail {
  uint8_t status;  // ReqStatus
  uint8_t reserved[3];
};
static_assert(sizeof(ReqHead) == 4 && sizeof(ReqTail) == 4);

// 5.13.6.3 ATTACH (device-readable part; the tail follows in its own buffer).
struct ReqAttach {
  ReqHead head;
  uint32_t domain;
  uint32_t endpoint;
  uint32_t flags;  // kAttachFBypass
  uint8_t reserved[4];
};
static_assert(sizeof(ReqAttach) == 20);
struct AttachFlags : hwreg::Register<AttachFlags, uint32_t> {
  DEVISO_REG_RSVDZ({31, 1});
  DEVISO_REG_BIT(0, bypass);
};
inline constexpr uint32_t kAttachFBypass = AttachFlags{}.set_bypass(1).raw;

// 5.13.6.4 DETACH.
struct ReqDetach {
  ReqHead head;
  uint32_t domain;
  uint32_t endpoint;
  uint8_t reserved[8];
};
static_assert(sizeof(ReqDetach) == 20);

// 5.13.6.5 MAP: [virt_start, virt_end] (inclusive) -> phys_start.
struct ReqMap {
  ReqHead head;
  uint32_t domain;
  uint64_t virt_start;
  uint64_t virt_end;
  uint64_t phys_start;
  uint32_t flags;  // kMapF*
};
static_assert(offsetof(ReqMap, virt_start) == 8 && offsetof(ReqMap, phys_start) == 24 &&
              offsetof(ReqMap, flags) == 32);
inline constexpr size_t kReqMapBytes = 36;  // the spec's struct without the tail (no padding)
struct MapFlags : hwreg::Register<MapFlags, uint32_t> {
  DEVISO_REG_RSVDZ({31, 3});
  DEVISO_REG_BIT(0, read);
  DEVISO_REG_BIT(1, write);
  DEVISO_REG_BIT(2, mmio);
};
inline constexpr uint32_t kMapFRead = MapFlags{}.set_read(1).raw;
inline constexpr uint32_t kMapFWrite = MapFlags{}.set_write(1).raw;
inline constexpr uint32_t kMapFMmio = MapFlags{}.set_mmio(1).raw;

// 5.13.6.6 UNMAP: every mapping inside [virt_start, virt_end] (inclusive).
struct ReqUnmap {
  ReqHead head;
  uint32_t domain;
  uint64_t virt_start;
  uint64_t virt_end;
  uint8_t reserved[4];
};
static_assert(offsetof(ReqUnmap, virt_end) == 16 && offsetof(ReqUnmap, reserved) == 24);
inline constexpr size_t kReqUnmapBytes = 28;

// 5.13.6.8 PROBE: device-readable head, endpoint, reserved[64]; then device-writable
// properties[probe_size] and the tail.
struct ReqProbe {
  ReqHead head;
  uint32_t endpoint;
  uint8_t reserved[64];
};
static_assert(sizeof(ReqProbe) == 72);

// 5.13.6.8.1 struct virtio_iommu_probe_property: le16 type (bits 11:0; 15:12 reserved), le16
// length (of the value, after this header), then the value.
struct ProbeProperty {
  uint16_t type;
  uint16_t length;
};
static_assert(sizeof(ProbeProperty) == 4);
struct ProbeType : hwreg::Register<ProbeType, uint16_t> {
  DEVISO_REG_FIELD(11, 0, type);  // bits 15:12 reserved (ignored on read)
};
inline constexpr uint16_t kProbeTypeMask = hwreg::Field<uint16_t, 11, 0>::kMask;
inline constexpr uint16_t kProbeTNone = 0;
inline constexpr uint16_t kProbeTResvMem = 1;

// 5.13.6.8.2.1 struct virtio_iommu_probe_resv_mem (the header, then this value).
struct ProbeResvMem {
  ProbeProperty head;
  uint8_t subtype;  // kResvMem*
  uint8_t reserved[3];
  uint64_t start;
  uint64_t end;  // inclusive
};
static_assert(sizeof(ProbeResvMem) == 24 && offsetof(ProbeResvMem, start) == 8);
inline constexpr uint16_t kProbeResvMemValueBytes = sizeof(ProbeResvMem) - sizeof(ProbeProperty);
inline constexpr uint8_t kResvMemReserved = 0;
inline constexpr uint8_t kResvMemMsi = 1;

// 5.13.6.9 struct virtio_iommu_fault: what the device writes into an event buffer.
struct FaultEvent {
  uint8_t reason;  // kFaultR*
  uint8_t reserved[3];
  uint32_t flags;  // kFaultF*
  uint32_t endpoint;
  uint8_t reserved2[4];
  uint64_t address;
};
static_assert(sizeof(FaultEvent) == 24 && offsetof(FaultEvent, address) == 16);
inline constexpr uint8_t kFaultRUnknown = 0;
inline constexpr uint8_t kFaultRDomain = 1;
inline constexpr uint8_t kFaultRMapping = 2;
struct FaultFlags : hwreg::Register<FaultFlags, uint32_t> {
  DEVISO_REG_BIT(0, read);
  DEVISO_REG_BIT(1, write);
  DEVISO_REG_BIT(2, exec);
  DEVISO_REG_BIT(8, address);  // `address` is valid
};
inline constexpr uint32_t kFaultFRead = FaultFlags{}.set_read(1).raw;
inline constexpr uint32_t kFaultFWrite = FaultFlags{}.set_write(1).raw;
inline constexpr uint32_t kFaultFExec = FaultFlags{}.set_exec(1).raw;
inline constexpr uint32_t kFaultFAddress = FaultFlags{}.set_address(1).raw;

}  // namespace deviso::virtio_iommu

#endif  // DEVISO_SRC_VIRTIO_IOMMU_HW_H_
