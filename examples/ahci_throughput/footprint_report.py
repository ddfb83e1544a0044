#!/usr/bin/env python3
"""Footprint of deviso's own code in a linked bare-metal image, from the GNU ld map file.

    footprint_report.py IMAGE.elf.map [--top N] [--functions-of core,pgtable,smmuv3]
                        [--label NAME] [--deviso-text]

Reads the "Linker script and memory map" part of the map (what --gc-sections kept, never the
"Discarded input sections" list), attributes every input section to its object file, and
prints .text / .rodata / .data / .bss per object, per component and in total, then the largest
functions of deviso's components (with -ffunction-sections each function is an input section
of its own). Sizes are what the image holds: the output section decides the column (.vectors
counts as .text; .init_array and .got as .data; .tbss and the boot .stack as .bss).

Components: core (src/core), pgtable (src/pgtable), smmuv3 (src/smmuv3) are deviso's own;
port (src/ports/baremetal), smmu-glue (platform/.../smmu_platform.cc), platform, app, and the
libraries (libfdt, picolibc, libgcc, libstdc++) are listed apart.

With DEVISO_LTO=ON only deviso's three libraries are LTO objects, so everything the link-time
step emits (the *.ltrans.o objects) is deviso's; it is attributed to a component by the
namespace of each section's symbol (deviso::pgtable, deviso::smmuv3, the rest of deviso and the
C ABI to core), and code inlined across components counts where it was inlined.

The build's deviso/config.h (found above the map, in <build>/include/deviso/) is summarised in
the heading. --label NAME prints `bench: footprint-NAME ...` lines instead of `bench: footprint
...`; --deviso-text prints only deviso's total .text (for scripts).
"""

import argparse
import os
import re
import subprocess
import sys
from collections import defaultdict

DEVISO = ("core", "pgtable", "smmuv3")
COLUMNS = ("text", "rodata", "data", "bss")

# Output section -> column.
OUTPUT_COLUMN = {
    ".text": "text",
    ".vectors": "text",
    ".iplt": "text",
    ".rodata": "rodata",
    ".init_array": "data",
    ".data": "data",
    ".tdata": "data",
    ".got": "data",
    ".got.plt": "data",
    ".igot.plt": "data",
    ".bss": "bss",
    ".tbss": "bss",
    ".stack": "bss",
}

# Object path -> component (first match wins).
COMPONENTS = (
    (r"libdeviso_core\.a", "core"),
    (r"libdeviso_pgtable\.a", "pgtable"),
    (r"libdeviso_smmuv3\.a", "smmuv3"),
    (r"libdeviso_port\.a", "port"),
    (r"libdeviso_qemu_virt_smmu\.a", "smmu-glue"),
    (r"deviso_qemu_virt\.dir", "platform"),
    (r"libfdt\.a", "libfdt"),
    (r"libc\.a|picolibc", "picolibc"),
    (r"libgcc\.a", "libgcc"),
    (r"libstdc\+\+\.a", "libstdc++"),
    (r"examples/|CMakeFiles/", "app"),
    (r"linker stubs", "linker"),
)

HEX = r"0x[0-9a-fA-F]+"
# " .text.name  0xADDR  0xSIZE  object" (all on one line), or " .text.name" with the rest on
# the next line.
INPUT_FULL = re.compile(rf"^ (\S+)\s+({HEX})\s+({HEX})\s+(\S.*)$")
INPUT_NAME = re.compile(r"^ (\S+)\s*$")
CONTINUATION = re.compile(rf"^\s+({HEX})\s+({HEX})\s+(\S.*)$")
SYMBOL = re.compile(rf"^\s+({HEX})\s+(\S.*)$")
OUTPUT = re.compile(rf"^(\.\S+)(?:\s+({HEX})\s+({HEX}))?")


LTRANS = re.compile(r"\.ltrans\d*\.ltrans\.o$|\.ltrans\.o$")


def lto_component_of(section):
    """Component of a section the link-time step emitted, from its (mangled) symbol."""
    if "6deviso7pgtable" in section:
        return "pgtable"
    if "6deviso6smmuv3" in section:
        return "smmuv3"
    return "core"


def component_of(obj, section=None):
    if LTRANS.search(obj):
        return lto_component_of(section or "")
    for pattern, name in COMPONENTS:
        if re.search(pattern, obj):
            return name
    return "other"


def short_object(obj):
    """'src/smmuv3/libdeviso_smmuv3.a(smmuv3.cc.obj)' -> 'smmuv3.cc.obj'."""
    if LTRANS.search(obj):
        return "(lto)"
    m = re.search(r"\(([^)]+)\)$", obj)
    if m:
        return m.group(1)
    return obj.rsplit("/", 1)[-1]


def parse(path):
    """Returns a list of (column, object, input section name, size, symbol or None)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    try:
        start = lines.index("Linker script and memory map")
    except ValueError:
        sys.exit(f"{path}: not a GNU ld map (no 'Linker script and memory map')")
    sections = []
    column = None
    pending = None  # an input section name waiting for its address line
    last = None  # index of the last input section, to attach its first symbol
    for line in lines[start + 1:]:
        if not line:
            continue
        if line[0] == ".":  # an output section
            m = OUTPUT.match(line)
            column = OUTPUT_COLUMN.get(m.group(1)) if m else None
            pending = None
            last = None
            continue
        if column is None or line.startswith(" *fill*") or line.startswith(" *("):
            continue
        m = INPUT_FULL.match(line)
        if m and not m.group(4).startswith("0x"):
            size = int(m.group(3), 16)
            if size:
                sections.append([column, m.group(4).strip(), m.group(1), size, None])
                last = len(sections) - 1
            else:
                last = None
            pending = None
            continue
        if pending is not None:
            m = CONTINUATION.match(line)
            if m and not m.group(3).startswith("0x"):
                size = int(m.group(2), 16)
                if size:
                    sections.append([column, m.group(3).strip(), pending, size, None])
                    last = len(sections) - 1
                else:
                    last = None
            pending = None
            continue
        m = INPUT_NAME.match(line)
        if m:
            pending = m.group(1)
            continue
        m = SYMBOL.match(line)
        # "0x127 (size before relaxing)" is a note, not a symbol.
        if m and last is not None and sections[last][4] is None and m.group(2)[0] != "(":
            sections[last][4] = m.group(2).strip()
    return sections


def demangle(names):
    names = list(names)
    if not names:
        return {}
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True,
                             check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {n: n for n in names}
    return dict(zip(names, out))


def function_name(section, symbol, demangled):
    if symbol and not symbol.startswith("0x"):
        return symbol
    for prefix in (".text.", ".rodata.", ".data.rel.ro.", ".data.", ".bss."):
        if section.startswith(prefix):
            return demangled.get(section[len(prefix):], section[len(prefix):])
    return section


def table_row(name, sizes, width):
    total = sum(sizes[c] for c in COLUMNS)
    return (f"{name:<{width}} " + " ".join(f"{sizes[c]:>8}" for c in COLUMNS) +
            f" {total:>9}")


def build_configuration(map_path):
    """'profile minimal: STAGE2=0 ...' from the build's deviso/config.h, or None."""
    d = os.path.dirname(os.path.abspath(map_path))
    for _ in range(5):
        header = os.path.join(d, "include", "deviso", "config.h")
        if os.path.isfile(header):
            with open(header, encoding="utf-8") as f:
                text = f.read()
            profile = re.search(r"^// Profile: (\S+)", text, re.M)
            options = re.findall(r"^#define DEVISO_CONFIG_(\w+) (\d)", text, re.M)
            return (f"profile {profile.group(1) if profile else '?'}: " +
                    " ".join(f"{name}={value}" for name, value in options))
        d = os.path.dirname(d)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("map")
    ap.add_argument("--top", type=int, default=25, help="largest functions to list")
    ap.add_argument("--functions-of", default=",".join(DEVISO),
                    help="components whose functions are listed")
    ap.add_argument("--label", default="", help="names the build in the `bench:` lines")
    ap.add_argument("--deviso-text", action="store_true",
                    help="print deviso's total .text only")
    args = ap.parse_args()

    sections = parse(args.map)
    if args.deviso_text:
        print(sum(size for column, obj, sec, size, _ in sections
                  if column == "text" and component_of(obj, sec) in DEVISO))
        return
    lto = any(LTRANS.search(obj) for _, obj, _, _, _ in sections)
    per_object = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))
    per_component = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))
    for column, obj, sec, size, _ in sections:
        comp = component_of(obj, sec)
        per_object[(comp, short_object(obj))][column] += size
        per_component[comp][column] += size

    width = 36
    header = f"{'':<{width}} " + " ".join(f"{c:>8}" for c in COLUMNS) + f" {'total':>9}"
    print(f"footprint of {args.map} (bytes; kept by --gc-sections)")
    configuration = build_configuration(args.map)
    if configuration:
        print(f"deviso {configuration}; LTO {'on' if lto else 'off'}")
    print()
    print(header.replace(" " * width, f"{'deviso object':<{width}}", 1))
    for comp in DEVISO:
        for (c, obj), sizes in sorted(per_object.items()):
            if c == comp:
                print(table_row(f"  {comp}/{obj}", sizes, width))
    print()
    print(header.replace(" " * width, f"{'component':<{width}}", 1))
    deviso_total = dict.fromkeys(COLUMNS, 0)
    for comp in DEVISO:
        print(table_row(comp, per_component[comp], width))
        for c in COLUMNS:
            deviso_total[c] += per_component[comp][c]
    print(table_row("deviso total (core+pgtable+smmuv3)", deviso_total, width))
    others = sorted(c for c in per_component if c not in DEVISO)
    for comp in others:
        print(table_row(f"({comp})", per_component[comp], width))
    tag = f"footprint-{args.label}" if args.label else "footprint"
    print(f"bench: {tag} deviso text={deviso_total['text']} rodata={deviso_total['rodata']} "
          f"data={deviso_total['data']} bss={deviso_total['bss']}")
    for comp in DEVISO:
        s = per_component[comp]
        print(f"bench: {tag} {comp} text={s['text']} rodata={s['rodata']} data={s['data']} "
              f"bss={s['bss']}")

    wanted = set(args.functions_of.split(","))
    funcs = [(size, component_of(obj, sec), sec, sym) for column, obj, sec, size, sym in sections
             if column == "text" and component_of(obj, sec) in wanted]
    demangled = demangle(sec.split(".", 2)[2] for _, _, sec, _ in funcs if sec.count(".") >= 2)
    funcs.sort(key=lambda f: -f[0])
    total_text = sum(f[0] for f in funcs)
    print()
    print(f"largest functions of {', '.join(sorted(wanted))} (.text {total_text} bytes in "
          f"{len(funcs)} functions)")
    running = 0
    for size, comp, sec, sym in funcs[:args.top]:
        running += size
        print(f"  {size:>6} {100.0 * running / max(total_text, 1):5.1f}%  {comp:<8} "
              f"{function_name(sec, sym, demangled)}")
    # The SMMU glue's data too: the Smmuv3 object and the table pool live there.
    data = [(size, component_of(obj, sec), sec, sym) for column, obj, sec, size, sym in sections
            if column in ("rodata", "data", "bss") and
            component_of(obj, sec) in wanted | {"smmu-glue"}]
    data.sort(key=lambda f: -f[0])
    print()
    print("largest data objects of the same components and of the SMMU glue "
          "(.rodata/.data/.bss)")
    names = demangle(sec.split(".", 2)[2] for _, _, sec, _ in data[:12] if sec.count(".") >= 2)
    for size, comp, sec, sym in data[:12]:
        print(f"  {size:>8}  {comp:<9} {function_name(sec, sym, names)}")


if __name__ == "__main__":
    main()
