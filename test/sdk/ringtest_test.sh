#!/usr/bin/env bash
# The test-support library as a user meets it (run by ctest:
# test/sdk/tests.cmake sets the HWSOCK_SDK_* variables).
#
#  1. `cmake --install` of the build tree into a fresh prefix installs
#     hwsock/ringtest.h, libhwsock-ringtest.so (+ soname links) exporting
#     only hwsock_ringtest_* in its version node and loading no other
#     hwsock library, hwsock-ringtest.pc, and hwsock::ringtest in the CMake
#     package.
#  2. test/sdk/ringtest_consumer.c (a user's unit test of a toy device)
#     builds against that prefix only, with the bare compiler and
#     `pkg-config --cflags --libs hwsock-ringtest`, and with CMake
#     find_package(hwsock COMPONENTS ringtest); each build runs and prints
#     the expected line.
set -euo pipefail

for v in BUILD_DIR SOURCE_DIR VERSION LIBDIR INCLUDEDIR CC; do
  n=HWSOCK_SDK_$v
  [ -n "${!n:-}" ] || { echo "ringtest_test.sh: $n is not set (run through ctest)" >&2; exit 2; }
done
src=$HWSOCK_SDK_SOURCE_DIR
cflags=${HWSOCK_SDK_CFLAGS:-}
exe_ldflags=${HWSOCK_SDK_EXE_LDFLAGS:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hwsock-ringtest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
libdir=$prefix/$HWSOCK_SDK_LIBDIR
incdir=$prefix/$HWSOCK_SDK_INCLUDEDIR
want="ringtest: echoed 4 bytes, refused head_index (code 2)"

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'ringtest_test.sh: FAIL: %s\n' "$*" >&2; exit 1; }
quiet() {
  local log=$tmp/last.log
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    fail "$*"
  fi
}

step "install the build tree into $prefix"
quiet cmake --install "$HWSOCK_SDK_BUILD_DIR" --prefix "$prefix"
[ -f "$incdir/hwsock/ringtest.h" ] || fail "hwsock/ringtest.h not installed"
lib=libhwsock-ringtest
major=${HWSOCK_SDK_VERSION%%.*}
[ -f "$libdir/$lib.so.$HWSOCK_SDK_VERSION" ] || fail "$lib.so.$HWSOCK_SDK_VERSION missing"
[ "$(readlink "$libdir/$lib.so.$major")" = "$lib.so.$HWSOCK_SDK_VERSION" ] ||
  fail "$lib.so.$major is not a link to $lib.so.$HWSOCK_SDK_VERSION"
[ "$(readlink "$libdir/$lib.so")" = "$lib.so.$major" ] || fail "$lib.so is not a link to $lib.so.$major"
readelf -d "$libdir/$lib.so" | grep -q "SONAME.*\[$lib\.so\.$major\]" ||
  fail "$lib.so: soname is not $lib.so.$major"
[ -f "$libdir/pkgconfig/hwsock-ringtest.pc" ] || fail "hwsock-ringtest.pc not installed"

step "$lib.so exports only hwsock_ringtest_* and loads no other hwsock library"
nm -D --defined-only "$libdir/$lib.so" | awk '{print $NF}' >"$tmp/syms"
bad=$(grep -Ev '^(hwsock_ringtest_[a-z_]+@@HWSOCK_RINGTEST_[0-9.]+|HWSOCK_RINGTEST_[0-9.]+)$' "$tmp/syms" || true)
[ -z "$bad" ] || fail "$lib.so exports: $(echo $bad | head -c 400)"
grep -q '^hwsock_ringtest_add_fault@@HWSOCK_RINGTEST_' "$tmp/syms" || fail "hwsock_ringtest_add_fault not exported"
echo "$(wc -l <"$tmp/syms") symbols"
! ldd "$libdir/$lib.so" | grep -q 'libhwsock' || fail "$lib.so loads another hwsock library"

step "the consumer with the bare compiler and pkg-config hwsock-ringtest"
export PKG_CONFIG_PATH=$libdir/pkgconfig
pc=$(pkg-config --cflags --libs hwsock-ringtest) || fail "pkg-config hwsock-ringtest"
echo "$pc"
[ "$(pkg-config --modversion hwsock-ringtest)" = "$HWSOCK_SDK_VERSION" ] || fail "pkg-config version"
case " $pc " in *" -I$incdir "*) ;; *) fail "cflags lack -I$incdir" ;; esac
case " $pc " in *" -lhwsock-ringtest "*) ;; *) fail "libs lack -lhwsock-ringtest" ;; esac
# shellcheck disable=SC2086 # flags are word lists
quiet "$HWSOCK_SDK_CC" $cflags -std=gnu11 -Wall -Wextra -Werror \
  "$src/test/sdk/ringtest_consumer.c" -o "$tmp/consumer_pc" $pc $exe_ldflags \
  -Wl,-rpath,"$libdir"
out=$("$tmp/consumer_pc") || fail "consumer_pc exited $?"
[ "$out" = "$want" ] || fail "consumer_pc printed '$out'"
ldd "$tmp/consumer_pc" | grep -q "$libdir/$lib.so" || fail "consumer_pc does not load the prefix's $lib.so"
! ldd "$tmp/consumer_pc" | grep -q 'libhwsock\.so' || fail "consumer_pc loads libhwsock.so"
echo "consumer_pc: $out"
unset PKG_CONFIG_PATH

step "the consumer with find_package(hwsock COMPONENTS ringtest)"
mkdir -p "$tmp/cm"
cat >"$tmp/cm/CMakeLists.txt" <<CMEOF
cmake_minimum_required(VERSION 3.18)
project(ringtest_consumer LANGUAGES C)
find_package(hwsock REQUIRED COMPONENTS ringtest)
add_executable(consumer "$src/test/sdk/ringtest_consumer.c")
target_link_libraries(consumer PRIVATE hwsock::ringtest)
CMEOF
quiet cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_C_COMPILER="$HWSOCK_SDK_CC" \
  -DCMAKE_C_FLAGS="$cflags -Werror" -DCMAKE_EXE_LINKER_FLAGS="$exe_ldflags" \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
quiet cmake --build "$tmp/cm/build"
grep -q "^hwsock_DIR:PATH=$libdir/cmake/hwsock$" "$tmp/cm/build/CMakeCache.txt" ||
  fail "find_package did not find the prefix's package"
grep -q -- "-isystem $incdir\|-I$incdir" "$tmp/cm/build/compile_commands.json" ||
  fail "consumer was not compiled against $incdir"
! grep -q -- "$src/include" "$tmp/cm/build/compile_commands.json" ||
  fail "consumer was compiled against the source tree's headers"
out=$("$tmp/cm/build/consumer") || fail "consumer exited $?"
[ "$out" = "$want" ] || fail "consumer printed '$out'"
echo "consumer (CMake): $out"

echo
echo "ringtest_test.sh: all checks passed"
