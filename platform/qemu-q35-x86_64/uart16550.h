// The 16550 UART at COM1 (I/O port 0x3F8) that QEMU q35 connects to `-serial` (stdio with
// -nographic): the platform's console.

#ifndef DEVISO_PLATFORM_QEMU_Q35_X86_64_UART16550_H_
#define DEVISO_PLATFORM_QEMU_Q35_X86_64_UART16550_H_

#include <cstdint>

namespace deviso::q35 {

inline constexpr uint16_t kCom1Port = 0x3f8;

// Programs 115200 8N1 with the FIFOs on and interrupts off. Returns false (and leaves the port
// as it found it, but for the line settings) when the scratch register does not read back: no
// UART at that port.
bool UartInit(uint16_t port);

// Sends one byte, "\n" as "\r\n". Waits for the transmitter with a bounded number of polls
// (kUartPollLimit); after it the byte is sent regardless (QEMU's UART is always ready: the
// bound only matters on a UART that stopped).
void UartPutc(uint16_t port, char c);

// Upper bound on line-status polls for one byte (at 115200 baud a byte takes ~87 us; a poll
// is an I/O read of ~1 us on hardware).
inline constexpr uint32_t kUartPollLimit = 100000;

}  // namespace deviso::q35

#endif  // DEVISO_PLATFORM_QEMU_Q35_X86_64_UART16550_H_
