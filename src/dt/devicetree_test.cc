// The devicetree reader on trees dtc compiled from testdata/: QEMU's own DTBs (SMMUv3 and
// virtio-iommu), hand-written good trees and one malformed node per error. CTest label `dt`.

#include "dt/devicetree.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

extern "C" {
#include <libfdt.h>
}

#include "dt/dt_test_util.h"

namespace deviso::dt {
namespace {

using testing::LoadBlob;
using testing::Node;

uint32_t Phandle(const std::vector<uint8_t>& fdt, const char* path) {
  return fdt_get_phandle(fdt.data(), Node(fdt, path));
}

uint16_t Rid(unsigned bus, unsigned dev, unsigned fn) {
  return static_cast<uint16_t>((bus << 8) | (dev << 3) | fn);
}

TEST(DtBlob, CheckRejectsGarbageAndShortBuffers) {
  const std::vector<uint8_t> fdt = LoadBlob("good");
  ASSERT_FALSE(fdt.empty());
  EXPECT_TRUE(CheckBlob(fdt.data(), fdt.size()).ok());
  EXPECT_EQ(CheckBlob(fdt.data(), fdt.size() - 1), Status::InvalidArgument());
  EXPECT_EQ(CheckBlob(nullptr, 0), Status::InvalidArgument());
  std::vector<uint8_t> garbage(fdt.size(), 0x5a);
  EXPECT_EQ(CheckBlob(garbage.data(), garbage.size()), Status::InvalidArgument());
  // Buffers shorter than the header, starting with a good header: refused before libfdt reads
  // the header's fields (each copied into a buffer of exactly that size, so ASan would see a
  // read past it in deviso's code).
  for (size_t n : {size_t{0}, size_t{4}, size_t{8}, size_t{39}}) {
    std::vector<uint8_t> head(fdt.begin(), fdt.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_EQ(CheckBlob(head.data(), head.size()), Status::InvalidArgument()) << n;
  }
}

// Structure damage fdt_check_full catches (corpus: src/dt/dt_fuzzer_corpus/regress-*): a
// property whose name offset points past the strings block, a string block without the final
// NUL, a node left open (no FDT_END_NODE), a property length past the structure block.
TEST(DtBlob, CheckRejectsDamagedStructure) {
  const std::vector<uint8_t> good = LoadBlob("good");
  ASSERT_FALSE(good.empty());
  const auto be32 = [](const std::vector<uint8_t>& b, size_t off) {
    return static_cast<uint32_t>(b[off] << 24 | b[off + 1] << 16 | b[off + 2] << 8 | b[off + 3]);
  };
  const auto put32 = [](std::vector<uint8_t>& b, size_t off, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[off + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
  };
  const uint32_t off_struct = be32(good, 8);
  const uint32_t off_strings = be32(good, 12);
  const uint32_t size_strings = be32(good, 32);
  const uint32_t size_struct = be32(good, 36);
  // The first FDT_PROP tag (3) in the structure block, after the root's FDT_BEGIN_NODE.
  size_t prop = 0;
  for (size_t o = off_struct; o + 12 <= off_struct + size_struct; o += 4) {
    if (be32(good, o) == 3) {
      prop = o;
      break;
    }
  }
  ASSERT_NE(prop, 0U);
  {
    std::vector<uint8_t> b = good;
    put32(b, prop + 8, size_strings + 16);  // nameoff past the strings block
    EXPECT_EQ(CheckBlob(b.data(), b.size()), Status::InvalidArgument());
  }
  {
    std::vector<uint8_t> b = good;
    put32(b, prop + 4, size_struct);  // a value longer than the structure block
    EXPECT_EQ(CheckBlob(b.data(), b.size()), Status::InvalidArgument());
  }
  {
    std::vector<uint8_t> b = good;
    b[off_strings + size_strings - 1] = 'x';  // the last name loses its NUL
    EXPECT_EQ(CheckBlob(b.data(), b.size()), Status::InvalidArgument());
  }
  {
    std::vector<uint8_t> b = good;
    // FDT_END (9) is the last tag; the FDT_END_NODE (2) before it closes the root.
    const size_t end = off_struct + size_struct - 4;
    ASSERT_EQ(be32(b, end), 9U);
    ASSERT_EQ(be32(b, end - 4), 2U);
    put32(b, end - 4, 4);  // FDT_NOP: the root is never closed
    EXPECT_EQ(CheckBlob(b.data(), b.size()), Status::InvalidArgument());
  }
}

// ---- QEMU's own trees -----------------------------------------------------------------------

TEST(DtQemu, SmmuV3NodeAsQemuDescribesIt) {
  const std::vector<uint8_t> fdt = LoadBlob("qemu_virt_smmuv3");
  ASSERT_FALSE(fdt.empty());
  IommuNode nodes[4];
  const Result<size_t> n = FindIommus(fdt.data(), nodes);
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, 1U);
  const IommuNode& s = nodes[0];
  EXPECT_EQ(s.type, IommuType::kSmmuV3);
  EXPECT_EQ(s.phandle, 0x8004U);
  EXPECT_EQ(s.regs.base, 0x9050000U);
  EXPECT_EQ(s.regs.size, 0x20000U);
  EXPECT_TRUE(s.dma_coherent);
  // interrupts = <0 74 1>, <0 75 1>, <0 76 1>, <0 77 1>: SPIs, INTID = 32 + n, rising edge.
  const Interrupt* irqs[] = {&s.irqs.eventq, &s.irqs.priq, &s.irqs.cmdq_sync, &s.irqs.gerror};
  for (uint32_t i = 0; i < 4; ++i) {
    const Result<GicInterrupt> g = DecodeGic(*irqs[i]);
    ASSERT_TRUE(g.ok()) << i;
    EXPECT_EQ(g->intid, 32 + 74 + i);
    EXPECT_TRUE(g->edge);
    EXPECT_EQ(irqs[i]->controller_phandle, 0x8002U);
  }
  EXPECT_FALSE(s.irqs.combined.valid);
}

TEST(DtQemu, IommuMapIsTheIdentityOnTheSmmu) {
  const std::vector<uint8_t> fdt = LoadBlob("qemu_virt_smmuv3");
  ASSERT_FALSE(fdt.empty());
  IommuMap map;
  ASSERT_TRUE(ReadIommuMap(fdt.data(), Node(fdt, "/pcie@10000000"), &map).ok());
  EXPECT_TRUE(map.present);
  EXPECT_EQ(map.count, 1U);
  EXPECT_EQ(map.mask, 0xffffffffU) << "no iommu-map-mask: all ones";
  for (const uint16_t rid : {Rid(0, 0, 0), Rid(0, 2, 0), Rid(0, 3, 1), Rid(1, 0, 0)}) {
    const Result<IommuRef> r = map.Map(rid);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->iommu_phandle, 0x8004U);
    EXPECT_EQ(r->sid, rid);
  }
  EXPECT_EQ(map.Map(0x10, 0x8004).value_or(0), 0x10U);
  EXPECT_EQ(map.Map(0x10, 0x1234).status(), Status::NotFound());
}

TEST(DtQemu, InterruptMapGivesTheStandardSwizzle) {
  const std::vector<uint8_t> fdt = LoadBlob("qemu_virt_smmuv3");
  ASSERT_FALSE(fdt.empty());
  InterruptMap map;
  ASSERT_TRUE(ReadInterruptMap(fdt.data(), Node(fdt, "/pcie@10000000"), &map).ok());
  EXPECT_TRUE(map.present);
  EXPECT_EQ(map.count, 16U);
  EXPECT_EQ(map.address_cells, 3);
  EXPECT_EQ(map.interrupt_cells, 1);
  // QEMU virt: slot s, pin p (1..4) -> SPI 3 + (s + p - 1) % 4, level high. The mask keeps
  // two device bits only, so slot 4 maps as slot 0; function bits are ignored.
  for (unsigned slot = 0; slot < 8; ++slot) {
    for (uint8_t pin = 1; pin <= 4; ++pin) {
      const Result<Interrupt> irq = map.LookupPci(Rid(0, slot, slot % 2), pin);
      ASSERT_TRUE(irq.ok()) << slot << " " << int{pin};
      EXPECT_EQ(irq->controller_phandle, 0x8002U);
      const Result<GicInterrupt> g = DecodeGic(*irq);
      ASSERT_TRUE(g.ok());
      EXPECT_EQ(g->intid, 32 + 3 + (slot + pin - 1) % 4) << slot << " " << int{pin};
      EXPECT_FALSE(g->edge);
    }
  }
  EXPECT_EQ(map.LookupPci(0x10, 0).status(), Status::InvalidArgument());
  EXPECT_EQ(map.LookupPci(0x10, 5).status(), Status::InvalidArgument());
}

TEST(DtQemu, VirtioIommuNodeAndItsMapSkippingItself) {
  const std::vector<uint8_t> fdt = LoadBlob("qemu_virt_virtio_iommu");
  ASSERT_FALSE(fdt.empty());
  IommuNode nodes[4];
  const Result<size_t> n = FindIommus(fdt.data(), nodes);
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, 1U);
  EXPECT_EQ(nodes[0].type, IommuType::kVirtioPci);
  EXPECT_EQ(nodes[0].phandle, 0x8005U);
  EXPECT_EQ(nodes[0].rid, Rid(0, 1, 0));
  EXPECT_EQ(nodes[0].pci_host, Node(fdt, "/pcie@10000000"));
  IommuMap map;
  ASSERT_TRUE(ReadIommuMap(fdt.data(), nodes[0].pci_host, &map).ok());
  EXPECT_EQ(map.count, 2U);
  EXPECT_EQ(map.Map(Rid(0, 1, 0)).status(), Status::NotFound()) << "the IOMMU's own RID";
  EXPECT_EQ(map.Map(Rid(0, 0, 7)).value_or(IommuRef{}).sid, 7U);
  EXPECT_EQ(map.Map(Rid(0, 1, 1)).value_or(IommuRef{}).sid, Rid(0, 1, 1));
  EXPECT_EQ(map.Map(Rid(0, 2, 0)).value_or(IommuRef{}).iommu_phandle, 0x8005U);
}

// ---- Hand-written good trees ----------------------------------------------------------------

class DtGood : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(fdt_.empty()); }
  const void* fdt() const { return fdt_.data(); }
  std::vector<uint8_t> fdt_ = LoadBlob("good");
};

TEST_F(DtGood, BothSmmusWithTheirOwnInterruptsAndCoherency) {
  IommuNode nodes[2];  // the third SMMU node is disabled
  const Result<size_t> n = FindIommus(fdt(), nodes);
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, 2U);
  EXPECT_EQ(nodes[0].phandle, Phandle(fdt_, "/iommu@9050000"));
  EXPECT_EQ(nodes[1].phandle, Phandle(fdt_, "/iommu@9070000"));
  EXPECT_TRUE(nodes[0].dma_coherent);
  EXPECT_FALSE(nodes[1].dma_coherent);
  EXPECT_EQ(nodes[1].regs.base, 0x9070000U);
  // interrupts-extended, to two controllers with different #interrupt-cells.
  EXPECT_FALSE(nodes[1].irqs.eventq.valid);
  const Result<GicInterrupt> gerror = DecodeGic(nodes[1].irqs.gerror);
  ASSERT_TRUE(gerror.ok());
  EXPECT_EQ(gerror->intid, 32 + 80U);
  EXPECT_FALSE(gerror->edge);
  const Interrupt& combined = nodes[1].irqs.combined;
  ASSERT_TRUE(combined.valid);
  EXPECT_EQ(combined.controller, Node(fdt_, "/interrupt-controller@8100000"));
  EXPECT_EQ(combined.cell_count, 2);
  EXPECT_EQ(combined.cells[0], 5U);
  EXPECT_EQ(combined.cells[1], 4U);
  EXPECT_EQ(DecodeGic(combined).status(), Status::InvalidArgument()) << "not a GIC specifier";
  // Room for one only.
  EXPECT_EQ(FindIommus(fdt(), std::span<IommuNode>(nodes, 1)).status(), Status::NoMemory());
}

TEST_F(DtGood, IommusWithSeveralEntries) {
  IommuRef refs[4];
  const Result<size_t> n = ReadIommus(fdt(), Node(fdt_, "/dma@10000000"), refs);
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, 3U);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(refs[i].iommu_phandle, Phandle(fdt_, "/iommu@9050000"));
    EXPECT_EQ(refs[i].iommu, Node(fdt_, "/iommu@9050000"));
    EXPECT_EQ(refs[i].sid, 0x100 + i);
  }
  const Result<size_t> one = ReadIommus(fdt(), Node(fdt_, "/dma@10001000"), refs);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, 1U);
  EXPECT_EQ(refs[0].sid, 0x20U);
  EXPECT_EQ(ReadIommus(fdt(), Node(fdt_, "/uart@9000000"), refs).status(), Status::NotFound());
  EXPECT_EQ(ReadIommus(fdt(), Node(fdt_, "/dma@10000000"), std::span<IommuRef>(refs, 2)).status(),
            Status::NoMemory());
}

TEST_F(DtGood, IommuMapFirstMatchingRangeWins) {
  IommuMap map;
  ASSERT_TRUE(ReadIommuMap(fdt(), Node(fdt_, "/pcie@40000000"), &map).ok());
  ASSERT_EQ(map.count, 3U);
  const uint32_t smmu0 = Phandle(fdt_, "/iommu@9050000");
  const uint32_t smmu1 = Phandle(fdt_, "/iommu@9070000");
  struct Case {
    uint16_t rid;
    uint32_t iommu;
    uint32_t sid;
  };
  // Ranges: [0x00, 0x10) -> smmu0 0x1000 + (rid - 0x00); [0x08, 0x18) -> smmu1 0x500 +
  // (rid - 0x08); [0x100, 0x200) -> smmu0 0x2000 + (rid - 0x100).
  const Case cases[] = {
      {0x00, smmu0, 0x1000}, {0x08, smmu0, 0x1008},  // also in the second range: first wins
      {0x0f, smmu0, 0x100f}, {0x10, smmu1, 0x508},   // 0x508 = 0x500 + (0x10 - 0x08)
      {0x17, smmu1, 0x50f},  {0x105, smmu0, 0x2005},
  };
  for (const Case& c : cases) {
    const Result<IommuRef> r = map.Map(c.rid);
    ASSERT_TRUE(r.ok()) << c.rid;
    EXPECT_EQ(r->iommu_phandle, c.iommu) << c.rid;
    EXPECT_EQ(r->sid, c.sid) << c.rid;
  }
  EXPECT_EQ(map.Map(0x18).status(), Status::NotFound());
  EXPECT_EQ(map.Map(0x200).status(), Status::NotFound());
  // With a target IOMMU (of_map_id's target): ranges of other IOMMUs are skipped.
  EXPECT_EQ(map.Map(0x08, smmu1).value_or(0), 0x500U);
  EXPECT_EQ(map.Map(0x00, smmu1).status(), Status::NotFound());
}

TEST_F(DtGood, IommuMapMaskIgnoresTheFunctionBits) {
  IommuMap map;
  ASSERT_TRUE(ReadIommuMap(fdt(), Node(fdt_, "/pcie@50000000"), &map).ok());
  EXPECT_EQ(map.mask, 0xfff8U);
  // (rid & 0xfff8): every function of device 2 -> 0x40, of device 3 -> 0x60.
  for (uint8_t fn = 0; fn < 8; ++fn) {
    EXPECT_EQ(map.Map(Rid(0, 2, fn)).value_or(IommuRef{}).sid, 0x40U) << int{fn};
    EXPECT_EQ(map.Map(Rid(0, 3, fn)).value_or(IommuRef{}).sid, 0x60U) << int{fn};
  }
  EXPECT_EQ(map.Map(Rid(0, 1, 0)).status(), Status::NotFound());
}

TEST_F(DtGood, NoIommuMapMeansNotTranslated) {
  IommuMap map;
  map.count = 7;  // overwritten
  ASSERT_TRUE(ReadIommuMap(fdt(), Node(fdt_, "/pcie@60000000"), &map).ok());
  EXPECT_FALSE(map.present);
  EXPECT_EQ(map.count, 0U);
  EXPECT_EQ(map.Map(0).status(), Status::NotFound());
  InterruptMap imap;
  ASSERT_TRUE(ReadInterruptMap(fdt(), Node(fdt_, "/pcie@60000000"), &imap).ok());
  EXPECT_FALSE(imap.present);
  EXPECT_EQ(imap.LookupPci(0, 1).status(), Status::InvalidArgument());
}

TEST_F(DtGood, InterruptMapWithParentsOfDifferentCellCounts) {
  InterruptMap map;
  ASSERT_TRUE(ReadInterruptMap(fdt(), Node(fdt_, "/pcie@40000000"), &map).ok());
  ASSERT_EQ(map.count, 6U);
  // Device 0 -> GIC (2 parent address cells, 3 specifier cells).
  Result<GicInterrupt> g = DecodeGic(map.LookupPci(Rid(0, 0, 0), 1).value_or(Interrupt{}));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->intid, 32 + 3U);
  // Device 1 -> intc2 (no #address-cells: 0 parent address cells, 2 specifier cells).
  const Result<Interrupt> i2 = map.LookupPci(Rid(0, 1, 0), 2);
  ASSERT_TRUE(i2.ok());
  EXPECT_EQ(i2->controller, Node(fdt_, "/interrupt-controller@8100000"));
  EXPECT_EQ(i2->cell_count, 2);
  EXPECT_EQ(i2->cells[0], 0x22U);
  // Device 2, after the intc2 entries: still aligned. Function bits masked off.
  g = DecodeGic(map.LookupPci(Rid(0, 2, 5), 2).value_or(Interrupt{}));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->intid, 32 + 6U);
  EXPECT_TRUE(g->edge);
  EXPECT_EQ(map.LookupPci(Rid(0, 3, 0), 1).status(), Status::NotFound());
  EXPECT_EQ(map.LookupPci(Rid(0, 0, 0), 3).status(), Status::NotFound());
  // The generic lookup checks its cell count.
  const uint32_t two[2] = {0, 1};
  EXPECT_EQ(map.Lookup(two).status(), Status::InvalidArgument());
}

// ---- Malformed ------------------------------------------------------------------------------

class DtMalformed : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(fdt_.empty()); }
  const void* fdt() const { return fdt_.data(); }
  // ReadIommus on `path`: its status, with `refs` untouched on error... and the log line.
  Status Iommus(const char* path, std::string* log = nullptr) {
    IommuRef refs[4];
    ::testing::internal::CaptureStderr();
    const Status s = ReadIommus(fdt(), Node(fdt_, path), refs).status();
    const std::string out = ::testing::internal::GetCapturedStderr();
    if (log != nullptr) *log = out;
    return s;
  }
  Status Map(const char* path, std::string* log = nullptr) {
    IommuMap map;
    map.count = 99;
    ::testing::internal::CaptureStderr();
    const Status s = ReadIommuMap(fdt(), Node(fdt_, path), &map);
    const std::string out = ::testing::internal::GetCapturedStderr();
    if (log != nullptr) *log = out;
    if (!s.ok()) {
      EXPECT_EQ(map.count, 99U) << "changed on error";
    }
    return s;
  }
  std::vector<uint8_t> fdt_ = LoadBlob("malformed");
};

TEST_F(DtMalformed, DanglingPhandleIsNamedInTheLog) {
  std::string log;
  EXPECT_EQ(Iommus("/dangling", &log), Status::InvalidArgument());
  EXPECT_NE(log.find("/dangling: iommus: phandle 0xdead refers to no node"), std::string::npos)
      << log;
  EXPECT_EQ(Map("/pci-dangling", &log), Status::InvalidArgument());
  EXPECT_NE(log.find("/pci-dangling: iommu-map: phandle 0xdead"), std::string::npos) << log;
}

TEST_F(DtMalformed, IommuCellsMismatch) {
  std::string log;
  EXPECT_EQ(Iommus("/cells-mismatch", &log), Status::InvalidArgument());
  EXPECT_NE(log.find("#iommu-cells = 2"), std::string::npos) << log;
  EXPECT_EQ(Map("/pci-cells"), Status::InvalidArgument());
  EXPECT_EQ(ParseIommu(fdt(), Node(fdt_, "/iommu@9090000")).status(), Status::InvalidArgument());
  IommuNode nodes[4];
  EXPECT_EQ(FindIommus(fdt(), nodes).status(), Status::InvalidArgument());
}

TEST_F(DtMalformed, TruncatedProperties) {
  std::string log;
  EXPECT_EQ(Iommus("/truncated", &log), Status::InvalidArgument());
  EXPECT_NE(log.find("/truncated: iommus:"), std::string::npos) << log;
  EXPECT_NE(log.find("truncated"), std::string::npos) << log;
  EXPECT_EQ(Iommus("/odd-length"), Status::InvalidArgument());
  EXPECT_EQ(Map("/pci-truncated", &log), Status::InvalidArgument());
  EXPECT_NE(log.find("/pci-truncated: iommu-map:"), std::string::npos) << log;
  InterruptMap imap;
  imap.count = 99;
  EXPECT_EQ(ReadInterruptMap(fdt(), Node(fdt_, "/pci-bad-intmap"), &imap),
            Status::InvalidArgument());
  EXPECT_EQ(imap.count, 99U) << "changed on error";
  EXPECT_EQ(ReadInterruptMap(fdt(), Node(fdt_, "/pci-dangling-intmap"), &imap),
            Status::InvalidArgument());
}

TEST_F(DtMalformed, SmmuNodesWithBrokenRegOrInterrupts) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(ParseIommu(fdt(), Node(fdt_, "/iommu@90b0000")).status(), Status::InvalidArgument())
      << "gerror named, interrupts truncated";
  EXPECT_EQ(ParseIommu(fdt(), Node(fdt_, "/iommu@90d0000")).status(), Status::InvalidArgument())
      << "no reg";
  EXPECT_EQ(ParseIommu(fdt(), Node(fdt_, "/iommu@90f0000")).status(), Status::InvalidArgument())
      << "dangling interrupt-parent";
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("/iommu@90b0000: interrupts: entry 1 missing (truncated"), std::string::npos)
      << log;
  EXPECT_NE(log.find("/iommu@90d0000: reg:"), std::string::npos) << log;
  EXPECT_NE(log.find("/iommu@90f0000: interrupt-parent: phandle 0xbeef"), std::string::npos) << log;
  EXPECT_TRUE(ParseIommu(fdt(), Node(fdt_, "/iommu@9050000")).ok());
  EXPECT_EQ(ParseIommu(fdt(), Node(fdt_, "/good-dev")).status(), Status::NotSupported());
  EXPECT_EQ(ReadReg(fdt(), Node(fdt_, "/iommu@9050000"), -1).status(), Status::InvalidArgument());
  EXPECT_EQ(ReadReg(fdt(), Node(fdt_, "/iommu@9050000"), 1).status(), Status::InvalidArgument());
}

TEST_F(DtMalformed, IommuMapRangesThatCannotBeRight) {
  EXPECT_EQ(Map("/pci-mask"), Status::InvalidArgument()) << "rid-base outside the mask";
  EXPECT_EQ(Map("/pci-wrap"), Status::InvalidArgument()) << "StreamIDs pass 2^32";
  EXPECT_TRUE(Map("/pci-good").ok());
  // The SID-size check needs the unit: bind_test.cc.
  EXPECT_TRUE(Map("/pci-big-sid").ok());
}

}  // namespace
}  // namespace deviso::dt
