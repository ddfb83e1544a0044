// Host test of the q35 platform's PCI listing (pci_list.cc) over a simulated configuration
// space: which functions it finds (function 0 absent, the multi-function bit), the fields it
// reads, the capacity contract, and that it writes nothing.

#include <gtest/gtest.h>

#include <map>

#include "pci_config.h"

namespace deviso::q35 {
namespace {

// Functions by requester ID, each a 256-byte space; absent ones read all-ones. Counts writes.
class FakeConfig final : public PciConfig {
 public:
  struct Function {
    uint32_t words[64] = {};
  };

  // Vendor/device, class (base, sub, prog-if), header type (bit 7: multi-function).
  Function& Add(PciAddress a, uint16_t vendor, uint16_t device, uint8_t base, uint8_t sub,
                uint8_t prog_if, uint8_t header_type) {
    Function& f = functions_[a.rid()];
    f.words[0] = vendor | (static_cast<uint32_t>(device) << 16);
    f.words[2] = (static_cast<uint32_t>(base) << 24) | (static_cast<uint32_t>(sub) << 16) |
                 (static_cast<uint32_t>(prog_if) << 8);
    f.words[3] = static_cast<uint32_t>(header_type) << 16;
    return f;
  }

  uint32_t Read32(PciAddress a, uint16_t offset) const override {
    auto it = functions_.find(a.rid());
    if (it == functions_.end() || offset >= 256 || (offset & 3) != 0) {
      return 0xffffffff;
    }
    return it->second.words[offset / 4];
  }
  void Write32(PciAddress, uint16_t, uint32_t) const override { ++writes_; }
  uint16_t space_size() const override { return 256; }
  uint8_t bus_first() const override { return 0; }
  uint8_t bus_last() const override { return 255; }

  mutable int writes_ = 0;

 private:
  std::map<uint16_t, Function> functions_;
};

TEST(Q35PciList, ListsWhatExistsInOrderAndChangesNothing) {
  FakeConfig c;
  c.Add({0, 0, 0}, 0x8086, 0x29c0, 0x06, 0x00, 0x00, 0x00);
  // 00:1f: multi-function (header type bit 7 on function 0); functions 0, 2, 3.
  c.Add({0, 0x1f, 0}, 0x8086, 0x2918, 0x06, 0x01, 0x00, 0x80);
  c.Add({0, 0x1f, 2}, 0x8086, 0x2922, 0x01, 0x06, 0x01, 0x00).words[1] = 0x6;  // MSE | BME
  c.Add({0, 0x1f, 3}, 0x8086, 0x2930, 0x0c, 0x05, 0x00, 0x00);
  // 00:02.0, a bridge to buses 1-1 (primary 0, secondary 1, subordinate 1 at 0x18).
  c.Add({0, 2, 0}, 0x1b36, 0x000c, 0x06, 0x04, 0x00, 0x01).words[6] = 0x00010100;
  c.Add({1, 0, 0}, 0x8086, 0x2922, 0x01, 0x06, 0x01, 0x00);
  // 00:05.1 without 00:05.0: not a device (function 0 must exist).
  c.Add({0, 5, 1}, 0x1234, 0x5678, 0x00, 0xff, 0x00, 0x00);
  // 00:06: function 0 not multi-function, so its function 4 is not looked at.
  c.Add({0, 6, 0}, 0x1234, 0x11e8, 0x00, 0xff, 0x00, 0x00);
  c.Add({0, 6, 4}, 0x1234, 0x11e8, 0x00, 0xff, 0x00, 0x00);

  PciFunctionInfo out[16];
  ASSERT_EQ(ListPci(c, out, 16), 7u);
  const PciAddress want[] = {{0, 0, 0},    {0, 2, 0},    {0, 6, 0}, {0, 0x1f, 0},
                             {0, 0x1f, 2}, {0, 0x1f, 3}, {1, 0, 0}};
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(out[i].address, want[i]) << i;
  }
  EXPECT_EQ(out[4].vendor, 0x8086);
  EXPECT_EQ(out[4].device_id, 0x2922);
  EXPECT_EQ(out[4].class_code, 0x01);
  EXPECT_EQ(out[4].subclass, 0x06);
  EXPECT_EQ(out[4].prog_if, 0x01);
  EXPECT_TRUE(out[4].bus_master());
  EXPECT_FALSE(out[3].bus_master());
  EXPECT_STREQ(PciClassName(0x01, 0x06, 0x01), "SATA AHCI");
  EXPECT_TRUE(out[1].is_bridge());
  EXPECT_EQ(out[1].secondary_bus, 1);
  EXPECT_EQ(out[1].subordinate_bus, 1);
  EXPECT_FALSE(out[0].is_bridge());
  EXPECT_EQ(out[3].header_type & 0x7f, 0);  // the multi-function bit is not the type
  EXPECT_EQ(c.writes_, 0);
}

TEST(Q35PciList, CountsBeyondTheCapacityWithoutWritingThere) {
  FakeConfig c;
  for (uint8_t d = 0; d < 5; ++d) {
    c.Add({3, d, 0}, 0x1af4, 0x1000, 0x02, 0x00, 0x00, 0x00);
  }
  PciFunctionInfo out[3];
  out[2].vendor = 0;
  EXPECT_EQ(ListPci(c, out, 2), 5u);
  EXPECT_EQ(out[1].address, (PciAddress{3, 1, 0}));
  EXPECT_EQ(out[2].vendor, 0);  // not written
  EXPECT_EQ(ListPci(c, nullptr, 0), 5u);
}

TEST(Q35PciList, AnEmptySpaceListsNothing) {
  FakeConfig c;
  PciFunctionInfo out[1];
  EXPECT_EQ(ListPci(c, out, 1), 0u);
}

}  // namespace
}  // namespace deviso::q35
