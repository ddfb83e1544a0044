// deviso_footprint: the smallest real user of deviso's RFC calls, built to measure what deviso
// adds to an image (issue 4; scripts/bench-qemu builds it at -Os and attributes .text, .rodata,
// .data and .bss to each object file through the linker map, tools: footprint_report.py).
//
// It brings up the board's SMMU (qemu_virt::SetupSmmu), binds one device to one StreamID with
// the C ABI, and calls deviso_ctx_alloc, deviso_map, deviso_unmap and deviso_ctx_free once each,
// so --gc-sections keeps exactly what such a user needs. No device does DMA: the StreamID
// (0x10, the AHCI at 00:02.0 that scripts/bench-qemu attaches) only has to be one the SMMU
// accepts. Exit status 0 if every call returned 0.

#include <cstdint>

#include "deviso/deviso.h"
#include "deviso/port/device.h"
#include "deviso/port/os.h"
#include "dma_arena.h"
#include "platform.h"
#include "smmu_platform.h"

namespace {

namespace qv = deviso::qemu_virt;

constexpr uint32_t kSid = 0x10;
constexpr size_t kBytes = 64 * 1024;

struct device g_dev = {"footprint"};
qv::DmaArena g_arena(/*coherent=*/true);

int Run(const qv::PlatformInfo& info) {
  deviso::Result<deviso::smmuv3::Smmuv3*> smmu = qv::SetupSmmu(info, g_arena);
  if (!smmu.ok()) return 1;
  const char* unit = (*smmu)->caps().name;
  const uint32_t sids[] = {kSid};
  deviso::Result<deviso::drivers::DmaRegion> buffer = g_arena.Alloc(kBytes, 4096);
  if (!buffer.ok()) return 1;
  const auto base = static_cast<uintptr_t>(buffer->device_addr);
  int failures = 0;
  failures += deviso_device_bind(&g_dev, unit, sids, 1) != 0;
  failures += deviso_ctx_alloc(&g_dev, kSid) != 0;
  failures += deviso_map(&g_dev, kSid, base, kBytes) != 0;
  failures += deviso_unmap(&g_dev, kSid, base, kBytes) != 0;
  failures += deviso_ctx_free(&g_dev, kSid) != 0;
  return failures == 0 ? 0 : 1;
}

}  // namespace

int deviso::qemu_virt::AppMain(const PlatformInfo& info) {
  const int rc = Run(info);
  deviso::port::Log("deviso_footprint: %s\n", rc == 0 ? "PASS" : "FAIL");
  return rc;
}
