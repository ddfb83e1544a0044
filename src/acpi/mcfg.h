// MCFG: the PCI Express memory-mapped configuration space (ECAM) allocations.
//
// Layout: PCI Firmware Specification 3.2, 4.1.2 (MCFG Table Description): the ACPI header, 8
// reserved bytes, then one 16-byte Configuration Space Base Address Allocation Structure per
// range (Table 4-3): base address (u64), PCI segment group (u16), start and end bus (u8 each),
// 4 reserved bytes. The base address is that of bus 0 of the segment even when the range starts
// at a later bus (ECAM addressing: PCI Express Base 4.0, 7.2.2).

#ifndef DEVISO_SRC_ACPI_MCFG_H_
#define DEVISO_SRC_ACPI_MCFG_H_

#include <cstddef>
#include <cstdint>

#include "acpi/tables.h"
#include "deviso/status.h"

namespace deviso::acpi {

// One ECAM range.
struct EcamAllocation {
  uint64_t base = 0;  // configuration space of bus 0 (not of bus_start)
  uint16_t segment = 0;
  uint8_t bus_start = 0;
  uint8_t bus_end = 0;  // inclusive

  // The first byte of bus_start's configuration space, and the size of the range's.
  uint64_t region_base() const { return base + (uint64_t{bus_start} << 20); }
  uint64_t region_size() const { return (uint64_t{bus_end} - bus_start + 1) << 20; }
};

class Mcfg {
 public:
  static constexpr size_t kAllocationsOffset = 44;  // header (36) + reserved (8)
  static constexpr size_t kAllocationSize = 16;
  // More would be no PC: one per segment group is usual. Bounds the overlap check.
  static constexpr size_t kMaxAllocations = 256;

  Mcfg() = default;

  // Checks `table` (signature MCFG, already checksummed by Table::Check) and every allocation:
  // the allocation area a whole number of 16-byte structures, at most kMaxAllocations of them,
  // end bus >= start bus, the base 1 MiB aligned (7.2.2: bus number in A[27:20]) and the range's
  // end inside 64 bits, no two allocations of one segment with overlapping buses.
  // Errors: -EINVAL (not an MCFG, a malformed allocation), -ERANGE (more than kMaxAllocations),
  // with `error` filled.
  static Result<Mcfg> Parse(const Table& table, ParseError* error = nullptr);

  size_t allocation_count() const { return count_; }
  // Allocation `i` (< allocation_count()).
  EcamAllocation allocation(size_t i) const;
  // The allocation holding `bus` of `segment`. Errors: -ENOENT (none).
  Result<EcamAllocation> Find(uint16_t segment, uint8_t bus) const;

 private:
  Bytes bytes_;
  size_t count_ = 0;
};

}  // namespace deviso::acpi

#endif  // DEVISO_SRC_ACPI_MCFG_H_
