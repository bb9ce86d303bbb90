# libFuzzer harnesses: test/fuzz/fuzz_*.c, listed below. Built only with clang and
# HWSOCK_FUZZ=ON (scripts/test does); each runs briefly as a ctest, seeded
# from test/fuzz/corpus/<name>/ when that folder exists.
if(HWSOCK_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "HWSOCK_FUZZ needs clang (CC=clang)")
  endif()
  set(HWSOCK_FUZZ_SECONDS 20 CACHE STRING "seconds each fuzzer runs under ctest")
  # the library objects themselves, instrumented for the fuzzer in a
  # HWSOCK_FUZZ build (lib/CMakeLists.txt)
  add_library(hwsock_fuzzlib INTERFACE)
  target_link_libraries(hwsock_fuzzlib INTERFACE hwsock_internal)
  # test/fuzz/NAME.c (a new harness goes here)
  foreach(n fuzz_device fuzz_dispatch fuzz_handover fuzz_ipx fuzz_policy
            fuzz_ring fuzz_snapshot fuzz_uri)
    set(src "${CMAKE_CURRENT_LIST_DIR}/${n}.c")
    add_executable(${n} "${src}")
    target_compile_options(${n} PRIVATE -fsanitize=fuzzer)
    target_link_options(${n} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${n} PRIVATE hwsock_fuzzlib)
    set(_corpus "${CMAKE_CURRENT_LIST_DIR}/corpus/${n}")
    set(_work "${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/${n}")
    file(MAKE_DIRECTORY "${_work}")
    set(_args -max_total_time=${HWSOCK_FUZZ_SECONDS} -rss_limit_mb=2048
              -timeout=10 "${_work}")
    if(EXISTS "${_corpus}")
      list(APPEND _args "${_corpus}")
    endif()
    add_test(NAME ${n} COMMAND ${n} ${_args})
    set_tests_properties(${n} PROPERTIES TIMEOUT 300 LABELS fuzz)
  endforeach()
  # fuzz_handover imports into the real tcp, udp and deny modules
  add_dependencies(fuzz_handover hwsock-backend-tcp hwsock-backend-udp
                   hwsock-backend-deny)
endif()
