// The C++ half of the boot (boot/start.S calls deviso_q35_boot in long mode, on the boot stack,
// with .bss zero): exceptions, console, constructors, the Multiboot information, the ACPI
// tables, the clock, the local APIC, then AppMain() (interrupts disabled) and Exit().

#include <cstring>

#include "acpi/dmar.h"
#include "acpi/mcfg.h"
#include "acpi_scan.h"
#include "apic.h"
#include "arch.h"
#include "console.h"
#include "deviso/port/os.h"
#include "exceptions.h"
#include "exit.h"
#include "format.h"
#include "hpet.h"
#include "multiboot.h"
#include "platform.h"

extern "C" {
// boot/start.S
extern uint32_t deviso_q35_boot_magic;
extern uint32_t deviso_q35_boot_info;
extern uint32_t deviso_q35_boot_ebda_segment;
extern uint32_t deviso_q35_boot_nx;
extern uint32_t deviso_q35_boot_ram_2m_pages;
// boot/image.ld
extern char __image_start[];
extern char __image_end[];
extern char __stack_guard[];
extern char __stack_top[];
using InitFn = void (*)();
extern InitFn __init_array_start[];
extern InitFn __init_array_end[];

[[noreturn]] void deviso_q35_boot();
}

namespace deviso::q35 {
namespace {

constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kBiosAreaStart = 0xe0000;
constexpr uint64_t kBiosAreaEnd = 0x100000;
constexpr size_t kMaxCmdline = 256;

PlatformInfo g_info;
char g_cmdline[kMaxCmdline];

// What the boot map (start.S) makes readable and is RAM or the BIOS area: the ACPI scan never
// touches MMIO, page 0 or the stack guard, whatever a table's pointer says.
class IdentityMemory final : public acpi::PhysicalMemory {
 public:
  acpi::Bytes Map(uint64_t pa, size_t len) const override {
    const uint64_t end = pa + len;
    if (len == 0 || end < pa) {
      return {};
    }
    const uint64_t guard = g_info.image.stack_guard;
    const bool in_ram =
        pa >= kPageSize && end <= g_info.ram_end && (end <= guard || pa >= guard + kPageSize);
    const bool in_bios = pa >= kBiosAreaStart && end <= kBiosAreaEnd;
    if (!in_ram && !in_bios) {
      return {};
    }
    return {reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(pa)), len};
  }
};
const IdentityMemory g_boot_memory;

// Copies what the Multiboot information gives (it lies in RAM the map made readable; each
// field is read only if its flag says it is valid and it lies within that RAM).
void ReadMultiboot(uint32_t info_address) {
  const auto* mbi = reinterpret_cast<const multiboot::Info*>(
      g_boot_memory.Map(info_address, sizeof(multiboot::Info)).data());
  if (mbi == nullptr) {
    ConsolePrintf("boot: Multiboot information at 0x%x is not in RAM; ignored\n", info_address);
    return;
  }
  if ((mbi->flags & multiboot::kInfoCmdline) != 0) {
    for (size_t i = 0; i + 1 < kMaxCmdline; ++i) {
      const uint8_t* c = g_boot_memory.Map(static_cast<uint64_t>(mbi->cmdline) + i, 1).data();
      if (c == nullptr || *c == 0) {
        break;
      }
      g_cmdline[i] = static_cast<char>(*c);
    }
    g_info.cmdline = g_cmdline;
  }
  if ((mbi->flags & multiboot::kInfoMmap) != 0) {
    const uint64_t start = mbi->mmap_addr;
    const uint64_t end = start + mbi->mmap_length;
    uint64_t pa = start;
    while (pa + sizeof(multiboot::MmapEntry) <= end) {
      const auto* e = reinterpret_cast<const multiboot::MmapEntry*>(
          g_boot_memory.Map(pa, sizeof(multiboot::MmapEntry)).data());
      if (e == nullptr || e->size < sizeof(multiboot::MmapEntry) - 4) {
        break;
      }
      if (g_info.memory_region_count == kMaxMemoryRegions) {
        ConsolePrintf("boot: more than %zu memory map entries; the rest are not listed\n",
                      kMaxMemoryRegions);
        break;
      }
      g_info.memory_regions[g_info.memory_region_count++] = {e->base_addr, e->length, e->type};
      pa += static_cast<uint64_t>(e->size) + 4;
    }
  }
}

const char* MemoryTypeName(uint32_t type) {
  switch (type) {
    case 1:
      return "RAM";
    case 2:
      return "reserved";
    case 3:
      return "ACPI reclaimable";
    case 4:
      return "ACPI NVS";
    case 5:
      return "bad";
    default:
      return "unknown";
  }
}

void PrintBootSummary() {
  const auto u = [](uint64_t v) { return static_cast<unsigned long>(v); };
  const PlatformInfo& info = g_info;
  ConsolePrintf("boot:   Multiboot, cmdline \"%s\"\n", info.cmdline);
  ConsolePrintf("cpu:    long mode (EFER 0x%lx), CR0 0x%lx, CR4 0x%lx, NX %s, SSE off\n",
                u(ReadMsr(kMsrEfer)), u(ReadCr0()), u(ReadCr4()), info.nx ? "on" : "off");
  ConsolePrintf("image:  [0x%lx, 0x%lx), stack top 0x%lx, guard page 0x%lx unmapped\n",
                u(info.image.start), u(info.image.end), u(info.image.stack_top),
                u(info.image.stack_guard));
  ConsolePrintf("map:    [0x1000, 0x%lx) write-back (page 0 unmapped), [0x%lx, 4 GiB) uncached%s\n",
                u(info.ram_end), u(info.ram_end), info.nx ? " execute-never" : "");
  for (size_t i = 0; i < info.memory_region_count; ++i) {
    const MemoryRegion& r = info.memory_regions[i];
    ConsolePrintf("memory: [0x%lx, 0x%lx) %s\n", u(r.base), u(r.base + r.length),
                  MemoryTypeName(r.type));
  }
}

const char* ScopeTypeName(acpi::ScopeType type) {
  switch (type) {
    case acpi::ScopeType::kPciEndpoint:
      return "endpoint";
    case acpi::ScopeType::kPciSubHierarchy:
      return "bridge";
    case acpi::ScopeType::kIoApic:
      return "IOAPIC";
    case acpi::ScopeType::kHpet:
      return "HPET";
    case acpi::ScopeType::kAcpiNamespaceDevice:
      return "ACPI device";
  }
  return "unknown";
}

void PrintParseError(const char* what, Status status, const acpi::ParseError& error) {
  ConsolePrintf("acpi:   %s refused (%d): %s (%s, offset %zu)\n", what, status.ToC(), error.reason,
                error.table, error.offset);
}

// The MCFG's ECAM ranges (PCI Firmware 3.2, 4.1.2), through src/acpi.
void ReadMcfg() {
  acpi::ParseError error;
  Result<acpi::Table> table = g_info.acpi_root.Find("MCFG", 0, &error);
  if (!table.ok()) {
    if (table.status() != Status::NotFound()) {
      PrintParseError("MCFG", table.status(), error);
    }
    return;
  }
  Result<acpi::Mcfg> mcfg = acpi::Mcfg::Parse(*table, &error);
  if (!mcfg.ok()) {
    PrintParseError("MCFG", mcfg.status(), error);
    return;
  }
  for (size_t i = 0; i < mcfg->allocation_count(); ++i) {
    const acpi::EcamAllocation a = mcfg->allocation(i);
    ConsolePrintf("mcfg:   ECAM 0x%lx segment %u buses %u-%u\n", static_cast<unsigned long>(a.base),
                  a.segment, a.bus_start, a.bus_end);
  }
  Result<acpi::EcamAllocation> bus0 = mcfg->Find(0, 0);
  if (bus0.ok()) {
    g_info.has_ecam = true;
    g_info.ecam = *bus0;
  }
}

// The DMAR's VT-d units and their device scopes (VT-d 8.3), through src/acpi.
void ReadDmar() {
  acpi::ParseError error;
  Result<acpi::Table> table = g_info.acpi_root.Find("DMAR", 0, &error);
  if (!table.ok()) {
    if (table.status() == Status::NotFound()) {
      ConsolePrintf("dmar:   none (no VT-d unit)\n");
    } else {
      PrintParseError("DMAR", table.status(), error);
    }
    return;
  }
  Result<acpi::Dmar> dmar = acpi::Dmar::Parse(*table, &error);
  if (!dmar.ok()) {
    PrintParseError("DMAR", dmar.status(), error);
    return;
  }
  ConsolePrintf("dmar:   host address width %u, flags 0x%x\n", dmar->host_address_width(),
                dmar->flags());
  for (const acpi::Drhd unit : dmar->drhds()) {
    if (g_info.vtd_unit_count < kMaxVtdUnits) {
      g_info.vtd_unit_base[g_info.vtd_unit_count] = unit.register_base();
    }
    ++g_info.vtd_unit_count;
    ConsolePrintf("dmar:   DRHD 0x%lx (%lu KiB) segment %u%s\n",
                  static_cast<unsigned long>(unit.register_base()),
                  static_cast<unsigned long>(unit.register_size() / 1024), unit.segment(),
                  unit.include_pci_all() ? " INCLUDE_PCI_ALL" : "");
    for (const acpi::DeviceScope scope : unit.scopes()) {
      char path[64] = "";
      size_t used = 0;
      for (size_t i = 0; i < scope.path_length() && used < sizeof(path); ++i) {
        const acpi::PathEntry e = scope.path(i);
        used += static_cast<size_t>(Format(path + used, sizeof(path) - used, "%s%02x.%x",
                                           i == 0 ? "" : "/", e.device, e.function));
      }
      ConsolePrintf("dmar:     %s bus %02x path %s (enumeration id %u)\n",
                    ScopeTypeName(scope.type()), scope.start_bus(), path, scope.enumeration_id());
    }
  }
  for (const acpi::Rmrr region : dmar->rmrrs()) {
    ConsolePrintf("dmar:   RMRR [0x%lx, 0x%lx] segment %u\n",
                  static_cast<unsigned long>(region.base()),
                  static_cast<unsigned long>(region.limit()), region.segment());
  }
}

// The HPET from its ACPI table as the port's clock (MonotonicNs); without it the port counts
// calls, so deadlines still end.
void StartClock() {
  Result<acpi::Table> table = g_info.acpi_status.ok() ? g_info.acpi_root.Find("HPET")
                                                      : Result<acpi::Table>(Status::NotFound());
  Result<HpetInfo> hpet = table.ok() ? ParseHpetTable(*table) : Result<HpetInfo>(table.status());
  Status started = hpet.ok() ? HpetStart(&*hpet) : hpet.status();
  if (!started.ok()) {
    ConsolePrintf("clock:  no usable HPET (%d); MonotonicNs counts calls\n", started.ToC());
    return;
  }
  g_info.hpet_base = hpet->base;
  g_info.hpet_period_fs = hpet->period_fs;
  port::baremetal_x86::SetClock(HpetNowNs);
  ConsolePrintf("clock:  HPET 0x%lx, %u fs per tick: deviso::port::MonotonicNs\n",
                static_cast<unsigned long>(hpet->base), hpet->period_fs);
}

void ScanAcpi() {
  Result<uint64_t> rsdp = LocateRsdp(g_boot_memory, deviso_q35_boot_ebda_segment);
  if (!rsdp.ok()) {
    g_info.acpi_status = rsdp.status();
    ConsolePrintf("acpi:   no RSDP in the EBDA or 0xE0000-0xFFFFF (%d)\n", rsdp.status().ToC());
    return;
  }
  acpi::ParseError error;
  g_info.acpi_status = ListAcpiTables(g_boot_memory, *rsdp, &g_info.acpi, &error);
  Result<acpi::RootTable> root = acpi::RootTable::FromRsdp(g_boot_memory, *rsdp, &error);
  if (!g_info.acpi_status.ok() || !root.ok()) {
    g_info.acpi_status = !g_info.acpi_status.ok() ? g_info.acpi_status : root.status();
    ConsolePrintf("acpi:   RSDP at 0x%lx, but its root table is refused (%d): %s\n",
                  static_cast<unsigned long>(*rsdp), g_info.acpi_status.ToC(), error.reason);
    return;
  }
  g_info.acpi_root = *root;
  const AcpiTables& t = g_info.acpi;
  ConsolePrintf("acpi:   RSDP 0x%lx revision %u OEM \"%s\", %s 0x%lx, %zu tables\n",
                static_cast<unsigned long>(t.rsdp_address), t.rsdp_revision, t.oem_id,
                t.xsdt ? "XSDT" : "RSDT", static_cast<unsigned long>(t.root_address), t.count);
  for (size_t i = 0; i < t.count; ++i) {
    const AcpiTableInfo& e = t.tables[i];
    ConsolePrintf("acpi:   %s 0x%08lx length %u revision %u%s\n", e.signature,
                  static_cast<unsigned long>(e.address), e.length, e.revision,
                  !e.readable     ? " (not readable)"
                  : e.checksum_ok ? ""
                                  : " (refused)");
  }
  if (t.not_listed != 0) {
    ConsolePrintf("acpi:   %zu more tables not listed\n", t.not_listed);
  }
  ReadMcfg();
  ReadDmar();
}

bool WordMatches(const char* p, const char* word, size_t len) {
  return std::strncmp(p, word, len) == 0 && (p[len] == ' ' || p[len] == '\0');
}

}  // namespace

bool CmdlineHas(const PlatformInfo& info, const char* word) {
  const size_t len = std::strlen(word);
  for (const char* p = info.cmdline; *p != '\0'; ++p) {
    if ((p == info.cmdline || p[-1] == ' ') && WordMatches(p, word, len)) {
      return true;
    }
  }
  return false;
}

const char* CmdlineValue(const PlatformInfo& info, const char* prefix) {
  const size_t len = std::strlen(prefix);
  for (const char* p = info.cmdline; *p != '\0'; ++p) {
    if ((p == info.cmdline || p[-1] == ' ') && std::strncmp(p, prefix, len) == 0) {
      return p + len;
    }
  }
  return nullptr;
}

const acpi::PhysicalMemory& BootMemory() { return g_boot_memory; }

}  // namespace deviso::q35

void deviso_q35_boot() {
  using deviso::q35::g_info;
  deviso::q35::InstallExceptionHandlers();
  deviso::q35::ConsoleInit();
  deviso::port::baremetal_x86::SetConsole(deviso::q35::ConsoleWrite);
  deviso::port::baremetal_x86::SetExit(deviso::q35::Exit);
  deviso::q35::ConsolePrintf("\ndeviso: QEMU q35 x86-64 platform\n");

  g_info.nx = deviso_q35_boot_nx != 0;
  g_info.ram_end = static_cast<uint64_t>(deviso_q35_boot_ram_2m_pages) << 21;
  g_info.image = {
      reinterpret_cast<uintptr_t>(__image_start), reinterpret_cast<uintptr_t>(__image_end),
      reinterpret_cast<uintptr_t>(__stack_guard), reinterpret_cast<uintptr_t>(__stack_top)};
  deviso::q35::ReadMultiboot(deviso_q35_boot_info);

  for (InitFn* fn = __init_array_start; fn < __init_array_end; ++fn) {
    (*fn)();
  }
  deviso::q35::PrintBootSummary();
  deviso::q35::ScanAcpi();
  deviso::q35::StartClock();
  g_info.apic_status = deviso::q35::ApicInit();
  if (g_info.apic_status.ok()) {
    deviso::q35::ConsolePrintf(
        "apic:   local APIC id %u enabled (spurious vector 0x%x), 8259s masked\n",
        deviso::q35::ApicId(), deviso::q35::kSpuriousVector);
  } else {
    deviso::q35::ConsolePrintf("apic:   no local APIC in xAPIC mode (%d)\n",
                               g_info.apic_status.ToC());
  }

  deviso::q35::Exit(deviso::q35::AppMain(g_info));
}
