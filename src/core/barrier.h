// Memory barriers between the CPU and a DMA-capable unit (Arm ARM B2.3; SMMUv3 IHI0070 3.5
// on queue and table visibility).

#ifndef DEVISO_SRC_CORE_BARRIER_H_
#define DEVISO_SRC_CORE_BARRIER_H_

namespace deviso {

// On a host build the "device" is a model in the same process, reached under its own lock;
// a fence keeps the compiler and CPU honest. ThreadSanitizer does not support fences (GCC
// rejects them under -fsanitize=thread), so there only the compiler barrier remains: the
// model's mutex orders what TSan checks.
inline void HostFence() {
#if defined(__SANITIZE_THREAD__)
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

// Orders earlier writes to normal memory (commands, descriptors) before later writes,
// including MMIO writes such as CMDQ_PROD, as observed by the unit.
inline void DmaWriteBarrier() {
#if defined(__aarch64__)
  asm volatile("dsb st" ::: "memory");
#else
  HostFence();
#endif
}

// Orders an earlier read (e.g. of EVENTQ_PROD) before later reads of memory the unit wrote.
inline void DmaReadBarrier() {
#if defined(__aarch64__)
  asm volatile("dsb ld" ::: "memory");
#else
  HostFence();
#endif
}

}  // namespace deviso

#endif  // DEVISO_SRC_CORE_BARRIER_H_
