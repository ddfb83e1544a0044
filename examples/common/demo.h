// What the QEMU demos share: their [PASS]/[FAIL] steps, logs for deviso's fault handlers,
// buffers from the platform's DMA arena, and the check of the disk pattern scripts/demo
// writes (disk_pattern.h). Header-only; bare metal (no heap, no <algorithm>).

#ifndef DEVISO_EXAMPLES_COMMON_DEMO_H_
#define DEVISO_EXAMPLES_COMMON_DEMO_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "arch.h"
#include "deviso/deviso.h"
#include "deviso/dump.h"
#include "deviso/port/os.h"
#include "deviso/status.h"
#include "disk_pattern.h"
#include "dma_arena.h"
#include "drivers/dma_allocator.h"

namespace deviso::demo {

// The program's steps, each printed as "[PASS] what" or "[FAIL] what" and counted. The QEMU
// tests look for those lines.
class Steps {
 public:
  // Prints and counts the step; returns `ok`.
  bool Step(bool ok, const char* what) {
    ++total_;
    port::Log("[%s] %s\n", ok ? "PASS" : "FAIL", what);
    if (!ok) ++failed_;
    return ok;
  }
  int total() const { return total_; }
  int failed() const { return failed_; }
  int passed() const { return total_ - failed_; }

 private:
  int total_ = 0;
  int failed_ = 0;
};

// What one fault handler (RecordFault) saw since the last Reset(); written from the IOMMU's
// event handling (an interrupt). Overflow notices (DEVISO_FAULT_OVERFLOW: the unit lost
// faults, e.g. when QEMU floods the event queue with a blocked transfer's retries) are counted
// apart from decoded faults, so that `first` is always a real fault.
struct FaultLog {
  const char* who = nullptr;  // printed with each fault ("fault for <who>: ..."), if set
  uint32_t count = 0;         // decoded faults
  uint32_t overflows = 0;     // overflow notices
  uint32_t print_budget = 0;  // faults still to print
  deviso_fault first{};       // the first decoded fault

  // Clears the log, with interrupts masked (the handler may be running from one); the next
  // `budget` faults are printed.
  void Reset(uint32_t budget = 3) {
    const uint64_t daif = qemu_virt::arch::MaskInterrupts();
    count = 0;
    overflows = 0;
    print_budget = budget;
    first = deviso_fault{};
    qemu_virt::arch::RestoreInterrupts(daif);
  }
  uint32_t Count() const { return __atomic_load_n(&count, __ATOMIC_RELAXED); }
};

// A deviso_fault_handler_t: records `fault` in the FaultLog `user` and prints it while the
// log's print budget lasts.
inline void RecordFault(const deviso_fault* fault, void* user) {
  auto* log = static_cast<FaultLog*>(user);
  if (fault->reason == DEVISO_FAULT_OVERFLOW) {
    ++log->overflows;
    return;
  }
  if (log->count == 0) log->first = *fault;
  ++log->count;
  if (log->print_budget > 0) {
    --log->print_budget;
    char line[256];  // the unit's line, the device, and the mapping nearest the address
    (void)deviso_fault_format(fault, line, sizeof(line));
    if (log->who != nullptr) {
      port::Log("       fault for %s: %s\n", log->who, line);
    } else {
      port::Log("       fault: %s\n", line);
    }
  }
}

// Prints the IOVA map (deviso_dump(): every unit, context, stream and mapped extent), one
// "iova-map: " line per dump line; `deviso-decode map` turns a console log into a picture.
inline void PrintDumpLine(const char* line, void* /*user*/) {
  port::Log("       iova-map: %s\n", line);
}
inline void PrintIovaMap() { (void)deviso_dump(&PrintDumpLine, nullptr); }

// Memory from the platform's DMA arena, by physical address (device address == PA), mapped
// for nobody, filled with `fill`; given back on destruction. ok() is false if the arena was
// exhausted.
class ArenaBuffer {
 public:
  ArenaBuffer(qemu_virt::DmaArena& arena, size_t bytes, uint8_t fill, size_t align = 4096)
      : arena_(arena) {
    Result<drivers::DmaRegion> r = arena_.Alloc(bytes, align);
    if (r.ok()) {
      region_ = *r;
      Fill(fill);
    }
  }
  ~ArenaBuffer() {
    if (region_.cpu != nullptr) arena_.Free(region_);
  }
  ArenaBuffer(const ArenaBuffer&) = delete;
  ArenaBuffer& operator=(const ArenaBuffer&) = delete;

  bool ok() const { return region_.cpu != nullptr; }
  const drivers::DmaRegion& region() const { return region_; }
  uint8_t* data() const { return static_cast<uint8_t*>(region_.cpu); }
  uint64_t pa() const { return region_.device_addr; }
  size_t size() const { return region_.size; }
  void Fill(uint8_t value) { std::memset(region_.cpu, value, region_.size); }
  // Whether bytes [from, from + n) (all of them, in the first form) hold `value`.
  bool All(uint8_t value) const { return All(0, region_.size, value); }
  bool All(size_t from, size_t n, uint8_t value) const {
    for (size_t i = from; i < from + n; ++i) {
      if (data()[i] != value) return false;
    }
    return true;
  }

 private:
  qemu_virt::DmaArena& arena_;
  drivers::DmaRegion region_;
};

// Whether `sectors` 512-byte sectors at `p` hold word(lba + s, k) in word k of sector s (e.g.
// DiskWord, WrittenWord); prints the first word that does not.
template <typename WordFn>
bool VerifySectors(const void* p, uint64_t lba, uint64_t sectors, WordFn word) {
  const auto* bytes = static_cast<const uint8_t*>(p);
  for (uint64_t s = 0; s < sectors; ++s) {
    for (uint64_t k = 0; k < kWordsPerSector; ++k) {
      uint64_t w;
      std::memcpy(&w, bytes + s * kSectorBytes + k * 8, 8);
      if (w != word(lba + s, k)) {
        port::Log("       mismatch at LBA %llu word %llu: 0x%016llx\n",
                  static_cast<unsigned long long>(lba + s), static_cast<unsigned long long>(k),
                  static_cast<unsigned long long>(w));
        return false;
      }
    }
  }
  return true;
}

// Whether `sectors` sectors at `p` hold the disk image's pattern of LBA `lba` onwards.
inline bool VerifyPattern(const void* p, uint64_t lba, uint64_t sectors) {
  return VerifySectors(p, lba, sectors, DiskWord);
}

}  // namespace deviso::demo

#endif  // DEVISO_EXAMPLES_COMMON_DEMO_H_
