#include "pl011.h"

#include "deviso/port/os.h"

namespace deviso::qemu_virt {

void Pl011::Init() {
  Write32(kCr, 0);
  const port::Deadline deadline = port::Deadline::In(10'000'000);
  while ((Read(kFr) & kFrBusy) != 0 && !deadline.Expired()) {
  }
  if (clock_hz_ != 0) {
    // 3.3.6: divisor = clock / (16 * baud), as a 16.6 fixed-point number.
    constexpr uint32_t kBaud = 115200;
    const uint32_t div64 = static_cast<uint32_t>((uint64_t{clock_hz_} * 4 + kBaud / 2) / kBaud);
    Write32(kIbrd, div64 >> 6);
    Write32(kFbrd, div64 & 0x3f);
  }
  Write32(kLcrH, kLcrHWlen8 | kLcrHFen);  // also latches IBRD/FBRD (3.3.7)
  Write32(kImsc, 0);
  Write32(kIcr, 0x7ff);
  Write32(kCr, kCrUarten | kCrTxe | kCrRxe);
}

void Pl011::PutByte(char c) {
  const port::Deadline deadline = port::Deadline::In(10'000'000);
  while ((Read(kFr) & kFrTxff) != 0) {
    if (deadline.Expired()) {
      return;
    }
  }
  Write32(kDr, static_cast<uint8_t>(c));
}

void Pl011::Write(const char* s, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (s[i] == '\n') {
      PutByte('\r');
    }
    PutByte(s[i]);
  }
}

}  // namespace deviso::qemu_virt
