#include "dt/dt_test_util.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

extern "C" {
#include <libfdt.h>
}

#include "dt/devicetree.h"

namespace deviso::dt::testing {

std::vector<uint8_t> LoadBlob(const std::string& stem) {
  const std::string path = std::string(DEVISO_DT_TESTDATA) + "/" + stem + ".dtb";
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_FALSE(blob.empty()) << "cannot read " << path;
  if (blob.empty() || !CheckBlob(blob.data(), blob.size()).ok()) {
    ADD_FAILURE() << path << " is not a valid devicetree blob";
    return {};
  }
  return blob;
}

int Node(const std::vector<uint8_t>& fdt, const char* path) {
  const int node = fdt.empty() ? -1 : fdt_path_offset(fdt.data(), path);
  EXPECT_GE(node, 0) << "no node " << path;
  return node < 0 ? -1 : node;
}

}  // namespace deviso::dt::testing
