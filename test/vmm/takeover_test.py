#!/usr/bin/env python3
"""hwsock-vmm --takeover: a VMM restart that drops no connection
(docs/EMBEDDING.md section 12).

  takeover_test.py --vmm VMM --client TAKEOVER_CLIENT SCENARIO

  replace  one guest streams on 20 connections through the VMM to an echo
           server on 127.0.0.1 (every chunk compared, FNV hashes of both
           streams), and a 21st connection waits in a RECV for a server
           that sends only at the end, while the VMM is replaced 5 times by
           `hwsock-vmm --listen SOCK --takeover`: each old VMM exits 0, the
           streams go on through each new one (the echoed byte count
           grows), and at the end 0 bytes are lost, duplicated or wrong,
           no connection failed, the guest never re-attached, and the
           socket files are still served
  kill     the same stream; a takeover whose old VMM is killed with
           SIGKILL as soon as the new one is ready loses nothing (the
           stream goes on); then the serving VMM is killed with SIGKILL:
           what lives in it dies with it. Every connection of the guest
           fails (none hangs, no wrong byte), the echo server sees each
           connection closed, `--takeover` then finds no VMM (exit 1, the
           stale socket files stay), and a plain new VMM on the same path
           serves a new guest (and can be taken over in turn)

  refused  a --takeover whose devices cannot hold the guest's state
           (--max-sockets 8 for 20 sockets) exits 1 and the old VMM serves
           on (the stream goes on, nothing lost); a proper one then works

  counters (needs --stat HWSOCK_STAT) 4 connections stream, then pause
           between two rounds; `hwsock-stat --openmetrics` and the socket
           table (`-j`) are read, the VMM is replaced twice, and read
           again after each: no counter or histogram sample went back (a
           scraper takes a drop for a restart), the requests were not
           counted twice, and each socket keeps its byte counts, its age
           (created_ns) and the rule line that decided it; then the stream
           goes on and nothing is lost

Every wait is bounded; no timing is asserted."""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

WAIT = 30.0


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


class EchoServer:
    """Threaded echo server on 127.0.0.1; counts connections open."""

    def __init__(self):
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(128)
        self.port = self.srv.getsockname()[1]
        self.lock = threading.Lock()
        self.open = 0
        self.accepted = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def serve(self, c):
        with c:
            while True:
                try:
                    d = c.recv(1 << 16)
                    if not d:
                        break
                    c.sendall(d)
                except OSError:
                    break
        with self.lock:
            self.open -= 1

    def accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with self.lock:
                self.open += 1
                self.accepted += 1
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()


class Waker:
    """Accepts one connection and sends it "wake" when told to."""

    def __init__(self):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.port = self.srv.getsockname()[1]
        self.conn = None
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        try:
            self.conn, _ = self.srv.accept()
        except OSError:
            pass

    def wake(self):
        t0 = time.monotonic()
        while self.conn is None and time.monotonic() - t0 < WAIT:
            time.sleep(0.05)
        check(self.conn is not None, "the waiting connection never came")
        self.conn.sendall(b"wake")


class Env:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="hwsock-takeover-")
        self.sock = os.path.join(self.tmp, "vmm.sock")
        self.log = os.path.join(self.tmp, "vmm.log")
        self.stop = os.path.join(self.tmp, "stop")
        self.procs = []
        self.lines = []
        self.client = None

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def start_vmm(self, *extra, want_ready=True):
        """A VMM on self.sock; returns it once it said ready (or exited)."""
        r, w = os.pipe()
        with open(self.log, "ab") as log:
            p = self.spawn([self.args.vmm, "--listen", self.sock,
                            "--ready-fd", str(w), "-v", *extra],
                           pass_fds=(w,), stderr=log)
        os.close(w)
        with os.fdopen(r, "rb") as rf:
            ready = rf.readline() == b"ready\n"
        if want_ready:
            check(ready, "hwsock-vmm %s not ready (log: %s)" %
                  (" ".join(extra), self.tail_log()))
        return p

    def tail_log(self, n=15):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def start_client(self, port, conns, *extra):
        self.client = self.spawn([self.args.client, self.sock, str(port),
                                  str(conns), self.stop, *extra],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)

        def read():
            for line in self.client.stdout:
                self.lines.append(line.strip())

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()

    def echoed(self):
        for line in reversed(self.lines):
            if line.startswith("bytes "):
                return int(line.split()[1])
        return 0

    def wait_progress(self, what, more=1 << 20):
        """The stream moves on: `more` bytes echoed beyond now."""
        start = self.echoed()
        t0 = time.monotonic()
        while self.echoed() < start + more:
            if self.client.poll() is not None:
                raise Failure("%s: the guest exited: %s" %
                              (what, self.client_err()))
            check(time.monotonic() - t0 < WAIT,
                  "%s: the stream stalled at %d bytes" % (what,
                                                          self.echoed()))
            time.sleep(0.05)

    def client_err(self):
        try:
            return self.client.stderr.read()
        except (OSError, ValueError):
            return ""

    def finish_client(self):
        with open(self.stop, "w"):
            pass
        try:
            self.client.wait(timeout=WAIT * 2)
        except subprocess.TimeoutExpired:
            raise Failure("the guest did not finish after the stop file")
        self.reader.join(timeout=WAIT)
        err = self.client_err()
        last = self.lines[-1] if self.lines else ""
        return self.client.returncode, last, err

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_exit(p, what):
    try:
        return p.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        raise Failure("%s did not exit" % what)


def replace(env, evq=False):
    echo = EchoServer()
    opts = ("--queues", "2") if evq else ()
    waker = Waker()
    vmm = env.start_vmm(*opts)
    env.start_client(echo.port, 20, "wait=%d" % waker.port,
                     *(("evq",) if evq else ()))
    env.wait_progress("before the first takeover")
    for i in range(1, 6):
        new = env.start_vmm("--takeover", *opts)
        rc = wait_exit(vmm, "the old VMM after takeover %d" % i)
        check(rc == 0, "takeover %d: the old VMM exited %d (log: %s)" %
              (i, rc, env.tail_log()))
        vmm = new
        env.wait_progress("after takeover %d" % i)
        print("takeover %d: %d bytes echoed so far" % (i, env.echoed()))
    waker.wake()  # its RECV waited through all 5
    rc, last, err = env.finish_client()
    print(last)
    check(rc == 0 and last.startswith("stream 20:") and
          last.endswith("mismatched 0 failed 0"),
          "the streams did not survive 5 takeovers: %s %s" % (last, err))
    with open(env.log, errors="replace") as f:
        log = f.read()
    check(log.count("attached (pid") == 1,
          "the guest attached again: it saw a reset")
    check(log.count("took 1 guest and 21 host sockets") == 5,
          "a takeover did not carry the 21 connections:\n" + log[-3000:])
    check(echo.accepted == 20, "the echo server saw %d connections, not 20"
          % echo.accepted)
    # the last VMM still serves the path (and a new guest on it)
    env.lines.clear()
    os.unlink(env.stop)
    env.start_client(echo.port, 2)
    env.wait_progress("a new guest after the takeovers", more=1 << 16)
    rc, last, err = env.finish_client()
    check(rc == 0, "a new guest: %s %s" % (last, err))
    vmm.send_signal(signal.SIGTERM)
    check(wait_exit(vmm, "the last VMM") == 0, "the last VMM exited badly")
    for suffix in ("", ".ctl", ".takeover"):
        check(not os.path.exists(env.sock + suffix),
              "%s left behind at exit" % (env.sock + suffix))


def kill(env):
    echo = EchoServer()
    vmm = env.start_vmm()
    env.start_client(echo.port, 20)
    env.wait_progress("before the takeover")
    # killed once the new VMM is ready (it has everything): nothing lost
    new = env.start_vmm("--takeover")
    vmm.kill()
    vmm.wait()
    vmm = new
    env.wait_progress("after the old VMM was killed past its hand-over")
    # the serving VMM killed: what it held dies with it
    vmm.kill()
    vmm.wait()
    try:
        env.client.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        raise Failure("the guest hangs after its VMM was killed")
    env.reader.join(timeout=WAIT)
    last = env.lines[-1] if env.lines else ""
    print("after SIGKILL: %s" % last)
    check(env.client.returncode == 1 and last.startswith("stream 20:") and
          last.endswith("mismatched 0 failed 20"),
          "every connection must fail, none with a wrong byte: %s" % last)
    t0 = time.monotonic()
    while echo.open > 0 and time.monotonic() - t0 < WAIT:
        time.sleep(0.05)
    check(echo.open == 0, "%d host connections outlived their VMM" %
          echo.open)
    # nobody to take over from: exit 1, and the stale files stay
    p = env.start_vmm("--takeover", want_ready=False)
    rc = wait_exit(p, "--takeover without a VMM")
    check(rc == 1, "--takeover without a VMM exited %d" % rc)
    check(os.path.exists(env.sock), "a failed --takeover removed the socket")
    # a plain VMM replaces the stale files and serves a new guest
    vmm = env.start_vmm()
    env.lines.clear()
    env.start_client(echo.port, 2)
    env.wait_progress("a new guest after the kill", more=1 << 16)
    # its takeover socket replaced the stale one too: it can be taken over
    new = env.start_vmm("--takeover")
    check(wait_exit(vmm, "the VMM after the kill") == 0,
          "the VMM started after the kill was not taken over")
    vmm = new
    env.wait_progress("a new guest after the kill and a takeover",
                      more=1 << 16)
    rc, last, err = env.finish_client()
    check(rc == 0, "a new guest after the kill: %s %s" % (last, err))
    vmm.send_signal(signal.SIGTERM)
    check(wait_exit(vmm, "the new VMM") == 0, "the new VMM exited badly")


def refused(env):
    echo = EchoServer()
    vmm = env.start_vmm()
    env.start_client(echo.port, 20)
    env.wait_progress("before the takeover")
    # devices too small for the guest's 20 sockets: the new VMM fails
    # before its ACK, and the old one serves on
    p = env.start_vmm("--takeover", "--max-sockets", "8", want_ready=False)
    rc = wait_exit(p, "a --takeover that cannot fit the guest")
    check(rc == 1, "a --takeover that cannot fit the guest exited %d" % rc)
    check(vmm.poll() is None, "the old VMM did not serve on: %s" %
          env.tail_log())
    env.wait_progress("after the refused takeover")
    # and a proper takeover still works afterwards
    new = env.start_vmm("--takeover")
    check(wait_exit(vmm, "the old VMM") == 0, "the old VMM exited badly")
    env.wait_progress("after the takeover")
    rc, last, err = env.finish_client()
    check(rc == 0 and last.endswith("mismatched 0 failed 0"),
          "the streams did not survive: %s %s" % (last, err))
    with open(env.log, errors="replace") as f:
        check("not handed over" in f.read(), "the old VMM did not say why")
    new.send_signal(signal.SIGTERM)
    check(wait_exit(new, "the new VMM") == 0, "the new VMM exited badly")


def replace_evq(env):
    replace(env, evq=True)


def stat(env, *args):
    check(env.args.stat is not None, "this scenario needs --stat")
    p = subprocess.run([env.args.stat, "--vmm", env.sock, *args],
                       capture_output=True, text=True, timeout=WAIT)
    check(p.returncode == 0, "hwsock-stat %s: exit %d: %s" %
          (" ".join(args), p.returncode, p.stderr))
    return p.stdout


def monotonic_samples(env):
    """Every sample of a counter or histogram family of
    `hwsock-stat --openmetrics`: {(name, labels): value}."""
    kinds, out = {}, {}
    for line in stat(env, "--openmetrics").splitlines():
        if line.startswith("# TYPE "):
            _, _, fam, kind = line.split()
            kinds[fam] = kind
            continue
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        name = key.split("{", 1)[0]
        fam = next((f for f in kinds
                    if name in (f, f + "_total", f + "_bucket", f + "_sum",
                                f + "_count")), None)
        if fam is not None and kinds[fam] in ("counter", "histogram"):
            out[key] = float(value)
    return out


def socket_table(env):
    import json
    table = {}
    for line in stat(env, "-j").splitlines():
        s = json.loads(line)
        table[(s["guest"], s["id"])] = s
    return table


def wait_paused(env, n):
    t0 = time.monotonic()
    while True:
        last = env.lines[-1] if env.lines else ""
        if last.endswith("paused %d" % n):
            return
        if env.client.poll() is not None:
            raise Failure("the guest exited: %s" % env.client_err())
        check(time.monotonic() - t0 < WAIT, "the guest did not pause: %s"
              % last)
        time.sleep(0.05)


def counters(env):
    echo = EchoServer()
    pause = os.path.join(env.tmp, "pause")
    vmm = env.start_vmm()
    env.start_client(echo.port, 4, "pause=" + pause)
    env.wait_progress("before the takeovers")
    with open(pause, "w"):
        pass
    wait_paused(env, 4)
    before, table = monotonic_samples(env), socket_table(env)
    key = 'hwsock_requests_total{guest="1"}'
    check(before.get(key, 0) > 0, "no requests counted: %s" % before)
    check(len(table) == 4, "not 4 sockets in the table: %s" % table)
    for i in (1, 2):
        new = env.start_vmm("--takeover")
        check(wait_exit(vmm, "the old VMM") == 0, "the old VMM exited badly")
        vmm = new
        after, now = monotonic_samples(env), socket_table(env)
        for k, v in sorted(before.items()):
            check(k in after, "takeover %d: %s is gone" % (i, k))
            check(after[k] >= v, "takeover %d: %s went back: %g -> %g" %
                  (i, k, v, after[k]))
        # paused: nothing taken meanwhile, and nothing counted twice
        check(after[key] == before[key], "takeover %d: requests %g -> %g" %
              (i, before[key], after[key]))
        for k, s in table.items():
            t = now.get(k)
            check(t is not None, "takeover %d: socket %s is gone" % (i, k))
            for f in ("bytes_out", "bytes_in", "requests_out",
                      "requests_in", "created_ns", "rule", "rule_line"):
                check(t[f] == s[f], "takeover %d: socket %s: %s %s -> %s" %
                      (i, k, f, s[f], t[f]))
        print("takeover %d: %d counter samples and %d sockets go on "
              "(requests %d)" % (i, len(after), len(now), after[key]))
        before = after
    os.unlink(pause)
    env.wait_progress("after the takeovers")
    after = monotonic_samples(env)
    check(after[key] > before[key], "the requests after the pause were "
          "not counted")
    rc, last, err = env.finish_client()
    check(rc == 0 and last.endswith("mismatched 0 failed 0"),
          "the streams did not survive: %s %s" % (last, err))
    vmm.send_signal(signal.SIGTERM)
    check(wait_exit(vmm, "the last VMM") == 0, "the last VMM exited badly")


SCENARIOS = {"replace": replace, "replace_evq": replace_evq, "kill": kill,
             "refused": refused, "counters": counters}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmm", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--stat")
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    args = ap.parse_args()
    env = Env(args)
    try:
        SCENARIOS[args.scenario](env)
    except Failure as e:
        print("FAIL: %s" % e)
        print("VMM log tail:\n%s" % env.tail_log(40))
        return 1
    finally:
        env.cleanup()
    print("PASS %s" % args.scenario)
    return 0


if __name__ == "__main__":
    sys.exit(main())
