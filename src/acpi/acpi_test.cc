// The ACPI parsers on the real tables QEMU 7.2 q35 + intel-iommu left in memory (testdata/) and on
// corrupted variants of them built here: each corruption changes one thing and re-seals the
// table (Length, checksum) unless the checksum is what is tested, and must be refused with
// -EINVAL (or -ERANGE / -ENOENT where documented) and no result.

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "acpi/dmar.h"
#include "acpi/mcfg.h"
#include "acpi/tables.h"
#include "acpi/testing/test_tables.h"

namespace deviso::acpi {
namespace {

using testing::DumpedTables;
using testing::LoadDump;
using testing::Seal;

const std::string kDir = DEVISO_ACPI_TESTDATA;

class RealTables : public ::testing::Test {
 protected:
  void SetUp() override {
    LoadDump(kDir + "/q35_vtd", &q35_);
    LoadDump(kDir + "/q35_vtd_rootports", &rootports_);
    ASSERT_TRUE(q35_.ok);
    ASSERT_TRUE(rootports_.ok);
  }
  DumpedTables q35_;
  DumpedTables rootports_;
};

Bytes Span(const std::vector<uint8_t>& v) { return Bytes(v.data(), v.size()); }

void PutLe16(std::vector<uint8_t>& t, size_t off, uint16_t v) { std::memcpy(&t[off], &v, 2); }
void PutLe32(std::vector<uint8_t>& t, size_t off, uint32_t v) { std::memcpy(&t[off], &v, 4); }
void PutLe64(std::vector<uint8_t>& t, size_t off, uint64_t v) { std::memcpy(&t[off], &v, 8); }

// ---- RSDP ---------------------------------------------------------------------------------------

TEST_F(RealTables, RsdpRevision0PointsAtTheRsdt) {
  const Result<Rsdp> r = ParseRsdp(Span(q35_.bytes["rsdp"]));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revision, 0);
  EXPECT_STREQ(r->oem_id, "BOCHS ");
  EXPECT_EQ(r->rsdt_address, q35_.address["rsdt"]);
  EXPECT_EQ(r->xsdt_address, 0U);
  EXPECT_EQ(r->length, 20U);
}

TEST_F(RealTables, RsdpCorruptionsAreRefused) {
  const std::vector<uint8_t> good = q35_.bytes["rsdp"];
  ParseError e;
  // Every truncation.
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_EQ(ParseRsdp(Bytes(good.data(), n), &e).status().ToC(), -EINVAL) << n;
  }
  // Any single byte changed breaks the 20-byte checksum (or the signature).
  for (size_t i = 0; i < good.size(); ++i) {
    std::vector<uint8_t> bad = good;
    bad[i] ^= 0x01;
    EXPECT_EQ(ParseRsdp(Span(bad), &e).status().ToC(), -EINVAL) << i;
  }
  std::vector<uint8_t> bad = good;
  bad[9] ^= 1;
  ASSERT_FALSE(ParseRsdp(Span(bad), &e).ok());
  EXPECT_STREQ(e.reason, "RSDP checksum (first 20 bytes) does not sum to 0");
  EXPECT_EQ(e.offset, 8U);
}

// An ACPI 2.0 RSDP (36 bytes) for the XSDT tests: both checksums valid.
std::vector<uint8_t> RsdpV2(uint32_t rsdt, uint64_t xsdt) {
  std::vector<uint8_t> r(36, 0);
  std::memcpy(r.data(), "RSD PTR ", 8);
  std::memcpy(&r[9], "DEVISO", 6);
  r[15] = 2;
  PutLe32(r, 16, rsdt);
  PutLe32(r, 20, 36);
  PutLe64(r, 24, xsdt);
  unsigned sum = 0;
  for (size_t i = 0; i < 20; ++i) sum += r[i];
  r[8] = static_cast<uint8_t>(0x100 - (sum & 0xff));
  sum = 0;
  for (const uint8_t b : r) sum += b;
  r[32] = static_cast<uint8_t>(0x100 - (sum & 0xff));
  return r;
}

TEST(Rsdp, Revision2ChecksBothChecksumsAndLength) {
  const std::vector<uint8_t> good = RsdpV2(0x1000, 0x2000);
  const Result<Rsdp> r = ParseRsdp(Span(good));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revision, 2);
  EXPECT_EQ(r->xsdt_address, 0x2000U);
  EXPECT_EQ(r->length, 36U);
  ParseError e;
  // 20 bytes are enough for revision 0, not for 2.
  EXPECT_EQ(ParseRsdp(Bytes(good.data(), 20), &e).status().ToC(), -EINVAL);
  EXPECT_STREQ(e.reason, "RSDP revision >= 2 shorter than 36 bytes");
  // The extended checksum covers the XSDT address (the 20-byte one does not).
  std::vector<uint8_t> bad = good;
  bad[24] ^= 0x10;
  EXPECT_EQ(ParseRsdp(Span(bad), &e).status().ToC(), -EINVAL);
  EXPECT_STREQ(e.reason, "RSDP extended checksum does not sum to 0");
  // Length below 36 or past the bytes given: refused before any checksum over it.
  for (const uint32_t length : {0U, 20U, 35U, 37U, 4096U}) {
    bad = good;
    PutLe32(bad, 20, length);
    EXPECT_EQ(ParseRsdp(Span(bad), &e).status().ToC(), -EINVAL) << length;
    EXPECT_STREQ(e.reason, "RSDP Length out of range");
  }
}

TEST_F(RealTables, FindRsdpScansSixteenByteBoundaries) {
  // The BIOS area 0xE0000-0xFFFFF with the RSDP where SeaBIOS put it.
  std::vector<uint8_t> bios(0x20000, 0);
  const uint64_t at = q35_.address["rsdp"];
  std::memcpy(&bios[at - 0xe0000], q35_.bytes["rsdp"].data(), 20);
  // A decoy with the signature but a bad checksum, earlier.
  std::memcpy(&bios[0x100], "RSD PTR ", 8);
  EXPECT_EQ(FindRsdp(Span(bios), 0xe0000).value_or(0), at);
  // Off a 16-byte boundary it is not an RSDP.
  std::vector<uint8_t> shifted(0x20000, 0);
  std::memcpy(&shifted[at - 0xe0000 + 4], q35_.bytes["rsdp"].data(), 20);
  EXPECT_EQ(FindRsdp(Span(shifted), 0xe0000).status().ToC(), -ENOENT);
  // Ending in the middle of the structure: not found, no read past the region.
  EXPECT_EQ(FindRsdp(Bytes(bios.data(), at - 0xe0000 + 19), 0xe0000).status().ToC(), -ENOENT);
}

// ---- Table header, RSDT, XSDT, lookup -----------------------------------------------------------

TEST_F(RealTables, EveryTableChecksAndDecodesItsHeader) {
  for (const auto& [stem, bytes] : q35_.bytes) {
    if (stem == "rsdp") continue;
    const Result<Table> t = Table::Check(Span(bytes));
    ASSERT_TRUE(t.ok()) << stem;
    EXPECT_EQ(t->header().length, bytes.size()) << stem;
    EXPECT_STREQ(t->header().oem_id, "BOCHS ");
  }
  const Result<Table> dmar = Table::Check(Span(q35_.bytes["dmar"]), "DMAR");
  ASSERT_TRUE(dmar.ok());
  EXPECT_STREQ(dmar->header().signature, "DMAR");
  EXPECT_STREQ(dmar->header().oem_table_id, "BXPC    ");
  EXPECT_EQ(dmar->header().revision, 1);
  EXPECT_EQ(dmar->body().size(), dmar->bytes().size() - 36);
}

TEST_F(RealTables, TableCheckRefusesTruncationLengthChecksumAndSignature) {
  const std::vector<uint8_t> good = q35_.bytes["dmar"];
  ParseError e;
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_EQ(Table::Check(Bytes(good.data(), n), "DMAR", &e).status().ToC(), -EINVAL) << n;
  }
  EXPECT_EQ(Table::Check(Span(good), "MCFG", &e).status().ToC(), -EINVAL);
  EXPECT_STREQ(e.reason, "signature differs");
  std::vector<uint8_t> bad = good;
  bad[60] ^= 0x80;
  EXPECT_EQ(Table::Check(Span(bad), "DMAR", &e).status().ToC(), -EINVAL);
  EXPECT_STREQ(e.reason, "checksum does not sum to 0");
  EXPECT_EQ(e.offset, 9U);
  EXPECT_STREQ(e.table, "DMAR");
  bad = good;
  PutLe32(bad, 4, 35);
  EXPECT_EQ(Table::Check(Span(bad), "DMAR", &e).status().ToC(), -EINVAL);
  EXPECT_STREQ(e.reason, "Length below the header size");
  // Bytes after Length are not part of the table.
  bad = good;
  bad.push_back(0x55);
  const Result<Table> t = Table::Check(Span(bad), "DMAR");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->bytes().size(), good.size());
}

TEST_F(RealTables, RsdtListsTheTablesAndFindsThemBySignature) {
  const Result<RootTable> root = RootTable::FromRsdp(q35_.memory, q35_.address["rsdp"]);
  ASSERT_TRUE(root.ok());
  EXPECT_FALSE(root->is_xsdt());
  ASSERT_EQ(root->entry_count(), 6U);  // FACP, APIC, HPET, MCFG, DMAR, WAET
  EXPECT_EQ(root->entry(0), q35_.address["facp"]);
  EXPECT_EQ(root->entry(4), q35_.address["dmar"]);
  for (const char* sig : {"FACP", "APIC", "HPET", "MCFG", "DMAR", "WAET"}) {
    const Result<Table> t = root->Find(sig);
    ASSERT_TRUE(t.ok()) << sig;
    EXPECT_TRUE(t->Is(sig));
  }
  EXPECT_EQ(root->Find("DMAR")->bytes().data(),
            q35_.memory.Map(q35_.address["dmar"], 1).data());  // a view, not a copy
  EXPECT_EQ(root->Find("SSDT").status().ToC(), -ENOENT);
  EXPECT_EQ(root->Find("DMAR", 1).status().ToC(), -ENOENT);
  // A default RootTable lists nothing.
  EXPECT_EQ(RootTable().Find("DMAR").status().ToC(), -ENOENT);
}

TEST_F(RealTables, XsdtIsPreferredWhenTheRsdpHasOne) {
  // An XSDT with 64-bit entries listing the same tables, and an RSDP v2 pointing at both.
  std::vector<uint8_t> xsdt(q35_.bytes["rsdt"].begin(), q35_.bytes["rsdt"].begin() + 36);
  std::memcpy(xsdt.data(), "XSDT", 4);
  const Result<RootTable> rsdt = RootTable::FromRsdp(q35_.memory, q35_.address["rsdp"]);
  ASSERT_TRUE(rsdt.ok());
  for (size_t i = 0; i < rsdt->entry_count(); ++i) {
    xsdt.resize(xsdt.size() + 8);
    PutLe64(xsdt, xsdt.size() - 8, rsdt->entry(i));
  }
  Seal(xsdt);
  q35_.memory.Put(0x10000, xsdt);
  q35_.memory.Put(0x20000, RsdpV2(static_cast<uint32_t>(q35_.address["rsdt"]), 0x10000));
  const Result<RootTable> root = RootTable::FromRsdp(q35_.memory, 0x20000);
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(root->is_xsdt());
  EXPECT_EQ(root->entry_count(), 6U);
  EXPECT_TRUE(root->Find("DMAR").ok());
  // XsdtAddress 0 in a v2 RSDP: the RSDT.
  q35_.memory.Put(0x30000, RsdpV2(static_cast<uint32_t>(q35_.address["rsdt"]), 0));
  const Result<RootTable> old = RootTable::FromRsdp(q35_.memory, 0x30000);
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->is_xsdt());
  // An XSDT whose entries are not a whole number of 8 bytes.
  std::vector<uint8_t> odd = xsdt;
  odd.resize(odd.size() - 4);
  Seal(odd);
  q35_.memory.Put(0x10000, odd);
  ParseError e;
  EXPECT_EQ(RootTable::FromRsdp(q35_.memory, 0x20000, &e).status().ToC(), -EINVAL);
  EXPECT_STREQ(e.reason, "entry area is not a whole number of entries");
  EXPECT_STREQ(e.table, "XSDT");
}

TEST_F(RealTables, BrokenRootTablesAndEntriesAreRefused) {
  const uint64_t rsdp = q35_.address["rsdp"];
  const uint64_t rsdt_at = q35_.address["rsdt"];
  const std::vector<uint8_t> rsdt = q35_.bytes["rsdt"];
  ParseError e;
  // The RSDP not reachable.
  EXPECT_EQ(RootTable::FromRsdp(q35_.memory, 0x1234, &e).status().ToC(), -ERANGE);
  // The RSDT's checksum.
  std::vector<uint8_t> bad = rsdt;
  bad[40] ^= 1;
  q35_.memory.Put(rsdt_at, bad);
  EXPECT_EQ(RootTable::FromRsdp(q35_.memory, rsdp, &e).status().ToC(), -EINVAL);
  EXPECT_STREQ(e.table, "RSDT");
  // Length past the memory holding it.
  bad = rsdt;
  PutLe32(bad, 4, 64);
  q35_.memory.Put(rsdt_at, bad);
  EXPECT_EQ(RootTable::FromRsdp(q35_.memory, rsdp, &e).status().ToC(), -ERANGE);
  // Not a whole number of 4-byte entries.
  bad = rsdt;
  bad.resize(bad.size() - 2);
  Seal(bad);
  q35_.memory.Put(rsdt_at, bad);
  EXPECT_EQ(RootTable::FromRsdp(q35_.memory, rsdp, &e).status().ToC(), -EINVAL);
  // An entry of 0, and an entry pointing nowhere: Find() stops there with the entry's offset.
  bad = rsdt;
  PutLe32(bad, 36 + 4 * 2, 0);
  Seal(bad);
  q35_.memory.Put(rsdt_at, bad);
  Result<RootTable> root = RootTable::FromRsdp(q35_.memory, rsdp);
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(root->Find("FACP").ok());  // before the broken entry
  EXPECT_EQ(root->Find("DMAR", 0, &e).status().ToC(), -EINVAL);
  EXPECT_STREQ(e.reason, "entry is 0");
  EXPECT_EQ(e.offset, 44U);
  bad = rsdt;
  PutLe32(bad, 36 + 4 * 2, 0x7000'0000);
  Seal(bad);
  q35_.memory.Put(rsdt_at, bad);
  root = RootTable::FromRsdp(q35_.memory, rsdp);
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->Find("DMAR", 0, &e).status().ToC(), -ERANGE);
  // An entry pointing at the RSDT itself is one entry like another: no loop.
  bad = rsdt;
  PutLe32(bad, 36 + 4 * 2, static_cast<uint32_t>(rsdt_at));
  Seal(bad);
  q35_.memory.Put(rsdt_at, bad);
  root = RootTable::FromRsdp(q35_.memory, rsdp);
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(root->Find("DMAR").ok());
  EXPECT_TRUE(root->Find("RSDT").ok());
  q35_.memory.Put(rsdt_at, rsdt);
}

TEST_F(RealTables, ABrokenTableOfAnotherSignatureDoesNotHideTheOneLookedFor) {
  std::vector<uint8_t> facp = q35_.bytes["facp"];
  facp[100] ^= 0xff;  // checksum now wrong
  q35_.memory.Put(q35_.address["facp"], facp);
  const Result<RootTable> root = RootTable::FromRsdp(q35_.memory, q35_.address["rsdp"]);
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(root->Find("DMAR").ok());
  ParseError e;
  EXPECT_EQ(root->Find("FACP", 0, &e).status().ToC(), -EINVAL);
  EXPECT_STREQ(e.reason, "checksum does not sum to 0");
  EXPECT_STREQ(e.table, "FACP");
}

// ---- MCFG ---------------------------------------------------------------------------------------

TEST_F(RealTables, McfgGivesQ35sEcam) {
  const Result<Table> t = Table::Check(Span(q35_.bytes["mcfg"]), "MCFG");
  ASSERT_TRUE(t.ok());
  const Result<Mcfg> m = Mcfg::Parse(*t);
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->allocation_count(), 1U);
  const EcamAllocation a = m->allocation(0);
  EXPECT_EQ(a.base, 0xb000'0000U);
  EXPECT_EQ(a.segment, 0);
  EXPECT_EQ(a.bus_start, 0);
  EXPECT_EQ(a.bus_end, 255);
  EXPECT_EQ(a.region_size(), 256U << 20);
  EXPECT_EQ(m->Find(0, 3).value_or(EcamAllocation{}).base, 0xb000'0000U);
  EXPECT_EQ(m->Find(1, 0).status().ToC(), -ENOENT);
}

// The real MCFG with `extra` allocation structures appended and `edit` applied, re-sealed.
Result<Mcfg> EditedMcfg(std::vector<uint8_t> t, std::vector<uint8_t>& storage, ParseError* e) {
  Seal(t);
  storage = t;
  const Result<Table> table = Table::Check(Span(storage), "MCFG");
  if (!table.ok()) return table.status();
  return Mcfg::Parse(*table, e);
}

std::vector<uint8_t> Allocation(uint64_t base, uint16_t seg, uint8_t start, uint8_t end) {
  std::vector<uint8_t> a(16, 0);
  PutLe64(a, 0, base);
  PutLe16(a, 8, seg);
  a[10] = start;
  a[11] = end;
  return a;
}

TEST_F(RealTables, McfgCorruptionsAreRefused) {
  const std::vector<uint8_t> good = q35_.bytes["mcfg"];
  std::vector<uint8_t> storage;
  ParseError e;
  auto with = [&](const std::vector<uint8_t>& alloc) {
    std::vector<uint8_t> t = good;
    t.insert(t.end(), alloc.begin(), alloc.end());
    return EditedMcfg(t, storage, &e);
  };
  // A second segment, and a second range of segment 0 after the first: accepted.
  Result<Mcfg> m = with(Allocation(0xc000'0000, 1, 0, 15));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->Find(1, 15).value_or(EcamAllocation{}).base, 0xc000'0000U);
  EXPECT_EQ(m->Find(1, 16).status().ToC(), -ENOENT);
  // Overlapping buses of one segment.
  EXPECT_EQ(with(Allocation(0xc000'0000, 0, 255, 255)).status().ToC(), -EINVAL);
  EXPECT_STREQ(e.reason, "buses overlap an earlier allocation of the segment");
  EXPECT_EQ(e.offset, 60U + 10);
  // End below start; base not 1 MiB aligned; a range wrapping the address space.
  EXPECT_EQ(with(Allocation(0xc000'0000, 1, 5, 4)).status().ToC(), -EINVAL);
  EXPECT_STREQ(e.reason, "end bus below start bus");
  EXPECT_EQ(with(Allocation(0xc000'1000, 1, 0, 0)).status().ToC(), -EINVAL);
  EXPECT_EQ(with(Allocation(0xffff'ffff'fff0'0000, 1, 0, 1)).status().ToC(), -EINVAL);
  EXPECT_STREQ(e.reason, "range runs past the 64-bit address space");
  // A partial allocation structure.
  std::vector<uint8_t> t = good;
  t.resize(t.size() + 8);
  EXPECT_EQ(EditedMcfg(t, storage, &e).status().ToC(), -EINVAL);
  // Shorter than its fixed part.
  t.assign(good.begin(), good.begin() + 40);
  EXPECT_EQ(EditedMcfg(t, storage, &e).status().ToC(), -EINVAL);
  // More than kMaxAllocations (each its own segment: otherwise valid).
  t = good;
  for (uint16_t s = 1; s <= Mcfg::kMaxAllocations; ++s) {
    const std::vector<uint8_t> a = Allocation(0xc000'0000, s, 0, 0);
    t.insert(t.end(), a.begin(), a.end());
  }
  EXPECT_EQ(EditedMcfg(t, storage, &e).status().ToC(), -ERANGE);
  // Not an MCFG.
  const Result<Table> dmar = Table::Check(Span(q35_.bytes["dmar"]));
  EXPECT_EQ(Mcfg::Parse(*dmar).status().ToC(), -EINVAL);
}

// ---- DMAR ---------------------------------------------------------------------------------------

struct ExpectedScope {
  ScopeType type;
  uint8_t enumeration_id;
  uint8_t bus;
  uint8_t device;
  uint8_t function;
};

void ExpectScopes(const Drhd& d, const std::vector<ExpectedScope>& want) {
  size_t i = 0;
  for (const DeviceScope s : d.scopes()) {
    ASSERT_LT(i, want.size());
    EXPECT_EQ(s.type(), want[i].type) << i;
    EXPECT_EQ(s.enumeration_id(), want[i].enumeration_id) << i;
    EXPECT_EQ(s.start_bus(), want[i].bus) << i;
    ASSERT_EQ(s.path_length(), 1U) << i;
    EXPECT_EQ(s.path(0).device, want[i].device) << i;
    EXPECT_EQ(s.path(0).function, want[i].function) << i;
    ++i;
  }
  EXPECT_EQ(i, want.size());
}

TEST_F(RealTables, DmarOfQ35) {
  const Result<Table> t = Table::Check(Span(q35_.bytes["dmar"]), "DMAR");
  ASSERT_TRUE(t.ok());
  const Result<Dmar> dmar = Dmar::Parse(*t);
  ASSERT_TRUE(dmar.ok());
  EXPECT_EQ(dmar->host_address_width(), 39U);  // HAW field 0x26 (notes: "HAW 38 (39-bit)")
  EXPECT_FALSE(dmar->intr_remap());            // intremap=off
  ASSERT_EQ(dmar->drhds().size(), 1U);
  EXPECT_TRUE(dmar->rmrrs().empty());
  EXPECT_EQ(dmar->structures().size(), 1U);
  const Drhd d = *dmar->drhds().begin();
  EXPECT_EQ(d.register_base(), 0xfed9'0000U);
  EXPECT_EQ(d.register_size(), 4096U);
  EXPECT_EQ(d.segment(), 0);
  EXPECT_FALSE(d.include_pci_all());
  // SeaBIOS lists the I/O APIC and every root-bus function QEMU has: host bridge, VGA, LPC,
  // SATA (the built-in AHCI at 00:1f.2), SMBus.
  ExpectScopes(d, {{ScopeType::kIoApic, 0, 0xff, 0, 0},
                   {ScopeType::kPciEndpoint, 0, 0, 0, 0},
                   {ScopeType::kPciEndpoint, 0, 0, 1, 0},
                   {ScopeType::kPciEndpoint, 0, 0, 0x1f, 0},
                   {ScopeType::kPciEndpoint, 0, 0, 0x1f, 2},
                   {ScopeType::kPciEndpoint, 0, 0, 0x1f, 3}});
}

TEST_F(RealTables, DmarWithRootPortsListsThemAsSubHierarchies) {
  const Result<Table> t = Table::Check(Span(rootports_.bytes["dmar"]), "DMAR");
  ASSERT_TRUE(t.ok());
  const Result<Dmar> dmar = Dmar::Parse(*t);
  ASSERT_TRUE(dmar.ok());
  ASSERT_EQ(dmar->drhds().size(), 1U);
  // The two pcie-root-ports at 00:02.0 and 00:03.0 (the AHCI behind one, the pcie-pci-bridge
  // with edu behind the other) as bridge scopes: their devices are not listed one by one.
  ExpectScopes(*dmar->drhds().begin(), {{ScopeType::kIoApic, 0, 0xff, 0, 0},
                                        {ScopeType::kPciEndpoint, 0, 0, 0, 0},
                                        {ScopeType::kPciEndpoint, 0, 0, 1, 0},
                                        {ScopeType::kPciSubHierarchy, 0, 0, 2, 0},
                                        {ScopeType::kPciSubHierarchy, 0, 0, 3, 0},
                                        {ScopeType::kPciEndpoint, 0, 0, 0x1f, 0},
                                        {ScopeType::kPciEndpoint, 0, 0, 0x1f, 2},
                                        {ScopeType::kPciEndpoint, 0, 0, 0x1f, 3}});
}

// Builds DMAR tables: the real header (HAW, flags) and the structures given, sealed.
class DmarBuilder {
 public:
  explicit DmarBuilder(const std::vector<uint8_t>& real) : t_(real.begin(), real.begin() + 48) {}
  DmarBuilder& Raw(const std::vector<uint8_t>& s) {
    t_.insert(t_.end(), s.begin(), s.end());
    return *this;
  }
  // A DRHD at `base` with `flags` and the scopes given (each a full scope structure).
  DmarBuilder& Drhd(uint64_t base, uint8_t flags, uint16_t segment,
                    const std::vector<std::vector<uint8_t>>& scopes) {
    std::vector<uint8_t> s(16, 0);
    s[4] = flags;
    PutLe16(s, 6, segment);
    PutLe64(s, 8, base);
    for (const auto& sc : scopes) s.insert(s.end(), sc.begin(), sc.end());
    PutLe16(s, 2, static_cast<uint16_t>(s.size()));
    return Raw(s);
  }
  DmarBuilder& Rmrr(uint64_t base, uint64_t limit,
                    const std::vector<std::vector<uint8_t>>& scopes) {
    std::vector<uint8_t> s(24, 0);
    PutLe16(s, 0, 1);
    PutLe64(s, 8, base);
    PutLe64(s, 16, limit);
    for (const auto& sc : scopes) s.insert(s.end(), sc.begin(), sc.end());
    PutLe16(s, 2, static_cast<uint16_t>(s.size()));
    return Raw(s);
  }
  std::vector<uint8_t> Build() {
    std::vector<uint8_t> t = t_;
    Seal(t);
    return t;
  }

 private:
  std::vector<uint8_t> t_;
};

std::vector<uint8_t> Scope(uint8_t type, uint8_t bus, const std::vector<PathEntry>& path,
                           uint8_t enum_id = 0) {
  std::vector<uint8_t> s = {type, static_cast<uint8_t>(6 + 2 * path.size()), 0, 0, enum_id, bus};
  for (const PathEntry& p : path) {
    s.push_back(p.device);
    s.push_back(p.function);
  }
  return s;
}

// Parses `bytes` as a sealed DMAR; the status, with `e` filled on error.
Status ParseDmar(const std::vector<uint8_t>& bytes, ParseError* e, Dmar* out = nullptr) {
  const Result<Table> t = Table::Check(Span(bytes), "DMAR");
  if (!t.ok()) return t.status();
  Result<Dmar> d = Dmar::Parse(*t, e);
  if (d.ok() && out != nullptr) *out = *d;
  return d.status();
}

TEST_F(RealTables, DmarEveryTruncationIsRefusedButTheStructureBoundaries) {
  const std::vector<uint8_t> good = rootports_.bytes["dmar"];
  ParseError e;
  for (size_t n = 36; n <= good.size(); ++n) {
    std::vector<uint8_t> t(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    Seal(t);
    const Status s = ParseDmar(t, &e);
    // 48 bytes: a DMAR with no structure; the whole table: the DRHD. Anything between cuts the
    // DRHD or one of its scopes.
    if (n == 48 || n == good.size()) {
      EXPECT_TRUE(s.ok()) << n;
    } else {
      EXPECT_EQ(s.ToC(), -EINVAL) << n;
    }
  }
}

TEST_F(RealTables, DmarMalformedStructuresAreRefusedWithTheirOffset) {
  const std::vector<uint8_t> good = q35_.bytes["dmar"];
  ParseError e;
  auto edited = [&](size_t off, uint8_t value) {
    std::vector<uint8_t> t = good;
    t[off] = value;
    Seal(t);
    return ParseDmar(t, &e).ToC();
  };
  // The DRHD at 48 (Length 0x40), its first scope (the I/O APIC) at 64, the next at 72.
  EXPECT_EQ(edited(50, 0), -EINVAL);
  EXPECT_STREQ(e.reason, "remapping structure of Length 0");
  EXPECT_EQ(e.offset, 50U);
  EXPECT_EQ(edited(50, 15), -EINVAL);
  EXPECT_STREQ(e.reason, "remapping structure shorter than its type");
  EXPECT_EQ(edited(50, 0x48), -EINVAL);
  EXPECT_STREQ(e.reason, "remapping structure runs past the table");
  EXPECT_EQ(edited(65, 0), -EINVAL);
  EXPECT_STREQ(e.reason, "device scope Length below 8 (no path entry)");
  EXPECT_EQ(e.offset, 65U);
  EXPECT_EQ(edited(65, 9), -EINVAL);
  EXPECT_STREQ(e.reason, "device scope Length not 6 + 2n");
  EXPECT_EQ(edited(65, 0x32), -EINVAL);  // past the DRHD's end at 112
  EXPECT_STREQ(e.reason, "device scope runs past its structure");
  EXPECT_EQ(edited(78, 32), -EINVAL);  // 00:00.0's device
  EXPECT_STREQ(e.reason, "device scope path device above 31");
  EXPECT_EQ(e.offset, 78U);
  EXPECT_EQ(edited(79, 8), -EINVAL);
  EXPECT_STREQ(e.reason, "device scope path function above 7");
  EXPECT_EQ(edited(56, 0x10), -EINVAL);  // Register Base 0xfed9_0010: not 4 KiB aligned
  EXPECT_STREQ(e.reason, "DRHD Register Base Address zero or not 4 KiB aligned");
  EXPECT_EQ(edited(36, 64), -EINVAL);  // HAW 65 bits
  EXPECT_STREQ(e.reason, "Host Address Width above 64 bits");
  // Trailing bytes after the last structure: a truncated structure header.
  std::vector<uint8_t> t = good;
  t.push_back(0);
  t.push_back(0);
  Seal(t);
  EXPECT_EQ(ParseDmar(t, &e).ToC(), -EINVAL);
  EXPECT_STREQ(e.reason, "remapping structure header truncated");
  // A DMAR too short for its own fields, and another table.
  t.assign(good.begin(), good.begin() + 40);
  Seal(t);
  EXPECT_EQ(ParseDmar(t, &e).ToC(), -EINVAL);
  const Result<Table> mcfg = Table::Check(Span(q35_.bytes["mcfg"]));
  EXPECT_EQ(Dmar::Parse(*mcfg).status().ToC(), -EINVAL);
}

TEST_F(RealTables, DmarIncludePciAllRules) {
  const std::vector<uint8_t>& real = q35_.bytes["dmar"];
  ParseError e;
  Dmar dmar;
  const auto ioapic = Scope(3, 0xff, {{0, 0}}, 1);
  // A unit with explicit scopes, then the catch-all of the segment with only its I/O APIC.
  // (The Dmar is a view: its bytes must outlive it.)
  const std::vector<uint8_t> catch_all_last =
      DmarBuilder(real)
          .Drhd(0xfed9'0000, 0, 0, {Scope(1, 0, {{2, 0}})})
          .Drhd(0xfed9'1000, Drhd::kIncludePciAll, 0, {ioapic})
          .Build();
  ASSERT_TRUE(ParseDmar(catch_all_last, &e, &dmar).ok());
  ASSERT_EQ(dmar.drhds().size(), 2U);
  auto it = dmar.drhds().begin();
  EXPECT_FALSE((*it).include_pci_all());
  ++it;
  EXPECT_TRUE((*it).include_pci_all());
  EXPECT_EQ((*(*it).scopes().begin()).enumeration_id(), 1);
  // The catch-all first: the DRHD after it in the same segment is refused (8.3).
  EXPECT_EQ(ParseDmar(DmarBuilder(real)
                          .Drhd(0xfed9'1000, Drhd::kIncludePciAll, 0, {ioapic})
                          .Drhd(0xfed9'0000, 0, 0, {Scope(1, 0, {{2, 0}})})
                          .Build(),
                      &e)
                .ToC(),
            -EINVAL);
  EXPECT_STREQ(e.reason, "DRHD after the INCLUDE_PCI_ALL DRHD of its segment");
  // ... but one of another segment is fine.
  EXPECT_TRUE(ParseDmar(DmarBuilder(real)
                            .Drhd(0xfed9'1000, Drhd::kIncludePciAll, 0, {ioapic})
                            .Drhd(0xfed9'0000, 0, 1, {Scope(1, 0, {{2, 0}})})
                            .Build(),
                        &e)
                  .ok());
  // A PCI scope inside an INCLUDE_PCI_ALL unit contradicts it.
  EXPECT_EQ(ParseDmar(DmarBuilder(real)
                          .Drhd(0xfed9'1000, Drhd::kIncludePciAll, 0, {Scope(2, 0, {{3, 0}})})
                          .Build(),
                      &e)
                .ToC(),
            -EINVAL);
  EXPECT_STREQ(e.reason, "PCI scope in an INCLUDE_PCI_ALL DRHD");
}

TEST_F(RealTables, DmarRmrrAndMultiHopPaths) {
  const std::vector<uint8_t>& real = q35_.bytes["dmar"];
  ParseError e;
  Dmar dmar;
  // 8.3.2-style path: root port 00:1c.0, then a bridge 00.0 on its bus, then device 03.1.
  const std::vector<uint8_t> t =
      DmarBuilder(real)
          .Drhd(0xfed9'0000, 0, 0, {Scope(1, 0, {{0x1c, 0}, {0, 0}, {3, 1}})})
          .Rmrr(0x7d00'0000, 0x7d0f'ffff, {Scope(1, 0, {{0x14, 0}})})
          .Build();
  ASSERT_TRUE(ParseDmar(t, &e, &dmar).ok());
  const DeviceScope s = *(*dmar.drhds().begin()).scopes().begin();
  ASSERT_EQ(s.path_length(), 3U);
  EXPECT_EQ(s.path(0).device, 0x1c);
  EXPECT_EQ(s.path(2).device, 3);
  EXPECT_EQ(s.path(2).function, 1);
  ASSERT_EQ(dmar.rmrrs().size(), 1U);
  const Rmrr r = *dmar.rmrrs().begin();
  EXPECT_EQ(r.base(), 0x7d00'0000U);
  EXPECT_EQ(r.limit(), 0x7d0f'ffffU);
  EXPECT_EQ((*r.scopes().begin()).path(0).device, 0x14);
  EXPECT_EQ(dmar.structures().size(), 2U);
  // Misaligned base, limit + 1 misaligned, limit below base, an I/O APIC scope.
  for (const auto& [base, limit] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0x7d00'0800, 0x7d0f'ffff}, {0x7d00'0000, 0x7d0f'fffe}, {0x7d10'0000, 0x7d0f'ffff}}) {
    EXPECT_EQ(ParseDmar(DmarBuilder(real).Rmrr(base, limit, {}).Build(), &e).ToC(), -EINVAL)
        << std::hex << base << " " << limit;
  }
  EXPECT_EQ(
      ParseDmar(DmarBuilder(real).Rmrr(0, 0xfff, {Scope(3, 0xff, {{0, 0}})}).Build(), &e).ToC(),
      -EINVAL);
  EXPECT_STREQ(e.reason, "RMRR scope is an I/O APIC or HPET");
  // An ACPI namespace device (declared by an ANDD) may own an RMRR.
  EXPECT_TRUE(
      ParseDmar(DmarBuilder(real).Rmrr(0, 0xfff, {Scope(5, 0, {{0x15, 0}}, 1)}).Build(), &e).ok());
}

TEST_F(RealTables, DmarOtherStructuresAreSkippedButChecked) {
  const std::vector<uint8_t>& real = q35_.bytes["dmar"];
  ParseError e;
  Dmar dmar;
  // ATSR with a sub-hierarchy scope, RHSA (20 bytes), ANDD with a name, a reserved type 0x99.
  std::vector<uint8_t> atsr = {2, 0, 0, 0, 0, 0, 0, 0};
  const auto rp = Scope(2, 0, {{2, 0}});
  atsr.insert(atsr.end(), rp.begin(), rp.end());
  atsr[2] = static_cast<uint8_t>(atsr.size());
  std::vector<uint8_t> rhsa(20, 0);
  rhsa[0] = 3;
  rhsa[2] = 20;
  std::vector<uint8_t> andd = {4, 0, 12, 0, 0, 0, 0, 1, '\\', '_', 'S', 0};
  std::vector<uint8_t> reserved = {0x99, 0, 6, 0, 0xaa, 0xbb};
  const std::vector<uint8_t> t = DmarBuilder(real)
                                     .Raw(atsr)
                                     .Drhd(0xfed9'0000, 0, 0, {Scope(1, 0, {{2, 0}})})
                                     .Raw(rhsa)
                                     .Raw(andd)
                                     .Raw(reserved)
                                     .Build();
  ASSERT_TRUE(ParseDmar(t, &e, &dmar).ok());
  EXPECT_EQ(dmar.drhds().size(), 1U);
  EXPECT_EQ(dmar.rmrrs().size(), 0U);
  EXPECT_EQ(dmar.structures().size(), 5U);
  // Each of them broken in turn.
  std::vector<uint8_t> bad_atsr = atsr;
  bad_atsr[9] = 7;  // scope Length 7
  EXPECT_EQ(ParseDmar(DmarBuilder(real).Raw(bad_atsr).Build(), &e).ToC(), -EINVAL);
  EXPECT_EQ(e.offset, 48U + 9);
  std::vector<uint8_t> short_rhsa = rhsa;
  short_rhsa[2] = 12;
  short_rhsa.resize(12);
  EXPECT_EQ(ParseDmar(DmarBuilder(real).Raw(short_rhsa).Build(), &e).ToC(), -EINVAL);
  std::vector<uint8_t> zero = reserved;
  zero[2] = 0;
  EXPECT_EQ(ParseDmar(DmarBuilder(real).Raw(zero).Build(), &e).ToC(), -EINVAL);
  EXPECT_STREQ(e.reason, "remapping structure of Length 0");
}

TEST_F(RealTables, DmarWithMoreDrhdsThanTheLimit) {
  DmarBuilder b(q35_.bytes["dmar"]);
  for (size_t i = 0; i <= Dmar::kMaxDrhd; ++i) {
    b.Drhd(0xfed0'0000 + 0x1000 * i, 0, static_cast<uint16_t>(i), {});
  }
  ParseError e;
  EXPECT_EQ(ParseDmar(b.Build(), &e).ToC(), -ERANGE);
  EXPECT_STREQ(e.reason, "more DRHDs than kMaxDrhd");
}

// Every byte of the structures set to a few values (re-sealed): either refused, or accepted and
// then every accessor stays inside the table (ASan would see otherwise). Deterministic; the
// fuzzer goes further.
TEST_F(RealTables, DmarByteSweepEitherRefusesOrStaysInside) {
  const std::vector<uint8_t> good = rootports_.bytes["dmar"];
  size_t refused = 0;
  for (size_t off = 36; off < good.size(); ++off) {
    for (const uint8_t v : {0x00, 0x01, 0x02, 0x07, 0x08, 0x20, 0x7f, 0xff}) {
      std::vector<uint8_t> t = good;
      t[off] = v;
      Seal(t);
      Dmar dmar;
      if (!ParseDmar(t, nullptr, &dmar).ok()) {
        ++refused;
        continue;
      }
      const uint8_t* lo = t.data();
      const uint8_t* hi = t.data() + t.size();
      for (const DmarStructure s : dmar.structures()) {
        ASSERT_GE(s.bytes().data(), lo);
        ASSERT_LE(s.bytes().data() + s.bytes().size(), hi);
      }
      for (const Drhd d : dmar.drhds()) {
        for (const DeviceScope sc : d.scopes()) {
          ASSERT_LE(sc.bytes().data() + sc.bytes().size(), d.bytes().data() + d.bytes().size());
          for (size_t i = 0; i < sc.path_length(); ++i) {
            EXPECT_LE(sc.path(i).device, 31);
            EXPECT_LE(sc.path(i).function, 7);
          }
        }
      }
    }
  }
  EXPECT_GT(refused, 0U);
}

}  // namespace
}  // namespace deviso::acpi
