// Entry of a deviso bare-metal image on QEMU `virt` (AArch64).
//
// The image starts with the Linux arm64 Image header (Documentation/arch/arm64/booting.rst), so
// QEMU's -kernel loads it at RAM base + text_offset and enters it with x0 = the DTB's physical
// address, MMU and caches off, at EL1 (or EL2 with -M virt,virtualization=on).
//
// Steps: leave EL2 for EL1 if needed; mask interrupts; install the exception vectors; enable
// FP/SIMD (the compiler may use it); set the stack; check that the DTB does not overlap the
// image; zero .bss; call deviso_qemu_virt_boot(dtb) (boot.cc), which never returns.

#define SCTLR_EL1_RES1 ((1 << 29) | (1 << 28) | (1 << 23) | (1 << 22) | (1 << 20) | (1 << 11))
#define SCTLR_EL1_SA ((1 << 3) | (1 << 4))  // SP alignment checks at EL1 and EL0
#define HCR_EL2_RW (1 << 31)                 // EL1 is AArch64 (Arm ARM D19.2 HCR_EL2)
#define CNTHCTL_EL2_EL1PCEN_EL1PCTEN 3       // EL1 may use the physical timer and counter
#define SPSR_EL1H_DAIF_MASKED 0x3c5          // M = EL1h, D, A, I, F masked
#define CPACR_EL1_FPEN (3 << 20)             // no trapping of FP/SIMD at EL1 and EL0

  .section .text.head, "ax"
  .global _start
_start:
  b       primary_entry                // code0
  .word   0                            // code1
  .quad   0x80000                      // text_offset: loaded at RAM base + 0x80000
  .quad   __image_size                 // image_size, .bss included
  .quad   0x2                          // flags: little endian, 4 KiB pages, 2 MiB-aligned base
  .quad   0                            // res2
  .quad   0                            // res3
  .quad   0                            // res4
  .ascii  "ARM\x64"                    // magic
  .word   0                            // res5 (no PE/COFF header)

  .section .text.boot, "ax"
primary_entry:
  mov     x19, x0                      // x19 = DTB address (callee-saved across the steps)
  mrs     x1, CurrentEL
  lsr     x1, x1, #2
  ldr     x2, =deviso_boot_el          // in .data: survives the .bss clearing
  str     x1, [x2]
  cmp     x1, #1
  b.eq    at_el1
  cmp     x1, #2
  b.eq    at_el2
  b       halt                         // EL3: not supported (QEMU enters EL3 only with secure=on)

at_el2:
  // Drop to EL1 (Arm ARM D1.11 exception return): EL1 in AArch64, no stage 2, timers usable,
  // GICv3 system registers usable at EL1 if the CPU has them.
  mov     x1, #HCR_EL2_RW
  msr     hcr_el2, x1
  mov     x1, #CNTHCTL_EL2_EL1PCEN_EL1PCTEN
  msr     cnthctl_el2, x1
  msr     cntvoff_el2, xzr
  mrs     x1, id_aa64pfr0_el1
  ubfx    x1, x1, #24, #4              // ID_AA64PFR0_EL1.GIC: system register interface
  cbz     x1, 1f
  mrs     x1, s3_4_c12_c9_5            // ICC_SRE_EL2
  mov     x2, #0x9                     // SRE | Enable (lower ELs may use ICC_SRE_EL1.SRE)
  orr     x1, x1, x2
  msr     s3_4_c12_c9_5, x1
  isb
1:
  ldr     x1, =SCTLR_EL1_RES1
  msr     sctlr_el1, x1
  mov     x1, #SPSR_EL1H_DAIF_MASKED
  msr     spsr_el2, x1
  adr     x1, at_el1
  msr     elr_el2, x1
  eret

at_el1:
  msr     daifset, #0xf
  ldr     x1, =deviso_exception_vectors
  msr     vbar_el1, x1
  mov     x1, #CPACR_EL1_FPEN
  msr     cpacr_el1, x1
  // A known SCTLR_EL1: MMU, caches and alignment checks off; SP alignment checks on.
  ldr     x1, =(SCTLR_EL1_RES1 | SCTLR_EL1_SA)
  msr     sctlr_el1, x1
  isb
  ldr     x1, =__stack_top
  mov     sp, x1

  // The DTB must not lie inside [__image_start, __image_end): zeroing .bss would destroy it.
  // x19 == 0 (an ELF -kernel, or no DTB) is left to the C++ code to report.
  cbz     x19, 2f
  ldr     x1, =__image_start
  ldr     x2, =__image_end
  cmp     x19, x2
  b.hs    2f
  add     x3, x19, #0x40                // a DTB header is 40 bytes; be generous
  cmp     x3, x1
  b.ls    2f
  mov     x0, #3                        // exit status 3: image too large for this RAM size
  b       deviso_semihost_exit_early
2:
  ldr     x1, =__bss_start
  ldr     x2, =__bss_end
3:
  cmp     x1, x2
  b.hs    4f
  stp     xzr, xzr, [x1], #16           // .bss is 16-byte aligned and sized (image.ld)
  b       3b
4:
  mov     x0, x19
  bl      deviso_qemu_virt_boot
halt:
  wfi
  b       halt

// Semihosting SYS_EXIT_EXTENDED (Arm "Semihosting for AArch32 and AArch64", 6.5) with the
// status in x0, for use before .bss and the C++ runtime exist. Never returns.
  .global deviso_semihost_exit_early
deviso_semihost_exit_early:
  adr     x1, early_exit_block
  str     x0, [x1, #8]
  mov     x0, #0x20                     // SYS_EXIT_EXTENDED
  hlt     #0xf000
  b       halt

  .section .data
  .balign 8
  .global deviso_boot_el
deviso_boot_el:                         // the exception level the image was entered at
  .quad   0
early_exit_block:
  .quad   0x20026                       // ADP_Stopped_ApplicationExit
  .quad   0
