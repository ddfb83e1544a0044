// OS facades (Pigweed style): one interface, one backend per OS. The backend is chosen at
// build time, not by #ifdefs in the core: DEVISO_PORT=<os> generates deviso/port/os_backend.h
// (cmake/os_backend.h.in, in the build tree and installed), which includes the port's
// deviso/port/<os>/os_backend.h. Only the configured port's backend is installed.

#ifndef DEVISO_PORT_OS_H_
#define DEVISO_PORT_OS_H_

#include <cstdint>

#include "deviso/port/os_backend.h"

struct device;  // the OS's device handle (deviso/port/device.h on the host and bare metal)

namespace deviso::port {

// A lock for short critical sections, never held across a blocking call, that interrupt
// handlers may take (the SMMUv3 and virtio-iommu event handlers do): named for what a port
// must provide (pw_sync's InterruptSpinLock; Zephyr's k_spinlock).
//   host:       std::mutex.
//   bare metal: a ticket spin lock that masks IRQs on the local CPU while held, so interrupt
//               handlers may take it too. It uses exclusives, which need the MMU on (Normal
//               memory): exclusives on Device memory fault.
class InterruptSpinLock {
 public:
  InterruptSpinLock();
  // Defined by each backend (host: destroys its std::mutex), so not defaulted here.
  ~InterruptSpinLock();  // NOLINT(performance-trivially-destructible)
  InterruptSpinLock(const InterruptSpinLock&) = delete;
  InterruptSpinLock& operator=(const InterruptSpinLock&) = delete;
  // Takes the lock, waiting (host) or spinning (bare metal) while another holder has it.
  void Lock();
  // Takes the lock if nobody holds it or waits for it, and returns true; returns false at once
  // otherwise. Never waits, so an event handler may use it on a lock thread code holds.
  bool TryLock();
  // Releases the lock; only its holder calls it.
  void Unlock();

 private:
  InterruptSpinLockStorage storage_;
};

// Holds an InterruptSpinLock for the scope of the guard.
class LockGuard {
 public:
  // Takes `m`; the destructor releases it.
  explicit LockGuard(InterruptSpinLock& m) : m_(m) { m_.Lock(); }
  ~LockGuard() { m_.Unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  InterruptSpinLock& m_;
};

// Monotonic time in nanoseconds (host: steady_clock; bare metal: the generic timer).
uint64_t MonotonicNs();

// A point in time after which a hardware poll gives up. Every poll in deviso has one.
class Deadline {
 public:
  // The deadline `ns` nanoseconds from now.
  static Deadline In(uint64_t ns) { return Deadline(MonotonicNs() + ns); }
  // True once the deadline has passed.
  bool Expired() const { return MonotonicNs() >= end_ns_; }

 private:
  explicit Deadline(uint64_t end_ns) : end_ns_(end_ns) {}
  uint64_t end_ns_;
};

// The OS's name of a device for reports (its struct device's `name`), or "?" for a null device
// or name. Never blocks.
const char* DeviceName(const device* dev);

// Diagnostic output (host: stderr; bare metal: the console). printf format.
void Log(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace deviso::port

#endif  // DEVISO_PORT_OS_H_
