# QEMU tests of tests/qemu/msix_isolation (labels `qemu`; `virtio`, `qemu10` as the others),
# included by the top-level CMakeLists.txt. Each configuration is one QEMU run (a fixture),
# then one test per step on its console, the [NOTE]s it must show, and verdicts from QEMU's
# trace (msix_verdicts.py: the SMMU translated nvme0's MSI and the ITS received it with its
# requester ID and the CPU took the LPI; the rogue's was blocked with F_TRANSLATION at the
# doorbell and never reached the ITS; nvme0's was blocked after the unmap).
set(msix_test "${PROJECT_SOURCE_DIR}/tests/qemu/msix_isolation/qemu_test.sh")
set(msix_common_steps
    "bound=two NVMe controllers bound with StreamIDs from iommu-map, one deviso context each")
set(msix_its_steps
    "its_init=GICv3 ITS initialised: device and collection tables, command queue, LPIs enabled"
    "its_int=ITS INT command raised its LPI once"
    "its_tables_refused=deviso_map of the ITS's own tables refused with -EPERM"
    "doorbell_mapped=nvme0's MSI doorbell mapped in its context"
    "delivered=nvme0's completions delivered by MSI-X through the IOMMU: one I/O LPI per read"
    "teardown=both NVMe shut down, MSI-X off, their ITS events discarded"
    "freed=pools unbound, deviso_ctx_free for both")
set(msix_smmu_steps
    "rogue_blocked=rogue nvme1's MSI writes to the unmapped doorbell blocked: no LPI, translation fault at the doorbell for its StreamID"
    "unmapped_blocked=nvme0's MSIs blocked again once its doorbell was unmapped")
set(msix_smmu_checks
    "verdict_its_setup=verdict its_setup"
    "verdict_delivered=verdict delivered"
    "verdict_rogue_blocked=verdict rogue"
    "verdict_unmapped_blocked=verdict unmapped")

# deviso_msix_qemu(NAME <config> LABELS <labels> [ARGS <run args>...] STEPS/NOTES/CHECKS ...)
function(deviso_msix_qemu)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "NAME" "LABELS;ARGS;STEPS;NOTES;CHECKS")
  deviso_qemu_demo_tests(
    PREFIX "qemu_msix_${arg_NAME}" SCRIPT "${msix_test}"
    OUT "${CMAKE_BINARY_DIR}/qemu/msix_isolation_${arg_NAME}" LABELS ${arg_LABELS}
    STEPS ${arg_STEPS} NOTES ${arg_NOTES} CHECKS ${arg_CHECKS} ARGS ${arg_ARGS})
endfunction()

# SMMUv3 (stage 1 on 7.2 and on 10.0's nested `-M virt`: the doorbell mapped read-write).
deviso_msix_qemu(NAME smmuv3 LABELS qemu
    STEPS ${msix_common_steps} ${msix_its_steps} ${msix_smmu_steps} CHECKS ${msix_smmu_checks})
# QEMU 10 only: a stage-2-only SMMUv3, where the doorbell is mapped write-only.
deviso_msix_qemu(NAME smmuv3_stage2 LABELS qemu qemu10 ARGS --qemu 10 --smmu-stage 2
    STEPS ${msix_common_steps} ${msix_its_steps} ${msix_smmu_steps}
    CHECKS ${msix_smmu_checks} "verdict_stage2=verdict stage2")
# virtio-iommu: its PROBE MSI region passes MSIs untranslated; nothing is mapped (bypass).
deviso_msix_qemu(NAME virtio LABELS qemu virtio ARGS --iommu virtio
    STEPS ${msix_common_steps} ${msix_its_steps}
          "rogue_own_lpis=rogue nvme1's MSIs raise only its own DeviceID's LPIs"
    NOTES "bypass=virtio-iommu passes MSIs to the doorbell untranslated"
          "rogue_reaches_its=rogue nvme1's MSIs reach the ITS on virtio-iommu"
    CHECKS "verdict_its_setup=verdict its_setup" "verdict_delivered=verdict delivered --bypass")
# GICv2: no ITS; the fallback (polled completions) must still work.
deviso_msix_qemu(NAME gicv2 LABELS qemu ARGS --gic 2
    STEPS ${msix_common_steps}
          "fallback=fallback: NVMe reads verified with polled completions (no MSI)"
    NOTES "no_its=no MSI through the IOMMU here (GICv2: no ITS)")
