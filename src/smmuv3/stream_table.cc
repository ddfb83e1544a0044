// Arm SMMUv3 stream table (3.3, 5.1, 5.2): its set-up, L2 tables, the STE writer, and the
// stream-facing calls (Attach, Detach, BypassStream, BlockStream). See stream_table.h.

#include "smmuv3/stream_table.h"

#include "core/barrier.h"
#include "smmuv3/cmdq.h"
#include "smmuv3/dma_word.h"
#include "smmuv3/entry_writer.h"
#include "smmuv3/smmuv3.h"

namespace deviso::smmuv3 {

Status Smmuv3::SetupStreamTable() {
  const uint64_t table_sh = coherent_ ? reg::kShareInner : reg::kShareOuter;
  (void)table_sh;
  reg::StrtabBaseCfg cfg;
  size_t bytes;
  if (two_level()) {
    bytes = (size_t{1} << (sid_bits_ - kL2SplitBits)) * sizeof(ds::L1Std);
    cfg.set_fmt(reg::kStrtabFmt2Level).set_split(kL2SplitBits).set_log2size(sid_bits_);
  } else {
    bytes = (size_t{1} << sid_bits_) * sizeof(ds::Ste);
    cfg.set_fmt(reg::kStrtabFmtLinear).set_log2size(sid_bits_);
  }
  // Aligned to its size (6.3.24); all zero: every STE invalid (V=0) or every L1 descriptor
  // invalid (Span=0): default-deny from the start, with events recorded.
  DEVISO_ASSIGN_OR_RETURN(strtab_, config_.dma->Allocate(bytes, bytes < 64 ? 64 : bytes));
  reg::StrtabBase base;
  base.set_addr(strtab_.pa).set_ra(coherent_ ? 1 : 0);
  base.WriteTo(*regs_);
  cfg.WriteTo(*regs_);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Stream table entries and context descriptors (5.1, 5.2, 5.4)

Result<ds::Ste*> Smmuv3::SteSlot(uint32_t sid, bool allocate) {
  if constexpr (!config::kTwoLevelStreamTable) {
    (void)allocate;
    return static_cast<ds::Ste*>(strtab_.cpu) + sid;
  }
  if (!two_level()) return static_cast<ds::Ste*>(strtab_.cpu) + sid;
  const uint32_t l1 = sid >> kL2SplitBits;
  if (l2_[l1].cpu == nullptr) {
    if (!allocate) return Status::NotFound();
    const size_t bytes = (size_t{1} << kL2SplitBits) * sizeof(ds::Ste);
    DEVISO_ASSIGN_OR_RETURN(l2_[l1], config_.dma->Allocate(bytes, bytes));
    GrowDynamicHull(l2_[l1]);
    // The L2 table is all invalid STEs (zeroed and cleaned by Allocate): publishing the L1
    // descriptor changes nothing a device can do, except that it now reports C_BAD_STE
    // instead of C_BAD_STREAMID.
    auto* l1std = static_cast<uint64_t*>(strtab_.cpu) + l1;
    DmaWriteBarrier();
    Store64(l1std, ds::L1Std{}.set_span(kL2SplitBits + 1).set_l2ptr(l2_[l1].pa).raw);
    CleanForSmmu(l1std, sizeof(*l1std));
  }
  return static_cast<ds::Ste*>(l2_[l1].cpu) + (sid & ((1U << kL2SplitBits) - 1));
}

const ds::Ste* Smmuv3::SteForTest(uint32_t sid) const {
  if (!two_level()) return static_cast<const ds::Ste*>(strtab_.cpu) + sid;
  const DmaBuffer& l2 = l2_[sid >> kL2SplitBits];
  if (l2.cpu == nullptr) return nullptr;
  return static_cast<const ds::Ste*>(l2.cpu) + (sid & ((1U << kL2SplitBits) - 1));
}

ds::Ste BuildSte(const SmmuDomain& d, bool coherent) {
  ds::Ste ste;
  const uint64_t cache = coherent ? reg::kCacheWriteBack : reg::kCacheNonCacheable;
  const uint64_t share = coherent ? reg::kShareInner : reg::kShareOuter;
  ds::Ste::W0 w0;
  w0.set_v(1);
  ds::Ste::W1 w1;
  w1.set_shcfg(1);  // incoming shareability
  if (!d.stage2()) {
    w0.set_config(ds::kConfigS1Translate).set_s1_context_ptr(d.cd_pa());
    w1.set_s1cir(cache).set_s1cor(cache).set_s1csh(share);
  } else {
    const pgtable::PageTable& t = d.table();
    const uint64_t page = t.page_size();
    w0.set_config(ds::kConfigS2Translate);
    ds::Ste::W2 w2;
    w2.set_s2vmid(d.vmid()).set_s2t0sz(64 - t.config().ias);
    // 5.2 STE.S2SL0: 4K granule: 0 = level 2, 1 = level 1, 2 = level 0; 16K and 64K:
    // 0 = level 3, 1 = level 2, 2 = level 1.
    const unsigned sl0 = page == kGranule4K ? 2 - t.start_level() : 3 - t.start_level();
    w2.set_s2sl0(sl0).set_s2ir0(cache).set_s2or0(cache).set_s2sh0(share);
    w2.set_s2tg(TgField(page));
    w2.set_s2ps(AddressSizeEncoding(t.config().oas)).set_s2aa64(1).set_s2r(1);
    ste.raw[2] = w2.raw;
    ste.raw[3] = ds::Ste::W3{}.set_s2ttb(t.root()).raw;
  }
  ste.raw[0] = w0.raw;
  ste.raw[1] = w1.raw;
  return ste;
}

ds::Ste BuildBypassSte() {
  ds::Ste ste;
  ste.raw[0] = ds::Ste::W0{}.set_v(1).set_config(ds::kConfigBypass).raw;
  ste.raw[1] = ds::Ste::W1{}.set_shcfg(1).raw;
  return ste;
}

void SteUsedBits(const uint64_t* ste, uint64_t* used) {
  for (size_t i = 0; i < ds::Ste::kWords; ++i) used[i] = 0;
  const ds::Ste::W0 w0{ste[0]};
  used[0] = ds::Ste::W0{}.set_v(1).raw;
  if (w0.v() == 0) return;  // an invalid STE: C_BAD_STE, nothing else is read
  used[0] = ds::Ste::W0{}.set_v(1).set_config(0b111).raw;
  const uint64_t config = w0.config();
  if ((config & 0b100) == 0) return;  // abort (0b000) or reserved: no other field
  used[1] = ~uint64_t{0};             // SHCFG, STRW, EATS, ... of every non-abort config
  if ((config & 0b001) != 0) {
    // Stage 1 (S1-translate, nested): the CD pointer and format, and the stage 2 VMID the SMMU
    // may tag stage 1 entries with.
    used[0] = ~uint64_t{0};
    used[2] |= ds::Ste::W2{}.set_s2vmid(0xffff).raw;
  }
  if ((config & 0b010) != 0) {
    // Stage 2 (S2-translate, nested): the whole stage 2 configuration and its table.
    used[2] = ~uint64_t{0};
    used[3] = ~uint64_t{0};
  }
}

// Every STE store goes through here, so a test can see each state the SMMU could fetch.
void Smmuv3::StoreSteWord(uint32_t sid, ds::Ste* ste, size_t word, uint64_t value) {
  Store64(&ste->raw[word], value);
  if (ste_observer_ != nullptr) ste_observer_(ste_observer_ctx_, sid, *ste);
}

// STEs change only through the entry writer (entry_writer.h, 3.21.3): blocked -> valid in 2
// syncs (CFGI_STE each), valid -> blocked in 1 (CFGI_STE + CFGI_CD_ALL: CDs may have been cached
// through the old entry), a change of several used words of a valid entry through blocked.
Status Smmuv3::WriteSte(uint32_t sid, const ds::Ste& target, bool invalidate_blocked) {
  DEVISO_ASSIGN_OR_RETURN(ds::Ste * ste, SteSlot(sid, true));
  // The writer's seam for one STE of this unit.
  class SteOps final : public EntryWriterOps {
   public:
    SteOps(Smmuv3& smmu, uint32_t stream, ds::Ste* entry, bool drop_cds)
        : EntryWriterOps(ds::Ste::kWords, ds::Ste::W0{}.set_v(1).raw),
          smmu_(smmu),
          sid_(stream),
          ste_(entry),
          drop_cds_(drop_cds) {}
    void UsedBits(const uint64_t* entry, uint64_t* used) const override {
      SteUsedBits(entry, used);
    }
    void StoreWord(size_t word, uint64_t value) override {
      smmu_.StoreSteWord(sid_, ste_, word, value);
    }
    void Publish() override { smmu_.CleanForSmmu(ste_, sizeof(*ste_)); }
    Status Sync() override {
      Publish();
      const ds::Command cfgi[2] = {CfgiSte(sid_), CfgiCdAll(sid_)};
      return smmu_.Submit(cfgi, drop_cds_ ? 2 : 1);
    }

   private:
    Smmuv3& smmu_;
    uint32_t sid_;
    ds::Ste* ste_;
    bool drop_cds_;
  };
  auto snapshot = [ste] {
    ds::Ste now;
    for (size_t i = 0; i < ds::Ste::kWords; ++i) now.raw[i] = Load64(&ste->raw[i]);
    return now;
  };

  const ds::Ste current = snapshot();
  const bool was_valid = ds::Ste::W0{current.raw[0]}.v() != 0;
  // An STE that reads V=0 may still be cached valid by the SMMU when an earlier CFGI+SYNC for
  // it failed (a retried Detach): `invalidate_blocked` redoes the invalidation all the same.
  SteOps ops(*this, sid, ste, was_valid || invalidate_blocked);
  const Status s = WriteEntry(ops, current.raw, target.raw, invalidate_blocked);
  if (s.ok()) return s;
  if (ds::Ste::W0{target.raw[0]}.v() == 0) {
    // Blocking not confirmed: the SMMU may still hold the old entry.
    config_unconfirmed_ = true;
    return s;
  }
  // Not confirmed: leave the stream blocked in memory (the unit is marked broken if the
  // sync timed out, so nothing it may use is freed). If even this invalidation fails the SMMU
  // may hold the new entry: DestroyDomain then issues CFGI_ALL before the CD and tables it
  // names can be freed.
  const ds::Ste now = snapshot();
  SteOps cleanup(*this, sid, ste, /*drop_cds=*/true);
  if (!WriteEntry(cleanup, now.raw, ds::Ste{}.raw, /*force_sync=*/true).ok()) {
    config_unconfirmed_ = true;
  }
  return s;
}

Status Smmuv3::Attach(Domain* domain, uint32_t sid) {
  DEVISO_TRY(ValidateStream(sid));
  port::LockGuard guard(lock_);
  SmmuDomain* d = domains_.Find(domain);
  if (d == nullptr) return Status::InvalidArgument();
  DEVISO_TRY(streams_.CanAttach(sid));  // -EEXIST (attached anywhere), -ENOMEM
  if (broken()) return Status::IoError();
  DEVISO_TRY(WriteSte(sid, BuildSte(*d, coherent_)));
  streams_.Add(sid, d);
  return Status::Ok();
}

Status Smmuv3::Detach(Domain* domain, uint32_t sid) {
  port::LockGuard guard(lock_);
  const SmmuDomain* d = domains_.Find(domain);
  if (d == nullptr || !streams_.IsAttached(d, sid)) return Status::NotFound();
  if (broken()) return Status::IoError();
  // Always invalidates, even if a failed Detach already cleared V in memory.
  DEVISO_TRY(WriteSte(sid, ds::Ste{}, /*invalidate_blocked=*/true));
  streams_.Remove(sid);
  return Status::Ok();
}

Status Smmuv3::BypassStream(uint32_t sid) {
  DEVISO_TRY(ValidateStream(sid));
  port::LockGuard guard(lock_);
  if (streams_.attached(sid)) return Status::AlreadyExists();
  return WriteSte(sid, BuildBypassSte());
}

Status Smmuv3::BlockStream(uint32_t sid) {
  DEVISO_TRY(ValidateStream(sid));
  port::LockGuard guard(lock_);
  if (streams_.attached(sid)) return Status::AlreadyExists();
  return WriteSte(sid, ds::Ste{}, /*invalidate_blocked=*/true);
}

}  // namespace deviso::smmuv3
