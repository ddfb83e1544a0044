// The SMMUv3 host model. See smmu_model.h for what is modelled and what is simplified.

#include "smmuv3/testing/smmu_model.h"

#include <algorithm>

#include "deviso/assert.h"

namespace deviso::smmuv3::testing {

namespace reg = layout::reg;
namespace ly = layout;

namespace {

constexpr uint64_t kPage = 4096;
// Stage 1 TLB keys ignore the top byte (TBI) so that TTB0 and TTB1 addresses stay distinct
// (VA[55] selects the table) while tagged pointers still match.
constexpr uint64_t kS1KeyMask = (uint64_t{1} << 56) - 1;

constexpr uint64_t Mask(unsigned bits) {
  return bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
}

// IHI0070 6.3 SMMU_IDR5.OAS (also CD.IPS, STE.S2PS) to bits. Reserved encodings give 64 so that
// the effective size, the minimum with the OAS, is the OAS.
unsigned OasEncodingToBits(uint64_t encoding) {
  switch (encoding) {
    case 0:
      return 32;
    case 1:
      return 36;
    case 2:
      return 40;
    case 3:
      return 42;
    case 4:
      return 44;
    case 5:
      return 48;
    case 6:
      return 52;
    default:
      return 64;
  }
}

int OasBitsToEncoding(unsigned bits) {
  for (uint64_t e = 0; e <= 5; ++e) {
    if (OasEncodingToBits(e) == bits) return static_cast<int>(e);
  }
  return -1;
}

// Arm ARM D8.2: levels that may hold a block descriptor without FEAT_LPA/LPA2.
bool BlockAllowed(unsigned granule_shift, unsigned level) {
  if (granule_shift == 12) return level == 1 || level == 2;
  return level == 2;  // 16K and 64K
}

// Index bits resolved per level below the start level.
unsigned Stride(unsigned granule_shift) { return granule_shift - 3; }

unsigned LevelShift(unsigned granule_shift, unsigned level) {
  return granule_shift + Stride(granule_shift) * (3 - level);
}

bool Overlaps(uint64_t base, unsigned size_shift, uint64_t start, uint64_t end) {
  const uint64_t last = base + Mask(size_shift);
  return base < end && last >= start;
}

// A queue pointer register as a glitch shows it. The pointer field is the index and the wrap
// bit: log2 + 1 bits.
uint32_t GlitchedPointer(SmmuModel::Glitch glitch, uint32_t value, unsigned log2) {
  if (glitch == SmmuModel::Glitch::kAllOnes) return ~uint32_t{0};
  const uint32_t wrap_mask = (2u << log2) - 1;
  return (value & ~wrap_mask) | ((value - 1) & wrap_mask);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction and ID registers

SmmuModel::SmmuModel(deviso::testing::SimPhysMemory& memory, const Options& options)
    : memory_(memory), options_(options) {
  DEVISO_ASSERT(options.sid_bits <= 32);
  DEVISO_ASSERT(options.cmdq_log2 <= 19 && options.eventq_log2 <= 19);
  DEVISO_ASSERT(options.stage1 || options.stage2);
  DEVISO_ASSERT(options.gran4k || options.gran16k || options.gran64k);
  DEVISO_ASSERT(options.bbml <= 2);
  DEVISO_ASSERT(options.arch_minor <= 15);
  const int oas = OasBitsToEncoding(options.oas_bits);
  DEVISO_ASSERT(oas >= 0);

  // IHI0070 6.3 SMMU_IDR0.
  uint64_t idr0 = 0;
  idr0 = ly::idr0::S2p::Set(idr0, options.stage2 ? 1 : 0);
  idr0 = ly::idr0::S1p::Set(idr0, options.stage1 ? 1 : 0);
  idr0 = ly::idr0::Ttf::Set(idr0, ly::idr0::kTtfAArch64);
  idr0 = ly::idr0::Cohacc::Set(idr0, options.coherent_access && memory.coherent() ? 1 : 0);
  idr0 = ly::idr0::Hyp::Set(idr0, options.hyp ? 1 : 0);
  idr0 = ly::idr0::Asid16::Set(idr0, options.asid16 ? 1 : 0);
  idr0 = ly::idr0::Msi::Set(idr0, options.msi ? 1 : 0);
  idr0 = ly::idr0::Vmid16::Set(idr0, options.vmid16 ? 1 : 0);
  idr0 = ly::idr0::TtEndian::Set(idr0, ly::idr0::kTtEndianLittle);
  idr0 = ly::idr0::StallModel::Set(idr0, ly::idr0::kStallModelNone);
  idr0 = ly::idr0::TermModel::Set(idr0, 1);
  idr0 = ly::idr0::StLevel::Set(idr0, options.two_level_strtab ? 1 : 0);
  idr_[0] = static_cast<uint32_t>(idr0);
  // IHI0070 6.3 SMMU_IDR1.
  uint64_t idr1 = 0;
  idr1 = ly::idr1::SidSize::Set(idr1, options.sid_bits);
  idr1 = ly::idr1::EventqS::Set(idr1, options.eventq_log2);
  idr1 = ly::idr1::CmdqS::Set(idr1, options.cmdq_log2);
  idr_[1] = static_cast<uint32_t>(idr1);
  // IHI0070 6.3 SMMU_IDR3.
  uint64_t idr3 = 0;
  idr3 = ly::idr3::Had::Set(idr3, options.had ? 1 : 0);
  idr3 = ly::idr3::Ril::Set(idr3, options.ril ? 1 : 0);
  idr3 = ly::idr3::Bbml::Set(idr3, options.bbml);
  idr_[3] = static_cast<uint32_t>(idr3);
  // IHI0070 6.3 SMMU_IDR5.
  uint64_t idr5 = 0;
  idr5 = ly::idr5::Oas::Set(idr5, static_cast<uint64_t>(oas));
  idr5 = ly::idr5::Gran4K::Set(idr5, options.gran4k ? 1 : 0);
  idr5 = ly::idr5::Gran16K::Set(idr5, options.gran16k ? 1 : 0);
  idr5 = ly::idr5::Gran64K::Set(idr5, options.gran64k ? 1 : 0);
  idr_[5] = static_cast<uint32_t>(idr5);
  // IHI0070 6.3 SMMU_IIDR and SMMU_AIDR (SMMUv3.<arch_minor>).
  iidr_ = options.iidr;
  aidr_ = static_cast<uint32_t>(ly::aidr::ArchMajorRev::Make(0) |
                                ly::aidr::ArchMinorRev::Make(options.arch_minor));
  // IHI0070 6.3 SMMU_*_IRQ_CFG0: ADDR resets to an UNKNOWN value.
  if (options.msi) {
    gerror_irq_cfg0_ = kUnknownMsiAddr;
    eventq_irq_cfg0_ = kUnknownMsiAddr;
  }
  // IHI0070 6.3 SMMU_GBPA reset: SHCFG = 0b01 (use incoming), ABORT as configured.
  if (options.gbpa_implemented) {
    gbpa_ = static_cast<uint32_t>(ly::gbpa::ShCfg::Make(1) |
                                  ly::gbpa::Abort::Make(options.gbpa_abort_at_reset ? 1 : 0));
  }
}

namespace {

// A refusal with its reason (for deviso-decode's verdicts); always false.
bool Reject(const char** why, const char* reason) {
  if (why != nullptr) *why = reason;
  return false;
}

}  // namespace

SmmuModel::Options SmmuModel::OptionsFromIdrs(uint32_t idr0, uint32_t idr1, uint32_t idr3,
                                              uint32_t idr5, uint32_t aidr) {
  // The inverse of the constructor's ID registers (IHI0070 6.3.1, 6.3.2, 6.3.4, 6.3.6, AIDR).
  Options o;
  o.stage2 = ly::idr0::S2p::Get(idr0) != 0;
  o.stage1 = ly::idr0::S1p::Get(idr0) != 0;
  o.coherent_access = ly::idr0::Cohacc::Get(idr0) != 0;
  o.hyp = ly::idr0::Hyp::Get(idr0) != 0;
  o.asid16 = ly::idr0::Asid16::Get(idr0) != 0;
  o.msi = ly::idr0::Msi::Get(idr0) != 0;
  o.vmid16 = ly::idr0::Vmid16::Get(idr0) != 0;
  o.two_level_strtab = ly::idr0::StLevel::Get(idr0) != 0;
  o.sid_bits = static_cast<unsigned>(ly::idr1::SidSize::Get(idr1));
  o.eventq_log2 = static_cast<unsigned>(ly::idr1::EventqS::Get(idr1));
  o.cmdq_log2 = static_cast<unsigned>(ly::idr1::CmdqS::Get(idr1));
  o.had = ly::idr3::Had::Get(idr3) != 0;
  o.ril = ly::idr3::Ril::Get(idr3) != 0;
  o.bbml = static_cast<unsigned>(ly::idr3::Bbml::Get(idr3));
  o.oas_bits = PaBits(ly::idr5::Oas::Get(idr5));
  o.gran4k = ly::idr5::Gran4K::Get(idr5) != 0;
  o.gran16k = ly::idr5::Gran16K::Get(idr5) != 0;
  o.gran64k = ly::idr5::Gran64K::Get(idr5) != 0;
  o.arch_minor = static_cast<unsigned>(ly::aidr::ArchMinorRev::Get(aidr));
  return o;
}

const char* SmmuModel::SteRejection(const Options& options, const uint64_t* ste) {
  StreamConfig config;
  const char* why = nullptr;
  return DecodeSte(options, ste, &config, &why) ? nullptr : why;
}

const char* SmmuModel::CdRejection(const Options& options, const uint64_t* cd) {
  S1Context ctx;
  const char* why = nullptr;
  return DecodeCd(options, cd, &ctx, &why) ? nullptr : why;
}

bool SmmuModel::GranuleSupported(const Options& o, unsigned shift) {
  switch (shift) {
    case 12:
      return o.gran4k;
    case 14:
      return o.gran16k;
    case 16:
      return o.gran64k;
    default:
      return false;
  }
}

unsigned SmmuModel::PaBits(uint64_t encoding) { return OasEncodingToBits(encoding); }

// ---------------------------------------------------------------------------------------------
// Register file

bool SmmuModel::IsReg64(size_t offset) const {
  switch (offset) {
    case reg::kGerrorIrqCfg0:
    case reg::kStrtabBase:
    case reg::kCmdqBase:
    case reg::kEventqBase:
    case reg::kEventqIrqCfg0:
    case reg::kPriqBase:
      return true;
    default:
      return false;
  }
}

uint64_t* SmmuModel::Reg64(size_t offset) {
  switch (offset) {
    case reg::kStrtabBase:
      return &strtab_base_;
    case reg::kCmdqBase:
      return &cmdq_.base;
    case reg::kEventqBase:
      return &eventq_.base;
    case reg::kGerrorIrqCfg0:
      return options_.msi ? &gerror_irq_cfg0_ : nullptr;
    case reg::kEventqIrqCfg0:
      return options_.msi ? &eventq_irq_cfg0_ : nullptr;
    default:
      return nullptr;  // RAZ/WI: MSI registers without IDR0.MSI, no PRI queue
  }
}

uint32_t SmmuModel::ReadLocked(size_t offset) {
  if (IsReg64(offset & ~size_t{7})) {
    const uint64_t* r = Reg64(offset & ~size_t{7});
    const uint64_t v = r ? *r : 0;
    return static_cast<uint32_t>((offset & 4) != 0 ? v >> 32 : v);
  }
  switch (offset) {
    case reg::kIdr0:
    case reg::kIdr1:
    case reg::kIdr2:
    case reg::kIdr3:
    case reg::kIdr4:
    case reg::kIdr5:
      return idr_[offset / 4];
    case reg::kIidr:
      return iidr_;
    case reg::kAidr:
      return aidr_;
    case reg::kCr0:
      return cr0_;
    case reg::kCr0Ack:
      return cr0ack_;
    case reg::kCr1:
      return cr1_;
    case reg::kCr2:
      return cr2_;
    case reg::kStatusr:
      return 0;
    case reg::kGbpa:
      return gbpa_;
    case reg::kAgbpa:
      return 0;
    case reg::kIrqCtrl:
      return irq_ctrl_;
    case reg::kIrqCtrlAck:
      return irq_ctrlack_;
    case reg::kGerror:
      return gerror_;
    case reg::kGerrorN:
      return gerrorn_;
    case reg::kGerrorIrqCfg1:
      return gerror_irq_cfg1_;
    case reg::kGerrorIrqCfg2:
      return gerror_irq_cfg2_;
    case reg::kEventqIrqCfg1:
      return eventq_irq_cfg1_;
    case reg::kEventqIrqCfg2:
      return eventq_irq_cfg2_;
    case reg::kStrtabBaseCfg:
      return strtab_base_cfg_;
    case reg::kCmdqProd:
      return cmdq_.prod;
    case reg::kCmdqCons: {
      if (cons_glitch_reads_ != 0) {
        --cons_glitch_reads_;
        return GlitchedPointer(cons_glitch_, cmdq_.cons,
                               Geometry(cmdq_.base, options_.cmdq_log2, 4).log2);
      }
      const uint32_t v = cmdq_.cons;
      // A slow CMD_SYNC: this poll saw it pending; the last one lets it complete.
      if (sync_waiting_ && sync_polls_left_ != 0 && --sync_polls_left_ == 0) ProcessCommands();
      return v;
    }
    case reg::kEventqProd:
      if (prod_glitch_reads_ != 0) {
        --prod_glitch_reads_;
        return GlitchedPointer(prod_glitch_, eventq_.prod,
                               Geometry(eventq_.base, options_.eventq_log2, 5).log2);
      }
      return eventq_.prod;
    case reg::kEventqCons:
      return eventq_.cons;
    default:
      ++bad_register_accesses_;
      return 0;
  }
}

void SmmuModel::WriteReg64Locked(size_t offset, uint64_t value, uint64_t mask) {
  uint64_t* r = Reg64(offset);
  if (r == nullptr) return;  // RAZ/WI
  const uint64_t merged = (*r & ~mask) | (value & mask);
  // IHI0070 6.3: these registers may be written only while the unit they configure is off and
  // acknowledged off. The model ignores such a write, which makes the mistake visible.
  const uint32_t active = cr0_ | cr0ack_;
  switch (offset) {
    case reg::kStrtabBase:
      if (ly::cr0::SmmuEn::Get(active) != 0) {
        ++bad_register_accesses_;
        return;
      }
      *r = merged & (ly::strtab_base::Addr::kMask | ly::strtab_base::Ra::kMask);
      return;
    case reg::kCmdqBase:
      if (ly::cr0::CmdqEn::Get(active) != 0) {
        ++bad_register_accesses_;
        return;
      }
      *r = merged & (ly::queue_base::Addr::kMask | ly::queue_base::Ra::kMask |
                     ly::queue_base::Log2Size::kMask);
      return;
    case reg::kEventqBase:
      if (ly::cr0::EventqEn::Get(active) != 0) {
        ++bad_register_accesses_;
        return;
      }
      *r = merged & (ly::queue_base::Addr::kMask | ly::queue_base::Ra::kMask |
                     ly::queue_base::Log2Size::kMask);
      return;
    case reg::kGerrorIrqCfg0:
    case reg::kEventqIrqCfg0:
      *r = merged & ly::irq_cfg0::Addr::kMask;
      return;
    default:
      return;
  }
}

void SmmuModel::WriteLocked(size_t offset, uint32_t value) {
  if (IsReg64(offset & ~size_t{7})) {
    const unsigned shift = (offset & 4) != 0 ? 32 : 0;
    WriteReg64Locked(offset & ~size_t{7}, uint64_t{value} << shift, uint64_t{0xFFFF'FFFF} << shift);
    return;
  }
  const uint32_t active = cr0_ | cr0ack_;
  switch (offset) {
    case reg::kCr0:
      WriteCr0(value);
      return;
    case reg::kCr1:
      cr1_ = value & 0xFFF;  // QUEUE_IC/OC/SH, TABLE_IC/OC/SH
      return;
    case reg::kCr2:
      cr2_ = value & static_cast<uint32_t>(ly::cr2::E2h::kMask | ly::cr2::RecInvSid::kMask |
                                           ly::cr2::Ptm::kMask);
      return;
    case reg::kGbpa:
      WriteGbpa(value);
      return;
    case reg::kIrqCtrl:
      WriteIrqCtrl(value);
      return;
    case reg::kGerrorN:
      WriteGerrorN(value);
      return;
    case reg::kStrtabBaseCfg:
      if (ly::cr0::SmmuEn::Get(active) != 0) {
        ++bad_register_accesses_;
        return;
      }
      strtab_base_cfg_ = value & static_cast<uint32_t>(ly::strtab_base_cfg::Log2Size::kMask |
                                                       ly::strtab_base_cfg::Split::kMask |
                                                       ly::strtab_base_cfg::Fmt::kMask);
      return;
    case reg::kCmdqProd:
      cmdq_.prod = value & static_cast<uint32_t>(ly::queue_ptr::Ptr::kMask);
      ProcessCommands();
      return;
    case reg::kCmdqCons:
      if (ly::cr0::CmdqEn::Get(active) != 0) {
        ++bad_register_accesses_;
        return;
      }
      cmdq_.cons = static_cast<uint32_t>(ly::queue_ptr::Ptr::Set(cmdq_.cons, value));
      return;
    case reg::kEventqProd:
      if (ly::cr0::EventqEn::Get(active) != 0) {
        ++bad_register_accesses_;
        return;
      }
      eventq_.prod =
          value & static_cast<uint32_t>(ly::queue_ptr::Ptr::kMask | ly::queue_ptr::Overflow::kMask);
      return;
    case reg::kEventqCons:
      eventq_.cons =
          value & static_cast<uint32_t>(ly::queue_ptr::Ptr::kMask | ly::queue_ptr::Overflow::kMask);
      return;
    case reg::kGerrorIrqCfg1:
      if (options_.msi) gerror_irq_cfg1_ = value;
      return;
    case reg::kGerrorIrqCfg2:
      if (options_.msi) gerror_irq_cfg2_ = value & 0x3F;  // MemAttr, SH
      return;
    case reg::kEventqIrqCfg1:
      if (options_.msi) eventq_irq_cfg1_ = value;
      return;
    case reg::kEventqIrqCfg2:
      if (options_.msi) eventq_irq_cfg2_ = value & 0x3F;
      return;
    case reg::kAgbpa:
      return;  // RAZ/WI
    default:
      // Read-only registers (IDRn, IIDR, AIDR, CR0ACK, STATUSR, IRQ_CTRLACK, GERROR) and
      // offsets the model does not implement (including page-0 0xA8/0xAC: the event queue
      // pointers are in page 1).
      ++bad_register_accesses_;
      return;
  }
}

void SmmuModel::WriteCr0(uint32_t value) {
  cr0_ = value & static_cast<uint32_t>(ly::cr0::SmmuEn::kMask | ly::cr0::EventqEn::kMask |
                                       ly::cr0::CmdqEn::kMask);
  if (!cr0ack_stuck_) cr0ack_ = cr0_;
  ProcessCommands();  // CMDQEN may have just been acknowledged
}

void SmmuModel::WriteIrqCtrl(uint32_t value) {
  irq_ctrl_ = value & static_cast<uint32_t>(ly::irq_ctrl::GerrorIrqEn::kMask |
                                            ly::irq_ctrl::EventqIrqEn::kMask);
  if (!irq_ctrlack_stuck_) irq_ctrlack_ = irq_ctrl_;
}

// IHI0070 6.3 SMMU_GBPA: software writes the new attributes with Update = 1; the SMMU applies
// them and clears Update. A write with Update = 0, or while an update is in progress, is ignored.
void SmmuModel::WriteGbpa(uint32_t value) {
  if (!options_.gbpa_implemented) return;
  if (ly::gbpa::Update::Get(gbpa_) != 0 || ly::gbpa::Update::Get(value) == 0) return;
  const uint32_t fields =
      value & static_cast<uint32_t>(ly::gbpa::MemAttr::kMask | ly::gbpa::MtCfg::kMask |
                                    ly::gbpa::AllocCfg::kMask | ly::gbpa::ShCfg::kMask |
                                    ly::gbpa::PrivCfg::kMask | ly::gbpa::InstCfg::kMask |
                                    ly::gbpa::Abort::kMask);
  if (gbpa_update_stuck_) {
    gbpa_pending_ = fields;
    gbpa_ |= static_cast<uint32_t>(ly::gbpa::Update::kMask);
    return;
  }
  gbpa_ = fields;
}

void SmmuModel::WriteGerrorN(uint32_t value) {
  gerrorn_ = value & ly::gerror::kImplemented;
  ProcessCommands();  // an acknowledged CMDQ_ERR lets the queue resume
}

// IHI0070 6.3 SMMU_GERROR: an error becomes active by toggling its GERROR bit, unless it is
// already active (GERROR != GERRORN for that bit).
void SmmuModel::RaiseGerror(uint32_t bit) {
  if (((gerror_ ^ gerrorn_) & bit) != 0) return;
  gerror_ ^= bit;
  if (ly::irq_ctrl::GerrorIrqEn::Get(irq_ctrlack_) != 0) ++pending_.gerror;
}

uint32_t SmmuModel::Read32(size_t offset) {
  std::unique_lock<std::mutex> lock(mu_);
  const uint32_t v = gone_ ? ~uint32_t{0} : ReadLocked(offset);
  UnlockAndFire(lock);
  return v;
}

void SmmuModel::Write32(size_t offset, uint32_t value) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!gone_) WriteLocked(offset, value);
  UnlockAndFire(lock);
}

uint64_t SmmuModel::Read64(size_t offset) {
  std::unique_lock<std::mutex> lock(mu_);
  uint64_t v;
  if (gone_) {
    v = ~uint64_t{0};
  } else if (IsReg64(offset)) {
    const uint64_t* r = Reg64(offset);
    v = r ? *r : 0;
  } else {
    v = ReadLocked(offset) | (uint64_t{ReadLocked(offset + 4)} << 32);
  }
  UnlockAndFire(lock);
  return v;
}

void SmmuModel::Write64(size_t offset, uint64_t value) {
  std::unique_lock<std::mutex> lock(mu_);
  if (gone_) {
    // Dropped.
  } else if (IsReg64(offset)) {
    WriteReg64Locked(offset, value, ~uint64_t{0});
  } else {
    WriteLocked(offset, static_cast<uint32_t>(value));
    WriteLocked(offset + 4, static_cast<uint32_t>(value >> 32));
  }
  UnlockAndFire(lock);
}

// ---------------------------------------------------------------------------------------------
// Queues

// IHI0070 6.3 SMMU_CMDQ_BASE / SMMU_EVENTQ_BASE: LOG2SIZE above the IDR1 maximum is treated as
// the maximum, and the base is aligned to the larger of the queue size and 32 bytes by ignoring
// its low bits.
SmmuModel::QueueGeometry SmmuModel::Geometry(uint64_t base, unsigned max_log2,
                                             unsigned entry_shift) const {
  const unsigned log2 =
      std::min(static_cast<unsigned>(ly::queue_base::Log2Size::Get(base)), max_log2);
  const uint64_t bytes = std::max<uint64_t>(uint64_t{1} << (log2 + entry_shift), 32);
  return QueueGeometry{(base & ly::queue_base::Addr::kMask) & ~(bytes - 1), log2};
}

// IHI0070 3.5 and 7.1: consume commands from CONS up to PROD while the queue is enabled and no
// command error is active. An erroneous command leaves CONS pointing at it.
void SmmuModel::ProcessCommands() {
  for (;;) {
    if (!CmdqEnabled() || sfm_) return;
    if (((gerror_ ^ gerrorn_) & ly::gerror::CmdqErr::kMask) != 0) return;
    const QueueGeometry g = Geometry(cmdq_.base, options_.cmdq_log2, 4);
    const uint32_t wrap_mask = (2u << g.log2) - 1;
    const uint32_t cons = static_cast<uint32_t>(ly::queue_ptr::Ptr::Get(cmdq_.cons)) & wrap_mask;
    const uint32_t prod = static_cast<uint32_t>(ly::queue_ptr::Ptr::Get(cmdq_.prod)) & wrap_mask;
    if (cons == prod) return;

    const uint64_t addr = g.base + uint64_t{cons & ((1u << g.log2) - 1)} * 16;
    uint64_t raw[2] = {0, 0};
    uint32_t error = ly::cerror::kNone;
    if (cmd_fetch_aborts_ != 0) {
      --cmd_fetch_aborts_;
      error = ly::cerror::kAbt;
    } else if (!memory_.UnitRead64(addr, &raw[0]) || !memory_.UnitRead64(addr + 8, &raw[1])) {
      error = ly::cerror::kAbt;
    } else {
      const auto op = static_cast<uint8_t>(ly::cmd::Opcode::Get(raw[0]));
      if (op == ly::cmd::kSync && sync_stalled_) return;
      if (op == ly::cmd::kSync && sync_polls_ != 0) {
        // A slow CMD_SYNC (SetCmdSyncPolls): it waits at CONS for its polls.
        if (!sync_waiting_) {
          sync_waiting_ = true;
          sync_polls_left_ = sync_polls_;
        }
        if (sync_polls_left_ != 0) return;
        sync_waiting_ = false;
      }
      if (probe_) {
        uint8_t byte = 0;
        const Status ps = Access(probe_sid_, probe_iova_, &byte, nullptr, 1, AccessAttrs{});
        ++(ps.ok() ? probe_counts_.reached : probe_counts_.faulted);
      }
      auto it = illegal_opcodes_.find(op);
      if (it != illegal_opcodes_.end()) {
        if (--it->second == 0) illegal_opcodes_.erase(it);
        last_illegal_rule_ = CommandRule::kInjected;
        error = ly::cerror::kIll;
      } else {
        error = ExecuteCommand(raw);
      }
    }
    if (error != ly::cerror::kNone) {
      cmdq_.cons = static_cast<uint32_t>(ly::queue_ptr::CmdqErr::Set(cmdq_.cons, error));
      ++command_errors_;
      RaiseGerror(static_cast<uint32_t>(ly::gerror::CmdqErr::kMask));
      return;
    }
    CommandRecord rec;
    rec.opcode = static_cast<uint8_t>(ly::cmd::Opcode::Get(raw[0]));
    rec.raw = {raw[0], raw[1]};
    ++command_counts_[rec.opcode];
    if (rec.opcode == ly::cmd::kSync) {
      commands_since_sync_ = 0;
    } else {
      max_commands_between_syncs_ = std::max(max_commands_between_syncs_, ++commands_since_sync_);
    }
    if (options_.command_log_entries != 0) {
      if (command_log_.size() >= options_.command_log_entries) command_log_.pop_front();
      command_log_.push_back(rec);
    }
    cmdq_.cons = static_cast<uint32_t>(ly::queue_ptr::Ptr::Set(cmdq_.cons, (cons + 1) & wrap_mask));
  }
}

// ---------------------------------------------------------------------------------------------
// Command legality (IHI0070 4 and 7.1). A command that breaks any rule below is not executed:
// the queue stops at it with CERROR_ILL. Where the spec leaves a non-zero RES0 field or a
// reserved encoding CONSTRAINED UNPREDICTABLE, the model takes the strict choice (CERROR_ILL),
// so that a driver it accepts issues only encodings every implementation accepts.

namespace {

namespace c = ly::cmd;

// The fields each command defines (IHI0070 4.2-4.7); every other bit is RES0.
struct CommandFields {
  uint64_t w0;
  uint64_t w1;
};
constexpr uint64_t kOp = c::Opcode::kMask;
constexpr uint64_t kStream = c::SSec::kMask | c::StreamId::kMask;
constexpr uint64_t kRangeW0 = c::TlbiNum::kMask | c::TlbiScale::kMask;
constexpr uint64_t kVaW1 =
    c::TlbiLeaf::kMask | c::TlbiTtl::kMask | c::TlbiTg::kMask | c::TlbiVa::kMask;

bool DefinedFields(uint8_t op, CommandFields* f) {
  switch (op) {
    case c::kPrefetchConfig:  // 4.2.1
      *f = {kOp | kStream | c::Ssv::kMask | c::SubstreamId::kMask, 0};
      return true;
    case c::kPrefetchAddr:  // 4.2.2: Size [4:0], Addr [63:12]; bits [11:5] not checked
      *f = {kOp | kStream | c::Ssv::kMask | c::SubstreamId::kMask, ~uint64_t{0}};
      return true;
    case c::kCfgiSte:  // 4.3.1
      *f = {kOp | kStream, c::CfgiLeaf::kMask};
      return true;
    case c::kCfgiSteRange:  // 4.3.2, 4.3.3 (CMD_CFGI_ALL)
      *f = {kOp | kStream, c::CfgiRange::kMask};
      return true;
    case c::kCfgiCd:  // 4.3.4
      *f = {kOp | kStream | c::SubstreamId::kMask, c::CfgiLeaf::kMask};
      return true;
    case c::kCfgiCdAll:  // 4.3.5
      *f = {kOp | kStream, 0};
      return true;
    case c::kTlbiNhAll:  // 4.4.2
    case c::kTlbiS12Vmall:
      *f = {kOp | c::TlbiVmid::kMask, 0};
      return true;
    case c::kTlbiNhAsid:  // 4.4.3
      *f = {kOp | c::TlbiVmid::kMask | c::TlbiAsid::kMask, 0};
      return true;
    case c::kTlbiNhVa:  // 4.4.4
      *f = {kOp | kRangeW0 | c::TlbiVmid::kMask | c::TlbiAsid::kMask, kVaW1};
      return true;
    case c::kTlbiNhVaa:  // 4.4.5
      *f = {kOp | kRangeW0 | c::TlbiVmid::kMask, kVaW1};
      return true;
    case c::kTlbiEl2All:  // 4.4.7-4.4.10
    case c::kTlbiNsnhAll:
      *f = {kOp, 0};
      return true;
    case c::kTlbiEl2Asid:
      *f = {kOp | c::TlbiAsid::kMask, 0};
      return true;
    case c::kTlbiEl2Va:
      *f = {kOp | kRangeW0 | c::TlbiAsid::kMask, kVaW1};
      return true;
    case c::kTlbiEl2Vaa:
      *f = {kOp | kRangeW0, kVaW1};
      return true;
    case c::kTlbiS2Ipa:  // 4.4.13: IPA [51:12]
      *f = {kOp | kRangeW0 | c::TlbiVmid::kMask,
            c::TlbiLeaf::kMask | c::TlbiTtl::kMask | c::TlbiTg::kMask | c::TlbiIpa::kMask};
      return true;
    case c::kSync:  // 4.7.3
      *f = {kOp | c::SyncCs::kMask | c::SyncMsh::kMask | c::SyncMsiAttr::kMask |
                c::SyncMsiData::kMask,
            c::SyncMsiAddr::kMask};
      return true;
    default:
      return false;
  }
}

bool HasAsid(uint8_t op) {
  return op == c::kTlbiNhAsid || op == c::kTlbiNhVa || op == c::kTlbiEl2Asid || op == c::kTlbiEl2Va;
}
bool HasVmid(uint8_t op) {
  return op == c::kTlbiNhAll || op == c::kTlbiNhAsid || op == c::kTlbiNhVa || op == c::kTlbiNhVaa ||
         op == c::kTlbiS12Vmall || op == c::kTlbiS2Ipa;
}
bool ByAddress(uint8_t op) {
  return op == c::kTlbiNhVa || op == c::kTlbiNhVaa || op == c::kTlbiEl2Va || op == c::kTlbiEl2Vaa ||
         op == c::kTlbiS2Ipa;
}

}  // namespace

const char* SmmuModel::CommandRuleName(CommandRule rule) {
  switch (rule) {
    case CommandRule::kNone:
      return "none";
    case CommandRule::kOpcode:
      return "opcode";
    case CommandRule::kSsec:
      return "SSec";
    case CommandRule::kRes0:
      return "RES0";
    case CommandRule::kAsidWidth:
      return "ASID width";
    case CommandRule::kVmidWidth:
      return "VMID width";
    case CommandRule::kStage1Absent:
      return "no stage 1";
    case CommandRule::kStage2Absent:
      return "no stage 2";
    case CommandRule::kHypAbsent:
      return "no HYP";
    case CommandRule::kRangeNoRil:
      return "range without RIL";
    case CommandRule::kHintNoV32:
      return "TG/TTL before SMMUv3.2";
    case CommandRule::kTgGranule:
      return "TG granule";
    case CommandRule::kRangeZero:
      return "TG!=0 with TTL=NUM=SCALE=0";
    case CommandRule::kTtlLevel:
      return "TTL level";
    case CommandRule::kTtlWithoutTg:
      return "TTL without TG";
    case CommandRule::kSyncCs:
      return "CMD_SYNC CS";
    case CommandRule::kSubstreamId:
      return "SubstreamID";
    case CommandRule::kInjected:
      return "injected";
  }
  return "?";
}

SmmuModel::CommandRule SmmuModel::CheckCommand(const Options& o, const uint64_t* raw) {
  const auto op = static_cast<uint8_t>(c::Opcode::From(raw));
  CommandFields f{};
  // Reserved opcodes, Secure-only commands (EL3), and commands of features the model does not
  // implement (ATS, PRI, stalls, VMS): IHI0070 4.1.1, 7.1.
  if (!DefinedFields(op, &f)) return CommandRule::kOpcode;
  if ((op == c::kTlbiEl2All || op == c::kTlbiEl2Asid || op == c::kTlbiEl2Va ||
       op == c::kTlbiEl2Vaa) &&
      !o.hyp) {
    return CommandRule::kHypAbsent;  // IDR0.HYP = 0
  }
  if ((op == c::kTlbiNhAll || op == c::kTlbiNhAsid || op == c::kTlbiNhVa || op == c::kTlbiNhVaa) &&
      !o.stage1) {
    return CommandRule::kStage1Absent;
  }
  if ((op == c::kTlbiS12Vmall || op == c::kTlbiS2Ipa) && !o.stage2) {
    return CommandRule::kStage2Absent;
  }
  if ((raw[0] & ~f.w0) != 0 || (raw[1] & ~f.w1) != 0) return CommandRule::kRes0;
  // Every command the model accepts is a Non-secure one: SSec must be 0 (IHI0070 4.1.6).
  if ((f.w0 & c::SSec::kMask) != 0 && c::SSec::From(raw) != 0) return CommandRule::kSsec;
  // IDR1.SSIDSIZE = 0: SubstreamID 0 is the only substream.
  if (op == c::kCfgiCd && c::SubstreamId::From(raw) != 0) return CommandRule::kSubstreamId;
  // IHI0070 4.4: ASID[15:8] / VMID[15:8] are RES0 without ASID16 / VMID16.
  if (HasAsid(op) && !o.asid16 && (c::TlbiAsid::From(raw) >> 8) != 0) {
    return CommandRule::kAsidWidth;
  }
  if (HasVmid(op) && !o.vmid16 && (c::TlbiVmid::From(raw) >> 8) != 0) {
    return CommandRule::kVmidWidth;
  }
  if (ByAddress(op)) {
    const CommandRule r = CheckTlbiFields(o, raw);
    if (r != CommandRule::kNone) return r;
  }
  if (op == c::kSync && c::SyncCs::From(raw) == 0b11) return CommandRule::kSyncCs;  // 4.7.3
  return CommandRule::kNone;
}

// IHI0070 4.4.1.1 (range invalidation and the TTL level hint) for the by-address forms.
SmmuModel::CommandRule SmmuModel::CheckTlbiFields(const Options& o, const uint64_t* raw) {
  const uint64_t num = c::TlbiNum::From(raw);
  const uint64_t scale = c::TlbiScale::From(raw);
  const uint64_t tg = c::TlbiTg::From(raw);
  const uint64_t ttl = c::TlbiTtl::From(raw);
  // NUM and SCALE exist only with range invalidation (IDR3.RIL = 1).
  if (!o.ril && (num != 0 || scale != 0)) return CommandRule::kRangeNoRil;
  // TG and TTL are SMMUv3.2 fields; an SMMUv3.0/3.1 without RIL has them RES0.
  if (!o.ril && o.arch_minor < 2 && (tg != 0 || ttl != 0)) {
    return CommandRule::kHintNoV32;
  }
  if (tg == 0) {
    // Not a range and no level hint: TTL has no granule to be read against, NUM and SCALE no
    // granule to count.
    return ttl != 0 || num != 0 || scale != 0 ? CommandRule::kTtlWithoutTg : CommandRule::kNone;
  }
  const unsigned tg_shift = 10 + 2 * static_cast<unsigned>(tg);  // 12, 14, 16
  if (!GranuleSupported(o, tg_shift)) return CommandRule::kTgGranule;
  // A range of one granule with no level hint is reserved: IHI0070 4.4.1.1 (software uses
  // TG = 0 for that, or a TTL, or NUM = 1).
  if (o.ril && ttl == 0 && num == 0 && scale == 0) return CommandRule::kRangeZero;
  // Arm ARM D8.2 without FEAT_LPA/LPA2: level 1 holds leaves (blocks) only with 4 KiB pages.
  if (ttl == 1 && tg_shift != 12) return CommandRule::kTtlLevel;
  return CommandRule::kNone;
}

uint32_t SmmuModel::ExecuteCommand(const uint64_t* raw) {
  const CommandRule rule = CheckCommand(options_, raw);
  if (rule != CommandRule::kNone) {
    last_illegal_rule_ = rule;
    return ly::cerror::kIll;
  }
  const auto op = static_cast<uint8_t>(c::Opcode::From(raw));
  const auto sid = static_cast<uint32_t>(c::StreamId::From(raw));
  switch (op) {
    case c::kPrefetchConfig:
    case c::kPrefetchAddr:
      return ly::cerror::kNone;  // a hint: nothing is prefetched

    case c::kCfgiSte: {  // IHI0070 4.3.1
      ste_cache_.erase(sid);
      if (c::CfgiLeaf::From(raw) == 0) {
        // Leaf = 0: the L1 descriptor that covers the StreamID is invalidated too.
        l1std_cache_.erase(sid >> ly::strtab_base_cfg::Split::Get(strtab_base_cfg_));
      }
      return ly::cerror::kNone;
    }
    case c::kCfgiSteRange: {  // IHI0070 4.3.2; CMD_CFGI_ALL is Range = 31 (4.3.3)
      const auto range = static_cast<unsigned>(c::CfgiRange::From(raw));
      if (range >= 31) {
        ste_cache_.clear();
        l1std_cache_.clear();
        cd_cache_.clear();
        return ly::cerror::kNone;
      }
      const uint64_t mask = (uint64_t{2} << range) - 1;
      const uint64_t first = sid & ~mask;
      const uint64_t last = first + mask;
      std::erase_if(ste_cache_, [&](const auto& e) { return e.first >= first && e.first <= last; });
      const auto split = static_cast<unsigned>(ly::strtab_base_cfg::Split::Get(strtab_base_cfg_));
      std::erase_if(l1std_cache_, [&](const auto& e) {
        const uint64_t lo = uint64_t{e.first} << split;
        const uint64_t hi = lo + Mask(split);
        return lo <= last && hi >= first;
      });
      return ly::cerror::kNone;
    }
    case c::kCfgiCd:     // IHI0070 4.3.4 (one CD per stream)
    case c::kCfgiCdAll:  // IHI0070 4.3.5
      std::erase_if(cd_cache_, [&](const auto& e) { return e.first.first == sid; });
      return ly::cerror::kNone;

    case c::kTlbiNhAll:
    case c::kTlbiNhAsid:
    case c::kTlbiNhVa:
    case c::kTlbiNhVaa:
    case c::kTlbiNsnhAll:
    case c::kTlbiS12Vmall:
    case c::kTlbiS2Ipa:
      return TlbiCommand(op, raw);
    case c::kTlbiEl2All:
    case c::kTlbiEl2Asid:
    case c::kTlbiEl2Va:
    case c::kTlbiEl2Vaa:
      // No EL2 stream world is modelled, so there is nothing cached to invalidate.
      return ly::cerror::kNone;

    case c::kSync: {  // IHI0070 4.7.3
      const uint64_t cs = c::SyncCs::From(raw);
      if (cs == c::kCsIrq) {
        ++pending_.cmd_sync;
      } else if (cs == c::kCsSev) {
        ++sev_count_;
      }
      return ly::cerror::kNone;
    }
    default:
      return ly::cerror::kIll;  // not reached: CheckCommand refuses unknown opcodes
  }
}

// IHI0070 4.4: TLB invalidation commands (already checked by CheckCommand).
uint32_t SmmuModel::TlbiCommand(uint8_t opcode, const uint64_t* raw) {
  Invalidation inv;
  // Without stage 2 the VMID fields are ignored (every entry has VMID 0).
  inv.match_vmid = options_.stage2;
  inv.vmid = static_cast<uint16_t>(c::TlbiVmid::From(raw) & (options_.vmid16 ? 0xFFFF : 0xFF));
  inv.asid = static_cast<uint16_t>(c::TlbiAsid::From(raw) & (options_.asid16 ? 0xFFFF : 0xFF));
  uint64_t addr = 0;
  switch (opcode) {
    case c::kTlbiNhAll:
      inv.stage1 = true;
      break;
    case c::kTlbiNhAsid:
      inv.stage1 = true;
      inv.match_asid = true;
      break;
    case c::kTlbiNhVa:
      inv.stage1 = true;
      inv.asid_or_global = true;
      inv.by_address = true;
      addr = (c::TlbiVa::From(raw) << 12) & kS1KeyMask;
      break;
    case c::kTlbiNhVaa:
      inv.stage1 = true;
      inv.by_address = true;
      addr = (c::TlbiVa::From(raw) << 12) & kS1KeyMask;
      break;
    case c::kTlbiS12Vmall:
      inv.stage1 = true;
      inv.stage2 = true;
      break;
    case c::kTlbiS2Ipa:
      inv.stage2 = true;
      inv.by_address = true;
      addr = c::TlbiIpa::From(raw) << 12;
      break;
    case c::kTlbiNsnhAll:
      inv.stage1 = true;
      inv.stage2 = true;
      inv.match_vmid = false;
      break;
    default:
      return ly::cerror::kIll;
  }
  if (inv.by_address) {
    inv.leaf_only = c::TlbiLeaf::From(raw) != 0;
    const uint64_t tg = c::TlbiTg::From(raw);
    const unsigned tg_shift = 10 + 2 * static_cast<unsigned>(tg);  // 12, 14, 16
    if (tg == 0) {
      // A single address: every entry that translates it.
      inv.start = addr;
      inv.end = addr + 1;
    } else if (!options_.ril) {
      // SMMUv3.2 level hint without range: one address, leaves of level TTL of granule TG.
      inv.start = addr;
      inv.end = addr + 1;
      inv.granule_shift = tg_shift;
      inv.ttl_level = static_cast<unsigned>(c::TlbiTtl::From(raw));
    } else {
      // IHI0070 4.4.1 range invalidation: (NUM + 1) * 2^SCALE granules of size TG from the
      // address aligned to TG; TTL names the level of the leaf entries to invalidate.
      const uint64_t num = c::TlbiNum::From(raw) + 1;
      const auto scale = static_cast<unsigned>(c::TlbiScale::From(raw));
      inv.start = addr & ~Mask(tg_shift);
      inv.end = inv.start + (num << (scale + tg_shift));
      inv.granule_shift = tg_shift;
      inv.ttl_level = static_cast<unsigned>(c::TlbiTtl::From(raw));
    }
  }
  Invalidate(inv);
  return ly::cerror::kNone;
}

void SmmuModel::Invalidate(const Invalidation& inv) {
  auto tags_match = [&](uint8_t stage, uint16_t vmid, uint16_t asid, bool global) {
    if (stage == 1 ? !inv.stage1 : !inv.stage2) return false;
    if (inv.match_vmid && vmid != inv.vmid) return false;
    if (stage == 1) {
      if (inv.match_asid && (global || asid != inv.asid)) return false;
      if (inv.asid_or_global && !global && asid != inv.asid) return false;
    }
    return true;
  };
  std::erase_if(iotlb_, [&](const TlbEntry& e) {
    if (!tags_match(e.stage, e.vmid, e.asid, e.global)) return false;
    if (!inv.by_address) return true;
    if (inv.granule_shift != 0 && e.granule_shift != inv.granule_shift) return false;
    if (inv.ttl_level != 0 && e.level != inv.ttl_level) return false;
    return Overlaps(e.key, e.size_shift, inv.start, inv.end);
  });
  if (inv.leaf_only) return;
  std::erase_if(walk_cache_, [&](const WalkEntry& e) {
    if (!tags_match(e.stage, e.vmid, e.asid, false)) return false;
    if (!inv.by_address) return true;
    if (inv.granule_shift != 0 && e.granule_shift != inv.granule_shift) return false;
    return Overlaps(e.key, e.size_shift, inv.start, inv.end);
  });
}

EventRecord SmmuModel::MakeEvent(uint8_t type, uint32_t sid) const {
  EventRecord r;
  ly::evt::Type::Put(r.raw.data(), type);
  ly::evt::StreamId::Put(r.raw.data(), sid);
  return r;
}

// IHI0070 7.2, 7.4: write one record at PROD, or lose it when the queue is full (overflow) or
// disabled.
void SmmuModel::RecordEvent(const EventRecord& record) {
  if (!EventqEnabled() || sfm_) {
    ++events_lost_;
    return;
  }
  const QueueGeometry g = Geometry(eventq_.base, options_.eventq_log2, 5);
  const uint32_t wrap_mask = (2u << g.log2) - 1;
  const uint32_t prod = static_cast<uint32_t>(ly::queue_ptr::Ptr::Get(eventq_.prod)) & wrap_mask;
  const uint32_t cons = static_cast<uint32_t>(ly::queue_ptr::Ptr::Get(eventq_.cons)) & wrap_mask;
  if ((prod ^ cons) == (1u << g.log2)) {
    ++events_lost_;
    // Overflow: OVFLG toggles so that it differs from OVACKFLG, unless it already does.
    if (ly::queue_ptr::Overflow::Get(eventq_.prod) == ly::queue_ptr::Overflow::Get(eventq_.cons)) {
      eventq_.prod ^= static_cast<uint32_t>(ly::queue_ptr::Overflow::kMask);
    }
    return;
  }
  const uint64_t addr = g.base + uint64_t{prod & ((1u << g.log2) - 1)} * 32;
  if (eventq_write_aborts_ != 0) {
    --eventq_write_aborts_;
    ++events_lost_;
    RaiseGerror(static_cast<uint32_t>(ly::gerror::EventqAbtErr::kMask));
    return;
  }
  for (size_t i = 0; i < record.raw.size(); ++i) {
    if (!memory_.UnitWrite64(addr + 8 * i, record.raw[i])) {
      ++events_lost_;
      RaiseGerror(static_cast<uint32_t>(ly::gerror::EventqAbtErr::kMask));
      return;
    }
  }
  eventq_.prod =
      static_cast<uint32_t>(ly::queue_ptr::Ptr::Set(eventq_.prod, (prod + 1) & wrap_mask));
  ++events_written_;
  if (options_.recent_events != 0) {
    if (recent_events_.size() >= options_.recent_events) recent_events_.pop_front();
    recent_events_.push_back(record);
  }
  if (ly::irq_ctrl::EventqIrqEn::Get(irq_ctrlack_) != 0) ++pending_.eventq;
}

// ---------------------------------------------------------------------------------------------
// Configuration: stream table, STE, CD

// IHI0070 3.3: locate and read the STE of `sid`. Fails with C_BAD_STREAMID (StreamID outside
// the table, invalid L1 descriptor, StreamID outside the L2 span) or F_STE_FETCH.
bool SmmuModel::FindSte(uint32_t sid, uint64_t* ste, Fault* fault) {
  namespace sc = ly::strtab_base_cfg;
  const unsigned log2 =
      std::min(static_cast<unsigned>(sc::Log2Size::Get(strtab_base_cfg_)), options_.sid_bits);
  fault->record = ly::cr2::RecInvSid::Get(cr2_) != 0;
  fault->type = ly::evt::kCBadStreamId;
  if ((uint64_t{sid} >> log2) != 0) return false;

  if (auto it = ste_cache_.find(sid); it != ste_cache_.end()) {
    std::copy(it->second.begin(), it->second.end(), ste);
    return true;
  }

  const uint64_t fmt = sc::Fmt::Get(strtab_base_cfg_);
  uint64_t base = strtab_base_ & ly::strtab_base::Addr::kMask;
  uint64_t ste_addr = 0;
  if (fmt == sc::kFmtLinear) {
    base &= ~Mask(log2 + 6);  // aligned to the table size (2^log2 64-byte STEs)
    ste_addr = base + uint64_t{sid} * ly::ste::kBytes;
  } else if (fmt == sc::kFmt2Level && options_.two_level_strtab) {
    const auto split = static_cast<unsigned>(sc::Split::Get(strtab_base_cfg_));
    if (split != 6 && split != 8 && split != 10) return false;
    const unsigned l1_bits = log2 > split ? log2 - split : 0;
    base &= ~Mask(std::max(l1_bits + 3, 6u));  // L1 table aligned to its size, at least 64 bytes
    const uint32_t l1_index = split >= 32 ? 0 : sid >> split;
    uint64_t desc = 0;
    if (auto it = l1std_cache_.find(l1_index); it != l1std_cache_.end()) {
      desc = it->second;
    } else {
      const uint64_t desc_addr = base + uint64_t{l1_index} * 8;
      if (ConsumeInjection(&ste_fetch_aborts_) || !memory_.UnitRead64(desc_addr, &desc)) {
        *fault = Fault{ly::evt::kFSteFetch, false, true, desc_addr};
        return false;
      }
      ++l1std_fetches_;
    }
    const auto span = static_cast<unsigned>(ly::l1std::Span::Get(desc));
    if (span == 0 || span > split + 1) return false;  // invalid (or reserved) descriptor
    l1std_cache_[l1_index] = desc;
    const uint64_t l2_index = sid & Mask(split);
    if ((l2_index >> (span - 1)) != 0) return false;  // beyond the L2 table's span
    // The L2 table is aligned to its size (2^(span-1) STEs).
    const uint64_t l2 = (desc & ly::l1std::L2Ptr::kMask) & ~Mask(span - 1 + 6);
    ste_addr = l2 + l2_index * ly::ste::kBytes;
  } else {
    return false;  // reserved format
  }
  if (ConsumeInjection(&ste_fetch_aborts_)) {
    *fault = Fault{ly::evt::kFSteFetch, false, true, ste_addr};
    return false;
  }
  for (size_t i = 0; i < ly::ste::kWords; ++i) {
    if (!memory_.UnitRead64(ste_addr + 8 * i, &ste[i])) {
      *fault = Fault{ly::evt::kFSteFetch, false, true, ste_addr + 8 * i};
      return false;
    }
  }
  ++ste_fetches_;
  return true;
}

// IHI0070 5.2: the RES0 fields of an STE the model can see, for a Non-secure stream of an
// SMMU without MPAM, VATOS, PBHA or the SMMUv3.3 extensions. The model treats a non-zero RES0
// field as ILLEGAL (C_BAD_STE), the strict reading. Field widths follow the ID registers:
// S2VMID[15:8] is RES0 without IDR0.VMID16.
bool SmmuModel::SteRes0Clear(const Options& o, const uint64_t* ste) {
  namespace s = ly::ste;
  static constexpr uint64_t kRes0[ly::ste::kWords] = {
      ly::Bits<58, 52>::kMask,  // between S1ContextPtr and S1CDMax
      // Between S1CSH and S1STALLD (PBHA, DRE, CONT, DCP, PPAR, MEV: not implemented),
      // between ALLOCCFG and SHCFG, and above INSTCFG.
      ly::Bits<26, 8>::kMask | ly::Bits<43, 41>::kMask | ly::Bits<63, 52>::kMask,
      ly::Bits<31, 16>::kMask | ly::Bits<63, 59>::kMask,  // above S2VMID, above S2R
      ly::Bits<3, 0>::kMask | ly::Bits<63, 52>::kMask,    // around S2TTB
      ~uint64_t{0},                                       // VMSPtr (no VATOS)
      ~uint64_t{0},                                       // MPAM (no MPAM)
      ~uint64_t{0},
      ~uint64_t{0},
  };
  for (size_t i = 0; i < ly::ste::kWords; ++i) {
    if ((ste[i] & kRes0[i]) != 0) return false;
  }
  return o.vmid16 || (s::S2Vmid::From(ste) >> 8) == 0;
}

// IHI0070 5.4: the RES0 fields of a CD (no PBHA, no MPAM), and ASID[15:8] without ASID16.
bool SmmuModel::CdRes0Clear(const Options& o, const uint64_t* cd) {
  namespace d = ly::cd;
  static constexpr uint64_t kTtbRes0 = ly::Bits<63, 52>::kMask;  // above TTBx (no PBHA)
  if ((cd[1] & kTtbRes0) != 0 || (cd[2] & kTtbRes0) != 0) return false;
  if ((cd[6] | cd[7]) != 0) return false;  // MPAM PARTID/PMG and RES0
  return o.asid16 || (d::Asid::From(cd) >> 8) == 0;
}

// IHI0070 5.2: decode a fetched STE. Returns false for an invalid or ILLEGAL STE (C_BAD_STE).
bool SmmuModel::DecodeSte(const Options& o, const uint64_t* ste, StreamConfig* config,
                          const char** why) {
  namespace s = ly::ste;
  if (s::V::From(ste) == 0) return Reject(why, "V = 0 (5.2: invalid STE)");
  if (!SteRes0Clear(o, ste)) return Reject(why, "a RES0 field is non-zero (5.2)");
  const uint64_t cfg = s::Config::From(ste);
  if (cfg != s::kConfigAbort && (cfg & 0b100) == 0)
    return Reject(why, "Config is a reserved encoding (5.2)");  // 0b001..0b011 reserved
  config->config = cfg;
  if (cfg == s::kConfigAbort || cfg == s::kConfigBypass) return true;
  if ((cfg & 1) != 0 && !o.stage1) return Reject(why, "Config enables stage 1 but IDR0.S1P = 0");
  if ((cfg & 2) != 0 && !o.stage2) return Reject(why, "Config enables stage 2 but IDR0.S2P = 0");
  if (cfg == s::kConfigNested)
    return Reject(why, "nested Config (0b111) is not modelled");  // not modelled (see the header)

  // With stage 2 implemented the VMID tags stage 1 translations too.
  config->vmid =
      o.stage2 ? static_cast<uint16_t>(s::S2Vmid::From(ste) & (o.vmid16 ? 0xFFFF : 0xFF)) : 0;
  if (cfg == s::kConfigS1) {
    if (s::S1CdMax::From(ste) != 0)
      return Reject(why,
                    "S1CDMax != 0 but IDR1.SSIDSIZE = 0 (no substreams)");  // IDR1.SSIDSIZE = 0
    if (s::Strw::From(ste) != 0)
      return Reject(
          why,
          "STRW != 0 (only the NS-EL1 stream world is modelled)");  // only the NS-EL1 stream world
    config->cd_addr = ste[0] & s::S1ContextPtr::kMask;
    return true;
  }
  // Stage 2 (IHI0070 5.2 STE.S2*, Arm ARM D8.2 for VTCR-style fields).
  if (s::S2Aa64::From(ste) == 0 || s::S2Endi::From(ste) != 0)
    return Reject(why, "S2AA64 = 0 or S2ENDI = 1 (AArch64 little-endian tables only)");
  if (s::S2Ha::From(ste) != 0 || s::S2Hd::From(ste) != 0 || s::S2S::From(ste) != 0)
    return Reject(why, "S2HA/S2HD/S2S set without HTTU or stalls (RES0 here)");
  unsigned gshift = 0;
  switch (s::S2Tg::From(ste)) {
    case 0:
      gshift = 12;
      break;
    case 1:
      gshift = 16;
      break;
    case 2:
      gshift = 14;
      break;
    default:
      return Reject(why, "S2TG is reserved (0b11)");
  }
  if (!GranuleSupported(o, gshift))
    return Reject(why, "S2TG names a granule IDR5 does not support");
  const unsigned oa_bits = std::min(PaBits(s::S2Ps::From(ste)), o.oas_bits);
  const auto tsz = static_cast<unsigned>(s::S2T0Sz::From(ste));
  // IAS = OAS (AArch64 only); no small translation tables (IDR3.STT = 0): S2T0SZ <= 39.
  if (tsz > 39 || tsz < 64 - o.oas_bits)
    return Reject(why, "S2T0SZ out of range (> 39, or an IPA wider than OAS)");
  const uint64_t sl0 = s::S2Sl0::From(ste);
  if (sl0 == 3) return Reject(why, "S2SL0 = 0b11 is reserved");
  const unsigned start_level =
      gshift == 12 ? 2 - static_cast<unsigned>(sl0) : 3 - static_cast<unsigned>(sl0);
  const unsigned ia_bits = 64 - tsz;
  const unsigned shift = LevelShift(gshift, start_level);
  // The start level must resolve at least one bit and at most 16 concatenated tables.
  if (ia_bits <= shift || ia_bits - shift > Stride(gshift) + 4)
    return Reject(
        why, "S2SL0 and S2T0SZ give an impossible start level (none or > 16 concatenated tables)");
  const uint64_t ttb = ste[3] & s::S2Ttb::kMask;
  if ((ttb >> oa_bits) != 0) return Reject(why, "S2TTB beyond the output address size");
  config->s2_tsz = tsz;
  config->s2_granule_shift = gshift;
  config->s2_start_level = start_level;
  config->s2_oa_bits = oa_bits;
  config->s2_ttb = ttb;
  config->s2_affd = s::S2Affd::From(ste) != 0;
  config->s2_record = s::S2R::From(ste) != 0;
  return true;
}

// IHI0070 5.4: decode a fetched CD. Returns false for an invalid or ILLEGAL CD (C_BAD_CD).
bool SmmuModel::DecodeCd(const Options& o, const uint64_t* cd, S1Context* ctx, const char** why) {
  namespace d = ly::cd;
  if (d::V::From(cd) == 0 || d::Aa64::From(cd) == 0 || d::Endi::From(cd) != 0)
    return Reject(why, "V = 0, AA64 = 0 or ENDI = 1 (5.4: AArch64 little-endian tables only)");
  if (!CdRes0Clear(o, cd)) return Reject(why, "a RES0 field is non-zero (5.4)");
  if (d::A::From(cd) == 0)
    return Reject(why,
                  "A = 0 (stalls; IDR0.TERM_MODEL = 1 requires aborts)");  // IDR0.TERM_MODEL = 1
  if (d::S::From(cd) != 0)
    return Reject(why, "S = 1 (IDR0.STALL_MODEL = 0b01: no stalls)");  // IDR0.STALL_MODEL = 0b01
  if (d::Ha::From(cd) != 0 || d::Hd::From(cd) != 0)
    return Reject(why, "HA/HD set (IDR0.HTTU = 0)");  // IDR0.HTTU = 0
  ctx->oa_bits = std::min(PaBits(d::Ips::From(cd)), o.oas_bits);
  ctx->asid = static_cast<uint16_t>(d::Asid::From(cd) & (o.asid16 ? 0xFFFF : 0xFF));
  ctx->record = d::R::From(cd) != 0;
  ctx->affd = d::Affd::From(cd) != 0;
  ctx->wxn = d::Wxn::From(cd) != 0;
  ctx->pan = d::Pan::From(cd) != 0;
  const uint64_t tbi = d::Tbi::From(cd);
  for (unsigned t = 0; t < 2; ++t) {
    ctx->tbi[t] = ((tbi >> t) & 1) != 0;
    ctx->enabled[t] = (t == 0 ? d::Epd0::From(cd) : d::Epd1::From(cd)) == 0;
    if (!ctx->enabled[t]) continue;
    const auto tsz = static_cast<unsigned>(t == 0 ? d::T0Sz::From(cd) : d::T1Sz::From(cd));
    if (tsz < 16 || tsz > 39)
      return Reject(why, "TxSZ out of range (16..39)");  // no 52-bit VAs (VAX = 0), no STT
    const uint64_t tg = t == 0 ? d::Tg0::From(cd) : d::Tg1::From(cd);
    static constexpr unsigned kTg0Shift[4] = {12, 16, 14, 0};
    static constexpr unsigned kTg1Shift[4] = {0, 14, 12, 16};
    const unsigned gshift = t == 0 ? kTg0Shift[tg] : kTg1Shift[tg];
    if (!GranuleSupported(o, gshift))
      return Reject(why, "TGx names a granule IDR5 does not support");
    const uint64_t ttb = cd[1 + t] & d::Ttb0::kMask;
    if ((ttb >> ctx->oa_bits) != 0)
      return Reject(why, "TTBx beyond the output address size (IPS, OAS)");
    const bool had = (t == 0 ? d::Had0::From(cd) : d::Had1::From(cd)) != 0;
    ctx->hierarchical[t] = !(o.had && had);
    ctx->tsz[t] = tsz;
    ctx->granule_shift[t] = gshift;
    ctx->ttb[t] = ttb;
  }
  return true;
}

bool SmmuModel::FindCd(uint32_t sid, const StreamConfig& config, S1Context* ctx, Fault* fault) {
  const auto key = std::make_pair(sid, config.cd_addr);
  if (auto it = cd_cache_.find(key); it != cd_cache_.end()) {
    const bool ok = DecodeCd(options_, it->second.data(), ctx, nullptr);
    DEVISO_ASSERT(ok);  // only valid CDs are cached
    return true;
  }
  std::array<uint64_t, ly::cd::kWords> cd{};
  if (ConsumeInjection(&cd_fetch_aborts_)) {
    *fault = Fault{ly::evt::kFCdFetch, false, true, config.cd_addr};
    return false;
  }
  for (size_t i = 0; i < cd.size(); ++i) {
    if (!memory_.UnitRead64(config.cd_addr + 8 * i, &cd[i])) {
      *fault = Fault{ly::evt::kFCdFetch, false, true, config.cd_addr + 8 * i};
      return false;
    }
  }
  ++cd_fetches_;
  if (!DecodeCd(options_, cd.data(), ctx, nullptr)) {
    *fault = Fault{ly::evt::kCBadCd, false, true, 0};
    return false;
  }
  cd_cache_[key] = cd;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Translation

Status SmmuModel::DeviceRead(uint32_t sid, uint64_t iova, void* buf, size_t len,
                             AccessAttrs attrs) {
  std::unique_lock<std::mutex> lock(mu_);
  const Status s = Access(sid, iova, static_cast<uint8_t*>(buf), nullptr, len, attrs);
  UnlockAndFire(lock);
  return s;
}

Status SmmuModel::DeviceWrite(uint32_t sid, uint64_t iova, const void* buf, size_t len,
                              AccessAttrs attrs) {
  std::unique_lock<std::mutex> lock(mu_);
  const Status s = Access(sid, iova, nullptr, static_cast<const uint8_t*>(buf), len, attrs);
  UnlockAndFire(lock);
  return s;
}

Status SmmuModel::Access(uint32_t sid, uint64_t iova, uint8_t* read_buf, const uint8_t* write_buf,
                         size_t len, AccessAttrs attrs) {
  const bool write = write_buf != nullptr;
  if (write) attrs.instruction = false;  // writes are data accesses
  while (len > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(len, kPage - (iova & (kPage - 1))));
    uint64_t pa = 0;
    if (!Translate(sid, iova, write, attrs, &pa)) return Status::IoError();
    // The data transfer happens under the model's lock, so a CMD_SYNC that completes after an
    // invalidation also waits for transactions that used the old translation.
    const bool ok =
        write ? memory_.UnitWrite(pa, write_buf, chunk) : memory_.UnitRead(pa, read_buf, chunk);
    if (!ok) return Status::IoError();  // external abort: no event
    iova += chunk;
    if (write) {
      write_buf += chunk;
    } else {
      read_buf += chunk;
    }
    len -= chunk;
  }
  return Status::Ok();
}

// IHI0070 3.1-3.4: translate one transaction. Returns false if it is terminated (having recorded
// an event when the spec requires one).
bool SmmuModel::Translate(uint32_t sid, uint64_t iova, bool write, AccessAttrs attrs,
                          uint64_t* pa) {
  if (sfm_) {
    // IHI0070 12.3: in Service Failure Mode every transaction is terminated.
    ++sfm_terminations_;
    return false;
  }
  if (!SmmuEnabled()) {
    // IHI0070 6.3 SMMU_GBPA: no translation, no configuration access, no events.
    if (options_.gbpa_implemented && ly::gbpa::Abort::Get(gbpa_) != 0) return false;
    *pa = iova;
    return true;
  }
  auto access_event = [&](uint8_t type, bool s2, uint64_t fetch_addr) {
    EventRecord r = MakeEvent(type, sid);
    ly::evt::PnU::Put(r.raw.data(), attrs.privileged ? 1 : 0);
    ly::evt::InD::Put(r.raw.data(), attrs.instruction ? 1 : 0);
    ly::evt::RnW::Put(r.raw.data(), write ? 0 : 1);
    ly::evt::S2::Put(r.raw.data(), s2 ? 1 : 0);
    ly::evt::Class::Put(r.raw.data(), ly::evt::kClassIn);
    ly::evt::InputAddr::Put(r.raw.data(), iova);
    if (type == ly::evt::kFWalkEabt) {
      ly::evt::FetchAddr::Put(r.raw.data(), fetch_addr >> 3);
    } else if (s2) {
      ly::evt::Ipa::Put(r.raw.data(), iova >> 12);
    }
    RecordEvent(r);
  };
  auto config_event = [&](const Fault& f) {
    if (!f.record) return;
    EventRecord r = MakeEvent(f.type, sid);
    if (f.type == ly::evt::kFSteFetch || f.type == ly::evt::kFCdFetch) {
      ly::evt::FetchAddr::Put(r.raw.data(), f.fetch_addr >> 3);
    }
    RecordEvent(r);
  };

  std::array<uint64_t, ly::ste::kWords> ste{};
  Fault fault;
  if (!FindSte(sid, ste.data(), &fault)) {
    config_event(fault);
    return false;
  }
  StreamConfig config;
  if (!DecodeSte(options_, ste.data(), &config, nullptr)) {
    config_event(Fault{ly::evt::kCBadSte, false, true, 0});
    return false;
  }
  ste_cache_.emplace(sid, ste);  // a valid STE stays cached until CMD_CFGI_*

  if (config.config == ly::ste::kConfigAbort) return false;  // no event (IHI0070 5.2)
  if (config.config == ly::ste::kConfigBypass) {
    *pa = iova;
    return true;
  }

  WalkSetup w;
  w.vmid = config.vmid;
  uint64_t key = 0;
  uint64_t ia = 0;
  bool record = true;
  S1Context ctx;
  const bool s2 = config.config == ly::ste::kConfigS2;
  if (!s2) {
    if (!FindCd(sid, config, &ctx, &fault)) {
      config_event(fault);
      return false;
    }
    record = ctx.record;
    // Arm ARM D8.1: VA[55] selects TTB0 or TTB1; the bits above the input size must all equal
    // it (bits [55:ia_bits] only, with top-byte-ignore).
    const unsigned t = (iova >> 55) & 1;
    const unsigned ia_bits = 64 - ctx.tsz[t];
    uint64_t upper = iova >> ia_bits;
    if (ctx.tbi[t]) upper &= Mask(56 - ia_bits);
    const uint64_t expected = t == 0 ? 0 : Mask(ctx.tbi[t] ? 56 - ia_bits : 64 - ia_bits);
    if (!ctx.enabled[t] || upper != expected) {
      if (record) access_event(ly::evt::kFTranslation, false, 0);
      return false;
    }
    w.stage = 1;
    w.asid = ctx.asid;
    w.granule_shift = ctx.granule_shift[t];
    w.ia_bits = ia_bits;
    const unsigned stride = Stride(w.granule_shift);
    w.start_level = 4 - (ia_bits - w.granule_shift + stride - 1) / stride;
    w.oa_bits = ctx.oa_bits;
    w.root = ctx.ttb[t];
    w.hierarchical = ctx.hierarchical[t];
    w.affd = ctx.affd;
    key = iova & kS1KeyMask;
    ia = iova & Mask(ia_bits);
  } else {
    record = config.s2_record;
    const unsigned ia_bits = 64 - config.s2_tsz;
    if ((iova >> ia_bits) != 0) {
      if (record) access_event(ly::evt::kFTranslation, true, 0);
      return false;
    }
    w.stage = 2;
    w.granule_shift = config.s2_granule_shift;
    w.ia_bits = ia_bits;
    w.start_level = config.s2_start_level;
    w.oa_bits = config.s2_oa_bits;
    w.root = config.s2_ttb;
    w.affd = config.s2_affd;
    key = iova;
    ia = iova;
  }

  TlbEntry leaf{};
  uint64_t fetch_addr = 0;
  switch (Lookup(w, key, ia, &leaf, &fetch_addr)) {
    case WalkResult::kOk:
      break;
    case WalkResult::kTranslation:
      if (record) access_event(ly::evt::kFTranslation, s2, 0);
      return false;
    case WalkResult::kAddrSize:
      if (record) access_event(ly::evt::kFAddrSize, s2, 0);
      return false;
    case WalkResult::kAccess:
      if (record) access_event(ly::evt::kFAccess, s2, 0);
      return false;
    case WalkResult::kExtAbort:
      access_event(ly::evt::kFWalkEabt, s2, fetch_addr);
      return false;
  }
  const bool permitted =
      s2 ? S2Permitted(leaf, write, attrs) : S1Permitted(ctx, leaf, write, attrs);
  if (!permitted) {
    if (record) access_event(ly::evt::kFPermission, s2, 0);
    return false;
  }
  *pa = leaf.oa + (key & Mask(leaf.size_shift));
  return true;
}

SmmuModel::WalkResult SmmuModel::Lookup(const WalkSetup& w, uint64_t key, uint64_t ia,
                                        TlbEntry* leaf, uint64_t* fetch_addr) {
  for (const TlbEntry& e : iotlb_) {
    if (e.stage != w.stage || e.vmid != w.vmid || e.granule_shift != w.granule_shift) continue;
    if (w.stage == 1 && !e.global && e.asid != w.asid) continue;
    if ((key >> e.size_shift) != (e.key >> e.size_shift)) continue;
    *leaf = e;
    return WalkResult::kOk;
  }
  return Walk(w, key, ia, leaf, fetch_addr);
}

// Arm ARM D8.2-D8.3: a VMSAv8-64 walk, starting from the deepest table descriptor the walk
// cache holds for this address.
SmmuModel::WalkResult SmmuModel::Walk(const WalkSetup& w, uint64_t key, uint64_t ia, TlbEntry* leaf,
                                      uint64_t* fetch_addr) {
  const unsigned g = w.granule_shift;
  const unsigned stride = Stride(g);
  const unsigned top_bits = w.ia_bits - LevelShift(g, w.start_level);
  unsigned level = w.start_level;
  // The start-level table (or the concatenated tables) is aligned to its size, 64 bytes at least.
  uint64_t table = w.root & ~Mask(std::max(top_bits + 3, 6u));
  uint64_t attrs = 0;

  const WalkEntry* best = nullptr;
  for (const WalkEntry& e : walk_cache_) {
    if (e.stage != w.stage || e.vmid != w.vmid || e.granule_shift != g) continue;
    if (w.stage == 1 && e.asid != w.asid) continue;
    if ((key >> e.size_shift) != (e.key >> e.size_shift)) continue;
    if (best == nullptr || e.level > best->level) best = &e;
  }
  if (best != nullptr) {
    level = best->level;
    table = best->table;
    attrs = best->table_attrs;
  }

  for (;;) {
    const unsigned shift = LevelShift(g, level);
    const unsigned bits = level == w.start_level ? top_bits : stride;
    const uint64_t index = (ia >> shift) & Mask(bits);
    const uint64_t desc_addr = table + index * 8;
    uint64_t d = 0;
    if (!memory_.UnitRead64(desc_addr, &d)) {
      *fetch_addr = desc_addr;
      return WalkResult::kExtAbort;
    }
    ++descriptor_reads_;
    if (ly::pte::Valid::Get(d) == 0) return WalkResult::kTranslation;
    const bool is_table = ly::pte::Table::Get(d) != 0 && level < 3;
    if (ly::pte::Table::Get(d) == 0 && (level == 3 || !BlockAllowed(g, level))) {
      return WalkResult::kTranslation;  // block at a level that cannot hold one, or level 3 0b01
    }
    // Output (or next-table) address: bits [51:g]. Bits at or above the effective PA size,
    // including bits [51:48] that a 48-bit PA leaves RES0, are an Address Size fault.
    uint64_t oa = d & ly::pte::OutputAddr::kMask & ~Mask(g);
    if ((oa >> w.oa_bits) != 0) return WalkResult::kAddrSize;
    if (is_table) {
      if (w.hierarchical) {
        attrs |=
            d & (ly::pte::PxnTable::kMask | ly::pte::UxnTable::kMask | ly::pte::ApTable::kMask);
      }
      InsertWalk(
          WalkEntry{w.stage, w.vmid, w.asid, g, level + 1, shift, key & ~Mask(shift), oa, attrs});
      table = oa;
      ++level;
      continue;
    }
    oa &= ~Mask(shift);
    *leaf = TlbEntry{w.stage, w.vmid, w.asid, w.stage == 1 && ly::pte::NG::Get(d) == 0,
                     g,       level,  shift,  key & ~Mask(shift),
                     oa,      d,      attrs};
    // No hardware AF update (IDR0.HTTU = 0): AF = 0 faults unless AFFD. Such an entry is not
    // cached.
    if (ly::pte::Af::Get(d) == 0 && !w.affd) return WalkResult::kAccess;
    // nT, bit 16 of a block descriptor (IHI0070 3.21.1.1): at BBML = 1 the block is used but
    // not cached; BBML = 2 ignores it.
    constexpr uint64_t kNt = uint64_t{1} << 16;
    const bool block = level < 3;
    if (block && (d & kNt) != 0) {
      ++nt_block_walks_;
      if (options_.bbml == 1) return WalkResult::kOk;
    }
    InsertTlb(*leaf);
    return WalkResult::kOk;
  }
}

// Arm ARM D8.4: stage 1 permissions for the EL1&0 regime. A device access is EL0 unless
// privileged (PnU).
bool SmmuModel::S1Permitted(const S1Context& c, const TlbEntry& e, bool write,
                            AccessAttrs attrs) const {
  const uint64_t ap = ly::pte::Ap::Get(e.desc);
  bool el0 = (ap & 1) != 0;        // AP[1]
  bool read_only = (ap & 2) != 0;  // AP[2]
  bool pxn = ly::pte::Pxn::Get(e.desc) != 0;
  bool uxn = ly::pte::Uxn::Get(e.desc) != 0;
  const uint64_t ap_table = ly::pte::ApTable::Get(e.table_attrs);
  if ((ap_table & 1) != 0) el0 = false;
  if ((ap_table & 2) != 0) read_only = true;
  if (ly::pte::UxnTable::Get(e.table_attrs) != 0) uxn = true;
  if (ly::pte::PxnTable::Get(e.table_attrs) != 0) pxn = true;

  const bool el0_write = el0 && !read_only;
  const bool el1_write = !read_only;
  if (attrs.privileged && c.pan && el0 && !attrs.instruction) return false;  // PAN
  if (write) return attrs.privileged ? el1_write : el0_write;
  const bool readable = attrs.privileged || el0;
  if (!attrs.instruction) return readable;
  // Memory writable at EL0 is never executable at EL1; WXN makes writable memory XN.
  const bool exec = attrs.privileged ? !pxn && !el0_write && !(c.wxn && el1_write)
                                     : !uxn && !(c.wxn && el0_write);
  return readable && exec;
}

// Arm ARM D8.4: stage 2 permissions (S2AP, XN).
bool SmmuModel::S2Permitted(const TlbEntry& e, bool write, AccessAttrs attrs) {
  const uint64_t s2ap = ly::pte::S2Ap::Get(e.desc);
  if (write) return (s2ap & 2) != 0;
  if ((s2ap & 1) == 0) return false;
  return !attrs.instruction || ly::pte::Uxn::Get(e.desc) == 0;
}

void SmmuModel::InsertTlb(const TlbEntry& e) {
  if (options_.iotlb_entries == 0) return;
  if (iotlb_.size() >= options_.iotlb_entries) iotlb_.pop_front();  // FIFO replacement
  iotlb_.push_back(e);
}

void SmmuModel::InsertWalk(const WalkEntry& e) {
  if (options_.walk_cache_entries == 0) return;
  for (const WalkEntry& x : walk_cache_) {
    if (x.stage == e.stage && x.vmid == e.vmid && x.asid == e.asid &&
        x.granule_shift == e.granule_shift && x.level == e.level && x.key == e.key) {
      return;  // already cached
    }
  }
  if (walk_cache_.size() >= options_.walk_cache_entries) walk_cache_.pop_front();
  walk_cache_.push_back(e);
}

// ---------------------------------------------------------------------------------------------
// Interrupts, fault injection, observation

void SmmuModel::UnlockAndFire(std::unique_lock<std::mutex>& lock) {
  const PendingIrqs irqs = pending_;
  pending_ = PendingIrqs{};
  if (irqs.eventq == 0 && irqs.gerror == 0 && irqs.cmd_sync == 0) {
    lock.unlock();
    return;
  }
  const std::function<void()> eventq = irqs.eventq != 0 ? eventq_irq_ : nullptr;
  const std::function<void()> gerror = irqs.gerror != 0 ? gerror_irq_ : nullptr;
  const std::function<void()> cmd_sync = irqs.cmd_sync != 0 ? cmd_sync_irq_ : nullptr;
  lock.unlock();
  for (unsigned i = 0; eventq && i < irqs.eventq; ++i) eventq();
  for (unsigned i = 0; gerror && i < irqs.gerror; ++i) gerror();
  for (unsigned i = 0; cmd_sync && i < irqs.cmd_sync; ++i) cmd_sync();
}

void SmmuModel::SetEventqIrqHandler(std::function<void()> handler) {
  std::lock_guard<std::mutex> lock(mu_);
  eventq_irq_ = std::move(handler);
}

void SmmuModel::SetGerrorIrqHandler(std::function<void()> handler) {
  std::lock_guard<std::mutex> lock(mu_);
  gerror_irq_ = std::move(handler);
}

void SmmuModel::SetCmdSyncIrqHandler(std::function<void()> handler) {
  std::lock_guard<std::mutex> lock(mu_);
  cmd_sync_irq_ = std::move(handler);
}

void SmmuModel::InjectIllegalCommand(uint8_t opcode, unsigned times) {
  std::lock_guard<std::mutex> lock(mu_);
  if (times == 0) {
    illegal_opcodes_.erase(opcode);
  } else {
    illegal_opcodes_[opcode] = times;
  }
}

void SmmuModel::SetCr0AckStuck(bool stuck) {
  std::unique_lock<std::mutex> lock(mu_);
  cr0ack_stuck_ = stuck;
  if (!stuck && cr0ack_ != cr0_) {
    cr0ack_ = cr0_;
    ProcessCommands();
  }
  UnlockAndFire(lock);
}

void SmmuModel::SetCmdSyncStall(bool stalled) {
  std::unique_lock<std::mutex> lock(mu_);
  sync_stalled_ = stalled;
  if (!stalled) ProcessCommands();
  UnlockAndFire(lock);
}

void SmmuModel::SetIrqCtrlAckStuck(bool stuck) {
  std::lock_guard<std::mutex> lock(mu_);
  irq_ctrlack_stuck_ = stuck;
  if (!stuck) irq_ctrlack_ = irq_ctrl_;
}

void SmmuModel::SetGbpaUpdateStuck(bool stuck) {
  std::lock_guard<std::mutex> lock(mu_);
  gbpa_update_stuck_ = stuck;
  if (!stuck && ly::gbpa::Update::Get(gbpa_) != 0) gbpa_ = gbpa_pending_;
}

void SmmuModel::FloodEvents(uint32_t sid, unsigned n) {
  std::unique_lock<std::mutex> lock(mu_);
  for (unsigned i = 0; i < n; ++i) {
    EventRecord r = MakeEvent(ly::evt::kFTranslation, sid);
    ly::evt::RnW::Put(r.raw.data(), 1);
    ly::evt::Class::Put(r.raw.data(), ly::evt::kClassIn);
    ly::evt::InputAddr::Put(r.raw.data(), uint64_t{i} * kPage);
    RecordEvent(r);
  }
  UnlockAndFire(lock);
}

bool SmmuModel::ConsumeInjection(unsigned* counter) {
  if (*counter == 0) return false;
  --*counter;
  return true;
}

void SmmuModel::InjectCommandFetchAbort(unsigned times) {
  std::lock_guard<std::mutex> lock(mu_);
  cmd_fetch_aborts_ = times;
}

void SmmuModel::InjectEventqWriteAbort(unsigned times) {
  std::lock_guard<std::mutex> lock(mu_);
  eventq_write_aborts_ = times;
}

void SmmuModel::InjectSteFetchAbort(unsigned times) {
  std::lock_guard<std::mutex> lock(mu_);
  ste_fetch_aborts_ = times;
}

void SmmuModel::InjectCdFetchAbort(unsigned times) {
  std::lock_guard<std::mutex> lock(mu_);
  cd_fetch_aborts_ = times;
}

void SmmuModel::SetCmdSyncPolls(unsigned polls) {
  std::unique_lock<std::mutex> lock(mu_);
  sync_polls_ = polls;
  if (polls == 0 && sync_waiting_) {
    sync_waiting_ = false;
    sync_polls_left_ = 0;
    ProcessCommands();
  }
  UnlockAndFire(lock);
}

void SmmuModel::InjectCmdqConsGlitch(Glitch glitch, unsigned reads) {
  std::lock_guard<std::mutex> lock(mu_);
  cons_glitch_ = glitch;
  cons_glitch_reads_ = reads;
}

void SmmuModel::InjectEventqProdGlitch(Glitch glitch, unsigned reads) {
  std::lock_guard<std::mutex> lock(mu_);
  prod_glitch_ = glitch;
  prod_glitch_reads_ = reads;
}

void SmmuModel::SetDeviceGone(bool gone) {
  std::lock_guard<std::mutex> lock(mu_);
  gone_ = gone;
}

void SmmuModel::EnterServiceFailureMode() {
  std::unique_lock<std::mutex> lock(mu_);
  sfm_ = true;
  RaiseGerror(static_cast<uint32_t>(ly::gerror::SfmErr::kMask));
  UnlockAndFire(lock);
}

SmmuModel::CommandRule SmmuModel::last_illegal_rule() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_illegal_rule_;
}

uint64_t SmmuModel::gerror_irq_cfg0() const {
  std::lock_guard<std::mutex> lock(mu_);
  return gerror_irq_cfg0_;
}

uint64_t SmmuModel::eventq_irq_cfg0() const {
  std::lock_guard<std::mutex> lock(mu_);
  return eventq_irq_cfg0_;
}

uint64_t SmmuModel::max_commands_between_syncs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return max_commands_between_syncs_;
}

void SmmuModel::SetCommandProbe(uint32_t sid, uint64_t iova) {
  std::lock_guard<std::mutex> lock(mu_);
  probe_ = true;
  probe_sid_ = sid;
  probe_iova_ = iova;
  probe_counts_ = {};
}

void SmmuModel::ClearCommandProbe() {
  std::lock_guard<std::mutex> lock(mu_);
  probe_ = false;
}

SmmuModel::ProbeCounts SmmuModel::command_probe() const {
  std::lock_guard<std::mutex> lock(mu_);
  return probe_counts_;
}

uint64_t SmmuModel::nt_block_walks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return nt_block_walks_;
}

uint64_t SmmuModel::sfm_terminations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sfm_terminations_;
}

uint64_t SmmuModel::command_count(uint8_t opcode) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = command_counts_.find(opcode);
  return it == command_counts_.end() ? 0 : it->second;
}

uint64_t SmmuModel::command_errors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return command_errors_;
}

std::vector<CommandRecord> SmmuModel::command_log() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {command_log_.begin(), command_log_.end()};
}

void SmmuModel::ClearCommandLog() {
  std::lock_guard<std::mutex> lock(mu_);
  command_log_.clear();
}

size_t SmmuModel::iotlb_occupancy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return iotlb_.size();
}

size_t SmmuModel::walk_cache_occupancy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return walk_cache_.size();
}

size_t SmmuModel::config_cache_occupancy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ste_cache_.size() + l1std_cache_.size() + cd_cache_.size();
}

uint64_t SmmuModel::ste_fetches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ste_fetches_;
}

uint64_t SmmuModel::l1std_fetches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return l1std_fetches_;
}

uint64_t SmmuModel::cd_fetches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cd_fetches_;
}

uint64_t SmmuModel::descriptor_reads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return descriptor_reads_;
}

std::vector<EventRecord> SmmuModel::recent_events() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {recent_events_.begin(), recent_events_.end()};
}

uint64_t SmmuModel::events_written() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_written_;
}

uint64_t SmmuModel::events_lost() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_lost_;
}

uint64_t SmmuModel::sev_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sev_count_;
}

uint64_t SmmuModel::bad_register_accesses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bad_register_accesses_;
}

uint32_t SmmuModel::idr(unsigned n) const {
  DEVISO_ASSERT(n < 6);
  return idr_[n];
}

}  // namespace deviso::smmuv3::testing
