// NVMe driver (see nvme.h). Section numbers are from NVM Express Base Specification 1.4c.

#include "drivers/nvme/nvme.h"

#include <cstring>

#include "core/barrier.h"
#include "deviso/port/os.h"

namespace deviso::drivers::nvme {
namespace {

constexpr uint16_t kAdminQueueId = 0;
constexpr uint16_t kIoQueueId = 1;
constexpr uint32_t kMaxBlocksPerCommand = 65536;   // NLB is 16 bits, 0-based (6.9)
constexpr uint32_t kMaxTransferBytes = 32U << 20;  // the largest PRP list the options may ask for
constexpr uint32_t kMinBlockBytes = 512;
constexpr uint32_t kMaxBlockBytes = 64 * 1024;

// Polls `done()` until it is true or `timeout_ns` passes.
template <typename Done>
Status PollUntil(uint64_t timeout_ns, Done done) {
  const port::Deadline deadline = port::Deadline::In(timeout_ns);
  while (!done()) {
    if (deadline.Expired()) {
      return done() ? Status::Ok() : Status::TimedOut();
    }
  }
  return Status::Ok();
}

uint64_t PageOf(uint64_t addr) { return addr & ~uint64_t{kPageBytes - 1}; }

// Identify data strings are ASCII, padded with spaces (1.5 "ASCII string", 5.15.2.1).
void CopyIdString(const uint8_t* data, size_t bytes, char* out) {
  size_t n = bytes;
  while (n > 0 && (data[n - 1] == ' ' || data[n - 1] == '\0')) {
    --n;
  }
  for (size_t i = 0; i < n; ++i) {
    out[i] = static_cast<char>(data[i]);
  }
  out[n] = '\0';
}

template <typename T>
T LoadLe(const uint8_t* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    v = static_cast<T>(v | (static_cast<T>(p[i]) << (8 * i)));
  }
  return v;
}

// Calls `fn(page_index, device_address)` for every memory page `segments` touch, in order:
// the first address carries the first segment's page offset, all others are page aligned.
// The segments must have been validated (ValidateSegments).
template <typename Fn>
void ForEachPrp(std::span<const DmaSegment> segments, Fn fn) {
  size_t index = 0;
  for (const DmaSegment& s : segments) {
    const uint64_t start = s.device_addr();
    const uint64_t last_page = PageOf(start + s.bytes - 1);
    fn(index++, start);
    for (uint64_t page = PageOf(start) + kPageBytes; page <= last_page; page += kPageBytes) {
      fn(index++, page);
    }
  }
}

// The PRP rules of 4.3 for a transfer built from several segments: dword aligned; only the
// first segment may start inside a page and only the last may end inside one.
bool ValidSegments(std::span<const DmaSegment> segments, uint64_t bytes) {
  if (segments.empty()) {
    return false;
  }
  uint64_t total = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    const DmaSegment& s = segments[i];
    if (s.region == nullptr || s.bytes == 0 || s.offset > s.region->size ||
        s.bytes > s.region->size - s.offset) {
      return false;
    }
    const uint64_t start = s.device_addr();
    const uint64_t end = start + s.bytes;
    if (end < start || (start & 3) != 0 || (i > 0 && start % kPageBytes != 0) ||
        (i + 1 < segments.size() && end % kPageBytes != 0)) {
      return false;
    }
    total += s.bytes;
  }
  return total == bytes;
}

// List entries (PRP entry 2 onward) that a transfer of up to `bytes` can need: its pages,
// starting anywhere in a page, minus the one PRP1 describes.
size_t MaxListEntries(uint32_t bytes) { return (bytes + kPageBytes - 1) / kPageBytes; }

// List pages for `entries` entries: each page but the last gives its final slot to the
// pointer to the next page (4.3, Figure 109).
size_t ListPages(size_t entries) {
  if (entries <= ds::kPrpEntriesPerPage) {
    return 1;
  }
  const size_t per_chained_page = ds::kPrpEntriesPerPage - 1;
  return (entries - 1 + per_chained_page - 1) / per_chained_page;
}

}  // namespace

Controller::Controller(Mmio& bar0, DmaAllocator& dma, const ControllerOptions& options)
    : bar_(bar0), dma_(dma), options_(options) {}

Controller::~Controller() {
  // If the controller did not confirm it stopped, Shutdown() keeps the memory: leaked, never
  // freed while the controller might still write a completion into it.
  (void)Shutdown();
}

Status Controller::StatusToErrno(ds::Status status) {
  if (status.ok()) {
    return Status::Ok();
  }
  if (status.sct() == ds::sct::kGeneric) {
    switch (status.sc()) {
      case ds::sc::kInvalidOpcode:
        return Status::NotSupported();
      case ds::sc::kInvalidField:
      case ds::sc::kInvalidPrpOffset:
        return Status::InvalidArgument();
      case ds::sc::kInvalidNamespace:
        return Status::NotFound();
      case ds::sc::kLbaOutOfRange:
      case ds::sc::kCapacityExceeded:
        return Status::OutOfRange();
      case ds::sc::kNamespaceNotReady:
        return Status::Busy();
      default:
        return Status::IoError();
    }
  }
  if (status.sct() == ds::sct::kCommandSpecific) {
    switch (status.sc()) {
      case ds::sc_cmd::kInvalidCq:
      case ds::sc_cmd::kInvalidQueueId:
      case ds::sc_cmd::kInvalidQueueSize:
        return Status::InvalidArgument();
      default:
        return Status::IoError();
    }
  }
  return Status::IoError();  // media and data integrity, path related, vendor specific
}

// 3.1: 64-bit registers written as two 32-bit halves, low first (as most hosts do; the
// controller latches the pair when the controller is enabled).

// --- Memory --------------------------------------------------------------------------------------

Status Controller::AllocateQueue(Queue& q, uint16_t id, uint16_t entries) {
  // 4.1.3 / 5.3-5.4: physically contiguous queues (PC=1), 4 KiB aligned base (the admin
  // queue's ASQ/ACQ bits 11:0 are reserved; I/O queue PRP1 must be page aligned with PC=1).
  DEVISO_ASSIGN_OR_RETURN(q.sq,
                          dma_.Alloc(size_t{entries} * sizeof(ds::SubmissionEntry), kPageBytes));
  auto cq = dma_.Alloc(size_t{entries} * sizeof(ds::CompletionEntry), kPageBytes);
  if (!cq.ok()) {
    dma_.Free(q.sq);
    return cq.status();
  }
  q.cq = *cq;
  q.id = id;
  q.entries = entries;
  q.allocated = true;
  q.ResetIndices();
  return Status::Ok();
}

void Controller::FreeQueue(Queue& q) {
  if (!q.allocated) {
    return;
  }
  dma_.Free(q.cq);
  dma_.Free(q.sq);
  q.allocated = false;
}

Status Controller::Allocate() {
  if (memory_) {
    return Status::Ok();
  }
  DEVISO_TRY(AllocateQueue(admin_, kAdminQueueId, options_.admin_queue_entries));
  if (const Status s = AllocateQueue(io_, kIoQueueId, options_.io_queue_entries); !s.ok()) {
    FreeQueue(admin_);
    return s;
  }
  prp_list_pages_ = ListPages(MaxListEntries(options_.max_transfer_bytes));
  auto list = dma_.Alloc(prp_list_pages_ * kPageBytes, kPageBytes);
  if (!list.ok()) {
    FreeQueue(io_);
    FreeQueue(admin_);
    return list.status();
  }
  prp_list_ = *list;
  memory_ = true;
  return Status::Ok();
}

void Controller::FreeMemory() {
  if (!memory_) {
    return;
  }
  dma_.Free(prp_list_);
  FreeQueue(io_);
  FreeQueue(admin_);
  memory_ = false;
}

// --- Enable / disable ----------------------------------------------------------------------------

Status Controller::WaitReady(bool ready) {
  bool fatal = false;
  const Status s = PollUntil(info_.ready_timeout_ns, [&] {
    const reg::Csts csts = ReadCsts();
    // While enabling, a fatal status means RDY will not come (3.1.6).
    fatal = ready && csts.cfs() != 0;
    return fatal || (csts.rdy() != 0) == ready;
  });
  if (fatal) {
    ++fatal_errors_;
    return Status::IoError();
  }
  return s;
}

// 3.1.5 CC.EN 1 -> 0 resets the controller: it aborts every command, deletes the I/O queues
// and forgets the admin queue's state; CSTS.RDY clears once it has done so (within CAP.TO).
Status Controller::Disable() {
  ready_ = false;
  io_created_ = false;
  reg::Cc cc = reg::Cc::ReadFrom(bar_);
  const reg::Csts csts = ReadCsts();
  if (cc.en() == 0 && csts.rdy() == 0) {
    return Status::Ok();
  }
  if (cc.en() != 0 && csts.rdy() == 0 && csts.cfs() == 0) {
    // Enabling is still in progress: let it finish, as clearing EN before RDY is set leaves
    // the controller in an undefined state on some devices (Linux waits likewise).
    (void)WaitReady(true);
  }
  cc.set_en(0).set_shn(reg::Shn::kNone).WriteTo(bar_);
  return WaitReady(false);
}

Status Controller::BringUp() {
  // 7.6.1 controller initialisation, steps 1-7.
  DEVISO_TRY(Disable());
  admin_.ResetIndices();
  io_.ResetIndices();
  // Stale phase tags would look like completions: the queues start zeroed.
  std::memset(admin_.cq.cpu, 0, admin_.cq.size);
  std::memset(io_.cq.cpu, 0, io_.cq.size);
  dma_.SyncForDevice(admin_.cq, 0, admin_.cq.size);
  dma_.SyncForDevice(io_.cq, 0, io_.cq.size);

  const uint32_t entries_minus_one = admin_.entries - 1U;
  reg::Aqa{}.set_asqs(entries_minus_one).set_acqs(entries_minus_one).WriteTo(bar_);
  reg::Asq{admin_.sq.device_addr}.WriteHalves(bar_);  // page aligned (Allocate)
  reg::Acq{admin_.cq.device_addr}.WriteHalves(bar_);
  DmaWriteBarrier();
  const reg::Cc cc = reg::Cc{}
                         .set_css(0)  // NVM command set
                         .set_mps(0)  // 4 KiB pages
                         .set_ams(0)  // round robin
                         .set_shn(reg::Shn::kNone)
                         .set_iosqes(ds::kSqEntryLog2)
                         .set_iocqes(ds::kCqEntryLog2)
                         .set_en(1);
  cc.WriteTo(bar_);
  if (const Status s = WaitReady(true); !s.ok()) {
    port::Log("nvme: controller not ready after enabling: CSTS 0x%08x (%s)\n", ReadCsts().raw,
              s.str());
    (void)Disable();
    return s;
  }
  if (!options_.io_msix) {
    reg::Intms::All().WriteTo(bar_);  // polled: no pin-based or MSI interrupts
  }

  if (const Status s = SetUpIoQueues(); !s.ok()) {
    (void)Disable();
    return s;
  }
  ready_ = true;
  return Status::Ok();
}

Status Controller::SetUpIoQueues() {
  // 7.6.1 step 8: IDENTIFY CONTROLLER.
  DEVISO_ASSIGN_OR_RETURN(const DmaRegion buffer, dma_.Alloc(identify::kBytes, kPageBytes));
  const Status identified = Identify(identify::kCnsController, 0, buffer);
  if (!identified.ok()) {
    dma_.Free(buffer);
    return identified;
  }
  const auto* id = static_cast<const uint8_t*>(buffer.cpu);
  info_.vendor_id = LoadLe<uint16_t>(id + identify::kVid);
  CopyIdString(id + identify::kSn, 20, info_.serial);
  CopyIdString(id + identify::kMn, 40, info_.model);
  CopyIdString(id + identify::kFr, 8, info_.firmware);
  info_.mdts = id[identify::kMdts];
  info_.controller_id = LoadLe<uint16_t>(id + identify::kCntlid);
  info_.namespaces = LoadLe<uint32_t>(id + identify::kNn);
  const identify::QueueEntrySizes sqes{id[identify::kSqes]};
  const identify::QueueEntrySizes cqes{id[identify::kCqes]};
  dma_.Free(buffer);

  // SQES/CQES: [3:0] the required (smallest), [7:4] the largest entry size, as log2.
  if (sqes.required() > ds::kSqEntryLog2 || sqes.maximum() < ds::kSqEntryLog2 ||
      cqes.required() > ds::kCqEntryLog2 || cqes.maximum() < ds::kCqEntryLog2) {
    return Status::NotSupported();
  }
  info_.max_transfer_bytes = options_.max_transfer_bytes;
  if (info_.mdts != 0 && info_.mdts < 20) {
    // MDTS is in units of the minimum memory page size (CAP.MPSMIN).
    const uint64_t limit = identify::MdtsBytes(cap_.min_page_bytes(), info_.mdts);
    if (limit < info_.max_transfer_bytes) {
      info_.max_transfer_bytes = static_cast<uint32_t>(limit);
    }
  }

  // 7.6.1 step 10 / 5.21.1.7: one I/O submission and one completion queue (0-based counts).
  ds::SubmissionEntry nq{};
  nq.set_cdw0(opcode::kSetFeatures, 0);
  nq.cdw(10) = feature::SetFeaturesCdw10{}.set_fid(feature::kNumberOfQueues).raw;
  nq.cdw(11) = 0;
  DEVISO_TRY(AdminCommand(nq));

  // 5.4 Create I/O Completion Queue: CDW10 QSIZE [31:16] (0-based) | QID; CDW11 IV [31:16],
  // IEN [1] = 0 (polled) or 1 with IV = the MSI-X vector (ControllerOptions::io_msix), PC [0] = 1.
  const ds::CreateQueueCdw10 cdw10 =
      ds::CreateQueueCdw10{}.set_qid(io_.id).set_qsize(uint32_t{io_.entries} - 1);
  ds::SubmissionEntry cq{};
  cq.set_cdw0(opcode::kCreateIoCq, 0);
  cq.set_prp(io_.cq.device_addr, 0);
  cq.cdw(10) = cdw10.raw;
  cq.cdw(11) = ds::CreateIoCqCdw11{}
                   .set_pc(1)
                   .set_ien(options_.io_msix ? 1 : 0)
                   .set_iv(options_.io_msix ? options_.io_msix_vector : 0)
                   .raw;
  DEVISO_TRY(AdminCommand(cq));
  // 5.5 Create I/O Submission Queue: CDW11 CQID [31:16], QPRIO [2:1], PC [0] = 1.
  ds::SubmissionEntry sq{};
  sq.set_cdw0(opcode::kCreateIoSq, 0);
  sq.set_prp(io_.sq.device_addr, 0);
  sq.cdw(10) = cdw10.raw;
  sq.cdw(11) = ds::CreateIoSqCdw11{}.set_cqid(io_.id).set_pc(1).raw;
  DEVISO_TRY(AdminCommand(sq));
  io_created_ = true;
  return Status::Ok();
}

Status Controller::Init() {
  // CAP is read as two halves, low first (3.1: 64-bit registers).
  cap_ = reg::Cap::ReadHalves(bar_);
  info_ = ControllerInfo{};
  info_.version = reg::Vs::ReadFrom(bar_).raw;
  info_.doorbell_stride_log2 = static_cast<unsigned>(cap_.dstrd());
  info_.ready_timeout_ns = (cap_.to() == 0 ? 1 : cap_.to()) * reg::Cap::kToUnitNs;
  info_.max_queue_entries = static_cast<uint32_t>(cap_.mqes()) + 1;
  if ((cap_.css() & reg::Cap::kCssNvm) == 0 || cap_.mpsmin() != 0) {
    return Status::NotSupported();  // no NVM command set, or 4 KiB pages below MPSMIN
  }
  if (options_.admin_queue_entries < 2 || options_.admin_queue_entries > reg::Aqa::kMaxEntries ||
      options_.io_queue_entries < 2 || options_.io_queue_entries > info_.max_queue_entries ||
      options_.max_transfer_bytes < kPageBytes || options_.max_transfer_bytes > kMaxTransferBytes) {
    return Status::InvalidArgument();
  }
  const bool had_memory = memory_;
  DEVISO_TRY(Allocate());
  const Status s = BringUp();
  if (!s.ok() && !had_memory && ReadCsts().rdy() == 0 && reg::Cc::ReadFrom(bar_).en() == 0) {
    FreeMemory();  // the controller is confirmed disabled: nothing of it stays
  }
  return s;
}

Status Controller::Recover() {
  if (!memory_) {
    return Init();
  }
  const Status s = BringUp();
  port::Log("nvme: controller reset and %s\n", s.ok() ? "brought up again" : "left disabled");
  return s;
}

Status Controller::Shutdown() {
  if (!memory_) {
    return Status::Ok();
  }
  if (ready_ && io_created_) {
    // 7.6.2: delete the I/O submission queue, then its completion queue (5.6, 5.5: CDW10 QID).
    ds::SubmissionEntry del_sq{};
    del_sq.set_cdw0(opcode::kDeleteIoSq, 0);
    del_sq.cdw(10) = io_.id;
    ds::SubmissionEntry del_cq{};
    del_cq.set_cdw0(opcode::kDeleteIoCq, 0);
    del_cq.cdw(10) = io_.id;
    if (AdminCommand(del_sq).ok() && AdminCommand(del_cq).ok()) {
      io_created_ = false;
    }
  }
  bool clean = false;
  if (ready_) {
    reg::Cc cc = reg::Cc::ReadFrom(bar_);
    cc.set_shn(reg::Shn::kNormal).WriteTo(bar_);
    clean = PollUntil(options_.shutdown_timeout_ns,
                      [&] {
                        const reg::Csts csts = ReadCsts();
                        return csts.shst() == reg::Shst::kComplete || csts.cfs() != 0;
                      })
                .ok() &&
            ReadCsts().cfs() == 0;
    if (!clean) {
      port::Log("nvme: shutdown not confirmed (CSTS 0x%08x): resetting instead\n", ReadCsts().raw);
    }
  }
  // After a shutdown the controller processes no commands, but only a disabled controller
  // (CSTS.RDY=0) has certainly forgotten the queues' addresses.
  if (const Status s = Disable(); !s.ok()) {
    port::Log("nvme: controller did not stop (CSTS 0x%08x): its queue memory is kept\n",
              ReadCsts().raw);
    return s;
  }
  FreeMemory();
  return Status::Ok();
}

// --- Commands ------------------------------------------------------------------------------------

// Posts `cmd` on `q`, rings the doorbell and polls the completion queue (4.6: a new entry's
// phase tag differs from the previous pass's) until the deadline, watching CSTS.CFS.
// Synchronous: at most one command is outstanding, so the queue is never full.
Status Controller::Submit(Queue& q, ds::SubmissionEntry& cmd, uint32_t* dw0) {
  const uint16_t cid = next_cid_++;
  cmd.set_cdw0(cmd.opcode(), cid);
  const unsigned dstrd = info_.doorbell_stride_log2;
  std::memcpy(static_cast<uint8_t*>(q.sq.cpu) + size_t{q.sq_tail} * sizeof(ds::SubmissionEntry),
              &cmd, sizeof(cmd));
  dma_.SyncForDevice(q.sq, size_t{q.sq_tail} * sizeof(ds::SubmissionEntry), sizeof(cmd));
  q.sq_tail = static_cast<uint16_t>((q.sq_tail + 1U) % q.entries);
  DmaWriteBarrier();  // the entry (and its PRP list, data) before the doorbell
  reg::Doorbell{}.set_value(q.sq_tail).WriteAt(bar_, reg::SqTailDoorbell(q.id, dstrd));

  const size_t cq_offset = size_t{q.cq_head} * sizeof(ds::CompletionEntry);
  const auto* entry = reinterpret_cast<const volatile ds::CompletionEntry*>(
      static_cast<uint8_t*>(q.cq.cpu) + cq_offset);
  const port::Deadline deadline = port::Deadline::In(options_.command_timeout_ns);
  uint32_t dw3 = 0;
  for (;;) {
    dma_.SyncForCpu(q.cq, cq_offset, sizeof(ds::CompletionEntry));
    dw3 = entry->raw[3];
    if (ds::CompletionEntry::Phase(dw3) == q.phase) {
      break;
    }
    const reg::Csts csts = ReadCsts();
    if (csts.cfs() != 0) {
      ++fatal_errors_;
      ready_ = false;
      port::Log("nvme: controller fatal status (CSTS 0x%08x) during opcode 0x%02x on queue %u\n",
                csts.raw, cmd.opcode(), q.id);
      return Status::IoError();
    }
    if (deadline.Expired()) {
      ++timeouts_;
      ready_ = false;
      port::Log("nvme: opcode 0x%02x (cid %u) on queue %u timed out: CSTS 0x%08x\n", cmd.opcode(),
                cid, q.id, csts.raw);
      return Status::TimedOut();
    }
  }
  DmaReadBarrier();  // the phase tag before the rest of the entry and the data
  const uint32_t result = entry->raw[0];
  q.cq_head = static_cast<uint16_t>(q.cq_head + 1U);
  if (q.cq_head == q.entries) {
    q.cq_head = 0;
    q.phase ^= 1;  // 4.6: the phase tag inverts on every pass through the queue
  }
  reg::Doorbell{}.set_value(q.cq_head).WriteAt(bar_, reg::CqHeadDoorbell(q.id, dstrd));

  if (ds::CompletionEntry::Cid(dw3) != cid) {
    ++errors_;
    port::Log("nvme: completion for cid %u while waiting for cid %u on queue %u\n",
              ds::CompletionEntry::Cid(dw3), cid, q.id);
    return Status::IoError();
  }
  const ds::Status status = ds::CompletionEntry::StatusOf(dw3);
  if (!status.ok()) {
    ++errors_;
    last_error_ = status;
    port::Log("nvme: opcode 0x%02x on queue %u failed: SCT 0x%x SC 0x%02x%s\n", cmd.opcode(), q.id,
              static_cast<unsigned>(status.sct()), static_cast<unsigned>(status.sc()),
              status.dnr() != 0 ? " (do not retry)" : "");
    return StatusToErrno(status);
  }
  if (dw0 != nullptr) {
    *dw0 = result;
  }
  return Status::Ok();
}

Status Controller::AdminCommand(ds::SubmissionEntry& cmd, uint32_t* dw0) {
  return Submit(admin_, cmd, dw0);
}

Status Controller::Identify(uint32_t cns, uint32_t nsid, const DmaRegion& buffer) {
  // 5.15: a 4 KiB data structure into one page-aligned buffer: PRP1 only.
  ds::SubmissionEntry cmd{};
  cmd.set_cdw0(opcode::kIdentify, 0);
  cmd.set_nsid(nsid);
  cmd.set_prp(buffer.device_addr, 0);
  cmd.cdw(10) = cns;
  DEVISO_TRY(AdminCommand(cmd));
  dma_.SyncForCpu(buffer, 0, identify::kBytes);
  return Status::Ok();
}

Result<NamespaceInfo> Controller::IdentifyNamespace(uint32_t nsid) {
  if (!ready_) {
    return Status::IoError();
  }
  if (nsid == 0 || nsid == 0xffffffff) {
    return Status::NotFound();
  }
  DEVISO_ASSIGN_OR_RETURN(const DmaRegion buffer, dma_.Alloc(identify::kBytes, kPageBytes));
  const Status s = Identify(identify::kCnsNamespace, nsid, buffer);
  if (!s.ok()) {
    dma_.Free(buffer);
    if (!ready_) {
      (void)Recover();
    }
    return s;
  }
  const auto* id = static_cast<const uint8_t*>(buffer.cpu);
  NamespaceInfo ns;
  ns.nsid = nsid;
  ns.blocks = LoadLe<uint64_t>(id + identify::kNsze);
  const uint8_t format = static_cast<uint8_t>(identify::Flbas{id[identify::kFlbas]}.format());
  const uint8_t formats = static_cast<uint8_t>(id[identify::kNlbaf] + 1);
  const uint32_t lbaf = LoadLe<uint32_t>(id + identify::kLbaf0 + 4 * size_t{format});
  dma_.Free(buffer);
  if (ns.blocks == 0) {
    return Status::NotFound();  // an inactive NSID reads as zeroes (5.15.2.2)
  }
  const uint32_t lbads = identify::LbaFormat{lbaf}.lbads();  // log2 of the block size
  if (format >= formats || lbads < 9 || lbads > 16) {
    return Status::NotSupported();
  }
  ns.block_bytes = 1U << lbads;
  if (ns.block_bytes < kMinBlockBytes || ns.block_bytes > kMaxBlockBytes) {
    return Status::NotSupported();
  }
  return ns;
}

Status Controller::BuildPrps(std::span<const DmaSegment> segments, uint64_t bytes, uint64_t* prp1,
                             uint64_t* prp2, size_t* list_entries) {
  if (!ValidSegments(segments, bytes)) {
    return Status::InvalidArgument();
  }
  size_t pages = 0;
  ForEachPrp(segments, [&](size_t, uint64_t) { ++pages; });
  // 4.3: PRP1 is the first page (with its offset); PRP2 the second page if there are exactly
  // two, else the address of a PRP list holding every further page, each list page's last
  // entry pointing to the next list page when more follow.
  if (pages > 2 && ListPages(pages - 1) > prp_list_pages_) {
    return Status::InvalidArgument();
  }
  auto* list = static_cast<uint64_t*>(prp_list_.cpu);
  size_t slot = 0;
  *prp2 = 0;
  ForEachPrp(segments, [&](size_t index, uint64_t addr) {
    if (index == 0) {
      *prp1 = addr;
      return;
    }
    if (pages == 2) {
      *prp2 = addr;
      return;
    }
    const size_t remaining = pages - index;  // this entry and those after it
    if (slot % ds::kPrpEntriesPerPage == ds::kPrpEntriesPerPage - 1 && remaining > 1) {
      list[slot] = prp_list_.device_addr + (slot + 1) * sizeof(uint64_t);
      ++slot;
    }
    list[slot++] = addr;
  });
  if (pages > 2) {
    *prp2 = prp_list_.device_addr;
  }
  *list_entries = slot;
  return Status::Ok();
}

Status Controller::CheckTransfer(const NamespaceInfo& ns, uint64_t lba, uint32_t blocks,
                                 uint64_t* bytes) {
  if (!ready_) {
    return Status::IoError();
  }
  if (blocks == 0 || blocks > kMaxBlocksPerCommand || ns.nsid == 0 || ns.block_bytes == 0) {
    return Status::InvalidArgument();
  }
  if (lba >= ns.blocks || blocks > ns.blocks - lba) {
    return Status::OutOfRange();
  }
  *bytes = uint64_t{blocks} * ns.block_bytes;
  if (*bytes > info_.max_transfer_bytes) {
    return Status::InvalidArgument();
  }
  return Status::Ok();
}

Status Controller::Transfer(uint8_t op, const NamespaceInfo& ns, uint64_t lba, uint32_t blocks,
                            std::span<const DmaSegment> segments, bool sync_data) {
  uint64_t bytes = 0;
  DEVISO_TRY(CheckTransfer(ns, lba, blocks, &bytes));
  uint64_t prp1 = 0;
  uint64_t prp2 = 0;
  size_t list_entries = 0;
  DEVISO_TRY(BuildPrps(segments, bytes, &prp1, &prp2, &list_entries));
  if (list_entries != 0) {
    dma_.SyncForDevice(prp_list_, 0, list_entries * sizeof(uint64_t));
  }
  if (op == opcode::kWrite && sync_data) {
    for (const DmaSegment& s : segments) {
      dma_.SyncForDevice(*s.region, s.offset, s.bytes);
    }
  }

  // 6.9 Read / 6.15 Write: CDW10-11 SLBA, CDW12 NLB [15:0] (0-based).
  ds::SubmissionEntry cmd{};
  cmd.set_cdw0(op, 0);
  cmd.set_nsid(ns.nsid);
  cmd.set_prp(prp1, prp2);
  cmd.set_cdw64(10, lba);
  cmd.cdw(12) = ds::RwCdw12{}.set_nlb(blocks - 1).raw;
  const Status s = Submit(io_, cmd, nullptr);
  if (!ready_) {
    (void)Recover();  // a timeout or fatal status: the reset aborts the command
  }
  DEVISO_TRY(s);
  if (op == opcode::kRead && sync_data) {
    for (const DmaSegment& s2 : segments) {
      dma_.SyncForCpu(*s2.region, s2.offset, s2.bytes);
    }
  }
  return Status::Ok();
}

Status Controller::TransferMapped(uint8_t op, DmaMapper& mapper, const NamespaceInfo& ns,
                                  uint64_t lba, uint32_t blocks, uint64_t pa) {
  // Everything that can be checked without the mapping is checked first: a refused request
  // maps nothing.
  uint64_t bytes = 0;
  DEVISO_TRY(CheckTransfer(ns, lba, blocks, &bytes));
  const uint64_t page = mapper.page_size();
  if ((pa & 3) != 0 || bytes - 1 > UINT64_MAX - pa || page == 0 || (page & (page - 1)) != 0) {
    return Status::InvalidArgument();
  }
  const uint64_t first = pa & ~(page - 1);
  const uint64_t last = (pa + bytes - 1) & ~(page - 1);  // the buffer's last page
  if (last > UINT64_MAX - page) {
    return Status::InvalidArgument();
  }
  DEVISO_ASSIGN_OR_RETURN(const DmaMapping mapping,
                          mapper.MapForDevice(first, static_cast<size_t>(last + page - first),
                                              op == opcode::kWrite ? DmaDirection::kToDevice
                                                                   : DmaDirection::kFromDevice));
  // One contiguous range in the device's address space: one PRP transfer.
  const DmaRegion region{nullptr, mapping.device_addr + (pa - first), static_cast<size_t>(bytes)};
  const DmaSegment segment{&region, 0, static_cast<size_t>(bytes)};
  // Transfer() ends a timeout or a fatal status with Recover(), which resets the controller
  // (CC.EN=0, CSTS.RDY=0: every command aborted) before it returns, and any other completion
  // means the controller is done with the command: the mapping may go in every case.
  const Status done = Transfer(op, ns, lba, blocks, {&segment, 1}, /*sync_data=*/false);
  const Status unmapped = mapper.UnmapForDevice(mapping);
  if (!unmapped.ok()) {
    port::Log("nvme: unmapping the buffer at 0x%llx failed: %s\n",
              static_cast<unsigned long long>(pa), unmapped.str());
  }
  DEVISO_TRY(done);
  return unmapped;
}

Status Controller::ReadMapped(DmaMapper& mapper, const NamespaceInfo& ns, uint64_t lba,
                              uint32_t blocks, uint64_t pa) {
  return TransferMapped(opcode::kRead, mapper, ns, lba, blocks, pa);
}

Status Controller::WriteMapped(DmaMapper& mapper, const NamespaceInfo& ns, uint64_t lba,
                               uint32_t blocks, uint64_t pa) {
  return TransferMapped(opcode::kWrite, mapper, ns, lba, blocks, pa);
}

Status Controller::Read(const NamespaceInfo& ns, uint64_t lba, uint32_t blocks,
                        std::span<const DmaSegment> segments) {
  return Transfer(opcode::kRead, ns, lba, blocks, segments);
}

Status Controller::Write(const NamespaceInfo& ns, uint64_t lba, uint32_t blocks,
                         std::span<const DmaSegment> segments) {
  return Transfer(opcode::kWrite, ns, lba, blocks, segments);
}

}  // namespace deviso::drivers::nvme
