# Adversarial guests (docs/SECURITY.md, "Adversarial guests"): a raw guest
# (adv_guest: rings and requests written by hand, not through the driver)
# attacks a real hwsock-vmm over the loopback attach transport, one case per
# process, while test/adversarial/adversarial_test.py checks after each case
# that the VMM is alive, idle (CPU time), holds no more fds than before and
# still serves a well-behaved guest's echo exchange; at the end the VMM must
# exit 0 on SIGTERM with no sanitizer report (LSan runs at its exit in the
# ASan build). One ctest test per group of cases.
if(NOT TARGET hwsock-vmm OR NOT TARGET hwsock-guest)
  return()
endif()
find_program(HWSOCK_PYTHON3 python3)
if(NOT HWSOCK_PYTHON3)
  message(WARNING "python3 not found: adversarial tests skipped")
  return()
endif()

add_executable(adv_guest
  "${CMAKE_CURRENT_LIST_DIR}/adv_guest.c"
  "${CMAKE_CURRENT_LIST_DIR}/adv_raw.c"
  "${CMAKE_CURRENT_LIST_DIR}/adv_ring.c"
  "${CMAKE_CURRENT_LIST_DIR}/adv_req.c"
  "${CMAKE_CURRENT_LIST_DIR}/adv_race.c")
target_include_directories(adv_guest PRIVATE "${PROJECT_SOURCE_DIR}/test")
target_link_libraries(adv_guest PRIVATE hwsock-guest hwsock_test_support
                      hwsock Threads::Threads)

foreach(group ring req race)
  add_test(NAME adversarial_${group}
    COMMAND "${HWSOCK_PYTHON3}" "${CMAKE_CURRENT_LIST_DIR}/adversarial_test.py"
      --vmm $<TARGET_FILE:hwsock-vmm>
      --guest $<TARGET_FILE:adv_guest>
      --echo "${PROJECT_SOURCE_DIR}/test/vmm/echo_server.py"
      ${group})
  # each group runs in 10..35 s; the timeout leaves room for a loaded machine
  set_tests_properties(adversarial_${group} PROPERTIES TIMEOUT 120
                       LABELS "process;adversarial")
endforeach()

# Faults and load (docs/RELIABILITY.md): test/adversarial/load_test.py, one
# scenario per test, short versions (HWSOCK_TEST_FULL=1 for the long ones).
add_executable(load_guest
  "${CMAKE_CURRENT_LIST_DIR}/load_guest.c"
  "${CMAKE_CURRENT_LIST_DIR}/adv_raw.c")
target_include_directories(load_guest PRIVATE "${PROJECT_SOURCE_DIR}/test")
target_link_libraries(load_guest PRIVATE hwsock-guest hwsock_test_support
                      hwsock Threads::Threads)
# (hwsock-policy: a generator expression, whatever the order its folder is
# added in)
# (stall and stall_trickle read the device's counters and sockets through
# hwsock-stat.) The short versions take seconds; the timeout leaves room for
# the long ones.
foreach(scenario echo reset churn malformed policy restart stall
        stall_trickle)
  add_test(NAME load_${scenario}
    COMMAND "${HWSOCK_PYTHON3}" "${CMAKE_CURRENT_LIST_DIR}/load_test.py"
      --vmm $<TARGET_FILE:hwsock-vmm>
      --load $<TARGET_FILE:load_guest>
      --policy-tool $<TARGET_FILE:hwsock-policy>
      --stat $<TARGET_FILE:hwsock-stat>
      ${scenario})
  set_tests_properties(load_${scenario} PROPERTIES TIMEOUT 900
                       LABELS "process;adversarial;load")
endforeach()
