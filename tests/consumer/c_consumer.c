/* An out-of-tree C program on deviso's C ABI (the seed's flow): a context for the device's
 * StreamID, one page mapped, a device write that lands, the page unmapped, the same write
 * refused and counted as a fault, the context freed. The board (board.cc) set up the unit. */
#include <errno.h>
#include <stdio.h>

#include "board.h"
#include "deviso/deviso.h"

#define CHECK(cond)                                       \
  do {                                                    \
    if (!(cond)) {                                        \
      fprintf(stderr, "c_consumer: failed: %s\n", #cond); \
      return 1;                                           \
    }                                                     \
  } while (0)

int main(void) {
  CHECK(board_init() == 0);
  void* cpu = NULL;
  const uint64_t pa = board_alloc_page(&cpu);
  CHECK(pa != 0);

  /* Default-deny: with no context the device reaches nothing. */
  CHECK(board_device_write32(pa, 0x11111111u) == -EIO);
  CHECK(board_read32(pa) == 0);

  CHECK(deviso_ctx_alloc(board_dev, BOARD_SID) == 0);
  CHECK(deviso_map(board_dev, BOARD_SID, (uintptr_t)pa, 4096) == 0);
  CHECK(deviso_map(board_dev, BOARD_SID, (uintptr_t)pa, 4096) == -EEXIST);
  CHECK(board_device_write32(pa + 8, 0xc0ffee00u) == 0);
  CHECK(board_read32(pa + 8) == 0xc0ffee00u);

  CHECK(deviso_unmap(board_dev, BOARD_SID, (uintptr_t)pa, 4096) == 0);
  CHECK(board_device_write32(pa + 8, 0xbad0bad0u) == -EIO);
  CHECK(board_read32(pa + 8) == 0xc0ffee00u); /* untouched */
  uint64_t faults = 0;
  CHECK(deviso_fault_count(board_dev, BOARD_SID, &faults) == 0);
  CHECK(faults >= 1);

  CHECK(deviso_ctx_free(board_dev, BOARD_SID) == 0);
  CHECK(deviso_ctx_free(board_dev, BOARD_SID) == -ENOENT);
  printf("c_consumer: ok (%llu fault(s) reported)\n", (unsigned long long)faults);
  return 0;
}
