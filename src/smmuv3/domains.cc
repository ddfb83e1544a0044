// Arm SMMUv3 domains: creation and destruction, CDs (5.4), mapping through the page-table
// engine, and the invalidation (4.4) its changes need. See domains.h.

#include "smmuv3/domains.h"

#include "core/barrier.h"
#include "core/counters.h"
#include "core/leaf_merger.h"
#include "smmuv3/cmdq.h"
#include "smmuv3/dma_word.h"
#include "smmuv3/entry_writer.h"
#include "smmuv3/smmuv3.h"
#include "smmuv3/tlbi_range.h"

namespace deviso::smmuv3 {
namespace {

unsigned Log2Floor(uint64_t v) { return 63U - static_cast<unsigned>(__builtin_clzll(v)); }

}  // namespace

Status Smmuv3::InvalidateDomainRange(SmmuDomain& d, const pgtable::InvalidationRange& r) {
  if (r.leaf_levels == 0 && !r.tables) return Status::Ok();
  if (d.pending_end_ > d.pending_start_) {
    // An earlier invalidation of this domain did not complete: this one covers it too (the
    // whole ASID/VMID, walk caches included), and only its completion clears the debt.
    const ds::Command all = ContextTlbi(d.tlbi_scope());
    Count(stats_.tlbi_context);
    if (const Status s = Submit(&all, 1); !s.ok()) {
      if (r.iova < d.pending_start_) d.pending_start_ = r.iova;
      if (r.iova + r.size > d.pending_end_) d.pending_end_ = r.iova + r.size;
      return s;
    }
    d.pending_start_ = d.pending_end_ = 0;
    return Status::Ok();
  }
  const Status s = InvalidateDomainRangeOnce(d, r);
  if (!s.ok()) {
    // Completion not confirmed: the range stays owed (a retried Unmap converges on it).
    d.pending_start_ = r.iova;
    d.pending_end_ = r.iova + r.size;
  }
  return s;
}

Status Smmuv3::InvalidateDomainRangeOnce(SmmuDomain& d, const pgtable::InvalidationRange& r) {
  const uint64_t page = d.page_size();
  // A TTL hint only when every changed entry is a leaf at one level (4.4.1: a wrong TTL may
  // leave entries of other levels cached). Level 0 leaves do not exist.
  const bool one_level = (r.leaf_levels & (r.leaf_levels - 1)) == 0;
  const unsigned ttl = !r.tables && one_level && r.leaf_levels > 1 ? Log2Floor(r.leaf_levels) : 0;
  const bool leaf = !r.tables;
  if (config::kRangeTlbi && idr3_.ril() != 0 && r.size / page < kMaxTlbiRangeGranules) {
    // At most two commands: no 64-entry array to construct on the strict unmap's hot path.
    ds::Command range[2];
    const size_t n = BuildRangeTlbi(d.tlbi_scope(), page, r.iova, r.size / page, ttl, leaf, range);
    Count(stats_.tlbi_va, n);
    return Submit(range, n);
  }
  ds::Command cmds[64];
  size_t n = 0;
  // One command per leaf: step by the leaf size when there is one level, else by page.
  const uint64_t step = ttl != 0 ? d.table_->LevelSize(ttl) : page;
  const uint64_t count = (r.size + step - 1) / step;
  if (count > config_.max_tlbi_per_range || count > 64) {
    cmds[n++] = ContextTlbi(d.tlbi_scope());
    Count(stats_.tlbi_context);
  } else {
    for (uint64_t i = 0; i < count; ++i) {
      cmds[n++] = AddressTlbi(d.tlbi_scope(), r.iova + i * step, leaf);
    }
    Count(stats_.tlbi_va, n);
  }
  return Submit(cmds, n);
}

Status SmmuDomain::Flush::Invalidate(const pgtable::InvalidationRange& range) {
  return domain->smmu_->InvalidateDomainRange(*domain, range);
}

void CdUsedBits(const uint64_t* cd, uint64_t* used) {
  for (size_t i = 0; i < ds::Cd::kWords; ++i) used[i] = 0;
  used[0] = ds::Cd::W0{}.set_v(1).raw;
  if (ds::Cd::W0{cd[0]}.v() == 0) return;  // an invalid CD: C_BAD_CD, nothing else is read
  for (size_t i = 0; i < ds::Cd::kWords; ++i) used[i] = ~uint64_t{0};
}

ds::Cd BuildCd(const SmmuDomain& d, bool coherent) {
  ds::Cd cd;
  const pgtable::PageTable& t = d.table();
  const uint64_t page = t.page_size();
  ds::Cd::W0 w0;
  w0.set_t0sz(64 - t.config().ias);
  w0.set_tg0(TgField(page));
  const uint64_t cache = coherent ? reg::kCacheWriteBack : reg::kCacheNonCacheable;
  w0.set_ir0(cache).set_or0(cache).set_sh0(coherent ? reg::kShareInner : reg::kShareOuter);
  w0.set_epd1(1);  // no TTB1 walks
  w0.set_ips(AddressSizeEncoding(t.config().oas));
  w0.set_aa64(1);
  // Record faults (QEMU 7.2 records translation faults only with R=1) and abort, not stall.
  w0.set_r(1).set_a(1);
  w0.set_asid(d.asid());
  w0.set_v(1);
  cd.raw[0] = w0.raw;
  cd.raw[1] = ds::Cd::W1{}.set_ttb0(t.root()).raw;
  cd.raw[3] = pgtable::Config::kDefaultMair;
  return cd;
}

// ---------------------------------------------------------------------------------------------
// Domains

pgtable::TableMemory* Smmuv3::TablesFor(uint64_t page_size) {
  // The platform's pools, behind this unit's lock (domains change in parallel).
  switch (page_size) {
    case kGranule4K:
      return idr5_.gran4k() != 0 && config_.tables_4k != nullptr ? &tables_4k_ : nullptr;
    case kGranule16K:
      return config::kGranule16K64K && idr5_.gran16k() != 0 && config_.tables_16k != nullptr
                 ? &tables_16k_
                 : nullptr;
    case kGranule64K:
      return config::kGranule16K64K && idr5_.gran64k() != 0 && config_.tables_64k != nullptr
                 ? &tables_64k_
                 : nullptr;
    default:
      return nullptr;
  }
}

Status Smmuv3::AllocId(uint64_t* bitmap, unsigned bits, uint16_t* id) {
  // IDs 1..kMaxDomains (0 is left unused so a zeroed CD/STE never matches a live domain).
  const unsigned limit = bits >= 16 ? kMaxDomains : (1U << bits) - 1;
  for (unsigned i = 1; i <= limit && i <= kMaxDomains; ++i) {
    if ((bitmap[i / 64] & (1ULL << (i % 64))) == 0) {
      bitmap[i / 64] |= 1ULL << (i % 64);
      *id = static_cast<uint16_t>(i);
      return Status::Ok();
    }
  }
  return Status::NoMemory();
}

Result<Domain*> Smmuv3::CreateDomain(const DomainOptions& options, FaultSink* sink) {
  if (!probed_) return Status::InvalidArgument();
  bool stage2;
  switch (options.stage) {
    case DomainOptions::Stage::kDefault:
      stage2 = idr0_.s1p() == 0;
      break;
    case DomainOptions::Stage::kStage1:
      stage2 = false;
      break;
    case DomainOptions::Stage::kStage2:
      stage2 = true;
      break;
    default:
      return Status::InvalidArgument();
  }
  if (stage2 && !config::kStage2) return Status::NotSupported();  // compiled out
  if (stage2 ? idr0_.s2p() == 0 : idr0_.s1p() == 0) return Status::NotSupported();
  uint64_t page = options.page_size;
  if (page == 0)
    page = (caps_.page_sizes & kGranule4K) != 0    ? kGranule4K
           : (caps_.page_sizes & kGranule16K) != 0 ? kGranule16K
                                                   : kGranule64K;
  pgtable::TableMemory* tables = TablesFor(page);
  if (tables == nullptr) return Status::NotSupported();
  uint8_t ias = options.ias != 0 ? options.ias : stage2 ? oas_bits_ : caps_.ias;
  if (ias > 48 || ias < 32 || (stage2 && ias > oas_bits_)) return Status::InvalidArgument();

  port::LockGuard guard(lock_);
  if (broken()) return Status::IoError();  // nothing allocated for a unit that cannot confirm
  SmmuDomain* d = domains_.FreeSlot();
  if (d == nullptr) return Status::NoMemory();
  uint16_t id = 0;
  DEVISO_TRY(AllocId(stage2 ? vmid_map_ : asid_map_,
                     stage2 ? (idr0_.vmid16() ? 16 : 8) : (idr0_.asid16() ? 16 : 8), &id));
  auto release_id = [&] {
    uint64_t* map = stage2 ? vmid_map_ : asid_map_;
    map[id / 64] &= ~(1ULL << (id % 64));
  };

  const pgtable::Granule g = static_cast<pgtable::Granule>(GranuleShift(page));
  pgtable::Config cfg = stage2 ? pgtable::Config::SmmuStage2(g, ias, oas_bits_, coherent_)
                               : pgtable::Config::SmmuStage1(g, ias, oas_bits_, coherent_);
  cfg.bbml2 = config_.use_bbml2 && idr3_.bbml() == 2;
  // BBML=1: hitless through nT (IHI0070 3.21.1.2).
  cfg.bbml1 = config_.use_bbml2 && idr3_.bbml() == 1;
  d->split_allowed_ = cfg.bbml2 || cfg.bbml1 || options.allow_block_split_window;
  d->smmu_ = this;
  d->stage2_ = stage2;
  d->asid_ = stage2 ? 0 : id;
  d->vmid_ = stage2 ? id : 0;
  d->flush_.domain = d;
  d->table_.emplace(cfg, *tables, d->flush_);
  if (const Status s = d->table_->Init(); !s.ok()) {
    d->table_.reset();
    release_id();
    return s;
  }
  d->page_size_ = page;
  d->ias_ = ias;
  if (!stage2) {
    Result<DmaBuffer> cd = config_.dma->Allocate(sizeof(ds::Cd), 64);
    if (!cd.ok()) {
      d->table_.reset();
      release_id();
      return cd.status();
    }
    d->cd_ = *cd;
    GrowDynamicHull(d->cd_);
    // Written by the entry writer like every STE, before any STE points at it: its "sync" is
    // only ordering (no CFGI: the SMMU cannot have fetched a CD no STE names).
    class CdOps final : public EntryWriterOps {
     public:
      CdOps(const Smmuv3& smmu, uint64_t* words)
          : EntryWriterOps(ds::Cd::kWords, ds::Cd::W0{}.set_v(1).raw), smmu_(smmu), words_(words) {}
      void UsedBits(const uint64_t* entry, uint64_t* used) const override {
        CdUsedBits(entry, used);
      }
      void StoreWord(size_t word, uint64_t value) override { Store64(&words_[word], value); }
      void Publish() override { smmu_.CleanForSmmu(words_, sizeof(ds::Cd)); }
      Status Sync() override {
        Publish();
        DmaWriteBarrier();
        return Status::Ok();
      }

     private:
      const Smmuv3& smmu_;
      uint64_t* words_;
    };
    const ds::Cd image = BuildCd(*d, coherent_);
    const ds::Cd blank{};  // Allocate() zeroes
    CdOps ops(*this, static_cast<uint64_t*>(d->cd_.cpu));
    if (const Status s = WriteEntry(ops, blank.raw, image.raw); !s.ok()) {
      config_.dma->Free(d->cd_);
      d->cd_ = DmaBuffer{};
      d->table_.reset();
      release_id();
      return s;
    }
  }
  d->pending_start_ = d->pending_end_ = 0;
  d->failed_start_ = d->failed_end_ = 0;
  domains_.Activate(d, sink);
  return static_cast<Domain*>(d);
}

Status Smmuv3::DestroyDomain(Domain* domain) {
  port::LockGuard guard(lock_);
  SmmuDomain* d = domains_.Find(domain);
  if (d == nullptr) return Status::InvalidArgument();
  if (d->streams() != 0) return Status::Busy();
  if (broken()) return Status::IoError();
  // No stream reaches the domain any more; drop its ASID/VMID's TLB and walk-cache entries
  // before its tables and CD can be reused. If an STE invalidation failed earlier the SMMU may
  // still hold an STE naming this domain's CD or tables: drop every cached configuration too.
  const bool cfgi_all = config_unconfirmed_;
  const ds::Command cmds[2] = {ContextTlbi(d->tlbi_scope()), CfgiAll()};
  DEVISO_TRY(Submit(cmds, cfgi_all ? 2 : 1));
  if (cfgi_all) config_unconfirmed_ = false;
  Count(stats_.tlbi_context);
  d->table_.reset();  // PageTable::Release: frees every table
  if (d->cd_.cpu != nullptr) {
    config_.dma->Free(d->cd_);
    d->cd_ = DmaBuffer{};
  }
  uint64_t* map = d->stage2() ? vmid_map_ : asid_map_;
  const uint16_t id = d->stage2() ? d->vmid_ : d->asid_;
  map[id / 64] &= ~(1ULL << (id % 64));
  domains_.Release(d);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Mapping: the translation-table engine, with this driver's invalidation.

namespace {
pgtable::MemType EngineType(MemType t) {
  switch (t) {
    case MemType::kNormal:
      return pgtable::MemType::kNormalWriteBack;
    case MemType::kNormalNonCacheable:
      return pgtable::MemType::kNormalNonCacheable;
    case MemType::kDevice:
      return pgtable::MemType::kDeviceNGnRE;
    default:
      return pgtable::MemType::kDeviceNGnRnE;
  }
}
}  // namespace

Status Smmuv3::Map(Domain* domain, Iova iova, Paddr pa, uint64_t size, Perms perms, MemType type) {
  auto* d = static_cast<SmmuDomain*>(domain);
  if (perms > 0xff || static_cast<unsigned>(type) > 3) return Status::InvalidArgument();
  if (broken()) return Status::IoError();  // no table is allocated for a broken unit
  if (UsesMemory(pa, size)) return Status::PermissionDenied();
  // A failed strict unmap left an invalidation owed: the SMMU may still hold its old entries
  // and walk-cache pointers to the tables it unlinked, through which the new entries would not
  // be seen (a fault) or an old translation would. The owed invalidation (whole context) comes
  // first; if it cannot be confirmed nothing is mapped.
  if (d->pending_end_ > d->pending_start_) {
    const ds::Command all = ContextTlbi(d->tlbi_scope());
    Count(stats_.tlbi_context);
    DEVISO_TRY(Submit(&all, 1));
    d->pending_start_ = d->pending_end_ = 0;
  }
  DEVISO_TRY(d->table_->Map(iova, pa, size, static_cast<pgtable::Perms>(perms), EngineType(type)));
  // Mapped again over all of it: the failed unmaps' range is ordinary mapped memory now. (A map
  // over only a part keeps the record: the rest, possibly another failed unmap's range that the
  // record's hull joined, is still owed.)
  if (iova <= d->failed_start_ && d->failed_end_ - iova <= size) {
    d->failed_start_ = d->failed_end_ = 0;
  }
  return Status::Ok();
}

Status Smmuv3::Unmap(Domain* domain, Iova iova, uint64_t size) {
  auto* d = static_cast<SmmuDomain*>(domain);
  if (broken()) return Status::IoError();  // nothing changes on a unit that cannot confirm
  if (!d->split_allowed_ && size != 0) {
    // No hitless split (BBML = 0) and the context did not accept the break-before-make window
    // (DomainOptions::allow_block_split_window): an unmap that starts or ends inside a block
    // is refused, nothing changed (docs/smmuv3.md "Break-before-make window").
    const uint64_t page = d->page_size();
    const Result<pgtable::Mapping> first = d->table_->Lookup(iova);
    const Result<pgtable::Mapping> last = d->table_->Lookup(iova + size - 1);
    if ((first.ok() && first->size > page && first->iova != iova) ||
        (last.ok() && last->size > page && last->iova + last->size != iova + size)) {
      // A range that is not wholly mapped is -ENOENT first, as everywhere else (only this
      // refusal path walks the range).
      for (uint64_t pos = iova; pos - iova < size;) {
        const Result<pgtable::Mapping> m = d->table_->Lookup(pos);
        if (!m.ok()) return Status::NotFound();
        pos = m->iova + m->size;
      }
      return Status::NotSupported();
    }
  }
  // Remembers a failed unmap: its entries may be gone, its retry must converge.
  auto remember = [d, iova, size](const Status& failed) {
    if (failed != Status::IoError() && failed != Status::TimedOut()) return failed;
    if (d->failed_end_ <= d->failed_start_) {
      d->failed_start_ = iova;
      d->failed_end_ = iova + size;
    } else {
      if (iova < d->failed_start_) d->failed_start_ = iova;
      if (iova + size > d->failed_end_) d->failed_end_ = iova + size;
    }
    return failed;
  };
  const Status s = remember(d->table_->Unmap(iova, size));
  // The error-path contract (docs/smmuv3.md): a strict unmap whose invalidation failed has
  // already cleared its entries, so the engine answers its retry with -ENOENT. A retry inside
  // the range of that failed invalidation converges instead: what is still mapped in it is
  // unmapped, and the invalidation is redone (whole context); 0 once it completed.
  const uint64_t page = d->page_size();
  const uint64_t owed_start = d->failed_start_;
  const uint64_t owed_end = d->failed_end_;
  if (s != Status::NotFound() || owed_end <= owed_start || iova >= owed_end ||
      (owed_start > iova && owed_start - iova >= size)) {
    return s;
  }
  // The range may reach past the owed one: -ENOENT (nothing changed) unless every page of it that
  // is not mapped lies in the owed range.
  for (Iova a = iova; a < iova + size;) {
    const Result<pgtable::Mapping> m = d->table_->Lookup(a);
    if (m.ok()) {
      a = m->iova + m->size;
    } else if (a < owed_start || a >= owed_end) {
      return s;
    } else {
      a += page;
    }
  }
  for (Iova a = iova; a < iova + size;) {
    const Result<pgtable::Mapping> m = d->table_->Lookup(a);
    if (!m.ok()) {
      a += page;
      continue;
    }
    const Iova run_end = m->iova + m->size < iova + size ? m->iova + m->size : iova + size;
    // A failure here leaves this whole range owed as well (it may reach past the owed one).
    DEVISO_TRY(remember(d->table_->Unmap(a, run_end - a)));
    a = run_end;
  }
  // The engine may have completed the owed invalidation in this very call (folding in the
  // tables a failed sync kept), even though it answered -ENOENT.
  if (d->pending_end_ > d->pending_start_) {
    DEVISO_TRY(
        remember(InvalidateDomainRange(*d, pgtable::InvalidationRange{iova, size, 0, true})));
  }
  if (iova <= owed_start && owed_end - iova <= size) d->failed_start_ = d->failed_end_ = 0;
  return Status::Ok();
}

Result<Paddr> Smmuv3::IovaToPhys(Domain* domain, Iova iova) {
  auto* d = static_cast<SmmuDomain*>(domain);
  return d->table_->IovaToPhys(iova);
}

namespace {

// Feeds the engine's leaves (ascending IOVA) to a LeafMerger.
class LeafFeed final : public pgtable::MappingVisitor {
 public:
  explicit LeafFeed(LeafMerger& merger) : merger_(merger) {}
  bool Visit(const pgtable::Mapping& m) override {
    LeafExtent leaf;
    leaf.iova = m.iova;
    leaf.pa = m.pa;
    leaf.size = m.size;
    leaf.perms = m.perms;
    // pgtable::MemType and deviso::MemType list the same four types in the same order.
    leaf.type = static_cast<MemType>(static_cast<uint8_t>(m.type));
    leaf.leaf_size = m.size;
    return merger_.Add(leaf);
  }

 private:
  LeafMerger& merger_;
};

}  // namespace

// Reads the domain's tables through the engine's visitor (the context lock keeps them still).
Status Smmuv3::ForEachLeaf(Domain* domain, LeafVisitor& visitor) {
  auto* d = static_cast<SmmuDomain*>(domain);
  LeafMerger merger(visitor);
  LeafFeed feed(merger);
  d->table_->ForEachMapping(feed);
  merger.Finish();
  return Status::Ok();
}

}  // namespace deviso::smmuv3
