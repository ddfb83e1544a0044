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

/* The direction of a channel (dma_config.channel_direction). */
enum dma_channel_direction {
  MEMORY_TO_MEMORY = 0x0,   /* memory to memory */
  MEMORY_TO_PERIPHERAL,     /* memory to a peripheral */
  PERIPHERAL_TO_MEMORY,     /* a peripheral to memory */
  PERIPHERAL_TO_PERIPHERAL, /* a peripheral to a peripheral */
  HOST_TO_MEMORY,           /* the host to memory (PCIe endpoints) */
  MEMORY_TO_HOST,           /* memory to the host (PCIe endpoints) */
};

/* Values of source_addr_adj / dest_addr_adj. */
enum dma_addr_adj {
  DMA_ADDR_ADJ_INCREMENT, /* the address increases through the block */
  DMA_ADDR_ADJ_DECREMENT, /* the address decreases through the block */
  DMA_ADDR_ADJ_NO_CHANGE, /* the same address for every transfer (a FIFO) */
};

/* One block of a transfer list. */
struct dma_block_config {
  uint64_t source_address;             /* block start at the source */
  uint64_t dest_address;               /* block start at the destination */
  uint32_t source_gather_interval;     /* bytes between gathered source pieces */
  uint32_t dest_scatter_interval;      /* bytes between scattered destination pieces */
  uint16_t dest_scatter_count;         /* destination pieces per block */
  uint16_t source_gather_count;        /* source pieces per block */
  uint32_t block_size;                 /* bytes in this block */
  struct dma_block_config* next_block; /* the next block of the list, block_count in all */
  uint32_t source_gather_en : 1;       /* 1: gather the source */
  uint32_t dest_scatter_en : 1;        /* 1: scatter to the destination */
  uint32_t source_addr_adj : 2;        /* enum dma_addr_adj */
  uint32_t dest_addr_adj : 2;          /* enum dma_addr_adj */
  uint32_t source_reload_en : 1;       /* 1: reload the source address at the end of the block */
  uint32_t dest_reload_en : 1;         /* 1: reload the destination address at the block's end */
  uint32_t fifo_mode_control : 4;      /* the controller's FIFO mode (driver-specific) */
  uint32_t flow_control_mode : 1;      /* 0: source-paced, 1: destination-paced */
  uint32_t reserved : 19;              /* zero */
};

/* The `status` of a dma_callback_t: the whole list is done / one block of it is done. Errors
 * are negative errno values. */
#define DMA_STATUS_COMPLETE 0      /* the whole list is done */
#define DMA_STATUS_BLOCK 1         /* one block of the list is done */
#define DMA_STATUS_HALF_COMPLETE 2 /* half of the list is done */

/* Called on completion of the list (and of each block with complete_callback_en), or with a
 * negative errno on error (unless error_callback_dis). In which context it runs is the
 * driver's to document. */
typedef void (*dma_callback_t)(const struct device* dev, void* user_data, uint32_t channel,
                               int status);

/* A channel's configuration for dma_config(). */
struct dma_config {
  uint32_t dma_slot : 8;                  /* the peripheral's request line (driver-specific) */
  uint32_t channel_direction : 3;         /* enum dma_channel_direction */
  uint32_t half_complete_callback_en : 1; /* 1: a callback at half of the list too */
  uint32_t complete_callback_en : 1;      /* 1: a callback per block, not only for the list */
  uint32_t error_callback_dis : 1;        /* 1: no callback on error */
  uint32_t source_handshake : 1;          /* 0: hardware handshake at the source, 1: software */
  uint32_t dest_handshake : 1;         /* 0: hardware handshake at the destination, 1: software */
  uint32_t channel_priority : 4;       /* the channel's priority (driver-specific) */
  uint32_t source_chaining_en : 1;     /* 1: the source end triggers linked_channel */
  uint32_t dest_chaining_en : 1;       /* 1: the destination end triggers linked_channel */
  uint32_t linked_channel : 7;         /* the channel chained to this one */
  uint32_t cyclic : 1;                 /* 1: the list restarts at head_block when done */
  uint32_t reserved : 2;               /* zero */
  uint32_t source_data_size : 16;      /* bytes per source transfer */
  uint32_t dest_data_size : 16;        /* bytes per destination transfer */
  uint32_t source_burst_length : 16;   /* source transfers per burst */
  uint32_t dest_burst_length : 16;     /* destination transfers per burst */
  uint32_t block_count;                /* blocks in the list at head_block */
  struct dma_block_config* head_block; /* the first block */
  void* user_data;                     /* passed to dma_callback */
  dma_callback_t dma_callback;         /* optional */
};

/* What dma_get_status() reports of a channel. */
struct dma_status {
  bool busy;                      /* a transfer is in progress */
  enum dma_channel_direction dir; /* the configured direction */
  uint32_t pending_length;        /* bytes of the configured list not transferred yet */
  uint32_t free;                  /* free bytes of a cyclic buffer (0 otherwise) */
  uint32_t write_position;        /* write offset in a cyclic buffer (0 otherwise) */
  uint32_t read_position;         /* read offset in a cyclic buffer (0 otherwise) */
  uint64_t total_copied;          /* bytes transferred by the last dma_start() */
};

/* What a driver implements; null entries make the call return -ENOSYS. */
struct dma_driver_api {
  /* dma_config() */
  int (*config)(const struct device* dev, uint32_t channel, struct dma_config* config);
  /* dma_reload() */
  int (*reload)(const struct device* dev, uint32_t channel, uint64_t src, uint64_t dst,
                size_t size);
  /* dma_start() */
  int (*start)(const struct device* dev, uint32_t channel);
  /* dma_stop() */
  int (*stop)(const struct device* dev, uint32_t channel);
  /* dma_suspend() */
  int (*suspend)(const struct device* dev, uint32_t channel);
  /* dma_resume() */
  int (*resume)(const struct device* dev, uint32_t channel);
  /* dma_get_status() */
  int (*get_status)(const struct device* dev, uint32_t channel, struct dma_status* status);
};

/* The struct dma_driver_api of `dev` (its `api` member). */
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
