#include "virtio_iommu_platform.h"

#include <cstdio>
#include <optional>

#include "arch.h"
#include "deviso/port/os.h"
#include "deviso/registry.h"
#include "its.h"
#include "mmu.h"
#include "virtio_iommu/hw.h"
#include "virtio_iommu/transport.h"

namespace deviso::qemu_virt {
namespace {

// The function's configuration space through the ECAM accessors of PciHost, which has 16- and
// 32-bit accesses: narrower reads are taken from the aligned word. The driver never writes
// configuration space; the writes are read-modify-write of the aligned 32-bit word, which
// would clear RW1C bits of the Status register: do not use them on 0x04-0x07.
class EcamConfig final : public virtio_iommu::PciConfig {
 public:
  EcamConfig(PciHost& host, Bdf bdf) : host_(host), bdf_(bdf) {}
  uint8_t Read8(size_t o) override {
    return static_cast<uint8_t>(host_.ConfigRead32(bdf_, o & ~size_t{3}) >> (8 * (o & 3)));
  }
  uint16_t Read16(size_t o) override { return host_.ConfigRead16(bdf_, o); }
  uint32_t Read32(size_t o) override { return host_.ConfigRead32(bdf_, o); }
  void Write8(size_t o, uint8_t v) override {
    const size_t a = o & ~size_t{3};
    const unsigned shift = 8 * static_cast<unsigned>(o & 3);
    const uint32_t w = host_.ConfigRead32(bdf_, a);
    host_.ConfigWrite32(bdf_, a, (w & ~(0xffU << shift)) | (uint32_t{v} << shift));
  }
  void Write16(size_t o, uint16_t v) override { host_.ConfigWrite16(bdf_, o, v); }
  void Write32(size_t o, uint32_t v) override { host_.ConfigWrite32(bdf_, o, v); }

 private:
  PciHost& host_;
  Bdf bdf_;
};

std::optional<PciHost> g_pci;
std::optional<EcamConfig> g_config;
std::optional<virtio_iommu::DirectBarIo> g_bar;
std::optional<ArenaDmaMemory> g_dma;
std::optional<virtio_iommu::VirtioIommu> g_unit;
char g_name[32];

// The phandle the iommu-map names for a virtio-iommu: the one that is not the SMMU's.
// device_tree.cc keeps only entries whose IOMMU has #iommu-cells = 1, as the virtio-iommu has.
Result<uint32_t> VirtioPhandle(const PlatformInfo& info) {
  for (size_t i = 0; i < info.pci.iommu_map_count; ++i) {
    const uint32_t p = info.pci.iommu_map[i].iommu_phandle;
    if (!info.smmu.present || p != info.smmu.phandle) return p;
  }
  return Status::NotFound();
}

}  // namespace

Result<VirtioIommuPlatform> SetupVirtioIommu(const PlatformInfo& info, DmaArena& arena,
                                             PciHost& pci) {
  if (g_unit.has_value()) return Status::AlreadyExists();
  const PciFunction* f =
      pci.Find(virtio_iommu::pci::kVendorVirtio, virtio_iommu::pci::kDeviceIommu);
  if (f == nullptr) return Status::NotFound();
  DEVISO_ASSIGN_OR_RETURN(const uint32_t phandle, VirtioPhandle(info));
  if (pci.StreamId(f->bdf, phandle).ok()) {
    // Its own requests would be translated by itself: the map is not what QEMU builds.
    port::Log("deviso: virtio-iommu %02x:%02x.%x is inside its own iommu-map\n", f->bdf.bus,
              f->bdf.device, f->bdf.function);
  }
  std::snprintf(g_name, sizeof(g_name), "virtio-iommu@%02x:%02x.%x", f->bdf.bus, f->bdf.device,
                f->bdf.function);

  virtio_iommu::VirtioIommu::Config c;
  g_config.emplace(pci, f->bdf);
  c.pci = &*g_config;
  // The virtio structures' BAR (QEMU: BAR4, 64-bit); the capabilities say which one. Only
  // memory BARs the enumeration assigned are handed over.
  for (unsigned i = 0; i < virtio_iommu::VirtioPci::kBars; ++i) {
    const PciBar& bar = f->bars[i];
    if (bar.cpu_addr == 0 || bar.is_io || g_bar.has_value()) continue;
    g_bar.emplace(static_cast<uintptr_t>(bar.cpu_addr));
    c.bars[i] = &*g_bar;
  }
  if (!g_bar.has_value()) return Status::NotSupported();
  g_dma.emplace(arena, /*coherent=*/true);  // QEMU virt PCIe is cache-coherent
  c.dma = &*g_dma;
  c.name = g_name;
  c.coherent = true;  // QEMU virt PCIe is cache-coherent
  // QEMU writes 1 + len/4 events for one blocked DMA: room for a blocked page or so.
  c.event_queue_size = 256;
  // The device keeps its translation tables to itself; what deviso must still keep from every
  // device is the CPU map's tables and the GICv3 ITS's tables (its.h) (-EPERM from Map).
  c.own_memory[0] = {MmuTablesBase(), MmuTablesBytes()};
  c.own_memory[1] = {ItsMemory().base, ItsMemory().size};
  auto check = [](Status st, const char* what) {
    if (!st.ok()) port::Log("deviso: %s: %s: %s\n", g_name, what, st.str());
    return st;
  };
  // The device reads its virtqueues by DMA; its own requester ID is not translated.
  DEVISO_TRY(check(pci.EnableBusMaster(f->bdf), "bus master"));
  g_unit.emplace(c);
  virtio_iommu::VirtioIommu* unit = &*g_unit;
  DEVISO_TRY(check(unit->Probe(), "probe"));
  DEVISO_TRY(check(unit->Init(), "init"));
  DEVISO_TRY(check(Registry::Default().RegisterUnit(*unit), "register"));
  return VirtioIommuPlatform{unit, f->bdf, phandle};
}

Result<VirtioIommuPlatform> SetupVirtioIommu(const PlatformInfo& info, DmaArena& arena) {
  if (!g_pci.has_value()) {
    g_pci.emplace(info.pci);
    if (const Status s = g_pci->Enumerate(); !s.ok()) {
      g_pci.reset();
      return s;
    }
  }
  return SetupVirtioIommu(info, arena, *g_pci);
}

}  // namespace deviso::qemu_virt
