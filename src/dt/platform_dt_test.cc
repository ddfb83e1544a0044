// The QEMU `virt` platform's devicetree parsing (platform/qemu-virt-aarch64/device_tree.cc) and
// PciHost's devicetree lookups (StreamId, IntxIrq), run on the host against QEMU's own DTBs:
// the platform reads the SMMU node, iommu-map and interrupt-map through src/dt. CTest label
// `dt`. (PciHost's config-space accesses are not used here: no ECAM on the host.)

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace deviso::qemu_virt
