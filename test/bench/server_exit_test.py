#!/usr/bin/env python3
"""hwsock-bench-server ends cleanly (test/bench/tests.cmake, bench_server_exit).

The benchmark scripts stop it with SIGTERM or by closing its stdin; built
with ASan, its exit must find nothing leaked: the listeners and the
connections still open are freed (their pointers live only in the
kernel's epoll set, where LeakSanitizer does not look). One connection to
the echo service is left open at each exit.

Usage: server_exit_test.py   (HWSOCK_BENCH_SERVER: the binary)"""
import os
import signal
import socket
import subprocess
import sys

SERVER = os.environ.get("HWSOCK_BENCH_SERVER", "hwsock-bench-server")


def one(how):
    env = dict(os.environ)
    # leak checking on whatever the caller's ASAN_OPTIONS say (scripts/test
    # sets detect_leaks=1 already)
    env["ASAN_OPTIONS"] = "detect_leaks=1:" + env.get("ASAN_OPTIONS", "")
    p = subprocess.Popen([SERVER], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    try:
        line = p.stdout.readline().split()
        if len(line) != 6 or line[0] != b"ports":
            return "no ports line: %r" % line
        echo = int(line[2])
        c = socket.create_connection(("127.0.0.1", echo), timeout=10)
        c.sendall(b"ping")
        if c.recv(4) != b"ping":
            return "no echo"
        if how == "SIGTERM":
            p.send_signal(signal.SIGTERM)
        else:
            p.stdin.close()
        p.wait(60)
        err = p.stderr.read()
        c.close()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    text = err.decode(errors="replace")
    if p.returncode != 0 or "LeakSanitizer" in text:
        return "exit %d after %s:\n%s" % (p.returncode, how, text[-3000:])
    return None


def main():
    fails = [f for f in (one("SIGTERM"), one("stdin EOF")) if f]
    for f in fails:
        print("FAIL:", f, file=sys.stderr)
    if fails:
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
