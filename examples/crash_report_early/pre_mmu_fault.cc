// deviso_qemu_virt_pre_mmu_hook (boot/start.S calls it with the MMU off, before the boot map):
// a load from a physical address beyond every PA size the architecture has (bit 52 set). With
// the MMU off that is an address size fault at level 0 (Arm ARM D8.2: the flat mapping, and an
// output address beyond the implemented PA size), on QEMU 7.2 and 10 alike:
// ESR_EL1 0x96000000 (EC 0x25, IL, DFSC 0b000000), FAR_EL1 0x0010000000000000.
// File-scope assembly: no compiler-generated code runs before the MMU is on.

asm(R"(
  .text
  .global deviso_qemu_virt_pre_mmu_hook
  .type   deviso_qemu_virt_pre_mmu_hook, %function
deviso_qemu_virt_pre_mmu_hook:
  movz    x0, #0x10, lsl #48
  ldr     x1, [x0]
  ret
)");
