#!/usr/bin/env python3
"""Checks the translation stage in QEMU's SMMUv3 trace for one StreamID.

QEMU 7.2 traces `smmuv3_translate_success <mr> sid=0x10 iova=0x... translated=0x... perm=0x3`;
QEMU 9 and later append ` stage=N` (1, 2, or 3 for a nested S1+S2 walk). deviso makes
single-stage contexts: stage 1 when the SMMU offers it, else stage 2 (the console's
"SMMUv3 at ...: stage1 yes|no, stage2 yes|no" line says which the SMMU offered). Every traced
translation of the StreamID must be that stage when the trace names one; a stage-2 context needs
a trace that names it (no QEMU without the field emulates stage 2); and the format must not mix.

Usage: smmuv3_stage.py CONSOLE TRACE SID
Exits non-zero with a reason on failure.
"""
import re
import sys


def main(console, trace, sid):
    sid = int(sid, 16)
    text = open(console, errors="replace").read().replace("\r", "")
    m = re.search(r"SMMUv3 at \S+ stage1 (yes|no), stage2 (yes|no)", text)
    if not m:
        sys.exit("the console does not say which stages the SMMU offers")
    expected = 1 if m.group(1) == "yes" else 2
    pat = re.compile(r"smmuv3_translate_success \S+ sid=(0x[0-9a-f]+) iova=0x[0-9a-f]+ "
                     r"translated=0x[0-9a-f]+ perm=0x[0-9a-f]+(?: stage=(\d+))?$")
    with_stage = without = 0
    for line in open(trace):
        m = pat.search(line.rstrip("\n"))
        if not m or int(m.group(1), 16) != sid:
            continue
        if m.group(2) is None:
            without += 1
            continue
        with_stage += 1
        if int(m.group(2)) != expected:
            sys.exit(f"sid {sid:#x}: a stage-{m.group(2)} translation; deviso's context is "
                     f"stage {expected}")
    if with_stage + without == 0:
        sys.exit(f"sid {sid:#x}: no translation traced")
    if with_stage and without:
        sys.exit(f"sid {sid:#x}: {with_stage} translations name a stage, {without} do not")
    if expected == 2 and without:
        sys.exit(f"sid {sid:#x}: a stage-2 context, but the trace names no stage")
    named = f"all stage {expected}" if with_stage else "this QEMU's trace names no stage"
    print(f"sid {sid:#x}: {with_stage + without} translations, {named}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
