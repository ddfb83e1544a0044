// Host (Linux) backend of src/ports/port.h.

#ifndef DEVISO_SRC_PORTS_HOST_PORT_BACKEND_H_
#define DEVISO_SRC_PORTS_HOST_PORT_BACKEND_H_

#include <mutex>

namespace deviso::port {

struct MutexStorage {
  std::mutex mutex;
};

}  // namespace deviso::port

#endif  // DEVISO_SRC_PORTS_HOST_PORT_BACKEND_H_
