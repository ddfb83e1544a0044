#include "dma_platform.h"

#include "arch.h"

namespace deviso::qemu_virt {
namespace {

void Clean(void* /*user*/, Paddr pa, size_t size) {
  arch::CleanDcacheRange(reinterpret_cast<const void*>(static_cast<uintptr_t>(pa)), size);
}

void Invalidate(void* /*user*/, Paddr pa, size_t size) {
  arch::InvalidateDcacheRange(reinterpret_cast<const void*>(static_cast<uintptr_t>(pa)), size);
}

}  // namespace

Status AddPciReservedWindows(const PlatformInfo& info, const IsolationUnit& unit, uint32_t sid,
                             dma::ReservedWindows& out) {
  // The memory windows by their PCI bus addresses: what a device's DMA address is compared
  // with. (The I/O window is another address space: memory DMA cannot reach it.)
  for (const PciWindow* w : {&info.pci.mem32, &info.pci.mem64}) {
    if (w->present && w->size != 0) DEVISO_TRY(out.Add(w->pci_addr, w->size));
  }
  return out.AddFromUnit(unit, sid);
}

dma::CacheOps BoardCacheOps() {
  dma::CacheOps ops;
  ops.clean = &Clean;
  ops.invalidate = &Invalidate;
  return ops;
}

Result<dma::DeviceBinding> PciIdentityBinding(const PlatformInfo& info, const Context& context,
                                              uint32_t sid, dma::ReservedWindows& windows) {
  if (context.unit() == nullptr) return Status::InvalidArgument();
  DEVISO_TRY(AddPciReservedWindows(info, *context.unit(), sid, windows));
  dma::DeviceBinding binding;
  binding.context = context;
  binding.addressing = dma::Addressing::kIdentity;
  binding.reserved = &windows;
  binding.coherent = info.pci.dma_coherent;
  binding.cache = BoardCacheOps();
  return binding;
}

}  // namespace deviso::qemu_virt
