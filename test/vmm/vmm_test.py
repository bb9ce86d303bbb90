#!/usr/bin/env python3
"""End-to-end scenarios of the loopback VMM (hwsock-vmm) with real guest
processes (vmm_client) and a real TCP echo server on 127.0.0.1.

  two_guests   two guests attached at once both echo their bytes
  kill_guest   a guest killed (-9) mid-transfer is cleaned up: the VMM's
               open fds return to their count before it attached, and a
               new guest is served
  kill_vmm     the VMM killed (-9) mid-transfer: the guest exits promptly
               with ECONNRESET/EPIPE instead of hanging
  policy_deny  a policy denying one port: connect fails with EACCES, while
               another loopback port still works
  bad_guests   raw protocol clients sending garbage, messages out of order,
               a wrong version or descriptors are dropped (or get an error
               status for a request the device refuses); the VMM's fd count
               returns to its start and a real guest is still served
  max_guests   with --max-guests 1 a second guest is refused with EBUSY
  needs_reset  a guest that breaks its ring gets NEEDS_RESET; RESET and a
               fresh setup bring the device back; the VMM serves on
  pcap_files   --pcap never follows a planted symlink nor truncates an
               existing file: the VMM refuses to start, the target keeps
               its content; a fresh path is created with mode 0600
  fd_quota     under a low fd limit, a guest hogging host sockets stops at
               its quota with EMFILE and a log line naming the option;
               meanwhile another guest connects, a new one attaches, and the
               VMM stays idle (CPU time, stderr size)
  fd_backoff   quotas set above the fd limit: a guest exhausts the VMM's
               fds; a guest's pending ACCEPT and a new attach wait (backing
               off, rate-limited logs, low CPU) and both complete once the
               hog lets go
  flood        guest A keeps its queue full of cheap requests while guest B
               does request/response: B keeps 90% of the rate it has alone
               (B alone and B under flood measured in turn, up to 5
               rounds); fails when B is starved (median below 0.3, as
               before the per-turn budget), skips between the two or when
               the machine is too busy to measure
  socket_mode  under umask 000 the guest and control sockets are 0600 and
               user nobody cannot connect; --socket-mode 0660
               --socket-group nogroup is applied to both; -v logs the
               peer's pid, uid and gid at attach

Every wait is bounded; a scenario fails with a message saying what it
waited for."""
import argparse
import errno
import mmap
import resource
import os
import select
import shutil
import socket
import struct
import signal
import subprocess
import sys
import tempfile
import time

WAIT = 15.0  # seconds for any single expected event


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def wait_until(pred, what, timeout=WAIT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise Failure("timed out waiting for " + what)


def readline_within(f, timeout, what):
    """One line from a pipe, or Failure after timeout seconds."""
    end = time.monotonic() + timeout
    buf = b""
    fd = f.fileno()
    while not buf.endswith(b"\n"):
        left = end - time.monotonic()
        if left <= 0:
            raise Failure("timed out waiting for " + what)
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        b = os.read(fd, 1)
        if not b:
            raise Failure("EOF while waiting for " + what)
        buf += b
    return buf.decode()


class Env:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="hwsock-vmm-test-")
        self.sock = os.path.join(self.dir, "vmm.sock")
        self.procs = []
        self.vmm = None
        self.vmm_log = os.path.join(self.dir, "vmm.log")

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def echo_server(self):
        p = self.spawn([sys.executable, self.args.echo],
                       stdout=subprocess.PIPE)
        return int(readline_within(p.stdout, WAIT, "the echo server's port"))

    def start_vmm(self, *extra, nofile=None):
        """nofile: the VMM's RLIMIT_NOFILE (soft and hard), else ours."""
        r, w = os.pipe()
        log = open(self.vmm_log, "ab")
        argv = [self.args.vmm, "--listen", self.sock, "--ready-fd", str(w),
                "-v", "--mem", "16", *extra]
        pre = None
        if nofile is not None:
            def pre():
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.vmm = self.spawn(argv, pass_fds=(w,), stderr=log,
                              preexec_fn=pre)
        os.close(w)
        log.close()
        with os.fdopen(r, "rb") as rf:
            line = readline_within(rf, WAIT, "hwsock-vmm --ready-fd")
            check(line == "ready\n", "ready fd said %r" % line)
            # The VMM closes the fd after writing: wait for that, so that
            # fd counts taken from now on are stable.
            try:
                readline_within(rf, WAIT, "the ready fd to close")
            except Failure as e:
                check(str(e).startswith("EOF"), str(e))
        return self.vmm

    def vmm_stderr(self):
        with open(self.vmm_log, errors="replace") as f:
            return f.read()

    def vmm_fds(self):
        return len(os.listdir("/proc/%d/fd" % self.vmm.pid))

    def client(self, port, nbytes, chunk=32768, delay_ms=0):
        argv = [self.args.client, self.sock, str(port), str(nbytes),
                str(chunk), str(delay_ms)]
        return self.spawn(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)

    def finish(self, p, what, timeout=WAIT):
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            raise Failure("%s did not exit within %ss (hang)\nstderr: %s" %
                          (what, timeout, (err or b"").decode(errors="replace")))
        return (p.returncode, (out or b"").decode(),
                (err or b"").decode(errors="replace"))

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for s in (p.stdout, p.stderr):
                if s:
                    s.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def expect_ok(env, p, nbytes, what):
    rc, out, err = env.finish(p, what)
    check(rc == 0 and out.endswith("ok %d\n" % nbytes),
          "%s: exit %d, stdout tail %r, stderr %r" % (what, rc, out[-60:], err))


def two_guests(env):
    port = env.echo_server()
    env.start_vmm()
    n = 4 << 20
    a = env.client(port, n)
    b = env.client(port, n)
    expect_ok(env, a, n, "guest A")
    expect_ok(env, b, n, "guest B")
    log = env.vmm_stderr()
    check(log.count(": attached") >= 2, "VMM logged fewer than 2 attaches:\n" + log)
    check("offload" in log, "VMM -v did not log the offload verdict:\n" + log)
    # Both guests gone: the VMM stops cleanly on SIGTERM.
    env.vmm.send_signal(signal.SIGTERM)
    rc, _, _ = env.finish(env.vmm, "hwsock-vmm after SIGTERM")
    check(rc == 0, "hwsock-vmm exit %d after SIGTERM:\n%s" % (rc, env.vmm_stderr()))
    check(not os.path.exists(env.sock), "socket file left after SIGTERM")


def polling(env):
    # Adaptive polling in the VMM (--poll-us) changes when the device looks
    # at the queues, never what it does: two guests still transfer exactly.
    port = env.echo_server()
    env.start_vmm("--poll-us", "200", "--max-sockets", "64")
    n = 2 << 20
    a = env.client(port, n, chunk=1000)
    b = env.client(port, n)
    expect_ok(env, a, n, "guest A (polling VMM)")
    expect_ok(env, b, n, "guest B (polling VMM)")


def kill_guest(env):
    port = env.echo_server()
    env.start_vmm()
    base = env.vmm_fds()
    victim = env.client(port, 1 << 30, 16384, 20)  # slow, never finishes
    readline_within(victim.stdout, WAIT, "the victim's first progress")
    readline_within(victim.stdout, WAIT, "the victim's second progress")
    check(env.vmm_fds() > base, "attached guest holds no fds in the VMM?")
    victim.kill()
    victim.wait()
    wait_until(lambda: "detached" in env.vmm_stderr(), "the VMM to log the detach")
    wait_until(lambda: env.vmm_fds() == base,
               "the VMM's fd count to return to %d (now %d)" % (base, env.vmm_fds()))
    n = 1 << 20
    expect_ok(env, env.client(port, n), n, "the guest after the killed one")
    wait_until(lambda: env.vmm_fds() == base,
               "the fd count to return to %d after the second guest" % base)
    check(env.vmm.poll() is None, "hwsock-vmm died")


def kill_vmm(env):
    port = env.echo_server()
    env.start_vmm()
    c = env.client(port, 1 << 30, 16384, 20)
    readline_within(c.stdout, WAIT, "the guest's first progress")
    env.vmm.kill()
    env.vmm.wait()
    rc, _, err = env.finish(c, "the guest after the VMM was killed", 10)
    check(rc == 4, "guest exit %d (want 4, a transfer error): %s" % (rc, err))
    check("HWSOCK_ECONNRESET" in err or "HWSOCK_EPIPE" in err,
          "guest error is not ECONNRESET/EPIPE: %r" % err)


def policy_deny(env):
    denied = env.echo_server()
    allowed = env.echo_server()
    with open(env.args.policy) as f:
        text = f.read().replace("@DENIED_PORT@", str(denied))
    policy = os.path.join(env.dir, "policy.yaml")
    with open(policy, "w") as f:
        f.write(text)
    env.start_vmm("--policy", policy)
    rc, _, err = env.finish(env.client(denied, 1024), "the denied guest")
    check(rc == 3 and "HWSOCK_EACCES" in err,
          "connect to the denied port: exit %d, %r" % (rc, err))
    n = 256 << 10
    expect_ok(env, env.client(allowed, n), n, "the guest on an allowed port")
    log = env.vmm_stderr()
    check("deny" in log and ":%d" % denied in log,
          "VMM -v did not log the deny verdict:\n" + log)


# ---- raw loopback protocol clients (hwsock/loopback.h) -------------------

HELLO, FEATURES, QUEUE, START, RESET, NEEDS_RESET = 1, 2, 3, 4, 5, 6
RESET_HEAD_INDEX = 2  # NEEDS_RESET's a: the ring fault (PROTOCOL.md 2.8)
F_VERSION_1 = 1 << 32
LB_VERSION = 1
EPROTO, EINVAL, EBUSY = 71, 22, 16
MSG = struct.Struct("<II5Q64s2Q")  # type status a b c d e config reserved
assert MSG.size == 128


def lb_msg(mtype, a=0, b=0, c=0, d=0, e=0):
    return MSG.pack(mtype, 0, a, b, c, d, e, bytes(64), 0, 0)


def raw_guest(env):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(WAIT)
    s.connect(env.sock)
    return s


def recv_reply(s, want_type):
    data, fds, _, _ = socket.recv_fds(s, 256, 64)
    check(len(data) == MSG.size, "reply of %d bytes" % len(data))
    f = MSG.unpack(data)
    check(f[0] == want_type, "reply type %d, want %d" % (f[0], want_type))
    return f, fds


def expect_hangup(s, what):
    """The VMM drops the connection (replies before that are skipped)."""
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(s, 256, 64)
        except ConnectionResetError:
            break
        except socket.timeout:
            raise Failure("the VMM did not drop " + what)
        for fd in fds:
            os.close(fd)
        if not data:
            break
    s.close()


def hello(s):
    s.send(lb_msg(HELLO, LB_VERSION))
    f, fds = recv_reply(s, HELLO)
    check(f[1] == 0, "HELLO status %d" % f[1])
    return f, fds


def bad_guests(env):
    port = env.echo_server()
    env.start_vmm()
    base = env.vmm_fds()

    s = raw_guest(env)
    s.send(b"x" * 10)
    expect_hangup(s, "a 10-byte message")

    s = raw_guest(env)
    s.send(lb_msg(FEATURES, 1 << 32))
    expect_hangup(s, "FEATURES before HELLO")

    s = raw_guest(env)
    s.send(lb_msg(HELLO, 99))
    f, fds = recv_reply(s, HELLO)
    check(f[1] == EPROTO and not fds, "HELLO v99: status %d, %d fds" % (f[1], len(fds)))
    expect_hangup(s, "a HELLO of version 99")

    # A well-formed HELLO: the reply describes the memory and the queues.
    s = raw_guest(env)
    f, fds = hello(s)
    try:
        check(f[2] == 16 << 20 and f[3] == 0x100000000 and f[4] == 1,
              "HELLO reply a/b/c = %#x/%#x/%d" % (f[2], f[3], f[4]))
        check(len(fds) == 3, "HELLO reply carried %d fds, want 3" % len(fds))
        check(os.fstat(fds[0]).st_size == 16 << 20, "memfd size")
        # Refused requests get an error status and the guest stays...
        s.send(lb_msg(FEATURES, 1 << 63))
        f, _ = recv_reply(s, FEATURES)
        check(f[1] == EINVAL, "FEATURES with unknown bits: status %d" % f[1])
        s.send(lb_msg(QUEUE, 0, 256, 0x1000, 0x2000, 0x3000))
        f, _ = recv_reply(s, QUEUE)
        check(f[1] != 0, "QUEUE outside guest memory was accepted")
        s.send(lb_msg(START))
        f, _ = recv_reply(s, START)
        check(f[1] == EINVAL, "START without setup: status %d" % f[1])
        # ...but a message carrying descriptors ends it.
        socket.send_fds(s, [lb_msg(RESET)], [fds[1]])
        expect_hangup(s, "a message with an fd")
    finally:
        for fd in fds:
            os.close(fd)

    s = raw_guest(env)
    for fd in hello(s)[1]:
        os.close(fd)
    s.send(lb_msg(77))
    expect_hangup(s, "an unknown message type")

    wait_until(lambda: env.vmm_fds() == base,
               "the VMM's fd count to return to %d (now %d)" % (base, env.vmm_fds()))
    n = 256 << 10
    expect_ok(env, env.client(port, n), n, "a guest after the bad ones")
    log = env.vmm_stderr()
    for what in ("bad message", "before HELLO", "unsupported protocol version",
                 "unknown message type"):
        check(what in log, "VMM did not log %r:\n%s" % (what, log))


def max_guests(env):
    port = env.echo_server()
    env.start_vmm("--max-guests", "1")
    s = raw_guest(env)
    _, fds = hello(s)
    for fd in fds:
        os.close(fd)
    rc, _, err = env.finish(env.client(port, 1024), "the guest over the limit")
    check(rc == 2 and "HWSOCK_EBUSY" in err,
          "second guest: exit %d, %r" % (rc, err))
    s.close()
    n = 64 << 10
    wait_until(lambda: "detached" in env.vmm_stderr(), "the first guest's detach")
    expect_ok(env, env.client(port, n), n, "a guest once there is room")


def setup_queue(s, gpa, size):
    """FEATURES, QUEUE 0 (desc, avail, used a page apart), START."""
    for m, t in ((lb_msg(FEATURES, F_VERSION_1), FEATURES),
                 (lb_msg(QUEUE, 0, size, gpa, gpa + 4096, gpa + 8192), QUEUE),
                 (lb_msg(START), START)):
        s.send(m)
        f, _ = recv_reply(s, t)
        check(f[1] == 0, "setup message %d: status %d" % (t, f[1]))


def needs_reset(env):
    port = env.echo_server()
    env.start_vmm()
    s = raw_guest(env)
    f, fds = hello(s)
    memfd, kick = fds[0], fds[1]
    size, gpa = f[2], f[3]
    mem = mmap.mmap(memfd, size)
    try:
        setup_queue(s, gpa, 16)
        # One available entry naming descriptor 200 of a 16-entry table.
        struct.pack_into("<HHH", mem, 4096, 0, 1, 200)
        os.write(kick, struct.pack("<Q", 1))
        f, _ = recv_reply(s, NEEDS_RESET)
        check(f[2] == RESET_HEAD_INDEX,
              "NEEDS_RESET a = %d, want HWSOCK_RESET_HEAD_INDEX" % f[2])
        s.send(lb_msg(RESET))
        f, _ = recv_reply(s, RESET)
        check(f[1] == 0, "RESET status %d" % f[1])
        mem[0:16384] = bytes(16384)
        setup_queue(s, gpa, 16)  # the device accepts a new setup
    finally:
        mem.close()
        for fd in fds:
            os.close(fd)
    s.close()
    log = env.vmm_stderr()
    check("needs reset" in log, "VMM did not log the reset:\n" + log)
    n = 64 << 10
    expect_ok(env, env.client(port, n), n, "a guest after the broken one")


def vmm_refused(env, what, *extra):
    """hwsock-vmm with these options must exit non-zero before it is ready.
    Returns its stderr."""
    r, w = os.pipe()
    p = env.spawn([env.args.vmm, "--listen", env.sock, "--ready-fd", str(w),
                   "--control", "", *extra], pass_fds=(w,),
                  stderr=subprocess.PIPE)
    os.close(w)
    rc, _, err = env.finish(p, what)
    with os.fdopen(r, "rb") as rf:
        said = rf.read()
    check(rc != 0 and said == b"",
          "%s: exit %d, ready fd said %r, stderr %r" % (what, rc, said, err))
    return err


def pcap_files(env):
    secret = b"precious content, not a pcap\n"
    target = os.path.join(env.dir, "target")
    with open(target, "wb") as f:
        f.write(secret)
    link = os.path.join(env.dir, "planted.pcap")
    os.symlink(target, link)
    err = vmm_refused(env, "hwsock-vmm --pcap on a planted symlink",
                      "--pcap", link)
    check("--pcap" in err and "exists" in err,
          "the refusal does not name --pcap and the existing file: %r" % err)
    with open(target, "rb") as f:
        check(f.read() == secret, "the symlink's target was changed")
    check(os.path.islink(link), "the planted symlink was removed")

    existing = os.path.join(env.dir, "old.pcap")
    with open(existing, "wb") as f:
        f.write(secret)
    vmm_refused(env, "hwsock-vmm --pcap on an existing file", "--pcap",
                existing)
    with open(existing, "rb") as f:
        check(f.read() == secret, "an existing --pcap file was changed")

    # A fresh path is created, private to the VMM's user whatever the umask.
    fresh = os.path.join(env.dir, "fresh.pcap")
    old = os.umask(0)
    try:
        env.start_vmm("--pcap", fresh)
    finally:
        os.umask(old)
    mode = os.stat(fresh).st_mode & 0o777
    check(mode == 0o600, "fresh --pcap file has mode %o, want 600" % mode)
    env.vmm.send_signal(signal.SIGTERM)
    rc, _, _ = env.finish(env.vmm, "hwsock-vmm after SIGTERM")
    check(rc == 0, "hwsock-vmm exit %d" % rc)
    with open(fresh, "rb") as f:
        magic = f.read(4)
    check(magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"),
          "the fresh capture is not a pcap file: %r" % magic)


NOBODY = 65534


def connect_as_nobody(path):
    """Forks a child that drops to uid/gid 65534 and connects to path.
    Returns the errno it met (0: connected)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                s.connect(path)
            except OSError as e:
                code = e.errno or 255
            os.write(w, b"%d\n" % code)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as rf:
        said = rf.read()
    os.waitpid(pid, 0)
    check(said.strip().isdigit(), "the nobody child said %r" % said)
    return int(said)


def socket_mode(env):
    if os.geteuid() != 0:
        print("SKIP: socket_mode needs root (setuid to nobody, chgrp)")
        sys.exit(77)
    # The test's directory is reachable by everyone, so that only the
    # socket's own mode keeps nobody out.
    os.chmod(env.dir, 0o755)
    ctl = env.sock + ".ctl"
    old = os.umask(0)
    try:
        env.start_vmm()
    finally:
        os.umask(old)
    for path in (env.sock, ctl):
        mode = os.stat(path).st_mode & 0o7777
        check(mode == 0o600, "%s has mode %o under umask 000, want 600" %
              (os.path.basename(path), mode))
    e = connect_as_nobody(env.sock)
    check(e == errno.EACCES,
          "user nobody connecting to the default socket: errno %d" % e)
    # A guest of ours attaches; -v names its credentials.
    port = env.echo_server()
    n = 64 << 10
    c = env.client(port, n)
    expect_ok(env, c, n, "a guest of the VMM's user")
    log = env.vmm_stderr()
    want = "(pid %d, uid %d, gid %d" % (c.pid, os.getuid(), os.getgid())
    check(want in log, "the attach log lacks %r:\n%s" % (want, log))
    env.vmm.send_signal(signal.SIGTERM)
    env.finish(env.vmm, "hwsock-vmm after SIGTERM")

    old = os.umask(0o077)
    try:
        env.start_vmm("--socket-mode", "0660", "--socket-group", "nogroup")
    finally:
        os.umask(old)
    for path in (env.sock, ctl):
        st = os.stat(path)
        check(st.st_mode & 0o7777 == 0o660 and st.st_gid == NOBODY,
              "%s: mode %o gid %d, want 660 and gid %d" %
              (os.path.basename(path), st.st_mode & 0o7777, st.st_gid,
               NOBODY))
    # The group may connect now (nobody's primary group is nogroup).
    e = connect_as_nobody(env.sock)
    check(e == 0, "a member of --socket-group could not connect: errno %d" % e)
    env.vmm.send_signal(signal.SIGTERM)
    env.finish(env.vmm, "hwsock-vmm after SIGTERM")

    err = vmm_refused(env, "--socket-mode 0999", "--socket-mode", "0999")
    check("--socket-mode" in err, "bad --socket-mode: %r" % err)
    err = vmm_refused(env, "an unknown --socket-group", "--socket-group",
                      "no-such-group-hwsock")
    check("--socket-group" in err, "bad --socket-group: %r" % err)


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_over(env, seconds, what):
    """The VMM's CPU time over `seconds` of wall time stays under half of
    it (a behaviour bound: a spinning loop takes all of it), and its stderr
    stays small."""
    size0 = os.path.getsize(env.vmm_log)
    c0, t0 = cpu_seconds(env.vmm.pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(env.vmm.pid), time.monotonic()
    grew = os.path.getsize(env.vmm_log) - size0
    check(c1 - c0 < 0.5 * (t1 - t0),
          "%s: hwsock-vmm used %.2fs of CPU in %.2fs" % (what, c1 - c0,
                                                          t1 - t0))
    check(grew < 16384, "%s: hwsock-vmm wrote %d bytes to stderr in %.1fs" %
          (what, grew, t1 - t0))


def hog(env, n):
    """A guest holding up to n host sockets. Returns (process, opened, error
    name or None)."""
    p = env.spawn([env.args.quota, env.sock, "hog", str(n)],
                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
    line = readline_within(p.stdout, WAIT, "the hog's count")
    check(line.startswith("opened "), "hog said %r" % line)
    opened, err = int(line.split()[1]), None
    line = readline_within(p.stdout, WAIT, "the hog's state")
    if line.startswith("error "):
        err = line.split()[1]
        line = readline_within(p.stdout, WAIT, "the hog's state")
    check(line == "holding\n", "hog said %r" % line)
    return p, opened, err


def release(env, p, what):
    p.stdin.write(b"\n")
    p.stdin.flush()
    rc, _, err = env.finish(p, what)
    check(rc == 0, "%s: exit %d %r" % (what, rc, err))


def fd_quota(env):
    # --help states the limits' defaults (format arguments in text order).
    out = subprocess.run([env.args.vmm, "--help"], capture_output=True,
                         text=True, timeout=WAIT).stdout
    flat = " ".join(out.split())
    for want in ("minus the VMM's own: 64, and 3 + 2 per queue",
                 "before the other guests' turn (default 4)"):
        check(want in flat, "--help lacks %r:\n%s" % (want, out))
    port = env.echo_server()
    # 256 fds, 8 guests: the defaults derived from the limit leave room for
    # the guests' own fds; one guest gets a quarter of the VMM-wide quota.
    env.start_vmm("--max-guests", "8", nofile=256)
    a, opened, err = hog(env, 1000)
    check(err == "HWSOCK_EMFILE" and 0 < opened < 100,
          "the hog opened %d sockets and stopped with %s" % (opened, err))
    log = env.vmm_stderr()
    check("socket quota %d reached (hwsock-vmm --guest-sockets N)" % opened
          in log, "the refusal does not name the quota:\n" + log[-3000:])
    # Another guest's connection and a new guest's attach still work, and
    # the VMM sits idle while the hog holds its sockets.
    n = 64 << 10
    b = env.client(port, n)
    c = env.client(port, n)
    idle_over(env, 3.0, "a guest at its quota")
    expect_ok(env, b, n, "guest B while A is at its quota")
    expect_ok(env, c, n, "guest C while A is at its quota")
    release(env, a, "the hog")
    # Freed: the hog's quota is back for a new guest.
    a, opened2, err = hog(env, 1000)
    check(opened2 == opened and err == "HWSOCK_EMFILE",
          "after a release the next hog opened %d (%s), want %d" %
          (opened2, err, opened))
    release(env, a, "the second hog")


def fd_backoff(env):
    port = env.echo_server()
    # Quotas explicitly above what 128 fds allow: the VMM really runs out.
    env.start_vmm("--max-guests", "8", "--guest-sockets", "1000",
                  "--vmm-sockets", "1000", nofile=128)
    lst = env.spawn([env.args.quota, env.sock, "accept"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = readline_within(lst.stdout, WAIT, "the listening guest's port")
    check(line.startswith("port "), "listener said %r" % line)
    lport = int(line.split()[1])
    a, opened, err = hog(env, 1000)
    check(err == "HWSOCK_EMFILE" and opened < 128,
          "the hog opened %d sockets and stopped with %s" % (opened, err))
    # Out of fds: an incoming connection for the listening guest, and a new
    # guest attaching, both wait.
    try:
        peer = socket.create_connection(("127.0.0.1", lport), timeout=WAIT)
    except OSError as e:
        raise Failure("connecting to the listening guest: %s (it gave up? "
                      "%r)" % (e, lst.stdout.read1(4096)))
    n = 64 << 10
    c = env.client(port, n)
    idle_over(env, 3.0, "the VMM out of fds")
    if lst.poll() is not None:
        raise Failure("the listening guest gave up: %r" % (lst.stdout.read(),))
    log = env.vmm_stderr()
    check("Too many open files" in log and "backing off" in log,
          "no rate-limited backoff logged:\n" + log[-3000:])
    release(env, a, "the hog")
    line = readline_within(lst.stdout, WAIT, "the guest's accept")
    check(line.startswith("accepted tcp://127.0.0.1:"),
          "listening guest said %r" % line)
    peer.close()
    expect_ok(env, c, n, "the guest that attached while fds ran out")
    check(env.finish(lst, "the listening guest")[0] == 0, "listener exit")


def b_rate(env, seconds):
    p = env.spawn([env.args.flood, env.sock, "rate", str(seconds)],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rc, out, err = env.finish(p, "guest B", timeout=WAIT + seconds)
    check(rc == 0 and out.startswith("rate "),
          "guest B: exit %d %r %r" % (rc, out, err))
    return float(out.split()[1])


def too_loaded(what, factor=1):
    """A throughput ratio means nothing on a machine whose run queue is
    much longer than its CPUs: the scheduler, not the VMM, decides then."""
    load = os.getloadavg()[0]
    if load > factor * (os.cpu_count() or 1):
        print("SKIP: load average %.1f on %d CPUs: %s" %
              (load, os.cpu_count() or 1, what))
        sys.exit(77)


def flood(env):
    # Paired rounds, each B alone then B under flood, 2 s apiece: the ratio
    # of one round compares like with like. Target: B keeps 90% (passes at
    # the first round that shows it). Before the per-turn budget B kept
    # 0.10-0.25 in every round (the flooder's whole queue went in one go at
    # each of its kicks); with the default budget (4) a median of 0.5-1.2
    # on a loaded 2-core machine under ASan (0.4-0.5 with 16). So: a
    # median below 0.3 is the starvation this test exists for and fails; a
    # result between that and the target is reported and skipped, as is a
    # machine too busy or too noisy for a measurement. The deterministic
    # check is test/unit/test_fair.c.
    too_loaded("cannot measure guest B's rate", 2)
    env.start_vmm()
    rounds = []
    for _ in range(5):
        alone = b_rate(env, 2)
        a = env.spawn([env.args.flood, env.sock, "flood"],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE)
        line = readline_within(a.stdout, WAIT, "the flood to start")
        check(line == "flooding\n", "flooder said %r" % line)
        flooded = b_rate(env, 2)
        rc, out, err = env.finish(a, "the flooder")  # closes its stdin
        check(rc == 0 and out.startswith("done "),
              "flooder: exit %d %r %r" % (rc, out, err))
        rounds.append((alone, flooded))
        print("B alone %.0f, under flood %.0f requests/s (%.2f)" %
              (alone, flooded, flooded / alone))
        if flooded >= 0.9 * alone:
            return
    too_loaded("guest B's rates %s" % rounds)  # no verdict when loaded
    alones = [r[0] for r in rounds]
    if max(alones) > 3 * min(alones):
        print("SKIP: guest B alone varies %.0f..%.0f requests/s: the machine "
              "is too noisy to measure" % (min(alones), max(alones)))
        sys.exit(77)
    median = sorted(f / a for a, f in rounds)[len(rounds) // 2]
    check(median >= 0.3,
          "guest B starved under flood: median %.2f of its rate alone, "
          "rounds %s" % (median, rounds))
    print("SKIP: guest B kept %.2f (median) of its rate alone under flood, "
          "below the 0.9 target but not starved" % median)
    sys.exit(77)


SCENARIOS = {f.__name__: f for f in (two_guests, polling, kill_guest, kill_vmm,
                                     policy_deny, bad_guests, max_guests,
                                     needs_reset, pcap_files, socket_mode,
                                     fd_quota, fd_backoff, flood)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmm", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--quota", required=True)
    ap.add_argument("--flood", required=True)
    ap.add_argument("--echo", required=True)
    ap.add_argument("--policy", required=True)
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    args = ap.parse_args()
    env = Env(args)
    try:
        SCENARIOS[args.scenario](env)
    except Failure as e:
        print("FAIL %s: %s" % (args.scenario, e), file=sys.stderr)
        if env.vmm is not None:
            print("--- hwsock-vmm stderr ---\n" + env.vmm_stderr(), file=sys.stderr)
        return 1
    finally:
        env.cleanup()
    print("PASS %s" % args.scenario)
    return 0


if __name__ == "__main__":
    sys.exit(main())
