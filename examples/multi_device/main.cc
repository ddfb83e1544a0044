// multi_device: two DMA devices on one thread, each in its own deviso context, on QEMU's
// `virt` board with its IOMMU: the SMMUv3 (-M virt,iommu=smmuv3) or a virtio-iommu (-M virt
// -device virtio-iommu-pci); the devicetree alone says which (issue 5, "Two devices on one
// thread, on QEMU", and the DMA pool and DMA-driver hook on real hardware).
//
// An ICH9 AHCI controller and an NVMe controller are found by PCI enumeration (once, before
// the IOMMU comes up: a virtio-iommu is itself a PCI function); both are bound to the IOMMU in
// one call with the StreamIDs the host bridge's iommu-map gives them (never constants). Each
// gets a context (deviso_ctx_alloc) before it may master the bus. Memory:
//   * the AHCI driver's structures (command list, FIS area, command table, IDENTIFY buffer)
//     come from a strict dma::DevicePool: each allocation mapped for the AHCI, each free
//     unmapped (strictly) before the blocks can be reused;
//   * the NVMe driver's queues, identify buffers and PRP list come from a pool-wide
//     dma::DevicePool private to the NVMe: 2 MiB of 2 MiB-aligned static storage, mapped once
//     with block mappings;
//   * data moves through each device's DMA-driver hook (dma::ContextDmaMapper): the drivers'
//     ReadMapped()/WriteMapped() map the caller's buffer for that one command and unmap it
//     before returning. The AHCI's hook maps identity; the NVMe's is translated, at device
//     addresses from an IovaAllocator that keeps out of the PCI windows and the IOMMU's
//     reserved regions (qv::AddPciReservedWindows).
// Then:
//   1. each device reads the disk pattern through its hook (every byte verified); the NVMe
//      writes a new pattern and reads it back;
//   2. the AHCI is pointed at a buffer of the NVMe's pool, and the NVMe at a buffer of the
//      AHCI's pool (both directions; for the NVMe also a WRITE from the AHCI's buffer, i.e. a
//      device read of it): each is blocked, the canaries stay intact, and the IOMMU's fault is
//      decoded and attributed to the offending device's StreamID only;
//   3. a freed strict-pool block is unreachable by the AHCI; a freed pool-wide block is still
//      reachable by the NVMe (the documented trade-off, shown); a buffer mapped through the
//      hook is unreachable once UnmapForDevice() returned;
//   4. the NVMe's own submission queue unmapped: the fetch is blocked, the controller reports
//      CSTS.CFS, the driver resets it, and it works again once the queue is remapped;
//   5. clean teardown: the NVMe is shut down (CC.SHN) and the AHCI port stopped before their
//      queue memory goes back to the pools; the pools are unbound; both contexts are freed.
// QEMU's devices never see IOMMU faults (a blocked transfer completes "successfully"), so
// isolation is judged by memory contents and fault reports only. Where a check proves less
// on one IOMMU (QEMU's virtio-iommu keeps no IOTLB, reports unmapped addresses without the
// access direction, and drops faults beyond its event queue silently), the console says so in
// a [NOTE] line.
//
// Exit status 0 only when every step passed; the last console line says the same.

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "arch.h"
#include "core/mmio.h"
#include "demo.h"
#include "deviso/deviso.h"
#include "deviso/port/device.h"
#include "deviso/port/os.h"
#include "deviso/registry.h"
#include "dma/block_pool.h"
#include "dma/device_pool.h"
#include "dma/dma_mapper.h"
#include "dma/iova_allocator.h"
#include "dma_arena.h"
#include "dma_platform.h"
#include "drivers/ahci/ahci.h"
#include "drivers/nvme/nvme.h"
#include "gic.h"
#include "iommu_demo.h"
#include "iommu_platform.h"
#include "pci.h"
#include "platform.h"

namespace multi_device {
namespace {

using deviso::Result;
using deviso::Status;
using deviso::drivers::DmaDirection;
using deviso::drivers::DmaMapping;
using deviso::drivers::DmaRegion;
using deviso::drivers::DmaSegment;
using deviso::port::Log;
namespace dma = deviso::dma;
namespace qv = deviso::qemu_virt;
namespace ahci = deviso::drivers::ahci;
namespace nvme = deviso::drivers::nvme;
using deviso::demo::DiskWord;
using deviso::demo::FaultLog;
using deviso::demo::RecordFault;
using deviso::demo::VerifyPattern;
using deviso::demo::VerifySectors;
using deviso::demo::WrittenWord;

constexpr uint16_t kIntelVendor = 0x8086;
constexpr uint16_t kIch9Ahci = 0x2922;
constexpr unsigned kAbarIndex = 5;         // AHCI 1.3.1 2.1.11: ABAR is BAR5
constexpr uint32_t kNvmeClass = 0x010802;  // mass storage, NVM, NVMe I/O controller
constexpr unsigned kNvmeBar = 0;           // NVMe 1.4c 2.1.10: MLBAR/MUBAR is BAR0 (64-bit)
constexpr uint64_t kSector = 512;
constexpr size_t kBufferBytes = 64 * 1024;  // 128 sectors
constexpr uint32_t kBufferSectors = kBufferBytes / kSector;
constexpr size_t kBlock = 4096;
// The NVMe hook's device-address window: below RAM, overlapping the PCI host's 32-bit memory
// window (0x1000_0000-0x3eff_0000 on `virt`), which the allocator must skip; no identity
// mapping of the NVMe's context (its pool, in RAM) can collide with it.
constexpr uint64_t kNvmeIovaBase = 0x1000'0000;
constexpr uint64_t kNvmeIovaSize = 0x3000'0000;

struct device g_ahci_dev = {"ahci0"};
struct device g_nvme_dev = {"nvme0"};
qv::DmaArena g_arena(/*coherent=*/true);  // QEMU virt PCIe is cache-coherent
// The pools' memory, in static storage (identity-mapped: physical address = pointer).
DEVISO_DMA_BLOCKS_DEFINE_STATIC(g_ahci_blocks, kBlock, 64, kBlock);
// 2 MiB, 2 MiB-aligned: mapped pool-wide with one 2 MiB block.
DEVISO_DMA_BLOCKS_DEFINE_STATIC(g_nvme_blocks, kBlock, 512, dma::kPoolWideAlign);
deviso::demo::Steps g_steps;
// What this IOMMU's fault reports can prove (PlatformIommu).
bool g_direction_known = true;

void Step(bool ok, const char* what) { g_steps.Step(ok, what); }

// ---- Faults --------------------------------------------------------------------------------

// What each context's fault handler (RecordFault) saw since the last Reset(); written from the
// IOMMU's interrupt. A blocked 64 KiB transfer raises thousands of events (QEMU retries in
// 4-byte pieces), so the event queue overflows and the SMMUv3 driver tells every context that
// faults were lost: FaultLog counts those notices apart, and attribution uses decoded faults.
FaultLog g_ahci_faults{"the AHCI's context"};
FaultLog g_nvme_faults{"the NVMe's context"};
FaultLog g_unrouted{"streams without a context"};

uint32_t FaultCount(const FaultLog& log) { return log.Count(); }

void ResetFaults() {
  g_ahci_faults.Reset();
  g_nvme_faults.Reset();
  g_unrouted.Reset();
}

uint32_t AllFaults() {
  return FaultCount(g_ahci_faults) + FaultCount(g_nvme_faults) + FaultCount(g_unrouted);
}

// What a blocked transfer left in the logs: the offender's decoded faults, and whether the
// event queue overflowed meanwhile (expected for 64 KiB; the driver recovers from it).
void ReportFaults(const FaultLog& offender) {
  Log("       %u faults decoded for %s, %u for the other context, %u for streams without one; "
      "event queue overflow reported: %s\n",
      FaultCount(offender), offender.who,
      FaultCount(&offender == &g_ahci_faults ? g_nvme_faults : g_ahci_faults),
      FaultCount(g_unrouted), offender.overflows != 0 ? "yes" : "no");
}

// The first fault of `log` is `reason` on `sid`, at an address inside [lo, hi), for an access
// of `direction` (DEVISO_FAULT_READ / DEVISO_FAULT_WRITE) where the IOMMU reports it (a
// virtio-iommu's translation faults carry no direction: then it is not checked).
bool FaultIs(const FaultLog& log, uint32_t reason, uint32_t sid, uint64_t lo, uint64_t hi,
             uint32_t direction) {
  return FaultCount(log) > 0 && log.first.reason == reason && log.first.sid == sid &&
         (log.first.flags & DEVISO_FAULT_ADDR_VALID) != 0 && log.first.iova >= lo &&
         log.first.iova < hi && (!g_direction_known || (log.first.flags & direction) != 0);
}

// A blocked access by `offender` only: its fault inside [lo, hi), nothing for anyone else.
bool BlockedFor(const FaultLog& offender, uint32_t sid, uint64_t lo, uint64_t hi,
                uint32_t direction) {
  const FaultLog& other = &offender == &g_ahci_faults ? g_nvme_faults : g_ahci_faults;
  return FaultIs(offender, DEVISO_FAULT_TRANSLATION, sid, lo, hi, direction) &&
         FaultCount(other) == 0 && FaultCount(g_unrouted) == 0;
}

// ---- Memory --------------------------------------------------------------------------------

// Raw arena memory by physical address, mapped for nobody: what a caller hands a driver's
// ReadMapped()/WriteMapped(), which map it through the device's hook for one command.
class Buffer : public deviso::demo::ArenaBuffer {
 public:
  Buffer(size_t bytes, uint8_t fill) : ArenaBuffer(g_arena, bytes, fill, kBlock) {}
};

bool All(const void* p, size_t n, uint8_t value) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != value) return false;
  }
  return true;
}

// A transfer told device address `device_addr` for `bytes` of `cpu`, whatever (if anything)
// that address maps to: how the attacks point a device at memory that is not its own.
Status AhciReadAt(ahci::Port& port, uint64_t lba, void* cpu, uint64_t device_addr, size_t bytes) {
  const DmaRegion region{cpu, device_addr, bytes};
  const DmaSegment segment{&region, 0, bytes};
  return port.Read(lba, static_cast<uint32_t>(bytes / kSector), {&segment, 1});
}
Status NvmeAt(bool write, nvme::Controller& c, const nvme::NamespaceInfo& ns, uint64_t lba,
              void* cpu, uint64_t device_addr, size_t bytes) {
  const DmaRegion region{cpu, device_addr, bytes};
  const DmaSegment segment{&region, 0, bytes};
  const auto blocks = static_cast<uint32_t>(bytes / ns.block_bytes);
  return write ? c.Write(ns, lba, blocks, {&segment, 1}) : c.Read(ns, lba, blocks, {&segment, 1});
}

// The device's hook, forwarding every call and remembering the last mapping, so that the
// console can say where a driver's buffer was mapped (and checks can test it).
// NOLINTNEXTLINE(cppcoreguidelines-virtual-class-destructor)
class ShownMapper final : public deviso::drivers::DmaMapper {
 public:
  explicit ShownMapper(DmaMapper& inner) : inner_(inner) {}
  Result<DmaMapping> MapForDevice(uint64_t pa, size_t size, DmaDirection direction) override {
    Result<DmaMapping> m = inner_.MapForDevice(pa, size, direction);
    if (m.ok()) {
      last_ = *m;
      ++maps_;
    }
    return m;
  }
  Status UnmapForDevice(const DmaMapping& mapping) override {
    const Status s = inner_.UnmapForDevice(mapping);
    if (s.ok()) ++unmaps_;
    return s;
  }
  size_t page_size() const override { return inner_.page_size(); }
  const DmaMapping& last() const { return last_; }
  uint64_t maps() const { return maps_; }
  uint64_t unmaps() const { return unmaps_; }

 private:
  DmaMapper& inner_;
  DmaMapping last_;
  uint64_t maps_ = 0;
  uint64_t unmaps_ = 0;
};

// ---- Devices -------------------------------------------------------------------------------

// Allocates `dev`'s context for the StreamID the devicetree gave it, installs the fault
// handler, and only then turns bus mastering on.
Result<deviso::Context> Isolate(qv::PciHost& pci, const qv::PciFunction& fn, device* dev,
                                uint32_t sid, FaultLog* faults) {
  DEVISO_TRY(Status::FromC(deviso_ctx_alloc(dev, sid)));
  DEVISO_ASSIGN_OR_RETURN(deviso::Context ctx, deviso::Registry::Default().FindContext(dev, sid));
  DEVISO_TRY(ctx.SetFaultHandler(&RecordFault, faults, 1'000'000));
  DEVISO_TRY(pci.EnableBusMaster(fn.bdf));
  Log("       %s: %04x:%04x at %02x:%02x.%x, StreamID 0x%x\n", dev->name, fn.vendor_id,
      fn.device_id, fn.bdf.bus, fn.bdf.device, fn.bdf.function, sid);
  return ctx;
}

bool InWindow(const qv::PciWindow& w, uint64_t addr, uint64_t size) {
  return w.present && addr >= w.cpu_addr && addr + size <= w.cpu_addr + w.size;
}

int Run(const qv::PlatformInfo& info) {
  qv::PciHost pci(info.pci);
  qv::PlatformIommu* const iommu_or = deviso::demo::EnumerateAndSetupIommu(info, g_arena, pci);
  if (iommu_or == nullptr) return 1;
  qv::PlatformIommu& iommu = *iommu_or;
  g_direction_known = iommu.reports_translation_fault_direction();
  Log("deviso multi_device on \"%s\": AHCI + NVMe on one thread, one context each, IOMMU %s\n",
      info.model, iommu.kind());
  iommu.Describe();
  Step(true, "IOMMU enabled with every StreamID blocked (default-deny)");
  if (const Status s = iommu.SetUnroutedFaultHandler(&RecordFault, &g_unrouted); !s.ok()) {
    Log("the demo reports faults: build deviso with DEVISO_CONFIG_FAULT_REPORTS=ON (%s)\n",
        s.str());
    return 1;
  }
  qv::EnableInterrupts();
  if (!g_direction_known) {
    Log("[NOTE] blocked DMA proves less on %s: its translation faults carry no access "
        "direction, so faults are not checked to be reads or writes (canaries and StreamIDs "
        "still are)\n",
        iommu.kind());
  }

  const qv::PciFunction* ahci_fn = pci.Find(kIntelVendor, kIch9Ahci);
  const qv::PciFunction* nvme_fn = nullptr;
  for (size_t i = 0; i < pci.function_count(); ++i) {
    if (pci.function(i).class_code == kNvmeClass) {
      nvme_fn = &pci.function(i);
      break;
    }
  }
  if (ahci_fn == nullptr || nvme_fn == nullptr) {
    Log("need an ICH9 AHCI and an NVMe controller on PCI (examples/multi_device/qemu-devices)\n");
    return 1;
  }
  const qv::PciBar& bar0 = nvme_fn->bars[kNvmeBar];
  const bool bar_mapped = InWindow(info.pci.mem32, bar0.cpu_addr, bar0.size) ||
                          InWindow(info.pci.mem64, bar0.cpu_addr, bar0.size);
  Log("       NVMe BAR0: %s, %llu KiB at 0x%llx (%s window, mapped by MmuInit)\n",
      bar0.is_64bit ? "64-bit" : "32-bit", static_cast<unsigned long long>(bar0.size / 1024),
      static_cast<unsigned long long>(bar0.cpu_addr),
      InWindow(info.pci.mem32, bar0.cpu_addr, bar0.size) ? "32-bit" : "64-bit");
  Step(bar0.cpu_addr != 0 && bar0.is_64bit && bar_mapped,
       "NVMe 64-bit BAR0 assigned inside a host-bridge window the MMU maps");

  // ---- Both devices bound in one call (all or nothing), one context each ----
  const qv::PciDeviceBinding bindings[] = {{ahci_fn->dma_alias, &g_ahci_dev},
                                           {nvme_fn->dma_alias, &g_nvme_dev}};
  deviso::dt::DeviceStreams bound[2];
  const Status bind = qv::BindPciDevices(info, iommu, bindings, bound);
  if (!bind.ok() || bound[0].sid_count != 1 || bound[1].sid_count != 1) {
    Log("       binding failed: %s\n", bind.str());
    Step(false, "AHCI and NVMe bound with StreamIDs from iommu-map, one deviso context each");
    return 1;
  }
  const uint32_t ahci_sid = bound[0].sids[0];
  const uint32_t nvme_sid = bound[1].sids[0];
  const Result<deviso::Context> ahci_ctx =
      Isolate(pci, *ahci_fn, &g_ahci_dev, ahci_sid, &g_ahci_faults);
  const Result<deviso::Context> nvme_ctx =
      Isolate(pci, *nvme_fn, &g_nvme_dev, nvme_sid, &g_nvme_faults);
  Step(ahci_ctx.ok() && nvme_ctx.ok() && ahci_sid != nvme_sid,
       "AHCI and NVMe bound with StreamIDs from iommu-map, one deviso context each");
  if (!ahci_ctx.ok() || !nvme_ctx.ok()) return 1;
  {
    // The unit's own translation tables are never given to a device: one that could write
    // them could map anything for itself or a sibling (issue 10).
    const uint64_t tables = iommu.own_table_page();
    const int r = deviso_map(&g_ahci_dev, ahci_sid, tables, 4096);
    Log("       deviso_map(AHCI, 0x%llx: a page of the IOMMU's table pool) = %d\n",
        static_cast<unsigned long long>(tables), r);
    Step(tables != 0 && r == -EPERM,
         "deviso_map of a page of the IOMMU's translation-table pool refused with -EPERM");
  }

  // ---- Pools and hooks ----
  // What each device's DMA addresses must avoid: the PCI memory windows (a DMA there may reach
  // a peer's BAR, never the IOMMU) and the IOMMU's reserved regions for its StreamID.
  dma::ReservedWindows ahci_reserved;
  dma::ReservedWindows nvme_reserved;
  if (!qv::AddPciReservedWindows(info, iommu.unit(), ahci_sid, ahci_reserved).ok() ||
      !qv::AddPciReservedWindows(info, iommu.unit(), nvme_sid, nvme_reserved).ok()) {
    return 1;
  }
  for (const dma::IovaRange& w : nvme_reserved.windows()) {
    Log("       reserved for the NVMe's DMA: 0x%llx-0x%llx\n",
        static_cast<unsigned long long>(w.start), static_cast<unsigned long long>(w.end() - 1));
  }
  const uint64_t page = nvme_ctx->page_size();
  dma::StaticIovaAllocator<16> nvme_iova(kNvmeIovaBase, kNvmeIovaSize, page, &nvme_reserved);

  dma::DeviceBinding ahci_identity;
  ahci_identity.context = *ahci_ctx;
  ahci_identity.addressing = dma::Addressing::kIdentity;
  ahci_identity.reserved = &ahci_reserved;
  ahci_identity.coherent = true;  // QEMU virt PCIe is cache-coherent
  dma::DeviceBinding nvme_identity = ahci_identity;
  nvme_identity.context = *nvme_ctx;
  nvme_identity.reserved = &nvme_reserved;
  dma::DeviceBinding nvme_translated = nvme_identity;
  nvme_translated.addressing = dma::Addressing::kTranslated;
  nvme_translated.iova = &nvme_iova;

  dma::StaticDevicePool<16> ahci_pool(g_ahci_blocks);  // strict: the AHCI's structures
  dma::StaticDevicePool<16> nvme_pool(g_nvme_blocks);  // pool-wide: the NVMe's queues
  const Status ahci_bound = ahci_pool->Bind(dma::PoolMode::kStrict, ahci_identity);
  const Status nvme_bound = nvme_pool->Bind(dma::PoolMode::kPoolWide, nvme_identity);
  Log("       AHCI pool: strict, %zu blocks of %zu KiB at 0x%llx; NVMe pool: pool-wide, %zu KiB "
      "at 0x%llx (%s, %s)\n",
      g_ahci_blocks.block_count(), g_ahci_blocks.block_size() / 1024,
      static_cast<unsigned long long>(g_ahci_blocks.buffer_pa()), g_nvme_blocks.size_bytes() / 1024,
      static_cast<unsigned long long>(g_nvme_blocks.buffer_pa()), ahci_bound.str(),
      nvme_bound.str());
  Step(ahci_bound.ok() && nvme_bound.ok(),
       "DMA pools bound: a strict pool for the AHCI's structures, a pool-wide 2 MiB pool "
       "private to the NVMe");
  if (!ahci_bound.ok() || !nvme_bound.ok()) return 1;
  dma::StaticContextDmaMapper<8> ahci_hook(ahci_identity);
  dma::StaticContextDmaMapper<8> nvme_hook(nvme_translated);
  ShownMapper ahci_mapper(ahci_hook);
  ShownMapper nvme_mapper(nvme_hook);

  deviso::DirectMmio abar(static_cast<uintptr_t>(ahci_fn->bars[kAbarIndex].cpu_addr));
  deviso::DirectMmio nvme_regs(static_cast<uintptr_t>(bar0.cpu_addr));
  ahci::Hba hba(abar);
  if (!hba.Init().ok() || hba.PortsWithLink() == 0) {
    Log("AHCI: no disk\n");
    return 1;
  }
  {
    ahci::Port port(abar, static_cast<unsigned>(__builtin_ctz(hba.PortsWithLink())),
                    ahci_pool.pool(), hba.s64a());
    nvme::Controller nvme(nvme_regs, nvme_pool.pool());

    ResetFaults();
    const Status started = port.Start();
    const Result<ahci::IdentifyInfo> id = port.Identify();
    iommu.DrainEvents();
    Step(started.ok() && id.ok() && AllFaults() == 0,
         "AHCI port started and IDENTIFY done through its own mapped structures");
    if (id.ok()) {
      Log("       AHCI disk \"%s\", %llu sectors\n", id->model,
          static_cast<unsigned long long>(id->sectors));
    }

    ResetFaults();
    const Status nvme_up = nvme.Init();
    Result<nvme::NamespaceInfo> ns_or =
        nvme_up.ok() ? nvme.IdentifyNamespace(1) : Result<nvme::NamespaceInfo>(nvme_up);
    iommu.DrainEvents();
    if (!nvme_up.ok() || !ns_or.ok()) {
      Log("       NVMe: init %s, namespace 1 %s\n", nvme_up.str(), ns_or.status().str());
    }
    Step(nvme_up.ok() && ns_or.ok() && ns_or->block_bytes == kSector && AllFaults() == 0,
         "NVMe enabled, IDENTIFY, I/O queue pair created through its own mapped queues");
    if (!ns_or.ok()) return 1;
    const nvme::NamespaceInfo ns = *ns_or;
    const nvme::ControllerInfo& ni = nvme.info();
    Log("       NVMe \"%s\" serial \"%s\" fw \"%s\", version 0x%08x, MDTS %u, doorbell stride "
        "%u B, ready timeout %llu ms; namespace 1: %llu blocks of %u B\n",
        ni.model, ni.serial, ni.firmware, static_cast<unsigned>(ni.version),
        static_cast<unsigned>(ni.mdts), 4U << ni.doorbell_stride_log2,
        static_cast<unsigned long long>(ni.ready_timeout_ns / 1'000'000),
        static_cast<unsigned long long>(ns.blocks), static_cast<unsigned>(ns.block_bytes));
    Log("       AHCI structures: %zu strict-pool allocations; NVMe queues: %zu pool-wide "
        "allocations\n",
        ahci_pool->live_allocations(), nvme_pool->live_allocations());

    // 1) Each device reads the pattern through its hook: the buffer mapped for that command.
    Buffer ahci_buf(kBufferBytes, 0);
    Buffer nvme_buf(kBufferBytes, 0);
    if (!ahci_buf.ok() || !nvme_buf.ok()) return 1;
    ResetFaults();
    const Status ar = port.ReadMapped(ahci_mapper, 100, kBufferSectors, ahci_buf.pa());
    iommu.DrainEvents();
    const DmaMapping am = ahci_mapper.last();
    Log("       AHCI hook: pa 0x%llx mapped at 0x%llx (identity) for the READ, %s\n",
        static_cast<unsigned long long>(am.pa), static_cast<unsigned long long>(am.device_addr),
        ahci_hook.live_mappings() == 0 ? "unmapped when it returned" : "STILL MAPPED");
    Step(ar.ok() && VerifyPattern(ahci_buf.data(), 100, 128) && AllFaults() == 0 &&
             am.pa == ahci_buf.pa() && am.device_addr == am.pa &&
             am.direction == DmaDirection::kFromDevice && ahci_hook.live_mappings() == 0,
         "AHCI: READ DMA EXT of 128 sectors into its own buffer through the hook (identity), "
         "every byte verified, unmapped afterwards");
    ResetFaults();
    const Status nr = nvme.ReadMapped(nvme_mapper, ns, 200, kBufferSectors, nvme_buf.pa());
    iommu.DrainEvents();
    const DmaMapping nm = nvme_mapper.last();
    const bool outside_reserved = !nvme_reserved.Overlaps(nm.device_addr, nm.size);
    Log("       NVMe hook: pa 0x%llx mapped at iova 0x%llx (translated; %s every reserved "
        "window) for the READ, %s\n",
        static_cast<unsigned long long>(nm.pa), static_cast<unsigned long long>(nm.device_addr),
        outside_reserved ? "outside" : "INSIDE",
        nvme_hook.live_mappings() == 0 ? "unmapped when it returned" : "STILL MAPPED");
    Step(nr.ok() && VerifyPattern(nvme_buf.data(), 200, 128) && AllFaults() == 0 &&
             nm.pa == nvme_buf.pa() && nm.device_addr != nm.pa && outside_reserved &&
             nm.direction == DmaDirection::kFromDevice && nvme_hook.live_mappings() == 0,
         "NVMe: READ of 128 blocks (PRP list) into its own buffer through the hook (translated, "
         "outside the PCI windows and reserved regions), every byte verified, unmapped "
         "afterwards");

    // NVMe write, then read back, both through the hook.
    {
      Buffer out(kBufferBytes, 0);
      Buffer back(kBufferBytes, 0);
      if (!out.ok() || !back.ok()) return 1;
      for (uint64_t w = 0; w < kBufferBytes / 8; ++w) {
        const uint64_t v = WrittenWord(3000 + w / 64, w % 64);
        std::memcpy(out.data() + w * 8, &v, 8);
      }
      ResetFaults();
      const Status w = nvme.WriteMapped(nvme_mapper, ns, 3000, kBufferSectors, out.pa());
      const bool to_device = nvme_mapper.last().direction == DmaDirection::kToDevice;
      const Status r = nvme.ReadMapped(nvme_mapper, ns, 3000, kBufferSectors, back.pa());
      iommu.DrainEvents();
      Step(w.ok() && r.ok() && to_device && VerifySectors(back.data(), 3000, 128, WrittenWord) &&
               AllFaults() == 0 && nvme_hook.live_mappings() == 0,
           "NVMe: WRITE of 128 blocks, then READ back, every byte verified (both through the "
           "hook)");
    }

    // 2) Cross-device attempts, at buffers of the other device's pool (reachable by it).
    Result<DmaRegion> ahci_own = ahci_pool->Alloc(kBufferBytes, kBlock);
    Result<DmaRegion> nvme_own = nvme_pool->Alloc(kBufferBytes, kBlock);
    if (!ahci_own.ok() || !nvme_own.ok()) return 1;
    const DmaRegion ahci_region = *ahci_own;
    const DmaRegion nvme_region = *nvme_own;

    // 2a) The AHCI pointed at the NVMe's pool buffer.
    std::memset(nvme_region.cpu, 0xcc, nvme_region.size);
    ResetFaults();
    const Status a_cross =
        AhciReadAt(port, 400, nvme_region.cpu, nvme_region.device_addr, kBufferBytes);
    iommu.DrainEvents();
    Log("       the AHCI reported %s (QEMU's devices never see IOMMU faults)\n", a_cross.str());
    ReportFaults(g_ahci_faults);
    Step(All(nvme_region.cpu, kBufferBytes, 0xcc) &&
             BlockedFor(g_ahci_faults, ahci_sid, nvme_region.device_addr,
                        nvme_region.device_addr + kBufferBytes, DEVISO_FAULT_WRITE),
         "AHCI -> NVMe's buffer: DMA write blocked, canary intact, fault on the AHCI's "
         "StreamID only");

    // 2b) The NVMe pointed at the AHCI's pool buffer: a READ (the device writes).
    std::memset(ahci_region.cpu, 0xcc, ahci_region.size);
    ResetFaults();
    const Status n_cross =
        NvmeAt(false, nvme, ns, 500, ahci_region.cpu, ahci_region.device_addr, kBufferBytes);
    iommu.DrainEvents();
    Log("       the NVMe reported %s\n", n_cross.str());
    ReportFaults(g_nvme_faults);
    Step(All(ahci_region.cpu, kBufferBytes, 0xcc) &&
             BlockedFor(g_nvme_faults, nvme_sid, ahci_region.device_addr,
                        ahci_region.device_addr + kBufferBytes, DEVISO_FAULT_WRITE),
         "NVMe -> AHCI's buffer: DMA write blocked, canary intact, fault on the NVMe's "
         "StreamID only");
    // Who can reach what, with both devices' buffers mapped and the cross attempts just
    // reported (docs/iova-map.md: the README's picture is drawn from these lines).
    deviso::demo::PrintIovaMap();

    // 2c) The NVMe told to WRITE from the AHCI's buffer (the device reads it): the secret
    // must not reach the NVMe's disk.
    {
      std::memset(ahci_region.cpu, 0x5e, ahci_region.size);
      Buffer back(kBufferBytes, 0);
      if (!back.ok()) return 1;
      ResetFaults();
      const Status w =
          NvmeAt(true, nvme, ns, 4000, ahci_region.cpu, ahci_region.device_addr, kBufferBytes);
      iommu.DrainEvents();
      ReportFaults(g_nvme_faults);
      const bool faulted = BlockedFor(g_nvme_faults, nvme_sid, ahci_region.device_addr,
                                      ahci_region.device_addr + kBufferBytes, DEVISO_FAULT_READ);
      const Status r = nvme.ReadMapped(nvme_mapper, ns, 4000, kBufferSectors, back.pa());
      bool leaked = false;
      for (size_t i = 0; i + 8 <= back.size(); i += 8) {
        uint64_t v;
        std::memcpy(&v, back.data() + i, 8);
        leaked = leaked || v == 0x5e5e5e5e5e5e5e5eULL;
      }
      uint64_t first = 0;
      std::memcpy(&first, back.data(), 8);
      Log("       the NVMe reported %s for the WRITE; LBA 4000 now starts with 0x%016llx\n",
          w.str(), static_cast<unsigned long long>(first));
      Step(faulted && r.ok() && !leaked,
           "NVMe <- AHCI's buffer: DMA read blocked, no byte of it reached the NVMe's disk, "
           "fault on the NVMe's StreamID only");
    }
    ahci_pool->Free(ahci_region);
    nvme_pool->Free(nvme_region);

    // 3a) A freed strict-pool block: unmapped (strictly) before Free() returned.
    if (!iommu.caches_translations()) {
      Log("[NOTE] the freed-block and after-unmap checks prove less on %s: it keeps no "
          "translation cache, so a missing invalidation could not let the DMA through; they "
          "still show the unmap took effect\n",
          iommu.kind());
    }
    {
      Result<DmaRegion> block = ahci_pool->Alloc(kBlock, kBlock);
      if (!block.ok()) return 1;
      const DmaRegion freed = *block;
      ResetFaults();
      const Status used = AhciReadAt(port, 700, freed.cpu, freed.device_addr, kBlock);
      const bool worked =
          used.ok() && VerifyPattern(freed.cpu, 700, kBlock / kSector) && AllFaults() == 0;
      const Status released = ahci_pool->Release(freed);
      std::memset(freed.cpu, 0xcc, kBlock);
      ResetFaults();
      (void)AhciReadAt(port, 710, freed.cpu, freed.device_addr, kBlock);
      iommu.DrainEvents();
      Log("       strict-pool block at 0x%llx: %s while allocated, then freed (%s)\n",
          static_cast<unsigned long long>(freed.device_addr),
          worked ? "reachable" : "NOT reachable", released.str());
      Step(worked && released.ok() && All(freed.cpu, kBlock, 0xcc) &&
               BlockedFor(g_ahci_faults, ahci_sid, freed.device_addr, freed.device_addr + kBlock,
                          DEVISO_FAULT_WRITE),
           "freed strict-pool block unreachable by the AHCI: DMA blocked, canary intact, fault "
           "on the AHCI's StreamID");
    }

    // 3b) A freed pool-wide block: still mapped (the pool is mapped once, whole): the trade-off
    // docs/dma_pool.md documents, and why such a pool is private to one device.
    {
      Result<DmaRegion> block = nvme_pool->Alloc(kBlock, kBlock);
      if (!block.ok()) return 1;
      const DmaRegion freed = *block;
      const Status released = nvme_pool->Release(freed);
      std::memset(freed.cpu, 0xcc, kBlock);
      ResetFaults();
      const Status r = NvmeAt(false, nvme, ns, 720, freed.cpu, freed.device_addr, kBlock);
      iommu.DrainEvents();
      const bool landed = VerifyPattern(freed.cpu, 720, kBlock / kSector);
      Log("       pool-wide block at 0x%llx freed (%s); the NVMe's READ into it: %s, data %s\n",
          static_cast<unsigned long long>(freed.device_addr), released.str(), r.str(),
          landed ? "landed" : "did not land");
      Step(released.ok() && r.ok() && landed && AllFaults() == 0,
           "freed pool-wide block still reachable by the NVMe (the documented trade-off: a "
           "pool-wide pool is private to its device)");
    }

    // 3c) A buffer mapped through the hook, used, then UnmapForDevice(): the device address
    // (an IOVA) no longer reaches it.
    {
      Buffer b(kBufferBytes, 0);
      if (!b.ok()) return 1;
      const Result<DmaMapping> m =
          nvme_hook.MapForDevice(b.pa(), kBufferBytes, DmaDirection::kFromDevice);
      if (!m.ok()) return 1;
      ResetFaults();
      const Status r1 = NvmeAt(false, nvme, ns, 730, b.data(), m->device_addr, kBufferBytes);
      const bool worked = r1.ok() && VerifyPattern(b.data(), 730, 128) && AllFaults() == 0;
      const Status unmapped = nvme_hook.UnmapForDevice(*m);
      b.Fill(0xcc);
      ResetFaults();
      (void)NvmeAt(false, nvme, ns, 740, b.data(), m->device_addr, kBufferBytes);
      iommu.DrainEvents();
      Log("       hook mapping pa 0x%llx -> iova 0x%llx: %s while mapped, then unmapped (%s)\n",
          static_cast<unsigned long long>(m->pa), static_cast<unsigned long long>(m->device_addr),
          worked ? "reachable" : "NOT reachable", unmapped.str());
      Step(worked && unmapped.ok() && All(b.data(), kBufferBytes, 0xcc) &&
               BlockedFor(g_nvme_faults, nvme_sid, m->device_addr, m->device_addr + kBufferBytes,
                          DEVISO_FAULT_WRITE),
           "buffer mapped through the hook unreachable after UnmapForDevice: DMA blocked, "
           "canary intact, fault on the NVMe's StreamID");
    }

    // 4) The NVMe's own I/O submission queue made unreachable (a page of its pool-wide
    // mapping unmapped): QEMU's NVMe cannot fetch the command and reports a controller fatal
    // status (CSTS.CFS). The driver must end the command with -EIO at once, reset the
    // controller and bring it up again, and the controller must work once the queue is
    // mapped again.
    {
      const DmaRegion sq = nvme.io_submission_queue();
      const bool unmapped = deviso_unmap(&g_nvme_dev, nvme_sid, sq.device_addr, sq.size) == 0;
      ResetFaults();
      const Status s = nvme.ReadMapped(nvme_mapper, ns, 800, kBufferSectors, nvme_buf.pa());
      iommu.DrainEvents();
      const bool faulted = FaultIs(g_nvme_faults, DEVISO_FAULT_TRANSLATION, nvme_sid,
                                   sq.device_addr, sq.device_addr + sq.size, DEVISO_FAULT_READ);
      Log("       READ with the SQ unmapped: %s (fatal statuses %llu, timeouts %llu), "
          "controller %s; the hook's mapping %s\n",
          s.str(), static_cast<unsigned long long>(nvme.fatal_errors()),
          static_cast<unsigned long long>(nvme.timeouts()), nvme.ready() ? "ready" : "not ready",
          nvme_hook.live_mappings() == 0 ? "ended after the reset" : "STILL LIVE");
      const bool remapped = deviso_map(&g_nvme_dev, nvme_sid, sq.device_addr, sq.size) == 0;
      if (!nvme.ready()) (void)nvme.Recover();
      ResetFaults();
      nvme_buf.Fill(0);
      const Status again = nvme.ReadMapped(nvme_mapper, ns, 800, kBufferSectors, nvme_buf.pa());
      iommu.DrainEvents();
      Step(unmapped && s == Status::IoError() && nvme.fatal_errors() == 1 && faulted && remapped &&
               nvme_hook.live_mappings() == 0 && again.ok() &&
               VerifyPattern(nvme_buf.data(), 800, 128) && AllFaults() == 0,
           "NVMe with its I/O SQ unmapped: fetch blocked, CSTS.CFS seen (-EIO), controller "
           "reset; works again once remapped");
    }

    // Both devices still work after the blocked transfers.
    ahci_buf.Fill(0);
    nvme_buf.Fill(0);
    ResetFaults();
    const Status ar2 = port.ReadMapped(ahci_mapper, 600, kBufferSectors, ahci_buf.pa());
    const Status nr2 = nvme.ReadMapped(nvme_mapper, ns, 700, kBufferSectors, nvme_buf.pa());
    iommu.DrainEvents();
    Step(ar2.ok() && nr2.ok() && VerifyPattern(ahci_buf.data(), 600, 128) &&
             VerifyPattern(nvme_buf.data(), 700, 128) && AllFaults() == 0,
         "both devices still read correctly into their own buffers afterwards");

    // 5) Stop both before their queue memory goes back to the pools: the NVMe by a normal
    // shutdown (CC.SHN, then CC.EN=0), the AHCI port by clearing ST and FRE.
    Step(nvme.Shutdown().ok() && !nvme.ready(),
         "NVMe shut down (CC.SHN, CSTS.SHST complete, CC.EN=0) and its queues released");
    Step(port.Stop().ok(), "AHCI port stopped (ST, FRE clear; CR, FR seen clear)");
    Log("       the hooks mapped %llu / %llu buffers and unmapped as many: %s\n",
        static_cast<unsigned long long>(ahci_mapper.maps()),
        static_cast<unsigned long long>(nvme_mapper.maps()),
        ahci_mapper.maps() == ahci_mapper.unmaps() && nvme_mapper.maps() == nvme_mapper.unmaps()
            ? "yes"
            : "NO");
  }
  // The drivers are gone: every structure went back to its pool (the strict pool unmapped
  // each), and nothing may stay mapped through either hook.
  const bool released = ahci_pool->live_allocations() == 0 && nvme_pool->live_allocations() == 0 &&
                        ahci_pool->leaked_blocks() == 0 && ahci_pool->free_errors() == 0 &&
                        nvme_pool->free_errors() == 0 && ahci_hook.live_mappings() == 0 &&
                        nvme_hook.live_mappings() == 0 && nvme_iova.allocated_ranges() == 0;
  const Status ahci_unbound = ahci_pool->Unbind();
  const Status nvme_unbound = nvme_pool->Unbind();
  Step(released && ahci_unbound.ok() && nvme_unbound.ok(),
       "every driver structure of both devices released (strict pool: unmapped), no hook "
       "mapping left, both pools unbound");
  (void)pci.DisableBusMaster(ahci_fn->bdf);
  (void)pci.DisableBusMaster(nvme_fn->bdf);
  Step(deviso_ctx_free(&g_ahci_dev, ahci_sid) == 0 && deviso_ctx_free(&g_nvme_dev, nvme_sid) == 0,
       "deviso_ctx_free for both contexts");
  iommu.PrintStats();
  if (!iommu.reports_fault_overflow()) {
    Log("[NOTE] %s drops faults beyond its event queue silently: fault counts are lower "
        "bounds\n",
        iommu.kind());
  }
  return g_steps.failed() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace multi_device

int deviso::qemu_virt::AppMain(const PlatformInfo& info) {
  const int rc = multi_device::Run(info);
  deviso::port::Log("multi_device: %s (%d of %d steps passed)\n", rc == 0 ? "PASS" : "FAIL",
                    multi_device::g_steps.passed(), multi_device::g_steps.total());
  return rc;
}
