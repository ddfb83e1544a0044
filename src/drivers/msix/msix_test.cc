// Tests of the MSI-X library (msix.h) against a model function: a configuration space with a
// capability list built by hand, and a BAR holding the table and PBA as the spec lays them
// out (PCI 3.0 6.8.2). The model records every table write and checks the rule the library
// must keep: a vector's address and data change only while it is masked (6.8.3.5).

#include "drivers/msix/msix.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <vector>

#include "drivers/msix/msix_hw.h"

namespace deviso::drivers::msix {
namespace {

class ModelConfig final : public ConfigSpace {
 public:
  ModelConfig() { bytes.fill(0); }
  uint8_t Read8(size_t offset) const override { return bytes[offset]; }
  uint16_t Read16(size_t offset) const override {
    uint16_t v;
    std::memcpy(&v, &bytes[offset], 2);
    return v;
  }
  uint32_t Read32(size_t offset) const override {
    uint32_t v;
    std::memcpy(&v, &bytes[offset], 4);
    return v;
  }
  void Write16(size_t offset, uint16_t value) override {
    // Message Control: Table Size is read-only; the rest writable.
    if (offset == msix_at + 2) {
      value = static_cast<uint16_t>((value & 0xc000) | (Read16(offset) & 0x07ff));
      writes_to_control.push_back(value);
    }
    std::memcpy(&bytes[offset], &value, 2);
  }
  void Put8(size_t at, uint8_t v) { bytes[at] = v; }
  void Put16(size_t at, uint16_t v) { std::memcpy(&bytes[at], &v, 2); }
  void Put32(size_t at, uint32_t v) { std::memcpy(&bytes[at], &v, 4); }

  std::array<uint8_t, 256> bytes;
  size_t msix_at = 0;
  std::vector<uint16_t> writes_to_control;
};

// A BAR: table at `table_at`, PBA at `pba_at`.
class ModelBar final : public Mmio {
 public:
  explicit ModelBar(size_t bytes) : mem(bytes / 4, 0) {}
  uint32_t Read32(size_t offset) override { return mem.at(offset / 4); }
  void Write32(size_t offset, uint32_t value) override {
    if (offset >= table_at && offset < table_at + vectors * 16) {
      const size_t e = (offset - table_at) / 16;
      const size_t field = (offset - table_at) % 16;
      const bool masked = (mem.at((table_at + e * 16 + 12) / 4) & 1) != 0;
      const bool function_masked = (config->Read16(config->msix_at + 2) & 0x4000) != 0;
      if (field != 12 && !masked && !function_masked) {
        ADD_FAILURE() << "message of vector " << e << " written while unmasked";
      }
    }
    mem.at(offset / 4) = value;
  }
  uint64_t Read64(size_t offset) override {
    return (uint64_t{Read32(offset + 4)} << 32) | Read32(offset);
  }
  void Write64(size_t offset, uint64_t value) override {
    Write32(offset, static_cast<uint32_t>(value));
    Write32(offset + 4, static_cast<uint32_t>(value >> 32));
  }
  std::vector<uint32_t> mem;
  size_t table_at = 0;
  size_t vectors = 0;
  ModelConfig* config = nullptr;
};

// QEMU's NVMe: MSI-X with 65 vectors, table at BAR0 + 0x2000, PBA at BAR0 + 0x3000 (a
// capability list of PM at 0x40, MSI-X at 0x50, PCIe at 0x80; the values are illustrative).
struct Function {
  Function() : bar(0x4000) {
    cfg.Put16(config::kStatus, config::kStatusCapList);
    cfg.Put8(config::kCapabilitiesPointer, 0x40);
    cfg.Put8(0x40, 0x01);  // PM
    cfg.Put8(0x41, 0x50);
    cfg.Put8(0x50, config::kCapIdMsix);
    cfg.Put8(0x51, 0x80);
    cfg.Put16(0x52, 64);          // Table Size = N - 1
    cfg.Put32(0x54, 0x2000 | 0);  // table in BAR0 at 0x2000
    cfg.Put32(0x58, 0x3000 | 0);  // PBA in BAR0 at 0x3000
    cfg.Put8(0x80, 0x10);         // PCIe
    cfg.Put8(0x81, 0x00);
    cfg.msix_at = 0x50;
    bar.table_at = 0x2000;
    bar.vectors = 65;
    bar.config = &cfg;
  }
  ModelConfig cfg;
  ModelBar bar;
};

TEST(MsixTest, FindsTheCapabilityAndItsStructures) {
  Function f;
  const Result<Capability> cap = FindCapability(f.cfg);
  ASSERT_TRUE(cap.ok()) << cap.status().str();
  EXPECT_EQ(cap->offset, 0x50);
  EXPECT_EQ(cap->vectors, 65);
  EXPECT_EQ(cap->table_bir, 0);
  EXPECT_EQ(cap->table_offset, 0x2000U);
  EXPECT_EQ(cap->pba_bir, 0);
  EXPECT_EQ(cap->pba_offset, 0x3000U);
  EXPECT_EQ(cap->table_bytes(), 65U * 16);
  EXPECT_EQ(cap->pba_bytes(), 16U);  // 65 bits: two QWORDs
}

TEST(MsixTest, BirAndOffsetAreDecodedApart) {
  Function f;
  f.cfg.Put32(0x54, 0x1000 | 4);  // BAR4 + 0x1000
  f.cfg.Put32(0x58, 0x0800 | 2);  // BAR2 + 0x800
  const Result<Capability> cap = FindCapability(f.cfg);
  ASSERT_TRUE(cap.ok());
  EXPECT_EQ(cap->table_bir, 4);
  EXPECT_EQ(cap->table_offset, 0x1000U);
  EXPECT_EQ(cap->pba_bir, 2);
  EXPECT_EQ(cap->pba_offset, 0x800U);
}

TEST(MsixTest, MissingOrMalformedCapabilityLists) {
  {
    Function f;
    f.cfg.Put16(config::kStatus, 0);  // no list
    EXPECT_EQ(FindCapability(f.cfg).status(), Status::NotFound());
  }
  {
    Function f;
    f.cfg.Put8(0x41, 0x00);  // PM is the last: no MSI-X
    EXPECT_EQ(FindCapability(f.cfg).status(), Status::NotFound());
  }
  {
    Function f;
    f.cfg.Put8(0x41, 0x40);  // PM points at itself: a loop, bounded
    EXPECT_EQ(FindCapability(f.cfg).status(), Status::IoError());
  }
  {
    Function f;
    f.cfg.Put8(config::kCapabilitiesPointer, 0x20);  // inside the header
    EXPECT_EQ(FindCapability(f.cfg).status(), Status::IoError());
  }
  {
    Function f;
    f.cfg.Put8(0x41, 0xfc);  // MSI-X would run past 0x100
    f.cfg.Put8(0xfc, config::kCapIdMsix);
    EXPECT_EQ(FindCapability(f.cfg).status(), Status::IoError());
  }
  {
    Function f;
    f.cfg.Put32(0x54, 0x2000 | 6);  // reserved BIR
    EXPECT_EQ(FindCapability(f.cfg).status(), Status::InvalidArgument());
  }
}

TEST(MsixTest, EnableMasksEveryVectorUnderTheFunctionMask) {
  Function f;
  const Capability cap = *FindCapability(f.cfg);
  Msix msix(f.cfg, cap, f.bar, f.bar);
  EXPECT_FALSE(msix.enabled());
  msix.Enable();
  EXPECT_TRUE(msix.enabled());
  // Enable + Function Mask, then Enable alone.
  ASSERT_EQ(f.cfg.writes_to_control.size(), 2U);
  EXPECT_EQ(f.cfg.writes_to_control[0] & 0xc000, 0xc000);
  EXPECT_EQ(f.cfg.writes_to_control[1] & 0xc000, 0x8000);
  for (uint16_t v = 0; v < cap.vectors; ++v) {
    EXPECT_TRUE(*msix.masked(v)) << v;
  }
  msix.Disable();
  EXPECT_FALSE(msix.enabled());
  EXPECT_TRUE(*msix.masked(64));
}

TEST(MsixTest, ProgramWritesTheMessageMaskedAndUnmaskIsExplicit) {
  Function f;
  Msix msix(f.cfg, *FindCapability(f.cfg), f.bar, f.bar);
  msix.Enable();
  ASSERT_EQ(msix.Unmask(3), Status::Ok());  // unmasked with a zero message: Program masks
  ASSERT_EQ(msix.Program(3, 0x1'0809'0040, 7), Status::Ok());
  EXPECT_TRUE(*msix.masked(3));
  const Result<Msix::Message> m = msix.message(3);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->address, 0x1'0809'0040U);
  EXPECT_EQ(m->data, 7U);
  // The entry's words, where the spec puts them (entry 3 at 0x2000 + 48).
  EXPECT_EQ(f.bar.mem[(0x2000 + 48) / 4], 0x0809'0040U);
  EXPECT_EQ(f.bar.mem[(0x2000 + 52) / 4], 0x1U);
  EXPECT_EQ(f.bar.mem[(0x2000 + 56) / 4], 7U);
  ASSERT_EQ(msix.Unmask(3), Status::Ok());
  EXPECT_FALSE(*msix.masked(3));
  EXPECT_TRUE(*msix.masked(2));  // the others stay masked
  ASSERT_EQ(msix.Mask(3), Status::Ok());
  EXPECT_TRUE(*msix.masked(3));
}

TEST(MsixTest, BadArgumentsWriteNothing) {
  Function f;
  Msix msix(f.cfg, *FindCapability(f.cfg), f.bar, f.bar);
  msix.Enable();
  const std::vector<uint32_t> before = f.bar.mem;
  EXPECT_EQ(msix.Program(65, 0x0809'0040, 0), Status::InvalidArgument());
  EXPECT_EQ(msix.Program(0, 0x0809'0042, 0), Status::InvalidArgument());  // bits [1:0]
  EXPECT_EQ(msix.Mask(65), Status::InvalidArgument());
  EXPECT_EQ(msix.Unmask(65), Status::InvalidArgument());
  EXPECT_EQ(msix.masked(65).status(), Status::InvalidArgument());
  EXPECT_EQ(msix.pending(65).status(), Status::InvalidArgument());
  EXPECT_EQ(msix.message(65).status(), Status::InvalidArgument());
  EXPECT_EQ(f.bar.mem, before);
}

TEST(MsixTest, PendingBitsAreReadFromThePba) {
  Function f;
  Msix msix(f.cfg, *FindCapability(f.cfg), f.bar, f.bar);
  f.bar.mem[0x3000 / 4] = 1U << 5;  // vector 5
  f.bar.mem[0x3008 / 4] = 1U << 0;  // vector 64, in the second QWORD
  EXPECT_TRUE(*msix.pending(5));
  EXPECT_FALSE(*msix.pending(4));
  EXPECT_TRUE(*msix.pending(64));
}

}  // namespace
}  // namespace deviso::drivers::msix
