// Tests of the virtio-iommu driver against the host fake of QEMU 7.2's device
// (testing/fake_device.h): request encoding against virtio 1.2 5.13.6, feature negotiation and
// default-deny, errors, partial unmaps, the record's honest errors, timeouts and recovery,
// fault events.

#include "virtio_iommu/virtio_iommu.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "deviso/config.h"
#include "deviso/deviso.h"
#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "ports/host/test_clock.h"
#include "testing/sim_memory.h"
#include "virtio_iommu/testing/fake_device.h"

namespace deviso::virtio_iommu {
namespace {

using testing::FakeVirtioIommu;
using Faked = FakeVirtioIommu;

constexpr uint32_t kSid = 0x18;
constexpr uint64_t kPage = 4096;
constexpr Paddr kPa = 0x4010'0000;
// Request deadlines are 20 ms of the test clock (ports/host/test_clock.h), never of the host's:
// each reading moves it 1 us, so a deadline is 20000 looks at the used ring.
constexpr uint64_t kTimeoutNs = 20'000'000;
constexpr uint64_t kPollStepNs = 1'000;

class Sink final : public FaultSink {
 public:
  void OnFault(const Fault& f) override { faults.push_back(f); }
  std::vector<Fault> faults;
};

void OnUnrouted(const deviso_fault* f, void* user) {
  static_cast<std::vector<Fault>*>(user)->push_back(*f);
}

uint32_t Le32(const std::vector<uint8_t>& b, size_t o) {
  uint32_t v;
  std::memcpy(&v, b.data() + o, 4);
  return v;
}
uint64_t Le64(const std::vector<uint8_t>& b, size_t o) {
  uint64_t v;
  std::memcpy(&v, b.data() + o, 8);
  return v;
}

class VirtioIommuTest : public ::testing::Test {
 protected:
  explicit VirtioIommuTest(const Faked::Options& options = {}) : fake_(mem_, options) {}

  VirtioIommu::Config MakeConfig() {
    VirtioIommu::Config c;
    c.pci = &fake_.config();
    c.bars[Faked::kBar] = &fake_.bar();
    c.dma = &mem_.dma();
    c.name = "virtio-iommu@test";
    c.timeout_ns = kTimeoutNs;
    return c;
  }
  // Probe + Init; then one domain with kSid attached.
  void Bring() {
    unit_.emplace(MakeConfig());
    ASSERT_TRUE(unit_->Probe().ok());
    ASSERT_TRUE(unit_->Init().ok());
  }
  Domain* NewDomain(Sink* sink = nullptr) {
    Result<Domain*> d = unit_->CreateDomain(DomainOptions{}, sink);
    EXPECT_TRUE(d.ok());
    return d.ok() ? *d : nullptr;
  }
  uint32_t Id(Domain* d) { return static_cast<VirtioIommuDomain*>(d)->id(); }
  // The fake's mapping table of `d` as [start, end] pairs.
  std::vector<std::pair<uint64_t, uint64_t>> Table(Domain* d) { return fake_.Ranges(Id(d)); }
  // What the fake's table should be for pages [first, first + n) of kIova.
  static std::vector<std::pair<uint64_t, uint64_t>> Pages(uint64_t iova, uint64_t first,
                                                          uint64_t n) {
    std::vector<std::pair<uint64_t, uint64_t>> v;
    for (uint64_t i = first; i < first + n; ++i) {
      v.emplace_back(iova + i * kPage, iova + (i + 1) * kPage - 1);
    }
    return v;
  }
  static std::vector<std::pair<uint64_t, uint64_t>> Concat(
      std::vector<std::pair<uint64_t, uint64_t>> a,
      const std::vector<std::pair<uint64_t, uint64_t>>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  // First member: it outlives the unit, whose destructor still waits for a reset.
  port::host::TestClock clock_{kPollStepNs};
  deviso::testing::SimPhysMemory mem_{deviso::testing::SimPhysMemory::Options{}};
  Faked fake_;
  std::optional<VirtioIommu> unit_;
};

// ---- Negotiation and default-deny ---------------------------------------------------------------

TEST_F(VirtioIommuTest, NegotiatesFeaturesAndClearsBypassBeforeDriverOk) {
  if (!config::kFaultReports) GTEST_SKIP() << "built without fault reports";
  // Before the driver, QEMU 7.2 lets every endpoint through (bypass = 1).
  EXPECT_EQ(fake_.bypass(), 1);
  EXPECT_EQ(fake_.Translate(kSid, kPa, true), kPa);
  Bring();
  using feature::Bit;
  EXPECT_EQ(fake_.driver_features(), Bit(feature::kVersion1) | Bit(feature::kMapUnmap) |
                                         Bit(feature::kBypassConfig) | Bit(feature::kInputRange) |
                                         Bit(feature::kDomainRange) | Bit(feature::kProbe) |
                                         Bit(feature::kMmio));
  // Not the legacy BYPASS, INDIRECT_DESC, EVENT_IDX or RING_RESET.
  EXPECT_EQ(fake_.driver_features() & (Bit(feature::kBypass) | Bit(28) | Bit(29) | Bit(40)), 0u);
  EXPECT_EQ(fake_.device_status(),
            status::kAcknowledge | status::kDriver | status::kFeaturesOk | status::kDriverOk);
  EXPECT_EQ(fake_.bypass(), 0);
  // Written after FEATURES_OK (BYPASS_CONFIG negotiated), before DRIVER_OK.
  EXPECT_EQ(fake_.status_at_bypass_write(),
            status::kAcknowledge | status::kDriver | status::kFeaturesOk);
  const UnitCaps& caps = unit_->caps();
  EXPECT_STREQ(caps.backend, "virtio-iommu");
  EXPECT_EQ(caps.page_sizes, kPage);  // the granule of page_size_mask 0xffff_ffff_ffff_f000
  EXPECT_EQ(caps.ias, 64);
  EXPECT_EQ(caps.max_sid, 0xffffu);
  EXPECT_EQ(unit_->probe_size(), 512u);

  // Default-deny from Init on: an endpoint nobody attached is blocked and reported.
  std::vector<Fault> unrouted;
  ASSERT_TRUE(unit_->SetUnroutedFaultHandler(&OnUnrouted, &unrouted).ok());
  EXPECT_EQ(fake_.Translate(kSid, kPa, true), std::nullopt);
  unit_->HandleEvents();
  ASSERT_EQ(unrouted.size(), 1u);
  EXPECT_EQ(unrouted[0].reason, DEVISO_FAULT_BLOCKED);
  EXPECT_EQ(unrouted[0].sid, kSid);
  EXPECT_EQ(unrouted[0].iova, kPa);
  EXPECT_EQ(unrouted[0].flags, DEVISO_FAULT_WRITE | DEVISO_FAULT_ADDR_VALID);
  EXPECT_EQ(unrouted[0].raw_type, kFaultRUnknown);
}

struct RefusalCase {
  const char* name;
  uint64_t drop_features;
  bool refuse_features;
  bool bypass_read_only;
  bool fails_in_probe;
};

class VirtioIommuRefusalTest : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(VirtioIommuRefusalTest, RefusesDevicesThatCannotIsolate) {
  const RefusalCase& c = GetParam();
  deviso::testing::SimPhysMemory mem{deviso::testing::SimPhysMemory::Options{}};
  Faked::Options o;
  o.features &= ~c.drop_features;
  o.refuse_features = c.refuse_features;
  o.bypass_read_only = c.bypass_read_only;
  Faked fake(mem, o);
  VirtioIommu::Config cfg;
  cfg.pci = &fake.config();
  cfg.bars[Faked::kBar] = &fake.bar();
  cfg.dma = &mem.dma();
  VirtioIommu unit(cfg);
  const size_t free_before = mem.dma_free_pages();
  Status s = unit.Probe();
  if (c.fails_in_probe) {
    EXPECT_EQ(s, Status::NotSupported()) << c.name;
    return;
  }
  ASSERT_TRUE(s.ok()) << c.name;
  EXPECT_EQ(unit.Init(), Status::NotSupported()) << c.name;
  EXPECT_EQ(mem.dma_free_pages(), free_before) << c.name << ": nothing stays allocated";
  EXPECT_EQ(fake.device_status() & status::kDriverOk, 0) << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, VirtioIommuRefusalTest,
    ::testing::Values(
        RefusalCase{"no VERSION_1", feature::Bit(feature::kVersion1), false, false, true},
        RefusalCase{"no MAP_UNMAP", feature::Bit(feature::kMapUnmap), false, false, true},
        RefusalCase{"no BYPASS_CONFIG", feature::Bit(feature::kBypassConfig), false, false, true},
        RefusalCase{"FEATURES_OK refused", 0, true, false, false},
        RefusalCase{"bypass stays 1", 0, false, true, false}));

// ---- Request encoding (virtio 1.2 5.13.6) ------------------------------------------------------

// The unit's own virtqueues and request buffers (the first DMA pages the unit allocated) are
// never given to a device: a device could forge requests (issue 10). -EPERM, nothing sent.
TEST_F(VirtioIommuTest, MappingTheUnitsOwnQueuesIsRefused) {
  constexpr uint64_t kIova = 0x100'0000;
  Bring();
  Domain* d = NewDomain();
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  const size_t requests = fake_.log().size();
  EXPECT_TRUE(unit_->UsesMemory(mem_.base(), kPage));
  EXPECT_EQ(unit_->Map(d, kIova, mem_.base(), kPage, kPermReadWrite, MemType::kNormal),
            Status::PermissionDenied());
  EXPECT_EQ(unit_->Map(d, kIova, mem_.base(), 64 * kPage, kPermRead, MemType::kNormal),
            Status::PermissionDenied());
  EXPECT_EQ(fake_.log().size(), requests) << "a MAP of the unit's own memory was sent";
  EXPECT_EQ(fake_.Translate(kSid, kIova, false), std::nullopt);
  Result<DmaBuffer> buf = mem_.dma().Allocate(kPage, kPage);
  ASSERT_TRUE(buf.ok());
  EXPECT_FALSE(unit_->UsesMemory(buf->pa, kPage));
  EXPECT_EQ(unit_->Map(d, kIova, buf->pa, kPage, kPermReadWrite, MemType::kNormal), Status::Ok());
}

// Memory the platform lists as deviso's own (Config::own_memory: e.g. the CPU map's tables)
// is refused like the queues: -EPERM for any overlap, no request sent; outside it maps.
TEST_F(VirtioIommuTest, MappingThePlatformsOwnMemoryIsRefused) {
  constexpr uint64_t kIova = 0x100'0000;
  constexpr Paddr kTables = 0x4100'0000;  // not DMA memory of the fake: only listed
  VirtioIommu::Config c = MakeConfig();
  c.own_memory[1] = {kTables, 4 * kPage};
  unit_.emplace(c);
  ASSERT_TRUE(unit_->Probe().ok());
  ASSERT_TRUE(unit_->Init().ok());
  Domain* d = NewDomain();
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  const size_t requests = fake_.log().size();
  EXPECT_TRUE(unit_->UsesMemory(kTables + 3 * kPage, kPage));
  EXPECT_EQ(unit_->Map(d, kIova, kTables, kPage, kPermRead, MemType::kNormal),
            Status::PermissionDenied());
  // A range that only ends inside it.
  EXPECT_EQ(unit_->Map(d, kIova, kTables - kPage, 2 * kPage, kPermRead, MemType::kNormal),
            Status::PermissionDenied());
  EXPECT_EQ(fake_.log().size(), requests) << "a MAP of the platform's own memory was sent";
  EXPECT_EQ(fake_.Translate(kSid, kIova, false), std::nullopt);
  EXPECT_FALSE(unit_->UsesMemory(kTables + 4 * kPage, kPage));
  EXPECT_EQ(unit_->Map(d, kIova, kTables + 4 * kPage, kPage, kPermRead, MemType::kNormal),
            Status::Ok());
}

TEST_F(VirtioIommuTest, RequestsAreEncodedAsTheSpecLaysThemOut) {
  Bring();
  Domain* d = NewDomain();
  fake_.ClearLog();
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  ASSERT_TRUE(unit_->Map(d, 0x10'0000, kPa, kPage, kPermRead | kPermWrite, MemType::kNormal).ok());
  ASSERT_TRUE(unit_->Map(d, 0x20'0000, 0x1000'0000, kPage, kPermRead, MemType::kDevice).ok());
  ASSERT_TRUE(unit_->Unmap(d, 0x10'0000, kPage).ok());
  ASSERT_TRUE(unit_->Detach(d, kSid).ok());
  const auto log = fake_.log();
  ASSERT_EQ(log.size(), 6u);

  // PROBE (sent before the first ATTACH of an endpoint): head, le32 endpoint, reserved[64].
  EXPECT_EQ(log[0].type, 5);
  ASSERT_EQ(log[0].bytes.size(), 72u);
  EXPECT_EQ(Le32(log[0].bytes, 4), kSid);
  for (size_t i = 1; i < 4; ++i) EXPECT_EQ(log[0].bytes[i], 0) << "head.reserved";
  for (size_t i = 8; i < 72; ++i) EXPECT_EQ(log[0].bytes[i], 0) << "reserved";

  // ATTACH: type 1, reserved[3], le32 domain @4, le32 endpoint @8, le32 flags @12, reserved[4].
  const auto& at = log[1].bytes;
  EXPECT_EQ(log[1].type, 1);
  ASSERT_EQ(at.size(), 20u);
  EXPECT_EQ(Le32(at, 4), Id(d));
  EXPECT_EQ(Le32(at, 8), kSid);
  EXPECT_EQ(Le32(at, 12), 0u) << "never ATTACH_F_BYPASS";
  EXPECT_EQ(Le32(at, 16), 0u);

  // MAP: type 3, le32 domain @4, le64 virt_start @8, le64 virt_end @16 (inclusive),
  // le64 phys_start @24, le32 flags @32: 36 bytes before the tail.
  const auto& m = log[2].bytes;
  EXPECT_EQ(log[2].type, 3);
  ASSERT_EQ(m.size(), 36u);
  EXPECT_EQ(Le32(m, 4), Id(d));
  EXPECT_EQ(Le64(m, 8), 0x10'0000u);
  EXPECT_EQ(Le64(m, 16), 0x10'0fffu);
  EXPECT_EQ(Le64(m, 24), kPa);
  EXPECT_EQ(Le32(m, 32), kMapFRead | kMapFWrite);
  // kDevice: READ | MMIO.
  EXPECT_EQ(Le32(log[3].bytes, 32), kMapFRead | kMapFMmio);

  // UNMAP: type 4, le32 domain @4, le64 virt_start @8, le64 virt_end @16, reserved[4] @24.
  const auto& u = log[4].bytes;
  EXPECT_EQ(log[4].type, 4);
  ASSERT_EQ(u.size(), 28u);
  EXPECT_EQ(Le32(u, 4), Id(d));
  EXPECT_EQ(Le64(u, 8), 0x10'0000u);
  EXPECT_EQ(Le64(u, 16), 0x10'0fffu);
  EXPECT_EQ(Le32(u, 24), 0u);

  // DETACH: type 2, le32 domain @4, le32 endpoint @8, reserved[8].
  const auto& dt = log[5].bytes;
  EXPECT_EQ(log[5].type, 2);
  ASSERT_EQ(dt.size(), 20u);
  EXPECT_EQ(Le32(dt, 4), Id(d));
  EXPECT_EQ(Le32(dt, 8), kSid);
  EXPECT_EQ(Le64(dt, 12), 0u);
  for (const auto& r : log) EXPECT_EQ(r.status, 0) << "type " << int{r.type};
}

TEST_F(VirtioIommuTest, ProbeReportsTheReservedRegionAndMapsKeepOutOfIt) {
  Bring();
  Domain* d = NewDomain();
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  ReservedRegion r[4];
  ASSERT_EQ(unit_->ReservedRegions(kSid, r), 1u);
  EXPECT_EQ(r[0].start, 0x0802'0000u);
  EXPECT_EQ(r[0].size, 0x1000u);
  EXPECT_EQ(r[0].kind, ReservedRegion::Kind::kMsi);
  EXPECT_EQ(unit_->ReservedRegions(0x20, r), 0u) << "not probed";
  fake_.ClearLog();
  EXPECT_EQ(unit_->Map(d, 0x0801'f000, kPa, 2 * kPage, kPermRead, MemType::kNormal),
            Status::InvalidArgument());
  EXPECT_TRUE(fake_.log().empty());
  EXPECT_TRUE(unit_->Map(d, 0x0801'f000, kPa, kPage, kPermRead, MemType::kNormal).ok());
}

// ---- Map, partial unmap, the record -------------------------------------------------------------

TEST_F(VirtioIommuTest, MapsOnePagePerRequestBatchedPerNotify) {
  Bring();
  Domain* d = NewDomain();
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  const uint64_t notifies = fake_.notifies();
  fake_.ClearLog();
  constexpr uint64_t kIova = 0x100'0000;
  ASSERT_TRUE(unit_->Map(d, kIova, kPa, 100 * kPage, kPermReadWrite, MemType::kNormal).ok());
  EXPECT_EQ(Table(d), Pages(kIova, 0, 100));
  EXPECT_EQ(fake_.log().size(), 100u);
  // 100 requests in batches of 32: 4 notifications.
  EXPECT_EQ(fake_.notifies() - notifies, 4u);
  EXPECT_EQ(fake_.Translate(kSid, kIova + 7 * kPage + 12, true), kPa + 7 * kPage + 12);
  EXPECT_EQ(*unit_->IovaToPhys(d, kIova + 99 * kPage + 5), kPa + 99 * kPage + 5);
}

TEST_F(VirtioIommuTest, PartialUnmapsAreExactAndNeverRemapTheRest) {
  Bring();
  Domain* d = NewDomain();
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  constexpr uint64_t kIova = 0x100'0000;
  ASSERT_TRUE(unit_->Map(d, kIova, kPa, 16 * kPage, kPermReadWrite, MemType::kNormal).ok());
  auto* vd = static_cast<VirtioIommuDomain*>(d);

  struct Step {
    uint64_t first, n;  // pages to unmap
    std::vector<std::pair<uint64_t, uint64_t>> left;
    size_t extents;
  };
  const Step steps[] = {
      {6, 2, Concat(Pages(kIova, 0, 6), Pages(kIova, 8, 8)), 2},   // the middle
      {0, 1, Concat(Pages(kIova, 1, 5), Pages(kIova, 8, 8)), 2},   // the head
      {15, 1, Concat(Pages(kIova, 1, 5), Pages(kIova, 8, 7)), 2},  // the tail
      {3, 1, Concat(Concat(Pages(kIova, 1, 2), Pages(kIova, 4, 2)), Pages(kIova, 8, 7)), 3},
      {8, 1, Concat(Concat(Pages(kIova, 1, 2), Pages(kIova, 4, 2)), Pages(kIova, 9, 6)), 3},
  };
  for (const Step& s : steps) {
    fake_.ClearLog();
    ASSERT_TRUE(unit_->Unmap(d, kIova + s.first * kPage, s.n * kPage).ok()) << s.first;
    // One UNMAP, no MAP: the pages that stay mapped were never touched.
    const auto log = fake_.log();
    ASSERT_EQ(log.size(), 1u);
    EXPECT_EQ(log[0].type, 4);
    EXPECT_EQ(log[0].status, 0);
    EXPECT_EQ(Table(d), s.left) << "after unmapping pages " << s.first << "+" << s.n;
    EXPECT_EQ(vd->extent_count(), s.extents);
    for (const auto& [start, end] : s.left) {
      EXPECT_EQ(fake_.Translate(kSid, start, false), kPa + (start - kIova));
      EXPECT_EQ(*unit_->IovaToPhys(d, end), kPa + (end - kIova));
    }
    EXPECT_EQ(unit_->IovaToPhys(d, kIova + s.first * kPage).status(), Status::NotFound());
  }
  // Across three extents: [1,3) [4,6) [6,8) [9,15) after mapping pages 6-7 again; unmap
  // pages 5..9 (page 8 is a hole: -ENOENT), then 5..8.
  ASSERT_TRUE(
      unit_->Map(d, kIova + 6 * kPage, kPa + 6 * kPage, 2 * kPage, kPermRead, MemType::kNormal)
          .ok());
  EXPECT_EQ(unit_->Unmap(d, kIova + 5 * kPage, 5 * kPage), Status::NotFound());
  EXPECT_EQ(Table(d), Concat(Pages(kIova, 1, 2), Concat(Pages(kIova, 4, 4), Pages(kIova, 9, 6))));
  ASSERT_TRUE(
      unit_->Map(d, kIova + 8 * kPage, kPa + 8 * kPage, kPage, kPermRead, MemType::kNormal).ok());
  fake_.ClearLog();
  ASSERT_TRUE(unit_->Unmap(d, kIova + 5 * kPage, 5 * kPage).ok());
  EXPECT_EQ(fake_.log().size(), 1u);
  EXPECT_EQ(Table(d), Concat(Concat(Pages(kIova, 1, 2), Pages(kIova, 4, 1)), Pages(kIova, 10, 5)));
  EXPECT_EQ(vd->extent_count(), 3u);
  EXPECT_EQ(*unit_->IovaToPhys(d, kIova + 10 * kPage), kPa + 10 * kPage);
}

TEST_F(VirtioIommuTest, OverlapIsEexistAndHoleIsEnoentWithNoRequestSent) {
  Bring();
  Domain* d = NewDomain();
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  constexpr uint64_t kIova = 0x100'0000;
  ASSERT_TRUE(unit_->Map(d, kIova, kPa, 4 * kPage, kPermReadWrite, MemType::kNormal).ok());
  const auto before = Table(d);
  fake_.ClearLog();
  // The device would say INVAL for the overlap: deviso says -EEXIST, as on SMMUv3.
  EXPECT_EQ(unit_->Map(d, kIova + 3 * kPage, kPa, 2 * kPage, kPermRead, MemType::kNormal),
            Status::AlreadyExists());
  EXPECT_EQ(unit_->Map(d, kIova - kPage, kPa, 2 * kPage, kPermRead, MemType::kNormal),
            Status::AlreadyExists());
  // The device would say OK for nothing mapped: -ENOENT, also for a range only partly mapped.
  EXPECT_EQ(unit_->Unmap(d, kIova + 8 * kPage, kPage), Status::NotFound());
  EXPECT_EQ(unit_->Unmap(d, kIova + 2 * kPage, 4 * kPage), Status::NotFound());
  EXPECT_EQ(unit_->Unmap(d, kIova - kPage, 2 * kPage), Status::NotFound());
  // Sub-page ranges: the device would take them (QEMU checks no alignment).
  EXPECT_EQ(unit_->Map(d, 0x200'0000, kPa, 100, kPermRead, MemType::kNormal),
            Status::InvalidArgument());
  EXPECT_EQ(unit_->Map(d, 0x200'0010, kPa, kPage, kPermRead, MemType::kNormal),
            Status::InvalidArgument());
  EXPECT_EQ(unit_->Map(d, 0x200'0000, kPa + 8, kPage, kPermRead, MemType::kNormal),
            Status::InvalidArgument());
  EXPECT_EQ(unit_->Unmap(d, kIova, 100), Status::InvalidArgument());
  EXPECT_EQ(unit_->Map(d, 0x200'0000, kPa, kPage, 0, MemType::kNormal), Status::InvalidArgument());
  EXPECT_EQ(unit_->Map(d, ~uint64_t{0} - kPage + 1, kPa, 2 * kPage, kPermRead, MemType::kNormal),
            Status::InvalidArgument());
  EXPECT_TRUE(fake_.log().empty());
  EXPECT_EQ(Table(d), before);
  EXPECT_EQ(unit_->IovaToPhys(d, kIova + 4 * kPage).status(), Status::NotFound());
}

TEST_F(VirtioIommuTest, ContiguousMapsShareOneExtent) {
  Bring();
  Domain* d = NewDomain();
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  auto* vd = static_cast<VirtioIommuDomain*>(d);
  constexpr uint64_t kIova = 0x100'0000;
  // A buffer mapped page by page, more pages than the record has entries, out of order: pages
  // 0, 2, 4, ... then 1, 3, 5, ... (each odd page fills a gap between two extents).
  constexpr uint64_t kPages = 2 * VirtioIommuDomain::kMaxExtents;
  for (uint64_t i = 0; i < kPages; i += 2) {
    ASSERT_TRUE(
        unit_->Map(d, kIova + i * kPage, kPa + i * kPage, kPage, kPermRead, MemType::kNormal).ok())
        << i;
  }
  EXPECT_EQ(vd->extent_count(), kPages / 2);
  for (uint64_t i = 1; i < kPages; i += 2) {
    ASSERT_TRUE(
        unit_->Map(d, kIova + i * kPage, kPa + i * kPage, kPage, kPermRead, MemType::kNormal).ok())
        << i;
  }
  EXPECT_EQ(vd->extent_count(), 1u);
  EXPECT_EQ(Table(d), Pages(kIova, 0, kPages));
  EXPECT_EQ(*unit_->IovaToPhys(d, kIova + (kPages - 1) * kPage), kPa + (kPages - 1) * kPage);
  // Not contiguous in PA, or other permissions: a separate extent.
  const uint64_t after = kIova + kPages * kPage;
  ASSERT_TRUE(unit_->Map(d, after, kPa + 0x100'0000, kPage, kPermRead, MemType::kNormal).ok());
  ASSERT_TRUE(
      unit_
          ->Map(d, after + kPage, kPa + 0x100'0000 + kPage, kPage, kPermReadWrite, MemType::kNormal)
          .ok());
  EXPECT_EQ(vd->extent_count(), 3u);
  // The merged extent unmaps like one mapping, page by page or at once.
  ASSERT_TRUE(unit_->Unmap(d, kIova + kPage, kPage).ok());
  EXPECT_EQ(vd->extent_count(), 4u);
  ASSERT_TRUE(unit_->Unmap(d, kIova + 2 * kPage, (kPages - 2) * kPage).ok());
  EXPECT_EQ(Table(d), Concat(Concat(Pages(kIova, 0, 1), Pages(after, 0, 1)), Pages(after, 1, 1)));
}

// Collects ForEachLeaf's extents.
class Leaves final : public LeafVisitor {
 public:
  bool Visit(const LeafExtent& e) override {
    seen.push_back(e);
    return seen.size() < stop_after;
  }
  std::vector<LeafExtent> seen;
  size_t stop_after = ~size_t{0};
};

TEST_F(VirtioIommuTest, ForEachLeafListsTheRecordAndNearLeafFindsTheClosestExtent) {
  Bring();
  Domain* d = NewDomain();
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  Leaves none;
  ASSERT_TRUE(unit_->ForEachLeaf(d, none).ok());
  EXPECT_TRUE(none.seen.empty());
  EXPECT_EQ(unit_->NearLeaf(d, 0x1000).status(), Status::NotFound());
  constexpr uint64_t kIova = 0x808'0000;
  // Two maps that continue each other merge (one extent of 16 pages); a read-only page and an
  // MMIO page further up stay apart.
  ASSERT_TRUE(unit_->Map(d, kIova, kPa, 8 * kPage, kPermReadWrite, MemType::kNormal).ok());
  ASSERT_TRUE(
      unit_->Map(d, kIova + 8 * kPage, kPa + 8 * kPage, 8 * kPage, kPermReadWrite, MemType::kNormal)
          .ok());
  ASSERT_TRUE(
      unit_->Map(d, kIova + 0x2'0000, kPa + 0x10'0000, kPage, kPermRead, MemType::kNormal).ok());
  ASSERT_TRUE(
      unit_->Map(d, kIova + 0x3'0000, kPa + 0x20'0000, kPage, kPermReadWrite, MemType::kDevice)
          .ok());
  Leaves all;
  ASSERT_TRUE(unit_->ForEachLeaf(d, all).ok());
  ASSERT_EQ(all.seen.size(), 3u);
  EXPECT_EQ(all.seen[0].iova, kIova);
  EXPECT_EQ(all.seen[0].pa, kPa);
  EXPECT_EQ(all.seen[0].size, 0x1'0000u);
  EXPECT_EQ(all.seen[0].perms, kPermReadWrite);
  EXPECT_EQ(all.seen[0].type, MemType::kNormal);
  EXPECT_EQ(all.seen[0].leaf_size, kPage);  // one MAP per page
  EXPECT_EQ(all.seen[1].perms, kPermRead);
  EXPECT_EQ(all.seen[2].type, MemType::kDevice);
  Leaves first;
  first.stop_after = 1;
  ASSERT_TRUE(unit_->ForEachLeaf(d, first).ok());
  EXPECT_EQ(first.seen.size(), 1u);
  // 0x40 past the end of the 64 KiB extent (0x8090040 = 0x8080000 + 0x10000 + 0x40).
  Result<NearestLeaf> past = unit_->NearLeaf(d, kIova + 0x1'0040);
  ASSERT_TRUE(past.ok());
  EXPECT_EQ(past->where, NearestLeaf::Where::kAfter);
  EXPECT_EQ(past->distance, 0x40u);
  EXPECT_EQ(past->extent.iova, kIova);
  Result<NearestLeaf> inside = unit_->NearLeaf(d, kIova + 0x2'0010);
  ASSERT_TRUE(inside.ok());
  EXPECT_EQ(inside->where, NearestLeaf::Where::kInside);
  EXPECT_EQ(inside->distance, 0x10u);
  // Below everything: the first extent, from before.
  Result<NearestLeaf> below = unit_->NearLeaf(d, kIova - 0x100);
  ASSERT_TRUE(below.ok());
  EXPECT_EQ(below->where, NearestLeaf::Where::kBefore);
  EXPECT_EQ(below->distance, 0x100u);
  // Nearer the extent above than the one below: the one above.
  Result<NearestLeaf> gap = unit_->NearLeaf(d, kIova + 0x2'0000 - 0x10);
  ASSERT_TRUE(gap.ok());
  EXPECT_EQ(gap->where, NearestLeaf::Where::kBefore);
  EXPECT_EQ(gap->extent.iova, kIova + 0x2'0000);
}

TEST_F(VirtioIommuTest, RecordFullIsEnomemWithNoChange) {
  Bring();
  Domain* d = NewDomain();
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  for (uint64_t i = 0; i < VirtioIommuDomain::kMaxExtents; ++i) {
    ASSERT_TRUE(
        unit_->Map(d, (i + 1) * 4 * kPage, kPa, 3 * kPage, kPermRead, MemType::kNormal).ok());
  }
  fake_.ClearLog();
  EXPECT_EQ(unit_->Map(d, 0x1000'0000, kPa, kPage, kPermRead, MemType::kNormal),
            Status::NoMemory());
  // Unmapping the middle page of an extent needs one more record entry.
  EXPECT_EQ(unit_->Unmap(d, 4 * kPage + kPage, kPage), Status::NoMemory());
  EXPECT_TRUE(fake_.log().empty());
  // The head still fits (the extent shrinks).
  EXPECT_TRUE(unit_->Unmap(d, 4 * kPage, kPage).ok());
}

TEST_F(VirtioIommuTest, MapBeforeAttachIsSentWithTheFirstAttachAndAfterReattach) {
  if (!config::kFaultReports) GTEST_SKIP() << "built without fault reports";
  Bring();
  Domain* d = NewDomain();
  constexpr uint64_t kIova = 0x100'0000;
  fake_.ClearLog();
  ASSERT_TRUE(unit_->Map(d, kIova, kPa, 3 * kPage, kPermRead, MemType::kNormal).ok());
  EXPECT_TRUE(fake_.log().empty()) << "the device has no such domain before its first ATTACH";
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  EXPECT_EQ(Table(d), Pages(kIova, 0, 3));
  // Detach of the last endpoint: QEMU drops the domain; the endpoint is blocked.
  ASSERT_TRUE(unit_->Detach(d, kSid).ok());
  EXPECT_TRUE(fake_.domains().empty());
  std::vector<Fault> unrouted;
  ASSERT_TRUE(unit_->SetUnroutedFaultHandler(&OnUnrouted, &unrouted).ok());
  EXPECT_EQ(fake_.Translate(kSid, kIova, false), std::nullopt);
  unit_->HandleEvents();
  ASSERT_EQ(unrouted.size(), 1u);
  EXPECT_EQ(unrouted[0].reason, DEVISO_FAULT_BLOCKED);
  EXPECT_EQ(unrouted[0].raw_type, kFaultRDomain);
  // Attached again: the record comes back. The UNMAP that first empties whatever the device
  // may have kept under this domain ID gets NOENT (QEMU dropped it): expected, not an error.
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  EXPECT_EQ(Table(d), Pages(kIova, 0, 3));
  EXPECT_EQ(fake_.Translate(kSid, kIova + kPage, false), kPa + kPage);
  EXPECT_EQ(unit_->stats().request_errors, 0u);
}

TEST_F(VirtioIommuTest, AttachDetachContract) {
  Bring();
  Domain* a = NewDomain();
  Domain* b = NewDomain();
  EXPECT_NE(Id(a), Id(b));
  ASSERT_TRUE(unit_->Attach(a, kSid).ok());
  // The device would silently move it: deviso refuses.
  fake_.ClearLog();
  EXPECT_EQ(unit_->Attach(b, kSid), Status::AlreadyExists());
  EXPECT_EQ(unit_->Attach(a, kSid), Status::AlreadyExists());
  EXPECT_EQ(unit_->Detach(b, kSid), Status::NotFound());
  EXPECT_TRUE(fake_.log().empty());
  EXPECT_EQ(unit_->DestroyDomain(a), Status::Busy());
  // Endpoint IDs the device would alias onto the low 16 bits.
  EXPECT_EQ(unit_->ValidateStream(0x10018), Status::InvalidArgument());
  EXPECT_EQ(unit_->Attach(b, 0x10018), Status::InvalidArgument());
  EXPECT_TRUE(unit_->ValidateStream(0xffff).ok());
  ASSERT_TRUE(unit_->Detach(a, kSid).ok());
  EXPECT_TRUE(unit_->DestroyDomain(a).ok());
  EXPECT_EQ(unit_->DestroyDomain(a), Status::InvalidArgument());
  EXPECT_EQ(unit_->CreateDomain(DomainOptions{DomainOptions::Stage::kStage2}, nullptr).status(),
            Status::NotSupported());
  EXPECT_EQ(
      unit_->CreateDomain(DomainOptions{DomainOptions::Stage::kDefault, 1 << 16}, nullptr).status(),
      Status::NotSupported());
}

// ---- Device errors ------------------------------------------------------------------------------

TEST(VirtioIommuStatusTest, EachStatusIsAClearErrno) {
  struct {
    ReqStatus status;
    Status expected;
  } const cases[] = {
      {ReqStatus::kOk, Status::Ok()},
      {ReqStatus::kIoErr, Status::IoError()},
      {ReqStatus::kUnsupp, Status::NotSupported()},
      {ReqStatus::kDevErr, Status::IoError()},
      {ReqStatus::kInval, Status::InvalidArgument()},
      {ReqStatus::kRange, Status::OutOfRange()},
      {ReqStatus::kNoEnt, Status::NotFound()},
      {ReqStatus::kFault, Status::IoError()},
      {ReqStatus::kNoMem, Status::NoMemory()},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(VirtioIommu::StatusToErrno(static_cast<uint8_t>(c.status)), c.expected)
        << int{static_cast<uint8_t>(c.status)};
  }
  EXPECT_EQ(VirtioIommu::StatusToErrno(0x42), Status::IoError());
  EXPECT_EQ(VirtioIommu::StatusToErrno(0xff), Status::IoError()) << "tail never written";
}

TEST_F(VirtioIommuTest, DeviceErrorsReachTheCallerWithNoChange) {
  Bring();
  Domain* d = NewDomain();
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  constexpr uint64_t kIova = 0x100'0000;
  ASSERT_TRUE(unit_->Map(d, kIova, kPa, 2 * kPage, kPermRead, MemType::kNormal).ok());
  const ReqStatus errors[] = {ReqStatus::kIoErr, ReqStatus::kUnsupp, ReqStatus::kDevErr,
                              ReqStatus::kInval, ReqStatus::kRange,  ReqStatus::kNoEnt,
                              ReqStatus::kFault, ReqStatus::kNoMem};
  for (ReqStatus e : errors) {
    const Status want = VirtioIommu::StatusToErrno(static_cast<uint8_t>(e));
    // The first MAP of a 40-page map fails, the other 31 of its batch succeed: what the
    // device took is unmapped again, the record unchanged.
    fake_.FailNext(static_cast<uint8_t>(ReqType::kMap), e);
    EXPECT_EQ(unit_->Map(d, 0x1000'0000, kPa, 40 * kPage, kPermRead, MemType::kNormal), want);
    EXPECT_EQ(Table(d), Pages(kIova, 0, 2));
    EXPECT_EQ(unit_->IovaToPhys(d, 0x1000'0000).status(), Status::NotFound());
    fake_.FailNext(static_cast<uint8_t>(ReqType::kUnmap), e);
    EXPECT_EQ(unit_->Unmap(d, kIova, kPage), want);
    EXPECT_EQ(*unit_->IovaToPhys(d, kIova), kPa);
    fake_.FailNext(static_cast<uint8_t>(ReqType::kDetach), e);
    EXPECT_EQ(unit_->Detach(d, kSid), want);
    EXPECT_EQ(static_cast<VirtioIommuDomain*>(d)->streams(), 1u);
    EXPECT_FALSE(unit_->broken());
  }
  Domain* other = NewDomain();
  fake_.FailNext(static_cast<uint8_t>(ReqType::kAttach), ReqStatus::kNoEnt);
  EXPECT_EQ(unit_->Attach(other, 0x20), Status::NotFound());
  EXPECT_EQ(unit_->Detach(other, 0x20), Status::NotFound());
}

// ---- Completion, timeouts, recovery -------------------------------------------------------------

class VirtioIommuAsyncTest : public VirtioIommuTest {
 protected:
  static Faked::Options Async() {
    Faked::Options o;
    o.complete_in_notify = false;
    return o;
  }
  // The clock stands still except for the device thread's turns.
  VirtioIommuAsyncTest() : VirtioIommuTest(Async()) { clock_.set_step(0); }
  // One turn of the device thread: complete what is pending, then let 1 ms pass. A deadline
  // expires only after 20 turns found the request still pending, and the first whole turn after
  // the notify completes it: however the threads are scheduled, the test cannot lose the race.
  void DeviceTurn() {
    fake_.Process();
    clock_.Advance(kTimeoutNs / 20);
  }
};

TEST_F(VirtioIommuAsyncTest, PollsTheUsedRingWhenTheDeviceCompletesLater) {
  std::atomic<bool> stop{false};
  std::thread device([&] {
    while (!stop.load()) {
      DeviceTurn();
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  Bring();
  Domain* d = NewDomain();
  EXPECT_TRUE(unit_->Attach(d, kSid).ok());
  EXPECT_TRUE(unit_->Map(d, 0x100'0000, kPa, 64 * kPage, kPermRead, MemType::kNormal).ok());
  EXPECT_TRUE(unit_->Unmap(d, 0x100'0000, 8 * kPage).ok());
  stop = true;
  device.join();
  EXPECT_EQ(Table(d), Pages(0x100'0000, 8, 56));
}

// A clock under which every request completes exactly when its deadline expires: the reading
// that takes the deadline (the first after a notify) returns the time unchanged; the next one
// lets the device complete everything pending and jumps past any deadline. The driver's look at
// the used ring before that reading finds nothing, the one after it finds the completion.
class CompletesAtTheDeadline final : public port::host::ClockSource {
 public:
  explicit CompletesAtTheDeadline(Faked& fake) : fake_(fake) {
    previous_ = port::host::SetClockSource(this);
  }
  ~CompletesAtTheDeadline() override { (void)port::host::SetClockSource(previous_); }
  CompletesAtTheDeadline(const CompletesAtTheDeadline&) = delete;
  CompletesAtTheDeadline& operator=(const CompletesAtTheDeadline&) = delete;
  uint64_t NowNs() override {
    const uint64_t notifies = fake_.notifies();
    if (notifies != seen_notifies_) {
      seen_notifies_ = notifies;
      armed_ = true;  // this reading is the deadline's start
    } else if (armed_) {
      armed_ = false;
      fake_.Process();
      now_ += 2 * kTimeoutNs;
      ++completions_at_deadline_;
    }
    return now_;
  }
  int completions_at_deadline() const { return completions_at_deadline_; }

 private:
  Faked& fake_;
  port::host::ClockSource* previous_ = nullptr;
  uint64_t seen_notifies_ = 0;
  bool armed_ = false;
  uint64_t now_ = 1'000'000'000;
  int completions_at_deadline_ = 0;
};

// A thread preempted between its last look at the used ring and the deadline check must still
// see the completion the device wrote meanwhile: that is not a timeout (the unit stays usable).
TEST_F(VirtioIommuAsyncTest, ACompletionWrittenAsTheDeadlineExpiresIsNotATimeout) {
  Bring();
  CompletesAtTheDeadline clock(fake_);
  Domain* d = NewDomain();
  ASSERT_EQ(unit_->Attach(d, kSid), Status::Ok());
  ASSERT_EQ(unit_->Map(d, 0x100'0000, kPa, 4 * kPage, kPermRead, MemType::kNormal), Status::Ok());
  ASSERT_EQ(unit_->Unmap(d, 0x100'0000, kPage), Status::Ok());
  EXPECT_GE(clock.completions_at_deadline(), 4) << "PROBE, ATTACH, MAP batch, UNMAP";
  EXPECT_FALSE(unit_->broken());
  EXPECT_EQ(unit_->stats().timeouts, 0u);
  EXPECT_EQ(Table(d), Pages(0x100'0000, 1, 3));
}

// Threads (label `concurrency`, run under TSan): each thread maps and unmaps on its own domain
// while another looks up what it unmaps, a device thread completes requests later and blocks
// DMA of an unattached endpoint, and an event thread drains the event queue meanwhile.
TEST_F(VirtioIommuAsyncTest, ThreadsOnSeparateDomainsWithLookupsRacingUnmaps) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 40;
  constexpr uint32_t kUnattached = kSid + 0x100;
  std::atomic<bool> stop{false};
  std::thread device([&] {
    while (!stop.load()) {
      DeviceTurn();
      (void)fake_.Translate(kUnattached, kPa, true);  // a rogue device: blocked, reported
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  });
  Bring();
  // Built without fault reports (the minimal profile) the events are still consumed.
  std::atomic<uint64_t> unrouted{0};
  const bool reports = unit_
                           ->SetUnroutedFaultHandler(
                               [](const deviso_fault* f, void* user) {
                                 if (f->reason == DEVISO_FAULT_BLOCKED) {
                                   static_cast<std::atomic<uint64_t>*>(user)->fetch_add(1);
                                 }
                               },
                               &unrouted)
                           .ok();
  EXPECT_EQ(reports, config::kFaultReports);
  std::thread events([&] {
    while (!stop.load()) {
      unit_->HandleEvents();
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  Domain* domains[kThreads];
  for (int t = 0; t < kThreads; ++t) {
    domains[t] = NewDomain();
    ASSERT_NE(domains[t], nullptr);
    ASSERT_TRUE(unit_->Attach(domains[t], kSid + static_cast<uint32_t>(t)).ok());
  }
  std::atomic<int> failures{0};
  std::atomic<uint64_t> seen_mapped{0};
  std::atomic<uint64_t> seen_unmapped{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const uint64_t iova = 0x100'0000 * static_cast<uint64_t>(t + 1);
      const uint64_t pa = kPa + static_cast<uint64_t>(t) * 16 * kPage;
      for (int r = 0; r < kRounds; ++r) {
        if (!unit_->Map(domains[t], iova, pa, 8 * kPage, kPermReadWrite, MemType::kNormal).ok() ||
            !unit_->Unmap(domains[t], iova + 2 * kPage, 2 * kPage).ok() ||
            !unit_->Unmap(domains[t], iova, 2 * kPage).ok() ||
            !unit_->Unmap(domains[t], iova + 4 * kPage, 4 * kPage).ok()) {
          failures.fetch_add(1);
        }
      }
    });
    // The lookup side: the answer is the right address or -ENOENT, never anything else.
    threads.emplace_back([&, t] {
      const uint64_t iova = 0x100'0000 * static_cast<uint64_t>(t + 1);
      const uint64_t pa = kPa + static_cast<uint64_t>(t) * 16 * kPage;
      for (int r = 0; r < kRounds * 20; ++r) {
        const Result<Paddr> got = unit_->IovaToPhys(domains[t], iova + 5 * kPage);
        if (got.ok()) {
          if (*got != pa + 5 * kPage) failures.fetch_add(1);
          seen_mapped.fetch_add(1);
        } else if (got.status() == Status::NotFound()) {
          seen_unmapped.fetch_add(1);
        } else {
          failures.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(Table(domains[t]).empty()) << t;  // every round unmapped all it mapped
    // (The device thread still runs: it completes the DETACH.)
    EXPECT_TRUE(unit_->Detach(domains[t], kSid + static_cast<uint32_t>(t)).ok());
  }
  stop = true;
  device.join();
  events.join();
  unit_->HandleEvents();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(seen_mapped.load() + seen_unmapped.load(), 0u);
  if (reports) {
    EXPECT_GT(unrouted.load(), 0u);
  }
  EXPECT_FALSE(unit_->broken());
}

TEST_F(VirtioIommuTest, ATimeoutBreaksTheUnitAndRecoverReplaysWithBypassCleared) {
  Bring();
  Sink sink;
  Domain* d = NewDomain(&sink);
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  constexpr uint64_t kIova = 0x100'0000;
  ASSERT_TRUE(unit_->Map(d, kIova, kPa, 4 * kPage, kPermReadWrite, MemType::kNormal).ok());
  fake_.SetHung(true);
  EXPECT_EQ(unit_->Unmap(d, kIova, kPage), Status::TimedOut());
  EXPECT_TRUE(unit_->broken());
  EXPECT_EQ(unit_->stats().timeouts, 1u);
  // The record still holds what the caller was told is mapped.
  EXPECT_EQ(*unit_->IovaToPhys(d, kIova), kPa);
  EXPECT_EQ(unit_->Map(d, 0x200'0000, kPa, kPage, kPermRead, MemType::kNormal), Status::IoError());
  EXPECT_EQ(unit_->Detach(d, kSid), Status::IoError());

  // Recovery: the reset drops everything on the device; bypass is cleared again before
  // DRIVER_OK and the record is replayed.
  const uint64_t resets = fake_.resets();
  ASSERT_TRUE(unit_->Recover().ok());
  EXPECT_GT(fake_.resets(), resets);
  EXPECT_FALSE(unit_->broken());
  EXPECT_EQ(fake_.bypass(), 0);
  EXPECT_EQ(fake_.device_status() & status::kDriverOk, status::kDriverOk);
  EXPECT_EQ(fake_.endpoints().at(kSid), Id(d));
  EXPECT_EQ(Table(d), Pages(kIova, 0, 4));
  EXPECT_EQ(fake_.Translate(0x20, kPa, true), std::nullopt) << "unattached: still blocked";
  EXPECT_TRUE(unit_->Unmap(d, kIova, kPage).ok());
  EXPECT_EQ(Table(d), Pages(kIova, 1, 3));
  EXPECT_EQ(unit_->stats().recoveries, 1u);
}

TEST_F(VirtioIommuTest, DeviceNeedsResetIsRecoveredWithTheRecordReplayed) {
  Bring();
  Domain* d = NewDomain();
  ASSERT_EQ(unit_->Attach(d, kSid), Status::Ok());
  ASSERT_EQ(unit_->Map(d, 0x100'0000, kPa, 2 * kPage, kPermRead, MemType::kNormal), Status::Ok());
  fake_.SetNeedsReset();
  EXPECT_NE(fake_.device_status() & status::kDeviceNeedsReset, 0);
  ASSERT_EQ(unit_->Recover(), Status::Ok());
  EXPECT_EQ(fake_.device_status() & status::kDeviceNeedsReset, 0);
  EXPECT_EQ(fake_.bypass(), 0);
  EXPECT_EQ(Table(d), Pages(0x100'0000, 0, 2));
  EXPECT_EQ(fake_.Translate(kSid, 0x100'0000, false), kPa);
}

TEST_F(VirtioIommuTest, AProbeThatNeverCompletesTimesOut) {
  Bring();
  fake_.SetHung(true);
  EXPECT_EQ(unit_->ProbeEndpoint(kSid), Status::TimedOut());
  EXPECT_TRUE(unit_->broken());
  ASSERT_TRUE(unit_->Recover().ok());
  EXPECT_TRUE(unit_->ProbeEndpoint(kSid).ok());
}

class VirtioIommuResetBypassTest : public VirtioIommuTest {
 protected:
  static Faked::Options Opts() {
    Faked::Options o;
    o.reset_restores_bypass = true;
    return o;
  }
  VirtioIommuResetBypassTest() : VirtioIommuTest(Opts()) {}
};

TEST_F(VirtioIommuResetBypassTest, RecoverClearsBypassAgainWhenTheResetRestoredIt) {
  Bring();
  Domain* d = NewDomain();
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  ASSERT_TRUE(unit_->Map(d, 0x100'0000, kPa, kPage, kPermRead, MemType::kNormal).ok());
  ASSERT_TRUE(unit_->Recover().ok());
  EXPECT_EQ(fake_.bypass(), 0);
  EXPECT_EQ(fake_.status_at_bypass_write(),
            status::kAcknowledge | status::kDriver | status::kFeaturesOk);
  EXPECT_EQ(fake_.Translate(0x20, kPa, false), std::nullopt);
  EXPECT_EQ(fake_.Translate(kSid, 0x100'0000, false), kPa);
}

TEST(VirtioIommuNonCoherentTest, CleansAndInvalidatesWhatTheDeviceSees) {
  if (!config::kFaultReports) GTEST_SKIP() << "built without fault reports";
  // The device sees only what the CPU cleaned (SimPhysMemory keeps a separate PoC copy).
  deviso::testing::SimPhysMemory::Options mo;
  mo.coherent = false;
  deviso::testing::SimPhysMemory mem{mo};
  Faked fake(mem, Faked::Options{});
  VirtioIommu::Config c;
  c.pci = &fake.config();
  c.bars[Faked::kBar] = &fake.bar();
  c.dma = &mem.dma();
  c.coherent = false;
  VirtioIommu unit(c);
  ASSERT_TRUE(unit.Probe().ok());
  ASSERT_TRUE(unit.Init().ok());
  Sink sink;
  Result<Domain*> d = unit.CreateDomain(DomainOptions{}, &sink);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(unit.Attach(*d, kSid).ok());
  ReservedRegion r[1];
  EXPECT_EQ(unit.ReservedRegions(kSid, r), 1u);
  ASSERT_TRUE(unit.Map(*d, 0x100'0000, kPa, 40 * kPage, kPermRead, MemType::kNormal).ok());
  ASSERT_TRUE(unit.Unmap(*d, 0x100'0000, 2 * kPage).ok());
  EXPECT_EQ(fake.Ranges(static_cast<VirtioIommuDomain*>(*d)->id()).size(), 38u);
  EXPECT_EQ(fake.Translate(kSid, 0x100'0000, false), std::nullopt);
  unit.HandleEvents();
  ASSERT_EQ(sink.faults.size(), 1u);
  EXPECT_EQ(sink.faults[0].iova, 0x100'0000u);
  EXPECT_GT(mem.cleans(), 0u);
}

// ---- A hostile device (issue 15) --------------------------------------------------------------
//
// Each mode breaks one rule; deviso must keep its own state intact, fail the call with -EIO,
// mark the unit broken (the request's effect is unknown), keep an Unmap's range recorded as
// reachable, free nothing, and come back with Recover(), whose replay restores exactly the
// record on the device.

class VirtioIommuHostileTest : public VirtioIommuTest {
 protected:
  static constexpr uint64_t kIova = 0x100'0000;
  void SetUp() override {
    Bring();
    d_ = NewDomain(&sink_);
    ASSERT_EQ(unit_->Attach(d_, kSid), Status::Ok());
    ASSERT_EQ(unit_->Map(d_, kIova, kPa, 4 * kPage, kPermReadWrite, MemType::kNormal),
              Status::Ok());
    free_pages_ = mem_.dma_free_pages();
  }
  // The unit is broken by a protocol error, has freed and allocated nothing, and Recover()
  // brings the device back to exactly the record.
  void ExpectBrokenThenRecovered(const std::vector<std::pair<uint64_t, uint64_t>>& record) {
    EXPECT_TRUE(unit_->broken());
    EXPECT_EQ(mem_.dma_free_pages(), free_pages_) << "nothing freed or allocated";
    EXPECT_EQ(unit_->Map(d_, 0x800'0000, kPa, kPage, kPermRead, MemType::kNormal),
              Status::IoError())
        << "a broken unit refuses work";
    fake_.SetHostile(Faked::Hostile::kNone, 0);
    ASSERT_EQ(unit_->Recover(), Status::Ok());
    EXPECT_FALSE(unit_->broken());
    EXPECT_EQ(Table(d_), record) << "the device holds exactly the record again";
    EXPECT_EQ(fake_.endpoints().at(kSid), Id(d_));
  }

  Sink sink_;
  Domain* d_ = nullptr;
  size_t free_pages_ = 0;
};

TEST_F(VirtioIommuHostileTest, AnswersOutOfOrderAreMatchedToTheirRequests) {
  // Legal without VIRTIO_F_IN_ORDER (2.7.8): each status is read from its own slot.
  fake_.SetHostile(Faked::Hostile::kOutOfOrder, 100);
  ASSERT_EQ(unit_->Map(d_, 0x200'0000, kPa, 40 * kPage, kPermRead, MemType::kNormal), Status::Ok());
  EXPECT_EQ(Table(d_), Concat(Pages(kIova, 0, 4), Pages(0x200'0000, 0, 40)));
  // The first MAP of the batch is refused and answered last: the whole map is undone.
  fake_.FailNext(static_cast<uint8_t>(ReqType::kMap), ReqStatus::kInval);
  EXPECT_EQ(unit_->Map(d_, 0x400'0000, kPa, 8 * kPage, kPermRead, MemType::kNormal),
            Status::InvalidArgument());
  EXPECT_EQ(Table(d_), Concat(Pages(kIova, 0, 4), Pages(0x200'0000, 0, 40)));
  EXPECT_FALSE(unit_->broken());
  EXPECT_EQ(unit_->stats().protocol_errors, 0u);
}

TEST_F(VirtioIommuHostileTest, AnAnswerGivenTwiceBreaksTheUnitAndTheRangeStaysReachable) {
  fake_.SetHostile(Faked::Hostile::kAnswerTwice, 1, static_cast<uint8_t>(ReqType::kUnmap));
  EXPECT_EQ(unit_->Unmap(d_, kIova, kPage), Status::IoError());
  EXPECT_EQ(unit_->stats().protocol_errors, 1u);
  EXPECT_EQ(*unit_->IovaToPhys(d_, kIova), kPa) << "still recorded as reachable";
  ExpectBrokenThenRecovered(Pages(kIova, 0, 4));
  EXPECT_EQ(unit_->Unmap(d_, kIova, kPage), Status::Ok());
  EXPECT_EQ(Table(d_), Pages(kIova, 1, 3));
}

TEST_F(VirtioIommuHostileTest, AWritePastTheTailLandsInTheGuardAndBreaksTheUnit) {
  static_assert(Faked::kOverrunBytes <= VirtioIommu::kGuardBytes);
  // Each of the batch's 8 answers writes 64 bytes past its tail, before the device reads the
  // next request: had they reached that request, its MAP would be garbage.
  fake_.SetHostile(Faked::Hostile::kOverrun, 8, static_cast<uint8_t>(ReqType::kMap));
  EXPECT_EQ(unit_->Map(d_, 0x200'0000, kPa + 16 * kPage, 8 * kPage, kPermRead, MemType::kNormal),
            Status::IoError());
  EXPECT_EQ(fake_.overruns().size(), 8u);
  EXPECT_EQ(Table(d_), Concat(Pages(kIova, 0, 4), Pages(0x200'0000, 0, 8)))
      << "every request of the batch reached the device intact";
  for (uint64_t i = 0; i < 8; ++i) {
    EXPECT_EQ(fake_.Translate(kSid, 0x200'0000 + i * kPage, false), kPa + (16 + i) * kPage);
  }
  // Not in the record: what the device took stays reachable only until Recover() resets it.
  EXPECT_EQ(unit_->IovaToPhys(d_, 0x200'0000).status(), Status::NotFound());
  EXPECT_GE(unit_->stats().protocol_errors, 1u);
  ExpectBrokenThenRecovered(Pages(kIova, 0, 4));
  EXPECT_EQ(fake_.Translate(kSid, 0x200'0000, false), std::nullopt);
  // PROBE's buffer has a guard too.
  fake_.SetHostile(Faked::Hostile::kOverrun, 1, static_cast<uint8_t>(ReqType::kProbe));
  Domain* other = NewDomain();
  EXPECT_EQ(unit_->Attach(other, 0x20), Status::IoError());
  EXPECT_TRUE(unit_->broken());
  EXPECT_EQ(static_cast<VirtioIommuDomain*>(other)->streams(), 0u);
}

TEST_F(VirtioIommuHostileTest, AnUnknownStatusBreaksTheUnitWhateverTheDeviceDid) {
  // The device unmapped the page but says 0x42: the record keeps it as reachable.
  fake_.SetHostile(Faked::Hostile::kUnknownStatus, 1, static_cast<uint8_t>(ReqType::kUnmap));
  EXPECT_EQ(unit_->Unmap(d_, kIova, kPage), Status::IoError());
  EXPECT_EQ(*unit_->IovaToPhys(d_, kIova), kPa);
  EXPECT_EQ(unit_->stats().protocol_errors, 1u);
  ExpectBrokenThenRecovered(Pages(kIova, 0, 4));
  // The device mapped the page but says 0x42: no undo is trusted to it; the reset drops it.
  fake_.SetHostile(Faked::Hostile::kUnknownStatus, 1, static_cast<uint8_t>(ReqType::kMap));
  EXPECT_EQ(unit_->Map(d_, 0x200'0000, kPa, kPage, kPermRead, MemType::kNormal), Status::IoError());
  EXPECT_EQ(unit_->IovaToPhys(d_, 0x200'0000).status(), Status::NotFound());
  ExpectBrokenThenRecovered(Pages(kIova, 0, 4));
}

TEST_F(VirtioIommuHostileTest, AUsedLengthBeyondTheBufferBreaksTheUnit) {
  fake_.SetHostile(Faked::Hostile::kUsedLenTooLarge, 1, static_cast<uint8_t>(ReqType::kDetach));
  EXPECT_EQ(unit_->Detach(d_, kSid), Status::IoError());
  EXPECT_EQ(static_cast<VirtioIommuDomain*>(d_)->streams(), 1u) << "still attached as recorded";
  EXPECT_EQ(unit_->stats().protocol_errors, 1u);
  ExpectBrokenThenRecovered(Pages(kIova, 0, 4));
}

TEST_F(VirtioIommuHostileTest, AUsedIndexMovingBackwardsBreaksTheUnit) {
  fake_.SetHostile(Faked::Hostile::kUsedIdxBackwards, 1, static_cast<uint8_t>(ReqType::kUnmap));
  EXPECT_EQ(unit_->Unmap(d_, kIova + kPage, 2 * kPage), Status::IoError());
  EXPECT_EQ(*unit_->IovaToPhys(d_, kIova + 2 * kPage), kPa + 2 * kPage);
  EXPECT_EQ(unit_->stats().protocol_errors, 1u);
  EXPECT_EQ(unit_->stats().timeouts, 0u) << "seen as garbled at once, not waited for";
  ExpectBrokenThenRecovered(Pages(kIova, 0, 4));
}

TEST_F(VirtioIommuHostileTest, ALostAnswerTimesOutAndTheRangeStaysReachable) {
  fake_.SetHostile(Faked::Hostile::kLoseAnswer, 1, static_cast<uint8_t>(ReqType::kUnmap));
  EXPECT_EQ(unit_->Unmap(d_, kIova, 4 * kPage), Status::TimedOut());
  EXPECT_EQ(unit_->stats().timeouts, 1u);
  for (uint64_t i = 0; i < 4; ++i)
    EXPECT_EQ(*unit_->IovaToPhys(d_, kIova + i * kPage), kPa + i * kPage);
  ExpectBrokenThenRecovered(Pages(kIova, 0, 4));
}

TEST_F(VirtioIommuHostileTest, GarbledEventsAreNotDeliveredAndBreakTheUnit) {
  if (!config::kFaultReports) GTEST_SKIP() << "built without fault reports";
  struct Case {
    const char* name;
    std::function<void(Faked::EventAnswer&)> garble;
  };
  const Case cases[] = {
      {"short record", [](Faked::EventAnswer& a) { a.used_len = 8; }},
      {"long record", [](Faked::EventAnswer& a) { a.used_len = 4096; }},
      {"buffer it does not hold", [](Faked::EventAnswer& a) { a.head = 1000; }},
      {"returned twice", [](Faked::EventAnswer& a) { a.copies = 2; }},
      {"used.idx backwards", [](Faked::EventAnswer& a) { a.idx_backwards = true; }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    fake_.SetEventHook(c.garble);
    sink_.faults.clear();
    EXPECT_EQ(fake_.Translate(kSid, kIova + 8 * kPage, true), std::nullopt);
    unit_->HandleEvents();
    unit_->HandleEvents();  // a second pass over a garbled ring changes nothing more
    fake_.SetEventHook(nullptr);
    // Only a record whose buffer came back once, whole, is believed (the first copy of a
    // twice-returned buffer is the one the device was given).
    EXPECT_LE(sink_.faults.size(), 1u);
    ExpectBrokenThenRecovered(Pages(kIova, 0, 4));
    // Events flow again after the reset.
    sink_.faults.clear();
    EXPECT_EQ(fake_.Translate(kSid, kIova + 8 * kPage, true), std::nullopt);
    unit_->HandleEvents();
    ASSERT_EQ(sink_.faults.size(), 1u);
    EXPECT_EQ(sink_.faults[0].iova, kIova + 8 * kPage);
    EXPECT_FALSE(unit_->broken());
  }
}

// ---- Faults (5.13.6.9) --------------------------------------------------------------------------

TEST(VirtioIommuDecodeTest, FaultRecordsDecode) {
  struct Case {
    uint8_t reason;
    uint32_t flags;
    bool attached, mapped;
    uint32_t want_reason, want_flags;
  } const cases[] = {
      {kFaultRMapping, kFaultFWrite | kFaultFAddress, true, false, DEVISO_FAULT_TRANSLATION,
       DEVISO_FAULT_WRITE | DEVISO_FAULT_ADDR_VALID},
      {kFaultRMapping, kFaultFWrite | kFaultFAddress, true, true, DEVISO_FAULT_PERMISSION,
       DEVISO_FAULT_WRITE | DEVISO_FAULT_ADDR_VALID},
      {kFaultRMapping, kFaultFRead | kFaultFExec | kFaultFAddress, true, false,
       DEVISO_FAULT_TRANSLATION, DEVISO_FAULT_READ | DEVISO_FAULT_EXEC | DEVISO_FAULT_ADDR_VALID},
      {kFaultRDomain, kFaultFRead, true, false, DEVISO_FAULT_BAD_CONFIG, DEVISO_FAULT_READ},
      {kFaultRUnknown, 0, true, false, DEVISO_FAULT_UNKNOWN, 0},
      {kFaultRUnknown, kFaultFRead | kFaultFAddress, false, false, DEVISO_FAULT_BLOCKED,
       DEVISO_FAULT_READ | DEVISO_FAULT_ADDR_VALID},
      {kFaultRDomain, kFaultFWrite, false, false, DEVISO_FAULT_BLOCKED, DEVISO_FAULT_WRITE},
  };
  for (const Case& c : cases) {
    FaultEvent e{};
    e.reason = c.reason;
    e.flags = c.flags;
    e.endpoint = 0x18;
    e.address = 0x1234'5000;
    const Fault f = VirtioIommu::DecodeFault(e, "u", c.attached, c.mapped);
    EXPECT_EQ(f.reason, c.want_reason) << int{c.reason};
    EXPECT_EQ(f.flags, c.want_flags) << int{c.reason};
    EXPECT_EQ(f.sid, 0x18u);
    EXPECT_EQ(f.raw_type, c.reason);
    EXPECT_STREQ(f.unit, "u");
    EXPECT_EQ(f.iova, (c.flags & kFaultFAddress) != 0 ? 0x1234'5000u : 0u);
  }
}

TEST_F(VirtioIommuTest, FaultsReachTheDomainsSinkAndBuffersAreReposted) {
  if (!config::kFaultReports) GTEST_SKIP() << "built without fault reports";
  Bring();
  Sink sink;
  Domain* d = NewDomain(&sink);
  ASSERT_TRUE(unit_->Attach(d, kSid).ok());
  constexpr uint64_t kIova = 0x100'0000;
  ASSERT_TRUE(unit_->Map(d, kIova, kPa, kPage, kPermRead, MemType::kNormal).ok());
  // A write into the read-only page: the device says MAPPING, the record says permission.
  EXPECT_EQ(fake_.Translate(kSid, kIova + 8, true), std::nullopt);
  // Nothing mapped there.
  EXPECT_EQ(fake_.Translate(kSid, kIova + kPage, false), std::nullopt);
  unit_->HandleEvents();
  ASSERT_EQ(sink.faults.size(), 2u);
  EXPECT_EQ(sink.faults[0].reason, DEVISO_FAULT_PERMISSION);
  EXPECT_EQ(sink.faults[0].flags, DEVISO_FAULT_WRITE | DEVISO_FAULT_ADDR_VALID);
  EXPECT_EQ(sink.faults[0].iova, kIova + 8);
  EXPECT_STREQ(sink.faults[0].unit, "virtio-iommu@test");
  EXPECT_EQ(sink.faults[1].reason, DEVISO_FAULT_TRANSLATION);
  EXPECT_EQ(sink.faults[1].flags, DEVISO_FAULT_READ | DEVISO_FAULT_ADDR_VALID);
  // Many more faults than the queue holds, drained as they come: none lost.
  sink.faults.clear();
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 50; ++i)
      EXPECT_EQ(fake_.Translate(kSid, kIova + kPage, true), std::nullopt);
    unit_->HandleEvents();
  }
  EXPECT_EQ(sink.faults.size(), 250u);
  EXPECT_EQ(fake_.dropped_events(), 0u);
  EXPECT_EQ(unit_->stats().events, 252u);
  // After Detach the sink is no longer called.
  ASSERT_TRUE(unit_->Detach(d, kSid).ok());
  sink.faults.clear();
  (void)fake_.Translate(kSid, kIova, false);
  unit_->HandleEvents();
  EXPECT_TRUE(sink.faults.empty());
  EXPECT_EQ(unit_->stats().unrouted_faults, 1u);
}

// ---- Through deviso's core ----------------------------------------------------------------------

TEST_F(VirtioIommuTest, TheCoresPartialUnmapWorksAsOnSmmuv3) {
  Bring();
  Registry registry;
  ASSERT_TRUE(registry.RegisterUnit(*unit_).ok());
  static const device kDev = {"ahci@0"};
  const uint32_t sids[] = {kSid};
  ASSERT_TRUE(registry.BindDevice(&kDev, *unit_, sids).ok());
  Result<Context> ctx = registry.AllocContext(&kDev, kSid);
  ASSERT_TRUE(ctx.ok());
  ASSERT_TRUE(ctx->Map(kPa, kPa, 8 * kPage, kPermReadWrite, MemType::kNormal).ok());
  EXPECT_EQ(ctx->Map(kPa + kPage, kPa + kPage, kPage, kPermRead, MemType::kNormal),
            Status::AlreadyExists());
  ASSERT_TRUE(ctx->Unmap(kPa + 2 * kPage, 3 * kPage).ok());
  EXPECT_EQ(ctx->Unmap(kPa + 2 * kPage, kPage), Status::NotFound());
  EXPECT_EQ(*ctx->IovaToPhys(kPa + 5 * kPage), kPa + 5 * kPage);
  EXPECT_EQ(fake_.Translate(kSid, kPa + kPage, true), kPa + kPage);
  EXPECT_EQ(fake_.Translate(kSid, kPa + 6 * kPage, true), kPa + 6 * kPage);
  EXPECT_EQ(fake_.Translate(kSid, kPa + 3 * kPage, true), std::nullopt);
  unit_->HandleEvents();
}

}  // namespace
}  // namespace deviso::virtio_iommu
