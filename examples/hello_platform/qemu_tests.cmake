# The bring-up program on other variants of QEMU's `virt` board (issue 11: any RAM size, CPU
# model or GIC version it offers), included by the top-level CMakeLists.txt (label `qemu`; the
# default run, qemu_hello_platform, is defined there). Each is one run: exit status 0 (every
# check of the program passed: GIC SPI delivery, AHCI, devicetree) and the console line that
# shows the variant took effect.
set(hello_demo "${PROJECT_SOURCE_DIR}/scripts/demo")
# GICv2 (GICD + GICC), a Cortex-A72, 2 GiB.
add_test(NAME qemu_hello_platform_gicv2_a72_2g
    COMMAND "${hello_demo}" --image hello_platform --expect "gic:    GICv2, distributor"
            --expect-status 0 -- -M gic-version=2 -cpu cortex-a72 -m 2G)
# EL2 entry with GICv4 (virtualization=on: start.S drops to EL1), `-cpu max`, 4 GiB.
add_test(NAME qemu_hello_platform_gicv4_max_4g
    COMMAND "${hello_demo}" --image hello_platform
            --expect "memory: [0x40000000, 0x140000000) 4096 MiB" --expect-status 0
            -- -M virtualization=on,gic-version=4 -cpu max -m 4G)
set_tests_properties(qemu_hello_platform_gicv2_a72_2g qemu_hello_platform_gicv4_max_4g
    PROPERTIES LABELS qemu TIMEOUT 600 RUN_SERIAL TRUE)
