// virtio-over-PCI modern transport. See virtio_pci.h; sections refer to virtio 1.2.

#include "virtio_iommu/virtio_pci.h"

#include "deviso/port/os.h"
#include "virtio_iommu/hw.h"

namespace deviso::virtio_iommu {

VirtioPci::VirtioPci(PciConfig* config, BarIo* const (&bars)[kBars]) : config_(config) {
  for (size_t i = 0; i < kBars; ++i) bars_[i] = bars[i];
}

Result<VirtioPci::Location> VirtioPci::Locate(size_t cap) {
  const uint8_t bar = config_->Read8(cap + pci::kCapBar);
  if (bar >= kBars || bars_[bar] == nullptr) return Status::NotSupported();
  Location l;
  l.bar = bars_[bar];
  l.offset = config_->Read32(cap + pci::kCapOffset);
  l.length = config_->Read32(cap + pci::kCapLength);
  return l;
}

Status VirtioPci::Probe() {
  if (config_ == nullptr) return Status::InvalidArgument();
  if (pci::CfgStatus::ReadFrom(*config_).cap_list() == 0) {
    return Status::NotSupported();
  }
  // PCI 3.0 6.7: the list starts at Capabilities Pointer; the low two bits are reserved. A
  // malformed (cyclic) list is bounded by the 48 capabilities config space can hold.
  size_t cap = pci::CapPtr::ReadFrom(*config_).ptr();
  for (unsigned guard = 0; cap >= 0x40 && guard < 48; ++guard) {
    const uint8_t id = config_->Read8(cap);
    const size_t next = pci::CapPtr::ReadAt(*config_, cap + 1).ptr();
    if (id == pci::kCapIdVendor) {
      const auto type = static_cast<pci::CfgType>(config_->Read8(cap + pci::kCapCfgType));
      // 4.1.4.1: the driver uses the first capability of each type it can use.
      Location* slot = type == pci::CfgType::kCommon   ? &common_
                       : type == pci::CfgType::kNotify ? &notify_
                       : type == pci::CfgType::kIsr    ? &isr_
                       : type == pci::CfgType::kDevice ? &device_
                                                       : nullptr;
      if (slot != nullptr && slot->bar == nullptr) {
        const Result<Location> l = Locate(cap);
        if (l.ok()) {
          *slot = *l;
          if (type == pci::CfgType::kNotify) {
            notify_multiplier_ = config_->Read32(cap + pci::kNotifyCapMultiplier);
          }
        }
      }
    }
    cap = next;
  }
  if (common_.bar == nullptr || common_.length < pci::common::kQueueNotifData ||
      notify_.bar == nullptr || device_.bar == nullptr) {
    return Status::NotSupported();
  }
  return Status::Ok();
}

uint8_t VirtioPci::ReadStatus() {
  return status::DeviceStatus::ReadFrom(*common_.bar, common_.offset).raw;
}

void VirtioPci::WriteStatus(uint8_t status) {
  status::DeviceStatus{status}.WriteTo(*common_.bar, common_.offset);
}

Status VirtioPci::Reset(uint64_t timeout_ns) {
  WriteStatus(0);
  // 4.1.4.3.2: the device may take time; the reset is complete when device_status reads 0.
  const port::Deadline deadline = port::Deadline::In(timeout_ns);
  for (;;) {
    if (ReadStatus() == 0) return Status::Ok();
    // One last look after the deadline: the reset may have completed while this thread was
    // not running.
    if (deadline.Expired()) return ReadStatus() == 0 ? Status::Ok() : Status::TimedOut();
  }
}

uint64_t VirtioPci::ReadDeviceFeatures() {
  BarIo& b = *common_.bar;
  const size_t o = common_.offset;
  feature::Features f{};
  pci::common::DeviceFeatureSelect{}.set_select(0).WriteTo(b, o);
  f.set_low(pci::common::DeviceFeature::ReadFrom(b, o).bits());
  pci::common::DeviceFeatureSelect{}.set_select(1).WriteTo(b, o);
  f.set_high(pci::common::DeviceFeature::ReadFrom(b, o).bits());
  return f.raw;
}

void VirtioPci::WriteDriverFeatures(uint64_t features) {
  BarIo& b = *common_.bar;
  const size_t o = common_.offset;
  const feature::Features f{features};
  pci::common::DriverFeatureSelect{}.set_select(0).WriteTo(b, o);
  pci::common::DriverFeature{}.set_bits(f.low()).WriteTo(b, o);
  pci::common::DriverFeatureSelect{}.set_select(1).WriteTo(b, o);
  pci::common::DriverFeature{}.set_bits(f.high()).WriteTo(b, o);
}

void VirtioPci::SelectQueue(uint16_t index) {
  pci::common::QueueSelect{}.set_index(index).WriteTo(*common_.bar, common_.offset);
}

uint16_t VirtioPci::QueueMaxSize() {
  return pci::common::QueueSize::ReadFrom(*common_.bar, common_.offset).entries();
}

void VirtioPci::SetQueue(uint16_t size, Paddr desc, Paddr driver, Paddr device) {
  BarIo& b = *common_.bar;
  const size_t o = common_.offset;
  pci::common::QueueSize{}.set_entries(size).WriteTo(b, o);
  // No MSI-X vectors: the driver polls (5.13.2 does not require interrupts).
  pci::common::QueueMsixVector{}.set_vector(pci::kNoVector).WriteTo(b, o);
  auto write64 = [&](size_t field, uint64_t v) {
    hwreg::WriteLowHigh(b, o + field, o + field + 4, v);
  };
  write64(pci::common::kQueueDesc, desc);
  write64(pci::common::kQueueDriver, driver);
  write64(pci::common::kQueueDevice, device);
}

void VirtioPci::EnableQueue() {
  pci::common::QueueEnable{}.set_enable(1).WriteTo(*common_.bar, common_.offset);
}

size_t VirtioPci::QueueNotifyOffset() {
  // 4.1.4.4: cap.offset + queue_notify_off * notify_off_multiplier.
  const uint16_t off = pci::common::QueueNotifyOff::ReadFrom(*common_.bar, common_.offset).offset();
  return notify_.offset + size_t{off} * notify_multiplier_;
}

void VirtioPci::Notify(size_t notify_offset, uint16_t index) {
  // 4.1.5.2: without VIRTIO_F_NOTIFICATION_DATA the driver writes the queue index (le16).
  notify_.bar->Write16(notify_offset, index);
}

uint16_t VirtioPci::NumQueues() {
  return pci::common::NumQueues::ReadFrom(*common_.bar, common_.offset).value();
}

uint8_t VirtioPci::ReadIsr() { return isr_.bar != nullptr ? isr_.bar->Read8(isr_.offset) : 0; }

uint8_t VirtioPci::ConfigGeneration() {
  return pci::common::ConfigGeneration::ReadFrom(*common_.bar, common_.offset).value();
}

uint8_t VirtioPci::ConfigRead8(size_t offset) {
  return device_.bar->Read8(device_.offset + offset);
}

uint32_t VirtioPci::ConfigRead32(size_t offset) {
  return device_.bar->Read32(device_.offset + offset);
}

uint64_t VirtioPci::ConfigRead64(size_t offset) {
  // 2.5.1 / 4.1.3.1: two 32-bit reads, retried while config_generation changes under them
  // (bounded: a device that keeps changing its configuration gets the last pair).
  uint64_t v = 0;
  for (unsigned tries = 0; tries < 8; ++tries) {
    const uint8_t before = ConfigGeneration();
    v = hwreg::ReadLowHigh(*device_.bar, device_.offset + offset, device_.offset + offset + 4);
    if (ConfigGeneration() == before) break;
  }
  return v;
}

void VirtioPci::ConfigWrite8(size_t offset, uint8_t value) {
  device_.bar->Write8(device_.offset + offset, value);
}

}  // namespace deviso::virtio_iommu
