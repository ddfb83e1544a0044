// A register stub of an SMMUv3 that completes every command at once, for the driver-level
// benchmarks (smmu_bench, thread_bench): the figures are then the driver's own cost. Host
// benchmark code.

#ifndef DEVISO_BENCH_INSTANT_SMMU_H_
#define DEVISO_BENCH_INSTANT_SMMU_H_

#include <cstddef>
#include <cstdint>

#include "core/mmio.h"
#include "smmuv3/hw.h"

namespace deviso::bench {

// Registers of an SMMU that is always instantly done: ACK registers mirror their controls,
// CMDQ_CONS follows CMDQ_PROD, GBPA.Update reads 0. ID registers as QEMU 7.2 reports them. With
// it the figures are the driver's own cost (tables, commands, queue handling), no model's.
// The driver writes CMDQ_PROD and reads CMDQ_CONS under its command-queue lock, and CR0 and
// IRQ_CTRL only while it initialises, so the stub needs no lock of its own.
class InstantSmmu final : public Mmio {
 public:
  uint32_t Read32(size_t offset) override {
    switch (offset) {
      case smmuv3::reg::kIdr0:
        return 0x0d40101a;
      case smmuv3::reg::kIdr1:
        return (19U << 21) | (19U << 16) | 16U;  // CMDQS, EVENTQS, SIDSIZE
      case smmuv3::reg::kIdr3:
        return (1U << 10) | (2U << 11);  // RIL, BBML=2
      case smmuv3::reg::kIdr5:
        return (1U << 4) | (1U << 5) | (1U << 6) | 4U;  // 4/16/64K, OAS 44
      case smmuv3::reg::kCr0Ack:
        return cr0_;
      case smmuv3::reg::kIrqCtrlAck:
        return irq_ctrl_;
      case smmuv3::reg::kCmdqCons:
        return cmdq_prod_;
      default:
        return 0;
    }
  }
  void Write32(size_t offset, uint32_t value) override {
    if (offset == smmuv3::reg::kCr0) cr0_ = value;
    if (offset == smmuv3::reg::kIrqCtrl) irq_ctrl_ = value;
    if (offset == smmuv3::reg::kCmdqProd) cmdq_prod_ = value;
  }
  uint64_t Read64(size_t) override { return 0; }
  void Write64(size_t, uint64_t) override {}

 private:
  uint32_t cr0_ = 0;
  uint32_t irq_ctrl_ = 0;
  uint32_t cmdq_prod_ = 0;
};

}  // namespace deviso::bench

#endif  // DEVISO_BENCH_INSTANT_SMMU_H_
