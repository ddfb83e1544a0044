// Host (Linux) backend of include/deviso/port/os.h.

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>

#include "deviso/port/device.h"
#include "deviso/port/os.h"
#include "ports/host/test_clock.h"

namespace deviso::port {
namespace {

// The installed test clock (src/ports/host/test_clock.h), or nullptr for steady_clock.
std::atomic<host::ClockSource*> g_clock_source{nullptr};
std::atomic<bool> g_log_silenced{false};

}  // namespace

host::ClockSource* host::SetClockSource(ClockSource* source) {
  return g_clock_source.exchange(source);
}

bool host::SetLogSilenced(bool silenced) { return g_log_silenced.exchange(silenced); }

InterruptSpinLock::InterruptSpinLock() = default;
InterruptSpinLock::~InterruptSpinLock() = default;
void InterruptSpinLock::Lock() { storage_.mutex.lock(); }
const char* DeviceName(const device* dev) {
  return dev != nullptr && dev->name != nullptr ? dev->name : "?";
}

bool InterruptSpinLock::TryLock() { return storage_.mutex.try_lock(); }
void InterruptSpinLock::Unlock() { storage_.mutex.unlock(); }

uint64_t MonotonicNs() {
  if (host::ClockSource* source = g_clock_source.load(std::memory_order_acquire)) {
    return source->NowNs();
  }
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

void Log(const char* format, ...) {
  va_list args;
  va_start(args, format);
  if (g_log_silenced.load(std::memory_order_relaxed)) {
    char discarded[256];
    std::vsnprintf(discarded, sizeof(discarded), format, args);
  } else {
    std::vfprintf(stderr, format, args);
  }
  va_end(args);
}

}  // namespace deviso::port
