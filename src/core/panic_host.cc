// Host (Linux) implementation of deviso_panic, built as the CMake object `deviso_panic_host`.
// Bare-metal and RTOS ports provide their own definition instead of linking this one.

#include <cstdio>
#include <cstdlib>

#include "deviso/assert.h"

extern "C" void deviso_panic(const char* file, int line, const char* expr) {
  std::fprintf(stderr, "deviso: assertion failed: %s (%s:%d)\n", expr, file, line);
  std::fflush(stderr);
  std::abort();
}
