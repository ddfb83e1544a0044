// The QEMU q35 x86-64 bare-metal platform: what an application gets after boot.
//
// boot/start.S and boot.cc bring the machine up (Multiboot entry, .bss, the CPU's page tables,
// long mode, stack, IDT and TSS, COM1, C++ static constructors, the Multiboot information, the
// ACPI tables) and then call AppMain(). Its return value becomes the exit status of
// qemu-system-x86_64 as scripts/demo reports it (exit.h).

#ifndef DEVISO_PLATFORM_QEMU_Q35_X86_64_PLATFORM_H_
#define DEVISO_PLATFORM_QEMU_Q35_X86_64_PLATFORM_H_

#include <cstddef>
#include <cstdint>

#include "acpi/mcfg.h"
#include "acpi/tables.h"
#include "acpi_scan.h"
#include "deviso/status.h"

namespace deviso::q35 {

inline constexpr size_t kMaxMemoryRegions = 16;
inline constexpr size_t kMaxVtdUnits = 4;  // register bases kept in PlatformInfo

struct MemoryRegion {
  uint64_t base = 0;
  uint64_t length = 0;
  uint32_t type = 0;  // Multiboot / E820 type: 1 RAM, 2 reserved, 3 ACPI, 4 NVS, 5 bad
};

// Image boundaries from boot/image.ld.
struct ImageLayout {
  uint64_t start = 0;        // __image_start (1 MiB)
  uint64_t end = 0;          // __image_end (.bss included)
  uint64_t stack_guard = 0;  // the unmapped page below the boot stack
  uint64_t stack_top = 0;
};

struct PlatformInfo {
  const char* cmdline = "";  // Multiboot command line (QEMU: the kernel's path, then -append)
  uint64_t ram_end = 0;      // [0, ram_end) is mapped write-back: 1 MiB + Multiboot mem_upper,
                             // rounded up to 2 MiB
  bool nx = false;           // EFER.NXE on: the uncached (MMIO) map is execute-never
  ImageLayout image;
  size_t memory_region_count = 0;  // the Multiboot memory map (E820), at most kMaxMemoryRegions
  MemoryRegion memory_regions[kMaxMemoryRegions];
  Status acpi_status;  // of LocateRsdp + ListAcpiTables; `acpi` and `acpi_root` valid if ok()
  AcpiTables acpi;     // every table the RSDT/XSDT lists
  acpi::RootTable acpi_root;  // for acpi_root.Find("DMAR") and the other parsers (src/acpi)
  bool has_ecam = false;      // the MCFG parsed and has an allocation for segment 0, bus 0
  acpi::EcamAllocation ecam;  // that allocation
  size_t vtd_unit_count = 0;  // DRHDs in a DMAR that parsed (0: no DMAR, or it was refused)
  uint64_t vtd_unit_base[kMaxVtdUnits] = {};  // the first kMaxVtdUnits DRHDs' register bases
  uint64_t hpet_base = 0;  // the HPET that deviso::port::MonotonicNs() reads; 0: none
  uint32_t hpet_period_fs = 0;
  Status apic_status;  // of ApicInit() (apic.h): interrupts can be used when ok()
};

// True if `word` is one of the command line's space-separated words.
bool CmdlineHas(const PlatformInfo& info, const char* word);

// The rest of the first word that starts with `prefix` (e.g. "exit=" in "exit=5" gives "5",
// ending at the next space or NUL), or nullptr.
const char* CmdlineValue(const PlatformInfo& info, const char* prefix);

// Physical memory the boot map makes readable (the Multiboot RAM below ram_end but page 0 and
// the stack guard, and the BIOS area 0xE0000-0xFFFFF), for the ACPI parser: a table pointer
// elsewhere (MMIO, unmapped) reads as unreachable.
const acpi::PhysicalMemory& BootMemory();

// Provided by the application: runs in long mode with the final page tables, the IDT, COM1 and
// the local APIC enabled, interrupts disabled (apic.h: EnableInterrupts()). Returns the exit status
// (0: success; 0..126, exit.h).
int AppMain(const PlatformInfo& info);

}  // namespace deviso::q35

#endif  // DEVISO_PLATFORM_QEMU_Q35_X86_64_PLATFORM_H_
