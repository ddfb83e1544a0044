/*
 * struct device for deviso's host and bare-metal ports. On Zephyr the OS's own struct
 * device is used instead; deviso's core only ever compares `const struct device *`.
 *
 * The fields after `name` follow Zephyr's struct device (include/zephyr/device.h): `config`
 * (the driver's constant configuration), `api` (its subsystem API table, e.g. struct
 * dma_driver_api of deviso/port/dma.h) and `data` (its mutable state). A device found through
 * device_get_binding() has them set by its driver; a device that only names a DMA master for
 * deviso (`struct device dev = {"ahci@00:02.0"};`) leaves them null. In C++ they default to
 * null so that such initialisers stay free of missing-initializer warnings.
 */
#ifndef DEVISO_PORT_DEVICE_H_
#define DEVISO_PORT_DEVICE_H_

/* The OS's device handle: a device deviso isolates is named by a pointer to one. */
struct device {     /* NOLINT(readability-identifier-naming): the OS's type name */
  const char* name; /* e.g. "ahci@0000:00:02.0"; first, so that {"name"} initialises it */
#ifdef __cplusplus
  const void* config = nullptr; /* the driver's constant configuration, or null */
  const void* api = nullptr;    /* the driver's subsystem API table, or null */
  void* data = nullptr;         /* the driver's mutable state, or null */
#else
  const void* config;
  const void* api;
  void* data;
#endif
};

#ifdef __cplusplus
extern "C" {
#endif

/* Zephyr's lookup by name (include/zephyr/device.h): the device called `name` if its driver
 * initialised it, else NULL (no such device, or its driver failed). Implemented by the
 * platform (e.g. platform/qemu-virt-aarch64/device_binding.cc); safe to call with NULL. */
const struct device* device_get_binding(  // NOLINT(readability-identifier-naming): Zephyr's
    const char* name);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DEVISO_PORT_DEVICE_H_ */
