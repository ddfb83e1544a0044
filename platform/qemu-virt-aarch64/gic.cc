// GICv2 / GICv3 driver (see gic.h). Register names and offsets are the specification's; every
// wait for the GIC has a deadline.

#include "gic.h"

#include "arch.h"
#include "deviso/port/os.h"
#include "exceptions.h"

namespace deviso::qemu_virt {
namespace {

constexpr uint32_t kMaxIntid = 1020;  // 1020-1023 are special (spurious)
constexpr uint32_t kFirstPpi = 16;
constexpr uint32_t kFirstSpi = 32;
constexpr uint32_t kFirstLpi = 8192;  // IHI0069 2.2.1: LPIs are INTIDs 8192 and up
constexpr uint8_t kPriority = 0xa0;
constexpr uint8_t kPriorityMask = 0xf0;  // everything with a higher priority (lower value) passes
constexpr uint64_t kTimeoutNs = 100'000'000;

// Distributor registers, common to v2 (IHI0048B 4.3) and v3 (IHI0069 12.9).
namespace gicd {
constexpr size_t kCtlr = 0x0000;
constexpr size_t kTyper = 0x0004;
constexpr size_t kIgroupr = 0x0080;    // 1 bit per INTID
constexpr size_t kIsenabler = 0x0100;  // 1 bit per INTID, write 1 to enable
constexpr size_t kIcenabler = 0x0180;  // write 1 to disable
constexpr size_t kIspendr = 0x0200;
constexpr size_t kIcpendr = 0x0280;
constexpr size_t kIcactiver = 0x0380;
constexpr size_t kIpriorityr = 0x0400;  // 1 byte per INTID
constexpr size_t kItargetsr = 0x0800;   // v2 only: 1 byte per INTID, CPU target mask
constexpr size_t kIcfgr = 0x0c00;       // 2 bits per INTID; bit[1] set: edge-triggered
constexpr size_t kIrouter = 0x6000;     // v3 only: 64 bits per INTID, affinity route
// GICD_CTLR (v3, 12.9.4): with a single Security state (DS=1, QEMU's default) bit 0 is
// EnableGrp0, bit 1 EnableGrp1, bit 4 ARE; in the Non-secure view of a two-state GIC bit 0 is
// EnableGrp1NS, bit 1 EnableGrp1A, bit 4 ARE_NS. Setting bits 0, 1 and 4 is right for both.
constexpr uint32_t kCtlrEnableGrp0 = 1U << 0;
constexpr uint32_t kCtlrEnableGrp1 = 1U << 1;
constexpr uint32_t kCtlrAre = 1U << 4;
constexpr uint32_t kCtlrRwp = 1U << 31;  // register write pending
}  // namespace gicd

// Redistributor (v3, IHI0069 12.10/12.11): per CPU an RD_base frame and an SGI_base frame.
namespace gicr {
constexpr size_t kFrameBytes = 0x10000;
constexpr size_t kTyper = 0x0008;  // 64-bit: [63:32] affinity, bit 4 Last, bit 1 VLPIS
constexpr size_t kWaker = 0x0014;
constexpr uint32_t kWakerProcessorSleep = 1U << 1;
constexpr uint32_t kWakerChildrenAsleep = 1U << 2;
constexpr uint64_t kTyperLast = 1ULL << 4;
constexpr uint64_t kTyperVlpis = 1ULL << 1;
// In the SGI_base frame (RD_base + 64 KiB): the banked SGI/PPI copies of the GICD registers.
constexpr size_t kSgiIgroupr0 = 0x0080;
constexpr size_t kSgiIsenabler0 = 0x0100;
constexpr size_t kSgiIcenabler0 = 0x0180;
constexpr size_t kSgiIspendr0 = 0x0200;
constexpr size_t kSgiIcpendr0 = 0x0280;
constexpr size_t kSgiIpriorityr = 0x0400;
constexpr size_t kSgiIcfgr1 = 0x0c04;  // PPIs
}  // namespace gicr

// CPU interface, v2 (IHI0048B 4.4).
namespace gicc {
constexpr size_t kCtlr = 0x0000;
constexpr size_t kPmr = 0x0004;
constexpr size_t kBpr = 0x0008;
constexpr size_t kIar = 0x000c;
constexpr size_t kEoir = 0x0010;
}  // namespace gicc

struct Entry {
  IrqHandler handler = nullptr;
  void* ctx = nullptr;
  uint64_t count = 0;
};

struct State {
  unsigned version = 0;
  uintptr_t gicd = 0;
  uintptr_t gicr_sgi = 0;  // v3: this CPU's SGI_base frame
  uintptr_t gicc = 0;      // v2
  uint32_t lines = 0;      // INTIDs implemented: 32 * (GICD_TYPER.ITLinesNumber + 1), <= 1020
  Entry entries[kMaxIntid];
};

State g_state;
port::InterruptSpinLock* g_lock = nullptr;
LpiDispatcher g_lpi_dispatcher = nullptr;

uint32_t Read32(uintptr_t base, size_t off) {
  return *reinterpret_cast<volatile uint32_t*>(base + off);
}
void Write32(uintptr_t base, size_t off, uint32_t v) {
  *reinterpret_cast<volatile uint32_t*>(base + off) = v;
}
uint64_t Read64(uintptr_t base, size_t off) {
  return *reinterpret_cast<volatile uint64_t*>(base + off);
}
void Write64(uintptr_t base, size_t off, uint64_t v) {
  *reinterpret_cast<volatile uint64_t*>(base + off) = v;
}
void Write8(uintptr_t base, size_t off, uint8_t v) {
  *reinterpret_cast<volatile uint8_t*>(base + off) = v;
}

// IHI0069 12.9.4: GICD_CTLR.RWP is set while a write to CTLR or ICENABLER is taking effect.
Status WaitDistributorRwp() {
  const port::Deadline deadline = port::Deadline::In(kTimeoutNs);
  while ((Read32(g_state.gicd, gicd::kCtlr) & gicd::kCtlrRwp) != 0) {
    if (deadline.Expired()) {
      return Status::TimedOut();
    }
  }
  return Status::Ok();
}

// MPIDR_EL1 affinity as GICD_IROUTER / GICR_TYPER encode it: Aff3 in [39:32], Aff2.Aff1.Aff0
// in [23:0] (IROUTER) or Aff3.Aff2.Aff1.Aff0 in [31:0] (GICR_TYPER[63:32]).
uint64_t MpidrAffinity() { return DEVISO_READ_SYSREG(mpidr_el1) & 0xff00ffffffULL; }
uint32_t MpidrAffinity32() {
  const uint64_t a = MpidrAffinity();
  return static_cast<uint32_t>(((a >> 32) << 24) | (a & 0xffffff));
}

// The group, enable, pending, priority and config registers for `intid`: banked in the
// redistributor for SGIs/PPIs on v3, in the distributor otherwise.
uintptr_t BankFor(uint32_t intid) {
  return (g_state.version == 3 && intid < kFirstSpi) ? g_state.gicr_sgi : g_state.gicd;
}

void DistributorDefaults() {
  const uintptr_t d = g_state.gicd;
  for (uint32_t i = kFirstSpi; i < g_state.lines; i += 32) {
    Write32(d, gicd::kIcenabler + i / 8, 0xffffffff);
    Write32(d, gicd::kIcpendr + i / 8, 0xffffffff);
    Write32(d, gicd::kIcactiver + i / 8, 0xffffffff);
    // v3: Group 1. v2 without Security Extensions: IGROUPR is RAZ/WI and everything is Group 0.
    Write32(d, gicd::kIgroupr + i / 8, g_state.version == 3 ? 0xffffffff : 0);
  }
  for (uint32_t i = kFirstSpi; i < g_state.lines; i += 16) {
    Write32(d, gicd::kIcfgr + i / 4, 0);  // level-sensitive until registered
  }
  for (uint32_t i = kFirstSpi; i < g_state.lines; ++i) {
    Write8(d, gicd::kIpriorityr + i, kPriority);
  }
}

Status InitV3(const GicInfo& info) {
  const uintptr_t d = g_state.gicd;
  Write32(d, gicd::kCtlr, 0);
  DEVISO_TRY(WaitDistributorRwp());
  DistributorDefaults();
  for (uint32_t i = kFirstSpi; i < g_state.lines; ++i) {
    Write64(d, gicd::kIrouter + 8 * i, MpidrAffinity());  // IRM=0: this CPU
  }
  Write32(d, gicd::kCtlr, gicd::kCtlrAre);
  DEVISO_TRY(WaitDistributorRwp());
  Write32(d, gicd::kCtlr, gicd::kCtlrAre | gicd::kCtlrEnableGrp0 | gicd::kCtlrEnableGrp1);
  DEVISO_TRY(WaitDistributorRwp());

  // Find this CPU's redistributor: the frame whose GICR_TYPER.Affinity equals MPIDR's.
  uintptr_t rd = 0;
  for (uintptr_t f = static_cast<uintptr_t>(info.redistributors.base);
       f < info.redistributors.end();) {
    const uint64_t typer = Read64(f, gicr::kTyper);
    if (static_cast<uint32_t>(typer >> 32) == MpidrAffinity32()) {
      rd = f;
      break;
    }
    if ((typer & gicr::kTyperLast) != 0) {
      break;
    }
    f += ((typer & gicr::kTyperVlpis) != 0 ? 4 : 2) * gicr::kFrameBytes;
  }
  if (rd == 0) {
    return Status::NotFound();
  }
  // IHI0069 12.11.46 GICR_WAKER: mark the CPU awake, then wait for the redistributor.
  Write32(rd, gicr::kWaker, Read32(rd, gicr::kWaker) & ~gicr::kWakerProcessorSleep);
  const port::Deadline deadline = port::Deadline::In(kTimeoutNs);
  while ((Read32(rd, gicr::kWaker) & gicr::kWakerChildrenAsleep) != 0) {
    if (deadline.Expired()) {
      return Status::TimedOut();
    }
  }
  const uintptr_t sgi = rd + gicr::kFrameBytes;
  g_state.gicr_sgi = sgi;
  Write32(sgi, gicr::kSgiIcenabler0, 0xffffffff);
  Write32(sgi, gicr::kSgiIcpendr0, 0xffffffff);
  Write32(sgi, gicr::kSgiIgroupr0, 0xffffffff);
  Write32(sgi, gicr::kSgiIcfgr1, 0);
  for (uint32_t i = 0; i < kFirstSpi; ++i) {
    Write8(sgi, gicr::kSgiIpriorityr + i, kPriority);
  }

  // The CPU interface through system registers (IHI0069 12.2): ICC_SRE_EL1.SRE first.
  DEVISO_WRITE_SYSREG(s3_0_c12_c12_5, DEVISO_READ_SYSREG(s3_0_c12_c12_5) | 1);  // ICC_SRE_EL1
  arch::Isb();
  if ((DEVISO_READ_SYSREG(s3_0_c12_c12_5) & 1) == 0) {
    return Status::NotSupported();  // system register interface disabled by a higher EL
  }
  DEVISO_WRITE_SYSREG(s3_0_c4_c6_0, kPriorityMask);  // ICC_PMR_EL1
  DEVISO_WRITE_SYSREG(s3_0_c12_c12_3, 0);            // ICC_BPR1_EL1
  DEVISO_WRITE_SYSREG(s3_0_c12_c12_4, 0);            // ICC_CTLR_EL1: EOImode 0 (EOI deactivates)
  DEVISO_WRITE_SYSREG(s3_0_c12_c12_7, 1);            // ICC_IGRPEN1_EL1: Group 1 enabled
  arch::Isb();
  return Status::Ok();
}

Status InitV2(const GicInfo& info) {
  const uintptr_t d = g_state.gicd;
  g_state.gicc = static_cast<uintptr_t>(info.cpu_interface.base);
  Write32(d, gicd::kCtlr, 0);
  DistributorDefaults();
  // IHI0048B 4.3.12: ITARGETSR0-7 (SGIs/PPIs) read as this CPU's own target mask.
  const uint8_t self = static_cast<uint8_t>(Read32(d, gicd::kItargetsr) & 0xff);
  for (uint32_t i = kFirstSpi; i < g_state.lines; ++i) {
    Write8(d, gicd::kItargetsr + i, self);
  }
  Write32(d, gicd::kIcenabler, 0xffffffff);  // banked SGIs/PPIs
  Write32(d, gicd::kIcpendr, 0xffffffff);
  for (uint32_t i = 0; i < kFirstSpi; ++i) {
    Write8(d, gicd::kIpriorityr + i, kPriority);
  }
  Write32(d, gicd::kCtlr, 1);  // Enable (Group 0 when there are no Security Extensions)
  Write32(g_state.gicc, gicc::kPmr, kPriorityMask);
  Write32(g_state.gicc, gicc::kBpr, 0);
  Write32(g_state.gicc, gicc::kCtlr, 1);  // EnableGrp0, FIQEn=0: Group 0 signals IRQ
  return Status::Ok();
}

void RunHandler(uint32_t intid) {
  Entry& e = g_state.entries[intid];
  if (e.handler != nullptr) {
    ++e.count;
    e.handler(e.ctx);
  }
}

// The IRQ vector's dispatcher: acknowledge, handle, end of interrupt, until nothing is pending.
// A bounded loop, so an interrupt that cannot be silenced does not lock the CPU up for good.
void Dispatch() {
  for (int i = 0; i < 64; ++i) {
    if (g_state.version == 3) {
      const uint32_t intid =
          static_cast<uint32_t>(DEVISO_READ_SYSREG(s3_0_c12_c12_0)) & 0xffffff;  // ICC_IAR1_EL1
      if (intid >= kFirstLpi) {
        // An LPI (v3 with an ITS): its handler table is the ITS driver's (its.h).
        const LpiDispatcher lpi = __atomic_load_n(&g_lpi_dispatcher, __ATOMIC_ACQUIRE);
        if (lpi != nullptr) {
          lpi(intid);
        }
        DEVISO_WRITE_SYSREG(s3_0_c12_c12_1, intid);  // ICC_EOIR1_EL1
        continue;
      }
      if (intid >= kMaxIntid) {
        return;  // spurious (1020-1023): nothing (more) pending
      }
      RunHandler(intid);
      DEVISO_WRITE_SYSREG(s3_0_c12_c12_1, intid);  // ICC_EOIR1_EL1
    } else {
      const uint32_t iar = Read32(g_state.gicc, gicc::kIar);
      const uint32_t intid = iar & 0x3ff;
      if (intid >= kMaxIntid) {
        return;
      }
      RunHandler(intid);
      Write32(g_state.gicc, gicc::kEoir, iar);
    }
  }
}

bool Usable(uint32_t intid) { return intid >= kFirstPpi && intid < g_state.lines; }

void SetBit(uintptr_t base, size_t reg, uint32_t intid) {
  Write32(base, reg + (intid / 32) * 4, 1U << (intid % 32));
}

}  // namespace

Status GicInit(const GicInfo& info) {
  if (info.version != 2 && info.version != 3) {
    return Status::NotSupported();
  }
  g_state.version = 0;
  g_state.gicd = static_cast<uintptr_t>(info.distributor.base);
  const uint32_t it_lines = Read32(g_state.gicd, gicd::kTyper) & 0x1f;  // ITLinesNumber
  g_state.lines = 32 * (it_lines + 1) < kMaxIntid ? 32 * (it_lines + 1) : kMaxIntid;
  static port::InterruptSpinLock lock;
  g_lock = &lock;
  g_state.version = info.version;
  const Status s = info.version == 3 ? InitV3(info) : InitV2(info);
  if (!s.ok()) {
    g_state.version = 0;
    return s;
  }
  SetIrqDispatcher(&Dispatch);
  return Status::Ok();
}

unsigned GicVersion() { return g_state.version; }

uintptr_t GicRedistributorBase() {
  return g_state.version == 3 ? g_state.gicr_sgi - gicr::kFrameBytes : 0;
}

void SetLpiDispatcher(LpiDispatcher dispatcher) {
  __atomic_store_n(&g_lpi_dispatcher, dispatcher, __ATOMIC_RELEASE);
}

Status RegisterIrq(uint32_t intid, IrqHandler handler, void* ctx, bool edge) {
  if (g_state.version == 0 || !Usable(intid) || handler == nullptr) {
    return Status::InvalidArgument();
  }
  port::LockGuard guard(*g_lock);
  Entry& e = g_state.entries[intid];
  if (e.handler != nullptr) {
    return Status::AlreadyExists();
  }
  const uintptr_t bank = BankFor(intid);
  const size_t cfg_reg = (g_state.version == 3 && intid < kFirstSpi)
                             ? gicr::kSgiIcfgr1 - 4 + (intid / 16) * 4
                             : gicd::kIcfgr + (intid / 16) * 4;
  const uint32_t shift = (intid % 16) * 2 + 1;  // Int_config[1]
  uint32_t cfg = Read32(bank, cfg_reg);
  cfg = edge ? (cfg | (1U << shift)) : (cfg & ~(1U << shift));
  Write32(bank, cfg_reg, cfg);
  Write8(bank, (bank == g_state.gicd ? gicd::kIpriorityr : gicr::kSgiIpriorityr) + intid,
         kPriority);
  e.ctx = ctx;
  e.count = 0;
  e.handler = handler;
  return Status::Ok();
}

Status UnregisterIrq(uint32_t intid) {
  DEVISO_TRY(DisableIrq(intid));
  port::LockGuard guard(*g_lock);
  g_state.entries[intid].handler = nullptr;
  g_state.entries[intid].ctx = nullptr;
  return Status::Ok();
}

Status EnableIrq(uint32_t intid) {
  if (!Usable(intid) || g_state.entries[intid].handler == nullptr) {
    return Status::NotFound();
  }
  SetBit(BankFor(intid), gicd::kIsenabler, intid);  // same offsets in the SGI_base frame
  return Status::Ok();
}

Status DisableIrq(uint32_t intid) {
  if (!Usable(intid) || g_state.entries[intid].handler == nullptr) {
    return Status::NotFound();
  }
  SetBit(BankFor(intid), gicd::kIcenabler, intid);
  if (BankFor(intid) == g_state.gicd && g_state.version == 3) {
    return WaitDistributorRwp();
  }
  return Status::Ok();
}

Status SetIrqPending(uint32_t intid) {
  if (!Usable(intid) || g_state.entries[intid].handler == nullptr) {
    return Status::NotFound();
  }
  SetBit(BankFor(intid), gicd::kIspendr, intid);
  return Status::Ok();
}

uint64_t IrqCount(uint32_t intid) {
  return intid < kMaxIntid ? __atomic_load_n(&g_state.entries[intid].count, __ATOMIC_RELAXED) : 0;
}

void EnableInterrupts() { arch::UnmaskInterrupts(); }
void DisableInterrupts() { (void)arch::MaskInterrupts(); }

}  // namespace deviso::qemu_virt
