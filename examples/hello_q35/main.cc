// hello_q35: the q35 platform's bring-up program. The platform has already printed the boot
// summary and the ACPI tables; this checks them and exits 0 only if each check passed:
//   - long mode, paging and write protection are on, SSE is off (no OSFXSR);
//   - the Multiboot memory map has RAM at 1 MiB, and the write-back map ends where it does
//     (rounded up to 2 MiB);
//   - the image lies in that RAM, below its end;
//   - an RSDP was found and the RSDT lists FACP, APIC and MCFG, each with a good checksum, and
//     src/acpi's parser found the ECAM of segment 0 in the MCFG;
//   - PCI: ECAM (from the MCFG) and the 0xCF8 ports list the same functions, and the ICH9 AHCI
//     is at 00:1f.2;
//   - deviso's core and port on x86: Log, MonotonicNs (HPET) with a Deadline, the registry, the
//     translation-table engine;
//   - interrupts: a self-IPI and a one-shot local APIC timer interrupt, each delivered once;
//   - a DMAR table with one VT-d unit (`-device intel-iommu`) exactly when the command line says
//     `iommu=vtd` (scripts/demo passes it), whose registers read back with translation off,
//     and none with `iommu=none`.
// `-append exit=N` makes it exit with status N instead (0..126), to check that scripts/demo
// reports the program's own status.

#include <cstdint>
#include <cstring>

#include "apic.h"
#include "arch.h"
#include "console.h"
#include "deviso/deviso.h"
#include "deviso/port/os.h"
#include "deviso/registry.h"
#include "pci_config.h"
#include "pgtable/pgtable.h"
#include "pgtable/table_pool.h"
#include "platform.h"

namespace {

using deviso::q35::ConsolePrintf;

int g_failures = 0;

void Check(bool ok, const char* what) {
  ConsolePrintf("[%s] %s\n", ok ? "PASS" : "FAIL", what);
  if (!ok) {
    ++g_failures;
  }
}

bool RamCovers(const deviso::q35::PlatformInfo& info, uint64_t start, uint64_t end) {
  for (size_t i = 0; i < info.memory_region_count; ++i) {
    const deviso::q35::MemoryRegion& r = info.memory_regions[i];
    if (r.type == 1 && r.base <= start && end <= r.base + r.length) {
      return true;
    }
  }
  return false;
}

// The end of the Multiboot RAM region that holds 1 MiB, or 0.
uint64_t RamEndAbove1MiB(const deviso::q35::PlatformInfo& info) {
  for (size_t i = 0; i < info.memory_region_count; ++i) {
    const deviso::q35::MemoryRegion& r = info.memory_regions[i];
    if (r.type == 1 && r.base <= 0x100000 && 0x100000 < r.base + r.length) {
      return r.base + r.length;
    }
  }
  return 0;
}

constexpr size_t kMaxListed = 64;
deviso::q35::PciFunctionInfo g_by_ports[kMaxListed];
deviso::q35::PciFunctionInfo g_by_ecam[kMaxListed];

bool SameListing(const deviso::q35::PciFunctionInfo* a, const deviso::q35::PciFunctionInfo* b,
                 size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!(a[i].address == b[i].address) || a[i].vendor != b[i].vendor ||
        a[i].device_id != b[i].device_id || a[i].class_code != b[i].class_code ||
        a[i].subclass != b[i].subclass || a[i].secondary_bus != b[i].secondary_bus) {
      return false;
    }
  }
  return true;
}

// Lists the PCI functions through ECAM (from the MCFG) and through the 0xCF8 ports, prints the
// ECAM listing and checks that both see the same functions and that the built-in AHCI is at
// 00:1f.2.
void CheckPci(const deviso::q35::PlatformInfo& info) {
  using deviso::q35::PciFunctionInfo;
  const deviso::q35::PortPciConfig ports;
  const size_t n_ports = deviso::q35::ListPci(ports, g_by_ports, kMaxListed);
  if (!info.has_ecam) {
    Check(false, "PCI: ECAM from the MCFG");
    return;
  }
  const deviso::q35::EcamPciConfig ecam(info.ecam.base, info.ecam.bus_start, info.ecam.bus_end);
  const size_t n_ecam = deviso::q35::ListPci(ecam, g_by_ecam, kMaxListed);
  for (size_t i = 0; i < n_ecam && i < kMaxListed; ++i) {
    const PciFunctionInfo& f = g_by_ecam[i];
    const char* name = deviso::q35::PciClassName(f.class_code, f.subclass, f.prog_if);
    ConsolePrintf("pci:    %02x:%02x.%x %04x:%04x class %02x.%02x.%02x%s%s%s", f.address.bus,
                  f.address.device, f.address.function, f.vendor, f.device_id, f.class_code,
                  f.subclass, f.prog_if, name[0] != '\0' ? " " : "", name,
                  f.bus_master() ? " (bus master on)" : "");
    if (f.is_bridge()) {
      ConsolePrintf(", buses %02x-%02x", f.secondary_bus, f.subordinate_bus);
    }
    ConsolePrintf("\n");
  }
  Check(n_ecam == n_ports && n_ecam <= kMaxListed && SameListing(g_by_ecam, g_by_ports, n_ecam),
        "PCI: ECAM (MCFG) and the 0xCF8 ports list the same functions");
  bool ahci = false;
  for (size_t i = 0; i < n_ecam && i < kMaxListed; ++i) {
    const PciFunctionInfo& f = g_by_ecam[i];
    ahci |= f.address == deviso::q35::PciAddress{0, 0x1f, 2} && f.vendor == 0x8086 &&
            f.device_id == 0x2922 && f.class_code == 0x01 && f.subclass == 0x06;
  }
  Check(ahci, "PCI: the ICH9 AHCI (8086:2922) at 00:1f.2");
}

// deviso's core and its x86 port (src/ports/baremetal_x86) on the board: Log through the
// console, MonotonicNs from the HPET, a Deadline that expires, the registry and the C ABI's
// status names.
void CheckCore(const deviso::q35::PlatformInfo& info) {
  deviso::port::Log("hello_q35: deviso::port::Log reaches the console\n");
  Check(info.hpet_base != 0 && info.hpet_period_fs != 0, "clock: the HPET from ACPI");
  // Poll a 1 ms deadline; bounded by a count as well, so a clock that never moves fails here
  // instead of hanging (the count is far beyond what 1 ms of polls can reach).
  const uint64_t start = deviso::port::MonotonicNs();
  const deviso::port::Deadline deadline = deviso::port::Deadline::In(1'000'000);
  uint64_t polls = 0;
  while (!deadline.Expired() && polls < 1'000'000'000) {
    ++polls;
  }
  const uint64_t elapsed = deviso::port::MonotonicNs() - start;
  ConsolePrintf("hello_q35: a 1 ms deadline expired after %lu polls, %lu ns\n",
                static_cast<unsigned long>(polls), static_cast<unsigned long>(elapsed));
  Check(deadline.Expired() && elapsed >= 1'000'000,
        "port: MonotonicNs advances and a 1 ms Deadline expires");
  Check(deviso::Registry::Default().FindUnit("vtd").status() == deviso::Status::NotFound() &&
            std::strcmp(deviso_status_str(-EINVAL), "EINVAL") == 0,
        "core: the registry (no unit yet: -ENOENT) and deviso_status_str on x86");
}

// Reads the first VT-d unit's identification and status registers (read-only; the unit is the
// VT-d backend's to program). VT-d 11.4.1 VER_REG (0x00: major 7:4, minor 3:0), 11.4.2 CAP_REG
// (0x08), 11.4.3 ECAP_REG (0x10), 11.4.5 GSTS_REG (0x1C: TES bit 31, RTPS bit 30). The DRHD's
// register page lies above RAM, mapped uncached.
void CheckVtdUnit(const deviso::q35::PlatformInfo& info) {
  const uint64_t base = info.vtd_unit_base[0];
  const auto r32 = [&](uint64_t off) {
    return *reinterpret_cast<const volatile uint32_t*>(static_cast<uintptr_t>(base + off));
  };
  const auto r64 = [&](uint64_t off) {
    return *reinterpret_cast<const volatile uint64_t*>(static_cast<uintptr_t>(base + off));
  };
  const uint32_t ver = r32(0x00);
  const uint64_t cap = r64(0x08);
  const uint64_t ecap = r64(0x10);
  const uint32_t gsts = r32(0x1c);
  ConsolePrintf("vtd:    unit 0x%lx VER %u.%u CAP 0x%016lx ECAP 0x%016lx GSTS 0x%08x\n",
                static_cast<unsigned long>(base), (ver >> 4) & 0xf, ver & 0xf,
                static_cast<unsigned long>(cap), static_cast<unsigned long>(ecap), gsts);
  Check(ver != 0 && ver != 0xffffffff && cap != 0 && cap != ~0ULL && (gsts & (1u << 31)) == 0,
        "VT-d unit: registers readable, translation off (GSTS.TES = 0)");
}

// A TLB that needs nothing: counts the invalidations the engine asks for.
class CountingFlush final : public deviso::pgtable::TlbFlush {
 public:
  deviso::Status Invalidate(const deviso::pgtable::InvalidationRange&) override {
    ++count;
    return deviso::Status::Ok();
  }
  int count = 0;
};

// deviso's translation-table engine on x86 (its VMSAv8-64 format; VT-d's second-level format is
// to come on the same engine): a 2 MiB block mapped, looked up, unmapped with an invalidation,
// from a static pool.
void CheckPgtable() {
  namespace pg = deviso::pgtable;
  static pg::StaticTablePool<4096, 8> pool;
  CountingFlush flush;
  pg::PageTable pt(pg::PageTable::Config::SmmuStage1(pg::Granule::k4KiB, 48, 48, true), pool,
                   flush);
  constexpr uint64_t kIova = 0x40000000;
  constexpr uint64_t kPa = 0x80000000;
  constexpr uint64_t k2MiB = 2 << 20;
  const bool mapped =
      pt.Init().ok() &&
      pt.Map(kIova, kPa, k2MiB, pg::kPermReadWrite, pg::MemType::kNormalWriteBack).ok();
  const deviso::Result<pg::Mapping> found = pt.Lookup(kIova + 0x1000);
  const bool looked_up = found.ok() && found->pa == kPa && found->size == k2MiB;
  const bool unmapped = pt.Unmap(kIova, k2MiB).ok() && flush.count >= 1 &&
                        pt.Lookup(kIova).status() == deviso::Status::NotFound();
  Check(mapped && looked_up && unmapped,
        "pgtable on x86: a 2 MiB block mapped, found, unmapped with an invalidation");
}

struct IrqSeen {
  volatile uint32_t count = 0;
  volatile uint8_t vector = 0;
};

void CountIrq(uint8_t vector, void* arg) {
  auto* seen = static_cast<IrqSeen*>(arg);
  seen->vector = vector;
  seen->count = seen->count + 1;
}

// Waits (interrupts enabled) until `seen` has counted one, with a deadline of 1 s on the HPET.
void WaitForIrq(const IrqSeen& seen) {
  const deviso::port::Deadline deadline = deviso::port::Deadline::In(1'000'000'000);
  deviso::q35::EnableInterrupts();
  while (seen.count == 0 && !deadline.Expired()) {
    deviso::q35::Pause();
  }
  deviso::q35::DisableInterrupts();
}

// The local APIC delivers a self-IPI and a one-shot timer interrupt to their handlers, once each,
// through the IDT's interrupt stubs (which return: the program goes on), and refuses bad vectors.
void CheckInterrupts(const deviso::q35::PlatformInfo& info) {
  using deviso::Status;
  Check(info.apic_status.ok(), "APIC: local APIC enabled, 8259s masked");
  if (!info.apic_status.ok()) {
    return;
  }
  static IrqSeen ipi;
  static IrqSeen timer;
  Check(deviso::q35::SetIrqHandler(0x10, CountIrq, &ipi) == Status::InvalidArgument() &&
            deviso::q35::SetIrqHandler(0xff, CountIrq, &ipi) == Status::InvalidArgument() &&
            deviso::q35::SetIrqHandler(0x40, CountIrq, &ipi).ok() &&
            deviso::q35::SetIrqHandler(0x40, CountIrq, &timer) == Status::Busy() &&
            deviso::q35::SetIrqHandler(0x41, CountIrq, &timer).ok(),
        "APIC: handlers only on vectors 0x20-0xfe, one per vector");
  // Sent with IF = 0: pending until WaitForIrq enables interrupts.
  const Status sent = deviso::q35::SendSelfIpi(0x40);
  WaitForIrq(ipi);
  ConsolePrintf("hello_q35: self-IPI: %d, %u delivered on vector 0x%x\n", sent.ToC(), ipi.count,
                ipi.vector);
  Check(sent.ok() && ipi.count == 1 && ipi.vector == 0x40,
        "APIC: a self-IPI on vector 0x40 reaches its handler once");
  const Status armed = deviso::q35::ArmApicTimerOnce(0x41, 100000);
  WaitForIrq(timer);
  ConsolePrintf("hello_q35: APIC timer: %d, %u delivered on vector 0x%x\n", armed.ToC(),
                timer.count, timer.vector);
  Check(armed.ok() && timer.count == 1 && timer.vector == 0x41 && ipi.count == 1,
        "APIC: a one-shot timer interrupt on vector 0x41 reaches its handler once");
  Check(deviso::q35::UnexpectedIrqCount() == 0, "APIC: no interrupt without a handler");
  deviso::q35::ClearIrqHandler(0x40);
  deviso::q35::ClearIrqHandler(0x41);
}

bool TableOk(const deviso::q35::PlatformInfo& info, const char* signature) {
  const deviso::q35::AcpiTableInfo* t = deviso::q35::FindAcpiTable(info.acpi, signature);
  return t != nullptr && t->readable && t->checksum_ok;
}

}  // namespace

int deviso::q35::AppMain(const PlatformInfo& info) {
  if (const char* value = CmdlineValue(info, "exit="); value != nullptr) {
    int status = 0;
    for (; *value >= '0' && *value <= '9' && status < 1000; ++value) {
      status = status * 10 + (*value - '0');
    }
    ConsolePrintf("hello_q35: exiting with status %d as the command line asks\n", status);
    return status;
  }

  Check((ReadMsr(kMsrEfer) & kEferLma) != 0 && (ReadCr0() & kCr0Pg) != 0 &&
            (ReadCr0() & kCr0Wp) != 0 && (ReadCr4() & kCr4Pae) != 0,
        "long mode: EFER.LMA, CR0.PG, CR0.WP, CR4.PAE");
  Check((ReadCr4() & kCr4Osfxsr) == 0, "SSE off (CR4.OSFXSR clear): none in compiled code");
  constexpr uint64_t k2MiB = 2 << 20;
  const uint64_t ram_end = RamEndAbove1MiB(info);
  Check(ram_end != 0 && info.ram_end == (ram_end + k2MiB - 1) / k2MiB * k2MiB,
        "the write-back map ends at the E820 RAM above 1 MiB, rounded up to 2 MiB");
  Check(info.image.start == 0x100000 && info.image.end <= info.ram_end &&
            RamCovers(info, info.image.start, info.image.end),
        "the image at 1 MiB lies in RAM");
  Check(info.acpi_status.ok(), "ACPI: RSDP found, RSDT readable");
  Check(TableOk(info, "FACP") && TableOk(info, "APIC") && TableOk(info, "MCFG"),
        "ACPI: FACP, APIC and MCFG present with good checksums");
  Check(info.has_ecam && info.ecam.segment == 0 && info.ecam.bus_start == 0,
        "MCFG (src/acpi): an ECAM range for segment 0 from bus 0");
  const bool dmar = TableOk(info, "DMAR");
  if (CmdlineHas(info, "iommu=vtd")) {
    Check(dmar, "ACPI: DMAR present (intel-iommu)");
    Check(info.vtd_unit_count == 1, "DMAR (src/acpi): one VT-d unit (DRHD)");
    if (info.vtd_unit_count >= 1) {
      CheckVtdUnit(info);
    }
  } else if (CmdlineHas(info, "iommu=none")) {
    Check(FindAcpiTable(info.acpi, "DMAR") == nullptr && info.vtd_unit_count == 0,
          "ACPI: no DMAR (no intel-iommu)");
  }

  CheckPci(info);
  CheckCore(info);
  CheckPgtable();
  CheckInterrupts(info);

  if (g_failures != 0) {
    ConsolePrintf("hello_q35: FAIL (%d checks)\n", g_failures);
    return 1;
  }
  ConsolePrintf("hello_q35: PASS\n");
  return 0;
}
