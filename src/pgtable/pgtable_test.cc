// Unit tests of the VMSAv8-64 translation-table engine (CTest label `pgtable`).
//
// Built with the `minimal` profile (preset host-minimal: stage 1, 4 KiB, no block splits, no
// orphan retry) the cases that need a compiled-out feature are skipped, and the `CompiledOut`
// cases check that each one is refused with its documented error and no change.

#include "pgtable/pgtable.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "pgtable/testing/host_memory.h"

namespace deviso::pgtable {
namespace {

using testing::AllMappings;
using testing::HostTableMemory;
using testing::kHostPhysBase;
using testing::RecordingFlush;
using testing::SnapshotTables;

constexpr uint64_t kKiB = 1ULL << 10;
constexpr uint64_t kMiB = 1ULL << 20;
constexpr uint64_t kGiB = 1ULL << 30;

// 4 MiB of table memory per test, whatever the granule.
size_t PoolGranules(Granule g) { return (4 * kMiB) >> static_cast<unsigned>(g); }

// Whether this build has `stage` and `granule` (deviso/config.h).
bool Built(Stage stage, Granule granule) {
  return (config::kStage2 || stage == Stage::kStage1) &&
         (config::kGranule16K64K || granule == Granule::k4KiB);
}

struct Fixture {
  explicit Fixture(const Config& c)
      : memory(size_t{1} << static_cast<unsigned>(c.granule), PoolGranules(c.granule)),
        pt(c, memory, flush) {}
  HostTableMemory memory;
  RecordingFlush flush;
  PageTable pt;
};

// ---------------------------------------------------------------------------------------------
// Geometry: start level and concatenation (Arm ARM D8.2).

struct GeometryCase {
  Stage stage;
  Granule granule;
  uint8_t ias;
  unsigned start_level;
  unsigned root_tables;
};

class GeometryTest : public ::testing::TestWithParam<GeometryCase> {};

TEST_P(GeometryTest, StartLevelAndConcatenation) {
  const GeometryCase& c = GetParam();
  if (!Built(c.stage, c.granule)) GTEST_SKIP() << "stage or granule compiled out";
  Config config = Config::SmmuStage1(c.granule, c.ias, 48, true);
  config.stage = c.stage;
  Fixture f(config);
  ASSERT_TRUE(f.pt.Init().ok());
  EXPECT_EQ(f.pt.start_level(), c.start_level);
  EXPECT_EQ(f.pt.root_tables(), c.root_tables);
  // The root is size-aligned (a concatenated root must be aligned to its total size).
  EXPECT_EQ((f.pt.root() - kHostPhysBase) % (f.pt.root_tables() * f.pt.page_size()), 0U);
  EXPECT_EQ(f.memory.free_granules(), f.memory.capacity() - c.root_tables);
}

// Level L resolves bits [shift(L)+stride-1 : shift(L)], shift(L) = g + (g-3)*(3-L).
//   4K: shift 12/21/30/39 for L3..L0; 16K: 14/25/36/47; 64K: 16/29/42.
// Stage 1 starts at the level holding bit ias-1. Stage 2 may resolve up to 4 extra bits at
// its start level with up to 16 concatenated tables.
INSTANTIATE_TEST_SUITE_P(
    Vmsa, GeometryTest,
    ::testing::Values(
        // 4K stage 1: ias 48 -> L0 resolves 47:39 (9 bits, 1 table).
        GeometryCase{Stage::kStage1, Granule::k4KiB, 48, 0, 1},
        // ias 39 -> L1 resolves 38:30; ias 32 -> L1 resolves 31:30 (4 entries).
        GeometryCase{Stage::kStage1, Granule::k4KiB, 39, 1, 1},
        GeometryCase{Stage::kStage1, Granule::k4KiB, 32, 1, 1},
        // 4K stage 2: ias 40 -> L1 resolves 39:30 = 10 bits = 9 + 1: 2 tables.
        GeometryCase{Stage::kStage2, Granule::k4KiB, 40, 1, 2},
        // ias 42 -> L1, 12 bits: 8 tables. ias 43 would be 16; ias 44 -> L0 (5 bits).
        GeometryCase{Stage::kStage2, Granule::k4KiB, 42, 1, 8},
        GeometryCase{Stage::kStage2, Granule::k4KiB, 44, 0, 1},
        GeometryCase{Stage::kStage2, Granule::k4KiB, 48, 0, 1},
        // ias 32 -> L2 resolves 31:21 = 11 bits: 4 tables (saves the L1 lookup).
        GeometryCase{Stage::kStage2, Granule::k4KiB, 32, 2, 4},
        // 16K stage 1: ias 48 -> L0 resolves bit 47 only (2 entries).
        GeometryCase{Stage::kStage1, Granule::k16KiB, 48, 0, 1},
        GeometryCase{Stage::kStage1, Granule::k16KiB, 36, 2, 1},
        // 16K stage 2: ias 48 -> L1 resolves 47:36 = 12 bits = 11 + 1: 2 tables.
        GeometryCase{Stage::kStage2, Granule::k16KiB, 48, 1, 2},
        // ias 40 -> L2 resolves 39:25 = 15 bits = 11 + 4: 16 tables.
        GeometryCase{Stage::kStage2, Granule::k16KiB, 40, 2, 16},
        // 64K stage 1: ias 48 -> L1 resolves 47:42 (64 entries); ias 42 -> L2 (13 bits).
        GeometryCase{Stage::kStage1, Granule::k64KiB, 48, 1, 1},
        GeometryCase{Stage::kStage1, Granule::k64KiB, 42, 2, 1},
        // 64K stage 2: ias 32 -> L3 resolves 31:16 = 16 bits = 13 + 3: 8 tables.
        GeometryCase{Stage::kStage2, Granule::k64KiB, 32, 3, 8},
        GeometryCase{Stage::kStage2, Granule::k64KiB, 48, 1, 1}));

TEST(PageTableConfig, RejectsBadConfigurations) {
  struct Bad {
    const char* what;
    Config config;
  };
  std::vector<Bad> bad;
  Config c = Config::SmmuStage1(Granule::k4KiB, 48, 48, true);
  c.ias = 31;
  bad.push_back({"ias below 32", c});
  c.ias = 49;
  bad.push_back({"ias above 48", c});
  c = Config::SmmuStage1(Granule::k4KiB, 48, 41, true);
  bad.push_back({"oas not an architected size", c});
  c = Config::SmmuStage2(Granule::k4KiB, 48, 44, true);
  bad.push_back({"stage 2 input wider than the output", c});
  c = Config::SmmuStage1(Granule::k4KiB, 48, 48, true);
  c.granule = static_cast<Granule>(13);
  bad.push_back({"granule", c});
  c = Config::SmmuStage1(Granule::k4KiB, 48, 48, true);
  c.min_leaf_level = 4;
  bad.push_back({"leaf level", c});
  c = Config::SmmuStage1(Granule::k4KiB, 48, 48, true);
  c.mair_index[2] = 8;
  bad.push_back({"MAIR index", c});
  for (const Bad& b : bad) {
    HostTableMemory memory(4096, 16);
    RecordingFlush flush;
    PageTable pt(b.config, memory, flush);
    EXPECT_EQ(pt.Init(), Status::InvalidArgument()) << b.what;
    EXPECT_EQ(memory.free_granules(), 16U) << b.what;
  }
  Fixture f(Config::SmmuStage1(Granule::k4KiB, 48, 48, true));
  ASSERT_TRUE(f.pt.Init().ok());
  EXPECT_EQ(f.pt.Init(), Status::InvalidArgument()) << "second Init";
}

TEST(PageTableConfig, InitFailsCleanlyWhenThePoolIsEmpty) {
  if (!Built(Stage::kStage2, Granule::k4KiB)) GTEST_SKIP() << "stage or granule compiled out";
  HostTableMemory memory(4096, 3);
  RecordingFlush flush;
  PageTable pt(Config::SmmuStage2(Granule::k4KiB, 32, 48, true), memory, flush);
  EXPECT_EQ(pt.Init(), Status::NoMemory());  // needs 4 concatenated granules
  EXPECT_EQ(memory.free_granules(), 3U);
  PageTable ok(Config::SmmuStage1(Granule::k4KiB, 48, 48, true), memory, flush);
  EXPECT_TRUE(ok.Init().ok());
}

// ---------------------------------------------------------------------------------------------
// The sweep: every granule x IAS x stage (what io-pgtable-arm's selftests cover).

struct SweepCase {
  Granule granule;
  uint8_t ias;
  Stage stage;
};

std::string SweepName(const ::testing::TestParamInfo<SweepCase>& info) {
  const SweepCase& c = info.param;
  const char* g = c.granule == Granule::k4KiB ? "4K" : c.granule == Granule::k16KiB ? "16K" : "64K";
  return std::string(g) + "_ias" + std::to_string(c.ias) + "_s" +
         std::to_string(static_cast<int>(c.stage));
}

std::vector<SweepCase> AllSweepCases() {
  std::vector<SweepCase> out;
  for (Granule g : {Granule::k4KiB, Granule::k16KiB, Granule::k64KiB}) {
    for (uint8_t ias : {32, 36, 39, 40, 42, 44, 48}) {
      for (Stage s : {Stage::kStage1, Stage::kStage2}) out.push_back({g, ias, s});
    }
  }
  return out;
}

class SweepTest : public ::testing::TestWithParam<SweepCase> {
 protected:
  SweepTest() : f_(MakeConfig()) {}
  static Config MakeConfig() {
    const SweepCase& c = GetParam();
    return c.stage == Stage::kStage1 ? Config::SmmuStage1(c.granule, c.ias, 48, true)
                                     : Config::SmmuStage2(c.granule, c.ias, 48, true);
  }
  void SetUp() override {
    if (!Built(GetParam().stage, GetParam().granule))
      GTEST_SKIP() << "stage or granule compiled out";
    ASSERT_TRUE(f_.pt.Init().ok());
    baseline_free_ = f_.memory.free_granules();
  }
  PageTable& pt() { return f_.pt; }
  uint64_t space() const { return 1ULL << GetParam().ias; }

  Fixture f_;
  size_t baseline_free_ = 0;
};

TEST_P(SweepTest, EmptyTableTranslatesNothing) {
  const uint64_t page = pt().page_size();
  for (Iova iova : {Iova{0}, page, space() / 2, space() - page, space() - 1}) {
    EXPECT_EQ(pt().IovaToPhys(iova).status(), Status::NotFound()) << std::hex << iova;
  }
  EXPECT_EQ(pt().IovaToPhys(space()).status(), Status::InvalidArgument());
  EXPECT_TRUE(AllMappings(pt()).empty());
}

TEST_P(SweepTest, EveryPageAndBlockSizeMapsAndLooksUp) {
  for (unsigned level = 0; level <= kMaxLevel; ++level) {
    if (!pt().LeafAllowed(level)) continue;
    const uint64_t size = pt().LevelSize(level);
    if (size > space() / 2) continue;
    const Iova iova = space() / 2;  // aligned to every leaf size below it
    const Paddr pa = 3 * size;
    SCOPED_TRACE(::testing::Message() << "level " << level << " size 0x" << std::hex << size);
    ASSERT_TRUE(pt().Map(iova, pa, size, kPermReadWrite, MemType::kNormalWriteBack).ok());
    Result<Mapping> m = pt().Lookup(iova + size - pt().page_size());
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->level, level) << "largest leaf not used";
    EXPECT_EQ(m->iova, iova);
    EXPECT_EQ(m->pa, pa);
    EXPECT_EQ(m->perms, kPermReadWrite);
    EXPECT_EQ(m->type, MemType::kNormalWriteBack);
    for (uint64_t off : {uint64_t{0}, uint64_t{0x123}, size / 2 + 8, size - 1}) {
      Result<Paddr> p = pt().IovaToPhys(iova + off);
      ASSERT_TRUE(p.ok());
      EXPECT_EQ(*p, pa + off);
    }
    EXPECT_EQ(pt().IovaToPhys(iova - 1).status(), Status::NotFound());
    EXPECT_EQ(pt().IovaToPhys(iova + size).status(), Status::NotFound());
    EXPECT_EQ(AllMappings(pt()).size(), 1U);
    ASSERT_TRUE(pt().Unmap(iova, size).ok());
    EXPECT_EQ(pt().IovaToPhys(iova).status(), Status::NotFound());
    EXPECT_EQ(f_.memory.free_granules(), baseline_free_) << "tables not freed";
  }
}

TEST_P(SweepTest, OverlappingMapFails) {
  const uint64_t page = pt().page_size();
  const Iova iova = space() / 4;
  ASSERT_TRUE(pt().Map(iova, 0, 4 * page, kPermRead, MemType::kNormalWriteBack).ok());
  const auto before = SnapshotTables(pt(), f_.memory);
  EXPECT_EQ(pt().Map(iova, page, page, kPermRead, MemType::kNormalWriteBack),
            Status::AlreadyExists());
  EXPECT_EQ(pt().Map(iova + 3 * page, 0, 2 * page, kPermRead, MemType::kNormalWriteBack),
            Status::AlreadyExists());
  EXPECT_EQ(pt().Map(iova - page, 0, 2 * page, kPermRead, MemType::kNormalWriteBack),
            Status::AlreadyExists());
  EXPECT_EQ(SnapshotTables(pt(), f_.memory), before);
  // A block-sized map over a table holding one page also overlaps.
  const uint64_t block = pt().LevelSize(2);
  if (pt().LeafAllowed(2) && block <= space() / 4) {
    EXPECT_EQ(pt().Map(iova & ~(block - 1), 0, block, kPermRead, MemType::kNormalWriteBack),
              Status::AlreadyExists());
  }
  EXPECT_EQ(SnapshotTables(pt(), f_.memory), before);
  ASSERT_TRUE(pt().Unmap(iova, 4 * page).ok());
  EXPECT_EQ(f_.memory.free_granules(), baseline_free_);
}

TEST_P(SweepTest, FullUnmapReturnsEverything) {
  // A mix of pages and the largest block that fits in a quarter of the space.
  const uint64_t page = pt().page_size();
  unsigned level = 0;
  while (!pt().LeafAllowed(level) || pt().LevelSize(level) > space() / 4) ++level;
  const uint64_t block = pt().LevelSize(level);
  const Iova base = space() / 4;
  // Pages before the block, the block, pages after: one call, three leaf sizes at most.
  const uint64_t size = block + 6 * page;
  const Iova iova = base - 3 * page;
  ASSERT_TRUE(pt().Map(iova, iova, size, kPermReadWrite, MemType::kNormalNonCacheable).ok());
  EXPECT_EQ(pt().Lookup(base)->level, level);
  ASSERT_TRUE(pt().Unmap(iova, size).ok());
  EXPECT_TRUE(AllMappings(pt()).empty());
  EXPECT_EQ(f_.memory.free_granules(), baseline_free_);
}

TEST_P(SweepTest, LastPageOfTheAddressSpaceWorks) {
  const uint64_t page = pt().page_size();
  const Iova last = space() - page;
  const Paddr pa = (1ULL << 48) - page;  // also the last page of the output space
  ASSERT_TRUE(pt().Map(last, pa, page, kPermReadWrite, MemType::kNormalWriteBack).ok());
  EXPECT_EQ(*pt().IovaToPhys(space() - 1), pa + page - 1);
  EXPECT_EQ(pt().Map(last, 0, 2 * page, kPermRead, MemType::kNormalWriteBack),
            Status::InvalidArgument())
      << "beyond IAS";
  ASSERT_TRUE(pt().Unmap(last, page).ok());
  EXPECT_EQ(f_.memory.free_granules(), baseline_free_);
}

TEST_P(SweepTest, ProtectChangesPermissionsOnly) {
  const uint64_t page = pt().page_size();
  const Iova iova = space() / 2;
  ASSERT_TRUE(pt().Map(iova, 0x40000000, 2 * page, kPermReadWrite, MemType::kNormalWriteBack).ok());
  ASSERT_TRUE(pt().Protect(iova + page, page, kPermRead).ok());
  EXPECT_EQ(pt().Lookup(iova)->perms, kPermReadWrite);
  EXPECT_EQ(pt().Lookup(iova + page)->perms, kPermRead);
  EXPECT_EQ(*pt().IovaToPhys(iova + page), 0x40000000 + page);
  ASSERT_TRUE(pt().Unmap(iova, 2 * page).ok());
}

INSTANTIATE_TEST_SUITE_P(AllGeometries, SweepTest, ::testing::ValuesIn(AllSweepCases()), SweepName);

// ---------------------------------------------------------------------------------------------
// Hand-built expected tables (Arm ARM D8.3.2 descriptor layouts).

TEST(ExpectedTables, SmmuStage1Page4K) {
  Fixture f(Config::SmmuStage1(Granule::k4KiB, 39, 48, true));
  ASSERT_TRUE(f.pt.Init().ok());
  ASSERT_EQ(f.pt.start_level(), 1U);
  // iova 0x4020_3000: L1 index = iova[38:30] = 1, L2 index = iova[29:21] = 1,
  //                   L3 index = iova[20:12] = 3.
  ASSERT_TRUE(
      f.pt.Map(0x40203000, 0x80005000, 0x1000, kPermReadWrite, MemType::kNormalWriteBack).ok());
  const uint64_t* l1 = f.memory.PhysToVirt(f.pt.root());
  EXPECT_EQ(l1[1] & 3, 3U) << "table descriptor";
  const uint64_t* l2 = f.memory.PhysToVirt(l1[1] & ds::AddressMask(12));
  EXPECT_EQ(l2[1] & 3, 3U);
  const uint64_t* l3 = f.memory.PhysToVirt(l2[1] & ds::AddressMask(12));
  // Page: OA 0x8000_5000 | UXN(54) | PXN(53) | nG(11) | AF(10) | SH=IS(9:8=0b11)
  //       | AP[2:1]=0b01 (RW, EL0) (7:6) | AttrIndx=1 (Normal WB in kDefaultMair) (4:2)
  //       | page (1:0=0b11)
  //   low bits: 0x800 | 0x400 | 0x300 | 0x040 | 0x004 | 0x3 = 0xf47
  EXPECT_EQ(l3[3], 0x0060'0000'8000'5f47ULL);
  for (size_t i = 0; i < 512; ++i) {
    if (i != 3) {
      EXPECT_EQ(l3[i], 0U) << i;
    }
    if (i != 1) {
      EXPECT_EQ(l2[i], 0U) << i;
    }
  }
  EXPECT_EQ(l1[0], 0U);
}

TEST(ExpectedTables, CpuKernelBlock2M) {
  Fixture f(Config::CpuKernel(Granule::k4KiB, 39, 40));
  ASSERT_TRUE(f.pt.Init().ok());
  // 2 MiB read-only executable block at iova 0x4020_0000 (L1 index 1, L2 index 1).
  ASSERT_TRUE(
      f.pt.Map(0x40200000, 0x40200000, 2 * kMiB, kPermRead | kPermExec, MemType::kNormalWriteBack)
          .ok());
  const uint64_t* l1 = f.memory.PhysToVirt(f.pt.root());
  const uint64_t* l2 = f.memory.PhysToVirt(l1[1] & ds::AddressMask(12));
  // Block: OA 0x4020_0000 | UXN(54) | nG=0 | AF(10) | SH=IS | AP[2:1]=0b10 (RO, EL1 only)
  //        | AttrIndx=1 | block (1:0=0b01). PXN clear: executable at EL1.
  //   low bits: 0x400 | 0x300 | 0x080 | 0x004 | 0x1 = 0x785
  EXPECT_EQ(l2[1], 0x0040'0000'4020'0785ULL);
  // Device memory: AttrIndx=3 (Device-nGnRE), SH=OS, XN at EL1 and EL0.
  ASSERT_TRUE(f.pt.Map(0x09000000, 0x09000000, 0x1000, kPermReadWrite, MemType::kDeviceNGnRE).ok());
  const uint64_t* l2b = f.memory.PhysToVirt(f.pt.root());
  const uint64_t* l2dev = f.memory.PhysToVirt(l2b[0] & ds::AddressMask(12));
  // iova 0x0900_0000: L2 index = 0x48, L3 index 0.
  const uint64_t* l3 = f.memory.PhysToVirt(l2dev[0x48] & ds::AddressMask(12));
  //   0x0060_0000_0900_0000 | AF 0x400 | SH=OS 0x200 | AP 0b00 | AttrIndx 3 -> 0xc | page 0x3
  EXPECT_EQ(l3[0], 0x0060'0000'0900'060fULL);
}

TEST(ExpectedTables, Stage2ConcatenatedRoot1GBlock) {
  if (!Built(Stage::kStage2, Granule::k4KiB)) GTEST_SKIP() << "stage or granule compiled out";
  Fixture f(Config::SmmuStage2(Granule::k4KiB, 40, 48, true));
  ASSERT_TRUE(f.pt.Init().ok());
  ASSERT_EQ(f.pt.start_level(), 1U);
  ASSERT_EQ(f.pt.root_tables(), 2U);
  // iova 0x80_4000_0000: root index = iova[39:30] = 0x201 = 513: the second concatenated
  // table's entry 1.
  ASSERT_TRUE(
      f.pt.Map(0x80'4000'0000, 0x1'4000'0000, kGiB, kPermReadWrite, MemType::kNormalWriteBack)
          .ok());
  const uint64_t* root = f.memory.PhysToVirt(f.pt.root());
  // Block: OA 0x1_4000_0000 | XN(54) | AF | SH=IS | S2AP=0b11 (7:6) | MemAttr=0b1111 (5:2)
  //        | block. low bits: 0x400 | 0x300 | 0xc0 | 0x3c | 0x1 = 0x7fd
  EXPECT_EQ(root[513], 0x0040'0001'4000'07fdULL);
  // Stage 2 expresses write-only and execute.
  ASSERT_TRUE(f.pt.Map(0x1000, 0x2000, 0x1000, kPermWrite | kPermExec, MemType::kDeviceNGnRE).ok());
  const uint64_t* l2 = f.memory.PhysToVirt(root[0] & ds::AddressMask(12));
  const uint64_t* l3 = f.memory.PhysToVirt(l2[0] & ds::AddressMask(12));
  // 0x2000 | AF | SH=OS 0x200 | S2AP=0b10 0x80 | MemAttr=0b0001 0x4 | page -> 0x687
  EXPECT_EQ(l3[1], 0x0000'0000'0000'2687ULL);
  EXPECT_EQ(f.pt.Lookup(0x1000)->perms, kPermWrite | kPermExec);
}

TEST(ExpectedTables, Granule64KPageAndBlock) {
  if (!Built(Stage::kStage1, Granule::k64KiB)) GTEST_SKIP() << "stage or granule compiled out";
  Fixture f(Config::SmmuStage1(Granule::k64KiB, 42, 48, true));
  ASSERT_TRUE(f.pt.Init().ok());
  ASSERT_EQ(f.pt.start_level(), 2U);
  // 512 MiB block at 0x2000_0000 (L2 index = iova[41:29] = 1), 64 KiB page at 0x1_0000
  // (L2 index 0, L3 index = iova[28:16] = 1).
  ASSERT_TRUE(
      f.pt.Map(0x20000000, 0x60000000, 512 * kMiB, kPermRead, MemType::kNormalWriteBack).ok());
  ASSERT_TRUE(
      f.pt.Map(0x10000, 0x50000, 64 * kKiB, kPermReadWrite, MemType::kNormalWriteBack).ok());
  const uint64_t* l2 = f.memory.PhysToVirt(f.pt.root());
  // RO block: 0x6000_0000 | UXN | PXN | nG | AF | SH=IS | AP=0b11 (0xc0) | AttrIndx 1 | block
  //   low: 0x800 | 0x400 | 0x300 | 0xc0 | 0x4 | 0x1 = 0xfc5
  EXPECT_EQ(l2[1], 0x0060'0000'6000'0fc5ULL);
  const uint64_t* l3 = f.memory.PhysToVirt(l2[0] & ds::AddressMask(16));
  EXPECT_EQ(l3[1], 0x0060'0000'0005'0f47ULL);
}

TEST(AttributePolicy, SmmuAndCpuBitsInEveryLeaf) {
  // QEMU 7.2 checks none of these bits; real SMMUs and CPUs do.
  for (bool smmu : {true, false}) {
    Fixture f(smmu ? Config::SmmuStage1(Granule::k4KiB, 48, 48, true)
                   : Config::CpuKernel(Granule::k4KiB, 48, 48));
    ASSERT_TRUE(f.pt.Init().ok());
    ASSERT_TRUE(
        f.pt.Map(0, 0, kGiB + 2 * kMiB + 4 * kKiB, kPermReadWrite, MemType::kNormalWriteBack).ok());
    const auto all = AllMappings(f.pt);
    ASSERT_EQ(all.size(), 3U);  // a 1G block, a 2M block, a page
    for (const Mapping& m : all) {
      EXPECT_NE(m.descriptor & ds::kAf, 0U) << "AF must be set (no access-flag faults)";
      EXPECT_EQ((m.descriptor & ds::s1::kNg) != 0, smmu) << "nG";
      EXPECT_EQ((m.descriptor & ds::s1::kApEl0) != 0, smmu) << "AP[1]";
      EXPECT_NE(m.descriptor & ds::s1::kPxn, 0U) << "PXN: never execute device data";
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Argument checks: each error changes nothing.

TEST(BadInput, RejectedWithoutChange) {
  Fixture f(Config::SmmuStage1(Granule::k4KiB, 40, 40, true));
  ASSERT_TRUE(f.pt.Init().ok());
  ASSERT_TRUE(f.pt.Map(0x100000, 0x100000, 0x4000, kPermReadWrite, MemType::kNormalWriteBack).ok());
  const auto before = SnapshotTables(f.pt, f.memory);
  const size_t free_before = f.memory.free_granules();
  const MemType wb = MemType::kNormalWriteBack;
  EXPECT_EQ(f.pt.Map(0x200800, 0x200000, 0x1000, kPermRead, wb), Status::InvalidArgument());
  EXPECT_EQ(f.pt.Map(0x200000, 0x200800, 0x1000, kPermRead, wb), Status::InvalidArgument());
  EXPECT_EQ(f.pt.Map(0x200000, 0x200000, 0x800, kPermRead, wb), Status::InvalidArgument());
  EXPECT_EQ(f.pt.Map(0x200000, 0x200000, 0, kPermRead, wb), Status::InvalidArgument());
  EXPECT_EQ(f.pt.Map(0xff'ffff'f000, 0, 0x2000, kPermRead, wb), Status::InvalidArgument());
  EXPECT_EQ(f.pt.Map(0x100'0000'0000, 0, 0x1000, kPermRead, wb), Status::InvalidArgument());
  EXPECT_EQ(f.pt.Map(0xffff'ffff'ffff'f000, 0, 0x2000, kPermRead, wb), Status::InvalidArgument())
      << "wraps";
  EXPECT_EQ(f.pt.Map(0x200000, 0xff'ffff'f000, 0x2000, kPermRead, wb), Status::InvalidArgument())
      << "pa beyond OAS";
  EXPECT_EQ(f.pt.Map(0x200000, 0x200000, 0x1000, 0, wb), Status::InvalidArgument());
  EXPECT_EQ(f.pt.Map(0x200000, 0x200000, 0x1000, kPermExec, wb), Status::InvalidArgument());
  EXPECT_EQ(f.pt.Map(0x200000, 0x200000, 0x1000, 0x10, wb), Status::InvalidArgument());
  EXPECT_EQ(f.pt.Map(0x200000, 0x200000, 0x1000, kPermWrite, wb), Status::NotSupported())
      << "stage 1 cannot express write-only";
  EXPECT_EQ(f.pt.Map(0x200000, 0x200000, 0x1000, kPermRead, static_cast<MemType>(7)),
            Status::InvalidArgument());
  EXPECT_EQ(f.pt.Unmap(0x100800, 0x1000), Status::InvalidArgument());
  EXPECT_EQ(f.pt.Unmap(0x100000, 0), Status::InvalidArgument());
  EXPECT_EQ(f.pt.Protect(0x100000, 0x1000, 0), Status::InvalidArgument());
  EXPECT_EQ(f.pt.Protect(0x100000, 0x1000, kPermWrite), Status::NotSupported());
  // Partly mapped: -ENOENT, nothing unmapped (the contract the core's deviso_unmap relies on).
  EXPECT_EQ(f.pt.Unmap(0x100000, 0x5000), Status::NotFound());
  EXPECT_EQ(f.pt.Unmap(0x0ff000, 0x2000), Status::NotFound());
  EXPECT_EQ(f.pt.Unmap(0x300000, 0x1000), Status::NotFound());
  EXPECT_EQ(f.pt.Protect(0x0ff000, 0x2000, kPermRead), Status::NotFound());
  EXPECT_EQ(SnapshotTables(f.pt, f.memory), before);
  EXPECT_EQ(f.memory.free_granules(), free_before);
  EXPECT_TRUE(f.flush.calls.empty()) << "no invalidation for a refused call";
}

TEST(BadInput, UninitializedTableRefusesEverything) {
  HostTableMemory memory(4096, 4);
  RecordingFlush flush;
  PageTable pt(Config::SmmuStage1(Granule::k4KiB, 48, 48, true), memory, flush);
  EXPECT_EQ(pt.Map(0, 0, 0x1000, kPermRead, MemType::kNormalWriteBack), Status::InvalidArgument());
  EXPECT_EQ(pt.Unmap(0, 0x1000), Status::InvalidArgument());
  EXPECT_EQ(pt.IovaToPhys(0).status(), Status::InvalidArgument());
}

// ---------------------------------------------------------------------------------------------
// Splitting blocks: break-before-make, BBML2, and the invalidation it reports.

TEST(Split, PartialUnmapOfABlockIsBreakBeforeMake) {
  if constexpr (!config::kBlockSplit) GTEST_SKIP() << "DEVISO_CONFIG_BLOCK_SPLIT=OFF";
  Fixture f(Config::SmmuStage1(Granule::k4KiB, 48, 48, true));
  ASSERT_TRUE(f.pt.Init().ok());
  const size_t baseline = f.memory.free_granules();
  const Iova block = 0x4000'0000;
  ASSERT_TRUE(
      f.pt.Map(block, 0x8000'0000, 2 * kMiB, kPermReadWrite, MemType::kNormalWriteBack).ok());
  ASSERT_EQ(f.pt.Lookup(block)->level, 2U);
  const Iova hole = block + 0x5000;

  int breaks = 0;
  f.flush.on_invalidate = [&](const InvalidationRange& r) {
    if (f.flush.calls.size() != 1) return;
    // The break: the walker must find nothing for the whole block while it is invalidated.
    ++breaks;
    EXPECT_EQ(r.iova, block);
    EXPECT_EQ(r.size, 2 * kMiB);
    EXPECT_EQ(r.leaf_levels, 1U << 2);
    EXPECT_EQ(f.pt.Lookup(block).status(), Status::NotFound());
    EXPECT_EQ(f.pt.Lookup(block + 2 * kMiB - 1).status(), Status::NotFound());
  };
  ASSERT_TRUE(f.pt.Unmap(hole, 0x1000).ok());
  EXPECT_EQ(breaks, 1);
  ASSERT_EQ(f.flush.calls.size(), 2U);
  // The unmap's own invalidation covers the page at level 3.
  const InvalidationRange& r = f.flush.calls[1];
  EXPECT_LE(r.iova, hole);
  EXPECT_GE(r.iova + r.size, hole + 0x1000);
  EXPECT_NE(r.leaf_levels & (1U << 3), 0U);

  // Everything else of the block still translates, now as pages with the same attributes.
  EXPECT_EQ(f.pt.Lookup(hole).status(), Status::NotFound());
  for (Iova a : {block, hole - 0x1000, hole + 0x1000, block + 2 * kMiB - 0x1000}) {
    Result<Mapping> m = f.pt.Lookup(a);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->level, 3U);
    EXPECT_EQ(m->pa, 0x8000'0000 + (a - block));
    EXPECT_EQ(m->perms, kPermReadWrite);
  }
  EXPECT_EQ(AllMappings(f.pt).size(), 511U);
  ASSERT_TRUE(f.pt.Unmap(block, 0x5000).ok());
  ASSERT_TRUE(f.pt.Unmap(hole + 0x1000, 2 * kMiB - 0x6000).ok());
  EXPECT_EQ(f.memory.free_granules(), baseline);
}

TEST(Split, Bbml2ReplacesTheBlockWithoutABreak) {
  if constexpr (!config::kBlockSplit) GTEST_SKIP() << "DEVISO_CONFIG_BLOCK_SPLIT=OFF";
  Config c = Config::SmmuStage1(Granule::k4KiB, 48, 48, true);
  c.bbml2 = true;
  Fixture f(c);
  ASSERT_TRUE(f.pt.Init().ok());
  ASSERT_TRUE(f.pt.Map(0, 0x4000'0000, kGiB, kPermReadWrite, MemType::kNormalWriteBack).ok());
  ASSERT_TRUE(f.pt.Unmap(kGiB - 0x1000, 0x1000).ok());
  // One invalidation only, and it covers the page at level 3 and the old 1 GiB block (level 1)
  // a TLB may still hold for that page.
  ASSERT_EQ(f.flush.calls.size(), 1U);
  const InvalidationRange& r = f.flush.calls[0];
  EXPECT_LE(r.iova, kGiB - 0x1000);
  EXPECT_GE(r.iova + r.size, kGiB);
  EXPECT_EQ(r.leaf_levels, (1U << 1) | (1U << 3));
  // 1 GiB -> 511 x 2 MiB + 511 x 4 KiB.
  EXPECT_EQ(AllMappings(f.pt).size(), 511U + 511U);
  EXPECT_EQ(f.pt.Lookup(0)->level, 2U);
  EXPECT_EQ(*f.pt.IovaToPhys(kGiB - 0x2000), 0x4000'0000 + kGiB - 0x2000);
}

// FEAT_BBM level 1 (SMMU IDR3.BBML = 1, IHI0070 3.21.1.2): the block is rewritten with nT = 1
// (still valid: the walker keeps translating), invalidated and waited for, then replaced by the
// equivalent table, and the block's range invalidated again (with the unmap's). Never invalid.
TEST(Split, Bbml1SplitsThroughTheNtBit) {
  if constexpr (!config::kBlockSplit) GTEST_SKIP() << "DEVISO_CONFIG_BLOCK_SPLIT=OFF";
  Config c = Config::SmmuStage1(Granule::k4KiB, 48, 48, true);
  c.bbml1 = true;
  Fixture f(c);
  ASSERT_TRUE(f.pt.Init().ok());
  constexpr Paddr kPa = 0x4000'0000;
  ASSERT_TRUE(f.pt.Map(0, kPa, 2 * kMiB, kPermReadWrite, MemType::kNormalWriteBack).ok());
  const uint64_t* l0 = f.memory.PhysToVirt(f.pt.root());
  const uint64_t* l1 = f.memory.PhysToVirt(l0[0] & ds::AddressMask(12));
  const uint64_t* l2 = f.memory.PhysToVirt(l1[0] & ds::AddressMask(12));
  const uint64_t block = l2[0];
  ASSERT_TRUE(ds::IsLeaf(block, 2));
  ASSERT_EQ(block & ds::kNt, 0U);
  std::vector<uint64_t> seen;  // the block's slot at each invalidation
  f.flush.on_invalidate = [&](const InvalidationRange&) { seen.push_back(l2[0]); };
  f.flush.calls.clear();
  ASSERT_TRUE(f.pt.Unmap(0x1000, 0x1000).ok());
  ASSERT_EQ(f.flush.calls.size(), 2U);
  ASSERT_EQ(seen.size(), 2U);
  // 1: the old block, nT = 1, otherwise unchanged; the whole block at level 2.
  EXPECT_EQ(seen[0], block | ds::kNt);
  EXPECT_EQ(f.flush.calls[0].iova, 0U);
  EXPECT_EQ(f.flush.calls[0].size, 2 * kMiB);
  EXPECT_EQ(f.flush.calls[0].leaf_levels, 1U << 2);
  // 2: the table; the invalidation covers the block's range at level 2 and the page.
  EXPECT_TRUE(ds::IsTable(seen[1], 2));
  EXPECT_LE(f.flush.calls[1].iova, 0U);
  EXPECT_GE(f.flush.calls[1].iova + f.flush.calls[1].size, 2 * kMiB);
  EXPECT_NE(f.flush.calls[1].leaf_levels & (1U << 2), 0U);
  // The split is equivalent (in a page descriptor bit 16 is an output-address bit: nT exists
  // only in blocks).
  EXPECT_FALSE(f.pt.IovaToPhys(0x1000).ok());
  EXPECT_EQ(*f.pt.IovaToPhys(0x2000), kPa + 0x2000);
  EXPECT_EQ(*f.pt.IovaToPhys(2 * kMiB - 1), kPa + 2 * kMiB - 1);
  EXPECT_EQ(f.pt.Lookup(0x2000)->level, 3U);
}

// A failed first invalidation of the level 1 split leaves the block as it was (nT = 0).
TEST(Split, Bbml1FailedInvalidationKeepsTheBlock) {
  if constexpr (!config::kBlockSplit) GTEST_SKIP() << "DEVISO_CONFIG_BLOCK_SPLIT=OFF";
  Config c = Config::SmmuStage1(Granule::k4KiB, 48, 48, true);
  c.bbml1 = true;
  Fixture f(c);
  ASSERT_TRUE(f.pt.Init().ok());
  ASSERT_TRUE(f.pt.Map(0, 0x4000'0000, 2 * kMiB, kPermReadWrite, MemType::kNormalWriteBack).ok());
  const size_t free_before = f.memory.free_granules();
  const uint64_t* l0 = f.memory.PhysToVirt(f.pt.root());
  const uint64_t* l1 = f.memory.PhysToVirt(l0[0] & ds::AddressMask(12));
  const uint64_t* l2 = f.memory.PhysToVirt(l1[0] & ds::AddressMask(12));
  const uint64_t block = l2[0];
  f.flush.fail_next = 1;
  EXPECT_FALSE(f.pt.Unmap(0x1000, 0x1000).ok());
  EXPECT_EQ(l2[0], block);
  EXPECT_EQ(f.memory.free_granules(), free_before);
  EXPECT_EQ(*f.pt.IovaToPhys(0x1000), 0x4000'1000U);
}

TEST(Split, BothEdgesInOneBlockAndDeepSplit) {
  if constexpr (!config::kBlockSplit) GTEST_SKIP() << "DEVISO_CONFIG_BLOCK_SPLIT=OFF";
  if (!Built(Stage::kStage2, Granule::k4KiB)) GTEST_SKIP() << "stage or granule compiled out";
  Fixture f(Config::SmmuStage2(Granule::k4KiB, 40, 48, true));
  ASSERT_TRUE(f.pt.Init().ok());
  const size_t baseline = f.memory.free_granules();
  ASSERT_TRUE(f.pt.Map(kGiB, 0, kGiB, kPermReadWrite, MemType::kNormalWriteBack).ok());
  // Unmap [1G + 3M + 4K, 1G + 7M + 8K): splits the 1 GiB block into 2 MiB blocks, and the
  // two 2 MiB blocks holding the edges into pages: 3 tables.
  const size_t before = f.memory.free_granules();
  const Iova start = kGiB + 3 * kMiB + 0x1000;
  const Iova end = kGiB + 7 * kMiB + 0x2000;
  ASSERT_TRUE(f.pt.Unmap(start, end - start).ok());
  EXPECT_EQ(before - f.memory.free_granules(), 3U);
  EXPECT_EQ(f.pt.Lookup(start - 1)->level, 3U);
  EXPECT_EQ(f.pt.Lookup(end)->level, 3U);
  EXPECT_EQ(f.pt.Lookup(kGiB)->level, 2U);
  EXPECT_EQ(f.pt.Lookup(start).status(), Status::NotFound());
  EXPECT_EQ(f.pt.Lookup(end - 1).status(), Status::NotFound());
  EXPECT_EQ(*f.pt.IovaToPhys(end), end - kGiB);
  // Remove the rest piecewise; every table goes back.
  ASSERT_TRUE(f.pt.Unmap(kGiB, start - kGiB).ok());
  ASSERT_TRUE(f.pt.Unmap(end, 2 * kGiB - end).ok());
  EXPECT_EQ(f.memory.free_granules(), baseline);
}

TEST(Split, FailedBreakInvalidationRestoresTheBlock) {
  if constexpr (!config::kBlockSplit) GTEST_SKIP() << "DEVISO_CONFIG_BLOCK_SPLIT=OFF";
  Fixture f(Config::SmmuStage1(Granule::k4KiB, 48, 48, true));
  ASSERT_TRUE(f.pt.Init().ok());
  ASSERT_TRUE(f.pt.Map(2 * kMiB, 0, 2 * kMiB, kPermReadWrite, MemType::kNormalWriteBack).ok());
  const auto before = SnapshotTables(f.pt, f.memory);
  const size_t free_before = f.memory.free_granules();
  f.flush.fail_next = 1;
  EXPECT_EQ(f.pt.Unmap(2 * kMiB + 0x1000, 0x1000), Status::TimedOut());
  EXPECT_EQ(SnapshotTables(f.pt, f.memory), before);
  EXPECT_EQ(f.memory.free_granules(), free_before);
  EXPECT_EQ(f.pt.Lookup(2 * kMiB + 0x1000)->level, 2U);
}

TEST(Split, ProtectSplitsAtTheEdges) {
  if constexpr (!config::kBlockSplit) GTEST_SKIP() << "DEVISO_CONFIG_BLOCK_SPLIT=OFF";
  if (!Built(Stage::kStage1, Granule::k16KiB)) GTEST_SKIP() << "stage or granule compiled out";
  Fixture f(Config::SmmuStage1(Granule::k16KiB, 48, 48, true));
  ASSERT_TRUE(f.pt.Init().ok());
  ASSERT_TRUE(f.pt.Map(32 * kMiB, 0, 32 * kMiB, kPermReadWrite, MemType::kNormalWriteBack).ok());
  ASSERT_EQ(f.pt.Lookup(32 * kMiB)->level, 2U);
  ASSERT_TRUE(f.pt.Protect(40 * kMiB, 16 * kKiB, kPermRead).ok());
  EXPECT_EQ(f.pt.Lookup(40 * kMiB)->perms, kPermRead);
  EXPECT_EQ(f.pt.Lookup(40 * kMiB - 16 * kKiB)->perms, kPermReadWrite);
  EXPECT_EQ(f.pt.Lookup(40 * kMiB + 16 * kKiB)->perms, kPermReadWrite);
  EXPECT_EQ(*f.pt.IovaToPhys(40 * kMiB + 5), 8 * kMiB + 5);
}

// ---------------------------------------------------------------------------------------------
// Freed tables wait for the invalidation.

TEST(DeferredFree, TablesReturnOnlyAfterTheInvalidationCompleted) {
  Fixture f(Config::SmmuStage1(Granule::k4KiB, 48, 48, true));
  ASSERT_TRUE(f.pt.Init().ok());
  const size_t baseline = f.memory.free_granules();
  ASSERT_TRUE(f.pt.Map(0x1000, 0x1000, 0x3000, kPermReadWrite, MemType::kNormalWriteBack).ok());
  const auto tables = SnapshotTables(f.pt, f.memory);  // root + L1 + L2 + L3
  ASSERT_EQ(tables.size(), 4U);

  Gather gather;
  ASSERT_TRUE(f.pt.Unmap(0x1000, 0x3000, gather).ok());
  EXPECT_EQ(gather.freed_tables(), 3U);
  EXPECT_EQ(f.memory.free_granules(), baseline - 3) << "freed before the invalidation";
  EXPECT_TRUE(f.flush.calls.empty());
  // A walker still holding an old table reads invalid descriptors where the chain is kept.
  for (const auto& [pa, entries] : tables) {
    if (pa != f.pt.root()) {
      EXPECT_FALSE(ds::IsValid(*f.memory.PhysToVirt(pa)));
    }
  }
  const InvalidationRange r = gather.range();
  EXPECT_TRUE(r.tables);
  EXPECT_LE(r.iova, 0x1000U);
  EXPECT_GE(r.iova + r.size, 0x4000U);

  f.flush.fail_next = 1;
  EXPECT_EQ(f.pt.Sync(gather), Status::TimedOut());
  EXPECT_EQ(f.memory.free_granules(), baseline - 3) << "freed although the sync failed";
  EXPECT_EQ(gather.freed_tables(), 3U);
  ASSERT_TRUE(f.pt.Sync(gather).ok());
  EXPECT_EQ(f.memory.free_granules(), baseline);
  EXPECT_TRUE(gather.empty());
}

TEST(DeferredFree, FailedSyncWithoutGatherIsRetriedLater) {
  if constexpr (!config::kOrphanRetry) GTEST_SKIP() << "DEVISO_CONFIG_ORPHAN_RETRY=OFF";
  Fixture f(Config::SmmuStage1(Granule::k4KiB, 48, 48, true));
  ASSERT_TRUE(f.pt.Init().ok());
  const size_t baseline = f.memory.free_granules();
  ASSERT_TRUE(f.pt.Map(0x1000, 0x1000, 0x1000, kPermRead, MemType::kNormalWriteBack).ok());
  f.flush.fail_next = 1;
  EXPECT_EQ(f.pt.Unmap(0x1000, 0x1000), Status::TimedOut()) << "must not report success";
  EXPECT_EQ(f.memory.free_granules(), baseline - 3);
  ASSERT_TRUE(f.pt.Map(0x1000'0000, 0, 0x1000, kPermRead, MemType::kNormalWriteBack).ok());
  ASSERT_TRUE(f.pt.Unmap(0x1000'0000, 0x1000).ok());
  // The retry re-invalidates the first range too.
  const InvalidationRange& r = f.flush.calls.back();
  EXPECT_LE(r.iova, 0x1000U);
  EXPECT_GE(r.iova + r.size, 0x1000'1000U);
  EXPECT_EQ(f.memory.free_granules(), baseline);
}

// ---------------------------------------------------------------------------------------------
// Non-coherent walkers see every write through CleanToPoc.

TEST(NonCoherent, WalkerViewMatchesTheTablesAfterEveryOperation) {
  for (bool bbml2 : {false, true}) {
    Config c = Config::SmmuStage1(Granule::k4KiB, 48, 48, false);
    c.bbml2 = bbml2;
    Fixture f(c);
    ASSERT_TRUE(f.pt.Init().ok());
    auto check = [&](const char* step) {
      for (const auto& [pa, entries] : SnapshotTables(f.pt, f.memory)) {
        for (size_t i = 0; i < entries.size(); ++i) {
          ASSERT_EQ(f.memory.PocDescriptor(pa + 8 * i), entries[i])
              << step << ": table 0x" << std::hex << pa << " entry " << std::dec << i
              << " not cleaned to PoC";
        }
      }
    };
    // During a break-before-make invalidation the walker must already see the break.
    f.flush.on_invalidate = [&](const InvalidationRange&) { check("during invalidation"); };
    check("init");
    ASSERT_TRUE(
        f.pt.Map(0, 0, kGiB + 4 * kMiB + 0x3000, kPermReadWrite, MemType::kNormalWriteBack).ok());
    check("map");
    if constexpr (config::kBlockSplit) {
      ASSERT_TRUE(f.pt.Unmap(0x20'1000, 0x1000).ok());
      check("split unmap");
    } else {
      ASSERT_TRUE(f.pt.Unmap(0, kGiB).ok());  // whole leaves only
      check("block unmap");
    }
    // Splits the 2 MiB block at 1 GiB + 2 MiB, or (without splits) whole blocks only.
    ASSERT_TRUE(
        f.pt.Protect(kGiB, config::kBlockSplit ? 2 * kMiB + 0x1000 : 4 * kMiB, kPermRead).ok());
    check("protect");
    ASSERT_TRUE(f.pt.Unmap(kGiB + 4 * kMiB, 0x3000).ok());
    check("unmap");
    EXPECT_GT(f.memory.cleans(), 0U);
  }
}

// ---------------------------------------------------------------------------------------------
// Exhaustion at every allocation point leaves the tables byte for byte as they were.

TEST(Exhaustion, EveryAllocationPointLeavesTablesUnchanged) {
  struct Op {
    const char* name;
    std::function<Status(PageTable&)> run;
  };
  const std::vector<Op> ops = {
      {"map across tables",
       [](PageTable& pt) {
         return pt.Map(0x7f'ffe0'0000 - 0x3000, 0x1000'0000, 4 * kMiB + 0x5000, kPermReadWrite,
                       MemType::kNormalWriteBack);
       }},
      {"map 1G-aligned mix",
       [](PageTable& pt) {
         return pt.Map(3 * kGiB - 0x1000, 3 * kGiB - 0x1000, kGiB + 2 * kMiB + 0x2000, kPermRead,
                       MemType::kNormalWriteBack);
       }},
      {"split unmap", [](PageTable& pt) { return pt.Unmap(kGiB + 0x1000, 3 * kMiB); }},
      {"split protect",
       [](PageTable& pt) { return pt.Protect(kGiB + 5 * kMiB, 0x2000, kPermRead); }},
  };
  for (const Op& op : ops) {
    if (!config::kBlockSplit && std::string(op.name).find("split") != std::string::npos) {
      continue;  // refused with -ENOTSUP before any allocation (CompiledOut tests)
    }
    for (size_t fail_at = 1;; ++fail_at) {
      SCOPED_TRACE(::testing::Message() << op.name << ", allocation " << fail_at << " fails");
      Fixture f(Config::SmmuStage1(Granule::k4KiB, 48, 48, true));
      ASSERT_TRUE(f.pt.Init().ok());
      // Existing state: a 1 GiB block at 1 GiB, and pages near 0x7f_ffe0_0000.
      ASSERT_TRUE(f.pt.Map(kGiB, 0, kGiB, kPermReadWrite, MemType::kNormalWriteBack).ok());
      ASSERT_TRUE(f.pt.Map(0x7f'ffe0'0000 + 4 * kMiB + 0x4000, 0, 0x1000, kPermRead,
                           MemType::kNormalWriteBack)
                      .ok());
      const auto before = SnapshotTables(f.pt, f.memory);
      const size_t free_before = f.memory.free_granules();
      f.memory.FailAllocation(fail_at);
      const Status s = op.run(f.pt);
      if (s.ok()) {
        ASSERT_GT(fail_at, 1U) << "the operation should need at least one table";
        break;
      }
      ASSERT_EQ(s, Status::NoMemory());
      EXPECT_EQ(SnapshotTables(f.pt, f.memory), before);
      EXPECT_EQ(f.memory.free_granules(), free_before);
      EXPECT_TRUE(f.flush.calls.empty());
      ASSERT_LT(fail_at, 100U);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Block-size cap, visitor order.

TEST(Options, MinLeafLevelForcesPages) {
  Config c = Config::SmmuStage1(Granule::k4KiB, 48, 48, true);
  c.min_leaf_level = kMaxLevel;
  Fixture f(c);
  ASSERT_TRUE(f.pt.Init().ok());
  ASSERT_TRUE(f.pt.Map(0, 0, 4 * kMiB, kPermRead, MemType::kNormalWriteBack).ok());
  EXPECT_EQ(AllMappings(f.pt).size(), 1024U);
}

TEST(Visitor, VisitsInOrderAndStops) {
  Fixture f(Config::SmmuStage1(Granule::k4KiB, 48, 48, true));
  ASSERT_TRUE(f.pt.Init().ok());
  ASSERT_TRUE(f.pt.Map(0x5000, 0x1000, 0x2000, kPermRead, MemType::kNormalWriteBack).ok());
  ASSERT_TRUE(f.pt.Map(0x1000, 0x9000, 0x1000, kPermRead, MemType::kNormalWriteBack).ok());
  const auto all = AllMappings(f.pt);
  ASSERT_EQ(all.size(), 3U);
  EXPECT_EQ(all[0].iova, 0x1000U);
  EXPECT_EQ(all[1].iova, 0x5000U);
  EXPECT_EQ(all[2].pa, 0x2000U);
  struct First : MappingVisitor {
    bool Visit(const Mapping&) override {
      ++n;
      return false;
    }
    int n = 0;
  } first;
  f.pt.ForEachMapping(first);
  EXPECT_EQ(first.n, 1);
}

// ---------------------------------------------------------------------------------------------
// Built without a feature (the `minimal` profile): refused with its documented error, nothing
// changed. Each case is skipped where its feature is built.

TEST(CompiledOut, StagesAndGranulesAreNotSupported) {
  if constexpr (config::kStage2 && config::kGranule16K64K) GTEST_SKIP() << "all are built";
  for (Stage stage : {Stage::kStage1, Stage::kStage2}) {
    for (Granule g : {Granule::k4KiB, Granule::k16KiB, Granule::k64KiB}) {
      if (Built(stage, g)) continue;
      Config c = Config::SmmuStage1(g, 48, 48, true);
      c.stage = stage;
      HostTableMemory memory(size_t{1} << static_cast<unsigned>(g), 16);
      RecordingFlush flush;
      PageTable pt(c, memory, flush);
      EXPECT_EQ(pt.Init(), Status::NotSupported())
          << static_cast<int>(stage) << " " << static_cast<int>(g);
      EXPECT_EQ(memory.free_granules(), 16U);
      EXPECT_EQ(pt.Map(0, 0, pt.page_size(), kPermRead, MemType::kNormalWriteBack),
                Status::InvalidArgument())
          << "not initialised";
    }
  }
  if constexpr (!config::kStage2) {
    // The pool serves single granules: only concatenated stage 2 roots need more.
    HostTableMemory memory(4096, 16);
    EXPECT_EQ(memory.Allocate(1).status(), Status::NotSupported());
    EXPECT_EQ(memory.free_granules(), 16U);
    EXPECT_TRUE(memory.Allocate(0).ok());
  }
}

TEST(CompiledOut, EditsThatCutABlockAreNotSupportedAndChangeNothing) {
  if constexpr (config::kBlockSplit) GTEST_SKIP() << "block splits are built";
  Fixture f(Config::SmmuStage1(Granule::k4KiB, 48, 48, true));
  ASSERT_TRUE(f.pt.Init().ok());
  const size_t baseline = f.memory.free_granules();
  // A 1 GiB block at 1 GiB, a 2 MiB block at 4 GiB, and pages after it.
  ASSERT_TRUE(f.pt.Map(kGiB, 0, kGiB, kPermReadWrite, MemType::kNormalWriteBack).ok());
  ASSERT_TRUE(
      f.pt.Map(4 * kGiB, 4 * kGiB, 2 * kMiB + 0x3000, kPermReadWrite, MemType::kNormalWriteBack)
          .ok());
  const auto before = SnapshotTables(f.pt, f.memory);
  const size_t free_before = f.memory.free_granules();
  EXPECT_EQ(f.pt.Unmap(kGiB + 0x1000, 0x1000), Status::NotSupported()) << "inside a block";
  EXPECT_EQ(f.pt.Unmap(kGiB, kGiB - 0x1000), Status::NotSupported()) << "end inside";
  EXPECT_EQ(f.pt.Unmap(4 * kGiB + 0x1000, 2 * kMiB), Status::NotSupported()) << "start inside";
  EXPECT_EQ(f.pt.Protect(kGiB + 2 * kMiB, 2 * kMiB, kPermRead), Status::NotSupported());
  // Cuts the block and reaches unmapped space: -ENOENT comes first.
  EXPECT_EQ(f.pt.Unmap(2 * kGiB - 0x1000, 0x2000), Status::NotFound());
  EXPECT_EQ(SnapshotTables(f.pt, f.memory), before);
  EXPECT_EQ(f.memory.free_granules(), free_before);
  EXPECT_TRUE(f.flush.calls.empty()) << "no invalidation for a refused call";
  // Whole leaves work: pages at any granule, blocks whole, several leaves at once.
  ASSERT_TRUE(f.pt.Protect(4 * kGiB + 2 * kMiB + 0x1000, 0x1000, kPermRead).ok());
  EXPECT_EQ(f.pt.Lookup(4 * kGiB + 2 * kMiB + 0x1000)->perms, kPermRead);
  ASSERT_TRUE(f.pt.Unmap(4 * kGiB + 2 * kMiB + 0x1000, 0x1000).ok());
  ASSERT_TRUE(f.pt.Unmap(4 * kGiB, 2 * kMiB + 0x1000).ok());
  ASSERT_TRUE(f.pt.Unmap(4 * kGiB + 2 * kMiB + 0x2000, 0x1000).ok());
  ASSERT_TRUE(f.pt.Unmap(kGiB, kGiB).ok());
  EXPECT_TRUE(AllMappings(f.pt).empty());
  EXPECT_EQ(f.memory.free_granules(), baseline);
}

TEST(CompiledOut, FailedSyncWithoutGatherKeepsTheTablesForGood) {
  if constexpr (config::kOrphanRetry) GTEST_SKIP() << "the retry is built";
  Fixture f(Config::SmmuStage1(Granule::k4KiB, 48, 48, true));
  ASSERT_TRUE(f.pt.Init().ok());
  const size_t baseline = f.memory.free_granules();
  ASSERT_TRUE(f.pt.Map(0x1000, 0x1000, 0x1000, kPermRead, MemType::kNormalWriteBack).ok());
  f.flush.fail_next = 1;
  EXPECT_EQ(f.pt.Unmap(0x1000, 0x1000), Status::TimedOut()) << "must not report success";
  EXPECT_EQ(f.memory.free_granules(), baseline - 3);
  // Never reused: the next successful sync does not free them, nor does Release().
  ASSERT_TRUE(f.pt.Map(0x1000'0000, 0, 0x1000, kPermRead, MemType::kNormalWriteBack).ok());
  ASSERT_TRUE(f.pt.Unmap(0x1000'0000, 0x1000).ok());
  EXPECT_EQ(f.memory.free_granules(), baseline - 3);
  f.pt.Release();
  EXPECT_EQ(f.memory.free_granules(), baseline - 3 + 1) << "the root only";
}

}  // namespace
}  // namespace deviso::pgtable
