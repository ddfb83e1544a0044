// What the QEMU `virt` platform learned from its devicetree (parsed with libfdt at boot).
//
// Bindings: Documentation/devicetree/bindings/ in Linux: iommu/arm,smmu-v3.yaml,
// pci/host-generic-pci.yaml + pci/pci-iommu.txt (iommu-map), interrupt-controller/arm,gic-v3.yaml
// and arm,gic.yaml, serial/pl011.yaml, arm/psci.yaml; and the Devicetree Specification v0.4
// (memory, /chosen, /reserved-memory, interrupts).

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PLATFORM_INFO_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PLATFORM_INFO_H_

#include <cstddef>
#include <cstdint>

#include "deviso/status.h"
#include "dt/devicetree.h"

namespace deviso::qemu_virt {

// A physical address range [base, base + size).
struct Region {
  uint64_t base = 0;
  uint64_t size = 0;
  uint64_t end() const { return base + size; }
  bool Contains(uint64_t addr) const { return addr >= base && addr - base < size; }
};

// One interrupt of a device, decoded from a 3-cell GIC specifier (arm,gic.yaml):
// <type number flags>, type 0 = SPI (INTID number + 32), 1 = PPI (INTID number + 16).
struct IrqSpec {
  bool valid = false;
  uint32_t intid = 0;  // GIC INTID
  bool edge = false;   // flags bits[3:0]: 1 = rising edge; 4 = level high
};

struct UartInfo {
  bool present = false;
  Region regs;
  uint32_t clock_hz = 0;  // of the "uartclk" fixed clock; 0 if unknown
};

struct GicInfo {
  unsigned version = 0;  // 2 or 3; 0: not found
  Region distributor;
  Region redistributors;  // v3: the first redistributor region
  Region cpu_interface;   // v2: GICC
  // v3: the first arm,gic-v3-its child (arm,gic-v3.yaml "msi-controller"), size 0 if none.
  Region its;
  uint32_t its_phandle = 0;
};

// One msi-map entry (pci-msi.txt): requester IDs [rid_base, rid_base + length) send MSIs with
// DeviceIDs [msi_base, ...) to the MSI controller with phandle `controller`.
struct MsiMapEntry {
  uint32_t rid_base = 0;
  uint32_t controller = 0;
  uint32_t msi_base = 0;
  uint32_t length = 0;
};

// arm,smmu-v3.yaml: interrupt-names "eventq", "priq", "cmdq-sync", "gerror" (or "combined").
// Parsed by src/dt (dt::ParseIommu) from the first arm,smmu-v3 node.
struct SmmuInfo {
  bool present = false;
  int node = -1;  // libfdt offset of the node in PlatformInfo::dtb
  Region regs;
  uint32_t phandle = 0;
  bool dma_coherent = false;
  IrqSpec eventq;
  IrqSpec priq;
  IrqSpec cmdq_sync;
  IrqSpec gerror;
  IrqSpec combined;
};

// One iommu-map entry (pci-iommu.txt): requester IDs [rid_base, rid_base + length) map to
// StreamIDs [sid_base, ...) of the IOMMU with phandle `iommu_phandle`.
struct IommuMapEntry {
  uint32_t rid_base = 0;
  uint32_t iommu_phandle = 0;
  uint32_t sid_base = 0;
  uint32_t length = 0;
};

// A PCI address window from `ranges` (PCI Bus Binding to OF, 2.2.1.1: phys.hi ss field).
struct PciWindow {
  bool present = false;
  uint64_t pci_addr = 0;  // address on the PCI bus
  uint64_t cpu_addr = 0;  // where the CPU reaches it
  uint64_t size = 0;
  bool prefetchable = false;
};

struct PciHostInfo {
  bool present = false;
  int node = -1;  // libfdt offset of the host bridge node in PlatformInfo::dtb
  Region ecam;
  uint8_t bus_start = 0;
  uint8_t bus_end = 0;
  bool dma_coherent = false;
  PciWindow io;
  PciWindow mem32;
  PciWindow mem64;
  // iommu-map, read by src/dt (dt::ReadIommuMap, which checks every range: phandles resolve to
  // one-cell IOMMUs, rid-bases inside the mask); the ranges in devicetree order.
  static constexpr size_t kMaxIommuMap = 8;
  IommuMapEntry iommu_map[kMaxIommuMap];
  size_t iommu_map_count = 0;
  uint32_t iommu_map_mask = 0xffffffff;  // iommu-map-mask, all ones if absent (as Linux)
  // interrupt-map / interrupt-map-mask (DT spec 2.4.3): the INTx of each PCI function, see
  // PciHost::IntxIrq(). present = false if the node has none.
  dt::InterruptMap intx_map;
  // msi-map / msi-map-mask (pci-msi.txt), or msi-parent alone (DeviceID = requester ID); the
  // ranges in devicetree order. msi_map_count 0 and msi_parent 0: no MSI controller named.
  static constexpr size_t kMaxMsiMap = 8;
  MsiMapEntry msi_map[kMaxMsiMap];
  size_t msi_map_count = 0;
  uint32_t msi_map_mask = 0xffffffff;
  uint32_t msi_parent = 0;
};

struct PsciInfo {
  bool present = false;
  bool use_hvc = true;  // method = "hvc"; false: "smc"
};

struct PlatformInfo {
  static constexpr size_t kMaxMemory = 4;
  static constexpr size_t kMaxReserved = 8;

  const void* dtb = nullptr;
  size_t dtb_size = 0;
  const char* model = "";
  Region memory[kMaxMemory];
  size_t memory_count = 0;
  // /memreserve/ entries and /reserved-memory children: RAM nobody may allocate.
  Region reserved[kMaxReserved];
  size_t reserved_count = 0;
  UartInfo uart;
  GicInfo gic;
  SmmuInfo smmu;  // the first arm,smmu-v3 (also in iommus[])
  // Every available IOMMU node (arm,smmu-v3 and virtio,pci-iommu), in tree order
  // (dt::FindIommus): e.g. the virtio-iommu's phandle for PciHost::StreamId.
  static constexpr size_t kMaxIommus = 4;
  dt::IommuNode iommus[kMaxIommus];
  size_t iommu_count = 0;
  PciHostInfo pci;
  PsciInfo psci;
};

// Fills `out` from the flattened devicetree at `dtb`. Uses libfdt only (no writes to the DTB);
// the SMMU node, iommu-map and interrupt-map through src/dt (docs/devicetree.md).
// Requires: a valid DTB with /memory; the UART, GIC, SMMU and PCI host are looked up but may be
// absent. Errors: -EINVAL (no DTB, bad header or structure (dt::CheckBlob); a malformed
// arm,smmu-v3 node, iommu-map, msi-map (a controller phandle that resolves to no node, a zero
// length) or interrupt-map, logged with node and property), -ENOENT (no /memory), -ERANGE (more
// regions, iommu-map or msi-map ranges than the fixed arrays hold), -ENOMEM (an interrupt-map
// beyond dt::kMaxInterruptMapEntries), -ENOTSUP (a nested interrupt nexus). On error `out` may be
// partly filled.
Status ParseDeviceTree(const void* dtb, PlatformInfo* out);

// The DeviceID the GICv3 ITS (info.gic.its) sees for PCI requester ID `rid` (after any DMA
// alias): the host bridge's msi-map (pci-msi.txt: msi_base + ((rid & msi-map-mask) - rid_base),
// first matching range), or the RID itself with msi-parent alone. Errors: -ENOENT (no range
// holds it, or the host bridge names no MSI controller), -EINVAL (the controller it names is
// not the ITS: e.g. a GICv2m frame, or no ITS at all).
Result<uint32_t> MsiDeviceId(const PlatformInfo& info, uint16_t rid);

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PLATFORM_INFO_H_
