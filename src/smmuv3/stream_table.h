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

}  // namespace deviso::smmuv3

#endif  // DEVISO_SRC_SMMUV3_STREAM_TABLE_H_
