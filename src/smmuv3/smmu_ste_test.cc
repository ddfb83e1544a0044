// The STE writer's invariant (Linux's "hitless" KUnit test, IHI0070 3.21.3): every state of
// an STE that the SMMU could fetch while it is being changed equals the old entry or the new
// one in every bit the SMMU uses, and the number of CMD_SYNCs is exact. CTest label `smmuv3`.

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "deviso/config.h"
#include "smmuv3/hw.h"
#include "smmuv3/smmuv3.h"
#include "testing/sim_memory.h"

namespace deviso::smmuv3 {
namespace {

// An SMMU register file that completes every command at once and logs the opcodes.
class LoggingSmmu final : public Mmio {
 public:
  explicit LoggingSmmu(testing::SimPhysMemory& memory) : memory_(memory) {}
  uint32_t Read32(size_t offset) override {
    switch (offset) {
      case reg::kIdr0:
        return 0x0d40101b;  // QEMU 7.2's, with S2P
      case reg::kIdr1:
        return (8U << 21) | (8U << 16) | 16U;
      case reg::kIdr3:
        return 1U << 14;
      case reg::kIdr5:
        return (1U << 4) | 4U;
      case reg::kCr0Ack:
        return cr0_;
      case reg::kIrqCtrlAck:
        return irq_;
      case reg::kCmdqCons:
        return cons_;
      default:
        return 0;
    }
  }
  void Write32(size_t offset, uint32_t value) override {
    if (offset == reg::kCr0) cr0_ = value;
    if (offset == reg::kIrqCtrl) irq_ = value;
    if (offset != reg::kCmdqProd) return;
    const unsigned log2 = static_cast<unsigned>(reg::QueueBase{cmdq_base_}.log2size());
    while (cons_ != value) {
      const Paddr pa =
          reg::QueueBase{cmdq_base_}.addr() + uint64_t{16} * (cons_ & ((1U << log2) - 1));
      const auto* cmd = static_cast<const uint64_t*>(memory_.Cpu(pa));
      opcodes.push_back(static_cast<uint8_t>(cmd[0] & 0xff));
      cons_ = (cons_ + 1) & ((2U << log2) - 1);
    }
  }
  uint64_t Read64(size_t) override { return 0; }
  void Write64(size_t offset, uint64_t value) override {
    if (offset == reg::kCmdqBase) cmdq_base_ = value;
  }

  std::vector<uint8_t> opcodes;

 private:
  testing::SimPhysMemory& memory_;
  uint32_t cr0_ = 0, irq_ = 0, cons_ = 0;
  uint64_t cmdq_base_ = 0;
};

// The bits of an STE the SMMU uses (5.2): only V when invalid; for stage 1 words 0-1 and
// S2VMID; for stage 2 V/Config and words 1-3.
ds::Ste UsedBits(const ds::Ste& ste) {
  ds::Ste used;
  const ds::Ste::W0 w0{ste.raw[0]};
  if (w0.v() == 0) {
    used.raw[0] = 1;
    return used;
  }
  if (w0.config() == ds::kConfigS1Translate) {
    used.raw[0] = ~0ULL;
    used.raw[1] = ~0ULL;
    used.raw[2] = 0xffff;
  } else {
    used.raw[0] = 0xf;
    used.raw[1] = ~0ULL;
    used.raw[2] = ~0ULL;
    used.raw[3] = ~0ULL;
  }
  return used;
}

bool SameInUsedBits(const ds::Ste& a, const ds::Ste& b) {
  const ds::Ste used = UsedBits(b);
  for (size_t i = 0; i < ds::Ste::kWords; ++i) {
    if (((a.raw[i] ^ b.raw[i]) & used.raw[i]) != 0) return false;
  }
  // A state that is valid must also be complete in the bits *it* uses.
  const ds::Ste used_a = UsedBits(a);
  for (size_t i = 0; i < ds::Ste::kWords; ++i) {
    if (((a.raw[i] ^ b.raw[i]) & used_a.raw[i]) != 0) return false;
  }
  return true;
}

struct Rig {
  explicit Rig(bool coherent)
      : memory(Options(coherent)),
        regs(memory),
        unit(std::make_unique<Smmuv3>(MakeConfig(coherent))),
        smmu(*unit) {
    smmu.SetSteObserverForTest(
        [](void* ctx, uint32_t, const ds::Ste& ste) {
          static_cast<Rig*>(ctx)->states.push_back(ste);
        },
        this);
  }
  // Without teardown (DEVISO_CONFIG_TEARDOWN=OFF) an enabled unit must never be destroyed.
  ~Rig() {
    if constexpr (!config::kTeardown) (void)unit.release();
  }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;
  static testing::SimPhysMemory::Options Options(bool coherent) {
    testing::SimPhysMemory::Options o;
    o.coherent = coherent;
    return o;
  }
  Smmuv3::Config MakeConfig(bool coherent) {
    Smmuv3::Config c;
    c.regs = &regs;
    c.dma = &memory.dma();
    c.tables_4k = &memory.tables_4k();
    c.dma_coherent = coherent;
    return c;
  }
  size_t SyncsSince(size_t mark) const {
    size_t n = 0;
    for (size_t i = mark; i < regs.opcodes.size(); ++i) n += regs.opcodes[i] == ds::kOpSync;
    return n;
  }

  testing::SimPhysMemory memory;
  LoggingSmmu regs;
  std::unique_ptr<Smmuv3> unit;
  Smmuv3& smmu;
  std::vector<ds::Ste> states;
};

void CheckTransition(Rig& rig, const ds::Ste& before, const ds::Ste& after) {
  ASSERT_FALSE(rig.states.empty());
  for (size_t i = 0; i < rig.states.size(); ++i) {
    const ds::Ste& s = rig.states[i];
    EXPECT_TRUE(SameInUsedBits(s, before) || SameInUsedBits(s, after))
        << "intermediate state " << i << " is neither the old nor the new STE: word0=0x" << std::hex
        << s.raw[0];
  }
  const ds::Ste& last = rig.states.back();
  for (size_t w = 0; w < ds::Ste::kWords; ++w) EXPECT_EQ(last.raw[w], after.raw[w]) << w;
}

TEST(SteWriter, AttachAndDetachAreHitlessWithExactSyncs) {
  for (bool coherent : {true, false}) {
    for (DomainOptions::Stage stage :
         {DomainOptions::Stage::kStage1, DomainOptions::Stage::kStage2}) {
      if (!config::kStage2 && stage == DomainOptions::Stage::kStage2) continue;  // compiled out
      SCOPED_TRACE(::testing::Message()
                   << "coherent " << coherent << " stage " << static_cast<int>(stage));
      Rig rig(coherent);
      ASSERT_TRUE(rig.smmu.Probe().ok());
      ASSERT_TRUE(rig.smmu.Init(false).ok());
      DomainOptions options;
      options.stage = stage;
      Result<Domain*> d = rig.smmu.CreateDomain(options, nullptr);
      ASSERT_TRUE(d.ok());

      const ds::Ste blocked{};
      size_t mark = rig.regs.opcodes.size();
      rig.states.clear();
      ASSERT_TRUE(rig.smmu.Attach(*d, 0x42).ok());
      const ds::Ste attached = *rig.smmu.SteForTest(0x42);
      EXPECT_EQ(ds::Ste::W0{attached.raw[0]}.v(), 1U);
      CheckTransition(rig, blocked, attached);
      EXPECT_EQ(rig.SyncsSince(mark), 2U) << "blocked -> valid: 2 CMD_SYNCs";

      mark = rig.regs.opcodes.size();
      rig.states.clear();
      ASSERT_TRUE(rig.smmu.Detach(*d, 0x42).ok());
      CheckTransition(rig, attached, blocked);
      EXPECT_EQ(rig.SyncsSince(mark), 1U) << "valid -> blocked: 1 CMD_SYNC";
      // The CFGI for the STE (and the CDs reached through it) precedes that sync.
      ASSERT_GE(rig.regs.opcodes.size(), mark + 3);
      EXPECT_EQ(rig.regs.opcodes[mark], ds::kOpCfgiSte);
      EXPECT_EQ(rig.regs.opcodes[mark + 1], ds::kOpCfgiCdAll);
      EXPECT_EQ(rig.regs.opcodes[mark + 2], ds::kOpSync);
      ASSERT_TRUE(rig.smmu.DestroyDomain(*d).ok());
    }
  }
}

TEST(SteWriter, SparseStreamIdUsesTheTwoLevelTable) {
  if constexpr (!config::kTwoLevelStreamTable) GTEST_SKIP() << "DEVISO_CONFIG_TWO_LEVEL_STRTAB=OFF";
  Rig rig(true);
  ASSERT_TRUE(rig.smmu.Probe().ok());
  ASSERT_TRUE(rig.smmu.Init(false).ok());
  EXPECT_TRUE(rig.smmu.two_level_stream_table()) << "SIDSIZE 16 > 8 linear bits";
  EXPECT_EQ(rig.smmu.SteForTest(0xfff0), nullptr) << "no L2 table before it is needed";
  Result<Domain*> d = rig.smmu.CreateDomain(DomainOptions{}, nullptr);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(rig.smmu.Attach(*d, 0xfff0).ok());
  ASSERT_NE(rig.smmu.SteForTest(0xfff0), nullptr);
  EXPECT_EQ(ds::Ste::W0{rig.smmu.SteForTest(0xfff0)->raw[0]}.v(), 1U);
  EXPECT_EQ(ds::Ste::W0{rig.smmu.SteForTest(0xfff1)->raw[0]}.v(), 0U) << "neighbours blocked";
  EXPECT_EQ(rig.smmu.Attach(*d, 0x1'0000), Status::InvalidArgument()) << "beyond SIDSIZE";
  EXPECT_EQ(rig.smmu.Attach(*d, 0xfff0), Status::AlreadyExists());
}

}  // namespace
}  // namespace deviso::smmuv3
