// Several SMMUs on the host model (issue 5, "Many at once"): two SMMUv3 register-level models,
// each driven by its own Smmuv3, discovered from one devicetree (testdata/two_smmus.dts), with
// devices bound from that devicetree. Outcomes are checked through the models' DMA: bytes in
// simulated memory, blocked accesses, and which unit reported each fault. CTest labels `dt` and
// `smmuv3`.

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

extern "C" {
#include <libfdt.h>
}

#include "deviso/config.h"
#include "deviso/registry.h"
#include "dt/bind.h"
#include "dt/devicetree.h"
#include "dt/dt_test_util.h"
#include "smmuv3/smmuv3.h"
#include "smmuv3/testing/smmu_model.h"
#include "testing/sim_memory.h"

namespace deviso::dt {
namespace {

using deviso::testing::SimPhysMemory;
using smmuv3::Smmuv3;
using smmuv3::testing::SmmuModel;
using testing::LoadBlob;

constexpr Iova kIova = 0x4000'0000;
constexpr size_t kPage = 4096;

// Faults a unit reported for StreamIDs with no context (default-deny hits).
struct UnroutedFaults {
  std::mutex mutex;
  std::vector<deviso_fault> faults;
  static void Record(const deviso_fault* f, void* user) {
    auto* self = static_cast<UnroutedFaults*>(user);
    std::lock_guard<std::mutex> lock(self->mutex);
    self->faults.push_back(*f);
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mutex);
    return faults.size();
  }
};

// One SMMU instance as a platform would bring it up from its devicetree node: a model standing
// for the registers at reg, and a driver named after the node.
struct Instance {
  Instance(SimPhysMemory& memory, const IommuNode& node, unsigned sid_bits)
      : model(memory, ModelOptions(sid_bits)) {
    std::snprintf(name, sizeof(name), "smmuv3@%llx",
                  static_cast<unsigned long long>(node.regs.base));
    Smmuv3::Config c;
    c.regs = &model;
    c.dma = &memory.dma();
    c.tables_4k = &memory.tables_4k();
    c.name = name;
    c.dma_coherent = node.dma_coherent;
    c.timeout_ns = 50'000'000;
    smmu = std::make_unique<Smmuv3>(c);
    model.SetEventqIrqHandler([this] { smmu->HandleEvents(); });
    model.SetGerrorIrqHandler([this] { smmu->HandleGlobalErrors(); });
    const Status handler = smmu->SetUnroutedFaultHandler(&UnroutedFaults::Record, &unrouted);
    EXPECT_EQ(handler, config::kFaultReports ? Status::Ok() : Status::NotSupported());
  }
  // As smmu_test.cc's rig: without teardown support a unit is never destroyed (leaked).
  ~Instance() {
    if constexpr (!config::kTeardown) (void)smmu.release();
  }
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  static SmmuModel::Options ModelOptions(unsigned sid_bits) {
    SmmuModel::Options o;
    o.sid_bits = sid_bits;
    return o;
  }

  char name[32] = {};
  SmmuModel model;
  UnroutedFaults unrouted;
  std::unique_ptr<Smmuv3> smmu;
};

class DtMultiSmmu : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(fdt_.empty());
    // Discovery: both SMMU nodes from the one devicetree.
    IommuNode nodes[4];
    const Result<size_t> n = FindIommus(fdt_.data(), nodes);
    ASSERT_TRUE(n.ok());
    ASSERT_EQ(*n, 2U);
    for (size_t i = 0; i < 2; ++i) {
      ASSERT_EQ(nodes[i].type, IommuType::kSmmuV3);
      // smmu_b's model has SIDSIZE 8 (the devicetree gives one device a StreamID beyond it).
      const unsigned sid_bits = nodes[i].regs.base == 0x9250000 ? 8 : 16;
      units_[i] = std::make_unique<Instance>(memory_, nodes[i], sid_bits);
      ASSERT_TRUE(units_[i]->smmu->Probe().ok());
      ASSERT_TRUE(units_[i]->smmu->Init(true).ok());
      ASSERT_TRUE(registry_.RegisterUnit(*units_[i]->smmu).ok());
      table_[i] = {nodes[i].phandle, units_[i]->smmu.get()};
    }
    ASSERT_STREQ(a().name, "smmuv3@9050000");
    ASSERT_STREQ(b().name, "smmuv3@9250000");
    ASSERT_EQ(b().smmu->caps().max_sid, 0xffU);

    // dma_a: smmu_a StreamIDs 0x10, 0x11; dma_b: smmu_b 0x10; PCI 00:01.0 (RID 0x08) behind
    // smmu_a as 0x48, 00:11.0 (RID 0x88) behind smmu_b as 0x48.
    const NodeDevice devs[] = {{"/dma@10000000", &dma_a_}, {"/dma@10001000", &dma_b_}};
    const PciDevice pci[] = {{"/pcie@40000000", 0x08, &nic_a_}, {"/pcie@40000000", 0x88, &nic_b_}};
    BindRequest r;
    r.fdt = fdt_.data();
    r.units = table_;
    r.nodes = devs;
    r.pci = pci;
    ASSERT_TRUE(BindFromDevicetree(registry_, r, bound_).ok());
  }
  void TearDown() override {
    EXPECT_TRUE(UnbindAll(registry_, bound_).ok());
    for (auto& u : units_) {
      if (u) {
        EXPECT_TRUE(registry_.UnregisterUnit(*u->smmu).ok());
      }
    }
  }

  Instance& a() { return *units_[0]; }
  Instance& b() { return *units_[1]; }

  // A page of DMA memory filled with `fill`, cleaned so the device sees it.
  DmaBuffer Buffer(uint8_t fill) {
    Result<DmaBuffer> buf = memory_.dma().Allocate(kPage, kPage);
    EXPECT_TRUE(buf.ok());
    std::memset(buf->cpu, fill, kPage);
    memory_.Clean(buf->cpu, kPage);
    return *buf;
  }
  std::vector<uint8_t> MemoryAt(Paddr pa, size_t n) {
    std::vector<uint8_t> out(n);
    EXPECT_TRUE(memory_.UnitRead(pa, out.data(), n));
    return out;
  }

  std::vector<uint8_t> fdt_ = LoadBlob("two_smmus");
  SimPhysMemory memory_{SimPhysMemory::Options{}};  // one physical memory behind both SMMUs
  std::unique_ptr<Instance> units_[2];
  UnitEntry table_[2];
  Registry registry_;
  device dma_a_{"dma_a"};
  device dma_b_{"dma_b"};
  device nic_a_{"nic_a"};
  device nic_b_{"nic_b"};
  DeviceStreams bound_[4];
};

TEST_F(DtMultiSmmu, DevicesLandOnTheUnitTheirNodeNames) {
  EXPECT_EQ(registry_.UnitOf(&dma_a_).value_or(nullptr), a().smmu.get());
  EXPECT_EQ(registry_.UnitOf(&dma_b_).value_or(nullptr), b().smmu.get());
  EXPECT_EQ(registry_.UnitOf(&nic_a_).value_or(nullptr), a().smmu.get());
  EXPECT_EQ(registry_.UnitOf(&nic_b_).value_or(nullptr), b().smmu.get());
  EXPECT_EQ(bound_[0].streams().size(), 2U);
  EXPECT_EQ(bound_[2].sids[0], 0x48U);
  EXPECT_EQ(bound_[3].sids[0], 0x48U);
}

TEST_F(DtMultiSmmu, EachDeviceReachesOnlyItsOwnBuffersAndFaultsOnItsOwnUnit) {
  // dma_a (smmu_a, StreamID 0x10) and dma_b (smmu_b, also 0x10) each get a context and a page
  // at the same device address.
  const DmaBuffer buf_a = Buffer(0);
  const DmaBuffer buf_b = Buffer(0xbb);
  Result<Context> ctx_a = registry_.AllocContext(&dma_a_, 0x10);
  Result<Context> ctx_b = registry_.AllocContext(&dma_b_, 0x10);
  ASSERT_TRUE(ctx_a.ok());
  ASSERT_TRUE(ctx_b.ok());
  EXPECT_EQ(ctx_a->unit(), a().smmu.get());
  EXPECT_EQ(ctx_b->unit(), b().smmu.get());
  ASSERT_TRUE(ctx_a->Map(kIova, buf_a.pa, kPage, kPermReadWrite).ok());
  ASSERT_TRUE(ctx_b->Map(kIova + kPage, buf_b.pa, kPage, kPermRead).ok());

  // dma_a's write lands in its buffer.
  std::vector<uint8_t> pattern(kPage);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(i * 13 + 1);
  ASSERT_TRUE(a().model.DeviceWrite(0x10, kIova, pattern.data(), pattern.size()).ok());
  EXPECT_EQ(MemoryAt(buf_a.pa, kPage), pattern);
  // dma_b reads its own (read-only) page.
  std::vector<uint8_t> back(kPage);
  ASSERT_TRUE(b().model.DeviceRead(0x10, kIova + kPage, back.data(), back.size()).ok());
  EXPECT_EQ(back, std::vector<uint8_t>(kPage, 0xbb));

  // dma_b aims at dma_a's device address and at its physical address: blocked, dma_a's buffer
  // untouched, the fault on smmu_b and on dma_b's context only.
  const std::vector<uint8_t> evil(kPage, 0xee);
  const uint64_t events_a = a().model.events_written();
  EXPECT_FALSE(b().model.DeviceWrite(0x10, kIova, evil.data(), 64).ok());
  EXPECT_FALSE(b().model.DeviceWrite(0x10, buf_a.pa, evil.data(), 64).ok());
  EXPECT_EQ(MemoryAt(buf_a.pa, kPage), pattern) << "dma_a's buffer changed";
  // And its own read-only page stays read-only.
  EXPECT_FALSE(b().model.DeviceWrite(0x10, kIova + kPage, evil.data(), 64).ok());
  EXPECT_EQ(MemoryAt(buf_b.pa, kPage), std::vector<uint8_t>(kPage, 0xbb));

  EXPECT_EQ(a().model.events_written(), events_a) << "smmu_a saw nothing";
  EXPECT_GE(b().model.events_written(), 3U);
  for (const auto& e : b().model.recent_events()) {
    EXPECT_EQ(e.stream_id(), 0x10U);
  }
  if constexpr (config::kFaultReports) {
    EXPECT_GE(ctx_b->fault_count().value_or(0), 3U);
    EXPECT_EQ(ctx_a->fault_count().value_or(99), 0U) << "same StreamID number, other unit";
    // The faults name smmu_b.
    struct Last {
      std::mutex mutex;
      std::string unit;
      uint32_t sid = 0;
    } last;
    ASSERT_TRUE(ctx_b
                    ->SetFaultHandler(
                        [](const deviso_fault* f, void* user) {
                          auto* l = static_cast<Last*>(user);
                          std::lock_guard<std::mutex> lock(l->mutex);
                          l->unit = f->unit;
                          l->sid = f->sid;
                        },
                        &last)
                    .ok());
    EXPECT_FALSE(b().model.DeviceWrite(0x10, kIova, evil.data(), 4).ok());
    std::lock_guard<std::mutex> lock(last.mutex);
    EXPECT_EQ(last.unit, "smmuv3@9250000");
    EXPECT_EQ(last.sid, 0x10U);
  }

  ASSERT_TRUE(ctx_a->Unmap(kIova, kPage).ok());
  ASSERT_TRUE(ctx_b->Unmap(kIova + kPage, kPage).ok());
  EXPECT_TRUE(registry_.FreeContext(&dma_a_, 0x10).ok());
  EXPECT_TRUE(registry_.FreeContext(&dma_b_, 0x10).ok());
}

TEST_F(DtMultiSmmu, PciFunctionWithoutContextIsBlockedOnItsOwnUnit) {
  // nic_b (RID 0x88 -> smmu_b StreamID 0x48) has no context: default deny on smmu_b. nic_a
  // has the same StreamID number on smmu_a, with a context and a mapping there.
  const DmaBuffer buf = Buffer(0x5a);
  Result<Context> ctx = registry_.AllocContext(&nic_a_, 0x48);
  ASSERT_TRUE(ctx.ok());
  ASSERT_TRUE(ctx->Map(kIova, buf.pa, kPage, kPermReadWrite).ok());
  const uint32_t word = 0x12345678;
  ASSERT_TRUE(a().model.DeviceWrite(0x48, kIova, &word, sizeof(word)).ok());
  EXPECT_EQ(MemoryAt(buf.pa, 4), std::vector<uint8_t>({0x78, 0x56, 0x34, 0x12}));

  const size_t unrouted_a = a().unrouted.count();
  const uint32_t evil = 0xeeeeeeee;
  EXPECT_FALSE(b().model.DeviceWrite(0x48, kIova, &evil, sizeof(evil)).ok());
  EXPECT_FALSE(b().model.DeviceWrite(0x48, buf.pa, &evil, sizeof(evil)).ok());
  EXPECT_EQ(MemoryAt(buf.pa, 4), std::vector<uint8_t>({0x78, 0x56, 0x34, 0x12}));
  EXPECT_EQ(a().unrouted.count(), unrouted_a);
  EXPECT_EQ(ctx->fault_count().value_or(0), 0U);
  if constexpr (config::kFaultReports) {
    // Default deny is an invalid STE: C_BAD_STE, reported as unrouted on smmu_b.
    ASSERT_GE(b().unrouted.count(), 2U);
    std::lock_guard<std::mutex> lock(b().unrouted.mutex);
    EXPECT_EQ(b().unrouted.faults[0].sid, 0x48U);
    EXPECT_STREQ(b().unrouted.faults[0].unit, "smmuv3@9250000");
  }
  ASSERT_TRUE(ctx->Unmap(kIova, kPage).ok());
  EXPECT_TRUE(registry_.FreeContext(&nic_a_, 0x48).ok());
}

TEST_F(DtMultiSmmu, StreamIdsOfTheOtherUnitAreRefused) {
  // dma_b is on smmu_b; 0x11 is dma_a's StreamID on smmu_a.
  EXPECT_EQ(registry_.AllocContext(&dma_b_, 0x11).status(), Status::InvalidArgument());
  EXPECT_EQ(registry_.AllocContext(&dma_a_, 0x48).status(), Status::InvalidArgument())
      << "nic_a's StreamID";
  EXPECT_EQ(registry_.AllocContext(&nic_b_, 0x10).status(), Status::InvalidArgument());
  // A shared domain on smmu_a cannot take smmu_b's device.
  Result<Context> shared = registry_.CreateDomain(*a().smmu);
  ASSERT_TRUE(shared.ok());
  EXPECT_EQ(registry_.Attach(*shared, &dma_b_, 0x10), Status::InvalidArgument());
  EXPECT_TRUE(registry_.DestroyDomain(*shared).ok());
}

TEST_F(DtMultiSmmu, AStreamIdBeyondOneUnitsSidSizeBindsNothing) {
  // dma@10002000 has smmu_b StreamID 0x100; smmu_b has SIDSIZE 8.
  device extra{"extra"};
  device extra_a{"extra_a"};
  const NodeDevice devs[] = {{"/dma@10002000", &extra}};
  const PciDevice pci[] = {{"/pcie@40000000", 0x10, &extra_a}};  // fine on its own
  BindRequest r;
  r.fdt = fdt_.data();
  r.units = table_;
  r.nodes = devs;
  r.pci = pci;
  DeviceStreams out[2];
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(BindFromDevicetree(registry_, r, out), Status::InvalidArgument());
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("/dma@10002000: iommus: StreamID 0x100 beyond what unit smmuv3@9250000"),
            std::string::npos)
      << log;
  EXPECT_FALSE(registry_.UnitOf(&extra).ok());
  EXPECT_FALSE(registry_.UnitOf(&extra_a).ok());
}

}  // namespace
}  // namespace deviso::dt
