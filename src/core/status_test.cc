#include "deviso/status.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "deviso/config.h"

namespace deviso {
namespace {

// Zero cost: Status is the C value and nothing else.
static_assert(sizeof(Status) == sizeof(deviso_status_t));
static_assert(std::is_trivially_copyable_v<Status>);
static_assert(std::is_standard_layout_v<Status>);
static_assert(Status().ok());
static_assert(Status::Ok().ToC() == 0);
static_assert(Status::InvalidArgument().ToC() == -EINVAL);
static_assert(!Status::InvalidArgument().ok());
static_assert(Status::FromC(-EBUSY) == Status::Busy());
static_assert(Status::NotFound() != Status::AlreadyExists());

// Result<T> of a trivially copyable T is itself trivially copyable (returned in registers).
static_assert(std::is_trivially_copyable_v<Result<int>>);
static_assert(std::is_trivially_copyable_v<Result<uint64_t>>);
static_assert(sizeof(Result<int>) == 2 * sizeof(int));
static_assert(!std::is_trivially_copyable_v<Result<std::string>>);
static_assert(!std::is_copy_constructible_v<Result<std::unique_ptr<int>>>);
static_assert(std::is_move_constructible_v<Result<std::unique_ptr<int>>>);
static_assert(Result<int>(7).value() == 7);
static_assert(!Result<int>(Status::NoMemory()).ok());
static_assert(Result<int>(Status::NoMemory()).value_or(3) == 3);

struct Code {
  Status status;
  deviso_status_t c_value;
  const char* name;
};

// Every code the library uses: its C value is exactly the negative errno constant.
constexpr Code kCodes[] = {
    {Status::Ok(), 0, "OK"},
    {Status::InvalidArgument(), -EINVAL, "EINVAL"},
    {Status::NoMemory(), -ENOMEM, "ENOMEM"},
    {Status::AlreadyExists(), -EEXIST, "EEXIST"},
    {Status::NotFound(), -ENOENT, "ENOENT"},
    {Status::OutOfRange(), -ERANGE, "ERANGE"},
    {Status::TimedOut(), -ETIMEDOUT, "ETIMEDOUT"},
    {Status::Busy(), -EBUSY, "EBUSY"},
    {Status::NotSupported(), -ENOTSUP, "ENOTSUP"},
    {Status::IoError(), -EIO, "EIO"},
};

// What deviso_status_str() returns for a code: its errno name, or, built with
// DEVISO_CONFIG_STATUS_STRINGS=OFF, "OK" and "error".
const char* StrOf(deviso_status_t c_value, const char* name) {
  if constexpr (config::kStatusStrings) return name;
  return c_value == 0 ? "OK" : "error";
}

TEST(StatusTest, DefaultIsOk) {
  const Status status;
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(status.ToC(), 0);
  EXPECT_STREQ(status.str(), "OK");
  EXPECT_EQ(status, Status::Ok());
}

TEST(StatusTest, NamedConstructorsAreNegativeErrno) {
  for (const Code& code : kCodes) {
    SCOPED_TRACE(code.name);
    EXPECT_EQ(code.status.ToC(), code.c_value);
    EXPECT_EQ(code.status.ok(), code.c_value == 0);
    EXPECT_STREQ(code.status.str(), StrOf(code.c_value, code.name));
    EXPECT_STREQ(deviso_status_str(code.c_value), StrOf(code.c_value, code.name));
  }
}

TEST(StatusTest, CodesAreDistinct) {
  for (const Code& a : kCodes) {
    for (const Code& b : kCodes) {
      EXPECT_EQ(a.status == b.status, std::strcmp(a.name, b.name) == 0) << a.name << " " << b.name;
    }
  }
}

TEST(StatusTest, CRoundTrip) {
  for (const Code& code : kCodes) {
    SCOPED_TRACE(code.name);
    EXPECT_EQ(Status::FromC(code.status.ToC()), code.status);
    EXPECT_EQ(Status::FromC(code.c_value).ToC(), code.c_value);
  }
}

TEST(StatusTest, UnknownCodes) {
  // A real errno the library does not use, a positive errno (wrong sign) and garbage.
  EXPECT_STREQ(deviso_status_str(-EDOM), StrOf(-EDOM, "unknown"));
  EXPECT_STREQ(deviso_status_str(EINVAL), StrOf(EINVAL, "unknown"));
  EXPECT_STREQ(deviso_status_str(-100000), StrOf(-100000, "unknown"));
  const Status odd = Status::FromC(-EDOM);
  EXPECT_FALSE(odd.ok());
  EXPECT_EQ(odd.ToC(), -EDOM);
  EXPECT_STREQ(odd.str(), StrOf(-EDOM, "unknown"));
}

// What a C ABI wrapper does: C++ Status out as an int, back in as a Status.
deviso_status_t CAbiLookup(int key) { return (key == 1 ? Status::Ok() : Status::NotFound()).ToC(); }

TEST(StatusTest, ThroughCAbi) {
  EXPECT_EQ(CAbiLookup(1), 0);
  EXPECT_EQ(CAbiLookup(2), -ENOENT);
  EXPECT_EQ(Status::FromC(CAbiLookup(2)), Status::NotFound());
}

TEST(ResultTest, HoldsValue) {
  Result<int> result = 42;
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.status(), Status::Ok());
  EXPECT_EQ(result.value(), 42);
  EXPECT_EQ(*result, 42);
  EXPECT_EQ(result.value_or(7), 42);
  result.value() = 43;
  EXPECT_EQ(*result, 43);
}

TEST(ResultTest, HoldsError) {
  const Result<int> result = Status::TimedOut();
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.status(), Status::TimedOut());
  EXPECT_EQ(result.status().ToC(), -ETIMEDOUT);
  EXPECT_EQ(result.value_or(7), 7);
}

struct Point {
  int x;
  int y;
};

TEST(ResultTest, ArrowAndConst) {
  Result<Point> result = Point{1, 2};
  EXPECT_EQ(result->x, 1);
  result->y = 5;
  const Result<Point>& const_ref = result;
  EXPECT_EQ(const_ref->y, 5);
  EXPECT_EQ((*const_ref).x, 1);
}

TEST(ResultTest, InPlace) {
  const Result<Point> result(std::in_place, Point{3, 4});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->x, 3);
  EXPECT_EQ(result->y, 4);
}

TEST(ResultTest, MoveOnlyValue) {
  Result<std::unique_ptr<int>> result = std::make_unique<int>(5);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(**result, 5);
  Result<std::unique_ptr<int>> moved = std::move(result);
  ASSERT_TRUE(moved.ok());
  const std::unique_ptr<int> owned = std::move(moved).value();
  ASSERT_NE(owned, nullptr);
  EXPECT_EQ(*owned, 5);

  Result<std::unique_ptr<int>> error = Status::NoMemory();
  EXPECT_EQ(std::move(error).value_or(nullptr), nullptr);
}

// Counts live instances to check that Result constructs and destroys its value exactly once.
class Tracked {
 public:
  explicit Tracked(int v) : v_(v) { ++live_; }
  Tracked(const Tracked& other) : v_(other.v_) { ++live_; }
  Tracked(Tracked&& other) noexcept : v_(other.v_) {
    other.v_ = -1;
    ++live_;
  }
  Tracked& operator=(const Tracked& other) = default;
  Tracked& operator=(Tracked&& other) noexcept {
    v_ = other.v_;
    other.v_ = -1;
    return *this;
  }
  ~Tracked() { --live_; }

  int v() const { return v_; }
  static int live() { return live_; }

 private:
  int v_;
  static inline int live_ = 0;
};

TEST(ResultTest, NonTrivialValueLifetime) {
  ASSERT_EQ(Tracked::live(), 0);
  {
    Result<Tracked> a = Tracked(1);
    EXPECT_EQ(Tracked::live(), 1);
    Result<Tracked> b = Status::Busy();
    EXPECT_EQ(Tracked::live(), 1);

    b = a;  // error <- value: constructs
    EXPECT_EQ(Tracked::live(), 2);
    EXPECT_EQ(b->v(), 1);

    Result<Tracked> c = Tracked(3);
    a = c;  // value <- value: assigns
    EXPECT_EQ(Tracked::live(), 3);
    EXPECT_EQ(a->v(), 3);

    c = Result<Tracked>(Status::IoError());  // value <- error: destroys
    EXPECT_EQ(Tracked::live(), 2);
    EXPECT_EQ(c.status(), Status::IoError());

    Result<Tracked> d = std::move(a);  // move construct
    EXPECT_EQ(Tracked::live(), 3);
    EXPECT_EQ(d->v(), 3);
    // Moved, not copied. NOLINTNEXTLINE(bugprone-use-after-move,clang-analyzer-cplusplus.Move)
    EXPECT_EQ(a->v(), -1);

    c = std::move(d);  // error <- value by move: constructs
    EXPECT_EQ(Tracked::live(), 4);
    EXPECT_EQ(c->v(), 3);

    Result<Tracked> e = c;  // copy construct
    EXPECT_EQ(Tracked::live(), 5);
    EXPECT_EQ(e->v(), 3);

    Result<Tracked> f = Status::NotFound();
    // A copy of an error holds no value. The copy is what is tested:
    // NOLINTNEXTLINE(performance-unnecessary-copy-initialization)
    Result<Tracked> g = f;
    EXPECT_EQ(Tracked::live(), 5);
    EXPECT_EQ(g.status(), Status::NotFound());
  }
  EXPECT_EQ(Tracked::live(), 0);
}

TEST(ResultDeathTest, ValueOfErrorTraps) {
  const Result<int> result = Status::NotFound();
  EXPECT_DEATH((void)result.value(), "assertion failed: ok\\(\\)");
  EXPECT_DEATH((void)*result, "assertion failed");
}

TEST(ResultDeathTest, OkStatusWithoutValueTraps) {
  EXPECT_DEATH((void)Result<int>(Status::Ok()), "assertion failed: !status.ok\\(\\)");
}

// --- DEVISO_TRY / DEVISO_ASSIGN_OR_RETURN ---

int g_calls = 0;
int g_reached = 0;

Status Check(Status s) {
  ++g_calls;
  return s;
}

Result<int> Half(int v) {
  ++g_calls;
  if (v % 2 != 0) {
    return Status::InvalidArgument();
  }
  return v / 2;
}

Status TryStatus(Status s) {
  DEVISO_TRY(Check(s));
  ++g_reached;
  return Status::Ok();
}

Status TryResult(int v) {
  DEVISO_TRY(Half(v));
  ++g_reached;
  return Status::Ok();
}

Result<int> TryInResult(Status s) {
  DEVISO_TRY(Check(s));
  ++g_reached;
  return 1;
}

class MacroTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_calls = 0;
    g_reached = 0;
  }
};

TEST_F(MacroTest, TryStatusOk) {
  EXPECT_EQ(TryStatus(Status::Ok()), Status::Ok());
  EXPECT_EQ(g_calls, 1);
  EXPECT_EQ(g_reached, 1);
}

TEST_F(MacroTest, TryStatusErrorReturnsEarly) {
  EXPECT_EQ(TryStatus(Status::Busy()), Status::Busy());
  EXPECT_EQ(g_calls, 1);
  EXPECT_EQ(g_reached, 0);
}

TEST_F(MacroTest, TryResult) {
  EXPECT_EQ(TryResult(4), Status::Ok());
  EXPECT_EQ(g_reached, 1);
  EXPECT_EQ(TryResult(3), Status::InvalidArgument());
  EXPECT_EQ(g_reached, 1);
  EXPECT_EQ(g_calls, 2);
}

TEST_F(MacroTest, TryInFunctionReturningResult) {
  const Result<int> ok = TryInResult(Status::Ok());
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 1);
  const Result<int> error = TryInResult(Status::TimedOut());
  EXPECT_EQ(error.status(), Status::TimedOut());
  EXPECT_EQ(g_reached, 1);
}

// Two ASSIGN_OR_RETURNs in one function: each needs its own hidden temporary.
Result<int> Quarter(int v) {
  DEVISO_ASSIGN_OR_RETURN(const int half, Half(v));
  DEVISO_ASSIGN_OR_RETURN(const int quarter, Half(half));
  ++g_reached;
  return quarter;
}

TEST_F(MacroTest, AssignOrReturn) {
  const Result<int> ok = Quarter(12);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 3);
  EXPECT_EQ(g_calls, 2);
  EXPECT_EQ(g_reached, 1);
}

TEST_F(MacroTest, AssignOrReturnFirstFails) {
  EXPECT_EQ(Quarter(7).status(), Status::InvalidArgument());
  EXPECT_EQ(g_calls, 1);  // The second Half is never evaluated.
  EXPECT_EQ(g_reached, 0);
}

TEST_F(MacroTest, AssignOrReturnSecondFails) {
  EXPECT_EQ(Quarter(6).status(), Status::InvalidArgument());
  EXPECT_EQ(g_calls, 2);
  EXPECT_EQ(g_reached, 0);
}

Status StoreHalf(int v, int* out) {
  DEVISO_ASSIGN_OR_RETURN(*out, Half(v));
  return Status::Ok();
}

TEST_F(MacroTest, AssignOrReturnToExistingLvalueInStatusFunction) {
  int out = -1;
  EXPECT_EQ(StoreHalf(10, &out), Status::Ok());
  EXPECT_EQ(out, 5);
  EXPECT_EQ(StoreHalf(9, &out), Status::InvalidArgument());
  EXPECT_EQ(out, 5);  // Untouched on error.
}

Result<std::unique_ptr<int>> MakeBox(int v) {
  if (v < 0) {
    return Status::OutOfRange();
  }
  return std::make_unique<int>(v);
}

Result<int> Unbox(int v) {
  DEVISO_ASSIGN_OR_RETURN(std::unique_ptr<int> box, MakeBox(v));
  return *box;
}

TEST_F(MacroTest, AssignOrReturnMoveOnly) {
  EXPECT_EQ(*Unbox(8), 8);
  EXPECT_EQ(Unbox(-1).status(), Status::OutOfRange());
}

}  // namespace
}  // namespace deviso
