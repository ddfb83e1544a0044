// DMAR: the DMA Remapping Reporting table of Intel VT-d.
//
// Layouts: Intel Virtualization Technology for Directed I/O Architecture Specification (rev 4.x),
// chapter 8 "BIOS Considerations":
//   8.1  DMA Remapping Reporting Structure (the table: Host Address Width, Flags, then remapping
//        structures, each starting with Type (u16) and Length (u16));
//   8.2  Remapping Structure Types (0 DRHD, 1 RMRR, 2 ATSR, 3 RHSA, 4 ANDD, 5 SATC, 6 SIDP);
//   8.3  DMA Remapping Hardware Unit Definition (DRHD), 8.3.1 Device Scope Structure (and how a
//        scope's path is resolved through bridges), 8.3.2 Device Scope Example;
//   8.4  Reserved Memory Region Reporting (RMRR);
//   8.5  Root Port ATS Capability Reporting (ATSR), 8.6 Remapping Hardware Static Affinity
//        (RHSA), 8.7 ACPI Name-space Device Declaration (ANDD), 8.8 SoC Integrated Address
//        Translation Cache (SATC): checked for their lengths (and ATSR's and SATC's scopes), not
//        interpreted.
//
// Dmar::Parse() checks the whole table before returning: every structure inside the table and of
// at least its type's size, every device scope inside its structure with a whole number of path
// entries and valid device/function numbers, the ordering rule of INCLUDE_PCI_ALL. The walk
// moves forward by at least a structure's minimal size at each step, so no input can make it
// loop. After that the accessors cannot fail: they re-read the checked bytes (no copies, no
// heap; the table's memory must outlive the Dmar).

#ifndef DEVISO_SRC_ACPI_DMAR_H_
#define DEVISO_SRC_ACPI_DMAR_H_

#include <cstddef>
#include <cstdint>

#include "acpi/tables.h"
#include "deviso/status.h"

namespace deviso::acpi {

// 8.2 Remapping Structure Types.
enum class DmarType : uint16_t {
  kDrhd = 0,
  kRmrr = 1,
  kAtsr = 2,
  kRhsa = 3,
  kAndd = 4,
  kSatc = 5,
  kSidp = 6,
};

// 8.3.1 Table 8-3 (Device Scope Entry Type).
enum class ScopeType : uint8_t {
  kPciEndpoint = 1,
  kPciSubHierarchy = 2,  // a PCI-PCI bridge and every device below it
  kIoApic = 3,
  kHpet = 4,  // MSI-capable HPET
  kAcpiNamespaceDevice = 5,
};

// One hop of a device scope's path: a device and function on the current bus (8.3.1 "Path").
struct PathEntry {
  uint8_t device = 0;    // 0..31
  uint8_t function = 0;  // 0..7
};

// 8.3.1 Device Scope Structure, checked. The path starts at start_bus(); each entry but the last
// is a PCI-PCI bridge whose secondary bus holds the next entry.
class DeviceScope {
 public:
  static constexpr size_t kHeaderSize = 6;  // Type, Length, Flags, Reserved, Enum ID, Start Bus

  explicit DeviceScope(Bytes b) : b_(b) {}

  // The raw type (ScopeType for 1..5; other values are reserved and kept for the caller to skip).
  uint8_t raw_type() const { return b_[0]; }
  ScopeType type() const { return static_cast<ScopeType>(b_[0]); }
  uint8_t flags() const { return b_[2]; }
  // I/O APIC ID, HPET number or ACPI device number (types 3, 4, 5); 0 for PCI scopes.
  uint8_t enumeration_id() const { return b_[4]; }
  uint8_t start_bus() const { return b_[5]; }
  size_t path_length() const { return (b_.size() - kHeaderSize) / 2; }
  // Entry `i` (< path_length()).
  PathEntry path(size_t i) const {
    return PathEntry{b_[kHeaderSize + 2 * i], b_[kHeaderSize + 2 * i + 1]};
  }
  Bytes bytes() const { return b_; }

 private:
  Bytes b_;
};

// Forward walk over checked, length-prefixed records: a view over a run of structures whose
// lengths Dmar::Parse() has checked. `LengthAt` gives a record's length; `Keep` filters.
template <typename Record, size_t (*LengthAt)(Bytes), bool (*Keep)(Bytes)>
class RecordRange {
 public:
  class Iterator {
   public:
    // A forward iterator for range-for (no iterator_category: <iterator> is not freestanding).
    using value_type = Record;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = Record;

    Iterator() = default;
    explicit Iterator(Bytes rest) : rest_(rest) { SkipFiltered(); }
    Record operator*() const { return Record(rest_.first(LengthAt(rest_))); }
    Iterator& operator++() {
      rest_ = rest_.subspan(LengthAt(rest_));
      SkipFiltered();
      return *this;
    }
    Iterator operator++(int) {
      Iterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const Iterator& o) const { return rest_.size() == o.rest_.size(); }

   private:
    void SkipFiltered() {
      while (!rest_.empty() && !Keep(rest_)) rest_ = rest_.subspan(LengthAt(rest_));
    }
    Bytes rest_;
  };

  RecordRange() = default;
  explicit RecordRange(Bytes b) : b_(b) {}
  Iterator begin() const { return Iterator(b_); }
  Iterator end() const { return Iterator(b_.last(0)); }
  size_t size() const {
    size_t n = 0;
    for (auto it = begin(); it != end(); ++it) ++n;
    return n;
  }
  bool empty() const { return begin() == end(); }

 private:
  Bytes b_;
};

namespace internal {
inline size_t ScopeLength(Bytes b) { return b[1]; }
inline size_t StructureLength(Bytes b) { return static_cast<size_t>(b[2] | (b[3] << 8)); }
inline bool KeepAll(Bytes /*b*/) { return true; }
template <DmarType kType>
bool IsType(Bytes b) {
  return static_cast<uint16_t>(b[0] | (b[1] << 8)) == static_cast<uint16_t>(kType);
}
}  // namespace internal

// The device scopes of one structure, in table order.
using ScopeList = RecordRange<DeviceScope, internal::ScopeLength, internal::KeepAll>;

// One remapping structure of any type (8.2), checked for its length.
class DmarStructure {
 public:
  explicit DmarStructure(Bytes b) : b_(b) {}
  uint16_t raw_type() const { return static_cast<uint16_t>(b_[0] | (b_[1] << 8)); }
  Bytes bytes() const { return b_; }

 private:
  Bytes b_;
};

// 8.3 DRHD: one remapping hardware unit and the devices under it.
class Drhd {
 public:
  static constexpr size_t kMinSize = 16;  // Type, Length, Flags, Size, Segment, Register Base
  static constexpr uint8_t kIncludePciAll = 1U << 0;

  explicit Drhd(Bytes b) : b_(b) {}

  uint8_t flags() const { return b_[4]; }
  // INCLUDE_PCI_ALL: every PCI device of the segment not in another DRHD's scope is under this
  // unit; its own scopes then list only I/O APICs, HPETs and ACPI namespace devices.
  bool include_pci_all() const { return (flags() & kIncludePciAll) != 0; }
  // The register set: 2^Size[3:0] 4 KiB pages at register_base().
  uint64_t register_size() const { return uint64_t{4096} << (b_[5] & 0xf); }
  uint16_t segment() const { return static_cast<uint16_t>(b_[6] | (b_[7] << 8)); }
  uint64_t register_base() const;
  ScopeList scopes() const { return ScopeList(b_.subspan(kMinSize)); }
  Bytes bytes() const { return b_; }

 private:
  Bytes b_;
};

// 8.4 RMRR: memory a device keeps using (e.g. for legacy USB); it must stay identity-mapped for
// the devices in its scope.
class Rmrr {
 public:
  static constexpr size_t kMinSize = 24;  // Type, Length, Reserved, Segment, Base, Limit

  explicit Rmrr(Bytes b) : b_(b) {}

  uint16_t segment() const { return static_cast<uint16_t>(b_[6] | (b_[7] << 8)); }
  uint64_t base() const;
  uint64_t limit() const;  // the last byte (inclusive); base() and limit() + 1 are 4 KiB aligned
  ScopeList scopes() const { return ScopeList(b_.subspan(kMinSize)); }
  Bytes bytes() const { return b_; }

 private:
  Bytes b_;
};

using DrhdList = RecordRange<Drhd, internal::StructureLength, internal::IsType<DmarType::kDrhd>>;
using RmrrList = RecordRange<Rmrr, internal::StructureLength, internal::IsType<DmarType::kRmrr>>;
using StructureList = RecordRange<DmarStructure, internal::StructureLength, internal::KeepAll>;

class Dmar {
 public:
  static constexpr size_t kStructuresOffset = 48;  // header (36), HAW, Flags, 10 reserved
  // 8.1 Flags.
  static constexpr uint8_t kIntrRemap = 1U << 0;
  static constexpr uint8_t kX2ApicOptOut = 1U << 1;
  static constexpr uint8_t kDmaCtrlPlatformOptIn = 1U << 2;
  // More DRHDs than any platform has; bounds the INCLUDE_PCI_ALL ordering check.
  static constexpr size_t kMaxDrhd = 64;

  Dmar() = default;

  // Checks `table` (signature DMAR, already checksummed by Table::Check) completely:
  //  - the table at least 48 bytes, Host Address Width + 1 at most 64 bits;
  //  - every structure: a whole 4-byte Type/Length header, Length >= its type's minimum (DRHD
  //    16, RMRR 24, ATSR 8, RHSA 20, ANDD 8, SATC 8, SIDP 8, reserved types 4), inside the table
  //    (unknown types are skipped by their Length, 8.2);
  //  - DRHD: Register Base Address non-zero and 4 KiB aligned; at most kMaxDrhd; an
  //    INCLUDE_PCI_ALL DRHD is the last DRHD of its segment and has no PCI endpoint or
  //    sub-hierarchy scope (8.3);
  //  - RMRR: base and limit + 1 4 KiB aligned, base <= limit; no I/O APIC or HPET scope (8.4);
  //  - device scopes (DRHD, RMRR, ATSR, SATC): Length >= 8 (one path entry), 6 + 2n, inside the
  //    structure; path devices <= 31 and functions <= 7.
  // Errors: -EINVAL (any of the above), -ERANGE (more than kMaxDrhd DRHDs), with `error` filled.
  // Nothing is returned on error.
  static Result<Dmar> Parse(const Table& table, ParseError* error = nullptr);

  // Host Address Width: the maximum DMA physical address width in bits (the field is N - 1).
  unsigned host_address_width() const { return unsigned{table_.bytes()[36]} + 1; }
  uint8_t flags() const { return table_.bytes()[37]; }
  bool intr_remap() const { return (flags() & kIntrRemap) != 0; }

  const Table& table() const { return table_; }
  DrhdList drhds() const { return DrhdList(structures_bytes()); }
  RmrrList rmrrs() const { return RmrrList(structures_bytes()); }
  // Every remapping structure, of every type, in table order.
  StructureList structures() const { return StructureList(structures_bytes()); }

 private:
  Bytes structures_bytes() const { return table_.bytes().subspan(kStructuresOffset); }
  Table table_;
};

}  // namespace deviso::acpi

#endif  // DEVISO_SRC_ACPI_DMAR_H_
