#!/usr/bin/env bash
# CTest driver for the multi_device example on QEMU (labels `qemu`, `virtio`). One QEMU run
# (the fixture) records the console and QEMU's own trace of the IOMMU; every other test checks
# one thing in them: each step from inside (the example's PASS lines: bytes, canaries, decoded
# events), the [NOTE] lines where a check proves less on this IOMMU, and from outside through
# QEMU's trace (which StreamID faulted, and that neither device's StreamID ever bypassed the
# IOMMU). StreamIDs and the IOMMU are the ones the console names, never assumed.
#
#   qemu_test.sh run DIR [DEMO-ARGS...]   boot the example once (scripts/demo --image
#                                         multi_device --check DEMO-ARGS); DIR/console.log,
#                                         DIR/trace.log
#   qemu_test.sh step DIR TEXT            the console has "[PASS] TEXT"
#   qemu_test.sh note DIR TEXT            the console has "[NOTE] TEXT"
#   qemu_test.sh never-bypassed DIR NAME  the StreamID the console gives NAME (ahci0, nvme0) was
#                                         translated and never bypassed the IOMMU
#   qemu_test.sh translation-fault DIR NAME  QEMU recorded a translation fault for NAME's
#                                         StreamID (SMMUv3 F_TRANSLATION; virtio-iommu MAPPING)
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

# The console's lines end in CR LF.
console_text() { tr -d '\r' <"${console}"; }
# The StreamID / PCI address the example printed for a device
# ("       ahci0: 8086:2922 at 00:02.0, StreamID 0x10").
sid_of() {
  local sid
  sid="$(console_text | sed -nE "s/^ +$1: [0-9a-f]{4}:[0-9a-f]{4} at .*, StreamID (0x[0-9a-f]+)\$/\1/p" | head -n1)"
  [[ -n "${sid}" ]] || fail "the console names no StreamID for $1"
  echo "${sid}"
}
bdf_of() {
  console_text | sed -nE "s/^ +$1: [0-9a-f]{4}:[0-9a-f]{4} at ([0-9a-f:.]+), StreamID .*/\1/p" | head -n1
}
iommu() {
  console_text | sed -nE 's/^deviso multi_device on .*, IOMMU ([a-z0-9-]+)$/\1/p' | head -1
}

if [[ "${what}" != run ]]; then
  [[ -f "${console}" ]] || fail "no console log in ${dir}: the run fixture failed"
fi

case "${what}" in
  run)
    shift 2
    mkdir -p "${dir}"
    rm -f "${console}" "${trace}"
    "${root}/scripts/demo" --image multi_device --check "$@" -- \
      -trace smmuv3_translate_success -trace smmuv3_translate_bypass \
      -trace smmuv3_translate_disable -trace smmuv3_translate_abort \
      -trace smmuv3_record_event \
      -trace virtio_iommu_translate_out -trace virtio_iommu_report_fault \
      -trace virtio_iommu_switch_address_space -trace virtio_iommu_set_config \
      -trace virtio_iommu_attach -D "${trace}" | tee "${console}"
    ;;
  step)
    grep -qF -- "[PASS] $3" "${console}" || fail "no '[PASS] $3' on the console"
    ;;
  note)
    grep -qF -- "[NOTE] $3" "${console}" || fail "no '[NOTE] $3' on the console"
    ;;
  never-bypassed)
    sid="$(sid_of "$3")"
    case "$(iommu)" in
      smmuv3)
        if grep -E "smmuv3_translate_(bypass|disable) .*sid=${sid} " "${trace}"; then
          fail "StreamID ${sid} ($3) bypassed the SMMU"
        fi
        grep -qE "smmuv3_translate_success .*sid=${sid} " "${trace}" ||
          fail "no translation traced for ${sid} ($3)"
        # Each translation at the stage of deviso's context, where QEMU names it (QEMU 10).
        "${root}/examples/common/smmuv3_stage.py" "${console}" "${trace}" "${sid}"
        ;;
      virtio-iommu)
        # Never switched to bypass once config.bypass was cleared, and translated
        # (examples/common/virtio_never_bypassed.py says how QEMU 7.2 shows it).
        "${root}/examples/common/virtio_never_bypassed.py" "${trace}" "$(bdf_of "$3")" "$((sid))"
        ;;
      *)
        fail "the console names no IOMMU"
        ;;
    esac
    ;;
  translation-fault)
    sid="$(sid_of "$3")"
    case "$(iommu)" in
      smmuv3)
        grep -qE "smmuv3_record_event SMMU_EVT_F_TRANSLATION sid=${sid}\$" "${trace}" ||
          fail "QEMU recorded no F_TRANSLATION for sid ${sid} ($3)"
        ;;
      virtio-iommu)
        # virtio 1.2 5.13.6.9: reason 2 = MAPPING
        grep -qE "virtio_iommu_report_fault FAULT reason=2 flags=[0-9]+ endpoint=$((sid)) " \
          "${trace}" || fail "QEMU reported no MAPPING fault for endpoint $((sid)) ($3)"
        ;;
      *)
        fail "the console names no IOMMU"
        ;;
    esac
    ;;
  *)
    fail "unknown check '${what}'"
    ;;
esac
