// Devicetree parsing for the QEMU `virt` platform, with libfdt (no hand-written FDT parser); the
// IOMMU-related parts (SMMU node, iommu-map, interrupt-map) through src/dt.

#include <cstring>

extern "C" {
#include <libfdt.h>
}

#include "dt/devicetree.h"
#include "platform_info.h"

namespace deviso::qemu_virt {
namespace {

// Reads `cells` big-endian 32-bit cells (1 or 2) at `p` as one number.
uint64_t ReadCells(const fdt32_t* p, int cells) {
  uint64_t v = 0;
  for (int i = 0; i < cells; ++i) {
    v = (v << 32) | fdt32_ld(p + i);
  }
  return v;
}

// Reads the index-th (address, size) pair of `node`'s `reg`, whose cell counts come from the
// parent (Devicetree Specification 2.3.6). Errors: -ENOENT (no such entry).
Status ReadReg(const void* fdt, int node, int index, Region* out) {
  const int parent = fdt_parent_offset(fdt, node);
  if (parent < 0) {
    return Status::NotFound();
  }
  const int ac = fdt_address_cells(fdt, parent);
  const int sc = fdt_size_cells(fdt, parent);
  if (ac < 1 || ac > 2 || sc < 0 || sc > 2) {
    return Status::NotSupported();
  }
  int len = 0;
  const auto* reg = static_cast<const fdt32_t*>(fdt_getprop(fdt, node, "reg", &len));
  const int entry_cells = ac + sc;
  if (reg == nullptr || len < (index + 1) * entry_cells * 4) {
    return Status::NotFound();
  }
  const fdt32_t* p = reg + index * entry_cells;
  out->base = ReadCells(p, ac);
  out->size = ReadCells(p + ac, sc);
  return Status::Ok();
}

bool HasProperty(const void* fdt, int node, const char* name) {
  return fdt_getprop(fdt, node, name, nullptr) != nullptr;
}

uint32_t ReadU32(const void* fdt, int node, const char* name, uint32_t fallback) {
  int len = 0;
  const auto* p = static_cast<const fdt32_t*>(fdt_getprop(fdt, node, name, &len));
  return (p != nullptr && len >= 4) ? fdt32_ld(p) : fallback;
}

Status ParseMemory(const void* fdt, PlatformInfo* out) {
  for (int node = fdt_node_offset_by_prop_value(fdt, -1, "device_type", "memory", 7); node >= 0;
       node = fdt_node_offset_by_prop_value(fdt, node, "device_type", "memory", 7)) {
    Region r;
    for (int i = 0; ReadReg(fdt, node, i, &r).ok(); ++i) {
      if (r.size == 0) {
        continue;
      }
      if (out->memory_count == PlatformInfo::kMaxMemory) {
        return Status::OutOfRange();
      }
      out->memory[out->memory_count++] = r;
    }
  }
  return out->memory_count == 0 ? Status::NotFound() : Status::Ok();
}

Status AddReserved(PlatformInfo* out, Region r) {
  if (out->reserved_count == PlatformInfo::kMaxReserved) {
    return Status::OutOfRange();
  }
  out->reserved[out->reserved_count++] = r;
  return Status::Ok();
}

Status ParseReserved(const void* fdt, PlatformInfo* out) {
  const int n = fdt_num_mem_rsv(fdt);
  for (int i = 0; i < n; ++i) {
    uint64_t addr = 0;
    uint64_t size = 0;
    if (fdt_get_mem_rsv(fdt, i, &addr, &size) == 0 && size != 0) {
      DEVISO_TRY(AddReserved(out, {addr, size}));
    }
  }
  const int rm = fdt_path_offset(fdt, "/reserved-memory");
  if (rm >= 0) {
    int child = 0;
    fdt_for_each_subnode(child, fdt, rm) {
      Region r;
      if (ReadReg(fdt, child, 0, &r).ok() && r.size != 0) {
        DEVISO_TRY(AddReserved(out, r));
      }
    }
  }
  return Status::Ok();
}

void ParseUart(const void* fdt, PlatformInfo* out) {
  int node = -1;
  // /chosen stdout-path: a path or an alias, optionally followed by ":options" (DT spec 3.6).
  const int chosen = fdt_path_offset(fdt, "/chosen");
  int len = 0;
  const char* path = chosen >= 0
                         ? static_cast<const char*>(fdt_getprop(fdt, chosen, "stdout-path", &len))
                         : nullptr;
  if (path != nullptr && len > 1) {
    const char* colon = std::strchr(path, ':');
    const int n = colon != nullptr ? static_cast<int>(colon - path) : len - 1;
    if (path[0] == '/') {
      node = fdt_path_offset_namelen(fdt, path, n);
    } else {
      const char* alias = fdt_get_alias_namelen(fdt, path, n);
      node = alias != nullptr ? fdt_path_offset(fdt, alias) : -1;
    }
    if (node >= 0 && fdt_node_check_compatible(fdt, node, "arm,pl011") != 0) {
      node = -1;  // not a PL011: fall back to the first one
    }
  }
  if (node < 0) {
    node = fdt_node_offset_by_compatible(fdt, -1, "arm,pl011");
  }
  if (node < 0 || !ReadReg(fdt, node, 0, &out->uart.regs).ok()) {
    return;
  }
  out->uart.present = true;
  // clock-names = "uartclk", "apb_pclk": the first clock is the reference clock.
  const int clk = fdt_node_offset_by_phandle(fdt, ReadU32(fdt, node, "clocks", 0));
  if (clk >= 0) {
    out->uart.clock_hz = ReadU32(fdt, clk, "clock-frequency", 0);
  }
}

void ParseGic(const void* fdt, PlatformInfo* out) {
  int node = fdt_node_offset_by_compatible(fdt, -1, "arm,gic-v3");
  if (node >= 0) {
    if (ReadReg(fdt, node, 0, &out->gic.distributor).ok() &&
        ReadReg(fdt, node, 1, &out->gic.redistributors).ok()) {
      out->gic.version = 3;
    }
    // arm,gic-v3.yaml: ITSs are children of the GIC node; the first available one is used.
    int child = 0;
    fdt_for_each_subnode(child, fdt, node) {
      if (fdt_node_check_compatible(fdt, child, "arm,gic-v3-its") == 0 &&
          HasProperty(fdt, child, "msi-controller") && ReadReg(fdt, child, 0, &out->gic.its).ok()) {
        out->gic.its_phandle = fdt_get_phandle(fdt, child);
        break;
      }
    }
    return;
  }
  for (const char* compatible : {"arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a9-gic"}) {
    node = fdt_node_offset_by_compatible(fdt, -1, compatible);
    if (node >= 0) {
      if (ReadReg(fdt, node, 0, &out->gic.distributor).ok() &&
          ReadReg(fdt, node, 1, &out->gic.cpu_interface).ok()) {
        out->gic.version = 2;
      }
      return;
    }
  }
}

// A GIC interrupt from src/dt's specifier; invalid if absent or not a GIC specifier.
IrqSpec ToIrqSpec(const dt::Interrupt& irq) {
  IrqSpec spec;
  const Result<dt::GicInterrupt> gic = dt::DecodeGic(irq);
  if (gic.ok()) {
    spec.valid = true;
    spec.intid = gic->intid;
    spec.edge = gic->edge;
  }
  return spec;
}

// The first arm,smmu-v3 node, through src/dt (which checks #iommu-cells, reg, interrupts).
Status ParseSmmu(const void* fdt, PlatformInfo* out) {
  const int node = fdt_node_offset_by_compatible(fdt, -1, "arm,smmu-v3");
  if (node < 0) {
    return Status::Ok();
  }
  DEVISO_ASSIGN_OR_RETURN(const dt::IommuNode n, dt::ParseIommu(fdt, node));
  SmmuInfo& s = out->smmu;
  s.present = true;
  s.node = node;
  s.regs = {n.regs.base, n.regs.size};
  s.phandle = n.phandle;
  s.dma_coherent = n.dma_coherent;
  s.eventq = ToIrqSpec(n.irqs.eventq);
  s.priq = ToIrqSpec(n.irqs.priq);
  s.cmdq_sync = ToIrqSpec(n.irqs.cmdq_sync);
  s.gerror = ToIrqSpec(n.irqs.gerror);
  s.combined = ToIrqSpec(n.irqs.combined);
  return Status::Ok();
}

// msi-map = <rid-base &controller msi-base length>... (pci-msi.txt): four cells per entry, as
// Linux's of_map_id() reads it whatever the controller's #msi-cells (a GICv2m frame has none);
// msi-parent if there is no msi-map.
Status ParseMsiMap(const void* fdt, int node, PciHostInfo* pci) {
  pci->msi_map_mask = ReadU32(fdt, node, "msi-map-mask", 0xffffffff);
  int len = 0;
  const auto* map = static_cast<const fdt32_t*>(fdt_getprop(fdt, node, "msi-map", &len));
  if (map == nullptr) {
    pci->msi_parent = ReadU32(fdt, node, "msi-parent", 0);
    return Status::Ok();
  }
  if (len <= 0 || len % 16 != 0) {
    return Status::InvalidArgument();
  }
  const size_t n = static_cast<size_t>(len) / 16;
  if (n > PciHostInfo::kMaxMsiMap) {
    return Status::OutOfRange();
  }
  for (size_t i = 0; i < n; ++i) {
    MsiMapEntry e;
    e.rid_base = fdt32_ld(map + 4 * i);
    e.controller = fdt32_ld(map + 4 * i + 1);
    e.msi_base = fdt32_ld(map + 4 * i + 2);
    e.length = fdt32_ld(map + 4 * i + 3);
    const int controller = fdt_node_offset_by_phandle(fdt, e.controller);
    if (controller < 0 || e.length == 0) {
      return Status::InvalidArgument();
    }
    pci->msi_map[i] = e;
  }
  pci->msi_map_count = n;
  return Status::Ok();
}

Status ParsePci(const void* fdt, PlatformInfo* out) {
  const int node = fdt_node_offset_by_compatible(fdt, -1, "pci-host-ecam-generic");
  if (node < 0 || !ReadReg(fdt, node, 0, &out->pci.ecam).ok()) {
    return Status::Ok();
  }
  PciHostInfo& pci = out->pci;
  pci.present = true;
  pci.node = node;
  pci.dma_coherent = HasProperty(fdt, node, "dma-coherent");
  int len = 0;
  const auto* bus_range = static_cast<const fdt32_t*>(fdt_getprop(fdt, node, "bus-range", &len));
  pci.bus_start = 0;
  pci.bus_end = static_cast<uint8_t>(pci.ecam.size / (1 << 20) - 1);  // 1 MiB of ECAM per bus
  if (bus_range != nullptr && len == 8) {
    pci.bus_start = static_cast<uint8_t>(fdt32_ld(bus_range));
    pci.bus_end = static_cast<uint8_t>(fdt32_ld(bus_range + 1));
  }

  // ranges: <phys.hi phys.mid phys.lo> <parent address> <size> (PCI Bus Binding 2.2.1.1).
  const int parent_ac = fdt_address_cells(fdt, fdt_parent_offset(fdt, node));
  const int sc = fdt_size_cells(fdt, node);
  const int entry = 3 + parent_ac + sc;
  const auto* ranges = static_cast<const fdt32_t*>(fdt_getprop(fdt, node, "ranges", &len));
  for (int i = 0; ranges != nullptr && parent_ac >= 1 && parent_ac <= 2 && sc >= 1 && sc <= 2 &&
                  (i + 1) * entry * 4 <= len;
       ++i) {
    const fdt32_t* p = ranges + i * entry;
    const uint32_t hi = fdt32_ld(p);
    PciWindow w;
    w.present = true;
    w.pci_addr = ReadCells(p + 1, 2);
    w.cpu_addr = ReadCells(p + 3, parent_ac);
    w.size = ReadCells(p + 3 + parent_ac, sc);
    w.prefetchable = ((hi >> 30) & 1) != 0;
    switch ((hi >> 24) & 3) {  // ss: 01 I/O, 10 32-bit memory, 11 64-bit memory
      case 1:
        pci.io = w;
        break;
      case 2:
        pci.mem32 = w;
        break;
      case 3:
        pci.mem64 = w;
        break;
      default:
        break;
    }
  }

  // iommu-map (pci-iommu.txt) and interrupt-map (DT spec 2.4.3), through src/dt.
  dt::IommuMap map;
  DEVISO_TRY(dt::ReadIommuMap(fdt, node, &map));
  if (map.count > PciHostInfo::kMaxIommuMap) {
    return Status::OutOfRange();
  }
  for (size_t i = 0; i < map.count; ++i) {
    const dt::IommuMapRange& r = map.ranges[i];
    pci.iommu_map[i] = {r.rid_base, r.iommu_phandle, r.sid_base, r.length};
  }
  pci.iommu_map_count = map.count;
  pci.iommu_map_mask = map.mask;
  DEVISO_TRY(ParseMsiMap(fdt, node, &pci));
  return dt::ReadInterruptMap(fdt, node, &pci.intx_map);
}

void ParsePsci(const void* fdt, PlatformInfo* out) {
  int node = fdt_node_offset_by_compatible(fdt, -1, "arm,psci-0.2");
  if (node < 0) {
    node = fdt_node_offset_by_compatible(fdt, -1, "arm,psci-1.0");
  }
  if (node < 0) {
    return;
  }
  const char* method = static_cast<const char*>(fdt_getprop(fdt, node, "method", nullptr));
  out->psci.present = method != nullptr;
  out->psci.use_hvc = method != nullptr && std::strcmp(method, "hvc") == 0;
}

}  // namespace

Status ParseDeviceTree(const void* dtb, PlatformInfo* out) {
  if (dtb == nullptr || fdt_check_header(dtb) != 0) {
    return Status::InvalidArgument();
  }
  DEVISO_TRY(dt::CheckBlob(dtb, fdt_totalsize(dtb)));
  *out = PlatformInfo{};
  out->dtb = dtb;
  out->dtb_size = fdt_totalsize(dtb);
  const char* model = static_cast<const char*>(fdt_getprop(dtb, 0, "model", nullptr));
  out->model = model != nullptr ? model : "(no model)";
  DEVISO_TRY(ParseMemory(dtb, out));
  DEVISO_TRY(ParseReserved(dtb, out));
  ParseUart(dtb, out);
  ParseGic(dtb, out);
  DEVISO_TRY(ParseSmmu(dtb, out));
  DEVISO_ASSIGN_OR_RETURN(out->iommu_count, dt::FindIommus(dtb, out->iommus));
  DEVISO_TRY(ParsePci(dtb, out));
  ParsePsci(dtb, out);
  return Status::Ok();
}

Result<uint32_t> MsiDeviceId(const PlatformInfo& info, uint16_t rid) {
  const PciHostInfo& pci = info.pci;
  if (pci.msi_map_count == 0) {
    if (pci.msi_parent == 0) {
      return Status::NotFound();
    }
    if (info.gic.its_phandle == 0 || pci.msi_parent != info.gic.its_phandle) {
      return Status::InvalidArgument();
    }
    return uint32_t{rid};
  }
  const uint32_t masked = rid & pci.msi_map_mask;
  for (size_t i = 0; i < pci.msi_map_count; ++i) {
    const MsiMapEntry& e = pci.msi_map[i];
    if (masked >= e.rid_base && masked - e.rid_base < e.length) {
      if (info.gic.its_phandle == 0 || e.controller != info.gic.its_phandle) {
        return Status::InvalidArgument();
      }
      return e.msi_base + (masked - e.rid_base);
    }
  }
  return Status::NotFound();
}

}  // namespace deviso::qemu_virt
