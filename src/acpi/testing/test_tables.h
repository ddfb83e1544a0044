// Host test helpers for src/acpi: the real tables under src/acpi/testdata/ placed at the physical
// addresses SeaBIOS used (layout.txt), a PhysicalMemory over them, and builders that re-seal an
// edited table (Length and checksum) so that a test corrupts exactly one thing.

#ifndef DEVISO_SRC_ACPI_TESTING_TEST_TABLES_H_
#define DEVISO_SRC_ACPI_TESTING_TEST_TABLES_H_

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "acpi/tables.h"

namespace deviso::acpi::testing {

inline std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Sets the table's Length to its size and its checksum (offset 9) so the bytes sum to 0.
inline void Seal(std::vector<uint8_t>& t) {
  const uint32_t length = static_cast<uint32_t>(t.size());
  std::memcpy(&t[4], &length, 4);
  t[9] = 0;
  unsigned sum = 0;
  for (const uint8_t b : t) sum += b;
  t[9] = static_cast<uint8_t>(0x100 - (sum & 0xff));
}

// Physical memory made of separate buffers at fixed addresses; an access must lie inside one.
class FakeMemory final : public PhysicalMemory {
 public:
  FakeMemory() = default;
  virtual ~FakeMemory() = default;
  FakeMemory(const FakeMemory&) = delete;
  FakeMemory& operator=(const FakeMemory&) = delete;
  Bytes Map(uint64_t paddr, size_t length) const override {
    for (const auto& [base, bytes] : regions_) {
      if (paddr >= base && paddr - base <= bytes.size() &&
          length <= bytes.size() - (paddr - base)) {
        return Bytes(bytes.data() + (paddr - base), length);
      }
    }
    return {};
  }
  void Put(uint64_t paddr, std::vector<uint8_t> bytes) { regions_[paddr] = std::move(bytes); }
  std::vector<uint8_t>& At(uint64_t paddr) { return regions_.at(paddr); }

 private:
  std::map<uint64_t, std::vector<uint8_t>> regions_;
};

// One testdata directory: every table at its address, by file stem ("dmar", "rsdp", ...).
struct DumpedTables {
  FakeMemory memory;
  std::map<std::string, uint64_t> address;  // "dmar" -> 0x1ffe2274
  std::map<std::string, std::vector<uint8_t>> bytes;
  bool ok = false;
};

inline void LoadDump(const std::string& dir, DumpedTables* out) {
  std::ifstream layout(dir + "/layout.txt");
  std::string line;
  while (std::getline(layout, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string file;
    std::string addr;
    fields >> file >> addr;
    const std::string stem = file.substr(0, file.find('.'));
    std::string path = dir;
    path += '/';
    path += file;
    std::vector<uint8_t> b = ReadFile(path);
    if (b.empty()) return;
    const uint64_t pa = std::stoull(addr, nullptr, 16);
    out->address[stem] = pa;
    out->bytes[stem] = b;
    out->memory.Put(pa, std::move(b));
  }
  out->ok = out->address.count("rsdp") != 0 && out->address.count("dmar") != 0;
}

}  // namespace deviso::acpi::testing

#endif  // DEVISO_SRC_ACPI_TESTING_TEST_TABLES_H_
