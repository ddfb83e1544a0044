#include "acpi_scan.h"

#include <cstring>

namespace deviso::q35 {
namespace {

// ACPI 6.5 5.2.5.3, Table 5.3: the RSDP.
constexpr size_t kRsdpV1Length = 20;      // Signature .. RsdtAddress (revision 0)
constexpr size_t kRsdpLengthOffset = 20;  // Length, revision 2 and later
constexpr size_t kRsdpV2MinLength = 36;
constexpr size_t kRsdpOemIdOffset = 9;
constexpr size_t kRsdpRevisionOffset = 15;
constexpr size_t kRsdpRsdtOffset = 16;
constexpr size_t kRsdpXsdtOffset = 24;
// ACPI 6.5 5.2.6, Table 5.4: the system description table header.
constexpr size_t kHeaderLength = 36;
constexpr size_t kHeaderLengthOffset = 4;
constexpr size_t kHeaderRevisionOffset = 8;

constexpr uint64_t kBiosAreaStart = 0xe0000;
constexpr uint64_t kBiosAreaEnd = 0x100000;
constexpr size_t kEbdaSearchLength = 1024;

uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

uint64_t Le64(const uint8_t* p) {
  return static_cast<uint64_t>(Le32(p)) | (static_cast<uint64_t>(Le32(p + 4)) << 32);
}

// Non-printable bytes of a signature become '?', so a listing of garbage stays readable.
void CopySignature(char* out, const uint8_t* in) {
  for (int i = 0; i < 4; ++i) {
    out[i] = in[i] >= 0x20 && in[i] < 0x7f ? static_cast<char>(in[i]) : '?';
  }
}

bool SumsToZero(const uint8_t* p, size_t len) {
  uint8_t sum = 0;
  for (size_t i = 0; i < len; ++i) {
    sum = static_cast<uint8_t>(sum + p[i]);
  }
  return sum == 0;
}

// A valid RSDP at `p` (the whole 20 bytes readable): signature and checksums.
bool IsRsdp(const PhysReader& mem, uint64_t pa) {
  const uint8_t* p = mem.Map(pa, kRsdpV1Length);
  if (p == nullptr || std::memcmp(p, "RSD PTR ", 8) != 0 || !SumsToZero(p, kRsdpV1Length)) {
    return false;
  }
  if (p[kRsdpRevisionOffset] < 2) {
    return true;
  }
  const uint8_t* v2 = mem.Map(pa, kRsdpV2MinLength);
  if (v2 == nullptr) {
    return false;
  }
  const uint32_t len = Le32(v2 + kRsdpLengthOffset);
  const uint8_t* whole = len >= kRsdpV2MinLength ? mem.Map(pa, len) : nullptr;
  return whole != nullptr && SumsToZero(whole, len);
}

Result<uint64_t> ScanArea(const PhysReader& mem, uint64_t start, uint64_t end) {
  for (uint64_t pa = start; pa + kRsdpV1Length <= end; pa += 16) {
    if (IsRsdp(mem, pa)) {
      return pa;
    }
  }
  return Status::NotFound();
}

}  // namespace

Result<uint64_t> FindRsdp(const PhysReader& mem, uint32_t ebda_segment) {
  // Only a segment that puts the EBDA below the BIOS area is believed (a zero or garbage word
  // at 0x40E must not send the scan elsewhere).
  const uint64_t ebda = static_cast<uint64_t>(ebda_segment & 0xffff) << 4;
  if (ebda >= 0x400 && ebda + kEbdaSearchLength <= kBiosAreaStart) {
    Result<uint64_t> found = ScanArea(mem, ebda, ebda + kEbdaSearchLength);
    if (found.ok()) {
      return found;
    }
  }
  return ScanArea(mem, kBiosAreaStart, kBiosAreaEnd);
}

Status ReadAcpiTables(const PhysReader& mem, uint64_t rsdp_address, AcpiTables* out) {
  if (out == nullptr) {
    return Status::InvalidArgument();
  }
  const uint8_t* rsdp = mem.Map(rsdp_address, kRsdpV1Length);
  if (rsdp == nullptr) {
    return Status::NotFound();
  }
  if (!IsRsdp(mem, rsdp_address)) {
    return Status::InvalidArgument();
  }
  AcpiTables result;
  result.rsdp_address = rsdp_address;
  result.rsdp_revision = rsdp[kRsdpRevisionOffset];
  std::memcpy(result.oem_id, rsdp + kRsdpOemIdOffset, 6);
  result.root_address = Le32(rsdp + kRsdpRsdtOffset);
  if (result.rsdp_revision >= 2) {
    const uint64_t xsdt = Le64(mem.Map(rsdp_address, kRsdpV2MinLength) + kRsdpXsdtOffset);
    if (xsdt != 0) {
      result.root_address = xsdt;
      result.xsdt = true;
    }
  }

  const uint8_t* header = mem.Map(result.root_address, kHeaderLength);
  if (header == nullptr) {
    return Status::NotFound();
  }
  if (std::memcmp(header, result.xsdt ? "XSDT" : "RSDT", 4) != 0) {
    return Status::InvalidArgument();
  }
  const uint32_t root_length = Le32(header + kHeaderLengthOffset);
  const size_t entry_size = result.xsdt ? 8 : 4;
  if (root_length < kHeaderLength || (root_length - kHeaderLength) % entry_size != 0) {
    return Status::InvalidArgument();
  }
  const uint8_t* root = mem.Map(result.root_address, root_length);
  if (root == nullptr) {
    return Status::NotFound();
  }
  if (!SumsToZero(root, root_length)) {
    return Status::InvalidArgument();
  }

  const size_t entries = (root_length - kHeaderLength) / entry_size;
  for (size_t i = 0; i < entries; ++i) {
    const uint8_t* e = root + kHeaderLength + i * entry_size;
    const uint64_t address = result.xsdt ? Le64(e) : Le32(e);
    if (result.count == kMaxAcpiTables) {
      ++result.not_listed;
      continue;
    }
    AcpiTableInfo& t = result.tables[result.count++];
    t.address = address;
    const uint8_t* h = mem.Map(address, kHeaderLength);
    if (h == nullptr) {
      std::memcpy(t.signature, "????", 4);
      continue;
    }
    CopySignature(t.signature, h);
    t.length = Le32(h + kHeaderLengthOffset);
    t.revision = h[kHeaderRevisionOffset];
    const uint8_t* whole = t.length >= kHeaderLength ? mem.Map(address, t.length) : nullptr;
    t.readable = whole != nullptr;
    t.checksum_ok = whole != nullptr && SumsToZero(whole, t.length);
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
