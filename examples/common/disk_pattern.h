// The known contents of the disk image scripts/demo creates: sector n (512 bytes) holds 64
// little-endian 64-bit words, word k = 0xD15C << 48 | n << 8 | k. Any misplaced, shifted or
// partial transfer changes at least one word. Keep in sync with scripts/demo.

#ifndef DEVISO_EXAMPLES_COMMON_DISK_PATTERN_H_
#define DEVISO_EXAMPLES_COMMON_DISK_PATTERN_H_

#include <cstdint>

namespace deviso::demo {

inline constexpr uint64_t kSectorBytes = 512;
inline constexpr uint64_t kWordsPerSector = kSectorBytes / 8;

// The word k of sector n of the disk image as created.
constexpr uint64_t DiskWord(uint64_t sector, uint64_t k) {
  return (uint64_t{0xD15C} << 48) | (sector << 8) | k;
}

// The pattern the write test puts in place of it.
constexpr uint64_t WrittenWord(uint64_t sector, uint64_t k) {
  return (uint64_t{0x5EED} << 48) | (sector << 8) | (k ^ 0xff);
}

}  // namespace deviso::demo

#endif  // DEVISO_EXAMPLES_COMMON_DISK_PATTERN_H_
