/* A C program using deviso.h: compiled as C11 with -Wpedantic, it proves the header is C. */
#include "core/c_api_c_program.h"

#include "deviso/deviso.h"
#include "deviso/port/device.h"

void deviso_c_program_run(const struct device* dev, const char* unit, uint32_t sid, uintptr_t base,
                          size_t size, struct deviso_c_program_results* results) {
  struct deviso_c_program_results* r = results;
  const uint32_t sids[1] = {sid};
  struct deviso_caps caps;
  struct deviso_fault fault;

  r->bind = deviso_device_bind(dev, unit, sids, 1);
  r->caps = deviso_get_caps(dev, &caps);
  r->page_sizes = r->caps == 0 ? caps.page_sizes : 0;

  /* The RFC's example. */
  r->alloc = deviso_ctx_alloc(dev, sid);
  r->map = deviso_map(dev, sid, base, size);
  r->iova_to_phys = deviso_iova_to_phys(dev, sid, (uint64_t)base + 0x10, &r->pa);
  r->map_iova = deviso_map_iova(dev, sid, 0x100000, (uint64_t)base + size, 0x1000,
                                DEVISO_PERM_READ | DEVISO_ATTR_NORMAL_NC);
  r->unmap_iova = deviso_unmap_iova(dev, sid, 0x100000, 0x1000);
  r->unmap = deviso_unmap(dev, sid, base, size);
  r->fault_count = deviso_fault_count(dev, sid, &r->faults);
  r->free_ctx = deviso_ctx_free(dev, sid);
  r->unbind = deviso_device_unbind(dev);

  fault.sid = sid;
  fault.reason = DEVISO_FAULT_TRANSLATION;
  fault.flags = DEVISO_FAULT_WRITE | DEVISO_FAULT_ADDR_VALID;
  fault.raw_type = 0x10;
  fault.iova = base;
  fault.ipa = 0;
  fault.unit = unit;
  r->format_len = deviso_fault_format(&fault, r->line, sizeof(r->line));
}
