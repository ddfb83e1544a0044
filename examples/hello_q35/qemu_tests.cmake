# The q35 bring-up program on QEMU (label qemu-q35; test preset qemu-q35). Each is one run of
# scripts/demo --board q35, judged by the exit status as scripts/demo maps it back from
# isa-debug-exit and by the console (q35_hello also by QEMU's log of the interrupts delivered).
set(q35_demo "${PROJECT_SOURCE_DIR}/scripts/demo")
# With the VT-d unit: every check passes, the DMAR is among the ACPI tables, the MCFG and the
# DMAR parse (src/acpi), and the built-in functions are listed.
# QEMU's own log (-d int, through crash_report_q35's judge) must show exactly the two interrupts
# the program asked for, in 64-bit mode: the self-IPI (0x40), then the APIC timer (0x41).
add_test(NAME q35_hello
    COMMAND "${PROJECT_SOURCE_DIR}/examples/crash_report_q35/qemu_test.sh"
            "${CMAKE_BINARY_DIR}/qemu-q35/hello" "40:0000 41:0000" -
            --image hello_q35 --check
            --expect "pci:    00:1f.2 8086:2922 class 01.06.01 SATA AHCI"
            --expect "[PASS] ACPI: DMAR present (intel-iommu)" --expect "acpi:   DMAR 0x"
            --expect "mcfg:   ECAM 0xb0000000 segment 0 buses 0-255"
            --expect "dmar:   DRHD 0xfed90000 (4 KiB) segment 0"
            # QEMU 7.2's unit as /work/shared/notes/qemu-q35-vtd.md measured it (intremap=off).
            --expect "vtd:    unit 0xfed90000 VER 1.0 CAP 0x00d2008c22260206 ECAP 0x0000000000000f42")
# Without it: no DMAR.
add_test(NAME q35_hello_no_iommu
    COMMAND "${q35_demo}" --board q35 --image hello_q35 --iommu none --check
            --expect "[PASS] ACPI: no DMAR (no intel-iommu)")
# Functions behind PCIe root ports and a PCIe-to-PCI bridge (qemu-devices-root-ports): SeaBIOS
# numbered the buses; ECAM and the ports list the same functions, the DMAR has the root ports as
# bridge scopes.
add_test(NAME q35_hello_root_ports
    COMMAND "${q35_demo}" --board q35 --image hello_q35 --check
            --devices "${PROJECT_SOURCE_DIR}/examples/hello_q35/qemu-devices-root-ports"
            --expect "pci:    00:02.0 1b36:000c class 06.04.00 PCI-PCI bridge, buses 01-01"
            --expect "pci:    01:00.0 8086:2922 class 01.06.01 SATA AHCI"
            --expect "pci:    03:01.0 1234:11e8 class 00.ff.00"
            --expect "dmar:     bridge bus 00 path 02.0"
            --expect "[PASS] PCI: ECAM (MCFG) and the 0xCF8 ports list the same functions")
# 4 GiB (QEMU puts 2 GiB below 4 GiB and 2 GiB above, which the map leaves out) on a CPU
# without NX (start.S then sets no XD bits and leaves EFER.NXE clear: EFER = LME | LMA).
add_test(NAME q35_hello_4g_no_nx
    COMMAND "${q35_demo}" --board q35 --image hello_q35 --check
            --expect "map:    [0x1000, 0x80000000) write-back (page 0 unmapped)"
            --expect "long mode (EFER 0x500)" --expect "NX off"
            --expect "memory: [0x100000000, 0x180000000) RAM"
            -- -m 4G -cpu qemu64,-nx)
# The program's own status comes back from QEMU's (value << 1) | 1: 5 is written as 6, QEMU
# exits 13, scripts/demo says 5.
add_test(NAME q35_exit_status
    COMMAND "${q35_demo}" --board q35 --image hello_q35 --append exit=5 --expect-status 5
            --expect "deviso-exit: 5")
set_tests_properties(q35_hello q35_hello_no_iommu q35_hello_root_ports q35_hello_4g_no_nx
    q35_exit_status PROPERTIES
    LABELS qemu-q35 TIMEOUT 600 RUN_SERIAL TRUE)
