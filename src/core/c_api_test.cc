// Tests of the C ABI (deviso.h) on Registry::Default() with a fake unit, and of the same calls
// made from C (c_api_c_program.c).

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/c_api_c_program.h"
#include "core/testing/fake_unit.h"
#include "deviso/config.h"
#include "deviso/deviso.h"
#include "deviso/dump.h"
#include "deviso/port/device.h"
#include "deviso/registry.h"

namespace deviso {
namespace {

using testing::FakeUnit;
using Op = FakeUnit::Op;

constexpr uint64_t kPage = 4096;
constexpr uintptr_t kBase = 0x8000'0000;

// Each test registers its unit in the default registry and leaves it as it found it.
class CApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(Registry::Default().RegisterUnit(unit_).ToC(), 0);
    ASSERT_EQ(deviso_device_bind(&dma_, "fake@c", kDmaSids, 2), 0);
  }

  void TearDown() override {
    for (const device* dev : {&dma_, &other_}) {
      for (uint32_t sid = 0; sid <= unit_.caps().max_sid; ++sid) {
        (void)deviso_ctx_free(dev, sid);
      }
      (void)deviso_device_unbind(dev);
    }
    EXPECT_EQ(Registry::Default().UnregisterUnit(unit_).ToC(), 0);
    EXPECT_EQ(unit_.live_domains(), 0U);
  }

  static constexpr uint32_t kDmaSids[] = {0x10, 0x11};
  FakeUnit unit_{FakeUnit::Options{.name = "fake@c", .max_sid = 0xff}};
  device dma_{"dma"};
  device other_{"other"};
};

TEST_F(CApiTest, RfcExample) {
  ASSERT_EQ(deviso_ctx_alloc(&dma_, 0x10), 0);
  ASSERT_EQ(deviso_map(&dma_, 0x10, kBase, 0x1000), 0);
  uint64_t pa = 0;
  EXPECT_EQ(deviso_iova_to_phys(&dma_, 0x10, kBase + 0x123, &pa), 0);
  EXPECT_EQ(pa, kBase + 0x123);
  EXPECT_EQ(deviso_unmap(&dma_, 0x10, kBase, 0x1000), 0);
  EXPECT_EQ(deviso_iova_to_phys(&dma_, 0x10, kBase, &pa), -ENOENT);
  EXPECT_EQ(deviso_ctx_free(&dma_, 0x10), 0);
  EXPECT_EQ(unit_.live_domains(), 0U);
}

// deviso_map() is an identity, read-write, normal-memory mapping.
TEST_F(CApiTest, MapIsIdentityReadWriteNormal) {
  ASSERT_EQ(deviso_ctx_alloc(&dma_, 0x10), 0);
  ASSERT_EQ(deviso_map(&dma_, 0x10, kBase, 2 * kPage), 0);
  const Domain* domain = unit_.DomainOf(0x10);
  for (uint64_t off : {uint64_t{0}, kPage}) {
    const std::optional<FakeUnit::Page> page = unit_.PageAt(domain, kBase + off);
    ASSERT_TRUE(page.has_value());
    EXPECT_EQ(page->pa, kBase + off);
    EXPECT_EQ(page->perms, kPermReadWrite);
    EXPECT_EQ(page->type, MemType::kNormal);
  }
}

TEST_F(CApiTest, RfcCallErrors) {
  // Not bound, not owned.
  EXPECT_EQ(deviso_ctx_alloc(nullptr, 0x10), -EINVAL);
  EXPECT_EQ(deviso_ctx_alloc(&other_, 0x10), -EINVAL);
  EXPECT_EQ(deviso_ctx_alloc(&dma_, 0x12), -EINVAL);
  EXPECT_EQ(deviso_map(&dma_, 0x12, kBase, kPage), -EINVAL);
  EXPECT_EQ(deviso_unmap(&other_, 0x10, kBase, kPage), -EINVAL);
  EXPECT_EQ(deviso_ctx_free(&dma_, 0x12), -EINVAL);
  // No context.
  EXPECT_EQ(deviso_map(&dma_, 0x10, kBase, kPage), -ENOENT);
  EXPECT_EQ(deviso_unmap(&dma_, 0x10, kBase, kPage), -ENOENT);
  EXPECT_EQ(deviso_ctx_free(&dma_, 0x10), -ENOENT);
  EXPECT_EQ(unit_.total_calls(), 0U);

  ASSERT_EQ(deviso_ctx_alloc(&dma_, 0x10), 0);
  EXPECT_EQ(deviso_ctx_alloc(&dma_, 0x10), -EEXIST);
  const size_t calls = unit_.total_calls();
  EXPECT_EQ(deviso_map(&dma_, 0x10, kBase, 0), -EINVAL);
  EXPECT_EQ(deviso_map(&dma_, 0x10, kBase + 1, kPage), -EINVAL);
  EXPECT_EQ(deviso_map(&dma_, 0x10, kBase, kPage - 1), -EINVAL);
  EXPECT_EQ(deviso_map(&dma_, 0x10, UINTPTR_MAX & ~(kPage - 1), 2 * kPage), -EINVAL);
  EXPECT_EQ(deviso_unmap(&dma_, 0x10, kBase, 0), -EINVAL);
  EXPECT_EQ(deviso_unmap(&dma_, 0x10, kBase + 0x800, kPage), -EINVAL);
  EXPECT_EQ(unit_.total_calls(), calls);  // all refused before the backend

  ASSERT_EQ(deviso_map(&dma_, 0x10, kBase, 2 * kPage), 0);
  EXPECT_EQ(deviso_map(&dma_, 0x10, kBase + kPage, kPage), -EEXIST);
  EXPECT_EQ(deviso_unmap(&dma_, 0x10, kBase + kPage, 2 * kPage), -ENOENT);
  unit_.FailNext(Op::kUnmap, Status::TimedOut());
  EXPECT_EQ(deviso_unmap(&dma_, 0x10, kBase, kPage), -ETIMEDOUT);
  unit_.FailNext(Op::kDetach, Status::TimedOut());
  EXPECT_EQ(deviso_ctx_free(&dma_, 0x10), -ETIMEDOUT);
  EXPECT_EQ(deviso_unmap(&dma_, 0x10, kBase, 2 * kPage), 0);  // the context is still there
  EXPECT_EQ(deviso_ctx_free(&dma_, 0x10), 0);
}

struct FlagsCase {
  uint32_t flags;
  int expected;
  MemType type;
};

TEST_F(CApiTest, MapIovaFlags) {
  ASSERT_EQ(deviso_ctx_alloc(&dma_, 0x11), 0);
  const Domain* domain = unit_.DomainOf(0x11);
  const FlagsCase cases[] = {
      {DEVISO_PERM_READ, 0, MemType::kNormal},
      {DEVISO_PERM_RW | DEVISO_ATTR_NORMAL_NC, 0, MemType::kNormalNonCacheable},
      {DEVISO_PERM_RW | DEVISO_ATTR_DEVICE, 0, MemType::kDevice},
      {DEVISO_PERM_READ | DEVISO_PERM_EXEC | DEVISO_ATTR_DEVICE_STRICT, 0, MemType::kDeviceStrict},
      {DEVISO_PERM_WRITE, -ENOTSUP, MemType::kNormal},  // stage 1 has no write-only
      {0, -EINVAL, MemType::kNormal},
      {DEVISO_PERM_EXEC, -EINVAL, MemType::kNormal},
      {DEVISO_PERM_READ | 0x8u, -EINVAL, MemType::kNormal},                       // unknown bit
      {DEVISO_PERM_READ | 0x1000u, -EINVAL, MemType::kNormal},                    // above ATTR
      {DEVISO_PERM_READ | 0x80000000u, -EINVAL, MemType::kNormal},                //
      {DEVISO_PERM_READ | (4u << DEVISO_ATTR_SHIFT), -EINVAL, MemType::kNormal},  // attr 4
      {DEVISO_PERM_READ | DEVISO_ATTR_MASK, -EINVAL, MemType::kNormal},           // attr 15
  };
  uint64_t iova = 0x1000'0000;
  for (const FlagsCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << "flags 0x" << std::hex << c.flags);
    EXPECT_EQ(deviso_map_iova(&dma_, 0x11, iova, 0x2000'0000 + iova, kPage, c.flags), c.expected);
    const std::optional<FakeUnit::Page> page = unit_.PageAt(domain, iova);
    ASSERT_EQ(page.has_value(), c.expected == 0);
    if (page.has_value()) {
      EXPECT_EQ(page->pa, 0x2000'0000 + iova);
      EXPECT_EQ(page->perms, c.flags & (DEVISO_PERM_RW | DEVISO_PERM_EXEC));
      EXPECT_EQ(page->type, c.type);
      EXPECT_EQ(deviso_unmap_iova(&dma_, 0x11, iova, kPage), 0);
    }
    iova += kPage;
  }
  EXPECT_EQ(deviso_map_iova(&dma_, 0x10, 0, 0, kPage, DEVISO_PERM_READ), -ENOENT);
  EXPECT_EQ(deviso_unmap_iova(&dma_, 0x11, 0, kPage), -ENOENT);
}

TEST_F(CApiTest, IovaToPhys) {
  uint64_t pa = 7;
  EXPECT_EQ(deviso_iova_to_phys(&dma_, 0x10, 0, &pa), -ENOENT);
  ASSERT_EQ(deviso_ctx_alloc(&dma_, 0x10), 0);
  ASSERT_EQ(deviso_map_iova(&dma_, 0x10, 0x5000, 0x9000, kPage, DEVISO_PERM_READ), 0);
  EXPECT_EQ(deviso_iova_to_phys(&dma_, 0x10, 0x5fff, nullptr), -EINVAL);
  EXPECT_EQ(deviso_iova_to_phys(&dma_, 0x10, 0x6000, &pa), -ENOENT);
  EXPECT_EQ(pa, 7U);  // untouched on failure
  EXPECT_EQ(deviso_iova_to_phys(&dma_, 0x10, 0x5fff, &pa), 0);
  EXPECT_EQ(pa, 0x9fffU);
}

struct Seen {
  int calls = 0;
  deviso_fault last{};
};

void OnFault(const deviso_fault* fault, void* user) {
  auto* seen = static_cast<Seen*>(user);
  ++seen->calls;
  seen->last = *fault;
}

TEST_F(CApiTest, FaultHandlerAndCount) {
  uint64_t count = 99;
  if constexpr (!config::kFaultReports) {
    // Built without fault reports: argument and context checks first, then -ENOTSUP.
    EXPECT_EQ(deviso_set_fault_handler(&dma_, 0x10, OnFault, nullptr), -ENOENT);
    EXPECT_EQ(deviso_fault_count(&dma_, 0x12, &count), -EINVAL);
    ASSERT_EQ(deviso_ctx_alloc(&dma_, 0x10), 0);
    EXPECT_EQ(deviso_fault_count(&dma_, 0x10, nullptr), -EINVAL);
    EXPECT_EQ(deviso_set_fault_handler(&dma_, 0x10, OnFault, nullptr), -ENOTSUP);
    EXPECT_EQ(deviso_fault_count(&dma_, 0x10, &count), -ENOTSUP);
    EXPECT_EQ(count, 99U);
    return;
  }
  EXPECT_EQ(deviso_set_fault_handler(&dma_, 0x10, OnFault, nullptr), -ENOENT);
  EXPECT_EQ(deviso_fault_count(&dma_, 0x10, &count), -ENOENT);
  EXPECT_EQ(deviso_fault_count(&dma_, 0x12, &count), -EINVAL);
  ASSERT_EQ(deviso_ctx_alloc(&dma_, 0x10), 0);
  EXPECT_EQ(deviso_fault_count(&dma_, 0x10, nullptr), -EINVAL);
  EXPECT_EQ(deviso_fault_count(&dma_, 0x10, &count), 0);
  EXPECT_EQ(count, 0U);

  Seen seen;
  ASSERT_EQ(deviso_set_fault_handler(&dma_, 0x10, OnFault, &seen), 0);
  Fault fault{};
  fault.reason = DEVISO_FAULT_PERMISSION;
  fault.flags = DEVISO_FAULT_READ | DEVISO_FAULT_ADDR_VALID;
  fault.raw_type = 0x13;
  fault.iova = kBase;
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(unit_.RaiseFault(0x10, fault));
  }
  EXPECT_EQ(deviso_fault_count(&dma_, 0x10, &count), 0);
  EXPECT_EQ(count, 40U);
  // The C API's default limit: a burst of 16 (one more if the loop was slow).
  EXPECT_GE(seen.calls, 16);
  EXPECT_LE(seen.calls, 17);
  char line[128];
  ASSERT_GT(deviso_fault_format(&seen.last, line, sizeof(line)), 0);
  EXPECT_STREQ(line,
               "fake@c: sid 0x10: unprivileged data read at iova 0x80000000: permission fault "
               "(event 0x13): device dma");  // the fake unit lists no mappings: no more

  ASSERT_EQ(deviso_set_fault_handler(&dma_, 0x10, nullptr, nullptr), 0);
  const int calls = seen.calls;
  ASSERT_TRUE(unit_.RaiseFault(0x10, Fault{}));
  EXPECT_EQ(seen.calls, calls);
}

TEST_F(CApiTest, GetCaps) {
  deviso_caps caps{};
  EXPECT_EQ(deviso_get_caps(&other_, &caps), -EINVAL);
  EXPECT_EQ(deviso_get_caps(nullptr, &caps), -EINVAL);
  EXPECT_EQ(deviso_get_caps(&dma_, nullptr), -EINVAL);
  ASSERT_EQ(deviso_get_caps(&dma_, &caps), 0);
  EXPECT_STREQ(caps.backend, "fake");
  EXPECT_EQ(caps.page_sizes, unit_.caps().page_sizes);
  EXPECT_EQ(caps.ias, 48);
  EXPECT_EQ(caps.oas, 48);
  EXPECT_EQ(caps.stages, 1);
  EXPECT_EQ(caps.coherent, 1);
  EXPECT_EQ(caps.max_sid, 0xffU);
}

void CollectDumpLine(const char* line, void* user) {
  static_cast<std::vector<std::string>*>(user)->emplace_back(line);
}

TEST_F(CApiTest, DumpListsTheDefaultRegistry) {
  ASSERT_EQ(deviso_ctx_alloc(&dma_, 0x10), 0);
  std::vector<std::string> lines;
  ASSERT_EQ(deviso_dump(&CollectDumpLine, &lines), 0);
  // The fake unit cannot list its mappings: the dump says so instead of listing none.
  const std::vector<std::string> want = {
      "deviso-dump 1",
      "unit fake@c backend fake ias 48 oas 48 pages 0x40201000",
      "context 0 unit fake@c page 0x1000",
      "stream context 0 device dma sid 0x10",
      "maps context 0 not-listed",
      "stream context - device dma sid 0x11",
      "end",
  };
  EXPECT_EQ(lines, want);
  EXPECT_EQ(deviso_dump(nullptr, &lines), -EINVAL);
}

TEST_F(CApiTest, DeviceBind) {
  const uint32_t sids[] = {0x20, 0x21};
  EXPECT_EQ(deviso_device_bind(&other_, "nope", sids, 2), -ENOENT);
  EXPECT_EQ(deviso_device_bind(&other_, nullptr, sids, 2), -EINVAL);
  EXPECT_EQ(deviso_device_bind(&other_, "fake@c", nullptr, 2), -EINVAL);
  EXPECT_EQ(deviso_device_bind(&other_, "fake@c", sids, 0), -EINVAL);
  EXPECT_EQ(deviso_device_bind(nullptr, "fake@c", sids, 2), -EINVAL);
  EXPECT_EQ(deviso_device_bind(&other_, "fake@c", kDmaSids, 1), -EEXIST);  // dma's
  const uint32_t too_big[] = {0x100};
  EXPECT_EQ(deviso_device_bind(&other_, "fake@c", too_big, 1), -EINVAL);  // > max_sid
  EXPECT_EQ(deviso_device_unbind(&other_), -ENOENT);

  ASSERT_EQ(deviso_device_bind(&other_, "fake@c", sids, 2), 0);
  EXPECT_EQ(deviso_device_bind(&other_, "fake@c", sids, 2), -EEXIST);
  ASSERT_EQ(deviso_ctx_alloc(&other_, 0x21), 0);
  EXPECT_EQ(deviso_device_unbind(&other_), -EBUSY);
  ASSERT_EQ(deviso_ctx_free(&other_, 0x21), 0);
  EXPECT_EQ(deviso_device_unbind(&other_), 0);
}

// The same calls, made from a C translation unit.
TEST_F(CApiTest, FromC) {
  deviso_c_program_results r{};
  deviso_c_program_run(&other_, "fake@c", 0x42, kBase, 2 * kPage, &r);
  EXPECT_EQ(r.bind, 0);
  EXPECT_EQ(r.caps, 0);
  EXPECT_EQ(r.page_sizes, unit_.caps().page_sizes);
  EXPECT_EQ(r.alloc, 0);
  EXPECT_EQ(r.map, 0);
  EXPECT_EQ(r.iova_to_phys, 0);
  EXPECT_EQ(r.pa, kBase + 0x10);
  EXPECT_EQ(r.map_iova, 0);
  EXPECT_EQ(r.unmap_iova, 0);
  EXPECT_EQ(r.unmap, 0);
  EXPECT_EQ(r.fault_count, config::kFaultReports ? 0 : -ENOTSUP);
  EXPECT_EQ(r.faults, 0U);
  EXPECT_EQ(r.free_ctx, 0);
  EXPECT_EQ(r.unbind, 0);
  const std::string expected =
      "fake@c: sid 0x42: unprivileged data write at iova 0x80000000: translation fault "
      "(event 0x10)";
  EXPECT_EQ(r.line, expected);
  EXPECT_EQ(r.format_len, static_cast<int>(expected.size()));
  EXPECT_EQ(unit_.live_domains(), 0U);
  EXPECT_EQ(Registry::Default().UnitOf(&other_).status(), Status::InvalidArgument());
}

}  // namespace
}  // namespace deviso
