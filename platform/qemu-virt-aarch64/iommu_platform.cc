#include "iommu_platform.h"

#include <optional>

#include "ports/port.h"
#include "smmu_platform.h"
#include "smmuv3/smmu.h"

namespace deviso::qemu_virt {
namespace {

class SmmuIommu final : public PlatformIommu {
 public:
  SmmuIommu(smmuv3::Smmuv3& smmu, const SmmuInfo& info) : smmu_(smmu), info_(info) {}

  IsolationUnit& unit() const override { return smmu_; }
  uint32_t phandle() const override { return info_.phandle; }

  void Describe() const override {
    const smmuv3::reg::Idr0 idr0 = smmu_.idr0();
    const smmuv3::reg::Idr5 idr5 = smmu_.idr5();
    port::Log(
        "SMMUv3 at 0x%llx: stage1 %s, stage2 %s, %s, %s stream table, OAS %u bits, "
        "granules%s%s%s, range invalidation %s, BBML %u, GBPA %s\n",
        static_cast<unsigned long long>(info_.regs.base), idr0.s1p() ? "yes" : "no",
        idr0.s2p() ? "yes" : "no", smmu_.coherent() ? "coherent" : "non-coherent",
        smmu_.two_level_stream_table() ? "2-level" : "linear", smmu_.caps().oas,
        idr5.gran4k() ? " 4K" : "", idr5.gran16k() ? " 16K" : "", idr5.gran64k() ? " 64K" : "",
        smmu_.idr3().ril() ? "yes" : "no", static_cast<unsigned>(smmu_.idr3().bbml()),
        smmu_.gbpa_implemented() ? "implemented" : "not implemented (SMMUEN=0 would bypass)");
  }

  void DrainEvents() override { smmu_.HandleEvents(); }

  Status SetUnroutedFaultHandler(deviso_fault_handler_t handler, void* user) override {
    return smmu_.SetUnroutedFaultHandler(handler, user);
  }

  void PrintStats() const override {
    const smmuv3::SmmuStats st = smmu_.stats();
    port::Log(
        "SMMU: %llu commands, %llu CMD_SYNCs, %llu events (%llu for streams without a context), "
        "%llu overflows\n",
        static_cast<unsigned long long>(st.commands), static_cast<unsigned long long>(st.syncs),
        static_cast<unsigned long long>(st.events),
        static_cast<unsigned long long>(st.unrouted_faults),
        static_cast<unsigned long long>(st.event_overflows));
  }

  bool caches_translations() const override { return true; }  // its IOTLB really caches
  bool reports_fault_overflow() const override { return true; }

 private:
  smmuv3::Smmuv3& smmu_;
  const SmmuInfo& info_;
};

std::optional<SmmuIommu> g_smmu_iommu;

}  // namespace

Result<PlatformIommu*> SetupIommu(const PlatformInfo& info, DmaArena& arena) {
  if (g_smmu_iommu.has_value()) return Status::AlreadyExists();
  if (info.smmu.present) {
    DEVISO_ASSIGN_OR_RETURN(smmuv3::Smmuv3 * smmu, SetupSmmu(info, arena));
    g_smmu_iommu.emplace(*smmu, info.smmu);
    return &*g_smmu_iommu;
  }
  return Status::NotFound();
}

}  // namespace deviso::qemu_virt
