// The backend-neutral part of a fault report (deviso_fault_format(), Registry::FormatFault()).

#ifndef DEVISO_SRC_CORE_FAULT_LINE_H_
#define DEVISO_SRC_CORE_FAULT_LINE_H_

#include "core/line_writer.h"
#include "deviso/types.h"

namespace deviso::internal {

// "<unit>: sid <sid>: <privilege> <access>[ at iova <iova>[ (ipa <ipa>)]]: [stage 2 ]<reason>
//  (event <raw_type>)", or "<unit>: fault queue overflow, faults lost". `fault` is not null.
void PutFaultLine(const Fault* fault, LineWriter& w);

}  // namespace deviso::internal

#endif  // DEVISO_SRC_CORE_FAULT_LINE_H_
