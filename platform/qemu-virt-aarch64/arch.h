// AArch64 system-register, barrier and cache-maintenance helpers for the QEMU `virt` platform.
// Every register is named as in the Arm ARM (DDI 0487) chapter D19 "AArch64 System Register
// Descriptions"; the encodings s3_x_cx_cx_x are used for registers older assemblers do not know.

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_ARCH_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_ARCH_H_

#include <cstddef>
#include <cstdint>

// Reads / writes a system register by name: DEVISO_READ_SYSREG(mpidr_el1).
// (A GNU statement expression: the register name must be pasted into the instruction.)
#define DEVISO_READ_SYSREG(name)                                \
  __extension__({                                               \
    uint64_t deviso_sysreg_value;                               \
    asm volatile("mrs %0, " #name : "=r"(deviso_sysreg_value)); \
    deviso_sysreg_value;                                        \
  })
#define DEVISO_WRITE_SYSREG(name, value) \
  asm volatile("msr " #name ", %0" ::"r"(static_cast<uint64_t>(value)) : "memory")

namespace deviso::qemu_virt::arch {

inline void Isb() { asm volatile("isb" ::: "memory"); }
inline void DsbSy() { asm volatile("dsb sy" ::: "memory"); }
inline void DsbIsh() { asm volatile("dsb ish" ::: "memory"); }
inline void DsbIshSt() { asm volatile("dsb ishst" ::: "memory"); }

// The data cache line size in bytes: 4 << CTR_EL0.DminLine (Arm ARM D19.2 CTR_EL0).
inline size_t DcacheLineBytes() {
  const uint64_t ctr = DEVISO_READ_SYSREG(ctr_el0);
  return size_t{4} << ((ctr >> 16) & 0xf);
}

// DC IVAC over [p, p + n): discards cache lines (used before the MMU and caches are turned on, so
// that no stale line hides what was written to memory with the caches off). Arm ARM D7.5.
inline void InvalidateDcacheRange(const void* p, size_t n) {
  const size_t line = DcacheLineBytes();
  uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~(line - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + n;
  for (; a < end; a += line) {
    asm volatile("dc ivac, %0" ::"r"(a) : "memory");
  }
  DsbSy();
}

// DC CVAC over [p, p + n): cleans to the point of coherency, for a non-coherent DMA master.
inline void CleanDcacheRange(const void* p, size_t n) {
  const size_t line = DcacheLineBytes();
  uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~(line - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + n;
  for (; a < end; a += line) {
    asm volatile("dc cvac, %0" ::"r"(a) : "memory");
  }
  DsbSy();
}

// Masks IRQs and FIQs on this CPU (PSTATE.I, F); returns the previous DAIF.
inline uint64_t MaskInterrupts() {
  const uint64_t daif = DEVISO_READ_SYSREG(daif);
  asm volatile("msr daifset, #3" ::: "memory");
  return daif;
}
// Unmasks IRQs and FIQs on this CPU.
inline void UnmaskInterrupts() { asm volatile("msr daifclr, #3" ::: "memory"); }
// Restores a DAIF value returned by MaskInterrupts().
inline void RestoreInterrupts(uint64_t daif) { DEVISO_WRITE_SYSREG(daif, daif); }

}  // namespace deviso::qemu_virt::arch

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_ARCH_H_
