// The console of the q35 platform: COM1 (uart16550.h), with printf-style output.

#ifndef DEVISO_PLATFORM_QEMU_Q35_X86_64_CONSOLE_H_
#define DEVISO_PLATFORM_QEMU_Q35_X86_64_CONSOLE_H_

#include <cstdarg>
#include <cstddef>

namespace deviso::q35 {

// Programs COM1. Output before it still reaches QEMU's UART (which needs no set-up).
void ConsoleInit();

// Writes `len` bytes ("\n" as "\r\n").
void ConsoleWrite(const char* text, size_t len);

// printf to the console, through a 256-byte line buffer (longer output is cut, with "..."
// marking the cut). Not reentrant: single CPU, no interrupt handler prints. The crash reports
// use it too (exceptions.cc), after which nothing else runs.
void ConsolePrintf(const char* format, ...) __attribute__((format(printf, 1, 2)));
void ConsoleVprintf(const char* format, va_list args);

}  // namespace deviso::q35

#endif  // DEVISO_PLATFORM_QEMU_Q35_X86_64_CONSOLE_H_
