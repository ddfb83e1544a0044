// NVMe register and in-memory structure layouts.
//
// NVM Express Base Specification, Revision 1.4c (2021) (section numbers below; 2.0 keeps the
// same layouts, moving the NVM command set to its own specification):
//   3.1   controller registers (reg::Cap, reg::Cc, reg::Csts, reg::Aqa, doorbells)
//   4.2   submission queue entry (ds::SubmissionEntry)
//   4.3   physical region page entries and lists (PRP)
//   4.6   completion queue entry and status field (ds::CompletionEntry, ds::Status)
//   5     admin commands (Create/Delete I/O queues 5.3-5.6, Identify 5.15, Set Features 5.21)
//   6     NVM commands (Read 6.9, Write 6.15)

#ifndef DEVISO_SRC_DRIVERS_NVME_NVME_HW_H_
#define DEVISO_SRC_DRIVERS_NVME_NVME_HW_H_

#include <cstddef>
#include <cstdint>

#include "core/hwreg.h"

namespace deviso::drivers::nvme {

// The memory page size the driver configures (CC.MPS = 0): PRP entries describe 4 KiB pages.
inline constexpr size_t kPageBytes = 4096;

namespace reg {

// 3.1.1 CAP: controller capabilities (64-bit, read-only; read as two 32-bit halves).
struct Cap : hwreg::Register<Cap, uint64_t, 0x00> {
  DEVISO_REG_FIELD(15, 0, mqes);     // maximum queue entries supported - 1 (I/O queues)
  DEVISO_REG_BIT(16, cqr);           // contiguous queues required
  DEVISO_REG_FIELD(18, 17, ams);     // arbitration mechanisms supported
  DEVISO_REG_FIELD(31, 24, to);      // timeout: worst-case CSTS.RDY transition, 500 ms units
  DEVISO_REG_FIELD(35, 32, dstrd);   // doorbell stride: 4 << DSTRD bytes
  DEVISO_REG_BIT(36, nssrs);         // NVM subsystem reset supported
  DEVISO_REG_FIELD(44, 37, css);     // command sets supported; bit 0 (37): NVM
  DEVISO_REG_BIT(45, bps);           // boot partition support
  DEVISO_REG_FIELD(51, 48, mpsmin);  // memory page size minimum: 4 KiB << MPSMIN
  DEVISO_REG_FIELD(55, 52, mpsmax);  // memory page size maximum
  static constexpr uint64_t kCssNvm = 1;
  static constexpr uint64_t kToUnitNs = 500'000'000;
  // The minimum memory page size in bytes (2 ^ (12 + MPSMIN)).
  constexpr uint64_t min_page_bytes() const { return uint64_t{4096} << mpsmin(); }
  template <typename Io>
  static Cap ReadHalves(Io& io) {
    return Cap{hwreg::ReadLowHigh(io, kOffset, kOffset + 4)};
  }
};

// 3.1.2 VS: version (e.g. 0x0001_0400 = 1.4.0).
struct Vs : hwreg::Register<Vs, uint32_t, 0x08> {
  DEVISO_REG_FIELD(7, 0, ter);
  DEVISO_REG_FIELD(15, 8, mnr);
  DEVISO_REG_FIELD(31, 16, mjr);
};

// 3.1.3 INTMS / 3.1.4 INTMC: interrupt mask set / clear (pin-based and MSI only), one bit per
// vector.
struct Intms : hwreg::Register<Intms, uint32_t, 0x0c> {
  DEVISO_REG_FIELD(31, 0, ivms);
  static constexpr Intms All() { return Intms{~uint32_t{0}}; }
};
struct Intmc : hwreg::Register<Intmc, uint32_t, 0x10> {
  DEVISO_REG_FIELD(31, 0, ivmc);
};

// 3.1.5 CC.SHN: shutdown notification.
enum class Shn : uint8_t { kNone = 0, kNormal = 1, kAbrupt = 2 };

// 3.1.5 CC: controller configuration.
struct Cc : hwreg::Register<Cc, uint32_t, 0x14> {
  DEVISO_REG_RSVDZ({31, 24}, {3, 1});
  DEVISO_REG_BIT(0, en);              // enable
  DEVISO_REG_FIELD(6, 4, css);        // I/O command set selected (0: NVM)
  DEVISO_REG_FIELD(10, 7, mps);       // memory page size: 4 KiB << MPS
  DEVISO_REG_FIELD(13, 11, ams);      // arbitration mechanism (0: round robin)
  DEVISO_REG_ENUM(15, 14, Shn, shn);  // shutdown notification
  DEVISO_REG_FIELD(19, 16, iosqes);   // I/O submission queue entry size: 2^n bytes
  DEVISO_REG_FIELD(23, 20, iocqes);   // I/O completion queue entry size: 2^n bytes
};

// 3.1.6 CSTS.SHST: shutdown status.
enum class Shst : uint8_t { kNormal = 0, kOccurring = 1, kComplete = 2 };

// 3.1.6 CSTS: controller status.
struct Csts : hwreg::Register<Csts, uint32_t, 0x1c> {
  DEVISO_REG_BIT(0, rdy);             // ready
  DEVISO_REG_BIT(1, cfs);             // controller fatal status
  DEVISO_REG_ENUM(3, 2, Shst, shst);  // shutdown status
  DEVISO_REG_BIT(4, nssro);           // NVM subsystem reset occurred
  DEVISO_REG_BIT(5, pp);              // processing paused
};

// 3.1.8 AQA: admin queue attributes (sizes 0-based, 2..4096 entries).
struct Aqa : hwreg::Register<Aqa, uint32_t, 0x24> {
  DEVISO_REG_RSVDZ({31, 28}, {15, 12});
  DEVISO_REG_FIELD(11, 0, asqs);   // admin submission queue size - 1
  DEVISO_REG_FIELD(27, 16, acqs);  // admin completion queue size - 1
  static constexpr uint32_t kMaxEntries = 4096;
};

// 3.1.9 ASQ / 3.1.10 ACQ: admin submission / completion queue base (64-bit, 4 KiB aligned:
// bits 11:0 reserved). The driver writes them as two 32-bit halves, low first.
struct Asq : hwreg::Register<Asq, uint64_t, 0x28> {
  DEVISO_REG_RSVDZ({11, 0});
  DEVISO_REG_ADDR(63, 12, asqb);
  template <typename Io>
  void WriteHalves(Io& io) const {
    hwreg::WriteLowHigh(io, kOffset, kOffset + 4, DebugCheckRsvdZ().raw);
  }
};
struct Acq : hwreg::Register<Acq, uint64_t, 0x30> {
  DEVISO_REG_RSVDZ({11, 0});
  DEVISO_REG_ADDR(63, 12, acqb);
  template <typename Io>
  void WriteHalves(Io& io) const {
    hwreg::WriteLowHigh(io, kOffset, kOffset + 4, DebugCheckRsvdZ().raw);
  }
};

// 3.1.24-3.1.25 doorbells: SQyTDBL at 1000h + (2y * (4 << DSTRD)), CQyHDBL at
// 1000h + ((2y + 1) * (4 << DSTRD)).
constexpr size_t kDoorbellBase = 0x1000;
constexpr size_t SqTailDoorbell(uint16_t qid, unsigned dstrd) {
  return kDoorbellBase + (2 * size_t{qid}) * (size_t{4} << dstrd);
}
constexpr size_t CqHeadDoorbell(uint16_t qid, unsigned dstrd) {
  return kDoorbellBase + (2 * size_t{qid} + 1) * (size_t{4} << dstrd);
}
// The doorbells' layout (3.1.24 SQyTDBL.SQT, 3.1.25 CQyHDBL.CQH), written at the offsets above.
struct Doorbell : hwreg::Register<Doorbell, uint32_t> {
  DEVISO_REG_RSVDZ({31, 16});
  DEVISO_REG_FIELD(15, 0, value);  // new tail (SQ) or head (CQ)
};

}  // namespace reg

namespace ds {

// 4.6.1 / Figure 126: the Status Field of a completion (bits 31:17 of DW3, shifted down by 17
// here, without the phase tag).
struct Status : hwreg::Register<Status, uint32_t> {
  DEVISO_REG_FIELD(7, 0, sc);    // status code
  DEVISO_REG_FIELD(10, 8, sct);  // status code type
  DEVISO_REG_FIELD(12, 11, crd);
  DEVISO_REG_BIT(13, m);    // more (information in the error log)
  DEVISO_REG_BIT(14, dnr);  // do not retry
  constexpr bool ok() const { return sc() == 0 && sct() == 0; }
};

// 4.6.1.1 status code types.
namespace sct {
inline constexpr uint32_t kGeneric = 0;
inline constexpr uint32_t kCommandSpecific = 1;
inline constexpr uint32_t kMediaError = 2;
inline constexpr uint32_t kPathRelated = 3;
inline constexpr uint32_t kVendorSpecific = 7;
}  // namespace sct

// 4.6.1.2.1 generic command status values (Figure 128), and the NVM command set's (Figure 129).
namespace sc {
inline constexpr uint32_t kSuccess = 0x00;
inline constexpr uint32_t kInvalidOpcode = 0x01;
inline constexpr uint32_t kInvalidField = 0x02;
inline constexpr uint32_t kCommandIdConflict = 0x03;
inline constexpr uint32_t kDataTransferError = 0x04;
inline constexpr uint32_t kPowerLossAbort = 0x05;
inline constexpr uint32_t kInternalError = 0x06;
inline constexpr uint32_t kAbortRequested = 0x07;
inline constexpr uint32_t kAbortSqDeleted = 0x08;
inline constexpr uint32_t kInvalidNamespace = 0x0b;
inline constexpr uint32_t kCommandSequenceError = 0x0c;
inline constexpr uint32_t kInvalidPrpOffset = 0x13;
inline constexpr uint32_t kNamespaceNotReady = 0x82;
inline constexpr uint32_t kLbaOutOfRange = 0x80;
inline constexpr uint32_t kCapacityExceeded = 0x81;
}  // namespace sc

// 4.6.1.2.2 command specific status values (Figure 130) for queue creation.
namespace sc_cmd {
inline constexpr uint32_t kInvalidCq = 0x00;
inline constexpr uint32_t kInvalidQueueId = 0x01;
inline constexpr uint32_t kInvalidQueueSize = 0x02;
}  // namespace sc_cmd

// 4.2 Figure 105: submission queue entry, 64 bytes (CC.IOSQES = 6).
struct SubmissionEntry {
  uint32_t raw[16];
  // 4.2 Figure 104 CDW0.
  struct Cdw0 : hwreg::Register<Cdw0, uint32_t> {
    DEVISO_REG_RSVDZ({13, 10});
    DEVISO_REG_FIELD(7, 0, opc);
    DEVISO_REG_FIELD(9, 8, fuse);
    DEVISO_REG_FIELD(15, 14, psdt);  // 0: PRPs
    DEVISO_REG_FIELD(31, 16, cid);
  };
  void set_cdw0(uint8_t opcode, uint16_t cid) { raw[0] = Cdw0{}.set_opc(opcode).set_cid(cid).raw; }
  uint8_t opcode() const { return static_cast<uint8_t>(Cdw0{raw[0]}.opc()); }
  uint16_t cid() const { return static_cast<uint16_t>(Cdw0{raw[0]}.cid()); }
  // NSID (DW1). DW2-3 reserved, MPTR (DW4-5) unused.
  void set_nsid(uint32_t nsid) { raw[1] = nsid; }
  uint32_t nsid() const { return raw[1]; }
  // DPTR (DW6-9): PRP entry 1 and PRP entry 2 (4.3).
  void set_prp(uint64_t prp1, uint64_t prp2) {
    raw[6] = hwreg::Low32(prp1);
    raw[7] = hwreg::High32(prp1);
    raw[8] = hwreg::Low32(prp2);
    raw[9] = hwreg::High32(prp2);
  }
  uint64_t prp1() const { return hwreg::Join64(raw[6], raw[7]); }
  uint64_t prp2() const { return hwreg::Join64(raw[8], raw[9]); }
  // A 64-bit command field in two dwords (SLBA in CDW10-11), low dword first.
  void set_cdw64(unsigned n, uint64_t v) {
    raw[n] = hwreg::Low32(v);
    raw[n + 1] = hwreg::High32(v);
  }
  // Command dwords 10-15.
  uint32_t& cdw(unsigned n) { return raw[n]; }
  uint32_t cdw(unsigned n) const { return raw[n]; }
};
static_assert(sizeof(SubmissionEntry) == 64);
inline constexpr unsigned kSqEntryLog2 = 6;

// 4.6 Figure 124: completion queue entry, 16 bytes (CC.IOCQES = 4).
struct CompletionEntry {
  uint32_t raw[4];
  // DW0: command specific. DW1: reserved.
  uint32_t dw0() const { return raw[0]; }
  // DW2: SQHD (submission queue head pointer), SQID.
  struct Dw2 : hwreg::Register<Dw2, uint32_t> {
    DEVISO_REG_FIELD(15, 0, sqhd);
    DEVISO_REG_FIELD(31, 16, sqid);
  };
  // DW3: CID, P (phase tag), Status Field.
  struct Dw3 : hwreg::Register<Dw3, uint32_t> {
    DEVISO_REG_FIELD(15, 0, cid);
    DEVISO_REG_BIT(16, p);
    DEVISO_REG_FIELD(31, 17, status);
  };
  uint16_t sqhd() const { return static_cast<uint16_t>(Dw2{raw[2]}.sqhd()); }
  uint16_t sqid() const { return static_cast<uint16_t>(Dw2{raw[2]}.sqid()); }
  static uint16_t Cid(uint32_t dw3) { return static_cast<uint16_t>(Dw3{dw3}.cid()); }
  static uint32_t Phase(uint32_t dw3) { return Dw3{dw3}.p(); }
  static Status StatusOf(uint32_t dw3) { return Status{Dw3{dw3}.status()}; }
};
static_assert(sizeof(CompletionEntry) == 16);
inline constexpr unsigned kCqEntryLog2 = 4;

// 5.4 Figure 150/151 Create I/O Completion Queue CDW10 / CDW11; 5.5 Figure 154/155 Create
// I/O Submission Queue CDW10 (same layout) / CDW11.
struct CreateQueueCdw10 : hwreg::Register<CreateQueueCdw10, uint32_t> {
  DEVISO_REG_FIELD(15, 0, qid);
  DEVISO_REG_FIELD(31, 16, qsize);  // 0-based
};
struct CreateIoCqCdw11 : hwreg::Register<CreateIoCqCdw11, uint32_t> {
  DEVISO_REG_RSVDZ({15, 2});
  DEVISO_REG_BIT(0, pc);   // physically contiguous
  DEVISO_REG_BIT(1, ien);  // interrupts enabled
  DEVISO_REG_FIELD(31, 16, iv);
};
struct CreateIoSqCdw11 : hwreg::Register<CreateIoSqCdw11, uint32_t> {
  DEVISO_REG_RSVDZ({15, 3});
  DEVISO_REG_BIT(0, pc);
  DEVISO_REG_FIELD(2, 1, qprio);
  DEVISO_REG_FIELD(31, 16, cqid);
};
// 6.9 Figure 364 / 6.15 Figure 404: Read / Write CDW12 (NLB 0-based).
struct RwCdw12 : hwreg::Register<RwCdw12, uint32_t> {
  DEVISO_REG_FIELD(15, 0, nlb);
  DEVISO_REG_FIELD(23, 20, dtype);
  DEVISO_REG_BIT(26, prinfo_prchk0);
  DEVISO_REG_BIT(30, fua);
  DEVISO_REG_BIT(31, lr);
};

// 4.3: a PRP list page holds kPageBytes / 8 entries; the last one of a page points to the
// next list page when the transfer needs more.
inline constexpr size_t kPrpEntriesPerPage = kPageBytes / 8;

}  // namespace ds

// Admin command opcodes (5, Figure 139) and NVM command opcodes (6, Figure 346).
namespace opcode {
inline constexpr uint8_t kDeleteIoSq = 0x00;
inline constexpr uint8_t kCreateIoSq = 0x01;
inline constexpr uint8_t kDeleteIoCq = 0x04;
inline constexpr uint8_t kCreateIoCq = 0x05;
inline constexpr uint8_t kIdentify = 0x06;
inline constexpr uint8_t kSetFeatures = 0x09;
inline constexpr uint8_t kFlush = 0x00;
inline constexpr uint8_t kWrite = 0x01;
inline constexpr uint8_t kRead = 0x02;
}  // namespace opcode

// 5.15 Identify: CDW10.CNS (Figure 244) and the fields read from the data structures.
namespace identify {
inline constexpr uint32_t kCnsNamespace = 0x00;
inline constexpr uint32_t kCnsController = 0x01;
inline constexpr size_t kBytes = 4096;
// Identify Controller data structure (Figure 247), byte offsets.
inline constexpr size_t kVid = 0;      // PCI vendor ID, 2 bytes
inline constexpr size_t kSn = 4;       // serial number, 20 ASCII bytes
inline constexpr size_t kMn = 24;      // model number, 40 ASCII bytes
inline constexpr size_t kFr = 64;      // firmware revision, 8 ASCII bytes
inline constexpr size_t kMdts = 77;    // maximum data transfer size, 2^n min pages (0: none)
inline constexpr size_t kCntlid = 78;  // controller ID, 2 bytes
inline constexpr size_t kVer = 80;     // version, 4 bytes
inline constexpr size_t kSqes = 512;   // [3:0] required, [7:4] maximum SQ entry size (log2)
inline constexpr size_t kCqes = 513;   // same for completion queue entries
inline constexpr size_t kNn = 516;     // number of namespaces, 4 bytes
// Identify Namespace data structure (Figure 245), byte offsets.
inline constexpr size_t kNsze = 0;     // namespace size in logical blocks, 8 bytes
inline constexpr size_t kNcap = 8;     // namespace capacity, 8 bytes
inline constexpr size_t kNlbaf = 25;   // number of LBA formats - 1
inline constexpr size_t kFlbas = 26;   // [3:0] the LBA format in use
inline constexpr size_t kLbaf0 = 128;  // LBA format 0..15, 4 bytes each: LBADS in [23:16]
// Figure 247 bytes 512/513 SQES / CQES: the required (smallest) and the largest entry size,
// as log2.
struct QueueEntrySizes : hwreg::Register<QueueEntrySizes, uint8_t> {
  DEVISO_REG_FIELD(3, 0, required);
  DEVISO_REG_FIELD(7, 4, maximum);
};
// Figure 247 byte 77 MDTS: maximum data transfer size in units of CAP.MPSMIN pages, as log2.
constexpr uint64_t MdtsBytes(uint64_t min_page_bytes, unsigned mdts) {
  return min_page_bytes << mdts;
}
// Figure 245 byte 26 FLBAS: formatted LBA size.
struct Flbas : hwreg::Register<Flbas, uint8_t> {
  DEVISO_REG_FIELD(3, 0, format);  // the LBA format in use
  DEVISO_REG_BIT(4, extended);
};
// Figure 246 LBA Format Data Structure.
struct LbaFormat : hwreg::Register<LbaFormat, uint32_t> {
  DEVISO_REG_FIELD(15, 0, ms);      // metadata size
  DEVISO_REG_FIELD(23, 16, lbads);  // LBA data size, log2 (bytes)
  DEVISO_REG_FIELD(25, 24, rp);     // relative performance
};
}  // namespace identify

// 5.21.1.7 Number of Queues (feature 07h): CDW11 and the completion's DW0 hold NSQR [15:0] and
// NCQR [31:16], both 0-based.
namespace feature {
inline constexpr uint32_t kNumberOfQueues = 0x07;
// 5.21.1 Figure 285 Set Features CDW10.
struct SetFeaturesCdw10 : hwreg::Register<SetFeaturesCdw10, uint32_t> {
  DEVISO_REG_FIELD(7, 0, fid);
  DEVISO_REG_BIT(31, sv);
};
}  // namespace feature

}  // namespace deviso::drivers::nvme

#endif  // DEVISO_SRC_DRIVERS_NVME_NVME_HW_H_
