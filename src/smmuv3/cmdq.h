// Arm SMMUv3 command queue (IHI0070 3.5 "Command and Event queues", 4 "Commands"): the queue's
// index arithmetic and the commands this driver issues.
//
// The queue itself is driven by Smmuv3 (cmdq.cc: write, publish, CMD_SYNC, command errors),
// under its cmdq lock; what is here is pure, so the command encodings can be tested and reused
// without a unit.

#ifndef DEVISO_SRC_SMMUV3_CMDQ_H_
#define DEVISO_SRC_SMMUV3_CMDQ_H_

#include <cstddef>
#include <cstdint>

#include "core/dma_memory.h"
#include "smmuv3/hw.h"

namespace deviso::smmuv3 {

// A circular queue in DMA memory (the command or the event queue). Indices are 3.5.1's: the
// entry index in the low `log2` bits and a wrap bit above it.
struct Queue {
  DmaBuffer buffer;
  unsigned log2 = 0;
  uint32_t prod = 0;  // index + wrap bit (bit log2)
  uint32_t cons = 0;
};

// The bits of a queue pointer: the index and the wrap bit above it.
inline uint32_t QueuePtrMask(const Queue& q) { return (2U << q.log2) - 1; }
// The entry index of `v` (without the wrap bit).
inline uint32_t QueueIdx(const Queue& q, uint32_t v) { return v & ((1U << q.log2) - 1); }
// The wrap bit of `v`.
inline uint32_t QueueWrap(const Queue& q, uint32_t v) { return v & (1U << q.log2); }
// `v` advanced by one entry, the wrap bit toggling at the end of the queue.
inline uint32_t QueueInc(const Queue& q, uint32_t v) { return (v + 1) & QueuePtrMask(q); }
// 3.5.1: full when the indices are equal and the wrap bits differ.
inline bool QueueFull(const Queue& q) {
  return QueueIdx(q, q.prod) == QueueIdx(q, q.cons) && QueueWrap(q, q.prod) != QueueWrap(q, q.cons);
}
// 3.5.1: empty when index and wrap bit are equal.
inline bool QueueEmpty(const Queue& q) { return q.prod == q.cons; }

// A command with only its opcode set (4.1: opcode in word 0 bits [7:0]).
inline ds::Command Cmd(uint8_t opcode) {
  ds::Command c;
  c.raw[0] = ds::Command::W0{}.set_opcode(opcode).raw;
  return c;
}

// 4.3 CFGI_STE for `sid`, Leaf = 0: the STE and everything fetched through it.
inline ds::Command CfgiSte(uint32_t sid) {
  ds::Command c = Cmd(ds::kOpCfgiSte);
  c.raw[0] = ds::Command::W0{c.raw[0]}.set_sid(sid).raw;
  c.raw[1] = ds::Command::W1{}.set_leaf(0).raw;
  return c;
}

// 4.3 CFGI_CD_ALL: every CD cached for `sid`.
inline ds::Command CfgiCdAll(uint32_t sid) {
  ds::Command c = Cmd(ds::kOpCfgiCdAll);
  c.raw[0] = ds::Command::W0{c.raw[0]}.set_sid(sid).raw;
  return c;
}

// 4.3.3: CFGI_ALL is CFGI_STE_RANGE with Range = 31.
inline ds::Command CfgiAll() {
  ds::Command c = Cmd(ds::kOpCfgiSteRange);
  c.raw[1] = ds::Command::W1{}.set_range(31).raw;
  return c;
}

// Whose translations a TLBI names: a stage 1 domain's ASID or a stage 2 domain's VMID.
struct TlbiScope {
  bool stage2 = false;
  uint16_t asid = 0;
  uint16_t vmid = 0;
};

// 4.4 TLBI_NH_ASID (stage 1) or TLBI_S12_VMALL (stage 2): the whole context.
ds::Command ContextTlbi(TlbiScope scope);

// 4.4 TLBI_NH_VA (stage 1) or TLBI_S2_IPA (stage 2) for one address, in the non-range
// form (TG = NUM = SCALE = TTL = 0). `leaf`: only leaf entries changed (walk caches kept).
ds::Command AddressTlbi(TlbiScope scope, uint64_t address, bool leaf);

// Range invalidation (IDR3.RIL = 1) of `pages` granules of `page_size` bytes from `iova`, with
// the TTL hint `ttl` (0: none): at most two commands (tlbi_range.h), written to `out[0..1]`.
// Returns how many. Never an encoding 4.4.1.1 reserves (see cmdq.cc).
size_t BuildRangeTlbi(TlbiScope scope, uint64_t page_size, uint64_t iova, uint64_t pages,
                      unsigned ttl, bool leaf, ds::Command* out);

}  // namespace deviso::smmuv3

#endif  // DEVISO_SRC_SMMUV3_CMDQ_H_
