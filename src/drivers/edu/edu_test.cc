// Host tests of the edu DMA driver against a register-level fake of QEMU's edu and a
// translating DmaMapper, through the Zephyr-shaped C calls of deviso/port/dma.h.
//
// The fake behaves like QEMU 7.2's hw/misc/edu.c: a transfer runs some time after its command
// was written (here: after a number of command-register polls), moves bytes between its 4 KiB
// buffer and "RAM" by bus address, ANDs every bus address with its DMA mask ("clamping"), and
// treats a buffer range that leaves [0x40000, 0x41000) or ends exactly at 0x41000 as fatal
// (QEMU's hw_error). Bus addresses go through the test mapper's table, as through an IOMMU: an
// access to an unmapped page is dropped and counted as a fault, so a driver that programmed a
// physical address, or unmapped too early, loses the data and fails the test.

#include "drivers/edu/edu.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <vector>

#include "deviso/port/dma.h"
#include "ports/host/test_clock.h"

namespace deviso::drivers::edu {
namespace {

constexpr uint64_t kRamBase = 0x4000'0000;  // "physical" address of the simulated RAM
constexpr size_t kRamBytes = size_t{64} * 1024;
constexpr uint64_t kPage = 4096;

// A translating mapper: each mapping gets fresh device addresses at iova_base upwards, so a
// driver that programs physical addresses is caught.
class TestMapper final : public DmaMapper {  // NOLINT(cppcoreguidelines-virtual-class-destructor)
 public:
  Result<DmaMapping> MapForDevice(uint64_t pa, size_t size, DmaDirection direction) override {
    ++map_calls;
    if (fail_map_call != 0 && map_calls == fail_map_call) {
      return Status::NoMemory();
    }
    if (bounce) {
      // As a bouncing mapper: the exact range, at fresh page-aligned device addresses (the
      // copy is left out: the pages translate to the range's own bytes).
      ranges.push_back({pa, size});
      const uint64_t iova = next_iova_;
      const uint64_t pages = (size + kPage - 1) / kPage;
      next_iova_ += (pages + 1) * kPage;
      for (uint64_t i = 0; i < pages; ++i)
        pages_[iova + i * kPage] = Page{pa + i * kPage, direction};
      directions.push_back(direction);
      return DmaMapping{pa, iova, size, direction};
    }
    if (size == 0 || pa % kPage != 0 || size % kPage != 0) {
      return Status::InvalidArgument();
    }
    for (uint64_t p = pa; p < pa + size; p += kPage) {
      for (const auto& [iova, m] : pages_) {
        if (m.pa == p) {
          return Status::AlreadyExists();
        }
      }
    }
    const uint64_t iova = next_iova_;
    next_iova_ += size + kPage;  // a guard page between mappings
    for (uint64_t off = 0; off < size; off += kPage) {
      pages_[iova + off] = Page{pa + off, direction};
    }
    directions.push_back(direction);
    return DmaMapping{pa, iova, size, direction};
  }
  Status UnmapForDevice(const DmaMapping& m) override {
    if (pages_.count(m.device_addr) == 0) {
      return Status::NotFound();
    }
    for (uint64_t off = 0; off < m.size; off += kPage) {
      pages_.erase(m.device_addr + off);
    }
    ++unmaps;
    return Status::Ok();
  }
  size_t page_size() const override { return kPage; }
  bool bounces_sub_page() const override { return bounce; }

  // The physical address of device address `iova` for an access that writes or not, or 0.
  uint64_t Translate(uint64_t iova, bool write) const {
    const auto it = pages_.find(iova & ~(kPage - 1));
    if (it == pages_.end()) {
      return 0;
    }
    const DmaDirection d = it->second.direction;
    if ((write && d == DmaDirection::kToDevice) || (!write && d == DmaDirection::kFromDevice)) {
      return 0;
    }
    return it->second.pa + (iova & (kPage - 1));
  }
  size_t live() const { return pages_.size(); }
  void set_iova_base(uint64_t base) { next_iova_ = base; }

  bool bounce = false;                              // bounces_sub_page(): takes exact ranges
  std::vector<std::pair<uint64_t, size_t>> ranges;  // what MapForDevice got, when bouncing
  int map_calls = 0;
  int fail_map_call = 0;  // 1-based MapForDevice call that fails with -ENOMEM; 0: none
  int unmaps = 0;
  std::vector<DmaDirection> directions;

 private:
  struct Page {
    uint64_t pa;
    DmaDirection direction;
  };
  std::map<uint64_t, Page> pages_;
  uint64_t next_iova_ = 0x10'0000;
};

// Final, and never deleted through Mmio.
class FakeEdu final : public Mmio {  // NOLINT(cppcoreguidelines-virtual-class-destructor)
 public:
  FakeEdu(TestMapper& iommu, std::vector<uint8_t>& ram) : iommu_(iommu), ram_(ram) {}

  uint32_t Read32(size_t off) override {
    EXPECT_LT(off, 0x80U) << "32-bit access to a DMA register";
    switch (off) {
      case reg::Identification::kOffset:
        return identification;
      case reg::Liveness::kOffset:
        return ~liveness_;
      default:
        return 0;
    }
  }
  void Write32(size_t off, uint32_t v) override {
    if (off == reg::Liveness::kOffset) {
      liveness_ = v;
    }
  }
  uint64_t Read64(size_t off) override {
    switch (off) {
      case reg::DmaSource::kOffset:
        return src_;
      case reg::DmaDest::kOffset:
        return dst_;
      case reg::DmaCount::kOffset:
        return count_;
      case reg::DmaCommand::kOffset:
        if ((cmd_ & 1) != 0 && !hang && --polls_left_ <= 0) {
          Execute();
        }
        return cmd_;
      default:
        ADD_FAILURE() << "64-bit read at " << off;
        return 0;
    }
  }
  void Write64(size_t off, uint64_t v) override {
    if ((cmd_ & 1) != 0 && off >= reg::DmaSource::kOffset) {
      return;  // edu.c dma_rw(): ignored while a transfer runs
    }
    switch (off) {
      case reg::DmaSource::kOffset:
        src_ = v;
        break;
      case reg::DmaDest::kOffset:
        dst_ = v;
        break;
      case reg::DmaCount::kOffset:
        count_ = v;
        break;
      case reg::DmaCommand::kOffset:
        if ((v & 1) != 0) {
          cmd_ = v;
          polls_left_ = polls_per_transfer;
          ++commands;
          programmed.push_back({src_, dst_, count_, (v & 2) != 0});
        }
        break;
      default:
        ADD_FAILURE() << "64-bit write at " << off;
    }
  }

  // Lets a hung transfer finish now.
  void Finish() {
    hang = false;
    if ((cmd_ & 1) != 0) {
      Execute();
    }
  }
  uint8_t* buffer() { return buf_; }

  struct Programmed {
    uint64_t src, dst, count;
    bool to_ram;
  };
  std::vector<Programmed> programmed;
  uint32_t identification = 0x010000ed;
  uint64_t dma_mask = kDefaultDmaMask;
  int polls_per_transfer = 3;
  bool hang = false;
  int commands = 0;
  int clamped = 0;  // QEMU would have printed "EDU: clamping"
  int faults = 0;   // bytes the IOMMU refused

 private:
  // QEMU 7.2 edu_check_range(): start inside, end strictly inside, non-empty.
  static bool QemuRangeOk(uint64_t addr, uint64_t size) {
    const uint64_t end = addr + size;
    const uint64_t buf_end = kBufferAddr + kBufferBytes;
    return addr >= kBufferAddr && addr < buf_end && end > addr && end >= kBufferAddr &&
           end < buf_end;
  }
  uint64_t Clamp(uint64_t addr) {
    if ((addr & dma_mask) != addr) {
      ++clamped;
    }
    return addr & dma_mask;
  }
  uint8_t* Ram(uint64_t bus, bool write) {
    const uint64_t pa = iommu_.Translate(bus, write);
    if (pa < kRamBase || pa >= kRamBase + ram_.size()) {
      ++faults;
      return nullptr;
    }
    return ram_.data() + (pa - kRamBase);
  }
  void Execute() {
    const bool to_ram = (cmd_ & 2) != 0;
    const uint64_t buf_addr = to_ram ? src_ : dst_;
    if (!QemuRangeOk(buf_addr, count_)) {
      ADD_FAILURE() << "QEMU would abort: buffer range " << std::hex << buf_addr << "+" << count_;
    } else {
      const uint64_t bus = Clamp(to_ram ? dst_ : src_);
      uint8_t* b = buf_ + (buf_addr - kBufferAddr);
      for (uint64_t i = 0; i < count_; ++i) {
        if (uint8_t* p = Ram(bus + i, to_ram); p != nullptr) {
          if (to_ram) {
            *p = b[i];
          } else {
            b[i] = *p;
          }
        }
      }
    }
    cmd_ &= ~uint64_t{1};
  }

  TestMapper& iommu_;
  std::vector<uint8_t>& ram_;
  uint32_t liveness_ = 0;
  uint64_t src_ = 0, dst_ = 0, count_ = 0, cmd_ = 0;
  int polls_left_ = 0;
  uint8_t buf_[kBufferBytes] = {};
};

struct CallbackLog {
  std::vector<int> statuses;
  const struct device* dev = nullptr;
  uint32_t channel = 99;
  void* user = nullptr;
};

void OnDma(const struct device* dev, void* user_data, uint32_t channel, int status) {
  auto* log = static_cast<CallbackLog*>(user_data);
  log->statuses.push_back(status);
  log->dev = dev;
  log->channel = channel;
  log->user = user_data;
}

class EduTest : public ::testing::Test {
 protected:
  // Deadlines read a test clock that moves 1 us per reading (ports/host/test_clock.h): a
  // timeout is a number of polls, so a fake that completes within a few polls never loses it
  // to a loaded machine, and a hung one times out at once. First member: it outlives the rest.
  deviso::port::host::TestClock clock_{1'000};
  EduTest() : ram_(kRamBytes), edu_(mapper_, ram_), driver_(edu_, mapper_, Options()) {
    for (size_t i = 0; i < ram_.size(); ++i) {
      ram_[i] = static_cast<uint8_t>(i * 13 + (i >> 8));
    }
    driver_.AttachTo(dev_);
  }
  static EduOptions Options() {
    EduOptions o;
    o.transfer_timeout_ns = 20'000'000;  // 20 ms: the timeout test stays fast
    return o;
  }
  static uint64_t Pa(size_t ram_offset) { return kRamBase + ram_offset; }

  int Configure(uint32_t direction, uint64_t src, uint64_t dst, uint32_t size) {
    block_ = {};
    block_.source_address = src;
    block_.dest_address = dst;
    block_.block_size = size;
    cfg_ = {};
    cfg_.channel_direction = direction;
    cfg_.block_count = 1;
    cfg_.head_block = &block_;
    cfg_.user_data = &log_;
    cfg_.dma_callback = OnDma;
    return dma_config(&dev_, 0, &cfg_);
  }

  std::vector<uint8_t> ram_;
  TestMapper mapper_;
  FakeEdu edu_;
  EduDma driver_;
  struct device dev_ = {"DMA_0"};
  struct dma_block_config block_ = {};
  struct dma_config cfg_ = {};
  CallbackLog log_;
};

TEST_F(EduTest, ProbeChecksIdentificationAndLiveness) {
  EXPECT_TRUE(driver_.Probe().ok());
  edu_.identification = 0x01000000;
  EXPECT_EQ(driver_.Probe(), Status::NotFound());
  EduOptions bad;
  bad.dma_mask = 0xff00;
  EduDma other(edu_, mapper_, bad);
  edu_.identification = 0x010000ed;
  EXPECT_EQ(other.Probe(), Status::InvalidArgument());
}

TEST_F(EduTest, MemoryToMemoryCopiesThroughTheBufferWithDeviceAddresses) {
  const size_t src = 0x1000;
  const size_t dst = 0x8000;
  std::memset(ram_.data() + dst, 0xcc, 0x2000);
  const std::vector<uint8_t> expect(ram_.begin() + src, ram_.begin() + src + 4096);
  ASSERT_EQ(Configure(MEMORY_TO_MEMORY, Pa(src), Pa(dst), 4096), 0);
  ASSERT_EQ(dma_start(&dev_, 0), 0);

  EXPECT_EQ(0, std::memcmp(ram_.data() + dst, expect.data(), 4096));
  EXPECT_EQ(ram_[dst + 4096], 0xcc) << "wrote past the block";
  // 4096 bytes in 2048-byte chunks: RAM -> buffer, buffer -> RAM, twice.
  ASSERT_EQ(edu_.programmed.size(), 4U);
  for (const auto& p : edu_.programmed) {
    const uint64_t ram_side = p.to_ram ? p.dst : p.src;
    const uint64_t buf_side = p.to_ram ? p.src : p.dst;
    EXPECT_EQ(buf_side, kBufferAddr);
    EXPECT_LT(ram_side, kRamBase) << "programmed a physical address, not the mapper's";
    EXPECT_EQ(p.count, 2048U);
  }
  EXPECT_EQ(mapper_.live(), 0U) << "mappings outlived the transfer";
  EXPECT_EQ(mapper_.unmaps, 2);
  EXPECT_EQ(mapper_.directions,
            (std::vector<DmaDirection>{DmaDirection::kToDevice, DmaDirection::kFromDevice}));
  EXPECT_EQ(edu_.faults, 0);
  EXPECT_EQ(edu_.clamped, 0);
  EXPECT_EQ(log_.statuses, std::vector<int>{DMA_STATUS_COMPLETE});
  EXPECT_EQ(log_.dev, &dev_);
  EXPECT_EQ(log_.channel, 0U);

  struct dma_status st = {};
  ASSERT_EQ(dma_get_status(&dev_, 0, &st), 0);
  EXPECT_FALSE(st.busy);
  EXPECT_EQ(st.dir, MEMORY_TO_MEMORY);
  EXPECT_EQ(st.pending_length, 0U);
  EXPECT_EQ(st.total_copied, 4096U);
}

TEST_F(EduTest, UnalignedRangesInOnePageShareOneMapping) {
  // 100 bytes at 0x1010 -> 0x1800: both in one page, which can be mapped only once.
  ASSERT_EQ(Configure(MEMORY_TO_MEMORY, Pa(0x1010), Pa(0x1800), 100), 0);
  const std::vector<uint8_t> expect(ram_.begin() + 0x1010, ram_.begin() + 0x1010 + 100);
  ASSERT_EQ(dma_start(&dev_, 0), 0);
  EXPECT_EQ(0, std::memcmp(ram_.data() + 0x1800, expect.data(), 100));
  EXPECT_EQ(mapper_.directions, std::vector<DmaDirection>{DmaDirection::kBidirectional});
  EXPECT_EQ(mapper_.live(), 0U);
  ASSERT_EQ(edu_.programmed.size(), 2U);
  EXPECT_EQ(edu_.programmed[0].src % kPage, 0x010U) << "offset in the page kept";
}

// With a mapper that bounces, the driver hands it the exact ranges (not the pages around them)
// and programs the device addresses it returns, at no offset.
TEST_F(EduTest, ABouncingMapperGetsTheExactRanges) {
  mapper_.bounce = true;
  ASSERT_EQ(Configure(MEMORY_TO_MEMORY, Pa(0x1010), Pa(0x1800), 100), 0);
  const std::vector<uint8_t> expect(ram_.begin() + 0x1010, ram_.begin() + 0x1010 + 100);
  ASSERT_EQ(dma_start(&dev_, 0), 0);
  EXPECT_EQ(0, std::memcmp(ram_.data() + 0x1800, expect.data(), 100));
  const std::vector<std::pair<uint64_t, size_t>> ranges = {{Pa(0x1010), 100}, {Pa(0x1800), 100}};
  EXPECT_EQ(mapper_.ranges, ranges);
  EXPECT_EQ(mapper_.directions,
            (std::vector<DmaDirection>{DmaDirection::kToDevice, DmaDirection::kFromDevice}));
  EXPECT_EQ(mapper_.live(), 0U);
  ASSERT_EQ(edu_.programmed.size(), 2U);
  EXPECT_EQ(edu_.programmed[0].src % kPage, 0U) << "the bounce run's own address";
}

TEST_F(EduTest, PeripheralRoundTripAndBlockCallbacks) {
  // RAM -> buffer offset 0x100 (one list), then back to RAM as a list of two blocks (the
  // direction belongs to the list, so the round trip takes two lists).
  ASSERT_EQ(Configure(MEMORY_TO_PERIPHERAL, Pa(0x3000), kBufferAddr + 0x100, 512), 0);
  ASSERT_EQ(dma_start(&dev_, 0), 0);
  EXPECT_EQ(0, std::memcmp(edu_.buffer() + 0x100, ram_.data() + 0x3000, 512));
  EXPECT_EQ(mapper_.directions, std::vector<DmaDirection>{DmaDirection::kToDevice});

  struct dma_block_config second = {};
  second.source_address = kBufferAddr + 0x200;
  second.dest_address = Pa(0x5100);
  second.block_size = 256;
  ASSERT_EQ(Configure(PERIPHERAL_TO_MEMORY, kBufferAddr + 0x100, Pa(0x5000), 256), 0);
  block_.next_block = &second;
  cfg_.block_count = 2;
  cfg_.complete_callback_en = 1;
  ASSERT_EQ(dma_config(&dev_, 0, &cfg_), 0);
  log_.statuses.clear();
  ASSERT_EQ(dma_start(&dev_, 0), 0);
  EXPECT_EQ(0, std::memcmp(ram_.data() + 0x5000, ram_.data() + 0x3000, 512));
  EXPECT_EQ(log_.statuses, (std::vector<int>{DMA_STATUS_BLOCK, DMA_STATUS_COMPLETE}));
  EXPECT_EQ(mapper_.live(), 0U);
}

TEST_F(EduTest, RejectsBadRangesBeforeTouchingTheDevice) {
  struct Case {
    const char* what;
    uint32_t direction;
    uint64_t src, dst;
    uint32_t size;
    int error;
  };
  const Case cases[] = {
      {"zero size", MEMORY_TO_MEMORY, Pa(0), Pa(0x2000), 0, -EINVAL},
      // 0x40f00 + 0x100 = 0x41000: QEMU 7.2 aborts on a range ending at the buffer's end.
      {"ends at the buffer end", MEMORY_TO_PERIPHERAL, Pa(0), kBufferAddr + 0xf00, 0x100, -EINVAL},
      {"crosses the buffer end", MEMORY_TO_PERIPHERAL, Pa(0), kBufferAddr + 0xf00, 0x200, -EINVAL},
      {"below the buffer", PERIPHERAL_TO_MEMORY, kBufferAddr - 1, Pa(0), 16, -EINVAL},
      {"RAM address as buffer", PERIPHERAL_TO_MEMORY, Pa(0), Pa(0x2000), 16, -EINVAL},
      {"whole buffer", MEMORY_TO_PERIPHERAL, Pa(0), kBufferAddr, 4096, -EINVAL},
      {"wraps", MEMORY_TO_MEMORY, ~uint64_t{0} - 8, Pa(0), 16, -EINVAL},
      {"overlapping copy", MEMORY_TO_MEMORY, Pa(0x100), Pa(0x180), 0x100, -EINVAL},
      {"peripheral to peripheral", PERIPHERAL_TO_PERIPHERAL, kBufferAddr, kBufferAddr + 0x800, 16,
       -ENOTSUP},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Configure(c.direction, c.src, c.dst, c.size), c.error) << c.what;
  }
  // The largest legal range: the whole buffer but its last byte.
  EXPECT_EQ(Configure(MEMORY_TO_PERIPHERAL, Pa(0), kBufferAddr, 4095), 0);
  EXPECT_EQ(Configure(MEMORY_TO_PERIPHERAL, Pa(0), kBufferAddr + 0xf00, 0xff), 0);

  cfg_.block_count = 2;  // the chain has one block
  EXPECT_EQ(dma_config(&dev_, 0, &cfg_), -EINVAL);
  cfg_.block_count = 1;
  EXPECT_EQ(dma_config(&dev_, 1, &cfg_), -EINVAL) << "edu has one channel";
  EXPECT_EQ(dma_config(&dev_, 0, nullptr), -EINVAL);
  cfg_.cyclic = 1;
  EXPECT_EQ(dma_config(&dev_, 0, &cfg_), -ENOTSUP);
  cfg_.cyclic = 0;
  block_.dest_addr_adj = DMA_ADDR_ADJ_NO_CHANGE;
  EXPECT_EQ(dma_config(&dev_, 0, &cfg_), -ENOTSUP);
  EXPECT_EQ(dma_start(&dev_, 1), -EINVAL);
  EXPECT_EQ(edu_.commands, 0);
  EXPECT_EQ(mapper_.map_calls, 0);
  EXPECT_TRUE(log_.statuses.empty());
  EXPECT_EQ(dma_reload(&dev_, 0, 0, 0, 0), -ENOSYS);
}

TEST_F(EduTest, StartWithoutConfigurationIsRefused) {
  EXPECT_EQ(dma_start(&dev_, 0), -EINVAL);
  EXPECT_EQ(dma_stop(&dev_, 0), 0);
  struct device other = {"other"};
  EXPECT_EQ(EduDma::FromDevice(&other), nullptr);
}

TEST_F(EduTest, DeviceAddressBeyondTheDmaMaskIsRefused) {
  mapper_.set_iova_base(uint64_t{1} << 28);  // just past edu's default 28 bits
  ASSERT_EQ(Configure(MEMORY_TO_MEMORY, Pa(0x1000), Pa(0x4000), 64), 0);
  EXPECT_EQ(dma_start(&dev_, 0), -ERANGE);
  EXPECT_EQ(edu_.commands, 0) << "started a transfer QEMU would have clamped";
  EXPECT_EQ(edu_.clamped, 0);
  EXPECT_EQ(mapper_.live(), 0U);
  EXPECT_EQ(log_.statuses, std::vector<int>{-ERANGE});

  // A mask that covers the addresses makes the same transfer work.
  EduOptions wide = Options();
  wide.dma_mask = (uint64_t{1} << 40) - 1;
  edu_.dma_mask = wide.dma_mask;
  EduDma driver(edu_, mapper_, wide);
  struct device dev = {"DMA_1"};
  driver.AttachTo(dev);
  ASSERT_EQ(dma_config(&dev, 0, &cfg_), 0);
  EXPECT_EQ(dma_start(&dev, 0), 0);
  EXPECT_EQ(0, std::memcmp(ram_.data() + 0x4000, ram_.data() + 0x1000, 64));
  EXPECT_EQ(edu_.clamped, 0);
}

TEST_F(EduTest, MapperFailureReleasesWhatWasMapped) {
  mapper_.fail_map_call = 2;  // the destination
  ASSERT_EQ(Configure(MEMORY_TO_MEMORY, Pa(0x1000), Pa(0x4000), 64), 0);
  EXPECT_EQ(dma_start(&dev_, 0), -ENOMEM);
  EXPECT_EQ(mapper_.live(), 0U);
  EXPECT_EQ(edu_.commands, 0);
  cfg_.error_callback_dis = 1;
  ASSERT_EQ(dma_config(&dev_, 0, &cfg_), 0);
  mapper_.fail_map_call = 3;
  log_.statuses.clear();
  EXPECT_EQ(dma_start(&dev_, 0), -ENOMEM);
  EXPECT_TRUE(log_.statuses.empty()) << "error callback disabled";
}

TEST_F(EduTest, TransferThatNeverCompletesTimesOut) {
  edu_.hang = true;
  ASSERT_EQ(Configure(MEMORY_TO_PERIPHERAL, Pa(0x2000), kBufferAddr, 128), 0);
  EXPECT_EQ(dma_start(&dev_, 0), -ETIMEDOUT);
  EXPECT_EQ(log_.statuses, std::vector<int>{-ETIMEDOUT});
  EXPECT_EQ(mapper_.live(), 0U) << "a timed-out transfer must not keep its buffer reachable";
  EXPECT_EQ(driver_.timeouts(), 1U);
  struct dma_status st = {};
  ASSERT_EQ(dma_get_status(&dev_, 0, &st), 0);
  EXPECT_TRUE(st.busy);
  EXPECT_EQ(st.pending_length, 128U);
  // The engine is still busy: nothing new may start, and edu cannot abort.
  EXPECT_EQ(dma_start(&dev_, 0), -EBUSY);
  EXPECT_EQ(dma_config(&dev_, 0, &cfg_), -EBUSY);
  EXPECT_EQ(dma_stop(&dev_, 0), -EBUSY);

  // When it finally runs, its buffer is no longer mapped: the late access is refused.
  edu_.Finish();
  EXPECT_GT(edu_.faults, 0);
  EXPECT_EQ(dma_stop(&dev_, 0), 0);
  log_.statuses.clear();
  EXPECT_EQ(dma_start(&dev_, 0), 0);
  EXPECT_EQ(0, std::memcmp(edu_.buffer(), ram_.data() + 0x2000, 128));
  EXPECT_EQ(log_.statuses, std::vector<int>{DMA_STATUS_COMPLETE});
}

void Restart(const struct device* dev, void* user_data, uint32_t channel, int status) {
  auto* log = static_cast<CallbackLog*>(user_data);
  log->statuses.push_back(status);
  if (log->statuses.size() == 1) {
    log->statuses.push_back(dma_start(dev, channel));  // from the callback: allowed, runs again
  }
}

TEST_F(EduTest, CallbackRunsInStartsContextAndMayRestart) {
  ASSERT_EQ(Configure(MEMORY_TO_PERIPHERAL, Pa(0x2000), kBufferAddr, 16), 0);
  cfg_.dma_callback = Restart;
  ASSERT_EQ(dma_config(&dev_, 0, &cfg_), 0);
  EXPECT_EQ(dma_start(&dev_, 0), 0);
  // First completion, then the nested start's own completion, then its return value.
  EXPECT_EQ(log_.statuses, (std::vector<int>{0, 0, 0}));
  EXPECT_EQ(edu_.commands, 2);
}

// The seed README's flow: the driver comes up (device_get_binding()) before the application
// creates the isolation context, so its hook is attached afterwards.
struct SetMapperLog {
  EduDma* driver = nullptr;
  std::vector<int> results;
};

void SetMapperFromCallback(const struct device* /*dev*/, void* user_data, uint32_t /*channel*/,
                           int /*status*/) {
  auto* log = static_cast<SetMapperLog*>(user_data);
  log->results.push_back(log->driver->SetMapper(nullptr).ToC());
}

TEST_F(EduTest, HookAttachedAfterProbe) {
  EduDma late(edu_, Options());
  struct device dev = {"DMA_1"};
  late.AttachTo(dev);
  ASSERT_TRUE(late.Probe().ok());
  block_ = {};
  block_.source_address = Pa(0x2000);
  block_.dest_address = kBufferAddr;
  block_.block_size = 64;
  cfg_ = {};
  cfg_.channel_direction = MEMORY_TO_PERIPHERAL;
  cfg_.block_count = 1;
  cfg_.head_block = &block_;
  SetMapperLog log{&late, {}};
  cfg_.user_data = &log;
  cfg_.dma_callback = SetMapperFromCallback;
  ASSERT_EQ(dma_config(&dev, 0, &cfg_), 0) << "configuring needs no hook";
  EXPECT_EQ(dma_start(&dev, 0), -EINVAL) << "no hook: nothing may reach the device";
  EXPECT_EQ(edu_.commands, 0);
  EXPECT_EQ(mapper_.map_calls, 0);
  EXPECT_TRUE(log.results.empty()) << "a refused start calls nobody back";

  ASSERT_TRUE(late.SetMapper(&mapper_).ok());
  EXPECT_EQ(dma_start(&dev, 0), 0);
  EXPECT_EQ(edu_.commands, 1);
  EXPECT_EQ(mapper_.map_calls, 1);
  EXPECT_EQ(mapper_.live(), 0U);
  // The callback runs after the transfer: detaching from there is allowed.
  EXPECT_EQ(log.results, std::vector<int>{0});
  EXPECT_EQ(dma_start(&dev, 0), -EINVAL) << "detached";
  EXPECT_EQ(edu_.commands, 1);

  // While the engine is stuck after a timeout, the hook cannot change.
  ASSERT_TRUE(late.SetMapper(&mapper_).ok());
  cfg_.dma_callback = nullptr;
  ASSERT_EQ(dma_config(&dev, 0, &cfg_), 0);
  edu_.hang = true;
  EXPECT_EQ(dma_start(&dev, 0), -ETIMEDOUT);
  EXPECT_EQ(late.SetMapper(nullptr), Status::Busy());
  edu_.Finish();
  EXPECT_TRUE(late.SetMapper(nullptr).ok());
}

}  // namespace
}  // namespace deviso::drivers::edu
