// Topology's enumeration through bridges on the host, against a simulated ECAM
// (testing/fake_ecam.h): bus-number assignment, BAR and window placement, DMA aliases, INTx
// swizzling, bus mastering, the capability walk, and the Ecam accessor's addressing.

#include "pci/pci.h"

#include <gtest/gtest.h>

#include <vector>

#include "pci/testing/fake_ecam.h"

namespace deviso::pci {
namespace {

using testing::FakeBus;
using testing::FakeEcam;
using testing::FakeFunction;
using testing::RootPortTopology;
using testing::VirtHostBridge;

const Function* At(const Topology& pci, uint8_t bus, uint8_t dev, uint8_t fn) {
  return pci.FindFunction(Bdf{bus, dev, fn});
}

TEST(PciEnumeration, RootBusOnlyAsBefore) {
  FakeEcam ecam;
  FakeFunction& ahci = ecam.Endpoint(ecam.root, 2, 0, 0x2922);
  FakeEcam::Bar(ahci, 5, 0x1000, false, false);
  Topology pci(VirtHostBridge(), ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  ASSERT_EQ(pci.function_count(), 1U);
  const Function& f = pci.function(0);
  EXPECT_EQ(f.bdf, (Bdf{0, 2, 0}));
  EXPECT_EQ(f.dma_alias, f.bdf);
  EXPECT_EQ(f.depth, 0);
  EXPECT_EQ(f.pcie_type, PortType::kEndpoint);
  EXPECT_EQ(f.bars[5].cpu_addr, 0x1000'0000U);
  EXPECT_EQ(ahci.Get32(0x24), 0x1000'0000U);
  EXPECT_EQ(ahci.command(), 0x0402);  // memory on, INTx disabled, no bus master
}

TEST(PciEnumeration, NumbersBridgesDepthFirst) {
  RootPortTopology t;
  Topology pci(VirtHostBridge(), t.ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  // nic, 3 root ports, 2 AHCI, the PCIe-to-PCI bridge, 2 conventional devices.
  ASSERT_EQ(pci.function_count(), 9U);
  EXPECT_EQ(pci.last_bus(), 4);
  // primary, secondary, subordinate in the registers, as recorded.
  EXPECT_EQ(t.rp[0]->Get32(0x18) & 0xffffff, 0x010100U);
  EXPECT_EQ(t.rp[1]->Get32(0x18) & 0xffffff, 0x020200U);
  EXPECT_EQ(t.rp[2]->Get32(0x18) & 0xffffff, 0x040300U);  // bus 3 and the bus 4 below
  EXPECT_EQ(t.pcie_pci->Get32(0x18) & 0xffffff, 0x040403U);
  const Function* rp3 = At(pci, 0, 5, 0);
  ASSERT_NE(rp3, nullptr);
  EXPECT_EQ(rp3->bridge.secondary, 3);
  EXPECT_EQ(rp3->bridge.subordinate, 4);
  EXPECT_FALSE(rp3->bridge.firmware_numbered);
  const Function* a1 = At(pci, 1, 0, 0);
  const Function* a2 = At(pci, 2, 0, 0);
  ASSERT_NE(a1, nullptr);
  ASSERT_NE(a2, nullptr);
  EXPECT_EQ(a1->depth, 1);
  EXPECT_EQ(a1->upstream, 1);  // function(1) is the first root port
  EXPECT_EQ(pci.function(static_cast<size_t>(a1->upstream)).bdf, (Bdf{0, 3, 0}));
  // Parents before children, depth-first.
  EXPECT_EQ(pci.function(2).bdf, (Bdf{1, 0, 0}));
  EXPECT_EQ(pci.function(3).bdf, (Bdf{0, 4, 0}));
  // A root port's link has one device: the one that answers at every device number is
  // listed once.
  EXPECT_EQ(At(pci, 1, 1, 0), nullptr);
  // Behind PCIe ports a function keeps its requester ID.
  EXPECT_EQ(a1->dma_alias, (Bdf{1, 0, 0}));
  EXPECT_EQ(a2->dma_alias, (Bdf{2, 0, 0}));
}

TEST(PciEnumeration, PcieToPciBridgeAliasesItsDevicesToSecondaryBusDevice0) {
  RootPortTopology t;
  Topology pci(VirtHostBridge(), t.ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  const Function* c1 = At(pci, 4, 1, 0);
  const Function* c2 = At(pci, 4, 2, 0);
  ASSERT_NE(c1, nullptr);
  ASSERT_NE(c2, nullptr);
  EXPECT_EQ(c1->depth, 2);
  // PCIe-to-PCI/PCI-X Bridge 1.0, 2.3: (secondary bus, 00.0) for both: one StreamID.
  EXPECT_EQ(c1->dma_alias, (Bdf{4, 0, 0}));
  EXPECT_EQ(c2->dma_alias, (Bdf{4, 0, 0}));
  EXPECT_EQ(pci.DmaRequester(c2->bdf), (Bdf{4, 0, 0}));
  // The bridge itself is a PCIe function on bus 3: its own ID.
  EXPECT_EQ(At(pci, 3, 0, 0)->dma_alias, (Bdf{3, 0, 0}));
  // Not an enumerated function: taken as is.
  EXPECT_EQ(pci.DmaRequester(Bdf{7, 1, 0}), (Bdf{7, 1, 0}));
}

TEST(PciEnumeration, ConventionalPciBridgeAliasesItsDevicesToItself) {
  FakeEcam ecam;
  FakeBus below;
  FakeFunction& br = ecam.Bridge(ecam.root, 6, 0, PortType::kNotPcie, below);
  br.pref_implemented = false;
  br.Set32(0x24, 0);
  FakeFunction& dev = ecam.Endpoint(below, 3, 0, 0x11e8, PortType::kNotPcie);
  FakeEcam::Bar(dev, 0, 0x1000, false, false);
  Topology pci(VirtHostBridge(), ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  const Function* d = At(pci, 1, 3, 0);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->dma_alias, (Bdf{0, 6, 0}));
  const Function* b = At(pci, 0, 6, 0);
  EXPECT_FALSE(b->bridge.pref_implemented);
  EXPECT_EQ(br.Get32(0x24), 0U);  // no prefetchable window: nothing written
}

TEST(PciEnumeration, BridgeWindowsCoverTheBarsBelowThem) {
  RootPortTopology t;
  Topology pci(VirtHostBridge(), t.ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  // 00:01.0's 16 KiB BAR4 first at 0x1000_0000; each root port's window starts on the next
  // MiB granule: rp1 [0x1010_0000, 0x101f_ffff] holds the first AHCI's ABAR.
  const Function* nic = At(pci, 0, 1, 0);
  EXPECT_EQ(nic->bars[4].cpu_addr, 0x1000'0000U);
  const Function* rp1 = At(pci, 0, 3, 0);
  EXPECT_TRUE(rp1->bridge.mem.enabled);
  EXPECT_EQ(rp1->bridge.mem.base, 0x1010'0000U);
  EXPECT_EQ(rp1->bridge.mem.limit, 0x101f'ffffU);
  EXPECT_EQ(t.rp[0]->Get32(0x20), 0x1010'1010U);  // limit [31:16] = 0x1010, base = 0x1010
  EXPECT_EQ(At(pci, 1, 0, 0)->bars[5].cpu_addr, 0x1010'0000U);
  const Function* rp2 = At(pci, 0, 4, 0);
  EXPECT_EQ(rp2->bridge.mem.base, 0x1020'0000U);
  EXPECT_EQ(At(pci, 2, 0, 0)->bars[5].cpu_addr, 0x1020'0000U);
  // rp3 holds the PCIe-to-PCI bridge's own BAR (on bus 3) and its window (bus 4) inside.
  const Function* rp3 = At(pci, 0, 5, 0);
  const Function* pp = At(pci, 3, 0, 0);
  const Function* c1 = At(pci, 4, 1, 0);
  const Function* c2 = At(pci, 4, 2, 0);
  EXPECT_EQ(pp->bars[0].cpu_addr, 0x1030'0000U);
  EXPECT_EQ(pp->bridge.mem.base, 0x1040'0000U);
  EXPECT_EQ(c1->bars[0].cpu_addr, 0x1040'0000U);
  EXPECT_EQ(c2->bars[0].cpu_addr, 0x1050'0000U);
  EXPECT_EQ(pp->bridge.mem.limit, 0x105f'ffffU);
  EXPECT_EQ(rp3->bridge.mem.base, 0x1030'0000U);
  EXPECT_EQ(rp3->bridge.mem.limit, 0x105f'ffffU);
  for (const Function* b : {rp1, rp2, rp3, pp}) {
    for (size_t i = 0; i < pci.function_count(); ++i) {
      const Function& f = pci.function(i);
      // Every BAR of a function below `b` is inside its memory window.
      bool below = false;
      for (int16_t up = f.upstream; up >= 0; up = pci.function(static_cast<size_t>(up)).upstream) {
        below = below || &pci.function(static_cast<size_t>(up)) == b;
      }
      if (!below) continue;
      for (const Bar& bar : f.bars) {
        if (bar.cpu_addr == 0) continue;
        EXPECT_GE(bar.cpu_addr, b->bridge.mem.base);
        EXPECT_LE(bar.cpu_addr + bar.size - 1, b->bridge.mem.limit);
      }
    }
    // Nothing prefetchable above 4 GiB: the prefetchable windows are closed (base > limit).
    EXPECT_FALSE(b->bridge.pref.enabled);
  }
  EXPECT_EQ(t.rp[0]->Get32(0x24), 0x0001fff1U);
  // Forwarding on, bus mastering still off, I/O window closed.
  EXPECT_EQ(t.rp[0]->command() & 0x7, 0x2);
  EXPECT_EQ(t.rp[0]->Get32(0x1c) & 0xffff, 0x00f0U);
}

TEST(PciEnumeration, LargePrefetchableBarGoesThroughSixtyFourBitWindows) {
  FakeEcam ecam;
  FakeBus bus1;
  FakeFunction& rp = ecam.Bridge(ecam.root, 2, 0, PortType::kRootPort, bus1);
  FakeFunction& dev = ecam.Endpoint(bus1, 0, 0, 0x1110);
  FakeEcam::Bar(dev, 0, 0x1000, false, false);
  FakeEcam::Bar(dev, 2, uint64_t{1} << 30, true, true);  // 1 GiB: beyond the 32-bit window
  Topology pci(VirtHostBridge(), ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  const Function* d = At(pci, 1, 0, 0);
  EXPECT_EQ(d->bars[0].cpu_addr, 0x1000'0000U);
  EXPECT_EQ(d->bars[2].cpu_addr, 0x80'0000'0000U);
  EXPECT_EQ(dev.Get32(0x18), 0x0000000cU);  // low half: address bits 0, flags 64-bit pref
  EXPECT_EQ(dev.Get32(0x1c), 0x80U);
  const Function* b = At(pci, 0, 2, 0);
  EXPECT_TRUE(b->bridge.pref.enabled);
  EXPECT_EQ(b->bridge.pref.base, 0x80'0000'0000U);
  EXPECT_EQ(b->bridge.pref.limit, 0x80'3fff'ffffU);
  EXPECT_EQ(rp.Get32(0x24), 0x3ff10001U);
  EXPECT_EQ(rp.Get32(0x28), 0x80U);
  EXPECT_EQ(rp.Get32(0x2c), 0x80U);
  EXPECT_EQ(b->bridge.mem.base, 0x1000'0000U);
  EXPECT_EQ(b->bridge.mem.limit, 0x100f'ffffU);
}

TEST(PciEnumeration, LargeBarBehindBridgeWithoutSixtyFourBitWindowIsRefused) {
  FakeEcam ecam;
  FakeBus bus1;
  FakeFunction& rp = ecam.Bridge(ecam.root, 2, 0, PortType::kRootPort, bus1);
  rp.pref64 = false;
  rp.Set32(0x24, 0);
  FakeFunction& dev = ecam.Endpoint(bus1, 0, 0, 0x1110);
  FakeEcam::Bar(dev, 2, uint64_t{1} << 30, true, true);
  Topology pci(VirtHostBridge(), ecam);
  EXPECT_EQ(pci.Enumerate().ToC(), -ENOMEM);
  // A non-prefetchable one cannot pass any bridge above 4 GiB either.
  FakeEcam ecam2;
  FakeBus b1;
  ecam2.Bridge(ecam2.root, 2, 0, PortType::kRootPort, b1);
  FakeFunction& dev2 = ecam2.Endpoint(b1, 0, 0, 0x1110);
  FakeEcam::Bar(dev2, 2, uint64_t{1} << 30, true, false);
  Topology pci2(VirtHostBridge(), ecam2);
  EXPECT_EQ(pci2.Enumerate().ToC(), -ENOMEM);
  // On the root bus the 64-bit window takes it (as before bridges were enumerated).
  FakeEcam ecam3;
  FakeFunction& dev3 = ecam3.Endpoint(ecam3.root, 4, 0, 0x1110);
  FakeEcam::Bar(dev3, 2, uint64_t{1} << 30, true, false);
  Topology pci3(VirtHostBridge(), ecam3);
  ASSERT_TRUE(pci3.Enumerate().ok());
  EXPECT_EQ(pci3.function(0).bars[2].cpu_addr, 0x80'0000'0000U);
}

TEST(PciEnumeration, SwitchBelowRootPortNumberedDepthFirst) {
  FakeEcam ecam;
  FakeBus b1, b2, b3, b4;
  FakeFunction& rp = ecam.Bridge(ecam.root, 1, 0, PortType::kRootPort, b1);
  FakeFunction& up = ecam.Bridge(b1, 0, 0, PortType::kUpstreamPort, b2);
  up.cfg[0x0e] = 0x01;
  FakeFunction& dp0 = ecam.Bridge(b2, 0, 0, PortType::kDownstreamPort, b3);
  FakeFunction& dp1 = ecam.Bridge(b2, 1, 0, PortType::kDownstreamPort, b4);
  b2.alias_every_device = false;  // a switch's internal bus has several devices
  FakeEcam::Bar(ecam.Endpoint(b3, 0, 0, 0x2922), 5, 0x1000, false, false);
  FakeEcam::Bar(ecam.Endpoint(b4, 0, 0, 0x2922), 5, 0x1000, false, false);
  Topology pci(VirtHostBridge(), ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  EXPECT_EQ(pci.function_count(), 6U);
  EXPECT_EQ(rp.Get32(0x18) & 0xffffff, 0x040100U);
  EXPECT_EQ(up.Get32(0x18) & 0xffffff, 0x040201U);
  EXPECT_EQ(dp0.Get32(0x18) & 0xffffff, 0x030302U);
  EXPECT_EQ(dp1.Get32(0x18) & 0xffffff, 0x040402U);
  const Function* e = At(pci, 4, 0, 0);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->depth, 3);
  EXPECT_EQ(e->dma_alias, (Bdf{4, 0, 0}));
  EXPECT_EQ(At(pci, 0, 1, 0)->bridge.subordinate, 4);
}

TEST(PciEnumeration, KeepsBusNumbersFirmwareProgrammed) {
  FakeEcam ecam;
  FakeBus b1, b2;
  FakeFunction& rp1 = ecam.Bridge(ecam.root, 1, 0, PortType::kRootPort, b1);
  FakeFunction& rp2 = ecam.Bridge(ecam.root, 2, 0, PortType::kRootPort, b2);
  rp1.Set32(0x18, 0x00070500);  // firmware: secondary 5, subordinate 7
  ecam.Endpoint(b1, 0, 0, 0x2922);
  ecam.Endpoint(b2, 0, 0, 0x2922);
  Topology pci(VirtHostBridge(), ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  EXPECT_EQ(rp1.Get32(0x18) & 0xffffff, 0x070500U);
  EXPECT_TRUE(At(pci, 0, 1, 0)->bridge.firmware_numbered);
  EXPECT_NE(At(pci, 5, 0, 0), nullptr);
  // The next bridge numbers after firmware's range.
  EXPECT_EQ(rp2.Get32(0x18) & 0xffffff, 0x080800U);
  EXPECT_NE(At(pci, 8, 0, 0), nullptr);
  // A second enumeration finds its own numbers valid and keeps them all.
  ASSERT_TRUE(pci.Enumerate().ok());
  EXPECT_EQ(rp2.Get32(0x18) & 0xffffff, 0x080800U);
  EXPECT_TRUE(At(pci, 0, 2, 0)->bridge.firmware_numbered);
  EXPECT_EQ(pci.function_count(), 4U);
}

TEST(PciEnumeration, InvalidFirmwareBusNumbersAreReplaced) {
  FakeEcam ecam;
  FakeBus b1;
  FakeFunction& rp = ecam.Bridge(ecam.root, 1, 0, PortType::kRootPort, b1);
  rp.Set32(0x18, 0x00000303);  // primary 3 (not its bus), subordinate < secondary
  ecam.Endpoint(b1, 0, 0, 0x2922);
  Topology pci(VirtHostBridge(), ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  EXPECT_EQ(rp.Get32(0x18) & 0xffffff, 0x010100U);
  EXPECT_FALSE(At(pci, 0, 1, 0)->bridge.firmware_numbered);
}

TEST(PciEnumeration, BusesStayInsideTheEcamRange) {
  FakeEcam ecam;
  FakeBus b1, b2;
  ecam.Bridge(ecam.root, 1, 0, PortType::kRootPort, b1);
  ecam.Bridge(ecam.root, 2, 0, PortType::kRootPort, b2);
  HostBridge info = VirtHostBridge();
  info.bus_end = 1;  // room for one bridge only
  Topology pci(info, ecam);
  EXPECT_EQ(pci.Enumerate().ToC(), -ERANGE);
  EXPECT_EQ(pci.last_bus(), 1);
}

TEST(PciEnumeration, BusMasterOpensTheBridgesAboveOnly) {
  RootPortTopology t;
  Topology pci(VirtHostBridge(), t.ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  for (FakeFunction* f : {t.rp[0], t.rp[1], t.rp[2], t.pcie_pci, t.ahci[0], t.conv[0]}) {
    EXPECT_EQ(f->command() & 0x4, 0) << "no bus master after enumeration";
  }
  ASSERT_TRUE(pci.EnableBusMaster(Bdf{4, 1, 0}).ok());
  EXPECT_NE(t.conv[0]->command() & 0x4, 0);
  EXPECT_NE(t.pcie_pci->command() & 0x4, 0);
  EXPECT_NE(t.rp[2]->command() & 0x4, 0);
  EXPECT_EQ(t.rp[0]->command() & 0x4, 0);
  EXPECT_EQ(t.conv[1]->command() & 0x4, 0);
  ASSERT_TRUE(pci.DisableBusMaster(Bdf{4, 1, 0}).ok());
  EXPECT_EQ(t.conv[0]->command() & 0x4, 0);
  EXPECT_EQ(pci.EnableBusMaster(Bdf{9, 0, 0}).ToC(), -ENOENT);
}

TEST(PciEnumeration, IntxSwizzlesPerBridgeLevel) {
  RootPortTopology t;
  t.conv[1]->cfg[0x3d] = 2;  // INTB
  Topology pci(VirtHostBridge(), t.ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  // Root bus: unchanged.
  Result<Topology::RootIntx> r = pci.SwizzleIntx(Bdf{0, 1, 0}, 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->root, (Bdf{0, 1, 0}));
  EXPECT_EQ(r->pin, 1);
  // 01:00.0 INTA behind 00:03.0: device 0 keeps INTA at the root port's slot 3.
  r = pci.SwizzleIntx(Bdf{1, 0, 0}, 1);
  EXPECT_EQ(r->root, (Bdf{0, 3, 0}));
  EXPECT_EQ(r->pin, 1);
  // 04:02.0 INTB: (2 - 1 + 2) % 4 + 1 = INTD at 03:00.0, then (4 - 1 + 0) % 4 + 1 = INTD at
  // root port 00:05.0.
  r = pci.SwizzleIntx(Bdf{4, 2, 0}, 2);
  EXPECT_EQ(r->root, (Bdf{0, 5, 0}));
  EXPECT_EQ(r->pin, 4);
  // 04:01.0 INTD: (4 - 1 + 1) % 4 + 1 = INTA.
  r = pci.SwizzleIntx(Bdf{4, 1, 0}, 4);
  EXPECT_EQ(r->pin, 1);
  EXPECT_EQ(pci.SwizzleIntx(Bdf{4, 1, 0}, 0).status().ToC(), -EINVAL);
  EXPECT_EQ(pci.SwizzleIntx(Bdf{4, 1, 0}, 5).status().ToC(), -EINVAL);
}

// SeaBIOS on q35 assigns BARs and windows itself, and the windows it used are only described
// by AML: with keep_firmware_resources the topology records them and changes nothing.
TEST(PciEnumeration, KeepsFirmwareBarsAndWindows) {
  FakeEcam ecam;
  FakeBus bus1;
  FakeFunction& rp = ecam.Bridge(ecam.root, 2, 0, PortType::kRootPort, bus1);
  rp.Set32(0x18, 0x00010100);
  rp.Set32(0x20, 0xfe9f'fe80);  // memory window [0xfe80_0000, 0xfe9f_ffff]
  rp.Set32(0x24, 0x0001'fff1);  // 64-bit prefetchable window, closed
  rp.Set32(0x1c, 0x0000'2020);  // I/O window firmware opened
  FakeFunction& ahci = ecam.Endpoint(bus1, 0, 0, 0x2922);
  FakeEcam::Bar(ahci, 5, 0x1000, false, false);
  ahci.Set32(0x24, 0xfe80'1000);
  FakeEcam::Bar(ahci, 0, 0x4000, true, true);  // 64-bit prefetchable at 0x8_0000_0000
  ahci.Set32(0x10, 0x0000'000c);
  ahci.Set32(0x14, 0x8);
  FakeFunction& unassigned = ecam.Endpoint(ecam.root, 4, 0, 0x1234);
  FakeEcam::Bar(unassigned, 1, 0x100, false, false);
  HostBridge host;  // no windows: bus addresses are CPU addresses
  host.keep_firmware_resources = true;
  Topology pci(host, ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  const Function* a = pci.FindFunction(Bdf{1, 0, 0});
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->bars[5].cpu_addr, 0xfe80'1000U);
  EXPECT_EQ(a->bars[5].size, 0x1000U);
  EXPECT_EQ(a->bars[0].cpu_addr, 0x8'0000'0000U);
  EXPECT_EQ(a->bars[0].size, 0x4000U);
  EXPECT_TRUE(a->bars[0].is_64bit);
  // Sized, then restored exactly.
  EXPECT_EQ(ahci.Get32(0x24), 0xfe80'1000U);
  EXPECT_EQ(ahci.Get32(0x10), 0x0000'000cU);
  EXPECT_EQ(ahci.Get32(0x14), 0x8U);
  const Function* port = pci.FindFunction(Bdf{0, 2, 0});
  EXPECT_TRUE(port->bridge.mem.enabled);
  EXPECT_EQ(port->bridge.mem.base, 0xfe80'0000U);
  EXPECT_EQ(port->bridge.mem.limit, 0xfe9f'ffffU);
  EXPECT_TRUE(port->bridge.pref_implemented);
  EXPECT_FALSE(port->bridge.pref.enabled);
  EXPECT_EQ(rp.Get32(0x20), 0xfe9f'fe80U);
  EXPECT_EQ(rp.Get32(0x24), 0x0001'fff1U);
  EXPECT_EQ(rp.Get32(0x1c) & 0xffff, 0x2020U);  // firmware's I/O window left alone
  EXPECT_TRUE(port->bridge.firmware_numbered);
  // A BAR firmware left at 0 is reported unassigned, and not given an address.
  const Function* u = pci.FindFunction(Bdf{0, 4, 0});
  EXPECT_EQ(u->bars[1].cpu_addr, 0U);
  EXPECT_EQ(u->bars[1].size, 0x100U);
  EXPECT_EQ(unassigned.Get32(0x14), 0U);
  // Decoding on, DMA still off.
  EXPECT_EQ(ahci.command(), 0x0402);
  EXPECT_EQ(rp.command() & 0x7, 0x2);
}

// A 64-bit BAR type in the last BAR slot has no upper half to size: taken as 32-bit (a type 1
// header's BAR1 would otherwise "size" the bus-number register).
TEST(PciEnumeration, SixtyFourBitTypeInTheLastBarSlotIsNotFollowedPastIt) {
  FakeEcam ecam;
  FakeBus bus1;
  FakeFunction& br = ecam.Bridge(ecam.root, 1, 0, PortType::kRootPort, bus1);
  FakeEcam::Bar(br, 1, 0x1000, false, false);
  br.Set32(0x14, 0x4);  // BAR1 claims 64-bit
  Topology pci(VirtHostBridge(), ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  EXPECT_EQ(br.Get32(0x18) & 0xffffff, 0x010100U);  // bus numbers intact
  EXPECT_FALSE(pci.FindFunction(Bdf{0, 1, 0})->bars[1].is_64bit);
}

TEST(PciEnumeration, CapabilityWalkFindsEachAndStopsOnLoops) {
  FakeEcam ecam;
  FakeFunction& ahci = ecam.Endpoint(ecam.root, 2, 0, 0x2922);
  FakeFunction& conv = ecam.Endpoint(ecam.root, 3, 0, 0x11e8, PortType::kNotPcie);
  Topology pci(VirtHostBridge(), ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  // The fake lists power management at 0x40, then PCI Express at 0x60.
  EXPECT_EQ(pci.FindCapability(Bdf{0, 2, 0}, 0x01).value_or(0), 0x40);
  EXPECT_EQ(pci.FindCapability(Bdf{0, 2, 0}, 0x10).value_or(0), 0x60);
  EXPECT_EQ(pci.function(0).pcie_capability, 0x60);
  EXPECT_EQ(pci.FindCapability(Bdf{0, 2, 0}, 0x05).status().ToC(), -ENOENT);  // no MSI
  // No capability list (Status bit 4 clear).
  EXPECT_EQ(pci.FindCapability(Bdf{0, 3, 0}, 0x10).status().ToC(), -ENOENT);
  EXPECT_EQ(pci.function(1).pcie_capability, 0);
  EXPECT_EQ(pci.function(1).pcie_type, PortType::kNotPcie);
  (void)conv;
  // A list that points back at itself ends after at most 48 entries.
  ahci.cfg[0x61] = 0x40;  // PCIe capability's next -> the PM capability
  ahci.cfg[0x41] = 0x60;
  EXPECT_EQ(pci.FindCapability(Bdf{0, 2, 0}, 0x05).status().ToC(), -ENOENT);
  ahci.cfg[0x41] = 0x40;  // PM capability -> itself
  EXPECT_EQ(pci.FindCapability(Bdf{0, 2, 0}, 0x10).status().ToC(), -ENOENT);
  // Pointers into the header (below 0x40) end the list.
  ahci.cfg[0x34] = 0x3c;
  EXPECT_EQ(pci.FindCapability(Bdf{0, 2, 0}, 0x01).status().ToC(), -ENOENT);
}

TEST(PciEnumeration, BridgeAboveABus) {
  RootPortTopology t;
  Topology pci(VirtHostBridge(), t.ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  ASSERT_NE(pci.BridgeAbove(4), nullptr);
  EXPECT_EQ(pci.BridgeAbove(4)->bdf, (Bdf{3, 0, 0}));  // the PCIe-to-PCI bridge
  EXPECT_EQ(pci.BridgeAbove(3)->bdf, (Bdf{0, 5, 0}));
  EXPECT_EQ(pci.BridgeAbove(0), nullptr);
  EXPECT_EQ(pci.BridgeAbove(9), nullptr);
}

// The Ecam accessor over host memory standing in for the mapped window: PCIe 4.0 7.2.2
// addressing relative to bus_start, all ones and no writes outside the bus range.
TEST(Ecam, AddressesRelativeToItsFirstBus) {
  std::vector<uint32_t> window((2u << 20) / 4, 0);  // buses 4 and 5
  const uintptr_t base = reinterpret_cast<uintptr_t>(window.data());
  Ecam ecam(base, 4, 5);
  // 05:01.2 offset 0x10: (1 << 20) | (1 << 15) | (2 << 12) | 0x10.
  const size_t word = ((1u << 20) | (1u << 15) | (2u << 12) | 0x10) / 4;
  window[word] = 0x12345678;
  EXPECT_EQ(ecam.Read32(Bdf{5, 1, 2}, 0x10), 0x12345678U);
  EXPECT_EQ(ecam.Read16(Bdf{5, 1, 2}, 0x12), 0x1234);
  EXPECT_EQ(ecam.Address(Bdf{4, 0, 0}, 0), base);
  ecam.Write16(Bdf{5, 1, 2}, 0x10, 0xabcd);
  EXPECT_EQ(window[word], 0x1234abcdU);
  ecam.Write32(Bdf{4, 31, 7}, 0xffc, 0xcafef00d);
  EXPECT_EQ(window[((31u << 15) | (7u << 12) | 0xffc) / 4], 0xcafef00dU);
  // Outside [4, 5]: all ones, writes dropped.
  EXPECT_EQ(ecam.Read32(Bdf{3, 0, 0}, 0), 0xffffffffU);
  EXPECT_EQ(ecam.Read16(Bdf{6, 0, 0}, 0), 0xffff);
  ecam.Write32(Bdf{6, 0, 0}, 0, 1);
  EXPECT_EQ(ecam.Read32(Bdf{4, 0, 0}, 0), 0U);
  // No ECAM at all: nothing answers.
  const Ecam none;
  EXPECT_EQ(none.Read32(Bdf{0, 0, 0}, 0), 0xffffffffU);
}

}  // namespace
}  // namespace deviso::pci
