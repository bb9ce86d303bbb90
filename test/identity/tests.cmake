# Stream identity (docs/IDENTITY.md). test_identity: the PROXY v2 builder
# (backends/tcp/proxy_v2.c, compiled in: it needs libcrypto, which only the
# tcp module links), the key file, the policy key and the tcp module loaded
# by path. identity_servers: real nginx and HAProxy behind hwsock-vmm +
# hwsock-run, the shipped verifier, a guest forging its own header.
pkg_check_modules(IDENTITY_CRYPTO REQUIRED IMPORTED_TARGET libcrypto)
hwsock_criterion_test(test_identity
  "${CMAKE_CURRENT_LIST_DIR}/test_identity.c"
  "${PROJECT_SOURCE_DIR}/backends/tcp/proxy_v2.c")
target_include_directories(test_identity PRIVATE
  "${PROJECT_SOURCE_DIR}/backends/tcp")
target_link_libraries(test_identity PRIVATE PkgConfig::IDENTITY_CRYPTO)
add_dependencies(test_identity hwsock-backend-tcp)
set_tests_properties(test_identity PROPERTIES LABELS "identity;unit")

find_package(Python3 COMPONENTS Interpreter)
if(TARGET hwsock-run AND TARGET hwsock-vmm AND TARGET hwsock-stat AND
   TARGET hwsock-policy AND Python3_Interpreter_FOUND)
  foreach(t nginx haproxy verifier forge refused stat_capture policy_cli
            bind_first)
    add_test(NAME identity_${t}
             COMMAND "${Python3_EXECUTABLE}"
                     "${CMAKE_CURRENT_LIST_DIR}/servers_test.py" ${t})
    set_tests_properties(identity_${t} PROPERTIES TIMEOUT 180
      LABELS "identity;integration"
      ENVIRONMENT "HWSOCK_RUN=$<TARGET_FILE:hwsock-run>;HWSOCK_VMM=$<TARGET_FILE:hwsock-vmm>;HWSOCK_STAT=$<TARGET_FILE:hwsock-stat>;HWSOCK_POLICY=$<TARGET_FILE:hwsock-policy>;HWSOCK_BACKENDS=${HWSOCK_BUILD_BACKEND_DIR};HWSOCK_VERIFY=${PROJECT_SOURCE_DIR}/scripts/proxy-v2-verify.py")
  endforeach()
endif()
