# In-process end-to-end tests: guest driver <-> rings <-> device <-> real
# backends <-> real loopback sockets, on two threads of one process.
if(TARGET hwsock-guest)
  pkg_check_modules(LIBCRYPTO REQUIRED IMPORTED_TARGET libcrypto)
  add_library(hwsock_inproc STATIC "${CMAKE_CURRENT_LIST_DIR}/inproc.c")
  target_link_libraries(hwsock_inproc PUBLIC hwsock-guest hwsock hwsock-uv
                        hwsock-capture PkgConfig::UV
                        PkgConfig::LIBCRYPTO Threads::Threads)
  target_include_directories(hwsock_inproc PUBLIC "${CMAKE_CURRENT_LIST_DIR}")
  target_compile_definitions(hwsock_inproc PUBLIC
    HWSOCK_BUILD_BACKEND_DIR="${HWSOCK_BUILD_BACKEND_DIR}")

  # test/integration/NAME.c (a new test goes here)
  foreach(n test_e2e_dest test_e2e_hostopts test_e2e_poll test_e2e_tcp
            test_e2e_udp test_e2e_wb test_guest_dump)
    set(src "${CMAKE_CURRENT_LIST_DIR}/${n}.c")
    # test/support/loopback_sock.c: plain loopback peers, as unit tests have
    # them (the rest of test/support links the internal archive: not here)
    add_executable(${n} "${src}"
                   "${PROJECT_SOURCE_DIR}/test/support/loopback_sock.c")
    target_link_libraries(${n} PRIVATE hwsock_inproc PkgConfig::CRITERION)
    target_include_directories(${n} PRIVATE "${PROJECT_SOURCE_DIR}/test")
    add_test(NAME ${n} COMMAND ${n} --jobs 1)
    set_tests_properties(${n} PROPERTIES TIMEOUT 300)
    # the backends are loaded by path at run time
    add_dependencies(${n} hwsock-backend-tcp hwsock-backend-udp hwsock-backend-ipx hwsock-backend-deny)
  endforeach()
endif()

# --- hwsock-policy CLI (test/integration/policy_cli.sh) ----------------------
if(TARGET hwsock-policy)
  add_test(NAME policy_cli
           COMMAND bash "${CMAKE_CURRENT_LIST_DIR}/policy_cli.sh"
                   "$<TARGET_FILE:hwsock-policy>" "${CMAKE_CURRENT_LIST_DIR}")
  set_tests_properties(policy_cli PROPERTIES TIMEOUT 60)
endif()
