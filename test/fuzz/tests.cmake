# libFuzzer harnesses: test/fuzz/fuzz_*.c. Built only with clang and
# HWSOCK_FUZZ=ON (scripts/test does); each runs briefly as a ctest, seeded
# from test/fuzz/corpus/<name>/ when that folder exists.
if(HWSOCK_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "HWSOCK_FUZZ needs clang (CC=clang)")
  endif()
  set(HWSOCK_FUZZ_SECONDS 20 CACHE STRING "seconds each fuzzer runs under ctest")
  # the library again, with coverage instrumentation for the fuzzer
  file(GLOB _fuzz_lib_src CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/lib/*.c")
  add_library(hwsock_fuzzlib STATIC ${_fuzz_lib_src})
  target_compile_options(hwsock_fuzzlib PRIVATE -fsanitize=fuzzer-no-link)
  target_compile_definitions(hwsock_fuzzlib PRIVATE
    HWSOCK_VERSION_STRING="${PROJECT_VERSION}")
  target_include_directories(hwsock_fuzzlib PUBLIC
    "${PROJECT_SOURCE_DIR}/include" "${PROJECT_SOURCE_DIR}/lib")
  target_link_libraries(hwsock_fuzzlib PUBLIC PkgConfig::UV PkgConfig::URIPARSER
                        PkgConfig::YAML Threads::Threads ${CMAKE_DL_LIBS})
  if(PCAP_FOUND)
    target_link_libraries(hwsock_fuzzlib PUBLIC PkgConfig::PCAP)
  endif()
  file(GLOB _fuzz CONFIGURE_DEPENDS "${CMAKE_CURRENT_LIST_DIR}/fuzz_*.c")
  foreach(src ${_fuzz})
    get_filename_component(n "${src}" NAME_WE)
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
endif()
