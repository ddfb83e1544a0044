// The seams between the virtio-iommu driver and its bus: the PCI function's configuration
// space (to walk the virtio capabilities, virtio 1.2 4.1.4) and the memory BARs that hold the
// common, notify, ISR and device-specific structures. The platform adapts its PCI host to
// these; the host tests put a fake device behind them.

#ifndef DEVISO_SRC_VIRTIO_IOMMU_TRANSPORT_H_
#define DEVISO_SRC_VIRTIO_IOMMU_TRANSPORT_H_

#include <cstddef>
#include <cstdint>

namespace deviso::virtio_iommu {

// Configuration space of one PCI function. Offsets are naturally aligned for the width.
class PciConfig {
 public:
  virtual ~PciConfig() = default;
  virtual uint8_t Read8(size_t offset) = 0;
  virtual uint16_t Read16(size_t offset) = 0;
  virtual uint32_t Read32(size_t offset) = 0;
  virtual void Write8(size_t offset, uint8_t value) = 0;
  virtual void Write16(size_t offset, uint16_t value) = 0;
  virtual void Write32(size_t offset, uint32_t value) = 0;
};

// One memory BAR. virtio 1.2 4.1.3.1: each field is accessed with its own width, so the
// interface has every width (Mmio has only 32 and 64).
class BarIo {
 public:
  virtual ~BarIo() = default;
  virtual uint8_t Read8(size_t offset) = 0;
  virtual uint16_t Read16(size_t offset) = 0;
  virtual uint32_t Read32(size_t offset) = 0;
  virtual void Write8(size_t offset, uint8_t value) = 0;
  virtual void Write16(size_t offset, uint16_t value) = 0;
  virtual void Write32(size_t offset, uint32_t value) = 0;
};

// A BAR mapped at `base` as Device memory (bare metal: the identity map).
class DirectBarIo final : public BarIo {
 public:
  explicit DirectBarIo(uintptr_t base) : base_(base) {}
  uint8_t Read8(size_t offset) override { return *Reg<uint8_t>(offset); }
  uint16_t Read16(size_t offset) override { return *Reg<uint16_t>(offset); }
  uint32_t Read32(size_t offset) override { return *Reg<uint32_t>(offset); }
  void Write8(size_t offset, uint8_t value) override { *Reg<uint8_t>(offset) = value; }
  void Write16(size_t offset, uint16_t value) override { *Reg<uint16_t>(offset) = value; }
  void Write32(size_t offset, uint32_t value) override { *Reg<uint32_t>(offset) = value; }

 private:
  template <typename T>
  volatile T* Reg(size_t offset) const {
    return reinterpret_cast<volatile T*>(base_ + offset);
  }
  uintptr_t base_;
};

}  // namespace deviso::virtio_iommu

#endif  // DEVISO_SRC_VIRTIO_IOMMU_TRANSPORT_H_
