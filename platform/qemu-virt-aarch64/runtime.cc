// The little C and C++ runtime support a freestanding image needs beyond picolibc: stack
// protector symbols (libfdt is built with -fstack-protector), and C++ ABI hooks. There is no
// heap: operator new is never used and traps if it is.

#include <cstddef>
#include <cstdint>

#include "deviso/assert.h"

extern "C" {

// Read by -fstack-protector code; a fixed value, as there is no entropy before the app runs.
uintptr_t __stack_chk_guard = 0x595e9fbd94fda766ULL;  // NOLINT(bugprone-reserved-identifier)

[[noreturn]] void __stack_chk_fail() {  // NOLINT(bugprone-reserved-identifier)
  deviso_panic(__FILE__, __LINE__, "stack smashing detected");
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
