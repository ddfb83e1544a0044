// libFuzzer target: SMMUv3 event records (IHI0070 7.3) as the SMMU writes them to the event
// queue, through the driver's decoder (Smmuv3::DecodeEvent, Smmuv3::EventName) and deviso's
// fault formatter (deviso_fault_format). A corrupt or unarchitected record must decode to a
// fault the caller can trust: a known reason, only defined flags, the StreamID of the record,
// an address only where the event has one, and a formatted line that stays inside its buffer
// (any length, 0 included) and is NUL-terminated.
//
// Input: a flag byte (bit 0: the stream is attached; bits 1-7 and the next byte: the length of
// the format buffer), then 32-byte records. Seeds: smmu_event_fuzzer_corpus/.
// Long run and crash reproduction: scripts/fuzz smmu_event_fuzzer SECONDS | CRASH_FILE.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "deviso/deviso.h"
#include "smmuv3/hw.h"
#include "smmuv3/smmuv3.h"

namespace deviso::smmuv3 {
namespace {

constexpr uint32_t kKnownFlags = DEVISO_FAULT_READ | DEVISO_FAULT_WRITE | DEVISO_FAULT_EXEC |
                                 DEVISO_FAULT_PRIV | DEVISO_FAULT_STAGE2 | DEVISO_FAULT_ADDR_VALID;

void Check(bool ok) {
  if (!ok) std::abort();
}

void DecodeOne(const ds::Event& e, bool attached, size_t format_len) {
  const Fault f = Smmuv3::DecodeEvent(e, "smmuv3@fuzz", attached);
  const ds::Event::W0 w0{e.raw[0]};
  Check(f.sid == static_cast<uint32_t>(w0.stream_id()));
  Check(f.raw_type == static_cast<uint32_t>(w0.event_id()));
  // A record is one stream's fault: never the queue-overflow report, never an unknown reason.
  Check(f.reason <= DEVISO_FAULT_EXTERNAL);
  Check((f.flags & ~kKnownFlags) == 0);
  // Exactly one direction when there is an access; none otherwise.
  const uint32_t dir = f.flags & (DEVISO_FAULT_READ | DEVISO_FAULT_WRITE);
  if ((f.flags & DEVISO_FAULT_ADDR_VALID) != 0) {
    Check(dir == DEVISO_FAULT_READ || dir == DEVISO_FAULT_WRITE);
    Check(f.iova == e.raw[2]);
  } else {
    Check(f.flags == 0 && f.iova == 0);
  }
  if ((f.flags & DEVISO_FAULT_STAGE2) == 0) Check(f.ipa == 0);
  // Only an attached stream's invalid STE is a configuration error deviso made.
  if (w0.event_id() == ds::kEvtBadSte) {
    Check(f.reason == (attached ? DEVISO_FAULT_BAD_CONFIG : DEVISO_FAULT_BLOCKED));
  }
  const char* name = Smmuv3::EventName(static_cast<uint8_t>(w0.event_id()));
  Check(name != nullptr && std::strlen(name) < 32);

  // The formatter writes into exactly `format_len` heap bytes: ASan sees any overrun.
  std::unique_ptr<char[]> buf(format_len != 0 ? new char[format_len] : nullptr);
  if (format_len != 0) std::memset(buf.get(), 'x', format_len);
  const int n = deviso_fault_format(&f, buf.get(), format_len);
  Check(n > 0);
  if (format_len != 0) {
    const size_t written = std::strlen(buf.get());  // NUL inside the buffer (else ASan)
    Check(written ==
          (static_cast<size_t>(n) < format_len ? static_cast<size_t>(n) : format_len - 1));
  }
}

}  // namespace
}  // namespace deviso::smmuv3

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const auto flags = in.ConsumeIntegral<uint16_t>();
  const bool attached = (flags & 1) != 0;
  const size_t format_len = (flags >> 1) % 257;
  while (in.remaining_bytes() > 0) {
    deviso::smmuv3::ds::Event e;
    uint8_t bytes[sizeof(e)] = {};
    in.ConsumeData(bytes, sizeof(bytes));  // a short last record is zero-padded
    std::memcpy(e.raw, bytes, sizeof(bytes));
    deviso::smmuv3::DecodeOne(e, attached, format_len);
  }
  return 0;
}
