// MSI-X (see msix.h).

#include "drivers/msix/msix.h"

#include "drivers/msix/msix_hw.h"

namespace deviso::drivers::msix {

Result<Capability> FindCapability(const ConfigSpace& config) {
  if ((config.Read16(config::kStatus) & config::kStatusCapList) == 0) {
    return Status::NotFound();
  }
  // Each entry takes at least 4 bytes in [0x40, 0x100): a longer walk is a loop.
  constexpr unsigned kMaxEntries = (config::kConfigEnd - config::kFirstCapability) / 4;
  size_t at = config.Read8(config::kCapabilitiesPointer) & 0xfc;
  for (unsigned i = 0; at != 0; ++i) {
    if (i == kMaxEntries || at < config::kFirstCapability || at > config::kConfigEnd - 4) {
      return Status::IoError();
    }
    if (config.Read8(at) == config::kCapIdMsix) {
      if (at > config::kConfigEnd - 12) {
        return Status::IoError();  // the 12-byte capability would run past the header
      }
      const auto control =
          reg::MessageControl::ReadAt(config, at + reg::MessageControl::kCapOffset);
      const auto table = reg::OffsetBir::ReadAt(config, at + reg::OffsetBir::kTableOffset);
      const auto pba = reg::OffsetBir::ReadAt(config, at + reg::OffsetBir::kPbaOffset);
      if (table.bir() > 5 || pba.bir() > 5) {
        return Status::InvalidArgument();
      }
      Capability cap;
      cap.offset = static_cast<uint8_t>(at);
      cap.vectors = static_cast<uint16_t>(control.table_size() + 1);
      cap.table_bir = static_cast<uint8_t>(table.bir());
      cap.table_offset = table.offset();
      cap.pba_bir = static_cast<uint8_t>(pba.bir());
      cap.pba_offset = pba.offset();
      return cap;
    }
    at = config.Read8(at + 1) & 0xfc;
  }
  return Status::NotFound();
}

void Msix::WriteControl(bool enable, bool function_mask) {
  const size_t at = cap_.offset + reg::MessageControl::kCapOffset;
  reg::MessageControl::ReadAt(config_, at)
      .set_enable(enable ? 1 : 0)
      .set_function_mask(function_mask ? 1 : 0)
      .WriteAt(config_, at);
}

bool Msix::enabled() const {
  return reg::MessageControl::ReadAt(config_, cap_.offset + reg::MessageControl::kCapOffset)
             .enable() != 0;
}

void Msix::SetMask(uint16_t vector, bool mask) {
  const size_t at = Entry(vector) + entry::kVectorControl;
  reg::VectorControl::ReadAt(table_, at).set_mask(mask ? 1 : 0).WriteAt(table_, at);
  (void)table_.Read32(at);  // a read completes the posted write before we go on (PCI ordering)
}

void Msix::Enable() {
  WriteControl(/*enable=*/true, /*function_mask=*/true);
  for (uint16_t v = 0; v < cap_.vectors; ++v) {
    SetMask(v, true);
  }
  WriteControl(/*enable=*/true, /*function_mask=*/false);
}

void Msix::Disable() {
  WriteControl(enabled(), /*function_mask=*/true);
  for (uint16_t v = 0; v < cap_.vectors; ++v) {
    SetMask(v, true);
  }
  WriteControl(/*enable=*/false, /*function_mask=*/false);
}

Status Msix::Program(uint16_t vector, uint64_t address, uint32_t data) {
  if (vector >= cap_.vectors || (address & 3) != 0) {
    return Status::InvalidArgument();
  }
  SetMask(vector, true);
  const size_t e = Entry(vector);
  table_.Write32(e + entry::kAddressLow, static_cast<uint32_t>(address));
  table_.Write32(e + entry::kAddressHigh, static_cast<uint32_t>(address >> 32));
  table_.Write32(e + entry::kData, data);
  return Status::Ok();
}

Status Msix::Mask(uint16_t vector) {
  if (vector >= cap_.vectors) {
    return Status::InvalidArgument();
  }
  SetMask(vector, true);
  return Status::Ok();
}

Status Msix::Unmask(uint16_t vector) {
  if (vector >= cap_.vectors) {
    return Status::InvalidArgument();
  }
  SetMask(vector, false);
  return Status::Ok();
}

Result<bool> Msix::masked(uint16_t vector) {
  if (vector >= cap_.vectors) {
    return Status::InvalidArgument();
  }
  return reg::VectorControl::ReadAt(table_, Entry(vector) + entry::kVectorControl).mask() != 0;
}

Result<bool> Msix::pending(uint16_t vector) {
  if (vector >= cap_.vectors) {
    return Status::InvalidArgument();
  }
  const size_t qword = cap_.pba_offset + size_t{vector} / kPbaBitsPerQword * 8;
  const uint64_t bits = pba_.Read64(qword);
  return ((bits >> (vector % kPbaBitsPerQword)) & 1) != 0;
}

Result<Msix::Message> Msix::message(uint16_t vector) {
  if (vector >= cap_.vectors) {
    return Status::InvalidArgument();
  }
  const size_t e = Entry(vector);
  Message m;
  m.address = (uint64_t{table_.Read32(e + entry::kAddressHigh)} << 32) |
              table_.Read32(e + entry::kAddressLow);
  m.data = table_.Read32(e + entry::kData);
  return m;
}

}  // namespace deviso::drivers::msix
