// Binding PCI functions to their DRHD and source-id: QEMU's real q35 DMARs against simulated
// topologies that reproduce the machines they were dumped from (bus numbers as SeaBIOS left
// them), and synthetic DMARs for INCLUDE_PCI_ALL, multi-hop paths, ambiguity and RMRRs.

#include "acpi/dmar_pci.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "acpi/dmar.h"
#include "acpi/mcfg.h"
#include "acpi/mcfg_pci.h"
#include "acpi/tables.h"
#include "acpi/testing/test_tables.h"
#include "pci/testing/fake_ecam.h"

namespace deviso::acpi {
namespace {

using pci::Bdf;
using pci::PortType;
using pci::testing::FakeBus;
using pci::testing::FakeEcam;
using pci::testing::FakeFunction;
using pci::testing::VirtHostBridge;

const std::string kDir = DEVISO_ACPI_TESTDATA;

// q35's root bus as QEMU 7.2 builds it: host bridge 00:00.0, VGA 00:01.0, and the ICH9 LPC,
// SATA (the built-in AHCI) and SMBus functions of device 0x1f.
void AddQ35RootBus(FakeEcam& ecam) {
  ecam.Endpoint(ecam.root, 0, 0, 0x29c0, PortType::kNotPcie);
  ecam.Endpoint(ecam.root, 1, 0, 0x1111, PortType::kNotPcie);
  FakeFunction& lpc = ecam.Endpoint(ecam.root, 0x1f, 0, 0x2918, PortType::kNotPcie);
  lpc.cfg[0x0e] = 0x80;  // multi-function
  ecam.Endpoint(ecam.root, 0x1f, 2, 0x2922, PortType::kNotPcie);
  ecam.Endpoint(ecam.root, 0x1f, 3, 0x2930, PortType::kNotPcie);
}

// testdata/q35_vtd_rootports: pcie-root-port rp1 at 00:02.0 with an ich9-ahci (01:00.0), rp2 at
// 00:03.0 with a pcie-pci-bridge (02:00.0) and edu behind it at 03:01.0. SeaBIOS numbered the
// buses: rp1 1..1, rp2 2..3, the PCIe-to-PCI bridge 3..3; enumeration keeps them.
struct RootPortMachine {
  FakeEcam ecam;
  FakeBus bus1, bus2, bus3;
  RootPortMachine() {
    AddQ35RootBus(ecam);
    FakeFunction& rp1 = ecam.Bridge(ecam.root, 2, 0, PortType::kRootPort, bus1);
    rp1.Set32(0x18, 0x00010100);
    FakeFunction& rp2 = ecam.Bridge(ecam.root, 3, 0, PortType::kRootPort, bus2);
    rp2.Set32(0x18, 0x00030200);
    ecam.Endpoint(bus1, 0, 0, 0x2922);
    FakeFunction& pb = ecam.Bridge(bus2, 0, 0, PortType::kPcieToPciBridge, bus3);
    pb.Set32(0x18, 0x00030302);
    ecam.Endpoint(bus3, 1, 0, 0x11e8, PortType::kNotPcie);  // edu
  }
};

class DmarPci : public ::testing::Test {
 protected:
  void SetUp() override {
    dmar_q35_ = ReadFile(kDir + "/q35_vtd/dmar.bin");
    dmar_rootports_ = ReadFile(kDir + "/q35_vtd_rootports/dmar.bin");
    ASSERT_FALSE(dmar_q35_.empty());
    ASSERT_FALSE(dmar_rootports_.empty());
  }
  static std::vector<uint8_t> ReadFile(const std::string& path) { return testing::ReadFile(path); }
  static Dmar Parse(const std::vector<uint8_t>& bytes) {
    const Result<Table> t = Table::Check(Bytes(bytes.data(), bytes.size()), "DMAR");
    EXPECT_TRUE(t.ok());
    const Result<Dmar> d = Dmar::Parse(*t);
    EXPECT_TRUE(d.ok());
    return d.value_or(Dmar());
  }
  std::vector<uint8_t> dmar_q35_;
  std::vector<uint8_t> dmar_rootports_;
};

TEST_F(DmarPci, RealRootPortDmarBindsEveryFunctionWithItsSourceId) {
  RootPortMachine m;
  pci::Topology topo(VirtHostBridge(), m.ecam);
  ASSERT_TRUE(topo.Enumerate().ok());
  ASSERT_EQ(topo.function_count(), 10U);
  // SeaBIOS's numbers were kept.
  EXPECT_TRUE(topo.FindFunction(Bdf{0, 3, 0})->bridge.firmware_numbered);
  ASSERT_NE(topo.FindFunction(Bdf{3, 1, 0}), nullptr);
  const Dmar dmar = Parse(dmar_rootports_);

  struct Want {
    Bdf bdf;
    DmarMatch match;
    Bdf source_id;
  };
  const Want want[] = {
      {{0, 0, 0}, DmarMatch::kEndpoint, {0, 0, 0}},
      {{0, 1, 0}, DmarMatch::kEndpoint, {0, 1, 0}},
      {{0, 2, 0}, DmarMatch::kSubHierarchy, {0, 2, 0}},  // the root port itself
      {{1, 0, 0}, DmarMatch::kSubHierarchy, {1, 0, 0}},  // the AHCI behind rp1
      {{0, 3, 0}, DmarMatch::kSubHierarchy, {0, 3, 0}},
      {{2, 0, 0}, DmarMatch::kSubHierarchy, {2, 0, 0}},  // the pcie-pci-bridge
      // edu behind the PCIe-to-PCI bridge: its DMA carries (secondary bus 3, 00.0).
      {{3, 1, 0}, DmarMatch::kSubHierarchy, {3, 0, 0}},
      {{0, 0x1f, 0}, DmarMatch::kEndpoint, {0, 0x1f, 0}},
      {{0, 0x1f, 2}, DmarMatch::kEndpoint, {0, 0x1f, 2}},  // the built-in AHCI, source-id 0x00fa
      {{0, 0x1f, 3}, DmarMatch::kEndpoint, {0, 0x1f, 3}},
  };
  for (const Want& w : want) {
    const Result<PciBinding> b = BindPciFunction(dmar, topo, 0, w.bdf);
    ASSERT_TRUE(b.ok()) << int{w.bdf.bus} << ":" << int{w.bdf.device} << "." << int{w.bdf.function};
    EXPECT_EQ(b->register_base, 0xfed9'0000U);
    EXPECT_EQ(b->drhd_index, 0U);
    EXPECT_EQ(b->match, w.match) << int{w.bdf.bus} << ":" << int{w.bdf.device};
    EXPECT_EQ(b->source_id, w.source_id) << int{w.bdf.bus} << ":" << int{w.bdf.device};
  }
  EXPECT_EQ(BindPciFunction(dmar, topo, 0, Bdf{0, 0x1f, 2})->source_id.rid(), 0x00fa);
  EXPECT_EQ(BindPciFunction(dmar, topo, 0, Bdf{3, 1, 0})->source_id.rid(), 0x0300);
  // Another segment has no DRHD; a function that was not enumerated is not bound.
  EXPECT_EQ(BindPciFunction(dmar, topo, 1, Bdf{0, 0x1f, 2}).status().ToC(), -ENOENT);
  EXPECT_EQ(BindPciFunction(dmar, topo, 0, Bdf{0, 9, 0}).status().ToC(), -ENOENT);
  // All at once.
  PciBinding out[pci::Topology::kMaxFunctions];
  size_t unbound = 99;
  const Result<size_t> n = BindPciFunctions(dmar, topo, 0, out, &unbound);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 10U);
  EXPECT_EQ(unbound, 0U);
  EXPECT_EQ(out[6].bdf, (Bdf{3, 1, 0}));  // depth-first: 00:00.0 00:01.0 00:02.0 01:00.0 ...
  EXPECT_EQ(BindPciFunctions(dmar, topo, 0, std::span<PciBinding>(out, 8)).status().ToC(), -ERANGE);
}

// The whole discovery the q35 platform does, on the dumped memory: RSDP -> RSDT -> MCFG (the
// ECAM's bus range) -> enumeration with firmware's resources kept -> DMAR -> bindings.
TEST_F(DmarPci, FromTheRsdpToTheBindingsOnTheDumpedMemory) {
  testing::DumpedTables dump;
  testing::LoadDump(kDir + "/q35_vtd_rootports", &dump);
  ASSERT_TRUE(dump.ok);
  ParseError e;
  const Result<RootTable> root = RootTable::FromRsdp(dump.memory, dump.address["rsdp"], &e);
  ASSERT_TRUE(root.ok()) << e.reason;
  const Result<Table> mcfg_table = root->Find("MCFG", 0, &e);
  ASSERT_TRUE(mcfg_table.ok()) << e.reason;
  const Result<Mcfg> mcfg = Mcfg::Parse(*mcfg_table, &e);
  ASSERT_TRUE(mcfg.ok()) << e.reason;
  const Result<EcamAllocation> ecam = mcfg->Find(0, 0);
  ASSERT_TRUE(ecam.ok());
  EXPECT_EQ(ecam->region_base(), 0xb000'0000U);
  const pci::Ecam accessor = EcamAccessor(*ecam, ecam->region_base());
  EXPECT_EQ(accessor.Address(Bdf{0, 0x1f, 2}, 0), 0xb00f'a000U);  // 0x1f << 15 | 2 << 12
  EXPECT_TRUE(accessor.Contains(Bdf{255, 0, 0}));

  // The simulated machine stands in for the ECAM window; SeaBIOS's ABAR of the AHCI is kept.
  RootPortMachine m;
  FakeFunction& ahci = *m.bus1.slots[0][0];
  FakeEcam::Bar(ahci, 5, 0x1000, false, false);
  ahci.Set32(0x24, 0xfe80'1000);
  pci::Topology topo(EcamHostBridge(*ecam), m.ecam);
  ASSERT_TRUE(topo.Enumerate().ok());
  EXPECT_EQ(topo.FindFunction(Bdf{1, 0, 0})->bars[5].cpu_addr, 0xfe80'1000U);
  EXPECT_EQ(ahci.Get32(0x24), 0xfe80'1000U);

  const Result<Table> dmar_table = root->Find("DMAR", 0, &e);
  ASSERT_TRUE(dmar_table.ok()) << e.reason;
  const Result<Dmar> dmar = Dmar::Parse(*dmar_table, &e);
  ASSERT_TRUE(dmar.ok()) << e.reason;
  PciBinding out[pci::Topology::kMaxFunctions];
  size_t unbound = 0;
  const Result<size_t> n = BindPciFunctions(*dmar, topo, ecam->segment, out, &unbound);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, topo.function_count());
  EXPECT_EQ(unbound, 0U);
  for (size_t i = 0; i < *n; ++i) EXPECT_EQ(out[i].register_base, 0xfed9'0000U);
  EXPECT_EQ(out[3].bdf, (Bdf{1, 0, 0}));
  EXPECT_EQ(out[3].source_id.rid(), 0x0100);
  EXPECT_EQ(out[6].source_id.rid(), 0x0300);  // edu, behind the PCIe-to-PCI bridge
}

TEST_F(DmarPci, PlainQ35DmarListsOnlyTheRootBusFunctionsItKnew) {
  // The q35_vtd DMAR against the root-port machine: the root ports are in no scope of it (they
  // were not in that machine), so they and everything below are not remapped by any DRHD.
  RootPortMachine m;
  pci::Topology topo(VirtHostBridge(), m.ecam);
  ASSERT_TRUE(topo.Enumerate().ok());
  const Dmar dmar = Parse(dmar_q35_);
  EXPECT_TRUE(BindPciFunction(dmar, topo, 0, Bdf{0, 0x1f, 2}).ok());
  EXPECT_EQ(BindPciFunction(dmar, topo, 0, Bdf{0, 2, 0}).status().ToC(), -ENOENT);
  EXPECT_EQ(BindPciFunction(dmar, topo, 0, Bdf{1, 0, 0}).status().ToC(), -ENOENT);
  EXPECT_EQ(BindPciFunction(dmar, topo, 0, Bdf{3, 1, 0}).status().ToC(), -ENOENT);
  PciBinding out[pci::Topology::kMaxFunctions];
  size_t unbound = 0;
  const Result<size_t> n = BindPciFunctions(dmar, topo, 0, out, &unbound);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 5U);  // the five root-bus functions
  EXPECT_EQ(unbound, 5U);
}

// Synthetic DMARs over the real header.
std::vector<uint8_t> Scope(uint8_t type, uint8_t bus, const std::vector<PathEntry>& path) {
  std::vector<uint8_t> s = {type, static_cast<uint8_t>(6 + 2 * path.size()), 0, 0, 0, bus};
  for (const PathEntry& p : path) {
    s.push_back(p.device);
    s.push_back(p.function);
  }
  return s;
}

std::vector<uint8_t> DrhdBytes(uint64_t base, uint8_t flags, uint16_t segment,
                               const std::vector<std::vector<uint8_t>>& scopes) {
  std::vector<uint8_t> s(16, 0);
  s[4] = flags;
  std::memcpy(&s[6], &segment, 2);
  std::memcpy(&s[8], &base, 8);
  for (const auto& sc : scopes) s.insert(s.end(), sc.begin(), sc.end());
  const uint16_t length = static_cast<uint16_t>(s.size());
  std::memcpy(&s[2], &length, 2);
  return s;
}

std::vector<uint8_t> RmrrBytes(uint64_t base, uint64_t limit,
                               const std::vector<std::vector<uint8_t>>& scopes) {
  std::vector<uint8_t> s(24, 0);
  s[0] = 1;
  std::memcpy(&s[8], &base, 8);
  std::memcpy(&s[16], &limit, 8);
  for (const auto& sc : scopes) s.insert(s.end(), sc.begin(), sc.end());
  const uint16_t length = static_cast<uint16_t>(s.size());
  std::memcpy(&s[2], &length, 2);
  return s;
}

std::vector<uint8_t> Build(const std::vector<uint8_t>& real,
                           const std::vector<std::vector<uint8_t>>& structures) {
  std::vector<uint8_t> t(real.begin(), real.begin() + 48);
  for (const auto& s : structures) t.insert(t.end(), s.begin(), s.end());
  testing::Seal(t);
  return t;
}

TEST_F(DmarPci, IncludePciAllTakesWhatNoOtherUnitLists) {
  RootPortMachine m;
  pci::Topology topo(VirtHostBridge(), m.ecam);
  ASSERT_TRUE(topo.Enumerate().ok());
  // Unit 0 at 0xfed9_0000 has the SATA function and rp2's hierarchy; unit 1 is the catch-all.
  const std::vector<uint8_t> bytes = Build(
      dmar_q35_, {DrhdBytes(0xfed9'0000, 0, 0, {Scope(1, 0, {{0x1f, 2}}), Scope(2, 0, {{3, 0}})}),
                  DrhdBytes(0xfed9'1000, Drhd::kIncludePciAll, 0, {Scope(3, 0xff, {{0, 0}})})});
  const Dmar dmar = Parse(bytes);
  const Result<PciBinding> sata = BindPciFunction(dmar, topo, 0, Bdf{0, 0x1f, 2});
  ASSERT_TRUE(sata.ok());
  EXPECT_EQ(sata->drhd_index, 0U);
  EXPECT_EQ(sata->match, DmarMatch::kEndpoint);
  const Result<PciBinding> edu = BindPciFunction(dmar, topo, 0, Bdf{3, 1, 0});
  ASSERT_TRUE(edu.ok());
  EXPECT_EQ(edu->drhd_index, 0U);
  EXPECT_EQ(edu->match, DmarMatch::kSubHierarchy);
  for (const Bdf& other : {Bdf{0, 0, 0}, Bdf{0, 0x1f, 3}, Bdf{0, 2, 0}, Bdf{1, 0, 0}}) {
    const Result<PciBinding> b = BindPciFunction(dmar, topo, 0, other);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->drhd_index, 1U);
    EXPECT_EQ(b->register_base, 0xfed9'1000U);
    EXPECT_EQ(b->match, DmarMatch::kIncludePciAll);
  }
  // The catch-all is per segment.
  EXPECT_EQ(BindPciFunction(dmar, topo, 1, Bdf{0, 0, 0}).status().ToC(), -ENOENT);
}

TEST_F(DmarPci, MultiHopPathsResolveThroughTheEnumeratedBridges) {
  RootPortMachine m;
  pci::Topology topo(VirtHostBridge(), m.ecam);
  ASSERT_TRUE(topo.Enumerate().ok());
  // 00:03.0 (secondary 2) -> 02:00.0 (secondary 3) -> 03:01.0: edu named by path, as 8.3.2's
  // example names a device behind two bridges.
  const std::vector<uint8_t> edu_path = Scope(1, 0, {{3, 0}, {0, 0}, {1, 0}});
  const std::vector<uint8_t> bytes = Build(dmar_q35_, {DrhdBytes(0xfed9'0000, 0, 0, {edu_path})});
  const Dmar dmar = Parse(bytes);
  const DeviceScope scope = *(*dmar.drhds().begin()).scopes().begin();
  EXPECT_EQ(ResolveScope(scope, topo).value_or(Bdf{}), (Bdf{3, 1, 0}));
  const Result<PciBinding> edu = BindPciFunction(dmar, topo, 0, Bdf{3, 1, 0});
  ASSERT_TRUE(edu.ok());
  EXPECT_EQ(edu->match, DmarMatch::kEndpoint);
  EXPECT_EQ(edu->source_id, (Bdf{3, 0, 0}));
  // The bridges on the path are not named by an endpoint scope.
  EXPECT_EQ(BindPciFunction(dmar, topo, 0, Bdf{2, 0, 0}).status().ToC(), -ENOENT);
  // A path through a function that is not a bridge (the SATA function) leads nowhere, as does
  // one through an absent slot; an I/O APIC scope is not a PCI path.
  const std::vector<uint8_t> nowhere =
      Build(dmar_q35_, {DrhdBytes(0xfed9'0000, 0, 0,
                                  {Scope(1, 0, {{0x1f, 2}, {0, 0}}), Scope(2, 0, {{7, 0}, {0, 0}}),
                                   Scope(3, 0xff, {{0, 0}})})});
  const Dmar bad = Parse(nowhere);
  auto it = (*bad.drhds().begin()).scopes().begin();
  EXPECT_EQ(ResolveScope(*it, topo).status().ToC(), -ENOENT);
  ++it;
  EXPECT_EQ(ResolveScope(*it, topo).status().ToC(), -ENOENT);
  ++it;
  EXPECT_EQ(ResolveScope(*it, topo).status().ToC(), -EINVAL);
  PciBinding out[pci::Topology::kMaxFunctions];
  size_t unbound = 0;
  EXPECT_EQ(BindPciFunctions(bad, topo, 0, out, &unbound).value_or(99), 0U);
  EXPECT_EQ(unbound, 10U);
}

TEST_F(DmarPci, TheMostSpecificClaimWinsAndEqualClaimsAreRefused) {
  RootPortMachine m;
  pci::Topology topo(VirtHostBridge(), m.ecam);
  ASSERT_TRUE(topo.Enumerate().ok());
  // Unit 0 claims rp2's hierarchy, unit 1 the PCIe-to-PCI bridge's below it, unit 2 edu itself.
  const std::vector<uint8_t> nested =
      Build(dmar_q35_, {DrhdBytes(0xfed9'0000, 0, 0, {Scope(2, 0, {{3, 0}})}),
                        DrhdBytes(0xfed9'1000, 0, 0, {Scope(2, 2, {{0, 0}})}),
                        DrhdBytes(0xfed9'2000, 0, 0, {Scope(1, 3, {{1, 0}})})});
  const Dmar dmar = Parse(nested);
  EXPECT_EQ(BindPciFunction(dmar, topo, 0, Bdf{0, 3, 0})->drhd_index, 0U);
  EXPECT_EQ(BindPciFunction(dmar, topo, 0, Bdf{2, 0, 0})->drhd_index, 1U);
  EXPECT_EQ(BindPciFunction(dmar, topo, 0, Bdf{3, 1, 0})->drhd_index, 2U);
  // Two units listing the SATA function: which one remaps it is unknowable.
  const std::vector<uint8_t> twice =
      Build(dmar_q35_, {DrhdBytes(0xfed9'0000, 0, 0, {Scope(1, 0, {{0x1f, 2}})}),
                        DrhdBytes(0xfed9'1000, 0, 0, {Scope(1, 0, {{0x1f, 2}})})});
  const Dmar ambiguous = Parse(twice);
  EXPECT_EQ(BindPciFunction(ambiguous, topo, 0, Bdf{0, 0x1f, 2}).status().ToC(), -EINVAL);
  PciBinding out[pci::Topology::kMaxFunctions];
  EXPECT_EQ(BindPciFunctions(ambiguous, topo, 0, out).status().ToC(), -EINVAL);
  // One unit listing it twice is no ambiguity.
  const std::vector<uint8_t> repeated =
      Build(dmar_q35_,
            {DrhdBytes(0xfed9'0000, 0, 0, {Scope(1, 0, {{0x1f, 2}}), Scope(1, 0, {{0x1f, 2}})})});
  EXPECT_TRUE(BindPciFunction(Parse(repeated), topo, 0, Bdf{0, 0x1f, 2}).ok());
}

TEST_F(DmarPci, RmrrAppliesToTheFunctionsInItsScope) {
  RootPortMachine m;
  pci::Topology topo(VirtHostBridge(), m.ecam);
  ASSERT_TRUE(topo.Enumerate().ok());
  const std::vector<uint8_t> bytes =
      Build(dmar_q35_, {DrhdBytes(0xfed9'0000, Drhd::kIncludePciAll, 0, {}),
                        RmrrBytes(0x7d00'0000, 0x7d0f'ffff, {Scope(1, 0, {{0x1f, 3}})}),
                        RmrrBytes(0x7e00'0000, 0x7e00'0fff, {Scope(2, 0, {{2, 0}})})});
  const Dmar dmar = Parse(bytes);
  ASSERT_EQ(dmar.rmrrs().size(), 2U);
  auto it = dmar.rmrrs().begin();
  const Rmrr smbus = *it;
  ++it;
  const Rmrr rp1 = *it;
  EXPECT_TRUE(RmrrApplies(smbus, topo, 0, Bdf{0, 0x1f, 3}));
  EXPECT_FALSE(RmrrApplies(smbus, topo, 0, Bdf{0, 0x1f, 2}));
  EXPECT_FALSE(RmrrApplies(smbus, topo, 1, Bdf{0, 0x1f, 3}));  // other segment
  EXPECT_TRUE(RmrrApplies(rp1, topo, 0, Bdf{1, 0, 0}));        // below rp1
  EXPECT_FALSE(RmrrApplies(rp1, topo, 0, Bdf{3, 1, 0}));
  EXPECT_FALSE(RmrrApplies(rp1, topo, 0, Bdf{9, 0, 0}));  // not enumerated
}

}  // namespace
}  // namespace deviso::acpi
