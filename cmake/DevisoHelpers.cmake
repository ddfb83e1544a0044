# Helpers for deviso's tests and benchmarks.
#
# deviso_add_test(NAME <name> SOURCES <src>... [LIBS <lib>...] [LABELS <label>...]
#                 [TIMEOUT <seconds>])
#   A GoogleTest executable <name> registered with CTest as one test (the whole binary), with the
#   given CTest LABELS and TIMEOUT (default 300 s). Links GTest::gtest_main, GTest::gmock,
#   deviso_warnings and deviso_panic_host, and sees both include/ and src/ (white-box tests).
#   Does nothing unless DEVISO_BUILD_TESTS is ON.
#
# deviso_add_benchmark(NAME <name> SOURCES <src>... [LIBS <lib>...])
#   A Google Benchmark executable written to ${CMAKE_BINARY_DIR}/bench/<name> (scripts/bench runs
#   every executable there). Links benchmark::benchmark_main, deviso_warnings and
#   deviso_panic_host, and sees include/ and src/. Does nothing unless DEVISO_BUILD_BENCH is ON.

include_guard(GLOBAL)

set(DEVISO_DEFAULT_TEST_TIMEOUT 300)

function(deviso_add_test)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "deviso_add_test: unknown arguments: ${arg_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT arg_NAME OR NOT arg_SOURCES)
    message(FATAL_ERROR "deviso_add_test: NAME and SOURCES are required")
  endif()
  if(NOT DEVISO_BUILD_TESTS)
    return()
  endif()
  if(NOT arg_TIMEOUT)
    set(arg_TIMEOUT ${DEVISO_DEFAULT_TEST_TIMEOUT})
  endif()

  add_executable(${arg_NAME} ${arg_SOURCES})
  target_include_directories(${arg_NAME} PRIVATE
      "${PROJECT_SOURCE_DIR}/include" "${PROJECT_SOURCE_DIR}/src")
  target_link_libraries(${arg_NAME} PRIVATE
      ${arg_LIBS} deviso_panic_host deviso_warnings GTest::gmock GTest::gtest_main)
  # The library is built without RTTI; test doubles derive from its classes, so match it.
  target_compile_options(${arg_NAME} PRIVATE "$<$<COMPILE_LANGUAGE:CXX>:-fno-rtti>")

  add_test(NAME ${arg_NAME} COMMAND ${arg_NAME})
  set_tests_properties(${arg_NAME} PROPERTIES TIMEOUT ${arg_TIMEOUT})
  if(arg_LABELS)
    set_tests_properties(${arg_NAME} PROPERTIES LABELS "${arg_LABELS}")
  endif()
endfunction()

function(deviso_add_benchmark)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "NAME" "SOURCES;LIBS")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "deviso_add_benchmark: unknown arguments: ${arg_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT arg_NAME OR NOT arg_SOURCES)
    message(FATAL_ERROR "deviso_add_benchmark: NAME and SOURCES are required")
  endif()
  if(NOT DEVISO_BUILD_BENCH)
    return()
  endif()

  add_executable(${arg_NAME} ${arg_SOURCES})
  target_include_directories(${arg_NAME} PRIVATE
      "${PROJECT_SOURCE_DIR}/include" "${PROJECT_SOURCE_DIR}/src")
  target_link_libraries(${arg_NAME} PRIVATE
      ${arg_LIBS} deviso_panic_host deviso_warnings benchmark::benchmark_main)
  target_compile_options(${arg_NAME} PRIVATE "$<$<COMPILE_LANGUAGE:CXX>:-fno-rtti>")
  set_target_properties(${arg_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/bench")
endfunction()

# deviso_add_fuzzer(NAME <name> SOURCES <src>... [LIBS <lib>...])
#   A libFuzzer executable <name> (clang, -fsanitize=fuzzer on top of the preset's ASan +
#   UBSan) beside the code it fuzzes, with its seed corpus in <name>_corpus/ there. Links
#   deviso_panic_host and deviso_warnings, sees include/ and src/. Does nothing unless
#   DEVISO_BUILD_FUZZERS is ON. scripts/fuzz runs it; scripts/test smoke-runs it.
function(deviso_add_fuzzer)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "NAME" "SOURCES;LIBS")
  if(arg_UNPARSED_ARGUMENTS OR NOT arg_NAME OR NOT arg_SOURCES)
    message(FATAL_ERROR "deviso_add_fuzzer: NAME and SOURCES are required")
  endif()
  if(NOT DEVISO_BUILD_FUZZERS)
    return()
  endif()
  add_executable(${arg_NAME} ${arg_SOURCES})
  target_include_directories(${arg_NAME} PRIVATE
      "${PROJECT_SOURCE_DIR}/include" "${PROJECT_SOURCE_DIR}/src")
  target_link_libraries(${arg_NAME} PRIVATE ${arg_LIBS} deviso_panic_host deviso_warnings)
  target_compile_options(${arg_NAME} PRIVATE -fsanitize=fuzzer -fno-rtti)
  target_link_options(${arg_NAME} PRIVATE -fsanitize=fuzzer)
endfunction()
