// Arm SMMUv3 event records (IHI0070 7.3 "Event records") and their decoding into deviso's
// fault record.
//
// The event queue is consumed by Smmuv3 (events.cc: HandleEvents, overflow, global errors);
// what is here is pure, so the decoder is table-tested and fuzzed on its own
// (smmu_decode_test, smmu_event_fuzzer).

#ifndef DEVISO_SRC_SMMUV3_EVENTS_H_
#define DEVISO_SRC_SMMUV3_EVENTS_H_

#include <cstdint>

#include "deviso/backend.h"
#include "smmuv3/hw.h"

namespace deviso::smmuv3 {

// The event's name from 7.3, e.g. "F_TRANSLATION"; "IMPDEF" for 0xe0-0xef, "UNKNOWN" for any
// other number the architecture does not define.
const char* EventName(uint8_t event_id);

// Decodes one event record into deviso's fault record: the reason, the StreamID, and (for the
// events that carry them) the access's direction, privilege, instruction flag, input address and,
// for stage 2 translation faults, the IPA. `stream_attached`: C_BAD_STE on a stream with a
// domain is a bad configuration, on one without it is default-deny blocking. Pure; total over
// every record (any bit pattern decodes to some fault).
Fault DecodeFault(const ds::Event& event, const char* unit_name, bool stream_attached);

}  // namespace deviso::smmuv3

#endif  // DEVISO_SRC_SMMUV3_EVENTS_H_
