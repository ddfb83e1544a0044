// The GICv3 ITS engine (see its_driver.h). Register and command layouts: IHI0069, sections
// cited at each.

#include "its_driver.h"

#include <cstring>

#include "core/barrier.h"
#include "core/hwreg.h"
#include "ports/poll.h"

namespace deviso::qemu_virt {
namespace {

constexpr uint64_t kTimeoutNs = 100'000'000;
constexpr uint64_t kPage = ItsMemoryBlock::kPage;
constexpr uint8_t kLpiPriority = 0xa0;
constexpr uint32_t kEventBits = 5;  // log2(kItsEventsPerDevice)
static_assert((1U << kEventBits) == kItsEventsPerDevice);
static_assert(kItsMaxLpis <= sizeof(ItsMemoryBlock::config));
static_assert((1U << kItsIdBits) / 8 <= sizeof(ItsMemoryBlock::pending));
static_assert(offsetof(ItsMemoryBlock, config) % kPage == 0);
static_assert(offsetof(ItsMemoryBlock, commands) % kPage == 0);
static_assert(offsetof(ItsMemoryBlock, collections) % kPage == 0);
static_assert(offsetof(ItsMemoryBlock, devices) % kPage == 0);
static_assert(offsetof(ItsMemoryBlock, itts) % 256 == 0);

// ---- Registers ----------------------------------------------------------------------------

// Cacheability and shareability encodings of the *BASER registers (12.11.32, 12.19.1).
constexpr uint64_t kCacheRaWaWb = 0b111;  // Normal, inner read/write-allocate write-back
constexpr uint64_t kInnerShareable = 0b01;

namespace its {
// 12.19.6 GITS_CTLR.
struct Ctlr : hwreg::Register<Ctlr, uint32_t, 0x0000> {
  DEVISO_REG_BIT(0, enabled);
  DEVISO_REG_BIT(31, quiescent);
};
// 12.19.18 GITS_TYPER.
struct Typer : hwreg::Register<Typer, uint64_t, 0x0008> {
  DEVISO_REG_BIT(0, physical);
  DEVISO_REG_FIELD(7, 4, itt_entry_size);  // bytes - 1
  DEVISO_REG_FIELD(12, 8, id_bits);        // EventID bits - 1
  DEVISO_REG_FIELD(17, 13, devbits);       // DeviceID bits - 1
  DEVISO_REG_BIT(19, pta);                 // RDbase is a physical address (else a PE number)
  DEVISO_REG_FIELD(31, 24, hcc);           // collections held in the ITS
};
// 12.19.3 GITS_CBASER.
struct Cbaser : hwreg::Register<Cbaser, uint64_t, 0x0080> {
  DEVISO_REG_FIELD(7, 0, size);  // 4 KiB pages - 1
  DEVISO_REG_FIELD(11, 10, shareability);
  DEVISO_REG_ADDR(51, 12, pa);
  DEVISO_REG_FIELD(55, 53, outer_cache);
  DEVISO_REG_FIELD(61, 59, inner_cache);
  DEVISO_REG_BIT(63, valid);
};
constexpr size_t kCwriter = 0x0088;  // 12.19.5: Offset [19:5]
constexpr size_t kCreadr = 0x0090;   // 12.19.4: Offset [19:5], Stalled [0]
constexpr uint64_t kCreadrStalled = 1;
constexpr uint64_t kQueueOffsetMask = 0xfffe0;
// 12.19.1 GITS_BASER<n>, n = 0..7.
enum class TableType : uint8_t {
  kNone = 0,
  kDevices = 1,
  kVpes = 2,
  kCollections = 4,
};
struct Baser : hwreg::Register<Baser, uint64_t> {
  DEVISO_REG_FIELD(7, 0, size);       // pages - 1
  DEVISO_REG_FIELD(9, 8, page_size);  // 0: 4 KiB, 1: 16 KiB, 2/3: 64 KiB
  DEVISO_REG_FIELD(11, 10, shareability);
  DEVISO_REG_ADDR(47, 12, pa);           // (4 KiB and 16 KiB pages)
  DEVISO_REG_FIELD(52, 48, entry_size);  // bytes - 1 (read-only)
  DEVISO_REG_FIELD(55, 53, outer_cache);
  DEVISO_REG_ENUM(58, 56, TableType, type);  // read-only
  DEVISO_REG_FIELD(61, 59, inner_cache);
  DEVISO_REG_BIT(62, indirect);
  DEVISO_REG_BIT(63, valid);
  static constexpr size_t kFirst = 0x0100;
  static constexpr unsigned kCount = 8;
};
constexpr size_t kTranslationFrame = 0x10000;  // GITS_TRANSLATER's frame (12.19: ITS + 64 KiB)
}  // namespace its

namespace gicr {
// 12.11.2 GICR_CTLR.
struct Ctlr : hwreg::Register<Ctlr, uint32_t, 0x0000> {
  DEVISO_REG_BIT(0, enable_lpis);
  DEVISO_REG_BIT(3, rwp);
};
// 12.11.37 GICR_TYPER.
struct Typer : hwreg::Register<Typer, uint64_t, 0x0008> {
  DEVISO_REG_BIT(0, plpis);
  DEVISO_REG_FIELD(23, 8, processor_number);
};
// 12.11.32 GICR_PROPBASER.
struct Propbaser : hwreg::Register<Propbaser, uint64_t, 0x0070> {
  DEVISO_REG_FIELD(4, 0, id_bits);  // INTID bits - 1
  DEVISO_REG_FIELD(9, 7, inner_cache);
  DEVISO_REG_FIELD(11, 10, shareability);
  DEVISO_REG_ADDR(51, 12, pa);
  DEVISO_REG_FIELD(58, 56, outer_cache);
};
// 12.11.33 GICR_PENDBASER.
struct Pendbaser : hwreg::Register<Pendbaser, uint64_t, 0x0078> {
  DEVISO_REG_FIELD(9, 7, inner_cache);
  DEVISO_REG_FIELD(11, 10, shareability);
  DEVISO_REG_ADDR(51, 16, pa);
  DEVISO_REG_FIELD(58, 56, outer_cache);
  DEVISO_REG_BIT(62, ptz);  // the table is zero: the redistributor need not read it
};
}  // namespace gicr

// ---- Commands (5.3: 32 bytes, four doublewords) -------------------------------------------

namespace cmd {
constexpr uint64_t kInt = 0x03;      // 5.3.10
constexpr uint64_t kSync = 0x05;     // 5.3.21
constexpr uint64_t kMapd = 0x08;     // 5.3.17
constexpr uint64_t kMapc = 0x09;     // 5.3.16
constexpr uint64_t kMapti = 0x0a;    // 5.3.19
constexpr uint64_t kInv = 0x0c;      // 5.3.12
constexpr uint64_t kDiscard = 0x0f;  // 5.3.5
constexpr uint64_t kValid = 1ULL << 63;

// DW0: CommandNumber [7:0], DeviceID [63:32]; DW1: EventID [31:0].
ItsCommand ForEvent(uint64_t number, uint32_t device_id, uint32_t event_id) {
  ItsCommand c;
  c.dw[0] = number | (uint64_t{device_id} << 32);
  c.dw[1] = event_id;
  return c;
}
// MAPD: DW1 Size [4:0] = EventID bits - 1; DW2 V [63], ITT_addr [51:8].
ItsCommand Mapd(uint32_t device_id, uint64_t itt, unsigned event_bits) {
  ItsCommand c = ForEvent(kMapd, device_id, 0);
  c.dw[1] = event_bits - 1;
  c.dw[2] = kValid | (itt & 0x000f'ffff'ffff'ff00ULL);
  return c;
}
// MAPC: DW2 V [63], RDbase [50:16], ICID [15:0].
ItsCommand Mapc(uint16_t icid, uint64_t rdbase) {
  ItsCommand c;
  c.dw[0] = kMapc;
  c.dw[2] = kValid | ((rdbase & 0x7'ffff'ffffULL) << 16) | icid;
  return c;
}
// MAPTI: DW1 pINTID [63:32]; DW2 ICID [15:0].
ItsCommand Mapti(uint32_t device_id, uint32_t event_id, uint32_t intid, uint16_t icid) {
  ItsCommand c = ForEvent(kMapti, device_id, event_id);
  c.dw[1] |= uint64_t{intid} << 32;
  c.dw[2] = icid;
  return c;
}
// SYNC: DW2 RDbase [50:16].
ItsCommand Sync(uint64_t rdbase) {
  ItsCommand c;
  c.dw[0] = kSync;
  c.dw[2] = (rdbase & 0x7'ffff'ffffULL) << 16;
  return c;
}
}  // namespace cmd

}  // namespace

uint64_t ItsDriver::Pa(const void* p) const {
  return config_.memory_pa +
         static_cast<uint64_t>(static_cast<const uint8_t*>(p) -
                               reinterpret_cast<const uint8_t*>(config_.memory));
}

// The ITS and the redistributor read these through the caches when coherent (inner-shareable
// write-back, as programmed); the clean hook makes a non-coherent implementation right too.
void ItsDriver::Publish(const void* p, size_t n) const {
  if (config_.clean != nullptr) {
    config_.clean(p, n);
  }
}

// Writes `n` commands at CWRITER, moves CWRITER past them and waits until CREADR reaches it
// (12.19.4/5). Each call waits for its own commands, so the queue is empty between calls and
// n < 128 always fits. Called with lock_ held (or from Init()).
Status ItsDriver::Submit(const Command* commands, size_t n) {
  Mmio& io = *config_.its;
  auto* queue = reinterpret_cast<Command*>(config_.memory->commands);
  constexpr size_t kSlots = kPage / sizeof(Command);
  size_t slot = cwriter_ / sizeof(Command);
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(&queue[slot], &commands[i], sizeof(Command));
    Publish(&queue[slot], sizeof(Command));
    slot = (slot + 1) % kSlots;
  }
  DmaWriteBarrier();  // the commands before CWRITER, as the ITS observes them
  cwriter_ = slot * sizeof(Command);
  io.Write64(its::kCwriter, cwriter_);
  const uint64_t target = cwriter_;
  DEVISO_TRY(port::PollUntil(kTimeoutNs, [&]() -> Result<bool> {
    const uint64_t creadr = io.Read64(its::kCreadr);
    if ((creadr & its::kCreadrStalled) != 0) {
      return Status::IoError();  // a command error stalled the queue (5.3.1)
    }
    return (creadr & its::kQueueOffsetMask) == target;
  }));
  commands_ += n;
  return Status::Ok();
}

Status ItsDriver::SubmitWithSync(const Command& c) {
  const Command batch[] = {c, cmd::Sync(rdbase_)};
  return Submit(batch, 2);
}

// The LPI configuration byte (5.1.1): priority [7:2], bit 1 RES1, Enable [0].
void ItsDriver::SetLpiConfig(uint32_t intid, bool enable) {
  uint8_t& b = config_.memory->config[intid - kItsFirstLpi];
  b = static_cast<uint8_t>((kLpiPriority & 0xfc) | 0x2 | (enable ? 1 : 0));
  Publish(&b, 1);
}

ItsDriver::Lpi* ItsDriver::FindLpi(uint32_t device_id, uint32_t event_id) {
  for (Lpi& l : lpis_) {
    if (l.used && l.device_id == device_id && l.event_id == event_id) {
      return &l;
    }
  }
  return nullptr;
}

// 12.19.1: programs every implemented table: device and collection tables, flat, 4 KiB pages.
Status ItsDriver::ProgramTables() {
  Mmio& io = *config_.its;
  for (unsigned n = 0; n < its::Baser::kCount; ++n) {
    const size_t at = its::Baser::kFirst + size_t{8} * n;
    its::Baser b = its::Baser::ReadAt(io, at);
    uint8_t* table = nullptr;
    size_t bytes = 0;
    switch (b.type()) {
      case its::TableType::kNone:
        continue;
      case its::TableType::kDevices:
        table = config_.memory->devices;
        bytes = sizeof(config_.memory->devices);
        break;
      case its::TableType::kCollections:
        table = config_.memory->collections;
        bytes = sizeof(config_.memory->collections);
        break;
      default:
        return Status::NotSupported();  // vPE tables: GICv4, not used here
    }
    const size_t entry = b.entry_size() + 1;
    b.set_valid(1)
        .set_indirect(0)
        .set_inner_cache(kCacheRaWaWb)
        .set_outer_cache(0)  // same as inner
        .set_shareability(kInnerShareable)
        .set_page_size(0)
        .set_pa(Pa(table))
        .set_size(bytes / kPage - 1)
        .WriteAt(io, at);
    const its::Baser back = its::Baser::ReadAt(io, at);
    if (back.page_size() != 0 || back.pa() != Pa(table) || back.valid() == 0) {
      return Status::NotSupported();  // 4 KiB pages not taken (the field is RO or WI there)
    }
    if (b.type() == its::TableType::kDevices) {
      max_device_id_ = static_cast<uint32_t>(bytes / entry - 1);
    }
  }
  return Status::Ok();
}

void ItsDriver::Disable() {
  its::Ctlr::ReadFrom(*config_.its).set_enabled(0).WriteTo(*config_.its);
  for (unsigned n = 0; n < its::Baser::kCount; ++n) {
    const size_t at = its::Baser::kFirst + size_t{8} * n;
    its::Baser::ReadAt(*config_.its, at).set_valid(0).WriteAt(*config_.its, at);
  }
}

Status ItsDriver::Init(const Config& config) {
  if (config.its == nullptr || config.rd == nullptr || config.memory == nullptr ||
      (config.memory_pa & 0xffff) != 0) {
    return Status::InvalidArgument();
  }
  if (ready_) {
    return Status::AlreadyExists();
  }
  Mmio& io = *config.its;
  Mmio& rd = *config.rd;
  const auto rtyper = gicr::Typer::ReadFrom(rd);
  if (rtyper.plpis() == 0 || gicr::Ctlr::ReadFrom(rd).enable_lpis() != 0) {
    return Status::NotSupported();  // no LPIs, or enabled already (tables can't be changed)
  }
  const auto typer = its::Typer::ReadFrom(io);
  if (typer.physical() == 0 || typer.id_bits() + 1 < kEventBits ||
      typer.itt_entry_size() + 1 > ItsMemoryBlock::kIttEntryMax) {
    return Status::NotSupported();
  }
  // 12.19.6: the ITS must be disabled and quiescent before its tables change.
  its::Ctlr::ReadFrom(io).set_enabled(0).WriteTo(io);
  DEVISO_TRY(port::PollUntil(
      kTimeoutNs, [&]() -> Result<bool> { return its::Ctlr::ReadFrom(io).quiescent() != 0; }));

  const Config previous = config_;
  config_ = config;
  std::memset(config_.memory, 0, sizeof(ItsMemoryBlock));
  for (uint32_t i = 0; i < kItsMaxLpis; ++i) {
    SetLpiConfig(kItsFirstLpi + i, false);
  }
  Publish(config_.memory, sizeof(ItsMemoryBlock));
  max_device_id_ = 0;
  cwriter_ = 0;
  commands_ = 0;

  DEVISO_TRY([&]() -> Status {
    const Status s = ProgramTables();
    if (!s.ok()) {
      Disable();
      config_ = previous;
    }
    return s;
  }());
  const uint32_t devbits = static_cast<uint32_t>(typer.devbits()) + 1;
  if (devbits < 32 && max_device_id_ >= (1U << devbits)) {
    max_device_id_ = (1U << devbits) - 1;
  }

  // 5.1: the redistributor's LPI tables, while GICR_CTLR.EnableLPIs is 0 (12.11.32/33).
  gicr::Propbaser{}
      .set_pa(Pa(config_.memory->config))
      .set_id_bits(kItsIdBits - 1)
      .set_inner_cache(kCacheRaWaWb)
      .set_shareability(kInnerShareable)
      .WriteTo(rd);
  gicr::Pendbaser{}
      .set_pa(Pa(config_.memory->pending))
      .set_inner_cache(kCacheRaWaWb)
      .set_shareability(kInnerShareable)
      .set_ptz(1)
      .WriteTo(rd);
  DmaWriteBarrier();
  gicr::Ctlr::ReadFrom(rd).set_enable_lpis(1).WriteTo(rd);

  its::Cbaser{}
      .set_valid(1)
      .set_inner_cache(kCacheRaWaWb)
      .set_shareability(kInnerShareable)
      .set_pa(Pa(config_.memory->commands))
      .set_size(0)  // one 4 KiB page
      .WriteTo(io);
  io.Write64(its::kCwriter, 0);
  its::Ctlr::ReadFrom(io).set_enabled(1).WriteTo(io);

  // 5.3.16 MAPC: collection 0 -> this CPU, named by PA (PTA = 1) or processor number.
  rdbase_ = typer.pta() != 0 ? (config_.rd_pa >> 16) : rtyper.processor_number();
  const Status mapc = SubmitWithSync(cmd::Mapc(0, rdbase_));
  if (!mapc.ok()) {
    Disable();  // (LPIs stay enabled at the redistributor: EnableLPIs may be write-once)
    return mapc;
  }
  ready_ = true;
  return Status::Ok();
}

Result<uint32_t> ItsDriver::MapEvent(uint32_t device_id, uint32_t event_id, ItsHandler handler,
                                     void* ctx) {
  if (!ready_) {
    return Status::IoError();
  }
  if (handler == nullptr || event_id >= kItsEventsPerDevice || device_id > max_device_id_) {
    return Status::InvalidArgument();
  }
  port::LockGuard guard(lock_);
  if (FindLpi(device_id, event_id) != nullptr) {
    return Status::AlreadyExists();
  }
  Device* dev = nullptr;
  Device* free_dev = nullptr;
  for (Device& d : devices_) {
    if (d.used && d.id == device_id) {
      dev = &d;
    } else if (!d.used && free_dev == nullptr) {
      free_dev = &d;
    }
  }
  Lpi* lpi = nullptr;
  for (Lpi& l : lpis_) {
    if (!l.used) {
      lpi = &l;
      break;
    }
  }
  if (lpi == nullptr || (dev == nullptr && free_dev == nullptr)) {
    return Status::NoMemory();
  }
  const uint32_t intid = kItsFirstLpi + static_cast<uint32_t>(lpi - lpis_);
  if (dev == nullptr) {
    uint8_t* itt = config_.memory->itts[free_dev - devices_];
    std::memset(itt, 0, ItsMemoryBlock::kIttBytes);
    Publish(itt, ItsMemoryBlock::kIttBytes);
    DEVISO_TRY(SubmitWithSync(cmd::Mapd(device_id, Pa(itt), kEventBits)));
    free_dev->used = true;
    free_dev->id = device_id;
  }
  *lpi = Lpi{true, device_id, event_id, handler, ctx, 0};
  SetLpiConfig(intid, true);
  const Command batch[] = {cmd::Mapti(device_id, event_id, intid, 0),
                           cmd::ForEvent(cmd::kInv, device_id, event_id), cmd::Sync(rdbase_)};
  DEVISO_TRY(Submit(batch, 3));
  return intid;
}

Status ItsDriver::UnmapEvent(uint32_t device_id, uint32_t event_id) {
  if (!ready_) {
    return Status::IoError();
  }
  port::LockGuard guard(lock_);
  Lpi* lpi = FindLpi(device_id, event_id);
  if (lpi == nullptr) {
    return Status::NotFound();
  }
  SetLpiConfig(kItsFirstLpi + static_cast<uint32_t>(lpi - lpis_), false);
  DEVISO_TRY(SubmitWithSync(cmd::ForEvent(cmd::kDiscard, device_id, event_id)));
  lpi->used = false;
  lpi->handler = nullptr;
  return Status::Ok();
}

Status ItsDriver::Trigger(uint32_t device_id, uint32_t event_id) {
  if (!ready_) {
    return Status::IoError();
  }
  port::LockGuard guard(lock_);
  if (FindLpi(device_id, event_id) == nullptr) {
    return Status::NotFound();
  }
  return SubmitWithSync(cmd::ForEvent(cmd::kInt, device_id, event_id));
}

void ItsDriver::Dispatch(uint32_t intid) {
  const uint32_t i = intid - kItsFirstLpi;
  if (intid < kItsFirstLpi || i >= kItsMaxLpis || !lpis_[i].used || lpis_[i].handler == nullptr) {
    __atomic_fetch_add(&spurious_, 1, __ATOMIC_RELAXED);
    return;
  }
  Lpi& l = lpis_[i];
  __atomic_fetch_add(&l.count, 1, __ATOMIC_RELAXED);
  l.handler(l.ctx);
}

uint64_t ItsDriver::lpi_count(uint32_t intid) const {
  const uint32_t i = intid - kItsFirstLpi;
  if (intid < kItsFirstLpi || i >= kItsMaxLpis) {
    return 0;
  }
  return __atomic_load_n(&lpis_[i].count, __ATOMIC_RELAXED);
}

}  // namespace deviso::qemu_virt
