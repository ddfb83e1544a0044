#include "pci_config.h"

#include "arch.h"

namespace deviso::q35 {
namespace {

constexpr uint16_t kConfigAddressPort = 0xcf8;
constexpr uint16_t kConfigDataPort = 0xcfc;
constexpr uint32_t kConfigEnable = 1u << 31;

bool Valid(const PciConfig& c, PciAddress f, uint16_t offset) {
  return f.device < 32 && f.function < 8 && (offset & 3) == 0 && offset < c.space_size() &&
         f.bus >= c.bus_first() && f.bus <= c.bus_last();
}

uint32_t PortAddress(PciAddress f, uint16_t offset) {
  return kConfigEnable | (static_cast<uint32_t>(f.bus) << 16) |
         (static_cast<uint32_t>(f.device) << 11) | (static_cast<uint32_t>(f.function) << 8) |
         (offset & 0xfc);
}

}  // namespace

uint32_t PortPciConfig::Read32(PciAddress f, uint16_t offset) const {
  if (!Valid(*this, f, offset)) {
    return 0xffffffff;
  }
  Outl(kConfigAddressPort, PortAddress(f, offset));
  return Inl(kConfigDataPort);
}

void PortPciConfig::Write32(PciAddress f, uint16_t offset, uint32_t value) const {
  if (!Valid(*this, f, offset)) {
    return;
  }
  Outl(kConfigAddressPort, PortAddress(f, offset));
  Outl(kConfigDataPort, value);
}

uintptr_t EcamPciConfig::Address(PciAddress f, uint16_t offset) const {
  return static_cast<uintptr_t>(base_ + ((static_cast<uint64_t>(f.bus) << 20) |
                                         (static_cast<uint64_t>(f.device) << 15) |
                                         (static_cast<uint64_t>(f.function) << 12) | offset));
}

uint32_t EcamPciConfig::Read32(PciAddress f, uint16_t offset) const {
  if (!Valid(*this, f, offset)) {
    return 0xffffffff;
  }
  return *reinterpret_cast<const volatile uint32_t*>(Address(f, offset));
}

void EcamPciConfig::Write32(PciAddress f, uint16_t offset, uint32_t value) const {
  if (!Valid(*this, f, offset)) {
    return;
  }
  *reinterpret_cast<volatile uint32_t*>(Address(f, offset)) = value;
}

}  // namespace deviso::q35
