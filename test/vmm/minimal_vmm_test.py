#!/usr/bin/env python3
"""examples/minimal-vmm end to end: the VMM with its own epoll loop (or
--thread: the device on its own thread) serves one guest (vmm_client),
which echoes 256 KiB through a TCP echo server on 127.0.0.1, every byte
checked; the VMM then exits 0 when the guest hangs up.

usage: minimal_vmm_test.py VMM CLIENT ECHO_SERVER BACKEND_DIR [--thread]"""
import os
import subprocess
import sys
import tempfile


def main():
    vmm, client, echo, backends = sys.argv[1:5]
    extra = sys.argv[5:]
    mods = [os.path.join(backends, m) for m in ("tcp.so", "udp.so")]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "vmm.sock")
        es = subprocess.Popen([sys.executable, echo], stdout=subprocess.PIPE,
                              text=True)
        v = None
        try:
            port = es.stdout.readline().strip()
            v = subprocess.Popen([vmm] + extra + [path] + mods,
                                 stdout=subprocess.PIPE, text=True)
            if v.stdout.readline().strip() != "listening":
                sys.exit("minimal-vmm did not start")
            c = subprocess.run([client, path, port, str(256 << 10)],
                               capture_output=True, text=True, timeout=120)
            print(c.stdout, c.stderr)
            if c.returncode != 0 or "ok" not in c.stdout:
                sys.exit("guest failed: %d" % c.returncode)
            rc = v.wait(timeout=60)
            if rc != 0:
                sys.exit("minimal-vmm exited %d" % rc)
            v = None
        finally:
            if v is not None:
                v.kill()
                v.wait()
            es.kill()
            es.wait()
    print("passed")


if __name__ == "__main__":
    main()
