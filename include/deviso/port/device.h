/*
 * struct device for deviso's host and bare-metal ports. On Zephyr the OS's own struct
 * device is used instead; deviso's core only ever compares `const struct device *`.
 */
#ifndef DEVISO_PORT_DEVICE_H_
#define DEVISO_PORT_DEVICE_H_

struct device {
  const char* name; /* e.g. "ahci@0000:00:02.0" */
};

#endif /* DEVISO_PORT_DEVICE_H_ */
