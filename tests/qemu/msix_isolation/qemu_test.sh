#!/usr/bin/env bash
# CTest driver for the msix_isolation QEMU test program. One QEMU run (the fixture) records
# the console and QEMU's trace (SMMU translations and events, ITS commands and doorbell writes,
# the CPU's interrupt acknowledgements, the markers, -d guest_errors); every other test checks
# one thing: a step on the console, a [NOTE], or a verdict from the trace (msix_verdicts.py).
#
#   qemu_test.sh run DIR [DEMO-ARGS...]   boot once (scripts/demo --image msix_isolation --check
#                                         DEMO-ARGS); --gic 2 first selects a GICv2 board
#   qemu_test.sh step DIR TEXT            the console has "[PASS] TEXT"
#   qemu_test.sh note DIR TEXT            the console has "[NOTE] TEXT"
#   qemu_test.sh verdict DIR CHECK [--bypass]  msix_verdicts.py CHECK on the run's logs
set -euo pipefail

root="$(cd "$(dirname "$0")/../../.." && pwd)"
what="$1"
dir="$2"
console="${dir}/console.log"
trace="${dir}/trace.log"

fail() {
  echo "qemu_test: $*" >&2
  exit 1
}

if [[ "${what}" != run ]]; then
  [[ -f "${console}" ]] || fail "no console log in ${dir}: the run fixture failed"
fi

case "${what}" in
  run)
    shift 2
    if [[ "${1:-}" == --gic ]]; then
      export DEVISO_DEMO_GIC="$2"
      shift 2
    fi
    mkdir -p "${dir}"
    rm -f "${console}" "${trace}"
    "${root}/scripts/demo" --image msix_isolation --check "$@" -- \
      -d guest_errors \
      -trace smmuv3_translate_success -trace smmuv3_translate_bypass \
      -trace smmuv3_record_event -trace pci_cfg_write \
      -trace gicv3_its_translation_write -trace 'gicv3_its_cmd_*' \
      -trace gicv3_icc_iar1_read \
      -trace virtio_iommu_translate_out -trace virtio_iommu_report_fault \
      -D "${trace}" | tee "${console}"
    ;;
  step)
    tr -d '\r' <"${console}" | grep -qF -- "[PASS] $3" || fail "no '[PASS] $3' on the console"
    ;;
  note)
    tr -d '\r' <"${console}" | grep -qF -- "[NOTE] $3" || fail "no '[NOTE] $3' on the console"
    ;;
  verdict)
    shift 2
    "${root}/tests/qemu/msix_isolation/msix_verdicts.py" "$1" "${console}" "${trace}" "${@:2}"
    ;;
  *)
    fail "unknown check '${what}'"
    ;;
esac
