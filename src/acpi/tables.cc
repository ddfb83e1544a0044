// RSDP, RSDT/XSDT and table lookup (see tables.h). Section numbers: ACPI Specification 6.5.

#include "acpi/tables.h"

#include <cstring>

#include "acpi/bytes.h"

namespace deviso::acpi {
namespace {

using internal::CopyChars;
using internal::Le32;
using internal::Le64;
using internal::Le8;
using internal::Sum8;

// 5.2.5.3 RSDP field offsets.
constexpr size_t kRsdpChecksum = 8;
constexpr size_t kRsdpOemId = 9;
constexpr size_t kRsdpRevision = 15;
constexpr size_t kRsdpRsdtAddress = 16;
constexpr size_t kRsdpLength = 20;
constexpr size_t kRsdpXsdtAddress = 24;
constexpr char kRsdpSignature[] = "RSD PTR ";

// 5.2.6 header field offsets.
constexpr size_t kHdrLength = 4;
constexpr size_t kHdrRevision = 8;
constexpr size_t kHdrOemId = 10;
constexpr size_t kHdrOemTableId = 16;
constexpr size_t kHdrOemRevision = 24;
constexpr size_t kHdrCreatorId = 28;
constexpr size_t kHdrCreatorRevision = 32;

Status Fail(ParseError* error, const char* table, size_t offset, const char* reason,
            Status status = Status::InvalidArgument()) {
  if (error != nullptr) {
    error->reason = reason;
    std::memset(error->table, 0, sizeof(error->table));
    if (table != nullptr) std::memcpy(error->table, table, 4);
    error->offset = offset;
  }
  return status;
}

bool SignatureIs(Bytes b, const char* signature, size_t n) {
  return b.size() >= n && std::memcmp(b.data(), signature, n) == 0;
}

}  // namespace

Result<Rsdp> ParseRsdp(Bytes bytes, ParseError* error) {
  if (bytes.size() < Rsdp::kV1Length) {
    return Fail(error, "RSD ", 0, "RSDP shorter than 20 bytes");
  }
  if (!SignatureIs(bytes, kRsdpSignature, 8)) {
    return Fail(error, "RSD ", 0, "RSDP signature is not \"RSD PTR \"");
  }
  // 5.2.5.3: Checksum covers the first 20 bytes (the ACPI 1.0 structure).
  if (Sum8(bytes.first(Rsdp::kV1Length)) != 0) {
    return Fail(error, "RSD ", kRsdpChecksum, "RSDP checksum (first 20 bytes) does not sum to 0");
  }
  Rsdp r;
  r.revision = Le8(bytes, kRsdpRevision);
  CopyChars(bytes, kRsdpOemId, 6, r.oem_id);
  r.rsdt_address = Le32(bytes, kRsdpRsdtAddress);
  if (r.revision >= 2) {
    if (bytes.size() < Rsdp::kV2Length) {
      return Fail(error, "RSD ", kRsdpLength, "RSDP revision >= 2 shorter than 36 bytes");
    }
    const uint32_t length = Le32(bytes, kRsdpLength);
    if (length < Rsdp::kV2Length || length > bytes.size()) {
      return Fail(error, "RSD ", kRsdpLength, "RSDP Length out of range");
    }
    // Extended Checksum: the entire structure, Length bytes.
    if (Sum8(bytes.first(length)) != 0) {
      return Fail(error, "RSD ", 32, "RSDP extended checksum does not sum to 0");
    }
    r.length = length;
    r.xsdt_address = Le64(bytes, kRsdpXsdtAddress);
  }
  return r;
}

Result<uint64_t> FindRsdp(Bytes region, uint64_t base) {
  // 5.2.5.1: the RSDP is on a 16-byte boundary. `base` need not be: align the offsets.
  const size_t first = static_cast<size_t>((16 - (base & 15)) & 15);
  for (size_t off = first; off + Rsdp::kV1Length <= region.size(); off += 16) {
    if (ParseRsdp(region.subspan(off)).ok()) {
      return base + off;
    }
  }
  return Status::NotFound();
}

Result<Table> Table::Check(Bytes bytes, const char* signature, ParseError* error) {
  const char* sig_for_error = signature != nullptr ? signature : "????";
  if (bytes.size() < TableHeader::kSize) {
    return Fail(error, sig_for_error, 0, "shorter than a table header (36 bytes)");
  }
  const char* found = reinterpret_cast<const char*>(bytes.data());
  if (signature != nullptr && std::memcmp(found, signature, 4) != 0) {
    return Fail(error, sig_for_error, 0, "signature differs");
  }
  const uint32_t length = Le32(bytes, kHdrLength);
  if (length < TableHeader::kSize) {
    return Fail(error, found, kHdrLength, "Length below the header size");
  }
  if (length > bytes.size()) {
    return Fail(error, found, kHdrLength, "Length runs past the memory given");
  }
  const Bytes table = bytes.first(length);
  if (Sum8(table) != 0) {
    return Fail(error, found, 9, "checksum does not sum to 0");
  }
  Table t;
  CopyChars(table, 0, 4, t.header_.signature);
  t.header_.length = length;
  t.header_.revision = Le8(table, kHdrRevision);
  CopyChars(table, kHdrOemId, 6, t.header_.oem_id);
  CopyChars(table, kHdrOemTableId, 8, t.header_.oem_table_id);
  t.header_.oem_revision = Le32(table, kHdrOemRevision);
  t.header_.creator_id = Le32(table, kHdrCreatorId);
  t.header_.creator_revision = Le32(table, kHdrCreatorRevision);
  t.bytes_ = table;
  return t;
}

bool Table::Is(const char* signature) const {
  return std::memcmp(header_.signature, signature, 4) == 0;
}

Result<RootTable> RootTable::FromRsdp(const PhysicalMemory& memory, uint64_t rsdp_address,
                                      ParseError* error) {
  // Map the 20-byte structure first: a revision 0 RSDP may end right there.
  const Bytes v1 = memory.Map(rsdp_address, Rsdp::kV1Length);
  if (v1.size() < Rsdp::kV1Length) {
    return Fail(error, "RSD ", 0, "RSDP not reachable", Status::OutOfRange());
  }
  Bytes bytes = v1;
  if (Le8(v1, kRsdpRevision) >= 2) {
    bytes = memory.Map(rsdp_address, Rsdp::kV2Length);
    if (bytes.size() < Rsdp::kV2Length) {
      return Fail(error, "RSD ", 0, "RSDP (36 bytes) not reachable", Status::OutOfRange());
    }
  }
  DEVISO_ASSIGN_OR_RETURN(const Rsdp rsdp, ParseRsdp(bytes, error));
  if (rsdp.revision >= 2 && rsdp.xsdt_address != 0) {
    return FromAddress(memory, rsdp.xsdt_address, true, error);
  }
  if (rsdp.rsdt_address == 0) {
    return Fail(error, "RSD ", kRsdpRsdtAddress, "RSDP has no RSDT address");
  }
  return FromAddress(memory, rsdp.rsdt_address, false, error);
}

Result<RootTable> RootTable::FromAddress(const PhysicalMemory& memory, uint64_t address, bool xsdt,
                                         ParseError* error) {
  const char* signature = xsdt ? "XSDT" : "RSDT";
  if (address == 0) {
    return Fail(error, signature, 0, "root table address is 0");
  }
  const Bytes header = memory.Map(address, TableHeader::kSize);
  if (header.size() < TableHeader::kSize) {
    return Fail(error, signature, 0, "root table header not reachable", Status::OutOfRange());
  }
  const uint32_t length = Le32(header, kHdrLength);
  const Bytes bytes = memory.Map(address, length);
  if (length >= TableHeader::kSize && bytes.size() < length) {
    return Fail(error, signature, kHdrLength, "root table not reachable", Status::OutOfRange());
  }
  // A Length below the header size is refused by Check() on the header alone.
  DEVISO_ASSIGN_OR_RETURN(
      const Table table,
      Table::Check(length < TableHeader::kSize ? header : bytes, signature, error));
  const size_t entry_size = xsdt ? 8 : 4;
  // 5.2.7 / 5.2.8: the entries fill the rest of the table.
  if (table.body().size() % entry_size != 0) {
    return Fail(error, signature, TableHeader::kSize,
                "entry area is not a whole number of entries");
  }
  RootTable root;
  root.memory_ = &memory;
  root.table_ = table;
  root.entry_size_ = entry_size;
  return root;
}

size_t RootTable::entry_count() const { return table_.body().size() / entry_size_; }

uint64_t RootTable::entry(size_t i) const {
  const size_t off = TableHeader::kSize + i * entry_size_;
  return entry_size_ == 8 ? Le64(table_.bytes(), off) : Le32(table_.bytes(), off);
}

Result<Table> RootTable::Find(const char* signature, size_t instance, ParseError* error) const {
  const char* root_signature = table_.header().signature;
  if (memory_ == nullptr) {
    return Status::NotFound();  // a default-constructed RootTable lists nothing
  }
  size_t seen = 0;
  // Bounded by the entry count: every entry is read once, whatever the tables hold (an entry
  // that points at the root table itself, or twice at one table, cannot make this loop).
  for (size_t i = 0; i < entry_count(); ++i) {
    const uint64_t address = entry(i);
    const size_t entry_offset = TableHeader::kSize + i * entry_size_;
    if (address == 0) {
      return Fail(error, root_signature, entry_offset, "entry is 0");
    }
    const Bytes header = memory_->Map(address, TableHeader::kSize);
    if (header.size() < TableHeader::kSize) {
      return Fail(error, root_signature, entry_offset, "entry's table header not reachable",
                  Status::OutOfRange());
    }
    if (std::memcmp(header.data(), signature, 4) != 0 || seen++ != instance) {
      continue;
    }
    const uint32_t length = Le32(header, kHdrLength);
    if (length < TableHeader::kSize) {
      return Fail(error, signature, kHdrLength, "Length below the header size");
    }
    const Bytes bytes = memory_->Map(address, length);
    if (bytes.size() < length) {
      return Fail(error, signature, kHdrLength, "table not reachable", Status::OutOfRange());
    }
    return Table::Check(bytes, signature, error);
  }
  return Status::NotFound();
}

}  // namespace deviso::acpi
