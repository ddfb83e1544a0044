// Invariant checks for deviso.
//
// DEVISO_ASSERT is for internal invariants only: conditions that, if false, mean the library's own
// state is corrupt and continuing could let a device reach memory it was never given (Hafnium's
// rule). It must never check anything a caller, a device or the hardware can make false; those are
// reported as a deviso_status_t / deviso::Status error instead.
//
// Assertions stay enabled in every build type: a check whose failure makes continuing unsafe is
// not optional in release builds.
//
// This header is valid C and C++.

#ifndef DEVISO_ASSERT_H_
#define DEVISO_ASSERT_H_

// Marks a function that does not return, in C and C++.
#ifdef __cplusplus
#define DEVISO_NORETURN [[noreturn]]
#else
#define DEVISO_NORETURN __attribute__((__noreturn__))
#endif

#ifdef __cplusplus
extern "C" {
#endif

// Called when a DEVISO_ASSERT fails. Must not return.
//
// Each environment provides exactly one definition: the host build links the `deviso_panic_host`
// CMake object (prints to stderr and calls abort()); a bare-metal or RTOS port provides its own
// (log, then halt or reset). There is deliberately no weak default in the library.
DEVISO_NORETURN void deviso_panic(const char* file, int line, const char* expr);

#ifdef __cplusplus
}  // extern "C"
#endif

// An expression, so it is usable in constexpr functions (a failing check there is a compile error)
// and in comma expressions.
#define DEVISO_ASSERT(cond) ((cond) ? (void)0 : deviso_panic(__FILE__, __LINE__, #cond))

#endif  // DEVISO_ASSERT_H_
