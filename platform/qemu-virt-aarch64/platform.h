// The QEMU `virt` AArch64 bare-metal platform: what an application gets after boot.
//
// boot/start.S and boot.cc bring the machine up (EL1, vectors, stack, .bss, DTB parsing, console,
// MMU and caches, C++ static constructors, GIC) and then call AppMain(). AppMain's return value
// becomes the exit status of qemu-system-aarch64 (see exit.h).

#ifndef DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PLATFORM_H_
#define DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PLATFORM_H_

#include "platform_info.h"

namespace deviso::qemu_virt {

// Image boundaries from boot/image.ld.
struct ImageLayout {
  uint64_t start = 0;  // __image_start (0x4008_0000)
  uint64_t end = 0;    // __image_end: .bss and the boot stack included
};
ImageLayout GetImageLayout();

// Provided by the application: runs with the MMU, caches and GIC on and IRQs masked. Returns
// the exit status (0: success).
int AppMain(const PlatformInfo& info);

}  // namespace deviso::qemu_virt

#endif  // DEVISO_PLATFORM_QEMU_VIRT_AARCH64_PLATFORM_H_
