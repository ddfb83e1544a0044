// How a program on q35 ends: its exit status through QEMU's isa-debug-exit device.
//
// isa-debug-exit (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`) makes QEMU exit with
// (value << 1) | 1 for a value written to its port, so a write cannot produce an even status
// and 0 is impossible. The platform reserves the mapping: program status s (0..kMaxExitStatus)
// is written as s + 1, QEMU exits with 2s + 3, and scripts/demo maps that back to s. QEMU's own
// statuses 0 (a reset or shutdown with -no-reboot, e.g. a triple fault) and 1 (QEMU's error)
// never come from a program (README "Exit status").

#ifndef DEVISO_PLATFORM_QEMU_Q35_X86_64_EXIT_H_
#define DEVISO_PLATFORM_QEMU_Q35_X86_64_EXIT_H_

#include <cstdint>

namespace deviso::q35 {

inline constexpr uint16_t kDebugExitPort = 0xf4;
// (value << 1) | 1 must fit QEMU's 8-bit process status: value <= 127, s = value - 1.
inline constexpr int kMaxExitStatus = 126;

// Program statuses of the platform itself (README "Exit status").
inline constexpr int kExitPass = 0;
inline constexpr int kExitCheckFailed = 1;
inline constexpr int kExitCrash = 2;
inline constexpr int kExitOutOfRange = 12;  // Exit() given a status outside 0..126

// Prints "deviso-exit: <status>" and ends the program with `status` (0..kMaxExitStatus; any
// other value ends it with kExitOutOfRange). Without an isa-debug-exit device, ends in a
// triple fault (QEMU -no-reboot exits 0, which scripts/demo reports as no status).
[[noreturn]] void Exit(int status);

// The isa-debug-exit write alone (no console output); for the crash paths.
void DebugExitWrite(int status);

}  // namespace deviso::q35

#endif  // DEVISO_PLATFORM_QEMU_Q35_X86_64_EXIT_H_
