#!/usr/bin/env python3
"""hwsock-run with AF_IPX end to end.

An ordinary C program (ipx_prog: socket(AF_IPX), bind, getsockname,
sendto/recvfrom, sendmsg/recvmsg, connect/send/recv, getpeername; the host
kernel has no IPX) runs under hwsock-run attached to a hwsock-vmm started
with --ipx-net. Its peer is another guest of the same VMM (ipx_client
serve, the driver API) that echoes every datagram. Checks: the program's
exit status and output, the server's count and the program's address
(slot 1's node). Then, with a VMM without --ipx-net, the same program
fails cleanly: the device does not offer F_IPX, so socket(AF_IPX) reports
EAFNOSUPPORT, as on a kernel without IPX.

Environment (test/run/tests.cmake): HWSOCK_RUN, HWSOCK_VMM, HWSOCK_BACKENDS,
HWSOCK_TEST_BIN (ipx_prog), HWSOCK_IPX_CLIENT. UDP ports 21340 and up on
127.0.0.1, probed free. Every wait is bounded."""
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

RUN = os.environ["HWSOCK_RUN"]
VMM = os.environ["HWSOCK_VMM"]
BACKENDS = os.environ["HWSOCK_BACKENDS"]
PROG = os.path.join(os.environ["HWSOCK_TEST_BIN"], "ipx_prog")
CLIENT = os.environ["HWSOCK_IPX_CLIENT"]
WAIT = 15.0
NET = "0000beef"


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def readline_within(f, timeout, what):
    end = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(b"\n"):
        left = end - time.monotonic()
        if left <= 0:
            raise Fail("timed out waiting for " + what)
        r, _, _ = select.select([f.fileno()], [], [], left)
        if r:
            b = os.read(f.fileno(), 1)
            if not b:
                raise Fail("EOF while waiting for " + what)
            buf += b
    return buf.decode()


def free_udp_base(count, start=None):
    # ctest -j runs scenarios in parallel: start at a per-process offset
    # (disjoint from test/vmm/ipx_test.py's) so two never race for a range.
    if start is None:
        start = 40000 + 32 * (os.getpid() % 512)
    for base in range(start, 60000, 16):
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise Fail("no free UDP port range")


class Vmm:
    def __init__(self, tmp, *extra):
        self.path = os.path.join(tmp, "vmm%d.sock" % id(self))
        self.log = os.path.join(tmp, "vmm%d.log" % id(self))
        r, w = os.pipe()
        args = [VMM, "--listen", self.path, "--ready-fd", str(w), "-v",
                "--backend-dir", "", "--mem", "16"]
        for b in ("ipx",):
            args += ["--backend", os.path.join(BACKENDS, b + ".so")]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(args + list(extra), pass_fds=(w,),
                                         stderr=log)
        os.close(w)
        with os.fdopen(r, "rb") as rf:
            ready = readline_within(rf, WAIT, "hwsock-vmm ready")
        check(ready == "ready\n", "hwsock-vmm did not become ready")

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def show(r):
    return "exit %d\n--- stdout\n%s\n--- stderr\n%s" % (
        r.returncode, r.stdout.decode(errors="replace")[-3000:],
        r.stderr.decode(errors="replace")[-3000:])


def test_exchange(tmp):
    base = free_udp_base(2)
    vmm = Vmm(tmp, "--ipx-net", NET, "--ipx-port", str(base), "--ipx-slots",
              "2")
    srv = None
    try:
        n = 100
        # n sendto/recvfrom, one sendmsg/recvmsg, one connected send/recv
        srv = subprocess.Popen([CLIENT, vmm.path, "serve", "5a5a",
                                str(n + 2)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        line = readline_within(srv.stdout, WAIT, "the IPX server's address")
        check(line.startswith("addr ipx://"), "server said %r" % line)
        uri = line.split()[1]
        check(uri == "ipx://%s.02005e000001.5a5a" % NET, uri)
        r = subprocess.run([RUN, "-v", "--vmm", vmm.path, "--", PROG,
                            uri[len("ipx://"):], str(n)],
                           capture_output=True, timeout=60)
        check(r.returncode == 0, "ipx_prog under hwsock-run: " + show(r) +
              "\n--- vmm\n" + vmm.text()[-3000:])
        out = r.stdout.decode().split("\n")
        check(out[0].startswith("addr %s.02005e000002." % NET),
              "the program has slot 1's network and node: %r" % out[0])
        check(out[1] == "ok %d" % n, "ipx_prog output: %r" % out)
        err = r.stderr.decode(errors="replace")
        check("offload: fd" in err, "hwsock-run logged the offload: " + err)
        sout, serr = srv.communicate(timeout=WAIT)
        check(srv.returncode == 0 and ("ok %d " % (n + 2)) in sout.decode(),
              "the server echoed %d datagrams: %s %s" %
              (n + 2, sout.decode(), serr.decode(errors="replace")))
    finally:
        if srv is not None and srv.poll() is None:
            srv.kill()
            srv.wait()
        vmm.close()


def test_no_ipx_network(tmp):
    vmm = Vmm(tmp)  # the ipx backend, but no --ipx-net: IPX is down
    try:
        r = subprocess.run([RUN, "--vmm", vmm.path, "--", PROG,
                            "%s.02005e000001.5a5a" % NET, "1"],
                           capture_output=True, timeout=60)
        err = r.stderr.decode(errors="replace")
        check(r.returncode == 2 and
              "socket(AF_IPX, SOCK_DGRAM): Address family not supported" in err,
              "without --ipx-net: socket() fails with EAFNOSUPPORT: " + show(r))
    finally:
        vmm.close()


def main():
    tmp = tempfile.mkdtemp(prefix="hwsock-run-ipx.")
    try:
        for t in (test_exchange, test_no_ipx_network):
            t(tmp)
            print("PASS", t.__name__)
    except Fail as e:
        print("FAIL:", e)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
