# Conformance (docs/EMBEDDING.md, "Conformance"): tools/hwsock-conform
# against a real hwsock-vmm passes every clause, and against broken_vmm (a
# relay whose HELLO reply carries a wrong protocol_version; test-only, no
# test behaviour in shipped programs) it exits non-zero naming that clause.
if(NOT TARGET hwsock-vmm OR NOT TARGET hwsock-conform)
  return()
endif()
find_program(HWSOCK_PYTHON3 python3)
if(NOT HWSOCK_PYTHON3)
  message(WARNING "python3 not found: conformance test skipped")
  return()
endif()

add_executable(broken_vmm "${CMAKE_CURRENT_LIST_DIR}/broken_vmm.c")
target_link_libraries(broken_vmm PRIVATE hwsock)

add_test(NAME conform_vmm
  COMMAND "${HWSOCK_PYTHON3}" "${CMAKE_CURRENT_LIST_DIR}/conform_test.py"
    --vmm $<TARGET_FILE:hwsock-vmm>
    --conform $<TARGET_FILE:hwsock-conform>
    --broken $<TARGET_FILE:broken_vmm>
    --echo "${PROJECT_SOURCE_DIR}/test/vmm/echo_server.py")
set_tests_properties(conform_vmm PROPERTIES TIMEOUT 120
                     LABELS "process;conform")
