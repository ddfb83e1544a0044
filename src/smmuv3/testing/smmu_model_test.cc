// Tests of the SMMUv3 host model itself, driving its registers by hand: raw STEs, CDs, commands
// and translation tables written into simulated memory, as a driver would.

#include "smmuv3/testing/smmu_model.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "pgtable/pgtable.h"
#include "smmuv3/testing/smmu_model_profiles.h"
#include "testing/sim_memory.h"

namespace deviso::smmuv3::testing {
namespace {

namespace ly = layout;
namespace reg = layout::reg;
using deviso::testing::SimPhysMemory;

constexpr uint32_t kSid = 5;
constexpr uint16_t kAsid = 7;
constexpr uint16_t kVmid = 3;

// Stage 1 page/block attributes: valid, AF, AP[1] (EL0 access), nG.
constexpr uint64_t kS1Attrs = ly::pte::Af::Make(1) | ly::pte::Ap::Make(0b01) | ly::pte::NG::Make(1);
constexpr uint64_t kPage = 3;   // valid + page (level 3) / table (levels 0-2)
constexpr uint64_t kBlock = 1;  // valid + block
// Stage 2 page attributes: AF, S2AP = RW, MemAttr Normal WB (bits [5:2] = 0b1111).
constexpr uint64_t kS2AttrsRw = ly::pte::Af::Make(1) | ly::pte::S2Ap::Make(0b11) | (0xFull << 2);

// ---- Raw structure builders (IHI0070 4, 5.2, 5.4) ----

std::array<uint64_t, 8> SteWithConfig(uint64_t config) {
  std::array<uint64_t, 8> s{};
  ly::ste::V::Put(s.data(), 1);
  ly::ste::Config::Put(s.data(), config);
  return s;
}

std::array<uint64_t, 8> SteS1(uint64_t cd_pa, uint16_t vmid = 0) {
  auto s = SteWithConfig(ly::ste::kConfigS1);
  s[0] |= cd_pa & ly::ste::S1ContextPtr::kMask;
  ly::ste::S2Vmid::Put(s.data(), vmid);
  return s;
}

struct S2Geometry {
  unsigned t0sz = 24;
  unsigned sl0 = 1;
  unsigned tg = 0;  // 0: 4K, 1: 64K, 2: 16K
  unsigned ps = 4;  // 44 bits
};

std::array<uint64_t, 8> SteS2(uint64_t ttb, const S2Geometry& g, uint16_t vmid,
                              bool record = true) {
  auto s = SteWithConfig(ly::ste::kConfigS2);
  ly::ste::S2Vmid::Put(s.data(), vmid);
  ly::ste::S2T0Sz::Put(s.data(), g.t0sz);
  ly::ste::S2Sl0::Put(s.data(), g.sl0);
  ly::ste::S2Tg::Put(s.data(), g.tg);
  ly::ste::S2Ps::Put(s.data(), g.ps);
  ly::ste::S2Aa64::Put(s.data(), 1);
  ly::ste::S2R::Put(s.data(), record ? 1 : 0);
  s[3] = ttb & ly::ste::S2Ttb::kMask;
  return s;
}

// A stage 1 CD with only TTB0 (EPD1 = 1), 44-bit IPS, A = 1.
std::array<uint64_t, 8> Cd(uint64_t ttb0, uint16_t asid, unsigned t0sz = 16, unsigned tg0 = 0,
                           bool record = true) {
  std::array<uint64_t, 8> c{};
  ly::cd::T0Sz::Put(c.data(), t0sz);
  ly::cd::Tg0::Put(c.data(), tg0);
  ly::cd::Epd1::Put(c.data(), 1);
  ly::cd::V::Put(c.data(), 1);
  ly::cd::Ips::Put(c.data(), 4);
  ly::cd::Aa64::Put(c.data(), 1);
  ly::cd::R::Put(c.data(), record ? 1 : 0);
  ly::cd::A::Put(c.data(), 1);
  ly::cd::Asid::Put(c.data(), asid);
  c[1] = ttb0 & ly::cd::Ttb0::kMask;
  return c;
}

using Command = std::array<uint64_t, 2>;

Command CmdWith(uint8_t opcode) {
  Command c{};
  ly::cmd::Opcode::Put(c.data(), opcode);
  return c;
}
Command CmdSync(uint64_t cs = ly::cmd::kCsNone) {
  Command c = CmdWith(ly::cmd::kSync);
  ly::cmd::SyncCs::Put(c.data(), cs);
  return c;
}
Command CmdCfgiSte(uint32_t sid, bool leaf = true) {
  Command c = CmdWith(ly::cmd::kCfgiSte);
  ly::cmd::StreamId::Put(c.data(), sid);
  ly::cmd::CfgiLeaf::Put(c.data(), leaf ? 1 : 0);
  return c;
}
Command CmdCfgiAll() {
  Command c = CmdWith(ly::cmd::kCfgiSteRange);
  ly::cmd::CfgiRange::Put(c.data(), 31);
  return c;
}
Command CmdCfgiCd(uint32_t sid) {
  Command c = CmdWith(ly::cmd::kCfgiCd);
  ly::cmd::StreamId::Put(c.data(), sid);
  ly::cmd::CfgiLeaf::Put(c.data(), 1);
  return c;
}
Command CmdTlbiAsid(uint16_t asid, uint16_t vmid = 0) {
  Command c = CmdWith(ly::cmd::kTlbiNhAsid);
  ly::cmd::TlbiAsid::Put(c.data(), asid);
  ly::cmd::TlbiVmid::Put(c.data(), vmid);
  return c;
}
struct Range {
  unsigned tg = 0;  // 0: single address
  unsigned ttl = 0;
  unsigned num = 0;
  unsigned scale = 0;
};
Command CmdTlbiVa(uint16_t asid, uint64_t va, bool leaf, Range r = {}, uint16_t vmid = 0) {
  Command c = CmdWith(ly::cmd::kTlbiNhVa);
  ly::cmd::TlbiAsid::Put(c.data(), asid);
  ly::cmd::TlbiVmid::Put(c.data(), vmid);
  ly::cmd::TlbiNum::Put(c.data(), r.num);
  ly::cmd::TlbiScale::Put(c.data(), r.scale);
  ly::cmd::TlbiLeaf::Put(c.data(), leaf ? 1 : 0);
  ly::cmd::TlbiTtl::Put(c.data(), r.ttl);
  ly::cmd::TlbiTg::Put(c.data(), r.tg);
  ly::cmd::TlbiVa::Put(c.data(), va >> 12);
  return c;
}
Command CmdTlbiS2Ipa(uint16_t vmid, uint64_t ipa, bool leaf) {
  Command c = CmdWith(ly::cmd::kTlbiS2Ipa);
  ly::cmd::TlbiVmid::Put(c.data(), vmid);
  ly::cmd::TlbiLeaf::Put(c.data(), leaf ? 1 : 0);
  ly::cmd::TlbiIpa::Put(c.data(), ipa >> 12);
  return c;
}

class NoFlush final : public pgtable::TlbFlush {
 public:
  Status Invalidate(const pgtable::InvalidationRange& /*range*/) override { return Status::Ok(); }
};

// ---- Fixture: a driver played by hand ----

class SmmuModelTest : public ::testing::Test {
 protected:
  struct Setup {
    SmmuModel::Options model = {};
    bool coherent = true;
    unsigned cmdq_log2 = 6;
    unsigned eventq_log2 = 5;
    unsigned strtab_log2 = 8;
    bool enable = true;
  };

  void Init(const Setup& setup) {
    cmdq_prod_ = 0;
    SimPhysMemory::Options mo;
    mo.dma_bytes = 8u << 20;
    mo.tables_4k_bytes = 2u << 20;
    mo.tables_64k_bytes = 2u << 20;
    mo.coherent = setup.coherent;
    mem_ = std::make_unique<SimPhysMemory>(mo);
    smmu_ = std::make_unique<SmmuModel>(*mem_, setup.model);
    cmdq_log2_ = setup.cmdq_log2;
    eventq_log2_ = setup.eventq_log2;
    cmdq_ = Alloc(16u << cmdq_log2_);
    eventq_ = Alloc(32u << eventq_log2_);
    strtab_ = Alloc(64u << setup.strtab_log2, 64u << setup.strtab_log2);
    smmu_->Write64(reg::kCmdqBase, cmdq_.pa | cmdq_log2_);
    smmu_->Write32(reg::kCmdqProd, 0);
    smmu_->Write32(reg::kCmdqCons, 0);
    smmu_->Write64(reg::kEventqBase, eventq_.pa | eventq_log2_);
    smmu_->Write32(reg::kEventqProd, 0);
    smmu_->Write32(reg::kEventqCons, 0);
    smmu_->Write64(reg::kStrtabBase, strtab_.pa);
    smmu_->Write32(reg::kStrtabBaseCfg, setup.strtab_log2);
    smmu_->Write32(reg::kCr2, static_cast<uint32_t>(ly::cr2::RecInvSid::kMask));
    smmu_->Write32(reg::kIrqCtrl, static_cast<uint32_t>(ly::irq_ctrl::GerrorIrqEn::kMask |
                                                        ly::irq_ctrl::EventqIrqEn::kMask));
    smmu_->SetGerrorIrqHandler([this] { ++gerror_irqs_; });
    smmu_->SetEventqIrqHandler([this] { ++eventq_irqs_; });
    WriteCr0(kQueues);
    if (setup.enable) WriteCr0(kQueues | kSmmuEn);
  }
  void Init() { Init(Setup{}); }

  static constexpr uint32_t kQueues =
      static_cast<uint32_t>(ly::cr0::CmdqEn::kMask | ly::cr0::EventqEn::kMask);
  static constexpr uint32_t kSmmuEn = static_cast<uint32_t>(ly::cr0::SmmuEn::kMask);

  void WriteCr0(uint32_t v) { smmu_->Write32(reg::kCr0, v); }

  DmaBuffer Alloc(size_t size, size_t align = 4096) {
    auto r = mem_->dma().Allocate(size, align);
    EXPECT_TRUE(r.ok());
    return *r;
  }

  uint64_t* Cpu64(uint64_t pa) { return static_cast<uint64_t*>(mem_->Cpu(pa)); }
  // Writes `words` at `pa` (word 0 last, like a driver making a structure valid) and cleans them.
  void WriteWords(uint64_t pa, const uint64_t* words, size_t n, bool clean = true) {
    uint64_t* p = Cpu64(pa);
    for (size_t i = n; i-- > 0;) p[i] = words[i];
    if (clean) mem_->Clean(p, n * 8);
  }
  void WriteSte(uint32_t sid, const std::array<uint64_t, 8>& ste, bool clean = true) {
    WriteWords(strtab_.pa + uint64_t{sid} * 64, ste.data(), 8, clean);
  }
  void Write64At(uint64_t pa, uint64_t v) {
    *Cpu64(pa) = v;
    mem_->Clean(Cpu64(pa), 8);
  }

  // Writes commands at PROD and publishes them with one PROD write.
  void Submit(std::initializer_list<Command> cmds) {
    const uint32_t size = 1u << cmdq_log2_;
    for (const Command& c : cmds) {
      WriteWords(cmdq_.pa + uint64_t{cmdq_prod_ & (size - 1)} * 16, c.data(), 2);
      cmdq_prod_ = (cmdq_prod_ + 1) & (2 * size - 1);
    }
    smmu_->Write32(reg::kCmdqProd, cmdq_prod_);
  }
  uint32_t CmdqCons() { return smmu_->Read32(reg::kCmdqCons); }
  bool QueueDrained() { return (CmdqCons() & ((2u << cmdq_log2_) - 1)) == cmdq_prod_; }

  // Consumes every event record (invalidating the CPU view first, as a driver on a
  // non-coherent SMMU must) and acknowledges overflow.
  std::vector<EventRecord> Events() {
    std::vector<EventRecord> out;
    const uint32_t size = 1u << eventq_log2_;
    const uint32_t prod_reg = smmu_->Read32(reg::kEventqProd);
    uint32_t cons = smmu_->Read32(reg::kEventqCons) & (2 * size - 1);
    const uint32_t prod = prod_reg & (2 * size - 1);
    while (cons != prod) {
      uint64_t* e = Cpu64(eventq_.pa + uint64_t{cons & (size - 1)} * 32);
      mem_->Invalidate(e, 32);
      EventRecord r;
      std::memcpy(r.raw.data(), e, 32);
      out.push_back(r);
      cons = (cons + 1) & (2 * size - 1);
    }
    smmu_->Write32(reg::kEventqCons,
                   cons | (prod_reg & static_cast<uint32_t>(ly::queue_ptr::Overflow::kMask)));
    return out;
  }

  // ---- A hand-built 4 KiB-granule table tree (48-bit input, start level 0) ----
  uint64_t NewTable() { return Alloc(4096).pa; }
  // The descriptor slot at `level` for `va`, creating tables above it.
  uint64_t* Slot(uint64_t root, uint64_t va, unsigned level) {
    uint64_t table = root;
    for (unsigned l = 0; l < level; ++l) {
      uint64_t* d = Cpu64(table) + ((va >> (39 - 9 * l)) & 511);
      if ((*d & 1) == 0) {
        *d = NewTable() | kPage;
        mem_->Clean(d, 8);
      }
      table = *d & 0x0000'FFFF'FFFF'F000;
    }
    return Cpu64(table) + ((va >> (39 - 9 * level)) & 511);
  }
  void SetDesc(uint64_t root, uint64_t va, unsigned level, uint64_t desc) {
    uint64_t* d = Slot(root, va, level);
    *d = desc;
    mem_->Clean(d, 8);
  }
  void MapPage(uint64_t root, uint64_t va, uint64_t pa, uint64_t attrs = kS1Attrs) {
    SetDesc(root, va, 3, pa | attrs | kPage);
  }

  // A stage 1 stream: STE -> CD -> hand tables rooted at the returned address.
  uint64_t SetUpS1Stream(uint32_t sid, uint16_t asid, bool record = true, uint16_t vmid = 0) {
    const uint64_t root = NewTable();
    const DmaBuffer cd = Alloc(64, 64);
    const auto c = Cd(root, asid, 16, 0, record);
    WriteWords(cd.pa, c.data(), 8);
    WriteSte(sid, SteS1(cd.pa, vmid));
    cd_pa_ = cd.pa;
    return root;
  }

  Status Write(uint32_t sid, uint64_t iova, uint32_t v, AccessAttrs a = {}) {
    return smmu_->DeviceWrite(sid, iova, &v, sizeof(v), a);
  }
  Status Read(uint32_t sid, uint64_t iova, uint32_t* v, AccessAttrs a = {}) {
    return smmu_->DeviceRead(sid, iova, v, sizeof(*v), a);
  }
  uint32_t CpuRead32(uint64_t pa) {
    mem_->Invalidate(mem_->Cpu(pa), 4);
    uint32_t v;
    std::memcpy(&v, mem_->Cpu(pa), 4);
    return v;
  }

  std::unique_ptr<SimPhysMemory> mem_;
  std::unique_ptr<SmmuModel> smmu_;
  unsigned cmdq_log2_ = 0;
  unsigned eventq_log2_ = 0;
  uint32_t cmdq_prod_ = 0;
  DmaBuffer cmdq_;
  DmaBuffer eventq_;
  DmaBuffer strtab_;
  uint64_t cd_pa_ = 0;
  int gerror_irqs_ = 0;
  int eventq_irqs_ = 0;
};

// ---- ID registers and the register file ----

TEST_F(SmmuModelTest, DefaultIdRegistersAreQemuWithStage2) {
  Init();
  EXPECT_EQ(smmu_->Read32(reg::kIdr0), 0x0d40101bu);  // QEMU 7.2's 0x0d40101a plus S2P
  EXPECT_EQ(smmu_->Read32(reg::kIdr1), (19u << 21) | (19u << 16) | 16u);
  EXPECT_EQ(smmu_->Read32(reg::kIdr3), 0x1404u);  // HAD, RIL, BBML = 2
  EXPECT_EQ(smmu_->Read32(reg::kIdr5), 0x74u);    // 4K/16K/64K, OAS 44 bits
  EXPECT_EQ(smmu_->Read32(reg::kAidr), 0x01u);    // SMMUv3.1
  EXPECT_EQ(smmu_->bad_register_accesses(), 0u);
}

TEST_F(SmmuModelTest, OptionsShapeIdRegisters) {
  Setup s;
  s.model.stage2 = false;
  s.model.sid_bits = 8;
  s.model.cmdq_log2 = 6;
  s.model.eventq_log2 = 5;
  s.coherent = false;  // forces COHACC = 0
  Init(s);
  EXPECT_EQ(smmu_->Read32(reg::kIdr0), 0x0d40100au);
  EXPECT_EQ(smmu_->Read32(reg::kIdr1), (6u << 21) | (5u << 16) | 8u);
}

TEST_F(SmmuModelTest, Cr0AndIrqCtrlAreAcknowledged) {
  Init(Setup{.enable = false});
  EXPECT_EQ(smmu_->Read32(reg::kCr0Ack), kQueues);
  WriteCr0(kQueues | kSmmuEn);
  EXPECT_EQ(smmu_->Read32(reg::kCr0Ack), kQueues | kSmmuEn);
  EXPECT_EQ(smmu_->Read32(reg::kIrqCtrlAck), smmu_->Read32(reg::kIrqCtrl));
  // Reserved CR0 bits (PRIQEN without PRI, ATSCHK without ATS) are not kept.
  WriteCr0(0xFFFF'FFFF);
  EXPECT_EQ(smmu_->Read32(reg::kCr0Ack), kQueues | kSmmuEn);
}

TEST_F(SmmuModelTest, RegisterMisuseIsIgnoredAndCounted) {
  Init();
  const uint64_t base = smmu_->Read64(reg::kCmdqBase);
  smmu_->Write64(reg::kCmdqBase, 0x1234000);  // CMDQEN = 1: ignored
  smmu_->Write64(reg::kStrtabBase, 0x5000);   // SMMUEN = 1: ignored
  smmu_->Write32(0xA8, 0);                    // EVENTQ_PROD lives in page 1
  smmu_->Write32(reg::kIdr0, 0);              // read-only
  EXPECT_EQ(smmu_->Read64(reg::kCmdqBase), base);
  EXPECT_EQ(smmu_->Read64(reg::kStrtabBase), strtab_.pa);
  EXPECT_EQ(smmu_->bad_register_accesses(), 4u);
  // 32-bit halves of a 64-bit register.
  WriteCr0(kQueues);
  smmu_->Write32(reg::kStrtabBase, 0x1000);
  smmu_->Write32(reg::kStrtabBase + 4, 0x12);
  EXPECT_EQ(smmu_->Read64(reg::kStrtabBase), 0x12'0000'1000u);
  EXPECT_EQ(smmu_->Read32(reg::kStrtabBase + 4), 0x12u);
}

TEST_F(SmmuModelTest, GbpaUpdateHandshake) {
  Init(Setup{.enable = false});
  EXPECT_EQ(smmu_->Read32(reg::kGbpa), 0x1000u);  // SHCFG = use incoming
  // Without Update the write is ignored.
  smmu_->Write32(reg::kGbpa, static_cast<uint32_t>(ly::gbpa::Abort::kMask));
  EXPECT_EQ(smmu_->Read32(reg::kGbpa), 0x1000u);
  smmu_->Write32(reg::kGbpa,
                 static_cast<uint32_t>(ly::gbpa::Abort::kMask | ly::gbpa::Update::kMask));
  EXPECT_EQ(smmu_->Read32(reg::kGbpa), static_cast<uint32_t>(ly::gbpa::Abort::kMask));
}

TEST_F(SmmuModelTest, GbpaCanBeUnimplementedLikeQemu) {
  Setup s;
  s.model.gbpa_implemented = false;
  s.enable = false;
  Init(s);
  smmu_->Write32(reg::kGbpa,
                 static_cast<uint32_t>(ly::gbpa::Abort::kMask | ly::gbpa::Update::kMask));
  EXPECT_EQ(smmu_->Read32(reg::kGbpa), 0u);
  const DmaBuffer buf = Alloc(4096);
  EXPECT_TRUE(Write(kSid, buf.pa, 1).ok());  // all DMA bypasses
}

// ---- Disabled SMMU, stream tables ----

TEST_F(SmmuModelTest, DisabledSmmuBypassesOrAbortsPerGbpa) {
  Init(Setup{.enable = false});
  const DmaBuffer buf = Alloc(4096);
  ASSERT_TRUE(Write(kSid, buf.pa + 8, 0xAB).ok());
  EXPECT_EQ(CpuRead32(buf.pa + 8), 0xABu);
  smmu_->Write32(reg::kGbpa,
                 static_cast<uint32_t>(ly::gbpa::Abort::kMask | ly::gbpa::Update::kMask));
  EXPECT_EQ(Write(kSid, buf.pa + 8, 0xCD), Status::IoError());
  EXPECT_EQ(CpuRead32(buf.pa + 8), 0xABu);
  EXPECT_TRUE(Events().empty());  // no configuration is consulted, nothing recorded
  EXPECT_EQ(smmu_->ste_fetches(), 0u);
}

TEST_F(SmmuModelTest, GbpaAbortAtResetOption) {
  Setup s;
  s.model.gbpa_abort_at_reset = true;
  s.enable = false;
  Init(s);
  const DmaBuffer buf = Alloc(4096);
  EXPECT_EQ(Write(kSid, buf.pa, 1), Status::IoError());
}

TEST_F(SmmuModelTest, LinearStreamTableBypassAbortAndBadEntries) {
  Init();
  const DmaBuffer buf = Alloc(4096);
  WriteSte(1, SteWithConfig(ly::ste::kConfigBypass));
  WriteSte(2, SteWithConfig(ly::ste::kConfigAbort));
  auto reserved = SteWithConfig(0b010);
  WriteSte(3, reserved);
  EXPECT_TRUE(Write(1, buf.pa, 0x11).ok());
  EXPECT_EQ(CpuRead32(buf.pa), 0x11u);
  EXPECT_EQ(Write(2, buf.pa, 0x22), Status::IoError());  // abort: no event
  EXPECT_TRUE(Events().empty());
  EXPECT_EQ(Write(3, buf.pa, 0x33), Status::IoError());    // reserved Config
  EXPECT_EQ(Write(4, buf.pa, 0x44), Status::IoError());    // V = 0
  EXPECT_EQ(Write(256, buf.pa, 0x55), Status::IoError());  // beyond LOG2SIZE = 8
  const auto ev = Events();
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].type(), ly::evt::kCBadSte);
  EXPECT_EQ(ev[0].stream_id(), 3u);
  EXPECT_EQ(ev[1].type(), ly::evt::kCBadSte);
  EXPECT_EQ(ev[1].stream_id(), 4u);
  EXPECT_EQ(ev[2].type(), ly::evt::kCBadStreamId);
  EXPECT_EQ(ev[2].stream_id(), 256u);
  EXPECT_EQ(CpuRead32(buf.pa), 0x11u);
  EXPECT_EQ(eventq_irqs_, 3);
  // Without CR2.RECINVSID, C_BAD_STREAMID is not recorded.
  smmu_->Write32(reg::kCr2, 0);
  EXPECT_EQ(Write(300, buf.pa, 0x55), Status::IoError());
  EXPECT_TRUE(Events().empty());
}

TEST_F(SmmuModelTest, StreamTableBaseIsAlignedToItsSize) {
  Setup s;
  s.enable = false;
  Init(s);
  // 256 STEs = 16 KiB: low base bits are ignored, as the SMMU does.
  smmu_->Write64(reg::kStrtabBase, strtab_.pa + 0x1000);
  WriteCr0(kQueues | kSmmuEn);
  WriteSte(1, SteWithConfig(ly::ste::kConfigBypass));
  const DmaBuffer buf = Alloc(4096);
  EXPECT_TRUE(Write(1, buf.pa, 1).ok());
}

TEST_F(SmmuModelTest, TwoLevelStreamTable) {
  Setup s;
  s.enable = false;
  Init(s);
  // LOG2SIZE = 16, SPLIT = 8: 256 L1 descriptors (2 KiB) each for 256 StreamIDs.
  const DmaBuffer l1 = Alloc(2048, 2048);
  const DmaBuffer l2 = Alloc(size_t{64} * 16, 1024);  // Span = 5: 16 STEs
  smmu_->Write64(reg::kStrtabBase, l1.pa);
  smmu_->Write32(reg::kStrtabBaseCfg,
                 static_cast<uint32_t>(ly::strtab_base_cfg::Log2Size::Make(16) |
                                       ly::strtab_base_cfg::Split::Make(8) |
                                       ly::strtab_base_cfg::Fmt::Make(1)));
  WriteCr0(kQueues | kSmmuEn);
  const uint32_t sid = (3u << 8) | 9;
  Write64At(l1.pa + uint64_t{3} * 8, l2.pa | 5);
  const auto bypass = SteWithConfig(ly::ste::kConfigBypass);
  WriteWords(l2.pa + uint64_t{9} * 64, bypass.data(), 8);
  const DmaBuffer buf = Alloc(4096);
  EXPECT_TRUE(Write(sid, buf.pa, 7).ok());
  EXPECT_EQ(Write((3u << 8) | 16, buf.pa, 7), Status::IoError());  // beyond the L2 span
  EXPECT_EQ(Write(4u << 8, buf.pa, 7), Status::IoError());         // L1 descriptor invalid
  auto ev = Events();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].type(), ly::evt::kCBadStreamId);
  EXPECT_EQ(ev[1].type(), ly::evt::kCBadStreamId);
  EXPECT_EQ(ev[1].stream_id(), 4u << 8);
  // Span above SPLIT + 1 is reserved: treated as an invalid descriptor.
  Write64At(l1.pa + uint64_t{5} * 8, l2.pa | 10);
  EXPECT_EQ(Write(5u << 8, buf.pa, 7), Status::IoError());
  ASSERT_EQ(Events().size(), 1u);

  // The L1 descriptor is cached: invalidating it in memory changes nothing until a CFGI that
  // covers it (CMD_CFGI_STE with Leaf = 0).
  Write64At(l1.pa + uint64_t{3} * 8, 0);
  Submit({CmdCfgiSte(sid, /*leaf=*/true), CmdSync()});
  EXPECT_TRUE(Write(sid, buf.pa, 8).ok());
  Submit({CmdCfgiSte(sid, /*leaf=*/false), CmdSync()});
  EXPECT_EQ(Write(sid, buf.pa, 9), Status::IoError());
  EXPECT_EQ(smmu_->l1std_fetches(), 4u);
}

// ---- Stage 1 ----

TEST_F(SmmuModelTest, Stage1TranslatesAndReportsTranslationFaults) {
  Init();
  const uint64_t root = SetUpS1Stream(kSid, kAsid);
  const DmaBuffer buf = Alloc(8192);
  const uint64_t iova = 0x1234'5000;
  MapPage(root, iova, buf.pa);
  MapPage(root, iova + 0x1000, buf.pa + 0x1000);
  // A write spanning two pages.
  std::array<uint8_t, 32> data{};
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i + 1);
  ASSERT_TRUE(smmu_->DeviceWrite(kSid, iova + 0xFF0, data.data(), data.size()).ok());
  std::array<uint8_t, 32> back{};
  ASSERT_TRUE(smmu_->DeviceRead(kSid, iova + 0xFF0, back.data(), back.size()).ok());
  EXPECT_EQ(back, data);
  EXPECT_EQ(CpuRead32(buf.pa + 0x1000), 0x14131211u);

  EXPECT_EQ(Write(kSid, iova + 0x2000, 1, {.privileged = true}), Status::IoError());
  uint32_t v = 0;
  EXPECT_EQ(Read(kSid, 0x7000'0000, &v, {.instruction = true}), Status::IoError());
  const auto ev = Events();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].type(), ly::evt::kFTranslation);
  EXPECT_EQ(ev[0].stream_id(), kSid);
  EXPECT_EQ(ev[0].input_addr(), iova + 0x2000);
  EXPECT_FALSE(ev[0].rnw());
  EXPECT_TRUE(ev[0].pnu());
  EXPECT_FALSE(ev[0].ind());
  EXPECT_FALSE(ev[0].s2());
  EXPECT_EQ(ev[0].event_class(), ly::evt::kClassIn);
  EXPECT_TRUE(ev[1].rnw());
  EXPECT_FALSE(ev[1].pnu());
  EXPECT_TRUE(ev[1].ind());
  // Beyond the T0SZ range (48 bits): a translation fault without a walk.
  EXPECT_EQ(Write(kSid, uint64_t{1} << 48, 1), Status::IoError());
  EXPECT_EQ(Events().at(0).type(), ly::evt::kFTranslation);
}

TEST_F(SmmuModelTest, CdRecordBitGatesFaultEvents) {
  Init();
  SetUpS1Stream(kSid, kAsid, /*record=*/false);
  EXPECT_EQ(Write(kSid, 0x1000, 1), Status::IoError());
  EXPECT_TRUE(Events().empty());
  EXPECT_EQ(smmu_->events_written(), 0u);
}

TEST_F(SmmuModelTest, AccessFlagAddressSizeAndWalkAbort) {
  Init();
  const uint64_t root = SetUpS1Stream(kSid, kAsid);
  const DmaBuffer buf = Alloc(4096);
  MapPage(root, 0x1000, buf.pa, kS1Attrs & ~ly::pte::Af::kMask);
  MapPage(root, 0x2000, uint64_t{1} << 44, kS1Attrs);      // beyond IPS = 44 bits
  MapPage(root, 0x3000, 0x0000'8000'0000'0000, kS1Attrs);  // bit 47: beyond too
  // A table descriptor pointing outside memory: the walk's read aborts.
  SetDesc(root, 0x40'0000'0000, 1, 0x0000'7000'0000'0000 | kPage);
  EXPECT_EQ(Write(kSid, 0x1000, 1), Status::IoError());
  EXPECT_EQ(Write(kSid, 0x2000, 1), Status::IoError());
  EXPECT_EQ(Write(kSid, 0x3000, 1), Status::IoError());
  EXPECT_EQ(Write(kSid, 0x40'0000'0000, 1), Status::IoError());
  auto ev = Events();
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].type(), ly::evt::kFAccess);
  EXPECT_EQ(ev[1].type(), ly::evt::kFAddrSize);
  EXPECT_EQ(ev[2].type(), ly::evt::kFAddrSize);
  EXPECT_EQ(ev[3].type(), ly::evt::kFAddrSize);  // the table address is beyond 44 bits too
  SetDesc(root, 0x40'0000'0000, 1, 0x0000'0700'0000'0000 | kPage);  // in range, not RAM
  EXPECT_EQ(Write(kSid, 0x40'0000'0000, 1), Status::IoError());
  ev = Events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type(), ly::evt::kFWalkEabt);
  EXPECT_EQ(ev[0].fetch_addr(), 0x0000'0700'0000'0000u);  // index 0 at level 2
  // AFFD = 1: AF = 0 does not fault (after CFGI_CD, the CD being cached).
  auto c = Cd(root, kAsid);
  ly::cd::Affd::Put(c.data(), 1);
  WriteWords(cd_pa_, c.data(), 8);
  Submit({CmdCfgiCd(kSid), CmdSync()});
  EXPECT_TRUE(Write(kSid, 0x1000, 1).ok());
}

TEST_F(SmmuModelTest, Stage1Permissions) {
  Init();
  const uint64_t root = SetUpS1Stream(kSid, kAsid);
  const DmaBuffer buf = Alloc(4096);
  const uint64_t af = ly::pte::Af::Make(1);
  MapPage(root, 0x1000, buf.pa, af | ly::pte::Ap::Make(0b11));  // read-only, EL0 too
  MapPage(root, 0x2000, buf.pa, af | ly::pte::Ap::Make(0b00));  // EL1 read/write only
  MapPage(root, 0x3000, buf.pa, kS1Attrs | ly::pte::Uxn::Make(1));
  MapPage(root, 0x4000, buf.pa, kS1Attrs);  // EL0-writable: never EL1-executable
  uint32_t v = 0;
  EXPECT_TRUE(Read(kSid, 0x1000, &v).ok());
  EXPECT_EQ(Write(kSid, 0x1000, 1), Status::IoError());
  EXPECT_EQ(Read(kSid, 0x2000, &v), Status::IoError());
  EXPECT_TRUE(Read(kSid, 0x2000, &v, {.privileged = true}).ok());
  EXPECT_TRUE(Write(kSid, 0x2000, 1, {.privileged = true}).ok());
  EXPECT_EQ(Read(kSid, 0x3000, &v, {.instruction = true}), Status::IoError());
  EXPECT_TRUE(Read(kSid, 0x3000, &v).ok());
  EXPECT_TRUE(Read(kSid, 0x4000, &v, {.instruction = true}).ok());
  EXPECT_EQ(Read(kSid, 0x4000, &v, {.privileged = true, .instruction = true}), Status::IoError());
  const auto ev = Events();
  ASSERT_EQ(ev.size(), 4u);
  for (const auto& e : ev) EXPECT_EQ(e.type(), ly::evt::kFPermission);
  // Hierarchical APTable[1] (no write below) on the level 2 table descriptor.
  uint64_t* d = Slot(root, 0x4000, 2);
  *d |= ly::pte::ApTable::Make(0b10);
  mem_->Clean(d, 8);
  Submit({CmdTlbiAsid(kAsid), CmdSync()});
  EXPECT_EQ(Write(kSid, 0x4000, 1), Status::IoError());
  EXPECT_TRUE(Read(kSid, 0x4000, &v).ok());
}

TEST_F(SmmuModelTest, BadAndUnfetchableContextDescriptors) {
  Init();
  const uint64_t root = NewTable();
  const DmaBuffer cds = Alloc(4096);
  struct Case {
    uint32_t sid;
    std::array<uint64_t, 8> cd;
  };
  std::vector<Case> cases;
  auto c = Cd(root, 1);
  ly::cd::V::Put(c.data(), 0);
  cases.push_back({10, c});
  c = Cd(root, 1);
  ly::cd::A::Put(c.data(), 0);  // TERM_MODEL = 1 requires A
  cases.push_back({11, c});
  cases.push_back({12, Cd(root, 1, /*t0sz=*/12)});
  cases.push_back({13, Cd(root, 1, 16, /*tg0=*/3)});
  c = Cd(root, 1);
  ly::cd::Aa64::Put(c.data(), 0);
  cases.push_back({14, c});
  for (size_t i = 0; i < cases.size(); ++i) {
    WriteWords(cds.pa + i * 64, cases[i].cd.data(), 8);
    WriteSte(cases[i].sid, SteS1(cds.pa + i * 64));
  }
  WriteSte(15, SteS1(0x0000'0100'0000'0000));  // CD outside memory
  for (const Case& k : cases) EXPECT_EQ(Write(k.sid, 0x1000, 1), Status::IoError());
  EXPECT_EQ(Write(15, 0x1000, 1), Status::IoError());
  const auto ev = Events();
  ASSERT_EQ(ev.size(), cases.size() + 1);
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(ev[i].type(), ly::evt::kCBadCd) << i;
    EXPECT_EQ(ev[i].stream_id(), cases[i].sid);
  }
  EXPECT_EQ(ev.back().type(), ly::evt::kFCdFetch);
  EXPECT_EQ(ev.back().fetch_addr(), 0x0000'0100'0000'0000u);
}

// ---- Stage 2 ----

TEST_F(SmmuModelTest, Stage2WithSixteenConcatenatedTables) {
  Init();
  // 4K granule, S2T0SZ = 30 (34-bit IPA), SL0 = 0: start at level 2, which resolves IPA bits
  // [33:21] = 13 bits: 2^13 entries = 16 concatenated 4 KiB tables, aligned to 64 KiB.
  const DmaBuffer root = Alloc(size_t{16} * 4096, size_t{16} * 4096);
  const DmaBuffer l3 = Alloc(4096);
  const DmaBuffer buf = Alloc(4096);
  const uint64_t ipa = 0x3'C000'5000;  // level 2 index 0x1E00: the 16th table
  Write64At(root.pa + ((ipa >> 21) & 0x1FFF) * 8, l3.pa | kPage);
  Write64At(l3.pa + ((ipa >> 12) & 511) * 8, buf.pa | kS2AttrsRw | kPage);
  WriteSte(kSid, SteS2(root.pa, S2Geometry{.t0sz = 30, .sl0 = 0}, kVmid));
  ASSERT_TRUE(Write(kSid, ipa + 0x10, 0x5A5A).ok());
  EXPECT_EQ(CpuRead32(buf.pa + 0x10), 0x5A5Au);

  EXPECT_EQ(Write(kSid, ipa + 0x1000, 1), Status::IoError());       // unmapped
  EXPECT_EQ(Write(kSid, uint64_t{1} << 34, 1), Status::IoError());  // beyond S2T0SZ
  auto ev = Events();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].type(), ly::evt::kFTranslation);
  EXPECT_TRUE(ev[0].s2());
  EXPECT_EQ(ev[0].ipa(), ipa + 0x1000);
  EXPECT_EQ(ev[0].input_addr(), ipa + 0x1000);
  EXPECT_TRUE(ev[1].s2());

  // Read-only at stage 2: a write is a stage 2 permission fault; S2R = 0 silences it.
  Write64At(l3.pa + ((ipa >> 12) & 511) * 8,
            (buf.pa | kS2AttrsRw | kPage) & ~ly::pte::S2Ap::Make(0b10));
  Submit({CmdTlbiS2Ipa(kVmid, ipa, true), CmdSync()});
  uint32_t v = 0;
  EXPECT_TRUE(Read(kSid, ipa + 0x10, &v).ok());
  EXPECT_EQ(Write(kSid, ipa, 1), Status::IoError());
  ev = Events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type(), ly::evt::kFPermission);
  EXPECT_TRUE(ev[0].s2());
  WriteSte(kSid, SteS2(root.pa, S2Geometry{.t0sz = 30, .sl0 = 0}, kVmid, /*record=*/false));
  Submit({CmdCfgiSte(kSid), CmdSync()});
  EXPECT_EQ(Write(kSid, ipa, 1), Status::IoError());
  EXPECT_TRUE(Events().empty());
}

TEST_F(SmmuModelTest, Stage2GeometryIsValidated) {
  Init();
  const DmaBuffer root = Alloc(4096);
  // SL0 = 0 (level 2) with a 40-bit IPA would need 512 concatenated tables.
  WriteSte(1, SteS2(root.pa, S2Geometry{.t0sz = 24, .sl0 = 0}, kVmid));
  WriteSte(2, SteS2(root.pa, S2Geometry{.t0sz = 24, .sl0 = 3}, kVmid));  // reserved SL0
  WriteSte(3, SteS2(root.pa, S2Geometry{.t0sz = 19, .sl0 = 2}, kVmid));  // IPA beyond IAS 44
  auto nested = SteS2(root.pa, S2Geometry{}, kVmid);
  ly::ste::Config::Put(nested.data(), ly::ste::kConfigNested);
  WriteSte(4, nested);
  for (uint32_t sid = 1; sid <= 4; ++sid) EXPECT_EQ(Write(sid, 0x1000, 1), Status::IoError());
  const auto ev = Events();
  ASSERT_EQ(ev.size(), 4u);
  for (const auto& e : ev) EXPECT_EQ(e.type(), ly::evt::kCBadSte);
}

TEST_F(SmmuModelTest, Stage2BuiltByPgtableEngine) {
  if constexpr (!config::kStage2) GTEST_SKIP() << "the engine is built without stage 2";
  Init();
  NoFlush flush;
  pgtable::PageTable pt(pgtable::Config::SmmuStage2(pgtable::Granule::k4KiB, 40, 44, true),
                        mem_->tables_4k(), flush);
  ASSERT_TRUE(pt.Init().ok());
  const DmaBuffer buf = Alloc(2u << 20, 2u << 20);
  ASSERT_TRUE(pt.Map(0x80'0000'0000 - 0x20'0000, buf.pa, 2u << 20, pgtable::kPermReadWrite,
                     pgtable::MemType::kNormalWriteBack)
                  .ok());
  const auto sl0 = 2 - pt.start_level();
  WriteSte(kSid, SteS2(pt.root(), S2Geometry{.t0sz = 24, .sl0 = sl0}, kVmid));
  ASSERT_TRUE(Write(kSid, 0x80'0000'0000 - 0x1000, 0x77).ok());
  EXPECT_EQ(CpuRead32(buf.pa + (2u << 20) - 0x1000), 0x77u);
  EXPECT_TRUE(Events().empty());
}

// ---- Caches ----

TEST_F(SmmuModelTest, IotlbHoldsUntilTlbiAndSync) {
  Init();
  const uint64_t root = SetUpS1Stream(kSid, kAsid);
  const DmaBuffer buf = Alloc(4096);
  MapPage(root, 0x1000, buf.pa);
  ASSERT_TRUE(Write(kSid, 0x1000, 1).ok());
  EXPECT_EQ(smmu_->iotlb_occupancy(), 1u);
  SetDesc(root, 0x1000, 3, 0);               // cleared without invalidation
  EXPECT_TRUE(Write(kSid, 0x1000, 2).ok());  // the stale entry still translates
  EXPECT_EQ(CpuRead32(buf.pa), 2u);
  Submit({CmdTlbiVa(kAsid + 1, 0x1000, true), CmdSync()});  // another ASID
  EXPECT_TRUE(Write(kSid, 0x1000, 3).ok());
  Submit({CmdTlbiVa(kAsid, 0x1000, true), CmdSync()});
  EXPECT_TRUE(QueueDrained());
  EXPECT_EQ(Write(kSid, 0x1000, 4), Status::IoError());
  EXPECT_EQ(CpuRead32(buf.pa), 3u);
  EXPECT_EQ(smmu_->iotlb_occupancy(), 0u);
  EXPECT_EQ(smmu_->command_count(ly::cmd::kTlbiNhVa), 2u);
  EXPECT_EQ(smmu_->sync_count(), 2u);
}

TEST_F(SmmuModelTest, IotlbIsBoundedFifo) {
  Setup s;
  s.model.iotlb_entries = 4;
  Init(s);
  const uint64_t root = SetUpS1Stream(kSid, kAsid);
  const DmaBuffer buf = Alloc(size_t{8} * 4096);
  for (uint64_t i = 0; i < 8; ++i) MapPage(root, 0x10000 + i * 0x1000, buf.pa + i * 0x1000);
  for (uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(Write(kSid, 0x10000 + i * 0x1000, 1).ok());
  EXPECT_EQ(smmu_->iotlb_occupancy(), 4u);
  SetDesc(root, 0x10000, 3, 0);  // page 0 was evicted: the change is seen at once
  SetDesc(root, 0x17000, 3, 0);  // page 7 is cached
  EXPECT_EQ(Write(kSid, 0x10000, 1), Status::IoError());
  EXPECT_TRUE(Write(kSid, 0x17000, 1).ok());
}

TEST_F(SmmuModelTest, GlobalEntriesSurviveAsidInvalidation) {
  Init();
  const uint64_t root = SetUpS1Stream(kSid, kAsid);
  const DmaBuffer buf = Alloc(4096);
  MapPage(root, 0x1000, buf.pa, kS1Attrs & ~ly::pte::NG::kMask);  // global
  ASSERT_TRUE(Write(kSid, 0x1000, 1).ok());
  SetDesc(root, 0x1000, 3, 0);
  Submit({CmdTlbiAsid(kAsid), CmdSync()});
  EXPECT_TRUE(Write(kSid, 0x1000, 2).ok());
  Submit({CmdTlbiVa(kAsid + 5, 0x1000, true), CmdSync()});  // NH_VA matches global entries
  EXPECT_EQ(Write(kSid, 0x1000, 3), Status::IoError());
}

TEST_F(SmmuModelTest, Stage1EntriesAreTaggedWithTheSteVmid) {
  Init();
  const uint64_t root = SetUpS1Stream(kSid, kAsid, true, /*vmid=*/kVmid);
  const DmaBuffer buf = Alloc(4096);
  MapPage(root, 0x1000, buf.pa);
  ASSERT_TRUE(Write(kSid, 0x1000, 1).ok());
  SetDesc(root, 0x1000, 3, 0);
  Submit({CmdTlbiVa(kAsid, 0x1000, true, {}, /*vmid=*/0), CmdSync()});
  EXPECT_TRUE(Write(kSid, 0x1000, 2).ok());
  Submit({CmdTlbiVa(kAsid, 0x1000, true, {}, kVmid), CmdSync()});
  EXPECT_EQ(Write(kSid, 0x1000, 3), Status::IoError());
}

TEST_F(SmmuModelTest, TtlHintOnlyInvalidatesLeavesOfThatLevel) {
  Init();
  const uint64_t root = SetUpS1Stream(kSid, kAsid);
  const DmaBuffer buf = Alloc(2u << 20, 2u << 20);
  const uint64_t iova = 0x4000'0000;
  SetDesc(root, iova, 2, buf.pa | kS1Attrs | kBlock);  // a 2 MiB block: a level 2 leaf
  ASSERT_TRUE(Write(kSid, iova + 0x1234, 1).ok());
  SetDesc(root, iova, 2, 0);
  const Range wrong_ttl{.tg = 1, .ttl = 3, .num = 0, .scale = 9};  // 512 pages, level 3
  Submit({CmdTlbiVa(kAsid, iova, true, wrong_ttl), CmdSync()});
  EXPECT_TRUE(Write(kSid, iova + 0x1234, 2).ok());  // a level 2 entry survives TTL = 3
  const Range wrong_tg{.tg = 3, .ttl = 0, .num = 0, .scale = 5};  // 64K granule: no match
  Submit({CmdTlbiVa(kAsid, iova, true, wrong_tg), CmdSync()});
  EXPECT_TRUE(Write(kSid, iova + 0x1234, 3).ok());
  const Range right{.tg = 1, .ttl = 2, .num = 0, .scale = 0};  // one page of the block, level 2
  Submit({CmdTlbiVa(kAsid, iova + 0x10'0000, true, right), CmdSync()});
  EXPECT_EQ(Write(kSid, iova + 0x1234, 4), Status::IoError());
}

TEST_F(SmmuModelTest, RangeInvalidationCoversNumPlusOneTimesTwoToScaleGranules) {
  Init();
  const uint64_t root = SetUpS1Stream(kSid, kAsid);
  const DmaBuffer buf = Alloc(size_t{64} * 4096);
  const uint64_t base = 0x100'0000;
  for (uint64_t i = 0; i < 64; ++i) MapPage(root, base + i * 0x1000, buf.pa + i * 0x1000);
  for (uint64_t i = 0; i < 64; ++i) ASSERT_TRUE(Write(kSid, base + i * 0x1000, 1).ok());
  for (uint64_t i = 0; i < 64; ++i) SetDesc(root, base + i * 0x1000, 3, 0);
  // NUM = 2, SCALE = 2: (2 + 1) * 2^2 = 12 pages from page 8 (the address is aligned down to
  // the 4K granule): pages 8..19.
  const Range r{.tg = 1, .ttl = 3, .num = 2, .scale = 2};
  Submit({CmdTlbiVa(kAsid, base + uint64_t{8} * 0x1000 + 0x123, true, r), CmdSync()});
  for (uint64_t i = 0; i < 64; ++i) {
    const bool invalidated = i >= 8 && i < 20;
    EXPECT_EQ(Write(kSid, base + i * 0x1000, 2).ok(), !invalidated) << "page " << i;
  }
}

TEST_F(SmmuModelTest, LeafInvalidationKeepsTheWalkCache) {
  Init();
  const uint64_t root = SetUpS1Stream(kSid, kAsid);
  const DmaBuffer a = Alloc(4096);
  const DmaBuffer b = Alloc(4096);
  const uint64_t iova = 0x20'0000;
  MapPage(root, iova, a.pa);
  ASSERT_TRUE(Write(kSid, iova, 1).ok());
  EXPECT_GT(smmu_->walk_cache_occupancy(), 0u);
  // Replace the level 3 table by another one that maps the page to `b`.
  const uint64_t new_l3 = NewTable();
  Write64At(new_l3 + ((iova >> 12) & 511) * 8, b.pa | kS1Attrs | kPage);
  SetDesc(root, iova, 2, new_l3 | kPage);
  Submit({CmdTlbiVa(kAsid, iova, /*leaf=*/true), CmdSync()});
  ASSERT_TRUE(Write(kSid, iova, 2).ok());
  EXPECT_EQ(CpuRead32(a.pa), 2u);  // the cached table descriptor still leads to the old table
  Submit({CmdTlbiVa(kAsid, iova, /*leaf=*/false), CmdSync()});
  ASSERT_TRUE(Write(kSid, iova, 3).ok());
  EXPECT_EQ(CpuRead32(b.pa), 3u);
}

TEST_F(SmmuModelTest, ConfigurationIsCachedUntilCfgi) {
  Init();
  const DmaBuffer buf = Alloc(4096);
  WriteSte(kSid, SteWithConfig(ly::ste::kConfigBypass));
  ASSERT_TRUE(Write(kSid, buf.pa, 1).ok());
  WriteSte(kSid, SteWithConfig(ly::ste::kConfigAbort));
  EXPECT_TRUE(Write(kSid, buf.pa, 2).ok());  // the cached STE still bypasses
  Submit({CmdCfgiSte(kSid + 1), CmdSync()});
  EXPECT_TRUE(Write(kSid, buf.pa, 3).ok());
  Submit({CmdCfgiSte(kSid), CmdSync()});
  EXPECT_EQ(Write(kSid, buf.pa, 4), Status::IoError());
  EXPECT_EQ(smmu_->ste_fetches(), 2u);

  // CDs too: a changed ASID is not seen before CMD_CFGI_CD.
  const uint64_t root = SetUpS1Stream(kSid, kAsid);
  MapPage(root, 0x1000, buf.pa);
  Submit({CmdCfgiSte(kSid), CmdSync()});
  ASSERT_TRUE(Write(kSid, 0x1000, 5).ok());
  auto c = Cd(root, kAsid);
  ly::cd::V::Put(c.data(), 0);
  WriteWords(cd_pa_, c.data(), 8);
  Submit({CmdCfgiSte(kSid), CmdTlbiAsid(kAsid), CmdSync()});
  EXPECT_TRUE(Write(kSid, 0x1000, 6).ok());  // CFGI_STE does not drop the CD
  Submit({CmdCfgiCd(kSid), CmdSync()});
  EXPECT_EQ(Write(kSid, 0x1000, 7), Status::IoError());
  EXPECT_EQ(Events().at(0).type(), ly::evt::kCBadCd);
  // CFGI_ALL drops everything.
  Submit({CmdCfgiAll(), CmdSync()});
  EXPECT_EQ(smmu_->config_cache_occupancy(), 0u);
}

TEST_F(SmmuModelTest, CfgiSteRangeCoversAnAlignedPowerOfTwo) {
  Init();
  const DmaBuffer buf = Alloc(4096);
  for (uint32_t sid = 0; sid < 16; ++sid) WriteSte(sid, SteWithConfig(ly::ste::kConfigBypass));
  for (uint32_t sid = 0; sid < 16; ++sid) ASSERT_TRUE(Write(sid, buf.pa, 1).ok());
  for (uint32_t sid = 0; sid < 16; ++sid) WriteSte(sid, SteWithConfig(ly::ste::kConfigAbort));
  Command c = CmdWith(ly::cmd::kCfgiSteRange);
  ly::cmd::StreamId::Put(c.data(), 5);
  ly::cmd::CfgiRange::Put(c.data(), 1);  // 2^(1+1) = 4 StreamIDs: 4..7
  Submit({c, CmdSync()});
  for (uint32_t sid = 0; sid < 16; ++sid) {
    EXPECT_EQ(Write(sid, buf.pa, 2).ok(), sid < 4 || sid > 7) << sid;
  }
}

// ---- Command queue ----

TEST_F(SmmuModelTest, CommandQueueWraps) {
  Init(Setup{.cmdq_log2 = 2});  // 4 entries
  for (int i = 0; i < 10; ++i) {
    Submit({CmdSync()});
    EXPECT_TRUE(QueueDrained()) << i;
  }
  EXPECT_EQ(smmu_->sync_count(), 10u);
  EXPECT_EQ(CmdqCons() & 0x7, 10u & 0x7);                // index 2, wrap bit 0 (wrapped twice)
  Submit({CmdSync(), CmdSync(), CmdSync(), CmdSync()});  // a full queue
  EXPECT_TRUE(QueueDrained());
  EXPECT_EQ(smmu_->sync_count(), 14u);
  const auto log = smmu_->command_log();
  ASSERT_EQ(log.size(), 14u);
  EXPECT_EQ(log.back().opcode, ly::cmd::kSync);
}

TEST_F(SmmuModelTest, IllegalCommandStopsTheQueueUntilGerrorNAcknowledges) {
  Init();
  Command bad = CmdWith(0x7F);
  const uint32_t bad_index = cmdq_prod_;
  Submit({CmdSync(), bad, CmdSync()});
  EXPECT_EQ(CmdqCons() & 0xFFFFF, bad_index + 1);
  EXPECT_EQ(ly::queue_ptr::CmdqErr::Get(CmdqCons()), ly::cerror::kIll);
  const uint32_t gerror = smmu_->Read32(reg::kGerror);
  EXPECT_EQ((gerror ^ smmu_->Read32(reg::kGerrorN)), ly::gerror::CmdqErr::kMask);
  EXPECT_EQ(gerror_irqs_, 1);
  EXPECT_EQ(smmu_->sync_count(), 1u);
  // Further PROD writes do not restart it while the error is active.
  Submit({CmdSync()});
  EXPECT_EQ(smmu_->sync_count(), 1u);
  // Software replaces the bad entry (here by a CMD_SYNC) and acknowledges.
  WriteWords(cmdq_.pa + uint64_t{bad_index + 1} * 16, CmdSync().data(), 2);
  smmu_->Write32(reg::kGerrorN, gerror);
  EXPECT_TRUE(QueueDrained());
  EXPECT_EQ(smmu_->sync_count(), 4u);
  EXPECT_EQ(smmu_->command_errors(), 1u);
}

TEST_F(SmmuModelTest, IllegalFieldsAndUnsupportedCommands) {
  Setup s;
  s.model.stage2 = false;
  Init(s);
  const std::vector<Command> illegal = {
      CmdSync(3),                       // CS = 0b11 reserved
      CmdWith(ly::cmd::kTlbiS12Vmall),  // no stage 2
      CmdWith(ly::cmd::kTlbiEl2All),    // no HYP
      CmdWith(ly::cmd::kTlbiEl3All),    // Secure only
      CmdWith(ly::cmd::kAtcInv),        // no ATS
      [] {
        Command c = CmdCfgiSte(1);
        ly::cmd::SSec::Put(c.data(), 1);  // Secure StreamID from the Non-secure queue
        return c;
      }(),
  };
  for (const Command& c : illegal) {
    const uint32_t gerror = smmu_->Read32(reg::kGerror);
    Submit({c});
    EXPECT_EQ(ly::queue_ptr::CmdqErr::Get(CmdqCons()), ly::cerror::kIll);
    EXPECT_FALSE(QueueDrained());
    WriteWords(cmdq_.pa + uint64_t{(cmdq_prod_ - 1) & 63} * 16, CmdSync().data(), 2);
    smmu_->Write32(reg::kGerrorN, smmu_->Read32(reg::kGerror));
    EXPECT_NE(smmu_->Read32(reg::kGerror), gerror);
    EXPECT_TRUE(QueueDrained());
  }
}

TEST_F(SmmuModelTest, CommandReadAbortIsCerrorAbt) {
  Init(Setup{.enable = false});
  WriteCr0(0);
  smmu_->Write64(reg::kCmdqBase, 0x0000'0100'0000'0000 | 4);  // outside memory
  WriteCr0(kQueues);
  smmu_->Write32(reg::kCmdqProd, 1);
  EXPECT_EQ(ly::queue_ptr::CmdqErr::Get(CmdqCons()), ly::cerror::kAbt);
}

TEST_F(SmmuModelTest, SyncCompletionSignals) {
  Init();
  int sync_irqs = 0;
  smmu_->SetCmdSyncIrqHandler([&] { ++sync_irqs; });
  Submit({CmdSync(ly::cmd::kCsIrq), CmdSync(ly::cmd::kCsSev), CmdSync()});
  EXPECT_EQ(sync_irqs, 1);
  EXPECT_EQ(smmu_->sev_count(), 1u);
}

TEST_F(SmmuModelTest, RangeInvalidationWithUnsupportedGranuleIsIllegal) {
  Setup s;
  s.model.gran16k = false;
  Init(s);
  Submit({CmdTlbiVa(1, 0x4000, true, {.tg = 2, .ttl = 0, .num = 0, .scale = 0})});
  EXPECT_EQ(ly::queue_ptr::CmdqErr::Get(CmdqCons()), ly::cerror::kIll);
}

// ---- Event queue ----

TEST_F(SmmuModelTest, EventQueueOverflowTogglesOvflg) {
  Init(Setup{.eventq_log2 = 2});  // 4 records
  smmu_->FloodEvents(kSid, 6);
  EXPECT_EQ(smmu_->events_written(), 4u);
  EXPECT_EQ(smmu_->events_lost(), 2u);
  EXPECT_EQ(eventq_irqs_, 4);
  const uint32_t prod = smmu_->Read32(reg::kEventqProd);
  EXPECT_NE(ly::queue_ptr::Overflow::Get(prod), 0u);  // toggled once for two lost records
  const auto ev = Events();                           // acknowledges: OVACKFLG = OVFLG
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[3].input_addr(), 3u * 4096);
  EXPECT_EQ(ev[0].type(), ly::evt::kFTranslation);
  // The queue has wrapped: the next records go to entries 0.. with the wrap bit set.
  smmu_->FloodEvents(kSid, 5);
  // Four fit (PROD: index 0, wrap 0, so full against CONS = index 0, wrap 1); the fifth is lost
  // and OVFLG toggles back to 0, differing again from the OVACKFLG (1) just written.
  EXPECT_EQ(smmu_->Read32(reg::kEventqProd) & 0x7, 0u);
  EXPECT_EQ(ly::queue_ptr::Overflow::Get(smmu_->Read32(reg::kEventqProd)), 0u);
  EXPECT_EQ(Events().size(), 4u);
}

TEST_F(SmmuModelTest, EventsAreDroppedWhileTheQueueIsDisabled) {
  Init();
  WriteCr0(static_cast<uint32_t>(ly::cr0::CmdqEn::kMask) | kSmmuEn);
  smmu_->FloodEvents(kSid, 3);
  EXPECT_EQ(smmu_->events_written(), 0u);
  EXPECT_EQ(smmu_->events_lost(), 3u);
}

TEST_F(SmmuModelTest, EventQueueWriteAbortRaisesGerror) {
  Init(Setup{.enable = false});
  WriteCr0(0);
  smmu_->Write64(reg::kEventqBase, 0x0000'0100'0000'0000 | 2);
  WriteCr0(kQueues);
  smmu_->FloodEvents(kSid, 1);
  EXPECT_EQ(smmu_->Read32(reg::kGerror) ^ smmu_->Read32(reg::kGerrorN),
            ly::gerror::EventqAbtErr::kMask);
  EXPECT_EQ(gerror_irqs_, 1);
}

// ---- Fault injection ----

TEST_F(SmmuModelTest, InjectedIllegalCommand) {
  Init();
  smmu_->InjectIllegalCommand(ly::cmd::kTlbiNhAll, 1);
  Command all = CmdWith(ly::cmd::kTlbiNhAll);
  Submit({all, CmdSync()});
  EXPECT_EQ(ly::queue_ptr::CmdqErr::Get(CmdqCons()), ly::cerror::kIll);
  EXPECT_EQ(smmu_->sync_count(), 0u);
  // Retried unchanged after the acknowledgement, it now succeeds.
  smmu_->Write32(reg::kGerrorN, smmu_->Read32(reg::kGerror));
  EXPECT_TRUE(QueueDrained());
  EXPECT_EQ(smmu_->command_count(ly::cmd::kTlbiNhAll), 1u);
}

TEST_F(SmmuModelTest, InjectedCr0AckStuck) {
  Init(Setup{.enable = false});
  smmu_->SetCr0AckStuck(true);
  WriteCr0(kQueues | kSmmuEn);
  EXPECT_EQ(smmu_->Read32(reg::kCr0Ack), kQueues);
  // Not acknowledged means not in effect: DMA still bypasses.
  const DmaBuffer buf = Alloc(4096);
  EXPECT_TRUE(Write(kSid, buf.pa, 1).ok());
  smmu_->SetCr0AckStuck(false);
  EXPECT_EQ(smmu_->Read32(reg::kCr0Ack), kQueues | kSmmuEn);
  EXPECT_EQ(Write(kSid, buf.pa, 1), Status::IoError());  // STE V = 0
}

TEST_F(SmmuModelTest, InjectedSyncStall) {
  Init();
  smmu_->SetCmdSyncStall(true);
  const uint32_t sync_index = cmdq_prod_ + 1;
  Submit({CmdCfgiAll(), CmdSync()});
  EXPECT_EQ(CmdqCons() & 0xFFFFF, sync_index);  // stopped in front of the CMD_SYNC
  EXPECT_EQ(smmu_->sync_count(), 0u);
  smmu_->SetCmdSyncStall(false);
  EXPECT_TRUE(QueueDrained());
}

TEST_F(SmmuModelTest, InjectedIrqCtrlAckAndGbpaUpdateStuck) {
  Init(Setup{.enable = false});
  smmu_->SetIrqCtrlAckStuck(true);
  smmu_->Write32(reg::kIrqCtrl, 0);
  EXPECT_NE(smmu_->Read32(reg::kIrqCtrlAck), 0u);
  smmu_->SetIrqCtrlAckStuck(false);
  EXPECT_EQ(smmu_->Read32(reg::kIrqCtrlAck), 0u);

  smmu_->SetGbpaUpdateStuck(true);
  smmu_->Write32(reg::kGbpa,
                 static_cast<uint32_t>(ly::gbpa::Abort::kMask | ly::gbpa::Update::kMask));
  EXPECT_NE(ly::gbpa::Update::Get(smmu_->Read32(reg::kGbpa)), 0u);
  const DmaBuffer buf = Alloc(4096);
  EXPECT_TRUE(Write(kSid, buf.pa, 1).ok());  // not applied yet
  smmu_->SetGbpaUpdateStuck(false);
  EXPECT_EQ(smmu_->Read32(reg::kGbpa), static_cast<uint32_t>(ly::gbpa::Abort::kMask));
  EXPECT_EQ(Write(kSid, buf.pa, 1), Status::IoError());
}

// ---- Non-coherent memory ----

TEST_F(SmmuModelTest, NonCoherentModelSeesOnlyWhatWasCleaned) {
  Init(Setup{.coherent = false});
  EXPECT_EQ(ly::idr0::Cohacc::Get(smmu_->Read32(reg::kIdr0)), 0u);
  const DmaBuffer buf = Alloc(4096);
  WriteSte(kSid, SteWithConfig(ly::ste::kConfigBypass), /*clean=*/false);
  EXPECT_EQ(Write(kSid, buf.pa, 1), Status::IoError());  // the model saw V = 0
  // Events reach the PoC only: the CPU sees them after invalidating (Events() does).
  const uint64_t* rec = Cpu64(eventq_.pa);
  EXPECT_EQ(rec[0], 0u);
  const auto ev = Events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type(), ly::evt::kCBadSte);
  mem_->Clean(Cpu64(strtab_.pa + uint64_t{kSid} * 64), 64);
  EXPECT_TRUE(Write(kSid, buf.pa, 1).ok());  // invalid STEs are not cached
  // A command not cleaned is not seen either: the model reads a zero opcode (illegal).
  Cpu64(cmdq_.pa)[0] = CmdSync()[0];
  smmu_->Write32(reg::kCmdqProd, 1);
  EXPECT_EQ(ly::queue_ptr::CmdqErr::Get(CmdqCons()), ly::cerror::kIll);
}

// ---- Concurrency: a device thread against the driver thread ----

TEST_F(SmmuModelTest, DeviceThreadRacesDriverThread) {
  Init();
  const uint64_t root = SetUpS1Stream(kSid, kAsid);
  const DmaBuffer buf = Alloc(size_t{16} * 4096);
  for (uint64_t i = 0; i < 16; ++i) MapPage(root, 0x10000 + i * 0x1000, buf.pa + i * 0x1000);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread device([&] {
    uint64_t i = 0;
    while (!stop.load()) {
      const uint64_t iova = 0x10000 + (i % 16) * 0x1000 + (i % 64) * 8;
      uint32_t v = static_cast<uint32_t>(i);
      if (!smmu_->DeviceWrite(kSid, iova, &v, sizeof(v)).ok()) failures.fetch_add(1);
      if (!smmu_->DeviceRead(kSid, iova, &v, sizeof(v)).ok()) failures.fetch_add(1);
      ++i;
    }
  });
  for (int round = 0; round < 200; ++round) {
    Submit({CmdTlbiAsid(kAsid), CmdCfgiSte(kSid), CmdCfgiCd(kSid), CmdSync()});
    EXPECT_TRUE(QueueDrained());
    (void)smmu_->Read32(reg::kGerror);
    (void)smmu_->iotlb_occupancy();
  }
  stop.store(true);
  device.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(Events().empty());
}

// ---- 16K and 64K granules through the pgtable engine ----

class GranuleTest : public SmmuModelTest, public ::testing::WithParamInterface<pgtable::Granule> {};

TEST_P(GranuleTest, Stage1TranslatesAndRangeInvalidates) {
  if constexpr (!config::kGranule16K64K) GTEST_SKIP() << "the engine is built with 4 KiB only";
  Init();
  const pgtable::Granule g = GetParam();
  const uint64_t page = uint64_t{1} << static_cast<unsigned>(g);
  NoFlush flush;
  pgtable::TablePool& pool = g == pgtable::Granule::k64KiB ? mem_->tables_64k() : mem_->tables_4k();
  // SimPhysMemory has no 16 KiB pool: carve one out of DMA memory. (Declared before the page
  // table, which must be destroyed first.)
  std::vector<uint64_t> bitmap(64, 0);
  std::vector<pgtable::TableCounts> counts(64);
  std::unique_ptr<pgtable::TablePool> pool16;
  pgtable::TableMemory* tables = &pool;
  if (g == pgtable::Granule::k16KiB) {
    const DmaBuffer pool16_mem = Alloc(size_t{64} * 16384, 16384);
    pool16 = std::make_unique<pgtable::TablePool>(pool16_mem.cpu, pool16_mem.pa, 16384, 64,
                                                  bitmap.data(), counts.data());
    tables = pool16.get();
  }
  auto pt = std::make_unique<pgtable::PageTable>(pgtable::Config::SmmuStage1(g, 48, 44, true),
                                                 *tables, flush);
  ASSERT_TRUE(pt->Init().ok());
  const DmaBuffer buf = Alloc(4 * page, page);
  const uint64_t iova = 0x12'0000'0000;
  ASSERT_TRUE(
      pt->Map(iova, buf.pa, 4 * page, pgtable::kPermReadWrite, pgtable::MemType::kNormalWriteBack)
          .ok());
  const unsigned tg0 = g == pgtable::Granule::k64KiB ? 1 : 2;
  const DmaBuffer cd = Alloc(64, 64);
  const auto c = Cd(pt->root(), kAsid, 16, tg0);
  WriteWords(cd.pa, c.data(), 8);
  WriteSte(kSid, SteS1(cd.pa));
  for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(Write(kSid, iova + i * page + 4, 0x40 + i).ok());
  EXPECT_EQ(CpuRead32(buf.pa + 3 * page + 4), 0x43u);
  ASSERT_TRUE(pt->Unmap(iova, 4 * page).ok());  // NoFlush: entries remain cached
  for (uint64_t i = 0; i < 4; ++i) EXPECT_TRUE(Write(kSid, iova + i * page, 1).ok());
  // TG = this granule, NUM = 1, SCALE = 0: pages 1 and 2.
  const unsigned tg = g == pgtable::Granule::k64KiB ? 3 : 2;
  // Leaf = 0: Unmap freed the tables, so the walk cache must go too.
  Submit({CmdTlbiVa(kAsid, iova + page, false, {.tg = tg, .ttl = 3, .num = 1, .scale = 0}),
          CmdSync()});
  EXPECT_TRUE(Write(kSid, iova, 1).ok());
  EXPECT_EQ(Write(kSid, iova + page, 1), Status::IoError());
  EXPECT_EQ(Write(kSid, iova + 2 * page, 1), Status::IoError());
  EXPECT_TRUE(Write(kSid, iova + 3 * page, 1).ok());
}

INSTANTIATE_TEST_SUITE_P(Granules, GranuleTest,
                         ::testing::Values(pgtable::Granule::k16KiB, pgtable::Granule::k64KiB));

// ---- Command legality (IHI0070 4, 4.4.1.1, 7.1): one legal and one illegal encoding per rule ----

using Rule = SmmuModel::CommandRule;

// A command with one more bit set.
Command WithBit(Command c, unsigned word, unsigned bit) {
  c[word] |= uint64_t{1} << bit;
  return c;
}
Command Cmd(uint8_t op, uint64_t w0, uint64_t w1) {
  Command c = CmdWith(op);
  c[0] |= w0;
  c[1] |= w1;
  return c;
}
Command Va(Range r, bool leaf = false, uint8_t op = ly::cmd::kTlbiNhVa) {
  Command c = CmdTlbiVa(op == ly::cmd::kTlbiNhVa ? 1 : 0, 0x40'0000, leaf, r);  // ASID or RES0
  ly::cmd::Opcode::Put(c.data(), op);
  return c;
}

struct LegalityCase {
  const char* what;
  SmmuModel::Options options;
  Command legal;
  Command illegal;
  Rule rule;
};

SmmuModel::Options With(void (*edit)(SmmuModel::Options&)) {
  SmmuModel::Options o;
  edit(o);
  return o;
}

std::vector<LegalityCase> LegalityCases() {
  namespace c = ly::cmd;
  const SmmuModel::Options def;
  const auto hyp = With([](SmmuModel::Options& o) { o.hyp = true; });
  const auto no_ril = With([](SmmuModel::Options& o) { o.ril = false; });
  const auto v32_no_ril = With([](SmmuModel::Options& o) {
    o.ril = false;
    o.arch_minor = 2;
  });
  std::vector<LegalityCase> cases = {
      {"reserved opcode", def, CmdSync(), CmdWith(0x7F), Rule::kOpcode},
      {"ATS command without ATS", def, CmdSync(), CmdWith(c::kAtcInv), Rule::kOpcode},
      {"Secure-only command", def, CmdWith(c::kTlbiNsnhAll), CmdWith(c::kTlbiEl3All),
       Rule::kOpcode},
      {"SSec on the Non-secure queue", def, CmdCfgiSte(1),
       [] {
         Command k = CmdCfgiSte(1);
         ly::cmd::SSec::Put(k.data(), 1);
         return k;
       }(),
       Rule::kSsec},
      {"ASID16 = 0: ASID[15:8]", With([](SmmuModel::Options& o) { o.asid16 = false; }),
       CmdTlbiAsid(0xFF), CmdTlbiAsid(0x100), Rule::kAsidWidth},
      {"VMID16 = 0: VMID[15:8]", def, CmdTlbiAsid(1, 0xFF), CmdTlbiAsid(1, 0x100),
       Rule::kVmidWidth},
      {"S2_IPA VMID16 = 0", def, CmdTlbiS2Ipa(0xFF, 0x1000, true),
       CmdTlbiS2Ipa(0x100, 0x1000, true), Rule::kVmidWidth},
      {"S1P = 0: CMD_TLBI_NH_*", With([](SmmuModel::Options& o) { o.stage1 = false; }),
       CmdWith(c::kTlbiS12Vmall), CmdWith(c::kTlbiNhAll), Rule::kStage1Absent},
      {"S2P = 0: CMD_TLBI_S12_VMALL", With([](SmmuModel::Options& o) { o.stage2 = false; }),
       CmdWith(c::kTlbiNhAll), CmdWith(c::kTlbiS12Vmall), Rule::kStage2Absent},
      {"S2P = 0: CMD_TLBI_S2_IPA", With([](SmmuModel::Options& o) { o.stage2 = false; }),
       CmdTlbiVa(1, 0x1000, true), CmdTlbiS2Ipa(1, 0x1000, true), Rule::kStage2Absent},
      {"HYP = 0: CMD_TLBI_EL2_*", def, CmdWith(c::kTlbiNsnhAll), CmdWith(c::kTlbiEl2All),
       Rule::kHypAbsent},
      {"RIL = 0: NUM", no_ril, Va({}), Va({.num = 1}), Rule::kRangeNoRil},
      {"RIL = 0: SCALE", no_ril, Va({}), Va({.scale = 1}), Rule::kRangeNoRil},
      {"SMMUv3.1 without RIL: TG/TTL are RES0", no_ril, Va({}), Va({.tg = 1, .ttl = 3}),
       Rule::kHintNoV32},
      {"SMMUv3.2 without RIL: TTL hint legal, TTL 1 at 64K not", v32_no_ril,
       Va({.tg = 1, .ttl = 3}, true), Va({.tg = 3, .ttl = 1}, true), Rule::kTtlLevel},
      {"TG names an unsupported granule", With([](SmmuModel::Options& o) { o.gran16k = false; }),
       Va({.tg = 1, .num = 1}), Va({.tg = 2, .num = 1}), Rule::kTgGranule},
      // The driver's single-page unmap that frees a table (Leaf = 0), before issue 10.
      {"RIL = 1: TG != 0, TTL = NUM = SCALE = 0 (table-freeing unmap)", def,
       Va({.tg = 1, .num = 1}), Va({.tg = 1}), Rule::kRangeZero},
      {"RIL = 1: TG != 0, TTL = NUM = SCALE = 0, Leaf = 1", def, Va({.tg = 1, .ttl = 3}, true),
       Va({.tg = 1}, true), Rule::kRangeZero},
      {"RIL = 1: the same for stage 2", def, Va({.tg = 1, .scale = 1}, false, c::kTlbiS2Ipa),
       Va({.tg = 1}, false, c::kTlbiS2Ipa), Rule::kRangeZero},
      {"RIL = 1: the same for NH_VAA", def, Va({.tg = 3, .ttl = 3}, false, c::kTlbiNhVaa),
       Va({.tg = 3}, false, c::kTlbiNhVaa), Rule::kRangeZero},
      {"TTL 1 with the 16K granule", def, Va({.tg = 1, .ttl = 1}), Va({.tg = 2, .ttl = 1}),
       Rule::kTtlLevel},
      {"TTL 1 with the 64K granule", def, Va({.tg = 3, .ttl = 2}), Va({.tg = 3, .ttl = 1}),
       Rule::kTtlLevel},
      {"TTL without TG", def, Va({}), Va({.ttl = 2}), Rule::kTtlWithoutTg},
      {"NUM without TG", def, Va({}), Va({.num = 3}), Rule::kTtlWithoutTg},
      {"CMD_SYNC CS = 0b11", def, CmdSync(ly::cmd::kCsSev), CmdSync(3), Rule::kSyncCs},
      {"CMD_CFGI_CD SubstreamID beyond SSIDSIZE = 0", def, CmdCfgiCd(1),
       [] {
         Command k = CmdCfgiCd(1);
         ly::cmd::SubstreamId::Put(k.data(), 1);
         return k;
       }(),
       Rule::kSubstreamId},
  };
  // RES0: every command the model accepts, with word 0 bit 8 (RES0 in all of them) set, and a
  // RES0 bit of word 1 where the command has one.
  struct Res0 {
    Command legal;
    int w1_bit;  // -1: none checked
  };
  const Res0 res0[] = {
      {Cmd(c::kPrefetchConfig, ly::cmd::StreamId::Make(1), 0), 0},
      {Cmd(c::kPrefetchAddr, ly::cmd::StreamId::Make(1), 0x1000), -1},
      {CmdCfgiSte(1), 1},
      {Cmd(c::kCfgiSteRange, 0, ly::cmd::CfgiRange::Make(4)), 5},
      {CmdCfgiCd(1), 1},
      {Cmd(c::kCfgiCdAll, ly::cmd::StreamId::Make(1), 0), 0},
      {CmdWith(c::kTlbiNhAll), 12},
      {CmdTlbiAsid(1), 63},
      {CmdTlbiVa(1, 0x1000, true), 1},
      {Cmd(c::kTlbiNhVaa, 0, 0x1000), 7},
      {CmdWith(c::kTlbiS12Vmall), 0},
      {CmdTlbiS2Ipa(1, 0x1000, true), 60},
      {CmdWith(c::kTlbiNsnhAll), 0},
      {CmdSync(), 0},
  };
  for (const Res0& r : res0) {
    cases.push_back({"RES0 word 0 bit 8", def, r.legal, WithBit(r.legal, 0, 8), Rule::kRes0});
    if (r.w1_bit >= 0) {
      cases.push_back({"RES0 in word 1", def, r.legal,
                       WithBit(r.legal, 1, static_cast<unsigned>(r.w1_bit)), Rule::kRes0});
    }
  }
  // The ASID field of commands that have none is RES0 (NH_VAA, NH_ALL) and the VMID field of
  // the EL2 forms.
  cases.push_back({"RES0 ASID in NH_VAA", def, Cmd(c::kTlbiNhVaa, 0, 0x1000),
                   Cmd(c::kTlbiNhVaa, ly::cmd::TlbiAsid::Make(1), 0x1000), Rule::kRes0});
  cases.push_back({"RES0 ASID in NH_ALL", def, CmdWith(c::kTlbiNhAll),
                   Cmd(c::kTlbiNhAll, ly::cmd::TlbiAsid::Make(1), 0), Rule::kRes0});
  for (uint8_t op : {c::kTlbiEl2All, c::kTlbiEl2Asid, c::kTlbiEl2Va, c::kTlbiEl2Vaa}) {
    const Command legal = Cmd(op, 0, op == c::kTlbiEl2Va || op == c::kTlbiEl2Vaa ? 0x1000 : 0);
    cases.push_back({"RES0 VMID in EL2 forms", hyp, legal,
                     WithBit(legal, 0, ly::cmd::TlbiVmid::kShift), Rule::kRes0});
  }
  return cases;
}

TEST_F(SmmuModelTest, EveryCommandRuleHasALegalAndAnIllegalEncoding) {
  size_t n = 0;
  for (const LegalityCase& k : LegalityCases()) {
    SCOPED_TRACE(k.what);
    Setup s;
    s.model = k.options;
    Init(s);
    Submit({k.legal});
    EXPECT_TRUE(QueueDrained());
    EXPECT_EQ(ly::queue_ptr::CmdqErr::Get(CmdqCons()), ly::cerror::kNone);
    EXPECT_EQ(smmu_->last_illegal_rule(), Rule::kNone);
    const uint64_t before = smmu_->command_log().size();
    Submit({k.illegal});
    EXPECT_FALSE(QueueDrained());
    EXPECT_EQ(ly::queue_ptr::CmdqErr::Get(CmdqCons()), ly::cerror::kIll);
    EXPECT_EQ(smmu_->last_illegal_rule(), k.rule)
        << SmmuModel::CommandRuleName(k.rule) << " vs "
        << SmmuModel::CommandRuleName(smmu_->last_illegal_rule());
    EXPECT_EQ(smmu_->command_log().size(), before) << "an illegal command is not executed";
    ++n;
  }
  EXPECT_GE(n, 40u);
}

TEST_F(SmmuModelTest, IllegalRangeInvalidationLeavesTheEntryCached) {
  // The reserved encoding is not executed: a device keeps using the stale translation, which is
  // what a real SMMU with RIL = 1 does (and why the driver must never issue it).
  Init();
  const uint64_t root = SetUpS1Stream(kSid, kAsid);
  const DmaBuffer buf = Alloc(4096);
  MapPage(root, 0x40'0000, buf.pa);
  ASSERT_TRUE(Write(kSid, 0x40'0000, 0x11).ok());
  SetDesc(root, 0x40'0000, 3, 0);
  Submit({CmdTlbiVa(kAsid, 0x40'0000, false, {.tg = 1}), CmdSync()});
  EXPECT_EQ(smmu_->last_illegal_rule(), Rule::kRangeZero);
  EXPECT_TRUE(Write(kSid, 0x40'0000, 0x22).ok()) << "still cached";
  EXPECT_EQ(CpuRead32(buf.pa), 0x22u);
  // Software replaces it with the legal single-address form and acknowledges.
  WriteWords(cmdq_.pa + uint64_t{(cmdq_prod_ - 2) & 63} * 16,
             CmdTlbiVa(kAsid, 0x40'0000, false).data(), 2);
  smmu_->Write32(reg::kGerrorN, smmu_->Read32(reg::kGerror));
  EXPECT_TRUE(QueueDrained());
  EXPECT_EQ(Write(kSid, 0x40'0000, 0x33), Status::IoError());
  EXPECT_EQ(CpuRead32(buf.pa), 0x22u);
}

TEST_F(SmmuModelTest, LevelHintWithoutRangeInvalidatesOneAddressAtThatLevel) {
  Setup s;
  s.model.ril = false;
  s.model.arch_minor = 2;
  Init(s);
  const uint64_t root = SetUpS1Stream(kSid, kAsid);
  const DmaBuffer buf = Alloc(size_t{2} * 4096);
  MapPage(root, 0x40'0000, buf.pa);
  MapPage(root, 0x40'1000, buf.pa + 4096);
  ASSERT_TRUE(Write(kSid, 0x40'0000, 1).ok());
  ASSERT_TRUE(Write(kSid, 0x40'1000, 1).ok());
  SetDesc(root, 0x40'0000, 3, 0);
  SetDesc(root, 0x40'1000, 3, 0);
  // TTL = 2 names the wrong level: the level-3 entry stays.
  Submit({CmdTlbiVa(kAsid, 0x40'0000, true, {.tg = 1, .ttl = 2}), CmdSync()});
  ASSERT_TRUE(QueueDrained());
  EXPECT_TRUE(Write(kSid, 0x40'0000, 2).ok());
  Submit({CmdTlbiVa(kAsid, 0x40'0000, true, {.tg = 1, .ttl = 3}), CmdSync()});
  EXPECT_EQ(Write(kSid, 0x40'0000, 3), Status::IoError());
  EXPECT_TRUE(Write(kSid, 0x40'1000, 3).ok()) << "one address, not a range";
}

// ---- STE and CD Reserved/RES0 fields (IHI0070 5.2, 5.4): C_BAD_STE / C_BAD_CD ----

TEST_F(SmmuModelTest, SteRes0FieldsMakeItIllegal) {
  struct Bit {
    unsigned word;
    unsigned bit;
  };
  const Bit bits[] = {{0, 52}, {0, 58}, {1, 8},  {1, 26}, {1, 41}, {1, 63}, {2, 16},
                      {2, 31}, {2, 59}, {2, 63}, {3, 0},  {3, 52}, {4, 0},  {7, 63}};
  Init();
  const DmaBuffer buf = Alloc(4096);
  WriteSte(1, SteWithConfig(ly::ste::kConfigBypass));
  EXPECT_TRUE(Write(1, buf.pa, 1).ok()) << "legal: a bypass STE with every RES0 bit clear";
  // Fields an STE defines but the model ignores are not RES0: S1STALLD, SHCFG, INSTCFG.
  auto defined = SteWithConfig(ly::ste::kConfigBypass);
  defined[1] |= ly::ste::ShCfg::Make(1) | ly::Bits<51, 50, 1>::Make(2);
  WriteSte(2, defined);
  EXPECT_TRUE(Write(2, buf.pa, 1).ok());
  uint32_t sid = 16;
  for (const Bit& b : bits) {
    auto ste = SteWithConfig(ly::ste::kConfigBypass);
    ste[b.word] |= uint64_t{1} << b.bit;
    WriteSte(sid, ste);
    EXPECT_EQ(Write(sid, buf.pa, 1), Status::IoError()) << b.word << ":" << b.bit;
    ++sid;
  }
  // S2VMID[15:8] with VMID16 = 0 (the default).
  auto s2 = SteS2(0x10'0000, S2Geometry{}, 0x100);
  WriteSte(sid, s2);
  EXPECT_EQ(Write(sid, 0x1000, 1), Status::IoError());
  const auto ev = Events();
  ASSERT_EQ(ev.size(), std::size(bits) + 1);
  for (const EventRecord& e : ev) EXPECT_EQ(e.type(), ly::evt::kCBadSte);
}

TEST_F(SmmuModelTest, CdRes0FieldsMakeItIllegal) {
  Setup s;
  s.model.asid16 = false;
  Init(s);
  const uint64_t root = NewTable();
  const DmaBuffer buf = Alloc(4096);
  MapPage(root, 0x1000, buf.pa);
  const DmaBuffer cds = Alloc(4096);
  std::vector<std::array<uint64_t, 8>> bad;
  for (const auto& [word, bit] :
       std::vector<std::pair<unsigned, unsigned>>{{1, 52}, {1, 63}, {2, 60}, {6, 0}, {7, 5}}) {
    auto c = Cd(root, 1);
    c[word] |= uint64_t{1} << bit;
    bad.push_back(c);
  }
  bad.push_back(Cd(root, 0x100));  // ASID[15:8] with ASID16 = 0
  WriteWords(cds.pa, Cd(root, 0xFF).data(), 8);
  WriteSte(1, SteS1(cds.pa));
  EXPECT_TRUE(Write(1, 0x1000, 1).ok()) << "legal: ASID 0xFF, RES0 clear";
  for (size_t i = 0; i < bad.size(); ++i) {
    WriteWords(cds.pa + (i + 1) * 64, bad[i].data(), 8);
    WriteSte(static_cast<uint32_t>(16 + i), SteS1(cds.pa + (i + 1) * 64));
    EXPECT_EQ(Write(static_cast<uint32_t>(16 + i), 0x1000, 1), Status::IoError()) << i;
  }
  const auto ev = Events();
  ASSERT_EQ(ev.size(), bad.size());
  for (const EventRecord& e : ev) EXPECT_EQ(e.type(), ly::evt::kCBadCd);
}

// ---- Fault injections real parts produce ----

TEST_F(SmmuModelTest, InjectedCommandFetchAbortIsCerrorAbtAndRetryable) {
  Init();
  smmu_->InjectCommandFetchAbort(1);
  const uint32_t index = cmdq_prod_;
  Submit({CmdSync(), CmdSync()});
  EXPECT_EQ(ly::queue_ptr::CmdqErr::Get(CmdqCons()), ly::cerror::kAbt);
  EXPECT_EQ(CmdqCons() & 0xFFFFF, index) << "stopped at the command it could not read";
  EXPECT_EQ(smmu_->Read32(reg::kGerror) ^ smmu_->Read32(reg::kGerrorN), ly::gerror::CmdqErr::kMask);
  EXPECT_EQ(gerror_irqs_, 1);
  EXPECT_EQ(smmu_->sync_count(), 0u);
  smmu_->Write32(reg::kGerrorN, smmu_->Read32(reg::kGerror));  // the fetch is retried
  EXPECT_TRUE(QueueDrained());
  EXPECT_EQ(smmu_->sync_count(), 2u);
}

TEST_F(SmmuModelTest, InjectedEventqWriteAbortLosesTheRecordAndRaisesGerror) {
  Init();
  smmu_->InjectEventqWriteAbort(1);
  smmu_->FloodEvents(kSid, 2);
  EXPECT_EQ(smmu_->Read32(reg::kGerror) ^ smmu_->Read32(reg::kGerrorN),
            ly::gerror::EventqAbtErr::kMask);
  EXPECT_EQ(smmu_->events_lost(), 1u);
  EXPECT_EQ(smmu_->events_written(), 1u);
  const auto ev = Events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].input_addr(), 4096u) << "the first record was the one lost";
}

TEST_F(SmmuModelTest, InjectedSteAndCdFetchAbortsAreRecordedAndNotCached) {
  Init();
  const uint64_t root = SetUpS1Stream(kSid, kAsid);
  const DmaBuffer buf = Alloc(4096);
  MapPage(root, 0x1000, buf.pa);
  smmu_->InjectSteFetchAbort(1);
  EXPECT_EQ(Write(kSid, 0x1000, 1), Status::IoError());
  smmu_->InjectCdFetchAbort(1);
  EXPECT_EQ(Write(kSid, 0x1000, 2), Status::IoError());
  EXPECT_EQ(CpuRead32(buf.pa), 0u) << "no byte reached memory";
  EXPECT_TRUE(Write(kSid, 0x1000, 3).ok()) << "the fetches are retried: nothing bad was cached";
  EXPECT_EQ(CpuRead32(buf.pa), 3u);
  const auto ev = Events();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].type(), ly::evt::kFSteFetch);
  EXPECT_EQ(ev[0].fetch_addr(), strtab_.pa + uint64_t{kSid} * 64);
  EXPECT_EQ(ev[1].type(), ly::evt::kFCdFetch);
  EXPECT_EQ(ev[1].fetch_addr(), cd_pa_);
  EXPECT_EQ(ev[1].stream_id(), kSid);
}

TEST_F(SmmuModelTest, SlowCmdSyncCompletesAfterItsPolls) {
  Init();
  smmu_->SetCmdSyncPolls(3);
  const uint32_t sync_index = cmdq_prod_ + 1;
  Submit({CmdCfgiAll(), CmdSync(), CmdSync()});
  EXPECT_EQ(smmu_->command_count(ly::cmd::kCfgiSteRange), 1u) << "commands before it executed";
  for (int poll = 0; poll < 3; ++poll) {
    EXPECT_EQ(CmdqCons() & 0xFFFFF, sync_index) << "poll " << poll << " sees it pending";
  }
  EXPECT_EQ(smmu_->sync_count(), 1u);
  EXPECT_EQ(CmdqCons() & 0xFFFFF, sync_index + 1) << "the next sync waits for its own polls";
  for (int poll = 0; poll < 2; ++poll) (void)CmdqCons();
  EXPECT_TRUE(QueueDrained());
  EXPECT_EQ(smmu_->sync_count(), 2u);
}

TEST_F(SmmuModelTest, QueuePointerGlitchesAreReadOnlyAndTransient) {
  Init();
  Submit({CmdSync(), CmdSync(), CmdSync()});
  const uint32_t cons = CmdqCons();
  smmu_->InjectCmdqConsGlitch(SmmuModel::Glitch::kAllOnes, 2);
  EXPECT_EQ(CmdqCons(), 0xFFFF'FFFFu);
  EXPECT_EQ(CmdqCons(), 0xFFFF'FFFFu);
  EXPECT_EQ(CmdqCons(), cons);
  smmu_->InjectCmdqConsGlitch(SmmuModel::Glitch::kBackwards);
  EXPECT_EQ(CmdqCons() & 0x7F, (cons - 1) & 0x7F) << "moved back one entry";
  EXPECT_EQ(CmdqCons(), cons);

  smmu_->FloodEvents(kSid, 2);
  const uint32_t prod = smmu_->Read32(reg::kEventqProd);
  smmu_->InjectEventqProdGlitch(SmmuModel::Glitch::kAllOnes);
  EXPECT_EQ(smmu_->Read32(reg::kEventqProd), 0xFFFF'FFFFu);
  smmu_->InjectEventqProdGlitch(SmmuModel::Glitch::kBackwards);
  EXPECT_EQ(smmu_->Read32(reg::kEventqProd) & 0x3F, (prod - 1) & 0x3F);
  EXPECT_EQ(smmu_->Read32(reg::kEventqProd), prod);
  EXPECT_EQ(Events().size(), 2u);
}

TEST_F(SmmuModelTest, GoneDeviceReadsAllOnesAndDropsWrites) {
  Init();
  const uint32_t idr0 = smmu_->Read32(reg::kIdr0);
  smmu_->SetDeviceGone(true);
  EXPECT_EQ(smmu_->Read32(reg::kIdr0), 0xFFFF'FFFFu);
  EXPECT_EQ(smmu_->Read32(reg::kCmdqCons), 0xFFFF'FFFFu);
  EXPECT_EQ(smmu_->Read64(reg::kCmdqBase), ~uint64_t{0});
  WriteCr0(0);
  smmu_->SetDeviceGone(false);
  EXPECT_EQ(smmu_->Read32(reg::kIdr0), idr0);
  EXPECT_EQ(smmu_->Read32(reg::kCr0Ack), kQueues | kSmmuEn) << "the write was dropped";
}

TEST_F(SmmuModelTest, ServiceFailureModeStopsTranslationAndCommands) {
  Init();
  const DmaBuffer buf = Alloc(4096);
  WriteSte(kSid, SteWithConfig(ly::ste::kConfigBypass));
  ASSERT_TRUE(Write(kSid, buf.pa, 1).ok());
  smmu_->EnterServiceFailureMode();
  EXPECT_EQ(smmu_->Read32(reg::kGerror) ^ smmu_->Read32(reg::kGerrorN), ly::gerror::SfmErr::kMask);
  EXPECT_EQ(gerror_irqs_, 1);
  EXPECT_EQ(Write(kSid, buf.pa, 2), Status::IoError());
  EXPECT_EQ(Write(0x40, buf.pa, 2), Status::IoError()) << "no STE: still no event";
  EXPECT_EQ(CpuRead32(buf.pa), 1u);
  EXPECT_EQ(smmu_->sfm_terminations(), 2u);
  Submit({CmdSync()});
  EXPECT_FALSE(QueueDrained()) << "no command is consumed";
  // Acknowledging the error does not leave SFM.
  smmu_->Write32(reg::kGerrorN, smmu_->Read32(reg::kGerror));
  EXPECT_FALSE(QueueDrained());
  EXPECT_EQ(Write(kSid, buf.pa, 2), Status::IoError());
  EXPECT_TRUE(Events().empty());
}

// ---- Configurable ID registers, MSI registers, profiles ----

TEST_F(SmmuModelTest, IidrAidrAndMsiRegistersAreConfigurable) {
  Setup s;
  s.model.msi = true;
  s.model.iidr = MakeIidr(kProductMmu700, 1, 2);
  s.model.arch_minor = 2;
  Init(s);
  EXPECT_EQ(smmu_->Read32(reg::kIidr), 0x4871'243Bu);
  EXPECT_EQ(smmu_->Read32(reg::kAidr), 0x02u);
  EXPECT_EQ(ly::idr0::Msi::Get(smmu_->Read32(reg::kIdr0)), 1u);
  // ADDR resets to an UNKNOWN value: the model's is a recognisable non-zero address.
  EXPECT_EQ(smmu_->Read64(reg::kGerrorIrqCfg0), SmmuModel::kUnknownMsiAddr);
  EXPECT_EQ(smmu_->eventq_irq_cfg0(), SmmuModel::kUnknownMsiAddr);
  smmu_->Write64(reg::kGerrorIrqCfg0, 0);
  smmu_->Write64(reg::kEventqIrqCfg0, 0xFFFF'FFFF'FFFF'FFFF);
  smmu_->Write32(reg::kEventqIrqCfg1, 0x1234);
  EXPECT_EQ(smmu_->gerror_irq_cfg0(), 0u);
  EXPECT_EQ(smmu_->Read64(reg::kEventqIrqCfg0), ly::irq_cfg0::Addr::kMask) << "ADDR[51:2] only";
  EXPECT_EQ(smmu_->Read32(reg::kEventqIrqCfg1), 0x1234u);

  Init();  // IDR0.MSI = 0: RAZ/WI
  EXPECT_EQ(ly::idr0::Msi::Get(smmu_->Read32(reg::kIdr0)), 0u);
  smmu_->Write64(reg::kGerrorIrqCfg0, 0x1000);
  EXPECT_EQ(smmu_->Read64(reg::kGerrorIrqCfg0), 0u);
  EXPECT_EQ(smmu_->Read32(reg::kIidr), 0u);
}

TEST_F(SmmuModelTest, ProfilesAdvertiseTheirIdValues) {
  size_t n = 0;
  const ModelProfile* profiles = ModelProfiles(&n);
  ASSERT_EQ(n, 8u);
  EXPECT_STREQ(profiles[0].name, "qemu");
  for (size_t i = 0; i < n; ++i) {
    const ModelProfile& p = profiles[i];
    SCOPED_TRACE(p.name);
    EXPECT_EQ(FindModelProfile(p.name), &p);
    EXPECT_GT(std::strlen(p.source), 10u);
    Setup s;
    s.model = p.options;
    s.coherent = p.options.coherent_access;
    Init(s);
    const uint32_t idr0 = smmu_->Read32(reg::kIdr0);
    const uint32_t idr1 = smmu_->Read32(reg::kIdr1);
    const uint32_t idr3 = smmu_->Read32(reg::kIdr3);
    const uint32_t idr5 = smmu_->Read32(reg::kIdr5);
    EXPECT_EQ(ly::idr0::Msi::Get(idr0), p.options.msi ? 1u : 0u);
    EXPECT_EQ(ly::idr0::Cohacc::Get(idr0), p.options.coherent_access ? 1u : 0u);
    EXPECT_EQ(ly::idr0::StLevel::Get(idr0), p.options.two_level_strtab ? 1u : 0u);
    EXPECT_EQ(ly::idr1::CmdqS::Get(idr1), p.options.cmdq_log2);
    EXPECT_EQ(ly::idr1::SidSize::Get(idr1), p.options.sid_bits);
    EXPECT_EQ(ly::idr3::Ril::Get(idr3), p.options.ril ? 1u : 0u);
    EXPECT_EQ(ly::idr3::Bbml::Get(idr3), p.options.bbml);
    EXPECT_EQ(ly::idr5::Gran4K::Get(idr5), p.options.gran4k ? 1u : 0u);
    EXPECT_EQ(ly::idr5::Gran64K::Get(idr5), p.options.gran64k ? 1u : 0u);
    EXPECT_EQ(smmu_->Read32(reg::kIidr), p.options.iidr);
    EXPECT_EQ(ly::aidr::ArchMinorRev::Get(smmu_->Read32(reg::kAidr)), p.options.arch_minor);
  }
  const SmmuModel::Options& mmu600 = FindModelProfile("mmu600")->options;
  EXPECT_TRUE(!mmu600.ril && mmu600.bbml == 0 && mmu600.msi);
  EXPECT_EQ(ly::iidr::ProductId::Get(mmu600.iidr), kProductMmu600);
  const SmmuModel::Options& mmu700 = FindModelProfile("mmu700")->options;
  EXPECT_TRUE(mmu700.ril && mmu700.bbml == 2);
  EXPECT_EQ(ly::iidr::ProductId::Get(mmu700.iidr), kProductMmu700);
  EXPECT_EQ(FindModelProfile("small_cmdq")->options.cmdq_log2, 5u);
  EXPECT_FALSE(FindModelProfile("linear_strtab")->options.two_level_strtab);
  EXPECT_FALSE(FindModelProfile("gran64k")->options.gran4k);
  EXPECT_EQ(FindModelProfile("oas40")->options.oas_bits, 40u);
  EXPECT_FALSE(FindModelProfile("noncoherent")->options.coherent_access);
  EXPECT_EQ(FindModelProfile("mmu-9000"), nullptr);
}

}  // namespace
}  // namespace deviso::smmuv3::testing
