// PCI Express enumeration through ECAM (pci-host-ecam-generic) for QEMU `virt`.
//
// Configuration space layout: PCI Local Bus Specification 3.0, 6.1-6.2 (type 0 header, Command
// register, BARs 6.2.5); PCI-to-PCI Bridge Architecture Specification 1.2, 3.2 (type 1 header:
// bus numbers 3.2.5.2-3.2.5.4, memory and prefetchable windows 3.2.5.8-3.2.5.10), 9.1 (INTx
// swizzle); ECAM addressing: PCI Express Base Specification 4.0, 7.2.2 (address = base + bus <<
// 20 | device << 15 | function << 12 | offset), 7.5.3.2 (PCI Express Capability, port type);
// PCIe-to-PCI/PCI-X Bridge Specification 1.0, 2.3 (requester ID of forwarded transactions).
//
// Enumerate() walks the whole hierarchy depth-first from the host bridge's bus: through every
// PCI-to-PCI bridge (PCIe root and switch ports, PCIe-to-PCI bridges, conventional PCI-PCI
// bridges) it assigns primary/secondary/subordinate bus numbers where firmware left none
// (QEMU `virt` with -kernel: nobody did) within the ECAM's bus range, assigns every memory
// BAR an address, and programs each bridge's memory and prefetchable windows to cover the BARs
// below it. It turns memory decoding on and never turns bus mastering on: a device can issue
// DMA only after EnableBusMaster(), which the caller invokes once the device's isolation
// context exists (and which then also lets the bridges above it forward that DMA upstream).
//
// Behind a conventional PCI bus the IOMMU does not see a function's own requester ID: a
// PCIe-to-PCI bridge forwards its devices' DMA as (secondary bus, 00.0), a conventional
// PCI-PCI bridge as its own ID (PciFunction::dma_alias; QEMU does the same). Such functions
// share one StreamID and cannot be isolated from each other, only as a group from the rest.

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PCI_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PCI_H_

#include <cstddef>
#include <cstdint>

#include "deviso/status.h"
#include "platform_info.h"

namespace deviso::qemu_virt {

// Bus/device/function: a PCI requester ID.
struct Bdf {
  uint8_t bus = 0;
  uint8_t device = 0;    // 0..31
  uint8_t function = 0;  // 0..7
  // PCIe 4.0 2.2.6.2: RID = bus[15:8] device[7:3] function[2:0].
  uint16_t rid() const { return static_cast<uint16_t>((bus << 8) | (device << 3) | function); }
  bool operator==(const Bdf&) const = default;
};

struct PciBar {
  uint64_t cpu_addr = 0;  // 0: not implemented or not assigned
  uint64_t size = 0;
  bool is_io = false;
  bool is_64bit = false;
  bool prefetchable = false;
};

// PCIe 4.0 7.5.3.2 Device/Port Type of a function's PCI Express Capability.
enum class PciePortType : uint8_t {
  kEndpoint = 0x0,
  kLegacyEndpoint = 0x1,
  kRootPort = 0x4,
  kUpstreamPort = 0x5,
  kDownstreamPort = 0x6,
  kPcieToPciBridge = 0x7,
  kPciToPcieBridge = 0x8,
  kRootComplexEndpoint = 0x9,
  kRootComplexEventCollector = 0xa,
  kNotPcie = 0xff,  // no PCI Express Capability: a conventional PCI function
};

// A CPU address range a bridge forwards, [base, limit]; empty if !enabled.
struct PciBridgeWindow {
  bool enabled = false;
  uint64_t base = 0;   // CPU address
  uint64_t limit = 0;  // CPU address of the last byte
};

// The type 1 header state Enumerate() left in a bridge (PCI-to-PCI Bridge 1.2, 3.2.5).
struct PciBridgeInfo {
  uint8_t secondary = 0;           // the bus right below it
  uint8_t subordinate = 0;         // the highest bus below it
  bool firmware_numbered = false;  // its bus numbers were already valid and were kept
  PciBridgeWindow mem;             // non-prefetchable memory window (32-bit, 1 MiB granules)
  PciBridgeWindow pref;            // prefetchable memory window (64-bit if the bridge offers it)
  bool pref_implemented = false;
  bool pref_64bit = false;
};

struct PciFunction {
  Bdf bdf;
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint32_t class_code = 0;    // base class [23:16], subclass [15:8], prog-if [7:0]
  uint8_t header_type = 0;    // 0: endpoint, 1: PCI-to-PCI bridge
  uint8_t interrupt_pin = 0;  // 1..4 = INTA..INTD; 0: none
  PciePortType pcie_type = PciePortType::kNotPcie;
  uint8_t depth = 0;      // bridges between it and the host bridge (0: on the root bus)
  int16_t upstream = -1;  // index (function()) of the bridge above it; -1 on the root bus
  // The requester ID its DMA carries at the IOMMU: its own, or a bridge's alias (see above).
  Bdf dma_alias;
  PciBar bars[6];
  PciBridgeInfo bridge;  // header_type 1 only
};

// Configuration space accesses (the seam a host test implements with a simulated ECAM).
// `offset` is naturally aligned. A function that does not exist reads as all ones.
class PciConfigSpace {
 public:
  virtual uint32_t Read32(const Bdf& bdf, size_t offset) const = 0;
  virtual uint16_t Read16(const Bdf& bdf, size_t offset) const = 0;
  virtual void Write32(const Bdf& bdf, size_t offset, uint32_t value) = 0;
  virtual void Write16(const Bdf& bdf, size_t offset, uint16_t value) = 0;

 protected:
  ~PciConfigSpace() = default;
};

class PciHost {
 public:
  static constexpr size_t kMaxFunctions = 32;
  // Bridge windows are 1 MiB granules (PCI-to-PCI Bridge 1.2, 3.2.5.8).
  static constexpr uint64_t kBridgeWindowGranule = uint64_t{1} << 20;

  // The host bridge from the devicetree; the ECAM and windows must be mapped (MmuInit does).
  explicit PciHost(const PciHostInfo& info) : info_(info) {}
  // The same over another configuration space (a host test's simulated ECAM); `config` must
  // outlive this object.
  PciHost(const PciHostInfo& info, PciConfigSpace& config) : info_(info), config_(&config) {}

  // Scans the hierarchy below the root bus (bus_start) depth-first and records every function
  // (parents before children). Bridges: bus numbers firmware programmed are kept when they
  // are valid (primary = the bridge's bus, secondary above every bus numbered so far,
  // subordinate >= secondary and within the parent's range); otherwise the bridge gets the
  // next free bus as secondary and, once its subtree is scanned, the highest bus found below
  // it as subordinate. Below a PCIe root or downstream port only device 0 is probed (PCIe 4.0
  // 7.3.1: its link has one device). Memory BARs: all in the 32-bit window (non-prefetchable
  // bridge windows are 32-bit), or, when it is full, a 64-bit BAR in the 64-bit window (on the
  // root bus any, behind bridges only prefetchable ones, through 64-bit prefetchable windows);
  // each bridge's windows cover exactly the 1 MiB-aligned span its subtree got, or are closed
  // (base > limit). I/O BARs are sized, not assigned; I/O decoding and bridges' I/O windows stay
  // off. Every function gets Command.Memory Space (Bus Master and INTx stay off).
  // Errors: -ENOTSUP (no host bridge), -ENOMEM (a window is full), -ERANGE (more than
  // kMaxFunctions functions, or more buses than the ECAM's bus range); what was configured
  // before the error stays so.
  Status Enumerate();

  size_t function_count() const { return count_; }
  const PciFunction& function(size_t i) const { return functions_[i]; }
  // The first function with this vendor and device ID, or nullptr.
  const PciFunction* Find(uint16_t vendor_id, uint16_t device_id) const;
  // The enumerated function at `bdf`, or nullptr.
  const PciFunction* FindFunction(const Bdf& bdf) const;
  // The highest bus number Enumerate() used.
  uint8_t last_bus() const { return last_bus_; }

  // Sets / clears Command.Bus Master Enable (PCI 3.0 6.2.2): the device may issue DMA only
  // while it is set. Enabling also sets it on every bridge above the function (a bridge
  // forwards DMA upstream only then, PCI-to-PCI Bridge 1.2 3.2.5.5); disabling leaves the
  // bridges as they are (others may depend on them). Errors: -ENOENT (no such enumerated
  // function).
  Status EnableBusMaster(const Bdf& bdf);
  Status DisableBusMaster(const Bdf& bdf);

  // Clears / sets Command.Interrupt Disable (PCI 3.0 6.2.2, bit 10): Enumerate() leaves every
  // function's legacy INTx disabled; IntxIrq() says where it arrives once enabled.
  // Errors: -ENOENT (no such enumerated function).
  Status EnableIntx(const Bdf& bdf);
  Status DisableIntx(const Bdf& bdf);

  // The requester ID `bdf`'s DMA carries at the IOMMU: the enumerated function's dma_alias,
  // or `bdf` itself if it is not an enumerated function.
  Bdf DmaRequester(const Bdf& bdf) const;

  // The StreamID of `bdf` at the IOMMU with phandle `iommu_phandle`, from the host bridge's
  // iommu-map (pci-iommu.txt) applied to DmaRequester(bdf): sid = sid_base + ((rid &
  // iommu-map-mask) - rid_base). Errors: -ENOENT (the RID is not in the map: the function is
  // not behind that IOMMU).
  Result<uint32_t> StreamId(const Bdf& bdf, uint32_t iommu_phandle) const;

  // The GIC interrupt of `bdf`'s legacy INTx, from the host bridge's interrupt-map (DT spec
  // 2.4.3; PCI Bus Binding to OF 4.1.1): the function's Interrupt Pin as enumerated (or `pin`,
  // 1..4 = INTA..INTD, in the second form), swizzled through every bridge above it
  // (PCI-to-PCI Bridge 1.2 9.1: pin' = (pin - 1 + device) % 4 + 1 per level), then looked up
  // with the root-bus device it arrives at. (Bridges with their own devicetree interrupt-map
  // are not consulted: QEMU `virt` has none.) A `bdf` that is not enumerated is taken as a
  // root-bus function. Errors: -ENOENT (not an enumerated function, Interrupt Pin 0, or no
  // interrupt-map entry), -EINVAL (pin not 1..4; the map's parent is not a 3-cell GIC
  // specifier), -ENOTSUP (the host bridge has no interrupt-map).
  Result<IrqSpec> IntxIrq(const Bdf& bdf) const;
  Result<IrqSpec> IntxIrq(const Bdf& bdf, uint8_t pin) const;
  // The root-bus device and pin where `bdf`'s `pin` arrives after the swizzle (the inputs of
  // the interrupt-map lookup). Errors: -EINVAL (pin not 1..4).
  struct RootIntx {
    Bdf root;
    uint8_t pin = 0;
  };
  Result<RootIntx> SwizzleIntx(const Bdf& bdf, uint8_t pin) const;

  // Configuration space access (ECAM). `offset` must be naturally aligned. Buses outside the
  // ECAM's range read as all ones and ignore writes.
  uint32_t ConfigRead32(const Bdf& bdf, size_t offset) const;
  uint16_t ConfigRead16(const Bdf& bdf, size_t offset) const;
  void ConfigWrite32(const Bdf& bdf, size_t offset, uint32_t value);
  void ConfigWrite16(const Bdf& bdf, size_t offset, uint16_t value);

 private:
  // Where a BAR or window lives: the host bridge's 32-bit or 64-bit window.
  enum class Space : uint8_t { kMem32, kMem64 };
  // What the bridges above a function allow: nothing (root bus: anything the host has), or
  // 64-bit prefetchable windows all the way up.
  struct Path {
    bool behind_bridge = false;
    bool pref64 = true;
  };

  uintptr_t ConfigAddress(const Bdf& bdf, size_t offset) const;
  bool InEcam(const Bdf& bdf) const;
  Status ScanBus(uint8_t bus, int16_t upstream, uint8_t depth, bool only_device0, uint8_t limit,
                 Path path);
  Result<size_t> ProbeFunction(const Bdf& bdf, int16_t upstream, uint8_t depth, Path path);
  Status ConfigureBridge(size_t index, uint8_t limit, Path path);
  void ProgramWindows(PciFunction& b, uint64_t mem_start, uint64_t pref_start);
  Status AssignBars(PciFunction& f, Path path);
  Result<uint64_t> AllocateBar(uint64_t size, bool is64, bool prefetchable, Path path);
  PciePortType ReadPcieType(const Bdf& bdf) const;
  Bdf DmaAlias(const PciFunction& f) const;
  uint64_t BusAddress(uint64_t cpu_addr) const;
  PciFunction* MutableFunction(const Bdf& bdf);

  PciHostInfo info_;
  PciConfigSpace* config_ = nullptr;  // null: the ECAM in info_
  PciFunction functions_[kMaxFunctions];
  size_t count_ = 0;
  uint64_t next_mem32_ = 0;  // next free CPU address in each window
  uint64_t next_mem64_ = 0;
  unsigned next_bus_ = 0;  // next bus number to give a bridge
  uint8_t last_bus_ = 0;
};

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PCI_H_
