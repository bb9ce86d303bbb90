# The loopback VMM end to end: real processes (hwsock-vmm, guest clients, a
# TCP echo server on 127.0.0.1), real sockets. test/vmm/vmm_test.py runs
# one scenario per ctest test.
if(NOT TARGET hwsock-vmm OR NOT TARGET hwsock-guest)
  return()
endif()
find_program(HWSOCK_PYTHON3 python3)
if(NOT HWSOCK_PYTHON3)
  message(WARNING "python3 not found: loopback VMM tests skipped")
  return()
endif()

add_executable(vmm_client "${CMAKE_CURRENT_LIST_DIR}/vmm_client.c")
# guest programs: the guest library alone (no device side)
target_link_libraries(vmm_client PRIVATE hwsock-guest)
add_executable(quota_client "${CMAKE_CURRENT_LIST_DIR}/quota_client.c")
target_link_libraries(quota_client PRIVATE hwsock-guest)
# A raw ring (the test support's vring builder) for the flooding guest.
add_executable(flood_client "${CMAKE_CURRENT_LIST_DIR}/flood_client.c")
target_link_libraries(flood_client PRIVATE hwsock-guest hwsock_test_support
                      hwsock)

foreach(scenario two_guests polling kill_guest kill_vmm policy_deny bad_guests
                 max_guests needs_reset pcap_files socket_mode fd_quota
                 fd_backoff flood)
  add_test(NAME vmm_${scenario}
    COMMAND "${HWSOCK_PYTHON3}" "${CMAKE_CURRENT_LIST_DIR}/vmm_test.py"
      --vmm $<TARGET_FILE:hwsock-vmm>
      --client $<TARGET_FILE:vmm_client>
      --quota $<TARGET_FILE:quota_client>
      --flood $<TARGET_FILE:flood_client>
      --echo "${CMAKE_CURRENT_LIST_DIR}/echo_server.py"
      --policy "${CMAKE_CURRENT_LIST_DIR}/deny-port.yaml.in"
      ${scenario})
  # Each scenario bounds its own waits well below this.
  # 77: the scenario needs what the machine lacks (socket_mode: root)
  set_tests_properties(vmm_${scenario} PROPERTIES TIMEOUT 60 LABELS vmm
                       SKIP_RETURN_CODE 77)
endforeach()

# IPX between guests (docs/IPX.md, "hwsock-vmm"): two guests of one VMM,
# one guest on each of two VMMs that list each other, slot handout, and the
# --pcap capture decoded by tshark. test/vmm/ipx_test.py, one scenario per
# test; UDP ports 21300+ on 127.0.0.1, probed free before use.
add_executable(ipx_client "${CMAKE_CURRENT_LIST_DIR}/ipx_client.c")
target_link_libraries(ipx_client PRIVATE hwsock-guest)
find_program(HWSOCK_TSHARK tshark)
foreach(scenario one_vmm two_vmms slots pcap takeover)
  add_test(NAME vmm_ipx_${scenario}
    COMMAND "${HWSOCK_PYTHON3}" "${CMAKE_CURRENT_LIST_DIR}/ipx_test.py"
      --vmm $<TARGET_FILE:hwsock-vmm>
      --client $<TARGET_FILE:ipx_client>
      --tshark "${HWSOCK_TSHARK}"
      ${scenario})
  # 77: a tool the scenario needs (tshark) is missing
  set_tests_properties(vmm_ipx_${scenario} PROPERTIES TIMEOUT 90 LABELS vmm
                       SKIP_RETURN_CODE 77)
endforeach()

# examples/minimal-vmm: a VMM with its own epoll loop (embed mode), and
# with the device on its own thread, serves a guest echoing through TCP.
if(TARGET minimal-vmm)
  foreach(mode loop thread)
    set(_arg)
    if(mode STREQUAL "thread")
      set(_arg --thread)
    endif()
    add_test(NAME vmm_minimal_${mode}
      COMMAND "${HWSOCK_PYTHON3}" "${CMAKE_CURRENT_LIST_DIR}/minimal_vmm_test.py"
        $<TARGET_FILE:minimal-vmm> $<TARGET_FILE:vmm_client>
        "${CMAKE_CURRENT_LIST_DIR}/echo_server.py"
        "${HWSOCK_BUILD_BACKEND_DIR}" ${_arg})
    set_tests_properties(vmm_minimal_${mode} PROPERTIES TIMEOUT 120
                         LABELS "process;vmm")
  endforeach()
endif()

# --takeover (docs/EMBEDDING.md section 12): one guest streams on 20
# connections while the VMM is replaced 5 times (nothing lost), and what a
# SIGKILL of the VMM leaves. test/vmm/takeover_test.py, one scenario each.
add_executable(takeover_client "${CMAKE_CURRENT_LIST_DIR}/takeover_client.c")
target_link_libraries(takeover_client PRIVATE hwsock-guest Threads::Threads)
foreach(scenario replace replace_evq kill refused)
  add_test(NAME vmm_takeover_${scenario}
    COMMAND "${HWSOCK_PYTHON3}" "${CMAKE_CURRENT_LIST_DIR}/takeover_test.py"
      --vmm $<TARGET_FILE:hwsock-vmm>
      --client $<TARGET_FILE:takeover_client>
      ${scenario})
  set_tests_properties(vmm_takeover_${scenario} PROPERTIES TIMEOUT 300
                       LABELS "process;integration;vmm")
endforeach()
# hwsock-stat after a takeover continues the old VMM's figures
if(TARGET hwsock-stat)
  add_test(NAME vmm_takeover_counters
    COMMAND "${HWSOCK_PYTHON3}" "${CMAKE_CURRENT_LIST_DIR}/takeover_test.py"
      --vmm $<TARGET_FILE:hwsock-vmm>
      --client $<TARGET_FILE:takeover_client>
      --stat $<TARGET_FILE:hwsock-stat>
      counters)
  set_tests_properties(vmm_takeover_counters PROPERTIES TIMEOUT 300
                       LABELS "process;integration;vmm;stat")
endif()
