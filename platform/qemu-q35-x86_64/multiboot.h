// The Multiboot (v1) information structure a Multiboot loader (QEMU's -kernel) passes in EBX.
// Multiboot Specification 0.6.96, 3.3 "Boot information format".

#ifndef DEVISO_PLATFORM_QEMU_Q35_X86_64_MULTIBOOT_H_
#define DEVISO_PLATFORM_QEMU_Q35_X86_64_MULTIBOOT_H_

#include <cstdint>

namespace deviso::q35::multiboot {

inline constexpr uint32_t kBootloaderMagic = 0x2badb002;  // EAX at entry

// Bits of Info::flags: which fields are valid.
inline constexpr uint32_t kInfoMemory = 1u << 0;   // mem_lower, mem_upper
inline constexpr uint32_t kInfoCmdline = 1u << 2;  // cmdline
inline constexpr uint32_t kInfoMmap = 1u << 6;     // mmap_length, mmap_addr
inline constexpr uint32_t kInfoLoaderName = 1u << 9;

struct Info {
  uint32_t flags;        // 0
  uint32_t mem_lower;    // 4: KiB from 0
  uint32_t mem_upper;    // 8: KiB from 1 MiB to the first hole
  uint32_t boot_device;  // 12
  uint32_t cmdline;      // 16: physical address of a NUL-terminated string
  uint32_t mods_count;   // 20
  uint32_t mods_addr;    // 24
  uint32_t syms[4];      // 28
  uint32_t mmap_length;  // 44: bytes of the memory map
  uint32_t mmap_addr;    // 48
  uint32_t drives_length;
  uint32_t drives_addr;
  uint32_t config_table;
  uint32_t boot_loader_name;  // 64
};
static_assert(sizeof(Info) == 68);

// One memory map entry; `size` counts the bytes after itself (the next entry is at
// this + size + 4). Packed: base_addr is at offset 4.
struct __attribute__((packed)) MmapEntry {
  uint32_t size;
  uint64_t base_addr;
  uint64_t length;
  uint32_t type;  // 1 available RAM, 3 ACPI reclaimable, 4 preserve on hibernation, 5 bad
};
static_assert(sizeof(MmapEntry) == 24);

}  // namespace deviso::q35::multiboot

#endif  // DEVISO_PLATFORM_QEMU_Q35_X86_64_MULTIBOOT_H_
