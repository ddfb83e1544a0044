// MSI-X register and table layouts: PCI Local Bus Specification 3.0, 6.8.2 (MSI-X Capability
// and Table Structure), and PCI Express Base Specification 4.0, 7.7.2 (the same structure).

#ifndef DEVISO_SRC_DRIVERS_MSIX_MSIX_HW_H_
#define DEVISO_SRC_DRIVERS_MSIX_MSIX_HW_H_

#include <cstddef>
#include <cstdint>

#include "core/hwreg.h"

namespace deviso::drivers::msix {

// Configuration space, type 0 header (PCI 3.0 6.2, 6.7).
namespace config {
inline constexpr size_t kStatus = 0x06;               // 16-bit
inline constexpr uint16_t kStatusCapList = 1U << 4;   // Capabilities List (6.2.3)
inline constexpr size_t kCapabilitiesPointer = 0x34;  // 8-bit, bits [1:0] reserved
inline constexpr size_t kFirstCapability = 0x40;      // capabilities live in [0x40, 0x100)
inline constexpr size_t kConfigEnd = 0x100;
inline constexpr uint8_t kCapIdMsix = 0x11;  // PCI 3.0 Appendix H
}  // namespace config

namespace reg {

// PCI 3.0 6.8.2.3 Message Control (capability + 2, 16-bit).
struct MessageControl : hwreg::Register<MessageControl, uint16_t> {
  DEVISO_REG_RSVDZ({13, 11});
  DEVISO_REG_FIELD(10, 0, table_size);     // N - 1 (read-only)
  DEVISO_REG_BIT(14, function_mask);       // every vector masked, whatever its own mask bit
  DEVISO_REG_BIT(15, enable);              // MSI-X Enable (INTx and MSI are then off)
  static constexpr size_t kCapOffset = 2;  // from the capability
};

// PCI 3.0 6.8.2.4 Table Offset/Table BIR and 6.8.2.5 PBA Offset/PBA BIR (+4 and +8, 32-bit).
struct OffsetBir : hwreg::Register<OffsetBir, uint32_t> {
  DEVISO_REG_FIELD(2, 0, bir);     // which BAR (0-5); 6 and 7 are reserved
  DEVISO_REG_ADDR(31, 3, offset);  // QWORD-aligned offset into that BAR
  static constexpr size_t kTableOffset = 4;
  static constexpr size_t kPbaOffset = 8;
};

// PCI 3.0 6.8.2.9 Vector Control (table entry + 12).
struct VectorControl : hwreg::Register<VectorControl, uint32_t> {
  DEVISO_REG_BIT(0, mask);  // the function may not send this vector's message while set
};

}  // namespace reg

// PCI 3.0 6.8.2.6-6.8.2.9: one MSI-X table entry, 16 bytes in the table BAR.
namespace entry {
inline constexpr size_t kBytes = 16;
inline constexpr size_t kAddressLow = 0;   // Message Address [31:2]; [1:0] must be 0
inline constexpr size_t kAddressHigh = 4;  // Message Upper Address
inline constexpr size_t kData = 8;         // Message Data
inline constexpr size_t kVectorControl = 12;
}  // namespace entry

// PCI 3.0 6.8.2.10: the Pending Bit Array, one bit per vector in QWORDs.
inline constexpr unsigned kPbaBitsPerQword = 64;

// Table Size encodes at most 2048 vectors (PCI 3.0 6.8.2.3).
inline constexpr unsigned kMaxVectors = 2048;

}  // namespace deviso::drivers::msix

#endif  // DEVISO_SRC_DRIVERS_MSIX_MSIX_HW_H_
