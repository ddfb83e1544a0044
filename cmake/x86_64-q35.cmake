# CMake toolchain for deviso's bare-metal x86-64 build (QEMU q35, platform/qemu-q35-x86_64).
#
# Compiler: the host's own g++ (x86-64 Linux GCC) made freestanding. Debian has no x86 picolibc,
# so the image links no C library: the little runtime it needs (memcpy, memset, strlen, a
# printf) lives in the platform (runtime.cc, format.cc). deviso brings its own start code
# (boot/start.S, a Multiboot v1 header and a 32-bit entry) and linker script (boot/image.ld,
# set per image by deviso_q35_image()).
#
# -mno-red-zone: exceptions (and later interrupts) at CPL 0 push their frame on the current
#   stack, over the 128 bytes below RSP that the SysV ABI would let a leaf function use.
# -mgeneral-regs-only: no SSE/x87 in compiled code; the platform leaves CR4.OSFXSR clear, so a
#   stray SSE instruction is a #UD with a crash report rather than silent state nobody saves.
# -fno-pie -mcmodel=small: linked at 1 MiB, everything below 2 GiB.
# -fno-stack-protector, -fcf-protection=none: nothing provides the canary's TLS slot (glibc's
#   %fs:0x28) or wants CET markers.
# -fno-threadsafe-statics: the guard functions live in the glibc-targeted libstdc++.

set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(CMAKE_C_COMPILER gcc)
set(CMAKE_CXX_COMPILER g++)
set(CMAKE_ASM_COMPILER gcc)
set(CMAKE_OBJCOPY objcopy CACHE FILEPATH "objcopy for the target")

# The compiler cannot link a program without deviso's start code and linker script.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(deviso_q35_flags
    "-m64 -march=x86-64 -ffreestanding -mno-red-zone -mgeneral-regs-only -fno-pie -fno-pic \
-mcmodel=small -fno-stack-protector -fcf-protection=none -ffunction-sections -fdata-sections \
-fno-unwind-tables -fno-asynchronous-unwind-tables")
set(CMAKE_C_FLAGS_INIT "${deviso_q35_flags}")
set(CMAKE_CXX_FLAGS_INIT
    "${deviso_q35_flags} -fno-exceptions -fno-rtti -fno-threadsafe-statics")
set(CMAKE_ASM_FLAGS_INIT "-m64")
# -lgcc: the compiler's own helpers, should it call one; no libc, no libstdc++.
set(CMAKE_EXE_LINKER_FLAGS_INIT
    "-nostdlib -static -no-pie -Wl,--gc-sections -Wl,-z,max-page-size=0x1000 -Wl,--build-id=none")
set(CMAKE_CXX_STANDARD_LIBRARIES "-lgcc")
