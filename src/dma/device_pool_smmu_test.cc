// Device-bound pools and the DMA-driver hook through the registry over the real SMMUv3 driver
// on the host register-level model (src/smmuv3/testing): the device's bytes land through the
// mapped blocks, DMA to a freed strict block is blocked and reported, DMA to a freed pool-wide
// block still lands (the documented trade-off), pool-wide mappings are 2 MiB blocks, and a
// non-coherent device sees the data only through the cache hooks (CTest label `pool`).

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "deviso/config.h"
#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "dma/device_pool.h"
#include "dma/dma_mapper.h"
#include "smmuv3/smmuv3.h"
#include "smmuv3/testing/registry_rig.h"

namespace deviso::dma {
namespace {

using drivers::DmaDirection;
using drivers::DmaMapping;
using drivers::DmaRegion;

constexpr uint64_t kPage = 4096;
constexpr uint64_t k2MiB = 2u << 20;
constexpr uint32_t kSid = 0x10;

// Forwards to the SMMUv3 driver and remembers the domain the registry created, so a test can
// look into its page table.
class Spy final : public IsolationUnit {
 public:
  explicit Spy(smmuv3::Smmuv3& smmu) : smmu_(smmu) {}
  const UnitCaps& caps() const override { return smmu_.caps(); }
  Status ValidateStream(uint32_t sid) const override { return smmu_.ValidateStream(sid); }
  Result<Domain*> CreateDomain(const DomainOptions& options, FaultSink* sink) override {
    Result<Domain*> d = smmu_.CreateDomain(options, sink);
    if (d.ok()) last_ = static_cast<smmuv3::SmmuDomain*>(*d);
    return d;
  }
  Status DestroyDomain(Domain* d) override { return smmu_.DestroyDomain(d); }
  Status Attach(Domain* d, uint32_t sid) override { return smmu_.Attach(d, sid); }
  Status Detach(Domain* d, uint32_t sid) override { return smmu_.Detach(d, sid); }
  Status Map(Domain* d, Iova iova, Paddr pa, uint64_t size, Perms perms, MemType type) override {
    return smmu_.Map(d, iova, pa, size, perms, type);
  }
  Status Unmap(Domain* d, Iova iova, uint64_t size) override { return smmu_.Unmap(d, iova, size); }
  Result<Paddr> IovaToPhys(Domain* d, Iova iova) override { return smmu_.IovaToPhys(d, iova); }
  const smmuv3::SmmuDomain* last() const { return last_; }

 private:
  smmuv3::Smmuv3& smmu_;
  smmuv3::SmmuDomain* last_ = nullptr;
};

class Rig : public smmuv3::testing::RegistryRig {
 public:
  explicit Rig(bool coherent) : RegistryRig(RigOptions(coherent)) {
    spy = std::make_unique<Spy>(*smmu);
  }

  static RegistryRig::Options RigOptions(bool coherent) {
    RegistryRig::Options o;
    o.memory.coherent = coherent;
    o.memory.dma_bytes = 12u << 20;
    o.smmu.name = "smmuv3@pool";
    o.smmu.dma_coherent = coherent;
    o.smmu.timeout_ns = 50'000'000;
    return o;
  }

  // Probes and enables the SMMU, registers it, binds the device and gives it a context; then
  // carves a 4 MiB, 2 MiB-aligned pool of 4 KiB blocks out of simulated RAM.
  void Start() {
    ASSERT_TRUE(RegistryRig::Start(true).ok());
    ASSERT_TRUE(registry->RegisterUnit(*spy).ok());
    ASSERT_TRUE(registry->BindDevice(&dev, *spy, {&kSid, 1}).ok());
    Result<Context> made = registry->AllocContext(&dev, kSid);
    ASSERT_TRUE(made.ok());
    ctx = *made;
    Result<DmaBuffer> buf = memory.dma().Allocate(4u << 20, k2MiB);
    ASSERT_TRUE(buf.ok());
    bitmap.assign(BitmapWords(1024), 0);
    blocks = std::make_unique<BlockPool>(buf->cpu, buf->pa, kPage, 1024, bitmap.data());
    ASSERT_TRUE(blocks->valid());
    ASSERT_TRUE(reserved.Add(0x1000'0000, 0x2eff'0000).ok());  // PCI MMIO window
  }

  DeviceBinding Binding(Addressing addressing, bool coherent) {
    DeviceBinding b;
    b.context = ctx;
    b.addressing = addressing;
    b.iova = &iova;
    b.reserved = &reserved;
    b.coherent = coherent;
    b.cache.user = this;
    b.cache.clean = [](void* user, Paddr pa, size_t size) {
      Rig& rig = *static_cast<Rig*>(user);
      rig.cleans.push_back({pa, size});
      rig.memory.Clean(rig.memory.Cpu(pa), size);
    };
    b.cache.invalidate = [](void* user, Paddr pa, size_t size) {
      Rig& rig = *static_cast<Rig*>(user);
      rig.invalidates.push_back({pa, size});
      rig.memory.Invalidate(rig.memory.Cpu(pa), size);
    };
    return b;
  }

  uint64_t Faults() const { return ctx.fault_count().value_or(0); }

  std::unique_ptr<Spy> spy;
  device dev{"dma-dev"};
  Context ctx;
  std::vector<uint64_t> bitmap;
  std::unique_ptr<BlockPool> blocks;
  ReservedWindows reserved;
  StaticIovaAllocator<32> iova{0x0800'0000, 0x4000'0000, kPage, &reserved};
  struct Range {
    Paddr pa;
    size_t size;
    bool operator==(const Range&) const = default;
  };
  std::vector<Range> cleans;
  std::vector<Range> invalidates;
};

struct Case {
  PoolMode mode;
  Addressing addressing;
  bool coherent;
};

std::string Name(const ::testing::TestParamInfo<Case>& info) {
  return std::string(info.param.mode == PoolMode::kStrict ? "Strict" : "PoolWide") +
         (info.param.addressing == Addressing::kIdentity ? "Identity" : "Translated") +
         (info.param.coherent ? "Coherent" : "NonCoherent");
}

class DevicePoolSmmuTest : public ::testing::TestWithParam<Case> {
 protected:
  DevicePoolSmmuTest() : rig_(GetParam().coherent) {}
  void SetUp() override {
    rig_.Start();
    ASSERT_FALSE(HasFatalFailure());
    holder_ = std::make_unique<StaticDevicePool<16>>(*rig_.blocks);
    pool_ = &holder_->pool();
    ASSERT_TRUE(
        pool_->Bind(GetParam().mode, rig_.Binding(GetParam().addressing, GetParam().coherent))
            .ok());
  }
  void TearDown() override {
    if (pool_ != nullptr) {
      EXPECT_TRUE(pool_->Unbind().ok());
    }
  }

  Rig rig_;
  std::unique_ptr<StaticDevicePool<16>> holder_;
  DevicePool* pool_ = nullptr;
};

TEST_P(DevicePoolSmmuTest, DeviceBytesLandThroughTheMappedBlocks) {
  Result<DmaRegion> r = pool_->Alloc(3 * kPage, 0);
  ASSERT_TRUE(r.ok());
  if (GetParam().addressing == Addressing::kTranslated) {
    EXPECT_FALSE(rig_.reserved.Overlaps(r->device_addr, r->size));
    EXPECT_NE(r->device_addr, rig_.blocks->PaOf(r->cpu));
  }
  // The device writes a pattern across all three pages, then reads what the CPU wrote.
  std::vector<uint8_t> pattern(3 * kPage - 64);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(i * 13 + 1);
  ASSERT_TRUE(
      rig_.model.DeviceWrite(kSid, r->device_addr + 32, pattern.data(), pattern.size()).ok());
  pool_->SyncForCpu(*r, 32, pattern.size());
  EXPECT_EQ(std::memcmp(static_cast<uint8_t*>(r->cpu) + 32, pattern.data(), pattern.size()), 0);

  std::memset(r->cpu, 0x5a, kPage);
  pool_->SyncForDevice(*r, 0, kPage);
  std::vector<uint8_t> back(kPage);
  ASSERT_TRUE(rig_.model.DeviceRead(kSid, r->device_addr, back.data(), back.size()).ok());
  EXPECT_EQ(back, std::vector<uint8_t>(kPage, 0x5a));
  EXPECT_EQ(rig_.Faults(), 0U);
  ASSERT_TRUE(pool_->Release(*r).ok());
}

TEST_P(DevicePoolSmmuTest, DmaToAFreedBlock) {
  Result<DmaRegion> r = pool_->Alloc(kPage, 0);
  ASSERT_TRUE(r.ok());
  const Iova device_addr = r->device_addr;
  const Paddr pa = rig_.blocks->PaOf(r->cpu);
  const uint32_t first = 0x11111111;
  ASSERT_TRUE(rig_.model.DeviceWrite(kSid, device_addr, &first, 4).ok()) << "warms the IOTLB";
  ASSERT_TRUE(pool_->Release(*r).ok());

  const uint32_t late = 0xdeadbeef;
  const Status s = rig_.model.DeviceWrite(kSid, device_addr + 8, &late, 4);
  uint32_t landed = 0;
  ASSERT_TRUE(rig_.memory.UnitRead(pa + 8, &landed, 4));
  if (GetParam().mode == PoolMode::kStrict) {
    EXPECT_EQ(s, Status::IoError()) << "strict: blocked once Free returned";
    EXPECT_EQ(landed, 0U) << "memory untouched";
    if constexpr (config::kFaultReports) {
      EXPECT_GE(rig_.Faults(), 1U) << "and reported on the device's context";
    }
  } else {
    EXPECT_TRUE(s.ok()) << "pool-wide: a freed block stays reachable (the trade-off)";
    EXPECT_EQ(landed, late);
    EXPECT_EQ(rig_.Faults(), 0U);
  }
}

TEST_P(DevicePoolSmmuTest, MemoryOutsideThePoolIsNeverReachable) {
  Result<DmaRegion> r = pool_->Alloc(kPage, 0);
  ASSERT_TRUE(r.ok());
  // The page right after the pool, at the device address it would have.
  Result<DmaBuffer> canary = rig_.memory.dma().Allocate(kPage, kPage);
  ASSERT_TRUE(canary.ok());
  std::memset(canary->cpu, 0xcc, kPage);
  rig_.memory.Clean(canary->cpu, kPage);
  const Iova beyond = GetParam().mode == PoolMode::kPoolWide
                          ? pool_->device_base() + rig_.blocks->size_bytes()
                          : r->device_addr + kPage;
  const uint32_t v = 0xabababab;
  EXPECT_FALSE(rig_.model.DeviceWrite(kSid, beyond, &v, 4).ok());
  EXPECT_FALSE(rig_.model.DeviceWrite(kSid, canary->pa, &v, 4).ok());
  std::vector<uint8_t> seen(kPage);
  ASSERT_TRUE(rig_.memory.UnitRead(canary->pa, seen.data(), kPage));
  EXPECT_EQ(seen, std::vector<uint8_t>(kPage, 0xcc));
  ASSERT_TRUE(pool_->Release(*r).ok());
}

INSTANTIATE_TEST_SUITE_P(Modes, DevicePoolSmmuTest,
                         ::testing::Values(Case{PoolMode::kStrict, Addressing::kIdentity, true},
                                           Case{PoolMode::kStrict, Addressing::kTranslated, true},
                                           Case{PoolMode::kStrict, Addressing::kTranslated, false},
                                           Case{PoolMode::kPoolWide, Addressing::kIdentity, true},
                                           Case{PoolMode::kPoolWide, Addressing::kTranslated, true},
                                           Case{PoolMode::kPoolWide, Addressing::kIdentity, false}),
                         Name);

TEST(DevicePoolSmmu, PoolWideIsMappedWithTwoMiBBlocks) {
  for (const Addressing addressing : {Addressing::kIdentity, Addressing::kTranslated}) {
    Rig rig(true);
    rig.Start();
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    StaticDevicePool<4> pool(*rig.blocks);
    ASSERT_TRUE(pool->Bind(PoolMode::kPoolWide, rig.Binding(addressing, true)).ok());
    ASSERT_NE(rig.spy->last(), nullptr);
    const pgtable::PageTable& table = rig.spy->last()->table();
    for (uint64_t off = 0; off < rig.blocks->size_bytes(); off += k2MiB) {
      Result<pgtable::Mapping> m = table.Lookup(pool->device_base() + off + 0x1234);
      ASSERT_TRUE(m.ok());
      EXPECT_EQ(m->size, k2MiB) << "a level 2 block descriptor";
      EXPECT_EQ(m->level, 2U);
      EXPECT_EQ(m->iova, pool->device_base() + off);
      EXPECT_EQ(m->pa, rig.blocks->buffer_pa() + off);
      EXPECT_EQ(m->descriptor & 0x3, 0x1U) << "descriptor type: block (Arm ARM D8.3)";
    }
    // A strict pool over the same kind of memory uses page descriptors.
    ASSERT_TRUE(pool->Unbind().ok());
    ASSERT_TRUE(pool->Bind(PoolMode::kStrict, rig.Binding(addressing, true)).ok());
    Result<DmaRegion> r = pool->Alloc(kPage, 0);
    ASSERT_TRUE(r.ok());
    Result<pgtable::Mapping> leaf = table.Lookup(r->device_addr);
    ASSERT_TRUE(leaf.ok());
    EXPECT_EQ(leaf->size, kPage);
    EXPECT_EQ(leaf->level, 3U);
    ASSERT_TRUE(pool->Release(*r).ok());
    ASSERT_TRUE(pool->Unbind().ok());
  }
}

TEST(DevicePoolSmmu, NonCoherentDeviceSeesOnlyWhatWasCleaned) {
  Rig rig(false);
  rig.Start();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  StaticDevicePool<4> pool(*rig.blocks);
  ASSERT_TRUE(pool->Bind(PoolMode::kStrict, rig.Binding(Addressing::kTranslated, false)).ok());
  Result<DmaRegion> r = pool->Alloc(2 * kPage, 0);
  ASSERT_TRUE(r.ok());
  const Paddr pa = rig.blocks->PaOf(r->cpu);
  ASSERT_EQ(rig.cleans.size(), 1U);
  EXPECT_EQ(rig.cleans[0], (Rig::Range{pa, 2 * kPage})) << "the zeroed blocks";
  // A CPU write the device cannot see until SyncForDevice cleans it.
  std::memset(r->cpu, 0x77, 64);
  uint8_t seen[64];
  ASSERT_TRUE(rig.model.DeviceRead(kSid, r->device_addr, seen, 64).ok());
  EXPECT_EQ(seen[0], 0) << "still in the CPU's cache";
  pool->SyncForDevice(*r, 0, 64);
  EXPECT_EQ(rig.cleans.back(), (Rig::Range{pa, 64}));
  ASSERT_TRUE(rig.model.DeviceRead(kSid, r->device_addr, seen, 64).ok());
  EXPECT_EQ(seen[0], 0x77);
  // A device write the CPU sees only after SyncForCpu invalidates.
  const uint32_t v = 0x12345678;
  ASSERT_TRUE(rig.model.DeviceWrite(kSid, r->device_addr + kPage, &v, 4).ok());
  uint32_t cpu_view = 0;
  std::memcpy(&cpu_view, static_cast<uint8_t*>(r->cpu) + kPage, 4);
  EXPECT_EQ(cpu_view, 0U);
  pool->SyncForCpu(*r, kPage, kPage);
  EXPECT_EQ(rig.invalidates.back(), (Rig::Range{pa + kPage, kPage}));
  std::memcpy(&cpu_view, static_cast<uint8_t*>(r->cpu) + kPage, 4);
  EXPECT_EQ(cpu_view, v);
  ASSERT_TRUE(pool->Release(*r).ok());
  ASSERT_TRUE(pool->Unbind().ok());
}

// The DMA-driver hook over the SMMU: a read-only to-device mapping refuses device writes, a
// from-device mapping's data reaches the CPU through the unmap's invalidate, and after
// UnmapForDevice the device is blocked.
TEST(DevicePoolSmmu, MapperDirectionsAndStrictUnmap) {
  Rig rig(false);
  rig.Start();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  StaticContextDmaMapper<4> mapper(rig.Binding(Addressing::kTranslated, false));
  Result<DmaBuffer> src = rig.memory.dma().Allocate(kPage, kPage);
  Result<DmaBuffer> dst = rig.memory.dma().Allocate(kPage, kPage);
  ASSERT_TRUE(src.ok() && dst.ok());
  std::memset(src->cpu, 0x42, kPage);  // dirty in the CPU's cache
  Result<DmaMapping> to = mapper.MapForDevice(src->pa, kPage, DmaDirection::kToDevice);
  Result<DmaMapping> from = mapper.MapForDevice(dst->pa, kPage, DmaDirection::kFromDevice);
  ASSERT_TRUE(to.ok() && from.ok());
  // The "engine" copies src to dst.
  std::vector<uint8_t> buf(kPage);
  ASSERT_TRUE(rig.model.DeviceRead(kSid, to->device_addr, buf.data(), kPage).ok());
  EXPECT_EQ(buf, std::vector<uint8_t>(kPage, 0x42)) << "MapForDevice cleaned it";
  ASSERT_TRUE(rig.model.DeviceWrite(kSid, from->device_addr, buf.data(), kPage).ok());
  EXPECT_EQ(rig.model.DeviceWrite(kSid, to->device_addr, buf.data(), 4), Status::IoError())
      << "to-device is read-only for the device";
  ASSERT_TRUE(mapper.UnmapForDevice(*from).ok());
  EXPECT_EQ(static_cast<uint8_t*>(dst->cpu)[kPage - 1], 0x42) << "invalidated at unmap";
  EXPECT_EQ(rig.model.DeviceWrite(kSid, from->device_addr, buf.data(), 4), Status::IoError())
      << "blocked after UnmapForDevice";
  ASSERT_TRUE(mapper.UnmapForDevice(*to).ok());
  EXPECT_EQ(rig.model.DeviceRead(kSid, to->device_addr, buf.data(), 4), Status::IoError());
}

// Threads share one strict pool (and so one context): every allocation is the caller's alone
// while it lives, reachable by the device, and unreachable once freed.
TEST(DevicePoolSmmu, ThreadsShareAStrictPool) {
  Rig rig(true);
  rig.Start();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  StaticDevicePool<32> pool(*rig.blocks);
  ASSERT_TRUE(pool->Bind(PoolMode::kStrict, rig.Binding(Addressing::kTranslated, true)).ok());
  // A live allocation keeps the leaf table under the IOVA window's first 2 MiB (where every
  // allocation of the run lands, first fit) for the whole run, so threads' maps only write leaf
  // descriptors while other threads' DMA walks the same tables. (Linking a fresh table is
  // ordered by a release fence, which TSan does not model.)
  Result<DmaRegion> anchor = pool->Alloc(kPage, 0);
  ASSERT_TRUE(anchor.ok());
  constexpr int kThreads = 4;
  constexpr int kRounds = 100;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        Result<DmaRegion> r = pool->Alloc(static_cast<size_t>(1 + (i % 3)) * kPage, 0);
        if (!r.ok()) {
          ++failures;
          continue;
        }
        const uint32_t v = static_cast<uint32_t>(t << 16 | i);
        if (!rig.model.DeviceWrite(kSid, r->device_addr + r->size - 4, &v, 4).ok()) ++failures;
        uint32_t seen = 0;
        std::memcpy(&seen, static_cast<uint8_t*>(r->cpu) + r->size - 4, 4);
        if (seen != v) ++failures;
        if (!pool->Release(*r).ok()) ++failures;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(pool->Release(*anchor).ok());
  EXPECT_EQ(pool->live_allocations(), 0U);
  EXPECT_EQ(rig.blocks->free_blocks(), rig.blocks->block_count());
  EXPECT_EQ(rig.iova.allocated_ranges(), 0U);
  ASSERT_TRUE(pool->Unbind().ok());
}

}  // namespace
}  // namespace deviso::dma
