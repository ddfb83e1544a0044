#include "exit.h"

#include "console.h"
#include "exceptions.h"

extern "C" uint64_t deviso_psci_conduit;  // boot/vectors.S: 0 none, 1 HVC, 2 SMC

namespace deviso::qemu_virt {
namespace {

PsciInfo g_psci;
volatile bool g_in_semihosting = false;
int g_status = 0;

// Arm "Semihosting for AArch32 and AArch64", SYS_EXIT_EXTENDED (0x20): x1 points
// at {reason, subcode}; ADP_Stopped_ApplicationExit (0x20026) with the exit status as subcode.
void SemihostingExit(int status) {
  alignas(16) static uint64_t block[2];
  block[0] = 0x20026;
  block[1] = static_cast<uint64_t>(static_cast<int64_t>(status));
  register uint64_t x0 asm("x0") = 0x20;
  register uint64_t x1 asm("x1") = reinterpret_cast<uintptr_t>(block);
  asm volatile("hlt #0xf000" : "+r"(x0) : "r"(x1) : "memory");
}

// PSCI (Arm DEN 0022) 5.1.9 SYSTEM_OFF, function ID 0x8400_0008, through the DTB's conduit.
void PsciSystemOff() {
  if (!g_psci.present) {
    return;
  }
  register uint64_t x0 asm("x0") = 0x84000008;
  if (g_psci.use_hvc) {
    asm volatile("hvc #0" : "+r"(x0)::"memory");
  } else {
    asm volatile("smc #0" : "+r"(x0)::"memory");
  }
}

}  // namespace

void SetExitPsci(const PsciInfo& psci) {
  g_psci = psci;
  deviso_psci_conduit = !psci.present ? 0 : psci.use_hvc ? 1 : 2;
}

bool InSemihostingExit() { return g_in_semihosting; }

void ExitAfterSemihostingFailed() {
  g_in_semihosting = false;
  ConsolePrintfUnlocked(
      "deviso-exit: semihosting unavailable; PSCI SYSTEM_OFF (QEMU exits 0; status was %d)\n",
      g_status);
  PsciSystemOff();
  for (;;) {
    asm volatile("msr daifset, #0xf; wfi");
  }
}

void Exit(int status) {
  g_status = status;
  ConsolePrintfUnlocked("deviso-exit: %d\n", status);
  g_in_semihosting = true;
  ClearExceptionDepthForExit();
  SemihostingExit(status);
  ExitAfterSemihostingFailed();
}

}  // namespace deviso::qemu_virt
