#!/usr/bin/env python3
"""hwsock-run integration tests: real programs (curl, nc, python3, iperf3,
C clients) run under hwsock-run against real servers on 127.0.0.1.

Usage: harness.py TEST   (test/run/tests.cmake runs one ctest per TEST)

Environment (set by tests.cmake):
  HWSOCK_RUN       the hwsock-run binary
  HWSOCK_VMM       the hwsock-vmm binary
  HWSOCK_BACKENDS  the build's backends folder (tcp.so, udp.so)
  HWSOCK_TEST_BIN  folder of the C helpers (toctou_race, static_echo)

Most tests start their own hwsock-vmm with exactly the tcp and udp backends
(and a policy when the test needs one) and pass --vmm; test_private_vmm
covers hwsock-run's own VMM start. The harness's own servers are not under
hwsock-run: they are the host side. Every wait is bounded."""
import hashlib
import http.server
import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

RUN = os.environ.get("HWSOCK_RUN", "hwsock-run")
VMM = os.environ.get("HWSOCK_VMM", "hwsock-vmm")
BACKENDS = os.environ.get("HWSOCK_BACKENDS", "")
TEST_BIN = os.environ.get("HWSOCK_TEST_BIN", "")
PY = sys.executable
TMP = tempfile.mkdtemp(prefix="hwsock-run-test.")


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


# ---- the device --------------------------------------------------------------

class Vmm:
    """A hwsock-vmm with the tcp and udp backends, on a private socket."""

    def __init__(self, policy=None, mem_mib=None):
        self.path = os.path.join(TMP, "vmm%d.sock" % id(self))
        r, w = os.pipe()
        args = [VMM, "--listen", self.path, "--ready-fd", str(w),
                "--backend-dir", ""]
        if mem_mib is not None:  # small guest memory: small event buffers
            args += ["--mem", str(mem_mib)]
        for b in ("tcp", "udp"):
            args += ["--backend", os.path.join(BACKENDS, b + ".so")]
        # "2": devices with the event queue, as hwsock-run's private VMM
        # (its stream sockets go through the dispatcher thread); default one
        # queue (each socket's own threads)
        if os.environ.get("HWSOCK_TEST_VMM_QUEUES"):
            args += ["--queues", os.environ["HWSOCK_TEST_VMM_QUEUES"]]
        if policy is not None:
            pf = os.path.join(TMP, "policy%d.yaml" % id(self))
            with open(pf, "w") as f:
                f.write(policy)
            args += ["--policy", pf]
        self.proc = subprocess.Popen(args, pass_fds=(w,))
        os.close(w)
        with os.fdopen(r, "rb") as rf:
            ready = rf.readline()
        check(ready == b"ready\n", "hwsock-vmm did not become ready")

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run(prog, vmm=None, confine=False, policy_file=None, timeout=30,
        stdin=None, extra=()):
    """Runs prog under hwsock-run -v; returns the CompletedProcess."""
    args = [RUN, "-v"]
    if vmm is not None:
        args += ["--vmm", vmm.path]
    if policy_file is not None:
        args += ["--policy", policy_file]
    if confine:
        args.append("--confine")
    args += list(extra) + ["--"] + list(prog)
    return subprocess.run(args, input=stdin, capture_output=True,
                          timeout=timeout)


def run_py(code, *argv, **kw):
    path = os.path.join(TMP, "prog%d.py" % (int(time.time() * 1e6)))
    with open(path, "w") as f:
        f.write(code)
    return run([PY, path] + [str(a) for a in argv], **kw)


def show(r):
    return "exit %d\n--- stdout\n%s\n--- stderr\n%s" % (
        r.returncode, r.stdout.decode(errors="replace")[-3000:],
        r.stderr.decode(errors="replace")[-3000:])


def expect_ok(r, what):
    check(r.returncode == 0, "%s failed: %s" % (what, show(r)))


# ---- host-side servers -----------------------------------------------------------

class EchoTCP(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.server.accepts += 1
            while True:
                try:
                    d = self.request.recv(65536)
                except OSError:
                    return
                if not d:
                    return
                self.request.sendall(d)

    def __init__(self, family=socket.AF_INET, host="127.0.0.1"):
        self.address_family = family
        self.accepts = 0
        super().__init__((host, 0), EchoTCP.Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Counter:
    """A listener that only counts (and closes) connections."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.accepts = 0
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepts += 1
            c.close()


class EchoUDP:
    def __init__(self, tag):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.tag = tag
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            d, a = self.sock.recvfrom(65536)
            self.sock.sendto(self.tag + d, a)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http_server(directory):
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(
        *a, directory=directory, **k)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


# ---- 1. exit status, no sockets ------------------------------------------------

def test_exit_status():
    vmm = Vmm()
    try:
        expect_ok(run(["true"], vmm=vmm), "true")
        r = run(["sh", "-c", "exit 3"], vmm=vmm)
        check(r.returncode == 3, "exit 3: " + show(r))
        r = run(["sh", "-c", "kill -TERM $$"], vmm=vmm)
        check(r.returncode == 128 + 15, "SIGTERM -> 143: " + show(r))
        r = run(["/nonexistent/program"], vmm=vmm)
        check(r.returncode == 127, "missing program -> 127: " + show(r))
        # no INET sockets: output unchanged, nothing decided
        r = run(["sh", "-c", "echo hello | tr a-z A-Z"], vmm=vmm)
        expect_ok(r, "pipeline")
        check(r.stdout == b"HELLO\n", "pipeline output: " + show(r))
        check(b"offload" not in r.stderr and b"decline" not in r.stderr,
              "a program without sockets caused decisions: " + show(r))
        # AF_UNIX and AF_NETLINK run natively
        r = run_py(
            "import os, socket, sys\n"
            "a, b = socket.socketpair()\n"
            "a.sendall(b'x' * 1000); assert b.recv(2000) == b'x' * 1000\n"
            "p = os.path.join(sys.argv[1], 'u.sock')\n"
            "l = socket.socket(socket.AF_UNIX); l.bind(p); l.listen()\n"
            "c = socket.socket(socket.AF_UNIX); c.connect(p)\n"
            "s, _ = l.accept(); c.sendall(b'hi'); assert s.recv(9) == b'hi'\n"
            "n = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)\n"
            "n.bind((0, 0)); assert n.getsockname()[0] > 0\n"
            "print('ok')\n", TMP, vmm=vmm)
        expect_ok(r, "AF_UNIX/AF_NETLINK program")
        check(r.stdout.strip() == b"ok", show(r))
    finally:
        vmm.close()


def test_private_vmm():
    """hwsock-run starting its own hwsock-vmm (no --vmm)."""
    r = run(["sh", "-c", "exit 7"])
    check(r.returncode == 7, "exit status through a private VMM: " + show(r))
    echo = EchoTCP()
    r = run_py(
        "import socket, sys\n"
        "c = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
        "c.sendall(b'private'); assert c.recv(100) == b'private'\n"
        "print('ok')\n", echo.port)
    expect_ok(r, "echo through a private VMM")
    check(b"offload: " in r.stderr, "no offload decision logged: " + show(r))
    check(b"confined" not in r.stderr,
          "the built-in policy can decline: not confined: " + show(r))
    # a policy that can never decline confines the program by itself
    pf = os.path.join(TMP, "nodecline.yaml")
    with open(pf, "w") as f:
        f.write("version: 1\ndefault: deny\nrules:\n  - action: offload\n"
                "    to: 127.0.0.0/8\n")
    r = run_py(
        "import socket, sys\n"
        "c = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
        "c.sendall(b'confined'); assert c.recv(100) == b'confined'\n"
        "print('ok')\n", echo.port, policy_file=pf)
    expect_ok(r, "echo under a no-decline policy")
    check(b"confined: " in r.stderr, "not confined: " + show(r))


# ---- 2. curl ------------------------------------------------------------------------

def test_curl():
    d = os.path.join(TMP, "www")
    os.mkdir(d)
    blob = os.urandom(4 << 20)
    with open(os.path.join(d, "blob"), "wb") as f:
        f.write(blob)
    srv = http_server(d)
    vmm = Vmm()
    try:
        out = os.path.join(TMP, "blob.out")
        r = run(["curl", "-sS", "--max-time", "20", "-o", out,
                 "http://127.0.0.1:%d/blob" % srv.server_address[1]], vmm=vmm)
        expect_ok(r, "curl")
        with open(out, "rb") as f:
            got = f.read()
        check(hashlib.sha256(got).hexdigest() ==
              hashlib.sha256(blob).hexdigest(),
              "sha256 differs (%d bytes received)" % len(got))
        check(b"offload: fd" in r.stderr, "no offload logged: " + show(r))
    finally:
        vmm.close()
        srv.shutdown()


# ---- 3. python clients ------------------------------------------------------------------

PY_CLIENTS = r'''
import asyncio, errno, os, selectors, socket, sys
port = int(sys.argv[1])
data = os.urandom(200000)

# blocking
c = socket.create_connection(("127.0.0.1", port), timeout=10)
assert c.family == socket.AF_INET
assert c.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
assert c.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_INET
name, peer = c.getsockname(), c.getpeername()
assert name[0] == "127.0.0.1" and 0 < name[1] < 65536, name
assert peer == ("127.0.0.1", port), peer
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
c.sendall(data)
got = b""
while len(got) < len(data):
    b = c.recv(65536)
    assert b, "early EOF"
    got += b
assert got == data
c.shutdown(socket.SHUT_WR)
assert c.recv(10) == b""
c.close()
print("blocking ok", name, peer)

# nonblocking + selectors
s = socket.socket()
s.setblocking(False)
rc = s.connect_ex(("127.0.0.1", port))
assert rc in (0, errno.EINPROGRESS), rc
sel = selectors.DefaultSelector()
sel.register(s, selectors.EVENT_WRITE)
assert sel.select(10), "connect did not complete"
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
assert s.getpeername() == ("127.0.0.1", port)
sel.modify(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
out, got = memoryview(data), b""
while len(got) < len(data):
    for key, ev in sel.select(10):
        if ev & selectors.EVENT_WRITE and out:
            try:
                n = s.send(out[:65536])
                out = out[n:]
            except BlockingIOError:
                pass
            if not out:
                sel.modify(s, selectors.EVENT_READ)
        if ev & selectors.EVENT_READ:
            try:
                b = s.recv(65536)
                assert b, "early EOF"
                got += b
            except BlockingIOError:
                pass
assert got == data
s.close()
print("selectors ok")

# a nonblocking connect to a closed port fails through SO_ERROR / connect_ex
dead = socket.socket(); dead.bind(("127.0.0.1", 0)); dport = dead.getsockname()[1]; dead.close()
s = socket.socket(); s.setblocking(False)
rc = s.connect_ex(("127.0.0.1", dport))
if rc == errno.EINPROGRESS:
    sel = selectors.DefaultSelector(); sel.register(s, selectors.EVENT_WRITE)
    sel.select(10)
    rc = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
assert rc == errno.ECONNREFUSED, rc
s.close()
try:
    socket.create_connection(("127.0.0.1", dport), timeout=5)
    assert False, "connected to a closed port"
except ConnectionRefusedError:
    pass
print("refused ok")

# asyncio
async def main():
    r, w = await asyncio.open_connection("127.0.0.1", port)
    assert w.get_extra_info("peername") == ("127.0.0.1", port)
    w.write(data)
    await w.drain()
    got = await r.readexactly(len(data))
    assert got == data
    w.close()
    await w.wait_closed()
asyncio.run(asyncio.wait_for(main(), 20))
print("asyncio ok")
'''

PY_SLOW_CONNECT = r'''
import errno, selectors, socket, sys, time
s = socket.socket()
s.setblocking(False)
t0 = time.time()
rc = s.connect_ex(("127.0.0.1", int(sys.argv[1])))
assert rc == errno.EINPROGRESS, rc
sel = selectors.DefaultSelector()
sel.register(s, selectors.EVENT_WRITE)
assert sel.select(10)
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
s.setblocking(True)
s.sendall(b"late"); assert s.recv(10) == b"late"
print("slow connect ok %.2f" % (time.time() - t0))
'''

PY_THREADS = r'''
import socket, sys, threading
port = int(sys.argv[1])
errs = []
def work(i):
    try:
        for j in range(5):
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            m = b"t%d-%d " % (i, j) * 500
            c.sendall(m)
            got = b""
            while len(got) < len(m):
                b = c.recv(65536)
                assert b, "early EOF"
                got += b
            assert got == m
            c.close()
    except Exception as e:
        errs.append(repr(e))
ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
assert not errs, errs
print("threads ok")
'''

PY_V6 = r'''
import socket, sys
c = socket.create_connection(("::1", int(sys.argv[1])), timeout=10)
assert c.family == socket.AF_INET6
n, p = c.getsockname(), c.getpeername()
assert n[0] == "::1" and p[0] == "::1" and p[1] == int(sys.argv[1]), (n, p)
c.sendall(b"six"); assert c.recv(10) == b"six"
print("ipv6 ok")
'''


def test_python_clients():
    echo = EchoTCP()
    vmm = Vmm()
    try:
        r = run_py(PY_CLIENTS, echo.port, vmm=vmm, timeout=60)
        expect_ok(r, "python clients")
        for w in (b"blocking ok", b"selectors ok", b"refused ok",
                  b"asyncio ok"):
            check(w in r.stdout, "missing %r: %s" % (w, show(r)))
        check(r.stderr.count(b"offload: ") >= 4,
              "expected offload decisions: " + show(r))
        # socket calls from threads other than the main one (the notifying
        # pid is then a thread id)
        before = echo.accepts
        r = run_py(PY_THREADS, echo.port, vmm=vmm, timeout=60)
        expect_ok(r, "threaded clients")
        check(echo.accepts - before == 40, "server saw %d connections" %
              (echo.accepts - before))
        # a connect that takes long (the listener's accept queue is full, so
        # the SYN is dropped and retried): EINPROGRESS, then SO_ERROR waits
        slow = socket.socket()
        slow.bind(("127.0.0.1", 0))
        slow.listen(0)
        filler = socket.create_connection(slow.getsockname())

        def syn_sent_to(port):
            # /proc/net/tcp{,6}: "local rem st ...", rem as HEX_ADDR:HEX_PORT,
            # st 02 = SYN_SENT. The connect is made by the host socket of the
            # device (loopback), so it shows here while the SYN is retried.
            for f in ("/proc/net/tcp", "/proc/net/tcp6"):
                try:
                    lines = open(f).read().splitlines()[1:]
                except OSError:
                    continue
                for ln in lines:
                    col = ln.split()
                    if (col[3] == "02" and
                            int(col[2].rsplit(":", 1)[1], 16) == port):
                        return True
            return False

        def drain():
            # Accept only once the program's connect is under way: a fixed
            # sleep raced hwsock-run's start-up on a loaded machine (the
            # connect then found the queue already drained and returned 0).
            port = slow.getsockname()[1]
            deadline = time.time() + 60
            while not syn_sent_to(port) and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            conns = [slow.accept()[0] for _ in range(2)]
            d = conns[1].recv(10)
            conns[1].sendall(d)
            time.sleep(0.5)
        t = threading.Thread(target=drain, daemon=True)
        t.start()
        r = run_py(PY_SLOW_CONNECT, slow.getsockname()[1], vmm=vmm)
        expect_ok(r, "slow nonblocking connect")
        check(b"(in progress)" in r.stderr, "no EINPROGRESS: " + show(r))
        filler.close()
        if socket.has_ipv6:
            try:
                echo6 = EchoTCP(socket.AF_INET6, "::1")
            except OSError:
                echo6 = None
            if echo6:
                r = run_py(PY_V6, echo6.port, vmm=vmm)
                expect_ok(r, "python IPv6 client")
    finally:
        vmm.close()


# ---- 4. netcat, both directions, half-close ------------------------------------

def test_nc():
    vmm = Vmm()
    try:
        # nc as a client: the server answers only after the client's EOF
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        payload = os.urandom(300000)
        result = {}

        def serve():
            c, _ = srv.accept()
            got = b""
            while True:
                b = c.recv(65536)
                if not b:
                    break
                got += b
            result["got"] = got
            c.sendall(hashlib.sha256(got).hexdigest().encode())
            c.close()
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        r = run(["nc", "-N", "127.0.0.1", str(port)], vmm=vmm, stdin=payload)
        expect_ok(r, "nc client")
        t.join(10)
        check(result.get("got") == payload, "server got %d bytes" %
              len(result.get("got", b"")))
        check(r.stdout == hashlib.sha256(payload).hexdigest().encode(),
              "nc client output: " + show(r))

        # nc as a server under hwsock-run, reached from the host
        port = free_port()
        reply = os.urandom(100000)
        inp = os.path.join(TMP, "ncin")
        with open(inp, "wb") as f:
            f.write(reply)
        out = os.path.join(TMP, "ncout")
        proc = subprocess.Popen(
            [RUN, "-v", "--vmm", vmm.path, "--", "sh", "-c",
             "exec nc -N -l 127.0.0.1 %d < %s > %s" % (port, inp, out)],
            stderr=subprocess.PIPE)
        try:
            c = None
            for _ in range(100):
                try:
                    c = socket.create_connection(("127.0.0.1", port), 1)
                    break
                except OSError:
                    time.sleep(0.05)
            check(c is not None, "nc -l never listened")
            sent = os.urandom(200000)
            c.sendall(sent)
            # netcat-openbsd exits as soon as its network input ends, even
            # with stdin left to send: take all of nc's data before the
            # host's half-close, then wait for nc's own (-N) half-close.
            got = b""
            c.settimeout(10)
            while len(got) < len(reply):
                b = c.recv(65536)
                if not b:
                    break
                got += b
            c.shutdown(socket.SHUT_WR)
            while True:
                b = c.recv(65536)
                if not b:
                    break
                got += b
            c.close()
            rc = proc.wait(10)
            err = proc.stderr.read()
            check(rc == 0, "nc -l exit %d: %s" % (rc, err))
            check(got == reply, "host got %d bytes of %d\nhwsock-run: %s" %
                  (len(got), len(reply), err.decode(errors="replace")))
            with open(out, "rb") as f:
                check(f.read() == sent, "nc -l output differs")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        vmm.close()


# ---- 5. deny and decline ------------------------------------------------------------

PY_DENY = r'''
import errno, socket, sys
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    print("connected")
except OSError as e:
    print("errno", e.errno)
'''

PY_DECLINE = r'''
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
c.sendall(b"host"); assert c.recv(10) == b"host"
# TCP_INFO exists only on a host TCP socket (not on an offloaded one)
info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
assert info[0] == 1, "state %d" % info[0]  # TCP_ESTABLISHED
print("declined ok")
'''

DECLINE_POLICY = """version: 1
default: deny
rules:
  - action: decline
    to: 127.0.0.1
    ports: [%d]
    reason: test decline
  - action: offload
    to: 127.0.0.0/8
    reason: test offload
"""


def test_policy():
    counter = Counter()
    vmm = Vmm()  # the built-in policy denies 127.0.0.1:9
    try:
        r = run_py(PY_DENY, 9, vmm=vmm)
        expect_ok(r, "deny client")
        check(r.stdout.strip() == b"errno %d" % 13, "deny: " + show(r))
        check(b"deny" in r.stderr, "deny not logged: " + show(r))
    finally:
        vmm.close()
    echo = EchoTCP()
    vmm = Vmm(DECLINE_POLICY % echo.port)
    try:
        r = run_py(PY_DECLINE, echo.port, vmm=vmm)
        expect_ok(r, "declined client")
        check(b"decline" in r.stderr, "decline not logged: " + show(r))
        # under confinement the same call is refused
        r = run_py(PY_DENY, echo.port, vmm=vmm, confine=True)
        expect_ok(r, "confined client")
        check(r.stdout.strip() == b"errno 13", "confined decline: " + show(r))
        # an offloaded one next to it still works
        r = run_py(PY_DENY, counter.port, vmm=vmm, confine=True)
        check(r.stdout.strip() == b"connected", "confined offload: " + show(r))
    finally:
        vmm.close()


# ---- 6. fork ----------------------------------------------------------------------------

PY_FORK = r'''
import os, socket, sys
port = int(sys.argv[1])
pre = socket.create_connection(("127.0.0.1", port), timeout=10)
kids = []
for i in range(3):
    pid = os.fork()
    if pid == 0:
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            msg = b"child %d " % i * 1000
            c.sendall(msg)
            got = b""
            while len(got) < len(msg):
                b = c.recv(65536)
                assert b
                got += b
            assert got == msg
            assert c.getpeername() == ("127.0.0.1", port)
            if i == 0:  # a socket made before fork works in the child
                pre.sendall(b"inherited"); assert pre.recv(100) == b"inherited"
            os._exit(0)
        except BaseException as e:
            print("child", i, repr(e), flush=True)
            os._exit(1)
    kids.append(pid)
bad = 0
for pid in kids:
    _, st = os.waitpid(pid, 0)
    bad += st != 0
print("children failed:", bad)
sys.exit(bad)
'''


def test_fork():
    echo = EchoTCP()
    vmm = Vmm()
    try:
        r = run_py(PY_FORK, echo.port, vmm=vmm)
        expect_ok(r, "forking client")
        check(echo.accepts >= 4, "server saw %d connections" % echo.accepts)
    finally:
        vmm.close()


# ---- 7. static binary -------------------------------------------------------------

def elf_has_interp(path):
    """True when the ELF file asks for a dynamic loader (PT_INTERP)."""
    import struct
    with open(path, "rb") as f:
        h = f.read(64)
        check(h[:4] == b"\x7fELF" and h[4] == 2, "not a 64-bit ELF: " + path)
        phoff, = struct.unpack_from("<Q", h, 32)
        phentsize, phnum = struct.unpack_from("<HH", h, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    return any(struct.unpack_from("<I", ph, i * phentsize)[0] == 3
               for i in range(phnum))


def test_static():
    prog = os.path.join(TEST_BIN, "static_echo")
    check(not elf_has_interp(prog), "static_echo is dynamically linked")
    echo = EchoTCP()
    vmm = Vmm()
    try:
        r = run([prog, str(echo.port)], vmm=vmm)
        expect_ok(r, "static client")
        check(b"offload: " in r.stderr, "static client not offloaded: " +
              show(r))
        check(echo.accepts == 1, "server saw %d connections" % echo.accepts)
    finally:
        vmm.close()


# ---- 8. TOCTOU under confinement ------------------------------------------------

RACE_POLICY = """version: 1
default: deny
rules:
  - action: offload
    to: 127.0.0.1
    ports: [%d]
    reason: the allowed service
  - action: decline
    to: 127.0.0.1
    ports: [%d]
    reason: left to the host stack
"""


def test_toctou():
    prog = os.path.join(TEST_BIN, "toctou_race")
    offl, decl, denied = Counter(), Counter(), Counter()
    vmm = Vmm(RACE_POLICY % (offl.port, decl.port))
    try:
        r = run([prog, str(offl.port), str(decl.port), str(denied.port),
                 "3000"], vmm=vmm, confine=True, timeout=90,
                extra=())
        expect_ok(r, "race program")
        time.sleep(0.3)
        stats = r.stdout.decode().strip()
        print("confined:", stats, "accepts: offloaded", offl.accepts,
              "declined", decl.accepts, "denied", denied.accepts)
        check(denied.accepts == 0,
              "a confined program reached the denied listener %d times" %
              denied.accepts)
        check(decl.accepts == 0, "a confined program used the host stack")
        check(offl.accepts > 0, "the offloaded address was never reached")
        # Without confinement the same race can reach the denied listener
        # (seccomp's documented gap); reported, not asserted: it is a race.
        before = denied.accepts
        r = run([prog, str(offl.port), str(decl.port), str(denied.port),
                 "3000"], vmm=vmm, timeout=90)
        time.sleep(0.3)
        print("unconfined:", r.stdout.decode().strip(),
              "denied listener reached", denied.accepts - before, "times")
    finally:
        vmm.close()


# ---- 9. UDP -------------------------------------------------------------------------

PY_UDP = r'''
import errno, socket, sys
p1, p2 = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
for i in range(40):
    port, tag = (p1, b"A:") if i % 2 == 0 else (p2, b"B:")
    msg = b"dgram %d" % i
    s.sendto(msg, ("127.0.0.1", port))
    if i % 4 < 2:
        d, a = s.recvfrom(2048)
    else:
        d, anc, fl, a = s.recvmsg(2048)
    assert a == ("127.0.0.1", port), (a, port)
    assert d == tag + msg, d
n = s.getsockname()
assert n[0] in ("0.0.0.0", "127.0.0.1") and n[1] > 0, n
# a datagram larger than the buffer is truncated like a host socket's
s.sendto(b"x" * 1000, ("127.0.0.1", p1))
d, a = s.recvfrom(10)
assert d == b"A:xxxxxxxx" and a[1] == p1, (d, a)
s.close()
# connected UDP: plain send/recv, recvfrom names the peer
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(10)
c.connect(("127.0.0.1", p2))
for i in range(10):
    c.send(b"c%d" % i)
    assert c.recv(100) == b"B:c%d" % i
c.send(b"last")
d, a = c.recvfrom(100)
assert d == b"B:last" and a == ("127.0.0.1", p2), (d, a)
assert c.getpeername() == ("127.0.0.1", p2)
# no IPX on this device (tcp and udp backends only): EAFNOSUPPORT
try:
    socket.socket(socket.AF_IPX, socket.SOCK_DGRAM)
    assert False, "AF_IPX socket created"
except OSError as e:
    assert e.errno == errno.EAFNOSUPPORT, e
print("udp ok")
'''


def test_udp():
    a, b = EchoUDP(b"A:"), EchoUDP(b"B:")
    vmm = Vmm()
    try:
        r = run_py(PY_UDP, a.port, b.port, vmm=vmm)
        expect_ok(r, "udp client")
        check(b"udp ok" in r.stdout, show(r))
        check(b"offload: " in r.stderr, "udp not offloaded: " + show(r))
    finally:
        vmm.close()


# ---- 10. listen -----------------------------------------------------------------------

INBOUND_DENY_POLICY = """version: 1
default: deny
rules:
  - action: offload
    direction: outbound
    to: 127.0.0.0/8
  - action: deny
    direction: inbound
    to: 0.0.0.0/0
    reason: no servers here
"""


def fetch(port, path, tries=100):
    last = None
    for _ in range(tries):
        r = subprocess.run(["curl", "-sS", "--max-time", "5",
                            "http://127.0.0.1:%d/%s" % (port, path)],
                           capture_output=True)
        if r.returncode == 0:
            return r.stdout
        last = r
        time.sleep(0.05)
    raise Fail("curl from the host failed: %s" % show(last))


def test_listen():
    d = os.path.join(TMP, "served")
    os.mkdir(d)
    content = os.urandom(500000)
    with open(os.path.join(d, "f"), "wb") as f:
        f.write(content)
    vmm = Vmm()
    port = free_port()
    proc = subprocess.Popen([RUN, "-v", "--vmm", vmm.path, "--", PY, "-m",
                             "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", d],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(3):
            check(fetch(port, "f") == content, "served content differs")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err = proc.stderr.read()
        vmm.close()
    check(b"listen" in err, "listen not logged: %s" % err[-2000:])

    vmm = Vmm(INBOUND_DENY_POLICY)
    try:
        port = free_port()
        r = run([PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                vmm=vmm, timeout=20)
        check(r.returncode != 0, "server ran although inbound is denied")
        check(b"Permission denied" in r.stderr, show(r))
        c = subprocess.run(["curl", "-sS", "--max-time", "3",
                            "http://127.0.0.1:%d/" % port],
                           capture_output=True)
        check(c.returncode != 0, "something answered on the denied port")
    finally:
        vmm.close()


# ---- 11. iperf3 -----------------------------------------------------------------------

def test_iperf3():
    port = free_port()
    srv = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p",
                            str(port)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    vmm = Vmm()
    try:
        time.sleep(0.3)
        r = run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", "2",
                 "-J"], vmm=vmm, timeout=30)
        expect_ok(r, "iperf3 client")
        res = json.loads(r.stdout)
        got = res["end"]["sum_received"]["bytes"]
        print("iperf3: %d bytes, %.1f Mbit/s" %
              (got, res["end"]["sum_received"]["bits_per_second"] / 1e6))
        check(got > 0, "iperf3 moved no bytes")
    finally:
        vmm.close()
        if srv.poll() is None:
            srv.kill()
        srv.wait()


# ---- confinement escapes (attack programs in C) -------------------------------

CONFINE_POLICY = """version: 1
default: deny
rules:
  - action: offload
    to: 127.0.0.1
    ports: [%d]
    reason: the allowed service
"""


class CounterUDP:
    """A UDP socket that only counts the datagrams it receives."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.count = 0
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                self.sock.recvfrom(65536)
            except OSError:
                return
            self.count += 1


PY_FDPASS = r'''
import os, socket, threading, time
# fd passing between a confined program's own sockets still works (the
# supervisor performs such a recvmsg itself under confinement)
a, b = socket.socketpair()
r, w = os.pipe()
socket.send_fds(a, [b"hello fds"], [w])
msg, fds, flags, addr = socket.recv_fds(b, 100, 4)
assert msg == b"hello fds" and len(fds) == 1, (msg, fds)
os.write(fds[0], b"through")
assert os.read(r, 10) == b"through"
assert os.get_inheritable(fds[0])  # as natively: no MSG_CMSG_CLOEXEC
socket.send_fds(a, [b"cloexec"], [w])
data, anc, fl, _ = b.recvmsg(100, socket.CMSG_SPACE(4), socket.MSG_CMSG_CLOEXEC)
fd = int.from_bytes(anc[0][2][:4], "little")
assert data == b"cloexec" and not os.get_inheritable(fd), (data, anc)
assert fl & socket.MSG_CMSG_CLOEXEC, fl
# a blocking receive waits for a message sent later
t = threading.Thread(target=lambda: (time.sleep(0.3),
                     socket.send_fds(a, [b"later"], [r])))
t.start()
msg, fds, flags, addr = socket.recv_fds(b, 100, 4)
t.join()
assert msg == b"later" and len(fds) == 1, (msg, fds)
b.setblocking(False)
try:
    socket.recv_fds(b, 100, 4)
    raise SystemExit("no EAGAIN")
except BlockingIOError:
    pass
# a datagram socket with the sender's (abstract) address, and truncation
d1 = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
d1.bind(b"\0hwsock-fdpass-%d" % os.getpid())
d2 = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
d2.bind(b"\0hwsock-fdpass2-%d" % os.getpid())
d2.sendto(b"0123456789", d1.getsockname())
data, anc, fl, src = d1.recvmsg(4, socket.CMSG_SPACE(4))
assert data == b"0123" and fl & socket.MSG_TRUNC, (data, fl)
assert src == d2.getsockname(), src
print("fdpass ok")
'''


def test_confine_escape():
    """Host INET sockets inherited by a confined program (sendmmsg with
    MSG_FASTOPEN, sendmmsg with a destination, a dup2 race between an
    AF_UNIX socket and the inherited one) never reach a denied listener."""
    prog = os.path.join(TEST_BIN, "confine_escape")
    allowed, tcp_denied, udp_denied = Counter(), Counter(), CounterUDP()
    vmm = Vmm(CONFINE_POLICY % allowed.port)
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        tfd, ufd = t.fileno(), u.fileno()
        for args in (["fastopen", tfd, tcp_denied.port],
                     ["udp", ufd, udp_denied.port],
                     ["race", ufd, udp_denied.port, 20000],
                     ["sendmmsg", udp_denied.port]):
            r = subprocess.run(
                [RUN, "-v", "--vmm", vmm.path, "--confine", "--", prog] +
                [str(a) for a in args], capture_output=True, timeout=90,
                pass_fds=(tfd, ufd))
            expect_ok(r, "confine_escape " + args[0])
            time.sleep(0.2)
            print(args[0], r.stdout.decode().strip(), "-> denied listeners:",
                  "tcp", tcp_denied.accepts, "udp", udp_denied.count)
            check(tcp_denied.accepts == 0 and udp_denied.count == 0,
                  "%s reached a denied listener (tcp %d, udp %d): %s" %
                  (args[0], tcp_denied.accepts, udp_denied.count, show(r)))
        # a host UDP socket, connected to the denied port by a process
        # outside, handed in over an inherited unix socket (SCM_RIGHTS)
        a, b = socket.socketpair()
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.connect(("127.0.0.1", udp_denied.port))
        socket.send_fds(a, [b"fd"], [c.fileno()])
        socket.send_fds(a, [b"fd2"], [c.fileno()])
        c.close()
        r = subprocess.run(
            [RUN, "-v", "--vmm", vmm.path, "--confine", "--", prog, "scm",
             str(b.fileno()), str(udp_denied.port), "20000"],
            capture_output=True, timeout=90, pass_fds=(b.fileno(),))
        a.close()
        b.close()
        expect_ok(r, "confine_escape scm")
        time.sleep(0.2)
        print("scm", r.stdout.decode().strip(), "-> denied listener: udp",
              udp_denied.count)
        check(udp_denied.count == 0 and
              r.stdout.count(b"of family 1\n") == 2,
              "an INET socket received with SCM_RIGHTS reached the denied "
              "listener %d times: %s" % (udp_denied.count, show(r)))
        r = run_py(PY_FDPASS, vmm=vmm, confine=True)
        expect_ok(r, "fd passing under confinement")
        check(b"fdpass ok" in r.stdout, show(r))
        # the confined program still reaches what the policy offloads
        r = run_py(PY_DENY, allowed.port, vmm=vmm, confine=True)
        check(r.stdout.strip() == b"connected", "confined offload: " + show(r))
    finally:
        t.close()
        u.close()
        vmm.close()


def test_syscall_escape():
    """Around the filter's socket traps under --confine
    (test/run/syscall_escape.c): io_uring (setup refused: EPERM), 32-bit
    socketcall through int 0x80 (the program is killed before any socket),
    x32 calls (ENOSYS), a pthread (clone3) and a bare clone(CLONE_VM)
    thread flipping the sockaddr between an allowed and a denied port while
    the main thread connects, a vfork child, exec of a setuid copy of the
    program: the denied listener counts 0 connections."""
    prog = os.path.join(TEST_BIN, "syscall_escape")
    allowed, denied = Counter(), Counter()
    vmm = Vmm(CONFINE_POLICY % allowed.port)
    suid = os.path.join(TMP, "syscall_escape_suid")
    shutil.copy(prog, suid)
    os.chmod(suid, 0o4755)
    cases = [
        (["iouring", denied.port], "iouring: io_uring_setup: Operation not permitted"),
        (["int80", denied.port], ""),
        (["x32", denied.port], "x32: socket -1 (Function not implemented)"),
        (["clone3", allowed.port, denied.port, 300], "clone3: connected "),
        (["vfork", denied.port], "vfork: child exit 0, parent connect -1 (Permission denied)"),
        (["setuid", suid, denied.port], "connect -1 (Permission denied)"),
    ]
    try:
        for args, want in cases:
            r = subprocess.run(
                [RUN, "-v", "--vmm", vmm.path, "--confine", "--", prog] +
                [str(a) for a in args], capture_output=True, timeout=90)
            out = r.stdout.decode(errors="replace")
            time.sleep(0.2)
            print(args[0], repr(out.strip()), "exit", r.returncode,
                  "-> denied listener:", denied.accepts)
            check(denied.accepts == 0, "%s reached the denied listener %d "
                  "times: %s" % (args[0], denied.accepts, show(r)))
            check(r.returncode != 3, "%s got through: %s" % (args[0], show(r)))
            if args[0] == "int80":
                # killed at its first foreign-architecture call
                check(r.returncode != 0 and out == "",
                      "int 0x80 was not killed: %s" % show(r))
            else:
                expect_ok(r, "syscall_escape " + args[0])
                check(want in out, "%s: expected %r: %s" % (args[0], want,
                                                             show(r)))
        # the racing threads' connects that went through reached the
        # allowed listener only
        check(allowed.accepts > 0, "no connect of the race reached the "
              "allowed port")
    finally:
        vmm.close()


DECLINED_POLICY = """version: 1
default: deny
rules:
  - action: deny
    to: 127.0.0.1
    ports: [%d, %d]
    reason: the denied listeners
  - action: decline
    to: 127.0.0.2
    reason: left to the host stack
  - action: offload
    to: 127.0.0.0/8
    reason: loopback
"""

PY_DECLINED = r'''
import errno, socket, sys
tport, uport, echo, closed = (int(a) for a in sys.argv[1:5])
def refused(f, what):
    try:
        f()
    except OSError as e:
        assert e.errno == errno.EACCES, (what, e)
        return
    raise AssertionError(what + " was let through")
# TCP: the first connect is declined (host stack: refused, nothing listens
# at 127.0.0.2:closed); the same socket may connect again: each destination
# is asked again
t = socket.socket()
try:
    t.connect(("127.0.0.2", closed))
except ConnectionRefusedError:
    pass
refused(lambda: t.connect(("127.0.0.1", tport)), "reconnect to a denied port")
refused(lambda: t.sendto(b"x", socket.MSG_FASTOPEN, ("127.0.0.1", tport)),
        "MSG_FASTOPEN to a denied port")
t.close()
# UDP: declined on its first sendto, then every destination is checked
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(10)
u.sendto(b"declined", ("127.0.0.2", closed))
refused(lambda: u.sendto(b"x", ("127.0.0.1", uport)), "sendto a denied port")
refused(lambda: u.sendmsg([b"x"], [], 0, ("127.0.0.1", uport)),
        "sendmsg to a denied port")
refused(lambda: u.connect(("127.0.0.1", uport)), "connect to a denied port")
# allowed destinations still work on the host socket: declined again, and
# an offloaded one (the host stack carries it: the socket cannot move)
u.sendto(b"again", ("127.0.0.2", closed))
u.sendto(b"ping", ("127.0.0.1", echo))
d, a = u.recvfrom(100)
assert d == b"E:ping" and a == ("127.0.0.1", echo), (d, a)
u.connect(("127.0.0.1", echo))
u.send(b"conn")
assert u.recv(100) == b"E:conn"
print("declined ok")
'''


def test_declined():
    """Without confinement a declined socket stays checked: every later
    destination (connect again, sendto, sendmsg, sendmmsg, MSG_FASTOPEN) is
    asked of the device; denied ones fail with EACCES and never arrive."""
    tden, uden, echo = Counter(), CounterUDP(), EchoUDP(b"E:")
    closed = free_port()
    vmm = Vmm(DECLINED_POLICY % (tden.port, uden.port))
    try:
        r = run_py(PY_DECLINED, tden.port, uden.port, echo.port, closed,
                   vmm=vmm)
        expect_ok(r, "declined client")
        check(b"declined ok" in r.stdout, show(r))
        check(b"decline: fd" in r.stderr, "nothing was declined: " + show(r))
        r = run([os.path.join(TEST_BIN, "confine_escape"), "declined",
                 str(closed), str(uden.port)], vmm=vmm)
        expect_ok(r, "sendmmsg on a declined socket")
        check(b"errno 13" in r.stdout, "sendmmsg: " + show(r))
        time.sleep(0.2)
        check(tden.accepts == 0 and uden.count == 0,
              "a denied listener was reached (tcp %d, udp %d)" %
              (tden.accepts, uden.count))
    finally:
        vmm.close()


BOUND_UNSPEC_POLICY = """version: 1
default: deny
rules:
  - action: deny
    to: 127.0.0.2
    ports: [%d, %d]
    direction: outbound
    reason: the denied listeners on 127.0.0.2
  - action: decline
    to: 127.0.0.0/8
    reason: left to the host stack
"""

PY_BOUND_UNSPEC = r'''
import errno, socket, sys
tport, uport = (int(a) for a in sys.argv[1:3])
def refused(f, what):
    try:
        f()
    except OSError as e:
        assert e.errno == errno.EACCES, (what, e)
        return
    raise AssertionError(what + " was let through")
# bound to 127.0.0.2 (declined: a host socket), then an unspecified
# destination: the kernel sends it to the bound address, 127.0.0.2
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.2", 0))
refused(lambda: u.sendto(b"x", ("0.0.0.0", uport)), "sendto 0.0.0.0")
refused(lambda: u.connect(("0.0.0.0", uport)), "UDP connect 0.0.0.0")
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u6.bind(("::ffff:127.0.0.2", 0))
refused(lambda: u6.sendto(b"x", ("::ffff:0.0.0.0", uport)),
        "sendto ::ffff:0.0.0.0")
t = socket.socket()
t.bind(("127.0.0.2", 0))
refused(lambda: t.connect(("0.0.0.0", tport)), "TCP connect 0.0.0.0")
print("bound unspec ok")
'''


def test_bound_unspec():
    """A declined socket bound to a specific address that sends to an
    unspecified destination reaches its own bound address (the kernel's
    rule): the destination is checked as that address, not as 127.0.0.1."""
    tden, uden = Counter("127.0.0.2"), CounterUDP("127.0.0.2")
    vmm = Vmm(BOUND_UNSPEC_POLICY % (tden.port, uden.port))
    try:
        r = run_py(PY_BOUND_UNSPEC, tden.port, uden.port, vmm=vmm)
        expect_ok(r, "bound-unspecified client")
        check(b"bound unspec ok" in r.stdout, show(r))
        time.sleep(0.2)
        check(tden.accepts == 0 and uden.count == 0,
              "a denied listener was reached (tcp %d, udp %d)" %
              (tden.accepts, uden.count))
    finally:
        vmm.close()


LOOPBACK_ONLY_POLICY = """version: 1
default: deny
rules:
  - action: offload
    to: [127.0.0.0/8, "::1"]
    reason: loopback only
"""

PY_WILDCARD = r'''
import errno, socket, sys
port, port6, uport, dport = (int(a) for a in sys.argv[1:5])
def echo(s, msg):
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        b = s.recv(100)
        assert b, "EOF"
        got += b
    assert got == msg, got
# what resolvers and remote shells do: bind the wildcard, port 0, then connect
s = socket.socket()
s.bind(("0.0.0.0", 0))
try:
    s.bind(("0.0.0.0", 0))
    raise AssertionError("a second bind succeeded")
except OSError as e:
    assert e.errno == errno.EINVAL, e
s.connect(("127.0.0.1", port))
echo(s, b"wild v4")
assert s.getsockname()[0] == "127.0.0.1" and s.getsockname()[1] > 0
s.close()
s6 = socket.socket(socket.AF_INET6)
s6.bind(("::", 0))
s6.connect(("::1", port6))
echo(s6, b"wild v6")
s6.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(10)
u.bind(("0.0.0.0", 0))
u.sendto(b"query", ("127.0.0.1", uport))
d, a = u.recvfrom(100)
assert d == b"E:query" and a == ("127.0.0.1", uport), (d, a)
u.close()
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(10)
c.bind(("0.0.0.0", 0))
c.connect(("127.0.0.1", uport))
c.send(b"conn")
assert c.recv(100) == b"E:conn"
c.close()
if dport:  # built-in policy: 127.0.0.2 is declined, the bind replayed
    d = socket.socket()
    d.bind(("0.0.0.0", 0))
    d.connect(("127.0.0.2", dport))
    echo(d, b"declined")
    d.close()
print("wildcard ok")
'''


def test_wildcard_bind():
    """bind(0.0.0.0:0) / bind([::]:0) before connect or sendto is decided at
    the connect: offloaded under a loopback-only policy (not denied) and
    under the built-in one (not declined); a declined connect gets the bind
    replayed on the host socket."""
    tcp, tcp6, udp = EchoTCP(), EchoTCP(socket.AF_INET6, "::1"), EchoUDP(b"E:")
    declined = EchoTCP(host="127.0.0.2")
    for policy, dport in ((LOOPBACK_ONLY_POLICY, 0), (None, declined.port)):
        vmm = Vmm(policy)
        try:
            r = run_py(PY_WILDCARD, tcp.port, tcp6.port, udp.port, dport,
                       vmm=vmm)
            expect_ok(r, "wildcard-bind client")
            check(b"wildcard ok" in r.stdout, show(r))
            err = r.stderr.decode()
            for dest in ("tcp://127.0.0.1:%d" % tcp.port,
                         "tcp6://[::1]:%d" % tcp6.port,
                         "udp://127.0.0.1:%d" % udp.port):
                check(("connect %s" % dest in err or
                       "sendto %s" % dest in err) and "offload" in err,
                      "%s not offloaded: %s" % (dest, show(r)))
            check(err.count("decline: fd") == (1 if dport else 0),
                  "declined: " + show(r))
            check("deny:" not in err, "denied: " + show(r))
            # a real client that binds the wildcard first: nc -s 0.0.0.0
            r = run(["nc", "-N", "-s", "0.0.0.0", "127.0.0.1", str(tcp.port)],
                    vmm=vmm, stdin=b"nc wildcard\n")
            expect_ok(r, "nc -s 0.0.0.0")
            check(r.stdout == b"nc wildcard\n", "nc echo: " + show(r))
            check(b"offload: fd" in r.stderr, "nc not offloaded: " + show(r))
        finally:
            vmm.close()
    check(declined.accepts == 1, "the declined connection did not arrive")


def test_ptrace():
    """A confined program cannot read or write the supervisor's or the
    VMM's memory (process_vm_*, ptrace, /proc/PID/mem), even as root; the
    supervisor keeps denying afterwards."""
    prog = os.path.join(TEST_BIN, "ptrace_attack")
    allowed, denied = Counter(), Counter()
    vmm = Vmm(CONFINE_POLICY % allowed.port)
    try:
        r = run([prog, str(vmm.proc.pid), str(allowed.port), str(denied.port)],
                vmm=vmm, confine=True)
        print(r.stdout.decode().strip())
        expect_ok(r, "ptrace attack program")
        check(denied.accepts == 0, "the denied listener was reached")
    finally:
        vmm.close()
    # The same attack by an unprivileged user (hwsock-run, its private VMM
    # and the program all run as nobody): the same uid and no capabilities,
    # so only the supervisor and the VMM being non-dumpable stop
    # /proc/PID/mem. The program finds the VMM among its parent's children.
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if os.getuid() != 0 or not shutil.which("setpriv"):
        print("not root or no setpriv: the unprivileged run is skipped")
        return
    if subprocess.run(nobody + [
            "sh", "-c", 'test -x "$0" && test -x "$1" && test -r "$2"', RUN,
            prog, os.path.join(BACKENDS, "tcp.so")]).returncode != 0:
        print("the build tree is not reachable by nobody: skipped")
        return
    d = tempfile.mkdtemp(prefix="hwsock-run-nobody.")
    os.chmod(d, 0o1777)
    pf = os.path.join(d, "policy.yaml")
    with open(pf, "w") as f:
        f.write(CONFINE_POLICY % allowed.port)
    os.chmod(pf, 0o644)
    try:
        r = subprocess.run(
            nobody + ["env", "TMPDIR=" + d, RUN, "-v", "--policy", pf, "--confine",
             "--", prog, "-1", str(allowed.port), str(denied.port)],
            capture_output=True, timeout=60)
        print(r.stdout.decode().strip())
        expect_ok(r, "ptrace attack program as nobody")
        check(denied.accepts == 0, "the denied listener was reached")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- hostile arguments ----------------------------------------------------------

PY_HOSTILE = r'''
import ctypes, errno, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
bad = ctypes.c_void_p(8)  # never mapped
ok = {errno.EFAULT, errno.EINVAL, errno.EAGAIN, errno.EOPNOTSUPP,
      errno.ENOTCONN}
def call(name, *args):
    f = getattr(libc, name)
    f.restype = ctypes.c_int
    ctypes.set_errno(0)
    r = f(*args)
    e = ctypes.get_errno()
    assert r == -1 and e in ok, (name, r, errno.errorcode.get(e))
for fam, typ in ((socket.AF_INET, socket.SOCK_STREAM),
                 (socket.AF_INET, socket.SOCK_DGRAM),
                 (socket.AF_INET6, socket.SOCK_STREAM)):
    s = socket.socket(fam, typ)
    fd = s.fileno()
    call("connect", fd, bad, 16)
    call("connect", fd, bad, 0)
    call("connect", fd, bad, 1 << 30)
    call("connect", fd, bad, -1)
    call("bind", fd, bad, 16)
    call("getsockopt", fd, socket.SOL_SOCKET, socket.SO_TYPE, bad, bad)
    call("setsockopt", fd, socket.SOL_SOCKET, socket.SO_REUSEADDR, bad, 4)
    call("setsockopt", fd, socket.SOL_SOCKET, socket.SO_REUSEADDR, bad, 1 << 30)
    call("getsockname", fd, bad, bad)
    call("getpeername", fd, bad, bad)
    call("sendto", fd, bad, 10, 0, bad, 16)
    call("sendmsg", fd, bad, 0)
    call("recvfrom", fd, bad, 10, socket.MSG_DONTWAIT, bad, bad)
    call("recvmsg", fd, bad, socket.MSG_DONTWAIT)
    call("accept4", fd, bad, bad, 0)
    call("accept4", fd, None, None, 0x12345)
    s.close()
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
c.sendall(b"still"); assert c.recv(10) == b"still"
print("hostile ok")
'''


def test_hostile():
    """Bad pointers and lengths from the program: clean errors, and the
    supervisor (built with ASan in CI) keeps serving."""
    echo = EchoTCP()
    vmm = Vmm()
    try:
        r = run_py(PY_HOSTILE, echo.port, vmm=vmm)
        expect_ok(r, "hostile client")
        check(b"hostile ok" in r.stdout, show(r))
    finally:
        vmm.close()


# ---- the VMM dies under an epoll server ---------------------------------------

VMM_GONE_SERVER = r"""
import errno, json, os, selectors, socket, sys, time
port, stats = int(sys.argv[1]), sys.argv[2]
ls = socket.socket()
ls.bind(("127.0.0.1", port))
ls.listen(8)
ls.setblocking(False)
sel = selectors.DefaultSelector()
sel.register(ls, selectors.EVENT_READ)
us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
us.bind(("127.0.0.1", port))
us.setblocking(False)
sel.register(us, selectors.EVENT_READ)
served, fails, last = 0, {}, 0.0
udp = {}
def dump():
    with open(stats + ".tmp", "w") as f:
        json.dump({"pid": os.getpid(), "served": served, "fails": fails,
                   "udp": udp}, f)
    os.replace(stats + ".tmp", stats)
dump()
while True:
    for key, ev in sel.select(timeout=0.2):
        if key.fileobj is us:
            try:
                k = "empty" if us.recv(2048) == b"" else "datagram"
            except BlockingIOError:
                continue
            except OSError as e:
                k = errno.errorcode.get(e.errno, str(e.errno))
            udp[k] = udp.get(k, 0) + 1
            continue
        try:
            c, _ = ls.accept()
        except BlockingIOError:
            continue
        except OSError as e:
            n = errno.errorcode.get(e.errno, str(e.errno))
            fails[n] = fails.get(n, 0) + 1
            continue
        c.setblocking(True)
        c.sendall(c.recv(100))
        c.close()
        served += 1
    if time.monotonic() - last > 0.1:
        last = time.monotonic()
        dump()
"""


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_vmm_gone_listener():
    """The VMM behind --vmm is killed under an epoll (selectors) server with
    an offloaded listener and UDP socket: accept fails once with ENETDOWN,
    the UDP socket reports the loss once (ENETDOWN, or an empty datagram to
    a plain recv), neither is readable after, and neither the server nor
    hwsock-run spins (HWSOCK-RUN.md, 'When the VMM goes away')."""
    vmm = Vmm()
    port = free_port()
    stats = os.path.join(TMP, "stats.json")
    prog = os.path.join(TMP, "vmm_gone_server.py")
    with open(prog, "w") as f:
        f.write(VMM_GONE_SERVER)
    proc = subprocess.Popen([RUN, "-v", "--vmm", vmm.path, "--", PY, prog,
                             str(port), stats],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = b""

    def read_stats():
        try:
            with open(stats) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    try:
        st = None
        for _ in range(200):
            st = read_stats()
            if st is not None or proc.poll() is not None:
                break
            time.sleep(0.05)
        check(st is not None, "the server did not start")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(b"ping")
            check(c.recv(100) == b"ping", "no echo through the listener")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            for _ in range(100):
                u.sendto(b"x", ("127.0.0.1", port))
                time.sleep(0.05)
                st = read_stats()
                if st["served"] == 1 and st["udp"]:
                    break
        check(st["udp"].get("datagram", 0) >= 1, "no datagram arrived")
        time.sleep(0.3)  # any later datagram in flight arrives first
        udp0 = read_stats()["udp"]["datagram"]
        vmm.proc.kill()
        vmm.proc.wait()
        # the acceptor meets the dead device; the server meets the result
        for _ in range(100):
            if read_stats()["fails"] or proc.poll() is not None:
                break
            time.sleep(0.05)
        time.sleep(0.3)
        check(proc.poll() is None, "hwsock-run ended with the VMM")
        spid = read_stats()["pid"]
        run0, srv0 = cpu_seconds(proc.pid), cpu_seconds(spid)
        fails0 = dict(read_stats()["fails"])
        time.sleep(2)
        run_cpu = cpu_seconds(proc.pid) - run0
        srv_cpu = cpu_seconds(spid) - srv0
        time.sleep(0.2)
        fails = read_stats()["fails"]
        print("after the VMM died: accept failures %s (%s during the 2 s), "
              "CPU time over 2 s: hwsock-run %.2f s, server %.2f s" %
              (fails, {k: fails[k] - fails0.get(k, 0) for k in fails},
               run_cpu, srv_cpu))
        check(fails == {"ENETDOWN": 1},
              "accept after the VMM died: %s, not ENETDOWN once" % fails)
        udp = read_stats()["udp"]
        print("UDP: %s" % udp)
        lost = sum(udp.values()) - udp0
        check(lost <= 1 and udp.get("datagram", 0) == udp0,
              "UDP after the VMM died: %s (%d datagrams before)" % (udp, udp0))
        check(run_cpu < 0.3 and srv_cpu < 0.3,
              "spinning: hwsock-run %.2f s, server %.2f s of CPU over 2 s" %
              (run_cpu, srv_cpu))
        check(proc.poll() is None, "the server ended")
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err = proc.stderr.read()
        if vmm.proc.poll() is None:
            vmm.close()
    check(b"listen" in err, "listen not logged: %s" % err[-2000:])


VMM_GONE_THREADS = r"""
import errno, json, os, socket, sys, threading, time
udp_port = int(sys.argv[1])
res = {}
lock = threading.Lock()


def name(e):
    return errno.errorcode.get(e.errno, str(e.errno))


listeners = []
for i in range(3):
    l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    l.bind(("127.0.0.1", 0))
    l.listen(8)
    listeners.append(l)


def acc(k, l):
    try:
        c, _ = l.accept()
        r = "accepted"
    except OSError as e:
        r = name(e)
    with lock:
        res["accept%d" % k] = r


# two threads in accept() on the first listener, one on each of the others
threads = []
for k, l in enumerate([listeners[0], listeners[0], listeners[1],
                       listeners[2]]):
    t = threading.Thread(target=acc, args=(k, l), daemon=True)
    t.start()
    threads.append(t)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"hi", ("127.0.0.1", udp_port))
before = [listeners[1].getsockname(), u.getsockname()]
time.sleep(1)  # the threads wait in accept()
print("ready", flush=True)
sys.stdin.readline()  # the VMM is gone
deadline = time.monotonic() + 10
for t in threads:
    t.join(max(0.0, deadline - time.monotonic()))
time.sleep(0.3)
for k in range(3):
    try:
        u.sendto(b"x", ("127.0.0.1", udp_port))
        r = "sent"
    except OSError as e:
        r = name(e)
    res["sendto%d" % k] = r
try:
    c = socket.create_connection(("127.0.0.1", udp_port), timeout=5)
    res["connect"] = "connected"
except OSError as e:
    res["connect"] = name(e)
try:  # a socket keeps its address, as in the kernel
    after = [listeners[1].getsockname(), u.getsockname()]
    res["names"] = "same" if after == before else "%s, before %s" % (
        after, before)
except OSError as e:
    res["names"] = name(e)
with lock:
    print(json.dumps(res), flush=True)
os._exit(0)
"""


def test_vmm_gone_threads():
    """The VMM behind --vmm is killed while a threaded python3 program has
    four threads blocked in accept() on three offloaded listeners (two on
    one of them) and an offloaded UDP socket: every blocked accept fails
    with ENETDOWN, and so does every sendto() with an address, and a new
    socket's connect(); getsockname() still gives the listener's and the
    UDP socket's addresses (HWSOCK-RUN.md, 'When the VMM goes away')."""
    vmm = Vmm()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    prog = os.path.join(TMP, "vmm_gone_threads.py")
    with open(prog, "w") as f:
        f.write(VMM_GONE_THREADS)
    proc = subprocess.Popen([RUN, "-v", "--vmm", vmm.path, "--", PY, prog,
                             str(sink.getsockname()[1])],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        check(line == b"ready\n", "the program did not start: %r" % line)
        sink.settimeout(10)
        check(sink.recv(100) == b"hi", "the first datagram did not arrive")
        vmm.proc.kill()
        vmm.proc.wait()
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sink.close()
    check(proc.returncode == 0, "exit %d: %s" % (proc.returncode,
                                                 err[-2000:]))
    res = json.loads(out.decode().strip().splitlines()[-1])
    print("after the VMM died: %s" % res)
    for k in range(4):
        check(res.get("accept%d" % k) == "ENETDOWN",
              "accept thread %d: %s, not ENETDOWN" %
              (k, res.get("accept%d" % k, "still blocked")))
    for k in range(3):
        check(res["sendto%d" % k] == "ENETDOWN",
              "sendto %d with an address: %s, not ENETDOWN" %
              (k, res["sendto%d" % k]))
    check(res["connect"] == "ENETDOWN",
          "connect on a new socket: %s" % res["connect"])
    check(res["names"] == "same",
          "getsockname after the VMM died: %s" % res["names"])


MANY_ACCEPTS = r"""
import socket, sys, threading, time, os
n = int(sys.argv[1])
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.bind(("127.0.0.1", 0))
l.listen(128)
got = []
def acc():
    c, _ = l.accept()
    got.append(c)
for i in range(n):
    threading.Thread(target=acc, daemon=True).start()
time.sleep(1)  # they wait in accept()
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
c.settimeout(20)
try:
    c.connect(l.getsockname())
    r = "connected"
except OSError as e:
    r = repr(e)
for _ in range(100):
    if got:
        break
    time.sleep(0.05)
print("%s %d %s" % (r, len(got), c.getsockname()[0]), flush=True)
os._exit(0)
"""


def test_many_blocked_accepts():
    """A python3 program with 100 threads blocked in accept() on one
    offloaded listener (more than RUN_MAX_WORKERS, hwsock-run's worker
    threads, each answering one blocked call) connects to that listener
    from its main thread: the connect and one accept complete (before:
    every worker waited in an accept, the connect waited for a worker and
    the program hung)."""
    vmm = Vmm()
    try:
        r = run_py(MANY_ACCEPTS, 100, vmm=vmm, timeout=60)
    except subprocess.TimeoutExpired:
        raise Fail("the program hung: its connect never got a worker")
    finally:
        vmm.close()
    expect_ok(r, "many blocked accepts")
    check(r.stdout.split() == [b"connected", b"1", b"127.0.0.1"],
          "connect with 100 accepts waiting: %s" % show(r))


RESET_SOCKET = r"""
import errno, socket, sys, time
port = int(sys.argv[1])
c = socket.create_connection(("127.0.0.1", port))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
u.sendto(b"x", ("127.0.0.1", port))
print("ready", flush=True)
sys.stdin.readline()  # taken over; the UDP socket did not fit its quota
u.settimeout(5)
try:
    r = u.recvfrom(10)
except OSError as e:
    r = errno.errorcode.get(e.errno, str(e.errno))
print("udp", r, flush=True)
c.sendall(b"still")
print("tcp", c.recv(10).decode(), flush=True)
"""


def test_takeover_reset_socket():
    """hwsock-vmm --takeover into a VMM whose --guest-sockets 1 leaves the
    second of a python3 program's two offloaded sockets (a UDP socket)
    reset, while its TCP connection and the device go on: hwsock-run must
    not take the reset socket's ECONNRESET for the VMM's loss (before: it
    logged 'device gone: the VMM hung up' and the UDP socket reported
    ENETDOWN)."""
    vmm = Vmm()
    echo = EchoTCP()
    prog = os.path.join(TMP, "reset_socket.py")
    with open(prog, "w") as f:
        f.write(RESET_SOCKET)
    proc = subprocess.Popen([RUN, "-v", "--vmm", vmm.path, "--", PY, prog,
                             str(echo.port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    new = None
    try:
        check(proc.stdout.readline() == b"ready\n", "the program did not start")
        r, w = os.pipe()
        args = [VMM, "--listen", vmm.path, "--takeover", "--guest-sockets",
                "1", "--ready-fd", str(w), "--backend-dir", ""]
        for b in ("tcp", "udp"):
            args += ["--backend", os.path.join(BACKENDS, b + ".so")]
        if os.environ.get("HWSOCK_TEST_VMM_QUEUES"):
            args += ["--queues", os.environ["HWSOCK_TEST_VMM_QUEUES"]]
        new = subprocess.Popen(args, pass_fds=(w,))
        os.close(w)
        with os.fdopen(r, "rb") as rf:
            ready = rf.readline()
        check(ready == b"ready\n", "the takeover VMM did not become ready")
        vmm.proc.wait(10)  # the old one exits once it handed over
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in (new, vmm.proc):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(10)
    text = err.decode(errors="replace")
    print(out.decode(), text[-1500:])
    check(proc.returncode == 0, "exit %d" % proc.returncode)
    check(b"tcp still" in out, "the connection did not go on: %s" % out)
    check(b"udp ECONNRESET" in out,
          "the reset UDP socket: %s, not ECONNRESET" % out)
    check("device gone" not in text and "went away" not in text,
          "a reset socket taken for the VMM's loss: %s" % text[-1500:])


TESTS = {n[5:]: f for n, f in globals().items() if n.startswith("test_")}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in TESTS:
        print("usage: harness.py {%s}" % "|".join(TESTS), file=sys.stderr)
        return 2
    try:
        TESTS[sys.argv[1]]()
    except Fail as e:
        print("FAIL:", e, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
