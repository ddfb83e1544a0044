// The host port's controllable clock, for tests whose deadlines must not depend on how fast the
// machine is (a deadline in a host test proves "no hang", never a timing).
//
// port::MonotonicNs() reads steady_clock unless a ClockSource is installed; then every
// Deadline, rate limiter and timestamp in deviso reads that source instead. A TestClock is such
// a source: it stands still until the test advances it (Advance), or moves a fixed step on every
// reading (step_ns), which turns a deadline into a number of polls. With a fake that completes
// within a few polls, or a device thread that advances the clock only after it has processed
// what is pending, the deadline can then only expire when the fake really did not answer.
//
// Host only (src/ports/host); not thread-safe to install: install before the threads that read
// the clock start, remove after they stopped. Readings are atomic and may come from any thread.

#ifndef DEVISO_SRC_PORTS_HOST_TEST_CLOCK_H_
#define DEVISO_SRC_PORTS_HOST_TEST_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace deviso::port::host {

class ClockSource {
 public:
  virtual ~ClockSource() = default;
  virtual uint64_t NowNs() = 0;
};

// Installs `source` as port::MonotonicNs()'s clock (nullptr: steady_clock again). Returns the
// source it replaces.
ClockSource* SetClockSource(ClockSource* source);

// Fuzzers: port::Log() still formats every message (so its arguments are exercised) but writes
// nothing while silenced. Returns the previous setting.
bool SetLogSilenced(bool silenced);

// A clock that installs itself for its lifetime (restoring the previous source after).
class TestClock final : public ClockSource {
 public:
  static constexpr uint64_t kStartNs = 1'000'000'000;

  // Every reading returns the current time, then moves it `step_ns` on (0: only Advance()).
  explicit TestClock(uint64_t step_ns = 0, uint64_t start_ns = kStartNs)
      : now_(start_ns), step_(step_ns) {
    previous_ = SetClockSource(this);
  }
  ~TestClock() override { (void)SetClockSource(previous_); }
  TestClock(const TestClock&) = delete;
  TestClock& operator=(const TestClock&) = delete;

  uint64_t NowNs() override {
    readings_.fetch_add(1, std::memory_order_relaxed);
    // Sequentially consistent: a thread that reads a time after another thread's Advance()
    // also sees what that thread wrote before advancing (a device thread's completions).
    return now_.fetch_add(step_.load(std::memory_order_relaxed));
  }
  void Advance(uint64_t ns) { now_.fetch_add(ns); }
  void set_step(uint64_t ns) { step_.store(ns, std::memory_order_relaxed); }
  uint64_t now() const { return now_.load(); }
  uint64_t readings() const { return readings_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> now_;
  std::atomic<uint64_t> step_;
  std::atomic<uint64_t> readings_{0};
  ClockSource* previous_ = nullptr;
};

}  // namespace deviso::port::host

#endif  // DEVISO_SRC_PORTS_HOST_TEST_CLOCK_H_
