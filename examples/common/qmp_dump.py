#!/usr/bin/env python3
"""Reads a parked demo's memory from outside the guest, through QEMU's QMP (pmemsave).

  qmp_dump.py SOCKET CONSOLE OUTDIR

Waits (at most 500 s: the build may come first) for QEMU's QMP server at the unix SOCKET,
then (at most 120 s) for the demo's "[DUMP] ready" line in the CONSOLE log, then saves each
region the console named ("[DUMP] name pa bytes") to OUTDIR/name.bin with QMP's pmemsave,
writes OUTDIR/dump.ok (the region list) and quits QEMU. Gives up, without dump.ok, when QEMU
goes away first. The deadlines only prove "no hang".
"""

import json
import os
import re
import select
import socket
import sys
import time

DUMP = re.compile(r"^\[DUMP\] (\w+) (0x[0-9a-f]+) (0x[0-9a-f]+)\r?$", re.M)


def main():
    sock_path, console, outdir = sys.argv[1:4]
    deadline = time.monotonic() + 500
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    while True:
        try:
            s.connect(sock_path)
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("qmp_dump: no QMP server")
            time.sleep(0.2)
    f = s.makefile("rw")

    def reply():
        while True:
            line = f.readline()
            if not line:
                sys.exit("qmp_dump: QEMU went away")
            msg = json.loads(line)
            if "return" in msg or "error" in msg:
                return msg

    def command(name, **args):
        f.write(json.dumps({"execute": name, "arguments": args} if args else {"execute": name}))
        f.write("\n")
        f.flush()
        msg = reply()
        if "error" in msg:
            sys.exit(f"qmp_dump: {name}: {msg['error']}")
        return msg

    if not f.readline():  # the greeting
        sys.exit("qmp_dump: QEMU went away")
    command("qmp_capabilities")
    deadline = time.monotonic() + 120
    while True:
        text = open(console, errors="replace").read() if os.path.exists(console) else ""
        if "[DUMP] ready" in text:
            break
        if time.monotonic() > deadline:
            sys.exit("qmp_dump: no '[DUMP] ready' on the console")
        # QEMU gone (the demo exited without parking): the socket reads EOF.
        r, _, _ = select.select([s], [], [], 0.2)
        if r and not s.recv(1, socket.MSG_PEEK):
            sys.exit("qmp_dump: QEMU exited before the demo parked")
    regions = DUMP.findall(text)
    for name, pa, size in regions:
        command("pmemsave", val=int(pa, 16), size=int(size, 16),
                filename=os.path.join(os.path.abspath(outdir), name + ".bin"))
    with open(os.path.join(outdir, "dump.ok"), "w") as ok:
        for name, pa, size in regions:
            ok.write(f"{name} {pa} {size}\n")
    command("quit")


if __name__ == "__main__":
    main()
