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
  stall      one guest on the event queue (PROTOCOL.md §16): 99 connections
             echo 1 MiB each (HWSOCK_TEST_FULL=1: 8 MiB) in 8 KiB round
             trips, FNV-hashed, three times: alone, while one more
             connection's reader has stopped reading (the server keeps
             sending) and another's peer has stopped reading (the guest
             keeps sending), and after both stalls ended: every echo
             complete with 0 mismatched bytes; the device never found the
             event queue without a buffer (counter ev_no_buffer 0); the
             stalled reader's unread bytes wait in the host kernel (the
             VMM's socket's receive queue), the device delivered at most
             the window (256 KiB) and buffers nothing; the unread bytes of
             the other wait in the server's receive queue (SIOCINQ) and the
             VMM's send queue, the device holding at most the one request
             it is writing; the VMM's RSS grows by less than 8 MiB; every
             stalled byte arrives in order once the stalls end. Prints the
             99's aggregate rate with and without the stalls, as a ratio
             (--rounds R: R rounds of each, medians; the rate is a figure,
             never asserted)
  stall_trickle  stall with a source that sends 512 bytes every 2 ms, so
             that the unread data comes in small events: they must not
             take the event buffers either
  restart    the VMM killed (-9) while 20 connections move 64 MiB each:
             every connection fails, the guest exits within 20 s (no hang);
             a new VMM on the same socket path serves a new guest
  policy     hostile policy files (an alias bomb, deep nesting, a 10 MB
             file, 100,000 list entries) given to hwsock-policy lint under
             a 512 MiB address-space limit: each refused within 10 s

Figures (fds, RSS, seconds) are printed; the test asserts only the
bounds above. Every wait is bounded."""
import argparse
import fcntl
import json
import os
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

WAIT = 20.0
FULL = os.environ.get("HWSOCK_TEST_FULL") == "1"
# ASan keeps freed memory in a quarantine (256 MiB by default), which a
# long run sees as RSS growth: where RSS is a figure, the VMM's is 1 MiB
RSS_ASAN = "quarantine_size_mb=1"


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

    def start_vmm(self, *extra, control="", asan=None):
        r, w = os.pipe()
        env = dict(os.environ)
        if asan:
            a = env.get("ASAN_OPTIONS", "")
            env["ASAN_OPTIONS"] = (a + ":" if a else "") + asan
        with open(self.log, "ab") as log:
            self.vmm = self.spawn([self.args.vmm, "--listen", self.sock,
                                   "--ready-fd", str(w), "--control", control,
                                   *extra], pass_fds=(w,), stderr=log,
                                  env=env)
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
    env.start_vmm(asan=RSS_ASAN)
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
    env.start_vmm(asan=RSS_ASAN)
    n = 1000000 if FULL else 100000
    t = 600 if FULL else WAIT * 6
    env.guest("malformed", n // 2, timeout=t)
    r1 = rss_kib(env.vmm.pid)
    _, dt = env.guest("malformed", n // 2, timeout=t)
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


PATTERN = bytes(i % 251 for i in range(251)) * 270  # > 64 KiB + 251


def pattern(off, n):
    """n bytes of the stream whose byte at offset i is i % 251 (n <= 64 KiB)"""
    k = off % 251
    return PATTERN[k:k + n]


class StallSource:
    """Sends the i % 251 stream to the one connection it accepts until
    stop(), whether or not the other side reads; then shuts down its
    side. `blocked` once a send found no room for 0.3 s. A trickle sends
    512 bytes every 2 ms: each may be read into an event buffer of its own
    before the next arrives."""

    def __init__(self, trickle=False):
        self.trickle = trickle
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.sent = 0
        self.blocked = threading.Event()
        self.stopped = threading.Event()
        self.done = threading.Event()
        self.conn = None
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        try:
            c, _ = self.lsock.accept()
        except OSError:
            return
        self.conn = c
        c.setblocking(False)
        idle = time.monotonic()
        while not self.stopped.is_set():
            _, w, _ = select.select([], [c], [], 0.05)
            if not w:
                if time.monotonic() - idle > 0.3 and self.sent > 0:
                    self.blocked.set()
                continue
            try:
                n = c.send(pattern(self.sent, 512 if self.trickle else 65536))
                if self.trickle:
                    time.sleep(0.002)
            except BlockingIOError:
                continue
            except OSError:
                break
            self.sent += n
            idle = time.monotonic()
        try:
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.done.set()

    def stop(self):
        self.stopped.set()
        check(self.done.wait(WAIT), "the stall source did not stop")


class StallSink:
    """Accepts one connection, reads the first 4 KiB, then reads nothing
    until resume(); then reads to EOF, checking the i % 251 stream."""

    FIRST = 4096

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.got = 0
        self.bad = 0
        self.conn = None
        self.accepted = threading.Event()
        self.go = threading.Event()
        self.done = threading.Event()
        threading.Thread(target=self.loop, daemon=True).start()

    def read(self, c, limit):
        d = c.recv(limit)
        if d and d != pattern(self.got, len(d)):
            self.bad += 1
        self.got += len(d)
        return d

    def loop(self):
        try:
            c, _ = self.lsock.accept()
        except OSError:
            return
        self.conn = c
        self.accepted.set()
        try:
            while self.got < self.FIRST:
                if not self.read(c, self.FIRST - self.got):
                    break
            self.go.wait()
            while self.read(c, 65536):
                pass
        except OSError:
            pass
        self.done.set()

    def inq(self):
        """The bytes waiting in this socket's receive queue (SIOCINQ)."""
        b = fcntl.ioctl(self.conn.fileno(), termios.FIONREAD,
                        struct.pack("i", 0))
        return struct.unpack("i", b)[0]


def tcp_queues(peer_port):
    """(send queue, receive queue) of each TCP socket connected to
    127.0.0.1:peer_port, from /proc/net/tcp (what ss -tn shows)."""
    want = "0100007F:%04X" % peer_port
    out = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if p[2] == want and p[3] == "01":  # ESTABLISHED
                tx, rx = p[4].split(":")
                out.append((int(tx, 16), int(rx, 16)))
    return out


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks"""
    with open("/proc/%d/stat" % pid) as f:
        p = f.read().rsplit(")", 1)[1].split()
    return int(p[11]) + int(p[12])


def stat_json(env, *args):
    out = subprocess.run([env.args.stat, "--control", env.ctl, "-j"] +
                         list(args), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=WAIT)
    check(out.returncode == 0, "hwsock-stat: %s" % out.stderr.decode())
    return [json.loads(l) for l in out.stdout.decode().splitlines() if l]


def stall(env, trickle=False):
    check(env.args.stat is not None, "stall needs --stat")
    port = env.echo_server()
    src, sink = StallSource(trickle), StallSink()
    env.ctl = os.path.join(env.tmp, "vmm.ctl")
    # two queues: requests and the event queue
    env.start_vmm("--queues", "2", control=env.ctl, asan=RSS_ASAN)
    conns, size, chunk = 99, (8 if FULL else 1) << 20, 8192
    rounds = env.args.rounds
    window = 256 << 10  # the driver's default receive window
    p = env.spawn([env.args.load, env.sock, "stall", str(port), str(src.port),
                   str(sink.port), str(conns), str(size), str(chunk),
                   str(rounds)],
                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
    lines = []
    hz = os.sysconf("SC_CLK_TCK")
    vmm_cpu = [cpu_ticks(env.vmm.pid)]  # at each mark

    def mark():
        vmm_cpu.append(cpu_ticks(env.vmm.pid))
        return (vmm_cpu[-1] - vmm_cpu[-2]) / hz
    t0 = time.monotonic()
    limit = (600 if FULL else 240) * rounds

    def expect(prefix):
        while True:
            check(time.monotonic() - t0 < limit, "the guest hangs")
            line = p.stdout.readline().decode()
            if not line:
                p.wait(timeout=WAIT)
                raise Failure("guest exit %s before %r:\n%s\n%s" % (
                    p.returncode, prefix, "".join(lines),
                    p.stderr.read().decode(errors="replace")))
            lines.append(line)
            print("guest: " + line.rstrip())
            if line.startswith(prefix):
                return line

    mib = conns * size / (1 << 20)

    def round_rate(line):
        """(MiB/s, CPU seconds of the guest and the VMM per GiB)"""
        check("mismatched 0 failed 0" in line, line)
        cpu = float(line.split(" cpu ")[1].split()[0]) + mark()
        return float(line.split(" rate ")[1].split()[0]), cpu * 1024 / mib

    def phase(name):
        r = [round_rate(expect(name + " ")) for _ in range(rounds)]
        rates, cpus = sorted(x[0] for x in r), sorted(x[1] for x in r)
        return rates[len(rates) // 2], rates, cpus[len(cpus) // 2]

    # a hang is bounded by the test's timeout: readline has none of its own
    timer = threading.Timer(limit, p.kill)
    timer.start()
    try:
        base, base_all, base_cpu = phase("base")
        expect("stall-open")
        if trickle:  # the window's worth of small events, at least
            end = time.monotonic() + WAIT
            while src.sent < 2 * window and time.monotonic() < end:
                time.sleep(0.1)
        else:
            check(src.blocked.wait(WAIT), "the source never filled the host "
                  "buffers (sent %d bytes)" % src.sent)
        check(sink.accepted.wait(WAIT), "the sink got no connection")
        # the writer is blocked once the sink's receive queue stops growing
        end, last = time.monotonic() + WAIT, -1
        while time.monotonic() < end:
            q = sink.inq()
            if q == last and q > 0:
                break
            last = q
            time.sleep(0.3)
        rss0 = rss_kib(env.vmm.pid)
        sent0 = src.sent
        mark()
        p.stdin.write(b"go\n")
        p.stdin.flush()
        stalled, stalled_all, stalled_cpu = phase("stalled")
        expect("stall-held")
        # while both stalls last: where their bytes are
        rss1 = rss_kib(env.vmm.pid)
        socks = stat_json(env)
        counters = stat_json(env, "--counters")
        rx = [s for s in socks if s["remote"] == "tcp://127.0.0.1:%d" % src.port]
        tx = [s for s in socks if s["remote"] == "tcp://127.0.0.1:%d" % sink.port]
        check(len(rx) == 1 and len(tx) == 1, "sockets %r" % socks)
        rx, tx = rx[0], tx[0]
        src_q = tcp_queues(src.port)
        sink_q = tcp_queues(sink.port)
        sink_inq, sink_got = sink.inq(), sink.got
        print("figure: stalled reader: source sent %d bytes (%d when the "
              "round began); device delivered %d (window %d); host receive "
              "queue (VMM side) %s" % (src.sent, sent0, rx["bytes_in"], window,
                                       [q[1] for q in src_q]))
        print("figure: stalled writer: device sent %d bytes, in flight %d; "
              "sink read %d, its receive queue %d; VMM side send queue %s" % (
                  tx["bytes_out"], tx["inflight"], sink_got, sink_inq,
                  [q[0] for q in sink_q]))
        print("figure: ev_no_buffer %d; VMM RSS %d -> %d KiB" % (
            counters[0].get("ev_no_buffer", -1), rss0, rss1))
        check(counters[0].get("ev_no_buffer") == 0,
              "the event queue ran dry: %r" % counters[0])
        # the stalled reader: at most the window crossed the device; the
        # rest waits in the host kernel (the VMM's socket's receive queue,
        # then the source's send queue)
        check(rx["bytes_in"] <= window, "device delivered %d bytes to a "
              "reader that stopped, window %d" % (rx["bytes_in"], window))
        check(len(src_q) == 1 and src_q[0][1] > 0,
              "no unread bytes in the host's receive queue: %r" % src_q)
        check(src.sent >= rx["bytes_in"] + src_q[0][1] and
              src.sent > window + src_q[0][1],
              "the source sent %d bytes only" % src.sent)
        # the stalled writer: its bytes wait in the sink's receive queue and
        # the VMM's send queue; the device holds at most the request it is
        # writing (its bytes count as sent once the request completes)
        check(sink_inq > 0, "nothing waits in the sink's receive queue")
        check(len(sink_q) == 1, "VMM sockets to the sink: %r" % sink_q)
        in_kernel = sink_got + sink_inq + sink_q[0][0]
        check(tx["inflight"] <= 1, "requests held: %d" % tx["inflight"])
        check(tx["bytes_out"] <= in_kernel <= tx["bytes_out"] + 65536,
              "device sent %d bytes, the kernels hold %d" % (tx["bytes_out"],
                                                             in_kernel))
        check(rss1 - rss0 < 8192, "VMM RSS grew %d KiB" % (rss1 - rss0))
        # end both stalls: every byte arrives, in order
        src.stop()
        sink.go.set()
        p.stdin.write(b"end\n")
        p.stdin.flush()
        line = expect("stall rx ")
        mark()
        f = line.split()
        check(int(f[2]) == src.sent and f[4] == "0",
              "stalled reader got %s of %d bytes: %s" % (f[2], src.sent, line))
        check(sink.done.wait(WAIT), "the sink never saw the end")
        check(int(f[6]) == sink.got and sink.bad == 0 and f[8] == "0",
              "sink read %d bytes (%d bad chunks): %s" % (sink.got, sink.bad,
                                                          line))
        after, after_all, after_cpu = phase("after")
        p.stdin.close()
        check(p.wait(timeout=WAIT) == 0, "guest exit %d: %s" % (
            p.returncode, p.stderr.read().decode(errors="replace")))
    finally:
        timer.cancel()
    print("figure: 99 x %d MiB in %d-byte round trips, median of %d "
          "round(s): %.1f MiB/s alone, %.1f with a stalled reader and a "
          "stalled peer, %.1f after; ratio %.2f (rounds: %s, %s, %s; load "
          "average %.1f)" % (size >> 20, chunk, rounds, base, stalled, after,
                             stalled / ((base + after) / 2), base_all,
                             stalled_all, after_all, os.getloadavg()[0]))
    print("figure: CPU seconds per GiB (guest + VMM), medians: %.2f alone, "
          "%.2f stalled, %.2f after; ratio %.2f" % (
              base_cpu, stalled_cpu, after_cpu,
              stalled_cpu / ((base_cpu + after_cpu) / 2)))
    env.stop_vmm()


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
                                     restart, stall)}
SCENARIOS["stall_trickle"] = lambda env: stall(env, trickle=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmm", required=True)
    ap.add_argument("--load", required=True)
    ap.add_argument("--policy-tool", required=True)
    ap.add_argument("--stat", help="hwsock-stat (stall)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="stall: rounds of each phase (default 1)")
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
