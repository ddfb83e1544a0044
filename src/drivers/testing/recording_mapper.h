// A test double of the DMA-driver hook (drivers::DmaMapper) for the drivers' host tests: it
// maps the way an IOMMU would and records every call. Device addresses are kIovaBase + the
// physical address (never a host pointer, so a driver that hands its device the physical
// address is caught), and Translate() resolves a device access through the live mappings only,
// honouring their direction. Host-only (std::vector, std::function).

#ifndef DEVISO_SRC_DRIVERS_TESTING_RECORDING_MAPPER_H_
#define DEVISO_SRC_DRIVERS_TESTING_RECORDING_MAPPER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "deviso/status.h"
#include "drivers/dma_allocator.h"

namespace deviso::drivers::testing {

// NOLINTNEXTLINE(cppcoreguidelines-virtual-class-destructor): never deleted through the base.
class RecordingMapper final : public DmaMapper {
 public:
  static constexpr uint64_t kIovaBase = uint64_t{1} << 56;

  struct Call {
    bool map;  // MapForDevice (else UnmapForDevice)
    DmaMapping mapping;
  };

  // -EINVAL for an unaligned or empty range; `fail_map` if set; else a live mapping.
  Result<DmaMapping> MapForDevice(uint64_t pa, size_t size, DmaDirection direction) override {
    if (pa % page != 0 || size % page != 0 || size == 0) return Status::InvalidArgument();
    if (!fail_map.ok()) return fail_map;
    const DmaMapping m{pa, kIovaBase + pa, size, direction};
    live.push_back(m);
    calls.push_back({true, m});
    return m;
  }
  // Runs `on_unmap` (e.g. to check the device has stopped), then fails with `fail_unmap` if
  // set, else ends the live mapping equal to `m`; -ENOENT if there is none.
  Status UnmapForDevice(const DmaMapping& m) override {
    for (auto it = live.begin(); it != live.end(); ++it) {
      if (it->pa == m.pa && it->device_addr == m.device_addr && it->size == m.size &&
          it->direction == m.direction) {
        if (on_unmap) on_unmap();
        if (!fail_unmap.ok()) return fail_unmap;
        live.erase(it);
        calls.push_back({false, m});
        return Status::Ok();
      }
    }
    return Status::NotFound();
  }
  size_t page_size() const override { return page; }

  // Host memory for a device access of `n` bytes at device address `addr`, or null if no live
  // mapping allows it (device writes need kFromDevice/kBidirectional, reads kToDevice/...).
  uint8_t* Translate(uint64_t addr, size_t n, bool device_writes) const {
    for (const DmaMapping& m : live) {
      const bool allowed = device_writes ? m.direction != DmaDirection::kToDevice
                                         : m.direction != DmaDirection::kFromDevice;
      if (allowed && addr >= m.device_addr && addr + n <= m.device_addr + m.size) {
        return reinterpret_cast<uint8_t*>(static_cast<uintptr_t>(m.pa + (addr - m.device_addr)));
      }
    }
    return nullptr;
  }

  size_t page = 4096;
  Status fail_map = Status::Ok();
  Status fail_unmap = Status::Ok();
  std::function<void()> on_unmap;
  std::vector<DmaMapping> live;
  std::vector<Call> calls;
};

}  // namespace deviso::drivers::testing

#endif  // DEVISO_SRC_DRIVERS_TESTING_RECORDING_MAPPER_H_
