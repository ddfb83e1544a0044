// Entry of a deviso bare-metal image on QEMU `virt` (AArch64).
//
// The image starts with the Linux arm64 Image header (Documentation/arch/arm64/booting.rst), so
// QEMU's -kernel loads it at RAM base + text_offset and enters it with x0 = the DTB's physical
// address, MMU and caches off, at EL1 (or EL2 with -M virt,virtualization=on).
//
// Steps: leave EL2 for EL1 if needed; mask interrupts; install the exception vectors; enable
// FP/SIMD (the compiler may use it); set the stack; check that the DTB does not overlap the
// image; build the boot map and turn the MMU and caches on; zero .bss; call
// deviso_qemu_virt_boot(dtb) (boot.cc), which never returns.
//
// With the MMU off every data access is to Device memory, where an unaligned access, an
// exclusive or a DC ZVA faults on hardware (and on QEMU 10; QEMU 7.2 forgave it). So nothing
// but this file runs before the MMU is on, and this file makes only aligned loads and stores of
// 4 or 8 bytes (or 16-byte-aligned pairs) and no exclusive or DC ZVA: no C or C++, no libc.
//
// The boot map (static tables in .boot_tables, Arm ARM D8: 4 KiB granule, 39-bit VA from
// level 1, identity) maps:
//   - the first GiB (virt's flash, GIC, UART, SMMU, PCIe PIO and 32-bit MMIO windows, low ECAM)
//     and the GiB at 256 GiB (virt's high ECAM) as Device-nGnRE, never executable;
//   - RAM as Normal write-back, inner shareable, in 2 MiB blocks: only those holding the image
//     (.bss and stack included) and the DTB, which booting.rst places in RAM (a DTB of at most
//     2 MiB, in 2 MiB regions mapped cacheable) - so nothing that might not be RAM is Normal.
// boot.cc then parses the DTB with the MMU on, and mmu.cc builds the final map from it with
// deviso's page-table engine and switches to it (deviso_mmu_switch, below).

#define SCTLR_EL1_RES1 ((1 << 29) | (1 << 28) | (1 << 23) | (1 << 22) | (1 << 20) | (1 << 11))
#define SCTLR_EL1_SA ((1 << 3) | (1 << 4))  // SP alignment checks at EL1 and EL0
#define SCTLR_EL1_M_C_I ((1 << 0) | (1 << 2) | (1 << 12))  // MMU, data and instruction caches
#define HCR_EL2_RW (1 << 31)                 // EL1 is AArch64 (Arm ARM D19.2 HCR_EL2)
#define CNTHCTL_EL2_EL1PCEN_EL1PCTEN 3       // EL1 may use the physical timer and counter
#define SPSR_EL1H_DAIF_MASKED 0x3c5          // M = EL1h, D, A, I, F masked
#define CPACR_EL1_FPEN (3 << 20)             // no trapping of FP/SIMD at EL1 and EL0

// Arm ARM D8.3 VMSAv8-64 descriptors (stage 1, 4 KiB granule).
#define DESC_BLOCK 0x1                       // [1:0] = 01 at level 1 or 2
#define DESC_TABLE 0x3                       // [1:0] = 11
#define DESC_ATTR_NORMAL_WB (1 << 2)         // AttrIndx [4:2] = 1 (MAIR below)
#define DESC_ATTR_DEVICE_NGNRE (3 << 2)      // AttrIndx = 3
#define DESC_SH_INNER (3 << 8)               // SH [9:8] = 11
#define DESC_AF (1 << 10)                    // access flag: no access flag faults
#define DESC_PXN_UXN 0x0060000000000000      // PXN [53], UXN [54]: never executable
#define DESC_OA_4K_MASK 0x0000fffffffff000   // output / next-table address [47:12]
#define BOOT_RAM_BLOCK (DESC_BLOCK | DESC_ATTR_NORMAL_WB | DESC_SH_INNER | DESC_AF)
#define BOOT_DEVICE_BLOCK (DESC_BLOCK | DESC_ATTR_DEVICE_NGNRE | DESC_AF | DESC_PXN_UXN)
#define BLOCK_2M 0x200000
#define HIGH_ECAM_GIB 256                    // L1 index of virt's high ECAM (0x40_1000_0000)
#define BOOT_L2_TABLES 2                     // the image's GiB and the DTB's GiB
// MAIR_EL1 (Arm ARM D19.2): attr0 Device-nGnRnE, attr1 Normal WB RW-allocate, attr2 Normal
// non-cacheable, attr3 Device-nGnRE. Equal to pgtable::Config::kDefaultMair (mmu.cc checks), so
// the final map uses the same attribute indices.
#define BOOT_MAIR 0x0444ff00
// TCR_EL1 (Arm ARM D19.2): T0SZ = 25 (39-bit VA, walks start at level 1), IRGN0/ORGN0 write-back
// RW-allocate, SH0 inner shareable, TG0 4 KiB, EPD1 (no TTBR1 walks); IPS [34:32] is set from
// ID_AA64MMFR0_EL1.PARange at run time.
#define BOOT_TCR (25 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23))

// Exit statuses of the assembly boot (boot.cc lists the others).
#define EXIT_IMAGE_OVERLAPS_DTB 3
#define EXIT_BOOT_MAP 8                      // the image or the DTB does not fit the boot map

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
  mrs     x20, CurrentEL
  lsr     x20, x20, #2                 // x20 = entry EL, stored once the MMU is on
  cmp     x20, #1
  b.eq    at_el1
  cmp     x20, #2
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
  mov     sp, x1                       // (not used before the MMU is on, by this file or the vectors)

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
  mov     x0, #EXIT_IMAGE_OVERLAPS_DTB
  b       deviso_semihost_exit_early
2:
  // A test image may fault here on purpose (examples/crash_report_early): it must follow this
  // file's rules. Weak: 0 when no image defines it.
  ldr     x1, =deviso_qemu_virt_pre_mmu_hook
  cbz     x1, 3f
  blr     x1
3:
  bl      boot_map_build
  bl      boot_mmu_enable

  // The MMU and caches are on: RAM is Normal memory from here, and C++ may run.
  ldr     x1, =deviso_boot_el
  str     x20, [x1]
  ldr     x1, =__bss_start
  ldr     x2, =__bss_end
4:
  cmp     x1, x2
  b.hs    5f
  stp     xzr, xzr, [x1], #16           // .bss is 16-byte aligned and sized (image.ld)
  b       4b
5:
  mov     x0, x19
  bl      deviso_qemu_virt_boot
halt:
  wfi
  b       halt

// Fills the boot tables (see the top of this file). In: x19 = DTB or 0. Out: x19 = the DTB,
// or 0 if it is not one (no 8-byte alignment, no FDT magic), which boot.cc reports. Uses x0-x12,
// x21; exits with EXIT_BOOT_MAP if a RAM range does not fit.
boot_map_build:
  mov     x21, x30
  ldr     x1, =__boot_tables_start      // written with the MMU off: zero them first
  ldr     x2, =__boot_tables_end
1:
  stp     xzr, xzr, [x1], #16
  cmp     x1, x2
  b.lo    1b
  ldr     x10, =boot_l1
  ldr     x11, =boot_l2                 // the next free level-2 table
  ldr     x12, =boot_l2_end
  ldr     x1, =BOOT_DEVICE_BLOCK
  str     x1, [x10]                     // L1[0]: PA 0 - 1 GiB
  orr     x1, x1, #(HIGH_ECAM_GIB << 30)
  str     x1, [x10, #(HIGH_ECAM_GIB * 8)]
  ldr     x0, =__image_start
  ldr     x1, =__image_end
  bl      boot_map_ram
  // The DTB: 8-byte aligned, magic 0xd00dfeed (big-endian), totalsize at offset 4 (DTSpec 5.2),
  // at most 2 MiB (booting.rst). Aligned 4-byte loads only.
  cbz     x19, 3f
  tst     x19, #7
  b.ne    2f
  ldr     w1, [x19]
  ldr     w2, =0xedfe0dd0               // 0xd00dfeed read little-endian
  cmp     w1, w2
  b.ne    2f
  ldr     w1, [x19, #4]
  rev     w1, w1
  mov     x2, #BLOCK_2M
  cmp     x1, x2
  csel    x1, x1, x2, ls
  mov     x0, x19
  add     x1, x19, x1
  bl      boot_map_ram
  b       3f
2:
  mov     x19, #0
3:
  ret     x21

// Maps [x0, x1) rounded out to 2 MiB as Normal write-back RAM, taking a level-2 table from the
// boot_l2 pool for each GiB that has none. Uses x0-x7, x11; x10 = the level-1 table.
boot_map_ram:
  and     x0, x0, #~(BLOCK_2M - 1)
  mov     x2, #(BLOCK_2M - 1)
  add     x1, x1, x2
  and     x1, x1, #~(BLOCK_2M - 1)
1:
  cmp     x0, x1
  b.hs    3f
  lsr     x3, x0, #30                   // level-1 index: VA[38:30]
  cmp     x3, #512
  b.hs    4f                            // beyond the 39-bit boot VA space
  ldr     x4, [x10, x3, lsl #3]
  cbnz    x4, 2f
  cmp     x11, x12
  b.hs    4f                            // no level-2 table left
  orr     x4, x11, #DESC_TABLE
  str     x4, [x10, x3, lsl #3]
  add     x11, x11, #4096
2:
  and     x5, x4, #3
  cmp     x5, #DESC_TABLE
  b.ne    4f                            // RAM inside a GiB mapped as Device: not virt's layout
  and     x5, x4, #DESC_OA_4K_MASK
  ubfx    x6, x0, #21, #9               // level-2 index: VA[29:21]
  ldr     x7, =BOOT_RAM_BLOCK
  orr     x7, x7, x0
  str     x7, [x5, x6, lsl #3]
  add     x0, x0, #BLOCK_2M
  b       1b
3:
  ret
4:
  mov     x0, #EXIT_BOOT_MAP
  b       deviso_semihost_exit_early

// Turns the MMU and caches on with the boot map. Uses x0-x3.
boot_mmu_enable:
  // The tables were written with the caches off, straight to memory, and the walker reads them
  // through the caches (TCR IRGN/ORGN write-back): discard any stale line from an earlier boot
  // stage (Arm ARM D7.5.2: cache contents at reset are IMPLEMENTATION DEFINED).
  ldr     x0, =__boot_tables_start
  ldr     x1, =__boot_tables_end
  mrs     x2, ctr_el0
  ubfx    x2, x2, #16, #4               // CTR_EL0.DminLine: log2(words) of the smallest line
  mov     x3, #4
  lsl     x3, x3, x2
1:
  dc      ivac, x0
  add     x0, x0, x3
  cmp     x0, x1
  b.lo    1b
  dsb     sy
  ldr     x0, =BOOT_MAIR
  msr     mair_el1, x0
  mrs     x1, id_aa64mmfr0_el1
  and     x1, x1, #0xf                  // PARange; 52 bits (6) are not used: 48 (5) at most
  mov     x2, #5
  cmp     x1, x2
  csel    x1, x1, x2, ls
  ldr     x0, =BOOT_TCR
  orr     x0, x0, x1, lsl #32           // IPS
  msr     tcr_el1, x0
  ldr     x0, =boot_l1
  msr     ttbr0_el1, x0                 // ASID 0
  isb
  tlbi    vmalle1
  ic      iallu
  dsb     nsh
  isb
  mrs     x0, sctlr_el1
  mov     x1, #SCTLR_EL1_M_C_I
  orr     x0, x0, x1
  msr     sctlr_el1, x0
  isb
  ret

// void deviso_mmu_switch(uint64_t mair, uint64_t tcr, uint64_t ttbr0)  (mmu.cc)
// Replaces the boot map by the final one. Both are identity maps of everything that runs here,
// with the same attributes; the switch is made with the MMU off for a few instructions (no data
// access in between), so that no TLB entry of the boot map, with its larger blocks, can meet
// one of the final map (Arm ARM D8.16 TLB conflict aborts), and nothing is broken before it is
// made again. The final tables were written through the caches, which the walker reads.
  .text
  .global deviso_mmu_switch
deviso_mmu_switch:
  dsb     ish                           // the table writes are complete
  mrs     x3, sctlr_el1
  bic     x4, x3, #1                    // SCTLR_EL1.M
  msr     sctlr_el1, x4
  isb
  msr     mair_el1, x0
  msr     tcr_el1, x1
  msr     ttbr0_el1, x2
  isb
  tlbi    vmalle1
  dsb     nsh
  isb
  msr     sctlr_el1, x3
  isb
  ret

// Semihosting SYS_EXIT_EXTENDED (Arm "Semihosting for AArch32 and AArch64", 6.5) with the
// status in x0, for use before .bss and the C++ runtime exist. Never returns.
  .global deviso_semihost_exit_early
deviso_semihost_exit_early:
  adr     x1, early_exit_block
  str     x0, [x1, #8]
  mov     x0, #0x20                     // SYS_EXIT_EXTENDED
  hlt     #0xf000
  b       halt

  .weak   deviso_qemu_virt_pre_mmu_hook

  .section .data
  .balign 8
  .global deviso_boot_el
deviso_boot_el:                         // the exception level the image was entered at
  .quad   0
early_exit_block:
  .quad   0x20026                       // ADP_Stopped_ApplicationExit
  .quad   0

  .section .boot_tables, "aw", %nobits
  .balign 4096
boot_l1:
  .space  4096
boot_l2:
  .space  (BOOT_L2_TABLES * 4096)
boot_l2_end:
