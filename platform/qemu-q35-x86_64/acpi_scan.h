// The platform's first look at ACPI: find the RSDP and list the tables the RSDT or XSDT points
// to (signature, address, length, checksum). The typed parser of the tables themselves (MCFG,
// DMAR) is src/acpi's (issue 14); this is what the board needs before it.
//
// Everything is read through PhysReader, so the same code runs on QEMU (identity map) and in a
// host test over tables dumped from QEMU (acpi_scan_test.cc, src/acpi/testdata/).

#ifndef DEVISO_PLATFORM_QEMU_Q35_X86_64_ACPI_SCAN_H_
#define DEVISO_PLATFORM_QEMU_Q35_X86_64_ACPI_SCAN_H_

#include <cstddef>
#include <cstdint>

#include "deviso/status.h"

namespace deviso::q35 {

// Physical memory, read-only. Map() returns a pointer to `len` readable bytes at physical
// address `pa`, or nullptr when any of them is not readable (not RAM, not mapped).
class PhysReader {
 public:
  virtual ~PhysReader() = default;
  virtual const uint8_t* Map(uint64_t pa, size_t len) const = 0;
};

// At most this many tables are listed; more entries in the RSDT/XSDT are counted in
// AcpiTables::not_listed.
inline constexpr size_t kMaxAcpiTables = 32;

struct AcpiTableInfo {
  char signature[5] = {};  // e.g. "DMAR", NUL-terminated
  uint64_t address = 0;
  uint32_t length = 0;  // the header's Length; 0 if the header was not readable
  uint8_t revision = 0;
  bool readable = false;     // the whole table (Length bytes) could be read
  bool checksum_ok = false;  // ACPI 6.5 5.2.6: the bytes of the table sum to 0 (mod 256)
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
// is the 16-bit word at 0x40E, which start.S saved: pass 0 if unknown), then the BIOS area
// 0xE0000-0xFFFFF, on 16-byte boundaries, for "RSD PTR " with a valid checksum over its first
// 20 bytes (and over Length bytes for revision 2 and later).
// Errors: -ENOENT no valid RSDP in either area.
Result<uint64_t> FindRsdp(const PhysReader& mem, uint32_t ebda_segment);

// Reads the RSDP at `rsdp_address` and the RSDT (revision 0, or an XSDT address of 0) or the
// XSDT it points to, and lists each table's header into `*out`. A table whose header cannot be
// read, or whose checksum fails, is listed as such (readable, checksum_ok), not skipped.
// Errors (nothing written to `*out`):
//   -EINVAL  null `out`; the RSDP's signature or checksum is wrong; the root table's signature,
//            Length (shorter than its header, or not a whole number of entries) or checksum is
//            wrong;
//   -ENOENT  the RSDP or the root table cannot be read.
Status ReadAcpiTables(const PhysReader& mem, uint64_t rsdp_address, AcpiTables* out);

// The table with this signature (4 characters), or nullptr.
const AcpiTableInfo* FindAcpiTable(const AcpiTables& tables, const char* signature);

}  // namespace deviso::q35

#endif  // DEVISO_PLATFORM_QEMU_Q35_X86_64_ACPI_SCAN_H_
