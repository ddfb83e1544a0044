#include "dma/device_pool.h"

#include <cstring>

namespace deviso::dma {

using drivers::DmaRegion;

DevicePool::~DevicePool() {
  if (bound()) (void)Unbind();
}

bool DevicePool::bound() const {
  port::LockGuard guard(lock_);
  return bound_;
}

Status DevicePool::Bind(PoolMode mode, const DeviceBinding& device) {
  port::LockGuard guard(lock_);
  if (bound_) return Status::AlreadyExists();
  DEVISO_TRY(device.Validate());
  const uint64_t page = device.context.page_size();
  if (!blocks_.valid() || blocks_.block_size() % page != 0) return Status::InvalidArgument();
  Iova base = 0;
  if (mode == PoolMode::kPoolWide) {
    const Paddr pa = blocks_.buffer_pa();
    const uint64_t size = blocks_.size_bytes();
    if (pa % kPoolWideAlign != 0 || size % kPoolWideAlign != 0) return Status::InvalidArgument();
    // Read-write for the device, once: the pool's whole lifetime.
    DEVISO_ASSIGN_OR_RETURN(base, device.MapRange(pa, size, kPoolWideAlign, kPermReadWrite));
  } else if (mode != PoolMode::kStrict) {
    return Status::InvalidArgument();
  }
  mode_ = mode;
  device_ = device;
  device_base_ = base;
  bound_ = true;
  return Status::Ok();
}

Status DevicePool::Unbind() {
  port::LockGuard guard(lock_);
  if (!bound_) return Status::NotFound();
  for (const Record& r : records_) {
    if (r.cpu != nullptr) return Status::Busy();
  }
  if (leaked_blocks_ != 0) return Status::Busy();
  if (mode_ == PoolMode::kPoolWide) {
    DEVISO_TRY(device_.UnmapRange(device_base_, blocks_.size_bytes()));
  }
  bound_ = false;
  device_ = DeviceBinding{};
  device_base_ = 0;
  return Status::Ok();
}

Result<DmaRegion> DevicePool::Alloc(size_t size, size_t align) {
  if (size == 0 || !IsPowerOfTwo(align == 0 ? 1 : align)) return Status::InvalidArgument();
  port::LockGuard guard(lock_);
  if (!bound_) return Status::InvalidArgument();
  if (mode_ == PoolMode::kPoolWide && device_.addressing == Addressing::kTranslated &&
      align > kPoolWideAlign) {
    // The device base is only 2 MiB-aligned: a larger physical alignment would not carry over.
    return Status::InvalidArgument();
  }
  const size_t block = blocks_.block_size();
  if (size > blocks_.size_bytes()) return Status::NoMemory();
  const size_t count = (size + block - 1) / block;
  const size_t bytes = count * block;
  Record* record = nullptr;
  for (Record& r : records_) {
    if (r.cpu == nullptr) {
      record = &r;
      break;
    }
  }
  if (record == nullptr) return Status::NoMemory();
  DEVISO_ASSIGN_OR_RETURN(void* const cpu, blocks_.AllocContiguous(count, align));
  const Paddr pa = blocks_.PaOf(cpu);
  // Zero (and clean, for a non-coherent device) before the device can reach it: it must see
  // neither the previous owner's data nor a dirty line written back later.
  std::memset(cpu, 0, bytes);
  device_.Clean(pa, bytes);
  Iova device_addr = device_base_ + (pa - blocks_.buffer_pa());
  if (mode_ == PoolMode::kStrict) {
    const Result<Iova> mapped = device_.MapRange(pa, bytes, align, kPermReadWrite);
    if (!mapped.ok()) {
      (void)blocks_.FreeContiguous(cpu, count);
      return mapped.status();
    }
    device_addr = *mapped;
  }
  *record = Record{cpu, pa, device_addr, bytes, false};
  return DmaRegion{cpu, device_addr, bytes};
}

Status DevicePool::AllocBlocks(std::span<DmaRegion> out) {
  if (out.empty()) return Status::InvalidArgument();
  {
    port::LockGuard guard(lock_);
    if (!bound_) return Status::InvalidArgument();
    size_t records = 0;
    for (const Record& r : records_) records += r.cpu == nullptr ? 1 : 0;
    if (records < out.size() || blocks_.free_blocks() < out.size()) return Status::NoMemory();
  }
  for (size_t i = 0; i < out.size(); ++i) {
    Result<DmaRegion> region = Alloc(blocks_.block_size(), 0);
    if (!region.ok()) {
      // Another thread took blocks meanwhile, or a map failed: give back what this call got.
      for (size_t j = 0; j < i; ++j) (void)Release(out[j]);
      return region.status();
    }
    out[i] = *region;
  }
  return Status::Ok();
}

DevicePool::Record* DevicePool::FindLocked(const DmaRegion& region) {
  for (Record& r : records_) {
    if (r.cpu != nullptr && !r.leaked && r.cpu == region.cpu &&
        r.device_addr == region.device_addr && r.size == region.size) {
      return &r;
    }
  }
  return nullptr;
}

Status DevicePool::Release(const DmaRegion& region) {
  if (!blocks_.Contains(region.cpu)) return Status::InvalidArgument();
  port::LockGuard guard(lock_);
  Record* const record = FindLocked(region);
  if (record == nullptr) return Status::NotFound();
  const size_t count = record->size / blocks_.block_size();
  if (mode_ == PoolMode::kStrict) {
    // Strict: the device must have lost the blocks before anyone else may get them.
    const Status unmapped = device_.UnmapRange(record->device_addr, record->size);
    if (!unmapped.ok()) {
      record->leaked = true;
      leaked_blocks_ += count;
      return unmapped;
    }
  }
  const Status freed = blocks_.FreeContiguous(record->cpu, count);
  DEVISO_ASSERT(freed.ok());  // the record says these blocks are ours
  *record = Record{};
  return Status::Ok();
}

void DevicePool::Free(const DmaRegion& region) {
  if (!Release(region).ok()) {
    port::LockGuard guard(lock_);
    ++free_errors_;
  }
}

bool DevicePool::InRegionLocked(const DmaRegion& region, size_t offset, size_t size) {
  const Record* const record = FindLocked(region);
  return record != nullptr && offset <= record->size && size <= record->size - offset;
}

void DevicePool::SyncForDevice(const DmaRegion& region, size_t offset, size_t size) {
  port::LockGuard guard(lock_);
  if (!InRegionLocked(region, offset, size)) return;
  device_.Clean(blocks_.PaOf(region.cpu) + offset, size);
}

void DevicePool::SyncForCpu(const DmaRegion& region, size_t offset, size_t size) {
  port::LockGuard guard(lock_);
  if (!InRegionLocked(region, offset, size)) return;
  device_.Invalidate(blocks_.PaOf(region.cpu) + offset, size);
}

size_t DevicePool::live_allocations() const {
  port::LockGuard guard(lock_);
  size_t n = 0;
  for (const Record& r : records_) n += r.cpu != nullptr && !r.leaked ? 1 : 0;
  return n;
}

size_t DevicePool::leaked_blocks() const {
  port::LockGuard guard(lock_);
  return leaked_blocks_;
}

size_t DevicePool::free_errors() const {
  port::LockGuard guard(lock_);
  return free_errors_;
}

}  // namespace deviso::dma
