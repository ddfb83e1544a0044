// edu DMA-engine driver (see edu.h). Register layout: QEMU docs/specs/edu.rst (edu_hw.h).

#include "drivers/edu/edu.h"

#include "core/barrier.h"
#include "deviso/port/os.h"

namespace deviso::drivers::edu {
namespace {

constexpr uint32_t kLiveProbe = 0x5eed0cafU;

bool InBuffer(uint64_t addr, uint64_t size) {
  if (addr < kBufferAddr) {
    return false;
  }
  const uint64_t offset = addr - kBufferAddr;
  return offset < EduDma::kUsableBufferBytes && size <= EduDma::kUsableBufferBytes - offset;
}

bool Wraps(uint64_t addr, uint64_t size) { return addr + (size - 1) < addr; }

int ApiConfig(const struct device* dev, uint32_t channel, struct dma_config* config) {
  EduDma* edu = EduDma::FromDevice(dev);
  if (edu == nullptr || config == nullptr) {
    return -EINVAL;
  }
  return edu->Configure(channel, *config).ToC();
}

int ApiStart(const struct device* dev, uint32_t channel) {
  EduDma* edu = EduDma::FromDevice(dev);
  return edu == nullptr ? -EINVAL : edu->Start(channel).ToC();
}

int ApiStop(const struct device* dev, uint32_t channel) {
  EduDma* edu = EduDma::FromDevice(dev);
  return edu == nullptr ? -EINVAL : edu->Stop(channel).ToC();
}

int ApiGetStatus(const struct device* dev, uint32_t channel, struct dma_status* status) {
  EduDma* edu = EduDma::FromDevice(dev);
  if (edu == nullptr || status == nullptr) {
    return -EINVAL;
  }
  return edu->GetStatus(channel, *status).ToC();
}

// No reload (a list is reconfigured with dma_config()), no suspend/resume (edu cannot pause).
constexpr struct dma_driver_api kApi = {
    ApiConfig, nullptr, ApiStart, ApiStop, nullptr, nullptr, ApiGetStatus,
};

}  // namespace

EduDma::EduDma(Mmio& bar0, DmaMapper& mapper, const EduOptions& options)
    : bar_(bar0), mapper_(&mapper), options_(options) {}

EduDma::EduDma(Mmio& bar0, const EduOptions& options) : bar_(bar0), options_(options) {}

Status EduDma::SetMapper(DmaMapper* mapper) {
  if (running_ || (stuck_ && EngineRunning())) {
    return Status::Busy();
  }
  mapper_ = mapper;
  return Status::Ok();
}

Status EduDma::Probe() {
  const uint64_t mask = options_.dma_mask;
  if (mask == 0 || (mask & (mask + 1)) != 0) {
    return Status::InvalidArgument();
  }
  const reg::Identification id = reg::Identification::ReadFrom(bar_);
  if (id.magic() != reg::Identification::kMagic) {
    return Status::NotFound();
  }
  reg::Liveness{}.set_value(kLiveProbe).WriteTo(bar_);
  if (reg::Liveness::ReadFrom(bar_).value() != ~kLiveProbe) {
    return Status::NotFound();
  }
  return Status::Ok();
}

void EduDma::AttachTo(struct device& dev) {
  dev.api = &kApi;
  dev.data = this;
  dev_ = &dev;
}

EduDma* EduDma::FromDevice(const struct device* dev) {
  if (dev == nullptr || dev->api != &kApi) {
    return nullptr;
  }
  return static_cast<EduDma*>(dev->data);
}

bool EduDma::EngineRunning() { return reg::DmaCommand::ReadFrom(bar_).start() != 0; }

Status EduDma::ValidateBlock(uint32_t direction, const struct dma_block_config& b) const {
  if (b.source_gather_en != 0 || b.dest_scatter_en != 0 || b.source_reload_en != 0 ||
      b.dest_reload_en != 0 || b.source_addr_adj != DMA_ADDR_ADJ_INCREMENT ||
      b.dest_addr_adj != DMA_ADDR_ADJ_INCREMENT) {
    return Status::NotSupported();
  }
  const uint64_t size = b.block_size;
  if (size == 0 || Wraps(b.source_address, size) || Wraps(b.dest_address, size)) {
    return Status::InvalidArgument();
  }
  switch (direction) {
    case MEMORY_TO_PERIPHERAL:
      return InBuffer(b.dest_address, size) ? Status::Ok() : Status::InvalidArgument();
    case PERIPHERAL_TO_MEMORY:
      return InBuffer(b.source_address, size) ? Status::Ok() : Status::InvalidArgument();
    case MEMORY_TO_MEMORY: {
      const bool overlap =
          b.source_address < b.dest_address + size && b.dest_address < b.source_address + size;
      return overlap ? Status::InvalidArgument() : Status::Ok();
    }
    default:
      return Status::NotSupported();
  }
}

Status EduDma::Configure(uint32_t channel, const struct dma_config& config) {
  if (channel >= kChannels) {
    return Status::InvalidArgument();
  }
  if (running_ || (stuck_ && EngineRunning())) {
    return Status::Busy();
  }
  const uint32_t direction = config.channel_direction;
  if (direction != MEMORY_TO_MEMORY && direction != MEMORY_TO_PERIPHERAL &&
      direction != PERIPHERAL_TO_MEMORY) {
    return Status::NotSupported();
  }
  if (config.cyclic != 0 || config.source_chaining_en != 0 || config.dest_chaining_en != 0) {
    return Status::NotSupported();
  }
  if (config.head_block == nullptr || config.block_count == 0 || config.block_count > kMaxBlocks) {
    return Status::InvalidArgument();
  }
  // Validate everything into a copy first: on error the previous configuration stays.
  Block blocks[kMaxBlocks];
  const struct dma_block_config* b = config.head_block;
  for (uint32_t i = 0; i < config.block_count; ++i) {
    if (b == nullptr) {
      return Status::InvalidArgument();
    }
    DEVISO_TRY(ValidateBlock(direction, *b));
    blocks[i] = Block{b->source_address, b->dest_address, b->block_size};
    b = b->next_block;
  }
  for (uint32_t i = 0; i < config.block_count; ++i) {
    blocks_[i] = blocks[i];
  }
  block_count_ = config.block_count;
  direction_ = direction;
  per_block_callback_ = config.complete_callback_en != 0;
  error_callback_ = config.error_callback_dis == 0;
  callback_ = config.dma_callback;
  user_data_ = config.user_data;
  pending_ = 0;
  total_copied_ = 0;
  configured_ = true;
  return Status::Ok();
}

Result<uint64_t> EduDma::MapRange(uint64_t pa, uint64_t size, DmaDirection direction,
                                  BlockMappings& maps) {
  const uint64_t page = mapper_->page_size();
  if (page == 0 || (page & (page - 1)) != 0 || pa + size > ~uint64_t{0} - page) {
    return Status::InvalidArgument();
  }
  if (mapper_->bounces_sub_page()) {
    // The mapper copies the exact range through pages of its own: nothing beside it is mapped.
    DEVISO_ASSIGN_OR_RETURN(const DmaMapping m,
                            mapper_->MapForDevice(pa, static_cast<size_t>(size), direction));
    maps.m[maps.count++] = m;
    return m.device_addr;
  }
  const uint64_t first = pa & ~(page - 1);
  const uint64_t end = (pa + size + page - 1) & ~(page - 1);
  DEVISO_ASSIGN_OR_RETURN(
      const DmaMapping m,
      mapper_->MapForDevice(first, static_cast<size_t>(end - first), direction));
  maps.m[maps.count++] = m;
  return m.device_addr + (pa - first);
}

Status EduDma::CheckMask(uint64_t device_addr, uint64_t size) const {
  if (Wraps(device_addr, size) || ((device_addr + size - 1) & ~options_.dma_mask) != 0) {
    return Status::OutOfRange();
  }
  return Status::Ok();
}

Status EduDma::MapBlock(const Block& b, uint64_t& src_da, uint64_t& dst_da, BlockMappings& maps) {
  Result<uint64_t> src = b.src;
  Result<uint64_t> dst = b.dst;
  const uint64_t page = mapper_->page_size();
  if (direction_ == MEMORY_TO_MEMORY) {
    // Source and destination may share pages (adjacent buffers): map the pages they cover
    // once, for both directions, since a page cannot be mapped twice.
    const uint64_t src_pages_end = (b.src + b.size + page - 1) & ~(page - 1);
    const uint64_t dst_pages_end = (b.dst + b.size + page - 1) & ~(page - 1);
    // (A bouncing mapper maps each range's own copy: they share no page.)
    const bool share = page != 0 && !mapper_->bounces_sub_page() &&
                       (b.src & ~(page - 1)) < dst_pages_end &&
                       (b.dst & ~(page - 1)) < src_pages_end;
    if (share) {
      const uint64_t lo = b.src < b.dst ? b.src : b.dst;
      const uint64_t hi = (b.src > b.dst ? b.src : b.dst) + b.size;
      const Result<uint64_t> base = MapRange(lo, hi - lo, DmaDirection::kBidirectional, maps);
      if (!base.ok()) {
        return base.status();
      }
      src = *base + (b.src - lo);
      dst = *base + (b.dst - lo);
    } else {
      src = MapRange(b.src, b.size, DmaDirection::kToDevice, maps);
      if (src.ok()) {
        dst = MapRange(b.dst, b.size, DmaDirection::kFromDevice, maps);
      }
    }
  } else if (direction_ == MEMORY_TO_PERIPHERAL) {
    src = MapRange(b.src, b.size, DmaDirection::kToDevice, maps);
  } else {
    dst = MapRange(b.dst, b.size, DmaDirection::kFromDevice, maps);
  }
  Status s = !src.ok() ? src.status() : !dst.ok() ? dst.status() : Status::Ok();
  if (s.ok() && direction_ != PERIPHERAL_TO_MEMORY) {
    s = CheckMask(*src, b.size);
  }
  if (s.ok() && direction_ != MEMORY_TO_PERIPHERAL) {
    s = CheckMask(*dst, b.size);
  }
  if (!s.ok()) {
    (void)UnmapBlock(maps);
    return s;
  }
  src_da = *src;
  dst_da = *dst;
  return Status::Ok();
}

Status EduDma::UnmapBlock(BlockMappings& maps) {
  Status first = Status::Ok();
  while (maps.count > 0) {
    const Status s = mapper_->UnmapForDevice(maps.m[--maps.count]);
    if (first.ok()) {
      first = s;
    }
  }
  return first;
}

// One engine operation (edu.rst "DMA controller"): source, destination, count, then the
// command; the start bit clears when the transfer is done.
Status EduDma::Transfer(uint64_t src, uint64_t dst, uint64_t count, bool to_ram) {
  reg::DmaSource{}.set_addr(src).WriteTo(bar_);
  reg::DmaDest{}.set_addr(dst).WriteTo(bar_);
  reg::DmaCount{}.set_bytes(count).WriteTo(bar_);
  DmaWriteBarrier();  // the source data before the command
  reg::DmaCommand{}
      .set_start(1)
      .set_direction(to_ram ? reg::DmaDirection::kToRam : reg::DmaDirection::kToDevice)
      .WriteTo(bar_);
  ++transfers_;
  const port::Deadline deadline = port::Deadline::In(options_.transfer_timeout_ns);
  while (EngineRunning()) {
    if (deadline.Expired() && EngineRunning()) {
      ++timeouts_;
      stuck_ = true;
      port::Log("edu: transfer 0x%llx -> 0x%llx (%llu bytes) timed out\n",
                static_cast<unsigned long long>(src), static_cast<unsigned long long>(dst),
                static_cast<unsigned long long>(count));
      return Status::TimedOut();
    }
  }
  DmaReadBarrier();  // the completion before the CPU reads what the device wrote
  return Status::Ok();
}

Status EduDma::RunBlock(const Block& b) {
  BlockMappings maps;
  uint64_t src = 0;
  uint64_t dst = 0;
  DEVISO_TRY(MapBlock(b, src, dst, maps));
  Status s = Status::Ok();
  switch (direction_) {
    case MEMORY_TO_PERIPHERAL:
      s = Transfer(src, b.dst, b.size, /*to_ram=*/false);
      break;
    case PERIPHERAL_TO_MEMORY:
      s = Transfer(b.src, dst, b.size, /*to_ram=*/true);
      break;
    default:
      for (uint64_t off = 0; off < b.size && s.ok(); off += kCopyChunkBytes) {
        const uint64_t n = b.size - off < kCopyChunkBytes ? b.size - off : kCopyChunkBytes;
        s = Transfer(src + off, kBufferAddr, n, /*to_ram=*/false);
        if (s.ok()) {
          s = Transfer(kBufferAddr, dst + off, n, /*to_ram=*/true);
        }
      }
      break;
  }
  const Status unmapped = UnmapBlock(maps);
  return s.ok() ? unmapped : s;
}

void EduDma::Notify(int status) {
  if (callback_ != nullptr) {
    callback_(dev_, user_data_, 0, status);
  }
}

Status EduDma::Start(uint32_t channel) {
  if (channel >= kChannels || !configured_ || mapper_ == nullptr) {
    return Status::InvalidArgument();
  }
  if (running_) {
    return Status::Busy();
  }
  if (stuck_) {
    if (EngineRunning()) {
      return Status::Busy();
    }
    stuck_ = false;
  }
  running_ = true;
  pending_ = 0;
  for (size_t i = 0; i < block_count_; ++i) {
    pending_ += blocks_[i].size;
  }
  total_copied_ = 0;
  for (size_t i = 0; i < block_count_; ++i) {
    const Status s = RunBlock(blocks_[i]);
    if (!s.ok()) {
      running_ = false;
      if (error_callback_) {
        Notify(s.ToC());
      }
      return s;
    }
    pending_ -= blocks_[i].size;
    total_copied_ += blocks_[i].size;
    if (per_block_callback_ && i + 1 < block_count_) {
      Notify(DMA_STATUS_BLOCK);
    }
  }
  running_ = false;  // before the callback, which may configure and start the next list
  Notify(DMA_STATUS_COMPLETE);
  return Status::Ok();
}

Status EduDma::Stop(uint32_t channel) {
  if (channel >= kChannels) {
    return Status::InvalidArgument();
  }
  if (EngineRunning()) {
    return Status::Busy();
  }
  stuck_ = false;
  return Status::Ok();
}

Status EduDma::GetStatus(uint32_t channel, struct dma_status& status) {
  if (channel >= kChannels) {
    return Status::InvalidArgument();
  }
  status = {};
  status.busy = running_ || EngineRunning();
  status.dir = static_cast<enum dma_channel_direction>(direction_);
  status.pending_length = static_cast<uint32_t>(pending_);
  status.total_copied = total_copied_;
  return Status::Ok();
}

}  // namespace deviso::drivers::edu
