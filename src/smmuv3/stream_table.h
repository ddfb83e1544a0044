// Arm SMMUv3 stream table (IHI0070 3.3 "Data structures and translation procedure", 5.1 L1
// descriptors, 5.2 STE): its geometry and the STEs this driver installs.
//
// Smmuv3 owns the table and programs it (stream_table.cc: allocation of L2 tables, the STE
// writer with its CFGI + CMD_SYNC steps, Attach/Detach); what is here is pure.

#ifndef DEVISO_SRC_SMMUV3_STREAM_TABLE_H_
#define DEVISO_SRC_SMMUV3_STREAM_TABLE_H_

#include <cstdint>

#include "smmuv3/domains.h"
#include "smmuv3/hw.h"

namespace deviso::smmuv3 {

// 2-level stream tables: StreamID bits [7:0] index an L2 table of 256 STEs, the bits above them
// the L1 table (STRTAB_BASE_CFG.SPLIT = 8, 6.3.25).
inline constexpr unsigned kStrtabSplitBits = 8;

// The L1 descriptor index of `sid` and its STE's index in that L2 table.
inline uint32_t StrtabL1Index(uint32_t sid) { return sid >> kStrtabSplitBits; }
inline uint32_t StrtabL2Index(uint32_t sid) { return sid & ((1U << kStrtabSplitBits) - 1); }

// 5.2: the STE that translates through `d`: Config = S1-translate with the domain's CD, or
// S2-translate with its VMID and table; SHCFG = incoming; CD fetches / stage 2 walks cacheable
// and inner-shareable only when `coherent`. Pure.
ds::Ste BuildSte(const SmmuDomain& d, bool coherent);

// 5.2: the STE of a bypassing stream (V=1, Config=0b100, incoming shareability).
ds::Ste BuildBypassSte();

// The entry writer's view of an STE (5.2): the bits of each of its 8 words the SMMU uses when
// it reads `ste`. Invalid: V only. Abort: V and Config. Bypass: word 0's V/Config and word 1.
// Stage 1 adds all of word 0 (S1ContextPtr, S1Fmt, S1CDMax) and S2VMID; stage 2 adds words 2
// and 3. Whole words where in doubt: more used bits only mean more breaks, never a torn entry.
void SteUsedBits(const uint64_t* ste, uint64_t* used);

}  // namespace deviso::smmuv3

#endif  // DEVISO_SRC_SMMUV3_STREAM_TABLE_H_
