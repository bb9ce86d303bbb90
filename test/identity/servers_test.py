#!/usr/bin/env python3
"""Stream identity against real servers (docs/IDENTITY.md): a program under
hwsock-run, offloaded through a hwsock-vmm with --identity and
--identity-key, connects to a server on 127.0.0.1 that expects a PROXY v2
header. Every server is started here with its own configuration on a free
loopback port; nothing else on the machine is used.

Usage: servers_test.py TEST   (test/identity/tests.cmake: one ctest each)
  nginx      nginx `listen ... proxy_protocol` logs $proxy_protocol_addr/port
             from the header and serves the request; without the rule's
             identity it refuses the same request
  haproxy    HAProxy `bind ... accept-proxy` in front of python3 http.server
             accepts the connection and logs the header's source
  verifier   scripts/proxy-v2-verify.py checks the HMAC of a real header and
             rejects it tampered and under another key
  forge      a guest that writes its own PROXY header first: the server sees
             the VMM's header, then the guest's as data (verifier and nginx)
  bind_first a guest that binds its socket (decided by an inbound rule)
             before connecting still sends the header: identity is decided
             per CONNECT
  refused    a rule asking for identity on a VMM without --identity, or
             routing to a backend that cannot send it: the connection is
             refused, nothing reaches the server
  policy_cli hwsock-policy check --verbose names the identity a rule asks for
  stat_capture  hwsock-stat shows the identity of a live connection; the
             capture's first data segment of the stream is the header

Environment (tests.cmake): HWSOCK_RUN, HWSOCK_VMM, HWSOCK_BACKENDS,
HWSOCK_STAT, HWSOCK_POLICY, HWSOCK_VERIFY (the verifier script)."""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

RUN = os.environ.get("HWSOCK_RUN", "hwsock-run")
VMM = os.environ.get("HWSOCK_VMM", "hwsock-vmm")
BACKENDS = os.environ.get("HWSOCK_BACKENDS", "")
STAT = os.environ.get("HWSOCK_STAT", "hwsock-stat")
VERIFY = os.environ.get("HWSOCK_VERIFY", "scripts/proxy-v2-verify.py")
POLICY_TOOL = os.environ.get("HWSOCK_POLICY", "hwsock-policy")
PY = sys.executable
TMP = tempfile.mkdtemp(prefix="hwsock-identity-test.")
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
NAME = "vm-alpha"
PROCS = []


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        check(proc.poll() is None, "%s exited early (%s)" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Fail("%s did not listen on %d" % (what, port))


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    PROCS.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def write(path, text, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(text if isinstance(text, bytes) else text.encode())
    return path


KEY = os.path.join(TMP, "identity.key")
write(KEY, os.urandom(32), 0o600)


def policy(identity_ports, plain_ports=()):
    """Identity on identity_ports, plain offload on plain_ports, of
    127.0.0.1; everything else offloaded plainly (Python's own imports make
    no connections; curl's none but this one)."""
    rules = ["version: 1", "rules:"]
    if identity_ports:
        rules += ["  - action: offload", "    scheme: tcp",
                  "    to: 127.0.0.1",
                  "    ports: [%s]" % ", ".join(map(str, identity_ports)),
                  "    identity: proxy-v2"]
    rules += ["  - action: offload"]
    return "\n".join(rules) + "\n"


class Vmm:
    """A hwsock-vmm with the tcp backend, on a private socket."""

    def __init__(self, pol, identity=True, pcap=None, backends=("tcp",)):
        self.path = os.path.join(TMP, "vmm%d.sock" % id(self))
        self.log = os.path.join(TMP, "vmm%d.log" % id(self))
        pf = write(os.path.join(TMP, "policy%d.yaml" % id(self)), pol)
        r, w = os.pipe()
        args = [VMM, "--listen", self.path, "--ready-fd", str(w),
                "--backend-dir", "", "--policy", pf, "-v"]
        for b in backends:
            args += ["--backend", os.path.join(BACKENDS, b + ".so")]
        if identity:
            args += ["--identity", NAME, "--identity-key", KEY]
        if pcap:
            args += ["--pcap", pcap]
        self.logf = open(self.log, "wb")
        self.proc = spawn(args, pass_fds=(w,), stderr=self.logf)
        os.close(w)
        with os.fdopen(r, "rb") as rf:
            ready = rf.readline()
        check(ready == b"ready\n", "hwsock-vmm did not become ready: %s"
              % self.text())

    def text(self):
        self.logf.flush()
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def close(self):
        stop(self.proc)
        self.logf.close()


def run(vmm, prog, timeout=30):
    r = subprocess.run([RUN, "--vmm", vmm.path, "--"] + prog,
                       capture_output=True, timeout=timeout)
    return r


def show(r):
    return "exit %d\n--- stdout\n%s\n--- stderr\n%s" % (
        r.returncode, r.stdout.decode(errors="replace")[-2000:],
        r.stderr.decode(errors="replace")[-2000:])


def curl(vmm, port, path="/"):
    return run(vmm, ["curl", "-sS", "--max-time", "10",
                     "http://127.0.0.1:%d%s" % (port, path)])


def verifier(port, count=1, key=True):
    args = [PY, VERIFY, "--listen", "127.0.0.1:%d" % port, "--count",
            str(count)]
    if key:
        args += ["--key", KEY]
    p = spawn(args, stdout=subprocess.PIPE)
    check(p.stdout.readline() == b"listening\n", "the verifier listens")
    return p


def verifier_results(p, count):
    out = [json.loads(p.stdout.readline()) for _ in range(count)]
    p.wait(10)
    return out, p.returncode


# ---- nginx -------------------------------------------------------------------

def start_nginx(port):
    d = tempfile.mkdtemp(prefix="nginx.", dir=TMP)
    os.chmod(d, 0o755)
    log = os.path.join(d, "access.log")
    conf = write(os.path.join(d, "nginx.conf"), """
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 64; }
http {
  client_body_temp_path %(d)s/body;
  proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fastcgi;
  uwsgi_temp_path %(d)s/uwsgi;
  scgi_temp_path %(d)s/scgi;
  log_format pp 'pp=$proxy_protocol_addr:$proxy_protocol_port '
                'server=$proxy_protocol_server_addr:$proxy_protocol_server_port '
                'tcp=$remote_addr:$remote_port status=$status "$request"';
  server {
    listen 127.0.0.1:%(port)d proxy_protocol;
    access_log %(log)s pp;
    location / { return 200 "hello $proxy_protocol_addr\\n"; }
  }
}
""" % {"d": d, "port": port, "log": log})
    p = spawn(["nginx", "-p", d, "-e", os.path.join(d, "error.log"), "-c",
               conf, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    wait_port(port, p, "nginx")
    return p, log, os.path.join(d, "error.log")


def read_log(path, n, timeout=10):
    end = time.monotonic() + timeout
    lines = []
    while time.monotonic() < end:
        if os.path.exists(path):
            with open(path) as f:
                lines = [l for l in f.read().splitlines() if l]
            if len(lines) >= n:
                return lines
        time.sleep(0.05)
    raise Fail("%s: %d lines, wanted %d: %r" % (path, len(lines), n, lines))


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def test_nginx():
    port, plain = free_port(), free_port()
    ng, log, _ = start_nginx(port)
    # The same nginx port twice: through a rule with identity, then (second
    # VMM) through one without: nginx needs the header.
    vmm = Vmm(policy([port]))
    try:
        r = curl(vmm, port)
        check(r.returncode == 0, "curl through the identity rule: " + show(r))
        check(r.stdout == b"hello 127.0.0.1\n", "nginx answer: %r" % r.stdout)
        f = fields(read_log(log, 1)[0])
        pp_addr, pp_port = f["pp"].rsplit(":", 1)
        tcp_addr, tcp_port = f["tcp"].rsplit(":", 1)
        check(pp_addr == "127.0.0.1" and pp_port == tcp_port,
              "the header names the connection the host made: %r" % f)
        check(f["server"] == "127.0.0.1:%d" % port, "destination: %r" % f)
        check(f["status"] == "200", "served: %r" % f)
    finally:
        vmm.close()
    vmm = Vmm(policy([]))
    try:
        r = curl(vmm, port)
        check(r.returncode != 0, "without the header nginx refuses: " + show(r))
        check(len(read_log(log, 1)) == 1, "and logs no request")
    finally:
        vmm.close()
        stop(ng)


# ---- HAProxy -----------------------------------------------------------------

def test_haproxy():
    front, back = free_port(), free_port()
    d = tempfile.mkdtemp(prefix="haproxy.", dir=TMP)
    write(os.path.join(d, "index.html"), "served by http.server\n")
    web = spawn([PY, "-m", "http.server", str(back), "--bind", "127.0.0.1",
                 "--directory", d], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
    wait_port(back, web, "http.server")
    conf = write(os.path.join(d, "haproxy.cfg"), """
global
  log stdout format raw local0
defaults
  mode http
  log global
  timeout connect 5s
  timeout client 10s
  timeout server 10s
frontend fe
  bind 127.0.0.1:%d accept-proxy
  log-format "pp=%%ci:%%cp server=%%fi:%%fp status=%%ST"
  default_backend be
backend be
  server web 127.0.0.1:%d
""" % (front, back))
    hout = os.path.join(d, "haproxy.out")
    with open(hout, "wb") as hf:
        hap = spawn(["haproxy", "-f", conf, "-db"], stdout=hf, stderr=hf)
    wait_port(front, hap, "haproxy")
    vmm = Vmm(policy([front]))
    try:
        r = curl(vmm, front, "/index.html")
        check(r.returncode == 0, "curl through HAProxy: " + show(r))
        check(r.stdout == b"served by http.server\n", "answer: %r" % r.stdout)
        lines = [l for l in read_log(hout, 1) if l.startswith("pp=")]
        check(lines, "HAProxy logged the request: %r" % read_log(hout, 1))
        f = fields(lines[-1])
        check(f["pp"].startswith("127.0.0.1:") and f["status"] == "200" and
              f["server"] == "127.0.0.1:%d" % front, "HAProxy log: %r" % f)
    finally:
        vmm.close()
        stop(hap)
        stop(web)


# ---- the verifier ------------------------------------------------------------------

GUEST_SEND = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(bytes.fromhex(sys.argv[2]))
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
"""


GUEST_BIND_SEND = """
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))   # a specific address: decided now, as inbound
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(bytes.fromhex(sys.argv[2]))
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
"""


def guest_send(vmm, port, data, code=GUEST_SEND):
    prog = write(os.path.join(TMP, "send%d.py" % time.monotonic_ns()), code)
    r = run(vmm, [PY, prog, str(port), data.hex()])
    check(r.returncode == 0, "guest program: " + show(r))


def verify_file(header, key_path=KEY):
    path = os.path.join(TMP, "hdr%d.bin" % time.monotonic_ns())
    write(path, header)
    args = [PY, VERIFY, path] + (["--key", key_path] if key_path else [])
    r = subprocess.run(args, capture_output=True, timeout=30)
    return r.returncode, json.loads(r.stdout)


def test_verifier():
    port = free_port()
    v = verifier(port, 2)
    vmm = Vmm(policy([port]))
    try:
        guest_send(vmm, port, b"hello")
        guest_send(vmm, port, b"again")
    finally:
        vmm.close()
    (a, b), rc = verifier_results(v, 2)
    check(rc == 0, "both headers verify: %r %r" % (a, b))
    for res, data in ((a, b"hello"), (b, b"again")):
        check(res["hmac"] == "ok" and res["name"] == NAME and
              res["family"] == "tcp4" and res["dst_port"] == port and
              res["src"] == "127.0.0.1", "header: %r" % res)
        check(bytes.fromhex(res["data"]) == data, "then the data: %r" % res)
    check(a["unique_id"] != b["unique_id"] and len(a["unique_id"]) == 32,
          "a unique id per connection: %r %r" % (a, b))
    header = bytes.fromhex(a["header"])
    rc, res = verify_file(header)
    check(rc == 0 and res["hmac"] == "ok", "the stored header verifies")
    # Any byte changed (an address, the name, the id, the MAC) fails.
    for i in (17, 27, header.index(NAME.encode()), len(header) - 40,
              len(header) - 1):
        t = bytearray(header)
        t[i] ^= 0x01
        rc, res = verify_file(bytes(t))
        check(rc == 1 and res.get("hmac") in ("bad", None),
              "tampered byte %d must fail: %r" % (i, res))
    other = write(os.path.join(TMP, "other.key"), os.urandom(32), 0o600)
    rc, res = verify_file(header, other)
    check(rc == 1 and res["hmac"] == "bad", "another key fails: %r" % res)
    rc, res = verify_file(header, None)
    check(rc == 0 and res["hmac"] == "unchecked", "no key: parsed only")
    # Malformed headers are refused, not half-read.
    name_at = header.index(NAME.encode()) - 3
    name_tlv = header[name_at:name_at + 3 + len(NAME)]
    dup = bytearray(header[:name_at] + name_tlv + header[name_at:])
    dup[14:16] = struct.pack("!H", len(dup) - 16)
    bad = {"truncated": header[:-1],
           "version 1 command": header[:12] + b"\x11" + header[13:],
           "UDP family": header[:13] + b"\x12" + header[14:],
           "name twice": bytes(dup),
           "no signature": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"}
    for what, h in bad.items():
        rc, res = verify_file(h)
        check(rc == 1 and "error" in res, "%s must be refused: %r" % (what, res))


def test_bind_first():
    port = free_port()
    v = verifier(port, 1)
    vmm = Vmm(policy([port]))
    try:
        guest_send(vmm, port, b"bound first", GUEST_BIND_SEND)
        check("inbound tcp://127.0.0.1:0 offload" in vmm.text(),
              "the bind was decided first, as inbound: " + vmm.text())
    finally:
        vmm.close()
    (res,), rc = verifier_results(v, 1)
    check(rc == 0 and res["hmac"] == "ok" and res["name"] == NAME and
          bytes.fromhex(res["data"]) == b"bound first",
          "the connect's rule gave the header: %r" % res)


# ---- a guest forging its own header ------------------------------------------

def forged_header():
    body = (bytes([10, 0, 0, 66, 127, 0, 0, 1]) + struct.pack("!HH", 1234, 80)
            + bytes([0xE0, 0, 4]) + b"evil")
    return SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def test_forge():
    port = free_port()
    v = verifier(port, 1)
    vmm = Vmm(policy([port]))
    forged = forged_header()
    request = b"GET / HTTP/1.0\r\n\r\n"
    try:
        guest_send(vmm, port, forged + request)
    finally:
        vmm.close()
    (res,), rc = verifier_results(v, 1)
    check(rc == 0 and res["hmac"] == "ok" and res["name"] == NAME and
          res["src"] == "127.0.0.1", "the VMM's header comes first: %r" % res)
    check(bytes.fromhex(res["data"]) == forged + request,
          "the guest's header is data after it: %r" % res)
    # A real server: nginx takes the VMM's header; the guest's is the start
    # of its HTTP request, which nginx rejects as garbage.
    nport = free_port()
    ng, log, _ = start_nginx(nport)
    vmm = Vmm(policy([nport]))
    try:
        guest_send(vmm, nport, forged + request)
        f = fields(read_log(log, 1)[0])
        check(f["pp"].startswith("127.0.0.1:") and "10.0.0.66" not in f["pp"],
              "nginx uses the VMM's header: %r" % f)
        check(f["status"] == "400", "the forged header is a bad request: %r" % f)
    finally:
        vmm.close()
        stop(ng)


# ---- no identity configured --------------------------------------------------------

def test_refused():
    port = free_port()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4)
    ls.settimeout(0.5)
    # The udp backend does not declare HWSOCK_BACKEND_F_IDENTITY: a rule
    # routing TCP to it with identity is refused before it is even opened.
    routed = ("version: 1\nrules:\n  - action: offload\n    scheme: tcp\n"
              "    ports: %d\n    backend: udp\n    identity: proxy-v2\n"
              "  - action: offload\n" % port)
    cases = ((Vmm(policy([port]), identity=False), "has no identity"),
             (Vmm(routed, backends=("tcp", "udp")),
              "backend 'udp' cannot send an identity"))
    try:
        for vmm, why in cases:
            r = curl(vmm, port)
            check(r.returncode != 0, "the connection is refused: " + show(r))
            check(why in vmm.text(), "the VMM says why: " + vmm.text())
            try:
                c, _ = ls.accept()
                c.close()
                raise Fail("a connection reached the server without identity")
            except socket.timeout:
                pass
    finally:
        for vmm, _ in cases:
            vmm.close()
        ls.close()


# ---- hwsock-stat and the capture ------------------------------------------------------

GUEST_HOLD = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"payload")
s.recv(1)   # until the test's server closes
s.close()
"""


def pcap_first_payload(path, dport):
    """The first TCP payload sent to dport in a pcap (Ethernet, IPv4)."""
    with open(path, "rb") as f:
        data = f.read()
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack("<I", data[off + 8:off + 12])[0]
        fr = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(fr) < 34 or fr[12:14] != b"\x08\x00" or fr[23] != 6:
            continue
        ip = fr[14:]
        ihl = (ip[0] & 15) * 4
        tot = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[ihl:tot]
        if struct.unpack("!H", tcp[2:4])[0] != dport:
            continue
        payload = tcp[(tcp[12] >> 4) * 4:]
        if payload:
            return payload
    return None


def test_stat_capture():
    port = free_port()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4)
    got = {}

    def serve():
        c, _ = ls.accept()
        c.settimeout(10)
        buf = b""
        while len(buf) < 16 + 7 or len(buf) < 16 + struct.unpack(
                "!H", buf[14:16])[0] + 7:
            chunk = c.recv(4096)
            if not chunk:
                break
            buf += chunk
        got["data"] = buf
        got["conn"] = c

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    pcap = os.path.join(TMP, "flows.pcap")
    vmm = Vmm(policy([port]), pcap=pcap)
    prog = write(os.path.join(TMP, "hold.py"), GUEST_HOLD)
    guest = spawn([RUN, "--vmm", vmm.path, "--", PY, prog, str(port)],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        t.join(20)
        check("conn" in got, "the server got the connection")
        hdr_len = 16 + struct.unpack("!H", got["data"][14:16])[0]
        check(got["data"][:12] == SIG and got["data"][hdr_len:] == b"payload",
              "header, then the guest's bytes: %r" % got["data"])
        js = subprocess.run([STAT, "--vmm", vmm.path, "-j"],
                            capture_output=True, timeout=30)
        rows = [json.loads(l) for l in js.stdout.decode().splitlines() if l]
        mine = [r for r in rows if r["remote"] == "tcp://127.0.0.1:%d" % port]
        check(len(mine) == 1 and mine[0]["identity"] == "proxy-v2",
              "hwsock-stat -j shows the identity: %r" % rows)
        tab = subprocess.run([STAT, "--vmm", vmm.path], capture_output=True,
                             timeout=30).stdout.decode().splitlines()
        check(tab[0].split()[-1] == "Identity" and
              any(l.split()[-1] == "proxy-v2" and ":%d" % port in l
                  for l in tab[1:]), "the table's Identity column: %r" % tab)
        got["conn"].close()
        guest.wait(20)
        check(guest.returncode == 0, "guest: %r" % (guest.stderr.read(),))
    finally:
        stop(guest)
        vmm.close()
        ls.close()
    first = pcap_first_payload(pcap, port)
    check(first is not None and first == got["data"][:hdr_len],
          "the capture's first segment is the header: %r" % first)


def test_policy_cli():
    pf = write(os.path.join(TMP, "cli.yaml"), policy([443]))
    r = subprocess.run([POLICY_TOOL, "check", "--verbose", "--config", pf,
                        "tcp://127.0.0.1:443", "tcp://127.0.0.1:80"],
                       capture_output=True, timeout=30)
    out = r.stdout.decode().splitlines()
    check(r.returncode == 0 and len(out) == 2, "hwsock-policy: " + show(r))
    check(out[0].endswith("identity proxy-v2]"), "rule 1 asks: %r" % out)
    check("identity" not in out[1], "rule 2 does not: %r" % out)


TESTS = {"policy_cli": test_policy_cli, "nginx": test_nginx, "haproxy": test_haproxy,
         "verifier": test_verifier, "forge": test_forge,
         "refused": test_refused, "bind_first": test_bind_first, "stat_capture": test_stat_capture}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in TESTS:
        print("usage: servers_test.py {%s}" % "|".join(TESTS), file=sys.stderr)
        return 2
    needs = {"nginx": ["nginx", "curl"], "haproxy": ["haproxy", "curl"],
             "forge": ["nginx"], "refused": ["curl"]}
    try:
        for tool in needs.get(sys.argv[1], []):
            check(shutil.which(tool) is not None,
                  "%s is missing: scripts/deps installs it" % tool)
        TESTS[sys.argv[1]]()
        print("ok:", sys.argv[1])
        return 0
    except Fail as e:
        print("FAIL:", e, file=sys.stderr)
        return 1
    finally:
        for p in PROCS:
            stop(p)
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
