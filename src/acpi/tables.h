// ACPI system description tables: the RSDP, the RSDT/XSDT and lookup of a table by signature,
// each checked (signature, length, checksum) before anything in it is used.
//
// Layouts: ACPI Specification 6.5, 5.2.5 (Root System Description Pointer), 5.2.6 (System
// Description Table Header), 5.2.7 (RSDT), 5.2.8 (XSDT). All fields are little-endian and may be
// unaligned: every read goes through byte accessors, never through a cast struct.
//
// No heap and no copies: a Table is a span over the caller's memory (on bare metal the firmware's
// tables themselves, on the host a test's buffer). The parsers either return a fully checked
// object or an error and nothing else; an optional ParseError says what was refused and where.

#ifndef DEVISO_SRC_ACPI_TABLES_H_
#define DEVISO_SRC_ACPI_TABLES_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "deviso/status.h"

namespace deviso::acpi {

using Bytes = std::span<const uint8_t>;

// What a parser refused and where (for a console line and for tests). Written only when a parser
// returns an error; `reason` is a static string.
struct ParseError {
  const char* reason = "";
  char table[5] = {};  // signature of the table being parsed ("RSD " for the RSDP), NUL-ended
  size_t offset = 0;   // byte offset inside that table of the field or structure refused
};

// Reaches physical memory for the parser: the seam between the tables' physical addresses and
// what the CPU can read. Bare metal with an identity map implements it with a bounds check; a
// host test with buffers at the addresses the firmware used.
class PhysicalMemory {
 public:
  // The `length` bytes at physical address `paddr`, all of them readable for as long as the
  // parsed objects are used; an empty span if any of them is not reachable.
  virtual Bytes Map(uint64_t paddr, size_t length) const = 0;

 protected:
  ~PhysicalMemory() = default;
};

// ACPI 6.5 5.2.5.3: Root System Description Pointer.
struct Rsdp {
  static constexpr size_t kV1Length = 20;  // ACPI 1.0 structure, checksummed on its own
  static constexpr size_t kV2Length = 36;  // revision >= 2: Length, XsdtAddress, extended checksum

  uint8_t revision = 0;  // 0: ACPI 1.0 (RSDT only); 2 and later: the XSDT may be present
  char oem_id[7] = {};   // NUL-ended
  uint32_t rsdt_address = 0;
  uint64_t xsdt_address = 0;  // 0 for revision < 2
  uint32_t length = kV1Length;
};

// Parses and checks an RSDP at the start of `bytes`: signature "RSD PTR ", the checksum of the
// first 20 bytes, and for revision >= 2 the Length field (36 .. bytes.size()) and the extended
// checksum over Length bytes. Errors: -EINVAL (too short, bad signature, bad checksum, bad
// Length), with `error` filled.
Result<Rsdp> ParseRsdp(Bytes bytes, ParseError* error = nullptr);

// Looks for a valid RSDP in `region` (which starts at physical address `base`) on 16-byte
// boundaries, as the BIOS area scan of ACPI 6.5 5.2.5.1 (0xE0000-0xFFFFF, and the first KiB of
// the EBDA). Returns the physical address of the first candidate whose signature and checksums
// are valid. Errors: -ENOENT (none).
Result<uint64_t> FindRsdp(Bytes region, uint64_t base);

// ACPI 6.5 5.2.6: System Description Table Header, decoded.
struct TableHeader {
  static constexpr size_t kSize = 36;

  char signature[5] = {};  // NUL-ended
  uint32_t length = 0;     // of the whole table, header included
  uint8_t revision = 0;
  char oem_id[7] = {};
  char oem_table_id[9] = {};
  uint32_t oem_revision = 0;
  uint32_t creator_id = 0;
  uint32_t creator_revision = 0;
};

// A table whose header, length and checksum were checked: its bytes are exactly Length long.
class Table {
 public:
  Table() = default;

  // Checks `bytes` as one table: at least a header, Length in [36, bytes.size()], the sum of its
  // Length bytes 0 (5.2.6 Checksum), and, when `signature` is given (4 characters), the
  // signature. The table is the first Length bytes (trailing bytes are not part of it).
  // Errors: -EINVAL (too short, Length out of range, bad checksum, other signature), with
  // `error` filled.
  static Result<Table> Check(Bytes bytes, const char* signature = nullptr,
                             ParseError* error = nullptr);

  const TableHeader& header() const { return header_; }
  // The whole table, header included.
  Bytes bytes() const { return bytes_; }
  // What follows the header.
  Bytes body() const { return bytes_.subspan(TableHeader::kSize); }
  // True if the signature is `signature` (4 characters).
  bool Is(const char* signature) const;

 private:
  TableHeader header_;
  Bytes bytes_;
};

// The RSDT (32-bit entries) or XSDT (64-bit entries) and the tables it lists.
class RootTable {
 public:
  RootTable() = default;

  // Reads the RSDP at `rsdp_address` through `memory` and the root table it points to: the XSDT
  // when the revision is 2 or later and XsdtAddress is not 0, otherwise the RSDT. Checks both
  // as above and the entry area (a whole number of 4- or 8-byte entries). `memory` must outlive
  // the result. Errors: -EINVAL (a malformed RSDP or root table, a root address of 0), -ERANGE
  // (`memory` cannot reach the RSDP or the root table), with `error` filled.
  static Result<RootTable> FromRsdp(const PhysicalMemory& memory, uint64_t rsdp_address,
                                    ParseError* error = nullptr);
  // The same with the root table at `address` already known, `xsdt` saying which kind it is.
  static Result<RootTable> FromAddress(const PhysicalMemory& memory, uint64_t address, bool xsdt,
                                       ParseError* error = nullptr);

  bool is_xsdt() const { return entry_size_ == 8; }
  const Table& table() const { return table_; }
  size_t entry_count() const;
  // The physical address in entry `i` (< entry_count()).
  uint64_t entry(size_t i) const;

  // The `instance`-th table (0: the first) listed with `signature` (4 characters), checked as
  // Table::Check does. Only the headers of the tables before it are read (a broken table of
  // another signature does not hide this one). Errors: -ENOENT (no such table), -EINVAL (an
  // entry of 0; the table found is malformed), -ERANGE (`memory` cannot reach an entry's header
  // or the table found), with `error` filled.
  Result<Table> Find(const char* signature, size_t instance = 0, ParseError* error = nullptr) const;

 private:
  const PhysicalMemory* memory_ = nullptr;
  Table table_;
  size_t entry_size_ = 4;
};

}  // namespace deviso::acpi

#endif  // DEVISO_SRC_ACPI_TABLES_H_
