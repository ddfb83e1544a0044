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

#include <cstdint>

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

constexpr bool IsValid(uint64_t d) { return (d & kValid) != 0; }
// A table descriptor exists only below the leaf level (D8.3.1).
constexpr bool IsTable(uint64_t d, unsigned level) {
  return level < kMaxLevel && (d & kTypeMask) == kTypeTableOrPage;
}
constexpr bool IsLeaf(uint64_t d, unsigned level) {
  return level == kMaxLevel ? (d & kTypeMask) == kTypeTableOrPage : (d & kTypeMask) == kTypeBlock;
}

}  // namespace ds
}  // namespace deviso::pgtable

#endif  // DEVISO_SRC_PGTABLE_VMSAV8_64_H_
