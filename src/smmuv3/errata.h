// Implementation errata of Arm SMMUv3 parts, keyed by SMMU_IIDR (IHI0070 6.3: ProductID
// [31:20], Variant [19:16], Revision [15:12], Implementer [11:0]).
//
// The table holds every MMU-600 and MMU-700 erratum that Linux's arm-smmu-v3 driver acts on
// (arm_smmu_device_iidr_probe; Documentation/arch/arm64/silicon-errata.rst). For each entry it
// states what deviso does: a workaround the driver enables on an affected part, or why deviso
// needs none (it never uses the feature the erratum affects). The driver matches its IIDR at
// Probe() and reports the result (Smmuv3::errata()); docs/smmuv3.md lists the table.

#ifndef DEVISO_SRC_SMMUV3_ERRATA_H_
#define DEVISO_SRC_SMMUV3_ERRATA_H_

#include <cstddef>
#include <cstdint>

namespace deviso::smmuv3 {

// JEP106 code of Arm in SMMU_IIDR.Implementer, and the ProductIDs the table names.
inline constexpr uint32_t kIidrImplementerArm = 0x43B;
inline constexpr uint32_t kIidrProductMmu600 = 0x483;
inline constexpr uint32_t kIidrProductMmu700 = 0x487;

// Workarounds the driver can enable (bits of ErrataReport::workarounds).
inline constexpr uint32_t kWorkaroundSyncEvery63Commands = 1U << 0;  // MMU-700 #2812531

// MMU-700 #2812531: at most this many commands between two CMD_SYNCs (as Linux's
// ARM_SMMU_OPT_CMDQ_FORCE_SYNC: a batch of 63 commands is closed by a CMD_SYNC).
inline constexpr unsigned kErratum2812531MaxCommands = 63;

struct Erratum {
  enum class Handling : uint8_t {
    kWorkaround,  // the driver changes what it does on an affected part
    kNotNeeded,   // deviso never does what the erratum affects (see `deviso`)
  };
  uint32_t number;      // Arm's erratum number
  const char* part;     // "MMU-600"
  uint32_t product_id;  // SMMU_IIDR.ProductID (Implementer Arm)
  // Affected revisions: r0p0 up to r<last_variant>p<last_revision>, inclusive.
  uint8_t last_variant;
  uint8_t last_revision;
  Handling handling;
  uint32_t workaround;  // kWorkaround* bit (kWorkaround), 0 (kNotNeeded)
  const char* issue;    // what goes wrong, and what Linux does about it
  const char* deviso;   // what deviso does, or why it needs nothing
};

// Which entries matched an IIDR (bit i: ErrataTable()[i]) and the workarounds that enables.
struct ErrataReport {
  uint32_t matched = 0;
  uint32_t workarounds = 0;
};

// The table, in a stable order.
const Erratum* ErrataTable(size_t* count);
// Whether `e` affects the part whose SMMU_IIDR is `iidr`.
bool ErratumAffects(const Erratum& e, uint32_t iidr);
// Every entry that affects `iidr`, and the workarounds of those handled by a workaround.
ErrataReport MatchErrata(uint32_t iidr);

}  // namespace deviso::smmuv3

#endif  // DEVISO_SRC_SMMUV3_ERRATA_H_
