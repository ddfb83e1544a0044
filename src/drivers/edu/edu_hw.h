// Register layout of QEMU's `edu` educational PCI device (PCI 1234:11e8, `-device edu`).
//
// Defined by QEMU's docs/specs/edu.rst ("MMIO area spec", "DMA controller"); the behaviour
// the driver relies on beyond that text was read from QEMU's hw/misc/edu.c (cited where used).
// BAR0 is 1 MiB of MMIO. Offsets below 0x80 take 32-bit accesses only; from 0x80 on, 32- or
// 64-bit accesses (the DMA registers are 64 bits wide: the driver uses 64-bit accesses there).

#ifndef DEVISO_SRC_DRIVERS_EDU_EDU_HW_H_
#define DEVISO_SRC_DRIVERS_EDU_EDU_HW_H_

#include <cstddef>
#include <cstdint>

#include "core/hwreg.h"

namespace deviso::drivers::edu {

inline constexpr uint16_t kVendorId = 0x1234;  // edu.rst "PCI specs": PCI ID 1234:11e8
inline constexpr uint16_t kDeviceId = 0x11e8;
inline constexpr unsigned kMmioBar = 0;          // "PCI Region 0"
inline constexpr uint64_t kMmioBytes = 1 << 20;  // 1 MiB

// edu.rst "DMA controller": one 4096-byte buffer inside the device at address 0x40000, the
// device-side end of every transfer.
inline constexpr uint64_t kBufferAddr = 0x40000;
inline constexpr uint64_t kBufferBytes = 4096;

// edu.rst "Command line switches": the device drives only 28 address bits unless the
// `dma_mask` property widens it; QEMU masks (and reports "EDU: clamping") any wider address.
inline constexpr uint64_t kDefaultDmaMask = (uint64_t{1} << 28) - 1;

namespace reg {

// Every type below: QEMU docs/specs/edu.rst, "MMIO area spec" (the DMA registers also "DMA
// controller"). The registers below 0x80 are 32 bits wide (32-bit accesses only); the DMA
// registers from 0x80 on are 64 bits wide and the driver accesses them with 64-bit accesses.

// 0x00 (RO) identification: 0xRRrr00ed, RR major and rr minor version.
struct Identification : hwreg::Register<Identification, uint32_t, 0x00> {
  static constexpr uint32_t kMagic = 0xed;
  DEVISO_REG_FIELD(7, 0, magic);
  DEVISO_REG_FIELD(23, 16, minor);
  DEVISO_REG_FIELD(31, 24, major);
};

// 0x04 (RW) card liveness check: reads back the bitwise inverse of what was written.
struct Liveness : hwreg::Register<Liveness, uint32_t, 0x04> {
  DEVISO_REG_FIELD(31, 0, value);
};

// 0x20 (RW) status (of the factorial unit; the DMA engine's state is in DmaCommand).
struct Status : hwreg::Register<Status, uint32_t, 0x20> {
  DEVISO_REG_BIT(0, computing);      // RO: factorial in progress
  DEVISO_REG_BIT(7, irq_factorial);  // raise an interrupt when the factorial is done
};

// 0x24 (RO) interrupt status; 0x60 (WO) raise; 0x64 (WO) acknowledge (same bit layout).
struct IrqStatus : hwreg::Register<IrqStatus, uint32_t, 0x24> {
  static constexpr size_t kRaiseOffset = 0x60;
  static constexpr size_t kAckOffset = 0x64;
  DEVISO_REG_BIT(0, factorial);
  DEVISO_REG_BIT(8, dma);  // "raise interrupt 0x100 after finishing the DMA"
};

// 0x80 (RW) DMA source address, 0x88 (RW) DMA destination address, 0x90 (RW) DMA transfer
// count. A RAM address is a PCI bus address (an IOVA behind the SMMU); the device end is
// kBufferAddr + offset. Writes are ignored while a transfer runs (edu.c dma_rw()).
struct DmaSource : hwreg::Register<DmaSource, uint64_t, 0x80> {
  DEVISO_REG_ADDR(63, 0, addr);
};
struct DmaDest : hwreg::Register<DmaDest, uint64_t, 0x88> {
  DEVISO_REG_ADDR(63, 0, addr);
};
struct DmaCount : hwreg::Register<DmaCount, uint64_t, 0x90> {
  DEVISO_REG_FIELD(63, 0, bytes);
};

// 0x98 (RW) DMA command. `start` stays set while the transfer runs and clears when it is done
// (the completion the driver polls). edu.c runs a transfer from a timer 100 ms of virtual time
// after the command is written.
// "DMA controller": direction bit 1 is 0 for RAM -> edu buffer, 1 for edu buffer -> RAM.
enum class DmaDirection : uint8_t { kToDevice = 0, kToRam = 1 };
struct DmaCommand : hwreg::Register<DmaCommand, uint64_t, 0x98> {
  DEVISO_REG_BIT(0, start);                        // write 1: start; reads 1 while running
  DEVISO_REG_ENUM(1, 1, DmaDirection, direction);  // see DmaDirection
  DEVISO_REG_BIT(2, raise_irq);                    // raise IrqStatus.dma when done
  // The original name of the direction bit (examples use it): 1 = edu buffer -> RAM.
  constexpr auto& set_to_ram(uint64_t v) {
    return set_direction(v != 0 ? DmaDirection::kToRam : DmaDirection::kToDevice);
  }
};

}  // namespace reg

}  // namespace deviso::drivers::edu

#endif  // DEVISO_SRC_DRIVERS_EDU_EDU_HW_H_
