// PCI configuration space on q35, two ways: the legacy I/O ports 0xCF8/0xCFC (configuration
// mechanism #1, the first 256 bytes of each function) and ECAM, the memory-mapped space the
// MCFG describes (all 4 KiB, the way deviso's PCI code reaches functions). Both sit behind
// PciConfig, the seam the shared PCI enumeration (src/pci, issue 14) will be given; ListPci()
// is a plain listing (no bus numbers or BARs assigned: SeaBIOS did that on q35).
//
// Layouts: PCI Local Bus Specification 3.0, 3.2.2.3.2 (configuration mechanism #1: CONFIG_ADDRESS
// at 0xCF8, enable bit 31, bus 23:16, device 15:11, function 10:8, register 7:2; CONFIG_DATA at
// 0xCFC), 6.1 (the type 0/1 header: vendor 0x00, device 0x02, command 0x04, class 0x08-0x0B,
// header type 0x0E with the multi-function bit 7; type 1 bus numbers 0x18-0x1A: PCI-to-PCI
// Bridge Architecture 1.2, 3.2.5.2-3.2.5.4); PCI Express Base Specification 4.0, 7.2.2 (ECAM:
// base + bus << 20 | device << 15 | function << 12 | offset).

#ifndef DEVISO_PLATFORM_QEMU_Q35_X86_64_PCI_CONFIG_H_
#define DEVISO_PLATFORM_QEMU_Q35_X86_64_PCI_CONFIG_H_

#include <cstddef>
#include <cstdint>

#include "deviso/status.h"

namespace deviso::q35 {

// Bus/device/function: a PCI requester ID (the VT-d source-id).
struct PciAddress {
  uint8_t bus = 0;
  uint8_t device = 0;    // 0..31
  uint8_t function = 0;  // 0..7
  // PCIe 4.0 2.2.6.2: bus[15:8] device[7:3] function[2:0].
  uint16_t rid() const { return static_cast<uint16_t>((bus << 8) | (device << 3) | function); }
  bool operator==(const PciAddress&) const = default;
};

// 32-bit configuration reads and writes at 4-byte aligned offsets. A read of a function that
// does not exist returns 0xFFFF_FFFF (as the hardware does); a read or write the access cannot
// make (offset past its space, unaligned, a bus outside its range) reads 0xFFFF_FFFF and writes
// nothing.
class PciConfig {
 public:
  virtual ~PciConfig() = default;
  virtual uint32_t Read32(PciAddress f, uint16_t offset) const = 0;
  virtual void Write32(PciAddress f, uint16_t offset, uint32_t value) const = 0;
  // Offsets below this are reachable (256 for the ports, 4096 for ECAM).
  virtual uint16_t space_size() const = 0;
  // The buses reachable, inclusive.
  virtual uint8_t bus_first() const = 0;
  virtual uint8_t bus_last() const = 0;

  uint16_t Read16(PciAddress f, uint16_t offset) const {
    return static_cast<uint16_t>(Read32(f, offset & ~3u) >> (8 * (offset & 2)));
  }
  uint8_t Read8(PciAddress f, uint16_t offset) const {
    return static_cast<uint8_t>(Read32(f, offset & ~3u) >> (8 * (offset & 3)));
  }
};

// Mechanism #1 through I/O ports 0xCF8/0xCFC: buses 0-255, offsets 0-255. Not reentrant (the
// address and data ports are one shared pair): one CPU, no interrupt handler uses it.
class PortPciConfig final : public PciConfig {
 public:
  uint32_t Read32(PciAddress f, uint16_t offset) const override;
  void Write32(PciAddress f, uint16_t offset, uint32_t value) const override;
  uint16_t space_size() const override { return 256; }
  uint8_t bus_first() const override { return 0; }
  uint8_t bus_last() const override { return 255; }
};

// ECAM at `base` (the configuration space of bus 0, as the MCFG gives it) for buses
// [bus_first, bus_last]. The range must be mapped uncached (start.S maps everything from the end
// of RAM to 4 GiB so; q35's ECAM is at 0xB000_0000).
class EcamPciConfig final : public PciConfig {
 public:
  EcamPciConfig(uint64_t base, uint8_t bus_first, uint8_t bus_last)
      : base_(base), bus_first_(bus_first), bus_last_(bus_last) {}
  uint32_t Read32(PciAddress f, uint16_t offset) const override;
  void Write32(PciAddress f, uint16_t offset, uint32_t value) const override;
  uint16_t space_size() const override { return 4096; }
  uint8_t bus_first() const override { return bus_first_; }
  uint8_t bus_last() const override { return bus_last_; }

 private:
  uintptr_t Address(PciAddress f, uint16_t offset) const;
  uint64_t base_;
  uint8_t bus_first_;
  uint8_t bus_last_;
};

struct PciFunctionInfo {
  PciAddress address;
  uint16_t vendor = 0;
  uint16_t device_id = 0;
  uint8_t class_code = 0;  // base class
  uint8_t subclass = 0;
  uint8_t prog_if = 0;
  uint8_t header_type = 0;      // bits 6:0: 0 endpoint, 1 PCI-PCI bridge
  uint16_t command = 0;         // bit 1 memory space, bit 2 bus master
  uint8_t secondary_bus = 0;    // type 1 only
  uint8_t subordinate_bus = 0;  // type 1 only

  bool is_bridge() const { return (header_type & 0x7f) == 1; }
  bool bus_master() const { return (command & 0x4) != 0; }
};

// Lists every function on the buses `config` reaches, in bus/device/function order (function 0
// absent: the device is skipped; functions 1-7 only where function 0 has the multi-function
// bit). Writes at most `capacity` entries to `out` and returns how many functions exist (more
// than `capacity`: the rest were not written). Reads only: nothing is changed.
size_t ListPci(const PciConfig& config, PciFunctionInfo* out, size_t capacity);

// A short name for a class code ("SATA AHCI", "host bridge", ...), or "".
const char* PciClassName(uint8_t class_code, uint8_t subclass, uint8_t prog_if);

}  // namespace deviso::q35

#endif  // DEVISO_PLATFORM_QEMU_Q35_X86_64_PCI_CONFIG_H_
