// A fake isolation unit for tests of the core: domains are page-granular std::maps, every call
// is counted, the next call of any operation can be made to fail, and faults can be raised on a
// StreamID. It also checks the core's side of the backend contract (backend.h): it reports a
// gtest failure (built without GoogleTest, for a fuzzer: a message and abort) if the core calls
// Map/Unmap/IovaToPhys concurrently on one domain, uses a domain that does not exist, or destroys a
// domain with streams attached.

#ifndef DEVISO_SRC_CORE_TESTING_FAKE_UNIT_H_
#define DEVISO_SRC_CORE_TESTING_FAKE_UNIT_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "deviso/backend.h"

namespace deviso::testing {

class FakeUnit final : public IsolationUnit {
 public:
  enum class Op : uint8_t {
    kCreateDomain,
    kDestroyDomain,
    kAttach,
    kDetach,
    kMap,
    kUnmap,
    kIovaToPhys,
  };
  static constexpr size_t kOpCount = 7;

  struct Options {
    std::string name = "fake@0";
    uint32_t max_sid = 0xffff;
    uint64_t page_sizes = (1ULL << 12) | (1ULL << 21) | (1ULL << 30);  // 4 KiB granule
    uint8_t ias = 48;
    uint8_t oas = 48;
    // Offer stage 2 as well (DomainOptions::Stage::kStage2 domains, where write-only exists).
    bool stage2 = false;
    // What ReservedRegions() reports, for every StreamID (e.g. a kMsi bypass window).
    std::vector<ReservedRegion> reserved = {};
  };

  FakeUnit() : FakeUnit(Options{}) {}
  explicit FakeUnit(const Options& options);
  ~FakeUnit() override;
  FakeUnit(const FakeUnit&) = delete;
  FakeUnit& operator=(const FakeUnit&) = delete;

  // IsolationUnit. Map/Unmap validate like the page-table engine: alignment, IAS/OAS, perms
  // (stage 1: write-only is -ENOTSUP), overlap (-EEXIST); Unmap of anything unmapped is -ENOENT.
  const UnitCaps& caps() const override { return caps_; }
  Status ValidateStream(uint32_t sid) const override;
  Result<Domain*> CreateDomain(const DomainOptions& options, FaultSink* sink) override;
  Status DestroyDomain(Domain* domain) override;
  Status Attach(Domain* domain, uint32_t sid) override;
  Status Detach(Domain* domain, uint32_t sid) override;
  Status Map(Domain* domain, Iova iova, Paddr pa, uint64_t size, Perms perms,
             MemType type) override;
  Status Unmap(Domain* domain, Iova iova, uint64_t size) override;
  Result<Paddr> IovaToPhys(Domain* domain, Iova iova) override;
  size_t ReservedRegions(uint32_t sid, std::span<ReservedRegion> out) const override;

  // The next call of `op` returns `status` (which must not be OK) and changes nothing.
  void FailNext(Op op, Status status);
  // Calls of `op` so far, failed ones included.
  size_t calls(Op op) const { return calls_[static_cast<size_t>(op)].load(); }
  size_t total_calls() const;

  // Delivers `fault` (its sid and unit name filled in) to the sink of the domain `sid` is
  // attached to, as an event handler would. Returns false if the stream is not attached.
  bool RaiseFault(uint32_t sid, Fault fault);
  // Faults for a stream with no domain go nowhere (default-deny); counted here.
  size_t unrouted_faults() const { return unrouted_faults_.load(); }

  size_t live_domains() const;
  // The domain `sid` is attached to, or null.
  Domain* DomainOf(uint32_t sid) const;
  // Mapped 4 KiB-or-larger pages of `domain` (0 if it does not exist).
  size_t mapped_pages(const Domain* domain) const;
  // The type and perms of the page at `iova`, if mapped.
  struct Page {
    Paddr pa;
    Perms perms;
    MemType type;
  };
  std::optional<Page> PageAt(const Domain* domain, Iova iova) const;

 private:
  struct FakeDomain : Domain {
    FakeDomain(uint64_t page, uint8_t bits, FaultSink* s, bool s2) : sink(s), stage2(s2) {
      page_size_ = page;
      ias_ = bits;
    }
    FaultSink* sink;
    bool stage2;  // created as stage 2: write-only mappings exist
    std::set<uint32_t> sids;
    // Guarded by the core's context lock (not by mu_): TSan sees it if the core does not
    // serialise; `busy` catches it without TSan.
    std::map<Iova, Page> pages;
    std::atomic<int> busy{0};
  };

  // A breach of the backend contract by the core.
  void Breach(const char* what) const;
  // mu_ held: counts the call and consumes an injected failure.
  Status Enter(Op op);
  // mu_ held: the domain behind `domain`, or null (and a test failure) if it does not exist.
  FakeDomain* Live(const Domain* domain) const;
  // For Map/Unmap/IovaToPhys: counts the call, checks the domain and marks it busy (a test
  // failure if it already is). Returns null with `status` set if the call must fail.
  FakeDomain* BeginDomainOp(Op op, Domain* domain, Status& status);
  static void EndDomainOp(FakeDomain* d);

  UnitCaps caps_;
  std::string name_;
  uint8_t oas_;
  std::vector<ReservedRegion> reserved_;

  mutable std::mutex mu_;
  std::map<const Domain*, std::unique_ptr<FakeDomain>> domains_;
  std::map<uint32_t, FakeDomain*> attached_;  // sid -> domain
  std::array<std::optional<Status>, kOpCount> fail_next_;
  std::array<std::atomic<size_t>, kOpCount> calls_{};
  std::atomic<size_t> unrouted_faults_{0};
};

}  // namespace deviso::testing

#endif  // DEVISO_SRC_CORE_TESTING_FAKE_UNIT_H_
