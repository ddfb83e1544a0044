// Ending a program on QEMU `virt` with a status the host sees.

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_EXIT_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_EXIT_H_

#include "platform_info.h"

namespace deviso::qemu_virt {

// Makes PSCI (from the DTB) available to Exit() as its last resort.
void SetExitPsci(const PsciInfo& psci);

// Ends the program with `status`: prints "deviso-exit: <status>" on the console (a backstop
// for runs without semihosting), then
//   1. semihosting SYS_EXIT_EXTENDED: qemu-system-aarch64 exits with `status`
//      (needs -semihosting-config enable=on,target=native);
//   2. if semihosting is off (the HLT traps), PSCI SYSTEM_OFF, which QEMU reports as exit 0:
//      only the console line tells failure then;
//   3. if both fail, halts with interrupts masked.
[[noreturn]] void Exit(int status);

// True while Exit() is trying semihosting: the exception handler then continues with step 2
// instead of reporting a crash.
bool InSemihostingExit();
[[noreturn]] void ExitAfterSemihostingFailed();

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_EXIT_H_
