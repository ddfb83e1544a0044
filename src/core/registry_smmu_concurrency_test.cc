// Many threads through the registry over the real SMMUv3 driver and the host model (CTest labels
// `core`, `pool` and `concurrency`; clean under host-tsan): N threads x M map/unmap operations
// on separate contexts (with contexts created and freed meanwhile) and on one shared domain
// (Registry::CreateDomain + Attach), each access checked where it lands; and IovaToPhys
// lookups racing with unmaps, which must see the mapping or -ENOENT, never anything else.
// (src/smmuv3/smmu_test.cc covers device DMA racing a driver-level unmap.)

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "deviso/config.h"
#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "smmuv3/smmuv3.h"
#include "smmuv3/testing/registry_rig.h"

namespace deviso {
namespace {

constexpr uint64_t kPage = 4096;
constexpr int kThreads = 4;
#ifdef DEVISO_UNDER_SANITIZER
constexpr int kIterations = 150;
#else
constexpr int kIterations = 1000;
#endif
// 8-bit StreamIDs: valid with linear stream tables too (host-minimal).
constexpr uint32_t kSidBase = 0x20;

smmuv3::testing::RegistryRig::Options RigOptions() {
  smmuv3::testing::RegistryRig::Options o;
  o.smmu.name = "smmuv3@threads";
  o.smmu.dma_coherent = true;
  o.smmu.timeout_ns = 500'000'000;  // generous: TSan and a shared machine
  o.smmu.eventq_log2 = 12;
  return o;
}

class Rig : public smmuv3::testing::RegistryRig {
 public:
  Rig() : RegistryRig(RigOptions()) { devices.resize(kThreads); }

  void Start() {
    ASSERT_TRUE(RegistryRig::Start(true).ok());
    ASSERT_TRUE(registry->RegisterUnit(*smmu).ok());
    for (int t = 0; t < kThreads; ++t) {
      const uint32_t sid = Sid(t);
      ASSERT_TRUE(registry->BindDevice(&devices[t], *smmu, {&sid, 1}).ok());
    }
  }
  static uint32_t Sid(int t) { return kSidBase + static_cast<uint32_t>(t); }
  DmaBuffer Buffer(size_t pages) {
    Result<DmaBuffer> b = memory.dma().Allocate(pages * kPage, kPage);
    EXPECT_TRUE(b.ok());
    return b.value_or(DmaBuffer{});
  }
  uint32_t Word(Paddr pa) {
    uint32_t v = 0;
    EXPECT_TRUE(memory.UnitRead(pa, &v, 4));
    return v;
  }

  std::vector<device> devices;
};

// One map / DMA / unmap / DMA-must-fault round on `ctx` for stream `sid`. Returns the number of
// things that went wrong.
int Round(Rig& rig, const Context& ctx, uint32_t sid, Iova iova, Paddr pa, uint32_t value) {
  int bad = 0;
  if (!ctx.Map(iova, pa, 2 * kPage, kPermReadWrite).ok()) return 1;
  if (!rig.model.DeviceWrite(sid, iova + kPage + 4, &value, 4).ok()) ++bad;
  if (rig.Word(pa + kPage + 4) != value) ++bad;
  if (ctx.IovaToPhys(iova + kPage).value_or(0) != pa + kPage) ++bad;
  if (!ctx.Unmap(iova, 2 * kPage).ok()) ++bad;
  const uint32_t late = ~value;
  if (rig.model.DeviceWrite(sid, iova + 8, &late, 4).ok()) ++bad;  // strict: must fault
  if (rig.Word(pa + 8) == late) ++bad;
  return bad;
}

TEST(RegistrySmmuConcurrency, SeparateContextsWhileContextsComeAndGo) {
  Rig rig;
  rig.Start();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  std::vector<DmaBuffer> buffers;
  buffers.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) buffers.push_back(rig.Buffer(2));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const device* dev = &rig.devices[t];
      const uint32_t sid = Rig::Sid(t);
      for (int i = 0; i < kIterations; ++i) {
        // Every 50 rounds the context is freed and a new one made, so control operations
        // (stream table, CD and ASID changes) run alongside other threads' maps.
        Result<Context> ctx = rig.registry->FindContext(dev, sid);
        if (!ctx.ok()) ctx = rig.registry->AllocContext(dev, sid);
        if (!ctx.ok()) {
          ++failures;
          return;
        }
        const Iova iova = 0x100'0000 + static_cast<Iova>(i % 16) * 4 * kPage;
        failures += Round(rig, *ctx, sid, iova, buffers[t].pa, static_cast<uint32_t>(t << 16 | i));
        if (i % 50 == 49 && !rig.registry->FreeContext(dev, sid).ok()) ++failures;
      }
      if (rig.registry->FindContext(dev, sid).ok() && !rig.registry->FreeContext(dev, sid).ok()) {
        ++failures;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  // Every stream is blocked again.
  for (int t = 0; t < kThreads; ++t) {
    const uint32_t v = 1;
    EXPECT_FALSE(rig.model.DeviceWrite(Rig::Sid(t), 0x100'0000, &v, 4).ok());
  }
}

TEST(RegistrySmmuConcurrency, SharedDomainManyThreads) {
  Rig rig;
  rig.Start();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  Result<Context> shared = rig.registry->CreateDomain(*rig.smmu);
  ASSERT_TRUE(shared.ok());
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_TRUE(rig.registry->Attach(*shared, &rig.devices[t], Rig::Sid(t)).ok());
  }
  std::vector<DmaBuffer> buffers;
  buffers.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) buffers.push_back(rig.Buffer(2));
  // Each thread owns a disjoint 1 MiB slot of the one domain. An anchor page in every slot, and
  // the common page every stream reaches, are mapped before the threads start, so the tables
  // they need exist and never empty out: during the run a map writes leaf descriptors only.
  // (A map that links a fresh table orders its zeroing before the link with a release fence,
  // which TSan does not model; a device thread walking that domain at the same instant would be
  // a false report. The per-context case above covers fresh tables, one walker per domain.)
  const DmaBuffer common = rig.Buffer(1);
  ASSERT_TRUE(shared->Map(0x100'0000, common.pa, kPage, kPermReadWrite).ok());
  auto slot = [](int t) { return 0x200'0000 + static_cast<Iova>(t) * 0x10'0000; };
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_TRUE(shared->Map(slot(t) + 0x8'0000, common.pa, kPage, kPermRead).ok());
  }
  std::atomic<int> failures{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIterations; ++i) {
        const Iova iova = slot(t) + static_cast<Iova>(i % 16) * 4 * kPage;
        failures += Round(rig, *shared, Rig::Sid(t), iova, buffers[t].pa,
                          static_cast<uint32_t>(t << 16 | i));
      }
    });
  }
  // Meanwhile, every stream of the shared domain reaches the common page.
  std::thread device([&] {
    uint32_t i = 0;
    while (!stop.load(std::memory_order_acquire)) {
      const int t = static_cast<int>(i % kThreads);
      const uint32_t v = i++;
      if (!rig.model.DeviceWrite(Rig::Sid(t), 0x100'0000 + 4 * static_cast<Iova>(t), &v, 4).ok()) {
        ++failures;
      }
    }
  });
  for (std::thread& th : threads) th.join();
  stop.store(true, std::memory_order_release);
  device.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(shared->Unmap(0x100'0000, kPage).ok());
  for (int t = 0; t < kThreads; ++t) ASSERT_TRUE(shared->Unmap(slot(t) + 0x8'0000, kPage).ok());
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(rig.registry->Detach(*shared, &rig.devices[t], Rig::Sid(t)).ok());
  }
  EXPECT_TRUE(rig.registry->DestroyDomain(*shared).ok());
  EXPECT_EQ(shared->IovaToPhys(0x200'0000).status(), Status::NotFound()) << "stale handle";
}

TEST(RegistrySmmuConcurrency, LookupsRacingUnmapsSeeTheMappingOrNothing) {
  Rig rig;
  rig.Start();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  Result<Context> ctx = rig.registry->AllocContext(&rig.devices[0], Rig::Sid(0));
  ASSERT_TRUE(ctx.ok());
  const DmaBuffer a = rig.Buffer(4);
  const DmaBuffer b = rig.Buffer(4);
  constexpr Iova kIova = 0x300'0000;
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  std::vector<std::thread> lookers;
  lookers.reserve(kThreads - 1);
  for (int t = 0; t < kThreads - 1; ++t) {
    lookers.emplace_back([&, t] {
      uint64_t i = 0;
      while (!stop.load(std::memory_order_acquire)) {
        const uint64_t offset = ((i++ + static_cast<uint64_t>(t)) % 4) * kPage + 24;
        const Result<Paddr> pa = ctx->IovaToPhys(kIova + offset);
        if (pa.ok()) {
          // Mapped to a or to b (the mapper alternates), at the right offset.
          if (*pa != a.pa + offset && *pa != b.pa + offset) ++wrong;
          ++hits;
        } else {
          if (pa.status() != Status::NotFound()) ++wrong;
          ++misses;
        }
      }
    });
  }
  int failures = 0;
  for (int i = 0; i < 4 * kIterations; ++i) {
    const DmaBuffer& target = i % 2 == 0 ? a : b;
    failures += ctx->Map(kIova, target.pa, 4 * kPage, kPermReadWrite).ok() ? 0 : 1;
    // Unmap in two halves so lookups also see a half-unmapped range.
    failures += ctx->Unmap(kIova + 2 * kPage, 2 * kPage).ok() ? 0 : 1;
    failures += ctx->Unmap(kIova, 2 * kPage).ok() ? 0 : 1;
    if (i == 4 * kIterations - 1) {
      while (hits.load() == 0 || misses.load() == 0) {
        // Make sure both outcomes were observed at least once.
        failures += ctx->Map(kIova, target.pa, 4 * kPage, kPermReadWrite).ok() ? 0 : 1;
        std::this_thread::yield();
        failures += ctx->Unmap(kIova, 4 * kPage).ok() ? 0 : 1;
        std::this_thread::yield();
      }
    }
  }
  stop.store(true, std::memory_order_release);
  for (std::thread& th : lookers) th.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(hits.load(), 0U);
  EXPECT_GT(misses.load(), 0U);
  EXPECT_EQ(ctx->IovaToPhys(kIova).status(), Status::NotFound());
  EXPECT_TRUE(rig.registry->FreeContext(&rig.devices[0], Rig::Sid(0)).ok());
}

}  // namespace
}  // namespace deviso
