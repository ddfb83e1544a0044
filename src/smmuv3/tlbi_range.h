// Splitting an invalidation of N granules into SMMUv3 range-TLBI commands (IHI0070 4.4.1,
// SMMU_IDR3.RIL == 1). A command invalidates (NUM + 1) * 2^SCALE granules from its address,
// NUM and SCALE being 5-bit fields.
//
// Any N takes at most two commands: the first covers the top five bits of N exactly
// (NUM + 1 in 16..31 at SCALE = floor(log2 N) - 4; N <= 32 needs one command at SCALE 0),
// the second the remainder, rounded up to a multiple of 2^(SCALE - 5) granules. So at most
// N/512 granules beyond the range are invalidated (and none when N < 1024).

#ifndef DEVISO_SRC_SMMUV3_TLBI_RANGE_H_
#define DEVISO_SRC_SMMUV3_TLBI_RANGE_H_

#include <cstddef>
#include <cstdint>

namespace deviso::smmuv3 {

struct TlbiRange {
  uint64_t first = 0;  // first granule, relative to the start of the range
  uint64_t count = 0;  // NUM + 1, 1..32
  unsigned scale = 0;  // SCALE, 0..31
  uint64_t granules() const { return count << scale; }
};

// Largest range a command can express: 32 * 2^31 granules.
inline constexpr uint64_t kMaxTlbiRangeGranules = 1ULL << 36;

// Fills out[0..1] and returns how many commands (1 or 2) cover `granules` (>= 1); 0 when
// the range is too large to express (>= 2^36 granules: invalidate the whole context).
inline size_t SplitTlbiRange(uint64_t granules, TlbiRange out[2]) {
  if (granules == 0 || granules >= kMaxTlbiRangeGranules) return 0;
  if (granules <= 32) {
    out[0] = TlbiRange{0, granules, 0};
    return 1;
  }
  const unsigned scale = 59U - static_cast<unsigned>(__builtin_clzll(granules));  // log2 - 4
  const uint64_t count = granules >> scale;                                       // 16..31
  out[0] = TlbiRange{0, count, scale};
  const uint64_t rest = granules - (count << scale);
  if (rest == 0) return 1;
  const unsigned scale2 = scale >= 5 ? scale - 5 : 0;
  out[1] = TlbiRange{count << scale, (rest + (1ULL << scale2) - 1) >> scale2, scale2};
  return 2;
}

}  // namespace deviso::smmuv3

#endif  // DEVISO_SRC_SMMUV3_TLBI_RANGE_H_
