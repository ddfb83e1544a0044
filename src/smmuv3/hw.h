// Arm SMMUv3 register and in-memory structure layouts (Arm IHI0070, SMMUv3 architecture
// specification). Registers are in `reg`, in-memory structures (STE, CD, commands, events)
// in `ds`. Fields are declared in spec bit order with the section that defines them.
//
// Only what this driver programs or decodes is named; reserved bits are written as zero. Every
// type is declared on core/hwreg.h (the register and descriptor-word types; the 64-byte STE/CD
// and the commands/events stay arrays of raw words, each word read through its W<n> type).

#ifndef DEVISO_SRC_SMMUV3_HW_H_
#define DEVISO_SRC_SMMUV3_HW_H_

#include <cstddef>
#include <cstdint>

#include "core/hwreg.h"

namespace deviso::smmuv3 {

namespace reg {

// Register offsets (IHI0070 6.2, "Register overview"). Page 1 starts at 0x10000.
inline constexpr size_t kIdr0 = 0x00;
inline constexpr size_t kIdr1 = 0x04;
inline constexpr size_t kIdr2 = 0x08;
inline constexpr size_t kIdr3 = 0x0c;
inline constexpr size_t kIdr4 = 0x10;
inline constexpr size_t kIdr5 = 0x14;
inline constexpr size_t kIidr = 0x18;
inline constexpr size_t kAidr = 0x1c;
inline constexpr size_t kCr0 = 0x20;
inline constexpr size_t kCr0Ack = 0x24;
inline constexpr size_t kCr1 = 0x28;
inline constexpr size_t kCr2 = 0x2c;
inline constexpr size_t kStatusr = 0x40;
inline constexpr size_t kGbpa = 0x44;
inline constexpr size_t kIrqCtrl = 0x50;
inline constexpr size_t kIrqCtrlAck = 0x54;
inline constexpr size_t kGerror = 0x60;
inline constexpr size_t kGerrorN = 0x64;
// 6.3.19-6.3.21, 6.3.28/6.3.29, 6.3.34/6.3.35: MSI configuration (IDR0.MSI; PRIQ with IDR0.PRI).
// CFG0 is the 64-bit doorbell address (ADDR == 0: no MSI is sent), CFG1 the data, CFG2 the
// attributes. Their reset values are UNKNOWN.
inline constexpr size_t kGerrorIrqCfg0 = 0x68;  // 64-bit
inline constexpr size_t kGerrorIrqCfg1 = 0x70;
inline constexpr size_t kGerrorIrqCfg2 = 0x74;
inline constexpr size_t kEventqIrqCfg0 = 0xb0;  // 64-bit
inline constexpr size_t kEventqIrqCfg1 = 0xb8;
inline constexpr size_t kEventqIrqCfg2 = 0xbc;
inline constexpr size_t kPriqIrqCfg0 = 0xd0;  // 64-bit
inline constexpr size_t kPriqIrqCfg1 = 0xd8;
inline constexpr size_t kPriqIrqCfg2 = 0xdc;
inline constexpr size_t kStrtabBase = 0x80;  // 64-bit
inline constexpr size_t kStrtabBaseCfg = 0x88;
inline constexpr size_t kCmdqBase = 0x90;  // 64-bit
inline constexpr size_t kCmdqProd = 0x98;
inline constexpr size_t kCmdqCons = 0x9c;
inline constexpr size_t kEventqBase = 0xa0;     // 64-bit
inline constexpr size_t kEventqProd = 0x100a8;  // page 1 (6.3.30)
inline constexpr size_t kEventqCons = 0x100ac;  // page 1 (6.3.31)
inline constexpr size_t kRegionSize = 0x20000;

// 6.3.1 SMMU_IDR0
struct Idr0 : hwreg::Register<Idr0, uint32_t, kIdr0> {
  DEVISO_REG_BIT(0, s2p);
  DEVISO_REG_BIT(1, s1p);
  DEVISO_REG_FIELD(3, 2, ttf);  // 0b10: AArch64 tables; 0b11: AArch32 and AArch64
  DEVISO_REG_BIT(4, cohacc);
  DEVISO_REG_BIT(5, btm);
  DEVISO_REG_FIELD(7, 6, httu);
  DEVISO_REG_BIT(9, hyp);
  DEVISO_REG_BIT(10, ats);
  DEVISO_REG_BIT(12, asid16);
  DEVISO_REG_BIT(13, msi);
  DEVISO_REG_BIT(14, sev);
  DEVISO_REG_BIT(16, pri);
  DEVISO_REG_BIT(18, vmid16);
  DEVISO_REG_BIT(19, cd2l);
  DEVISO_REG_FIELD(22, 21, ttendian);  // 0b10: little-endian only
  DEVISO_REG_FIELD(25, 24, stall_model);
  DEVISO_REG_BIT(26, term_model);
  DEVISO_REG_FIELD(28, 27, st_level);  // 0b01: 2-level stream table supported
};

// 6.3.2 SMMU_IDR1
struct Idr1 : hwreg::Register<Idr1, uint32_t, kIdr1> {
  DEVISO_REG_FIELD(5, 0, sidsize);
  DEVISO_REG_FIELD(10, 6, ssidsize);
  DEVISO_REG_FIELD(15, 11, priqs);
  DEVISO_REG_FIELD(20, 16, eventqs);
  DEVISO_REG_FIELD(25, 21, cmdqs);
  DEVISO_REG_BIT(28, rel);
  DEVISO_REG_BIT(29, queues_preset);
  DEVISO_REG_BIT(30, tables_preset);
};

// 6.3.4 SMMU_IDR3
struct Idr3 : hwreg::Register<Idr3, uint32_t, kIdr3> {
  DEVISO_REG_BIT(2, had);
  DEVISO_REG_FIELD(12, 11, bbml);
  DEVISO_REG_BIT(10, ril);  // range invalidation and TTL hints
};

// 6.3.6 SMMU_IDR5
struct Idr5 : hwreg::Register<Idr5, uint32_t, kIdr5> {
  DEVISO_REG_FIELD(2, 0, oas);  // 0:32 1:36 2:40 3:42 4:44 5:48 6:52 bits
  DEVISO_REG_BIT(4, gran4k);
  DEVISO_REG_BIT(5, gran16k);
  DEVISO_REG_BIT(6, gran64k);
  DEVISO_REG_FIELD(11, 10, vax);
  DEVISO_REG_FIELD(31, 16, stall_max);
};

// 6.3.7 SMMU_IIDR: the implementation (errata.h matches it).
struct Iidr : hwreg::Register<Iidr, uint32_t, kIidr> {
  DEVISO_REG_FIELD(11, 0, implementer);  // JEP106 code of the implementer
  DEVISO_REG_FIELD(15, 12, revision);
  DEVISO_REG_FIELD(19, 16, variant);
  DEVISO_REG_FIELD(31, 20, product_id);
};

// 6.3.8 SMMU_AIDR: the architecture revision.
struct Aidr : hwreg::Register<Aidr, uint32_t, kAidr> {
  DEVISO_REG_FIELD(3, 0, arch_minor_rev);
  DEVISO_REG_FIELD(7, 4, arch_major_rev);
};

// The address sizes of the xAS encodings shared by IDR5.OAS, CD.IPS and STE.S2PS.
inline constexpr uint8_t kAddressSizeBits[] = {32, 36, 40, 42, 44, 48, 52};

// 6.3.9 SMMU_CR0 (and CR0ACK, same layout)
struct Cr0 : hwreg::Register<Cr0, uint32_t> {
  DEVISO_REG_BIT(0, smmuen);
  DEVISO_REG_BIT(1, priqen);
  DEVISO_REG_BIT(2, eventqen);
  DEVISO_REG_BIT(3, cmdqen);
  DEVISO_REG_BIT(4, atschk);
  DEVISO_REG_FIELD(8, 6, vmw);
};
// The CR0 bits this driver writes and waits to see acknowledged in CR0ACK: every enable, and
// ATSCHK. While any is set the SMMU may read the stream table, CDs, page tables and queues.
inline constexpr uint32_t kCr0Enables =
    Cr0{}.set_smmuen(1).set_priqen(1).set_eventqen(1).set_cmdqen(1).set_atschk(1).raw;

// 6.3.11 SMMU_CR1: attributes of table and queue accesses.
struct Cr1 : hwreg::Register<Cr1, uint32_t, kCr1> {
  DEVISO_REG_FIELD(1, 0, queue_ic);  // 0b00 NC, 0b01 WB, 0b10 WT
  DEVISO_REG_FIELD(3, 2, queue_oc);
  DEVISO_REG_FIELD(5, 4, queue_sh);  // 0b00 NSH, 0b10 OSH, 0b11 ISH
  DEVISO_REG_FIELD(7, 6, table_ic);
  DEVISO_REG_FIELD(9, 8, table_oc);
  DEVISO_REG_FIELD(11, 10, table_sh);
};
inline constexpr uint64_t kCacheNonCacheable = 0;
inline constexpr uint64_t kCacheWriteBack = 1;
inline constexpr uint64_t kShareOuter = 2;
inline constexpr uint64_t kShareInner = 3;

// 6.3.12 SMMU_CR2
struct Cr2 : hwreg::Register<Cr2, uint32_t, kCr2> {
  DEVISO_REG_BIT(0, e2h);
  DEVISO_REG_BIT(1, recinvsid);  // record C_BAD_STREAMID for out-of-range StreamIDs
  DEVISO_REG_BIT(2, ptm);        // private TLB maintenance (ignore broadcast TLBI)
};

// 6.3.14 SMMU_GBPA: global bypass attributes (when SMMUEN == 0).
struct Gbpa : hwreg::Register<Gbpa, uint32_t, kGbpa> {
  DEVISO_REG_BIT(20, abort);
  DEVISO_REG_BIT(31, update);
};

// 6.3.16 SMMU_IRQ_CTRL (and IRQ_CTRLACK)
struct IrqCtrl : hwreg::Register<IrqCtrl, uint32_t> {
  DEVISO_REG_BIT(0, gerror_irqen);
  DEVISO_REG_BIT(1, priq_irqen);
  DEVISO_REG_BIT(2, eventq_irqen);
};
// Every IRQ_CTRL enable (IRQ_CTRLACK acknowledges all three).
inline constexpr uint32_t kIrqCtrlAll =
    IrqCtrl{}.set_gerror_irqen(1).set_priq_irqen(1).set_eventq_irqen(1).raw;

// 6.3 SMMU_GERROR_IRQ_CFG0..2, SMMU_EVENTQ_IRQ_CFG0..2, SMMU_PRIQ_IRQ_CFG0..2: the MSI
// doorbell of an interrupt (IDR0.MSI), at the offsets above. ADDR == 0 sends no MSI.
struct IrqCfg0 : hwreg::Register<IrqCfg0, uint64_t> {
  DEVISO_REG_ADDR(51, 2, addr);  // doorbell address bits [51:2], in place
};
struct IrqCfg1 : hwreg::Register<IrqCfg1, uint32_t> {
  DEVISO_REG_FIELD(31, 0, data);
};
struct IrqCfg2 : hwreg::Register<IrqCfg2, uint32_t> {
  DEVISO_REG_FIELD(3, 0, memattr);
  DEVISO_REG_FIELD(5, 4, sh);
};

// 6.3.18 SMMU_GERROR (and GERRORN). An error is active while GERROR[n] != GERRORN[n];
// software acknowledges by toggling GERRORN[n].
struct Gerror : hwreg::Register<Gerror, uint32_t> {
  DEVISO_REG_BIT(0, cmdq_err);
  DEVISO_REG_BIT(2, eventq_abt_err);
  DEVISO_REG_BIT(3, priq_abt_err);
  DEVISO_REG_BIT(4, msi_cmdq_abt_err);
  DEVISO_REG_BIT(5, msi_eventq_abt_err);
  DEVISO_REG_BIT(6, msi_priq_abt_err);
  DEVISO_REG_BIT(7, msi_gerror_abt_err);
  DEVISO_REG_BIT(8, sfm_err);  // service failure mode: the SMMU stopped
};
// The GERROR bits defined above; the rest are RES0 (an SMMU never sets them).
inline constexpr uint32_t kGerrorDefined = Gerror{}
                                               .set_cmdq_err(1)
                                               .set_eventq_abt_err(1)
                                               .set_priq_abt_err(1)
                                               .set_msi_cmdq_abt_err(1)
                                               .set_msi_eventq_abt_err(1)
                                               .set_msi_priq_abt_err(1)
                                               .set_msi_gerror_abt_err(1)
                                               .set_sfm_err(1)
                                               .raw;
static_assert(kGerrorDefined == 0x1fd);

// 6.3.24 SMMU_STRTAB_BASE
struct StrtabBase : hwreg::Register<StrtabBase, uint64_t, kStrtabBase> {
  DEVISO_REG_ADDR(51, 6, addr);  // address bits [51:6], in place
  DEVISO_REG_BIT(62, ra);
};

// 6.3.25 SMMU_STRTAB_BASE_CFG
struct StrtabBaseCfg : hwreg::Register<StrtabBaseCfg, uint32_t, kStrtabBaseCfg> {
  DEVISO_REG_FIELD(5, 0, log2size);
  DEVISO_REG_FIELD(10, 6, split);
  DEVISO_REG_FIELD(17, 16, fmt);  // 0b00 linear, 0b01 2-level
};
inline constexpr uint64_t kStrtabFmtLinear = 0;
inline constexpr uint64_t kStrtabFmt2Level = 1;

// 6.3.26 SMMU_CMDQ_BASE, 6.3.29 SMMU_EVENTQ_BASE
struct QueueBase : hwreg::Register<QueueBase, uint64_t> {
  DEVISO_REG_FIELD(4, 0, log2size);
  DEVISO_REG_ADDR(51, 5, addr);  // address bits [51:5], in place
  DEVISO_REG_BIT(62, ra_wa);     // read-allocate (CMDQ) / write-allocate (EVENTQ)
};

// Queue index registers: 6.3.27 CMDQ_PROD, 6.3.28 CMDQ_CONS, 6.3.30 EVENTQ_PROD,
// 6.3.31 EVENTQ_CONS. The index is `log2size` bits followed by a wrap bit.
struct QueueIndex : hwreg::Register<QueueIndex, uint32_t> {
  DEVISO_REG_FIELD(19, 0, wr_rd);  // index and wrap (as wide as the largest queue)
  DEVISO_REG_FIELD(30, 24, err);   // CMDQ_CONS.ERR: reason of a command error
  DEVISO_REG_BIT(31, ovf);         // EVENTQ_PROD.OVFLG / EVENTQ_CONS.OVACKFLG
};
// All of QueueIndex.ERR, and OVFLG/OVACKFLG (what a CONS/PROD may hold beside the pointer).
inline constexpr uint32_t kQueueIndexErr = hwreg::Field<uint32_t, 30, 24>::kMask;
inline constexpr uint32_t kQueueIndexOvf = QueueIndex{}.set_ovf(1).raw;

// CMDQ_CONS.ERR codes (7.1, "Command queue errors").
inline constexpr uint64_t kCerrorNone = 0;
inline constexpr uint64_t kCerrorIll = 1;  // illegal command
inline constexpr uint64_t kCerrorAbt = 2;  // abort fetching the command
inline constexpr uint64_t kCerrorAtcInvSync = 3;

}  // namespace reg

namespace ds {

// 5.1 Level 1 Stream Table Descriptor (2-level stream tables).
struct L1Std : hwreg::Register<L1Std, uint64_t> {
  DEVISO_REG_FIELD(4, 0, span);   // 0: invalid (C_BAD_STREAMID); n: 2^(n-1) STEs
  DEVISO_REG_ADDR(51, 6, l2ptr);  // L2 table address bits [51:6], in place
};

// 5.2 STE, Stream Table Entry: 64 bytes. Word 0 holds V, Config and the CD pointer, so a
// stream switches between blocked (V=0) and translating with one 64-bit store once the
// other words are in place.
struct Ste {
  static constexpr size_t kWords = 8;
  uint64_t raw[kWords] = {};

  // Word 0
  struct W0 : hwreg::Register<W0, uint64_t> {
    DEVISO_REG_BIT(0, v);
    DEVISO_REG_FIELD(3, 1, config);
    DEVISO_REG_FIELD(5, 4, s1fmt);
    DEVISO_REG_ADDR(51, 6, s1_context_ptr);  // CD address bits [51:6], in place
    DEVISO_REG_FIELD(63, 59, s1cdmax);
  };
  // Word 1
  struct W1 : hwreg::Register<W1, uint64_t> {
    DEVISO_REG_FIELD(1, 0, s1dss);
    DEVISO_REG_FIELD(3, 2, s1cir);  // CD fetch inner cacheability
    DEVISO_REG_FIELD(5, 4, s1cor);
    DEVISO_REG_FIELD(7, 6, s1csh);
    DEVISO_REG_FIELD(29, 28, eats);
    DEVISO_REG_FIELD(31, 30, strw);   // 0b00: EL1 (NS-EL1 translation regime)
    DEVISO_REG_FIELD(45, 44, shcfg);  // 0b01: use incoming shareability
  };
  // Word 2 (stage 2)
  struct W2 : hwreg::Register<W2, uint64_t> {
    DEVISO_REG_FIELD(15, 0, s2vmid);
    DEVISO_REG_FIELD(37, 32, s2t0sz);
    DEVISO_REG_FIELD(39, 38, s2sl0);
    DEVISO_REG_FIELD(41, 40, s2ir0);
    DEVISO_REG_FIELD(43, 42, s2or0);
    DEVISO_REG_FIELD(45, 44, s2sh0);
    DEVISO_REG_FIELD(47, 46, s2tg);  // 0b00 4K, 0b01 64K, 0b10 16K
    DEVISO_REG_FIELD(50, 48, s2ps);
    DEVISO_REG_BIT(51, s2aa64);
    DEVISO_REG_BIT(52, s2endi);
    DEVISO_REG_BIT(53, s2affd);
    DEVISO_REG_BIT(54, s2ptw);
    DEVISO_REG_BIT(55, s2hd);
    DEVISO_REG_BIT(56, s2ha);
    DEVISO_REG_BIT(57, s2s);
    DEVISO_REG_BIT(58, s2r);  // record stage 2 faults
  };
  // Word 3
  struct W3 : hwreg::Register<W3, uint64_t> {
    DEVISO_REG_ADDR(51, 4, s2ttb);  // stage 2 table address bits [51:4], in place
  };
};
static_assert(sizeof(Ste) == 64);

// 5.2 STE.Config
inline constexpr uint64_t kConfigAbort = 0b000;
inline constexpr uint64_t kConfigBypass = 0b100;
inline constexpr uint64_t kConfigS1Translate = 0b101;
inline constexpr uint64_t kConfigS2Translate = 0b110;

// 5.4 CD, Context Descriptor: 64 bytes.
struct Cd {
  static constexpr size_t kWords = 8;
  uint64_t raw[kWords] = {};

  struct W0 : hwreg::Register<W0, uint64_t> {
    DEVISO_REG_FIELD(5, 0, t0sz);
    DEVISO_REG_FIELD(7, 6, tg0);  // 0b00 4K, 0b01 64K, 0b10 16K
    DEVISO_REG_FIELD(9, 8, ir0);
    DEVISO_REG_FIELD(11, 10, or0);
    DEVISO_REG_FIELD(13, 12, sh0);
    DEVISO_REG_BIT(14, epd0);
    DEVISO_REG_BIT(15, endi);
    DEVISO_REG_FIELD(21, 16, t1sz);
    DEVISO_REG_FIELD(23, 22, tg1);
    DEVISO_REG_BIT(30, epd1);
    DEVISO_REG_BIT(31, v);
    DEVISO_REG_FIELD(34, 32, ips);
    DEVISO_REG_BIT(35, affd);
    DEVISO_REG_BIT(36, wxn);
    DEVISO_REG_BIT(37, uwxn);
    DEVISO_REG_FIELD(39, 38, tbi);
    DEVISO_REG_BIT(40, pan);
    DEVISO_REG_BIT(41, aa64);
    DEVISO_REG_BIT(42, hd);
    DEVISO_REG_BIT(43, ha);
    DEVISO_REG_BIT(44, s);  // stall faults
    DEVISO_REG_BIT(45, r);  // record faults
    DEVISO_REG_BIT(46, a);  // abort (not stall) on fault
    DEVISO_REG_BIT(47, aset);
    DEVISO_REG_FIELD(63, 48, asid);
  };
  struct W1 : hwreg::Register<W1, uint64_t> {
    DEVISO_REG_ADDR(51, 4, ttb0);  // TTB0 address bits [51:4], in place
  };
  // Word 3: MAIR (the MAIR_EL1 layout).
};
static_assert(sizeof(Cd) == 64);

// Translation granule encodings: CD.TG0 and STE.S2TG.
inline constexpr uint64_t kTg4K = 0b00;
inline constexpr uint64_t kTg64K = 0b01;
inline constexpr uint64_t kTg16K = 0b10;

// 4.1 Commands: 16 bytes. Opcode in word 0 bits [7:0].
struct Command {
  uint64_t raw[2] = {};

  struct W0 : hwreg::Register<W0, uint64_t> {
    DEVISO_REG_FIELD(7, 0, opcode);
    DEVISO_REG_BIT(10, ssec);         // CFGI_STE
    DEVISO_REG_FIELD(13, 12, cs);     // CMD_SYNC completion signal
    DEVISO_REG_FIELD(16, 12, num);    // TLBI range: NUM
    DEVISO_REG_FIELD(24, 20, scale);  // TLBI range: SCALE
    DEVISO_REG_FIELD(31, 12, ssid);   // CFGI_CD
    DEVISO_REG_FIELD(63, 32, sid);    // CFGI_*
    DEVISO_REG_FIELD(47, 32, vmid);   // TLBI_*
    DEVISO_REG_FIELD(63, 48, asid);   // TLBI_NH_*
  };
  struct W1 : hwreg::Register<W1, uint64_t> {
    DEVISO_REG_BIT(0, leaf);           // CFGI_STE/CD; TLBI: only leaf entries changed
    DEVISO_REG_FIELD(4, 0, range);     // CFGI_STE_RANGE: 2^(range+1) StreamIDs
    DEVISO_REG_FIELD(9, 8, ttl);       // TLBI: level of the leaves (0: any)
    DEVISO_REG_FIELD(11, 10, tg);      // TLBI: granule for TTL/range (0: no hint)
    DEVISO_REG_ADDR(63, 12, address);  // TLBI: address bits [63:12], in place
  };
};
static_assert(sizeof(Command) == 16);

// 4.x opcodes.
inline constexpr uint8_t kOpPrefetchConfig = 0x01;
inline constexpr uint8_t kOpCfgiSte = 0x03;
inline constexpr uint8_t kOpCfgiSteRange = 0x04;  // with Range=31: CFGI_ALL (4.3.3)
inline constexpr uint8_t kOpCfgiCd = 0x05;
inline constexpr uint8_t kOpCfgiCdAll = 0x06;
inline constexpr uint8_t kOpTlbiNhAll = 0x10;
inline constexpr uint8_t kOpTlbiNhAsid = 0x11;
inline constexpr uint8_t kOpTlbiNhVa = 0x12;
inline constexpr uint8_t kOpTlbiNhVaa = 0x13;
inline constexpr uint8_t kOpTlbiEl2All = 0x20;
inline constexpr uint8_t kOpTlbiS12Vmall = 0x28;
inline constexpr uint8_t kOpTlbiS2Ipa = 0x2a;
inline constexpr uint8_t kOpTlbiNsnhAll = 0x30;
inline constexpr uint8_t kOpSync = 0x46;

// TLBI TG field (4.4.1): granule of TTL and range.
inline constexpr uint64_t kTlbiTg4K = 0b01;
inline constexpr uint64_t kTlbiTg16K = 0b10;
inline constexpr uint64_t kTlbiTg64K = 0b11;

// 7.3 Event records: 32 bytes.
struct Event {
  uint64_t raw[4] = {};

  struct W0 : hwreg::Register<W0, uint64_t> {
    DEVISO_REG_FIELD(7, 0, event_id);
    DEVISO_REG_BIT(11, ssv);
    DEVISO_REG_FIELD(31, 12, substream_id);
    DEVISO_REG_FIELD(63, 32, stream_id);
  };
  struct W1 : hwreg::Register<W1, uint64_t> {
    DEVISO_REG_FIELD(15, 0, stag);
    DEVISO_REG_BIT(31, stall);
    DEVISO_REG_BIT(33, pnu);  // 1: privileged
    DEVISO_REG_BIT(34, ind);  // 1: instruction
    DEVISO_REG_BIT(35, rnw);  // 1: read, 0: write
    DEVISO_REG_BIT(38, nsipa);
    DEVISO_REG_BIT(39, s2);         // 1: stage 2 fault
    DEVISO_REG_FIELD(41, 40, cls);  // 0b00 CD, 0b01 TTD, 0b10 IN
  };
  // Word 2: InputAddr[63:0]. Word 3: IPA[51:12] (stage 2 faults) or FetchAddr.
  struct W3 : hwreg::Register<W3, uint64_t> {
    DEVISO_REG_ADDR(51, 12, ipa);        // in place
    DEVISO_REG_ADDR(55, 3, fetch_addr);  // in place
  };
};
static_assert(sizeof(Event) == 32);

// 7.3 event numbers.
inline constexpr uint8_t kEvtUut = 0x01;
inline constexpr uint8_t kEvtBadStreamId = 0x02;
inline constexpr uint8_t kEvtSteFetch = 0x03;
inline constexpr uint8_t kEvtBadSte = 0x04;
inline constexpr uint8_t kEvtBadAtsTreq = 0x05;
inline constexpr uint8_t kEvtStreamDisabled = 0x06;
inline constexpr uint8_t kEvtTranslForbidden = 0x07;
inline constexpr uint8_t kEvtBadSubstreamId = 0x08;
inline constexpr uint8_t kEvtCdFetch = 0x09;
inline constexpr uint8_t kEvtBadCd = 0x0a;
inline constexpr uint8_t kEvtWalkEabt = 0x0b;
inline constexpr uint8_t kEvtTranslation = 0x10;
inline constexpr uint8_t kEvtAddrSize = 0x11;
inline constexpr uint8_t kEvtAccess = 0x12;
inline constexpr uint8_t kEvtPermission = 0x13;
inline constexpr uint8_t kEvtTlbConflict = 0x20;
inline constexpr uint8_t kEvtCfgConflict = 0x21;
inline constexpr uint8_t kEvtPageRequest = 0x24;
inline constexpr uint8_t kEvtVmsFetch = 0x25;
// 7.3: event numbers 0xE0-0xEF are IMPLEMENTATION DEFINED.
inline constexpr uint8_t kEvtImpdefFirst = 0xe0;
inline constexpr uint8_t kEvtImpdefLast = 0xef;

}  // namespace ds
}  // namespace deviso::smmuv3

#endif  // DEVISO_SRC_SMMUV3_HW_H_
