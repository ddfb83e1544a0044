// Simulated physical memory for host tests of drivers and of the hardware models.
//
// A host buffer stands for RAM at a made-up physical base. The CPU reaches it through host
// pointers (Cpu(), PaOf()); a modelled unit (an IOMMU, a device) reaches it by physical
// address through the Unit*() calls. A non-coherent unit sees only what the CPU cleaned to
// the point of coherency: the memory keeps a second copy ("PoC") that Clean() updates and
// Invalidate() reads back, so a missing cache-maintenance call fails a host test.
//
// The buffer is carved into: a DMA region (DmaMemory: queues, stream tables, context
// descriptors, data buffers) and translation-table pools for 4 KiB and 64 KiB granules.

#ifndef DEVISO_SRC_TESTING_SIM_MEMORY_H_
#define DEVISO_SRC_TESTING_SIM_MEMORY_H_

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "core/dma_memory.h"
#include "deviso/assert.h"
#include "pgtable/table_pool.h"

namespace deviso::testing {

class SimPhysMemory {
 public:
  struct Options {
    Paddr base = 0x8000'0000;
    size_t dma_bytes = 4u << 20;         // DmaMemory region
    size_t tables_4k_bytes = 4u << 20;   // 4 KiB-granule table pool
    size_t tables_64k_bytes = 2u << 20;  // 64 KiB-granule table pool
    bool coherent = true;
  };

  explicit SimPhysMemory(const Options& options)
      : options_(options),
        size_(options.dma_bytes + options.tables_4k_bytes + options.tables_64k_bytes),
        cpu_(static_cast<uint8_t*>(std::aligned_alloc(1u << 16, size_))),
        poc_(options.coherent ? nullptr
                              : static_cast<uint8_t*>(std::aligned_alloc(1u << 16, size_))),
        dma_(*this),
        bitmap_4k_((options.tables_4k_bytes / 4096 + 63) / 64, 0),
        bitmap_64k_((options.tables_64k_bytes / 65536 + 63) / 64, 0),
        counts_4k_(options.tables_4k_bytes / 4096),
        counts_64k_(options.tables_64k_bytes / 65536),
        tables_4k_(*this, options.dma_bytes, 4096, bitmap_4k_.data(), counts_4k_.data()),
        tables_64k_(*this, options.dma_bytes + options.tables_4k_bytes, 65536, bitmap_64k_.data(),
                    counts_64k_.data()) {
    DEVISO_ASSERT(options.base % (1u << 16) == 0);
    std::memset(cpu_.get(), 0, size_);
    if (poc_) std::memset(poc_.get(), 0, size_);
    dma_pages_.assign(options.dma_bytes / 4096, false);
  }

  Paddr base() const { return options_.base; }
  size_t size() const { return size_; }
  bool coherent() const { return options_.coherent; }
  bool Contains(Paddr pa, size_t n) const {
    return pa >= options_.base && n <= size_ && pa - options_.base <= size_ - n;
  }

  // ---- CPU side ----
  void* Cpu(Paddr pa) {
    DEVISO_ASSERT(Contains(pa, 1));
    return cpu_.get() + (pa - options_.base);
  }
  Paddr PaOf(const void* p) const {
    const auto* b = static_cast<const uint8_t*>(p);
    DEVISO_ASSERT(b >= cpu_.get() && b < cpu_.get() + size_);
    return options_.base + static_cast<Paddr>(b - cpu_.get());
  }
  // CPU -> PoC. No effect when coherent.
  void Clean(const void* p, size_t n) {
    if (!poc_) return;
    const size_t off = static_cast<size_t>(PaOf(p) - options_.base);
    CopyWords(poc_.get() + off, cpu_.get() + off, n);
    ++cleans_;
  }
  // PoC -> CPU. No effect when coherent.
  void Invalidate(const void* p, size_t n) {
    if (!poc_) return;
    const size_t off = static_cast<size_t>(PaOf(p) - options_.base);
    CopyWords(cpu_.get() + off, poc_.get() + off, n);
  }
  uint64_t cleans() const { return cleans_; }

  // ---- Unit side: what an IOMMU or a device sees ----
  // Single-copy-atomic 64-bit accesses (descriptors, queue entries). `pa` 8-byte aligned.
  bool UnitRead64(Paddr pa, uint64_t* value) {
    if (!Contains(pa, 8) || pa % 8 != 0) return false;
    *value = __atomic_load_n(reinterpret_cast<uint64_t*>(UnitView(pa)), __ATOMIC_RELAXED);
    return true;
  }
  bool UnitWrite64(Paddr pa, uint64_t value) {
    if (!Contains(pa, 8) || pa % 8 != 0) return false;
    __atomic_store_n(reinterpret_cast<uint64_t*>(UnitView(pa)), value, __ATOMIC_RELAXED);
    return true;
  }
  // A ring index published with release / read with acquire (a device model's side of a
  // queue's producer and consumer indexes): the host stand-in for the barriers around them, so
  // that ThreadSanitizer sees the data before an index ordered before the index. False when
  // outside RAM or unaligned.
  bool UnitStore16Release(Paddr pa, uint16_t value) {
    if (!Contains(pa, 2) || pa % 2 != 0) return false;
    __atomic_store_n(reinterpret_cast<uint16_t*>(UnitView(pa)), value, __ATOMIC_RELEASE);
    return true;
  }
  bool UnitLoad16Acquire(Paddr pa, uint16_t* value) {
    if (!Contains(pa, 2) || pa % 2 != 0) return false;
    *value = __atomic_load_n(reinterpret_cast<const uint16_t*>(UnitView(pa)), __ATOMIC_ACQUIRE);
    return true;
  }
  // Byte accesses (DMA data). False when outside RAM: an external abort.
  bool UnitRead(Paddr pa, void* buf, size_t n) {
    if (!Contains(pa, n)) return false;
    CopyBytes(static_cast<uint8_t*>(buf), UnitView(pa), n);
    return true;
  }
  bool UnitWrite(Paddr pa, const void* buf, size_t n) {
    if (!Contains(pa, n)) return false;
    CopyBytes(UnitView(pa), static_cast<const uint8_t*>(buf), n);
    return true;
  }

  // ---- Allocators ----
  DmaMemory& dma() { return dma_; }
  pgtable::TablePool& tables_4k() { return tables_4k_; }
  pgtable::TablePool& tables_64k() { return tables_64k_; }
  size_t dma_free_pages() const {
    size_t n = 0;
    for (bool used : dma_pages_) n += used ? 0 : 1;
    return n;
  }

 private:
  uint8_t* UnitView(Paddr pa) { return (poc_ ? poc_.get() : cpu_.get()) + (pa - options_.base); }
  // Copies with relaxed atomic accesses, so host threads racing on the same memory (a
  // device thread and the CPU) are defined behaviour, as on hardware.
  static void CopyBytes(uint8_t* dst, const uint8_t* src, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      __atomic_store_n(&dst[i], __atomic_load_n(&src[i], __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    }
  }
  static void CopyWords(uint8_t* dst, const uint8_t* src, size_t n) {
    if ((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src) | n) % 8 != 0) {
      CopyBytes(dst, src, n);
      return;
    }
    auto* d = reinterpret_cast<uint64_t*>(dst);
    const auto* s = reinterpret_cast<const uint64_t*>(src);
    for (size_t i = 0; i < n / 8; ++i) {
      __atomic_store_n(&d[i], __atomic_load_n(&s[i], __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    }
  }

  class Dma final : public DmaMemory {
   public:
    explicit Dma(SimPhysMemory& m) : m_(m) {}
    Result<DmaBuffer> Allocate(size_t size, size_t align) override {
      if (size == 0 || (align & (align - 1)) != 0) return Status::InvalidArgument();
      std::lock_guard<std::mutex> lock(m_.mutex_);
      const size_t pages = (size + 4095) / 4096;
      const size_t step = align > 4096 ? align / 4096 : 1;
      for (size_t first = 0; first + pages <= m_.dma_pages_.size(); first += step) {
        bool free = true;
        for (size_t i = first; i < first + pages && free; ++i) free = !m_.dma_pages_[i];
        if (!free) continue;
        for (size_t i = first; i < first + pages; ++i) m_.dma_pages_[i] = true;
        const Paddr pa = m_.options_.base + first * 4096;
        void* cpu = m_.Cpu(pa);
        std::memset(cpu, 0, pages * 4096);
        m_.Clean(cpu, pages * 4096);
        return DmaBuffer{cpu, pa, size};
      }
      return Status::NoMemory();
    }
    void Free(const DmaBuffer& b) override {
      std::lock_guard<std::mutex> lock(m_.mutex_);
      const size_t first = static_cast<size_t>((b.pa - m_.options_.base) / 4096);
      for (size_t i = first; i < first + (b.size + 4095) / 4096; ++i) {
        DEVISO_ASSERT(m_.dma_pages_[i]);
        m_.dma_pages_[i] = false;
      }
    }
    void Clean(const void* p, size_t n) override { m_.Clean(p, n); }
    void Invalidate(const void* p, size_t n) override { m_.Invalidate(p, n); }

   private:
    SimPhysMemory& m_;
  };

  class Tables final : public pgtable::TablePool {
   public:
    Tables(SimPhysMemory& m, size_t offset, size_t granule, uint64_t* bitmap,
           pgtable::TableCounts* counts)
        : TablePool(m.cpu_.get() + offset, m.options_.base + offset, granule,
                    (offset == m.options_.dma_bytes ? m.options_.tables_4k_bytes
                                                    : m.options_.tables_64k_bytes) /
                        granule,
                    bitmap, counts),
          m_(m) {}
    void CleanToPoc(const void* p, size_t n) override { m_.Clean(p, n); }

   private:
    SimPhysMemory& m_;
  };

  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };

  Options options_;
  size_t size_;
  std::unique_ptr<uint8_t[], FreeDeleter> cpu_;
  std::unique_ptr<uint8_t[], FreeDeleter> poc_;
  std::mutex mutex_;
  std::vector<bool> dma_pages_;
  uint64_t cleans_ = 0;
  Dma dma_;
  std::vector<uint64_t> bitmap_4k_;
  std::vector<uint64_t> bitmap_64k_;
  std::vector<pgtable::TableCounts> counts_4k_;
  std::vector<pgtable::TableCounts> counts_64k_;
  Tables tables_4k_;
  Tables tables_64k_;
};

}  // namespace deviso::testing

#endif  // DEVISO_SRC_TESTING_SIM_MEMORY_H_
