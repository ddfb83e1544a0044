// The translation-table engine (one walk, PageTableT<Format>) and the VMSAv8-64 format.
// See pgtable.h for the contract and docs/pgtable.md for the cost model.

#include "pgtable/pgtable.h"

#include <cstring>

#include "deviso/assert.h"

// Checks of the engine's own arithmetic on its hot path (a table address it computed lies in
// the table memory): compiled only into debug builds. Everything an input can make false is
// an error return, never an assertion.
#if defined(NDEBUG)
#define DEVISO_PGTABLE_DEBUG_ASSERT(cond) ((void)0)
#else
#define DEVISO_PGTABLE_DEBUG_ASSERT(cond) DEVISO_ASSERT(cond)
#endif

namespace deviso::pgtable {
namespace {

// Descriptors of a table a walker can reach are read and written with single-copy-atomic
// 64-bit accesses (Arm ARM B2.2.1): a walker running concurrently sees either the old or the
// new descriptor, never a mix. Tables not yet linked are written with plain stores.
inline uint64_t LoadDescriptor(const uint64_t* slot) {
  return __atomic_load_n(slot, __ATOMIC_RELAXED);
}
inline void StoreDescriptor(uint64_t* slot, uint64_t d) {
  __atomic_store_n(slot, d, __ATOMIC_RELAXED);
}

// Orders the writes of a new table before the write of the descriptor that links it, as seen
// by a table walker in the outer-shareable domain (an SMMU). Non-coherent walkers are served
// by TableMemory::CleanToPoc, which completes with its own DSB.
inline void TableWriteBarrier() {
#if defined(__aarch64__)
  asm volatile("dmb oshst" ::: "memory");
#elif defined(__SANITIZE_THREAD__)
  __atomic_signal_fence(__ATOMIC_RELEASE);  // TSan does not support fences
#else
  __atomic_thread_fence(__ATOMIC_RELEASE);
#endif
}

// Leaf levels a removed table at `level` may have held: level+1 .. kMaxLevel.
constexpr uint8_t LevelsBelow(unsigned level) {
  return static_cast<uint8_t>((0xfU << (level + 1)) & 0xfU);
}

// The largest leaf each granule has without FEAT_LPA/LPA2 (Arm ARM D8.2, "Translation granule
// and block sizes"): 4K: 1 GiB at level 1; 16K: 32 MiB at level 2; 64K: 512 MiB at level 2.
constexpr unsigned ArchMinLeafLevel(Granule g) { return g == Granule::k4KiB ? 1 : 2; }

// The link a retired subtree's top table keeps in its first descriptor: the next subtree's
// address (granule-aligned) with this table's level in bits [2:1]; bit[0] stays clear, so the
// descriptor is invalid to a walker that still holds the table.
constexpr uint64_t kLinkLevelShift = 1;
constexpr uint64_t kLinkLevelMask = 0x3ULL << kLinkLevelShift;
constexpr uint64_t kLinkLowBits = 0xfffULL;  // below every granule

void AddCount(uint16_t& field, int delta) {
  field = static_cast<uint16_t>(static_cast<int>(field) + delta);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Gather

InvalidationRange Gather::range() const {
  InvalidationRange r;
  if (start_ < end_) {
    r.iova = start_;
    r.size = end_ - start_;
  }
  r.leaf_levels = leaf_levels_;
  r.tables = tables_;
  return r;
}

void Gather::AddLeaves(Iova iova, uint64_t size, uint8_t levels) {
  if (iova < start_) start_ = iova;
  if (iova + size > end_) end_ = iova + size;
  leaf_levels_ |= levels;
}

void Gather::AddTables(Iova iova, uint64_t size) {
  if (iova < start_) start_ = iova;
  if (iova + size > end_) end_ = iova + size;
  tables_ = true;
}

// ---------------------------------------------------------------------------------------------
// Config

Config Config::SmmuStage1(Granule g, uint8_t ias, uint8_t oas, bool coherent) {
  Config c;
  c.stage = Stage::kStage1;
  c.granule = g;
  c.ias = ias;
  c.oas = oas;
  c.unprivileged = true;  // AP[1]=1: PCIe transactions are unprivileged
  c.not_global = true;    // nG=1: entries belong to the context's ASID
  c.coherent_walker = coherent;
  return c;
}

Config Config::SmmuStage2(Granule g, uint8_t ias, uint8_t oas, bool coherent) {
  Config c = SmmuStage1(g, ias, oas, coherent);
  c.stage = Stage::kStage2;
  return c;
}

Config Config::CpuKernel(Granule g, uint8_t ias, uint8_t oas) {
  Config c;
  c.stage = Stage::kStage1;
  c.granule = g;
  c.ias = ias;
  c.oas = oas;
  c.unprivileged = false;  // AP[1]=0: EL1 only
  c.not_global = false;    // nG=0: global kernel mappings
  c.coherent_walker = true;
  return c;
}

// ---------------------------------------------------------------------------------------------
// The VMSAv8-64 format

Status Vmsav8::Init(const Config& c) {
  if (c.granule != Granule::k4KiB && c.granule != Granule::k16KiB && c.granule != Granule::k64KiB) {
    return Status::InvalidArgument();
  }
  if (c.ias < 32 || c.ias > 48) return Status::InvalidArgument();
  switch (c.oas) {
    case 32:
    case 36:
    case 40:
    case 42:
    case 44:
    case 48:
      break;
    default:
      return Status::InvalidArgument();
  }
  // A stage 2 input address is an intermediate physical address; it cannot be wider than
  // the output size the unit reports (SMMU IDR5.OAS bounds S2T0SZ, IHI0070 5.2 STE.S2T0SZ).
  if (c.stage == Stage::kStage2 && c.ias > c.oas) return Status::InvalidArgument();
  if (c.min_leaf_level > kMaxLevel) return Status::InvalidArgument();
  if (c.stage == Stage::kStage1) {
    for (uint8_t idx : c.mair_index) {
      if (idx > 7) return Status::InvalidArgument();
    }
  }
  // Valid, but compiled out (deviso/config.h).
  if (!config::kStage2 && c.stage == Stage::kStage2) return Status::NotSupported();
  if (!config::kGranule16K64K && c.granule != Granule::k4KiB) return Status::NotSupported();

  config_ = c;
  granule_shift_ = static_cast<unsigned>(c.granule);
  const unsigned stride = this->stride();
  // Levels needed to resolve ias - granule_shift bits, stride bits per level. Stage 2 may
  // resolve up to 4 more bits at its start level by concatenating up to 16 tables
  // (Arm ARM D8.2.7 "Concatenating translation tables"); using that whenever possible saves a
  // level of walk, so it is computed for ias - 4.
  const unsigned concat_bits = stage2() ? 4 : 0;
  const unsigned resolve = c.ias - concat_bits - granule_shift();
  const unsigned levels = (resolve + stride - 1) / stride;
  start_level_ = kLevelCount - levels;
  const unsigned root_bits = c.ias - LevelShift(start_level_);
  root_order_ = root_bits > stride ? root_bits - stride : 0;
  root_entries_ = size_t{1} << root_bits;
  min_leaf_level_ = c.min_leaf_level > ArchMinLeafLevel(c.granule) ? c.min_leaf_level
                                                                   : ArchMinLeafLevel(c.granule);
  oa_mask_ = ds::AddressMask(granule_shift());
  return Status::Ok();
}

Status Vmsav8::CheckAccess(Perms perms, MemType type) const {
  if ((perms & kPermReadWrite) == 0 || (perms & ~kPermAll) != 0) {
    return Status::InvalidArgument();
  }
  // Stage 1 cannot express write-only (AP[2:1], D8.4.1); granting read silently would expose
  // the buffer, so refuse.
  if (!stage2() && (perms & kPermRead) == 0) return Status::NotSupported();
  if (static_cast<unsigned>(type) >= kMemTypeCount) return Status::InvalidArgument();
  return Status::Ok();
}

// Block and page descriptors (D8.3.2), permissions (D8.4), attributes (D8.5). Page form.
uint64_t Vmsav8::LeafAttrs(Perms perms, MemType type) const {
  uint64_t d = ds::kTypeTableOrPage | ds::kAf;
  d |= type == MemType::kNormalWriteBack ? ds::kShInner : ds::kShOuter;
  const bool exec = (perms & kPermExec) != 0;
  if (!stage2()) {
    d |= uint64_t{config_.mair_index[static_cast<unsigned>(type)]} << ds::s1::kAttrIndxShift;
    if ((perms & kPermWrite) == 0) d |= ds::s1::kApRdOnly;
    if (config_.not_global) d |= ds::s1::kNg;
    if (config_.unprivileged) {
      // EL0 access. Privileged execution of device-writable memory is never wanted.
      d |= ds::s1::kApEl0 | ds::s1::kPxn;
      if (!exec) d |= ds::s1::kUxn;
    } else {
      d |= ds::s1::kUxn;
      if (!exec) d |= ds::s1::kPxn;
    }
  } else {
    static constexpr uint64_t kMemAttr[kMemTypeCount] = {
        ds::s2::kMemAttrNormalWriteBack, ds::s2::kMemAttrNormalNonCacheable,
        ds::s2::kMemAttrDeviceNGnRE, ds::s2::kMemAttrDeviceNGnRnE};
    d |= kMemAttr[static_cast<unsigned>(type)] << ds::s2::kMemAttrShift;
    if ((perms & kPermRead) != 0) d |= ds::s2::kS2apRead;
    if ((perms & kPermWrite) != 0) d |= ds::s2::kS2apWrite;
    if (!exec) d |= ds::s2::kXn;
  }
  return d;
}

Perms Vmsav8::DecodePerms(Pte pte) const {
  const uint64_t d = pte.raw();
  Perms p = 0;
  if (!stage2()) {
    p |= kPermRead;
    if ((d & ds::s1::kApRdOnly) == 0) p |= kPermWrite;
    const uint64_t xn = config_.unprivileged ? ds::s1::kUxn : ds::s1::kPxn;
    if ((d & xn) == 0) p |= kPermExec;
  } else {
    if ((d & ds::s2::kS2apRead) != 0) p |= kPermRead;
    if ((d & ds::s2::kS2apWrite) != 0) p |= kPermWrite;
    if ((d & ds::s2::kXn) == 0) p |= kPermExec;
  }
  return p;
}

MemType Vmsav8::DecodeType(Pte pte) const {
  const uint64_t d = pte.raw();
  if (!stage2()) {
    const uint64_t idx = (d & ds::s1::kAttrIndxMask) >> ds::s1::kAttrIndxShift;
    for (unsigned t = 0; t < kMemTypeCount; ++t) {
      if (config_.mair_index[t] == idx) return static_cast<MemType>(t);
    }
    return MemType::kDeviceNGnRnE;
  }
  switch ((d & ds::s2::kMemAttrMask) >> ds::s2::kMemAttrShift) {
    case ds::s2::kMemAttrNormalWriteBack:
      return MemType::kNormalWriteBack;
    case ds::s2::kMemAttrNormalNonCacheable:
      return MemType::kNormalNonCacheable;
    case ds::s2::kMemAttrDeviceNGnRE:
      return MemType::kDeviceNGnRE;
    default:
      return MemType::kDeviceNGnRnE;
  }
}

Pte Vmsav8::WithPerms(Pte pte, Perms perms) const {
  // Permission changes need no break-before-make (Arm ARM D8.16.1): rewrite in place.
  constexpr uint64_t kS1Perm = ds::s1::kApRdOnly | ds::s1::kPxn | ds::s1::kUxn;
  constexpr uint64_t kS2Perm = ds::s2::kS2apRead | ds::s2::kS2apWrite | ds::s2::kXn;
  const uint64_t fresh = LeafAttrs(perms, DecodeType(pte));
  const uint64_t mask = stage2() ? kS2Perm : kS1Perm;
  return Pte((pte.raw() & ~mask) | (fresh & mask));
}

// ---------------------------------------------------------------------------------------------
// The engine: construction

// Tables reserved by a prepare step, chained through their first descriptor. Unlinked, so
// no walker can see the chain.
template <class F>
struct PageTableT<F>::Reserve {
  Paddr head = 0;
  size_t count = 0;  // tables held
};

template <class F>
struct PageTableT<F>::MapArgs {
  Iova iova;
  Paddr pa;
  uint64_t attrs[F::kLevelCount];  // leaf descriptor without its output address, per level
};

// Where a walk stopped: the lowest table holding the whole range, and the tables above it.
template <class F>
struct PageTableT<F>::Path {
  struct Step {
    uint64_t* table;
    Paddr pa;
    size_t index;  // of the entry leading down
  };
  Step step[F::kLevelCount];  // step[l]: the table at level l, for l < level
  unsigned level;
  uint64_t* table;
  Paddr pa;
};

template <class F>
PageTableT<F>::PageTableT(const Config& config, TableMemory& memory, TlbFlush& flush)
    : config_(config), memory_(memory), flush_(flush) {}

template <class F>
PageTableT<F>::~PageTableT() {
  Release();
}

template <class F>
uint64_t* PageTableT<F>::Table(Paddr pa) const {
  DEVISO_PGTABLE_DEBUG_ASSERT(pa - window_pa_ < window_bytes_);
  return reinterpret_cast<uint64_t*>(static_cast<uintptr_t>(pa) + window_delta_);
}

template <class F>
TableCounts& PageTableT<F>::Counts(unsigned level, Paddr table) const {
  if (level == fmt_.start_level()) return root_counts_;
  return counts_[(table - window_pa_) >> fmt_.granule_shift()];
}

template <class F>
Status PageTableT<F>::Init() {
  if (initialized_) return Status::InvalidArgument();
  DEVISO_TRY(fmt_.Init(config_));
  const TableLayout layout = memory_.layout();
  if (layout.counts == nullptr || layout.virt == nullptr ||
      layout.granule_shift != fmt_.granule_shift()) {
    return Status::InvalidArgument();
  }
  window_pa_ = layout.pa;
  window_bytes_ = layout.bytes;
  window_delta_ = reinterpret_cast<uintptr_t>(layout.virt) - static_cast<uintptr_t>(layout.pa);
  counts_ = layout.counts;

  DEVISO_ASSIGN_OR_RETURN(Paddr root, memory_.Allocate(fmt_.root_order()));
  uint64_t* t = Table(root);
  const size_t bytes = (size_t{1} << fmt_.root_order()) << fmt_.granule_shift();
  std::memset(t, 0, bytes);
  if (!config_.coherent_walker) memory_.CleanToPoc(t, bytes);
  TableWriteBarrier();
  root_counts_ = {0, 0, 0};
  root_ = root;
  initialized_ = true;
  return Status::Ok();
}

template <class F>
void PageTableT<F>::Release() {
  if (!initialized_) return;
  FreeSubtreeNow(root_, fmt_.start_level());
  if constexpr (config::kOrphanRetry) {
    // Nothing can walk the tables any more: return pending frees without an invalidation.
    Paddr p = orphans_.freed_head_;
    for (size_t i = 0; i < orphans_.freed_subtrees_; ++i) {
      const uint64_t link = LoadDescriptor(Table(p));
      FreeRetired(p, static_cast<unsigned>((link & kLinkLevelMask) >> kLinkLevelShift));
      p = link & ~kLinkLowBits;
    }
    orphans_ = Gather();
  }
  initialized_ = false;
}

template <class F>
void PageTableT<F>::FreeSubtreeNow(Paddr table, unsigned level) {
  const uint64_t* t = Table(table);
  if (level < kMax && (level == fmt_.start_level() || Counts(level, table).tables != 0)) {
    const size_t n = fmt_.Entries(level);
    for (size_t i = 0; i < n; ++i) {
      const Pte d{LoadDescriptor(&t[i])};
      if (F::IsTable(d, level)) FreeSubtreeNow(fmt_.OutputAddress(d), level + 1);
    }
  }
  memory_.Free(table, level == fmt_.start_level() ? fmt_.root_order() : 0);
}

// ---------------------------------------------------------------------------------------------
// Argument checks and the walk down

template <class F>
Status PageTableT<F>::CheckRange(Iova iova, uint64_t size) const {
  if (!initialized_) return Status::InvalidArgument();
  const uint64_t page_mask = page_size() - 1;
  if (size == 0 || (iova & page_mask) != 0 || (size & page_mask) != 0) {
    return Status::InvalidArgument();
  }
  const uint64_t limit = 1ULL << fmt_.input_bits();
  if (iova >= limit || size > limit - iova) return Status::InvalidArgument();
  return Status::Ok();
}

// Walks from the root while [start, end) lies strictly inside one table entry, recording the
// tables passed, so that the check and the write passes both start at the lowest table that
// holds the whole range, and count changes travel back up the recorded path.
template <class F>
void PageTableT<F>::Descend(Iova start, Iova end, Path& path) const {
  unsigned level = fmt_.start_level();
  Paddr pa = root_;
  uint64_t* t = Table(pa);
  while (level < kMax) {
    const size_t i = fmt_.Index(start, level);
    if (i != fmt_.Index(end - 1, level)) break;
    const Pte d{LoadDescriptor(&t[i])};
    if (!F::IsTable(d, level)) break;
    const uint64_t size = LevelSize(level);
    if ((start & (size - 1)) == 0 && end - start == size) break;  // the whole entry
    path.step[level] = {t, pa, i};
    pa = fmt_.OutputAddress(d);
    t = Table(pa);
    ++level;
  }
  path.level = level;
  path.table = t;
  path.pa = pa;
}

// ---------------------------------------------------------------------------------------------
// Table reservation

template <class F>
Status PageTableT<F>::ReserveTables(size_t count, Reserve& reserve) {
  for (size_t i = 0; i < count; ++i) {
    Result<Paddr> t = memory_.Allocate(0);
    if (!t.ok()) {
      ReleaseReserve(reserve);
      return t.status();
    }
    *Table(*t) = reserve.head;  // unlinked: a plain store
    reserve.head = *t;
    ++reserve.count;
  }
  return Status::Ok();
}

template <class F>
void PageTableT<F>::ReleaseReserve(Reserve& reserve) {
  while (reserve.count > 0) {
    const Paddr t = reserve.head;
    reserve.head = *Table(t);
    --reserve.count;
    memory_.Free(t, 0);
  }
}

// Takes a reserved table. Its contents are garbage: the caller writes every entry, either
// a descriptor or zero (an invalid descriptor), and its counts, before the table is linked.
template <class F>
Paddr PageTableT<F>::TakeTable(Reserve& reserve) {
  DEVISO_ASSERT(reserve.count > 0);
  const Paddr t = reserve.head;
  reserve.head = *Table(t);
  --reserve.count;
  return t;
}

template <class F>
void PageTableT<F>::Publish(uint64_t* table, size_t first, size_t count) const {
  if (!config_.coherent_walker && count > 0) {
    memory_.CleanToPoc(&table[first], count * sizeof(uint64_t));
  }
}

// ---------------------------------------------------------------------------------------------
// Map

// The check pass: -EEXIST if anything in [start, end) is mapped; counts the tables the write
// pass will take. Reads only entries of the range (none of a leaf table the counts say is
// empty), writes nothing.
template <class F>
Status PageTableT<F>::MapCheck(const MapArgs& a, unsigned level, const uint64_t* table,
                               Paddr table_pa, Iova start, Iova end, size_t& needed) const {
  const unsigned shift = fmt_.LevelShift(level);
  const uint64_t size = 1ULL << shift;
  const size_t first = fmt_.Index(start, level);
  if (level == kMax) {
    if (level != fmt_.start_level() && Counts(level, table_pa).valid == 0) return Status::Ok();
    const size_t n = static_cast<size_t>((end - start) >> shift);
    for (size_t i = 0; i < n; ++i) {
      if (Pte(LoadDescriptor(&table[first + i])).valid()) return Status::AlreadyExists();
    }
    return Status::Ok();
  }
  size_t idx = first;
  for (Iova cur = start; cur < end; ++idx) {
    const Iova entry_base = cur & ~(size - 1);
    const Iova chunk_end = entry_base + size < end ? entry_base + size : end;
    const Pte d{LoadDescriptor(&table[idx])};
    if (F::IsTable(d, level)) {
      const Paddr child = fmt_.OutputAddress(d);
      DEVISO_TRY(MapCheck(a, level + 1, Table(child), child, cur, chunk_end, needed));
    } else if (d.valid()) {
      return Status::AlreadyExists();
    } else {
      const bool whole = cur == entry_base && chunk_end - entry_base == size;
      const Paddr pa = a.pa + (cur - a.iova);
      if (!(whole && fmt_.LeafAllowed(level) && (pa & (size - 1)) == 0)) {
        needed += FreshTables(a, level + 1, cur, chunk_end);
      }
    }
    cur = chunk_end;
  }
  return Status::Ok();
}

// Tables a fresh table at `level` covering [start, end) needs, itself included. Only the two
// edge entries can differ from the others: every whole entry between them needs the same
// number (the output address has the same alignment in each), so this costs O(levels).
template <class F>
size_t PageTableT<F>::FreshTables(const MapArgs& a, unsigned level, Iova start, Iova end) const {
  if (level == kMax) return 1;
  size_t n = 1;
  const uint64_t size = LevelSize(level);
  const bool leaves = fmt_.LeafAllowed(level) && ((a.pa - a.iova) & (size - 1)) == 0;
  Iova cur = start;
  if ((cur & (size - 1)) != 0) {  // a partial first entry
    const Iova head_end = (cur | (size - 1)) + 1 < end ? (cur | (size - 1)) + 1 : end;
    n += FreshTables(a, level + 1, cur, head_end);
    cur = head_end;
  }
  const Iova whole_end = cur + ((end - cur) & ~(size - 1));
  if (whole_end > cur && !leaves) {
    const size_t per = level + 1 == kMax ? 1 : FreshTables(a, level + 1, cur, cur + size);
    n += static_cast<size_t>((whole_end - cur) / size) * per;
  }
  if (whole_end < end) n += FreshTables(a, level + 1, whole_end, end);  // a partial last entry
  return n;
}

// The write pass; cannot fail. `fresh` means `table` was taken from the reserve by this call:
// unlinked and garbage, so it is written with plain stores, every entry outside the range is
// zeroed, and its counts start at zero.
template <class F>
void PageTableT<F>::MapCommit(const MapArgs& a, unsigned level, uint64_t* table, Paddr table_pa,
                              bool fresh, Iova start, Iova end, Reserve& reserve) {
  const unsigned shift = fmt_.LevelShift(level);
  const uint64_t size = 1ULL << shift;
  const size_t first = fmt_.Index(start, level);
  const size_t last = fmt_.Index(end - 1, level);  // inclusive: `end` may be the next table's
  TableCounts& c = Counts(level, table_pa);
  if (fresh) {
    c = {0, 0, 0};
    std::memset(table, 0, first * sizeof(uint64_t));
    std::memset(&table[last + 1], 0, (fmt_.Entries(level) - last - 1) * sizeof(uint64_t));
  }

  if (level == kMax) {
    // Pages: the hot loop of every map.
    const size_t n = last + 1 - first;
    uint64_t d = F::Leaf(a.pa + (start - a.iova), a.attrs[level]).raw();
    uint64_t* slot = &table[first];
    if (fresh) {
      for (size_t i = 0; i < n; ++i, d += size) slot[i] = d;
    } else {
      for (size_t i = 0; i < n; ++i, d += size) StoreDescriptor(&slot[i], d);
      Publish(table, first, n);
    }
    AddCount(c.valid, static_cast<int>(n));
    AddCount(c.full, static_cast<int>(n));
    return;
  }

  const bool leaf_ok = fmt_.LeafAllowed(level);
  const size_t child_entries = fmt_.Entries(level + 1);
  size_t idx = first;
  for (Iova cur = start; cur < end; ++idx) {
    const Iova entry_base = cur & ~(size - 1);
    const Iova chunk_end = entry_base + size < end ? entry_base + size : end;
    uint64_t* slot = &table[idx];
    const Pte d = fresh ? Pte() : Pte(LoadDescriptor(slot));
    const Paddr pa = a.pa + (cur - a.iova);
    const bool whole = cur == entry_base && chunk_end - entry_base == size;
    if (F::IsTable(d, level)) {
      const Paddr child = fmt_.OutputAddress(d);
      const bool was_full = Full(level + 1, child);
      MapCommit(a, level + 1, Table(child), child, false, cur, chunk_end, reserve);
      if (!was_full && Full(level + 1, child)) AddCount(c.full, 1);
    } else if (whole && leaf_ok && (pa & (size - 1)) == 0) {
      if (fresh) {
        // The run of whole entries in a fresh table: blocks, stored as the pages are.
        const size_t run = static_cast<size_t>((((end - cur) & ~(size - 1))) >> shift);
        uint64_t leaf = F::Leaf(pa, a.attrs[level]).raw();
        for (size_t i = 0; i < run; ++i, leaf += size) slot[i] = leaf;
        AddCount(c.valid, static_cast<int>(run));
        AddCount(c.full, static_cast<int>(run));
        idx += run - 1;
        cur += run * size;
        continue;
      }
      StoreDescriptor(slot, F::Leaf(pa, a.attrs[level]).raw());
      AddCount(c.valid, 1);
      AddCount(c.full, 1);
    } else {
      const Paddr t = TakeTable(reserve);
      uint64_t* sub = Table(t);
      MapCommit(a, level + 1, sub, t, true, cur, chunk_end, reserve);
      Publish(sub, 0, child_entries);
      // The table is complete before the walker can reach it. Under a fresh parent the
      // parent's own link is preceded by this barrier, which orders both.
      if (!fresh) TableWriteBarrier();
      StoreDescriptor(slot, F::TableEntry(t).raw());
      AddCount(c.valid, 1);
      AddCount(c.tables, 1);
      if (Counts(level + 1, t).full == child_entries) AddCount(c.full, 1);
    }
    cur = chunk_end;
  }
  if (!fresh) Publish(table, first, idx - first);
}

// After a write pass in the table where the walk stopped: a change of that table's "wholly
// mapped" state changes its parent's full count, and so on up, as far as states change.
template <class F>
void PageTableT<F>::PropagateFull(const Path& path, bool was_full) {
  unsigned level = path.level;
  Paddr pa = path.pa;
  while (level > fmt_.start_level()) {
    const bool now_full = Full(level, pa);
    if (now_full == was_full) return;
    const typename Path::Step& up = path.step[level - 1];
    TableCounts& pc = Counts(level - 1, up.pa);
    was_full = pc.full == fmt_.Entries(level - 1);
    AddCount(pc.full, now_full ? 1 : -1);
    pa = up.pa;
    --level;
  }
}

template <class F>
Status PageTableT<F>::Map(Iova iova, Paddr pa, uint64_t size, Perms perms, MemType type) {
  DEVISO_TRY(CheckRange(iova, size));
  if ((pa & (page_size() - 1)) != 0) return Status::InvalidArgument();
  const uint64_t oa_limit = 1ULL << fmt_.output_bits();
  if (pa >= oa_limit || size > oa_limit - pa) return Status::InvalidArgument();
  DEVISO_TRY(fmt_.CheckAccess(perms, type));

  MapArgs a;
  a.iova = iova;
  a.pa = pa;
  const uint64_t attrs = fmt_.LeafAttrs(perms, type);
  for (unsigned l = 0; l < F::kLevelCount; ++l) a.attrs[l] = F::AttrsAt(attrs, l);

  const Iova end = iova + size;
  Path path;
  Descend(iova, end, path);
  if (path.level == kMax && path.level != fmt_.start_level()) {
    // The range lies in one page table that exists (the common small map): check and write
    // its entries in place; no table can be needed.
    const size_t first = fmt_.Index(iova, kMax);
    const size_t n = static_cast<size_t>(size >> fmt_.granule_shift());
    uint64_t* slot = &path.table[first];
    TableCounts& c = Counts(kMax, path.pa);
    if (c.valid != 0) {
      for (size_t i = 0; i < n; ++i) {
        if (Pte(LoadDescriptor(&slot[i])).valid()) return Status::AlreadyExists();
      }
    }
    uint64_t d = F::Leaf(pa, a.attrs[kMax]).raw();
    for (size_t i = 0; i < n; ++i, d += page_size()) StoreDescriptor(&slot[i], d);
    Publish(path.table, first, n);
    AddCount(c.valid, static_cast<int>(n));
    AddCount(c.full, static_cast<int>(n));
    if (c.full == fmt_.Entries(kMax)) PropagateFull(path, false);
    return Status::Ok();
  }
  size_t needed = 0;
  DEVISO_TRY(MapCheck(a, path.level, path.table, path.pa, iova, end, needed));
  Reserve reserve;
  if (needed != 0) DEVISO_TRY(ReserveTables(needed, reserve));
  const bool was_full = path.level != fmt_.start_level() && Full(path.level, path.pa);
  MapCommit(a, path.level, path.table, path.pa, false, iova, end, reserve);
  PropagateFull(path, was_full);
  DEVISO_ASSERT(reserve.count == 0);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Unmap and Protect: check, split, write

// The check pass of an edit: -ENOENT unless every granule of [start, end) is mapped. An entry
// the range covers whole is answered from its counts (a leaf, or a table whose entries are all
// wholly mapped), so no leaf under it is read. Counts the tables the edge splits need; built
// without splits, reports whether an edge cuts a block (and keeps checking: an unmapped
// granule is -ENOENT all the same).
template <class F>
Status PageTableT<F>::EditCheck(unsigned level, const uint64_t* table, Paddr table_pa, Iova start,
                                Iova end, size_t& splits, bool& cuts_block) const {
  const unsigned shift = fmt_.LevelShift(level);
  const uint64_t size = 1ULL << shift;
  size_t idx = fmt_.Index(start, level);
  if (level == kMax) {
    const size_t n = static_cast<size_t>((end - start) >> shift);
    if (level != fmt_.start_level()) {
      const TableCounts& c = Counts(level, table_pa);
      if (c.valid == fmt_.Entries(level)) return Status::Ok();
      if (c.valid < n) return Status::NotFound();
    }
    for (size_t i = 0; i < n; ++i) {
      if (!Pte(LoadDescriptor(&table[idx + i])).valid()) return Status::NotFound();
    }
    return Status::Ok();
  }
  for (Iova cur = start; cur < end; ++idx) {
    const Iova entry_base = cur & ~(size - 1);
    const Iova chunk_end = entry_base + size < end ? entry_base + size : end;
    const bool whole = cur == entry_base && chunk_end - entry_base == size;
    const Pte d{LoadDescriptor(&table[idx])};
    if (F::IsTable(d, level)) {
      const Paddr child = fmt_.OutputAddress(d);
      if (whole) {
        if (!Full(level + 1, child)) return Status::NotFound();
      } else {
        DEVISO_TRY(EditCheck(level + 1, Table(child), child, cur, chunk_end, splits, cuts_block));
      }
    } else if (!d.valid()) {
      return Status::NotFound();
    } else if (!whole) {
      // A block that extends beyond the range: it must be split first.
      if constexpr (config::kBlockSplit) {
        splits += SplitTablesNeeded(level, entry_base, start, end);
      } else {
        cuts_block = true;
      }
    }
    cur = chunk_end;
  }
  return Status::Ok();
}

// Tables needed to replace the block at `level` covering `entry_base` by an equivalent
// subtree in which no leaf straddles `start` or `end`.
template <class F>
size_t PageTableT<F>::SplitTablesNeeded(unsigned level, Iova entry_base, Iova start,
                                        Iova end) const {
  size_t n = 1;
  const uint64_t child = LevelSize(level + 1);
  const Iova entry_end = entry_base + LevelSize(level);
  Iova counted = ~0ULL;
  for (Iova b : {start, end}) {
    if (b <= entry_base || b >= entry_end || (b & (child - 1)) == 0) continue;
    const Iova child_base = b & ~(child - 1);
    if (child_base == counted) continue;
    counted = child_base;
    n += SplitTablesNeeded(level + 1, child_base, start, end);
  }
  return n;
}

// Builds, unlinked, the table that replaces `block` (a leaf at `level` mapping `entry_base`):
// the same translations and attributes in leaves one level down, split further where a leaf
// would straddle `start` or `end`. Every entry is a leaf or such a table: wholly mapped.
template <class F>
Paddr PageTableT<F>::BuildSplit(Pte block, unsigned level, Iova entry_base, Iova start, Iova end,
                                Reserve& reserve) {
  const unsigned child_level = level + 1;
  const uint64_t child = LevelSize(child_level);
  const uint64_t attrs = F::AttrsAt(fmt_.AttrsOf(block), child_level);
  const Paddr pa = fmt_.OutputAddress(block);
  const Paddr t = TakeTable(reserve);
  uint64_t* table = Table(t);
  const size_t n = fmt_.Entries(child_level);
  int tables = 0;
  for (size_t i = 0; i < n; ++i) {
    const Iova child_base = entry_base + i * child;
    Pte d = F::Leaf(pa + i * child, attrs);
    const bool straddles = (start > child_base && start < child_base + child) ||
                           (end > child_base && end < child_base + child);
    if (straddles) {
      d = F::TableEntry(BuildSplit(d, child_level, child_base, start, end, reserve));
      ++tables;
    }
    table[i] = d.raw();
  }
  const uint16_t all = static_cast<uint16_t>(n);
  Counts(child_level, t) = {all, all, static_cast<uint16_t>(tables)};
  Publish(table, 0, n);
  return t;
}

template <class F>
Status PageTableT<F>::SplitAt(Iova addr, Iova start, Iova end, Gather& gather, Reserve& reserve) {
  // Walk to the leaf that maps `addr`.
  unsigned level = fmt_.start_level();
  Paddr table_pa = root_;
  uint64_t* table = Table(root_);
  for (;;) {
    uint64_t* slot = &table[fmt_.Index(addr, level)];
    const Pte d{LoadDescriptor(slot)};
    if (F::IsTable(d, level)) {
      table_pa = fmt_.OutputAddress(d);
      table = Table(table_pa);
      ++level;
      continue;
    }
    DEVISO_ASSERT(F::IsLeaf(d, level));
    const uint64_t size = LevelSize(level);
    const Iova base = addr & ~(size - 1);
    if (base >= start && base + size <= end) return Status::Ok();  // nothing straddles

    // The block is replaced by an equivalent, wholly mapped table: the counts of the table
    // holding the entry do not change.
    const Paddr split = BuildSplit(d, level, base, start, end, reserve);
    TableWriteBarrier();
    if (config_.bbml2) {
      // FEAT_BBM level 2 / SMMU IDR3.BBML=2: the walker tolerates seeing the block and the
      // equivalent table at once, so replace in place. The block may stay cached for the part
      // of the range the caller is changing: gather its level with that range.
      StoreDescriptor(slot, F::TableEntry(split).raw());
      Publish(slot, 0, 1);
      AddCount(Counts(level, table_pa).tables, 1);
      const Iova lo = base > start ? base : start;
      const Iova hi = base + size < end ? base + size : end;
      gather.AddLeaves(lo, hi - lo, static_cast<uint8_t>(1U << level));
      return Status::Ok();
    }
    // Break-before-make (Arm ARM D8.16.1): invalid entry, invalidate and wait, new entry;
    // between break and make the whole block faults (the new table is otherwise equivalent).
    // FEAT_BBM level 1 / SMMU IDR3.BBML=1 (IHI0070 3.21.1.2) instead writes the block with
    // nT=1, which translates as before but is not cached in a conflicting way, and also
    // invalidates the block's range with the caller's (gathered), so no entry of the old size
    // survives.
    StoreDescriptor(slot, config_.bbml1 ? d.raw() | ds::kNt : 0);
    Publish(slot, 0, 1);
    InvalidationRange old_block;
    old_block.iova = base;
    old_block.size = size;
    old_block.leaf_levels = static_cast<uint8_t>(1U << level);
    const Status s = flush_.Invalidate(old_block);
    if (!s.ok()) {
      // The old block is not known to be gone from every cache: put it back (nT=0), drop the
      // new table.
      StoreDescriptor(slot, d.raw());
      Publish(slot, 0, 1);
      FreeSubtreeNow(split, level + 1);
      return s;
    }
    StoreDescriptor(slot, F::TableEntry(split).raw());
    Publish(slot, 0, 1);
    AddCount(Counts(level, table_pa).tables, 1);
    if (config_.bbml1) gather.AddLeaves(base, size, static_cast<uint8_t>(1U << level));
    return Status::Ok();
  }
}

// Everything an edit does before it writes: the walk down, the check, and the edge splits
// (which reserve their tables first). On error nothing has changed, except that a split done
// before a failed break-before-make stays (an equivalent table).
template <class F>
Status PageTableT<F>::PrepareEdit(Iova iova, uint64_t size, Gather& gather, Path& path) {
  DEVISO_TRY(CheckRange(iova, size));
  Descend(iova, iova + size, path);
  return PrepareEditFrom(iova, size, gather, path);
}

// PrepareEdit after the walk down.
template <class F>
Status PageTableT<F>::PrepareEditFrom(Iova iova, uint64_t size, Gather& gather, Path& path) {
  const Iova end = iova + size;
  size_t splits = 0;
  bool cuts_block = false;
  DEVISO_TRY(EditCheck(path.level, path.table, path.pa, iova, end, splits, cuts_block));
  if constexpr (!config::kBlockSplit) {
    // Splits are compiled out: the edit must cover whole leaves, or nothing changes.
    (void)gather;
    return cuts_block ? Status::NotSupported() : Status::Ok();
  } else {
    if (splits == 0) return Status::Ok();  // no block straddles an edge: nothing to prepare
    Reserve reserve;
    DEVISO_TRY(ReserveTables(splits, reserve));
    Status s = SplitAt(iova, iova, end, gather, reserve);
    if (s.ok()) s = SplitAt(end - 1, iova, end, gather, reserve);
    ReleaseReserve(reserve);  // only left over after a failed split
    return s;
  }
}

// Retired tables. A subtree's top table is chained into the gather through its first entry;
// a table that entry pointed to is chained first as a subtree of its own, so nothing is lost.
template <class F>
void PageTableT<F>::Chain(Paddr table, unsigned level, Gather& gather) {
  DEVISO_PGTABLE_DEBUG_ASSERT((table & kLinkLowBits) == 0 && level <= kMax);
  StoreDescriptor(Table(table), gather.freed_head_ | (uint64_t{level} << kLinkLevelShift));
  gather.freed_head_ = table;
  ++gather.freed_subtrees_;
}

template <class F>
size_t PageTableT<F>::CountTables(Paddr table, unsigned level) const {
  if (level == kMax) return 1;
  const TableCounts& c = Counts(level, table);
  if (level + 1 == kMax || c.tables == 0) return 1 + c.tables;  // no scan below leaf tables
  size_t n = 1;
  const uint64_t* t = Table(table);
  const size_t entries = fmt_.Entries(level);
  for (size_t i = 0; i < entries; ++i) {
    const Pte d{LoadDescriptor(&t[i])};
    if (F::IsTable(d, level)) {
      n += level + 1 == kMax ? 1 : CountTables(fmt_.OutputAddress(d), level + 1);
    }
  }
  return n;
}

// Retires the subtree under a table that has just been unlinked. Its tables are freed by
// Sync(), after the invalidation; until then a walker holding them still finds them intact,
// except for the link in each chained table's first entry.
template <class F>
void PageTableT<F>::RetireSubtree(Paddr table, unsigned level, Gather& gather) {
  gather.freed_count_ += CountTables(table, level);
  const uint64_t* t = Table(table);
  for (;;) {
    const Pte first{LoadDescriptor(t)};
    if (level == kMax || !F::IsTable(first, level)) break;
    // The first entry leads to a table: chain that one (and its own first) separately.
    const Paddr child = fmt_.OutputAddress(first);
    Chain(table, level, gather);
    table = child;
    t = Table(table);
    ++level;
  }
  Chain(table, level, gather);
}

// Frees a chained subtree: its top table's first entry is the link, the others are intact.
template <class F>
void PageTableT<F>::FreeRetired(Paddr table, unsigned level) {
  if (level < kMax && Counts(level, table).tables != 0) {
    const uint64_t* t = Table(table);
    const size_t n = fmt_.Entries(level);
    for (size_t i = 1; i < n; ++i) {
      const Pte d{LoadDescriptor(&t[i])};
      if (F::IsTable(d, level)) FreeSubtreeNow(fmt_.OutputAddress(d), level + 1);
    }
  }
  memory_.Free(table, 0);
}

// The write pass of Unmap; cannot fail. After EditCheck and the splits every entry in the range
// is mapped and no leaf straddles an edge.
template <class F>
void PageTableT<F>::UnmapCommit(unsigned level, uint64_t* table, Paddr table_pa, Iova start,
                                Iova end, Gather& gather) {
  const unsigned shift = fmt_.LevelShift(level);
  const uint64_t size = 1ULL << shift;
  const size_t first = fmt_.Index(start, level);
  TableCounts& c = Counts(level, table_pa);
  if (level == kMax) {
    const size_t n = static_cast<size_t>((end - start) >> shift);
    for (size_t i = 0; i < n; ++i) StoreDescriptor(&table[first + i], 0);
    Publish(table, first, n);
    AddCount(c.valid, -static_cast<int>(n));
    AddCount(c.full, -static_cast<int>(n));
    gather.AddLeaves(start, end - start, 1U << kMax);
    return;
  }
  size_t idx = first;
  for (Iova cur = start; cur < end; ++idx) {
    const Iova entry_base = cur & ~(size - 1);
    const Iova chunk_end = entry_base + size < end ? entry_base + size : end;
    uint64_t* slot = &table[idx];
    const Pte d{LoadDescriptor(slot)};
    const bool whole = cur == entry_base && chunk_end - entry_base == size;
    if (!F::IsTable(d, level)) {
      DEVISO_ASSERT(whole && F::IsLeaf(d, level));  // PrepareEdit split the edges
      StoreDescriptor(slot, 0);
      AddCount(c.valid, -1);
      AddCount(c.full, -1);
      gather.AddLeaves(entry_base, size, static_cast<uint8_t>(1U << level));
    } else if (whole) {
      // EditCheck found the subtree wholly mapped: remove it without reading its leaves.
      StoreDescriptor(slot, 0);
      RetireSubtree(fmt_.OutputAddress(d), level + 1, gather);
      AddCount(c.valid, -1);
      AddCount(c.full, -1);
      AddCount(c.tables, -1);
      gather.AddLeaves(entry_base, size, LevelsBelow(level));
      gather.AddTables(entry_base, size);
    } else {
      const Paddr child = fmt_.OutputAddress(d);
      const bool was_full = Full(level + 1, child);
      UnmapCommit(level + 1, Table(child), child, cur, chunk_end, gather);
      if (Counts(level + 1, child).valid == 0) {
        StoreDescriptor(slot, 0);
        gather.freed_count_ += 1;
        Chain(child, level + 1, gather);  // empty: no table below it
        AddCount(c.valid, -1);
        AddCount(c.tables, -1);
        if (was_full) AddCount(c.full, -1);
        // Walk caches are invalidated by address: any address in the removed table's span
        // drops what was cached through it, so the unmapped part of the span is enough (and
        // keeps a small unmap from widening into a whole-context invalidation).
        gather.AddTables(cur, chunk_end - cur);
      } else if (was_full) {
        AddCount(c.full, -1);
      }
    }
    cur = chunk_end;
  }
  Publish(table, first, idx - first);
}

// After an unmap's write pass in the table where the walk stopped: a table left empty leaves
// the tree (and may leave its parent empty), a table no longer wholly mapped lowers its
// parent's full count; both travel up the recorded path only as far as something changes.
template <class F>
void PageTableT<F>::Collapse(const Path& path, bool was_full, Iova start, Iova end,
                             Gather& gather) {
  unsigned level = path.level;
  Paddr pa = path.pa;
  while (level > fmt_.start_level()) {
    const TableCounts& c = Counts(level, pa);
    const typename Path::Step& up = path.step[level - 1];
    TableCounts& pc = Counts(level - 1, up.pa);
    const bool parent_was_full = pc.full == fmt_.Entries(level - 1);
    if (c.valid == 0) {
      StoreDescriptor(&up.table[up.index], 0);
      Publish(up.table, up.index, 1);
      gather.freed_count_ += 1;
      Chain(pa, level, gather);
      gather.AddTables(start, end - start);
      AddCount(pc.valid, -1);
      AddCount(pc.tables, -1);
      if (was_full) AddCount(pc.full, -1);
    } else if (was_full && !Full(level, pa)) {
      AddCount(pc.full, -1);
    } else {
      return;
    }
    was_full = parent_was_full;
    pa = up.pa;
    --level;
  }
}

template <class F>
Status PageTableT<F>::Unmap(Iova iova, uint64_t size, Gather& gather) {
  Path path;
  DEVISO_TRY(CheckRange(iova, size));
  Descend(iova, iova + size, path);
  if (path.level == kMax && path.level != fmt_.start_level()) {
    // The range lies in one page table (the common small unmap): no block can straddle it, so
    // check and clear its entries in place.
    const size_t first = fmt_.Index(iova, kMax);
    const size_t n = static_cast<size_t>(size >> fmt_.granule_shift());
    uint64_t* slot = &path.table[first];
    TableCounts& c = Counts(kMax, path.pa);
    const size_t entries = fmt_.Entries(kMax);
    if (c.valid < n) return Status::NotFound();
    if (c.valid != entries) {
      for (size_t i = 0; i < n; ++i) {
        if (!Pte(LoadDescriptor(&slot[i])).valid()) return Status::NotFound();
      }
    }
    const bool was_full = c.full == entries;
    for (size_t i = 0; i < n; ++i) StoreDescriptor(&slot[i], 0);
    Publish(path.table, first, n);
    AddCount(c.valid, -static_cast<int>(n));
    AddCount(c.full, -static_cast<int>(n));
    gather.AddLeaves(iova, size, 1U << kMax);
    if (was_full || c.valid == 0) Collapse(path, was_full, iova, iova + size, gather);
    return Status::Ok();
  }
  DEVISO_TRY(PrepareEditFrom(iova, size, gather, path));
  const bool was_full = path.level != fmt_.start_level() && Full(path.level, path.pa);
  UnmapCommit(path.level, path.table, path.pa, iova, iova + size, gather);
  Collapse(path, was_full, iova, iova + size, gather);
  return Status::Ok();
}

template <class F>
Status PageTableT<F>::Unmap(Iova iova, uint64_t size) {
  Gather gather;
  const Status s = Unmap(iova, size, gather);
  const Status synced = SyncOwned(gather);
  return s.ok() ? synced : s;
}

template <class F>
void PageTableT<F>::ProtectWalk(unsigned level, uint64_t* table, Iova start, Iova end, Perms perms,
                                Gather& gather) {
  const uint64_t size = LevelSize(level);
  const size_t first = fmt_.Index(start, level);
  size_t idx = first;
  for (Iova cur = start; cur < end; ++idx) {
    const Iova entry_base = cur & ~(size - 1);
    const Iova chunk_end = entry_base + size < end ? entry_base + size : end;
    uint64_t* slot = &table[idx];
    const Pte d{LoadDescriptor(slot)};
    if (F::IsTable(d, level)) {
      ProtectWalk(level + 1, Table(fmt_.OutputAddress(d)), cur, chunk_end, perms, gather);
    } else {
      DEVISO_ASSERT(F::IsLeaf(d, level) && cur == entry_base && chunk_end == entry_base + size);
      StoreDescriptor(slot, fmt_.WithPerms(d, perms).raw());
      gather.AddLeaves(entry_base, size, static_cast<uint8_t>(1U << level));
    }
    cur = chunk_end;
  }
  Publish(table, first, idx - first);
}

template <class F>
Status PageTableT<F>::Protect(Iova iova, uint64_t size, Perms perms, Gather& gather) {
  if (!initialized_) return Status::InvalidArgument();
  DEVISO_TRY(fmt_.CheckAccess(perms, MemType::kNormalWriteBack));
  Path path;
  DEVISO_TRY(PrepareEdit(iova, size, gather, path));
  ProtectWalk(path.level, path.table, iova, iova + size, perms, gather);
  return Status::Ok();
}

template <class F>
Status PageTableT<F>::Protect(Iova iova, uint64_t size, Perms perms) {
  Gather gather;
  const Status s = Protect(iova, size, perms, gather);
  const Status synced = SyncOwned(gather);
  return s.ok() ? synced : s;
}

// ---------------------------------------------------------------------------------------------
// Sync

template <class F>
Status PageTableT<F>::Sync(Gather& gather) {
  if (gather.leaf_levels_ != 0 || gather.tables_) {
    DEVISO_TRY(flush_.Invalidate(gather.range()));
  }
  Paddr p = gather.freed_head_;
  for (size_t i = 0; i < gather.freed_subtrees_; ++i) {
    const uint64_t link = LoadDescriptor(Table(p));
    FreeRetired(p, static_cast<unsigned>((link & kLinkLevelMask) >> kLinkLevelShift));
    p = link & ~kLinkLowBits;
  }
  gather = Gather();
  return Status::Ok();
}

template <class F>
Status PageTableT<F>::SyncOwned(Gather& gather) {
  // Fold in what an earlier failed sync left behind, so its tables are freed (and its range
  // invalidated) by this one.
  if (config::kOrphanRetry && !orphans_.empty()) {
    if (orphans_.start_ < orphans_.end_) {
      gather.AddLeaves(orphans_.start_, orphans_.end_ - orphans_.start_, orphans_.leaf_levels_);
    }
    gather.tables_ = gather.tables_ || orphans_.tables_;
    Paddr p = orphans_.freed_head_;
    for (size_t i = 0; i < orphans_.freed_subtrees_; ++i) {
      const uint64_t link = LoadDescriptor(Table(p));
      Chain(p, static_cast<unsigned>((link & kLinkLevelMask) >> kLinkLevelShift), gather);
      p = link & ~kLinkLowBits;
    }
    gather.freed_count_ += orphans_.freed_count_;
    orphans_ = Gather();
  }
  if (gather.empty()) return Status::Ok();
  const Status s = Sync(gather);
  if (!s.ok()) {
    // A walker may still hold the gathered tables: keep them for the next sync, or (built
    // without the retry) never free them.
    if constexpr (config::kOrphanRetry) orphans_ = gather;
    gather = Gather();
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Lookup and visiting

template <class F>
Mapping PageTableT<F>::MakeMapping(Pte d, Iova iova, unsigned level) const {
  Mapping m;
  m.size = LevelSize(level);
  m.iova = iova & ~(m.size - 1);
  m.pa = fmt_.OutputAddress(d);
  m.level = level;
  m.perms = fmt_.DecodePerms(d);
  m.type = fmt_.DecodeType(d);
  m.descriptor = d.raw();
  return m;
}

// The descent Lookup and IovaToPhys share: the descriptor that ends the walk of `iova` (a leaf,
// or an entry that is neither table nor leaf) and, in *level, the level it was read at. The
// caller has checked `iova` against the input range.
template <class F>
[[gnu::always_inline]] inline typename PageTableT<F>::Pte PageTableT<F>::LeafOf(
    Iova iova, unsigned* level) const {
  unsigned l = fmt_.start_level();
  const uint64_t* table = Table(root_);
  for (;;) {
    const Pte d{LoadDescriptor(&table[fmt_.Index(iova, l)])};
    if (!F::IsTable(d, l)) {
      *level = l;
      return d;
    }
    table = Table(fmt_.OutputAddress(d));
    ++l;
  }
}

template <class F>
Result<Mapping> PageTableT<F>::Lookup(Iova iova) const {
  if (!initialized_ || iova >= (1ULL << fmt_.input_bits())) return Status::InvalidArgument();
  unsigned level = 0;
  const Pte d = LeafOf(iova, &level);
  if (!F::IsLeaf(d, level)) return Status::NotFound();
  return MakeMapping(d, iova, level);
}

template <class F>
Result<Paddr> PageTableT<F>::IovaToPhys(Iova iova) const {
  if (!initialized_ || iova >= (1ULL << fmt_.input_bits())) return Status::InvalidArgument();
  unsigned level = 0;
  const Pte d = LeafOf(iova, &level);
  if (!F::IsLeaf(d, level)) return Status::NotFound();
  return fmt_.OutputAddress(d) + (iova & (LevelSize(level) - 1));
}

template <class F>
bool PageTableT<F>::Visit(unsigned level, const uint64_t* table, Iova base,
                          MappingVisitor& v) const {
  const size_t n = fmt_.Entries(level);
  const uint64_t size = LevelSize(level);
  for (size_t i = 0; i < n; ++i) {
    const Pte d{LoadDescriptor(&table[i])};
    const Iova iova = base + i * size;
    if (F::IsTable(d, level)) {
      if (!Visit(level + 1, Table(fmt_.OutputAddress(d)), iova, v)) return false;
    } else if (F::IsLeaf(d, level)) {
      if (!v.Visit(MakeMapping(d, iova, level))) return false;
    }
  }
  return true;
}

template <class F>
void PageTableT<F>::ForEachMapping(MappingVisitor& visitor) const {
  if (initialized_) (void)Visit(fmt_.start_level(), Table(root_), 0, visitor);
}

template class PageTableT<Vmsav8>;

}  // namespace deviso::pgtable
