// EL1 exception vectors (Arm ARM D1.10.2: 16 entries of 128 bytes, 2 KiB aligned).
//
// Every entry first decides whether the full path is safe:
//   - with the MMU off (before boot/start.S turned it on), or
//   - inside the handler already (deviso_exception_depth != 0: a fault while handling an
//     exception, e.g. in the crash report's vsnprintf, or a stack that overflowed into unmapped
//     memory, which the frame's first store would hit again and again),
// it goes straight to deviso_minimal_crash_report (below): fixed strings and hex written to the
// PL011 register by register, then the semihosting exit with status 2. It touches neither the
// stack nor C++, and makes only aligned 1-, 4- and 8-byte accesses (safe on Device memory).
// Otherwise the entry saves the interrupted context (x0-x30, SP, ELR_EL1, SPSR_EL1, ESR_EL1,
// FAR_EL1, q0-q31, FPCR, FPSR) into a frame on the current stack and calls
//   deviso_qemu_virt_exception(kind, frame)   (exceptions.cc)
// which either handles an IRQ and returns, or reports a crash and does not return. The layout
// must match struct ExceptionFrame in exceptions.h.
//
// TPIDR_EL1 and TPIDRRO_EL0 are the entry's scratch registers (nothing else uses them: the
// image runs no EL0 code, and picolibc's TLS pointer is TPIDR_EL0).

#define FRAME_GPRS 0          // x0..x30: 31 * 8
#define FRAME_SP 248
#define FRAME_ELR 256
#define FRAME_SPSR 264
#define FRAME_ESR 272
#define FRAME_FAR 280
#define FRAME_FPCR 288
#define FRAME_FPSR 296
#define FRAME_Q 304           // q0..q31: 32 * 16
#define FRAME_SIZE 816

// Reasons for deviso_minimal_crash_report (exceptions.h mirrors them).
#define MINIMAL_NESTED 1      // an exception while handling one
#define MINIMAL_MMU_OFF 2     // before the MMU is on
#define MINIMAL_NO_CONSOLE 3  // before the console exists (exceptions.cc)

.macro VENTRY kind
  .balign 0x80
  msr     tpidr_el1, x0
  msr     tpidrro_el0, x1
  adrp    x0, deviso_exception_depth
  ldr     x1, [x0, :lo12:deviso_exception_depth]
  cbnz    x1, 1f
  mrs     x1, sctlr_el1
  tbz     x1, #0, 2f                      // SCTLR_EL1.M
  mov     x1, #1
  str     x1, [x0, :lo12:deviso_exception_depth]  // from here on, an exception is a nested one
  mrs     x0, tpidr_el1
  mrs     x1, tpidrro_el0
  sub     sp, sp, #FRAME_SIZE
  stp     x0, x1, [sp, #(FRAME_GPRS + 0 * 8)]
  mov     x0, #\kind
  b       exception_common
1:
  mov     x0, #\kind
  mov     x1, #MINIMAL_NESTED
  b       deviso_minimal_crash_report
2:
  mov     x0, #\kind
  mov     x1, #MINIMAL_MMU_OFF
  b       deviso_minimal_crash_report
.endm

  .section .vectors, "ax"
  .balign 2048
  .global deviso_exception_vectors
deviso_exception_vectors:
  // Current EL with SP_EL0 (never used: the image runs on SP_EL1).
  VENTRY 0
  VENTRY 1
  VENTRY 2
  VENTRY 3
  // Current EL with SP_ELx.
  VENTRY 4    // synchronous
  VENTRY 5    // IRQ
  VENTRY 6    // FIQ
  VENTRY 7    // SError
  // Lower EL, AArch64 and AArch32 (no lower EL code runs).
  VENTRY 8
  VENTRY 9
  VENTRY 10
  VENTRY 11
  VENTRY 12
  VENTRY 13
  VENTRY 14
  VENTRY 15

  .text
exception_common:
  stp     x2, x3, [sp, #(FRAME_GPRS + 2 * 8)]
  stp     x4, x5, [sp, #(FRAME_GPRS + 4 * 8)]
  stp     x6, x7, [sp, #(FRAME_GPRS + 6 * 8)]
  stp     x8, x9, [sp, #(FRAME_GPRS + 8 * 8)]
  stp     x10, x11, [sp, #(FRAME_GPRS + 10 * 8)]
  stp     x12, x13, [sp, #(FRAME_GPRS + 12 * 8)]
  stp     x14, x15, [sp, #(FRAME_GPRS + 14 * 8)]
  stp     x16, x17, [sp, #(FRAME_GPRS + 16 * 8)]
  stp     x18, x19, [sp, #(FRAME_GPRS + 18 * 8)]
  stp     x20, x21, [sp, #(FRAME_GPRS + 20 * 8)]
  stp     x22, x23, [sp, #(FRAME_GPRS + 22 * 8)]
  stp     x24, x25, [sp, #(FRAME_GPRS + 24 * 8)]
  stp     x26, x27, [sp, #(FRAME_GPRS + 26 * 8)]
  stp     x28, x29, [sp, #(FRAME_GPRS + 28 * 8)]
  add     x2, sp, #FRAME_SIZE             // the interrupted SP
  stp     x30, x2, [sp, #(FRAME_GPRS + 30 * 8)]
  mrs     x2, elr_el1
  mrs     x3, spsr_el1
  stp     x2, x3, [sp, #FRAME_ELR]
  mrs     x2, esr_el1
  mrs     x3, far_el1
  stp     x2, x3, [sp, #FRAME_ESR]
  mrs     x2, fpcr
  mrs     x3, fpsr
  stp     x2, x3, [sp, #FRAME_FPCR]
  add     x2, sp, #FRAME_Q
  stp     q0, q1, [x2, #(0 * 32)]
  stp     q2, q3, [x2, #(1 * 32)]
  stp     q4, q5, [x2, #(2 * 32)]
  stp     q6, q7, [x2, #(3 * 32)]
  stp     q8, q9, [x2, #(4 * 32)]
  stp     q10, q11, [x2, #(5 * 32)]
  stp     q12, q13, [x2, #(6 * 32)]
  stp     q14, q15, [x2, #(7 * 32)]
  stp     q16, q17, [x2, #(8 * 32)]
  stp     q18, q19, [x2, #(9 * 32)]
  stp     q20, q21, [x2, #(10 * 32)]
  stp     q22, q23, [x2, #(11 * 32)]
  stp     q24, q25, [x2, #(12 * 32)]
  stp     q26, q27, [x2, #(13 * 32)]
  stp     q28, q29, [x2, #(14 * 32)]
  stp     q30, q31, [x2, #(15 * 32)]

  mov     x1, sp
  bl      deviso_qemu_virt_exception

  add     x2, sp, #FRAME_Q
  ldp     q0, q1, [x2, #(0 * 32)]
  ldp     q2, q3, [x2, #(1 * 32)]
  ldp     q4, q5, [x2, #(2 * 32)]
  ldp     q6, q7, [x2, #(3 * 32)]
  ldp     q8, q9, [x2, #(4 * 32)]
  ldp     q10, q11, [x2, #(5 * 32)]
  ldp     q12, q13, [x2, #(6 * 32)]
  ldp     q14, q15, [x2, #(7 * 32)]
  ldp     q16, q17, [x2, #(8 * 32)]
  ldp     q18, q19, [x2, #(9 * 32)]
  ldp     q20, q21, [x2, #(10 * 32)]
  ldp     q22, q23, [x2, #(11 * 32)]
  ldp     q24, q25, [x2, #(12 * 32)]
  ldp     q26, q27, [x2, #(13 * 32)]
  ldp     q28, q29, [x2, #(14 * 32)]
  ldp     q30, q31, [x2, #(15 * 32)]
  ldp     x2, x3, [sp, #FRAME_FPCR]
  msr     fpcr, x2
  msr     fpsr, x3
  ldp     x2, x3, [sp, #FRAME_ELR]
  msr     elr_el1, x2
  msr     spsr_el1, x3
  ldp     x2, x3, [sp, #(FRAME_GPRS + 2 * 8)]
  ldp     x4, x5, [sp, #(FRAME_GPRS + 4 * 8)]
  ldp     x6, x7, [sp, #(FRAME_GPRS + 6 * 8)]
  ldp     x8, x9, [sp, #(FRAME_GPRS + 8 * 8)]
  ldp     x10, x11, [sp, #(FRAME_GPRS + 10 * 8)]
  ldp     x12, x13, [sp, #(FRAME_GPRS + 12 * 8)]
  ldp     x14, x15, [sp, #(FRAME_GPRS + 14 * 8)]
  ldp     x16, x17, [sp, #(FRAME_GPRS + 16 * 8)]
  ldp     x18, x19, [sp, #(FRAME_GPRS + 18 * 8)]
  ldp     x20, x21, [sp, #(FRAME_GPRS + 20 * 8)]
  ldp     x22, x23, [sp, #(FRAME_GPRS + 22 * 8)]
  ldp     x24, x25, [sp, #(FRAME_GPRS + 24 * 8)]
  ldp     x26, x27, [sp, #(FRAME_GPRS + 26 * 8)]
  ldp     x28, x29, [sp, #(FRAME_GPRS + 28 * 8)]
  ldr     x30, [sp, #(FRAME_GPRS + 30 * 8)]
  adrp    x0, deviso_exception_depth  // handled (an IRQ): the next exception is not nested
  str     xzr, [x0, :lo12:deviso_exception_depth]
  ldp     x0, x1, [sp, #(FRAME_GPRS + 0 * 8)]
  add     sp, sp, #FRAME_SIZE
  eret

// void deviso_minimal_crash_report(uint64_t kind, uint64_t reason)  [[noreturn]]
//
// The fixed report: which vector, why the full report was not safe, ESR_EL1, ELR_EL1, FAR_EL1
// and SPSR_EL1 in hex, then "deviso-exit: 2" and semihosting SYS_EXIT_EXTENDED with status 2.
// Each byte waits at most 10 ms for PL011 FIFO space (CNTVCT deadline), then is dropped. If this
// code itself faults, or the semihosting HLT traps (semihosting off), the next entry goes one
// stage further (deviso_minimal_stage): the exit, then PSCI SYSTEM_OFF through the conduit the
// DTB gave (deviso_psci_conduit), then WFI forever. Uses x0-x9, x19-x23 (never returns).
  .global deviso_minimal_crash_report
deviso_minimal_crash_report:
  msr     daifset, #0xf
  mov     x19, x0                         // kind
  mov     x20, x1                         // reason
  adrp    x21, deviso_minimal_stage
  ldr     x0, [x21, :lo12:deviso_minimal_stage]
  add     x1, x0, #1
  str     x1, [x21, :lo12:deviso_minimal_stage]
  cbz     x0, minimal_report
  cmp     x0, #1
  b.eq    minimal_exit                    // the report faulted: just exit
  cmp     x0, #2
  b.eq    minimal_psci                    // the semihosting HLT trapped
minimal_hang:
  wfi
  b       minimal_hang

minimal_report:
  adrp    x22, deviso_console_uart
  ldr     x22, [x22, :lo12:deviso_console_uart]
  ldr     w0, [x22, #0x30]                // PL011 UARTCR (DDI 0183G 3.3.8)
  mov     w1, #0x101                      // UARTEN | TXE
  orr     w0, w0, w1
  str     w0, [x22, #0x30]
  adr     x1, str_head
  bl      minimal_puts
  adr     x1, str_nested
  cmp     x20, #MINIMAL_NESTED
  b.eq    1f
  adr     x1, str_mmu_off
  cmp     x20, #MINIMAL_MMU_OFF
  b.eq    1f
  adr     x1, str_no_console
1:
  bl      minimal_puts
  adr     x1, str_vector
  bl      minimal_puts
  mov     x1, x19
  bl      minimal_puthex
  adr     x1, str_esr
  bl      minimal_puts
  mrs     x1, esr_el1
  bl      minimal_puthex
  adr     x1, str_elr
  bl      minimal_puts
  mrs     x1, elr_el1
  bl      minimal_puthex
  adr     x1, str_far
  bl      minimal_puts
  mrs     x1, far_el1
  bl      minimal_puthex
  adr     x1, str_spsr
  bl      minimal_puts
  mrs     x1, spsr_el1
  bl      minimal_puthex
  adr     x1, str_exit
  bl      minimal_puts
minimal_exit:
  mov     x0, #2                          // should the HLT trap: PSCI next
  str     x0, [x21, :lo12:deviso_minimal_stage]
  b       deviso_semihost_exit_early
minimal_psci:
  adrp    x0, deviso_psci_conduit
  ldr     x1, [x0, :lo12:deviso_psci_conduit]
  movz    x0, #0x8400, lsl #16            // PSCI SYSTEM_OFF, 0x8400_0008 (Arm DEN 0022 5.1.9)
  movk    x0, #0x0008
  cmp     x1, #1
  b.ne    1f
  hvc     #0
1:
  cmp     x1, #2
  b.ne    minimal_hang
  smc     #0
  b       minimal_hang

// Writes the NUL-terminated string at x1 (x22 = PL011 base). Uses x1, x23, and minimal_putc's.
minimal_puts:
  mov     x23, x30
1:
  ldrb    w0, [x1], #1
  cbz     w0, 2f
  bl      minimal_putc
  b       1b
2:
  ret     x23

// Writes x1 as "0x" and 16 hex digits. Uses x1, x4, x23, and minimal_putc's.
minimal_puthex:
  mov     x23, x30
  mov     w0, #'0'
  bl      minimal_putc
  mov     w0, #'x'
  bl      minimal_putc
  mov     x4, #60
1:
  lsr     x0, x1, x4
  and     x0, x0, #0xf
  cmp     x0, #10
  add     x2, x0, #'0'
  add     x3, x0, #('a' - 10)
  csel    x0, x2, x3, lo
  bl      minimal_putc
  subs    x4, x4, #4
  b.pl    1b
  ret     x23

// Writes the byte w0 to the PL011 at x22: waits while UARTFR.TXFF (DDI 0183G 3.3.3) is set, at
// most 10 ms by the generic timer, then writes UARTDR. Uses x5-x9.
minimal_putc:
  mrs     x5, cntvct_el0
  mrs     x6, cntfrq_el0
  mov     x7, #100
  udiv    x6, x6, x7
  add     x5, x5, x6
1:
  ldr     w8, [x22, #0x18]
  tbz     w8, #5, 2f
  mrs     x9, cntvct_el0
  cmp     x9, x5
  b.lo    1b
  ret                                     // the FIFO stayed full: drop the byte
2:
  str     w0, [x22]
  ret

str_head:
  .asciz  "\r\n*** deviso: unexpected exception, minimal report ("
str_nested:
  .asciz  "inside the exception handler)"
str_mmu_off:
  .asciz  "before the MMU is on)"
str_no_console:
  .asciz  "before the console exists)"
str_vector:
  .asciz  "\r\n    vector "
str_esr:
  .asciz  "\r\n    ESR_EL1  "
str_elr:
  .asciz  "\r\n    ELR_EL1  "
str_far:
  .asciz  "\r\n    FAR_EL1  "
str_spsr:
  .asciz  "\r\n    SPSR_EL1 "
str_exit:
  .asciz  "\r\ndeviso-exit: 2\r\n"
  .balign 4

  .section .data
  .balign 8
  .global deviso_exception_depth
deviso_exception_depth:       // 1 while an exception is being handled (in .data: valid at reset)
  .quad   0
deviso_minimal_stage:         // how far deviso_minimal_crash_report got
  .quad   0
  .global deviso_console_uart
deviso_console_uart:          // the PL011 the minimal report writes to: the DTB's once
  .quad   0x09000000          // ConsoleInit ran; before, virt's fixed UART (hw/arm/virt.c)
  .global deviso_psci_conduit
deviso_psci_conduit:          // 0 none, 1 HVC, 2 SMC: set by SetExitPsci from the DTB
  .quad   0
