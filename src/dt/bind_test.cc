// Binding devices from the devicetree into a Registry (on fake units): the StreamIDs each
// device gets, refusal of any other StreamID (also through the C ABI), and all-or-nothing
// registration for every malformed case. CTest label `dt`.

#include "dt/bind.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

extern "C" {
#include <libfdt.h>
}

#include "core/testing/fake_unit.h"
#include "deviso/deviso.h"
#include "dt/devicetree.h"
#include "dt/dt_test_util.h"

namespace deviso::dt {
namespace {

using deviso::testing::FakeUnit;
using testing::LoadBlob;
using testing::Node;

FakeUnit::Options Named(const char* name, uint32_t max_sid = 0xffff) {
  FakeUnit::Options o;
  o.name = name;
  o.max_sid = max_sid;
  return o;
}

class DtBindGood : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(fdt_.empty());
    ASSERT_TRUE(registry_.RegisterUnit(smmu0_).ok());
    ASSERT_TRUE(registry_.RegisterUnit(smmu1_).ok());
    units_[0] = {fdt_get_phandle(fdt_.data(), Node(fdt_, "/iommu@9050000")), &smmu0_};
    units_[1] = {fdt_get_phandle(fdt_.data(), Node(fdt_, "/iommu@9070000")), &smmu1_};
  }
  BindRequest Request(std::span<const NodeDevice> nodes, std::span<const PciDevice> pci) {
    BindRequest r;
    r.fdt = fdt_.data();
    r.units = units_;
    r.nodes = nodes;
    r.pci = pci;
    return r;
  }

  std::vector<uint8_t> fdt_ = LoadBlob("good");
  FakeUnit smmu0_{Named("smmu0")};
  FakeUnit smmu1_{Named("smmu1")};
  UnitEntry units_[2];
  Registry registry_;
  device dma0_{"dma0"};
  device dma1_{"dma1"};
  device nic_{"nic@00:02.0"};
  device disk_{"disk@00:10.0"};
  device other_{"other@01:00.5"};
};

TEST_F(DtBindGood, EachDeviceGetsItsUnitAndExactlyItsStreamIds) {
  const NodeDevice nodes[] = {{"/dma@10000000", &dma0_}, {"/dma@10001000", &dma1_}};
  const PciDevice pci[] = {{"/pcie@40000000", 0x10, &nic_},
                           {"/pcie@40000000", 0x08, &disk_},
                           {"/pcie@40000000", 0x105, &other_}};
  DeviceStreams out[5];
  ASSERT_TRUE(BindFromDevicetree(registry_, Request(nodes, pci), out).ok());

  EXPECT_EQ(registry_.UnitOf(&dma0_).value_or(nullptr), &smmu0_);
  EXPECT_EQ(out[0].streams().size(), 3U);
  EXPECT_EQ(out[0].sids[2], 0x102U);
  EXPECT_EQ(registry_.UnitOf(&dma1_).value_or(nullptr), &smmu1_);
  EXPECT_EQ(registry_.UnitOf(&nic_).value_or(nullptr), &smmu1_) << "second range";
  EXPECT_EQ(out[2].sids[0], 0x508U);
  EXPECT_EQ(registry_.UnitOf(&disk_).value_or(nullptr), &smmu0_) << "first range wins";
  EXPECT_EQ(out[3].sids[0], 0x1008U);
  EXPECT_EQ(out[4].sids[0], 0x2005U);
  // PCI functions are recorded with their requester ID: a report names the BDF; a node
  // device has none.
  Fault f{};
  f.sid = 0x2005;
  f.reason = DEVISO_FAULT_BLOCKED;
  f.unit = smmu0_.caps().name;
  char line[160];
  ASSERT_GT(registry_.FormatFault(f, line, sizeof(line)), 0);
  EXPECT_NE(std::string(line).find(": device other@01:00.5 (pci 01:00.5)"), std::string::npos)
      << line;
  f.sid = 0x100;
  ASSERT_GT(registry_.FormatFault(f, line, sizeof(line)), 0);
  EXPECT_EQ(std::string(line).find("(pci"), std::string::npos) << line;

  // Contexts for the devicetree's StreamIDs only: a driver cannot claim another's stream.
  for (const uint32_t sid : {0x100U, 0x101U, 0x102U}) {
    EXPECT_TRUE(registry_.AllocContext(&dma0_, sid).ok()) << sid;
  }
  EXPECT_EQ(registry_.AllocContext(&dma0_, 0x103).status(), Status::InvalidArgument());
  EXPECT_EQ(registry_.AllocContext(&dma0_, 0x20).status(), Status::InvalidArgument())
      << "dma1's StreamID";
  EXPECT_EQ(registry_.AllocContext(&nic_, 0x1008).status(), Status::InvalidArgument())
      << "the disk's StreamID";
  EXPECT_TRUE(registry_.AllocContext(&nic_, 0x508).ok());
  for (const uint32_t sid : {0x100U, 0x101U, 0x102U}) {
    EXPECT_TRUE(registry_.FreeContext(&dma0_, sid).ok());
  }
  EXPECT_TRUE(registry_.FreeContext(&nic_, 0x508).ok());
  EXPECT_TRUE(UnbindAll(registry_, out).ok());
  EXPECT_FALSE(registry_.UnitOf(&dma0_).ok());
}

TEST_F(DtBindGood, ResolveAloneBindsNothing) {
  const NodeDevice nodes[] = {{"/dma@10000000", &dma0_}};
  DeviceStreams out[1];
  ASSERT_TRUE(ResolveDevices(Request(nodes, {}), out).ok());
  EXPECT_EQ(out[0].unit, &smmu0_);
  EXPECT_EQ(out[0].iommu_phandle, units_[0].phandle);
  EXPECT_FALSE(registry_.UnitOf(&dma0_).ok());
}

TEST_F(DtBindGood, RequestErrors) {
  const NodeDevice nodes[] = {{"/dma@10000000", &dma0_}, {"/dma@10001000", &dma1_}};
  DeviceStreams out[2];
  EXPECT_EQ(BindFromDevicetree(registry_, Request(nodes, {}), std::span(out, 1)),
            Status::InvalidArgument())
      << "no room for the plan";
  const NodeDevice missing[] = {{"/dma@10000000", &dma0_}, {"/no/such/node", &dma1_}};
  EXPECT_EQ(BindFromDevicetree(registry_, Request(missing, {}), out), Status::InvalidArgument());
  const NodeDevice null_dev[] = {{"/dma@10000000", nullptr}};
  EXPECT_EQ(BindFromDevicetree(registry_, Request(null_dev, {}), out), Status::InvalidArgument());
  const NodeDevice twice[] = {{"/dma@10000000", &dma0_}, {"/dma@10001000", &dma0_}};
  EXPECT_EQ(BindFromDevicetree(registry_, Request(twice, {}), out), Status::AlreadyExists());
  const NodeDevice uart[] = {{"/dma@10000000", &dma0_}, {"/uart@9000000", &dma1_}};
  EXPECT_EQ(BindFromDevicetree(registry_, Request(uart, {}), out), Status::NotFound())
      << "no iommus";
  const PciDevice uncovered[] = {{"/pcie@40000000", 0x18, &nic_}};
  EXPECT_EQ(BindFromDevicetree(registry_, Request(nodes, uncovered), out),
            Status::InvalidArgument())
      << "out too small comes first";
  DeviceStreams out3[3];
  EXPECT_EQ(BindFromDevicetree(registry_, Request(nodes, uncovered), out3), Status::NotFound());
  const PciDevice no_map[] = {{"/pcie@60000000", 0x0, &nic_}};
  EXPECT_EQ(BindFromDevicetree(registry_, Request(nodes, no_map), out3), Status::NotFound());
  // A unit table without smmu1: its devices cannot be bound.
  BindRequest r = Request(nodes, {});
  r.units = std::span(units_, 1);
  EXPECT_EQ(BindFromDevicetree(registry_, r, out), Status::NotFound());
  // A unit table entry that is not an IOMMU node.
  const UnitEntry bad_units[] = {
      units_[0],
      {fdt_get_phandle(fdt_.data(), Node(fdt_, "/interrupt-controller@8000000")), &smmu1_}};
  r.units = bad_units;
  EXPECT_EQ(BindFromDevicetree(registry_, r, out), Status::InvalidArgument());
  for (const device* d : {&dma0_, &dma1_, &nic_}) {
    EXPECT_FALSE(registry_.UnitOf(d).ok()) << d->name << " bound after an error";
  }
}

TEST_F(DtBindGood, AFailedBindIsRolledBack) {
  // dma1's StreamID on smmu1 is already taken by another device: the registry refuses the
  // second bind, and the first (dma0) is undone.
  device squatter{"squatter"};
  const uint32_t sid = 0x20;
  ASSERT_TRUE(registry_.BindDevice(&squatter, smmu1_, std::span(&sid, 1)).ok());
  const NodeDevice nodes[] = {{"/dma@10000000", &dma0_}, {"/dma@10001000", &dma1_}};
  DeviceStreams out[2];
  EXPECT_EQ(BindFromDevicetree(registry_, Request(nodes, {}), out), Status::AlreadyExists());
  EXPECT_FALSE(registry_.UnitOf(&dma0_).ok()) << "rolled back";
  EXPECT_FALSE(registry_.UnitOf(&dma1_).ok());
  EXPECT_TRUE(registry_.UnbindDevice(&squatter).ok());
}

// ---- Every malformed case: an error, and no device bound ------------------------------------

class DtBindMalformed : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(fdt_.empty());
    ASSERT_TRUE(registry_.RegisterUnit(smmu_).ok());
    ASSERT_TRUE(registry_.RegisterUnit(smmu_b_).ok());
    units_[0] = {fdt_get_phandle(fdt_.data(), Node(fdt_, "/iommu@9050000")), &smmu_};
    units_[1] = {fdt_get_phandle(fdt_.data(), Node(fdt_, "/iommu@9070000")), &smmu_b_};
  }
  // Binds /good-dev, /good-dev-b and /pci-good RID 0 together with `path` (a node, or a PCI
  // host for `rid`); returns the status and checks that nothing was bound.
  Status BindWith(const char* path, bool pci, std::string* log = nullptr) {
    const NodeDevice good[] = {{"/good-dev", &good_}, {"/good-dev-b", &good_b_}};
    NodeDevice nodes[3] = {good[0], good[1], {path, &bad_}};
    PciDevice pcis[2] = {{"/pci-good", 0x0, &good_pci_}, {path, 0x20, &bad_}};
    BindRequest r;
    r.fdt = fdt_.data();
    r.units = units_;
    r.nodes = std::span(nodes, pci ? 2 : 3);
    r.pci = std::span(pcis, pci ? 2 : 1);
    DeviceStreams out[4];
    ::testing::internal::CaptureStderr();
    const Status s = BindFromDevicetree(registry_, r, out);
    const std::string text = ::testing::internal::GetCapturedStderr();
    if (log != nullptr) *log = text;
    for (const device* d : {&good_, &good_b_, &good_pci_, &bad_}) {
      EXPECT_FALSE(registry_.UnitOf(d).ok()) << d->name << " bound despite " << path;
    }
    EXPECT_FALSE(text.empty()) << "no log line for " << path;
    return s;
  }

  std::vector<uint8_t> fdt_ = LoadBlob("malformed");
  FakeUnit smmu_{Named("smmu")};  // SIDSIZE 16: max_sid 0xffff
  FakeUnit smmu_b_{Named("smmu_b")};
  UnitEntry units_[2];
  Registry registry_;
  device good_{"good"};
  device good_b_{"good-b"};
  device good_pci_{"good-pci"};
  device bad_{"bad"};
};

TEST_F(DtBindMalformed, TheGoodOnesAloneBind) {
  const NodeDevice nodes[] = {{"/good-dev", &good_}, {"/good-dev-b", &good_b_}};
  const PciDevice pci[] = {{"/pci-good", 0x0, &good_pci_}};
  BindRequest r;
  r.fdt = fdt_.data();
  r.units = units_;
  r.nodes = nodes;
  r.pci = pci;
  DeviceStreams out[3];
  ASSERT_TRUE(BindFromDevicetree(registry_, r, out).ok());
  EXPECT_EQ(out[2].sids[0], 0x100U);
  EXPECT_TRUE(UnbindAll(registry_, out).ok());
}

TEST_F(DtBindMalformed, DanglingPhandle) {
  std::string log;
  EXPECT_EQ(BindWith("/dangling", false, &log), Status::InvalidArgument());
  EXPECT_NE(log.find("/dangling: iommus:"), std::string::npos) << log;
  EXPECT_EQ(BindWith("/pci-dangling", true, &log), Status::InvalidArgument());
  EXPECT_NE(log.find("/pci-dangling: iommu-map:"), std::string::npos) << log;
}

TEST_F(DtBindMalformed, IommuCellsMismatch) {
  EXPECT_EQ(BindWith("/cells-mismatch", false), Status::InvalidArgument());
  EXPECT_EQ(BindWith("/pci-cells", true), Status::InvalidArgument());
}

TEST_F(DtBindMalformed, TruncatedProperty) {
  std::string log;
  EXPECT_EQ(BindWith("/truncated", false, &log), Status::InvalidArgument());
  EXPECT_NE(log.find("truncated"), std::string::npos) << log;
  EXPECT_EQ(BindWith("/odd-length", false), Status::InvalidArgument());
  EXPECT_EQ(BindWith("/pci-truncated", true), Status::InvalidArgument());
}

TEST_F(DtBindMalformed, StreamIdBeyondTheUnitsSidSize) {
  std::string log;
  EXPECT_EQ(BindWith("/big-sid", false, &log), Status::InvalidArgument());
  EXPECT_NE(log.find("/big-sid: iommus: StreamID 0x10000 beyond"), std::string::npos) << log;
  // RID 0x20 -> 0xfff0 + 0x20 = 0x10010.
  EXPECT_EQ(BindWith("/pci-big-sid", true, &log), Status::InvalidArgument());
  EXPECT_NE(log.find("StreamID 0x10010 beyond"), std::string::npos) << log;
}

TEST_F(DtBindMalformed, OtherRefusals) {
  EXPECT_EQ(BindWith("/no-iommus", false), Status::NotFound());
  EXPECT_EQ(BindWith("/two-iommus", false), Status::NotSupported());
  EXPECT_EQ(BindWith("/same-sid-twice", false), Status::InvalidArgument());
  EXPECT_EQ(BindWith("/pci-mask", true), Status::InvalidArgument());
  EXPECT_EQ(BindWith("/pci-wrap", true), Status::InvalidArgument());
  // Two nodes given one StreamID of one unit.
  const NodeDevice nodes[] = {{"/dup-sid-a", &good_}, {"/dup-sid-b", &bad_}};
  BindRequest r;
  r.fdt = fdt_.data();
  r.units = units_;
  r.nodes = nodes;
  DeviceStreams out[2];
  EXPECT_EQ(BindFromDevicetree(registry_, r, out), Status::AlreadyExists());
  EXPECT_FALSE(registry_.UnitOf(&good_).ok());
}

// ---- The C ABI: deviso_ctx_alloc refuses a StreamID the devicetree did not give -------------

TEST(DtBindCApi, CtxAllocRefusesStreamIdsTheDevicetreeDidNotGive) {
  const std::vector<uint8_t> fdt = LoadBlob("good");
  ASSERT_FALSE(fdt.empty());
  Registry& registry = Registry::Default();
  FakeUnit smmu0(Named("dt-capi-smmu0"));
  FakeUnit smmu1(Named("dt-capi-smmu1"));
  ASSERT_TRUE(registry.RegisterUnit(smmu0).ok());
  ASSERT_TRUE(registry.RegisterUnit(smmu1).ok());
  const UnitEntry units[] = {{fdt_get_phandle(fdt.data(), Node(fdt, "/iommu@9050000")), &smmu0},
                             {fdt_get_phandle(fdt.data(), Node(fdt, "/iommu@9070000")), &smmu1}};
  device dma0{"dma0"};
  device dma1{"dma1"};
  device nic{"nic"};
  const NodeDevice nodes[] = {{"/dma@10000000", &dma0}, {"/dma@10001000", &dma1}};
  const PciDevice pci[] = {{"/pcie@40000000", 0x10, &nic}};
  BindRequest r;
  r.fdt = fdt.data();
  r.units = units;
  r.nodes = nodes;
  r.pci = pci;
  DeviceStreams out[3];
  ASSERT_TRUE(BindFromDevicetree(registry, r, out).ok());

  EXPECT_EQ(deviso_ctx_alloc(&dma0, 0x20), -EINVAL) << "dma1's StreamID (on another unit)";
  EXPECT_EQ(deviso_ctx_alloc(&dma0, 0x103), -EINVAL) << "next to its own";
  EXPECT_EQ(deviso_ctx_alloc(&dma1, 0x100), -EINVAL) << "dma0's StreamID";
  EXPECT_EQ(deviso_ctx_alloc(&nic, 0x10), -EINVAL) << "its RID, not its StreamID";
  EXPECT_EQ(deviso_ctx_alloc(&dma0, 0x101), 0);
  EXPECT_EQ(deviso_ctx_alloc(&nic, 0x508), 0);
  EXPECT_EQ(deviso_ctx_free(&dma0, 0x101), 0);
  EXPECT_EQ(deviso_ctx_free(&nic, 0x508), 0);

  EXPECT_TRUE(UnbindAll(registry, out).ok());
  EXPECT_TRUE(registry.UnregisterUnit(smmu0).ok());
  EXPECT_TRUE(registry.UnregisterUnit(smmu1).ok());
}

}  // namespace
}  // namespace deviso::dt
