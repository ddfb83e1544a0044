#!/usr/bin/env bash
# CTest driver for the q35 crash-report tests (label qemu-q35): boots crash_report_q35 (or the
# image a later --image names: q35_hello uses it for hello_q35) with scripts/demo --board q35 in
# checking mode (its --expect lines and --expect-status judge the console and the exit status),
# then judges by QEMU's own log of the exceptions and interrupts it delivered in long mode (-d
# int: the "v=.. e=.." lines, not software interrupts, whose CPU state shows CS64), which must be
# exactly the listed ones, in order: no fault missed, none repeated. And the report's RIP must be
# the address of the ELF symbol at the faulting instruction.
#
#   qemu_test.sh DIR "VEC:ERR[:CR2] ..." RIP-SYMBOL|- DEMO-ARGS... [-- QEMU-ARGS...]
#     VEC, ERR: hex (as QEMU prints them); CR2: hex, or SYMBOL+0xOFFSET, for a #PF (vector 0e).
#     RIP-SYMBOL: the console must have "RIP    0x<its 16-digit address>" ("-": no check).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$1"
want="$2"
rip_symbol="$3"
shift 3
demo_args=()
while (($# > 0)) && [[ "$1" != -- ]]; do
  demo_args+=("$1")
  shift
done
(($# > 0)) && shift
mkdir -p "${dir}"
rm -f "${dir}/int.log" "${dir}/console.log"
"${root}/scripts/demo" --board q35 --image crash_report_q35 "${demo_args[@]}" \
  -- "$@" -d int -D "${dir}/int.log" | tee "${dir}/console.log"

elf="${DEVISO_DEMO_Q35_BUILD_DIR:-${root}/build/x86_64-q35}/examples/crash_report_q35/crash_report_q35.elf"
python3 - "${dir}/int.log" "${dir}/console.log" "${want}" "${rip_symbol}" "${elf}" <<'PY'
import re, subprocess, sys
log, console, want, rip_symbol, elf = sys.argv[1:6]
symbols = {}
for line in subprocess.run(["nm", elf], check=True, capture_output=True, text=True).stdout.splitlines():
    parts = line.split()
    if len(parts) == 3:
        symbols[parts[2]] = int(parts[0], 16)

def value(text):
    if "+" in text:
        sym, off = text.split("+")
        return symbols[sym] + int(off, 16)
    return symbols[text] if text in symbols else int(text, 16)

# "     0: v=0e e=0002 i=0 cpl=0 IP=0008:... pc=... SP=0010:... CR2=...", then the CPU state,
# whose "CS =0008 ... CS64" line says the CPU was in 64-bit mode (SeaBIOS never is).
seen = []
for block in re.split(r"(?m)^(?=\s*\d+: v=)", open(log).read()):
    m = re.match(r"\s*\d+: v=([0-9a-f]+) e=([0-9a-f]+) i=(\d)", block)
    if not m or not re.search(r"(?m)^CS =\S+ .* CS64 ", block) or m.group(3) != "0":
        continue
    cr2 = re.search(r" CR2=([0-9a-f]+)", block.splitlines()[0])
    vec = int(m.group(1), 16)
    seen.append((vec, int(m.group(2), 16), int(cr2.group(1), 16) if vec == 0x0E else None))
expected = []
for w in want.split():
    f = w.split(":")
    vec = int(f[0], 16)
    expected.append((vec, int(f[1], 16), value(f[2]) if vec == 0x0E else None))
fmt = lambda l: [(hex(v), hex(e), hex(c) if c is not None else None) for v, e, c in l]
if seen != expected:
    sys.exit(f"QEMU delivered {fmt(seen)}, expected {fmt(expected)}")
print(f"QEMU delivered {fmt(seen)} in long mode, as expected")
if rip_symbol != "-":
    line = f"RIP    0x{symbols[rip_symbol]:016x}"
    if line not in open(console).read():
        sys.exit(f"the report has no '{line}' (the address of {rip_symbol})")
    print(f"the report's RIP is {rip_symbol}")
PY
