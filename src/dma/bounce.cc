#include "dma/bounce.h"

#include <cstring>

namespace deviso::dma {

using drivers::DmaDirection;

Status BounceConfig::Validate(uint64_t page_size) const {
  if (!enabled()) return Status::Ok();
  if (!pool->valid() || pool->block_size() != page_size || phys_to_cpu == nullptr) {
    return Status::InvalidArgument();
  }
  return Status::Ok();
}

Result<BounceRun> BounceAcquire(const BounceConfig& config, const DeviceBinding& binding, Paddr pa,
                                size_t size) {
  const size_t page = config.pool->block_size();
  const size_t pages = (size + page - 1) / page;
  DEVISO_ASSIGN_OR_RETURN(void* const cpu, config.pool->AllocContiguous(pages));
  BounceRun run{cpu, config.pool->PaOf(cpu), pages};
  // The rest of the run is zero: the device sees the buffer's bytes and nothing else.
  std::memset(run.cpu, 0, pages * page);
  std::memcpy(run.cpu, config.phys_to_cpu(config.user, pa), size);
  binding.Clean(run.pa, pages * page);
  return run;
}

void BounceSyncForDevice(const BounceConfig& config, const DeviceBinding& binding,
                         const BounceRun& run, Paddr pa, size_t size, DmaDirection direction) {
  if (direction == DmaDirection::kFromDevice) return;
  std::memcpy(run.cpu, config.phys_to_cpu(config.user, pa), size);
  binding.Clean(run.pa, size);
}

void BounceSyncForCpu(const BounceConfig& config, const DeviceBinding& binding,
                      const BounceRun& run, Paddr pa, size_t size, DmaDirection direction) {
  if (direction == DmaDirection::kToDevice) return;
  binding.Invalidate(run.pa, size);
  std::memcpy(config.phys_to_cpu(config.user, pa), run.cpu, size);
}

void BounceRelease(const BounceConfig& config, const BounceRun& run) {
  if (run.cpu == nullptr) return;
  // A run from BounceAcquire is always the pool's and allocated: nothing to report.
  (void)config.pool->FreeContiguous(run.cpu, run.pages);
}

}  // namespace deviso::dma
