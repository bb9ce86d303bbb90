#!/usr/bin/env bash
# hwsock-policy, end to end: the exact lines `check` prints for a small
# policy, and the exit status of check/lint/default on good and bad input.
# Usage: policy_cli.sh HWSOCK_POLICY_BINARY SOURCE_DIR_OF_THIS_SCRIPT
set -u
tool=$1
here=$2
policy="$here/policy_cli.yaml"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# expect STATUS STDOUT-FILE -- COMMAND...: exit status and exact stdout
expect() {
  local status=$1 want=$2
  shift 3
  "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  [ "$rc" -eq "$status" ] || fail "exit $rc, wanted $status: $*"
  if ! diff -u "$want" "$work/out"; then
    fail "stdout differs: $*"
  fi
}

cat >"$work/want" <<'OUT'
deny tcp://127.0.0.1:9 discard is refused
deny tcp6://[::ffff:127.0.0.1]:9 discard is refused
deny udp6://[::1]:9 discard is refused
offload tcp://127.0.0.1:80 rule 2 (line 10)
offload tcp6://[::1]:443 rule 2 (line 10)
decline udp://127.0.0.1:80 default
decline tcp://192.0.2.7:443 default
invalid tcp://0177.0.0.1:80 IPv4 octet with a leading zero (octal forms are not allowed)
invalid tcp://2130706433:80 integer IPv4 form is not allowed: use four dotted octets
OUT
expect 0 "$work/want" -- "$tool" check --config "$policy" \
  tcp://127.0.0.1:9 'tcp6://[::ffff:127.0.0.1]:9' 'udp6://[::1]:9' \
  tcp://127.0.0.1:80 tcp6://0:0:0:0:0:0:0:1/443 udp://127.0.0.1:80 \
  tcp://192.0.2.7:443 tcp://0177.0.0.1:80 tcp://2130706433:80

cat >"$work/want" <<'OUT'
offload tcp://127.0.0.1:0 rule 2 (line 10)
deny tcp://0.0.0.0:8080 no listening elsewhere
deny udp://127.0.0.1:9 discard is refused
OUT
expect 0 "$work/want" -- "$tool" check --inbound --config "$policy" \
  tcp://127.0.0.1:0 tcp://0.0.0.0:8080 udp://127.0.0.1:9

cat >"$work/want" <<'OUT'
deny tcp://127.0.0.1:9 discard is refused [rule 1 line 5 error ECONNREFUSED]
decline tcp://192.0.2.7:1 default [rule 0 line 0]
OUT
expect 0 "$work/want" -- "$tool" check --verbose --config="$policy" \
  tcp://127.0.0.1:9 tcp://192.0.2.7:1

# addresses as the kernel uses them: 0.0.0.0 and :: are loopback, a
# v4-mapped address is tcp/udp, a v4-compatible one is refused
cat >"$work/want" <<'OUT'
deny tcp://0.0.0.0:9 discard is refused [rule 1 line 5 error ECONNREFUSED as tcp://127.0.0.1:9]
deny tcp6://[::]:9 discard is refused [rule 1 line 5 error ECONNREFUSED as tcp6://[::1]:9]
offload tcp6://[::ffff:0.0.0.0]:80 rule 2 (line 10) [rule 2 line 10 as tcp://127.0.0.1:80]
decline udp6://[::ffff:127.0.0.1]:80 default [rule 0 line 0 as udp://127.0.0.1:80]
deny tcp6://[::7f00:1]:80 IPv4-compatible address (::a.b.c.d) refused [rule 0 line 0 error ENETUNREACH]
OUT
expect 0 "$work/want" -- "$tool" check --verbose --config "$policy" \
  tcp://0.0.0.0:9 'tcp6://[::]:9' 'tcp6://[::ffff:0.0.0.0]:80' \
  'udp6://[::ffff:127.0.0.1]:80' 'tcp6://[::127.0.0.1]:80'
cat >"$work/want" <<'OUT'
deny tcp://0.0.0.0:9 no listening elsewhere
OUT
expect 0 "$work/want" -- "$tool" check --inbound --config "$policy" \
  tcp://0.0.0.0:9

# without --config: the built-in default policy
cat >"$work/want" <<'OUT'
offload tcp://127.0.0.1:8080 loopback destination, offloaded to the host
deny tcp://127.0.0.1:9 denied by the demo policy
decline tcp://192.0.2.7:443 not loopback, left to the guest's own stack
OUT
expect 0 "$work/want" -- "$tool" check \
  tcp://127.0.0.1:8080 tcp://127.0.0.1:9 tcp://192.0.2.7:443

# lint: good files
echo "$policy: ok (3 rules)" >"$work/want"
expect 0 "$work/want" -- "$tool" lint --config "$policy"
"$tool" default >"$work/default.yaml" || fail "default: exit $?"
echo "$work/default.yaml: ok (7 rules)" >"$work/want"
expect 0 "$work/want" -- "$tool" lint --config "$work/default.yaml"

[ -s "$work/err" ] && fail "lint warned about the default policy"

# lint warns (stderr, exit 0) about rules whose meaning changed when
# addresses began to be matched as the kernel uses them
cat >"$work/changed.yaml" <<'YAML'
version: 1
default: deny
rules:
  - action: deny
    scheme: [tcp]
    to: 169.254.0.0/16
  - action: offload
    scheme: [tcp, tcp6]
    to: [0.0.0.0/0, "::/0"]
  - action: offload
    scheme: udp6
    to: [10.0.0.0/8, "2001:db8::/32"]
  - action: deny
    scheme: [tcp6, udp6]
    error: EAFNOSUPPORT
  - action: offload
    direction: outbound
    to: 0.0.0.0
  - action: offload
    to: "::"
YAML
echo "$work/changed.yaml: ok (6 rules, 6 warnings)" >"$work/want"
expect 0 "$work/want" -- "$tool" lint --config "$work/changed.yaml"
f=$work/changed.yaml
cat >"$work/want" <<OUT
$f:4: warning: rule 1: now also matches tcp6 sockets whose address is IPv4-mapped (::ffff:a.b.c.d): they are matched as tcp
$f:10: warning: rule 3: its IPv4 entries never match: an IPv4-mapped address (::ffff:a.b.c.d) of a udp6 socket is matched as udp; add udp to 'scheme'
$f:13: warning: rule 4: no longer matches tcp6 sockets whose address is IPv4-mapped (::ffff:a.b.c.d): they are matched as tcp
$f:13: warning: rule 4: no longer matches udp6 sockets whose address is IPv4-mapped (::ffff:a.b.c.d): they are matched as udp
$f:16: warning: rule 5: its entry for 0.0.0.0 or :: never matches: destinations 0.0.0.0 and :: are matched as 127.0.0.1 and ::1
$f:19: warning: rule 6: its entry for 0.0.0.0 or :: matches binds only: destinations 0.0.0.0 and :: are matched as 127.0.0.1 and ::1
OUT
diff -u "$work/want" "$work/err" || fail "lint warnings"

# lint: bad files exit 1 with the message on stderr and nothing on stdout
: >"$work/empty"
printf 'version: 1\nrules:\n  - action: deny\n    to: 10.0.0.1/8\n' \
  >"$work/hostbits.yaml"
expect 1 "$work/empty" -- "$tool" lint --config "$work/hostbits.yaml"
echo "$work/hostbits.yaml:4:9: bad address '10.0.0.1/8' in 'to': address has bits set beyond the prefix length" >"$work/want"
diff -u "$work/want" "$work/err" || fail "lint message"
printf 'version: 2\n' >"$work/v2.yaml"
expect 1 "$work/empty" -- "$tool" lint --config "$work/v2.yaml"
expect 1 "$work/empty" -- "$tool" lint --config "$work/missing.yaml"

# usage and policy errors: exit 2, nothing on stdout
expect 2 "$work/empty" -- "$tool" check --config "$work/v2.yaml" tcp://127.0.0.1:1
expect 2 "$work/empty" -- "$tool" check --config "$policy"
expect 2 "$work/empty" -- "$tool" lint
expect 2 "$work/empty" -- "$tool" frobnicate
expect 2 "$work/empty" -- "$tool" check --no-such-option tcp://127.0.0.1:1
expect 2 "$work/empty" -- "$tool"
"$tool" --help | grep -q 'built-in default' || fail "--help"

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "policy_cli: all passed"
