// Binding devices to isolation units and StreamIDs from the devicetree (issue 5).
//
// The OS registers its IOMMU instances (IsolationUnit) with a Registry first, then tells this
// module which unit serves which IOMMU node (by phandle), and which of its `struct device`s are
// which DT nodes (by path) or PCI functions (host bridge path + requester ID). The module reads
// `iommus` (DT nodes) or the host bridge's `iommu-map` (PCI functions) and binds each device to
// its unit and exactly the StreamIDs the devicetree gives it; deviso_ctx_alloc(dev, sid) and
// Registry::AllocContext() then refuse (-EINVAL) any other StreamID, so a driver cannot claim
// another device's stream.
//
// All or nothing: every device is resolved and checked first (phandles, #iommu-cells, lengths,
// each StreamID against its unit with ValidateStream(), i.e. within the unit's SIDSIZE, and no
// (unit, StreamID) claimed twice); only then are the devices bound, and if a bind still fails
// (the registry refuses it) the ones already bound by this call are unbound again.
//
// Storage: the caller's spans (no heap). The resolved plan is written to `out`, which the
// caller sizes to nodes.size() + pci.size() entries.

#ifndef DEVISO_SRC_DT_BIND_H_
#define DEVISO_SRC_DT_BIND_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "deviso/backend.h"
#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "deviso/status.h"

namespace deviso::dt {

// The unit registered for the IOMMU node with this phandle.
struct UnitEntry {
  uint32_t phandle = 0;
  IsolationUnit* unit = nullptr;
};

// A device described by a DT node with `iommus` (e.g. "/soc/dma@10000000").
struct NodeDevice {
  const char* path = nullptr;
  const device* dev = nullptr;
};

// A PCI function behind the host bridge at `host_path`, by requester ID
// (bus << 8 | device << 3 | function).
struct PciDevice {
  const char* host_path = nullptr;
  uint16_t rid = 0;
  const device* dev = nullptr;
};

// What one device resolved to: its unit and StreamIDs, in devicetree order.
struct DeviceStreams {
  const device* dev = nullptr;
  IsolationUnit* unit = nullptr;
  uint32_t iommu_phandle = 0;
  uint32_t sids[kMaxSidsPerDevice] = {};
  size_t sid_count = 0;
  std::span<const uint32_t> streams() const { return {sids, sid_count}; }
};

struct BindRequest {
  const void* fdt = nullptr;  // checked with CheckBlob() by the caller
  std::span<const UnitEntry> units;
  std::span<const NodeDevice> nodes;
  std::span<const PciDevice> pci;
};

// Resolves every device of `request` into `out` (nodes first, then PCI functions, in request
// order) without binding anything. Errors (each logged with the node and property), with `out`
// unspecified and nothing else changed:
//   -EINVAL  fdt or a dev null; out.size() < nodes + pci; a path that names no node; malformed
//            `iommus` or `iommu-map` (empty or truncated property, dangling phandle, target
//            #iommu-cells missing or != 1; see ReadIommus / ReadIommuMap); a unit entry whose
//            phandle is not an IOMMU node with #iommu-cells = 1; more than kMaxSidsPerDevice
//            StreamIDs or one listed twice for a device; a StreamID its unit rejects
//            (ValidateStream: beyond SIDSIZE, caps().max_sid)
//   -ENOENT  a node without `iommus`; a RID no iommu-map range covers (the function's DMA is
//            not translated); an IOMMU phandle with no unit in `units`
//   -ENOTSUP a device whose entries name two IOMMUs (a Registry binds a device to one unit)
//   -EEXIST  a device listed twice, or a (unit, StreamID) given to two devices
//   -ENOMEM  a host bridge's iommu-map beyond kMaxIommuMapRanges
Status ResolveDevices(const BindRequest& request, std::span<DeviceStreams> out);

// ResolveDevices(), then binds each device with registry.BindDevice(dev, unit, sids) and
// records each PCI function's requester ID (Registry::SetPciRequesterId). The
// units must be registered with `registry`. Errors: ResolveDevices' (nothing bound), or
// BindDevice's (-ENOENT unit not registered, -EEXIST dev already bound or a StreamID bound to
// another device, -ENOMEM kMaxDevices), after which every device this call bound is unbound
// again: no partial registration. (Only a context allocated for a just-bound device by another
// thread during the rollback could keep it bound; that is logged.)
Status BindFromDevicetree(Registry& registry, const BindRequest& request,
                          std::span<DeviceStreams> out);

// Unbinds every device of `bound` (as BindFromDevicetree wrote it) that is still bound.
// Errors: the first -EBUSY from UnbindDevice (a StreamID still has a context); the others are
// still unbound.
Status UnbindAll(Registry& registry, std::span<const DeviceStreams> bound);

// Creates the context of (dev, sid) for the devicetree node `node` (a device described by
// `iommus`, bound to `registry` before) with the firmware-reserved regions its `memory-region`
// lists for it (ReadIommuAddresses) already mapped: a new domain on dev's unit
// (Registry::CreateDomain), each region that has `reg` mapped read-write to it (iova -> pa,
// Normal memory), and only then the stream attached, so the device never runs without them.
// Regions without `reg` are reservations and are not mapped. These mappings are made here and
// nowhere else: Registry::AllocContext() / deviso_ctx_alloc() do not read the devicetree. The
// result is an ordinary context: FreeContext() tears it down with its mappings.
// Errors, with no context left behind: ReadIommuAddresses' (-EINVAL, -ENOMEM beyond
// kMaxIommuAddresses), -EINVAL (fdt or dev null, dev not bound, sid not one of its StreamIDs;
// a region the unit cannot map: unaligned to its page size, beyond its address sizes),
// -EEXIST ((dev, sid) already has a context, or two regions overlap), and CreateDomain's,
// Map's and Attach's backend errors (-ENOMEM, -ETIMEDOUT, -EIO). Should destroying the new
// domain after a failure fail too, that is logged and the first error returned.
Result<Context> AllocContextWithReservedRegions(Registry& registry, const void* fdt, int node,
                                                const device* dev, uint32_t sid,
                                                const DomainOptions& options = {});

}  // namespace deviso::dt

#endif  // DEVISO_SRC_DT_BIND_H_
