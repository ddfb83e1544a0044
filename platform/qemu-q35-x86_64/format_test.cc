// Host test of the q35 platform's printf (format.cc): each case against the host C library's
// snprintf, and the truncation contract.

#include "format.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace deviso::q35 {
namespace {

// Formats with both and compares text and return value. The macro keeps the format a literal,
// so -Wformat checks both calls.
#define EXPECT_FORMATS_AS_LIBC(...)                                    \
  do {                                                                 \
    char ours[128];                                                    \
    char libc[128];                                                    \
    const int n_ours = Format(ours, sizeof(ours), __VA_ARGS__);        \
    const int n_libc = std::snprintf(libc, sizeof(libc), __VA_ARGS__); \
    EXPECT_STREQ(ours, libc) << #__VA_ARGS__;                          \
    EXPECT_EQ(n_ours, n_libc) << #__VA_ARGS__;                         \
  } while (0)

TEST(Q35Format, IntegersAsLibc) {
  EXPECT_FORMATS_AS_LIBC("%d %i %u", 0, -1, 42u);
  EXPECT_FORMATS_AS_LIBC("%d", INT32_MIN);
  EXPECT_FORMATS_AS_LIBC("%ld %lu", static_cast<long>(INT64_MIN),
                         static_cast<unsigned long>(UINT64_MAX));
  EXPECT_FORMATS_AS_LIBC("%lld %llx", -1234567890123LL, 0xdeadbeefcafeULL);
  EXPECT_FORMATS_AS_LIBC("%zu %zx", static_cast<size_t>(12345), static_cast<size_t>(0xabc));
  EXPECT_FORMATS_AS_LIBC("%hhd %hhu %hd %hu", 300, 300, 70000, 70000);
  EXPECT_FORMATS_AS_LIBC("%x %X %#x %#X %#o %o", 255u, 255u, 255u, 255u, 8u, 8u);
  EXPECT_FORMATS_AS_LIBC("%#x %#o", 0u, 0u);
  EXPECT_FORMATS_AS_LIBC("[%5d] [%-5d] [%05d] [%+d] [% d]", 42, 42, 42, 42, 42);
  EXPECT_FORMATS_AS_LIBC("[%05d] [%+05d] [%-+5d]", -42, 42, 42);
  EXPECT_FORMATS_AS_LIBC("[%.3d] [%8.3d] [%-8.3d]", 7, 7, 7);
  EXPECT_FORMATS_AS_LIBC("[%.0d] [%.0x] [%5.0d]", 0, 0u, 0);
  EXPECT_FORMATS_AS_LIBC("[%016lx] [%#018lx]", 0x1dead0000UL, 0x1dead0000UL);
  EXPECT_FORMATS_AS_LIBC("[%*d] [%-*d] [%*d]", 6, 1, 6, 1, -6, 1);
  EXPECT_FORMATS_AS_LIBC("[%.*d]", 4, 3);
  EXPECT_FORMATS_AS_LIBC("%jd %td", static_cast<intmax_t>(-5), static_cast<ptrdiff_t>(-6));
}

TEST(Q35Format, StringsCharactersPointersAsLibc) {
  EXPECT_FORMATS_AS_LIBC("[%s] [%8s] [%-8s] [%.2s] [%8.2s]", "abc", "abc", "abc", "abc", "abc");
  EXPECT_FORMATS_AS_LIBC("[%c] [%3c] [%-3c]", 'x', 'y', 'z');
  EXPECT_FORMATS_AS_LIBC("100%% done");
  EXPECT_FORMATS_AS_LIBC("%p", reinterpret_cast<void*>(0x1234));
  EXPECT_FORMATS_AS_LIBC("%p", static_cast<void*>(nullptr));
  EXPECT_FORMATS_AS_LIBC("[%*s]", 5, "ab");
}

TEST(Q35Format, TruncatesAndStillCountsEverything) {
  char buf[8];
  EXPECT_EQ(Format(buf, sizeof(buf), "%s", "0123456789"), 10);
  EXPECT_STREQ(buf, "0123456");
  EXPECT_EQ(Format(buf, 1, "abc"), 3);
  EXPECT_STREQ(buf, "");
  EXPECT_EQ(Format(nullptr, 0, "%d", 12345), 5);
  std::memset(buf, 'q', sizeof(buf));
  EXPECT_EQ(Format(buf, 4, "%x", 0xabcdefu), 6);
  EXPECT_STREQ(buf, "abc");
  EXPECT_EQ(buf[4], 'q');  // nothing written past size
}

TEST(Q35Format, UnsupportedConversionsPrintAsWritten) {
  char buf[64];
  // Through a variable: -Wformat would (rightly) refuse these as literals.
  const char* unknown = "a %q b";
  const char* trailing = "end %";
  const char* floating = "%f!";  // no floating point (no SSE in the platform)
  EXPECT_EQ(Format(buf, sizeof(buf), unknown, 0), 6);
  EXPECT_STREQ(buf, "a %q b");
  EXPECT_EQ(Format(buf, sizeof(buf), trailing, 0), 5);
  EXPECT_STREQ(buf, "end %");
  EXPECT_EQ(Format(buf, sizeof(buf), floating, 0), 3);
  EXPECT_STREQ(buf, "%f!");
}

}  // namespace
}  // namespace deviso::q35
