/* The C ABI from C in the cross-compiled consumer (built, not run). */
#include "deviso/deviso.h"

int consumer_map_one_page(const struct device* dev, uint32_t sid, uintptr_t pa) {
  int err = deviso_ctx_alloc(dev, sid);
  if (err != 0) return err;
  return deviso_map(dev, sid, pa, 4096);
}
