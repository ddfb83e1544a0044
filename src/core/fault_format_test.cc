// deviso_fault_format(): table-driven, plus snprintf's truncation rules.

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "deviso/deviso.h"

namespace {

constexpr uint32_t kR = DEVISO_FAULT_READ;
constexpr uint32_t kW = DEVISO_FAULT_WRITE;
constexpr uint32_t kX = DEVISO_FAULT_EXEC;
constexpr uint32_t kPriv = DEVISO_FAULT_PRIV;
constexpr uint32_t kS2 = DEVISO_FAULT_STAGE2;
constexpr uint32_t kAddr = DEVISO_FAULT_ADDR_VALID;

struct FormatCase {
  deviso_fault fault;
  const char* expected;
};

deviso_fault MakeFault(uint32_t sid, uint32_t reason, uint32_t flags, uint32_t raw, uint64_t iova,
                       uint64_t ipa = 0, const char* unit = "smmuv3@9050000") {
  return deviso_fault{.sid = sid,
                      .reason = reason,
                      .flags = flags,
                      .raw_type = raw,
                      .iova = iova,
                      .ipa = ipa,
                      .unit = unit};
}

const FormatCase kCases[] = {
    // The example of the issue: SMMU F_TRANSLATION is event 0x10.
    {MakeFault(0x10, DEVISO_FAULT_TRANSLATION, kW | kAddr, 0x10, 0x4010'0000),
     "smmuv3@9050000: sid 0x10: unprivileged data write at iova 0x40100000: translation fault "
     "(event 0x10)"},
    // F_PERMISSION (0x13) on a privileged read.
    {MakeFault(0x8, DEVISO_FAULT_PERMISSION, kR | kPriv | kAddr, 0x13, 0x8000'0000),
     "smmuv3@9050000: sid 0x8: privileged data read at iova 0x80000000: permission fault "
     "(event 0x13)"},
    // Instruction fetch wins over the read flag that comes with it.
    {MakeFault(0, DEVISO_FAULT_PERMISSION, kR | kX | kAddr, 0x13, 0x1000),
     "smmuv3@9050000: sid 0x0: unprivileged instruction fetch at iova 0x1000: permission fault "
     "(event 0x13)"},
    // Read and write (an atomic).
    {MakeFault(0x2, DEVISO_FAULT_ACCESS, kR | kW | kAddr, 0x12, 0x2000),
     "smmuv3@9050000: sid 0x2: unprivileged data read-write at iova 0x2000: access flag fault "
     "(event 0x12)"},
    // No address: C_BAD_STE (0x4) on a stream with a broken STE; access unknown.
    {MakeFault(0x1f, DEVISO_FAULT_BAD_CONFIG, 0, 0x4, 0xdead),
     "smmuv3@9050000: sid 0x1f: invalid stream configuration (event 0x4)"},
    // Default-deny: a stream with no context (F_STREAM_DISABLED, 0x6 on SMMUv3).
    {MakeFault(0x20, DEVISO_FAULT_BLOCKED, kW, 0x6, 0),
     "smmuv3@9050000: sid 0x20: unprivileged data write: stream blocked (no context) (event 0x6)"},
    // Stage 2 with both addresses; 64-bit values print in full.
    {MakeFault(0xffffffff, DEVISO_FAULT_ADDR_SIZE, kW | kS2 | kAddr, 0x11, 0xffff'ffff'ffff'f000,
               0x1'0000'0000),
     "smmuv3@9050000: sid 0xffffffff: unprivileged data write at iova 0xfffffffffffff000 "
     "(ipa 0x100000000): stage 2 address size fault (event 0x11)"},
    {MakeFault(3, DEVISO_FAULT_EXTERNAL, kR | kAddr, 0x10, 0x4000, 0, "virtio-iommu@a003e00"),
     "virtio-iommu@a003e00: sid 0x3: unprivileged data read at iova 0x4000: external abort "
     "(event 0x10)"},
    {MakeFault(0, DEVISO_FAULT_OVERFLOW, 0, 0, 0),
     "smmuv3@9050000: fault queue overflow, faults lost"},
    // Unknown reasons, and a unit without a name.
    {MakeFault(1, DEVISO_FAULT_UNKNOWN, kR, 0x99, 0, 0, nullptr),
     "?: sid 0x1: unprivileged data read: unknown fault (event 0x99)"},
    {MakeFault(1, 1234, kR, 0x99, 0, 0, ""),
     "?: sid 0x1: unprivileged data read: unknown fault (event 0x99)"},
};

TEST(FaultFormatTest, Table) {
  for (const FormatCase& c : kCases) {
    SCOPED_TRACE(c.expected);
    char buf[256];
    std::memset(buf, 'x', sizeof(buf));
    const int n = deviso_fault_format(&c.fault, buf, sizeof(buf));
    EXPECT_STREQ(buf, c.expected);
    EXPECT_EQ(n, static_cast<int>(std::strlen(c.expected)));
  }
}

// snprintf semantics: the return value is the whole length; the output is cut and terminated.
TEST(FaultFormatTest, Truncates) {
  const deviso_fault& fault = kCases[0].fault;
  const std::string full = kCases[0].expected;
  const int len = static_cast<int>(full.size());
  for (size_t size : {size_t{1}, size_t{2}, size_t{10}, full.size(), full.size() + 1}) {
    SCOPED_TRACE(size);
    char buf[256];
    std::memset(buf, 'x', sizeof(buf));
    EXPECT_EQ(deviso_fault_format(&fault, buf, size), len);
    EXPECT_EQ(std::string(buf), full.substr(0, size - 1));
    EXPECT_EQ(buf[size], 'x') << "wrote past len";
  }
}

TEST(FaultFormatTest, MeasuresWithoutBuffer) {
  EXPECT_EQ(deviso_fault_format(&kCases[0].fault, nullptr, 0),
            static_cast<int>(std::strlen(kCases[0].expected)));
  char c = 'x';
  EXPECT_EQ(deviso_fault_format(&kCases[0].fault, &c, 0),
            static_cast<int>(std::strlen(kCases[0].expected)));
  EXPECT_EQ(c, 'x');
}

TEST(FaultFormatTest, RejectsNull) {
  char buf[8];
  EXPECT_EQ(deviso_fault_format(nullptr, buf, sizeof(buf)), -EINVAL);
  EXPECT_EQ(deviso_fault_format(&kCases[0].fault, nullptr, 8), -EINVAL);
}

}  // namespace
