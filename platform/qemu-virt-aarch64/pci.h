// PCI Express enumeration through ECAM (pci-host-ecam-generic) for QEMU `virt`.
//
// Configuration space layout: PCI Local Bus Specification 3.0, 6.1-6.2 (type 0 header, Command
// register, BARs 6.2.5); ECAM addressing: PCI Express Base Specification 4.0, 7.2.2
// (address = base + bus << 20 | device << 15 | function << 12 | offset).
//
// Enumerate() assigns every memory BAR of the functions on the root bus an address in the host
// bridge's windows and turns memory decoding on; it never turns bus mastering on: a device can
// issue DMA only after EnableBusMaster(), which the caller invokes once the device's isolation
// context exists. PCI-to-PCI bridges are listed but not configured (QEMU `virt` has none unless
// -device pcie-root-port is given).

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PCI_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PCI_H_

#include <cstddef>
#include <cstdint>

#include "deviso/status.h"
#include "platform_info.h"

namespace deviso::qemu_virt {

// Bus/device/function: a PCI requester ID.
struct Bdf {
  uint8_t bus = 0;
  uint8_t device = 0;    // 0..31
  uint8_t function = 0;  // 0..7
  // PCIe 4.0 2.2.6.2: RID = bus[15:8] device[7:3] function[2:0].
  uint16_t rid() const { return static_cast<uint16_t>((bus << 8) | (device << 3) | function); }
  bool operator==(const Bdf&) const = default;
};

struct PciBar {
  uint64_t cpu_addr = 0;  // 0: not implemented or not assigned
  uint64_t size = 0;
  bool is_io = false;
  bool is_64bit = false;
  bool prefetchable = false;
};

struct PciFunction {
  Bdf bdf;
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint32_t class_code = 0;    // base class [23:16], subclass [15:8], prog-if [7:0]
  uint8_t header_type = 0;    // 0: endpoint, 1: PCI-to-PCI bridge
  uint8_t interrupt_pin = 0;  // 1..4 = INTA..INTD; 0: none
  PciBar bars[6];
};

class PciHost {
 public:
  static constexpr size_t kMaxFunctions = 32;

  // The host bridge from the devicetree; the ECAM and windows must be mapped (MmuInit does).
  explicit PciHost(const PciHostInfo& info) : info_(info) {}

  // Scans the root bus (bus_start), records every function, sizes and assigns its memory BARs
  // (32-bit BARs in the 32-bit window; 64-bit BARs there too, or in the 64-bit window when the
  // 32-bit one is full), and sets Command.Memory Space (Bus Master stays clear; I/O BARs are not
  // assigned and I/O decoding stays off). Errors: -ENOTSUP (no host bridge), -ENOMEM (a window
  // is full; earlier functions stay configured), -ERANGE (more than kMaxFunctions functions).
  Status Enumerate();

  size_t function_count() const { return count_; }
  const PciFunction& function(size_t i) const { return functions_[i]; }
  // The first function with this vendor and device ID, or nullptr.
  const PciFunction* Find(uint16_t vendor_id, uint16_t device_id) const;

  // Sets / clears Command.Bus Master Enable (PCI 3.0 6.2.2): the device may issue DMA only
  // while it is set. Errors: -ENOENT (no such enumerated function).
  Status EnableBusMaster(const Bdf& bdf);
  Status DisableBusMaster(const Bdf& bdf);

  // Clears / sets Command.Interrupt Disable (PCI 3.0 6.2.2, bit 10): Enumerate() leaves every
  // function's legacy INTx disabled; IntxIrq() says where it arrives once enabled.
  // Errors: -ENOENT (no such enumerated function).
  Status EnableIntx(const Bdf& bdf);
  Status DisableIntx(const Bdf& bdf);

  // The StreamID of `bdf` at the IOMMU with phandle `iommu_phandle`, from the host bridge's
  // iommu-map (pci-iommu.txt): sid = sid_base + ((rid & iommu-map-mask) - rid_base).
  // Errors: -ENOENT (the RID is not in the map: the function is not behind that IOMMU).
  Result<uint32_t> StreamId(const Bdf& bdf, uint32_t iommu_phandle) const;

  // The GIC interrupt of `bdf`'s legacy INTx, from the host bridge's interrupt-map (DT spec
  // 2.4.3; PCI Bus Binding to OF 4.1.1): the function's Interrupt Pin as enumerated (or `pin`,
  // 1..4 = INTA..INTD, in the second form). Root-bus functions only (no bridge swizzle).
  // Errors: -ENOENT (not an enumerated function, Interrupt Pin 0, or no interrupt-map entry),
  // -EINVAL (pin not 1..4; the map's parent is not a 3-cell GIC specifier), -ENOTSUP (the
  // host bridge has no interrupt-map).
  Result<IrqSpec> IntxIrq(const Bdf& bdf) const;
  Result<IrqSpec> IntxIrq(const Bdf& bdf, uint8_t pin) const;

  // Configuration space access (ECAM). `offset` must be naturally aligned.
  uint32_t ConfigRead32(const Bdf& bdf, size_t offset) const;
  uint16_t ConfigRead16(const Bdf& bdf, size_t offset) const;
  void ConfigWrite32(const Bdf& bdf, size_t offset, uint32_t value);
  void ConfigWrite16(const Bdf& bdf, size_t offset, uint16_t value);

 private:
  uintptr_t ConfigAddress(const Bdf& bdf, size_t offset) const;
  Status ProbeFunction(const Bdf& bdf);
  Status AssignBars(PciFunction& f);
  Result<uint64_t> AllocateWindow(uint64_t size, bool allow_64bit);
  PciFunction* FindFunction(const Bdf& bdf);
  const PciFunction* FindFunction(const Bdf& bdf) const;

  PciHostInfo info_;
  PciFunction functions_[kMaxFunctions];
  size_t count_ = 0;
  uint64_t next_mem32_ = 0;  // next free CPU address in each window
  uint64_t next_mem64_ = 0;
};

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PCI_H_
