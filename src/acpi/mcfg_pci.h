// From an MCFG allocation to what src/pci enumerates over: the host bridge's bus range and the
// ECAM accessor of its configuration space (PCI Firmware 3.2, 4.1.2; PCIe 4.0 7.2.2).

#ifndef DEVISO_SRC_ACPI_MCFG_PCI_H_
#define DEVISO_SRC_ACPI_MCFG_PCI_H_

#include <cstdint>

#include "acpi/mcfg.h"
#include "pci/pci.h"

namespace deviso::acpi {

// The host bridge of `a`'s bus range. ACPI gives its memory windows only in AML (_CRS), which
// deviso does not interpret: the resources firmware assigned are kept
// (pci::HostBridge::keep_firmware_resources) and bus addresses are CPU addresses, as on x86.
inline pci::HostBridge EcamHostBridge(const EcamAllocation& a) {
  pci::HostBridge host;
  host.bus_start = a.bus_start;
  host.bus_end = a.bus_end;
  host.keep_firmware_resources = true;
  return host;
}

// The ECAM accessor of `a`, whose configuration space the caller has mapped at virtual address
// `mapped` (the address of bus_start's space, a.region_base() physically; region_size() bytes,
// as device memory). With an identity map, `mapped` is a.region_base().
inline pci::Ecam EcamAccessor(const EcamAllocation& a, uintptr_t mapped) {
  return pci::Ecam(mapped, a.bus_start, a.bus_end);
}

}  // namespace deviso::acpi

#endif  // DEVISO_SRC_ACPI_MCFG_PCI_H_
