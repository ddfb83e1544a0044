// The virtio-iommu of QEMU `virt` (-M virt -device virtio-iommu-pci), brought up for deviso:
// found by PCI enumeration (1af4:1057), its BAR mapped by the platform's MMU setup, its
// virtqueues in the DMA arena, bypass cleared before Init returns, the unit registered with
// deviso::Registry::Default(). Events are polled (Enumerate leaves INTx disabled and QEMU gives
// the device no MSI-X): call VirtioIommuPlatform::unit->HandleEvents().

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_VIRTIO_IOMMU_PLATFORM_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_VIRTIO_IOMMU_PLATFORM_H_

#include <cstdint>

#include "core/dma_memory.h"
#include "dma_arena.h"
#include "pci.h"
#include "platform_info.h"
#include "virtio_iommu/virtio_iommu.h"

namespace deviso::qemu_virt {

struct VirtioIommuPlatform {
  virtio_iommu::VirtioIommu* unit = nullptr;
  Bdf bdf;               // the IOMMU's own PCI function
  uint32_t phandle = 0;  // the IOMMU the PCI host's iommu-map names (#iommu-cells = 1)
};

// Brings up the virtio-iommu among the functions `pci` enumerated: turns on its Bus Master
// Enable (it DMAs its own virtqueues; its requester ID is outside the iommu-map, so nothing
// translates it), probes and initialises it with every endpoint blocked, and registers it.
// A later PciHost::Enumerate() clears Bus Master Enable of every function, this one included:
// call EnableBusMaster(bdf) again after it, or enumerate once and pass that PciHost here.
// The unit lives in static storage; a second call gives -EEXIST.
// Errors: -ENOENT (no 1af4:1057 function, or no iommu-map entry for a virtio-iommu), -ENOTSUP
// (BAR4 not assigned), and those of VirtioIommu::Probe/Init and Registry::RegisterUnit.
Result<VirtioIommuPlatform> SetupVirtioIommu(const PlatformInfo& info, DmaArena& arena,
                                             PciHost& pci);

// As above, enumerating the PCI bus with a PciHost of its own (kept in static storage).
Result<VirtioIommuPlatform> SetupVirtioIommu(const PlatformInfo& info, DmaArena& arena);

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_VIRTIO_IOMMU_PLATFORM_H_
