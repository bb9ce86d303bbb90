# Benchmark programs (scripts/bench runs them; docs/PERFORMANCE.md).
# Benchmarks are not tests: normal targets only. The one test here checks
# that the benchmark server ends cleanly (nothing leaked under ASan).
set(_bench "${CMAKE_CURRENT_LIST_DIR}")

add_executable(hwsock-bench-server "${_bench}/bench_server.c")

find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME bench_server_exit
           COMMAND "${Python3_EXECUTABLE}" "${_bench}/server_exit_test.py")
  set_tests_properties(bench_server_exit PROPERTIES TIMEOUT 120 ENVIRONMENT
    "HWSOCK_BENCH_SERVER=$<TARGET_FILE:hwsock-bench-server>")
endif()

if(TARGET hwsock-guest)
  add_executable(hwsock-bench "${_bench}/bench_client.c"
                 "${_bench}/bench_workloads.c")
  target_link_libraries(hwsock-bench PRIVATE hwsock-guest)
endif()

# The L2 baseline: lwIP (raw API, single-threaded) behind libslirp, in one
# process. Built only when both development packages are present
# (scripts/deps --bench installs them).
pkg_check_modules(BENCH_SLIRP IMPORTED_TARGET slirp)
pkg_check_modules(BENCH_LWIP IMPORTED_TARGET lwip)
if(BENCH_SLIRP_FOUND AND BENCH_LWIP_FOUND)
  add_executable(hwsock-bench-slirp "${_bench}/bench_slirp.c"
                 "${_bench}/bench_workloads.c")
  target_link_libraries(hwsock-bench-slirp PRIVATE PkgConfig::BENCH_SLIRP
                        PkgConfig::BENCH_LWIP)
endif()

# Ring hot-path cost under callgrind: no sockets, no threads.
add_executable(bench_ring_cost "${_bench}/bench_ring_cost.c")
target_link_libraries(bench_ring_cost PRIVATE hwsock_test_support
                      hwsock_internal)
