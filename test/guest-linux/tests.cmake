# A real Linux guest (QEMU 7.2 under TCG, no network device) whose hw_socket
# kernel module hands its programs' sockets to hwsock-vhost-user. The script
# builds the module against the installed kernel headers in the build tree,
# an initramfs, boots the guest and checks the serial console's results.
if(TARGET hwsock-vhost-user)
  find_package(Python3 REQUIRED COMPONENTS Interpreter)
  add_test(NAME guest_linux
           COMMAND ${Python3_EXECUTABLE} "${CMAKE_CURRENT_LIST_DIR}/run"
                   --vhost $<TARGET_FILE:hwsock-vhost-user>
                   --build-dir "${CMAKE_BINARY_DIR}/guest-linux")
  set_tests_properties(guest_linux PROPERTIES TIMEOUT 300 LABELS guest)
  # the same guest with the module's other input path: a RECV per socket
  # instead of the event queue (a device without F_EVENT_QUEUE)
  add_test(NAME guest_linux_recv
           COMMAND ${Python3_EXECUTABLE} "${CMAKE_CURRENT_LIST_DIR}/run"
                   --vhost $<TARGET_FILE:hwsock-vhost-user>
                   --module-arg event_queue=0
                   --build-dir "${CMAKE_BINARY_DIR}/guest-linux-recv")
  set_tests_properties(guest_linux_recv PROPERTIES TIMEOUT 300 LABELS guest)
endif()
