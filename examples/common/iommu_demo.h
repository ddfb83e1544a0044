// The demos' IOMMU bring-up on QEMU `virt`, whichever IOMMU the devicetree describes.

#ifndef DEVISO_EXAMPLES_COMMON_IOMMU_DEMO_H_
#define DEVISO_EXAMPLES_COMMON_IOMMU_DEMO_H_

#include "deviso/port/os.h"
#include "deviso/status.h"
#include "dma_arena.h"
#include "iommu_platform.h"
#include "pci.h"
#include "platform_info.h"

namespace deviso::demo {

// Enumerates `pci` once, then brings up the IOMMU (qemu_virt::SetupIommu). Enumeration comes
// first: a virtio-iommu is itself a PCI function, and `pci` must not be enumerated again; it
// leaves every bus master off, so no device can DMA yet. Logs the failure and returns null if
// either step fails.
inline qemu_virt::PlatformIommu* EnumerateAndSetupIommu(const qemu_virt::PlatformInfo& info,
                                                        qemu_virt::DmaArena& arena,
                                                        qemu_virt::PciHost& pci) {
  if (const Status s = pci.Enumerate(); !s.ok()) {
    port::Log("PCI enumeration failed: %s\n", s.str());
    return nullptr;
  }
  Result<qemu_virt::PlatformIommu*> iommu = qemu_virt::SetupIommu(info, arena, pci);
  if (!iommu.ok()) {
    port::Log(
        "IOMMU setup failed: %s (run with -M virt,iommu=smmuv3, or -M virt -device "
        "virtio-iommu-pci)\n",
        iommu.status().str());
    return nullptr;
  }
  return *iommu;
}

}  // namespace deviso::demo

#endif  // DEVISO_EXAMPLES_COMMON_IOMMU_DEMO_H_
