// How one device's DMA reaches memory through deviso: its context, how its device addresses
// are chosen (identity or translated), the windows they must avoid, and its cache coherency.
// Shared by the DMA-driver hook (ContextDmaMapper, dma/dma_mapper.h) and the device-bound
// pools (DevicePool, dma/device_pool.h).

#ifndef DEVISO_SRC_DMA_DEVICE_BINDING_H_
#define DEVISO_SRC_DMA_DEVICE_BINDING_H_

#include <cstddef>
#include <cstdint>

#include "deviso/registry.h"
#include "deviso/status.h"
#include "deviso/types.h"
#include "dma/iova_allocator.h"

namespace deviso::dma {

// How device addresses are chosen.
enum class Addressing : uint8_t {
  // Device address = physical address, as deviso_map() does. Needs no allocator, but a buffer
  // whose physical range falls in a reserved window cannot be used (-EINVAL).
  kIdentity,
  // Device address from an IovaAllocator, mapped to the buffer with Context::Map (as
  // deviso_map_iova() does): the device sees only the allocator's window.
  kTranslated,
};

// Cache maintenance for a device that is not dma-coherent (no `dma-coherent` in its
// devicetree node): the port's DC CVAC / DC IVAC loops + DSB over a physical range (the port
// converts to its virtual address; identity on bare metal). Either may be null (nothing to do).
struct CacheOps {
  // Writes CPU cache lines over [pa, pa + size) back to the point of coherency.
  void (*clean)(void* user, Paddr pa, size_t size) = nullptr;
  // Discards CPU cache lines over [pa, pa + size), so the CPU reads what the device wrote.
  void (*invalidate)(void* user, Paddr pa, size_t size) = nullptr;
  void* user = nullptr;
};

struct DeviceBinding {
  Context context;  // the device's deviso context (Registry::AllocContext / FindContext)
  Addressing addressing = Addressing::kIdentity;
  IovaAllocator* iova = nullptr;              // required for kTranslated; must outlive users
  const ReservedWindows* reserved = nullptr;  // checked in both modes; may be null (none)
  // The device snoops CPU caches: mappings are MemType::kNormal and no cache maintenance is
  // done. Otherwise mappings are kNormalNonCacheable and `cache` is called around transfers.
  bool coherent = true;
  CacheOps cache;
  // Identity ranges the context already maps, and for which permissions (0: none; the default).
  // For a program that maps a buffer itself, as the seed README's example does with
  // deviso_map(), and then hands it to a driver whose hook maps each transfer: without this the
  // hook's Context::Map of that buffer fails (-EEXIST). With it, ContextDmaMapper::MapForDevice
  // uses, without mapping it and later without unmapping it, a range the context already maps
  // identically (Context::IovaToPhys(p) == p for every page), provided the direction's
  // permissions are within these. A context cannot report a mapping's permissions, so the
  // binding states what the owner's own identity mappings grant: deviso_map() always grants
  // kPermReadWrite. The device keeps reaching such a range after the transfer for as long as
  // its owner keeps it mapped; the owner unmaps it (strictly) when done. kIdentity only.
  Perms adopt_identity_mappings = 0;
  // kTranslated: give a range a device address aligned as its physical address is, up to the
  // largest power of two not above its size (at most kMaxLeafAlign), so the engine can map it
  // with blocks (2 MiB, 1 GiB with a 4 KiB granule) and the contiguous runs (64 KiB) a page-
  // aligned address would rule out (docs/performance.md). When the window has no such gap the
  // caller's alignment is used. false: device addresses only as aligned as the caller asks (the
  // densest packing of the window).
  bool leaf_aligned_iova = true;
  static constexpr uint64_t kMaxLeafAlign = 1ULL << 30;

  MemType mem_type() const { return coherent ? MemType::kNormal : MemType::kNormalNonCacheable; }
  void Clean(Paddr pa, size_t size) const {
    if (!coherent && cache.clean != nullptr && size != 0) cache.clean(cache.user, pa, size);
  }
  void Invalidate(Paddr pa, size_t size) const {
    if (!coherent && cache.invalidate != nullptr && size != 0) {
      cache.invalidate(cache.user, pa, size);
    }
  }

  // Checks the binding itself: -EINVAL for a default context handle, kTranslated without an
  // allocator, or an allocator whose granule is not a multiple of the context's page size,
  // adopt_identity_mappings with kTranslated or with bits other than kPermReadWrite's.
  Status Validate() const;

  // Gives [pa, pa + size) (page-aligned, size a page multiple) a device address aligned to
  // `align` (and, with leaf_aligned_iova, to LeafAlignment(pa, size) where the window allows)
  // and maps it with `perms`. Errors, with no change: -EINVAL (unaligned, wrap, identity
  // range in a reserved window), -ENOMEM (allocator), and Context::Map's errors.
  Result<Iova> MapRange(Paddr pa, uint64_t size, uint64_t align, Perms perms) const;
  // Unmaps (strictly) what MapRange() returned and, only once the unmap is confirmed, gives
  // the device address back to the allocator. Errors: Context::Unmap's; after -ETIMEDOUT/-EIO
  // the device address stays allocated (never handed out again).
  Status UnmapRange(Iova device_addr, uint64_t size) const;

  // The largest power of two that divides `pa` and is at most `size` and kMaxLeafAlign (`size`
  // at least one page): a device address congruent to `pa` modulo it lets every leaf up to that
  // size cover the same physical range as it covers device addresses.
  static uint64_t LeafAlignment(Paddr pa, uint64_t size);
};

}  // namespace deviso::dma

#endif  // DEVISO_SRC_DMA_DEVICE_BINDING_H_
