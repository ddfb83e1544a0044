#!/usr/bin/env bash
# CTest driver for the sub_page_dma test program on QEMU (labels `qemu`, `virtio`). One QEMU run
# (the fixture) records the console and QEMU's log (its IOMMU trace), parks the guest and reads
# the program's pages from outside it through QMP (pmemsave, examples/common/qmp_dump.py);
# every other test checks one thing in them. The StreamID, the pages and the bounce pool are the
# ones the console names, never assumed.
#
#   qemu_test.sh run DIR [DEMO-ARGS...]  boot the image once: DIR/console.log, DIR/qemu.log,
#                                        DIR/mem/{src,dst,probe}_page.bin
#   qemu_test.sh step DIR TEXT           the console has "[PASS] TEXT"
#   qemu_test.sh note DIR TEXT           the console has "[NOTE] TEXT"
#   qemu_test.sh memory DIR              read from outside the guest: each page holds its
#                                        100-byte buffer (the pattern the program wrote, or
#                                        what the device copied into it) and the canary 0xcc
#                                        in every other byte
#   qemu_test.sh translations DIR        QEMU translated the StreamID's DMA into the bounce
#                                        pool only: never to any byte of the three buffers'
#                                        pages, and at least once into the pool
#   qemu_test.sh faults DIR              QEMU recorded the blocked writes: SMMUv3 F_TRANSLATION
#                                        events of the StreamID (its guest_errors name the
#                                        probe page and the page past the bounce page);
#                                        virtio-iommu MAPPING faults at both
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

console_text() { tr -d '\r' <"${console}"; }
sid() { console_text | sed -nE 's/.*, StreamID (0x[0-9a-f]+) from the iommu-map$/\1/p' | head -1; }
iommu() { console_text | sed -nE 's/^deviso sub_page_dma on .*, IOMMU ([a-z0-9-]+)$/\1/p' | head -1; }
pool() { console_text | sed -nE 's/^ +bounce pool (0x[0-9a-f]+), ([0-9]+) pages$/\1 \2/p' | head -1; }
page() { console_text | sed -nE "s/^\[DUMP\] $1_page (0x[0-9a-f]+) .*/\1/p" | head -1; }

if [[ "${what}" != run ]]; then
  [[ -s "${console}" ]] || fail "no console log in ${dir}: the run fixture failed"
  [[ -n "$(sid)" ]] || fail "the console names no StreamID for DMA_0"
fi

case "${what}" in
  run)
    shift 2
    mkdir -p "${dir}"
    rm -rf "${console}" "${qemu_log}" "${dir}/mem"
    mkdir -p "${dir}/mem"
    sock_dir="$(mktemp -d)"
    "${root}/examples/common/qmp_dump.py" "${sock_dir}/qmp" "${console}" "${dir}/mem" &
    dumper=$!
    set +e
    "${root}/scripts/demo" --image sub_page_dma --check "$@" -- \
      -qmp "unix:${sock_dir}/qmp,server=on,wait=off" -append deviso.park -d guest_errors \
      -trace 'smmuv3_translate_*' -trace smmuv3_record_event \
      -trace virtio_iommu_translate_out -trace virtio_iommu_report_fault \
      -D "${qemu_log}" | tee "${console}"
    status=$?
    set -e
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
  memory)
    python3 - "${dir}/mem" <<'PY'
import sys
d = sys.argv[1]
try:
    listed = {l.split()[0]: int(l.split()[2], 16) for l in open(f"{d}/dump.ok")}
except OSError:
    sys.exit("no memory dump (DIR/mem/dump.ok): the program did not park or QMP failed")
pattern = bytes((0x31 + 5 * i) & 0xff for i in range(100))
# (page, offset of its 100-byte buffer): main.cc's kSrcOffset, kDstOffset, kProbeOffset.
for name, off in (("src_page", 0x40), ("dst_page", 0x80), ("probe_page", 0x200)):
    data = open(f"{d}/{name}.bin", "rb").read()
    if len(data) != 4096 or listed.get(name) != 4096:
        sys.exit(f"{name}: {len(data)} bytes read")
    if data[off:off + 100] != pattern:
        sys.exit(f"{name}: the buffer at {off:#x} does not hold the 100 bytes")
    bad = [i for i in range(4096) if not off <= i < off + 100 and data[i] != 0xcc]
    if bad:
        sys.exit(f"{name}: {len(bad)} canary byte(s) changed, first at {bad[0]:#x}")
print("src_page, dst_page, probe_page: each buffer holds its 100 bytes, every other byte 0xcc")
PY
    ;;
  translations)
    read -r pool_pa pool_pages <<<"$(pool)"
    python3 - "${qemu_log}" "$(sid)" "$(iommu)" "${pool_pa}" "${pool_pages}" \
      "$(page src)" "$(page dst)" "$(page probe)" <<'PY'
import re, sys
log, sid, iommu = sys.argv[1], int(sys.argv[2], 16), sys.argv[3]
pool, pool_pages = int(sys.argv[4], 16), int(sys.argv[5])
pages = {int(p, 16) for p in sys.argv[6:9]}
if iommu == "smmuv3":
    pat = re.compile(r"smmuv3_translate_success \S+ sid=(0x[0-9a-f]+) iova=(0x[0-9a-f]+) "
                     r"translated=(0x[0-9a-f]+)")
    get = lambda m: (int(m.group(1), 16), int(m.group(3), 16))
else:
    pat = re.compile(r"virtio_iommu_translate_out (0x[0-9a-f]+) -> (0x[0-9a-f]+) for sid=(\d+)")
    get = lambda m: (int(m.group(3)), int(m.group(2), 16))
n = 0
for line in open(log):
    m = pat.search(line)
    if not m:
        continue
    s, pa = get(m)
    if s != sid:
        continue
    if pa & ~0xfff in pages:
        sys.exit(f"sid {sid:#x}: a translation reached {pa:#x}, in a buffer's own page")
    if not pool <= pa < pool + pool_pages * 4096:
        sys.exit(f"sid {sid:#x}: a translation reached {pa:#x}, outside the bounce pool")
    n += 1
if n == 0:
    sys.exit(f"sid {sid:#x}: no translation into the bounce pool")
print(f"sid {sid:#x}: {n} translations, all into the bounce pool, none to a buffer's page")
PY
    ;;
  faults)
    read -r pool_pa _ <<<"$(pool)"
    python3 - "${qemu_log}" "$(sid)" "$(iommu)" "$(page probe)" "${pool_pa}" <<'PY'
import re, sys
log, sid, iommu = sys.argv[1], int(sys.argv[2], 16), sys.argv[3]
probe, pool = int(sys.argv[4], 16), int(sys.argv[5], 16)
text = open(log).read()
# The page past the live bounce page: the probe's run is the pool's first page (the earlier
# runs were released), so one page past the pool's start.
past = pool + 0x1000
if iommu == "smmuv3":
    n = len(re.findall(rf"^smmuv3_record_event SMMU_EVT_F_TRANSLATION sid={sid:#x}$", text, re.M))
    if n == 0:
        sys.exit(f"QEMU recorded no F_TRANSLATION for sid {sid:#x}")
    failed = {int(a, 16) & ~0xfff for a in re.findall(
        r"translation failed for iova=(0x[0-9a-f]+)", text)}
    for name, page in (("the probe buffer's own page", probe), ("past the bounce page", past)):
        if page not in failed:
            sys.exit(f"QEMU failed no translation at {name} ({page:#x})")
    print(f"{n} F_TRANSLATION events for sid {sid:#x}, at the probe page and past the bounce page")
else:
    pat = re.compile(r"^virtio_iommu_report_fault FAULT reason=2 flags=\d+ endpoint=(\d+) "
                     r"address ?=(0x[0-9a-f]+)", re.M)
    pages = {int(a, 16) & ~0xfff for e, a in pat.findall(text) if int(e) == sid}
    for name, page in (("the probe buffer's own page", probe), ("past the bounce page", past)):
        if page not in pages:
            sys.exit(f"endpoint {sid}: no MAPPING fault at {name} ({page:#x})")
    print(f"endpoint {sid}: MAPPING faults at the probe page and past the bounce page")
PY
    ;;
  *)
    fail "unknown check '${what}'"
    ;;
esac
