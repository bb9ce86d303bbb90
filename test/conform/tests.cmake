# Conformance (docs/EMBEDDING.md, "Conformance"): tools/hwsock-conform
# against a real hwsock-vmm passes every clause, and against broken_vmm (a
# relay with one fault: a wrong protocol_version in HELLO, or FEATURES with
# the event queue bit taken away or forced; test-only, no test behaviour in
# shipped programs) it exits non-zero naming exactly the clauses broken.
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

# The same clauses over vhost-user: hwsock-conform --vhost-user plays the
# front-end against hwsock-vhost-user; the loopback transport's own clauses
# are skipped.
if(TARGET hwsock-vhost-user)
  add_test(NAME conform_vhost_user
    COMMAND "${HWSOCK_PYTHON3}" "${CMAKE_CURRENT_LIST_DIR}/conform_test.py"
      --vhost $<TARGET_FILE:hwsock-vhost-user>
      --conform $<TARGET_FILE:hwsock-conform>
      --echo "${PROJECT_SOURCE_DIR}/test/vmm/echo_server.py")
  set_tests_properties(conform_vhost_user PROPERTIES TIMEOUT 120
                       LABELS "process;conform;vhost-user")
endif()
