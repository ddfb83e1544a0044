// Interrupts on q35: the local APIC (xAPIC, MMIO at IA32_APIC_BASE, 0xFEE0_0000 on QEMU) and the
// dispatch of vectors 32-255 to handlers. The legacy 8259 PICs are masked first: SeaBIOS leaves
// them mapped at vectors 8-15, where a timer tick would look like a double fault.
//
// This is what a VT-d fault-event MSI (issue 14) and an MSI-X device will be delivered through:
// their address targets the local APIC (0xFEEx_xxxx) with a vector from here.
//
// Layouts: Intel SDM Vol. 3A 10.4.1 (Table 10-1, the local APIC registers: ID 0x20, EOI 0xB0,
// spurious vector 0xF0 with the APIC software enable bit 8, ICR 0x300/0x310, LVT timer 0x320,
// LINT0/1 0x350/0x360, LVT error 0x370, timer initial count 0x380, divide configuration 0x3E0),
// 10.4.4 (IA32_APIC_BASE, MSR 0x1B: base bits 35:12, global enable bit 11), 10.6.1 (ICR:
// destination shorthand 19:18, delivery status bit 12), 10.5.4 (the timer); 8259A data sheet
// (the interrupt mask registers at ports 0x21 and 0xA1).

#ifndef DEVISO_PLATFORM_QEMU_Q35_X86_64_APIC_H_
#define DEVISO_PLATFORM_QEMU_Q35_X86_64_APIC_H_

#include <cstdint>

#include "deviso/status.h"

namespace deviso::q35 {

// Vectors handlers may take: 0x20 (the first after the exceptions) to 0xFE.
inline constexpr uint8_t kFirstIrqVector = 0x20;
inline constexpr uint8_t kSpuriousVector = 0xff;

// Called in interrupt context (IF clear) with the vector and the argument it was set with.
using IrqHandler = void (*)(uint8_t vector, void* arg);

// Masks both 8259s and enables this CPU's local APIC: software enable with the spurious vector
// 0xFF, task priority 0, the LVT timer and error entries masked. Leaves interrupts disabled
// (IF = 0). Errors: -ENOTSUP no local APIC (CPUID.1:EDX bit 9) or it is in x2APIC mode. Nothing
// is changed on error.
Status ApicInit();

// Installs `handler` for `vector`. Errors: -EINVAL `vector` outside kFirstIrqVector..0xFE or a
// null handler; -EBUSY the vector has a handler. Nothing changes on error.
Status SetIrqHandler(uint8_t vector, IrqHandler handler, void* arg);

// Removes the handler of `vector` (nothing if none).
void ClearIrqHandler(uint8_t vector);

// Sends this CPU an interrupt on `vector` (fixed delivery, shorthand "self"), and waits, with a
// deadline of 1 ms, until the APIC has accepted it. Errors: -EINVAL as SetIrqHandler's vector;
// -ETIMEDOUT the ICR stayed busy; -ENOTSUP ApicInit() has not succeeded.
Status SendSelfIpi(uint8_t vector);

// Arms the local APIC timer once: `vector` after `ticks` of the APIC's bus clock (divide by 1).
// Errors as SendSelfIpi's (no wait, so never -ETIMEDOUT); `ticks` of 0 is -EINVAL.
Status ArmApicTimerOnce(uint8_t vector, uint32_t ticks);

// This CPU's local APIC ID (bits 31:24 of the ID register), 0 before ApicInit().
uint8_t ApicId();

// Interrupts that arrived on a vector without a handler (acknowledged and dropped), and
// spurious ones.
uint32_t UnexpectedIrqCount();

// STI / CLI.
inline void EnableInterrupts() { asm volatile("sti" ::: "memory"); }
inline void DisableInterrupts() { asm volatile("cli" ::: "memory"); }

}  // namespace deviso::q35

#endif  // DEVISO_PLATFORM_QEMU_Q35_X86_64_APIC_H_
