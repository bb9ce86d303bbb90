#!/usr/bin/env python3
"""Smoke boot: real QEMU 7.2 against hwsock-vhost-user, twice.

  qemu_smoke.py --vhost BIN --stat BIN [--build-dir DIR]

Boots the installed Debian kernel (TCG, no network device) with
vhost-user-vsock-pci on the back-end's socket. The guest loads the STOCK
vsock transport (vmw_vsock_virtio_transport), which binds the carrier and
fills its rings with buffers that are garbage to the device: the device must
answer them with error completions, never crash. Checked:
  * QEMU accepts the back-end (CONFIG, features) and the guest runs to the end;
  * the message sequence completes: the device runs (back-end log) and
    hwsock-stat sees the guest and its counters through --control;
  * QEMU going away resets the device, and a second QEMU is served by the
    same back-end process;
  * the back-end exits 0 on SIGTERM with no sanitizer report.
Exit 77 (skipped) when QEMU or the kernel is not installed (scripts/deps
--guest installs them). The kernel, vmlinux and cpio helpers are those of
test/guest-linux/run (loaded from it, not copied).
"""
import argparse
import importlib.machinery
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VSOCK_MODS = ["vsock", "vmw_vsock_virtio_transport_common",
              "vmw_vsock_virtio_transport"]
SKIP = 77


BACKEND_LOG = None  # the back-end's log file, shown on failure


def fail(msg):
    if BACKEND_LOG is not None:
        BACKEND_LOG.seek(0)
        sys.stderr.write("--- hwsock-vhost-user log ---\n" + BACKEND_LOG.read())
    print(f"qemu_smoke: FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def load_guest_linux():
    path = os.path.join(ROOT, "test", "guest-linux", "run")
    loader = importlib.machinery.SourceFileLoader("guest_linux_run", path)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


INIT = r"""#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
for m in %(mods)s; do insmod /lib/modules/$m.ko || echo "SMOKE insmod-$m failed"; done
i=0
while [ $i -lt 50 ] && [ ! -e /sys/bus/virtio/drivers/vmw_vsock_virtio_transport/virtio0 ]; do
  sleep 0.1; i=$((i+1))
done
ls /sys/bus/virtio/drivers/vmw_vsock_virtio_transport/ | grep -q virtio && echo "SMOKE bound"
sleep %(hold)s
echo "SMOKE-DONE"
poweroff -f
"""


def make_initramfs(gl, kver, path, hold):
    c = gl.Cpio()
    for d in ("bin", "dev", "proc", "sys", "lib", "lib/modules"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.file("bin/busybox", open("/bin/busybox", "rb").read(), 0o755)
    c.symlink("bin/sh", "busybox")
    mods = gl.VIRTIO_MODS + VSOCK_MODS
    kdir = f"/lib/modules/{kver}/kernel"
    for m in mods:
        found = [os.path.join(r, f) for r, _, fs in os.walk(kdir) for f in fs
                 if f == m + ".ko"]
        if not found:
            fail(f"module {m}.ko not found under {kdir}")
        c.file(f"lib/modules/{m}.ko", open(found[0], "rb").read())
    c.file("init", (INIT % {"mods": " ".join(mods), "hold": hold}).encode(),
           0o755)
    with open(path, "wb") as f:
        f.write(c.bytes())


def stat(args, ctl, *opts):
    r = subprocess.run([args.stat, "--control", ctl, "-j", *opts],
                       capture_output=True, text=True, timeout=10)
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


def boot(args, vmlinux, initrd, sock, ctl, n):
    qemu = ["qemu-system-x86_64", "-accel", "tcg", "-m", "256",
            "-nodefaults", "-display", "none", "-serial", "stdio",
            "-no-reboot", "-nic", "none",
            "-object", "memory-backend-memfd,id=mem,size=256M,share=on",
            "-machine", "q35,memory-backend=mem",
            "-chardev", f"socket,id=vu,path={sock}",
            "-device", "vhost-user-vsock-pci,chardev=vu,vectors=4",
            "-kernel", vmlinux, "-initrd", initrd,
            "-append", "console=ttyS0 quiet loglevel=4 panic=-1"]
    out = tempfile.TemporaryFile()
    q = subprocess.Popen(qemu, stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT)
    # While the guest runs: the control socket shows it and its counters.
    seen = None
    deadline = time.monotonic() + 120
    while q.poll() is None and time.monotonic() < deadline:
        guests = stat(args, ctl, "--counters")
        if guests and guests[0].get("requests", 0) > 0:
            seen = guests[0]
            break
        time.sleep(0.2)
    try:
        q.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        q.kill()
        q.wait()
        fail(f"boot {n}: QEMU did not finish")
    out.seek(0)
    text = out.read().decode(errors="replace")
    if "SMOKE-DONE" not in text or "SMOKE bound" not in text:
        sys.stderr.write(text)
        fail(f"boot {n}: the guest did not bind the carrier and finish")
    if seen is None:
        sys.stderr.write(text)
        fail(f"boot {n}: hwsock-stat never saw the device take requests")
    print(f"qemu_smoke: boot {n}: guest bound the carrier; device counters: "
          f"requests {seen['requests']} errors {seen.get('errors')} "
          f"bad_requests {seen.get('bad_requests')}", flush=True)
    return seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vhost", required=True)
    ap.add_argument("--stat", required=True)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build",
                                                         "vhost-smoke"))
    args = ap.parse_args()
    if shutil.which("qemu-system-x86_64") is None:
        print("qemu_smoke: qemu-system-x86_64 missing (scripts/deps --guest)")
        return SKIP
    gl = load_guest_linux()
    try:
        kver = gl.find_kernel()
    except SystemExit as e:
        print(f"qemu_smoke: {e}")
        return SKIP
    os.makedirs(args.build_dir, exist_ok=True)
    vmlinux = gl.unpack_vmlinux(kver, args.build_dir)
    tmp = tempfile.mkdtemp(prefix="hwsock-vu-smoke-")
    be = None
    try:
        initrd = os.path.join(tmp, "initrd.cpio")
        make_initramfs(gl, kver, initrd, 1)
        sock, ctl = os.path.join(tmp, "vu.sock"), os.path.join(tmp, "vu.ctl")
        global BACKEND_LOG
        log = BACKEND_LOG = open(os.path.join(tmp, "backend.log"), "w+")
        rfd, wfd = os.pipe()
        be = subprocess.Popen([args.vhost, "--socket", sock, "--control", ctl,
                               "--ready-fd", str(wfd), "-v"],
                              pass_fds=(wfd,), stdout=subprocess.DEVNULL,
                              stderr=log)
        os.close(wfd)
        with os.fdopen(rfd) as r:
            if r.readline().strip() != "ready":
                fail("hwsock-vhost-user did not start")
        first = boot(args, vmlinux, initrd, sock, ctl, 1)
        second = boot(args, vmlinux, initrd, sock, ctl, 2)
        if be.poll() is not None:
            fail(f"the back-end exited ({be.returncode})")
        be.send_signal(signal.SIGTERM)
        rc = be.wait(timeout=30)
        log.seek(0)
        text = log.read()
        for needle in ("front-end 1: device running",
                       "front-end 2: device running", "front-end 1: gone"):
            if needle not in text:
                sys.stderr.write(text)
                fail(f"back-end log lacks '{needle}'")
        if rc != 0 or "Sanitizer" in text or "runtime error" in text:
            sys.stderr.write(text)
            fail(f"back-end exit status {rc} or a sanitizer report")
        # The stock driver's buffers are not requests: error completions.
        if first.get("errors", 0) == 0 or second.get("errors", 0) == 0:
            fail("the stock driver's garbage got no error completions")
        print("qemu_smoke: 2 boots passed", flush=True)
        return 0
    finally:
        if be is not None and be.poll() is None:
            be.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
