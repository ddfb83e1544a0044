// Bare-metal x86-64 backend of include/deviso/port/os.h: a ticket spin lock that clears IF, the
// board's clock (or a counting fallback), and a console hook for Log().

#include <cstdarg>
#include <cstdio>

#include "../console_line.h"
#include "deviso/assert.h"
#include "deviso/port/device.h"
#include "deviso/port/os.h"

namespace deviso::port {
namespace {

baremetal_x86::ConsoleWriteFn g_console = nullptr;
baremetal_x86::ExitFn g_exit = nullptr;
baremetal_x86::ClockFn g_clock = nullptr;
uint64_t g_fallback_ns = 0;

// Intel SDM Vol. 3A 2.3: RFLAGS.IF is bit 9. PUSHFQ/POPFQ save and restore it with the rest.
uint64_t SaveFlagsAndDisableInterrupts() {
  uint64_t flags;
  asm volatile("pushfq; popq %0; cli" : "=r"(flags)::"memory");
  return flags;
}

void RestoreFlags(uint64_t flags) { asm volatile("pushq %0; popfq" ::"r"(flags) : "memory", "cc"); }

// Serialises console output, so lines from an interrupt handler and the main flow do not
// interleave.
InterruptSpinLock* LogLock() {
  static InterruptSpinLock mutex;
  return &mutex;
}

}  // namespace

namespace baremetal_x86 {
void SetConsole(ConsoleWriteFn write) { g_console = write; }
void SetExit(ExitFn exit) { g_exit = exit; }
void SetClock(ClockFn clock) { g_clock = clock; }
}  // namespace baremetal_x86

InterruptSpinLock::InterruptSpinLock() = default;
InterruptSpinLock::~InterruptSpinLock() = default;

void InterruptSpinLock::Lock() {
  const uint64_t flags = SaveFlagsAndDisableInterrupts();
  const uint32_t ticket = __atomic_fetch_add(&storage_.next, 1, __ATOMIC_RELAXED);
  // Acquire: the holder's writes (released by Unlock) are visible once our turn is seen.
  while (__atomic_load_n(&storage_.owner, __ATOMIC_ACQUIRE) != ticket) {
    asm volatile("pause" ::: "memory");
  }
  storage_.saved_rflags = flags;
}

bool InterruptSpinLock::TryLock() {
  const uint64_t flags = SaveFlagsAndDisableInterrupts();
  // Free means no ticket handed out beyond the one being served: take the next ticket only if
  // it is the owner's, so a failed try leaves no ticket behind that would block the queue.
  uint32_t owner = __atomic_load_n(&storage_.owner, __ATOMIC_ACQUIRE);
  if (!__atomic_compare_exchange_n(&storage_.next, &owner, owner + 1, false, __ATOMIC_ACQUIRE,
                                   __ATOMIC_RELAXED)) {
    RestoreFlags(flags);
    return false;
  }
  storage_.saved_rflags = flags;
  return true;
}

const char* DeviceName(const device* dev) {
  return dev != nullptr && dev->name != nullptr ? dev->name : "?";
}

void InterruptSpinLock::Unlock() {
  const uint64_t flags = storage_.saved_rflags;
  __atomic_store_n(&storage_.owner, storage_.owner + 1, __ATOMIC_RELEASE);
  RestoreFlags(flags);
}

uint64_t MonotonicNs() {
  if (g_clock != nullptr) {
    return g_clock();
  }
  // No clock yet: advance per call, so a deadline poll ends after a bounded number of polls.
  return __atomic_add_fetch(&g_fallback_ns, 1000, __ATOMIC_RELAXED);
}

void Log(const char* format, ...) {
  va_list args;
  va_start(args, format);
  detail::WriteLogLine(g_console, *LogLock(), format, args);
  va_end(args);
}

}  // namespace deviso::port

extern "C" void deviso_panic(const char* file, int line, const char* expr) {
  // No lock: the panic may come from inside a Log() call.
  deviso::port::detail::WritePanicLine(deviso::port::g_console, file, line, expr);
  if (deviso::port::g_exit != nullptr) {
    deviso::port::g_exit(1);
  }
  for (;;) {
    asm volatile("cli; hlt");
  }
}
