// deviso-decode's decoders (a host library, so that its tests call them directly): raw words
// from a console, a gdb `x/Ngx` dump or a file, turned into text that names every field with
// the section of the specification defining it. The SMMUv3 decoders read the records through
// the driver's own layouts (src/smmuv3/hw.h) and decode faults with the driver's DecodeFault;
// STE, CD and command verdicts are the host model's rules (SmmuModel::SteRejection,
// CdRejection, CheckCommand) applied to the part's ID registers: one source of truth each.

#ifndef DEVISO_TOOLS_DEVISO_DECODE_DECODE_H_
#define DEVISO_TOOLS_DEVISO_DECODE_DECODE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace deviso::decode {

// Hex words from text: "0x..." or bare hex tokens; gdb's "0x4000a000 <sym+8>:" address prefixes
// and QEMU monitor "000000004000a000:" prefixes are skipped; commas separate like spaces.
// Errors: a token that is not hex (returns nullopt and sets *error).
std::optional<std::vector<uint64_t>> ParseWords(const std::string& text, std::string* error);

// Joins 32-bit words pairwise into 64-bit words (little-endian: the first is the low half)
// when `words` has 2 * qwords entries, keeps them if it has `qwords`; nullopt otherwise.
std::optional<std::vector<uint64_t>> AsQwords(const std::vector<uint64_t>& words, size_t qwords);

// The ID registers deviso-decode judges STEs, CDs and commands against (IHI0070 6.3.1-6.3.6,
// 6.3.8 AIDR). The defaults are QEMU 7.2's virt SMMUv3 (stage 1 only, 16-bit SIDs).
struct Idrs {
  // QEMU 7.2 read back (/work/shared/notes/qemu-virt-smmuv3.md): S1P, TTF=AArch64, COHACC,
  // ASID16, TTENDIAN=LE, STALL_MODEL=0b01, TERM_MODEL, ST_LEVEL=2-level.
  uint32_t idr0 = 0x0d40101a;
  uint32_t idr1 = 0x02730010;  // SIDSIZE 16, EVENTQS 19, CMDQS 19
  uint32_t idr3 = 0x00001404;  // HAD, RIL, BBML=2
  uint32_t idr5 = 0x00000074;  // OAS 44 bits, 4K/16K/64K granules
  uint32_t aidr = 0x00000001;  // SMMUv3.1
};

// IHI0070 7.3: one event record (4 quadwords).
std::string DecodeSmmuEvent(const std::vector<uint64_t>& qwords);
// IHI0070 5.2: one STE (8 quadwords), with the verdict for `idrs` (C_BAD_STE or accepted).
std::string DecodeSte(const std::vector<uint64_t>& qwords, const Idrs& idrs);
// IHI0070 5.4: one CD (8 quadwords), with the verdict for `idrs` (C_BAD_CD or accepted).
std::string DecodeCd(const std::vector<uint64_t>& qwords, const Idrs& idrs);
// IHI0070 4: one command (2 quadwords), with the legality verdict for `idrs` (CERROR_ILL).
std::string DecodeCommand(const std::vector<uint64_t>& qwords, const Idrs& idrs);
// virtio 1.2 5.13.6.9: one struct virtio_iommu_fault (24 bytes: 3 quadwords).
std::string DecodeVirtioFault(const std::vector<uint64_t>& qwords);

// Physical memory for a table walk: quadwords by address (a raw image at a base, or gdb/QEMU
// text dumps, which may be sparse).
class MemoryImage {
 public:
  // A raw binary image whose first byte is at `base`.
  void AddRaw(uint64_t base, const std::string& bytes);
  // Text lines "ADDR: w w ..." (gdb `x/Ngx`, `x/Nwx`, QEMU `xp /Ngx`); `width` 32 or 64 bits.
  // Returns false on a line it cannot read (and sets *error).
  bool AddText(const std::string& text, unsigned width, std::string* error);
  std::optional<uint64_t> Read64(uint64_t pa) const;
  size_t size() const { return qwords_.size(); }

 private:
  std::map<uint64_t, uint64_t> qwords_;  // by 8-aligned address
};

// A VMSAv8-64 walk (Arm ARM D8.2-D8.3, as an SMMU does it for a CD's TTB0 or an STE's S2TTB).
struct WalkConfig {
  uint64_t root = 0;            // table base (TTB0 / S2TTB)
  uint64_t iova = 0;            // input address to translate
  unsigned stage = 1;           // 1 or 2
  unsigned granule_shift = 12;  // 12, 14, 16
  unsigned tsz = 16;            // T0SZ / S2T0SZ: input size 64 - tsz bits
  int start_level = -1;         // -1: from tsz (stage 1) or sl0 (stage 2)
  unsigned sl0 = 0;             // stage 2: STE.S2SL0
};
std::string Walk(const WalkConfig& config, const MemoryImage& memory);

// The IOVA map (deviso/dump.h lines, e.g. a console log with other lines around them) as an
// SVG picture: one row per device, its mapped extents coloured by permission, reserved regions
// hatched, `faults` (IOVAs, with the StreamID they hit) marked. Lines not part of a dump are
// ignored; fault lines in deviso_fault_format()'s style ("sid 0x10: ... at iova 0x...") before
// the dump's `end` are marked too (those after it may have met other mappings). The last dump
// in the text is drawn. Errors: no dump in the text (nullopt, *error).
struct MarkedFault {
  uint32_t sid = 0;
  uint64_t iova = 0;
};
std::optional<std::string> RenderMap(const std::string& text, std::vector<MarkedFault> faults,
                                     std::string* error);

}  // namespace deviso::decode

#endif  // DEVISO_TOOLS_DEVISO_DECODE_DECODE_H_
