// deviso's devicetree reader: the IOMMU-related properties of a flattened devicetree (FDT),
// parsed with libfdt (never by hand), OS-agnostic (no heap; fixed capacities below).
//
// Bindings (Linux, Documentation/devicetree/bindings/; deviso's Zephyr copies are in
// dts/bindings/, and docs/devicetree.md describes what is accepted):
//   * iommu/iommu.txt: `iommus = <&iommu specifier> ...` on a DMA master, `#iommu-cells` on the
//     IOMMU. deviso's IOMMUs all use one cell: the StreamID (SMMUv3) or endpoint ID
//     (virtio-iommu).
//   * iommu/arm,smmu-v3.yaml: compatible "arm,smmu-v3", reg, interrupts + interrupt-names
//     ("eventq", "priq", "cmdq-sync", "gerror", or "combined"), dma-coherent, #iommu-cells = 1.
//   * virtio/iommu.txt (virtio,pci-iommu): a child of a PCI host bridge whose reg names the
//     function (PCI Bus Binding to OF, 2.2.1.1: phys.hi = npt000ss bbbbbbbb dddddfff rrrrrrrr),
//     #iommu-cells = 1.
//   * pci/pci-iommu.txt: `iommu-map = <rid-base &iommu iommu-base length> ...` and
//     `iommu-map-mask` on a PCI host bridge, as Linux's of_map_id() applies them.
//   * Devicetree Specification v0.4, 2.4 (interrupts, interrupt-parent, interrupts-extended,
//     interrupt-map, interrupt-map-mask) and the PCI Bus Binding to OF, 4.1.1 (PCI INTx).
//
// Every function that reports an error also logs one line (port::Log) naming the node's path and
// the property, and leaves its output unchanged. Node arguments are libfdt node offsets.

#ifndef DEVISO_SRC_DT_DEVICETREE_H_
#define DEVISO_SRC_DT_DEVICETREE_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "deviso/status.h"

namespace deviso::dt {

// Capacities (TF-A style: fixed at compile time).
inline constexpr size_t kMaxInterruptCells = 4;        // of one parent interrupt specifier
inline constexpr size_t kMaxIommuMapRanges = 16;       // iommu-map entries of one host bridge
inline constexpr size_t kMaxInterruptMapEntries = 32;  // interrupt-map entries of one nexus
inline constexpr size_t kMaxChildCells = 6;            // child unit address + interrupt cells
inline constexpr size_t kMaxPathLength = 128;          // node paths in log lines

// Checks that `fdt` is a well-formed devicetree blob within `buffer_size` bytes (libfdt's
// fdt_check_header and fdt_check_full). Every other function here assumes a checked blob: run
// it before any libfdt walk of a blob from outside (a bootloader, a file), since libfdt's
// readers trust the structure and can read out of bounds on a malformed one.
// Errors: -EINVAL (null, a buffer shorter than the 40-byte header, bad magic/version,
// totalsize beyond buffer_size, bad structure: truncated, unbalanced nodes, a tag or name
// outside its block, a property name offset outside the strings block or without its NUL).
Status CheckBlob(const void* fdt, size_t buffer_size);

// A (base, size) pair of `reg`, in the parent bus's address space.
struct Reg {
  uint64_t base = 0;
  uint64_t size = 0;
};

// One interrupt: its controller and the specifier cells (#interrupt-cells of the controller).
struct Interrupt {
  bool valid = false;
  uint32_t controller_phandle = 0;
  int controller = -1;  // node offset of the interrupt controller
  uint8_t cell_count = 0;
  uint32_t cells[kMaxInterruptCells] = {};
};

// An Arm GIC interrupt decoded from a 3-cell specifier (interrupt-controller/arm,gic.yaml and
// arm,gic-v3.yaml): <type number flags>, type 0 = SPI (INTID = number + 32), 1 = PPI (INTID =
// number + 16); flags[3:0] = 1 rising edge, 2 falling edge, 4 level high, 8 level low.
struct GicInterrupt {
  uint32_t intid = 0;
  bool edge = false;
};
// Errors: -EINVAL (not valid, not 3 cells, type not 0 or 1, no trigger type in flags).
Result<GicInterrupt> DecodeGic(const Interrupt& irq);

// The interrupt of `node` named `name` in its interrupt-names (DT spec 2.4: `interrupts` with
// the interrupt parent's #interrupt-cells, or `interrupts-extended`).
// Errors: -ENOENT (no such name: nothing logged), -EINVAL (no interrupt parent, dangling
// phandle, #interrupt-cells missing or above kMaxInterruptCells, truncated property).
Result<Interrupt> ReadNamedInterrupt(const void* fdt, int node, const char* name);

// ---- IOMMU nodes --------------------------------------------------------------------------

enum class IommuType : uint8_t {
  kSmmuV3,     // "arm,smmu-v3"
  kVirtioPci,  // "virtio,pci-iommu"
};

struct SmmuV3Interrupts {
  Interrupt eventq;
  Interrupt priq;
  Interrupt cmdq_sync;
  Interrupt gerror;
  Interrupt combined;
};

struct IommuNode {
  IommuType type = IommuType::kSmmuV3;
  int node = -1;
  uint32_t phandle = 0;  // 0: none (nothing can refer to this IOMMU)
  // kSmmuV3: the register frame (reg[0]), dma-coherent and the named interrupts (each optional).
  Reg regs;
  bool dma_coherent = false;
  SmmuV3Interrupts irqs;
  // kVirtioPci: the PCI host bridge it sits on and its requester ID from reg's phys.hi.
  int pci_host = -1;
  uint16_t rid = 0;
};

// Parses the IOMMU at `node`. Errors: -ENOTSUP (neither compatible), -EINVAL (#iommu-cells
// missing or not 1; reg missing or truncated; a virtio,pci-iommu whose parent is not a PCI
// node; an interrupt as in ReadNamedInterrupt).
Result<IommuNode> ParseIommu(const void* fdt, int node);

// Every available arm,smmu-v3 and virtio,pci-iommu node (status absent or "okay"; disabled
// nodes are skipped, DT spec 2.3.4), in tree order, written to `out`; returns how many. Errors:
// -ENOMEM (more than out.size()), and ParseIommu's for any node.
Result<size_t> FindIommus(const void* fdt, std::span<IommuNode> out);

// ---- Consumers: `iommus` ------------------------------------------------------------------

// One (IOMMU, StreamID) pair of a device.
struct IommuRef {
  uint32_t iommu_phandle = 0;
  int iommu = -1;  // node offset of the IOMMU (-1 from IommuMap::Map, which keeps no offsets)
  uint32_t sid = 0;
};

// The entries of `node`'s `iommus` (iommu.txt: <phandle specifier>..., each specifier as long
// as the target's #iommu-cells), written to `out`; returns how many.
// Errors: -ENOENT (no `iommus`: nothing logged), -EINVAL (empty or truncated property, dangling
// phandle, target without #iommu-cells or with #iommu-cells != 1), -ENOMEM (more than
// out.size() entries).
Result<size_t> ReadIommus(const void* fdt, int node, std::span<IommuRef> out);

// ---- PCI host bridges: `iommu-map` / `iommu-map-mask` -------------------------------------

struct IommuMapRange {
  uint32_t rid_base = 0;
  uint32_t iommu_phandle = 0;
  uint32_t sid_base = 0;
  uint32_t length = 0;
};

// A host bridge's iommu-map, applied as Linux's of_map_id(): the requester ID is masked with
// iommu-map-mask (all ones if absent), and the first range with rid_base <= masked <
// rid_base + length gives StreamID sid_base + (masked - rid_base) on its IOMMU.
struct IommuMap {
  bool present = false;
  uint32_t mask = 0xffffffff;
  IommuMapRange ranges[kMaxIommuMapRanges];
  size_t count = 0;

  // The IOMMU and StreamID of `rid` (first matching range). Errors: -ENOENT (no map, or no
  // range covers the RID: the function's DMA is not translated by any IOMMU).
  Result<IommuRef> Map(uint32_t rid) const;
  // The StreamID of `rid` at the IOMMU `iommu_phandle`: the first range that covers the RID
  // and names that IOMMU (of_map_id with a target). Errors: -ENOENT (none).
  Result<uint32_t> Map(uint32_t rid, uint32_t iommu_phandle) const;
};

// Reads `host`'s iommu-map and iommu-map-mask into `*out`. No iommu-map: OK, out->present is
// false. Errors: -EINVAL (length 0 or not a multiple of 4 cells, dangling phandle, target
// #iommu-cells != 1, a rid-base the mask ignores (bits outside iommu-map-mask, rejected by
// Linux too), a range whose RIDs or StreamIDs pass 2^32, iommu-map-mask not one cell),
// -ENOMEM (more than kMaxIommuMapRanges ranges).
Status ReadIommuMap(const void* fdt, int host, IommuMap* out);

// ---- Interrupt nexus: `interrupt-map` / `interrupt-map-mask` ------------------------------

struct InterruptMapEntry {
  uint32_t child[kMaxChildCells] = {};  // child unit address, then child interrupt specifier
  Interrupt parent;
};

// An interrupt nexus's map (DT spec 2.4.3): a child's (unit address, interrupt specifier),
// masked by interrupt-map-mask, selects the first entry whose masked child cells equal it.
struct InterruptMap {
  bool present = false;
  uint8_t address_cells = 0;    // the nexus's #address-cells (3 on a PCI bus)
  uint8_t interrupt_cells = 0;  // the nexus's #interrupt-cells (1 on a PCI bus: the pin)
  uint32_t mask[kMaxChildCells] = {};
  InterruptMapEntry entries[kMaxInterruptMapEntries];
  size_t count = 0;

  // The parent interrupt for `child` (address_cells + interrupt_cells cells).
  // Errors: -EINVAL (wrong cell count), -ENOENT (no entry matches).
  Result<Interrupt> Lookup(std::span<const uint32_t> child) const;
  // A PCI function's INTx (PCI Bus Binding to OF 4.1.1): unit address (phys.hi = rid << 8,
  // phys.mid = phys.lo = 0) and pin 1..4 = INTA..INTD. Only for functions on the host bridge's
  // own bus: behind a PCI-to-PCI bridge the caller swizzles the pin first (PCI-to-PCI Bridge
  // spec 9.1). Errors: -EINVAL (pin not 1..4, not a PCI map), -ENOENT (no entry matches).
  Result<Interrupt> LookupPci(uint16_t rid, uint8_t pin) const;
};

// Reads `nexus`'s interrupt-map and interrupt-map-mask into `*out`. No interrupt-map: OK,
// out->present is false. Each entry's parent unit address is as long as the parent's
// #address-cells (0 if absent, as in Linux), its specifier as the parent's #interrupt-cells.
// Errors: -EINVAL (#address-cells/#interrupt-cells of the nexus missing or above
// kMaxChildCells together; mask of the wrong length; truncated entry; dangling parent phandle;
// parent without #interrupt-cells or above kMaxInterruptCells), -ENOTSUP (a parent that is
// itself a nexus, not an interrupt-controller), -ENOMEM (more than kMaxInterruptMapEntries).
Status ReadInterruptMap(const void* fdt, int nexus, InterruptMap* out);

// ---- Firmware-reserved regions: /reserved-memory `iommu-addresses` ------------------------

// reserved-memory/reserved-memory.yaml (dtschema; Linux of_iommu_get_resv_regions): a child of
// /reserved-memory may carry `iommu-addresses = <&device address size>, ...` (address and size
// in /reserved-memory's #address-cells / #size-cells): the device-address range at which
// `device` must keep reaching that memory, e.g. a framebuffer or firmware buffer set up before
// the OS. The device lists the region in its `memory-region`. With `reg`, the range is a
// mapping to the region's memory (iova -> reg base; identity when equal, Linux's
// IOMMU_RESV_DIRECT); without `reg`, it is only a reservation: never mapped, and no IOVA may be
// allocated there.
struct IommuAddressRegion {
  int node = -1;      // the /reserved-memory child
  uint64_t iova = 0;  // device address
  uint64_t size = 0;
  bool mapped = false;  // has reg: [iova, +size) maps to [pa, +size)
  uint64_t pa = 0;
};
inline constexpr size_t kMaxIommuAddresses = 8;  // regions of one device (AllocContext... below)

// The iommu-addresses entries that name `node` (by its phandle) in the regions of `node`'s
// `memory-region`, in that order, written to `out`; returns how many (0 without
// memory-region, or with no entry for it). Entries naming other devices are skipped.
// Errors: -EINVAL (a memory-region phandle that resolves to no node or to one outside
// /reserved-memory; iommu-addresses not whole <phandle address size> entries, or naming a
// phandle that resolves to no node; /reserved-memory #address-cells / #size-cells not 1 or
// 2; a size of 0; a range that wraps; a mapped range larger than the region's reg), -ENOMEM
// (more than out.size()).
Result<size_t> ReadIommuAddresses(const void* fdt, int node, std::span<IommuAddressRegion> out);

// ---- Helpers ------------------------------------------------------------------------------

// Reads the index-th (address, size) pair of `node`'s reg (cell counts of the parent, 1..2
// each). Errors: -EINVAL (missing or truncated), -ENOTSUP (cell counts above 2).
Result<Reg> ReadReg(const void* fdt, int node, int index);

// Writes `node`'s full path to `buf` ("<unknown>" if libfdt cannot), for messages.
void NodePath(const void* fdt, int node, std::span<char> buf);

}  // namespace deviso::dt

#endif  // DEVISO_SRC_DT_DEVICETREE_H_
