// The CPU's MMU on QEMU `virt`: an identity map built with deviso's own translation-table engine
// (src/pgtable, Config::CpuKernel), then MAIR/TCR/TTBR0 switched to it from the boot map (Arm ARM
// D8, D19.2).

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_MMU_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_MMU_H_

#include "deviso/status.h"
#include "platform_info.h"

namespace deviso::qemu_virt {

// Builds the identity map and switches the MMU from boot/start.S's boot map to it (MMU and
// caches stay on). Must run once, on the boot map.
//   RAM (every /memory region):                 Normal write-back, inner shareable, RWX.
//   UART, GIC, SMMU, PCIe ECAM, PCIe windows:    Device-nGnRE, RW, execute-never.
// Nothing else is mapped: a stray access faults and gets a crash report.
// Errors, still on the boot map: -ENOMEM (the static table pool is too small), -ERANGE (an
// address beyond the CPU's physical address size), -EINVAL (overlapping regions).
Status MmuInit(const PlatformInfo& info);

// Maps one more region identity, as Device-nGnRE (e.g. a BAR outside the known windows).
// Errors as PageTable::Map: -EEXIST (already mapped), -ENOMEM, -EINVAL.
Status MmuMapDevice(uint64_t base, uint64_t size);

// Number of translation-table granules used and in the pool.
size_t MmuTablesUsed();
size_t MmuTablesCapacity();
// The physical range of the CPU map's table pool (empty before MmuInit): memory no device
// may be given (a device writing it would rewrite the CPU's own map). The IOMMU
// platforms list it as the unit's own memory (Smmuv3/VirtioIommu Config::own_memory).
uint64_t MmuTablesBase();
uint64_t MmuTablesBytes();

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_MMU_H_
