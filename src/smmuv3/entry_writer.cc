// The one writer of STEs and CDs. See entry_writer.h; section numbers refer to Arm IHI0070.

#include "smmuv3/entry_writer.h"

namespace deviso::smmuv3 {

Status WriteEntry(EntryWriterOps& ops, const uint64_t* current, const uint64_t* target,
                  bool force_sync, EntryWriteReport* report) {
  const size_t n = ops.words();
  if (n == 0 || n > kMaxEntryWords || ops.valid_bit() == 0 || current == nullptr ||
      target == nullptr) {
    return Status::InvalidArgument();
  }
  EntryWriteReport local;
  EntryWriteReport& r = report != nullptr ? *report : local;
  r = EntryWriteReport{};

  uint64_t live[kMaxEntryWords] = {};
  for (size_t i = 0; i < n; ++i) live[i] = current[i];
  uint64_t cur_used[kMaxEntryWords] = {};
  uint64_t new_used[kMaxEntryWords] = {};
  ops.UsedBits(live, cur_used);
  ops.UsedBits(target, new_used);

  // Stores only what changes; reports whether it did.
  auto store = [&](size_t i, uint64_t value) {
    if (live[i] == value) return false;
    live[i] = value;
    ops.StoreWord(i, value);
    r.any_store = true;
    return true;
  };
  bool synced = false;
  auto sync = [&]() {
    ++r.syncs;
    synced = true;
    return ops.Sync();
  };

  // What the entry would be with every bit the current entry does not use at its new value:
  // the SMMU cannot tell it from the current one.
  uint64_t prepared[kMaxEntryWords] = {};
  for (size_t i = 0; i < n; ++i) prepared[i] = (live[i] & cur_used[i]) | (target[i] & ~cur_used[i]);
  // The words that would still differ from the target in a bit the new entry uses.
  size_t critical = 0;
  size_t critical_word = 0;
  for (size_t i = 0; i < n; ++i) {
    if (((prepared[i] ^ target[i]) & new_used[i]) != 0) {
      ++critical;
      critical_word = i;
    }
  }

  if (critical <= 1) {
    // 1. Prepare. Every state stored here is the old entry in every bit the SMMU uses. The
    //    SMMU may hold the entry from before these stores: a critical store must not be fetched
    //    together with a cached copy of words it did not re-read, hence the sync.
    bool changed = false;
    for (size_t i = 0; i < n; ++i) changed |= store(i, prepared[i]);
    if (changed) DEVISO_TRY(sync());
    // 2. One single-copy-atomic store: the SMMU sees the old entry or the new one.
    if (critical == 1) {
      store(critical_word, target[critical_word]);
      DEVISO_TRY(sync());
    }
  } else {
    // 2. No single store can do it: through an invalid entry (V=0 uses nothing else).
    r.broke = true;
    store(0, live[0] & ~ops.valid_bit());
    DEVISO_TRY(sync());
    bool rest = false;
    for (size_t i = 1; i < n; ++i) rest |= store(i, target[i]);
    // The other words must be what the SMMU fetches together with the new word 0.
    if (rest) DEVISO_TRY(sync());
    store(0, target[0]);
    DEVISO_TRY(sync());
  }

  // 3. Finish: the bits the new entry does not use. No sync: the SMMU uses none of them, and the
  //    next change's prepare step syncs before it makes any critical store.
  bool finished = false;
  for (size_t i = 0; i < n; ++i) finished |= store(i, target[i]);
  if (finished) ops.Publish();

  if (force_sync && !synced) DEVISO_TRY(sync());
  return Status::Ok();
}

}  // namespace deviso::smmuv3
