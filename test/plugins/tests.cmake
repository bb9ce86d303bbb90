# Test-only plugin modules (wrong on purpose) and the build-order edges that
# make the backend modules exist before the tests that dlopen() them run.
foreach(_p bad_abi no_entry)
  string(REPLACE "_" "-" _t "${_p}")
  add_library(hwsock-test-${_t} MODULE "${CMAKE_CURRENT_LIST_DIR}/${_p}.c")
  target_include_directories(hwsock-test-${_t} PRIVATE
    "${PROJECT_SOURCE_DIR}/include")
  set_target_properties(hwsock-test-${_t} PROPERTIES
    PREFIX "" OUTPUT_NAME "${_p}" C_VISIBILITY_PRESET hidden
    LIBRARY_OUTPUT_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}/plugins")
endforeach()

if(TARGET test_plugin)
  add_dependencies(test_plugin hwsock-backend-deny hwsock-backend-tcp
                   hwsock-test-bad-abi hwsock-test-no-entry)
  target_compile_definitions(test_plugin PRIVATE
    HWSOCK_TEST_BAD_ABI_PLUGIN="$<TARGET_FILE:hwsock-test-bad-abi>"
    HWSOCK_TEST_NO_ENTRY_PLUGIN="$<TARGET_FILE:hwsock-test-no-entry>")
endif()
if(TARGET test_backend_tcp)
  add_dependencies(test_backend_tcp hwsock-backend-tcp)
endif()
