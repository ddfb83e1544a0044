// ECAM enumeration, bus numbering, BAR and bridge window assignment (see pci.h). Section
// numbers: PCI Local Bus 3.0 unless said otherwise; "Bridge" is PCI-to-PCI Bridge 1.2.

#include "pci/pci.h"

namespace deviso::pci {
namespace {

// 6.1 Type 0/1 configuration header offsets.
constexpr size_t kVendorId = 0x00;
constexpr size_t kCommand = 0x04;
constexpr size_t kClassRevision = 0x08;
constexpr size_t kStatus = 0x06;
constexpr size_t kHeaderType = 0x0e;
constexpr size_t kBar0 = 0x10;
constexpr size_t kCapabilitiesPointer = 0x34;
constexpr size_t kInterruptPin = 0x3d;

// Bridge 3.2 type 1 header.
constexpr size_t kBusNumbers = 0x18;       // primary [7:0], secondary [15:8], subordinate [23:16]
constexpr size_t kIoBaseLimit = 0x1c;      // I/O base [7:0], I/O limit [15:8] (16-bit access:
                                           // Secondary Status above is RW1C)
constexpr size_t kMemoryBaseLimit = 0x20;  // base [15:0], limit [31:16]; bits [15:4] = A[31:20]
constexpr size_t kPrefBaseLimit = 0x24;    // the same, [3:0] = 1: 64-bit capable
constexpr size_t kPrefBaseUpper = 0x28;    // A[63:32] of the prefetchable base
constexpr size_t kPrefLimitUpper = 0x2c;   // A[63:32] of the prefetchable limit

// 6.2.3 Status register; 6.7 capability list; PCIe 4.0 7.5.3 PCI Express Capability.
constexpr uint16_t kStatusCapabilities = 1U << 4;
constexpr uint8_t kCapIdPcie = 0x10;
constexpr unsigned kMaxCapabilities = 48;  // (256 - 64) / 4: a longer list is a loop

// 6.2.2 Command register.
constexpr uint16_t kCommandMemory = 1U << 1;
constexpr uint16_t kCommandBusMaster = 1U << 2;
constexpr uint16_t kCommandIntxDisable = 1U << 10;

// 6.2.5.1 Base Address Registers.
constexpr uint32_t kBarIo = 1U << 0;
constexpr uint32_t kBarTypeMask = 3U << 1;
constexpr uint32_t kBarType64 = 2U << 1;
constexpr uint32_t kBarPrefetchable = 1U << 3;
constexpr uint32_t kBarMemAddrMask = ~0xfU;

constexpr uint8_t kHeaderMultiFunction = 0x80;

uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

bool InWindow(const Window& w, uint64_t cpu_addr) {
  return w.present && cpu_addr >= w.cpu_addr && cpu_addr - w.cpu_addr < w.size;
}

}  // namespace

uintptr_t Ecam::Address(const Bdf& bdf, size_t offset) const {
  return base_ + (static_cast<uintptr_t>(bdf.bus - bus_start_) << 20) +
         (static_cast<uintptr_t>(bdf.device) << 15) + (static_cast<uintptr_t>(bdf.function) << 12) +
         offset;
}

bool Ecam::Contains(const Bdf& bdf) const {
  return base_ != 0 && bdf.bus >= bus_start_ && bdf.bus <= bus_end_ && bdf.device < 32 &&
         bdf.function < 8;
}

uint32_t Ecam::Read32(const Bdf& bdf, size_t offset) const {
  if (!Contains(bdf)) return 0xffffffff;
  return *reinterpret_cast<volatile uint32_t*>(Address(bdf, offset));
}
uint16_t Ecam::Read16(const Bdf& bdf, size_t offset) const {
  if (!Contains(bdf)) return 0xffff;
  return *reinterpret_cast<volatile uint16_t*>(Address(bdf, offset));
}
void Ecam::Write32(const Bdf& bdf, size_t offset, uint32_t value) {
  if (!Contains(bdf)) return;
  *reinterpret_cast<volatile uint32_t*>(Address(bdf, offset)) = value;
}
void Ecam::Write16(const Bdf& bdf, size_t offset, uint16_t value) {
  if (!Contains(bdf)) return;
  *reinterpret_cast<volatile uint16_t*>(Address(bdf, offset)) = value;
}

uint64_t Topology::BusAddress(uint64_t cpu_addr) const {
  // The BAR or window register holds the PCI bus address: the CPU address translated through
  // the host bridge's window (`ranges`).
  const Window& w = InWindow(host_.mem32, cpu_addr) ? host_.mem32 : host_.mem64;
  return cpu_addr - w.cpu_addr + w.pci_addr;
}

uint64_t Topology::CpuAddress(uint64_t bus_addr) const {
  // The inverse of BusAddress(): through the window holding it on the bus side; an address in
  // no window is taken as identity-mapped (x86: CPU and PCI memory addresses are the same).
  for (const Window* w : {&host_.mem32, &host_.mem64}) {
    if (w->present && bus_addr >= w->pci_addr && bus_addr - w->pci_addr < w->size) {
      return bus_addr - w->pci_addr + w->cpu_addr;
    }
  }
  return bus_addr;
}

void Topology::ReadWindows(Function& b) const {
  const Bdf& bdf = b.bdf;
  // Bridge 3.2.5.8: Memory Base/Limit [15:4] = A[31:20]; the limit's low 20 bits are all ones.
  const uint32_t mem = ConfigRead32(bdf, kMemoryBaseLimit);
  const uint64_t mem_base = uint64_t{mem & 0xfff0} << 16;
  const uint64_t mem_limit = uint64_t{mem & 0xfff00000} | 0xfffff;
  b.bridge.mem = {mem_base <= mem_limit, 0, 0};
  if (b.bridge.mem.enabled) {
    b.bridge.mem.base = CpuAddress(mem_base);
    b.bridge.mem.limit = CpuAddress(mem_limit);
  }
  // 3.2.5.9-10: the prefetchable window, upper halves when [3:0] = 1.
  const uint32_t pref = ConfigRead32(bdf, kPrefBaseLimit);
  b.bridge.pref_implemented = pref != 0;
  b.bridge.pref_64bit = (pref & 0xf) == 1;
  uint64_t pref_base = uint64_t{pref & 0xfff0} << 16;
  uint64_t pref_limit = uint64_t{pref & 0xfff00000} | 0xfffff;
  if (b.bridge.pref_64bit) {
    pref_base |= uint64_t{ConfigRead32(bdf, kPrefBaseUpper)} << 32;
    pref_limit |= uint64_t{ConfigRead32(bdf, kPrefLimitUpper)} << 32;
  }
  b.bridge.pref = {b.bridge.pref_implemented && pref_base <= pref_limit, 0, 0};
  if (b.bridge.pref.enabled) {
    b.bridge.pref.base = CpuAddress(pref_base);
    b.bridge.pref.limit = CpuAddress(pref_limit);
  }
}

Result<uint64_t> Topology::AllocateBar(uint64_t size, bool is64, bool prefetchable, Path path) {
  // BARs are naturally aligned to their size (6.2.5.1). The 32-bit window first: every
  // bridge's non-prefetchable window can forward it.
  if (host_.mem32.present) {
    const uint64_t addr = AlignUp(next_mem32_, size);
    if (addr + size <= host_.mem32.cpu_addr + host_.mem32.size) {
      next_mem32_ = addr + size;
      return addr;
    }
  }
  // The 64-bit window: from the root bus any 64-bit BAR; behind bridges only through
  // prefetchable windows (non-prefetchable ones are 32-bit, Bridge 3.2.5.8), so only
  // prefetchable BARs, and only if every bridge above has a 64-bit prefetchable window.
  const bool reachable = !path.behind_bridge || (prefetchable && path.pref64);
  if (is64 && reachable && host_.mem64.present) {
    const uint64_t addr = AlignUp(next_mem64_, size);
    if (addr + size <= host_.mem64.cpu_addr + host_.mem64.size) {
      next_mem64_ = addr + size;
      return addr;
    }
  }
  return Status::NoMemory();
}

Status Topology::AssignBars(Function& f, Path path) {
  const unsigned bar_count = f.header_type == 0 ? 6 : 2;  // type 1 headers have two BARs
  for (unsigned i = 0; i < bar_count; ++i) {
    const size_t off = kBar0 + size_t{4} * i;
    const uint32_t original = ConfigRead32(f.bdf, off);
    Bar& bar = f.bars[i];
    if ((original & kBarIo) != 0) {
      // Size it for the report, but leave it unassigned: I/O decoding stays off.
      ConfigWrite32(f.bdf, off, 0xffffffff);
      const uint32_t mask = ConfigRead32(f.bdf, off) & ~0x3U;
      ConfigWrite32(f.bdf, off, original);
      bar.is_io = true;
      bar.size = mask != 0 ? (~mask + 1) & 0xffff : 0;
      continue;
    }
    const bool is64 = (original & kBarTypeMask) == kBarType64 && i + 1 < bar_count;
    const uint32_t original_high = is64 ? ConfigRead32(f.bdf, off + 4) : 0;
    // Sizing (6.2.5.1): write all ones, read back the writable bits. Memory decoding is off.
    ConfigWrite32(f.bdf, off, 0xffffffff);
    uint64_t mask = ConfigRead32(f.bdf, off) & kBarMemAddrMask;
    if (is64) {
      ConfigWrite32(f.bdf, off + 4, 0xffffffff);
      mask |= uint64_t{ConfigRead32(f.bdf, off + 4)} << 32;
    } else if (mask != 0) {
      mask |= 0xffffffff00000000ULL;
    }
    if (mask == 0) {
      ConfigWrite32(f.bdf, off, original);
      if (is64) {
        ConfigWrite32(f.bdf, off + 4, original_high);
        ++i;
      }
      continue;  // not implemented
    }
    bar.size = ~mask + 1;
    bar.is_64bit = is64;
    bar.prefetchable = (original & kBarPrefetchable) != 0;
    if (host_.keep_firmware_resources) {
      // Firmware's address back in place; 0 means firmware left it unassigned.
      ConfigWrite32(f.bdf, off, original);
      uint64_t bus_addr = original & kBarMemAddrMask;
      if (is64) {
        ConfigWrite32(f.bdf, off + 4, original_high);
        bus_addr |= uint64_t{original_high} << 32;
        ++i;
      }
      bar.cpu_addr = bus_addr != 0 ? CpuAddress(bus_addr) : 0;
      continue;
    }
    DEVISO_ASSIGN_OR_RETURN(const uint64_t cpu_addr,
                            AllocateBar(bar.size, is64, bar.prefetchable, path));
    const uint64_t bus_addr = BusAddress(cpu_addr);
    ConfigWrite32(f.bdf, off, static_cast<uint32_t>(bus_addr) | (original & 0xf));
    if (is64) {
      ConfigWrite32(f.bdf, off + 4, static_cast<uint32_t>(bus_addr >> 32));
      ++i;  // the upper half is the next BAR slot
    }
    bar.cpu_addr = cpu_addr;
  }
  return Status::Ok();
}

Result<uint8_t> Topology::FindCapability(const Bdf& bdf, uint8_t id) const {
  if ((ConfigRead16(bdf, kStatus) & kStatusCapabilities) == 0) return Status::NotFound();
  // 6.7: a list of (ID, next) pairs from the Capabilities Pointer; the low two bits of each
  // pointer are reserved; capabilities live above the 64-byte header.
  uint8_t ptr = static_cast<uint8_t>(ConfigRead32(bdf, kCapabilitiesPointer)) & 0xfc;
  for (unsigned n = 0; ptr >= 0x40 && n < kMaxCapabilities; ++n) {
    const uint32_t header = ConfigRead32(bdf, ptr);
    if ((header & 0xff) == id) {
      return ptr;
    }
    ptr = static_cast<uint8_t>(header >> 8) & 0xfc;
  }
  return Status::NotFound();
}

Bdf Topology::DmaAlias(const Function& f) const {
  // Walk up from the function: a PCIe-to-PCI bridge takes ownership of the transactions it
  // forwards with (its secondary bus, device 0, function 0) (PCIe-to-PCI/PCI-X Bridge 1.0,
  // 2.3); a conventional PCI-PCI bridge's forwarded DMA carries no requester ID of the device
  // behind it and is seen as the bridge's own (Linux's pci_for_each_dma_alias and QEMU's
  // pci_device_get_iommu_bus_devfn agree). PCIe ports pass requester IDs unchanged.
  Bdf alias = f.bdf;
  for (int16_t up = f.upstream; up >= 0; up = functions_[up].upstream) {
    const Function& b = functions_[up];
    if (b.pcie_type == PortType::kPcieToPciBridge) {
      alias = Bdf{b.bridge.secondary, 0, 0};
    } else if (b.pcie_type == PortType::kNotPcie) {
      alias = b.bdf;
    }
  }
  return alias;
}

Result<size_t> Topology::ProbeFunction(const Bdf& bdf, int16_t upstream, uint8_t depth, Path path) {
  if (count_ == kMaxFunctions) {
    return Status::OutOfRange();
  }
  const size_t index = count_;
  Function& f = functions_[index];
  f = Function{};
  f.bdf = bdf;
  f.upstream = upstream;
  f.depth = depth;
  const uint32_t id = ConfigRead32(bdf, kVendorId);
  f.vendor_id = static_cast<uint16_t>(id);
  f.device_id = static_cast<uint16_t>(id >> 16);
  f.class_code = ConfigRead32(bdf, kClassRevision) >> 8;
  f.header_type = static_cast<uint8_t>((ConfigRead32(bdf, kHeaderType & ~3U) >> 16) & 0x7f);
  f.interrupt_pin = static_cast<uint8_t>(ConfigRead32(bdf, kInterruptPin & ~3U) >> 8);
  if (const Result<uint8_t> cap = FindCapability(bdf, kCapIdPcie); cap.ok()) {
    // PCIe 4.0 7.5.3.2: PCI Express Capabilities register [7:4] Device/Port Type.
    f.pcie_capability = *cap;
    f.pcie_type = static_cast<PortType>((ConfigRead32(bdf, *cap) >> 20) & 0xf);
  }
  f.dma_alias = DmaAlias(f);
  ++count_;

  // Decoding and DMA off while the BARs change; INTx off too (the drivers poll).
  ConfigWrite16(bdf, kCommand, kCommandIntxDisable);
  if (f.header_type > 1) {
    return index;  // CardBus: not supported, left disabled
  }
  DEVISO_TRY(AssignBars(f, path));
  // Memory decoding on; I/O off; Bus Master off: EnableBusMaster() is the caller's decision.
  // (A bridge's decoding also opens its windows: ConfigureBridge turns it on once they are
  // programmed.)
  if (f.header_type == 0) {
    ConfigWrite16(bdf, kCommand, kCommandMemory | kCommandIntxDisable);
  }
  return index;
}

void Topology::ProgramWindows(Function& b, uint64_t mem_start, uint64_t pref_start) {
  const Bdf& bdf = b.bdf;
  // Bridge 3.2.5.8: Memory Base/Limit [15:4] = A[31:20]; the limit's low 20 bits are all ones.
  // A base above the limit closes the window.
  const uint64_t mem_end = AlignUp(next_mem32_, kBridgeWindowGranule);
  next_mem32_ = mem_end;
  if (mem_end > mem_start) {
    const uint64_t base = BusAddress(mem_start);
    const uint64_t limit = BusAddress(mem_end - 1);
    ConfigWrite32(bdf, kMemoryBaseLimit,
                  static_cast<uint32_t>(((base >> 16) & 0xfff0) | ((limit & 0xfff00000))));
    b.bridge.mem = {true, mem_start, mem_end - 1};
  } else {
    ConfigWrite32(bdf, kMemoryBaseLimit, 0x0000fff0);
    b.bridge.mem = {};
  }
  // Bridge 3.2.5.9-10: the prefetchable window, with the upper halves when 64-bit.
  if (!b.bridge.pref_implemented) return;
  const uint64_t pref_end = AlignUp(next_mem64_, kBridgeWindowGranule);
  next_mem64_ = pref_end;
  const uint32_t type = b.bridge.pref_64bit ? 1 : 0;
  if (pref_end > pref_start) {
    const uint64_t base = BusAddress(pref_start);
    const uint64_t limit = BusAddress(pref_end - 1);
    if (b.bridge.pref_64bit) {
      ConfigWrite32(bdf, kPrefBaseUpper, static_cast<uint32_t>(base >> 32));
      ConfigWrite32(bdf, kPrefLimitUpper, static_cast<uint32_t>(limit >> 32));
    }
    ConfigWrite32(bdf, kPrefBaseLimit,
                  static_cast<uint32_t>(((base >> 16) & 0xfff0) | type |
                                        ((limit & 0xfff00000) | (type << 16))));
    b.bridge.pref = {true, pref_start, pref_end - 1};
  } else {
    if (b.bridge.pref_64bit) {
      ConfigWrite32(bdf, kPrefBaseUpper, 0);
      ConfigWrite32(bdf, kPrefLimitUpper, 0);
    }
    ConfigWrite32(bdf, kPrefBaseLimit, 0x0000fff0);
    b.bridge.pref = {};
  }
}

Status Topology::ConfigureBridge(size_t index, uint8_t limit, Path path) {
  Function& b = functions_[index];
  const Bdf bdf = b.bdf;
  // Forwarding off while it changes (ProbeFunction left decoding and bus mastering off).
  // Bridge 3.2.5.2-4: keep the bus numbers firmware gave, when they fit what is numbered so
  // far; otherwise number it: secondary = the next free bus, subordinate = `limit` while its
  // subtree is scanned (every configuration cycle below reaches it), then the highest bus found.
  const uint32_t buses = ConfigRead32(bdf, kBusNumbers);
  const unsigned primary = buses & 0xff;
  const unsigned secondary = (buses >> 8) & 0xff;
  const unsigned subordinate = (buses >> 16) & 0xff;
  const bool keep = primary == bdf.bus && secondary > bdf.bus && secondary >= next_bus_ &&
                    subordinate >= secondary && subordinate <= limit;
  uint8_t sec = 0;
  uint8_t sub_limit = limit;
  if (keep) {
    sec = static_cast<uint8_t>(secondary);
    sub_limit = static_cast<uint8_t>(subordinate);
    b.bridge.firmware_numbered = true;
  } else {
    if (next_bus_ > limit) return Status::OutOfRange();
    sec = static_cast<uint8_t>(next_bus_);
    ConfigWrite32(bdf, kBusNumbers,
                  (buses & 0xff000000) | (uint32_t{limit} << 16) | (uint32_t{sec} << 8) | bdf.bus);
  }
  b.bridge.secondary = sec;
  next_bus_ = sec + 1U;
  if (sec > last_bus_) last_bus_ = sec;

  const bool firmware = host_.keep_firmware_resources;
  if (firmware) {
    // Firmware's windows stay as they are (Bridge 3.2.5.8-10); a prefetchable window register
    // that reads 0 is taken as absent (not probed: probing would change it).
    ReadWindows(b);
  } else {
    // I/O window closed (base 0xf000 > limit 0x0fff); I/O decoding stays off anyway.
    ConfigWrite16(bdf, kIoBaseLimit, 0x00f0);
    // The prefetchable window is optional (reads 0 if absent); [3:0] = 1: 64-bit capable.
    ConfigWrite32(bdf, kPrefBaseLimit, 0xfff0fff0);
    const uint32_t pref = ConfigRead32(bdf, kPrefBaseLimit);
    b.bridge.pref_implemented = pref != 0;
    b.bridge.pref_64bit = (pref & 0xf) == 1;
  }

  // Everything its subtree gets from here on lies in its windows: start them on a granule.
  next_mem32_ = AlignUp(next_mem32_, kBridgeWindowGranule);
  next_mem64_ = AlignUp(next_mem64_, kBridgeWindowGranule);
  const uint64_t mem_start = next_mem32_;
  const uint64_t pref_start = next_mem64_;
  Path below;
  below.behind_bridge = true;
  below.pref64 = path.pref64 && b.bridge.pref_64bit;
  const bool one_device =
      b.pcie_type == PortType::kRootPort || b.pcie_type == PortType::kDownstreamPort;
  const Status scanned = ScanBus(sec, static_cast<int16_t>(index),
                                 static_cast<uint8_t>(b.depth + 1), one_device, sub_limit, below);
  // The highest bus below it (next_bus_ - 1), or firmware's.
  const uint8_t sub = keep ? sub_limit : static_cast<uint8_t>(next_bus_ - 1);
  if (keep) {
    if (next_bus_ < sub_limit + 1U) next_bus_ = sub_limit + 1U;
  } else {
    ConfigWrite32(bdf, kBusNumbers,
                  (ConfigRead32(bdf, kBusNumbers) & 0xff00ffff) | (uint32_t{sub} << 16));
  }
  b.bridge.subordinate = sub;
  if (sub > last_bus_) last_bus_ = sub;
  if (!firmware) ProgramWindows(b, mem_start, pref_start);
  // Forward memory transactions downstream (Command.Memory Space, Bridge 3.2.5.5); bus
  // mastering (upstream DMA) waits for EnableBusMaster() of a function below.
  ConfigWrite16(bdf, kCommand, kCommandMemory | kCommandIntxDisable);
  return scanned;
}

Status Topology::ScanBus(uint8_t bus, int16_t upstream, uint8_t depth, bool only_device0,
                         uint8_t limit, Path path) {
  const uint8_t devices = only_device0 ? 1 : 32;
  for (uint8_t dev = 0; dev < devices; ++dev) {
    for (uint8_t fn = 0; fn < 8; ++fn) {
      const Bdf bdf{bus, dev, fn};
      const uint16_t vendor = ConfigRead16(bdf, kVendorId);
      if (vendor == 0xffff) {
        if (fn == 0) {
          break;  // no device
        }
        continue;
      }
      const uint8_t header = static_cast<uint8_t>(ConfigRead32(bdf, kHeaderType & ~3U) >> 16);
      DEVISO_ASSIGN_OR_RETURN(const size_t index, ProbeFunction(bdf, upstream, depth, path));
      if ((header & 0x7f) == 1) {
        DEVISO_TRY(ConfigureBridge(index, limit, path));
      }
      if (fn == 0 && (header & kHeaderMultiFunction) == 0) {
        break;
      }
    }
  }
  return Status::Ok();
}

Status Topology::Enumerate() {
  count_ = 0;
  next_mem32_ = host_.mem32.cpu_addr;
  next_mem64_ = host_.mem64.cpu_addr;
  next_bus_ = host_.bus_start + 1U;
  last_bus_ = host_.bus_start;
  return ScanBus(host_.bus_start, -1, 0, false, host_.bus_end, Path{});
}

const Function* Topology::Find(uint16_t vendor_id, uint16_t device_id) const {
  for (size_t i = 0; i < count_; ++i) {
    if (functions_[i].vendor_id == vendor_id && functions_[i].device_id == device_id) {
      return &functions_[i];
    }
  }
  return nullptr;
}

const Function* Topology::FindFunction(const Bdf& bdf) const {
  for (size_t i = 0; i < count_; ++i) {
    if (functions_[i].bdf == bdf) {
      return &functions_[i];
    }
  }
  return nullptr;
}

const Function* Topology::BridgeAbove(uint8_t bus) const {
  for (size_t i = 0; i < count_; ++i) {
    if (functions_[i].header_type == 1 && functions_[i].bridge.secondary == bus) {
      return &functions_[i];
    }
  }
  return nullptr;
}

Status Topology::EnableBusMaster(const Bdf& bdf) {
  const Function* f = FindFunction(bdf);
  if (f == nullptr) {
    return Status::NotFound();
  }
  // The bridges first, top-down, so that the path is open before the device may start.
  int16_t chain[kMaxFunctions];
  size_t n = 0;
  for (int16_t up = f->upstream; up >= 0 && n < kMaxFunctions; up = functions_[up].upstream) {
    chain[n++] = up;
  }
  while (n > 0) {
    const Bdf& b = functions_[chain[--n]].bdf;
    ConfigWrite16(b, kCommand, ConfigRead16(b, kCommand) | kCommandBusMaster);
  }
  ConfigWrite16(bdf, kCommand, ConfigRead16(bdf, kCommand) | kCommandBusMaster);
  return Status::Ok();
}

Status Topology::DisableBusMaster(const Bdf& bdf) {
  if (FindFunction(bdf) == nullptr) {
    return Status::NotFound();
  }
  ConfigWrite16(bdf, kCommand,
                static_cast<uint16_t>(ConfigRead16(bdf, kCommand) & ~kCommandBusMaster));
  return Status::Ok();
}

Status Topology::EnableIntx(const Bdf& bdf) {
  if (FindFunction(bdf) == nullptr) {
    return Status::NotFound();
  }
  ConfigWrite16(bdf, kCommand,
                static_cast<uint16_t>(ConfigRead16(bdf, kCommand) & ~kCommandIntxDisable));
  return Status::Ok();
}

Status Topology::DisableIntx(const Bdf& bdf) {
  if (FindFunction(bdf) == nullptr) {
    return Status::NotFound();
  }
  ConfigWrite16(bdf, kCommand, ConfigRead16(bdf, kCommand) | kCommandIntxDisable);
  return Status::Ok();
}

Bdf Topology::DmaRequester(const Bdf& bdf) const {
  const Function* f = FindFunction(bdf);
  return f != nullptr ? f->dma_alias : bdf;
}

Result<Topology::RootIntx> Topology::SwizzleIntx(const Bdf& bdf, uint8_t pin) const {
  if (pin < 1 || pin > 4) {
    return Status::InvalidArgument();
  }
  // Bridge 9.1: each bridge maps a device's pin by its device number on the bus below.
  RootIntx out{bdf, pin};
  const Function* f = FindFunction(bdf);
  while (f != nullptr && f->upstream >= 0) {
    out.pin = static_cast<uint8_t>((out.pin - 1U + f->bdf.device) % 4 + 1);
    f = &functions_[f->upstream];
    out.root = f->bdf;
  }
  return out;
}

}  // namespace deviso::pci
