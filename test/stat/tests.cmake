# Observability end to end (docs/OBSERVABILITY.md): hwsock-vmm's control
# socket and --pcap, hwsock-stat, and the guest driver's hwsock_guest_dump
# (through vmm_client --hold). test/stat/stat_test.py runs one scenario per
# ctest test, reusing test/vmm's client, echo server and helpers.
# vmm_client is defined by test/vmm/tests.cmake under these same conditions.
if(NOT TARGET hwsock-vmm OR NOT TARGET hwsock-guest OR NOT TARGET hwsock-stat)
  return()
endif()
find_program(HWSOCK_PYTHON3 python3)
find_program(HWSOCK_TSHARK tshark)
if(NOT HWSOCK_PYTHON3 OR NOT HWSOCK_TSHARK)
  message(WARNING "python3 or tshark not found (scripts/deps installs them): "
                  "observability tests skipped")
  return()
endif()

foreach(scenario table many control openmetrics)
  add_test(NAME stat_${scenario}
    COMMAND "${HWSOCK_PYTHON3}" "${CMAKE_CURRENT_LIST_DIR}/stat_test.py"
      --vmm $<TARGET_FILE:hwsock-vmm>
      --client $<TARGET_FILE:vmm_client>
      --echo "${PROJECT_SOURCE_DIR}/test/vmm/echo_server.py"
      --stat $<TARGET_FILE:hwsock-stat>
      --tshark "${HWSOCK_TSHARK}"
      ${scenario})
  set_tests_properties(stat_${scenario} PROPERTIES TIMEOUT 60 LABELS "vmm;stat")
endforeach()
