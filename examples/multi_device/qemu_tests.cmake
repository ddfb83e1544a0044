# QEMU tests of examples/multi_device (label `qemu`), included by the top-level CMakeLists.txt.
# Two fixture runs, with the devices at their default slots (qemu-devices) and swapped to
# other slots (qemu-devices-swapped); then one test per step on each console, and checks of
# QEMU's own SMMU trace: each device's StreamID was translated and never bypassed, and the
# F_TRANSLATION events of the cross-device attempts were recorded for both StreamIDs.
set(multi_test "${PROJECT_SOURCE_DIR}/examples/multi_device/qemu_test.sh")
set(multi_steps
    "default_deny=SMMUv3 enabled with every StreamID blocked"
    "nvme_bar_mapped=NVMe 64-bit BAR0 assigned inside a host-bridge window"
    "contexts=AHCI and NVMe bound with StreamIDs from iommu-map"
    "ahci_started=AHCI port started and IDENTIFY done"
    "nvme_started=NVMe enabled, IDENTIFY, I/O queue pair created"
    "ahci_read_verified=AHCI: READ DMA EXT of 128 sectors into its own mapped buffer"
    "nvme_read_verified=NVMe: READ of 128 blocks (PRP list) into its own mapped buffer"
    "nvme_write_read_back=NVMe: WRITE of 128 blocks, then READ back"
    "ahci_blocked_from_nvme_buffer=AHCI -> NVMe's buffer: DMA write blocked"
    "nvme_blocked_from_ahci_buffer=NVMe -> AHCI's buffer: DMA write blocked"
    "nvme_cannot_read_ahci_buffer=NVMe <- AHCI's buffer: DMA read blocked"
    "nvme_sq_unmapped_cfs_recovered=NVMe with its I/O SQ unmapped: fetch blocked, CSTS.CFS seen"
    "both_still_work=both devices still read correctly"
    "nvme_shutdown_before_unmap=NVMe shut down (CC.SHN"
    "ahci_stopped_before_unmap=AHCI port stopped"
    "unmapped_on_release=every driver structure of both devices unmapped"
    "ctx_free=deviso_ctx_free for both contexts")
foreach(variant default swapped)
  set(out "${CMAKE_BINARY_DIR}/qemu/multi_device_${variant}")
  set(prefix qemu_multi_device_${variant})
  if(variant STREQUAL "default")
    add_test(NAME ${prefix}_run COMMAND "${multi_test}" run "${out}")
  else()
    add_test(NAME ${prefix}_run COMMAND "${multi_test}" run "${out}"
             "${PROJECT_SOURCE_DIR}/examples/multi_device/qemu-devices-swapped")
  endif()
  set_tests_properties(${prefix}_run PROPERTIES
      LABELS qemu TIMEOUT 600 RUN_SERIAL TRUE FIXTURES_SETUP multi_device_${variant})
  set(checks)
  foreach(step IN LISTS multi_steps)
    string(FIND "${step}" "=" eq)
    string(SUBSTRING "${step}" 0 ${eq} name)
    math(EXPR eq "${eq} + 1")
    string(SUBSTRING "${step}" ${eq} -1 text)
    add_test(NAME ${prefix}_${name} COMMAND "${multi_test}" step "${out}" "${text}")
    list(APPEND checks ${prefix}_${name})
  endforeach()
  foreach(dev ahci0 nvme0)
    add_test(NAME ${prefix}_trace_${dev}_never_bypassed
             COMMAND "${multi_test}" never-bypassed "${out}" ${dev})
    add_test(NAME ${prefix}_trace_${dev}_f_translation
             COMMAND "${multi_test}" event "${out}" F_TRANSLATION ${dev})
    list(APPEND checks ${prefix}_trace_${dev}_never_bypassed ${prefix}_trace_${dev}_f_translation)
  endforeach()
  set_tests_properties(${checks} PROPERTIES
      LABELS qemu TIMEOUT 60 FIXTURES_REQUIRED multi_device_${variant})
endforeach()
