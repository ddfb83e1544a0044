/*
 * deviso's IOVA map: a text dump of every isolation unit, its contexts, the devices and
 * StreamIDs bound to each, and every mapped extent (IOVA range -> PA, permissions, memory type,
 * leaf size), for logs, debugging and pictures (`deviso-decode map`, docs/iova-map.md).
 *
 * The dump is a sequence of lines, each at most DEVISO_DUMP_LINE_MAX bytes with its NUL (a
 * longer one is cut there), passed one at a time to a caller's function: deviso keeps no
 * buffer beyond one line on the stack. Each line is a keyword followed by `key value` pairs;
 * numbers are hex with 0x unless the key says otherwise:
 *
 *   deviso-dump 1
 *   unit <name> backend <backend> ias <bits, decimal> oas <bits, decimal> pages <bitmap>
 *   context <n, decimal> unit <name> page <bytes>
 *   stream context <n>|- device <name> sid <sid> [pci <bb:dd.f>]
 *   reserved context <n>|- sid <sid> iova <start> size <bytes> kind msi|reserved
 *   map context <n> iova <start> size <bytes> pa <start> perms <rwx|-> type <type> leaf <bytes>
 *   maps context <n> not-listed            (the backend cannot list its mappings)
 *   end
 *
 * `stream context -` is a bound StreamID with no context: blocked (default-deny). <type> is
 * normal, normal-nc, device or device-strict. Units come in registration order, contexts by
 * slot, extents in ascending IOVA with contiguous leaves of the same attributes merged
 * (IsolationUnit::ForEachLeaf()).
 */
#ifndef DEVISO_DUMP_H_
#define DEVISO_DUMP_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The longest line of a dump, its terminating NUL included. */
#define DEVISO_DUMP_LINE_MAX 192

/* Receives one line of a dump (NUL-terminated, no newline). Called with deviso's locks held:
 * it must not call into deviso. */
typedef void (*deviso_dump_line_t)(  // NOLINT(modernize-use-using): this header is C.
    const char* line, void* user);

/* Dumps the default registry (units, contexts, streams, reserved regions, mappings) line by
 * line to `line` with `user`. Not for interrupt context: it takes the registry's and each
 * context's locks, so it waits for a Map or Unmap in progress. Returns 0, or -EINVAL (line
 * NULL; nothing is written). */
int deviso_dump(deviso_dump_line_t line, void* user);

#ifdef __cplusplus
} /* extern "C" */

namespace deviso {

/* Receives the lines of Registry::Dump(). */
class DumpSink {
 public:
  virtual ~DumpSink() = default;
  /* One line (see the top of this file), NUL-terminated, without a newline. Called with the
   * registry's locks held: must not call into deviso. */
  virtual void Line(const char* line) = 0;
};

}  // namespace deviso
#endif

#endif /* DEVISO_DUMP_H_ */
