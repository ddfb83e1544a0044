#include "exit.h"

#include "arch.h"
#include "console.h"

extern "C" [[noreturn]] void deviso_q35_triple_fault();  // boot/isr.S

namespace deviso::q35 {

void DebugExitWrite(int status) { Outl(kDebugExitPort, static_cast<uint32_t>(status) + 1); }

void Exit(int status) {
  if (status < 0 || status > kMaxExitStatus) {
    ConsolePrintf("deviso-exit: status %d is outside 0..%d\n", status, kMaxExitStatus);
    status = kExitOutOfRange;
  }
  ConsolePrintf("deviso-exit: %d\n", status);
  DebugExitWrite(status);
  ConsolePrintf("deviso-exit: no isa-debug-exit device at 0x%x; triple fault\n", kDebugExitPort);
  deviso_q35_triple_fault();
}

}  // namespace deviso::q35
