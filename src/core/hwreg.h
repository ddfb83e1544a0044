// deviso's typed-register library: one way to declare a hardware register or an in-memory
// descriptor word, used by every hw.h (SMMUv3, virtio, AHCI, NVMe, edu).
//
// The shape follows Fuchsia Zircon's hwreg (a class per register, fields declared by bit range,
// reserved bits marked, the register reading and writing itself), written for deviso's needs:
// C++20, no virtual call and no heap of its own, everything constexpr, and I/O only through the
// seams the drivers already use (`Mmio`, or any object with ReadN/WriteN members such as
// virtio's `BarIo`), so a host model behind the seam sees exactly the accesses the driver makes.
//
//   // AHCI 1.3.1 3.1.2 GHC: global HBA control.
//   struct Ghc : hwreg::Register<Ghc, uint32_t, 0x04> {
//     DEVISO_REG_RSVDZ({30, 3});
//     DEVISO_REG_BIT(31, ae);
//     DEVISO_REG_BIT(1, ie);
//     DEVISO_REG_BIT(0, hr);
//   };
//   Ghc::ReadFrom(mmio).set_ae(1).WriteTo(mmio);
//
// Rules:
//  - A register type derives from `Register<Self, Word[, kOffset]>` and declares no data member
//    of its own: it is an aggregate holding one `raw` word (`Self{value}` wraps a raw value,
//    `sizeof(Self) == sizeof(Word)`), so it also works as one word of an in-memory descriptor.
//  - `kOffset` is the register's offset from the start of its block (or from a per-port / per-
//    queue base, passed to `ReadFrom(io, base)`); a layout used at several offsets (CR0/CR0ACK)
//    or a descriptor word has none and uses `ReadAt(io, offset)` / `WriteAt(io, offset)`.
//  - Fields are declared in the specification's bit order with the section that defines them.
//    Getters return the field right-aligned; setters truncate a value wider than the field (as a
//    hardware register would) and return the register, so calls chain.
//  - `DEVISO_REG_ADDR(hi, lo, name)` is an address field: bits [hi:lo] of an address stored in
//    place, so `set_addr(pa)` / `addr()` take and give the address itself, not a shifted copy.
//  - `DEVISO_REG_ENUM(hi, lo, Enum, name)` gives a field an `enum class` type.
//  - `DEVISO_REG_RSVDZ({hi, lo}, ...)` marks reserved-zero (RES0) bits; it comes first in the
//    type, and every field declared after it is checked at compile time not to overlap them.
//    Registers: `WriteTo`/`WriteAt` write RES0 bits as zero (a read-modify-write never echoes
//    back whatever the hardware returned in them; the spec allows writing them as zero). That is
//    a mask, not an assertion: a value read from hardware must never stop the system (Hafnium's
//    rule, include/deviso/assert.h). In-memory descriptors the driver builds itself are checked
//    with `DebugCheckRsvdZ()` where they are published: in debug builds (no NDEBUG) a RES0 bit
//    set there is a driver bug and fails DEVISO_ASSERT; release builds compile the check away.
//  - Accesses: one access of the register's width per read or write (`Read32`/`Write32` for a
//    32-bit register, ...), in program order, with no barrier added or removed: ordering
//    against DMA memory stays the caller's (core/barrier.h), exactly as with raw Mmio calls.

#ifndef DEVISO_SRC_CORE_HWREG_H_
#define DEVISO_SRC_CORE_HWREG_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "deviso/assert.h"

namespace deviso::hwreg {

// Debug builds check what a driver builds; release builds keep only the masks.
#if defined(NDEBUG)
inline constexpr bool kDebugChecks = false;
#else
inline constexpr bool kDebugChecks = true;
#endif

// Bits [hi:lo] set in a Word.
template <typename Word>
constexpr Word Mask(unsigned hi, unsigned lo) {
  static_assert(std::is_unsigned_v<Word>);
  constexpr unsigned kBits = 8 * sizeof(Word);
  const uint64_t width_ones =
      (hi - lo + 1 >= 64) ? ~uint64_t{0} : ((uint64_t{1} << (hi - lo + 1)) - 1);
  return (hi >= lo && hi < kBits) ? static_cast<Word>(width_ones << lo) : Word{0};
}

// One bit range of a RES0 declaration.
struct BitRange {
  unsigned hi;
  unsigned lo;
};

// The union of several bit ranges.
template <typename Word>
constexpr Word Bits(std::initializer_list<BitRange> ranges) {
  Word w = 0;
  for (const BitRange& r : ranges) w = static_cast<Word>(w | Mask<Word>(r.hi, r.lo));
  return w;
}

// A bit field [kHi:kLo] of a Word.
template <typename Word, unsigned kHi, unsigned kLo>
struct Field {
  static_assert(std::is_unsigned_v<Word>, "register words are unsigned");
  static_assert(kHi >= kLo && kHi < 8 * sizeof(Word), "field out of the word");
  static constexpr unsigned kShift = kLo;
  static constexpr unsigned kWidth = kHi - kLo + 1;
  static constexpr Word kMask = Mask<Word>(kHi, kLo);
  static constexpr Word Get(Word raw) { return static_cast<Word>((raw & kMask) >> kLo); }
  // `v` wider than the field is truncated to the field's width.
  static constexpr Word Set(Word raw, uint64_t v) {
    return static_cast<Word>((raw & static_cast<Word>(~kMask)) |
                             (static_cast<Word>(v << kLo) & kMask));
  }
  // Address fields: the bits [kHi:kLo] of an address, kept in place.
  static constexpr Word GetInPlace(Word raw) { return static_cast<Word>(raw & kMask); }
  static constexpr Word SetInPlace(Word raw, uint64_t addr) {
    return static_cast<Word>((raw & static_cast<Word>(~kMask)) | (static_cast<Word>(addr) & kMask));
  }
};

// No offset: a layout used at several offsets, or a word of an in-memory descriptor.
inline constexpr size_t kNoOffset = ~size_t{0};

// One access of Word's width through an I/O seam (Mmio: 32/64; virtio BarIo/PciConfig: 8/16/32).
template <typename Word, typename Io>
Word ReadWord(Io& io, size_t offset) {
  if constexpr (sizeof(Word) == 1) {
    return io.Read8(offset);
  } else if constexpr (sizeof(Word) == 2) {
    return io.Read16(offset);
  } else if constexpr (sizeof(Word) == 4) {
    return io.Read32(offset);
  } else {
    static_assert(sizeof(Word) == 8);
    return io.Read64(offset);
  }
}
template <typename Word, typename Io>
void WriteWord(Io& io, size_t offset, Word value) {
  if constexpr (sizeof(Word) == 1) {
    io.Write8(offset, value);
  } else if constexpr (sizeof(Word) == 2) {
    io.Write16(offset, value);
  } else if constexpr (sizeof(Word) == 4) {
    io.Write32(offset, value);
  } else {
    static_assert(sizeof(Word) == 8);
    io.Write64(offset, value);
  }
}

// A 64-bit value written as two 32-bit registers, low half first (AHCI PxCLB/PxCLBU, NVMe
// ASQ/ACQ, virtio queue_desc: devices that latch the value on the high half, or that take only
// 32-bit accesses).
template <typename Io>
void WriteLowHigh(Io& io, size_t low_offset, size_t high_offset, uint64_t value) {
  io.Write32(low_offset, static_cast<uint32_t>(value & 0xffffffffU));
  io.Write32(high_offset, static_cast<uint32_t>(value >> 32));
}

// A 64-bit value read as two 32-bit registers, low half first.
template <typename Io>
uint64_t ReadLowHigh(Io& io, size_t low_offset, size_t high_offset) {
  const uint32_t low = io.Read32(low_offset);
  return (uint64_t{io.Read32(high_offset)} << 32) | low;
}

// The low and high 32-bit halves of a 64-bit value (for descriptor words split in two).
constexpr uint32_t Low32(uint64_t v) { return static_cast<uint32_t>(v & 0xffffffffU); }
constexpr uint32_t High32(uint64_t v) { return static_cast<uint32_t>(v >> 32); }
constexpr uint64_t Join64(uint32_t low, uint32_t high) { return (uint64_t{high} << 32) | low; }

// The base of every register or descriptor-word type (see the file comment).
template <class Derived, typename Word, size_t kOffsetV = kNoOffset>
class Register {
 public:
  static_assert(std::is_unsigned_v<Word>, "register words are unsigned");
  using WordType = Word;
  static constexpr size_t kOffset = kOffsetV;
  static constexpr bool kHasOffset = kOffsetV != kNoOffset;
  // No RES0 bits unless the type declares DEVISO_REG_RSVDZ.
  static constexpr Word kRsvdZ = 0;

  constexpr Register() = default;
  // Implicit, so `Derived{raw_value}` (aggregate initialisation of the base) wraps a value.
  constexpr Register(Word value) : raw(value) {}  // NOLINT(google-explicit-constructor)

  // Reads the register at its own offset (plus `base`, for per-port or per-queue blocks).
  template <typename Io>
  static Derived ReadFrom(Io& io, size_t base = 0) requires kHasOffset {
    return ReadAt(io, base + kOffset);
  }
  template <typename Io>
  static Derived ReadAt(Io& io, size_t offset) {
    Derived d;
    d.raw = ReadWord<Word>(io, offset);
    return d;
  }
  // Writes the register at its own offset (plus `base`), RES0 bits as zero.
  template <typename Io>
  const Derived& WriteTo(Io& io, size_t base = 0) const requires kHasOffset {
    return WriteAt(io, base + kOffset);
  }
  template <typename Io>
  const Derived& WriteAt(Io& io, size_t offset) const {
    WriteWord<Word>(io, offset, static_cast<Word>(raw & static_cast<Word>(~Derived::kRsvdZ)));
    return static_cast<const Derived&>(*this);
  }

  // The RES0 bits that are set (0 for a well-formed value).
  constexpr Word rsvdz_bits() const { return static_cast<Word>(raw & Derived::kRsvdZ); }
  // Debug builds: DEVISO_ASSERT that a value the driver built has no RES0 bit set. For
  // descriptors only, never for values read from hardware (see the file comment).
  constexpr const Derived& DebugCheckRsvdZ() const {
    if constexpr (kDebugChecks) DEVISO_ASSERT(rsvdz_bits() == 0);
    return static_cast<const Derived&>(*this);
  }

  friend constexpr bool operator==(const Register& a, const Register& b) { return a.raw == b.raw; }

  Word raw = 0;
};

}  // namespace deviso::hwreg

// ---- Field declarations (inside a type deriving from hwreg::Register) -------------------------

// Reserved-zero bits: DEVISO_REG_RSVDZ({31, 13}, {11, 11}). First in the type, at most once.
#define DEVISO_REG_RSVDZ(...) \
  static constexpr WordType kRsvdZ = ::deviso::hwreg::Bits<WordType>({__VA_ARGS__})

// Internal: a field may not overlap the RES0 bits declared before it.
#define DEVISO_REG_INTERNAL_CHECK(hi, lo)                                        \
  static_assert((::deviso::hwreg::Field<WordType, hi, lo>::kMask & kRsvdZ) == 0, \
                "field overlaps a bit declared reserved-zero")

// Bits [hi:lo]: `name()` gives them right-aligned, `set_name(v)` stores v truncated to the field.
#define DEVISO_REG_FIELD(hi, lo, name)                                       \
  DEVISO_REG_INTERNAL_CHECK(hi, lo);                                         \
  constexpr WordType name() const {                                          \
    return ::deviso::hwreg::Field<WordType, hi, lo>::Get(this->raw);         \
  }                                                                          \
  constexpr auto& set_##name(uint64_t v) {                                   \
    this->raw = ::deviso::hwreg::Field<WordType, hi, lo>::Set(this->raw, v); \
    return *this;                                                            \
  }                                                                          \
  static_assert(true, "")

#define DEVISO_REG_BIT(bit, name) DEVISO_REG_FIELD(bit, bit, name)

// An address field: bits [hi:lo] of an address, stored in place (no shift at the call site).
#define DEVISO_REG_ADDR(hi, lo, name)                                                  \
  DEVISO_REG_INTERNAL_CHECK(hi, lo);                                                   \
  constexpr WordType name() const {                                                    \
    return ::deviso::hwreg::Field<WordType, hi, lo>::GetInPlace(this->raw);            \
  }                                                                                    \
  constexpr auto& set_##name(uint64_t addr) {                                          \
    this->raw = ::deviso::hwreg::Field<WordType, hi, lo>::SetInPlace(this->raw, addr); \
    return *this;                                                                      \
  }                                                                                    \
  static_assert(true, "")

// An enumerated field of type `Enum` (an enum class whose values are the field's encodings).
#define DEVISO_REG_ENUM(hi, lo, Enum, name)                                                 \
  DEVISO_REG_INTERNAL_CHECK(hi, lo);                                                        \
  constexpr Enum name() const {                                                             \
    return static_cast<Enum>(::deviso::hwreg::Field<WordType, hi, lo>::Get(this->raw));     \
  }                                                                                         \
  constexpr auto& set_##name(Enum v) {                                                      \
    this->raw =                                                                             \
        ::deviso::hwreg::Field<WordType, hi, lo>::Set(this->raw, static_cast<uint64_t>(v)); \
    return *this;                                                                           \
  }                                                                                         \
  static_assert(true, "")

#endif  // DEVISO_SRC_CORE_HWREG_H_
