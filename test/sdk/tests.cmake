# Plugin SDK (test/sdk/sdk_test.sh): install this build tree into a temporary
# prefix, check what was installed, build examples/plugin-echo against it
# three ways (CMake package, pkg-config from CMake, pkg-config with the bare
# compiler) and load each echo.so into a device with load_echo.
#
# The install needs every installable target built (`cmake --build` of the
# whole tree, as scripts/test does). The standalone builds get this tree's
# compiler and flags, so that under ASan/UBSan the module still loads into
# the sanitized load_echo.
if(TARGET hwsock-guest)
  add_executable(load_echo "${CMAKE_CURRENT_LIST_DIR}/load_echo.c")
  target_link_libraries(load_echo PRIVATE hwsock_inproc)
  add_dependencies(load_echo hwsock-backend-deny)

  set(_hwsock_vmm "")
  if(TARGET hwsock-vmm)
    set(_hwsock_vmm "bin/hwsock-vmm") # as installed, relative to the prefix
  endif()
  add_test(NAME sdk_plugin
           COMMAND ${CMAKE_COMMAND} -E env
                   "HWSOCK_SDK_BUILD_DIR=${PROJECT_BINARY_DIR}"
                   "HWSOCK_SDK_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
                   "HWSOCK_SDK_VERSION=${PROJECT_VERSION}"
                   "HWSOCK_SDK_LIBDIR=${CMAKE_INSTALL_LIBDIR}"
                   "HWSOCK_SDK_INCLUDEDIR=${CMAKE_INSTALL_INCLUDEDIR}"
                   "HWSOCK_SDK_CC=${CMAKE_C_COMPILER}"
                   "HWSOCK_SDK_CFLAGS=${CMAKE_C_FLAGS}"
                   "HWSOCK_SDK_MODULE_LDFLAGS=${CMAKE_MODULE_LINKER_FLAGS}"
                   "HWSOCK_SDK_EXE_LDFLAGS=${CMAKE_EXE_LINKER_FLAGS}"
                   "HWSOCK_SDK_LOAD_ECHO=$<TARGET_FILE:load_echo>"
                   "HWSOCK_SDK_VMM=${_hwsock_vmm}"
                   bash "${CMAKE_CURRENT_LIST_DIR}/sdk_test.sh")
  # (one install of the build tree at a time: each writes the .pc files
  # with its own prefix into the build tree before copying them)
  set_tests_properties(sdk_plugin PROPERTIES TIMEOUT 300
                       RESOURCE_LOCK hwsock_build_install)
endif()

# The test-support library (test/sdk/ringtest_test.sh): installed into a
# temporary prefix, test/sdk/ringtest_consumer.c built against it with
# pkg-config and with find_package(hwsock COMPONENTS ringtest), and run.
add_test(NAME sdk_ringtest
         COMMAND ${CMAKE_COMMAND} -E env
                 "HWSOCK_SDK_BUILD_DIR=${PROJECT_BINARY_DIR}"
                 "HWSOCK_SDK_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
                 "HWSOCK_SDK_VERSION=${PROJECT_VERSION}"
                 "HWSOCK_SDK_LIBDIR=${CMAKE_INSTALL_LIBDIR}"
                 "HWSOCK_SDK_INCLUDEDIR=${CMAKE_INSTALL_INCLUDEDIR}"
                 "HWSOCK_SDK_CC=${CMAKE_C_COMPILER}"
                 "HWSOCK_SDK_CFLAGS=${CMAKE_C_FLAGS}"
                 "HWSOCK_SDK_EXE_LDFLAGS=${CMAKE_EXE_LINKER_FLAGS}"
                 bash "${CMAKE_CURRENT_LIST_DIR}/ringtest_test.sh")
set_tests_properties(sdk_ringtest PROPERTIES TIMEOUT 300
                     RESOURCE_LOCK hwsock_build_install)
