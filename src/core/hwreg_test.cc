// Tests of the typed-register library (core/hwreg.h): field get/set and truncation, address and
// enum fields, RES0 masking on write and the debug check, and reads/writes through a fake Mmio.

#include "core/hwreg.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "core/mmio.h"

namespace deviso::hwreg {
namespace {

enum class Mode : uint8_t { kOff = 0, kLow = 1, kHigh = 2, kAuto = 3 };

// A made-up 32-bit register at 0x10 with a RES0 hole in [23:12] and in [7:7].
struct Ctrl : Register<Ctrl, uint32_t, 0x10> {
  DEVISO_REG_RSVDZ({23, 12}, {7, 7});
  DEVISO_REG_FIELD(31, 24, level);
  DEVISO_REG_ENUM(11, 10, Mode, mode);
  DEVISO_REG_FIELD(9, 8, pair);
  DEVISO_REG_FIELD(6, 1, count);
  DEVISO_REG_BIT(0, enable);
};
static_assert(sizeof(Ctrl) == 4);
static_assert(Ctrl::kOffset == 0x10 && Ctrl::kHasOffset);
static_assert(Ctrl::kRsvdZ == 0x00fff080);

// A 64-bit descriptor word with an address in [51:12] and a wide field up to bit 63.
struct Desc : Register<Desc, uint64_t> {
  DEVISO_REG_RSVDZ({11, 9});
  DEVISO_REG_BIT(0, valid);
  DEVISO_REG_FIELD(8, 1, attr);
  DEVISO_REG_ADDR(51, 12, addr);
  DEVISO_REG_FIELD(63, 52, tag);
};
static_assert(sizeof(Desc) == 8);
static_assert(!Desc::kHasOffset);

// A register without RES0 bits covering the whole word.
struct Whole : Register<Whole, uint32_t, 0x0> {
  DEVISO_REG_FIELD(31, 0, value);
};

// Everything is usable in constant expressions.
static_assert(Ctrl{}.set_enable(1).set_count(5).raw == 0x0b);
static_assert(Ctrl{0xff000000}.level() == 0xff);
static_assert(Desc{}.set_addr(0x12345678'9000).addr() == 0x12345678'9000);
static_assert(Whole{}.set_value(0xdeadbeef).value() == 0xdeadbeef);
static_assert(Mask<uint64_t>(63, 0) == ~uint64_t{0} && Mask<uint8_t>(7, 4) == 0xf0);

// Records every access with its width, and serves reads from a register file.
class FakeMmio final : public Mmio {
 public:
  uint32_t Read32(size_t offset) override {
    log.emplace_back('r', 32, offset);
    return static_cast<uint32_t>(regs[offset]);
  }
  void Write32(size_t offset, uint32_t value) override {
    log.emplace_back('w', 32, offset);
    regs[offset] = value;
  }
  uint64_t Read64(size_t offset) override {
    log.emplace_back('r', 64, offset);
    return regs[offset];
  }
  void Write64(size_t offset, uint64_t value) override {
    log.emplace_back('w', 64, offset);
    regs[offset] = value;
  }
  std::map<size_t, uint64_t> regs;
  std::vector<std::tuple<char, int, size_t>> log;
};

TEST(HwregTest, FieldsGetAndSetTheirOwnBitsOnly) {
  Ctrl c{};
  c.set_level(0xab).set_pair(2).set_count(0x2a).set_enable(1);
  // level 0xab << 24 | pair 2 << 8 | count 0x2a << 1 | enable.
  EXPECT_EQ(c.raw, 0xab000000U | 0x200U | 0x54U | 0x1U);
  EXPECT_EQ(c.level(), 0xabU);
  EXPECT_EQ(c.pair(), 2U);
  EXPECT_EQ(c.count(), 0x2aU);
  EXPECT_EQ(c.enable(), 1U);
  // Clearing one field leaves its neighbours.
  c.set_count(0);
  EXPECT_EQ(c.raw, 0xab000201U);
}

TEST(HwregTest, SetTruncatesAValueWiderThanTheField) {
  Ctrl c{};
  c.set_count(0x7f);  // 6 bits: 0x3f stored, bit 7 (RES0) and bit 0 untouched
  EXPECT_EQ(c.count(), 0x3fU);
  EXPECT_EQ(c.raw, 0x7eU);
  c.set_pair(0xffff'ffff'ffffULL);
  EXPECT_EQ(c.pair(), 3U);
  EXPECT_EQ(c.raw & ~Ctrl::kRsvdZ, c.raw);
  Desc d{};
  d.set_tag(0x1fff);  // 12 bits
  EXPECT_EQ(d.tag(), 0xfffU);
  EXPECT_EQ(d.raw, 0xfffULL << 52);
}

TEST(HwregTest, AddressFieldsKeepTheAddressInPlace) {
  Desc d{};
  d.set_valid(1).set_addr(0x000f'ffff'ffff'f123ULL);  // low 12 bits and bits above 51 dropped
  EXPECT_EQ(d.addr(), 0x000f'ffff'ffff'f000ULL);
  EXPECT_EQ(d.raw, 0x000f'ffff'ffff'f001ULL);
  d.set_addr(0x4000);
  EXPECT_EQ(d.addr(), 0x4000U);
  EXPECT_EQ(d.valid(), 1U);
}

TEST(HwregTest, EnumFieldsRoundTrip) {
  Ctrl c{};
  EXPECT_EQ(c.mode(), Mode::kOff);
  c.set_mode(Mode::kHigh);
  EXPECT_EQ(c.mode(), Mode::kHigh);
  EXPECT_EQ(c.raw, 2U << 10);
  c.set_mode(Mode::kAuto).set_enable(1);
  EXPECT_EQ(Ctrl{c.raw}.mode(), Mode::kAuto);
  EXPECT_EQ(c.raw, (3U << 10) | 1U);
}

TEST(HwregTest, ReadAndWriteThroughMmioAtTheirOffsetWithTheirWidth) {
  FakeMmio mmio;
  mmio.regs[0x10] = 0x05000003;
  Ctrl c = Ctrl::ReadFrom(mmio);
  EXPECT_EQ(c.level(), 5U);
  EXPECT_EQ(c.count(), 1U);
  c.set_enable(0).WriteTo(mmio);
  EXPECT_EQ(mmio.regs[0x10], 0x05000002U);
  // A per-port block: the base is added to the register's own offset.
  Ctrl{}.set_level(7).WriteTo(mmio, 0x100);
  EXPECT_EQ(mmio.regs[0x110], 0x07000000U);
  Desc{}.set_addr(0x8000).WriteAt(mmio, 0x40);
  EXPECT_EQ(mmio.regs[0x40], 0x8000U);
  EXPECT_EQ(Desc::ReadAt(mmio, 0x40).addr(), 0x8000U);
  const std::vector<std::tuple<char, int, size_t>> expected = {
      {'r', 32, 0x10}, {'w', 32, 0x10}, {'w', 32, 0x110}, {'w', 64, 0x40}, {'r', 64, 0x40}};
  EXPECT_EQ(mmio.log, expected);  // one access each, in program order
}

TEST(HwregTest, WriteClearsReservedBitsEchoedFromAHardwareRead) {
  FakeMmio mmio;
  mmio.regs[0x10] = 0xffffffff;  // hardware returning ones in RES0 bits
  Ctrl c = Ctrl::ReadFrom(mmio);
  EXPECT_EQ(c.rsvdz_bits(), Ctrl::kRsvdZ);  // the read is reported as it is
  c.set_enable(0).WriteTo(mmio);            // read-modify-write: RES0 written as zero
  EXPECT_EQ(mmio.regs[0x10], 0xffffffffU & ~Ctrl::kRsvdZ & ~1U);
}

TEST(HwregTest, LowHighWritesTwoHalvesLowFirst) {
  FakeMmio mmio;
  WriteLowHigh(mmio, 0x28, 0x2c, 0x11223344'55667788ULL);
  EXPECT_EQ(mmio.regs[0x28], 0x55667788U);
  EXPECT_EQ(mmio.regs[0x2c], 0x11223344U);
  const std::vector<std::tuple<char, int, size_t>> expected = {{'w', 32, 0x28}, {'w', 32, 0x2c}};
  EXPECT_EQ(mmio.log, expected);
  EXPECT_EQ(Join64(Low32(0xabcdef01'23456789ULL), High32(0xabcdef01'23456789ULL)),
            0xabcdef01'23456789ULL);
}

TEST(HwregTest, DebugCheckPassesAWellFormedDescriptor) {
  Desc d{};
  d.set_valid(1).set_attr(0xff).set_addr(0x1000).set_tag(1);
  EXPECT_EQ(d.DebugCheckRsvdZ().raw, d.raw);
}

#if !defined(NDEBUG)
TEST(HwregDeathTest, DebugCheckStopsADescriptorWithAReservedBitSet) {
  Desc d{};
  d.set_valid(1);
  d.raw |= uint64_t{1} << 10;  // a RES0 bit, as a driver bug would set it
  EXPECT_EQ(d.rsvdz_bits(), uint64_t{1} << 10);
  EXPECT_DEATH(d.DebugCheckRsvdZ(), "assertion failed: rsvdz_bits\\(\\) == 0");
}
#endif

}  // namespace
}  // namespace deviso::hwreg
