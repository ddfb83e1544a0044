// hello_platform: the QEMU `virt` bring-up program.
//
// Boots (platform/qemu-virt-aarch64), prints what the platform found (board, GIC, SMMU with its
// ID registers, PCI functions with their StreamIDs), checks the interrupt path, then drives the
// AHCI disk scripts/demo attaches: IDENTIFY, pattern reads (several PRDs per command), a write
// and read-back, a failing command (error recovery) and a command that never completes
// (timeout recovery). Exits 0 when every check passed, 1 otherwise. The SMMU stays disabled
// (SMMUEN=0): all DMA bypasses it.

#include <cstdint>
#include <cstring>

#include "arch.h"
#include "core/mmio.h"
#include "deviso/port/os.h"
#include "disk_pattern.h"
#include "dma_arena.h"
#include "drivers/ahci/ahci.h"
#include "gic.h"
#include "pci.h"
#include "platform.h"

namespace hello_platform {
namespace {

using deviso::Result;
using deviso::Status;
using deviso::drivers::DmaRegion;
using deviso::drivers::DmaSegment;
using deviso::port::Log;
namespace qv = deviso::qemu_virt;
namespace ahci = deviso::drivers::ahci;
using deviso::demo::DiskWord;
using deviso::demo::kSectorBytes;
using deviso::demo::kWordsPerSector;
using deviso::demo::WrittenWord;

constexpr uint16_t kIntelVendor = 0x8086;
constexpr uint16_t kIch9Ahci = 0x2922;
constexpr unsigned kAbarIndex = 5;  // AHCI 1.3.1 2.1.11: ABAR is BAR5

// SMMUv3 (IHI0070) 6.3: register offsets in page 0.
constexpr size_t kSmmuIdr0 = 0x00;
constexpr size_t kSmmuIdr1 = 0x04;
constexpr size_t kSmmuIdr5 = 0x14;
constexpr size_t kSmmuAidr = 0x1c;
constexpr size_t kSmmuCr0 = 0x20;

int g_failures = 0;

void Check(bool ok, const char* what) {
  Log("  [%s] %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) {
    ++g_failures;
  }
}

void CheckStatus(Status s, const char* what) {
  if (!s.ok()) {
    Log("  [FAIL] %s: %s\n", what, s.str());
    ++g_failures;
  } else {
    Log("  [ok] %s\n", what);
  }
}

// The DMA allocator: a static arena, device address = physical address (SMMU bypass). It is
// what deviso's isolation layer will replace.
qv::DmaArena g_arena(/*coherent=*/true);

// --- Platform report -----------------------------------------------------------------------

void ReportPlatform(const qv::PlatformInfo& info) {
  const qv::ImageLayout image = qv::GetImageLayout();
  Log("board:  %s\n", info.model);
  for (size_t i = 0; i < info.memory_count; ++i) {
    Log("memory: [0x%llx, 0x%llx) %llu MiB\n", static_cast<unsigned long long>(info.memory[i].base),
        static_cast<unsigned long long>(info.memory[i].end()),
        static_cast<unsigned long long>(info.memory[i].size >> 20));
  }
  Log("image:  [0x%llx, 0x%llx), DMA arena at 0x%llx (%zu KiB)\n",
      static_cast<unsigned long long>(image.start), static_cast<unsigned long long>(image.end),
      static_cast<unsigned long long>(g_arena.base()), qv::DmaArena::kBytes >> 10);
  Log("uart:   PL011 at 0x%llx, clock %u Hz\n",
      static_cast<unsigned long long>(info.uart.regs.base), info.uart.clock_hz);
  Log("gic:    GICv%u, distributor 0x%llx, %s 0x%llx\n", qv::GicVersion(),
      static_cast<unsigned long long>(info.gic.distributor.base),
      info.gic.version == 3 ? "redistributors" : "CPU interface",
      static_cast<unsigned long long>(info.gic.version == 3 ? info.gic.redistributors.base
                                                            : info.gic.cpu_interface.base));
  Log("timer:  CNTFRQ %llu Hz\n", static_cast<unsigned long long>(DEVISO_READ_SYSREG(cntfrq_el0)));
}

void ReportSmmu(const qv::PlatformInfo& info) {
  if (!info.smmu.present) {
    Log("smmu:   none in the devicetree (run with -M virt,iommu=smmuv3)\n");
    return;
  }
  const qv::SmmuInfo& s = info.smmu;
  deviso::DirectMmio regs(static_cast<uintptr_t>(s.regs.base));
  Log("smmu:   SMMUv3 at 0x%llx (%llu KiB), phandle 0x%x, %s\n",
      static_cast<unsigned long long>(s.regs.base),
      static_cast<unsigned long long>(s.regs.size >> 10), s.phandle,
      s.dma_coherent ? "dma-coherent" : "not coherent");
  Log("        IDR0 0x%08x IDR1 0x%08x IDR5 0x%08x AIDR 0x%08x CR0 0x%08x\n",
      regs.Read32(kSmmuIdr0), regs.Read32(kSmmuIdr1), regs.Read32(kSmmuIdr5),
      regs.Read32(kSmmuAidr), regs.Read32(kSmmuCr0));
  const qv::IrqSpec* irqs[] = {&s.eventq, &s.priq, &s.cmdq_sync, &s.gerror};
  const char* names[] = {"eventq", "priq", "cmdq-sync", "gerror"};
  for (size_t i = 0; i < 4; ++i) {
    if (irqs[i]->valid) {
      Log("        %-9s INTID %u (SPI %u), %s\n", names[i], irqs[i]->intid, irqs[i]->intid - 32,
          irqs[i]->edge ? "edge" : "level");
    }
  }
  Check((regs.Read32(kSmmuCr0) & 1) == 0, "SMMU is disabled (CR0.SMMUEN = 0): DMA bypasses it");
}

// --- Interrupt path ------------------------------------------------------------------------

void CountIrq(void* ctx) { __atomic_fetch_add(static_cast<uint32_t*>(ctx), 1, __ATOMIC_RELAXED); }

// Registers a handler on the SMMU's event-queue SPI (edge, as the driver will use it), makes it
// pending in the distributor and checks that the handler ran exactly once.
void TestInterrupts(const qv::PlatformInfo& info) {
  Log("interrupts:\n");
  if (!info.smmu.eventq.valid) {
    Log("  (no SMMU event-queue interrupt to test with)\n");
    return;
  }
  static uint32_t count = 0;
  const uint32_t intid = info.smmu.eventq.intid;
  CheckStatus(qv::RegisterIrq(intid, &CountIrq, &count, /*edge=*/true), "RegisterIrq");
  CheckStatus(qv::EnableIrq(intid), "EnableIrq");
  qv::EnableInterrupts();
  CheckStatus(qv::SetIrqPending(intid), "SetIrqPending (software-triggered SPI)");
  const deviso::port::Deadline deadline = deviso::port::Deadline::In(100'000'000);
  while (__atomic_load_n(&count, __ATOMIC_RELAXED) == 0 && !deadline.Expired()) {
    asm volatile("wfi");
  }
  qv::DisableInterrupts();
  Log("  handler ran %u time(s)\n", count);
  Check(count == 1, "SPI delivered to its handler once through the GIC");
  CheckStatus(qv::UnregisterIrq(intid), "UnregisterIrq");
}

// --- PCI -----------------------------------------------------------------------------------

void ReportPci(const qv::PlatformInfo& info, const qv::PciHost& pci) {
  Log("pci:    ECAM 0x%llx, buses %u-%u, mem32 window 0x%llx+0x%llx, mem64 0x%llx+0x%llx\n",
      static_cast<unsigned long long>(info.pci.ecam.base), info.pci.bus_start, info.pci.bus_end,
      static_cast<unsigned long long>(info.pci.mem32.cpu_addr),
      static_cast<unsigned long long>(info.pci.mem32.size),
      static_cast<unsigned long long>(info.pci.mem64.cpu_addr),
      static_cast<unsigned long long>(info.pci.mem64.size));
  for (size_t i = 0; i < pci.function_count(); ++i) {
    const qv::PciFunction& f = pci.function(i);
    const Result<uint32_t> sid = pci.StreamId(f.bdf, info.smmu.phandle);
    Log("  %02x:%02x.%x %04x:%04x class %06x", f.bdf.bus, f.bdf.device, f.bdf.function, f.vendor_id,
        f.device_id, f.class_code);
    if (sid.ok()) {
      Log(" StreamID 0x%x", *sid);
    }
    Log("\n");
    for (unsigned b = 0; b < 6; ++b) {
      const qv::PciBar& bar = f.bars[b];
      if (bar.size != 0) {
        Log("      BAR%u %s%s size 0x%llx at 0x%llx\n", b, bar.is_io ? "I/O" : "mem",
            bar.is_64bit ? "64" : (bar.is_io ? "" : "32"),
            static_cast<unsigned long long>(bar.size),
            static_cast<unsigned long long>(bar.cpu_addr));
      }
    }
  }
}

// --- Disk tests ----------------------------------------------------------------------------

// Fills `sectors` sectors at `p` with the write-test pattern for LBAs from `lba`.
void FillWritten(uint8_t* p, uint64_t lba, uint64_t sectors) {
  for (uint64_t s = 0; s < sectors; ++s) {
    for (uint64_t k = 0; k < kWordsPerSector; ++k) {
      const uint64_t w = WrittenWord(lba + s, k);
      std::memcpy(p + s * kSectorBytes + k * 8, &w, 8);
    }
  }
}

// Checks every byte of `sectors` sectors at `p` against the disk pattern (or the written one).
bool Verify(const uint8_t* p, uint64_t lba, uint64_t sectors, bool written) {
  for (uint64_t s = 0; s < sectors; ++s) {
    for (uint64_t k = 0; k < kWordsPerSector; ++k) {
      uint64_t w;
      std::memcpy(&w, p + s * kSectorBytes + k * 8, 8);
      const uint64_t want = written ? WrittenWord(lba + s, k) : DiskWord(lba + s, k);
      if (w != want) {
        Log("  mismatch: LBA %llu word %llu: 0x%016llx, expected 0x%016llx\n",
            static_cast<unsigned long long>(lba + s), static_cast<unsigned long long>(k),
            static_cast<unsigned long long>(w), static_cast<unsigned long long>(want));
        return false;
      }
    }
  }
  return true;
}

// A buffer from the arena, freed when it goes out of scope.
class Buffer {
 public:
  explicit Buffer(size_t bytes) {
    auto r = g_arena.Alloc(bytes, 4096);
    if (r.ok()) {
      region_ = *r;
    }
  }
  ~Buffer() {
    if (region_.cpu != nullptr) {
      g_arena.Free(region_);
    }
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  bool ok() const { return region_.cpu != nullptr; }
  const DmaRegion& region() const { return region_; }
  uint8_t* data() const { return static_cast<uint8_t*>(region_.cpu); }

 private:
  DmaRegion region_;
};

// Reads `sectors` at `lba` into `pieces` separate buffers (one PRD each) and verifies them.
bool ReadAndVerify(ahci::Port& port, uint64_t lba, uint32_t sectors, unsigned pieces,
                   bool written) {
  constexpr unsigned kMaxPieces = 8;
  if (pieces == 0 || pieces > kMaxPieces || sectors % pieces != 0) {
    return false;
  }
  const size_t piece_bytes = sectors / pieces * kSectorBytes;
  Buffer* buffers[kMaxPieces] = {};
  alignas(Buffer) unsigned char storage[kMaxPieces][sizeof(Buffer)];
  DmaSegment segments[kMaxPieces];
  bool ok = true;
  for (unsigned i = 0; i < pieces; ++i) {
    buffers[i] = new (storage[i]) Buffer(piece_bytes);
    ok = ok && buffers[i]->ok();
    segments[i] = {&buffers[i]->region(), 0, piece_bytes};
  }
  if (ok) {
    const Status s = port.Read(lba, sectors, {segments, pieces});
    if (!s.ok()) {
      Log("  read of %u sectors at LBA %llu: %s\n", sectors, static_cast<unsigned long long>(lba),
          s.str());
      ok = false;
    }
  }
  for (unsigned i = 0; i < pieces && ok; ++i) {
    ok = Verify(buffers[i]->data(), lba + i * (sectors / pieces), sectors / pieces, written);
  }
  for (unsigned i = 0; i < pieces; ++i) {
    buffers[i]->~Buffer();
  }
  return ok;
}

// An allocator that hands the device an address where nothing is for command tables (the only
// 128-byte-aligned allocations the driver makes): QEMU's AHCI then never completes the command,
// as it does when an SMMU blocks the table. For the timeout-recovery test.
class UnreachableTableAllocator final : public deviso::drivers::DmaAllocator {
 public:
  explicit UnreachableTableAllocator(uint64_t hole) : hole_(hole) {}
  Result<DmaRegion> Alloc(size_t size, size_t align) override {
    DEVISO_ASSIGN_OR_RETURN(DmaRegion r, g_arena.Alloc(size, align));
    if (align == ahci::ds::kCommandTableAlign) {
      real_table_ = r.device_addr;
      r.device_addr = hole_;
    }
    return r;
  }
  void Free(const DmaRegion& region) override {
    DmaRegion r = region;
    if (r.device_addr == hole_) {
      r.device_addr = real_table_;
    }
    g_arena.Free(r);
  }
  void SyncForDevice(const DmaRegion&, size_t, size_t) override {}
  void SyncForCpu(const DmaRegion&, size_t, size_t) override {}

 private:
  uint64_t hole_;
  uint64_t real_table_ = 0;
};

void TestDisk(const qv::PlatformInfo& info, qv::PciHost& pci) {
  Log("ahci:\n");
  const qv::PciFunction* f = pci.Find(kIntelVendor, kIch9Ahci);
  if (f == nullptr) {
    Check(false, "ICH9 AHCI (8086:2922) found on PCI");
    return;
  }
  const qv::PciBar& abar = f->bars[kAbarIndex];
  Check(abar.cpu_addr != 0, "ABAR (BAR5) assigned");
  Check((pci.ConfigRead16(f->bdf, 0x04) & (1U << 2)) == 0,
        "enumeration left Bus Master Enable clear");
  if (abar.cpu_addr == 0) {
    return;
  }
  // The device gets DMA only now. With deviso, this is where its isolation context must exist
  // (the StreamID's STE installed) first; here the SMMU is off and DMA bypasses it.
  CheckStatus(pci.EnableBusMaster(f->bdf), "EnableBusMaster");

  deviso::DirectMmio regs(static_cast<uintptr_t>(abar.cpu_addr));
  ahci::Hba hba(regs);
  CheckStatus(hba.Init(), "HBA reset, AHCI mode");
  Log("  AHCI %x.%x, %u slots, ports implemented 0x%x, links up on 0x%x, 64-bit %s\n",
      hba.version() >> 16, hba.version() & 0xffff, hba.command_slots(), hba.ports_implemented(),
      hba.PortsWithLink(), hba.s64a() ? "yes" : "no");
  const uint32_t disks = hba.PortsWithLink();
  if (disks == 0) {
    Check(false, "a disk attached to the AHCI");
    return;
  }
  const unsigned index = static_cast<unsigned>(__builtin_ctz(disks));
  ahci::Port port(regs, index, g_arena, hba.s64a());
  CheckStatus(port.Start(), "port start");

  const Result<ahci::IdentifyInfo> id = port.Identify();
  CheckStatus(id.status(), "IDENTIFY DEVICE");
  if (!id.ok()) {
    return;
  }
  Log("  disk on port %u: \"%s\" serial \"%s\" firmware \"%s\", %llu sectors of %u bytes (%llu "
      "MiB), LBA48 %s\n",
      index, id->model, id->serial, id->firmware, static_cast<unsigned long long>(id->sectors),
      id->sector_bytes, static_cast<unsigned long long>(id->sectors * id->sector_bytes >> 20),
      id->lba48 ? "yes" : "no");
  const uint64_t last = id->sectors - 1;
  Check(id->sectors >= 4096 && id->sector_bytes == 512, "disk of at least 2 MiB, 512-byte sectors");
  if (id->sectors < 4096) {
    return;
  }

  Check(ReadAndVerify(port, 0, 64, 4, false), "READ DMA EXT: LBA 0-63, 4 PRDs, pattern verified");
  Check(ReadAndVerify(port, 1000, 256, 2, false),
        "READ DMA EXT: LBA 1000-1255 (128 KiB), 2 PRDs, pattern verified");
  Check(ReadAndVerify(port, last, 1, 1, false), "READ DMA EXT: last sector, pattern verified");

  // Write 16 sectors from three segments of uneven sizes, then read them back (and their
  // neighbours, which must be untouched).
  {
    constexpr uint64_t kLba = 2048;
    Buffer a(2048), b(4096), c(2048);
    FillWritten(a.data(), kLba, 4);
    FillWritten(b.data(), kLba + 4, 8);
    FillWritten(c.data(), kLba + 12, 4);
    const DmaSegment segments[] = {
        {&a.region(), 0, 2048}, {&b.region(), 0, 4096}, {&c.region(), 0, 2048}};
    CheckStatus(port.Write(kLba, 16, segments), "WRITE DMA EXT: LBA 2048-2063, 3 PRDs");
    Check(ReadAndVerify(port, kLba, 16, 4, true), "read back the written sectors, verified");
    Check(ReadAndVerify(port, kLba - 1, 1, 1, false) && ReadAndVerify(port, kLba + 16, 1, 1, false),
          "neighbouring sectors untouched");
  }

  // Error recovery: a read past the end fails in the device (ABRT/IDNF, PxIS.TFES).
  {
    Buffer buf(512);
    const DmaSegment segment{&buf.region(), 0, 512};
    const Status s = port.Read(id->sectors, 1, {&segment, 1});
    Log("  read past the end: %s (port errors %llu)\n", s.str(),
        static_cast<unsigned long long>(port.errors()));
    Check(s == Status::IoError(), "read past the end fails with EIO");
    Check(port.running() && ReadAndVerify(port, 77, 8, 1, false),
          "port recovered: the next read succeeds");
  }

  // Timeout recovery: a second driver instance for the same port whose command table is at an
  // address with nothing behind it. The command never completes; the driver must time out,
  // stop the port and reset the link; then the good instance must work again.
  {
    CheckStatus(port.Stop(), "port stop (CR and FR clear)");
    uint64_t hole = 0xf000'0000;  // below 4 GiB, beyond RAM and every device on `virt`
    for (size_t i = 0; i < info.memory_count; ++i) {
      if (info.memory[i].Contains(hole)) {
        hole = 0;
      }
    }
    if (hole == 0) {
      Log("  (RAM covers the test hole: timeout test skipped)\n");
    } else {
      UnreachableTableAllocator unreachable(hole);
      ahci::PortOptions options;
      options.command_timeout_ns = 200'000'000;
      ahci::Port broken(regs, index, unreachable, hba.s64a(), options);
      CheckStatus(broken.Start(), "second instance started with an unreachable command table");
      Buffer buf(4096);
      const DmaSegment segment{&buf.region(), 0, 4096};
      const uint64_t t0 = deviso::port::MonotonicNs();
      const Status s = broken.Read(0, 8, {&segment, 1});
      const uint64_t ms = (deviso::port::MonotonicNs() - t0) / 1'000'000;
      Log("  command with an unreachable table: %s after %llu ms\n", s.str(),
          static_cast<unsigned long long>(ms));
      Check(s == Status::TimedOut(), "it times out (ETIMEDOUT)");
      CheckStatus(broken.Stop(), "stop the broken instance");
    }
    CheckStatus(port.Start(), "restart the good instance");
    Check(ReadAndVerify(port, 4000, 32, 2, false), "reads work again after the timeout");
  }
  Log("  DMA arena in use after the tests: %zu bytes (the port's own structures)\n",
      g_arena.bytes_in_use());
}

}  // namespace
}  // namespace hello_platform

int deviso::qemu_virt::AppMain(const PlatformInfo& info) {
  using namespace hello_platform;
  Log("\n=== deviso hello_platform ===\n");
  ReportPlatform(info);
  ReportSmmu(info);
  TestInterrupts(info);

  qv::PciHost pci(info.pci);
  const Status enumerated = pci.Enumerate();
  CheckStatus(enumerated, "PCI enumeration");
  if (enumerated.ok()) {
    ReportPci(info, pci);
    TestDisk(info, pci);
  }

  if (g_failures == 0) {
    Log("hello_platform: PASS\n");
    return 0;
  }
  Log("hello_platform: FAIL (%d check(s) failed)\n", g_failures);
  return 1;
}
