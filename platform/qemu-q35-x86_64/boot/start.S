// Entry of a deviso image on QEMU q35: the Multiboot (v1) header, the 32-bit entry QEMU's
// `-kernel` loader jumps to, the CPU's page tables, and the switch into 64-bit long mode.
//
// Multiboot Specification 0.6.96, 3.2 "Machine state": EAX = 0x2BADB002, EBX = the physical
// address of the Multiboot information structure, 32-bit protected mode with flat 4 GiB CS/DS,
// paging off, interrupts off (IF = 0), the stack undefined. Everything here runs with paging off
// (physical addresses), on the boot stack in .bss once .bss is zero.
//
// Early failures (before long mode) print a line on COM1 and leave through isa-debug-exit with
// the program status listed in the README ("Exit status"): 9 not booted by Multiboot, 10 no
// long mode (or PAE) in the CPU, 11 no memory size from the boot loader or below 4 MiB of RAM.

#define MULTIBOOT_MAGIC 0x1BADB002
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002
// Multiboot 3.1.2: bit 0 page-align modules, bit 1 memory information (mem_*, mmap_*).
// Bit 16 (load addresses in the header) stays clear: QEMU then loads the ELF's segments.
#define MULTIBOOT_FLAGS 0x00000003

#define COM1 0x3f8
#define DEBUG_EXIT_PORT 0xf4

// Intel SDM Vol. 3A 4.5 (4-level paging), Table 4-15 ... 4-19: entry bits.
#define PTE_P 0x1
#define PTE_RW 0x2
#define PTE_PWT 0x8
#define PTE_PCD 0x10
#define PTE_PS 0x80
// With the power-on PAT (SDM 11.12.4: entries 0 WB, 3 UC), PCD|PWT selects UC.
#define PTE_UC (PTE_PCD | PTE_PWT)
// Bit 63 (XD) as the high dword of an entry; only when EFER.NXE is set.
#define PTE_XD_HIGH 0x80000000

// SDM Vol. 3A 2.5 (CR0, CR4) and 2.2.1 (EFER).
#define CR0_PE 0x00000001
#define CR0_WP 0x00010000
#define CR0_NW 0x20000000
#define CR0_CD 0x40000000
#define CR0_PG 0x80000000
#define CR4_PAE 0x00000020
#define MSR_EFER 0xc0000080
#define EFER_LME 0x00000100
#define EFER_NXE 0x00000800

  .section .multiboot, "a"
  .balign 4
  .long MULTIBOOT_MAGIC
  .long MULTIBOOT_FLAGS
  .long -(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)

  .section .boot.text, "ax"
  .code32
  .globl deviso_q35_entry32
deviso_q35_entry32:
  cli
  cld
  mov %eax, %ebp                    // Multiboot magic, until .bss is zero
  // .bss first: the boot stack and the page tables live there.
  mov $__bss_start, %edi
  mov $__bss_end, %ecx
  sub %edi, %ecx
  shr $2, %ecx                      // image.ld aligns both ends to 4 KiB
  xor %eax, %eax
  rep stosl
  mov $__stack_top, %esp
  mov %ebp, deviso_q35_boot_magic
  mov %ebx, deviso_q35_boot_info

  cmp $MULTIBOOT_BOOTLOADER_MAGIC, %ebp
  je 1f
  mov $msg_not_multiboot, %esi
  mov $9, %eax
  jmp early_fail
1:
  // Long mode and PAE (SDM Vol. 2A CPUID: 0x8000_0001 EDX bit 29 LM, bit 20 NX; leaf 1 EDX
  // bit 6 PAE). NX is used where present (MMIO execute-never).
  mov $0x80000000, %eax
  cpuid
  cmp $0x80000001, %eax
  jb no_long_mode
  mov $0x80000001, %eax
  cpuid
  bt $29, %edx
  jnc no_long_mode
  bt $20, %edx
  jnc 2f
  movl $PTE_XD_HIGH, xd_high
  movl $1, deviso_q35_boot_nx
2:
  mov $1, %eax
  cpuid
  bt $6, %edx
  jnc no_long_mode

  // The EBDA's segment from the BIOS data area (0x40E) while page 0 is still reachable: the
  // final map leaves page 0 unmapped so that a null pointer faults (ACPI 5.2.5.1 looks for the
  // RSDP in the EBDA's first KiB).
  movzwl 0x40e, %eax
  mov %eax, deviso_q35_boot_ebda_segment

  // RAM size: Multiboot 3.3, flags bit 0: mem_upper (offset 8) = KiB of memory from 1 MiB up to
  // the first hole. RAM = [0, 1 MiB + mem_upper KiB), in 2 MiB pages rounded up: the firmware
  // keeps its own data (the ACPI tables) in reserved RAM just above, within the same 2 MiB on
  // q35, and the next MMIO (ECAM, PCI windows) starts 2 MiB-aligned far above.
  mov deviso_q35_boot_info, %ebx    // CPUID overwrote EBX
  testl $1, (%ebx)
  jz no_memory_size
  mov 8(%ebx), %eax
  add $(1024 + 2047), %eax          // KiB from 0, rounded up; mem_upper < 4 GiB / 1 KiB
  jc no_memory_size
  shr $11, %eax                     // / 2048 KiB
  cmp $2, %eax
  jb no_memory_size
  cmp $2048, %eax
  jbe 3f
  mov $2048, %eax                   // the map covers 4 GiB
3:
  mov %eax, deviso_q35_boot_ram_2m_pages
  mov %eax, %ebp                    // RAM pages below this index are write-back

  // The first 2 MiB in 4 KiB pages (boot_pt): page 0 and the stack's guard page not present,
  // the legacy VGA window 0xA0000-0xBFFFF uncached, the rest write-back.
  mov $boot_pt, %edi
  xor %ecx, %ecx                    // page index
4:
  mov %ecx, %eax
  shl $12, %eax
  xor %edx, %edx                    // high dword
  test %ecx, %ecx
  jz 6f                             // page 0: not present
  cmp $__stack_guard, %eax
  je 6f
  or $(PTE_P | PTE_RW), %eax
  cmp $0xa0, %ecx
  jb 5f
  cmp $0xc0, %ecx
  jae 5f
  or $PTE_UC, %eax
  mov xd_high, %edx
5:
  mov %eax, (%edi, %ecx, 8)
  mov %edx, 4(%edi, %ecx, 8)
6:
  inc %ecx
  cmp $512, %ecx
  jb 4b

  // 4 GiB in 2 MiB pages (boot_pd: four directories, one after the other); the first entry is
  // boot_pt. Below the end of RAM write-back, above uncached and execute-never (PCI windows,
  // ECAM, IOAPIC, the VT-d unit, the local APIC, the BIOS flash).
  mov $boot_pd, %edi
  mov $boot_pt, %eax
  or $(PTE_P | PTE_RW), %eax
  mov %eax, (%edi)
  movl $0, 4(%edi)
  mov $1, %ecx
7:
  mov %ecx, %eax
  shl $21, %eax
  or $(PTE_P | PTE_RW | PTE_PS), %eax
  xor %edx, %edx
  cmp %ebp, %ecx
  jb 8f
  or $PTE_UC, %eax
  mov xd_high, %edx
8:
  mov %eax, (%edi, %ecx, 8)
  mov %edx, 4(%edi, %ecx, 8)
  inc %ecx
  cmp $2048, %ecx
  jb 7b

  // One PDPT (four entries, 4 GiB) under one PML4 entry. Nothing above 4 GiB is mapped.
  mov $boot_pdpt, %edi
  xor %ecx, %ecx
9:
  mov %ecx, %eax
  shl $12, %eax
  add $boot_pd, %eax
  or $(PTE_P | PTE_RW), %eax
  mov %eax, (%edi, %ecx, 8)
  inc %ecx
  cmp $4, %ecx
  jb 9b
  mov $boot_pdpt, %eax
  or $(PTE_P | PTE_RW), %eax
  mov %eax, boot_pml4

  // SDM Vol. 3A 10.8.5 (initializing IA-32e mode): PAE, CR3, EFER.LME, then CR0.PG; the far
  // jump to a 64-bit code segment leaves compatibility mode.
  mov %cr4, %eax
  or $CR4_PAE, %eax
  mov %eax, %cr4
  mov $boot_pml4, %eax
  mov %eax, %cr3
  mov $MSR_EFER, %ecx
  rdmsr
  or $EFER_LME, %eax
  cmpl $0, deviso_q35_boot_nx
  je 10f
  or $EFER_NXE, %eax
10:
  wrmsr
  mov %cr0, %eax
  and $~(CR0_CD | CR0_NW), %eax
  or $(CR0_PG | CR0_WP | CR0_PE), %eax
  mov %eax, %cr0
  lgdt boot_gdtr
  ljmp $0x08, $entry64

no_long_mode:
  mov $msg_no_long_mode, %esi
  mov $10, %eax
  jmp early_fail
no_memory_size:
  mov $msg_no_memory_size, %esi
  mov $11, %eax
  // fall through

// ESI: a NUL-terminated message; EAX: the program status. Prints, exits, halts. Each wait for
// the UART's transmitter is bounded (16550: LSR bit 5 THRE); a byte is sent regardless after it.
early_fail:
  mov %eax, %ebx
11:
  lodsb
  test %al, %al
  jz 13f
  mov %al, %ah
  mov $100000, %ecx
12:
  mov $(COM1 + 5), %dx
  in %dx, %al
  test $0x20, %al
  jnz 14f
  loop 12b
14:
  mov $COM1, %dx
  mov %ah, %al
  out %al, %dx
  jmp 11b
13:
  lea 1(%ebx), %eax                 // isa-debug-exit value = status + 1 (README "Exit status")
  mov $DEBUG_EXIT_PORT, %dx
  out %eax, %dx
15:
  hlt
  jmp 15b

  .section .rodata.boot, "a"
msg_not_multiboot:
  .asciz "deviso: not booted by a Multiboot loader (EAX != 0x2BADB002); exit status 9\r\n"
msg_no_long_mode:
  .asciz "deviso: the CPU has no long mode or no PAE; exit status 10\r\n"
msg_no_memory_size:
  .asciz "deviso: no usable memory size from the boot loader (or < 4 MiB); exit status 11\r\n"

// The GDT: null, 0x08 64-bit code (L = 1), 0x10 data, 0x18 the TSS (16 bytes, filled by
// exceptions.cc). SDM Vol. 3A 3.4.5 (segment descriptors), 7.2.3 (TSS descriptor in 64-bit mode).
  .section .data.boot, "aw"
  .balign 16
  .globl deviso_q35_gdt
deviso_q35_gdt:
  .quad 0
  .quad 0x00af9a000000ffff
  .quad 0x00cf92000000ffff
  .quad 0, 0
deviso_q35_gdt_end:
  .balign 8
  .word 0                           // aligns the base
boot_gdtr:
  .word deviso_q35_gdt_end - deviso_q35_gdt - 1
  .long deviso_q35_gdt
xd_high:
  .long 0

// What the C++ boot reads (boot.cc): the Multiboot magic and information pointer, the EBDA
// segment, whether NX is on, how many 2 MiB pages of RAM the map holds as write-back.
  .balign 4
  .globl deviso_q35_boot_magic, deviso_q35_boot_info, deviso_q35_boot_ebda_segment
  .globl deviso_q35_boot_nx, deviso_q35_boot_ram_2m_pages
deviso_q35_boot_magic:
  .long 0
deviso_q35_boot_info:
  .long 0
deviso_q35_boot_ebda_segment:
  .long 0
deviso_q35_boot_nx:
  .long 0
deviso_q35_boot_ram_2m_pages:
  .long 0

  .section .bss.boot_tables, "aw", @nobits
  .balign 4096
  .globl deviso_q35_boot_pml4
deviso_q35_boot_pml4:
boot_pml4:
  .skip 4096
boot_pdpt:
  .skip 4096
boot_pd:
  .skip 4 * 4096
boot_pt:
  .skip 4096

  .text
  .code64
entry64:
  mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  xor %eax, %eax
  mov %ax, %fs
  mov %ax, %gs
  mov $__stack_top, %rsp
  xor %ebp, %ebp
  call deviso_q35_boot              // boot.cc; does not return
16:
  cli
  hlt
  jmp 16b

  .section .note.GNU-stack, "", @progbits
