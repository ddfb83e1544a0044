// PCI Express on QEMU `virt`: the shared enumeration of src/pci (pci::Topology) over the
// devicetree's pci-host-ecam-generic node, plus what only the devicetree knows: the StreamID of
// a function from the host bridge's iommu-map and its GIC interrupt from its interrupt-map.
//
// Enumeration itself (bus numbers, BARs, bridge windows, DMA aliases, INTx swizzle, bus
// mastering only on request) is documented in src/pci/pci.h; the types here are its types.
// Behind a conventional PCI bus the IOMMU does not see a function's own requester ID
// (PciFunction::dma_alias): such functions share one StreamID.

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PCI_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PCI_H_

#include <cstddef>
#include <cstdint>

#include "deviso/status.h"
#include "pci/pci.h"
#include "platform_info.h"

namespace deviso::qemu_virt {

using Bdf = pci::Bdf;
using PciBar = pci::Bar;
using PciePortType = pci::PortType;
using PciBridgeWindow = pci::BridgeWindow;
using PciBridgeInfo = pci::BridgeInfo;
using PciFunction = pci::Function;
using PciConfigSpace = pci::ConfigSpace;

class PciHost {
 public:
  static constexpr size_t kMaxFunctions = pci::Topology::kMaxFunctions;
  static constexpr uint64_t kBridgeWindowGranule = pci::Topology::kBridgeWindowGranule;

  // The host bridge from the devicetree; the ECAM and windows must be mapped (MmuInit does).
  explicit PciHost(const PciHostInfo& info);
  // The same over another configuration space (a host test's simulated ECAM); `config` must
  // outlive this object.
  PciHost(const PciHostInfo& info, PciConfigSpace& config);
  PciHost(const PciHost&) = delete;
  PciHost& operator=(const PciHost&) = delete;

  // pci::Topology::Enumerate() over the host bridge's bus range and windows. Errors: -ENOTSUP
  // (no host bridge), and those of pci::Topology::Enumerate() (-ENOMEM, -ERANGE).
  Status Enumerate();

  // As pci::Topology.
  size_t function_count() const { return topology_.function_count(); }
  const PciFunction& function(size_t i) const { return topology_.function(i); }
  const PciFunction* Find(uint16_t vendor_id, uint16_t device_id) const {
    return topology_.Find(vendor_id, device_id);
  }
  const PciFunction* FindFunction(const Bdf& bdf) const { return topology_.FindFunction(bdf); }
  uint8_t last_bus() const { return topology_.last_bus(); }
  Status EnableBusMaster(const Bdf& bdf) { return topology_.EnableBusMaster(bdf); }
  Status DisableBusMaster(const Bdf& bdf) { return topology_.DisableBusMaster(bdf); }
  Status EnableIntx(const Bdf& bdf) { return topology_.EnableIntx(bdf); }
  Status DisableIntx(const Bdf& bdf) { return topology_.DisableIntx(bdf); }
  Bdf DmaRequester(const Bdf& bdf) const { return topology_.DmaRequester(bdf); }
  using RootIntx = pci::Topology::RootIntx;
  Result<RootIntx> SwizzleIntx(const Bdf& bdf, uint8_t pin) const {
    return topology_.SwizzleIntx(bdf, pin);
  }
  const pci::Topology& topology() const { return topology_; }

  // The StreamID of `bdf` at the IOMMU with phandle `iommu_phandle`, from the host bridge's
  // iommu-map (pci-iommu.txt) applied to DmaRequester(bdf): sid = sid_base + ((rid &
  // iommu-map-mask) - rid_base). Errors: -ENOENT (the RID is not in the map: the function is
  // not behind that IOMMU).
  Result<uint32_t> StreamId(const Bdf& bdf, uint32_t iommu_phandle) const;

  // The GIC interrupt of `bdf`'s legacy INTx, from the host bridge's interrupt-map (DT spec
  // 2.4.3; PCI Bus Binding to OF 4.1.1): the function's Interrupt Pin as enumerated (or `pin`,
  // 1..4 = INTA..INTD, in the second form), swizzled through every bridge above it
  // (SwizzleIntx), then looked up with the root-bus device it arrives at. (Bridges with their
  // own devicetree interrupt-map are not consulted: QEMU `virt` has none.) A `bdf` that is not
  // enumerated is taken as a root-bus function. Errors: -ENOENT (not an enumerated function,
  // Interrupt Pin 0, or no interrupt-map entry), -EINVAL (pin not 1..4; the map's parent is
  // not a 3-cell GIC specifier), -ENOTSUP (the host bridge has no interrupt-map).
  Result<IrqSpec> IntxIrq(const Bdf& bdf) const;
  Result<IrqSpec> IntxIrq(const Bdf& bdf, uint8_t pin) const;

  // Configuration space access (ECAM). `offset` must be naturally aligned. Buses outside the
  // ECAM's range read as all ones and ignore writes.
  uint32_t ConfigRead32(const Bdf& bdf, size_t offset) const {
    return topology_.ConfigRead32(bdf, offset);
  }
  uint16_t ConfigRead16(const Bdf& bdf, size_t offset) const {
    return topology_.ConfigRead16(bdf, offset);
  }
  void ConfigWrite32(const Bdf& bdf, size_t offset, uint32_t value) {
    topology_.ConfigWrite32(bdf, offset, value);
  }
  void ConfigWrite16(const Bdf& bdf, size_t offset, uint16_t value) {
    topology_.ConfigWrite16(bdf, offset, value);
  }

 private:
  PciHostInfo info_;
  pci::Ecam ecam_;
  pci::Topology topology_;
};

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PCI_H_
