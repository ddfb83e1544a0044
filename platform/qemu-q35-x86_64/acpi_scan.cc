#include "acpi_scan.h"

#include <cstring>

namespace deviso::q35 {
namespace {

constexpr uint64_t kBiosAreaStart = 0xe0000;
constexpr uint64_t kBiosAreaEnd = 0x100000;
constexpr size_t kEbdaSearchLength = 1024;
constexpr size_t kHeaderLengthOffset = 4;  // ACPI 6.5 Table 5.4: Length
constexpr size_t kHeaderRevisionOffset = 8;

Result<uint64_t> ScanArea(const acpi::PhysicalMemory& mem, uint64_t start, uint64_t end) {
  const acpi::Bytes area = mem.Map(start, end - start);
  if (area.empty()) {
    return Status::NotFound();
  }
  return acpi::FindRsdp(area, start);
}

// Non-printable bytes of a signature become '?', so a listing of garbage stays readable.
void CopySignature(char* out, const uint8_t* in) {
  for (int i = 0; i < 4; ++i) {
    out[i] = in[i] >= 0x20 && in[i] < 0x7f ? static_cast<char>(in[i]) : '?';
  }
}

}  // namespace

Result<uint64_t> LocateRsdp(const acpi::PhysicalMemory& mem, uint32_t ebda_segment) {
  const uint64_t ebda = static_cast<uint64_t>(ebda_segment & 0xffff) << 4;
  if (ebda >= 0x400 && ebda + kEbdaSearchLength <= kBiosAreaStart) {
    Result<uint64_t> found = ScanArea(mem, ebda, ebda + kEbdaSearchLength);
    if (found.ok()) {
      return found;
    }
  }
  return ScanArea(mem, kBiosAreaStart, kBiosAreaEnd);
}

Status ListAcpiTables(const acpi::PhysicalMemory& mem, uint64_t rsdp_address, AcpiTables* out,
                      acpi::ParseError* error) {
  if (out == nullptr) {
    return Status::InvalidArgument();
  }
  // The 36 bytes of a revision 2 RSDP where they are readable, else the 20 of revision 0.
  acpi::Bytes rsdp_bytes = mem.Map(rsdp_address, acpi::Rsdp::kV2Length);
  if (rsdp_bytes.empty()) {
    rsdp_bytes = mem.Map(rsdp_address, acpi::Rsdp::kV1Length);
  }
  if (rsdp_bytes.empty()) {
    return Status::OutOfRange();
  }
  Result<acpi::Rsdp> rsdp = acpi::ParseRsdp(rsdp_bytes, error);
  if (!rsdp.ok()) {
    return rsdp.status();
  }
  Result<acpi::RootTable> root = acpi::RootTable::FromRsdp(mem, rsdp_address, error);
  if (!root.ok()) {
    return root.status();
  }

  AcpiTables result;
  result.rsdp_address = rsdp_address;
  result.rsdp_revision = rsdp->revision;
  std::memcpy(result.oem_id, rsdp->oem_id, sizeof(result.oem_id));
  result.xsdt = root->is_xsdt();
  result.root_address = result.xsdt ? rsdp->xsdt_address : rsdp->rsdt_address;
  for (size_t i = 0; i < root->entry_count(); ++i) {
    if (result.count == kMaxAcpiTables) {
      ++result.not_listed;
      continue;
    }
    AcpiTableInfo& t = result.tables[result.count++];
    t.address = root->entry(i);
    const acpi::Bytes header = mem.Map(t.address, acpi::TableHeader::kSize);
    if (header.empty()) {
      std::memcpy(t.signature, "????", 4);
      continue;
    }
    CopySignature(t.signature, header.data());
    t.length = static_cast<uint32_t>(header[kHeaderLengthOffset]) |
               (static_cast<uint32_t>(header[kHeaderLengthOffset + 1]) << 8) |
               (static_cast<uint32_t>(header[kHeaderLengthOffset + 2]) << 16) |
               (static_cast<uint32_t>(header[kHeaderLengthOffset + 3]) << 24);
    t.revision = header[kHeaderRevisionOffset];
    const acpi::Bytes whole =
        t.length >= acpi::TableHeader::kSize ? mem.Map(t.address, t.length) : acpi::Bytes();
    t.readable = !whole.empty();
    t.checksum_ok = t.readable && acpi::Table::Check(whole).ok();
  }
  *out = result;
  return Status::Ok();
}

const AcpiTableInfo* FindAcpiTable(const AcpiTables& tables, const char* signature) {
  for (size_t i = 0; i < tables.count; ++i) {
    if (std::memcmp(tables.tables[i].signature, signature, 4) == 0) {
      return &tables.tables[i];
    }
  }
  return nullptr;
}

}  // namespace deviso::q35
