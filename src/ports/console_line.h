// The console lines the bare-metal ports write (port_baremetal.cc, port_baremetal_x86.cc): one
// formatted line per Log() call and the fixed assertion line of deviso_panic(). Each port keeps
// its own console hook, lock and halt instruction; only the line handling is shared.
#ifndef DEVISO_SRC_PORTS_CONSOLE_LINE_H_
#define DEVISO_SRC_PORTS_CONSOLE_LINE_H_

#include <cstdarg>
#include <cstddef>
#include <cstdio>

#include "deviso/port/os.h"

namespace deviso::port::detail {

using ConsoleSink = void (*)(const char* s, size_t n);

inline constexpr size_t kConsoleLineBytes = 256;

// Formats `format` into one line of at most kConsoleLineBytes - 1 characters (longer output is
// truncated) and writes it to `console` under `lock`. Nothing is written without a console or
// when formatting fails.
inline void WriteLogLine(ConsoleSink console, InterruptSpinLock& lock, const char* format,
                         va_list args) {
  char buffer[kConsoleLineBytes];
  int n = std::vsnprintf(buffer, sizeof(buffer), format, args);
  if (n < 0 || console == nullptr) {
    return;
  }
  if (static_cast<size_t>(n) >= sizeof(buffer)) {
    n = sizeof(buffer) - 1;  // truncated
  }
  LockGuard guard(lock);
  console(buffer, static_cast<size_t>(n));
}

// Writes "deviso: assertion failed: EXPR (FILE:LINE)" to `console`, without a lock: a panic may
// come from inside a Log() call.
inline void WritePanicLine(ConsoleSink console, const char* file, int line, const char* expr) {
  char buffer[kConsoleLineBytes];
  const int n = std::snprintf(buffer, sizeof(buffer), "deviso: assertion failed: %s (%s:%d)\n",
                              expr, file, line);
  if (console != nullptr && n > 0) {
    console(buffer,
            static_cast<size_t>(n) < sizeof(buffer) ? static_cast<size_t>(n) : sizeof(buffer) - 1);
  }
}

}  // namespace deviso::port::detail

#endif  // DEVISO_SRC_PORTS_CONSOLE_LINE_H_
