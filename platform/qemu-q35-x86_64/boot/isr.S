// Exception entry stubs for vectors 0-31 and the common path (exceptions.cc installs them in the
// IDT). Every exception is fatal: it is reported once and the program ends with status 2.
// Vectors 32-255 are interrupts (irq_common): dispatched by apic.cc, then IRETQ.
//
// The frame (exceptions.h, ExceptionFrame): the 15 general registers pushed here, the vector,
// the error code (0 when the CPU pushes none; SDM Vol. 3A 6.13 lists the vectors that have
// one), then what the CPU pushed: RIP, CS, RFLAGS, RSP, SS (SDM Vol. 3A 6.14.2, 64-bit mode).
//
// Non-recursive: deviso_q35_exception_depth counts entries.
//   depth 0 -> 1: the full report (exceptions.cc, on the stack the exception came in on);
//   depth 1 -> 2: a fault inside the handler: the minimal report, on a stack of its own;
//   depth >= 2: no printing at all: isa-debug-exit with status 2, else a triple fault.
// The double fault (#DF, vector 8) runs on IST1, a stack of its own (a #PF while the CPU pushed
// a frame onto a broken stack ends there), and always gets the minimal report.

#define DEBUG_EXIT_PORT 0xf4
#define CRASH_STATUS 2

// Vectors with an error code: 8, 10-14, 17, 21, 29, 30 (SDM Vol. 3A Table 6-1; 21 #CP,
// 29 #VC, 30 #SX as AMD's APM defines them).
.macro STUB vector
  .balign 16
  .if (\vector == 8) || (\vector >= 10 && \vector <= 14) || (\vector == 17) || \
      (\vector == 21) || (\vector == 29) || (\vector == 30)
  .else
  pushq $0
  .endif
  pushq $\vector
  .if \vector == 8
  jmp double_fault
  .else
  jmp common
  .endif
.endm

  .text
  .code64
  .balign 16
  .globl deviso_q35_exception_stubs
deviso_q35_exception_stubs:       // 32 stubs, 16 bytes apart (exceptions.cc: kStubSize)
  .altmacro
  .set vec, 0
  .rept 32
  STUB %vec
  .set vec, vec + 1
  .endr
  .noaltmacro

// Interrupt stubs for vectors 32-255 (exceptions.cc installs them; apic.cc dispatches): no
// error code, so a 0 is pushed to keep ExceptionFrame's layout, then the vector.
.macro IRQ_STUB vector
  .balign 16
  pushq $0
  pushq $\vector
  jmp irq_common
.endm

  .balign 16
  .globl deviso_q35_irq_stubs
deviso_q35_irq_stubs:             // 224 stubs, 16 bytes apart, the first for vector 32
  .altmacro
  .set vec, 32
  .rept 224
  IRQ_STUB %vec
  .set vec, vec + 1
  .endr
  .noaltmacro

.macro PUSH_GPRS
  push %rax
  push %rbx
  push %rcx
  push %rdx
  push %rsi
  push %rdi
  push %rbp
  push %r8
  push %r9
  push %r10
  push %r11
  push %r12
  push %r13
  push %r14
  push %r15
.endm

common:
  PUSH_GPRS
  cld
  mov $1, %eax
  lock xadd %eax, deviso_q35_exception_depth(%rip)
  test %eax, %eax
  jnz nested
  mov %rsp, %rdi                    // ExceptionFrame*
  and $-16, %rsp
  call deviso_q35_exception         // exceptions.cc: the full report; does not return
  jmp exit_now
nested:
  cmp $1, %eax
  jne exit_now
  mov %rsp, %rdi
  lea minimal_stack_top(%rip), %rsp
  mov $1, %esi                      // MinimalReason::kInsideHandler
  call deviso_q35_minimal_report    // does not return
  jmp exit_now

// An interrupt: saves every general register, calls the dispatcher on a 16-byte aligned stack,
// restores them and returns (the code interrupted continues). The interrupted code is compiled
// without a red zone (-mno-red-zone), so the CPU's frame overwrote nothing live.
irq_common:
  PUSH_GPRS
  cld
  mov %rsp, %rdi                    // ExceptionFrame*
  mov %rsp, %rbx                    // callee-saved: the frame, to undo the alignment
  and $-16, %rsp
  call deviso_q35_irq               // apic.cc
  mov %rbx, %rsp
  pop %r15
  pop %r14
  pop %r13
  pop %r12
  pop %r11
  pop %r10
  pop %r9
  pop %r8
  pop %rbp
  pop %rdi
  pop %rsi
  pop %rdx
  pop %rcx
  pop %rbx
  pop %rax
  add $16, %rsp                     // the vector and the 0 error code
  iretq

double_fault:
  PUSH_GPRS
  cld
  mov $1, %eax
  lock xadd %eax, deviso_q35_exception_depth(%rip)
  cmp $2, %eax
  jae exit_now
  mov %rsp, %rdi                    // on IST1 (exceptions.cc)
  and $-16, %rsp
  mov $2, %esi                      // MinimalReason::kDoubleFault
  call deviso_q35_minimal_report
  // fall through

// isa-debug-exit with the crash status, then, if that device is absent, a triple fault: an
// empty IDT and an exception (QEMU with -no-reboot then exits with status 0, which
// scripts/demo reports as "no exit status": README "Exit status").
  .globl deviso_q35_exit_now
deviso_q35_exit_now:
exit_now:
  cli
  mov $(CRASH_STATUS + 1), %eax
  mov $DEBUG_EXIT_PORT, %dx
  out %eax, %dx
  .globl deviso_q35_triple_fault
deviso_q35_triple_fault:
  lidt empty_idtr(%rip)
  int3
1:
  hlt
  jmp 1b

  .section .rodata
  .balign 8
empty_idtr:
  .word 0
  .quad 0

  .bss
  .balign 4
  .globl deviso_q35_exception_depth
deviso_q35_exception_depth:
  .long 0
  .balign 16
minimal_stack:
  .skip 8192
minimal_stack_top:

  .section .note.GNU-stack, "", @progbits
