#include "exceptions.h"

#include <cstddef>

#include "arch.h"
#include "console.h"
#include "exit.h"
#include "uart16550.h"

extern "C" {
extern char deviso_q35_exception_stubs[];  // boot/isr.S: 32 stubs, kStubSize bytes apart
extern char deviso_q35_irq_stubs[];        // boot/isr.S: vectors 32-255, kStubSize apart
extern uint64_t deviso_q35_gdt[];          // boot/start.S: null, code, data, TSS (2 words)
[[noreturn]] void deviso_q35_exit_now();   // boot/isr.S
[[noreturn]] void deviso_q35_exception(deviso::q35::ExceptionFrame* frame);
[[noreturn]] void deviso_q35_minimal_report(const deviso::q35::ExceptionFrame* frame,
                                            uint32_t reason);
}

__attribute__((weak)) void deviso_q35_crash_report_hook() {}

namespace deviso::q35 {
namespace {

constexpr size_t kStubSize = 16;
constexpr uint16_t kCodeSelector = 0x08;
constexpr uint16_t kTssSelector = 0x18;
constexpr size_t kTssGdtIndex = 3;

// SDM Vol. 3A 6.14.1, Figure 6-8: a 64-bit IDT gate descriptor.
struct IdtGate {
  uint16_t offset_low;
  uint16_t selector;
  uint8_t ist;        // bits 2:0; 0: the current stack
  uint8_t type_attr;  // P (bit 7), DPL (6:5), type (3:0): 0xE 64-bit interrupt gate
  uint16_t offset_mid;
  uint32_t offset_high;
  uint32_t reserved;
};
static_assert(sizeof(IdtGate) == 16);
constexpr uint8_t kInterruptGate = 0x8e;  // present, DPL 0, 64-bit interrupt gate (IF cleared)

// SDM Vol. 3A 7.7, Figure 7-11: the 64-bit TSS (only the IST pointers are used).
struct __attribute__((packed)) Tss {
  uint32_t reserved0;
  uint64_t rsp[3];
  uint64_t reserved1;
  uint64_t ist[7];
  uint64_t reserved2;
  uint16_t reserved3;
  uint16_t iomap_base;
};
static_assert(sizeof(Tss) == 104);

// SDM Vol. 3A 7.2.3: the 16-byte TSS descriptor; type 9 (available 64-bit TSS), present.
constexpr uint64_t kTssDescriptorType = 0x89;

alignas(16) IdtGate g_idt[256];
Tss g_tss;
alignas(16) uint8_t g_double_fault_stack[8192];
alignas(16) uint8_t g_nmi_mc_stack[8192];

// Saved by the full report first thing, for the minimal report of a fault inside it.
const ExceptionFrame* volatile g_first_frame = nullptr;
volatile uint64_t g_first_cr2 = 0;

struct __attribute__((packed)) DescriptorPointer {
  uint16_t limit;
  uint64_t base;
};

void SetGate(size_t vector, uint8_t ist) {
  const auto entry =
      vector < 32 ? reinterpret_cast<uintptr_t>(deviso_q35_exception_stubs) + vector * kStubSize
                  : reinterpret_cast<uintptr_t>(deviso_q35_irq_stubs) + (vector - 32) * kStubSize;
  IdtGate& g = g_idt[vector];
  g.offset_low = static_cast<uint16_t>(entry);
  g.selector = kCodeSelector;
  g.ist = ist;
  g.type_attr = kInterruptGate;
  g.offset_mid = static_cast<uint16_t>(entry >> 16);
  g.offset_high = static_cast<uint32_t>(entry >> 32);
  g.reserved = 0;
}

// SDM Vol. 3A 6.13, Figure 6-7 (#PF: Figure 4-12): the error code's bits.
void PrintErrorCode(uint64_t vector, uint64_t code) {
  if (vector == 14) {
    ConsolePrintf("  page fault: %s, %s, %s%s%s%s\n", (code & 1) ? "protection" : "not present",
                  (code & 2) ? "write" : "read", (code & 4) ? "user" : "supervisor",
                  (code & 8) ? ", reserved bit set" : "", (code & 16) ? ", instruction fetch" : "",
                  (code & 32) ? ", protection key" : "");
  } else if (code != 0 &&
             (vector == 10 || vector == 11 || vector == 12 || vector == 13 || vector == 17)) {
    ConsolePrintf("  selector error: index 0x%lx, %s%s\n", static_cast<unsigned long>(code >> 3),
                  (code & 2) ? "IDT" : ((code & 4) ? "LDT" : "GDT"),
                  (code & 1) ? ", external" : "");
  }
}

// --- The minimal report: no formatting library, no console state, bounded UART polls. -------

void RawPuts(const char* s) {
  for (; *s != '\0'; ++s) {
    UartPutc(kCom1Port, *s);
  }
}

void RawHex(const char* label, uint64_t v) {
  RawPuts(label);
  RawPuts("0x");
  for (int shift = 60; shift >= 0; shift -= 4) {
    UartPutc(kCom1Port, "0123456789abcdef"[(v >> shift) & 0xf]);
  }
}

}  // namespace

const char* ExceptionName(uint64_t vector) {
  // SDM Vol. 3A Table 6-1; 21, 28, 29, 30 as in AMD's APM Vol. 2, 8.2.
  static const char* const kNames[32] = {
      "#DE divide error",
      "#DB debug",
      "NMI",
      "#BP breakpoint",
      "#OF overflow",
      "#BR bound range exceeded",
      "#UD invalid opcode",
      "#NM device not available",
      "#DF double fault",
      "coprocessor segment overrun",
      "#TS invalid TSS",
      "#NP segment not present",
      "#SS stack-segment fault",
      "#GP general protection",
      "#PF page fault",
      "reserved",
      "#MF x87 floating-point error",
      "#AC alignment check",
      "#MC machine check",
      "#XM SIMD floating-point exception",
      "#VE virtualization exception",
      "#CP control protection",
      "reserved",
      "reserved",
      "reserved",
      "reserved",
      "reserved",
      "reserved",
      "#HV hypervisor injection",
      "#VC VMM communication",
      "#SX security exception",
      "reserved",
  };
  return vector < 32 ? kNames[vector] : "reserved";
}

void InstallExceptionHandlers() {
  g_tss.ist[0] = reinterpret_cast<uintptr_t>(g_double_fault_stack + sizeof(g_double_fault_stack));
  g_tss.ist[1] = reinterpret_cast<uintptr_t>(g_nmi_mc_stack + sizeof(g_nmi_mc_stack));
  g_tss.iomap_base = sizeof(Tss);  // no I/O permission bitmap
  const auto base = reinterpret_cast<uintptr_t>(&g_tss);
  const uint64_t limit = sizeof(Tss) - 1;
  deviso_q35_gdt[kTssGdtIndex] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
                                 (kTssDescriptorType << 40) | (((limit >> 16) & 0xf) << 48) |
                                 (((base >> 24) & 0xff) << 56);
  deviso_q35_gdt[kTssGdtIndex + 1] = base >> 32;
  asm volatile("ltr %w0" ::"r"(kTssSelector) : "memory");

  for (size_t v = 0; v < 256; ++v) {
    SetGate(v, v == 8 ? 1 : (v == 2 || v == 18) ? 2 : 0);
  }
  const DescriptorPointer idtr = {sizeof(g_idt) - 1, reinterpret_cast<uintptr_t>(g_idt)};
  asm volatile("lidt %0" ::"m"(idtr) : "memory");
}

}  // namespace deviso::q35

using deviso::q35::ConsolePrintf;

void deviso_q35_exception(deviso::q35::ExceptionFrame* frame) {
  const uint64_t cr2 = deviso::q35::ReadCr2();
  deviso::q35::g_first_frame = frame;
  deviso::q35::g_first_cr2 = cr2;
  const auto u = [](uint64_t v) { return static_cast<unsigned long>(v); };
  ConsolePrintf("\ndeviso: crash report: vector %lu (%s), error code 0x%lx\n", u(frame->vector),
                deviso::q35::ExceptionName(frame->vector), u(frame->error_code));
  deviso_q35_crash_report_hook();
  deviso::q35::PrintErrorCode(frame->vector, frame->error_code);
  ConsolePrintf("  RIP    0x%016lx  CS 0x%04lx  RFLAGS 0x%016lx\n", u(frame->rip), u(frame->cs),
                u(frame->rflags));
  ConsolePrintf("  RSP    0x%016lx  SS 0x%04lx\n", u(frame->rsp), u(frame->ss));
  ConsolePrintf("  CR2    0x%016lx  CR3 0x%016lx\n", u(cr2), u(deviso::q35::ReadCr3()));
  ConsolePrintf("  CR0    0x%016lx  CR4 0x%016lx\n", u(deviso::q35::ReadCr0()),
                u(deviso::q35::ReadCr4()));
  ConsolePrintf("  RAX    0x%016lx  RBX 0x%016lx  RCX 0x%016lx\n", u(frame->rax), u(frame->rbx),
                u(frame->rcx));
  ConsolePrintf("  RDX    0x%016lx  RSI 0x%016lx  RDI 0x%016lx\n", u(frame->rdx), u(frame->rsi),
                u(frame->rdi));
  ConsolePrintf("  RBP    0x%016lx  R8  0x%016lx  R9  0x%016lx\n", u(frame->rbp), u(frame->r8),
                u(frame->r9));
  ConsolePrintf("  R10    0x%016lx  R11 0x%016lx  R12 0x%016lx\n", u(frame->r10), u(frame->r11),
                u(frame->r12));
  ConsolePrintf("  R13    0x%016lx  R14 0x%016lx  R15 0x%016lx\n", u(frame->r13), u(frame->r14),
                u(frame->r15));
  deviso::q35::Exit(deviso::q35::kExitCrash);
}

void deviso_q35_minimal_report(const deviso::q35::ExceptionFrame* frame, uint32_t reason) {
  using deviso::q35::RawHex;
  using deviso::q35::RawPuts;
  const uint64_t cr2 = deviso::q35::ReadCr2();
  RawPuts(reason == static_cast<uint32_t>(deviso::q35::MinimalReason::kDoubleFault)
              ? "\ndeviso: minimal crash report (double fault)\n"
              : "\ndeviso: minimal crash report (inside the exception handler)\n");
  RawHex("  vector ", frame->vector);
  RawHex("  error ", frame->error_code);
  RawHex("\n  RIP    ", frame->rip);
  RawHex("  RSP ", frame->rsp);
  RawHex("  CR2 ", cr2);
  RawPuts("\n");
  const deviso::q35::ExceptionFrame* first = deviso::q35::g_first_frame;
  if (first != nullptr) {
    // The frame the full report was given lies on the stack that exception came in on, which
    // the report itself still used: readable.
    RawHex("  first exception: vector ", first->vector);
    RawHex("  RIP ", first->rip);
    RawHex("  CR2 ", deviso::q35::g_first_cr2);
    RawPuts("\n");
  }
  RawPuts("deviso-exit: 2\n");
  deviso::q35::DebugExitWrite(deviso::q35::kExitCrash);
  deviso_q35_exit_now();
}
