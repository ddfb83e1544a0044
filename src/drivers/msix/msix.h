// An OS-agnostic MSI-X library (PCI Local Bus Specification 3.0, 6.8; PCI Express Base 4.0,
// 7.7.2): finds a function's MSI-X capability, reaches its table and Pending Bit Array in the
// BAR(s) the capability names, programs a vector's message (address and data), masks and
// unmasks vectors and the whole function, and turns MSI-X on and off.
//
// Configuration space is reached through msix::ConfigSpace (one function's), the BARs through
// deviso::Mmio, so a host test puts a model behind both. Nothing here knows an interrupt
// controller or an IOMMU: the message address is the caller's. Behind an IOMMU it is a device
// address the function's context must map (deviso/msi.h: the MSI doorbell), or the write is
// blocked like any other DMA.
//
// Rules it keeps (PCI 3.0 6.8.3.5): a vector's address and data are only written while that
// vector is masked; Program() masks it first and leaves it masked, Unmask() is the explicit
// last step. Enable() turns MSI-X on with the Function Mask set, masks every vector, then
// clears the Function Mask: no vector with a stale or zero message can fire. Not internally
// locked: one caller at a time.
//
// Typical use:
//   DEVISO_ASSIGN_OR_RETURN(msix::Capability cap, msix::FindCapability(cfg));
//   msix::Msix msix(cfg, cap, bar_for(cap.table_bir), bar_for(cap.pba_bir));
//   DEVISO_TRY(msix.Enable());
//   DEVISO_TRY(msix.Program(0, doorbell_iova, event_id));
//   DEVISO_TRY(msix.Unmask(0));

#ifndef DEVISO_SRC_DRIVERS_MSIX_MSIX_H_
#define DEVISO_SRC_DRIVERS_MSIX_MSIX_H_

#include <cstddef>
#include <cstdint>

#include "core/mmio.h"
#include "deviso/status.h"

namespace deviso::drivers::msix {

// One PCI function's configuration space. `offset` is naturally aligned and below 0x100 here.
class ConfigSpace {
 public:
  virtual ~ConfigSpace() = default;
  virtual uint8_t Read8(size_t offset) const = 0;
  virtual uint16_t Read16(size_t offset) const = 0;
  virtual uint32_t Read32(size_t offset) const = 0;
  virtual void Write16(size_t offset, uint16_t value) = 0;
};

// Where a function's MSI-X structures are (PCI 3.0 6.8.2).
struct Capability {
  uint8_t offset = 0;         // of the capability in configuration space
  uint16_t vectors = 0;       // table size: Message Control.Table Size + 1
  uint8_t table_bir = 0;      // BAR holding the table
  uint32_t table_offset = 0;  // its offset in that BAR (QWORD aligned)
  uint8_t pba_bir = 0;        // BAR holding the Pending Bit Array
  uint32_t pba_offset = 0;
  // Bytes of the table and of the PBA from their offsets.
  uint64_t table_bytes() const { return uint64_t{vectors} * 16; }
  uint64_t pba_bytes() const { return (uint64_t{vectors} + 63) / 64 * 8; }
};

// Walks the capability list (PCI 3.0 6.7) for the MSI-X capability (ID 0x11). The walk is
// bounded (at most 48 entries, the most that fit in [0x40, 0x100)) and checks every pointer.
// Errors: -ENOENT (no capability list, or no MSI-X capability), -EIO (a pointer outside
// [0x40, 0x100) or a list longer than fits: a malformed or hostile configuration space),
// -EINVAL (a BIR of 6 or 7, reserved).
Result<Capability> FindCapability(const ConfigSpace& config);

class Msix {
 public:
  // `table` and `pba` reach the BARs cap.table_bir and cap.pba_bir (the same Mmio if both are
  // in one BAR), at the BAR's start; all three must outlive this object. Touches nothing.
  Msix(ConfigSpace& config, const Capability& cap, Mmio& table, Mmio& pba)
      : config_(config), cap_(cap), table_(table), pba_(pba) {}

  // Turns MSI-X on (Message Control.Enable; the function then uses neither INTx nor MSI) with
  // every vector masked: Function Mask first, then each vector's Mask bit, then the Function
  // Mask cleared. No error: a register access cannot fail.
  void Enable();
  // Masks every vector and turns MSI-X off (Enable cleared, Function Mask cleared).
  void Disable();
  bool enabled() const;

  // Writes vector `vector`'s message: masks it, then writes address (low and high) and data;
  // it stays masked until Unmask(). Errors, with nothing written: -EINVAL (vector >= vectors,
  // address not 4-byte aligned (PCI 3.0 6.8.2.6: bits [1:0] are zero)).
  Status Program(uint16_t vector, uint64_t address, uint32_t data);
  // Sets / clears the vector's Mask bit (a pending message is sent once unmasked, 6.8.3.4).
  // The write is read back, so it has reached the function when this returns.
  // Errors: -EINVAL (vector >= vectors).
  Status Mask(uint16_t vector);
  Status Unmask(uint16_t vector);
  // Whether the vector is masked / has a message pending (its PBA bit). Errors: -EINVAL.
  Result<bool> masked(uint16_t vector);
  Result<bool> pending(uint16_t vector);
  // The message the vector holds (for diagnostics). Errors: -EINVAL.
  struct Message {
    uint64_t address = 0;
    uint32_t data = 0;
  };
  Result<Message> message(uint16_t vector);

  const Capability& capability() const { return cap_; }

 private:
  size_t Entry(uint16_t vector) const { return cap_.table_offset + size_t{vector} * 16; }
  void SetMask(uint16_t vector, bool mask);
  void WriteControl(bool enable, bool function_mask);

  ConfigSpace& config_;
  Capability cap_;
  Mmio& table_;
  Mmio& pba_;
};

}  // namespace deviso::drivers::msix

#endif  // DEVISO_SRC_DRIVERS_MSIX_MSIX_H_
