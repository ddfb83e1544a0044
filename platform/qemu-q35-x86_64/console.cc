#include "console.h"

#include "format.h"
#include "uart16550.h"

namespace deviso::q35 {

void ConsoleInit() { (void)UartInit(kCom1Port); }

void ConsoleWrite(const char* text, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    UartPutc(kCom1Port, text[i]);
  }
}

void ConsoleVprintf(const char* format, va_list args) {
  static char line[256];
  const int n = FormatV(line, sizeof(line), format, args);
  if (n < 0) {
    return;
  }
  const size_t len =
      static_cast<size_t>(n) < sizeof(line) ? static_cast<size_t>(n) : sizeof(line) - 1;
  ConsoleWrite(line, len);
  if (static_cast<size_t>(n) >= sizeof(line)) {
    ConsoleWrite("...\n", 4);
  }
}

void ConsolePrintf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  ConsoleVprintf(format, args);
  va_end(args);
}

}  // namespace deviso::q35
