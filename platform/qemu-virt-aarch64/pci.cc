// ECAM enumeration and BAR assignment (see pci.h). Section numbers: PCI Local Bus 3.0.

#include "pci.h"

namespace deviso::qemu_virt {
namespace {

// 6.1 Type 0/1 configuration header offsets.
constexpr size_t kVendorId = 0x00;
constexpr size_t kCommand = 0x04;
constexpr size_t kClassRevision = 0x08;
constexpr size_t kHeaderType = 0x0e;
constexpr size_t kBar0 = 0x10;
constexpr size_t kInterruptPin = 0x3d;

// 6.2.2 Command register.
constexpr uint16_t kCommandIo = 1U << 0;
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

}  // namespace

uintptr_t PciHost::ConfigAddress(const Bdf& bdf, size_t offset) const {
  return static_cast<uintptr_t>(info_.ecam.base) +
         (static_cast<uintptr_t>(bdf.bus - info_.bus_start) << 20) +
         (static_cast<uintptr_t>(bdf.device) << 15) + (static_cast<uintptr_t>(bdf.function) << 12) +
         offset;
}

uint32_t PciHost::ConfigRead32(const Bdf& bdf, size_t offset) const {
  return *reinterpret_cast<volatile uint32_t*>(ConfigAddress(bdf, offset));
}
uint16_t PciHost::ConfigRead16(const Bdf& bdf, size_t offset) const {
  return *reinterpret_cast<volatile uint16_t*>(ConfigAddress(bdf, offset));
}
void PciHost::ConfigWrite32(const Bdf& bdf, size_t offset, uint32_t value) {
  *reinterpret_cast<volatile uint32_t*>(ConfigAddress(bdf, offset)) = value;
}
void PciHost::ConfigWrite16(const Bdf& bdf, size_t offset, uint16_t value) {
  *reinterpret_cast<volatile uint16_t*>(ConfigAddress(bdf, offset)) = value;
}

Result<uint64_t> PciHost::AllocateWindow(uint64_t size, bool allow_64bit) {
  // BARs are naturally aligned to their size (6.2.5.1).
  if (info_.mem32.present) {
    const uint64_t addr = AlignUp(next_mem32_, size);
    if (addr + size <= info_.mem32.cpu_addr + info_.mem32.size) {
      next_mem32_ = addr + size;
      return addr;
    }
  }
  if (allow_64bit && info_.mem64.present) {
    const uint64_t addr = AlignUp(next_mem64_, size);
    if (addr + size <= info_.mem64.cpu_addr + info_.mem64.size) {
      next_mem64_ = addr + size;
      return addr;
    }
  }
  return Status::NoMemory();
}

Status PciHost::AssignBars(PciFunction& f) {
  const unsigned bar_count = f.header_type == 0 ? 6 : 2;  // type 1 headers have two BARs
  for (unsigned i = 0; i < bar_count; ++i) {
    const size_t off = kBar0 + 4 * i;
    const uint32_t original = ConfigRead32(f.bdf, off);
    PciBar& bar = f.bars[i];
    if ((original & kBarIo) != 0) {
      // Size it for the report, but leave it unassigned: I/O decoding stays off.
      ConfigWrite32(f.bdf, off, 0xffffffff);
      const uint32_t mask = ConfigRead32(f.bdf, off) & ~0x3U;
      ConfigWrite32(f.bdf, off, original);
      bar.is_io = true;
      bar.size = mask != 0 ? (~mask + 1) & 0xffff : 0;
      continue;
    }
    const bool is64 = (original & kBarTypeMask) == kBarType64;
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
        ++i;
      }
      continue;  // not implemented
    }
    bar.size = ~mask + 1;
    bar.is_64bit = is64;
    bar.prefetchable = (original & kBarPrefetchable) != 0;
    DEVISO_ASSIGN_OR_RETURN(const uint64_t cpu_addr, AllocateWindow(bar.size, is64));
    // The BAR holds the PCI bus address: CPU address translated through the window.
    const PciWindow& w = info_.mem32.present && cpu_addr >= info_.mem32.cpu_addr &&
                                 cpu_addr < info_.mem32.cpu_addr + info_.mem32.size
                             ? info_.mem32
                             : info_.mem64;
    const uint64_t bus_addr = cpu_addr - w.cpu_addr + w.pci_addr;
    ConfigWrite32(f.bdf, off, static_cast<uint32_t>(bus_addr) | (original & 0xf));
    if (is64) {
      ConfigWrite32(f.bdf, off + 4, static_cast<uint32_t>(bus_addr >> 32));
      ++i;  // the upper half is the next BAR slot
    }
    bar.cpu_addr = cpu_addr;
  }
  return Status::Ok();
}

Status PciHost::ProbeFunction(const Bdf& bdf) {
  if (count_ == kMaxFunctions) {
    return Status::OutOfRange();
  }
  PciFunction& f = functions_[count_];
  f = PciFunction{};
  f.bdf = bdf;
  const uint32_t id = ConfigRead32(bdf, kVendorId);
  f.vendor_id = static_cast<uint16_t>(id);
  f.device_id = static_cast<uint16_t>(id >> 16);
  f.class_code = ConfigRead32(bdf, kClassRevision) >> 8;
  f.header_type = static_cast<uint8_t>((ConfigRead32(bdf, kHeaderType & ~3U) >> 16) & 0x7f);
  f.interrupt_pin = static_cast<uint8_t>(ConfigRead32(bdf, kInterruptPin & ~3U) >> 8);
  ++count_;

  // Decoding and DMA off while the BARs change; INTx off too (the drivers poll).
  ConfigWrite16(bdf, kCommand, kCommandIntxDisable);
  if (f.header_type > 1) {
    return Status::Ok();  // CardBus: not supported, left disabled
  }
  DEVISO_TRY(AssignBars(f));
  // Memory decoding on; I/O off; Bus Master off: EnableBusMaster() is the caller's decision.
  ConfigWrite16(bdf, kCommand, kCommandMemory | kCommandIntxDisable);
  return Status::Ok();
}

Status PciHost::Enumerate() {
  if (!info_.present) {
    return Status::NotSupported();
  }
  count_ = 0;
  next_mem32_ = info_.mem32.cpu_addr;
  next_mem64_ = info_.mem64.cpu_addr;
  const uint8_t bus = info_.bus_start;
  for (uint8_t dev = 0; dev < 32; ++dev) {
    for (uint8_t fn = 0; fn < 8; ++fn) {
      const Bdf bdf{bus, dev, fn};
      const uint16_t vendor = ConfigRead16(bdf, kVendorId);
      if (vendor == 0xffff) {
        if (fn == 0) {
          break;  // no device
        }
        continue;
      }
      DEVISO_TRY(ProbeFunction(bdf));
      const uint8_t header = static_cast<uint8_t>(ConfigRead32(bdf, kHeaderType & ~3U) >> 16);
      if (fn == 0 && (header & kHeaderMultiFunction) == 0) {
        break;
      }
    }
  }
  return Status::Ok();
}

const PciFunction* PciHost::Find(uint16_t vendor_id, uint16_t device_id) const {
  for (size_t i = 0; i < count_; ++i) {
    if (functions_[i].vendor_id == vendor_id && functions_[i].device_id == device_id) {
      return &functions_[i];
    }
  }
  return nullptr;
}

const PciFunction* PciHost::FindFunction(const Bdf& bdf) const {
  for (size_t i = 0; i < count_; ++i) {
    if (functions_[i].bdf == bdf) {
      return &functions_[i];
    }
  }
  return nullptr;
}

PciFunction* PciHost::FindFunction(const Bdf& bdf) {
  for (size_t i = 0; i < count_; ++i) {
    if (functions_[i].bdf == bdf) {
      return &functions_[i];
    }
  }
  return nullptr;
}

Status PciHost::EnableBusMaster(const Bdf& bdf) {
  if (FindFunction(bdf) == nullptr) {
    return Status::NotFound();
  }
  ConfigWrite16(bdf, kCommand, ConfigRead16(bdf, kCommand) | kCommandBusMaster);
  return Status::Ok();
}

Status PciHost::DisableBusMaster(const Bdf& bdf) {
  if (FindFunction(bdf) == nullptr) {
    return Status::NotFound();
  }
  ConfigWrite16(bdf, kCommand,
                static_cast<uint16_t>(ConfigRead16(bdf, kCommand) & ~kCommandBusMaster));
  return Status::Ok();
}

Status PciHost::EnableIntx(const Bdf& bdf) {
  if (FindFunction(bdf) == nullptr) {
    return Status::NotFound();
  }
  ConfigWrite16(bdf, kCommand,
                static_cast<uint16_t>(ConfigRead16(bdf, kCommand) & ~kCommandIntxDisable));
  return Status::Ok();
}

Status PciHost::DisableIntx(const Bdf& bdf) {
  if (FindFunction(bdf) == nullptr) {
    return Status::NotFound();
  }
  ConfigWrite16(bdf, kCommand, ConfigRead16(bdf, kCommand) | kCommandIntxDisable);
  return Status::Ok();
}

Result<uint32_t> PciHost::StreamId(const Bdf& bdf, uint32_t iommu_phandle) const {
  // of_map_id() with a target, as src/dt applies it (docs/devicetree.md).
  dt::IommuMap map;
  map.present = info_.iommu_map_count != 0;
  map.mask = info_.iommu_map_mask;
  for (size_t i = 0; i < info_.iommu_map_count; ++i) {
    const IommuMapEntry& e = info_.iommu_map[i];
    map.ranges[i] = {e.rid_base, e.iommu_phandle, e.sid_base, e.length};
  }
  map.count = info_.iommu_map_count;
  return map.Map(bdf.rid(), iommu_phandle);
}

Result<IrqSpec> PciHost::IntxIrq(const Bdf& bdf) const {
  const PciFunction* f = FindFunction(bdf);
  if (f == nullptr || f->interrupt_pin == 0) {
    return Status::NotFound();
  }
  return IntxIrq(bdf, f->interrupt_pin);
}

Result<IrqSpec> PciHost::IntxIrq(const Bdf& bdf, uint8_t pin) const {
  if (!info_.intx_map.present) {
    return Status::NotSupported();
  }
  DEVISO_ASSIGN_OR_RETURN(const dt::Interrupt irq, info_.intx_map.LookupPci(bdf.rid(), pin));
  DEVISO_ASSIGN_OR_RETURN(const dt::GicInterrupt gic, dt::DecodeGic(irq));
  IrqSpec spec;
  spec.valid = true;
  spec.intid = gic.intid;
  spec.edge = gic.edge;
  return spec;
}

}  // namespace deviso::qemu_virt
