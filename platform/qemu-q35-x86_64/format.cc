#include "format.h"

#include <cstdint>

namespace deviso::q35 {
namespace {

// Appends to a bounded buffer and counts everything, written or not.
class Sink {
 public:
  Sink(char* out, size_t size) : out_(out), size_(size) {}

  void Put(char c) {
    if (size_ != 0 && count_ < size_ - 1) {
      out_[count_] = c;
    }
    ++count_;
  }
  void Repeat(char c, int n) {
    for (int i = 0; i < n; ++i) {
      Put(c);
    }
  }
  // NUL-terminates at the last position written (or the end of the buffer).
  int Finish() {
    if (size_ != 0) {
      out_[count_ < size_ ? count_ : size_ - 1] = '\0';
    }
    return count_ > static_cast<size_t>(INT32_MAX) ? INT32_MAX : static_cast<int>(count_);
  }

 private:
  char* out_;
  size_t size_;
  size_t count_ = 0;
};

struct Spec {
  bool left = false;
  bool zero = false;
  bool plus = false;
  bool space = false;
  bool alt = false;
  int width = 0;
  int precision = -1;  // -1: none
};

int Length(const char* s, int max) {
  int n = 0;
  while ((max < 0 || n < max) && s[n] != '\0') {
    ++n;
  }
  return n;
}

void PutString(Sink& sink, const Spec& spec, const char* s) {
  if (s == nullptr) {
    s = "(null)";
  }
  const int len = Length(s, spec.precision);
  const int pad = spec.width > len ? spec.width - len : 0;
  if (!spec.left) {
    sink.Repeat(' ', pad);
  }
  for (int i = 0; i < len; ++i) {
    sink.Put(s[i]);
  }
  if (spec.left) {
    sink.Repeat(' ', pad);
  }
}

// `value` is the magnitude; `negative` its sign (signed conversions only).
void PutNumber(Sink& sink, const Spec& spec, uint64_t value, bool negative, unsigned base,
               bool upper, bool is_pointer) {
  char digits[24];  // 2^64 in octal is 22 digits
  int n = 0;
  const char* const set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  for (uint64_t v = value; v != 0; v /= base) {
    digits[n++] = set[v % base];
  }
  // C11 7.21.6.1: precision 0 with value 0 prints no digits; otherwise at least one.
  int min_digits = spec.precision >= 0 ? spec.precision : 1;
  int zeros = min_digits > n ? min_digits - n : 0;
  const char* prefix = "";
  if (negative) {
    prefix = "-";
  } else if (spec.plus) {
    prefix = "+";
  } else if (spec.space) {
    prefix = " ";
  }
  if ((spec.alt || is_pointer) && base == 16 && value != 0) {
    prefix = upper ? "0X" : "0x";
  }
  if (spec.alt && base == 8 && zeros == 0 && (n == 0 || digits[n - 1] != '0')) {
    zeros = 1;  // '#' with o: the first digit is 0
  }
  const int prefix_len = Length(prefix, -1);
  int total = prefix_len + zeros + n;
  // '0' pads with zeros after the prefix, unless '-' or a precision says otherwise.
  if (spec.zero && !spec.left && spec.precision < 0 && spec.width > total) {
    zeros += spec.width - total;
    total = spec.width;
  }
  const int pad = spec.width > total ? spec.width - total : 0;
  if (!spec.left) {
    sink.Repeat(' ', pad);
  }
  for (int i = 0; i < prefix_len; ++i) {
    sink.Put(prefix[i]);
  }
  sink.Repeat('0', zeros);
  while (n > 0) {
    sink.Put(digits[--n]);
  }
  if (spec.left) {
    sink.Repeat(' ', pad);
  }
}

enum class Size { kInt, kChar, kShort, kLong, kLongLong, kSize, kMax, kPtrdiff };

// size_t, ptrdiff_t and intmax_t may be one type (they are on x86-64), not everywhere.
// NOLINTBEGIN(bugprone-branch-clone)
int64_t SignedArg(va_list& args, Size size) {
  switch (size) {
    case Size::kChar:
      return static_cast<signed char>(va_arg(args, int));
    case Size::kShort:
      return static_cast<short>(va_arg(args, int));  // NOLINT(google-runtime-int)
    case Size::kLong:
      return va_arg(args, long);  // NOLINT(google-runtime-int)
    case Size::kLongLong:
      return va_arg(args, long long);  // NOLINT(google-runtime-int)
    case Size::kSize:
    case Size::kPtrdiff:
      return va_arg(args, ptrdiff_t);
    case Size::kMax:
      return va_arg(args, intmax_t);
    case Size::kInt:
      break;
  }
  return va_arg(args, int);
}

uint64_t UnsignedArg(va_list& args, Size size) {
  switch (size) {
    case Size::kChar:
      return static_cast<unsigned char>(va_arg(args, unsigned));
    case Size::kShort:
      return static_cast<unsigned short>(va_arg(args, unsigned));  // NOLINT(google-runtime-int)
    case Size::kLong:
      return va_arg(args, unsigned long);  // NOLINT(google-runtime-int)
    case Size::kLongLong:
      return va_arg(args, unsigned long long);  // NOLINT(google-runtime-int)
    case Size::kSize:
    case Size::kPtrdiff:
      return va_arg(args, size_t);
    case Size::kMax:
      return va_arg(args, uintmax_t);
    case Size::kInt:
      break;
  }
  return va_arg(args, unsigned);
}
// NOLINTEND(bugprone-branch-clone)

}  // namespace

int FormatV(char* out, size_t size, const char* format, va_list args_in) {
  Sink sink(out, size);
  va_list args;
  va_copy(args, args_in);
  for (const char* p = format; *p != '\0'; ++p) {
    if (*p != '%') {
      sink.Put(*p);
      continue;
    }
    const char* const start = p++;
    Spec spec;
    for (;; ++p) {
      if (*p == '-') {
        spec.left = true;
      } else if (*p == '0') {
        spec.zero = true;
      } else if (*p == '+') {
        spec.plus = true;
      } else if (*p == ' ') {
        spec.space = true;
      } else if (*p == '#') {
        spec.alt = true;
      } else {
        break;
      }
    }
    if (*p == '*') {
      spec.width = va_arg(args, int);
      if (spec.width < 0) {
        spec.left = true;
        spec.width = -spec.width;
      }
      ++p;
    } else {
      while (*p >= '0' && *p <= '9') {
        spec.width = spec.width * 10 + (*p++ - '0');
      }
    }
    if (*p == '.') {
      ++p;
      spec.precision = 0;
      if (*p == '*') {
        spec.precision = va_arg(args, int);
        ++p;
      } else {
        while (*p >= '0' && *p <= '9') {
          spec.precision = spec.precision * 10 + (*p++ - '0');
        }
      }
    }
    Size length = Size::kInt;
    if (*p == 'h') {
      length = p[1] == 'h' ? Size::kChar : Size::kShort;
      p += p[1] == 'h' ? 2 : 1;
    } else if (*p == 'l') {
      length = p[1] == 'l' ? Size::kLongLong : Size::kLong;
      p += p[1] == 'l' ? 2 : 1;
    } else if (*p == 'z') {
      length = Size::kSize;
      ++p;
    } else if (*p == 'j') {
      length = Size::kMax;
      ++p;
    } else if (*p == 't') {
      length = Size::kPtrdiff;
      ++p;
    }
    switch (*p) {
      case 'd':
      case 'i': {
        const int64_t v = SignedArg(args, length);
        const uint64_t magnitude = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
        PutNumber(sink, spec, magnitude, v < 0, 10, false, false);
        break;
      }
      case 'u':
        PutNumber(sink, spec, UnsignedArg(args, length), false, 10, false, false);
        break;
      case 'x':
      case 'X':
        PutNumber(sink, spec, UnsignedArg(args, length), false, 16, *p == 'X', false);
        break;
      case 'o':
        PutNumber(sink, spec, UnsignedArg(args, length), false, 8, false, false);
        break;
      case 'p': {
        const auto v = reinterpret_cast<uintptr_t>(va_arg(args, void*));
        if (v == 0) {
          Spec nil = spec;
          nil.precision = -1;
          PutString(sink, nil, "(nil)");  // as glibc
        } else {
          PutNumber(sink, spec, v, false, 16, false, true);
        }
        break;
      }
      case 'c': {
        // One character, padded; a NUL character is output as one (C11 7.21.6.1).
        const char c = static_cast<char>(va_arg(args, int));
        const int pad = spec.width > 1 ? spec.width - 1 : 0;
        if (!spec.left) {
          sink.Repeat(' ', pad);
        }
        sink.Put(c);
        if (spec.left) {
          sink.Repeat(' ', pad);
        }
        break;
      }
      case 's':
        PutString(sink, spec, va_arg(args, const char*));
        break;
      case '%':
        sink.Put('%');
        break;
      default:
        // Unsupported or malformed: print it as written, so the mistake is visible.
        for (const char* q = start; q <= p && *q != '\0'; ++q) {
          sink.Put(*q);
        }
        if (*p == '\0') {
          --p;
        }
        break;
    }
  }
  va_end(args);
  return sink.Finish();
}

int Format(char* out, size_t size, const char* format, ...) {
  va_list args;
  va_start(args, format);
  const int n = FormatV(out, size, format, args);
  va_end(args);
  return n;
}

}  // namespace deviso::q35
