# The seed README's example on QEMU (included by the top-level CMakeLists.txt into the host
# build's tests, label `qemu`). Each configuration is one QEMU run (a fixture, RUN_SERIAL) and
# then one test per step of the program, a test that QEMU never clamped a DMA address to edu's
# dma_mask ("EDU: clamping"), and a check of QEMU's own trace: the StreamID the console names
# is the one the SMMU translated for and faulted. `moved` puts the engine at another slot.
set(seed_dma_test "${PROJECT_SOURCE_DIR}/examples/seed_dma/qemu_test.sh")

set(seed_dma_steps
    "default_deny=SMMUv3 enabled with every StreamID blocked"
    "get_binding=device_get_binding(\"DMA_0\") found the edu engine"
    "ctx_alloc=deviso_ctx_alloc(dma_dev, sid)"
    "map=deviso_map(dma_dev, sid, base, size)"
    "dma_copy_verified=DMA: dma_config + dma_start copied 4 KiB into the mapped buffer"
    "mapped_per_transfer=the driver mapped the transfer's source only while it ran"
    "via_peripheral=DMA: memory -> edu buffer -> memory (0xeff bytes at 0x40100) verified"
    "outside_window_blocked=DMA outside the mapped window blocked"
    "unmap=deviso_unmap(dma_dev, sid, base, size)"
    "after_unmap_blocked=DMA into the buffer after deviso_unmap blocked"
    "ctx_free=deviso_ctx_free(dma_dev, sid)")

# deviso_seed_dma_qemu(NAME <config> [ARGS <scripts/demo args>...])
function(deviso_seed_dma_qemu)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "NAME" "ARGS")
  set(out "${CMAKE_BINARY_DIR}/qemu/seed_dma_${arg_NAME}")
  set(prefix "qemu_seed_dma_${arg_NAME}")
  add_test(NAME ${prefix}_run COMMAND "${seed_dma_test}" run "${out}" ${arg_ARGS})
  set_tests_properties(${prefix}_run PROPERTIES
      LABELS qemu TIMEOUT 600 RUN_SERIAL TRUE FIXTURES_SETUP ${prefix})
  set(checks)
  foreach(step IN LISTS seed_dma_steps)
    string(FIND "${step}" "=" eq)
    string(SUBSTRING "${step}" 0 ${eq} name)
    math(EXPR eq "${eq} + 1")
    string(SUBSTRING "${step}" ${eq} -1 text)
    add_test(NAME ${prefix}_${name} COMMAND "${seed_dma_test}" step "${out}" "${text}")
    list(APPEND checks ${prefix}_${name})
  endforeach()
  add_test(NAME ${prefix}_no_edu_clamping COMMAND "${seed_dma_test}" no-clamping "${out}")
  add_test(NAME ${prefix}_trace COMMAND "${seed_dma_test}" trace "${out}")
  list(APPEND checks ${prefix}_no_edu_clamping ${prefix}_trace)
  set_tests_properties(${checks} PROPERTIES
      LABELS qemu TIMEOUT 60 FIXTURES_REQUIRED ${prefix})
endfunction()

deviso_seed_dma_qemu(NAME default)
deviso_seed_dma_qemu(NAME moved
    ARGS --devices "${PROJECT_SOURCE_DIR}/examples/seed_dma/qemu-devices-moved")
