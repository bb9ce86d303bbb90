# The guest driver core (guest-driver/core) against an in-test fake device
# that reads and answers the rings directly.
add_executable(test_guest "${CMAKE_CURRENT_LIST_DIR}/test_guest.c")
target_link_libraries(test_guest PRIVATE hwsock-guest hwsock_internal
                      hwsock_test_support PkgConfig::CRITERION Threads::Threads)
target_include_directories(test_guest PRIVATE "${PROJECT_SOURCE_DIR}/test")
add_test(NAME test_guest COMMAND test_guest --jobs 1)
set_tests_properties(test_guest PROPERTIES TIMEOUT ${HWSOCK_TEST_TIMEOUT})

# The driver core with the event queue against the real device in-process
# (its loop in a thread, eventfds for kicks and interrupts).
add_executable(test_guest_evq "${CMAKE_CURRENT_LIST_DIR}/test_guest_evq.c")
target_link_libraries(test_guest_evq PRIVATE hwsock-guest hwsock_internal
                      PkgConfig::UV PkgConfig::CRITERION Threads::Threads)
add_dependencies(test_guest_evq hwsock-backend-tcp hwsock-backend-udp)
add_test(NAME test_guest_evq COMMAND test_guest_evq --jobs 1)
set_tests_properties(test_guest_evq PROPERTIES TIMEOUT ${HWSOCK_TEST_TIMEOUT})

# The driver's layout planner alone (guest-driver/core/layout.c: hidden in
# the library, so compiled in).
add_executable(test_guest_layout "${CMAKE_CURRENT_LIST_DIR}/test_guest_layout.c"
               "${PROJECT_SOURCE_DIR}/guest-driver/core/layout.c")
target_include_directories(test_guest_layout PRIVATE
                           "${PROJECT_SOURCE_DIR}/guest-driver/core")
target_link_libraries(test_guest_layout PRIVATE hwsock-guest
                      PkgConfig::CRITERION Threads::Threads)
add_test(NAME test_guest_layout COMMAND test_guest_layout --jobs 1)
set_tests_properties(test_guest_layout PROPERTIES TIMEOUT ${HWSOCK_TEST_TIMEOUT})

# The reaper's adaptive poll window (guest-driver/core/pollwin.c), alone.
add_executable(test_guest_pollwin "${CMAKE_CURRENT_LIST_DIR}/test_guest_pollwin.c"
               "${PROJECT_SOURCE_DIR}/guest-driver/core/pollwin.c")
target_include_directories(test_guest_pollwin PRIVATE
                           "${PROJECT_SOURCE_DIR}/guest-driver/core")
target_link_libraries(test_guest_pollwin PRIVATE PkgConfig::CRITERION)
add_test(NAME test_guest_pollwin COMMAND test_guest_pollwin --jobs 1)
set_tests_properties(test_guest_pollwin PROPERTIES TIMEOUT 60
                     LABELS "unit;guest-driver")

# hwsock_attach_reset_reason(): an in-test fake loopback VMM stops the device
# with NEEDS_RESET and a code; the guest library must report that code.
add_executable(test_attach_reset "${CMAKE_CURRENT_LIST_DIR}/test_attach_reset.c")
target_link_libraries(test_attach_reset PRIVATE hwsock-guest hwsock_internal
                      PkgConfig::CRITERION Threads::Threads)
add_test(NAME test_attach_reset COMMAND test_attach_reset --jobs 1)
set_tests_properties(test_attach_reset PROPERTIES TIMEOUT ${HWSOCK_TEST_TIMEOUT})

# Zero-copy sends (hwsock_guest_send_buf_*) against the real device in-process
# and a server socket on 127.0.0.1.
add_executable(test_guest_sendbuf "${CMAKE_CURRENT_LIST_DIR}/test_guest_sendbuf.c")
target_link_libraries(test_guest_sendbuf PRIVATE hwsock-guest hwsock_internal
                      PkgConfig::UV PkgConfig::CRITERION Threads::Threads)
add_dependencies(test_guest_sendbuf hwsock-backend-tcp hwsock-backend-udp)
add_test(NAME test_guest_sendbuf COMMAND test_guest_sendbuf --jobs 1)
set_tests_properties(test_guest_sendbuf PROPERTIES TIMEOUT ${HWSOCK_TEST_TIMEOUT})
