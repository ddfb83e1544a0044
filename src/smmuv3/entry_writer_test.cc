// The entry writer on its own (entry_writer.h): for STEs and CDs, every state the SMMU could
// fetch while an entry changes is the old entry or the new one in the bits it uses (or, only on a
// change that needs a break, an invalid entry), the number of syncs is exact, and a failing sync
// leaves the documented state. CTest label `smmuv3`.
//
// The "bits the SMMU uses" here are the test's own reading of IHI0070 5.2/5.4 (ReferenceSteUsed,
// ReferenceCdUsed), not the driver's SteUsedBits/CdUsedBits, so a mistake in those fails here.

#include "smmuv3/entry_writer.h"

#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "smmuv3/domains.h"
#include "smmuv3/hw.h"
#include "smmuv3/stream_table.h"

namespace deviso::smmuv3 {
namespace {

using Entry = std::array<uint64_t, kMaxEntryWords>;

// 5.2, as this test reads it: invalid uses V; stage 1 uses word 0, word 1 and S2VMID; stage 2
// uses V/Config and words 1-3; bypass V/Config and word 1.
Entry ReferenceSteUsed(const Entry& e) {
  Entry used{};
  const ds::Ste::W0 w0{e[0]};
  used[0] = 1;
  if (w0.v() == 0) return used;
  used[0] = 0xf;
  switch (w0.config()) {
    case ds::kConfigS1Translate:
      used[0] = ~0ULL;
      used[1] = ~0ULL;
      used[2] = 0xffff;
      break;
    case ds::kConfigS2Translate:
      used[1] = used[2] = used[3] = ~0ULL;
      break;
    case ds::kConfigBypass:
      used[1] = ~0ULL;
      break;
    default:
      break;
  }
  return used;
}

// 5.4: invalid uses V (bit 31); a valid CD is read in full.
Entry ReferenceCdUsed(const Entry& e) {
  Entry used{};
  used[0] = 1ULL << 31;
  if ((e[0] & (1ULL << 31)) == 0) return used;
  used.fill(~0ULL);
  return used;
}

using UsedFn = Entry (*)(const Entry&);

bool SameInUsedBits(const Entry& a, const Entry& b, UsedFn used_fn) {
  const Entry ub = used_fn(b);
  const Entry ua = used_fn(a);
  for (size_t i = 0; i < kMaxEntryWords; ++i) {
    if (((a[i] ^ b[i]) & (ub[i] | ua[i])) != 0) return false;
  }
  return true;
}

// The writer's ops over a plain array: logs every store and sync, can fail a chosen sync.
class FakeOps final : public EntryWriterOps {
 public:
  enum class Kind { kSte, kCd };
  explicit FakeOps(Kind kind, const Entry& initial)
      : EntryWriterOps(8, kind == Kind::kSte ? 1ULL : 1ULL << 31), kind_(kind), live(initial) {}
  void UsedBits(const uint64_t* entry, uint64_t* used) const override {
    if (kind_ == Kind::kSte) {
      SteUsedBits(entry, used);
    } else {
      CdUsedBits(entry, used);
    }
  }
  void StoreWord(size_t word, uint64_t value) override {
    live[word] = value;
    states.push_back(live);
    log.push_back(Step{false, word});
  }
  void Publish() override { ++publishes; }
  Status Sync() override {
    log.push_back(Step{true, 0});
    ++syncs;
    if (syncs == fail_sync) return Status::TimedOut();
    return Status::Ok();
  }
  struct Step {
    bool sync;
    size_t word;
  };
  Kind kind_;
  Entry live;
  std::vector<Entry> states;
  std::vector<Step> log;
  size_t syncs = 0;
  size_t publishes = 0;
  size_t fail_sync = 0;  // 1-based; 0: none fails
};

// STEs to move between (values as the driver builds them: only the fields that matter here).
Entry S1Ste(uint64_t cd_pa, uint64_t cir) {
  Entry e{};
  e[0] = ds::Ste::W0{}.set_v(1).set_config(ds::kConfigS1Translate).set_s1_context_ptr(cd_pa).raw;
  e[1] = ds::Ste::W1{}.set_shcfg(1).set_s1cir(cir).set_s1cor(cir).raw;
  return e;
}
Entry S2Ste(uint16_t vmid, uint64_t ttb) {
  Entry e{};
  e[0] = ds::Ste::W0{}.set_v(1).set_config(ds::kConfigS2Translate).raw;
  e[1] = ds::Ste::W1{}.set_shcfg(1).raw;
  e[2] = ds::Ste::W2{}.set_s2vmid(vmid).set_s2t0sz(16).set_s2aa64(1).set_s2r(1).raw;
  e[3] = ds::Ste::W3{}.set_s2ttb(ttb).raw;
  return e;
}
Entry BypassSte() {
  Entry e{};
  e[0] = ds::Ste::W0{}.set_v(1).set_config(ds::kConfigBypass).raw;
  e[1] = ds::Ste::W1{}.set_shcfg(1).raw;
  return e;
}
Entry ValidCd(uint16_t asid, uint64_t ttb0) {
  Entry e{};
  e[0] = ds::Cd::W0{}
             .set_t0sz(16)
             .set_epd1(1)
             .set_aa64(1)
             .set_r(1)
             .set_a(1)
             .set_asid(asid)
             .set_v(1)
             .raw;
  e[1] = ds::Cd::W1{}.set_ttb0(ttb0).raw;
  e[3] = 0x0000'0000'0044'ff04ULL;  // a MAIR
  return e;
}

struct Outcome {
  Status status;
  EntryWriteReport report;
};

// Runs one change and checks the invariant on every state it stored.
Outcome Change(FakeOps& ops, const Entry& from, const Entry& to, UsedFn used_fn,
               bool force = false) {
  Outcome out;
  out.status = WriteEntry(ops, from.data(), to.data(), force, &out.report);
  for (size_t i = 0; i < ops.states.size(); ++i) {
    const Entry& s = ops.states[i];
    const bool invalid = (s[0] & ops.valid_bit()) == 0;
    EXPECT_TRUE(SameInUsedBits(s, from, used_fn) || SameInUsedBits(s, to, used_fn) ||
                (out.report.broke && invalid))
        << "state " << i << " is neither the old nor the new entry: word0=0x" << std::hex << s[0];
  }
  EXPECT_EQ(out.report.syncs, ops.syncs);
  return out;
}

// The index in the log of the store that set V, and of the first sync.
size_t IndexOfValidStore(const FakeOps& ops) {
  for (size_t i = 0; i < ops.states.size(); ++i) {
    if ((ops.states[i][0] & ops.valid_bit()) != 0) {
      size_t stores = 0;
      for (size_t j = 0; j < ops.log.size(); ++j) {
        if (!ops.log[j].sync && stores++ == i) return j;
      }
    }
  }
  return ops.log.size();
}
size_t IndexOfFirstSync(const FakeOps& ops) {
  for (size_t j = 0; j < ops.log.size(); ++j) {
    if (ops.log[j].sync) return j;
  }
  return ops.log.size();
}

TEST(EntryWriter, FreshSteInstallWritesVLastAfterASync) {
  const Entry blocked{};
  const Entry target = S1Ste(0x8000'1000, 1);
  FakeOps ops(FakeOps::Kind::kSte, blocked);
  const Outcome o = Change(ops, blocked, target, ReferenceSteUsed);
  ASSERT_TRUE(o.status.ok());
  EXPECT_EQ(ops.live, target);
  EXPECT_EQ(o.report.syncs, 2U) << "prepare (words without V) + V";
  EXPECT_FALSE(o.report.broke);
  EXPECT_LT(IndexOfFirstSync(ops), IndexOfValidStore(ops))
      << "the other words are synced before V=1 can be fetched with them";
  EXPECT_TRUE(ops.log.back().sync) << "the install ends with its sync";
}

TEST(EntryWriter, ChangingOneUsedWordOfAValidSteIsHitlessInOneSync) {
  // A new CD pointer: word 0 only (S1ContextPtr), 1 single-copy-atomic store.
  const Entry from = S1Ste(0x8000'1000, 1);
  const Entry to = S1Ste(0x8000'2000, 1);
  FakeOps ops(FakeOps::Kind::kSte, from);
  const Outcome o = Change(ops, from, to, ReferenceSteUsed);
  ASSERT_TRUE(o.status.ok());
  EXPECT_EQ(ops.live, to);
  EXPECT_EQ(o.report.syncs, 1U);
  EXPECT_FALSE(o.report.broke);
  ASSERT_EQ(ops.states.size(), 1U) << "one store";
  // The same for word 1 alone (the CD fetch attributes).
  FakeOps ops1(FakeOps::Kind::kSte, from);
  const Entry to1 = S1Ste(0x8000'1000, 0);
  const Outcome o1 = Change(ops1, from, to1, ReferenceSteUsed);
  ASSERT_TRUE(o1.status.ok());
  EXPECT_EQ(o1.report.syncs, 1U);
  EXPECT_FALSE(o1.report.broke);
}

TEST(EntryWriter, ChangingSeveralUsedWordsBreaksThroughInvalidInThreeSyncs) {
  // Stage 1 -> stage 2: Config and words 1-3 change: no single store can do it.
  const Entry from = S1Ste(0x8000'1000, 1);
  const Entry to = S2Ste(7, 0x9000'0000);
  FakeOps ops(FakeOps::Kind::kSte, from);
  const Outcome o = Change(ops, from, to, ReferenceSteUsed);
  ASSERT_TRUE(o.status.ok());
  EXPECT_EQ(ops.live, to);
  EXPECT_TRUE(o.report.broke);
  EXPECT_EQ(o.report.syncs, 3U) << "V=0, the other words, the new word 0";
  ASSERT_FALSE(ops.states.empty());
  EXPECT_EQ(ops.states.front()[0] & 1, 0U) << "the first store invalidates";
  EXPECT_EQ(ops.log[1].sync, true) << "and is synced before anything else changes";
}

TEST(EntryWriter, DisablingAnSteIsOneStoreOfVThenOneSync) {
  const Entry from = S2Ste(3, 0x9000'0000);
  const Entry blocked{};
  FakeOps ops(FakeOps::Kind::kSte, from);
  const Outcome o = Change(ops, from, blocked, ReferenceSteUsed);
  ASSERT_TRUE(o.status.ok());
  EXPECT_EQ(ops.live, blocked) << "the unused words are cleared too";
  EXPECT_EQ(o.report.syncs, 1U);
  ASSERT_GE(ops.log.size(), 2U);
  EXPECT_FALSE(ops.log[0].sync);
  EXPECT_EQ(ops.log[0].word, 0U) << "word 0 (V=0) first";
  EXPECT_TRUE(ops.log[1].sync) << "synced before words 1-3 are cleared";
  for (size_t i = 2; i < ops.log.size(); ++i) EXPECT_FALSE(ops.log[i].sync);
  EXPECT_GE(ops.publishes, 1U) << "the cleared words are published";
}

TEST(EntryWriter, CdFormUsesBit31AsValid) {
  const Entry blank{};
  const Entry cd = ValidCd(5, 0x8010'0000);
  FakeOps ops(FakeOps::Kind::kCd, blank);
  const Outcome o = Change(ops, blank, cd, ReferenceCdUsed);
  ASSERT_TRUE(o.status.ok());
  EXPECT_EQ(ops.live, cd);
  EXPECT_EQ(o.report.syncs, 2U);
  EXPECT_LT(IndexOfFirstSync(ops), IndexOfValidStore(ops)) << "V (bit 31) last";
  // A live CD with a new ASID and table (two words): through invalid.
  FakeOps again(FakeOps::Kind::kCd, cd);
  const Entry other = ValidCd(6, 0x8020'0000);
  const Outcome o2 = Change(again, cd, other, ReferenceCdUsed);
  ASSERT_TRUE(o2.status.ok());
  EXPECT_TRUE(o2.report.broke);
  EXPECT_EQ(o2.report.syncs, 3U);
  EXPECT_EQ(again.live, other);
  // And disabled: V only, 1 sync.
  FakeOps off(FakeOps::Kind::kCd, other);
  const Outcome o3 = Change(off, other, blank, ReferenceCdUsed);
  ASSERT_TRUE(o3.status.ok());
  EXPECT_EQ(o3.report.syncs, 1U);
  EXPECT_EQ(off.live, blank);
}

TEST(EntryWriter, AFailingSyncStopsTheWriterInTheDocumentedState) {
  const Entry blocked{};
  const Entry target = S1Ste(0x8000'1000, 1);
  {
    // Prepare's sync fails: the entry is still invalid (every word but V written).
    FakeOps ops(FakeOps::Kind::kSte, blocked);
    ops.fail_sync = 1;
    const Outcome o = Change(ops, blocked, target, ReferenceSteUsed);
    EXPECT_EQ(o.status, Status::TimedOut());
    EXPECT_EQ(ops.live[0] & 1, 0U) << "V never stored";
    EXPECT_TRUE(ops.log.back().sync) << "nothing stored after the failing sync";
    EXPECT_EQ(o.report.syncs, 1U);
  }
  {
    // The critical store's sync fails: the entry is the new one in memory (the SMMU may hold
    // either until an invalidation completes).
    FakeOps ops(FakeOps::Kind::kSte, blocked);
    ops.fail_sync = 2;
    const Outcome o = Change(ops, blocked, target, ReferenceSteUsed);
    EXPECT_EQ(o.status, Status::TimedOut());
    EXPECT_EQ(ops.live, target);
    EXPECT_TRUE(ops.log.back().sync);
  }
  {
    // A break whose first sync fails: left invalid, the other words untouched.
    const Entry from = S1Ste(0x8000'1000, 1);
    FakeOps ops(FakeOps::Kind::kSte, from);
    ops.fail_sync = 1;
    const Outcome o = Change(ops, from, S2Ste(7, 0x9000'0000), ReferenceSteUsed);
    EXPECT_EQ(o.status, Status::TimedOut());
    EXPECT_EQ(ops.live[0] & 1, 0U);
    for (size_t i = 1; i < kMaxEntryWords; ++i) EXPECT_EQ(ops.live[i], from[i]) << i;
  }
  {
    // A disable whose sync fails: V=0 in memory, the other words still the old ones.
    const Entry from = S2Ste(3, 0x9000'0000);
    FakeOps ops(FakeOps::Kind::kSte, from);
    ops.fail_sync = 1;
    const Outcome o = Change(ops, from, blocked, ReferenceSteUsed);
    EXPECT_EQ(o.status, Status::TimedOut());
    EXPECT_EQ(ops.live[0], 0U);
    EXPECT_EQ(ops.live[3], from[3]);
  }
}

TEST(EntryWriter, ForcedSyncOfAnUnchangedEntryStoresNothing) {
  const Entry blocked{};
  FakeOps ops(FakeOps::Kind::kSte, blocked);
  const Outcome o = Change(ops, blocked, blocked, ReferenceSteUsed, /*force=*/true);
  ASSERT_TRUE(o.status.ok());
  EXPECT_TRUE(ops.states.empty());
  EXPECT_EQ(o.report.syncs, 1U);
  FakeOps quiet(FakeOps::Kind::kSte, blocked);
  const Outcome q = Change(quiet, blocked, blocked, ReferenceSteUsed);
  ASSERT_TRUE(q.status.ok());
  EXPECT_EQ(q.report.syncs, 0U) << "no change, no sync";
  EXPECT_FALSE(q.report.any_store);
}

TEST(EntryWriter, EveryTransitionBetweenTheDriversStesIsSafe) {
  const Entry entries[] = {Entry{},
                           S1Ste(0x8000'1000, 1),
                           S1Ste(0x8000'2000, 0),
                           S2Ste(1, 0x9000'0000),
                           S2Ste(2, 0x9100'0000),
                           BypassSte()};
  for (const Entry& from : entries) {
    for (const Entry& to : entries) {
      FakeOps ops(FakeOps::Kind::kSte, from);
      const Outcome o = Change(ops, from, to, ReferenceSteUsed);
      ASSERT_TRUE(o.status.ok());
      EXPECT_EQ(ops.live, to);
      EXPECT_LE(o.report.syncs, 3U);
      if (from == to) {
        EXPECT_EQ(o.report.syncs, 0U);
      }
    }
  }
}

TEST(EntryWriter, RefusesAnEntryItCannotHold) {
  class Bad final : public EntryWriterOps {
   public:
    Bad(size_t words, uint64_t v) : EntryWriterOps(words, v) {}
    void UsedBits(const uint64_t*, uint64_t*) const override {}
    void StoreWord(size_t, uint64_t) override { ++stores; }
    void Publish() override {}
    Status Sync() override { return Status::Ok(); }
    size_t stores = 0;
  };
  const Entry a{}, b = BypassSte();
  Bad too_big(kMaxEntryWords + 1, 1);
  EXPECT_EQ(WriteEntry(too_big, a.data(), b.data()), Status::InvalidArgument());
  Bad no_v(8, 0);
  EXPECT_EQ(WriteEntry(no_v, a.data(), b.data()), Status::InvalidArgument());
  EXPECT_EQ(too_big.stores + no_v.stores, 0U);
}

}  // namespace
}  // namespace deviso::smmuv3
