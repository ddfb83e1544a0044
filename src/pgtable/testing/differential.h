// Differential harness for the translation-table engine: random (or fuzzer-chosen) map, unmap,
// protect and lookup sequences run against PageTable and against a flat page-by-page
// reference model of the address space, checking after every step that both agree, that
// refused operations change nothing, that every reported invalidation covers what changed,
// that break-before-make really breaks, and, at the end, that unmapping everything returns
// the pool to the root table(s) alone. Built without block splits (DEVISO_CONFIG_BLOCK_SPLIT=OFF)
// an edit that cuts a block must be refused with -ENOTSUP and change nothing.

#ifndef DEVISO_SRC_PGTABLE_TESTING_DIFFERENTIAL_H_
#define DEVISO_SRC_PGTABLE_TESTING_DIFFERENTIAL_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "pgtable/pgtable.h"
#include "pgtable/testing/host_memory.h"

namespace deviso::pgtable::testing {

// Where the harness gets its choices: a PRNG in the unit test, the fuzzer's bytes in
// the libFuzzer target.
class ChoiceSource {
 public:
  virtual ~ChoiceSource() = default;
  // A value in [0, bound); bound > 0.
  virtual uint64_t Below(uint64_t bound) = 0;
  // False once a finite source (fuzzer input) is used up.
  virtual bool More() const { return true; }
};

class DifferentialHarness {
 public:
  // The window of input addresses exercised: 2^window_bits pages starting at a base that
  // is not aligned to the window, so operations cross every table boundary.
  DifferentialHarness(const Config& config, unsigned window_bits, size_t pool_granules)
      : memory_(size_t{1} << static_cast<unsigned>(config.granule), pool_granules),
        pt_(config, memory_, flush_) {
    ok_ = pt_.Init().ok();
    page_ = pt_.page_size();
    window_pages_ = uint64_t{1} << window_bits;
    // Half a window below the midpoint of the input space: the window straddles the
    // largest block boundary available.
    base_ = (uint64_t{1} << (config.ias - 1)) - (window_pages_ / 2) * page_;
    pages_.assign(window_pages_, Page{});
    baseline_free_ = memory_.free_granules();
    for (unsigned l = 0; l <= kMaxLevel; ++l) {
      if (pt_.LeafAllowed(l) && pt_.LevelSize(l) <= window_pages_ * page_ / 2) {
        leaf_pages_.push_back(pt_.LevelSize(l) / page_);
      }
    }
    flush_.on_invalidate = [this](const InvalidationRange& r) { OnInvalidate(r); };
  }

  // What the run exercised, so a test can prove it covered what it claims.
  struct Coverage {
    uint64_t maps = 0, unmaps = 0, protects = 0;  // successful
    uint64_t refused = 0;                         // -EEXIST / -ENOENT as the model predicted
    uint64_t no_memory = 0;                       // injected -ENOMEM, checked unchanged
    uint64_t block_leaves = 0;                    // blocks seen by lookups
    uint64_t splits = 0;                          // edits that cut through a block
    uint64_t unsupported = 0;  // such edits refused (-ENOTSUP): splits compiled out
  };
  const Coverage& coverage() const { return coverage_; }

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  uint64_t operations() const { return operations_; }

  // One random operation. Returns false (with error()) on the first disagreement.
  bool Step(ChoiceSource& src) {
    ++operations_;
    uint64_t kind = src.Below(100);
    // Keep the window from filling up, so maps mostly succeed and edits find mappings.
    if (kind < 40 && mapped_pages_ * 4 > window_pages_ * 3) kind += 40;
    if (kind < 40) return DoMap(src);
    if (kind < 70) return DoEdit(src, false, false);
    if (kind < 80) return DoEdit(src, true, false);
    if (kind < 90) return DoEdit(src, src.Below(2) == 0, true);
    return DoLookups(src, 4);
  }

  // Walks every leaf and compares it with the model, page by page.
  bool CheckAll() {
    struct Compare : MappingVisitor {
      DifferentialHarness* h;
      uint64_t pages = 0;
      bool Visit(const Mapping& m) override {
        if (m.iova < h->base_ || m.iova + m.size > h->base_ + h->window_pages_ * h->page_) {
          return h->Fail("leaf outside the window", m.iova);
        }
        for (uint64_t off = 0; off < m.size; off += h->page_) {
          const Page& p = h->pages_[(m.iova + off - h->base_) / h->page_];
          if (!p.mapped || p.pa != m.pa + off || p.perms != m.perms || p.type != m.type) {
            return h->Fail("leaf disagrees with the model", m.iova + off);
          }
          ++pages;
        }
        return true;
      }
    } compare;
    compare.h = this;
    pt_.ForEachMapping(compare);
    if (!error_.empty()) return false;
    if (compare.pages != mapped_pages_) return Fail("model has pages the tables lack", 0);
    if (!CheckCounts()) return false;
    if (!pt_.config().coherent_walker) {
      // A non-coherent walker reads what was cleaned to PoC: it must equal the tables.
      for (const auto& [pa, entries] : SnapshotTables(pt_, memory_)) {
        for (size_t i = 0; i < entries.size(); ++i) {
          if (memory_.PocDescriptor(pa + 8 * i) != entries[i]) {
            return Fail("descriptor not cleaned to PoC", pa + 8 * i);
          }
        }
      }
    }
    return true;
  }

  // Unmaps everything the model holds and checks the pool is back to the root alone.
  bool DrainAndCheckEmpty() {
    for (uint64_t i = 0; i < window_pages_;) {
      if (!pages_[i].mapped) {
        ++i;
        continue;
      }
      uint64_t j = i;
      while (j < window_pages_ && pages_[j].mapped) ++j;
      if (!pt_.Unmap(base_ + i * page_, (j - i) * page_).ok()) return Fail("drain unmap", i);
      for (uint64_t k = i; k < j; ++k) pages_[k].mapped = false;
      mapped_pages_ -= j - i;
      i = j;
    }
    if (!CheckAll()) return false;
    if (memory_.free_granules() != baseline_free_) return Fail("tables left after drain", 0);
    return true;
  }

  // The leak check that ends every run: releases the table and checks that every granule is
  // back in the pool (none lost by a failed prepare, a split, a retired subtree or a retry).
  bool ReleaseAndCheckNoLeak() {
    pt_.Release();
    if (memory_.free_granules() != memory_.capacity()) return Fail("tables leaked", 0);
    return true;
  }

 private:
  struct Page {
    Paddr pa = 0;
    Perms perms = 0;
    MemType type = MemType::kNormalWriteBack;
    bool mapped = false;
  };

  // The engine's per-table counts (kept by the pool beside the tables) against the tables
  // themselves: for every table below the root, `valid` is its number of valid entries and
  // `full` its number of wholly mapped entries (leaves, and tables all of whose entries are
  // wholly mapped), `tables` its number of table descriptors; no table below the root is empty
  // (empty tables leave the tree).
  bool CheckCounts() {
    const TableLayout layout = memory_.layout();
    const unsigned shift = static_cast<unsigned>(pt_.config().granule);
    const size_t entries = size_t{1} << (shift - 3);
    const uint64_t oa = ds::AddressMask(shift);
    bool ok = true;
    // Returns whether the table at `t` (level `level`) is wholly mapped.
    std::function<bool(Paddr, unsigned, size_t)> walk = [&](Paddr t, unsigned level,
                                                            size_t n) -> bool {
      const uint64_t* p = memory_.PhysToVirt(t);
      size_t valid = 0, full = 0, tables = 0;
      for (size_t i = 0; i < n; ++i) {
        if (!ds::IsValid(p[i])) continue;
        ++valid;
        if (ds::IsTable(p[i], level)) {
          ++tables;
          if (walk(p[i] & oa, level + 1, entries)) ++full;
        } else if (ds::IsLeaf(p[i], level)) {
          ++full;
        }
      }
      if (t != pt_.root()) {
        const TableCounts& c = layout.counts[(t - layout.pa) >> shift];
        if (c.valid != valid || c.full != full || c.tables != tables) {
          ok = Fail("table counts disagree with the table", t);
        }
        if (valid == 0) ok = Fail("empty table left in the tree", t);
      }
      return full == n;
    };
    walk(pt_.root(), pt_.start_level(), pt_.root_tables() * entries);
    return ok;
  }

  bool Fail(const char* what, uint64_t where) {
    if (error_.empty()) {
      char buf[160];
      std::snprintf(buf, sizeof(buf), "op %llu: %s at 0x%llx",
                    static_cast<unsigned long long>(operations_), what,
                    static_cast<unsigned long long>(where));
      error_ = buf;
    }
    return false;
  }

  // A range of pages: mostly small, sometimes block-sized and block-aligned.
  void PickRange(ChoiceSource& src, uint64_t* first, uint64_t* count, uint64_t small_percent) {
    const uint64_t shape = src.Below(100);
    if (shape < small_percent || leaf_pages_.size() < 2) {
      *count = 1 + src.Below(8);
      *first = src.Below(window_pages_ - *count + 1);
      return;
    }
    // A block size and a multiple of it. The largest block is the rarest (it is costly).
    const size_t blocks = leaf_pages_.size() - 1;  // leaf_pages_ minus the page
    const size_t pick = shape < 98 && blocks > 1 ? 1 + src.Below(blocks - 1) : 0;
    const uint64_t unit = leaf_pages_[pick];
    const uint64_t units = window_pages_ / unit;
    const uint64_t n = 1 + src.Below(units < 3 ? units : 3);
    *count = n * unit;
    *first = (src.Below(units - n + 1)) * unit + AlignmentFix(unit);
    if (src.Below(4) == 0) {
      // Nudge by pages: edges inside blocks.
      const uint64_t nudge = 1 + src.Below(7);
      if (*first >= nudge) *first -= nudge;
      if (*first + *count + 2 * nudge <= window_pages_) *count += 2 * nudge;
    }
    if (*first + *count > window_pages_) *count = window_pages_ - *first;
  }

  // Pages from the window base to the next multiple of `unit` pages in the input space.
  uint64_t AlignmentFix(uint64_t unit) const {
    const uint64_t base_page = base_ / page_;
    return (unit - base_page % unit) % unit;
  }

  bool DoMap(ChoiceSource& src) {
    uint64_t first, count;
    PickRange(src, &first, &count, 85);
    if (count == 0) return true;
    if (count < 16 && src.Below(5) != 0) {
      // Mostly into free space: skip to the next free page and stay inside its run.
      for (uint64_t k = 0; k < 64 && first < window_pages_ && pages_[first].mapped; ++k) ++first;
      if (first >= window_pages_) return true;
      uint64_t free_run = 0;
      while (free_run < count && first + free_run < window_pages_ &&
             !pages_[first + free_run].mapped) {
        ++free_run;
      }
      count = free_run;
      if (count == 0) return true;
    }
    if (count >= 16 && src.Below(2) == 0) {
      // Make room for a large map: unmap whatever it would overlap (splitting leaves that
      // stick out of the range).
      for (uint64_t i = first; i < first + count;) {
        if (!pages_[i].mapped) {
          ++i;
          continue;
        }
        uint64_t j = i;
        while (j < first + count && pages_[j].mapped) ++j;
        const Status u = pt_.Unmap(base_ + i * page_, (j - i) * page_);
        if (!config::kBlockSplit && u == Status::NotSupported()) return true;  // cuts a block
        if (!u.ok()) return Fail(u.str(), base_ + i * page_);
        for (uint64_t k = i; k < j; ++k) pages_[k].mapped = false;
        mapped_pages_ -= j - i;
        ++coverage_.unmaps;
        i = j;
      }
    }
    const Iova iova = base_ + first * page_;
    // Output address: congruent with the input modulo a large block (blocks possible), or
    // shifted by pages (pages only).
    const uint64_t big = leaf_pages_.empty() ? page_ : leaf_pages_.front() * page_;
    Paddr pa = iova + big * (1 + src.Below(8));
    if (src.Below(5) == 0) pa += page_ * (1 + src.Below(3));
    pa &= (1ULL << pt_.config().oas) - 1;
    pa &= ~(page_ - 1);
    if (pa + count * page_ > (1ULL << pt_.config().oas)) pa = 0;
    const Perms perms = PickPerms(src);
    const auto type = static_cast<MemType>(src.Below(kMemTypeCount));

    bool any_mapped = false;
    for (uint64_t i = first; i < first + count && !any_mapped; ++i) any_mapped = pages_[i].mapped;
    const size_t free_before = memory_.free_granules();
    const bool inject = src.Below(10) == 0;
    if (inject) memory_.FailAllocation(1 + src.Below(2));
    const Status s = pt_.Map(iova, pa, count * page_, perms, type);
    memory_.FailAllocation(0);
    if (any_mapped) {
      ++coverage_.refused;
      if (s != Status::AlreadyExists()) return Fail("overlapping map not refused", iova);
      if (memory_.free_granules() != free_before) return Fail("refused map leaked", iova);
      return true;
    }
    if (s == Status::NoMemory()) {
      ++coverage_.no_memory;
      if (memory_.free_granules() != free_before) return Fail("failed map leaked", iova);
      return SpotCheck(first, count);
    }
    if (!s.ok()) return Fail(s.str(), iova);
    ++coverage_.maps;
    for (uint64_t i = 0; i < count; ++i) {
      pages_[first + i] = Page{pa + i * page_, perms, type, true};
    }
    mapped_pages_ += count;
    return SpotCheck(first, count);
  }

  Perms PickPerms(ChoiceSource& src) {
    static constexpr Perms kS1[] = {kPermRead, kPermReadWrite, kPermRead | kPermExec, kPermAll};
    static constexpr Perms kS2[] = {kPermRead, kPermWrite, kPermReadWrite, kPermWrite | kPermExec,
                                    kPermAll};
    if (pt_.config().stage == Stage::kStage1) return kS1[src.Below(4)];
    return kS2[src.Below(5)];
  }

  // Unmap and protect share their rules: the range must be mapped entirely. `cut` picks a
  // range strictly inside one leaf when it can, so that blocks are split.
  bool DoEdit(ChoiceSource& src, bool protect, bool cut) {
    uint64_t first, count;
    PickRange(src, &first, &count, 55);
    if (count == 0) return true;
    if (src.Below(4) != 0) {
      // Mostly ranges that are mapped: from the next mapped page, over its run.
      uint64_t at = first;
      for (uint64_t k = 0; k < 256 && at < window_pages_ && !pages_[at].mapped; ++k) ++at;
      if (at < window_pages_ && pages_[at].mapped) {
        uint64_t end = at;
        while (end < at + count && end < window_pages_ && pages_[end].mapped) ++end;
        first = at;
        count = end - at;
      }
    }
    if (cut) {
      Result<Mapping> leaf = pt_.Lookup(base_ + first * page_);
      if (leaf.ok() && leaf->level < kMaxLevel) {
        const uint64_t leaf_first = (leaf->iova - base_) / page_;
        const uint64_t leaf_pages = leaf->size / page_;
        const uint64_t a = src.Below(leaf_pages);
        const uint64_t n = 1 + src.Below(leaf_pages - a < 16 ? leaf_pages - a : 16);
        first = leaf_first + a;
        count = n;
      }
    }
    const Iova iova = base_ + first * page_;
    bool all_mapped = true;
    for (uint64_t i = first; i < first + count && all_mapped; ++i) all_mapped = pages_[i].mapped;
    const Perms perms = PickPerms(src);
    const size_t free_before = memory_.free_granules();
    const bool inject = src.Below(cut ? 3 : 10) == 0;
    if (inject) memory_.FailAllocation(1 + src.Below(2));
    bool splits = false;
    if (all_mapped) {
      Result<Mapping> head = pt_.Lookup(iova);
      Result<Mapping> tail = pt_.Lookup(iova + count * page_ - 1);
      splits = head.ok() && tail.ok() &&
               (head->iova < iova || tail->iova + tail->size > iova + count * page_);
    }
    breaks_ = 0;
    Gather gather;
    in_edit_ = true;
    const Status s = protect ? pt_.Protect(iova, count * page_, perms, gather)
                             : pt_.Unmap(iova, count * page_, gather);
    in_edit_ = false;
    memory_.FailAllocation(0);
    if (!error_.empty()) return false;
    if (!all_mapped) {
      ++coverage_.refused;
      if (s != Status::NotFound()) return Fail("edit of an unmapped range not refused", iova);
      if (!gather.empty() || memory_.free_granules() != free_before) {
        return Fail("refused edit changed something", iova);
      }
      return SpotCheck(first, count);
    }
    if (!config::kBlockSplit && splits) {
      ++coverage_.unsupported;
      if (s != Status::NotSupported()) return Fail("edit cutting a block not refused", iova);
      if (!gather.empty() || memory_.free_granules() != free_before) {
        return Fail("refused edit changed something", iova);
      }
      return SpotCheck(first, count);
    }
    if (s == Status::NoMemory()) {
      ++coverage_.no_memory;
      if (!gather.empty()) return Fail("ENOMEM after a change", iova);
      if (memory_.free_granules() != free_before) return Fail("failed edit leaked", iova);
      (void)pt_.Sync(gather);
      return SpotCheck(first, count);
    }
    if (!s.ok()) return Fail(s.str(), iova);
    if (splits) {
      ++coverage_.splits;
      if (!pt_.config().bbml2 && breaks_ == 0) return Fail("split without a break", iova);
    }
    // Every changed entry must be covered by the gathered invalidation.
    const InvalidationRange r = gather.range();
    if (r.iova > iova || r.iova + r.size < iova + count * page_ || r.leaf_levels == 0) {
      return Fail("invalidation does not cover the change", iova);
    }
    if (gather.freed_tables() != 0 && !r.tables) return Fail("freed tables, no walk inval", iova);
    if (!pt_.Sync(gather).ok()) return Fail("sync", iova);
    for (uint64_t i = first; i < first + count; ++i) {
      if (protect) {
        pages_[i].perms = perms;
      } else {
        pages_[i].mapped = false;
      }
    }
    if (!protect) mapped_pages_ -= count;
    ++(protect ? coverage_.protects : coverage_.unmaps);
    return SpotCheck(first, count);
  }

  bool DoLookups(ChoiceSource& src, int n) {
    for (int k = 0; k < n; ++k) {
      if (!CheckPage(src.Below(window_pages_))) return false;
    }
    return true;
  }

  // The edges of the range just changed and their neighbours.
  bool SpotCheck(uint64_t first, uint64_t count) {
    for (uint64_t i : {first, first + count / 2, first + count - 1}) {
      if (!CheckPage(i)) return false;
    }
    if (first > 0 && !CheckPage(first - 1)) return false;
    if (first + count < window_pages_ && !CheckPage(first + count)) return false;
    return true;
  }

  bool CheckPage(uint64_t i) {
    const Page& p = pages_[i];
    const Iova iova = base_ + i * page_ + (i % page_ & ~7ULL);
    Result<Mapping> m = pt_.Lookup(iova);
    if (!p.mapped) {
      if (m.status() != Status::NotFound()) return Fail("unmapped page translates", iova);
      return true;
    }
    if (!m.ok()) return Fail("mapped page does not translate", iova);
    if (m->level < kMaxLevel) ++coverage_.block_leaves;
    if (m->pa + (iova - m->iova) != p.pa + (iova & (page_ - 1))) return Fail("wrong pa", iova);
    if (m->perms != p.perms) return Fail("wrong permissions", iova);
    if (m->type != p.type) return Fail("wrong memory type", iova);
    return true;
  }

  void OnInvalidate(const InvalidationRange& r) {
    if (!in_edit_) return;
    // Inside Unmap/Protect only a break-before-make invalidation happens: the broken block
    // must be invalid while it runs.
    if (pt_.config().bbml2) {
      Fail("BBML2 table split used break-before-make", r.iova);
      return;
    }
    ++breaks_;
    if (pt_.Lookup(r.iova).status() != Status::NotFound() ||
        pt_.Lookup(r.iova + r.size - 1).status() != Status::NotFound()) {
      Fail("block not broken during its invalidation", r.iova);
    }
  }

  HostTableMemory memory_;
  RecordingFlush flush_;
  PageTable pt_;
  bool ok_ = false;
  bool in_edit_ = false;
  int breaks_ = 0;  // break-before-make invalidations in the current edit
  uint64_t page_ = 0;
  uint64_t window_pages_ = 0;
  Iova base_ = 0;
  std::vector<Page> pages_;
  std::vector<uint64_t> leaf_pages_;  // leaf sizes in pages, largest first
  uint64_t mapped_pages_ = 0;
  size_t baseline_free_ = 0;
  uint64_t operations_ = 0;
  Coverage coverage_;
  std::string error_;
};

}  // namespace deviso::pgtable::testing

#endif  // DEVISO_SRC_PGTABLE_TESTING_DIFFERENTIAL_H_
