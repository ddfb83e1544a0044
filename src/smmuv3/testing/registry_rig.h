// A registry over the real SMMUv3 driver on its host model (smmu_model.h) in simulated memory:
// the set-up the core's, the DMA pool's and the isolation fuzzer's tests share. The rig fills in
// the driver's register block, DMA memory and table memories; the test chooses the rest of the
// driver's Config, the memory's and the model's options, and whether the model's event and
// GERROR interrupts call the driver. Host test code.

#ifndef DEVISO_SRC_SMMUV3_TESTING_REGISTRY_RIG_H_
#define DEVISO_SRC_SMMUV3_TESTING_REGISTRY_RIG_H_

#include <memory>
#include <new>

#include "deviso/config.h"
#include "deviso/registry.h"
#include "smmuv3/smmuv3.h"
#include "smmuv3/testing/smmu_model.h"
#include "testing/sim_memory.h"

namespace deviso::smmuv3::testing {

class RegistryRig {
 public:
  using Model = SmmuModel;
  using SimPhysMemory = deviso::testing::SimPhysMemory;

  struct Options {
    SimPhysMemory::Options memory{};
    Model::Options model{};
    // regs, dma, tables_4k and (with tables_64k) tables_64k are filled in by the rig.
    Smmuv3::Config smmu{};
    bool tables_64k = true;
    // The model's event queue and GERROR interrupts call HandleEvents / HandleGlobalErrors.
    bool irq_handlers = true;
    // Registry::Default() (the C API's registry; renewed when the rig goes) instead of an own.
    bool default_registry = false;
  };

  explicit RegistryRig(const Options& o)
      : memory(o.memory),
        model(memory, o.model),
        registry(o.default_registry ? &Registry::Default() : new Registry()),
        default_registry_(o.default_registry) {
    Smmuv3::Config c = o.smmu;
    c.regs = &model;
    c.dma = &memory.dma();
    c.tables_4k = &memory.tables_4k();
    c.tables_64k = o.tables_64k ? &memory.tables_64k() : nullptr;
    smmu = std::make_unique<Smmuv3>(c);
    if (o.irq_handlers) {
      model.SetEventqIrqHandler([this] { (void)smmu->HandleEvents(); });
      model.SetGerrorIrqHandler([this] { smmu->HandleGlobalErrors(); });
    }
  }
  // The registry first (it calls no backend), then the unit with its model and memory.
  ~RegistryRig() {
    if (default_registry_) {
      Registry::Default().~Registry();
      new (&Registry::Default()) Registry();
    } else {
      delete registry;
    }
    if constexpr (!config::kTeardown) (void)smmu.release();
  }
  RegistryRig(const RegistryRig&) = delete;
  RegistryRig& operator=(const RegistryRig&) = delete;

  // Probe, then Init(enable_irqs).
  Status Start(bool enable_irqs) {
    const Status s = smmu->Probe();
    return s.ok() ? smmu->Init(enable_irqs) : s;
  }

  SimPhysMemory memory;
  Model model;
  std::unique_ptr<Smmuv3> smmu;
  Registry* const registry;

 private:
  const bool default_registry_;
};

}  // namespace deviso::smmuv3::testing

#endif  // DEVISO_SRC_SMMUV3_TESTING_REGISTRY_RIG_H_
