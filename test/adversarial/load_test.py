#!/usr/bin/env python3
"""Faults and load against a real hwsock-vmm (docs/RELIABILITY.md).

  load_test.py --vmm VMM --load LOAD_GUEST --policy-tool HWSOCK_POLICY
               SCENARIO

  echo       100 concurrent connections of one guest (the guest driver)
             through the VMM to an echo server, 2 MiB each way per
             connection, hashed: 0 mismatched bytes, 0 failed connections
             (HWSOCK_TEST_FULL=1: 20 MiB each)
  reset      a server that resets 100 connections after their first bytes:
             every guest connection ends with an error or EOF, none hangs;
             the VMM is back to its fds afterwards and serves an echo
  churn      2,000 sockets opened, connected and closed, two rounds
             (HWSOCK_TEST_FULL=1: 10,000, three rounds): the VMM's fd count
             returns to its start after each, and its RSS grows by less than
             8 MiB from the first round to the last
  malformed  100,000 malformed requests (HWSOCK_TEST_FULL=1: 1,000,000)
             in two halves: every one an error completion, RSS growth
             between the halves under 8 MiB
  restart    the VMM killed (-9) while 20 connections move 64 MiB each:
             every connection fails, the guest exits within 20 s (no hang);
             a new VMM on the same socket path serves a new guest
  policy     hostile policy files (an alias bomb, deep nesting, a 10 MB
             file, 100,000 list entries) given to hwsock-policy lint under
             a 512 MiB address-space limit: each refused within 10 s

Figures (fds, RSS, seconds) are printed; the test asserts only the
bounds above. Every wait is bounded."""
import argparse
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

WAIT = 20.0
FULL = os.environ.get("HWSOCK_TEST_FULL") == "1"


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Env:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="hwsock-load-")
        self.sock = os.path.join(self.tmp, "vmm.sock")
        self.log = os.path.join(self.tmp, "vmm.log")
        self.procs = []
        self.vmm = None

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def echo_server(self):
        """An echo server whose listen backlog takes 100 connects at once
        (test/vmm/echo_server.py's 16 would overflow: with the accept queue
        full the kernel drops handshakes)."""
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", 0))
        srv.listen(1024)

        def serve(c):
            with c:
                while True:
                    try:
                        d = c.recv(1 << 16)
                        if not d:
                            return
                        c.sendall(d)
                    except OSError:
                        return

        def accept():
            while True:
                try:
                    c, _ = srv.accept()
                except OSError:
                    return
                threading.Thread(target=serve, args=(c,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        self.servers = getattr(self, "servers", []) + [srv]
        return srv.getsockname()[1]

    def start_vmm(self, *extra):
        r, w = os.pipe()
        with open(self.log, "ab") as log:
            self.vmm = self.spawn([self.args.vmm, "--listen", self.sock,
                                   "--ready-fd", str(w), "--control", "",
                                   *extra], pass_fds=(w,), stderr=log)
        os.close(w)
        with os.fdopen(r, "rb") as rf:
            check(rf.readline() == b"ready\n", "hwsock-vmm not ready")
            rf.read()  # the VMM closes it after writing: fd counts from here

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.vmm.pid))

    def guest(self, *argv, timeout=WAIT * 6):
        t0 = time.monotonic()
        p = self.spawn([self.args.load, self.sock] + [str(a) for a in argv],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            raise Failure("load_guest %s hung (>%d s): %s" %
                          (argv[0], timeout, err.decode(errors="replace")))
        dt = time.monotonic() - t0
        out = out.decode()
        print("%s -> %s (%.1f s)" % (" ".join(str(a) for a in argv),
                                     out.strip(), dt))
        check(p.returncode == 0, "load_guest %s: exit %d\n%s\n%s" %
              (argv[0], p.returncode, out, err.decode(errors="replace")))
        return out, dt

    def wait_fds(self, base):
        end = time.monotonic() + WAIT
        while self.fds() != base and time.monotonic() < end:
            time.sleep(0.05)
        return self.fds()

    def stop_vmm(self):
        self.vmm.send_signal(signal.SIGTERM)
        rc = self.vmm.wait(timeout=WAIT)
        with open(self.log, errors="replace") as f:
            log = f.read()
        check(rc == 0 and "Sanitizer" not in log,
              "hwsock-vmm exit %d:\n%s" % (rc, log[-3000:]))

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def echo(env):
    port = env.echo_server()
    env.start_vmm()
    base = env.fds()
    size = (20 if FULL else 2) << 20
    out, dt = env.guest("echo", port, 100, size, timeout=600 if FULL else 240)
    check("mismatched 0 failed 0" in out, out)
    print("figure: 100 x %d MiB echoed in %.1f s (%.0f MiB/s each way)" %
          (size >> 20, dt, 100 * (size >> 20) / dt))
    check(env.wait_fds(base) == base, "fds after the echo")
    env.stop_vmm()


class ResetServer:
    """Accepts, reads a little, then resets (SO_LINGER 0)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.resets = 0
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                c.settimeout(5)
                c.recv(1024)
            except OSError:
                pass
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            c.close()
            self.resets += 1


def reset(env):
    srv = ResetServer()
    port = env.echo_server()
    env.start_vmm()
    base = env.fds()
    out, _ = env.guest("reset", srv.port, 100)
    check(" ok 0" in out, out)
    print("figure: server reset %d connections" % srv.resets)
    check(env.wait_fds(base) == base, "fds after the resets: %d, %d before" %
          (env.fds(), base))
    env.guest("echo", port, 4, 65536)
    env.stop_vmm()


def churn(env):
    port = env.echo_server()
    env.start_vmm()
    base = env.fds()
    n = 10000 if FULL else 2000
    rss = []
    for _ in range(3 if FULL else 2):
        env.guest("churn", port, n)
        check(env.wait_fds(base) == base, "fds after churn: %d, %d before" %
              (env.fds(), base))
        rss.append(rss_kib(env.vmm.pid))
    print("figure: %d sockets x %d rounds; VMM fds %d throughout; RSS KiB %s" %
          (n, len(rss), base, rss))
    check(rss[-1] - rss[0] < 8192, "RSS grew %d KiB" % (rss[-1] - rss[0]))
    env.stop_vmm()


def malformed(env):
    env.start_vmm()
    n = 1000000 if FULL else 100000
    env.guest("malformed", n // 2)
    r1 = rss_kib(env.vmm.pid)
    _, dt = env.guest("malformed", n // 2)
    r2 = rss_kib(env.vmm.pid)
    print("figure: %d malformed requests; %.0f requests/s; RSS KiB %d -> %d" %
          (n, (n // 2) / dt, r1, r2))
    check(r2 - r1 < 8192, "RSS grew %d KiB" % (r2 - r1))
    env.stop_vmm()


def policy(env):
    d = env.tmp
    files = {}
    # alias bomb ("billion laughs"): each level refers to the last 9 times
    bomb = ["version: 1", "rules:", "  - action: offload",
            "    to: &a0 [%s]" % ", ".join(["127.0.0.1"] * 9)]
    for i in range(1, 12):
        bomb += ["  - action: offload",
                 "    to: &a%d [%s]" % (i, ", ".join(["*a%d" % (i - 1)] * 9))]
    files["alias_bomb"] = "\n".join(bomb) + "\n"
    files["deep_nesting"] = "version: 1\nrules: " + "[" * 100000 + "]" * 100000 + "\n"
    files["deep_mapping"] = "version: 1\nrules:\n" + "".join(
        "  " * i + "k%d:\n" % i for i in range(500))
    files["ten_mb"] = "version: 1\ndefault: deny\nrules:\n" + (
        "  - action: offload\n    to: 127.0.0.1\n    ports: [80]\n" * 200000)
    files["huge_list"] = ("version: 1\nrules:\n  - action: offload\n    ports: [" +
                          ", ".join(str(1 + i % 65535) for i in range(100000)) +
                          "]\n")
    tool = env.args.policy_tool

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))

    for name, text in files.items():
        path = os.path.join(d, name + ".yaml")
        with open(path, "w") as f:
            f.write(text)
        t0 = time.monotonic()
        asan = is_asan(tool)
        env_ = dict(os.environ)
        env_["ASAN_OPTIONS"] = env_.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        # ASan reserves terabytes of address space for its shadow: under it
        # the bound is checked on the peak RSS instead of RLIMIT_AS
        p = subprocess.Popen([tool, "lint", "--config", path],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             preexec_fn=None if asan else limit, env=env_)
        timer = threading.Timer(10, p.kill)
        timer.start()
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        dt = time.monotonic() - t0
        check(dt < 10, "%s: hwsock-policy took more than 10 s" % name)
        err = err.decode(errors="replace").strip().splitlines()
        print("figure: %s (%d bytes): exit %d in %.2f s, peak RSS %d MiB: %s" %
              (name, len(text), p.returncode, dt, ru.ru_maxrss >> 10,
               err[0] if err else ""))
        check(p.returncode > 0 and p.returncode < 128,
              "%s: hwsock-policy exit %d: %s" % (name, p.returncode, err))
        check(ru.ru_maxrss < 512 << 10, "%s: peak RSS %d KiB" %
              (name, ru.ru_maxrss))


def is_asan(tool):
    with open(tool, "rb") as f:
        return b"__asan_init" in f.read()


def restart(env):
    port = env.echo_server()
    env.start_vmm()
    # a transfer big enough to be under way when the VMM dies
    p = env.spawn([env.args.load, env.sock, "echo", str(port), "20",
                   str(64 << 20)], stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
    time.sleep(1.0)
    check(p.poll() is None, "the transfer ended before the VMM was killed")
    env.vmm.kill()
    env.vmm.wait()
    t0 = time.monotonic()
    try:
        out, err = p.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        raise Failure("the guest hangs after its VMM was killed")
    dt = time.monotonic() - t0
    out = out.decode()
    print("figure: guest exit %d %.2f s after its VMM was killed: %s" %
          (p.returncode, dt, out.strip()))
    check(p.returncode != 0 and "failed 20" in out,
          "every connection must fail when the VMM dies: %s" % out)
    # a new VMM on the same path (the stale socket file is replaced)
    env.start_vmm()
    base = env.fds()
    out, _ = env.guest("echo", port, 4, 1 << 20)
    check("mismatched 0 failed 0" in out, out)
    check(env.wait_fds(base) == base, "fds after the restart's echo")
    env.stop_vmm()


SCENARIOS = {f.__name__: f for f in (echo, reset, churn, malformed, policy,
                                     restart)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmm", required=True)
    ap.add_argument("--load", required=True)
    ap.add_argument("--policy-tool", required=True)
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    args = ap.parse_args()
    env = Env(args)
    try:
        SCENARIOS[args.scenario](env)
        print("PASS " + args.scenario)
        return 0
    except Failure as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        env.cleanup()


if __name__ == "__main__":
    sys.exit(main())
