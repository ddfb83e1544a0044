#include "core/testing/fake_unit.h"

#include <utility>

#ifdef DEVISO_FAKE_UNIT_GTEST
#include <gtest/gtest.h>
#else
#include <cstdio>
#include <cstdlib>
#endif

namespace deviso::testing {

FakeUnit::FakeUnit(const Options& options)
    : name_(options.name), oas_(options.oas), reserved_(options.reserved) {
  caps_.backend = "fake";
  caps_.name = name_.c_str();
  caps_.page_sizes = options.page_sizes;
  caps_.ias = options.ias;
  caps_.oas = options.oas;
  caps_.stages = options.stage2 ? 3 : 1;
  caps_.coherent = true;
  caps_.max_sid = options.max_sid;
}

FakeUnit::~FakeUnit() = default;

void FakeUnit::Breach(const char* what) const {
#ifdef DEVISO_FAKE_UNIT_GTEST
  ADD_FAILURE() << caps_.name << ": " << what;
#else
  std::fprintf(stderr, "%s: %s\n", caps_.name, what);
  std::abort();
#endif
}

Status FakeUnit::ValidateStream(uint32_t sid) const {
  return sid <= caps_.max_sid ? Status::Ok() : Status::InvalidArgument();
}

size_t FakeUnit::total_calls() const {
  size_t total = 0;
  for (const auto& c : calls_) {
    total += c.load();
  }
  return total;
}

void FakeUnit::FailNext(Op op, Status status) {
  const std::lock_guard lock(mu_);
  fail_next_[static_cast<size_t>(op)] = status;
}

Status FakeUnit::Enter(Op op) {
  const size_t i = static_cast<size_t>(op);
  ++calls_[i];
  if (fail_next_[i].has_value()) {
    const Status status = *fail_next_[i];
    fail_next_[i].reset();
    return status;
  }
  return Status::Ok();
}

FakeUnit::FakeDomain* FakeUnit::Live(const Domain* domain) const {
  const auto it = domains_.find(domain);
  if (it == domains_.end()) {
    Breach("the core used a domain that does not exist");
    return nullptr;
  }
  return it->second.get();
}

Result<Domain*> FakeUnit::CreateDomain(const DomainOptions& options, FaultSink* sink) {
  const std::lock_guard lock(mu_);
  DEVISO_TRY(Enter(Op::kCreateDomain));
  const bool stage2 = options.stage == DomainOptions::Stage::kStage2;
  if (stage2 && (caps_.stages & 2) == 0) {
    return Status::NotSupported();
  }
  const uint64_t smallest = caps_.page_sizes & (~caps_.page_sizes + 1);
  uint64_t page = options.page_size == 0 ? smallest : options.page_size;
  if ((page & (page - 1)) != 0 || (page & caps_.page_sizes) == 0) {
    return Status::InvalidArgument();
  }
  const uint8_t ias = options.ias == 0 ? caps_.ias : options.ias;
  if (ias > caps_.ias) {
    return Status::InvalidArgument();
  }
  auto domain = std::make_unique<FakeDomain>(page, ias, sink, stage2);
  Domain* const handle = domain.get();
  domains_.emplace(handle, std::move(domain));
  return handle;
}

Status FakeUnit::DestroyDomain(Domain* domain) {
  const std::lock_guard lock(mu_);
  FakeDomain* const d = Live(domain);
  if (d == nullptr) {
    return Status::InvalidArgument();
  }
  if (!d->sids.empty()) {
    Breach("the core destroyed a domain with streams attached");
    return Status::Busy();
  }
  DEVISO_TRY(Enter(Op::kDestroyDomain));
  if (d->busy.load() != 0) {
    Breach("domain destroyed during a Map/Unmap/IovaToPhys");
  }
  domains_.erase(domain);
  return Status::Ok();
}

Status FakeUnit::Attach(Domain* domain, uint32_t sid) {
  const std::lock_guard lock(mu_);
  DEVISO_TRY(Enter(Op::kAttach));
  FakeDomain* const d = Live(domain);
  if (d == nullptr) {
    return Status::InvalidArgument();
  }
  if (sid > caps_.max_sid) {
    return Status::InvalidArgument();
  }
  if (attached_.count(sid) != 0) {
    return Status::AlreadyExists();
  }
  attached_[sid] = d;
  d->sids.insert(sid);
  return Status::Ok();
}

Status FakeUnit::Detach(Domain* domain, uint32_t sid) {
  const std::lock_guard lock(mu_);
  DEVISO_TRY(Enter(Op::kDetach));
  FakeDomain* const d = Live(domain);
  if (d == nullptr) {
    return Status::InvalidArgument();
  }
  const auto it = attached_.find(sid);
  if (it == attached_.end() || it->second != d) {
    return Status::NotFound();
  }
  attached_.erase(it);
  d->sids.erase(sid);
  return Status::Ok();
}

FakeUnit::FakeDomain* FakeUnit::BeginDomainOp(Op op, Domain* domain, Status& status) {
  const std::lock_guard lock(mu_);
  status = Enter(op);
  FakeDomain* const d = Live(domain);
  if (d == nullptr) {
    status = Status::InvalidArgument();
    return nullptr;
  }
  if (d->busy.fetch_add(1) != 0) {
    Breach("concurrent Map/Unmap/IovaToPhys on one domain");
  }
  if (!status.ok()) {
    EndDomainOp(d);
    return nullptr;
  }
  return d;
}

void FakeUnit::EndDomainOp(FakeDomain* d) { d->busy.fetch_sub(1); }

Status FakeUnit::Map(Domain* domain, Iova iova, Paddr pa, uint64_t size, Perms perms,
                     MemType type) {
  Status status;
  FakeDomain* const d = BeginDomainOp(Op::kMap, domain, status);
  if (d == nullptr) {
    return status;
  }
  const uint64_t page = d->page_size();
  const uint64_t in_limit = uint64_t{1} << d->ias();
  const uint64_t out_limit = uint64_t{1} << oas_;
  if (size == 0 || ((iova | pa | size) & (page - 1)) != 0 || iova >= in_limit ||
      size > in_limit - iova || pa >= out_limit || size > out_limit - pa ||
      (perms & kPermReadWrite) == 0) {
    status = Status::InvalidArgument();
  } else if ((perms & kPermReadWrite) == kPermWrite && !d->stage2) {
    status = Status::NotSupported();  // stage 1 has no write-only
  } else {
    const auto first = d->pages.lower_bound(iova);
    if (first != d->pages.end() && first->first < iova + size) {
      status = Status::AlreadyExists();
    } else {
      for (uint64_t off = 0; off < size; off += page) {
        d->pages.emplace(iova + off, Page{pa + off, perms, type});
      }
    }
  }
  EndDomainOp(d);
  return status;
}

size_t FakeUnit::ReservedRegions(uint32_t /*sid*/, std::span<ReservedRegion> out) const {
  for (size_t i = 0; i < reserved_.size() && i < out.size(); ++i) {
    out[i] = reserved_[i];
  }
  return reserved_.size();
}

Status FakeUnit::Unmap(Domain* domain, Iova iova, uint64_t size) {
  Status status;
  FakeDomain* const d = BeginDomainOp(Op::kUnmap, domain, status);
  if (d == nullptr) {
    return status;
  }
  const uint64_t page = d->page_size();
  if (size == 0 || ((iova | size) & (page - 1)) != 0) {
    status = Status::InvalidArgument();
  } else {
    for (uint64_t off = 0; off < size && status.ok(); off += page) {
      if (d->pages.count(iova + off) == 0) {
        status = Status::NotFound();
      }
    }
    if (status.ok()) {
      d->pages.erase(d->pages.lower_bound(iova), d->pages.lower_bound(iova + size));
    }
  }
  EndDomainOp(d);
  return status;
}

Result<Paddr> FakeUnit::IovaToPhys(Domain* domain, Iova iova) {
  Status status;
  FakeDomain* const d = BeginDomainOp(Op::kIovaToPhys, domain, status);
  if (d == nullptr) {
    return status;
  }
  Result<Paddr> result = Status::NotFound();
  if (iova >> d->ias() != 0) {
    result = Status::InvalidArgument();
  } else if (const auto it = d->pages.find(iova & ~(d->page_size() - 1)); it != d->pages.end()) {
    result = it->second.pa + (iova & (d->page_size() - 1));
  }
  EndDomainOp(d);
  return result;
}

bool FakeUnit::RaiseFault(uint32_t sid, Fault fault) {
  // Held while the sink runs, as a real event handler holds its lock: once Detach or
  // DestroyDomain returns, the domain's sink is not called again.
  const std::lock_guard lock(mu_);
  const auto it = attached_.find(sid);
  if (it == attached_.end()) {
    ++unrouted_faults_;
    return false;
  }
  fault.sid = sid;
  fault.unit = caps_.name;
  if (it->second->sink != nullptr) {
    it->second->sink->OnFault(fault);
  }
  return true;
}

size_t FakeUnit::live_domains() const {
  const std::lock_guard lock(mu_);
  return domains_.size();
}

Domain* FakeUnit::DomainOf(uint32_t sid) const {
  const std::lock_guard lock(mu_);
  const auto it = attached_.find(sid);
  return it == attached_.end() ? nullptr : it->second;
}

size_t FakeUnit::mapped_pages(const Domain* domain) const {
  const std::lock_guard lock(mu_);
  const auto it = domains_.find(domain);
  return it == domains_.end() ? 0 : it->second->pages.size();
}

std::optional<FakeUnit::Page> FakeUnit::PageAt(const Domain* domain, Iova iova) const {
  const std::lock_guard lock(mu_);
  const auto it = domains_.find(domain);
  if (it == domains_.end()) {
    return std::nullopt;
  }
  const auto page = it->second->pages.find(iova);
  if (page == it->second->pages.end()) {
    return std::nullopt;
  }
  return page->second;
}

}  // namespace deviso::testing
