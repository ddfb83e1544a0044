/*
 * The DMA-controller API of Zephyr (include/zephyr/drivers/dma.h) for deviso's host and
 * bare-metal ports, so that a program written against Zephyr's API (the seed README's
 * `device_get_binding("DMA_0")` example) runs unchanged. On Zephyr the OS's own header is used
 * instead.
 *
 * Same names, fields and semantics as Zephyr's header with CONFIG_DMA_64BIT (64-bit
 * addresses); the subset a driver may leave unimplemented returns -ENOSYS, as in Zephyr. A
 * driver fills a struct dma_driver_api and points its struct device's `api` at it
 * (deviso/port/device.h).
 *
 * Addresses in struct dma_block_config are what the CPU calls physical addresses (equal to
 * the CPU's pointers under the bare-metal port's identity map), or addresses inside the
 * peripheral for the peripheral side of a transfer. A driver behind an IOMMU turns the memory
 * side into device addresses itself (drivers::DmaMapper), so its callers never see IOVAs.
 */
#ifndef DEVISO_PORT_DMA_H_
#define DEVISO_PORT_DMA_H_

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deviso/port/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Zephyr's names and C idioms (lower-case types, NULL), on purpose: source compatibility. */
/* NOLINTBEGIN(readability-identifier-naming, modernize-use-nullptr, modernize-use-using) */

enum dma_channel_direction {
  MEMORY_TO_MEMORY = 0x0,
  MEMORY_TO_PERIPHERAL,
  PERIPHERAL_TO_MEMORY,
  PERIPHERAL_TO_PERIPHERAL,
  HOST_TO_MEMORY,
  MEMORY_TO_HOST,
};

/* Values of source_addr_adj / dest_addr_adj. */
enum dma_addr_adj {
  DMA_ADDR_ADJ_INCREMENT,
  DMA_ADDR_ADJ_DECREMENT,
  DMA_ADDR_ADJ_NO_CHANGE,
};

/* One block of a transfer list. */
struct dma_block_config {
  uint64_t source_address; /* block start at the source */
  uint64_t dest_address;   /* block start at the destination */
  uint32_t source_gather_interval;
  uint32_t dest_scatter_interval;
  uint16_t dest_scatter_count;
  uint16_t source_gather_count;
  uint32_t block_size;                 /* bytes in this block */
  struct dma_block_config* next_block; /* the next block of the list, block_count in all */
  uint32_t source_gather_en : 1;
  uint32_t dest_scatter_en : 1;
  uint32_t source_addr_adj : 2; /* enum dma_addr_adj */
  uint32_t dest_addr_adj : 2;
  uint32_t source_reload_en : 1;
  uint32_t dest_reload_en : 1;
  uint32_t fifo_mode_control : 4;
  uint32_t flow_control_mode : 1;
  uint32_t reserved : 19;
};

/* The `status` of a dma_callback_t: the whole list is done / one block of it is done. Errors
 * are negative errno values. */
#define DMA_STATUS_COMPLETE 0
#define DMA_STATUS_BLOCK 1
#define DMA_STATUS_HALF_COMPLETE 2

/* Called on completion of the list (and of each block with complete_callback_en), or with a
 * negative errno on error (unless error_callback_dis). In which context it runs is the
 * driver's to document. */
typedef void (*dma_callback_t)(const struct device* dev, void* user_data, uint32_t channel,
                               int status);

struct dma_config {
  uint32_t dma_slot : 8;
  uint32_t channel_direction : 3; /* enum dma_channel_direction */
  uint32_t half_complete_callback_en : 1;
  uint32_t complete_callback_en : 1; /* 1: a callback per block, not only for the list */
  uint32_t error_callback_dis : 1;   /* 1: no callback on error */
  uint32_t source_handshake : 1;
  uint32_t dest_handshake : 1;
  uint32_t channel_priority : 4;
  uint32_t source_chaining_en : 1;
  uint32_t dest_chaining_en : 1;
  uint32_t linked_channel : 7;
  uint32_t cyclic : 1;
  uint32_t reserved : 2;
  uint32_t source_data_size : 16;
  uint32_t dest_data_size : 16;
  uint32_t source_burst_length : 16;
  uint32_t dest_burst_length : 16;
  uint32_t block_count;                /* blocks in the list at head_block */
  struct dma_block_config* head_block; /* the first block */
  void* user_data;                     /* passed to dma_callback */
  dma_callback_t dma_callback;         /* optional */
};

struct dma_status {
  bool busy; /* a transfer is in progress */
  enum dma_channel_direction dir;
  uint32_t pending_length; /* bytes of the configured list not transferred yet */
  uint32_t free;
  uint32_t write_position;
  uint32_t read_position;
  uint64_t total_copied; /* bytes transferred by the last dma_start() */
};

/* What a driver implements; null entries make the call return -ENOSYS. */
struct dma_driver_api {
  int (*config)(const struct device* dev, uint32_t channel, struct dma_config* config);
  int (*reload)(const struct device* dev, uint32_t channel, uint64_t src, uint64_t dst,
                size_t size);
  int (*start)(const struct device* dev, uint32_t channel);
  int (*stop)(const struct device* dev, uint32_t channel);
  int (*suspend)(const struct device* dev, uint32_t channel);
  int (*resume)(const struct device* dev, uint32_t channel);
  int (*get_status)(const struct device* dev, uint32_t channel, struct dma_status* status);
};

#ifdef __cplusplus
#define DEVISO_DMA_API_OF(dev) (static_cast<const struct dma_driver_api*>((dev)->api))
#else
#define DEVISO_DMA_API_OF(dev) ((const struct dma_driver_api*)(dev)->api)
#endif

/* Zephyr names the function like the struct; in C++ the function hides the struct's implicit
 * constructor (GCC's -Wshadow), which is Zephyr's API and harmless: C++ callers write
 * `struct dma_config`. */
#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#endif
/* Configures `channel` for the transfer list config->head_block. Returns 0 or a negative errno
 * (the driver's; -ENOSYS if it has no config). */
static inline int dma_config(const struct device* dev, uint32_t channel,
                             struct dma_config* config) {
  const struct dma_driver_api* api = DEVISO_DMA_API_OF(dev);
  return api->config != NULL ? api->config(dev, channel, config) : -ENOSYS;
}

#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* Reloads the single block of a configured channel with new addresses and size. */
static inline int dma_reload(const struct device* dev, uint32_t channel, uint64_t src, uint64_t dst,
                             size_t size) {
  const struct dma_driver_api* api = DEVISO_DMA_API_OF(dev);
  return api->reload != NULL ? api->reload(dev, channel, src, dst, size) : -ENOSYS;
}

/* Starts the configured transfer of `channel`. */
static inline int dma_start(const struct device* dev, uint32_t channel) {
  const struct dma_driver_api* api = DEVISO_DMA_API_OF(dev);
  return api->start != NULL ? api->start(dev, channel) : -ENOSYS;
}

/* Stops the transfer of `channel`; stopping a stopped channel succeeds. */
static inline int dma_stop(const struct device* dev, uint32_t channel) {
  const struct dma_driver_api* api = DEVISO_DMA_API_OF(dev);
  return api->stop != NULL ? api->stop(dev, channel) : -ENOSYS;
}

static inline int dma_suspend(const struct device* dev, uint32_t channel) {
  const struct dma_driver_api* api = DEVISO_DMA_API_OF(dev);
  return api->suspend != NULL ? api->suspend(dev, channel) : -ENOSYS;
}

static inline int dma_resume(const struct device* dev, uint32_t channel) {
  const struct dma_driver_api* api = DEVISO_DMA_API_OF(dev);
  return api->resume != NULL ? api->resume(dev, channel) : -ENOSYS;
}

/* The state of `channel` in *status. */
static inline int dma_get_status(const struct device* dev, uint32_t channel,
                                 struct dma_status* status) {
  const struct dma_driver_api* api = DEVISO_DMA_API_OF(dev);
  return api->get_status != NULL ? api->get_status(dev, channel, status) : -ENOSYS;
}

/* NOLINTEND(readability-identifier-naming, modernize-use-nullptr, modernize-use-using) */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DEVISO_PORT_DMA_H_ */
