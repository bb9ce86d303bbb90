#!/usr/bin/env python3
"""CPU per connection through hwsock-run, for comparing builds of it.

    python3 test/bench/conn_cpu.py --build build/bench \
        --run before=/path/to/old/hwsock-run --run after=build/bench/guest-driver/run/hwsock-run \
        [--reps 9] [--seconds 1] [--only direct cps accept]

Runs, interleaved and repeated, the bench's cps client (connect, 1-byte
request and answer, close) directly, under each hwsock-run ("cps": the
client is supervised) and against a hwsock-bench-server under each
hwsock-run ("accept": the server is), all through one hwsock-vmm
(--queues 2) and against servers on 127.0.0.1. Prints per path the median
[min-max] of connections/s and of the CPU time of every process on the
path (client, hwsock-run and what it runs, hwsock-vmm, server) per
connection: on a shared machine the CPU is steadier than the rate.
docs/PERFORMANCE.md, "hwsock-run per connection". Not a test."""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--build", default="build/bench")
ap.add_argument("--run", action="append", default=[],
                help="LABEL=PATH of a hwsock-run binary (repeatable)")
ap.add_argument("--reps", type=int, default=9)
ap.add_argument("--seconds", type=float, default=1.0)
ap.add_argument("--only", nargs="*", default=["direct", "cps", "accept"])
a = ap.parse_args()
B = os.path.abspath(a.build)
runs = [r.split("=", 1) for r in a.run] or [
    ["run", os.path.join(B, "guest-driver", "run", "hwsock-run")]]
HZ = os.sysconf("SC_CLK_TCK")
PORTS = ["sink", "echo", "cps", "udp", "ctrl"]


def cpu(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read().rsplit(")", 1)[1].split()
        return (int(s[11]) + int(s[12])) / HZ
    except OSError:
        return 0.0


def ports_of(p):
    line = p.stdout.readline().split()
    if not line or line[0] != "ports":
        raise SystemExit("hwsock-bench-server did not start")
    return dict(zip(PORTS, map(int, line[1:6])))


tmp = tempfile.mkdtemp()
procs = []
try:
    server = subprocess.Popen([B + "/test/hwsock-bench-server"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    procs.append(server)
    ports = ports_of(server)
    vsock = os.path.join(tmp, "vmm.sock")
    be = os.path.join(B, "backends")
    vmm = subprocess.Popen(
        [B + "/tools/hwsock-vmm/hwsock-vmm", "--listen", vsock,
         "--backend-dir", "", "--backend", be + "/tcp.so",
         "--backend", be + "/udp.so", "--queues", "2",
         "--max-sockets", "16384"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(vmm)
    while not os.path.exists(vsock):
        if vmm.poll() is not None:
            raise SystemExit("hwsock-vmm exited")
        time.sleep(0.05)
    rservers = {}
    if "accept" in a.only:
        for label, path in runs:
            p = subprocess.Popen([path, "--vmm", vsock, "--",
                                  B + "/test/hwsock-bench-server"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
            procs.append(p)
            rp = ports_of(p)
            with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
                kids = [int(x) for x in f.read().split()]
            rservers[label] = (p, rp, kids)

    def path_cpu():
        t = os.times()
        c = t.children_user + t.children_system + cpu(vmm.pid) + \
            cpu(server.pid)
        for p, _, kids in rservers.values():
            c += cpu(p.pid) + sum(cpu(k) for k in kids)
        return c

    def client(port):
        return [B + "/test/hwsock-bench", "--path", "direct", "--workload",
                "cps", "--port", str(port), "--ctrl-port", str(ports["ctrl"]),
                "--seconds", "%g" % a.seconds, "--msg", "1"]

    def once(cmd):
        c0 = path_cpu()
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=a.seconds + 60)
        c1 = path_cpu()
        for line in p.stdout.splitlines():
            if line.startswith("result"):
                kv = dict(x.split("=") for x in line.split()[1:])
                n = float(kv["n"])
                return float(kv["cps"]), (c1 - c0) / n * 1e6
        print("failed:", " ".join(cmd), p.stderr[-300:], file=sys.stderr)
        return None

    res = {}
    for r in range(a.reps):
        jobs = []
        if "direct" in a.only:
            jobs.append(("direct", client(ports["cps"])))
        for label, path in runs:
            if "cps" in a.only:
                jobs.append(("cps/" + label,
                             [path, "--vmm", vsock, "--"] +
                             client(ports["cps"])))
            if "accept" in a.only:
                jobs.append(("accept/" + label,
                             client(rservers[label][1]["cps"])))
        for name, cmd in jobs:
            x = once(cmd)
            if x:
                res.setdefault(name, []).append(x)
            print("%-16s rep %d: %s" % (name, r + 1,
                  "%.0f conn/s, %.0f us CPU/conn" % x if x else "failed"),
                  flush=True)
    with open("/proc/loadavg") as f:
        print("\nload average:", " ".join(f.read().split()[:3]))
    d = res.get("direct")
    dmed = statistics.median(x[0] for x in d) if d else None
    for name, v in res.items():
        rate = sorted(x[0] for x in v)
        us = sorted(x[1] for x in v)
        ratio = ("(%.2fx)" % (statistics.median(rate) / dmed)) if dmed else ""
        print("%-16s conn/s %7.0f [%6.0f-%6.0f] %-8s CPU us/conn %5.0f "
              "[%4.0f-%4.0f]" % (name, statistics.median(rate), rate[0],
                                 rate[-1], ratio, statistics.median(us),
                                 us[0], us[-1]))
finally:
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    shutil.rmtree(tmp, ignore_errors=True)
