# The exception path's crash reports on QEMU (label `qemu`; qemu_crash_report, the full report
# of a fault after the MMU is on, is in the top-level CMakeLists.txt). Each test is one QEMU
# run, judged by the exit status (2), the console and QEMU's own exception log (-d int): the
# listed data aborts exactly once each, then the semihosting exit; a handler that faulted
# again and again would show more, or time out.
set(crash_test "${PROJECT_SOURCE_DIR}/examples/crash_report/qemu_test.sh")
# A fault before the MMU is on (examples/crash_report_early: an address size fault from
# start.S's pre-MMU hook): the minimal report, no C++.
add_test(NAME qemu_crash_report_pre_mmu
    COMMAND "${crash_test}" "${CMAKE_BINARY_DIR}/qemu/crash_report_pre_mmu"
            "0x96000000@0x10000000000000"
            --image crash_report_early --expect-status 2
            --expect "minimal report (before the MMU is on)"
            --expect "ESR_EL1  0x0000000096000000" --expect "FAR_EL1  0x0010000000000000")
# A fault inside the handler: the load faults, and with the stack unmapped so does the vector's
# first store of the frame (FAR = 0xdead0000 - 816): the minimal report, not a loop.
add_test(NAME qemu_crash_report_in_handler
    COMMAND "${crash_test}" "${CMAKE_BINARY_DIR}/qemu/crash_report_in_handler"
            "0x96000005@0xdead0000 0x96000045@0xdeacfcd0"
            --image crash_report --expect-status 2
            --expect "minimal report (inside the exception handler)"
            --expect "FAR_EL1  0x00000000deacfcd0"
            -- -append crash=handler)
set_tests_properties(qemu_crash_report_pre_mmu qemu_crash_report_in_handler PROPERTIES
    LABELS qemu TIMEOUT 600 RUN_SERIAL TRUE)
