// The SMMUv3 errata table. See errata.h; docs/smmuv3.md ("Errata") lists it.

#include "smmuv3/errata.h"

#include "smmuv3/hw.h"

namespace deviso::smmuv3 {
namespace {

using Handling = Erratum::Handling;

constexpr Erratum kErrata[] = {
    {1076982, "MMU-600", kIidrProductMmu600, 0, 2, Handling::kNotNeeded, 0,
     "r0p0-r0p2: a CMD_SYNC with CS=SIG_SEV may not send its event, so a WFE-based wait can "
     "stall; Linux stops using SEV (ARM_SMMU_FEAT_SEV)",
     "not needed: deviso issues CMD_SYNC with CS=SIG_NONE only and polls SMMU_CMDQ_CONS "
     "under a deadline; it never uses SEV or WFE"},
    {1209401, "MMU-600", kIidrProductMmu600, 1, 15, Handling::kNotNeeded, 0,
     "r0p0-r1p*: nested (stage 1 + stage 2) translation may be wrong; Linux disables nesting "
     "(ARM_SMMU_FEAT_NESTING)",
     "not needed: deviso never writes a nested STE (Config = 0b111); each domain is stage 1 "
     "or stage 2"},
    {2268618, "MMU-700", kIidrProductMmu700, 1, 0, Handling::kNotNeeded, 0,
     "r0p0-r1p0: nested translation may be wrong; Linux disables nesting",
     "not needed: deviso never writes a nested STE"},
    {2812531, "MMU-700", kIidrProductMmu700, 15, 15, Handling::kWorkaround,
     kWorkaroundSyncEvery63Commands,
     "all revisions: some sequences of invalidation commands must not be issued without an "
     "intervening CMD_SYNC, and DVM (broadcast TLB maintenance, BTM) cannot be used; Linux "
     "closes every 63 commands with a CMD_SYNC (ARM_SMMU_OPT_CMDQ_FORCE_SYNC), disables BTM "
     "and nesting",
     "workaround: every submission already ends with its own CMD_SYNC under the queue lock "
     "(batches never interleave); on an affected part the driver also caps a per-page "
     "invalidation batch at 63 commands (Config::max_tlbi_per_range), beyond which it "
     "invalidates the whole context. deviso never enables BTM/DVM nor nesting"},
};

}  // namespace

const Erratum* ErrataTable(size_t* count) {
  *count = sizeof(kErrata) / sizeof(kErrata[0]);
  return kErrata;
}

bool ErratumAffects(const Erratum& e, uint32_t iidr) {
  const reg::Iidr id{iidr};  // 6.3.7
  const uint32_t implementer = id.implementer();
  const uint32_t revision = id.revision();
  const uint32_t variant = id.variant();
  const uint32_t product = id.product_id();
  if (implementer != kIidrImplementerArm || product != e.product_id) return false;
  return variant < e.last_variant || (variant == e.last_variant && revision <= e.last_revision);
}

ErrataReport MatchErrata(uint32_t iidr) {
  ErrataReport r;
  size_t n = 0;
  const Erratum* table = ErrataTable(&n);
  for (size_t i = 0; i < n; ++i) {
    if (!ErratumAffects(table[i], iidr)) continue;
    r.matched |= 1U << i;
    if (table[i].handling == Handling::kWorkaround) r.workarounds |= table[i].workaround;
  }
  return r;
}

}  // namespace deviso::smmuv3
