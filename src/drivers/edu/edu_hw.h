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

// A bit field [kHi:kLo] of a 64-bit register.
template <unsigned kHi, unsigned kLo>
struct Field {
  static_assert(kHi >= kLo && kHi < 64);
  static constexpr uint64_t kMask =
      (kHi - kLo == 63 ? ~uint64_t{0} : ((uint64_t{1} << (kHi - kLo + 1)) - 1)) << kLo;
  static constexpr uint64_t Get(uint64_t raw) { return (raw & kMask) >> kLo; }
  static constexpr uint64_t Set(uint64_t raw, uint64_t v) {
    return (raw & ~kMask) | ((v << kLo) & kMask);
  }
};

// Declares `name()` and `set_name(v)` for bits [hi:lo] of the enclosing struct's `raw`.
#define DEVISO_EDU_FIELD(hi, lo, name)                                \
  constexpr uint64_t name() const { return Field<hi, lo>::Get(raw); } \
  constexpr auto& set_##name(uint64_t v) {                            \
    raw = Field<hi, lo>::Set(raw, v);                                 \
    return *this;                                                     \
  }

namespace reg {

// 0x00 (RO) identification: 0xRRrr00ed, RR major and rr minor version.
struct Identification {
  static constexpr size_t kOffset = 0x00;
  static constexpr uint64_t kMagic = 0xed;
  uint64_t raw = 0;
  DEVISO_EDU_FIELD(7, 0, magic)
  DEVISO_EDU_FIELD(23, 16, minor)
  DEVISO_EDU_FIELD(31, 24, major)
};

// 0x04 (RW) card liveness check: reads back the bitwise inverse of what was written.
struct Liveness {
  static constexpr size_t kOffset = 0x04;
  uint64_t raw = 0;
};

// 0x20 (RW) status (of the factorial unit; the DMA engine's state is in DmaCommand).
struct Status {
  static constexpr size_t kOffset = 0x20;
  uint64_t raw = 0;
  DEVISO_EDU_FIELD(0, 0, computing)      // RO: factorial in progress
  DEVISO_EDU_FIELD(7, 7, irq_factorial)  // raise an interrupt when the factorial is done
};

// 0x24 (RO) interrupt status; 0x60 (WO) raise; 0x64 (WO) acknowledge (same bit layout).
struct IrqStatus {
  static constexpr size_t kOffset = 0x24;
  static constexpr size_t kRaiseOffset = 0x60;
  static constexpr size_t kAckOffset = 0x64;
  uint64_t raw = 0;
  DEVISO_EDU_FIELD(0, 0, factorial)
  DEVISO_EDU_FIELD(8, 8, dma)  // "raise interrupt 0x100 after finishing the DMA"
};

// 0x80 (RW) DMA source address, 0x88 (RW) DMA destination address, 0x90 (RW) DMA transfer
// count. A RAM address is a PCI bus address (an IOVA behind the SMMU); the device end is
// kBufferAddr + offset. Writes are ignored while a transfer runs (edu.c dma_rw()).
struct DmaSource {
  static constexpr size_t kOffset = 0x80;
  uint64_t raw = 0;
};
struct DmaDest {
  static constexpr size_t kOffset = 0x88;
  uint64_t raw = 0;
};
struct DmaCount {
  static constexpr size_t kOffset = 0x90;
  uint64_t raw = 0;
};

// 0x98 (RW) DMA command. `start` stays set while the transfer runs and clears when it is done
// (the completion the driver polls). edu.c runs a transfer from a timer 100 ms of virtual time
// after the command is written.
struct DmaCommand {
  static constexpr size_t kOffset = 0x98;
  uint64_t raw = 0;
  DEVISO_EDU_FIELD(0, 0, start)      // write 1: start; reads 1 while running
  DEVISO_EDU_FIELD(1, 1, to_ram)     // direction: 0 RAM -> edu buffer, 1 edu buffer -> RAM
  DEVISO_EDU_FIELD(2, 2, raise_irq)  // raise IrqStatus.dma when done
};

}  // namespace reg

#undef DEVISO_EDU_FIELD

}  // namespace deviso::drivers::edu

#endif  // DEVISO_SRC_DRIVERS_EDU_EDU_HW_H_
