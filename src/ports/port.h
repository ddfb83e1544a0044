// OS facades (Pigweed style): one interface, one backend per OS. The backend is chosen at
// build time by the include directory of the port (src/ports/<os>/port_backend.h), not by
// #ifdefs in the core.

#ifndef DEVISO_SRC_PORTS_PORT_H_
#define DEVISO_SRC_PORTS_PORT_H_

#include <cstdint>

#include "port_backend.h"

namespace deviso::port {

// A lock for short critical sections, never held across a blocking call.
//   host:       std::mutex.
//   bare metal: a ticket spin lock that masks IRQs on the local CPU while held, so interrupt
//               handlers may take it too. It uses exclusives, which need the MMU on (Normal
//               memory): exclusives on Device memory fault.
class Mutex {
 public:
  Mutex();
  // Defined by each backend (host: destroys its std::mutex), so not defaulted here.
  ~Mutex();  // NOLINT(performance-trivially-destructible)
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  void Lock();
  void Unlock();

 private:
  MutexStorage storage_;
};

class LockGuard {
 public:
  explicit LockGuard(Mutex& m) : m_(m) { m_.Lock(); }
  ~LockGuard() { m_.Unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  Mutex& m_;
};

// Monotonic time in nanoseconds (host: steady_clock; bare metal: the generic timer).
uint64_t MonotonicNs();

// A point in time after which a hardware poll gives up. Every poll in deviso has one.
class Deadline {
 public:
  static Deadline In(uint64_t ns) { return Deadline(MonotonicNs() + ns); }
  bool Expired() const { return MonotonicNs() >= end_ns_; }

 private:
  explicit Deadline(uint64_t end_ns) : end_ns_(end_ns) {}
  uint64_t end_ns_;
};

// Diagnostic output (host: stderr; bare metal: the console). printf format.
void Log(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace deviso::port

#endif  // DEVISO_SRC_PORTS_PORT_H_
