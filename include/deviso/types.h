// Vocabulary types shared by the core, the backends and the C++ API.

#ifndef DEVISO_TYPES_H_
#define DEVISO_TYPES_H_

#include <cstdint>

#include "deviso/deviso.h"

namespace deviso {

using Paddr = uint64_t;  // physical address
using Iova = uint64_t;   // device (input) address

// Access permissions: DEVISO_PERM_* bits.
using Perms = uint32_t;
inline constexpr Perms kPermRead = DEVISO_PERM_READ;     // the device may read
inline constexpr Perms kPermWrite = DEVISO_PERM_WRITE;   // the device may write
inline constexpr Perms kPermExec = DEVISO_PERM_EXEC;     // instruction fetch, if the backend has it
inline constexpr Perms kPermReadWrite = DEVISO_PERM_RW;  // read and write

// Memory type of a mapping; the values are DEVISO_ATTR_* >> DEVISO_ATTR_SHIFT.
enum class MemType : uint8_t {
  kNormal = 0,              // write-back cacheable (coherent DMA)
  kNormalNonCacheable = 1,  // for devices that are not cache-coherent
  kDevice = 2,              // Device-nGnRE: a peer's MMIO (e.g. an MSI doorbell)
  kDeviceStrict = 3,        // Device-nGnRnE
};

using Fault = deviso_fault;               // a decoded fault (struct deviso_fault)
using FaultReason = deviso_fault_reason;  // why an access was refused (deviso_fault_reason)

}  // namespace deviso

#endif  // DEVISO_TYPES_H_
