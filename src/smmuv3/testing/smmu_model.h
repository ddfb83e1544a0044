// A register-level model of an Arm SMMUv3 (IHI0070) for host tests of deviso's SMMUv3 driver.
//
// The model is the driver's Mmio: the driver programs it through its registers and in-memory
// structures exactly as it would program hardware, and a test plays the device through
// DeviceRead() / DeviceWrite(). It is written from the specification independently of the
// driver, so that a misunderstanding shared by both cannot pass the tests.
//
// What is modelled (defaults in Options; the ID registers advertise exactly this):
//   * Registers of page 0 and page 1 (IHI0070 6.2, 6.3): IDR0-5, IIDR, AIDR, CR0/CR0ACK,
//     CR1, CR2, STATUSR, GBPA (Update handshake; optionally unimplemented, as in QEMU),
//     IRQ_CTRL/IRQ_CTRLACK, GERROR/GERRORN (an error is active while the bits differ),
//     STRTAB_BASE/_CFG, CMDQ_BASE/PROD/CONS, EVENTQ_BASE and EVENTQ_PROD/CONS in page 1.
//     64-bit registers also accept 32-bit accesses to either half. Accesses to any other offset
//     are RAZ/WI and counted (bad_register_accesses()), as are writes to read-only registers and
//     writes the spec forbids in the current state (e.g. CMDQ_BASE while CMDQEN=1: ignored).
//   * Stream tables, linear and 2-level (IHI0070 3.3, 5.1, 5.2), with the base address aligned
//     to the table size by ignoring low bits, as the SMMU does. STE.Config abort, bypass, stage 1
//     (one CD: S1CDMax = 0) and stage 2 (including concatenated start-level tables).
//   * Context descriptors (IHI0070 5.4): V, AA64, ENDI, A, S, HA/HD, EPD0/1, T0SZ/T1SZ, TG0/1,
//     IPS, TBI, AFFD, WXN, PAN, HAD0/1, ASID, R.
//   * Its own VMSAv8-64 walker (Arm ARM D8): 4K/16K/64K granules, table/block/page descriptors,
//     hierarchical attributes (APTable, UXNTable, PXNTable, unless CD.HADx), AF (no HTTU:
//     AF = 0 faults unless AFFD), nG, stage 1 AP[2:1]/PXN/UXN with PnU, stage 2 S2AP/XN, and
//     address-size faults for table and output addresses beyond the effective IPS/S2PS/OAS.
//   * Event records (IHI0070 7.3) F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION,
//     F_WALK_EABT, F_STE_FETCH, F_CD_FETCH, C_BAD_STREAMID, C_BAD_STE, C_BAD_CD with StreamID,
//     InputAddr, RnW, PnU, InD, S2, CLASS, IPA and FetchAddr. CD.R and STE.S2R gate the four
//     translation-fault types; CR2.RECINVSID gates C_BAD_STREAMID. The event queue wraps; an
//     event that finds it full is lost and EVENTQ_PROD.OVFLG toggles if it equals
//     EVENTQ_CONS.OVACKFLG (IHI0070 7.4). An event-queue write outside RAM raises
//     GERROR.EVENTQ_ABT_ERR.
//   * Commands (IHI0070 4): PREFETCH_CONFIG/ADDR (no-ops), CFGI_STE (Leaf), CFGI_STE_RANGE
//     (and CFGI_ALL = Range 31), CFGI_CD, CFGI_CD_ALL, TLBI_NH_ALL/ASID/VA/VAA, TLBI_S12_VMALL,
//     TLBI_S2_IPA, TLBI_NSNH_ALL, TLBI_EL2_* (only with Options::hyp), CMD_SYNC (CS none, IRQ,
//     SEV). Range invalidation with RIL: TG/SCALE/NUM give (NUM+1) * 2^SCALE granules from the
//     address aligned down to TG; TTL (used only with TG != 0) limits the invalidation to leaf
//     entries of that level; entries of another granule than TG are not invalidated; Leaf=1
//     keeps the walk cache. Without RIL an SMMUv3.2 (arch_minor >= 2) takes TG/TTL as a level
//     hint for one address. Commands are consumed synchronously when CMDQ_PROD is written.
//   * Command legality (IHI0070 4, 7.1; CommandRule): every field of every command is checked
//     before it executes; an illegal one stops the queue at that command with CMDQ_CONS.ERR =
//     CERROR_ILL and GERROR.CMDQ_ERR (last_illegal_rule() names the rule); a command read
//     outside RAM gives CERROR_ABT. Processing resumes from CMDQ_CONS once GERRORN
//     acknowledges. Where the spec leaves a RES0 field or reserved encoding CONSTRAINED
//     UNPREDICTABLE, the model refuses it. STEs and CDs with a non-zero RES0 field are ILLEGAL
//     (C_BAD_STE / C_BAD_CD).
//   * ID registers from Options (see smmu_model_profiles.h for named parts): IDR0/1/3/5,
//     IIDR, AIDR; with IDR0.MSI the *_IRQ_CFG0/1/2 registers are stored (no MSI is written).
//   * Caches that hold until invalidated: an IOTLB of leaf entries (FIFO replacement at
//     Options::iotlb_entries) tagged by stage, VMID, ASID (or global), granule and leaf level; a
//     walk cache of table descriptors (Options::walk_cache_entries); a configuration cache of
//     STEs, L1 stream table descriptors and CDs (unbounded: never evicted, so only a CFGI
//     removes an entry). Only valid structures are cached.
//
// Simplifications (deliberate; see also the per-function comments):
//   * No substreams (IDR1.SSIDSIZE = 0), PRI, ATS, stalls (STALL_MODEL = 0b01), MSI writes
//     (without Options::msi the *_IRQ_CFG registers are RAZ/WI), HTTU, Secure state, AArch32
//     tables, 52-bit addresses, VATOS, ECMDQ. SFM is entered only by
//     EnterServiceFailureMode(). STE.S1DSS, S1STALLD, EATS, the attribute overrides (SHCFG,
//     MTCFG, PRIVCFG, INSTCFG...) and CR1/CR2.PTM/E2H are stored and ignored.
//   * Nested translation (STE.Config = 0b111) is reported as C_BAD_STE even when both stages
//     are implemented.
//   * A stage 1 STE with STRW != 0 is C_BAD_STE: EL2 stream worlds are not modelled (not even
//     with Options::hyp, which only makes CMD_TLBI_EL2_* legal no-ops).
//   * STE.S1DSS is ignored, as the spec says for S1CDMax = 0. (QEMU 7.2 differs: it aborts a
//     stage 1 stream whose S1DSS is 0b00 even then, so a driver should set S1DSS anyway.)
//   * On a Leaf = 0 TLBI the walk-cache entries covering the range go whatever the TTL hint.
//   * The RES0 bits CD.HA/HD/S and STE.S2HA/S2HD/S2S are checked strictly (C_BAD_CD /
//     C_BAD_STE), as QEMU does, since HTTU and stalls are not implemented.
//   * STE.S2VMID tags stage 1 entries too when stage 2 is implemented (IHI0070 5.2), so the
//     VMID of TLBI_NH_* commands must match it; without stage 2 VMIDs are ignored.
//   * An instruction fetch needs read permission as well as execute permission; writes are
//     always data accesses.
//   * A stage 2 input address beyond 2^(64 - S2T0SZ) (including beyond IAS) is a stage 2
//     F_TRANSLATION.
//   * CMD_CFGI_STE and CMD_CFGI_STE_RANGE (Range < 31) do not drop cached CDs; only CFGI_CD,
//     CFGI_CD_ALL and CFGI_ALL do. Cached CDs are keyed by (StreamID, CD address).
//   * The contiguous hint is ignored (entries are cached at descriptor size).
//   * Memory: every access of the model (queues, stream tables, CDs, translation tables, the
//     device's data) goes through SimPhysMemory's Unit*() accessors, which see only what the CPU
//     cleaned when the memory is non-coherent; event records are written there too, so the
//     driver must invalidate before reading them. An address outside the simulated memory is
//     an external abort.
//
// Thread safety: every public function may be called from any thread; one internal mutex
// serialises them. Interrupt callbacks run on the calling thread after that mutex is released,
// so a callback may read registers.

#ifndef DEVISO_SRC_SMMUV3_TESTING_SMMU_MODEL_H_
#define DEVISO_SRC_SMMUV3_TESTING_SMMU_MODEL_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "core/mmio.h"
#include "deviso/status.h"
#include "smmuv3/testing/smmu_model_layout.h"
#include "testing/sim_memory.h"

namespace deviso::smmuv3::testing {

// Attributes of a device transaction (IHI0070 3.2: PnU, InD). The default is what a PCIe
// device issues: an unprivileged data access.
struct AccessAttrs {
  bool privileged = false;
  bool instruction = false;
};

// One event record as the model wrote it to the event queue (IHI0070 7.3).
struct EventRecord {
  std::array<uint64_t, 4> raw{};

  uint8_t type() const { return static_cast<uint8_t>(layout::evt::Type::From(raw.data())); }
  uint32_t stream_id() const {
    return static_cast<uint32_t>(layout::evt::StreamId::From(raw.data()));
  }
  uint64_t input_addr() const { return layout::evt::InputAddr::From(raw.data()); }
  bool rnw() const { return layout::evt::RnW::From(raw.data()) != 0; }
  bool pnu() const { return layout::evt::PnU::From(raw.data()) != 0; }
  bool ind() const { return layout::evt::InD::From(raw.data()) != 0; }
  bool s2() const { return layout::evt::S2::From(raw.data()) != 0; }
  uint8_t event_class() const { return static_cast<uint8_t>(layout::evt::Class::From(raw.data())); }
  uint64_t ipa() const { return layout::evt::Ipa::From(raw.data()) << 12; }
  uint64_t fetch_addr() const { return layout::evt::FetchAddr::From(raw.data()) << 3; }
};

// One command the model consumed.
struct CommandRecord {
  uint8_t opcode = 0;
  std::array<uint64_t, 2> raw{};
};

class SmmuModel final : public Mmio {
 public:
  struct Options {
    // IDR0.
    bool stage1 = true;            // S1P
    bool stage2 = true;            // S2P (QEMU 7.2 has 0; stage 2 is modelled here)
    bool coherent_access = true;   // COHACC; forced to 0 when the SimPhysMemory is non-coherent
    bool two_level_strtab = true;  // ST_LEVEL = 0b01
    bool asid16 = true;
    bool vmid16 = false;
    bool hyp = false;  // HYP: accept CMD_TLBI_EL2_* (no EL2 translation is modelled)
    // IDR1: StreamID bits and maximum queue sizes (log2 of entries).
    unsigned sid_bits = 16;
    unsigned cmdq_log2 = 19;
    unsigned eventq_log2 = 19;
    // IDR3.
    bool ril = true;  // range invalidation
    unsigned bbml = 2;
    bool had = true;  // CD.HAD0/HAD1 honoured
    // IDR5.
    unsigned oas_bits = 44;  // 32, 36, 40, 42, 44 or 48
    bool gran4k = true;
    bool gran16k = true;
    bool gran64k = true;
    // IDR0.MSI: the *_IRQ_CFG0/1/2 registers exist (they are stored; no MSI is written).
    // Their ADDR fields reset to an UNKNOWN value (IHI0070 6.3), which the model makes a
    // recognisable non-zero address (kUnknownMsiAddr) so that "never programmed" shows.
    bool msi = false;
    // IIDR (IHI0070 6.3: ProductID, Variant, Revision, Implementer) and AIDR (architecture
    // revision: ArchMajorRev = 0 is SMMUv3, ArchMinorRev = x is SMMUv3.x).
    uint32_t iidr = 0;
    unsigned arch_minor = 1;
    // GBPA: implemented (with the Update handshake) or RAZ/WI as in QEMU 7.2 (all bypass).
    bool gbpa_implemented = true;
    bool gbpa_abort_at_reset = false;  // reset value of GBPA.ABORT
    // Cache and log sizes.
    size_t iotlb_entries = 256;
    size_t walk_cache_entries = 64;
    size_t recent_events = 64;
    size_t command_log_entries = 4096;
  };

  // The reset value the model gives the ADDR field of SMMU_*_IRQ_CFG0 (IDR0.MSI = 1).
  static constexpr uint64_t kUnknownMsiAddr = 0x0000'0BAD'0BAD'0000;

  // The rule an illegal command broke (IHI0070 4, 7.1 CERROR_ILL). kNone: legal.
  enum class CommandRule : uint8_t {
    kNone,
    kOpcode,        // reserved, Secure-only, or of a feature not implemented (ATS, PRI, ...)
    kSsec,          // SSec = 1 on the Non-secure command queue
    kRes0,          // a RES0 field of this command is non-zero
    kAsidWidth,     // ASID[15:8] != 0 with IDR0.ASID16 = 0
    kVmidWidth,     // VMID[15:8] != 0 with IDR0.VMID16 = 0
    kStage1Absent,  // CMD_TLBI_NH_* with IDR0.S1P = 0
    kStage2Absent,  // CMD_TLBI_S12_VMALL / S2_IPA with IDR0.S2P = 0
    kHypAbsent,     // CMD_TLBI_EL2_* with IDR0.HYP = 0
    kRangeNoRil,    // NUM or SCALE != 0 with IDR3.RIL = 0
    kHintNoV32,     // TG or TTL != 0 on an SMMUv3.0/3.1 without RIL (the fields are RES0)
    kTgGranule,     // TG names a granule IDR5 does not support
    kRangeZero,     // RIL = 1, TG != 0 with TTL = NUM = SCALE = 0 (4.4.1.1: reserved)
    kTtlLevel,      // TTL names a level that holds no leaf for granule TG
    kTtlWithoutTg,  // TTL, NUM or SCALE != 0 with TG = 0
    kSyncCs,        // CMD_SYNC CS = 0b11
    kSubstreamId,   // CMD_CFGI_CD SubstreamID beyond IDR1.SSIDSIZE (0 bits here)
    kInjected,      // InjectIllegalCommand()
  };
  static const char* CommandRuleName(CommandRule rule);

  // The model's rules applied to a part described by its ID registers, for tools that judge a
  // record captured elsewhere (deviso-decode) by the same rules the model enforces.
  // The Options an SMMU with these IDR0/1/3/5 and AIDR values is modelled with.
  static Options OptionsFromIdrs(uint32_t idr0, uint32_t idr1, uint32_t idr3, uint32_t idr5,
                                 uint32_t aidr);
  // The rule a command (2 words) breaks on such a part (CERROR_ILL), or kNone.
  static CommandRule CheckCommand(const Options& options, const uint64_t* raw);
  // Why the part would refuse an STE (8 words; C_BAD_STE), or nullptr if it takes it.
  static const char* SteRejection(const Options& options, const uint64_t* ste);
  // Why the part would refuse a CD (8 words; C_BAD_CD), or nullptr if it takes it.
  static const char* CdRejection(const Options& options, const uint64_t* cd);

  // A register glitch (InjectCmdqConsGlitch / InjectEventqProdGlitch).
  enum class Glitch : uint8_t {
    kAllOnes,    // the read returns 0xFFFFFFFF (a device that is gone)
    kBackwards,  // the read returns the pointer moved back by one entry (index - 1)
  };

  // `memory` must outlive the model. Options must be in range (asserted): sid_bits <= 32,
  // queue log2 sizes <= 19, a supported oas_bits, at least one granule and one stage.
  SmmuModel(deviso::testing::SimPhysMemory& memory, const Options& options);
  explicit SmmuModel(deviso::testing::SimPhysMemory& memory) : SmmuModel(memory, Options()) {}
  ~SmmuModel() override = default;
  SmmuModel(const SmmuModel&) = delete;
  SmmuModel& operator=(const SmmuModel&) = delete;

  // ---- Mmio: the driver's view. Offsets as in layout::reg. ----
  uint32_t Read32(size_t offset) override;
  void Write32(size_t offset, uint32_t value) override;
  // 64-bit registers are accessed whole; a 64-bit access elsewhere is two 32-bit accesses.
  uint64_t Read64(size_t offset) override;
  void Write64(size_t offset, uint64_t value) override;

  // ---- The device's view ----
  // Reads `len` bytes at device address `iova` as StreamID `sid` would, translating each 4 KiB
  // piece on its own (so a fault part-way leaves the earlier pieces done, as a DMA would).
  // Returns OK when every byte was transferred; -EIO when the access was terminated: by
  // GBPA.ABORT, an abort STE, a configuration error or translation fault (the event, if any, is
  // recorded as the spec says), or an external abort (output address outside the memory).
  Status DeviceRead(uint32_t sid, uint64_t iova, void* buf, size_t len, AccessAttrs attrs = {});
  // As DeviceRead, for a write of `len` bytes from `buf`.
  Status DeviceWrite(uint32_t sid, uint64_t iova, const void* buf, size_t len,
                     AccessAttrs attrs = {});

  // ---- Interrupts: each handler is called once per event (edge-like) ----
  // An event record was written while IRQ_CTRLACK.EVENTQ_IRQEN = 1.
  void SetEventqIrqHandler(std::function<void()> handler);
  // A GERROR bit became active while IRQ_CTRLACK.GERROR_IRQEN = 1.
  void SetGerrorIrqHandler(std::function<void()> handler);
  // A CMD_SYNC with CS = IRQ completed (the wired "CMD_SYNC" interrupt; no MSI).
  void SetCmdSyncIrqHandler(std::function<void()> handler);

  // ---- Fault injection ----
  // The next `times` commands with this opcode are treated as illegal (CERROR_ILL).
  void InjectIllegalCommand(uint8_t opcode, unsigned times = 1);
  // While stuck, writes to CR0 are not acknowledged in CR0ACK (and so do not take effect).
  // Unsticking acknowledges the last value written.
  void SetCr0AckStuck(bool stuck);
  // While stalled, the command queue stops in front of any CMD_SYNC (CONS stays on it).
  // Unstalling resumes processing.
  void SetCmdSyncStall(bool stalled);
  // While stuck, IRQ_CTRL writes are not acknowledged in IRQ_CTRLACK (nor take effect).
  void SetIrqCtrlAckStuck(bool stuck);
  // While stuck, a GBPA write with Update = 1 leaves Update set and is not applied.
  void SetGbpaUpdateStuck(bool stuck);
  // Writes `n` F_TRANSLATION records for `sid` (InputAddr = i * 4 KiB) through the normal event
  // path, e.g. to overflow the queue. Requires EVENTQEN like any event.
  void FloodEvents(uint32_t sid, unsigned n);
  // The next `times` command reads from the queue get an external abort: the queue stops at
  // that command with CMDQ_CONS.ERR = CERROR_ABT and GERROR.CMDQ_ERR (IHI0070 7.1).
  void InjectCommandFetchAbort(unsigned times = 1);
  // The next `times` event-record writes get an external abort: the record is lost and
  // GERROR.EVENTQ_ABT_ERR becomes active (IHI0070 7.2).
  void InjectEventqWriteAbort(unsigned times = 1);
  // The next `times` fetches of an STE (or L1 descriptor) / a CD get an external abort: the
  // transaction is terminated and F_STE_FETCH / F_CD_FETCH is recorded with its FetchAddr
  // (IHI0070 7.3.4, 7.3.10). Nothing is cached.
  void InjectSteFetchAbort(unsigned times = 1);
  void InjectCdFetchAbort(unsigned times = 1);
  // Each CMD_SYNC completes only after `polls` reads of SMMU_CMDQ_CONS have seen it pending
  // (0: at once). Commands behind it wait; everything before it has been executed.
  void SetCmdSyncPolls(unsigned polls);
  // The next `reads` reads of SMMU_CMDQ_CONS / SMMU_EVENTQ_PROD return a glitched value; the
  // model's state is unchanged.
  void InjectCmdqConsGlitch(Glitch glitch, unsigned reads = 1);
  void InjectEventqProdGlitch(Glitch glitch, unsigned reads = 1);
  // While gone, every register read returns all-ones and writes are dropped (a unit that was
  // powered off or fell off the interconnect). Coming back restores the state it had.
  void SetDeviceGone(bool gone);
  // Service Failure Mode (IHI0070 12.3): GERROR.SFM_ERR becomes active, every transaction is
  // terminated (no event), no command is consumed and no event written, until the model is
  // destroyed; only a reset leaves SFM.
  void EnterServiceFailureMode();

  // ---- Observation ----
  // Commands consumed (successfully executed) with this opcode.
  uint64_t command_count(uint8_t opcode) const;
  uint64_t sync_count() const { return command_count(layout::cmd::kSync); }
  // Commands that stopped the queue with an error.
  uint64_t command_errors() const;
  // The rule the last illegal command broke (kNone if no command was illegal yet).
  CommandRule last_illegal_rule() const;
  // SMMU_GERROR_IRQ_CFG0 / SMMU_EVENTQ_IRQ_CFG0 as last written (kUnknownMsiAddr in ADDR if
  // never written; 0 without IDR0.MSI).
  uint64_t gerror_irq_cfg0() const;
  uint64_t eventq_irq_cfg0() const;
  // The longest run of commands consumed without a CMD_SYNC between them (MMU-700 erratum
  // 2812531 asks for at most 63).
  uint64_t max_commands_between_syncs() const;
  // Transactions terminated because the unit is in Service Failure Mode.
  uint64_t sfm_terminations() const;
  // A device read of one byte at `iova` by `sid` before every command the model consumes, so a
  // test sees what a device sees at each step of a table update (e.g. a block split): the
  // counts of reads that reached memory and of those that faulted. ClearCommandProbe() stops.
  void SetCommandProbe(uint32_t sid, uint64_t iova);
  void ClearCommandProbe();
  struct ProbeCounts {
    uint64_t reached = 0;
    uint64_t faulted = 0;
  };
  ProbeCounts command_probe() const;
  // Walks that ended at a block descriptor with nT = 1 (IHI0070 3.21.1.1). With IDR3.BBML = 1
  // such a block translates but is never cached (3.21.1.2: one interpretation of "not cached
  // in a way that will cause a TLB conflict"); with BBML = 2 nT is ignored.
  uint64_t nt_block_walks() const;
  // The last Options::command_log_entries commands consumed, oldest first.
  std::vector<CommandRecord> command_log() const;
  void ClearCommandLog();
  // Entries currently cached.
  size_t iotlb_occupancy() const;
  size_t walk_cache_occupancy() const;
  size_t config_cache_occupancy() const;  // STEs + L1 descriptors + CDs
  // Configuration structures fetched from memory (cache misses).
  uint64_t ste_fetches() const;
  uint64_t l1std_fetches() const;
  uint64_t cd_fetches() const;
  // Translation-table descriptors read from memory.
  uint64_t descriptor_reads() const;
  // The last Options::recent_events records written to the queue, oldest first.
  std::vector<EventRecord> recent_events() const;
  uint64_t events_written() const;
  uint64_t events_lost() const;  // queue full (overflow), disabled, or write aborted
  uint64_t sev_count() const;    // CMD_SYNC with CS = SEV
  uint64_t bad_register_accesses() const;
  // Raw register values, for tests.
  uint32_t idr(unsigned n) const;

 private:
  struct Queue {
    uint64_t base = 0;
    uint32_t prod = 0;
    uint32_t cons = 0;
  };
  struct QueueGeometry {
    uint64_t base;  // aligned as the SMMU uses it
    unsigned log2;
  };
  struct S1Context {
    uint16_t asid = 0;
    bool record = false;
    bool affd = false;
    bool wxn = false;
    bool pan = false;
    unsigned oa_bits = 0;
    bool enabled[2] = {false, false};     // !EPDx
    bool hierarchical[2] = {true, true};  // !HADx (with IDR3.HAD)
    bool tbi[2] = {false, false};
    unsigned tsz[2] = {0, 0};
    unsigned granule_shift[2] = {0, 0};
    uint64_t ttb[2] = {0, 0};
  };
  struct StreamConfig {
    uint64_t config = 0;  // STE.Config
    uint16_t vmid = 0;
    uint64_t cd_addr = 0;
    // Stage 2.
    unsigned s2_tsz = 0;
    unsigned s2_granule_shift = 0;
    unsigned s2_start_level = 0;
    unsigned s2_oa_bits = 0;
    uint64_t s2_ttb = 0;
    bool s2_affd = false;
    bool s2_record = false;
  };
  struct WalkSetup {
    uint8_t stage = 1;
    uint16_t vmid = 0;
    uint16_t asid = 0;
    unsigned granule_shift = 12;
    unsigned start_level = 0;
    unsigned ia_bits = 48;
    unsigned oa_bits = 48;
    uint64_t root = 0;
    bool hierarchical = false;
    bool affd = false;
  };
  struct TlbEntry {
    uint8_t stage;
    uint16_t vmid;
    uint16_t asid;
    bool global;
    unsigned granule_shift;
    unsigned level;
    unsigned size_shift;
    uint64_t key;  // input address of the region, aligned to 2^size_shift
    uint64_t oa;   // output address of the region
    uint64_t desc;
    uint64_t table_attrs;
  };
  struct WalkEntry {
    uint8_t stage;
    uint16_t vmid;
    uint16_t asid;
    unsigned granule_shift;
    unsigned level;       // level of the table it points to
    unsigned size_shift;  // size of the region the table descriptor covers
    uint64_t key;
    uint64_t table;
    uint64_t table_attrs;
  };
  enum class WalkResult : uint8_t { kOk, kTranslation, kAddrSize, kAccess, kExtAbort };
  struct Fault {
    uint8_t type = 0;
    bool s2 = false;
    bool record = true;
    uint64_t fetch_addr = 0;
  };
  // What TLB invalidation removes.
  struct Invalidation {
    bool stage1 = false;
    bool stage2 = false;
    bool match_vmid = false;
    uint16_t vmid = 0;
    bool match_asid = false;      // non-global stage 1 entries of `asid` only
    bool asid_or_global = false;  // entries of `asid` and global ones (NH_VA)
    uint16_t asid = 0;
    bool by_address = false;
    uint64_t start = 0;
    uint64_t end = 0;  // exclusive
    bool leaf_only = false;
    unsigned ttl_level = 0;      // 0: any
    unsigned granule_shift = 0;  // 0: any
  };
  struct PendingIrqs {
    unsigned eventq = 0;
    unsigned gerror = 0;
    unsigned cmd_sync = 0;
  };

  // Register file (caller holds mu_).
  uint32_t ReadLocked(size_t offset);
  void WriteLocked(size_t offset, uint32_t value);
  uint64_t* Reg64(size_t offset);
  bool IsReg64(size_t offset) const;
  void WriteReg64Locked(size_t offset, uint64_t value, uint64_t mask);
  void WriteCr0(uint32_t value);
  void WriteIrqCtrl(uint32_t value);
  void WriteGbpa(uint32_t value);
  void WriteGerrorN(uint32_t value);
  bool SmmuEnabled() const { return layout::cr0::SmmuEn::Get(cr0ack_) != 0; }
  bool CmdqEnabled() const { return layout::cr0::CmdqEn::Get(cr0ack_) != 0; }
  bool EventqEnabled() const { return layout::cr0::EventqEn::Get(cr0ack_) != 0; }
  void RaiseGerror(uint32_t bit);

  // Queues.
  QueueGeometry Geometry(uint64_t base, unsigned max_log2, unsigned entry_shift) const;
  void ProcessCommands();
  uint32_t ExecuteCommand(const uint64_t* raw);  // returns a CERROR code
  static bool ConsumeInjection(unsigned* counter);
  static CommandRule CheckTlbiFields(const Options& o, const uint64_t* raw);
  static bool SteRes0Clear(const Options& o, const uint64_t* ste);
  static bool CdRes0Clear(const Options& o, const uint64_t* cd);
  void RecordEvent(const EventRecord& record);
  EventRecord MakeEvent(uint8_t type, uint32_t sid) const;

  // Configuration.
  bool FindSte(uint32_t sid, uint64_t* ste, Fault* fault);
  // Static, on the Options alone, so that SteRejection/CdRejection apply the same rules. On a
  // refusal *why (if why is not null) names the rule.
  static bool DecodeSte(const Options& o, const uint64_t* ste, StreamConfig* config,
                        const char** why);
  bool FindCd(uint32_t sid, const StreamConfig& config, S1Context* ctx, Fault* fault);
  static bool DecodeCd(const Options& o, const uint64_t* cd, S1Context* ctx, const char** why);
  static bool GranuleSupported(const Options& o, unsigned shift);
  bool GranuleSupported(unsigned shift) const { return GranuleSupported(options_, shift); }
  static unsigned PaBits(uint64_t encoding);

  // Translation.
  // Exactly one of read_buf (a read) and write_buf (a write) is non-null.
  Status Access(uint32_t sid, uint64_t iova, uint8_t* read_buf, const uint8_t* write_buf,
                size_t len, AccessAttrs attrs);
  bool Translate(uint32_t sid, uint64_t iova, bool write, AccessAttrs attrs, uint64_t* pa);
  WalkResult Lookup(const WalkSetup& w, uint64_t key, uint64_t ia, TlbEntry* leaf,
                    uint64_t* fetch_addr);
  WalkResult Walk(const WalkSetup& w, uint64_t key, uint64_t ia, TlbEntry* leaf,
                  uint64_t* fetch_addr);
  bool S1Permitted(const S1Context& c, const TlbEntry& e, bool write, AccessAttrs attrs) const;
  static bool S2Permitted(const TlbEntry& e, bool write, AccessAttrs attrs);
  void InsertTlb(const TlbEntry& e);
  void InsertWalk(const WalkEntry& e);
  void Invalidate(const Invalidation& inv);
  uint32_t TlbiCommand(uint8_t opcode, const uint64_t* raw);

  // Releases `lock` (on mu_), then calls the handlers of the interrupts raised under it.
  void UnlockAndFire(std::unique_lock<std::mutex>& lock);

  deviso::testing::SimPhysMemory& memory_;
  const Options options_;
  mutable std::mutex mu_;

  // Registers.
  uint32_t idr_[6] = {};
  uint32_t iidr_ = 0;
  uint32_t aidr_ = 0;
  uint64_t gerror_irq_cfg0_ = 0;
  uint64_t eventq_irq_cfg0_ = 0;
  uint32_t gerror_irq_cfg1_ = 0;
  uint32_t gerror_irq_cfg2_ = 0;
  uint32_t eventq_irq_cfg1_ = 0;
  uint32_t eventq_irq_cfg2_ = 0;
  uint32_t cr0_ = 0;
  uint32_t cr0ack_ = 0;
  uint32_t cr1_ = 0;
  uint32_t cr2_ = 0;
  uint32_t gbpa_ = 0;
  uint32_t gbpa_pending_ = 0;
  uint32_t irq_ctrl_ = 0;
  uint32_t irq_ctrlack_ = 0;
  uint32_t gerror_ = 0;
  uint32_t gerrorn_ = 0;
  uint64_t strtab_base_ = 0;
  uint32_t strtab_base_cfg_ = 0;
  Queue cmdq_;
  Queue eventq_;

  // Caches.
  std::map<uint32_t, std::array<uint64_t, layout::ste::kWords>> ste_cache_;
  std::map<uint32_t, uint64_t> l1std_cache_;  // by L1 index
  std::map<std::pair<uint32_t, uint64_t>, std::array<uint64_t, layout::cd::kWords>> cd_cache_;
  std::deque<TlbEntry> iotlb_;
  std::deque<WalkEntry> walk_cache_;

  // Fault injection.
  std::map<uint8_t, unsigned> illegal_opcodes_;
  bool cr0ack_stuck_ = false;
  bool sync_stalled_ = false;
  bool irq_ctrlack_stuck_ = false;
  bool gbpa_update_stuck_ = false;
  unsigned cmd_fetch_aborts_ = 0;
  unsigned eventq_write_aborts_ = 0;
  unsigned ste_fetch_aborts_ = 0;
  unsigned cd_fetch_aborts_ = 0;
  unsigned sync_polls_ = 0;       // polls each CMD_SYNC needs
  unsigned sync_polls_left_ = 0;  // for the CMD_SYNC at CONS
  bool sync_waiting_ = false;     // a CMD_SYNC at CONS is waiting for its polls
  Glitch cons_glitch_ = Glitch::kAllOnes;
  unsigned cons_glitch_reads_ = 0;
  Glitch prod_glitch_ = Glitch::kAllOnes;
  unsigned prod_glitch_reads_ = 0;
  bool gone_ = false;
  bool sfm_ = false;

  // Observation.
  std::map<uint8_t, uint64_t> command_counts_;
  uint64_t command_errors_ = 0;
  CommandRule last_illegal_rule_ = CommandRule::kNone;
  uint64_t commands_since_sync_ = 0;
  uint64_t max_commands_between_syncs_ = 0;
  uint64_t sfm_terminations_ = 0;
  bool probe_ = false;
  uint32_t probe_sid_ = 0;
  uint64_t probe_iova_ = 0;
  ProbeCounts probe_counts_;
  uint64_t nt_block_walks_ = 0;
  std::deque<CommandRecord> command_log_;
  std::deque<EventRecord> recent_events_;
  uint64_t events_written_ = 0;
  uint64_t events_lost_ = 0;
  uint64_t ste_fetches_ = 0;
  uint64_t l1std_fetches_ = 0;
  uint64_t cd_fetches_ = 0;
  uint64_t descriptor_reads_ = 0;
  uint64_t sev_count_ = 0;
  uint64_t bad_register_accesses_ = 0;

  // Interrupts.
  PendingIrqs pending_;
  std::function<void()> eventq_irq_;
  std::function<void()> gerror_irq_;
  std::function<void()> cmd_sync_irq_;
};

}  // namespace deviso::smmuv3::testing

#endif  // DEVISO_SRC_SMMUV3_TESTING_SMMU_MODEL_H_
