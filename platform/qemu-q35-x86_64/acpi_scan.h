// The platform's use of ACPI: find the RSDP where a PC BIOS leaves it, and list the tables the
// RSDT or XSDT points to (signature, address, length, checksum), all through src/acpi's checked
// parser (deviso::acpi, docs/acpi.md). boot.cc then reads the MCFG (ECAM) and the DMAR (VT-d
// units) with the same parser.
//
// Everything is read through acpi::PhysicalMemory, so the same code runs on QEMU (identity map,
// boot.cc) and in a host test over the tables dumped from QEMU (acpi_scan_test.cc).

#ifndef DEVISO_PLATFORM_QEMU_Q35_X86_64_ACPI_SCAN_H_
#define DEVISO_PLATFORM_QEMU_Q35_X86_64_ACPI_SCAN_H_

#include <cstddef>
#include <cstdint>

#include "acpi/tables.h"
#include "deviso/status.h"

namespace deviso::q35 {

// At most this many tables are listed; more entries in the RSDT/XSDT are counted in
// AcpiTables::not_listed.
inline constexpr size_t kMaxAcpiTables = 32;

struct AcpiTableInfo {
  char signature[5] = {};  // e.g. "DMAR", NUL-terminated; "????" if the header is unreadable
  uint64_t address = 0;
  uint32_t length = 0;  // the header's Length; 0 if the header was not readable
  uint8_t revision = 0;
  bool readable = false;     // the whole table (Length bytes) could be read
  bool checksum_ok = false;  // acpi::Table::Check accepted it (Length, checksum: ACPI 6.5 5.2.6)
};

struct AcpiTables {
  uint64_t rsdp_address = 0;
  uint8_t rsdp_revision = 0;  // 0: ACPI 1.0 (RSDT only); 2 and later: XSDT
  char oem_id[7] = {};
  uint64_t root_address = 0;  // the RSDT or the XSDT
  bool xsdt = false;
  size_t count = 0;
  AcpiTableInfo tables[kMaxAcpiTables];
  size_t not_listed = 0;
};

// ACPI 6.5 5.2.5.1 (finding the RSDP on IA-PC systems): the first 1 KiB of the EBDA (its segment
// is the 16-bit word at 0x40E, which start.S saved; believed only if it puts the EBDA between
// 0x400 and 0xE0000), then the BIOS area 0xE0000-0xFFFFF, each with acpi::FindRsdp (16-byte
// boundaries, signature and checksums). Errors: -ENOENT no valid RSDP in either area.
Result<uint64_t> LocateRsdp(const acpi::PhysicalMemory& mem, uint32_t ebda_segment);

// Reads the RSDP at `rsdp_address` and the RSDT or XSDT it points to (acpi::RootTable::FromRsdp)
// and lists each entry's table into `*out`. A table whose header cannot be read, or which
// acpi::Table::Check refuses, is listed as such (readable, checksum_ok), not skipped.
// Errors (nothing written to `*out`): -EINVAL null `out`, or a malformed RSDP or root table;
// -ERANGE the RSDP or the root table cannot be read; `error` (optional) says what was refused.
Status ListAcpiTables(const acpi::PhysicalMemory& mem, uint64_t rsdp_address, AcpiTables* out,
                      acpi::ParseError* error = nullptr);

// The table with this signature (4 characters), or nullptr.
const AcpiTableInfo* FindAcpiTable(const AcpiTables& tables, const char* signature);

}  // namespace deviso::q35

#endif  // DEVISO_PLATFORM_QEMU_Q35_X86_64_ACPI_SCAN_H_
