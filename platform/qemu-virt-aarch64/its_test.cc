// Host tests of the GICv3 ITS engine (its_driver.h) against a register-level model of an ITS
// and a redistributor: the model consumes the command queue when CWRITER is written, records
// every command, and can stall, refuse table page sizes or never become quiescent. Command
// encodings are checked against IHI0069 5.3 bit by bit (the expected words are computed by
// hand in the comments). Deadlines read a test clock, so no case depends on machine speed.

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "its_driver.h"
#include "ports/host/test_clock.h"

namespace deviso::qemu_virt {
namespace {

// QEMU's values: GITS_TYPER with Physical, ITT_entry_size 16 (0xf), ID_bits 16 (0xf),
// Devbits 16 (0xf), PTA 0; a device table (type 1) and a collection table (type 4), 8-byte
// entries.
constexpr uint64_t kQemuTyper = 1 | (0xfULL << 4) | (0xfULL << 8) | (0xfULL << 13);
constexpr uint64_t BaserType(uint64_t type, uint64_t entry) {
  return (type << 56) | ((entry - 1) << 48);
}

class ModelIts final : public Mmio {
 public:
  ModelIts() {
    baser[0] = BaserType(1, 8);
    baser[1] = BaserType(4, 8);
  }
  uint32_t Read32(size_t off) override {
    if (off == 0x0000) return ctlr | (quiescent ? 0x80000000U : 0);
    return 0;
  }
  void Write32(size_t off, uint32_t v) override {
    if (off == 0x0000) ctlr = v & 1;
  }
  uint64_t Read64(size_t off) override {
    if (off == 0x0008) return typer;
    if (off == 0x0080) return cbaser;
    if (off == 0x0088) return cwriter;
    if (off == 0x0090) return creadr;
    if (off >= 0x100 && off < 0x140) return baser[(off - 0x100) / 8];
    return 0;
  }
  void Write64(size_t off, uint64_t v) override {
    if (off == 0x0080) {
      cbaser = v;
      creadr = 0;  // 12.19.3: writing CBASER resets CREADR
    } else if (off == 0x0088) {
      cwriter = v;
      Consume();
    } else if (off >= 0x100 && off < 0x140) {
      uint64_t& b = baser[(off - 0x100) / 8];
      const uint64_t ro = (0x7ULL << 56) | (0x1fULL << 48);  // Type, Entry_Size
      uint64_t w = (v & ~ro) | (b & ro);
      if (force_64k_pages) w |= 2ULL << 8;
      b = w;
    }
  }
  // Takes commands from CREADR up to CWRITER (unless told to hang or stall).
  void Consume() {
    if (hang) return;
    auto* queue = reinterpret_cast<const ItsCommand*>(cbaser & 0x000f'ffff'ffff'f000ULL);
    while (creadr != (cwriter & 0xfffe0)) {
      const ItsCommand c = queue[creadr / 32];
      if ((c.dw[0] & 0xff) == stall_on) {
        creadr |= 1;  // Stalled
        return;
      }
      commands.push_back(c);
      creadr = (creadr + 32) % 4096;
    }
  }
  std::vector<uint8_t> opcodes() const {
    std::vector<uint8_t> out;
    for (const ItsCommand& c : commands) out.push_back(static_cast<uint8_t>(c.dw[0] & 0xff));
    return out;
  }

  uint32_t ctlr = 0;
  bool quiescent = true;
  uint64_t typer = kQemuTyper;
  uint64_t cbaser = 0, cwriter = 0, creadr = 0;
  uint64_t baser[8] = {};
  bool force_64k_pages = false;
  bool hang = false;
  uint64_t stall_on = 0x100;  // no opcode
  std::vector<ItsCommand> commands;
};

class ModelRd final : public Mmio {
 public:
  uint32_t Read32(size_t off) override { return off == 0 ? ctlr : 0; }
  void Write32(size_t off, uint32_t v) override {
    if (off == 0) {
      ctlr = v;
      if ((v & 1) != 0) {
        propbaser_when_enabled = propbaser;
        pendbaser_when_enabled = pendbaser;
      }
    }
  }
  uint64_t Read64(size_t off) override {
    if (off == 0x08) return typer;
    if (off == 0x70) return propbaser;
    if (off == 0x78) return pendbaser;
    return 0;
  }
  void Write64(size_t off, uint64_t v) override {
    if (off == 0x70) propbaser = v;
    if (off == 0x78) pendbaser = v;
  }
  uint32_t ctlr = 0;
  uint64_t typer = 1 | (3ULL << 8);  // PLPIS, Processor_Number 3
  uint64_t propbaser = 0, pendbaser = 0;
  uint64_t propbaser_when_enabled = 0, pendbaser_when_enabled = 0;
};

struct Counter {
  int runs = 0;
};
void Count(void* ctx) { ++static_cast<Counter*>(ctx)->runs; }

class ItsTest : public ::testing::Test {
 protected:
  ItsTest()
      : mem_(static_cast<ItsMemoryBlock*>(std::aligned_alloc(65536, sizeof(ItsMemoryBlock)))) {
    std::memset(mem_.get(), 0xee, sizeof(ItsMemoryBlock));
    config_.its = &its_;
    config_.rd = &rd_;
    config_.rd_pa = 0x080a'0000;
    config_.memory = mem_.get();
    config_.memory_pa = Pa(mem_.get());  // the host "identity map": PA = pointer
  }
  static uint64_t Pa(const void* p) { return reinterpret_cast<uintptr_t>(p); }
  Status Up() { return driver_.Init(config_); }

  struct Free {
    void operator()(ItsMemoryBlock* p) const { std::free(p); }
  };
  // A clock that moves 1 us per reading: a hung model times out after 100k polls.
  port::host::TestClock clock_{1'000};
  ModelIts its_;
  ModelRd rd_;
  std::unique_ptr<ItsMemoryBlock, Free> mem_;
  ItsDriver::Config config_;
  ItsDriver driver_;
};

TEST_F(ItsTest, InitProgramsTablesQueueAndLpisThenMapsCollectionZero) {
  ASSERT_EQ(Up(), Status::Ok());
  EXPECT_TRUE(driver_.ready());
  // GITS_BASER0 (devices): Valid, RaWaWb inner (0b111 << 59), inner shareable (0b01 << 10),
  // 4 KiB pages (00), PA of the device table, Size = 2 pages - 1; Type and Entry_Size kept.
  const uint64_t dev = Pa(mem_->devices);
  EXPECT_EQ(its_.baser[0], (1ULL << 63) | (7ULL << 59) | BaserType(1, 8) | dev | (1ULL << 10) | 1);
  const uint64_t col = Pa(mem_->collections);
  EXPECT_EQ(its_.baser[1], (1ULL << 63) | (7ULL << 59) | BaserType(4, 8) | col | (1ULL << 10) | 0);
  EXPECT_EQ(its_.baser[2], 0U) << "unimplemented tables untouched";
  // GITS_CBASER: Valid, RaWaWb, PA, inner shareable, Size 0 (one page).
  EXPECT_EQ(its_.cbaser, (1ULL << 63) | (7ULL << 59) | Pa(mem_->commands) | (1ULL << 10));
  EXPECT_EQ(its_.ctlr, 1U);
  // GICR_PROPBASER: PA, IDbits 13, RaWaWb [9:7], inner shareable; GICR_PENDBASER: PA, PTZ,
  // RaWaWb, inner shareable. Both written before EnableLPIs.
  EXPECT_EQ(rd_.propbaser_when_enabled, Pa(mem_->config) | 13 | (7ULL << 7) | (1ULL << 10));
  EXPECT_EQ(rd_.pendbaser_when_enabled,
            Pa(mem_->pending) | (1ULL << 62) | (7ULL << 7) | (1ULL << 10));
  EXPECT_EQ(rd_.ctlr & 1, 1U);
  // Tables zeroed; every LPI's configuration byte: priority 0xa0, RES1, disabled.
  EXPECT_EQ(mem_->pending[0], 0);
  EXPECT_EQ(mem_->devices[100], 0);
  EXPECT_EQ(mem_->config[0], 0xa2);
  EXPECT_EQ(mem_->config[kItsMaxLpis - 1], 0xa2);
  // MAPC (0x09) ICID 0 -> processor 3 (PTA = 0): DW2 = V | 3 << 16; then SYNC (0x05) 3 << 16.
  ASSERT_EQ(its_.commands.size(), 2U);
  EXPECT_EQ(its_.commands[0].dw[0], 0x09U);
  EXPECT_EQ(its_.commands[0].dw[2], (1ULL << 63) | (3ULL << 16));
  EXPECT_EQ(its_.commands[1].dw[0], 0x05U);
  EXPECT_EQ(its_.commands[1].dw[2], 3ULL << 16);
  EXPECT_EQ(driver_.max_device_id(), 1023U);  // 8 KiB of 8-byte entries
  EXPECT_EQ(Up(), Status::AlreadyExists());
}

TEST_F(ItsTest, PtaNamesTheRedistributorByAddress) {
  its_.typer |= 1ULL << 19;  // PTA
  ASSERT_EQ(Up(), Status::Ok());
  // RDbase = PA >> 16 = 0x80a in DW2[50:16].
  EXPECT_EQ(its_.commands[0].dw[2], (1ULL << 63) | (0x80aULL << 16));
}

TEST_F(ItsTest, InitRefusals) {
  {
    ItsDriver::Config bad = config_;
    bad.memory_pa += 0x1000;  // not 64 KiB aligned
    EXPECT_EQ(driver_.Init(bad), Status::InvalidArgument());
    bad = config_;
    bad.its = nullptr;
    EXPECT_EQ(driver_.Init(bad), Status::InvalidArgument());
  }
  rd_.typer = 0;  // no physical LPIs
  EXPECT_EQ(Up(), Status::NotSupported());
  rd_.typer = 1;
  rd_.ctlr = 1;  // someone enabled LPIs already: the tables cannot be changed
  EXPECT_EQ(Up(), Status::NotSupported());
  rd_.ctlr = 0;
  its_.typer = kQemuTyper & ~1ULL;  // no physical LPIs in the ITS
  EXPECT_EQ(Up(), Status::NotSupported());
  its_.typer = kQemuTyper;
  EXPECT_TRUE(its_.commands.empty());
  EXPECT_FALSE(driver_.ready());
}

TEST_F(ItsTest, TablesThatRefuse4KiBPagesAreNotSupported) {
  its_.force_64k_pages = true;
  EXPECT_EQ(Up(), Status::NotSupported());
  EXPECT_EQ(its_.ctlr, 0U);
  EXPECT_EQ(its_.baser[0] >> 63, 0U) << "left invalid";
  EXPECT_EQ(rd_.ctlr & 1, 0U) << "LPIs not enabled";
  EXPECT_FALSE(driver_.ready());
}

TEST_F(ItsTest, NeverQuiescentTimesOut) {
  its_.quiescent = false;
  EXPECT_EQ(Up(), Status::TimedOut());
  EXPECT_EQ(rd_.ctlr & 1, 0U);
}

TEST_F(ItsTest, AQueueThatIsNeverConsumedTimesOut) {
  its_.hang = true;
  EXPECT_EQ(Up(), Status::TimedOut());
  EXPECT_EQ(its_.ctlr, 0U) << "disabled again";
  EXPECT_FALSE(driver_.ready());
}

TEST_F(ItsTest, MapEventIssuesMapdOnceThenMaptiInvSync) {
  ASSERT_EQ(Up(), Status::Ok());
  its_.commands.clear();
  Counter a, b;
  const Result<uint32_t> first = driver_.MapEvent(0x18, 1, &Count, &a);
  ASSERT_TRUE(first.ok()) << first.status().str();
  EXPECT_EQ(*first, kItsFirstLpi);
  // MAPD (0x08): DW0 = 0x08 | 0x18 << 32; DW1 = Size 4 (5 EventID bits); DW2 = V | ITT PA
  // (256-byte aligned, bits [51:8]); SYNC; MAPTI (0x0a): DW0 = 0x0a | 0x18 << 32, DW1 = event 1 |
  // pINTID 0x2000 << 32, DW2 = ICID 0; INV (0x0c) of (0x18, 1); SYNC.
  const std::vector<uint8_t> expected = {0x08, 0x05, 0x0a, 0x0c, 0x05};
  EXPECT_EQ(its_.opcodes(), expected);
  EXPECT_EQ(its_.commands[0].dw[0], 0x08U | (0x18ULL << 32));
  EXPECT_EQ(its_.commands[0].dw[1], 4U);
  EXPECT_EQ(its_.commands[0].dw[2], (1ULL << 63) | Pa(mem_->itts[0]));
  EXPECT_EQ(its_.commands[2].dw[0], 0x0aU | (0x18ULL << 32));
  EXPECT_EQ(its_.commands[2].dw[1], 1U | (0x2000ULL << 32));
  EXPECT_EQ(its_.commands[2].dw[2], 0U);
  EXPECT_EQ(its_.commands[3].dw[0], 0x0cU | (0x18ULL << 32));
  EXPECT_EQ(its_.commands[3].dw[1], 1U);
  EXPECT_EQ(mem_->config[0], 0xa3) << "priority 0xa0, RES1, enabled";

  // A second event of the same device: no MAPD.
  its_.commands.clear();
  const Result<uint32_t> second = driver_.MapEvent(0x18, 0, &Count, &b);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, kItsFirstLpi + 1);
  const std::vector<uint8_t> again = {0x0a, 0x0c, 0x05};
  EXPECT_EQ(its_.opcodes(), again);

  driver_.Dispatch(*first);
  driver_.Dispatch(*first);
  driver_.Dispatch(*second);
  EXPECT_EQ(a.runs, 2);
  EXPECT_EQ(b.runs, 1);
  EXPECT_EQ(driver_.lpi_count(*first), 2U);
  driver_.Dispatch(kItsFirstLpi + 5);  // handed out to nobody
  driver_.Dispatch(42);                // not an LPI
  EXPECT_EQ(driver_.spurious(), 2U);
}

TEST_F(ItsTest, BadArgumentsIssueNoCommand) {
  Counter c;
  EXPECT_EQ(driver_.MapEvent(0x18, 0, &Count, &c).status(), Status::IoError()) << "not up";
  ASSERT_EQ(Up(), Status::Ok());
  its_.commands.clear();
  EXPECT_EQ(driver_.MapEvent(0x18, 0, nullptr, &c).status(), Status::InvalidArgument());
  EXPECT_EQ(driver_.MapEvent(0x18, kItsEventsPerDevice, &Count, &c).status(),
            Status::InvalidArgument());
  EXPECT_EQ(driver_.MapEvent(1024, 0, &Count, &c).status(), Status::InvalidArgument());
  EXPECT_EQ(driver_.UnmapEvent(0x18, 0), Status::NotFound());
  EXPECT_EQ(driver_.Trigger(0x18, 0), Status::NotFound());
  EXPECT_TRUE(its_.commands.empty());
  ASSERT_TRUE(driver_.MapEvent(0x18, 0, &Count, &c).ok());
  its_.commands.clear();
  EXPECT_EQ(driver_.MapEvent(0x18, 0, &Count, &c).status(), Status::AlreadyExists());
  EXPECT_TRUE(its_.commands.empty());
}

TEST_F(ItsTest, CapacitiesAreEnforced) {
  ASSERT_EQ(Up(), Status::Ok());
  Counter c;
  for (uint32_t d = 0; d < kItsMaxDevices; ++d) {
    ASSERT_TRUE(driver_.MapEvent(d, 0, &Count, &c).ok()) << d;
  }
  EXPECT_EQ(driver_.MapEvent(kItsMaxDevices, 0, &Count, &c).status(), Status::NoMemory());
  // LPIs: 8 used; fill up to 64 on the devices that have ITTs.
  for (uint32_t n = kItsMaxDevices; n < kItsMaxLpis; ++n) {
    ASSERT_TRUE(driver_.MapEvent(n % kItsMaxDevices, 1 + n / kItsMaxDevices, &Count, &c).ok()) << n;
  }
  EXPECT_EQ(driver_.MapEvent(0, 31, &Count, &c).status(), Status::NoMemory());
  // Freeing one LPI makes room again, and the freed INTID is reused.
  ASSERT_EQ(driver_.UnmapEvent(3, 0), Status::Ok());
  EXPECT_EQ(driver_.MapEvent(0, 31, &Count, &c).value_or(0), kItsFirstLpi + 3);
}

TEST_F(ItsTest, UnmapDiscardsAndTriggerIssuesInt) {
  ASSERT_EQ(Up(), Status::Ok());
  Counter c;
  const Result<uint32_t> lpi = driver_.MapEvent(0x20, 7, &Count, &c);
  ASSERT_TRUE(lpi.ok());
  its_.commands.clear();
  ASSERT_EQ(driver_.Trigger(0x20, 7), Status::Ok());
  // INT (0x03): DW0 = 0x03 | 0x20 << 32, DW1 = 7; SYNC.
  ASSERT_EQ(its_.commands.size(), 2U);
  EXPECT_EQ(its_.commands[0].dw[0], 0x03U | (0x20ULL << 32));
  EXPECT_EQ(its_.commands[0].dw[1], 7U);
  its_.commands.clear();
  ASSERT_EQ(driver_.UnmapEvent(0x20, 7), Status::Ok());
  // DISCARD (0x0f) of (0x20, 7); SYNC; the LPI disabled in its configuration byte.
  ASSERT_EQ(its_.commands.size(), 2U);
  EXPECT_EQ(its_.commands[0].dw[0], 0x0fU | (0x20ULL << 32));
  EXPECT_EQ(its_.commands[0].dw[1], 7U);
  EXPECT_EQ(mem_->config[*lpi - kItsFirstLpi], 0xa2);
  driver_.Dispatch(*lpi);
  EXPECT_EQ(c.runs, 0) << "a late LPI of an unmapped event runs nothing";
  EXPECT_EQ(driver_.spurious(), 1U);
}

TEST_F(ItsTest, AStalledCommandIsAnIoError) {
  ASSERT_EQ(Up(), Status::Ok());
  its_.stall_on = 0x08;  // MAPD fails
  Counter c;
  EXPECT_EQ(driver_.MapEvent(0x18, 0, &Count, &c).status(), Status::IoError());
}

TEST_F(ItsTest, TheQueueWrapsAroundItsPage) {
  ASSERT_EQ(Up(), Status::Ok());
  Counter c;
  ASSERT_TRUE(driver_.MapEvent(0x18, 0, &Count, &c).ok());
  // 128 slots; each Trigger takes 2: 100 of them go round the page at least once.
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(driver_.Trigger(0x18, 0), Status::Ok()) << i;
  }
  EXPECT_EQ(driver_.commands_issued(), 2U + 5U + 200U);
  EXPECT_EQ(its_.commands.back().dw[0] & 0xff, 0x05U);
}

}  // namespace
}  // namespace deviso::qemu_virt
