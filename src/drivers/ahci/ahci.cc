// AHCI driver (see ahci.h). Section numbers are from Serial ATA AHCI 1.3.1.

#include "drivers/ahci/ahci.h"

#include <cstring>

#include "core/barrier.h"
#include "deviso/port/os.h"

namespace deviso::drivers::ahci {
namespace {

constexpr uint64_t kMs = 1'000'000;
// 10.1.2: "software should wait at least 500 milliseconds" for CR and FR to clear.
constexpr uint64_t kStopTimeoutNs = 500 * kMs;
constexpr uint64_t kHbaResetTimeoutNs = 1000 * kMs;  // 10.4.3: HR clears within 1 s
constexpr uint64_t kDeviceReadyTimeoutNs = 1000 * kMs;
constexpr uint64_t kLinkTimeoutNs = 1000 * kMs;
constexpr unsigned kSlot = 0;  // the driver is synchronous: one slot is enough
constexpr uint32_t kCfisDwords = sizeof(ds::FisRegH2d) / 4;
// The most PRDs a mapped transfer needs: the largest command (65536 sectors, 32 MiB) in 4 MiB
// pieces.
constexpr size_t kMaxMappedPrds =
    ata::kMaxSectorsPerCommand * ata::kSectorBytes / ds::Prd::kMaxBytes;

// Polls `done()` until it is true or `timeout_ns` passes.
template <typename Done>
Status PollUntil(uint64_t timeout_ns, Done done) {
  const port::Deadline deadline = port::Deadline::In(timeout_ns);
  while (!done()) {
    if (deadline.Expired()) {
      return done() ? Status::Ok() : Status::TimedOut();
    }
  }
  return Status::Ok();
}

void SleepNs(uint64_t ns) {
  const port::Deadline deadline = port::Deadline::In(ns);
  while (!deadline.Expired()) {
  }
}

// ATA strings hold two characters per 16-bit word, the first in the high byte (ACS-2 3.4.9).
void CopyAtaString(const uint16_t* words, size_t word_count, char* out) {
  size_t n = 0;
  for (size_t i = 0; i < word_count; ++i) {
    out[n++] = static_cast<char>(ata::StringWord{words[i]}.first());
    out[n++] = static_cast<char>(ata::StringWord{words[i]}.second());
  }
  while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\0')) {
    --n;
  }
  out[n] = '\0';
}

ds::FisRegH2d LbaCommand(uint8_t command, uint64_t lba, uint32_t sectors) {
  ds::FisRegH2d fis{};
  fis.fis_type = ds::FisRegH2d::kType;
  fis.flags = ds::FisRegH2d::Flags{}.set_c(1).raw;
  fis.command = command;
  fis.device = ds::FisRegH2d::Device{}.set_lba(1).raw;
  fis.set_lba(lba);
  const uint32_t count = sectors == ata::kMaxSectorsPerCommand ? 0 : sectors;  // 0 = 65536
  fis.set_count(static_cast<uint16_t>(count));
  return fis;
}

}  // namespace

// --- Hba -----------------------------------------------------------------------------------------

Status Hba::Init() {
  const reg::Cap2 cap2 = reg::Cap2::ReadFrom(abar_);
  if (cap2.boh() != 0) {
    // 10.6.3: request ownership (OOS), wait for the BIOS to release it (BOS clear), then for
    // any BIOS command to finish (BB clear, up to 2 s).
    reg::Bohc bohc = reg::Bohc::ReadFrom(abar_);
    bohc.set_oos(1).WriteTo(abar_);
    DEVISO_TRY(PollUntil(25 * kMs + 2000 * kMs, [&] {
      const reg::Bohc b = reg::Bohc::ReadFrom(abar_);
      return b.bos() == 0 && b.bb() == 0;
    }));
  }

  // 10.4.3 HBA reset; AE must be set before HR is usable and again afterwards (3.1.2).
  reg::Ghc ghc = reg::Ghc::ReadFrom(abar_);
  ghc.set_ae(1).WriteTo(abar_);
  ghc.set_hr(1).WriteTo(abar_);
  DEVISO_TRY(PollUntil(kHbaResetTimeoutNs, [&] { return reg::Ghc::ReadFrom(abar_).hr() == 0; }));
  reg::Ghc{}.set_ae(1).set_ie(0).WriteTo(abar_);

  cap_ = reg::Cap::ReadFrom(abar_);
  vs_ = reg::Vs::ReadFrom(abar_);
  pi_ = reg::Pi::ReadFrom(abar_).raw;
  reg::Is::All().WriteTo(abar_);
  return Status::Ok();
}

uint32_t Hba::PortsWithLink() const {
  uint32_t mask = 0;
  for (unsigned p = 0; p < ds::kMaxSlots; ++p) {
    if (!reg::Pi{pi_}.implemented(p)) {
      continue;
    }
    const reg::PxSsts ssts = reg::PxSsts::ReadFrom(abar_, reg::PortOffset(p));
    if (ssts.det() == reg::PxSsts::kDetPresent) {
      mask |= 1U << p;
    }
  }
  return mask;
}

// --- Port ----------------------------------------------------------------------------------------

Port::Port(Mmio& abar, unsigned index, DmaAllocator& dma, bool s64a, const PortOptions& options)
    : abar_(abar),
      index_(index),
      base_(reg::PortOffset(index)),
      dma_(dma),
      s64a_(s64a),
      options_(options) {}

Port::~Port() {
  if (Stop().ok()) {
    FreeMemory();
  }
  // If the port did not stop, the HBA may still write the FIS area: leak it rather than free
  // memory a device can reach.
}

Status Port::Allocate() {
  if (allocated_) {
    return Status::Ok();
  }
  if (options_.max_prds == 0 || options_.max_prds > 65535) {
    return Status::InvalidArgument();
  }
  DEVISO_ASSIGN_OR_RETURN(command_list_, dma_.Alloc(ds::kCommandListBytes, ds::kCommandListAlign));
  auto fis = dma_.Alloc(ds::kReceivedFisBytes, ds::kReceivedFisAlign);
  if (!fis.ok()) {
    dma_.Free(command_list_);
    return fis.status();
  }
  received_fis_ = *fis;
  auto table = dma_.Alloc(ds::CommandTableBytes(options_.max_prds), ds::kCommandTableAlign);
  if (!table.ok()) {
    dma_.Free(received_fis_);
    dma_.Free(command_list_);
    return table.status();
  }
  command_table_ = *table;
  allocated_ = true;
  const uint64_t highest =
      command_list_.device_addr | received_fis_.device_addr | command_table_.device_addr;
  if (!s64a_ && highest >= ds::kAddressLimit32) {
    FreeMemory();
    return Status::OutOfRange();
  }
  return Status::Ok();
}

void Port::FreeMemory() {
  if (!allocated_) {
    return;
  }
  dma_.Free(command_table_);
  dma_.Free(received_fis_);
  dma_.Free(command_list_);
  allocated_ = false;
}

Status Port::Stop() {
  running_ = false;
  reg::PxCmd cmd = ReadCmd();
  if (cmd.st() != 0) {
    cmd.set_st(0).WriteTo(abar_, base_);
  }
  DEVISO_TRY(PollUntil(kStopTimeoutNs, [&] { return ReadCmd().cr() == 0; }));
  cmd = ReadCmd();
  if (cmd.fre() != 0) {
    cmd.set_fre(0).WriteTo(abar_, base_);
  }
  return PollUntil(kStopTimeoutNs, [&] { return ReadCmd().fr() == 0; });
}

Status Port::WaitDeviceReady(uint64_t timeout_ns) const {
  return PollUntil(timeout_ns, [&] {
    const reg::PxTfd tfd = reg::PxTfd::ReadFrom(abar_, base_);
    return tfd.bsy() == 0 && tfd.drq() == 0;
  });
}

// COMRESET through PxSCTL.DET (3.3.11, 10.4.2): only with PxCMD.ST clear. DET=1 must be held for
// at least 1 ms; then the link must come back (PxSSTS.DET = 3), and PxSERR is cleared so that
// the device's first D2H FIS can update PxTFD.
Status Port::ComReset() {
  reg::PxSctl sctl = reg::PxSctl::ReadFrom(abar_, base_);
  sctl.set_det(1).WriteTo(abar_, base_);
  SleepNs(2 * kMs);
  sctl.set_det(0).WriteTo(abar_, base_);
  const Status link = PollUntil(kLinkTimeoutNs, [&] {
    return reg::PxSsts::ReadFrom(abar_, base_).det() == reg::PxSsts::kDetPresent;
  });
  reg::PxSerr::All().WriteTo(abar_, base_);
  return link;
}

Status Port::Start() {
  const reg::PxCmd idle = ReadCmd();
  if (idle.st() != 0 || idle.cr() != 0 || idle.fre() != 0 || idle.fr() != 0) {
    DEVISO_TRY(Stop());
  }
  DEVISO_TRY(Allocate());

  // 10.1.2 steps 5-7: point the port at its memory, clear errors, enable FIS reception.
  reg::PxClb{hwreg::Low32(command_list_.device_addr)}.DebugCheckRsvdZ().WriteTo(abar_, base_);
  reg::PxClbu{hwreg::High32(command_list_.device_addr)}.WriteTo(abar_, base_);
  reg::PxFb{hwreg::Low32(received_fis_.device_addr)}.DebugCheckRsvdZ().WriteTo(abar_, base_);
  reg::PxFbu{hwreg::High32(received_fis_.device_addr)}.WriteTo(abar_, base_);
  reg::PxSerr::All().WriteTo(abar_, base_);
  reg::PxIs::All().WriteTo(abar_, base_);
  reg::PxIe{}.WriteTo(abar_, base_);  // polled
  reg::PxCmd cmd = ReadCmd();
  cmd.set_fre(1).WriteTo(abar_, base_);

  if (reg::PxSsts::ReadFrom(abar_, base_).det() != reg::PxSsts::kDetPresent) {
    return Status::NotFound();
  }
  // 10.3.1: ST may be set only while BSY and DRQ are clear.
  if (!WaitDeviceReady(kDeviceReadyTimeoutNs).ok()) {
    DEVISO_TRY(ComReset());
    DEVISO_TRY(WaitDeviceReady(kDeviceReadyTimeoutNs));
  }
  // 3.3.9: the signature came with the device's first D2H register FIS.
  if (reg::PxSig::ReadFrom(abar_, base_).sig() != reg::PxSig::kAta) {
    return Status::NotSupported();
  }
  reg::PxIs::All().WriteTo(abar_, base_);
  cmd = ReadCmd();
  cmd.set_st(1).WriteTo(abar_, base_);
  running_ = true;
  return Status::Ok();
}

Status Port::Recover(bool force_comreset) {
  // 10.4.2 non-queued error recovery. Stop() fails if CR stays set: the HBA is stuck on a
  // command (e.g. QEMU with an unreachable command table); a COMRESET unsticks it.
  const Status stopped = Stop();
  reg::PxSerr::All().WriteTo(abar_, base_);
  reg::PxIs::All().WriteTo(abar_, base_);
  const reg::PxTfd tfd = reg::PxTfd::ReadFrom(abar_, base_);
  if (force_comreset || !stopped.ok() || tfd.bsy() != 0 || tfd.drq() != 0) {
    DEVISO_TRY(ComReset());
    DEVISO_TRY(Stop());
  }
  return Start();
}

Status Port::Issue(const ds::FisRegH2d& fis, std::span<const DmaSegment> segments, bool write,
                   uint32_t bytes, bool sync_data) {
  if (!running_) {
    return Status::IoError();
  }
  // Validate everything before touching the hardware.
  if (segments.size() > options_.max_prds || segments.empty()) {
    return Status::InvalidArgument();
  }
  uint64_t total = 0;
  for (const DmaSegment& s : segments) {
    if (s.region == nullptr || s.bytes == 0 || s.bytes > ds::Prd::kMaxBytes ||
        !ds::Prd::Aligned(s.device_addr(), static_cast<uint32_t>(s.bytes)) ||
        s.offset > s.region->size || s.bytes > s.region->size - s.offset ||
        (!s64a_ && (s.device_addr() + s.bytes) > ds::kAddressLimit32)) {
      return Status::InvalidArgument();
    }
    total += s.bytes;
  }
  if (total != bytes) {
    return Status::InvalidArgument();
  }

  // 5.5.1: build the command table (CFIS + PRDT), then the command header, then issue.
  auto* table = static_cast<uint8_t*>(command_table_.cpu);
  std::memset(table, 0, ds::kPrdtOffset);
  std::memcpy(table + ds::kCfisOffset, &fis, sizeof(fis));
  auto* prdt = reinterpret_cast<ds::Prd*>(table + ds::kPrdtOffset);
  for (size_t i = 0; i < segments.size(); ++i) {
    prdt[i].set(segments[i].device_addr(), static_cast<uint32_t>(segments[i].bytes), false);
  }
  auto* header = static_cast<ds::CommandHeader*>(command_list_.cpu) + kSlot;
  header->set_dw0(static_cast<uint32_t>(segments.size()), write, kCfisDwords);
  header->clear_prdbc();
  header->set_ctba(command_table_.device_addr);
  dma_.SyncForDevice(command_table_, 0, ds::CommandTableBytes(segments.size()));
  dma_.SyncForDevice(command_list_, kSlot * sizeof(ds::CommandHeader), sizeof(ds::CommandHeader));
  for (const DmaSegment& s : segments) {
    if (write && sync_data) {
      dma_.SyncForDevice(*s.region, s.offset, s.bytes);
    }
  }

  reg::PxIs::All().WriteTo(abar_, base_);
  DmaWriteBarrier();  // descriptors and data before the doorbell
  reg::PxCi::Slot(kSlot).WriteTo(abar_, base_);

  // 5.6.2 / 6.1: the command is done when its PxCI bit clears; an error sets a PxIS error bit
  // (e.g. TFES) and leaves PxCI set.
  const port::Deadline deadline = port::Deadline::In(options_.command_timeout_ns);
  for (;;) {
    const reg::PxIs is = reg::PxIs::ReadFrom(abar_, base_);
    if (is.error()) {
      ++errors_;
      const reg::PxTfd tfd = reg::PxTfd::ReadFrom(abar_, base_);
      port::Log("ahci: port %u: command 0x%02x failed: PxIS 0x%08x PxTFD 0x%04x PxSERR 0x%08x\n",
                index_, fis.command, is.raw, tfd.raw, reg::PxSerr::ReadFrom(abar_, base_).raw);
      (void)Recover(false);
      return Status::IoError();
    }
    if (!reg::PxCi::ReadFrom(abar_, base_).issued(kSlot)) {
      break;
    }
    if (deadline.Expired()) {
      ++timeouts_;
      port::Log("ahci: port %u: command 0x%02x timed out: PxCI 0x%08x PxCMD 0x%08x PxTFD 0x%04x\n",
                index_, fis.command, reg::PxCi::ReadFrom(abar_, base_).raw, ReadCmd().raw,
                reg::PxTfd::ReadFrom(abar_, base_).raw);
      (void)Recover(true);
      return Status::TimedOut();
    }
  }
  DmaReadBarrier();  // the completion before the data and PRDBC

  dma_.SyncForCpu(command_list_, kSlot * sizeof(ds::CommandHeader), sizeof(ds::CommandHeader));
  const reg::PxTfd tfd = reg::PxTfd::ReadFrom(abar_, base_);
  const uint32_t moved = header->prdbc();
  if (tfd.sts_err() != 0 || tfd.bsy() != 0 || moved != bytes) {
    ++errors_;
    port::Log("ahci: port %u: command 0x%02x: PxTFD 0x%04x, %u of %u bytes moved\n", index_,
              fis.command, tfd.raw, moved, bytes);
    (void)Recover(false);
    return Status::IoError();
  }
  if (!write && sync_data) {
    for (const DmaSegment& s : segments) {
      dma_.SyncForCpu(*s.region, s.offset, s.bytes);
    }
  }
  return Status::Ok();
}

Status Port::CheckLba(uint64_t lba, uint32_t sectors) {
  if (sectors == 0 || sectors > ata::kMaxSectorsPerCommand || lba >= ata::kLba48Limit ||
      (lba + sectors - 1) >= ata::kLba48Limit) {
    return Status::InvalidArgument();
  }
  return Status::Ok();
}

Status Port::Transfer(uint8_t command, uint64_t lba, uint32_t sectors,
                      std::span<const DmaSegment> segments, bool write) {
  DEVISO_TRY(CheckLba(lba, sectors));
  return Issue(LbaCommand(command, lba, sectors), segments, write,
               sectors * static_cast<uint32_t>(ata::kSectorBytes));
}

Status Port::TransferMapped(uint8_t command, DmaMapper& mapper, uint64_t lba, uint32_t sectors,
                            uint64_t pa, bool write) {
  // Everything that can be checked without the mapping is checked first: a refused request
  // maps nothing.
  DEVISO_TRY(CheckLba(lba, sectors));
  if (!running_) {
    return Status::IoError();
  }
  const uint64_t bytes = uint64_t{sectors} * ata::kSectorBytes;
  const uint64_t page = mapper.page_size();
  if ((pa & 1) != 0 || bytes - 1 > UINT64_MAX - pa || page == 0 || (page & (page - 1)) != 0) {
    return Status::InvalidArgument();
  }
  const uint64_t first = pa & ~(page - 1);
  const uint64_t last = (pa + bytes - 1) & ~(page - 1);  // the buffer's last page
  if (last > UINT64_MAX - page) {
    return Status::InvalidArgument();
  }
  const size_t prds = static_cast<size_t>((bytes + ds::Prd::kMaxBytes - 1) / ds::Prd::kMaxBytes);
  if (prds > options_.max_prds || prds > kMaxMappedPrds) {
    return Status::InvalidArgument();
  }
  DEVISO_ASSIGN_OR_RETURN(
      const DmaMapping mapping,
      mapper.MapForDevice(first, static_cast<size_t>(last + page - first),
                          write ? DmaDirection::kToDevice : DmaDirection::kFromDevice));
  // One region in the device's address space; PRDs of at most 4 MiB (an even size) over it.
  const DmaRegion region{nullptr, mapping.device_addr + (pa - first), static_cast<size_t>(bytes)};
  DmaSegment segments[kMaxMappedPrds];
  for (size_t i = 0; i < prds; ++i) {
    const size_t offset = i * ds::Prd::kMaxBytes;
    const size_t n = static_cast<size_t>(bytes - offset < ds::Prd::kMaxBytes ? bytes - offset
                                                                             : ds::Prd::kMaxBytes);
    segments[i] = DmaSegment{&region, offset, n};
  }
  // Issue() ends every failure after issuing with Recover() (the port stopped, then reset and
  // restarted): by the time it returns the HBA no longer works on this command, so the mapping
  // may go in every case.
  const Status issued = Issue(LbaCommand(command, lba, sectors), {segments, prds}, write,
                              static_cast<uint32_t>(bytes), /*sync_data=*/false);
  const Status unmapped = mapper.UnmapForDevice(mapping);
  if (!unmapped.ok()) {
    port::Log("ahci: port %u: unmapping the buffer at 0x%llx failed: %s\n", index_,
              static_cast<unsigned long long>(pa), unmapped.str());
  }
  DEVISO_TRY(issued);
  return unmapped;
}

Status Port::ReadMapped(DmaMapper& mapper, uint64_t lba, uint32_t sectors, uint64_t pa) {
  return TransferMapped(ata::kReadDmaExt, mapper, lba, sectors, pa, false);
}

Status Port::WriteMapped(DmaMapper& mapper, uint64_t lba, uint32_t sectors, uint64_t pa) {
  return TransferMapped(ata::kWriteDmaExt, mapper, lba, sectors, pa, true);
}

Status Port::Read(uint64_t lba, uint32_t sectors, std::span<const DmaSegment> segments) {
  return Transfer(ata::kReadDmaExt, lba, sectors, segments, false);
}

Status Port::Write(uint64_t lba, uint32_t sectors, std::span<const DmaSegment> segments) {
  return Transfer(ata::kWriteDmaExt, lba, sectors, segments, true);
}

Result<IdentifyInfo> Port::Identify() {
  DEVISO_ASSIGN_OR_RETURN(const DmaRegion buffer, dma_.Alloc(ata::kSectorBytes, 2));
  ds::FisRegH2d fis{};
  fis.fis_type = ds::FisRegH2d::kType;
  fis.flags = ds::FisRegH2d::Flags{}.set_c(1).raw;
  fis.command = ata::kIdentifyDevice;
  const DmaSegment segment{&buffer, 0, ata::kSectorBytes};
  const Status s = Issue(fis, {&segment, 1}, false, ata::kSectorBytes);
  if (!s.ok()) {
    dma_.Free(buffer);
    return s;
  }
  uint16_t id[256];
  std::memcpy(id, buffer.cpu, sizeof(id));
  dma_.Free(buffer);

  IdentifyInfo info;
  CopyAtaString(id + ata::kIdSerial, 10, info.serial);
  CopyAtaString(id + ata::kIdFirmware, 4, info.firmware);
  CopyAtaString(id + ata::kIdModel, 20, info.model);
  info.lba48 = ata::IdCommandSets2{id[ata::kIdCommandSets2]}.lba48() != 0;
  if (info.lba48) {
    info.sectors = ata::Words64(id + ata::kIdLba48Sectors);
  } else {
    info.sectors = ata::Words32(id + ata::kIdLba28Sectors);
  }
  // Word 106: bit 14 set and bit 15 clear mean the word is valid; bit 12: sector size in 117-118.
  const ata::IdSectorSize w106{id[ata::kIdSectorSize]};
  info.sector_bytes = static_cast<uint32_t>(ata::kSectorBytes);
  if (w106.valid() && w106.long_logical() != 0) {
    info.sector_bytes = 2 * ata::Words32(id + ata::kIdLogicalSectorWords);
  }
  return info;
}

}  // namespace deviso::drivers::ahci
