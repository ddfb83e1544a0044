// A backend's attached StreamIDs (issue 13): which domain each attached StreamID translates
// through, the attach/detach bookkeeping every backend enforces (one domain per StreamID:
// -EEXIST if attached anywhere, -ENOENT if not attached to the domain named), and fault
// routing from a StreamID to its domain's sink. No heap: the capacity is a template parameter
// (the backend's kMaxStreams).
//
// Not synchronised: the backend calls every member under the lock that guards its streams
// (the one its event handling takes to route a fault, so that a sink is never called once the
// Detach() of its stream has returned: backend.h).
//
// Use: Attach checks CanAttach(), programs the hardware, then Add()s; Detach checks
// IsAttached(), programs the hardware, then Remove()s. A hardware failure between the two
// leaves the bookkeeping as it was, so a failed Detach can be retried.

#ifndef DEVISO_SRC_CORE_STREAM_SLOTS_H_
#define DEVISO_SRC_CORE_STREAM_SLOTS_H_

#include <cstddef>
#include <cstdint>

#include "core/domain_slots.h"
#include "deviso/backend.h"
#include "deviso/status.h"
#include "deviso/types.h"

namespace deviso {

template <typename D, size_t N>
class StreamSlots {
 public:
  static constexpr size_t kCapacity = N;

  // Ok if `sid` may be attached: -EEXIST (attached to any domain, this one included), -ENOMEM
  // (no slot left). Changes nothing.
  Status CanAttach(uint32_t sid) const {
    bool free_slot = false;
    for (const Slot& s : slots_) {
      if (s.domain != nullptr && s.sid == sid) return Status::AlreadyExists();
      free_slot = free_slot || s.domain == nullptr;
    }
    return free_slot ? Status::Ok() : Status::NoMemory();
  }
  // Records `sid` as attached to `d` (CanAttach() returned Ok under the same lock).
  void Add(uint32_t sid, D* d) {
    for (Slot& s : slots_) {
      if (s.domain != nullptr) continue;
      s = Slot{sid, d};
      ++d->streams_;
      return;
    }
  }
  // True if `sid` is attached to `d` (false: the backend's Detach returns -ENOENT).
  bool IsAttached(const D* d, uint32_t sid) const {
    const Slot* s = Lookup(sid);
    return s != nullptr && s->domain == d;
  }
  // Forgets `sid` (IsAttached() was true under the same lock).
  void Remove(uint32_t sid) {
    for (Slot& s : slots_) {
      if (s.domain == nullptr || s.sid != sid) continue;
      --s.domain->streams_;
      s = Slot{};
      return;
    }
  }

  // The domain `sid` is attached to, or nullptr.
  D* DomainOf(uint32_t sid) const {
    const Slot* s = Lookup(sid);
    return s != nullptr ? s->domain : nullptr;
  }
  bool attached(uint32_t sid) const { return Lookup(sid) != nullptr; }

  // Calls fn(sid) for each StreamID attached to `d`, in slot order.
  template <typename F>
  void ForEachOf(const D* d, F&& fn) const {
    for (const Slot& s : slots_) {
      if (s.domain != nullptr && s.domain == d) fn(s.sid);
    }
  }

  // Fault routing: delivers `fault` to the sink of the domain `fault.sid` is attached to (if
  // that domain has one) and returns true; false if the StreamID has no domain (the backend
  // then takes the unrouted path, UnitFaultReporter::ReportUnrouted).
  bool Route(const Fault& fault) const {
    const D* d = DomainOf(fault.sid);
    if (d == nullptr) return false;
    if (d->sink_ != nullptr) d->sink_->OnFault(fault);
    return true;
  }
  // Delivers `fault` to the sink of every domain once per attached StreamID; false if none is
  // attached.
  bool RouteToAll(const Fault& fault) const {
    bool any = false;
    for (const Slot& s : slots_) {
      if (s.domain == nullptr) continue;
      if (s.domain->sink_ != nullptr) s.domain->sink_->OnFault(fault);
      any = true;
    }
    return any;
  }

 private:
  struct Slot {
    uint32_t sid = 0;
    D* domain = nullptr;  // nullptr: the slot is free
  };
  const Slot* Lookup(uint32_t sid) const {
    for (const Slot& s : slots_) {
      if (s.domain != nullptr && s.sid == sid) return &s;
    }
    return nullptr;
  }

  Slot slots_[N];
};

}  // namespace deviso

#endif  // DEVISO_SRC_CORE_STREAM_SLOTS_H_
