// Host test of the q35 platform's ACPI scan (acpi_scan.cc) on the tables SeaBIOS left in QEMU
// 7.2's q35 memory (src/acpi/testdata/, each placed at the address it was dumped from), and on
// corrupted copies of them.

#include "acpi_scan.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace deviso::q35 {
namespace {

// Sparse physical memory: byte ranges at physical addresses; a read must lie inside one.
class FakeMemory final : public PhysReader {
 public:
  void Place(uint64_t pa, std::vector<uint8_t> bytes) { ranges_[pa] = std::move(bytes); }

  const uint8_t* Map(uint64_t pa, size_t len) const override {
    auto it = ranges_.upper_bound(pa);
    if (it == ranges_.begin()) {
      return nullptr;
    }
    --it;
    const uint64_t offset = pa - it->first;
    if (offset + len > it->second.size() || len == 0) {
      return nullptr;
    }
    return it->second.data() + offset;
  }

  std::vector<uint8_t>& At(uint64_t pa) { return ranges_.at(pa); }

 private:
  std::map<uint64_t, std::vector<uint8_t>> ranges_;
};

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Dumped {
  std::string file;
  uint64_t address;
  size_t size;
};

// layout.txt: "<file> <address>" per line, # comments.
std::vector<Dumped> ReadLayout(const std::string& dir) {
  std::ifstream in(dir + "/layout.txt");
  std::vector<Dumped> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    std::istringstream words(line);
    std::string file;
    std::string address;
    words >> file >> address;
    out.push_back({file, std::stoull(address, nullptr, 16), ReadFile(dir + "/" + file).size()});
  }
  return out;
}

// The BIOS area 0xE0000-0xFFFFF (zeros but the RSDP) and each dumped table at its address.
FakeMemory LoadDump(const std::string& name, std::vector<Dumped>* layout) {
  const std::string dir = std::string(DEVISO_ACPI_TESTDATA) + "/" + name;
  *layout = ReadLayout(dir);
  FakeMemory mem;
  std::vector<uint8_t> bios(0x20000, 0);
  for (const Dumped& d : *layout) {
    std::vector<uint8_t> bytes = ReadFile(dir + "/" + d.file);
    if (d.file == "rsdp.bin") {
      std::memcpy(bios.data() + (d.address - 0xe0000), bytes.data(), bytes.size());
    } else {
      mem.Place(d.address, std::move(bytes));
    }
  }
  mem.Place(0xe0000, std::move(bios));
  return mem;
}

uint64_t AddressOf(const std::vector<Dumped>& layout, const std::string& file) {
  for (const Dumped& d : layout) {
    if (d.file == file) {
      return d.address;
    }
  }
  ADD_FAILURE() << "no " << file << " in layout.txt";
  return 0;
}

TEST(Q35AcpiScan, FindsTheRsdpAndListsEveryTableOfTheDump) {
  for (const char* name : {"q35_vtd", "q35_vtd_rootports"}) {
    SCOPED_TRACE(name);
    std::vector<Dumped> layout;
    const FakeMemory mem = LoadDump(name, &layout);
    Result<uint64_t> rsdp = FindRsdp(mem, 0);
    ASSERT_TRUE(rsdp.ok());
    EXPECT_EQ(*rsdp, AddressOf(layout, "rsdp.bin"));

    AcpiTables tables;
    ASSERT_TRUE(ReadAcpiTables(mem, *rsdp, &tables).ok());
    EXPECT_EQ(tables.rsdp_revision, 0);  // SeaBIOS: ACPI 1.0 RSDP, RSDT only
    EXPECT_FALSE(tables.xsdt);
    EXPECT_STREQ(tables.oem_id, "BOCHS ");
    EXPECT_EQ(tables.root_address, AddressOf(layout, "rsdt.bin"));
    // RSDT entries in order: FACP APIC HPET MCFG DMAR WAET (each file is one table, cut at its
    // Length: the listing's length must be the file's size).
    const char* const kOrder[] = {"FACP", "APIC", "HPET", "MCFG", "DMAR", "WAET"};
    ASSERT_EQ(tables.count, 6u);
    EXPECT_EQ(tables.not_listed, 0u);
    for (size_t i = 0; i < 6; ++i) {
      const AcpiTableInfo& t = tables.tables[i];
      EXPECT_STREQ(t.signature, kOrder[i]);
      std::string file = kOrder[i];
      for (char& c : file) {
        c = static_cast<char>(c - 'A' + 'a');
      }
      EXPECT_EQ(t.address, AddressOf(layout, file + ".bin")) << file;
      for (const Dumped& d : layout) {
        if (d.file == file + ".bin") {
          EXPECT_EQ(t.length, d.size) << file;
        }
      }
      EXPECT_TRUE(t.readable);
      EXPECT_TRUE(t.checksum_ok) << file;
    }
    EXPECT_NE(FindAcpiTable(tables, "DMAR"), nullptr);
    EXPECT_EQ(FindAcpiTable(tables, "XSDT"), nullptr);
  }
}

TEST(Q35AcpiScan, TheEbdaIsSearchedFirst) {
  std::vector<Dumped> layout;
  FakeMemory mem = LoadDump("q35_vtd", &layout);
  // A copy of the RSDP at 0x9fc10 in an EBDA at segment 0x9fc0 (0x9fc00): found there first.
  std::vector<uint8_t> ebda(1024, 0);
  const uint64_t rsdp = AddressOf(layout, "rsdp.bin");
  std::memcpy(ebda.data() + 0x10, mem.Map(rsdp, 20), 20);
  mem.Place(0x9fc00, ebda);
  Result<uint64_t> found = FindRsdp(mem, 0x9fc0);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, 0x9fc10u);
  // A segment pointing into the BIOS area itself or at 0 is not believed: the BIOS area is.
  EXPECT_EQ(*FindRsdp(mem, 0xf000), rsdp);
  EXPECT_EQ(*FindRsdp(mem, 0), rsdp);
}

TEST(Q35AcpiScan, ABadRsdpChecksumIsNotAnRsdp) {
  std::vector<Dumped> layout;
  FakeMemory mem = LoadDump("q35_vtd", &layout);
  const uint64_t rsdp = AddressOf(layout, "rsdp.bin");
  mem.At(0xe0000)[rsdp - 0xe0000 + 8] ^= 1;  // the checksum byte
  EXPECT_EQ(FindRsdp(mem, 0).status(), Status::NotFound());
  AcpiTables tables;
  tables.count = 99;
  EXPECT_EQ(ReadAcpiTables(mem, rsdp, &tables), Status::InvalidArgument());
  EXPECT_EQ(tables.count, 99u);  // untouched on error
}

TEST(Q35AcpiScan, RefusesABrokenRootTableAndChangesNothing) {
  std::vector<Dumped> layout;
  const uint64_t rsdt_pa = [&] {
    FakeMemory m = LoadDump("q35_vtd", &layout);
    return AddressOf(layout, "rsdt.bin");
  }();
  struct Case {
    const char* what;
    void (*corrupt)(std::vector<uint8_t>&);
    Status want;
  };
  const Case cases[] = {
      {"signature", [](std::vector<uint8_t>& t) { t[0] = 'X'; }, Status::InvalidArgument()},
      {"checksum", [](std::vector<uint8_t>& t) { t[9] ^= 0xff; }, Status::InvalidArgument()},
      // Length 37: not a whole number of 4-byte entries after the 36-byte header.
      {"length not whole entries", [](std::vector<uint8_t>& t) { t[4] = 37; },
       Status::InvalidArgument()},
      {"length below the header", [](std::vector<uint8_t>& t) { t[4] = 20; },
       Status::InvalidArgument()},
      // Length 0x1000: beyond the 60 bytes that exist.
      {"length beyond memory",
       [](std::vector<uint8_t>& t) {
         t[4] = 0;
         t[5] = 0x10;
       },
       Status::NotFound()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    FakeMemory mem = LoadDump("q35_vtd", &layout);
    c.corrupt(mem.At(rsdt_pa));
    AcpiTables tables;
    tables.count = 99;
    EXPECT_EQ(ReadAcpiTables(mem, AddressOf(layout, "rsdp.bin"), &tables), c.want);
    EXPECT_EQ(tables.count, 99u);
  }
  FakeMemory mem = LoadDump("q35_vtd", &layout);
  EXPECT_EQ(ReadAcpiTables(mem, AddressOf(layout, "rsdp.bin"), nullptr), Status::InvalidArgument());
  EXPECT_EQ(ReadAcpiTables(mem, 0x1234, nullptr), Status::InvalidArgument());
  AcpiTables tables;
  EXPECT_EQ(ReadAcpiTables(mem, 0x10, &tables), Status::NotFound());  // nothing there
}

TEST(Q35AcpiScan, ATableWithABadChecksumOrNoMemoryIsListedAsSuch) {
  std::vector<Dumped> layout;
  FakeMemory mem = LoadDump("q35_vtd", &layout);
  mem.At(AddressOf(layout, "dmar.bin"))[40] ^= 0x55;
  // The HPET's memory is gone: the RSDT still points at it.
  const uint64_t hpet = AddressOf(layout, "hpet.bin");
  mem.At(hpet).resize(10);
  AcpiTables tables;
  ASSERT_TRUE(ReadAcpiTables(mem, AddressOf(layout, "rsdp.bin"), &tables).ok());
  const AcpiTableInfo* dmar = FindAcpiTable(tables, "DMAR");
  ASSERT_NE(dmar, nullptr);
  EXPECT_TRUE(dmar->readable);
  EXPECT_FALSE(dmar->checksum_ok);
  ASSERT_EQ(tables.count, 6u);
  EXPECT_STREQ(tables.tables[2].signature, "????");
  EXPECT_EQ(tables.tables[2].address, hpet);
  EXPECT_FALSE(tables.tables[2].readable);
  EXPECT_TRUE(FindAcpiTable(tables, "APIC")->checksum_ok);
}

// An XSDT (RSDP revision 2) with more entries than kMaxAcpiTables: the rest are counted.
TEST(Q35AcpiScan, ReadsAnXsdtAndCountsWhatItCannotList) {
  std::vector<Dumped> layout;
  FakeMemory mem = LoadDump("q35_vtd", &layout);
  const uint64_t facp = AddressOf(layout, "facp.bin");
  constexpr uint64_t kXsdt = 0x7000000;
  constexpr size_t kEntries = kMaxAcpiTables + 3;
  std::vector<uint8_t> xsdt(36 + 8 * kEntries, 0);
  std::memcpy(xsdt.data(), "XSDT", 4);
  xsdt[4] = static_cast<uint8_t>(xsdt.size());
  xsdt[5] = static_cast<uint8_t>(xsdt.size() >> 8);
  for (size_t i = 0; i < kEntries; ++i) {
    for (int b = 0; b < 8; ++b) {
      xsdt[36 + 8 * i + b] = static_cast<uint8_t>(facp >> (8 * b));
    }
  }
  uint8_t sum = 0;
  for (uint8_t b : xsdt) {
    sum = static_cast<uint8_t>(sum + b);
  }
  xsdt[9] = static_cast<uint8_t>(0x100 - sum);
  mem.Place(kXsdt, xsdt);

  // ACPI 6.5 Table 5.3: a 36-byte RSDP, revision 2, XsdtAddress at 24, both checksums.
  std::vector<uint8_t> rsdp(36, 0);
  std::memcpy(rsdp.data(), "RSD PTR ", 8);
  std::memcpy(rsdp.data() + 9, "DEVISO", 6);
  rsdp[15] = 2;
  rsdp[20] = 36;
  for (int b = 0; b < 8; ++b) {
    rsdp[24 + b] = static_cast<uint8_t>(kXsdt >> (8 * b));
  }
  auto fix = [&](size_t len, size_t at) {
    uint8_t s = 0;
    rsdp[at] = 0;
    for (size_t i = 0; i < len; ++i) {
      s = static_cast<uint8_t>(s + rsdp[i]);
    }
    rsdp[at] = static_cast<uint8_t>(0x100 - s);
  };
  fix(20, 8);
  fix(36, 32);
  mem.Place(0x6000000, rsdp);

  AcpiTables tables;
  ASSERT_TRUE(ReadAcpiTables(mem, 0x6000000, &tables).ok());
  EXPECT_TRUE(tables.xsdt);
  EXPECT_EQ(tables.root_address, kXsdt);
  EXPECT_EQ(tables.count, kMaxAcpiTables);
  EXPECT_EQ(tables.not_listed, 3u);
  EXPECT_STREQ(tables.tables[kMaxAcpiTables - 1].signature, "FACP");

  // The extended checksum is checked too.
  mem.At(0x6000000)[32] ^= 1;
  EXPECT_EQ(ReadAcpiTables(mem, 0x6000000, &tables), Status::InvalidArgument());
}

}  // namespace
}  // namespace deviso::q35
