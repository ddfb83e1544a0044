#!/usr/bin/env bash
# CTest driver for the seed_dma example on QEMU (label `qemu`). One QEMU run (the fixture)
# records the console and QEMU's own log (its SMMU trace and guest errors); every other test
# checks one thing in them.
#
#   qemu_test.sh run DIR [DEMO-ARGS...]  boot the image once: DIR/console.log, DIR/qemu.log
#   qemu_test.sh step DIR TEXT           the console has "[PASS] TEXT"
#   qemu_test.sh no-clamping DIR         QEMU never printed "EDU: clamping" (a device address
#                                        beyond edu's dma_mask, silently truncated)
#   qemu_test.sh trace DIR               from outside: the StreamID the console names (from the
#                                        iommu-map) is the one QEMU translated identity for, and
#                                        recorded the blocked writes of; it never bypassed
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
what="$1"
dir="$2"
console="${dir}/console.log"
qemu_log="${dir}/qemu.log"

fail() {
  echo "qemu_test: $*" >&2
  exit 1
}

case "${what}" in
  run)
    shift 2
    mkdir -p "${dir}"
    rm -f "${console}" "${qemu_log}"
    # QEMU 7.2 prints "EDU: clamping" on stdout (the console); later versions log it as a
    # guest error (-d guest_errors, into qemu.log): both are checked.
    "${root}/scripts/demo" --image seed_dma --check "$@" -- \
      -d guest_errors -trace smmuv3_translate_success -trace smmuv3_translate_bypass \
      -trace smmuv3_translate_disable -trace smmuv3_record_event -D "${qemu_log}" |
      tee "${console}"
    ;;
  step)
    grep -qF -- "[PASS] $3" "${console}" || fail "no '[PASS] $3' on the console"
    ;;
  no-clamping)
    [[ -s "${console}" ]] || fail "no console log"
    if grep -h "EDU: clamping" "${console}" "${qemu_log}"; then
      fail "QEMU clamped a DMA address: edu's dma_mask does not cover the device addresses"
    fi
    ;;
  trace)
    sid="$(sed -n 's/.*StreamID \(0x[0-9a-f]*\) from the iommu-map.*/\1/p' "${console}")"
    [[ -n "${sid}" ]] || fail "the console names no StreamID"
    if grep -E "smmuv3_translate_(bypass|disable) .*sid=${sid} " "${qemu_log}"; then
      fail "StreamID ${sid} bypassed the SMMU"
    fi
    python3 - "${qemu_log}" "${sid}" <<'PY'
import sys
log, sid = sys.argv[1], sys.argv[2]
n = 0
for line in open(log):
    f = line.split()
    if len(f) < 5 or f[0] != "smmuv3_translate_success" or f[2] != "sid=" + sid:
        continue
    iova, pa = int(f[3].split("=")[1], 16), int(f[4].split("=")[1], 16)
    if iova != pa:
        sys.exit(f"sid {sid}: iova {iova:#x} went to {pa:#x}, not identity")
    n += 1
if n == 0:
    sys.exit(f"no translation traced for sid {sid}")
print(f"{n} identity translations of sid {sid}")
PY
    grep -qE "smmuv3_record_event SMMU_EVT_F_TRANSLATION sid=${sid}\$" "${qemu_log}" ||
      fail "QEMU recorded no F_TRANSLATION for sid ${sid}"
    ;;
  *)
    fail "unknown check '${what}'"
    ;;
esac
