// The VMSAv8-64 translation-table engine. See pgtable.h for the contract.

#include "pgtable/pgtable.h"

#include <cstring>

#include "deviso/assert.h"

namespace deviso::pgtable {
namespace {

// Descriptors are read and written with single-copy-atomic 64-bit accesses (Arm ARM B2.2.1):
// a walker running concurrently sees either the old or the new descriptor, never a mix.
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

constexpr uint8_t LevelsBelow(unsigned level) {
  // Leaf levels a removed table at `level` may have held: level+1 .. kMaxLevel.
  return static_cast<uint8_t>((0xfU << (level + 1)) & 0xfU);
}

// The largest leaf each granule has without FEAT_LPA/LPA2 (Arm ARM D8.2, Table D8-xx
// "Translation granule and block sizes"): 4K: 1 GiB at level 1; 16K: 32 MiB at level 2;
// 64K: 512 MiB at level 2.
constexpr unsigned ArchMinLeafLevel(Granule g) { return g == Granule::k4KiB ? 1 : 2; }

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
// Construction

// Tables reserved by a prepare step, chained through their first descriptor. Unlinked, so
// no walker can see the chain.
struct PageTable::Reserve {
  Paddr head = 0;
  size_t count = 0;   // tables held
  size_t needed = 0;  // counted by a prepare walk
};

struct PageTable::MapArgs {
  Iova iova;
  Paddr pa;
  uint64_t attrs[kLevelCount];  // leaf descriptor without its output address, per level
};

PageTable::PageTable(const Config& config, TableMemory& memory, TlbFlush& flush)
    : config_(config), memory_(memory), flush_(flush) {}

PageTable::~PageTable() { Release(); }

Status PageTable::Init() {
  if (initialized_) return Status::InvalidArgument();
  const Config& c = config_;
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

  granule_shift_ = static_cast<unsigned>(c.granule);
  stride_ = granule_shift_ - 3;
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

  DEVISO_ASSIGN_OR_RETURN(Paddr root, memory_.Allocate(root_order_));
  uint64_t* t = Table(root);
  const size_t bytes = (size_t{1} << root_order_) << granule_shift();
  std::memset(t, 0, bytes);
  if (!c.coherent_walker) memory_.CleanToPoc(t, bytes);
  TableWriteBarrier();
  root_ = root;
  initialized_ = true;
  return Status::Ok();
}

void PageTable::Release() {
  if (!initialized_) return;
  FreeSubtreeNow(root_, start_level_);
  if constexpr (config::kOrphanRetry) {
    // Nothing can walk the tables any more: return pending frees without an invalidation.
    Paddr p = orphans_.freed_head_;
    for (size_t i = 0; i < orphans_.freed_count_; ++i) {
      const Paddr next = LoadDescriptor(Table(p));
      memory_.Free(p, 0);
      p = next;
    }
    orphans_ = Gather();
  }
  initialized_ = false;
}

void PageTable::FreeSubtreeNow(Paddr table, unsigned level) {
  const uint64_t* t = Table(table);
  if (level < kMaxLevel) {
    const size_t n = Entries(level);
    for (size_t i = 0; i < n; ++i) {
      const uint64_t d = LoadDescriptor(&t[i]);
      if (ds::IsTable(d, level)) FreeSubtreeNow(OutputAddress(d), level + 1);
    }
  }
  memory_.Free(table, level == start_level_ ? root_order_ : 0);
}

bool PageTable::LeafAllowed(unsigned level) const {
  return level >= min_leaf_level_ && level <= kMaxLevel && level >= start_level_;
}

// ---------------------------------------------------------------------------------------------
// Descriptor encoding (Arm ARM D8.3.2 block and page descriptors, D8.4 permissions)

uint64_t PageTable::LeafDescriptor(Paddr pa, unsigned level, Perms perms, MemType type) const {
  uint64_t d = pa | (level == kMaxLevel ? ds::kTypeTableOrPage : ds::kTypeBlock) | ds::kAf;
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

Perms PageTable::DecodePerms(uint64_t d) const {
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

MemType PageTable::DecodeType(uint64_t d) const {
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

uint64_t PageTable::WithPerms(uint64_t d, Perms perms) const {
  // Permission changes need no break-before-make (Arm ARM D8.16.1): rewrite in place.
  constexpr uint64_t kS1Perm = ds::s1::kApRdOnly | ds::s1::kPxn | ds::s1::kUxn;
  constexpr uint64_t kS2Perm = ds::s2::kS2apRead | ds::s2::kS2apWrite | ds::s2::kXn;
  const bool page = (d & ds::kTypeMask) == ds::kTypeTableOrPage;
  const uint64_t fresh =
      LeafDescriptor(OutputAddress(d), page ? kMaxLevel : 0, perms, DecodeType(d));
  const uint64_t mask = stage2() ? kS2Perm : kS1Perm;
  return (d & ~mask) | (fresh & mask);
}

// ---------------------------------------------------------------------------------------------
// Argument checks

Status PageTable::CheckRange(Iova iova, uint64_t size) const {
  if (!initialized_) return Status::InvalidArgument();
  const uint64_t page_mask = page_size() - 1;
  if (size == 0 || (iova & page_mask) != 0 || (size & page_mask) != 0) {
    return Status::InvalidArgument();
  }
  const uint64_t limit = 1ULL << config_.ias;
  if (iova >= limit || size > limit - iova) return Status::InvalidArgument();
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Table reservation

Status PageTable::ReserveTables(size_t count, Reserve& reserve) {
  for (size_t i = 0; i < count; ++i) {
    Result<Paddr> t = memory_.Allocate(0);
    if (!t.ok()) {
      ReleaseReserve(reserve);
      return t.status();
    }
    StoreDescriptor(Table(*t), reserve.head);
    reserve.head = *t;
    ++reserve.count;
  }
  return Status::Ok();
}

void PageTable::ReleaseReserve(Reserve& reserve) {
  while (reserve.count > 0) {
    const Paddr t = reserve.head;
    reserve.head = LoadDescriptor(Table(t));
    --reserve.count;
    memory_.Free(t, 0);
  }
}

// Takes a reserved table. Its contents are garbage: the caller writes every entry, either
// a descriptor or zero (an invalid descriptor), before the table is linked.
Paddr PageTable::TakeTable(Reserve& reserve) {
  DEVISO_ASSERT(reserve.count > 0);
  const Paddr t = reserve.head;
  reserve.head = LoadDescriptor(Table(t));
  --reserve.count;
  return t;
}

void PageTable::Publish(uint64_t* table, size_t first, size_t count) const {
  if (!config_.coherent_walker && count > 0) {
    memory_.CleanToPoc(&table[first], count * sizeof(uint64_t));
  }
}

// ---------------------------------------------------------------------------------------------
// Map

// One walk, two passes. kCommit=false (prepare) checks for overlaps and counts the tables
// the commit will take; it writes nothing. kCommit=true writes, taking tables from the
// reserve; it cannot fail. `fresh` means `table` was allocated by this call and is empty, so
// it is neither read nor checked (in the prepare pass it does not even exist: nullptr).
template <bool kCommit>
Status PageTable::MapWalk(const MapArgs& a, unsigned level, uint64_t* table, bool fresh, Iova start,
                          Iova end, Reserve& reserve) {
  const unsigned shift = LevelShift(level);
  const uint64_t size = 1ULL << shift;
  const size_t first = Index(start, level);
  const size_t last = Index(end - 1, level);  // inclusive: `end` may be the next table's
  if (kCommit && fresh) {
    // A fresh table is unlinked: plain zeroing of the entries the walk will not write.
    std::memset(table, 0, first * sizeof(uint64_t));
    std::memset(&table[last + 1], 0, (Entries(level) - last - 1) * sizeof(uint64_t));
  }

  if (level == kMaxLevel) {
    // Pages: the hot loop of every map.
    const size_t n = last + 1 - first;
    if constexpr (kCommit) {
      uint64_t d = (a.pa + (start - a.iova)) | a.attrs[level];
      uint64_t* slot = &table[first];
      for (size_t i = 0; i < n; ++i, d += size) StoreDescriptor(&slot[i], d);
      if (!fresh) Publish(table, first, n);
    } else if (!fresh) {
      for (size_t i = 0; i < n; ++i) {
        if (ds::IsValid(LoadDescriptor(&table[first + i]))) return Status::AlreadyExists();
      }
    }
    return Status::Ok();
  }

  size_t idx = first;
  for (Iova cur = start; cur < end; ++idx) {
    const Iova entry_base = cur & ~(size - 1);
    const Iova chunk_end = entry_base + size < end ? entry_base + size : end;
    uint64_t* slot = kCommit || !fresh ? &table[idx] : nullptr;
    const uint64_t d = fresh ? 0 : LoadDescriptor(slot);
    const Paddr pa = a.pa + (cur - a.iova);
    const bool whole = cur == entry_base && chunk_end == entry_base + size;
    if (whole && LeafAllowed(level) && (pa & (size - 1)) == 0 && !ds::IsTable(d, level)) {
      if (ds::IsValid(d)) return Status::AlreadyExists();
      if constexpr (kCommit) StoreDescriptor(slot, pa | a.attrs[level]);
    } else if (ds::IsTable(d, level)) {
      DEVISO_TRY(
          MapWalk<kCommit>(a, level + 1, Table(OutputAddress(d)), false, cur, chunk_end, reserve));
    } else if (ds::IsValid(d)) {
      return Status::AlreadyExists();  // a block covers part of the range
    } else if constexpr (kCommit) {
      const Paddr t = TakeTable(reserve);
      uint64_t* sub = Table(t);
      (void)MapWalk<true>(a, level + 1, sub, true, cur, chunk_end, reserve);
      Publish(sub, 0, Entries(level + 1));
      TableWriteBarrier();  // the table is complete before the walker can reach it
      StoreDescriptor(slot, TableDescriptor(t));
    } else {
      ++reserve.needed;
      DEVISO_TRY(MapWalk<false>(a, level + 1, nullptr, true, cur, chunk_end, reserve));
    }
    cur = chunk_end;
  }
  if constexpr (kCommit) {
    if (!fresh) Publish(table, first, idx - first);
  }
  return Status::Ok();
}

Status PageTable::Map(Iova iova, Paddr pa, uint64_t size, Perms perms, MemType type) {
  DEVISO_TRY(CheckRange(iova, size));
  if ((pa & (page_size() - 1)) != 0) return Status::InvalidArgument();
  const uint64_t oa_limit = 1ULL << config_.oas;
  if (pa >= oa_limit || size > oa_limit - pa) return Status::InvalidArgument();
  if ((perms & kPermReadWrite) == 0 || (perms & ~kPermAll) != 0) {
    return Status::InvalidArgument();
  }
  // Stage 1 cannot express write-only (AP[2:1], D8.4.1); granting read silently would expose
  // the buffer, so refuse.
  if (!stage2() && (perms & kPermRead) == 0) {
    return Status::NotSupported();
  }
  if (static_cast<unsigned>(type) >= kMemTypeCount) return Status::InvalidArgument();

  MapArgs a{iova, pa, {}};
  for (unsigned l = 0; l < kLevelCount; ++l) a.attrs[l] = LeafDescriptor(0, l, perms, type);

  Reserve reserve;
  uint64_t* root = Table(root_);
  DEVISO_TRY(MapWalk<false>(a, start_level_, root, false, iova, iova + size, reserve));
  DEVISO_TRY(ReserveTables(reserve.needed, reserve));
  (void)MapWalk<true>(a, start_level_, root, false, iova, iova + size, reserve);
  DEVISO_ASSERT(reserve.count == 0);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Splitting blocks

// -ENOENT unless every granule of [start, end) is mapped. Built without block splits, also
// reports whether a block leaf extends beyond the range (only an edge leaf can).
Status PageTable::CheckMapped(unsigned level, const uint64_t* table, Iova start, Iova end,
                              bool* cuts_block) const {
  const uint64_t size = LevelSize(level);
  size_t idx = Index(start, level);
  if (level == kMaxLevel) {
    const size_t n = static_cast<size_t>((end - start) >> LevelShift(level));
    for (size_t i = 0; i < n; ++i) {
      if (!ds::IsValid(LoadDescriptor(&table[idx + i]))) return Status::NotFound();
    }
    return Status::Ok();
  }
  for (Iova cur = start; cur < end; ++idx) {
    const Iova entry_base = cur & ~(size - 1);
    const Iova chunk_end = entry_base + size < end ? entry_base + size : end;
    const uint64_t d = LoadDescriptor(&table[idx]);
    if (ds::IsTable(d, level)) {
      DEVISO_TRY(CheckMapped(level + 1, Table(OutputAddress(d)), cur, chunk_end, cuts_block));
    } else if (!ds::IsValid(d)) {
      return Status::NotFound();
    } else if (!config::kBlockSplit && (cur != entry_base || chunk_end != entry_base + size)) {
      *cuts_block = true;  // keep checking: an unmapped granule is -ENOENT all the same
    }
    cur = chunk_end;
  }
  return Status::Ok();
}

// Tables needed to replace the block at `level` covering `entry_base` by an equivalent
// subtree in which no leaf straddles `start` or `end`.
size_t PageTable::SplitTablesNeeded(unsigned level, Iova entry_base, Iova start, Iova end) const {
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

size_t PageTable::CountSplits(Iova start, Iova end) const {
  // The leaves containing the first and the last granule of the range: a block leaf that
  // extends beyond the range must be split. Both may be the same block.
  Result<Mapping> first = Lookup(start);
  Result<Mapping> last = Lookup(end - 1);
  DEVISO_ASSERT(first.ok() && last.ok());  // CheckMapped() ran first
  const auto straddles = [start, end](const Mapping& m) {
    return m.iova < start || m.iova + m.size > end;
  };
  size_t n = 0;
  if (straddles(*first)) n += SplitTablesNeeded(first->level, first->iova, start, end);
  const bool same = first->iova == last->iova && first->level == last->level;
  if (!same && straddles(*last)) n += SplitTablesNeeded(last->level, last->iova, start, end);
  return n;
}

// Builds, unlinked, the table that replaces `block` (a leaf at `level` mapping `entry_base`):
// the same translations and attributes in leaves one level down, split further where a leaf
// would straddle `start` or `end`.
Paddr PageTable::BuildSplit(uint64_t block, unsigned level, Iova entry_base, Iova start, Iova end,
                            Reserve& reserve) {
  const unsigned child_level = level + 1;
  const uint64_t child = LevelSize(child_level);
  const uint64_t type = child_level == kMaxLevel ? ds::kTypeTableOrPage : ds::kTypeBlock;
  const uint64_t attrs = block & ~(oa_mask_ | ds::kTypeMask);
  const Paddr pa = OutputAddress(block);
  const Paddr t = TakeTable(reserve);
  uint64_t* table = Table(t);
  const size_t n = Entries(child_level);
  for (size_t i = 0; i < n; ++i) {
    const Iova child_base = entry_base + i * child;
    uint64_t d = (pa + i * child) | attrs | type;
    const bool straddles = (start > child_base && start < child_base + child) ||
                           (end > child_base && end < child_base + child);
    if (straddles) {
      d = TableDescriptor(BuildSplit(d, child_level, child_base, start, end, reserve));
    }
    StoreDescriptor(&table[i], d);
  }
  Publish(table, 0, n);
  return t;
}

Status PageTable::SplitAt(Iova addr, Iova start, Iova end, Gather& gather, Reserve& reserve) {
  // Walk to the leaf that maps `addr`.
  unsigned level = start_level_;
  uint64_t* table = Table(root_);
  for (;;) {
    uint64_t* slot = &table[Index(addr, level)];
    const uint64_t d = LoadDescriptor(slot);
    if (ds::IsTable(d, level)) {
      table = Table(OutputAddress(d));
      ++level;
      continue;
    }
    DEVISO_ASSERT(ds::IsLeaf(d, level));
    const uint64_t size = LevelSize(level);
    const Iova base = addr & ~(size - 1);
    if (base >= start && base + size <= end) return Status::Ok();  // nothing straddles

    const Paddr split = BuildSplit(d, level, base, start, end, reserve);
    TableWriteBarrier();
    if (config_.bbml2) {
      // FEAT_BBM level 2 / SMMU IDR3.BBML=2: the walker tolerates seeing the block and the
      // equivalent table at once, so replace in place. The block may stay cached for the part
      // of the range the caller is changing: gather its level with that range.
      StoreDescriptor(slot, TableDescriptor(split));
      Publish(slot, 0, 1);
      const Iova lo = base > start ? base : start;
      const Iova hi = base + size < end ? base + size : end;
      gather.AddLeaves(lo, hi - lo, static_cast<uint8_t>(1U << level));
      return Status::Ok();
    }
    // Break-before-make (Arm ARM D8.16.1): invalid entry, invalidate and wait, new entry.
    // Between break and make the whole block faults; the translations are otherwise
    // unchanged because the new table is equivalent.
    StoreDescriptor(slot, 0);
    Publish(slot, 0, 1);
    InvalidationRange broken;
    broken.iova = base;
    broken.size = size;
    broken.leaf_levels = static_cast<uint8_t>(1U << level);
    const Status s = flush_.Invalidate(broken);
    if (!s.ok()) {
      // The break is not known to be complete: keep the old block, drop the new table.
      StoreDescriptor(slot, d);
      Publish(slot, 0, 1);
      FreeSubtreeNow(split, level + 1);
      return s;
    }
    StoreDescriptor(slot, TableDescriptor(split));
    Publish(slot, 0, 1);
    return Status::Ok();
  }
}

Status PageTable::PrepareEdit(Iova iova, uint64_t size, Gather& gather) {
  DEVISO_TRY(CheckRange(iova, size));
  const Iova end = iova + size;
  bool cuts_block = false;
  DEVISO_TRY(CheckMapped(start_level_, Table(root_), iova, end, &cuts_block));
  if constexpr (!config::kBlockSplit) {
    // Splits are compiled out: the edit must cover whole leaves, or nothing changes.
    (void)gather;
    return cuts_block ? Status::NotSupported() : Status::Ok();
  } else {
    Reserve reserve;
    DEVISO_TRY(ReserveTables(CountSplits(iova, end), reserve));
    Status s = SplitAt(iova, iova, end, gather, reserve);
    if (s.ok()) s = SplitAt(end - 1, iova, end, gather, reserve);
    ReleaseReserve(reserve);  // only left over after a failed split
    return s;
  }
}

// ---------------------------------------------------------------------------------------------
// Unmap

void PageTable::RetireTable(Paddr table, Gather& gather) {
  // Chain through the first descriptor: a granule-aligned address has bit[0] clear, so a
  // walker still holding this table reads an invalid descriptor there.
  StoreDescriptor(Table(table), gather.freed_head_);
  gather.freed_head_ = table;
  ++gather.freed_count_;
}

void PageTable::RetireSubtree(uint64_t table_descriptor, unsigned table_level, Gather& gather) {
  const Paddr t = OutputAddress(table_descriptor);
  if (table_level < kMaxLevel) {
    const uint64_t* table = Table(t);
    const size_t n = Entries(table_level);
    for (size_t i = 0; i < n; ++i) {
      const uint64_t d = LoadDescriptor(&table[i]);
      if (ds::IsTable(d, table_level)) RetireSubtree(d, table_level + 1, gather);
    }
  }
  RetireTable(t, gather);
}

void PageTable::UnmapWalk(unsigned level, uint64_t* table, Iova start, Iova end, Gather& gather) {
  const unsigned shift = LevelShift(level);
  const uint64_t size = 1ULL << shift;
  const size_t first = Index(start, level);
  if (level == kMaxLevel) {
    const size_t n = static_cast<size_t>((end - start) >> shift);
    for (size_t i = 0; i < n; ++i) StoreDescriptor(&table[first + i], 0);
    Publish(table, first, n);
    gather.AddLeaves(start, end - start, 1U << kMaxLevel);
    return;
  }
  size_t idx = first;
  for (Iova cur = start; cur < end; ++idx) {
    const Iova entry_base = cur & ~(size - 1);
    const Iova chunk_end = entry_base + size < end ? entry_base + size : end;
    uint64_t* slot = &table[idx];
    const uint64_t d = LoadDescriptor(slot);
    const bool whole = cur == entry_base && chunk_end == entry_base + size;
    if (!ds::IsTable(d, level)) {
      DEVISO_ASSERT(whole && ds::IsLeaf(d, level));  // PrepareEdit split the edges
      StoreDescriptor(slot, 0);
      gather.AddLeaves(entry_base, size, static_cast<uint8_t>(1U << level));
    } else if (whole) {
      StoreDescriptor(slot, 0);
      RetireSubtree(d, level + 1, gather);
      gather.AddLeaves(entry_base, size, LevelsBelow(level));
      gather.AddTables(entry_base, size);
    } else {
      uint64_t* sub = Table(OutputAddress(d));
      UnmapWalk(level + 1, sub, cur, chunk_end, gather);
      bool empty = true;
      const size_t n = Entries(level + 1);
      for (size_t i = 0; i < n && empty; ++i) empty = !ds::IsValid(LoadDescriptor(&sub[i]));
      if (empty) {
        StoreDescriptor(slot, 0);
        RetireSubtree(d, level + 1, gather);
        // Walk caches are invalidated by address: any address in the removed table's span
        // drops what was cached through it, so the unmapped part of the span is enough (and
        // keeps a small unmap from widening into a whole-context invalidation).
        gather.AddTables(cur, chunk_end - cur);
      }
    }
    cur = chunk_end;
  }
  Publish(table, first, idx - first);
}

Status PageTable::Unmap(Iova iova, uint64_t size, Gather& gather) {
  DEVISO_TRY(PrepareEdit(iova, size, gather));
  UnmapWalk(start_level_, Table(root_), iova, iova + size, gather);
  return Status::Ok();
}

Status PageTable::Unmap(Iova iova, uint64_t size) {
  Gather gather;
  const Status s = Unmap(iova, size, gather);
  const Status synced = SyncOwned(gather);
  return s.ok() ? synced : s;
}

// ---------------------------------------------------------------------------------------------
// Protect

void PageTable::ProtectWalk(unsigned level, uint64_t* table, Iova start, Iova end, Perms perms,
                            Gather& gather) {
  const uint64_t size = LevelSize(level);
  const size_t first = Index(start, level);
  size_t idx = first;
  for (Iova cur = start; cur < end; ++idx) {
    const Iova entry_base = cur & ~(size - 1);
    const Iova chunk_end = entry_base + size < end ? entry_base + size : end;
    uint64_t* slot = &table[idx];
    const uint64_t d = LoadDescriptor(slot);
    if (ds::IsTable(d, level)) {
      ProtectWalk(level + 1, Table(OutputAddress(d)), cur, chunk_end, perms, gather);
    } else {
      DEVISO_ASSERT(ds::IsLeaf(d, level) && cur == entry_base && chunk_end == entry_base + size);
      StoreDescriptor(slot, WithPerms(d, perms));
      gather.AddLeaves(entry_base, size, static_cast<uint8_t>(1U << level));
    }
    cur = chunk_end;
  }
  Publish(table, first, idx - first);
}

Status PageTable::Protect(Iova iova, uint64_t size, Perms perms, Gather& gather) {
  if ((perms & kPermReadWrite) == 0 || (perms & ~kPermAll) != 0) {
    return Status::InvalidArgument();
  }
  if (!stage2() && (perms & kPermRead) == 0) {
    return Status::NotSupported();
  }
  DEVISO_TRY(PrepareEdit(iova, size, gather));
  ProtectWalk(start_level_, Table(root_), iova, iova + size, perms, gather);
  return Status::Ok();
}

Status PageTable::Protect(Iova iova, uint64_t size, Perms perms) {
  Gather gather;
  const Status s = Protect(iova, size, perms, gather);
  const Status synced = SyncOwned(gather);
  return s.ok() ? synced : s;
}

// ---------------------------------------------------------------------------------------------
// Sync

Status PageTable::Sync(Gather& gather) {
  if (gather.leaf_levels_ != 0 || gather.tables_) {
    DEVISO_TRY(flush_.Invalidate(gather.range()));
  }
  Paddr p = gather.freed_head_;
  for (size_t i = 0; i < gather.freed_count_; ++i) {
    const Paddr next = LoadDescriptor(Table(p));
    memory_.Free(p, 0);
    p = next;
  }
  gather = Gather();
  return Status::Ok();
}

Status PageTable::SyncOwned(Gather& gather) {
  // Fold in what an earlier failed sync left behind, so its tables are freed (and its range
  // invalidated) by this one.
  if (config::kOrphanRetry && !orphans_.empty()) {
    if (orphans_.start_ < orphans_.end_) {
      gather.AddLeaves(orphans_.start_, orphans_.end_ - orphans_.start_, orphans_.leaf_levels_);
    }
    gather.tables_ = gather.tables_ || orphans_.tables_;
    Paddr p = orphans_.freed_head_;
    for (size_t i = 0; i < orphans_.freed_count_; ++i) {
      const Paddr next = LoadDescriptor(Table(p));
      RetireTable(p, gather);
      p = next;
    }
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

Result<Mapping> PageTable::Lookup(Iova iova) const {
  if (!initialized_ || iova >= (1ULL << config_.ias)) return Status::InvalidArgument();
  unsigned level = start_level_;
  const uint64_t* table = Table(root_);
  for (;;) {
    const uint64_t d = LoadDescriptor(&table[Index(iova, level)]);
    if (ds::IsTable(d, level)) {
      table = Table(OutputAddress(d));
      ++level;
      continue;
    }
    if (!ds::IsLeaf(d, level)) return Status::NotFound();
    Mapping m;
    m.size = LevelSize(level);
    m.iova = iova & ~(m.size - 1);
    m.pa = OutputAddress(d);
    m.level = level;
    m.perms = DecodePerms(d);
    m.type = DecodeType(d);
    m.descriptor = d;
    return m;
  }
}

Result<Paddr> PageTable::IovaToPhys(Iova iova) const {
  DEVISO_ASSIGN_OR_RETURN(Mapping m, Lookup(iova));
  return m.pa + (iova - m.iova);
}

bool PageTable::Visit(unsigned level, const uint64_t* table, Iova base, MappingVisitor& v) const {
  const size_t n = Entries(level);
  const uint64_t size = LevelSize(level);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t d = LoadDescriptor(&table[i]);
    const Iova iova = base + i * size;
    if (ds::IsTable(d, level)) {
      if (!Visit(level + 1, Table(OutputAddress(d)), iova, v)) return false;
    } else if (ds::IsLeaf(d, level)) {
      Mapping m;
      m.iova = iova;
      m.pa = OutputAddress(d);
      m.size = size;
      m.level = level;
      m.perms = DecodePerms(d);
      m.type = DecodeType(d);
      m.descriptor = d;
      if (!v.Visit(m)) return false;
    }
  }
  return true;
}

void PageTable::ForEachMapping(MappingVisitor& visitor) const {
  if (initialized_) (void)Visit(start_level_, Table(root_), 0, visitor);
}

}  // namespace deviso::pgtable
