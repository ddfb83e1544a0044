// A token bucket in integer arithmetic, for rate-limiting fault callbacks. An implementation
// detail of deviso/registry.h (installed with it), not part of the API. Not synchronised: the
// caller serialises its calls. Time is passed in, so tests can drive it with exact instants.

#ifndef DEVISO_DETAIL_TOKEN_BUCKET_H_
#define DEVISO_DETAIL_TOKEN_BUCKET_H_

#include <cstdint>

namespace deviso {

// The fault-callback rate limiter of a context (Context::SetFaultHandler()).
class TokenBucket {
 public:
  static constexpr uint64_t kNsPerSecond = 1'000'000'000;  // nanoseconds in a second

  // Full bucket of `per_second` tokens, refilled at `per_second` tokens a second from `now_ns`.
  // `per_second` == 0: TryTake() always fails.
  void Reset(uint32_t per_second, uint64_t now_ns) {
    per_second_ = per_second;
    tokens_ = per_second;
    last_ns_ = now_ns;
  }

  // Takes a token if one is available at `now_ns`. Time that goes backwards adds nothing.
  bool TryTake(uint64_t now_ns) {
    Refill(now_ns);
    if (tokens_ == 0) {
      return false;
    }
    --tokens_;
    return true;
  }

  // Tokens left (as of the last TryTake()).
  uint32_t tokens() const { return tokens_; }

 private:
  void Refill(uint64_t now_ns) {
    if (now_ns <= last_ns_ || per_second_ == 0) {
      return;
    }
    const uint64_t elapsed = now_ns - last_ns_;
    if (elapsed >= kNsPerSecond) {  // a whole second refills the bucket
      tokens_ = per_second_;
      last_ns_ = now_ns;
      return;
    }
    // elapsed < 10^9 and per_second < 2^32: the product fits in 64 bits.
    const uint64_t earned = elapsed * per_second_ / kNsPerSecond;
    if (earned == 0) {
      return;  // keep last_ns_, so the fraction of a token already earned is not lost
    }
    const uint64_t tokens = tokens_ + earned;
    if (tokens >= per_second_) {
      tokens_ = per_second_;
      last_ns_ = now_ns;  // a full bucket does not bank time
    } else {
      tokens_ = static_cast<uint32_t>(tokens);
      // Advance by the time those tokens took (rounded up), keeping the remainder.
      last_ns_ += (earned * kNsPerSecond + per_second_ - 1) / per_second_;
    }
  }

  uint32_t per_second_ = 0;
  uint32_t tokens_ = 0;
  uint64_t last_ns_ = 0;
};

}  // namespace deviso

#endif  // DEVISO_DETAIL_TOKEN_BUCKET_H_
