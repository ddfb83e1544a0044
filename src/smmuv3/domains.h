// Arm SMMUv3 domains: the address spaces a unit translates through (IHI0070 2.x, 3.3, 5.4).
//
// A stage 1 domain is a CD (context descriptor) with its ASID and a VMSAv8-64 table; a stage 2
// domain a VMID and a table. The tables are the page-table engine's (src/pgtable/), which reaches
// memory through a TableMemory and invalidates through the domain's TlbFlush. Smmuv3 creates,
// maps and destroys them (domains.cc); what is here are the domain's state and the pure
// encodings of its geometry.

#ifndef DEVISO_SRC_SMMUV3_DOMAINS_H_
#define DEVISO_SRC_SMMUV3_DOMAINS_H_

#include <cstddef>
#include <cstdint>
#include <optional>

#include "core/dma_memory.h"
#include "core/domain_slots.h"
#include "deviso/backend.h"
#include "deviso/config.h"
#include "deviso/port/os.h"
#include "pgtable/pgtable.h"
#include "smmuv3/cmdq.h"
#include "smmuv3/hw.h"

namespace deviso::smmuv3 {

class Smmuv3;

// A domain: the core's slot state (SlotDomain: in use, sink, attached streams) and what is the
// SMMU's own.
class SmmuDomain final : public SlotDomain {
 public:
  bool stage2() const { return config::kStage2 && stage2_; }
  uint16_t asid() const { return asid_; }
  uint16_t vmid() const { return vmid_; }
  const pgtable::PageTable& table() const { return *table_; }
  // Stage 1: where this domain's CD is (0 for stage 2).
  Paddr cd_pa() const { return cd_.pa; }
  // What a TLBI for this domain names.
  TlbiScope tlbi_scope() const { return TlbiScope{stage2(), asid_, vmid_}; }

 private:
  friend class Smmuv3;
  // The engine's TLB-maintenance seam, bound to this domain.
  class Flush final : public pgtable::TlbFlush {
   public:
    Status Invalidate(const pgtable::InvalidationRange& range) override;
    SmmuDomain* domain = nullptr;
  };

  Smmuv3* smmu_ = nullptr;
  bool stage2_ = false;
  // Blocks split hitlessly (BBML2), or the context accepted the break-before-make window.
  bool split_allowed_ = false;
  uint16_t asid_ = 0;
  uint16_t vmid_ = 0;
  DmaBuffer cd_;  // stage 1: this domain's context descriptor
  // Under the context lock: [start, end) of an invalidation that did not complete (empty when
  // start == end). The next invalidation of the domain is whole-context and clears it.
  uint64_t pending_start_ = 0;
  uint64_t pending_end_ = 0;
  // Under the context lock: the union of the ranges of strict unmaps that failed (-EIO or
  // -ETIMEDOUT); an Unmap inside it converges (0 once its invalidation completed).
  uint64_t failed_start_ = 0;
  uint64_t failed_end_ = 0;
  Flush flush_;
  std::optional<pgtable::PageTable> table_;
};

// Serialises a TableMemory shared by every domain of a unit: domains are modified in
// parallel (each under its own context lock), the pool underneath is not locked.
class SharedTableMemory final : public pgtable::TableMemory {
 public:
  void set_memory(pgtable::TableMemory* memory) { memory_ = memory; }
  pgtable::TableMemory* memory() const { return memory_; }
  Result<pgtable::Paddr> Allocate(unsigned order) override {
    port::LockGuard guard(lock_);
    return memory_->Allocate(order);
  }
  void Free(pgtable::Paddr table, unsigned order) override {
    port::LockGuard guard(lock_);
    if (!retained_) memory_->Free(table, order);
  }
  uint64_t* PhysToVirt(pgtable::Paddr table) override { return memory_->PhysToVirt(table); }
  void CleanToPoc(const void* p, size_t bytes) override { memory_->CleanToPoc(p, bytes); }
  pgtable::TableLayout layout() const override { return memory_->layout(); }
  // From now on Free() keeps the tables allocated: the SMMU may still walk them (a unit
  // destroyed while its disable was never acknowledged).
  void Retain() {
    port::LockGuard guard(lock_);
    retained_ = true;
  }

 private:
  pgtable::TableMemory* memory_ = nullptr;
  bool retained_ = false;
  port::InterruptSpinLock lock_;
};

// The translation granules (IDR5.GRAN4K/GRAN16K/GRAN64K, 6.3.6), as page sizes.
inline constexpr uint64_t kGranule4K = uint64_t{1} << 12;
inline constexpr uint64_t kGranule16K = uint64_t{1} << 14;
inline constexpr uint64_t kGranule64K = uint64_t{1} << 16;

// The xAS encoding of an address size (IDR5.OAS, CD.IPS, STE.S2PS; 6.3.6): the smallest size
// that holds `bits`, 52 bits (5) if none.
inline uint64_t AddressSizeEncoding(uint8_t bits) {
  for (uint64_t i = 0; i < sizeof(reg::kAddressSizeBits); ++i) {
    if (reg::kAddressSizeBits[i] >= bits) return i;
  }
  return 5;
}

// log2 of a granule (4, 16 or 64 KiB; 4 KiB when 16K/64K granules are compiled out).
inline unsigned GranuleShift(uint64_t page_size) {
  if constexpr (!config::kGranule16K64K) return 12;
  return page_size == kGranule64K ? 16 : page_size == kGranule16K ? 14 : 12;
}

// A granule as CD.TG0 / STE.S2TG encode it (5.4, 5.2).
inline uint64_t TgField(uint64_t page_size) {
  if constexpr (!config::kGranule16K64K) return ds::kTg4K;
  return page_size == kGranule64K ? ds::kTg64K : page_size == kGranule16K ? ds::kTg16K : ds::kTg4K;
}

// 5.4: the CD of a stage 1 domain (V=1, its ASID, TTB0 = its table's root, the table's
// geometry; walks cacheable and inner-shareable only when `coherent`). Pure.
ds::Cd BuildCd(const SmmuDomain& d, bool coherent);

// The entry writer's view of a CD (5.4): invalid, only V (word 0 bit 31); valid, every bit of
// every word (whole words: this driver never changes a CD in place, so precision buys nothing).
void CdUsedBits(const uint64_t* cd, uint64_t* used);

}  // namespace deviso::smmuv3

#endif  // DEVISO_SRC_SMMUV3_DOMAINS_H_
