// Little-endian field reads from ACPI tables (ACPI 6.5 5.2: all fields are little-endian and may
// be unaligned). Internal to src/acpi; the caller has checked that the field lies inside `b`.

#ifndef DEVISO_SRC_ACPI_BYTES_H_
#define DEVISO_SRC_ACPI_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <span>

namespace deviso::acpi::internal {

inline uint8_t Le8(std::span<const uint8_t> b, size_t off) { return b[off]; }
inline uint16_t Le16(std::span<const uint8_t> b, size_t off) {
  return static_cast<uint16_t>(b[off] | (b[off + 1] << 8));
}
inline uint32_t Le32(std::span<const uint8_t> b, size_t off) {
  return uint32_t{b[off]} | (uint32_t{b[off + 1]} << 8) | (uint32_t{b[off + 2]} << 16) |
         (uint32_t{b[off + 3]} << 24);
}
inline uint64_t Le64(std::span<const uint8_t> b, size_t off) {
  return uint64_t{Le32(b, off)} | (uint64_t{Le32(b, off + 4)} << 32);
}

// The 8-bit sum of `b` (a valid ACPI structure sums to 0).
inline uint8_t Sum8(std::span<const uint8_t> b) {
  unsigned sum = 0;
  for (const uint8_t v : b) sum += v;
  return static_cast<uint8_t>(sum);
}

// Copies `n` characters at `off` into `out` (n + 1 bytes) and NUL-ends it.
inline void CopyChars(std::span<const uint8_t> b, size_t off, size_t n, char* out) {
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>(b[off + i]);
  out[n] = '\0';
}

}  // namespace deviso::acpi::internal

#endif  // DEVISO_SRC_ACPI_BYTES_H_
