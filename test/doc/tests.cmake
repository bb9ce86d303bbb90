# docs/PROTOCOL.md is normative: its tables must match the public headers.
# wire_dump prints every protocol constant, size and offset from the headers
# (header-only: nothing is linked); check_protocol_doc.py compares the
# document with that output and names the line of any difference, and every
# constant the headers have but the document lacks.
find_package(Python3 REQUIRED COMPONENTS Interpreter) # scripts/deps: python3

add_executable(wire_dump "${CMAKE_CURRENT_LIST_DIR}/wire_dump.c")
target_include_directories(wire_dump PRIVATE "${PROJECT_SOURCE_DIR}/include")

add_test(NAME protocol_doc_matches_headers
         COMMAND ${Python3_EXECUTABLE}
                 "${CMAKE_CURRENT_LIST_DIR}/check_protocol_doc.py"
                 $<TARGET_FILE:wire_dump>
                 "${PROJECT_SOURCE_DIR}/docs/PROTOCOL.md")
set_tests_properties(protocol_doc_matches_headers PROPERTIES TIMEOUT 60)

# The Linux guest module keeps its own status table (it is written from the
# document, not the headers): it must know every errno status of §11.
add_test(NAME kmod_errors_match_protocol
         COMMAND ${Python3_EXECUTABLE}
                 "${CMAKE_CURRENT_LIST_DIR}/check_kmod_errors.py"
                 "${PROJECT_SOURCE_DIR}/docs/PROTOCOL.md"
                 "${PROJECT_SOURCE_DIR}/guest-driver/linux/vq.c")
set_tests_properties(kmod_errors_match_protocol PROPERTIES TIMEOUT 60
                     LABELS "unit;structure")

# The soft errors of datagram sockets (§16.9) are one list in the document,
# in hwsock_err_is_soft() (common.h: the device and hwsock-run) and in the
# Linux guest module's hws_soft_errno().
add_test(NAME soft_errors_match_protocol
         COMMAND ${Python3_EXECUTABLE}
                 "${CMAKE_CURRENT_LIST_DIR}/check_soft_errors.py"
                 "${PROJECT_SOURCE_DIR}/docs/PROTOCOL.md"
                 "${PROJECT_SOURCE_DIR}/include/hwsock/common.h"
                 "${PROJECT_SOURCE_DIR}/guest-driver/linux/sock.c")
set_tests_properties(soft_errors_match_protocol PROPERTIES TIMEOUT 60
                     LABELS "unit;structure")
