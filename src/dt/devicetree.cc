// deviso's devicetree reader over libfdt (see devicetree.h for the bindings).

#include "dt/devicetree.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>

extern "C" {
#include <libfdt.h>
}

#include "deviso/port/os.h"
#include "dt/dt_log.h"

namespace deviso::dt {

void NodePath(const void* fdt, int node, std::span<char> buf) {
  if (buf.empty()) {
    return;
  }
  if (fdt_get_path(fdt, node, buf.data(), static_cast<int>(buf.size())) != 0) {
    std::snprintf(buf.data(), buf.size(), "<node at offset %d>", node);
  }
}

Status LogError(Status status, const void* fdt, int node, const char* property, const char* format,
                ...) {
  char path[kMaxPathLength];
  NodePath(fdt, node, path);
  char message[160];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof(message), format, args);
  va_end(args);
  port::Log("deviso dt: %s: %s: %s (%s)\n", path, property, message, status.str());
  return status;
}

namespace {

// A property as an array of big-endian cells. `len` is in bytes.
struct Cells {
  const fdt32_t* p = nullptr;
  int len = 0;
  size_t count() const { return static_cast<size_t>(len) / 4; }
  uint32_t operator[](size_t i) const { return fdt32_ld(p + i); }
};

Cells GetCells(const void* fdt, int node, const char* name) {
  Cells c;
  c.p = static_cast<const fdt32_t*>(fdt_getprop(fdt, node, name, &c.len));
  if (c.p == nullptr) {
    c.len = 0;
  }
  return c;
}

// A one-cell property. -ENOENT if absent (nothing logged), -EINVAL if not exactly one cell.
Result<uint32_t> ReadU32(const void* fdt, int node, const char* name) {
  const Cells c = GetCells(fdt, node, name);
  if (c.p == nullptr) {
    return Status::NotFound();
  }
  if (c.len != 4) {
    return LogError(Status::InvalidArgument(), fdt, node, name, "%d bytes, one cell expected",
                    c.len);
  }
  return c[0];
}

uint64_t Combine(const Cells& c, size_t at, int cells) {
  uint64_t v = 0;
  for (int i = 0; i < cells; ++i) {
    v = (v << 32) | c[at + static_cast<size_t>(i)];
  }
  return v;
}

// The target of an `iommus` / `iommu-map` phandle: the IOMMU node, with #iommu-cells = 1.
Result<int> ResolveIommu(const void* fdt, int node, const char* property, uint32_t phandle) {
  const int iommu = fdt_node_offset_by_phandle(fdt, phandle);
  if (iommu < 0) {
    return LogError(Status::InvalidArgument(), fdt, node, property,
                    "phandle 0x%x refers to no node (dangling)", phandle);
  }
  const Result<uint32_t> cells = ReadU32(fdt, iommu, "#iommu-cells");
  if (!cells.ok()) {
    char path[kMaxPathLength];
    NodePath(fdt, iommu, path);
    return LogError(Status::InvalidArgument(), fdt, node, property,
                    "phandle 0x%x: %s has no valid #iommu-cells", phandle, path);
  }
  if (*cells != 1) {
    char path[kMaxPathLength];
    NodePath(fdt, iommu, path);
    return LogError(Status::InvalidArgument(), fdt, node, property,
                    "phandle 0x%x: %s has #iommu-cells = %u, deviso's IOMMUs take 1 (StreamID)",
                    phandle, path, *cells);
  }
  return iommu;
}

// The interrupt parent of `node` (DT spec 2.4.1: interrupt-parent, else inherited from the
// nearest ancestor that has one), in `*parent`. A Status and an out-parameter rather than a
// Result<int>: GCC 12 at -Os, inlining this into its caller, warned (-Wmaybe-uninitialized) that
// the Result's unset value might be read on the error paths.
Status InterruptParent(const void* fdt, int node, int* parent) {
  for (int n = node; n >= 0; n = fdt_parent_offset(fdt, n)) {
    const Cells c = GetCells(fdt, n, "interrupt-parent");
    if (c.p == nullptr) {
      continue;
    }
    if (c.len != 4) {
      return LogError(Status::InvalidArgument(), fdt, n, "interrupt-parent", "not one cell");
    }
    const int found = fdt_node_offset_by_phandle(fdt, c[0]);
    if (found < 0) {
      return LogError(Status::InvalidArgument(), fdt, n, "interrupt-parent",
                      "phandle 0x%x refers to no node (dangling)", c[0]);
    }
    *parent = found;
    return Status::Ok();
  }
  return LogError(Status::InvalidArgument(), fdt, node, "interrupts", "no interrupt-parent");
}

Result<uint32_t> InterruptCells(const void* fdt, int controller, int user, const char* property) {
  const Result<uint32_t> cells = ReadU32(fdt, controller, "#interrupt-cells");
  if (!cells.ok() || *cells > kMaxInterruptCells) {
    char path[kMaxPathLength];
    NodePath(fdt, controller, path);
    return LogError(Status::InvalidArgument(), fdt, user, property,
                    "interrupt parent %s: #interrupt-cells missing or above %zu", path,
                    kMaxInterruptCells);
  }
  return *cells;
}

// Fills `out` from `cells` cells of `c` at `at` for the controller `controller`.
Interrupt MakeInterrupt(const void* fdt, int controller, const Cells& c, size_t at,
                        uint32_t cells) {
  Interrupt irq;
  irq.valid = true;
  irq.controller = controller;
  irq.controller_phandle = fdt_get_phandle(fdt, controller);
  irq.cell_count = static_cast<uint8_t>(cells);
  for (uint32_t i = 0; i < cells; ++i) {
    irq.cells[i] = c[at + i];
  }
  return irq;
}

// Interrupt `index` of `node` from `interrupts-extended` or `interrupts`.
Result<Interrupt> ReadInterrupt(const void* fdt, int node, int index) {
  const Cells ext = GetCells(fdt, node, "interrupts-extended");
  if (ext.p != nullptr) {
    // <phandle specifier>...: walk the entries, each as long as its controller says.
    size_t at = 0;
    for (int i = 0;; ++i) {
      if (at >= ext.count()) {
        return LogError(Status::InvalidArgument(), fdt, node, "interrupts-extended",
                        "entry %d missing (truncated)", index);
      }
      const int controller = fdt_node_offset_by_phandle(fdt, ext[at]);
      if (controller < 0) {
        return LogError(Status::InvalidArgument(), fdt, node, "interrupts-extended",
                        "phandle 0x%x refers to no node (dangling)", ext[at]);
      }
      DEVISO_ASSIGN_OR_RETURN(const uint32_t cells,
                              InterruptCells(fdt, controller, node, "interrupts-extended"));
      if (at + 1 + cells > ext.count()) {
        return LogError(Status::InvalidArgument(), fdt, node, "interrupts-extended",
                        "entry %d truncated", i);
      }
      if (i == index) {
        return MakeInterrupt(fdt, controller, ext, at + 1, cells);
      }
      at += 1 + cells;
    }
  }
  int controller = -1;
  DEVISO_TRY(InterruptParent(fdt, node, &controller));
  DEVISO_ASSIGN_OR_RETURN(const uint32_t cells,
                          InterruptCells(fdt, controller, node, "interrupts"));
  const Cells c = GetCells(fdt, node, "interrupts");
  const size_t at = static_cast<size_t>(index) * cells;
  if (c.p == nullptr || c.len % 4 != 0 || at + cells > c.count()) {
    return LogError(Status::InvalidArgument(), fdt, node, "interrupts",
                    "entry %d missing (truncated: %d bytes, %u cells each)", index, c.len, cells);
  }
  return MakeInterrupt(fdt, controller, c, at, cells);
}

// DT spec 2.3.4: a node is in use unless its status says otherwise ("okay", or "ok" in old
// trees; absent means okay).
bool IsAvailable(const void* fdt, int node) {
  const char* status = static_cast<const char*>(fdt_getprop(fdt, node, "status", nullptr));
  return status == nullptr || std::strcmp(status, "okay") == 0 || std::strcmp(status, "ok") == 0;
}

bool IsPciNode(const void* fdt, int node) {
  const char* type = static_cast<const char*>(fdt_getprop(fdt, node, "device_type", nullptr));
  return type != nullptr && std::strcmp(type, "pci") == 0;
}

}  // namespace

Status CheckBlob(const void* fdt, size_t buffer_size) {
  // fdt_check_header reads the header's fields (up to 40 bytes) before it knows the blob's
  // size: a shorter buffer is refused first, so libfdt never reads past it. fdt_check_full
  // then walks the structure block tag by tag within totalsize (each tag, name and property
  // inside its block, every name offset inside the strings block and NUL-terminated there,
  // nesting balanced, FDT_END last), so the walks that follow (fdt_next_node, fdt_getprop,
  // fdt_parent_offset) stay inside the checked blob.
  if (fdt == nullptr || buffer_size < sizeof(struct fdt_header) || fdt_check_header(fdt) != 0 ||
      fdt_totalsize(fdt) > buffer_size || fdt_check_full(fdt, fdt_totalsize(fdt)) != 0) {
    port::Log("deviso dt: not a valid devicetree blob\n");
    return Status::InvalidArgument();
  }
  return Status::Ok();
}

Result<Reg> ReadReg(const void* fdt, int node, int index) {
  const int parent = fdt_parent_offset(fdt, node);
  const int ac = parent >= 0 ? fdt_address_cells(fdt, parent) : -1;
  const int sc = parent >= 0 ? fdt_size_cells(fdt, parent) : -1;
  if (ac < 1 || ac > 2 || sc < 0 || sc > 2) {
    return LogError(Status::NotSupported(), fdt, node, "reg",
                    "parent #address-cells %d / #size-cells %d: 1-2 and 0-2 supported", ac, sc);
  }
  const Cells c = GetCells(fdt, node, "reg");
  const size_t entry = static_cast<size_t>(ac) + static_cast<size_t>(sc);
  const size_t at = static_cast<size_t>(index < 0 ? 0 : index) * entry;
  if (c.p == nullptr || index < 0 || at + entry > c.count()) {
    return LogError(Status::InvalidArgument(), fdt, node, "reg", "entry %d missing (%d bytes)",
                    index, c.len);
  }
  return Reg{Combine(c, at, ac), Combine(c, at + static_cast<size_t>(ac), sc)};
}

Result<GicInterrupt> DecodeGic(const Interrupt& irq) {
  if (!irq.valid || irq.cell_count != 3 || irq.cells[0] > 1) {
    return Status::InvalidArgument();
  }
  const uint32_t trigger = irq.cells[2] & 0xf;
  if (trigger == 0) {
    return Status::InvalidArgument();
  }
  GicInterrupt g;
  g.intid = irq.cells[1] + (irq.cells[0] == 0 ? 32 : 16);
  g.edge = trigger == 1 || trigger == 2;  // IRQ_TYPE_EDGE_RISING / _FALLING
  return g;
}

Result<Interrupt> ReadNamedInterrupt(const void* fdt, int node, const char* name) {
  const int index = fdt_stringlist_search(fdt, node, "interrupt-names", name);
  if (index < 0) {
    return Status::NotFound();
  }
  return ReadInterrupt(fdt, node, index);
}

namespace {

// An optional named interrupt: absent is fine, malformed is an error.
Status ReadOptionalInterrupt(const void* fdt, int node, const char* name, Interrupt* out) {
  const Result<Interrupt> irq = ReadNamedInterrupt(fdt, node, name);
  if (irq.ok()) {
    *out = *irq;
    return Status::Ok();
  }
  return irq.status() == Status::NotFound() ? Status::Ok() : irq.status();
}

}  // namespace

Result<IommuNode> ParseIommu(const void* fdt, int node) {
  IommuNode n;
  n.node = node;
  n.phandle = fdt_get_phandle(fdt, node);
  if (fdt_node_check_compatible(fdt, node, "arm,smmu-v3") == 0) {
    n.type = IommuType::kSmmuV3;
  } else if (fdt_node_check_compatible(fdt, node, "virtio,pci-iommu") == 0) {
    n.type = IommuType::kVirtioPci;
  } else {
    return Status::NotSupported();
  }
  const Result<uint32_t> cells = ReadU32(fdt, node, "#iommu-cells");
  if (!cells.ok()) {
    return LogError(Status::InvalidArgument(), fdt, node, "#iommu-cells", "missing or malformed");
  }
  if (*cells != 1) {
    return LogError(Status::InvalidArgument(), fdt, node, "#iommu-cells",
                    "is %u, the binding requires 1", *cells);
  }
  if (n.type == IommuType::kSmmuV3) {
    DEVISO_ASSIGN_OR_RETURN(n.regs, ReadReg(fdt, node, 0));
    n.dma_coherent = fdt_getprop(fdt, node, "dma-coherent", nullptr) != nullptr;
    DEVISO_TRY(ReadOptionalInterrupt(fdt, node, "eventq", &n.irqs.eventq));
    DEVISO_TRY(ReadOptionalInterrupt(fdt, node, "priq", &n.irqs.priq));
    DEVISO_TRY(ReadOptionalInterrupt(fdt, node, "cmdq-sync", &n.irqs.cmdq_sync));
    DEVISO_TRY(ReadOptionalInterrupt(fdt, node, "gerror", &n.irqs.gerror));
    DEVISO_TRY(ReadOptionalInterrupt(fdt, node, "combined", &n.irqs.combined));
    return n;
  }
  // virtio,pci-iommu: reg = <phys.hi phys.mid phys.lo size.hi size.lo>, the function's config
  // space (PCI Bus Binding to OF 2.2.1.1: phys.hi bits 23:8 = bus, device, function).
  const int host = fdt_parent_offset(fdt, node);
  if (host < 0 || !IsPciNode(fdt, host)) {
    return LogError(Status::InvalidArgument(), fdt, node, "reg",
                    "virtio,pci-iommu must be a child of a PCI host bridge");
  }
  const Cells reg = GetCells(fdt, node, "reg");
  if (reg.count() < 3) {
    return LogError(Status::InvalidArgument(), fdt, node, "reg",
                    "%d bytes: a PCI address (3 cells) expected", reg.len);
  }
  n.pci_host = host;
  n.rid = static_cast<uint16_t>((reg[0] >> 8) & 0xffff);
  return n;
}

Result<size_t> FindIommus(const void* fdt, std::span<IommuNode> out) {
  size_t count = 0;
  for (int node = fdt_next_node(fdt, -1, nullptr); node >= 0;
       node = fdt_next_node(fdt, node, nullptr)) {
    if (fdt_node_check_compatible(fdt, node, "arm,smmu-v3") != 0 &&
        fdt_node_check_compatible(fdt, node, "virtio,pci-iommu") != 0) {
      continue;
    }
    if (!IsAvailable(fdt, node)) {
      continue;  // status = "disabled" (or "fail"): not there for the OS
    }
    DEVISO_ASSIGN_OR_RETURN(const IommuNode n, ParseIommu(fdt, node));
    if (count == out.size()) {
      return LogError(Status::NoMemory(), fdt, node, "compatible",
                      "more IOMMU nodes than the %zu the caller has room for", out.size());
    }
    out[count++] = n;
  }
  return count;
}

Result<size_t> ReadIommus(const void* fdt, int node, std::span<IommuRef> out) {
  const Cells c = GetCells(fdt, node, "iommus");
  if (c.p == nullptr) {
    return Status::NotFound();
  }
  if (c.len == 0 || c.len % 4 != 0) {
    return LogError(Status::InvalidArgument(), fdt, node, "iommus",
                    "%d bytes: not a list of <phandle StreamID> cells (truncated)", c.len);
  }
  size_t count = 0;
  for (size_t at = 0; at < c.count();) {
    DEVISO_ASSIGN_OR_RETURN(const int iommu, ResolveIommu(fdt, node, "iommus", c[at]));
    if (at + 2 > c.count()) {
      return LogError(Status::InvalidArgument(), fdt, node, "iommus",
                      "entry %zu: phandle 0x%x without its StreamID cell (truncated)", count,
                      c[at]);
    }
    if (count == out.size()) {
      return LogError(Status::NoMemory(), fdt, node, "iommus",
                      "more than the %zu entries the caller has room for", out.size());
    }
    out[count++] = IommuRef{c[at], iommu, c[at + 1]};
    at += 2;
  }
  return count;
}

Result<IommuRef> IommuMap::Map(uint32_t rid) const {
  const uint32_t masked = rid & mask;
  for (size_t i = 0; i < count; ++i) {
    const IommuMapRange& r = ranges[i];
    if (masked >= r.rid_base && masked - r.rid_base < r.length) {
      return IommuRef{r.iommu_phandle, -1, r.sid_base + (masked - r.rid_base)};
    }
  }
  return Status::NotFound();
}

Result<uint32_t> IommuMap::Map(uint32_t rid, uint32_t iommu_phandle) const {
  const uint32_t masked = rid & mask;
  for (size_t i = 0; i < count; ++i) {
    const IommuMapRange& r = ranges[i];
    if (r.iommu_phandle == iommu_phandle && masked >= r.rid_base &&
        masked - r.rid_base < r.length) {
      return r.sid_base + (masked - r.rid_base);
    }
  }
  return Status::NotFound();
}

Status ReadIommuMap(const void* fdt, int host, IommuMap* out) {
  IommuMap map;
  const Cells c = GetCells(fdt, host, "iommu-map");
  if (c.p == nullptr) {
    *out = map;
    return Status::Ok();
  }
  map.present = true;
  const Result<uint32_t> mask = ReadU32(fdt, host, "iommu-map-mask");
  if (mask.ok()) {
    map.mask = *mask;
  } else if (mask.status() != Status::NotFound()) {
    return mask.status();
  }
  if (c.len == 0 || c.len % 16 != 0) {
    return LogError(Status::InvalidArgument(), fdt, host, "iommu-map",
                    "%d bytes: not a list of <rid-base iommu iommu-base length> (truncated)",
                    c.len);
  }
  for (size_t at = 0; at < c.count(); at += 4) {
    const IommuMapRange r{c[at], c[at + 1], c[at + 2], c[at + 3]};
    DEVISO_TRY(ResolveIommu(fdt, host, "iommu-map", r.iommu_phandle).status());
    if ((r.rid_base & ~map.mask) != 0) {
      return LogError(Status::InvalidArgument(), fdt, host, "iommu-map",
                      "rid-base 0x%x has bits outside iommu-map-mask 0x%x", r.rid_base, map.mask);
    }
    if (uint64_t{r.rid_base} + r.length > (uint64_t{1} << 32) ||
        uint64_t{r.sid_base} + r.length > (uint64_t{1} << 32)) {
      return LogError(Status::InvalidArgument(), fdt, host, "iommu-map",
                      "range <0x%x .. 0x%x 0x%x> passes 2^32", r.rid_base, r.sid_base, r.length);
    }
    if (map.count == kMaxIommuMapRanges) {
      return LogError(Status::NoMemory(), fdt, host, "iommu-map", "more than %zu ranges",
                      kMaxIommuMapRanges);
    }
    map.ranges[map.count++] = r;
  }
  *out = map;
  return Status::Ok();
}

Result<Interrupt> InterruptMap::Lookup(std::span<const uint32_t> child) const {
  const size_t n = size_t{address_cells} + interrupt_cells;
  if (!present || child.size() != n) {
    return Status::InvalidArgument();
  }
  for (size_t e = 0; e < count; ++e) {
    bool match = true;
    for (size_t i = 0; i < n && match; ++i) {
      match = ((child[i] ^ entries[e].child[i]) & mask[i]) == 0;
    }
    if (match) {
      return entries[e].parent;
    }
  }
  return Status::NotFound();
}

Result<Interrupt> InterruptMap::LookupPci(uint16_t rid, uint8_t pin) const {
  if (address_cells != 3 || interrupt_cells != 1 || pin < 1 || pin > 4) {
    return Status::InvalidArgument();
  }
  const uint32_t child[4] = {uint32_t{rid} << 8, 0, 0, pin};
  return Lookup(child);
}

Status ReadInterruptMap(const void* fdt, int nexus, InterruptMap* out) {
  const Cells c = GetCells(fdt, nexus, "interrupt-map");
  if (c.p == nullptr) {
    *out = InterruptMap{};
    return Status::Ok();
  }
  // Built in a local (about 2 KiB of stack) and copied out at the end: no change on error.
  InterruptMap map;
  map.present = true;
  const Result<uint32_t> ac = ReadU32(fdt, nexus, "#address-cells");
  const Result<uint32_t> ic = ReadU32(fdt, nexus, "#interrupt-cells");
  if (!ac.ok() || !ic.ok() || *ac + *ic > kMaxChildCells) {
    return LogError(Status::InvalidArgument(), fdt, nexus, "interrupt-map",
                    "#address-cells / #interrupt-cells of the nexus missing or above %zu",
                    kMaxChildCells);
  }
  map.address_cells = static_cast<uint8_t>(*ac);
  map.interrupt_cells = static_cast<uint8_t>(*ic);
  const size_t child_cells = *ac + *ic;
  const Cells m = GetCells(fdt, nexus, "interrupt-map-mask");
  for (size_t i = 0; i < child_cells; ++i) {
    map.mask[i] = 0xffffffff;
  }
  if (m.p != nullptr) {
    if (m.count() != child_cells || m.len % 4 != 0) {
      return LogError(Status::InvalidArgument(), fdt, nexus, "interrupt-map-mask",
                      "%d bytes, %zu cells expected", m.len, child_cells);
    }
    for (size_t i = 0; i < child_cells; ++i) {
      map.mask[i] = m[i];
    }
  }
  if (c.len % 4 != 0) {
    return LogError(Status::InvalidArgument(), fdt, nexus, "interrupt-map",
                    "%d bytes: not whole cells (truncated)", c.len);
  }
  // Each entry: child unit address, child interrupt specifier, interrupt-parent phandle,
  // parent unit address (parent's #address-cells), parent interrupt specifier (DT spec 2.4.3.1).
  for (size_t at = 0; at < c.count();) {
    const size_t index = map.count;
    if (at + child_cells + 1 > c.count()) {
      return LogError(Status::InvalidArgument(), fdt, nexus, "interrupt-map", "entry %zu truncated",
                      index);
    }
    const uint32_t phandle = c[at + child_cells];
    const int parent = fdt_node_offset_by_phandle(fdt, phandle);
    if (parent < 0) {
      return LogError(Status::InvalidArgument(), fdt, nexus, "interrupt-map",
                      "entry %zu: phandle 0x%x refers to no node (dangling)", index, phandle);
    }
    if (fdt_getprop(fdt, parent, "interrupt-controller", nullptr) == nullptr) {
      return LogError(Status::NotSupported(), fdt, nexus, "interrupt-map",
                      "entry %zu: parent is not an interrupt-controller (nested nexus)", index);
    }
    // #address-cells of the parent, 0 when absent (not libfdt's default of 2: Linux's
    // of_irq_parse_raw() does the same).
    const Result<uint32_t> pac = ReadU32(fdt, parent, "#address-cells");
    if (!pac.ok() && pac.status() != Status::NotFound()) {
      return pac.status();
    }
    const uint32_t parent_address_cells = pac.ok() ? *pac : 0;
    DEVISO_ASSIGN_OR_RETURN(const uint32_t parent_cells,
                            InterruptCells(fdt, parent, nexus, "interrupt-map"));
    const size_t spec = at + child_cells + 1 + parent_address_cells;
    if (parent_address_cells > 4 || spec + parent_cells > c.count()) {
      return LogError(Status::InvalidArgument(), fdt, nexus, "interrupt-map", "entry %zu truncated",
                      index);
    }
    if (map.count == kMaxInterruptMapEntries) {
      return LogError(Status::NoMemory(), fdt, nexus, "interrupt-map", "more than %zu entries",
                      kMaxInterruptMapEntries);
    }
    InterruptMapEntry& e = map.entries[map.count++];
    for (size_t i = 0; i < child_cells; ++i) {
      e.child[i] = c[at + i];
    }
    e.parent = MakeInterrupt(fdt, parent, c, spec, parent_cells);
    at = spec + parent_cells;
  }
  *out = map;
  return Status::Ok();
}

Result<size_t> ReadIommuAddresses(const void* fdt, int node, std::span<IommuAddressRegion> out) {
  const Cells regions = GetCells(fdt, node, "memory-region");
  if (regions.p == nullptr) {
    return size_t{0};
  }
  const uint32_t self = fdt_get_phandle(fdt, node);
  const int reserved = fdt_path_offset(fdt, "/reserved-memory");
  size_t count = 0;
  for (size_t r = 0; r < regions.count(); ++r) {
    const int region = fdt_node_offset_by_phandle(fdt, regions[r]);
    if (region < 0 || reserved < 0 || fdt_parent_offset(fdt, region) != reserved) {
      return LogError(Status::InvalidArgument(), fdt, node, "memory-region",
                      "entry %zu: phandle 0x%x is not a /reserved-memory child", r, regions[r]);
    }
    const Cells c = GetCells(fdt, region, "iommu-addresses");
    if (c.p == nullptr) {
      continue;
    }
    const int ac = fdt_address_cells(fdt, reserved);
    const int sc = fdt_size_cells(fdt, reserved);
    if (ac < 1 || ac > 2 || sc < 1 || sc > 2) {
      return LogError(Status::InvalidArgument(), fdt, reserved, "#address-cells",
                      "%d / #size-cells %d: 1-2 supported for iommu-addresses", ac, sc);
    }
    const size_t entry = 1 + static_cast<size_t>(ac) + static_cast<size_t>(sc);
    if (c.len == 0 || c.len % 4 != 0 || c.count() % entry != 0) {
      return LogError(Status::InvalidArgument(), fdt, region, "iommu-addresses",
                      "%d bytes: not whole <phandle address size> entries of %zu cells", c.len,
                      entry);
    }
    for (size_t at = 0; at < c.count(); at += entry) {
      if (fdt_node_offset_by_phandle(fdt, c[at]) < 0) {
        return LogError(Status::InvalidArgument(), fdt, region, "iommu-addresses",
                        "entry %zu: dangling phandle 0x%x", at / entry, c[at]);
      }
      if (self == 0 || c[at] != self) {
        continue;  // another device's
      }
      IommuAddressRegion a;
      a.node = region;
      a.iova = Combine(c, at + 1, ac);
      a.size = Combine(c, at + 1 + static_cast<size_t>(ac), sc);
      if (a.size == 0 || a.iova + a.size - 1 < a.iova) {
        return LogError(Status::InvalidArgument(), fdt, region, "iommu-addresses",
                        "entry %zu: empty or wrapping range 0x%llx + 0x%llx", at / entry,
                        static_cast<unsigned long long>(a.iova),
                        static_cast<unsigned long long>(a.size));
      }
      if (fdt_getprop(fdt, region, "reg", nullptr) != nullptr) {
        DEVISO_ASSIGN_OR_RETURN(const Reg reg, ReadReg(fdt, region, 0));
        if (a.size > reg.size) {
          return LogError(Status::InvalidArgument(), fdt, region, "iommu-addresses",
                          "entry %zu: 0x%llx bytes, more than the region's reg (0x%llx)",
                          at / entry, static_cast<unsigned long long>(a.size),
                          static_cast<unsigned long long>(reg.size));
        }
        a.mapped = true;
        a.pa = reg.base;
      }
      if (count == out.size()) {
        return LogError(Status::NoMemory(), fdt, node, "memory-region",
                        "more than the %zu iommu-addresses entries the caller has room for",
                        out.size());
      }
      out[count++] = a;
    }
  }
  return count;
}

}  // namespace deviso::dt
