#include "pci_config.h"

// The listing and the class names: portable (no port I/O, no MMIO of its own), so the host test
// (pci_list_test.cc) runs them over a simulated configuration space.

namespace deviso::q35 {
namespace {

// PCI Local Bus 3.0, 6.1: the header fields the listing reads.
constexpr uint16_t kVendorId = 0x00;
constexpr uint16_t kCommand = 0x04;
constexpr uint16_t kClassRevision = 0x08;
constexpr uint16_t kHeaderType = 0x0e;
constexpr uint16_t kBusNumbers = 0x18;  // type 1: primary, secondary, subordinate
constexpr uint8_t kMultiFunction = 0x80;

void Describe(const PciConfig& c, PciAddress f, PciFunctionInfo* out) {
  const uint32_t id = c.Read32(f, kVendorId);
  const uint32_t class_rev = c.Read32(f, kClassRevision);
  out->address = f;
  out->vendor = static_cast<uint16_t>(id);
  out->device_id = static_cast<uint16_t>(id >> 16);
  out->class_code = static_cast<uint8_t>(class_rev >> 24);
  out->subclass = static_cast<uint8_t>(class_rev >> 16);
  out->prog_if = static_cast<uint8_t>(class_rev >> 8);
  out->header_type = c.Read8(f, kHeaderType);
  out->command = c.Read16(f, kCommand);
  if (out->is_bridge()) {
    const uint32_t buses = c.Read32(f, kBusNumbers);
    out->secondary_bus = static_cast<uint8_t>(buses >> 8);
    out->subordinate_bus = static_cast<uint8_t>(buses >> 16);
  }
}

}  // namespace

size_t ListPci(const PciConfig& config, PciFunctionInfo* out, size_t capacity) {
  size_t count = 0;
  for (unsigned bus = config.bus_first(); bus <= config.bus_last(); ++bus) {
    for (unsigned device = 0; device < 32; ++device) {
      const PciAddress f0{static_cast<uint8_t>(bus), static_cast<uint8_t>(device), 0};
      if (config.Read16(f0, kVendorId) == 0xffff) {
        continue;
      }
      const bool multi = (config.Read8(f0, kHeaderType) & kMultiFunction) != 0;
      for (unsigned function = 0; function < (multi ? 8u : 1u); ++function) {
        const PciAddress f{static_cast<uint8_t>(bus), static_cast<uint8_t>(device),
                           static_cast<uint8_t>(function)};
        if (config.Read16(f, kVendorId) == 0xffff) {
          continue;
        }
        if (count < capacity) {
          Describe(config, f, &out[count]);
        }
        ++count;
      }
    }
  }
  return count;
}

const char* PciClassName(uint8_t class_code, uint8_t subclass, uint8_t prog_if) {
  // PCI Code and ID Assignment Specification 1.11, 1.1-1.7: the classes q35's devices use.
  switch ((class_code << 8) | subclass) {
    case 0x0106:
      return prog_if == 0x01 ? "SATA AHCI" : "SATA";
    case 0x0108:
      return "NVMe";
    case 0x0200:
      return "Ethernet";
    case 0x0300:
      return "VGA";
    case 0x0600:
      return "host bridge";
    case 0x0601:
      return "ISA bridge";
    case 0x0604:
      return "PCI-PCI bridge";
    case 0x0c05:
      return "SMBus";
    default:
      return "";
  }
}

}  // namespace deviso::q35
