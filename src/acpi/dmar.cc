// DMAR checks (see dmar.h). Section numbers: Intel VT-d Architecture Specification, chapter 8.

#include "acpi/dmar.h"

#include <cstring>

#include "acpi/bytes.h"

namespace deviso::acpi {
namespace {

using internal::Le16;
using internal::Le64;

constexpr uint64_t kPage = 4096;

// 8.2: the size every structure of a type has at least (its fixed fields).
size_t MinSize(uint16_t type) {
  switch (static_cast<DmarType>(type)) {
    case DmarType::kDrhd:
      return Drhd::kMinSize;
    case DmarType::kRmrr:
      return Rmrr::kMinSize;
    case DmarType::kRhsa:  // 8.6: Type, Length, Reserved, Register Base (u64), Proximity Domain
      return 20;
    // 8.5 ATSR and 8.8 SATC: Type, Length, Flags, Reserved, Segment; 8.7 ANDD: Type, Length,
    // Reserved (3), ACPI Device Number, Object Name; 8.9 SIDP: Type, Length, Reserved, Segment.
    case DmarType::kAtsr:
    case DmarType::kAndd:
    case DmarType::kSatc:
    case DmarType::kSidp:
      return 8;
  }
  return 4;  // reserved: Type and Length, skipped (8.2)
}

// Where a structure type's device scopes begin, or 0 if it has none.
size_t ScopesOffset(uint16_t type) {
  switch (static_cast<DmarType>(type)) {
    case DmarType::kDrhd:
      return Drhd::kMinSize;
    case DmarType::kRmrr:
      return Rmrr::kMinSize;
    case DmarType::kAtsr:
    case DmarType::kSatc:
    case DmarType::kSidp:
      return 8;
    default:
      return 0;
  }
}

struct Checker {
  ParseError* error;

  Status Fail(size_t offset, const char* reason, Status status = Status::InvalidArgument()) const {
    if (error != nullptr) {
      error->reason = reason;
      std::memcpy(error->table, "DMAR", 5);
      error->offset = offset;
    }
    return status;
  }

  // 8.3.1: the scopes in `b` (offset `base` in the table) fill it exactly.
  Status Scopes(Bytes b, size_t base, uint16_t type, bool include_pci_all) const {
    size_t off = 0;
    while (off < b.size()) {
      const size_t at = base + off;
      if (b.size() - off < DeviceScope::kHeaderSize + 2) {
        return Fail(at, "device scope truncated (needs 8 bytes)");
      }
      const size_t length = b[off + 1];
      if (length < DeviceScope::kHeaderSize + 2) {
        return Fail(at + 1, "device scope Length below 8 (no path entry)");
      }
      if ((length - DeviceScope::kHeaderSize) % 2 != 0) {
        return Fail(at + 1, "device scope Length not 6 + 2n");
      }
      if (length > b.size() - off) {
        return Fail(at + 1, "device scope runs past its structure");
      }
      const uint8_t scope_type = b[off];
      const bool pci = scope_type == static_cast<uint8_t>(ScopeType::kPciEndpoint) ||
                       scope_type == static_cast<uint8_t>(ScopeType::kPciSubHierarchy);
      if (include_pci_all && pci) {
        return Fail(at, "PCI scope in an INCLUDE_PCI_ALL DRHD");
      }
      // 8.4: an RMRR reserves memory for devices that DMA (PCI functions, or ACPI namespace
      // devices as ANDD declares them); an I/O APIC or HPET there is a broken table.
      if (type == static_cast<uint16_t>(DmarType::kRmrr) &&
          (scope_type == static_cast<uint8_t>(ScopeType::kIoApic) ||
           scope_type == static_cast<uint8_t>(ScopeType::kHpet))) {
        return Fail(at, "RMRR scope is an I/O APIC or HPET");
      }
      for (size_t p = DeviceScope::kHeaderSize; p < length; p += 2) {
        if (b[off + p] > 31) return Fail(at + p, "device scope path device above 31");
        if (b[off + p + 1] > 7) return Fail(at + p + 1, "device scope path function above 7");
      }
      off += length;
    }
    return Status::Ok();
  }
};

}  // namespace

uint64_t Drhd::register_base() const { return Le64(b_, 8); }
uint64_t Rmrr::base() const { return Le64(b_, 8); }
uint64_t Rmrr::limit() const { return Le64(b_, 16); }

Result<Dmar> Dmar::Parse(const Table& table, ParseError* error) {
  const Checker check{error};
  if (!table.Is("DMAR")) {
    return check.Fail(0, "not a DMAR table");
  }
  const Bytes b = table.bytes();
  if (b.size() < kStructuresOffset) {
    return check.Fail(TableHeader::kSize, "shorter than the DMAR header (48 bytes)");
  }
  if (b[36] >= 64) {
    return check.Fail(36, "Host Address Width above 64 bits");
  }
  // DRHDs seen so far: segment and INCLUDE_PCI_ALL, for the ordering rule of 8.3.
  struct Unit {
    uint16_t segment;
    bool include_all;
  };
  Unit units[kMaxDrhd];
  size_t unit_count = 0;

  size_t off = kStructuresOffset;
  while (off < b.size()) {
    if (b.size() - off < 4) {
      return check.Fail(off, "remapping structure header truncated");
    }
    const uint16_t type = Le16(b, off);
    const size_t length = Le16(b, off + 2);
    if (length < MinSize(type)) {
      return check.Fail(off + 2, length == 0 ? "remapping structure of Length 0"
                                             : "remapping structure shorter than its type");
    }
    if (length > b.size() - off) {
      return check.Fail(off + 2, "remapping structure runs past the table");
    }
    const Bytes s = b.subspan(off, length);
    bool include_all = false;
    if (type == static_cast<uint16_t>(DmarType::kDrhd)) {
      const Drhd d(s);
      include_all = d.include_pci_all();
      if (d.register_base() == 0 || d.register_base() % kPage != 0) {
        return check.Fail(off + 8, "DRHD Register Base Address zero or not 4 KiB aligned");
      }
      if (unit_count == kMaxDrhd) {
        return check.Fail(off, "more DRHDs than kMaxDrhd", Status::OutOfRange());
      }
      for (size_t i = 0; i < unit_count; ++i) {
        if (units[i].include_all && units[i].segment == d.segment()) {
          return check.Fail(off, "DRHD after the INCLUDE_PCI_ALL DRHD of its segment");
        }
      }
      units[unit_count++] = Unit{d.segment(), include_all};
    } else if (type == static_cast<uint16_t>(DmarType::kRmrr)) {
      const Rmrr r(s);
      if (r.base() % kPage != 0 || r.limit() == UINT64_MAX || (r.limit() + 1) % kPage != 0) {
        return check.Fail(off + 8, "RMRR base or limit + 1 not 4 KiB aligned");
      }
      if (r.base() > r.limit()) {
        return check.Fail(off + 16, "RMRR limit below its base");
      }
    }
    if (const size_t scopes = ScopesOffset(type); scopes != 0) {
      DEVISO_TRY(check.Scopes(s.subspan(scopes), off + scopes, type, include_all));
    }
    off += length;
  }
  Dmar d;
  d.table_ = table;
  return d;
}

}  // namespace deviso::acpi
