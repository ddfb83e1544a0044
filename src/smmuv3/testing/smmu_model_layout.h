// Register offsets and in-memory layouts of Arm SMMUv3 (IHI0070) as the host model reads them.
//
// This file belongs to the model, not to the driver: it is written from the specification on
// its own, so that a misunderstanding in the driver's layouts cannot also hide in the model's.
// Tests of the model use it to build raw stream table entries, context descriptors and commands.
//
// Every field is a Bits<hi, lo> of one little-endian 64-bit word; multi-word structures name
// the word (kWord) a field lives in. Bit numbers are those of the word, so a field the spec
// gives as STE[137:128] appears here as word 2, bits [9:0].

#ifndef DEVISO_SRC_SMMUV3_TESTING_SMMU_MODEL_LAYOUT_H_
#define DEVISO_SRC_SMMUV3_TESTING_SMMU_MODEL_LAYOUT_H_

#include <cstddef>
#include <cstdint>

namespace deviso::smmuv3::testing::layout {

// A field of bits [kHi:kLo] of a 64-bit word (a register or one word of a structure).
template <unsigned kHi, unsigned kLo, unsigned kWordIndex = 0>
struct Bits {
  static_assert(kHi >= kLo && kHi < 64, "bad field");
  static constexpr unsigned kWord = kWordIndex;
  static constexpr unsigned kShift = kLo;
  static constexpr uint64_t kMax =
      kHi - kLo == 63 ? ~uint64_t{0} : (uint64_t{1} << (kHi - kLo + 1)) - 1;
  static constexpr uint64_t kMask = kMax << kLo;

  static constexpr uint64_t Get(uint64_t word) { return (word >> kLo) & kMax; }
  static constexpr uint64_t Make(uint64_t value) { return (value & kMax) << kLo; }
  static constexpr uint64_t Set(uint64_t word, uint64_t value) {
    return (word & ~kMask) | Make(value);
  }
  // Multi-word structures: the field in words[kWord].
  static constexpr uint64_t From(const uint64_t* words) { return Get(words[kWord]); }
  static constexpr void Put(uint64_t* words, uint64_t value) {
    words[kWord] = Set(words[kWord], value);
  }
};

// ---- Registers: IHI0070 6.2 (memory map) and 6.3 (register descriptions) ----
namespace reg {
// Page 0.
inline constexpr size_t kIdr0 = 0x0000;
inline constexpr size_t kIdr1 = 0x0004;
inline constexpr size_t kIdr2 = 0x0008;
inline constexpr size_t kIdr3 = 0x000C;
inline constexpr size_t kIdr4 = 0x0010;
inline constexpr size_t kIdr5 = 0x0014;
inline constexpr size_t kIidr = 0x0018;
inline constexpr size_t kAidr = 0x001C;
inline constexpr size_t kCr0 = 0x0020;
inline constexpr size_t kCr0Ack = 0x0024;
inline constexpr size_t kCr1 = 0x0028;
inline constexpr size_t kCr2 = 0x002C;
inline constexpr size_t kStatusr = 0x0040;
inline constexpr size_t kGbpa = 0x0044;
inline constexpr size_t kAgbpa = 0x0048;
inline constexpr size_t kIrqCtrl = 0x0050;
inline constexpr size_t kIrqCtrlAck = 0x0054;
inline constexpr size_t kGerror = 0x0060;
inline constexpr size_t kGerrorN = 0x0064;
inline constexpr size_t kGerrorIrqCfg0 = 0x0068;  // 64-bit
inline constexpr size_t kGerrorIrqCfg1 = 0x0070;
inline constexpr size_t kGerrorIrqCfg2 = 0x0074;
inline constexpr size_t kStrtabBase = 0x0080;  // 64-bit
inline constexpr size_t kStrtabBaseCfg = 0x0088;
inline constexpr size_t kCmdqBase = 0x0090;  // 64-bit
inline constexpr size_t kCmdqProd = 0x0098;
inline constexpr size_t kCmdqCons = 0x009C;
inline constexpr size_t kEventqBase = 0x00A0;     // 64-bit
inline constexpr size_t kEventqIrqCfg0 = 0x00B0;  // 64-bit
inline constexpr size_t kEventqIrqCfg1 = 0x00B8;
inline constexpr size_t kEventqIrqCfg2 = 0x00BC;
inline constexpr size_t kPriqBase = 0x00C0;  // 64-bit
// Page 1 (IHI0070 6.2: the queue pointers the SMMU writes live in the second 64 KiB page).
inline constexpr size_t kPage1 = 0x10000;
inline constexpr size_t kEventqProd = kPage1 + 0x00A8;
inline constexpr size_t kEventqCons = kPage1 + 0x00AC;
inline constexpr size_t kPriqProd = kPage1 + 0x00C8;
inline constexpr size_t kPriqCons = kPage1 + 0x00CC;
inline constexpr size_t kSize = 2 * kPage1;
}  // namespace reg

// IHI0070 6.3 SMMU_IDR0.
namespace idr0 {
using S2p = Bits<0, 0>;
using S1p = Bits<1, 1>;
using Ttf = Bits<3, 2>;  // 0b10: AArch64 tables only
using Cohacc = Bits<4, 4>;
using Btm = Bits<5, 5>;
using Httu = Bits<7, 6>;
using Hyp = Bits<9, 9>;
using Ats = Bits<10, 10>;
using Asid16 = Bits<12, 12>;
using Msi = Bits<13, 13>;
using Sev = Bits<14, 14>;
using Pri = Bits<16, 16>;
using Vmid16 = Bits<18, 18>;
using Cd2l = Bits<19, 19>;
using TtEndian = Bits<22, 21>;    // 0b10: little-endian only
using StallModel = Bits<25, 24>;  // 0b01: stall not supported
using TermModel = Bits<26, 26>;   // 1: terminated transactions always abort (CD.A must be 1)
using StLevel = Bits<28, 27>;     // 0b01: 2-level stream tables supported
inline constexpr uint64_t kTtfAArch64 = 2;
inline constexpr uint64_t kTtEndianLittle = 2;
inline constexpr uint64_t kStallModelNone = 1;
}  // namespace idr0

// IHI0070 6.3 SMMU_IDR1.
namespace idr1 {
using SidSize = Bits<5, 0>;
using SsidSize = Bits<10, 6>;
using PriqS = Bits<15, 11>;
using EventqS = Bits<20, 16>;
using CmdqS = Bits<25, 21>;
}  // namespace idr1

// IHI0070 6.3 SMMU_IDR3.
namespace idr3 {
using Had = Bits<2, 2>;
using Xnx = Bits<4, 4>;
using Ril = Bits<10, 10>;
using Bbml = Bits<12, 11>;
}  // namespace idr3

// IHI0070 6.3 SMMU_IDR5.
namespace idr5 {
using Oas = Bits<2, 0>;  // 0:32 1:36 2:40 3:42 4:44 5:48 6:52 bits
using Gran4K = Bits<4, 4>;
using Gran16K = Bits<5, 5>;
using Gran64K = Bits<6, 6>;
using Vax = Bits<11, 10>;
}  // namespace idr5

// IHI0070 6.3 SMMU_IIDR.
namespace iidr {
using Implementer = Bits<11, 0>;  // JEP106: 0x43B is Arm
using Revision = Bits<15, 12>;
using Variant = Bits<19, 16>;
using ProductId = Bits<31, 20>;
}  // namespace iidr

// IHI0070 6.3 SMMU_AIDR.
namespace aidr {
using ArchMinorRev = Bits<3, 0>;
using ArchMajorRev = Bits<7, 4>;
}  // namespace aidr

// IHI0070 6.3 SMMU_CR0 (SMMU_CR0ACK has the same layout).
namespace cr0 {
using SmmuEn = Bits<0, 0>;
using PriqEn = Bits<1, 1>;
using EventqEn = Bits<2, 2>;
using CmdqEn = Bits<3, 3>;
using AtsChk = Bits<4, 4>;
using Vmw = Bits<8, 6>;
}  // namespace cr0

// IHI0070 6.3 SMMU_CR2.
namespace cr2 {
using E2h = Bits<0, 0>;
using RecInvSid = Bits<1, 1>;  // record C_BAD_STREAMID for invalid input StreamIDs
using Ptm = Bits<2, 2>;
}  // namespace cr2

// IHI0070 6.3 SMMU_GBPA.
namespace gbpa {
using MemAttr = Bits<3, 0>;
using MtCfg = Bits<4, 4>;
using AllocCfg = Bits<11, 8>;
using ShCfg = Bits<13, 12>;
using PrivCfg = Bits<17, 16>;
using InstCfg = Bits<19, 18>;
using Abort = Bits<20, 20>;
using Update = Bits<31, 31>;
}  // namespace gbpa

// IHI0070 6.3 SMMU_IRQ_CTRL (SMMU_IRQ_CTRLACK has the same layout).
namespace irq_ctrl {
using GerrorIrqEn = Bits<0, 0>;
using PriqIrqEn = Bits<1, 1>;
using EventqIrqEn = Bits<2, 2>;
}  // namespace irq_ctrl

// IHI0070 6.3 SMMU_GERROR / SMMU_GERRORN: an error is active while the bits differ.
namespace gerror {
using CmdqErr = Bits<0, 0>;
using EventqAbtErr = Bits<2, 2>;
using PriqAbtErr = Bits<3, 3>;
using MsiCmdqAbtErr = Bits<4, 4>;
using MsiEventqAbtErr = Bits<5, 5>;
using MsiPriqAbtErr = Bits<6, 6>;
using MsiGerrorAbtErr = Bits<7, 7>;
using SfmErr = Bits<8, 8>;
inline constexpr uint32_t kImplemented = 0x1FD;
}  // namespace gerror

// IHI0070 6.3 SMMU_GERROR_IRQ_CFG0 / SMMU_EVENTQ_IRQ_CFG0 (present when IDR0.MSI = 1).
namespace irq_cfg0 {
using Addr = Bits<51, 2>;  // the MSI target address; resets to an UNKNOWN value
}  // namespace irq_cfg0

// IHI0070 6.3 SMMU_STRTAB_BASE.
namespace strtab_base {
using Addr = Bits<51, 6>;
using Ra = Bits<62, 62>;
}  // namespace strtab_base

// IHI0070 6.3 SMMU_STRTAB_BASE_CFG.
namespace strtab_base_cfg {
using Log2Size = Bits<5, 0>;
using Split = Bits<10, 6>;
using Fmt = Bits<17, 16>;  // 0: linear, 1: 2-level
inline constexpr uint64_t kFmtLinear = 0;
inline constexpr uint64_t kFmt2Level = 1;
}  // namespace strtab_base_cfg

// IHI0070 6.3 SMMU_CMDQ_BASE and SMMU_EVENTQ_BASE.
namespace queue_base {
using Log2Size = Bits<4, 0>;
using Addr = Bits<51, 5>;
using Ra = Bits<62, 62>;  // RA for the command queue, WA for the event queue
}  // namespace queue_base

// IHI0070 6.3 SMMU_CMDQ_PROD/CONS, SMMU_EVENTQ_PROD/CONS. The index occupies bits
// [log2size-1:0] and the wrap flag bit [log2size] of the 20-bit pointer field.
namespace queue_ptr {
using Ptr = Bits<19, 0>;
using CmdqErr = Bits<30, 24>;   // CMDQ_CONS.ERR
using Overflow = Bits<31, 31>;  // EVENTQ_PROD.OVFLG / EVENTQ_CONS.OVACKFLG
}  // namespace queue_ptr

// IHI0070 7.1: command errors, reported in SMMU_CMDQ_CONS.ERR.
namespace cerror {
inline constexpr uint32_t kNone = 0;
inline constexpr uint32_t kIll = 1;
inline constexpr uint32_t kAbt = 2;
inline constexpr uint32_t kAtcInvSync = 3;
}  // namespace cerror

// ---- Stream table: IHI0070 5.1 Level 1 Stream Table Descriptor ----
namespace l1std {
using Span = Bits<4, 0>;  // 0: invalid; n: the L2 table holds 2^(n-1) STEs
using L2Ptr = Bits<51, 6>;
}  // namespace l1std

// ---- IHI0070 5.2 Stream Table Entry: 64 bytes, 8 words ----
namespace ste {
inline constexpr size_t kWords = 8;
inline constexpr size_t kBytes = 64;
// Word 0.
using V = Bits<0, 0, 0>;
using Config = Bits<3, 1, 0>;
using S1Fmt = Bits<5, 4, 0>;
using S1ContextPtr = Bits<51, 6, 0>;
using S1CdMax = Bits<63, 59, 0>;
// Word 1.
using S1Dss = Bits<1, 0, 1>;
using S1Cir = Bits<3, 2, 1>;
using S1Cor = Bits<5, 4, 1>;
using S1Csh = Bits<7, 6, 1>;
using S1StallD = Bits<27, 27, 1>;
using Eats = Bits<29, 28, 1>;
using Strw = Bits<31, 30, 1>;
using ShCfg = Bits<45, 44, 1>;
// Word 2.
using S2Vmid = Bits<15, 0, 2>;
using S2T0Sz = Bits<37, 32, 2>;
using S2Sl0 = Bits<39, 38, 2>;
using S2Ir0 = Bits<41, 40, 2>;
using S2Or0 = Bits<43, 42, 2>;
using S2Sh0 = Bits<45, 44, 2>;
using S2Tg = Bits<47, 46, 2>;  // 0: 4K, 1: 64K, 2: 16K
using S2Ps = Bits<50, 48, 2>;
using S2Aa64 = Bits<51, 51, 2>;
using S2Endi = Bits<52, 52, 2>;
using S2Affd = Bits<53, 53, 2>;
using S2Ptw = Bits<54, 54, 2>;
using S2Hd = Bits<55, 55, 2>;
using S2Ha = Bits<56, 56, 2>;
using S2S = Bits<57, 57, 2>;
using S2R = Bits<58, 58, 2>;
// Word 3.
using S2Ttb = Bits<51, 4, 3>;  // address bits [51:4]

// STE.Config: bit 2 = "not abort", bit 0 = stage 1 translates, bit 1 = stage 2 translates.
inline constexpr uint64_t kConfigAbort = 0b000;
inline constexpr uint64_t kConfigBypass = 0b100;
inline constexpr uint64_t kConfigS1 = 0b101;
inline constexpr uint64_t kConfigS2 = 0b110;
inline constexpr uint64_t kConfigNested = 0b111;
}  // namespace ste

// ---- IHI0070 5.4 Context Descriptor: 64 bytes, 8 words ----
namespace cd {
inline constexpr size_t kWords = 8;
inline constexpr size_t kBytes = 64;
// Word 0.
using T0Sz = Bits<5, 0, 0>;
using Tg0 = Bits<7, 6, 0>;  // 0: 4K, 1: 64K, 2: 16K
using Ir0 = Bits<9, 8, 0>;
using Or0 = Bits<11, 10, 0>;
using Sh0 = Bits<13, 12, 0>;
using Epd0 = Bits<14, 14, 0>;
using Endi = Bits<15, 15, 0>;
using T1Sz = Bits<21, 16, 0>;
using Tg1 = Bits<23, 22, 0>;  // 1: 16K, 2: 4K, 3: 64K
using Ir1 = Bits<25, 24, 0>;
using Or1 = Bits<27, 26, 0>;
using Sh1 = Bits<29, 28, 0>;
using Epd1 = Bits<30, 30, 0>;
using V = Bits<31, 31, 0>;
using Ips = Bits<34, 32, 0>;
using Affd = Bits<35, 35, 0>;
using Wxn = Bits<36, 36, 0>;
using Uwxn = Bits<37, 37, 0>;
using Tbi = Bits<39, 38, 0>;
using Pan = Bits<40, 40, 0>;
using Aa64 = Bits<41, 41, 0>;
using Hd = Bits<42, 42, 0>;
using Ha = Bits<43, 43, 0>;
using S = Bits<44, 44, 0>;
using R = Bits<45, 45, 0>;
using A = Bits<46, 46, 0>;
using Aset = Bits<47, 47, 0>;
using Asid = Bits<63, 48, 0>;
// Word 1.
using Had0 = Bits<1, 1, 1>;
using Ttb0 = Bits<51, 4, 1>;  // address bits [51:4]
// Word 2.
using Had1 = Bits<1, 1, 2>;
using Ttb1 = Bits<51, 4, 2>;
// Word 3.
using Mair0 = Bits<31, 0, 3>;
using Mair1 = Bits<63, 32, 3>;
}  // namespace cd

// ---- IHI0070 4: commands, 16 bytes, 2 words ----
namespace cmd {
// IHI0070 4.1.1 command opcodes.
inline constexpr uint8_t kPrefetchConfig = 0x01;
inline constexpr uint8_t kPrefetchAddr = 0x02;
inline constexpr uint8_t kCfgiSte = 0x03;
inline constexpr uint8_t kCfgiSteRange = 0x04;  // CMD_CFGI_ALL is this with Range = 31
inline constexpr uint8_t kCfgiCd = 0x05;
inline constexpr uint8_t kCfgiCdAll = 0x06;
inline constexpr uint8_t kTlbiNhAll = 0x10;
inline constexpr uint8_t kTlbiNhAsid = 0x11;
inline constexpr uint8_t kTlbiNhVa = 0x12;
inline constexpr uint8_t kTlbiNhVaa = 0x13;
inline constexpr uint8_t kTlbiEl3All = 0x18;
inline constexpr uint8_t kTlbiEl3Va = 0x1A;
inline constexpr uint8_t kTlbiEl2All = 0x20;
inline constexpr uint8_t kTlbiEl2Asid = 0x21;
inline constexpr uint8_t kTlbiEl2Va = 0x22;
inline constexpr uint8_t kTlbiEl2Vaa = 0x23;
inline constexpr uint8_t kTlbiS12Vmall = 0x28;
inline constexpr uint8_t kTlbiS2Ipa = 0x2A;
inline constexpr uint8_t kTlbiNsnhAll = 0x30;
inline constexpr uint8_t kAtcInv = 0x40;
inline constexpr uint8_t kPriResp = 0x41;
inline constexpr uint8_t kResume = 0x44;
inline constexpr uint8_t kStallTerm = 0x45;
inline constexpr uint8_t kSync = 0x46;

// Word 0, common.
using Opcode = Bits<7, 0, 0>;
using SSec = Bits<10, 10, 0>;
using Ssv = Bits<11, 11, 0>;
// Configuration invalidation (IHI0070 4.3).
using SubstreamId = Bits<31, 12, 0>;
using StreamId = Bits<63, 32, 0>;
using CfgiLeaf = Bits<0, 0, 1>;
using CfgiRange = Bits<4, 0, 1>;  // CMD_CFGI_STE_RANGE: 2^(Range+1) StreamIDs
// TLB invalidation (IHI0070 4.4).
using TlbiNum = Bits<16, 12, 0>;
using TlbiScale = Bits<24, 20, 0>;
using TlbiVmid = Bits<47, 32, 0>;
using TlbiAsid = Bits<63, 48, 0>;
using TlbiLeaf = Bits<0, 0, 1>;
using TlbiTtl = Bits<9, 8, 1>;
using TlbiTg = Bits<11, 10, 1>;   // 0: no range; 1: 4K, 2: 16K, 3: 64K
using TlbiVa = Bits<63, 12, 1>;   // address bits [63:12]
using TlbiIpa = Bits<51, 12, 1>;  // address bits [51:12]
// CMD_SYNC (IHI0070 4.7.3).
using SyncCs = Bits<13, 12, 0>;  // 0: none, 1: IRQ, 2: SEV
using SyncMsh = Bits<23, 22, 0>;
using SyncMsiAttr = Bits<27, 24, 0>;
using SyncMsiData = Bits<63, 32, 0>;
using SyncMsiAddr = Bits<51, 2, 1>;
inline constexpr uint64_t kCsNone = 0;
inline constexpr uint64_t kCsIrq = 1;
inline constexpr uint64_t kCsSev = 2;
}  // namespace cmd

// ---- IHI0070 7.3: event records, 32 bytes, 4 words ----
namespace evt {
inline constexpr uint8_t kFUut = 0x01;
inline constexpr uint8_t kCBadStreamId = 0x02;
inline constexpr uint8_t kFSteFetch = 0x03;
inline constexpr uint8_t kCBadSte = 0x04;
inline constexpr uint8_t kFStreamDisabled = 0x06;
inline constexpr uint8_t kCBadSubstreamId = 0x08;
inline constexpr uint8_t kFCdFetch = 0x09;
inline constexpr uint8_t kCBadCd = 0x0A;
inline constexpr uint8_t kFWalkEabt = 0x0B;
inline constexpr uint8_t kFTranslation = 0x10;
inline constexpr uint8_t kFAddrSize = 0x11;
inline constexpr uint8_t kFAccess = 0x12;
inline constexpr uint8_t kFPermission = 0x13;

// Word 0.
using Type = Bits<7, 0, 0>;
using Ssv = Bits<11, 11, 0>;
using SubstreamId = Bits<31, 12, 0>;
using StreamId = Bits<63, 32, 0>;
// Word 1 (F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION, F_WALK_EABT).
using Stag = Bits<15, 0, 1>;
using Stall = Bits<31, 31, 1>;
using PnU = Bits<33, 33, 1>;  // 1: privileged
using InD = Bits<34, 34, 1>;  // 1: instruction
using RnW = Bits<35, 35, 1>;  // 1: read
using S2 = Bits<39, 39, 1>;   // the fault arose at stage 2
using Class = Bits<41, 40, 1>;
// Word 2.
using InputAddr = Bits<63, 0, 2>;
// Word 3.
using Ipa = Bits<51, 12, 3>;       // address bits [51:12]
using FetchAddr = Bits<51, 3, 3>;  // address bits [51:3]
inline constexpr uint64_t kClassCd = 0;
inline constexpr uint64_t kClassTt = 1;
inline constexpr uint64_t kClassIn = 2;
}  // namespace evt

// ---- VMSAv8-64 translation table descriptors (Arm ARM D8.3) ----
namespace pte {
using Valid = Bits<0, 0>;
using Table = Bits<1, 1>;  // 1: table (levels 0-2) or page (level 3); 0: block
using AttrIndx = Bits<4, 2>;
using Ap = Bits<7, 6>;    // stage 1: AP[2:1]
using S2Ap = Bits<7, 6>;  // stage 2: bit 6 read, bit 7 write
using Sh = Bits<9, 8>;
using Af = Bits<10, 10>;
using NG = Bits<11, 11>;
using Contiguous = Bits<52, 52>;
using Pxn = Bits<53, 53>;
using Uxn = Bits<54, 54>;  // stage 1 UXN / XN; stage 2 XN[1]
using PxnTable = Bits<59, 59>;
using UxnTable = Bits<60, 60>;
using ApTable = Bits<62, 61>;     // bit 61: no EL0 access below; bit 62: no write below
using OutputAddr = Bits<51, 12>;  // before masking to the granule
}  // namespace pte

}  // namespace deviso::smmuv3::testing::layout

#endif  // DEVISO_SRC_SMMUV3_TESTING_SMMU_MODEL_LAYOUT_H_
