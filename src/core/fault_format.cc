// deviso_fault_format(): a one-line report of a decoded fault (the registry adds the device and
// the nearest mapping: Registry::FormatFault). Hand-formatted (no printf), so it needs nothing
// from the C library and may run in an interrupt handler.

#include <cstddef>
#include <cstdint>

#include "core/fault_line.h"
#include "core/line_writer.h"
#include "deviso/deviso.h"
#include "deviso/registry.h"

namespace deviso {
namespace {

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

namespace internal {

// "<unit>: sid <sid>: <privilege> <access>[ at iova <iova>[ (ipa <ipa>)]]: [stage 2 ]<reason>
//  (event <raw_type>)"
void PutFaultLine(const Fault* fault, LineWriter& w) {
  w.Put(fault->unit != nullptr && fault->unit[0] != '\0' ? fault->unit : "?");
  if (fault->reason == DEVISO_FAULT_OVERFLOW) {
    // Not one stream's fault: the unit lost records.
    w.Put(": ");
    w.Put(ReasonText(fault->reason));
    return;
  }
  w.Put(": sid ");
  w.PutHex(fault->sid);
  // Events that carry no transaction (e.g. a blocked stream's C_BAD_STE) have no access kind.
  constexpr uint32_t kAccessFlags = DEVISO_FAULT_READ | DEVISO_FAULT_WRITE | DEVISO_FAULT_EXEC;
  if ((fault->flags & kAccessFlags) != 0) {
    w.Put((fault->flags & DEVISO_FAULT_PRIV) != 0 ? ": privileged " : ": unprivileged ");
    w.Put(AccessText(fault->flags));
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
  w.Put(ReasonText(fault->reason));
  w.Put(" (event ");
  w.PutHex(fault->raw_type);
  w.Put(")");
}

}  // namespace internal
}  // namespace deviso

// The line of PutFaultLine(), with the device and the nearest mapping the default registry
// knows of (Registry::FormatFault).
extern "C" int deviso_fault_format(const struct deviso_fault* fault, char* buf, size_t len) {
  if (fault == nullptr || (buf == nullptr && len != 0)) {
    return -EINVAL;
  }
  return deviso::Registry::Default().FormatFault(*fault, buf, len);
}
