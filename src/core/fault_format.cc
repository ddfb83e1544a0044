// deviso_fault_format(): a one-line report of a decoded fault. Hand-formatted (no printf), so it
// needs nothing from the C library and may run in an interrupt handler.

#include <cstddef>
#include <cstdint>

#include "deviso/deviso.h"

namespace deviso {
namespace {

// Appends to a caller's buffer with snprintf's rules: writes what fits, always NUL-terminates
// when there is room for anything, and counts what it would have written.
class LineWriter {
 public:
  LineWriter(char* buf, size_t len) : buf_(buf), len_(len) {}

  void Put(const char* s) {
    for (; *s != '\0'; ++s) {
      PutChar(*s);
    }
  }

  void PutHex(uint64_t value) {
    char digits[16];
    size_t n = 0;
    do {
      digits[n++] = "0123456789abcdef"[value & 0xf];
      value >>= 4;
    } while (value != 0);
    Put("0x");
    while (n > 0) {
      PutChar(digits[--n]);
    }
  }

  // The length of the whole line, as snprintf returns it.
  int Finish() {
    if (len_ > 0) {
      buf_[pos_ < len_ ? pos_ : len_ - 1] = '\0';
    }
    return static_cast<int>(pos_);
  }

 private:
  void PutChar(char c) {
    if (pos_ + 1 < len_) {
      buf_[pos_] = c;
    }
    ++pos_;
  }

  char* buf_;
  size_t len_;
  size_t pos_ = 0;
};

const char* ReasonText(uint32_t reason) {
  switch (reason) {
    case DEVISO_FAULT_TRANSLATION:
      return "translation fault";
    case DEVISO_FAULT_PERMISSION:
      return "permission fault";
    case DEVISO_FAULT_ADDR_SIZE:
      return "address size fault";
    case DEVISO_FAULT_ACCESS:
      return "access flag fault";
    case DEVISO_FAULT_BLOCKED:
      return "stream blocked (no context)";
    case DEVISO_FAULT_BAD_CONFIG:
      return "invalid stream configuration";
    case DEVISO_FAULT_EXTERNAL:
      return "external abort";
    case DEVISO_FAULT_OVERFLOW:
      return "fault queue overflow, faults lost";
    default:
      return "unknown fault";
  }
}

// "data read", "instruction fetch", ...: what the device tried to do.
const char* AccessText(uint32_t flags) {
  if ((flags & DEVISO_FAULT_EXEC) != 0) {
    return "instruction fetch";
  }
  switch (flags & (DEVISO_FAULT_READ | DEVISO_FAULT_WRITE)) {
    case DEVISO_FAULT_READ:
      return "data read";
    case DEVISO_FAULT_WRITE:
      return "data write";
    case DEVISO_FAULT_READ | DEVISO_FAULT_WRITE:
      return "data read-write";
    default:
      return "access";
  }
}

}  // namespace
}  // namespace deviso

// "<unit>: sid <sid>: <privilege> <access>[ at iova <iova>[ (ipa <ipa>)]]: [stage 2 ]<reason>
//  (event <raw_type>)"
extern "C" int deviso_fault_format(const struct deviso_fault* fault, char* buf, size_t len) {
  if (fault == nullptr || (buf == nullptr && len != 0)) {
    return -EINVAL;
  }
  deviso::LineWriter w(buf, len);
  w.Put(fault->unit != nullptr && fault->unit[0] != '\0' ? fault->unit : "?");
  if (fault->reason == DEVISO_FAULT_OVERFLOW) {
    // Not one stream's fault: the unit lost records.
    w.Put(": ");
    w.Put(deviso::ReasonText(fault->reason));
    return w.Finish();
  }
  w.Put(": sid ");
  w.PutHex(fault->sid);
  // Events that carry no transaction (e.g. a blocked stream's C_BAD_STE) have no access kind.
  constexpr uint32_t kAccessFlags = DEVISO_FAULT_READ | DEVISO_FAULT_WRITE | DEVISO_FAULT_EXEC;
  if ((fault->flags & kAccessFlags) != 0) {
    w.Put((fault->flags & DEVISO_FAULT_PRIV) != 0 ? ": privileged " : ": unprivileged ");
    w.Put(deviso::AccessText(fault->flags));
  }
  if ((fault->flags & DEVISO_FAULT_ADDR_VALID) != 0) {
    w.Put(" at iova ");
    w.PutHex(fault->iova);
    if ((fault->flags & DEVISO_FAULT_STAGE2) != 0) {
      w.Put(" (ipa ");
      w.PutHex(fault->ipa);
      w.Put(")");
    }
  }
  w.Put((fault->flags & DEVISO_FAULT_STAGE2) != 0 ? ": stage 2 " : ": ");
  w.Put(deviso::ReasonText(fault->reason));
  w.Put(" (event ");
  w.PutHex(fault->raw_type);
  w.Put(")");
  return w.Finish();
}
