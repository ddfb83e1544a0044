// Pure parts of the SMMUv3 driver: event decoding (IHI0070 7.3) and range-TLBI splitting
// (4.4.1). CTest label `smmuv3`.

#include <gtest/gtest.h>

#include <cstring>

#include "smmuv3/hw.h"
#include "smmuv3/smmuv3.h"
#include "smmuv3/tlbi_range.h"

namespace deviso::smmuv3 {
namespace {

ds::Event MakeEvent(uint8_t id, uint32_t sid, bool read, bool priv, bool instr, bool s2,
                    uint64_t addr, uint64_t ipa) {
  ds::Event e;
  e.raw[0] = ds::Event::W0{}.set_event_id(id).set_stream_id(sid).raw;
  e.raw[1] = ds::Event::W1{}
                 .set_rnw(read ? 1 : 0)
                 .set_pnu(priv ? 1 : 0)
                 .set_ind(instr ? 1 : 0)
                 .set_s2(s2 ? 1 : 0)
                 .set_cls(2)
                 .raw;
  e.raw[2] = addr;
  e.raw[3] = ds::Event::W3{}.set_ipa(ipa).raw;
  return e;
}

TEST(EventLayout, FieldsSitWhereIhi0070SaysTheyDo) {
  // 7.3: EventID [7:0], StreamID [63:32]; RnW bit 99 -> word 1 bit 35, InD 98 -> 34,
  // PnU 97 -> 33, S2 103 -> 39; InputAddr is word 2.
  const ds::Event e = MakeEvent(0x10, 0x1234, true, true, true, true, 0x4010'0000, 0);
  EXPECT_EQ(e.raw[0], 0x0000'1234'0000'0010ULL);
  EXPECT_EQ(e.raw[1], (1ULL << 35) | (1ULL << 34) | (1ULL << 33) | (1ULL << 39) | (2ULL << 40));
}

struct DecodeCase {
  uint8_t id;
  bool attached;
  uint32_t reason;
  bool has_address;
  const char* name;
};

TEST(DecodeEvent, EveryArchitectedEvent) {
  const DecodeCase cases[] = {
      {0x01, false, DEVISO_FAULT_UNKNOWN, true, "F_UUT"},
      {0x02, false, DEVISO_FAULT_BLOCKED, false, "C_BAD_STREAMID"},
      {0x03, false, DEVISO_FAULT_EXTERNAL, false, "F_STE_FETCH"},
      {0x04, false, DEVISO_FAULT_BLOCKED, false, "C_BAD_STE"},
      {0x04, true, DEVISO_FAULT_BAD_CONFIG, false, "C_BAD_STE"},
      {0x05, true, DEVISO_FAULT_BLOCKED, true, "F_BAD_ATS_TREQ"},
      {0x06, true, DEVISO_FAULT_BLOCKED, false, "F_STREAM_DISABLED"},
      {0x07, true, DEVISO_FAULT_BLOCKED, true, "F_TRANSL_FORBIDDEN"},
      {0x08, true, DEVISO_FAULT_BAD_CONFIG, false, "C_BAD_SUBSTREAMID"},
      {0x09, true, DEVISO_FAULT_EXTERNAL, false, "F_CD_FETCH"},
      {0x0a, true, DEVISO_FAULT_BAD_CONFIG, false, "C_BAD_CD"},
      {0x0b, true, DEVISO_FAULT_EXTERNAL, true, "F_WALK_EABT"},
      {0x10, true, DEVISO_FAULT_TRANSLATION, true, "F_TRANSLATION"},
      {0x11, true, DEVISO_FAULT_ADDR_SIZE, true, "F_ADDR_SIZE"},
      {0x12, true, DEVISO_FAULT_ACCESS, true, "F_ACCESS"},
      {0x13, true, DEVISO_FAULT_PERMISSION, true, "F_PERMISSION"},
      {0x20, true, DEVISO_FAULT_BAD_CONFIG, true, "F_TLB_CONFLICT"},
      {0x21, true, DEVISO_FAULT_BAD_CONFIG, false, "F_CFG_CONFLICT"},
      {0x24, true, DEVISO_FAULT_UNKNOWN, false, "E_PAGE_REQUEST"},
      {0x25, true, DEVISO_FAULT_EXTERNAL, false, "F_VMS_FETCH"},
      {0xe3, true, DEVISO_FAULT_UNKNOWN, false, "IMPDEF"},
      {0x7f, true, DEVISO_FAULT_UNKNOWN, false, "UNKNOWN"},
  };
  for (const DecodeCase& c : cases) {
    SCOPED_TRACE(c.name);
    const ds::Event e = MakeEvent(c.id, 0x10, false, false, false, false, 0x8000'1000, 0);
    const Fault f = Smmuv3::DecodeEvent(e, "smmu", c.attached);
    EXPECT_EQ(f.reason, c.reason);
    EXPECT_EQ(f.sid, 0x10U);
    EXPECT_EQ(f.raw_type, c.id);
    EXPECT_STREQ(f.unit, "smmu");
    EXPECT_STREQ(Smmuv3::EventName(c.id), c.name);
    EXPECT_EQ((f.flags & DEVISO_FAULT_ADDR_VALID) != 0, c.has_address);
    if (c.has_address) {
      EXPECT_EQ(f.iova, 0x8000'1000U);
      EXPECT_EQ(f.flags & (DEVISO_FAULT_READ | DEVISO_FAULT_WRITE), DEVISO_FAULT_WRITE);
    }
  }
}

TEST(DecodeEvent, AccessKindAndStage2) {
  const Fault r =
      Smmuv3::DecodeEvent(MakeEvent(0x13, 7, true, true, true, false, 0x1000, 0), "smmu", true);
  EXPECT_EQ(r.flags & ~DEVISO_FAULT_ADDR_VALID,
            DEVISO_FAULT_READ | DEVISO_FAULT_PRIV | DEVISO_FAULT_EXEC);
  const Fault s2 = Smmuv3::DecodeEvent(
      MakeEvent(0x10, 7, false, false, false, true, 0x2000, 0x8765'4000), "smmu", true);
  EXPECT_NE(s2.flags & DEVISO_FAULT_STAGE2, 0U);
  EXPECT_EQ(s2.ipa, 0x8765'4000U);
}

TEST(TlbiRange, AtMostTwoCommandsAndOneSixteenthOver) {
  auto check = [](uint64_t n) {
    TlbiRange r[2];
    const size_t k = SplitTlbiRange(n, r);
    ASSERT_GE(k, 1U);
    ASSERT_LE(k, 2U);
    uint64_t covered = 0;
    for (size_t i = 0; i < k; ++i) {
      ASSERT_EQ(r[i].first, covered) << n;  // contiguous from the start
      ASSERT_GE(r[i].count, 1U);
      ASSERT_LE(r[i].count, 32U) << n;  // NUM is 5 bits
      ASSERT_LE(r[i].scale, 31U);       // SCALE is 5 bits
      covered += r[i].granules();
    }
    ASSERT_GE(covered, n);
    ASSERT_LE(covered - n, n / 16) << n;   // the bound
    ASSERT_LE(covered - n, n / 512) << n;  // what the construction promises
  };
  for (uint64_t n = 1; n <= 200'000; ++n) check(n);
  for (uint64_t n : {262'144ULL, 262'145ULL, (1ULL << 36) - 1, 0x1'2345'6789ULL}) check(n);
  TlbiRange r[2];
  EXPECT_EQ(SplitTlbiRange(1ULL << 36, r), 0U) << "not expressible: whole-context instead";
  EXPECT_EQ(SplitTlbiRange(0, r), 0U);
}

}  // namespace
}  // namespace deviso::smmuv3
