#!/usr/bin/env bash
# CTest driver for the seed_dma example on QEMU (labels `qemu`, `virtio`). One QEMU run (the
# fixture) records the console and QEMU's own log (its IOMMU trace and guest errors); every
# other test checks one thing in them. The StreamID, the edu's PCI address, the pool blocks and
# the IOMMU are the ones the console names (from enumeration, the iommu-map and the pool),
# never assumed: "IOMMU smmuv3" or "IOMMU virtio-iommu".
#
#   qemu_test.sh run DIR [DEMO-ARGS...]  boot the image once: DIR/console.log, DIR/qemu.log
#   qemu_test.sh step DIR TEXT           the console has "[PASS] TEXT"
#   qemu_test.sh note DIR TEXT           the console has "[NOTE] TEXT": where a check proves
#                                        less on this IOMMU, the program says so
#   qemu_test.sh no-clamping DIR         QEMU never printed "EDU: clamping" (a device address
#                                        beyond edu's dma_mask, silently truncated)
#   qemu_test.sh translations DIR        every translation QEMU traced for the StreamID is
#                                        identity, and the hook's source page and the seed's
#                                        base were among them (mapped while the DMA ran)
#   qemu_test.sh never_bypassed DIR      no bypassed / untranslated access of that StreamID
#   qemu_test.sh translation_fault DIR   QEMU recorded the blocked writes as translation faults
#                                        of that StreamID, at the canary and at base
#   qemu_test.sh dma_alias DIR BDF       edu sits behind a conventional PCI bus: the StreamID is
#                                        that of the bridge's alias BDF, not of edu's own
#                                        requester ID, and QEMU translated and faulted edu's DMA
#                                        under the alias only (nothing under edu's own ID)
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

# What the program printed (the console's lines end in CR LF).
console_text() { tr -d '\r' <"${console}"; }
sid() { console_text | sed -nE 's/.*, StreamID (0x[0-9a-f]+) from the iommu-map$/\1/p' | head -1; }
bdf() { console_text | sed -nE 's/.*: edu ([0-9a-f:.]+) \(1234:11e8\), StreamID .*/\1/p' | head -1; }
iommu() { console_text | sed -nE 's/^deviso seed_dma on .*, IOMMU ([a-z0-9-]+)$/\1/p' | head -1; }
# The requester ID edu's DMA carries: a bridge's alias if the console names one, else its own
# (QEMU names the device's IOMMU address space by it).
requester() {
  local a
  a="$(console_text | sed -nE 's/^ +DMA requester ID ([0-9a-f:.]+): the alias .*/\1/p' | head -1)"
  echo "${a:-$(bdf)}"
}
block() { # base | source | canary
  console_text | sed -nE "s/.*[ ,]$1 (0x[0-9a-f]+)[,:].*blocks of the static DMA pool.*/\1/p" |
    head -1
}

if [[ "${what}" != run ]]; then
  [[ -s "${console}" ]] || fail "no console log in ${dir}: the run fixture failed"
  [[ -n "$(sid)" ]] || fail "the console names no StreamID for DMA_0"
fi

case "${what}" in
  run)
    shift 2
    mkdir -p "${dir}"
    rm -f "${console}" "${qemu_log}"
    # QEMU 7.2 prints "EDU: clamping" on stdout (the console); later versions log it as a
    # guest error (-d guest_errors, into qemu.log): both are checked.
    "${root}/scripts/demo" --image seed_dma --check "$@" -- \
      -d guest_errors -trace 'smmuv3_translate_*' -trace smmuv3_record_event \
      -trace virtio_iommu_translate_out -trace virtio_iommu_report_fault \
      -trace virtio_iommu_switch_address_space -trace virtio_iommu_set_config \
      -trace virtio_iommu_attach -D "${qemu_log}" | tee "${console}"
    ;;
  step)
    grep -qF -- "[PASS] $3" "${console}" || fail "no '[PASS] $3' on the console"
    ;;
  note)
    grep -qF -- "[NOTE] $3" "${console}" || fail "no '[NOTE] $3' on the console"
    ;;
  no-clamping)
    if grep -h "EDU: clamping" "${console}" "${qemu_log}"; then
      fail "QEMU clamped a DMA address: edu's dma_mask does not cover the device addresses"
    fi
    ;;
  translations)
    python3 - "${qemu_log}" "$(sid)" "$(iommu)" "$(block base)" "$(block source)" <<'PY'
import re, sys
log, sid, iommu = sys.argv[1], int(sys.argv[2], 16), sys.argv[3]
base, source = int(sys.argv[4], 16), int(sys.argv[5], 16)
if iommu == "smmuv3":
    # smmuv3_translate_success <mr> sid=0x8 iova=0x... translated=0x... perm=0x...
    pat = re.compile(r"smmuv3_translate_success \S+ sid=(0x[0-9a-f]+) iova=(0x[0-9a-f]+) "
                     r"translated=(0x[0-9a-f]+)")
    get = lambda m: (int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16))
else:
    # virtio_iommu_translate_out 0x... -> 0x... for sid=16
    pat = re.compile(r"virtio_iommu_translate_out (0x[0-9a-f]+) -> (0x[0-9a-f]+) for sid=(\d+)")
    get = lambda m: (int(m.group(3)), int(m.group(1), 16), int(m.group(2), 16))
n = 0
pages = set()
for line in open(log):
    m = pat.search(line)
    if not m:
        continue
    s, iova, pa = get(m)
    if s != sid:
        continue
    if iova != pa:
        sys.exit(f"sid {sid:#x}: iova {iova:#x} went to {pa:#x}, not identity")
    n += 1
    pages.add(iova & ~0xfff)
for name, page in (("base", base), ("the hook's source", source)):
    if page not in pages:
        sys.exit(f"sid {sid:#x}: no translation of {name} page {page:#x} ({n} translations)")
print(f"{n} identity translations of sid {sid:#x}, base and source among them")
PY
    ;;
  never_bypassed)
    s="$(sid)"
    case "$(iommu)" in
      smmuv3)
        if grep -E "smmuv3_translate_(bypass|disable) .*sid=${s} " "${qemu_log}"; then
          fail "StreamID ${s} bypassed the SMMU"
        fi
        grep -qE "smmuv3_translate_success .*sid=${s} " "${qemu_log}" ||
          fail "no translation traced for sid ${s}"
        # Each translation at the stage of deviso's context, where QEMU names it (QEMU 10).
        "${root}/examples/common/smmuv3_stage.py" "${console}" "${qemu_log}" "${s}"
        ;;
      *)
        # Never switched to bypass once config.bypass was cleared, and translated
        # (examples/common/virtio_never_bypassed.py says how QEMU 7.2 shows it).
        "${root}/examples/common/virtio_never_bypassed.py" "${qemu_log}" "$(requester)" "$((s))"
        ;;
    esac
    ;;
  translation_fault)
    python3 - "${qemu_log}" "$(sid)" "$(iommu)" "$(block base)" "$(block canary)" <<'PY'
import re, sys
log, sid, iommu = sys.argv[1], int(sys.argv[2], 16), sys.argv[3]
base, canary = int(sys.argv[4], 16), int(sys.argv[5], 16)
text = open(log).read()
if iommu == "smmuv3":
    # QEMU's event record names the StreamID only; the addresses are the console's (checked
    # there from the decoded events).
    n = len(re.findall(rf"^smmuv3_record_event SMMU_EVT_F_TRANSLATION sid={sid:#x}$", text, re.M))
    if n == 0:
        sys.exit(f"QEMU recorded no F_TRANSLATION for sid {sid:#x}")
    print(f"{n} F_TRANSLATION events for sid {sid:#x}")
else:
    # virtio_iommu_report_fault FAULT reason=2 flags=256 endpoint=16 address =0x...
    # (virtio 1.2 5.13.6.9: reason 2 = MAPPING)
    pat = re.compile(r"^virtio_iommu_report_fault FAULT reason=2 flags=\d+ endpoint=(\d+) "
                     r"address ?=(0x[0-9a-f]+)", re.M)
    pages = {int(a, 16) & ~0xfff for e, a in pat.findall(text) if int(e) == sid}
    for name, page in (("canary", canary), ("base after deviso_unmap", base)):
        if page not in pages:
            sys.exit(f"endpoint {sid}: no MAPPING fault at the {name} page {page:#x}")
    print(f"endpoint {sid}: MAPPING faults at the canary and at base")
PY
    ;;
  dma_alias)
    [[ "$(requester)" == "$3" ]] || fail "the console names requester ID '$(requester)', not $3"
    python3 - "${qemu_log}" "$(sid)" "$(iommu)" "$(bdf)" "$3" <<'PY'
import re, sys
log, sid, iommu, own, alias = sys.argv[1], int(sys.argv[2], 16), sys.argv[3], sys.argv[4], sys.argv[5]
def rid(bdf):
    bus, dev, fn = re.fullmatch(r"([0-9a-f]+):([0-9a-f]+)\.([0-9a-f]+)", bdf).groups()
    return int(bus, 16) << 8 | int(dev, 16) << 3 | int(fn, 16)
own_rid, alias_rid = rid(own), rid(alias)
if own_rid == alias_rid:
    sys.exit(f"edu {own} is its own alias: the topology does not test aliasing")
# QEMU's iommu-map on virt is the identity for every requester ID but the virtio-iommu's own.
if sid != alias_rid:
    sys.exit(f"the program bound StreamID {sid:#x}, not the alias {alias} ({alias_rid:#x})")
if iommu == "smmuv3":
    pat = re.compile(r"^smmuv3_(?:translate_\w+|record_event \w+) .*?sid=(0x[0-9a-f]+)", re.M)
    sids = [int(x, 16) for x in pat.findall(open(log).read())]
else:
    pat = re.compile(r"(?:for sid=|endpoint=)(\d+)")
    sids = [int(x) for x in pat.findall(open(log).read())]
seen_alias, seen_own = sids.count(alias_rid), sids.count(own_rid)
if seen_alias == 0:
    sys.exit(f"QEMU traced nothing for the alias {alias_rid:#x}")
if seen_own != 0:
    sys.exit(f"QEMU traced {seen_own} accesses under edu's own requester ID {own_rid:#x}")
print(f"edu {own}: {seen_alias} trace records under the alias {alias} ({alias_rid:#x}), "
      f"none under {own_rid:#x}")
PY
    ;;
  *)
    fail "unknown check '${what}'"
    ;;
esac
