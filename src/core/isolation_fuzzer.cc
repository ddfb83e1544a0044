// libFuzzer target: isolation over the whole stack. The fuzzer's bytes drive a sequence of C API
// calls (deviso_device_bind/unbind, deviso_ctx_alloc/free, deviso_map, deviso_map_iova,
// deviso_unmap at random sizes, alignments, permissions and attributes) through
// Registry::Default() into the real SMMUv3 driver over its host model (SmmuModel), with hardware
// faults injected between calls (a CMD_SYNC that stalls or is slow, a command fetch abort, an
// illegal command, CMDQ_CONS glitches, a device that is gone for one call, STE/CD fetch aborts,
// event floods), and device reads and writes through the model at random addresses.
//
// The judgement is a reference of what each StreamID may reach, page by page, checked around
// every call and by every device access:
//  - an access succeeds exactly when the reference allows it, with the permission it allows, and
//    a write lands (a read reads) at the physical page the reference names;
//  - a call refused for bad arguments (or on a broken unit) changed nothing: the pages around
//    the call's range answer as before;
//  - a call failed by the hardware leaves what docs/smmuv3.md's "Error-path contract" states: an
//    unmap's range may still be reachable through cached entries (old address, old permission:
//    either outcome is allowed until a later unmap of it returns 0); a ctx_free that failed
//    leaves the context usable but its stream may be blocked already (an access may fault);
//    map and ctx_alloc changed nothing;
//  - a broken unit refuses every call on its contexts with -EIO, and a call a valid reference
//    says must work returns 0, -ENOMEM or a hardware error, nothing else.
//
// Seeds: isolation_fuzzer_corpus/. scripts/fuzz isolation_fuzzer SECONDS | CRASH_FILE.

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "deviso/deviso.h"
#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "ports/host/test_clock.h"
#include "smmuv3/smmuv3.h"
#include "smmuv3/testing/registry_rig.h"
#include "smmuv3/testing/smmu_model.h"
#include "testing/sim_memory.h"

namespace deviso {
namespace {

using Model = smmuv3::testing::SmmuModel;
using Rig = smmuv3::testing::RegistryRig;
using deviso::testing::SimPhysMemory;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kBlock = 2u << 20;
constexpr const char* kUnitName = "smmuv3@fuzz";
constexpr uint64_t kIovaBase = 0x1000'0000;  // deviso_map_iova's window: two 2 MiB blocks
constexpr uint64_t kIovaPages = 2 * kBlock / kPage;
constexpr uint32_t kSids[] = {1, 2, 3, 5};  // dev 0: 1, 2; dev 1: 3; 5 belongs to nobody
constexpr size_t kStreams = 3;

// A broken invariant: the line, then abort (libFuzzer keeps the input).
void CheckAt(bool ok, int line) {
  if (ok) return;
  std::fprintf(stderr, "isolation_fuzzer: invariant at isolation_fuzzer.cc:%d broken\n", line);
  std::abort();
}
#define Check(ok) CheckAt((ok), __LINE__)

// ISO_FUZZ_TRACE=1 prints every call and its result (reproducing a crash).
bool Tracing() {
  static const bool on = std::getenv("ISO_FUZZ_TRACE") != nullptr;
  return on;
}
#define TRACE(...)                                    \
  do {                                                \
    if (Tracing()) std::fprintf(stderr, __VA_ARGS__); \
  } while (0)

// One way a page may be reached.
struct Way {
  Paddr pa = 0;
  uint32_t perms = 0;  // DEVISO_PERM_READ | DEVISO_PERM_WRITE
};

// A page of a stream's address space. Absent from the map: certainly unreachable.
struct Page {
  bool certain = true;    // exactly ways[0] (mapped); else any of ways, or a fault
  std::vector<Way> ways;  // 1 when certain
};

struct Stream {
  bool has_ctx = false;
  bool may_be_blocked = false;  // a ctx_free failed after the stream may have been blocked
  // An unmap failed by the hardware: the invalidation is owed, and a table it emptied and
  // unlinked may still be cached by the walker, so a page mapped later in the range that table
  // covered (up to the whole address space) may fault until the context is freed. It never
  // reaches anything else.
  bool owing = false;
  // The range an unmap failed by the hardware left owed (the hull of such ranges, as the
  // error-path contract records it on the domain): an unmap whose holes lie in it converges
  // (0), never -ENOENT. Covered by a successful unmap, or wholly mapped over, it is settled.
  uint64_t owed_start = 0;
  uint64_t owed_end = 0;
  std::map<uint64_t, Page> pages;  // by iova / kPage
};

class Run {
 public:
  explicit Run(FuzzedDataProvider& in) : in_(in) {}
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  void Go() {
    Check(rig_.Start(true).ok());
    // The memory devices are given: one 2 MiB block the unit never allocates from (its own
    // structures come from the rest of the DMA region, and -EPERM is tried there).
    Result<DmaBuffer> b = mem_.dma().Allocate(kBlock, kBlock);
    Check(b.ok());
    buf_ = b->pa;
    Check(Registry::Default().RegisterUnit(*smmu_).ok());
    for (size_t d = 0; d < 2; ++d) Check(Bind(d) == 0);
    for (int step = 0; step < 96 && in_.remaining_bytes() > 0; ++step) Step();
    // A last sweep: every page the reference knows, on every stream.
    for (size_t s = 0; s < kStreams; ++s) {
      const std::map<uint64_t, Page> pages = streams_[s].pages;
      for (const auto& [pg, page] : pages) {
        Access(s, pg * kPage, false);
        Access(s, pg * kPage + kPage - 8, true);
      }
    }
  }

 private:
  static size_t DevOf(size_t stream) { return stream < 2 ? 0 : 1; }
  const device* Dev(size_t d) const { return &devs_[d]; }

  int Bind(size_t d) {
    static constexpr uint32_t kDev0[] = {1, 2};
    static constexpr uint32_t kDev1[] = {3};
    return d == 0 ? deviso_device_bind(Dev(0), kUnitName, kDev0, 2)
                  : deviso_device_bind(Dev(1), kUnitName, kDev1, 1);
  }

  // A random page-aligned (usually) size: small runs, sometimes a whole block.
  uint64_t Size() {
    switch (in_.ConsumeIntegralInRange<int>(0, 15)) {
      case 0:
        return 0;
      case 1:
        return kBlock;
      case 2:
        return in_.ConsumeIntegralInRange<uint64_t>(1, 3 * kPage);  // any alignment
      case 3:
        return in_.ConsumeIntegralInRange<uint64_t>(1, 512) * kPage;
      default:
        return in_.ConsumeIntegralInRange<uint64_t>(1, 8) * kPage;
    }
  }
  // A random offset into a window of `pages` pages: page-aligned, sometimes block-aligned,
  // sometimes not aligned at all.
  uint64_t Offset(uint64_t pages) {
    switch (in_.ConsumeIntegralInRange<int>(0, 11)) {
      case 0:
        return in_.ConsumeIntegralInRange<uint64_t>(0, pages * kPage / kBlock - 1) * kBlock;
      case 1:
        return in_.ConsumeIntegralInRange<uint64_t>(0, pages * kPage - 1);
      default:
        return in_.ConsumeIntegralInRange<uint64_t>(0, pages - 1) * kPage;
    }
  }

  bool UnitBroken() const { return smmu_->broken(); }
  static bool Aligned(uint64_t a, uint64_t size) {
    return size != 0 && a % kPage == 0 && size % kPage == 0;
  }
  static bool HwError(int rc) { return rc == -ETIMEDOUT || rc == -EIO; }

  // ---- Device accesses ----------------------------------------------------------------------

  // One 8-byte device access of stream index s (kStreams: the unowned StreamID) at iova, judged
  // against the reference.
  void Access(size_t s, uint64_t iova, bool write) {
    const uint32_t sid = kSids[s];
    std::vector<Way> allowed;
    bool may_fail = false;
    if (s < kStreams && streams_[s].has_ctx) {
      const Stream& st = streams_[s];
      may_fail = st.may_be_blocked || st.owing;
      const auto it = st.pages.find(iova / kPage);
      if (it != st.pages.end()) {
        may_fail = may_fail || !it->second.certain;
        for (const Way& w : it->second.ways) {
          if ((w.perms & (write ? DEVISO_PERM_WRITE : DEVISO_PERM_READ)) != 0) allowed.push_back(w);
        }
      }
    }
    const uint64_t off = iova % kPage;
    uint64_t value = ++serial_ * 0x9E37'79B9'7F4A'7C15ull;
    Status st;
    if (write) {
      st = model_.DeviceWrite(sid, iova, &value, sizeof value);
    } else {
      st = model_.DeviceRead(sid, iova, &value, sizeof value);
    }
    TRACE("  %s sid %u @%#llx: %s (allowed %zu, may_fail %d)\n", write ? "write" : "read", sid,
          static_cast<unsigned long long>(iova), st.ok() ? "ok" : "fault", allowed.size(),
          may_fail);
    if (st.ok()) {
      bool landed = false;
      for (const Way& w : allowed) {
        uint64_t there = 0;
        Check(mem_.UnitRead(w.pa + off, &there, sizeof there));
        landed = landed || there == value;
      }
      Check(landed);  // reached only what the reference allows, at the page it names
      return;
    }
    if (allowed.empty() || may_fail) return;
    if (Tracing()) {
      const auto events = model_.recent_events();
      if (!events.empty()) TRACE("  last event 0x%x\n", events.back().type());
    }
    // Refused although the reference allows it: only an injected STE/CD fetch abort may do this.
    Check(fetch_aborts_ > 0);
    --fetch_aborts_;
  }

  // The pages around [iova, iova + size) of stream s: both ends and their outer neighbours.
  void Around(size_t s, uint64_t iova, uint64_t size) {
    if (size == 0) size = 1;
    const uint64_t first = iova & ~(kPage - 1);
    const uint64_t last = (iova + size - 1) & ~(kPage - 1);
    for (const uint64_t a : {first - kPage, first, last, last + kPage}) {
      Access(s, a + 8 * in_.ConsumeIntegralInRange<uint64_t>(0, kPage / 8 - 1), in_.ConsumeBool());
    }
  }

  // ---- Hardware faults between calls ---------------------------------------------------------

  struct Injection {
    bool stall = false;
    bool gone = false;
    bool slow = false;
  };
  Injection Inject() {
    Injection inj;
    if (in_.ConsumeIntegral<uint8_t>() < 232 || UnitBroken()) return inj;
    const int what = in_.ConsumeIntegralInRange<int>(0, 8);
    TRACE("inject %d\n", what);
    switch (what) {
      case 0:
        model_.SetCmdSyncStall(true);
        inj.stall = true;
        break;
      case 1:
        model_.SetCmdSyncPolls(in_.ConsumeIntegralInRange<unsigned>(1, 400));
        inj.slow = true;
        break;
      case 2:
        model_.InjectCommandFetchAbort();
        break;
      case 3: {
        static constexpr uint8_t kOps[] = {
            smmuv3::testing::layout::cmd::kSync, smmuv3::testing::layout::cmd::kTlbiNhVa,
            smmuv3::testing::layout::cmd::kTlbiNhAsid, smmuv3::testing::layout::cmd::kCfgiSte,
            smmuv3::testing::layout::cmd::kCfgiCd};
        model_.InjectIllegalCommand(kOps[in_.ConsumeIntegralInRange<size_t>(0, 4)]);
        break;
      }
      case 4:
        model_.InjectCmdqConsGlitch(
            in_.ConsumeBool() ? Model::Glitch::kAllOnes : Model::Glitch::kBackwards,
            in_.ConsumeIntegralInRange<unsigned>(1, 3));
        break;
      case 5:
        model_.SetDeviceGone(true);
        inj.gone = true;
        break;
      case 6:
        model_.InjectSteFetchAbort();
        ++fetch_aborts_;
        break;
      case 7:
        model_.InjectCdFetchAbort();
        ++fetch_aborts_;
        break;
      default:
        model_.FloodEvents(kSids[in_.ConsumeIntegralInRange<size_t>(0, 3)],
                           in_.ConsumeIntegralInRange<unsigned>(1, 80));
        break;
    }
    return inj;
  }
  void Lift(const Injection& inj) {
    if (inj.stall) model_.SetCmdSyncStall(false);
    if (inj.slow) model_.SetCmdSyncPolls(0);
    if (inj.gone) model_.SetDeviceGone(false);
  }

  // ---- Calls ---------------------------------------------------------------------------------

  void Step() {
    const int op = in_.ConsumeIntegralInRange<int>(0, 9);
    const uint8_t pick = in_.ConsumeIntegralInRange<uint8_t>(0, 7);
    const size_t s = pick == 7 ? kStreams : pick % kStreams;  // kStreams: sid 5
    const uint32_t sid = kSids[s];
    const size_t d = s < kStreams ? DevOf(s) : in_.ConsumeIntegralInRange<size_t>(0, 1);
    // The call names (d, sid); it is valid when d is bound and owns sid.
    const bool owned = bound_[d] && s < kStreams && DevOf(s) == d;
    const Injection inj = op <= 6 ? Inject() : Injection{};
    const bool broken = UnitBroken();
    switch (op) {
      case 0:
        CtxAlloc(s, d, sid, owned, broken);
        break;
      case 1:
        CtxFree(s, d, sid, owned, broken);
        break;
      case 2:
      case 3:
        MapIova(s, d, sid, owned, broken);
        break;
      case 4:
        MapIdentity(s, d, sid, owned, broken);
        break;
      case 5:
      case 6:
        Unmap(s, d, sid, owned, broken);
        break;
      case 7:
        BindOrUnbind(d);
        break;
      default: {
        // Device DMA at a random address: mostly where maps go, sometimes anywhere.
        const uint64_t iova = in_.ConsumeBool()
                                  ? (in_.ConsumeBool() ? kIovaBase : buf_) + Offset(kIovaPages / 2)
                                  : in_.ConsumeIntegral<uint64_t>() & ((1ull << 44) - 1);
        Access(s, iova & ~7ull, in_.ConsumeBool());
        break;
      }
    }
    Lift(inj);
    // Once broken, the unit stays broken (there is no Recover() here).
    if (broken) Check(UnitBroken());
  }

  void CtxAlloc(size_t s, size_t d, uint32_t sid, bool owned, bool broken) {
    const int rc = deviso_ctx_alloc(Dev(d), sid);
    TRACE("ctx_alloc(dev%zu, %u) = %d broken=%d\n", d, sid, rc, broken);
    if (!owned) {
      Check(rc == -EINVAL);
    } else if (streams_[s].has_ctx) {
      Check(rc == -EEXIST);
    } else if (broken) {
      Check(rc == -EIO);
    } else {
      Check(rc == 0 || rc == -ENOMEM || HwError(rc));
      if (rc == 0) streams_[s] = Stream{.has_ctx = true};
    }
    Around(s, buf_, kPage);
  }

  void CtxFree(size_t s, size_t d, uint32_t sid, bool owned, bool broken) {
    const int rc = deviso_ctx_free(Dev(d), sid);
    TRACE("ctx_free(dev%zu, %u) = %d broken=%d\n", d, sid, rc, broken);
    if (!owned) {
      Check(rc == -EINVAL);
    } else if (!streams_[s].has_ctx) {
      Check(rc == -ENOENT);
    } else if (broken) {
      Check(rc == -EIO);
    } else {
      Check(rc == 0 || HwError(rc));
      if (rc == 0) {
        streams_[s] = Stream{};
        maps_[s].clear();
      } else {
        // The context stays, usable; its stream may already be blocked.
        streams_[s].may_be_blocked = true;
      }
    }
    Around(s, buf_, kPage);
  }

  uint32_t Flags() {
    if (in_.ConsumeIntegral<uint8_t>() < 16) return in_.ConsumeIntegral<uint32_t>();  // anything
    uint32_t f = in_.ConsumeIntegralInRange<uint32_t>(0, 7);
    f |= in_.ConsumeIntegralInRange<uint32_t>(0, 3) << DEVISO_ATTR_SHIFT;
    return f;
  }

  // Whether [iova, iova + size) of stream s overlaps anything (certain == false: only doubtful
  // pages, which a map may or may not find mapped).
  int Overlap(size_t s, uint64_t iova, uint64_t size) const {
    int worst = 0;  // 0: free, 1: doubtful pages only, 2: certainly mapped
    const auto& pages = streams_[s].pages;
    for (auto it = pages.lower_bound(iova / kPage);
         it != pages.end() && it->first * kPage < iova + size; ++it) {
      worst = std::max(worst, it->second.certain ? 2 : 1);
    }
    return worst;
  }

  void Record(size_t s, uint64_t iova, Paddr pa, uint64_t size, uint32_t perms) {
    for (uint64_t o = 0; o < size; o += kPage) {
      Page& p = streams_[s].pages[(iova + o) / kPage];
      const Way w{pa + o, perms & DEVISO_PERM_RW};
      if (p.ways.empty()) {
        p = Page{.certain = true, .ways = {w}};
      } else {
        // Over a doubtful page: the old translation may still be cached.
        p.certain = false;
        if (p.ways.size() < 8) p.ways.push_back(w);
      }
    }
  }

  // The common judgement of deviso_map / deviso_map_iova. `pa_ok`: the physical range is device
  // memory (false: it overlaps the unit's own memory, -EPERM).
  void JudgeMap(int rc, size_t s, bool owned, bool broken, uint64_t iova, Paddr pa, uint64_t size,
                uint32_t flags, bool pa_ok) {
    const uint32_t perms = flags & (DEVISO_PERM_RW | DEVISO_PERM_EXEC);
    const bool flags_ok = (flags & ~(DEVISO_PERM_RW | DEVISO_PERM_EXEC | DEVISO_ATTR_MASK)) == 0 &&
                          (flags & DEVISO_PERM_RW) != 0 &&
                          (flags & DEVISO_PERM_RW) != DEVISO_PERM_WRITE;
    const bool args_ok = Aligned(iova, size) && pa % kPage == 0;
    const int overlap = owned && streams_[s].has_ctx ? Overlap(s, iova, size) : 0;
    if (rc == 0) {
      // Only a call every check lets through may succeed.
      Check(owned && streams_[s].has_ctx && !broken && flags_ok && args_ok && pa_ok &&
            overlap < 2 && !smmu_->UsesMemory(pa, size));
      Record(s, iova, pa, size, perms);
      if (maps_[s].size() < 16) maps_[s].emplace_back(iova, size);
      Stream& st = streams_[s];
      if (iova <= st.owed_start && st.owed_end <= iova + size) st.owed_start = st.owed_end = 0;
      return;
    }
    if (!owned) Check(rc == -EINVAL);
    if (owned && !streams_[s].has_ctx) Check(rc == -ENOENT);
    if (owned && streams_[s].has_ctx && broken) {
      Check(rc == -EIO || (!(flags_ok && args_ok) && (rc == -EINVAL || rc == -ENOTSUP)));
    }
    if (owned && streams_[s].has_ctx && !broken && flags_ok && args_ok && pa_ok && overlap == 0) {
      // A valid map may fail only for want of tables or by the hardware.
      Check(rc == -ENOMEM || HwError(rc));
    }
    (void)perms;
  }

  void MapIova(size_t s, size_t d, uint32_t sid, bool owned, bool broken) {
    const uint64_t size = Size();
    const uint64_t iova = kIovaBase + Offset(kIovaPages);
    Paddr pa = buf_ + Offset(kBlock / kPage);
    bool pa_ok = true;
    if (in_.ConsumeIntegral<uint8_t>() < 24) {
      // The unit's own memory (the DMA region below the devices' block), when it is the unit's.
      pa = mem_.base() + in_.ConsumeIntegralInRange<uint64_t>(0, buf_ - mem_.base() - 1);
      pa &= ~(kPage - 1);
      if (!smmu_->UsesMemory(pa, kPage)) return;
      pa_ok = false;
    } else if (pa + size > buf_ + kBlock) {
      return;  // past the devices' block: not ours to give
    }
    const uint32_t flags = Flags();
    const int rc = deviso_map_iova(Dev(d), sid, iova, pa, static_cast<size_t>(size), flags);
    TRACE("map_iova(dev%zu, %u, %#llx, %#llx, %#llx, %#x) = %d broken=%d\n", d, sid,
          static_cast<unsigned long long>(iova), static_cast<unsigned long long>(pa),
          static_cast<unsigned long long>(size), flags, rc, broken);
    JudgeMap(rc, s, owned, broken, iova, pa, size, flags, pa_ok);
    Around(s, iova, size);
  }

  void MapIdentity(size_t s, size_t d, uint32_t sid, bool owned, bool broken) {
    const uint64_t size = Size();
    const Paddr pa = buf_ + Offset(kBlock / kPage);
    if (pa + size > buf_ + kBlock) return;  // not ours to give
    const int rc = deviso_map(Dev(d), sid, pa, static_cast<size_t>(size));
    TRACE("map(dev%zu, %u, %#llx, %#llx) = %d broken=%d\n", d, sid,
          static_cast<unsigned long long>(pa), static_cast<unsigned long long>(size), rc, broken);
    JudgeMap(rc, s, owned, broken, pa, pa, size, DEVISO_PERM_RW, true);
    Around(s, pa, size);
  }

  void Unmap(size_t s, size_t d, uint32_t sid, bool owned, bool broken) {
    uint64_t size = Size();
    uint64_t iova = in_.ConsumeBool() ? kIovaBase + Offset(kIovaPages) : buf_ + Offset(512);
    if (s < kStreams && !maps_[s].empty() && in_.ConsumeIntegral<uint8_t>() < 192) {
      // A range an earlier map of this stream covered: all of it, or a page-aligned part.
      const auto& [base, len] =
          maps_[s][in_.ConsumeIntegralInRange<size_t>(0, maps_[s].size() - 1)];
      const uint64_t pages = len / kPage;
      const uint64_t first =
          in_.ConsumeBool() ? 0 : in_.ConsumeIntegralInRange<uint64_t>(0, pages - 1);
      const uint64_t n = in_.ConsumeBool() ? pages - first
                                           : in_.ConsumeIntegralInRange<uint64_t>(1, pages - first);
      iova = base + first * kPage;
      size = n * kPage;
    }
    const int rc = deviso_unmap(Dev(d), sid, iova, static_cast<size_t>(size));
    TRACE("unmap(dev%zu, %u, %#llx, %#llx) = %d broken=%d\n", d, sid,
          static_cast<unsigned long long>(iova), static_cast<unsigned long long>(size), rc, broken);
    if (!owned) {
      Check(rc == -EINVAL);
    } else if (!streams_[s].has_ctx) {
      Check(rc == -ENOENT);
    } else if (broken) {
      Check(rc == -EIO || (!Aligned(iova, size) && rc == -EINVAL));
    } else if (!Aligned(iova, size)) {
      Check(rc == -EINVAL);
    } else {
      Stream& st = streams_[s];
      auto& pages = st.pages;
      bool all_known = true;   // every page mapped (or doubtful)
      bool holes_owed = true;  // every page that is not lies in the owed range
      for (uint64_t pg = iova / kPage; pg < (iova + size) / kPage; ++pg) {
        if (pages.count(pg) != 0) continue;
        all_known = false;
        holes_owed = holes_owed && pg * kPage >= st.owed_start && pg * kPage < st.owed_end;
      }
      if (rc == 0) {
        // Strict: nothing of the range is reachable any more. A range with holes must be
        // refused unless they lie in the owed range.
        Check(all_known || holes_owed);
        pages.erase(pages.lower_bound(iova / kPage), pages.lower_bound((iova + size) / kPage));
        if (iova <= st.owed_start && st.owed_end <= iova + size) st.owed_start = st.owed_end = 0;
      } else if (HwError(rc)) {
        // The entries may be cleared while cached ones still reach them.
        st.owing = true;
        for (auto it = pages.lower_bound(iova / kPage);
             it != pages.end() && it->first < (iova + size) / kPage; ++it) {
          it->second.certain = false;
        }
        if (st.owed_end <= st.owed_start) {
          st.owed_start = iova;
          st.owed_end = iova + size;
        } else {
          st.owed_start = std::min(st.owed_start, iova);
          st.owed_end = std::max(st.owed_end, iova + size);
        }
      } else {
        Check(rc == -ENOENT || rc == -ENOMEM || rc == -ENOTSUP);
        // -ENOENT only for a range with a hole outside the owed range (a retry converges).
        if (rc == -ENOENT) Check(!all_known && !holes_owed);
      }
    }
    Around(s, iova, size);
  }

  void BindOrUnbind(size_t d) {
    if (bound_[d]) {
      const int rc = deviso_device_unbind(Dev(d));
      bool busy = false;
      for (size_t s = 0; s < kStreams; ++s) busy = busy || (DevOf(s) == d && streams_[s].has_ctx);
      Check(rc == (busy ? -EBUSY : 0));
      if (rc == 0) bound_[d] = false;
    } else {
      Check(Bind(d) == 0);
      bound_[d] = true;
    }
  }

  FuzzedDataProvider& in_;
  port::host::TestClock clock_{1'000};  // deadlines are numbers of polls
  // The C API's registry over the SMMUv3 and its model (renewed when the run ends).
  Rig rig_{[] {
    Rig::Options o;
    o.memory.dma_bytes = 4u << 20;
    o.memory.tables_4k_bytes = 512u << 10;
    o.memory.tables_64k_bytes = 64u << 10;
    o.smmu.name = kUnitName;
    o.smmu.dma_coherent = true;
    o.smmu.timeout_ns = 200'000;  // 200 readings of the stepping clock
    o.smmu.eventq_log2 = 6;
    o.default_registry = true;
    return o;
  }()};
  SimPhysMemory& mem_ = rig_.memory;
  Model& model_ = rig_.model;
  std::unique_ptr<smmuv3::Smmuv3>& smmu_ = rig_.smmu;
  device devs_[2] = {{"dev0"}, {"dev1"}};
  bool bound_[2] = {true, true};
  Stream streams_[kStreams];
  std::vector<std::pair<uint64_t, uint64_t>> maps_[kStreams];  // (iova, size) of recent maps
  Paddr buf_ = 0;
  uint64_t serial_ = 0;
  unsigned fetch_aborts_ = 0;
};

}  // namespace
}  // namespace deviso

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool silenced = deviso::port::host::SetLogSilenced(true) || true;
  (void)silenced;
  FuzzedDataProvider in(data, size);
  deviso::Run(in).Go();
  return 0;
}
