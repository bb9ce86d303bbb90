# ABI checks. test_abi (test/unit/test_abi.c): the size-prefixed structs of
# both libraries, so it links the guest library too.
if(TARGET test_abi AND TARGET hwsock-guest)
  target_link_libraries(test_abi PRIVATE hwsock-guest)
  set_tests_properties(test_abi PROPERTIES LABELS "unit;abi")
endif()

# Each shared library exports exactly its public headers' HWSOCK_EXTERN
# declarations, each listed by name in its version script
# (test/abi/check_exports.py; needs nm from binutils).
find_package(Python3 COMPONENTS Interpreter)
find_program(HWSOCK_NM nm)
if(Python3_Interpreter_FOUND AND HWSOCK_NM)
  set(_h "${PROJECT_SOURCE_DIR}/include/hwsock")
  add_test(NAME abi_exports_hwsock
    COMMAND ${Python3_EXECUTABLE} "${CMAKE_CURRENT_LIST_DIR}/check_exports.py"
            --lib $<TARGET_FILE:hwsock>
            --map "${PROJECT_SOURCE_DIR}/lib/hwsock.map"
            "${_h}/common.h" "${_h}/version.h" "${_h}/uri.h" "${_h}/wire.h"
            "${_h}/device.h" "${_h}/stats.h" "${_h}/policy.h"
            "${_h}/identity.h" "${_h}/backend.h" "${_h}/backend_util.h"
            "${_h}/hostopts.h" "${_h}/loopback.h"
            "${PROJECT_SOURCE_DIR}/lib/device_int.h")
  set_tests_properties(abi_exports_hwsock PROPERTIES TIMEOUT 60
                       LABELS "unit;abi")
  if(TARGET hwsock-guest)
    add_test(NAME abi_exports_guest
      COMMAND ${Python3_EXECUTABLE} "${CMAKE_CURRENT_LIST_DIR}/check_exports.py"
              --lib $<TARGET_FILE:hwsock-guest>
              --map "${PROJECT_SOURCE_DIR}/guest-driver/core/hwsock-guest.map"
              "${_h}/guest.h" "${_h}/attach.h" "${_h}/common.h")
    set_tests_properties(abi_exports_guest PROPERTIES TIMEOUT 60
                         LABELS "unit;abi")
  endif()
  add_test(NAME abi_exports_uv
    COMMAND ${Python3_EXECUTABLE} "${CMAKE_CURRENT_LIST_DIR}/check_exports.py"
            --lib $<TARGET_FILE:hwsock-uv>
            --map "${PROJECT_SOURCE_DIR}/lib/hwsock-uv.map" "${_h}/uv.h"
            "${_h}/embed.h")
  set_tests_properties(abi_exports_uv PROPERTIES TIMEOUT 60 LABELS "unit;abi")
  add_test(NAME abi_exports_capture
    COMMAND ${Python3_EXECUTABLE} "${CMAKE_CURRENT_LIST_DIR}/check_exports.py"
            --lib $<TARGET_FILE:hwsock-capture>
            --map "${PROJECT_SOURCE_DIR}/lib/hwsock-capture.map"
            "${_h}/capture.h")
  set_tests_properties(abi_exports_capture PROPERTIES TIMEOUT 60
                       LABELS "unit;abi")
  add_test(NAME abi_exports_ringtest
    COMMAND ${Python3_EXECUTABLE} "${CMAKE_CURRENT_LIST_DIR}/check_exports.py"
            --lib $<TARGET_FILE:hwsock-ringtest>
            --map "${PROJECT_SOURCE_DIR}/lib/hwsock-ringtest.map"
            "${_h}/ringtest.h")
  set_tests_properties(abi_exports_ringtest PROPERTIES TIMEOUT 60
                       LABELS "unit;abi")
endif()
