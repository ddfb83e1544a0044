// Binding enumerated PCI functions to their VT-d remapping unit (DRHD) and source-id from a
// parsed DMAR: the x86 counterpart of the devicetree's iommu-map.
//
// Intel VT-d Architecture Specification, chapter 8:
//   8.3   a DRHD with INCLUDE_PCI_ALL covers every PCI function of its segment that no other
//         DRHD of the segment lists;
//   8.3.1 a device scope names a function by a path from its Start Bus Number: each entry but
//         the last is a PCI-PCI bridge whose secondary bus holds the next one; a PCI
//         sub-hierarchy scope names a bridge, and covers it and every function below it;
//   3.4.1 (Source Identifier) the source-id of a request is its requester ID (bus:dev.fn);
//         devices behind a PCIe-to-PCI bridge or a conventional PCI bridge are seen with the
//         bridge's alias (pci::Function::dma_alias), which is what a context entry is for.
//
// Scopes are resolved through the enumerated topology (the secondary bus numbers enumeration
// kept or assigned, pci::Topology::BridgeAbove), not by reading configuration space again. A
// scope whose path does not resolve (a bridge on it is absent: an empty hot-plug slot) names
// nothing and is skipped.

#ifndef DEVISO_SRC_ACPI_DMAR_PCI_H_
#define DEVISO_SRC_ACPI_DMAR_PCI_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "acpi/dmar.h"
#include "deviso/status.h"
#include "pci/pci.h"

namespace deviso::acpi {

// How a function was found under its DRHD.
enum class DmarMatch : uint8_t {
  kEndpoint,       // a PCI endpoint scope names it
  kSubHierarchy,   // it is, or is below, the bridge of a PCI sub-hierarchy scope
  kIncludePciAll,  // no scope names it; its segment's INCLUDE_PCI_ALL DRHD takes it
};

// Where one PCI function's DMA is remapped.
struct PciBinding {
  pci::Bdf bdf;                // the function
  uint16_t segment = 0;        // its PCI segment group
  size_t drhd_index = 0;       // its DRHD's position among dmar.drhds()
  uint64_t register_base = 0;  // that DRHD's register set
  // The source-id its requests carry (VT-d 3.4.1): its requester ID, or the alias of a
  // PCIe-to-PCI / conventional bridge above it; the context entry to program.
  pci::Bdf source_id;
  DmarMatch match = DmarMatch::kEndpoint;
};

// The function a PCI scope's path names (8.3.1): the path's first entry on the scope's Start Bus,
// each later entry on the secondary bus of the enumerated bridge the previous entry names.
// Errors: -ENOENT (an entry before the last is not an enumerated PCI-PCI bridge: the path leads
// nowhere), -EINVAL (not a PCI endpoint or sub-hierarchy scope).
Result<pci::Bdf> ResolveScope(const DeviceScope& scope, const pci::Topology& topology);

// The DRHD and source-id of the enumerated function `bdf` in segment `segment`. The most
// specific claim wins: a PCI endpoint scope naming `bdf`, else the deepest PCI sub-hierarchy
// scope whose bridge is `bdf` or above it, else the segment's INCLUDE_PCI_ALL DRHD.
// Errors: -ENOENT (`bdf` is not an enumerated function, or no DRHD of the segment covers it:
// its DMA is not remapped, so it must never get bus mastering), -EINVAL (two DRHDs claim it
// equally: an endpoint scope of it in both, or sub-hierarchy scopes of one bridge in both).
Result<PciBinding> BindPciFunction(const Dmar& dmar, const pci::Topology& topology,
                                   uint16_t segment, const pci::Bdf& bdf);

// BindPciFunction() for every enumerated function, in the topology's order, into `out`. Returns
// the number bound; functions no DRHD covers are left out (their count is in `*unbound` if
// given). Errors: -ERANGE (`out` has fewer than function_count() entries; nothing written),
// -EINVAL (a function claimed by two DRHDs, see above; `out` may be partly written).
Result<size_t> BindPciFunctions(const Dmar& dmar, const pci::Topology& topology, uint16_t segment,
                                std::span<PciBinding> out, size_t* unbound = nullptr);

// True if the RMRR `rmrr` applies to the enumerated function `bdf` of `segment`: one of its
// scopes names it (endpoint) or a bridge above it (sub-hierarchy). Such a function must keep
// [rmrr.base(), rmrr.limit()] identity-mapped (8.4).
bool RmrrApplies(const Rmrr& rmrr, const pci::Topology& topology, uint16_t segment,
                 const pci::Bdf& bdf);

}  // namespace deviso::acpi

#endif  // DEVISO_SRC_ACPI_DMAR_PCI_H_
