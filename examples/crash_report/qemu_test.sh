#!/usr/bin/env bash
# CTest driver for the crash-report images (label `qemu`): boots one with scripts/demo in
# checking mode (its --expect lines and --expect-status judge the console and the exit status)
# and QEMU's own log of the exceptions it delivered (-d int), which must be exactly the listed
# data aborts, in order, then the semihosting exit call: no fault missed, none repeated.
#
#   qemu_test.sh DIR "ESR@FAR ..." DEMO-ARGS... [-- QEMU-ARGS...]
#     ESR, FAR: hex, as QEMU prints them ("...with ESR 0x25/0x96000000", "...with FAR 0xdead0000")
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$1"
aborts="$2"
shift 2
demo_args=()
while (($# > 0)) && [[ "$1" != -- ]]; do
  demo_args+=("$1")
  shift
done
(($# > 0)) && shift
mkdir -p "${dir}"
rm -f "${dir}/int.log"
"${root}/scripts/demo" "${demo_args[@]}" -- "$@" -d int -D "${dir}/int.log"

python3 - "${dir}/int.log" "${aborts}" <<'PY'
import re, sys
log, want = open(sys.argv[1]).read(), sys.argv[2].split()
# "Taking exception 4 [Data Abort] on CPU 0" then "...with ESR 0x25/0x96000000", "...with FAR 0x..."
seen = []
for block in re.split(r"(?m)^(?=Taking exception )", log):
    m = re.match(r"Taking exception \d+ \[([^\]]+)\]", block)
    if not m:
        continue
    esr = re.search(r"\.\.\.with ESR 0x[0-9a-f]+/(0x[0-9a-f]+)", block)
    far = re.search(r"\.\.\.with FAR (0x[0-9a-f]+)", block)
    sh = re.search(r"handling as semihosting call (0x[0-9a-f]+)", block)
    seen.append((m.group(1), int(esr.group(1), 16) if esr else None,
                 int(far.group(1), 16) if far else None, sh.group(1) if sh else None))
expected = [("Data Abort", int(e, 16), int(f, 16), None) for e, f in (w.split("@") for w in want)]
expected.append(("Semihosting call", None, None, "0x20"))
if seen != expected:
    sys.exit(f"QEMU delivered {seen}, expected {expected}")
print(f"QEMU delivered {len(want)} data abort(s) as expected, then SYS_EXIT_EXTENDED")
PY
