# deviso as a package (issue 16): the namespaced targets, install() with an export set,
# devisoConfig.cmake + devisoConfigVersion.cmake and deviso.pc. Included once at the end of the
# top-level CMakeLists.txt, after every library is defined, so the components' CMakeLists.txt
# stay as they are. docs/user-guide.md ("Using deviso from another project") describes the result.
#
# Targets (ALIAS in the tree, exported under the same names when installed):
#   deviso::deviso         the C ABI (deviso.h) and the core (registry.h), with the OS port
#   deviso::pgtable        the VMSAv8-64 translation-table engine
#   deviso::smmuv3         the Arm SMMUv3 backend
#   deviso::virtio_iommu   the virtio-iommu backend
#   deviso::dma            DMA pools and the IOVA allocator
#   deviso::dt             devicetree binding (needs libfdt)
#   deviso::acpi           ACPI tables: RSDP, RSDT/XSDT, MCFG, DMAR (docs/acpi.md)
#   deviso::pci            PCI enumeration over a configuration-space accessor (ECAM)
#   deviso::panic_host     host only: deviso_panic() printing to stderr and calling abort()
#                          (a bare-metal or RTOS port defines its own; the baremetal port does)
#   deviso::smmuv3_model   host only: the register-level SMMUv3 model the tests run against
#
# Headers: include/deviso/ (the C and C++ API) and the generated deviso/config.h and
# deviso/port/os_backend.h are the public include directory <prefix>/include. The modules' own
# headers (src/<module>/*.h: the backend classes Smmuv3 and VirtioIommu, the engine, the pools,
# devicetree) are installed under <prefix>/include/deviso/modules/ and reached, as in the tree,
# as "smmuv3/smmuv3.h", "pgtable/pgtable.h", ...: only through the module targets, never through
# deviso::deviso. They are what platform code uses to construct units; they are not yet a
# stable API.

include_guard(GLOBAL)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(deviso_modules_includedir "${CMAKE_INSTALL_INCLUDEDIR}/deviso/modules")
set(deviso_cmakedir "${CMAKE_INSTALL_LIBDIR}/cmake/deviso")

# name -> in-tree target. The flag targets are exported too: static libraries carry their
# PRIVATE links as $<LINK_ONLY:...>, which add nothing to a consumer's compile or link line.
set(deviso_package_targets
    deviso:deviso_core pgtable:deviso_pgtable smmuv3:deviso_smmuv3
    virtio_iommu:deviso_virtio_iommu dma:deviso_dma dt:deviso_dt acpi:deviso_acpi
    pci:deviso_pci port:deviso_port
    warnings:deviso_warnings core_flags:deviso_core_flags)
if(NOT DEVISO_PORT STREQUAL "baremetal")
  # An installable host deviso_panic(): an archive of the source the tests' object library
  # (deviso_panic_host) compiles, so that a program's own definition takes precedence.
  add_library(deviso_panic_host_archive STATIC "${PROJECT_SOURCE_DIR}/src/core/panic_host.cc")
  set_target_properties(deviso_panic_host_archive PROPERTIES OUTPUT_NAME deviso_panic_host)
  target_link_libraries(deviso_panic_host_archive
      PUBLIC deviso_port
      PRIVATE deviso_warnings deviso_core_flags)
  list(APPEND deviso_package_targets panic_host:deviso_panic_host_archive)
  if(TARGET deviso_smmu_model)
    list(APPEND deviso_package_targets smmuv3_model:deviso_smmu_model)
  endif()
endif()

set(deviso_installed_targets)
foreach(entry IN LISTS deviso_package_targets)
  string(REPLACE ":" ";" entry "${entry}")
  list(GET entry 0 name)
  list(GET entry 1 target)
  if(NOT TARGET ${target})
    message(FATAL_ERROR "DevisoInstall: target ${target} (deviso::${name}) is not defined")
  endif()
  add_library(deviso::${name} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name})
  list(APPEND deviso_installed_targets ${target})
endforeach()

# The public headers are C++20 (<span>) and C11; consumers get the same.
target_compile_features(deviso_core PUBLIC cxx_std_20 c_std_11)
target_compile_features(deviso_port PUBLIC cxx_std_20)

# The library is built without RTTI: a class deriving from one of its classes whose key function
# is in the library (the model's SimPhysMemory::Tables from pgtable::TablePool) must be too.
if(TARGET deviso_smmu_model)
  target_compile_options(deviso_smmu_model INTERFACE "$<$<COMPILE_LANGUAGE:CXX>:-fno-rtti>")
endif()

if(NOT DEVISO_INSTALL)
  return()
endif()

# Installed include directories.
target_include_directories(deviso_port INTERFACE
    "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
target_include_directories(deviso_core INTERFACE
    "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
foreach(target deviso_pgtable deviso_smmuv3 deviso_virtio_iommu deviso_dma deviso_dt deviso_acpi
    deviso_pci)
  target_include_directories(${target} INTERFACE
      "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>"
      "$<INSTALL_INTERFACE:${deviso_modules_includedir}>")
endforeach()
if(TARGET deviso_smmu_model AND NOT DEVISO_PORT STREQUAL "baremetal")
  target_include_directories(deviso_smmu_model INTERFACE
      "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>"
      "$<INSTALL_INTERFACE:${deviso_modules_includedir}>")
endif()

install(TARGETS ${deviso_installed_targets}
    EXPORT deviso-targets
    ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(EXPORT deviso-targets
    NAMESPACE deviso::
    FILE devisoTargets.cmake
    DESTINATION "${deviso_cmakedir}")

# Public headers: include/deviso/ without the other ports' backends, and the generated ones.
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/deviso"
    DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
    FILES_MATCHING PATTERN "*.h"
    PATTERN "port/host" EXCLUDE
    PATTERN "port/baremetal" EXCLUDE
    PATTERN "port/baremetal_x86" EXCLUDE)
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/deviso/port/${DEVISO_PORT}"
    DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/deviso/port"
    FILES_MATCHING PATTERN "*.h")
install(FILES "${PROJECT_BINARY_DIR}/include/deviso/config.h"
    DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/deviso")
install(FILES "${PROJECT_BINARY_DIR}/include/deviso/port/os_backend.h"
    DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/deviso/port")

# The modules' headers (not their tests' helpers, not the host-only test code).
foreach(module core pgtable smmuv3 virtio_iommu dma dt acpi pci)
  install(DIRECTORY "${PROJECT_SOURCE_DIR}/src/${module}"
      DESTINATION "${deviso_modules_includedir}"
      FILES_MATCHING PATTERN "*.h"
      PATTERN "*_test*" EXCLUDE
      PATTERN "c_api_c_program.h" EXCLUDE
      PATTERN "testing" EXCLUDE)
endforeach()
if(TARGET deviso_smmu_model AND NOT DEVISO_PORT STREQUAL "baremetal")
  install(DIRECTORY "${PROJECT_SOURCE_DIR}/src/smmuv3/testing"
      DESTINATION "${deviso_modules_includedir}/smmuv3"
      FILES_MATCHING PATTERN "*.h")
  install(FILES "${PROJECT_SOURCE_DIR}/src/testing/sim_memory.h"
      DESTINATION "${deviso_modules_includedir}/testing")
endif()

# libfdt as deviso_dt links it: the config file recreates the imported target at this path.
get_target_property(deviso_libfdt_location deviso_libfdt IMPORTED_LOCATION)
get_target_property(deviso_libfdt_include deviso_libfdt INTERFACE_INCLUDE_DIRECTORIES)

configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/devisoConfig.cmake.in"
    "${PROJECT_BINARY_DIR}/devisoConfig.cmake"
    INSTALL_DESTINATION "${deviso_cmakedir}")
# SameMinorVersion: 0.x releases may change the API between minor versions.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/devisoConfigVersion.cmake"
    VERSION "${PROJECT_VERSION}"
    COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/devisoConfig.cmake"
              "${PROJECT_BINARY_DIR}/devisoConfigVersion.cmake"
    DESTINATION "${deviso_cmakedir}")

# pkg-config: the C ABI and the core with the OS port (static libraries, so the C++ runtime is
# listed too). On the host the default deviso_panic() comes with it (an archive member: a
# program's own definition takes precedence).
if(DEVISO_PORT STREQUAL "baremetal")
  set(deviso_pc_libs "-ldeviso_core -ldeviso_port")
else()
  set(deviso_pc_libs "-ldeviso_core -ldeviso_port -ldeviso_panic_host -lstdc++ -pthread")
endif()
configure_file("${PROJECT_SOURCE_DIR}/cmake/deviso.pc.in" "${PROJECT_BINARY_DIR}/deviso.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/deviso.pc"
    DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
