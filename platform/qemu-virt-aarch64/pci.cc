// QEMU `virt`'s PCI host: the shared enumeration (src/pci) over the devicetree's ECAM, and the
// iommu-map / interrupt-map lookups (see pci.h).

#include "pci.h"

namespace deviso::qemu_virt {
namespace {

pci::Window ToWindow(const PciWindow& w) {
  return pci::Window{w.present, w.pci_addr, w.cpu_addr, w.size, w.prefetchable};
}

pci::HostBridge ToHostBridge(const PciHostInfo& info) {
  pci::HostBridge host;
  host.bus_start = info.bus_start;
  host.bus_end = info.bus_end;
  host.mem32 = ToWindow(info.mem32);
  host.mem64 = ToWindow(info.mem64);
  return host;
}

}  // namespace

PciHost::PciHost(const PciHostInfo& info)
    : info_(info),
      ecam_(info.present ? static_cast<uintptr_t>(info.ecam.base) : 0, info.bus_start,
            info.bus_end),
      topology_(ToHostBridge(info), ecam_) {}

PciHost::PciHost(const PciHostInfo& info, PciConfigSpace& config)
    : info_(info), topology_(ToHostBridge(info), config) {}

Status PciHost::Enumerate() {
  if (!info_.present) {
    return Status::NotSupported();
  }
  return topology_.Enumerate();
}

Result<uint32_t> PciHost::StreamId(const Bdf& bdf, uint32_t iommu_phandle) const {
  // of_map_id() with a target, as src/dt applies it (docs/devicetree.md).
  dt::IommuMap map;
  map.present = info_.iommu_map_count != 0;
  map.mask = info_.iommu_map_mask;
  for (size_t i = 0; i < info_.iommu_map_count; ++i) {
    const IommuMapEntry& e = info_.iommu_map[i];
    map.ranges[i] = {e.rid_base, e.iommu_phandle, e.sid_base, e.length};
  }
  map.count = info_.iommu_map_count;
  return map.Map(DmaRequester(bdf).rid(), iommu_phandle);
}

Result<IrqSpec> PciHost::IntxIrq(const Bdf& bdf) const {
  const PciFunction* f = FindFunction(bdf);
  if (f == nullptr || f->interrupt_pin == 0) {
    return Status::NotFound();
  }
  return IntxIrq(bdf, f->interrupt_pin);
}

Result<IrqSpec> PciHost::IntxIrq(const Bdf& bdf, uint8_t pin) const {
  if (!info_.intx_map.present) {
    return Status::NotSupported();
  }
  DEVISO_ASSIGN_OR_RETURN(const RootIntx root, SwizzleIntx(bdf, pin));
  DEVISO_ASSIGN_OR_RETURN(const dt::Interrupt irq,
                          info_.intx_map.LookupPci(root.root.rid(), root.pin));
  DEVISO_ASSIGN_OR_RETURN(const dt::GicInterrupt gic, dt::DecodeGic(irq));
  IrqSpec spec;
  spec.valid = true;
  spec.intid = gic.intid;
  spec.edge = gic.edge;
  return spec;
}

}  // namespace deviso::qemu_virt
