#!/usr/bin/env python3
"""hwsock-run: unmodified servers and relays under hwsock-run, each compared
with the same exchange without it (docs/HWSOCK-RUN.md, programs checked).

Usage: programs_test.py TEST   (test/run/tests.cmake runs one ctest per TEST)

The program under test runs under hwsock-run against a hwsock-vmm of the
test (harness.py's Vmm; tests.cmake sets HWSOCK_TEST_VMM_QUEUES=2, so its
stream sockets go through hwsock-run's dispatcher thread); the clients are
the host side, on 127.0.0.1. Environment as for harness.py."""
import hashlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, Vmm, check, show, RUN  # noqa: E402


def need(prog):
    """The program's path; a missing one fails the test (scripts/deps
    installs it), it never skips."""
    p = shutil.which(prog) or shutil.which(prog, path="/usr/sbin:/sbin")
    check(p is not None, "%s not installed (scripts/deps installs it)" % prog)
    return p


def wait_port(port, proc, what, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        check(proc.poll() is None, "%s exited early (status %s)" % (
            what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Fail("%s did not listen on port %d" % (what, port))


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    return out, err


def under_run(prog, vmm):
    return subprocess.Popen([RUN, "-v", "--vmm", vmm.path, "--"] + prog,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def sha(data):
    return hashlib.sha256(data).hexdigest()


# ---- nginx: Debian's own defaults (sendfile on; tcp_nopush on) -----------------

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %(d)s/body;
  proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fastcgi;
  uwsgi_temp_path %(d)s/uwsgi;
  scgi_temp_path %(d)s/scgi;
  # as /etc/nginx/nginx.conf in Debian: tcp_nopush sets TCP_CORK around
  # each sendfile response
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 30;
  server {
    listen 127.0.0.1:%(port)d;
    root %(root)s;
  }
}
"""


def fetch_all(port, names):
    """Every file through one keep-alive connection (urllib's opener opens
    one per request: http.client keeps one)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    out = []
    for n in names:
        conn.request("GET", "/" + n)
        r = conn.getresponse()
        out.append((r.status, r.read()))
    conn.close()
    return out


def test_nginx():
    nginx = need("nginx")
    d = os.path.join(harness.TMP, "nginx")
    root = os.path.join(d, "www")
    os.makedirs(root)
    files = {"small.txt": b"hello nginx\n",
             "big.bin": os.urandom(3 * 1024 * 1024 + 17)}
    for n, data in files.items():
        with open(os.path.join(root, n), "wb") as f:
            f.write(data)
    vmm = Vmm()
    results = {}
    try:
        for mode in ("native", "hwsock-run"):
            port = harness.free_port()
            conf = os.path.join(d, "nginx-%s.conf" % mode)
            with open(conf, "w") as f:
                f.write(NGINX_CONF % {"d": d, "port": port, "root": root})
            prog = [nginx, "-p", d, "-e", os.path.join(d, "error.log"),
                    "-c", conf]
            p = (subprocess.Popen(prog, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
                 if mode == "native" else under_run(prog, vmm))
            try:
                wait_port(port, p, "nginx (%s)" % mode)
                names = ["small.txt", "big.bin", "small.txt", "big.bin"]
                got = fetch_all(port, names)
                # one connection per request too (no keep-alive)
                for n in names[:2]:
                    with urllib.request.urlopen(
                            "http://127.0.0.1:%d/%s" % (port, n),
                            timeout=20) as r:
                        got.append((r.status, r.read()))
                results[mode] = [(s, sha(b)) for s, b in got]
            except (OSError, http.client.HTTPException) as e:
                out, err = stop(p)
                with open(os.path.join(d, "error.log"), errors="replace") as f:
                    elog = f.read()[-2000:]
                raise Fail("nginx (%s): %r\n--- hwsock-run -v\n%s\n"
                           "--- nginx error.log\n%s" % (
                               mode, e, err.decode(errors="replace")[-2000:],
                               elog))
            out, err = stop(p)
            if mode == "hwsock-run":
                check(b"offload: " in err, "nginx's listener was not "
                      "offloaded:\n" + err.decode(errors="replace"))
        want = [(200, sha(files[n])) for n in
                ["small.txt", "big.bin", "small.txt", "big.bin",
                 "small.txt", "big.bin"]]
        check(results["native"] == want, "native nginx: %r" % results)
        check(results["hwsock-run"] == want,
              "nginx under hwsock-run differs from native: %r" % results)
        print("nginx: %d responses, the same natively and under hwsock-run"
              % len(want))
    finally:
        vmm.close()


# ---- socat: UDP client, UDP-RECVFROM fork server, TCP-LISTEN fork relay ------

class Datagrams:
    """A bound UDP socket that keeps every datagram it receives."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def take(self, quiet=1.0, cap=1000, answer=False):
        """What arrived until nothing came for `quiet` seconds (at most
        cap datagrams: a flood is cut short); answer: each non-empty one is
        answered "ack:" + it."""
        got = []
        self.sock.settimeout(quiet)
        try:
            while len(got) < cap:
                d, a = self.sock.recvfrom(65536)
                got.append(d)
                if answer and d:
                    self.sock.sendto(b"ack:" + d, a)
        except socket.timeout:
            pass
        return got


def socat_run(args, vmm, stdin, mode):
    prog = [need("socat")] + args
    if mode == "hwsock-run":
        prog = [RUN, "-v", "--vmm", vmm.path, "--"] + prog
    return subprocess.run(prog, input=stdin, capture_output=True, timeout=30)


def test_socat_udp_client():
    """socat - UDP:host:port sends stdin, and at its end shuts the socket
    down for writing (shutdown(SHUT_WR) on a connected UDP socket, which
    sends nothing) and still prints what comes back for -t seconds.
    Before: hwsock-run's up pump read that end as empty datagrams, for
    ever, and flooded the server with them."""
    vmm = Vmm()
    try:
        out, printed = {}, {}
        for mode in ("native", "hwsock-run"):
            srv = Datagrams()
            p = subprocess.Popen(
                ([RUN, "-v", "--vmm", vmm.path, "--"]
                 if mode == "hwsock-run" else []) +
                [need("socat"), "-t1", "-", "UDP:127.0.0.1:%d" % srv.port],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
            p.stdin.write(b"hello socat\n")
            p.stdin.close()
            out[mode] = srv.take(answer=True)
            printed[mode] = p.stdout.read()
            err = p.stderr.read()
            check(p.wait(10) == 0, "socat (%s) failed: %s" % (mode, err))
            srv.sock.close()
        check(out["native"] == [b"hello socat\n"] and
              printed["native"] == b"ack:hello socat\n",
              "native: %r, printed %r" % (out["native"][:5],
                                          printed["native"]))
        check(out["hwsock-run"] == out["native"],
              "under hwsock-run the server got %d datagrams: %r" % (
                  len(out["hwsock-run"]), out["hwsock-run"][:5]))
        check(printed["hwsock-run"] == printed["native"],
              "under hwsock-run socat printed %r" % printed["hwsock-run"])
    finally:
        vmm.close()


def udp_ask(port, data, timeout=5):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(0.3)  # after the answer: time for a second one
    c.sendto(data, ("127.0.0.1", port))
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            got.append(c.recvfrom(65536)[0])
        except socket.timeout:
            if got:
                break
    c.close()
    return got


def test_socat_udp_server():
    """socat UDP-RECVFROM:port,fork EXEC:'tr a-z A-Z': the parent peeks each
    datagram (recvmsg MSG_PEEK), forks a child that reads it and answers
    from the same socket. Every client gets exactly one answer (before: a
    SIGCHLD during the child's sendto made the kernel restart a send that
    was done, and clients got two)."""
    vmm = Vmm()
    results = {}
    try:
        for mode in ("native", "hwsock-run"):
            port = harness.free_port()
            prog = [need("socat"), "UDP-RECVFROM:%d,bind=127.0.0.1,fork" % port,
                    "EXEC:tr a-z A-Z"]
            p = (subprocess.Popen(prog, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
                 if mode == "native" else under_run(prog, vmm))
            try:
                time.sleep(0.5)
                results[mode] = [udp_ask(port, b"client %d\n" % i)
                                 for i in range(8)]
            finally:
                out, err = stop(p)
            if mode == "hwsock-run":
                check(b"offload: " in err, "not offloaded: %s" % err)
        want = [[b"CLIENT %d\n" % i] for i in range(8)]
        check(results["native"] == want, "native: %r" % results["native"])
        check(results["hwsock-run"] == want, "under hwsock-run: %r" %
              results["hwsock-run"])
    finally:
        vmm.close()


def test_socat_tcp_relay():
    """socat TCP-LISTEN:port,fork TCP:host:port under hwsock-run (its
    listener and its outgoing connections offloaded) relays HTTP to a
    server of the test: several downloads, sequential and keep-alive."""
    d = os.path.join(harness.TMP, "www")
    os.makedirs(d)
    data = os.urandom(2 * 1024 * 1024 + 5)
    with open(os.path.join(d, "f.bin"), "wb") as f:
        f.write(data)
    srv = harness.http_server(d)
    vmm = Vmm()
    port = harness.free_port()
    p = under_run([need("socat"),
                   "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork" % port,
                   "TCP:127.0.0.1:%d" % srv.server_address[1]], vmm)
    try:
        wait_port(port, p, "socat")
        for i in range(3):
            with urllib.request.urlopen("http://127.0.0.1:%d/f.bin" % port,
                                        timeout=20) as r:
                check(sha(r.read()) == sha(data), "download %d differs" % i)
        got = fetch_all(port, ["f.bin", "f.bin"])
        check([(st, sha(b)) for st, b in got] == [(200, sha(data))] * 2,
              "keep-alive downloads differ")
    finally:
        out, err = stop(p)
        vmm.close()
        srv.shutdown()
    check(err.count(b"offload: ") >= 5, "not offloaded: %s" % err[-2000:])


# ---- sendto(MSG_FASTOPEN) on a TCP socket that is not connected ----------------

PY_FASTOPEN = r'''
import socket, sys
port = int(sys.argv[1])
for i in range(3):
    # a connect that carries its first bytes (TCP fast open; without a
    # cookie the kernel sends them after the handshake): blocking
    s = socket.socket()
    n = s.sendto(b"hello %d" % i, socket.MSG_FASTOPEN, ("127.0.0.1", port))
    print("sent", n, "echo", s.recv(100), "peer", s.getpeername()[1] == port)
    s.sendall(b" more")
    print("echo", s.recv(100))
    s.close()
'''


def test_fastopen():
    """A python3 client: sendto(MSG_FASTOPEN) with an address connects an
    unconnected TCP socket and sends the bytes, as natively (before:
    ENOTCONN under hwsock-run)."""
    echo = harness.EchoTCP()
    path = os.path.join(harness.TMP, "fastopen.py")
    with open(path, "w") as f:
        f.write(PY_FASTOPEN)
    vmm = Vmm()
    try:
        n = subprocess.run([sys.executable, path, str(echo.port)],
                           capture_output=True, timeout=30)
        check(n.returncode == 0, "native: " + show(n))
        r = harness.run([sys.executable, path, str(echo.port)], vmm=vmm)
        check(r.returncode == 0 and r.stdout == n.stdout,
              "differs from native:\n--- native\n%s\n--- hwsock-run\n%s" % (
                  n.stdout.decode(), show(r)))
        check(b"offload: " in r.stderr, "not offloaded: " + show(r))
    finally:
        vmm.close()


# ---- ^Z: a program with a thread blocked in accept stops as a whole ------------

PY_STOP = r'''
import os, socket, sys, threading, time
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(1)
got = []
t = threading.Thread(target=lambda: got.append(l.accept()[0].recv(10)))
t.start()
print(os.getpid(), l.getsockname()[1], flush=True)
t.join(30)
print("accepted", got, flush=True)
'''


def thread_states(pid):
    out = []
    for tid in sorted(os.listdir("/proc/%d/task" % pid)):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            out.append(f.read().rsplit(")", 1)[1].split()[0])
    return out


def test_stop():
    """SIGSTOP stops every thread of a program whose second thread is
    blocked in accept on an offloaded listener, SIGCONT resumes it and the
    accept goes on, as natively (before: that thread stayed in the call
    the supervisor had taken, and the program never stopped as a whole)."""
    path = os.path.join(harness.TMP, "stop.py")
    with open(path, "w") as f:
        f.write(PY_STOP)
    vmm = Vmm()
    try:
        for mode in ("native", "hwsock-run"):
            prog = [sys.executable, path]
            p = (subprocess.Popen(prog, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
                 if mode == "native" else under_run(prog, vmm))
            try:
                pid, port = map(int, p.stdout.readline().split())
                time.sleep(0.3)  # the thread is in accept
                os.kill(pid, signal.SIGSTOP)
                end = time.monotonic() + 5
                while (time.monotonic() < end and
                       set(thread_states(pid)) != {"T"}):
                    time.sleep(0.05)
                states = thread_states(pid)
                os.kill(pid, signal.SIGCONT)
                check(set(states) == {"T"}, "%s: after SIGSTOP the "
                      "threads are %r" % (mode, states))
                c = socket.create_connection(("127.0.0.1", port), 5)
                c.send(b"hi")
                line = p.stdout.readline()
                c.close()
                check(line == b"accepted [b'hi']\n", "%s: %r" % (mode, line))
            finally:
                stop(p)
    finally:
        vmm.close()


TESTS = {"fastopen": test_fastopen, "stop": test_stop, "nginx": test_nginx, "socat_udp_client": test_socat_udp_client,
         "socat_udp_server": test_socat_udp_server,
         "socat_tcp_relay": test_socat_tcp_relay}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in TESTS:
        print("usage: programs_test.py {%s}" % "|".join(TESTS),
              file=sys.stderr)
        return 2
    try:
        TESTS[sys.argv[1]]()
    except Fail as e:
        print("FAIL:", e, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(harness.TMP, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
