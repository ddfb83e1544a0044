// The IOMMU that serves the board's PCI devices, whichever the devicetree describes: the
// SMMUv3 of `-M virt,iommu=smmuv3` or the virtio-iommu of `-M virt -device virtio-iommu-pci`.
// An application asks for "the IOMMU" and gets the unit (registered with
// deviso::Registry::Default()), the phandle the PCI host's iommu-map names, and the few
// backend-specific services a demo needs (event draining, reports for streams without a
// context, statistics); everything else goes through deviso's backend-neutral API.

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_IOMMU_PLATFORM_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_IOMMU_PLATFORM_H_

#include <cstdint>
#include <span>

#include "deviso/backend.h"
#include "deviso/deviso.h"
#include "deviso/status.h"
#include "dma_arena.h"
#include "dt/bind.h"
#include "pci.h"
#include "platform_info.h"

namespace deviso::qemu_virt {

class PlatformIommu {
 public:
  // "smmuv3" or "virtio-iommu" (the unit's caps().backend).
  const char* kind() const { return unit().caps().backend; }
  virtual IsolationUnit& unit() const = 0;
  // The devicetree phandle of the IOMMU node: the one the PCI host's iommu-map names.
  virtual uint32_t phandle() const = 0;

  // Prints one line describing the unit and what it offers.
  virtual void Describe() const = 0;
  // Handles events the unit's interrupt has not delivered yet (or, without an interrupt, all
  // of them): faults reach their contexts' handlers before this returns.
  virtual void DrainEvents() = 0;
  // Receives faults of streams that have no context. Errors: -ENOTSUP (built without fault
  // reports).
  virtual Status SetUnroutedFaultHandler(deviso_fault_handler_t handler, void* user) = 0;
  // Prints the unit's counters (commands or requests, events, overflows).
  virtual void PrintStats() const = 0;

  // The unit's work so far, for benchmarks, in backend-neutral terms.
  struct Counters {
    uint64_t commands = 0;       // SMMUv3: commands queued; virtio-iommu: requests completed
    uint64_t syncs = 0;          // SMMUv3: CMD_SYNCs; virtio-iommu: request notifications
    uint64_t invalidations = 0;  // TLB invalidation commands (0 without a translation cache)
    uint64_t events = 0;         // fault records taken from the event queue
  };
  virtual Counters counters() const = 0;

  // What a check can prove on this unit. Whether it caches translations, so that a missing
  // invalidation after an unmap would let a DMA through a stale entry (false on QEMU's
  // virtio-iommu: it translates every access afresh).
  virtual bool caches_translations() const = 0;
  // Whether an overflow of its fault queue is reported (false on QEMU 7.2's virtio-iommu:
  // events beyond the queue are dropped silently).
  virtual bool reports_fault_overflow() const = 0;
  // Whether a translation fault (nothing mapped) says which way the access went (false on
  // QEMU 7.2's virtio-iommu: its MAPPING faults for unmapped addresses carry only
  // "address valid"; its permission faults do say READ or WRITE).
  virtual bool reports_translation_fault_direction() const = 0;
  // A page of translation tables deviso keeps to itself on this unit (SMMUv3: the first
  // granule of the pool its contexts' tables come from; virtio-iommu, whose tables live in
  // the device: the CPU map's): deviso_map of it is refused with -EPERM.
  virtual uint64_t own_table_page() const = 0;

 protected:
  ~PlatformIommu() = default;
};

// Brings up the IOMMU the PCI host's iommu-map points at (every stream blocked before this
// returns) and registers it with deviso::Registry::Default(). `pci` must have been enumerated
// (PciHost::Enumerate) and must not be enumerated again: a virtio-iommu is itself a PCI
// function, and enumeration would clear its Bus Master Enable. The unit lives in static
// storage; calling this twice gives -EEXIST. Errors: -ENOENT (the devicetree describes no
// IOMMU deviso serves), and those of the backend's probe and initialisation.
Result<PlatformIommu*> SetupIommu(const PlatformInfo& info, DmaArena& arena, PciHost& pci);

// A PCI function and the OS device that drives it. `bdf` is the requester ID its DMA carries
// at the IOMMU: PciFunction::dma_alias (its own ID, or a bridge's alias behind a conventional
// PCI bus: functions sharing an alias share the StreamID and cannot be told apart).
struct PciDeviceBinding {
  Bdf bdf;
  const device* dev = nullptr;
};

// Binds each device to `iommu` with exactly the StreamIDs the PCI host's iommu-map gives its
// requester ID (dt::BindFromDevicetree: every device resolved and checked first, nothing bound
// on any error), and writes what each resolved to `out[i]` (out.size() >= devices.size()).
// deviso_ctx_alloc() then refuses any other StreamID for that device. Errors: -EINVAL (no PCI
// host in the devicetree, out too small), and those of dt::BindFromDevicetree (e.g. -ENOENT: a
// requester ID outside the iommu-map, whose DMA the IOMMU does not see).
Status BindPciDevices(const PlatformInfo& info, PlatformIommu& iommu,
                      std::span<const PciDeviceBinding> devices, std::span<dt::DeviceStreams> out);

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_IOMMU_PLATFORM_H_
