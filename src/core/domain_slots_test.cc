#include "core/domain_slots.h"

#include <gtest/gtest.h>

#include "deviso/types.h"

namespace deviso {
namespace {

class TestDomain final : public SlotDomain {
 public:
  int payload = 0;
};

class NullSink final : public FaultSink {
 public:
  void OnFault(const Fault&) override {}
};

TEST(DomainSlotsTest, FreeSlotThenActivate) {
  DomainSlots<TestDomain, 2> slots;
  NullSink sink;
  TestDomain* a = slots.FreeSlot();
  ASSERT_NE(a, nullptr);
  // Found but not activated: still free, found again.
  EXPECT_EQ(slots.FreeSlot(), a);
  EXPECT_EQ(slots.Find(a), nullptr);
  slots.Activate(a, &sink);
  EXPECT_TRUE(a->in_use());
  EXPECT_EQ(a->sink(), &sink);
  EXPECT_EQ(a->streams(), 0U);
  EXPECT_EQ(slots.Find(a), a);
  TestDomain* b = slots.FreeSlot();
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  slots.Activate(b, nullptr);
  EXPECT_EQ(slots.FreeSlot(), nullptr);  // full
}

TEST(DomainSlotsTest, LimitKeepsToTheFirstSlots) {
  DomainSlots<TestDomain, 4> slots;
  TestDomain* a = slots.FreeSlot(1);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(slots.IndexOf(*a), 0U);
  slots.Activate(a, nullptr);
  EXPECT_EQ(slots.FreeSlot(1), nullptr);  // slots 1-3 are free but beyond the limit
  EXPECT_EQ(slots.FreeSlot(0), nullptr);
  ASSERT_NE(slots.FreeSlot(2), nullptr);
  EXPECT_EQ(slots.IndexOf(*slots.FreeSlot(2)), 1U);
}

TEST(DomainSlotsTest, FindRefusesForeignAndReleased) {
  DomainSlots<TestDomain, 2> slots;
  TestDomain outside;
  EXPECT_EQ(slots.Find(&outside), nullptr);
  EXPECT_EQ(slots.Find(static_cast<Domain*>(nullptr)), nullptr);
  TestDomain* a = slots.FreeSlot();
  slots.Activate(a, nullptr);
  slots.Release(a);
  EXPECT_FALSE(a->in_use());
  EXPECT_EQ(slots.Find(a), nullptr);
  EXPECT_EQ(slots.FreeSlot(), a);  // free again
}

TEST(DomainSlotsTest, StaleHandleIsRefusedNotReused) {
  DomainSlots<TestDomain, 1> slots;
  TestDomain* a = slots.FreeSlot();
  slots.Activate(a, nullptr);
  const DomainHandle first = slots.HandleOf(*a);
  EXPECT_NE(first.generation, 0U);
  EXPECT_EQ(slots.Resolve(first), a);
  slots.Release(a);
  EXPECT_EQ(slots.Resolve(first), nullptr);  // released
  // The same slot activated again: the old handle does not name the new domain.
  TestDomain* again = slots.FreeSlot();
  ASSERT_EQ(again, a);
  slots.Activate(again, nullptr);
  const DomainHandle second = slots.HandleOf(*again);
  EXPECT_EQ(second.index, first.index);
  EXPECT_NE(second.generation, first.generation);
  EXPECT_EQ(slots.Resolve(first), nullptr);
  EXPECT_EQ(slots.Resolve(second), again);
}

TEST(DomainSlotsTest, InvalidHandlesAreRefused) {
  DomainSlots<TestDomain, 2> slots;
  EXPECT_EQ(slots.Resolve(DomainHandle{}), nullptr);
  EXPECT_EQ(slots.Resolve(DomainHandle{5, 1}), nullptr);  // out of range
  TestDomain* a = slots.FreeSlot();
  EXPECT_EQ(slots.HandleOf(*a).generation, 0U);  // a free slot names no domain
  EXPECT_EQ(slots.Resolve(DomainHandle{0, 1}), nullptr);
}

TEST(DomainSlotsTest, IterationCoversEverySlot) {
  DomainSlots<TestDomain, 3> slots;
  slots.Activate(slots.FreeSlot(), nullptr);
  size_t total = 0;
  size_t used = 0;
  for (const TestDomain& d : slots) {
    ++total;
    used += d.in_use() ? 1 : 0;
  }
  EXPECT_EQ(total, 3U);
  EXPECT_EQ(used, 1U);
}

}  // namespace
}  // namespace deviso
