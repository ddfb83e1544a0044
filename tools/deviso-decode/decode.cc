// deviso-decode's decoders (decode.h).

#include "decode.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "deviso/deviso.h"
#include "smmuv3/hw.h"
#include "smmuv3/smmuv3.h"
#include "smmuv3/testing/smmu_model.h"
#include "virtio_iommu/hw.h"
#include "virtio_iommu/virtio_iommu.h"

namespace deviso::decode {
namespace {

using smmuv3::testing::SmmuModel;

uint64_t Bits(uint64_t word, unsigned hi, unsigned lo) {
  const unsigned width = hi - lo + 1;
  const uint64_t mask = width >= 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1;
  return (word >> lo) & mask;
}

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Writes "  Name  value  (meaning)  [section]" lines with aligned columns.
class Out {
 public:
  void Title(const std::string& s) { os_ << s << "\n"; }
  void Raw(const std::vector<uint64_t>& q, const char* what) {
    for (size_t i = 0; i < q.size(); ++i) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "  %s[%zu] = 0x%016llx\n", what, i,
                    static_cast<unsigned long long>(q[i]));
      os_ << buf;
    }
  }
  void Field(const std::string& name, const std::string& value, const std::string& meaning,
             const char* section) {
    char buf[256];
    std::snprintf(buf, sizeof(buf), "  %-16s %-20s", name.c_str(), value.c_str());
    os_ << buf;
    if (!meaning.empty()) os_ << " " << meaning;
    if (section != nullptr && section[0] != '\0') os_ << "  [" << section << "]";
    os_ << "\n";
  }
  void Field(const std::string& name, uint64_t value, const std::string& meaning,
             const char* section) {
    Field(name, Hex(value), meaning, section);
  }
  void Line(const std::string& s) { os_ << s << "\n"; }
  std::string str() const { return os_.str(); }

 private:
  std::ostringstream os_;
};

const char* EventSection(uint8_t id) {
  switch (id) {
    case smmuv3::ds::kEvtUut:
      return "IHI0070 7.3.1";
    case smmuv3::ds::kEvtBadStreamId:
      return "IHI0070 7.3.2";
    case smmuv3::ds::kEvtSteFetch:
      return "IHI0070 7.3.3";
    case smmuv3::ds::kEvtBadSte:
      return "IHI0070 7.3.4";
    case smmuv3::ds::kEvtBadAtsTreq:
      return "IHI0070 7.3.5";
    case smmuv3::ds::kEvtStreamDisabled:
      return "IHI0070 7.3.6";
    case smmuv3::ds::kEvtTranslForbidden:
      return "IHI0070 7.3.7";
    case smmuv3::ds::kEvtBadSubstreamId:
      return "IHI0070 7.3.8";
    case smmuv3::ds::kEvtCdFetch:
      return "IHI0070 7.3.9";
    case smmuv3::ds::kEvtBadCd:
      return "IHI0070 7.3.10";
    case smmuv3::ds::kEvtWalkEabt:
      return "IHI0070 7.3.11";
    case smmuv3::ds::kEvtTranslation:
      return "IHI0070 7.3.12";
    case smmuv3::ds::kEvtAddrSize:
      return "IHI0070 7.3.13";
    case smmuv3::ds::kEvtAccess:
      return "IHI0070 7.3.14";
    case smmuv3::ds::kEvtPermission:
      return "IHI0070 7.3.15";
    case smmuv3::ds::kEvtTlbConflict:
      return "IHI0070 7.3.16";
    case smmuv3::ds::kEvtCfgConflict:
      return "IHI0070 7.3.17";
    case smmuv3::ds::kEvtPageRequest:
      return "IHI0070 7.3.18";
    case smmuv3::ds::kEvtVmsFetch:
      return "IHI0070 7.3.19";
    default:
      return "IHI0070 7.3";
  }
}

// The events whose words 2 and 3 carry InputAddr and IPA/FetchAddr (IHI0070 7.3.9-7.3.15).
bool HasAddress(uint8_t id) {
  return id == smmuv3::ds::kEvtTranslation || id == smmuv3::ds::kEvtAddrSize ||
         id == smmuv3::ds::kEvtAccess || id == smmuv3::ds::kEvtPermission ||
         id == smmuv3::ds::kEvtWalkEabt || id == smmuv3::ds::kEvtUut ||
         id == smmuv3::ds::kEvtTranslForbidden || id == smmuv3::ds::kEvtTlbConflict;
}

bool HasFetchAddr(uint8_t id) {
  return id == smmuv3::ds::kEvtSteFetch || id == smmuv3::ds::kEvtCdFetch ||
         id == smmuv3::ds::kEvtWalkEabt || id == smmuv3::ds::kEvtVmsFetch;
}

SmmuModel::Options ModelOptions(const Idrs& idrs) {
  return SmmuModel::OptionsFromIdrs(idrs.idr0, idrs.idr1, idrs.idr3, idrs.idr5, idrs.aidr);
}

std::string IdrSummary(const Idrs& idrs) {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "IDR0 0x%08x IDR1 0x%08x IDR3 0x%08x IDR5 0x%08x AIDR 0x%08x",
                idrs.idr0, idrs.idr1, idrs.idr3, idrs.idr5, idrs.aidr);
  return buf;
}

const char* GranuleName(uint64_t tg, bool tg1) {
  // CD.TG0 / STE.S2TG: 0b00 4K, 0b01 64K, 0b10 16K; CD.TG1: 0b01 16K, 0b10 4K, 0b11 64K.
  static const char* const kTg0[] = {"4 KiB", "64 KiB", "16 KiB", "reserved"};
  static const char* const kTg1[] = {"reserved", "16 KiB", "4 KiB", "64 KiB"};
  return tg1 ? kTg1[tg & 3] : kTg0[tg & 3];
}

std::string AddressSize(uint64_t enc) {
  if (enc < sizeof(smmuv3::reg::kAddressSizeBits)) {
    return std::to_string(smmuv3::reg::kAddressSizeBits[enc]) + " bits";
  }
  return "reserved";
}

const char* Cacheability(uint64_t v) {
  static const char* const k[] = {"non-cacheable", "write-back", "write-through",
                                  "write-back, no allocate"};
  return k[v & 3];
}

const char* Shareability(uint64_t v) {
  static const char* const k[] = {"non-shareable", "reserved", "outer shareable",
                                  "inner shareable"};
  return k[v & 3];
}

}  // namespace

// ---- Input ------------------------------------------------------------------------------------

std::optional<std::vector<uint64_t>> ParseWords(const std::string& text, std::string* error) {
  std::vector<uint64_t> words;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    // gdb: "0x4000a000 <g_buf+8>:\t0x...\t0x..."; QEMU: "000000004000a000: 0x... 0x...".
    // Everything up to the last ':' is the address column.
    const size_t colon = line.rfind(':');
    if (colon != std::string::npos) line = line.substr(colon + 1);
    for (char& c : line) {
      if (c == ',' || c == '\t') c = ' ';
    }
    std::istringstream tokens(line);
    std::string t;
    while (tokens >> t) {
      std::string digits = t;
      if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
        digits = digits.substr(2);
      }
      const bool hex = !digits.empty() && digits.size() <= 16 &&
                       std::all_of(digits.begin(), digits.end(),
                                   [](unsigned char c) { return std::isxdigit(c) != 0; });
      if (!hex) {
        if (error != nullptr) *error = "not a hex word: '" + t + "'";
        return std::nullopt;
      }
      words.push_back(std::stoull(digits, nullptr, 16));
    }
  }
  return words;
}

std::optional<std::vector<uint64_t>> AsQwords(const std::vector<uint64_t>& words, size_t qwords) {
  if (words.size() == qwords) return words;
  if (words.size() != 2 * qwords) return std::nullopt;
  std::vector<uint64_t> q(qwords);
  for (size_t i = 0; i < qwords; ++i) {
    if ((words[2 * i] >> 32) != 0 || (words[2 * i + 1] >> 32) != 0) return std::nullopt;
    q[i] = words[2 * i] | (words[2 * i + 1] << 32);
  }
  return q;
}

// ---- SMMUv3 event (IHI0070 7.3) ---------------------------------------------------------------

std::string DecodeSmmuEvent(const std::vector<uint64_t>& q) {
  namespace ds = smmuv3::ds;
  Out out;
  ds::Event e;
  for (size_t i = 0; i < 4; ++i) e.raw[i] = q[i];
  const ds::Event::W0 w0{e.raw[0]};
  const ds::Event::W1 w1{e.raw[1]};
  const auto id = static_cast<uint8_t>(w0.event_id());
  const char* section = EventSection(id);
  out.Title(std::string("SMMUv3 event record: ") + smmuv3::Smmuv3::EventName(id) + "  [" + section +
            "]");
  out.Raw(q, "qword");
  out.Field("EventType", id, smmuv3::Smmuv3::EventName(id), "IHI0070 7.3");
  out.Field("SSV", w0.ssv(), w0.ssv() != 0 ? "SubstreamID valid" : "no substream", "IHI0070 7.3");
  if (w0.ssv() != 0) out.Field("SubstreamID", w0.substream_id(), "", "IHI0070 7.3");
  out.Field("StreamID", w0.stream_id(), "", "IHI0070 7.3");
  if (HasAddress(id)) {
    out.Field("STAG", w1.stag(), "stall tag (stalled faults only)", section);
    out.Field("Stall", w1.stall(), w1.stall() != 0 ? "stalled" : "terminated", section);
  }
  if (HasAddress(id)) {
    out.Field("PnU", w1.pnu(), w1.pnu() != 0 ? "privileged" : "unprivileged", section);
    out.Field("InD", w1.ind(), w1.ind() != 0 ? "instruction" : "data", section);
    out.Field("RnW", w1.rnw(), w1.rnw() != 0 ? "read" : "write", section);
    out.Field("NSIPA", w1.nsipa(), "", section);
    out.Field("S2", w1.s2(), w1.s2() != 0 ? "stage 2 fault" : "stage 1 fault", section);
    static const char* const kClass[] = {"CD fetch", "translation table walk", "input address",
                                         "reserved"};
    out.Field("CLASS", w1.cls(), kClass[w1.cls() & 3], section);
    out.Field("InputAddr", e.raw[2], "the transaction's address", section);
    if (w1.s2() != 0) {
      const ds::Event::W3 w3{e.raw[3]};
      out.Field("IPA", w3.ipa() << 12, "intermediate address, bits [51:12]", section);
    }
  }
  if (HasFetchAddr(id)) {
    const ds::Event::W3 w3{e.raw[3]};
    out.Field("FetchAddr", w3.fetch_addr() << 3, "physical address of the failed fetch", section);
  }
  // What the driver makes of it (the same DecodeFault the library runs on every record).
  // The driver tells a blocked stream's C_BAD_STE from a broken configuration by whether the
  // stream is attached, which the record does not say: both readings.
  for (const bool attached : {true, false}) {
    const Fault f = smmuv3::Smmuv3::DecodeFault(e, "smmuv3", attached);
    char line[256];
    (void)deviso_fault_format(&f, line, sizeof(line));
    out.Line(std::string(attached ? "deviso report (stream attached):     "
                                  : "deviso report (stream not attached): ") +
             line);
  }
  return out.str();
}

// ---- STE (IHI0070 5.2) ------------------------------------------------------------------------

std::string DecodeSte(const std::vector<uint64_t>& q, const Idrs& idrs) {
  Out out;
  out.Title("SMMUv3 Stream Table Entry  [IHI0070 5.2]");
  out.Raw(q, "qword");
  const char* s = "IHI0070 5.2";
  const uint64_t w0 = q[0], w1 = q[1], w2 = q[2], w3 = q[3];
  out.Field("V", Bits(w0, 0, 0), Bits(w0, 0, 0) != 0 ? "valid" : "invalid: C_BAD_STE", s);
  static const char* const kConfig[] = {"abort (no event)",
                                        "reserved",
                                        "reserved",
                                        "reserved",
                                        "bypass",
                                        "stage 1 translate, stage 2 bypass",
                                        "stage 1 bypass, stage 2 translate",
                                        "stage 1 and stage 2 (nested)"};
  const uint64_t config = Bits(w0, 3, 1);
  out.Field("Config", config, kConfig[config], s);
  const bool s1 = (config & 0b101) == 0b101;
  const bool s2 = (config & 0b110) == 0b110;
  if (s1) {
    static const char* const kFmt[] = {"linear CD table", "2-level, 4K L2", "2-level, 64K L2",
                                       "reserved"};
    out.Field("S1Fmt", Bits(w0, 5, 4), kFmt[Bits(w0, 5, 4)], s);
    out.Field("S1ContextPtr", w0 & 0x000ffffffffffc0ULL, "CD (table) address [51:6]", s);
    out.Field("S1CDMax", Bits(w0, 63, 59), "log2 of CDs (0: one CD, no substreams)", s);
    static const char* const kDss[] = {"terminate non-substream", "bypass stage 1",
                                       "use substream 0", "reserved"};
    out.Field("S1DSS", Bits(w1, 1, 0), kDss[Bits(w1, 1, 0)], s);
    out.Field("S1CIR", Bits(w1, 3, 2), Cacheability(Bits(w1, 3, 2)), s);
    out.Field("S1COR", Bits(w1, 5, 4), Cacheability(Bits(w1, 5, 4)), s);
    out.Field("S1CSH", Bits(w1, 7, 6), Shareability(Bits(w1, 7, 6)), s);
    out.Field("S1STALLD", Bits(w1, 27, 27), "", s);
  }
  if (config >= 4) {
    static const char* const kEats[] = {"ATS not allowed", "full ATS", "split-stage ATS",
                                        "reserved"};
    out.Field("EATS", Bits(w1, 29, 28), kEats[Bits(w1, 29, 28)], s);
    static const char* const kStrw[] = {"NS-EL1", "reserved", "EL2 / EL2-E2H", "reserved"};
    out.Field("STRW", Bits(w1, 31, 30), kStrw[Bits(w1, 31, 30)], s);
    out.Field("MEMATTR", Bits(w1, 35, 32), "", s);
    out.Field("MTCFG", Bits(w1, 36, 36), Bits(w1, 36, 36) != 0 ? "replace" : "use incoming", s);
    out.Field("ALLOCCFG", Bits(w1, 40, 37), "", s);
    static const char* const kShcfg[] = {"non-shareable", "use incoming", "outer shareable",
                                         "inner shareable"};
    out.Field("SHCFG", Bits(w1, 45, 44), kShcfg[Bits(w1, 45, 44)], s);
    out.Field("NSCFG", Bits(w1, 47, 46), "", s);
    out.Field("PRIVCFG", Bits(w1, 49, 48), "", s);
    out.Field("INSTCFG", Bits(w1, 51, 50), "", s);
  }
  if (s2 || (config >= 4 && Bits(w2, 15, 0) != 0)) {
    out.Field("S2VMID", Bits(w2, 15, 0), "", s);
  }
  if (s2) {
    out.Field("S2T0SZ", Bits(w2, 37, 32), std::to_string(64 - Bits(w2, 37, 32)) + "-bit IPA", s);
    out.Field("S2SL0", Bits(w2, 39, 38), "start level (with S2TG)", s);
    out.Field("S2IR0", Bits(w2, 41, 40), Cacheability(Bits(w2, 41, 40)), s);
    out.Field("S2OR0", Bits(w2, 43, 42), Cacheability(Bits(w2, 43, 42)), s);
    out.Field("S2SH0", Bits(w2, 45, 44), Shareability(Bits(w2, 45, 44)), s);
    out.Field("S2TG", Bits(w2, 47, 46), GranuleName(Bits(w2, 47, 46), false), s);
    out.Field("S2PS", Bits(w2, 50, 48), AddressSize(Bits(w2, 50, 48)), s);
    out.Field("S2AA64", Bits(w2, 51, 51), Bits(w2, 51, 51) != 0 ? "AArch64 tables" : "AArch32", s);
    out.Field("S2ENDI", Bits(w2, 52, 52), Bits(w2, 52, 52) != 0 ? "big-endian" : "little-endian",
              s);
    out.Field("S2AFFD", Bits(w2, 53, 53), "access flag fault disable", s);
    out.Field("S2PTW", Bits(w2, 54, 54), "", s);
    out.Field("S2HD/S2HA",
              std::to_string(Bits(w2, 55, 55)) + "/" + std::to_string(Bits(w2, 56, 56)),
              "hardware dirty/access flag update", s);
    out.Field("S2S", Bits(w2, 57, 57), "stall stage 2 faults", s);
    out.Field("S2R", Bits(w2, 58, 58),
              Bits(w2, 58, 58) != 0 ? "record faults" : "faults not recorded", s);
    out.Field("S2TTB", w3 & 0x000ffffffffffff0ULL, "stage 2 table address [51:4]", s);
  }
  const char* why = SmmuModel::SteRejection(ModelOptions(idrs), q.data());
  out.Line("verdict for " + IdrSummary(idrs) + ":");
  out.Line(why == nullptr ? "  accepted" : std::string("  C_BAD_STE: ") + why);
  return out.str();
}

// ---- CD (IHI0070 5.4) -------------------------------------------------------------------------

std::string DecodeCd(const std::vector<uint64_t>& q, const Idrs& idrs) {
  Out out;
  out.Title("SMMUv3 Context Descriptor  [IHI0070 5.4]");
  out.Raw(q, "qword");
  const char* s = "IHI0070 5.4";
  const uint64_t w0 = q[0];
  out.Field("T0SZ", Bits(w0, 5, 0), std::to_string(64 - Bits(w0, 5, 0)) + "-bit input (TTB0)", s);
  out.Field("TG0", Bits(w0, 7, 6), GranuleName(Bits(w0, 7, 6), false), s);
  out.Field("IR0", Bits(w0, 9, 8), Cacheability(Bits(w0, 9, 8)), s);
  out.Field("OR0", Bits(w0, 11, 10), Cacheability(Bits(w0, 11, 10)), s);
  out.Field("SH0", Bits(w0, 13, 12), Shareability(Bits(w0, 13, 12)), s);
  out.Field("EPD0", Bits(w0, 14, 14), Bits(w0, 14, 14) != 0 ? "TTB0 walks disabled" : "TTB0 walks",
            s);
  out.Field("ENDI", Bits(w0, 15, 15), Bits(w0, 15, 15) != 0 ? "big-endian" : "little-endian", s);
  out.Field("T1SZ", Bits(w0, 21, 16), "", s);
  out.Field("TG1", Bits(w0, 23, 22), GranuleName(Bits(w0, 23, 22), true), s);
  out.Field("EPD1", Bits(w0, 30, 30), Bits(w0, 30, 30) != 0 ? "TTB1 walks disabled" : "TTB1 walks",
            s);
  out.Field("V", Bits(w0, 31, 31), Bits(w0, 31, 31) != 0 ? "valid" : "invalid: C_BAD_CD", s);
  out.Field("IPS", Bits(w0, 34, 32), AddressSize(Bits(w0, 34, 32)), s);
  out.Field("AFFD", Bits(w0, 35, 35), "access flag fault disable", s);
  out.Field("WXN/UWXN", std::to_string(Bits(w0, 36, 36)) + "/" + std::to_string(Bits(w0, 37, 37)),
            "", s);
  out.Field("TBI", Bits(w0, 39, 38), "top byte ignore (TTB0, TTB1)", s);
  out.Field("PAN", Bits(w0, 40, 40), "", s);
  out.Field("AA64", Bits(w0, 41, 41), Bits(w0, 41, 41) != 0 ? "AArch64 tables" : "AArch32", s);
  out.Field("HD/HA", std::to_string(Bits(w0, 42, 42)) + "/" + std::to_string(Bits(w0, 43, 43)),
            "hardware dirty/access flag update", s);
  out.Field("S", Bits(w0, 44, 44), Bits(w0, 44, 44) != 0 ? "stall faults" : "", s);
  out.Field("R", Bits(w0, 45, 45), Bits(w0, 45, 45) != 0 ? "record faults" : "faults not recorded",
            s);
  out.Field("A", Bits(w0, 46, 46), Bits(w0, 46, 46) != 0 ? "abort on fault" : "", s);
  out.Field("ASET", Bits(w0, 47, 47), "", s);
  out.Field("ASID", Bits(w0, 63, 48), "", s);
  out.Field("TTB0", q[1] & 0x000ffffffffffff0ULL, "table address [51:4]", s);
  out.Field("HAD0", Bits(q[1], 63, 63), "hierarchical attributes disabled", s);
  out.Field("TTB1", q[2] & 0x000ffffffffffff0ULL, "", s);
  out.Field("MAIR", q[3], "memory attributes (MAIR_EL1 layout, Arm ARM D19.2)", s);
  out.Field("AMAIR", q[4], "", s);
  const char* why = SmmuModel::CdRejection(ModelOptions(idrs), q.data());
  out.Line("verdict for " + IdrSummary(idrs) + ":");
  out.Line(why == nullptr ? "  accepted" : std::string("  C_BAD_CD: ") + why);
  return out.str();
}

// ---- Commands (IHI0070 4) ---------------------------------------------------------------------

namespace {

struct OpcodeInfo {
  uint8_t op;
  const char* name;
  const char* section;
};

constexpr OpcodeInfo kOpcodes[] = {
    {0x01, "CMD_PREFETCH_CONFIG", "IHI0070 4.2.1"},
    {0x02, "CMD_PREFETCH_ADDR", "IHI0070 4.2.2"},
    {0x03, "CMD_CFGI_STE", "IHI0070 4.3.1"},
    {0x04, "CMD_CFGI_STE_RANGE", "IHI0070 4.3.2"},
    {0x05, "CMD_CFGI_CD", "IHI0070 4.3.4"},
    {0x06, "CMD_CFGI_CD_ALL", "IHI0070 4.3.5"},
    {0x07, "CMD_CFGI_VMS_PIDM", "IHI0070 4.3.7"},
    {0x10, "CMD_TLBI_NH_ALL", "IHI0070 4.4.2"},
    {0x11, "CMD_TLBI_NH_ASID", "IHI0070 4.4.3"},
    {0x12, "CMD_TLBI_NH_VA", "IHI0070 4.4.4"},
    {0x13, "CMD_TLBI_NH_VAA", "IHI0070 4.4.5"},
    {0x18, "CMD_TLBI_EL3_ALL", "IHI0070 4.4.6"},
    {0x1a, "CMD_TLBI_EL3_VA", "IHI0070 4.4.7"},
    {0x20, "CMD_TLBI_EL2_ALL", "IHI0070 4.4.8"},
    {0x21, "CMD_TLBI_EL2_ASID", "IHI0070 4.4.9"},
    {0x22, "CMD_TLBI_EL2_VA", "IHI0070 4.4.10"},
    {0x23, "CMD_TLBI_EL2_VAA", "IHI0070 4.4.11"},
    {0x28, "CMD_TLBI_S12_VMALL", "IHI0070 4.4.12"},
    {0x2a, "CMD_TLBI_S2_IPA", "IHI0070 4.4.13"},
    {0x30, "CMD_TLBI_NSNH_ALL", "IHI0070 4.4.14"},
    {0x40, "CMD_ATC_INV", "IHI0070 4.5.1"},
    {0x41, "CMD_PRI_RESP", "IHI0070 4.6.1"},
    {0x44, "CMD_RESUME", "IHI0070 4.7.1"},
    {0x45, "CMD_STALL_TERM", "IHI0070 4.7.2"},
    {0x46, "CMD_SYNC", "IHI0070 4.7.3"},
};

bool IsTlbiByAddress(uint8_t op) {
  return op == 0x12 || op == 0x13 || op == 0x22 || op == 0x23 || op == 0x2a;
}

}  // namespace

std::string DecodeCommand(const std::vector<uint64_t>& q, const Idrs& idrs) {
  Out out;
  const auto op = static_cast<uint8_t>(Bits(q[0], 7, 0));
  const OpcodeInfo* info = nullptr;
  for (const OpcodeInfo& i : kOpcodes) {
    if (i.op == op) info = &i;
  }
  const char* s = info != nullptr ? info->section : "IHI0070 4.1";
  out.Title(std::string("SMMUv3 command: ") + (info != nullptr ? info->name : "reserved opcode") +
            "  [" + s + "]");
  out.Raw(q, "qword");
  out.Field("Opcode", op, info != nullptr ? info->name : "reserved", "IHI0070 4.1.1");
  switch (op) {
    case 0x01:
    case 0x02:
    case 0x03:
    case 0x04:
    case 0x05:
    case 0x06:
      out.Field("SSec", Bits(q[0], 10, 10),
                Bits(q[0], 10, 10) != 0 ? "Secure stream" : "Non-secure", s);
      out.Field("StreamID", Bits(q[0], 63, 32), "", s);
      if (op == 0x05 || op <= 0x02) out.Field("SubstreamID", Bits(q[0], 31, 12), "", s);
      if (op == 0x03 || op == 0x05) {
        out.Field("Leaf", Bits(q[1], 0, 0),
                  Bits(q[1], 0, 0) != 0 ? "only the STE/CD itself" : "and what it points to", s);
      }
      if (op == 0x04) {
        const uint64_t range = Bits(q[1], 4, 0);
        out.Field("Range", range,
                  range == 31 ? "all StreamIDs (CMD_CFGI_ALL, IHI0070 4.3.3)"
                              : std::to_string(uint64_t{2} << range) + " StreamIDs",
                  s);
      }
      break;
    case 0x10:
    case 0x11:
    case 0x12:
    case 0x13:
    case 0x28:
    case 0x2a:
    case 0x21:
    case 0x22:
      if (op != 0x21 && op != 0x22) out.Field("VMID", Bits(q[0], 47, 32), "", s);
      if (op == 0x11 || op == 0x12 || op == 0x21 || op == 0x22) {
        out.Field("ASID", Bits(q[0], 63, 48), "", s);
      }
      break;
    case 0x46: {
      static const char* const kCs[] = {"none", "IRQ (MSI)", "SEV", "reserved"};
      out.Field("CS", Bits(q[0], 13, 12), kCs[Bits(q[0], 13, 12)], s);
      out.Field("MSH", Bits(q[0], 23, 22), Shareability(Bits(q[0], 23, 22)), s);
      out.Field("MSIAttr", Bits(q[0], 27, 24), "", s);
      out.Field("MSIData", Bits(q[0], 63, 32), "", s);
      out.Field("MSIAddress", q[1] & 0x000ffffffffffffcULL, "", s);
      break;
    }
    default:
      break;
  }
  if (IsTlbiByAddress(op)) {
    const char* r = "IHI0070 4.4.1.1";
    out.Field("NUM", Bits(q[0], 16, 12), "range: (NUM + 1) << SCALE granules", r);
    out.Field("SCALE", Bits(q[0], 24, 20), "", r);
    out.Field("Leaf", Bits(q[1], 0, 0),
              Bits(q[1], 0, 0) != 0 ? "leaf entries only" : "and walk caches", s);
    out.Field("TTL", Bits(q[1], 9, 8), Bits(q[1], 9, 8) == 0 ? "any level" : "leaf level hint", r);
    static const char* const kTg[] = {"no hint", "4 KiB", "16 KiB", "64 KiB"};
    out.Field("TG", Bits(q[1], 11, 10), kTg[Bits(q[1], 11, 10)], r);
    out.Field(op == 0x2a ? "IPA" : "Address",
              q[1] & (op == 0x2a ? 0x000ffffffffff000ULL : ~0xfffULL), "", s);
  }
  const SmmuModel::CommandRule rule = SmmuModel::CheckCommand(ModelOptions(idrs), q.data());
  out.Line("verdict for " + IdrSummary(idrs) + ":");
  out.Line(rule == SmmuModel::CommandRule::kNone
               ? "  legal"
               : std::string("  CERROR_ILL (IHI0070 7.1): ") + SmmuModel::CommandRuleName(rule));
  return out.str();
}

// ---- virtio-iommu fault (virtio 1.2 5.13.6.9) -------------------------------------------------

std::string DecodeVirtioFault(const std::vector<uint64_t>& q) {
  namespace vi = virtio_iommu;
  Out out;
  const char* s = "virtio 1.2 5.13.6.9";
  out.Title(std::string("virtio-iommu fault event (struct virtio_iommu_fault)  [") + s + "]");
  out.Raw(q, "qword");
  vi::FaultEvent e{};
  e.reason = static_cast<uint8_t>(Bits(q[0], 7, 0));
  e.flags = static_cast<uint32_t>(Bits(q[0], 63, 32));
  e.endpoint = static_cast<uint32_t>(Bits(q[1], 31, 0));
  e.address = q[2];
  static const char* const kReason[] = {"UNKNOWN", "DOMAIN (endpoint not attached)",
                                        "MAPPING (address not mapped or not allowed)"};
  out.Field("reason", e.reason, e.reason < 3 ? kReason[e.reason] : "reserved", s);
  std::string flags;
  if ((e.flags & vi::kFaultFRead) != 0) flags += "READ ";
  if ((e.flags & vi::kFaultFWrite) != 0) flags += "WRITE ";
  if ((e.flags & vi::kFaultFExec) != 0) flags += "EXEC ";
  if ((e.flags & vi::kFaultFAddress) != 0) flags += "ADDRESS ";
  out.Field("flags", e.flags, flags, s);
  out.Field("endpoint", e.endpoint, "endpoint ID (the PCI requester ID on virt)", s);
  out.Field(
      "address", e.address,
      (e.flags & vi::kFaultFAddress) != 0 ? "faulting address" : "not valid (no ADDRESS flag)", s);
  if (Bits(q[0], 31, 8) != 0 || Bits(q[1], 63, 32) != 0) {
    out.Line("  warning: reserved bytes are non-zero");
  }
  const Fault f = vi::VirtioIommu::DecodeFault(e, "virtio-iommu", /*attached=*/true,
                                               /*mapped=*/false);
  char line[256];
  (void)deviso_fault_format(&f, line, sizeof(line));
  out.Line(std::string("deviso report (endpoint attached, address not mapped): ") + line);
  return out.str();
}

// ---- Memory and walks (Arm ARM D8) ------------------------------------------------------------

void MemoryImage::AddRaw(uint64_t base, const std::string& bytes) {
  for (size_t i = 0; i + 8 <= bytes.size(); i += 8) {
    uint64_t v = 0;
    std::memcpy(&v, bytes.data() + i, 8);  // little-endian host and target
    qwords_[(base + i) & ~uint64_t{7}] = v;
  }
}

bool MemoryImage::AddText(const std::string& text, unsigned width, std::string* error) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos || line[line.find_first_not_of(" \t")] == '#') continue;
    std::string addr = line.substr(0, colon);
    const size_t sp = addr.find_first_of(" \t<");
    if (sp != std::string::npos) addr = addr.substr(0, sp);
    std::optional<std::vector<uint64_t>> base = ParseWords(addr, error);
    if (!base || base->size() != 1) {
      if (error != nullptr) *error = "bad address column: '" + line + "'";
      return false;
    }
    std::optional<std::vector<uint64_t>> words = ParseWords(line.substr(colon + 1), error);
    if (!words) return false;
    uint64_t pa = (*base)[0];
    if (width == 64) {
      for (uint64_t w : *words) {
        qwords_[pa & ~uint64_t{7}] = w;
        pa += 8;
      }
    } else {
      for (uint64_t w : *words) {
        uint64_t& q = qwords_[pa & ~uint64_t{7}];
        q = (pa & 4) != 0 ? (q & 0xffffffffULL) | (w << 32)
                          : (q & ~0xffffffffULL) | (w & 0xffffffffULL);
        pa += 4;
      }
    }
  }
  return true;
}

std::optional<uint64_t> MemoryImage::Read64(uint64_t pa) const {
  auto it = qwords_.find(pa & ~uint64_t{7});
  if (it == qwords_.end()) return std::nullopt;
  return it->second;
}

namespace {

std::string PermsText(const WalkConfig& c, uint64_t d) {
  std::string p;
  if (c.stage == 1) {
    // Arm ARM D8.4.1 AP[2:1] (bits 7:6), PXN (53), UXN (54).
    const uint64_t ap = Bits(d, 7, 6);
    static const char* const kAp[] = {"EL1 rw, EL0 none", "rw (EL1 and EL0)", "EL1 ro, EL0 none",
                                      "ro (EL1 and EL0)"};
    p = std::string("AP=") + std::to_string(ap) + " " + kAp[ap];
    p += Bits(d, 54, 54) != 0 ? ", UXN" : ", unprivileged exec";
    if (Bits(d, 53, 53) != 0) p += ", PXN";
  } else {
    // D8.4.2 S2AP (bits 7:6), XN[1:0] (54:53).
    static const char* const kS2ap[] = {"none", "read", "write", "read-write"};
    p = std::string("S2AP=") + kS2ap[Bits(d, 7, 6)];
    p += Bits(d, 54, 53) != 0 ? ", XN" : "";
  }
  p += Bits(d, 10, 10) != 0 ? ", AF" : ", AF=0 (access flag fault unless AFFD)";
  static const char* const kSh[] = {"NSH", "reserved", "OSH", "ISH"};
  p += std::string(", SH=") + kSh[Bits(d, 9, 8)];
  if (c.stage == 1) {
    p += ", AttrIndx=" + std::to_string(Bits(d, 4, 2));
    if (Bits(d, 11, 11) != 0) p += ", nG";
  } else {
    p += ", MemAttr=" + Hex(Bits(d, 5, 2));
  }
  if (Bits(d, 52, 52) != 0) p += ", Contiguous";
  return p;
}

}  // namespace

std::string Walk(const WalkConfig& c, const MemoryImage& memory) {
  Out out;
  const unsigned g = c.granule_shift;
  const unsigned stride = g - 3;
  const unsigned ia_bits = 64 - c.tsz;
  char title[160];
  std::snprintf(title, sizeof(title),
                "VMSAv8-64 stage %u walk of 0x%llx: %u KiB granule, %u-bit input, root 0x%llx  "
                "[Arm ARM D8.2, D8.3]",
                c.stage, static_cast<unsigned long long>(c.iova), 1u << (g - 10), ia_bits,
                static_cast<unsigned long long>(c.root));
  out.Title(title);
  if (g != 12 && g != 14 && g != 16) {
    out.Line("  unsupported granule");
    return out.str();
  }
  if (ia_bits < 25 || ia_bits > 48) {
    out.Line("  input size out of range (TxSZ 16..39)");
    return out.str();
  }
  if ((c.iova >> ia_bits) != 0) {
    out.Line("  the address is beyond the input size: translation fault (level 0)");
    return out.str();
  }
  // Arm ARM D8.2.5: the start level resolves what is left above the lower levels.
  int level = c.start_level;
  if (level < 0) {
    if (c.stage == 2) {
      level = g == 12 ? 2 - static_cast<int>(c.sl0) : 3 - static_cast<int>(c.sl0);
    } else {
      level = 3;
      while (g + stride * static_cast<unsigned>(3 - level + 1) < ia_bits) --level;
    }
  }
  uint64_t table = c.root & 0x000ffffffffff000ULL & ~((uint64_t{1} << g) - 1);
  if (c.stage == 2) table = c.root & 0x000ffffffffffff0ULL;  // concatenated roots: S2TTB aligned
  if (level < 0 || level > 3) {
    out.Line("  impossible start level");
    return out.str();
  }
  for (bool first = true; level <= 3; ++level, first = false) {
    const unsigned shift = g + stride * static_cast<unsigned>(3 - level);
    // The start level takes every input bit above it (stage 2 may concatenate up to 16 tables).
    const unsigned bits = first ? (ia_bits > shift ? ia_bits - shift : 0) : stride;
    const uint64_t index = (c.iova >> shift) & ((uint64_t{1} << bits) - 1);
    const uint64_t pa = table + 8 * index;
    const std::optional<uint64_t> d = memory.Read64(pa);
    char buf[200];
    if (!d) {
      std::snprintf(buf, sizeof(buf),
                    "  level %d: table 0x%llx index %llu: descriptor at 0x%llx "
                    "not in the memory dump",
                    level, static_cast<unsigned long long>(table),
                    static_cast<unsigned long long>(index), static_cast<unsigned long long>(pa));
      out.Line(buf);
      return out.str();
    }
    std::snprintf(buf, sizeof(buf),
                  "  level %d: table 0x%llx index %llu: descriptor 0x%016llx at 0x%llx", level,
                  static_cast<unsigned long long>(table), static_cast<unsigned long long>(index),
                  static_cast<unsigned long long>(*d), static_cast<unsigned long long>(pa));
    out.Line(buf);
    if ((*d & 1) == 0) {
      std::snprintf(buf, sizeof(buf),
                    "    invalid: translation fault at level %d (F_TRANSLATION, "
                    "IHI0070 7.3.12)",
                    level);
      out.Line(buf);
      return out.str();
    }
    const bool is_table = (*d & 2) != 0 && level < 3;
    const uint64_t next = *d & 0x0000fffffffff000ULL & ~((uint64_t{1} << g) - 1);
    if (is_table) {
      std::string attrs;
      if (c.stage == 1) {
        // D8.3.1 table descriptor attributes: NSTable 63, APTable 62:61, UXNTable 60, PXNTable 59.
        attrs = " APTable=" + std::to_string(Bits(*d, 62, 61));
        if (Bits(*d, 60, 60) != 0) attrs += " UXNTable";
        if (Bits(*d, 59, 59) != 0) attrs += " PXNTable";
      }
      out.Line("    table -> 0x" + Hex(next).substr(2) + attrs + "  [Arm ARM D8.3.1]");
      table = next;
      continue;
    }
    if (level == 3 && (*d & 2) == 0) {
      out.Line("    reserved encoding at level 3: translation fault  [Arm ARM D8.3.2]");
      return out.str();
    }
    // D8.3: blocks at level 2, and at level 1 with 4 KiB only (no FEAT_LPA/LPA2).
    if (level == 0 || (level == 1 && g != 12)) {
      out.Line("    block descriptor where none is allowed: translation fault  [Arm ARM D8.3]");
      return out.str();
    }
    const uint64_t block = uint64_t{1} << shift;
    const uint64_t out_base = *d & 0x0000fffffffff000ULL & ~(block - 1);
    const uint64_t result = out_base | (c.iova & (block - 1));
    std::snprintf(buf, sizeof(buf), "    %s of 0x%llx bytes -> 0x%llx  [Arm ARM D8.3.2]",
                  level == 3 ? "page" : "block", static_cast<unsigned long long>(block),
                  static_cast<unsigned long long>(out_base));
    out.Line(buf);
    out.Line("    " + PermsText(c, *d) + "  [Arm ARM D8.4, D8.5]");
    std::snprintf(buf, sizeof(buf), "  result: 0x%llx -> PA 0x%llx",
                  static_cast<unsigned long long>(c.iova), static_cast<unsigned long long>(result));
    out.Line(buf);
    return out.str();
  }
  return out.str();
}

}  // namespace deviso::decode

// ---- The IOVA map as SVG ----------------------------------------------------------------------

namespace deviso::decode {
namespace {

struct Extent {
  uint64_t iova = 0;
  uint64_t size = 0;
  uint64_t pa = 0;
  std::string perms;  // "rw", "r", ... ; reserved regions: "msi" / "reserved"
  std::string type;
  uint64_t leaf = 0;
  bool reserved = false;
};

struct Row {
  std::string device;
  std::string unit;
  uint32_t sid = 0;
  std::string pci;
  int context = -1;  // -1: no context (blocked)
};

struct ContextInfo {
  std::string unit;
  uint64_t page = 0;
  std::vector<Extent> extents;  // mapped, then reserved, each in dump order
  bool listed = true;
};

// "key value" pairs of a dump line after its keyword.
std::map<std::string, std::string> Pairs(const std::string& rest) {
  std::map<std::string, std::string> kv;
  std::istringstream in(rest);
  std::string k, v;
  while (in >> k >> v) kv[k] = v;
  return kv;
}

uint64_t Num(const std::map<std::string, std::string>& kv, const char* key) {
  auto it = kv.find(key);
  if (it == kv.end()) return 0;
  return std::stoull(it->second, nullptr, 0);
}

std::string Str(const std::map<std::string, std::string>& kv, const char* key) {
  auto it = kv.find(key);
  return it == kv.end() ? std::string() : it->second;
}

std::string Esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '&':
        o += "&amp;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

std::string Size(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  unsigned u = 0;
  uint64_t v = bytes;
  while (u < 4 && v >= 1024 && v % 1024 == 0) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return Hex(bytes);
  return std::to_string(v) + " " + kUnits[u];
}

const char* Fill(const Extent& e) {
  if (e.reserved) return e.perms == "msi" ? "url(#hatch-msi)" : "url(#hatch)";
  const bool r = e.perms.find('r') != std::string::npos;
  const bool w = e.perms.find('w') != std::string::npos;
  if (r && w) return "#f4a742";  // read-write: orange
  if (r) return "#7cc47c";       // read-only: green
  if (w) return "#e06666";       // write-only: red
  return "#cccccc";
}

}  // namespace

std::optional<std::string> RenderMap(const std::string& text, std::vector<MarkedFault> faults,
                                     std::string* error) {
  static const char* const kKeywords[] = {
      "deviso-dump ",      "unit ",        "context ",      "stream context ",
      "reserved context ", "map context ", "maps context ", "end"};
  std::map<int, ContextInfo> contexts;
  std::vector<Row> rows;
  bool in_dump = false;
  bool seen_dump = false;
  bool dump_ended = false;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // A fault report: "sid 0x10: ... at iova 0x8090040".
    const size_t sid_at = line.find(": sid 0x");
    const size_t iova_at = line.find(" at iova 0x");
    // Only faults reported before the dump ended: the dump is the state they ran into (later
    // ones may have met other mappings).
    if (sid_at != std::string::npos && iova_at != std::string::npos && iova_at > sid_at &&
        !dump_ended) {
      MarkedFault f;
      f.sid = static_cast<uint32_t>(std::stoul(line.substr(sid_at + 6), nullptr, 16));
      f.iova = std::stoull(line.substr(iova_at + 9), nullptr, 16);
      faults.push_back(f);
      continue;
    }
    // Dump lines may carry a console prefix: find the keyword.
    size_t at = std::string::npos;
    const char* keyword = nullptr;
    for (const char* k : kKeywords) {
      const size_t p = line.find(k);
      // "end" only as the whole rest of the line (console text may contain the word).
      if (std::strcmp(k, "end") == 0 && p != std::string::npos && p + 3 != line.size()) continue;
      if (p != std::string::npos && (p < at)) {
        at = p;
        keyword = k;
      }
    }
    if (keyword == nullptr) continue;
    const std::string kw = keyword;
    if (kw == "deviso-dump ") {
      in_dump = true;
      seen_dump = true;
      dump_ended = false;
      contexts.clear();
      rows.clear();
      continue;
    }
    if (!in_dump) continue;
    const std::string rest = line.substr(at + kw.size());
    if (kw == "end") {
      in_dump = false;
      dump_ended = true;
      continue;
    }
    if (kw == "unit ") continue;
    if (kw == "context ") {
      std::istringstream in(rest);
      int n = -1;
      in >> n;
      std::string tail;
      std::getline(in, tail);
      const auto kv = Pairs(tail);
      contexts[n].unit = Str(kv, "unit");
      contexts[n].page = Num(kv, "page");
      continue;
    }
    // The rest start with the context number (or "-").
    std::istringstream in(rest);
    std::string n_text;
    in >> n_text;
    std::string tail;
    std::getline(in, tail);
    const auto kv = Pairs(tail);
    const int n = n_text == "-" ? -1 : std::stoi(n_text);
    if (kw == "stream context ") {
      Row r;
      r.device = Str(kv, "device");
      r.sid = static_cast<uint32_t>(Num(kv, "sid"));
      r.pci = Str(kv, "pci");
      r.context = n;
      if (n >= 0) r.unit = contexts[n].unit;
      rows.push_back(r);
    } else if (kw == "map context ") {
      Extent e;
      e.iova = Num(kv, "iova");
      e.size = Num(kv, "size");
      e.pa = Num(kv, "pa");
      e.perms = Str(kv, "perms");
      e.type = Str(kv, "type");
      e.leaf = Num(kv, "leaf");
      contexts[n].extents.push_back(e);
    } else if (kw == "reserved context ") {
      Extent e;
      e.iova = Num(kv, "iova");
      e.size = Num(kv, "size");
      e.perms = Str(kv, "kind");
      e.reserved = true;
      // One region per context, even if several of its streams report it.
      bool dup = false;
      for (const Extent& x : contexts[n].extents) {
        dup = dup || (x.reserved && x.iova == e.iova && x.size == e.size);
      }
      if (!dup) contexts[n].extents.push_back(e);
    } else if (kw == "maps context ") {
      contexts[n].listed = false;
    }
  }
  if (!seen_dump) {
    if (error != nullptr) *error = "no 'deviso-dump 1' line in the input";
    return std::nullopt;
  }

  constexpr int kLabelW = 270;
  constexpr int kBarW = 900;
  constexpr int kRowH = 100;
  constexpr int kTop = 56;
  const int height = kTop + kRowH * static_cast<int>(std::max<size_t>(rows.size(), 1)) + 40;
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kLabelW + kBarW + 20
      << "\" height=\"" << height << "\" font-family=\"monospace\" font-size=\"11\">\n";
  svg << "<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
         "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#eee\"/>"
         "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#999\" stroke-width=\"2\"/></pattern>"
         "<pattern id=\"hatch-msi\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
         "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#dde8ff\"/>"
         "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#6688cc\" stroke-width=\"2\"/>"
         "</pattern></defs>\n";
  svg << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg << "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">deviso IOVA map: what "
         "each device can reach</text>\n";
  svg << "<text x=\"10\" y=\"38\">extent: IOVA+size (perms) above, -&gt; PA and leaf size below; "
         "<tspan fill=\"#c07000\">orange rw</tspan>, <tspan fill=\"#2a8a2a\">green r</tspan>, "
         "<tspan fill=\"#c03030\">red w</tspan>, hatched: reserved (blue: MSI, passes "
         "untranslated); gaps not to scale; red marks: faults</text>\n";
  int y = kTop;
  for (const Row& row : rows) {
    svg << "<line x1=\"0\" y1=\"" << y << "\" x2=\"" << kLabelW + kBarW + 20 << "\" y2=\"" << y
        << "\" stroke=\"#ddd\"/>\n";
    svg << "<text x=\"10\" y=\"" << y + 22 << "\" font-weight=\"bold\">" << Esc(row.device)
        << "</text>\n";
    svg << "<text x=\"10\" y=\"" << y + 38 << "\">sid " << Hex(row.sid)
        << (row.pci.empty() ? "" : "  pci " + row.pci) << "</text>\n";
    svg << "<text x=\"10\" y=\"" << y + 54 << "\" fill=\"#555\">"
        << (row.context >= 0 ? "context " + std::to_string(row.context) + " on " + Esc(row.unit)
                             : std::string("no context"))
        << "</text>\n";
    const int bar_y = y + 28;
    const int bar_h = 22;
    // This stream's faults, one mark per page (a DMA burst reports each word it tried).
    std::vector<MarkedFault> mine;
    std::vector<int> repeats;
    for (const MarkedFault& f : faults) {
      if (f.sid != row.sid) continue;
      bool merged = false;
      for (size_t i = 0; i < mine.size(); ++i) {
        if ((mine[i].iova >> 12) == (f.iova >> 12)) {
          ++repeats[i];
          merged = true;
        }
      }
      if (!merged) {
        mine.push_back(f);
        repeats.push_back(0);
      }
    }
    if (row.context < 0) {
      svg << "<rect x=\"" << kLabelW << "\" y=\"" << bar_y << "\" width=\"" << kBarW - 20
          << "\" height=\"" << bar_h << "\" fill=\"#f6f6f6\" stroke=\"#bbb\"/>\n";
      svg << "<text x=\"" << kLabelW + 8 << "\" y=\"" << bar_y + 15
          << "\" fill=\"#777\">blocked: every access faults (default-deny)</text>\n";
      for (size_t i = 0; i < mine.size(); ++i) {
        svg << "<text x=\"" << kLabelW + 400 << "\" y=\"" << bar_y + 15 + 12 * static_cast<int>(i)
            << "\" fill=\"#d00000\">fault at " << Hex(mine[i].iova) << "</text>\n";
      }
      y += kRowH;
      continue;
    }
    const ContextInfo& ctx = contexts[row.context];
    std::vector<Extent> ex = ctx.extents;
    std::sort(ex.begin(), ex.end(),
              [](const Extent& a, const Extent& b) { return a.iova < b.iova; });
    if (ex.empty()) {
      svg << "<text x=\"" << kLabelW + 8 << "\" y=\"" << bar_y + 15 << "\" fill=\"#777\">"
          << (ctx.listed ? "nothing mapped" : "mappings not listed by this backend") << "</text>\n";
    }
    // Widths: a box per extent, growing with log2 of its size; fixed gaps between them.
    constexpr double kGap = 26;
    std::vector<double> w(ex.size());
    double total = 0;
    for (size_t i = 0; i < ex.size(); ++i) {
      unsigned lg = 0;
      while (lg < 63 && (uint64_t{1} << (lg + 1)) <= ex[i].size) ++lg;
      w[i] = std::clamp(36.0 + 10.0 * (lg > 12 ? lg - 12 : 0), 36.0, 170.0);
      total += w[i] + kGap;
    }
    const double scale = total > kBarW - 40 ? (kBarW - 40) / total : 1.0;
    std::vector<double> x(ex.size());
    double cur = kLabelW + kGap * scale;
    for (size_t i = 0; i < ex.size(); ++i) {
      w[i] *= scale;
      x[i] = cur;
      cur += w[i] + kGap * scale;
    }
    for (size_t i = 0; i < ex.size(); ++i) {
      const Extent& e = ex[i];
      const bool device_mem = e.type.rfind("device", 0) == 0;
      svg << "<rect x=\"" << x[i] << "\" y=\"" << bar_y << "\" width=\"" << w[i] << "\" height=\""
          << bar_h << "\" fill=\"" << Fill(e) << "\" stroke=\"#333\""
          << (device_mem ? " stroke-dasharray=\"3,2\"" : "") << "><title>" << Hex(e.iova) << "+"
          << Hex(e.size)
          << (e.reserved
                  ? " reserved (" + e.perms + ")"
                  : " -> " + Hex(e.pa) + " " + e.perms + " " + e.type + " leaf " + Size(e.leaf))
          << "</title></rect>\n";
      svg << "<text x=\"" << x[i] << "\" y=\"" << bar_y - 4 << "\" font-size=\"9\">" << Hex(e.iova)
          << "+" << Size(e.size) << "</text>\n";
      svg << "<text x=\"" << x[i] + 3 << "\" y=\"" << bar_y + 15 << "\" font-size=\"10\">"
          << Esc(e.reserved ? e.perms : e.perms + (device_mem ? " dev" : "")) << "</text>\n";
      if (!e.reserved) {
        svg << "<text x=\"" << x[i] << "\" y=\"" << bar_y + bar_h + 11 << "\" font-size=\"9\" "
            << "fill=\"#444\">-&gt; " << Hex(e.pa) << " (" << Size(e.leaf) << ")</text>\n";
      }
    }
    // Faults: inside a box in proportion, else in the gap after the extent below them.
    int nth = 0;
    for (size_t k = 0; k < mine.size(); ++k) {
      const MarkedFault& f = mine[k];
      double fx = kLabelW + 4 + 4 * static_cast<double>(k);
      for (size_t i = 0; i < ex.size(); ++i) {
        if (f.iova >= ex[i].iova && f.iova - ex[i].iova < ex[i].size) {
          fx = x[i] +
               w[i] * static_cast<double>(f.iova - ex[i].iova) / static_cast<double>(ex[i].size);
        } else if (f.iova >= ex[i].iova + ex[i].size) {
          fx = x[i] + w[i] + kGap * scale / 2;
        }
      }
      svg << "<line x1=\"" << fx << "\" y1=\"" << bar_y - 14 << "\" x2=\"" << fx << "\" y2=\""
          << bar_y + bar_h + 4 << "\" stroke=\"#d00000\" stroke-width=\"2\"/>\n";
      svg << "<text x=\"" << fx + 3 << "\" y=\"" << bar_y + bar_h + 22 + 10 * (nth % 3)
          << "\" font-size=\"9\" fill=\"#d00000\">fault " << Hex(f.iova)
          << (repeats[k] > 0 ? " (+" + std::to_string(repeats[k]) + " in its page)" : "")
          << "</text>\n";
      ++nth;
    }
    y += kRowH;
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace deviso::decode
