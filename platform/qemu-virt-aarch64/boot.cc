// The C++ half of the boot (boot/start.S does the assembly half and turns the MMU on with a
// boot map of the image, the DTB and the low MMIO): devicetree, console, the final MMU map,
// static constructors, GIC, then the application.

#include <cstdint>

#include "console.h"
#include "deviso/port/os.h"
#include "exit.h"
#include "gic.h"
#include "mmu.h"
#include "platform.h"

extern "C" {
extern char __image_start[];
extern char __image_end[];
extern void (*__init_array_start[])();
extern void (*__init_array_end[])();
extern uint64_t deviso_boot_el;  // boot/start.S
[[noreturn]] void deviso_semihost_exit_early(int status);
}

namespace deviso::qemu_virt {
namespace {

// Exit statuses of boot failures (the application's own use 1 and up; 2 is a crash report;
// start.S exits 3 when the image overlaps the DTB, 8 when the boot map cannot hold it).
constexpr int kExitNoDtb = 4;
constexpr int kExitOverlap = 5;
constexpr int kExitMmu = 6;
constexpr int kExitGic = 7;

// Static: ParseDeviceTree fills it before the static constructors run; constant-initialised.
PlatformInfo g_info;

void ExitHook(int status) { Exit(status); }

void RunStaticConstructors() {
  for (void (**f)() = __init_array_start; f != __init_array_end; ++f) {
    (*f)();
  }
}

bool Overlaps(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size) {
  return a < b + b_size && b < a + a_size;
}

}  // namespace

ImageLayout GetImageLayout() {
  return {reinterpret_cast<uintptr_t>(__image_start), reinterpret_cast<uintptr_t>(__image_end)};
}

}  // namespace deviso::qemu_virt

extern "C" [[noreturn]] void deviso_qemu_virt_boot(uint64_t dtb) {
  using namespace deviso::qemu_virt;
  // start.S passes 0 when x0 was not an aligned FDT (and then did not map it).
  if (dtb == 0 || !ParseDeviceTree(reinterpret_cast<const void*>(dtb), &g_info).ok()) {
    // No console without a DTB (an ELF -kernel gets x0 = 0): report through the exit status.
    deviso_semihost_exit_early(kExitNoDtb);
  }
  ConsoleInit(g_info.uart);
  SetExitPsci(g_info.psci);
  deviso::port::baremetal::SetExit(&ExitHook);
  // Before the static constructors have run, the port's log lock is not set up: unlocked output.
  ConsolePrintfUnlocked(
      "\ndeviso: booting on \"%s\", entered at EL%llu, DTB at 0x%llx (%zu bytes)\n", g_info.model,
      static_cast<unsigned long long>(deviso_boot_el), static_cast<unsigned long long>(dtb),
      g_info.dtb_size);

  const ImageLayout image = GetImageLayout();
  if (Overlaps(image.start, image.end - image.start, dtb, g_info.dtb_size)) {
    ConsolePrintfUnlocked("deviso: the DTB overlaps the image [0x%llx, 0x%llx)\n",
                          static_cast<unsigned long long>(image.start),
                          static_cast<unsigned long long>(image.end));
    Exit(kExitOverlap);
  }
  for (size_t i = 0; i < g_info.reserved_count; ++i) {
    const Region& r = g_info.reserved[i];
    if (Overlaps(image.start, image.end - image.start, r.base, r.size)) {
      ConsolePrintfUnlocked("deviso: reserved memory [0x%llx, 0x%llx) overlaps the image\n",
                            static_cast<unsigned long long>(r.base),
                            static_cast<unsigned long long>(r.end()));
      Exit(kExitOverlap);
    }
  }

  const deviso::Status mmu = MmuInit(g_info);
  if (!mmu.ok()) {
    ConsolePrintfUnlocked("deviso: MMU setup failed: %s\n", mmu.str());
    Exit(kExitMmu);
  }
  RunStaticConstructors();
  deviso::port::Log("deviso: MMU and caches on (%zu of %zu table pages)\n", MmuTablesUsed(),
                    MmuTablesCapacity());

  const deviso::Status gic = GicInit(g_info.gic);
  if (!gic.ok()) {
    deviso::port::Log("deviso: GIC setup failed: %s\n", gic.str());
    Exit(kExitGic);
  }
  Exit(AppMain(g_info));
}
