#!/usr/bin/env python3
"""hwsock-conform against a real hwsock-vmm, and against a broken one
(test/conform/tests.cmake).

  conform_test.py --vmm VMM --conform HWSOCK_CONFORM --broken BROKEN_VMM
                  --echo ECHO_SERVER
  conform_test.py --vhost HWSOCK_VHOST_USER --conform HWSOCK_CONFORM
                  --echo ECHO_SERVER

Starts the echo server (test/vmm/echo_server.py) and hwsock-vmm with a
policy that offloads tcp to 127.0.0.1, then:
  1. hwsock-conform --vmm SOCK --echo tcp://127.0.0.1:PORT exits 0 and
     reports every clause passed, none failed or skipped;
  2. against broken_vmm (a relay in front of the same VMM) with each of its
     faults it exits non-zero and names exactly the clauses that fault
     breaks: a wrong protocol_version in HELLO (§3); FEATURES passed on
     without EVENT_QUEUE (every §16 clause that uses the event queue);
     FEATURES passed on with EVENT_QUEUE the guest did not ask for (§16,
     CREDIT must be ENOSYS).
With --vhost instead: hwsock-conform --vhost-user against
hwsock-vhost-user (same policy) exits 0, every clause that runs passes, and
exactly the clauses of the loopback transport's own messages are skipped.
Every wait is bounded."""
import argparse
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

WAIT = 20.0
POLICY = """version: 1
default: deny
rules:
  - action: offload
    scheme: [tcp, udp]
    to: [127.0.0.1]
    reason: the conformance test's echo server
"""
VERSION_CLAUSE = "§3 config protocol_version is HWSOCK_PROTOCOL_VERSION"
ENOSYS_CLAUSE = "§16 CREDIT without EVENT_QUEUE negotiated gets ENOSYS"
# every clause that runs with the event queue negotiated
EVQ_CLAUSES = [
    "§16.4 CREDIT succeeds with val 0 and used len 32",
    "§16.4 CREDIT with unknown arg1 bits gets EINVAL",
    "§16.4 CREDIT past HWSOCK_CREDIT_MAX gets ERANGE",
    "§16.4 CREDIT with uri_len != 0 gets EINVAL",
    "§16.2 an event buffer with a readable descriptor is handed back with "
    "used len 0",
    "§16.2 an event buffer below HWSOCK_EV_BUF_MIN is handed back with "
    "used len 0",
    "§16.2 no event buffer is used without an event",
    "§16.3 DATA events stay within the window, in stream order; a socket "
    "with a window refuses RECV (EBUSY)",
    "§16.4 WATCH_WRITE gives exactly one WRITABLE event",
    "§16.9 a refused datagram socket gets one soft ERROR, its window "
    "unchanged, and still receives DATA",
]
# clauses of the loopback transport's own messages (skipped over vhost-user)
LOOPBACK_ONLY = 13
# broken_vmm --fault NAME: the clauses it must fail, no more, no fewer
FAULTS = [
    ("version", [VERSION_CLAUSE]),
    ("evq-strip", EVQ_CLAUSES),
    ("evq-force", [ENOSYS_CLAUSE]),
]


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def readline_within(f, timeout, what):
    end = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(b"\n"):
        left = end - time.monotonic()
        if left <= 0:
            raise Failure("timed out waiting for " + what)
        r, _, _ = select.select([f.fileno()], [], [], left)
        if not r:
            continue
        b = os.read(f.fileno(), 1)
        if not b:
            raise Failure("end of output waiting for " + what)
        buf += b
    return buf.decode()


def conform(args, sock, port):
    p = subprocess.run([args.conform, "--vmm", sock, "--echo",
                        "tcp://127.0.0.1:%d" % port],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    out = p.stdout.decode()
    print(out, end="")
    if p.stderr:
        print("(stderr) " + p.stderr.decode(), end="")
    lines = out.splitlines()
    check(lines and re.fullmatch(r"hwsock-conform: (\d+)/(\d+) clauses passed",
                                 lines[-1]), "no summary line")
    return p.returncode, lines


def conform_vhost(args, tmp, pol, port, procs):
    sock = os.path.join(tmp, "vu.sock")
    r, w = os.pipe()
    vu = subprocess.Popen([args.vhost, "--socket", sock, "--ready-fd",
                           str(w), "--policy", pol, "--control", ""],
                          pass_fds=(w,))
    procs.append(vu)
    os.close(w)
    with os.fdopen(r, "rb") as rf:
        check(readline_within(rf, WAIT, "hwsock-vhost-user ready")
              == "ready\n", "hwsock-vhost-user not ready")
    p = subprocess.run([args.conform, "--vhost-user", sock, "--echo",
                        "tcp://127.0.0.1:%d" % port],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    out = p.stdout.decode()
    print(out, end="")
    if p.stderr:
        print("(stderr) " + p.stderr.decode(), end="")
    lines = out.splitlines()
    check(p.returncode == 0, "hwsock-conform --vhost-user exit %d"
          % p.returncode)
    skips = [l for l in lines if l.startswith("SKIP ")]
    check(len(skips) == LOOPBACK_ONLY and
          all(l.endswith(" (loopback transport only)") for l in skips),
          "skipped: %s" % skips)
    ran = [l for l in lines if l.startswith(("PASS ", "FAIL "))]
    check(all(l.startswith("PASS ") for l in ran), "not every clause passed")
    check(len(ran) >= 40, "only %d clauses ran" % len(ran))
    check(lines[-1] == "hwsock-conform: %d/%d clauses passed"
          % (len(ran), len(ran)), "summary: " + lines[-1])
    vu.send_signal(signal.SIGTERM)
    check(vu.wait(timeout=WAIT) == 0, "hwsock-vhost-user exit on SIGTERM")
    print("conform_test: ok (vhost-user: %d clauses, %d of the loopback "
          "transport skipped)" % (len(ran), len(skips)))
    return 0


def main():
    ap = argparse.ArgumentParser()
    for a in ("--conform", "--echo"):
        ap.add_argument(a, required=True)
    for a in ("--vmm", "--broken", "--vhost"):
        ap.add_argument(a)
    args = ap.parse_args()
    if not args.vhost and not (args.vmm and args.broken):
        ap.error("--vmm and --broken, or --vhost")
    tmp = tempfile.mkdtemp(prefix="hwsock-conform-")
    procs = []
    try:
        echo = subprocess.Popen([sys.executable, args.echo],
                                stdout=subprocess.PIPE)
        procs.append(echo)
        port = int(readline_within(echo.stdout, WAIT, "the echo port"))
        pol = os.path.join(tmp, "policy.yaml")
        with open(pol, "w") as f:
            f.write(POLICY)
        if args.vhost:
            return conform_vhost(args, tmp, pol, port, procs)
        sock = os.path.join(tmp, "vmm.sock")
        r, w = os.pipe()
        vmm = subprocess.Popen([args.vmm, "--listen", sock, "--ready-fd",
                                str(w), "--policy", pol, "--queues", "2",
                                "--control", ""], pass_fds=(w,))
        procs.append(vmm)
        os.close(w)
        with os.fdopen(r, "rb") as rf:
            check(readline_within(rf, WAIT, "hwsock-vmm ready") == "ready\n",
                  "hwsock-vmm not ready")

        rc, lines = conform(args, sock, port)
        check(rc == 0, "hwsock-conform exit %d against hwsock-vmm" % rc)
        bad = [l for l in lines if not l.startswith(("PASS ", "hwsock-conform:"))]
        check(not bad, "not every clause passed: %s" % bad)
        n = len(lines) - 1
        check(n >= 50, "only %d clauses" % n)
        check(lines[-1] == "hwsock-conform: %d/%d clauses passed" % (n, n),
              "summary: " + lines[-1])
        for want in [ENOSYS_CLAUSE] + EVQ_CLAUSES:
            check("PASS " + want in lines, "no clause " + want)
        check(len([l for l in lines if l.startswith("PASS §2.8 ring fault ")])
              == 13, "not 13 ring fault clauses")

        for fault, want in FAULTS:
            bsock = os.path.join(tmp, "broken-%s.sock" % fault)
            broken = subprocess.Popen([args.broken, "--fault", fault, bsock,
                                       sock], stdout=subprocess.PIPE)
            procs.append(broken)
            check(readline_within(broken.stdout, WAIT, "broken_vmm ready")
                  == "ready\n", "broken_vmm not ready")
            print("--- against broken_vmm --fault %s" % fault)
            rc, lines = conform(args, bsock, port)
            check(rc == 1, "hwsock-conform exit %d against broken_vmm --fault "
                  "%s" % (rc, fault))
            fails = sorted(l.split(": ")[0][len("FAIL "):]
                           for l in lines if l.startswith("FAIL "))
            check(fails == sorted(want), "--fault %s: failed %s, want %s"
                  % (fault, fails, sorted(want)))
            check(lines[-1] == "hwsock-conform: %d/%d clauses passed"
                  % (n - len(want), n), "summary: " + lines[-1])
            broken.kill()
            broken.wait()

        vmm.send_signal(signal.SIGTERM)
        check(vmm.wait(timeout=WAIT) == 0, "hwsock-vmm exit on SIGTERM")
        print("conform_test: ok (%d clauses; %d broken devices caught)"
              % (n, len(FAULTS)))
        return 0
    except (Failure, subprocess.TimeoutExpired) as e:
        print("conform_test: FAIL: %s" % e)
        return 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
