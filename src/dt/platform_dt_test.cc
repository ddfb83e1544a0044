// The QEMU `virt` platform's devicetree parsing (platform/qemu-virt-aarch64/device_tree.cc) and
// PciHost's devicetree lookups (StreamId, IntxIrq), run on the host against QEMU's own DTBs:
// the platform reads the SMMU node, iommu-map and interrupt-map through src/dt. CTest label
// `dt`. (PciHost's config-space accesses are not used here: no ECAM on the host.)

#include <gtest/gtest.h>

extern "C" {
#include <libfdt.h>
}

#include <string>
#include <vector>

#include "dt/dt_test_util.h"
#include "pci.h"
#include "platform_info.h"

namespace deviso::qemu_virt {
namespace {

using dt::testing::LoadBlob;

TEST(PlatformDt, QemuSmmuv3TreeFillsPlatformInfoAsBefore) {
  const std::vector<uint8_t> fdt = LoadBlob("qemu_virt_smmuv3");
  ASSERT_FALSE(fdt.empty());
  static PlatformInfo info;  // large: not on the stack
  ASSERT_TRUE(ParseDeviceTree(fdt.data(), &info).ok());
  EXPECT_EQ(info.memory_count, 1U);
  EXPECT_EQ(info.memory[0].base, 0x40000000U);
  ASSERT_TRUE(info.smmu.present);
  EXPECT_EQ(info.smmu.regs.base, 0x9050000U);
  EXPECT_EQ(info.smmu.regs.size, 0x20000U);
  EXPECT_EQ(info.smmu.phandle, 0x8004U);
  EXPECT_TRUE(info.smmu.dma_coherent);
  EXPECT_TRUE(info.smmu.eventq.valid);
  EXPECT_EQ(info.smmu.eventq.intid, 32 + 74U);
  EXPECT_TRUE(info.smmu.eventq.edge);
  EXPECT_EQ(info.smmu.gerror.intid, 32 + 77U);
  EXPECT_FALSE(info.smmu.combined.valid);
  ASSERT_EQ(info.iommu_count, 1U);
  EXPECT_EQ(info.iommus[0].type, dt::IommuType::kSmmuV3);
  EXPECT_EQ(info.iommus[0].node, info.smmu.node);
  ASSERT_TRUE(info.pci.present);
  EXPECT_GE(info.pci.node, 0);
  EXPECT_EQ(info.pci.iommu_map_count, 1U);
  EXPECT_EQ(info.pci.iommu_map[0].iommu_phandle, 0x8004U);
  EXPECT_EQ(info.pci.iommu_map[0].length, 0x10000U);
  EXPECT_TRUE(info.pci.intx_map.present);

  static PciHost pci(info.pci);
  EXPECT_EQ(pci.StreamId({0, 2, 0}, info.smmu.phandle).value_or(0), 0x10U);
  EXPECT_EQ(pci.StreamId({0, 3, 1}, info.smmu.phandle).value_or(0), 0x19U);
  EXPECT_EQ(pci.StreamId({0, 2, 0}, 0x1234).status(), Status::NotFound());
  // QEMU virt: slot s, pin p -> SPI 3 + (s + p - 1) % 4, level.
  const Result<IrqSpec> a = pci.IntxIrq({0, 2, 0}, 1);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->intid, 32 + 5U);
  EXPECT_FALSE(a->edge);
  EXPECT_EQ(pci.IntxIrq({0, 3, 0}, 4).value_or(IrqSpec{}).intid, 32 + 5U);
  EXPECT_EQ(pci.IntxIrq({0, 2, 0}, 0).status(), Status::InvalidArgument());
  EXPECT_EQ(pci.IntxIrq({0, 2, 0}).status(), Status::NotFound()) << "not enumerated";
}

TEST(PlatformDt, QemuVirtioIommuTree) {
  const std::vector<uint8_t> fdt = LoadBlob("qemu_virt_virtio_iommu");
  ASSERT_FALSE(fdt.empty());
  static PlatformInfo info;
  ASSERT_TRUE(ParseDeviceTree(fdt.data(), &info).ok());
  EXPECT_FALSE(info.smmu.present);
  ASSERT_EQ(info.iommu_count, 1U);
  EXPECT_EQ(info.iommus[0].type, dt::IommuType::kVirtioPci);
  EXPECT_EQ(info.iommus[0].phandle, 0x8005U);
  EXPECT_EQ(info.iommus[0].rid, 0x8U);
  EXPECT_EQ(info.iommus[0].pci_host, info.pci.node);
  ASSERT_EQ(info.pci.iommu_map_count, 2U);
  static PciHost pci(info.pci);
  EXPECT_EQ(pci.StreamId({0, 1, 0}, 0x8005).status(), Status::NotFound()) << "itself";
  EXPECT_EQ(pci.StreamId({0, 2, 0}, 0x8005).value_or(0), 0x10U);
}

TEST(PlatformDt, MalformedIommuMapFailsTheParse) {
  const std::vector<uint8_t> fdt = LoadBlob("platform_bad_iommu_map");
  ASSERT_FALSE(fdt.empty());
  static PlatformInfo info;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(ParseDeviceTree(fdt.data(), &info), Status::InvalidArgument());
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("/pcie@10000000: iommu-map: phandle 0xdead"), std::string::npos) << log;
}

// GICv3 with an ITS (-M virt,gic-version=3): the ITS child of the GIC node and the host
// bridge's msi-map to it (pci-msi.txt), and the DeviceIDs they give.
TEST(PlatformDt, GicV3ItsAndMsiMap) {
  const std::vector<uint8_t> fdt = LoadBlob("qemu_virt_gicv3_its");
  ASSERT_FALSE(fdt.empty());
  static PlatformInfo info;
  ASSERT_TRUE(ParseDeviceTree(fdt.data(), &info).ok());
  EXPECT_EQ(info.gic.version, 3U);
  EXPECT_EQ(info.gic.its.base, 0x8080000U);
  EXPECT_EQ(info.gic.its.size, 0x20000U);
  EXPECT_EQ(info.gic.its_phandle, 0x8003U);
  ASSERT_EQ(info.pci.msi_map_count, 1U);
  EXPECT_EQ(info.pci.msi_map[0].rid_base, 0U);
  EXPECT_EQ(info.pci.msi_map[0].controller, 0x8003U);
  EXPECT_EQ(info.pci.msi_map[0].msi_base, 0U);
  EXPECT_EQ(info.pci.msi_map[0].length, 0x10000U);
  EXPECT_EQ(info.pci.msi_map_mask, 0xffffffffU);
  // QEMU: DeviceID = requester ID (00:03.0 -> 0x18).
  EXPECT_EQ(MsiDeviceId(info, 0x18).value_or(0), 0x18U);
  EXPECT_EQ(MsiDeviceId(info, 0xffff).value_or(0), 0xffffU);
}

// GICv2 (QEMU's default): the msi-map names a GICv2m frame (no #msi-cells), which is parsed but
// is no ITS: no DeviceID.
TEST(PlatformDt, GicV2MsiMapNamesNoIts) {
  const std::vector<uint8_t> fdt = LoadBlob("qemu_virt_smmuv3");
  ASSERT_FALSE(fdt.empty());
  static PlatformInfo info;
  ASSERT_TRUE(ParseDeviceTree(fdt.data(), &info).ok());
  EXPECT_EQ(info.gic.version, 2U);
  EXPECT_EQ(info.gic.its.size, 0U);
  EXPECT_EQ(info.gic.its_phandle, 0U);
  ASSERT_EQ(info.pci.msi_map_count, 1U);
  EXPECT_EQ(MsiDeviceId(info, 0x18).status(), Status::InvalidArgument());
}

// msi-map arithmetic (pci-msi.txt): the mask first, then the first range holding the RID;
// a RID in no range, a controller that is not the ITS, msi-parent alone, nothing at all.
TEST(PlatformDt, MsiDeviceIdFollowsTheMap) {
  static PlatformInfo info;
  info = PlatformInfo{};
  info.gic.its_phandle = 7;
  info.pci.msi_map[0] = {0x0000, 7, 0x1000, 0x100};    // bus 0 -> 0x1000..
  info.pci.msi_map[1] = {0x0100, 9, 0x0000, 0x100};    // bus 1 -> another controller
  info.pci.msi_map[2] = {0x0000, 7, 0x8000, 0x10000};  // shadowed for bus 0 by the first
  info.pci.msi_map_count = 3;
  EXPECT_EQ(MsiDeviceId(info, 0x0018).value_or(0), 0x1018U);  // 0x1000 + 0x18
  EXPECT_EQ(MsiDeviceId(info, 0x0118).status(), Status::InvalidArgument());
  EXPECT_EQ(MsiDeviceId(info, 0x0218).value_or(0), 0x8218U);
  info.pci.msi_map_mask = 0x00ff;  // bus number masked off: 0x0218 -> 0x18
  EXPECT_EQ(MsiDeviceId(info, 0x0218).value_or(0), 0x1018U);
  info.pci.msi_map_count = 1;
  info.pci.msi_map_mask = 0xffffffff;
  EXPECT_EQ(MsiDeviceId(info, 0x0218).status(), Status::NotFound());
  info.pci.msi_map_count = 0;
  EXPECT_EQ(MsiDeviceId(info, 0x18).status(), Status::NotFound());  // nothing named
  info.pci.msi_parent = 7;
  EXPECT_EQ(MsiDeviceId(info, 0x18).value_or(0), 0x18U);  // msi-parent: DeviceID = RID
  info.pci.msi_parent = 9;
  EXPECT_EQ(MsiDeviceId(info, 0x18).status(), Status::InvalidArgument());
}

// A malformed msi-map fails the parse (as a malformed iommu-map does), with no partial map.
TEST(PlatformDt, MalformedMsiMapFailsTheParse) {
  std::vector<uint8_t> fdt = LoadBlob("qemu_virt_gicv3_its");
  ASSERT_FALSE(fdt.empty());
  fdt.resize(fdt.size() + 4096);
  ASSERT_EQ(fdt_open_into(fdt.data(), fdt.data(), static_cast<int>(fdt.size())), 0);
  const int pci = fdt_node_offset_by_compatible(fdt.data(), -1, "pci-host-ecam-generic");
  ASSERT_GE(pci, 0);
  static PlatformInfo info;
  // Three cells: not a whole entry.
  const fdt32_t three[] = {cpu_to_fdt32(0), cpu_to_fdt32(0x8003), cpu_to_fdt32(0)};
  ASSERT_EQ(fdt_setprop(fdt.data(), pci, "msi-map", three, sizeof(three)), 0);
  EXPECT_EQ(ParseDeviceTree(fdt.data(), &info), Status::InvalidArgument());
  // A controller phandle that names no node.
  const fdt32_t dangling[] = {cpu_to_fdt32(0), cpu_to_fdt32(0xdead), cpu_to_fdt32(0),
                              cpu_to_fdt32(0x10000)};
  ASSERT_EQ(fdt_setprop(fdt.data(), pci, "msi-map", dangling, sizeof(dangling)), 0);
  EXPECT_EQ(ParseDeviceTree(fdt.data(), &info), Status::InvalidArgument());
  // A zero-length range.
  const fdt32_t empty[] = {cpu_to_fdt32(0), cpu_to_fdt32(0x8003), cpu_to_fdt32(0), cpu_to_fdt32(0)};
  ASSERT_EQ(fdt_setprop(fdt.data(), pci, "msi-map", empty, sizeof(empty)), 0);
  EXPECT_EQ(ParseDeviceTree(fdt.data(), &info), Status::InvalidArgument());
  // Nine ranges: more than PciHostInfo::kMaxMsiMap.
  std::vector<fdt32_t> nine;
  for (uint32_t i = 0; i < 9; ++i) {
    for (uint32_t v : {i * 0x100, 0x8003U, i * 0x100, 0x100U}) nine.push_back(cpu_to_fdt32(v));
  }
  ASSERT_EQ(fdt_setprop(fdt.data(), pci, "msi-map", nine.data(),
                        static_cast<int>(nine.size() * sizeof(fdt32_t))),
            0);
  EXPECT_EQ(ParseDeviceTree(fdt.data(), &info), Status::OutOfRange());
}

}  // namespace
}  // namespace deviso::qemu_virt
