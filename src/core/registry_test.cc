// Unit tests of the core's C++ API (deviso/registry.h) on a fake backend. Every error path is
// checked to change nothing: neither the registry (what FindContext/UnitOf answer) nor the
// backend (its domains, attachments and mappings); argument errors must not reach the backend.

#include "deviso/registry.h"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "core/testing/fake_unit.h"
#include "deviso/config.h"
#include "deviso/port/device.h"
#include "ports/host/test_clock.h"

namespace deviso {
namespace {

using testing::FakeUnit;
using Op = FakeUnit::Op;

constexpr uint64_t kPage = 4096;
constexpr uint64_t k64K = uint64_t{64} * 1024;

int C(Status status) { return status.ToC(); }
template <typename T>
int C(const Result<T>& result) {
  return result.status().ToC();
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(C(registry_.RegisterUnit(unit_)), 0);
    ASSERT_EQ(C(registry_.BindDevice(&dma_, unit_, kDmaSids)), 0);
    ASSERT_EQ(C(registry_.BindDevice(&nic_, unit_, kNicSids)), 0);
  }

  // What the registry and the backend show from outside, for "nothing changed" checks.
  std::string State() {
    std::ostringstream os;
    os << "domains " << unit_.live_domains() << ";";
    for (const device* dev : {&dma_, &nic_, &other_}) {
      const Result<IsolationUnit*> unit = registry_.UnitOf(dev);
      os << " " << dev->name << (unit.ok() ? "" : "(unbound)");
      for (uint32_t sid = 0; sid < 16; ++sid) {
        const Result<Context> ctx = registry_.FindContext(dev, sid);
        if (ctx.status() == Status::InvalidArgument()) {
          continue;  // not its StreamID
        }
        os << " sid" << sid << "=";
        if (!ctx.ok()) {
          os << ctx.status().str();
          continue;
        }
        os << ContextName(*ctx);
        const Domain* domain = unit_.DomainOf(sid);
        os << "/attached:" << (domain != nullptr) << "/pages:" << unit_.mapped_pages(domain);
      }
    }
    return os.str();
  }

  // A stable name for each distinct live context seen in this test.
  std::string ContextName(const Context& ctx) {
    for (size_t i = 0; i < seen_.size(); ++i) {
      if (seen_[i] == ctx) {
        return "ctx" + std::to_string(i);
      }
    }
    seen_.push_back(ctx);
    return "ctx" + std::to_string(seen_.size() - 1);
  }

  Context Alloc(const device* dev, uint32_t sid, const DomainOptions& options = {}) {
    Result<Context> ctx = registry_.AllocContext(dev, sid, options);
    EXPECT_EQ(C(ctx), 0);
    return ctx.value_or(Context());
  }

  static constexpr std::array<uint32_t, 3> kDmaSids = {1, 2, 3};
  static constexpr std::array<uint32_t, 1> kNicSids = {5};

  FakeUnit unit_;
  Registry registry_;
  device dma_{"dma"};
  device nic_{"nic"};
  device other_{"other"};  // bound by some tests
  std::vector<Context> seen_;
};

// Runs `expr`, expects error `code`, and that nothing changed; `backend_calls` says whether the
// backend may have been called (false: the core must have refused the call itself).
#define EXPECT_FAILS_WITHOUT_CHANGE(expr, code, backend_calls)                  \
  do {                                                                          \
    const std::string before = State();                                         \
    const size_t calls = unit_.total_calls();                                   \
    EXPECT_EQ(C(expr), (code)) << #expr;                                        \
    EXPECT_EQ(State(), before) << #expr;                                        \
    if (!(backend_calls)) {                                                     \
      EXPECT_EQ(unit_.total_calls(), calls) << #expr << " reached the backend"; \
    }                                                                           \
  } while (0)
#define EXPECT_REFUSED(expr, code) EXPECT_FAILS_WITHOUT_CHANGE(expr, code, false)
#define EXPECT_BACKEND_ERROR(expr, code) EXPECT_FAILS_WITHOUT_CHANGE(expr, code, true)

// ---- Units ------------------------------------------------------------------------------------

TEST_F(RegistryTest, RegisterUnitErrors) {
  EXPECT_REFUSED(registry_.RegisterUnit(unit_), -EEXIST);
  FakeUnit same_name;  // also "fake@0"
  EXPECT_REFUSED(registry_.RegisterUnit(same_name), -EEXIST);
  FakeUnit no_name(FakeUnit::Options{.name = ""});
  EXPECT_REFUSED(registry_.RegisterUnit(no_name), -EINVAL);

  std::vector<std::unique_ptr<FakeUnit>> units;
  for (size_t i = 1; i < kMaxUnits; ++i) {
    units.push_back(std::make_unique<FakeUnit>(FakeUnit::Options{.name = "u" + std::to_string(i)}));
    ASSERT_EQ(C(registry_.RegisterUnit(*units.back())), 0);
  }
  FakeUnit one_too_many(FakeUnit::Options{.name = "one too many"});
  EXPECT_REFUSED(registry_.RegisterUnit(one_too_many), -ENOMEM);
  ASSERT_EQ(C(registry_.UnregisterUnit(*units.back())), 0);
  EXPECT_EQ(C(registry_.RegisterUnit(one_too_many)), 0);
}

TEST_F(RegistryTest, UnregisterUnit) {
  FakeUnit second(FakeUnit::Options{.name = "fake@1"});
  EXPECT_REFUSED(registry_.UnregisterUnit(second), -ENOENT);
  EXPECT_REFUSED(registry_.UnregisterUnit(unit_), -EBUSY);  // devices bound

  ASSERT_EQ(C(registry_.RegisterUnit(second)), 0);
  Result<Context> shared = registry_.CreateDomain(second);
  ASSERT_EQ(C(shared), 0);
  EXPECT_REFUSED(registry_.UnregisterUnit(second), -EBUSY);  // a context without streams
  ASSERT_EQ(C(registry_.DestroyDomain(*shared)), 0);
  EXPECT_EQ(C(registry_.UnregisterUnit(second)), 0);
  EXPECT_EQ(C(registry_.FindUnit("fake@1")), -ENOENT);

  ASSERT_EQ(C(registry_.UnbindDevice(&dma_)), 0);
  ASSERT_EQ(C(registry_.UnbindDevice(&nic_)), 0);
  EXPECT_EQ(C(registry_.UnregisterUnit(unit_)), 0);
}

TEST_F(RegistryTest, FindUnit) {
  Result<IsolationUnit*> found = registry_.FindUnit("fake@0");
  ASSERT_EQ(C(found), 0);
  EXPECT_EQ(*found, &unit_);
  EXPECT_EQ(C(registry_.FindUnit("fake@1")), -ENOENT);
  EXPECT_EQ(C(registry_.FindUnit("")), -ENOENT);
  EXPECT_EQ(C(registry_.FindUnit(nullptr)), -EINVAL);
}

// ---- Devices ----------------------------------------------------------------------------------

TEST_F(RegistryTest, BindDeviceErrors) {
  const uint32_t one[] = {9};
  std::array<uint32_t, kMaxSidsPerDevice + 1> too_many;  // one more than a device may own
  for (size_t i = 0; i < too_many.size(); ++i) {
    too_many[i] = 10 + static_cast<uint32_t>(i);
  }
  const uint32_t beyond_max_sid[] = {9, 0x10000};
  const uint32_t twice[] = {9, 10, 9};
  const uint32_t dma_sid[] = {9, 2};
  FakeUnit unregistered(FakeUnit::Options{.name = "fake@1"});

  EXPECT_REFUSED(registry_.BindDevice(nullptr, unit_, one), -EINVAL);
  EXPECT_REFUSED(registry_.BindDevice(&other_, unit_, {}), -EINVAL);
  EXPECT_REFUSED(registry_.BindDevice(&other_, unit_, too_many), -EINVAL);
  EXPECT_REFUSED(registry_.BindDevice(&other_, unit_, beyond_max_sid), -EINVAL);
  EXPECT_REFUSED(registry_.BindDevice(&other_, unit_, twice), -EINVAL);
  EXPECT_REFUSED(registry_.BindDevice(&other_, unregistered, one), -ENOENT);
  EXPECT_REFUSED(registry_.BindDevice(&dma_, unit_, one), -EEXIST);        // already bound
  EXPECT_REFUSED(registry_.BindDevice(&other_, unit_, dma_sid), -EEXIST);  // dma's StreamID 2

  EXPECT_EQ(C(registry_.UnitOf(&other_)), -EINVAL);
  ASSERT_EQ(C(registry_.BindDevice(&other_, unit_, one)), 0);
  Result<IsolationUnit*> bound = registry_.UnitOf(&other_);
  ASSERT_EQ(C(bound), 0);
  EXPECT_EQ(*bound, &unit_);
}

TEST_F(RegistryTest, SameStreamIdOnTwoUnits) {
  FakeUnit second(FakeUnit::Options{.name = "fake@1"});
  ASSERT_EQ(C(registry_.RegisterUnit(second)), 0);
  const uint32_t sids[] = {1};  // dma's StreamID 1, on another unit
  EXPECT_EQ(C(registry_.BindDevice(&other_, second, sids)), 0);
}

TEST_F(RegistryTest, DeviceTableFull) {
  std::vector<device> devices(kMaxDevices);
  size_t bound = 2;  // dma and nic
  for (size_t i = 0; bound < kMaxDevices; ++i, ++bound) {
    const uint32_t sid = 100 + static_cast<uint32_t>(i);
    ASSERT_EQ(C(registry_.BindDevice(&devices[i], unit_, {&sid, 1})), 0);
  }
  const uint32_t sid = 99;
  EXPECT_REFUSED(registry_.BindDevice(&other_, unit_, {&sid, 1}), -ENOMEM);
  ASSERT_EQ(C(registry_.UnbindDevice(&devices[0])), 0);
  EXPECT_EQ(C(registry_.BindDevice(&other_, unit_, {&sid, 1})), 0);
}

// StreamIDs come from one pool of kMaxSids shared by every device, not from a per-device array:
// a bind that needs more than is left is -ENOMEM with no change, and an unbind gives them back.
TEST_F(RegistryTest, StreamIdPoolShared) {
  size_t free_sids = kMaxSids - kDmaSids.size() - kNicSids.size();
  std::vector<device> devices(kMaxSids);
  std::vector<std::vector<uint32_t>> bound;
  uint32_t next_sid = 100;
  size_t d = 0;
  // Whole devices of kMaxSidsPerDevice while they fit (and a device entry is left for `other_`).
  while (free_sids >= kMaxSidsPerDevice && d + 3 < kMaxDevices) {
    std::vector<uint32_t> sids;
    for (size_t i = 0; i < kMaxSidsPerDevice; ++i) sids.push_back(next_sid++);
    ASSERT_EQ(C(registry_.BindDevice(&devices[d], unit_, sids)), 0) << d;
    bound.push_back(sids);
    free_sids -= kMaxSidsPerDevice;
    ++d;
  }
  if (free_sids >= kMaxSidsPerDevice) {
    GTEST_SKIP() << "the device table runs out before the StreamID pool in this configuration";
  }
  std::vector<uint32_t> too_many;
  for (size_t i = 0; i <= free_sids; ++i) too_many.push_back(next_sid++);
  EXPECT_REFUSED(registry_.BindDevice(&other_, unit_, too_many), -ENOMEM);
  too_many.pop_back();
  if (!too_many.empty()) {
    ASSERT_EQ(C(registry_.BindDevice(&other_, unit_, too_many)), 0);
    ASSERT_EQ(C(registry_.UnbindDevice(&other_)), 0);
  }
  ASSERT_FALSE(bound.empty());
  // Unbinding a device returns its StreamIDs to the pool: another device can take them all.
  ASSERT_EQ(C(registry_.UnbindDevice(&devices[0])), 0);
  // kMaxSidsPerDevice are free now.
  too_many.resize(kMaxSidsPerDevice);
  for (uint32_t& sid : too_many) sid = next_sid++;
  ASSERT_EQ(C(registry_.BindDevice(&other_, unit_, too_many)), 0);
  for (const uint32_t sid : too_many) {
    EXPECT_EQ(C(registry_.AllocContext(&other_, sid)), 0);
    EXPECT_EQ(C(registry_.FreeContext(&other_, sid)), 0);
  }
  // The other devices' StreamIDs are untouched, and the unbound one's are gone.
  for (size_t i = 1; i < bound.size(); ++i) {
    for (const uint32_t sid : bound[i]) {
      EXPECT_EQ(C(registry_.FindContext(&devices[i], sid)), -ENOENT);  // bound, no context
    }
  }
  EXPECT_EQ(C(registry_.FindContext(&devices[0], bound[0][0])), -EINVAL);
}

// The (device, StreamID) and device indexes under churn: random binds and unbinds of devices
// whose StreamIDs collide across units, checked against a reference (the device changed after
// each step, every pair ever bound every 16 steps: found, unit, context), so a lost or stale
// index entry (a wrong deletion) shows.
TEST_F(RegistryTest, IndexesUnderChurn) {
  FakeUnit second(FakeUnit::Options{.name = "fake@1"});
  ASSERT_EQ(C(registry_.RegisterUnit(second)), 0);
  IsolationUnit* const units[] = {&unit_, &second};
  constexpr size_t kDevices = 3 * kMaxDevices;
  std::vector<device> devices(kDevices);
  struct Ref {
    bool bound = false;
    IsolationUnit* unit = nullptr;
    std::vector<uint32_t> sids;
    std::vector<bool> has_context;
  };
  std::vector<Ref> ref(kDevices);
  size_t bound_devices = 2;
  size_t used_sids = kDmaSids.size() + kNicSids.size();
  size_t live_contexts = 0;
  uint64_t rng = 12345;
  auto next = [&rng](uint64_t n) {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (rng >> 33) % n;
  };
  for (int step = 0; step < 4000; ++step) {
    const size_t d = next(kDevices);
    Ref& r = ref[d];
    if (!r.bound) {
      const size_t count = 1 + next(kMaxSidsPerDevice);
      if (bound_devices == kMaxDevices || used_sids + count > kMaxSids) continue;
      IsolationUnit* const unit = units[next(2)];
      // StreamIDs unique per unit: device d owns [d * kMaxSidsPerDevice, + count) on either.
      std::vector<uint32_t> sids;
      for (size_t i = 0; i < count; ++i) sids.push_back(100 + d * kMaxSidsPerDevice + i);
      ASSERT_EQ(C(registry_.BindDevice(&devices[d], *unit, sids)), 0) << step;
      r = Ref{true, unit, sids, std::vector<bool>(count, false)};
      ++bound_devices;
      used_sids += count;
      // Sometimes a context on one of its StreamIDs.
      const size_t i = next(count);
      if (live_contexts < kMaxContexts && next(2) == 0) {
        ASSERT_EQ(C(registry_.AllocContext(&devices[d], sids[i])), 0);
        r.has_context[i] = true;
        ++live_contexts;
      }
    } else {
      for (size_t i = 0; i < r.sids.size(); ++i) {
        if (r.has_context[i]) {
          EXPECT_EQ(C(registry_.UnbindDevice(&devices[d])), -EBUSY);
          ASSERT_EQ(C(registry_.FreeContext(&devices[d], r.sids[i])), 0);
          r.has_context[i] = false;
          --live_contexts;
        }
      }
      ASSERT_EQ(C(registry_.UnbindDevice(&devices[d])), 0) << step;
      used_sids -= r.sids.size();
      --bound_devices;
      r.bound = false;
    }
    // Every device every 16 steps (a lost index entry stays lost), else the one just changed.
    for (size_t e = step % 16 == 0 ? 0 : d; e < (step % 16 == 0 ? kDevices : d + 1); ++e) {
      const Result<IsolationUnit*> unit = registry_.UnitOf(&devices[e]);
      ASSERT_EQ(unit.ok(), ref[e].bound) << "step " << step << " device " << e;
      if (ref[e].bound) {
        ASSERT_EQ(*unit, ref[e].unit);
      }
      for (size_t i = 0; i < ref[e].sids.size(); ++i) {
        const int want = !ref[e].bound ? -EINVAL : ref[e].has_context[i] ? 0 : -ENOENT;
        ASSERT_EQ(C(registry_.FindContext(&devices[e], ref[e].sids[i])), want)
            << "step " << step << " device " << e << " sid " << ref[e].sids[i];
      }
    }
  }
  for (size_t d = 0; d < kDevices; ++d) {
    if (!ref[d].bound) {
      continue;
    }
    for (size_t i = 0; i < ref[d].sids.size(); ++i) {
      if (ref[d].has_context[i]) {
        ASSERT_EQ(C(registry_.FreeContext(&devices[d], ref[d].sids[i])), 0);
      }
    }
    ASSERT_EQ(C(registry_.UnbindDevice(&devices[d])), 0);
  }
  // The fixture's devices were left alone throughout.
  EXPECT_EQ(C(registry_.FindContext(&dma_, 1)), -ENOENT);
  EXPECT_EQ(C(registry_.FindContext(&nic_, 5)), -ENOENT);
}

TEST_F(RegistryTest, UnbindDevice) {
  EXPECT_REFUSED(registry_.UnbindDevice(&other_), -ENOENT);
  EXPECT_REFUSED(registry_.UnbindDevice(nullptr), -ENOENT);
  Alloc(&dma_, 3);
  EXPECT_REFUSED(registry_.UnbindDevice(&dma_), -EBUSY);
  ASSERT_EQ(C(registry_.FreeContext(&dma_, 3)), 0);
  EXPECT_EQ(C(registry_.UnbindDevice(&dma_)), 0);
  EXPECT_EQ(C(registry_.FindContext(&dma_, 3)), -EINVAL);
  EXPECT_EQ(C(registry_.AllocContext(&dma_, 3)), -EINVAL);
  // Its StreamIDs are free for another device now.
  EXPECT_EQ(C(registry_.BindDevice(&other_, unit_, kDmaSids)), 0);
}

// ---- Contexts: the RFC's flow -----------------------------------------------------------------

TEST_F(RegistryTest, RfcFlow) {
  const Context ctx = Alloc(&dma_, 2);
  EXPECT_EQ(ctx.page_size(), kPage);
  EXPECT_EQ(ctx.unit(), &unit_);
  Result<Context> found = registry_.FindContext(&dma_, 2);
  ASSERT_EQ(C(found), 0);
  EXPECT_EQ(*found, ctx);
  Domain* const domain = unit_.DomainOf(2);
  ASSERT_NE(domain, nullptr);

  ASSERT_EQ(C(ctx.Map(0x8000'0000, 0x8000'0000, 4 * kPage, kPermReadWrite)), 0);
  EXPECT_EQ(unit_.mapped_pages(domain), 4U);
  Result<Paddr> pa = ctx.IovaToPhys(0x8000'2123);
  ASSERT_EQ(C(pa), 0);
  EXPECT_EQ(*pa, 0x8000'2123U);
  ASSERT_EQ(C(ctx.Unmap(0x8000'0000, 4 * kPage)), 0);
  EXPECT_EQ(C(ctx.IovaToPhys(0x8000'2123)), -ENOENT);

  ASSERT_EQ(C(registry_.FreeContext(&dma_, 2)), 0);
  EXPECT_EQ(unit_.live_domains(), 0U);
  EXPECT_EQ(unit_.DomainOf(2), nullptr);
  EXPECT_EQ(C(registry_.FindContext(&dma_, 2)), -ENOENT);
  EXPECT_EQ(C(ctx.Map(0x8000'0000, 0x8000'0000, kPage, kPermReadWrite)), -ENOENT);
}

TEST_F(RegistryTest, AllocContextErrors) {
  Alloc(&dma_, 1);
  EXPECT_REFUSED(registry_.AllocContext(nullptr, 1), -EINVAL);
  EXPECT_REFUSED(registry_.AllocContext(&other_, 1), -EINVAL);  // not bound
  EXPECT_REFUSED(registry_.AllocContext(&dma_, 5), -EINVAL);    // nic's StreamID
  EXPECT_REFUSED(registry_.AllocContext(&dma_, 4), -EINVAL);    // nobody's
  EXPECT_REFUSED(registry_.AllocContext(&dma_, 1), -EEXIST);
}

TEST_F(RegistryTest, AllocContextBackendErrors) {
  unit_.FailNext(Op::kCreateDomain, Status::NoMemory());
  EXPECT_BACKEND_ERROR(registry_.AllocContext(&dma_, 1), -ENOMEM);
  EXPECT_BACKEND_ERROR(registry_.AllocContext(&dma_, 1, {.page_size = 8192}), -EINVAL);
  EXPECT_BACKEND_ERROR(registry_.AllocContext(&dma_, 1, {.stage = DomainOptions::Stage::kStage2}),
                       -ENOTSUP);

  // The attach fails after the domain was created: the domain is destroyed again.
  unit_.FailNext(Op::kAttach, Status::TimedOut());
  EXPECT_BACKEND_ERROR(registry_.AllocContext(&dma_, 1), -ETIMEDOUT);
  EXPECT_EQ(unit_.calls(Op::kDestroyDomain), 1U);
  EXPECT_EQ(unit_.live_domains(), 0U);

  Alloc(&dma_, 1);
}

// Issue 15: a failed AllocContext whose rollback failed too used to retire its slot with the
// backend's domain for good, so repeated failures used up the registry's slots and the unit's
// domains. The destruction is now retried by the next allocation.
TEST_F(RegistryTest, FailedRollbackIsRetriedAndLeaksNeitherSlotNorDomain) {
  unit_.FailNext(Op::kAttach, Status::IoError());
  unit_.FailNext(Op::kDestroyDomain, Status::TimedOut());
  EXPECT_EQ(C(registry_.AllocContext(&dma_, 1)), -EIO);
  EXPECT_EQ(unit_.live_domains(), 1U);  // the backend could not let go of it yet
  EXPECT_EQ(C(registry_.FindContext(&dma_, 1)), -ENOENT);
  EXPECT_REFUSED(registry_.UnregisterUnit(unit_), -EBUSY);  // devices still bound
  const size_t destroys = unit_.calls(Op::kDestroyDomain);

  // The next allocation destroys it first: one live domain, the new context's.
  Alloc(&dma_, 1);
  EXPECT_EQ(unit_.calls(Op::kDestroyDomain), destroys + 1);
  EXPECT_EQ(unit_.live_domains(), 1U);
  ASSERT_EQ(C(registry_.FreeContext(&dma_, 1)), 0);
  EXPECT_EQ(unit_.live_domains(), 0U);

  // More failures than there are slots: each leaves one domain aside, which the next call
  // reclaims, so every slot is still there afterwards.
  for (size_t i = 0; i < kMaxContexts + 4; ++i) {
    unit_.FailNext(Op::kAttach, Status::IoError());
    unit_.FailNext(Op::kDestroyDomain, Status::TimedOut());
    ASSERT_EQ(C(registry_.AllocContext(&dma_, 1)), -EIO) << i;
    ASSERT_LE(unit_.live_domains(), 1U) << i;
  }
  std::vector<Context> contexts;
  for (size_t i = 0; i < kMaxContexts; ++i) {
    Result<Context> c = registry_.CreateDomain(unit_);
    ASSERT_EQ(C(c), 0) << i;
    contexts.push_back(*c);
  }
  EXPECT_EQ(unit_.live_domains(), kMaxContexts);
  EXPECT_REFUSED(registry_.CreateDomain(unit_), -ENOMEM);
  for (const Context& c : contexts) ASSERT_EQ(C(registry_.DestroyDomain(c)), 0);
  EXPECT_EQ(unit_.live_domains(), 0U);
}

// A domain the backend still cannot destroy keeps its slot aside (its fault sink is that slot),
// and each allocation retries; the slot is never handed to a new context meanwhile.
TEST_F(RegistryTest, AnOrphanTheBackendKeepsRefusingIsNeverReused) {
  unit_.FailNext(Op::kAttach, Status::IoError());
  unit_.FailNext(Op::kDestroyDomain, Status::TimedOut());
  EXPECT_EQ(C(registry_.AllocContext(&dma_, 1)), -EIO);
  std::vector<Context> contexts;
  for (size_t i = 1; i < kMaxContexts; ++i) {
    unit_.FailNext(Op::kDestroyDomain, Status::TimedOut());  // the retry fails again
    Result<Context> c = registry_.CreateDomain(unit_);
    ASSERT_EQ(C(c), 0) << i;
    contexts.push_back(*c);
  }
  unit_.FailNext(Op::kDestroyDomain, Status::TimedOut());
  EXPECT_EQ(C(registry_.CreateDomain(unit_)), -ENOMEM);  // only kMaxContexts - 1 fit
  EXPECT_EQ(unit_.live_domains(), kMaxContexts);
  // Once the backend lets go, the last slot is free again.
  Result<Context> last = registry_.CreateDomain(unit_);
  ASSERT_EQ(C(last), 0);
  EXPECT_EQ(unit_.live_domains(), kMaxContexts);
  contexts.push_back(*last);
  for (const Context& c : contexts) ASSERT_EQ(C(registry_.DestroyDomain(c)), 0);
  EXPECT_EQ(unit_.live_domains(), 0U);
}

TEST_F(RegistryTest, FreeContextDetachTimeoutKeepsTheContext) {
  const Context ctx = Alloc(&dma_, 1);
  ASSERT_EQ(C(ctx.Map(0x1000, 0x1000, kPage, kPermRead)), 0);
  unit_.FailNext(Op::kDetach, Status::TimedOut());
  EXPECT_BACKEND_ERROR(registry_.FreeContext(&dma_, 1), -ETIMEDOUT);
  EXPECT_EQ(unit_.calls(Op::kDestroyDomain), 0U);
  // Still there and usable.
  EXPECT_EQ(C(ctx.Map(0x2000, 0x2000, kPage, kPermRead)), 0);
  EXPECT_EQ(*registry_.FindContext(&dma_, 1), ctx);
  EXPECT_EQ(C(registry_.FreeContext(&dma_, 1)), 0);
  EXPECT_EQ(unit_.live_domains(), 0U);
}

TEST_F(RegistryTest, FreeContextReclaimFailureCanBeRetried) {
  const Context ctx = Alloc(&dma_, 1);
  unit_.FailNext(Op::kDestroyDomain, Status::TimedOut());
  EXPECT_EQ(C(registry_.FreeContext(&dma_, 1)), -ETIMEDOUT);
  // The stream is blocked, the context is still allocated and found.
  EXPECT_EQ(unit_.DomainOf(1), nullptr);
  EXPECT_EQ(unit_.live_domains(), 1U);
  EXPECT_EQ(*registry_.FindContext(&dma_, 1), ctx);
  EXPECT_REFUSED(registry_.AllocContext(&dma_, 1), -EEXIST);
  EXPECT_REFUSED(registry_.UnbindDevice(&dma_), -EBUSY);

  // The retry only reclaims: the stream is not detached twice.
  const size_t detaches = unit_.calls(Op::kDetach);
  EXPECT_EQ(C(registry_.FreeContext(&dma_, 1)), 0);
  EXPECT_EQ(unit_.calls(Op::kDetach), detaches);
  EXPECT_EQ(unit_.live_domains(), 0U);
  EXPECT_EQ(C(ctx.IovaToPhys(0)), -ENOENT);
  Alloc(&dma_, 1);
}

TEST_F(RegistryTest, StaleHandleNeverReachesANewContext) {
  const Context old_ctx = Alloc(&dma_, 1);
  ASSERT_EQ(C(registry_.FreeContext(&dma_, 1)), 0);
  const Context new_ctx = Alloc(&dma_, 1);  // same (dev, sid), most likely the same slot
  EXPECT_FALSE(old_ctx == new_ctx);
  EXPECT_REFUSED(old_ctx.Map(0x1000, 0x1000, kPage, kPermReadWrite), -ENOENT);
  EXPECT_REFUSED(old_ctx.Unmap(0x1000, kPage), -ENOENT);
  EXPECT_REFUSED(old_ctx.IovaToPhys(0x1000), -ENOENT);
  EXPECT_REFUSED(old_ctx.SetFaultHandler(nullptr, nullptr), -ENOENT);  // -ENOENT comes first
  EXPECT_REFUSED(old_ctx.fault_count(), -ENOENT);
  EXPECT_REFUSED(registry_.DestroyDomain(old_ctx), -ENOENT);
  EXPECT_REFUSED(registry_.Attach(old_ctx, &nic_, 5), -ENOENT);
  // What a stale handle remembers stays readable.
  EXPECT_EQ(old_ctx.page_size(), kPage);
  EXPECT_EQ(old_ctx.unit(), &unit_);
  EXPECT_EQ(C(new_ctx.Map(0x1000, 0x1000, kPage, kPermReadWrite)), 0);
}

TEST_F(RegistryTest, DefaultHandleNamesNoContext) {
  const Context ctx;
  EXPECT_EQ(ctx.page_size(), 0U);
  EXPECT_EQ(ctx.unit(), nullptr);
  EXPECT_REFUSED(ctx.Map(0, 0, kPage, kPermRead), -ENOENT);
  EXPECT_REFUSED(ctx.Unmap(0, kPage), -ENOENT);
  EXPECT_REFUSED(ctx.IovaToPhys(0), -ENOENT);
  EXPECT_REFUSED(ctx.SetFaultHandler(nullptr, nullptr), -ENOENT);
  EXPECT_REFUSED(ctx.fault_count(), -ENOENT);
  EXPECT_REFUSED(ctx.suppressed_fault_count(), -ENOENT);
  EXPECT_REFUSED(registry_.DestroyDomain(ctx), -ENOENT);
  EXPECT_REFUSED(registry_.Attach(ctx, &dma_, 1), -ENOENT);
  EXPECT_REFUSED(registry_.Detach(ctx, &dma_, 1), -ENOENT);
}

// ---- Map / Unmap / IovaToPhys -----------------------------------------------------------------

struct BadMap {
  const char* what;
  Iova iova;
  Paddr pa;
  uint64_t size;
  Perms perms;
  MemType type;
};

TEST_F(RegistryTest, MapArgumentErrors) {
  const Context ctx = Alloc(&dma_, 1);
  ASSERT_EQ(C(ctx.Map(0x10'0000, 0x10'0000, kPage, kPermReadWrite)), 0);
  constexpr uint64_t kTop = ~uint64_t{0} - kPage + 1;  // the last page of the 64-bit space
  const BadMap cases[] = {
      {"zero size", 0x2000, 0x2000, 0, kPermReadWrite, MemType::kNormal},
      {"iova unaligned", 0x2800, 0x2000, kPage, kPermReadWrite, MemType::kNormal},
      {"pa unaligned", 0x2000, 0x2001, kPage, kPermReadWrite, MemType::kNormal},
      {"size unaligned", 0x2000, 0x2000, kPage + 1, kPermReadWrite, MemType::kNormal},
      {"size less than a page", 0x2000, 0x2000, 512, kPermReadWrite, MemType::kNormal},
      {"iova wraps", kTop, 0x2000, 2 * kPage, kPermReadWrite, MemType::kNormal},
      {"pa wraps", 0x2000, kTop, 2 * kPage, kPermReadWrite, MemType::kNormal},
      {"no permission", 0x2000, 0x2000, kPage, 0, MemType::kNormal},
      {"exec only", 0x2000, 0x2000, kPage, kPermExec, MemType::kNormal},
      {"unknown permission bit", 0x2000, 0x2000, kPage, kPermRead | 0x8, MemType::kNormal},
      {"unknown memory type", 0x2000, 0x2000, kPage, kPermRead, static_cast<MemType>(4)},
  };
  for (const BadMap& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_REFUSED(ctx.Map(c.iova, c.pa, c.size, c.perms, c.type), -EINVAL);
  }
}

TEST_F(RegistryTest, MapBackendErrorsPassThrough) {
  const Context ctx = Alloc(&dma_, 1);
  ASSERT_EQ(C(ctx.Map(0x10'0000, 0x10'0000, 4 * kPage, kPermReadWrite)), 0);
  // Overlap at either end, and inside.
  EXPECT_BACKEND_ERROR(ctx.Map(0x0f'f000, 0x0f'f000, 2 * kPage, kPermRead), -EEXIST);
  EXPECT_BACKEND_ERROR(ctx.Map(0x10'3000, 0x10'3000, 2 * kPage, kPermRead), -EEXIST);
  EXPECT_BACKEND_ERROR(ctx.Map(0x10'1000, 0x10'1000, kPage, kPermRead), -EEXIST);
  EXPECT_BACKEND_ERROR(ctx.Map(0x2000, 0x2000, kPage, kPermWrite), -ENOTSUP);  // write-only
  EXPECT_BACKEND_ERROR(ctx.Map(uint64_t{1} << 48, 0x2000, kPage, kPermRead), -EINVAL);  // IAS
  unit_.FailNext(Op::kMap, Status::NoMemory());
  EXPECT_BACKEND_ERROR(ctx.Map(0x2000, 0x2000, kPage, kPermRead), -ENOMEM);
}

TEST_F(RegistryTest, MapPermissionsAndMemoryTypes) {
  const Context ctx = Alloc(&dma_, 1);
  const Domain* domain = unit_.DomainOf(1);
  struct Case {
    Perms perms;
    MemType type;
  };
  const Case cases[] = {
      {kPermRead, MemType::kNormal},
      {kPermReadWrite, MemType::kNormalNonCacheable},
      {kPermReadWrite, MemType::kDevice},
      {kPermRead | kPermExec, MemType::kDeviceStrict},
  };
  Iova iova = 0x4000'0000;
  for (const Case& c : cases) {
    ASSERT_EQ(C(ctx.Map(iova, iova + 0x1000'0000, kPage, c.perms, c.type)), 0);
    const std::optional<FakeUnit::Page> page = unit_.PageAt(domain, iova);
    ASSERT_TRUE(page.has_value());
    EXPECT_EQ(page->pa, iova + 0x1000'0000);
    EXPECT_EQ(page->perms, c.perms);
    EXPECT_EQ(page->type, c.type);
    iova += kPage;
  }
}

TEST_F(RegistryTest, SixtyFourKiBContext) {
  FakeUnit big(FakeUnit::Options{.name = "fake64k", .page_sizes = (1ULL << 16) | (1ULL << 29)});
  ASSERT_EQ(C(registry_.RegisterUnit(big)), 0);
  const uint32_t sid = 1;
  ASSERT_EQ(C(registry_.BindDevice(&other_, big, {&sid, 1})), 0);
  Result<Context> ctx = registry_.AllocContext(&other_, 1);
  ASSERT_EQ(C(ctx), 0);
  EXPECT_EQ(ctx->page_size(), k64K);
  // 4 KiB-aligned is not enough: nothing is rounded.
  const size_t calls = big.total_calls();
  EXPECT_EQ(C(ctx->Map(0x1000, 0x1000, k64K, kPermRead)), -EINVAL);
  EXPECT_EQ(C(ctx->Map(0x1'0000, 0x1'0000, kPage, kPermRead)), -EINVAL);
  EXPECT_EQ(C(ctx->Unmap(0x1'0000, kPage)), -EINVAL);
  EXPECT_EQ(big.total_calls(), calls);
  EXPECT_EQ(C(ctx->Map(0x1'0000, 0x1'0000, k64K, kPermRead)), 0);
  EXPECT_EQ(C(ctx->Unmap(0x1'0000, k64K)), 0);
  ASSERT_EQ(C(registry_.FreeContext(&other_, 1)), 0);
}

TEST_F(RegistryTest, UnmapErrors) {
  const Context ctx = Alloc(&dma_, 1);
  ASSERT_EQ(C(ctx.Map(0x10'0000, 0x10'0000, 4 * kPage, kPermReadWrite)), 0);
  EXPECT_REFUSED(ctx.Unmap(0x10'0000, 0), -EINVAL);
  EXPECT_REFUSED(ctx.Unmap(0x10'0800, kPage), -EINVAL);
  EXPECT_REFUSED(ctx.Unmap(0x10'0000, kPage / 2), -EINVAL);
  EXPECT_REFUSED(ctx.Unmap(~uint64_t{0} - kPage + 1, 2 * kPage), -EINVAL);
  EXPECT_BACKEND_ERROR(ctx.Unmap(0x20'0000, kPage), -ENOENT);      // nothing there
  EXPECT_BACKEND_ERROR(ctx.Unmap(0x10'3000, 2 * kPage), -ENOENT);  // half mapped
  EXPECT_BACKEND_ERROR(ctx.Unmap(0x0f'f000, 2 * kPage), -ENOENT);  // half mapped
  unit_.FailNext(Op::kUnmap, Status::TimedOut());
  EXPECT_EQ(C(ctx.Unmap(0x10'0000, kPage)), -ETIMEDOUT);  // the backend's, passed through

  // Any page-aligned part of a mapping.
  ASSERT_EQ(C(ctx.Unmap(0x10'1000, 2 * kPage)), 0);
  EXPECT_EQ(*ctx.IovaToPhys(0x10'0000), 0x10'0000U);
  EXPECT_EQ(C(ctx.IovaToPhys(0x10'1000)), -ENOENT);
  EXPECT_EQ(C(ctx.IovaToPhys(0x10'2fff)), -ENOENT);
  EXPECT_EQ(*ctx.IovaToPhys(0x10'3fff), 0x10'3fffU);
}

TEST_F(RegistryTest, IovaToPhysErrors) {
  const Context ctx = Alloc(&dma_, 1);
  EXPECT_EQ(C(ctx.IovaToPhys(0x1000)), -ENOENT);
  EXPECT_EQ(C(ctx.IovaToPhys(uint64_t{1} << 48)), -EINVAL);
}

// ---- Several StreamIDs, shared domains, several units -----------------------------------------

TEST_F(RegistryTest, SeveralStreamIdsOfOneDevice) {
  const Context one = Alloc(&dma_, 1);
  const Context three = Alloc(&dma_, 3);
  EXPECT_FALSE(one == three);
  ASSERT_EQ(C(one.Map(0x1000, 0xa000, kPage, kPermRead)), 0);
  ASSERT_EQ(C(three.Map(0x1000, 0xb000, kPage, kPermRead)), 0);
  EXPECT_EQ(*one.IovaToPhys(0x1000), 0xa000U);
  EXPECT_EQ(*three.IovaToPhys(0x1000), 0xb000U);
  EXPECT_NE(unit_.DomainOf(1), unit_.DomainOf(3));
  EXPECT_EQ(C(registry_.FindContext(&dma_, 2)), -ENOENT);

  ASSERT_EQ(C(registry_.FreeContext(&dma_, 1)), 0);
  EXPECT_EQ(*three.IovaToPhys(0x1000), 0xb000U);
  EXPECT_EQ(*registry_.FindContext(&dma_, 3), three);
  ASSERT_EQ(C(registry_.FreeContext(&dma_, 3)), 0);
}

TEST_F(RegistryTest, SharedDomain) {
  Result<Context> created = registry_.CreateDomain(unit_);
  ASSERT_EQ(C(created), 0);
  const Context ctx = *created;
  ASSERT_EQ(C(registry_.Attach(ctx, &dma_, 1)), 0);
  ASSERT_EQ(C(registry_.Attach(ctx, &nic_, 5)), 0);
  EXPECT_EQ(*registry_.FindContext(&dma_, 1), ctx);
  EXPECT_EQ(*registry_.FindContext(&nic_, 5), ctx);
  EXPECT_EQ(unit_.DomainOf(1), unit_.DomainOf(5));

  // One map, seen through both streams.
  ASSERT_EQ(C(ctx.Map(0x4000, 0x9000, kPage, kPermReadWrite)), 0);
  EXPECT_EQ(*registry_.FindContext(&nic_, 5)->IovaToPhys(0x4000), 0x9000U);

  EXPECT_REFUSED(registry_.FreeContext(&dma_, 1), -EBUSY);  // shared
  EXPECT_REFUSED(registry_.DestroyDomain(ctx), -EBUSY);
  EXPECT_REFUSED(registry_.AllocContext(&dma_, 1), -EEXIST);

  ASSERT_EQ(C(registry_.Detach(ctx, &dma_, 1)), 0);
  EXPECT_EQ(unit_.DomainOf(1), nullptr);
  EXPECT_EQ(C(registry_.FindContext(&dma_, 1)), -ENOENT);
  // The last stream: FreeContext destroys the shared context.
  ASSERT_EQ(C(registry_.FreeContext(&nic_, 5)), 0);
  EXPECT_EQ(unit_.live_domains(), 0U);
  EXPECT_EQ(C(ctx.IovaToPhys(0x4000)), -ENOENT);
}

TEST_F(RegistryTest, SharedDomainErrors) {
  FakeUnit second(FakeUnit::Options{.name = "fake@1"});
  ASSERT_EQ(C(registry_.RegisterUnit(second)), 0);
  const uint32_t sid = 7;
  ASSERT_EQ(C(registry_.BindDevice(&other_, second, {&sid, 1})), 0);
  FakeUnit unregistered(FakeUnit::Options{.name = "fake@2"});
  EXPECT_REFUSED(registry_.CreateDomain(unregistered), -ENOENT);

  const Context ctx = *registry_.CreateDomain(unit_);
  const Context owned = Alloc(&dma_, 2);
  EXPECT_REFUSED(registry_.Attach(ctx, &dma_, 5), -EINVAL);    // not dma's
  EXPECT_REFUSED(registry_.Attach(ctx, nullptr, 1), -EINVAL);  //
  EXPECT_REFUSED(registry_.Attach(ctx, &other_, 7), -EINVAL);  // other is on `second`
  EXPECT_REFUSED(registry_.Attach(ctx, &dma_, 2), -EEXIST);    // has its own context
  EXPECT_REFUSED(registry_.Detach(ctx, &dma_, 1), -ENOENT);    // not attached
  EXPECT_REFUSED(registry_.Detach(ctx, &dma_, 2), -ENOENT);    // attached elsewhere
  EXPECT_REFUSED(registry_.Detach(owned, &dma_, 5), -EINVAL);  // not dma's

  unit_.FailNext(Op::kAttach, Status::NoMemory());
  EXPECT_BACKEND_ERROR(registry_.Attach(ctx, &dma_, 1), -ENOMEM);
  ASSERT_EQ(C(registry_.Attach(ctx, &dma_, 1)), 0);
  unit_.FailNext(Op::kDetach, Status::IoError());
  EXPECT_BACKEND_ERROR(registry_.Detach(ctx, &dma_, 1), -EIO);
  ASSERT_EQ(C(registry_.Detach(ctx, &dma_, 1)), 0);
  unit_.FailNext(Op::kDestroyDomain, Status::TimedOut());
  EXPECT_BACKEND_ERROR(registry_.DestroyDomain(ctx), -ETIMEDOUT);
  EXPECT_EQ(C(ctx.Map(0x1000, 0x1000, kPage, kPermRead)), 0);  // still live
  EXPECT_EQ(C(registry_.DestroyDomain(ctx)), 0);
}

TEST_F(RegistryTest, DetachingTheLastStreamKeepsTheContext) {
  const Context ctx = Alloc(&dma_, 1);
  ASSERT_EQ(C(ctx.Map(0x1000, 0x1000, kPage, kPermRead)), 0);
  ASSERT_EQ(C(registry_.Detach(ctx, &dma_, 1)), 0);
  EXPECT_EQ(C(registry_.FindContext(&dma_, 1)), -ENOENT);
  EXPECT_EQ(*ctx.IovaToPhys(0x1000), 0x1000U);
  // Re-attach it elsewhere, then destroy.
  ASSERT_EQ(C(registry_.Attach(ctx, &nic_, 5)), 0);
  EXPECT_REFUSED(registry_.DestroyDomain(ctx), -EBUSY);
  ASSERT_EQ(C(registry_.Detach(ctx, &nic_, 5)), 0);
  ASSERT_EQ(C(registry_.DestroyDomain(ctx)), 0);
  EXPECT_EQ(unit_.live_domains(), 0U);
}

TEST_F(RegistryTest, DetachAfterFailedReclaimOnlyForgets) {
  const Context ctx = Alloc(&dma_, 1);
  unit_.FailNext(Op::kDestroyDomain, Status::TimedOut());
  ASSERT_EQ(C(registry_.FreeContext(&dma_, 1)), -ETIMEDOUT);
  const size_t detaches = unit_.calls(Op::kDetach);
  ASSERT_EQ(C(registry_.Detach(ctx, &dma_, 1)), 0);
  EXPECT_EQ(unit_.calls(Op::kDetach), detaches);
  EXPECT_EQ(C(registry_.FindContext(&dma_, 1)), -ENOENT);
  ASSERT_EQ(C(registry_.DestroyDomain(ctx)), 0);
  EXPECT_EQ(unit_.live_domains(), 0U);
}

TEST_F(RegistryTest, SeveralUnits) {
  FakeUnit big(FakeUnit::Options{.name = "fake64k", .page_sizes = 1ULL << 16});
  ASSERT_EQ(C(registry_.RegisterUnit(big)), 0);
  const uint32_t sids[] = {1, 5};  // the same numbers as dma's and nic's, on another unit
  ASSERT_EQ(C(registry_.BindDevice(&other_, big, sids)), 0);

  const Context small_ctx = Alloc(&dma_, 1);
  const Context big_ctx = Alloc(&other_, 1);
  EXPECT_EQ(small_ctx.unit(), &unit_);
  EXPECT_EQ(big_ctx.unit(), &big);
  EXPECT_EQ(small_ctx.page_size(), kPage);
  EXPECT_EQ(big_ctx.page_size(), k64K);
  EXPECT_EQ(unit_.live_domains(), 1U);
  EXPECT_EQ(big.live_domains(), 1U);
  ASSERT_EQ(C(big_ctx.Map(0, 0x10'0000, k64K, kPermRead)), 0);
  EXPECT_EQ(C(small_ctx.IovaToPhys(0)), -ENOENT);
  EXPECT_REFUSED(registry_.Attach(big_ctx, &nic_, 5), -EINVAL);  // nic is on unit_

  ASSERT_EQ(C(registry_.FreeContext(&other_, 1)), 0);
  EXPECT_EQ(big.live_domains(), 0U);
  EXPECT_EQ(unit_.live_domains(), 1U);
  ASSERT_EQ(C(registry_.FreeContext(&dma_, 1)), 0);
}

// ---- Faults -----------------------------------------------------------------------------------

struct Received {
  int calls = 0;
  Fault last{};
};

void Record(const deviso_fault* fault, void* user) {
  auto* received = static_cast<Received*>(user);
  ++received->calls;
  received->last = *fault;
}

Fault WriteFault(Iova iova) {
  Fault fault{};
  fault.reason = DEVISO_FAULT_TRANSLATION;
  fault.flags = DEVISO_FAULT_WRITE | DEVISO_FAULT_ADDR_VALID;
  fault.raw_type = 0x10;
  fault.iova = iova;
  return fault;
}

TEST_F(RegistryTest, FaultsAreCountedAndDelivered) {
  if constexpr (!config::kFaultReports) GTEST_SKIP() << "DEVISO_CONFIG_FAULT_REPORTS=OFF";
  const Context ctx = Alloc(&dma_, 2);
  Received received;
  ASSERT_EQ(C(ctx.SetFaultHandler(Record, &received)), 0);
  ASSERT_TRUE(unit_.RaiseFault(2, WriteFault(0x4010'0000)));
  EXPECT_EQ(received.calls, 1);
  EXPECT_EQ(received.last.sid, 2U);
  EXPECT_EQ(received.last.iova, 0x4010'0000U);
  EXPECT_STREQ(received.last.unit, "fake@0");
  EXPECT_EQ(*ctx.fault_count(), 1U);
  EXPECT_EQ(*ctx.suppressed_fault_count(), 0U);

  // Another stream's faults are not this context's.
  EXPECT_FALSE(unit_.RaiseFault(1, WriteFault(0)));
  EXPECT_EQ(unit_.unrouted_faults(), 1U);
  EXPECT_EQ(*ctx.fault_count(), 1U);
}

TEST_F(RegistryTest, FaultsWithoutHandlerAreCounted) {
  if constexpr (!config::kFaultReports) GTEST_SKIP() << "DEVISO_CONFIG_FAULT_REPORTS=OFF";
  const Context ctx = Alloc(&dma_, 2);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(unit_.RaiseFault(2, WriteFault(0)));
  }
  EXPECT_EQ(*ctx.fault_count(), 5U);
  EXPECT_EQ(*ctx.suppressed_fault_count(), 0U);  // nothing to suppress
}

TEST_F(RegistryTest, FaultCallbacksAreRateLimited) {
  if constexpr (!config::kFaultReports) GTEST_SKIP() << "DEVISO_CONFIG_FAULT_REPORTS=OFF";
  // The limiter reads a clock that stands still unless told (ports/host/test_clock.h): how
  // fast the machine runs the storm changes nothing.
  deviso::port::host::TestClock clock;
  const Context ctx = Alloc(&dma_, 2);
  Received received;
  ASSERT_EQ(C(ctx.SetFaultHandler(Record, &received)), 0);
  // A storm far faster than the refill rate (16 a second): the burst of 16 gets through.
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(unit_.RaiseFault(2, WriteFault(uint64_t{0x1000} * i)));
  }
  EXPECT_EQ(received.calls, 16);
  EXPECT_EQ(*ctx.fault_count(), 100U);
  EXPECT_EQ(*ctx.suppressed_fault_count(), 84U);
  // 1/16 s later one token is back.
  clock.Advance(62'500'000);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(unit_.RaiseFault(2, WriteFault(0)));
  }
  EXPECT_EQ(received.calls, 17);
  EXPECT_EQ(*ctx.suppressed_fault_count(), 85U);
}

TEST_F(RegistryTest, FaultRateIsConfigurable) {
  if constexpr (!config::kFaultReports) GTEST_SKIP() << "DEVISO_CONFIG_FAULT_REPORTS=OFF";
  deviso::port::host::TestClock clock;  // stands still: no token comes back during the test
  const Context ctx = Alloc(&dma_, 2);
  Received received;
  EXPECT_REFUSED(ctx.SetFaultHandler(Record, &received, 0), -EINVAL);
  ASSERT_EQ(C(ctx.SetFaultHandler(Record, &received, 3)), 0);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(unit_.RaiseFault(2, WriteFault(0)));
  }
  EXPECT_EQ(received.calls, 3);
  EXPECT_EQ(*ctx.suppressed_fault_count(), 7U);

  // Installing a handler starts a full bucket.
  Received second;
  ASSERT_EQ(C(ctx.SetFaultHandler(Record, &second, 1000)), 0);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(unit_.RaiseFault(2, WriteFault(0)));
  }
  EXPECT_EQ(second.calls, 10);
  EXPECT_EQ(received.calls, 3);
}

TEST_F(RegistryTest, RemovedHandlerIsNotCalled) {
  if constexpr (!config::kFaultReports) GTEST_SKIP() << "DEVISO_CONFIG_FAULT_REPORTS=OFF";
  const Context ctx = Alloc(&dma_, 2);
  Received received;
  ASSERT_EQ(C(ctx.SetFaultHandler(Record, &received)), 0);
  ASSERT_TRUE(unit_.RaiseFault(2, WriteFault(0)));
  ASSERT_EQ(C(ctx.SetFaultHandler(nullptr, nullptr)), 0);
  ASSERT_TRUE(unit_.RaiseFault(2, WriteFault(0)));
  EXPECT_EQ(received.calls, 1);
  EXPECT_EQ(*ctx.fault_count(), 2U);
}

TEST_F(RegistryTest, NewContextStartsWithNoFaultsAndNoHandler) {
  if constexpr (!config::kFaultReports) GTEST_SKIP() << "DEVISO_CONFIG_FAULT_REPORTS=OFF";
  Context ctx = Alloc(&dma_, 2);
  Received received;
  ASSERT_EQ(C(ctx.SetFaultHandler(Record, &received)), 0);
  ASSERT_TRUE(unit_.RaiseFault(2, WriteFault(0)));
  ASSERT_EQ(C(registry_.FreeContext(&dma_, 2)), 0);
  ctx = Alloc(&dma_, 2);
  EXPECT_EQ(*ctx.fault_count(), 0U);
  ASSERT_TRUE(unit_.RaiseFault(2, WriteFault(0)));
  EXPECT_EQ(received.calls, 1);
  EXPECT_EQ(*ctx.fault_count(), 1U);
}

TEST_F(RegistryTest, SharedDomainCountsFaultsOfEveryStream) {
  if constexpr (!config::kFaultReports) GTEST_SKIP() << "DEVISO_CONFIG_FAULT_REPORTS=OFF";
  const Context ctx = *registry_.CreateDomain(unit_);
  ASSERT_EQ(C(registry_.Attach(ctx, &dma_, 1)), 0);
  ASSERT_EQ(C(registry_.Attach(ctx, &nic_, 5)), 0);
  Received received;
  ASSERT_EQ(C(ctx.SetFaultHandler(Record, &received)), 0);
  ASSERT_TRUE(unit_.RaiseFault(1, WriteFault(0)));
  ASSERT_TRUE(unit_.RaiseFault(5, WriteFault(0)));
  EXPECT_EQ(*ctx.fault_count(), 2U);
  EXPECT_EQ(received.calls, 2);
  EXPECT_EQ(received.last.sid, 5U);
}

// Built without fault reports (DEVISO_CONFIG_FAULT_REPORTS=OFF, the minimal profile): the calls
// say so, after the checks every call makes.
TEST_F(RegistryTest, FaultReportsCompiledOutAreNotSupported) {
  if constexpr (config::kFaultReports) GTEST_SKIP() << "fault reports are built";
  const Context ctx = Alloc(&dma_, 2);
  Received received;
  EXPECT_REFUSED(ctx.SetFaultHandler(Record, &received, 0), -EINVAL);
  EXPECT_REFUSED(ctx.SetFaultHandler(Record, &received), -ENOTSUP);
  EXPECT_REFUSED(ctx.fault_count(), -ENOTSUP);
  EXPECT_REFUSED(ctx.suppressed_fault_count(), -ENOTSUP);
  // A backend that reports anyway reaches nobody.
  ASSERT_TRUE(unit_.RaiseFault(2, WriteFault(0)));
  EXPECT_EQ(received.calls, 0);
  ASSERT_EQ(C(registry_.FreeContext(&dma_, 2)), 0);
  EXPECT_REFUSED(ctx.fault_count(), -ENOENT);
}

}  // namespace
}  // namespace deviso
