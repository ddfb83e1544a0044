// Split virtqueue, driver side. See virtqueue.h; sections refer to virtio 1.2.

#include "virtio_iommu/virtqueue.h"

#include <cstring>

#include "core/barrier.h"

namespace deviso::virtio_iommu {
namespace {

size_t AlignUp(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

}  // namespace

Status SplitQueue::Allocate(DmaMemory& dma, uint16_t size, bool coherent) {
  if (size == 0 || (size & (size - 1)) != 0 || size > 32768 || allocated()) {
    return Status::InvalidArgument();
  }
  const size_t avail = AlignUp(sizeof(vq::Desc) * size, vq::kAvailAlign);
  const size_t used = AlignUp(avail + vq::AvailBytes(size), vq::kUsedAlign);
  const size_t total = used + vq::UsedBytes(size);
  DEVISO_ASSIGN_OR_RETURN(buffer_, dma.Allocate(total, 4096));
  dma_ = &dma;
  coherent_ = coherent;
  size_ = size;
  avail_offset_ = avail;
  used_offset_ = used;
  ResetRings();
  return Status::Ok();
}

void SplitQueue::Free() {
  if (!allocated()) return;
  dma_->Free(buffer_);
  buffer_ = DmaBuffer{};
}

void SplitQueue::ResetRings() {
  std::memset(buffer_.cpu, 0, buffer_.size);
  Clean(buffer_.cpu, buffer_.size);
  avail_idx_ = 0;
  last_used_ = 0;
  corrupt_ = false;
}

void SplitQueue::SetDesc(uint16_t i, Paddr addr, uint32_t len, uint16_t flags, uint16_t next) {
  auto* d = reinterpret_cast<vq::Desc*>(bytes()) + (i & (size_ - 1));
  d->addr = addr;
  d->len = len;
  d->flags = flags;
  d->next = next;
  Clean(d, sizeof(*d));
}

void SplitQueue::AddAvail(uint16_t head) {
  uint16_t* slot =
      Avail16(vq::kAvailRing + 2 * size_t{static_cast<uint16_t>(avail_idx_ & (size_ - 1))});
  __atomic_store_n(slot, head, __ATOMIC_RELAXED);
  Clean(slot, sizeof(*slot));
  ++avail_idx_;
}

void SplitQueue::PublishAvail() {
  // 2.7.13.3.1: the ring entries (and descriptors) must be visible before idx.
  DmaWriteBarrier();
  uint16_t* idx = Avail16(vq::kAvailIdx);
  // Release: also orders the entries before idx for another CPU (and for a host model's thread).
  __atomic_store_n(idx, avail_idx_, __ATOMIC_RELEASE);
  Clean(idx, sizeof(*idx));
  // 2.7.13.4: idx must be visible before the notification that follows.
  DmaWriteBarrier();
}

void SplitQueue::SetAvailFlags(uint16_t flags) {
  uint16_t* f = Avail16(vq::kAvailFlags);
  __atomic_store_n(f, flags, __ATOMIC_RELAXED);
  Clean(f, sizeof(*f));
}

bool SplitQueue::PopUsed(vq::UsedElem* elem) {
  uint8_t* used = bytes() + used_offset_;
  if (!coherent_) dma_->Invalidate(used, vq::UsedBytes(size_));
  // Acquire: the elements and buffers the device wrote before idx are read after it (the
  // barrier below orders them against the device's writes).
  const uint16_t idx =
      __atomic_load_n(reinterpret_cast<uint16_t*>(used + vq::kUsedIdx), __ATOMIC_ACQUIRE);
  if (idx == last_used_) return false;
  // 2.7.8: the device returns only chains it was given. More than that is a device that moved
  // idx backwards or answered twice: no element of this ring can be trusted any more.
  if (static_cast<uint16_t>(idx - last_used_) > in_flight()) {
    corrupt_ = true;
    return false;
  }
  // 2.7.14: read the element only after seeing idx move past it.
  DmaReadBarrier();
  const auto* e =
      reinterpret_cast<const vq::UsedElem*>(used + vq::kUsedRing) + (last_used_ & (size_ - 1));
  elem->id = __atomic_load_n(&e->id, __ATOMIC_RELAXED);
  elem->len = __atomic_load_n(&e->len, __ATOMIC_RELAXED);
  ++last_used_;
  return true;
}

bool SplitQueue::UsedWaiting() const {
  uint8_t* used = bytes() + used_offset_;
  if (!coherent_) dma_->Invalidate(used + vq::kUsedIdx, sizeof(uint16_t));
  return __atomic_load_n(reinterpret_cast<uint16_t*>(used + vq::kUsedIdx), __ATOMIC_ACQUIRE) !=
         last_used_;
}

}  // namespace deviso::virtio_iommu
