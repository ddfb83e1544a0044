#include "deviso/status.h"

#include "deviso/config.h"

extern "C" const char* deviso_status_str(deviso_status_t s) {
  if constexpr (!deviso::config::kStatusStrings) {
    return s == 0 ? "OK" : "error";  // DEVISO_CONFIG_STATUS_STRINGS=OFF
  }
  // Case labels use the <errno.h> names so the table stays right on every C library.
  switch (s) {
    case 0:
      return "OK";
    case -EINVAL:
      return "EINVAL";
    case -ENOMEM:
      return "ENOMEM";
    case -EEXIST:
      return "EEXIST";
    case -ENOENT:
      return "ENOENT";
    case -ERANGE:
      return "ERANGE";
    case -ETIMEDOUT:
      return "ETIMEDOUT";
    case -EBUSY:
      return "EBUSY";
    case -ENOTSUP:
      return "ENOTSUP";
    case -EIO:
      return "EIO";
    case -EPERM:
      return "EPERM";
    default:
      return "unknown";
  }
}
