// AHCI register and in-memory structure layouts.
//
// Serial ATA AHCI 1.3.1 Specification (Intel, 2011):
//   3.1  generic host control registers (reg::Cap, reg::Ghc, ...)
//   3.3  port registers (reg::PxCmd, reg::PxTfd, ...)
//   4.2  system memory structures (ds::CommandHeader, ds::CommandTable, ds::Prd)
// FIS layouts: Serial ATA Revision 3.0, 10.3.4 (Register - Host to Device FIS).
// Every type is declared on core/hwreg.h (fields in spec bit order, RES0 marked).
// Commands: ATA/ATAPI Command Set - 2 (ACS-2), 7.16 IDENTIFY DEVICE, 7.25 READ DMA EXT,
// 7.58 WRITE DMA EXT.

#ifndef DEVISO_SRC_DRIVERS_AHCI_AHCI_HW_H_
#define DEVISO_SRC_DRIVERS_AHCI_AHCI_HW_H_

#include <cstddef>
#include <cstdint>

#include "core/hwreg.h"

namespace deviso::drivers::ahci {

namespace reg {

// --- 3.1 Generic host control (offsets from ABAR) ----------------------------------------------

// 3.1.1 CAP: HBA capabilities (read-only).
struct Cap : hwreg::Register<Cap, uint32_t, 0x00> {
  DEVISO_REG_FIELD(4, 0, np);     // number of ports - 1
  DEVISO_REG_FIELD(12, 8, ncs);   // number of command slots - 1
  DEVISO_REG_BIT(18, sam);        // AHCI only
  DEVISO_REG_FIELD(23, 20, iss);  // interface speed
  DEVISO_REG_BIT(24, sclo);       // command list override
  DEVISO_REG_BIT(27, sss);        // staggered spin-up
  DEVISO_REG_BIT(30, sncq);       // native command queuing
  DEVISO_REG_BIT(31, s64a);       // 64-bit addressing
};

// 3.1.2 GHC: global HBA control.
struct Ghc : hwreg::Register<Ghc, uint32_t, 0x04> {
  DEVISO_REG_RSVDZ({30, 3});
  DEVISO_REG_BIT(0, hr);    // HBA reset (self-clearing)
  DEVISO_REG_BIT(1, ie);    // interrupt enable
  DEVISO_REG_BIT(2, mrsm);  // MSI revert to single message
  DEVISO_REG_BIT(31, ae);   // AHCI enable
};

// 3.1.3 IS: interrupt status, one bit per port (write 1 to clear).
struct Is : hwreg::Register<Is, uint32_t, 0x08> {
  DEVISO_REG_FIELD(31, 0, ips);
  static constexpr Is All() { return Is{~uint32_t{0}}; }
};

// 3.1.4 PI: ports implemented, one bit per port.
struct Pi : hwreg::Register<Pi, uint32_t, 0x0c> {
  constexpr bool implemented(unsigned port) const { return ((raw >> port) & 1U) != 0; }
};

// 3.1.5 VS: AHCI version (e.g. 0x0001_0000 = 1.0).
struct Vs : hwreg::Register<Vs, uint32_t, 0x10> {
  DEVISO_REG_FIELD(15, 0, mnr);
  DEVISO_REG_FIELD(31, 16, mjr);
};

// 3.1.10 CAP2: extended capabilities.
struct Cap2 : hwreg::Register<Cap2, uint32_t, 0x24> {
  DEVISO_REG_BIT(0, boh);  // BIOS/OS handoff supported
};

// 3.1.11 BOHC: BIOS/OS handoff control and status (see 10.6.3).
struct Bohc : hwreg::Register<Bohc, uint32_t, 0x28> {
  DEVISO_REG_RSVDZ({31, 5});
  DEVISO_REG_BIT(0, bos);  // BIOS owned semaphore
  DEVISO_REG_BIT(1, oos);  // OS owned semaphore
  DEVISO_REG_BIT(4, bb);   // BIOS busy
};

// --- 3.3 Port registers (offsets from the port's base, ABAR + 0x100 + port * 0x80: pass
// PortOffset(port) as the `base` of ReadFrom/WriteTo) --------------------------------------------

constexpr size_t kPortBase = 0x100;
constexpr size_t kPortStride = 0x80;
constexpr size_t PortOffset(unsigned port) { return kPortBase + port * kPortStride; }

// 3.3.1-3.3.4 PxCLB/PxCLBU, PxFB/PxFBU: command list (1 KiB aligned: bits 9:0 reserved) and
// received-FIS area (256 B aligned: bits 7:0 reserved) base addresses, lower/upper 32 bits.
struct PxClb : hwreg::Register<PxClb, uint32_t, 0x00> {
  DEVISO_REG_RSVDZ({9, 0});
  DEVISO_REG_ADDR(31, 10, clb);
};
struct PxClbu : hwreg::Register<PxClbu, uint32_t, 0x04> {
  DEVISO_REG_FIELD(31, 0, clbu);
};
struct PxFb : hwreg::Register<PxFb, uint32_t, 0x08> {
  DEVISO_REG_RSVDZ({7, 0});
  DEVISO_REG_ADDR(31, 8, fb);
};
struct PxFbu : hwreg::Register<PxFbu, uint32_t, 0x0c> {
  DEVISO_REG_FIELD(31, 0, fbu);
};

// 3.3.5 PxIS: port interrupt status (write 1 to clear).
struct PxIs : hwreg::Register<PxIs, uint32_t, 0x10> {
  DEVISO_REG_BIT(0, dhrs);   // device-to-host register FIS
  DEVISO_REG_BIT(1, pss);    // PIO setup FIS
  DEVISO_REG_BIT(2, dss);    // DMA setup FIS
  DEVISO_REG_BIT(3, sdbs);   // set device bits FIS
  DEVISO_REG_BIT(5, dps);    // descriptor processed
  DEVISO_REG_BIT(6, pcs);    // port connect change
  DEVISO_REG_BIT(22, prcs);  // PhyRdy change
  DEVISO_REG_BIT(23, ipms);  // incorrect port multiplier
  DEVISO_REG_BIT(24, ofs);   // overflow
  DEVISO_REG_BIT(26, infs);  // interface non-fatal error
  DEVISO_REG_BIT(27, ifs);   // interface fatal error
  DEVISO_REG_BIT(28, hbds);  // host bus data error
  DEVISO_REG_BIT(29, hbfs);  // host bus fatal error
  DEVISO_REG_BIT(30, tfes);  // task file error
  DEVISO_REG_BIT(31, cpds);  // cold port detect
  // The error bits of 6.1.1 ("fatal" and task file errors), which stop command processing.
  constexpr bool error() const {
    return tfes() != 0 || hbfs() != 0 || hbds() != 0 || ifs() != 0 || ofs() != 0;
  }
  // Write 1 to clear: every bit (the reserved ones are RO, writing them has no effect).
  static constexpr PxIs All() { return PxIs{~uint32_t{0}}; }
};

// 3.3.6 PxIE: interrupt enable, the layout of PxIS.
struct PxIe : hwreg::Register<PxIe, uint32_t, 0x14> {
  DEVISO_REG_FIELD(31, 0, enables);
};

// 3.3.7 PxCMD: command and status.
struct PxCmd : hwreg::Register<PxCmd, uint32_t, 0x18> {
  DEVISO_REG_BIT(0, st);         // start
  DEVISO_REG_BIT(1, sud);        // spin-up device
  DEVISO_REG_BIT(2, pod);        // power on device
  DEVISO_REG_BIT(3, clo);        // command list override
  DEVISO_REG_BIT(4, fre);        // FIS receive enable
  DEVISO_REG_FIELD(12, 8, ccs);  // current command slot
  DEVISO_REG_BIT(13, mpss);
  DEVISO_REG_BIT(14, fr);  // FIS receive running
  DEVISO_REG_BIT(15, cr);  // command list running
  DEVISO_REG_BIT(24, atapi);
  DEVISO_REG_FIELD(31, 28, icc);  // interface communication control
};

// 3.3.8 PxTFD: task file data (a copy of the device's status and error registers).
struct PxTfd : hwreg::Register<PxTfd, uint32_t, 0x20> {
  DEVISO_REG_BIT(0, sts_err);  // STS.ERR
  DEVISO_REG_BIT(3, drq);      // STS.DRQ
  DEVISO_REG_BIT(7, bsy);      // STS.BSY
  DEVISO_REG_FIELD(7, 0, sts);
  DEVISO_REG_FIELD(15, 8, err);
};

// 3.3.9 PxSIG: the signature of the attached device (from its first D2H register FIS).
struct PxSig : hwreg::Register<PxSig, uint32_t, 0x24> {
  static constexpr uint32_t kAta = 0x00000101;
  static constexpr uint32_t kAtapi = 0xeb140101;
  DEVISO_REG_FIELD(31, 0, sig);
};

// 3.3.10 PxSSTS (SStatus): SATA link state.
struct PxSsts : hwreg::Register<PxSsts, uint32_t, 0x28> {
  DEVISO_REG_FIELD(3, 0, det);   // 3: device present and PHY communication established
  DEVISO_REG_FIELD(7, 4, spd);   // negotiated speed
  DEVISO_REG_FIELD(11, 8, ipm);  // 1: active
  static constexpr uint32_t kDetPresent = 3;
  static constexpr uint32_t kIpmActive = 1;
};

// 3.3.11 PxSCTL (SControl).
struct PxSctl : hwreg::Register<PxSctl, uint32_t, 0x2c> {
  DEVISO_REG_FIELD(3, 0, det);  // 1: perform interface initialisation (COMRESET); 0: none
  DEVISO_REG_FIELD(7, 4, spd);
  DEVISO_REG_FIELD(11, 8, ipm);
};

// 3.3.12 PxSERR (SError): write 1 to clear.
struct PxSerr : hwreg::Register<PxSerr, uint32_t, 0x30> {
  DEVISO_REG_FIELD(15, 0, err);
  DEVISO_REG_FIELD(31, 16, diag);
  static constexpr PxSerr All() { return PxSerr{~uint32_t{0}}; }
};

// 3.3.13 PxSACT: NCQ tags outstanding.
struct PxSact : hwreg::Register<PxSact, uint32_t, 0x34> {
  DEVISO_REG_FIELD(31, 0, ds);
};

// 3.3.14 PxCI: command issue, one bit per slot; the HBA clears a bit when the command is done.
struct PxCi : hwreg::Register<PxCi, uint32_t, 0x38> {
  static constexpr PxCi Slot(unsigned slot) { return PxCi{uint32_t{1} << slot}; }
  constexpr bool issued(unsigned slot) const { return ((raw >> slot) & 1U) != 0; }
};

}  // namespace reg

namespace ds {

// 3.1.1 CAP.S64A = 0: the HBA drives 32-bit addresses only (the upper halves are ignored).
inline constexpr uint64_t kAddressLimit32 = uint64_t{1} << 32;

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
  // DW0: description information.
  struct Dw0 : hwreg::Register<Dw0, uint32_t> {
    DEVISO_REG_FIELD(4, 0, cfl);      // command FIS length in DWORDs (2..16)
    DEVISO_REG_BIT(5, a);             // ATAPI
    DEVISO_REG_BIT(6, w);             // direction, 1 = host to device
    DEVISO_REG_BIT(7, p);             // prefetchable
    DEVISO_REG_BIT(8, r);             // reset
    DEVISO_REG_BIT(9, b);             // BIST
    DEVISO_REG_BIT(10, c);            // clear busy upon R_OK
    DEVISO_REG_FIELD(15, 12, pmp);    // port multiplier port
    DEVISO_REG_FIELD(31, 16, prdtl);  // PRD table length (entries)
  };
  // DW2: CTBA, the command table's address; bits [6:0] reserved (128 B aligned). DW3: CTBAU.
  struct Dw2 : hwreg::Register<Dw2, uint32_t> {
    DEVISO_REG_RSVDZ({6, 0});
    DEVISO_REG_ADDR(31, 7, ctba);
  };

  uint32_t raw[8];
  uint32_t prdtl() const { return Dw0{raw[0]}.prdtl(); }
  void set_dw0(uint32_t prdtl, bool write, uint32_t cfl_dwords) {
    raw[0] = Dw0{}.set_prdtl(prdtl).set_w(write ? 1 : 0).set_cfl(cfl_dwords).raw;
  }
  // DW1: PRDBC, bytes transferred (written by the HBA).
  uint32_t prdbc() const { return raw[1]; }
  void clear_prdbc() { raw[1] = 0; }
  void set_ctba(uint64_t addr) {
    raw[2] = Dw2{hwreg::Low32(addr)}.DebugCheckRsvdZ().raw;  // the driver aligns it
    raw[3] = hwreg::High32(addr);
  }
};
static_assert(sizeof(CommandHeader) == 32);

// 4.2.3.3 Physical region descriptor (PRDT entry).
struct Prd {
  // DW0: DBA, data base address; bit 0 reserved (word aligned). DW1: DBAU.
  struct Dw0 : hwreg::Register<Dw0, uint32_t> {
    DEVISO_REG_RSVDZ({0, 0});
    DEVISO_REG_ADDR(31, 1, dba);
  };
  // DW3: description information.
  struct Dw3 : hwreg::Register<Dw3, uint32_t> {
    DEVISO_REG_RSVDZ({30, 22});
    DEVISO_REG_FIELD(21, 0, dbc);  // byte count - 1 (bit 0 always 1)
    DEVISO_REG_BIT(31, i);         // interrupt on completion
  };

  uint32_t raw[4];
  static constexpr uint32_t kMaxBytes = 4U << 20;  // DBC is 22 bits: up to 4 MiB
  // DBA bit 0 is reserved and DBC bit 0 always 1: a PRD describes an even byte count at an
  // even address.
  static constexpr bool Aligned(uint64_t addr, uint32_t bytes) {
    return Dw0{hwreg::Low32(addr)}.rsvdz_bits() == 0 && bytes % 2 == 0;
  }
  void set(uint64_t addr, uint32_t bytes, bool interrupt) {
    raw[0] = Dw0{hwreg::Low32(addr)}.DebugCheckRsvdZ().raw;  // checked by Aligned()
    raw[1] = hwreg::High32(addr);
    raw[2] = 0;
    raw[3] = Dw3{}.set_dbc(bytes - 1).set_i(interrupt ? 1 : 0).raw;
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
  // Byte 1: C (bit 7, command register update) and the port multiplier port.
  struct Flags : hwreg::Register<Flags, uint8_t> {
    DEVISO_REG_RSVDZ({6, 4});
    DEVISO_REG_FIELD(3, 0, pm_port);
    DEVISO_REG_BIT(7, c);
  };
  // Byte 7, the device register: bit 6 selects LBA addressing (ACS-2 Table 29).
  struct Device : hwreg::Register<Device, uint8_t> {
    DEVISO_REG_BIT(6, lba);
  };

  uint8_t fis_type;  // 0x27
  uint8_t flags;     // Flags
  uint8_t command;
  uint8_t features_low;
  uint8_t lba0;
  uint8_t lba1;
  uint8_t lba2;
  uint8_t device;  // Device
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

  // The 48-bit LBA, byte by byte in the FIS's order (LBA 7:0 in lba0 ... 47:40 in lba5).
  struct Lba : hwreg::Register<Lba, uint64_t> {
    DEVISO_REG_FIELD(7, 0, b0);
    DEVISO_REG_FIELD(15, 8, b1);
    DEVISO_REG_FIELD(23, 16, b2);
    DEVISO_REG_FIELD(31, 24, b3);
    DEVISO_REG_FIELD(39, 32, b4);
    DEVISO_REG_FIELD(47, 40, b5);
  };
  void set_lba(uint64_t lba) {
    const Lba l{lba};
    lba0 = static_cast<uint8_t>(l.b0());
    lba1 = static_cast<uint8_t>(l.b1());
    lba2 = static_cast<uint8_t>(l.b2());
    lba3 = static_cast<uint8_t>(l.b3());
    lba4 = static_cast<uint8_t>(l.b4());
    lba5 = static_cast<uint8_t>(l.b5());
  }
  // The 16-bit sector count (count 15:0: low byte first).
  struct Count : hwreg::Register<Count, uint16_t> {
    DEVISO_REG_FIELD(7, 0, low);
    DEVISO_REG_FIELD(15, 8, high);
  };
  void set_count(uint16_t count) {
    count_low = static_cast<uint8_t>(Count{count}.low());
    count_high = static_cast<uint8_t>(Count{count}.high());
  }
};
static_assert(sizeof(FisRegH2d) == 20);

}  // namespace ds

// ATA commands (ACS-2 chapter 7) and identify-data words (7.16.7, Table 45).
namespace ata {
inline constexpr uint8_t kIdentifyDevice = 0xec;
inline constexpr uint8_t kReadDmaExt = 0x25;
inline constexpr uint8_t kWriteDmaExt = 0x35;
inline constexpr size_t kSectorBytes = 512;
inline constexpr uint32_t kMaxSectorsPerCommand = 65536;
inline constexpr uint64_t kLba48Limit =
    uint64_t{1} << 48;  // 48-bit commands: LBA 47:0  // count 0 means 65536 in 48-bit commands
// IDENTIFY DEVICE data, in 16-bit words.
inline constexpr size_t kIdSerial = 10;         // words 10-19, 20 ASCII chars
inline constexpr size_t kIdFirmware = 23;       // words 23-26, 8 chars
inline constexpr size_t kIdModel = 27;          // words 27-46, 40 chars
inline constexpr size_t kIdCommandSets2 = 83;   // bit 10: 48-bit address feature set
inline constexpr size_t kIdLba28Sectors = 60;   // words 60-61
inline constexpr size_t kIdLba48Sectors = 100;  // words 100-103
inline constexpr size_t kIdSectorSize = 106;    // bit 12: logical sector longer than 256 words
inline constexpr size_t kIdLogicalSectorWords = 117;  // words 117-118

// 3.4.9 ATA string: two characters per word, the first in bits 15:8.
struct StringWord : hwreg::Register<StringWord, uint16_t> {
  DEVISO_REG_FIELD(7, 0, second);
  DEVISO_REG_FIELD(15, 8, first);
};
// 7.16.7.41 word 83: commands and feature sets supported.
struct IdCommandSets2 : hwreg::Register<IdCommandSets2, uint16_t> {
  DEVISO_REG_BIT(10, lba48);  // 48-bit address feature set
};
// 7.16.7.52 word 106: physical / logical sector size; valid when bits 15:14 are 01b.
struct IdSectorSize : hwreg::Register<IdSectorSize, uint16_t> {
  DEVISO_REG_BIT(12, long_logical);  // logical sector longer than 256 words (words 117-118)
  DEVISO_REG_FIELD(15, 14, validity);
  static constexpr uint16_t kValid = 0b01;
  constexpr bool valid() const { return validity() == kValid; }
};
// Multi-word values are little-endian in words (word n holds bits 15:0).
constexpr uint32_t Words32(const uint16_t* w) { return uint32_t{w[0]} | (uint32_t{w[1]} << 16); }
constexpr uint64_t Words64(const uint16_t* w) {
  return uint64_t{Words32(w)} | (uint64_t{Words32(w + 2)} << 32);
}
}  // namespace ata

}  // namespace deviso::drivers::ahci

#endif  // DEVISO_SRC_DRIVERS_AHCI_AHCI_HW_H_
