// IsolationUnit's defaults (include/deviso/backend.h).

#include <cstdio>

#include "deviso/backend.h"

namespace deviso {

size_t IsolationUnit::Describe(char* out, size_t out_size) const {
  const UnitCaps& c = caps();
  const int n =
      std::snprintf(out, out_size, "%s (%s): OAS %u bits, page sizes 0x%llx", c.name, c.backend,
                    static_cast<unsigned>(c.oas), static_cast<unsigned long long>(c.page_sizes));
  return n < 0 ? 0 : static_cast<size_t>(n);
}

namespace {

// Keeps the extent NearLeaf() wants while ForEachLeaf() walks in ascending order: the one
// holding the address, else the last one below it, else the first one above it.
class NearestFinder final : public LeafVisitor {
 public:
  explicit NearestFinder(Iova iova) : iova_(iova) {}

  bool Visit(const LeafExtent& e) override {
    const Iova last = e.iova + (e.size - 1);
    if (iova_ >= e.iova && iova_ <= last) {
      found_ = {e, NearestLeaf::Where::kInside, iova_ - e.iova};
      have_ = true;
      return false;
    }
    if (last < iova_) {
      found_ = {e, NearestLeaf::Where::kAfter, iova_ - last - 1};
      have_ = true;
      return true;  // a closer one may follow
    }
    // The first extent above the address: closer than none, and the walk can stop. An extent
    // below wins (a fault just past a buffer is the usual bug), unless this one is nearer.
    if (!have_ || e.iova - iova_ < found_.distance) {
      found_ = {e, NearestLeaf::Where::kBefore, e.iova - iova_};
      have_ = true;
    }
    return false;
  }

  Result<NearestLeaf> result() const {
    if (!have_) return Status::NotFound();
    return found_;
  }

 private:
  Iova iova_;
  bool have_ = false;
  NearestLeaf found_;
};

}  // namespace

Result<NearestLeaf> IsolationUnit::NearLeaf(Domain* domain, Iova iova) {
  NearestFinder finder(iova);
  DEVISO_TRY(ForEachLeaf(domain, finder));
  return finder.result();
}

}  // namespace deviso
