#include "dma/dma_mapper.h"

namespace deviso::dma {

using drivers::DmaDirection;
using drivers::DmaMapping;

namespace {

bool Overlap(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size) {
  return a < b + b_size && b < a + a_size;
}

}  // namespace

Result<DmaMapping> ContextDmaMapper::MapForDevice(uint64_t pa, size_t size,
                                                  DmaDirection direction) {
  DEVISO_TRY(binding_.Validate());
  const uint64_t page = binding_.context.page_size();
  if (size == 0 || pa % page != 0 || size % page != 0 || size - 1 > UINT64_MAX - pa) {
    return Status::InvalidArgument();
  }
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
  DmaMapping* slot = nullptr;
  for (DmaMapping& m : live_) {
    if (m.size == 0) {
      if (slot == nullptr) slot = &m;
    } else if (Overlap(m.pa, m.size, pa, size)) {
      return Status::AlreadyExists();
    }
  }
  if (slot == nullptr) return Status::NoMemory();
  // Clean before the device can reach the buffer (every direction: see the header).
  binding_.Clean(pa, size);
  Result<Iova> device_addr = binding_.MapRange(pa, size, page, perms);
  if (!device_addr.ok() && device_addr.status() == Status::NotSupported() && perms == kPermWrite) {
    // Stage 1 has no write-only permission: read-write over the buffer's own pages.
    device_addr = binding_.MapRange(pa, size, page, kPermReadWrite);
  }
  DEVISO_TRY(device_addr);
  *slot = DmaMapping{pa, *device_addr, size, direction};
  return *slot;
}

Status ContextDmaMapper::UnmapForDevice(const DmaMapping& mapping) {
  port::LockGuard guard(lock_);
  for (DmaMapping& m : live_) {
    if (m.size == 0 || m.size != mapping.size || m.pa != mapping.pa ||
        m.device_addr != mapping.device_addr || m.direction != mapping.direction) {
      continue;
    }
    DEVISO_TRY(binding_.UnmapRange(m.device_addr, m.size));
    if (m.direction != DmaDirection::kToDevice) binding_.Invalidate(m.pa, m.size);
    m = DmaMapping{};
    return Status::Ok();
  }
  return Status::NotFound();
}

size_t ContextDmaMapper::live_mappings() const {
  port::LockGuard guard(lock_);
  size_t n = 0;
  for (const DmaMapping& m : live_) n += m.size != 0 ? 1 : 0;
  return n;
}

}  // namespace deviso::dma
