// The SMMUv3 of the QEMU `virt` board, brought up for deviso: the driver (src/smmuv3/) on the
// registers the DTB names, its queues and stream table in the DMA arena, translation tables
// from a static pool, the event-queue and global-error interrupts wired through the GIC, and
// the unit registered with deviso's default registry.

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_SMMU_PLATFORM_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_SMMU_PLATFORM_H_

#include "dma_arena.h"
#include "platform_info.h"
#include "smmuv3/smmuv3.h"

namespace deviso::qemu_virt {

// Probes and initialises the SMMU described by `info` (every StreamID blocked, then SMMUEN),
// enables its interrupts and registers it with deviso::Registry::Default(). The unit lives in
// static storage. Errors: -ENOENT (no SMMU in the DTB), and those of Smmuv3::Probe/Init.
// The contexts' 4 KiB tables come from a static pool (a 64 KiB one beside it), listed with the
// CPU map's tables as Config::own_memory: deviso_map refuses any of them with -EPERM.
Result<smmuv3::Smmuv3*> SetupSmmu(const PlatformInfo& info, DmaArena& arena);

// The first granule of the 4 KiB table pool the contexts' tables come from (a test maps it
// to prove the refusal).
Paddr SmmuTablePoolBase();

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_SMMU_PLATFORM_H_
