# The CTest tests of a QEMU demo (examples/<name>/qemu_tests.cmake uses this).
#
# deviso_qemu_demo_tests(PREFIX <prefix> SCRIPT <qemu_test.sh> OUT <dir> LABELS <label>...
#                        STEPS <name=text>... [NOTES <name=text>...] [CHECKS <name=args>...]
#                        [ARGS <run args>...])
#   One QEMU run, the fixture <prefix>_run (`SCRIPT run OUT ARGS...`, RUN_SERIAL), then, each
#   requiring it:
#     <prefix>_<name>        `SCRIPT step OUT text`: the console has "[PASS] text";
#     <prefix>_note_<name>   `SCRIPT note OUT text`: the console has "[NOTE] text" (what a check
#                            proves less on this IOMMU, said explicitly);
#     <prefix>_<name>        `SCRIPT <args> ...` for each CHECKS entry "name=subcommand [arg...]",
#                            run as `SCRIPT subcommand OUT arg...` (e.g. checks of QEMU's trace).
#   Every test gets LABELS.

include_guard(GLOBAL)

function(deviso_qemu_demo_tests)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "PREFIX;SCRIPT;OUT" "LABELS;STEPS;NOTES;CHECKS;ARGS")
  if(arg_UNPARSED_ARGUMENTS OR NOT arg_PREFIX OR NOT arg_SCRIPT OR NOT arg_OUT OR NOT arg_STEPS)
    message(FATAL_ERROR "deviso_qemu_demo_tests: PREFIX, SCRIPT, OUT and STEPS are required")
  endif()
  set(prefix "${arg_PREFIX}")
  add_test(NAME ${prefix}_run COMMAND "${arg_SCRIPT}" run "${arg_OUT}" ${arg_ARGS})
  set_tests_properties(${prefix}_run PROPERTIES
      LABELS "${arg_LABELS}" TIMEOUT 600 RUN_SERIAL TRUE FIXTURES_SETUP ${prefix})
  set(checks)
  foreach(kind IN ITEMS step note check)
    if(kind STREQUAL "step")
      set(entries ${arg_STEPS})
    elseif(kind STREQUAL "note")
      set(entries ${arg_NOTES})
    else()
      set(entries ${arg_CHECKS})
    endif()
    foreach(entry IN LISTS entries)
      string(FIND "${entry}" "=" eq)
      string(SUBSTRING "${entry}" 0 ${eq} name)
      math(EXPR eq "${eq} + 1")
      string(SUBSTRING "${entry}" ${eq} -1 value)
      if(kind STREQUAL "step")
        add_test(NAME ${prefix}_${name} COMMAND "${arg_SCRIPT}" step "${arg_OUT}" "${value}")
        list(APPEND checks ${prefix}_${name})
      elseif(kind STREQUAL "note")
        add_test(NAME ${prefix}_note_${name} COMMAND "${arg_SCRIPT}" note "${arg_OUT}" "${value}")
        list(APPEND checks ${prefix}_note_${name})
      else()
        separate_arguments(words UNIX_COMMAND "${value}")
        list(POP_FRONT words subcommand)
        add_test(NAME ${prefix}_${name}
                 COMMAND "${arg_SCRIPT}" ${subcommand} "${arg_OUT}" ${words})
        list(APPEND checks ${prefix}_${name})
      endif()
    endforeach()
  endforeach()
  set_tests_properties(${checks} PROPERTIES
      LABELS "${arg_LABELS}" TIMEOUT 60 FIXTURES_REQUIRED ${prefix})
endfunction()
