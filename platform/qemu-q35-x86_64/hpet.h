// The HPET as the platform's clock: deviso::port::MonotonicNs() reads its main counter once
// boot.cc has found it in the ACPI HPET table (the port counts calls until then).
//
// Layouts: IA-PC HPET (High Precision Event Timers) Specification 1.0a, 3.2.4 (the ACPI table:
// header, Event Timer Block ID at 36, the Base Address as a Generic Address Structure at 40, its
// 64-bit address at 44), 2.3.4 (General Capabilities and ID at 0x000: COUNT_SIZE_CAP bit 13,
// COUNTER_CLK_PERIOD bits 63:32 in femtoseconds, at most 100 ns), 2.3.5 (General Configuration
// at 0x010: ENABLE_CNF bit 0), 2.3.7 (Main Counter Value at 0x0F0).

#ifndef DEVISO_PLATFORM_QEMU_Q35_X86_64_HPET_H_
#define DEVISO_PLATFORM_QEMU_Q35_X86_64_HPET_H_

#include <cstdint>

#include "acpi/tables.h"
#include "deviso/status.h"

namespace deviso::q35 {

struct HpetInfo {
  uint64_t base = 0;       // MMIO base of the timer block
  uint32_t period_fs = 0;  // of one counter tick
};

// Reads the HPET table (checked by src/acpi). Errors: -EINVAL the table is shorter than 56
// bytes or its Base Address is not in system memory space (GAS address space 0) or is 0.
Result<HpetInfo> ParseHpetTable(const acpi::Table& table);

// Checks the timer block at `info.base` (mapped uncached: start.S maps everything above RAM so)
// and starts its main counter; from then on HpetNowNs() counts. Errors: -ENOTSUP a 32-bit
// counter (it would wrap in ~40 s) or a period of 0 or above 100 ns (the specification's bound:
// not an HPET). Nothing is changed on error.
Status HpetStart(HpetInfo* info);

// Nanoseconds from the counter HpetStart() started; 0 before.
uint64_t HpetNowNs();

}  // namespace deviso::q35

#endif  // DEVISO_PLATFORM_QEMU_Q35_X86_64_HPET_H_
