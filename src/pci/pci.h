// PCI and PCI Express enumeration over a configuration-space accessor: OS- and board-agnostic
// (QEMU `virt` reaches it through the devicetree's ECAM, q35 through the ACPI MCFG's).
//
// Configuration space layout: PCI Local Bus Specification 3.0, 6.1-6.2 (type 0 header, Command
// register, BARs 6.2.5), 6.7 (capability list); PCI-to-PCI Bridge Architecture Specification 1.2,
// 3.2 (type 1 header: bus numbers 3.2.5.2-3.2.5.4, memory and prefetchable windows
// 3.2.5.8-3.2.5.10), 9.1 (INTx swizzle); ECAM addressing: PCI Express Base Specification 4.0,
// 7.2.2 (address = base + bus << 20 | device << 15 | function << 12 | offset), 7.5.3.2 (PCI
// Express Capability, port type); PCIe-to-PCI/PCI-X Bridge Specification 1.0, 2.3 (requester ID
// of forwarded transactions).
//
// Topology::Enumerate() walks the whole hierarchy depth-first from the host bridge's bus: through
// every PCI-to-PCI bridge (PCIe root and switch ports, PCIe-to-PCI bridges, conventional PCI-PCI
// bridges) it keeps the bus numbers firmware left when they are valid and otherwise assigns
// primary/secondary/subordinate within the host bridge's bus range (QEMU `virt` with -kernel:
// nobody did; SeaBIOS on q35 did), assigns every memory BAR an address, and programs each
// bridge's memory and prefetchable windows to cover the BARs below it. It turns memory decoding
// on and never turns bus mastering on: a device can issue DMA only after EnableBusMaster(), which
// the caller invokes once the device's isolation context exists (and which then also lets the
// bridges above it forward that DMA upstream).
//
// Behind a conventional PCI bus the IOMMU does not see a function's own requester ID: a
// PCIe-to-PCI bridge forwards its devices' DMA as (secondary bus, 00.0), a conventional PCI-PCI
// bridge as its own ID (Function::dma_alias; QEMU does the same). Such functions share one
// StreamID / source-id and cannot be isolated from each other, only as a group from the rest.
//
// No heap: the functions found are kept in a fixed array of kMaxFunctions.

#ifndef DEVISO_SRC_PCI_PCI_H_
#define DEVISO_SRC_PCI_PCI_H_

#include <cstddef>
#include <cstdint>

#include "deviso/status.h"

namespace deviso::pci {

// Bus/device/function: a PCI requester ID.
struct Bdf {
  uint8_t bus = 0;
  uint8_t device = 0;    // 0..31
  uint8_t function = 0;  // 0..7
  // PCIe 4.0 2.2.6.2: RID = bus[15:8] device[7:3] function[2:0].
  uint16_t rid() const { return static_cast<uint16_t>((bus << 8) | (device << 3) | function); }
  bool operator==(const Bdf&) const = default;
};

struct Bar {
  uint64_t cpu_addr = 0;  // 0: not implemented or not assigned
  uint64_t size = 0;
  bool is_io = false;
  bool is_64bit = false;
  bool prefetchable = false;
};

// PCIe 4.0 7.5.3.2 Device/Port Type of a function's PCI Express Capability.
enum class PortType : uint8_t {
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
struct BridgeWindow {
  bool enabled = false;
  uint64_t base = 0;   // CPU address
  uint64_t limit = 0;  // CPU address of the last byte
};

// The type 1 header state Enumerate() left in a bridge (PCI-to-PCI Bridge 1.2, 3.2.5).
struct BridgeInfo {
  uint8_t secondary = 0;           // the bus right below it
  uint8_t subordinate = 0;         // the highest bus below it
  bool firmware_numbered = false;  // its bus numbers were already valid and were kept
  BridgeWindow mem;                // non-prefetchable memory window (32-bit, 1 MiB granules)
  BridgeWindow pref;               // prefetchable memory window (64-bit if the bridge offers it)
  bool pref_implemented = false;
  bool pref_64bit = false;
};

struct Function {
  Bdf bdf;
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint32_t class_code = 0;    // base class [23:16], subclass [15:8], prog-if [7:0]
  uint8_t header_type = 0;    // 0: endpoint, 1: PCI-to-PCI bridge
  uint8_t interrupt_pin = 0;  // 1..4 = INTA..INTD; 0: none
  PortType pcie_type = PortType::kNotPcie;
  uint8_t pcie_capability = 0;  // offset of its PCI Express Capability; 0 if none
  uint8_t depth = 0;            // bridges between it and the host bridge (0: on the root bus)
  int16_t upstream = -1;        // index (Topology::function()) of the bridge above it; -1: root bus
  // The requester ID its DMA carries at the IOMMU: its own, or a bridge's alias (see above).
  Bdf dma_alias;
  Bar bars[6];
  BridgeInfo bridge;  // header_type 1 only
};

// Configuration space accesses: the seam between enumeration and the hardware (Ecam below; a
// host test's simulated ECAM). `offset` is naturally aligned and below 4096. A function that
// does not exist reads as all ones and ignores writes.
class ConfigSpace {
 public:
  virtual uint32_t Read32(const Bdf& bdf, size_t offset) const = 0;
  virtual uint16_t Read16(const Bdf& bdf, size_t offset) const = 0;
  virtual void Write32(const Bdf& bdf, size_t offset, uint32_t value) = 0;
  virtual void Write16(const Bdf& bdf, size_t offset, uint16_t value) = 0;

 protected:
  ~ConfigSpace() = default;
};

// The enhanced configuration access mechanism (PCIe 4.0 7.2.2) at a mapped address: `base` is the
// configuration space of bus `bus_start` (the devicetree `reg` of pci-host-ecam-generic; for an
// ACPI MCFG allocation its region_base()). Buses outside [bus_start, bus_end] read as all ones
// and ignore writes. The range must be mapped as device memory by the caller.
class Ecam final : public ConfigSpace {
 public:
  Ecam() = default;
  Ecam(uintptr_t base, uint8_t bus_start, uint8_t bus_end)
      : base_(base), bus_start_(bus_start), bus_end_(bus_end) {}
  virtual ~Ecam() = default;

  uint32_t Read32(const Bdf& bdf, size_t offset) const override;
  uint16_t Read16(const Bdf& bdf, size_t offset) const override;
  void Write32(const Bdf& bdf, size_t offset, uint32_t value) override;
  void Write16(const Bdf& bdf, size_t offset, uint16_t value) override;

  // The address of `offset` in `bdf`'s configuration space (bdf must be inside the range).
  uintptr_t Address(const Bdf& bdf, size_t offset) const;
  bool Contains(const Bdf& bdf) const;

 private:
  uintptr_t base_ = 0;
  uint8_t bus_start_ = 0;
  uint8_t bus_end_ = 0;  // base_ == 0: no ECAM, everything reads as all ones
};

// A CPU address window of the host bridge and where it lands on the PCI bus.
struct Window {
  bool present = false;
  uint64_t pci_addr = 0;  // address on the PCI bus
  uint64_t cpu_addr = 0;  // where the CPU reaches it
  uint64_t size = 0;
  bool prefetchable = false;
};

// What enumeration needs of the host bridge: its bus range and the memory windows BARs are
// assigned from.
struct HostBridge {
  uint8_t bus_start = 0;
  uint8_t bus_end = 255;
  Window mem32;  // below 4 GiB on the bus: non-prefetchable windows can forward it
  Window mem64;  // above 4 GiB: only through 64-bit prefetchable windows behind bridges
  // Firmware assigned the resources (SeaBIOS on q35, whose windows only ACPI AML describes):
  // every BAR keeps its address (sized, then restored) and every bridge window stays as found
  // and is only read; mem32/mem64, if given, translate bus to CPU addresses (otherwise they
  // are the same). Bus numbers follow the rule of Enumerate() either way.
  bool keep_firmware_resources = false;
};

class Topology {
 public:
  static constexpr size_t kMaxFunctions = 32;
  // Bridge windows are 1 MiB granules (PCI-to-PCI Bridge 1.2, 3.2.5.8).
  static constexpr uint64_t kBridgeWindowGranule = uint64_t{1} << 20;

  // `config` must outlive this object.
  Topology(const HostBridge& host, ConfigSpace& config) : host_(host), config_(&config) {}
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  // Scans the hierarchy below the root bus (bus_start) depth-first and records every function
  // (parents before children), replacing what an earlier call recorded. Bridges: bus numbers
  // firmware programmed are kept when they are valid (primary = the bridge's bus, secondary
  // above every bus numbered so far, subordinate >= secondary and within the parent's range);
  // otherwise the bridge gets the next free bus as secondary and, once its subtree is scanned,
  // the highest bus found below it as subordinate. Below a PCIe root or downstream port only
  // device 0 is probed (PCIe 4.0 7.3.1: its link has one device). Memory BARs: all in the 32-bit
  // window (non-prefetchable bridge windows are 32-bit), or, when it is full, a 64-bit BAR in the
  // 64-bit window (on the root bus any, behind bridges only prefetchable ones, through 64-bit
  // prefetchable windows); each bridge's windows cover exactly the 1 MiB-aligned span its
  // subtree got, or are closed (base > limit). I/O BARs are sized, not assigned; I/O decoding
  // and bridges' I/O windows stay off. Every function gets Command.Memory Space (Bus Master and
  // INTx stay off). Errors: -ENOMEM (a window is full), -ERANGE (more than kMaxFunctions
  // functions, or more buses than the host bridge's bus range); what was configured before the
  // error stays so (and is recorded).
  Status Enumerate();

  size_t function_count() const { return count_; }
  // Function `i` (< function_count()).
  const Function& function(size_t i) const { return functions_[i]; }
  // The first function with this vendor and device ID, or nullptr.
  const Function* Find(uint16_t vendor_id, uint16_t device_id) const;
  // The enumerated function at `bdf`, or nullptr.
  const Function* FindFunction(const Bdf& bdf) const;
  // The enumerated bridge whose secondary bus is `bus`, or nullptr (also for the root bus).
  const Function* BridgeAbove(uint8_t bus) const;
  // The highest bus number Enumerate() used.
  uint8_t last_bus() const { return last_bus_; }
  const HostBridge& host() const { return host_; }

  // Sets / clears Command.Bus Master Enable (PCI 3.0 6.2.2): the device may issue DMA only
  // while it is set. Enabling also sets it on every bridge above the function (a bridge
  // forwards DMA upstream only then, PCI-to-PCI Bridge 1.2 3.2.5.5); disabling leaves the
  // bridges as they are (others may depend on them). Errors: -ENOENT (no such enumerated
  // function).
  Status EnableBusMaster(const Bdf& bdf);
  Status DisableBusMaster(const Bdf& bdf);

  // Clears / sets Command.Interrupt Disable (PCI 3.0 6.2.2, bit 10): Enumerate() leaves every
  // function's legacy INTx disabled. Errors: -ENOENT (no such enumerated function).
  Status EnableIntx(const Bdf& bdf);
  Status DisableIntx(const Bdf& bdf);

  // The requester ID `bdf`'s DMA carries at the IOMMU: the enumerated function's dma_alias,
  // or `bdf` itself if it is not an enumerated function.
  Bdf DmaRequester(const Bdf& bdf) const;

  // The root-bus device and pin where `bdf`'s INTx `pin` (1..4 = INTA..INTD) arrives, swizzled
  // through every bridge above it (PCI-to-PCI Bridge 1.2 9.1: pin' = (pin - 1 + device) % 4 + 1
  // per level): the inputs of the board's interrupt routing (a devicetree interrupt-map, an
  // ACPI _PRT). A `bdf` that is not enumerated is taken as a root-bus function.
  // Errors: -EINVAL (pin not 1..4).
  struct RootIntx {
    Bdf root;
    uint8_t pin = 0;
  };
  Result<RootIntx> SwizzleIntx(const Bdf& bdf, uint8_t pin) const;

  // The offset of `bdf`'s first capability with ID `id` (PCI 3.0 6.7; 0x10 = PCI Express, 0x05 =
  // MSI, 0x11 = MSI-X), walking at most 48 entries (a longer list is a loop). Errors: -ENOENT
  // (no capability list, or no such capability).
  Result<uint8_t> FindCapability(const Bdf& bdf, uint8_t id) const;

  // Configuration space access through the ConfigSpace given.
  uint32_t ConfigRead32(const Bdf& bdf, size_t offset) const {
    return config_->Read32(bdf, offset);
  }
  uint16_t ConfigRead16(const Bdf& bdf, size_t offset) const {
    return config_->Read16(bdf, offset);
  }
  void ConfigWrite32(const Bdf& bdf, size_t offset, uint32_t value) {
    config_->Write32(bdf, offset, value);
  }
  void ConfigWrite16(const Bdf& bdf, size_t offset, uint16_t value) {
    config_->Write16(bdf, offset, value);
  }

 private:
  // What the bridges above a function allow: nothing (root bus: anything the host has), or
  // 64-bit prefetchable windows all the way up.
  struct Path {
    bool behind_bridge = false;
    bool pref64 = true;
  };

  Status ScanBus(uint8_t bus, int16_t upstream, uint8_t depth, bool only_device0, uint8_t limit,
                 Path path);
  Result<size_t> ProbeFunction(const Bdf& bdf, int16_t upstream, uint8_t depth, Path path);
  Status ConfigureBridge(size_t index, uint8_t limit, Path path);
  void ProgramWindows(Function& b, uint64_t mem_start, uint64_t pref_start);
  Status AssignBars(Function& f, Path path);
  Result<uint64_t> AllocateBar(uint64_t size, bool is64, bool prefetchable, Path path);
  Bdf DmaAlias(const Function& f) const;
  uint64_t BusAddress(uint64_t cpu_addr) const;
  uint64_t CpuAddress(uint64_t bus_addr) const;
  void ReadWindows(Function& b) const;

  HostBridge host_;
  ConfigSpace* config_;
  Function functions_[kMaxFunctions];
  size_t count_ = 0;
  uint64_t next_mem32_ = 0;  // next free CPU address in each window
  uint64_t next_mem64_ = 0;
  unsigned next_bus_ = 0;  // next bus number to give a bridge
  uint8_t last_bus_ = 0;
};

}  // namespace deviso::pci

#endif  // DEVISO_SRC_PCI_PCI_H_
