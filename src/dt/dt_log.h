// Error lines of the devicetree module (internal to src/dt).

#ifndef DEVISO_SRC_DT_DT_LOG_H_
#define DEVISO_SRC_DT_DT_LOG_H_

#include "deviso/status.h"

namespace deviso::dt {

// Logs "deviso dt: <node path>: <property>: <message> (<errno name>)" and returns `status`.
Status LogError(Status status, const void* fdt, int node, const char* property, const char* format,
                ...) __attribute__((format(printf, 5, 6)));

}  // namespace deviso::dt

#endif  // DEVISO_SRC_DT_DT_LOG_H_
