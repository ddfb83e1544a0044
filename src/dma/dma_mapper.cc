#include "dma/dma_mapper.h"

namespace deviso::dma {

using drivers::DmaDirection;
using drivers::DmaMapping;

namespace {

bool Overlap(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size) {
  return a < b + b_size && b < a + a_size;
}

}  // namespace

Result<bool> ContextDmaMapper::Adoptable(uint64_t pa, size_t size, Perms perms) const {
  if (binding_.adopt_identity_mappings == 0 || !binding_.context.IovaToPhys(pa).ok()) {
    return false;
  }
  if ((perms & ~binding_.adopt_identity_mappings) != 0) return Status::AlreadyExists();
  const uint64_t page = binding_.context.page_size();
  for (uint64_t off = 0; off < size; off += page) {
    const Result<Paddr> out = binding_.context.IovaToPhys(pa + off);
    if (!out.ok() || *out != pa + off) return Status::AlreadyExists();
  }
  return true;
}

Result<DmaMapping> ContextDmaMapper::MapForDevice(uint64_t pa, size_t size,
                                                  DmaDirection direction) {
  DEVISO_TRY(binding_.Validate());
  const uint64_t page = binding_.context.page_size();
  DEVISO_TRY(bounce_.Validate(page));
  if (size == 0 || size - 1 > UINT64_MAX - pa) return Status::InvalidArgument();
  const bool aligned = pa % page == 0 && size % page == 0;
  const bool bounced = bounce_.enabled() && (bounce_.always || !aligned);
  if (!aligned && !bounced) return Status::InvalidArgument();
  Perms perms = 0;
  switch (direction) {
    case DmaDirection::kToDevice:
      perms = kPermRead;
      break;
    case DmaDirection::kFromDevice:
      perms = kPermWrite;
      break;
    case DmaDirection::kBidirectional:
      perms = kPermReadWrite;
      break;
    default:
      return Status::InvalidArgument();
  }
  port::LockGuard guard(lock_);
  Slot* slot = nullptr;
  for (Slot& s : live_) {
    if (s.mapping.size == 0) {
      if (slot == nullptr) slot = &s;
    } else if (Overlap(s.mapping.pa, s.mapping.size, pa, size)) {
      return Status::AlreadyExists();
    }
  }
  if (slot == nullptr) return Status::NoMemory();
  if (bounced) {
    // Only the run is mapped; the buffer's own page never is.
    DEVISO_ASSIGN_OR_RETURN(const BounceRun run, BounceAcquire(bounce_, binding_, pa, size));
    const uint64_t run_bytes = run.pages * page;
    Result<Iova> device_addr = binding_.MapRange(run.pa, run_bytes, page, perms);
    if (!device_addr.ok() && device_addr.status() == Status::NotSupported() &&
        perms == kPermWrite) {
      // Stage 1 has no write-only permission: the run holds only the buffer's bytes and zeros.
      device_addr = binding_.MapRange(run.pa, run_bytes, page, kPermReadWrite);
    }
    if (!device_addr.ok()) {
      BounceRelease(bounce_, run);
      return device_addr.status();
    }
    *slot = Slot{DmaMapping{pa, *device_addr, size, direction}, false, run};
    ++counters_.maps;
    ++counters_.bounces;
    return slot->mapping;
  }
  DEVISO_ASSIGN_OR_RETURN(const bool adopt, Adoptable(pa, size, perms));
  if (adopt) {
    // The same rule as a new identity mapping: no device address in a reserved window.
    if (binding_.reserved != nullptr && binding_.reserved->Overlaps(pa, size)) {
      return Status::InvalidArgument();
    }
    binding_.Clean(pa, size);
    *slot = Slot{DmaMapping{pa, pa, size, direction}, true, BounceRun{}};
    ++counters_.adoptions;
    return slot->mapping;
  }
  // Clean before the device can reach the buffer (every direction: see the header).
  binding_.Clean(pa, size);
  Result<Iova> device_addr = binding_.MapRange(pa, size, page, perms);
  if (!device_addr.ok() && device_addr.status() == Status::NotSupported() && perms == kPermWrite) {
    // Stage 1 has no write-only permission: read-write over the buffer's own pages.
    device_addr = binding_.MapRange(pa, size, page, kPermReadWrite);
  }
  DEVISO_TRY(device_addr);
  *slot = Slot{DmaMapping{pa, *device_addr, size, direction}, false, BounceRun{}};
  ++counters_.maps;
  return slot->mapping;
}

ContextDmaMapper::Slot* ContextDmaMapper::FindLocked(const DmaMapping& mapping) {
  for (Slot& s : live_) {
    const DmaMapping& m = s.mapping;
    if (m.size != 0 && m.size == mapping.size && m.pa == mapping.pa &&
        m.device_addr == mapping.device_addr && m.direction == mapping.direction) {
      return &s;
    }
  }
  return nullptr;
}

Status ContextDmaMapper::UnmapForDevice(const DmaMapping& mapping) {
  port::LockGuard guard(lock_);
  Slot* const s = FindLocked(mapping);
  if (s == nullptr) return Status::NotFound();
  const DmaMapping& m = s->mapping;
  if (s->bounce.cpu != nullptr) {
    // Copied back only once the device can no longer write the run.
    DEVISO_TRY(binding_.UnmapRange(m.device_addr, s->bounce.pages * page_size()));
    BounceSyncForCpu(bounce_, binding_, s->bounce, m.pa, m.size, m.direction);
    BounceRelease(bounce_, s->bounce);
  } else {
    // An adopted range stays mapped: its owner unmaps it.
    if (!s->adopted) DEVISO_TRY(binding_.UnmapRange(m.device_addr, m.size));
    if (m.direction != DmaDirection::kToDevice) binding_.Invalidate(m.pa, m.size);
  }
  *s = Slot{};
  ++counters_.releases;
  return Status::Ok();
}

Status ContextDmaMapper::SyncForDevice(const DmaMapping& mapping) {
  port::LockGuard guard(lock_);
  const Slot* const s = FindLocked(mapping);
  if (s == nullptr) return Status::NotFound();
  const DmaMapping& m = s->mapping;
  if (s->bounce.cpu != nullptr) {
    BounceSyncForDevice(bounce_, binding_, s->bounce, m.pa, m.size, m.direction);
  } else if (m.direction != DmaDirection::kFromDevice) {
    binding_.Clean(m.pa, m.size);
  }
  return Status::Ok();
}

Status ContextDmaMapper::SyncForCpu(const DmaMapping& mapping) {
  port::LockGuard guard(lock_);
  const Slot* const s = FindLocked(mapping);
  if (s == nullptr) return Status::NotFound();
  const DmaMapping& m = s->mapping;
  if (s->bounce.cpu != nullptr) {
    BounceSyncForCpu(bounce_, binding_, s->bounce, m.pa, m.size, m.direction);
  } else if (m.direction != DmaDirection::kToDevice) {
    binding_.Invalidate(m.pa, m.size);
  }
  return Status::Ok();
}

size_t ContextDmaMapper::live_mappings() const {
  port::LockGuard guard(lock_);
  size_t n = 0;
  for (const Slot& s : live_) n += s.mapping.size != 0 ? 1 : 0;
  return n;
}

ContextDmaMapper::Counters ContextDmaMapper::counters() const {
  port::LockGuard guard(lock_);
  return counters_;
}

}  // namespace deviso::dma
