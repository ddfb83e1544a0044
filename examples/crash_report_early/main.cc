// crash_report_early: its pre-MMU hook (pre_mmu_fault.S) faults before the MMU is on, so this
// never runs; the exception vectors must give the minimal report ("before the MMU is on") and
// exit status 2. If it does run, the fault was missed: exit status 1.

#include "deviso/port/os.h"
#include "platform.h"

int deviso::qemu_virt::AppMain(const PlatformInfo& /*info*/) {
  port::Log("crash_report_early: the pre-MMU fault was not taken\n");
  return 1;
}
