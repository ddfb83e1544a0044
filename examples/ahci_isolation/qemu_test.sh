#!/usr/bin/env bash
# CTest driver for the AHCI isolation demo on QEMU (label `qemu`). One QEMU run (the fixture)
# records the console and QEMU's own SMMU trace; every other test checks one thing in them:
# each step and attack from inside (the demo's PASS lines: bytes, events, canaries), and from
# outside through QEMU's trace (which StreamID was translated to what, what was recorded, and
# that the AHCI's StreamID never bypassed the SMMU).
#
#   qemu_test.sh run DIR                  boot the demo once; DIR/console.log, DIR/trace.log
#   qemu_test.sh step DIR TEXT            the console has "[PASS] TEXT"
#   qemu_test.sh identity DIR SID         every translation of SID is iova == pa, except the
#                                         demo's translating mapping, which went to its buffer
#   qemu_test.sh never-bypassed DIR SID   no bypass / SMMU-disabled translation for SID
#   qemu_test.sh event DIR EVENT SID      QEMU recorded EVENT (e.g. F_TRANSLATION) for SID
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
what="$1"
dir="$2"
console="${dir}/console.log"
trace="${dir}/trace.log"

fail() {
  echo "qemu_test: $*" >&2
  exit 1
}

case "${what}" in
  run)
    mkdir -p "${dir}"
    rm -f "${console}" "${trace}"
    "${root}/scripts/demo" --check -- \
      -trace smmuv3_translate_success -trace smmuv3_translate_bypass \
      -trace smmuv3_translate_disable -trace smmuv3_translate_abort \
      -trace smmuv3_record_event -D "${trace}" | tee "${console}"
    ;;
  step)
    grep -qF -- "[PASS] $3" "${console}" || fail "no '[PASS] $3' on the console"
    ;;
  identity)
    # Every translation of SID is iova == pa, except the translating mapping the console names
    # ("iova 0x800000000 -> pa 0x4061b000"), whose pages all moved by the same offset.
    python3 - "${console}" "${trace}" "$3" <<'PY'
import re, sys
console, trace, sid = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
m = re.search(r"iova (0x[0-9a-f]+) -> pa (0x[0-9a-f]+)", console)
if not m:
    sys.exit("the console does not name the translating mapping")
t_iova, t_pa = int(m.group(1), 16), int(m.group(2), 16)
n = moved = 0
for line in open(trace):
    f = line.split()
    if len(f) < 5 or f[0] != "smmuv3_translate_success" or f[2] != "sid=" + sid:
        continue
    iova, pa = int(f[3].split("=")[1], 16), int(f[4].split("=")[1], 16)
    n += 1
    if iova == pa:
        continue
    if iova - t_iova < 0x100000 and pa - iova == t_pa - t_iova:
        moved += 1
        continue
    sys.exit(f"sid {sid}: iova {iova:#x} went to {pa:#x}")
if n == 0 or moved == 0:
    sys.exit(f"sid {sid}: {n} translations, {moved} through the translating mapping")
print(f"{n} translations of sid {sid}: identity, and {moved} through the translating mapping")
PY
    ;;
  never-bypassed)
    sid="$3"
    if grep -E "smmuv3_translate_(bypass|disable) .*sid=${sid} " "${trace}"; then
      fail "StreamID ${sid} bypassed the SMMU"
    fi
    grep -qE "smmuv3_translate_success .*sid=${sid} " "${trace}" || fail "no translation traced"
    ;;
  event)
    grep -qE "smmuv3_record_event SMMU_EVT_$3 sid=$4\$" "${trace}" ||
      fail "QEMU recorded no $3 for sid $4"
    ;;
  *)
    fail "unknown check '${what}'"
    ;;
esac
