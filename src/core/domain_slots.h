// A backend's domain slots (issue 13): a fixed array of its domain type, with the state every
// backend keeps per domain (in use, fault sink, attached streams) and generation-checked
// handles. No heap: the capacity is a template parameter (the backend's kMaxDomains).
//
// Not synchronised: the backend calls every member under the lock that guards its domains.

#ifndef DEVISO_SRC_CORE_DOMAIN_SLOTS_H_
#define DEVISO_SRC_CORE_DOMAIN_SLOTS_H_

#include <cstddef>
#include <cstdint>

#include "deviso/backend.h"

namespace deviso {

template <typename D, size_t N>
class DomainSlots;
template <typename D, size_t N>
class StreamSlots;

// The part of a backend's domain the core's bookkeeping owns. A backend's domain type derives
// from it (SmmuDomain, VirtioIommuDomain) and keeps only what is its own.
class SlotDomain : public Domain {
 public:
  bool in_use() const { return in_use_; }
  // The sink given to CreateDomain (may be null).
  FaultSink* sink() const { return sink_; }
  // StreamIDs attached (StreamSlots keeps the count).
  unsigned streams() const { return streams_; }

 protected:
  SlotDomain() = default;
  ~SlotDomain() = default;

 private:
  template <typename D, size_t N>
  friend class DomainSlots;
  template <typename D, size_t N>
  friend class StreamSlots;
  bool in_use_ = false;
  uint32_t generation_ = 0;  // bumped by every Activate(); 0 names no domain
  FaultSink* sink_ = nullptr;
  unsigned streams_ = 0;
};

// Names one activation of one slot. A handle outlives its domain harmlessly: once the slot is
// released, and after it is reused, Resolve() refuses it (the generation no longer matches).
struct DomainHandle {
  uint32_t index = 0;
  uint32_t generation = 0;  // 0: no domain
};

template <typename D, size_t N>
class DomainSlots {
 public:
  static constexpr size_t kCapacity = N;

  // The first free slot among the first `limit` (a device may offer fewer domain IDs than
  // there are slots), or nullptr: no change. The backend fills its own fields, then
  // Activate()s it; a slot found but never activated stays free.
  D* FreeSlot(size_t limit = N) {
    for (size_t i = 0; i < N && i < limit; ++i) {
      if (!slots_[i].in_use_) return &slots_[i];
    }
    return nullptr;
  }
  // Marks a slot from FreeSlot() in use with no streams attached and a new generation.
  void Activate(D* d, FaultSink* sink) {
    d->in_use_ = true;
    d->sink_ = sink;
    d->streams_ = 0;
    if (++d->generation_ == 0) d->generation_ = 1;  // 0 stays "no domain"
  }
  // Frees an active slot (its streams must all be detached: the backend checks, -EBUSY).
  void Release(D* d) {
    d->in_use_ = false;
    d->sink_ = nullptr;
  }

  // `domain` if it is one of these slots and in use, else nullptr: how a backend checks the
  // Domain* the core passes in before touching it.
  D* Find(Domain* domain) {
    for (D& d : slots_) {
      if (static_cast<Domain*>(&d) == domain) return d.in_use_ ? &d : nullptr;
    }
    return nullptr;
  }
  const D* Find(const Domain* domain) const {
    for (const D& d : slots_) {
      if (static_cast<const Domain*>(&d) == domain) return d.in_use_ ? &d : nullptr;
    }
    return nullptr;
  }

  size_t IndexOf(const D& d) const { return static_cast<size_t>(&d - slots_); }
  DomainHandle HandleOf(const D& d) const {
    return {static_cast<uint32_t>(IndexOf(d)), d.in_use_ ? d.generation_ : 0};
  }
  // The domain `h` names, or nullptr if it is stale (released, or the slot reused since).
  D* Resolve(DomainHandle h) {
    if (h.generation == 0 || h.index >= N) return nullptr;
    D& d = slots_[h.index];
    return d.in_use_ && d.generation_ == h.generation ? &d : nullptr;
  }

  // Every slot, in use or not (destructors, memory checks): test in_use().
  D* begin() { return slots_; }
  D* end() { return slots_ + N; }
  const D* begin() const { return slots_; }
  const D* end() const { return slots_ + N; }

 private:
  D slots_[N];
};

}  // namespace deviso

#endif  // DEVISO_SRC_CORE_DOMAIN_SLOTS_H_
