# The q35 bring-up program on QEMU (label qemu-q35; test preset qemu-q35). Each is one run of
# scripts/demo --board q35, judged by the exit status as scripts/demo maps it back from
# isa-debug-exit and by the console.
set(q35_demo "${PROJECT_SOURCE_DIR}/scripts/demo")
# With the VT-d unit: every check passes, and the DMAR is among the ACPI tables.
add_test(NAME q35_hello
    COMMAND "${q35_demo}" --board q35 --image hello_q35 --check
            --expect "[PASS] ACPI: DMAR present (intel-iommu)" --expect "acpi:   DMAR 0x")
# Without it: no DMAR.
add_test(NAME q35_hello_no_iommu
    COMMAND "${q35_demo}" --board q35 --image hello_q35 --iommu none --check
            --expect "[PASS] ACPI: no DMAR (no intel-iommu)")
# The program's own status comes back from QEMU's (value << 1) | 1: 5 is written as 6, QEMU
# exits 13, scripts/demo says 5.
add_test(NAME q35_exit_status
    COMMAND "${q35_demo}" --board q35 --image hello_q35 --append exit=5 --expect-status 5
            --expect "deviso-exit: 5")
set_tests_properties(q35_hello q35_hello_no_iommu q35_exit_status PROPERTIES
    LABELS qemu-q35 TIMEOUT 600 RUN_SERIAL TRUE)
