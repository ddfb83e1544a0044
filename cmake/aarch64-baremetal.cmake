# CMake toolchain for deviso's bare-metal AArch64 build (QEMU `virt`, platform/qemu-virt-aarch64).
#
# Compiler: Debian's g++-aarch64-linux-gnu (a Linux-targeted GCC) made freestanding with picolibc
# (`--specs=picolibc.specs`, which puts picolibc's headers and libc.a first). deviso brings its own
# start code (-nostartfiles) and linker script (set per image by deviso_qemu_virt_image()).
# See /work/shared/notes/toolchain-aarch64.md for what the C++ headers allow (<atomic>, <mutex> and
# <algorithm> do not compile here at C++20).
#
# Cache variables:
#   DEVISO_LIBFDT_ROOT  the unpacked libfdt-dev:arm64 package (scripts/setup puts it in
#                       /opt/deviso-deps/libfdt-arm64); holds usr/include and
#                       usr/lib/aarch64-linux-gnu/libfdt.a.

set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_ASM_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_OBJCOPY aarch64-linux-gnu-objcopy CACHE FILEPATH "objcopy for the target")

# The compiler cannot link a program without deviso's start code and linker script.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(DEVISO_LIBFDT_ROOT "/opt/deviso-deps/libfdt-arm64" CACHE PATH
    "Unpacked libfdt-dev:arm64 (scripts/setup)")

# No -mstrict-align: it makes GCC's -Wcast-align (on in deviso_warnings) fire on every aligned
#   storage cast, and the prebuilt libfdt.a is not built with it anyway. The code that runs
#   before the MMU is on (DTB parsing, building the CPU's tables) sees all memory as Device
#   memory, where an unaligned access or DC ZVA (picolibc's memset) faults on hardware; QEMU
#   tolerates both. See platform/qemu-virt-aarch64/README.md ("Before the MMU is on").
# -mno-outline-atomics: the outlined atomics in libgcc pick LSE through getauxval(), a Linux API.
# -fno-pie: Debian's GCC builds PIE by default; the image is linked at a fixed address.
# -fno-threadsafe-statics: the guard functions live in the glibc-targeted libstdc++.
set(deviso_baremetal_flags
    "--specs=picolibc.specs -march=armv8-a -mno-outline-atomics -fno-pie \
-ffunction-sections -fdata-sections -fno-unwind-tables -fno-asynchronous-unwind-tables")
set(CMAKE_C_FLAGS_INIT "${deviso_baremetal_flags}")
set(CMAKE_CXX_FLAGS_INIT
    "${deviso_baremetal_flags} -fno-exceptions -fno-rtti -fno-threadsafe-statics")
set(CMAKE_ASM_FLAGS_INIT "${deviso_baremetal_flags}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-nostartfiles -static -no-pie -Wl,--gc-sections")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
