// crash_report: loads from an address the MMU does not map. The EL1 synchronous exception
// vector must print a crash report (EC 0x25 data abort, translation fault, FAR = that address)
// and end the program with exit status 2.

#include <cstdint>

#include "platform.h"
#include "ports/port.h"

int deviso::qemu_virt::AppMain(const PlatformInfo& /*info*/) {
  constexpr uintptr_t kUnmapped = 0xdead0000;  // between the PCIe windows' end and RAM: unmapped
  port::Log("crash_report: loading from 0x%lx\n", static_cast<unsigned long>(kUnmapped));
  const uint32_t value = *reinterpret_cast<volatile uint32_t*>(kUnmapped);
  port::Log("crash_report: no fault (read 0x%x)\n", value);
  return 0;
}
