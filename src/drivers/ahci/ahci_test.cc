// Host tests of the AHCI driver against a register-level fake HBA (one port, one disk).
//
// The fake executes a command the moment PxCI is written: it walks the command header and
// table the driver built (device addresses are host pointers here), moves data through the
// PRDT, and reports like QEMU's ICH9 AHCI: PRDBC, PxTFD, PxIS.TFES on a bad LBA, and a command
// that never completes when told to hang (QEMU does that when it cannot reach a command table).

#include "drivers/ahci/ahci.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "drivers/testing/recording_mapper.h"
#include "ports/host/test_clock.h"

namespace deviso::drivers::ahci {
namespace {

constexpr uint64_t kDiskSectors = 64;

// Final, and never deleted through Mmio (whose destructor is protected).
class FakeHba final : public Mmio {  // NOLINT(cppcoreguidelines-virtual-class-destructor)
 public:
  FakeHba() : disk_(kDiskSectors * 512) {
    for (size_t i = 0; i < disk_.size(); ++i) {
      disk_[i] = static_cast<uint8_t>(i * 7 + i / 512);
    }
  }

  uint32_t Read32(size_t off) override {
    switch (off) {
      case reg::Cap::kOffset:
        return reg::Cap{}.set_s64a(s64a ? 1 : 0).set_ncs(31).set_np(0).raw;
      case reg::Ghc::kOffset:
        return ghc_;
      case reg::Pi::kOffset:
        return 1;
      case reg::Vs::kOffset:
        return 0x00010000;
      case reg::Cap2::kOffset:
        return 0;
      default:
        break;
    }
    switch (off - reg::PortOffset(0)) {
      case reg::PxCmd::kOffset:
        return cmd_;
      case reg::PxIs::kOffset:
        return is_;
      case reg::PxTfd::kOffset:
        return tfd_;
      case reg::PxSig::kOffset:
        return reg::PxSig::kAta;
      case reg::PxSsts::kOffset:
        return link_up ? 0x113 : 0;
      case reg::PxSctl::kOffset:
        return sctl_;
      case reg::PxCi::kOffset:
        return ci_;
      default:
        return regs_[(off - reg::PortOffset(0)) / 4 % 32];
    }
  }

  void Write32(size_t off, uint32_t v) override {
    if (off == reg::Ghc::kOffset) {
      ghc_ = v & ~1U;  // HR completes at once
      return;
    }
    if (off < reg::PortOffset(0)) {
      return;
    }
    const size_t p = off - reg::PortOffset(0);
    switch (p) {
      case reg::PxCmd::kOffset: {
        reg::PxCmd c{v};
        if (reg::PxCmd{cmd_}.st() != 0 && c.st() == 0) {
          ++stops;
        }
        c.set_cr(c.st()).set_fr(c.fre());  // the engines follow ST and FRE at once
        cmd_ = c.raw;
        if (c.st() == 0) {
          ci_ = 0;  // 3.3.14: clearing ST clears PxCI
        }
        return;
      }
      case reg::PxIs::kOffset:
        is_ &= ~v;
        return;
      case reg::PxSctl::kOffset:
        if ((sctl_ & 0xf) == 1 && (v & 0xf) == 0) {
          ++comresets;
          tfd_ = 0x50;
          ci_ = 0;
        }
        sctl_ = v;
        return;
      case reg::PxCi::kOffset:
        ++issued;
        ci_ |= v;
        if (reg::PxCmd{cmd_}.st() != 0 && !hang) {
          Execute();
        }
        return;
      default:
        regs_[p / 4 % 32] = v;
    }
  }
  uint64_t Read64(size_t) override { return 0; }
  void Write64(size_t, uint64_t) override {}

  std::vector<uint8_t>& disk() { return disk_; }
  // The PRDT of the last command, as (address, bytes) pairs.
  std::vector<std::pair<uint64_t, uint32_t>> last_prdt;

  bool s64a = true;
  bool link_up = true;
  bool hang = false;
  int issued = 0;
  int comresets = 0;
  int stops = 0;  // PxCMD.ST 1 -> 0 transitions
  // If set, data (PRD) addresses go through it, as through an IOMMU: it returns the host
  // memory for [addr, addr + n) accessed in that direction, or null (the access is blocked and
  // moves nothing).
  std::function<uint8_t*(uint64_t addr, size_t n, bool device_writes)> translate;
  int blocked = 0;

 private:
  template <typename T>
  static T* At(uint64_t device_addr) {
    return reinterpret_cast<T*>(static_cast<uintptr_t>(device_addr));
  }

  void Execute() {
    const uint64_t clb =
        regs_[reg::PxClb::kOffset / 4] | (uint64_t{regs_[reg::PxClbu::kOffset / 4]} << 32);
    auto* header = At<ds::CommandHeader>(clb);
    const uint64_t ctba = header->raw[2] | (uint64_t{header->raw[3]} << 32);
    auto* table = At<uint8_t>(ctba);
    ds::FisRegH2d fis;
    std::memcpy(&fis, table, sizeof(fis));
    const auto* prdt = reinterpret_cast<const ds::Prd*>(table + ds::kPrdtOffset);
    last_prdt.clear();
    for (uint32_t i = 0; i < header->prdtl(); ++i) {
      last_prdt.emplace_back(prdt[i].raw[0] | (uint64_t{prdt[i].raw[1]} << 32),
                             (prdt[i].raw[3] & 0x3fffff) + 1);
    }
    const uint64_t lba = fis.lba0 | (uint64_t{fis.lba1} << 8) | (uint64_t{fis.lba2} << 16) |
                         (uint64_t{fis.lba3} << 24) | (uint64_t{fis.lba4} << 32) |
                         (uint64_t{fis.lba5} << 40);
    uint32_t count = fis.count_low | (uint32_t{fis.count_high} << 8);
    std::vector<uint8_t> identify(512);
    uint8_t* src = nullptr;
    size_t bytes = 0;
    if (fis.command == ata::kIdentifyDevice) {
      auto* w = reinterpret_cast<uint16_t*>(identify.data());
      const char model[] = "FAKE DISK                               ";  // 40 chars
      for (size_t i = 0; i < 20; ++i) {
        w[ata::kIdModel + i] = static_cast<uint16_t>((model[2 * i] << 8) | model[2 * i + 1]);
      }
      w[ata::kIdCommandSets2] = 1U << 10;
      w[ata::kIdLba48Sectors] = static_cast<uint16_t>(kDiskSectors);
      src = identify.data();
      bytes = 512;
    } else {
      if (count == 0) {
        count = 65536;
      }
      if (lba + count > kDiskSectors) {
        tfd_ = 0x0441;  // ERR with ABRT|IDNF, like QEMU
        is_ |= reg::PxIs{}.set_tfes(1).raw;
        return;  // CI stays set
      }
      src = disk_.data() + lba * 512;
      bytes = size_t{count} * 512;
    }
    size_t done = 0;
    for (const auto& [addr, n] : last_prdt) {
      const size_t chunk = std::min<size_t>(n, bytes - done);
      const bool device_writes = fis.command != ata::kWriteDmaExt;
      uint8_t* mem = translate ? translate(addr, chunk, device_writes) : At<uint8_t>(addr);
      if (mem == nullptr) {
        ++blocked;  // like QEMU behind an IOMMU: the command still "succeeds"
      } else if (device_writes) {
        std::memcpy(mem, src + done, chunk);
      } else {
        std::memcpy(src + done, mem, chunk);
      }
      done += chunk;
    }
    header->raw[1] = static_cast<uint32_t>(done);
    tfd_ = 0x50;
    is_ |= reg::PxIs{}.set_dhrs(1).raw;
    ci_ = 0;
  }

  std::vector<uint8_t> disk_;
  uint32_t ghc_ = 0;
  uint32_t cmd_ = 0;
  uint32_t is_ = 0;
  uint32_t tfd_ = 0x50;
  uint32_t sctl_ = 0;
  uint32_t ci_ = 0;
  uint32_t regs_[32] = {};
};

// Host memory as DMA memory; the device address is the host pointer, plus `offset` (to test
// the driver's 4 GiB check).
class HostDma final : public DmaAllocator {  // NOLINT(cppcoreguidelines-virtual-class-destructor)
 public:
  ~HostDma() { EXPECT_EQ(live, 0) << "DMA regions leaked"; }
  Result<DmaRegion> Alloc(size_t size, size_t align) override {
    void* p = std::aligned_alloc(align, (size + align - 1) / align * align);
    std::memset(p, 0, size);
    ++live;
    return DmaRegion{p, reinterpret_cast<uintptr_t>(p) + offset, size};
  }
  void Free(const DmaRegion& r) override {
    std::free(r.cpu);
    --live;
  }
  void SyncForDevice(const DmaRegion&, size_t, size_t) override {}
  void SyncForCpu(const DmaRegion&, size_t, size_t) override {}
  int live = 0;
  uint64_t offset = 0;
};

// The hook as an IOMMU would implement it (src/drivers/testing/recording_mapper.h); FakeHba
// resolves the device's accesses through its live mappings only.
using deviso::drivers::testing::RecordingMapper;
constexpr uint64_t kIovaBase = RecordingMapper::kIovaBase;

class AhciTest : public ::testing::Test {
 protected:
  // Deadlines read a test clock that moves 1 us per reading (ports/host/test_clock.h): a
  // timeout is a number of polls, so a fake that completes within a few polls never loses it
  // to a loaded machine, and a hung one times out at once. First member: it outlives the rest.
  deviso::port::host::TestClock clock_{1'000};
  void SetUp() override { ASSERT_TRUE(hba_.Init().ok()); }

  FakeHba fake_;
  Hba hba_{fake_};
  HostDma dma_;
};

TEST_F(AhciTest, InitReportsCapabilitiesAndLink) {
  EXPECT_EQ(hba_.ports_implemented(), 1U);
  EXPECT_EQ(hba_.command_slots(), 32U);
  EXPECT_TRUE(hba_.s64a());
  EXPECT_EQ(hba_.PortsWithLink(), 1U);
  fake_.link_up = false;
  EXPECT_EQ(hba_.PortsWithLink(), 0U);
}

TEST_F(AhciTest, StartWithoutDeviceIsNotFound) {
  fake_.link_up = false;
  Port port(fake_, 0, dma_, true);
  EXPECT_EQ(port.Start(), Status::NotFound());
  EXPECT_FALSE(port.running());
}

TEST_F(AhciTest, IdentifyParsesModelAndCapacity) {
  Port port(fake_, 0, dma_, true);
  ASSERT_TRUE(port.Start().ok());
  const Result<IdentifyInfo> id = port.Identify();
  ASSERT_TRUE(id.ok());
  EXPECT_STREQ(id->model, "FAKE DISK");  // trailing blanks trimmed
  EXPECT_EQ(id->sectors, kDiskSectors);
  EXPECT_TRUE(id->lba48);
  EXPECT_EQ(id->sector_bytes, 512U);
}

TEST_F(AhciTest, ReadScattersOverOnePrdPerSegment) {
  Port port(fake_, 0, dma_, true);
  ASSERT_TRUE(port.Start().ok());
  DmaRegion a = *dma_.Alloc(1024, 64);
  DmaRegion b = *dma_.Alloc(2048, 64);
  // 6 sectors at LBA 5: 1024 bytes into a, then 2048 into b (the last 2 KiB of b's 4 sectors).
  const DmaSegment sg[] = {{&a, 0, 1024}, {&b, 0, 2048}};
  ASSERT_TRUE(port.Read(5, 6, sg).ok());
  ASSERT_EQ(fake_.last_prdt.size(), 2U);
  EXPECT_EQ(fake_.last_prdt[0].first, a.device_addr);
  EXPECT_EQ(fake_.last_prdt[0].second, 1024U);  // DBC = 1023 encodes 1024 bytes
  EXPECT_EQ(fake_.last_prdt[1].second, 2048U);
  EXPECT_EQ(std::memcmp(a.cpu, fake_.disk().data() + size_t{5} * 512, 1024), 0);
  EXPECT_EQ(std::memcmp(b.cpu, fake_.disk().data() + size_t{7} * 512, 2048), 0);
  dma_.Free(a);
  dma_.Free(b);
}

TEST_F(AhciTest, WriteGathersSegments) {
  Port port(fake_, 0, dma_, true);
  ASSERT_TRUE(port.Start().ok());
  DmaRegion buf = *dma_.Alloc(1536, 64);
  std::memset(buf.cpu, 0xab, 1536);
  const DmaSegment sg[] = {{&buf, 0, 512}, {&buf, 512, 1024}};
  ASSERT_TRUE(port.Write(10, 3, sg).ok());
  for (size_t i = size_t{10} * 512; i < size_t{13} * 512; ++i) {
    ASSERT_EQ(fake_.disk()[i], 0xab) << i;
  }
  EXPECT_NE(fake_.disk()[size_t{13} * 512], 0xab);
  dma_.Free(buf);
}

// Bad segment lists are refused before anything reaches the hardware.
TEST_F(AhciTest, InvalidSegmentsAreRefusedWithoutIssuing) {
  PortOptions options;
  options.max_prds = 2;
  Port port(fake_, 0, dma_, true, options);
  ASSERT_TRUE(port.Start().ok());
  DmaRegion buf = *dma_.Alloc(4096, 64);
  const int issued = fake_.issued;
  const DmaSegment odd[] = {{&buf, 0, 511}, {&buf, 512, 1}};
  EXPECT_EQ(port.Read(0, 1, odd), Status::InvalidArgument());
  const DmaSegment short_sg[] = {{&buf, 0, 512}};
  EXPECT_EQ(port.Read(0, 2, short_sg), Status::InvalidArgument());  // 512 of 1024 bytes
  const DmaSegment too_many[] = {{&buf, 0, 512}, {&buf, 512, 512}, {&buf, 1024, 512}};
  EXPECT_EQ(port.Read(0, 3, too_many), Status::InvalidArgument());
  const DmaSegment outside[] = {{&buf, 4096 - 256, 512}};
  EXPECT_EQ(port.Read(0, 1, outside), Status::InvalidArgument());
  EXPECT_EQ(port.Read(0, 0, short_sg), Status::InvalidArgument());
  EXPECT_EQ(port.Read(1ULL << 48, 1, short_sg), Status::InvalidArgument());
  EXPECT_EQ(fake_.issued, issued);
  dma_.Free(buf);
}

TEST_F(AhciTest, DeviceErrorIsEioAndThePortRecovers) {
  Port port(fake_, 0, dma_, true);
  ASSERT_TRUE(port.Start().ok());
  DmaRegion buf = *dma_.Alloc(512, 64);
  const DmaSegment sg[] = {{&buf, 0, 512}};
  EXPECT_EQ(port.Read(kDiskSectors, 1, sg), Status::IoError());
  EXPECT_EQ(port.errors(), 1U);
  EXPECT_TRUE(port.running());
  EXPECT_TRUE(port.Read(kDiskSectors - 1, 1, sg).ok());
  dma_.Free(buf);
}

TEST_F(AhciTest, HungCommandTimesOutResetsTheLinkAndRestarts) {
  PortOptions options;
  options.command_timeout_ns = 20'000'000;
  Port port(fake_, 0, dma_, true, options);
  ASSERT_TRUE(port.Start().ok());
  DmaRegion buf = *dma_.Alloc(512, 64);
  const DmaSegment sg[] = {{&buf, 0, 512}};
  fake_.hang = true;
  EXPECT_EQ(port.Read(0, 1, sg), Status::TimedOut());
  EXPECT_EQ(port.timeouts(), 1U);
  EXPECT_EQ(fake_.comresets, 1);
  EXPECT_TRUE(port.running());
  fake_.hang = false;
  EXPECT_TRUE(port.Read(0, 1, sg).ok());
  dma_.Free(buf);
}

TEST_F(AhciTest, DeviceAddressAbove4GiBNeedsS64a) {
  dma_.offset = 1ULL << 40;  // every device address above 4 GiB
  Port port(fake_, 0, dma_, /*s64a=*/false);
  EXPECT_EQ(port.Start(), Status::OutOfRange());
  EXPECT_EQ(dma_.live, 0);  // nothing kept on failure
}

// ---- The DMA-driver hook ------------------------------------------------------------------

class AhciMappedTest : public AhciTest {
 protected:
  void SetUp() override {
    AhciTest::SetUp();
    fake_.translate = [this](uint64_t a, size_t n, bool w) { return mapper_.Translate(a, n, w); };
  }
  // Host memory of three pages; the buffer starts 512 bytes into the first.
  static constexpr size_t kBufferOffset = 512;
  uint64_t BufferPa() const { return reinterpret_cast<uintptr_t>(storage_) + kBufferOffset; }
  uint64_t StoragePa() const { return reinterpret_cast<uintptr_t>(storage_); }

  RecordingMapper mapper_;
  uint8_t* storage_ = static_cast<uint8_t*>(std::aligned_alloc(4096, size_t{3} * 4096));
  std::unique_ptr<uint8_t, decltype(&std::free)> owner_{storage_, &std::free};
};

// A read maps exactly the pages holding the buffer, for device writes, and unmaps them before
// returning; the data lands in the buffer.
TEST_F(AhciMappedTest, ReadMapsTheBuffersPagesForTheCommandOnly) {
  Port port(fake_, 0, dma_, true);
  ASSERT_TRUE(port.Start().ok());
  std::memset(storage_, 0xee, size_t{3} * 4096);
  // 8 sectors (4 KiB) from 512 bytes into the first page: the buffer spans two pages.
  ASSERT_EQ(port.ReadMapped(mapper_, 3, 8, BufferPa()), Status::Ok());
  ASSERT_EQ(mapper_.calls.size(), 2U);
  EXPECT_TRUE(mapper_.calls[0].map);
  EXPECT_EQ(mapper_.calls[0].mapping.pa, StoragePa());
  EXPECT_EQ(mapper_.calls[0].mapping.size, 2 * 4096U);
  EXPECT_EQ(mapper_.calls[0].mapping.direction, DmaDirection::kFromDevice);
  EXPECT_FALSE(mapper_.calls[1].map);
  EXPECT_TRUE(mapper_.live.empty());
  // The HBA was given the device address, with the buffer's offset, not the physical one.
  ASSERT_EQ(fake_.last_prdt.size(), 1U);
  EXPECT_EQ(fake_.last_prdt[0].first, kIovaBase + BufferPa());
  EXPECT_EQ(fake_.blocked, 0);
  EXPECT_EQ(std::memcmp(storage_ + kBufferOffset, fake_.disk().data() + size_t{3} * 512, 4096), 0);
  EXPECT_EQ(storage_[kBufferOffset - 1], 0xee);  // nothing outside the buffer written
  EXPECT_EQ(storage_[kBufferOffset + 4096], 0xee);
}

TEST_F(AhciMappedTest, WriteMapsForDeviceReads) {
  Port port(fake_, 0, dma_, true);
  ASSERT_TRUE(port.Start().ok());
  std::memset(storage_ + 4096, 0xab, 1024);
  ASSERT_EQ(port.WriteMapped(mapper_, 20, 2, StoragePa() + 4096), Status::Ok());
  ASSERT_EQ(mapper_.calls.size(), 2U);
  EXPECT_EQ(mapper_.calls[0].mapping.pa, StoragePa() + 4096);
  EXPECT_EQ(mapper_.calls[0].mapping.size, 4096U);
  EXPECT_EQ(mapper_.calls[0].mapping.direction, DmaDirection::kToDevice);
  EXPECT_TRUE(mapper_.live.empty());
  for (size_t i = size_t{20} * 512; i < size_t{22} * 512; ++i) {
    ASSERT_EQ(fake_.disk()[i], 0xab) << i;
  }
}

// A larger page size (e.g. a 64 KiB granule) rounds out to its pages.
TEST_F(AhciMappedTest, MappingFollowsTheMappersPageSize) {
  mapper_.page = 1024;
  Port port(fake_, 0, dma_, true);
  ASSERT_TRUE(port.Start().ok());
  ASSERT_EQ(port.ReadMapped(mapper_, 0, 3, BufferPa() + 256), Status::Ok());
  ASSERT_FALSE(mapper_.calls.empty());
  // [768 + 512, +1536) -> pages [0, 3072) of 1 KiB.
  EXPECT_EQ(mapper_.calls[0].mapping.pa, StoragePa());
  EXPECT_EQ(mapper_.calls[0].mapping.size, 3072U);
}

TEST_F(AhciMappedTest, DeviceErrorStillUnmaps) {
  Port port(fake_, 0, dma_, true);
  ASSERT_TRUE(port.Start().ok());
  EXPECT_EQ(port.ReadMapped(mapper_, kDiskSectors, 1, BufferPa()), Status::IoError());
  EXPECT_EQ(mapper_.calls.size(), 2U);
  EXPECT_TRUE(mapper_.live.empty());
  EXPECT_TRUE(port.running());
}

// After a timeout the mapping goes only once the port was stopped (and reset).
TEST_F(AhciMappedTest, TimeoutUnmapsOnlyAfterThePortWasStopped) {
  PortOptions options;
  options.command_timeout_ns = 20'000'000;
  Port port(fake_, 0, dma_, true, options);
  ASSERT_TRUE(port.Start().ok());
  const int stops_before = fake_.stops;
  int stops_at_unmap = -1;
  int comresets_at_unmap = -1;
  mapper_.on_unmap = [&] {
    stops_at_unmap = fake_.stops;
    comresets_at_unmap = fake_.comresets;
  };
  fake_.hang = true;
  EXPECT_EQ(port.ReadMapped(mapper_, 0, 8, BufferPa()), Status::TimedOut());
  EXPECT_GT(stops_at_unmap, stops_before);
  EXPECT_EQ(comresets_at_unmap, 1);
  EXPECT_TRUE(mapper_.live.empty());
  EXPECT_EQ(mapper_.calls.size(), 2U);
  fake_.hang = false;
  EXPECT_EQ(port.ReadMapped(mapper_, 0, 8, BufferPa()), Status::Ok());
  EXPECT_TRUE(mapper_.live.empty());
}

TEST_F(AhciMappedTest, FailedMapIssuesNothing) {
  Port port(fake_, 0, dma_, true);
  ASSERT_TRUE(port.Start().ok());
  const int issued = fake_.issued;
  mapper_.fail_map = Status::NoMemory();
  EXPECT_EQ(port.ReadMapped(mapper_, 0, 8, BufferPa()), Status::NoMemory());
  EXPECT_EQ(fake_.issued, issued);
  EXPECT_TRUE(mapper_.calls.empty());
}

TEST_F(AhciMappedTest, InvalidRequestsMapNothing) {
  PortOptions options;
  options.max_prds = 1;
  Port port(fake_, 0, dma_, true, options);
  const int issued = fake_.issued;
  EXPECT_EQ(port.ReadMapped(mapper_, 0, 1, BufferPa()), Status::IoError());  // not started
  ASSERT_TRUE(port.Start().ok());
  EXPECT_EQ(port.ReadMapped(mapper_, 0, 0, BufferPa()), Status::InvalidArgument());
  EXPECT_EQ(port.ReadMapped(mapper_, 1ULL << 48, 1, BufferPa()), Status::InvalidArgument());
  EXPECT_EQ(port.ReadMapped(mapper_, 0, 1, BufferPa() + 1), Status::InvalidArgument());
  EXPECT_EQ(port.ReadMapped(mapper_, 0, 1, UINT64_MAX - 255), Status::InvalidArgument());
  // 9 MiB needs three PRDs; one is allowed.
  EXPECT_EQ(port.ReadMapped(mapper_, 0, 18432, BufferPa()), Status::InvalidArgument());
  mapper_.page = 3000;  // not a power of two
  EXPECT_EQ(port.ReadMapped(mapper_, 0, 1, BufferPa()), Status::InvalidArgument());
  EXPECT_TRUE(mapper_.calls.empty());
  EXPECT_EQ(fake_.issued, issued);
}

// A transfer larger than one PRD (4 MiB) is split over several.
TEST_F(AhciMappedTest, LargeTransfersSplitIntoPrdsOfAtMost4MiB) {
  Port port(fake_, 0, dma_, true);
  ASSERT_TRUE(port.Start().ok());
  std::unique_ptr<uint8_t, decltype(&std::free)> big(
      static_cast<uint8_t*>(std::aligned_alloc(4096, 9 << 20)), &std::free);
  const uint64_t pa = reinterpret_cast<uintptr_t>(big.get());
  // 9 MiB at LBA 0 is beyond the 64-sector fake disk: the HBA reports an error after the PRDT
  // was built; what matters here is the PRDT and the unmap.
  EXPECT_EQ(port.ReadMapped(mapper_, 0, 18432, pa), Status::IoError());
  ASSERT_EQ(fake_.last_prdt.size(), 3U);
  EXPECT_EQ(fake_.last_prdt[0], std::make_pair(kIovaBase + pa, 4U << 20));
  EXPECT_EQ(fake_.last_prdt[1], std::make_pair(kIovaBase + pa + (4 << 20), 4U << 20));
  EXPECT_EQ(fake_.last_prdt[2], std::make_pair(kIovaBase + pa + (8 << 20), 1U << 20));
  EXPECT_TRUE(mapper_.live.empty());
}

TEST_F(AhciMappedTest, FailedUnmapIsReported) {
  Port port(fake_, 0, dma_, true);
  ASSERT_TRUE(port.Start().ok());
  mapper_.fail_unmap = Status::TimedOut();
  EXPECT_EQ(port.ReadMapped(mapper_, 0, 8, BufferPa()), Status::TimedOut());
  mapper_.fail_unmap = Status::Ok();
  mapper_.live.clear();
}

}  // namespace
}  // namespace deviso::drivers::ahci
