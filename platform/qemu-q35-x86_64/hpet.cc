#include "hpet.h"

namespace deviso::q35 {
namespace {

constexpr uint64_t kCapabilities = 0x000;
constexpr uint64_t kConfiguration = 0x010;
constexpr uint64_t kMainCounter = 0x0f0;
constexpr uint64_t kCountSize64 = 1ULL << 13;
constexpr uint64_t kEnable = 1ULL << 0;
constexpr uint32_t kMaxPeriodFs = 100'000'000;  // 100 ns
constexpr uint64_t kFsPerNs = 1'000'000;

// Table 3.2.4 offsets.
constexpr size_t kGasAddressSpace = 40;
constexpr size_t kGasAddress = 44;
constexpr size_t kMinTableLength = 56;

volatile uint64_t& Reg(uint64_t base, uint64_t offset) {
  return *reinterpret_cast<volatile uint64_t*>(static_cast<uintptr_t>(base + offset));
}

HpetInfo g_hpet;

}  // namespace

Result<HpetInfo> ParseHpetTable(const acpi::Table& table) {
  const acpi::Bytes b = table.bytes();
  if (b.size() < kMinTableLength || b[kGasAddressSpace] != 0) {
    return Status::InvalidArgument();
  }
  uint64_t address = 0;
  for (int i = 7; i >= 0; --i) {
    address = (address << 8) | b[kGasAddress + static_cast<size_t>(i)];
  }
  if (address == 0) {
    return Status::InvalidArgument();
  }
  HpetInfo info;
  info.base = address;
  return info;
}

Status HpetStart(HpetInfo* info) {
  const uint64_t caps = Reg(info->base, kCapabilities);
  const auto period = static_cast<uint32_t>(caps >> 32);
  if ((caps & kCountSize64) == 0 || period == 0 || period > kMaxPeriodFs) {
    return Status::NotSupported();
  }
  info->period_fs = period;
  Reg(info->base, kConfiguration) = Reg(info->base, kConfiguration) | kEnable;
  g_hpet = *info;
  return Status::Ok();
}

uint64_t HpetNowNs() {
  if (g_hpet.base == 0) {
    return 0;
  }
  const uint64_t ticks = Reg(g_hpet.base, kMainCounter);
  // ticks * period / 10^6 without overflowing 64 bits: whole and partial millions of ticks.
  return (ticks / kFsPerNs) * g_hpet.period_fs + (ticks % kFsPerNs) * g_hpet.period_fs / kFsPerNs;
}

}  // namespace deviso::q35
