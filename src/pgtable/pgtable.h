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

using Paddr = uint64_t;  // physical (output) address
using Iova = uint64_t;   // input address: IOVA, IPA or VA, depending on the walker

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
  // The CPU pointer through which the engine reads and writes the table at `table`.
  virtual uint64_t* PhysToVirt(Paddr table) = 0;
  // Cleans [p, p + bytes) to the point of coherency. Called only when Config::coherent_walker
  // is false, after the engine has written descriptors the walker must see.
  virtual void CleanToPoc(const void* p, size_t bytes) = 0;
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
  bool empty() const { return leaf_levels_ == 0 && !tables_ && freed_count_ == 0; }
  // The union of everything gathered (over-approximating disjoint ranges).
  InvalidationRange range() const;
  size_t freed_tables() const { return freed_count_; }

 private:
  friend class PageTable;
  void AddLeaves(Iova iova, uint64_t size, uint8_t levels);
  void AddTables(Iova iova, uint64_t size);

  Iova start_ = ~0ULL;
  Iova end_ = 0;  // exclusive; may be 2^64 - wrap-free because IAS <= 48
  uint8_t leaf_levels_ = 0;
  bool tables_ = false;
  // Tables removed from the tree, chained through their first descriptor (a granule-aligned
  // address has bit[0] clear, so a walker that still holds the table reads an invalid entry).
  Paddr freed_head_ = 0;
  size_t freed_count_ = 0;
};

// Per-use configuration. Use the named constructors; they encode the attribute policy.
struct Config {
  Stage stage = Stage::kStage1;
  Granule granule = Granule::k4KiB;
  uint8_t ias = 48;  // input address bits, 32..48
  uint8_t oas = 48;  // output address bits: 32, 36, 40, 42, 44 or 48
  // Stage 1 policy (D8.4): AP[1] grants EL0 access. An SMMU's stage 1 needs it because PCIe
  // transactions are unprivileged; the CPU's kernel tables must not set it.
  bool unprivileged = true;
  // Stage 1: nG=1 tags entries with the context's ASID (SMMU contexts); nG=0 for the CPU's
  // global kernel mappings.
  bool not_global = true;
  // False when the walker does not snoop CPU caches (SMMU IDR0.COHACC=0 or a non-coherent
  // DMA path): every descriptor write is then cleaned to PoC through TableMemory::CleanToPoc.
  bool coherent_walker = true;
  // True when the walker may see a block replaced by an equivalent table without a break
  // (SMMU IDR3.BBML == 2, Arm ARM FEAT_BBM level 2). False: break-before-make.
  bool bbml2 = false;
  // The largest leaf level allowed (numerically smallest). kMaxLevel forces pages only.
  // Default 0 means "the largest block the granule has".
  unsigned min_leaf_level = 0;
  // Stage 1: MAIR index per MemType (must match the MAIR the walker is given).
  uint8_t mair_index[kMemTypeCount] = {1, 2, 3, 0};

  // The MAIR value that matches the default mair_index.
  static constexpr uint64_t kDefaultMair =
      (uint64_t{kMairDeviceNGnRnE} << 0) | (uint64_t{kMairNormalWriteBack} << 8) |
      (uint64_t{kMairNormalNonCacheable} << 16) | (uint64_t{kMairDeviceNGnRE} << 24);

  static Config SmmuStage1(Granule g, uint8_t ias, uint8_t oas, bool coherent);
  static Config SmmuStage2(Granule g, uint8_t ias, uint8_t oas, bool coherent);
  static Config CpuKernel(Granule g, uint8_t ias, uint8_t oas);
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

class PageTable {
 public:
  // `memory` and `flush` must outlive the table. Call Init() before anything else.
  PageTable(const Config& config, TableMemory& memory, TlbFlush& flush);
  // Frees every table (see Release()).
  ~PageTable();
  PageTable(const PageTable&) = delete;
  PageTable& operator=(const PageTable&) = delete;

  // Validates the configuration and allocates the (possibly concatenated) start-level table.
  // Errors: -EINVAL (bad config; also a second Init), -ENOTSUP (a stage or granule compiled
  // out: DEVISO_CONFIG_STAGE2, DEVISO_CONFIG_GRANULE_16K_64K), -ENOMEM.
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
  unsigned start_level() const { return start_level_; }
  // Number of concatenated start-level tables (stage 2; 1 otherwise).
  unsigned root_tables() const { return 1U << root_order_; }
  uint64_t page_size() const { return 1ULL << granule_shift(); }
  // Size of the region one entry at `level` maps.
  uint64_t LevelSize(unsigned level) const { return 1ULL << LevelShift(level); }
  // True when a leaf at `level` is a block (or page) this configuration may create.
  bool LeafAllowed(unsigned level) const;

 private:
  struct Reserve;
  struct MapArgs;

  // The granule's geometry: run-time values, or constants when only 4 KiB is built.
  unsigned granule_shift() const {
    if constexpr (config::kGranule16K64K) {
      return granule_shift_;
    } else {
      return static_cast<unsigned>(Granule::k4KiB);
    }
  }
  unsigned stride() const {  // index bits per level
    if constexpr (config::kGranule16K64K) {
      return stride_;
    } else {
      return static_cast<unsigned>(Granule::k4KiB) - 3;
    }
  }
  bool stage2() const { return config::kStage2 && config_.stage == Stage::kStage2; }
  unsigned LevelShift(unsigned level) const {
    return granule_shift() + stride() * (kMaxLevel - level);
  }
  size_t Entries(unsigned level) const {
    return level == start_level_ ? root_entries_ : (size_t{1} << stride());
  }
  size_t Index(Iova iova, unsigned level) const {
    return static_cast<size_t>(iova >> LevelShift(level)) & (Entries(level) - 1);
  }
  uint64_t* Table(Paddr pa) const { return memory_.PhysToVirt(pa); }

  Status CheckRange(Iova iova, uint64_t size) const;
  uint64_t LeafDescriptor(Paddr pa, unsigned level, Perms perms, MemType type) const;
  uint64_t TableDescriptor(Paddr table) const { return table | ds::kTypeTableOrPage; }
  Paddr OutputAddress(uint64_t d) const { return d & oa_mask_; }
  Perms DecodePerms(uint64_t d) const;
  MemType DecodeType(uint64_t d) const;
  uint64_t WithPerms(uint64_t d, Perms perms) const;

  template <bool kCommit>
  Status MapWalk(const MapArgs& a, unsigned level, uint64_t* table, bool fresh, Iova start,
                 Iova end, Reserve& reserve);
  Status CheckMapped(unsigned level, const uint64_t* table, Iova start, Iova end,
                     bool* cuts_block) const;
  size_t SplitTablesNeeded(unsigned level, Iova entry_base, Iova start, Iova end) const;
  size_t CountSplits(Iova start, Iova end) const;
  Status SplitAt(Iova addr, Iova start, Iova end, Gather& gather, Reserve& reserve);
  Status PrepareEdit(Iova iova, uint64_t size, Gather& gather);
  Paddr BuildSplit(uint64_t block, unsigned level, Iova entry_base, Iova start, Iova end,
                   Reserve& reserve);
  void UnmapWalk(unsigned level, uint64_t* table, Iova start, Iova end, Gather& gather);
  void ProtectWalk(unsigned level, uint64_t* table, Iova start, Iova end, Perms perms,
                   Gather& gather);
  void RetireSubtree(uint64_t table_descriptor, unsigned table_level, Gather& gather);
  void RetireTable(Paddr table, Gather& gather);
  void FreeSubtreeNow(Paddr table, unsigned level);
  bool Visit(unsigned level, const uint64_t* table, Iova base, MappingVisitor& v) const;
  void Publish(uint64_t* table, size_t first, size_t count) const;
  Status ReserveTables(size_t count, Reserve& reserve);
  void ReleaseReserve(Reserve& reserve);
  Paddr TakeTable(Reserve& reserve);
  Status SyncOwned(Gather& gather);

  Config config_;
  TableMemory& memory_;
  TlbFlush& flush_;
  unsigned granule_shift_ = 0;  // read through granule_shift() and stride()
  unsigned stride_ = 0;
  unsigned start_level_ = 0;
  unsigned root_order_ = 0;
  size_t root_entries_ = 0;
  unsigned min_leaf_level_ = kMaxLevel;
  uint64_t oa_mask_ = 0;
  Paddr root_ = 0;
  bool initialized_ = false;
  // Freed tables whose invalidation failed in an overload without a gather.
  Gather orphans_;
};

}  // namespace deviso::pgtable

#endif  // DEVISO_SRC_PGTABLE_PGTABLE_H_
