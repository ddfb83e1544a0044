#include "apic.h"

#include "arch.h"
#include "deviso/port/os.h"
#include "exceptions.h"

extern "C" void deviso_q35_irq(const deviso::q35::ExceptionFrame* frame);  // boot/isr.S

namespace deviso::q35 {
namespace {

constexpr uint32_t kMsrApicBase = 0x1b;
constexpr uint64_t kApicGlobalEnable = 1ULL << 11;
constexpr uint64_t kApicX2Mode = 1ULL << 10;
constexpr uint64_t kApicBaseMask = 0x0000000ffffff000ULL;

constexpr uint32_t kId = 0x020;
constexpr uint32_t kTpr = 0x080;
constexpr uint32_t kEoi = 0x0b0;
constexpr uint32_t kSvr = 0x0f0;
constexpr uint32_t kIcrLow = 0x300;
constexpr uint32_t kIcrHigh = 0x310;
constexpr uint32_t kLvtTimer = 0x320;
constexpr uint32_t kLvtError = 0x370;
constexpr uint32_t kTimerInitial = 0x380;
constexpr uint32_t kTimerDivide = 0x3e0;

constexpr uint32_t kSvrEnable = 1u << 8;
constexpr uint32_t kLvtMasked = 1u << 16;
constexpr uint32_t kIcrSelf = 1u << 18;     // destination shorthand 01
constexpr uint32_t kIcrAssert = 1u << 14;   // level: assert
constexpr uint32_t kIcrPending = 1u << 12;  // delivery status: send pending
constexpr uint32_t kDivideBy1 = 0xb;
constexpr uint64_t kIcrDeadlineNs = 1'000'000;  // 1 ms

constexpr uint16_t kPic1Data = 0x21;
constexpr uint16_t kPic2Data = 0xa1;

struct Slot {
  IrqHandler handler = nullptr;
  void* arg = nullptr;
};

uintptr_t g_apic = 0;  // MMIO base once enabled
Slot g_slots[256];
volatile uint32_t g_unexpected = 0;

uint32_t Read(uint32_t reg) { return *reinterpret_cast<volatile uint32_t*>(g_apic + reg); }
void Write(uint32_t reg, uint32_t value) {
  *reinterpret_cast<volatile uint32_t*>(g_apic + reg) = value;
}

bool IrqVector(uint8_t vector) { return vector >= kFirstIrqVector && vector < kSpuriousVector; }

}  // namespace

Status ApicInit() {
  if ((Cpuid(1).edx & (1u << 9)) == 0) {
    return Status::NotSupported();
  }
  const uint64_t base = ReadMsr(kMsrApicBase);
  if ((base & kApicGlobalEnable) == 0 || (base & kApicX2Mode) != 0) {
    return Status::NotSupported();
  }
  Outb(kPic1Data, 0xff);
  Outb(kPic2Data, 0xff);
  // The APIC page lies above RAM (0xFEE0_0000): mapped uncached by start.S.
  g_apic = static_cast<uintptr_t>(base & kApicBaseMask);
  Write(kLvtTimer, kLvtMasked);
  Write(kLvtError, kLvtMasked);
  Write(kTpr, 0);
  Write(kSvr, kSvrEnable | kSpuriousVector);
  return Status::Ok();
}

Status SetIrqHandler(uint8_t vector, IrqHandler handler, void* arg) {
  if (!IrqVector(vector) || handler == nullptr) {
    return Status::InvalidArgument();
  }
  if (g_slots[vector].handler != nullptr) {
    return Status::Busy();
  }
  g_slots[vector] = {handler, arg};
  return Status::Ok();
}

void ClearIrqHandler(uint8_t vector) { g_slots[vector] = {}; }

Status SendSelfIpi(uint8_t vector) {
  if (!IrqVector(vector)) {
    return Status::InvalidArgument();
  }
  if (g_apic == 0) {
    return Status::NotSupported();
  }
  Write(kIcrHigh, 0);
  Write(kIcrLow, kIcrSelf | kIcrAssert | vector);
  const port::Deadline deadline = port::Deadline::In(kIcrDeadlineNs);
  // Looks once more after the deadline, as src/ports/poll.h does.
  for (;;) {
    const bool expired = deadline.Expired();
    if ((Read(kIcrLow) & kIcrPending) == 0) {
      return Status::Ok();
    }
    if (expired) {
      return Status::TimedOut();
    }
    Pause();
  }
}

Status ArmApicTimerOnce(uint8_t vector, uint32_t ticks) {
  if (!IrqVector(vector) || ticks == 0) {
    return Status::InvalidArgument();
  }
  if (g_apic == 0) {
    return Status::NotSupported();
  }
  Write(kTimerDivide, kDivideBy1);
  Write(kLvtTimer, vector);  // one-shot (mode 00), not masked
  Write(kTimerInitial, ticks);
  return Status::Ok();
}

uint8_t ApicId() { return g_apic == 0 ? 0 : static_cast<uint8_t>(Read(kId) >> 24); }

uint32_t UnexpectedIrqCount() { return g_unexpected; }

}  // namespace deviso::q35

void deviso_q35_irq(const deviso::q35::ExceptionFrame* frame) {
  using deviso::q35::g_slots;
  const auto vector = static_cast<uint8_t>(frame->vector);
  if (vector == deviso::q35::kSpuriousVector) {
    deviso::q35::g_unexpected = deviso::q35::g_unexpected + 1;
    return;  // SDM 10.9: no EOI for a spurious interrupt
  }
  const deviso::q35::Slot slot = g_slots[vector];
  if (slot.handler != nullptr) {
    slot.handler(vector, slot.arg);
  } else {
    deviso::q35::g_unexpected = deviso::q35::g_unexpected + 1;
  }
  if (deviso::q35::g_apic != 0) {
    deviso::q35::Write(deviso::q35::kEoi, 0);
  }
}
