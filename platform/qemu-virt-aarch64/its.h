// A minimal GICv3 ITS driver for QEMU `virt` (gic-version=3): LPIs for MSI and MSI-X.
//
// GICv3/v4 architecture specification, IHI0069 (cited below by section):
//   5.1      LPIs, the LPI Configuration and Pending tables (5.1.1, 5.1.2);
//   5.2      the ITS: DeviceID/EventID -> (collection, LPI) through the device table, the ITTs
//            and the collection table; commands (5.3) through a command queue;
//   12.11    GICR_CTLR.EnableLPIs, GICR_PROPBASER, GICR_PENDBASER (redistributor);
//   12.19    GITS_CTLR, GITS_TYPER, GITS_CBASER/CWRITER/CREADR, GITS_BASER<n>, GITS_TRANSLATER.
//
// One ITS, one CPU (CPU 0), one collection (ICID 0) targeting this CPU's redistributor; flat
// (one-level) device and collection tables of 4 KiB pages; LPIs 8192 .. 8192 + kMaxLpis - 1,
// priority 0xa0, Group 1 (LPIs are always Group 1 non-secure). Every table, the command queue
// and both LPI tables live in one static, 64 KiB-aligned block (ItsMemory()), which the IOMMU
// platforms declare as memory no device may be given (a device writing the ITS's tables could
// redirect any interrupt): deviso_map() of it is refused with -EPERM.
//
// MSI path: a device writes the EventID to GITS_TRANSLATER (ItsDoorbell()); the ITS takes the
// DeviceID from the write's requester ID (on `virt`: msi-map, DeviceID = RID), looks up
// (DeviceID, EventID) in the device's ITT and makes the mapped LPI pending. Behind an SMMU
// that write is translated first: the device's context must map the doorbell (deviso/msi.h).
// Every wait for the ITS (quiescence, command completion) has a deadline.
//
// Without an ITS (GICv2, or gic-version=3 with its=off) ItsInit() says -ENOENT and callers fall
// back to INTx or polling.

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_ITS_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_ITS_H_

#include <cstdint>

#include "deviso/status.h"
#include "gic.h"
#include "its_driver.h"
#include "platform_info.h"

namespace deviso::qemu_virt {

// Capacities of the static tables: kItsMaxDevices, kItsEventsPerDevice, kItsMaxLpis
// (its_driver.h, where the engine behind these calls lives).

// Initialises the ITS of the devicetree (info.gic.its) and LPIs on this CPU's redistributor:
// maps the ITS frames in the CPU map, zeroes the tables, programs GICR_PROPBASER /
// GICR_PENDBASER and sets GICR_CTLR.EnableLPIs, waits for GITS_CTLR.Quiescent, programs the
// device and collection tables (GITS_BASER<n>) and the command queue (GITS_CBASER), enables
// the ITS, then maps collection 0 to this CPU (MAPC + SYNC). Requires GicInit() (v3) first.
// Errors: -ENOENT (no ITS in the devicetree, or a GICv2), -EEXIST (already initialised),
// -ENOTSUP (no physical LPIs (GICR_TYPER.PLPIS = 0), LPIs already enabled by someone else, an
// ITS that does not take 4 KiB table pages or needs a table type this driver does not know,
// or ID sizes below what the tables assume), -ETIMEDOUT (never quiescent, or a command not
// consumed), -EIO (the ITS stalled on a command: GITS_CREADR.Stalled), and MmuMapDevice()'s.
// On error the ITS is left disabled (after a failed MAPC LPIs stay enabled at the
// redistributor, where EnableLPIs may be write-once: a retry gives -ENOTSUP).
Status ItsInit(const PlatformInfo& info);
// Whether ItsInit() succeeded.
bool ItsReady();

// The MSI doorbell: the physical address of GITS_TRANSLATER (the frame at ITS + 64 KiB, 12.19);
// 0 before ItsInit().
uint64_t ItsDoorbell();

// The ITS's own memory (tables, command queue, LPI configuration and pending tables): static,
// so valid before ItsInit() too. No device may be given any of it.
Region ItsMemory();

// The DeviceID the ITS sees for PCI requester ID `rid` (after any DMA alias): MsiDeviceId()
// (platform_info.h: the host bridge's msi-map). Errors: as MsiDeviceId().
Result<uint32_t> ItsDeviceId(const PlatformInfo& info, uint16_t rid);

// Maps (device_id, event_id) to a new LPI whose handler is `handler(ctx)`, enabled: MAPD (the
// device's first event: a new ITT, valid), MAPTI, then the LPI's configuration byte, INV and
// SYNC. Returns the LPI's INTID. Errors, with nothing changed: -EIO (not initialised), -EINVAL
// (null handler, event_id >= kItsEventsPerDevice, device_id beyond the device table (8 KiB:
// 1024 DeviceIDs with QEMU's 8-byte entries, i.e. buses 0-3) or the ITS's DeviceID bits), -EEXIST
// (that event is already mapped), -ENOMEM (kItsMaxDevices devices or kItsMaxLpis LPIs in use);
// -ETIMEDOUT/-EIO from the command queue (then the mapping may be half made: ItsUnmapEvent() cleans
// it up).
Result<uint32_t> ItsMapEvent(uint32_t device_id, uint32_t event_id, IrqHandler handler, void* ctx);
// Removes the mapping (DISCARD + SYNC) and frees its LPI; the device's ITT stays valid.
// Errors: -EIO (not initialised), -ENOENT (not mapped), and the command queue's.
Status ItsUnmapEvent(uint32_t device_id, uint32_t event_id);
// Makes the event's LPI pending as if the device had written its EventID (INT + SYNC), for
// self-tests of the ITS -> redistributor -> CPU path. Errors: -EIO, -ENOENT, the queue's.
Status ItsTrigger(uint32_t device_id, uint32_t event_id);

// Times the handler of LPI `intid` ran (0 for one not handed out).
uint64_t LpiCount(uint32_t intid);
// LPIs acknowledged that no mapping owns (a stray or late interrupt).
uint64_t ItsSpuriousLpis();
// Commands the ITS consumed since ItsInit().
uint64_t ItsCommandsIssued();

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_ITS_H_
