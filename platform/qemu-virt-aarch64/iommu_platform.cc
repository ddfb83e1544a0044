#include "iommu_platform.h"

#include <optional>

extern "C" {
#include <libfdt.h>
}

#include "deviso/port/os.h"
#include "deviso/registry.h"
#include "mmu.h"
#include "smmu_platform.h"
#include "smmuv3/smmu.h"
#include "virtio_iommu/virtio_iommu.h"
#include "virtio_iommu_platform.h"

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

  // Bounded (Smmuv3::DrainEvents): an SMMU that keeps producing events cannot hold the caller.
  void DrainEvents() override { (void)smmu_.DrainEvents(); }

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

  Counters counters() const override {
    const smmuv3::SmmuStats st = smmu_.stats();
    return {st.commands, st.syncs, st.tlbi_va + st.tlbi_context, st.events};
  }

  bool caches_translations() const override { return true; }  // its IOTLB really caches
  bool reports_fault_overflow() const override { return true; }
  bool reports_translation_fault_direction() const override { return true; }
  uint64_t own_table_page() const override { return SmmuTablePoolBase(); }

 private:
  smmuv3::Smmuv3& smmu_;
  const SmmuInfo& info_;
};

class VirtioIommu final : public PlatformIommu {
 public:
  explicit VirtioIommu(const VirtioIommuPlatform& p) : p_(p) {}

  IsolationUnit& unit() const override { return *p_.unit; }
  uint32_t phandle() const override { return p_.phandle; }

  void Describe() const override {
    const virtio_iommu::VirtioIommu& u = *p_.unit;
    port::Log(
        "virtio-iommu at %02x:%02x.%x: features offered 0x%llx, accepted 0x%llx; page sizes "
        "0x%llx, input range [0x%llx, 0x%llx], domains [%u, %u], probe size %u; bypass "
        "cleared (default-deny)\n",
        p_.bdf.bus, p_.bdf.device, p_.bdf.function,
        static_cast<unsigned long long>(u.device_features()),
        static_cast<unsigned long long>(u.driver_features()),
        static_cast<unsigned long long>(u.page_size_mask()),
        static_cast<unsigned long long>(u.input_range().start),
        static_cast<unsigned long long>(u.input_range().end),
        static_cast<unsigned>(u.domain_range().start), static_cast<unsigned>(u.domain_range().end),
        static_cast<unsigned>(u.probe_size()));
  }

  void DrainEvents() override { p_.unit->HandleEvents(); }

  Status SetUnroutedFaultHandler(deviso_fault_handler_t handler, void* user) override {
    return p_.unit->SetUnroutedFaultHandler(handler, user);
  }

  void PrintStats() const override {
    const virtio_iommu::Stats st = p_.unit->stats();
    port::Log(
        "virtio-iommu: %llu requests in %llu notifications, %llu errors, %llu timeouts, %llu "
        "events (%llu for endpoints without a domain)\n",
        static_cast<unsigned long long>(st.requests), static_cast<unsigned long long>(st.notifies),
        static_cast<unsigned long long>(st.request_errors),
        static_cast<unsigned long long>(st.timeouts), static_cast<unsigned long long>(st.events),
        static_cast<unsigned long long>(st.unrouted_faults));
  }

  Counters counters() const override {
    const virtio_iommu::Stats st = p_.unit->stats();
    return {st.requests, st.notifies, 0, st.events};
  }

  // QEMU 7.2's virtio-iommu translates every access afresh (no IOTLB), drops events beyond
  // its queue without a word, and reports unmapped addresses without the access direction.
  bool caches_translations() const override { return false; }
  bool reports_fault_overflow() const override { return false; }
  bool reports_translation_fault_direction() const override { return false; }
  uint64_t own_table_page() const override { return MmuTablesBase(); }

 private:
  VirtioIommuPlatform p_;
};

std::optional<SmmuIommu> g_smmu_iommu;
std::optional<VirtioIommu> g_virtio_iommu;

}  // namespace

Result<PlatformIommu*> SetupIommu(const PlatformInfo& info, DmaArena& arena, PciHost& pci) {
  if (g_smmu_iommu.has_value() || g_virtio_iommu.has_value()) return Status::AlreadyExists();
  // QEMU `virt` has an SMMUv3 (iommu=smmuv3) or a virtio-iommu on PCI, never both; the
  // devicetree says which.
  if (info.smmu.present) {
    DEVISO_ASSIGN_OR_RETURN(smmuv3::Smmuv3 * smmu, SetupSmmu(info, arena));
    g_smmu_iommu.emplace(*smmu, info.smmu);
    return &*g_smmu_iommu;
  }
  DEVISO_ASSIGN_OR_RETURN(const VirtioIommuPlatform vio, SetupVirtioIommu(info, arena, pci));
  g_virtio_iommu.emplace(vio);
  return &*g_virtio_iommu;
}

Status BindPciDevices(const PlatformInfo& info, PlatformIommu& iommu,
                      std::span<const PciDeviceBinding> devices, std::span<dt::DeviceStreams> out) {
  constexpr size_t kMax = PciHost::kMaxFunctions;
  if (!info.pci.present || info.pci.node < 0 || devices.size() > kMax ||
      out.size() < devices.size()) {
    return Status::InvalidArgument();
  }
  static char host_path[128];  // the host bridge's node path, as dt::PciDevice names it
  if (fdt_get_path(info.dtb, info.pci.node, host_path, sizeof(host_path)) != 0) {
    return Status::InvalidArgument();
  }
  dt::PciDevice pci[kMax];
  for (size_t i = 0; i < devices.size(); ++i) {
    pci[i] = {host_path, devices[i].bdf.rid(), devices[i].dev};
  }
  const dt::UnitEntry units[] = {{iommu.phandle(), &iommu.unit()}};
  dt::BindRequest request;
  request.fdt = info.dtb;
  request.units = units;
  request.pci = {pci, devices.size()};
  return dt::BindFromDevicetree(Registry::Default(), request, out.first(devices.size()));
}

}  // namespace deviso::qemu_virt
