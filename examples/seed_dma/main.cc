// seed_dma: the seed README's own example, literally, on QEMU's `virt` board with its IOMMU:
// the SMMUv3 (-M virt,iommu=smmuv3) or a virtio-iommu (-M virt -device virtio-iommu-pci). The
// same image serves both: the devicetree alone says which IOMMU the engine sits behind.
//
// The seed's program (smmu_readme.md, "Example") looks up "DMA_0", calls deviso_ctx_alloc()
// and deviso_map(), "performs DMA operations", then deviso_unmap() and deviso_ctx_free(),
// logging with Zephyr's LOG_ERR. This is that program, with its messages, made to run:
//   - "DMA_0" is QEMU's `edu` PCI device, driven by src/drivers/edu behind Zephyr's DMA API;
//     device_get_binding() finds it by PCI enumeration and binds it to the IOMMU through the
//     devicetree module (platform device_binding.h);
//   - its StreamID is the one the devicetree's iommu-map gives the function enumeration found,
//     not `sid = 0`; its buffer `base` is a block of a static DMA pool (dma::BlockPool, as
//     Zephyr's sys_mem_blocks), not 0x80000000 (which is not RAM on a 512 MiB `virt`);
//   - "Perform DMA operations" is a real copy with dma_config()/dma_start(), every byte
//     verified. The driver maps each transfer's RAM through deviso's DMA-driver hook,
//     dma::StaticContextDmaMapper over the device's context (identity, keeping out of the PCI
//     windows and the IOMMU's reserved regions). The program still deviso_map()s `base` itself,
//     as the seed does; the hook's binding adopts that mapping (DeviceBinding::
//     adopt_identity_mappings) instead of failing on it, and maps only the rest, per transfer;
// and then, as a rogue driver or a compromised device would, a transfer outside the mapped
// window (and one into the window after deviso_unmap()) must be blocked: the IOMMU's fault is
// decoded and printed and the destination canary stays untouched. edu never learns of the
// fault: its transfer "completes". Where a check proves less on one IOMMU (QEMU's virtio-iommu
// keeps no IOTLB, reports unmapped addresses without the access direction, and drops faults
// beyond its event queue silently), the console says so in a [NOTE] line.
//
// Exit status 0 only when every step passed; the last console line says the same.

#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#include "arch.h"
#include "core/mmio.h"
#include "demo.h"
#include "device_binding.h"
#include "deviso/deviso.h"
#include "deviso/port/device.h"
#include "deviso/port/dma.h"
#include "deviso/port/os.h"
#include "deviso/registry.h"
#include "dma/block_pool.h"
#include "dma/device_binding.h"
#include "dma/dma_mapper.h"
#include "dma/iova_allocator.h"
#include "dma_arena.h"
#include "dma_platform.h"
#include "drivers/edu/edu.h"
#include "drivers/edu/edu_hw.h"
#include "gic.h"
#include "iommu_demo.h"
#include "iommu_platform.h"
#include "pci.h"
#include "platform.h"

namespace seed_dma {
namespace {

using deviso::Result;
using deviso::Status;
using deviso::port::Log;
namespace qv = deviso::qemu_virt;
namespace edu = deviso::drivers::edu;
namespace dma = deviso::dma;
using deviso::demo::FaultLog;
using deviso::demo::RecordFault;

// What scripts/demo gives QEMU (examples/seed_dma/qemu-devices: -device edu,dma_mask=...): 40
// bits, enough for any RAM address of `virt` (and for every device address the hook returns).
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

deviso::demo::Steps g_steps;

bool Step(bool ok, const char* what) { return g_steps.Step(ok, what); }

// The IOMMU's own structures (queues, stream tables) come from the platform's arena; no buffer
// the device is given does.
qv::DmaArena g_arena(/*coherent=*/true);  // QEMU virt PCIe is cache-coherent

// The DMA buffers: a static pool of page-sized blocks (Zephyr's SYS_MEM_BLOCKS_DEFINE_STATIC),
// identity-mapped on this port (physical address = pointer). Blocks never share a page.
constexpr size_t kBlockBytes = 4096;
DEVISO_DMA_BLOCKS_DEFINE_STATIC(g_dma_pool, kBlockBytes, 8, kBlockBytes);

// ---- "DMA_0": the edu engine, brought up by device_get_binding()'s PCI probe -------------------

// The DMA-driver hook over DMA_0's context: it exists once the program has allocated that
// context (deviso_ctx_alloc), so it is built then and attached to the running driver.
using Hook = dma::StaticContextDmaMapper<4>;

struct device g_dma0 = {"DMA_0"};
alignas(deviso::DirectMmio) unsigned char g_bar_storage[sizeof(deviso::DirectMmio)];
alignas(edu::EduDma) unsigned char g_edu_storage[sizeof(edu::EduDma)];
alignas(Hook) unsigned char g_hook_storage[sizeof(Hook)];
deviso::DirectMmio* g_bar = nullptr;
edu::EduDma* g_engine = nullptr;
Hook* g_hook = nullptr;
dma::ReservedWindows g_reserved;

Status ProbeEdu(struct device& dev, const qv::PciFunction& fn, uint32_t /*sid*/,
                void* /*context*/) {
  const qv::PciBar& bar = fn.bars[edu::kMmioBar];
  if (bar.cpu_addr == 0 || bar.size < edu::kMmioBytes) return Status::NotFound();
  g_bar = new (g_bar_storage) deviso::DirectMmio(static_cast<uintptr_t>(bar.cpu_addr));
  edu::EduOptions options;
  options.dma_mask = kEduDmaMask;
  auto* engine = new (g_edu_storage) edu::EduDma(*g_bar, options);
  DEVISO_TRY(engine->Probe());
  engine->AttachTo(dev);
  g_engine = engine;
  return Status::Ok();
}

// Builds the hook over (dev, sid)'s context and attaches it to the driver: identity, out of
// the PCI windows and the IOMMU's reserved regions, adopting what the program maps itself.
Status AttachHook(const qv::PlatformInfo& info, qv::PlatformIommu& iommu, const struct device* dev,
                  uint32_t sid) {
  DEVISO_ASSIGN_OR_RETURN(const deviso::Context ctx,
                          deviso::Registry::Default().FindContext(dev, sid));
  DEVISO_TRY(qv::AddPciReservedWindows(info, iommu.unit(), sid, g_reserved));
  dma::DeviceBinding binding;
  binding.context = ctx;
  binding.addressing = dma::Addressing::kIdentity;
  binding.reserved = &g_reserved;
  binding.coherent = true;  // QEMU virt PCIe
  binding.cache = qv::BoardCacheOps();
  binding.adopt_identity_mappings = deviso::kPermReadWrite;  // what deviso_map() grants
  DEVISO_TRY(binding.Validate());
  g_hook = new (g_hook_storage) Hook(binding);
  return g_engine->SetMapper(g_hook);
}

// ---- Faults ------------------------------------------------------------------------------------

// What the fault handlers (RecordFault) saw since the last Reset(); written from the IOMMU's
// interrupt.
FaultLog g_faults;    // DMA_0's context
FaultLog g_unrouted;  // streams with no context (none is expected)

uint32_t FaultCount(const FaultLog& log = g_faults) { return log.Count(); }

// A translation fault of `sid` in [lo, hi), and a write where the IOMMU reports the direction
// of a translation fault (`direction_known`; QEMU's virtio-iommu does not).
bool BlockedWriteAt(uint64_t lo, uint64_t hi, uint32_t sid, bool direction_known) {
  const deviso_fault& f = g_faults.first;
  return FaultCount() > 0 && f.reason == DEVISO_FAULT_TRANSLATION && f.sid == sid &&
         (!direction_known || (f.flags & DEVISO_FAULT_WRITE) != 0) &&
         (f.flags & DEVISO_FAULT_ADDR_VALID) != 0 && f.iova >= lo && f.iova < hi;
}

// ---- Helpers -----------------------------------------------------------------------------------

// One block of the DMA pool, filled with `fill`; freed (back to the pool) on destruction.
class Page {
 public:
  explicit Page(uint8_t fill) {
    const Result<void*> block = g_dma_pool.AllocContiguous(1);
    if (block.ok()) {
      data_ = static_cast<uint8_t*>(*block);
      std::memset(data_, fill, kBytes);
    }
  }
  ~Page() {
    if (data_ != nullptr) (void)g_dma_pool.FreeContiguous(data_, 1);
  }
  Page(const Page&) = delete;
  Page& operator=(const Page&) = delete;
  static constexpr size_t kBytes = kBlockBytes;
  bool ok() const { return data_ != nullptr; }
  uint8_t* data() const { return data_; }
  uintptr_t pa() const { return static_cast<uintptr_t>(g_dma_pool.PaOf(data_)); }
  bool All(uint8_t value) const {
    for (size_t i = 0; i < kBytes; ++i) {
      if (data_[i] != value) return false;
    }
    return true;
  }

 private:
  uint8_t* data_ = nullptr;
};

// ---- The engine's legacy interrupt ------------------------------------------------------------

// Interrupts edu raised and the GIC delivered (from the interrupt handler).
uint32_t g_intx_taken = 0;

// INTx is level-triggered: acknowledge at the device, or the line stays asserted.
void OnEduIntx(void* /*ctx*/) {
  namespace reg = edu::reg;
  const uint32_t status = g_bar->Read32(reg::IrqStatus::kOffset);
  g_bar->Write32(reg::IrqStatus::kAckOffset, status);
  __atomic_add_fetch(&g_intx_taken, 1, __ATOMIC_RELAXED);
}

// Raises edu's interrupt (its raise register; no DMA) with INTx enabled and the GIC interrupt
// the devicetree's interrupt-map gives for the function's INTA taken: whether it arrived there,
// once, and was acknowledged. The interrupt is disabled again afterwards.
bool IntxArrivesWhereTheDevicetreeSays(qv::PciHost& pci, const qv::PciFunction& fn) {
  namespace reg = edu::reg;
  const Result<qv::IrqSpec> irq = pci.IntxIrq(fn.bdf);
  if (!irq.ok()) {
    Log("       INTx: %s (interrupt-map)\n", irq.status().str());
    return false;
  }
  if (!qv::RegisterIrq(irq->intid, &OnEduIntx, nullptr, irq->edge).ok() ||
      !qv::EnableIrq(irq->intid).ok() || !pci.EnableIntx(fn.bdf).ok()) {
    return false;
  }
  g_bar->Write32(reg::IrqStatus::kRaiseOffset, 1);
  const deviso::port::Deadline deadline = deviso::port::Deadline::In(100'000'000);
  while (__atomic_load_n(&g_intx_taken, __ATOMIC_RELAXED) == 0 && !deadline.Expired()) {
  }
  const uint32_t taken = __atomic_load_n(&g_intx_taken, __ATOMIC_RELAXED);
  const uint32_t left = g_bar->Read32(reg::IrqStatus::kOffset);
  (void)pci.DisableIntx(fn.bdf);
  (void)qv::DisableIrq(irq->intid);
  (void)qv::UnregisterIrq(irq->intid);
  Log("       INTx: INTA of %02x:%02x.%u -> GIC INTID %u, %s (interrupt-map): taken %u time(s), "
      "status 0x%x after the acknowledge\n",
      fn.bdf.bus, fn.bdf.device, fn.bdf.function, static_cast<unsigned>(irq->intid),
      irq->edge ? "edge" : "level", static_cast<unsigned>(taken), static_cast<unsigned>(left));
  return taken == 1 && left == 0;
}

// What a rogue driver (or a compromised device) does: program edu directly, bypassing the
// driver's mapping hook, to write `count` bytes of its buffer to bus address `bus`. Returns
// whether edu reported the transfer done (its start bit cleared), which it always does: the
// IOMMU's refusal never reaches it.
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

// The hook's work since `before`: transfers mapped (by it or adopted), adopted, released.
struct HookWork {
  uint64_t mapped = 0;
  uint64_t adopted = 0;
  uint64_t released = 0;
};
HookWork HookWorkSince(const dma::ContextDmaMapper::Counters& before) {
  const dma::ContextDmaMapper::Counters now = g_hook->counters();
  return {now.maps + now.adoptions - before.maps - before.adoptions,
          now.adoptions - before.adoptions, now.releases - before.releases};
}

// ---- The seed's program ------------------------------------------------------------------------

int Run(const qv::PlatformInfo& info) {
  qv::PciHost pci(info.pci);
  qv::PlatformIommu* const iommu_or = deviso::demo::EnumerateAndSetupIommu(info, g_arena, pci);
  if (iommu_or == nullptr) return 1;
  qv::PlatformIommu& iommu = *iommu_or;
  Log("deviso seed_dma on \"%s\", IOMMU %s\n", info.model, iommu.kind());
  iommu.Describe();
  Step(true, "IOMMU enabled with every StreamID blocked (default-deny)");
  g_unrouted.Reset();
  if (const Status s = iommu.SetUnroutedFaultHandler(&RecordFault, &g_unrouted); !s.ok()) {
    Log("the demo reports faults: build deviso with DEVISO_CONFIG_FAULT_REPORTS=ON (%s)\n",
        s.str());
    return 1;
  }
  qv::EnableInterrupts();

  // The board's part: make "DMA_0" known to device_get_binding(), bound from the devicetree.
  qv::PciDriverBinding binding;
  binding.dev = &g_dma0;
  binding.vendor_id = edu::kVendorId;
  binding.device_id = edu::kDeviceId;
  binding.probe = ProbeEdu;
  if (!qv::RegisterPciDevice(binding).ok()) return 1;
  qv::InitPciDevices(info, pci, iommu);

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
  if (const qv::Bdf alias = (*fn)->dma_alias; !(alias == (*fn)->bdf)) {
    // Behind a conventional PCI bus its DMA carries a bridge's requester ID (pci.h): that is
    // what was bound, and every device behind that bridge shares it.
    Log("       DMA requester ID %02x:%02x.%u: the alias of the bridge above it\n", alias.bus,
        alias.device, alias.function);
  }

  // Its legacy interrupt, routed as the devicetree's interrupt-map says.
  Step(IntxArrivesWhereTheDevicetreeSays(pci, **fn),
       "edu's INTx taken at the GIC interrupt the devicetree's interrupt-map gives");

  if (!Step(deviso_ctx_alloc(dma_dev, sid) == 0, "deviso_ctx_alloc(dma_dev, sid)")) {
    LOG_ERR("Failed to allocate context");
    return 1;
  }
  if (deviso_set_fault_handler(dma_dev, sid, RecordFault, &g_faults) != 0) {
    Log("the demo reports faults: build deviso with DEVISO_CONFIG_FAULT_REPORTS=ON\n");
    return 1;
  }
  // The driver's DMA-driver hook, over the context that now exists.
  if (const Status s = AttachHook(info, iommu, dma_dev, sid); !s.ok()) {
    Log("DMA-driver hook for %s: %s\n", dma_dev->name, s.str());
    return 1;
  }
  Log("       hook: dma::StaticContextDmaMapper, identity, %zu reserved window(s) kept out\n",
      g_reserved.windows().size());
  // Only now may the device master the bus: its context exists and is empty.
  if (!qv::DeviceSetBusMaster(dma_dev, true).ok()) return 1;

  Page window(0xcc);  // the seed's buffer: a block of the DMA pool
  Page source(0);
  Page canary(0xcc);
  if (!window.ok() || !source.ok() || !canary.ok()) return 1;
  base = window.pa();
  for (size_t i = 0; i < Page::kBytes; ++i) {
    source.data()[i] = static_cast<uint8_t>(0x5a ^ (i * 7) ^ (i >> 8));
  }
  Log("       base 0x%lx, source 0x%lx, canary 0x%lx: blocks of the static DMA pool (%zu of %zu "
      "in use)\n",
      static_cast<unsigned long>(base), static_cast<unsigned long>(source.pa()),
      static_cast<unsigned long>(canary.pa()), g_dma_pool.allocated_blocks(),
      g_dma_pool.block_count());

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
    const dma::ContextDmaMapper::Counters before = g_hook->counters();
    const int configured = dma_config(dma_dev, 0, &cfg);
    const int started = configured == 0 ? dma_start(dma_dev, 0) : configured;
    iommu.DrainEvents();
    const HookWork work = HookWorkSince(before);
    struct dma_status st = {};
    (void)dma_get_status(dma_dev, 0, &st);
    const bool same = std::memcmp(window.data(), source.data(), size) == 0;
    uint64_t pa = 0;
    const bool source_unmapped = deviso_iova_to_phys(dma_dev, sid, source.pa(), &pa) == -ENOENT;
    const bool window_mapped = deviso_iova_to_phys(dma_dev, sid, base, &pa) == 0 && pa == base;
    Log("       dma_start: %d, callback %d time(s) with status %d on channel %u; %llu bytes "
        "copied; %llu mapping(s) for the transfer (%llu already mapped by the program)\n",
        started, done.calls, done.status, done.channel,
        static_cast<unsigned long long>(st.total_copied),
        static_cast<unsigned long long>(work.mapped),
        static_cast<unsigned long long>(work.adopted));
    if (started != 0) LOG_ERR("DMA transfer failed: %d", started);
    Step(started == 0 && done.calls == 1 && done.status == DMA_STATUS_COMPLETE &&
             done.dev == dma_dev && same && FaultCount() == 0,
         "DMA: dma_config + dma_start copied 4 KiB into the mapped buffer, every byte verified");
    Step(source_unmapped && window_mapped && work.mapped == 2 && work.adopted == 1 &&
             work.released == work.mapped && g_hook->live_mappings() == 0,
         "the driver mapped the transfer's source only while it ran (deviso's DMA-driver hook)");
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
    const dma::ContextDmaMapper::Counters before = g_hook->counters();
    int rc = dma_config(dma_dev, 0, &cfg);
    if (rc == 0) rc = dma_start(dma_dev, 0);
    block.source_address = edu::kBufferAddr + kOffset;
    block.dest_address = base;
    cfg.channel_direction = PERIPHERAL_TO_MEMORY;
    if (rc == 0) rc = dma_config(dma_dev, 0, &cfg);
    if (rc == 0) rc = dma_start(dma_dev, 0);
    iommu.DrainEvents();
    const HookWork work = HookWorkSince(before);
    if (rc != 0) LOG_ERR("DMA transfer failed: %d", rc);
    Step(rc == 0 && done.calls == 2 && done.status == DMA_STATUS_COMPLETE &&
             std::memcmp(window.data(), source.data() + kOffset, kBytes) == 0 &&
             FaultCount() == 0 && work.mapped == 2 && work.released == 2 &&
             g_hook->live_mappings() == 0,
         "DMA: memory -> edu buffer -> memory (0xeff bytes at 0x40100) verified");
  }

  // A transfer outside the mapped window: blocked and reported, canary untouched.
  const bool direction_known = iommu.reports_translation_fault_direction();
  {
    g_faults.Reset();
    const bool completed = RogueWrite(canary.pa(), 256);
    iommu.DrainEvents();
    Log("       edu reported the rogue transfer %s (devices never see IOMMU faults)\n",
        completed ? "complete" : "still running");
    if (!direction_known) {
      Log("[NOTE] the blocked transfers prove less on %s: its translation faults carry no "
          "access direction, so the fault is not checked to be a write (the canary still is)\n",
          iommu.kind());
    }
    Step(completed && canary.All(0xcc) &&
             BlockedWriteAt(canary.pa(), canary.pa() + Page::kBytes, sid, direction_known),
         "DMA outside the mapped window blocked, translation fault reported, canary intact");
  }

  if (!Step(deviso_unmap(dma_dev, sid, base, size) == 0,
            "deviso_unmap(dma_dev, sid, base, size)")) {
    LOG_ERR("Failed to unmap DMA buffer");
  }

  // The window after deviso_unmap(): no stale IOTLB entry may let a DMA in.
  {
    if (!iommu.caches_translations()) {
      Log("[NOTE] the DMA after deviso_unmap proves less on %s: it keeps no translation "
          "cache, so a missing invalidation could not let it through; it still shows the "
          "unmap took effect\n",
          iommu.kind());
    }
    std::memset(window.data(), 0xcc, Page::kBytes);
    g_faults.Reset();
    const bool completed = RogueWrite(base, 256);
    iommu.DrainEvents();
    Step(completed && window.All(0xcc) && BlockedWriteAt(base, base + size, sid, direction_known),
         "DMA into the buffer after deviso_unmap blocked (no stale IOTLB), buffer intact");
  }

  (void)qv::DeviceSetBusMaster(dma_dev, false);
  // The hook goes before the context it maps into.
  (void)g_engine->SetMapper(nullptr);
  if (!Step(deviso_ctx_free(dma_dev, sid) == 0, "deviso_ctx_free(dma_dev, sid)")) {
    LOG_ERR("Failed to free context");
  }
  if (FaultCount(g_unrouted) != 0) {
    Log("       %u fault(s) of streams without a context\n", FaultCount(g_unrouted));
  }
  iommu.PrintStats();
  if (!iommu.reports_fault_overflow()) {
    Log("[NOTE] %s drops faults beyond its event queue silently: fault counts are lower "
        "bounds\n",
        iommu.kind());
  }
  return g_steps.failed() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace seed_dma

int deviso::qemu_virt::AppMain(const PlatformInfo& info) {
  const int rc = seed_dma::Run(info);
  deviso::port::Log("seed_dma: %s (%d of %d steps passed)\n",
                    rc == 0 && seed_dma::g_steps.failed() == 0 ? "PASS" : "FAIL",
                    seed_dma::g_steps.passed(), seed_dma::g_steps.total());
  return rc;
}
