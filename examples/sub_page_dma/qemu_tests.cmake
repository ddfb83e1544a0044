# The sub_page_dma test program on QEMU (included by the top-level CMakeLists.txt into the host
# build's tests; labels `qemu`, and `virtio` for the virtio-iommu run; the `qemu10` test preset
# runs the same on QEMU 10). Each configuration is one QEMU run (a fixture) and then one test
# per step of the program, the memory read from outside the parked guest (each page holds its
# 100-byte buffer and the canary everywhere else), and checks of QEMU's own trace: every
# translation of the edu's StreamID went into the bounce pool, none to a buffer's own page,
# and the blocked writes were recorded as faults.
set(sub_page_dma_test "${PROJECT_SOURCE_DIR}/examples/sub_page_dma/qemu_test.sh")

set(sub_page_dma_steps
    "get_binding=device_get_binding(\"DMA_0\") found the edu engine"
    "ctx_alloc=deviso_ctx_alloc(DMA_0, sid)"
    "bounced=two 100-byte transfers through bounce pages, released after each"
    "bytes_arrived=the 100 bytes arrived: memory -> edu -> memory through bounce pages"
    "canaries=every other byte of both pages is still the canary"
    "pages_never_mapped=neither buffer's page was ever left mapped"
    "live_bounce=a live bounced mapping of the probe buffer, at a bounce page"
    "own_page_blocked=DMA to the buffer's own page blocked and reported, canary intact"
    "past_bounce_blocked=DMA past the bounce page blocked and reported"
    "bounce_reaches_buffer=DMA into the bounce page reached the buffer at the unmap"
    "ctx_free=deviso_ctx_free(DMA_0, sid)")

function(deviso_sub_page_dma_qemu)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "NAME" "LABELS;ARGS;NOTES")
  deviso_qemu_demo_tests(
    PREFIX "qemu_sub_page_dma_${arg_NAME}" SCRIPT "${sub_page_dma_test}"
    OUT "${CMAKE_BINARY_DIR}/qemu/sub_page_dma_${arg_NAME}" LABELS ${arg_LABELS}
    STEPS ${sub_page_dma_steps} NOTES ${arg_NOTES}
    CHECKS "verdict_memory=memory" "trace_bounce_only=translations" "trace_faults=faults"
    ARGS ${arg_ARGS})
endfunction()

deviso_sub_page_dma_qemu(NAME smmuv3 LABELS qemu)
deviso_sub_page_dma_qemu(NAME virtio LABELS qemu virtio ARGS --iommu virtio
    NOTES "no_direction=the blocked transfers prove less on virtio-iommu")
