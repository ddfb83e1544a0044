# The q35 platform's crash reports on QEMU (label qemu-q35; test preset qemu-q35). Each test is
# one run of crash_report_q35, judged by the exit status (2), the report's fields on the console
# (vector, error code, CR2, and RIP against the ELF's symbol at the faulting instruction) and
# QEMU's own log of the exceptions it delivered in long mode (-d int), exactly once each: a
# handler that faulted again and again would show more, or time out.
set(q35_crash_test "${PROJECT_SOURCE_DIR}/examples/crash_report_q35/qemu_test.sh")
set(q35_crash_dir "${CMAKE_BINARY_DIR}/qemu-q35")
# A #PF above the mapped 4 GiB: the full report.
add_test(NAME q35_crash_report
    COMMAND "${q35_crash_test}" "${q35_crash_dir}/crash_report" "0e:0000:1dead0000" crash_q35_load
            --append crash=pf --expect-status 2
            --expect "deviso: crash report: vector 14 (#PF page fault), error code 0x0"
            --expect "page fault: not present, read, supervisor"
            --expect "CR2    0x00000001dead0000")
# SSE with CR4.OSFXSR clear: #UD, the full report (SSE is off in the platform on purpose).
add_test(NAME q35_crash_report_sse
    COMMAND "${q35_crash_test}" "${q35_crash_dir}/crash_report_sse" "06:0000" crash_q35_sse
            --append crash=sse --expect-status 2
            --expect "deviso: crash report: vector 6 (#UD invalid opcode), error code 0x0")
# A null pointer: page 0 is not mapped.
add_test(NAME q35_crash_report_null
    COMMAND "${q35_crash_test}" "${q35_crash_dir}/crash_report_null" "0e:0000:8" crash_q35_null_load
            --append crash=null --expect-status 2
            --expect "vector 14 (#PF page fault)" --expect "CR2    0x0000000000000008")
# A fault inside the full report (its hook loads from 0x2_dead_0000): the minimal report, with
# the first exception's RIP and CR2, and no third exception.
add_test(NAME q35_crash_report_in_handler
    COMMAND "${q35_crash_test}" "${q35_crash_dir}/crash_report_in_handler"
            "0e:0000:1dead0000 0e:0000:2dead0000" -
            --append crash=handler --expect-status 2
            --expect "deviso: minimal crash report (inside the exception handler)"
            --expect "CR2 0x00000002dead0000"
            --expect "first exception: vector 0x000000000000000e")
# A stack overflow into the guard page: the #PF's frame cannot be pushed either, so a double
# fault, on IST1: the minimal report.
add_test(NAME q35_crash_report_stack_overflow
    COMMAND "${q35_crash_test}" "${q35_crash_dir}/crash_report_stack_overflow"
            "0e:0002:__stack_guard+0xff8 08:0000" -
            --append crash=overflow --expect-status 2
            --expect "deviso: minimal crash report (double fault)"
            --expect "vector 0x0000000000000008")
# A failed assertion: the x86 port's deviso_panic, status 1, and no exception at all.
add_test(NAME q35_assert
    COMMAND "${q35_crash_test}" "${q35_crash_dir}/assert" "" -
            --append crash=assert --expect-status 1
            --expect "deviso: assertion failed: never")
set_tests_properties(q35_assert q35_crash_report q35_crash_report_sse q35_crash_report_null
    q35_crash_report_in_handler q35_crash_report_stack_overflow PROPERTIES
    LABELS qemu-q35 TIMEOUT 600 RUN_SERIAL TRUE)
