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
from harness import Fail, Vmm, check, RUN  # noqa: E402


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


TESTS = {"nginx": test_nginx}


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
