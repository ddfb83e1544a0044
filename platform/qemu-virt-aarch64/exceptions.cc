// EL1 exception handling for the QEMU `virt` platform: IRQs go to the GIC dispatcher, anything
// else is a crash: a readable report on the console, then Exit() with a failure status.

#include "exceptions.h"

#include "console.h"
#include "exit.h"

namespace deviso::qemu_virt {
namespace {

void (*g_irq_dispatch)() = nullptr;

// The 16 vector entries, in boot/vectors.S order (Arm ARM D1.10.2).
constexpr const char* kVectorNames[16] = {
    "sync (EL1, SP_EL0)",  "IRQ (EL1, SP_EL0)",  "FIQ (EL1, SP_EL0)",  "SError (EL1, SP_EL0)",
    "sync (EL1, SP_EL1)",  "IRQ (EL1, SP_EL1)",  "FIQ (EL1, SP_EL1)",  "SError (EL1, SP_EL1)",
    "sync (EL0, AArch64)", "IRQ (EL0, AArch64)", "FIQ (EL0, AArch64)", "SError (EL0, AArch64)",
    "sync (EL0, AArch32)", "IRQ (EL0, AArch32)", "FIQ (EL0, AArch32)", "SError (EL0, AArch32)",
};
constexpr uint64_t kKindIrqCurrentElSpx = 5;

// Data/instruction fault status codes, ISS[5:0] (Arm ARM D19.2.46, ISS encoding for an
// exception from a Data Abort / Instruction Abort).
const char* FaultStatusName(uint32_t fsc) {
  switch (fsc) {
    case 0x00:
    case 0x01:
    case 0x02:
    case 0x03:
      return "address size fault";
    case 0x04:
    case 0x05:
    case 0x06:
    case 0x07:
      return "translation fault";
    case 0x09:
    case 0x0a:
    case 0x0b:
      return "access flag fault";
    case 0x0d:
    case 0x0e:
    case 0x0f:
      return "permission fault";
    case 0x10:
      return "synchronous external abort";
    case 0x21:
      return "alignment fault";
    case 0x30:
      return "TLB conflict abort";
    default:
      return "other fault";
  }
}

bool IsAbort(uint32_t ec) { return ec == 0x20 || ec == 0x21 || ec == 0x24 || ec == 0x25; }

[[noreturn]] void CrashReport(uint64_t kind, const ExceptionFrame& f) {
  const uint32_t ec = static_cast<uint32_t>(f.esr >> 26) & 0x3f;
  const uint32_t il = static_cast<uint32_t>(f.esr >> 25) & 1;
  const uint32_t iss = static_cast<uint32_t>(f.esr) & 0x1ffffff;
  ConsolePrintfUnlocked("\n*** deviso: unexpected exception: %s\n", kVectorNames[kind & 15]);
  ConsolePrintfUnlocked("    ESR_EL1  0x%016llx  EC 0x%02x (%s), IL %u, ISS 0x%07x\n",
                        static_cast<unsigned long long>(f.esr), ec, ExceptionClassName(ec), il,
                        iss);
  if (IsAbort(ec)) {
    const uint32_t fsc = iss & 0x3f;
    ConsolePrintfUnlocked("    fault: %s (level %u)%s%s\n", FaultStatusName(fsc), fsc & 3,
                          (ec == 0x24 || ec == 0x25) && ((iss >> 6) & 1) != 0 ? ", on a write" : "",
                          (ec == 0x24 || ec == 0x25) && ((iss >> 6) & 1) == 0 ? ", on a read" : "");
  }
  ConsolePrintfUnlocked(
      "    FAR_EL1  0x%016llx\n    ELR_EL1  0x%016llx\n    SPSR_EL1 0x%016llx\n"
      "    SP       0x%016llx  LR (x30) 0x%016llx\n",
      static_cast<unsigned long long>(f.far), static_cast<unsigned long long>(f.elr),
      static_cast<unsigned long long>(f.spsr), static_cast<unsigned long long>(f.sp),
      static_cast<unsigned long long>(f.x[30]));
  for (int i = 0; i < 30; i += 2) {
    ConsolePrintfUnlocked("    x%-2d 0x%016llx  x%-2d 0x%016llx\n", i,
                          static_cast<unsigned long long>(f.x[i]), i + 1,
                          static_cast<unsigned long long>(f.x[i + 1]));
  }
  Exit(2);
}

}  // namespace

void SetIrqDispatcher(void (*dispatch)()) { g_irq_dispatch = dispatch; }

void ClearExceptionDepthForExit() {
  __atomic_store_n(&deviso_exception_depth, 0, __ATOMIC_RELAXED);
}

const char* ExceptionClassName(uint32_t ec) {
  switch (ec) {
    case 0x00:
      return "unknown reason";
    case 0x01:
      return "trapped WFI/WFE";
    case 0x07:
      return "SVE/SIMD/FP access trap";
    case 0x0e:
      return "illegal execution state";
    case 0x15:
      return "SVC (AArch64)";
    case 0x16:
      return "HVC (AArch64)";
    case 0x17:
      return "SMC (AArch64)";
    case 0x18:
      return "trapped MSR/MRS/system instruction";
    case 0x20:
      return "instruction abort from a lower EL";
    case 0x21:
      return "instruction abort (same EL)";
    case 0x22:
      return "PC alignment fault";
    case 0x24:
      return "data abort from a lower EL";
    case 0x25:
      return "data abort (same EL)";
    case 0x26:
      return "SP alignment fault";
    case 0x2c:
      return "trapped floating-point exception";
    case 0x2f:
      return "SError interrupt";
    case 0x30:
      return "breakpoint from a lower EL";
    case 0x31:
      return "breakpoint (same EL)";
    case 0x32:
      return "software step from a lower EL";
    case 0x33:
      return "software step (same EL)";
    case 0x34:
      return "watchpoint from a lower EL";
    case 0x35:
      return "watchpoint (same EL)";
    case 0x3c:
      return "BRK instruction";
    default:
      return "reserved/other";
  }
}

}  // namespace deviso::qemu_virt

// Called by boot/vectors.S for every exception taken to EL1.
extern "C" void deviso_qemu_virt_exception(uint64_t kind,
                                           deviso::qemu_virt::ExceptionFrame* frame) {
  using namespace deviso::qemu_virt;
  if (kind == kKindIrqCurrentElSpx && g_irq_dispatch != nullptr) {
    g_irq_dispatch();
    return;
  }
  if (InSemihostingExit()) {
    // The semihosting HLT trapped: semihosting is off. Fall back to PSCI.
    ExitAfterSemihostingFailed();
  }
  if (!ConsoleReady()) {
    // The MMU is on (the vectors checked) but the DTB has not given a console yet.
    deviso_minimal_crash_report(kind, kDevisoMinimalNoConsole);
  }
  CrashReport(kind, *frame);
}
