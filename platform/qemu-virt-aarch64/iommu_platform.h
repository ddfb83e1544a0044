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

// The board's IOMMU: the unit, whichever backend it is, and what the board knows about it.
// Every service goes through IsolationUnit's lifecycle interface (include/deviso/backend.h),
// so there is one path for every backend and no per-backend wrapper.
class PlatformIommu final {
 public:
  // `own_table_page`: see own_table_page().
  PlatformIommu(IsolationUnit& unit, uint32_t phandle, uint64_t own_table_page)
      : unit_(unit), phandle_(phandle), own_table_page_(own_table_page) {}

  // "smmuv3" or "virtio-iommu" (the unit's caps().backend).
  const char* kind() const { return unit_.caps().backend; }
  IsolationUnit& unit() const { return unit_; }
  // The devicetree phandle of the IOMMU node: the one the PCI host's iommu-map names.
  uint32_t phandle() const { return phandle_; }

  // Prints one line describing the unit and what it offers (IsolationUnit::Describe).
  void Describe() const;
  // Handles events the unit's interrupt has not delivered yet (or, without an interrupt, all
  // of them), bounded (IsolationUnit::DrainEvents): faults reach their contexts' handlers
  // before this returns.
  void DrainEvents() { (void)unit_.DrainEvents(); }
  // Receives faults of streams that have no context. Errors: -ENOTSUP (built without fault
  // reports).
  Status SetUnroutedFaultHandler(deviso_fault_handler_t handler, void* user) {
    return unit_.SetUnroutedFaultHandler(handler, user);
  }
  // Prints the unit's counters (IsolationUnit::unit_stats).
  void PrintStats() const;

  // The unit's work so far, for benchmarks, in backend-neutral terms.
  using Counters = UnitStats;
  Counters counters() const { return unit_.unit_stats(); }

  // What a check can prove on this unit (UnitCaps, include/deviso/backend.h).
  bool caches_translations() const { return unit_.caps().caches_translations; }
  bool reports_fault_overflow() const { return unit_.caps().reports_fault_overflow; }
  bool reports_translation_fault_direction() const {
    return unit_.caps().reports_translation_fault_direction;
  }
  // A page of translation tables deviso keeps to itself on this unit (SMMUv3: the first
  // granule of the pool its contexts' tables come from; virtio-iommu, whose tables live in
  // the device: the CPU map's): deviso_map of it is refused with -EPERM.
  uint64_t own_table_page() const { return own_table_page_; }

 private:
  IsolationUnit& unit_;
  uint32_t phandle_;
  uint64_t own_table_page_;
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
