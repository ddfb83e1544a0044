// multi_device: two DMA devices on one thread, each in its own deviso context, on QEMU's
// `virt` board with its SMMUv3 (issue 5, "Two devices on one thread, on QEMU").
//
// An ICH9 AHCI controller and an NVMe controller are found by PCI enumeration; their
// StreamIDs come from the host bridge's iommu-map (never constants). Each gets a context
// (deviso_ctx_alloc) before it may master the bus, and every structure its driver uses
// (AHCI command list, FIS area, command table; NVMe admin and I/O queues, identify buffers,
// PRP list) comes from an IsolatedDmaAllocator, i.e. from memory mapped for that device only.
// Then:
//   1. each device reads the disk pattern into its own mapped buffer (every byte verified);
//   2. the NVMe writes a new pattern and reads it back;
//   3. the AHCI is pointed at a buffer mapped only for the NVMe, and the NVMe at a buffer
//      mapped only for the AHCI (both directions; for the NVMe also a WRITE from the AHCI's
//      buffer, i.e. a device read of it): each is blocked, the canaries stay intact, and the
//      SMMU's fault is decoded and attributed to the offending device's StreamID only;
//   4. the NVMe's own submission queue unmapped: the fetch is blocked, the controller reports
//      CSTS.CFS, the driver resets it, and it works again once the queue is remapped;
//   5. clean teardown: the NVMe is shut down (CC.SHN) and the AHCI port stopped before their
//      queue memory is unmapped; both contexts are freed.
// QEMU's devices never see SMMU faults (a blocked transfer completes "successfully"), so
// isolation is judged by memory contents and SMMU events only.
//
// Exit status 0 only when every step passed; the last console line says the same.

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "arch.h"
#include "core/mmio.h"
#include "deviso/deviso.h"
#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "dma_arena.h"
#include "drivers/ahci/ahci.h"
#include "drivers/isolated_dma.h"
#include "drivers/nvme/nvme.h"
#include "gic.h"
#include "pci.h"
#include "platform.h"
#include "ports/port.h"
#include "smmu_platform.h"
#include "smmuv3/smmu.h"

namespace multi_device {
namespace {

using deviso::Result;
using deviso::Status;
using deviso::drivers::DmaRegion;
using deviso::drivers::DmaSegment;
using deviso::port::Log;
namespace qv = deviso::qemu_virt;
namespace ahci = deviso::drivers::ahci;
namespace nvme = deviso::drivers::nvme;
namespace smmuv3 = deviso::smmuv3;

constexpr uint16_t kIntelVendor = 0x8086;
constexpr uint16_t kIch9Ahci = 0x2922;
constexpr unsigned kAbarIndex = 5;         // AHCI 1.3.1 2.1.11: ABAR is BAR5
constexpr uint32_t kNvmeClass = 0x010802;  // mass storage, NVM, NVMe I/O controller
constexpr unsigned kNvmeBar = 0;           // NVMe 1.4c 2.1.10: MLBAR/MUBAR is BAR0 (64-bit)
constexpr uint64_t kSector = 512;
constexpr size_t kBufferBytes = 64 * 1024;  // 128 sectors

// The disk pattern scripts/demo writes (examples/hello_platform/disk_pattern.h).
constexpr uint64_t DiskWord(uint64_t n, uint64_t k) {
  return (uint64_t{0xD15C} << 48) | (n << 8) | k;
}
constexpr uint64_t WrittenWord(uint64_t n, uint64_t k) {
  return (uint64_t{0x5EED} << 48) | (n << 8) | (k ^ 0xff);
}

struct device g_ahci_dev = {"ahci0"};
struct device g_nvme_dev = {"nvme0"};
qv::DmaArena g_arena(/*coherent=*/true);  // QEMU virt PCIe is cache-coherent
int g_failures = 0;
int g_steps = 0;

void Step(bool ok, const char* what) {
  ++g_steps;
  Log("[%s] %s\n", ok ? "PASS" : "FAIL", what);
  if (!ok) ++g_failures;
}

// ---- Faults --------------------------------------------------------------------------------

// What one context's fault handler saw since the last Reset(); written from the SMMU's
// interrupt. A blocked 64 KiB transfer raises ~16k events (QEMU retries in 4-byte pieces), so
// the event queue overflows; deviso then tells every context that faults were lost
// (DEVISO_FAULT_OVERFLOW). Those are counted apart: attribution uses the decoded faults only.
struct FaultLog {
  const char* who = "";
  uint32_t count = 0;      // decoded faults (not overflow notices)
  uint32_t overflows = 0;  // "faults were lost" notices
  uint32_t print_budget = 0;
  deviso_fault first{};
  void Reset() {
    const uint64_t daif = qv::arch::MaskInterrupts();
    count = 0;
    overflows = 0;
    print_budget = 2;
    first = deviso_fault{};
    qv::arch::RestoreInterrupts(daif);
  }
};
FaultLog g_ahci_faults{"the AHCI's context"};
FaultLog g_nvme_faults{"the NVMe's context"};
FaultLog g_unrouted{"streams without a context"};

void OnFault(const deviso_fault* fault, void* user) {
  auto* log = static_cast<FaultLog*>(user);
  if (fault->reason == DEVISO_FAULT_OVERFLOW) {
    ++log->overflows;
    return;
  }
  if (log->count == 0) log->first = *fault;
  ++log->count;
  if (log->print_budget > 0) {
    --log->print_budget;
    char line[192];
    deviso_fault_format(fault, line, sizeof(line));
    Log("       smmu event for %s: %s\n", log->who, line);
  }
}

uint32_t FaultCount(const FaultLog& log) { return __atomic_load_n(&log.count, __ATOMIC_RELAXED); }

void ResetFaults() {
  g_ahci_faults.Reset();
  g_nvme_faults.Reset();
  g_unrouted.Reset();
}

uint32_t AllFaults() {
  return FaultCount(g_ahci_faults) + FaultCount(g_nvme_faults) + FaultCount(g_unrouted);
}

// What a blocked transfer left in the logs: the offender's decoded faults, and whether the
// event queue overflowed meanwhile (expected for 64 KiB; the SMMU driver recovers from it).
void ReportFaults(const FaultLog& offender) {
  Log("       %u faults decoded for %s, %u for the other context, %u for streams without one; "
      "event queue overflowed: %s\n",
      FaultCount(offender), offender.who,
      FaultCount(&offender == &g_ahci_faults ? g_nvme_faults : g_ahci_faults),
      FaultCount(g_unrouted), offender.overflows != 0 ? "yes" : "no");
}

// The first fault of `log` is `reason` on `sid`, at an address inside [lo, hi), for an access
// of `direction` (DEVISO_FAULT_READ / DEVISO_FAULT_WRITE).
bool FaultIs(const FaultLog& log, uint32_t reason, uint32_t sid, uint64_t lo, uint64_t hi,
             uint32_t direction) {
  return FaultCount(log) > 0 && log.first.reason == reason && log.first.sid == sid &&
         (log.first.flags & DEVISO_FAULT_ADDR_VALID) != 0 && log.first.iova >= lo &&
         log.first.iova < hi && (log.first.flags & direction) != 0;
}

// ---- Memory --------------------------------------------------------------------------------

// Raw arena memory: device address == physical address, mapped for nobody until deviso_map.
class Buffer {
 public:
  Buffer(size_t bytes, uint8_t fill) {
    Result<DmaRegion> r = g_arena.Alloc(bytes, 4096);
    if (r.ok()) {
      region_ = *r;
      std::memset(region_.cpu, fill, bytes);
    }
  }
  ~Buffer() {
    if (region_.cpu != nullptr) g_arena.Free(region_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  bool ok() const { return region_.cpu != nullptr; }
  const DmaRegion& region() const { return region_; }
  uint8_t* data() const { return static_cast<uint8_t*>(region_.cpu); }
  uint64_t pa() const { return region_.device_addr; }
  size_t size() const { return region_.size; }
  void Fill(uint8_t value) { std::memset(region_.cpu, value, region_.size); }
  bool All(uint8_t value) const {
    for (size_t i = 0; i < region_.size; ++i) {
      if (data()[i] != value) return false;
    }
    return true;
  }

 private:
  DmaRegion region_;
};

template <typename WordFn>
bool Verify(const uint8_t* p, uint64_t lba, uint64_t sectors, WordFn word) {
  for (uint64_t s = 0; s < sectors; ++s) {
    for (uint64_t k = 0; k < kSector / 8; ++k) {
      uint64_t w;
      std::memcpy(&w, p + s * kSector + k * 8, 8);
      if (w != word(lba + s, k)) {
        Log("       mismatch at LBA %llu word %llu: 0x%016llx\n",
            static_cast<unsigned long long>(lba + s), static_cast<unsigned long long>(k),
            static_cast<unsigned long long>(w));
        return false;
      }
    }
  }
  return true;
}
bool VerifyPattern(const uint8_t* p, uint64_t lba, uint64_t sectors) {
  return Verify(p, lba, sectors, DiskWord);
}

Status AhciRead(ahci::Port& port, uint64_t lba, const Buffer& b) {
  const DmaSegment segment{&b.region(), 0, b.size()};
  return port.Read(lba, static_cast<uint32_t>(b.size() / kSector), {&segment, 1});
}
Status NvmeRead(nvme::Controller& c, const nvme::NamespaceInfo& ns, uint64_t lba, const Buffer& b) {
  const DmaSegment segment{&b.region(), 0, b.size()};
  return c.Read(ns, lba, static_cast<uint32_t>(b.size() / ns.block_bytes), {&segment, 1});
}
Status NvmeWrite(nvme::Controller& c, const nvme::NamespaceInfo& ns, uint64_t lba,
                 const Buffer& b) {
  const DmaSegment segment{&b.region(), 0, b.size()};
  return c.Write(ns, lba, static_cast<uint32_t>(b.size() / ns.block_bytes), {&segment, 1});
}

// The SMMU's interrupt may not have been taken yet: drain its event queue here too.
void Drain(smmuv3::Smmuv3& smmu) { smmu.HandleEvents(); }

// ---- Devices -------------------------------------------------------------------------------

// Binds `dev` (its StreamID from the iommu-map), allocates its context and installs the fault
// handler; only then turns bus mastering on.
bool Isolate(qv::PciHost& pci, const qv::PciFunction& fn, const qv::PlatformInfo& info,
             smmuv3::Smmuv3& smmu, device* dev, FaultLog* faults, uint32_t* sid_out) {
  const Result<uint32_t> sid = pci.StreamId(fn.bdf, info.smmu.phandle);
  if (!sid.ok()) {
    Log("       %s: no StreamID in iommu-map: %s\n", dev->name, sid.status().str());
    return false;
  }
  const uint32_t sids[] = {*sid};
  if (!deviso::Registry::Default().BindDevice(dev, smmu, sids).ok()) return false;
  if (deviso_ctx_alloc(dev, *sid) != 0) return false;
  Result<deviso::Context> ctx = deviso::Registry::Default().FindContext(dev, *sid);
  if (!ctx.ok() || !ctx->SetFaultHandler(&OnFault, faults, 1'000'000).ok()) return false;
  if (!pci.EnableBusMaster(fn.bdf).ok()) return false;
  *sid_out = *sid;
  Log("       %s: %04x:%04x at %02x:%02x.%x, StreamID 0x%x\n", dev->name, fn.vendor_id,
      fn.device_id, fn.bdf.bus, fn.bdf.device, fn.bdf.function, *sid);
  return true;
}

bool InWindow(const qv::PciWindow& w, uint64_t addr, uint64_t size) {
  return w.present && addr >= w.cpu_addr && addr + size <= w.cpu_addr + w.size;
}

int Run(const qv::PlatformInfo& info) {
  Result<smmuv3::Smmuv3*> smmu_or = qv::SetupSmmu(info, g_arena);
  if (!smmu_or.ok()) {
    Log("SMMUv3 setup failed: %s (run with -M virt,iommu=smmuv3)\n", smmu_or.status().str());
    return 1;
  }
  smmuv3::Smmuv3& smmu = **smmu_or;
  Log("deviso multi_device on \"%s\": AHCI + NVMe on one thread, one context each\n", info.model);
  Step(true, "SMMUv3 enabled with every StreamID blocked (default-deny)");
  if (const Status s = smmu.SetUnroutedFaultHandler(&OnFault, &g_unrouted); !s.ok()) {
    Log("the demo reports faults: build deviso with DEVISO_CONFIG_FAULT_REPORTS=ON (%s)\n",
        s.str());
    return 1;
  }
  qv::EnableInterrupts();

  qv::PciHost pci(info.pci);
  if (!pci.Enumerate().ok()) return 1;
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

  // ---- One context per device, bus mastering only afterwards ----
  uint32_t ahci_sid = 0;
  uint32_t nvme_sid = 0;
  const bool ahci_isolated =
      Isolate(pci, *ahci_fn, info, smmu, &g_ahci_dev, &g_ahci_faults, &ahci_sid);
  const bool nvme_isolated =
      Isolate(pci, *nvme_fn, info, smmu, &g_nvme_dev, &g_nvme_faults, &nvme_sid);
  Step(ahci_isolated && nvme_isolated && ahci_sid != nvme_sid,
       "AHCI and NVMe bound with StreamIDs from iommu-map, one deviso context each");
  if (!ahci_isolated || !nvme_isolated) return 1;
  deviso_caps caps{};
  (void)deviso_get_caps(&g_ahci_dev, &caps);
  const size_t page = static_cast<size_t>(caps.page_sizes & (~caps.page_sizes + 1));

  deviso::drivers::IsolatedDmaAllocator ahci_dma(g_arena, &g_ahci_dev, ahci_sid, page);
  deviso::drivers::IsolatedDmaAllocator nvme_dma(g_arena, &g_nvme_dev, nvme_sid, page);
  deviso::DirectMmio abar(static_cast<uintptr_t>(ahci_fn->bars[kAbarIndex].cpu_addr));
  deviso::DirectMmio nvme_regs(static_cast<uintptr_t>(bar0.cpu_addr));
  ahci::Hba hba(abar);
  if (!hba.Init().ok() || hba.PortsWithLink() == 0) {
    Log("AHCI: no disk\n");
    return 1;
  }
  {
    ahci::Port port(abar, static_cast<unsigned>(__builtin_ctz(hba.PortsWithLink())), ahci_dma,
                    hba.s64a());
    nvme::Controller nvme(nvme_regs, nvme_dma);

    ResetFaults();
    const Status started = port.Start();
    const Result<ahci::IdentifyInfo> id = port.Identify();
    Drain(smmu);
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
    Drain(smmu);
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

    // 1) Each device reads the pattern into its own mapped buffer.
    Buffer ahci_buf(kBufferBytes, 0);
    Buffer nvme_buf(kBufferBytes, 0);
    if (!ahci_buf.ok() || !nvme_buf.ok()) return 1;
    const bool ahci_mapped = deviso_map(&g_ahci_dev, ahci_sid, ahci_buf.pa(), ahci_buf.size()) == 0;
    const bool nvme_mapped = deviso_map(&g_nvme_dev, nvme_sid, nvme_buf.pa(), nvme_buf.size()) == 0;
    ResetFaults();
    const Status ar = AhciRead(port, 100, ahci_buf);
    Drain(smmu);
    Step(ahci_mapped && ar.ok() && VerifyPattern(ahci_buf.data(), 100, 128) && AllFaults() == 0,
         "AHCI: READ DMA EXT of 128 sectors into its own mapped buffer, every byte verified");
    ResetFaults();
    const Status nr = NvmeRead(nvme, ns, 200, nvme_buf);
    Drain(smmu);
    Step(nvme_mapped && nr.ok() && VerifyPattern(nvme_buf.data(), 200, 128) && AllFaults() == 0,
         "NVMe: READ of 128 blocks (PRP list) into its own mapped buffer, every byte verified");

    // 2) NVMe write, then read back.
    {
      Buffer out(kBufferBytes, 0);
      Buffer back(kBufferBytes, 0);
      for (uint64_t w = 0; w < kBufferBytes / 8; ++w) {
        const uint64_t v = WrittenWord(3000 + w / 64, w % 64);
        std::memcpy(out.data() + w * 8, &v, 8);
      }
      const bool mapped = deviso_map(&g_nvme_dev, nvme_sid, out.pa(), out.size()) == 0 &&
                          deviso_map(&g_nvme_dev, nvme_sid, back.pa(), back.size()) == 0;
      ResetFaults();
      const Status w = NvmeWrite(nvme, ns, 3000, out);
      const Status r = NvmeRead(nvme, ns, 3000, back);
      Drain(smmu);
      Step(mapped && w.ok() && r.ok() && Verify(back.data(), 3000, 128, WrittenWord) &&
               AllFaults() == 0,
           "NVMe: WRITE of 128 blocks, then READ back, every byte verified");
      (void)deviso_unmap(&g_nvme_dev, nvme_sid, out.pa(), out.size());
      (void)deviso_unmap(&g_nvme_dev, nvme_sid, back.pa(), back.size());
    }

    // 3a) The AHCI pointed at the buffer mapped only for the NVMe.
    nvme_buf.Fill(0xcc);
    ResetFaults();
    const Status a_cross = AhciRead(port, 400, nvme_buf);
    Drain(smmu);
    Log("       the AHCI reported %s (QEMU's devices never see SMMU faults)\n", a_cross.str());
    ReportFaults(g_ahci_faults);
    Step(nvme_buf.All(0xcc) &&
             FaultIs(g_ahci_faults, DEVISO_FAULT_TRANSLATION, ahci_sid, nvme_buf.pa(),
                     nvme_buf.pa() + nvme_buf.size(), DEVISO_FAULT_WRITE) &&
             FaultCount(g_nvme_faults) == 0 && FaultCount(g_unrouted) == 0,
         "AHCI -> NVMe's buffer: DMA write blocked, canary intact, fault on the AHCI's "
         "StreamID only");

    // 3b) The NVMe pointed at the buffer mapped only for the AHCI: a READ (device writes).
    ahci_buf.Fill(0xcc);
    ResetFaults();
    const Status n_cross = NvmeRead(nvme, ns, 500, ahci_buf);
    Drain(smmu);
    Log("       the NVMe reported %s\n", n_cross.str());
    ReportFaults(g_nvme_faults);
    Step(ahci_buf.All(0xcc) &&
             FaultIs(g_nvme_faults, DEVISO_FAULT_TRANSLATION, nvme_sid, ahci_buf.pa(),
                     ahci_buf.pa() + ahci_buf.size(), DEVISO_FAULT_WRITE) &&
             FaultCount(g_ahci_faults) == 0 && FaultCount(g_unrouted) == 0,
         "NVMe -> AHCI's buffer: DMA write blocked, canary intact, fault on the NVMe's "
         "StreamID only");

    // 3c) The NVMe told to WRITE from the AHCI's buffer (the device reads it): the secret
    // must not reach the NVMe's disk.
    {
      ahci_buf.Fill(0x5e);
      Buffer back(kBufferBytes, 0);
      const bool mapped = deviso_map(&g_nvme_dev, nvme_sid, back.pa(), back.size()) == 0;
      ResetFaults();
      const Status w = NvmeWrite(nvme, ns, 4000, ahci_buf);
      Drain(smmu);
      ReportFaults(g_nvme_faults);
      const bool faulted = FaultIs(g_nvme_faults, DEVISO_FAULT_TRANSLATION, nvme_sid, ahci_buf.pa(),
                                   ahci_buf.pa() + ahci_buf.size(), DEVISO_FAULT_READ) &&
                           FaultCount(g_ahci_faults) == 0 && FaultCount(g_unrouted) == 0;
      const Status r = NvmeRead(nvme, ns, 4000, back);
      bool leaked = false;
      for (size_t i = 0; i + 8 <= back.size(); i += 8) {
        uint64_t v;
        std::memcpy(&v, back.data() + i, 8);
        leaked = leaked || v == 0x5e5e5e5e5e5e5e5eULL;
      }
      Log("       the NVMe reported %s for the WRITE; LBA 4000 now starts with 0x%016llx\n",
          w.str(), static_cast<unsigned long long>(*reinterpret_cast<uint64_t*>(back.data())));
      Step(mapped && faulted && r.ok() && !leaked,
           "NVMe <- AHCI's buffer: DMA read blocked, no byte of it reached the NVMe's disk, "
           "fault on the NVMe's StreamID only");
      (void)deviso_unmap(&g_nvme_dev, nvme_sid, back.pa(), back.size());
    }

    // 4) The NVMe's own I/O submission queue made unreachable: QEMU's NVMe cannot fetch the
    // command and reports a controller fatal status (CSTS.CFS). The driver must end the command
    // with -EIO at once, reset the controller and bring it up again, and the controller must
    // work once the queue is mapped again.
    {
      const DmaRegion sq = nvme.io_submission_queue();
      const bool unmapped = deviso_unmap(&g_nvme_dev, nvme_sid, sq.device_addr, sq.size) == 0;
      ResetFaults();
      const Status s = NvmeRead(nvme, ns, 800, nvme_buf);
      Drain(smmu);
      const bool faulted = FaultIs(g_nvme_faults, DEVISO_FAULT_TRANSLATION, nvme_sid,
                                   sq.device_addr, sq.device_addr + sq.size, DEVISO_FAULT_READ);
      Log("       READ with the SQ unmapped: %s (fatal statuses %llu, timeouts %llu), "
          "controller %s\n",
          s.str(), static_cast<unsigned long long>(nvme.fatal_errors()),
          static_cast<unsigned long long>(nvme.timeouts()), nvme.ready() ? "ready" : "not ready");
      const bool remapped = deviso_map(&g_nvme_dev, nvme_sid, sq.device_addr, sq.size) == 0;
      if (!nvme.ready()) (void)nvme.Recover();
      ResetFaults();
      nvme_buf.Fill(0);
      const Status again = NvmeRead(nvme, ns, 800, nvme_buf);
      Drain(smmu);
      Step(unmapped && s == Status::IoError() && nvme.fatal_errors() == 1 && faulted && remapped &&
               again.ok() && VerifyPattern(nvme_buf.data(), 800, 128) && AllFaults() == 0,
           "NVMe with its I/O SQ unmapped: fetch blocked, CSTS.CFS seen (-EIO), controller "
           "reset; works again once remapped");
    }

    // Both devices still work after the blocked transfers.
    ahci_buf.Fill(0);
    nvme_buf.Fill(0);
    ResetFaults();
    const Status ar2 = AhciRead(port, 600, ahci_buf);
    const Status nr2 = NvmeRead(nvme, ns, 700, nvme_buf);
    Drain(smmu);
    Step(ar2.ok() && nr2.ok() && VerifyPattern(ahci_buf.data(), 600, 128) &&
             VerifyPattern(nvme_buf.data(), 700, 128) && AllFaults() == 0,
         "both devices still read correctly into their own buffers afterwards");
    (void)deviso_unmap(&g_ahci_dev, ahci_sid, ahci_buf.pa(), ahci_buf.size());
    (void)deviso_unmap(&g_nvme_dev, nvme_sid, nvme_buf.pa(), nvme_buf.size());

    // 5) Stop both before their queue memory is unmapped: the NVMe by a normal shutdown
    // (CC.SHN, then CC.EN=0), the AHCI port by clearing ST and FRE.
    Step(nvme.Shutdown().ok() && !nvme.ready(),
         "NVMe shut down (CC.SHN, CSTS.SHST complete, CC.EN=0) and its queues unmapped");
    Step(port.Stop().ok(), "AHCI port stopped (ST, FRE clear; CR, FR seen clear)");
  }
  Step(ahci_dma.leaked() == 0 && nvme_dma.leaked() == 0,
       "every driver structure of both devices unmapped (deviso_unmap) on release");
  (void)pci.DisableBusMaster(ahci_fn->bdf);
  (void)pci.DisableBusMaster(nvme_fn->bdf);
  Step(deviso_ctx_free(&g_ahci_dev, ahci_sid) == 0 && deviso_ctx_free(&g_nvme_dev, nvme_sid) == 0,
       "deviso_ctx_free for both contexts");
  const smmuv3::SmmuStats st = smmu.stats();
  Log("SMMU: %llu commands, %llu CMD_SYNCs, %llu events (%llu for streams without a context), "
      "%llu overflows\n",
      static_cast<unsigned long long>(st.commands), static_cast<unsigned long long>(st.syncs),
      static_cast<unsigned long long>(st.events),
      static_cast<unsigned long long>(st.unrouted_faults),
      static_cast<unsigned long long>(st.event_overflows));
  return g_failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace multi_device

int deviso::qemu_virt::AppMain(const PlatformInfo& info) {
  const int rc = multi_device::Run(info);
  deviso::port::Log("multi_device: %s (%d of %d steps passed)\n", rc == 0 ? "PASS" : "FAIL",
                    multi_device::g_steps - multi_device::g_failures, multi_device::g_steps);
  return rc;
}
