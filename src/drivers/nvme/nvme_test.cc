// Host tests of the NVMe driver against a register-level fake controller.
//
// The fake implements the register file of NVMe 1.4c 3.1 (CAP with a configurable doorbell
// stride and timeout, CC.EN/CSTS.RDY with a delay, CC.SHN/CSTS.SHST, AQA/ASQ/ACQ as 32-bit
// halves) and processes a submission queue the moment its tail doorbell is written: it reads
// the entries the driver built (device addresses are host pointers here), executes Identify,
// Set Features, Create/Delete I/O queues, Read and Write against a RAM disk, walks PRP1/PRP2
// and chained PRP lists (4.3), and posts completions with phase tags. It can hang a command,
// fail the controller (CSTS.CFS), return any status, or refuse to become ready / to stop.

#include "drivers/nvme/nvme.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "drivers/testing/recording_mapper.h"
#include "ports/host/test_clock.h"

namespace deviso::drivers::nvme {
namespace {

constexpr uint64_t kDiskBlocks = 8192;  // 4 MiB of 512-byte blocks
constexpr size_t kPage = kPageBytes;

template <typename T>
T* At(uint64_t device_addr) {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(device_addr));
}

// Final, and never deleted through Mmio.
class FakeNvme final : public Mmio {  // NOLINT(cppcoreguidelines-virtual-class-destructor)
 public:
  FakeNvme() : disk_(kDiskBlocks * 512) {
    for (size_t i = 0; i < disk_.size(); ++i) {
      disk_[i] = static_cast<uint8_t>(i * 13 + i / 512);
    }
  }

  // --- Configuration ---
  unsigned dstrd = 0;
  uint64_t mqes = 2047;
  uint64_t to = 1;  // 500 ms
  uint64_t css = 1;
  uint64_t mpsmin = 0;
  uint8_t mdts = 0;
  uint8_t flbas = 0;    // LBA format 0: 512 B; 1: 4096 B
  int ready_delay = 3;  // CSTS reads before RDY follows EN
  bool never_ready = false;
  bool stuck_enabled = false;  // ignores EN 1 -> 0
  bool ignore_shutdown = false;
  // One-shot faults on the next I/O command.
  bool hang_next = false;
  bool cfs_next = false;
  uint32_t status_next = 0;     // Status Field (SC | SCT << 8) for the next I/O command
  bool wrong_cid_next = false;  // complete the next I/O command with another CID

  // If set, data (PRP) addresses go through it, as through an IOMMU: it returns the host
  // memory for [addr, addr + n) accessed in that direction, or null (blocked: nothing moves).
  std::function<uint8_t*(uint64_t addr, size_t n, bool device_writes)> translate;

  // --- Observations ---
  int enables = 0;
  int disables = 0;  // CC.EN 1 -> 0 that took effect (a reset)
  int blocked = 0;   // data accesses `translate` refused
  int bad_doorbells = 0;
  int doorbells = 0;
  std::vector<uint8_t> opcodes;  // admin opcodes, in order
  std::vector<uint64_t> last_prps;
  uint64_t last_prp2 = 0;
  bool saw_shutdown = false;
  uint32_t intms = 0;
  bool msix = false;         // accept I/O CQs with IEN = 1 (MSI-X)
  uint32_t io_cq_cdw11 = 0;  // CDW11 of the last Create I/O CQ

  std::vector<uint8_t>& disk() { return disk_; }
  bool enabled() const { return enabled_; }
  uint32_t cc() const { return cc_; }
  uint32_t aqa() const { return aqa_; }
  bool io_sq_exists() const { return sqs_.count(1) != 0; }
  uint32_t io_sq_entries() const { return sqs_.at(1).entries; }
  uint32_t block_bytes() const { return flbas == 1 ? 4096 : 512; }
  // Whether a queue the controller is using lies in [addr, addr + size).
  bool UsesQueueIn(uint64_t addr, size_t size) const {
    const auto inside = [&](uint64_t base) { return base >= addr && base - addr < size; };
    for (const auto& [id, sq] : sqs_) {
      if (inside(sq.base)) return true;
    }
    for (const auto& [id, cq] : cqs_) {
      if (inside(cq.base)) return true;
    }
    return false;
  }

  uint32_t Read32(size_t off) override {
    const uint64_t cap = reg::Cap{}
                             .set_mqes(mqes)
                             .set_cqr(1)
                             .set_to(to)
                             .set_dstrd(dstrd)
                             .set_css(css)
                             .set_mpsmin(mpsmin)
                             .set_mpsmax(4)
                             .raw;
    switch (off) {
      case 0x00:
        return static_cast<uint32_t>(cap);
      case 0x04:
        return static_cast<uint32_t>(cap >> 32);
      case reg::Vs::kOffset:
        return 0x00010400;
      case reg::Cc::kOffset:
        return cc_;
      case reg::Csts::kOffset:
        if (pending_rdy_ >= 0 && --countdown_ <= 0) {
          csts_ = reg::Csts{csts_}.set_rdy(static_cast<uint32_t>(pending_rdy_)).raw;
          pending_rdy_ = -1;
        }
        return csts_;
      case reg::Aqa::kOffset:
        return aqa_;
      default:
        return 0;
    }
  }

  void Write32(size_t off, uint32_t v) override {
    if (off >= reg::kDoorbellBase) {
      Doorbell(off, v);
      return;
    }
    switch (off) {
      case reg::Intms::kOffset:
        intms |= v;
        return;
      case reg::Aqa::kOffset:
        aqa_ = v;
        return;
      case reg::Asq::kOffset:
        asq_ = (asq_ & ~0xffffffffULL) | v;
        return;
      case reg::Asq::kOffset + 4:
        asq_ = (asq_ & 0xffffffffULL) | (uint64_t{v} << 32);
        return;
      case reg::Acq::kOffset:
        acq_ = (acq_ & ~0xffffffffULL) | v;
        return;
      case reg::Acq::kOffset + 4:
        acq_ = (acq_ & 0xffffffffULL) | (uint64_t{v} << 32);
        return;
      case reg::Cc::kOffset:
        WriteCc(v);
        return;
      default:
        return;
    }
  }
  uint64_t Read64(size_t) override {
    ADD_FAILURE() << "64-bit register access";
    return 0;
  }
  void Write64(size_t, uint64_t) override { ADD_FAILURE() << "64-bit register access"; }

 private:
  struct Sq {
    uint64_t base = 0;
    uint32_t entries = 0;
    uint32_t head = 0;
    uint16_t cqid = 0;
  };
  struct Cq {
    uint64_t base = 0;
    uint32_t entries = 0;
    uint32_t tail = 0;
    uint32_t phase = 1;
  };

  void SetRdyLater(int rdy) {
    pending_rdy_ = rdy;
    countdown_ = ready_delay;
  }

  void WriteCc(uint32_t v) {
    const reg::Cc old{cc_};
    const reg::Cc now{v};
    cc_ = v;
    if (old.en() == 0 && now.en() == 1) {
      ++enables;
      enabled_ = true;
      sqs_.clear();
      cqs_.clear();
      const reg::Aqa aqa{aqa_};
      sqs_[0] = Sq{asq_, aqa.asqs() + 1, 0, 0};
      cqs_[0] = Cq{acq_, aqa.acqs() + 1, 0, 1};
      EXPECT_EQ(now.iosqes(), 6U);
      EXPECT_EQ(now.iocqes(), 4U);
      EXPECT_EQ(now.mps(), 0U);
      EXPECT_EQ(asq_ % kPage, 0U);
      EXPECT_EQ(acq_ % kPage, 0U);
      if (!never_ready) {
        SetRdyLater(1);
      }
    } else if (old.en() == 1 && now.en() == 0) {
      if (stuck_enabled) {
        cc_ = reg::Cc{v}.set_en(1).raw;  // pretend the reset never completes
        return;
      }
      enabled_ = false;
      ++disables;
      sqs_.clear();
      cqs_.clear();
      csts_ = 0;  // CFS and SHST clear with the reset
      SetRdyLater(0);
    }
    if (now.en() == 1 && now.shn() != reg::Shn::kNone) {
      saw_shutdown = true;
      if (!ignore_shutdown) {
        csts_ = reg::Csts{csts_}.set_shst(reg::Shst::kComplete).raw;
      }
    }
  }

  void Doorbell(size_t off, uint32_t v) {
    ++doorbells;
    const size_t stride = size_t{4} << dstrd;
    if ((off - reg::kDoorbellBase) % stride != 0) {
      ++bad_doorbells;
      return;
    }
    const size_t index = (off - reg::kDoorbellBase) / stride;
    const auto qid = static_cast<uint16_t>(index / 2);
    if (!enabled_ || reg::Csts{csts_}.cfs() != 0) {
      return;
    }
    if (index % 2 == 1) {
      if (cqs_.count(qid) == 0) ++bad_doorbells;
      return;  // CQ head: nothing to do, the fake never fills a queue
    }
    auto it = sqs_.find(qid);
    if (it == sqs_.end()) {
      ++bad_doorbells;
      return;
    }
    Sq& sq = it->second;
    const uint32_t tail = v;
    while (sq.head != tail) {
      ds::SubmissionEntry cmd;
      std::memcpy(&cmd, At<uint8_t>(sq.base + uint64_t{sq.head} * 64), sizeof(cmd));
      sq.head = (sq.head + 1) % sq.entries;
      uint32_t dw0 = 0;
      uint32_t status = 0;
      if (qid == 0) {
        opcodes.push_back(cmd.opcode());
        status = Admin(cmd, &dw0);
      } else {
        if (hang_next) {
          hang_next = false;
          continue;
        }
        if (cfs_next) {
          cfs_next = false;
          csts_ = reg::Csts{csts_}.set_cfs(1).raw;
          return;
        }
        status = status_next != 0 ? status_next : Io(cmd);
        status_next = 0;
      }
      uint16_t cid = cmd.cid();
      if (qid != 0 && wrong_cid_next) {
        wrong_cid_next = false;
        cid = static_cast<uint16_t>(cid + 1);
      }
      Complete(sq, qid, cid, dw0, status);
      if (sqs_.count(qid) == 0) return;  // the queue was deleted by this command
    }
  }

  void Complete(const Sq& sq, uint16_t sqid, uint16_t cid, uint32_t dw0, uint32_t status) {
    Cq& cq = cqs_.at(sq.cqid);
    auto* e = At<ds::CompletionEntry>(cq.base + uint64_t{cq.tail} * 16);
    e->raw[0] = dw0;
    e->raw[1] = 0;
    e->raw[2] = sq.head | (uint32_t{sqid} << 16);
    e->raw[3] = cid | (cq.phase << 16) | (status << 17);
    if (++cq.tail == cq.entries) {
      cq.tail = 0;
      cq.phase ^= 1;
    }
  }

  // An identify string without its terminating NUL (the field is blank padded).
  static void CopyAscii(uint8_t* field, const char* text) {
    for (size_t i = 0; text[i] != '\0'; ++i) field[i] = static_cast<uint8_t>(text[i]);
  }

  static uint32_t Sc(uint32_t sct, uint32_t sc) { return sc | (sct << 8); }

  uint32_t Admin(const ds::SubmissionEntry& cmd, uint32_t* dw0) {
    switch (cmd.opcode()) {
      case opcode::kIdentify:
        return IdentifyCmd(cmd);
      case opcode::kSetFeatures:
        if ((cmd.cdw(10) & 0xff) != feature::kNumberOfQueues) return Sc(0, ds::sc::kInvalidField);
        *dw0 = 0;  // one SQ and one CQ
        return 0;
      case opcode::kCreateIoCq: {
        const auto qid = static_cast<uint16_t>(cmd.cdw(10));
        if (qid == 0 || cqs_.count(qid) != 0) return Sc(1, ds::sc_cmd::kInvalidQueueId);
        if ((cmd.cdw(11) & 1) == 0 || ((cmd.cdw(11) & 2) != 0 && !msix)) {
          return Sc(0, ds::sc::kInvalidField);
        }
        io_cq_cdw11 = cmd.cdw(11);
        cqs_[qid] = Cq{cmd.prp1(), (cmd.cdw(10) >> 16) + 1, 0, 1};
        return 0;
      }
      case opcode::kCreateIoSq: {
        const auto qid = static_cast<uint16_t>(cmd.cdw(10));
        const auto cqid = static_cast<uint16_t>(cmd.cdw(11) >> 16);
        if (qid == 0 || sqs_.count(qid) != 0) return Sc(1, ds::sc_cmd::kInvalidQueueId);
        if (cqs_.count(cqid) == 0) return Sc(1, ds::sc_cmd::kInvalidCq);
        sqs_[qid] = Sq{cmd.prp1(), (cmd.cdw(10) >> 16) + 1, 0, cqid};
        return 0;
      }
      case opcode::kDeleteIoSq:
        return sqs_.erase(static_cast<uint16_t>(cmd.cdw(10))) != 0
                   ? 0
                   : Sc(1, ds::sc_cmd::kInvalidQueueId);
      case opcode::kDeleteIoCq: {
        const auto qid = static_cast<uint16_t>(cmd.cdw(10));
        for (const auto& [id, sq] : sqs_) {
          if (sq.cqid == qid && id != 0) return Sc(1, 0x0c);  // Invalid Queue Deletion
        }
        return cqs_.erase(qid) != 0 ? 0 : Sc(1, ds::sc_cmd::kInvalidQueueId);
      }
      default:
        return Sc(0, ds::sc::kInvalidOpcode);
    }
  }

  uint32_t IdentifyCmd(const ds::SubmissionEntry& cmd) {
    uint8_t data[identify::kBytes] = {};
    const uint32_t cns = cmd.cdw(10) & 0xff;
    if (cns == identify::kCnsController) {
      data[identify::kVid] = 0x36;
      data[identify::kVid + 1] = 0x1b;
      std::memset(data + identify::kSn, ' ', 20);
      CopyAscii(data + identify::kSn, "FAKESN01");
      std::memset(data + identify::kMn, ' ', 40);
      CopyAscii(data + identify::kMn, "deviso fake nvme");
      std::memset(data + identify::kFr, ' ', 8);
      CopyAscii(data + identify::kFr, "1.0");
      data[identify::kMdts] = mdts;
      data[identify::kCntlid] = 7;
      data[identify::kSqes] = 0x66;
      data[identify::kCqes] = 0x44;
      data[identify::kNn] = 2;
    } else if (cns == identify::kCnsNamespace) {
      if (cmd.nsid() == 0 || cmd.nsid() > 2) return Sc(0, ds::sc::kInvalidNamespace);
      if (cmd.nsid() == 1) {
        const uint64_t blocks = kDiskBlocks * 512 / block_bytes();
        std::memcpy(data + identify::kNsze, &blocks, 8);
        std::memcpy(data + identify::kNcap, &blocks, 8);
        data[identify::kNlbaf] = 1;
        data[identify::kFlbas] = flbas;
        data[identify::kLbaf0 + 2] = 9;
        data[identify::kLbaf0 + 4 + 2] = 12;
      }  // namespace 2 is inactive: all zeroes
    } else {
      return Sc(0, ds::sc::kInvalidField);
    }
    EXPECT_EQ(cmd.prp1() % kPage, 0U);
    std::memcpy(At<uint8_t>(cmd.prp1()), data, sizeof(data));
    return 0;
  }

  // 4.3: the pages of a transfer of `bytes` described by PRP1/PRP2.
  bool WalkPrps(const ds::SubmissionEntry& cmd, uint64_t bytes) {
    last_prps.clear();
    last_prp2 = cmd.prp2();
    const uint64_t prp1 = cmd.prp1();
    if ((prp1 & 3) != 0) return false;
    last_prps.push_back(prp1);
    const uint64_t first = std::min<uint64_t>(bytes, kPage - prp1 % kPage);
    uint64_t remaining = bytes - first;
    if (remaining == 0) return true;
    if (remaining <= kPage) {
      if (cmd.prp2() % kPage != 0) return false;
      last_prps.push_back(cmd.prp2());
      return true;
    }
    const uint64_t* list = At<uint64_t>(cmd.prp2());
    size_t slot = (cmd.prp2() % kPage) / 8;
    while (remaining > 0) {
      if (slot == ds::kPrpEntriesPerPage - 1 && remaining > kPage) {
        list = At<uint64_t>(list[slot]);  // the last entry of a full list page: the next page
        slot = 0;
        continue;
      }
      if (list[slot] % kPage != 0) return false;
      last_prps.push_back(list[slot++]);
      remaining -= std::min<uint64_t>(remaining, kPage);
    }
    return true;
  }

  uint32_t Io(const ds::SubmissionEntry& cmd) {
    if (cmd.opcode() != opcode::kRead && cmd.opcode() != opcode::kWrite) {
      return Sc(0, ds::sc::kInvalidOpcode);
    }
    if (cmd.nsid() != 1) return Sc(0, ds::sc::kInvalidNamespace);
    const uint64_t slba = cmd.cdw(10) | (uint64_t{cmd.cdw(11)} << 32);
    const uint64_t nlb = (cmd.cdw(12) & 0xffff) + 1;
    const uint64_t block = block_bytes();
    if (slba + nlb > disk_.size() / block) return Sc(0, ds::sc::kLbaOutOfRange);
    const uint64_t bytes = nlb * block;
    if (!WalkPrps(cmd, bytes)) return Sc(0, ds::sc::kInvalidPrpOffset);
    uint8_t* media = disk_.data() + slba * block;
    uint64_t done = 0;
    for (const uint64_t addr : last_prps) {
      const uint64_t n = std::min<uint64_t>(bytes - done, kPage - addr % kPage);
      const bool device_writes = cmd.opcode() == opcode::kRead;
      uint8_t* mem = translate ? translate(addr, n, device_writes) : At<uint8_t>(addr);
      if (mem == nullptr) {
        ++blocked;  // like QEMU behind an IOMMU: the command still completes with Success
      } else if (device_writes) {
        std::memcpy(mem, media + done, n);
      } else {
        std::memcpy(media + done, mem, n);
      }
      done += n;
    }
    return done == bytes ? 0 : Sc(0, ds::sc::kDataTransferError);
  }

  std::vector<uint8_t> disk_;
  uint32_t cc_ = 0;
  uint32_t csts_ = 0;
  uint32_t aqa_ = 0;
  uint64_t asq_ = 0;
  uint64_t acq_ = 0;
  bool enabled_ = false;
  int pending_rdy_ = -1;
  int countdown_ = 0;
  std::map<uint16_t, Sq> sqs_;
  std::map<uint16_t, Cq> cqs_;
};

// Host memory as DMA memory (device address = host pointer). Counts what is live, can fail
// allocations, and records any region freed while the fake controller still uses a queue in it.
class HostDma final : public DmaAllocator {  // NOLINT(cppcoreguidelines-virtual-class-destructor)
 public:
  explicit HostDma(const FakeNvme& fake) : fake_(fake) {}
  Result<DmaRegion> Alloc(size_t size, size_t align) override {
    if (fail_after >= 0 && allocs >= fail_after) return Status::NoMemory();
    ++allocs;
    void* p = std::aligned_alloc(align, (size + align - 1) / align * align);
    std::memset(p, 0, size);
    ++live;
    return DmaRegion{p, reinterpret_cast<uintptr_t>(p), size};
  }
  void Free(const DmaRegion& r) override {
    if (fake_.UsesQueueIn(r.device_addr, r.size)) ++freed_while_enabled;
    std::free(r.cpu);
    --live;
  }
  void SyncForDevice(const DmaRegion&, size_t, size_t) override {}
  void SyncForCpu(const DmaRegion&, size_t, size_t) override {}
  int live = 0;
  int allocs = 0;
  int fail_after = -1;
  int freed_while_enabled = 0;

 private:
  const FakeNvme& fake_;
};

// A data buffer (not from the driver's allocator).
struct Buffer {
  explicit Buffer(size_t bytes) : storage(static_cast<uint8_t*>(std::aligned_alloc(kPage, bytes))) {
    std::memset(storage, 0x5a, bytes);
    region = DmaRegion{storage, reinterpret_cast<uintptr_t>(storage), bytes};
  }
  ~Buffer() { std::free(storage); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  uint8_t* storage;
  DmaRegion region;
};

// The hook as an IOMMU would implement it (src/drivers/testing/recording_mapper.h); FakeNvme
// resolves the device's accesses through its live mappings only.
using deviso::drivers::testing::RecordingMapper;
constexpr uint64_t kIovaBase = RecordingMapper::kIovaBase;

class NvmeTest : public ::testing::Test {
 protected:
  // Deadlines read a test clock that moves 1 us per reading (ports/host/test_clock.h): a
  // timeout is a number of polls, so a fake that completes within a few polls never loses it
  // to a loaded machine, and a hung one times out at once. First member: it outlives the rest.
  deviso::port::host::TestClock clock_{1'000};
  void TearDown() override {
    EXPECT_EQ(dma_.freed_while_enabled, 0) << "queue memory freed while the controller ran";
  }
  // Brings a controller up and identifies namespace 1.
  void Up(Controller& c) {
    ASSERT_EQ(c.Init(), Status::Ok());
    Result<NamespaceInfo> ns = c.IdentifyNamespace(1);
    ASSERT_TRUE(ns.ok());
    ns_ = *ns;
  }
  const uint8_t* Disk(uint64_t lba) { return fake_.disk().data() + lba * fake_.block_bytes(); }

  FakeNvme fake_;
  HostDma dma_{fake_};
  NamespaceInfo ns_;
};

TEST_F(NvmeTest, InitIdentifiesTheControllerAndCreatesTheIoQueuePair) {
  {
    Controller c(fake_, dma_);
    ASSERT_EQ(c.Init(), Status::Ok());
    EXPECT_TRUE(c.ready());
    EXPECT_STREQ(c.info().serial, "FAKESN01");  // trailing blanks trimmed
    EXPECT_STREQ(c.info().model, "deviso fake nvme");
    EXPECT_STREQ(c.info().firmware, "1.0");
    EXPECT_EQ(c.info().vendor_id, 0x1b36);
    EXPECT_EQ(c.info().controller_id, 7);
    EXPECT_EQ(c.info().namespaces, 2U);
    EXPECT_EQ(c.info().version, 0x00010400U);
    EXPECT_EQ(c.info().ready_timeout_ns, 500'000'000U);  // CAP.TO = 1: 500 ms
    EXPECT_EQ(c.info().max_transfer_bytes, 256U * 1024);
    EXPECT_EQ(fake_.aqa(), (15U << 16) | 15U);  // 16 entries each, 0-based
    EXPECT_EQ(fake_.intms, 0xffffffffU);
    ASSERT_TRUE(fake_.io_sq_exists());
    EXPECT_EQ(fake_.io_sq_entries(), 32U);
    const std::vector<uint8_t> expected = {opcode::kIdentify, opcode::kSetFeatures,
                                           opcode::kCreateIoCq, opcode::kCreateIoSq};
    EXPECT_EQ(fake_.opcodes, expected);
  }
  EXPECT_EQ(dma_.live, 0);
}

// The doorbells move with CAP.DSTRD: a driver that ignored it would ring the wrong register
// and every command after the first would time out.
class NvmeStrideTest : public NvmeTest, public ::testing::WithParamInterface<unsigned> {};

TEST_P(NvmeStrideTest, DoorbellsFollowTheStride) {
  fake_.dstrd = GetParam();
  Controller c(fake_, dma_);
  Up(c);
  EXPECT_EQ(c.info().doorbell_stride_log2, GetParam());
  Buffer buf(kPage);
  const DmaSegment sg[] = {{&buf.region, 0, 4096}};
  ASSERT_EQ(c.Read(ns_, 3, 8, sg), Status::Ok());
  EXPECT_EQ(std::memcmp(buf.storage, Disk(3), 4096), 0);
  EXPECT_EQ(fake_.bad_doorbells, 0);
}
INSTANTIATE_TEST_SUITE_P(Strides, NvmeStrideTest, ::testing::Values(0U, 1U, 3U));

// MSI-X (ControllerOptions::io_msix): the I/O CQ is created with IEN and the vector, INTMS is
// never touched (NVMe 1.4c 3.1.3), and commands still complete by polling.
TEST_F(NvmeTest, MsixCreatesTheIoCompletionQueueWithItsVector) {
  fake_.msix = true;
  ControllerOptions options;
  options.io_msix = true;
  options.io_msix_vector = 3;
  Controller c(fake_, dma_, options);
  Up(c);
  EXPECT_EQ(fake_.io_cq_cdw11, (3U << 16) | 2U | 1U);  // IV 3, IEN, PC
  EXPECT_EQ(fake_.intms, 0U);
  Buffer buf(kPage);
  const DmaSegment sg[] = {{&buf.region, 0, 4096}};
  ASSERT_EQ(c.Read(ns_, 3, 8, sg), Status::Ok());
  EXPECT_EQ(std::memcmp(buf.storage, Disk(3), 4096), 0);
}

TEST_F(NvmeTest, PolledQueuesHaveInterruptsOff) {
  Controller c(fake_, dma_);
  Up(c);
  EXPECT_EQ(fake_.io_cq_cdw11, 1U);  // PC only
}

TEST_F(NvmeTest, IdentifyNamespaceReadsSizeAndFormat) {
  Controller c(fake_, dma_);
  Up(c);
  EXPECT_EQ(ns_.nsid, 1U);
  EXPECT_EQ(ns_.blocks, kDiskBlocks);
  EXPECT_EQ(ns_.block_bytes, 512U);
  EXPECT_EQ(c.IdentifyNamespace(2).status(), Status::NotFound());  // inactive: NSZE 0
  EXPECT_EQ(c.IdentifyNamespace(5).status(), Status::NotFound());  // Invalid Namespace
  EXPECT_EQ(c.last_error().sc(), ds::sc::kInvalidNamespace);
  EXPECT_EQ(c.IdentifyNamespace(0).status(), Status::NotFound());
  fake_.flbas = 1;
  const Result<NamespaceInfo> ns4k = c.IdentifyNamespace(1);
  ASSERT_TRUE(ns4k.ok());
  EXPECT_EQ(ns4k->block_bytes, 4096U);
  EXPECT_EQ(ns4k->blocks, kDiskBlocks / 8);
}

// PRP1 only; PRP1 + PRP2 as a second page; PRP2 as a PRP list (4.3).
TEST_F(NvmeTest, ReadUsesPrp1Prp2AndPrpLists) {
  Controller c(fake_, dma_);
  Up(c);
  Buffer buf(17 * kPage);
  {
    const DmaSegment sg[] = {{&buf.region, 512, 1024}};  // inside one page
    ASSERT_EQ(c.Read(ns_, 10, 2, sg), Status::Ok());
    EXPECT_EQ(fake_.last_prps.size(), 1U);
    EXPECT_EQ(fake_.last_prps[0], buf.region.device_addr + 512);
    EXPECT_EQ(fake_.last_prp2, 0U);
    EXPECT_EQ(std::memcmp(buf.storage + 512, Disk(10), 1024), 0);
    EXPECT_EQ(buf.storage[511], 0x5a);
    EXPECT_EQ(buf.storage[1536], 0x5a);
  }
  {
    const DmaSegment sg[] = {{&buf.region, 3072, 2048}};  // crosses into a second page
    ASSERT_EQ(c.Read(ns_, 20, 4, sg), Status::Ok());
    ASSERT_EQ(fake_.last_prps.size(), 2U);
    EXPECT_EQ(fake_.last_prp2, buf.region.device_addr + kPage);  // PRP2 is the page itself
    EXPECT_EQ(std::memcmp(buf.storage + 3072, Disk(20), 2048), 0);
  }
  {
    const DmaSegment sg[] = {{&buf.region, 1024, size_t{64} * 1024}};  // 17 pages: a list
    ASSERT_EQ(c.Read(ns_, 100, 128, sg), Status::Ok());
    ASSERT_EQ(fake_.last_prps.size(), 17U);
    EXPECT_NE(fake_.last_prp2, buf.region.device_addr + kPage);  // PRP2 points to a list
    for (size_t i = 1; i < 17; ++i) {
      EXPECT_EQ(fake_.last_prps[i], buf.region.device_addr + i * kPage) << i;
    }
    EXPECT_EQ(std::memcmp(buf.storage + 1024, Disk(100), size_t{64} * 1024), 0);
  }
}

// More than 512 list entries: the last entry of the first list page points to the next.
TEST_F(NvmeTest, LongTransfersChainPrpListPages) {
  ControllerOptions o;
  o.max_transfer_bytes = 4U << 20;
  Controller c(fake_, dma_, o);
  Up(c);
  const size_t bytes = 3U << 20;  // 768 pages, 767 list entries: two list pages
  Buffer buf(bytes + kPage);
  const DmaSegment sg[] = {{&buf.region, 0, bytes}};
  ASSERT_EQ(c.Read(ns_, 64, static_cast<uint32_t>(bytes / 512), sg), Status::Ok());
  ASSERT_EQ(fake_.last_prps.size(), 768U);
  for (size_t i = 0; i < 768; ++i) {
    ASSERT_EQ(fake_.last_prps[i], buf.region.device_addr + i * kPage) << i;
  }
  EXPECT_EQ(std::memcmp(buf.storage, Disk(64), bytes), 0);
}

TEST_F(NvmeTest, SegmentsFormOnePrpTransfer) {
  Controller c(fake_, dma_);
  Up(c);
  Buffer a(2 * kPage);
  Buffer b(2 * kPage);
  // 3 KiB ending a's first page, b's first page whole, 1 KiB of b's second: 8 KiB.
  const DmaSegment sg[] = {{&a.region, 1024, 3072}, {&b.region, 0, 4096}, {&b.region, 4096, 1024}};
  ASSERT_EQ(c.Read(ns_, 40, 16, sg), Status::Ok());
  EXPECT_EQ(fake_.last_prps.size(), 3U);
  EXPECT_EQ(std::memcmp(a.storage + 1024, Disk(40), 3072), 0);
  EXPECT_EQ(std::memcmp(b.storage, Disk(40) + 3072, 5120), 0);
}

// Anything PRPs cannot describe, or the namespace cannot hold, is refused before a doorbell.
TEST_F(NvmeTest, InvalidRequestsAreRefusedWithoutIssuing) {
  Controller c(fake_, dma_);
  Up(c);
  Buffer buf(4 * kPage);
  const int doorbells = fake_.doorbells;
  const DmaSegment mid_page_start[] = {{&buf.region, 0, 4096}, {&buf.region, 4096 + 512, 512}};
  EXPECT_EQ(c.Read(ns_, 0, 9, mid_page_start), Status::InvalidArgument());
  const DmaSegment mid_page_end[] = {{&buf.region, 0, 512}, {&buf.region, 4096, 512}};
  EXPECT_EQ(c.Read(ns_, 0, 2, mid_page_end), Status::InvalidArgument());
  const DmaSegment unaligned[] = {{&buf.region, 2, 512}};
  EXPECT_EQ(c.Read(ns_, 0, 1, unaligned), Status::InvalidArgument());
  const DmaSegment one_block[] = {{&buf.region, 0, 512}};
  EXPECT_EQ(c.Read(ns_, 0, 2, one_block), Status::InvalidArgument());  // 512 of 1024 bytes
  const DmaSegment outside[] = {{&buf.region, 4 * kPage - 256, 512}};
  EXPECT_EQ(c.Read(ns_, 0, 1, outside), Status::InvalidArgument());
  EXPECT_EQ(c.Read(ns_, 0, 0, one_block), Status::InvalidArgument());
  EXPECT_EQ(c.Read(ns_, kDiskBlocks, 1, one_block), Status::OutOfRange());
  EXPECT_EQ(c.Read(ns_, kDiskBlocks - 1, 2, one_block), Status::OutOfRange());
  EXPECT_EQ(c.Read(ns_, ~uint64_t{0}, 1, one_block), Status::OutOfRange());
  EXPECT_EQ(c.Read(ns_, 0, 1, {}), Status::InvalidArgument());
  Buffer big(1U << 20);
  const DmaSegment too_big[] = {{&big.region, 0, size_t{512} * 1024}};  // above max_transfer_bytes
  EXPECT_EQ(c.Read(ns_, 0, 1024, too_big), Status::InvalidArgument());
  EXPECT_EQ(fake_.doorbells, doorbells);
  Controller idle(fake_, dma_);
  EXPECT_EQ(idle.Read(ns_, 0, 1, one_block), Status::IoError());  // not initialised
}

TEST_F(NvmeTest, MdtsLimitsTheTransferSize) {
  fake_.mdts = 2;  // 4 pages of 4 KiB
  Controller c(fake_, dma_);
  Up(c);
  EXPECT_EQ(c.info().max_transfer_bytes, 16U * 1024);
  Buffer buf(size_t{32} * 1024);
  const DmaSegment ok[] = {{&buf.region, 0, size_t{16} * 1024}};
  EXPECT_EQ(c.Read(ns_, 0, 32, ok), Status::Ok());
  const DmaSegment too_big[] = {{&buf.region, 0, size_t{32} * 1024}};
  EXPECT_EQ(c.Read(ns_, 0, 64, too_big), Status::InvalidArgument());
}

TEST_F(NvmeTest, WriteThenReadBack) {
  Controller c(fake_, dma_);
  Up(c);
  Buffer out(2 * kPage);
  for (size_t i = 0; i < 2 * kPage; ++i) out.storage[i] = static_cast<uint8_t>(i ^ 0xa5);
  const DmaSegment w[] = {{&out.region, 0, 2 * kPage}};
  ASSERT_EQ(c.Write(ns_, 500, 16, w), Status::Ok());
  EXPECT_EQ(std::memcmp(Disk(500), out.storage, 2 * kPage), 0);
  EXPECT_NE(*Disk(516), out.storage[0] ^ 1);  // nothing beyond: disk byte still the pattern
  Buffer in(2 * kPage);
  const DmaSegment r[] = {{&in.region, 0, 2 * kPage}};
  ASSERT_EQ(c.Read(ns_, 500, 16, r), Status::Ok());
  EXPECT_EQ(std::memcmp(in.storage, out.storage, 2 * kPage), 0);
}

TEST_F(NvmeTest, StatusCodesBecomeErrnos) {
  const auto status = [](uint32_t sct, uint32_t sc) {
    return ds::Status{}.set_sct(sct).set_sc(sc);
  };
  EXPECT_EQ(Controller::StatusToErrno(status(0, 0)), Status::Ok());
  EXPECT_EQ(Controller::StatusToErrno(status(0, 0x01)), Status::NotSupported());
  EXPECT_EQ(Controller::StatusToErrno(status(0, 0x02)), Status::InvalidArgument());
  EXPECT_EQ(Controller::StatusToErrno(status(0, 0x13)), Status::InvalidArgument());
  EXPECT_EQ(Controller::StatusToErrno(status(0, 0x0b)), Status::NotFound());
  EXPECT_EQ(Controller::StatusToErrno(status(0, 0x80)), Status::OutOfRange());
  EXPECT_EQ(Controller::StatusToErrno(status(0, 0x81)), Status::OutOfRange());
  EXPECT_EQ(Controller::StatusToErrno(status(0, 0x82)), Status::Busy());
  EXPECT_EQ(Controller::StatusToErrno(status(0, 0x04)), Status::IoError());
  EXPECT_EQ(Controller::StatusToErrno(status(0, 0x06)), Status::IoError());
  EXPECT_EQ(Controller::StatusToErrno(status(1, 0x01)), Status::InvalidArgument());
  EXPECT_EQ(Controller::StatusToErrno(status(1, 0x0c)), Status::IoError());
  EXPECT_EQ(Controller::StatusToErrno(status(2, 0x81)), Status::IoError());  // unrecovered read
  EXPECT_EQ(Controller::StatusToErrno(status(3, 0x00)), Status::IoError());
}

// A status from the controller is returned as its errno; the queue pair stays usable.
TEST_F(NvmeTest, CompletionErrorsAreReportedAndTheQueueStaysUsable) {
  Controller c(fake_, dma_);
  Up(c);
  Buffer buf(kPage);
  const DmaSegment sg[] = {{&buf.region, 0, 512}};
  fake_.status_next = 0x81 | (2U << 8) | (1U << 14);  // media: Unrecovered Read Error, DNR
  EXPECT_EQ(c.Read(ns_, 1, 1, sg), Status::IoError());
  EXPECT_EQ(c.last_error().sct(), 2U);
  EXPECT_EQ(c.last_error().sc(), 0x81U);
  EXPECT_EQ(c.last_error().dnr(), 1U);
  NamespaceInfo lying = ns_;
  lying.blocks = kDiskBlocks * 2;  // the driver's range check passes; the controller's fails
  EXPECT_EQ(c.Read(lying, kDiskBlocks, 1, sg), Status::OutOfRange());
  EXPECT_EQ(c.errors(), 2U);
  EXPECT_TRUE(c.ready());
  EXPECT_EQ(c.Read(ns_, 1, 1, sg), Status::Ok());
  EXPECT_EQ(std::memcmp(buf.storage, Disk(1), 512), 0);
}

// More commands than queue entries: the phase tag inverts on each pass.
TEST_F(NvmeTest, PhaseTagsInvertOnEveryPassThroughTheQueues) {
  ControllerOptions o;
  o.admin_queue_entries = 2;
  o.io_queue_entries = 3;
  Controller c(fake_, dma_, o);
  Up(c);
  Buffer buf(kPage);
  for (uint64_t lba = 0; lba < 20; ++lba) {
    const DmaSegment sg[] = {{&buf.region, 0, 512}};
    ASSERT_EQ(c.Read(ns_, lba, 1, sg), Status::Ok()) << lba;
    ASSERT_EQ(std::memcmp(buf.storage, Disk(lba), 512), 0) << lba;
  }
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(c.IdentifyNamespace(1).ok()) << i;
  }
}

TEST_F(NvmeTest, HungCommandTimesOutAndTheControllerIsResetAndRecovered) {
  ControllerOptions o;
  o.command_timeout_ns = 20'000'000;
  Controller c(fake_, dma_, o);
  Up(c);
  Buffer buf(kPage);
  const DmaSegment sg[] = {{&buf.region, 0, 512}};
  fake_.hang_next = true;
  EXPECT_EQ(c.Read(ns_, 0, 1, sg), Status::TimedOut());
  EXPECT_EQ(c.timeouts(), 1U);
  EXPECT_EQ(fake_.enables, 2);  // CC.EN cleared (aborting the command) and set again
  EXPECT_TRUE(c.ready());
  EXPECT_EQ(c.Read(ns_, 7, 1, sg), Status::Ok());
  EXPECT_EQ(std::memcmp(buf.storage, Disk(7), 512), 0);
}

TEST_F(NvmeTest, ControllerFatalStatusIsEioAtOnceAndRecovered) {
  ControllerOptions o;
  o.command_timeout_ns = 60'000'000'000;  // CFS must be noticed long before this
  Controller c(fake_, dma_, o);
  Up(c);
  Buffer buf(kPage);
  const DmaSegment sg[] = {{&buf.region, 0, 512}};
  fake_.cfs_next = true;
  EXPECT_EQ(c.Read(ns_, 0, 1, sg), Status::IoError());
  EXPECT_EQ(c.fatal_errors(), 1U);
  EXPECT_EQ(c.timeouts(), 0U);
  EXPECT_TRUE(c.ready());
  EXPECT_EQ(c.Read(ns_, 9, 1, sg), Status::Ok());
  EXPECT_EQ(std::memcmp(buf.storage, Disk(9), 512), 0);
}

TEST_F(NvmeTest, ControllerThatNeverBecomesReadyTimesOutAfterCapTo) {
  fake_.never_ready = true;
  Controller c(fake_, dma_);
  EXPECT_EQ(c.Init(), Status::TimedOut());
  EXPECT_FALSE(c.ready());
  EXPECT_EQ(reg::Cc{fake_.cc()}.en(), 0U);  // left disabled
  EXPECT_EQ(dma_.live, 0);                  // and holding no memory
}

TEST_F(NvmeTest, AllocationFailuresLeaveNothingAllocated) {
  for (int n = 0; n < 6; ++n) {  // queues, PRP list, then the identify buffer
    dma_.fail_after = dma_.allocs + n;
    Controller c(fake_, dma_);
    EXPECT_EQ(c.Init(), Status::NoMemory()) << n;
    EXPECT_EQ(dma_.live, 0) << n;
  }
}

TEST_F(NvmeTest, UnsupportedControllersAndBadOptionsAreRefused) {
  {
    fake_.css = 0x40;  // no NVM command set
    Controller c(fake_, dma_);
    EXPECT_EQ(c.Init(), Status::NotSupported());
    fake_.css = 1;
  }
  {
    fake_.mpsmin = 1;  // 8 KiB pages at least
    Controller c(fake_, dma_);
    EXPECT_EQ(c.Init(), Status::NotSupported());
    fake_.mpsmin = 0;
  }
  {
    fake_.mqes = 15;
    ControllerOptions o;
    o.io_queue_entries = 17;
    Controller c(fake_, dma_, o);
    EXPECT_EQ(c.Init(), Status::InvalidArgument());
  }
  EXPECT_EQ(dma_.live, 0);
  EXPECT_EQ(fake_.enables, 0);
}

// 7.6.2: delete the I/O queues, CC.SHN, CSTS.SHST complete, then disable: only then is the
// memory freed (TearDown checks nothing was freed while the controller was enabled).
TEST_F(NvmeTest, ShutdownDeletesQueuesNotifiesThenFreesMemory) {
  Controller c(fake_, dma_);
  Up(c);
  fake_.opcodes.clear();
  ASSERT_EQ(c.Shutdown(), Status::Ok());
  const std::vector<uint8_t> expected = {opcode::kDeleteIoSq, opcode::kDeleteIoCq};
  EXPECT_EQ(fake_.opcodes, expected);
  EXPECT_TRUE(fake_.saw_shutdown);
  EXPECT_FALSE(fake_.enabled());
  EXPECT_EQ(dma_.live, 0);
  EXPECT_FALSE(c.ready());
  EXPECT_EQ(c.Shutdown(), Status::Ok());  // nothing left to do
}

TEST_F(NvmeTest, ControllerThatDoesNotStopKeepsItsMemory) {
  ControllerOptions o;
  o.shutdown_timeout_ns = 10'000'000;
  Controller c(fake_, dma_, o);
  Up(c);
  fake_.ignore_shutdown = true;
  fake_.stuck_enabled = true;
  EXPECT_EQ(c.Shutdown(), Status::TimedOut());
  EXPECT_GT(dma_.live, 0);  // never freed while the controller may write it
  fake_.stuck_enabled = false;
  EXPECT_EQ(c.Shutdown(), Status::Ok());
  EXPECT_EQ(dma_.live, 0);
}

// Firmware (or an earlier boot stage) left the controller enabling: the driver lets RDY come up
// before clearing EN (3.1.5), then waits for RDY=0 and starts from scratch.
TEST_F(NvmeTest, ControllerLeftEnabledByFirmwareIsResetFirst) {
  fake_.Write32(reg::Cc::kOffset, reg::Cc{}.set_iosqes(6).set_iocqes(4).set_en(1).raw);
  ASSERT_EQ(fake_.enables, 1);
  Controller c(fake_, dma_);
  Up(c);
  EXPECT_EQ(fake_.enables, 2);
  Buffer buf(kPage);
  const DmaSegment sg[] = {{&buf.region, 0, 512}};
  EXPECT_EQ(c.Read(ns_, 2, 1, sg), Status::Ok());
  EXPECT_EQ(std::memcmp(buf.storage, Disk(2), 512), 0);
}

// A completion for another command than the one outstanding is an error, not a success.
TEST_F(NvmeTest, CompletionWithTheWrongCommandIdIsEio) {
  Controller c(fake_, dma_);
  Up(c);
  Buffer buf(kPage);
  const DmaSegment sg[] = {{&buf.region, 0, 512}};
  fake_.wrong_cid_next = true;
  EXPECT_EQ(c.Read(ns_, 2, 1, sg), Status::IoError());
  EXPECT_EQ(c.errors(), 1U);
  EXPECT_EQ(c.Read(ns_, 2, 1, sg), Status::Ok());
}

TEST_F(NvmeTest, InitAgainResetsAndRebuildsTheQueues) {
  Controller c(fake_, dma_);
  Up(c);
  const int live = dma_.live;
  ASSERT_EQ(c.Init(), Status::Ok());
  EXPECT_EQ(fake_.enables, 2);
  EXPECT_EQ(dma_.live, live);  // the same memory
  Buffer buf(kPage);
  const DmaSegment sg[] = {{&buf.region, 0, 512}};
  EXPECT_EQ(c.Read(ns_, 5, 1, sg), Status::Ok());
  EXPECT_EQ(std::memcmp(buf.storage, Disk(5), 512), 0);
}

// ---- The DMA-driver hook ------------------------------------------------------------------

class NvmeMappedTest : public NvmeTest {
 protected:
  void SetUp() override {
    fake_.translate = [this](uint64_t a, size_t n, bool w) { return mapper_.Translate(a, n, w); };
  }
  uint64_t Pa(size_t offset) const { return reinterpret_cast<uintptr_t>(buf_.storage) + offset; }

  RecordingMapper mapper_;
  Buffer buf_{20 * kPage};
};

// A READ maps exactly the pages holding the buffer, for device writes, and unmaps them before
// returning; the PRPs carry the device address.
TEST_F(NvmeMappedTest, ReadMapsTheBuffersPagesForTheCommandOnly) {
  Controller c(fake_, dma_);
  Up(c);
  // 64 KiB from 1 KiB into the first page: 17 pages, a PRP list.
  ASSERT_EQ(c.ReadMapped(mapper_, ns_, 100, 128, Pa(1024)), Status::Ok());
  ASSERT_EQ(mapper_.calls.size(), 2U);
  EXPECT_TRUE(mapper_.calls[0].map);
  EXPECT_EQ(mapper_.calls[0].mapping.pa, Pa(0));
  EXPECT_EQ(mapper_.calls[0].mapping.size, 17 * kPage);
  EXPECT_EQ(mapper_.calls[0].mapping.direction, DmaDirection::kFromDevice);
  EXPECT_FALSE(mapper_.calls[1].map);
  EXPECT_TRUE(mapper_.live.empty());
  ASSERT_EQ(fake_.last_prps.size(), 17U);
  EXPECT_EQ(fake_.last_prps[0], kIovaBase + Pa(1024));
  for (size_t i = 1; i < 17; ++i) {
    EXPECT_EQ(fake_.last_prps[i], kIovaBase + Pa(i * kPage)) << i;
  }
  EXPECT_EQ(fake_.blocked, 0);
  EXPECT_EQ(std::memcmp(buf_.storage + 1024, Disk(100), size_t{64} * 1024), 0);
  EXPECT_EQ(buf_.storage[1023], 0x5a);
  EXPECT_EQ(buf_.storage[1024 + 64 * 1024], 0x5a);
}

TEST_F(NvmeMappedTest, WriteMapsForDeviceReadsThenReadsBack) {
  Controller c(fake_, dma_);
  Up(c);
  std::memset(buf_.storage, 0xab, 2 * kPage);
  ASSERT_EQ(c.WriteMapped(mapper_, ns_, 30, 16, Pa(0)), Status::Ok());
  ASSERT_EQ(mapper_.calls.size(), 2U);
  EXPECT_EQ(mapper_.calls[0].mapping.pa, Pa(0));
  EXPECT_EQ(mapper_.calls[0].mapping.size, 2 * kPage);
  EXPECT_EQ(mapper_.calls[0].mapping.direction, DmaDirection::kToDevice);
  for (size_t i = 0; i < 2 * kPage; ++i) ASSERT_EQ(Disk(30)[i], 0xab) << i;
  std::memset(buf_.storage + 4 * kPage, 0, 2 * kPage);
  ASSERT_EQ(c.ReadMapped(mapper_, ns_, 30, 16, Pa(4 * kPage)), Status::Ok());
  EXPECT_EQ(std::memcmp(buf_.storage + 4 * kPage, Disk(30), 2 * kPage), 0);
  EXPECT_TRUE(mapper_.live.empty());
}

// An error status still ends the mapping.
TEST_F(NvmeMappedTest, ErrorStatusStillUnmaps) {
  Controller c(fake_, dma_);
  Up(c);
  fake_.status_next = ds::sc::kDataTransferError;
  EXPECT_EQ(c.ReadMapped(mapper_, ns_, 0, 1, Pa(0)), Status::IoError());
  EXPECT_EQ(mapper_.calls.size(), 2U);
  EXPECT_TRUE(mapper_.live.empty());
}

// After a timeout (or a fatal status) the mapping goes only once the controller was reset.
TEST_F(NvmeMappedTest, TimeoutUnmapsOnlyAfterTheControllerWasReset) {
  ControllerOptions o;
  o.command_timeout_ns = 20'000'000;
  Controller c(fake_, dma_, o);
  Up(c);
  const int disables_before = fake_.disables;
  int disables_at_unmap = -1;
  mapper_.on_unmap = [&] { disables_at_unmap = fake_.disables; };
  fake_.hang_next = true;
  EXPECT_EQ(c.ReadMapped(mapper_, ns_, 0, 8, Pa(0)), Status::TimedOut());
  EXPECT_EQ(disables_at_unmap, disables_before + 1);
  EXPECT_TRUE(mapper_.live.empty());
  EXPECT_TRUE(c.ready());
  disables_at_unmap = -1;
  fake_.cfs_next = true;
  EXPECT_EQ(c.ReadMapped(mapper_, ns_, 0, 8, Pa(0)), Status::IoError());
  EXPECT_EQ(disables_at_unmap, disables_before + 2);
  EXPECT_TRUE(mapper_.live.empty());
  EXPECT_EQ(c.ReadMapped(mapper_, ns_, 9, 8, Pa(0)), Status::Ok());
  EXPECT_EQ(std::memcmp(buf_.storage, Disk(9), size_t{8} * 512), 0);
}

TEST_F(NvmeMappedTest, FailedMapSubmitsNothing) {
  Controller c(fake_, dma_);
  Up(c);
  const int doorbells = fake_.doorbells;
  mapper_.fail_map = Status::NoMemory();
  EXPECT_EQ(c.ReadMapped(mapper_, ns_, 0, 8, Pa(0)), Status::NoMemory());
  EXPECT_EQ(c.WriteMapped(mapper_, ns_, 0, 8, Pa(0)), Status::NoMemory());
  EXPECT_EQ(fake_.doorbells, doorbells);
  EXPECT_TRUE(mapper_.calls.empty());
}

TEST_F(NvmeMappedTest, InvalidRequestsMapNothing) {
  Controller c(fake_, dma_);
  EXPECT_EQ(c.ReadMapped(mapper_, ns_, 0, 1, Pa(0)), Status::IoError());  // not initialised
  Up(c);
  const int doorbells = fake_.doorbells;
  EXPECT_EQ(c.ReadMapped(mapper_, ns_, 0, 0, Pa(0)), Status::InvalidArgument());
  EXPECT_EQ(c.ReadMapped(mapper_, ns_, kDiskBlocks, 1, Pa(0)), Status::OutOfRange());
  EXPECT_EQ(c.ReadMapped(mapper_, ns_, 0, 1, Pa(2)), Status::InvalidArgument());  // not dword
  EXPECT_EQ(c.ReadMapped(mapper_, ns_, 0, 1, UINT64_MAX - 255), Status::InvalidArgument());
  EXPECT_EQ(c.ReadMapped(mapper_, ns_, 0, 1024, Pa(0)), Status::InvalidArgument());  // > max
  mapper_.page = 3000;
  EXPECT_EQ(c.ReadMapped(mapper_, ns_, 0, 1, Pa(0)), Status::InvalidArgument());
  EXPECT_TRUE(mapper_.calls.empty());
  EXPECT_EQ(fake_.doorbells, doorbells);
}

// While the command runs the buffer is reachable; a buffer never mapped is not (the fake's
// "IOMMU" blocks it), so the driver really gives the controller the mapping's address.
TEST_F(NvmeMappedTest, OnlyTheMappedBufferIsReachable) {
  Controller c(fake_, dma_);
  Up(c);
  const DmaSegment unmapped[] = {{&buf_.region, 0, 512}};
  EXPECT_EQ(c.Read(ns_, 0, 1, unmapped), Status::Ok());  // QEMU-like: Success, nothing moved
  EXPECT_GT(fake_.blocked, 0);
  EXPECT_EQ(buf_.storage[0], 0x5a);
}

}  // namespace
}  // namespace deviso::drivers::nvme
