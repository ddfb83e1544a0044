// The consumer's board over deviso's host SMMUv3 model (board.h).

#include "board.h"

#include <cerrno>
#include <cstring>

#include "deviso/port/device.h"
#include "deviso/registry.h"
#include "smmuv3/smmuv3.h"
#include "smmuv3/testing/smmu_model.h"
#include "testing/sim_memory.h"

namespace {

struct device the_device = {"consumer-dma@0"};

// Never destroyed: the default registry keeps a pointer to the unit until the process ends.
struct Board {
  deviso::testing::SimPhysMemory memory{deviso::testing::SimPhysMemory::Options{}};
  deviso::smmuv3::testing::SmmuModel model{memory, deviso::smmuv3::testing::SmmuModel::Options()};
  deviso::smmuv3::Smmuv3* smmu = nullptr;
};
Board* board = nullptr;

}  // namespace

extern "C" {

const struct device* const board_dev = &the_device;

int board_init(void) {
  board = new Board;
  deviso::smmuv3::Smmuv3::Config c;
  c.regs = &board->model;
  c.dma = &board->memory.dma();
  c.tables_4k = &board->memory.tables_4k();
  c.tables_64k = &board->memory.tables_64k();
  c.name = "smmuv3@consumer";
  c.dma_coherent = true;
  board->smmu = new deviso::smmuv3::Smmuv3(c);
  board->model.SetEventqIrqHandler([] { board->smmu->HandleEvents(); });
  if (deviso::Status s = board->smmu->Probe(); !s.ok()) return s.ToC();
  if (deviso::Status s = board->smmu->Init(true); !s.ok()) return s.ToC();
  deviso::Registry& registry = deviso::Registry::Default();
  if (deviso::Status s = registry.RegisterUnit(*board->smmu); !s.ok()) return s.ToC();
  const uint32_t sid = BOARD_SID;
  return registry.BindDevice(board_dev, *board->smmu, {&sid, 1}).ToC();
}

uint64_t board_alloc_page(void** cpu) {
  deviso::Result<deviso::DmaBuffer> b = board->memory.dma().Allocate(4096, 4096);
  if (!b.ok()) return 0;
  std::memset(b->cpu, 0, 4096);
  board->memory.dma().Clean(b->cpu, 4096);
  *cpu = b->cpu;
  return b->pa;
}

int board_device_write32(uint64_t iova, uint32_t value) {
  return board->model.DeviceWrite(BOARD_SID, iova, &value, sizeof(value)).ToC();
}

uint32_t board_read32(uint64_t pa) {
  uint32_t v = 0;
  if (!board->memory.UnitRead(pa, &v, sizeof(v))) return 0xdeadbeef;
  return v;
}

}  // extern "C"
