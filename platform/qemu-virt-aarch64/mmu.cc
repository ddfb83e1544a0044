// CPU MMU bring-up for QEMU `virt` (see mmu.h).

#include "mmu.h"

#include <new>

#include "arch.h"
#include "pgtable/pgtable.h"
#include "pgtable/table_pool.h"

// boot/start.S: replaces the boot map by (mair, tcr, ttbr0), briefly with the MMU off.
extern "C" void deviso_mmu_switch(uint64_t mair, uint64_t tcr, uint64_t ttbr0);

namespace deviso::qemu_virt {
namespace {

using pgtable::Config;
using pgtable::Granule;
using pgtable::MemType;
using pgtable::PageTable;

constexpr size_t kGranuleBytes = 4096;
constexpr size_t kTableCount = 64;
constexpr uint8_t kIas = 48;  // VA bits: TCR_EL1.T0SZ = 16

// TLB maintenance for the CPU's own tables (Arm ARM D8.13 / D7.7): invalidate all EL1&0
// entries of this VMID in the Inner Shareable domain, then wait. Coarse, but the CPU map changes
// only at boot and when a device is added.
class CpuTlbFlush final : public pgtable::TlbFlush {
 public:
  Status Invalidate(const pgtable::InvalidationRange& /*range*/) override {
    arch::DsbIshSt();
    asm volatile("tlbi vmalle1is" ::: "memory");
    arch::DsbIsh();
    arch::Isb();
    return Status::Ok();
  }
};

// boot/start.S's boot map uses the same MAIR, so the switch keeps every attribute index.
static_assert(Config::kDefaultMair == 0x0444ff00, "BOOT_MAIR in boot/start.S");

// Storage for the pool, the flush object and the table, constructed in place by MmuInit (it
// runs before the C++ static constructors, on boot/start.S's boot map).
using Pool = pgtable::StaticTablePool<kGranuleBytes, kTableCount>;
alignas(Pool) unsigned char g_pool_storage[sizeof(Pool)];
alignas(CpuTlbFlush) unsigned char g_flush_storage[sizeof(CpuTlbFlush)];
alignas(PageTable) unsigned char g_table_storage[sizeof(PageTable)];
Pool* g_pool = nullptr;
PageTable* g_table = nullptr;

// ID_AA64MMFR0_EL1.PARange (Arm ARM D19.2.64) -> bits, and the matching TCR_EL1.IPS value.
struct PaSize {
  unsigned bits;
  uint64_t ips;
};
PaSize PhysicalAddressSize() {
  constexpr unsigned kBits[] = {32, 36, 40, 42, 44, 48};
  uint64_t range = DEVISO_READ_SYSREG(id_aa64mmfr0_el1) & 0xf;
  if (range > 5) {
    range = 5;  // 52-bit PAs are not used: the engine supports 48-bit output addresses
  }
  return {kBits[range], range};
}

uint64_t AlignDown(uint64_t v, uint64_t a) { return v & ~(a - 1); }
uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

Status MapRegion(const Region& r, pgtable::Perms perms, MemType type) {
  if (r.size == 0) {
    return Status::Ok();
  }
  const uint64_t base = AlignDown(r.base, kGranuleBytes);
  const uint64_t end = AlignUp(r.end(), kGranuleBytes);
  return g_table->Map(base, base, end - base, perms, type);
}

Status MapDevice(const Region& r) {
  return MapRegion(r, pgtable::kPermReadWrite, MemType::kDeviceNGnRE);
}

Status MapPciWindow(const PciWindow& w) {
  return w.present ? MapDevice({w.cpu_addr, w.size}) : Status::Ok();
}

// Arm ARM D19.2 TCR_EL1 fields.
namespace tcr {
constexpr uint64_t T0sz(unsigned ias) { return 64 - ias; }  // [5:0]
constexpr uint64_t kIrgn0WriteBack = 1ULL << 8;             // [9:8] = 01: WB RA WA
constexpr uint64_t kOrgn0WriteBack = 1ULL << 10;            // [11:10] = 01
constexpr uint64_t kSh0Inner = 3ULL << 12;                  // [13:12] = 11
constexpr uint64_t kTg0_4KiB = 0ULL << 14;                  // [15:14] = 00
constexpr uint64_t kEpd1 = 1ULL << 23;                      // no walks through TTBR1
constexpr uint64_t Ips(uint64_t v) { return v << 32; }      // [34:32]
}  // namespace tcr

}  // namespace

Status MmuInit(const PlatformInfo& info) {
  const PaSize pa = PhysicalAddressSize();
  g_pool = new (g_pool_storage) Pool();
  auto* flush = new (g_flush_storage) CpuTlbFlush();
  g_table = new (g_table_storage) PageTable(
      Config::CpuKernel(Granule::k4KiB, kIas, static_cast<uint8_t>(pa.bits)), *g_pool, *flush);
  DEVISO_TRY(g_table->Init());

  for (size_t i = 0; i < info.memory_count; ++i) {
    DEVISO_TRY(MapRegion(info.memory[i], pgtable::kPermAll, MemType::kNormalWriteBack));
  }
  if (info.uart.present) {
    DEVISO_TRY(MapDevice(info.uart.regs));
  }
  if (info.gic.version != 0) {
    DEVISO_TRY(MapDevice(info.gic.distributor));
    DEVISO_TRY(MapDevice(info.gic.version == 3 ? info.gic.redistributors : info.gic.cpu_interface));
  }
  if (info.smmu.present) {
    DEVISO_TRY(MapDevice(info.smmu.regs));
  }
  if (info.pci.present) {
    DEVISO_TRY(MapDevice(info.pci.ecam));
    DEVISO_TRY(MapPciWindow(info.pci.io));
    DEVISO_TRY(MapPciWindow(info.pci.mem32));
    DEVISO_TRY(MapPciWindow(info.pci.mem64));
  }

  // The tables were written with the MMU and caches on (boot/start.S's boot map), so the walker,
  // which reads through the caches (TCR IRGN/ORGN = write-back), sees them: no cache
  // maintenance, only the barrier deviso_mmu_switch makes. The switch keeps MMU and caches on,
  // alignment checks off (SCTLR_EL1 as start.S left it).
  deviso_mmu_switch(Config::kDefaultMair,
                    tcr::T0sz(kIas) | tcr::kIrgn0WriteBack | tcr::kOrgn0WriteBack | tcr::kSh0Inner |
                        tcr::kTg0_4KiB | tcr::kEpd1 | tcr::Ips(pa.ips),
                    g_table->root());  // ASID 0
  return Status::Ok();
}

Status MmuMapDevice(uint64_t base, uint64_t size) {
  if (g_table == nullptr) {
    return Status::InvalidArgument();
  }
  return MapDevice({base, size});
}

size_t MmuTablesUsed() { return g_pool == nullptr ? 0 : kTableCount - g_pool->free_granules(); }
size_t MmuTablesCapacity() { return kTableCount; }
uint64_t MmuTablesBase() { return g_pool == nullptr ? 0 : g_pool->storage_pa(); }
uint64_t MmuTablesBytes() { return g_pool == nullptr ? 0 : g_pool->storage_bytes(); }

}  // namespace deviso::qemu_virt
