// A DMA-engine driver for QEMU's `edu` PCI device (1234:11e8), behind Zephyr's DMA API
// (deviso/port/dma.h): dma_config() with a list of struct dma_block_config, dma_start(),
// dma_stop(), dma_get_status() and the completion callback, C-callable through the struct
// device it is attached to.
//
// The engine: edu copies between RAM (by PCI bus address) and its 4 KiB internal buffer at
// kBufferAddr (edu_hw.h). The directions map onto it as follows:
//   MEMORY_TO_PERIPHERAL  RAM source_address -> dest_address inside the edu buffer: one transfer
//   PERIPHERAL_TO_MEMORY  source_address inside the edu buffer -> RAM dest_address: one transfer
//   MEMORY_TO_MEMORY      RAM -> RAM, in chunks of kCopyChunkBytes, each two transfers through
//                         the start of the buffer (which it therefore overwrites)
//
// Isolation: every RAM range of a block is made reachable through drivers::DmaMapper for that
// block only: MapForDevice() (whole pages around the range) before the first transfer,
// UnmapForDevice() once the block is done, failed or timed out, and the engine is programmed
// with the device addresses the mapper returned, never with the caller's physical addresses.
// Under deviso the device can therefore reach a caller's buffer only while its transfer runs.
// Note: the pages containing a range are mapped whole, so a buffer should not share a page
// with memory the device must never see (the pool's buffers never do), unless the mapper
// bounces (DmaMapper::bounces_sub_page(), dma::ContextDmaMapper with a BounceConfig): then the
// exact range is handed to it and only its bounce pages are mapped.
//
// Validation: every range is checked before the hardware is touched. A device-buffer range
// outside [kBufferAddr, kBufferAddr + kUsableBufferBytes) is refused: QEMU's edu.c (up to 8.2)
// stops the whole emulator (hw_error) on a transfer that leaves the buffer, and also on one
// that ends exactly at its end, which is why its last byte is never used. RAM device addresses
// are checked against the device's DMA mask (EduOptions::dma_mask, QEMU's `dma_mask`
// property): QEMU would silently truncate a wider address ("EDU: clamping").
//
// Completion is polled: dma_start() runs the whole list and returns when it is done; the
// callback runs in dma_start()'s context, on the calling thread, before dma_start() returns
// (per block with complete_callback_en, then once with DMA_STATUS_COMPLETE, or once with the
// negative error). Every wait has a deadline (EduOptions::transfer_timeout_ns per transfer).
// edu's interrupt is not used. Not internally locked: one caller at a time, as AHCI.

#ifndef DEVISO_SRC_DRIVERS_EDU_EDU_H_
#define DEVISO_SRC_DRIVERS_EDU_EDU_H_

#include <cstddef>
#include <cstdint>

#include "core/mmio.h"
#include "deviso/port/device.h"
#include "deviso/port/dma.h"
#include "deviso/status.h"
#include "drivers/dma_allocator.h"
#include "drivers/edu/edu_hw.h"

namespace deviso::drivers::edu {

struct EduOptions {
  // The device's DMA mask: QEMU's default (28 bits) unless `-device edu,dma_mask=...` says
  // otherwise. Must be of the form 2^n - 1.
  uint64_t dma_mask = kDefaultDmaMask;
  // Longest one engine transfer may take (QEMU runs each 100 ms of virtual time after its
  // command was written).
  uint64_t transfer_timeout_ns = 2'000'000'000;
};

class EduDma {
 public:
  static constexpr uint32_t kChannels = 1;  // one engine
  static constexpr size_t kMaxBlocks = 16;  // blocks per dma_config() list
  // Bytes of the device buffer a transfer may use (see the header comment: not the last one).
  static constexpr uint64_t kUsableBufferBytes = kBufferBytes - 1;
  // A MEMORY_TO_MEMORY block moves through the buffer in pieces of this size.
  static constexpr uint32_t kCopyChunkBytes = 2048;

  // `bar0` (the device's BAR0) and `mapper` must outlive the driver.
  EduDma(Mmio& bar0, DmaMapper& mapper, const EduOptions& options = {});
  // A driver without its DMA-driver hook yet: it probes and configures, but dma_start() gives
  // -EINVAL until SetMapper() attaches one. For a device whose isolation context the
  // application creates after the driver came up (the seed README's flow: device_get_binding(),
  // then deviso_ctx_alloc(); the hook over that context can only exist after it).
  explicit EduDma(Mmio& bar0, const EduOptions& options = {});
  EduDma(const EduDma&) = delete;
  EduDma& operator=(const EduDma&) = delete;

  // Checks that `bar0` is an edu: the identification register's 0xed signature and the
  // liveness register's inversion. Errors: -ENOENT (not an edu), -EINVAL (options.dma_mask not
  // 2^n - 1). Changes nothing but the liveness register.
  Status Probe();

  // Attaches the DMA-driver hook every later transfer maps through (nullptr detaches it, e.g.
  // before the context under the hook is freed); `mapper` must outlive its use. Between
  // transfers only: -EBUSY (no change) while a transfer runs (from its own callback) or the
  // engine is still busy after a timeout.
  Status SetMapper(DmaMapper* mapper);

  // Points dev.api at this driver's struct dma_driver_api and dev.data at the driver, so that
  // the C calls of deviso/port/dma.h reach it; callbacks receive &dev.
  void AttachTo(struct device& dev);
  // The driver behind a struct device AttachTo() prepared, or nullptr.
  static EduDma* FromDevice(const struct device* dev);

  // dma_config(): validates and copies the list (the caller's blocks may go away afterwards).
  // Touches no hardware. Errors, with the previous configuration kept:
  //   -EINVAL   channel >= kChannels; null config or head_block; block_count 0, above
  //             kMaxBlocks or longer than the next_block chain; a block of size 0; a RAM range
  //             that wraps; a device-buffer range outside the usable buffer; overlapping
  //             MEMORY_TO_MEMORY source and destination
  //   -ENOTSUP  a direction other than the three above; scatter/gather, reload, cyclic, or
  //             an address adjustment other than increment
  //   -EBUSY    a transfer is running (also: the engine is still busy after a timeout)
  Status Configure(uint32_t channel, const struct dma_config& config);

  // dma_start(): runs the configured list, block after block, and returns when it is done.
  // Validation errors, with nothing mapped or started and no callback: -EINVAL (channel, not
  // configured, or no DMA-driver hook attached), -EBUSY (running: called from its own
  // callback, or the engine still busy after a timeout). Errors once the list runs (blocks done
  // before stay done; the callback gets the same error unless error_callback_dis; every mapping is
  // released):
  //   -ERANGE     a device address the mapper returned exceeds dma_mask (checked before the
  //               block starts)
  //   -ETIMEDOUT  a transfer did not complete; the engine may still finish it later, but its
  //               RAM is unmapped already, so under an IOMMU the late access is blocked
  //   the mapper's errors (-EINVAL, -EEXIST, -ENOMEM, -ETIMEDOUT, -EIO)
  // Calling it again after completion runs the same list again.
  Status Start(uint32_t channel);

  // dma_stop(): transfers never outlive dma_start(), so this only checks the engine.
  // Errors: -EINVAL (channel), -EBUSY (the engine is still running a timed-out transfer: edu
  // has no abort).
  Status Stop(uint32_t channel);

  // dma_get_status(). Errors: -EINVAL (channel).
  Status GetStatus(uint32_t channel, struct dma_status& status);

  // Transfers issued to the engine since construction, and those that timed out.
  uint64_t transfers() const { return transfers_; }
  uint64_t timeouts() const { return timeouts_; }

 private:
  struct Block {
    uint64_t src = 0;
    uint64_t dst = 0;
    uint32_t size = 0;
  };
  // RAM made reachable for one block: up to two mappings.
  struct BlockMappings {
    DmaMapping m[2];
    size_t count = 0;
  };

  Status ValidateBlock(uint32_t direction, const struct dma_block_config& b) const;
  bool EngineRunning();
  Result<uint64_t> MapRange(uint64_t pa, uint64_t size, DmaDirection direction,
                            BlockMappings& maps);
  Status MapBlock(const Block& b, uint64_t& src_da, uint64_t& dst_da, BlockMappings& maps);
  Status UnmapBlock(BlockMappings& maps);
  Status CheckMask(uint64_t device_addr, uint64_t size) const;
  Status Transfer(uint64_t src, uint64_t dst, uint64_t count, bool to_ram);
  Status RunBlock(const Block& b);
  void Notify(int status);

  Mmio& bar_;
  DmaMapper* mapper_ = nullptr;  // the DMA-driver hook; null: none attached yet
  EduOptions options_;
  const struct device* dev_ = nullptr;

  Block blocks_[kMaxBlocks];
  size_t block_count_ = 0;
  uint32_t direction_ = MEMORY_TO_MEMORY;
  bool configured_ = false;
  bool per_block_callback_ = false;
  bool error_callback_ = true;
  dma_callback_t callback_ = nullptr;
  void* user_data_ = nullptr;

  bool running_ = false;  // inside Start()
  bool stuck_ = false;    // a transfer timed out and the engine was still busy
  uint64_t pending_ = 0;
  uint64_t total_copied_ = 0;
  uint64_t transfers_ = 0;
  uint64_t timeouts_ = 0;
};

}  // namespace deviso::drivers::edu

#endif  // DEVISO_SRC_DRIVERS_EDU_EDU_H_
