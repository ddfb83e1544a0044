// deviso's C++ API: the registry of isolation units, devices and their StreamIDs, and contexts
// (domains). The C ABI (deviso.h) is a thin layer over Registry::Default().
//
// Model:
//   * Platform code registers each isolation unit (an IOMMU instance, an IsolationUnit) and binds
//     each DMA-capable device to one unit and to the StreamIDs it owns (up to kMaxSidsPerDevice).
//   * A Context is a domain (an address space on one unit) plus the (device, StreamID) pairs that
//     translate through it. The RFC's model is one context per (device, StreamID):
//     AllocContext()/FreeContext(). A domain may also be shared: CreateDomain(), then Attach()
//     each stream, Detach() each, DestroyDomain().
//   * A Context object is a handle (a slot and a generation), cheap to copy. Once its context is
//     freed every call through it returns -ENOENT, even if the slot is reused for a new context:
//     a stale handle can never reach another context's address space.
//
// Every check the core can make is made before the backend is called, and on any error nothing
// changes (the exceptions, where hardware did not confirm a teardown, are documented below).
//
// Storage: fixed arrays inside the Registry object (no heap), sized by the constants below:
// the devices, one shared pool of StreamIDs (each device links its own), the context slots, and
// two open-addressed hash indexes (device -> entry, (device, StreamID) -> pool entry) of twice
// their capacity rounded up to a power of two, so a lookup's cost does not grow with the
// number of devices or StreamIDs bound.
//
// Locking:
//   * Control operations (units, devices, contexts) are serialised by the registry's operation
//     lock, which is held across the backend's CreateDomain/DestroyDomain/Attach/Detach.
//   * Lookups of (device, StreamID) take a separate table lock, held only for a copy, so that
//     Map/Unmap on one context never wait for a control operation on another.
//   * Each context has its own lock serialising Map, Unmap, IovaToPhys, SetFaultHandler and its
//     teardown: calls on different contexts run in parallel; a Map racing FreeContext either
//     completes before the teardown or returns -ENOENT.
//   * Faults (Context's FaultSink) take no lock that thread code holds; see OnFault below.
//   Lock order: operation lock, then a context's lock, then the table lock.

#ifndef DEVISO_REGISTRY_H_
#define DEVISO_REGISTRY_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "deviso/backend.h"
#include "deviso/config.h"
#include "deviso/detail/token_bucket.h"
#include "deviso/deviso.h"
#include "deviso/dump.h"
#include "deviso/port/os.h"
#include "deviso/status.h"
#include "deviso/types.h"

namespace deviso {

// Capacities of one Registry (TF-A style: all storage is reserved at compile time), set when
// configuring (DEVISO_MAX_UNITS, ... in the generated deviso/config.h; docs/limits.md).
inline constexpr size_t kMaxUnits = config::kMaxUnits;      // isolation units registered at once
inline constexpr size_t kMaxDevices = config::kMaxDevices;  // devices bound at once
// StreamIDs one device may own.
inline constexpr size_t kMaxSidsPerDevice = config::kMaxSidsPerDevice;
// StreamIDs bound over all devices: one shared pool (a device holds only a link into it).
inline constexpr size_t kMaxSids = config::kMaxSids;
// Contexts (domains) at once, all units together.
inline constexpr size_t kMaxContexts = config::kMaxContexts;

// Fault callbacks per second and per context unless SetFaultHandler() says otherwise; also the
// burst a context may deliver at once.
inline constexpr uint32_t kDefaultFaultCallbacksPerSecond = 16;

// A context's fault callback (deviso_fault_handler_t): runs in interrupt context, must not block.
using FaultHandler = deviso_fault_handler_t;

class Context;
class Registry;

namespace internal {

// The buckets of an open-addressed hash index for `capacity` keys: twice as many, a power of
// two, so that linear probing stays short (load <= 1/2).
constexpr size_t HashBuckets(size_t capacity) {
  size_t buckets = 2;
  while (buckets < 2 * capacity) {
    buckets *= 2;
  }
  return buckets;
}

// The storage of one context. Only Registry and Context use it.
class ContextSlot final : public FaultSink {
 public:
  ContextSlot() = default;
  ~ContextSlot() override = default;
  ContextSlot(const ContextSlot&) = delete;
  ContextSlot& operator=(const ContextSlot&) = delete;

  // Runs in the backend's event handling (an interrupt handler on bare metal): counts the fault
  // (an atomic counter) and calls the handler if one is installed and the rate limit allows.
  // Lock-free: the handler and its rate limiter are guarded by a flag that OnFault only tries
  // to take; if thread code holds it or is waiting for it (installing a handler) the call is
  // skipped and counted as suppressed, so OnFault never spins on thread code, even on the CPU
  // it interrupted. The handler runs with the flag held, which is how SetFaultHandler() and
  // the teardown know no callback is still running when they return.
  void OnFault(const Fault& fault) override;

 private:
  friend class deviso::Registry;
  friend class deviso::Context;

  enum class State : uint8_t {
    kFree,  // unused
    kLive,  // a context: handles of `generation_` reach it
    // Its domain could not be destroyed after a failed AllocContext: no handle reaches it, and
    // unit_/domain_ still name the domain, whose destruction the registry retries (see
    // Registry::ReclaimOrphans) so that neither the slot nor the backend's domain is lost.
    kOrphaned,
  };

  // Replaces handler, user and limit; returns once no callback of the old handler runs.
  void InstallHandler(FaultHandler handler, void* user, uint32_t per_second);
  // Clears the fault counters and the handler for a new context.
  void ResetFaults();

  port::InterruptSpinLock lock_;

  // Guarded by lock_ (written only with the registry's operation lock held too).
  State state_ = State::kFree;
  // Bumped when a context is freed: older handles become stale. (A handle could only be
  // mistaken for a new context after 2^32 reuses of its slot.)
  uint32_t generation_ = 0;
  IsolationUnit* unit_ = nullptr;
  Domain* domain_ = nullptr;

  // Guarded by the registry's operation lock: (device, StreamID) pairs naming this context.
  uint32_t streams_ = 0;

  // Fault state. The counters are atomic (__atomic builtins: bare-metal builds lack <atomic>).
  uint64_t fault_count_ = 0;
  uint64_t suppressed_count_ = 0;
  // Guarded by callback_flag_ (an __atomic flag): the handler and its rate limit.
  bool callback_flag_ = false;
  bool installing_ = false;  // a thread waits for callback_flag_: OnFault stands back
  FaultHandler handler_ = nullptr;
  void* user_ = nullptr;
  TokenBucket limiter_;
};

}  // namespace internal

// A handle to a context (a domain and its streams). Obtained from Registry::AllocContext(),
// CreateDomain() or FindContext(); copyable; valid as long as the Registry that made it exists.
// A default-constructed handle names no context. Every call fails with -ENOENT once the context
// was freed (FreeContext, DestroyDomain).
class Context {
 public:
  Context() = default;

  // Maps device addresses [iova, iova + size) to physical [pa, pa + size).
  // Errors, with no change:
  //   -ENOENT   no such context (freed, or a default handle)
  //   -EINVAL   size 0; iova, pa or size not a multiple of page_size() (nothing is rounded);
  //             iova or pa range wraps; perms without kPermRead or kPermWrite, or with bits
  //             other than kPermRead/kPermWrite/kPermExec; an unknown MemType; and the
  //             backend's: beyond the unit's input or output address size
  //   -ENOTSUP  the backend cannot express the permissions (write-only at stage 1)
  //   -EEXIST   any part of the range is already mapped
  //   -ENOMEM   the backend's table pool is exhausted
  //   -EPERM    [pa, pa + size) overlaps the unit's own memory (IsolationUnit::UsesMemory)
  //   -EIO      the unit is broken (IsolationUnit::broken()): refused before the backend
  Status Map(Iova iova, Paddr pa, uint64_t size, Perms perms,
             MemType type = MemType::kNormal) const;

  // Unmaps [iova, iova + size), strictly: on success the device can no longer reach it (the
  // invalidation completed). Any page-aligned part of a mapping may be unmapped (built without
  // block splits, DEVISO_CONFIG_BLOCK_SPLIT=OFF: only whole blocks; -ENOTSUP otherwise).
  // Errors: -ENOENT (no such context, or part of the range not mapped; no change), -EINVAL (size
  // 0, unaligned, wrap; no change), -ENOMEM (tables to split a block; no change), -ENOTSUP (the
  // range cuts a block and splits are compiled out; no change), -EIO (broken unit; no change),
  // and the backend's -ETIMEDOUT/-EIO: completion not confirmed, the range may still be
  // reachable; a retry of (a part of) the range converges (deviso.h, "Error-path contract").
  Status Unmap(Iova iova, uint64_t size) const;

  // The physical address `iova` translates to. Errors: -ENOENT (no such context, or not
  // mapped), -EINVAL (beyond the input address size).
  Result<Paddr> IovaToPhys(Iova iova) const;

  // Visits every mapped extent of the context in ascending IOVA order (LeafExtent: contiguous
  // leaves with the same attributes merged; IsolationUnit::ForEachLeaf), under the context's
  // lock: a Map or Unmap on it waits until the walk is done. The visitor must not call into
  // deviso. Errors: -ENOENT (no such context), -ENOTSUP (the backend cannot list mappings).
  Status ForEachLeaf(LeafVisitor& visitor) const;

  // The extent holding `iova`, else the nearest one below or above it (NearestLeaf;
  // IsolationUnit::NearLeaf), under the context's lock. Errors: -ENOENT (no such context, or
  // nothing mapped), -ENOTSUP (as ForEachLeaf).
  Result<NearestLeaf> NearLeaf(Iova iova) const;

  // Installs `handler` (nullptr removes it) for the faults of this context's streams, called
  // with `user` at most `per_second` times a second (token bucket: bursts of up to `per_second`
  // calls, refilled at `per_second` a second); faults beyond that are counted as suppressed.
  // When this returns, the previous handler is not running and will not be called again.
  // Errors, with no change: -ENOENT (no such context), -EINVAL (per_second == 0), -ENOTSUP
  // (built without fault reports, DEVISO_CONFIG_FAULT_REPORTS=OFF: no fault is delivered).
  Status SetFaultHandler(FaultHandler handler, void* user,
                         uint32_t per_second = kDefaultFaultCallbacksPerSecond) const;

  // Faults reported on this context's streams since it was created (every one, delivered or
  // not). Errors: -ENOENT, -ENOTSUP (built without fault reports: nothing is counted).
  Result<uint64_t> fault_count() const;
  // Of those, the ones whose callback was skipped by the rate limit (or because a handler was
  // being installed at that instant). Errors: -ENOENT, -ENOTSUP (as fault_count()).
  Result<uint64_t> suppressed_fault_count() const;

  // The context's page size (its smallest granule): the alignment Map and Unmap require.
  // 0 for a default handle. Stays readable after the context is freed.
  uint64_t page_size() const { return page_size_; }
  // The unit the context lives on; nullptr for a default handle.
  IsolationUnit* unit() const { return unit_; }

  // Two handles are equal if they name the same context (slot and generation).
  bool operator==(const Context& other) const {
    return slot_ == other.slot_ && generation_ == other.generation_;
  }

 private:
  friend class Registry;

  Context(internal::ContextSlot* slot, uint32_t generation, IsolationUnit* unit, uint64_t page_size)
      : slot_(slot), generation_(generation), unit_(unit), page_size_(page_size) {}

  // Whether this handle's context is still there. The caller holds the slot's lock (or the
  // registry's operation lock, under which slots do not change).
  bool LiveLocked() const;
  // Runs `f` under the slot's lock while this handle names a live context, and returns what it
  // returns; -ENOENT for an empty or stale handle. Defined (and used) in registry.cc only.
  template <typename F>
  auto WithLiveLocked(F&& f) const -> decltype(f());
  Result<uint64_t> ReadCounter(uint64_t internal::ContextSlot::*counter) const;

  internal::ContextSlot* slot_ = nullptr;
  uint32_t generation_ = 0;
  IsolationUnit* unit_ = nullptr;
  uint64_t page_size_ = 0;
};

// The registry of isolation units, the devices bound to them and their contexts (see the top of
// this file). Registry::Default() is the one behind the C ABI; tests and boards with several
// independent sets of units may make their own.
class Registry {
 public:
  Registry();
  // Forgets everything; calls no backend. Handles from this registry must not be used after.
  ~Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process-wide registry behind the C ABI.
  static Registry& Default();

  // ---- Units ----------------------------------------------------------------------------------

  // Registers `unit`, which must outlive its registration. Its caps().name identifies it
  // (deviso_device_bind()) and must be unique. Errors, with no change: -EINVAL (empty or null
  // name), -EEXIST (this unit, or another with its name, is registered), -ENOMEM (kMaxUnits).
  Status RegisterUnit(IsolationUnit& unit);

  // Errors, with no change: -ENOENT (not registered), -EBUSY (devices bound to it, or contexts
  // on it, including a domain a failed AllocContext left that the unit still cannot destroy:
  // the destruction is retried first).
  Status UnregisterUnit(IsolationUnit& unit);

  // The registered unit named `name`. Errors: -ENOENT (none), -EINVAL (null name).
  Result<IsolationUnit*> FindUnit(const char* name) const;

  // ---- Devices --------------------------------------------------------------------------------

  // Binds `dev` to the registered `unit` and to the StreamIDs `sids`, each checked with
  // unit.ValidateStream(). A StreamID of a unit belongs to one device.
  // Errors, with no change:
  //   -EINVAL   dev null; no sids or more than kMaxSidsPerDevice; a sid the unit rejects; a
  //             sid listed twice
  //   -ENOENT   unit not registered
  //   -EEXIST   dev already bound; a sid already bound to another device of this unit
  //   -ENOMEM   kMaxDevices devices bound, or fewer than sids.size() of the kMaxSids pool free
  Status BindDevice(const device* dev, IsolationUnit& unit, std::span<const uint32_t> sids);

  // Errors, with no change: -ENOENT (dev not bound), -EBUSY (a StreamID of dev has a context).
  Status UnbindDevice(const device* dev);

  // The unit `dev` is bound to. Errors: -EINVAL (dev null or not bound).
  Result<IsolationUnit*> UnitOf(const device* dev) const;

  // Records the PCI requester ID (bus << 8 | device << 3 | function) of a bound device, so that
  // fault reports and the dump name its BDF; the platform's PCI binding calls it. A device
  // behind a conventional bridge reports the alias its StreamID comes from. Errors, with no
  // change: -EINVAL (dev not bound).
  Status SetPciRequesterId(const device* dev, uint16_t rid);

  // ---- Reports --------------------------------------------------------------------------------

  // Writes the report of `fault` to buf as deviso_fault_format() does (its line, same rules:
  // snprintf's truncation, returns the whole length), followed, when the fault's unit and
  // StreamID are bound here, by the device and its PCI BDF (SetPciRequesterId), and, for a
  // fault with an address on a context, the mapping nearest to it:
  //   "...: translation fault (event 0x10): device ahci@0000:00:02.0 (pci 00:02.0): iova
  //    0x8090040 is 0x40 past mapping 0x8080000+0x10000 rw"
  // ("... is 0x40 into mapping ...", "... is 0x1000 before mapping ...", "no mapping").
  // Never waits: it only tries the registry's and the context's locks, so it may run in a
  // fault handler (event-handling context); when one is busy the line ends "mappings not read
  // (busy)" instead. Errors: -EINVAL (buf null with len > 0).
  int FormatFault(const Fault& fault, char* buf, size_t len) const;

  // Writes the IOVA map (deviso/dump.h: units, contexts, the devices and StreamIDs bound to
  // each, reserved regions, every mapped extent) to `sink`, line by line. Takes the operation
  // lock and each context's lock in turn (waits for a Map in progress; not for interrupt
  // context). Bounded: one line on the stack. Never fails (Status for future backends' errors).
  Status Dump(DumpSink& sink) const;

  // ---- Contexts, the RFC's model: one per (device, StreamID) ----------------------------------

  // Creates a context for (dev, sid): a new empty domain (options as for
  // IsolationUnit::CreateDomain) with the stream attached.
  // Errors, with no change:
  //   -EINVAL   dev not bound, or sid not one of its StreamIDs; the backend's (options)
  //   -EEXIST   (dev, sid) already has a context (its own or a shared one)
  //   -ENOMEM   kMaxContexts contexts exist; the backend's domain, table or ID pools
  //   -EIO      the unit is broken: refused before a context slot is taken
  //   -ENOTSUP, -ETIMEDOUT, -EIO: the backend's. If the attach fails the new domain is
  //             destroyed again. Should that fail too, its slot is set aside with the domain
  //             (no handle reaches it) and the destruction is retried by every later
  //             AllocContext, CreateDomain and UnregisterUnit while the unit is not broken
  //             (e.g. after its Recover()): once it succeeds the backend's domain and the slot
  //             are free again, so repeated failures do not use up either pool.
  Result<Context> AllocContext(const device* dev, uint32_t sid, const DomainOptions& options = {});

  // Detaches (dev, sid) (the stream is blocked again) and destroys its context with its tables.
  // Errors:
  //   -EINVAL   dev not bound, or sid not one of its StreamIDs (no change)
  //   -ENOENT   (dev, sid) has no context (no change)
  //   -EBUSY    the context is shared: other streams are attached to it (no change; use Detach)
  //   -ETIMEDOUT/-EIO  from the backend's Detach: nothing changed in the registry, the context
  //             is kept and usable. From its DestroyDomain: the stream is blocked but the
  //             context could not be reclaimed and stays allocated (still found for (dev, sid),
  //             so AllocContext gives -EEXIST); calling FreeContext again retries the reclaim.
  Status FreeContext(const device* dev, uint32_t sid);

  // The context (dev, sid) translates through. Errors: -EINVAL (dev not bound, sid not one of
  // its StreamIDs), -ENOENT (no context).
  Result<Context> FindContext(const device* dev, uint32_t sid) const;

  // ---- Shared domains -------------------------------------------------------------------------

  // Creates a context with no streams on a registered unit. Errors, with no change: -ENOENT
  // (unit not registered), -ENOMEM (kMaxContexts, or the backend's), -EIO (the unit is broken:
  // no slot is taken), and the backend's -EINVAL, -ENOTSUP (options).
  Result<Context> CreateDomain(IsolationUnit& unit, const DomainOptions& options = {});

  // Attaches (dev, sid) to `context`. Errors, with no change: -ENOENT (no such context),
  // -EINVAL (dev not bound, sid not its own, or dev bound to another unit than the context's),
  // -EEXIST ((dev, sid) already has a context), and the backend's -ENOMEM/-ETIMEDOUT/-EIO.
  Status Attach(const Context& context, const device* dev, uint32_t sid);

  // Detaches (dev, sid) from `context` (the stream is blocked again). The context stays, even
  // with no streams left. Errors, with no change: -ENOENT (no such context, or (dev, sid) not
  // attached to it), -EINVAL (dev not bound, sid not its own), the backend's -ETIMEDOUT/-EIO.
  Status Detach(const Context& context, const device* dev, uint32_t sid);

  // Destroys a context with no streams and its tables. Errors, with no change: -ENOENT (no such
  // context), -EBUSY (streams attached), the backend's -ETIMEDOUT/-EIO (the context stays).
  Status DestroyDomain(const Context& context);

 private:
  // Pool, device and hash-index entries are 16-bit indexes (CMake bounds every capacity to
  // 65535); kNoIndex is none: a free entry, the end of a list, an empty hash bucket.
  using Index = uint16_t;
  static constexpr Index kNoIndex = 0xffff;

  static constexpr size_t kDeviceBuckets = internal::HashBuckets(kMaxDevices);
  static constexpr size_t kStreamBuckets = internal::HashBuckets(kMaxSids);

  // A StreamID of a bound device (an entry of the shared pool) and the context it translates
  // through, if any.
  struct StreamBinding {
    uint32_t sid = 0;
    Index device = kNoIndex;  // the owner's entry in devices_; kNoIndex: a free pool entry
    Index next = kNoIndex;    // the owner's next StreamID, or (free) the next free entry
    bool detached = false;    // the backend detached it, but FreeContext could not reclaim
    Context context;          // default: none
  };

  struct DeviceEntry {
    const device* dev = nullptr;  // null: free entry
    IsolationUnit* unit = nullptr;
    int32_t rid = -1;               // PCI requester ID (SetPciRequesterId), -1: none known
    Index first_stream = kNoIndex;  // its StreamIDs in streams_, linked by StreamBinding::next
    Index sid_count = 0;
  };

  // Open-addressed hash indexes (linear probing, backward-shift deletion), written under
  // ops_lock_ and table_lock_, read under either.
  size_t DeviceBucket(const device* dev) const;
  size_t StreamBucket(const device* dev, uint32_t sid) const;
  void IndexDevice(Index device);
  void UnindexDevice(Index device);
  void IndexStream(Index stream);
  void UnindexStream(Index stream);

  // Callers hold ops_lock_ or table_lock_.
  bool IsRegistered(const IsolationUnit& unit) const;
  DeviceEntry* FindDevice(const device* dev);
  const DeviceEntry* FindDevice(const device* dev) const;
  // -EINVAL if dev is not bound or sid is not one of its StreamIDs.
  Result<StreamBinding*> FindStream(const device* dev, uint32_t sid);
  Result<const StreamBinding*> FindStream(const device* dev, uint32_t sid) const;
  // -ENOENT unless `context` is live. Callers hold ops_lock_.
  Status CheckLive(const Context& context) const;
  // A free slot, or -ENOMEM. Callers hold ops_lock_.
  Result<internal::ContextSlot*> FreeSlot();

  // Creates a domain in `slot` and makes it live. Callers hold ops_lock_.
  Result<Context> CreateIn(internal::ContextSlot& slot, IsolationUnit& unit,
                           const DomainOptions& options);
  // Destroys the live context in `slot` (no streams); on success the slot is free and every
  // handle to it stale. Callers hold ops_lock_ and the slot's lock.
  Status DestroyLocked(internal::ContextSlot& slot);
  // Dump()'s lines of one context (slot index `n`). Callers hold ops_lock_.
  void DumpContext(const internal::ContextSlot& slot, size_t n, DumpSink& sink) const;
  // Retries the destruction of every domain a failed AllocContext left (State::kOrphaned) on a
  // unit that is not broken; each that the backend destroys frees its slot. Errors are not
  // reported: the slot stays set aside and a later call retries. Callers hold ops_lock_.
  void ReclaimOrphans();
  // Sets what (dev, sid) translates through, under table_lock_.
  void SetBinding(StreamBinding& binding, const Context& context, bool detached);

  mutable port::InterruptSpinLock ops_lock_;
  mutable port::InterruptSpinLock table_lock_;

  IsolationUnit* units_[kMaxUnits] = {};
  DeviceEntry devices_[kMaxDevices];
  StreamBinding streams_[kMaxSids];
  Index free_stream_ = 0;  // head of the free pool entries (linked by next)
  Index free_streams_ = kMaxSids;
  Index device_index_[kDeviceBuckets];
  Index stream_index_[kStreamBuckets];
  internal::ContextSlot slots_[kMaxContexts];
};

}  // namespace deviso

#endif  // DEVISO_REGISTRY_H_
