#!/usr/bin/env bash
# CTest driver for the AHCI isolation demo on QEMU (labels `qemu`, `virtio`). One QEMU run (the
# fixture) records the console and QEMU's own trace of the IOMMU; every other test checks one
# thing in them: each step and attack from inside (the demo's PASS lines: bytes, events,
# canaries), and from outside through QEMU's trace (which StreamID was translated to what, what
# was recorded, and that the AHCI's StreamID never bypassed the IOMMU). The StreamIDs are the
# ones the demo found through enumeration and the iommu-map (its console says them), and the
# IOMMU is the one it reported ("IOMMU smmuv3" or "IOMMU virtio-iommu").
#
#   qemu_test.sh run DIR [DEMO-ARGS...]  boot the demo once (scripts/demo --check DEMO-ARGS);
#                                        DIR/console.log, DIR/trace.log; the demo parks at the
#                                        end (-append deviso.park) and qmp_dump.py saves its
#                                        attacks' memory through QMP into DIR/mem, then quits
#   qemu_test.sh step DIR TEXT           the console has "[PASS] TEXT"
#   qemu_test.sh note DIR TEXT           the console has "[NOTE] TEXT": where a check proves
#                                        less on this IOMMU, the demo says so
#   qemu_test.sh translations DIR        every translation of the AHCI's StreamID is iova == pa,
#                                        except the demo's translating mapping, which went to
#                                        its buffer
#   qemu_test.sh never_bypassed DIR      no bypassed / untranslated access of that StreamID
#   qemu_test.sh translation_fault DIR   QEMU recorded a translation fault for it
#   qemu_test.sh permission_fault DIR    QEMU recorded a permission fault for it (SMMUv3)
#   qemu_test.sh rogue_blocked DIR       QEMU recorded the rogue controller's DMA as blocked (and,
#                                        on SMMUv3, never translated it)
#   qemu_test.sh memory DIR              the memory read from outside: canaries intact, the
#                                        granted read's bytes landed (attack_verdicts.py)
#   qemu_test.sh attack_faults DIR       (SMMUv3) each attack's aborts and events lie between its
#                                        trace markers; nothing translated into attack 1's
#                                        canary, nor into attack 2's buffer after its unmap
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

# The AHCI's and the rogue controller's StreamIDs, and the IOMMU, as the demo printed them.
# (The console's lines end in CR LF.)
console_text() { tr -d '\r' <"${console}"; }
sid() { console_text | sed -nE 's/^ +device ahci@[0-9a-f:.]+, StreamID (0x[0-9a-f]+)$/\1/p' | head -1; }
rogue_sid() {
  console_text | sed -nE 's/.*rogue controller at .*, StreamID (0x[0-9a-f]+)$/\1/p' | head -1
}
iommu() {
  console_text | sed -nE 's/^deviso ahci_isolation on .*, IOMMU ([a-z0-9-]+)$/\1/p' | head -1
}

if [[ "${what}" != run ]]; then
  [[ -f "${console}" ]] || fail "no console log in ${dir}: the run fixture failed"
  [[ -n "$(sid)" ]] || fail "the console names no StreamID for the AHCI"
fi

case "${what}" in
  run)
    shift 2
    mkdir -p "${dir}"
    rm -rf "${console}" "${trace}" "${dir}/mem"
    mkdir -p "${dir}/mem"
    # The QMP socket in a short private directory (unix socket paths are short).
    sock_dir="$(mktemp -d)"
    "${root}/examples/common/qmp_dump.py" "${sock_dir}/qmp" "${console}" "${dir}/mem" &
    dumper=$!
    set +e
    "${root}/scripts/demo" --check "$@" -- \
      -qmp "unix:${sock_dir}/qmp,server=on,wait=off" -append deviso.park -d guest_errors \
      -trace 'smmuv3_translate_*' -trace smmuv3_record_event -trace pci_cfg_write \
      -trace virtio_iommu_translate_out -trace virtio_iommu_report_fault \
      -trace virtio_iommu_switch_address_space -trace virtio_iommu_set_config \
      -trace virtio_iommu_attach -D "${trace}" | tee "${console}"
    status=$?
    set -e
    # The dumper is done once QEMU has quit; if QEMU never started, it is still waiting.
    kill "${dumper}" 2>/dev/null || true
    wait "${dumper}" 2>/dev/null || true
    rm -rf "${sock_dir}"
    exit "${status}"
    ;;
  step)
    grep -qF -- "[PASS] $3" "${console}" || fail "no '[PASS] $3' on the console"
    ;;
  note)
    grep -qF -- "[NOTE] $3" "${console}" || fail "no '[NOTE] $3' on the console"
    ;;
  translations)
    # Every translation of the StreamID is iova == pa, except the translating mapping the
    # console names ("iova 0x800000000 -> pa 0x4061b000"), whose pages all moved by the same
    # offset.
    python3 - "${console}" "${trace}" "$(sid)" "$(iommu)" <<'PY'
import re, sys
console, trace, sid, iommu = open(sys.argv[1]).read(), sys.argv[2], int(sys.argv[3], 16), sys.argv[4]
m = re.search(r"iova (0x[0-9a-f]+) -> pa (0x[0-9a-f]+)", console)
if not m:
    sys.exit("the console does not name the translating mapping")
t_iova, t_pa = int(m.group(1), 16), int(m.group(2), 16)
if iommu == "smmuv3":
    # smmuv3_translate_success <mr> sid=0x10 iova=0x... translated=0x... perm=0x...
    pat = re.compile(r"smmuv3_translate_success \S+ sid=(0x[0-9a-f]+) iova=(0x[0-9a-f]+) "
                     r"translated=(0x[0-9a-f]+)")
    get = lambda m: (int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16))
else:
    # virtio_iommu_translate_out 0x... -> 0x... for sid=16
    pat = re.compile(r"virtio_iommu_translate_out (0x[0-9a-f]+) -> (0x[0-9a-f]+) for sid=(\d+)")
    get = lambda m: (int(m.group(3)), int(m.group(1), 16), int(m.group(2), 16))
n = moved = 0
for line in open(trace):
    m = pat.search(line)
    if not m:
        continue
    s, iova, pa = get(m)
    if s != sid:
        continue
    n += 1
    if iova == pa:
        continue
    if iova - t_iova < 0x100000 and pa - iova == t_pa - t_iova:
        moved += 1
        continue
    sys.exit(f"sid {sid:#x}: iova {iova:#x} went to {pa:#x}")
if n == 0 or moved == 0:
    sys.exit(f"sid {sid:#x}: {n} translations, {moved} through the translating mapping")
print(f"{n} translations of sid {sid:#x}: identity, and {moved} through the translating mapping")
PY
    ;;
  never_bypassed)
    s="$(sid)"
    case "$(iommu)" in
      smmuv3)
        if grep -E "smmuv3_translate_(bypass|disable) .*sid=${s} " "${trace}"; then
          fail "StreamID ${s} bypassed the SMMU"
        fi
        grep -qE "smmuv3_translate_success .*sid=${s} " "${trace}" || fail "no translation traced"
        # Each translation at the stage of deviso's context, where QEMU names it (QEMU 10).
        "${root}/examples/common/smmuv3_stage.py" "${console}" "${trace}" "${s}"
        ;;
      *)
        # Never switched to bypass once config.bypass was cleared, and translated
        # (examples/common/virtio_never_bypassed.py says how QEMU 7.2 shows it).
        bdf="$(console_text | sed -nE 's/^ +device ahci@([0-9a-f:.]+), StreamID .*/\1/p' | head -1)"
        "${root}/examples/common/virtio_never_bypassed.py" "${trace}" "${bdf}" "$((s))"
        ;;
    esac
    ;;
  translation_fault)
    s="$(sid)"
    case "$(iommu)" in
      smmuv3)
        grep -qE "smmuv3_record_event SMMU_EVT_F_TRANSLATION sid=${s}\$" "${trace}" ||
          fail "QEMU recorded no F_TRANSLATION for sid ${s}"
        ;;
      *)
        # virtio 1.2 5.13.6.9: reason 2 = MAPPING
        grep -qE "virtio_iommu_report_fault FAULT reason=2 flags=[0-9]+ endpoint=$((s)) " \
          "${trace}" || fail "QEMU reported no MAPPING fault for endpoint $((s))"
        ;;
    esac
    ;;
  permission_fault)
    s="$(sid)"
    case "$(iommu)" in
      smmuv3)
        grep -qE "smmuv3_record_event SMMU_EVT_F_PERMISSION sid=${s}\$" "${trace}" ||
          fail "QEMU recorded no F_PERMISSION for sid ${s}"
        ;;
      *)
        # virtio-iommu reports a write to a read-only mapping as a MAPPING fault with the
        # write flag (virtio 1.2 5.13.6.9: flags bit 1; "flags=258" = ADDRESS | WRITE): there
        # is no separate permission reason.
        found=0
        while read -r flags; do
          if (((flags & 2) != 0)); then found=1; fi
        done < <(sed -nE "s/^virtio_iommu_report_fault FAULT reason=2 flags=([0-9]+) endpoint=$((s)) .*/\1/p" \
          "${trace}" | sort -u)
        ((found)) || fail "QEMU reported no write fault for endpoint $((s))"
        ;;
    esac
    ;;
  rogue_blocked)
    r="$(rogue_sid)"
    [[ -n "${r}" ]] || fail "the console names no StreamID for the rogue controller"
    case "$(iommu)" in
      smmuv3)
        # A StreamID without a context has an abort STE (C_BAD_STE), or, in a 2-level stream
        # table, no level-2 table at all when no bound device shares its span (C_BAD_STREAMID:
        # e.g. the rogue behind a root port of its own, SID 0x200): blocked either way, and
        # nothing of it may have been translated or bypassed.
        grep -qE "smmuv3_record_event SMMU_EVT_C_BAD_(STE|STREAMID) sid=${r}\$" "${trace}" ||
          fail "QEMU recorded no C_BAD_STE or C_BAD_STREAMID for sid ${r}"
        if grep -E "smmuv3_translate_(success|bypass|disable) .*sid=${r} " "${trace}" | head -3 |
          grep .; then
          fail "StreamID ${r} was translated or bypassed"
        fi
        ;;
      *)
        grep -qE "virtio_iommu_report_fault FAULT reason=[0-9]+ flags=[0-9]+ endpoint=$((r)) " \
          "${trace}" || fail "QEMU reported no fault for endpoint $((r))"
        ;;
    esac
    ;;
  memory)
    "${root}/examples/common/attack_verdicts.py" memory "${dir}/mem"
    ;;
  attack_faults)
    [[ "$(iommu)" == smmuv3 ]] || fail "attack_faults reads the SMMUv3's trace"
    bdf="$(console_text | sed -nE 's/^ +device ahci@([0-9a-f:.]+), StreamID .*/\1/p' | head -1)"
    "${root}/examples/common/attack_verdicts.py" faults "${console}" "${trace}" "$(sid)" \
      "$(rogue_sid)" "${bdf}"
    ;;
  *)
    fail "unknown check '${what}'"
    ;;
esac
