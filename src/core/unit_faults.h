// Fault-handling pieces every backend shares (issue 10): a bounded event drain, and the
// rate-limited handler for faults that belong to a unit rather than to a context (streams with
// no context, i.e. default-deny hits, and lost faults after an event-queue overflow).

#ifndef DEVISO_SRC_CORE_UNIT_FAULTS_H_
#define DEVISO_SRC_CORE_UNIT_FAULTS_H_

#include <cstddef>
#include <cstdint>

#include "deviso/config.h"
#include "deviso/detail/token_bucket.h"
#include "deviso/deviso.h"
#include "deviso/port/os.h"
#include "deviso/types.h"

namespace deviso {

// Event records a backend's HandleEvents() consumes per call unless configured otherwise, so
// that an interrupt handler facing a fault storm returns in bounded time. The backend reports
// whether records remain; its caller then calls again (from a poll loop or a deferred
// handler): records left in the queue are not lost, at worst the queue overflows, which is
// reported.
inline constexpr size_t kDefaultEventsPerDrain = 256;

// Counts records against a per-call budget.
class DrainBudget {
 public:
  explicit DrainBudget(size_t records) : left_(records) {}
  // Takes one record's worth; false once the budget is spent.
  bool Take() {
    if (left_ == 0) return false;
    --left_;
    return true;
  }
  bool spent() const { return left_ == 0; }

 private:
  size_t left_;
};

// The unit-level fault handler, rate-limited like a context's (deviso_set_fault_handler: a
// token bucket, bursts of up to `per_second`). Not synchronised: the backend calls Set() and
// Report() under its event-handling lock. Counters are read with relaxed atomics.
class UnitFaultReporter {
 public:
  void Set(deviso_fault_handler_t handler, void* user, uint32_t per_second) {
    handler_ = handler;
    user_ = user;
    limiter_.Reset(per_second, port::MonotonicNs());
  }
  // A fault of a StreamID with no domain (StreamSlots::Route() found none): counted in
  // unrouted(), then reported.
  void ReportUnrouted(const Fault& fault) {
    __atomic_fetch_add(&unrouted_, 1, __ATOMIC_RELAXED);
    Report(fault);
  }
  // Counts `fault` and calls the handler if one is set and the rate limit allows (unit-level
  // faults that are not a stream's, e.g. DEVISO_FAULT_OVERFLOW).
  void Report(const Fault& fault) {
    __atomic_fetch_add(&reported_, 1, __ATOMIC_RELAXED);
    if (handler_ == nullptr) return;
    if (limiter_.TryTake(port::MonotonicNs())) {
      handler_(&fault, user_);
    } else {
      __atomic_fetch_add(&suppressed_, 1, __ATOMIC_RELAXED);
    }
  }
  uint64_t reported() const { return __atomic_load_n(&reported_, __ATOMIC_RELAXED); }
  // Of those, the faults of StreamIDs with no domain (default-deny hits).
  uint64_t unrouted() const { return __atomic_load_n(&unrouted_, __ATOMIC_RELAXED); }
  // Of those, the ones the rate limit kept from the handler.
  uint64_t suppressed() const { return __atomic_load_n(&suppressed_, __ATOMIC_RELAXED); }

 private:
  deviso_fault_handler_t handler_ = nullptr;
  void* user_ = nullptr;
  TokenBucket limiter_;
  uint64_t reported_ = 0;
  uint64_t unrouted_ = 0;
  uint64_t suppressed_ = 0;
};

}  // namespace deviso

#endif  // DEVISO_SRC_CORE_UNIT_FAULTS_H_
