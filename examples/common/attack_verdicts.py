#!/usr/bin/env python3
"""ahci_isolation's attacks judged by QEMU, not by the program (docs/qemu.md, "Verdicts").

  attack_verdicts.py memory DIR
      From the memory qmp_dump.py read out of the parked guest (DIR/dump.ok, DIR/<name>.bin):
      every attack's canary or buffer still holds 0xcc (attack1_canary, attack2_buffer,
      attack3_read_only, attack4_canary, attack5_canary), and the granted read (granted_read: LBA 500, 16
      sectors through the translating mapping) holds the disk's pattern.
  attack_verdicts.py faults CONSOLE TRACE SID ROGUE_SID BDF
      From QEMU's trace (SMMUv3), cut into steps by the demo's markers (its writes to the AHCI's
      Interrupt Line, traced as pci_cfg_write BDF @0x3c <- N): QEMU failed a translation of the
      AHCI (SID) into attack 1's canary with F_TRANSLATION between markers 1 and 2, into
      attack 2's buffer with F_TRANSLATION between 2 and 3, into attack 3's read-only page with
      F_PERMISSION between 3 and 4 (QEMU's guest_errors log, "<mr> translation failed for
      iova=... (SMMU_EVT_...)", in the same file; the memory region is the AHCI's when its
      successful translations name it), and recorded C_BAD_STE/C_BAD_STREAMID for the rogue
      (ROGUE_SID) between 5 and 6, and for the AHCI itself after its deviso_ctx_free between
      7 and 8 (its configuration dropped: no stale STE walked); no translation of the AHCI into attack 1's canary ever
      succeeded, none into attack 2's buffer after its unmap (marker 2), none at all after
      marker 7, and no F_ event of
      the AHCI lies outside the attacks' steps. The regions' addresses are the console's
      "[DUMP] name pa bytes" lines.
"""

import re
import sys

CANARIES = ("attack1_canary", "attack2_buffer", "attack3_read_only", "attack4_canary",
            "attack5_canary")
DUMP = re.compile(r"^\[DUMP\] (\w+) (0x[0-9a-f]+) (0x[0-9a-f]+)\r?$", re.M)


def disk_sectors(lba, sectors):
    """The disk image's bytes (scripts/demo, examples/common/disk_pattern.h)."""
    out = bytearray()
    for n in range(lba, lba + sectors):
        for k in range(64):
            out += ((0xD15C << 48) | (n << 8) | k).to_bytes(8, "little")
    return bytes(out)


def memory(d):
    try:
        listed = [line.split() for line in open(f"{d}/dump.ok")]
    except OSError:
        sys.exit("no memory dump (DIR/dump.ok): the demo did not park or QMP failed")
    regions = {name: int(size, 16) for name, _, size in listed}
    for name in CANARIES + ("granted_read",):
        if name not in regions:
            sys.exit(f"the dump has no {name}")
        data = open(f"{d}/{name}.bin", "rb").read()
        if len(data) != regions[name]:
            sys.exit(f"{name}: {len(data)} bytes read, {regions[name]} expected")
        if name == "granted_read":
            want = disk_sectors(500, 16)
            if data[: len(want)] != want:
                bad = next(i for i in range(len(want)) if data[i] != want[i])
                sys.exit(f"granted_read: byte {bad:#x} is {data[bad]:#04x}, not the disk's")
        elif data != b"\xcc" * len(data):
            bad = next(i for i, b in enumerate(data) if b != 0xCC)
            sys.exit(f"{name}: byte {bad:#x} is {data[bad]:#04x}, not the canary 0xcc")
    print(f"memory read by QMP: {len(CANARIES)} canaries intact, the granted read's "
          f"{regions['granted_read']} bytes landed")


def faults(console_path, trace_path, sid, rogue, bdf):
    console = open(console_path, errors="replace").read()
    regions = {n: (int(pa, 16), int(size, 16)) for n, pa, size in DUMP.findall(console)}
    for name in CANARIES[:3]:
        if name not in regions:
            sys.exit(f"the console names no {name}")
    marker = re.compile(r"pci_cfg_write \S+ " + re.escape(bdf) + r" @0x3c <- (0x[0-9a-f]+)")
    failed = re.compile(r"^(\S+) translation failed for iova=(0x[0-9a-f]+) \(SMMU_EVT_(\w+)\)")
    after_free = 0  # the AHCI's successful translations after marker 7
    success = re.compile(r"smmuv3_translate_success (\S+) sid=(0x[0-9a-f]+) iova=(0x[0-9a-f]+) ")
    event = re.compile(r"smmuv3_record_event SMMU_EVT_(\w+) sid=(0x[0-9a-f]+)$")
    step = 0  # the last marker seen
    seen_markers = []
    aborts = {}  # (step, region, event type) -> count of the AHCI's failed translations
    mrs = set()  # the AHCI's IOMMU memory regions (named by its successful translations)
    events = {}  # (step, sid, type) -> count
    successes = []  # (step, region) of the AHCI's successful translations into a region

    def region_of(iova):
        for name, (pa, size) in regions.items():
            if pa <= iova < pa + size:
                return name
        return None

    for line in open(trace_path, errors="replace"):
        m = marker.search(line)
        if m:
            step = int(m.group(1), 16)
            seen_markers.append(step)
            continue
        m = failed.search(line)
        if m and m.group(1) in mrs:
            key = (step, region_of(int(m.group(2), 16)), m.group(3))
            aborts[key] = aborts.get(key, 0) + 1
            continue
        m = success.search(line)
        if m and int(m.group(2), 16) == sid:
            mrs.add(m.group(1))
            if step >= 7:
                after_free += 1
            r = region_of(int(m.group(3), 16))
            if r is not None:
                successes.append((step, r))
            continue
        m = event.search(line.rstrip())
        if m:
            key = (step, int(m.group(2), 16), m.group(1))
            events[key] = events.get(key, 0) + 1
    if seen_markers != list(range(1, 9)):
        sys.exit(f"the trace's markers for {bdf} are {seen_markers}, not 1..8")
    errors = []
    for n, name, kind in ((1, "attack1_canary", "F_TRANSLATION"),
                          (2, "attack2_buffer", "F_TRANSLATION"),
                          (3, "attack3_read_only", "F_PERMISSION")):
        if aborts.get((n, name, kind), 0) == 0:
            errors.append(f"attack {n}: QEMU failed no translation of sid {sid:#x} into {name} "
                     f"with {kind} between markers {n} and {n + 1}")
        if events.get((n, sid, kind), 0) == 0:
            errors.append(f"attack {n}: no {kind} of sid {sid:#x} between markers {n} and {n + 1}")
    late = {}
    for step_, name in successes:
        if name == "attack1_canary" or (name == "attack2_buffer" and step_ >= 2):
            late[(name, step_)] = late.get((name, step_), 0) + 1
    for (name, step_), n in sorted(late.items()):
        errors.append(f"sid {sid:#x}: {n} translations into {name} succeeded after marker {step_}")
    if not any(events.get((5, rogue, k), 0) for k in ("C_BAD_STE", "C_BAD_STREAMID")):
        errors.append(f"attack 4: no C_BAD_STE/C_BAD_STREAMID of sid {rogue:#x} between markers 5 "
                 "and 6")
    if not any(events.get((7, sid, k), 0) for k in ("C_BAD_STE", "C_BAD_STREAMID")):
        errors.append(f"attack 5: no C_BAD_STE/C_BAD_STREAMID of sid {sid:#x} between markers 7 "
                      "and 8 (after deviso_ctx_free)")
    if after_free:
        errors.append(f"attack 5: {after_free} translations of sid {sid:#x} succeeded after "
                      "deviso_ctx_free")
    stray = sorted({(s, k) for (s, e, k) in events if e == sid and k.startswith("F_")
                    and s not in (1, 2, 3)})
    if stray:
        errors.append(f"sid {sid:#x}: F_ events outside the attacks' steps (after marker, type): {stray}")
    if errors:
        sys.exit("\n".join(errors))
    print(f"QEMU's trace: each attack's aborts and events lie between its markers; "
          f"{sum(aborts.values())} failed translations, no translation into attack 1's canary, none "
          f"into attack 2's buffer after its unmap")


def main():
    if sys.argv[1] == "memory":
        memory(sys.argv[2])
    elif sys.argv[1] == "faults":
        faults(sys.argv[2], sys.argv[3], int(sys.argv[4], 16), int(sys.argv[5], 16), sys.argv[6])
    else:
        sys.exit(f"unknown check {sys.argv[1]}")


if __name__ == "__main__":
    main()
