// Scale benchmarks of the core (issue 17): the cost of a (device, StreamID) lookup and of a C
// API map+unmap must not grow with the number of devices, contexts or existing mappings. Each
// family is read as a ratio within one run (largest / smallest argument, target <= 1.2x), so
// the figures hold on a loaded machine. Run: build/host-release/bench/scale_bench (built by
// preset host-release; the capacities are the configured ones, e.g. -DDEVISO_MAX_DEVICES=1024
// -DDEVISO_MAX_CONTEXTS=1024 -DDEVISO_MAX_SIDS=4096 for the large configuration).
//
// The unit is a real VMSAv8-64 page-table engine per domain over host memory with a TLB flush
// that does nothing: the figures are the core's and the engine's cost, not an IOMMU's.

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "deviso/deviso.h"
#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "pgtable/pgtable.h"
#include "pgtable/table_pool.h"

namespace deviso {
namespace {

constexpr uint64_t kPage = 4096;

void Check(bool ok) {
  if (!ok) std::abort();
}

class NullFlush : public pgtable::TlbFlush {
 public:
  Status Invalidate(const pgtable::InvalidationRange&) override { return Status::Ok(); }
};

// An isolation unit whose domains are page tables in one pool of `granules` 4 KiB granules.
class TableUnit final : public IsolationUnit {
 public:
  TableUnit(const char* name, size_t granules)
      : storage_(static_cast<uint8_t*>(std::aligned_alloc(kPage, kPage * granules))),
        bitmap_((granules + 63) / 64, 0),
        counts_(granules),
        pool_(storage_.get(), reinterpret_cast<uintptr_t>(storage_.get()), kPage, granules,
              bitmap_.data(), counts_.data()) {
    std::memset(storage_.get(), 0, kPage * granules);
    caps_.backend = "bench";
    caps_.name = name;
    caps_.page_sizes = (1ULL << 12) | (1ULL << 21) | (1ULL << 30);
    caps_.ias = 48;
    caps_.oas = 48;
    caps_.stages = 1;
    caps_.coherent = true;
    caps_.max_sid = 0xffff;
  }
  const UnitCaps& caps() const override { return caps_; }
  Status ValidateStream(uint32_t sid) const override {
    return sid <= caps_.max_sid ? Status::Ok() : Status::InvalidArgument();
  }
  Result<Domain*> CreateDomain(const DomainOptions&, FaultSink*) override {
    auto domain = std::make_unique<TableDomain>(pool_, flush_);
    if (!domain->pt.Init().ok()) return Status::NoMemory();
    domains_.push_back(std::move(domain));
    return domains_.back().get();
  }
  Status DestroyDomain(Domain* domain) override {
    for (auto& d : domains_) {
      if (d.get() == domain) {
        d.reset();
        return Status::Ok();
      }
    }
    return Status::NotFound();
  }
  Status Attach(Domain*, uint32_t) override { return Status::Ok(); }
  Status Detach(Domain*, uint32_t) override { return Status::Ok(); }
  Status Map(Domain* domain, Iova iova, Paddr pa, uint64_t size, Perms perms, MemType) override {
    // Every call here maps normal memory (deviso_map).
    return static_cast<TableDomain*>(domain)->pt.Map(iova, pa, size, perms,
                                                     pgtable::MemType::kNormalWriteBack);
  }
  Status Unmap(Domain* domain, Iova iova, uint64_t size) override {
    return static_cast<TableDomain*>(domain)->pt.Unmap(iova, size);
  }
  Result<Paddr> IovaToPhys(Domain* domain, Iova iova) override {
    return static_cast<TableDomain*>(domain)->pt.IovaToPhys(iova);
  }

 private:
  struct TableDomain : Domain {
    TableDomain(pgtable::TablePool& pool, NullFlush& flush)
        : pt(pgtable::Config::SmmuStage1(pgtable::Granule::k4KiB, 48, 48, true), pool, flush) {
      page_size_ = kPage;
      ias_ = 48;
    }
    pgtable::PageTable pt;
  };
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t[], Free> storage_;
  std::vector<uint64_t> bitmap_;
  std::vector<pgtable::TableCounts> counts_;
  pgtable::TablePool pool_;
  NullFlush flush_;
  UnitCaps caps_;
  std::vector<std::unique_ptr<TableDomain>> domains_;
};

// `devices` devices bound in the default registry (one StreamID each, sid = index), the first
// `contexts` of them with a context; undone at the end of the benchmark.
struct Fleet {
  Fleet(size_t devices, size_t with_context, size_t granules = 4096)
      : unit("bench@0", granules + with_context * 4), devs(devices), contexts(with_context) {
    Check(Registry::Default().RegisterUnit(unit).ok());
    for (size_t i = 0; i < devices; ++i) {
      const auto sid = static_cast<uint32_t>(i);
      Check(deviso_device_bind(&devs[i], "bench@0", &sid, 1) == 0);
      if (i < contexts) Check(deviso_ctx_alloc(&devs[i], sid) == 0);
    }
  }
  ~Fleet() {
    for (size_t i = 0; i < devs.size(); ++i) {
      if (i < contexts) Check(deviso_ctx_free(&devs[i], static_cast<uint32_t>(i)) == 0);
      Check(Registry::Default().UnbindDevice(&devs[i]).ok());
    }
    Check(Registry::Default().UnregisterUnit(unit).ok());
  }
  TableUnit unit;
  std::vector<device> devs;
  size_t contexts = 0;
};

// FindContext for the first and the last of kMaxDevices bound devices (each with a context, as
// far as kMaxContexts allows). Arg: 0 first, 1 last.
void BM_FindContext(benchmark::State& state) {
  const size_t n = std::min(kMaxDevices, kMaxSids);
  Fleet fleet(n, std::min(n, kMaxContexts));
  const size_t which = state.range(0) == 0 ? 0 : fleet.contexts - 1;
  const device* dev = &fleet.devs[which];
  for (auto _ : state) {
    Result<Context> ctx = Registry::Default().FindContext(dev, static_cast<uint32_t>(which));
    benchmark::DoNotOptimize(ctx);
  }
  state.counters["devices"] = static_cast<double>(n);
}
BENCHMARK(BM_FindContext)->Arg(0)->Arg(1);

// C API map+unmap of one page aimed at the last of N contexts (N = 1 ... kMaxContexts).
void BM_CApiMapUnmapOverContexts(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  Fleet fleet(std::max(n, std::min(kMaxDevices, kMaxSids)), n);
  const device* dev = &fleet.devs[n - 1];
  const auto sid = static_cast<uint32_t>(n - 1);
  Check(deviso_map(dev, sid, 0x4000'0000, kPage) == 0);  // keeps the tables in place
  for (auto _ : state) {
    Check(deviso_map(dev, sid, 0x4000'1000, kPage) == 0);
    Check(deviso_unmap(dev, sid, 0x4000'1000, kPage) == 0);
  }
  Check(deviso_unmap(dev, sid, 0x4000'0000, kPage) == 0);
  state.counters["contexts"] = static_cast<double>(n);
}
BENCHMARK(BM_CApiMapUnmapOverContexts)
    ->Arg(1)
    ->Arg(kMaxContexts / 2 > 1 ? kMaxContexts / 2 : 1)
    ->Arg(kMaxContexts);

// C API map+unmap of one page in a context that already holds N single-page mappings (spread
// mapped one call each from 1 GiB up).
void BM_CApiMapUnmapOverMappings(benchmark::State& state) {
  const auto n = static_cast<uint64_t>(state.range(0));
  // Leaf tables for n pages, plus the upper levels.
  Fleet fleet(1, 1, static_cast<size_t>(n / 512 + 64));
  const device* dev = &fleet.devs[0];
  // Existing mappings from 1 GiB up, one page per call.
  for (uint64_t i = 0; i < n; ++i) {
    Check(deviso_map(dev, 0, (1ULL << 30) + i * kPage, kPage) == 0);
  }
  // The page mapped and unmapped lies above them all, in a table of its own that one
  // neighbour keeps in place: the same walk whatever n is.
  const uint64_t base = (1ULL << 30) + ((n * kPage + (2ULL << 20)) & ~((2ULL << 20) - 1));
  Check(deviso_map(dev, 0, base, kPage) == 0);
  for (auto _ : state) {
    Check(deviso_map(dev, 0, base + kPage, kPage) == 0);
    Check(deviso_unmap(dev, 0, base + kPage, kPage) == 0);
  }
  Check(deviso_unmap(dev, 0, base, kPage) == 0);
  Check(deviso_unmap(dev, 0, 1ULL << 30, n * kPage) == 0);
  state.counters["mappings"] = static_cast<double>(n);
}
BENCHMARK(BM_CApiMapUnmapOverMappings)->Arg(1)->Arg(1000)->Arg(100000)->Arg(1000000);

}  // namespace
}  // namespace deviso
