// The virtio-iommu driver's record of what a domain maps: a fixed-capacity list of extents,
// sorted by IOVA and never overlapping.
//
// virtio-iommu (virtio 1.2, 5.13.6.5/5.13.6.6) gives the driver no way to read back what a
// domain maps, answers MAP with INVAL for an overlap and UNMAP with OK for nothing mapped. The
// record answers IovaToPhys, turns those answers into -EEXIST and -ENOENT before any request is
// sent, and lets Recover() and a re-attach replay the mappings.
//
// An extent is one Map() call's range, merged with a neighbour it continues in IOVA and PA with
// the same flags (the device holds one mapping per page either way, so a buffer mapped page by
// page takes one extent), and split by a partial Remove.
//
// Every change is planned first and committed after: Plan*() checks everything that can fail
// (overlap, hole, capacity) and changes nothing; Commit*() cannot fail. The driver sends its
// request between the two, so a refused or failed request leaves the record as it was.
//
// Not thread-safe: the driver holds its lock around a plan, the request and the commit.

#ifndef DEVISO_SRC_VIRTIO_IOMMU_EXTENT_MAP_H_
#define DEVISO_SRC_VIRTIO_IOMMU_EXTENT_MAP_H_

#include <cstddef>
#include <cstdint>

#include "deviso/status.h"
#include "deviso/types.h"

namespace deviso::virtio_iommu {

class ExtentMap {
 public:
  static constexpr size_t kCapacity = 64;

  struct Extent {
    Iova iova = 0;
    Paddr pa = 0;
    uint64_t size = 0;   // > 0; iova + size - 1 does not wrap
    uint32_t flags = 0;  // the MAP request's flags (kMapF*), compared for merging only
    Iova last() const { return iova + (size - 1); }
  };

  // Where a new range goes and which neighbours absorb it.
  struct InsertPlan {
    size_t pos = 0;  // index of the first extent above the new range
    bool join_prev = false;
    bool join_next = false;
  };

  // Which extents a removal touches and what is left of the outer two.
  struct RemovePlan {
    size_t first = 0;  // first extent touched
    size_t count = 0;  // extents touched (> 0)
    bool keep_head = false;
    bool keep_tail = false;
  };

  // Plans recording [iova, iova + size) -> pa. Errors: -EEXIST (overlaps an extent), -ENOMEM
  // (needs a new extent and all kCapacity are in use). The caller checked size > 0 and that
  // neither range wraps.
  Result<InsertPlan> PlanInsert(Iova iova, Paddr pa, uint64_t size, uint32_t flags) const;
  // Records the range PlanInsert() planned (no call in between may change the map).
  void CommitInsert(const InsertPlan& plan, Iova iova, Paddr pa, uint64_t size, uint32_t flags);

  // Plans removing [iova, iova + size), which must be covered entirely. Errors: -ENOENT (some
  // byte of it is not recorded), -ENOMEM (splitting an extent needs one more than fits).
  Result<RemovePlan> PlanRemove(Iova iova, uint64_t size) const;
  // Removes the range PlanRemove() planned.
  void CommitRemove(const RemovePlan& plan, Iova iova, uint64_t size);

  // The extent holding `iova`, or nullptr.
  const Extent* Find(Iova iova) const;
  // True if any recorded byte lies in [iova, iova + size).
  bool Overlaps(Iova iova, uint64_t size) const;

  void Clear() { count_ = 0; }
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  const Extent& operator[](size_t i) const { return extents_[i]; }
  const Extent* begin() const { return extents_; }
  const Extent* end() const { return extents_ + count_; }

 private:
  Extent extents_[kCapacity];
  size_t count_ = 0;
};

}  // namespace deviso::virtio_iommu

#endif  // DEVISO_SRC_VIRTIO_IOMMU_EXTENT_MAP_H_
