# QEMU tests of examples/multi_device (labels `qemu`, and `virtio` for the virtio-iommu runs),
# included by the top-level CMakeLists.txt. Each configuration is one QEMU run (a fixture):
# the devices at their default slots (qemu-devices) and swapped to other slots
# (qemu-devices-swapped), on the SMMUv3 and on a virtio-iommu; then one test per step on its
# console, the [NOTE] lines a virtio-iommu run must show, and checks of QEMU's own trace of
# the IOMMU: each device's StreamID was translated and never bypassed, and the blocked
# cross-device attempts were recorded as translation faults for both StreamIDs.
set(multi_test "${PROJECT_SOURCE_DIR}/examples/multi_device/qemu_test.sh")
set(multi_steps
    "default_deny=IOMMU enabled with every StreamID blocked"
    "nvme_bar_mapped=NVMe 64-bit BAR0 assigned inside a host-bridge window"
    "contexts=AHCI and NVMe bound with StreamIDs from iommu-map"
    "own_tables_refused=deviso_map of a page of the IOMMU's translation-table pool refused with -EPERM"
    "pools_bound=DMA pools bound: a strict pool for the AHCI's structures, a pool-wide 2 MiB pool"
    "ahci_started=AHCI port started and IDENTIFY done"
    "nvme_started=NVMe enabled, IDENTIFY, I/O queue pair created"
    "ahci_read_verified=AHCI: READ DMA EXT of 128 sectors into its own buffer through the hook"
    "nvme_read_verified=NVMe: READ of 128 blocks (PRP list) into its own buffer through the hook (translated"
    "nvme_write_read_back=NVMe: WRITE of 128 blocks, then READ back"
    "ahci_blocked_from_nvme_buffer=AHCI -> NVMe's buffer: DMA write blocked"
    "nvme_blocked_from_ahci_buffer=NVMe -> AHCI's buffer: DMA write blocked"
    "nvme_cannot_read_ahci_buffer=NVMe <- AHCI's buffer: DMA read blocked"
    "strict_freed_block_unreachable=freed strict-pool block unreachable by the AHCI"
    "pool_wide_freed_block_reachable=freed pool-wide block still reachable by the NVMe"
    "hook_unmapped_unreachable=buffer mapped through the hook unreachable after UnmapForDevice"
    "nvme_sq_unmapped_cfs_recovered=NVMe with its I/O SQ unmapped: fetch blocked, CSTS.CFS seen"
    "both_still_work=both devices still read correctly"
    "nvme_shutdown_before_release=NVMe shut down (CC.SHN"
    "ahci_stopped_before_release=AHCI port stopped"
    "released_on_teardown=every driver structure of both devices released"
    "ctx_free=deviso_ctx_free for both contexts")

# deviso_multi_device_qemu(NAME <config> LABELS <labels> [ARGS <scripts/demo args>...]
#                          [NOTES <name=text>...])
# NOTES: [NOTE] lines the console must show (what a check proves less on this IOMMU).
function(deviso_multi_device_qemu)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "NAME" "LABELS;ARGS;NOTES")
  set(trace_checks)
  foreach(dev ahci0 nvme0)
    list(APPEND trace_checks "trace_${dev}_never_bypassed=never-bypassed ${dev}"
         "trace_${dev}_translation_fault=translation-fault ${dev}")
  endforeach()
  deviso_qemu_demo_tests(
    PREFIX "qemu_multi_device_${arg_NAME}" SCRIPT "${multi_test}"
    OUT "${CMAKE_BINARY_DIR}/qemu/multi_device_${arg_NAME}" LABELS ${arg_LABELS}
    STEPS ${multi_steps} NOTES ${arg_NOTES} CHECKS ${trace_checks} ARGS ${arg_ARGS})
endfunction()

set(multi_swapped "${PROJECT_SOURCE_DIR}/examples/multi_device/qemu-devices-swapped")
deviso_multi_device_qemu(NAME default LABELS qemu)
deviso_multi_device_qemu(NAME swapped LABELS qemu ARGS --devices "${multi_swapped}")
# QEMU 10 only (label qemu10): a stage-2-only SMMUv3, both contexts at stage 2 (the
# never-bypassed checks require QEMU to trace every translation as stage=2).
deviso_multi_device_qemu(NAME stage2 LABELS qemu qemu10 ARGS --qemu 10 --smmu-stage 2)

# The same image on `-M virt -device virtio-iommu-pci`: the devicetree alone selects the
# backend. QEMU's virtio-iommu keeps no IOTLB (the freed-block and after-unmap checks cannot
# catch a missing invalidation), reports unmapped addresses without the access direction, and
# drops faults beyond its event queue silently: the example says so, and these tests require it.
set(multi_virtio_notes
    "no_direction=blocked DMA proves less on virtio-iommu"
    "no_iotlb=the freed-block and after-unmap checks prove less on virtio-iommu"
    "silent_overflow=virtio-iommu drops faults beyond its event queue silently")
deviso_multi_device_qemu(NAME virtio LABELS qemu virtio ARGS --iommu virtio
    NOTES ${multi_virtio_notes})
deviso_multi_device_qemu(NAME virtio_swapped LABELS qemu virtio
    ARGS --iommu virtio --devices "${multi_swapped}" NOTES ${multi_virtio_notes})
