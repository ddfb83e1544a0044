// An OS-agnostic NVMe driver (NVM Express Base Specification 1.4c): synchronous, polled, one
// admin queue and one I/O queue pair, READ and WRITE with PRP entries and PRP lists.
//
// It reaches the controller only through deviso::Mmio (BAR0) and memory only through
// drivers::DmaAllocator (queues, identify buffers, PRP lists), the caller's DmaSegments
// (data), or drivers::DmaMapper (a caller's buffer by physical address, mapped for one
// command): it never picks a device address, so the same code runs with the IOMMU in bypass
// and with every structure inside an isolation mapping of the controller's own context.
// Interrupts stay off (INTMS; I/O queues are created with IEN=0) unless the I/O completion
// queue is asked to signal an MSI-X vector (ControllerOptions::io_msix); completions are polled
// either way, and every wait for the hardware has a deadline (port::Deadline). Not internally
// locked: one caller at a time.
//
// Typical use:
//   Controller nvme(bar0, dma);                 DEVISO_TRY(nvme.Init());
//   DEVISO_ASSIGN_OR_RETURN(NamespaceInfo ns, nvme.IdentifyNamespace(1));
//   DmaSegment sg[] = {{&buffer, 0, 4096}};     DEVISO_TRY(nvme.Read(ns, lba, 8, sg));
//   DEVISO_TRY(nvme.ReadMapped(mapper, ns, lba, 8, buffer_pa));  // mapped for this command
//   DEVISO_TRY(nvme.Shutdown());                // before the queue memory goes away

#ifndef DEVISO_SRC_DRIVERS_NVME_NVME_H_
#define DEVISO_SRC_DRIVERS_NVME_NVME_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/mmio.h"
#include "deviso/status.h"
#include "drivers/dma_allocator.h"
#include "drivers/nvme/nvme_hw.h"

namespace deviso::drivers::nvme {

struct ControllerOptions {
  // Queue sizes in entries (2..4096 for the admin queue, 2..CAP.MQES+1 for the I/O pair).
  uint16_t admin_queue_entries = 16;
  uint16_t io_queue_entries = 32;
  // Largest transfer one Read()/Write() may move; sizes the PRP list (one 4 KiB list page per
  // 2 MiB). The controller's MDTS may lower it (ControllerInfo::max_transfer_bytes).
  uint32_t max_transfer_bytes = 256 * 1024;
  // Longest a command may take before the controller is reset (which aborts it).
  uint64_t command_timeout_ns = 2'000'000'000;
  // Longest a normal shutdown (CC.SHN) may take (7.6.2; RTD3E is often 0 = unreported).
  uint64_t shutdown_timeout_ns = 5'000'000'000;
  // MSI-X (drivers/msix): the I/O completion queue is created with interrupts enabled on
  // this MSI-X vector (5.4: CDW11 IEN = 1, IV), and INTMS/INTMC are left alone (3.1.3/3.1.4:
  // not accessed under MSI-X). The caller enables MSI-X, programs and unmasks the vector
  // (the admin queue always signals vector 0, 3.1.7); the driver still completes commands by
  // polling the completion queue, so the interrupt is a notification (counted or waited for by
  // the caller), never needed for progress. false: interrupts off (polled, IEN = 0, INTMS all).
  bool io_msix = false;
  uint16_t io_msix_vector = 1;
};

// What IDENTIFY CONTROLLER reported (5.15.2.1), and the limits the driver derived.
struct ControllerInfo {
  char serial[21] = {};
  char model[41] = {};
  char firmware[9] = {};
  uint16_t vendor_id = 0;
  uint16_t controller_id = 0;
  uint32_t version = 0;     // VS register (3.1.2)
  uint32_t namespaces = 0;  // NN
  uint8_t mdts = 0;         // 0: no limit reported
  // min(ControllerOptions::max_transfer_bytes, the MDTS limit).
  uint32_t max_transfer_bytes = 0;
  // From CAP: doorbell stride (4 << dstrd bytes), RDY timeout, largest I/O queue.
  unsigned doorbell_stride_log2 = 0;
  uint64_t ready_timeout_ns = 0;
  uint32_t max_queue_entries = 0;
};

// What IDENTIFY NAMESPACE reported (5.15.2.2, the LBA format in use).
struct NamespaceInfo {
  uint32_t nsid = 0;
  uint64_t blocks = 0;  // NSZE
  uint32_t block_bytes = 0;
};

class Controller {
 public:
  // `bar0` (the controller's registers, PCI BAR0) and `dma` must outlive the controller.
  Controller(Mmio& bar0, DmaAllocator& dma, const ControllerOptions& options = {});
  // Shuts the controller down (Shutdown()); if it does not confirm, the queue memory is
  // leaked rather than freed while the controller might still write it.
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Brings the controller up (7.6.1): disables it (CC.EN=0, waits for CSTS.RDY=0), allocates
  // the admin queues and the PRP list (once), programs AQA/ASQ/ACQ, enables it with 4 KiB
  // pages and the NVM command set, waits for CSTS.RDY (both waits bounded by CAP.TO), masks
  // interrupts, runs IDENTIFY CONTROLLER, asks for one I/O queue pair (Set Features, Number
  // of Queues) and creates it (Create I/O CQ, then Create I/O SQ, physically contiguous,
  // interrupts off). An initialised controller is taken down and brought up again.
  // Errors: -ENOTSUP (no NVM command set, 4 KiB pages unsupported, queue entry sizes),
  // -EINVAL (bad options), -ENOMEM (DMA allocation; nothing stays allocated), -ETIMEDOUT
  // (CSTS.RDY did not follow CC.EN within CAP.TO, or an admin command did not complete),
  // -EIO (CSTS.CFS, or an admin command failed; the controller is left disabled).
  Status Init();

  // IDENTIFY NAMESPACE `nsid`. Errors: -EIO (not initialised), -ENOENT (no such active
  // namespace: NSZE 0 or an Invalid Namespace status), -ENOTSUP (metadata-only or unusual LBA
  // formats: block size not 512..64 KiB), -ENOMEM (the 4 KiB buffer), and those of commands
  // (see Read()).
  Result<NamespaceInfo> IdentifyNamespace(uint32_t nsid);

  // READ / WRITE of `blocks` logical blocks at `lba` of namespace `ns` to / from `segments`,
  // whose byte counts must add up to blocks * ns.block_bytes. The segments form one PRP
  // transfer (4.3): every device address dword aligned, every segment but the first starting
  // on a 4 KiB page boundary and every segment but the last ending on one; at most
  // max_transfer_bytes in all.
  // Errors, with nothing issued: -EINVAL (bad segments or counts, blocks 0 or > 65536),
  // -ERANGE (beyond the namespace's end), -EIO (not initialised). After issuing: the
  // completion's status as an errno (see StatusToErrno()), -ETIMEDOUT (no completion before
  // the deadline: the controller was reset, which aborts the command, and brought up again
  // if possible), -EIO (CSTS.CFS: the controller failed; recovered likewise). A command that
  // failed may have moved part of its data.
  Status Read(const NamespaceInfo& ns, uint64_t lba, uint32_t blocks,
              std::span<const DmaSegment> segments);
  Status Write(const NamespaceInfo& ns, uint64_t lba, uint32_t blocks,
               std::span<const DmaSegment> segments);

  // The DMA-driver hook: READ / WRITE of `blocks` blocks at `lba` into / from the caller's
  // buffer at physical address `pa` (blocks * ns.block_bytes, `pa` dword aligned), which the
  // controller can reach only for this command. Before the command is submitted, the pages
  // holding the buffer are mapped with mapper.MapForDevice(): kFromDevice for a READ (the
  // controller writes memory), kToDevice for a WRITE; the PRPs describe mapping.device_addr
  // plus the buffer's offset in its first page. The mapping is ended with UnmapForDevice()
  // before the call returns, whatever happened: after the completion (also an error status);
  // after a timeout or a fatal status only once the controller was reset (CC.EN=0 confirmed
  // by CSTS.RDY=0, which aborts the command) by Recover(), so it no longer works on the
  // command. Whole pages are mapped: for strict isolation the buffer should own its pages (a
  // pool's blocks do). Cache maintenance is the mapper's (clean on map, invalidate on unmap of
  // a READ).
  // Errors, with nothing mapped or submitted: -EIO (not initialised), -EINVAL (counts as for
  // Read(), `pa` not dword aligned or wrapping, a transfer above max_transfer_bytes, a mapper
  // page size that is not a power of two), -ERANGE (beyond the namespace), and MapForDevice()'s
  // errors (-EEXIST, -ENOMEM, ...). After submitting: as Read(). If the command succeeded but
  // UnmapForDevice() failed, its error (-ETIMEDOUT/-EIO: the buffer may still be reachable and
  // must not be reused); if both failed, the command's error.
  Status ReadMapped(DmaMapper& mapper, const NamespaceInfo& ns, uint64_t lba, uint32_t blocks,
                    uint64_t pa);
  Status WriteMapped(DmaMapper& mapper, const NamespaceInfo& ns, uint64_t lba, uint32_t blocks,
                     uint64_t pa);

  // Normal shutdown (7.6.2): deletes the I/O queues, sets CC.SHN=01b, waits for
  // CSTS.SHST=10b, then disables the controller (CC.EN=0, CSTS.RDY=0): from then on it
  // touches none of the queue memory, which is freed. Nothing to do if not initialised.
  // Errors: -ETIMEDOUT (shutdown or disable not confirmed: the memory is kept, and a later
  // Shutdown() or the destructor tries again).
  Status Shutdown();

  // Resets the controller (CC.EN=0) and brings it up again with the same memory: what
  // Read()/Write() do after a timeout or a fatal status. Errors: as Init().
  Status Recover();

  // The errno for a completion status (4.6.1.2): Success 0; Invalid Opcode -ENOTSUP; Invalid
  // Field, PRP Offset, Queue Identifier/Size -EINVAL; Invalid Namespace -ENOENT; LBA Out of
  // Range, Capacity Exceeded -ERANGE; Namespace Not Ready -EBUSY; everything else (data
  // transfer, internal, aborts, media and path errors) -EIO.
  static Status StatusToErrno(ds::Status status);

  bool ready() const { return ready_; }
  // Valid after Init().
  const ControllerInfo& info() const { return info_; }
  // The status of the last completion that was not Success (sct/sc, for diagnostics).
  ds::Status last_error() const { return last_error_; }
  // Commands that ended in an error status / a timeout / a fatal status since construction.
  uint64_t errors() const { return errors_; }
  uint64_t timeouts() const { return timeouts_; }
  uint64_t fatal_errors() const { return fatal_errors_; }
  // The I/O submission queue's memory, valid after Init(): for diagnostics and fault injection
  // (e.g. unmapping it to see how the controller reacts).
  const DmaRegion& io_submission_queue() const { return io_.sq; }

 private:
  // One submission/completion queue pair (4.1).
  struct Queue {
    uint16_t id = 0;
    uint16_t entries = 0;
    DmaRegion sq;
    DmaRegion cq;
    uint16_t sq_tail = 0;
    uint16_t cq_head = 0;
    uint32_t phase = 1;  // the phase tag of a new entry (4.6: 1 on the first pass)
    bool allocated = false;
    void ResetIndices() {
      sq_tail = 0;
      cq_head = 0;
      phase = 1;
    }
  };

  reg::Csts ReadCsts() { return reg::Csts::ReadFrom(bar_); }

  Status AllocateQueue(Queue& q, uint16_t id, uint16_t entries);
  void FreeQueue(Queue& q);
  Status Allocate();
  void FreeMemory();
  Status Disable();
  Status WaitReady(bool ready);
  Status BringUp();
  Status SetUpIoQueues();
  Status Submit(Queue& q, ds::SubmissionEntry& cmd, uint32_t* dw0);
  Status AdminCommand(ds::SubmissionEntry& cmd, uint32_t* dw0 = nullptr);
  Status Identify(uint32_t cns, uint32_t nsid, const DmaRegion& buffer);
  Status BuildPrps(std::span<const DmaSegment> segments, uint64_t bytes, uint64_t* prp1,
                   uint64_t* prp2, size_t* list_entries);
  // The checks every transfer makes before anything reaches the hardware; *bytes: its size.
  Status CheckTransfer(const NamespaceInfo& ns, uint64_t lba, uint32_t blocks, uint64_t* bytes);
  // `sync_data`: whether the segments' regions are the allocator's, whose SyncForDevice /
  // SyncForCpu make the data visible (false for a DmaMapper's buffer: the mapper does it).
  Status Transfer(uint8_t opcode, const NamespaceInfo& ns, uint64_t lba, uint32_t blocks,
                  std::span<const DmaSegment> segments, bool sync_data = true);
  Status TransferMapped(uint8_t opcode, DmaMapper& mapper, const NamespaceInfo& ns, uint64_t lba,
                        uint32_t blocks, uint64_t pa);

  Mmio& bar_;
  DmaAllocator& dma_;
  ControllerOptions options_;
  ControllerInfo info_;
  reg::Cap cap_;
  Queue admin_;
  Queue io_;
  DmaRegion prp_list_;
  size_t prp_list_pages_ = 0;
  bool memory_ = false;  // the admin queues and PRP list are allocated
  bool ready_ = false;   // enabled, identified, I/O queue pair created
  bool io_created_ = false;
  uint16_t next_cid_ = 0;
  ds::Status last_error_;
  uint64_t errors_ = 0;
  uint64_t timeouts_ = 0;
  uint64_t fatal_errors_ = 0;
};

}  // namespace deviso::drivers::nvme

#endif  // DEVISO_SRC_DRIVERS_NVME_NVME_H_
