// Host (Linux) backend of src/ports/port.h.

#include <chrono>
#include <cstdarg>
#include <cstdio>

#include "ports/port.h"

namespace deviso::port {

Mutex::Mutex() = default;
Mutex::~Mutex() = default;
void Mutex::Lock() { storage_.mutex.lock(); }
void Mutex::Unlock() { storage_.mutex.unlock(); }

uint64_t MonotonicNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

void Log(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
}

}  // namespace deviso::port
