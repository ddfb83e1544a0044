// printf-style formatting for the q35 platform, which links no C library (Debian has no x86
// picolibc). The image's vsnprintf/snprintf (runtime.cc) are these functions.
//
// Conversions: d i u x X o c s p %, flags - 0 + space #, width and precision (numbers or *),
// length modifiers hh h l ll z j t. Not supported (printed as the conversion's text, so a
// mistake is visible): floating point (the platform is built without SSE), %n, wide
// characters.

#ifndef DEVISO_PLATFORM_QEMU_Q35_X86_64_FORMAT_H_
#define DEVISO_PLATFORM_QEMU_Q35_X86_64_FORMAT_H_

#include <cstdarg>
#include <cstddef>

namespace deviso::q35 {

// As C's vsnprintf: writes at most `size` bytes to `out` (NUL-terminated if size > 0) and
// returns the length the whole output would have had. `out` may be null when size is 0.
int FormatV(char* out, size_t size, const char* format, va_list args_in);

// As C's snprintf.
int Format(char* out, size_t size, const char* format, ...) __attribute__((format(printf, 3, 4)));

}  // namespace deviso::q35

#endif  // DEVISO_PLATFORM_QEMU_Q35_X86_64_FORMAT_H_
