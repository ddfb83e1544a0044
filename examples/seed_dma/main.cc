// seed_dma: the seed README's own example, literally, on QEMU's `virt` board with its SMMUv3.
//
// The seed's program (smmu_readme.md, "Example") looks up "DMA_0", calls deviso_ctx_alloc()
// and deviso_map(), "performs DMA operations", then deviso_unmap() and deviso_ctx_free(),
// logging with Zephyr's LOG_ERR. This is that program, with its messages, made to run:
//   - "DMA_0" is QEMU's `edu` PCI device, driven by src/drivers/edu behind Zephyr's DMA API;
//     device_get_binding() finds it by PCI enumeration (platform device_binding.h);
//   - its StreamID comes from the devicetree's iommu-map for the PCI function enumeration
//     found, not `sid = 0`; its buffer comes from the platform's DMA arena, not 0x80000000
//     (which is not RAM on a 512 MiB `virt`);
//   - "Perform DMA operations" is a real copy with dma_config()/dma_start(), every byte
//     verified. The driver maps each transfer's RAM through the DmaMapper hook; this program's
//     hook (SeedMapper) is identity over deviso_map()/deviso_unmap();
// and then, as a rogue driver or a compromised device would, a transfer outside the mapped
// window (and one into the window after deviso_unmap()) must be blocked: the SMMU's event is
// decoded and printed and the destination canary stays untouched. edu never learns of the
// fault: its transfer "completes".
//
// Exit status 0 only when every step passed; the last console line says the same.

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#include "arch.h"
#include "core/mmio.h"
#include "device_binding.h"
#include "deviso/deviso.h"
#include "deviso/port/device.h"
#include "deviso/port/dma.h"
#include "dma_arena.h"
#include "drivers/dma_allocator.h"
#include "drivers/edu/edu.h"
#include "drivers/edu/edu_hw.h"
#include "gic.h"
#include "pci.h"
#include "platform.h"
#include "ports/port.h"
#include "smmu_platform.h"
#include "smmuv3/smmu.h"

namespace seed_dma {
namespace {

using deviso::Result;
using deviso::Status;
using deviso::drivers::DmaDirection;
using deviso::drivers::DmaMapping;
using deviso::drivers::DmaRegion;
using deviso::port::Log;
namespace qv = deviso::qemu_virt;
namespace edu = deviso::drivers::edu;

// What scripts/demo gives QEMU (examples/seed_dma/qemu-devices: -device edu,dma_mask=...): 40
// bits, enough for any RAM address of `virt` (and for every IOVA the driver is given here).
constexpr uint64_t kEduDmaMask = (uint64_t{1} << 40) - 1;

// ---- Zephyr's logging, as the seed uses it: LOG_MODULE_REGISTER(smmu_demo, ...) ---------------

void ZephyrLog(const char* level, const char* format, ...) __attribute__((format(printf, 2, 3)));
void ZephyrLog(const char* level, const char* format, ...) {
  char line[160];
  va_list args;
  va_start(args, format);
  std::vsnprintf(line, sizeof(line), format, args);
  va_end(args);
  Log("<%s> smmu_demo: %s\n", level, line);
}
#define LOG_ERR(...) ZephyrLog("err", __VA_ARGS__)
#define LOG_INF(...) ZephyrLog("inf", __VA_ARGS__)

int g_failures = 0;
int g_steps = 0;

bool Step(bool ok, const char* what) {
  ++g_steps;
  Log("[%s] %s\n", ok ? "PASS" : "FAIL", what);
  if (!ok) ++g_failures;
  return ok;
}

qv::DmaArena g_arena(/*coherent=*/true);  // QEMU virt PCIe is cache-coherent

// ---- The DMA-driver hook: identity over deviso_map()/deviso_unmap() ---------------------------

// Makes each transfer's pages reachable by the device for that transfer. Identity: the device
// address is the physical address. A range this program already mapped itself (the seed's
// deviso_map() of its window) is found in place and left to the program: deviso_map() refuses
// to map a page twice (-EEXIST), and its owner unmaps it.
class SeedMapper final : public deviso::drivers::DmaMapper {
 public:
  SeedMapper(const struct device* dev, uint32_t sid, size_t page)
      : dev_(dev), sid_(sid), page_(page) {}

  Result<DmaMapping> MapForDevice(uint64_t pa, size_t size, DmaDirection direction) override {
    Live* slot = nullptr;
    for (Live& l : live_) {
      if (l.size == 0) {
        slot = &l;
        break;
      }
    }
    if (slot == nullptr) return Status::NoMemory();
    const int rc = deviso_map(dev_, sid_, static_cast<uintptr_t>(pa), size);
    bool owned = rc == 0;
    if (rc == -EEXIST) {
      for (uint64_t p = pa; p < pa + size; p += page_) {
        uint64_t out = 0;
        if (deviso_iova_to_phys(dev_, sid_, p, &out) != 0 || out != p) {
          return Status::AlreadyExists();  // partly mapped, or not identity
        }
      }
      ++borrowed_;
    } else if (rc != 0) {
      return Status::FromC(rc);
    }
    *slot = Live{pa, size, owned};
    ++maps_;
    return DmaMapping{pa, pa, size, direction};
  }

  Status UnmapForDevice(const DmaMapping& mapping) override {
    for (Live& l : live_) {
      if (l.size != 0 && l.pa == mapping.pa && l.size == mapping.size) {
        if (l.owned) {
          DEVISO_TRY(Status::FromC(deviso_unmap(dev_, sid_, static_cast<uintptr_t>(l.pa), l.size)));
        }
        l = Live{};
        ++unmaps_;
        return Status::Ok();
      }
    }
    return Status::NotFound();
  }

  size_t page_size() const override { return page_; }

  int maps() const { return maps_; }
  int unmaps() const { return unmaps_; }
  int borrowed() const { return borrowed_; }

 private:
  struct Live {
    uint64_t pa = 0;
    size_t size = 0;  // 0: free slot
    bool owned = false;
  };
  const struct device* dev_;
  uint32_t sid_;
  size_t page_;
  Live live_[4];
  int maps_ = 0;
  int unmaps_ = 0;
  int borrowed_ = 0;
};

// ---- "DMA_0": the edu engine, brought up by device_get_binding()'s PCI probe -------------------

struct device g_dma0 = {"DMA_0"};
alignas(deviso::DirectMmio) unsigned char g_bar_storage[sizeof(deviso::DirectMmio)];
alignas(SeedMapper) unsigned char g_mapper_storage[sizeof(SeedMapper)];
alignas(edu::EduDma) unsigned char g_edu_storage[sizeof(edu::EduDma)];
deviso::DirectMmio* g_bar = nullptr;
SeedMapper* g_mapper = nullptr;

Status ProbeEdu(struct device& dev, const qv::PciFunction& fn, uint32_t sid, void* /*context*/) {
  const qv::PciBar& bar = fn.bars[edu::kMmioBar];
  if (bar.cpu_addr == 0 || bar.size < edu::kMmioBytes) return Status::NotFound();
  deviso_caps caps{};
  DEVISO_TRY(Status::FromC(deviso_get_caps(&dev, &caps)));
  const size_t page = static_cast<size_t>(caps.page_sizes & (~caps.page_sizes + 1));
  g_bar = new (g_bar_storage) deviso::DirectMmio(static_cast<uintptr_t>(bar.cpu_addr));
  g_mapper = new (g_mapper_storage) SeedMapper(&dev, sid, page);
  edu::EduOptions options;
  options.dma_mask = kEduDmaMask;
  auto* engine = new (g_edu_storage) edu::EduDma(*g_bar, *g_mapper, options);
  DEVISO_TRY(engine->Probe());
  engine->AttachTo(dev);
  return Status::Ok();
}

// ---- Faults ------------------------------------------------------------------------------------

struct FaultLog {
  uint32_t count = 0;
  uint32_t print_budget = 0;
  deviso_fault first{};
  void Reset() {
    const uint64_t daif = qv::arch::MaskInterrupts();
    count = 0;
    print_budget = 2;
    first = deviso_fault{};
    qv::arch::RestoreInterrupts(daif);
  }
};
FaultLog g_faults;

void OnFault(const deviso_fault* fault, void* user) {
  auto* log = static_cast<FaultLog*>(user);
  if (log->count == 0) log->first = *fault;
  ++log->count;
  if (log->print_budget > 0) {
    --log->print_budget;
    char line[192];
    deviso_fault_format(fault, line, sizeof(line));
    Log("       smmu event: %s\n", line);
  }
}

uint32_t FaultCount() { return __atomic_load_n(&g_faults.count, __ATOMIC_RELAXED); }

bool BlockedWriteAt(uint64_t lo, uint64_t hi, uint32_t sid) {
  return FaultCount() > 0 && g_faults.first.reason == DEVISO_FAULT_TRANSLATION &&
         g_faults.first.sid == sid && (g_faults.first.flags & DEVISO_FAULT_WRITE) != 0 &&
         (g_faults.first.flags & DEVISO_FAULT_ADDR_VALID) != 0 && g_faults.first.iova >= lo &&
         g_faults.first.iova < hi;
}

// ---- Helpers -----------------------------------------------------------------------------------

class Page {
 public:
  explicit Page(uint8_t fill) {
    Result<DmaRegion> r = g_arena.Alloc(kBytes, kBytes);
    if (r.ok()) {
      region_ = *r;
      std::memset(region_.cpu, fill, kBytes);
    }
  }
  ~Page() {
    if (region_.cpu != nullptr) g_arena.Free(region_);
  }
  Page(const Page&) = delete;
  Page& operator=(const Page&) = delete;
  static constexpr size_t kBytes = 4096;
  bool ok() const { return region_.cpu != nullptr; }
  uint8_t* data() const { return static_cast<uint8_t*>(region_.cpu); }
  uintptr_t pa() const { return static_cast<uintptr_t>(region_.device_addr); }
  bool All(uint8_t value) const {
    for (size_t i = 0; i < kBytes; ++i) {
      if (data()[i] != value) return false;
    }
    return true;
  }

 private:
  DmaRegion region_;
};

// What a rogue driver (or a compromised device) does: program edu directly, bypassing the
// driver's mapping hook, to write `count` bytes of its buffer to bus address `bus`. Returns
// whether edu reported the transfer done (its start bit cleared), which it always does: the
// SMMU's refusal never reaches it.
bool RogueWrite(uint64_t bus, uint64_t count) {
  namespace reg = edu::reg;
  g_bar->Write64(reg::DmaSource::kOffset, edu::kBufferAddr);
  g_bar->Write64(reg::DmaDest::kOffset, bus);
  g_bar->Write64(reg::DmaCount::kOffset, count);
  g_bar->Write64(reg::DmaCommand::kOffset, reg::DmaCommand{}.set_start(1).set_to_ram(1).raw);
  const deviso::port::Deadline deadline = deviso::port::Deadline::In(2'000'000'000);
  while (reg::DmaCommand{g_bar->Read64(reg::DmaCommand::kOffset)}.start() != 0) {
    if (deadline.Expired()) return false;
  }
  return true;
}

struct Completion {
  int calls = 0;
  int status = 1;
  uint32_t channel = 99;
  const struct device* dev = nullptr;
};

void OnDmaDone(const struct device* dev, void* user_data, uint32_t channel, int status) {
  auto* c = static_cast<Completion*>(user_data);
  ++c->calls;
  c->status = status;
  c->channel = channel;
  c->dev = dev;
}

// ---- The seed's program ------------------------------------------------------------------------

int Run(const qv::PlatformInfo& info) {
  Result<deviso::smmuv3::Smmuv3*> smmu_or = qv::SetupSmmu(info, g_arena);
  if (!smmu_or.ok()) {
    Log("SMMUv3 setup failed: %s (run with -M virt,iommu=smmuv3)\n", smmu_or.status().str());
    return 1;
  }
  deviso::smmuv3::Smmuv3& smmu = **smmu_or;
  Step(true, "SMMUv3 enabled with every StreamID blocked (default-deny)");
  qv::EnableInterrupts();

  // The board's part: enumerate PCI and make "DMA_0" known to device_get_binding().
  qv::PciHost pci(info.pci);
  if (!pci.Enumerate().ok()) return 1;
  qv::PciDeviceBinding binding;
  binding.dev = &g_dma0;
  binding.vendor_id = edu::kVendorId;
  binding.device_id = edu::kDeviceId;
  binding.probe = ProbeEdu;
  if (!qv::RegisterPciDevice(binding).ok()) return 1;
  qv::InitPciDevices(pci, smmu, info.smmu.phandle);

  // From here on, the seed's main(), line by line.
  const struct device* dma_dev;
  uint32_t sid = 0;
  uintptr_t base = 0;
  size_t size = 0x1000;

  dma_dev = device_get_binding("DMA_0");
  if (!Step(dma_dev != nullptr, "device_get_binding(\"DMA_0\") found the edu engine")) {
    LOG_ERR("Failed to get DMA device");
    return 1;
  }
  // Its StreamID from the devicetree's iommu-map, for the function enumeration found.
  const Result<uint32_t> sid_or = qv::DeviceStreamId(dma_dev);
  const Result<const qv::PciFunction*> fn = qv::DevicePciFunction(dma_dev);
  if (!sid_or.ok() || !fn.ok()) return 1;
  sid = *sid_or;
  LOG_INF("%s: edu %02x:%02x.%u (%04x:%04x), StreamID 0x%x from the iommu-map", dma_dev->name,
          (*fn)->bdf.bus, (*fn)->bdf.device, (*fn)->bdf.function, (*fn)->vendor_id,
          (*fn)->device_id, sid);

  if (!Step(deviso_ctx_alloc(dma_dev, sid) == 0, "deviso_ctx_alloc(dma_dev, sid)")) {
    LOG_ERR("Failed to allocate context");
    return 1;
  }
  if (deviso_set_fault_handler(dma_dev, sid, OnFault, &g_faults) != 0) {
    Log("the demo reports faults: build deviso with DEVISO_CONFIG_FAULT_REPORTS=ON\n");
    return 1;
  }
  // Only now may the device master the bus: its context exists and is empty.
  if (!qv::DeviceSetBusMaster(dma_dev, true).ok()) return 1;

  Page window(0xcc);  // the seed's buffer, from the DMA arena
  Page source(0);
  Page canary(0xcc);
  if (!window.ok() || !source.ok() || !canary.ok()) return 1;
  base = window.pa();
  for (size_t i = 0; i < Page::kBytes; ++i) {
    source.data()[i] = static_cast<uint8_t>(0x5a ^ (i * 7) ^ (i >> 8));
  }

  if (!Step(deviso_map(dma_dev, sid, base, size) == 0, "deviso_map(dma_dev, sid, base, size)")) {
    LOG_ERR("Failed to map DMA buffer");
    deviso_ctx_free(dma_dev, sid);
    return 1;
  }
  LOG_INF("mapped base 0x%lx size 0x%zx for StreamID 0x%x", static_cast<unsigned long>(base), size,
          sid);

  // Perform DMA operations: copy `source` into the window through edu.
  {
    Completion done;
    struct dma_block_config block = {};
    block.source_address = source.pa();
    block.dest_address = base;
    block.block_size = static_cast<uint32_t>(size);
    struct dma_config cfg = {};
    cfg.channel_direction = MEMORY_TO_MEMORY;
    cfg.block_count = 1;
    cfg.head_block = &block;
    cfg.user_data = &done;
    cfg.dma_callback = OnDmaDone;
    g_faults.Reset();
    const int configured = dma_config(dma_dev, 0, &cfg);
    const int started = configured == 0 ? dma_start(dma_dev, 0) : configured;
    smmu.HandleEvents();
    struct dma_status st = {};
    (void)dma_get_status(dma_dev, 0, &st);
    const bool same = std::memcmp(window.data(), source.data(), size) == 0;
    uint64_t pa = 0;
    const bool source_unmapped = deviso_iova_to_phys(dma_dev, sid, source.pa(), &pa) == -ENOENT;
    const bool window_mapped = deviso_iova_to_phys(dma_dev, sid, base, &pa) == 0 && pa == base;
    Log("       dma_start: %d, callback %d time(s) with status %d on channel %u; %llu bytes "
        "copied; %d mapping(s) for the transfer (%d already mapped by the program)\n",
        started, done.calls, done.status, done.channel,
        static_cast<unsigned long long>(st.total_copied), g_mapper->maps(), g_mapper->borrowed());
    if (started != 0) LOG_ERR("DMA transfer failed: %d", started);
    Step(started == 0 && done.calls == 1 && done.status == DMA_STATUS_COMPLETE &&
             done.dev == dma_dev && same && FaultCount() == 0,
         "DMA: dma_config + dma_start copied 4 KiB into the mapped buffer, every byte verified");
    Step(source_unmapped && window_mapped && g_mapper->maps() == g_mapper->unmaps(),
         "the driver mapped the transfer's source only while it ran (deviso_map/deviso_unmap)");
  }

  // And through the peripheral: source+0x100 -> edu buffer 0x40100, then the buffer -> the
  // window, 0xeff bytes each: the largest range ending where QEMU 7.2 still accepts it (0x40fff).
  {
    constexpr uint64_t kOffset = 0x100;
    constexpr uint32_t kBytes = 0xeff;
    Completion done;
    struct dma_block_config block = {};
    block.source_address = source.pa() + kOffset;
    block.dest_address = edu::kBufferAddr + kOffset;
    block.block_size = kBytes;
    struct dma_config cfg = {};
    cfg.channel_direction = MEMORY_TO_PERIPHERAL;
    cfg.block_count = 1;
    cfg.head_block = &block;
    cfg.user_data = &done;
    cfg.dma_callback = OnDmaDone;
    g_faults.Reset();
    int rc = dma_config(dma_dev, 0, &cfg);
    if (rc == 0) rc = dma_start(dma_dev, 0);
    block.source_address = edu::kBufferAddr + kOffset;
    block.dest_address = base;
    cfg.channel_direction = PERIPHERAL_TO_MEMORY;
    if (rc == 0) rc = dma_config(dma_dev, 0, &cfg);
    if (rc == 0) rc = dma_start(dma_dev, 0);
    smmu.HandleEvents();
    if (rc != 0) LOG_ERR("DMA transfer failed: %d", rc);
    Step(rc == 0 && done.calls == 2 && done.status == DMA_STATUS_COMPLETE &&
             std::memcmp(window.data(), source.data() + kOffset, kBytes) == 0 &&
             FaultCount() == 0 && g_mapper->maps() == g_mapper->unmaps(),
         "DMA: memory -> edu buffer -> memory (0xeff bytes at 0x40100) verified");
  }

  // A transfer outside the mapped window: blocked and reported, canary untouched.
  {
    g_faults.Reset();
    const bool completed = RogueWrite(canary.pa(), 256);
    smmu.HandleEvents();
    Log("       edu reported the rogue transfer %s (devices never see SMMU faults)\n",
        completed ? "complete" : "still running");
    Step(completed && canary.All(0xcc) &&
             BlockedWriteAt(canary.pa(), canary.pa() + Page::kBytes, sid),
         "DMA outside the mapped window blocked, translation fault reported, canary intact");
  }

  if (!Step(deviso_unmap(dma_dev, sid, base, size) == 0,
            "deviso_unmap(dma_dev, sid, base, size)")) {
    LOG_ERR("Failed to unmap DMA buffer");
  }

  // The window after deviso_unmap(): no stale IOTLB entry may let a DMA in.
  {
    std::memset(window.data(), 0xcc, Page::kBytes);
    g_faults.Reset();
    const bool completed = RogueWrite(base, 256);
    smmu.HandleEvents();
    Step(completed && window.All(0xcc) && BlockedWriteAt(base, base + size, sid),
         "DMA into the buffer after deviso_unmap blocked (no stale IOTLB), buffer intact");
  }

  (void)qv::DeviceSetBusMaster(dma_dev, false);
  if (!Step(deviso_ctx_free(dma_dev, sid) == 0, "deviso_ctx_free(dma_dev, sid)")) {
    LOG_ERR("Failed to free context");
  }
  const deviso::smmuv3::SmmuStats stats = smmu.stats();
  Log("SMMU: %llu commands, %llu events, %llu overflows\n",
      static_cast<unsigned long long>(stats.commands),
      static_cast<unsigned long long>(stats.events),
      static_cast<unsigned long long>(stats.event_overflows));
  return g_failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace seed_dma

int deviso::qemu_virt::AppMain(const PlatformInfo& info) {
  const int rc = seed_dma::Run(info);
  deviso::port::Log("seed_dma: %s (%d of %d steps passed)\n",
                    rc == 0 && seed_dma::g_failures == 0 ? "PASS" : "FAIL",
                    seed_dma::g_steps - seed_dma::g_failures, seed_dma::g_steps);
  return rc;
}
