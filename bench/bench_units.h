// The isolation units the driver-level benchmarks run through (thread_bench, dma_map_bench): the
// SMMUv3 driver on its register-level host model, the SMMUv3 driver on a register stub that
// completes every command at once (InstantSmmu, also smmu_bench's), and the virtio-iommu driver
// on its fake virtio-iommu-pci; each with a registry of its own and `devices` bound devices
// (StreamID / endpoint kSidBase + i). Host benchmark code.

#ifndef DEVISO_BENCH_BENCH_UNITS_H_
#define DEVISO_BENCH_BENCH_UNITS_H_

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "instant_smmu.h"
#include "smmuv3/smmuv3.h"
#include "smmuv3/testing/registry_rig.h"
#include "testing/sim_memory.h"
#include "virtio_iommu/testing/fake_device.h"
#include "virtio_iommu/virtio_iommu.h"

namespace deviso::bench {

inline void Check(bool ok) {
  if (!ok) std::abort();
}

constexpr uint32_t kSidBase = 0x20;

// What a unit did, for per-request counters.
struct UnitWork {
  uint64_t commands = 0;  // SMMUv3: commands queued, CMD_SYNC included; virtio: requests
  uint64_t syncs = 0;     // SMMUv3: CMD_SYNCs; virtio: notifications (batches)
};

class BenchUnit {
 public:
  virtual ~BenchUnit() = default;
  virtual UnitWork work() const = 0;
  Registry& registry() { return *registry_; }
  IsolationUnit& unit() { return *unit_; }
  const device* dev(size_t i) const { return &devs_[i]; }
  static uint32_t Sid(size_t i) { return kSidBase + static_cast<uint32_t>(i); }

 protected:
  // Registers the unit and binds `devices` devices.
  void Bind(Registry* registry, IsolationUnit* unit, size_t devices) {
    registry_ = registry;
    unit_ = unit;
    devs_.resize(devices);
    Check(registry_->RegisterUnit(*unit_).ok());
    for (size_t i = 0; i < devices; ++i) {
      const uint32_t sid = Sid(i);
      Check(registry_->BindDevice(&devs_[i], *unit_, {&sid, 1}).ok());
    }
  }

 private:
  Registry* registry_ = nullptr;
  IsolationUnit* unit_ = nullptr;
  std::vector<device> devs_;
};

// The SMMUv3 driver on the model (QEMU 7.2's profile: RIL, BBML2, 2-level stream table).
class SmmuBenchUnit final : public BenchUnit {
 public:
  static smmuv3::testing::RegistryRig::Options Options() {
    smmuv3::testing::RegistryRig::Options o;
    o.smmu.name = "smmuv3@bench";
    o.smmu.dma_coherent = true;
    o.memory.base = 0x4000'0000;
    o.memory.dma_bytes = 8u << 20;
    o.memory.tables_4k_bytes = 8u << 20;
    return o;
  }
  explicit SmmuBenchUnit(size_t devices) : rig_(Options()) {
    Check(rig_.Start(false).ok());
    Bind(rig_.registry, rig_.smmu.get(), devices);
  }
  UnitWork work() const override {
    const smmuv3::Stats s = rig_.smmu->stats();
    return {s.commands, s.syncs};
  }
  smmuv3::testing::RegistryRig& rig() { return rig_; }

 private:
  smmuv3::testing::RegistryRig rig_;
};

// The SMMUv3 driver on InstantSmmu: the driver's own scaling (its command-queue lock, the
// per-context locks), without the model's single lock.
class InstantSmmuBenchUnit final : public BenchUnit {
 public:
  explicit InstantSmmuBenchUnit(size_t devices) : memory_(MemoryOptions()), smmu_(Config()) {
    Check(smmu_.Probe().ok());
    Check(smmu_.Init(false).ok());
    Bind(&registry_, &smmu_, devices);
  }
  UnitWork work() const override {
    const smmuv3::Stats s = smmu_.stats();
    return {s.commands, s.syncs};
  }
  smmuv3::Smmuv3& smmu() { return smmu_; }

 private:
  static testing::SimPhysMemory::Options MemoryOptions() {
    testing::SimPhysMemory::Options o;
    o.base = 0x4000'0000;
    o.tables_4k_bytes = 8u << 20;
    return o;
  }
  smmuv3::Smmuv3::Config Config() {
    smmuv3::Smmuv3::Config c;
    c.name = "smmuv3@instant";
    c.regs = &regs_;
    c.dma = &memory_.dma();
    c.tables_4k = &memory_.tables_4k();
    c.dma_coherent = true;
    return c;
  }
  InstantSmmu regs_;
  testing::SimPhysMemory memory_;
  smmuv3::Smmuv3 smmu_;
  Registry registry_;  // last: destroyed first (it calls no backend)
};

// The virtio-iommu driver on the fake device (requests complete inside the notify write, as
// QEMU does).
class VirtioBenchUnit final : public BenchUnit {
 public:
  explicit VirtioBenchUnit(size_t devices)
      : memory_(MemoryOptions()), fake_(memory_, FakeOptions()), iommu_(Config(memory_, fake_)) {
    Check(iommu_.Probe().ok());
    Check(iommu_.Init().ok());
    Bind(&registry_, &iommu_, devices);
  }
  UnitWork work() const override {
    const virtio_iommu::Stats s = iommu_.stats();
    return {s.requests, s.notifies};
  }

 private:
  static testing::SimPhysMemory::Options MemoryOptions() {
    testing::SimPhysMemory::Options o;
    o.base = 0x4000'0000;
    o.dma_bytes = 8u << 20;
    return o;
  }
  static virtio_iommu::testing::FakeVirtioIommu::Options FakeOptions() {
    virtio_iommu::testing::FakeVirtioIommu::Options o;
    o.log_requests = false;  // millions of requests in a run
    return o;
  }
  static virtio_iommu::VirtioIommu::Config Config(testing::SimPhysMemory& memory,
                                                  virtio_iommu::testing::FakeVirtioIommu& fake) {
    virtio_iommu::VirtioIommu::Config c;
    c.pci = &fake.config();
    c.bars[virtio_iommu::testing::FakeVirtioIommu::kBar] = &fake.bar();
    c.dma = &memory.dma();
    c.name = "virtio-iommu@bench";
    return c;
  }
  testing::SimPhysMemory memory_;
  virtio_iommu::testing::FakeVirtioIommu fake_;
  virtio_iommu::VirtioIommu iommu_;
  Registry registry_;  // last: destroyed first (it calls no backend)
};

}  // namespace deviso::bench

#endif  // DEVISO_BENCH_BENCH_UNITS_H_
