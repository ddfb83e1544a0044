// VMSAv8-64 translation table descriptor formats.
//
// Every layout here is from the Arm Architecture Reference Manual for A-profile (DDI 0487),
// chapter D8 "The AArch64 Virtual Memory System Architecture":
//   D8.2  translation granules, lookup levels, concatenated stage 2 start-level tables
//   D8.3  descriptor formats (invalid, table, block, page)
//   D8.4  memory access control (AP[2:1], S2AP, PXN/UXN, XN[1:0])
//   D8.5  memory region attributes (AttrIndx/MAIR, stage 2 MemAttr[3:0], SH[1:0], AF)
// Only 48-bit output addresses are supported (no FEAT_LPA/LPA2 52-bit formats).

#ifndef DEVISO_SRC_PGTABLE_VMSAV8_64_H_
#define DEVISO_SRC_PGTABLE_VMSAV8_64_H_

#include <cstddef>
#include <cstdint>

#include "deviso/config.h"
#include "deviso/status.h"

namespace deviso::pgtable {

// Translation granule; the value is log2 of the granule size in bytes (D8.2).
enum class Granule : uint8_t {
  k4KiB = 12,
  k16KiB = 14,
  k64KiB = 16,
};

// Translation stage. Stage 1 and stage 2 descriptors differ in their attribute fields (D8.3.2).
enum class Stage : uint8_t {
  kStage1 = 1,
  kStage2 = 2,
};

// Access permissions requested for a mapping (bit mask; the values match the C ABI's).
using Perms = uint8_t;
inline constexpr Perms kPermRead = 1U << 0;
inline constexpr Perms kPermWrite = 1U << 1;
inline constexpr Perms kPermExec = 1U << 2;
inline constexpr Perms kPermReadWrite = kPermRead | kPermWrite;
inline constexpr Perms kPermAll = kPermRead | kPermWrite | kPermExec;

// Memory type of a mapping. Stage 1 reaches it through MAIR (Config::mair_index), stage 2
// encodes it directly in MemAttr[3:0].
enum class MemType : uint8_t {
  kNormalWriteBack = 0,  // Normal, Inner/Outer Write-Back cacheable, Inner Shareable
  kNormalNonCacheable,   // Normal, Inner/Outer Non-cacheable, Outer Shareable
  kDeviceNGnRE,          // Device-nGnRE
  kDeviceNGnRnE,         // Device-nGnRnE
};
inline constexpr unsigned kMemTypeCount = 4;

// MAIR attribute encodings (D19.2 MAIR_EL1; also the SMMU CD.MAIR field, IHI0070 5.4).
inline constexpr uint8_t kMairDeviceNGnRnE = 0x00;
inline constexpr uint8_t kMairDeviceNGnRE = 0x04;
inline constexpr uint8_t kMairNormalNonCacheable = 0x44;
inline constexpr uint8_t kMairNormalWriteBack = 0xff;  // RW-allocate, non-transient

// Lookup levels 0..3. A 4 KiB granule may start at level 0; the leaf level is always 3.
inline constexpr unsigned kMaxLevel = 3;
inline constexpr unsigned kLevelCount = 4;

namespace ds {

// D8.3.1: bit[0] is the valid bit; bit[1] distinguishes table (levels 0-2) or page (level 3)
// from block (levels 1-2). At level 3, bit[1] == 0 with bit[0] == 1 is reserved (invalid).
inline constexpr uint64_t kValid = 1ULL << 0;
inline constexpr uint64_t kTableOrPage = 1ULL << 1;
inline constexpr uint64_t kTypeMask = kValid | kTableOrPage;
inline constexpr uint64_t kTypeBlock = kValid;
inline constexpr uint64_t kTypeTableOrPage = kValid | kTableOrPage;

// Output address / next-level table address: bits [47:granule_shift] (D8.3.1, 48-bit OA).
inline constexpr unsigned kOaTopBit = 47;
constexpr uint64_t AddressMask(unsigned granule_shift) {
  return ((1ULL << (kOaTopBit + 1)) - 1) & ~((1ULL << granule_shift) - 1);
}

// Lower attributes of block and page descriptors (D8.3.2).
namespace s1 {
inline constexpr unsigned kAttrIndxShift = 2;  // AttrIndx[2:0], bits [4:2]
inline constexpr uint64_t kAttrIndxMask = 0x7ULL << kAttrIndxShift;
inline constexpr uint64_t kNs = 1ULL << 5;        // NS
inline constexpr uint64_t kApEl0 = 1ULL << 6;     // AP[1]: EL0 (unprivileged) access
inline constexpr uint64_t kApRdOnly = 1ULL << 7;  // AP[2]: read-only
inline constexpr uint64_t kNg = 1ULL << 11;       // nG: not global, tagged with the ASID
inline constexpr uint64_t kPxn = 1ULL << 53;      // PXN: privileged execute-never
inline constexpr uint64_t kUxn = 1ULL << 54;      // UXN (XN at EL2/EL3)
}  // namespace s1

namespace s2 {
inline constexpr unsigned kMemAttrShift = 2;  // MemAttr[3:0], bits [5:2]
inline constexpr uint64_t kMemAttrMask = 0xfULL << kMemAttrShift;
inline constexpr uint64_t kS2apRead = 1ULL << 6;   // S2AP[0]
inline constexpr uint64_t kS2apWrite = 1ULL << 7;  // S2AP[1]
inline constexpr uint64_t kXn = 1ULL << 54;        // XN[1]: execute-never at EL1 and EL0
inline constexpr uint64_t kXn0 = 1ULL << 53;       // XN[0] (FEAT_XNX); kept zero
// MemAttr[3:0] encodings (D8.5.5, with FWB disabled).
inline constexpr uint64_t kMemAttrDeviceNGnRnE = 0x0;
inline constexpr uint64_t kMemAttrDeviceNGnRE = 0x1;
inline constexpr uint64_t kMemAttrNormalNonCacheable = 0x5;  // Outer NC, Inner NC
inline constexpr uint64_t kMemAttrNormalWriteBack = 0xf;     // Outer WB, Inner WB
}  // namespace s2

inline constexpr unsigned kShShift = 8;  // SH[1:0], bits [9:8]
inline constexpr uint64_t kShMask = 0x3ULL << kShShift;
inline constexpr uint64_t kShNone = 0x0ULL << kShShift;
inline constexpr uint64_t kShOuter = 0x2ULL << kShShift;
inline constexpr uint64_t kShInner = 0x3ULL << kShShift;
inline constexpr uint64_t kAf = 1ULL << 10;          // Access flag
inline constexpr uint64_t kContiguous = 1ULL << 52;  // Contiguous hint; never set here
// nT, block descriptors only (FEAT_BBM, Arm ARM D8.3.2; IHI0070 3.21.1.1): the block translates
// but is not cached in a way that can conflict with other TLB entries. Set only for the length
// of a level 1 split (Config::bbml1).
inline constexpr uint64_t kNt = 1ULL << 16;

constexpr bool IsValid(uint64_t d) { return (d & kValid) != 0; }
// A table descriptor exists only below the leaf level (D8.3.1).
constexpr bool IsTable(uint64_t d, unsigned level) {
  return level < kMaxLevel && (d & kTypeMask) == kTypeTableOrPage;
}
constexpr bool IsLeaf(uint64_t d, unsigned level) {
  return level == kMaxLevel ? (d & kTypeMask) == kTypeTableOrPage : (d & kTypeMask) == kTypeBlock;
}

}  // namespace ds

using Paddr = uint64_t;  // physical (output) address
using Iova = uint64_t;   // input address: IOVA, IPA or VA, depending on the walker

// One VMSAv8-64 descriptor (D8.3), typed: the engine asks it questions instead of masking.
class Pte {
 public:
  constexpr Pte() = default;
  constexpr explicit Pte(uint64_t raw) : raw_(raw) {}
  constexpr uint64_t raw() const { return raw_; }
  constexpr bool valid() const { return ds::IsValid(raw_); }
  constexpr bool IsTable(unsigned level) const { return ds::IsTable(raw_, level); }
  constexpr bool IsLeaf(unsigned level) const { return ds::IsLeaf(raw_, level); }

 private:
  uint64_t raw_ = 0;
};

// Per-use configuration of a VMSAv8-64 table. Use the named constructors; they encode the
// attribute policy.
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
  // True when the walker supports FEAT_BBM level 1 (SMMU IDR3.BBML == 1) and bbml2 is false:
  // a block is split without a break through the nT bit, the procedure of IHI0070 3.21.1.2
  // (block rewritten with nT = 1, invalidation of the block and wait, the equivalent table,
  // invalidation of the block's range with the caller's). No address faults meanwhile.
  bool bbml1 = false;
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

// The VMSAv8-64 descriptor format (named Vmsav8: the AArch64 one), the first format of the
// translation-table engine (PageTableT<Format>, pgtable.h). A format supplies what differs between
// architectures, as Linux's generic_pt formats do: the configuration and the geometry it implies
// (levels, entries per table, index bits, start level, concatenated roots), which leaf sizes exist,
// and how leaf and table entries are encoded and decoded. The engine supplies the one walk,
// the prepare/commit discipline, the per-table counts, the splits and the invalidation
// bookkeeping. Levels are numbered 0..kMaxLevel with kMaxLevel the page level; a format
// whose hardware counts levels the other way (VT-d) maps its levels onto this numbering.
class Vmsav8 {
 public:
  using Config = pgtable::Config;
  using Pte = pgtable::Pte;
  static constexpr unsigned kMaxLevel = pgtable::kMaxLevel;
  static constexpr unsigned kLevelCount = pgtable::kLevelCount;

  // Validates `c` and derives the geometry (D8.2). Errors: -EINVAL (bad configuration),
  // -ENOTSUP (a stage or granule compiled out: DEVISO_CONFIG_STAGE2, _GRANULE_16K_64K).
  Status Init(const Config& c);
  const Config& config() const { return config_; }

  // Geometry. The granule's shift and stride are constants when only 4 KiB is built.
  unsigned granule_shift() const {
    if constexpr (config::kGranule16K64K) {
      return granule_shift_;
    } else {
      return static_cast<unsigned>(Granule::k4KiB);
    }
  }
  unsigned stride() const {  // index bits per level
    if constexpr (config::kGranule16K64K) {
      return granule_shift_ - 3;
    } else {
      return static_cast<unsigned>(Granule::k4KiB) - 3;
    }
  }
  unsigned start_level() const { return start_level_; }
  unsigned root_order() const { return root_order_; }  // log2 of concatenated root tables
  size_t root_entries() const { return root_entries_; }
  unsigned input_bits() const { return config_.ias; }
  unsigned output_bits() const { return config_.oas; }
  unsigned LevelShift(unsigned level) const {
    return granule_shift() + stride() * (kMaxLevel - level);
  }
  size_t Entries(unsigned level) const {
    return level == start_level_ ? root_entries_ : (size_t{1} << stride());
  }
  size_t Index(Iova iova, unsigned level) const {
    return static_cast<size_t>(iova >> LevelShift(level)) & (Entries(level) - 1);
  }
  // True when a leaf at `level` is a block (or page) this configuration may create.
  bool LeafAllowed(unsigned level) const {
    return level >= min_leaf_level_ && level <= kMaxLevel && level >= start_level_;
  }
  bool stage2() const { return config::kStage2 && config_.stage == Stage::kStage2; }

  // Checks a request's permissions and type. Errors: -EINVAL (no read or write, unknown
  // bits or type), -ENOTSUP (stage 1 write-only: AP[2:1] cannot express it, D8.4.1).
  Status CheckAccess(Perms perms, MemType type) const;

  // Encoding (D8.3.2, D8.4, D8.5). A leaf is its output address ORed with attributes; the
  // attributes of a page are computed once per call (LeafAttrs) and adapted per level.
  uint64_t LeafAttrs(Perms perms, MemType type) const;
  static constexpr uint64_t AttrsAt(uint64_t page_attrs, unsigned level) {
    return level == kMaxLevel ? page_attrs : page_attrs & ~ds::kTableOrPage;
  }
  // The page attributes of an existing leaf (for a split: the same translation, one level down).
  uint64_t AttrsOf(Pte leaf) const {
    return (leaf.raw() & ~(oa_mask_ | ds::kTypeMask)) | ds::kTypeTableOrPage;
  }
  static constexpr Pte Leaf(Paddr pa, uint64_t attrs_at_level) { return Pte(pa | attrs_at_level); }
  static constexpr Pte TableEntry(Paddr table) { return Pte(table | ds::kTypeTableOrPage); }
  Paddr OutputAddress(Pte d) const { return d.raw() & oa_mask_; }
  static bool IsTable(Pte d, unsigned level) { return d.IsTable(level); }
  static bool IsLeaf(Pte d, unsigned level) { return d.IsLeaf(level); }
  Perms DecodePerms(Pte pte) const;
  MemType DecodeType(Pte pte) const;
  // The same leaf with other permissions (no break-before-make needed, D8.16.1).
  Pte WithPerms(Pte pte, Perms perms) const;

 private:
  Config config_;
  unsigned granule_shift_ = 12;
  unsigned start_level_ = 0;
  unsigned root_order_ = 0;
  size_t root_entries_ = 0;
  unsigned min_leaf_level_ = kMaxLevel;
  uint64_t oa_mask_ = 0;
};

}  // namespace deviso::pgtable

#endif  // DEVISO_SRC_PGTABLE_VMSAV8_64_H_
