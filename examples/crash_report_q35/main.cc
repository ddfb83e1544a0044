// crash_report_q35: faults on purpose; the platform must report it once and exit with status 2.
// The faulting instructions carry global labels, so the QEMU test can compare the report's RIP
// with the ELF's symbol (examples/crash_report_q35/qemu_test.sh).
//
//   crash=pf        loads from 0x1_dead_0000, above the 4 GiB the boot map covers: #PF, error
//                   code 0 (not present, read, supervisor), CR2 = that address: the full report.
//   crash=sse       an SSE instruction (movaps) with CR4.OSFXSR clear: #UD, the full report.
//   crash=null      loads from address 8: page 0 is not mapped, #PF with CR2 = 8.
//   crash=handler   as crash=pf, and the full report's hook (deviso_q35_crash_report_hook) loads
//                   from 0x2_dead_0000: a fault inside the handler, which must end in the
//                   minimal report ("inside the exception handler"), not a loop.
//   crash=overflow  pushes until the stack runs into its guard page: the #PF cannot push its own
//                   frame either, so the CPU raises a double fault, which runs on IST1 and gives
//                   the minimal report ("double fault").
//   crash=assert    a failed DEVISO_ASSERT: no exception, the x86 port's deviso_panic() prints
//                   "deviso: assertion failed" and exits with status 1.

#include <cstdint>

#include "console.h"
#include "deviso/assert.h"
#include "platform.h"

namespace {

bool g_fault_in_hook = false;

}  // namespace

extern "C" void deviso_q35_crash_report_hook() {
  if (!g_fault_in_hook) {
    return;
  }
  asm volatile(
      ".globl crash_q35_hook_load\n"
      "crash_q35_hook_load: mov (%0), %%rax" ::"r"(0x2dead0000ULL)
      : "rax", "memory");
}

int deviso::q35::AppMain(const PlatformInfo& info) {
  if (CmdlineHas(info, "crash=assert")) {
    volatile bool never = false;
    ConsolePrintf("crash_report_q35: DEVISO_ASSERT on a false condition\n");
    DEVISO_ASSERT(never);
  } else if (CmdlineHas(info, "crash=sse")) {
    ConsolePrintf("crash_report_q35: an SSE instruction with CR4.OSFXSR clear\n");
    asm volatile(
        ".globl crash_q35_sse\n"
        "crash_q35_sse: movaps %%xmm0, %%xmm1" ::
            : "memory");
  } else if (CmdlineHas(info, "crash=null")) {
    ConsolePrintf("crash_report_q35: loading from address 8 (page 0 is not mapped)\n");
    asm volatile(
        ".globl crash_q35_null_load\n"
        "crash_q35_null_load: mov (%0), %%rax" ::"r"(8ULL)
        : "rax", "memory");
  } else if (CmdlineHas(info, "crash=overflow")) {
    ConsolePrintf("crash_report_q35: pushing until the stack meets its guard page at 0x%lx\n",
                  static_cast<unsigned long>(info.image.stack_guard));
    asm volatile(
        "1: push %%rax\n"
        "jmp 1b" ::
            : "memory");
  } else {
    g_fault_in_hook = CmdlineHas(info, "crash=handler");
    ConsolePrintf("crash_report_q35: loading from 0x1dead0000 (not mapped)%s\n",
                  g_fault_in_hook ? "; the report's hook faults too" : "");
    asm volatile(
        ".globl crash_q35_load\n"
        "crash_q35_load: mov (%0), %%rax" ::"r"(0x1dead0000ULL)
        : "rax", "memory");
  }
  ConsolePrintf("crash_report_q35: FAIL: still running after the fault\n");
  return 1;
}
