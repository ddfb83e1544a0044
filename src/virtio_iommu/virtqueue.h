// The driver side of one split virtqueue (virtio 1.2 2.7): descriptor table, available ring and
// used ring in one DmaMemory buffer. No indirect descriptors, no event index: the driver sets
// VIRTQ_AVAIL_F_NO_INTERRUPT where it polls and walks the used ring itself.
//
// Not locked: its owner serialises every call (VirtioIommu's request or event lock).

#ifndef DEVISO_SRC_VIRTIO_IOMMU_VIRTQUEUE_H_
#define DEVISO_SRC_VIRTIO_IOMMU_VIRTQUEUE_H_

#include <cstddef>
#include <cstdint>

#include "core/dma_memory.h"
#include "deviso/status.h"
#include "virtio_iommu/hw.h"

namespace deviso::virtio_iommu {

class SplitQueue {
 public:
  SplitQueue() = default;
  SplitQueue(const SplitQueue&) = delete;
  SplitQueue& operator=(const SplitQueue&) = delete;

  // Allocates the rings for `size` entries (a power of two, 2.7: at most 32768) from `dma`.
  // `coherent`: the device snoops the CPU's caches (no Clean/Invalidate needed).
  // Errors: -EINVAL (size), -ENOMEM.
  Status Allocate(DmaMemory& dma, uint16_t size, bool coherent);
  void Free();
  bool allocated() const { return buffer_.cpu != nullptr; }
  // The ring memory the device reads and writes (for IsolationUnit::UsesMemory).
  const DmaBuffer& buffer() const { return buffer_; }

  // Empties the rings, as the device sees them after a reset (2.7.13: indices start at 0).
  void ResetRings();

  uint16_t size() const { return size_; }
  Paddr desc_pa() const { return buffer_.pa; }
  Paddr avail_pa() const { return buffer_.pa + avail_offset_; }
  Paddr used_pa() const { return buffer_.pa + used_offset_; }

  // Writes descriptor `i` (its `next` field only matters with kDescFNext).
  void SetDesc(uint16_t i, Paddr addr, uint32_t len, uint16_t flags, uint16_t next);
  // Puts the chain headed by `head` in the next available-ring slot; it becomes visible to the
  // device with the next PublishAvail() (2.7.13.2 then 2.7.13.3: ring entry, barrier, idx).
  void AddAvail(uint16_t head);
  void PublishAvail();
  void SetAvailFlags(uint16_t flags);
  // Chains made available and not yet returned in the used ring.
  uint16_t in_flight() const { return static_cast<uint16_t>(avail_idx_ - last_used_); }

  // The next used element the driver has not consumed, if the device returned one
  // (2.7.14: read used.idx, then the ring entry after a read barrier).
  bool PopUsed(vq::UsedElem* elem);

 private:
  uint8_t* bytes() const { return static_cast<uint8_t*>(buffer_.cpu); }
  uint16_t* Avail16(size_t offset) const {
    return reinterpret_cast<uint16_t*>(bytes() + avail_offset_ + offset);
  }
  void Clean(const void* p, size_t n) const {
    if (!coherent_) dma_->Clean(p, n);
  }

  DmaMemory* dma_ = nullptr;
  DmaBuffer buffer_;
  bool coherent_ = true;
  uint16_t size_ = 0;
  size_t avail_offset_ = 0;
  size_t used_offset_ = 0;
  uint16_t avail_idx_ = 0;  // free-running, as the ring's idx (2.7.6)
  uint16_t last_used_ = 0;  // next used.idx value to consume
};

}  // namespace deviso::virtio_iommu

#endif  // DEVISO_SRC_VIRTIO_IOMMU_VIRTQUEUE_H_
