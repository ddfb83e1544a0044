// Bare-metal AArch64 backend of include/deviso/port/os.h.

#ifndef DEVISO_PORT_BAREMETAL_OS_BACKEND_H_
#define DEVISO_PORT_BAREMETAL_OS_BACKEND_H_

#include <cstddef>
#include <cstdint>

namespace deviso::port {

// A ticket lock (Arm ARM K13 "Barrier litmus tests" style acquire/release): `next` is the
// ticket handed to the next arrival, `owner` the ticket being served. Exclusives need Normal
// memory: take an InterruptSpinLock only once the MMU is on.
struct InterruptSpinLockStorage {
  uint32_t next = 0;   // the ticket the next arrival takes
  uint32_t owner = 0;  // the ticket being served
  // DAIF of the holder before it masked interrupts, restored by Unlock. Written only by the
  // holder.
  uint64_t saved_daif = 0;
};

// Hooks the platform installs at boot (platform/<board>/). Until then Log() discards its output
// and deviso_panic() halts the CPU.
namespace baremetal {

// Writes `n` bytes of console output (e.g. a PL011). Called with the log lock held and IRQs
// masked: must not block on an interrupt.
using ConsoleWriteFn = void (*)(const char* s, size_t n);
// Ends the program with `status` (0 success); must not return.
using ExitFn = void (*)(int status);

// Installs the console Log() writes to (and deviso_panic() reports through).
void SetConsole(ConsoleWriteFn write);
// Installs what deviso_panic() calls at the end (and a program's exit).
void SetExit(ExitFn exit);

}  // namespace baremetal

}  // namespace deviso::port

#endif  // DEVISO_PORT_BAREMETAL_OS_BACKEND_H_
