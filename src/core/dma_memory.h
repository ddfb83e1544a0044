// The DMA-memory seam: memory a unit reads or writes by physical address (queues, stream
// tables, context descriptors), with the cache maintenance a non-coherent unit needs.

#ifndef DEVISO_SRC_CORE_DMA_MEMORY_H_
#define DEVISO_SRC_CORE_DMA_MEMORY_H_

#include <cstddef>
#include <cstdint>

#include "deviso/status.h"
#include "deviso/types.h"

namespace deviso {

struct DmaBuffer {
  void* cpu = nullptr;  // the CPU's pointer
  Paddr pa = 0;         // the address the unit uses
  size_t size = 0;
};

class DmaMemory {
 public:
  virtual ~DmaMemory() = default;
  // Zeroed (and, for a non-coherent unit, cleaned) memory aligned to `align` (a power of
  // two). Errors: -ENOMEM, -EINVAL.
  virtual Result<DmaBuffer> Allocate(size_t size, size_t align) = 0;
  virtual void Free(const DmaBuffer& buffer) = 0;
  // Makes CPU writes in [p, p + n) visible to a non-coherent unit (DC CVAC + DSB).
  virtual void Clean(const void* p, size_t n) = 0;
  // Discards CPU cache lines in [p, p + n) before reading what a non-coherent unit wrote
  // (DC IVAC/CIVAC + DSB).
  virtual void Invalidate(const void* p, size_t n) = 0;
};

}  // namespace deviso

#endif  // DEVISO_SRC_CORE_DMA_MEMORY_H_
