#include "iommu_platform.h"

#include <optional>

extern "C" {
#include <libfdt.h>
}

#include "deviso/port/os.h"
#include "deviso/registry.h"
#include "mmu.h"
#include "smmu_platform.h"
#include "smmuv3/smmuv3.h"
#include "virtio_iommu/virtio_iommu.h"
#include "virtio_iommu_platform.h"

namespace deviso::qemu_virt {
namespace {

std::optional<PlatformIommu> g_iommu;

}  // namespace

void PlatformIommu::Describe() const {
  char line[256];
  (void)unit_.Describe(line, sizeof(line));
  port::Log("%s\n", line);
}

void PlatformIommu::PrintStats() const {
  const UnitStats st = unit_.unit_stats();
  port::Log(
      "%s: %llu commands, %llu syncs, %llu invalidations, %llu events (%llu for streams without "
      "a context, %llu of them not reported by the rate limit), %llu overflows, %llu timeouts\n",
      unit_.caps().name, static_cast<unsigned long long>(st.commands),
      static_cast<unsigned long long>(st.syncs), static_cast<unsigned long long>(st.invalidations),
      static_cast<unsigned long long>(st.events),
      static_cast<unsigned long long>(st.unrouted_faults),
      static_cast<unsigned long long>(st.unrouted_suppressed),
      static_cast<unsigned long long>(st.event_overflows),
      static_cast<unsigned long long>(st.timeouts));
}

Result<PlatformIommu*> SetupIommu(const PlatformInfo& info, DmaArena& arena, PciHost& pci) {
  if (g_iommu.has_value()) return Status::AlreadyExists();
  // QEMU `virt` has an SMMUv3 (iommu=smmuv3) or a virtio-iommu on PCI, never both; the
  // devicetree says which.
  if (info.smmu.present) {
    DEVISO_ASSIGN_OR_RETURN(smmuv3::Smmuv3 * smmu, SetupSmmu(info, arena));
    g_iommu.emplace(*smmu, info.smmu.phandle, SmmuTablePoolBase());
    return &*g_iommu;
  }
  DEVISO_ASSIGN_OR_RETURN(const VirtioIommuPlatform vio, SetupVirtioIommu(info, arena, pci));
  g_iommu.emplace(*vio.unit, vio.phandle, MmuTablesBase());
  return &*g_iommu;
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
