// msix_isolation: a QEMU test program (not an example) for MSI-X through the IOMMU (issue 11,
// "MSI and MSI-X through the IOMMU"). On QEMU `virt,gic-version=3,iommu=smmuv3` with two NVMe
// controllers, each in its own deviso context:
//   1. the GICv3 ITS is brought up (its.h) and its path checked with an INT command;
//   2. nvme0 gets its MSI doorbell mapped (deviso::MapMsiDoorbell: GITS_TRANSLATER's page,
//      Device memory), MSI-X vectors 0 (admin) and 1 (I/O) programmed to it with EventIDs the
//      ITS maps to LPIs, and its completions then raise those LPIs: the MSI write was
//      translated by the SMMU for nvme0's StreamID and reached the ITS with its DeviceID;
//   3. nvme1, the rogue, has a context but no doorbell: its MSI writes to the same address are
//      blocked by the SMMU and reported as translation faults at the doorbell address for its
//      StreamID; its LPIs, mapped in the ITS, never fire;
//   4. nvme0's doorbell unmapped again (UnmapMsiDoorbell): its MSIs are blocked too;
//   5. the ITS's own tables are refused as a DMA target (-EPERM).
// The harness (qemu_test.sh) judges from QEMU's trace as well: guest-written markers (the
// nvme0's Interrupt Line, PCI 3.0 6.2.4, traced by pci_cfg_write) bracket each phase; between
// them it requires smmuv3_translate_success for nvme0's StreamID at the doorbell IOVA and
// gicv3_its_translation_write with nvme0's requester ID, F_TRANSLATION for the rogue and no
// ITS write with its requester ID, and none for nvme0 after the unmap.
// Without an ITS (GICv2, or on the virtio-iommu, which passes MSIs untranslated) it says so and
// falls back to polled completions: the NVMe must still work.
//
// Exit status 0 only when every step passed; the last console line says the same.

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "core/mmio.h"
#include "demo.h"
#include "deviso/deviso.h"
#include "deviso/msi.h"
#include "deviso/port/device.h"
#include "deviso/port/os.h"
#include "deviso/registry.h"
#include "dma/block_pool.h"
#include "dma/device_pool.h"
#include "dma_arena.h"
#include "dma_platform.h"
#include "drivers/msix/msix.h"
#include "drivers/nvme/nvme.h"
#include "gic.h"
#include "iommu_demo.h"
#include "iommu_platform.h"
#include "its.h"
#include "pci.h"
#include "platform.h"
#include "ports/poll.h"

namespace msix_isolation {
namespace {

using deviso::Result;
using deviso::Status;
using deviso::drivers::DmaRegion;
using deviso::drivers::DmaSegment;
using deviso::port::Log;
namespace dma = deviso::dma;
namespace qv = deviso::qemu_virt;
namespace nvme = deviso::drivers::nvme;
namespace msix = deviso::drivers::msix;
using deviso::demo::FaultLog;
using deviso::demo::RecordFault;
using deviso::demo::VerifyPattern;

constexpr uint32_t kNvmeClass = 0x010802;  // mass storage, NVM, NVMe I/O controller
constexpr unsigned kNvmeBar = 0;
constexpr size_t kBlock = 4096;
constexpr uint32_t kReadBlocks = 8;  // 4 KiB per read
constexpr int kReads = 4;
constexpr uint16_t kAdminVector = 0;  // NVMe 1.4c 3.1.7: the admin CQ signals vector 0
constexpr uint16_t kIoVector = 1;
// How long an expected LPI may take (QEMU's device model posts the completion, then sends the
// MSI from another host thread: a loaded host can delay it). A deadline, not a speed test: the
// wait ends when the LPI arrives. An unexpected LPI gets kLateLpiNs to show; the verdicts from
// QEMU's trace, which cover the whole run, do not depend on it.
constexpr uint64_t kLpiWaitNs = 5'000'000'000;
constexpr uint64_t kLateLpiNs = 100'000'000;

// The trace markers (nvme0's Interrupt Line); qemu_test.sh knows them.
enum Marker : uint16_t {
  kMarkDelivered = 1,     // before nvme0's MSI-X phase (doorbell mapped)
  kMarkDeliveredEnd = 2,  // after it
  kMarkRogue = 3,         // before the rogue's phase
  kMarkRogueEnd = 4,      // after it
  kMarkUnmapped = 5,      // after nvme0's doorbell was unmapped, before its reads
  kMarkUnmappedEnd = 6,   // after them
};
constexpr size_t kInterruptLine = 0x3c;  // PCI 3.0 6.2.4 (with Interrupt Pin, read-only, above)

struct device g_nvme_dev = {"nvme0"};
struct device g_rogue_dev = {"nvme1"};
qv::DmaArena g_arena(/*coherent=*/true);  // QEMU virt PCIe is cache-coherent
DEVISO_DMA_BLOCKS_DEFINE_STATIC(g_nvme_blocks, kBlock, 512, dma::kPoolWideAlign);
DEVISO_DMA_BLOCKS_DEFINE_STATIC(g_rogue_blocks, kBlock, 512, dma::kPoolWideAlign);
deviso::demo::Steps g_steps;
FaultLog g_nvme_faults{"nvme0's context"};
FaultLog g_rogue_faults{"nvme1's context"};
FaultLog g_unrouted{"streams without a context"};

void Step(bool ok, const char* what) { g_steps.Step(ok, what); }

void Mark(qv::PciHost& pci, const qv::Bdf& bdf, Marker m) {
  pci.ConfigWrite16(bdf, kInterruptLine, m);
}

// One function's configuration space for the MSI-X library, through the ECAM.
class FunctionConfig final : public msix::ConfigSpace {
 public:
  FunctionConfig(qv::PciHost& pci, qv::Bdf bdf) : pci_(pci), bdf_(bdf) {}
  uint8_t Read8(size_t offset) const override {
    return static_cast<uint8_t>(pci_.ConfigRead32(bdf_, offset & ~size_t{3}) >> (8 * (offset & 3)));
  }
  uint16_t Read16(size_t offset) const override { return pci_.ConfigRead16(bdf_, offset); }
  uint32_t Read32(size_t offset) const override { return pci_.ConfigRead32(bdf_, offset); }
  void Write16(size_t offset, uint16_t value) override { pci_.ConfigWrite16(bdf_, offset, value); }

 private:
  qv::PciHost& pci_;
  qv::Bdf bdf_;
};

// An LPI's handler: counts (the ITS driver counts too; this one proves the handler ran).
struct LpiCounter {
  uint64_t runs = 0;
};
void OnLpi(void* ctx) {
  auto* c = static_cast<LpiCounter*>(ctx);
  __atomic_fetch_add(&c->runs, 1, __ATOMIC_RELAXED);
}
uint64_t Runs(const LpiCounter& c) { return __atomic_load_n(&c.runs, __ATOMIC_RELAXED); }

// Waits (bounded by `timeout_ns`) until `c` ran at least `n` times.
bool WaitRuns(const LpiCounter& c, uint64_t n, uint64_t timeout_ns = kLpiWaitNs) {
  return deviso::port::PollUntil(timeout_ns, [&]() -> Result<bool> { return Runs(c) >= n; }).ok();
}

// One NVMe: its PCI function, context, pool, MSI-X and LPIs.
struct Nvme {
  const char* name = nullptr;
  device* dev = nullptr;
  const qv::PciFunction* fn = nullptr;
  uint32_t sid = 0;
  uint32_t device_id = 0;  // at the ITS
  deviso::Context ctx;
  FaultLog* faults = nullptr;
  LpiCounter admin_lpi;
  LpiCounter io_lpi;
  uint32_t admin_intid = 0;
  uint32_t io_intid = 0;
};

Result<deviso::Context> Isolate(qv::PciHost& pci, Nvme& n) {
  DEVISO_TRY(Status::FromC(deviso_ctx_alloc(n.dev, n.sid)));
  DEVISO_ASSIGN_OR_RETURN(deviso::Context ctx,
                          deviso::Registry::Default().FindContext(n.dev, n.sid));
  DEVISO_TRY(ctx.SetFaultHandler(&RecordFault, n.faults, 1'000'000));
  DEVISO_TRY(pci.EnableBusMaster(n.fn->bdf));
  return ctx;
}

// Maps both events of `n` in the ITS and programs its MSI-X vectors 0 and 1 to `address` with
// those EventIDs, unmasked.
Status SetUpMsix(Nvme& n, msix::Msix& table, uint64_t address) {
  DEVISO_ASSIGN_OR_RETURN(n.admin_intid,
                          qv::ItsMapEvent(n.device_id, kAdminVector, &OnLpi, &n.admin_lpi));
  DEVISO_ASSIGN_OR_RETURN(n.io_intid, qv::ItsMapEvent(n.device_id, kIoVector, &OnLpi, &n.io_lpi));
  table.Enable();
  DEVISO_TRY(table.Program(kAdminVector, address, kAdminVector));  // data = EventID
  DEVISO_TRY(table.Program(kIoVector, address, kIoVector));
  DEVISO_TRY(table.Unmask(kAdminVector));
  DEVISO_TRY(table.Unmask(kIoVector));
  Log("       %s: MSI-X table in BAR%u at +0x%x (%u vectors); vectors %u/%u -> 0x%llx, "
      "EventIDs %u/%u -> LPIs %u/%u\n",
      n.name, table.capability().table_bir, table.capability().table_offset,
      table.capability().vectors, kAdminVector, kIoVector, static_cast<unsigned long long>(address),
      kAdminVector, kIoVector, n.admin_intid, n.io_intid);
  return Status::Ok();
}

// kReads READs of 4 KiB into `buf`, each verified; returns the number that read the pattern.
int ReadSome(nvme::Controller& c, const nvme::NamespaceInfo& ns, const DmaRegion& buf) {
  int good = 0;
  for (int i = 0; i < kReads; ++i) {
    const uint64_t lba = 100 + 8 * static_cast<uint64_t>(i);
    std::memset(buf.cpu, 0, kBlock);
    const DmaSegment sg[] = {{&buf, 0, kBlock}};
    if (c.Read(ns, lba, kReadBlocks, sg).ok() && VerifyPattern(buf.cpu, lba, kReadBlocks)) {
      ++good;
    }
  }
  return good;
}

bool FaultAt(const FaultLog& log, uint32_t sid, uint64_t iova) {
  return log.count > 0 && log.first.sid == sid && log.first.reason == DEVISO_FAULT_TRANSLATION &&
         (log.first.flags & DEVISO_FAULT_ADDR_VALID) != 0 && log.first.iova == iova;
}

// Without an ITS: the NVMe polled (the INTx/polled fallback), and the program still passes.
int RunWithoutIts(qv::PlatformIommu& iommu, qv::PciHost& pci, const qv::PlatformInfo& info, Nvme& n,
                  const char* why) {
  Log("[NOTE] no MSI through the IOMMU here (%s): NVMe completions polled\n", why);
  (void)iommu;
  (void)info;
  dma::DeviceBinding binding;
  binding.context = n.ctx;
  binding.addressing = dma::Addressing::kIdentity;
  binding.coherent = true;
  dma::ReservedWindows reserved;
  if (!qv::AddPciReservedWindows(info, iommu.unit(), n.sid, reserved).ok()) return 1;
  binding.reserved = &reserved;
  dma::StaticDevicePool<16> pool(g_nvme_blocks);
  if (!pool->Bind(dma::PoolMode::kPoolWide, binding).ok()) return 1;
  deviso::DirectMmio regs(static_cast<uintptr_t>(n.fn->bars[kNvmeBar].cpu_addr));
  int good = 0;
  {
    nvme::Controller c(regs, pool.pool());
    Result<nvme::NamespaceInfo> ns =
        c.Init().ok() ? c.IdentifyNamespace(1) : Result<nvme::NamespaceInfo>(Status::IoError());
    Result<DmaRegion> buf = pool->Alloc(kBlock, kBlock);
    if (ns.ok() && buf.ok()) {
      good = ReadSome(c, *ns, *buf);
      pool->Free(*buf);
    }
    (void)c.Shutdown();
  }
  (void)pci.DisableBusMaster(n.fn->bdf);
  (void)pool->Unbind();
  Step(good == kReads, "fallback: NVMe reads verified with polled completions (no MSI)");
  return good == kReads ? 0 : 1;
}

int Run(const qv::PlatformInfo& info) {
  qv::PciHost pci(info.pci);
  qv::PlatformIommu* const iommu_or = deviso::demo::EnumerateAndSetupIommu(info, g_arena, pci);
  if (iommu_or == nullptr) return 1;
  qv::PlatformIommu& iommu = *iommu_or;
  Log("deviso msix_isolation on \"%s\": GICv%u, IOMMU %s\n", info.model, qv::GicVersion(),
      iommu.kind());
  iommu.Describe();
  if (const Status s = iommu.SetUnroutedFaultHandler(&RecordFault, &g_unrouted); !s.ok()) {
    Log("the test needs fault reports: DEVISO_CONFIG_FAULT_REPORTS=ON (%s)\n", s.str());
    return 1;
  }
  qv::EnableInterrupts();

  Nvme nv;
  nv.name = "nvme0";
  nv.dev = &g_nvme_dev;
  nv.faults = &g_nvme_faults;
  Nvme rogue;
  rogue.name = "nvme1";
  rogue.dev = &g_rogue_dev;
  rogue.faults = &g_rogue_faults;
  for (size_t i = 0; i < pci.function_count(); ++i) {
    const qv::PciFunction& f = pci.function(i);
    if (f.class_code != kNvmeClass) continue;
    if (nv.fn == nullptr) {
      nv.fn = &f;
    } else if (rogue.fn == nullptr) {
      rogue.fn = &f;
    }
  }
  if (nv.fn == nullptr || rogue.fn == nullptr) {
    Log("need two NVMe controllers on PCI (tests/qemu/msix_isolation/qemu-devices)\n");
    return 1;
  }
  const qv::PciDeviceBinding bindings[] = {{nv.fn->dma_alias, nv.dev},
                                           {rogue.fn->dma_alias, rogue.dev}};
  deviso::dt::DeviceStreams bound[2];
  const Status bind = qv::BindPciDevices(info, iommu, bindings, bound);
  if (!bind.ok() || bound[0].sid_count != 1 || bound[1].sid_count != 1) {
    Log("       binding failed: %s\n", bind.str());
    return 1;
  }
  nv.sid = bound[0].sids[0];
  rogue.sid = bound[1].sids[0];
  for (Nvme* n : {&nv, &rogue}) {
    Result<deviso::Context> ctx = Isolate(pci, *n);
    if (!ctx.ok()) {
      Log("       %s: context: %s\n", n->name, ctx.status().str());
      return 1;
    }
    n->ctx = *ctx;
    Log("       %s: %04x:%04x at %02x:%02x.%x, StreamID 0x%x\n", n->name, n->fn->vendor_id,
        n->fn->device_id, n->fn->bdf.bus, n->fn->bdf.device, n->fn->bdf.function, n->sid);
  }
  Step(nv.sid != rogue.sid,
       "two NVMe controllers bound with StreamIDs from iommu-map, one "
       "deviso context each");

  // ---- The ITS, or the fallback ----
  if (qv::GicVersion() != 3) {
    return RunWithoutIts(iommu, pci, info, nv, "GICv2: no ITS");
  }
  const Status its = qv::ItsInit(info);
  Log("       ITS at 0x%llx: %s; doorbell (GITS_TRANSLATER) 0x%llx; tables 0x%llx-0x%llx\n",
      static_cast<unsigned long long>(info.gic.its.base), its.str(),
      static_cast<unsigned long long>(qv::ItsDoorbell()),
      static_cast<unsigned long long>(qv::ItsMemory().base),
      static_cast<unsigned long long>(qv::ItsMemory().end() - 1));
  if (its == Status::NotFound()) {
    return RunWithoutIts(iommu, pci, info, nv, "no ITS in the devicetree");
  }
  Step(its.ok(),
       "GICv3 ITS initialised: device and collection tables, command queue, LPIs "
       "enabled on this CPU's redistributor");
  if (!its.ok()) return 1;
  const uint64_t doorbell = qv::ItsDoorbell();
  {
    const Result<uint32_t> id0 = qv::ItsDeviceId(info, nv.fn->dma_alias.rid());
    const Result<uint32_t> id1 = qv::ItsDeviceId(info, rogue.fn->dma_alias.rid());
    if (!id0.ok() || !id1.ok()) {
      Log("       no DeviceID from msi-map: %s\n", (id0.ok() ? id1 : id0).status().str());
      return 1;
    }
    nv.device_id = *id0;
    rogue.device_id = *id1;
    Log("       nvme0: DeviceID 0x%x; nvme1: DeviceID 0x%x (msi-map)\n", nv.device_id,
        rogue.device_id);
  }
  {
    // The ITS -> redistributor -> CPU path on its own: an INT command for a mapped event.
    LpiCounter self;
    constexpr uint32_t kSelfEvent = qv::kItsEventsPerDevice - 1;
    const Result<uint32_t> intid = qv::ItsMapEvent(nv.device_id, kSelfEvent, &OnLpi, &self);
    const Status trig = intid.ok() ? qv::ItsTrigger(nv.device_id, kSelfEvent) : intid.status();
    const bool ran = trig.ok() && WaitRuns(self, 1);
    const Status unmapped = qv::ItsUnmapEvent(nv.device_id, kSelfEvent);
    Log("       INT (DeviceID 0x%x, EventID %u) -> LPI %u: %s, handler ran %llu time(s)\n",
        nv.device_id, kSelfEvent, intid.ok() ? *intid : 0, trig.str(),
        static_cast<unsigned long long>(Runs(self)));
    Step(ran && Runs(self) == 1 && unmapped.ok(),
         "ITS INT command raised its LPI once (ITS, redistributor and CPU interface work)");
  }
  {
    // The ITS's tables are the interrupt controller's: no device may write them.
    const uint64_t table = qv::ItsMemory().base;
    const int r = deviso_map(nv.dev, nv.sid, static_cast<uintptr_t>(table), kBlock);
    Log("       deviso_map(nvme0, 0x%llx: the ITS's pending table) = %d\n",
        static_cast<unsigned long long>(table), r);
    Step(r == -EPERM, "deviso_map of the ITS's own tables refused with -EPERM");
  }

  // ---- nvme0: doorbell mapped, completions by MSI-X ----
  const Result<deviso::MsiDoorbell> db = deviso::MapMsiDoorbell(nv.ctx, nv.sid, doorbell);
  if (!db.ok()) {
    Log("       MapMsiDoorbell: %s\n", db.status().str());
    Step(false, "nvme0's MSI doorbell mapped in its context");
    return 1;
  }
  if (db->bypass) {
    Log("       nvme0: doorbell 0x%llx in the unit's MSI region: nothing mapped (bypass)\n",
        static_cast<unsigned long long>(db->iova));
  } else {
    Log("       nvme0: doorbell page 0x%llx (+0x%llx) mapped %s, Device memory\n",
        static_cast<unsigned long long>(db->page), static_cast<unsigned long long>(db->page_size),
        db->write_only ? "write-only" : "read-write (stage 1 has no write-only)");
  }
  if (db->bypass) {
    // virtio-iommu: MSIs pass untranslated (docs/msi.md); the rogue check means nothing here.
    Log("[NOTE] %s passes MSIs to the doorbell untranslated: isolation of MSIs is the ITS's\n",
        iommu.kind());
  }
  {
    uint64_t pa = 0;
    const int r = deviso_iova_to_phys(nv.dev, nv.sid, doorbell, &pa);
    Step(db->bypass || (r == 0 && pa == doorbell && db->page_size == nv.ctx.page_size()),
         "nvme0's MSI doorbell mapped in its context: GITS_TRANSLATER's page only, identity");
  }

  dma::ReservedWindows nv_reserved;
  dma::ReservedWindows rogue_reserved;
  if (!qv::AddPciReservedWindows(info, iommu.unit(), nv.sid, nv_reserved).ok() ||
      !qv::AddPciReservedWindows(info, iommu.unit(), rogue.sid, rogue_reserved).ok()) {
    return 1;
  }
  dma::DeviceBinding nv_binding;
  nv_binding.context = nv.ctx;
  nv_binding.addressing = dma::Addressing::kIdentity;
  nv_binding.reserved = &nv_reserved;
  nv_binding.coherent = true;
  dma::DeviceBinding rogue_binding = nv_binding;
  rogue_binding.context = rogue.ctx;
  rogue_binding.reserved = &rogue_reserved;
  dma::StaticDevicePool<16> nv_pool(g_nvme_blocks);
  dma::StaticDevicePool<16> rogue_pool(g_rogue_blocks);
  if (!nv_pool->Bind(dma::PoolMode::kPoolWide, nv_binding).ok() ||
      !rogue_pool->Bind(dma::PoolMode::kPoolWide, rogue_binding).ok()) {
    Log("       pools not bound\n");
    return 1;
  }

  FunctionConfig nv_cfg(pci, nv.fn->bdf);
  FunctionConfig rogue_cfg(pci, rogue.fn->bdf);
  const Result<msix::Capability> nv_cap = msix::FindCapability(nv_cfg);
  const Result<msix::Capability> rogue_cap = msix::FindCapability(rogue_cfg);
  if (!nv_cap.ok() || !rogue_cap.ok() || nv.fn->bars[nv_cap->table_bir].cpu_addr == 0 ||
      rogue.fn->bars[rogue_cap->table_bir].cpu_addr == 0) {
    Log("       no usable MSI-X capability\n");
    Step(false, "MSI-X capability found");
    return 1;
  }
  deviso::DirectMmio nv_table(static_cast<uintptr_t>(nv.fn->bars[nv_cap->table_bir].cpu_addr));
  deviso::DirectMmio nv_pba(static_cast<uintptr_t>(nv.fn->bars[nv_cap->pba_bir].cpu_addr));
  deviso::DirectMmio rogue_table(
      static_cast<uintptr_t>(rogue.fn->bars[rogue_cap->table_bir].cpu_addr));
  deviso::DirectMmio rogue_pba(static_cast<uintptr_t>(rogue.fn->bars[rogue_cap->pba_bir].cpu_addr));
  msix::Msix nv_msix(nv_cfg, *nv_cap, nv_table, nv_pba);
  msix::Msix rogue_msix(rogue_cfg, *rogue_cap, rogue_table, rogue_pba);

  deviso::DirectMmio nv_regs(static_cast<uintptr_t>(nv.fn->bars[kNvmeBar].cpu_addr));
  deviso::DirectMmio rogue_regs(static_cast<uintptr_t>(rogue.fn->bars[kNvmeBar].cpu_addr));
  nvme::ControllerOptions options;
  options.io_msix = true;
  options.io_msix_vector = kIoVector;
  bool ok = true;
  {
    nvme::Controller nvc(nv_regs, nv_pool.pool(), options);
    nvme::Controller roguec(rogue_regs, rogue_pool.pool(), options);
    Result<DmaRegion> nv_buf = nv_pool->Alloc(kBlock, kBlock);
    Result<DmaRegion> rogue_buf = rogue_pool->Alloc(kBlock, kBlock);
    if (!nv_buf.ok() || !rogue_buf.ok()) return 1;

    Mark(pci, nv.fn->bdf, kMarkDelivered);
    g_nvme_faults.Reset();
    const Status set_up = SetUpMsix(nv, nv_msix, db->iova);
    const Status up = set_up.ok() ? nvc.Init() : set_up;
    Result<nvme::NamespaceInfo> ns =
        up.ok() ? nvc.IdentifyNamespace(1) : Result<nvme::NamespaceInfo>(up);
    if (!ns.ok()) {
      Log("       nvme0: %s\n", ns.status().str());
      return 1;
    }
    const uint64_t io_before = Runs(nv.io_lpi);
    const int good = ReadSome(nvc, *ns, *nv_buf);
    const bool all_lpis = WaitRuns(nv.io_lpi, io_before + kReads);
    iommu.DrainEvents();
    Mark(pci, nv.fn->bdf, kMarkDeliveredEnd);
    Log("       nvme0: %d of %d reads verified; I/O LPI %u ran %llu time(s), admin LPI %u %llu "
        "time(s), ITS LPI count %llu; %u fault(s)\n",
        good, kReads, nv.io_intid, static_cast<unsigned long long>(Runs(nv.io_lpi) - io_before),
        nv.admin_intid, static_cast<unsigned long long>(Runs(nv.admin_lpi)),
        static_cast<unsigned long long>(qv::LpiCount(nv.io_intid)), g_nvme_faults.count);
    Step(good == kReads && all_lpis && Runs(nv.io_lpi) - io_before == kReads &&
             Runs(nv.admin_lpi) > 0 && g_nvme_faults.count == 0,
         "nvme0's completions delivered by MSI-X through the IOMMU: one I/O LPI per read, admin "
         "LPIs too, no fault");
    ok = ok && good == kReads;

    // ---- The rogue: a context with no doorbell ----
    Mark(pci, nv.fn->bdf, kMarkRogue);
    g_rogue_faults.Reset();
    const Status rogue_set_up = SetUpMsix(rogue, rogue_msix, doorbell);
    const Status rogue_up = rogue_set_up.ok() ? roguec.Init() : rogue_set_up;
    Result<nvme::NamespaceInfo> rogue_ns =
        rogue_up.ok() ? roguec.IdentifyNamespace(1) : Result<nvme::NamespaceInfo>(rogue_up);
    const int rogue_good = rogue_ns.ok() ? ReadSome(roguec, *rogue_ns, *rogue_buf) : 0;
    // Nothing should arrive (a bounded wait gives a late interrupt its chance to show); on a
    // unit that passes MSIs untranslated, all of the rogue's should.
    (void)(db->bypass ? WaitRuns(rogue.io_lpi, kReads) : WaitRuns(rogue.io_lpi, 1, kLateLpiNs));
    iommu.DrainEvents();
    Mark(pci, nv.fn->bdf, kMarkRogueEnd);
    Log("       nvme1: %d of %d reads verified (polled); its LPIs ran %llu + %llu time(s); "
        "%u fault(s), first at 0x%llx\n",
        rogue_good, kReads, static_cast<unsigned long long>(Runs(rogue.admin_lpi)),
        static_cast<unsigned long long>(Runs(rogue.io_lpi)), g_rogue_faults.count,
        static_cast<unsigned long long>(g_rogue_faults.first.iova));
    if (db->bypass) {
      // Nothing can close the doorbell here; the ITS still keeps DeviceIDs apart: the rogue's
      // MSIs raise only the LPIs mapped for its own DeviceID.
      Log("[NOTE] rogue nvme1's MSIs reach the ITS on %s (no mapping can block them)\n",
          iommu.kind());
      Step(rogue_good == kReads && Runs(rogue.io_lpi) > 0 && Runs(nv.io_lpi) == io_before + kReads,
           "rogue nvme1's MSIs raise only its own DeviceID's LPIs (MSIs pass untranslated on "
           "this IOMMU)");
    } else {
      Step(rogue_good == kReads && Runs(rogue.admin_lpi) == 0 && Runs(rogue.io_lpi) == 0 &&
               FaultAt(g_rogue_faults, rogue.sid, doorbell),
           "rogue nvme1's MSI writes to the unmapped doorbell blocked: no LPI, translation "
           "fault at the doorbell for its StreamID");
    }

    // ---- nvme0 with its doorbell unmapped again ----
    const Status unmap = deviso::UnmapMsiDoorbell(nv.ctx, nv.sid, doorbell);
    Mark(pci, nv.fn->bdf, kMarkUnmapped);
    g_nvme_faults.Reset();
    const uint64_t io_mid = Runs(nv.io_lpi);
    const int after = ReadSome(nvc, *ns, *nv_buf);
    (void)WaitRuns(nv.io_lpi, io_mid + 1, kLateLpiNs);
    iommu.DrainEvents();
    Mark(pci, nv.fn->bdf, kMarkUnmappedEnd);
    Log("       nvme0 after UnmapMsiDoorbell (%s): %d of %d reads verified; I/O LPI ran %llu "
        "time(s); %u fault(s)\n",
        unmap.str(), after, kReads, static_cast<unsigned long long>(Runs(nv.io_lpi) - io_mid),
        g_nvme_faults.count);
    if (!db->bypass) {
      Step(unmap.ok() && after == kReads && Runs(nv.io_lpi) == io_mid &&
               FaultAt(g_nvme_faults, nv.sid, doorbell),
           "nvme0's MSIs blocked again once its doorbell was unmapped: reads still complete "
           "(polled), no LPI, translation fault at the doorbell");
    }

    // ---- Teardown ----
    const Status s0 = nvc.Shutdown();
    const Status s1 = roguec.Shutdown();
    nv_msix.Disable();
    rogue_msix.Disable();
    (void)qv::ItsUnmapEvent(nv.device_id, kAdminVector);
    (void)qv::ItsUnmapEvent(nv.device_id, kIoVector);
    (void)qv::ItsUnmapEvent(rogue.device_id, kAdminVector);
    (void)qv::ItsUnmapEvent(rogue.device_id, kIoVector);
    nv_pool->Free(*nv_buf);
    rogue_pool->Free(*rogue_buf);
    Step(s0.ok() && s1.ok() && !nv_msix.enabled() && !rogue_msix.enabled(),
         "both NVMe shut down, MSI-X off, their ITS events discarded");
  }
  (void)pci.DisableBusMaster(nv.fn->bdf);
  (void)pci.DisableBusMaster(rogue.fn->bdf);
  const Status u0 = nv_pool->Unbind();
  const Status u1 = rogue_pool->Unbind();
  const int f0 = deviso_ctx_free(nv.dev, nv.sid);
  const int f1 = deviso_ctx_free(rogue.dev, rogue.sid);
  Step(u0.ok() && u1.ok() && f0 == 0 && f1 == 0, "pools unbound, deviso_ctx_free for both");
  return ok && g_steps.failed() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace msix_isolation

int deviso::qemu_virt::AppMain(const PlatformInfo& info) {
  const int rc = msix_isolation::Run(info);
  deviso::port::Log("msix_isolation: %s (%d of %d steps passed)\n", rc == 0 ? "PASS" : "FAIL",
                    msix_isolation::g_steps.passed(), msix_isolation::g_steps.total());
  return rc;
}
