// Backend of deviso/port/os.h for bare-metal x86-64 (DEVISO_PORT=baremetal_x86; the QEMU q35
// platform, platform/qemu-q35-x86_64). Single address space, interrupts masked while a lock is
// held; the board installs the console, the exit and the clock.

#ifndef DEVISO_PORT_BAREMETAL_X86_OS_BACKEND_H_
#define DEVISO_PORT_BAREMETAL_X86_OS_BACKEND_H_

#include <cstddef>
#include <cstdint>

namespace deviso::port {

// A ticket spin lock's state (deviso::port::InterruptSpinLock on bare-metal x86-64).
struct InterruptSpinLockStorage {
  uint32_t next = 0;   // the ticket the next arrival takes
  uint32_t owner = 0;  // the ticket being served
  /// RFLAGS of the holder before it cleared IF, restored by Unlock. Written only by the holder.
  uint64_t saved_rflags = 0;
};

// The hooks a bare-metal x86-64 board installs.
namespace baremetal_x86 {

// Writes `n` bytes of text to the console.
using ConsoleWriteFn = void (*)(const char* s, size_t n);
// Ends the program with `status`; does not return.
using ExitFn = void (*)(int status);
// Nanoseconds since an arbitrary fixed point, monotonic.
using ClockFn = uint64_t (*)();

// Sets where Log() and deviso_panic() write (nothing is printed before).
void SetConsole(ConsoleWriteFn write);
// Sets what deviso_panic() calls after printing (status 1); before it, the CPU halts.
void SetExit(ExitFn exit);
// Sets the clock MonotonicNs() reads. Before it is set (or with nullptr), MonotonicNs() advances
// by 1 microsecond per call, so that every deadline still expires after a bounded number of
// polls instead of never.
void SetClock(ClockFn clock);

}  // namespace baremetal_x86

}  // namespace deviso::port

#endif  // DEVISO_PORT_BAREMETAL_X86_OS_BACKEND_H_
