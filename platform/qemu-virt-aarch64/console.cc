#include "console.h"

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <new>

#include "deviso/port/os.h"
#include "pl011.h"

extern "C" uint64_t deviso_console_uart;  // boot/vectors.S: the minimal crash report's PL011

namespace deviso::qemu_virt {
namespace {

// Constructed in place by ConsoleInit (which runs before the C++ static constructors).
alignas(Pl011) unsigned char g_uart_storage[sizeof(Pl011)];
Pl011* g_uart = nullptr;

void WriteToUart(const char* s, size_t n) {
  if (g_uart != nullptr) {
    g_uart->Write(s, n);
  }
}

}  // namespace

void ConsoleInit(const UartInfo& uart) {
  if (!uart.present) {
    return;
  }
  g_uart = new (g_uart_storage) Pl011(static_cast<uintptr_t>(uart.regs.base), uart.clock_hz);
  g_uart->Init();
  deviso_console_uart = uart.regs.base;
  port::baremetal::SetConsole(&WriteToUart);
}

bool ConsoleReady() { return g_uart != nullptr; }

void ConsoleWriteUnlocked(const char* s, size_t n) { WriteToUart(s, n); }

void ConsolePrintfUnlocked(const char* format, ...) {
  char buffer[256];
  va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(buffer, sizeof(buffer), format, args);
  va_end(args);
  if (n > 0) {
    WriteToUart(buffer, static_cast<size_t>(n) < sizeof(buffer) ? static_cast<size_t>(n)
                                                                : sizeof(buffer) - 1);
  }
}

}  // namespace deviso::qemu_virt
