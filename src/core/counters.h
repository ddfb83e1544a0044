// A backend's statistics (issue 13): a struct of uint64_t counters bumped from paths under
// different locks (or none), so with relaxed atomics, and read as a snapshot the same way.

#ifndef DEVISO_SRC_CORE_COUNTERS_H_
#define DEVISO_SRC_CORE_COUNTERS_H_

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace deviso {

inline void Count(uint64_t& counter, uint64_t n = 1) {
  __atomic_fetch_add(&counter, n, __ATOMIC_RELAXED);
}
inline uint64_t ReadCounter(const uint64_t& counter) {
  return __atomic_load_n(&counter, __ATOMIC_RELAXED);
}

// A copy of `counters` (a struct of nothing but uint64_t), each read with a relaxed load.
template <typename T>
T SnapshotCounters(const T& counters) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) % sizeof(uint64_t) == 0 &&
                    alignof(T) == alignof(uint64_t),
                "a counters struct holds only uint64_t");
  T out{};
  const auto* from = reinterpret_cast<const uint64_t*>(&counters);
  auto* to = reinterpret_cast<uint64_t*>(&out);
  for (size_t i = 0; i < sizeof(T) / sizeof(uint64_t); ++i) to[i] = ReadCounter(from[i]);
  return out;
}

}  // namespace deviso

#endif  // DEVISO_SRC_CORE_COUNTERS_H_
