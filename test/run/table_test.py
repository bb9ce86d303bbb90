#!/usr/bin/env python3
"""hwsock-run --table PATH: the guest-side socket table in a file.

A python3 client under hwsock-run --table connects to a TCP echo server of
this test (127.0.0.1, host side), exchanges a few bytes and, while still
connected, reads the file named by $HWSOCK_TABLE: a row of its connection
must name the server as peer (tcp://127.0.0.1:PORT), its own address as
getsockname() reports it, and the state ESTAB. After close(), the row must
leave the file (a state change is written within RUN_TABLE_POLL_MS), and
the file must never be seen half written (every read has the header and
whole rows). The --table path is given relative, so HWSOCK_TABLE must be
absolute.

Environment (test/run/tests.cmake): HWSOCK_RUN, HWSOCK_VMM, HWSOCK_BACKENDS.
Every wait is bounded."""
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

RUN = os.environ["HWSOCK_RUN"]
VMM = os.environ["HWSOCK_VMM"]
BACKENDS = os.environ["HWSOCK_BACKENDS"]

CLIENT = r'''
import os, socket, sys, time
path = os.environ.get("HWSOCK_TABLE", "")
if not os.path.isabs(path):
    sys.exit("HWSOCK_TABLE is not an absolute path: %r" % path)
port = int(sys.argv[1])
HEADER = "Id    Netid State"

def read_table():
    with open(path) as f:
        text = f.read()
    lines = text.split("\n")
    # never half a file: the header, whole rows, a final newline
    if not text.startswith(HEADER) or not text.endswith("\n"):
        sys.exit("half a table: %r" % text)
    for l in lines[1:-1]:
        if len(l.split()) != 8:
            sys.exit("broken row %r in %r" % (l, text))
    return [l.split() for l in lines[1:-1]]

def wait_for(pred, what, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            rows = read_table()
        except FileNotFoundError:
            rows = None
        if rows is not None and pred(rows):
            return rows
        time.sleep(0.02)
    sys.exit("timed out waiting for %s; table: %r" % (what, rows))

s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"hello table")
got = b""
while len(got) < 11:
    got += s.recv(100)
assert got == b"hello table", got
peer = "tcp://127.0.0.1:%d" % port
lh, lp = s.getsockname()[:2]
local = "tcp://%s:%d" % (lh, lp)
# the row comes with the connect; its local name once the driver learnt it
# (the getsockname above): the file may be one poll behind
rows = wait_for(lambda rows: any(r[4] == peer and r[3] != "*" for r in rows),
                "the connection's row")
row = [r for r in rows if r[4] == peer][0]
if row[1] != "tcp" or row[2] != "ESTAB" or row[3] != local:
    sys.exit("row %r: expected tcp ESTAB %s -> %s" % (row, local, peer))
print("row", " ".join(row), flush=True)
s.close()
wait_for(lambda rows: not any(r[4] == peer for r in rows),
         "the row to go after close")
print("gone", flush=True)
'''


class Echo:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.echo, args=(c,), daemon=True).start()

    def echo(self, c):
        with c:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                c.sendall(d)


def start_vmm(tmp):
    path = os.path.join(tmp, "vmm.sock")
    r, w = os.pipe()
    args = [VMM, "--listen", path, "--ready-fd", str(w), "--backend-dir", "",
            "--mem", "16"]
    for b in ("tcp", "udp"):
        args += ["--backend", os.path.join(BACKENDS, b + ".so")]
    p = subprocess.Popen(args, pass_fds=(w,))
    os.close(w)
    with os.fdopen(r, "rb") as rf:
        ok, _, _ = select.select([rf], [], [], 15)
        if not ok or rf.readline() != b"ready\n":
            p.kill()
            raise SystemExit("hwsock-vmm did not become ready")
    return p, path


def planted_links(tmp, vpath):
    """A symlink planted where hwsock-run writes (its temp file's old name,
    PATH.tmp<pid>, and PATH itself) must never lead it to write through the
    link: the link's target stays as it was. Returns an error or None."""
    d = os.path.join(tmp, "links")
    os.mkdir(d)
    precious = os.path.join(d, "precious")
    with open(precious, "w") as f:
        f.write("precious\n")
    # exec keeps the pid: $$ is hwsock-run's own pid
    script = ('ln -s precious tmpname.txt.tmp$$ && ln -s precious path.txt '
              '&& exec "$0" --vmm "$1" --table tmpname.txt -- true && exit 9')
    for table, cmd in (
            ("tmpname.txt", ["sh", "-c", script, RUN, vpath]),
            ("path.txt", [RUN, "--vmm", vpath, "--table", "path.txt", "--",
                          "true"])):
        r = subprocess.run(cmd, capture_output=True, timeout=60, cwd=d)
        if r.returncode != 0:
            return "%s: exit %d: %s" % (table, r.returncode,
                                        r.stderr.decode(errors="replace"))
        with open(precious) as f:
            got = f.read()
        if got != "precious\n":
            return "%s: the symlink's target was written: %r" % (table, got)
        t = os.path.join(d, table)
        if os.path.islink(t) or not open(t).read().startswith("Id "):
            return "%s: no table written at PATH" % table
    return None


def main():
    tmp = tempfile.mkdtemp(prefix="hwsock-run-table.")
    vmm, vpath = start_vmm(tmp)
    try:
        echo = Echo()
        prog = os.path.join(tmp, "client.py")
        with open(prog, "w") as f:
            f.write(CLIENT)
        r = subprocess.run([RUN, "-v", "--vmm", vpath, "--table", "table.txt",
                            "--", sys.executable, prog, str(echo.port)],
                           capture_output=True, timeout=60, cwd=tmp)
        out = r.stdout.decode()
        err = r.stderr.decode(errors="replace")
        if r.returncode != 0 or "gone" not in out:
            print("FAIL: exit %d\nstdout: %s\nstderr: %s" %
                  (r.returncode, out, err))
            return 1
        if "offload: fd" not in err:
            print("FAIL: the connection was not offloaded:\n" + err)
            return 1
        table = os.path.join(tmp, "table.txt")
        if not os.path.exists(table) or \
                not open(table).read().startswith("Id "):
            print("FAIL: no table left at exit in " + table)
            return 1
        leftovers = [n for n in os.listdir(tmp) if ".tmp" in n]
        if leftovers:
            print("FAIL: temp files left: %r" % leftovers)
            return 1
        err = planted_links(tmp, vpath)
        if err:
            print("FAIL: " + err)
            return 1
        print(out.strip())
        print("PASS")
        return 0
    finally:
        vmm.terminate()
        try:
            vmm.wait(5)
        except subprocess.TimeoutExpired:
            vmm.kill()
            vmm.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
