// device_get_binding() over PCI enumeration and the devicetree's iommu-map (device_binding.h).

#include "device_binding.h"

#include <libfdt.h>

#include <cstring>

#include "deviso/port/os.h"
#include "deviso/registry.h"
#include "dt/bind.h"

namespace deviso::qemu_virt {
namespace {

struct Entry {
  PciDriverBinding binding;
  PciHost* pci = nullptr;
  const PciFunction* fn = nullptr;
  uint32_t sid = 0;
  bool ready = false;
};

Entry g_entries[kMaxDeviceBindings];
size_t g_count = 0;

const Entry* FindReady(const struct device* dev) {
  for (size_t i = 0; i < g_count; ++i) {
    if (g_entries[i].ready && g_entries[i].binding.dev == dev) {
      return &g_entries[i];
    }
  }
  return nullptr;
}

const PciFunction* FindFunction(const PciHost& pci, const PciDriverBinding& b) {
  unsigned seen = 0;
  for (size_t i = 0; i < pci.function_count(); ++i) {
    const PciFunction& f = pci.function(i);
    if (f.vendor_id == b.vendor_id && f.device_id == b.device_id && seen++ == b.instance) {
      return &f;
    }
  }
  return nullptr;
}

Status Init(Entry& e, const PlatformInfo& info, PciHost& pci, PlatformIommu& iommu) {
  const PciDriverBinding& b = e.binding;
  const PciFunction* fn = FindFunction(pci, b);
  if (fn == nullptr) {
    port::Log("device %s: no PCI function %04x:%04x #%u\n", b.dev->name, b.vendor_id, b.device_id,
              b.instance);
    return Status::NotFound();
  }
  if (!info.pci.present || info.pci.node < 0) {
    return Status::InvalidArgument();
  }
  // The devicetree module resolves the requester ID through the host's iommu-map (first
  // matching range wins, as in Linux), checks the StreamIDs against the unit, and binds.
  static char host_path[128];  // the host bridge's node path, as dt::PciDevice names it
  if (fdt_get_path(info.dtb, info.pci.node, host_path, sizeof(host_path)) != 0) {
    return Status::InvalidArgument();
  }
  // The requester ID its DMA carries: its own, or the alias of a bridge above it (pci.h).
  const dt::PciDevice pci_dev[] = {{host_path, fn->dma_alias.rid(), b.dev}};
  const dt::UnitEntry units[] = {{iommu.phandle(), &iommu.unit()}};
  dt::BindRequest request;
  request.fdt = info.dtb;
  request.units = units;
  request.pci = pci_dev;
  dt::DeviceStreams bound[1];
  const Status bind = dt::BindFromDevicetree(Registry::Default(), request, bound);
  if (!bind.ok() || bound[0].sid_count == 0) {
    port::Log("device %s: %02x:%02x.%u not bound to %s (phandle %u) from the iommu-map: %s\n",
              b.dev->name, fn->bdf.bus, fn->bdf.device, fn->bdf.function, iommu.kind(),
              iommu.phandle(), bind.str());
    if (bind.ok()) (void)dt::UnbindAll(Registry::Default(), bound);
    return bind.ok() ? Status::NotFound() : bind;
  }
  const uint32_t sid = bound[0].sids[0];
  const Status probed = b.probe(*b.dev, *fn, sid, b.context);
  if (!probed.ok()) {
    port::Log("device %s: probe of %02x:%02x.%u failed: %s\n", b.dev->name, fn->bdf.bus,
              fn->bdf.device, fn->bdf.function, probed.str());
    (void)dt::UnbindAll(Registry::Default(), bound);
    return probed;
  }
  e.pci = &pci;
  e.fn = fn;
  e.sid = sid;
  e.ready = true;
  return Status::Ok();
}

}  // namespace

Status RegisterPciDevice(const PciDriverBinding& binding) {
  if (binding.dev == nullptr || binding.dev->name == nullptr || binding.probe == nullptr) {
    return Status::InvalidArgument();
  }
  for (size_t i = 0; i < g_count; ++i) {
    if (g_entries[i].binding.dev == binding.dev ||
        std::strcmp(g_entries[i].binding.dev->name, binding.dev->name) == 0) {
      return Status::AlreadyExists();
    }
  }
  if (g_count == kMaxDeviceBindings) {
    return Status::NoMemory();
  }
  g_entries[g_count++] = Entry{binding};
  return Status::Ok();
}

size_t InitPciDevices(const PlatformInfo& info, PciHost& pci, PlatformIommu& iommu) {
  size_t ready = 0;
  for (size_t i = 0; i < g_count; ++i) {
    Entry& e = g_entries[i];
    if (e.ready || Init(e, info, pci, iommu).ok()) {
      ++ready;
    }
  }
  return ready;
}

Result<uint32_t> DeviceStreamId(const struct device* dev) {
  const Entry* e = FindReady(dev);
  if (e == nullptr) {
    return Status::NotFound();
  }
  return e->sid;
}

Result<const PciFunction*> DevicePciFunction(const struct device* dev) {
  const Entry* e = FindReady(dev);
  if (e == nullptr) {
    return Status::NotFound();
  }
  return e->fn;
}

Status DeviceSetBusMaster(const struct device* dev, bool enable) {
  const Entry* e = FindReady(dev);
  if (e == nullptr) {
    return Status::NotFound();
  }
  return enable ? e->pci->EnableBusMaster(e->fn->bdf) : e->pci->DisableBusMaster(e->fn->bdf);
}

}  // namespace deviso::qemu_virt

extern "C" const struct device* device_get_binding(const char* name) {
  if (name == nullptr) {
    return nullptr;
  }
  for (size_t i = 0; i < deviso::qemu_virt::g_count; ++i) {
    const auto& e = deviso::qemu_virt::g_entries[i];
    if (e.ready && std::strcmp(e.binding.dev->name, name) == 0) {
      return e.binding.dev;
    }
  }
  return nullptr;
}
