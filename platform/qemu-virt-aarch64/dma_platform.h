// deviso's DMA pool and DMA-driver hook (src/dma) on the QEMU `virt` board: the device-address
// windows a device's DMA must keep out of, from the devicetree and the IOMMU, and the board's
// cache maintenance for devices that are not cache-coherent.

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_DMA_PLATFORM_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_DMA_PLATFORM_H_

#include <cstdint>

#include "deviso/backend.h"
#include "deviso/registry.h"
#include "deviso/status.h"
#include "dma/device_binding.h"
#include "dma/iova_allocator.h"
#include "platform_info.h"

namespace deviso::qemu_virt {

// Adds to `out` the windows a PCI device's DMA addresses must avoid: the PCI host bridge's
// memory windows as the bus sees them (`ranges`: a DMA there may be routed to a peer's
// BAR and never reach the IOMMU), and every reserved region `unit` reports for `sid` (e.g. the
// virtio-iommu's MSI window). Errors: those of ReservedWindows::Add/AddFromUnit (-ENOMEM: too
// many windows); `out` may then hold some of them.
Status AddPciReservedWindows(const PlatformInfo& info, const IsolationUnit& unit, uint32_t sid,
                             dma::ReservedWindows& out);

// The board's cache maintenance (DC CVAC / DC IVAC loops by physical address, which the
// identity map makes the CPU's address) for dma::DeviceBinding::cache.
dma::CacheOps BoardCacheOps();

// The DMA binding of a PCI device's `context` (StreamID `sid`) for the hook and the pools:
// identity device addresses, kept out of `windows` (filled here by AddPciReservedWindows; it
// must outlive the binding's users), coherent as the PCI host's `dma-coherent` says, and the
// board's cache maintenance otherwise. Errors: AddPciReservedWindows'.
Result<dma::DeviceBinding> PciIdentityBinding(const PlatformInfo& info, const Context& context,
                                              uint32_t sid, dma::ReservedWindows& windows);

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_DMA_PLATFORM_H_
