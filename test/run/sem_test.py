#!/usr/bin/env python3
"""hwsock-run: what programs see (kernel semantics, issue 11 items 10-17).

Usage: sem_test.py TEST   (test/run/tests.cmake runs one ctest per TEST)

Each scenario is a python3 program (a real program) run under hwsock-run
against servers of the test on 127.0.0.1. Where the kernel's behaviour is
the expectation, the same program is first run without hwsock-run, so the
test also shows that the expectation holds on this machine. Environment as
for harness.py (HWSOCK_RUN, HWSOCK_VMM, HWSOCK_BACKENDS)."""
import os
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, Vmm, check, show, expect_ok, run_py  # noqa: E402

PY = sys.executable


def native_py(code, *argv, timeout=30):
    """The same program without hwsock-run: the kernel's answer."""
    path = os.path.join(harness.TMP, "native%d.py" % len(os.listdir(
        harness.TMP)))
    with open(path, "w") as f:
        f.write(code)
    return subprocess.run([PY, path] + [str(a) for a in argv],
                          capture_output=True, timeout=timeout)


def both(code, *argv, vmm, what):
    """Runs code natively, then under hwsock-run; both must succeed and
    print the same lines."""
    n = native_py(code, *argv)
    expect_ok(n, what + " (native)")
    r = run_py(code, *argv, vmm=vmm)
    expect_ok(r, what + " (under hwsock-run)")
    check(r.stdout == n.stdout, "%s: output differs from native:\n"
          "--- native\n%s\n--- hwsock-run\n%s" % (
              what, n.stdout.decode(), show(r)))
    return r


# ---- item 10: a refused datagram on a connected UDP socket ------------------

PY_UDP_REFUSED = r'''
import selectors, socket, sys
closed, live = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", closed))
sel = selectors.DefaultSelector()
sel.register(s, selectors.EVENT_READ)
# 1. recv path (an event-driven resolver): readable, then ECONNREFUSED once
s.send(b"query1")
assert sel.select(10), "no readiness after the refusal"
try:
    print("recvfrom got", s.recvfrom(512))
except ConnectionRefusedError:
    print("recvfrom: refused")
assert not sel.select(0.3), "the error was reported twice"
# 2. send path: the pending error fails the next sendmsg, once
s.send(b"query2")
assert sel.select(10), "no readiness after the second refusal"
try:
    s.sendmsg([b"query3"])
    print("sendmsg sent")
except ConnectionRefusedError:
    print("sendmsg: refused")
# the failed sendmsg sent nothing: no new refusal, nothing pending
print("SO_ERROR", s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
assert not sel.select(0.3), "a refusal after a failed sendmsg"
# 3. SO_ERROR reports (and clears) a pending error
s.send(b"query4")
assert sel.select(10)
print("SO_ERROR", s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
assert not sel.select(0.3), "SO_ERROR did not clear the error"
# 4. the socket stays usable: connect it to a live server
s.connect(("127.0.0.1", live))
s.send(b"query5")
assert sel.select(10)
d, a = s.recvfrom(512)
print("answer", d, a[0], a[1] == live)
'''


def test_udp_refused():
    echo = harness.EchoUDP(b"A:")
    closed = harness.free_port()
    vmm = Vmm()
    try:
        r = both(PY_UDP_REFUSED, closed, echo.port, vmm=vmm,
                 what="connected UDP client")
        check(b"offload: " in r.stderr, "not offloaded: " + show(r))
    finally:
        vmm.close()


# ---- item 13: sendmsg without a destination ------------------------------------

PY_EDESTADDRREQ = r'''
import errno, socket, sys
for what in ("undecided", "bound"):
    # (the kernel binds an unbound socket before it refuses: a fresh one)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if what == "bound":
        s.bind(("127.0.0.1", 0))
    try:
        s.sendmsg([b"nowhere"])
        print(what, "sent")
    except OSError as e:
        print(what, errno.errorcode[e.errno])
# with a destination it works, and later ones without still fail
s.sendto(b"x", ("127.0.0.1", int(sys.argv[1])))
print("answer", s.recvfrom(64)[0])
try:
    s.sendmsg([b"nowhere"])
except OSError as e:
    print("after sendto", errno.errorcode[e.errno])
'''


def test_edestaddrreq():
    echo = harness.EchoUDP(b"A:")
    vmm = Vmm()
    try:
        both(PY_EDESTADDRREQ, echo.port, vmm=vmm, what="sendmsg w/o address")
    finally:
        vmm.close()


# ---- item 16: getsockname while the program holds the fd -------------------------

PY_GETNAME_LOOP = r"""
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    c = socket.socket()
    c.bind(("127.0.0.1", 0))
    bound = c.getsockname()
    c.connect(("127.0.0.1", port))
    if i % 3 == 1:
        c.sendall(b"x")  # data the server never reads: it resets
    elif i % 3 == 2:
        c.shutdown(socket.SHUT_WR)  # both directions done
    try:
        c.recv(16)  # the server's close: EOF (or a reset)
    except ConnectionResetError:
        pass
    for j in range(2):
        name = c.getsockname()
        assert name == bound, (i, j, name, bound)
        try:
            c.getpeername()
        except OSError:
            pass
    c.close()
print("getsockname ok")
"""


def test_getsockname():
    srv = harness.Counter()  # accepts and closes at once
    vmm = Vmm()
    try:
        expect_ok(native_py(PY_GETNAME_LOOP, srv.port, 200), "native loop")
        r = run_py(PY_GETNAME_LOOP, srv.port, 200, vmm=vmm, timeout=90)
        expect_ok(r, "getsockname loop")
        check(b"getsockname ok" in r.stdout, show(r))
        check(b"offload: " in r.stderr, "not offloaded: " + show(r))
    finally:
        vmm.close()


# ---- item 12: MSG_PEEK, then a forked child reads the datagram ---------------------

PY_PEEK_FORK = r"""
import os, socket, sys
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
# four senders: a wrong source address shows as a wrong port
cs = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
for c in cs:
    c.bind(("127.0.0.1", 0))
for i in range(n):
    c = cs[i % 4]
    c.sendto(b"%d %d" % (i, c.getsockname()[1]), s.getsockname())
seen = []
for i in range(n):
    d, a = s.recvfrom(64, socket.MSG_PEEK)
    assert a[1] == int(d.split()[1]), ("peeked source", i, d, a)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reads the datagram the parent saw
        os.close(r)
        if i % 2:
            d2, a2 = s.recvfrom(64)
            ok = d2 == d and a2 == a
        else:  # a plain recv, as a child that knows the source already
            d2 = s.recv(64)
            ok = d2 == d
        os.write(w, b"%s %d" % (d2, ok))
        os._exit(0)
    os.close(w)
    got = os.read(r, 64)
    os.close(r)
    os.waitpid(pid, 0)
    seen.append(got)
bad = [x for x in seen if not x.endswith(b" 1")]
assert not bad, bad
assert len(set(seen)) == n, seen
s.setblocking(False)
try:
    print("left over", s.recvfrom(64))
except BlockingIOError:
    print("each datagram exactly once, from its sender")
"""


def test_peek_fork():
    vmm = Vmm()
    try:
        both(PY_PEEK_FORK, 100, vmm=vmm, what="peek + forked reader")
    finally:
        vmm.close()


def main():
    tests = {n[5:]: f for n, f in globals().items() if n.startswith("test_")}
    if len(sys.argv) != 2 or sys.argv[1] not in tests:
        print("usage: sem_test.py {%s}" % "|".join(tests), file=sys.stderr)
        return 2
    try:
        tests[sys.argv[1]]()
    except Fail as e:
        print("FAIL:", e, file=sys.stderr)
        return 1
    finally:
        import shutil
        shutil.rmtree(harness.TMP, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
