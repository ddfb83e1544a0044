// Sub-page buffers through bounce pages (dma/bounce.h), against the real SMMUv3 driver on its
// host model: the device reaches the buffer's bytes (and zeros) through the run of bounce pages
// and nothing beside it (its accesses beyond the run, and to the buffer's own page, fault in
// the model), the bytes arrive intact both ways, a partial device write leaves the rest of the
// buffer as it was, and a failed unmap copies nothing back and keeps the run (CTest label
// `pool`).

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "dma/block_pool.h"
#include "dma/bounce.h"
#include "dma/dma_mapper.h"
#include "smmuv3/smmuv3.h"
#include "smmuv3/testing/registry_rig.h"

namespace deviso::dma {
namespace {

using drivers::DmaDirection;
using drivers::DmaMapping;

constexpr uint64_t kPage = 4096;
constexpr uint32_t kSid = 0x10;
constexpr size_t kBouncePages = 4;
constexpr uint8_t kCanary = 0xa5;

class Rig : public smmuv3::testing::RegistryRig {
 public:
  explicit Rig(bool coherent) : RegistryRig(RigOptions(coherent)), coherent_(coherent) {}

  static RegistryRig::Options RigOptions(bool coherent) {
    RegistryRig::Options o;
    o.memory.coherent = coherent;
    o.memory.dma_bytes = 4u << 20;
    o.smmu.name = "smmuv3@bounce";
    o.smmu.dma_coherent = coherent;
    o.smmu.timeout_ns = 20'000'000;  // proves no hang only: a stalled sync never completes
    return o;
  }

  // Enables the SMMU, gives the device a context, carves the bounce pool and a page of
  // caller memory (all canaries) out of simulated RAM.
  void Start() {
    ASSERT_TRUE(RegistryRig::Start(true).ok());
    ASSERT_TRUE(registry->RegisterUnit(*smmu).ok());
    ASSERT_TRUE(registry->BindDevice(&dev, *smmu, {&kSid, 1}).ok());
    Result<Context> made = registry->AllocContext(&dev, kSid);
    ASSERT_TRUE(made.ok());
    ctx = *made;
    Result<DmaBuffer> pool_mem = memory.dma().Allocate(kBouncePages * kPage, kPage);
    ASSERT_TRUE(pool_mem.ok());
    pool = std::make_unique<BlockPool>(pool_mem->cpu, pool_mem->pa, kPage, kBouncePages,
                                       bitmap.data());
    ASSERT_TRUE(pool->valid());
    Result<DmaBuffer> caller_mem = memory.dma().Allocate(2 * kPage, kPage);
    ASSERT_TRUE(caller_mem.ok());
    caller = caller_mem->pa;
    std::memset(Cpu(caller), kCanary, 2 * kPage);
    memory.Clean(Cpu(caller), 2 * kPage);
  }

  DeviceBinding Binding() {
    DeviceBinding b;
    b.context = ctx;
    b.addressing = Addressing::kTranslated;
    b.iova = &iova;
    b.coherent = coherent_;
    b.cache.user = this;
    b.cache.clean = [](void* user, Paddr pa, size_t size) {
      Rig& rig = *static_cast<Rig*>(user);
      ++rig.cleans;
      rig.memory.Clean(rig.memory.Cpu(pa), size);
    };
    b.cache.invalidate = [](void* user, Paddr pa, size_t size) {
      Rig& rig = *static_cast<Rig*>(user);
      ++rig.invalidates;
      rig.memory.Invalidate(rig.memory.Cpu(pa), size);
    };
    return b;
  }
  BounceConfig Bounce(bool always = false) {
    BounceConfig c;
    c.pool = pool.get();
    c.phys_to_cpu = [](void* user, Paddr pa) -> void* {
      return static_cast<Rig*>(user)->memory.Cpu(pa);
    };
    c.user = this;
    c.always = always;
    return c;
  }
  uint8_t* Cpu(Paddr pa) { return static_cast<uint8_t*>(memory.Cpu(pa)); }
  bool DeviceReads(uint64_t addr, void* out, size_t n) {
    return model.DeviceRead(kSid, addr, out, n).ok();
  }
  bool DeviceWrites(uint64_t addr, const void* in, size_t n) {
    return model.DeviceWrite(kSid, addr, in, n).ok();
  }

  device dev{"nic"};
  Context ctx;
  std::array<uint64_t, BitmapWords(kBouncePages)> bitmap{};
  std::unique_ptr<BlockPool> pool;
  StaticIovaAllocator<16> iova{0x0800'0000, 0x100'0000, kPage, nullptr};
  Paddr caller = 0;  // two pages of canaries; buffers are carved from the first
  unsigned cleans = 0;
  unsigned invalidates = 0;

 private:
  bool coherent_;
};

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + 7 * i);
  return v;
}

// Every byte of the caller's two pages outside [off, off + n) is still the canary.
void ExpectCanariesBeside(Rig& rig, size_t off, size_t n) {
  rig.memory.Invalidate(rig.Cpu(rig.caller), 2 * kPage);
  const uint8_t* p = rig.Cpu(rig.caller);
  for (size_t i = 0; i < 2 * kPage; ++i) {
    if (i >= off && i < off + n) continue;
    ASSERT_EQ(p[i], kCanary) << "byte " << i << " beside the buffer changed";
  }
}

TEST(BounceSmmu, ADeviceReadsTheBufferAndZerosButNothingBesideIt) {
  Rig rig(true);
  rig.Start();
  StaticContextDmaMapper<4> mapper(rig.Binding(), rig.Bounce());
  constexpr size_t kOff = 0x40;
  constexpr size_t kLen = 100;
  const std::vector<uint8_t> data = Pattern(kLen, 1);
  std::memcpy(rig.Cpu(rig.caller + kOff), data.data(), kLen);

  Result<DmaMapping> m = mapper.MapForDevice(rig.caller + kOff, kLen, DmaDirection::kToDevice);
  ASSERT_TRUE(m.ok()) << m.status().str();
  EXPECT_EQ(m->pa, rig.caller + kOff);
  EXPECT_EQ(m->size, kLen);
  EXPECT_EQ(m->device_addr % kPage, 0U);
  EXPECT_EQ(mapper.counters().bounces, 1U);
  EXPECT_EQ(rig.pool->free_blocks(), kBouncePages - 1);

  std::vector<uint8_t> seen(kLen);
  ASSERT_TRUE(rig.DeviceReads(m->device_addr, seen.data(), kLen));
  EXPECT_EQ(seen, data);
  // The rest of the bounce page is zero, not the canaries beside the buffer.
  std::vector<uint8_t> rest(kPage - kLen);
  ASSERT_TRUE(rig.DeviceReads(m->device_addr + kLen, rest.data(), rest.size()));
  EXPECT_EQ(rest, std::vector<uint8_t>(kPage - kLen, 0));
  // Nothing else is reachable: not the page after the run, not the one before, not the
  // buffer's own page at any device address the allocator could have used (identity
  // included), and a read-only mapping takes no writes.
  uint8_t b = 0;
  EXPECT_FALSE(rig.DeviceReads(m->device_addr + kPage, &b, 1));
  EXPECT_FALSE(rig.DeviceReads(m->device_addr - 1, &b, 1));
  EXPECT_FALSE(rig.DeviceReads(rig.caller, &b, 1));
  EXPECT_FALSE(rig.DeviceWrites(m->device_addr, &b, 1));
  EXPECT_FALSE(rig.ctx.IovaToPhys(rig.caller).ok());

  ASSERT_TRUE(mapper.UnmapForDevice(*m).ok());
  EXPECT_FALSE(rig.DeviceReads(m->device_addr, &b, 1));  // strict: gone
  EXPECT_EQ(rig.pool->free_blocks(), kBouncePages);
  ExpectCanariesBeside(rig, kOff, kLen);
}

TEST(BounceSmmu, WhatTheDeviceWritesLandsInTheBufferOnlyAfterTheUnmap) {
  Rig rig(true);
  rig.Start();
  StaticContextDmaMapper<4> mapper(rig.Binding(), rig.Bounce());
  constexpr size_t kOff = 0xf00;  // crosses into the second page: 0xf00 + 300 > 0x1000
  constexpr size_t kLen = 300;
  Result<DmaMapping> m = mapper.MapForDevice(rig.caller + kOff, kLen, DmaDirection::kFromDevice);
  ASSERT_TRUE(m.ok()) << m.status().str();
  const std::vector<uint8_t> data = Pattern(kLen, 9);
  ASSERT_TRUE(rig.DeviceWrites(m->device_addr, data.data(), kLen));
  // Past the buffer, still in the run: lands in the bounce page, never copied back.
  const std::vector<uint8_t> junk(64, 0xee);
  ASSERT_TRUE(rig.DeviceWrites(m->device_addr + kLen, junk.data(), junk.size()));
  uint8_t b = 0x11;
  EXPECT_FALSE(rig.DeviceWrites(m->device_addr + kPage, &b, 1));
  EXPECT_FALSE(rig.DeviceWrites(rig.caller + kOff, &b, 1));
  // Not yet in the buffer: the device wrote the run.
  EXPECT_EQ(rig.Cpu(rig.caller + kOff)[0], kCanary);

  ASSERT_TRUE(mapper.UnmapForDevice(*m).ok());
  EXPECT_EQ(std::memcmp(rig.Cpu(rig.caller + kOff), data.data(), kLen), 0);
  ExpectCanariesBeside(rig, kOff, kLen);
}

// The buffer is copied in for every direction: a device that writes only part of a
// kFromDevice buffer leaves the rest as it was (not zeros).
TEST(BounceSmmu, APartialDeviceWriteLeavesTheRestOfTheBuffer) {
  Rig rig(true);
  rig.Start();
  StaticContextDmaMapper<4> mapper(rig.Binding(), rig.Bounce());
  constexpr size_t kOff = 0x100;
  constexpr size_t kLen = 100;
  const std::vector<uint8_t> before = Pattern(kLen, 3);
  std::memcpy(rig.Cpu(rig.caller + kOff), before.data(), kLen);
  Result<DmaMapping> m = mapper.MapForDevice(rig.caller + kOff, kLen, DmaDirection::kFromDevice);
  ASSERT_TRUE(m.ok());
  const uint8_t ten[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  ASSERT_TRUE(rig.DeviceWrites(m->device_addr, ten, sizeof ten));
  ASSERT_TRUE(mapper.UnmapForDevice(*m).ok());
  EXPECT_EQ(std::memcmp(rig.Cpu(rig.caller + kOff), ten, sizeof ten), 0);
  EXPECT_EQ(std::memcmp(rig.Cpu(rig.caller + kOff + 10), before.data() + 10, kLen - 10), 0);
  ExpectCanariesBeside(rig, kOff, kLen);
}

// Two small buffers in one page: each gets its own bounce page, neither sees the other.
TEST(BounceSmmu, TwoBuffersInOnePageGetTwoRuns) {
  Rig rig(true);
  rig.Start();
  StaticContextDmaMapper<4> mapper(rig.Binding(), rig.Bounce());
  const std::vector<uint8_t> a = Pattern(64, 20);
  const std::vector<uint8_t> c = Pattern(64, 40);
  std::memcpy(rig.Cpu(rig.caller), a.data(), 64);
  std::memcpy(rig.Cpu(rig.caller + 64), c.data(), 64);
  Result<DmaMapping> ma = mapper.MapForDevice(rig.caller, 64, DmaDirection::kBidirectional);
  Result<DmaMapping> mc = mapper.MapForDevice(rig.caller + 64, 64, DmaDirection::kToDevice);
  ASSERT_TRUE(ma.ok() && mc.ok());
  EXPECT_NE(ma->device_addr, mc->device_addr);
  std::vector<uint8_t> seen(128);
  ASSERT_TRUE(rig.DeviceReads(ma->device_addr, seen.data(), seen.size()));
  EXPECT_TRUE(std::equal(a.begin(), a.end(), seen.begin()));
  EXPECT_EQ(std::vector<uint8_t>(seen.begin() + 64, seen.end()), std::vector<uint8_t>(64, 0));
  // Overlapping bytes of a live buffer are refused, as for whole pages.
  EXPECT_EQ(mapper.MapForDevice(rig.caller + 32, 64, DmaDirection::kToDevice).status(),
            Status::AlreadyExists());
  ASSERT_TRUE(mapper.UnmapForDevice(*ma).ok());
  ASSERT_TRUE(mapper.UnmapForDevice(*mc).ok());
  EXPECT_EQ(std::memcmp(rig.Cpu(rig.caller), a.data(), 64), 0);
  EXPECT_EQ(std::memcmp(rig.Cpu(rig.caller + 64), c.data(), 64), 0);
}

TEST(BounceSmmu, SyncsInTheMiddleOfALiveMappingCopyEachWay) {
  Rig rig(true);
  rig.Start();
  StaticContextDmaMapper<4> mapper(rig.Binding(), rig.Bounce());
  constexpr size_t kLen = 48;
  Result<DmaMapping> m = mapper.MapForDevice(rig.caller + 8, kLen, DmaDirection::kBidirectional);
  ASSERT_TRUE(m.ok());
  // The CPU changes the buffer: the device sees it only after SyncForDevice.
  const std::vector<uint8_t> v1 = Pattern(kLen, 50);
  std::memcpy(rig.Cpu(rig.caller + 8), v1.data(), kLen);
  std::vector<uint8_t> seen(kLen);
  ASSERT_TRUE(rig.DeviceReads(m->device_addr, seen.data(), kLen));
  EXPECT_EQ(seen, std::vector<uint8_t>(kLen, kCanary));
  ASSERT_TRUE(mapper.SyncForDevice(*m).ok());
  ASSERT_TRUE(rig.DeviceReads(m->device_addr, seen.data(), kLen));
  EXPECT_EQ(seen, v1);
  // The device writes: the CPU sees it after SyncForCpu, the mapping stays.
  const std::vector<uint8_t> v2 = Pattern(kLen, 90);
  ASSERT_TRUE(rig.DeviceWrites(m->device_addr, v2.data(), kLen));
  ASSERT_TRUE(mapper.SyncForCpu(*m).ok());
  EXPECT_EQ(std::memcmp(rig.Cpu(rig.caller + 8), v2.data(), kLen), 0);
  EXPECT_TRUE(rig.DeviceReads(m->device_addr, seen.data(), 1));
  DmaMapping other = *m;
  other.size += 1;
  EXPECT_EQ(mapper.SyncForCpu(other), Status::NotFound());
  EXPECT_EQ(mapper.SyncForDevice(other), Status::NotFound());
  ASSERT_TRUE(mapper.UnmapForDevice(*m).ok());
  ExpectCanariesBeside(rig, 8, kLen);
}

TEST(BounceSmmu, ErrorsChangeNothing) {
  Rig rig(true);
  rig.Start();
  // Without a bounce pool a sub-page buffer is refused, as before.
  StaticContextDmaMapper<8> plain(rig.Binding());
  EXPECT_EQ(plain.MapForDevice(rig.caller + 8, 100, DmaDirection::kToDevice).status(),
            Status::InvalidArgument());
  // A pool of the wrong block size, or no phys_to_cpu: -EINVAL.
  std::array<uint64_t, 1> bits{};
  Result<DmaBuffer> big = rig.memory.dma().Allocate(2 * 8192, 8192);
  ASSERT_TRUE(big.ok());
  BlockPool pool8k(big->cpu, big->pa, 8192, 2, bits.data());
  BounceConfig wrong = rig.Bounce();
  wrong.pool = &pool8k;
  StaticContextDmaMapper<4> bad_pool(rig.Binding(), wrong);
  EXPECT_EQ(bad_pool.MapForDevice(rig.caller + 8, 100, DmaDirection::kToDevice).status(),
            Status::InvalidArgument());
  BounceConfig no_cpu = rig.Bounce();
  no_cpu.phys_to_cpu = nullptr;
  StaticContextDmaMapper<4> bad_cpu(rig.Binding(), no_cpu);
  EXPECT_EQ(bad_cpu.MapForDevice(rig.caller + 8, 100, DmaDirection::kToDevice).status(),
            Status::InvalidArgument());

  // The pool runs dry: -ENOMEM, nothing mapped, nothing held.
  StaticContextDmaMapper<8> mapper(rig.Binding(), rig.Bounce());
  std::vector<DmaMapping> live;
  for (size_t i = 0; i < kBouncePages; ++i) {
    Result<DmaMapping> m = mapper.MapForDevice(rig.caller + 16 * i, 16, DmaDirection::kToDevice);
    ASSERT_TRUE(m.ok()) << i;
    live.push_back(*m);
  }
  EXPECT_EQ(mapper.MapForDevice(rig.caller + 0x800, 16, DmaDirection::kToDevice).status(),
            Status::NoMemory());
  EXPECT_EQ(mapper.live_mappings(), kBouncePages);
  for (const DmaMapping& m : live) ASSERT_TRUE(mapper.UnmapForDevice(m).ok());
  EXPECT_EQ(rig.pool->free_blocks(), kBouncePages);

  // A buffer of several pages, not aligned: a run of adjacent pages.
  const std::vector<uint8_t> data = Pattern(5000, 7);
  std::memcpy(rig.Cpu(rig.caller + 0x10), data.data(), data.size());
  Result<DmaMapping> m = mapper.MapForDevice(rig.caller + 0x10, 5000, DmaDirection::kToDevice);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(rig.pool->free_blocks(), kBouncePages - 2);
  std::vector<uint8_t> seen(5000);
  ASSERT_TRUE(rig.DeviceReads(m->device_addr, seen.data(), seen.size()));
  EXPECT_EQ(seen, data);
  uint8_t b = 0;
  EXPECT_FALSE(rig.DeviceReads(m->device_addr + 2 * kPage, &b, 1));
  ASSERT_TRUE(mapper.UnmapForDevice(*m).ok());
}

// An unmap the SMMU does not confirm: the device may still write the run, so nothing is copied
// back, the run stays held, and the retry completes the transfer.
TEST(BounceSmmu, AFailedUnmapCopiesNothingBackAndKeepsTheRun) {
  Rig rig(true);
  rig.Start();
  StaticContextDmaMapper<4> mapper(rig.Binding(), rig.Bounce());
  Result<DmaMapping> m = mapper.MapForDevice(rig.caller + 4, 20, DmaDirection::kFromDevice);
  ASSERT_TRUE(m.ok());
  const std::vector<uint8_t> data = Pattern(20, 33);
  ASSERT_TRUE(rig.DeviceWrites(m->device_addr, data.data(), data.size()));
  rig.model.SetCmdSyncStall(true);
  EXPECT_EQ(mapper.UnmapForDevice(*m), Status::TimedOut());
  rig.model.SetCmdSyncStall(false);
  EXPECT_EQ(rig.Cpu(rig.caller + 4)[0], kCanary);
  EXPECT_EQ(rig.pool->free_blocks(), kBouncePages - 1);
  EXPECT_EQ(mapper.live_mappings(), 1U);
  ASSERT_TRUE(rig.smmu->Recover().ok());
  ASSERT_TRUE(mapper.UnmapForDevice(*m).ok());
  EXPECT_EQ(std::memcmp(rig.Cpu(rig.caller + 4), data.data(), data.size()), 0);
  EXPECT_EQ(rig.pool->free_blocks(), kBouncePages);
}

// Opt-in for every buffer: a page-aligned buffer is bounced too, its own page never mapped.
TEST(BounceSmmu, AlwaysBouncesAlignedBuffersToo) {
  Rig rig(true);
  rig.Start();
  StaticContextDmaMapper<4> mapper(rig.Binding(), rig.Bounce(/*always=*/true));
  Result<DmaMapping> m = mapper.MapForDevice(rig.caller, kPage, DmaDirection::kToDevice);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(mapper.counters().bounces, 1U);
  EXPECT_EQ(rig.ctx.IovaToPhys(m->device_addr).value_or(0), rig.pool->buffer_pa());
  ASSERT_TRUE(mapper.UnmapForDevice(*m).ok());
}

// A device that does not snoop: the run is cleaned before the device reads it and invalidated
// before it is copied back, so the bytes arrive both ways.
TEST(BounceSmmu, NonCoherentDeviceSeesTheBytesThroughTheCacheHooks) {
  Rig rig(false);
  rig.Start();
  StaticContextDmaMapper<4> mapper(rig.Binding(), rig.Bounce());
  const std::vector<uint8_t> out = Pattern(100, 60);
  std::memcpy(rig.Cpu(rig.caller + 0x200), out.data(), out.size());
  Result<DmaMapping> m =
      mapper.MapForDevice(rig.caller + 0x200, out.size(), DmaDirection::kBidirectional);
  ASSERT_TRUE(m.ok());
  EXPECT_GE(rig.cleans, 1U);
  std::vector<uint8_t> seen(out.size());
  ASSERT_TRUE(rig.DeviceReads(m->device_addr, seen.data(), seen.size()));
  EXPECT_EQ(seen, out);
  const std::vector<uint8_t> back = Pattern(100, 200);
  ASSERT_TRUE(rig.DeviceWrites(m->device_addr, back.data(), back.size()));
  ASSERT_TRUE(mapper.UnmapForDevice(*m).ok());
  EXPECT_GE(rig.invalidates, 1U);
  EXPECT_EQ(std::memcmp(rig.Cpu(rig.caller + 0x200), back.data(), back.size()), 0);
}

}  // namespace
}  // namespace deviso::dma
