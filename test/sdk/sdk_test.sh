#!/usr/bin/env bash
# The plugin SDK as an outsider meets it (run by ctest: test/sdk/tests.cmake
# sets the HWSOCK_SDK_* variables).
#
#  1. `cmake --install` of the build tree into a fresh prefix installs the
#     headers, libhwsock.so (+ soname links) exporting only hwsock_* names,
#     libhwsock-guest.so (which loads none of libuv, libyaml, libpcap, nor
#     libhwsock), libhwsock-uv.so, libhwsock-capture.so, the backend
#     modules, hwsock.pc, hwsock-guest.pc, hwsock-uv.pc, hwsock-capture.pc
#     and the CMake package (hwsock::hwsock, hwsock::guest, hwsock::uv,
#     hwsock::capture, HWSOCK_BACKEND_DIR). Installed programs
#     run from the prefix without LD_LIBRARY_PATH (RUNPATH $ORIGIN/../lib).
#  2. examples/plugin-echo builds against that prefix only: with
#     find_package, with pkg-config from CMake, and with the bare compiler
#     and `pkg-config --cflags --libs hwsock`.
#  3. Each echo.so loads into a device and echoes (load_echo); the installed
#     hwsock-vmm loads the installed echo.so from the backend folder.
#  4. echo.c built against headers of a future plugin ABI is refused, by
#     hwsock_plugin_load() and by hwsock-vmm --backend, with a clear message.
set -euo pipefail

for v in BUILD_DIR SOURCE_DIR VERSION LIBDIR INCLUDEDIR CC LOAD_ECHO; do
  n=HWSOCK_SDK_$v
  [ -n "${!n:-}" ] || { echo "sdk_test.sh: $n is not set (run through ctest)" >&2; exit 2; }
done
src=$HWSOCK_SDK_SOURCE_DIR
cflags=${HWSOCK_SDK_CFLAGS:-}
mod_ldflags=${HWSOCK_SDK_MODULE_LDFLAGS:-}
exe_ldflags=${HWSOCK_SDK_EXE_LDFLAGS:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hwsock-sdk.XXXXXX")
vmm_pid=
cleanup() {
  if [ -n "$vmm_pid" ]; then kill "$vmm_pid" 2>/dev/null || true; wait "$vmm_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

prefix=$tmp/prefix
libdir=$prefix/$HWSOCK_SDK_LIBDIR
incdir=$prefix/$HWSOCK_SDK_INCLUDEDIR
backenddir=$libdir/hwsock/backends

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'sdk_test.sh: FAIL: %s\n' "$*" >&2; exit 1; }
# Runs a command quietly; shows its output when it fails.
quiet() {
  local log=$tmp/last.log
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    fail "$*"
  fi
}

# ---------------------------------------------------------------------------
step "install the build tree into $prefix"
quiet cmake --install "$HWSOCK_SDK_BUILD_DIR" --prefix "$prefix"

for h in "$src"/include/hwsock/*.h; do
  [ -f "$incdir/hwsock/${h##*/}" ] || fail "header hwsock/${h##*/} not installed"
done
major=${HWSOCK_SDK_VERSION%%.*}
for lib in libhwsock libhwsock-guest libhwsock-uv libhwsock-capture; do
  [ -f "$libdir/$lib.so.$HWSOCK_SDK_VERSION" ] || fail "$lib.so.$HWSOCK_SDK_VERSION missing"
  [ "$(readlink "$libdir/$lib.so.$major")" = "$lib.so.$HWSOCK_SDK_VERSION" ] ||
    fail "$lib.so.$major is not a link to $lib.so.$HWSOCK_SDK_VERSION"
  [ "$(readlink "$libdir/$lib.so")" = "$lib.so.$major" ] ||
    fail "$lib.so is not a link to $lib.so.$major"
  readelf -d "$libdir/$lib.so" | grep -q "SONAME.*\[$lib\.so\.$major\]" ||
    fail "$lib.so: soname is not $lib.so.$major"
done
for b in tcp deny; do
  [ -f "$backenddir/$b.so" ] || fail "backend $b.so not in $backenddir"
  nm -D --defined-only "$backenddir/$b.so" | grep -q ' hwsock_backend_entry$' ||
    fail "$b.so does not export hwsock_backend_entry"
done
for pc in hwsock hwsock-guest hwsock-uv hwsock-capture; do
  [ -f "$libdir/pkgconfig/$pc.pc" ] || fail "$pc.pc not installed"
done
[ -f "$libdir/cmake/hwsock/hwsockConfig.cmake" ] || fail "CMake package not installed"
echo "installed: $(cd "$prefix" && find . -type f | wc -l) files"

step "libhwsock.so exports only the public hwsock_* API"
nm -D --defined-only "$libdir/libhwsock.so" | awk '{print $NF}' >"$tmp/syms"
# Allowed: hwsock_name@@NODE (or without version), the version nodes, and
# the internals libhwsock-capture uses, in the HWSOCK_PRIVATE node only.
bad=$(grep -Ev '^(hwsock_[a-z][a-z0-9_]*(@@?HWSOCK_[0-9.]+)?|HWSOCK_[0-9.]+|hwsock__[a-z][a-z0-9_]*@@HWSOCK_PRIVATE|HWSOCK_PRIVATE)$' "$tmp/syms" || true)
[ -z "$bad" ] || fail "libhwsock.so exports non-public symbols: $(echo $bad | head -c 400)"
grep -q '^hwsock_plugin_load@@HWSOCK_' "$tmp/syms" || fail "hwsock_plugin_load not exported in a version node"
grep -q '^hwsock_device_add_backend@@HWSOCK_' "$tmp/syms" || fail "hwsock_device_add_backend not exported"
echo "$(wc -l <"$tmp/syms") symbols, all public"
nm -D --defined-only "$libdir/libhwsock-guest.so" | awk '{print $NF}' >"$tmp/gsyms"
bad=$(grep -Ev '^(hwsock_[a-z][a-z0-9_]*(@@?HWSOCK[A-Z_]*_[0-9.]+)?|HWSOCK[A-Z_]*_[0-9.]+)$' "$tmp/gsyms" || true)
[ -z "$bad" ] || fail "libhwsock-guest.so exports non-public symbols: $(echo $bad | head -c 400)"

step "the guest library loads nothing of the device side"
ldd "$libdir/libhwsock-guest.so" >"$tmp/ldd.guest"
cat "$tmp/ldd.guest"
! grep -Eq 'libuv|libyaml|libpcap|libhwsock\.so' "$tmp/ldd.guest" ||
  fail "libhwsock-guest.so loads a device-side library"
ldd "$libdir/libhwsock.so" >"$tmp/ldd.dev"
! grep -Eq 'libuv|libpcap' "$tmp/ldd.dev" ||
  fail "libhwsock.so loads libuv or libpcap (hwsock-uv's, hwsock-capture's)"

step "installed programs run from the prefix without LD_LIBRARY_PATH"
for p in "$prefix"/bin/*; do
  [ -x "$p" ] || continue
  readelf -d "$p" | grep -Eq '(RUNPATH|RPATH).*\$ORIGIN/\.\./' ||
    fail "${p##*/}: no RUNPATH \$ORIGIN/../lib"
  env -u LD_LIBRARY_PATH ldd "$p" >"$tmp/ldd.bin"
  ! grep -q 'not found' "$tmp/ldd.bin" || { cat "$tmp/ldd.bin" >&2; fail "${p##*/}: libraries not found"; }
  for l in $(awk '/libhwsock/ {print $3}' "$tmp/ldd.bin"); do
    [ "$(dirname "$(realpath "$l")")" = "$(realpath "$libdir")" ] ||
      { cat "$tmp/ldd.bin" >&2; fail "${p##*/} loads $l, not the prefix's"; }
  done
  echo "${p##*/}: libraries found in the prefix"
done

# ---------------------------------------------------------------------------
step "pkg-config --cflags --libs hwsock"
export PKG_CONFIG_PATH=$libdir/pkgconfig
pc=$(pkg-config --cflags --libs hwsock) || fail "pkg-config hwsock"
echo "$pc"
case " $pc " in *" -I$incdir "*) ;; *) fail "cflags lack -I$incdir" ;; esac
case " $pc " in *" -L$libdir "*) ;; *) fail "libs lack -L$libdir" ;; esac
case " $pc " in *" -lhwsock "*) ;; *) fail "libs lack -lhwsock" ;; esac
[ "$(pkg-config --modversion hwsock)" = "$HWSOCK_SDK_VERSION" ] || fail "pkg-config version"
[ "$(pkg-config --variable=backenddir hwsock)" = "$backenddir" ] ||
  fail "backenddir is '$(pkg-config --variable=backenddir hwsock)', want $backenddir"
pc=$(pkg-config --libs hwsock-uv) || fail "pkg-config hwsock-uv"
case " $pc " in *" -lhwsock-uv "*) ;; *) fail "hwsock-uv libs are '$pc'" ;; esac

step "a guest program with pkg-config hwsock-guest only"
cat >"$tmp/guest_only.c" <<'EOF'
#include <stdio.h>
#include <hwsock/attach.h>
int main(void) {
  /* the guest API and the error map, from libhwsock-guest alone */
  hwsock_attach_opts o;
  hwsock_attach_opts_init(&o);
  hwsock_attachment *a = NULL;
  int rc = hwsock_attach("/nonexistent/hwsock.sock", &o, &a);
  printf("%s %s\n", hwsock_err_name(rc), hwsock_version_string());
  return o.size == sizeof(o) ? 0 : 1;
}
EOF
# shellcheck disable=SC2046,SC2086
quiet "$HWSOCK_SDK_CC" $cflags -std=gnu11 -Werror "$tmp/guest_only.c" -o "$tmp/guest_only" \
  $(pkg-config --cflags --libs hwsock-guest) $exe_ldflags -Wl,-rpath,"$libdir"
out=$("$tmp/guest_only") || fail "guest_only did not run"
[ "$out" = "HWSOCK_ENOENT $HWSOCK_SDK_VERSION" ] || fail "guest_only printed '$out'"
! ldd "$tmp/guest_only" | grep -q 'libhwsock\.so' || fail "guest_only loads libhwsock.so"
echo "guest_only: $out"
unset PKG_CONFIG_PATH

step "find_package(hwsock): imported targets carry include folder and library"
mkdir -p "$tmp/consumer"
cat >"$tmp/consumer/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.18)
project(consumer LANGUAGES C)
find_package(hwsock REQUIRED COMPONENTS guest uv capture)
add_executable(consumer main.c)
target_link_libraries(consumer PRIVATE hwsock::hwsock hwsock::guest hwsock::uv
                      hwsock::capture)
file(WRITE "${CMAKE_BINARY_DIR}/backend_dir.txt" "${HWSOCK_BACKEND_DIR}")
EOF
cat >"$tmp/consumer/main.c" <<'EOF'
#include <stdio.h>
#include <hwsock/device.h>
#include <hwsock/guest.h>
#include <hwsock/capture.h>
#include <hwsock/uv.h>
int main(void) {
  /* one call into each library */
  hwsock_guest_config gc;
  hwsock_guest_config_init(&gc);
  printf("%s %s\n", hwsock_version_string(), hwsock_err_name(HWSOCK_EABI));
  if (hwsock_eventfd_signal(-1) == 0)
    return 1;
  hwsock_capture_close(NULL);
  return gc.size == sizeof(gc) ? 0 : 1;
}
EOF
quiet cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_C_COMPILER="$HWSOCK_SDK_CC" \
  -DCMAKE_C_FLAGS="$cflags -Werror" -DCMAKE_EXE_LINKER_FLAGS="$exe_ldflags"
quiet cmake --build "$tmp/consumer/build"
out=$("$tmp/consumer/build/consumer") || fail "consumer did not run"
[ "$out" = "$HWSOCK_SDK_VERSION HWSOCK_EABI" ] || fail "consumer printed '$out'"
[ "$(cat "$tmp/consumer/build/backend_dir.txt")" = "$backenddir" ] ||
  fail "HWSOCK_BACKEND_DIR is '$(cat "$tmp/consumer/build/backend_dir.txt")', want $backenddir"
echo "consumer: $out; HWSOCK_BACKEND_DIR=$backenddir"

# ---------------------------------------------------------------------------
echo_cmake() { # build dir, extra args...
  local b=$1
  shift
  quiet cmake -S "$src/examples/plugin-echo" -B "$b" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
    -DCMAKE_C_COMPILER="$HWSOCK_SDK_CC" -DCMAKE_C_FLAGS="$cflags -Werror" \
    -DCMAKE_MODULE_LINKER_FLAGS="$mod_ldflags" "$@"
  quiet cmake --build "$b"
  [ -f "$b/echo.so" ] || fail "$b/echo.so not built"
  # the SDK came from the prefix, never from the source tree
  grep -q -- "-isystem $incdir\|-I$incdir" "$b/compile_commands.json" ||
    fail "echo was not compiled against $incdir"
  ! grep -q -- "$src/include" "$b/compile_commands.json" ||
    fail "echo was compiled against the source tree's headers"
}

step "examples/plugin-echo with find_package(hwsock)"
echo_cmake "$tmp/echo-cmake" -DCMAKE_PREFIX_PATH="$prefix"
grep -q "^hwsock_DIR:PATH=$libdir/cmake/hwsock$" "$tmp/echo-cmake/CMakeCache.txt" ||
  fail "find_package did not find the prefix's package"
quiet cmake --install "$tmp/echo-cmake"
[ -f "$backenddir/echo.so" ] || fail "echo.so not installed into HWSOCK_BACKEND_DIR"

step "examples/plugin-echo with pkg-config (ECHO_USE_PKGCONFIG=ON)"
PKG_CONFIG_PATH=$libdir/pkgconfig echo_cmake "$tmp/echo-pc" -DECHO_USE_PKGCONFIG=ON
quiet env DESTDIR="$tmp/stage" cmake --install "$tmp/echo-pc"
[ -f "$tmp/stage$backenddir/echo.so" ] || fail "pkg-config build did not install into backenddir"

step "examples/plugin-echo with the bare compiler and pkg-config"
mkdir -p "$tmp/echo-cc"
# shellcheck disable=SC2046,SC2086 # flags are word lists
quiet "$HWSOCK_SDK_CC" $cflags -std=c11 -Wall -Wextra -Werror -fPIC -shared \
  -fvisibility=hidden $(PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --cflags hwsock) \
  "$src/examples/plugin-echo/echo.c" -o "$tmp/echo-cc/echo.so" \
  $(PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --libs hwsock) $mod_ldflags

# ---------------------------------------------------------------------------
for so in "$tmp/echo-cmake/echo.so" "$tmp/echo-pc/echo.so" "$tmp/echo-cc/echo.so"; do
  step "load $so into a device and echo through the rings"
  [ "$(nm -D --defined-only "$so" | awk '{print $NF}')" = hwsock_backend_entry ] ||
    fail "$so exports more than hwsock_backend_entry"
  "$HWSOCK_SDK_LOAD_ECHO" "$so" || fail "load_echo $so"
done

vmm=${HWSOCK_SDK_VMM:+$prefix/$HWSOCK_SDK_VMM}
if [ -n "$vmm" ]; then
  step "the installed hwsock-vmm loads the installed echo.so"
  exec 3>"$tmp/vmm.ready"
  env -u LD_LIBRARY_PATH "$vmm" -v --listen "$tmp/vmm.sock" --backend-dir "$backenddir" \
    --ready-fd 3 2>"$tmp/vmm.log" &
  vmm_pid=$!
  exec 3>&-
  for _ in $(seq 1 200); do
    grep -q ready "$tmp/vmm.ready" 2>/dev/null && break
    kill -0 "$vmm_pid" 2>/dev/null || break
    sleep 0.05
  done
  grep -q ready "$tmp/vmm.ready" || { cat "$tmp/vmm.log" >&2; fail "hwsock-vmm did not get ready"; }
  grep -q "backend 'echo' loaded from $backenddir/echo.so" "$tmp/vmm.log" ||
    { cat "$tmp/vmm.log" >&2; fail "hwsock-vmm did not load echo.so"; }
  kill -TERM "$vmm_pid"
  wait "$vmm_pid" || { cat "$tmp/vmm.log" >&2; fail "hwsock-vmm exited with $?"; }
  vmm_pid=
  grep "backend '" "$tmp/vmm.log"
fi

# ---------------------------------------------------------------------------
step "a plugin built for another backend ABI version is refused"
cp -r "$incdir" "$tmp/future-include"
hdr=$tmp/future-include/hwsock/backend.h
cur=$(sed -n 's/^#define HWSOCK_BACKEND_ABI_VERSION \([0-9][0-9]*\)u$/\1/p' "$hdr")
[ -n "$cur" ] || fail "HWSOCK_BACKEND_ABI_VERSION not found in backend.h (update this test)"
next=$((cur + 1))
sed -i "s/^#define HWSOCK_BACKEND_ABI_VERSION ${cur}u$/#define HWSOCK_BACKEND_ABI_VERSION ${next}u/" "$hdr"
mkdir -p "$tmp/future"
# shellcheck disable=SC2086
quiet "$HWSOCK_SDK_CC" $cflags -std=c11 -fPIC -shared -fvisibility=hidden \
  -I"$tmp/future-include" "$src/examples/plugin-echo/echo.c" -o "$tmp/future/echo.so" \
  -L"$libdir" -lhwsock $mod_ldflags
want="echo.so: plugin ABI version $next, this library supports $cur"
"$HWSOCK_SDK_LOAD_ECHO" --refused "$tmp/future/echo.so" "$want" || fail "load_echo --refused"
if [ -n "$vmm" ]; then
  rc=0
  env -u LD_LIBRARY_PATH "$vmm" --listen "$tmp/vmm2.sock" --backend-dir "" \
    --backend "$tmp/future/echo.so" 2>"$tmp/vmm2.log" || rc=$?
  cat "$tmp/vmm2.log"
  [ "$rc" -ne 0 ] || fail "hwsock-vmm accepted a plugin of ABI version $next"
  grep -q "$want" "$tmp/vmm2.log" || fail "hwsock-vmm did not say '$want'"
  [ ! -e "$tmp/vmm2.sock" ] || fail "hwsock-vmm listened despite the bad plugin"
fi

echo
echo "sdk_test.sh: all checks passed"
