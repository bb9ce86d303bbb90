#!/usr/bin/env python3
"""IPX between guests of the loopback VMM (hwsock-vmm --ipx-*), with real
guest processes (ipx_client) and real IPX-in-UDP on 127.0.0.1.

  one_vmm   two guests of one VMM: one serves a socket number, the other
            sends datagrams of many sizes to it and checks every echo byte
            for byte; both see the addresses of their slots
  two_vmms  two VMM processes that list each other's slots as --ipx-peer:
            a guest of each serves, a guest of each sends to the other
            VMM's server (both directions at once)
  slots     --ipx-slots 2: a third guest attaches without IPX (F_IPX not
            offered, a warning in the log); once the first guest detaches, the next
            one gets the freed slot 0; bad --ipx-* options fail at startup
            with a clear message
  pcap      hwsock-vmm --pcap records the exchange; tshark decodes the
            datagrams as IPX with the guests' nodes and socket numbers
  takeover  a guest serves a socket number and echoes 100 datagrams of a
            second guest; the VMM is replaced (`--takeover`, the same
            --ipx-* options): the serving guest keeps its slot, its socket
            and the RECV it waits in, and echoes 100 datagrams of a third
            guest through the new VMM, every byte checked

UDP ports are 21300 and up, probed free on 127.0.0.1 before use. Every wait
is bounded; a scenario fails with a message saying what it waited for."""
import argparse
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

WAIT = 15.0
NET = "0000cafe"
SKIP = 77


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def readline_within(f, timeout, what):
    end = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(b"\n"):
        left = end - time.monotonic()
        if left <= 0:
            raise Failure("timed out waiting for " + what)
        r, _, _ = select.select([f.fileno()], [], [], left)
        if not r:
            continue
        b = os.read(f.fileno(), 1)
        if not b:
            raise Failure("EOF while waiting for " + what)
        buf += b
    return buf.decode()


# Tests run in parallel (ctest -j): each process starts probing at its own
# offset so that two scenarios never pick the same free range at once.
PORT_START = 21300 + 32 * (os.getpid() % 512)


def free_udp_base(count, start=None, stop=60000, step=16):
    """The first base >= start such that base..base+count-1 are free UDP
    ports on 127.0.0.1 (bound and released at once: a small race with
    other programs remains)."""
    if start is None:
        start = PORT_START
    for base in range(start, stop, step):
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise Failure("no free UDP port range of %d from %d" % (count, start))


def node(base, slot):
    return "%012x" % (int(base, 16) + slot + 1)


class Env:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="hwsock-ipx-test-")
        self.procs = []
        self.nvmm = 0

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def start_vmm(self, *extra, path=None):
        """A hwsock-vmm with the build's backends; returns (proc, socket
        path, log path)."""
        self.nvmm += 1
        if path is None:
            path = os.path.join(self.dir, "vmm%d.sock" % self.nvmm)
        logp = os.path.join(self.dir, "vmm%d.log" % self.nvmm)
        r, w = os.pipe()
        with open(logp, "ab") as log:
            p = self.spawn([self.args.vmm, "--listen", path, "--ready-fd",
                            str(w), "-v", "--mem", "16", *extra],
                           pass_fds=(w,), stderr=log)
        os.close(w)
        with os.fdopen(r, "rb") as rf:
            line = readline_within(rf, WAIT, "hwsock-vmm --ready-fd")
        check(line == "ready\n", "ready fd said %r (log: %s)" %
              (line, self.log(logp)))
        return p, path, logp

    def log(self, logp):
        with open(logp, errors="replace") as f:
            return f.read()

    def client(self, vmm_path, *argv):
        return self.spawn([self.args.client, vmm_path, *argv],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def addr(self, p, what):
        line = readline_within(p.stdout, WAIT, what + "'s address")
        check(line.startswith("addr ipx://"), "%s printed %r" % (what, line))
        return line.split()[1]

    def finish(self, p, what, timeout=WAIT * 2):
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            raise Failure("%s did not exit within %ss\nstderr: %s" %
                          (what, timeout, err.decode(errors="replace")))
        out, err = out.decode(), err.decode(errors="replace")
        check(p.returncode == 0, "%s exited %d\nstdout: %s\nstderr: %s" %
              (what, p.returncode, out, err))
        return out

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


def ok_hash(out, n, what):
    last = out.strip().splitlines()[-1] if out.strip() else ""
    parts = last.split()
    check(len(parts) == 4 and parts[0] == "ok" and parts[1] == str(n) and
          parts[2] == "hash", "%s did not finish with 'ok %d hash H': %r" %
          (what, n, out))
    return parts[3]


def exchange(env, server_vmm, sender_vmm, sock, n, server_what, sender_what):
    """Starts a server on server_vmm, returns (server proc, its address, a
    function that runs the sender on sender_vmm and checks both ends)."""
    srv = env.client(server_vmm, "serve", sock, str(n))
    saddr = env.addr(srv, server_what)

    def run_sender():
        snd = env.client(sender_vmm, "send", saddr, str(n))
        return snd

    def finish(snd):
        sout = env.finish(snd, sender_what)
        vout = env.finish(srv, server_what)
        check(ok_hash(sout, n, sender_what) == ok_hash(vout, n, server_what),
              "%s and %s saw different payloads" % (sender_what, server_what))
        return sout.splitlines()[0].split()[1]

    return saddr, run_sender, finish


# ---- scenarios ---------------------------------------------------------------

def scenario_one_vmm(env):
    base = free_udp_base(4)
    _, vpath, vlog = env.start_vmm("--ipx-net", NET, "--ipx-port", str(base),
                                   "--ipx-slots", "4")
    n = 300
    saddr, run_sender, finish = exchange(env, vpath, vpath, "869c", n,
                                         "server guest", "sender guest")
    check(saddr == "ipx://%s.%s.869c" % (NET, node("02005e000000", 0)),
          "the first guest has slot 0's address, got " + saddr)
    caddr = finish(run_sender())
    check(caddr.startswith("ipx://%s.%s." % (NET, node("02005e000000", 1))),
          "the second guest has slot 1's address, got " + caddr)
    log = env.log(vlog)
    check("ipx slot 0: net %s node 02005e000001 udp 127.0.0.1:%d" %
          (NET, base) in log, "slot 0 in the VMM log:\n" + log)
    check("ipx slot 1: net %s node 02005e000002 udp 127.0.0.1:%d" %
          (NET, base + 1) in log, "slot 1 in the VMM log:\n" + log)
    check("dropped packet" not in log, "no packet dropped:\n" + log)


def scenario_two_vmms(env):
    a_base = free_udp_base(2)
    b_base = free_udp_base(2, start=a_base + 16)
    a_nodes, b_nodes = "02005e000000", "02005e000100"
    def peers(nodes, port):
        out = []
        for slot in range(2):
            out += ["--ipx-peer", "%s@127.0.0.1:%d" % (node(nodes, slot),
                                                       port + slot)]
        return out
    _, apath, alog = env.start_vmm("--ipx-net", NET, "--ipx-port",
                                   str(a_base), "--ipx-node-base", a_nodes,
                                   "--ipx-slots", "2", *peers(b_nodes, b_base))
    _, bpath, blog = env.start_vmm("--ipx-net", NET, "--ipx-port",
                                   str(b_base), "--ipx-node-base", b_nodes,
                                   "--ipx-slots", "2", *peers(a_nodes, a_base))
    n = 200
    # The servers take slot 0 of each VMM, the senders slot 1.
    a_addr, a_send, a_finish = exchange(env, apath, bpath, "5000", n,
                                        "server on VMM A", "sender on VMM B")
    b_addr, b_send, b_finish = exchange(env, bpath, apath, "5001", n,
                                        "server on VMM B", "sender on VMM A")
    check(a_addr == "ipx://%s.%s.5000" % (NET, node(a_nodes, 0)), a_addr)
    check(b_addr == "ipx://%s.%s.5001" % (NET, node(b_nodes, 0)), b_addr)
    sa, sb = a_send(), b_send()
    from_b = a_finish(sa)
    from_a = b_finish(sb)
    check(from_b.startswith("ipx://%s.%s." % (NET, node(b_nodes, 1))), from_b)
    check(from_a.startswith("ipx://%s.%s." % (NET, node(a_nodes, 1))), from_a)
    for lp in (alog, blog):
        log = env.log(lp)
        check("dropped packet" not in log, "no packet dropped:\n" + log)


def scenario_slots(env):
    base = free_udp_base(2)
    vmm, vpath, vlog = env.start_vmm("--ipx-net", NET, "--ipx-port",
                                     str(base), "--ipx-slots", "2")
    g1 = env.client(vpath, "serve", "4444", "1")
    a1 = env.addr(g1, "guest 1")
    g2 = env.client(vpath, "serve", "4444", "1")
    a2 = env.addr(g2, "guest 2")
    check(a1 == "ipx://%s.%s.4444" % (NET, node("02005e000000", 0)), a1)
    check(a2 == "ipx://%s.%s.4444" % (NET, node("02005e000000", 1)), a2)
    out = env.finish(env.client(vpath, "probe"), "guest 3")
    check(out.strip() == "error F_IPX not offered",
          "a guest without a slot has no IPX network (F_IPX is not "
          "offered), got %r" % out)
    check("guest 3: every IPX slot is taken" in env.log(vlog),
          "warning for guest 3 in the log:\n" + env.log(vlog))
    # Guest 1 leaves: slot 0 is free again once the VMM noticed.
    g1.kill()
    g1.wait(timeout=WAIT)
    end = time.monotonic() + WAIT
    while "guest 1: detached" not in env.log(vlog):
        check(time.monotonic() < end, "guest 1's detach in the log")
        time.sleep(0.05)
    out = env.finish(env.client(vpath, "probe"), "guest 4")
    check(out.startswith("addr ipx://%s.%s." % (NET, node("02005e000000", 0))),
          "the next guest takes the freed slot 0, got %r" % out)
    check(vmm.poll() is None, "the VMM is still running")

    # Bad options fail at startup, before listening, with a clear message.
    def bad(expect, *argv):
        r = subprocess.run([env.args.vmm, "--listen",
                            os.path.join(env.dir, "bad.sock"), *argv],
                           capture_output=True, timeout=WAIT)
        err = r.stderr.decode(errors="replace")
        check(r.returncode != 0 and expect in err,
              "%s: expected a failure saying %r, got exit %d: %s" %
              (" ".join(argv), expect, r.returncode, err))
    many = []
    for i in range(2):
        many += ["--ipx-peer", "02005e0001%02x@127.0.0.1:21300" % i]
    bad("the ipx backend takes at most 64", "--ipx-net", NET, "--ipx-slots",
        "64", *many)
    bad("need --ipx-net", "--ipx-port", "21300")
    bad("--ipx-net 'cafe'", "--ipx-net", "cafe")
    bad("is this VMM's slot 1", "--ipx-net", NET, "--ipx-peer",
        "02005e000002@127.0.0.1:21300")
    bad("--ipx-peer '02005e000101@::1:5'", "--ipx-net", NET, "--ipx-peer",
        "02005e000101@::1:5")
    bad("passes UDP port 65535", "--ipx-net", NET, "--ipx-port", "65530")


def scenario_pcap(env):
    tshark = env.args.tshark
    if not tshark or not os.path.exists(tshark):
        print("SKIP: tshark not found")
        sys.exit(SKIP)
    base = free_udp_base(2)
    pcap = os.path.join(env.dir, "ipx.pcap")
    vmm, vpath, _ = env.start_vmm("--ipx-net", NET, "--ipx-port", str(base),
                                  "--ipx-slots", "2", "--pcap", pcap)
    n = 20
    saddr, run_sender, finish = exchange(env, vpath, vpath, "869c", n,
                                         "server guest", "sender guest")
    caddr = finish(run_sender())
    vmm.send_signal(signal.SIGTERM)  # the capture is complete at exit
    vmm.wait(timeout=WAIT)
    r = subprocess.run([tshark, "-r", pcap, "-Y", "ipx", "-T", "fields",
                        "-e", "ipx.src.node", "-e", "ipx.src.socket",
                        "-e", "ipx.dst.node", "-e", "ipx.dst.socket",
                        "-e", "ipx.len"],
                       capture_output=True, timeout=60)
    check(r.returncode == 0, "tshark failed: " + r.stderr.decode())
    rows = [l.split("\t") for l in r.stdout.decode().splitlines() if l]
    # The capture writes each datagram once per guest that took part: sent
    # by one, received by the other.
    check(len(rows) >= 2 * n, "%d IPX packets decoded, expected >= %d:\n%s" %
          (len(rows), 2 * n, r.stdout.decode()))
    srv_node = saddr.split(".")[1]
    cli_node = caddr.split(".")[1]
    colon = lambda h: ":".join(h[i:i + 2] for i in range(0, 12, 2))
    to_srv = [x for x in rows if x[2] == colon(srv_node) and
              x[3].lower().endswith("869c")]
    from_srv = [x for x in rows if x[0] == colon(srv_node) and
                x[1].lower().endswith("869c")]
    check(to_srv and from_srv and
          all(x[0] == colon(cli_node) for x in to_srv) and
          all(x[2] == colon(cli_node) for x in from_srv),
          "IPX packets between %s and %s:\n%s" % (cli_node, srv_node,
                                                  r.stdout.decode()))


def scenario_takeover(env):
    base = free_udp_base(2)
    opts = ("--ipx-net", NET, "--ipx-port", str(base), "--ipx-slots", "2")
    old, vpath, _ = env.start_vmm(*opts)
    srv = env.client(vpath, "serve", "869c", "200")
    saddr = env.addr(srv, "the server guest")
    check(saddr == "ipx://%s.%s.869c" % (NET, node("02005e000000", 0)),
          saddr)
    snd = env.client(vpath, "send", saddr, "100")
    ok_hash(env.finish(snd, "the sender before the takeover"), 100,
            "the sender before the takeover")
    # the server waits in a RECV for datagram 101: the VMM is replaced
    new, _, nlog = env.start_vmm(*opts, "--takeover", path=vpath)
    try:
        rc = old.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        raise Failure("the old VMM did not exit after the takeover")
    check(rc == 0, "the old VMM exited %d" % rc)
    log = env.log(nlog)
    check("took 1 guest and 1 host socket over" in log,
          "the IPX socket was not taken over:\n" + log)
    snd = env.client(vpath, "send", saddr, "100")
    out = env.finish(snd, "the sender after the takeover")
    ok_hash(out, 100, "the sender after the takeover")
    check(out.splitlines()[0].startswith(
        "addr ipx://%s.%s." % (NET, node("02005e000000", 1))),
        "the new sender has slot 1: " + out.splitlines()[0])
    ok_hash(env.finish(srv, "the server guest"), 200, "the server guest")
    log = env.log(nlog)
    check("dropped packet" not in log, "no packet dropped:\n" + log)
    new.send_signal(signal.SIGTERM)
    check(new.wait(timeout=WAIT) == 0, "the new VMM exited badly")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmm", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--tshark", default="")
    ap.add_argument("scenario", choices=["one_vmm", "two_vmms", "slots",
                                         "pcap", "takeover"])
    args = ap.parse_args()
    env = Env(args)
    try:
        globals()["scenario_" + args.scenario](env)
    except Failure as e:
        print("FAIL %s: %s" % (args.scenario, e))
        for i in range(1, env.nvmm + 1):
            lp = os.path.join(env.dir, "vmm%d.log" % i)
            if os.path.exists(lp):
                print("--- VMM %d log ---\n%s" % (i, env.log(lp)[-4000:]))
        return 1
    finally:
        env.cleanup()
    print("PASS %s" % args.scenario)
    return 0


if __name__ == "__main__":
    sys.exit(main())
