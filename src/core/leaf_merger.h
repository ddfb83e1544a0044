// Merges leaves reported one by one in ascending IOVA order into the extents
// IsolationUnit::ForEachLeaf() reports (LeafExtent: contiguous in IOVA and PA, same
// permissions, memory type and leaf size). Backends that walk page tables feed it each leaf.

#ifndef DEVISO_SRC_CORE_LEAF_MERGER_H_
#define DEVISO_SRC_CORE_LEAF_MERGER_H_

#include "deviso/backend.h"

namespace deviso {

class LeafMerger {
 public:
  explicit LeafMerger(LeafVisitor& out) : out_(out) {}

  // One leaf (or a run of leaves) above everything added before. Returns false once the
  // visitor asked to stop (the caller should stop its walk).
  bool Add(const LeafExtent& leaf) {
    if (stopped_) return false;
    if (have_ && Continues(leaf)) {
      pending_.size += leaf.size;
      return true;
    }
    if (have_ && !out_.Visit(pending_)) {
      stopped_ = true;
      have_ = false;
      return false;
    }
    pending_ = leaf;
    have_ = true;
    return true;
  }

  // Reports the last extent, if any. Call once the walk ended.
  void Finish() {
    if (have_ && !stopped_) (void)out_.Visit(pending_);
    have_ = false;
  }

 private:
  bool Continues(const LeafExtent& leaf) const {
    return leaf.iova == pending_.iova + pending_.size && leaf.pa == pending_.pa + pending_.size &&
           leaf.perms == pending_.perms && leaf.type == pending_.type &&
           leaf.leaf_size == pending_.leaf_size;
  }

  LeafVisitor& out_;
  LeafExtent pending_;
  bool have_ = false;
  bool stopped_ = false;
};

}  // namespace deviso

#endif  // DEVISO_SRC_CORE_LEAF_MERGER_H_
