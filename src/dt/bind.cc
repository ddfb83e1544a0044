// Binding devices from the devicetree (see bind.h).

#include "dt/bind.h"

extern "C" {
#include <libfdt.h>
}

#include "deviso/port/os.h"
#include "dt/devicetree.h"
#include "dt/dt_log.h"

namespace deviso::dt {
namespace {

// The unit entry for `phandle`, or nullptr.
const UnitEntry* FindUnit(std::span<const UnitEntry> units, uint32_t phandle) {
  for (const UnitEntry& u : units) {
    if (u.phandle == phandle) {
      return &u;
    }
  }
  return nullptr;
}

Result<int> PathNode(const void* fdt, const char* path, const char* what) {
  const int node = path != nullptr ? fdt_path_offset(fdt, path) : -FDT_ERR_BADPATH;
  if (node < 0) {
    port::Log("deviso dt: %s: %s names no node (%s)\n", path != nullptr ? path : "(null)", what,
              Status::InvalidArgument().str());
    return Status::InvalidArgument();
  }
  return node;
}

// Checks the unit table: each phandle is an IOMMU node with #iommu-cells = 1, each unit set.
Status CheckUnits(const void* fdt, std::span<const UnitEntry> units) {
  for (size_t i = 0; i < units.size(); ++i) {
    const int node = fdt_node_offset_by_phandle(fdt, units[i].phandle);
    if (node < 0 || units[i].unit == nullptr) {
      port::Log("deviso dt: unit table entry %zu: phandle 0x%x %s (%s)\n", i, units[i].phandle,
                node < 0 ? "refers to no node" : "has no unit", Status::InvalidArgument().str());
      return Status::InvalidArgument();
    }
    int len = 0;
    const auto* cells = static_cast<const fdt32_t*>(fdt_getprop(fdt, node, "#iommu-cells", &len));
    if (cells == nullptr || len != 4 || fdt32_ld(cells) != 1) {
      return LogError(Status::InvalidArgument(), fdt, node, "#iommu-cells",
                      "unit table entry %zu: not an IOMMU with #iommu-cells = 1", i);
    }
    for (size_t j = 0; j < i; ++j) {
      if (units[j].phandle == units[i].phandle) {
        return LogError(Status::InvalidArgument(), fdt, node, "phandle",
                        "unit table lists phandle 0x%x twice", units[i].phandle);
      }
    }
  }
  return Status::Ok();
}

// Adds (phandle, sid) to `d`, checking the unit and the StreamID. `node`/`property` name the
// source for messages.
Status AddStream(const void* fdt, int node, const char* property, std::span<const UnitEntry> units,
                 uint32_t phandle, uint32_t sid, DeviceStreams& d) {
  const UnitEntry* u = FindUnit(units, phandle);
  if (u == nullptr) {
    return LogError(Status::NotFound(), fdt, node, property,
                    "IOMMU phandle 0x%x has no registered unit", phandle);
  }
  if (d.unit != nullptr && d.unit != u->unit) {
    return LogError(Status::NotSupported(), fdt, node, property,
                    "entries name two IOMMUs (phandles 0x%x and 0x%x): one unit per device",
                    d.iommu_phandle, phandle);
  }
  if (!u->unit->ValidateStream(sid).ok()) {
    return LogError(Status::InvalidArgument(), fdt, node, property,
                    "StreamID 0x%x beyond what unit %s serves (max 0x%x, SIDSIZE)", sid,
                    u->unit->caps().name, u->unit->caps().max_sid);
  }
  for (size_t i = 0; i < d.sid_count; ++i) {
    if (d.sids[i] == sid) {
      return LogError(Status::InvalidArgument(), fdt, node, property, "StreamID 0x%x listed twice",
                      sid);
    }
  }
  if (d.sid_count == kMaxSidsPerDevice) {
    return LogError(Status::InvalidArgument(), fdt, node, property,
                    "more than %zu StreamIDs for one device", kMaxSidsPerDevice);
  }
  d.unit = u->unit;
  d.iommu_phandle = phandle;
  d.sids[d.sid_count++] = sid;
  return Status::Ok();
}

Status ResolveNode(const void* fdt, std::span<const UnitEntry> units, const NodeDevice& n,
                   DeviceStreams& d) {
  DEVISO_ASSIGN_OR_RETURN(const int node, PathNode(fdt, n.path, "device path"));
  IommuRef refs[kMaxSidsPerDevice + 1];
  const Result<size_t> count = ReadIommus(fdt, node, refs);
  if (count.status() == Status::NotFound()) {
    return LogError(Status::NotFound(), fdt, node, "iommus",
                    "missing: the device is not behind an IOMMU");
  }
  if (count.status() == Status::NoMemory()) {
    return Status::InvalidArgument();  // more than kMaxSidsPerDevice (already logged)
  }
  DEVISO_TRY(count.status());
  d = DeviceStreams{};
  d.dev = n.dev;
  for (size_t i = 0; i < *count; ++i) {
    DEVISO_TRY(AddStream(fdt, node, "iommus", units, refs[i].iommu_phandle, refs[i].sid, d));
  }
  return Status::Ok();
}

Status ResolvePci(const void* fdt, std::span<const UnitEntry> units, const PciDevice& p,
                  IommuMap& map, DeviceStreams& d) {
  DEVISO_ASSIGN_OR_RETURN(const int host, PathNode(fdt, p.host_path, "PCI host path"));
  DEVISO_TRY(ReadIommuMap(fdt, host, &map));
  const Result<IommuRef> ref = map.Map(p.rid);
  if (!ref.ok()) {
    return LogError(Status::NotFound(), fdt, host, "iommu-map",
                    "no range covers RID 0x%04x (%02x:%02x.%x): its DMA is not translated", p.rid,
                    p.rid >> 8, (p.rid >> 3) & 0x1f, p.rid & 7);
  }
  d = DeviceStreams{};
  d.dev = p.dev;
  return AddStream(fdt, host, "iommu-map", units, ref->iommu_phandle, ref->sid, d);
}

// -EEXIST if d's device or any of its (unit, StreamID) pairs appear in `earlier`.
Status CheckConflicts(std::span<const DeviceStreams> earlier, const DeviceStreams& d) {
  for (const DeviceStreams& e : earlier) {
    if (e.dev == d.dev) {
      port::Log("deviso dt: device %s listed twice (%s)\n",
                d.dev->name != nullptr ? d.dev->name : "?", Status::AlreadyExists().str());
      return Status::AlreadyExists();
    }
    if (e.unit != d.unit) {
      continue;
    }
    for (const uint32_t a : e.streams()) {
      for (const uint32_t b : d.streams()) {
        if (a == b) {
          port::Log("deviso dt: StreamID 0x%x of unit %s given to both %s and %s (%s)\n", a,
                    d.unit->caps().name, e.dev->name != nullptr ? e.dev->name : "?",
                    d.dev->name != nullptr ? d.dev->name : "?", Status::AlreadyExists().str());
          return Status::AlreadyExists();
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Status ResolveDevices(const BindRequest& request, std::span<DeviceStreams> out) {
  const size_t total = request.nodes.size() + request.pci.size();
  if (request.fdt == nullptr || out.size() < total) {
    port::Log("deviso dt: bind request without a devicetree or with room for %zu of %zu devices\n",
              out.size(), total);
    return Status::InvalidArgument();
  }
  DEVISO_TRY(CheckUnits(request.fdt, request.units));
  size_t i = 0;
  for (const NodeDevice& n : request.nodes) {
    if (n.dev == nullptr) {
      port::Log("deviso dt: %s: no device given (%s)\n", n.path != nullptr ? n.path : "(null)",
                Status::InvalidArgument().str());
      return Status::InvalidArgument();
    }
    DEVISO_TRY(ResolveNode(request.fdt, request.units, n, out[i]));
    DEVISO_TRY(CheckConflicts(out.first(i), out[i]));
    ++i;
  }
  IommuMap map;  // about 300 bytes; re-read per function (host bridges are few, maps short)
  for (const PciDevice& p : request.pci) {
    if (p.dev == nullptr) {
      port::Log("deviso dt: %s RID 0x%04x: no device given (%s)\n",
                p.host_path != nullptr ? p.host_path : "(null)", p.rid,
                Status::InvalidArgument().str());
      return Status::InvalidArgument();
    }
    DEVISO_TRY(ResolvePci(request.fdt, request.units, p, map, out[i]));
    DEVISO_TRY(CheckConflicts(out.first(i), out[i]));
    ++i;
  }
  return Status::Ok();
}

Status BindFromDevicetree(Registry& registry, const BindRequest& request,
                          std::span<DeviceStreams> out) {
  DEVISO_TRY(ResolveDevices(request, out));
  const size_t total = request.nodes.size() + request.pci.size();
  for (size_t i = 0; i < total; ++i) {
    const Status s = registry.BindDevice(out[i].dev, *out[i].unit, out[i].streams());
    if (s.ok()) {
      continue;
    }
    port::Log("deviso dt: binding %s to %s failed (%s): undoing this call's %zu binds\n",
              out[i].dev->name != nullptr ? out[i].dev->name : "?", out[i].unit->caps().name,
              s.str(), i);
    for (size_t j = i; j-- > 0;) {
      const Status u = registry.UnbindDevice(out[j].dev);
      if (!u.ok()) {
        port::Log("deviso dt: could not unbind %s again (%s)\n",
                  out[j].dev->name != nullptr ? out[j].dev->name : "?", u.str());
      }
    }
    return s;
  }
  // PCI functions: their requester IDs, so that fault reports and the dump name the BDF. The
  // devices were just bound, so this cannot fail.
  for (size_t i = request.nodes.size(); i < total; ++i) {
    (void)registry.SetPciRequesterId(out[i].dev, request.pci[i - request.nodes.size()].rid);
  }
  return Status::Ok();
}

Status UnbindAll(Registry& registry, std::span<const DeviceStreams> bound) {
  Status first;
  for (const DeviceStreams& d : bound) {
    if (d.dev == nullptr || !registry.UnitOf(d.dev).ok()) {
      continue;
    }
    const Status s = registry.UnbindDevice(d.dev);
    if (!s.ok() && first.ok()) {
      first = s;
    }
  }
  return first;
}

Result<Context> AllocContextWithReservedRegions(Registry& registry, const void* fdt, int node,
                                                const device* dev, uint32_t sid,
                                                const DomainOptions& options) {
  if (fdt == nullptr || dev == nullptr) {
    return Status::InvalidArgument();
  }
  IommuAddressRegion regions[kMaxIommuAddresses];
  DEVISO_ASSIGN_OR_RETURN(const size_t count, ReadIommuAddresses(fdt, node, regions));
  DEVISO_ASSIGN_OR_RETURN(IsolationUnit* const unit, registry.UnitOf(dev));
  // (dev, sid) must be dev's StreamID without a context: checked before anything is created.
  const Result<Context> existing = registry.FindContext(dev, sid);
  if (existing.ok()) {
    return Status::AlreadyExists();
  }
  if (existing.status() != Status::NotFound()) {
    return existing.status();
  }
  DEVISO_ASSIGN_OR_RETURN(Context ctx, registry.CreateDomain(*unit, options));
  Status status = Status::Ok();
  for (size_t i = 0; i < count && status.ok(); ++i) {
    if (regions[i].mapped) {
      status = ctx.Map(regions[i].iova, regions[i].pa, regions[i].size, kPermReadWrite);
      if (!status.ok()) {
        char path[kMaxPathLength];
        NodePath(fdt, regions[i].node, path);
        port::Log("deviso dt: %s: iommu-addresses 0x%llx + 0x%llx not mapped: %s\n", path,
                  static_cast<unsigned long long>(regions[i].iova),
                  static_cast<unsigned long long>(regions[i].size), status.str());
      }
    }
  }
  if (status.ok()) {
    status = registry.Attach(ctx, dev, sid);
  }
  if (!status.ok()) {
    if (const Status destroyed = registry.DestroyDomain(ctx); !destroyed.ok()) {
      port::Log("deviso dt: the domain of a failed context could not be destroyed: %s\n",
                destroyed.str());
    }
    return status;
  }
  return ctx;
}

}  // namespace deviso::dt
