// Concurrency tests of the core (CTest labels `core` and `concurrency`; scripts/test also runs
// them under TSan). The fake unit reports any Map/Unmap/IovaToPhys that overlaps another call on
// the same domain, or that reaches a destroyed domain; TSan reports unsynchronised accesses.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "core/testing/fake_unit.h"
#include "deviso/config.h"
#include "deviso/deviso.h"
#include "deviso/port/device.h"
#include "deviso/registry.h"

namespace deviso {
namespace {

using testing::FakeUnit;

constexpr uint64_t kPage = 4096;

#ifdef DEVISO_UNDER_SANITIZER
constexpr int kIterations = 300;
#else
constexpr int kIterations = 2000;
#endif
// 8, or fewer in a configuration with fewer devices or contexts (a shared domain takes one).
constexpr int kThreads =
    static_cast<int>(std::min<size_t>({8, kMaxDevices, kMaxContexts - 1, kMaxSids / 2}));
static_assert(kThreads >= 2, "the concurrency tests need 3 contexts and 2 devices");

int C(Status status) { return status.ToC(); }
template <typename T>
int C(const Result<T>& result) {
  return result.status().ToC();
}

// Each thread maps, translates and unmaps in its own context, all at once.
TEST(RegistryConcurrencyTest, ContextsWorkInParallel) {
  FakeUnit unit;
  Registry registry;
  ASSERT_EQ(C(registry.RegisterUnit(unit)), 0);
  std::vector<device> devices(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    const uint32_t sid = static_cast<uint32_t>(t);
    ASSERT_EQ(C(registry.BindDevice(&devices[t], unit, {&sid, 1})), 0);
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const uint32_t sid = static_cast<uint32_t>(t);
      Result<Context> ctx = registry.AllocContext(&devices[t], sid);
      if (!ctx.ok()) {
        ++failures;
        return;
      }
      const Paddr pa_base = 0x1'0000'0000ULL * (t + 1);
      for (int i = 0; i < kIterations; ++i) {
        const Iova iova = static_cast<Iova>(i % 64) * 4 * kPage;
        const bool ok =
            ctx->Map(iova, pa_base + iova, 2 * kPage, kPermReadWrite).ok() &&
            ctx->IovaToPhys(iova + kPage + 8).value_or(0) == pa_base + iova + kPage + 8 &&
            ctx->Unmap(iova, 2 * kPage).ok();
        failures += ok ? 0 : 1;
      }
      failures += registry.FreeContext(&devices[t], sid).ok() ? 0 : 1;
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(unit.live_domains(), 0U);
}

// The same through the C ABI and the default registry: lookups race too.
TEST(RegistryConcurrencyTest, CApiInParallel) {
  FakeUnit unit(FakeUnit::Options{.name = "fake@parallel"});
  ASSERT_EQ(C(Registry::Default().RegisterUnit(unit)), 0);
  std::vector<device> devices(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const uint32_t sid = static_cast<uint32_t>(0x100 + t);
      if (deviso_device_bind(&devices[t], "fake@parallel", &sid, 1) != 0 ||
          deviso_ctx_alloc(&devices[t], sid) != 0) {
        ++failures;
        return;
      }
      for (int i = 0; i < kIterations; ++i) {
        const uintptr_t base = 0x8000'0000 + static_cast<uintptr_t>(i % 16) * kPage;
        uint64_t pa = 0;
        const bool ok = deviso_map(&devices[t], sid, base, kPage) == 0 &&
                        deviso_iova_to_phys(&devices[t], sid, base, &pa) == 0 && pa == base &&
                        deviso_unmap(&devices[t], sid, base, kPage) == 0;
        failures += ok ? 0 : 1;
      }
      failures += deviso_ctx_free(&devices[t], sid) == 0 ? 0 : 1;
      failures += deviso_device_unbind(&devices[t]) == 0 ? 0 : 1;
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(C(Registry::Default().UnregisterUnit(unit)), 0);
}

// One thread frees and re-allocates the context of (dev, sid) while others map and unmap through
// it. A map either lands in a live context or fails with -ENOENT; never in a destroyed domain.
TEST(RegistryConcurrencyTest, MapRacesFreeContext) {
  FakeUnit unit;
  Registry registry;
  ASSERT_EQ(C(registry.RegisterUnit(unit)), 0);
  device dev{"dev"};
  const uint32_t sids[] = {1, 2, 3, 4};
  ASSERT_EQ(C(registry.BindDevice(&dev, unit, sids)), 0);
  for (const uint32_t sid : sids) {
    ASSERT_EQ(C(registry.AllocContext(&dev, sid)), 0);
  }

  std::atomic<bool> stop{false};
  std::atomic<int> unexpected{0};
  std::atomic<int> mapped{0};
  std::atomic<int> lost{0};
  std::vector<std::thread> mappers;
  mappers.reserve(std::size(sids));
  for (const uint32_t sid : sids) {
    mappers.emplace_back([&, sid] {
      for (int i = 0; !stop.load(); ++i) {
        const Result<Context> ctx = registry.FindContext(&dev, sid);
        if (!ctx.ok()) {
          unexpected += ctx.status() == Status::NotFound() ? 0 : 1;
          continue;
        }
        const Iova iova = (i % 8) * kPage;
        const Status map = ctx->Map(iova, iova, kPage, kPermRead);
        if (map.ok()) {
          ++mapped;
          const Status unmap = ctx->Unmap(iova, kPage);
          unexpected += unmap.ok() || unmap == Status::NotFound() ? 0 : 1;
        } else {
          ++lost;
          unexpected += map == Status::NotFound() ? 0 : 1;
        }
        std::this_thread::yield();  // other work: the host mutex is unfair to the freeing thread
      }
    });
  }
  // At least kIterations rounds, and until the mappers got going (threads start late).
  for (int i = 0; i < kIterations || mapped.load() < 1000; ++i) {
    const uint32_t sid = sids[i % 4];
    ASSERT_EQ(C(registry.FreeContext(&dev, sid)), 0);
    ASSERT_EQ(C(registry.AllocContext(&dev, sid)), 0);
  }
  stop = true;
  for (std::thread& thread : mappers) {
    thread.join();
  }
  EXPECT_EQ(unexpected.load(), 0);
  for (const uint32_t sid : sids) {
    ASSERT_EQ(C(registry.FreeContext(&dev, sid)), 0);
  }
  EXPECT_EQ(unit.live_domains(), 0U);
  std::printf("maps: %d succeeded, %d lost the race\n", mapped.load(), lost.load());
}

// A handle kept across FreeContext never works again, though its slot is reused at once: once a
// call through it has failed with -ENOENT, every later call does too.
TEST(RegistryConcurrencyTest, StaleHandleStaysStale) {
  FakeUnit unit;
  Registry registry;
  ASSERT_EQ(C(registry.RegisterUnit(unit)), 0);
  device dev{"dev"};
  const uint32_t sid = 1;
  ASSERT_EQ(C(registry.BindDevice(&dev, unit, {&sid, 1})), 0);

  for (int round = 0; round < kIterations / 20; ++round) {
    const Context handle = *registry.AllocContext(&dev, sid);
    std::atomic<bool> go{false};
    std::atomic<int> bad{0};
    std::thread user([&] {
      while (!go.load()) {
      }
      bool stale = false;
      for (int i = 0; i < 200; ++i) {
        const Status map = handle.Map(0x1000, 0x1000, kPage, kPermRead);
        if (map.ok()) {
          bad += stale ? 1 : 0;  // reached the context that replaced its own
          const Status unmap = handle.Unmap(0x1000, kPage);
          stale = stale || !unmap.ok();
          bad += unmap.ok() || unmap == Status::NotFound() ? 0 : 1;
        } else {
          bad += map == Status::NotFound() ? 0 : 1;
          stale = true;
        }
      }
    });
    go = true;
    ASSERT_EQ(C(registry.FreeContext(&dev, sid)), 0);
    const Context replacement = *registry.AllocContext(&dev, sid);  // same slot: lowest free
    user.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_FALSE(replacement == handle);
    EXPECT_EQ(C(replacement.IovaToPhys(0x1000)), -ENOENT) << "the stale handle mapped into it";
    ASSERT_EQ(C(registry.FreeContext(&dev, sid)), 0);
  }
  EXPECT_EQ(unit.live_domains(), 0U);
}

// Faults arrive while the handler is replaced and the context freed. Every callback sees a
// consistent (handler, user) pair, and none runs once FreeContext has returned.
struct Target {
  std::atomic<int> calls{0};
};

std::atomic<bool> g_context_freed{false};
std::atomic<int> g_late_calls{0};

void CountCall(const deviso_fault* /*fault*/, void* user) {
  if (g_context_freed.load()) {
    ++g_late_calls;
  }
  ++static_cast<Target*>(user)->calls;
}

TEST(RegistryConcurrencyTest, FaultsRaceHandlerChangesAndFree) {
  if constexpr (!config::kFaultReports) GTEST_SKIP() << "DEVISO_CONFIG_FAULT_REPORTS=OFF";
  FakeUnit unit;
  Registry registry;
  ASSERT_EQ(C(registry.RegisterUnit(unit)), 0);
  device dev{"dev"};
  const uint32_t sid = 9;
  ASSERT_EQ(C(registry.BindDevice(&dev, unit, {&sid, 1})), 0);

  for (int round = 0; round < 20; ++round) {
    g_context_freed = false;
    const Context ctx = *registry.AllocContext(&dev, sid);
    Target a;
    Target b;
    ASSERT_EQ(C(ctx.SetFaultHandler(CountCall, &a, 1'000'000)), 0);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> raised{0};
    std::thread raiser([&] {
      while (!stop.load()) {
        if (unit.RaiseFault(sid, Fault{})) {
          ++raised;
        }
      }
    });
    std::thread switcher([&] {
      for (int i = 0; i < kIterations / 10; ++i) {
        // A high rate, so most faults are delivered.
        if (!ctx.SetFaultHandler(CountCall, i % 2 == 0 ? &a : &b, 1'000'000).ok()) {
          break;  // freed
        }
      }
    });
    while (raised.load() < 200) {
      std::this_thread::yield();
    }
    ASSERT_EQ(C(registry.FreeContext(&dev, sid)), 0);
    g_context_freed = true;
    switcher.join();
    stop = true;
    raiser.join();
    EXPECT_EQ(g_late_calls.load(), 0) << "a callback ran after FreeContext returned";
    EXPECT_GT(a.calls.load() + b.calls.load(), 0);
  }
}

// When SetFaultHandler returns, the handler it replaced is not running and will not run again,
// so its `user` may be freed. The old handler dawdles to widen the window.
struct Retirable {
  std::atomic<bool> retired{false};
  std::atomic<int> calls{0};
  std::atomic<int> late{0};
};

void SlowCall(const deviso_fault* /*fault*/, void* user) {
  auto* target = static_cast<Retirable*>(user);
  ++target->calls;
  for (int i = 0; i < 200; ++i) {
    if (target->retired.load()) {
      ++target->late;
      return;
    }
  }
}

TEST(RegistryConcurrencyTest, ReplacedHandlerIsNotRunningAfterSetFaultHandler) {
  if constexpr (!config::kFaultReports) GTEST_SKIP() << "DEVISO_CONFIG_FAULT_REPORTS=OFF";
  FakeUnit unit;
  Registry registry;
  ASSERT_EQ(C(registry.RegisterUnit(unit)), 0);
  device dev{"dev"};
  const uint32_t sid = 3;
  ASSERT_EQ(C(registry.BindDevice(&dev, unit, {&sid, 1})), 0);
  const Context ctx = *registry.AllocContext(&dev, sid);

  std::atomic<bool> stop{false};
  std::thread raiser([&] {
    while (!stop.load()) {
      unit.RaiseFault(sid, Fault{});
    }
  });
  std::vector<std::unique_ptr<Retirable>> targets;
  targets.reserve(kIterations / 4);
  int calls = 0;
  for (int i = 0; i < kIterations / 4; ++i) {
    targets.push_back(std::make_unique<Retirable>());
    ASSERT_EQ(C(ctx.SetFaultHandler(SlowCall, targets.back().get(), 1'000'000'000)), 0);
    if (i > 0) {
      targets[i - 1]->retired = true;
    }
    while (targets.back()->calls.load() == 0) {  // let it be called at least once
      std::this_thread::yield();
    }
  }
  ASSERT_EQ(C(ctx.SetFaultHandler(nullptr, nullptr)), 0);
  targets.back()->retired = true;
  stop = true;
  raiser.join();
  for (const auto& target : targets) {
    EXPECT_EQ(target->late.load(), 0);
    calls += target->calls.load();
  }
  EXPECT_GE(calls, kIterations / 4);
  ASSERT_EQ(C(registry.FreeContext(&dev, sid)), 0);
}

// Control operations from many threads at once: binding, contexts, shared domains.
TEST(RegistryConcurrencyTest, ControlOperationsInParallel) {
  FakeUnit unit;
  Registry registry;
  ASSERT_EQ(C(registry.RegisterUnit(unit)), 0);
  const Context shared = *registry.CreateDomain(unit);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      device dev{"dev"};
      const uint32_t sids[] = {static_cast<uint32_t>(2 * t), static_cast<uint32_t>(2 * t + 1)};
      for (int i = 0; i < kIterations / 10; ++i) {
        bool ok = registry.BindDevice(&dev, unit, sids).ok() &&
                  registry.AllocContext(&dev, sids[0]).ok() &&
                  registry.Attach(shared, &dev, sids[1]).ok();
        const Iova iova = 0x1000'0000ULL * (t + 1);
        ok = ok && shared.Map(iova, 0x1000, kPage, kPermRead).ok();
        ok = ok && shared.Unmap(iova, kPage).ok();
        ok = ok && registry.Detach(shared, &dev, sids[1]).ok() &&
             registry.FreeContext(&dev, sids[0]).ok() && registry.UnbindDevice(&dev).ok();
        failures += ok ? 0 : 1;
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(C(registry.DestroyDomain(shared)), 0);
  EXPECT_EQ(unit.live_domains(), 0U);
}

// A map and an unmap through a lookup, as the C API does.
bool MapUnmapThroughLookup(Registry& registry, const device* dev, uint32_t sid) {
  const Result<Context> ctx = registry.FindContext(dev, sid);
  return ctx.ok() && ctx->Map(0x20'0000, 0x9000'0000, kPage, kPermReadWrite).ok() &&
         ctx->Unmap(0x20'0000, kPage).ok();
}

// Lookups of (device, StreamID) race the control operations that change the indexes under
// them: binds and unbinds (device and stream index entries inserted and shifted back on
// deletion), context allocs and frees. A stable context bound first must be found, as the same
// context, by every lookup throughout; a churning pair only ever answers 0, -ENOENT or -EINVAL.
TEST(RegistryConcurrencyTest, LookupsRaceAllocAndFree) {
  FakeUnit unit;
  Registry registry;
  ASSERT_EQ(C(registry.RegisterUnit(unit)), 0);
  device stable_dev{"stable"};
  const uint32_t stable_sid = 1000;
  ASSERT_EQ(C(registry.BindDevice(&stable_dev, unit, {&stable_sid, 1})), 0);
  const Context stable = *registry.AllocContext(&stable_dev, stable_sid);
  ASSERT_EQ(C(stable.Map(0x10'0000, 0x8000'0000, kPage, kPermReadWrite)), 0);

  constexpr int kWriters = kThreads / 2;
  constexpr int kReaders = kThreads - kWriters;
  std::vector<device> devices(kWriters);
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::atomic<uint64_t> lookups{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      const uint32_t sid = static_cast<uint32_t>(t);
      for (int i = 0; i < kIterations; ++i) {
        const bool ok = registry.BindDevice(&devices[t], unit, {&sid, 1}).ok() &&
                        registry.AllocContext(&devices[t], sid).ok() &&
                        MapUnmapThroughLookup(registry, &devices[t], sid) &&
                        registry.FreeContext(&devices[t], sid).ok() &&
                        registry.UnbindDevice(&devices[t]).ok();
        failures += ok ? 0 : 1;
      }
    });
  }
  for (int t = 0; t < kReaders; ++t) {
    threads.emplace_back([&, t] {
      uint64_t n = 0;
      while (!done.load(std::memory_order_relaxed)) {
        const Result<Context> found = registry.FindContext(&stable_dev, stable_sid);
        if (!found.ok() || !(*found == stable) || !registry.UnitOf(&stable_dev).ok()) {
          ++failures;
        }
        const int w = (t + static_cast<int>(n)) % kWriters;
        const int churn =
            registry.FindContext(&devices[w], static_cast<uint32_t>(w)).status().ToC();
        if (churn != 0 && churn != -ENOENT && churn != -EINVAL) {
          ++failures;
        }
        ++n;
      }
      lookups += n;
    });
  }
  for (int t = 0; t < kWriters; ++t) {
    threads[t].join();
  }
  done = true;
  for (size_t t = kWriters; t < threads.size(); ++t) {
    threads[t].join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(lookups.load(), 0U);
  const Result<Paddr> pa = stable.IovaToPhys(0x10'0000);
  ASSERT_EQ(C(pa), 0);
  EXPECT_EQ(*pa, 0x8000'0000U);
  EXPECT_EQ(unit.live_domains(), 1U);
}

}  // namespace
}  // namespace deviso
