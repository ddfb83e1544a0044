// An OS-agnostic AHCI (Serial ATA AHCI 1.3.1) driver: synchronous, polled, one command slot,
// 48-bit LBA DMA commands, for ATA disks.
//
// It reaches the HBA only through deviso::Mmio (the ABAR, PCI BAR5) and memory only through
// drivers::DmaAllocator (its own structures and DmaSegment data) or drivers::DmaMapper (a
// caller's buffer by physical address, mapped for one command): it never picks a device
// address, so the same code runs with the IOMMU in bypass and with every DMA inside an
// isolation mapping. Every wait for
// the hardware has a deadline (port::Deadline). Not internally locked: one caller at a time.
//
// Typical use:
//   Hba hba(abar);                           DEVISO_TRY(hba.Init());
//   Port port(abar, index, dma, hba.s64a()); DEVISO_TRY(port.Start());
//   DEVISO_ASSIGN_OR_RETURN(IdentifyInfo id, port.Identify());
//   DmaSegment sg[] = {{&buffer, 0, 4096}};  DEVISO_TRY(port.Read(lba, 8, sg));
//   DEVISO_TRY(port.ReadMapped(mapper, lba, 8, buffer_pa));  // mapped for this command only

#ifndef DEVISO_SRC_DRIVERS_AHCI_AHCI_H_
#define DEVISO_SRC_DRIVERS_AHCI_AHCI_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/mmio.h"
#include "deviso/status.h"
#include "drivers/ahci/ahci_hw.h"
#include "drivers/dma_allocator.h"

namespace deviso::drivers::ahci {

// The host bus adapter as a whole (AHCI 1.3.1 section 3.1, 10.1).
class Hba {
 public:
  // `abar`: the HBA's registers (PCI BAR5), which must outlive this object.
  explicit Hba(Mmio& abar) : abar_(abar) {}

  // Takes the HBA from firmware (BIOS/OS handoff, 10.6.3, if CAP2.BOH), resets it (GHC.HR,
  // 10.4.3), enables AHCI mode (GHC.AE) with interrupts off (GHC.IE=0: the driver polls), and
  // reads its capabilities. Every port is idle afterwards.
  // Errors: -ETIMEDOUT (the handoff or the reset did not complete within 1 s / 2 s).
  Status Init();

  // Valid after Init().
  uint32_t ports_implemented() const { return pi_; }
  unsigned command_slots() const { return cap_.ncs() + 1; }
  // CAP.S64A: the HBA can reach 64-bit device addresses.
  bool s64a() const { return cap_.s64a() != 0; }
  uint32_t version() const { return vs_.raw; }

  // Implemented ports whose link is up (PxSSTS.DET = 3: a device is present and the PHY is
  // communicating), as a bit mask. Whether the device is an ATA disk shows only once its first
  // D2H FIS has arrived (PxSIG), which needs FIS reception on: Port::Start() checks it.
  uint32_t PortsWithLink() const;

 private:
  Mmio& abar_;
  reg::Cap cap_;
  reg::Vs vs_;
  uint32_t pi_ = 0;
};

// What IDENTIFY DEVICE reported (ACS-2 7.16).
struct IdentifyInfo {
  char model[41] = {};
  char serial[21] = {};
  char firmware[9] = {};
  uint64_t sectors = 0;       // addressable logical sectors
  uint32_t sector_bytes = 0;  // logical sector size
  bool lba48 = false;
};

struct PortOptions {
  // Longest a command may take before the port is stopped and reset.
  uint64_t command_timeout_ns = 2'000'000'000;
  // PRD entries per command table: the most DMA segments one command can use.
  size_t max_prds = 32;
};

// One port with an ATA disk (AHCI 1.3.1 section 3.3, 5, 10.1.2, 10.4).
class Port {
 public:
  // `abar` and `dma` must outlive the port. `s64a` is Hba::s64a(): without it every device
  // address must lie below 4 GiB.
  Port(Mmio& abar, unsigned index, DmaAllocator& dma, bool s64a, const PortOptions& options = {});
  // Stops the port and frees its DMA memory.
  ~Port();
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  // Allocates the command list, received-FIS area and command table (once), points the port
  // at them, and starts it (PxCMD.FRE then ST) once the device is ready (10.3.1). A port that
  // is running is stopped first. Errors: -ENOENT (no device on the link), -ENOTSUP (the device
  // is not an ATA disk, PxSIG != 0x101, e.g. ATAPI), -ENOMEM (DMA
  // allocation), -ERANGE (a device address above 4 GiB without S64A), -ETIMEDOUT (the port did
  // not stop, or the device stayed busy even after a COMRESET).
  Status Start();

  // Stops the port (10.1.2): clears ST and waits for CR to clear, then clears FRE and waits for
  // FR to clear (500 ms each). Afterwards the HBA no longer touches the command list or FIS
  // area, so they may be freed or moved. Errors: -ETIMEDOUT (CR or FR stayed set).
  Status Stop();

  // IDENTIFY DEVICE. Errors: as Read(), and -ENOMEM (its 512-byte buffer).
  Result<IdentifyInfo> Identify();

  // READ DMA EXT / WRITE DMA EXT of `sectors` 512-byte sectors at `lba` to / from `segments`,
  // whose byte counts must add up to sectors * 512. Each segment needs an even byte count
  // (at most 4 MiB) and an even device address; at most PortOptions::max_prds segments.
  // Errors, with nothing issued: -EINVAL (bad segments, sectors 0 or > 65536, lba beyond
  // 48 bits), -EIO (port not started). After issuing: -EIO (the device or the HBA reported an
  // error, or moved fewer bytes; the port was recovered), -ETIMEDOUT (no completion before the
  // deadline; the port was stopped, reset (COMRESET) and restarted if possible).
  Status Read(uint64_t lba, uint32_t sectors, std::span<const DmaSegment> segments);
  Status Write(uint64_t lba, uint32_t sectors, std::span<const DmaSegment> segments);

  // The DMA-driver hook: READ DMA EXT / WRITE DMA EXT of `sectors` sectors at `lba` into /
  // from the caller's buffer at physical address `pa` (sectors * 512 bytes, `pa` even), which
  // the HBA can reach only for this command. Before issuing, the pages holding the buffer are
  // mapped with mapper.MapForDevice(): kFromDevice for a read (the device writes memory),
  // kToDevice for a write; the HBA is given mapping.device_addr plus the buffer's offset in
  // its first page (split into PRDs of at most 4 MiB). The mapping is ended with
  // UnmapForDevice() before the call returns, whatever happened: after completion; after a
  // device error or a timeout only once the port was stopped (PxCMD.ST clear, PxCI cleared)
  // and reset by Recover(), so the HBA no longer works on the command. Whole pages are
  // mapped: for strict isolation the buffer should own its pages (a pool's blocks do).
  // Cache maintenance is the mapper's (clean on map, invalidate on unmap of a read).
  // Errors, with nothing mapped or issued: -EINVAL (sectors 0 or > 65536, lba beyond 48 bits,
  // odd or wrapping `pa`, more PRDs than PortOptions::max_prds, a mapper page size that is not
  // a power of two), -EIO (port not started), MapForDevice()'s errors (-EEXIST, -ENOMEM, ...),
  // and -EINVAL for a mapped device address above 4 GiB without S64A (unmapped again, nothing
  // issued). After issuing: as Read(). If the command succeeded but UnmapForDevice() failed,
  // its error (-ETIMEDOUT/-EIO: the buffer may still be reachable and must not be reused); if
  // both failed, the command's error.
  Status ReadMapped(DmaMapper& mapper, uint64_t lba, uint32_t sectors, uint64_t pa);
  Status WriteMapped(DmaMapper& mapper, uint64_t lba, uint32_t sectors, uint64_t pa);

  // Non-queued error recovery (10.4.2): stop the port, clear PxSERR and PxIS, COMRESET the link
  // if the device is still busy (or `force_comreset`), and start the port again.
  // Errors: as Start().
  Status Recover(bool force_comreset);

  unsigned index() const { return index_; }
  bool running() const { return running_; }
  // Commands that ended in an error / a timeout since construction.
  uint64_t errors() const { return errors_; }
  uint64_t timeouts() const { return timeouts_; }

 private:
  reg::PxCmd ReadCmd() const { return reg::PxCmd::ReadFrom(abar_, base_); }

  Status Allocate();
  void FreeMemory();
  Status WaitDeviceReady(uint64_t timeout_ns) const;
  Status ComReset();
  // `sync_data`: whether the segments' regions are the allocator's, whose SyncForDevice /
  // SyncForCpu make the data visible (false for a DmaMapper's buffer: the mapper does it).
  Status Issue(const ds::FisRegH2d& fis, std::span<const DmaSegment> segments, bool write,
               uint32_t bytes, bool sync_data = true);
  static Status CheckLba(uint64_t lba, uint32_t sectors);
  Status Transfer(uint8_t command, uint64_t lba, uint32_t sectors,
                  std::span<const DmaSegment> segments, bool write);
  Status TransferMapped(uint8_t command, DmaMapper& mapper, uint64_t lba, uint32_t sectors,
                        uint64_t pa, bool write);

  Mmio& abar_;
  unsigned index_;
  size_t base_;
  DmaAllocator& dma_;
  bool s64a_;
  PortOptions options_;
  DmaRegion command_list_;
  DmaRegion received_fis_;
  DmaRegion command_table_;
  bool allocated_ = false;
  bool running_ = false;
  uint64_t errors_ = 0;
  uint64_t timeouts_ = 0;
};

}  // namespace deviso::drivers::ahci

#endif  // DEVISO_SRC_DRIVERS_AHCI_AHCI_H_
