// The one status type of deviso, shared by the C ABI and the C++ API.
//
// C:   deviso_status_t, an int: 0 on success, otherwise a negative errno value.
// C++: deviso::Status wraps the same int (conversion both ways is free), and
//      deviso::Result<T> carries either a T or a non-OK Status.
//
// The C part of this header is valid C99 and C++.

#ifndef DEVISO_STATUS_H_
#define DEVISO_STATUS_H_

#include <errno.h>

// Status of a deviso operation.
//
// 0 means success. Any other value is a negative errno constant from <errno.h>, always spelled
// with its name (-EINVAL) and never as a number: errno values differ between C libraries (the
// bare-metal picolibc and glibc disagree, e.g. on ENOTSUP), so only the names are portable.
//
// Codes the library uses (each public function lists which of them it can return):
//   -EINVAL     invalid argument (misaligned address, zero size, bad flags, unknown handle)
//   -ENOMEM     a caller-sized pool (tables, contexts, queues) is exhausted
//   -EEXIST     the range is already (partly) mapped
//   -ENOENT     nothing is mapped / registered at that address or ID
//   -ERANGE     an address or size is outside what the hardware or configuration supports
//   -ETIMEDOUT  the hardware did not respond before the deadline
//   -EBUSY      the resource is in use (e.g. a context that still has devices attached)
//   -ENOTSUP    the hardware or build lacks a required feature (a DEVISO_CONFIG_* option is off)
//   -EIO        the hardware reported an error (or the unit is broken: IsolationUnit::broken())
//   -EPERM      the memory is the isolation unit's own (stream table, CDs, queues, page tables)
typedef int deviso_status_t;  // NOLINT(modernize-use-using): this part is C.

#ifdef __cplusplus
extern "C" {
#endif

// Returns the errno name of `s` without its sign ("EINVAL"), "OK" for 0, or "unknown" for any
// value not in the list above. The string is static; never returns NULL. Built with
// DEVISO_CONFIG_STATUS_STRINGS=OFF (deviso/config.h) it returns "OK" for 0 and "error" for
// anything else: print the number too.
const char* deviso_status_str(deviso_status_t s);

#ifdef __cplusplus
}  // extern "C"
#endif

#ifdef __cplusplus

#include <new>
#include <type_traits>
#include <utility>

#include "deviso/assert.h"

namespace deviso {

// C++ view of deviso_status_t. Same size and representation as the C value; trivially copyable.
class [[nodiscard]] Status {
 public:
  // OK.
  constexpr Status() = default;

  static constexpr Status Ok() { return Status(); }                      // 0
  static constexpr Status InvalidArgument() { return Status(-EINVAL); }  // -EINVAL
  static constexpr Status NoMemory() { return Status(-ENOMEM); }         // -ENOMEM
  static constexpr Status AlreadyExists() { return Status(-EEXIST); }    // -EEXIST
  static constexpr Status NotFound() { return Status(-ENOENT); }         // -ENOENT
  static constexpr Status OutOfRange() { return Status(-ERANGE); }       // -ERANGE
  static constexpr Status TimedOut() { return Status(-ETIMEDOUT); }      // -ETIMEDOUT
  static constexpr Status Busy() { return Status(-EBUSY); }              // -EBUSY
  static constexpr Status NotSupported() { return Status(-ENOTSUP); }    // -ENOTSUP
  static constexpr Status IoError() { return Status(-EIO); }             // -EIO
  static constexpr Status PermissionDenied() { return Status(-EPERM); }  // -EPERM

  // Wraps a C status; the value is kept as is.
  static constexpr Status FromC(deviso_status_t status) { return Status(status); }

  // True for OK (0).
  constexpr bool ok() const { return code_ == 0; }

  // 0 or a negative errno value, e.g. -EINVAL.
  constexpr deviso_status_t ToC() const { return code_; }

  // See deviso_status_str().
  const char* str() const { return deviso_status_str(code_); }

  // Equal if the codes are.
  constexpr bool operator==(const Status& other) const = default;

 private:
  constexpr explicit Status(deviso_status_t code) : code_(code) {}

  deviso_status_t code_ = 0;
};

template <typename T>
class Result;

namespace internal {

struct ResultEmpty {};

// Storage of Result<T>: either a T or a non-OK Status, in place (no heap). Specialised so that
// Result<T> is trivially copyable and destructible whenever T is, which keeps small results in
// registers.
template <typename T, bool = std::is_trivially_copyable_v<T>>
class ResultStorage {
 protected:
  constexpr explicit ResultStorage(Status status) : status_(status), empty_() {}
  template <typename... Args>
  constexpr explicit ResultStorage(std::in_place_t /*tag*/, Args&&... args)
      : value_(std::forward<Args>(args)...) {}

  Status status_;
  // Variant members act as this class's protected members, hence the trailing underscore.
  union {  // NOLINTBEGIN(readability-identifier-naming)
    ResultEmpty empty_;
    T value_;
  };  // NOLINTEND(readability-identifier-naming)
};

template <typename T>
class ResultStorage<T, false> {
 protected:
  static constexpr bool kCopyable = std::is_copy_constructible_v<T>;
  static constexpr bool kMovable = std::is_move_constructible_v<T>;
  static constexpr bool kCopyAssignable = kCopyable && std::is_copy_assignable_v<T>;
  static constexpr bool kMoveAssignable = kMovable && std::is_move_assignable_v<T>;
  static constexpr bool kNothrowMove = std::is_nothrow_move_constructible_v<T>;
  static constexpr bool kNothrowMoveAssign = kNothrowMove && std::is_nothrow_move_assignable_v<T>;

  constexpr explicit ResultStorage(Status status) : status_(status) {}
  template <typename... Args>
  constexpr explicit ResultStorage(std::in_place_t /*tag*/, Args&&... args)
      : value_(std::forward<Args>(args)...) {}

  ResultStorage(const ResultStorage& other) requires kCopyable { ConstructFrom(other); }
  ResultStorage(ResultStorage&& other) noexcept(kNothrowMove) requires kMovable {
    ConstructFrom(std::move(other));
  }
  ResultStorage& operator=(const ResultStorage& other) requires kCopyAssignable {
    AssignFrom(other);
    return *this;
  }
  ResultStorage& operator=(ResultStorage&& other) noexcept(kNothrowMoveAssign) requires
      kMoveAssignable {
    AssignFrom(std::move(other));
    return *this;
  }

  ~ResultStorage() {
    if (status_.ok()) {
      value_.~T();
    }
  }

  Status status_;
  union {  // NOLINTBEGIN(readability-identifier-naming): see above.
    ResultEmpty empty_{};
    T value_;
  };  // NOLINTEND(readability-identifier-naming)

 private:
  // Only called on a freshly constructed (OK, empty) object.
  template <typename Other>
  void ConstructFrom(Other&& other) {
    status_ = other.status_;
    if (status_.ok()) {
      ::new (static_cast<void*>(&value_)) T(std::forward<Other>(other).value_);
    }
  }

  template <typename Other>
  void AssignFrom(Other&& other) {
    if (status_.ok() && other.status_.ok()) {
      value_ = std::forward<Other>(other).value_;
    } else if (status_.ok()) {
      value_.~T();
    } else if (other.status_.ok()) {
      ::new (static_cast<void*>(&value_)) T(std::forward<Other>(other).value_);
    }
    status_ = other.status_;
  }
};

constexpr Status ToStatus(Status status) { return status; }

template <typename T>
constexpr Status ToStatus(const Result<T>& result) {
  return result.status();
}

}  // namespace internal

// Either a value of type T or a non-OK Status (like pw::Result or std::expected). No heap, no
// exceptions: reading the value of an error Result is a bug and traps via DEVISO_ASSERT.
template <typename T>
class [[nodiscard]] Result : private internal::ResultStorage<T> {
  static_assert(!std::is_reference_v<T>, "Result<T&> is not supported; use Result<T*>");
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Status>,
                "use Status instead of Result<Status>");

  using Base = internal::ResultStorage<T>;

 public:
  using value_type = T;  // the type of the value

  // Implicit, so that a function returning Result<T> can `return value;`.
  // NOLINTNEXTLINE(google-explicit-constructor)
  constexpr Result(const T& value) : Base(std::in_place, value) {}
  // As above, moving the value in.
  // NOLINTNEXTLINE(google-explicit-constructor)
  constexpr Result(T&& value) : Base(std::in_place, std::move(value)) {}

  // Implicit, so that a function returning Result<T> can `return Status::NotFound();`.
  // `status` must not be OK: an OK Result without a value would be unusable.
  // NOLINTNEXTLINE(google-explicit-constructor)
  constexpr Result(Status status) : Base(status) { DEVISO_ASSERT(!status.ok()); }

  // Constructs the value in place from `args`.
  template <typename... Args>
  constexpr explicit Result(std::in_place_t tag, Args&&... args)
      : Base(tag, std::forward<Args>(args)...) {}

  // True if this Result holds a value.
  constexpr bool ok() const { return this->status_.ok(); }

  // OK if this Result holds a value, otherwise the error.
  constexpr Status status() const { return this->status_; }

  // The value; asserts (DEVISO_ASSERT) that there is one: check ok() first.
  constexpr T& value() & {
    DEVISO_ASSERT(ok());
    return this->value_;
  }
  // As above.
  constexpr const T& value() const& {
    DEVISO_ASSERT(ok());
    return this->value_;
  }
  // As above, moving the value out.
  constexpr T&& value() && {
    DEVISO_ASSERT(ok());
    return std::move(this->value_);
  }

  constexpr T& operator*() & { return value(); }                     // value()
  constexpr const T& operator*() const& { return value(); }          // value()
  constexpr T&& operator*() && { return std::move(*this).value(); }  // value(), moved out

  constexpr T* operator->() { return &value(); }              // &value()
  constexpr const T* operator->() const { return &value(); }  // &value()

  // The value if OK, otherwise `default_value` converted to T.
  template <typename U>
  constexpr T value_or(U&& default_value) const& {
    if (ok()) {
      return this->value_;
    }
    return static_cast<T>(std::forward<U>(default_value));
  }
  // As above, moving the value out.
  template <typename U>
  constexpr T value_or(U&& default_value) && {
    if (ok()) {
      return std::move(this->value_);
    }
    return static_cast<T>(std::forward<U>(default_value));
  }
};

}  // namespace deviso

#define DEVISO_INTERNAL_CONCAT_IMPL(a, b) a##b
#define DEVISO_INTERNAL_CONCAT(a, b) DEVISO_INTERNAL_CONCAT_IMPL(a, b)

// Evaluates `expr` (a Status or a Result<T>) once; if it is not OK, returns its Status from the
// enclosing function (which must return Status or Result<U>).
#define DEVISO_TRY(expr)                                                               \
  do {                                                                                 \
    if (const ::deviso::Status deviso_try_status = ::deviso::internal::ToStatus(expr); \
        !deviso_try_status.ok()) {                                                     \
      return deviso_try_status;                                                        \
    }                                                                                  \
  } while (0)

// Evaluates `expr` (a Result<T>) once; if it is not OK, returns its Status from the enclosing
// function, otherwise moves the value into `lhs`, which may be a declaration:
//   DEVISO_ASSIGN_OR_RETURN(const uint64_t pa, Translate(va));
// Expands to several statements: do not use as the body of an unbraced if/else.
#define DEVISO_ASSIGN_OR_RETURN(lhs, expr) \
  DEVISO_INTERNAL_ASSIGN_OR_RETURN(DEVISO_INTERNAL_CONCAT(deviso_result_, __LINE__), lhs, expr)

// `lhs` cannot be parenthesised: it may be a declaration.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define DEVISO_INTERNAL_ASSIGN_OR_RETURN(result, lhs, expr) \
  auto result = (expr);                                     \
  if (!result.ok()) {                                       \
    return result.status();                                 \
  }                                                         \
  lhs = ::std::move(result).value()
// NOLINTEND(bugprone-macro-parentheses)

#endif  // __cplusplus

#endif  // DEVISO_STATUS_H_
