// deviso-decode's decoders: on records captured from real QEMU runs (captures/, see its
// README.md: how each was taken) and on hand-built edge cases, each checked for the fields,
// the spec sections and the verdicts the tool prints.

#include "decode.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace deviso::decode {
namespace {

using ::testing::HasSubstr;

std::string Capture(const std::string& name) {
  std::ifstream in(std::string(DEVISO_DECODE_CAPTURES) + "/" + name);
  EXPECT_TRUE(in.good()) << name;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<uint64_t> Qwords(const std::string& text, size_t n) {
  std::string error;
  std::optional<std::vector<uint64_t>> w = ParseWords(text, &error);
  EXPECT_TRUE(w.has_value()) << error;
  if (!w) return {};
  std::optional<std::vector<uint64_t>> q = AsQwords(*w, n);
  EXPECT_TRUE(q.has_value()) << w->size() << " words";
  return q.value_or(std::vector<uint64_t>(n));
}

// ---- Captures from QEMU 7.2 (captures/README.md) -----------------------------------------------

TEST(DecodeCaptures, EventsAsTheSmmuWroteThem) {
  // Attack 1 of ahci_isolation: a write to never-mapped 0x40602000 (F_TRANSLATION).
  const std::string t = DecodeSmmuEvent(Qwords(Capture("qemu72-event-translation.gdb"), 4));
  EXPECT_THAT(t, HasSubstr("F_TRANSLATION  [IHI0070 7.3.12]"));
  EXPECT_THAT(t, HasSubstr("StreamID         0x10"));
  EXPECT_THAT(t, HasSubstr("InputAddr        0x40602000"));
  EXPECT_THAT(t, HasSubstr("unprivileged data write at iova 0x40602000: translation fault"));
  // Attack 3: a write into a read-only page (F_PERMISSION).
  const std::string p = DecodeSmmuEvent(Qwords(Capture("qemu72-event-permission.gdb"), 4));
  EXPECT_THAT(p, HasSubstr("F_PERMISSION  [IHI0070 7.3.15]"));
  EXPECT_THAT(p, HasSubstr("InputAddr        0x40603000"));
  EXPECT_THAT(p, HasSubstr("permission fault (event 0x13)"));
  // Attack 4: the rogue controller's stream has no STE (C_BAD_STE): blocked, as the driver
  // reads it for a stream it never attached.
  const std::string b = DecodeSmmuEvent(Qwords(Capture("qemu72-event-bad-ste.gdb"), 4));
  EXPECT_THAT(b, HasSubstr("C_BAD_STE  [IHI0070 7.3.4]"));
  EXPECT_THAT(b, HasSubstr("StreamID         0x18"));
  EXPECT_THAT(b, HasSubstr("(stream not attached): smmuv3: sid 0x18: stream blocked (no context)"));
}

TEST(DecodeCaptures, SteAndCdOfTheAttachedStreamAreAccepted) {
  const std::string ste = DecodeSte(Qwords(Capture("qemu72-ste-s1.gdb"), 8), Idrs{});
  EXPECT_THAT(ste, HasSubstr("Config           0x5                  stage 1 translate"));
  EXPECT_THAT(ste, HasSubstr("S1ContextPtr     0x40600800"));
  EXPECT_THAT(ste, HasSubstr("  accepted"));
  // The same STE on a part without stage 1 (IDR0.S1P = 0, S2P = 1).
  Idrs s2_only;
  s2_only.idr0 = (s2_only.idr0 & ~2u) | 1u;
  EXPECT_THAT(DecodeSte(Qwords(Capture("qemu72-ste-s1.gdb"), 8), s2_only),
              HasSubstr("C_BAD_STE: Config enables stage 1 but IDR0.S1P = 0"));
  // The rogue's STE: all zero, invalid.
  EXPECT_THAT(DecodeSte(Qwords(Capture("qemu72-ste-invalid.gdb"), 8), Idrs{}),
              HasSubstr("C_BAD_STE: V = 0"));
  const std::string cd = DecodeCd(Qwords(Capture("qemu72-cd.gdb"), 8), Idrs{});
  EXPECT_THAT(cd, HasSubstr("TTB0             0x40ab1000"));
  EXPECT_THAT(cd, HasSubstr("ASID             0x1"));
  EXPECT_THAT(cd, HasSubstr("  accepted"));
  // On a part with 8-bit ASIDs only, an ASID above 0xff would be refused; 1 is fine.
  Idrs asid8;
  asid8.idr0 &= ~(1u << 12);
  EXPECT_THAT(DecodeCd(Qwords(Capture("qemu72-cd.gdb"), 8), asid8), HasSubstr("  accepted"));
}

TEST(DecodeCaptures, EveryCommandTheDriverIssuedIsLegalOnQemu) {
  for (const char* name :
       {"qemu72-cmd-cfgi-ste-range.gdb", "qemu72-cmd-cfgi-ste.gdb", "qemu72-cmd-cfgi-cd-all.gdb",
        "qemu72-cmd-sync.gdb", "qemu72-cmd-tlbi-nh-asid.gdb", "qemu72-cmd-tlbi-nh-va.gdb",
        "qemu72-cmd-tlbi-nsnh-all.gdb"}) {
    EXPECT_THAT(DecodeCommand(Qwords(Capture(name), 2), Idrs{}), HasSubstr("\n  legal\n")) << name;
  }
  EXPECT_THAT(DecodeCommand(Qwords(Capture("qemu72-cmd-cfgi-ste-range.gdb"), 2), Idrs{}),
              HasSubstr("all StreamIDs (CMD_CFGI_ALL"));
  // The driver's TLBI_NH_VA (TG 4K, TTL 3, Leaf) is refused by an SMMUv3.0 without RIL, where
  // TG and TTL are RES0.
  Idrs v30;
  v30.idr3 &= ~(1u << 10);
  v30.aidr = 0;
  const std::string va = DecodeCommand(Qwords(Capture("qemu72-cmd-tlbi-nh-va.gdb"), 2), v30);
  EXPECT_THAT(va, HasSubstr("TTL              0x3"));
  EXPECT_THAT(va, HasSubstr("CERROR_ILL (IHI0070 7.1): TG/TTL before SMMUv3.2"));
}

TEST(DecodeCaptures, WalksTheTablesOfTheCd) {
  MemoryImage m;
  std::string error;
  ASSERT_TRUE(m.AddText(Capture("qemu72-tables.txt"), 64, &error)) << error;
  EXPECT_EQ(m.size(), 4u * 512);  // levels 0-3, one table each
  WalkConfig c;
  c.root = 0x40ab1000;  // the CD's TTB0
  c.iova = 0x40608010;  // inside the 64 KiB the driver had mapped at that fault
  const std::string hit = Walk(c, m);
  EXPECT_THAT(hit, HasSubstr("level 3: table 0x40ab2000 index 8"));
  EXPECT_THAT(hit, HasSubstr("AP=1 rw (EL1 and EL0), UXN, PXN, AF, SH=ISH, AttrIndx=1, nG"));
  EXPECT_THAT(hit, HasSubstr("result: 0x40608010 -> PA 0x40608010"));
  c.iova = 0x40602000;  // attack 1's address
  EXPECT_THAT(Walk(c, m), HasSubstr("invalid: translation fault at level 3"));
}

TEST(DecodeCaptures, VirtioIommuFault) {
  // QEMU 7.2 reports a MAPPING fault with ADDRESS only (no READ/WRITE): no access direction.
  const std::string v = DecodeVirtioFault(Qwords(Capture("qemu72-virtio-fault.gdb"), 3));
  EXPECT_THAT(v, HasSubstr("reason           0x2                  MAPPING"));
  EXPECT_THAT(v, HasSubstr("flags            0x100                ADDRESS"));
  EXPECT_THAT(v, HasSubstr("endpoint         0x10"));
  EXPECT_THAT(
      v, HasSubstr("virtio-iommu: sid 0x10 at iova 0x40617000: translation fault (event 0x2)"));
}

// ---- Input ------------------------------------------------------------------------------------

TEST(DecodeInput, ReadsGdbQemuAndPlainHex) {
  std::string error;
  // gdb x/4gx with a symbol, QEMU xp, commas and bare hex.
  const auto w = ParseWords(
      "0x4000a000 <g_evtq+64>:\t0x0000001000000010\t0x0000000800000000\n"
      "000000004000a010: 0x0000000040100000 0x0000000000000000\n"
      "deadbeef, 0X10 ,1\n",
      &error);
  ASSERT_TRUE(w.has_value()) << error;
  EXPECT_EQ(*w, (std::vector<uint64_t>{0x0000001000000010, 0x0000000800000000, 0x40100000, 0,
                                       0xdeadbeef, 0x10, 1}));
  EXPECT_FALSE(ParseWords("0x10 zz", &error).has_value());
  EXPECT_THAT(error, HasSubstr("'zz'"));
  EXPECT_FALSE(ParseWords("0x11112222333344445", &error).has_value());  // 17 digits
}

TEST(DecodeInput, JoinsWordsLowHalfFirst) {
  EXPECT_EQ(AsQwords({0x10, 0x20, 0x30, 0x40}, 2),
            (std::vector<uint64_t>{0x0000002000000010, 0x0000004000000030}));
  EXPECT_EQ(AsQwords({1, 2}, 2), (std::vector<uint64_t>{1, 2}));
  EXPECT_FALSE(AsQwords({1, 2, 3}, 2).has_value());
  EXPECT_FALSE(AsQwords({1ULL << 40, 0, 0, 0}, 2).has_value()) << "a 64-bit value as a word";
}

// ---- SMMUv3 events ----------------------------------------------------------------------------

TEST(DecodeEvent, HandBuiltTranslationFaultNamesEveryField) {
  // F_TRANSLATION (0x10) of StreamID 0x10: a write (RnW = 0), unprivileged, stage 1, CLASS IN.
  const std::vector<uint64_t> q = {0x0000001000000010, 0x0000020000000000, 0x40100000, 0};
  const std::string out = DecodeSmmuEvent(q);
  EXPECT_THAT(out, HasSubstr("SMMUv3 event record: F_TRANSLATION  [IHI0070 7.3.12]"));
  EXPECT_THAT(out, HasSubstr("StreamID         0x10"));
  EXPECT_THAT(out, HasSubstr("RnW              0x0                  write"));
  EXPECT_THAT(out, HasSubstr("CLASS            0x2                  input address"));
  EXPECT_THAT(out, HasSubstr("InputAddr        0x40100000"));
  EXPECT_THAT(out, HasSubstr("deviso report (stream attached):     smmuv3: sid 0x10: unprivileged "
                             "data write at iova 0x40100000: translation fault (event 0x10)"));
}

TEST(DecodeEvent, UnknownEventIdIsNamedSo) {
  const std::string out = DecodeSmmuEvent({0x7f, 0, 0, 0});
  EXPECT_THAT(out, HasSubstr("UNKNOWN"));
  EXPECT_THAT(out, HasSubstr("[IHI0070 7.3]"));
}

// ---- STE and CD -------------------------------------------------------------------------------

// A stage 1 STE as deviso's driver writes it (src/smmuv3/stream_table.cc): V, Config = 0b101,
// S1ContextPtr, S1DSS = 0b10 (substream 0), CD fetch write-back inner shareable, SHCFG = 0b01.
std::vector<uint64_t> Stage1Ste() {
  return {0x000000004008000bULL,
          0x0000100000000000ULL | 0b10 | (1 << 2) | (1 << 4) | (3 << 6),
          0,
          0,
          0,
          0,
          0,
          0};
}

TEST(DecodeSte, AStage1SteIsAcceptedOnQemu) {
  const std::string out = DecodeSte(Stage1Ste(), Idrs{});
  EXPECT_THAT(out, HasSubstr("Config           0x5                  stage 1 translate, stage 2 "
                             "bypass  [IHI0070 5.2]"));
  EXPECT_THAT(out, HasSubstr("S1ContextPtr     0x40080000"));
  EXPECT_THAT(out, HasSubstr("S1DSS            0x2                  use substream 0"));
  EXPECT_THAT(out, HasSubstr("  accepted"));
}

TEST(DecodeSte, WhatQemuWouldRejectIsFlaggedWithTheRule) {
  // Stage 2 on QEMU 7.2 (IDR0.S2P = 0).
  std::vector<uint64_t> s2 = {0xd, 0, 0x0000000000000010ULL | (1ULL << 51) | (16ULL << 32), 0, 0, 0,
                              0,   0};
  EXPECT_THAT(DecodeSte(s2, Idrs{}),
              HasSubstr("C_BAD_STE: Config enables stage 2 but IDR0.S2P = 0"));
  // A RES0 bit (word 0 bit 52).
  std::vector<uint64_t> res0 = Stage1Ste();
  res0[0] |= 1ULL << 52;
  EXPECT_THAT(DecodeSte(res0, Idrs{}), HasSubstr("C_BAD_STE: a RES0 field is non-zero (5.2)"));
  // Reserved Config 0b001.
  EXPECT_THAT(DecodeSte({0x3, 0, 0, 0, 0, 0, 0, 0}, Idrs{}),
              HasSubstr("C_BAD_STE: Config is a reserved encoding"));
  // Invalid.
  EXPECT_THAT(DecodeSte({0, 0, 0, 0, 0, 0, 0, 0}, Idrs{}), HasSubstr("C_BAD_STE: V = 0"));
  // The same stage 2 STE on a part with stage 2 (IDR0.S2P = 1) gets past the Config check.
  Idrs s2p;
  s2p.idr0 |= 1;
  EXPECT_THAT(DecodeSte(s2, s2p), ::testing::Not(HasSubstr("S2P = 0")));
}

// A CD as deviso writes it: T0SZ 16, 4K, WB/WB/ISH, EPD1, V, IPS 44-bit, AA64, R, A, ASID 1.
std::vector<uint64_t> Cd() {
  const uint64_t w0 = 16 | (1 << 8) | (1 << 10) | (3 << 12) | (1ULL << 30) | (1ULL << 31) |
                      (4ULL << 32) | (1ULL << 41) | (1ULL << 45) | (1ULL << 46) | (1ULL << 48);
  return {w0, 0x40081000, 0, 0x44ff04, 0, 0, 0, 0};
}

TEST(DecodeCd, ACdIsAcceptedAndABadOneNamesItsRule) {
  const std::string ok = DecodeCd(Cd(), Idrs{});
  EXPECT_THAT(
      ok, HasSubstr("T0SZ             0x10                 48-bit input (TTB0)  [IHI0070 5.4]"));
  EXPECT_THAT(ok, HasSubstr("IPS              0x4                  44 bits"));
  EXPECT_THAT(ok, HasSubstr("TTB0             0x40081000"));
  EXPECT_THAT(ok, HasSubstr("  accepted"));
  std::vector<uint64_t> stall = Cd();
  stall[0] &= ~(1ULL << 46);  // A = 0
  EXPECT_THAT(DecodeCd(stall, Idrs{}), HasSubstr("C_BAD_CD: A = 0"));
  std::vector<uint64_t> big = Cd();
  big[0] = (big[0] & ~0x3fULL) | 12;  // T0SZ 12: a 52-bit VA
  EXPECT_THAT(DecodeCd(big, Idrs{}), HasSubstr("C_BAD_CD: TxSZ out of range"));
  std::vector<uint64_t> mpam = Cd();
  mpam[6] = 1;
  EXPECT_THAT(DecodeCd(mpam, Idrs{}), HasSubstr("C_BAD_CD: a RES0 field is non-zero"));
}

// ---- Commands ---------------------------------------------------------------------------------

TEST(DecodeCommand, LegalityFollowsTheIdrs) {
  // CMD_TLBI_NH_VA, ASID 1, range NUM = 3 of 4K (TG = 0b01), address 0x40000000.
  const std::vector<uint64_t> range = {0x12 | (3ULL << 12) | (1ULL << 48),
                                       0x40000000 | (1ULL << 10) | 1};
  const std::string on_qemu = DecodeCommand(range, Idrs{});
  EXPECT_THAT(on_qemu, HasSubstr("SMMUv3 command: CMD_TLBI_NH_VA  [IHI0070 4.4.4]"));
  EXPECT_THAT(on_qemu, HasSubstr("NUM              0x3"));
  EXPECT_THAT(on_qemu, HasSubstr("TG               0x1                  4 KiB"));
  EXPECT_THAT(on_qemu, HasSubstr("  legal"));
  Idrs no_ril;
  no_ril.idr3 &= ~(1u << 10);
  EXPECT_THAT(DecodeCommand(range, no_ril),
              HasSubstr("CERROR_ILL (IHI0070 7.1): range without RIL"));
  // CMD_SYNC with CS = 0b11, a reserved opcode, an ASID too wide without ASID16.
  EXPECT_THAT(DecodeCommand({0x46 | (3ULL << 12), 0}, Idrs{}),
              HasSubstr("CERROR_ILL (IHI0070 7.1): CMD_SYNC CS"));
  EXPECT_THAT(DecodeCommand({0x7f, 0}, Idrs{}), HasSubstr("reserved opcode"));
  EXPECT_THAT(DecodeCommand({0x7f, 0}, Idrs{}), HasSubstr("CERROR_ILL (IHI0070 7.1): opcode"));
  Idrs asid8;
  asid8.idr0 &= ~(1u << 12);
  EXPECT_THAT(DecodeCommand({0x11 | (0x100ULL << 48), 0}, asid8), HasSubstr("ASID width"));
  // CMD_CFGI_ALL is CFGI_STE_RANGE with Range 31.
  EXPECT_THAT(DecodeCommand({0x04, 31}, Idrs{}), HasSubstr("all StreamIDs (CMD_CFGI_ALL"));
}

// ---- virtio-iommu -----------------------------------------------------------------------------

TEST(DecodeVirtioFault, HandBuiltMappingFault) {
  // reason MAPPING, flags WRITE | ADDRESS, endpoint 0x10, address 0x40100000.
  const std::vector<uint64_t> q = {0x0000010200000002ULL, 0x10, 0x40100000};
  const std::string out = DecodeVirtioFault(q);
  EXPECT_THAT(out, HasSubstr("[virtio 1.2 5.13.6.9]"));
  EXPECT_THAT(out, HasSubstr("MAPPING"));
  EXPECT_THAT(out, HasSubstr("WRITE ADDRESS"));
  EXPECT_THAT(out, HasSubstr("virtio-iommu: sid 0x10: unprivileged data write at iova 0x40100000"));
  EXPECT_THAT(DecodeVirtioFault({0x0000000000000102ULL, 0, 0}),
              HasSubstr("warning: reserved bytes are non-zero"));
}

// ---- Walks ------------------------------------------------------------------------------------

TEST(DecodeWalk, HandBuiltFourLevelTableWithABlockAndAPage) {
  // 4K granule, 48-bit input (T0SZ 16): level 0 at 0x1000 -> level 1 at 0x2000 -> level 2 at
  // 0x3000: entry 0 a 2 MiB block at 0x80000000; entry 1 -> level 3 at 0x4000 whose entry 5 is
  // a page at 0x90005000 (read-only).
  MemoryImage m;
  std::string error;
  ASSERT_TRUE(
      m.AddText("0x1000: 0x0000000000002003\n"
                "0x2008: 0x0000000000003003\n"  // L1 index 1: IOVA 0x40000000
                "0x3000: 0x0000000080000701 0x0000000000004003\n"
                "0x4028: 0x00000000900057c3\n",
                64, &error))
      << error;
  WalkConfig c;
  c.root = 0x1000;
  c.iova = 0x40001234;
  const std::string block = Walk(c, m);
  EXPECT_THAT(block, HasSubstr("level 0: table 0x1000 index 0"));
  EXPECT_THAT(block, HasSubstr("level 1: table 0x2000 index 1"));
  EXPECT_THAT(block, HasSubstr("block of 0x200000 bytes -> 0x80000000"));
  EXPECT_THAT(block, HasSubstr("result: 0x40001234 -> PA 0x80001234"));
  c.iova = 0x40205010;
  const std::string page = Walk(c, m);
  EXPECT_THAT(page, HasSubstr("level 3: table 0x4000 index 5"));
  EXPECT_THAT(page, HasSubstr("AP=3 ro (EL1 and EL0)"));
  EXPECT_THAT(page, HasSubstr("result: 0x40205010 -> PA 0x90005010"));
  c.iova = 0x40206000;  // level 3 entry 6: not in the dump
  EXPECT_THAT(Walk(c, m), HasSubstr("not in the memory dump"));
  ASSERT_TRUE(m.AddText("0x4030: 0x0\n", 64, &error));
  EXPECT_THAT(Walk(c, m), HasSubstr("invalid: translation fault at level 3"));
  c.iova = 1ULL << 48;
  EXPECT_THAT(Walk(c, m), HasSubstr("beyond the input size"));
}

TEST(DecodeWalk, RawImagesAndWordDumps) {
  MemoryImage m;
  std::string raw(16, '\0');
  raw[0] = 0x03;
  raw[1] = 0x20;  // 0x2003 little-endian
  m.AddRaw(0x1000, raw);
  EXPECT_EQ(m.Read64(0x1000), 0x2003u);
  std::string error;
  ASSERT_TRUE(m.AddText("0x5000: 0x00000003 0x00000001\n", 32, &error)) << error;
  EXPECT_EQ(m.Read64(0x5000), 0x0000000100000003u);
  EXPECT_FALSE(m.AddText("zz: 0x1\n", 64, &error));
}

// ---- The IOVA map -----------------------------------------------------------------------------

TEST(DecodeMap, RendersRowsExtentsAndFaultsFromAConsoleLog) {
  const std::string log =
      "boot...\n"
      "fault: smmuv3@9050000: sid 0x10: unprivileged data write at iova 0x8090040: translation "
      "fault (event 0x10)\n"
      "[demo] deviso-dump 1\n"
      "[demo] unit smmuv3@9050000 backend smmuv3 ias 48 oas 44 pages 0x40201000\n"
      "[demo] context 0 unit smmuv3@9050000 page 0x1000\n"
      "[demo] stream context 0 device ahci@0000:00:02.0 sid 0x10 pci 00:02.0\n"
      "[demo] map context 0 iova 0x8080000 size 0x10000 pa 0x4000c000 perms rw type normal leaf "
      "0x1000\n"
      "[demo] map context 0 iova 0x80a0000 size 0x1000 pa 0x4001c000 perms r type normal leaf "
      "0x1000\n"
      "[demo] stream context - device rogue@0000:00:03.0 sid 0x18 pci 00:03.0\n"
      "[demo] end\n"
      "fault: smmuv3@9050000: sid 0x10: unprivileged data write at iova 0x9990000: translation "
      "fault (event 0x10)\n";  // after the dump: not drawn
  std::string error;
  std::optional<std::string> svg = RenderMap(log, {{0x18, 0x1000}}, &error);
  ASSERT_TRUE(svg.has_value()) << error;
  EXPECT_THAT(*svg, HasSubstr("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_THAT(*svg, HasSubstr(">ahci@0000:00:02.0</text>"));
  EXPECT_THAT(*svg, HasSubstr("sid 0x10  pci 00:02.0"));
  EXPECT_THAT(*svg, HasSubstr("0x8080000+64 KiB"));
  EXPECT_THAT(*svg, HasSubstr("fill=\"#f4a742\""));  // rw
  EXPECT_THAT(*svg, HasSubstr("fill=\"#7cc47c\""));  // r
  EXPECT_THAT(*svg, HasSubstr("fault 0x8090040"));
  EXPECT_THAT(*svg, ::testing::Not(HasSubstr("0x9990000")));
  EXPECT_THAT(*svg, HasSubstr("blocked: every access faults"));
  EXPECT_THAT(*svg, HasSubstr("fault at 0x1000"));  // the --fault on the blocked stream
  EXPECT_THAT(*svg, HasSubstr("</svg>"));
  EXPECT_FALSE(RenderMap("no dump here\n", {}, &error).has_value());
  EXPECT_THAT(error, HasSubstr("deviso-dump"));
}

}  // namespace
}  // namespace deviso::decode
