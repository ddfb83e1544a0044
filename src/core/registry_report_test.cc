// The IOVA map and the readable fault reports (issue 16) over the real SMMUv3 driver and its
// host model: Registry::Dump() lists units, contexts, streams and merged extents;
// Context::NearLeaf() finds the mapping nearest to an address; Registry::FormatFault() and
// deviso_fault_format() name the device, its PCI BDF and that mapping, also from inside the
// fault handler; and NearLeaf/FormatFault racing map/unmap on other threads (label
// `concurrency`, clean under host-tsan) see a mapping the mapper made, or none.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "deviso/config.h"
#include "deviso/dump.h"
#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "smmuv3/smmuv3.h"
#include "smmuv3/testing/registry_rig.h"

namespace deviso {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint32_t kSidA = 0x10;  // 00:02.0
constexpr uint32_t kSidB = 0x18;  // 00:03.0, bound, no context

smmuv3::testing::RegistryRig::Options RigOptions(bool default_registry = false) {
  smmuv3::testing::RegistryRig::Options o;
  o.smmu.name = "smmuv3@9050000";
  o.smmu.dma_coherent = true;
  o.smmu.timeout_ns = 500'000'000;  // generous: TSan and a shared machine
  o.smmu.eventq_log2 = 8;
  o.default_registry = default_registry;
  return o;
}

class Rig : public smmuv3::testing::RegistryRig {
 public:
  explicit Rig(bool default_registry = false) : RegistryRig(RigOptions(default_registry)) {}

  void Start() {
    ASSERT_TRUE(RegistryRig::Start(true).ok());
    ASSERT_TRUE(registry->RegisterUnit(*smmu).ok());
    ASSERT_TRUE(registry->BindDevice(&a, *smmu, {&kSidA, 1}).ok());
    ASSERT_TRUE(registry->BindDevice(&b, *smmu, {&kSidB, 1}).ok());
    ASSERT_TRUE(registry->SetPciRequesterId(&a, 0x0010).ok());
    ASSERT_TRUE(registry->SetPciRequesterId(&b, 0x0018).ok());
  }
  Paddr Buffer(size_t bytes, size_t align = kPage) {
    Result<DmaBuffer> buf = memory.dma().Allocate(bytes, align);
    EXPECT_TRUE(buf.ok());
    return buf.ok() ? buf->pa : 0;
  }

  device a{"ahci@0000:00:02.0"};
  device b{"rogue@0000:00:03.0"};
};

class Lines final : public DumpSink {
 public:
  void Line(const char* line) override { lines.emplace_back(line); }
  std::vector<std::string> lines;
};

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

TEST(RegistryReport, DumpListsUnitsContextsStreamsAndMergedExtents) {
  Rig rig;
  rig.Start();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  Result<Context> ctx = rig.registry->AllocContext(&rig.a, kSidA);
  ASSERT_TRUE(ctx.ok());
  const Paddr pa = rig.Buffer(32 * kPage);
  // Two maps that continue each other in IOVA and PA: one extent. A read-only page after a
  // gap, and one page continuing it in IOVA but not in PA: two more.
  ASSERT_TRUE(ctx->Map(0x808'0000, pa, 8 * kPage, kPermReadWrite).ok());
  ASSERT_TRUE(ctx->Map(0x808'8000, pa + 8 * kPage, 8 * kPage, kPermReadWrite).ok());
  ASSERT_TRUE(ctx->Map(0x80a'0000, pa + 16 * kPage, kPage, kPermRead).ok());
  ASSERT_TRUE(ctx->Map(0x80a'1000, pa + 20 * kPage, kPage, kPermRead).ok());
  Lines out;
  ASSERT_TRUE(rig.registry->Dump(out).ok());
  const std::vector<std::string> want = {
      "deviso-dump 1",
      "unit smmuv3@9050000 backend smmuv3 ias " + std::to_string(rig.smmu->caps().ias) + " oas " +
          std::to_string(rig.smmu->caps().oas) + " pages " + Hex(rig.smmu->caps().page_sizes),
      "context 0 unit smmuv3@9050000 page 0x1000",
      "stream context 0 device ahci@0000:00:02.0 sid 0x10 pci 00:02.0",
      "map context 0 iova 0x8080000 size 0x10000 pa " + Hex(pa) +
          " perms rw type normal leaf 0x1000",
      "map context 0 iova 0x80a0000 size 0x1000 pa " + Hex(pa + 16 * kPage) +
          " perms r type normal leaf 0x1000",
      "map context 0 iova 0x80a1000 size 0x1000 pa " + Hex(pa + 20 * kPage) +
          " perms r type normal leaf 0x1000",
      "stream context - device rogue@0000:00:03.0 sid 0x18 pci 00:03.0",
      "end",
  };
  EXPECT_EQ(out.lines, want);
  for (const std::string& line : out.lines) EXPECT_LT(line.size(), size_t{DEVISO_DUMP_LINE_MAX});
  EXPECT_TRUE(rig.registry->FreeContext(&rig.a, kSidA).ok());
}

TEST(RegistryReport, ABlockIsOneLeafOfItsOwnSize) {
  Rig rig;
  rig.Start();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  Result<Context> ctx = rig.registry->AllocContext(&rig.a, kSidA);
  ASSERT_TRUE(ctx.ok());
  constexpr uint64_t k2M = 2 << 20;
  const Paddr pa = 0x1'0000'0000;  // a 2 MiB-aligned PA (Map needs no memory behind it)
  ASSERT_TRUE(ctx->Map(0x4000'0000, pa, k2M + kPage, kPermReadWrite).ok());
  std::vector<LeafExtent> seen;
  class Collect final : public LeafVisitor {
   public:
    explicit Collect(std::vector<LeafExtent>& v) : v_(v) {}
    bool Visit(const LeafExtent& e) override {
      v_.push_back(e);
      return true;
    }

   private:
    std::vector<LeafExtent>& v_;
  } collect(seen);
  ASSERT_TRUE(ctx->ForEachLeaf(collect).ok());
  ASSERT_EQ(seen.size(), 2u);  // a 2 MiB block, then a 4 KiB page: different leaf sizes
  EXPECT_EQ(seen[0].size, k2M);
  EXPECT_EQ(seen[0].leaf_size, k2M);
  EXPECT_EQ(seen[1].iova, 0x4000'0000u + k2M);
  EXPECT_EQ(seen[1].leaf_size, kPage);
  // NearLeaf across the two: inside the page, and past it.
  Result<NearestLeaf> past = ctx->NearLeaf(0x4000'0000 + k2M + kPage + 0x10);
  ASSERT_TRUE(past.ok());
  EXPECT_EQ(past->where, NearestLeaf::Where::kAfter);
  EXPECT_EQ(past->distance, 0x10u);
  EXPECT_EQ(past->extent.iova, 0x4000'0000u + k2M);
  EXPECT_TRUE(rig.registry->FreeContext(&rig.a, kSidA).ok());
  EXPECT_EQ(ctx->NearLeaf(0).status(), Status::NotFound());  // a freed context
}

// What the context's fault handler saw, and the report it wrote from inside the handler.
struct Seen {
  Fault fault{};
  int faults = 0;
  std::string line_in_handler;
  Registry* registry = nullptr;
};

void OnFault(const deviso_fault* fault, void* user) {
  auto* seen = static_cast<Seen*>(user);
  seen->fault = *fault;
  ++seen->faults;
  char line[256];
  if (seen->registry->FormatFault(*fault, line, sizeof(line)) > 0) seen->line_in_handler = line;
}

// The report of a fault built by hand (any build, also without fault delivery).
TEST(RegistryReport, AHandBuiltFaultsReportNamesTheNearestMapping) {
  Rig rig;
  rig.Start();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  Result<Context> ctx = rig.registry->AllocContext(&rig.a, kSidA);
  ASSERT_TRUE(ctx.ok());
  ASSERT_TRUE(ctx->Map(0x808'0000, rig.Buffer(16 * kPage), 16 * kPage, kPermReadWrite).ok());
  Fault f{};
  f.sid = kSidA;
  f.reason = DEVISO_FAULT_TRANSLATION;
  f.flags = DEVISO_FAULT_READ | DEVISO_FAULT_ADDR_VALID;
  f.raw_type = 0x10;
  f.iova = 0x809'0040;
  f.unit = "smmuv3@9050000";
  char line[256];
  ASSERT_GT(rig.registry->FormatFault(f, line, sizeof(line)), 0);
  EXPECT_EQ(std::string(line),
            "smmuv3@9050000: sid 0x10: unprivileged data read at iova 0x8090040: translation "
            "fault (event 0x10): device ahci@0000:00:02.0 (pci 00:02.0): iova 0x8090040 is 0x40 "
            "past mapping 0x8080000+0x10000 rw");
  EXPECT_TRUE(rig.registry->FreeContext(&rig.a, kSidA).ok());
}

TEST(RegistryReport, FaultReportNamesTheDeviceItsBdfAndTheNearestMapping) {
  if constexpr (!config::kFaultReports) {
    GTEST_SKIP() << "built without fault reports (DEVISO_CONFIG_FAULT_REPORTS=OFF)";
  }
  Rig rig(/*default_registry=*/true);  // deviso_fault_format() reads the default registry
  rig.Start();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  Result<Context> ctx = rig.registry->AllocContext(&rig.a, kSidA);
  ASSERT_TRUE(ctx.ok());
  const Paddr pa = rig.Buffer(16 * kPage);
  ASSERT_TRUE(ctx->Map(0x808'0000, pa, 16 * kPage, kPermReadWrite).ok());
  Seen seen;
  seen.registry = rig.registry;
  ASSERT_TRUE(ctx->SetFaultHandler(OnFault, &seen).ok());
  const uint32_t value = 0x5a5a5a5a;
  // A write 0x40 past the end of the 64 KiB mapping.
  ASSERT_FALSE(rig.model.DeviceWrite(kSidA, 0x809'0040, &value, 4).ok());
  ASSERT_EQ(seen.faults, 1);
  const std::string expected =
      "smmuv3@9050000: sid 0x10: unprivileged data write at iova 0x8090040: translation fault "
      "(event 0x10): device ahci@0000:00:02.0 (pci 00:02.0): iova 0x8090040 is 0x40 past "
      "mapping 0x8080000+0x10000 rw";
  EXPECT_EQ(seen.line_in_handler, expected);
  char line[256];
  EXPECT_EQ(deviso_fault_format(&seen.fault, line, sizeof(line)),
            static_cast<int>(expected.size()));
  EXPECT_EQ(std::string(line), expected);
  // snprintf's rules hold for the longer line too.
  char small[16];
  EXPECT_EQ(rig.registry->FormatFault(seen.fault, small, sizeof(small)),
            static_cast<int>(expected.size()));
  EXPECT_EQ(std::string(small), expected.substr(0, sizeof(small) - 1));
  EXPECT_EQ(rig.registry->FormatFault(seen.fault, nullptr, 0), static_cast<int>(expected.size()));
  EXPECT_EQ(rig.registry->FormatFault(seen.fault, nullptr, 4), -EINVAL);

  // Inside a read-only page (a permission fault), and before everything.
  ASSERT_TRUE(ctx->Map(0x900'0000, pa, kPage, kPermRead).ok());
  ASSERT_FALSE(rig.model.DeviceWrite(kSidA, 0x900'0020, &value, 4).ok());
  ASSERT_EQ(seen.faults, 2);
  EXPECT_NE(seen.line_in_handler.find(": iova 0x9000020 is 0x20 into mapping 0x9000000+0x1000 r"),
            std::string::npos)
      << seen.line_in_handler;
  ASSERT_FALSE(rig.model.DeviceWrite(kSidA, 0x807'f000, &value, 4).ok());
  EXPECT_NE(seen.line_in_handler.find(": iova 0x807f000 is 0x1000 before mapping 0x8080000"),
            std::string::npos)
      << seen.line_in_handler;

  // Nothing mapped at all.
  ASSERT_TRUE(ctx->Unmap(0x808'0000, 16 * kPage).ok());
  ASSERT_TRUE(ctx->Unmap(0x900'0000, kPage).ok());
  ASSERT_FALSE(rig.model.DeviceWrite(kSidA, 0x809'0040, &value, 4).ok());
  EXPECT_NE(seen.line_in_handler.find("(pci 00:02.0): no mapping"), std::string::npos)
      << seen.line_in_handler;

  // A fault of a unit the registry does not know: the backend's line alone.
  Fault other = seen.fault;
  other.unit = "smmuv3@elsewhere";
  ASSERT_GT(rig.registry->FormatFault(other, line, sizeof(line)), 0);
  EXPECT_EQ(std::string(line).find("device"), std::string::npos) << line;
  EXPECT_TRUE(rig.registry->FreeContext(&rig.a, kSidA).ok());
}

TEST(RegistryReport, ABlockedStreamsFaultNamesTheDeviceWithNoContext) {
  Rig rig;
  rig.Start();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  Fault f{};
  f.sid = kSidB;
  f.reason = DEVISO_FAULT_BLOCKED;
  f.flags = DEVISO_FAULT_WRITE | DEVISO_FAULT_ADDR_VALID;
  f.raw_type = 0x04;
  f.iova = 0x4000'0000;
  f.unit = "smmuv3@9050000";
  char line[256];
  ASSERT_GT(rig.registry->FormatFault(f, line, sizeof(line)), 0);
  EXPECT_EQ(std::string(line),
            "smmuv3@9050000: sid 0x18: unprivileged data write at iova 0x40000000: stream "
            "blocked (no context) (event 0x4): device rogue@0000:00:03.0 (pci 00:03.0): no "
            "context");
}

// NearLeaf and FormatFault on threads while another thread maps and unmaps the context: each
// answer is the mapping as the mapper made it (either of its two PAs, the whole 4 pages or the
// half left after the first unmap), or nothing; never a torn or foreign extent.
TEST(RegistryReportConcurrency, NearLeafRacingMapAndUnmapSeesAMappingOrNone) {
  Rig rig;
  rig.Start();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  Result<Context> ctx = rig.registry->AllocContext(&rig.a, kSidA);
  ASSERT_TRUE(ctx.ok());
  const Paddr pa0 = rig.Buffer(4 * kPage);
  const Paddr pa1 = rig.Buffer(4 * kPage);
  constexpr Iova kIova = 0x300'0000;
#ifdef DEVISO_UNDER_SANITIZER
  constexpr int kRounds = 300;
#else
  constexpr int kRounds = 2000;
#endif
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  std::atomic<int> mapper_done{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      Fault f{};
      f.sid = kSidA;
      f.reason = DEVISO_FAULT_TRANSLATION;
      f.flags = DEVISO_FAULT_WRITE | DEVISO_FAULT_ADDR_VALID;
      f.raw_type = 0x10;
      f.iova = kIova + 4 * kPage + 8;
      f.unit = "smmuv3@9050000";
      char line[256];
      while (!stop.load(std::memory_order_acquire)) {
        if (t == 0) {
          const Result<NearestLeaf> near = ctx->NearLeaf(kIova + 4 * kPage + 8);
          if (near.ok()) {
            const LeafExtent& e = near->extent;
            const bool whole =
                e.iova == kIova && e.size == 4 * kPage && (e.pa == pa0 || e.pa == pa1);
            // After the first unmap (the upper half) only the lower half is left.
            const bool half =
                e.iova == kIova && e.size == 2 * kPage && (e.pa == pa0 || e.pa == pa1);
            const uint64_t want = kIova + 4 * kPage + 8 - (e.iova + e.size);
            if (!(whole || half) || near->where != NearestLeaf::Where::kAfter ||
                near->distance != want || e.perms != kPermReadWrite) {
              ++wrong;
            }
          } else if (near.status() != Status::NotFound()) {
            ++wrong;
          }
        } else {
          // The report either names the mapping or says there is none (or that the context
          // was busy at that instant): never anything else, and never a wait.
          const int n = rig.registry->FormatFault(f, line, sizeof(line));
          const std::string s = n > 0 ? std::string(line) : std::string();
          if (s.find("(pci 00:02.0): ") == std::string::npos ||
              (s.find("past mapping 0x3000000+") == std::string::npos &&
               s.find("no mapping") == std::string::npos &&
               s.find("mappings not read (busy)") == std::string::npos)) {
            ++wrong;
          }
        }
      }
    });
  }
  int failures = 0;
  for (int i = 0; i < kRounds; ++i) {
    const Paddr pa = i % 2 == 0 ? pa0 : pa1;
    failures += ctx->Map(kIova, pa, 4 * kPage, kPermReadWrite).ok() ? 0 : 1;
    failures += ctx->Unmap(kIova + 2 * kPage, 2 * kPage).ok() ? 0 : 1;
    failures += ctx->Unmap(kIova, 2 * kPage).ok() ? 0 : 1;
    mapper_done.fetch_add(1, std::memory_order_relaxed);
  }
  stop.store(true, std::memory_order_release);
  for (std::thread& th : readers) th.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(mapper_done.load(), kRounds);
  EXPECT_TRUE(rig.registry->FreeContext(&rig.a, kSidA).ok());
}

}  // namespace
}  // namespace deviso
