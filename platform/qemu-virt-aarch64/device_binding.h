// Zephyr's device_get_binding() (deviso/port/device.h) for the QEMU `virt` platform: named
// devices found through PCI enumeration, each bound to the board's IOMMU (the SMMUv3 or the
// virtio-iommu, whichever the devicetree describes: PlatformIommu) with the StreamIDs the
// devicetree's iommu-map gives its requester ID, never with a constant.
//
// An application (or a board file) registers what it expects, e.g. "DMA_0" = the first PCI
// function 1234:11e8 with the edu driver's probe; InitPciDevices() then finds each one on the
// enumerated bus, binds it through the devicetree module (dt::BindFromDevicetree, in
// deviso::Registry::Default(): deviso_ctx_alloc() then refuses any StreamID the devicetree
// does not give it), and runs the probe, which sets the struct device's api/data (the
// driver's). Only devices whose
// probe succeeded are returned by device_get_binding(), as Zephyr returns only ready devices.
// Bus mastering stays off: the application turns it on once the device's isolation context
// exists (DeviceSetBusMaster()), so the device cannot issue DMA before deviso governs it.
//
// Not thread-safe: registration and InitPciDevices() run once at start-up, lookups after.

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_DEVICE_BINDING_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_DEVICE_BINDING_H_

#include <cstddef>
#include <cstdint>

#include "deviso/port/device.h"
#include "deviso/status.h"
#include "iommu_platform.h"
#include "pci.h"
#include "platform_info.h"

namespace deviso::qemu_virt {

// Brings a found device's driver up: `fn` has its BARs assigned, `sid` is its StreamID (the
// devicetree's first for it; the device is already bound to the IOMMU with all of them). Sets
// dev.api/dev.data, or returns an error.
using PciProbe = Status (*)(struct device& dev, const PciFunction& fn, uint32_t sid, void* context);

struct PciDriverBinding {
  struct device* dev = nullptr;  // dev->name is the name device_get_binding() matches
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  unsigned instance = 0;  // the n-th function with these IDs in enumeration order (0: first)
  PciProbe probe = nullptr;
  void* context = nullptr;  // passed to probe
};

inline constexpr size_t kMaxDeviceBindings = 8;

// Registers `binding` (copied). Errors, with no change: -EINVAL (null dev, name or probe),
// -EEXIST (a binding of that name or that struct device exists), -ENOMEM (kMaxDeviceBindings).
Status RegisterPciDevice(const PciDriverBinding& binding);

// For every registered binding not ready yet: finds its function on `pci` (enumerated; must
// outlive the bindings), binds it to `iommu` with the StreamIDs the PCI host's iommu-map in
// info.dtb gives its requester ID (dt::BindFromDevicetree, as BindPciDevices(); all of them
// or none) and runs the probe. A binding whose function is absent, whose requester ID the
// iommu-map does not send to `iommu`, whose bind fails, or whose probe fails (it is unbound
// again) stays unready, with a console line saying why. Returns how many bindings are ready.
size_t InitPciDevices(const PlatformInfo& info, PciHost& pci, PlatformIommu& iommu);

// The StreamID of a ready device (the devicetree's first for it). Errors: -ENOENT (not a ready
// device of this module).
Result<uint32_t> DeviceStreamId(const struct device* dev);

// The PCI function behind a ready device. Errors: -ENOENT.
Result<const PciFunction*> DevicePciFunction(const struct device* dev);

// Sets or clears the ready device's Bus Master Enable. Errors: -ENOENT.
Status DeviceSetBusMaster(const struct device* dev, bool enable);

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_DEVICE_BINDING_H_
