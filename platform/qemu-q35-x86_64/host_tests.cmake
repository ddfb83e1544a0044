# Host tests of the q35 platform's portable parts (included by the top-level CMakeLists.txt in
# host builds; preset host): the ACPI scan (over src/acpi) on the tables dumped from QEMU
# (src/acpi/testdata) and corrupted copies, the PCI listing on a simulated configuration space, and the platform's
# printf against the C library's.
set(deviso_q35_dir "${PROJECT_SOURCE_DIR}/platform/qemu-q35-x86_64")
deviso_add_test(
  NAME q35_acpi_scan_test
  SOURCES "${deviso_q35_dir}/acpi_scan.cc" "${deviso_q35_dir}/acpi_scan_test.cc"
  LIBS deviso_acpi
  LABELS platform q35)
deviso_add_test(
  NAME q35_format_test
  SOURCES "${deviso_q35_dir}/format.cc" "${deviso_q35_dir}/format_test.cc"
  LABELS platform q35)
deviso_add_test(
  NAME q35_pci_list_test
  SOURCES "${deviso_q35_dir}/pci_list.cc" "${deviso_q35_dir}/pci_list_test.cc"
  LABELS platform q35)
if(TARGET q35_acpi_scan_test)
  target_include_directories(q35_pci_list_test PRIVATE "${deviso_q35_dir}")
  target_include_directories(q35_acpi_scan_test PRIVATE "${deviso_q35_dir}")
  target_include_directories(q35_format_test PRIVATE "${deviso_q35_dir}")
  target_compile_definitions(q35_acpi_scan_test PRIVATE
      "DEVISO_ACPI_TESTDATA=\"${PROJECT_SOURCE_DIR}/src/acpi/testdata\"")
endif()
