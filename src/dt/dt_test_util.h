// Test helper: the devicetree blobs that dtc compiled from testdata/*.dts at build time.

#ifndef DEVISO_SRC_DT_DT_TEST_UTIL_H_
#define DEVISO_SRC_DT_DT_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

namespace deviso::dt::testing {

// The blob compiled from testdata/<stem>.dts (a gtest failure and an empty vector if it cannot
// be read or is not a valid blob).
std::vector<uint8_t> LoadBlob(const std::string& stem);

// The libfdt offset of `path` in `fdt` (a gtest failure and -1 if there is none).
int Node(const std::vector<uint8_t>& fdt, const char* path);

}  // namespace deviso::dt::testing

#endif  // DEVISO_SRC_DT_DT_TEST_UTIL_H_
