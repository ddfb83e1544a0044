#include "smmu_platform.h"

#include <cstdio>
#include <optional>

#include "arch.h"
#include "core/mmio.h"
#include "deviso/port/os.h"
#include "deviso/registry.h"
#include "gic.h"
#include "its.h"
#include "mmu.h"
#include "pgtable/table_pool.h"

namespace deviso::qemu_virt {

namespace {

// Translation tables for every context of this SMMU: 2 MiB of 4 KiB tables, and 512 KiB of
// 64 KiB tables for contexts with a 64 KiB granule.
pgtable::StaticTablePool<4096, 512> g_tables;
pgtable::StaticTablePool<65536, 8> g_tables_64k;
std::optional<DirectMmio> g_regs;
std::optional<ArenaDmaMemory> g_dma;
std::optional<smmuv3::Smmuv3> g_smmu;
char g_name[32];

void CleanTables(const void* p, size_t n) { arch::CleanDcacheRange(p, n); }

void OnEventq(void* ctx) { static_cast<smmuv3::Smmuv3*>(ctx)->HandleEvents(); }
void OnGerror(void* ctx) { static_cast<smmuv3::Smmuv3*>(ctx)->HandleGlobalErrors(); }

}  // namespace

Paddr SmmuTablePoolBase() { return g_tables.storage_pa(); }

Result<smmuv3::Smmuv3*> SetupSmmu(const PlatformInfo& info, DmaArena& arena) {
  if (!info.smmu.present) return Status::NotFound();
  if (g_smmu.has_value()) return Status::AlreadyExists();
  const SmmuInfo& s = info.smmu;
  g_regs.emplace(static_cast<uintptr_t>(s.regs.base));
  g_dma.emplace(arena, s.dma_coherent);
  if (!s.dma_coherent) {
    g_tables.set_clean_hook(&CleanTables);
    g_tables_64k.set_clean_hook(&CleanTables);
  }
  std::snprintf(g_name, sizeof(g_name), "smmuv3@%llx",
                static_cast<unsigned long long>(s.regs.base));

  smmuv3::Smmuv3::Config c;
  c.regs = &*g_regs;
  c.dma = &*g_dma;
  c.tables_4k = &g_tables;
  c.tables_64k = &g_tables_64k;
  c.name = g_name;
  c.dma_coherent = s.dma_coherent;
  // QEMU writes ~1025 events for one blocked 4 KiB DMA write (it retries in 4-byte pieces):
  // a 4096-record queue (128 KiB) holds a blocked page without overflowing.
  c.eventq_log2 = 12;
  // Memory the SMMU walks beyond its queues and stream table (the contexts' translation
  // tables, from both pools), the CPU map's tables and the ITS's: Map refuses them with -EPERM, so
  // no device is ever given a table it could rewrite (issue 10).
  c.own_memory[0] = {g_tables.storage_pa(), g_tables.storage_bytes()};
  c.own_memory[1] = {g_tables_64k.storage_pa(), g_tables_64k.storage_bytes()};
  c.own_memory[2] = {MmuTablesBase(), MmuTablesBytes()};
  // The GICv3 ITS's tables and LPI tables (its.h): a device writing them could redirect or
  // forge any interrupt. Static, so declared whether or not the ITS is used.
  c.own_memory[3] = {ItsMemory().base, ItsMemory().size};
  g_smmu.emplace(c);
  smmuv3::Smmuv3* smmu = &*g_smmu;
  auto check = [](Status st, const char* what) {
    if (!st.ok()) port::Log("deviso: %s: %s: %s\n", g_name, what, st.str());
    return st;
  };
  DEVISO_TRY(check(smmu->Probe(), "probe"));
  const bool irqs = s.eventq.valid && s.gerror.valid;
  DEVISO_TRY(check(smmu->Init(irqs), "init"));
  if (irqs) {
    DEVISO_TRY(check(RegisterIrq(s.eventq.intid, &OnEventq, smmu, /*edge=*/true), "eventq irq"));
    DEVISO_TRY(check(RegisterIrq(s.gerror.intid, &OnGerror, smmu, /*edge=*/true), "gerror irq"));
    DEVISO_TRY(check(EnableIrq(s.eventq.intid), "enable eventq irq"));
    DEVISO_TRY(check(EnableIrq(s.gerror.intid), "enable gerror irq"));
  }
  DEVISO_TRY(check(Registry::Default().RegisterUnit(*smmu), "register"));
  return smmu;
}

}  // namespace deviso::qemu_virt
