// virtio_iommu_smoke: bring-up of deviso's virtio-iommu backend on QEMU `virt`
// (-M virt -device virtio-iommu-pci; scripts/demo --iommu virtio --image virtio_iommu_smoke).
//
// Finds the virtio-iommu by PCI enumeration, initialises it with bypass cleared (default-deny),
// binds the AHCI with its endpoint ID from the devicetree's iommu-map, and through deviso's C
// API: maps a buffer, reads disk sectors into it by DMA and checks every byte; unmaps part of
// the buffer and shows the rest still reachable and the unmapped part blocked; shows a DMA to
// never-mapped memory blocked (canary intact, fault event decoded and printed). Exit status 0
// only when every step passed.

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
#include "dma/dma_mapper.h"
#include "dma_arena.h"
#include "dma_platform.h"
#include "drivers/ahci/ahci.h"
#include "drivers/isolated_dma.h"
#include "pci.h"
#include "platform.h"
#include "virtio_iommu_platform.h"

namespace virtio_iommu_smoke {
namespace {

using deviso::Result;
using deviso::Status;
using deviso::drivers::DmaRegion;
using deviso::drivers::DmaSegment;
using deviso::port::Log;
namespace qv = deviso::qemu_virt;
namespace ahci = deviso::drivers::ahci;
namespace vio = deviso::virtio_iommu;
using deviso::demo::FaultLog;
using deviso::demo::RecordFault;
using deviso::demo::VerifyPattern;

constexpr uint16_t kIntelVendor = 0x8086;
constexpr uint16_t kIch9Ahci = 0x2922;
constexpr unsigned kAbarIndex = 5;  // AHCI 1.3.1 2.1.11
constexpr uint64_t kSector = 512;

char g_ahci_name[24];
struct device g_ahci_dev = {g_ahci_name};
qv::DmaArena g_arena(/*coherent=*/true);
deviso::demo::Steps g_steps;

void Step(bool ok, const char* what) { g_steps.Step(ok, what); }

// What the fault handlers (RecordFault) saw; events are polled (HandleEvents).
FaultLog g_faults;
FaultLog g_unrouted;

// Arena memory, mapped for nobody until deviso_map says so; device address == physical.
class Buffer : public deviso::demo::ArenaBuffer {
 public:
  Buffer(size_t bytes, uint8_t fill) : ArenaBuffer(g_arena, bytes, fill) {}
};

Status ReadInto(ahci::Port& port, uint64_t lba, uint32_t sectors, void* cpu, uint64_t dev_addr) {
  const DmaRegion region{cpu, dev_addr, sectors * kSector};
  const DmaSegment segment{&region, 0, sectors * kSector};
  return port.Read(lba, sectors, {&segment, 1});
}

bool FirstFaultIs(const FaultLog& log, uint32_t reason, uint64_t lo, uint64_t hi, uint32_t sid) {
  return log.count > 0 && log.first.reason == reason && log.first.sid == sid &&
         (log.first.flags & DEVISO_FAULT_ADDR_VALID) != 0 && log.first.iova >= lo &&
         log.first.iova < hi;
}

int Run(const qv::PlatformInfo& info) {
  qv::PciHost pci(info.pci);
  if (!pci.Enumerate().ok()) {
    Log("PCI enumeration failed\n");
    return 1;
  }
  Result<qv::VirtioIommuPlatform> vio_or = qv::SetupVirtioIommu(info, g_arena, pci);
  if (!vio_or.ok()) {
    Log("virtio-iommu setup failed: %s (run with -M virt -device virtio-iommu-pci)\n",
        vio_or.status().str());
    return 1;
  }
  vio::VirtioIommu& unit = *vio_or->unit;
  const uint64_t drv = unit.driver_features();
  Log("deviso virtio_iommu_smoke on \"%s\": %s at %02x:%02x.%x, iommu-map phandle 0x%x\n",
      info.model, unit.caps().name, vio_or->bdf.bus, vio_or->bdf.device, vio_or->bdf.function,
      vio_or->phandle);
  Log("       features offered 0x%llx, accepted 0x%llx; page_size_mask 0x%llx, input "
      "[0x%llx, 0x%llx], domains [%u, %u], probe_size %u\n",
      static_cast<unsigned long long>(unit.device_features()), static_cast<unsigned long long>(drv),
      static_cast<unsigned long long>(unit.page_size_mask()),
      static_cast<unsigned long long>(unit.input_range().start),
      static_cast<unsigned long long>(unit.input_range().end), unit.domain_range().start,
      unit.domain_range().end, unit.probe_size());
  Step((drv & vio::feature::Bit(vio::feature::kBypassConfig)) != 0 &&
           (drv & vio::feature::Bit(vio::feature::kMapUnmap)) != 0,
       "virtio-iommu initialised: BYPASS_CONFIG negotiated, bypass = 0 before DRIVER_OK");
  if (!unit.SetUnroutedFaultHandler(&RecordFault, &g_unrouted).ok()) return 1;

  const qv::PciFunction* ahci_fn = pci.Find(kIntelVendor, kIch9Ahci);
  if (ahci_fn == nullptr) {
    Log("no ICH9 AHCI on PCI (examples/virtio_iommu_smoke/qemu-devices adds one)\n");
    return 1;
  }
  const Result<uint32_t> sid_or = pci.StreamId(ahci_fn->bdf, vio_or->phandle);
  if (!sid_or.ok()) {
    Log("the AHCI's requester ID is not in the virtio-iommu's iommu-map\n");
    return 1;
  }
  const uint32_t sid = *sid_or;
  std::snprintf(g_ahci_name, sizeof(g_ahci_name), "ahci@%02x:%02x.%x", ahci_fn->bdf.bus,
                ahci_fn->bdf.device, ahci_fn->bdf.function);
  const uint32_t sids[] = {sid};
  Step(deviso::Registry::Default().BindDevice(&g_ahci_dev, unit, sids).ok(),
       "AHCI bound with its endpoint ID from the iommu-map");
  Log("       device %s, endpoint 0x%x\n", g_ahci_dev.name, sid);
  Step(deviso_ctx_alloc(&g_ahci_dev, sid) == 0, "deviso_ctx_alloc(ahci, endpoint): ATTACH");
  {
    deviso::ReservedRegion r[4];
    const size_t n = unit.ReservedRegions(sid, r);
    for (size_t i = 0; i < n && i < 4; ++i) {
      Log("       PROBE: reserved region [0x%llx, +0x%llx) %s\n",
          static_cast<unsigned long long>(r[i].start), static_cast<unsigned long long>(r[i].size),
          r[i].kind == deviso::ReservedRegion::Kind::kMsi ? "MSI" : "reserved");
    }
    const bool refused = n > 0 && deviso_map_iova(&g_ahci_dev, sid, r[0].start, 0x4000'0000, 4096,
                                                  DEVISO_PERM_RW) == -EINVAL;
    Step(refused, "PROBE's reserved region reported, and a map over it refused (-EINVAL)");
  }
  Result<deviso::Context> ctx = deviso::Registry::Default().FindContext(&g_ahci_dev, sid);
  if (!ctx.ok() || !ctx->SetFaultHandler(&RecordFault, &g_faults, 1'000'000).ok()) return 1;
  if (!pci.EnableBusMaster(ahci_fn->bdf).ok()) return 1;

  deviso::DirectMmio abar(static_cast<uintptr_t>(ahci_fn->bars[kAbarIndex].cpu_addr));
  ahci::Hba hba(abar);
  if (!hba.Init().ok() || hba.PortsWithLink() == 0) {
    Log("AHCI: no disk\n");
    return 1;
  }
  const unsigned port_index = static_cast<unsigned>(__builtin_ctz(hba.PortsWithLink()));
  // The driver's structures through the DMA-driver hook: identity mappings in the AHCI's
  // context, kept out of the PCI windows and the PROBE's reserved regions.
  deviso::dma::ReservedWindows reserved;
  const Result<deviso::dma::DeviceBinding> binding =
      qv::PciIdentityBinding(info, *ctx, sid, reserved);
  if (!binding.ok()) return 1;
  deviso::dma::StaticContextDmaMapper<8> mapper(*binding);
  deviso::drivers::IsolatedDmaAllocator isolated(g_arena, mapper);
  {
    ahci::Port port(abar, port_index, isolated, hba.s64a());
    g_faults.Reset();
    const Status started = port.Start();
    const Result<ahci::IdentifyInfo> id = port.Identify();
    unit.HandleEvents();
    Step(started.ok() && id.ok() && g_faults.count == 0,
         "AHCI port started, IDENTIFY through mapped command list, FIS area and table");

    // Map 64 KiB, read 128 sectors into it, check every byte.
    Buffer data(64 * 1024, 0);
    g_faults.Reset();
    const bool mapped = data.ok() && deviso_map(&g_ahci_dev, sid, data.pa(), data.size()) == 0;
    const Status read = ReadInto(port, 100, 128, data.data(), data.pa());
    unit.HandleEvents();
    Step(mapped && read.ok() && VerifyPattern(data.data(), 100, 128) && g_faults.count == 0,
         "deviso_map(64 KiB); READ DMA EXT of 128 sectors; every byte verified");

    // Partial unmap: the first 16 KiB go, the rest must stay reachable (the device refuses
    // partial UNMAPs; deviso maps page by page so this is exact).
    const bool partial = deviso_unmap(&g_ahci_dev, sid, data.pa(), 16 * 1024) == 0;
    std::memset(data.data(), 0xcc, data.size());
    g_faults.Reset();
    const Status rest = ReadInto(port, 1000, 96, data.data() + 16 * 1024, data.pa() + 16 * 1024);
    unit.HandleEvents();
    Step(partial && rest.ok() && VerifyPattern(data.data() + 16 * 1024, 1000, 96) &&
             g_faults.count == 0,
         "deviso_unmap of the first 16 KiB; the other 48 KiB still take DMA, every byte verified");
    g_faults.Reset();
    (void)ReadInto(port, 2000, 32, data.data(), data.pa());
    unit.HandleEvents();
    Log("       buffer at 0x%llx: %u faults, the first at 0x%llx, flags 0x%x\n",
        static_cast<unsigned long long>(data.pa()), g_faults.count,
        static_cast<unsigned long long>(g_faults.first.iova), g_faults.first.flags);
    if ((g_faults.first.flags & (DEVISO_FAULT_READ | DEVISO_FAULT_WRITE)) == 0) {
      Log("[NOTE] QEMU 7.2 reports a MAPPING fault with nothing mapped without READ/WRITE "
          "flags: the direction of a blocked DMA is unknown here\n");
    }
    Step(data.All(0, 16 * 1024, 0xcc) && FirstFaultIs(g_faults, DEVISO_FAULT_TRANSLATION, data.pa(),
                                                      data.pa() + 16 * 1024, sid),
         "DMA into the unmapped 16 KiB blocked, MAPPING fault decoded, memory intact");
    Step(deviso_unmap(&g_ahci_dev, sid, data.pa(), 16 * 1024) == -ENOENT &&
             deviso_unmap(&g_ahci_dev, sid, data.pa() + 16 * 1024, 48 * 1024) == 0,
         "unmap of the gone part is -ENOENT (the device would say OK); the rest unmaps");

    // Cost of per-page MAPs: 2 MiB (512 MAP requests, 16 notifications) and one UNMAP.
    {
      Buffer big(2 << 20, 0);
      const uint64_t t0 = deviso::port::MonotonicNs();
      const bool m = big.ok() && deviso_map(&g_ahci_dev, sid, big.pa(), big.size()) == 0;
      const uint64_t t1 = deviso::port::MonotonicNs();
      const Status r = ReadInto(port, 0, 4096, big.data(), big.pa());
      const uint64_t t2 = deviso::port::MonotonicNs();
      const bool u = deviso_unmap(&g_ahci_dev, sid, big.pa(), big.size()) == 0;
      const uint64_t t3 = deviso::port::MonotonicNs();
      Log("       2 MiB: map %llu us, READ DMA EXT %llu us, unmap %llu us\n",
          static_cast<unsigned long long>((t1 - t0) / 1000),
          static_cast<unsigned long long>((t2 - t1) / 1000),
          static_cast<unsigned long long>((t3 - t2) / 1000));
      Step(m && r.ok() && u && VerifyPattern(big.data(), 0, 4096),
           "2 MiB mapped page by page, 4096 sectors read and verified, unmapped with one UNMAP");
    }

    // DMA to memory that was never mapped.
    Buffer canary(4096, 0xcc);
    g_faults.Reset();
    const Status a = ReadInto(port, 200, 8, canary.data(), canary.pa());
    unit.HandleEvents();
    Log("       the AHCI reported %s (QEMU's devices never see IOMMU faults)\n", a.str());
    Step(canary.ok() && canary.All(0, 4096, 0xcc) &&
             FirstFaultIs(g_faults, DEVISO_FAULT_TRANSLATION, canary.pa(), canary.pa() + 4096, sid),
         "DMA to never-mapped memory blocked, fault event decoded, canary intact");
    // A device write into a read-only mapping: QEMU says MAPPING, the record says permission.
    Buffer ro(4096, 0xcc);
    const bool ro_mapped = ro.ok() && deviso_map_iova(&g_ahci_dev, sid, ro.pa(), ro.pa(), ro.size(),
                                                      DEVISO_PERM_READ) == 0;
    g_faults.Reset();
    (void)ReadInto(port, 400, 8, ro.data(), ro.pa());
    unit.HandleEvents();
    Step(ro_mapped && ro.All(0, 4096, 0xcc) &&
             FirstFaultIs(g_faults, DEVISO_FAULT_PERMISSION, ro.pa(), ro.pa() + 4096, sid),
         "device write into a read-only mapping blocked, reported as a permission fault");
    (void)deviso_unmap(&g_ahci_dev, sid, ro.pa(), ro.size());
    Step(port.Stop().ok(), "AHCI port stopped");
  }
  Step(isolated.leaked() == 0, "every driver structure unmapped on release");
  (void)pci.DisableBusMaster(ahci_fn->bdf);
  Step(deviso_ctx_free(&g_ahci_dev, sid) == 0, "deviso_ctx_free(ahci, endpoint): DETACH");
  const vio::Stats st = unit.stats();
  Log("       %llu requests in %llu notifications, %llu events, %llu errors, %llu timeouts\n",
      static_cast<unsigned long long>(st.requests), static_cast<unsigned long long>(st.notifies),
      static_cast<unsigned long long>(st.events),
      static_cast<unsigned long long>(st.request_errors),
      static_cast<unsigned long long>(st.timeouts));
  Log("[NOTE] QEMU 7.2's virtio-iommu drops events beyond its queue silently: fault counts are "
      "lower bounds\n");
  return g_steps.failed() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace virtio_iommu_smoke

int deviso::qemu_virt::AppMain(const PlatformInfo& info) {
  const int status = virtio_iommu_smoke::Run(info);
  deviso::port::Log("virtio_iommu_smoke: %s\n", status == 0 ? "PASS" : "FAIL");
  return status;
}
