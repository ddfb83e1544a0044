// The virtio-over-PCI modern transport (virtio 1.2 4.1): finds the common, notify, ISR and
// device-specific configuration structures through the vendor capabilities, and gives typed
// access to them. It knows nothing of the IOMMU; VirtioIommu drives the initialisation
// sequence (3.1.1) through it.

#ifndef DEVISO_SRC_VIRTIO_IOMMU_VIRTIO_PCI_H_
#define DEVISO_SRC_VIRTIO_IOMMU_VIRTIO_PCI_H_

#include <cstddef>
#include <cstdint>

#include "deviso/status.h"
#include "deviso/types.h"
#include "virtio_iommu/transport.h"

namespace deviso::virtio_iommu {

class VirtioPci {
 public:
  static constexpr size_t kBars = 6;

  // `bars[i]` is BAR i (nullptr: not implemented or not mapped).
  VirtioPci(PciConfig* config, BarIo* const (&bars)[kBars]);

  // Walks the capability list (4.1.4) and records where each structure lives.
  // Errors: -ENOTSUP (no capability list, or the common, notify or device structure is
  // missing, too small, or in a BAR that is not mapped: a legacy-only device).
  Status Probe();

  // 2.1 device status: reset (write 0) and wait until it reads back 0 (4.1.4.3.2), within
  // `timeout_ns`. Errors: -ETIMEDOUT.
  Status Reset(uint64_t timeout_ns);
  uint8_t ReadStatus();
  void WriteStatus(uint8_t status);

  // 4.1.4.3: the 64 feature bits through the select registers.
  uint64_t ReadDeviceFeatures();
  void WriteDriverFeatures(uint64_t features);

  // Queue configuration (4.1.5.1.3). SelectQueue must precede the others.
  void SelectQueue(uint16_t index);
  uint16_t QueueMaxSize();
  void SetQueue(uint16_t size, Paddr desc, Paddr driver, Paddr device);
  void EnableQueue();
  // The address offset of the selected queue's notification register (4.1.4.4).
  size_t QueueNotifyOffset();
  // Notifies the device of new buffers in queue `index` (4.1.5.2), at `notify_offset`.
  void Notify(size_t notify_offset, uint16_t index);
  uint16_t NumQueues();
  // 4.1.4.5: reading the ISR status acknowledges an interrupt.
  uint8_t ReadIsr();

  // Device-specific configuration (4.1.4.6), read under config_generation (2.5.1) so that a
  // multi-field read is consistent. `offset` is naturally aligned for the width.
  uint8_t ConfigRead8(size_t offset);
  uint32_t ConfigRead32(size_t offset);
  uint64_t ConfigRead64(size_t offset);  // two 32-bit reads, low first
  void ConfigWrite8(size_t offset, uint8_t value);
  uint8_t ConfigGeneration();

  size_t device_cfg_length() const { return device_.length; }

 private:
  struct Location {
    BarIo* bar = nullptr;
    size_t offset = 0;
    size_t length = 0;
  };
  Result<Location> Locate(size_t cap);

  PciConfig* config_;
  BarIo* bars_[kBars];
  Location common_;
  Location notify_;
  Location isr_;
  Location device_;
  uint32_t notify_multiplier_ = 0;
};

}  // namespace deviso::virtio_iommu

#endif  // DEVISO_SRC_VIRTIO_IOMMU_VIRTIO_PCI_H_
