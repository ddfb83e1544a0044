/*
 * deviso/msi.h: a device's MSI doorbell in its isolation context.
 *
 * A message-signalled interrupt (PCI MSI or MSI-X) is a DMA write of the message data to the
 * message address: behind an IOMMU it is translated like every other write of the device. On
 * an Arm system with a GICv3 ITS the address is the ITS's GITS_TRANSLATER register (GICv3
 * architecture specification IHI0069, 12.19.22), and the ITS takes the DeviceID from the
 * write's requester ID. A context with nothing mapped there blocks the device's MSIs and the
 * IOMMU reports a translation fault at the doorbell address, exactly as for any stray write.
 *
 * deviso never maps a doorbell on its own: a driver that uses MSI maps it on purpose, once per
 * context, with deviso_map_msi_doorbell() (C) or deviso::MapMsiDoorbell() (C++), and programs
 * the returned device address into the MSI-X table (or the MSI capability). What is mapped is
 * the one context page holding the doorbell, identity, as Device-nGnRE memory: write-only where
 * the context's stage can express it (stage 2), read and write on stage 1 (whose descriptors
 * have no write-only encoding, Arm ARM D8.4). Nothing else of the interrupt controller is
 * reachable. A device given the doorbell can raise any interrupt the ITS maps for its own
 * DeviceID, and only those: the ITS, not the IOMMU, separates devices from there on.
 *
 * Units that pass MSIs through untranslated. A unit may report a reserved region of kind MSI
 * covering the doorbell (deviso::ReservedRegion::Kind::kMsi; QEMU's virtio-iommu reports the
 * GICv3 ITS frame 0x08090000-0x0809ffff through PROBE, virtio 1.2 5.13.6.8.2.1,
 * VIRTIO_IOMMU_RESV_MEM_T_MSI). There every device's MSI writes reach the doorbell whatever its
 * context holds, and nothing can be mapped to change it: the call maps nothing, returns the
 * doorbell address itself as the device address, and says so (*bypass = 1 in C,
 * MsiDoorbell::bypass in C++). On such a unit a device can write the doorbell without any
 * mapping; isolation of interrupts then rests on the ITS's DeviceID checks alone. A reserved
 * region of the other kind (accesses fault) covering the doorbell makes delivery impossible:
 * -ENOTSUP.
 */
#ifndef DEVISO_MSI_H_
#define DEVISO_MSI_H_

#include <stddef.h>
#include <stdint.h>

#include "deviso/deviso.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Maps the MSI doorbell at physical address `doorbell` (e.g. GITS_TRANSLATER) into the context
 * of (dev, sid): the context page holding it, identity, Device-nGnRE, write-only on stage 2
 * and read-write on stage 1. On success *iova is the device address of the doorbell (the MSI
 * message address to program) and *bypass is 0; on a unit that passes MSIs to it untranslated
 * (see above) nothing is mapped, *iova = doorbell and *bypass = 1.
 * Errors, with nothing mapped: -EINVAL (NULL dev, iova or bypass; doorbell 0 or not 4-byte
 * aligned; sid not owned by dev; beyond the unit's address sizes), -ENOENT (no context),
 * -EEXIST (something is already mapped in that page, e.g. the doorbell itself),
 * -ENOTSUP (a reserved region where accesses fault covers the doorbell), -ENOMEM (tables),
 * -EPERM (the page overlaps the unit's own memory), -EIO (the unit is broken). */
int deviso_map_msi_doorbell(const struct device* dev, uint32_t sid, uint64_t doorbell,
                            uint64_t* iova, int* bypass);

/* Unmaps the page deviso_map_msi_doorbell() mapped for `doorbell`, strictly (as
 * deviso_unmap()): when it returns 0 the device's MSIs are blocked again. On a unit that passes
 * MSIs to it untranslated there is nothing to unmap and it returns 0. Errors: -EINVAL (NULL
 * dev, doorbell 0 or unaligned, sid not owned), -ENOENT (no context, or the doorbell page is
 * not mapped), and deviso_unmap()'s hardware errors (-ETIMEDOUT/-EIO). */
int deviso_unmap_msi_doorbell(const struct device* dev, uint32_t sid, uint64_t doorbell);

#ifdef __cplusplus
}  // extern "C"

#include "deviso/registry.h"
#include "deviso/status.h"
#include "deviso/types.h"

namespace deviso {

// Where a device must send its MSIs after MapMsiDoorbell().
struct MsiDoorbell {
  Iova iova = 0;            // the doorbell's device address: the MSI message address
  Iova page = 0;            // the mapped page's device address (0 size if bypass)
  uint64_t page_size = 0;   // bytes mapped (the context's page size); 0 if bypass
  bool write_only = false;  // mapped write-only (a stage 2 context)
  bool bypass = false;      // the unit passes MSIs to it untranslated: nothing was mapped
};

// Maps the doorbell at physical `doorbell` into `context`: the page holding it, identity,
// MemType::kDevice, write-only where the stage allows (the write-only Map is tried first; a
// stage 1 context refuses it with -ENOTSUP and changes nothing, then read-write is mapped).
// `sid` is a StreamID attached to the context: the unit's reserved regions for it decide
// whether MSIs pass untranslated (see the top of this file). Errors, with nothing mapped:
// -EINVAL (doorbell 0 or not 4-byte aligned, and Context::Map's), -ENOENT (no such context),
// -ENOTSUP (a reserved region where accesses fault covers the doorbell), -EEXIST, -ENOMEM,
// -EPERM, -EIO (as Context::Map).
Result<MsiDoorbell> MapMsiDoorbell(const Context& context, uint32_t sid, Paddr doorbell);

// Unmaps what MapMsiDoorbell(context, sid, doorbell) mapped (nothing if it was a bypass), as
// Context::Unmap. Errors: -EINVAL (doorbell 0 or unaligned), -ENOENT (no such context, or the
// page is not mapped), Context::Unmap's hardware errors.
Status UnmapMsiDoorbell(const Context& context, uint32_t sid, Paddr doorbell);

}  // namespace deviso

#endif  // __cplusplus

#endif  // DEVISO_MSI_H_
