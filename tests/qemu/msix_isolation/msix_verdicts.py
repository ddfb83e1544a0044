#!/usr/bin/env python3
"""Verdicts on msix_isolation from QEMU's own trace, not from the program's console.

The program writes markers 1..6 into nvme0's Interrupt Line register (PCI 3.0 6.2.4), which
`-trace pci_cfg_write` shows as `pci_cfg_write nvme 00:03.0 @0x3c <- 0xN`; the trace is cut at
them. What each check requires:

  delivered   between markers 1 and 2: the SMMU translated nvme0's MSI write
              (`smmuv3_translate_success ... sid=<nvme0> iova=<doorbell>`), the ITS received
              writes of EventID 1 (the I/O vector) with nvme0's requester ID
              (`gicv3_its_translation_write ... data 0x1 ... requester_id <nvme0>`), and the CPU
              acknowledged the I/O LPI (`gicv3_icc_iar1_read ... value <LPI>`); no F_* event
              for nvme0. --bypass (virtio-iommu): the translation line is not required.
  rogue       between markers 3 and 4: F_TRANSLATION for the rogue's StreamID and a failed
              translation at the doorbell address (-d guest_errors); anywhere in the trace: no
              successful translation of the rogue at the doorbell, no ITS write with its
              requester ID, and its LPIs never acknowledged.
  unmapped    after marker 5 (nvme0's doorbell unmapped): no successful translation of nvme0
              at the doorbell and no ITS write with its requester ID, and between 5 and 6
              F_TRANSLATION for nvme0 and a failed translation at the doorbell.
  stage2      (a stage-2 SMMU) every translation of nvme0 at the doorbell is stage=2 with
              perm=0x2: QEMU walked a write-only stage-2 mapping.
  its_setup   the ITS commands the driver issued, as QEMU decoded them: MAPC of ICID 0,
              MAPD of both DeviceIDs with a valid ITT, MAPTI of both events of each to the
              LPIs the console names.

The console gives the StreamIDs, DeviceIDs, the doorbell and the LPIs; nothing is assumed.

usage: msix_verdicts.py CHECK CONSOLE TRACE [--bypass]
"""

import re
import sys


def fail(msg):
    print(f"msix_verdicts: {msg}", file=sys.stderr)
    sys.exit(1)


def console_facts(path):
    text = open(path, encoding="utf-8", errors="replace").read().replace("\r", "")
    facts = {}
    for name in ("nvme0", "nvme1"):
        m = re.search(rf"^ +{name}: [0-9a-f]{{4}}:[0-9a-f]{{4}} at ([0-9a-f:.]+), StreamID "
                      r"(0x[0-9a-f]+)$", text, re.M)
        if not m:
            fail(f"the console names no StreamID for {name}")
        facts[name] = {"bdf": m.group(1), "sid": int(m.group(2), 16)}
        m = re.search(rf"^ +{name}: MSI-X table .* EventIDs 0/1 -> LPIs (\d+)/(\d+)$", text,
                      re.M)
        if not m:
            fail(f"the console names no LPIs for {name}")
        facts[name]["lpis"] = (int(m.group(1)), int(m.group(2)))
    m = re.search(r"nvme0: DeviceID (0x[0-9a-f]+); nvme1: DeviceID (0x[0-9a-f]+)", text)
    if not m:
        fail("the console names no DeviceIDs")
    facts["nvme0"]["devid"] = int(m.group(1), 16)
    facts["nvme1"]["devid"] = int(m.group(2), 16)
    m = re.search(r"doorbell \(GITS_TRANSLATER\) (0x[0-9a-f]+)", text)
    if not m:
        fail("the console names no doorbell")
    facts["doorbell"] = int(m.group(1), 16)
    return facts


def phases(lines, bdf):
    """The trace cut at nvme0's markers: {marker: index of its line}."""
    marks = {}
    pat = re.compile(rf"pci_cfg_write \S+ {re.escape(bdf)} @0x3c <- (0x[0-9a-f]+)$")
    for i, line in enumerate(lines):
        m = pat.search(line)
        if m:
            marks.setdefault(int(m.group(1), 16), i)
    for n in range(1, 7):
        if n not in marks:
            fail(f"marker {n} is not in the trace (pci_cfg_write of {bdf} @0x3c)")
    return marks


def translated(line, sid, iova):
    m = re.search(r"smmuv3_translate_success .*sid=(0x[0-9a-f]+) iova=(0x[0-9a-f]+) ", line)
    return m is not None and int(m.group(1), 16) == sid and int(m.group(2), 16) == iova


def its_write(line, devid, data=None):
    m = re.search(r"gicv3_its_translation_write .*data (0x[0-9a-f]+) size \d+ "
                  r"requester_id (0x[0-9a-f]+)", line)
    return (m is not None and int(m.group(2), 16) == devid and
            (data is None or int(m.group(1), 16) == data))


def acked(line, intid):
    m = re.search(r"gicv3_icc_iar1_read .*value (0x[0-9a-f]+)", line)
    return m is not None and int(m.group(1), 16) == intid


def event(line, kind, sid):
    m = re.search(r"smmuv3_record_event SMMU_EVT_(\w+) sid=(0x[0-9a-f]+)", line)
    return (m is not None and int(m.group(2), 16) == sid and
            (m.group(1) == kind if kind != "F_*" else m.group(1).startswith("F_")))


def failed_at(line, iova):
    m = re.search(r"translation failed for iova=(0x[0-9a-f]+)", line)
    return m is not None and int(m.group(1), 16) == iova


def main():
    if len(sys.argv) < 4:
        fail(__doc__)
    check, console, trace = sys.argv[1:4]
    bypass = "--bypass" in sys.argv[4:]
    f = console_facts(console)
    lines = open(trace, encoding="utf-8", errors="replace").read().splitlines()
    marks = phases(lines, f["nvme0"]["bdf"])
    db = f["doorbell"]
    nv, rogue = f["nvme0"], f["nvme1"]

    def window(a, b):
        return lines[marks[a]:marks[b]]

    if check == "delivered":
        w = window(1, 2)
        if not bypass and not any(translated(x, nv["sid"], db) for x in w):
            fail(f"no translation of sid {nv['sid']:#x} at the doorbell {db:#x} between 1 and 2")
        writes = sum(its_write(x, nv["devid"], 1) for x in w)
        if writes < 1:
            fail(f"the ITS received no EventID 1 from requester {nv['devid']:#x}")
        if not any(acked(x, nv["lpis"][1]) for x in w):
            fail(f"the CPU never acknowledged LPI {nv['lpis'][1]} between 1 and 2")
        if any(event(x, "F_*", nv["sid"]) for x in w):
            fail("a fault of nvme0 while its doorbell was mapped")
        print(f"delivered: {writes} ITS writes of EventID 1 from {nv['devid']:#x}, LPI "
              f"{nv['lpis'][1]} acknowledged")
    elif check == "rogue":
        w = window(3, 4)
        if not any(event(x, "F_TRANSLATION", rogue["sid"]) for x in w):
            fail(f"no F_TRANSLATION for the rogue's sid {rogue['sid']:#x} between 3 and 4")
        if not any(failed_at(x, db) for x in w):
            fail(f"no failed translation at the doorbell {db:#x} between 3 and 4")
        if any(translated(x, rogue["sid"], db) for x in lines):
            fail("the rogue's write to the doorbell was translated")
        if any(its_write(x, rogue["devid"]) for x in lines):
            fail(f"the ITS received a write from the rogue's requester ID {rogue['devid']:#x}")
        if any(acked(x, i) for x in lines for i in rogue["lpis"]):
            fail("a rogue LPI was acknowledged")
        print("rogue: blocked at the SMMU, nothing reached the ITS")
    elif check == "unmapped":
        after = lines[marks[5]:]
        if any(translated(x, nv["sid"], db) for x in after):
            fail("nvme0's MSI was translated after its doorbell was unmapped")
        if any(its_write(x, nv["devid"]) for x in after):
            fail("the ITS received nvme0's MSI after its doorbell was unmapped")
        w = window(5, 6)
        if not any(event(x, "F_TRANSLATION", nv["sid"]) for x in w):
            fail("no F_TRANSLATION for nvme0 after the unmap")
        if not any(failed_at(x, db) for x in w):
            fail(f"no failed translation at the doorbell {db:#x} after the unmap")
        print("unmapped: nvme0's MSIs blocked after UnmapMsiDoorbell")
    elif check == "stage2":
        seen = [x for x in lines if translated(x, nv["sid"], db)]
        if not seen:
            fail("no translation of nvme0 at the doorbell")
        for x in seen:
            m = re.search(r"perm=(0x[0-9a-f]+) stage=(\d+)", x)
            if not m or int(m.group(1), 16) != 2 or m.group(2) != "2":
                fail(f"not a write-only stage-2 translation: {x}")
        print(f"stage2: {len(seen)} translations of the doorbell, all stage=2 perm=0x2")
    elif check == "its_setup":
        text = "\n".join(lines)
        if not re.search(r"gicv3_its_cmd_mapc .*ICID 0x0 .*V 1", text):
            fail("no MAPC of ICID 0")
        for n in (nv, rogue):
            if not re.search(rf"gicv3_its_cmd_mapd .*DeviceID {n['devid']:#x} .*V 1", text):
                fail(f"no valid MAPD of DeviceID {n['devid']:#x}")
            for event_id, lpi in enumerate(n["lpis"]):
                if not re.search(rf"gicv3_its_cmd_mapti .*DeviceID {n['devid']:#x} "
                                 rf"EventID {event_id:#x} ICID 0x0 pINTID {lpi:#x}", text):
                    fail(f"no MAPTI of ({n['devid']:#x}, {event_id}) to LPI {lpi}")
        print("its_setup: MAPC, MAPD and MAPTI as the driver meant them")
    else:
        fail(f"unknown check {check}")


if __name__ == "__main__":
    main()
