// ahci_isolation: the RFC's AHCI example, for real, on QEMU's `virt` board with its IOMMU: the
// SMMUv3 (-M virt,iommu=smmuv3) or a virtio-iommu (-M virt -device virtio-iommu-pci). The same
// image serves both: the devicetree alone says which IOMMU the AHCI sits behind.
//
// The flow of the seed README's example: look the device up, deviso_ctx_alloc(),
// deviso_map() a buffer, DMA disk sectors with a known pattern into it and check every byte,
// deviso_unmap(), deviso_ctx_free(). Every DMA structure of the AHCI driver (command list,
// FIS area, command table, IDENTIFY buffer) comes from IsolatedDmaAllocator, i.e. from memory
// mapped for the device through the DMA-driver hook (a dma::ContextDmaMapper over its
// context, identity-mapped, kept out of the PCI windows and the IOMMU's reserved regions). Then, as
// an attacker would, it tries:
//   1. DMA to memory that was never mapped;
//   2. DMA into a data buffer after it was unmapped (no stale IOTLB entry may let it through);
//   3. a device write into a read-only mapping;
//   4. DMA from a second AHCI controller that has no context at all (default-deny);
//   5. DMA from the AHCI itself after deviso_ctx_free (no stale cached configuration);
// each must be blocked, with the IOMMU's fault decoded and printed and a canary in memory
// untouched. QEMU's AHCI never learns of an IOMMU fault (a blocked transfer completes
// "successfully"), so isolation is judged by memory contents and fault reports only.
// Also: a translating mapping (device address != physical address) that works.
// Where a check proves less on one IOMMU (attack 2 needs a translation cache to be a test of
// invalidation; QEMU's virtio-iommu has none), the console says so in a [NOTE] line.
//
// StreamIDs and device names come from enumeration and the devicetree's iommu-map, never from
// constants: the demo holds at any PCI slot (scripts/demo --devices).
//
// Verdicts from outside (qemu_test.sh, docs/qemu.md "Verdicts QEMU gives"): before and after each
// attack the demo writes a marker into the AHCI's Interrupt Line register (PCI 3.0 6.2.4: a
// scratch byte with no effect on the device), which QEMU's `pci_cfg_write` trace shows, so that
// each fault QEMU traces can be tied to the attack that caused it. It prints each attack's
// canary or buffer as "[DUMP] name pa bytes"; with `deviso.park` in /chosen/bootargs (QEMU's
// -append) it then waits, after its last line, for the test to read that memory through QMP
// (pmemsave) and quit QEMU (at most kParkNs; it then exits as usual).
//
// Exit status 0 only when every step passed; the last console line says the same.

#include <libfdt.h>

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
#include "dma/dma_mapper.h"
#include "dma/iova_allocator.h"
#include "dma_arena.h"
#include "dma_platform.h"
#include "drivers/ahci/ahci.h"
#include "drivers/isolated_dma.h"
#include "gic.h"
#include "iommu_demo.h"
#include "iommu_platform.h"
#include "pci.h"
#include "platform.h"

namespace ahci_isolation {
namespace {

using deviso::Result;
using deviso::Status;
using deviso::drivers::DmaRegion;
using deviso::drivers::DmaSegment;
using deviso::port::Log;
namespace qv = deviso::qemu_virt;
namespace ahci = deviso::drivers::ahci;
using deviso::demo::FaultLog;
using deviso::demo::RecordFault;
using deviso::demo::VerifyPattern;

constexpr uint16_t kIntelVendor = 0x8086;
constexpr uint16_t kIch9Ahci = 0x2922;
constexpr unsigned kAbarIndex = 5;  // AHCI 1.3.1 2.1.11: ABAR is BAR5
constexpr uint64_t kSector = 512;

char g_ahci_name[24];
struct device g_ahci_dev = {g_ahci_name};
qv::DmaArena g_arena(/*coherent=*/true);  // QEMU virt PCIe is cache-coherent
deviso::demo::Steps g_steps;

void Step(bool ok, const char* what) { g_steps.Step(ok, what); }

// What the fault handlers (RecordFault) saw; written from the IOMMU's interrupt.
FaultLog g_faults;    // the AHCI's context
FaultLog g_unrouted;  // streams with no context

uint32_t FaultCount(const FaultLog& log) { return log.Count(); }

// Raw arena memory: device address == physical address, mapped for nobody.
class Buffer : public deviso::demo::ArenaBuffer {
 public:
  Buffer(size_t bytes, uint8_t fill) : ArenaBuffer(g_arena, bytes, fill) {}
};

// Reads `sectors` at `lba` into [device_addr, +bytes) of `cpu`: the device is told
// `device_addr`, whatever it maps to.
Status ReadInto(ahci::Port& port, uint64_t lba, uint32_t sectors, void* cpu, uint64_t device_addr) {
  const DmaRegion region{cpu, device_addr, sectors * kSector};
  const DmaSegment segment{&region, 0, sectors * kSector};
  return port.Read(lba, sectors, {&segment, 1});
}

// The IOMMU's interrupt may not have been taken yet: drain its event queue here too.
void Drain(qv::PlatformIommu& iommu) { iommu.DrainEvents(); }

// The trace markers (values of the AHCI's Interrupt Line, PCI 3.0 6.2.4); qemu_test.sh knows them.
enum Marker : uint16_t {
  kMarkAttack1 = 1,     // before attack 1
  kMarkUnmapped = 2,    // after attack 2's deviso_unmap returned, before its DMA
  kMarkAttack3 = 3,     // before attack 3
  kMarkAttack3End = 4,  // after attack 3 and its read-back
  kMarkAttack4 = 5,     // before attack 4
  kMarkAttack4End = 6,  // after attack 4
  kMarkAttack5 = 7,     // before attack 5 (after deviso_ctx_free)
  kMarkAttack5End = 8,  // after attack 5
};
constexpr size_t kInterruptLine = 0x3c;  // PCI 3.0 6.2.4 (with Interrupt Pin, read-only, above)

void Mark(qv::PciHost& pci, const qv::Bdf& bdf, Marker m) {
  pci.ConfigWrite16(bdf, kInterruptLine, m);
}

// "[DUMP] name pa bytes": memory the test reads from outside the guest (qemu_test.sh memory).
void Dump(const char* name, const deviso::demo::ArenaBuffer& b) {
  Log("[DUMP] %s 0x%llx 0x%llx\n", name, static_cast<unsigned long long>(b.pa()),
      static_cast<unsigned long long>(b.size()));
}

bool FaultIs(const FaultLog& log, uint32_t reason, uint64_t lo, uint64_t hi, uint32_t sid) {
  return FaultCount(log) > 0 && log.first.reason == reason && log.first.sid == sid &&
         (reason == DEVISO_FAULT_BLOCKED || ((log.first.flags & DEVISO_FAULT_ADDR_VALID) != 0 &&
                                             log.first.iova >= lo && log.first.iova < hi));
}

// ---- The demo ------------------------------------------------------------------------------

int Run(const qv::PlatformInfo& info) {
  qv::PciHost pci(info.pci);
  qv::PlatformIommu* const iommu_or = deviso::demo::EnumerateAndSetupIommu(info, g_arena, pci);
  if (iommu_or == nullptr) return 1;
  qv::PlatformIommu& iommu = *iommu_or;
  Log("deviso ahci_isolation on \"%s\", GICv%u, IOMMU %s\n", info.model, qv::GicVersion(),
      iommu.kind());
  iommu.Describe();
  Step(true, "IOMMU enabled with every StreamID blocked (default-deny)");
  if (const Status s = iommu.SetUnroutedFaultHandler(&RecordFault, &g_unrouted); !s.ok()) {
    Log("the demo reports faults: build deviso with DEVISO_CONFIG_FAULT_REPORTS=ON (%s)\n",
        s.str());
    return 1;
  }
  qv::EnableInterrupts();

  const qv::PciFunction* ahci_fn = nullptr;
  const qv::PciFunction* rogue_fn = nullptr;
  for (size_t i = 0; i < pci.function_count(); ++i) {
    const qv::PciFunction& f = pci.function(i);
    if (f.vendor_id != kIntelVendor || f.device_id != kIch9Ahci) continue;
    if (ahci_fn == nullptr) {
      ahci_fn = &f;
    } else if (rogue_fn == nullptr) {
      rogue_fn = &f;
    }
  }
  if (ahci_fn == nullptr) {
    Log("no ICH9 AHCI on PCI\n");
    return 1;
  }
  std::snprintf(g_ahci_name, sizeof(g_ahci_name), "ahci@%02x:%02x.%x", ahci_fn->bdf.bus,
                ahci_fn->bdf.device, ahci_fn->bdf.function);

  // ---- The RFC's flow ----
  // The devicetree (the PCI host's iommu-map) gives the AHCI its IOMMU and StreamID.
  const qv::PciDeviceBinding bindings[] = {{ahci_fn->dma_alias, &g_ahci_dev}};
  deviso::dt::DeviceStreams bound[1];
  const Status bind = qv::BindPciDevices(info, iommu, bindings, bound);
  Step(bind.ok() && bound[0].sid_count == 1,
       "AHCI bound to the IOMMU with its StreamID from iommu-map");
  if (!bind.ok() || bound[0].sid_count != 1) return 1;
  const uint32_t sid = bound[0].sids[0];
  Log("       device %s, StreamID 0x%x\n", g_ahci_dev.name, sid);
  if (const Result<qv::IrqSpec> intx = pci.IntxIrq(ahci_fn->bdf); intx.ok()) {
    Log("       INTx: GIC INTID %u, %s (interrupt-map)\n", static_cast<unsigned>(intx->intid),
        intx->edge ? "edge" : "level");
  }
  // A StreamID the devicetree gave some other function (the rogue controller's, if present):
  // a driver cannot claim another device's stream.
  const uint32_t foreign_sid = rogue_fn != nullptr
                                   ? pci.StreamId(rogue_fn->bdf, iommu.phandle()).value_or(sid + 8)
                                   : sid + 8;
  Step(deviso_ctx_alloc(&g_ahci_dev, foreign_sid) == -EINVAL,
       "deviso_ctx_alloc(ahci, a StreamID the devicetree did not give it) refused (-EINVAL)");
  Step(deviso_ctx_alloc(&g_ahci_dev, sid) == 0, "deviso_ctx_alloc(ahci, sid)");
  Result<deviso::Context> ctx = deviso::Registry::Default().FindContext(&g_ahci_dev, sid);
  if (!ctx.ok() || !ctx->SetFaultHandler(&RecordFault, &g_faults, 1'000'000).ok()) return 1;
  // Only now may the device master the bus: its context exists and is empty.
  if (!pci.EnableBusMaster(ahci_fn->bdf).ok()) return 1;

  deviso::DirectMmio abar(static_cast<uintptr_t>(ahci_fn->bars[kAbarIndex].cpu_addr));
  ahci::Hba hba(abar);
  if (!hba.Init().ok() || hba.PortsWithLink() == 0) {
    Log("AHCI: no disk\n");
    return 1;
  }
  const unsigned port_index = static_cast<unsigned>(__builtin_ctz(hba.PortsWithLink()));
  // The driver's structures through the DMA-driver hook: identity mappings in the AHCI's
  // context, never inside a window its DMA could not be isolated in (the PCI memory windows by
  // bus address, and the IOMMU's reserved regions for this StreamID).
  deviso::dma::ReservedWindows reserved;
  const Result<deviso::dma::DeviceBinding> binding =
      qv::PciIdentityBinding(info, *ctx, sid, reserved);
  if (!binding.ok()) return 1;
  deviso::dma::StaticContextDmaMapper<8> mapper(*binding);
  deviso::drivers::IsolatedDmaAllocator isolated(g_arena, mapper);
  // The attacks' canaries and buffers, alive until the end: the test reads them from outside
  // the guest after the last step (qemu_test.sh memory).
  Buffer data(64 * 1024, 0);
  Buffer canary(4096, 0xcc);
  Buffer ro(4096, 0xcc);
  Buffer t(8192, 0);
  Buffer canary2(4096, 0xcc);
  Buffer canary5(4096, 0xcc);
  {
    ahci::Port port(abar, port_index, isolated, hba.s64a());
    g_faults.Reset();
    const Status started = port.Start();
    const Result<ahci::IdentifyInfo> id = port.Identify();
    Drain(iommu);
    Step(started.ok() && id.ok() && FaultCount(g_faults) == 0,
         "AHCI port started and IDENTIFY done through mapped command list, FIS area and table");
    if (id.ok()) {
      Log("       disk \"%s\", %llu sectors\n", id->model,
          static_cast<unsigned long long>(id->sectors));
    }

    // 1) deviso_map a buffer, DMA the pattern into it, check every byte.
    g_faults.Reset();
    const bool mapped = deviso_map(&g_ahci_dev, sid, data.pa(), data.size()) == 0;
    const Status read = ReadInto(port, 100, 128, data.data(), data.pa());
    Drain(iommu);
    Step(mapped && read.ok() && VerifyPattern(data.data(), 100, 128) && FaultCount(g_faults) == 0,
         "deviso_map(64 KiB); READ DMA EXT of 128 sectors; every byte verified");

    // Attack 1: DMA to memory that was never mapped.
    Dump("attack1_canary", canary);
    Mark(pci, ahci_fn->bdf, kMarkAttack1);
    g_faults.Reset();
    const Status a1 = ReadInto(port, 200, 8, canary.data(), canary.pa());
    Drain(iommu);
    Log("       the AHCI reported %s (QEMU's devices never see IOMMU faults)\n", a1.str());
    // The fault must say the device tried to write, where the IOMMU reports the direction.
    const bool direction_known = iommu.reports_translation_fault_direction();
    if (!direction_known) {
      Log("[NOTE] attack 1 proves less on %s: its translation faults carry no access direction, "
          "so the fault is not checked to be a write (the canary still is)\n",
          iommu.kind());
    }
    Step(canary.All(0xcc) &&
             FaultIs(g_faults, DEVISO_FAULT_TRANSLATION, canary.pa(), canary.pa() + 4096, sid) &&
             (!direction_known || (g_faults.first.flags & DEVISO_FAULT_WRITE) != 0),
         "attack 1: DMA to never-mapped memory blocked, F_TRANSLATION reported, canary intact");

    // Attack 2: DMA into the data buffer after deviso_unmap (the IOTLB held it).
    if (!iommu.caches_translations()) {
      Log("[NOTE] attack 2 proves less on %s: it keeps no translation cache, so a missing "
          "invalidation could not let this DMA through; it still shows the unmap took effect\n",
          iommu.kind());
    }
    const bool unmapped = deviso_unmap(&g_ahci_dev, sid, data.pa(), data.size()) == 0;
    std::memset(data.data(), 0xcc, data.size());
    Dump("attack2_buffer", data);
    Mark(pci, ahci_fn->bdf, kMarkUnmapped);
    g_faults.Reset();
    (void)ReadInto(port, 300, 8, data.data(), data.pa());
    Drain(iommu);
    Step(unmapped && data.All(0xcc) &&
             FaultIs(g_faults, DEVISO_FAULT_TRANSLATION, data.pa(), data.pa() + data.size(), sid),
         "attack 2: DMA after deviso_unmap blocked (no stale IOTLB), buffer intact");

    // Attack 3: a device write into a read-only mapping; device reads of it still work.
    Dump("attack3_read_only", ro);
    Mark(pci, ahci_fn->bdf, kMarkAttack3);
    const bool ro_mapped =
        deviso_map_iova(&g_ahci_dev, sid, ro.pa(), ro.pa(), ro.size(), DEVISO_PERM_READ) == 0;
    g_faults.Reset();
    (void)ReadInto(port, 400, 8, ro.data(), ro.pa());
    Drain(iommu);
    Step(ro_mapped && ro.All(0xcc) &&
             FaultIs(g_faults, DEVISO_FAULT_PERMISSION, ro.pa(), ro.pa() + 4096, sid),
         "attack 3: device write into a read-only mapping blocked, F_PERMISSION reported");
    {
      const DmaSegment seg{&ro.region(), 0, 4096};
      g_faults.Reset();
      const Status w = port.Write(3000, 8, {&seg, 1});
      Buffer back(4096, 0);
      const bool back_mapped = deviso_map(&g_ahci_dev, sid, back.pa(), back.size()) == 0;
      const Status r = ReadInto(port, 3000, 8, back.data(), back.pa());
      (void)deviso_unmap(&g_ahci_dev, sid, back.pa(), back.size());
      Drain(iommu);
      Step(w.ok() && back_mapped && r.ok() && back.All(0xcc) && FaultCount(g_faults) == 0,
           "the read-only mapping still serves device reads (WRITE DMA EXT from it, read back)");
    }
    (void)deviso_unmap(&g_ahci_dev, sid, ro.pa(), ro.size());
    Mark(pci, ahci_fn->bdf, kMarkAttack3End);

    // A translating mapping: device address 0x8_0000_0000 (no RAM there) -> the buffer t.
    {
      constexpr uint64_t kIova = 0x8'0000'0000;
      const bool ok_map =
          deviso_map_iova(&g_ahci_dev, sid, kIova, t.pa(), t.size(), DEVISO_PERM_RW) == 0;
      uint64_t pa = 0;
      const bool looked_up = deviso_iova_to_phys(&g_ahci_dev, sid, kIova + 0x1234, &pa) == 0;
      g_faults.Reset();
      const Status r = ReadInto(port, 500, 16, t.data(), kIova);
      Drain(iommu);
      Log("       iova 0x%llx -> pa 0x%llx\n", static_cast<unsigned long long>(kIova),
          static_cast<unsigned long long>(t.pa()));
      Step(ok_map && looked_up && pa == t.pa() + 0x1234 && r.ok() &&
               VerifyPattern(t.data(), 500, 16) && FaultCount(g_faults) == 0,
           "translating mapping (iova != pa): READ DMA EXT lands at the physical buffer");
      (void)deviso_unmap_iova(&g_ahci_dev, sid, kIova, t.size());
      Dump("granted_read", t);
    }

    // Attack 4: a second AHCI controller with no context, enabled as a bus master by the
    // attacker and pointed at a canary.
    if (rogue_fn != nullptr) {
      const Result<uint32_t> rogue_sid = pci.StreamId(rogue_fn->bdf, iommu.phandle());
      Log("       rogue controller at %02x:%02x.%x, StreamID 0x%x\n", rogue_fn->bdf.bus,
          rogue_fn->bdf.device, rogue_fn->bdf.function, rogue_sid.ok() ? *rogue_sid : 0u);
      Dump("attack4_canary", canary2);
      Mark(pci, ahci_fn->bdf, kMarkAttack4);
      g_unrouted.Reset();
      (void)pci.EnableBusMaster(rogue_fn->bdf);
      deviso::DirectMmio rogue_abar(static_cast<uintptr_t>(rogue_fn->bars[kAbarIndex].cpu_addr));
      ahci::Hba rogue_hba(rogue_abar);
      bool attempted = false;
      if (rogue_hba.Init().ok() && rogue_hba.PortsWithLink() != 0) {
        ahci::PortOptions o;
        o.command_timeout_ns = 200'000'000;
        // Its structures come straight from the arena: physical addresses nobody mapped.
        ahci::Port rogue(rogue_abar,
                         static_cast<unsigned>(__builtin_ctz(rogue_hba.PortsWithLink())), g_arena,
                         rogue_hba.s64a(), o);
        (void)rogue.Start();
        const Status s = ReadInto(rogue, 600, 8, canary2.data(), canary2.pa());
        Log("       rogue controller's command: %s\n", s.str());
        (void)rogue.Stop();
        attempted = true;
      }
      (void)pci.DisableBusMaster(rogue_fn->bdf);
      Drain(iommu);
      Mark(pci, ahci_fn->bdf, kMarkAttack4End);
      Step(attempted && rogue_sid.ok() && canary2.All(0xcc) &&
               FaultIs(g_unrouted, DEVISO_FAULT_BLOCKED, 0, 0, *rogue_sid),
           "attack 4: DMA from a controller with no context blocked and reported (default-deny)");
    } else {
      Step(false, "attack 4 needs a second AHCI controller (scripts/demo adds one)");
    }

    // What each device can reach now, with the driver's structures still mapped (the README's
    // picture: docs/iova-map.md).
    deviso::demo::PrintIovaMap();

    // Stop the port before its command list and FIS area are unmapped: QEMU's AHCI keeps
    // using them while it runs. The Port's destructor frees (unmaps) them.
    Step(port.Stop().ok(), "AHCI port stopped (ST, FRE clear; CR, FR seen clear)");
  }
  Step(isolated.leaked() == 0, "every driver structure unmapped (deviso_unmap) on release");
  (void)pci.DisableBusMaster(ahci_fn->bdf);
  Step(deviso_ctx_free(&g_ahci_dev, sid) == 0, "deviso_ctx_free(ahci, sid)");

  // Attack 5: the AHCI itself, its context freed, masters the bus again with structures
  // nobody mapped. The IOMMU must have dropped the stream's cached configuration (SMMUv3:
  // CFGI_STE after the STE was cleared), so the stream is blocked as one without a context.
  {
    Dump("attack5_canary", canary5);
    Mark(pci, ahci_fn->bdf, kMarkAttack5);
    g_unrouted.Reset();
    (void)pci.EnableBusMaster(ahci_fn->bdf);
    ahci::PortOptions o;
    o.command_timeout_ns = 200'000'000;
    {
      ahci::Port p(abar, port_index, g_arena, hba.s64a(), o);
      (void)p.Start();
      const Status s = ReadInto(p, 700, 8, canary5.data(), canary5.pa());
      Log("       the freed AHCI's command: %s\n", s.str());
      (void)p.Stop();
    }
    (void)pci.DisableBusMaster(ahci_fn->bdf);
    Drain(iommu);
    Mark(pci, ahci_fn->bdf, kMarkAttack5End);
    Step(canary5.All(0xcc) && FaultIs(g_unrouted, DEVISO_FAULT_BLOCKED, 0, 0, sid),
         "attack 5: DMA from the AHCI after deviso_ctx_free blocked and reported (no stale "
         "configuration)");
  }
  iommu.PrintStats();
  if (!iommu.reports_fault_overflow()) {
    Log("[NOTE] %s drops faults beyond its event queue silently: fault counts are lower "
        "bounds\n",
        iommu.kind());
  }
  return g_steps.failed() == 0 ? 0 : 1;
}

// Whether /chosen/bootargs (QEMU's -append) asks the demo to wait for the test ("deviso.park").
bool ParkRequested(const void* dtb) {
  if (dtb == nullptr) return false;
  const int chosen = fdt_path_offset(dtb, "/chosen");
  int len = 0;
  const char* args =
      chosen >= 0 ? static_cast<const char*>(fdt_getprop(dtb, chosen, "bootargs", &len)) : nullptr;
  return args != nullptr && len > 0 && std::strstr(args, "deviso.park") != nullptr;
}

// The most the demo waits for the test to read its memory and quit QEMU (only "no hang").
constexpr uint64_t kParkNs = 120'000'000'000;

}  // namespace
}  // namespace ahci_isolation

int deviso::qemu_virt::AppMain(const PlatformInfo& info) {
  const int rc = ahci_isolation::Run(info);
  deviso::port::Log("ahci_isolation: %s (%d of %d steps passed)\n", rc == 0 ? "PASS" : "FAIL",
                    ahci_isolation::g_steps.passed(), ahci_isolation::g_steps.total());
  if (ahci_isolation::ParkRequested(info.dtb)) {
    // The buffers above were given back to the arena, which neither clears nor reuses them
    // from here on: the test reads what the attacks left (qemu_test.sh's QMP dumper).
    deviso::port::Log("[DUMP] ready: waiting for the test to read memory and quit QEMU\n");
    const deviso::port::Deadline deadline = deviso::port::Deadline::In(ahci_isolation::kParkNs);
    while (!deadline.Expired()) {
      asm volatile("yield");
    }
    deviso::port::Log("[DUMP] nobody read memory within %llu s\n",
                      static_cast<unsigned long long>(ahci_isolation::kParkNs / 1'000'000'000));
    return 1;
  }
  return rc;
}
