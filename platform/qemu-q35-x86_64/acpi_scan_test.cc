// Host test of the q35 platform's ACPI scan (acpi_scan.cc, over src/acpi's parser) on the tables
// SeaBIOS left in QEMU 7.2's q35 memory (src/acpi/testdata/, each placed at the address it was
// dumped from, the RSDP inside a BIOS area 0xE0000-0xFFFFF), and on corrupted copies of them.

#include "acpi_scan.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "acpi/testing/test_tables.h"

namespace deviso::q35 {
namespace {

using acpi::testing::DumpedTables;

constexpr uint64_t kBiosArea = 0xe0000;

// The dump, with a zeroed BIOS area holding the RSDP (as 0xE0000-0xFFFFF is on the board).
void Load(const char* name, DumpedTables* d) {
  acpi::testing::LoadDump(std::string(DEVISO_ACPI_TESTDATA) + "/" + name, d);
  ASSERT_TRUE(d->ok);
  std::vector<uint8_t> bios(0x20000, 0);
  const std::vector<uint8_t>& rsdp = d->bytes.at("rsdp");
  std::memcpy(bios.data() + (d->address.at("rsdp") - kBiosArea), rsdp.data(), rsdp.size());
  d->memory.Put(kBiosArea, std::move(bios));
}

std::vector<uint8_t>& BiosArea(DumpedTables& d) { return d.memory.At(kBiosArea); }

TEST(Q35AcpiScan, FindsTheRsdpAndListsEveryTableOfTheDump) {
  for (const char* name : {"q35_vtd", "q35_vtd_rootports"}) {
    SCOPED_TRACE(name);
    DumpedTables d;
    Load(name, &d);
    Result<uint64_t> rsdp = LocateRsdp(d.memory, 0);
    ASSERT_TRUE(rsdp.ok());
    EXPECT_EQ(*rsdp, d.address.at("rsdp"));

    AcpiTables tables;
    ASSERT_TRUE(ListAcpiTables(d.memory, *rsdp, &tables).ok());
    EXPECT_EQ(tables.rsdp_revision, 0);  // SeaBIOS: ACPI 1.0 RSDP, RSDT only
    EXPECT_FALSE(tables.xsdt);
    EXPECT_STREQ(tables.oem_id, "BOCHS ");
    EXPECT_EQ(tables.root_address, d.address.at("rsdt"));
    // RSDT entries in order; each file is one table cut at its Length, so the listed length
    // must be the file's size.
    const char* const kOrder[] = {"FACP", "APIC", "HPET", "MCFG", "DMAR", "WAET"};
    const char* const kFiles[] = {"facp", "apic", "hpet", "mcfg", "dmar", "waet"};
    ASSERT_EQ(tables.count, 6u);
    EXPECT_EQ(tables.not_listed, 0u);
    for (size_t i = 0; i < 6; ++i) {
      const AcpiTableInfo& t = tables.tables[i];
      EXPECT_STREQ(t.signature, kOrder[i]);
      EXPECT_EQ(t.address, d.address.at(kFiles[i])) << kFiles[i];
      EXPECT_EQ(t.length, d.bytes.at(kFiles[i]).size()) << kFiles[i];
      EXPECT_TRUE(t.readable);
      EXPECT_TRUE(t.checksum_ok) << kFiles[i];
    }
    EXPECT_NE(FindAcpiTable(tables, "DMAR"), nullptr);
    EXPECT_EQ(FindAcpiTable(tables, "XSDT"), nullptr);
  }
}

TEST(Q35AcpiScan, TheEbdaIsSearchedFirstWhenItsSegmentIsPlausible) {
  DumpedTables d;
  Load("q35_vtd", &d);
  // A copy of the RSDP at 0x9fc10 in an EBDA at segment 0x9fc0: found there first.
  std::vector<uint8_t> ebda(1024, 0);
  std::memcpy(ebda.data() + 0x10, d.bytes.at("rsdp").data(), 20);
  d.memory.Put(0x9fc00, ebda);
  Result<uint64_t> found = LocateRsdp(d.memory, 0x9fc0);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, 0x9fc10u);
  // A segment pointing into the BIOS area, or 0, is not believed: the BIOS area's RSDP.
  EXPECT_EQ(*LocateRsdp(d.memory, 0xf000), d.address.at("rsdp"));
  EXPECT_EQ(*LocateRsdp(d.memory, 0), d.address.at("rsdp"));
  // An EBDA without an RSDP: the BIOS area's.
  d.memory.Put(0x9fc00, std::vector<uint8_t>(1024, 0));
  EXPECT_EQ(*LocateRsdp(d.memory, 0x9fc0), d.address.at("rsdp"));
}

TEST(Q35AcpiScan, ABadRsdpChecksumIsNoRsdp) {
  DumpedTables d;
  Load("q35_vtd", &d);
  const uint64_t rsdp = d.address.at("rsdp");
  BiosArea(d)[rsdp - kBiosArea + 8] ^= 1;  // the checksum byte
  d.memory.At(rsdp)[8] ^= 1;
  EXPECT_EQ(LocateRsdp(d.memory, 0).status(), Status::NotFound());
  AcpiTables tables;
  tables.count = 99;
  acpi::ParseError error;
  EXPECT_EQ(ListAcpiTables(d.memory, rsdp, &tables, &error), Status::InvalidArgument());
  EXPECT_EQ(tables.count, 99u);  // untouched on error
  EXPECT_STRNE(error.reason, "");
}

TEST(Q35AcpiScan, RefusesABrokenRootTableAndChangesNothing) {
  struct Case {
    const char* what;
    void (*corrupt)(std::vector<uint8_t>&);
    Status want;
  };
  const Case cases[] = {
      {"signature", [](std::vector<uint8_t>& t) { t[0] = 'X'; }, Status::InvalidArgument()},
      {"checksum", [](std::vector<uint8_t>& t) { t[9] ^= 0xff; }, Status::InvalidArgument()},
      // Length 37 (resealed): not a whole number of 4-byte entries after the 36-byte header.
      {"length not whole entries",
       [](std::vector<uint8_t>& t) {
         t.push_back(0);
         acpi::testing::Seal(t);
       },
       Status::InvalidArgument()},
      // Length 0x1000: beyond the 60 bytes that exist.
      {"length beyond memory",
       [](std::vector<uint8_t>& t) {
         t[4] = 0;
         t[5] = 0x10;
       },
       Status::OutOfRange()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    DumpedTables d;
    Load("q35_vtd", &d);
    c.corrupt(d.memory.At(d.address.at("rsdt")));
    AcpiTables tables;
    tables.count = 99;
    EXPECT_EQ(ListAcpiTables(d.memory, d.address.at("rsdp"), &tables), c.want);
    EXPECT_EQ(tables.count, 99u);
  }
  DumpedTables d;
  Load("q35_vtd", &d);
  EXPECT_EQ(ListAcpiTables(d.memory, d.address.at("rsdp"), nullptr), Status::InvalidArgument());
  AcpiTables tables;
  EXPECT_EQ(ListAcpiTables(d.memory, 0x10, &tables), Status::OutOfRange());  // nothing there
}

TEST(Q35AcpiScan, ATableWithABadChecksumOrNoMemoryIsListedAsSuch) {
  DumpedTables d;
  Load("q35_vtd", &d);
  d.memory.At(d.address.at("dmar"))[40] ^= 0x55;
  // The HPET's memory is gone but 10 bytes: the RSDT still points at it.
  d.memory.At(d.address.at("hpet")).resize(10);
  AcpiTables tables;
  ASSERT_TRUE(ListAcpiTables(d.memory, d.address.at("rsdp"), &tables).ok());
  const AcpiTableInfo* dmar = FindAcpiTable(tables, "DMAR");
  ASSERT_NE(dmar, nullptr);
  EXPECT_TRUE(dmar->readable);
  EXPECT_FALSE(dmar->checksum_ok);
  ASSERT_EQ(tables.count, 6u);
  EXPECT_STREQ(tables.tables[2].signature, "????");
  EXPECT_EQ(tables.tables[2].address, d.address.at("hpet"));
  EXPECT_FALSE(tables.tables[2].readable);
  EXPECT_TRUE(FindAcpiTable(tables, "APIC")->checksum_ok);
}

// An XSDT (RSDP revision 2) with more entries than kMaxAcpiTables: the rest are counted.
TEST(Q35AcpiScan, ReadsAnXsdtAndCountsWhatItCannotList) {
  DumpedTables d;
  Load("q35_vtd", &d);
  const uint64_t facp = d.address.at("facp");
  constexpr uint64_t kXsdt = 0x7000000;
  constexpr uint64_t kRsdp = 0x6000000;
  constexpr size_t kEntries = kMaxAcpiTables + 3;
  std::vector<uint8_t> xsdt(36 + 8 * kEntries, 0);
  std::memcpy(xsdt.data(), "XSDT", 4);
  for (size_t i = 0; i < kEntries; ++i) {
    std::memcpy(&xsdt[36 + 8 * i], &facp, 8);
  }
  acpi::testing::Seal(xsdt);
  d.memory.Put(kXsdt, xsdt);

  // ACPI 6.5 Table 5.3: a 36-byte RSDP, revision 2, XsdtAddress at 24, both checksums.
  std::vector<uint8_t> rsdp(36, 0);
  std::memcpy(rsdp.data(), "RSD PTR ", 8);
  std::memcpy(rsdp.data() + 9, "DEVISO", 6);
  rsdp[15] = 2;
  rsdp[20] = 36;
  const uint64_t xsdt_address = kXsdt;
  std::memcpy(&rsdp[24], &xsdt_address, 8);
  const auto seal = [&](size_t len, size_t at) {
    rsdp[at] = 0;
    unsigned sum = 0;
    for (size_t i = 0; i < len; ++i) {
      sum += rsdp[i];
    }
    rsdp[at] = static_cast<uint8_t>(0x100 - (sum & 0xff));
  };
  seal(20, 8);
  seal(36, 32);
  d.memory.Put(kRsdp, rsdp);

  AcpiTables tables;
  ASSERT_TRUE(ListAcpiTables(d.memory, kRsdp, &tables).ok());
  EXPECT_TRUE(tables.xsdt);
  EXPECT_EQ(tables.rsdp_revision, 2);
  EXPECT_STREQ(tables.oem_id, "DEVISO");
  EXPECT_EQ(tables.root_address, kXsdt);
  EXPECT_EQ(tables.count, kMaxAcpiTables);
  EXPECT_EQ(tables.not_listed, 3u);
  EXPECT_STREQ(tables.tables[kMaxAcpiTables - 1].signature, "FACP");

  // The extended checksum is checked too.
  d.memory.At(kRsdp)[32] ^= 1;
  EXPECT_EQ(ListAcpiTables(d.memory, kRsdp, &tables), Status::InvalidArgument());
}

}  // namespace
}  // namespace deviso::q35
