// Exceptions on q35: the IDT for vectors 0-31, the TSS with the double-fault stack, and the
// crash reports (boot/isr.S has the entry stubs and the non-recursion rule).
//
// Every exception is fatal. The first one, taken outside the handler, gets the full report
// (vector and its name, the decoded error code, RIP, CS, RFLAGS, RSP, SS, CR0, CR2, CR3, CR4 and
// the 15 general registers) and exit status 2. A fault inside that report, or a double fault
// (e.g. a #PF while the CPU pushed the frame onto a broken stack), gets the minimal report: fixed
// text and hex numbers written straight to COM1, on a stack of its own, then exit status 2. A
// fault inside the minimal report exits with status 2 without printing.

#ifndef DEVISO_PLATFORM_QEMU_Q35_X86_64_EXCEPTIONS_H_
#define DEVISO_PLATFORM_QEMU_Q35_X86_64_EXCEPTIONS_H_

#include <cstdint>

namespace deviso::q35 {

// What boot/isr.S builds on the stack, lowest address first: the registers it pushed, the
// vector and error code, then the CPU's frame (SDM Vol. 3A 6.14.2, Figure 6-9).
struct ExceptionFrame {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
  uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
  uint64_t vector;
  uint64_t error_code;  // 0 for vectors without one
  uint64_t rip, cs, rflags, rsp, ss;
};
static_assert(sizeof(ExceptionFrame) == 22 * 8, "boot/isr.S pushes 15 + 2 words over 5");

// Why the minimal report runs (boot/isr.S passes it).
enum class MinimalReason : uint32_t {
  kInsideHandler = 1,  // an exception while the full report ran
  kDoubleFault = 2,    // vector 8, on IST1
};

// Loads the TSS (IST1: the double-fault stack; IST2: NMI and machine check) and the IDT: vectors
// 0-31 the exception stubs, 32-255 the interrupt stubs (apic.h dispatches them). Called first
// thing in boot.cc; before it an exception is a triple fault.
void InstallExceptionHandlers();

// The architectural name of a vector 0-31 ("#PF page fault"), or "reserved".
const char* ExceptionName(uint64_t vector);

}  // namespace deviso::q35

// Called by the full report after its first line; does nothing. A test image defines it to
// fault inside the handler on purpose (examples/crash_report_q35).
extern "C" void deviso_q35_crash_report_hook();

#endif  // DEVISO_PLATFORM_QEMU_Q35_X86_64_EXCEPTIONS_H_
