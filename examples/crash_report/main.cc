// crash_report: faults on purpose after the MMU is on; the exception vectors must report it and
// end the program with exit status 2.
//
//   (default)                  loads from an address the MMU does not map: the full crash
//                              report (EC 0x25 data abort, translation fault, FAR = that
//                              address), from exceptions.cc.
//   -append crash=handler      the same load with the stack pointer moved to unmapped memory:
//                              the vector's first store of the frame faults too, a fault inside
//                              the handler, which must go straight to the minimal report
//                              (boot/vectors.S: "inside the exception handler", FAR = the
//                              frame's address) instead of faulting again forever.

#include <libfdt.h>

#include <cstdint>
#include <cstring>

#include "deviso/port/os.h"
#include "platform.h"

namespace {

constexpr uintptr_t kUnmapped = 0xdead0000;  // between the PCIe windows' end and RAM: unmapped

bool BootargsSay(const void* dtb, const char* word) {
  const int chosen = dtb != nullptr ? fdt_path_offset(dtb, "/chosen") : -1;
  int len = 0;
  const char* args =
      chosen >= 0 ? static_cast<const char*>(fdt_getprop(dtb, chosen, "bootargs", &len)) : nullptr;
  return args != nullptr && len > 0 && std::strstr(args, word) != nullptr;
}

}  // namespace

int deviso::qemu_virt::AppMain(const PlatformInfo& info) {
  if (BootargsSay(info.dtb, "crash=handler")) {
    port::Log("crash_report: loading from 0x%lx with SP = 0x%lx\n",
              static_cast<unsigned long>(kUnmapped), static_cast<unsigned long>(kUnmapped));
    // No C++ after the SP moves: the load faults, and the vector's frame store at
    // SP - 816 faults again.
    asm volatile(
        "mov sp, %0\n"
        "ldr w1, [%0]\n" ::"r"(kUnmapped)
        : "x1", "memory");
    port::Log("crash_report: no fault\n");
    return 1;
  }
  port::Log("crash_report: loading from 0x%lx\n", static_cast<unsigned long>(kUnmapped));
  const uint32_t value = *reinterpret_cast<volatile uint32_t*>(kUnmapped);
  port::Log("crash_report: no fault (read 0x%x)\n", value);
  return 0;
}
