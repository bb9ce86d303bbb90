# No cycles between the .c files of a folder: scripts/file-cycles reads each
# object's defined and undefined symbols (nm) and fails on a circle of
# files that use each other. One test per folder: guest-driver/core,
# guest-driver/run, lib.
#
# Allowed exceptions (--allow A.c:B.c drops A's use of B), each with why it
# is still there:
#   (none)
find_package(Python3 COMPONENTS Interpreter)
find_program(HWSOCK_NM nm)
if(Python3_Interpreter_FOUND AND HWSOCK_NM)
  set(_fc "${PROJECT_SOURCE_DIR}/scripts/file-cycles")
  if(TARGET hwsock-guest)
    add_test(NAME file_cycles_guest_core
      COMMAND ${Python3_EXECUTABLE} "${_fc}" --name guest-driver/core
              --under core
              $<TARGET_OBJECTS:hwsock-guest>)
  endif()
  if(TARGET hwsock-run)
    add_test(NAME file_cycles_guest_run
      COMMAND ${Python3_EXECUTABLE} "${_fc}" --name guest-driver/run
              $<TARGET_OBJECTS:hwsock-run>)
  endif()
  add_test(NAME file_cycles_lib
    COMMAND ${Python3_EXECUTABLE} "${_fc}" --name lib
            $<TARGET_OBJECTS:hwsock_common> $<TARGET_OBJECTS:hwsock_obj>
            $<TARGET_OBJECTS:hwsock-uv> $<TARGET_OBJECTS:hwsock-capture>
            $<TARGET_OBJECTS:hwsock-ringtest>)
  foreach(_t file_cycles_guest_core file_cycles_guest_run file_cycles_lib)
    if(TEST ${_t})
      set_tests_properties(${_t} PROPERTIES TIMEOUT 60
                           LABELS "unit;structure")
    endif()
  endforeach()
endif()
