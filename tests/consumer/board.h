/* The consumer's "board": what platform code does before drivers run (registers an isolation
 * unit and binds a device to its StreamID), here over deviso's host SMMUv3 model
 * (deviso::smmuv3_model) so that device DMA can be judged. C-callable: the C program uses it. */
#ifndef DEVISO_CONSUMER_BOARD_H_
#define DEVISO_CONSUMER_BOARD_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct device;

/* The device the board binds, and its StreamID. */
extern const struct device* const board_dev;
#define BOARD_SID 0x10u

/* Probes and enables the SMMUv3 model, registers it with deviso's default registry (the one
 * behind deviso.h) and binds board_dev to BOARD_SID. 0 or a negative errno. */
int board_init(void);
/* A page of simulated RAM: its physical address, and its CPU pointer in *cpu. */
uint64_t board_alloc_page(void** cpu);
/* A DMA write of `value` by BOARD_SID at device address `iova`, through the SMMU: 0 if it
 * landed, -EIO if the SMMU terminated it. */
int board_device_write32(uint64_t iova, uint32_t value);
/* Reads 4 bytes of simulated RAM at physical `pa` (the memory, not the CPU's cache). */
uint32_t board_read32(uint64_t pa);

#ifdef __cplusplus
}
#endif

#endif /* DEVISO_CONSUMER_BOARD_H_ */
