// EL1 exception vectors (Arm ARM D1.10.2: 16 entries of 128 bytes, 2 KiB aligned).
//
// Every entry saves the interrupted context (x0-x30, SP, ELR_EL1, SPSR_EL1, ESR_EL1, FAR_EL1,
// q0-q31, FPCR, FPSR) into a frame on the current stack and calls
//   deviso_qemu_virt_exception(kind, frame)   (exceptions.cc)
// which either handles an IRQ and returns, or reports a crash and does not return. The layout
// must match struct ExceptionFrame in exceptions.h.

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

.macro VENTRY kind
  .balign 0x80
  sub     sp, sp, #FRAME_SIZE
  stp     x0, x1, [sp, #(FRAME_GPRS + 0 * 8)]
  mov     x0, #\kind
  b       exception_common
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
  ldp     x0, x1, [sp, #(FRAME_GPRS + 0 * 8)]
  add     sp, sp, #FRAME_SIZE
  eret
