// The C and C++ runtime a freestanding x86-64 image needs, since it links no C library: the
// memory and string functions GCC may call even under -ffreestanding (memcpy, memmove, memset,
// memcmp) and those deviso's code uses (strlen, strcmp, strncmp, strstr), vsnprintf/snprintf
// (format.h), and the C++ ABI hooks. There is no heap: operator new traps (deviso_panic() is
// the port's, src/ports/baremetal_x86).
//
// This file is built with -fno-tree-loop-distribute-patterns (CMakeLists.txt): otherwise GCC may
// turn memset's own loop into a call to memset.

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <new>

#include "deviso/assert.h"
#include "format.h"

extern "C" {

void* memcpy(void* dst, const void* src, size_t n) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  for (size_t i = 0; i < n; ++i) {
    d[i] = s[i];
  }
  return dst;
}

void* memmove(void* dst, const void* src, size_t n) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  if (d < s) {
    for (size_t i = 0; i < n; ++i) {
      d[i] = s[i];
    }
  } else if (d > s) {
    for (size_t i = n; i > 0; --i) {
      d[i - 1] = s[i - 1];
    }
  }
  return dst;
}

void* memset(void* dst, int c, size_t n) {
  auto* d = static_cast<unsigned char*>(dst);
  for (size_t i = 0; i < n; ++i) {
    d[i] = static_cast<unsigned char>(c);
  }
  return dst;
}

int memcmp(const void* a, const void* b, size_t n) {
  const auto* x = static_cast<const unsigned char*>(a);
  const auto* y = static_cast<const unsigned char*>(b);
  for (size_t i = 0; i < n; ++i) {
    if (x[i] != y[i]) {
      return x[i] < y[i] ? -1 : 1;
    }
  }
  return 0;
}

size_t strlen(const char* s) {
  size_t n = 0;
  while (s[n] != '\0') {
    ++n;
  }
  return n;
}

int strncmp(const char* a, const char* b, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(a[i]);
    const auto y = static_cast<unsigned char>(b[i]);
    if (x != y) {
      return x < y ? -1 : 1;
    }
    if (x == '\0') {
      return 0;
    }
  }
  return 0;
}

int strcmp(const char* a, const char* b) { return strncmp(a, b, SIZE_MAX); }

char* strstr(const char* haystack, const char* needle) {
  const size_t n = strlen(needle);
  for (const char* p = haystack;; ++p) {
    if (strncmp(p, needle, n) == 0) {
      return const_cast<char*>(p);
    }
    if (*p == '\0') {
      return nullptr;
    }
  }
}

int vsnprintf(char* out, size_t size, const char* format, va_list args) {
  return deviso::q35::FormatV(out, size, format, args);
}

int snprintf(char* out, size_t size, const char* format, ...) {
  va_list args;
  va_start(args, format);
  const int n = deviso::q35::FormatV(out, size, format, args);
  va_end(args);
  return n;
}

[[noreturn]] void __cxa_pure_virtual() {  // NOLINT(bugprone-reserved-identifier)
  deviso_panic(__FILE__, __LINE__, "pure virtual function called");
}

// Static destructors never run: the program ends through Exit(). Registration is a no-op.
int __cxa_atexit(void (*)(void*), void*, void*) { return 0; }  // NOLINT
void* __dso_handle = nullptr;                                  // NOLINT

}  // extern "C"

// No heap. Deleting destructors of classes with virtual destructors still reference these.
void* operator new(size_t) { deviso_panic(__FILE__, __LINE__, "operator new: no heap"); }
void* operator new[](size_t) { deviso_panic(__FILE__, __LINE__, "operator new[]: no heap"); }
void operator delete(void*) noexcept { deviso_panic(__FILE__, __LINE__, "operator delete"); }
void operator delete(void*, size_t) noexcept {
  deviso_panic(__FILE__, __LINE__, "operator delete");
}
void operator delete[](void*) noexcept { deviso_panic(__FILE__, __LINE__, "operator delete[]"); }
void operator delete[](void*, size_t) noexcept {
  deviso_panic(__FILE__, __LINE__, "operator delete[]");
}
// The over-aligned forms (C++17), referenced by deleting destructors of over-aligned classes
// (e.g. a static table pool).
void* operator new(size_t, std::align_val_t) {
  deviso_panic(__FILE__, __LINE__, "operator new: no heap");
}
void operator delete(void*, std::align_val_t) noexcept {
  deviso_panic(__FILE__, __LINE__, "operator delete");
}
void operator delete(void*, size_t, std::align_val_t) noexcept {
  deviso_panic(__FILE__, __LINE__, "operator delete");
}
