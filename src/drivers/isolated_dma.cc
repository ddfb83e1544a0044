#include "drivers/isolated_dma.h"

#include <cstdint>

namespace deviso::drivers {

Result<DmaRegion> IsolatedDmaAllocator::Alloc(size_t size, size_t align) {
  const size_t page = mapper_.page_size();
  if (size == 0 || (align & (align - 1)) != 0 || page == 0 || (page & (page - 1)) != 0 ||
      size > SIZE_MAX - page) {
    return Status::InvalidArgument();
  }
  Record* slot = nullptr;
  for (Record& r : records_) {
    if (r.backing.cpu == nullptr) {
      slot = &r;
      break;
    }
  }
  if (slot == nullptr) return Status::NoMemory();
  // Whole pages only: a DMA buffer sharing a page with other data would expose that data.
  const size_t bytes = (size + page - 1) & ~(page - 1);
  DEVISO_ASSIGN_OR_RETURN(const DmaRegion memory,
                          backing_.Alloc(bytes, align > page ? align : page));
  const Result<DmaMapping> mapping =
      mapper_.MapForDevice(memory.device_addr, bytes, DmaDirection::kBidirectional);
  if (!mapping.ok()) {
    backing_.Free(memory);
    return mapping.status();
  }
  const DmaRegion handed{memory.cpu, mapping->device_addr, bytes};
  *slot = Record{memory, handed, *mapping, false};
  return handed;
}

IsolatedDmaAllocator::Record* IsolatedDmaAllocator::Find(const DmaRegion& region) {
  for (Record& r : records_) {
    if (r.backing.cpu != nullptr && !r.leaked && r.handed.cpu == region.cpu &&
        r.handed.device_addr == region.device_addr && r.handed.size == region.size) {
      return &r;
    }
  }
  return nullptr;
}

void IsolatedDmaAllocator::Free(const DmaRegion& region) {
  Record* const r = Find(region);
  if (r == nullptr) {
    ++foreign_frees_;
    return;
  }
  if (!mapper_.UnmapForDevice(r->mapping).ok()) {
    // The device may still reach the memory: never hand it to anyone else.
    r->leaked = true;
    ++leaked_;
    return;
  }
  backing_.Free(r->backing);
  *r = Record{};
}

void IsolatedDmaAllocator::SyncForDevice(const DmaRegion& region, size_t offset, size_t size) {
  if (const Record* r = Find(region); r != nullptr)
    backing_.SyncForDevice(r->backing, offset, size);
}

void IsolatedDmaAllocator::SyncForCpu(const DmaRegion& region, size_t offset, size_t size) {
  if (const Record* r = Find(region); r != nullptr) backing_.SyncForCpu(r->backing, offset, size);
}

size_t IsolatedDmaAllocator::live() const {
  size_t n = 0;
  for (const Record& r : records_) n += r.backing.cpu != nullptr && !r.leaked ? 1 : 0;
  return n;
}

}  // namespace deviso::drivers
