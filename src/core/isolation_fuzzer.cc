// libFuzzer target: isolation over the whole stack. The fuzzer's bytes drive a sequence of C API
// calls (deviso_device_bind/unbind, deviso_ctx_alloc/free, deviso_map, deviso_map_iova,
// deviso_unmap at random sizes, alignments, permissions and attributes, and the unit's
// Recover()) through Registry::Default() into one of two backends, chosen by the input's first
// byte (even: SMMUv3, odd: virtio-iommu):
//  - the real SMMUv3 driver over its host model (SmmuModel), with hardware faults injected
//    between calls (a CMD_SYNC that stalls or is slow, a command fetch abort, an illegal
//    command, CMDQ_CONS glitches, a device that is gone for one call, STE/CD fetch aborts,
//    event floods), device reads and writes through the model;
//  - the real virtio-iommu driver over its fake device (FakeVirtioIommu), with device errors
//    (FailNext with a defined status), a hung device, hostile answers (out of order, twice,
//    past the buffer, unknown status, used length too large, used.idx backwards, lost) and
//    DEVICE_NEEDS_RESET injected, device reads and writes through the fake's translation.
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
//    on virtio-iommu a Map failed by the device may leave its pages reachable (the device may
//    have carried out part of it) until a Recover() resets it, and a request the device failed
//    with a defined status may fail the call with that status's errno;
//  - a broken unit refuses every call on its contexts with -EIO, and a call a valid reference
//    says must work returns 0, -ENOMEM or a hardware error, nothing else;
//  - Recover() of a broken unit either leaves it broken or gives it back: every page the
//    reference knows answers as before (virtio-iommu: the device is reset and holds exactly
//    deviso's record again, so a page left doubtful by a failed call is now what the record
//    says: reachable at its recorded address, or not at all).
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
#include <new>
#include <optional>
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
#include "virtio_iommu/testing/fake_device.h"
#include "virtio_iommu/virtio_iommu.h"

namespace deviso {
namespace {

using Model = smmuv3::testing::SmmuModel;
using Rig = smmuv3::testing::RegistryRig;
using Faked = virtio_iommu::testing::FakeVirtioIommu;
using deviso::testing::SimPhysMemory;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kBlock = 2u << 20;
constexpr const char* kUnitName = "unit@fuzz";
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

// What Run needs of a backend: its unit, its memory, device accesses, and injections.
struct Injection {
  bool stall = false;      // SMMUv3: CMD_SYNC stalled
  bool gone = false;       // SMMUv3: registers read all-ones
  bool slow = false;       // SMMUv3: CMD_SYNC slow
  bool hung = false;       // virtio-iommu: requests never completed
  bool hostile = false;    // virtio-iommu: SetHostile
  bool any_error = false;  // virtio-iommu: FailNext: the call may fail with a status's errno
  unsigned fetch_aborts = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Status Start() = 0;
  virtual IsolationUnit& unit() = 0;
  virtual SimPhysMemory& mem() = 0;
  // One 8-byte device access: true if it reached memory (*value written there, or read).
  virtual bool Access(uint32_t sid, uint64_t iova, bool write, uint64_t* value) = 0;
  virtual Injection Inject(FuzzedDataProvider& in) = 0;
  virtual void Lift(const Injection& inj) = 0;
  // SMMUv3's error-path contract (docs/smmuv3.md): a failed unmap leaves its range owed (a
  // later unmap whose holes lie in it converges) and may leave stale walk-cache entries.
  virtual bool owed_ranges() const = 0;
  // virtio-iommu: a Map failed by the device may have been carried out in part (docs/
  // virtio_iommu.md "A hostile device"), and Recover() replays exactly the record.
  virtual bool replays_record() const = 0;
  // Write-only mappings (virtio-iommu: MAP without READ; SMMUv3 stage 1: -ENOTSUP).
  virtual bool write_only() const = 0;
  // What a mapping's permissions let the device do (read and write; virtio-iommu grants
  // DEVISO_PERM_EXEC as READ, docs/virtio_iommu.md).
  virtual uint32_t DevicePerms(uint32_t perms) const { return perms & DEVISO_PERM_RW; }
  virtual void TraceLastEvent() {}
};

// The registry's options for both: 4 MiB of DMA memory (the unit's structures, then one 2 MiB
// block for the devices).
SimPhysMemory::Options MemoryOptions() {
  SimPhysMemory::Options m;
  m.dma_bytes = 4u << 20;
  m.tables_4k_bytes = 512u << 10;
  m.tables_64k_bytes = 64u << 10;
  return m;
}

class SmmuBackend final : public Backend {
 public:
  Status Start() override { return rig_.Start(true); }
  IsolationUnit& unit() override { return *rig_.smmu; }
  SimPhysMemory& mem() override { return rig_.memory; }
  bool Access(uint32_t sid, uint64_t iova, bool write, uint64_t* value) override {
    return (write ? rig_.model.DeviceWrite(sid, iova, value, sizeof *value)
                  : rig_.model.DeviceRead(sid, iova, value, sizeof *value))
        .ok();
  }
  Injection Inject(FuzzedDataProvider& in) override {
    Injection inj;
    Model& model = rig_.model;
    const int what = in.ConsumeIntegralInRange<int>(0, 8);
    TRACE("inject smmu %d\n", what);
    switch (what) {
      case 0:
        model.SetCmdSyncStall(true);
        inj.stall = true;
        break;
      case 1:
        model.SetCmdSyncPolls(in.ConsumeIntegralInRange<unsigned>(1, 400));
        inj.slow = true;
        break;
      case 2:
        model.InjectCommandFetchAbort();
        break;
      case 3: {
        static constexpr uint8_t kOps[] = {
            smmuv3::testing::layout::cmd::kSync, smmuv3::testing::layout::cmd::kTlbiNhVa,
            smmuv3::testing::layout::cmd::kTlbiNhAsid, smmuv3::testing::layout::cmd::kCfgiSte,
            smmuv3::testing::layout::cmd::kCfgiCd};
        model.InjectIllegalCommand(kOps[in.ConsumeIntegralInRange<size_t>(0, 4)]);
        break;
      }
      case 4:
        model.InjectCmdqConsGlitch(
            in.ConsumeBool() ? Model::Glitch::kAllOnes : Model::Glitch::kBackwards,
            in.ConsumeIntegralInRange<unsigned>(1, 3));
        break;
      case 5:
        model.SetDeviceGone(true);
        inj.gone = true;
        break;
      case 6:
        model.InjectSteFetchAbort();
        inj.fetch_aborts = 1;
        break;
      case 7:
        model.InjectCdFetchAbort();
        inj.fetch_aborts = 1;
        break;
      default:
        model.FloodEvents(kSids[in.ConsumeIntegralInRange<size_t>(0, 3)],
                          in.ConsumeIntegralInRange<unsigned>(1, 80));
        break;
    }
    return inj;
  }
  void Lift(const Injection& inj) override {
    if (inj.stall) rig_.model.SetCmdSyncStall(false);
    if (inj.slow) rig_.model.SetCmdSyncPolls(0);
    if (inj.gone) rig_.model.SetDeviceGone(false);
  }
  bool owed_ranges() const override { return true; }
  bool replays_record() const override { return false; }
  bool write_only() const override { return false; }
  void TraceLastEvent() override {
    const auto events = rig_.model.recent_events();
    if (!events.empty()) TRACE("  last event 0x%x\n", events.back().type());
  }

 private:
  // The C API's registry over the SMMUv3 and its model (renewed when the run ends).
  Rig rig_{[] {
    Rig::Options o;
    o.memory = MemoryOptions();
    o.smmu.name = kUnitName;
    o.smmu.dma_coherent = true;
    o.smmu.timeout_ns = 200'000;  // 200 readings of the stepping clock
    o.smmu.eventq_log2 = 6;
    o.default_registry = true;
    return o;
  }()};
};

class VirtioBackend final : public Backend {
 public:
  VirtioBackend() {
    virtio_iommu::VirtioIommu::Config c;
    c.pci = &fake_.config();
    c.bars[Faked::kBar] = &fake_.bar();
    c.dma = &mem_.dma();
    c.name = kUnitName;
    c.timeout_ns = 200'000;  // 200 readings of the stepping clock: a lost answer is quick
    unit_.emplace(c);
  }
  // The registry first (it calls no backend), then the unit with its device and memory.
  ~VirtioBackend() override {
    Registry::Default().~Registry();
    new (&Registry::Default()) Registry();
  }
  VirtioBackend(const VirtioBackend&) = delete;
  VirtioBackend& operator=(const VirtioBackend&) = delete;

  Status Start() override {
    DEVISO_TRY(unit_->Probe());
    return unit_->Init();
  }
  IsolationUnit& unit() override { return *unit_; }
  SimPhysMemory& mem() override { return mem_; }
  bool Access(uint32_t sid, uint64_t iova, bool write, uint64_t* value) override {
    const std::optional<uint64_t> pa = fake_.Translate(sid, iova, write);
    (void)unit_->HandleEvents();  // the fault the fake reported, as the interrupt would
    if (!pa) return false;
    // A translation outside memory reached nothing the reference could allow: it is judged
    // as reached (and then found nowhere) by the caller.
    const bool ok = write ? mem_.UnitWrite(*pa, value, sizeof *value)
                          : mem_.UnitRead(*pa, value, sizeof *value);
    if (!ok) *value = ~*value;
    return true;
  }
  Injection Inject(FuzzedDataProvider& in) override {
    Injection inj;
    const int what = in.ConsumeIntegralInRange<int>(0, 3);
    TRACE("inject virtio %d\n", what);
    switch (what) {
      case 0: {
        // A defined error status for the next request (of a type, or any).
        static constexpr virtio_iommu::ReqStatus kStatuses[] = {
            virtio_iommu::ReqStatus::kIoErr,  virtio_iommu::ReqStatus::kUnsupp,
            virtio_iommu::ReqStatus::kDevErr, virtio_iommu::ReqStatus::kInval,
            virtio_iommu::ReqStatus::kRange,  virtio_iommu::ReqStatus::kNoEnt,
            virtio_iommu::ReqStatus::kFault,  virtio_iommu::ReqStatus::kNoMem};
        fake_.FailNext(in.ConsumeIntegralInRange<uint8_t>(0, 4),
                       kStatuses[in.ConsumeIntegralInRange<size_t>(0, 7)]);
        inj.any_error = true;
        break;
      }
      case 1:
        fake_.SetHung(true);
        inj.hung = true;
        break;
      case 2:
        fake_.SetHostile(static_cast<Faked::Hostile>(in.ConsumeIntegralInRange<uint8_t>(
                             static_cast<uint8_t>(Faked::Hostile::kOutOfOrder),
                             static_cast<uint8_t>(Faked::Hostile::kLoseAnswer))),
                         in.ConsumeIntegralInRange<unsigned>(1, 3),
                         in.ConsumeIntegralInRange<uint8_t>(0, 4));
        inj.hostile = true;
        break;
      default:
        fake_.SetNeedsReset();
        break;
    }
    return inj;
  }
  void Lift(const Injection& inj) override {
    if (inj.hung) fake_.SetHung(false);
    if (inj.hostile) fake_.SetHostile(Faked::Hostile::kNone, 0);
    // A FailNext no request consumed would hit a later call, whose judgement does not expect it.
    if (inj.any_error) fake_.ClearFailNext();
  }
  bool owed_ranges() const override { return false; }
  bool replays_record() const override { return true; }
  bool write_only() const override { return true; }
  uint32_t DevicePerms(uint32_t perms) const override {
    return (perms & DEVISO_PERM_RW) | ((perms & DEVISO_PERM_EXEC) != 0 ? DEVISO_PERM_READ : 0);
  }

 private:
  SimPhysMemory mem_{MemoryOptions()};
  // No reserved region: an MSI window the device lets through untranslated would be a way the
  // reference does not know (ProbeReportsTheReservedRegionAndMapsKeepOutOfIt covers it).
  Faked fake_{mem_, [] {
                Faked::Options o;
                o.reserved.clear();
                return o;
              }()};
  std::optional<virtio_iommu::VirtioIommu> unit_;
};

class Run {
 public:
  Run(FuzzedDataProvider& in, Backend& backend)
      : in_(in), be_(backend), mem_(backend.mem()), unit_(backend.unit()) {}
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  void Go() {
    Check(be_.Start().ok());
    // The memory devices are given: one 2 MiB block the unit never allocates from (its own
    // structures come from the rest of the DMA region, and -EPERM is tried there).
    Result<DmaBuffer> b = mem_.dma().Allocate(kBlock, kBlock);
    Check(b.ok());
    buf_ = b->pa;
    Check(Registry::Default().RegisterUnit(unit_).ok());
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

  bool UnitBroken() const { return unit_.broken(); }
  static bool Aligned(uint64_t a, uint64_t size) {
    return size != 0 && a % kPage == 0 && size % kPage == 0;
  }
  static bool HwError(int rc) { return rc == -ETIMEDOUT || rc == -EIO; }
  // Failed by the hardware: a hardware error, or (virtio-iommu, a FailNext injected) the errno
  // of the status the device answered.
  bool HwFailed(int rc) const { return HwError(rc) || (any_error_ && rc < 0); }

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
    const bool reached = be_.Access(sid, iova, write, &value);
    TRACE("  %s sid %u @%#llx: %s (allowed %zu, may_fail %d)\n", write ? "write" : "read", sid,
          static_cast<unsigned long long>(iova), reached ? "ok" : "fault", allowed.size(),
          may_fail);
    if (reached) {
      bool landed = false;
      for (const Way& w : allowed) {
        uint64_t there = 0;
        Check(mem_.UnitRead(w.pa + off, &there, sizeof there));
        landed = landed || there == value;
      }
      Check(landed);  // reached only what the reference allows, at the page it names
      return;
    }
    if (allowed.empty() || may_fail || halted_) return;
    if (Tracing()) be_.TraceLastEvent();
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

  Injection Inject() {
    if (in_.ConsumeIntegral<uint8_t>() < 232 || UnitBroken()) return Injection{};
    Injection inj = be_.Inject(in_);
    fetch_aborts_ += inj.fetch_aborts;
    return inj;
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
    any_error_ = inj.any_error;
    const bool broken = UnitBroken();
    bool recovered = false;
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
        // On a broken unit, mostly Recover() (so the inputs of a healthy unit read as before).
        if (broken && in_.ConsumeIntegral<uint8_t>() < 192) {
          recovered = Recover();
        } else {
          BindOrUnbind(d);
        }
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
    be_.Lift(inj);
    any_error_ = false;
    // Once broken, the unit stays broken until a Recover() returns 0.
    if (broken && !recovered) Check(UnitBroken());
  }

  // Recover() of the broken unit. True if it returned 0 (the unit works again).
  bool Recover() {
    const Status rc = unit_.Recover();
    TRACE("recover() = %s\n", rc.str());
    if (!rc.ok()) {
      // Still broken, and the unit may have stopped translating half-way (SMMUv3: disabled,
      // incoming DMA aborted): every access may fault until a Recover() succeeds.
      Check(UnitBroken());
      halted_ = true;
      return false;
    }
    Check(!UnitBroken());
    halted_ = false;
    if (be_.replays_record()) {
      // virtio-iommu: the device was reset and holds exactly deviso's record again, so a
      // doubtful page is now what the record says (one of its ways, or unreachable); a certain
      // page must still be recorded as it was (checked by the accesses that follow).
      for (size_t s = 0; s < kStreams; ++s) {
        Stream& st = streams_[s];
        if (!st.has_ctx) continue;
        const Result<Context> ctx = Registry::Default().FindContext(Dev(DevOf(s)), kSids[s]);
        Check(ctx.ok());
        for (auto it = st.pages.begin(); it != st.pages.end();) {
          Page& page = it->second;
          const Result<Paddr> pa = ctx->IovaToPhys(it->first * kPage);
          if (page.certain) {
            Check(pa.ok() && *pa == page.ways[0].pa);
            ++it;
            continue;
          }
          if (!pa.ok()) {
            it = st.pages.erase(it);
            continue;
          }
          std::vector<Way> ways;
          for (const Way& w : page.ways) {
            if (w.pa == *pa) ways.push_back(w);
          }
          Check(!ways.empty());  // the record holds only what the reference allowed
          page.ways = ways;
          page.certain = ways.size() == 1;
          ++it;
        }
      }
    }
    for (size_t s = 0; s < kStreams; ++s) {
      for (const auto& [pg, page] : std::map<uint64_t, Page>(streams_[s].pages)) {
        Access(s, pg * kPage, false);
      }
    }
    return true;
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
      Check(rc == 0 || rc == -ENOMEM || HwFailed(rc));
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
      Check(rc == 0 || HwFailed(rc));
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
      const Way w{pa + o, be_.DevicePerms(perms)};
      if (p.ways.empty()) {
        p = Page{.certain = true, .ways = {w}};
      } else {
        // Over a doubtful page: the old translation may still be cached.
        p.certain = false;
        if (p.ways.size() < 8) p.ways.push_back(w);
      }
    }
  }

  // Pages a failed call may have mapped: each may be reached that way, or not at all.
  void RecordDoubtful(size_t s, uint64_t iova, Paddr pa, uint64_t size, uint32_t perms) {
    for (uint64_t o = 0; o < size; o += kPage) {
      Page& p = streams_[s].pages[(iova + o) / kPage];
      p.certain = false;
      if (p.ways.size() < 8) p.ways.push_back(Way{pa + o, be_.DevicePerms(perms)});
    }
  }

  // The common judgement of deviso_map / deviso_map_iova. `pa_ok`: the physical range is device
  // memory (false: it overlaps the unit's own memory, -EPERM).
  void JudgeMap(int rc, size_t s, bool owned, bool broken, uint64_t iova, Paddr pa, uint64_t size,
                uint32_t flags, bool pa_ok) {
    const uint32_t perms = flags & (DEVISO_PERM_RW | DEVISO_PERM_EXEC);
    const bool flags_ok = (flags & ~(DEVISO_PERM_RW | DEVISO_PERM_EXEC | DEVISO_ATTR_MASK)) == 0 &&
                          (flags & DEVISO_PERM_RW) != 0 &&
                          ((flags & DEVISO_PERM_RW) != DEVISO_PERM_WRITE || be_.write_only());
    const bool args_ok = Aligned(iova, size) && pa % kPage == 0;
    const int overlap = owned && streams_[s].has_ctx ? Overlap(s, iova, size) : 0;
    if (rc == 0) {
      // Only a call every check lets through may succeed.
      Check(owned && streams_[s].has_ctx && !broken && flags_ok && args_ok && pa_ok &&
            overlap < 2 && !unit_.UsesMemory(pa, size));
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
    const bool valid = owned && streams_[s].has_ctx && !broken && flags_ok && args_ok && pa_ok;
    if (valid && overlap == 0) {
      // A valid map may fail only for want of tables or by the hardware.
      Check(rc == -ENOMEM || HwFailed(rc));
    }
    if (valid && overlap < 2 && HwFailed(rc) && be_.replays_record()) {
      // virtio-iommu: the device may have carried out part of it; reachable until Recover().
      RecordDoubtful(s, iova, pa, size, perms);
    }
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
      if (!unit_.UsesMemory(pa, kPage)) return;
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
      bool doubtful = false;   // some page is doubtful
      for (uint64_t pg = iova / kPage; pg < (iova + size) / kPage; ++pg) {
        const auto it = pages.find(pg);
        if (it != pages.end()) {
          doubtful = doubtful || !it->second.certain;
          continue;
        }
        all_known = false;
        holes_owed = holes_owed && pg * kPage >= st.owed_start && pg * kPage < st.owed_end;
      }
      if (rc == 0) {
        // Strict: nothing of the range is reachable any more. A range with holes must be
        // refused unless they lie in the owed range.
        Check(all_known || holes_owed);
        pages.erase(pages.lower_bound(iova / kPage), pages.lower_bound((iova + size) / kPage));
        if (iova <= st.owed_start && st.owed_end <= iova + size) st.owed_start = st.owed_end = 0;
      } else if (HwFailed(rc)) {
        // The entries may be cleared while cached ones still reach them (virtio-iommu: the
        // device may have carried out the request; the record keeps the range).
        st.owing = be_.owed_ranges();
        for (auto it = pages.lower_bound(iova / kPage);
             it != pages.end() && it->first < (iova + size) / kPage; ++it) {
          it->second.certain = false;
        }
        if (!be_.owed_ranges()) {
          // no owed range: the record keeps every page, so a retry finds them all
        } else if (st.owed_end <= st.owed_start) {
          st.owed_start = iova;
          st.owed_end = iova + size;
        } else {
          st.owed_start = std::min(st.owed_start, iova);
          st.owed_end = std::max(st.owed_end, iova + size);
        }
      } else {
        Check(rc == -ENOENT || rc == -ENOMEM || rc == -ENOTSUP);
        // -ENOENT only for a range with a hole outside the owed range (a retry converges), or
        // on virtio-iommu a doubtful page a failed map left (not in the record: it goes with
        // the next Recover()).
        if (rc == -ENOENT) Check((!all_known && !holes_owed) || (be_.replays_record() && doubtful));
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
  Backend& be_;
  SimPhysMemory& mem_;
  IsolationUnit& unit_;
  device devs_[2] = {{"dev0"}, {"dev1"}};
  bool bound_[2] = {true, true};
  Stream streams_[kStreams];
  std::vector<std::pair<uint64_t, uint64_t>> maps_[kStreams];  // (iova, size) of recent maps
  Paddr buf_ = 0;
  uint64_t serial_ = 0;
  unsigned fetch_aborts_ = 0;
  bool any_error_ = false;  // the call's injection may fail it with any errno
  bool halted_ = false;     // a Recover() failed: the unit may block every access
};

}  // namespace
}  // namespace deviso

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool silenced = deviso::port::host::SetLogSilenced(true) || true;
  (void)silenced;
  if (size == 0) return 0;
  // The first byte chooses the backend; the rest drives the run.
  FuzzedDataProvider in(data + 1, size - 1);
  deviso::port::host::TestClock clock{1'000};  // deadlines are numbers of polls
  if (data[0] % 2 == 0) {
    deviso::SmmuBackend backend;
    deviso::Run(in, backend).Go();
  } else {
    deviso::VirtioBackend backend;
    deviso::Run(in, backend).Go();
  }
  return 0;
}
