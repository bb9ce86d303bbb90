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
