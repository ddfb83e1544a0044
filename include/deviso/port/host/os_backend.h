// Host (Linux) backend of include/deviso/port/os.h.

#ifndef DEVISO_PORT_HOST_OS_BACKEND_H_
#define DEVISO_PORT_HOST_OS_BACKEND_H_

#include <mutex>

namespace deviso::port {

// The storage of a port::InterruptSpinLock on the host.
struct InterruptSpinLockStorage {
  std::mutex mutex;  // the lock itself
};

}  // namespace deviso::port

#endif  // DEVISO_PORT_HOST_OS_BACKEND_H_
