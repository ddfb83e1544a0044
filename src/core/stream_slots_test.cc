#include "core/stream_slots.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/domain_slots.h"

namespace deviso {
namespace {

class TestDomain final : public SlotDomain {};

class RecordingSink final : public FaultSink {
 public:
  void OnFault(const Fault& f) override { sids.push_back(f.sid); }
  std::vector<uint32_t> sids;
};

class StreamSlotsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = domains_.FreeSlot();
    domains_.Activate(a_, &sink_a_);
    b_ = domains_.FreeSlot();
    domains_.Activate(b_, &sink_b_);
  }
  DomainSlots<TestDomain, 2> domains_;
  StreamSlots<TestDomain, 2> streams_;
  RecordingSink sink_a_;
  RecordingSink sink_b_;
  TestDomain* a_ = nullptr;
  TestDomain* b_ = nullptr;
};

TEST_F(StreamSlotsTest, AttachThenDetach) {
  ASSERT_TRUE(streams_.CanAttach(7).ok());
  streams_.Add(7, a_);
  EXPECT_EQ(a_->streams(), 1U);
  EXPECT_TRUE(streams_.attached(7));
  EXPECT_EQ(streams_.DomainOf(7), a_);
  EXPECT_TRUE(streams_.IsAttached(a_, 7));
  EXPECT_FALSE(streams_.IsAttached(b_, 7));
  streams_.Remove(7);
  EXPECT_EQ(a_->streams(), 0U);
  EXPECT_FALSE(streams_.attached(7));
  EXPECT_EQ(streams_.DomainOf(7), nullptr);
}

TEST_F(StreamSlotsTest, AttachedElsewhereOrHereIsEexist) {
  streams_.Add(7, a_);
  EXPECT_EQ(streams_.CanAttach(7), Status::AlreadyExists());  // to b: attached elsewhere
  EXPECT_EQ(a_->streams(), 1U);
  EXPECT_EQ(b_->streams(), 0U);
}

TEST_F(StreamSlotsTest, FullIsEnomemAndChangesNothing) {
  streams_.Add(1, a_);
  streams_.Add(2, b_);
  EXPECT_EQ(streams_.CanAttach(3), Status::NoMemory());
  EXPECT_EQ(streams_.CanAttach(1), Status::AlreadyExists());  // -EEXIST wins over full
  EXPECT_FALSE(streams_.attached(3));
  streams_.Remove(2);
  EXPECT_TRUE(streams_.CanAttach(3).ok());  // the freed slot is reused
}

TEST_F(StreamSlotsTest, DetachFromTheWrongDomainIsRefused) {
  streams_.Add(7, a_);
  EXPECT_FALSE(streams_.IsAttached(b_, 7));  // the backend returns -ENOENT
  EXPECT_FALSE(streams_.IsAttached(a_, 8));
  EXPECT_TRUE(streams_.attached(7));
}

TEST_F(StreamSlotsTest, FaultsRouteToTheirDomainsSink) {
  streams_.Add(7, a_);
  streams_.Add(9, b_);
  Fault f{};
  f.sid = 9;
  EXPECT_TRUE(streams_.Route(f));
  f.sid = 7;
  EXPECT_TRUE(streams_.Route(f));
  f.sid = 8;
  EXPECT_FALSE(streams_.Route(f));  // unrouted: no domain, no sink called
  EXPECT_EQ(sink_a_.sids, std::vector<uint32_t>{7});
  EXPECT_EQ(sink_b_.sids, std::vector<uint32_t>{9});
  // Detached: no longer routed.
  streams_.Remove(7);
  f.sid = 7;
  EXPECT_FALSE(streams_.Route(f));
  EXPECT_EQ(sink_a_.sids.size(), 1U);
}

TEST_F(StreamSlotsTest, ADomainWithoutSinkStillCountsAsRouted) {
  TestDomain* c = nullptr;
  DomainSlots<TestDomain, 1> more;
  c = more.FreeSlot();
  more.Activate(c, nullptr);
  streams_.Add(4, c);
  Fault f{};
  f.sid = 4;
  EXPECT_TRUE(streams_.Route(f));  // not the unrouted path: the stream has a domain
}

TEST_F(StreamSlotsTest, RouteToAllReachesEveryAttachedStream) {
  Fault f{};
  f.sid = ~0U;
  EXPECT_FALSE(streams_.RouteToAll(f));
  streams_.Add(7, a_);
  streams_.Add(9, b_);
  EXPECT_TRUE(streams_.RouteToAll(f));
  EXPECT_EQ(sink_a_.sids.size(), 1U);
  EXPECT_EQ(sink_b_.sids.size(), 1U);
}

TEST_F(StreamSlotsTest, ForEachOfListsOneDomainsStreams) {
  streams_.Add(7, a_);
  streams_.Add(9, b_);
  std::vector<uint32_t> seen;
  streams_.ForEachOf(a_, [&](uint32_t sid) { seen.push_back(sid); });
  EXPECT_EQ(seen, std::vector<uint32_t>{7});
}

}  // namespace
}  // namespace deviso
