// DMAR device scopes resolved through an enumerated PCI topology (see dmar_pci.h). Section
// numbers: Intel VT-d Architecture Specification, chapter 8.

#include "acpi/dmar_pci.h"

namespace deviso::acpi {
namespace {

bool IsPciScope(const DeviceScope& s) {
  return s.type() == ScopeType::kPciEndpoint || s.type() == ScopeType::kPciSubHierarchy;
}

// The number of bridges from `f` up to (and including) the function at `ancestor`, or -1 if
// `ancestor` is neither `f` nor above it.
int DistanceBelow(const pci::Topology& topology, const pci::Function& f, const pci::Bdf& ancestor) {
  int distance = 0;
  const pci::Function* at = &f;
  // Bounded by the depth: upstream indices always point at earlier (parent) entries.
  for (size_t hops = 0; hops <= pci::Topology::kMaxFunctions; ++hops) {
    if (at->bdf == ancestor) return distance;
    if (at->upstream < 0) return -1;
    at = &topology.function(static_cast<size_t>(at->upstream));
    ++distance;
  }
  return -1;
}

// The best claim found so far on one function.
struct Claim {
  bool found = false;
  DmarMatch match = DmarMatch::kEndpoint;
  int distance = 0;  // sub-hierarchy: bridges between the function and the scope's bridge
  size_t drhd = 0;
  uint64_t register_base = 0;
  bool tie = false;  // another DRHD made an equal claim
};

// True if (match, distance) is more specific than what `c` holds.
bool MoreSpecific(const Claim& c, DmarMatch match, int distance) {
  if (!c.found) return true;
  if (match != c.match) return match == DmarMatch::kEndpoint;
  return distance < c.distance;
}

}  // namespace

Result<pci::Bdf> ResolveScope(const DeviceScope& scope, const pci::Topology& topology) {
  if (!IsPciScope(scope)) {
    return Status::InvalidArgument();
  }
  // 8.3.1: the first hop is on Start Bus Number; every hop but the last names a PCI-PCI bridge,
  // and the next hop is on that bridge's secondary bus.
  uint8_t bus = scope.start_bus();
  for (size_t i = 0; i + 1 < scope.path_length(); ++i) {
    const PathEntry hop = scope.path(i);
    const pci::Function* bridge = topology.FindFunction(pci::Bdf{bus, hop.device, hop.function});
    if (bridge == nullptr || bridge->header_type != 1) {
      return Status::NotFound();
    }
    bus = bridge->bridge.secondary;
  }
  const PathEntry last = scope.path(scope.path_length() - 1);
  return pci::Bdf{bus, last.device, last.function};
}

Result<PciBinding> BindPciFunction(const Dmar& dmar, const pci::Topology& topology,
                                   uint16_t segment, const pci::Bdf& bdf) {
  const pci::Function* f = topology.FindFunction(bdf);
  if (f == nullptr) {
    return Status::NotFound();
  }
  Claim claim;
  bool catch_all = false;
  size_t catch_all_drhd = 0;
  uint64_t catch_all_base = 0;
  size_t index = 0;
  for (const Drhd unit : dmar.drhds()) {
    const size_t this_drhd = index++;
    if (unit.segment() != segment) continue;
    if (unit.include_pci_all()) {
      // Dmar::Parse() guarantees it is the segment's last DRHD and lists no PCI scope.
      catch_all = true;
      catch_all_drhd = this_drhd;
      catch_all_base = unit.register_base();
      continue;
    }
    for (const DeviceScope scope : unit.scopes()) {
      if (!IsPciScope(scope)) continue;
      const Result<pci::Bdf> named = ResolveScope(scope, topology);
      if (!named.ok()) continue;  // leads nowhere: names nothing present
      DmarMatch match = DmarMatch::kEndpoint;
      int distance = 0;
      if (scope.type() == ScopeType::kPciEndpoint) {
        if (!(*named == bdf)) continue;
      } else {
        distance = DistanceBelow(topology, *f, *named);
        if (distance < 0) continue;
        match = DmarMatch::kSubHierarchy;
      }
      if (MoreSpecific(claim, match, distance)) {
        claim = Claim{true, match, distance, this_drhd, unit.register_base(), false};
      } else if (claim.match == match && claim.distance == distance && claim.drhd != this_drhd) {
        claim.tie = true;
      }
    }
  }
  if (claim.found && claim.tie) {
    return Status::InvalidArgument();
  }
  PciBinding b;
  b.bdf = bdf;
  b.segment = segment;
  b.source_id = f->dma_alias;
  if (claim.found) {
    b.drhd_index = claim.drhd;
    b.register_base = claim.register_base;
    b.match = claim.match;
    return b;
  }
  if (catch_all) {
    b.drhd_index = catch_all_drhd;
    b.register_base = catch_all_base;
    b.match = DmarMatch::kIncludePciAll;
    return b;
  }
  return Status::NotFound();
}

Result<size_t> BindPciFunctions(const Dmar& dmar, const pci::Topology& topology, uint16_t segment,
                                std::span<PciBinding> out, size_t* unbound) {
  if (out.size() < topology.function_count()) {
    return Status::OutOfRange();
  }
  size_t bound = 0;
  size_t missing = 0;
  for (size_t i = 0; i < topology.function_count(); ++i) {
    const Result<PciBinding> b = BindPciFunction(dmar, topology, segment, topology.function(i).bdf);
    if (b.ok()) {
      out[bound++] = *b;
    } else if (b.status().ToC() == -ENOENT) {
      ++missing;
    } else {
      return b.status();
    }
  }
  if (unbound != nullptr) *unbound = missing;
  return bound;
}

bool RmrrApplies(const Rmrr& rmrr, const pci::Topology& topology, uint16_t segment,
                 const pci::Bdf& bdf) {
  const pci::Function* f = topology.FindFunction(bdf);
  if (f == nullptr || rmrr.segment() != segment) return false;
  for (const DeviceScope scope : rmrr.scopes()) {
    const Result<pci::Bdf> named = ResolveScope(scope, topology);
    if (!named.ok()) continue;
    if (scope.type() == ScopeType::kPciEndpoint ? *named == bdf
                                                : DistanceBelow(topology, *f, *named) >= 0) {
      return true;
    }
  }
  return false;
}

}  // namespace deviso::acpi
