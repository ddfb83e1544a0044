// Generic Interrupt Controller driver for QEMU `virt`: GICv3 (IHI0069, the GIC architecture
// specification v3/v4, chapter 12 "Programmers' model") and GICv2 (IHI0048B, chapter 4).
//
// One CPU (CPU 0) is supported: every SPI is routed to it. All interrupts are Group 1
// non-secure (v3) or Group 0 signalled as IRQ (v2, no Security Extensions), priority 0xa0.
// INTIDs are GIC interrupt IDs: SGIs 0-15, PPIs 16-31, SPIs 32-1019. A devicetree SPI n is
// INTID n + 32; IrqSpec (platform_info.h) already holds the INTID.

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_GIC_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_GIC_H_

#include <cstdint>

#include "deviso/status.h"
#include "platform_info.h"

namespace deviso::qemu_virt {

// An interrupt handler. Runs in IRQ context with IRQs masked, on the boot stack; must not block.
using IrqHandler = void (*)(void* ctx);

// Initialises the distributor, this CPU's redistributor (v3) or CPU interface (v2) and the
// dispatcher; every interrupt starts disabled. PSTATE.I stays as it is: see EnableInterrupts().
// Errors: -ENOTSUP (no GIC in the DTB, or not v2/v3), -ENOENT (no redistributor for this CPU),
// -ETIMEDOUT (a register write never completed, GICD_CTLR.RWP / GICR_WAKER.ChildrenAsleep).
Status GicInit(const GicInfo& info);

// The GIC architecture version found by GicInit(): 2 or 3 (0 before).
unsigned GicVersion();

// Registers `handler(ctx)` for `intid` (a PPI or SPI), programs its trigger (`edge`: rising
// edge; otherwise level-high), priority and group, and routes an SPI to this CPU. The
// interrupt stays disabled until EnableIrq(). Errors, with no change: -EINVAL (SGI or INTID
// beyond what the GIC implements, null handler), -EEXIST (already registered).
Status RegisterIrq(uint32_t intid, IrqHandler handler, void* ctx, bool edge);
// Disables `intid` and forgets its handler. Errors: -ENOENT (not registered).
Status UnregisterIrq(uint32_t intid);
// Errors: -ENOENT (not registered).
Status EnableIrq(uint32_t intid);
Status DisableIrq(uint32_t intid);
// Makes `intid` pending, as if its device had signalled it (GICD_ISPENDR); for self-tests of
// the interrupt path. Errors: -ENOENT (not registered).
Status SetIrqPending(uint32_t intid);
// Number of times the dispatcher ran the handler of `intid` (0 for an unknown INTID).
uint64_t IrqCount(uint32_t intid);

// This CPU's redistributor (v3): its RD_base frame, as GicInit() found it (IHI0069 12.10);
// 0 on v2 or before GicInit(). The ITS driver (its.h) programs the LPI tables there.
uintptr_t GicRedistributorBase();

// Receives every LPI (INTID 8192 and up, v3 with an ITS) the dispatcher acknowledges, in IRQ
// context; the dispatcher ends the interrupt (EOI) after it returns. nullptr: LPIs are
// acknowledged and dropped. Set by ItsInit() (its.h).
using LpiDispatcher = void (*)(uint32_t intid);
void SetLpiDispatcher(LpiDispatcher dispatcher);

// Unmasks / masks IRQs on this CPU (PSTATE.I and F).
void EnableInterrupts();
void DisableInterrupts();

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_GIC_H_
