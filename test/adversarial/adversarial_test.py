#!/usr/bin/env python3
"""Adversarial guests against a real hwsock-vmm (test/adversarial/tests.cmake).

  adversarial_test.py --vmm VMM --guest ADV_GUEST --echo ECHO_SERVER GROUP

Starts a TCP echo server, a listener on a port the VMM's policy denies (TCP
and UDP, counting everything that reaches it), hwsock-vmm (2 queues per
guest) and a well-behaved guest (adv_guest echo: the guest driver, one
connection to the echo server). Then, for every case of GROUP, one
adv_guest process attacks with raw rings; once it says PASS (the device did
exactly what the protocol says) and while it is still attached:

  - hwsock-vmm is alive and idle: its CPU time over IDLE_S seconds stays
    below CPU_MAX_S (a generous bound against spinning, not a benchmark);
  - the well-behaved guest completes an echo exchange (ECHO_BYTES, compared);
  - the attacker then detaches after its last check (exit 0), and the VMM's
    open fds return to their count before the case.

At the end the denied listener has counted nothing, and hwsock-vmm exits 0
on SIGTERM with no sanitizer report on its stderr (in the ASan build LSan
checks for leaks at that exit). Every wait is bounded."""
import argparse
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

WAIT = 20.0
IDLE_S = 1.0
CPU_MAX_S = 0.3
ECHO_BYTES = 65536


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def readline_within(f, timeout, what):
    end = time.monotonic() + timeout
    buf = b""
    fd = f.fileno()
    while not buf.endswith(b"\n"):
        left = end - time.monotonic()
        if left <= 0:
            raise Failure("timed out waiting for " + what)
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        b = os.read(fd, 1)
        if not b:
            raise Failure("EOF while waiting for " + what)
        buf += b
    return buf.decode()


class DeniedListener:
    """TCP and UDP on 127.0.0.1:port; counts connections and datagrams."""

    def __init__(self, echo_port):
        self.count = 0
        self.tcp = self.udp = None
        s = str(echo_port)
        # A port that differs from the echo port in exactly one digit (the
        # double-fetch case flips that digit of a URI).
        for i in range(len(s) - 1, -1, -1):
            for d in "0123456789":
                if d == s[i] or (i == 0 and d == "0"):
                    continue
                p = int(s[:i] + d + s[i + 1:])
                if not 1024 < p < 65536 or self._bind(p):
                    continue
                self.port = p
                threading.Thread(target=self._run, daemon=True).start()
                return
        raise Failure("no free port one digit away from %d" % echo_port)

    def _bind(self, p):
        try:
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.bind(("127.0.0.1", p))
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind(("127.0.0.1", p))
        except OSError:
            return 1
        t.listen(64)
        self.tcp, self.udp = t, u
        return 0

    def _run(self):
        while True:
            r, _, _ = select.select([self.tcp, self.udp], [], [])
            if self.tcp in r:
                c, _ = self.tcp.accept()
                c.close()
                self.count += 1
            if self.udp in r:
                self.udp.recv(65536)
                self.count += 1


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after the command: state is fields[0]; utime, stime are stat fields
    # 14 and 15 (1-based), i.e. fields[11] and fields[12] here
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The shape of POLICY.md's "offload everything except the host" example:
# one denied port, everything else offloaded. A destination the policy
# matched as spelled (0.0.0.0, a v4-mapped address) would be offloaded and
# reach the denied listener through the kernel's routing.
POLICY = """version: 1
default: deny
rules:
  - action: deny
    to: 127.0.0.1
    ports: [%d]
    error: EACCES
    reason: the adversarial test's denied port
  - action: offload
    scheme: [tcp, udp, tcp6, udp6]
    to: [0.0.0.0/0, "::/0"]
    reason: everything else
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmm", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--echo", required=True)
    ap.add_argument("--only", help="run only these cases (comma-separated)")
    ap.add_argument("group")
    args = ap.parse_args()
    cases = subprocess.run([args.guest, "list", args.group], check=True,
                           capture_output=True, text=True).stdout.split()
    if args.only:
        cases = [c for c in cases if c in args.only.split(",")]
    check(cases, "no cases in group " + args.group)
    tmp = tempfile.mkdtemp(prefix="hwsock-adv-")
    procs = []
    vmm = None
    log_path = os.path.join(tmp, "vmm.log")
    try:
        echo = subprocess.Popen([sys.executable, args.echo],
                                stdout=subprocess.PIPE)
        procs.append(echo)
        echo_port = int(readline_within(echo.stdout, WAIT, "the echo port"))
        denied = DeniedListener(echo_port)
        pol = os.path.join(tmp, "policy.yaml")
        with open(pol, "w") as f:
            f.write(POLICY % denied.port)
        sock = os.path.join(tmp, "vmm.sock")
        env = dict(os.environ)
        asan = env.get("ASAN_OPTIONS", "")
        env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "detect_leaks=1"
        r, w = os.pipe()
        with open(log_path, "wb") as log:
            vmm = subprocess.Popen(
                [args.vmm, "--listen", sock, "--ready-fd", str(w), "--policy",
                 pol, "--queues", "2", "--control", ""],
                pass_fds=(w,), stderr=log, env=env)
        procs.append(vmm)
        os.close(w)
        with os.fdopen(r, "rb") as rf:
            check(readline_within(rf, WAIT, "hwsock-vmm ready") == "ready\n",
                  "ready fd")
        good = subprocess.Popen([args.guest, sock, "echo", str(echo_port)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        procs.append(good)
        check(readline_within(good.stdout, WAIT, "the echo guest") == "ready\n",
              "echo guest not ready")

        def vmm_fds():
            return len(os.listdir("/proc/%d/fd" % vmm.pid))

        base = vmm_fds()
        for name in cases:
            t0 = time.monotonic()
            p = subprocess.Popen(
                [args.guest, sock, args.group, name, str(echo_port),
                 str(denied.port)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
            procs.append(p)
            try:
                line = readline_within(p.stdout, WAIT, name + "'s verdict")
            except Failure as e:
                p.kill()
                _, err = p.communicate()
                raise Failure("%s: %s\n%s" % (name, e, err.decode(errors="replace")))
            check(line == "PASS %s\n" % name, "%s said %r" % (name, line))
            check(vmm.poll() is None, "hwsock-vmm died during " + name)
            c0 = cpu_seconds(vmm.pid)
            time.sleep(IDLE_S)
            spent = cpu_seconds(vmm.pid) - c0
            check(spent < CPU_MAX_S,
                  "%s: hwsock-vmm used %.2f s of CPU in %.1f s idle (spinning?)"
                  % (name, spent, IDLE_S))
            good.stdin.write(b"%d\n" % ECHO_BYTES)
            good.stdin.flush()
            line = readline_within(good.stdout, WAIT,
                                   "the echo guest's exchange after " + name)
            check(line == "ok %d\n" % ECHO_BYTES,
                  "echo guest after %s: %r" % (name, line))
            p.stdin.close()
            try:
                rc = p.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                p.kill()
                raise Failure(name + ": the attacker did not exit")
            err = p.stderr.read().decode(errors="replace")
            check(rc == 0, "%s: exit %d after the hold\n%s" % (name, rc, err))
            end = time.monotonic() + WAIT
            while vmm_fds() != base and time.monotonic() < end:
                time.sleep(0.05)
            check(vmm_fds() == base, "%s: hwsock-vmm holds %d fds, %d before"
                  % (name, vmm_fds(), base))
            print("PASS %-28s %.1f s, VMM CPU %.2f s idle%s" %
                  (name, time.monotonic() - t0, spent,
                   (" (" + err.strip() + ")") if err.strip() else ""))
        check(denied.count == 0,
              "the denied port was reached %d times" % denied.count)
        good.stdin.close()
        check(good.wait(timeout=WAIT) == 0, "the echo guest failed at exit")
        vmm.send_signal(signal.SIGTERM)
        try:
            rc = vmm.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            raise Failure("hwsock-vmm did not exit on SIGTERM")
        with open(log_path, errors="replace") as f:
            log = f.read()
        check(rc == 0, "hwsock-vmm exit %d on SIGTERM:\n%s" % (rc, log[-4000:]))
        for bad in ("Sanitizer", "runtime error:"):
            check(bad not in log, "sanitizer report from hwsock-vmm:\n" +
                  log[-4000:])
        print("hwsock-vmm exited 0, no sanitizer report; %d cases" % len(cases))
        return 0
    except Failure as e:
        print("FAIL: %s" % e)
        try:
            with open(log_path, errors="replace") as f:
                print("--- hwsock-vmm stderr (tail) ---\n" + f.read()[-3000:])
        except OSError:
            pass
        return 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
