#include "uart16550.h"

#include "arch.h"

namespace deviso::q35 {
namespace {

// PC16550D data sheet, "Register description": offsets from the base port.
constexpr uint16_t kRbrThr = 0;  // receive / transmit holding (DLL when LCR.DLAB = 1)
constexpr uint16_t kIer = 1;     // interrupt enable (DLM when LCR.DLAB = 1)
constexpr uint16_t kFcr = 2;     // FIFO control (write)
constexpr uint16_t kLcr = 3;     // line control
constexpr uint16_t kMcr = 4;     // modem control
constexpr uint16_t kLsr = 5;     // line status
constexpr uint16_t kScr = 7;     // scratch

constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kLcr8N1 = 0x03;
constexpr uint8_t kFcrEnableClear = 0x07;  // FIFO enable, clear RX and TX
constexpr uint8_t kMcrDtrRts = 0x03;
constexpr uint8_t kLsrThre = 0x20;      // transmitter holding register empty
constexpr uint16_t kDivisor115200 = 1;  // 1.8432 MHz / 16 / 115200

}  // namespace

bool UartInit(uint16_t port) {
  const uint8_t scratch = Inb(port + kScr);
  Outb(port + kScr, 0x5a);
  const bool present = Inb(port + kScr) == 0x5a;
  Outb(port + kScr, scratch);
  if (!present) {
    return false;
  }
  Outb(port + kIer, 0);
  Outb(port + kLcr, kLcrDlab);
  Outb(port + kRbrThr, kDivisor115200 & 0xff);
  Outb(port + kIer, kDivisor115200 >> 8);
  Outb(port + kLcr, kLcr8N1);
  Outb(port + kFcr, kFcrEnableClear);
  Outb(port + kMcr, kMcrDtrRts);
  return true;
}

void UartPutc(uint16_t port, char c) {
  if (c == '\n') {
    UartPutc(port, '\r');
  }
  for (uint32_t i = 0; i < kUartPollLimit && (Inb(port + kLsr) & kLsrThre) == 0; ++i) {
    Pause();
  }
  Outb(port + kRbrThr, static_cast<uint8_t>(c));
}

}  // namespace deviso::q35
