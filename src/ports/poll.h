// One deadline poll for every hardware wait (house rule: every poll has a deadline).
//
// The clock is read *before* each look at the hardware, so the last look always comes after the
// deadline was seen expired: a thread preempted past its deadline while the hardware completed
// looks once more and reports the completion, never a timeout for work that was done. (A loop
// that looks, then checks the clock and gives up, misses exactly that completion.)

#ifndef DEVISO_SRC_PORTS_POLL_H_
#define DEVISO_SRC_PORTS_POLL_H_

#include <cstdint>

#include "deviso/port/os.h"
#include "deviso/status.h"

namespace deviso::port {

// Calls `look` until it returns true (OK), an error (that error), or the deadline of
// `timeout_ns` expired before a look that still returned false (-ETIMEDOUT). `look` returns
// Result<bool>: true = done, false = not yet, an error = give up now.
template <typename Look>
Status PollUntil(uint64_t timeout_ns, Look&& look) {
  const Deadline deadline = Deadline::In(timeout_ns);
  for (;;) {
    const bool expired = deadline.Expired();
    const Result<bool> done = look();
    if (!done.ok()) return done.status();
    if (*done) return Status::Ok();
    if (expired) return Status::TimedOut();
  }
}

}  // namespace deviso::port

#endif  // DEVISO_SRC_PORTS_POLL_H_
