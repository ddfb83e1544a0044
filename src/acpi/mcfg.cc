// MCFG parsing (see mcfg.h). PCI Firmware Specification 3.2, 4.1.2.

#include "acpi/mcfg.h"

#include <cstring>

#include "acpi/bytes.h"

namespace deviso::acpi {
namespace {

using internal::Le16;
using internal::Le64;
using internal::Le8;

// Table 4-3 field offsets inside one allocation structure.
constexpr size_t kBase = 0;
constexpr size_t kSegment = 8;
constexpr size_t kStartBus = 10;
constexpr size_t kEndBus = 11;

constexpr uint64_t kBusStride = uint64_t{1} << 20;

EcamAllocation Decode(Bytes b, size_t i) {
  const size_t off = Mcfg::kAllocationsOffset + i * Mcfg::kAllocationSize;
  EcamAllocation a;
  a.base = Le64(b, off + kBase);
  a.segment = Le16(b, off + kSegment);
  a.bus_start = Le8(b, off + kStartBus);
  a.bus_end = Le8(b, off + kEndBus);
  return a;
}

Status Fail(ParseError* error, size_t offset, const char* reason,
            Status status = Status::InvalidArgument()) {
  if (error != nullptr) {
    error->reason = reason;
    std::memcpy(error->table, "MCFG", 5);
    error->offset = offset;
  }
  return status;
}

}  // namespace

Result<Mcfg> Mcfg::Parse(const Table& table, ParseError* error) {
  if (!table.Is("MCFG")) {
    return Fail(error, 0, "not an MCFG table");
  }
  const Bytes b = table.bytes();
  if (b.size() < kAllocationsOffset) {
    return Fail(error, TableHeader::kSize, "shorter than header and reserved field (44 bytes)");
  }
  if ((b.size() - kAllocationsOffset) % kAllocationSize != 0) {
    return Fail(error, kAllocationsOffset, "allocation area is not a whole number of entries");
  }
  const size_t count = (b.size() - kAllocationsOffset) / kAllocationSize;
  if (count > kMaxAllocations) {
    return Fail(error, kAllocationsOffset, "more allocations than kMaxAllocations",
                Status::OutOfRange());
  }
  for (size_t i = 0; i < count; ++i) {
    const size_t off = kAllocationsOffset + i * kAllocationSize;
    const EcamAllocation a = Decode(b, i);
    if (a.bus_end < a.bus_start) {
      return Fail(error, off + kEndBus, "end bus below start bus");
    }
    if (a.base % kBusStride != 0) {
      return Fail(error, off + kBase, "base address not 1 MiB aligned");
    }
    // base + (end + 1) << 20 must not wrap.
    if (a.base > UINT64_MAX - ((uint64_t{a.bus_end} + 1) * kBusStride - 1)) {
      return Fail(error, off + kBase, "range runs past the 64-bit address space");
    }
    for (size_t j = 0; j < i; ++j) {
      const EcamAllocation o = Decode(b, j);
      if (o.segment == a.segment && a.bus_start <= o.bus_end && o.bus_start <= a.bus_end) {
        return Fail(error, off + kStartBus, "buses overlap an earlier allocation of the segment");
      }
    }
  }
  Mcfg m;
  m.bytes_ = b;
  m.count_ = count;
  return m;
}

EcamAllocation Mcfg::allocation(size_t i) const { return Decode(bytes_, i); }

Result<EcamAllocation> Mcfg::Find(uint16_t segment, uint8_t bus) const {
  for (size_t i = 0; i < count_; ++i) {
    const EcamAllocation a = Decode(bytes_, i);
    if (a.segment == segment && bus >= a.bus_start && bus <= a.bus_end) {
      return a;
    }
  }
  return Status::NotFound();
}

}  // namespace deviso::acpi
