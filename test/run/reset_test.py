#!/usr/bin/env python3
"""hwsock-run names why the device stopped (hwsock_attach_reset_reason).

A fake VMM (reset_vmm) answers the first request of hwsock-run's guest
with NEEDS_RESET carrying a HWSOCK_RESET_* code, or hangs up. A python3
client under hwsock-run -v --vmm connects to 127.0.0.1 (the call never
reaches the host: the device fails at the socket's OPEN) and must see
ENETDOWN, as before; hwsock-run's log must name the code
("HWSOCK_RESET_CHAIN_LOOP"), or say that the VMM hung up without one.

Usage: reset_test.py needs_reset|hangup
Environment (test/run/tests.cmake): HWSOCK_RUN, HWSOCK_RESET_VMM. Every
wait is bounded."""
import errno
import os
import subprocess
import sys
import tempfile

RUN = os.environ["HWSOCK_RUN"]
FAKE = os.environ["HWSOCK_RESET_VMM"]
CHAIN_LOOP = 4  # HWSOCK_RESET_CHAIN_LOOP in hwsock/wire.h

CLIENT = r'''
import errno, socket
s = socket.socket()
try:
    s.connect(("127.0.0.1", 9))
    print("connected")
except OSError as e:
    print("errno", errno.errorcode.get(e.errno, e.errno))
'''


def main(mode):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "vmm.sock")
        arg = "hangup" if mode == "hangup" else str(CHAIN_LOOP)
        fake = subprocess.Popen([FAKE, path, arg], stdout=subprocess.PIPE,
                                text=True)
        try:
            if fake.stdout.readline().strip() != "ready":
                sys.exit("reset_vmm did not start")
            p = subprocess.run([RUN, "-v", "--vmm", path, "--", sys.executable,
                                "-c", CLIENT], capture_output=True, text=True,
                               timeout=60)
            fake.wait(timeout=30)
        finally:
            if fake.poll() is None:
                fake.kill()
                fake.wait()
    out, err = p.stdout.strip(), p.stderr
    print("client:", out)
    print("hwsock-run log:\n" + err)
    if out != "errno ENETDOWN":
        sys.exit("the client saw %r, expected errno ENETDOWN" % out)
    if fake.returncode != 0:
        sys.exit("reset_vmm failed (%d)" % fake.returncode)
    if mode == "hangup":
        want = "the VMM hung up without a NEEDS_RESET reason"
    else:
        want = "NEEDS_RESET (HWSOCK_RESET_CHAIN_LOOP, code 4)"
    if want not in err:
        sys.exit("hwsock-run's log does not say %r" % want)
    if err.count("device reset:") + err.count("device gone:") != 1:
        sys.exit("the reset is to be logged exactly once")
    print("ok")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("needs_reset", "hangup"):
        sys.exit("usage: reset_test.py needs_reset|hangup")
    main(sys.argv[1])
