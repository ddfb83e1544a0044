# gdb-multiarch script (Python) that takes deviso-decode's test captures from a real QEMU run of
# examples/ahci_isolation (README.md says how to run it). At each fault the demo's handler
# (deviso::demo::RecordFault) reports, it reads what the SMMU used, from the guest's memory and
# the SMMU's registers (QEMU's gdbstub reads MMIO too), with gdb's own `x` command, so each
# capture is exactly what a user would paste from a gdb session:
#   <prefix>-event-<name>.gdb   the event record of the first fault of each type (x/4gx), found
#                               in the event queue (SMMU_EVENTQ_BASE, IHI0070 6.3.29)
#   <prefix>-ste-<kind>.gdb     the faulting stream's STE (x/8gx), through SMMU_STRTAB_BASE/_CFG
#   <prefix>-cd.gdb             the CD a stage 1 STE points to (x/8gx)
#   <prefix>-tables.txt         every table reachable from that CD's TTB0 (x/Ngx lines)
#   <prefix>-fault.txt          the fault each capture came with (sid, type, iova)
#   <prefix>-cmd-<name>.gdb     the first command of each opcode in the command queue (x/2gx)
# With DEVISO_CAPTURE_VIRTIO=1 (the demo on virtio-iommu) it takes instead:
#   <prefix>-virtio-fault.gdb   the first fault record the driver decodes (x/3gx)
import os

import gdb

OUT = os.environ.get("DEVISO_CAPTURE_DIR", os.path.dirname(os.path.abspath(__file__)))
PREFIX = os.environ.get("DEVISO_CAPTURE_PREFIX", "qemu72")
SMMU = int(os.environ.get("DEVISO_CAPTURE_SMMU", "0x09050000"), 0)
EVENTS = {0x10: "translation", 0x13: "permission", 0x04: "bad-ste", 0x02: "bad-streamid",
          0x0a: "bad-cd", 0x11: "addr-size", 0x12: "access"}
OPS = {0x01: "prefetch-config", 0x03: "cfgi-ste", 0x04: "cfgi-ste-range", 0x05: "cfgi-cd",
       0x06: "cfgi-cd-all", 0x10: "tlbi-nh-all", 0x11: "tlbi-nh-asid", 0x12: "tlbi-nh-va",
       0x13: "tlbi-nh-vaa", 0x28: "tlbi-s12-vmall", 0x2a: "tlbi-s2-ipa", 0x30: "tlbi-nsnh-all",
       0x46: "sync"}
STE_KINDS = {0b000: "abort", 0b100: "bypass", 0b101: "s1", 0b110: "s2"}
seen = set()


def mem(addr, n):
    return bytes(gdb.selected_inferior().read_memory(addr, n))


def r64(addr):
    return int.from_bytes(mem(addr, 8), "little")


def r32(addr):
    return int.from_bytes(mem(addr, 4), "little")


def save(name, command, note=None):
    text = gdb.execute(command, to_string=True)
    with open(os.path.join(OUT, "%s-%s.gdb" % (PREFIX, name)), "w") as f:
        f.write(text)
    if note:
        with open(os.path.join(OUT, "%s-fault.txt" % PREFIX), "a") as f:
            f.write("%s: %s\n" % (name, note))


def dump_tables(root, level, out, granule=4096):
    data = mem(root, granule)
    for i in range(0, granule, 16):
        a = int.from_bytes(data[i:i + 8], "little")
        b = int.from_bytes(data[i + 8:i + 16], "little")
        if a or b:  # a text dump may be sparse: what is missing reads as "not in the dump"
            out.write("0x%x:\t0x%016x\t0x%016x\n" % (root + i, a, b))
        else:
            out.write("0x%x:\t0x0000000000000000\t0x0000000000000000\n" % (root + i))
    if level == 3:
        return
    for i in range(0, granule, 8):
        d = int.from_bytes(data[i:i + 8], "little")
        if d & 3 == 3:
            dump_tables(d & 0x0000fffffffff000, level + 1, out, granule)


def ste_address(sid):
    base = r64(SMMU + 0x80) & 0x000fffffffffffc0
    cfg = r32(SMMU + 0x88)
    if (cfg >> 16) & 3 == 0:  # linear
        return base + 64 * sid
    split = (cfg >> 6) & 0x1f
    l1 = r64(base + 8 * (sid >> split))
    if l1 & 0x1f == 0:
        return None
    return (l1 & 0x000fffffffffffc0) + 64 * (sid & ((1 << split) - 1))


def on_fault():
    f = int(gdb.parse_and_eval("(unsigned long)fault"))
    sid, reason, flags, raw_type = (r32(f), r32(f + 4), r32(f + 8), r32(f + 12))
    iova = r64(f + 16)
    note = "sid 0x%x event 0x%x iova 0x%x flags 0x%x" % (sid, raw_type, iova, flags)
    if os.environ.get("DEVISO_CAPTURE_VIRTIO"):
        return
    if ("event", raw_type) not in seen:
        base_reg = r64(SMMU + 0xa0)
        base, log2 = base_reg & 0x000fffffffffffe0, base_reg & 0x1f
        for i in range(1 << log2):
            e = base + 32 * i
            w0 = r64(e)
            if w0 & 0xff == raw_type and (w0 >> 32) == sid and (
                    not (flags & 0x20) or r64(e + 16) == iova):
                seen.add(("event", raw_type))
                save("event-" + EVENTS.get(raw_type, "%02x" % raw_type), "x/4gx 0x%x" % e, note)
                break
    ste = ste_address(sid)
    if ste is not None:
        w0 = r64(ste)
        kind = STE_KINDS.get((w0 >> 1) & 7, "other") if w0 & 1 else "invalid"
        if ("ste", kind) not in seen:
            seen.add(("ste", kind))
            save("ste-" + kind, "x/8gx 0x%x" % ste, note)
        if kind == "s1" and ("cd",) not in seen:
            seen.add(("cd",))
            cd = w0 & 0x000fffffffffffc0
            save("cd", "x/8gx 0x%x" % cd, note)
            ttb0 = r64(cd + 8) & 0x000ffffffffffff0
            with open(os.path.join(OUT, "%s-tables.txt" % PREFIX), "w") as out:
                out.write("# every table reachable from TTB0 0x%x (%s-cd.gdb), at: %s\n"
                          % (ttb0, PREFIX, note))
                dump_tables(ttb0, 0, out)
    # Commands so far (the queue is written in order from entry 0; it wraps only after 2^log2).
    base_reg = r64(SMMU + 0x90)
    base, log2 = base_reg & 0x000fffffffffffe0, base_reg & 0x1f
    prod = r32(SMMU + 0x98) & ((1 << log2) - 1)
    for i in range(prod):
        op = r64(base + 16 * i) & 0xff
        if ("cmd", op) not in seen:
            seen.add(("cmd", op))
            save("cmd-" + OPS.get(op, "%02x" % op), "x/2gx 0x%x" % (base + 16 * i))


def on_virtio_decode():
    if ("virtio",) in seen:
        return
    seen.add(("virtio",))
    e = int(gdb.parse_and_eval("$x0"))  # the FaultEvent (first argument, by reference)
    save("virtio-fault", "x/3gx 0x%x" % e)


class Stop(gdb.Breakpoint):
    def __init__(self, spec, handler):
        super().__init__(spec, internal=False)
        self.handler = handler

    def stop(self):
        try:
            self.handler()
        except gdb.error as err:
            print("capture: %s" % err)
        return False  # never stop: the demo runs on


Stop("deviso::demo::RecordFault", on_fault)
if os.environ.get("DEVISO_CAPTURE_VIRTIO"):
    Stop("deviso::virtio_iommu::VirtioIommu::DecodeFault", on_virtio_decode)
gdb.execute("continue")
