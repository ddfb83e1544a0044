# The AHCI isolation demo on QEMU (included by the top-level CMakeLists.txt into the host
# build's tests). Each configuration is one QEMU run (a fixture) and then one test per step and
# attack (the demo's own [PASS] lines: bytes, events, canaries) and checks of QEMU's own trace
# of the IOMMU (which StreamID was translated to what, what was recorded, and that the AHCI's
# StreamID never bypassed it). StreamIDs are read from the console, never assumed: the
# `moved` configuration puts both controllers at other PCI slots.
set(ahci_test "${PROJECT_SOURCE_DIR}/examples/ahci_isolation/qemu_test.sh")

set(ahci_steps
    "default_deny=IOMMU enabled with every StreamID blocked"
    "bound=AHCI bound to the IOMMU with its StreamID from iommu-map"
    "foreign_sid_refused=deviso_ctx_alloc(ahci, a StreamID the devicetree did not give it)"
    "ctx_alloc=deviso_ctx_alloc(ahci, sid)"
    "driver_structures_mapped=AHCI port started and IDENTIFY done through mapped"
    "mapped_read_verified=deviso_map(64 KiB)"
    "attack1_never_mapped=attack 1: DMA to never-mapped memory blocked"
    "attack2_after_unmap=attack 2: DMA after deviso_unmap blocked"
    "attack3_read_only=attack 3: device write into a read-only mapping blocked"
    "read_only_serves_reads=the read-only mapping still serves device reads"
    "translating_mapping=translating mapping (iova"
    "attack4_no_context=attack 4: DMA from a controller with no context blocked"
    "port_stopped_before_unmap=AHCI port stopped"
    "unmapped_on_release=every driver structure unmapped"
    "ctx_free=deviso_ctx_free(ahci, sid)"
    "attack5_after_ctx_free=attack 5: DMA from the AHCI after deviso_ctx_free blocked")

# deviso_ahci_isolation_qemu(NAME <config> LABELS <labels> [ARGS <scripts/demo args>...]
#                            [NOTES <name=text>...])
# NOTES: [NOTE] lines the console must show (what a check proves less on this IOMMU).
# Every configuration also judges the attacks from outside the guest (docs/qemu.md, "Verdicts
# that QEMU gives"): verdict_memory reads the canaries, buffers and the granted read's bytes
# through QMP's pmemsave from the parked guest; on the SMMUv3, verdict_attack_faults ties each
# of QEMU's failed translations and events to the attack whose trace markers bracket it.
function(deviso_ahci_isolation_qemu)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "NAME" "LABELS;ARGS;NOTES")
  set(verdicts "verdict_memory=memory")
  if(arg_NAME MATCHES "^smmuv3")
    list(APPEND verdicts "verdict_attack_faults=attack_faults")
  endif()
  deviso_qemu_demo_tests(
    PREFIX "qemu_ahci_${arg_NAME}" SCRIPT "${ahci_test}"
    OUT "${CMAKE_BINARY_DIR}/qemu/ahci_isolation_${arg_NAME}" LABELS ${arg_LABELS}
    STEPS ${ahci_steps} NOTES ${arg_NOTES}
    CHECKS "trace_translations=translations" "trace_never_bypassed=never_bypassed"
           "trace_translation_fault=translation_fault" "trace_permission_fault=permission_fault"
           "trace_rogue_blocked=rogue_blocked" ${verdicts}
    ARGS ${arg_ARGS})
endfunction()

deviso_ahci_isolation_qemu(NAME smmuv3 LABELS qemu)
deviso_ahci_isolation_qemu(NAME smmuv3_moved LABELS qemu
    ARGS --devices "${PROJECT_SOURCE_DIR}/examples/ahci_isolation/qemu-devices-moved")
# Each controller behind a PCIe root port of its own (issue 11): enumeration numbers buses 1
# and 2; QEMU's trace shows the AHCI's translations under 0x100 and the rogue's DMA blocked
# under 0x200 (C_BAD_STREAMID: no level-2 stream table covers it; virtio-iommu: faults of
# endpoint 512).
set(ahci_root_ports "${PROJECT_SOURCE_DIR}/examples/ahci_isolation/qemu-devices-root-ports")
deviso_ahci_isolation_qemu(NAME smmuv3_root_ports LABELS qemu ARGS --devices "${ahci_root_ports}")

# QEMU 10 only (label qemu10, test preset qemu10): an SMMUv3 that offers stage 2 alone
# (`-M virt-9.1 -global arm-smmuv3.stage=2`), where deviso's contexts are stage 2. QEMU's trace
# must show every AHCI translation at stage 2 (trace_never_bypassed, smmuv3_stage.py) and the
# attacks' F_TRANSLATION, F_PERMISSION and the rogue's C_BAD_STE.
deviso_ahci_isolation_qemu(NAME smmuv3_stage2 LABELS qemu qemu10 ARGS --qemu 10 --smmu-stage 2)

# The same image on `-M virt -device virtio-iommu-pci`: the devicetree alone selects the
# backend. QEMU's virtio-iommu keeps no IOTLB (attack 2 cannot catch a missing invalidation),
# drops faults beyond its event queue silently, and reports unmapped addresses without the
# access direction: the demo says so, and these tests require it to.
set(virtio_notes
    "no_iotlb=attack 2 proves less on virtio-iommu"
    "no_direction=attack 1 proves less on virtio-iommu"
    "silent_overflow=virtio-iommu drops faults beyond its event queue silently")
deviso_ahci_isolation_qemu(NAME virtio LABELS qemu virtio ARGS --iommu virtio
    NOTES ${virtio_notes})
deviso_ahci_isolation_qemu(NAME virtio_moved LABELS qemu virtio
    ARGS --iommu virtio --devices "${PROJECT_SOURCE_DIR}/examples/ahci_isolation/qemu-devices-moved"
    NOTES ${virtio_notes})
# (On `-cpu max` with 4 GiB of RAM: the board variants cost no run of their own.)
deviso_ahci_isolation_qemu(NAME virtio_root_ports LABELS qemu virtio
    ARGS --iommu virtio --devices "${ahci_root_ports}-max" NOTES ${virtio_notes})
