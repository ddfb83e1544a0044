// Bare-metal AArch64 backend of include/deviso/port/os.h: a ticket spin lock that masks IRQs, the
// generic timer's virtual counter as the monotonic clock, and a console hook for Log().

#include <cstdarg>
#include <cstdio>

#include "../console_line.h"
#include "deviso/assert.h"
#include "deviso/port/device.h"
#include "deviso/port/os.h"

namespace deviso::port {
namespace {

baremetal::ConsoleWriteFn g_console = nullptr;
baremetal::ExitFn g_exit = nullptr;

// Arm ARM D19.2 DAIF: bit 7 is I (IRQ mask), bit 6 F (FIQ mask).
uint64_t SaveDaifAndMaskInterrupts() {
  uint64_t daif;
  asm volatile("mrs %0, daif" : "=r"(daif));
  asm volatile("msr daifset, #3" ::: "memory");  // #3: I and F
  return daif;
}

void RestoreDaif(uint64_t daif) { asm volatile("msr daif, %0" ::"r"(daif) : "memory"); }

// Arm ARM D11.2 (the generic timer): CNTFRQ_EL0 is the counter frequency in Hz, CNTVCT_EL0
// the virtual count. The ISB stops the read from being speculated ahead of earlier code.
uint64_t CounterFrequency() {
  uint64_t f;
  asm volatile("mrs %0, cntfrq_el0" : "=r"(f));
  return f;
}

uint64_t VirtualCount() {
  uint64_t c;
  asm volatile("isb; mrs %0, cntvct_el0" : "=r"(c)::"memory");
  return c;
}

// Serialises console output, so lines from an IRQ handler and the main flow do not interleave.
InterruptSpinLock* LogLock() {
  static InterruptSpinLock mutex;
  return &mutex;
}

}  // namespace

namespace baremetal {
void SetConsole(ConsoleWriteFn write) { g_console = write; }
void SetExit(ExitFn exit) { g_exit = exit; }
}  // namespace baremetal

const char* DeviceName(const device* dev) {
  return dev != nullptr && dev->name != nullptr ? dev->name : "?";
}

InterruptSpinLock::InterruptSpinLock() = default;
InterruptSpinLock::~InterruptSpinLock() = default;

void InterruptSpinLock::Lock() {
  const uint64_t daif = SaveDaifAndMaskInterrupts();
  const uint32_t ticket = __atomic_fetch_add(&storage_.next, 1, __ATOMIC_RELAXED);
  // Acquire: the holder's writes (released by Unlock) are visible once our turn is seen. WFE
  // sleeps until the owner's store clears this CPU's exclusive monitor (Arm ARM D1.6.1), or an
  // event arrives; the loop then re-checks.
  while (__atomic_load_n(&storage_.owner, __ATOMIC_ACQUIRE) != ticket) {
    asm volatile("wfe" ::: "memory");
  }
  storage_.saved_daif = daif;
}

bool InterruptSpinLock::TryLock() {
  const uint64_t daif = SaveDaifAndMaskInterrupts();
  // Free means no ticket handed out beyond the one being served: take the next ticket only if
  // it is the owner's, so a failed try leaves no ticket behind that would block the queue.
  uint32_t owner = __atomic_load_n(&storage_.owner, __ATOMIC_ACQUIRE);
  if (!__atomic_compare_exchange_n(&storage_.next, &owner, owner + 1, false, __ATOMIC_ACQUIRE,
                                   __ATOMIC_RELAXED)) {
    RestoreDaif(daif);
    return false;
  }
  storage_.saved_daif = daif;
  return true;
}

void InterruptSpinLock::Unlock() {
  const uint64_t daif = storage_.saved_daif;
  __atomic_store_n(&storage_.owner, storage_.owner + 1, __ATOMIC_RELEASE);
  // A plain store does not wake WFE waiters on other CPUs reliably: signal an event.
  asm volatile("dsb ish; sev" ::: "memory");
  RestoreDaif(daif);
}

uint64_t MonotonicNs() {
  const uint64_t freq = CounterFrequency();
  const uint64_t count = VirtualCount();
  // Split into whole seconds and a remainder so that neither product overflows 64 bits.
  const uint64_t seconds = count / freq;
  const uint64_t rest = count % freq;
  return seconds * 1'000'000'000ULL + rest * 1'000'000'000ULL / freq;
}

void Log(const char* format, ...) {
  va_list args;
  va_start(args, format);
  detail::WriteLogLine(g_console, *LogLock(), format, args);
  va_end(args);
}

}  // namespace deviso::port

extern "C" void deviso_panic(const char* file, int line, const char* expr) {
  // No lock: the panic may come from inside a Log() call or before the MMU is on.
  deviso::port::detail::WritePanicLine(deviso::port::g_console, file, line, expr);
  if (deviso::port::g_exit != nullptr) {
    deviso::port::g_exit(1);
  }
  for (;;) {
    asm volatile("msr daifset, #0xf; wfi");
  }
}
