// QEMU `virt`'s PciHost on the host: the shared enumeration (src/pci, tested there against the
// same simulated ECAM) combined with the lookups only the devicetree gives: the StreamID from the
// host bridge's iommu-map applied to each function's DMA alias, and the GIC interrupt from its
// interrupt-map after the swizzle. CTest label `dt` (built beside dt_platform_test in
// src/dt/CMakeLists.txt).

#include "pci.h"

#include <gtest/gtest.h>

#include <vector>

#include "dt/dt_test_util.h"
#include "pci/testing/fake_ecam.h"
#include "platform_info.h"

namespace deviso::qemu_virt {
namespace {

using pci::testing::RootPortTopology;

// With QEMU's own DTB: the iommu-map applied to the alias, the interrupt-map to the swizzled
// root-bus slot.
TEST(PciEnumeration, StreamIdAndIntxFromQemuDevicetree) {
  const std::vector<uint8_t> fdt = dt::testing::LoadBlob("qemu_virt_smmuv3");
  ASSERT_FALSE(fdt.empty());
  static PlatformInfo info;
  ASSERT_TRUE(ParseDeviceTree(fdt.data(), &info).ok());
  RootPortTopology t;
  t.conv[1]->cfg[0x3d] = 2;
  PciHost pci(info.pci, t.ecam);
  ASSERT_TRUE(pci.Enumerate().ok());
  const uint32_t smmu = info.smmu.phandle;
  EXPECT_EQ(pci.StreamId(Bdf{1, 0, 0}, smmu).value_or(0), 0x100U);
  EXPECT_EQ(pci.StreamId(Bdf{2, 0, 0}, smmu).value_or(0), 0x200U);
  // Both conventional devices behind the PCIe-to-PCI bridge: 04:00.0's StreamID.
  EXPECT_EQ(pci.StreamId(Bdf{4, 1, 0}, smmu).value_or(0), 0x400U);
  EXPECT_EQ(pci.StreamId(Bdf{4, 2, 0}, smmu).value_or(0), 0x400U);
  // QEMU virt's interrupt-map: slot s, pin p -> SPI 3 + (s + p - 1) % 4 (its map rotates the
  // four SPIs by slot).
  const Result<IrqSpec> root = pci.IntxIrq(Bdf{0, 5, 0}, 4);
  const Result<IrqSpec> behind = pci.IntxIrq(Bdf{4, 2, 0});
  ASSERT_TRUE(root.ok());
  ASSERT_TRUE(behind.ok());
  EXPECT_EQ(behind->intid, root->intid);
  const Result<IrqSpec> a1 = pci.IntxIrq(Bdf{1, 0, 0});
  const Result<IrqSpec> rp1 = pci.IntxIrq(Bdf{0, 3, 0}, 1);
  ASSERT_TRUE(a1.ok());
  EXPECT_EQ(a1->intid, rp1->intid);
  EXPECT_NE(behind->intid, a1->intid);  // slot 5 INTD vs slot 3 INTA: other SPIs
}

TEST(PciHost, WithoutHostBridgeNothingIsEnumerated) {
  RootPortTopology t;
  PciHostInfo none;
  PciHost pci(none, t.ecam);
  EXPECT_EQ(pci.Enumerate().ToC(), -ENOTSUP);
  EXPECT_EQ(pci.function_count(), 0U);
}

}  // namespace
}  // namespace deviso::qemu_virt
