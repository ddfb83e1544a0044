/*
 * deviso: device isolation for RTOS and bare-metal systems. The C ABI.
 *
 * The four calls of Zephyr RFC #60289, exactly, plus the extensions its reviewers asked for.
 * Every call returns 0 or a negative errno from <errno.h> (see deviso/status.h) and, on
 * failure, changes nothing, except where the hardware could not confirm completion
 * (-ETIMEDOUT, -EIO from the unit): "Error-path contract" below says exactly what is left.
 *
 * Contract:
 *  - A device is bound to an isolation unit (an IOMMU instance) and to the StreamIDs it owns
 *    before these calls are used: deviso_device_bind() below, or devicetree. A call naming a
 *    StreamID the device does not own fails with -EINVAL: a driver cannot claim another
 *    device's stream.
 *  - One context per (device, StreamID), as the RFC's calls imply. (The C++ API also lets
 *    several StreamIDs share one context, a domain.) A StreamID with no context is blocked
 *    from the moment the unit is enabled, and its DMA is reported as a fault: default-deny.
 *  - "Page" means the smallest granule the unit uses for that context (4 KiB, or 64 KiB
 *    where 4 KiB is not supported). Addresses and sizes must be page-aligned and non-zero:
 *    nothing is rounded, because exposing the rest of a page is the classic DMA attack.
 *  - deviso_map() is identity: the device address equals `base`, a physical address. An OS
 *    port converts buffer pointers with its virtual-to-physical service (identity on the
 *    bare-metal port, not on Zephyr with an MMU).
 *  - Mapping over anything already mapped fails with -EEXIST.
 *  - deviso_unmap() of any page-aligned part of what was mapped works (blocks are split; but see
 *    "Block splits" below). A range that includes memory that is not mapped is refused with
 *    -ENOENT.
 *  - Strict: when deviso_unmap() returns 0 the device can no longer reach that memory (the
 *    IOTLB invalidation has completed). If completion cannot be confirmed the call does not
 *    return 0 (-ETIMEDOUT or -EIO) and the mapping may or may not still be reachable.
 *  - Block splits: unmapping part of a block replaces the block by a table. On a unit without
 *    hitless replacement (SMMUv3 IDR3.BBML = 0, e.g. MMU-600) that would be break-before-make:
 *    for the time of one invalidation the addresses that stay mapped in that block fault (a
 *    device DMA to them is lost). There such an unmap is refused with -ENOTSUP (nothing
 *    changes) unless the context was created accepting the window (C++:
 *    DomainOptions::allow_block_split_window); unmapping whole blocks always works.
 *  - The unit's own memory is never given to a device: mapping any part of the memory an
 *    isolation unit itself reads (an SMMU's stream table, context descriptors, command and event
 *    queues and the page-table pools the platform declared; virtio-iommu's virtqueues and request
 *    buffers) is refused with -EPERM, on every backend. A device given it could rewrite its own
 *    or a sibling's translation and escape.
 *  - Broken unit: once a unit cannot confirm completion at all (an SMMU CMD_SYNC that timed out,
 *    service failure, a register reading all-ones because the device is gone; a virtio-iommu
 *    request never completed) it is marked broken. Every later call on its contexts
 *    (deviso_map, deviso_map_iova, deviso_unmap*, deviso_ctx_alloc, deviso_ctx_free) fails with
 *    -EIO before anything is allocated or changed, and consumes no shared capacity (context
 *    slots). Nothing the unit may still read is freed. The way back is the backend's full
 *    re-initialisation (C++: Smmuv3::Recover(), VirtioIommu::Recover()), refused while memory
 *    the unit may still read is in doubt (the SMMU's disable not acknowledged).
 *  - Error-path contract. What a failed call leaves, and what its retry does:
 *      deviso_map:   nothing changed (the tables are reserved before anything is written).
 *      deviso_unmap: -EINVAL/-ENOENT/-ENOMEM/-ENOTSUP/-EPERM/-EIO on a broken unit: nothing
 *                    changed. -ETIMEDOUT/-EIO from the invalidation: the entries may already be
 *                    cleared while the device may still reach them through a cached entry (or,
 *                    if a block split's break-before-make failed, the block is restored). A
 *                    retry of the same range, or of any part of it, converges: it unmaps what
 *                    is still mapped there, redoes the invalidation (for the whole context) and
 *                    returns 0 once it completed, never -ENOENT for that range. After
 *                    -ETIMEDOUT the unit is broken: the retry fails with -EIO until the unit was
 *                    re-initialised, then converges.
 *      deviso_ctx_free: the stream is blocked in memory first; if its invalidation fails the
 *                    context stays (usable, found) and a retry redoes the invalidation before
 *                    anything is freed. If the reclaim fails after the stream was blocked, the
 *                    context stays allocated and a retry retries the reclaim. No table, context
 *                    descriptor, ASID or VMID is reused until an invalidation covering it
 *                    completed.
 *      deviso_ctx_alloc: nothing changed (a new domain whose attach failed is destroyed again;
 *                    should that fail too, the destruction is retried by the next
 *                    deviso_ctx_alloc once the unit is not broken, so nothing leaks).
 *  - deviso_ctx_free() returns the stream to blocked, invalidates, and reclaims every table.
 *  - DMA through the IOMMU includes a device's MSI writes: a device using MSI must have its
 *    doorbell mapped on purpose (deviso/msi.h: deviso_map_msi_doorbell()); deviso never maps
 *    one by default. Exception: a unit that reports the doorbell as an MSI reserved region
 *    passes MSIs there untranslated (QEMU's virtio-iommu: the GICv3 ITS frame), so every
 *    device's MSIs reach it whatever its context holds; deviso_map_msi_doorbell() says so.
 *  - Thread safety: calls on different contexts run in parallel; calls on one context are
 *    serialised by its lock. Fault callbacks run in the unit's event-handling context (an
 *    interrupt handler on bare metal) and must not block or call back into deviso.
 */
#ifndef DEVISO_DEVISO_H_
#define DEVISO_DEVISO_H_

#include <stddef.h>
#include <stdint.h>

#include "deviso/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The OS's device handle. Its definition belongs to the OS port (Zephyr's struct device on
 * Zephyr; deviso/port/device.h on the host and bare-metal ports); the core only compares
 * pointers. */
struct device;

/* ---- Platform set-up ------------------------------------------------------------------ */

/* Binds `dev` to the registered isolation unit named `unit` (its report name, e.g.
 * "smmuv3@9050000"; units are registered by the platform's C++ code) and to the StreamIDs
 * sids[0 .. num_sids). A StreamID of a unit belongs to one device. Errors: -EINVAL (NULL
 * argument, no sids or too many, a sid the unit rejects or listed twice), -ENOENT (no unit of
 * that name), -EEXIST (dev already bound, or a sid bound to another device of that unit),
 * -ENOMEM (device table full). */
int deviso_device_bind(const struct device* dev, const char* unit, const uint32_t* sids,
                       size_t num_sids);

/* Errors: -ENOENT (dev not bound), -EBUSY (a context of dev still exists). */
int deviso_device_unbind(const struct device* dev);

/* ---- The RFC's calls ------------------------------------------------------------------ */

/* Creates the isolation context for (dev, sid): the stream translates through a new, empty
 * address space. Errors: -EINVAL (sid not owned by dev, dev not bound), -EEXIST (context
 * exists), -ENOMEM (context, table or ID pool exhausted), -EIO (the unit is broken: nothing is
 * allocated), -ETIMEDOUT/-EIO (hardware). */
int deviso_ctx_alloc(const struct device* dev, uint32_t sid);

/* Blocks the stream again, invalidates, and frees the context and all its tables.
 * Errors: -EINVAL (sid not owned), -ENOENT (no context), -EBUSY (the context is a domain
 * other streams share, through the C++ API), -ETIMEDOUT/-EIO (hardware: if the stream could
 * not be blocked nothing changed; if it was blocked but the context could not be reclaimed, the
 * context stays allocated and a second deviso_ctx_free() retries the reclaim). */
int deviso_ctx_free(const struct device* dev, uint32_t sid);

/* Identity-maps [base, base + size) for device reads and writes. Errors: -EINVAL (unaligned,
 * zero size, wrap, beyond the unit's address sizes, sid not owned), -ENOENT (no context),
 * -EEXIST (overlap), -ENOMEM (tables), -EPERM (overlaps the unit's own memory), -EIO (the unit
 * is broken). */
int deviso_map(const struct device* dev, uint32_t sid, uintptr_t base, size_t size);

/* Unmaps [base, base + size), strictly (see above). Errors: -EINVAL, -ENOENT (no context, or
 * part of the range not mapped, unless it lies in the range of an earlier failed unmap: see the
 * error-path contract), -ENOMEM (tables to split a block), -ENOTSUP (deviso built without block
 * splits, DEVISO_CONFIG_BLOCK_SPLIT=OFF, or on a unit without hitless block splits (see
 * "Block splits"), and the range starts or ends inside a block a larger deviso_map() created;
 * nothing changes), -EIO (broken unit: nothing changes),
 * -ETIMEDOUT/-EIO (invalidation not confirmed: see the error-path contract). */
int deviso_unmap(const struct device* dev, uint32_t sid, uintptr_t base, size_t size);

/* ---- Extensions ----------------------------------------------------------------------- */

/* Access permissions and memory attributes for deviso_map_iova(). */
#define DEVISO_PERM_READ 0x1u  /* the device may read */
#define DEVISO_PERM_WRITE 0x2u /* the device may write */
#define DEVISO_PERM_EXEC 0x4u  /* instruction fetch, where the backend has it */
#define DEVISO_PERM_RW (DEVISO_PERM_READ | DEVISO_PERM_WRITE) /* read and write */

/* Memory type of the mapping (bits 8..11 of flags). Default: normal cacheable memory. */
#define DEVISO_ATTR_SHIFT 8
#define DEVISO_ATTR_NORMAL (0u << DEVISO_ATTR_SHIFT)        /* write-back cacheable */
#define DEVISO_ATTR_NORMAL_NC (1u << DEVISO_ATTR_SHIFT)     /* non-cacheable */
#define DEVISO_ATTR_DEVICE (2u << DEVISO_ATTR_SHIFT)        /* Device-nGnRE (MMIO) */
#define DEVISO_ATTR_DEVICE_STRICT (3u << DEVISO_ATTR_SHIFT) /* Device-nGnRnE */
#define DEVISO_ATTR_MASK (0xfu << DEVISO_ATTR_SHIFT)        /* the memory-type bits of flags */

/* Maps device address `iova` to physical `pa` with `flags` (DEVISO_PERM_* | DEVISO_ATTR_*).
 * At least READ or WRITE. A stage 1 context cannot express write-only: -ENOTSUP. Errors
 * otherwise as deviso_map(). */
int deviso_map_iova(const struct device* dev, uint32_t sid, uint64_t iova, uint64_t pa, size_t size,
                    uint32_t flags);

/* Unmaps device addresses [iova, iova + size); as deviso_unmap(). */
int deviso_unmap_iova(const struct device* dev, uint32_t sid, uint64_t iova, size_t size);

/* The physical address `iova` translates to, in *pa. Errors: -EINVAL (also pa NULL), -ENOENT
 * (no context or not mapped). */
int deviso_iova_to_phys(const struct device* dev, uint32_t sid, uint64_t iova, uint64_t* pa);

/* Why a DMA access was refused. */
enum deviso_fault_reason {
  DEVISO_FAULT_UNKNOWN = 0,
  DEVISO_FAULT_TRANSLATION, /* nothing mapped at that address */
  DEVISO_FAULT_PERMISSION,  /* mapped, but not for this kind of access */
  DEVISO_FAULT_ADDR_SIZE,   /* address beyond the context's input or output size */
  DEVISO_FAULT_ACCESS,      /* access flag fault */
  DEVISO_FAULT_BLOCKED,     /* stream has no context (default-deny), or is aborted */
  DEVISO_FAULT_BAD_CONFIG,  /* the unit found the stream/context configuration invalid */
  DEVISO_FAULT_EXTERNAL,    /* external abort during the table walk or the access */
  DEVISO_FAULT_OVERFLOW,    /* the fault queue overflowed: faults were lost */
};

#define DEVISO_FAULT_READ 0x1u        /* the access was a read */
#define DEVISO_FAULT_WRITE 0x2u       /* the access was a write */
#define DEVISO_FAULT_EXEC 0x4u        /* instruction fetch */
#define DEVISO_FAULT_PRIV 0x8u        /* privileged access */
#define DEVISO_FAULT_STAGE2 0x10u     /* raised by stage 2 */
#define DEVISO_FAULT_ADDR_VALID 0x20u /* `iova` is meaningful */

/* A decoded fault, the same for every backend. */
struct deviso_fault {
  uint32_t sid;      /* StreamID / endpoint ID */
  uint32_t reason;   /* enum deviso_fault_reason */
  uint32_t flags;    /* DEVISO_FAULT_* */
  uint32_t raw_type; /* the backend's own event code (e.g. SMMU event ID 0x10) */
  uint64_t iova;     /* faulting input address, if DEVISO_FAULT_ADDR_VALID */
  uint64_t ipa;      /* stage 2 faults: the intermediate address, else 0 */
  const char* unit;  /* name of the unit that reported it, e.g. "smmuv3@9050000" */
};

/* Called for each fault on a context's streams, in event-handling (interrupt) context: it must
 * not block. Calls are rate-limited (deviso_set_fault_handler()); deviso_fault_count() counts
 * every fault. */
typedef void (*deviso_fault_handler_t)(  // NOLINT(modernize-use-using): this header is C.
    const struct deviso_fault* fault, void* user);

/* Installs (or, with NULL, removes) the fault handler of the context of (dev, sid). It is called
 * at most 16 times a second (bursts of up to 16); faults beyond that are counted, not reported.
 * When this returns the previous handler is not running and will not be called again; freeing
 * the context removes the handler the same way. Errors: -EINVAL, -ENOENT (no context),
 * -ENOTSUP (deviso built without fault reports, DEVISO_CONFIG_FAULT_REPORTS=OFF). */
int deviso_set_fault_handler(const struct device* dev, uint32_t sid, deviso_fault_handler_t handler,
                             void* user);

/* Faults counted on the context of (dev, sid) since it was created, in *count. Errors:
 * -EINVAL (also count NULL), -ENOENT, -ENOTSUP (built without fault reports). */
int deviso_fault_count(const struct device* dev, uint32_t sid, uint64_t* count);

/* Writes a one-line, human-readable report of `fault` to buf (always NUL-terminated when
 * len > 0), e.g. "smmuv3@9050000: sid 0x10: unprivileged data write at iova 0x40100000:
 * translation fault (event 0x10)". Returns the length of the whole line, like snprintf (buf
 * may be NULL when len is 0), or -EINVAL if fault is NULL (or buf is NULL and len > 0). Safe in
 * interrupt context. */
int deviso_fault_format(const struct deviso_fault* fault, char* buf, size_t len);

/* What the unit behind dev offers. */
struct deviso_caps {
  const char* backend; /* "smmuv3", "virtio-iommu", ... */
  uint64_t page_sizes; /* bit n set: 2^n-byte pages/blocks can be mapped */
  uint8_t ias;         /* device address bits */
  uint8_t oas;         /* physical address bits */
  uint8_t stages;      /* bit 0: stage 1, bit 1: stage 2 */
  uint8_t coherent;    /* the unit's table walks are cache-coherent */
  uint32_t max_sid;    /* largest StreamID the unit accepts */
};

/* Errors: -EINVAL (dev not bound, caps NULL). */
int deviso_get_caps(const struct device* dev, struct deviso_caps* caps);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DEVISO_DEVISO_H_ */
