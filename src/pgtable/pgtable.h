// The VMSAv8-64 translation-table engine.
//
// Builds and edits Arm VMSAv8-64 long-descriptor translation tables (Arm ARM D8) for a walker
// that is not this CPU's business: an SMMU's stage 1 or stage 2, or the CPU's own MMU. Like
// Linux's io-pgtable, it knows nothing of the IOMMU: it reaches table memory through
// TableMemory and reports what must be invalidated through TlbFlush.
//
// Guarantees:
//   * No heap. Every table comes from TableMemory, whose capacity the caller fixes.
//   * No partial failure. Map, Unmap and Protect first reserve every table they will need
//     (prepare), then write (commit, which cannot fail for lack of memory). On any error
//     returned before the commit the tables are byte-for-byte as before.
//   * Architectural write rules: descriptors are written with single-copy-atomic 64-bit
//     stores; a new table is fully written, cleaned (non-coherent walkers) and fenced before
//     the descriptor that links it is written; a block is split break-before-make unless the
//     configuration says the walker tolerates a direct block->table replacement (BBML2).
//   * A table that leaves the tree goes back to TableMemory only after the invalidation that
//     covers walks through it has completed (Sync()).
//
// Cost model (docs/pgtable.md): every call walks once from the root down to the lowest table
// that holds its whole range, keeping that position; a check pass then a write pass run from
// there. Per-table counts (valid entries, wholly mapped entries) kept beside the tables make
// "is this table empty" and "is this whole subtree mapped" O(1), so an unmap frees empty
// tables without scanning them and refuses (-ENOENT) or removes a whole subtree without
// reading its leaves. Tables are reserved only when the check pass counted some.
//
// The engine is PageTableT<Format>: one walk, one format per architecture. PageTable is the
// VMSAv8-64 instance (vmsav8_64.h); a second format (VT-d second level) adds a format class.
//
// Not internally locked: the caller serialises every call on one PageTable (a context lock).
// Lookups may run concurrently with each other, not with a modifying call.
//
// Build-time options (deviso/config.h) that shrink the engine; each refuses what it leaves out:
//   DEVISO_CONFIG_STAGE2=OFF           Init() of a stage 2 table: -ENOTSUP.
//   DEVISO_CONFIG_GRANULE_16K_64K=OFF  Init() with a 16 KiB or 64 KiB granule: -ENOTSUP; the
//                                      granule geometry is then a compile-time constant.
//   DEVISO_CONFIG_BLOCK_SPLIT=OFF      Unmap/Protect whose range starts or ends inside a block:
//                                      -ENOTSUP, nothing changes.
//   DEVISO_CONFIG_ORPHAN_RETRY=OFF     tables whose invalidation failed (overloads without a
//                                      gather) are never freed, instead of retried.

#ifndef DEVISO_SRC_PGTABLE_PGTABLE_H_
#define DEVISO_SRC_PGTABLE_PGTABLE_H_

#include <cstddef>
#include <cstdint>

#include "deviso/config.h"
#include "deviso/status.h"
#include "pgtable/vmsav8_64.h"

namespace deviso::pgtable {

// Per-table bookkeeping the engine keeps beside every table it owns (never in the table: a
// walker reads every descriptor bit the hardware does not ignore). TablePool holds one per
// granule in a side array; while a granule is free the pool keeps its free-list link there.
struct TableCounts {
  uint16_t valid;   // entries that are not invalid
  uint16_t full;    // entries wholly mapped: leaves, and tables whose entries are all full
  uint16_t tables;  // entries that are table descriptors
};

// Where a TableMemory keeps its tables: one linear window, so the engine turns a table's
// physical address into a pointer with one addition (no call per level), and the counts
// side array, one TableCounts per granule of the window.
struct TableLayout {
  Paddr pa = 0;             // physical address of the window's first granule
  uint8_t* virt = nullptr;  // CPU address of the same byte
  uint64_t bytes = 0;
  unsigned granule_shift = 0;
  TableCounts* counts = nullptr;  // counts[(table - pa) >> granule_shift]
};

// The engine's only access to table memory. A host test implements it over host memory with
// made-up physical addresses; the bare-metal port over a static pool with identity addresses.
class TableMemory {
 public:
  virtual ~TableMemory() = default;

  // Returns the physical address of 2^order contiguous granules, aligned to their total size.
  // Contents are undefined (the engine zeroes what it uses). Errors: -ENOMEM.
  virtual Result<Paddr> Allocate(unsigned order) = 0;
  // Returns granules obtained from Allocate(order). Never called for memory a walker may hold.
  virtual void Free(Paddr table, unsigned order) = 0;
  // The CPU pointer through which the table at `table` is read and written (tests, tools; the
  // engine itself translates through layout()).
  virtual uint64_t* PhysToVirt(Paddr table) = 0;
  // Cleans [p, p + bytes) to the point of coherency. Called only when Config::coherent_walker
  // is false, after the engine has written descriptors the walker must see.
  virtual void CleanToPoc(const void* p, size_t bytes) = 0;
  // The window every table Allocate() returns lies in, and its counts array. Read once, by
  // PageTableT::Init(); a memory that wraps another (a locking decorator) forwards it.
  virtual TableLayout layout() const = 0;
};

// What a walker may have cached that must now be discarded.
struct InvalidationRange {
  Iova iova = 0;
  uint64_t size = 0;
  // Bit L set: leaf (block or page) entries at level L changed in the range. Exactly one bit
  // set allows a TTL hint; several bits mean "any level".
  uint8_t leaf_levels = 0;
  // Table descriptors were removed in the range: walk caches must be invalidated too
  // (e.g. SMMU CMD_TLBI_NH_VA with Leaf=0). The range then holds at least one address of
  // each removed table's span, which is what an invalidation by address needs.
  bool tables = false;
};

// The TLB-maintenance seam. Invalidate must not return before the invalidation has completed
// (e.g. SMMU TLBI + CMD_SYNC observed). A non-OK status means completion is not known.
class TlbFlush {
 public:
  virtual ~TlbFlush() = default;
  virtual Status Invalidate(const InvalidationRange& range) = 0;
};

// Invalidations and freed tables gathered over one or more operations, so a caller can issue
// one batched invalidation. PageTable::Sync() performs it and then releases the tables.
class Gather {
 public:
  bool empty() const { return leaf_levels_ == 0 && !tables_ && freed_subtrees_ == 0; }
  // The union of everything gathered (over-approximating disjoint ranges).
  InvalidationRange range() const;
  // Tables waiting for the invalidation (every table of every removed subtree).
  size_t freed_tables() const { return freed_count_; }

 private:
  template <class Format>
  friend class PageTableT;
  void AddLeaves(Iova iova, uint64_t size, uint8_t levels);
  void AddTables(Iova iova, uint64_t size);

  Iova start_ = ~0ULL;
  Iova end_ = 0;  // exclusive; may be 2^64 - wrap-free because IAS <= 48
  uint8_t leaf_levels_ = 0;
  bool tables_ = false;
  // Subtrees removed from the tree, chained through the first descriptor of each subtree's
  // top table (a granule-aligned address with the level in bits [2:1] and bit[0] clear, so a
  // walker that still holds the table reads an invalid entry there). The rest of a subtree is
  // reached through its tables at Sync(): removing 1 GiB of pages writes one link, not 513.
  Paddr freed_head_ = 0;
  size_t freed_subtrees_ = 0;
  size_t freed_count_ = 0;
};

// One leaf mapping, as reported by Lookup() and ForEachMapping().
struct Mapping {
  Iova iova = 0;
  Paddr pa = 0;
  uint64_t size = 0;  // of the whole leaf entry
  unsigned level = 0;
  Perms perms = 0;
  MemType type = MemType::kNormalWriteBack;
  uint64_t descriptor = 0;
};

class MappingVisitor {
 public:
  virtual ~MappingVisitor() = default;
  // Return false to stop the walk.
  virtual bool Visit(const Mapping& m) = 0;
};

template <class Format>
class PageTableT {
 public:
  using Config = typename Format::Config;
  using Pte = typename Format::Pte;

  // `memory` and `flush` must outlive the table. Call Init() before anything else.
  PageTableT(const Config& config, TableMemory& memory, TlbFlush& flush);
  // Frees every table (see Release()).
  ~PageTableT();
  PageTableT(const PageTableT&) = delete;
  PageTableT& operator=(const PageTableT&) = delete;

  // Validates the configuration and allocates the (possibly concatenated) start-level table.
  // Errors: -EINVAL (bad config; also a second Init; a memory without counts or whose granule
  // is not the table's), -ENOTSUP (a stage or granule compiled out: DEVISO_CONFIG_STAGE2,
  // DEVISO_CONFIG_GRANULE_16K_64K), -ENOMEM.
  Status Init();
  // Frees every table immediately. Only for when no walker can use the table any more (the
  // stream was returned to abort/bypass and invalidated). Pending frees are released too.
  void Release();

  // Maps [iova, iova + size) to [pa, pa + size) with the largest leaves that alignment and
  // size allow. No invalidation is needed: only invalid entries are written.
  // Errors, with no change: -EINVAL (unaligned iova/pa/size, size 0, wrap, iova beyond IAS,
  // pa beyond OAS, perms without read or write, stage 1 write-only which it cannot express:
  // -ENOTSUP), -EEXIST (any part already mapped), -ENOMEM (pool exhausted).
  Status Map(Iova iova, Paddr pa, uint64_t size, Perms perms, MemType type);

  // Unmaps [iova, iova + size). A block partly inside the range is split into an equivalent
  // table first (break-before-make, or direct with bbml2), so any granule-aligned part of a
  // mapping can be unmapped. Tables that become empty leave the tree.
  // The range must be mapped entirely: a range with any unmapped granule is refused with
  // -ENOENT and nothing changes. Other errors, with no change: -EINVAL (as Map), -ENOMEM
  // (tables for a split), -ENOTSUP (built without block splits, DEVISO_CONFIG_BLOCK_SPLIT=OFF,
  // and the range starts or ends inside a block: unmap whole blocks; -ENOENT comes first).
  // If a break-before-make invalidation fails its error is returned; the block is restored,
  // and a split done earlier in the call stays (an equivalent table).
  // Leaf and table changes, and freed tables, go to `gather`: call Sync() before relying on
  // the unmap. The overload without a gather does that itself.
  Status Unmap(Iova iova, uint64_t size, Gather& gather);
  Status Unmap(Iova iova, uint64_t size);

  // Replaces the permissions of every mapping in [iova, iova + size), splitting blocks at the
  // edges as Unmap does. Errors and no-change rules as Unmap (-ENOENT if any part unmapped;
  // -ENOTSUP for a range inside a block when splits are compiled out).
  Status Protect(Iova iova, uint64_t size, Perms perms, Gather& gather);
  Status Protect(Iova iova, uint64_t size, Perms perms);

  // Invalidates what `gather` holds, waits for it, then frees its tables. On failure the
  // gather keeps everything (tables stay allocated: a walker may still hold them) and the
  // error from TlbFlush is returned, so the caller may escalate and call Sync() again.
  // The overloads of Unmap/Protect without a gather keep a failed sync's tables and retry them
  // with their next sync; built with DEVISO_CONFIG_ORPHAN_RETRY=OFF they never free them.
  Status Sync(Gather& gather);

  // Errors: -EINVAL (iova beyond IAS), -ENOENT (not mapped).
  Result<Paddr> IovaToPhys(Iova iova) const;
  Result<Mapping> Lookup(Iova iova) const;
  // Visits every leaf in ascending IOVA order.
  void ForEachMapping(MappingVisitor& visitor) const;

  // Geometry, for programming the walker (TTBR/CD.TTB0, T0SZ, SL0).
  const Config& config() const { return config_; }
  Paddr root() const { return root_; }
  unsigned start_level() const { return fmt_.start_level(); }
  // Number of concatenated start-level tables (stage 2; 1 otherwise).
  unsigned root_tables() const { return 1U << fmt_.root_order(); }
  uint64_t page_size() const { return 1ULL << fmt_.granule_shift(); }
  // Size of the region one entry at `level` maps.
  uint64_t LevelSize(unsigned level) const { return 1ULL << fmt_.LevelShift(level); }
  // True when a leaf at `level` is a block (or page) this configuration may create.
  bool LeafAllowed(unsigned level) const { return fmt_.LeafAllowed(level); }

 private:
  static constexpr unsigned kMax = Format::kMaxLevel;
  struct Reserve;
  struct MapArgs;
  struct Path;

  // Table memory through the layout: one addition, checked only in debug builds.
  uint64_t* Table(Paddr pa) const;
  TableCounts& Counts(unsigned level, Paddr table) const;
  bool Full(unsigned level, Paddr table) const {
    return Counts(level, table).full == fmt_.Entries(level);
  }

  Status CheckRange(Iova iova, uint64_t size) const;
  void Descend(Iova start, Iova end, Path& path) const;
  Status MapCheck(const MapArgs& a, unsigned level, const uint64_t* table, Paddr table_pa,
                  Iova start, Iova end, size_t& needed) const;
  size_t FreshTables(const MapArgs& a, unsigned level, Iova start, Iova end) const;
  void MapCommit(const MapArgs& a, unsigned level, uint64_t* table, Paddr table_pa, bool fresh,
                 Iova start, Iova end, Reserve& reserve);
  void PropagateFull(const Path& path, bool was_full);
  Status EditCheck(unsigned level, const uint64_t* table, Paddr table_pa, Iova start, Iova end,
                   size_t& splits, bool& cuts_block) const;
  Status PrepareEdit(Iova iova, uint64_t size, Gather& gather, Path& path);
  Status PrepareEditFrom(Iova iova, uint64_t size, Gather& gather, Path& path);
  size_t SplitTablesNeeded(unsigned level, Iova entry_base, Iova start, Iova end) const;
  Status SplitAt(Iova addr, Iova start, Iova end, Gather& gather, Reserve& reserve);
  Paddr BuildSplit(Pte block, unsigned level, Iova entry_base, Iova start, Iova end,
                   Reserve& reserve);
  void UnmapCommit(unsigned level, uint64_t* table, Paddr table_pa, Iova start, Iova end,
                   Gather& gather);
  void Collapse(const Path& path, bool was_full, Iova start, Iova end, Gather& gather);
  void ProtectWalk(unsigned level, uint64_t* table, Iova start, Iova end, Perms perms,
                   Gather& gather);
  size_t CountTables(Paddr table, unsigned level) const;
  void RetireSubtree(Paddr table, unsigned level, Gather& gather);
  void Chain(Paddr table, unsigned level, Gather& gather);
  void FreeRetired(Paddr table, unsigned level);
  void FreeSubtreeNow(Paddr table, unsigned level);
  bool Visit(unsigned level, const uint64_t* table, Iova base, MappingVisitor& v) const;
  void Publish(uint64_t* table, size_t first, size_t count) const;
  Status ReserveTables(size_t count, Reserve& reserve);
  void ReleaseReserve(Reserve& reserve);
  Paddr TakeTable(Reserve& reserve);
  Status SyncOwned(Gather& gather);
  Mapping MakeMapping(Pte d, Iova iova, unsigned level) const;
  Pte LeafOf(Iova iova, unsigned* level) const;

  Config config_;
  Format fmt_;
  TableMemory& memory_;
  TlbFlush& flush_;
  // From memory_.layout(), read once by Init().
  Paddr window_pa_ = 0;
  uint64_t window_bytes_ = 0;
  uintptr_t window_delta_ = 0;  // CPU address - physical address
  TableCounts* counts_ = nullptr;
  // The root's counts (it is never freed, and a concatenated root may hold more entries than
  // a TableCounts field counts, so its own are kept here and never relied on).
  mutable TableCounts root_counts_ = {0, 0, 0};
  Paddr root_ = 0;
  bool initialized_ = false;
  // Freed tables whose invalidation failed in an overload without a gather.
  Gather orphans_;
};

extern template class PageTableT<Vmsav8>;

// The VMSAv8-64 translation table (Arm ARM D8): stage 1 and stage 2, 4/16/64 KiB granules.
using PageTable = PageTableT<Vmsav8>;

}  // namespace deviso::pgtable

#endif  // DEVISO_SRC_PGTABLE_PGTABLE_H_
