# hwsock-vhost-user against a test front-end that plays QEMU 7.2 and the
# guest driver (test/vhost-user/vu_frontend.c): the message sequence, rings
# in a memfd, in-band negotiation, traffic to an echo server on 127.0.0.1,
# malformed messages, a second and third front-end.
if(NOT TARGET hwsock-vhost-user)
  return()
endif()
add_executable(vu_frontend "${CMAKE_CURRENT_LIST_DIR}/vu_frontend.c")
target_link_libraries(vu_frontend PRIVATE hwsock_test_support)
target_include_directories(vu_frontend PRIVATE "${PROJECT_SOURCE_DIR}/test"
                           "${PROJECT_SOURCE_DIR}/tools/hwsock-vhost-user")
add_test(NAME vhost_user_frontend
         COMMAND vu_frontend $<TARGET_FILE:hwsock-vhost-user>)
set_tests_properties(vhost_user_frontend PROPERTIES TIMEOUT 120
                     LABELS "process;vhost-user")

# Real QEMU 7.2 (TCG) against the back-end, twice, with the guest's stock
# vsock driver bound to the carrier (garbage to the device: error
# completions, no crash); hwsock-stat through --control. 77: QEMU or the
# kernel is not installed.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND AND TARGET hwsock-stat)
  add_test(NAME vhost_user_qemu_smoke
           COMMAND ${Python3_EXECUTABLE} "${CMAKE_CURRENT_LIST_DIR}/qemu_smoke.py"
                   --vhost $<TARGET_FILE:hwsock-vhost-user>
                   --stat $<TARGET_FILE:hwsock-stat>
                   --build-dir "${CMAKE_BINARY_DIR}/vhost-smoke")
  set_tests_properties(vhost_user_qemu_smoke PROPERTIES TIMEOUT 300
                       LABELS "guest;vhost-user" SKIP_RETURN_CODE 77)
endif()

# libFuzzer: the back-end's message handling (conn.c, mem.c) fed a hostile
# front-end's stream, with fds attached (test/vhost-user/fuzz_vhost_user.c).
if(HWSOCK_FUZZ)
  set(_vu "${PROJECT_SOURCE_DIR}/tools/hwsock-vhost-user")
  add_executable(fuzz_vhost_user "${CMAKE_CURRENT_LIST_DIR}/fuzz_vhost_user.c"
                 "${_vu}/conn.c" "${_vu}/rings.c" "${_vu}/mem.c"
                 "${PROJECT_SOURCE_DIR}/tools/hwsock-vmm/log.c")
  target_include_directories(fuzz_vhost_user PRIVATE "${_vu}"
                             "${PROJECT_SOURCE_DIR}/tools/hwsock-vmm")
  target_compile_options(fuzz_vhost_user PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_vhost_user PRIVATE -fsanitize=fuzzer)
  target_link_libraries(fuzz_vhost_user PRIVATE hwsock_fuzzlib)
  set(_work "${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/fuzz_vhost_user")
  file(MAKE_DIRECTORY "${_work}")
  add_test(NAME fuzz_vhost_user
           COMMAND fuzz_vhost_user -max_total_time=${HWSOCK_FUZZ_SECONDS}
                   -rss_limit_mb=2048 -timeout=10 "${_work}"
                   "${CMAKE_CURRENT_LIST_DIR}/corpus")
  set_tests_properties(fuzz_vhost_user PROPERTIES TIMEOUT 300
                       LABELS "fuzz;vhost-user")
endif()
