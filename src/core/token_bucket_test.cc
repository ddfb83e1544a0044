#include "deviso/detail/token_bucket.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace deviso {
namespace {

constexpr uint64_t kMs = 1'000'000;  // ns
constexpr uint64_t kSecond = 1000 * kMs;
constexpr uint64_t kStart = 5 * kSecond;  // an arbitrary clock reading

// Takes tokens at `now` until refused; returns how many it got.
int Drain(TokenBucket& bucket, uint64_t now) {
  int taken = 0;
  while (bucket.TryTake(now)) {
    ++taken;
  }
  return taken;
}

TEST(TokenBucketTest, StartsFullAndEmpties) {
  TokenBucket bucket;
  bucket.Reset(16, kStart);
  EXPECT_EQ(Drain(bucket, kStart), 16);
  EXPECT_FALSE(bucket.TryTake(kStart));
}

TEST(TokenBucketTest, DefaultConstructedNeverAllows) {
  TokenBucket bucket;
  EXPECT_FALSE(bucket.TryTake(kStart));
  EXPECT_FALSE(bucket.TryTake(kStart + 10 * kSecond));
}

TEST(TokenBucketTest, ZeroRateNeverAllows) {
  TokenBucket bucket;
  bucket.Reset(0, kStart);
  EXPECT_FALSE(bucket.TryTake(kStart + 10 * kSecond));
}

struct RefillCase {
  uint32_t per_second;
  uint64_t elapsed_ns;  // after draining the bucket
  int expected;         // tokens available then
};

// Tokens earned = floor(elapsed * per_second / 1 s), capped at per_second.
constexpr RefillCase kRefillCases[] = {
    {16, 0, 0},
    {16, 62'499'999, 0},     // 1/16 s minus 1 ns: not a whole token yet
    {16, 62'500'000, 1},     // exactly 1/16 s
    {16, 500 * kMs, 8},      // 0.5 s * 16/s
    {16, 999 * kMs, 15},     // 15.984 tokens
    {16, kSecond, 16},       // a full second refills the bucket
    {16, 60 * kSecond, 16},  // never more than the burst
    {1, 999 * kMs, 0},       // 0.999 tokens
    {1, kSecond, 1},         //
    {1000, 1 * kMs, 1},      // 1 ms * 1000/s
    {1000, 10 * kMs + 999, 10},
};

TEST(TokenBucketTest, RefillTable) {
  for (const RefillCase& c : kRefillCases) {
    SCOPED_TRACE(::testing::Message() << c.per_second << "/s after " << c.elapsed_ns << " ns");
    TokenBucket bucket;
    bucket.Reset(c.per_second, kStart);
    ASSERT_EQ(Drain(bucket, kStart), static_cast<int>(c.per_second));
    EXPECT_EQ(Drain(bucket, kStart + c.elapsed_ns), c.expected);
  }
}

// The fraction of a token earned before a refill is kept, not lost to rounding.
TEST(TokenBucketTest, FractionsAccumulate) {
  TokenBucket bucket;
  bucket.Reset(16, kStart);
  ASSERT_EQ(Drain(bucket, kStart), 16);
  // Three steps of 25 ms (0.4 token each): 0, 0, then 1 token at 75 ms (1.2 tokens earned).
  EXPECT_EQ(Drain(bucket, kStart + 25 * kMs), 0);
  EXPECT_EQ(Drain(bucket, kStart + 50 * kMs), 0);
  EXPECT_EQ(Drain(bucket, kStart + 75 * kMs), 1);
  // 125 ms in total is 2 tokens since the drain: one more.
  EXPECT_EQ(Drain(bucket, kStart + 125 * kMs), 1);
}

TEST(TokenBucketTest, SteadyRateOverTenSeconds) {
  // A fault every millisecond for 10 s at 16/s: 16 (burst) + 16 per second after the first.
  TokenBucket bucket;
  bucket.Reset(16, kStart);
  int delivered = 0;
  for (uint64_t t = 0; t < 10 * kSecond; t += kMs) {
    delivered += bucket.TryTake(kStart + t) ? 1 : 0;
  }
  // Burst 16, then 16/s for 9.999 s: 16 + floor(9.999 * 16) = 16 + 159.
  EXPECT_EQ(delivered, 16 + 159);
}

// The largest rate: elapsed * rate stays within 64 bits (just under 1 s * (2^32 - 1)).
TEST(TokenBucketTest, LargestRateDoesNotOverflow) {
  constexpr uint32_t kMax = UINT32_MAX;
  TokenBucket bucket;
  bucket.Reset(kMax, kStart);
  ASSERT_TRUE(bucket.TryTake(kStart));
  ASSERT_TRUE(bucket.TryTake(kStart));
  EXPECT_EQ(bucket.tokens(), kMax - 2);
  // (10^9 - 1) ns * (2^32 - 1)/s = 4'294'967'290.7 tokens: the bucket is full again.
  ASSERT_TRUE(bucket.TryTake(kStart + kSecond - 1));
  EXPECT_EQ(bucket.tokens(), kMax - 1);
}

TEST(TokenBucketTest, ClockGoingBackwardsAddsNothing) {
  TokenBucket bucket;
  bucket.Reset(16, kStart);
  ASSERT_EQ(Drain(bucket, kStart), 16);
  EXPECT_EQ(Drain(bucket, kStart - kSecond), 0);
  EXPECT_EQ(Drain(bucket, kStart + kSecond), 16);
}

}  // namespace
}  // namespace deviso
