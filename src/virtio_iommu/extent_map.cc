#include "virtio_iommu/extent_map.h"

namespace deviso::virtio_iommu {
namespace {

// Inclusive ranges, so that one ending at 2^64 - 1 needs no special case.
bool Intersect(Iova a, Iova a_last, Iova b, Iova b_last) { return a <= b_last && b <= a_last; }

// `e` continues into the range starting at (iova, pa) with the same flags.
bool Continues(const ExtentMap::Extent& e, Iova iova, Paddr pa, uint32_t flags) {
  return e.last() != ~Iova{0} && e.last() + 1 == iova && e.pa + e.size == pa && e.flags == flags;
}

}  // namespace

Result<ExtentMap::InsertPlan> ExtentMap::PlanInsert(Iova iova, Paddr pa, uint64_t size,
                                                    uint32_t flags) const {
  const Iova last = iova + (size - 1);
  InsertPlan plan;
  plan.pos = count_;
  for (size_t i = 0; i < count_; ++i) {
    const Extent& e = extents_[i];
    if (Intersect(iova, last, e.iova, e.last())) return Status::AlreadyExists();
    if (plan.pos == count_ && e.iova > iova) plan.pos = i;
  }
  plan.join_prev = plan.pos > 0 && Continues(extents_[plan.pos - 1], iova, pa, flags);
  plan.join_next =
      plan.pos < count_ && Continues(Extent{iova, pa, size, flags}, extents_[plan.pos].iova,
                                     extents_[plan.pos].pa, extents_[plan.pos].flags);
  if (!plan.join_prev && !plan.join_next && count_ == kCapacity) return Status::NoMemory();
  return plan;
}

void ExtentMap::CommitInsert(const InsertPlan& plan, Iova iova, Paddr pa, uint64_t size,
                             uint32_t flags) {
  const size_t pos = plan.pos;
  if (plan.join_prev && plan.join_next) {  // the new range fills the gap between two extents
    extents_[pos - 1].size += size + extents_[pos].size;
    for (size_t i = pos; i + 1 < count_; ++i) extents_[i] = extents_[i + 1];
    --count_;
  } else if (plan.join_prev) {
    extents_[pos - 1].size += size;
  } else if (plan.join_next) {
    Extent& next = extents_[pos];
    next.iova = iova;
    next.pa = pa;
    next.size += size;
  } else {
    for (size_t i = count_; i > pos; --i) extents_[i] = extents_[i - 1];
    extents_[pos] = Extent{iova, pa, size, flags};
    ++count_;
  }
}

Result<ExtentMap::RemovePlan> ExtentMap::PlanRemove(Iova iova, uint64_t size) const {
  const Iova last = iova + (size - 1);
  RemovePlan plan;
  plan.first = count_;
  Iova cursor = iova;  // the next byte that must be covered
  bool covered = false;
  for (size_t i = 0; i < count_; ++i) {
    const Extent& e = extents_[i];
    if (!Intersect(iova, last, e.iova, e.last())) continue;
    if (plan.first == count_) plan.first = i;
    ++plan.count;
    if (covered) continue;
    if (e.iova > cursor) break;  // a hole
    if (e.last() >= last) {
      covered = true;
    } else {
      cursor = e.last() + 1;
    }
  }
  if (!covered) return Status::NotFound();
  plan.keep_head = extents_[plan.first].iova < iova;
  plan.keep_tail = extents_[plan.first + plan.count - 1].last() > last;
  const size_t pieces = (plan.keep_head ? 1 : 0) + (plan.keep_tail ? 1 : 0);
  if (count_ - plan.count + pieces > kCapacity) return Status::NoMemory();
  return plan;
}

void ExtentMap::CommitRemove(const RemovePlan& plan, Iova iova, uint64_t size) {
  const Iova last = iova + (size - 1);
  const Extent head = extents_[plan.first];
  const Extent tail = extents_[plan.first + plan.count - 1];
  Extent pieces[2];
  size_t r = 0;
  if (plan.keep_head) {
    Extent left = head;
    left.size = iova - head.iova;
    pieces[r++] = left;
  }
  if (plan.keep_tail) {
    Extent right = tail;
    right.iova = last + 1;
    right.pa = tail.pa + (right.iova - tail.iova);
    right.size = tail.last() - last;
    pieces[r++] = right;
  }
  // Replace extents [first, first + count) by the pieces, keeping the order.
  const size_t after = plan.first + plan.count;
  const size_t moved = count_ - after;
  if (r < plan.count) {
    for (size_t i = 0; i < moved; ++i) extents_[plan.first + r + i] = extents_[after + i];
  } else if (r > plan.count) {
    for (size_t i = moved; i > 0; --i) extents_[plan.first + r + i - 1] = extents_[after + i - 1];
  }
  for (size_t i = 0; i < r; ++i) extents_[plan.first + i] = pieces[i];
  count_ = count_ - plan.count + r;
}

const ExtentMap::Extent* ExtentMap::Find(Iova iova) const {
  for (size_t i = 0; i < count_; ++i) {
    const Extent& e = extents_[i];
    if (iova >= e.iova && iova <= e.last()) return &e;
    if (e.iova > iova) break;  // sorted
  }
  return nullptr;
}

bool ExtentMap::Overlaps(Iova iova, uint64_t size) const {
  const Iova last = iova + (size - 1);
  for (size_t i = 0; i < count_; ++i) {
    if (Intersect(iova, last, extents_[i].iova, extents_[i].last())) return true;
  }
  return false;
}

}  // namespace deviso::virtio_iommu
