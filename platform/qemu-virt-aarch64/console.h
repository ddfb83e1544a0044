// The platform console (the PL011 the DTB names), and its installation as the port's log sink.

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_CONSOLE_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_CONSOLE_H_

#include <cstddef>

#include "platform_info.h"

namespace deviso::qemu_virt {

// Initialises the UART and makes it the sink of deviso::port::Log(). Without a UART, output is
// discarded.
void ConsoleInit(const UartInfo& uart);

// Whether ConsoleInit found a UART (before that, a crash gets the minimal report).
bool ConsoleReady();

// Writes to the console without taking the log lock: for crash reports and the final exit line,
// which may run while the interrupted code holds that lock.
void ConsoleWriteUnlocked(const char* s, size_t n);
void ConsolePrintfUnlocked(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_CONSOLE_H_
