/* The interface between c_api_test.cc and c_api_c_program.c, which is compiled as C. */
#ifndef DEVISO_SRC_CORE_C_API_C_PROGRAM_H_
#define DEVISO_SRC_CORE_C_API_C_PROGRAM_H_

#include <stddef.h>
#include <stdint.h>

#include "deviso/deviso.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What each call of the C program returned. */
struct deviso_c_program_results {
  int bind;
  int caps;
  int alloc;
  int map;
  int iova_to_phys;
  int map_iova;
  int unmap_iova;
  int unmap;
  int fault_count;
  int free_ctx;
  int unbind;
  uint64_t pa;
  uint64_t faults;
  uint64_t page_sizes;
  int format_len;
  char line[160];
};

/* Binds `dev` to `unit` with `sid`, then runs the RFC's example: alloc, map `size` bytes at
 * `base`, translate, unmap, free; plus the extensions in between. */
void deviso_c_program_run(const struct device* dev, const char* unit, uint32_t sid, uintptr_t base,
                          size_t size, struct deviso_c_program_results* results);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DEVISO_SRC_CORE_C_API_C_PROGRAM_H_ */
