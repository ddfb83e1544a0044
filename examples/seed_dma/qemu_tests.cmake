# The seed README's example on QEMU (included by the top-level CMakeLists.txt into the host
# build's tests; labels `qemu`, and `virtio` for the virtio-iommu runs). Each configuration is
# one QEMU run (a fixture, RUN_SERIAL) and then one test per step of the program, a test that
# QEMU never clamped a DMA address to edu's dma_mask ("EDU: clamping"), and checks of QEMU's
# own trace of the IOMMU: the StreamID the console names is the one translated (identity, the
# hook's source page and the seed's base among its translations), never bypassed, and faulted
# for the blocked writes. `moved` puts the engine at another slot; the `virtio` ones run the
# same image behind a virtio-iommu.
set(seed_dma_test "${PROJECT_SOURCE_DIR}/examples/seed_dma/qemu_test.sh")

set(seed_dma_steps
    "default_deny=IOMMU enabled with every StreamID blocked"
    "get_binding=device_get_binding(\"DMA_0\") found the edu engine"
    "intx=edu's INTx taken at the GIC interrupt the devicetree's interrupt-map gives"
    "ctx_alloc=deviso_ctx_alloc(dma_dev, sid)"
    "map=deviso_map(dma_dev, sid, base, size)"
    "dma_copy_verified=DMA: dma_config + dma_start copied 4 KiB into the mapped buffer"
    "mapped_per_transfer=the driver mapped the transfer's source only while it ran"
    "via_peripheral=DMA: memory -> edu buffer -> memory (0xeff bytes at 0x40100) verified"
    "outside_window_blocked=DMA outside the mapped window blocked"
    "unmap=deviso_unmap(dma_dev, sid, base, size)"
    "after_unmap_blocked=DMA into the buffer after deviso_unmap blocked"
    "ctx_free=deviso_ctx_free(dma_dev, sid)")

# deviso_seed_dma_qemu(NAME <config> LABELS <labels> [ARGS <scripts/demo args>...]
#                      [NOTES <name=text>...])
# NOTES: [NOTE] lines the console must show (what a check proves less on this IOMMU).
# CHECKS: further trace checks (name=subcommand args) for this configuration.
function(deviso_seed_dma_qemu)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "NAME" "LABELS;ARGS;NOTES;CHECKS")
  deviso_qemu_demo_tests(
    PREFIX "qemu_seed_dma_${arg_NAME}" SCRIPT "${seed_dma_test}"
    OUT "${CMAKE_BINARY_DIR}/qemu/seed_dma_${arg_NAME}" LABELS ${arg_LABELS}
    STEPS ${seed_dma_steps} NOTES ${arg_NOTES}
    CHECKS "no_edu_clamping=no-clamping" "trace_translations=translations"
           "trace_never_bypassed=never_bypassed" "trace_translation_fault=translation_fault"
           ${arg_CHECKS}
    ARGS ${arg_ARGS})
endfunction()

set(seed_dma_moved "${PROJECT_SOURCE_DIR}/examples/seed_dma/qemu-devices-moved")
deviso_seed_dma_qemu(NAME default LABELS qemu)
deviso_seed_dma_qemu(NAME moved LABELS qemu ARGS --devices "${seed_dma_moved}")
# QEMU 10 only (label qemu10): a stage-2-only SMMUv3, deviso's context at stage 2 (the
# never_bypassed check requires QEMU to trace every translation as stage=2).
deviso_seed_dma_qemu(NAME stage2 LABELS qemu qemu10 ARGS --qemu 10 --smmu-stage 2)

# The same image on `-M virt -device virtio-iommu-pci`: the devicetree alone selects the
# backend. QEMU's virtio-iommu keeps no IOTLB (the after-unmap check cannot catch a missing
# invalidation), reports unmapped addresses without the access direction, and drops faults
# beyond its event queue silently: the program says so, and these tests require it to.
set(seed_dma_virtio_notes
    "no_iotlb=the DMA after deviso_unmap proves less on virtio-iommu"
    "no_direction=the blocked transfers prove less on virtio-iommu"
    "silent_overflow=virtio-iommu drops faults beyond its event queue silently")
deviso_seed_dma_qemu(NAME virtio LABELS qemu virtio ARGS --iommu virtio
    NOTES ${seed_dma_virtio_notes})
deviso_seed_dma_qemu(NAME virtio_moved LABELS qemu virtio
    ARGS --iommu virtio --devices "${seed_dma_moved}"
    NOTES ${seed_dma_virtio_notes})

# edu behind a PCIe-to-PCI bridge behind a root port (issue 11): it is 02:03.0, but its DMA
# carries the bridge's alias 02:00.0; the program binds the alias, and QEMU's trace shows
# every translation and fault under 0x200 and none under 0x218. Its INTA is swizzled through
# both bridges (the `intx` step).
set(seed_dma_bridge "${PROJECT_SOURCE_DIR}/examples/seed_dma/qemu-devices-pcie-pci-bridge")
deviso_seed_dma_qemu(NAME pcie_pci_bridge LABELS qemu ARGS --devices "${seed_dma_bridge}"
    CHECKS "trace_dma_alias=dma_alias 02:00.0")
# (On GICv2, a Cortex-A72 and 2 GiB: the swizzled INTx then goes through the GICv2 driver.)
deviso_seed_dma_qemu(NAME virtio_pcie_pci_bridge LABELS qemu virtio
    ARGS --iommu virtio --devices "${seed_dma_bridge}-gicv2" NOTES ${seed_dma_virtio_notes}
    CHECKS "trace_dma_alias=dma_alias 02:00.0")
