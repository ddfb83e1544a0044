// A line into a caller's buffer with snprintf's rules, hand-formatted (no printf), so that the
// fault reports and the dump need nothing from the C library and may run in an interrupt
// handler.

#ifndef DEVISO_SRC_CORE_LINE_WRITER_H_
#define DEVISO_SRC_CORE_LINE_WRITER_H_

#include <cstddef>
#include <cstdint>

namespace deviso {

// Appends to `buf`: writes what fits, always NUL-terminates when there is room for anything,
// and counts what it would have written.
class LineWriter {
 public:
  LineWriter(char* buf, size_t len) : buf_(buf), len_(len) {}

  void Put(const char* s) {
    for (; *s != '\0'; ++s) {
      PutChar(*s);
    }
  }

  void PutChar(char c) {
    if (pos_ + 1 < len_) {
      buf_[pos_] = c;
    }
    ++pos_;
  }

  // "0x" and lower-case hex digits, no leading zeros.
  void PutHex(uint64_t value) {
    Put("0x");
    PutDigits(value, 16, 1);
  }

  // Decimal.
  void PutDec(uint64_t value) { PutDigits(value, 10, 1); }

  // Hex digits without "0x", at least `width` of them (zero-padded).
  void PutHexDigits(uint64_t value, unsigned width) { PutDigits(value, 16, width); }

  // A PCI requester ID as bus:device.function ("00:02.0"; PCIe base spec, Routing IDs).
  void PutBdf(uint16_t rid) {
    PutHexDigits(rid >> 8, 2);
    PutChar(':');
    PutHexDigits((rid >> 3) & 0x1f, 2);
    PutChar('.');
    PutDigits(rid & 0x7, 10, 1);
  }

  // A size in the largest unit that divides it ("4 KiB", "2 MiB", "0x1234 bytes" otherwise).
  void PutSize(uint64_t bytes) {
    static constexpr const char* kUnits[] = {" KiB", " MiB", " GiB", " TiB"};
    if (bytes != 0 && (bytes & 0x3ff) == 0) {
      unsigned unit = 0;
      uint64_t v = bytes >> 10;
      while (unit + 1 < 4 && (v & 0x3ff) == 0) {
        v >>= 10;
        ++unit;
      }
      PutDec(v);
      Put(kUnits[unit]);
      return;
    }
    PutHex(bytes);
    Put(bytes == 1 ? " byte" : " bytes");
  }

  // The length of the whole line, as snprintf returns it.
  int Finish() {
    if (len_ > 0) {
      buf_[pos_ < len_ ? pos_ : len_ - 1] = '\0';
    }
    return static_cast<int>(pos_);
  }

  // What has been counted so far (written or not).
  size_t length() const { return pos_; }

 private:
  void PutDigits(uint64_t value, unsigned base, unsigned width) {
    char digits[24];
    size_t n = 0;
    do {
      digits[n++] = "0123456789abcdef"[value % base];
      value /= base;
    } while (value != 0);
    while (n < width && n < sizeof(digits)) {
      digits[n++] = '0';
    }
    while (n > 0) {
      PutChar(digits[--n]);
    }
  }

  char* buf_;
  size_t len_;
  size_t pos_ = 0;
};

}  // namespace deviso

#endif  // DEVISO_SRC_CORE_LINE_WRITER_H_
