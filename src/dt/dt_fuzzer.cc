// libFuzzer target: devicetree blobs through deviso's devicetree reader and binder (src/dt).
// The blob is hostile: truncated, with cyclic or dangling phandles, huge #iommu-cells,
// overlapping iommu-map ranges, strings without NUL. Every call must return a documented error
// or a result that holds up (in range, consistent with the tree), and BindFromDevicetree()
// either binds exactly what it resolved or binds nothing at all.
//
// Input: the blob itself. Seeds: dt_fuzzer_corpus/ (compiled by dtc from testdata/ and
// testdata/fuzz_seeds/; see that folder's README). Long run and crash reproduction:
// scripts/fuzz dt_fuzzer SECONDS | CRASH_FILE.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include <libfdt.h>
}

#include "core/testing/fake_unit.h"
#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "dt/bind.h"
#include "dt/devicetree.h"
#include "ports/host/test_clock.h"

namespace deviso::dt {
namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

bool OneOf(Status s, std::initializer_list<Status> allowed) {
  for (Status a : allowed) {
    if (s == a) return true;
  }
  return false;
}

using deviso::testing::FakeUnit;

constexpr size_t kMaxNodes = 256;
constexpr size_t kMaxNodeDevices = 24;
constexpr size_t kMaxPciDevices = 24;
constexpr uint16_t kRids[] = {0x0000, 0x0008, 0x0010, 0x0018, 0x0100, 0xffff};

// Every reader on one node: documented errors only, results in range.
void ReadNode(const void* fdt, int node) {
  const Result<IommuNode> iommu = ParseIommu(fdt, node);
  if (!iommu.ok()) {
    Check(OneOf(iommu.status(), {Status::NotSupported(), Status::InvalidArgument()}));
  }
  IommuRef refs[4];
  const Result<size_t> n = ReadIommus(fdt, node, refs);
  if (n.ok()) {
    Check(*n >= 1 && *n <= 4);
    for (size_t i = 0; i < *n; ++i) Check(refs[i].iommu >= 0);
  } else {
    Check(OneOf(n.status(), {Status::NotFound(), Status::InvalidArgument(), Status::NoMemory()}));
  }
  auto map = std::make_unique<IommuMap>();
  const Status m = ReadIommuMap(fdt, node, map.get());
  if (m.ok() && map->present) {
    Check(map->count >= 1 && map->count <= kMaxIommuMapRanges);
    for (uint16_t rid : kRids) {
      const Result<IommuRef> ref = map->Map(rid);
      if (!ref.ok()) {
        Check(ref.status() == Status::NotFound());
        continue;
      }
      // The range that gave it covers the masked RID, and the StreamID is its offset there.
      const uint32_t masked = rid & map->mask;
      bool found = false;
      for (size_t i = 0; i < map->count && !found; ++i) {
        const IommuMapRange& r = map->ranges[i];
        found = masked >= r.rid_base && masked - r.rid_base < r.length &&
                ref->sid == r.sid_base + (masked - r.rid_base) &&
                ref->iommu_phandle == r.iommu_phandle;
      }
      Check(found);
      Check(map->Map(rid, ref->iommu_phandle).ok());
    }
  } else if (!m.ok()) {
    Check(OneOf(m, {Status::InvalidArgument(), Status::NoMemory()}));
  }
  auto imap = std::make_unique<InterruptMap>();
  const Status im = ReadInterruptMap(fdt, node, imap.get());
  if (im.ok() && imap->present) {
    Check(imap->count <= kMaxInterruptMapEntries);
    for (uint8_t pin = 0; pin <= 5; ++pin) {
      const Result<Interrupt> irq = imap->LookupPci(0x18, pin);
      if (irq.ok()) {
        Check(irq->valid && irq->cell_count <= kMaxInterruptCells);
      }
    }
  } else if (!im.ok()) {
    Check(OneOf(im, {Status::InvalidArgument(), Status::NotSupported(), Status::NoMemory()}));
  }
  for (const char* name : {"eventq", "gerror", "combined"}) {
    const Result<Interrupt> irq = ReadNamedInterrupt(fdt, node, name);
    if (irq.ok()) {
      Check(irq->valid && irq->cell_count <= kMaxInterruptCells);
      (void)DecodeGic(*irq);
    } else {
      Check(OneOf(irq.status(), {Status::NotFound(), Status::InvalidArgument()}));
    }
  }
  const Result<Reg> reg = ReadReg(fdt, node, 0);
  if (!reg.ok()) {
    Check(OneOf(reg.status(), {Status::InvalidArgument(), Status::NotSupported()}));
  }
  char path[kMaxPathLength];
  NodePath(fdt, node, path);
  Check(std::memchr(path, '\0', sizeof(path)) != nullptr);
}

// Binds every node with `iommus` and a few RIDs of every host bridge with `iommu-map` to units
// for the IOMMUs found: all or nothing.
void Bind(const void* fdt, const std::vector<int>& nodes) {
  IommuNode found[4];
  const Result<size_t> iommus = FindIommus(fdt, found);
  if (!iommus.ok()) {
    Check(OneOf(iommus.status(),
                {Status::NoMemory(), Status::NotSupported(), Status::InvalidArgument()}));
  }
  const size_t unit_count = iommus.ok() ? *iommus : 0;
  auto registry = std::make_unique<Registry>();
  std::vector<std::unique_ptr<FakeUnit>> units;
  std::vector<UnitEntry> entries;
  for (size_t i = 0; i < unit_count; ++i) {
    FakeUnit::Options o;
    o.name = "fuzz" + std::to_string(i);
    // One narrow unit, so that StreamIDs beyond a unit's SIDSIZE are met too.
    o.max_sid = i == 1 ? 0xff : 0xffff;
    units.push_back(std::make_unique<FakeUnit>(o));
    Check(registry->RegisterUnit(*units.back()).ok());
    entries.push_back(UnitEntry{found[i].phandle, units.back().get()});
  }

  static device devices[kMaxNodeDevices + kMaxPciDevices];
  static char names[kMaxNodeDevices + kMaxPciDevices][16];
  std::vector<std::vector<char>> paths;
  std::vector<NodeDevice> node_devs;
  std::vector<PciDevice> pci_devs;
  size_t next_dev = 0;
  auto new_dev = [&]() {
    std::snprintf(names[next_dev], sizeof(names[0]), "dev%zu", next_dev);
    devices[next_dev] = device{names[next_dev]};
    return &devices[next_dev++];
  };
  for (int node : nodes) {
    int len = 0;
    const bool has_iommus = fdt_getprop(fdt, node, "iommus", &len) != nullptr;
    const bool has_map = fdt_getprop(fdt, node, "iommu-map", &len) != nullptr;
    if (!has_iommus && !has_map) continue;
    std::vector<char> path(kMaxPathLength);
    if (fdt_get_path(fdt, node, path.data(), static_cast<int>(path.size())) != 0) continue;
    paths.push_back(std::move(path));
    const char* p = paths.back().data();
    if (has_iommus && node_devs.size() < kMaxNodeDevices) {
      node_devs.push_back(NodeDevice{p, new_dev()});
    }
    for (uint16_t rid : kRids) {
      if (has_map && pci_devs.size() < kMaxPciDevices) {
        pci_devs.push_back(PciDevice{p, rid, new_dev()});
      }
    }
  }
  if (node_devs.empty() && pci_devs.empty()) return;

  BindRequest request;
  request.fdt = fdt;
  request.units = entries;
  request.nodes = node_devs;
  request.pci = pci_devs;
  std::vector<DeviceStreams> out(node_devs.size() + pci_devs.size());
  const Status s = BindFromDevicetree(*registry, request, out);
  if (!s.ok()) {
    Check(OneOf(s, {Status::InvalidArgument(), Status::NotFound(), Status::NotSupported(),
                    Status::AlreadyExists(), Status::NoMemory()}));
    // Nothing bound.
    for (size_t i = 0; i < next_dev; ++i) Check(!registry->UnitOf(&devices[i]).ok());
  } else {
    // Exactly what was resolved: each device on its unit, each StreamID valid there and given
    // to one device only.
    for (size_t i = 0; i < out.size(); ++i) {
      const DeviceStreams& d = out[i];
      const Result<IsolationUnit*> unit = registry->UnitOf(d.dev);
      Check(unit.ok() && *unit == d.unit);
      Check(d.sid_count >= 1 && d.sid_count <= kMaxSidsPerDevice);
      for (size_t k = 0; k < d.sid_count; ++k) {
        Check(d.unit->ValidateStream(d.sids[k]).ok());
        for (size_t j = 0; j < i; ++j) {
          if (out[j].unit != d.unit) continue;
          for (size_t l = 0; l < out[j].sid_count; ++l) Check(out[j].sids[l] != d.sids[k]);
        }
      }
    }
    Check(UnbindAll(*registry, out).ok());
    for (size_t i = 0; i < next_dev; ++i) Check(!registry->UnitOf(&devices[i]).ok());
  }
  for (auto& u : units) Check(registry->UnregisterUnit(*u).ok());
}

}  // namespace
}  // namespace deviso::dt

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool silenced = deviso::port::host::SetLogSilenced(true) || true;
  (void)silenced;
  // libfdt reads cells with fdt32_ld (any alignment), but a blob is 8-byte aligned in practice.
  std::vector<uint64_t> aligned((size + 7) / 8 + 1);
  std::memcpy(aligned.data(), data, size);
  const void* fdt = aligned.data();
  const deviso::Status checked = deviso::dt::CheckBlob(fdt, size);
  if (!checked.ok()) {
    deviso::dt::Check(checked == deviso::Status::InvalidArgument());
    return 0;
  }
  std::vector<int> nodes;
  for (int node = fdt_next_node(fdt, -1, nullptr);
       node >= 0 && nodes.size() < deviso::dt::kMaxNodes;
       node = fdt_next_node(fdt, node, nullptr)) {
    nodes.push_back(node);
  }
  for (int node : nodes) deviso::dt::ReadNode(fdt, node);
  deviso::dt::Bind(fdt, nodes);
  return 0;
}
