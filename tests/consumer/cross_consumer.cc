// The C++ side of the cross-compiled consumer (built, not run): what a board's set-up code
// reaches through the exported targets.

#include <cstddef>

#include "deviso/registry.h"
#include "dma/block_pool.h"
#include "dt/devicetree.h"
#include "smmuv3/smmuv3.h"
#include "virtio_iommu/virtio_iommu.h"

extern "C" int consumer_map_one_page(const struct device* dev, uint32_t sid, uintptr_t pa);

// Probes and enables an SMMUv3 at `regs`, registers it with the default registry (the one behind
// deviso.h) and maps a page for (dev, sid) through the C ABI.
int ConsumerBringUp(deviso::smmuv3::Smmuv3& smmu, const struct device* dev, uint32_t sid,
                    uintptr_t pa) {
  if (deviso::Status s = smmu.Probe(); !s.ok()) return s.ToC();
  if (deviso::Status s = smmu.Init(true); !s.ok()) return s.ToC();
  deviso::Registry& registry = deviso::Registry::Default();
  if (deviso::Status s = registry.RegisterUnit(smmu); !s.ok()) return s.ToC();
  if (deviso::Status s = registry.BindDevice(dev, smmu, {&sid, 1}); !s.ok()) return s.ToC();
  return consumer_map_one_page(dev, sid, pa);
}

// A reader over a flattened devicetree: proves deviso::dt brings libfdt along.
bool ConsumerDtbLooksValid(const void* blob, size_t size) {
  return deviso::dt::CheckBlob(blob, size).ok();
}
