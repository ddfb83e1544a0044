// The model's part profiles. See smmu_model_profiles.h.

#include "smmuv3/testing/smmu_model_profiles.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace deviso::smmuv3::testing {
namespace {

SmmuModel::Options Qemu() { return SmmuModel::Options(); }

// Arm CoreLink MMU-600 TRM (Arm 100310, r1p0): SMMUv3.1 (AIDR 0x01), IIDR 0x4831043B
// (ProductID 0x483, r1p0), MSI-capable (IDR0.MSI = 1), 16-bit ASIDs and VMIDs, 2-level stream
// tables, 4K/16K/64K granules, 48-bit OAS, 2^19-entry queues. SMMUv3.1 has neither range
// invalidation nor BBML (IDR3.RIL = 0, BBML = 0). Linux's arm-smmu-v3 keys its MMU-600 errata
// on the same ProductID (arm_smmu_device_iidr_probe).
SmmuModel::Options Mmu600() {
  SmmuModel::Options o;
  o.msi = true;
  o.asid16 = true;
  o.vmid16 = true;
  o.ril = false;
  o.bbml = 0;
  o.oas_bits = 48;
  o.iidr = MakeIidr(kProductMmu600, 1, 0);
  o.arch_minor = 1;
  return o;
}

// Arm CoreLink MMU-700 TRM (Arm 101542, r0p0): SMMUv3.2 (AIDR 0x02), IIDR 0x4870043B
// (ProductID 0x487), range invalidation (IDR3.RIL = 1), BBML = 2, MSI, 16-bit ASIDs and
// VMIDs, 48-bit OAS.
SmmuModel::Options Mmu700() {
  SmmuModel::Options o;
  o.msi = true;
  o.asid16 = true;
  o.vmid16 = true;
  o.ril = true;
  o.bbml = 2;
  o.oas_bits = 48;
  o.iidr = MakeIidr(kProductMmu700, 0, 0);
  o.arch_minor = 2;
  return o;
}

// IHI0070 6.3 SMMU_IDR1.CMDQS: the queue may be as small as the implementation chooses; 2^5
// entries is smaller than one invalidation batch of the driver's per-page path.
SmmuModel::Options SmallCmdq() {
  SmmuModel::Options o;
  o.cmdq_log2 = 5;
  return o;
}

// IHI0070 6.3 SMMU_IDR0.ST_LEVEL = 0b00: linear stream tables only (small SMMUs of
// embedded SoCs), with an 8-bit StreamID space.
SmmuModel::Options LinearStrtab() {
  SmmuModel::Options o;
  o.two_level_strtab = false;
  o.sid_bits = 8;
  return o;
}

// IHI0070 6.3 SMMU_IDR5.GRAN4K/GRAN16K/GRAN64K: an implementation may support the 64 KiB
// granule alone.
SmmuModel::Options Gran64kOnly() {
  SmmuModel::Options o;
  o.gran4k = false;
  o.gran16k = false;
  o.gran64k = true;
  return o;
}

// IHI0070 6.3 SMMU_IDR5.OAS = 0b010: 40-bit physical addresses (e.g. an MMU-600 configured
// for a 40-bit interconnect, MMU-600 TRM: OAS is a build-time parameter).
SmmuModel::Options Oas40() {
  SmmuModel::Options o;
  o.oas_bits = 40;
  return o;
}

// IHI0070 6.3 SMMU_IDR0.COHACC = 0: the SMMU's structure and queue accesses are not coherent
// with the CPU caches (the Rig also makes its memory non-coherent for this profile).
SmmuModel::Options NonCoherent() {
  SmmuModel::Options o;
  o.coherent_access = false;
  return o;
}

const ModelProfile kProfiles[] = {
    {"qemu", "QEMU 7.2 hw/arm/smmuv3.c smmuv3_init_regs, plus stage 2 (the model's default)",
     Qemu()},
    {"mmu600", "Arm CoreLink MMU-600 TRM (100310) r1p0; Linux arm-smmu-v3 IIDR 0x483", Mmu600()},
    {"mmu700", "Arm CoreLink MMU-700 TRM (101542) r0p0; Linux arm-smmu-v3 IIDR 0x487", Mmu700()},
    {"small_cmdq", "IHI0070 6.3 SMMU_IDR1.CMDQS = 5 (32 entries)", SmallCmdq()},
    {"linear_strtab", "IHI0070 6.3 SMMU_IDR0.ST_LEVEL = 0b00, SIDSIZE = 8", LinearStrtab()},
    {"gran64k", "IHI0070 6.3 SMMU_IDR5: GRAN64K only", Gran64kOnly()},
    {"oas40", "IHI0070 6.3 SMMU_IDR5.OAS = 0b010 (40 bits)", Oas40()},
    {"noncoherent", "IHI0070 6.3 SMMU_IDR0.COHACC = 0", NonCoherent()},
};

}  // namespace

const ModelProfile* ModelProfiles(size_t* count) {
  *count = sizeof(kProfiles) / sizeof(kProfiles[0]);
  return kProfiles;
}

const ModelProfile* FindModelProfile(const char* name) {
  for (const ModelProfile& p : kProfiles) {
    if (std::strcmp(p.name, name) == 0) return &p;
  }
  return nullptr;
}

const ModelProfile& ModelProfileFromEnvironment() {
  const char* name = std::getenv("DEVISO_SMMU_PROFILE");
  if (name == nullptr || *name == '\0') return kProfiles[0];
  const ModelProfile* p = FindModelProfile(name);
  if (p == nullptr) {
    std::fprintf(stderr, "DEVISO_SMMU_PROFILE=%s is not a model profile; known:", name);
    for (const ModelProfile& q : kProfiles) std::fprintf(stderr, " %s", q.name);
    std::fprintf(stderr, "\n");
    std::abort();
  }
  return *p;
}

}  // namespace deviso::smmuv3::testing
