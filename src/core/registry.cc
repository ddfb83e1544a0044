#include "deviso/registry.h"

#include <cstring>
#include <new>

#include "core/fault_line.h"
#include "core/line_writer.h"
#include "deviso/assert.h"
#include "deviso/config.h"

namespace deviso {
namespace {

constexpr Perms kKnownPerms = kPermRead | kPermWrite | kPermExec;
constexpr uint8_t kMemTypeCount = 4;

// -EINVAL unless [addr, addr + size) is non-empty, does not wrap and is aligned to `page`.
Status CheckRange(uint64_t page, uint64_t addr, uint64_t size) {
  uint64_t last = 0;
  if (size == 0 || __builtin_add_overflow(addr, size - 1, &last)) {
    return Status::InvalidArgument();
  }
  if (((addr | size) & (page - 1)) != 0) {
    return Status::InvalidArgument();
  }
  return Status::Ok();
}

bool IsPowerOfTwo(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

// A 64-bit mix (MurmurHash3's finaliser): device pointers differ in few, low-order bits.
constexpr uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// Removes the entry at `bucket` of a linear-probing table of `buckets` (a power of two) by
// shifting later entries of its probe run back, so no tombstone is left and lookups stay as
// short as the load allows. `home(index)` is the bucket an entry hashes to.
template <typename Index, typename Home>
void EraseBucket(Index* table, size_t buckets, size_t bucket, Index none, Home home) {
  const size_t mask = buckets - 1;
  size_t hole = bucket;
  for (size_t next = (hole + 1) & mask; table[next] != none; next = (next + 1) & mask) {
    const size_t want = home(table[next]);
    // The entry at `next` may move into the hole unless its home lies cyclically in
    // (hole, next]: then the hole is not on its probe path.
    const bool stays = hole <= next ? (hole < want && want <= next) : (hole < want || want <= next);
    if (!stays) {
      table[hole] = table[next];
      hole = next;
    }
  }
  table[hole] = none;
}

// A pause hint for spin loops.
inline void CpuRelax() {
#if defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#elif defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

// ---- ContextSlot: faults --------------------------------------------------------------------

namespace internal {

void ContextSlot::OnFault(const Fault& fault) {
  // Built without fault reports no backend delivers faults (and nobody could read them).
  if constexpr (!config::kFaultReports) return;
  __atomic_fetch_add(&fault_count_, 1, __ATOMIC_RELAXED);
  // Never wait in interrupt context: if thread code is installing a handler, skip the call. The
  // `installing_` check first lets that thread in even during a fault storm.
  if (__atomic_load_n(&installing_, __ATOMIC_RELAXED) ||
      __atomic_exchange_n(&callback_flag_, true, __ATOMIC_ACQUIRE)) {
    __atomic_fetch_add(&suppressed_count_, 1, __ATOMIC_RELAXED);
    return;
  }
  if (handler_ != nullptr) {
    if (limiter_.TryTake(port::MonotonicNs())) {
      handler_(&fault, user_);
    } else {
      __atomic_fetch_add(&suppressed_count_, 1, __ATOMIC_RELAXED);
    }
  }
  __atomic_store_n(&callback_flag_, false, __ATOMIC_RELEASE);
}

void ContextSlot::InstallHandler(FaultHandler handler, void* user, uint32_t per_second) {
  if constexpr (!config::kFaultReports) return;  // no handler can be installed
  // Installers are serialised (the slot's lock, or the registry's operation lock for a free
  // slot). The wait is bounded by one callback, which must not block; and a callback cannot be
  // running on this CPU, since thread code does not run while an interrupt handler does.
  __atomic_store_n(&installing_, true, __ATOMIC_RELAXED);
  while (__atomic_exchange_n(&callback_flag_, true, __ATOMIC_ACQUIRE)) {
    CpuRelax();
  }
  handler_ = handler;
  user_ = user;
  limiter_.Reset(per_second, port::MonotonicNs());
  __atomic_store_n(&callback_flag_, false, __ATOMIC_RELEASE);
  __atomic_store_n(&installing_, false, __ATOMIC_RELAXED);
}

void ContextSlot::ResetFaults() {
  if constexpr (!config::kFaultReports) return;
  InstallHandler(nullptr, nullptr, kDefaultFaultCallbacksPerSecond);
  __atomic_store_n(&fault_count_, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&suppressed_count_, 0, __ATOMIC_RELAXED);
}

}  // namespace internal

// ---- Context ----------------------------------------------------------------------------------

bool Context::LiveLocked() const {
  return slot_->state_ == internal::ContextSlot::State::kLive && slot_->generation_ == generation_;
}

template <typename F>
auto Context::WithLiveLocked(F&& f) const -> decltype(f()) {
  if (slot_ == nullptr) {
    return Status::NotFound();
  }
  const port::LockGuard lock(slot_->lock_);
  if (!LiveLocked()) {
    return Status::NotFound();  // freed, and perhaps reused: this handle is stale
  }
  return f();
}

Status Context::Map(Iova iova, Paddr pa, uint64_t size, Perms perms, MemType type) const {
  return WithLiveLocked([&]() -> Status {
    DEVISO_TRY(CheckRange(page_size_, iova, size));
    DEVISO_TRY(CheckRange(page_size_, pa, size));
    if ((perms & ~kKnownPerms) != 0 || (perms & kPermReadWrite) == 0 ||
        static_cast<uint8_t>(type) >= kMemTypeCount) {
      return Status::InvalidArgument();
    }
    if (slot_->unit_->broken()) {
      return Status::IoError();  // nothing is allocated for a unit that cannot confirm
    }
    // The unit's own structures (stream table, CDs, queues, page-table pools): a device given
    // them could rewrite its own or a sibling's translation.
    if (slot_->unit_->UsesMemory(pa, size)) {
      return Status::PermissionDenied();
    }
    return slot_->unit_->Map(slot_->domain_, iova, pa, size, perms, type);
  });
}

Status Context::Unmap(Iova iova, uint64_t size) const {
  return WithLiveLocked([&]() -> Status {
    DEVISO_TRY(CheckRange(page_size_, iova, size));
    if (slot_->unit_->broken()) {
      return Status::IoError();
    }
    return slot_->unit_->Unmap(slot_->domain_, iova, size);
  });
}

Result<Paddr> Context::IovaToPhys(Iova iova) const {
  return WithLiveLocked(
      [&]() -> Result<Paddr> { return slot_->unit_->IovaToPhys(slot_->domain_, iova); });
}

Status Context::ForEachLeaf(LeafVisitor& visitor) const {
  return WithLiveLocked(
      [&]() -> Status { return slot_->unit_->ForEachLeaf(slot_->domain_, visitor); });
}

Result<NearestLeaf> Context::NearLeaf(Iova iova) const {
  return WithLiveLocked(
      [&]() -> Result<NearestLeaf> { return slot_->unit_->NearLeaf(slot_->domain_, iova); });
}

Status Context::SetFaultHandler(FaultHandler handler, void* user, uint32_t per_second) const {
  return WithLiveLocked([&]() -> Status {
    if (per_second == 0) {
      return Status::InvalidArgument();
    }
    if constexpr (!config::kFaultReports) {
      return Status::NotSupported();
    }
    slot_->InstallHandler(handler, user, per_second);
    return Status::Ok();
  });
}

Result<uint64_t> Context::fault_count() const {
  return ReadCounter(&internal::ContextSlot::fault_count_);
}

Result<uint64_t> Context::suppressed_fault_count() const {
  return ReadCounter(&internal::ContextSlot::suppressed_count_);
}

Result<uint64_t> Context::ReadCounter(uint64_t internal::ContextSlot::*counter) const {
  return WithLiveLocked([&]() -> Result<uint64_t> {
    if constexpr (!config::kFaultReports) {
      return Status::NotSupported();  // nothing is counted
    }
    return __atomic_load_n(&(slot_->*counter), __ATOMIC_RELAXED);
  });
}

// ---- Registry: lookups ------------------------------------------------------------------------

Registry& Registry::Default() {
  // Constructed on first use and never destroyed: no exit-time destructor, which a bare-metal
  // image (no __cxa_atexit, no __dso_handle) could not register anyway.
  alignas(Registry) static unsigned char storage[sizeof(Registry)];
  static Registry* instance = new (storage) Registry();
  return *instance;
}

Registry::Registry() {
  static_assert(kMaxSids < kNoIndex && kMaxDevices < kNoIndex,
                "capacities are bounded to 65535 (CMakeLists.txt)");
  for (size_t i = 0; i < kMaxSids; ++i) {
    streams_[i].next = i + 1 < kMaxSids ? static_cast<Index>(i + 1) : kNoIndex;
  }
  for (Index& bucket : device_index_) {
    bucket = kNoIndex;
  }
  for (Index& bucket : stream_index_) {
    bucket = kNoIndex;
  }
}

bool Registry::IsRegistered(const IsolationUnit& unit) const {
  for (const IsolationUnit* u : units_) {
    if (u == &unit) {
      return true;
    }
  }
  return false;
}

size_t Registry::DeviceBucket(const device* dev) const {
  return Mix(reinterpret_cast<uintptr_t>(dev)) & (kDeviceBuckets - 1);
}

size_t Registry::StreamBucket(const device* dev, uint32_t sid) const {
  return Mix(reinterpret_cast<uintptr_t>(dev) ^ (uint64_t{sid} * 0x9e3779b97f4a7c15ULL)) &
         (kStreamBuckets - 1);
}

void Registry::IndexDevice(Index device) {
  size_t bucket = DeviceBucket(devices_[device].dev);
  while (device_index_[bucket] != kNoIndex) {
    bucket = (bucket + 1) & (kDeviceBuckets - 1);
  }
  device_index_[bucket] = device;
}

void Registry::UnindexDevice(Index device) {
  size_t bucket = DeviceBucket(devices_[device].dev);
  while (device_index_[bucket] != device) {
    DEVISO_ASSERT(device_index_[bucket] != kNoIndex);
    bucket = (bucket + 1) & (kDeviceBuckets - 1);
  }
  EraseBucket(device_index_, kDeviceBuckets, bucket, kNoIndex,
              [this](Index d) { return DeviceBucket(devices_[d].dev); });
}

void Registry::IndexStream(Index stream) {
  const StreamBinding& b = streams_[stream];
  size_t bucket = StreamBucket(devices_[b.device].dev, b.sid);
  while (stream_index_[bucket] != kNoIndex) {
    bucket = (bucket + 1) & (kStreamBuckets - 1);
  }
  stream_index_[bucket] = stream;
}

void Registry::UnindexStream(Index stream) {
  const StreamBinding& b = streams_[stream];
  size_t bucket = StreamBucket(devices_[b.device].dev, b.sid);
  while (stream_index_[bucket] != stream) {
    DEVISO_ASSERT(stream_index_[bucket] != kNoIndex);
    bucket = (bucket + 1) & (kStreamBuckets - 1);
  }
  EraseBucket(stream_index_, kStreamBuckets, bucket, kNoIndex, [this](Index i) {
    return StreamBucket(devices_[streams_[i].device].dev, streams_[i].sid);
  });
}

Registry::DeviceEntry* Registry::FindDevice(const device* dev) {
  if (dev == nullptr) {
    return nullptr;
  }
  for (size_t bucket = DeviceBucket(dev); device_index_[bucket] != kNoIndex;
       bucket = (bucket + 1) & (kDeviceBuckets - 1)) {
    DeviceEntry& entry = devices_[device_index_[bucket]];
    if (entry.dev == dev) {
      return &entry;
    }
  }
  return nullptr;
}

const Registry::DeviceEntry* Registry::FindDevice(const device* dev) const {
  return const_cast<Registry*>(this)->FindDevice(dev);
}

Result<Registry::StreamBinding*> Registry::FindStream(const device* dev, uint32_t sid) {
  if (dev == nullptr) {
    return Status::InvalidArgument();
  }
  // One probe run of the (device, StreamID) index: a pair is there exactly when dev is bound
  // and sid is one of its StreamIDs.
  for (size_t bucket = StreamBucket(dev, sid); stream_index_[bucket] != kNoIndex;
       bucket = (bucket + 1) & (kStreamBuckets - 1)) {
    StreamBinding& binding = streams_[stream_index_[bucket]];
    if (binding.sid == sid && devices_[binding.device].dev == dev) {
      return &binding;
    }
  }
  return Status::InvalidArgument();  // dev not bound, or not its StreamID
}

Result<const Registry::StreamBinding*> Registry::FindStream(const device* dev, uint32_t sid) const {
  DEVISO_ASSIGN_OR_RETURN(const StreamBinding* binding,
                          const_cast<Registry*>(this)->FindStream(dev, sid));
  return binding;
}

Result<IsolationUnit*> Registry::FindUnit(const char* name) const {
  if (name == nullptr) {
    return Status::InvalidArgument();
  }
  const port::LockGuard table(table_lock_);
  for (IsolationUnit* unit : units_) {
    if (unit != nullptr && std::strcmp(unit->caps().name, name) == 0) {
      return unit;
    }
  }
  return Status::NotFound();
}

Result<IsolationUnit*> Registry::UnitOf(const device* dev) const {
  const port::LockGuard table(table_lock_);
  const DeviceEntry* entry = FindDevice(dev);
  if (entry == nullptr) {
    return Status::InvalidArgument();
  }
  return entry->unit;
}

Status Registry::SetPciRequesterId(const device* dev, uint16_t rid) {
  const port::LockGuard ops(ops_lock_);
  DeviceEntry* entry = FindDevice(dev);
  if (entry == nullptr) {
    return Status::InvalidArgument();
  }
  const port::LockGuard table(table_lock_);
  entry->rid = rid;
  return Status::Ok();
}

Result<Context> Registry::FindContext(const device* dev, uint32_t sid) const {
  const port::LockGuard table(table_lock_);
  DEVISO_ASSIGN_OR_RETURN(const StreamBinding* binding, FindStream(dev, sid));
  if (binding->context.slot_ == nullptr) {
    return Status::NotFound();
  }
  return binding->context;
}

Status Registry::CheckLive(const Context& context) const {
  // Slot state only changes under ops_lock_, which the caller holds.
  if (context.slot_ == nullptr || !context.LiveLocked()) {
    return Status::NotFound();
  }
  return Status::Ok();
}

void Registry::SetBinding(StreamBinding& binding, const Context& context, bool detached) {
  const port::LockGuard table(table_lock_);
  binding.context = context;
  binding.detached = detached;
}

// ---- Registry: units and devices --------------------------------------------------------------

Status Registry::RegisterUnit(IsolationUnit& unit) {
  const char* name = unit.caps().name;
  if (name == nullptr || name[0] == '\0') {
    return Status::InvalidArgument();
  }
  const port::LockGuard ops(ops_lock_);
  IsolationUnit** free_entry = nullptr;
  for (IsolationUnit*& u : units_) {
    if (u == nullptr) {
      free_entry = free_entry == nullptr ? &u : free_entry;
    } else if (u == &unit || std::strcmp(u->caps().name, name) == 0) {
      return Status::AlreadyExists();
    }
  }
  if (free_entry == nullptr) {
    return Status::NoMemory();
  }
  const port::LockGuard table(table_lock_);
  *free_entry = &unit;
  return Status::Ok();
}

Status Registry::UnregisterUnit(IsolationUnit& unit) {
  const port::LockGuard ops(ops_lock_);
  if (!IsRegistered(unit)) {
    return Status::NotFound();
  }
  for (const DeviceEntry& entry : devices_) {
    if (entry.dev != nullptr && entry.unit == &unit) {
      return Status::Busy();
    }
  }
  ReclaimOrphans();
  for (const internal::ContextSlot& slot : slots_) {
    // Live contexts without streams (shared domains) and orphaned domains count too.
    if (slot.state_ != internal::ContextSlot::State::kFree && slot.unit_ == &unit) {
      return Status::Busy();
    }
  }
  const port::LockGuard table(table_lock_);
  for (IsolationUnit*& u : units_) {
    if (u == &unit) {
      u = nullptr;
    }
  }
  return Status::Ok();
}

Status Registry::BindDevice(const device* dev, IsolationUnit& unit,
                            std::span<const uint32_t> sids) {
  if (dev == nullptr || sids.empty() || sids.size() > kMaxSidsPerDevice) {
    return Status::InvalidArgument();
  }
  for (size_t i = 0; i < sids.size(); ++i) {
    DEVISO_TRY(unit.ValidateStream(sids[i]));
    for (size_t j = 0; j < i; ++j) {
      if (sids[j] == sids[i]) {
        return Status::InvalidArgument();
      }
    }
  }
  const port::LockGuard ops(ops_lock_);
  if (!IsRegistered(unit)) {
    return Status::NotFound();
  }
  if (FindDevice(dev) != nullptr) {
    return Status::AlreadyExists();
  }
  // A StreamID of a unit belongs to one device: a scan of the pool (binding is a control
  // operation; lookups go through the index).
  for (const StreamBinding& binding : streams_) {
    if (binding.device == kNoIndex || devices_[binding.device].unit != &unit) {
      continue;
    }
    for (const uint32_t sid : sids) {
      if (binding.sid == sid) {
        return Status::AlreadyExists();  // another device's stream
      }
    }
  }
  Index free_entry = kNoIndex;
  for (size_t i = 0; i < kMaxDevices; ++i) {
    if (devices_[i].dev == nullptr) {
      free_entry = static_cast<Index>(i);
      break;
    }
  }
  if (free_entry == kNoIndex || sids.size() > free_streams_) {
    return Status::NoMemory();
  }
  const port::LockGuard table(table_lock_);
  DeviceEntry& entry = devices_[free_entry];
  entry.dev = dev;
  entry.unit = &unit;
  entry.rid = -1;
  entry.sid_count = static_cast<Index>(sids.size());
  entry.first_stream = kNoIndex;
  // Taken from the free list in reverse so that the device's list is in the caller's order.
  for (size_t i = sids.size(); i-- > 0;) {
    const Index stream = free_stream_;
    StreamBinding& binding = streams_[stream];
    free_stream_ = binding.next;
    --free_streams_;
    binding = StreamBinding();
    binding.sid = sids[i];
    binding.device = free_entry;
    binding.next = entry.first_stream;
    entry.first_stream = stream;
    IndexStream(stream);
  }
  IndexDevice(free_entry);
  return Status::Ok();
}

Status Registry::UnbindDevice(const device* dev) {
  const port::LockGuard ops(ops_lock_);
  DeviceEntry* entry = FindDevice(dev);
  if (entry == nullptr) {
    return Status::NotFound();
  }
  for (Index s = entry->first_stream; s != kNoIndex; s = streams_[s].next) {
    if (streams_[s].context.slot_ != nullptr) {
      return Status::Busy();
    }
  }
  const port::LockGuard table(table_lock_);
  for (Index s = entry->first_stream; s != kNoIndex;) {
    UnindexStream(s);
    const Index next = streams_[s].next;
    streams_[s] = StreamBinding();
    streams_[s].next = free_stream_;
    free_stream_ = s;
    ++free_streams_;
    s = next;
  }
  UnindexDevice(static_cast<Index>(entry - devices_));
  *entry = DeviceEntry{};
  return Status::Ok();
}

// ---- Registry: contexts -----------------------------------------------------------------------

Result<internal::ContextSlot*> Registry::FreeSlot() {
  for (internal::ContextSlot& slot : slots_) {
    if (slot.state_ == internal::ContextSlot::State::kFree) {
      return &slot;
    }
  }
  return Status::NoMemory();
}

Result<Context> Registry::CreateIn(internal::ContextSlot& slot, IsolationUnit& unit,
                                   const DomainOptions& options) {
  // The slot is free: no handle reaches it and its domain cannot fault yet, so its fault state
  // may be reset before the backend can report faults to it.
  slot.ResetFaults();
  DEVISO_ASSIGN_OR_RETURN(Domain* const domain, unit.CreateDomain(options, &slot));
  // A page size that is not a power of two would break every alignment check: a backend bug.
  DEVISO_ASSERT(domain != nullptr && IsPowerOfTwo(domain->page_size()));
  const port::LockGuard lock(slot.lock_);
  slot.unit_ = &unit;
  slot.domain_ = domain;
  slot.streams_ = 0;
  slot.state_ = internal::ContextSlot::State::kLive;
  return Context(&slot, slot.generation_, &unit, domain->page_size());
}

Status Registry::DestroyLocked(internal::ContextSlot& slot) {
  DEVISO_ASSERT(slot.state_ == internal::ContextSlot::State::kLive && slot.streams_ == 0);
  DEVISO_TRY(slot.unit_->DestroyDomain(slot.domain_));
  slot.state_ = internal::ContextSlot::State::kFree;
  slot.domain_ = nullptr;
  ++slot.generation_;  // every handle to this context is stale from here on
  // Waits for a callback in flight, so the caller's handler and `user` are free to go.
  slot.InstallHandler(nullptr, nullptr, kDefaultFaultCallbacksPerSecond);
  return Status::Ok();
}

void Registry::ReclaimOrphans() {
  for (internal::ContextSlot& slot : slots_) {
    if (slot.state_ != internal::ContextSlot::State::kOrphaned || slot.unit_->broken()) {
      continue;
    }
    const port::LockGuard lock(slot.lock_);
    if (!slot.unit_->DestroyDomain(slot.domain_).ok()) continue;  // retried next time
    slot.state_ = internal::ContextSlot::State::kFree;
    slot.domain_ = nullptr;
    slot.unit_ = nullptr;
    ++slot.generation_;
  }
}

Result<Context> Registry::AllocContext(const device* dev, uint32_t sid,
                                       const DomainOptions& options) {
  const port::LockGuard ops(ops_lock_);
  DEVISO_ASSIGN_OR_RETURN(StreamBinding* const binding, FindStream(dev, sid));
  if (binding->context.slot_ != nullptr) {
    return Status::AlreadyExists();
  }
  IsolationUnit& unit = *devices_[binding->device].unit;
  if (unit.broken()) {
    return Status::IoError();  // refused before a slot (shared by every unit) is taken
  }
  ReclaimOrphans();
  if (unit.broken()) {
    return Status::IoError();  // the reclaim's own invalidation failed
  }
  DEVISO_ASSIGN_OR_RETURN(internal::ContextSlot* const slot, FreeSlot());
  DEVISO_ASSIGN_OR_RETURN(const Context context, CreateIn(*slot, unit, options));

  if (const Status attached = unit.Attach(slot->domain_, sid); !attached.ok()) {
    const port::LockGuard lock(slot->lock_);
    if (const Status destroyed = DestroyLocked(*slot); !destroyed.ok()) {
      // The backend still holds the domain, whose fault sink is this slot: set the slot aside
      // with its domain (no new context may receive that domain's faults) and retry the
      // destruction later (ReclaimOrphans), so neither the slot nor the domain is lost.
      if constexpr (config::kLogging) {
        port::Log(
            "deviso: %s: sid %#x: attach failed (%s), destroying its new domain failed (%s);"
            " retried later\n",
            unit.caps().name, sid, attached.str(), destroyed.str());
      }
      slot->state_ = internal::ContextSlot::State::kOrphaned;
      ++slot->generation_;
    }
    return attached;
  }
  slot->streams_ = 1;
  SetBinding(*binding, context, /*detached=*/false);
  return context;
}

Status Registry::FreeContext(const device* dev, uint32_t sid) {
  const port::LockGuard ops(ops_lock_);
  DEVISO_ASSIGN_OR_RETURN(StreamBinding* const binding, FindStream(dev, sid));
  internal::ContextSlot* const slot = binding->context.slot_;
  if (slot == nullptr) {
    return Status::NotFound();
  }
  if (slot->streams_ > 1) {
    return Status::Busy();
  }
  {
    // Held across the teardown: a Map on this context waits, then finds it gone (-ENOENT).
    const port::LockGuard lock(slot->lock_);
    if (!binding->detached) {
      DEVISO_TRY(slot->unit_->Detach(slot->domain_, sid));
    }
    slot->streams_ = 0;
    if (const Status destroyed = DestroyLocked(*slot); !destroyed.ok()) {
      // The stream is blocked; the context stays so that FreeContext can retry the reclaim.
      slot->streams_ = 1;
      SetBinding(*binding, binding->context, /*detached=*/true);
      return destroyed;
    }
  }
  SetBinding(*binding, Context(), /*detached=*/false);
  return Status::Ok();
}

Result<Context> Registry::CreateDomain(IsolationUnit& unit, const DomainOptions& options) {
  const port::LockGuard ops(ops_lock_);
  if (!IsRegistered(unit)) {
    return Status::NotFound();
  }
  if (unit.broken()) {
    return Status::IoError();
  }
  ReclaimOrphans();
  if (unit.broken()) {
    return Status::IoError();  // the reclaim's own invalidation failed
  }
  DEVISO_ASSIGN_OR_RETURN(internal::ContextSlot* const slot, FreeSlot());
  return CreateIn(*slot, unit, options);
}

Status Registry::Attach(const Context& context, const device* dev, uint32_t sid) {
  const port::LockGuard ops(ops_lock_);
  DEVISO_TRY(CheckLive(context));
  DEVISO_ASSIGN_OR_RETURN(StreamBinding* const binding, FindStream(dev, sid));
  if (devices_[binding->device].unit != context.slot_->unit_) {
    return Status::InvalidArgument();
  }
  if (binding->context.slot_ != nullptr) {
    return Status::AlreadyExists();
  }
  DEVISO_TRY(context.slot_->unit_->Attach(context.slot_->domain_, sid));
  ++context.slot_->streams_;
  SetBinding(*binding, context, /*detached=*/false);
  return Status::Ok();
}

Status Registry::Detach(const Context& context, const device* dev, uint32_t sid) {
  const port::LockGuard ops(ops_lock_);
  DEVISO_TRY(CheckLive(context));
  DEVISO_ASSIGN_OR_RETURN(StreamBinding* const binding, FindStream(dev, sid));
  if (!(binding->context == context)) {
    return Status::NotFound();
  }
  // A stream FreeContext already detached (its reclaim failed) is only forgotten.
  if (!binding->detached) {
    DEVISO_TRY(context.slot_->unit_->Detach(context.slot_->domain_, sid));
  }
  --context.slot_->streams_;
  SetBinding(*binding, Context(), /*detached=*/false);
  return Status::Ok();
}

Status Registry::DestroyDomain(const Context& context) {
  const port::LockGuard ops(ops_lock_);
  DEVISO_TRY(CheckLive(context));
  if (context.slot_->streams_ != 0) {
    return Status::Busy();
  }
  const port::LockGuard lock(context.slot_->lock_);
  return DestroyLocked(*context.slot_);
}

// ---- Registry: reports ------------------------------------------------------------------------

namespace {

// Compares two NUL-terminated names without the C library (FormatFault may run in an
// interrupt handler).
bool SameName(const char* a, const char* b) {
  if (a == nullptr || b == nullptr) {
    return false;
  }
  for (; *a != '\0' && *a == *b; ++a, ++b) {
  }
  return *a == *b;
}

void PutPerms(Perms perms, LineWriter& w) {
  if ((perms & kPermRead) != 0) w.PutChar('r');
  if ((perms & kPermWrite) != 0) w.PutChar('w');
  if ((perms & kPermExec) != 0) w.PutChar('x');
  if ((perms & (kPermRead | kPermWrite | kPermExec)) == 0) w.PutChar('-');
}

const char* MemTypeName(MemType type) {
  switch (type) {
    case MemType::kNormal:
      return "normal";
    case MemType::kNormalNonCacheable:
      return "normal-nc";
    case MemType::kDevice:
      return "device";
    case MemType::kDeviceStrict:
      return "device-strict";
  }
  return "?";
}

// "iova X is D past mapping A+S rw" and its kinds (Registry::FormatFault).
void PutNearest(Iova iova, const NearestLeaf& near, LineWriter& w) {
  w.Put("iova ");
  w.PutHex(iova);
  w.Put(" is ");
  w.PutHex(near.distance);
  switch (near.where) {
    case NearestLeaf::Where::kInside:
      w.Put(" into mapping ");
      break;
    case NearestLeaf::Where::kAfter:
      w.Put(" past mapping ");
      break;
    case NearestLeaf::Where::kBefore:
      w.Put(" before mapping ");
      break;
  }
  w.PutHex(near.extent.iova);
  w.PutChar('+');
  w.PutHex(near.extent.size);
  w.PutChar(' ');
  PutPerms(near.extent.perms, w);
}

}  // namespace

int Registry::FormatFault(const Fault& fault, char* buf, size_t len) const {
  if (buf == nullptr && len != 0) {
    return -EINVAL;
  }
  LineWriter w(buf, len);
  internal::PutFaultLine(&fault, w);
  if (fault.reason == DEVISO_FAULT_OVERFLOW) {
    return w.Finish();  // a unit's fault, no stream's
  }
  // The binding of (unit, sid): a scan of the pool (bounded by kMaxSids) under a lock that is
  // only tried, never waited for.
  const device* dev = nullptr;
  int32_t rid = -1;
  Context context;
  if (!table_lock_.TryLock()) {
    w.Put(": device not read (busy)");
    return w.Finish();
  }
  for (const StreamBinding& binding : streams_) {
    if (binding.device == kNoIndex || binding.sid != fault.sid) {
      continue;
    }
    const DeviceEntry& entry = devices_[binding.device];
    if (entry.unit != nullptr && SameName(entry.unit->caps().name, fault.unit)) {
      dev = entry.dev;
      rid = entry.rid;
      context = binding.detached ? Context() : binding.context;
      break;
    }
  }
  table_lock_.Unlock();
  if (dev == nullptr) {
    return w.Finish();  // not bound here: the unit's own line says all there is
  }
  w.Put(": device ");
  w.Put(port::DeviceName(dev));
  if (rid >= 0) {
    w.Put(" (pci ");
    w.PutBdf(static_cast<uint16_t>(rid));
    w.PutChar(')');
  }
  if ((fault.flags & DEVISO_FAULT_ADDR_VALID) == 0) {
    return w.Finish();
  }
  if (context.slot_ == nullptr) {
    w.Put(": no context");
    return w.Finish();
  }
  internal::ContextSlot& slot = *context.slot_;
  if (!slot.lock_.TryLock()) {
    w.Put(": mappings not read (busy)");
    return w.Finish();
  }
  Result<NearestLeaf> near = context.LiveLocked() ? slot.unit_->NearLeaf(slot.domain_, fault.iova)
                                                  : Result<NearestLeaf>(Status::NotFound());
  slot.lock_.Unlock();
  // A backend that cannot list its mappings (-ENOTSUP) adds nothing.
  if (near.ok()) {
    w.Put(": ");
    PutNearest(fault.iova, *near, w);
  } else if (near.status().ToC() == -ENOENT) {
    w.Put(": no mapping");
  }
  return w.Finish();
}

namespace {

// Formats one dump line on the stack and hands it to the sink.
class DumpLine {
 public:
  explicit DumpLine(DumpSink& sink) : sink_(sink), w_(line_, sizeof(line_)) {}
  ~DumpLine() {
    (void)w_.Finish();
    sink_.Line(line_);
  }
  DumpLine(const DumpLine&) = delete;
  DumpLine& operator=(const DumpLine&) = delete;
  LineWriter& w() { return w_; }

 private:
  DumpSink& sink_;
  char line_[DEVISO_DUMP_LINE_MAX];
  LineWriter w_;
};

void PutContextNumber(const char* key, size_t n, bool have, LineWriter& w) {
  w.Put(key);
  w.Put(" context ");
  if (have) {
    w.PutDec(n);
  } else {
    w.PutChar('-');
  }
}

// "map context N iova .. size .. pa .. perms rw type normal leaf 0x1000" per extent.
class DumpLeaves final : public LeafVisitor {
 public:
  DumpLeaves(DumpSink& sink, size_t n) : sink_(sink), n_(n) {}
  bool Visit(const LeafExtent& e) override {
    DumpLine line(sink_);
    LineWriter& w = line.w();
    PutContextNumber("map", n_, true, w);
    w.Put(" iova ");
    w.PutHex(e.iova);
    w.Put(" size ");
    w.PutHex(e.size);
    w.Put(" pa ");
    w.PutHex(e.pa);
    w.Put(" perms ");
    PutPerms(e.perms, w);
    w.Put(" type ");
    w.Put(MemTypeName(e.type));
    w.Put(" leaf ");
    w.PutHex(e.leaf_size);
    return true;
  }

 private:
  DumpSink& sink_;
  size_t n_;
};

}  // namespace

void Registry::DumpContext(const internal::ContextSlot& slot, size_t n, DumpSink& sink) const {
  IsolationUnit& unit = *slot.unit_;
  {
    DumpLine line(sink);
    line.w().Put("context ");
    line.w().PutDec(n);
    line.w().Put(" unit ");
    line.w().Put(unit.caps().name);
    line.w().Put(" page ");
    line.w().PutHex(slot.domain_ != nullptr ? slot.domain_->page_size() : 0);
  }
  for (const StreamBinding& binding : streams_) {
    if (binding.device == kNoIndex || binding.context.slot_ != &slot) {
      continue;
    }
    const DeviceEntry& entry = devices_[binding.device];
    {
      DumpLine line(sink);
      LineWriter& w = line.w();
      PutContextNumber("stream", n, true, w);
      w.Put(" device ");
      w.Put(port::DeviceName(entry.dev));
      w.Put(" sid ");
      w.PutHex(binding.sid);
      if (entry.rid >= 0) {
        w.Put(" pci ");
        w.PutBdf(static_cast<uint16_t>(entry.rid));
      }
    }
    ReservedRegion regions[8];
    const size_t count = unit.ReservedRegions(binding.sid, regions);
    for (size_t i = 0; i < count && i < 8; ++i) {
      DumpLine line(sink);
      LineWriter& w = line.w();
      PutContextNumber("reserved", n, true, w);
      w.Put(" sid ");
      w.PutHex(binding.sid);
      w.Put(" iova ");
      w.PutHex(regions[i].start);
      w.Put(" size ");
      w.PutHex(regions[i].size);
      w.Put(regions[i].kind == ReservedRegion::Kind::kMsi ? " kind msi" : " kind reserved");
    }
  }
  // The context's lock keeps Map and Unmap out while its tables are read. The slot cannot be
  // freed meanwhile: that needs ops_lock_, which the caller holds.
  auto& mutable_slot = const_cast<internal::ContextSlot&>(slot);
  const port::LockGuard lock(mutable_slot.lock_);
  DumpLeaves leaves(sink, n);
  if (!unit.ForEachLeaf(slot.domain_, leaves).ok()) {
    DumpLine line(sink);
    PutContextNumber("maps", n, true, line.w());
    line.w().Put(" not-listed");
  }
}

Status Registry::Dump(DumpSink& sink) const {
  const port::LockGuard ops(ops_lock_);
  { DumpLine(sink).w().Put("deviso-dump 1"); }
  for (IsolationUnit* unit : units_) {
    if (unit == nullptr) {
      continue;
    }
    const UnitCaps& caps = unit->caps();
    {
      DumpLine line(sink);
      LineWriter& w = line.w();
      w.Put("unit ");
      w.Put(caps.name);
      w.Put(" backend ");
      w.Put(caps.backend);
      w.Put(" ias ");
      w.PutDec(caps.ias);
      w.Put(" oas ");
      w.PutDec(caps.oas);
      w.Put(" pages ");
      w.PutHex(caps.page_sizes);
    }
    for (size_t n = 0; n < kMaxContexts; ++n) {
      const internal::ContextSlot& slot = slots_[n];
      if (slot.state_ == internal::ContextSlot::State::kLive && slot.unit_ == unit) {
        DumpContext(slot, n, sink);
      }
    }
    // Bound StreamIDs with no context: blocked.
    for (const StreamBinding& binding : streams_) {
      if (binding.device == kNoIndex || binding.context.slot_ != nullptr ||
          devices_[binding.device].unit != unit) {
        continue;
      }
      const DeviceEntry& entry = devices_[binding.device];
      DumpLine line(sink);
      LineWriter& w = line.w();
      PutContextNumber("stream", 0, false, w);
      w.Put(" device ");
      w.Put(port::DeviceName(entry.dev));
      w.Put(" sid ");
      w.PutHex(binding.sid);
      if (entry.rid >= 0) {
        w.Put(" pci ");
        w.PutBdf(static_cast<uint16_t>(entry.rid));
      }
    }
  }
  { DumpLine(sink).w().Put("end"); }
  return Status::Ok();
}

}  // namespace deviso
