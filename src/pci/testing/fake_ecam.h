// A simulated ECAM for host tests of PCI enumeration: a small fake configuration space that
// routes a configuration cycle through bridges by their bus-number registers (PCI-to-PCI Bridge
// 1.2, 3.2.5.2-4), sizes BARs (PCI 3.0 6.2.5.1) and keeps bridge window registers as hardware
// does. A PCIe root or downstream port's link answers for device 0 at every device number, as
// hardware without ARI does (Enumerate() must probe device 0 only).

#ifndef DEVISO_SRC_PCI_TESTING_FAKE_ECAM_H_
#define DEVISO_SRC_PCI_TESTING_FAKE_ECAM_H_

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "pci/pci.h"

namespace deviso::pci::testing {

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
class FakeEcam final : public ConfigSpace {
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
                         PortType type = PortType::kEndpoint) {
    FakeFunction& f = Add(bus, dev, fn, 0x8086, device);
    f.Set32(0x08, 0x01060100);  // mass storage / SATA / AHCI
    f.cfg[0x3d] = 1;            // INTA
    SetPcie(f, type);
    return f;
  }
  FakeFunction& Bridge(FakeBus& bus, uint8_t dev, uint8_t fn, PortType type, FakeBus& below) {
    FakeFunction& f = Add(bus, dev, fn, 0x1b36, 0x000c);
    f.Set32(0x08, 0x06040000);  // bridge / PCI-to-PCI
    f.cfg[0x0e] = 0x01;
    f.bridge = true;
    f.below = &below;
    below.alias_every_device = type == PortType::kRootPort || type == PortType::kDownstreamPort;
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
  static void SetPcie(FakeFunction& f, PortType type) {
    if (type == PortType::kNotPcie) return;
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
    rp[0] = &ecam.Bridge(ecam.root, 3, 0, PortType::kRootPort, bus1);
    rp[1] = &ecam.Bridge(ecam.root, 4, 0, PortType::kRootPort, bus2);
    rp[2] = &ecam.Bridge(ecam.root, 5, 0, PortType::kRootPort, bus3);
    ahci[0] = &ecam.Endpoint(bus1, 0, 0, 0x2922);
    FakeEcam::Bar(*ahci[0], 5, 0x1000, false, false);
    ahci[1] = &ecam.Endpoint(bus2, 0, 0, 0x2922);
    FakeEcam::Bar(*ahci[1], 5, 0x1000, false, false);
    pcie_pci = &ecam.Bridge(bus3, 0, 0, PortType::kPcieToPciBridge, bus4);
    FakeEcam::Bar(*pcie_pci, 0, 0x100, true, false);
    conv[0] = &ecam.Endpoint(bus4, 1, 0, 0x11e8, PortType::kNotPcie);
    FakeEcam::Bar(*conv[0], 0, 0x100000, false, false);
    conv[1] = &ecam.Endpoint(bus4, 2, 0, 0x11e8, PortType::kNotPcie);
    FakeEcam::Bar(*conv[1], 0, 0x100000, false, false);
  }
};

// QEMU virt's host bridge windows (its DTB's `ranges`).
inline HostBridge VirtHostBridge() {
  HostBridge host;
  host.bus_start = 0;
  host.bus_end = 255;
  host.mem32 = {true, 0x1000'0000, 0x1000'0000, 0x2eff'0000, false};
  host.mem64 = {true, 0x80'0000'0000, 0x80'0000'0000, 0x80'0000'0000, false};
  return host;
}

}  // namespace deviso::pci::testing

#endif  // DEVISO_SRC_PCI_TESTING_FAKE_ECAM_H_
