// The one writer of SMMUv3 configuration entries: STEs (IHI0070 5.2) and CDs (5.4).
//
// The SMMU may fetch an entry at any moment while software changes it, and reads it as 64-bit
// single-copy-atomic words (3.21.3 "Structure update procedures"), so a change made of several
// word stores must never let it fetch a mixture that is neither the old entry nor the new one
// in the bits it uses. WriteEntry() plans the change from what each state uses and issues the
// stores in steps, with the entry's invalidation (CFGI + CMD_SYNC) between them where a later
// step depends on the SMMU having dropped an earlier state:
//
//   The "critical" words are those that, once every bit the current entry does not use had its
//   new value, would still differ from the target in a bit the new entry uses.
//   At most one critical word (hitless):
//     1. Prepare: every bit the current entry does not use takes its new value (the SMMU cannot
//        tell: the entry is still the old one in every bit it uses). Sync if anything changed.
//     2. The critical word, if any, is stored (one single-copy-atomic store: old, then new),
//        then synced.
//   More (break): word 0 is stored invalid (V=0), synced; the other words take their new
//   values, synced; word 0 takes its new value, synced.
//   3. Finish: the bits the new entry does not use take their target values too (no sync:
//      the SMMU uses none of them, and the next change's prepare step syncs before any critical
//      store).
//
// So blocked -> valid is prepare (words 1-7 and word 0 without V) + V: 2 syncs; valid ->
// blocked is V=0: 1 sync; a change of one word of a valid entry (e.g. S1ContextPtr) is hitless
// in 1 sync; a change of several used words goes through invalid: 3 syncs.
//
// The idea is Linux's arm_smmu_write_entry (drivers/iommu/arm/arm-smmu-v3/); this is an
// independent implementation over deviso's seams.

#ifndef DEVISO_SRC_SMMUV3_ENTRY_WRITER_H_
#define DEVISO_SRC_SMMUV3_ENTRY_WRITER_H_

#include <cstddef>
#include <cstdint>

#include "deviso/status.h"

namespace deviso::smmuv3 {

// The largest entry the writer handles (STE and CD: 8 words, 64 bytes).
inline constexpr size_t kMaxEntryWords = 8;

// What the writer needs to know of one kind of entry, and how it reaches the SMMU.
class EntryWriterOps {
 public:
  // `words`: the entry's size in 64-bit words (at most kMaxEntryWords); `valid_bit`: V's mask
  // in word 0 (STE: bit 0; CD: bit 31).
  constexpr EntryWriterOps(size_t words, uint64_t valid_bit)
      : words_(words), valid_bit_(valid_bit) {}

  // The bits of each of the entry's words that the SMMU uses when it reads `entry`: `used[i]`
  // for word i. An invalid entry uses only V. Reporting more bits than the SMMU uses is safe (the
  // writer then breaks more often); reporting fewer is not.
  virtual void UsedBits(const uint64_t* entry, uint64_t* used) const = 0;
  // Stores one 64-bit word of the live entry (single-copy atomic; the test seam sees each state
  // the SMMU could fetch here).
  virtual void StoreWord(size_t word, uint64_t value) = 0;
  // Makes the stores so far visible to the SMMU (clean to PoC when it is not coherent), without
  // waiting for anything.
  virtual void Publish() = 0;
  // Publishes, then invalidates what the SMMU may have cached of the entry and waits for it
  // (CFGI_* + CMD_SYNC). Errors: whatever the command queue reports (-EIO, -ETIMEDOUT, ...).
  virtual Status Sync() = 0;

  size_t words() const { return words_; }
  uint64_t valid_bit() const { return valid_bit_; }

 protected:
  ~EntryWriterOps() = default;

 private:
  size_t words_;
  uint64_t valid_bit_;
};

// What WriteEntry() did, for tests and for the caller's bookkeeping.
struct EntryWriteReport {
  size_t syncs = 0;        // Sync() calls made (the failing one included)
  bool broke = false;      // the change went through an invalid entry (step 2, "more")
  bool any_store = false;  // at least one word of the live entry changed
};

// Changes the live entry `current` (its words as they are now in memory, read by the caller)
// into `target` through `ops`, as the file comment describes. `force_sync`: sync once even when
// nothing changes (an entry that reads invalid in memory but whose earlier invalidation failed
// may still be cached valid).
//
// Errors: the first failing Sync()'s status; the writer stops there. The live entry is then the
// last state stored, which is always one of: the old entry with bits it does not use changed
// (failed in step 1), the new entry in every bit it uses (failed after a critical store), or an
// invalid entry (failed inside a break). The SMMU may still hold any state stored so far until a
// later invalidation of the entry completes: the caller records that (Smmuv3's
// config_unconfirmed_) and decides what to write next (the stream table blocks the stream).
// Invalid arguments (more than kMaxEntryWords words, no valid bit): -EINVAL, nothing stored.
Status WriteEntry(EntryWriterOps& ops, const uint64_t* current, const uint64_t* target,
                  bool force_sync = false, EntryWriteReport* report = nullptr);

}  // namespace deviso::smmuv3

#endif  // DEVISO_SRC_SMMUV3_ENTRY_WRITER_H_
