// Named ID-register profiles of the SMMUv3 host model: the driver's suite runs under each
// (the profile matrix, CTest label `smmuv3`), so that it is exercised against the ID values of
// real parts and not only those of QEMU.
//
// A profile is "-like": it sets the ID fields the model implements to the values of the part
// it is named after (IDR0/1/3/5, IIDR, AIDR) and keeps the model's own simplifications (no
// stalls, ATS, PRI, HTTU, substreams; see smmu_model.h). Each lists its source.

#ifndef DEVISO_SRC_SMMUV3_TESTING_SMMU_MODEL_PROFILES_H_
#define DEVISO_SRC_SMMUV3_TESTING_SMMU_MODEL_PROFILES_H_

#include <cstddef>

#include "smmuv3/testing/smmu_model.h"

namespace deviso::smmuv3::testing {

struct ModelProfile {
  const char* name;    // for DEVISO_SMMU_PROFILE and test names
  const char* source;  // where its values come from
  SmmuModel::Options options;
};

// IIDR values (IHI0070 6.3 SMMU_IIDR: ProductID[31:20] Variant[19:16] Revision[15:12]
// Implementer[11:0]; Arm's JEP106 code is 0x43B).
inline constexpr uint32_t MakeIidr(uint32_t product, uint32_t variant, uint32_t revision,
                                   uint32_t implementer = 0x43B) {
  return (product << 20) | (variant << 16) | (revision << 12) | implementer;
}
inline constexpr uint32_t kProductMmu600 = 0x483;
inline constexpr uint32_t kProductMmu700 = 0x487;

// Every profile, the default ("qemu") first.
const ModelProfile* ModelProfiles(size_t* count);
// The profile called `name`, or nullptr.
const ModelProfile* FindModelProfile(const char* name);
// The profile named by the environment variable DEVISO_SMMU_PROFILE ("qemu" when unset).
// An unknown name is a test-setup error: it aborts with the list of names.
const ModelProfile& ModelProfileFromEnvironment();

}  // namespace deviso::smmuv3::testing

#endif  // DEVISO_SRC_SMMUV3_TESTING_SMMU_MODEL_PROFILES_H_
