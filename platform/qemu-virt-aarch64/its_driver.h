// The GICv3 ITS engine behind its.h: every register and command the driver uses, reached
// through deviso::Mmio (the ITS's control frame and this CPU's redistributor RD_base frame) and
// one memory block the caller provides, so a host test puts a register-level model behind it
// (its_test.cc). It knows nothing of the board: its.cc gives it the frames, the memory and
// the cache maintenance.
//
// Layouts: IHI0069 (GICv3/v4 architecture specification): 5.1.1 LPI Configuration tables,
// 5.1.2 LPI Pending tables, 5.3 ITS commands, 12.11 redistributor registers, 12.19 ITS
// registers. One collection (ICID 0, this CPU), flat device and collection tables of 4 KiB
// pages, LPIs kItsFirstLpi .. + kItsMaxLpis - 1. Every wait has a deadline (port::PollUntil).
// Calls are serialised by an internal lock; Dispatch() takes none (IRQ context).

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_ITS_DRIVER_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_ITS_DRIVER_H_

#include <cstddef>
#include <cstdint>

#include "core/mmio.h"
#include "deviso/port/os.h"
#include "deviso/status.h"

namespace deviso::qemu_virt {

inline constexpr uint32_t kItsMaxDevices = 8;            // devices with an ITT
inline constexpr uint32_t kItsEventsPerDevice = 32;      // EventIDs 0..31 per device
inline constexpr uint32_t kItsMaxLpis = 64;              // LPIs handed out
inline constexpr uint32_t kItsFirstLpi = 8192;           // IHI0069 2.2.1
inline constexpr unsigned kItsIdBits = 14;               // LPI INTIDs below 2^14 (PROPBASER)
inline constexpr uint64_t kItsDoorbellOffset = 0x10040;  // GITS_TRANSLATER (12.19.22)

// The memory the ITS and the redistributor read and write. 64 KiB-aligned (GICR_PENDBASER
// PA[51:16], 12.11.33); each member keeps its own table's alignment.
struct alignas(65536) ItsMemoryBlock {
  static constexpr size_t kPage = 4096;
  static constexpr size_t kIttEntryMax = 16;  // GITS_TYPER.ITT_entry_size is at most 16 bytes
  static constexpr size_t kIttBytes = kItsEventsPerDevice * kIttEntryMax;
  uint8_t pending[kPage];                                // 2^14 bits: 2 KiB used (5.1.2)
  uint8_t config[(1U << kItsIdBits) - kItsFirstLpi];     // one byte per LPI (5.1.1)
  uint8_t commands[kPage];                               // one page: 128 commands (12.19.3)
  uint8_t collections[kPage];                            // 12.19.1
  uint8_t devices[2 * kPage];                            // 1024 DeviceIDs of 8 bytes
  alignas(256) uint8_t itts[kItsMaxDevices][kIttBytes];  // 5.3.17 MAPD ITT_addr[51:8]
};

// One ITS command (5.3): 32 bytes, four doublewords, as the command queue holds it.
struct ItsCommand {
  uint64_t dw[4] = {};
};
static_assert(sizeof(ItsCommand) == 32);

// An LPI's handler: runs in IRQ context, must not block.
using ItsHandler = void (*)(void* ctx);

class ItsDriver {
 public:
  struct Config {
    Mmio* its = nullptr;  // the ITS control frame (GITS_CTLR at 0)
    Mmio* rd = nullptr;   // this CPU's RD_base frame (GICR_CTLR at 0)
    uint64_t rd_pa = 0;   // its physical address (MAPC by address when GITS_TYPER.PTA = 1)
    ItsMemoryBlock* memory = nullptr;
    uint64_t memory_pa = 0;  // physical address of *memory
    // Makes CPU writes to [p, p + n) visible to the ITS (cache clean); null: coherent.
    void (*clean)(const void* p, size_t n) = nullptr;
  };

  // Brings the ITS up (its.h ItsInit() says how). Errors: -EINVAL (a null frame or memory, an
  // unaligned block), -EEXIST (already up), -ENOTSUP, -ETIMEDOUT, -EIO as ItsInit(). On error
  // the ITS is left disabled and this object as before.
  Status Init(const Config& config);
  bool ready() const { return ready_; }

  // As ItsMapEvent(), ItsUnmapEvent(), ItsTrigger() (its.h).
  Result<uint32_t> MapEvent(uint32_t device_id, uint32_t event_id, ItsHandler handler, void* ctx);
  Status UnmapEvent(uint32_t device_id, uint32_t event_id);
  Status Trigger(uint32_t device_id, uint32_t event_id);

  // Runs the handler of LPI `intid` (the GIC dispatcher's LPI hook); counts it as spurious if
  // no mapping owns it.
  void Dispatch(uint32_t intid);
  uint64_t lpi_count(uint32_t intid) const;
  uint64_t spurious() const { return __atomic_load_n(&spurious_, __ATOMIC_RELAXED); }
  uint64_t commands_issued() const { return commands_; }
  uint32_t max_device_id() const { return max_device_id_; }

 private:
  using Command = ItsCommand;
  struct Lpi {
    bool used = false;
    uint32_t device_id = 0;
    uint32_t event_id = 0;
    ItsHandler handler = nullptr;
    void* ctx = nullptr;
    uint64_t count = 0;
  };
  struct Device {
    bool used = false;
    uint32_t id = 0;
  };

  uint64_t Pa(const void* p) const;
  void Publish(const void* p, size_t n) const;
  Status Submit(const Command* commands, size_t n);
  Status SubmitWithSync(const Command& c);
  void SetLpiConfig(uint32_t intid, bool enable);
  Lpi* FindLpi(uint32_t device_id, uint32_t event_id);
  Status ProgramTables();
  void Disable();

  Config config_;
  bool ready_ = false;
  uint64_t rdbase_ = 0;  // how MAPC/SYNC name the redistributor
  uint32_t max_device_id_ = 0;
  uint64_t cwriter_ = 0;
  uint64_t commands_ = 0;
  uint64_t spurious_ = 0;
  Device devices_[kItsMaxDevices];
  Lpi lpis_[kItsMaxLpis];
  port::InterruptSpinLock lock_;
};

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_ITS_DRIVER_H_
