// Arm PrimeCell UART (PL011) console, transmit only, polled.
// Registers: PrimeCell UART (PL011) Technical Reference Manual, r1p5 (DDI 0183G), 3.2 / 3.3.

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PL011_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PL011_H_

#include <cstddef>
#include <cstdint>

namespace deviso::qemu_virt {

class Pl011 {
 public:
  // The UART's register block at `base` (identity-mapped), fed by a `clock_hz` reference clock
  // (0: leave the baud rate as firmware or QEMU set it).
  Pl011(uintptr_t base, uint32_t clock_hz) : base_(base), clock_hz_(clock_hz) {}

  // Enables the UART for 115200 8N1 transmission with FIFOs (DDI 0183G 3.3.8 UARTCR: disable,
  // wait for BUSY to clear, program, enable).
  void Init();
  // Writes `n` bytes, "\n" as "\r\n". Each byte waits at most 10 ms for FIFO space (the
  // deadline is the generic timer's) and is dropped after that, so a stuck UART cannot hang
  // the system.
  void Write(const char* s, size_t n);

 private:
  // DDI 0183G 3.2 Table 3-1: register offsets.
  static constexpr size_t kDr = 0x000;    // UARTDR, data
  static constexpr size_t kFr = 0x018;    // UARTFR, flags
  static constexpr size_t kIbrd = 0x024;  // UARTIBRD, integer baud divisor
  static constexpr size_t kFbrd = 0x028;  // UARTFBRD, fractional baud divisor
  static constexpr size_t kLcrH = 0x02c;  // UARTLCR_H, line control
  static constexpr size_t kCr = 0x030;    // UARTCR, control
  static constexpr size_t kImsc = 0x038;  // UARTIMSC, interrupt mask
  static constexpr size_t kIcr = 0x044;   // UARTICR, interrupt clear

  // 3.3.3 UARTFR.
  static constexpr uint32_t kFrBusy = 1U << 3;
  static constexpr uint32_t kFrTxff = 1U << 5;  // transmit FIFO full
  // 3.3.7 UARTLCR_H.
  static constexpr uint32_t kLcrHFen = 1U << 4;    // FIFOs enabled
  static constexpr uint32_t kLcrHWlen8 = 3U << 5;  // 8-bit words
  // 3.3.8 UARTCR.
  static constexpr uint32_t kCrUarten = 1U << 0;
  static constexpr uint32_t kCrTxe = 1U << 8;
  static constexpr uint32_t kCrRxe = 1U << 9;

  uint32_t Read(size_t off) const { return *reinterpret_cast<volatile uint32_t*>(base_ + off); }
  void Write32(size_t off, uint32_t v) const {
    *reinterpret_cast<volatile uint32_t*>(base_ + off) = v;
  }
  void PutByte(char c);

  uintptr_t base_;
  uint32_t clock_hz_;
};

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PL011_H_
