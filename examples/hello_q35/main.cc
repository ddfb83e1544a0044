// hello_q35: the q35 platform's bring-up program. The platform has already printed the boot
// summary and the ACPI tables; this checks them and exits 0 only if each check passed:
//   - long mode, paging and write protection are on, SSE is off (no OSFXSR);
//   - the Multiboot memory map has RAM at 1 MiB, and the write-back map ends where it does
//     (rounded up to 2 MiB);
//   - the image lies in that RAM, below its end;
//   - an RSDP was found and the RSDT lists FACP, APIC and MCFG, each with a good checksum;
//   - a DMAR table (the VT-d unit, `-device intel-iommu`) exactly when the command line says
//     `iommu=vtd` (scripts/demo passes it), and none with `iommu=none`.
// `-append exit=N` makes it exit with status N instead (0..126), to check that scripts/demo
// reports the program's own status.

#include <cstdint>

#include "arch.h"
#include "console.h"
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
  const bool dmar = TableOk(info, "DMAR");
  if (CmdlineHas(info, "iommu=vtd")) {
    Check(dmar, "ACPI: DMAR present (intel-iommu)");
  } else if (CmdlineHas(info, "iommu=none")) {
    Check(FindAcpiTable(info.acpi, "DMAR") == nullptr, "ACPI: no DMAR (no intel-iommu)");
  }

  if (g_failures != 0) {
    ConsolePrintf("hello_q35: FAIL (%d checks)\n", g_failures);
    return 1;
  }
  ConsolePrintf("hello_q35: PASS\n");
  return 0;
}
