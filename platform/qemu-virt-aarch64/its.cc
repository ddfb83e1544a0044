// GICv3 ITS driver (see its.h). Register and command layouts: IHI0069 (GICv3/v4 architecture
// specification), sections cited at each.

#include "its.h"

#include <cstddef>
#include <cstring>

#include "arch.h"
#include "core/hwreg.h"
#include "core/mmio.h"
#include "deviso/port/os.h"
#include "mmu.h"
#include "ports/poll.h"

namespace deviso::qemu_virt {
namespace {

constexpr uint64_t kTimeoutNs = 100'000'000;
constexpr uint64_t kPage = 4096;
constexpr uint8_t kLpiPriority = 0xa0;
// LPI INTIDs below 2^14: 8192 of them; GICR_PROPBASER.IDbits = 13 (14 bits).
constexpr unsigned kIdBits = 14;
constexpr uint32_t kLpiSpace = (1U << kIdBits) - kItsFirstLpi;  // configuration table bytes
constexpr uint32_t kEventBits = 5;                              // log2(kItsEventsPerDevice)
static_assert((1U << kEventBits) == kItsEventsPerDevice);
static_assert(kItsMaxLpis <= kLpiSpace);

// The ITS's memory, one static block (its.h). Offsets keep each table's alignment:
//   pending table: 64 KiB aligned (12.11.33 GICR_PENDBASER PA[51:16]), 2^kIdBits bits;
//   configuration table: 4 KiB aligned (12.11.32 GICR_PROPBASER PA[51:12]), 1 byte per LPI;
//   command queue: 4 KiB aligned (12.19.3 GITS_CBASER), one page = 128 commands;
//   device and collection tables: aligned to their page size (12.19.1 GITS_BASER<n>);
//   ITTs: 256-byte aligned (5.3.17 MAPD ITT_addr[51:8]), one per device.
constexpr size_t kItsEntryMax = 16;  // GITS_TYPER.ITT_entry_size is at most 16 bytes
constexpr size_t kIttBytes = kItsEventsPerDevice * kItsEntryMax;
constexpr size_t kDeviceTableBytes = 16 * kPage;
struct alignas(65536) ItsMemoryBlock {
  uint8_t pending[kPage];  // 2^14 bits = 2 KiB used
  uint8_t config[kLpiSpace];
  uint8_t commands[kPage];
  uint8_t collections[kPage];
  uint8_t devices[kDeviceTableBytes];
  alignas(256) uint8_t itts[kItsMaxDevices][kIttBytes];
};
static_assert((1U << kIdBits) / 8 <= kPage);
static_assert(offsetof(ItsMemoryBlock, config) % kPage == 0);
static_assert(offsetof(ItsMemoryBlock, commands) % kPage == 0);
static_assert(offsetof(ItsMemoryBlock, collections) % kPage == 0);
static_assert(offsetof(ItsMemoryBlock, devices) % kPage == 0);
ItsMemoryBlock g_mem;

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

struct Command {
  uint64_t dw[4] = {};
};
static_assert(sizeof(Command) == 32);

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
Command ForEvent(uint64_t number, uint32_t device_id, uint32_t event_id) {
  Command c;
  c.dw[0] = number | (uint64_t{device_id} << 32);
  c.dw[1] = event_id;
  return c;
}
// MAPD: DW1 Size [4:0] = EventID bits - 1; DW2 V [63], ITT_addr [51:8].
Command Mapd(uint32_t device_id, uint64_t itt, unsigned event_bits) {
  Command c = ForEvent(kMapd, device_id, 0);
  c.dw[1] = event_bits - 1;
  c.dw[2] = kValid | (itt & 0x000f'ffff'ffff'ff00ULL);
  return c;
}
// MAPC: DW2 V [63], RDbase [50:16], ICID [15:0].
Command Mapc(uint16_t icid, uint64_t rdbase) {
  Command c;
  c.dw[0] = kMapc;
  c.dw[2] = kValid | ((rdbase & 0x7'ffff'ffffULL) << 16) | icid;
  return c;
}
// MAPTI: DW1 pINTID [63:32]; DW2 ICID [15:0].
Command Mapti(uint32_t device_id, uint32_t event_id, uint32_t intid, uint16_t icid) {
  Command c = ForEvent(kMapti, device_id, event_id);
  c.dw[1] |= uint64_t{intid} << 32;
  c.dw[2] = icid;
  return c;
}
// SYNC: DW2 RDbase [50:16].
Command Sync(uint64_t rdbase) {
  Command c;
  c.dw[0] = kSync;
  c.dw[2] = (rdbase & 0x7'ffff'ffffULL) << 16;
  return c;
}
}  // namespace cmd

// ---- State --------------------------------------------------------------------------------

struct Lpi {
  bool used = false;
  uint32_t device_id = 0;
  uint32_t event_id = 0;
  IrqHandler handler = nullptr;
  void* ctx = nullptr;
  uint64_t count = 0;
};

struct Device {
  bool used = false;
  uint32_t id = 0;
};

struct State {
  bool ready = false;
  uintptr_t base = 0;
  uintptr_t rd = 0;     // this CPU's RD_base
  uint64_t rdbase = 0;  // what MAPC/SYNC name it by (PA >> 16, or the processor number)
  uint32_t max_device_id = 0;
  uint64_t cwriter = 0;
  uint64_t commands = 0;
  uint64_t spurious = 0;
  Device devices[kItsMaxDevices];
  Lpi lpis[kItsMaxLpis];
};
State g_state;
port::Mutex* g_lock = nullptr;

uint64_t Pa(const void* p) { return reinterpret_cast<uintptr_t>(p); }  // identity map

// The ITS and redistributor read these through the caches when they are coherent
// (inner-shareable write-back, as programmed); cleaning to the point of coherency as well keeps
// a non-coherent implementation right at the cost of a few cache lines per command.
void Publish(const void* p, size_t n) { arch::CleanDcacheRange(p, n); }

// Writes `n` commands at CWRITER, moves CWRITER past them and waits until CREADR reached it
// (12.19.4/5). The queue is empty between calls (each call waits for its own commands), so
// n < 128 always fits. Called with g_lock held (or during init).
Status Submit(const Command* commands, size_t n) {
  DirectMmio io(g_state.base);
  auto* queue = reinterpret_cast<Command*>(g_mem.commands);
  constexpr size_t kSlots = kPage / sizeof(Command);
  size_t slot = g_state.cwriter / sizeof(Command);
  for (size_t i = 0; i < n; ++i) {
    queue[slot] = commands[i];
    Publish(&queue[slot], sizeof(Command));
    slot = (slot + 1) % kSlots;
  }
  arch::DsbIshSt();
  g_state.cwriter = slot * sizeof(Command);
  io.Write64(its::kCwriter, g_state.cwriter);
  const uint64_t target = g_state.cwriter;
  DEVISO_TRY(port::PollUntil(kTimeoutNs, [&]() -> Result<bool> {
    const uint64_t creadr = io.Read64(its::kCreadr);
    if ((creadr & its::kCreadrStalled) != 0) {
      return Status::IoError();  // a command error stalled the queue (5.3.1)
    }
    return (creadr & its::kQueueOffsetMask) == target;
  }));
  g_state.commands += n;
  return Status::Ok();
}

Status SubmitWithSync(Command c) {
  const Command batch[] = {c, cmd::Sync(g_state.rdbase)};
  return Submit(batch, 2);
}

// The LPI configuration byte (5.1.1): priority [7:2], bit 1 RES1, Enable [0].
void SetLpiConfig(uint32_t intid, bool enable) {
  uint8_t& b = g_mem.config[intid - kItsFirstLpi];
  b = static_cast<uint8_t>((kLpiPriority & 0xfc) | 0x2 | (enable ? 1 : 0));
  Publish(&b, 1);
}

void DispatchLpi(uint32_t intid) {
  const uint32_t i = intid - kItsFirstLpi;
  if (intid < kItsFirstLpi || i >= kItsMaxLpis || !g_state.lpis[i].used ||
      g_state.lpis[i].handler == nullptr) {
    __atomic_fetch_add(&g_state.spurious, 1, __ATOMIC_RELAXED);
    return;
  }
  Lpi& l = g_state.lpis[i];
  __atomic_fetch_add(&l.count, 1, __ATOMIC_RELAXED);
  l.handler(l.ctx);
}

Lpi* FindLpi(uint32_t device_id, uint32_t event_id) {
  for (Lpi& l : g_state.lpis) {
    if (l.used && l.device_id == device_id && l.event_id == event_id) {
      return &l;
    }
  }
  return nullptr;
}

// 12.19.1: programs every implemented table: device and collection tables, flat, 4 KiB pages.
Status ProgramTables(DirectMmio& io) {
  for (unsigned n = 0; n < its::Baser::kCount; ++n) {
    const size_t at = its::Baser::kFirst + 8 * n;
    its::Baser b = its::Baser::ReadAt(io, at);
    uint8_t* table = nullptr;
    size_t bytes = 0;
    switch (b.type()) {
      case its::TableType::kNone:
        continue;
      case its::TableType::kDevices:
        table = g_mem.devices;
        bytes = sizeof(g_mem.devices);
        break;
      case its::TableType::kCollections:
        table = g_mem.collections;
        bytes = sizeof(g_mem.collections);
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
      const uint64_t ids = bytes / entry;
      g_state.max_device_id = static_cast<uint32_t>(ids - 1);
    }
  }
  return Status::Ok();
}

}  // namespace

Region ItsMemory() { return {Pa(&g_mem), sizeof(g_mem)}; }

bool ItsReady() { return g_state.ready; }

uint64_t ItsDoorbell() { return g_state.ready ? g_state.base + kItsDoorbellOffset : 0; }

Status ItsInit(const PlatformInfo& info) {
  if (info.gic.version != 3 || info.gic.its.size == 0 || GicRedistributorBase() == 0) {
    return Status::NotFound();
  }
  if (g_state.ready) {
    return Status::AlreadyExists();
  }
  static port::Mutex lock;
  g_lock = &lock;
  const Status mapped = MmuMapDevice(info.gic.its.base, info.gic.its.size);
  if (!mapped.ok() && mapped != Status::AlreadyExists()) {
    return mapped;
  }
  g_state = State{};
  g_state.base = static_cast<uintptr_t>(info.gic.its.base);
  g_state.rd = GicRedistributorBase();
  DirectMmio io(g_state.base);
  DirectMmio rd(g_state.rd);

  const auto rtyper = gicr::Typer::ReadFrom(rd);
  if (rtyper.plpis() == 0 || gicr::Ctlr::ReadFrom(rd).enable_lpis() != 0) {
    return Status::NotSupported();  // no LPIs, or enabled already (tables can't be changed)
  }
  const auto typer = its::Typer::ReadFrom(io);
  if (typer.physical() == 0 || typer.id_bits() + 1 < kEventBits ||
      typer.itt_entry_size() + 1 > kItsEntryMax) {
    return Status::NotSupported();
  }
  // 12.19.6: the ITS must be disabled and quiescent before its tables change.
  its::Ctlr::ReadFrom(io).set_enabled(0).WriteTo(io);
  DEVISO_TRY(port::PollUntil(
      kTimeoutNs, [&]() -> Result<bool> { return its::Ctlr::ReadFrom(io).quiescent() != 0; }));

  std::memset(&g_mem, 0, sizeof(g_mem));
  for (uint32_t i = 0; i < kItsMaxLpis; ++i) {
    SetLpiConfig(kItsFirstLpi + i, false);
  }
  Publish(&g_mem, sizeof(g_mem));

  // 5.1: the redistributor's LPI tables, while GICR_CTLR.EnableLPIs is 0 (12.11.32/33).
  gicr::Propbaser{}
      .set_pa(Pa(g_mem.config))
      .set_id_bits(kIdBits - 1)
      .set_inner_cache(kCacheRaWaWb)
      .set_shareability(kInnerShareable)
      .WriteTo(rd);
  gicr::Pendbaser{}
      .set_pa(Pa(g_mem.pending))
      .set_inner_cache(kCacheRaWaWb)
      .set_shareability(kInnerShareable)
      .set_ptz(1)
      .WriteTo(rd);
  arch::DsbSy();
  gicr::Ctlr::ReadFrom(rd).set_enable_lpis(1).WriteTo(rd);
  arch::DsbSy();

  DEVISO_TRY(ProgramTables(io));
  const uint32_t devbits = static_cast<uint32_t>(typer.devbits()) + 1;
  if (devbits < 32 && g_state.max_device_id >= (1U << devbits)) {
    g_state.max_device_id = (1U << devbits) - 1;
  }
  its::Cbaser{}
      .set_valid(1)
      .set_inner_cache(kCacheRaWaWb)
      .set_shareability(kInnerShareable)
      .set_pa(Pa(g_mem.commands))
      .set_size(0)  // one 4 KiB page
      .WriteTo(io);
  io.Write64(its::kCwriter, 0);
  g_state.cwriter = 0;
  its::Ctlr::ReadFrom(io).set_enabled(1).WriteTo(io);

  // 5.3.16 MAPC: collection 0 -> this CPU, named by PA (PTA = 1) or processor number.
  g_state.rdbase = typer.pta() != 0 ? (g_state.rd >> 16) : rtyper.processor_number();
  const Status mapc = SubmitWithSync(cmd::Mapc(0, g_state.rdbase));
  if (!mapc.ok()) {
    its::Ctlr::ReadFrom(io).set_enabled(0).WriteTo(io);
    return mapc;
  }
  SetLpiDispatcher(&DispatchLpi);
  g_state.ready = true;
  return Status::Ok();
}

Result<uint32_t> ItsDeviceId(const PlatformInfo& info, uint16_t rid) {
  return MsiDeviceId(info, rid);
}

Result<uint32_t> ItsMapEvent(uint32_t device_id, uint32_t event_id, IrqHandler handler, void* ctx) {
  if (!g_state.ready) {
    return Status::IoError();
  }
  if (handler == nullptr || event_id >= kItsEventsPerDevice || device_id > g_state.max_device_id) {
    return Status::InvalidArgument();
  }
  port::LockGuard guard(*g_lock);
  if (FindLpi(device_id, event_id) != nullptr) {
    return Status::AlreadyExists();
  }
  Device* dev = nullptr;
  Device* free_dev = nullptr;
  for (Device& d : g_state.devices) {
    if (d.used && d.id == device_id) {
      dev = &d;
    } else if (!d.used && free_dev == nullptr) {
      free_dev = &d;
    }
  }
  Lpi* lpi = nullptr;
  for (Lpi& l : g_state.lpis) {
    if (!l.used) {
      lpi = &l;
      break;
    }
  }
  if (lpi == nullptr || (dev == nullptr && free_dev == nullptr)) {
    return Status::NoMemory();
  }
  const auto index = static_cast<uint32_t>(lpi - g_state.lpis);
  const uint32_t intid = kItsFirstLpi + index;
  if (dev == nullptr) {
    const auto slot = static_cast<size_t>(free_dev - g_state.devices);
    std::memset(g_mem.itts[slot], 0, kIttBytes);
    Publish(g_mem.itts[slot], kIttBytes);
    DEVISO_TRY(SubmitWithSync(cmd::Mapd(device_id, Pa(g_mem.itts[slot]), kEventBits)));
    free_dev->used = true;
    free_dev->id = device_id;
  }
  *lpi = Lpi{true, device_id, event_id, handler, ctx, 0};
  SetLpiConfig(intid, true);
  const Command batch[] = {cmd::Mapti(device_id, event_id, intid, 0),
                           cmd::ForEvent(cmd::kInv, device_id, event_id),
                           cmd::Sync(g_state.rdbase)};
  DEVISO_TRY(Submit(batch, 3));
  return intid;
}

Status ItsUnmapEvent(uint32_t device_id, uint32_t event_id) {
  if (!g_state.ready) {
    return Status::IoError();
  }
  port::LockGuard guard(*g_lock);
  Lpi* lpi = FindLpi(device_id, event_id);
  if (lpi == nullptr) {
    return Status::NotFound();
  }
  const uint32_t intid = kItsFirstLpi + static_cast<uint32_t>(lpi - g_state.lpis);
  SetLpiConfig(intid, false);
  DEVISO_TRY(SubmitWithSync(cmd::ForEvent(cmd::kDiscard, device_id, event_id)));
  lpi->used = false;
  lpi->handler = nullptr;
  return Status::Ok();
}

Status ItsTrigger(uint32_t device_id, uint32_t event_id) {
  if (!g_state.ready) {
    return Status::IoError();
  }
  port::LockGuard guard(*g_lock);
  if (FindLpi(device_id, event_id) == nullptr) {
    return Status::NotFound();
  }
  return SubmitWithSync(cmd::ForEvent(cmd::kInt, device_id, event_id));
}

uint64_t LpiCount(uint32_t intid) {
  const uint32_t i = intid - kItsFirstLpi;
  if (intid < kItsFirstLpi || i >= kItsMaxLpis) {
    return 0;
  }
  return __atomic_load_n(&g_state.lpis[i].count, __ATOMIC_RELAXED);
}

uint64_t ItsSpuriousLpis() { return __atomic_load_n(&g_state.spurious, __ATOMIC_RELAXED); }
uint64_t ItsCommandsIssued() { return g_state.commands; }

}  // namespace deviso::qemu_virt
