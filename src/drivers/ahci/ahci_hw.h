// AHCI register and in-memory structure layouts.
//
// Serial ATA AHCI 1.3.1 Specification (Intel, 2011):
//   3.1  generic host control registers (reg::Cap, reg::Ghc, ...)
//   3.3  port registers (reg::PxCmd, reg::PxTfd, ...)
//   4.2  system memory structures (ds::CommandHeader, ds::CommandTable, ds::Prd)
// FIS layouts: Serial ATA Revision 3.0, 10.3.4 (Register - Host to Device FIS).
// Commands: ATA/ATAPI Command Set - 2 (ACS-2), 7.16 IDENTIFY DEVICE, 7.25 READ DMA EXT,
// 7.58 WRITE DMA EXT.

#ifndef DEVISO_SRC_DRIVERS_AHCI_AHCI_HW_H_
#define DEVISO_SRC_DRIVERS_AHCI_AHCI_HW_H_

#include <cstddef>
#include <cstdint>

namespace deviso::drivers::ahci {

// A bit field [kHi:kLo] of a 32-bit register or descriptor word.
template <unsigned kHi, unsigned kLo>
struct Field {
  static_assert(kHi >= kLo && kHi < 32);
  static constexpr uint32_t kMask = (kHi - kLo == 31 ? 0xffffffffU : ((1U << (kHi - kLo + 1)) - 1))
                                    << kLo;
  static constexpr uint32_t Get(uint32_t raw) { return (raw & kMask) >> kLo; }
  static constexpr uint32_t Set(uint32_t raw, uint32_t v) {
    return (raw & ~kMask) | ((v << kLo) & kMask);
  }
};

// Declares `name()` and `set_name(v)` for bits [hi:lo] of the enclosing struct's `raw`.
#define DEVISO_AHCI_FIELD(hi, lo, name)                               \
  constexpr uint32_t name() const { return Field<hi, lo>::Get(raw); } \
  constexpr auto& set_##name(uint32_t v) {                            \
    raw = Field<hi, lo>::Set(raw, v);                                 \
    return *this;                                                     \
  }

namespace reg {

// --- 3.1 Generic host control (offsets from ABAR) ----------------------------------------------

// 3.1.1 CAP: HBA capabilities (read-only).
struct Cap {
  static constexpr size_t kOffset = 0x00;
  uint32_t raw = 0;
  DEVISO_AHCI_FIELD(31, 31, s64a)  // 64-bit addressing
  DEVISO_AHCI_FIELD(30, 30, sncq)  // native command queuing
  DEVISO_AHCI_FIELD(27, 27, sss)   // staggered spin-up
  DEVISO_AHCI_FIELD(24, 24, sclo)  // command list override
  DEVISO_AHCI_FIELD(23, 20, iss)   // interface speed
  DEVISO_AHCI_FIELD(18, 18, sam)   // AHCI only
  DEVISO_AHCI_FIELD(12, 8, ncs)    // number of command slots - 1
  DEVISO_AHCI_FIELD(4, 0, np)      // number of ports - 1
};

// 3.1.2 GHC: global HBA control.
struct Ghc {
  static constexpr size_t kOffset = 0x04;
  uint32_t raw = 0;
  DEVISO_AHCI_FIELD(31, 31, ae)  // AHCI enable
  DEVISO_AHCI_FIELD(2, 2, mrsm)  // MSI revert to single message
  DEVISO_AHCI_FIELD(1, 1, ie)    // interrupt enable
  DEVISO_AHCI_FIELD(0, 0, hr)    // HBA reset (self-clearing)
};

// 3.1.3 IS: interrupt status, one bit per port (write 1 to clear).
struct Is {
  static constexpr size_t kOffset = 0x08;
  uint32_t raw = 0;
};

// 3.1.4 PI: ports implemented, one bit per port.
struct Pi {
  static constexpr size_t kOffset = 0x0c;
  uint32_t raw = 0;
};

// 3.1.5 VS: AHCI version (e.g. 0x0001_0000 = 1.0).
struct Vs {
  static constexpr size_t kOffset = 0x10;
  uint32_t raw = 0;
  DEVISO_AHCI_FIELD(31, 16, mjr)
  DEVISO_AHCI_FIELD(15, 0, mnr)
};

// 3.1.10 CAP2: extended capabilities.
struct Cap2 {
  static constexpr size_t kOffset = 0x24;
  uint32_t raw = 0;
  DEVISO_AHCI_FIELD(0, 0, boh)  // BIOS/OS handoff supported
};

// 3.1.11 BOHC: BIOS/OS handoff control and status (see 10.6.3).
struct Bohc {
  static constexpr size_t kOffset = 0x28;
  uint32_t raw = 0;
  DEVISO_AHCI_FIELD(4, 4, bb)   // BIOS busy
  DEVISO_AHCI_FIELD(1, 1, oos)  // OS owned semaphore
  DEVISO_AHCI_FIELD(0, 0, bos)  // BIOS owned semaphore
};

// --- 3.3 Port registers (offsets from the port's base, ABAR + 0x100 + port * 0x80) -----------

constexpr size_t kPortBase = 0x100;
constexpr size_t kPortStride = 0x80;
constexpr size_t PortOffset(unsigned port) { return kPortBase + port * kPortStride; }

// 3.3.1-3.3.4 PxCLB/PxCLBU, PxFB/PxFBU: command list (1 KiB aligned) and received-FIS area
// (256 B aligned) base addresses, split into lower/upper 32 bits.
constexpr size_t kPxClb = 0x00;
constexpr size_t kPxClbu = 0x04;
constexpr size_t kPxFb = 0x08;
constexpr size_t kPxFbu = 0x0c;

// 3.3.5 PxIS: port interrupt status (write 1 to clear). 3.3.6 PxIE has the same layout.
struct PxIs {
  static constexpr size_t kOffset = 0x10;
  uint32_t raw = 0;
  DEVISO_AHCI_FIELD(31, 31, cpds)  // cold port detect
  DEVISO_AHCI_FIELD(30, 30, tfes)  // task file error
  DEVISO_AHCI_FIELD(29, 29, hbfs)  // host bus fatal error
  DEVISO_AHCI_FIELD(28, 28, hbds)  // host bus data error
  DEVISO_AHCI_FIELD(27, 27, ifs)   // interface fatal error
  DEVISO_AHCI_FIELD(26, 26, infs)  // interface non-fatal error
  DEVISO_AHCI_FIELD(24, 24, ofs)   // overflow
  DEVISO_AHCI_FIELD(23, 23, ipms)  // incorrect port multiplier
  DEVISO_AHCI_FIELD(22, 22, prcs)  // PhyRdy change
  DEVISO_AHCI_FIELD(6, 6, pcs)     // port connect change
  DEVISO_AHCI_FIELD(5, 5, dps)     // descriptor processed
  DEVISO_AHCI_FIELD(3, 3, sdbs)    // set device bits FIS
  DEVISO_AHCI_FIELD(2, 2, dss)     // DMA setup FIS
  DEVISO_AHCI_FIELD(1, 1, pss)     // PIO setup FIS
  DEVISO_AHCI_FIELD(0, 0, dhrs)    // device-to-host register FIS
  // The error bits of 6.1.1 ("fatal" and task file errors), which stop command processing.
  constexpr bool error() const {
    return tfes() != 0 || hbfs() != 0 || hbds() != 0 || ifs() != 0 || ofs() != 0;
  }
};
constexpr size_t kPxIe = 0x14;

// 3.3.7 PxCMD: command and status.
struct PxCmd {
  static constexpr size_t kOffset = 0x18;
  uint32_t raw = 0;
  DEVISO_AHCI_FIELD(31, 28, icc)  // interface communication control
  DEVISO_AHCI_FIELD(24, 24, atapi)
  DEVISO_AHCI_FIELD(15, 15, cr)  // command list running
  DEVISO_AHCI_FIELD(14, 14, fr)  // FIS receive running
  DEVISO_AHCI_FIELD(13, 13, mpss)
  DEVISO_AHCI_FIELD(12, 8, ccs)  // current command slot
  DEVISO_AHCI_FIELD(4, 4, fre)   // FIS receive enable
  DEVISO_AHCI_FIELD(3, 3, clo)   // command list override
  DEVISO_AHCI_FIELD(2, 2, pod)   // power on device
  DEVISO_AHCI_FIELD(1, 1, sud)   // spin-up device
  DEVISO_AHCI_FIELD(0, 0, st)    // start
};

// 3.3.8 PxTFD: task file data (a copy of the device's status and error registers).
struct PxTfd {
  static constexpr size_t kOffset = 0x20;
  uint32_t raw = 0;
  DEVISO_AHCI_FIELD(15, 8, err)
  DEVISO_AHCI_FIELD(7, 0, sts)
  DEVISO_AHCI_FIELD(7, 7, bsy)      // STS.BSY
  DEVISO_AHCI_FIELD(3, 3, drq)      // STS.DRQ
  DEVISO_AHCI_FIELD(0, 0, sts_err)  // STS.ERR
};

// 3.3.9 PxSIG: the signature of the attached device (from its first D2H register FIS).
struct PxSig {
  static constexpr size_t kOffset = 0x24;
  uint32_t raw = 0;
  static constexpr uint32_t kAta = 0x00000101;
  static constexpr uint32_t kAtapi = 0xeb140101;
};

// 3.3.10 PxSSTS (SStatus): SATA link state.
struct PxSsts {
  static constexpr size_t kOffset = 0x28;
  uint32_t raw = 0;
  DEVISO_AHCI_FIELD(11, 8, ipm)  // 1: active
  DEVISO_AHCI_FIELD(7, 4, spd)   // negotiated speed
  DEVISO_AHCI_FIELD(3, 0, det)   // 3: device present and PHY communication established
  static constexpr uint32_t kDetPresent = 3;
  static constexpr uint32_t kIpmActive = 1;
};

// 3.3.11 PxSCTL (SControl).
struct PxSctl {
  static constexpr size_t kOffset = 0x2c;
  uint32_t raw = 0;
  DEVISO_AHCI_FIELD(11, 8, ipm)
  DEVISO_AHCI_FIELD(7, 4, spd)
  DEVISO_AHCI_FIELD(3, 0, det)  // 1: perform interface initialisation (COMRESET); 0: none
};

// 3.3.12 PxSERR (SError): write 1 to clear.
constexpr size_t kPxSerr = 0x30;
// 3.3.13 PxSACT: NCQ tags outstanding.
constexpr size_t kPxSact = 0x34;
// 3.3.14 PxCI: command issue, one bit per slot; the HBA clears a bit when the command is done.
constexpr size_t kPxCi = 0x38;

}  // namespace reg

namespace ds {

// 4.2.1 Received FIS structure: 256 bytes, 256-byte aligned.
inline constexpr size_t kReceivedFisBytes = 256;
inline constexpr size_t kReceivedFisAlign = 256;
inline constexpr size_t kRfisOffset = 0x40;  // D2H register FIS

// 4.2.2 Command list: 32 command headers of 32 bytes, 1 KiB aligned.
inline constexpr size_t kCommandListBytes = 1024;
inline constexpr size_t kCommandListAlign = 1024;
inline constexpr unsigned kMaxSlots = 32;

// 4.2.2 Command header (one per slot).
struct CommandHeader {
  uint32_t raw[8];
  // DW0
  uint32_t prdtl() const { return Field<31, 16>::Get(raw[0]); }
  void set_dw0(uint32_t prdtl, bool write, uint32_t cfl_dwords) {
    uint32_t v = 0;
    v = Field<31, 16>::Set(v, prdtl);        // PRDTL: PRD table length (entries)
    v = Field<6, 6>::Set(v, write ? 1 : 0);  // W: direction, 1 = host to device
    v = Field<4, 0>::Set(v, cfl_dwords);     // CFL: command FIS length in DWORDs (2..16)
    raw[0] = v;
  }
  // DW1: PRDBC, bytes transferred (written by the HBA).
  uint32_t prdbc() const { return raw[1]; }
  void clear_prdbc() { raw[1] = 0; }
  // DW2/DW3: CTBA/CTBAU, the command table's address; bits [6:0] reserved (128 B aligned).
  void set_ctba(uint64_t addr) {
    raw[2] = static_cast<uint32_t>(addr);
    raw[3] = static_cast<uint32_t>(addr >> 32);
  }
};
static_assert(sizeof(CommandHeader) == 32);

// 4.2.3.3 Physical region descriptor (PRDT entry).
struct Prd {
  uint32_t raw[4];
  static constexpr uint32_t kMaxBytes = 4U << 20;  // DBC is 22 bits: up to 4 MiB
  // DBA/DBAU: data base address; bit 0 reserved (word aligned).
  void set(uint64_t addr, uint32_t bytes, bool interrupt) {
    raw[0] = static_cast<uint32_t>(addr);
    raw[1] = static_cast<uint32_t>(addr >> 32);
    raw[2] = 0;
    uint32_t dw3 = Field<21, 0>::Set(0, bytes - 1);    // DBC: byte count - 1 (bit 0 always 1)
    dw3 = Field<31, 31>::Set(dw3, interrupt ? 1 : 0);  // I: interrupt on completion
    raw[3] = dw3;
  }
};
static_assert(sizeof(Prd) == 16);

// 4.2.3 Command table: CFIS (64 B), ACMD (16 B), reserved (48 B), then the PRDT. 128 B aligned.
inline constexpr size_t kCommandTableAlign = 128;
inline constexpr size_t kCfisOffset = 0x00;
inline constexpr size_t kPrdtOffset = 0x80;
constexpr size_t CommandTableBytes(size_t prd_count) { return kPrdtOffset + prd_count * 16; }

// Serial ATA 3.0 10.3.4: Register - Host to Device FIS (20 bytes, FIS type 27h).
struct FisRegH2d {
  uint8_t fis_type;  // 0x27
  uint8_t flags;     // bit 7 C: command register update; bits [3:0] port multiplier port
  uint8_t command;
  uint8_t features_low;
  uint8_t lba0;
  uint8_t lba1;
  uint8_t lba2;
  uint8_t device;  // bit 6: LBA addressing
  uint8_t lba3;
  uint8_t lba4;
  uint8_t lba5;
  uint8_t features_high;
  uint8_t count_low;
  uint8_t count_high;
  uint8_t icc;
  uint8_t control;
  uint8_t reserved[4];

  static constexpr uint8_t kType = 0x27;
  static constexpr uint8_t kFlagCommand = 0x80;
  static constexpr uint8_t kDeviceLba = 0x40;
};
static_assert(sizeof(FisRegH2d) == 20);

}  // namespace ds

// ATA commands (ACS-2 chapter 7) and identify-data words (7.16.7, Table 45).
namespace ata {
inline constexpr uint8_t kIdentifyDevice = 0xec;
inline constexpr uint8_t kReadDmaExt = 0x25;
inline constexpr uint8_t kWriteDmaExt = 0x35;
inline constexpr size_t kSectorBytes = 512;
inline constexpr uint32_t kMaxSectorsPerCommand = 65536;  // count 0 means 65536 in 48-bit commands
// IDENTIFY DEVICE data, in 16-bit words.
inline constexpr size_t kIdSerial = 10;         // words 10-19, 20 ASCII chars
inline constexpr size_t kIdFirmware = 23;       // words 23-26, 8 chars
inline constexpr size_t kIdModel = 27;          // words 27-46, 40 chars
inline constexpr size_t kIdCommandSets2 = 83;   // bit 10: 48-bit address feature set
inline constexpr size_t kIdLba28Sectors = 60;   // words 60-61
inline constexpr size_t kIdLba48Sectors = 100;  // words 100-103
inline constexpr size_t kIdSectorSize = 106;    // bit 12: logical sector longer than 256 words
inline constexpr size_t kIdLogicalSectorWords = 117;  // words 117-118
}  // namespace ata

#undef DEVISO_AHCI_FIELD

}  // namespace deviso::drivers::ahci

#endif  // DEVISO_SRC_DRIVERS_AHCI_AHCI_HW_H_
