# The virtio-iommu bring-up image on QEMU `virt` + virtio-iommu-pci (included by the top-level
# CMakeLists.txt into the host build's tests; labels `qemu` and `virtio`).
add_test(NAME qemu_virtio_iommu_smoke
    COMMAND "${PROJECT_SOURCE_DIR}/scripts/demo" --iommu virtio --image virtio_iommu_smoke --check)
set_tests_properties(qemu_virtio_iommu_smoke PROPERTIES
    LABELS "qemu;virtio" TIMEOUT 600 RUN_SERIAL TRUE)
