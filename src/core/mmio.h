// The MMIO seam: a driver reaches its registers only through this interface, so a host test
// can put a register-level model of the hardware behind it.

#ifndef DEVISO_SRC_CORE_MMIO_H_
#define DEVISO_SRC_CORE_MMIO_H_

#include <cstddef>
#include <cstdint>

namespace deviso {

class Mmio {
 public:
  virtual ~Mmio() = default;
  virtual uint32_t Read32(size_t offset) = 0;
  virtual void Write32(size_t offset, uint32_t value) = 0;
  // 64-bit registers are accessed with single 64-bit accesses where the hardware allows it.
  virtual uint64_t Read64(size_t offset) = 0;
  virtual void Write64(size_t offset, uint64_t value) = 0;
};

// Registers mapped at `base` as Device memory (bare metal, or any port with a mapping).
class DirectMmio final : public Mmio {
 public:
  explicit DirectMmio(uintptr_t base) : base_(base) {}
  uint32_t Read32(size_t offset) override { return *Reg<uint32_t>(offset); }
  void Write32(size_t offset, uint32_t value) override { *Reg<uint32_t>(offset) = value; }
  uint64_t Read64(size_t offset) override { return *Reg<uint64_t>(offset); }
  void Write64(size_t offset, uint64_t value) override { *Reg<uint64_t>(offset) = value; }

 private:
  template <typename T>
  volatile T* Reg(size_t offset) const {
    return reinterpret_cast<volatile T*>(base_ + offset);
  }
  uintptr_t base_;
};

}  // namespace deviso

#endif  // DEVISO_SRC_CORE_MMIO_H_
