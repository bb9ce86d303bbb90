# hwsock-run integration tests (test/run/harness.py): real programs (curl,
# nc, python3, iperf3, a static C client, a TOCTOU race) under hwsock-run
# against real servers on 127.0.0.1. One ctest per harness test.
find_package(Python3 COMPONENTS Interpreter)
if(TARGET hwsock-run AND TARGET hwsock-vmm AND Python3_Interpreter_FOUND)
  # The C helpers are built with the plain compiler and no sanitizer flags:
  # one is linked -static (needs libc.a, from libc6-dev), and both stand for
  # ordinary programs, not for our code.
  set(_run_bin "${CMAKE_CURRENT_BINARY_DIR}/run")
  file(MAKE_DIRECTORY "${_run_bin}")
  add_custom_command(OUTPUT "${_run_bin}/static_echo"
    COMMAND "${CMAKE_C_COMPILER}" -static -O2 -o "${_run_bin}/static_echo"
            "${CMAKE_CURRENT_LIST_DIR}/static_echo.c"
    DEPENDS "${CMAKE_CURRENT_LIST_DIR}/static_echo.c" VERBATIM)
  add_custom_command(OUTPUT "${_run_bin}/toctou_race"
    COMMAND "${CMAKE_C_COMPILER}" -O2 -pthread -o "${_run_bin}/toctou_race"
            "${CMAKE_CURRENT_LIST_DIR}/toctou_race.c"
    DEPENDS "${CMAKE_CURRENT_LIST_DIR}/toctou_race.c" VERBATIM)
  # attack programs of the confinement tests (run_confine_escape, run_ptrace)
  foreach(p confine_escape ptrace_attack syscall_escape)
    add_custom_command(OUTPUT "${_run_bin}/${p}"
      COMMAND "${CMAKE_C_COMPILER}" -O2 -pthread -o "${_run_bin}/${p}"
              "${CMAKE_CURRENT_LIST_DIR}/${p}.c"
      DEPENDS "${CMAKE_CURRENT_LIST_DIR}/${p}.c" VERBATIM)
  endforeach()
  add_custom_target(hwsock_run_test_programs ALL
    DEPENDS "${_run_bin}/static_echo" "${_run_bin}/toctou_race"
            "${_run_bin}/confine_escape" "${_run_bin}/ptrace_attack"
            "${_run_bin}/syscall_escape")

  foreach(t exit_status private_vmm curl python_clients nc policy fork static
            toctou udp listen iperf3 hostile confine_escape ptrace
            declined bound_unspec wildcard_bind syscall_escape
            vmm_gone_listener vmm_gone_threads many_blocked_accepts
            takeover_reset_socket)
    add_test(NAME run_${t}
             COMMAND "${Python3_EXECUTABLE}"
                     "${CMAKE_CURRENT_LIST_DIR}/harness.py" ${t})
    set_tests_properties(run_${t} PROPERTIES TIMEOUT 120 ENVIRONMENT
      "HWSOCK_RUN=$<TARGET_FILE:hwsock-run>;HWSOCK_VMM=$<TARGET_FILE:hwsock-vmm>;HWSOCK_BACKENDS=${HWSOCK_BUILD_BACKEND_DIR};HWSOCK_TEST_BIN=${_run_bin}")
  endforeach()
  # The same real clients and servers against a VMM whose devices have the
  # event queue (--queues 2): stream sockets' device -> program direction
  # is then hwsock-run's dispatcher thread (pump.c), as with its private VMM.
  foreach(t curl python_clients nc listen iperf3 hostile)
    add_test(NAME run_evq_${t}
             COMMAND "${Python3_EXECUTABLE}"
                     "${CMAKE_CURRENT_LIST_DIR}/harness.py" ${t})
    set_tests_properties(run_evq_${t} PROPERTIES TIMEOUT 120 ENVIRONMENT
      "HWSOCK_RUN=$<TARGET_FILE:hwsock-run>;HWSOCK_VMM=$<TARGET_FILE:hwsock-vmm>;HWSOCK_BACKENDS=${HWSOCK_BUILD_BACKEND_DIR};HWSOCK_TEST_BIN=${_run_bin};HWSOCK_TEST_VMM_QUEUES=2")
  endforeach()
endif()

# AF_IPX end to end (test/run/ipx_run_test.py): an ordinary AF_IPX program
# (ipx_prog.c; the host kernel has no IPX) under hwsock-run exchanges
# datagrams with an IPX guest (test/vmm's ipx_client) through one
# hwsock-vmm --ipx-net. And hwsock-run --table (test/run/table_test.py).
if(TARGET hwsock-run AND TARGET hwsock-vmm AND Python3_Interpreter_FOUND)
  set(_run_bin "${CMAKE_CURRENT_BINARY_DIR}/run")
  add_custom_command(OUTPUT "${_run_bin}/ipx_prog"
    COMMAND "${CMAKE_C_COMPILER}" -O2 -o "${_run_bin}/ipx_prog"
            "${CMAKE_CURRENT_LIST_DIR}/ipx_prog.c"
    DEPENDS "${CMAKE_CURRENT_LIST_DIR}/ipx_prog.c" VERBATIM)
  add_custom_target(hwsock_run_ipx_prog ALL DEPENDS "${_run_bin}/ipx_prog")
  set(_run_env
    "HWSOCK_RUN=$<TARGET_FILE:hwsock-run>;HWSOCK_VMM=$<TARGET_FILE:hwsock-vmm>;HWSOCK_BACKENDS=${HWSOCK_BUILD_BACKEND_DIR};HWSOCK_TEST_BIN=${_run_bin}")
  # ipx_client is defined by test/vmm/tests.cmake (included after this file)
  add_test(NAME run_ipx
           COMMAND "${Python3_EXECUTABLE}"
                   "${CMAKE_CURRENT_LIST_DIR}/ipx_run_test.py")
  set_tests_properties(run_ipx PROPERTIES TIMEOUT 120 ENVIRONMENT
    "${_run_env};HWSOCK_IPX_CLIENT=$<TARGET_FILE:ipx_client>")
  add_test(NAME run_table
           COMMAND "${Python3_EXECUTABLE}"
                   "${CMAKE_CURRENT_LIST_DIR}/table_test.py")
  set_tests_properties(run_table PROPERTIES TIMEOUT 120 ENVIRONMENT
    "${_run_env}")
endif()

# What programs see (test/run/sem_test.py): kernel semantics that unmodified
# programs rely on, each compared with the same program run natively.
if(TARGET hwsock-run AND TARGET hwsock-vmm AND Python3_Interpreter_FOUND)
  foreach(t udp_refused asyncio_udp_refused edestaddrreq getsockname
            peek_fork messages options reuseaddr_restart write_and_exit
            signals rcvtimeo sndtimeo connect_restart soft_errors
            big_datagrams nb_refused)
    add_test(NAME run_sem_${t}
             COMMAND "${Python3_EXECUTABLE}"
                     "${CMAKE_CURRENT_LIST_DIR}/sem_test.py" ${t})
    set_tests_properties(run_sem_${t} PROPERTIES TIMEOUT 120 ENVIRONMENT
      "HWSOCK_RUN=$<TARGET_FILE:hwsock-run>;HWSOCK_VMM=$<TARGET_FILE:hwsock-vmm>;HWSOCK_BACKENDS=${HWSOCK_BUILD_BACKEND_DIR}")
  endforeach()
  # The datagram ones against a VMM with the event queue (--queues 2): an
  # ICMP error is a soft ERROR event there (PROTOCOL.md §16.9); before it,
  # the first ECONNREFUSED ended the socket's read side.
  # big_datagrams: a UDP datagram longer than a 16 KiB event buffer
  # arrived truncated (issue 13).
  # cut_datagrams: with small guest memory (16 KiB event buffers) a datagram
  # the device cut reached the program shorter, without MSG_TRUNC.
  foreach(t udp_refused asyncio_udp_refused edestaddrreq peek_fork signals
            rcvtimeo soft_errors big_datagrams cut_datagrams nb_refused)
    add_test(NAME run_evq_sem_${t}
             COMMAND "${Python3_EXECUTABLE}"
                     "${CMAKE_CURRENT_LIST_DIR}/sem_test.py" ${t})
    set_tests_properties(run_evq_sem_${t} PROPERTIES TIMEOUT 120 ENVIRONMENT
      "HWSOCK_RUN=$<TARGET_FILE:hwsock-run>;HWSOCK_VMM=$<TARGET_FILE:hwsock-vmm>;HWSOCK_BACKENDS=${HWSOCK_BUILD_BACKEND_DIR};HWSOCK_TEST_VMM_QUEUES=2")
  endforeach()
endif()

# Unmodified servers and relays under hwsock-run (test/run/programs_test.py),
# against a VMM with the event queue, each compared with the same exchange
# without hwsock-run: nginx with Debian's sendfile/tcp_nopush defaults, a
# socat UDP client (shutdown at the end of its input), a socat UDP-RECVFROM
# fork server, a socat TCP-LISTEN fork relay and a python3 client's
# sendto(MSG_FASTOPEN), and SIGSTOP of a python3 program whose second
# thread is blocked in accept.
if(TARGET hwsock-run AND TARGET hwsock-vmm AND Python3_Interpreter_FOUND)
  foreach(t nginx socat_udp_client socat_udp_server socat_tcp_relay fastopen
            stop)
    add_test(NAME run_evq_prog_${t}
             COMMAND "${Python3_EXECUTABLE}"
                     "${CMAKE_CURRENT_LIST_DIR}/programs_test.py" ${t})
    set_tests_properties(run_evq_prog_${t} PROPERTIES TIMEOUT 120 LABELS run
      ENVIRONMENT
      "HWSOCK_RUN=$<TARGET_FILE:hwsock-run>;HWSOCK_VMM=$<TARGET_FILE:hwsock-vmm>;HWSOCK_BACKENDS=${HWSOCK_BUILD_BACKEND_DIR};HWSOCK_TEST_VMM_QUEUES=2")
  endforeach()
endif()

# Many offloaded connections under one hwsock-run (test/run/many_test.py,
# issue 13): an epoll client with 2,000 connections open at once, one
# moving 200 x 256 KiB, every byte checked (HWSOCK_TEST_FULL=1: 10,000 and
# 1,000 x 1 MiB), 1,000 connections shut down for writing and waiting for
# the peer's end (5,000), and 1,000 UDP sockets open at once (5,000); each
# checks that hwsock-run's threads do not grow with the sockets. accept: 300
# connections accepted one by one under hwsock-run, the dispatcher not
# spinning on sockets it does not know yet.
if(TARGET hwsock-run AND TARGET hwsock-vmm AND Python3_Interpreter_FOUND)
  foreach(t many bulk half udp_many accept)
    add_test(NAME run_${t}
             COMMAND "${Python3_EXECUTABLE}"
                     "${CMAKE_CURRENT_LIST_DIR}/many_test.py" ${t})
    set_tests_properties(run_${t} PROPERTIES TIMEOUT 600 ENVIRONMENT
      "HWSOCK_RUN=$<TARGET_FILE:hwsock-run>;HWSOCK_VMM=$<TARGET_FILE:hwsock-vmm>;HWSOCK_BACKENDS=${HWSOCK_BUILD_BACKEND_DIR}")
  endforeach()
endif()

# hwsock-run's one error domain (guest-driver/run/err.c, a leaf file): every
# errno it answers survives host errno -> HWSOCK_E* -> errno. In-process.
hwsock_criterion_test(test_run_err "${CMAKE_CURRENT_LIST_DIR}/test_run_err.c"
                      "${PROJECT_SOURCE_DIR}/guest-driver/run/err.c")
target_include_directories(test_run_err PRIVATE
                           "${PROJECT_SOURCE_DIR}/guest-driver/run")
set_tests_properties(test_run_err PROPERTIES LABELS "unit;run")

# hwsock-run names why the device stopped (test/run/reset_test.py): a fake
# VMM (reset_vmm.c) answers the first request with NEEDS_RESET, or hangs up.
if(TARGET hwsock-run AND Python3_Interpreter_FOUND)
  add_executable(reset_vmm "${CMAKE_CURRENT_LIST_DIR}/reset_vmm.c")
  target_link_libraries(reset_vmm PRIVATE hwsock_internal)
  foreach(t needs_reset hangup)
    add_test(NAME run_device_reset_${t}
             COMMAND "${Python3_EXECUTABLE}"
                     "${CMAKE_CURRENT_LIST_DIR}/reset_test.py" ${t})
    set_tests_properties(run_device_reset_${t} PROPERTIES TIMEOUT 120
      ENVIRONMENT
      "HWSOCK_RUN=$<TARGET_FILE:hwsock-run>;HWSOCK_RESET_VMM=$<TARGET_FILE:reset_vmm>")
  endforeach()
endif()
