#!/usr/bin/env bash
# CTest driver for the multi_device example on QEMU (label `qemu`). One QEMU run (the fixture)
# records the console and QEMU's own SMMU trace; every other test checks one thing in them:
# each step from inside (the example's PASS lines: bytes, canaries, decoded events), and from
# outside through QEMU's trace (which StreamID faulted, and that neither device's StreamID
# ever bypassed the SMMU).
#
#   qemu_test.sh run DIR [DEVICES]        boot the example once; DIR/console.log, DIR/trace.log
#                                         (DEVICES: a qemu-devices file instead of the default)
#   qemu_test.sh step DIR TEXT            the console has "[PASS] TEXT"
#   qemu_test.sh never-bypassed DIR NAME  the StreamID the console gives NAME (ahci@..., nvme@...)
#                                         was translated and never bypassed the SMMU
#   qemu_test.sh event DIR EVENT NAME     QEMU recorded EVENT (e.g. F_TRANSLATION) for NAME's SID
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

# The StreamID the example printed for a device ("ahci@00:02.0: 8086:2922 at ..., StreamID 0x10").
sid_of() {
  local sid
  sid="$(sed -nE "s/^ +$1[^:]*:.*StreamID (0x[0-9a-f]+)\r?\$/\1/p" "${console}" | head -n1)"
  [[ -n "${sid}" ]] || fail "the console names no StreamID for $1"
  echo "${sid}"
}

case "${what}" in
  run)
    mkdir -p "${dir}"
    rm -f "${console}" "${trace}"
    devices=()
    if (($# > 2)); then
      devices=(--devices "$3")
    fi
    "${root}/scripts/demo" --image multi_device --check "${devices[@]}" -- \
      -trace smmuv3_translate_success -trace smmuv3_translate_bypass \
      -trace smmuv3_translate_disable -trace smmuv3_translate_abort \
      -trace smmuv3_record_event -D "${trace}" | tee "${console}"
    ;;
  step)
    grep -qF -- "[PASS] $3" "${console}" || fail "no '[PASS] $3' on the console"
    ;;
  never-bypassed)
    sid="$(sid_of "$3")"
    if grep -E "smmuv3_translate_(bypass|disable) .*sid=${sid} " "${trace}"; then
      fail "StreamID ${sid} ($3) bypassed the SMMU"
    fi
    grep -qE "smmuv3_translate_success .*sid=${sid} " "${trace}" ||
      fail "no translation traced for ${sid} ($3)"
    ;;
  event)
    sid="$(sid_of "$4")"
    grep -qE "smmuv3_record_event SMMU_EVT_$3 sid=${sid}\$" "${trace}" ||
      fail "QEMU recorded no $3 for sid ${sid} ($4)"
    ;;
  *)
    fail "unknown check '${what}'"
    ;;
esac
