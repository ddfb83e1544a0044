// x86-64 instructions the q35 platform needs, as inline functions: port I/O, control registers,
// MSRs, CPUID, halting (Intel SDM Vol. 2 for each instruction).

#ifndef DEVISO_PLATFORM_QEMU_Q35_X86_64_ARCH_H_
#define DEVISO_PLATFORM_QEMU_Q35_X86_64_ARCH_H_

#include <cstdint>

namespace deviso::q35 {

inline void Outb(uint16_t port, uint8_t value) {
  asm volatile("outb %0, %1" ::"a"(value), "Nd"(port) : "memory");
}
inline void Outl(uint16_t port, uint32_t value) {
  asm volatile("outl %0, %1" ::"a"(value), "Nd"(port) : "memory");
}
inline uint8_t Inb(uint16_t port) {
  uint8_t value;
  asm volatile("inb %1, %0" : "=a"(value) : "Nd"(port) : "memory");
  return value;
}
inline uint16_t Inw(uint16_t port) {
  uint16_t value;
  asm volatile("inw %1, %0" : "=a"(value) : "Nd"(port) : "memory");
  return value;
}
inline uint32_t Inl(uint16_t port) {
  uint32_t value;
  asm volatile("inl %1, %0" : "=a"(value) : "Nd"(port) : "memory");
  return value;
}

inline uint64_t ReadCr0() {
  uint64_t v;
  asm volatile("mov %%cr0, %0" : "=r"(v));
  return v;
}
inline uint64_t ReadCr2() {
  uint64_t v;
  asm volatile("mov %%cr2, %0" : "=r"(v));
  return v;
}
inline uint64_t ReadCr3() {
  uint64_t v;
  asm volatile("mov %%cr3, %0" : "=r"(v));
  return v;
}
inline uint64_t ReadCr4() {
  uint64_t v;
  asm volatile("mov %%cr4, %0" : "=r"(v));
  return v;
}

inline uint64_t ReadMsr(uint32_t msr) {
  uint32_t lo;
  uint32_t hi;
  asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

struct CpuidRegs {
  uint32_t eax = 0;
  uint32_t ebx = 0;
  uint32_t ecx = 0;
  uint32_t edx = 0;
};
inline CpuidRegs Cpuid(uint32_t leaf, uint32_t subleaf = 0) {
  CpuidRegs r;
  asm volatile("cpuid"
               : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
               : "a"(leaf), "c"(subleaf));
  return r;
}

// The time-stamp counter (SDM Vol. 3B 18.17): a count, not a time, until calibrated.
inline uint64_t Rdtsc() {
  uint32_t lo;
  uint32_t hi;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

inline void Pause() { asm volatile("pause"); }

[[noreturn]] inline void HaltForever() {
  for (;;) {
    asm volatile("cli; hlt");
  }
}

// SDM Vol. 3A 2.5, 2.2.1: the bits the boot report names.
inline constexpr uint64_t kCr0Pg = 1ULL << 31;
inline constexpr uint64_t kCr0Wp = 1ULL << 16;
inline constexpr uint64_t kCr4Pae = 1ULL << 5;
inline constexpr uint64_t kCr4Osfxsr = 1ULL << 9;
inline constexpr uint32_t kMsrEfer = 0xc0000080;
inline constexpr uint64_t kEferLma = 1ULL << 10;
inline constexpr uint64_t kEferNxe = 1ULL << 11;

}  // namespace deviso::q35

#endif  // DEVISO_PLATFORM_QEMU_Q35_X86_64_ARCH_H_
