// sub_page_dma: a QEMU test program (issue 15), not a demo. Sub-page DMA buffers through the
// DMA-driver hook's bounce pages (dma/bounce.h, docs/dma_pool.md "Sub-page buffers") on QEMU's
// `edu` DMA engine behind the SMMUv3 (-M virt,iommu=smmuv3) or a virtio-iommu (-M virt -device
// virtio-iommu-pci); the same image serves both, the devicetree decides.
//
// Each buffer is 100 bytes inside a page whose other bytes are a canary (0xcc): mapping that
// page would let the device reach the canary. The edu driver's hook is a
// dma::StaticContextDmaMapper with a BounceConfig (identity addresses, a static pool of four
// bounce pages), so the driver hands it the exact ranges and the device only ever reaches the
// bounce pages:
//   1. 100 bytes of RAM (in `src_page`) -> edu's buffer, through a bounce page the device reads;
//   2. edu's buffer -> 100 bytes of RAM (in `dst_page`), through a bounce page the device
//      writes, copied back after the unmap: the bytes arrive, every other byte of the page is
//      still the canary;
//   3. with a bounced mapping live, a rogue transfer (edu programmed directly) to the buffer's
//      own page is blocked and reported, one into the bounce page lands there and reaches the
//      buffer at the unmap, one past the bounce page is blocked.
// With `deviso.park` in /chosen/bootargs (QEMU's -append) it waits after the run for the test to
// read src_page, dst_page and probe_page from outside the guest (QMP pmemsave; qemu_test.sh
// memory), and for QEMU's trace to show that no translation of the edu's StreamID reached any of
// those pages (qemu_test.sh translations).
//
// Exit status 0 only when every step passed; the last console line says the same.

#include <libfdt.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#include "core/mmio.h"
#include "demo.h"
#include "device_binding.h"
#include "deviso/deviso.h"
#include "deviso/port/device.h"
#include "deviso/port/dma.h"
#include "deviso/port/os.h"
#include "deviso/registry.h"
#include "dma/block_pool.h"
#include "dma/bounce.h"
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

namespace sub_page_dma {
namespace {

using deviso::Result;
using deviso::Status;
using deviso::port::Log;
namespace qv = deviso::qemu_virt;
namespace edu = deviso::drivers::edu;
namespace dma = deviso::dma;
using deviso::demo::FaultLog;
using deviso::demo::RecordFault;
using deviso::drivers::DmaDirection;
using deviso::drivers::DmaMapping;

constexpr uint64_t kEduDmaMask = (uint64_t{1} << 40) - 1;  // as qemu-devices gives edu
constexpr size_t kPage = 4096;
constexpr uint8_t kCanary = 0xcc;
constexpr uint32_t kLen = 100;          // each buffer
constexpr size_t kSrcOffset = 0x40;     // in src_page
constexpr size_t kDstOffset = 0x80;     // in dst_page
constexpr size_t kProbeOffset = 0x200;  // in probe_page
constexpr uint64_t kEduOffset = 0x100;  // in edu's buffer

deviso::demo::Steps g_steps;
bool Step(bool ok, const char* what) { return g_steps.Step(ok, what); }

qv::DmaArena g_arena(/*coherent=*/true);  // QEMU virt PCIe is cache-coherent

// The program's pages (each holds one sub-page buffer and canaries) and the bounce pages: two
// static pools of page-sized blocks, identity-mapped on this port.
DEVISO_DMA_BLOCKS_DEFINE_STATIC(g_pages, kPage, 4, kPage);
DEVISO_DMA_BLOCKS_DEFINE_STATIC(g_bounce_pool, kPage, 4, kPage);

using Hook = dma::StaticContextDmaMapper<4>;

struct device g_dma0 = {"DMA_0"};
alignas(deviso::DirectMmio) unsigned char g_bar_storage[sizeof(deviso::DirectMmio)];
alignas(edu::EduDma) unsigned char g_edu_storage[sizeof(edu::EduDma)];
alignas(Hook) unsigned char g_hook_storage[sizeof(Hook)];
deviso::DirectMmio* g_bar = nullptr;
edu::EduDma* g_engine = nullptr;
Hook* g_hook = nullptr;
dma::ReservedWindows g_reserved;
FaultLog g_faults;

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

// The hook over (dev, sid)'s context: identity device addresses out of the PCI windows and the
// IOMMU's reserved regions, every sub-page buffer bounced through g_bounce_pool.
Status AttachHook(const qv::PlatformInfo& info, qv::PlatformIommu& iommu, const struct device* dev,
                  uint32_t sid) {
  DEVISO_ASSIGN_OR_RETURN(const deviso::Context ctx,
                          deviso::Registry::Default().FindContext(dev, sid));
  DEVISO_TRY(qv::AddPciReservedWindows(info, iommu.unit(), sid, g_reserved));
  dma::DeviceBinding binding;
  binding.context = ctx;
  binding.addressing = dma::Addressing::kIdentity;
  binding.reserved = &g_reserved;
  binding.coherent = true;
  binding.cache = qv::BoardCacheOps();
  DEVISO_TRY(binding.Validate());
  dma::BounceConfig bounce;
  bounce.pool = &g_bounce_pool;
  bounce.phys_to_cpu = [](void* /*user*/, deviso::Paddr pa) -> void* {
    return reinterpret_cast<void*>(static_cast<uintptr_t>(pa));  // identity on this port
  };
  DEVISO_TRY(bounce.Validate(ctx.page_size()));
  g_hook = new (g_hook_storage) Hook(binding, bounce);
  return g_engine->SetMapper(g_hook);
}

// One page of g_pages, all canary; back to the pool on destruction.
class Page {
 public:
  Page() {
    const Result<void*> block = g_pages.AllocContiguous(1);
    if (block.ok()) {
      data_ = static_cast<uint8_t*>(*block);
      std::memset(data_, kCanary, kPage);
    }
  }
  ~Page() {
    if (data_ != nullptr) (void)g_pages.FreeContiguous(data_, 1);
  }
  Page(const Page&) = delete;
  Page& operator=(const Page&) = delete;
  bool ok() const { return data_ != nullptr; }
  uint8_t* data() const { return data_; }
  uint64_t pa() const { return g_pages.PaOf(data_); }
  // Every byte outside [off, off + n) is the canary.
  bool CanaryBeside(size_t off, size_t n) const {
    for (size_t i = 0; i < kPage; ++i) {
      if ((i < off || i >= off + n) && data_[i] != kCanary) return false;
    }
    return true;
  }

 private:
  uint8_t* data_ = nullptr;
};

void Pattern(uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(0x31 + 5 * i);
}

// A rogue driver (or a compromised device): edu programmed directly, bypassing the hook, to
// write `count` bytes of its buffer at `from` to bus address `bus`. Whether edu reported the
// transfer done (it always does: the IOMMU's refusal never reaches it).
bool RogueWrite(uint64_t bus, uint64_t count, uint64_t from) {
  namespace reg = edu::reg;
  g_bar->Write64(reg::DmaSource::kOffset, from);
  g_bar->Write64(reg::DmaDest::kOffset, bus);
  g_bar->Write64(reg::DmaCount::kOffset, count);
  g_bar->Write64(reg::DmaCommand::kOffset, reg::DmaCommand{}.set_start(1).set_to_ram(1).raw);
  const deviso::port::Deadline deadline = deviso::port::Deadline::In(2'000'000'000);
  while (reg::DmaCommand{g_bar->Read64(reg::DmaCommand::kOffset)}.start() != 0) {
    if (deadline.Expired()) return false;
  }
  return true;
}

// One transfer through the driver (dma_config + dma_start), polled.
int Transfer(const struct device* dev, uint32_t direction, uint64_t src, uint64_t dst,
             uint32_t bytes) {
  struct dma_block_config block = {};
  block.source_address = src;
  block.dest_address = dst;
  block.block_size = bytes;
  struct dma_config cfg = {};
  cfg.channel_direction = direction;
  cfg.block_count = 1;
  cfg.head_block = &block;
  const int rc = dma_config(dev, 0, &cfg);
  return rc == 0 ? dma_start(dev, 0) : rc;
}

// A translation fault of `sid` in the page at `page`.
bool FaultInPage(uint64_t page, uint32_t sid) {
  const deviso_fault& f = g_faults.first;
  return g_faults.Count() > 0 && f.sid == sid && (f.flags & DEVISO_FAULT_ADDR_VALID) != 0 &&
         (f.iova & ~uint64_t{kPage - 1}) == page;
}

void Dump(const char* name, uint64_t pa, size_t bytes) {
  Log("[DUMP] %s 0x%llx 0x%llx\n", name, static_cast<unsigned long long>(pa),
      static_cast<unsigned long long>(bytes));
}

int Run(const qv::PlatformInfo& info) {
  qv::PciHost pci(info.pci);
  qv::PlatformIommu* const iommu_or = deviso::demo::EnumerateAndSetupIommu(info, g_arena, pci);
  if (iommu_or == nullptr) return 1;
  qv::PlatformIommu& iommu = *iommu_or;
  Log("deviso sub_page_dma on \"%s\", IOMMU %s\n", info.model, iommu.kind());
  qv::EnableInterrupts();

  qv::PciDriverBinding binding;
  binding.dev = &g_dma0;
  binding.vendor_id = edu::kVendorId;
  binding.device_id = edu::kDeviceId;
  binding.probe = ProbeEdu;
  if (!qv::RegisterPciDevice(binding).ok()) return 1;
  qv::InitPciDevices(info, pci, iommu);

  const struct device* dev = device_get_binding("DMA_0");
  if (!Step(dev != nullptr, "device_get_binding(\"DMA_0\") found the edu engine")) return 1;
  const Result<uint32_t> sid_or = qv::DeviceStreamId(dev);
  const Result<const qv::PciFunction*> fn = qv::DevicePciFunction(dev);
  if (!sid_or.ok() || !fn.ok()) return 1;
  const uint32_t sid = *sid_or;
  Log("       %s: edu %02x:%02x.%u (%04x:%04x), StreamID 0x%x from the iommu-map\n", dev->name,
      (*fn)->bdf.bus, (*fn)->bdf.device, (*fn)->bdf.function, (*fn)->vendor_id, (*fn)->device_id,
      sid);
  if (!Step(deviso_ctx_alloc(dev, sid) == 0, "deviso_ctx_alloc(DMA_0, sid)")) return 1;
  if (deviso_set_fault_handler(dev, sid, RecordFault, &g_faults) != 0) {
    Log("the test reports faults: build deviso with DEVISO_CONFIG_FAULT_REPORTS=ON\n");
    return 1;
  }
  if (const Status s = AttachHook(info, iommu, dev, sid); !s.ok()) {
    Log("DMA-driver hook: %s\n", s.str());
    return 1;
  }
  if (!qv::DeviceSetBusMaster(dev, true).ok()) return 1;
  Log("       bounce pool 0x%llx, %zu pages\n",
      static_cast<unsigned long long>(g_bounce_pool.buffer_pa()), g_bounce_pool.block_count());

  Page src_page;
  Page dst_page;
  Page probe_page;
  if (!src_page.ok() || !dst_page.ok() || !probe_page.ok()) return 1;
  uint8_t* const src = src_page.data() + kSrcOffset;
  uint8_t* const dst = dst_page.data() + kDstOffset;
  Pattern(src, kLen);
  Log("       src 0x%llx, dst 0x%llx, probe 0x%llx: %u-byte buffers in canary pages\n",
      static_cast<unsigned long long>(src_page.pa() + kSrcOffset),
      static_cast<unsigned long long>(dst_page.pa() + kDstOffset),
      static_cast<unsigned long long>(probe_page.pa() + kProbeOffset), kLen);

  // 1 and 2: RAM -> edu -> RAM, 100 bytes each way.
  {
    g_faults.Reset();
    const dma::ContextDmaMapper::Counters before = g_hook->counters();
    int rc = Transfer(dev, MEMORY_TO_PERIPHERAL, src_page.pa() + kSrcOffset,
                      edu::kBufferAddr + kEduOffset, kLen);
    if (rc == 0) {
      rc = Transfer(dev, PERIPHERAL_TO_MEMORY, edu::kBufferAddr + kEduOffset,
                    dst_page.pa() + kDstOffset, kLen);
    }
    iommu.DrainEvents();
    const dma::ContextDmaMapper::Counters after = g_hook->counters();
    Log("       transfers: %d; %llu bounced mapping(s), %llu released\n", rc,
        static_cast<unsigned long long>(after.bounces - before.bounces),
        static_cast<unsigned long long>(after.releases - before.releases));
    Step(rc == 0 && g_faults.Count() == 0 && after.bounces - before.bounces == 2 &&
             after.releases - before.releases == 2 && g_hook->live_mappings() == 0 &&
             g_bounce_pool.free_blocks() == g_bounce_pool.block_count(),
         "two 100-byte transfers through bounce pages, released after each");
    Step(std::memcmp(dst, src, kLen) == 0,
         "the 100 bytes arrived: memory -> edu -> memory through bounce pages");
    Step(src_page.CanaryBeside(kSrcOffset, kLen) && dst_page.CanaryBeside(kDstOffset, kLen),
         "every other byte of both pages is still the canary");
    uint64_t pa = 0;
    Step(deviso_iova_to_phys(dev, sid, src_page.pa(), &pa) == -ENOENT &&
             deviso_iova_to_phys(dev, sid, dst_page.pa(), &pa) == -ENOENT,
         "neither buffer's page was ever left mapped");
  }

  // 3: a bounced mapping live, and a rogue transfer on each side of it.
  {
    const Result<DmaMapping> m =
        g_hook->MapForDevice(probe_page.pa() + kProbeOffset, kLen, DmaDirection::kFromDevice);
    if (!Step(m.ok() && m->device_addr != probe_page.pa(),
              "a live bounced mapping of the probe buffer, at a bounce page")) {
      return 1;
    }
    const bool direction_known = iommu.reports_translation_fault_direction();
    g_faults.Reset();
    const bool done1 = RogueWrite(probe_page.pa(), 256, edu::kBufferAddr + kEduOffset);
    iommu.DrainEvents();
    Step(done1 && probe_page.CanaryBeside(0, 0) && FaultInPage(probe_page.pa(), sid) &&
             (!direction_known || (g_faults.first.flags & DEVISO_FAULT_WRITE) != 0),
         "DMA to the buffer's own page blocked and reported, canary intact");
    g_faults.Reset();
    const bool done2 = RogueWrite(m->device_addr + kPage, 64, edu::kBufferAddr + kEduOffset);
    iommu.DrainEvents();
    Step(done2 && FaultInPage(m->device_addr + kPage, sid),
         "DMA past the bounce page blocked and reported");
    g_faults.Reset();
    const bool done3 = RogueWrite(m->device_addr, kLen, edu::kBufferAddr + kEduOffset);
    iommu.DrainEvents();
    const bool not_yet = probe_page.CanaryBeside(0, 0);
    const Status unmapped = g_hook->UnmapForDevice(*m);
    Step(done3 && g_faults.Count() == 0 && not_yet && unmapped.ok() &&
             std::memcmp(probe_page.data() + kProbeOffset, src, kLen) == 0 &&
             probe_page.CanaryBeside(kProbeOffset, kLen),
         "DMA into the bounce page reached the buffer at the unmap, and nothing else");
    if (!direction_known) {
      Log("[NOTE] the blocked transfers prove less on %s: its translation faults carry no "
          "access direction (the canaries are checked all the same)\n",
          iommu.kind());
    }
  }

  (void)qv::DeviceSetBusMaster(dev, false);
  (void)g_engine->SetMapper(nullptr);
  Step(deviso_ctx_free(dev, sid) == 0, "deviso_ctx_free(DMA_0, sid)");
  Dump("src_page", src_page.pa(), kPage);
  Dump("dst_page", dst_page.pa(), kPage);
  Dump("probe_page", probe_page.pa(), kPage);
  Log("       pages: src 0x%llx dst 0x%llx probe 0x%llx\n",
      static_cast<unsigned long long>(src_page.pa()),
      static_cast<unsigned long long>(dst_page.pa()),
      static_cast<unsigned long long>(probe_page.pa()));
  iommu.PrintStats();
  // The pages stay as they are (the pool neither clears nor reuses them after this).
  return g_steps.failed() == 0 ? 0 : 1;
}

bool ParkRequested(const void* dtb) {
  if (dtb == nullptr) return false;
  const int chosen = fdt_path_offset(dtb, "/chosen");
  int len = 0;
  const char* args =
      chosen >= 0 ? static_cast<const char*>(fdt_getprop(dtb, chosen, "bootargs", &len)) : nullptr;
  return args != nullptr && len > 0 && std::strstr(args, "deviso.park") != nullptr;
}

constexpr uint64_t kParkNs = 120'000'000'000;  // only "no hang"

}  // namespace
}  // namespace sub_page_dma

int deviso::qemu_virt::AppMain(const PlatformInfo& info) {
  const int rc = sub_page_dma::Run(info);
  deviso::port::Log("sub_page_dma: %s (%d of %d steps passed)\n",
                    rc == 0 && sub_page_dma::g_steps.failed() == 0 ? "PASS" : "FAIL",
                    sub_page_dma::g_steps.passed(), sub_page_dma::g_steps.total());
  if (sub_page_dma::ParkRequested(info.dtb)) {
    deviso::port::Log("[DUMP] ready: waiting for the test to read memory and quit QEMU\n");
    const deviso::port::Deadline deadline = deviso::port::Deadline::In(sub_page_dma::kParkNs);
    while (!deadline.Expired()) {
      asm volatile("yield");
    }
    deviso::port::Log("[DUMP] nobody read memory within %llu s\n",
                      static_cast<unsigned long long>(sub_page_dma::kParkNs / 1'000'000'000));
    return 1;
  }
  return rc;
}
