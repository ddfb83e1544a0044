// PciHost's enumeration through bridges on the host, against a simulated ECAM: a small fake
// configuration space that routes a configuration cycle through bridges by their bus-number
// registers (PCI-to-PCI Bridge 1.2, 3.2.5.2-4), sizes BARs (PCI 3.0 6.2.5.1) and keeps bridge
// window registers as hardware does. Checks bus-number assignment, BAR and window placement,
// DMA aliases, INTx swizzling, and the lookups (StreamID, GIC interrupt) with QEMU's own DTB.
// CTest label `dt` (built beside dt_platform_test in src/dt/CMakeLists.txt).

#include "pci.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <memory>
#include <vector>

#include "dt/dt_test_util.h"
#include "platform_info.h"

namespace deviso::qemu_virt {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

struct FakeBus;

// One function's 256-byte configuration header with the hardware's write semantics.
struct FakeFunction {
  std::array<uint8_t, 256> cfg{};
  std::array<uint64_t, 6> bar_size{};  // 0: not implemented
  std::array<bool, 6> bar64{};
  bool bridge = false;
  bool pref_implemented = true;
  bool pref64 = true;
  FakeBus* below = nullptr;  // bridges: the secondary bus

  uint32_t Get32(size_t o) const {
    uint32_t v = 0;
    std::memcpy(&v, &cfg[o], 4);
    return v;
  }
  void Set32(size_t o, uint32_t v) { std::memcpy(&cfg[o], &v, 4); }
  uint8_t secondary() const { return cfg[0x19]; }
  uint8_t subordinate() const { return cfg[0x1a]; }
  uint16_t command() const { return static_cast<uint16_t>(Get32(0x04)); }

  void Write32(size_t o, uint32_t v) {
    const unsigned bars = bridge ? 2 : 6;
    if (o >= 0x10 && o < 0x10 + 4 * bars) {
      const unsigned i = static_cast<unsigned>((o - 0x10) / 4);
      // The upper half of a 64-bit BAR, or a BAR of its own.
      if (i > 0 && bar64[i - 1] && bar_size[i - 1] != 0) {
        const uint64_t mask = ~(bar_size[i - 1] - 1);
        Set32(o, v & static_cast<uint32_t>(mask >> 32));
        return;
      }
      const uint32_t flags = Get32(o) & 0xf;
      const uint32_t mask = bar_size[i] != 0 ? static_cast<uint32_t>(~(bar_size[i] - 1)) : 0;
      Set32(o, (v & mask & ~0xfU) | (bar_size[i] != 0 ? flags : 0));
      return;
    }
    if (o < 0x10) return;  // IDs, class: read-only (Command through Write16)
    if (bridge && o == 0x20) {
      Set32(o, v & 0xfff0fff0);
      return;
    }
    if (bridge && o == 0x24) {
      if (!pref_implemented) return;
      const uint32_t type = pref64 ? 1 : 0;
      Set32(o, (v & 0xfff0fff0) | type | (type << 16));
      return;
    }
    if (bridge && (o == 0x28 || o == 0x2c) && !(pref_implemented && pref64)) return;
    Set32(o, v);
  }
  void Write16(size_t o, uint16_t v) {
    if (o == 0x06 || o == 0x1e) return;  // Status registers: RW1C, nothing set here
    uint32_t w = Get32(o & ~size_t{3});
    const unsigned shift = 8 * static_cast<unsigned>(o & 2);
    w = (w & ~(0xffffU << shift)) | (uint32_t{v} << shift);
    Set32(o & ~size_t{3}, w);
  }
};

struct FakeBus {
  FakeFunction* slots[32][8] = {};
  bool alias_every_device = false;  // a PCIe link: device 0 answers at every device number
};

// The simulated ECAM: the root bus is `root_number`; a cycle for any other bus goes down
// through the bridge whose [secondary, subordinate] holds it, as a bridge forwards it.
class FakeEcam final : public PciConfigSpace {
 public:
  FakeEcam() = default;
  virtual ~FakeEcam() = default;
  FakeEcam(const FakeEcam&) = delete;
  FakeEcam& operator=(const FakeEcam&) = delete;
  FakeFunction& Add(FakeBus& bus, uint8_t dev, uint8_t fn, uint16_t vendor, uint16_t device) {
    functions_.push_back(std::make_unique<FakeFunction>());
    FakeFunction& f = *functions_.back();
    f.Set32(0x00, uint32_t{vendor} | (uint32_t{device} << 16));
    bus.slots[dev][fn] = &f;
    return f;
  }
  // A type 0 function with a PCIe capability of `type` (or none: kNotPcie).
  FakeFunction& Endpoint(FakeBus& bus, uint8_t dev, uint8_t fn, uint16_t device,
                         PciePortType type = PciePortType::kEndpoint) {
    FakeFunction& f = Add(bus, dev, fn, 0x8086, device);
    f.Set32(0x08, 0x01060100);  // mass storage / SATA / AHCI
    f.cfg[0x3d] = 1;            // INTA
    SetPcie(f, type);
    return f;
  }
  FakeFunction& Bridge(FakeBus& bus, uint8_t dev, uint8_t fn, PciePortType type, FakeBus& below) {
    FakeFunction& f = Add(bus, dev, fn, 0x1b36, 0x000c);
    f.Set32(0x08, 0x06040000);  // bridge / PCI-to-PCI
    f.cfg[0x0e] = 0x01;
    f.bridge = true;
    f.below = &below;
    below.alias_every_device =
        type == PciePortType::kRootPort || type == PciePortType::kDownstreamPort;
    f.cfg[0x3d] = 1;
    f.Set32(0x24, 0x00010001);  // 64-bit prefetchable window, closed at reset
    SetPcie(f, type);
    return f;
  }
  static void Bar(FakeFunction& f, unsigned i, uint64_t size, bool is64, bool pref) {
    f.bar_size[i] = size;
    f.bar64[i] = is64;
    f.Set32(0x10 + 4 * i, (is64 ? 4U : 0U) | (pref ? 8U : 0U));
  }

  FakeBus root;
  uint8_t root_number = 0;

  uint32_t Read32(const Bdf& bdf, size_t offset) const override {
    const FakeFunction* f = Route(bdf);
    return f != nullptr ? f->Get32(offset) : 0xffffffff;
  }
  uint16_t Read16(const Bdf& bdf, size_t offset) const override {
    return static_cast<uint16_t>(Read32(bdf, offset & ~size_t{3}) >> (8 * (offset & 2)));
  }
  void Write32(const Bdf& bdf, size_t offset, uint32_t value) override {
    if (FakeFunction* f = Route(bdf)) f->Write32(offset, value);
  }
  void Write16(const Bdf& bdf, size_t offset, uint16_t value) override {
    if (FakeFunction* f = Route(bdf)) f->Write16(offset, value);
  }

 private:
  static void SetPcie(FakeFunction& f, PciePortType type) {
    if (type == PciePortType::kNotPcie) return;
    f.cfg[0x06] = 0x10;  // Status: capability list
    f.cfg[0x34] = 0x40;
    f.cfg[0x40] = 0x01;  // a power-management capability first
    f.cfg[0x41] = 0x60;
    f.cfg[0x60] = 0x10;  // PCI Express, version 2, the port type
    f.cfg[0x61] = 0x00;
    f.cfg[0x62] = static_cast<uint8_t>(0x02 | (static_cast<uint8_t>(type) << 4));
  }
  FakeFunction* Route(const Bdf& bdf) const {
    const FakeBus* bus = &root;
    unsigned number = root_number;
    while (number != bdf.bus) {
      const FakeBus* next = nullptr;
      for (auto& dev : bus->slots) {
        for (FakeFunction* f : dev) {
          if (f == nullptr || !f->bridge) continue;
          if (f->secondary() != 0 && f->secondary() <= bdf.bus && bdf.bus <= f->subordinate()) {
            next = f->below;
            number = f->secondary();
          }
        }
      }
      if (next == nullptr) return nullptr;
      bus = next;
    }
    const uint8_t dev = bus->alias_every_device ? 0 : bdf.device;
    return bus->slots[dev][bdf.function];
  }
  std::vector<std::unique_ptr<FakeFunction>> functions_;
};

// QEMU virt's host bridge windows (its DTB's `ranges`).
PciHostInfo VirtHost() {
  PciHostInfo info;
  info.present = true;
  info.bus_start = 0;
  info.bus_end = 255;
  info.mem32 = {true, 0x1000'0000, 0x1000'0000, 0x2eff'0000, false};
  info.mem64 = {true, 0x80'0000'0000, 0x80'0000'0000, 0x80'0000'0000, false};
  return info;
}

const PciFunction* At(const PciHost& pci, uint8_t bus, uint8_t dev, uint8_t fn) {
  return pci.FindFunction(Bdf{bus, dev, fn});
}

TEST(PciEnumeration, RootBusOnlyAsBefore) {
  FakeEcam ecam;
  FakeFunction& ahci = ecam.Endpoint(ecam.root, 2, 0, 0x2922);
  FakeEcam::Bar(ahci, 5, 0x1000, false, false);
  PciHost pci(VirtHost(), ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  ASSERT_EQ(pci.function_count(), 1U);
  const PciFunction& f = pci.function(0);
  EXPECT_EQ(f.bdf, (Bdf{0, 2, 0}));
  EXPECT_EQ(f.dma_alias, f.bdf);
  EXPECT_EQ(f.depth, 0);
  EXPECT_EQ(f.pcie_type, PciePortType::kEndpoint);
  EXPECT_EQ(f.bars[5].cpu_addr, 0x1000'0000U);
  EXPECT_EQ(ahci.Get32(0x24), 0x1000'0000U);
  EXPECT_EQ(ahci.command(), 0x0402);  // memory on, INTx disabled, no bus master
}

// Two root ports with an AHCI each, a third with a PCIe-to-PCI bridge and two conventional
// devices: the QEMU topology of the demos' bridge tests.
struct RootPortTopology {
  FakeEcam ecam;
  FakeBus bus1, bus2, bus3, bus4;
  FakeFunction* rp[3];
  FakeFunction* ahci[2];
  FakeFunction* pcie_pci;
  FakeFunction* conv[2];
  RootPortTopology() {
    FakeFunction& nic = ecam.Endpoint(ecam.root, 1, 0, 0x1000);
    FakeEcam::Bar(nic, 4, 0x4000, true, true);
    rp[0] = &ecam.Bridge(ecam.root, 3, 0, PciePortType::kRootPort, bus1);
    rp[1] = &ecam.Bridge(ecam.root, 4, 0, PciePortType::kRootPort, bus2);
    rp[2] = &ecam.Bridge(ecam.root, 5, 0, PciePortType::kRootPort, bus3);
    ahci[0] = &ecam.Endpoint(bus1, 0, 0, 0x2922);
    FakeEcam::Bar(*ahci[0], 5, 0x1000, false, false);
    ahci[1] = &ecam.Endpoint(bus2, 0, 0, 0x2922);
    FakeEcam::Bar(*ahci[1], 5, 0x1000, false, false);
    pcie_pci = &ecam.Bridge(bus3, 0, 0, PciePortType::kPcieToPciBridge, bus4);
    FakeEcam::Bar(*pcie_pci, 0, 0x100, true, false);
    conv[0] = &ecam.Endpoint(bus4, 1, 0, 0x11e8, PciePortType::kNotPcie);
    FakeEcam::Bar(*conv[0], 0, 0x100000, false, false);
    conv[1] = &ecam.Endpoint(bus4, 2, 0, 0x11e8, PciePortType::kNotPcie);
    FakeEcam::Bar(*conv[1], 0, 0x100000, false, false);
  }
};

TEST(PciEnumeration, NumbersBridgesDepthFirst) {
  RootPortTopology t;
  PciHost pci(VirtHost(), t.ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  // nic, 3 root ports, 2 AHCI, the PCIe-to-PCI bridge, 2 conventional devices.
  ASSERT_EQ(pci.function_count(), 9U);
  EXPECT_EQ(pci.last_bus(), 4);
  // primary, secondary, subordinate in the registers, as recorded.
  EXPECT_EQ(t.rp[0]->Get32(0x18) & 0xffffff, 0x010100U);
  EXPECT_EQ(t.rp[1]->Get32(0x18) & 0xffffff, 0x020200U);
  EXPECT_EQ(t.rp[2]->Get32(0x18) & 0xffffff, 0x040300U);  // bus 3 and the bus 4 below
  EXPECT_EQ(t.pcie_pci->Get32(0x18) & 0xffffff, 0x040403U);
  const PciFunction* rp3 = At(pci, 0, 5, 0);
  ASSERT_NE(rp3, nullptr);
  EXPECT_EQ(rp3->bridge.secondary, 3);
  EXPECT_EQ(rp3->bridge.subordinate, 4);
  EXPECT_FALSE(rp3->bridge.firmware_numbered);
  const PciFunction* a1 = At(pci, 1, 0, 0);
  const PciFunction* a2 = At(pci, 2, 0, 0);
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
  PciHost pci(VirtHost(), t.ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  const PciFunction* c1 = At(pci, 4, 1, 0);
  const PciFunction* c2 = At(pci, 4, 2, 0);
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
  FakeFunction& br = ecam.Bridge(ecam.root, 6, 0, PciePortType::kNotPcie, below);
  br.pref_implemented = false;
  br.Set32(0x24, 0);
  FakeFunction& dev = ecam.Endpoint(below, 3, 0, 0x11e8, PciePortType::kNotPcie);
  FakeEcam::Bar(dev, 0, 0x1000, false, false);
  PciHost pci(VirtHost(), ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  const PciFunction* d = At(pci, 1, 3, 0);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->dma_alias, (Bdf{0, 6, 0}));
  const PciFunction* b = At(pci, 0, 6, 0);
  EXPECT_FALSE(b->bridge.pref_implemented);
  EXPECT_EQ(br.Get32(0x24), 0U);  // no prefetchable window: nothing written
}

TEST(PciEnumeration, BridgeWindowsCoverTheBarsBelowThem) {
  RootPortTopology t;
  PciHost pci(VirtHost(), t.ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  // 00:01.0's 16 KiB BAR4 first at 0x1000_0000; each root port's window starts on the next
  // MiB granule: rp1 [0x1010_0000, 0x101f_ffff] holds the first AHCI's ABAR.
  const PciFunction* nic = At(pci, 0, 1, 0);
  EXPECT_EQ(nic->bars[4].cpu_addr, 0x1000'0000U);
  const PciFunction* rp1 = At(pci, 0, 3, 0);
  EXPECT_TRUE(rp1->bridge.mem.enabled);
  EXPECT_EQ(rp1->bridge.mem.base, 0x1010'0000U);
  EXPECT_EQ(rp1->bridge.mem.limit, 0x101f'ffffU);
  EXPECT_EQ(t.rp[0]->Get32(0x20), 0x1010'1010U);  // limit [31:16] = 0x1010, base = 0x1010
  EXPECT_EQ(At(pci, 1, 0, 0)->bars[5].cpu_addr, 0x1010'0000U);
  const PciFunction* rp2 = At(pci, 0, 4, 0);
  EXPECT_EQ(rp2->bridge.mem.base, 0x1020'0000U);
  EXPECT_EQ(At(pci, 2, 0, 0)->bars[5].cpu_addr, 0x1020'0000U);
  // rp3 holds the PCIe-to-PCI bridge's own BAR (on bus 3) and its window (bus 4) inside.
  const PciFunction* rp3 = At(pci, 0, 5, 0);
  const PciFunction* pp = At(pci, 3, 0, 0);
  const PciFunction* c1 = At(pci, 4, 1, 0);
  const PciFunction* c2 = At(pci, 4, 2, 0);
  EXPECT_EQ(pp->bars[0].cpu_addr, 0x1030'0000U);
  EXPECT_EQ(pp->bridge.mem.base, 0x1040'0000U);
  EXPECT_EQ(c1->bars[0].cpu_addr, 0x1040'0000U);
  EXPECT_EQ(c2->bars[0].cpu_addr, 0x1050'0000U);
  EXPECT_EQ(pp->bridge.mem.limit, 0x105f'ffffU);
  EXPECT_EQ(rp3->bridge.mem.base, 0x1030'0000U);
  EXPECT_EQ(rp3->bridge.mem.limit, 0x105f'ffffU);
  for (const PciFunction* b : {rp1, rp2, rp3, pp}) {
    for (size_t i = 0; i < pci.function_count(); ++i) {
      const PciFunction& f = pci.function(i);
      // Every BAR of a function below `b` is inside its memory window.
      bool below = false;
      for (int16_t up = f.upstream; up >= 0; up = pci.function(static_cast<size_t>(up)).upstream) {
        below = below || &pci.function(static_cast<size_t>(up)) == b;
      }
      if (!below) continue;
      for (const PciBar& bar : f.bars) {
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
  FakeFunction& rp = ecam.Bridge(ecam.root, 2, 0, PciePortType::kRootPort, bus1);
  FakeFunction& dev = ecam.Endpoint(bus1, 0, 0, 0x1110);
  FakeEcam::Bar(dev, 0, 0x1000, false, false);
  FakeEcam::Bar(dev, 2, uint64_t{1} << 30, true, true);  // 1 GiB: beyond the 32-bit window
  PciHost pci(VirtHost(), ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  const PciFunction* d = At(pci, 1, 0, 0);
  EXPECT_EQ(d->bars[0].cpu_addr, 0x1000'0000U);
  EXPECT_EQ(d->bars[2].cpu_addr, 0x80'0000'0000U);
  EXPECT_EQ(dev.Get32(0x18), 0x0000000cU);  // low half: address bits 0, flags 64-bit pref
  EXPECT_EQ(dev.Get32(0x1c), 0x80U);
  const PciFunction* b = At(pci, 0, 2, 0);
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
  FakeFunction& rp = ecam.Bridge(ecam.root, 2, 0, PciePortType::kRootPort, bus1);
  rp.pref64 = false;
  rp.Set32(0x24, 0);
  FakeFunction& dev = ecam.Endpoint(bus1, 0, 0, 0x1110);
  FakeEcam::Bar(dev, 2, uint64_t{1} << 30, true, true);
  PciHost pci(VirtHost(), ecam);
  EXPECT_EQ(pci.Enumerate().ToC(), -ENOMEM);
  // A non-prefetchable one cannot pass any bridge above 4 GiB either.
  FakeEcam ecam2;
  FakeBus b1;
  ecam2.Bridge(ecam2.root, 2, 0, PciePortType::kRootPort, b1);
  FakeFunction& dev2 = ecam2.Endpoint(b1, 0, 0, 0x1110);
  FakeEcam::Bar(dev2, 2, uint64_t{1} << 30, true, false);
  PciHost pci2(VirtHost(), ecam2);
  EXPECT_EQ(pci2.Enumerate().ToC(), -ENOMEM);
  // On the root bus the 64-bit window takes it (as before bridges were enumerated).
  FakeEcam ecam3;
  FakeFunction& dev3 = ecam3.Endpoint(ecam3.root, 4, 0, 0x1110);
  FakeEcam::Bar(dev3, 2, uint64_t{1} << 30, true, false);
  PciHost pci3(VirtHost(), ecam3);
  ASSERT_TRUE(pci3.Enumerate().ok());
  EXPECT_EQ(pci3.function(0).bars[2].cpu_addr, 0x80'0000'0000U);
}

TEST(PciEnumeration, SwitchBelowRootPortNumberedDepthFirst) {
  FakeEcam ecam;
  FakeBus b1, b2, b3, b4;
  FakeFunction& rp = ecam.Bridge(ecam.root, 1, 0, PciePortType::kRootPort, b1);
  FakeFunction& up = ecam.Bridge(b1, 0, 0, PciePortType::kUpstreamPort, b2);
  up.cfg[0x0e] = 0x01;
  FakeFunction& dp0 = ecam.Bridge(b2, 0, 0, PciePortType::kDownstreamPort, b3);
  FakeFunction& dp1 = ecam.Bridge(b2, 1, 0, PciePortType::kDownstreamPort, b4);
  b2.alias_every_device = false;  // a switch's internal bus has several devices
  FakeEcam::Bar(ecam.Endpoint(b3, 0, 0, 0x2922), 5, 0x1000, false, false);
  FakeEcam::Bar(ecam.Endpoint(b4, 0, 0, 0x2922), 5, 0x1000, false, false);
  PciHost pci(VirtHost(), ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  EXPECT_EQ(pci.function_count(), 6U);
  EXPECT_EQ(rp.Get32(0x18) & 0xffffff, 0x040100U);
  EXPECT_EQ(up.Get32(0x18) & 0xffffff, 0x040201U);
  EXPECT_EQ(dp0.Get32(0x18) & 0xffffff, 0x030302U);
  EXPECT_EQ(dp1.Get32(0x18) & 0xffffff, 0x040402U);
  const PciFunction* e = At(pci, 4, 0, 0);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->depth, 3);
  EXPECT_EQ(e->dma_alias, (Bdf{4, 0, 0}));
  EXPECT_EQ(At(pci, 0, 1, 0)->bridge.subordinate, 4);
}

TEST(PciEnumeration, KeepsBusNumbersFirmwareProgrammed) {
  FakeEcam ecam;
  FakeBus b1, b2;
  FakeFunction& rp1 = ecam.Bridge(ecam.root, 1, 0, PciePortType::kRootPort, b1);
  FakeFunction& rp2 = ecam.Bridge(ecam.root, 2, 0, PciePortType::kRootPort, b2);
  rp1.Set32(0x18, 0x00070500);  // firmware: secondary 5, subordinate 7
  ecam.Endpoint(b1, 0, 0, 0x2922);
  ecam.Endpoint(b2, 0, 0, 0x2922);
  PciHost pci(VirtHost(), ecam);
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
  FakeFunction& rp = ecam.Bridge(ecam.root, 1, 0, PciePortType::kRootPort, b1);
  rp.Set32(0x18, 0x00000303);  // primary 3 (not its bus), subordinate < secondary
  ecam.Endpoint(b1, 0, 0, 0x2922);
  PciHost pci(VirtHost(), ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  EXPECT_EQ(rp.Get32(0x18) & 0xffffff, 0x010100U);
  EXPECT_FALSE(At(pci, 0, 1, 0)->bridge.firmware_numbered);
}

TEST(PciEnumeration, BusesStayInsideTheEcamRange) {
  FakeEcam ecam;
  FakeBus b1, b2;
  ecam.Bridge(ecam.root, 1, 0, PciePortType::kRootPort, b1);
  ecam.Bridge(ecam.root, 2, 0, PciePortType::kRootPort, b2);
  PciHostInfo info = VirtHost();
  info.bus_end = 1;  // room for one bridge only
  PciHost pci(info, ecam);
  EXPECT_EQ(pci.Enumerate().ToC(), -ERANGE);
  EXPECT_EQ(pci.last_bus(), 1);
}

TEST(PciEnumeration, BusMasterOpensTheBridgesAboveOnly) {
  RootPortTopology t;
  PciHost pci(VirtHost(), t.ecam);
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
  PciHost pci(VirtHost(), t.ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  // Root bus: unchanged.
  Result<PciHost::RootIntx> r = pci.SwizzleIntx(Bdf{0, 1, 0}, 1);
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

// With QEMU's own DTB: the iommu-map applied to the alias, the interrupt-map to the swizzled
// root-bus slot.
TEST(PciEnumeration, StreamIdAndIntxFromQemuDevicetree) {
  const std::vector<uint8_t> fdt = dt::testing::LoadBlob("qemu_virt_smmuv3");
  ASSERT_FALSE(fdt.empty());
  static PlatformInfo info;
  ASSERT_TRUE(ParseDeviceTree(fdt.data(), &info).ok());
  RootPortTopology t;
  t.conv[1]->cfg[0x3d] = 2;
  PciHost pci(info.pci, t.ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  const uint32_t smmu = info.smmu.phandle;
  EXPECT_EQ(pci.StreamId(Bdf{1, 0, 0}, smmu).value_or(0), 0x100U);
  EXPECT_EQ(pci.StreamId(Bdf{2, 0, 0}, smmu).value_or(0), 0x200U);
  // Both conventional devices behind the PCIe-to-PCI bridge: 04:00.0's StreamID.
  EXPECT_EQ(pci.StreamId(Bdf{4, 1, 0}, smmu).value_or(0), 0x400U);
  EXPECT_EQ(pci.StreamId(Bdf{4, 2, 0}, smmu).value_or(0), 0x400U);
  // QEMU virt's interrupt-map: slot s, pin p -> SPI 3 + (s + p - 1) % 4 (its map rotates the
  // four SPIs by slot).
  const Result<IrqSpec> root = pci.IntxIrq(Bdf{0, 5, 0}, 4);
  const Result<IrqSpec> behind = pci.IntxIrq(Bdf{4, 2, 0});
  ASSERT_TRUE(root.ok());
  ASSERT_TRUE(behind.ok());
  EXPECT_EQ(behind->intid, root->intid);
  const Result<IrqSpec> a1 = pci.IntxIrq(Bdf{1, 0, 0});
  const Result<IrqSpec> rp1 = pci.IntxIrq(Bdf{0, 3, 0}, 1);
  ASSERT_TRUE(a1.ok());
  EXPECT_EQ(a1->intid, rp1->intid);
  EXPECT_NE(behind->intid, a1->intid);  // slot 5 INTD vs slot 3 INTA: other SPIs
}

}  // namespace
}  // namespace deviso::qemu_virt
