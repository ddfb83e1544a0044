// Arm SMMUv3 stream table (3.3, 5.1, 5.2): its set-up, L2 tables, the STE writer, and the
// stream-facing calls (Attach, Detach, BypassStream, BlockStream). See stream_table.h.

#include "smmuv3/stream_table.h"

#include "core/barrier.h"
#include "smmuv3/cmdq.h"
#include "smmuv3/dma_word.h"
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
  base.set_addr(strtab_.pa >> 6).set_ra(coherent_ ? 1 : 0);
  regs_->Write64(reg::kStrtabBase, base.raw);
  regs_->Write32(reg::kStrtabBaseCfg, cfg.raw);
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
    Store64(l1std, ds::L1Std{}.set_span(kL2SplitBits + 1).set_l2ptr(l2_[l1].pa >> 6).raw);
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
    w0.set_config(ds::kConfigS1Translate).set_s1_context_ptr(d.cd_pa() >> 6);
    w1.set_s1cir(cache).set_s1cor(cache).set_s1csh(share);
  } else {
    const pgtable::PageTable& t = d.table();
    const uint64_t page = t.page_size();
    w0.set_config(ds::kConfigS2Translate);
    ds::Ste::W2 w2;
    w2.set_s2vmid(d.vmid()).set_s2t0sz(64 - t.config().ias);
    // 5.2 STE.S2SL0: 4K granule: 0 = level 2, 1 = level 1, 2 = level 0; 16K and 64K:
    // 0 = level 3, 1 = level 2, 2 = level 1.
    const unsigned sl0 = page == (1U << 12) ? 2 - t.start_level() : 3 - t.start_level();
    w2.set_s2sl0(sl0).set_s2ir0(cache).set_s2or0(cache).set_s2sh0(share);
    w2.set_s2tg(TgField(page));
    w2.set_s2ps(AddressSizeEncoding(t.config().oas)).set_s2aa64(1).set_s2r(1);
    ste.raw[2] = w2.raw;
    ste.raw[3] = ds::Ste::W3{}.set_s2ttb(t.root() >> 4).raw;
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

// The one writer of STEs (3.21.3, "Structure update procedures"). The SMMU reads an STE as
// several 64-bit single-copy-atomic words; every state it can observe is the old entry or
// the new one in every bit it uses:
//   blocked -> valid: words 1-7 while V=0 (only V is used), CFGI+SYNC so no fetch can mix
//                     them with an older word 0, then word 0 (V=1), CFGI+SYNC. 2 syncs.
//   valid -> blocked: word 0 (V=0), CFGI+SYNC, then words 1-7 (unused once V=0). 1 sync.
//   valid -> valid:   through blocked (not hitless; the API never needs it). 3 syncs.
void Smmuv3::StoreSteWord(uint32_t sid, ds::Ste* ste, size_t word, uint64_t value) {
  Store64(&ste->raw[word], value);
  if (config_.ste_observer != nullptr) config_.ste_observer(config_.ste_observer_ctx, sid, *ste);
}

Status Smmuv3::WriteSte(uint32_t sid, const ds::Ste& target, bool invalidate_blocked) {
  DEVISO_ASSIGN_OR_RETURN(ds::Ste * ste, SteSlot(sid, true));
  const ds::Command cfgi[2] = {CfgiSte(sid), CfgiCdAll(sid)};
  const bool was_valid = (Load64(&ste->raw[0]) & 1) != 0;
  const bool valid = (target.raw[0] & 1) != 0;
  // An STE that reads V=0 may still be cached valid by the SMMU when an earlier CFGI+SYNC for
  // it failed (a retried Detach): `invalidate_blocked` redoes the invalidation all the same.
  if (was_valid || invalidate_blocked) {
    StoreSteWord(sid, ste, 0, 0);
    CleanForSmmu(ste, sizeof(*ste));
    if (const Status s = Submit(cfgi, 2); !s.ok()) {
      config_unconfirmed_ = true;
      return s;
    }
    for (size_t i = 1; i < ds::Ste::kWords; ++i) StoreSteWord(sid, ste, i, 0);
    CleanForSmmu(ste, sizeof(*ste));
  }
  if (!valid) return Status::Ok();
  for (size_t i = 1; i < ds::Ste::kWords; ++i) StoreSteWord(sid, ste, i, target.raw[i]);
  CleanForSmmu(ste, sizeof(*ste));
  Status s = Submit(cfgi, 1);
  if (s.ok()) {
    DmaWriteBarrier();
    StoreSteWord(sid, ste, 0, target.raw[0]);
    CleanForSmmu(ste, sizeof(*ste));
    s = Submit(cfgi, 1);
    if (s.ok()) return s;
  }
  // Not confirmed: leave the stream blocked in memory (the unit is marked broken if the
  // sync timed out, so nothing it may use is freed). If even this invalidation fails the SMMU
  // may hold the new entry: DestroyDomain then issues CFGI_ALL before the CD and tables it
  // names can be freed.
  StoreSteWord(sid, ste, 0, 0);
  for (size_t i = 1; i < ds::Ste::kWords; ++i) StoreSteWord(sid, ste, i, 0);
  CleanForSmmu(ste, sizeof(*ste));
  const ds::Command cleanup[2] = {CfgiSte(sid), CfgiCdAll(sid)};
  if (!Submit(cleanup, 2).ok()) config_unconfirmed_ = true;
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
