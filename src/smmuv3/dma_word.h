// 64-bit words of structures the SMMU reads or writes by DMA (stream table, CDs, queues).
//
// IHI0070 3.21.3 and 3.5: the SMMU reads an STE, a CD or a queue entry as 64-bit single-copy-
// atomic words, so the driver stores and loads whole words, never bytes of one, and the compiler
// may not tear, merge or reorder a word it cannot see being shared. Ordering against the SMMU
// (which these relaxed accesses do not give) is the caller's: DmaWriteBarrier()/DmaReadBarrier()
// (core/barrier.h) and DmaMemory::Clean/Invalidate for a non-coherent SMMU.

#ifndef DEVISO_SRC_SMMUV3_DMA_WORD_H_
#define DEVISO_SRC_SMMUV3_DMA_WORD_H_

#include <cstdint>

namespace deviso::smmuv3 {

// One 64-bit load of a word the SMMU may write (an event record) or read (an STE being updated).
inline uint64_t Load64(const uint64_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

// One 64-bit store of a word the SMMU may read at any time.
inline void Store64(uint64_t* p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

}  // namespace deviso::smmuv3

#endif  // DEVISO_SRC_SMMUV3_DMA_WORD_H_
