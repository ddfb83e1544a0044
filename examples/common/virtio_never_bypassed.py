#!/usr/bin/env python3
"""Checks QEMU 7.2's virtio-iommu trace: a device was never bypassed once deviso cleared bypass.

QEMU 7.2's virtio-iommu bypasses by switching a device's address space to plain memory
("iommu enabled=0"). Once the driver cleared config.bypass (before any bus master was enabled),
the device must never be switched back to it, no endpoint may have been attached before that,
and the device's DMA must have gone through translations.

Usage: virtio_never_bypassed.py TRACE BDF ENDPOINT
  TRACE     QEMU's trace log (-trace virtio_iommu_set_config, _switch_address_space, _attach,
            _translate_out)
  BDF       the device, as QEMU names it ("00:02.0")
  ENDPOINT  its endpoint ID (decimal or 0x-hex)
Exits non-zero with a reason on failure.
"""
import re
import sys


def main(trace, bdf, endpoint):
    ep = int(endpoint, 0)
    cleared = False
    switched_on = translated = 0
    switch = re.compile(r"virtio_iommu_switch_address_space Device (\S+) switching address "
                        r"space \(iommu enabled=(\d)\)")
    translate = re.compile(rf"virtio_iommu_translate_out .* for sid={ep}$")
    with open(trace) as f:
        for line in f:
            if line.startswith("virtio_iommu_set_config") and "bypass=0x0" in line:
                cleared = True
            m = switch.match(line)
            if m and m.group(1) == bdf and cleared:
                if m.group(2) == "0":
                    sys.exit(f"{bdf} was switched to bypass after the driver cleared "
                             "config.bypass")
                switched_on += 1
            if line.startswith("virtio_iommu_attach") and not cleared:
                sys.exit("an endpoint was attached before config.bypass was cleared")
            if translate.match(line.strip()):
                translated += 1
    if not cleared or switched_on == 0 or translated == 0:
        sys.exit(f"bypass cleared: {cleared}, {bdf} switched to translation {switched_on} "
                 f"times, {translated} translations of endpoint {ep}")
    print(f"{bdf}: never bypassed after config.bypass = 0; {translated} translations")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
