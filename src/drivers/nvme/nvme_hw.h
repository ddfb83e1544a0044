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

namespace deviso::drivers::nvme {

// A bit field [kHi:kLo] of a 32- or 64-bit register or descriptor word.
template <typename Word, unsigned kHi, unsigned kLo>
struct Field {
  static constexpr unsigned kBits = sizeof(Word) * 8;
  static_assert(kHi >= kLo && kHi < kBits);
  static constexpr Word kMask =
      (kHi - kLo == kBits - 1 ? ~Word{0} : ((Word{1} << (kHi - kLo + 1)) - 1)) << kLo;
  static constexpr Word Get(Word raw) { return (raw & kMask) >> kLo; }
  static constexpr Word Set(Word raw, Word v) { return (raw & ~kMask) | ((v << kLo) & kMask); }
};

// Declares `name()` and `set_name(v)` for bits [hi:lo] of the enclosing struct's `raw`.
#define DEVISO_NVME_FIELD(hi, lo, name)                                          \
  constexpr auto name() const { return Field<decltype(raw), hi, lo>::Get(raw); } \
  constexpr auto& set_##name(decltype(raw) v) {                                  \
    raw = Field<decltype(raw), hi, lo>::Set(raw, v);                             \
    return *this;                                                                \
  }

// The memory page size the driver configures (CC.MPS = 0): PRP entries describe 4 KiB pages.
inline constexpr size_t kPageBytes = 4096;

namespace reg {

// 3.1.1 CAP: controller capabilities (64-bit, read-only).
struct Cap {
  static constexpr size_t kOffset = 0x00;
  uint64_t raw = 0;
  DEVISO_NVME_FIELD(15, 0, mqes)     // maximum queue entries supported - 1 (I/O queues)
  DEVISO_NVME_FIELD(16, 16, cqr)     // contiguous queues required
  DEVISO_NVME_FIELD(18, 17, ams)     // arbitration mechanisms supported
  DEVISO_NVME_FIELD(31, 24, to)      // timeout: worst-case CSTS.RDY transition, 500 ms units
  DEVISO_NVME_FIELD(35, 32, dstrd)   // doorbell stride: 4 << DSTRD bytes
  DEVISO_NVME_FIELD(36, 36, nssrs)   // NVM subsystem reset supported
  DEVISO_NVME_FIELD(44, 37, css)     // command sets supported; bit 0 (37): NVM
  DEVISO_NVME_FIELD(45, 45, bps)     // boot partition support
  DEVISO_NVME_FIELD(51, 48, mpsmin)  // memory page size minimum: 4 KiB << MPSMIN
  DEVISO_NVME_FIELD(55, 52, mpsmax)  // memory page size maximum
  static constexpr uint64_t kCssNvm = 1;
  static constexpr uint64_t kToUnitNs = 500'000'000;
};

// 3.1.2 VS: version (e.g. 0x0001_0400 = 1.4.0).
struct Vs {
  static constexpr size_t kOffset = 0x08;
  uint32_t raw = 0;
  DEVISO_NVME_FIELD(31, 16, mjr)
  DEVISO_NVME_FIELD(15, 8, mnr)
  DEVISO_NVME_FIELD(7, 0, ter)
};

// 3.1.3 INTMS / 3.1.4 INTMC: interrupt mask set / clear (pin-based and MSI only).
constexpr size_t kIntms = 0x0c;
constexpr size_t kIntmc = 0x10;

// 3.1.5 CC: controller configuration.
struct Cc {
  static constexpr size_t kOffset = 0x14;
  uint32_t raw = 0;
  DEVISO_NVME_FIELD(0, 0, en)        // enable
  DEVISO_NVME_FIELD(6, 4, css)       // I/O command set selected (0: NVM)
  DEVISO_NVME_FIELD(10, 7, mps)      // memory page size: 4 KiB << MPS
  DEVISO_NVME_FIELD(13, 11, ams)     // arbitration mechanism (0: round robin)
  DEVISO_NVME_FIELD(15, 14, shn)     // shutdown notification
  DEVISO_NVME_FIELD(19, 16, iosqes)  // I/O submission queue entry size: 2^n bytes
  DEVISO_NVME_FIELD(23, 20, iocqes)  // I/O completion queue entry size: 2^n bytes
  static constexpr uint32_t kShnNone = 0;
  static constexpr uint32_t kShnNormal = 1;
  static constexpr uint32_t kShnAbrupt = 2;
};

// 3.1.6 CSTS: controller status.
struct Csts {
  static constexpr size_t kOffset = 0x1c;
  uint32_t raw = 0;
  DEVISO_NVME_FIELD(0, 0, rdy)    // ready
  DEVISO_NVME_FIELD(1, 1, cfs)    // controller fatal status
  DEVISO_NVME_FIELD(3, 2, shst)   // shutdown status
  DEVISO_NVME_FIELD(4, 4, nssro)  // NVM subsystem reset occurred
  DEVISO_NVME_FIELD(5, 5, pp)     // processing paused
  static constexpr uint32_t kShstNormal = 0;
  static constexpr uint32_t kShstOccurring = 1;
  static constexpr uint32_t kShstComplete = 2;
};

// 3.1.8 AQA: admin queue attributes (sizes 0-based, 2..4096 entries).
struct Aqa {
  static constexpr size_t kOffset = 0x24;
  uint32_t raw = 0;
  DEVISO_NVME_FIELD(11, 0, asqs)   // admin submission queue size - 1
  DEVISO_NVME_FIELD(27, 16, acqs)  // admin completion queue size - 1
  static constexpr uint32_t kMaxEntries = 4096;
};

// 3.1.9 ASQ / 3.1.10 ACQ: admin submission / completion queue base (64-bit, 4 KiB aligned:
// bits 11:0 reserved). The driver writes them as two 32-bit halves, low first.
constexpr size_t kAsq = 0x28;
constexpr size_t kAcq = 0x30;

// 3.1.24-3.1.25 doorbells: SQyTDBL at 1000h + (2y * (4 << DSTRD)), CQyHDBL at
// 1000h + ((2y + 1) * (4 << DSTRD)).
constexpr size_t kDoorbellBase = 0x1000;
constexpr size_t SqTailDoorbell(uint16_t qid, unsigned dstrd) {
  return kDoorbellBase + (2 * size_t{qid}) * (size_t{4} << dstrd);
}
constexpr size_t CqHeadDoorbell(uint16_t qid, unsigned dstrd) {
  return kDoorbellBase + (2 * size_t{qid} + 1) * (size_t{4} << dstrd);
}

}  // namespace reg

namespace ds {

// 4.6.1 / Figure 126: the Status Field of a completion (bits 31:17 of DW3, shifted down by 17
// here, without the phase tag).
struct Status {
  uint32_t raw = 0;
  DEVISO_NVME_FIELD(7, 0, sc)    // status code
  DEVISO_NVME_FIELD(10, 8, sct)  // status code type
  DEVISO_NVME_FIELD(12, 11, crd)
  DEVISO_NVME_FIELD(13, 13, m)    // more (information in the error log)
  DEVISO_NVME_FIELD(14, 14, dnr)  // do not retry
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
  // CDW0: OPC [7:0], FUSE [9:8], PSDT [15:14] (0: PRPs), CID [31:16].
  void set_cdw0(uint8_t opcode, uint16_t cid) { raw[0] = uint32_t{opcode} | (uint32_t{cid} << 16); }
  uint8_t opcode() const { return static_cast<uint8_t>(raw[0]); }
  uint16_t cid() const { return static_cast<uint16_t>(raw[0] >> 16); }
  // NSID (DW1). DW2-3 reserved, MPTR (DW4-5) unused.
  void set_nsid(uint32_t nsid) { raw[1] = nsid; }
  uint32_t nsid() const { return raw[1]; }
  // DPTR (DW6-9): PRP entry 1 and PRP entry 2 (4.3).
  void set_prp(uint64_t prp1, uint64_t prp2) {
    raw[6] = static_cast<uint32_t>(prp1);
    raw[7] = static_cast<uint32_t>(prp1 >> 32);
    raw[8] = static_cast<uint32_t>(prp2);
    raw[9] = static_cast<uint32_t>(prp2 >> 32);
  }
  uint64_t prp1() const { return raw[6] | (uint64_t{raw[7]} << 32); }
  uint64_t prp2() const { return raw[8] | (uint64_t{raw[9]} << 32); }
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
  // DW2: SQHD [15:0] (submission queue head pointer), SQID [31:16].
  uint16_t sqhd() const { return static_cast<uint16_t>(raw[2]); }
  uint16_t sqid() const { return static_cast<uint16_t>(raw[2] >> 16); }
  // DW3: CID [15:0], P [16] (phase tag), Status Field [31:17].
  static uint16_t Cid(uint32_t dw3) { return static_cast<uint16_t>(dw3); }
  static uint32_t Phase(uint32_t dw3) { return (dw3 >> 16) & 1; }
  static Status StatusOf(uint32_t dw3) { return Status{dw3 >> 17}; }
};
static_assert(sizeof(CompletionEntry) == 16);
inline constexpr unsigned kCqEntryLog2 = 4;

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
}  // namespace identify

// 5.21.1.7 Number of Queues (feature 07h): CDW11 and the completion's DW0 hold NSQR [15:0] and
// NCQR [31:16], both 0-based.
namespace feature {
inline constexpr uint32_t kNumberOfQueues = 0x07;
}  // namespace feature

#undef DEVISO_NVME_FIELD

}  // namespace deviso::drivers::nvme

#endif  // DEVISO_SRC_DRIVERS_NVME_NVME_HW_H_
