// EL1 exception handling: the frame boot/vectors.S saves, IRQ dispatch and the crash report.

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_EXCEPTIONS_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_EXCEPTIONS_H_

#include <cstdint>

namespace deviso::qemu_virt {

// The interrupted context, as boot/vectors.S stores it (offsets are fixed there).
struct ExceptionFrame {
  uint64_t x[31];
  uint64_t sp;
  uint64_t elr;
  uint64_t spsr;
  uint64_t esr;
  uint64_t far;
  uint64_t fpcr;
  uint64_t fpsr;
  __uint128_t q[32];
};
static_assert(sizeof(ExceptionFrame) == 816, "must match FRAME_SIZE in boot/vectors.S");

// Installs the function that handles IRQs taken at EL1 (the GIC driver's dispatcher).
void SetIrqDispatcher(void (*dispatch)());

// Whether the exception vectors are inside a handler (boot/vectors.S sets it on entry and
// clears it when an IRQ returns). Exit() clears it just before its semihosting HLT, so that a
// trapped HLT (semihosting off) still reaches the PSCI fallback, not the minimal report.
void ClearExceptionDepthForExit();

// Decodes ESR_EL1.EC (Arm ARM D19.2.46 ESR_EL1, Table "Exception class") into a short name.
const char* ExceptionClassName(uint32_t ec);

}  // namespace deviso::qemu_virt

extern "C" {
// boot/vectors.S. The minimal crash report: fixed strings and the ESR/ELR/FAR/SPSR in hex
// written straight to the PL011, then semihosting exit 2; no stack, no libc. `kind` is the
// vector (0-15), `reason` one of:
enum : uint64_t {
  kDevisoMinimalNested = 1,     // an exception while handling one
  kDevisoMinimalMmuOff = 2,     // before the MMU is on
  kDevisoMinimalNoConsole = 3,  // before the console exists
};
[[noreturn]] void deviso_minimal_crash_report(uint64_t kind, uint64_t reason);
extern uint64_t deviso_exception_depth;
}

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_EXCEPTIONS_H_
