// An out-of-tree C++ program on deviso's C++ API (deviso/registry.h): a registry of its own,
// the SMMUv3 backend over the host model, a context, a mapping at a device address other than
// the physical one, DMA judged where it lands, a strict unmap.

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "smmuv3/smmuv3.h"
#include "smmuv3/testing/smmu_model.h"
#include "testing/sim_memory.h"

#define CHECK(cond)                                              \
  do {                                                           \
    if (!(cond)) {                                               \
      std::fprintf(stderr, "cxx_consumer: failed: %s\n", #cond); \
      return 1;                                                  \
    }                                                            \
  } while (0)

int main() {
  using deviso::smmuv3::testing::SmmuModel;
  deviso::testing::SimPhysMemory memory{deviso::testing::SimPhysMemory::Options{}};
  SmmuModel model{memory, SmmuModel::Options()};
  deviso::smmuv3::Smmuv3::Config c;
  c.regs = &model;
  c.dma = &memory.dma();
  c.tables_4k = &memory.tables_4k();
  c.tables_64k = &memory.tables_64k();
  c.name = "smmuv3@cxx";
  c.dma_coherent = true;
  deviso::smmuv3::Smmuv3 smmu(c);
  CHECK(smmu.Probe().ok());
  CHECK(smmu.Init(true).ok());

  static deviso::Registry registry;  // static: its storage is sized at compile time (no heap)
  CHECK(registry.RegisterUnit(smmu).ok());
  static device dev = {"cxx-dma@0"};
  constexpr uint32_t kSid = 0x21;
  CHECK(registry.BindDevice(&dev, smmu, {&kSid, 1}).ok());

  deviso::Result<deviso::Context> ctx = registry.AllocContext(&dev, kSid);
  CHECK(ctx.ok());
  deviso::Result<deviso::DmaBuffer> buf = memory.dma().Allocate(4096, 4096);
  CHECK(buf.ok());
  std::memset(buf->cpu, 0, 4096);
  memory.dma().Clean(buf->cpu, 4096);

  constexpr deviso::Iova kIova = 0x4000'0000;
  CHECK(ctx->Map(kIova, buf->pa, 4096, deviso::kPermRead | deviso::kPermWrite).ok());
  CHECK(ctx->IovaToPhys(kIova + 0x10).value_or(0) == buf->pa + 0x10);
  const uint32_t word = 0x5eed1234;
  CHECK(model.DeviceWrite(kSid, kIova + 0x10, &word, sizeof(word)).ok());
  uint32_t landed = 0;
  CHECK(memory.UnitRead(buf->pa + 0x10, &landed, sizeof(landed)));
  CHECK(landed == word);

  CHECK(ctx->Unmap(kIova, 4096).ok());
  CHECK(model.DeviceWrite(kSid, kIova + 0x10, &landed, sizeof(landed)) ==
        deviso::Status::IoError());
  CHECK(ctx->Unmap(kIova, 4096) == deviso::Status::NotFound());
  CHECK(registry.FreeContext(&dev, kSid).ok());
  CHECK(ctx->Map(kIova, buf->pa, 4096, deviso::kPermRead) == deviso::Status::NotFound());
  std::printf("cxx_consumer: ok\n");
  return 0;
}
