// libFuzzer target: hostile ACPI tables through every parser of src/acpi and every accessor of
// what they accept. A refused input must come with a reason; an accepted one must keep every
// view inside the input and satisfy what the parser promised (checksums, lengths, alignment, the
// INCLUDE_PCI_ALL and RMRR rules, path entries in range).
//
// Input: one mode byte, then the bytes.
//   mode bits [1:0]: 0 DMAR, 1 MCFG, 2 a physical memory image (the RSDP at address 0, the root
//                    table and the tables wherever its entries point), 3 an RSDP alone;
//   mode bit 2:      for modes 0 and 1, keep Length and checksum as given (otherwise the bytes
//                    are re-sealed first, so that mutations reach the structure checks instead
//                    of dying on the checksum);
//   mode bit 3:      for mode 0, bind an accepted DMAR to a simulated q35 topology (two root
//                    ports, a PCIe-to-PCI bridge, the root-bus functions): every binding names
//                    an enumerated function, a DRHD of the table with that register base, the
//                    function's DMA alias as source-id, and INCLUDE_PCI_ALL only from such a DRHD.
// Seeds: acpi_fuzzer_corpus/ (the real q35 tables of testdata/ in each mode; docs/acpi.md).
// Long run and crash reproduction: scripts/fuzz acpi_fuzzer SECONDS | CRASH_FILE.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "acpi/dmar.h"
#include "acpi/dmar_pci.h"
#include "acpi/mcfg.h"
#include "acpi/tables.h"
#include "pci/testing/fake_ecam.h"

namespace deviso::acpi {
namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

uint8_t Sum(Bytes b) {
  unsigned s = 0;
  for (const uint8_t v : b) s += v;
  return static_cast<uint8_t>(s);
}

bool Inside(Bytes inner, Bytes outer) {
  return inner.data() >= outer.data() && inner.size() <= outer.size() &&
         static_cast<size_t>(inner.data() - outer.data()) <= outer.size() - inner.size();
}

void CheckRefusal(const Status& s, const ParseError& e) {
  Check(!s.ok());
  Check(s.ToC() == -EINVAL || s.ToC() == -ERANGE || s.ToC() == -ENOENT);
  if (s.ToC() != -ENOENT) Check(e.reason != nullptr && e.reason[0] != '\0');
}

void CheckTable(const Table& t, Bytes input) {
  Check(Inside(t.bytes(), input));
  Check(t.bytes().size() >= TableHeader::kSize && t.header().length == t.bytes().size());
  Check(Sum(t.bytes()) == 0);
}

// `pci_allowed`: PCI endpoint / sub-hierarchy scopes may appear (not in an INCLUDE_PCI_ALL
// DRHD); `rmrr`: no I/O APIC or HPET scope.
void CheckScopes(const ScopeList& scopes, Bytes parent, bool pci_allowed, bool rmrr) {
  for (const DeviceScope s : scopes) {
    Check(Inside(s.bytes(), parent));
    Check(s.bytes().size() >= 8 && (s.bytes().size() - 6) % 2 == 0);
    Check(s.path_length() >= 1);
    for (size_t i = 0; i < s.path_length(); ++i) {
      Check(s.path(i).device <= 31 && s.path(i).function <= 7);
    }
    const bool pci = s.type() == ScopeType::kPciEndpoint || s.type() == ScopeType::kPciSubHierarchy;
    Check(pci_allowed || !pci);
    Check(!rmrr || (s.type() != ScopeType::kIoApic && s.type() != ScopeType::kHpet));
  }
}

// testdata/q35_vtd_rootports' machine, enumerated once (binding only reads it).
struct Machine {
  pci::testing::FakeEcam ecam;
  pci::testing::FakeBus bus1, bus2, bus3;
  pci::Topology topology{pci::testing::VirtHostBridge(), ecam};
  Machine() {
    using pci::PortType;
    ecam.Endpoint(ecam.root, 0, 0, 0x29c0, PortType::kNotPcie);
    ecam.Endpoint(ecam.root, 1, 0, 0x1111, PortType::kNotPcie);
    ecam.Endpoint(ecam.root, 0x1f, 0, 0x2918, PortType::kNotPcie).cfg[0x0e] = 0x80;
    ecam.Endpoint(ecam.root, 0x1f, 2, 0x2922, PortType::kNotPcie);
    ecam.Bridge(ecam.root, 2, 0, PortType::kRootPort, bus1).Set32(0x18, 0x00010100);
    ecam.Bridge(ecam.root, 3, 0, PortType::kRootPort, bus2).Set32(0x18, 0x00030200);
    ecam.Endpoint(bus1, 0, 0, 0x2922);
    ecam.Bridge(bus2, 0, 0, PortType::kPcieToPciBridge, bus3).Set32(0x18, 0x00030302);
    ecam.Endpoint(bus3, 1, 0, 0x11e8, PortType::kNotPcie);
    Check(topology.Enumerate().ok() && topology.function_count() == 9);
  }
};

void FuzzBinding(const Dmar& d) {
  static Machine* machine = new Machine();  // NOLINT: lives for the process
  const pci::Topology& topo = machine->topology;
  for (const uint16_t segment : {uint16_t{0}, uint16_t{1}}) {
    PciBinding out[pci::Topology::kMaxFunctions];
    size_t unbound = 0;
    const Result<size_t> n = BindPciFunctions(d, topo, segment, out, &unbound);
    if (!n.ok()) {
      Check(n.status().ToC() == -EINVAL);  // two DRHDs claim one function
      continue;
    }
    Check(*n + unbound == topo.function_count());
    for (size_t i = 0; i < *n; ++i) {
      const PciBinding& b = out[i];
      const pci::Function* f = topo.FindFunction(b.bdf);
      Check(f != nullptr && b.source_id == f->dma_alias && b.segment == segment);
      size_t index = 0;
      bool found = false;
      for (const Drhd u : d.drhds()) {
        if (index++ != b.drhd_index) continue;
        found = true;
        Check(u.register_base() == b.register_base && u.segment() == segment);
        Check((b.match == DmarMatch::kIncludePciAll) == u.include_pci_all());
      }
      Check(found);
    }
  }
}

void FuzzDmar(Bytes input, bool bind) {
  ParseError e;
  const Result<Table> t = Table::Check(input, "DMAR", &e);
  if (!t.ok()) {
    CheckRefusal(t.status(), e);
    return;
  }
  CheckTable(*t, input);
  const Result<Dmar> d = Dmar::Parse(*t, &e);
  if (!d.ok()) {
    CheckRefusal(d.status(), e);
    // The offset may be the end of the table: where a missing field would begin.
    Check(std::strcmp(e.table, "DMAR") == 0 && e.offset <= t->bytes().size());
    return;
  }
  Check(d->host_address_width() <= 64);
  // The structures tile the table after its 48-byte header exactly.
  size_t covered = Dmar::kStructuresOffset;
  for (const DmarStructure s : d->structures()) {
    Check(s.bytes().data() == t->bytes().data() + covered);
    Check(s.bytes().size() >= 4);
    covered += s.bytes().size();
  }
  Check(covered == t->bytes().size());
  size_t drhds = 0;
  std::vector<uint16_t> include_all_segments;  // no DRHD of a segment after its catch-all
  for (const Drhd u : d->drhds()) {
    ++drhds;
    Check(Inside(u.bytes(), t->bytes()));
    Check(u.register_base() != 0 && u.register_base() % 4096 == 0);
    for (const uint16_t seg : include_all_segments) Check(seg != u.segment());
    if (u.include_pci_all()) include_all_segments.push_back(u.segment());
    CheckScopes(u.scopes(), u.bytes(), !u.include_pci_all(), false);
  }
  Check(drhds <= Dmar::kMaxDrhd);
  for (const Rmrr r : d->rmrrs()) {
    Check(Inside(r.bytes(), t->bytes()));
    Check(r.base() % 4096 == 0 && (r.limit() + 1) % 4096 == 0 && r.base() <= r.limit());
    CheckScopes(r.scopes(), r.bytes(), true, true);
  }
  if (bind) FuzzBinding(*d);
}

void FuzzMcfg(Bytes input) {
  ParseError e;
  const Result<Table> t = Table::Check(input, "MCFG", &e);
  if (!t.ok()) {
    CheckRefusal(t.status(), e);
    return;
  }
  CheckTable(*t, input);
  const Result<Mcfg> m = Mcfg::Parse(*t, &e);
  if (!m.ok()) {
    CheckRefusal(m.status(), e);
    return;
  }
  Check(m->allocation_count() <= Mcfg::kMaxAllocations);
  for (size_t i = 0; i < m->allocation_count(); ++i) {
    const EcamAllocation a = m->allocation(i);
    Check(a.bus_start <= a.bus_end && a.base % (1U << 20) == 0);
    Check(a.region_base() >= a.base && a.region_size() >= (uint64_t{1} << 20));
    // No overlap: each bus of the range is found in this very allocation.
    const Result<EcamAllocation> f = m->Find(a.segment, a.bus_end);
    Check(f.ok() && f->base == a.base && f->bus_start == a.bus_start);
  }
}

// The image as physical memory [0, size).
class ImageMemory final : public PhysicalMemory {
 public:
  explicit ImageMemory(Bytes image) : image_(image) {}
  virtual ~ImageMemory() = default;
  ImageMemory(const ImageMemory&) = delete;
  ImageMemory& operator=(const ImageMemory&) = delete;
  Bytes Map(uint64_t paddr, size_t length) const override {
    if (paddr > image_.size() || length > image_.size() - paddr) return {};
    return image_.subspan(static_cast<size_t>(paddr), length);
  }

 private:
  Bytes image_;
};

void FuzzImage(Bytes image) {
  const ImageMemory memory(image);
  ParseError e;
  const Result<RootTable> root = RootTable::FromRsdp(memory, 0, &e);
  if (!root.ok()) {
    CheckRefusal(root.status(), e);
    return;
  }
  CheckTable(root->table(), image);
  for (const char* sig : {"DMAR", "MCFG", "FACP"}) {
    for (size_t instance = 0; instance < 2; ++instance) {
      const Result<Table> t = root->Find(sig, instance, &e);
      if (!t.ok()) {
        CheckRefusal(t.status(), e);
        break;
      }
      CheckTable(*t, image);
      Check(t->Is(sig));
      if (std::strcmp(sig, "DMAR") == 0) FuzzDmar(t->bytes(), false);
      if (std::strcmp(sig, "MCFG") == 0) FuzzMcfg(t->bytes());
    }
  }
}

void FuzzRsdp(Bytes input) {
  ParseError e;
  const Result<Rsdp> r = ParseRsdp(input, &e);
  if (!r.ok()) {
    CheckRefusal(r.status(), e);
  } else {
    Check(std::memcmp(input.data(), "RSD PTR ", 8) == 0);
    Check(Sum(input.first(20)) == 0);
    Check(r->length <= input.size());
    if (r->revision >= 2) Check(r->length >= 36 && Sum(input.first(r->length)) == 0);
  }
  const Result<uint64_t> found = FindRsdp(input, 0x1000);
  if (found.ok()) {
    Check(*found >= 0x1000 && *found % 16 == 0 && *found - 0x1000 + 20 <= input.size());
  }
}

void Seal(std::vector<uint8_t>& t) {
  if (t.size() < TableHeader::kSize) return;
  const uint32_t length = static_cast<uint32_t>(t.size());
  std::memcpy(&t[4], &length, 4);
  t[9] = 0;
  t[9] = static_cast<uint8_t>(0x100 - Sum(Bytes(t.data(), t.size())));
}

}  // namespace
}  // namespace deviso::acpi

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace deviso::acpi;  // NOLINT(google-build-using-namespace): a fuzzer's entry point
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  // A copy of exactly the input's size: ASan sees any read past it.
  std::vector<uint8_t> bytes(data + 1, data + size);
  if ((mode & 3) < 2 && (mode & 4) == 0) Seal(bytes);
  const Bytes b(bytes.data(), bytes.size());
  switch (mode & 3) {
    case 0:
      FuzzDmar(b, (mode & 8) != 0);
      break;
    case 1:
      FuzzMcfg(b);
      break;
    case 2:
      FuzzImage(b);
      break;
    default:
      FuzzRsdp(b);
      break;
  }
  return 0;
}
