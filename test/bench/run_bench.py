#!/usr/bin/env python3
"""Runs every benchmark workload over every path, side by side, in one go.

Called by scripts/bench (which installs the packages and builds first);
docs/PERFORMANCE.md explains the method and the figures. Paths:

  direct  hwsock-bench on host sockets (the limit)
  driver  hwsock-bench over the guest driver API, attached to hwsock-vmm
  run     the same unmodified direct client under hwsock-run --vmm
  slirp   hwsock-bench-slirp: lwIP behind libslirp in one process (L2)

All talk to one hwsock-bench-server on 127.0.0.1. Each workload starts
with an idle pause and a short direct-socket control figure, then runs the
paths interleaved (run 1 of every path, then run 2, ...) so that a slow
spell of the shared machine hits every path alike. Output: a table, then
machine-readable lines (ratio.*, cost.*, cpu.*, wakeups.*, kicks.*, mem.*,
threads.*, control.*, target ...).

CPU cost: each timed run adds up the CPU-seconds (user + system) of every
process on the path -- the client (and hwsock-run with it: the waited
children's getrusage), hwsock-vmm and hwsock-bench-server (/proc/PID/stat
deltas) -- and divides by what moved: per GiB (bulk), per 100k round trips
(rr), per 100k connections (cps), per 100k delivered datagrams (udp).

Benchmarks are not tests: nothing here asserts a timing.
"""
import argparse
import json
import os
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

SERVER_CPU = "1"
CLIENT_CPU = "0"

# name, server port key, --msg, metric, better ("hi" or "lo")
WORKLOADS = [
    ("bulk", "sink", 65536, "gbit_s", "hi"),
    ("bulk1m", "sink", 1048576, "gbit_s", "hi"),
    # bulk1m through the driver's zero-copy send buffers (driver path; the
    # direct path runs the plain bulk1m again as the reference)
    ("bulk1mzc", "sink", 1048576, "gbit_s", "hi"),
    ("rr1", "echo", 1, "p50_us", "lo"),
    ("rr1k", "echo", 1024, "p50_us", "lo"),
    ("cps", "cps", 1, "cps", "hi"),
    ("udp", "udp", 1400, "delivered_pps", "hi"),
    # the server side under hwsock-run: the direct cps client connects to
    # a second hwsock-bench-server that runs under hwsock-run (path "run")
    ("accept", "cps", 1, "cps", "hi"),
    # CONC_COUNT connections each echoing 64 KiB (direct, driver, run)
    ("conc", "echo", 65536, "gbit_s", "hi"),
]
CONC_COUNT = 1000
EXTRA_METRICS = {"rr1": ["p99_us", "p999_us"], "rr1k": ["p99_us", "p999_us"],
                 "conc": ["p99_ms"]}
for _w in WORKLOADS:
    EXTRA_METRICS.setdefault(_w[0], []).extend(["cpu", "wakeups"])
UNITS = {"cpu": "CPU-s per unit", "wakeups": "wake-ups per unit",
         "accept": "conn/s", "p99_ms": "ms p99 per conn",
         "gbit_s": "Gbit/s", "p50_us": "us p50", "p99_us": "us p99",
         "p999_us": "us p99.9", "cps": "conn/s", "delivered_pps": "dgram/s"}
PATHS = ["direct", "driver", "run", "slirp"]
# The targets (docs/PERFORMANCE.md "Targets"): workload, ratio, op, bound,
# and the figure compared when it is not the workload's main one. Issue 13
# (event queue) replaced the first performance issue's bulk, rr1 and cps
# bounds with stricter ones; the slirp and rr1k bounds are the first one's.
TARGETS = [
    ("bulk", "driver_vs_direct", ">=", 0.95),
    ("bulk", "run_vs_direct", ">=", 0.90),
    ("bulk1m", "driver_vs_direct", ">=", 0.75),
    ("bulk1m", "run_vs_direct", ">=", 0.60),
    ("rr1", "driver_vs_direct", "<=", 1.00),
    ("rr1", "driver_vs_direct", "<=", 1.20, "p99_us"),
    ("rr1", "run_vs_direct", "<=", 1.10),
    ("udp", "driver_vs_direct", ">=", 0.80),
    ("udp", "run_vs_direct", ">=", 0.50),
    ("cps", "driver_vs_direct", ">=", 0.90),
    ("cps", "run_vs_direct", ">=", 0.60),
    ("accept", "run_vs_direct", ">=", 0.50),
    ("conc", "driver_vs_direct", ">=", 0.70),
    ("bulk", "driver_vs_slirp", ">=", 3.0),
    ("bulk", "run_vs_slirp", ">=", 3.0),
    ("rr1k", "driver_vs_direct", "<=", 1.25),
]
# CPU cost targets (issue 13): CPU-seconds per unit <= 1.3x direct
CPU_BOUND = 1.3
# what one unit of CPU cost is, per workload: (result key, scale, label)
CPU_UNIT = {"bulk": ("bytes", 1.0 / 2**30, "GiB"),
            "bulk1m": ("bytes", 1.0 / 2**30, "GiB"),
            "bulk1mzc": ("bytes", 1.0 / 2**30, "GiB"),
            "rr1": ("n", 1e-5, "100k round trips"),
            "rr1k": ("n", 1e-5, "100k round trips"),
            "cps": ("n", 1e-5, "100k connections"),
            "accept": ("n", 1e-5, "100k connections"),
            "conc": ("bytes", 1.0 / 2**30, "GiB"),
            "udp": ("delivered", 1e-5, "100k datagrams")}


def proc_cpu(pid):
    """CPU-seconds (user + system) of a live process, 0 when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            f_ = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f_[11]) + int(f_[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_wakeups(pid):
    """Voluntary context switches (sleeps, so wake-ups) of every live
    thread of a process; 0 when gone."""
    n = 0
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return 0
    for t in tids:
        try:
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        n += int(line.split()[1])
        except OSError:
            pass
    return n


def log(*a):
    print(*a, flush=True)


def parse_result(text):
    for line in text.splitlines():
        if line.startswith("result "):
            return {k: v for k, v in
                    (kv.split("=", 1) for kv in line.split()[1:])}
    return None


class Bench:
    def __init__(self, args):
        self.a = args
        self.build = args.build
        self.tmp = tempfile.mkdtemp(prefix="hwsock-bench-")
        self.procs = []
        self.pin = not args.no_pin
        self.bin = {
            "client": os.path.join(self.build, "test", "hwsock-bench"),
            "slirp": os.path.join(self.build, "test", "hwsock-bench-slirp"),
            "server": os.path.join(self.build, "test", "hwsock-bench-server"),
            "cost": os.path.join(self.build, "test", "bench_ring_cost"),
            "vmm": os.path.join(self.build, "tools", "hwsock-vmm",
                                "hwsock-vmm"),
            "run": os.path.join(self.build, "guest-driver", "run",
                                "hwsock-run"),
        }
        self.unavailable = {}  # path -> reason
        self.results = {}      # workload -> path -> [dict]
        self.slirp_info = None
        self.max_sockets = 16384
        self.run_server = None
        self.stat = os.path.join(self.build, "tools", "hwsock-stat",
                                 "hwsock-stat")

    def cpu(self, which):
        if not self.pin:
            return []
        return ["taskset", "-c", SERVER_CPU if which == "server" else
                CLIENT_CPU]

    # ---- long-lived processes ------------------------------------------
    def start_server(self):
        p = subprocess.Popen(self.cpu("server") + [self.bin["server"]],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
        self.procs.append(p)
        line = p.stdout.readline().split()
        if not line or line[0] != "ports":
            raise SystemExit("hwsock-bench-server did not start")
        self.ports = dict(zip(["sink", "echo", "cps", "udp", "ctrl"],
                              map(int, line[1:6])))
        self.server = p

    def start_vmm(self):
        self.vmm_sock = os.path.join(self.tmp, "vmm.sock")
        be = os.path.join(self.build, "backends")
        cmd = self.cpu("vmm") + [
            self.bin["vmm"], "--listen", self.vmm_sock, "--backend-dir", "",
            "--backend", os.path.join(be, "tcp.so"),
            "--backend", os.path.join(be, "udp.so"), "--max-guests", "64",
            # the event queue needs a second queue (PROTOCOL.md §16); one
            # guest holds all the idle sockets
            "--queues", "2", "--max-sockets", str(self.max_sockets),
            "--guest-sockets", str(self.a.idle_count + 100)]
        self.vmm_log = open(os.path.join(self.tmp, "vmm.log"), "w")
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             stdout=self.vmm_log, stderr=self.vmm_log)
        self.procs.append(p)
        for _ in range(100):
            if os.path.exists(self.vmm_sock):
                break
            if p.poll() is not None:
                raise SystemExit("hwsock-vmm exited: see " + self.vmm_log.name)
            time.sleep(0.05)
        self.vmm = p

    def restart_vmm(self):
        """A fresh hwsock-vmm: memory freed by an earlier workload stays in
        the old one's heap and would be reused, hiding the per-socket cost."""
        self.vmm.terminate()
        try:
            self.vmm.wait(5)
        except subprocess.TimeoutExpired:
            self.vmm.kill()
            self.vmm.wait()
        self.procs.remove(self.vmm)
        self.vmm_log.close()
        for f in (self.vmm_sock, self.vmm_sock + ".ctl"):
            try:
                os.unlink(f)
            except OSError:
                pass
        self.start_vmm()

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- one client run -------------------------------------------------
    def client_cmd(self, path, workload, port, msg, seconds, count=None):
        common = ["--workload", workload, "--port", str(port),
                  "--ctrl-port", str(self.ports["ctrl"]),
                  "--seconds", "%g" % seconds, "--msg", str(msg)]
        if count is not None:
            common += ["--count", str(count)]
        if path == "direct":
            cmd = [self.bin["client"], "--path", "direct"] + common
        elif path == "driver":
            cmd = [self.bin["client"], "--path", "driver",
                   "--vmm", self.vmm_sock] + common
        elif path == "run":
            cmd = [self.bin["run"], "--vmm", self.vmm_sock, "--",
                   self.bin["client"], "--path", "direct"] + common
        else:
            cmd = [self.bin["slirp"]] + common
        return self.cpu("client") + cmd

    def path_cpu(self):
        return (children_cpu() + proc_cpu(self.vmm.pid) +
                proc_cpu(self.server.pid) +
                sum(proc_cpu(p) for p in self.run_server_pids()))

    def path_wakeups(self):
        """Voluntary context switches of every process on the path: the
        waited client with hwsock-run (getrusage: its exited threads too),
        and the threads of hwsock-vmm and the server(s). Each is a sleep
        and a wake-up: what small messages pay (docs/PERFORMANCE.md)."""
        return (resource.getrusage(resource.RUSAGE_CHILDREN).ru_nvcsw +
                proc_wakeups(self.vmm.pid) + proc_wakeups(self.server.pid) +
                sum(proc_wakeups(p) for p in self.run_server_pids()))

    def start_run_server(self):
        """hwsock-bench-server under hwsock-run (the accept workload)."""
        cmd = self.cpu("server") + [self.bin["run"], "--vmm", self.vmm_sock,
                                    "--", self.bin["server"]]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True)
        self.procs.append(p)
        r, _, _ = select.select([p.stdout], [], [], 30)
        line = p.stdout.readline().split() if r else []
        if not line or line[0] != "ports":
            p.kill()
            return "hwsock-bench-server under hwsock-run did not start"
        self.run_ports = dict(zip(["sink", "echo", "cps", "udp", "ctrl"],
                                  map(int, line[1:6])))
        self.run_server = p
        return None

    def run_server_pids(self):
        """hwsock-run and the server it runs (not waited: /proc)."""
        p = self.run_server
        if p is None or p.poll() is not None:
            return []
        pids = [p.pid]
        try:
            with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
                pids += [int(x) for x in f.read().split()]
        except OSError:
            pass
        return pids

    def run_once(self, path, workload, port, msg, seconds, name=None,
                 count=None):
        cmd = self.client_cmd(path, workload, port, msg, seconds, count)
        c0 = self.path_cpu()
        w0 = self.path_wakeups()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=seconds + (20 if count else 60))
        except subprocess.TimeoutExpired:
            return None, "timed out"
        res = parse_result(p.stdout)
        if p.returncode != 0 or res is None:
            err = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])
            return None, err[-1]
        unit = CPU_UNIT.get(name)
        if unit is not None and float(res.get(unit[0], 0)) > 0:
            res["cpu_s"] = "%.4f" % (self.path_cpu() - c0)
            res["wakeups"] = "%.6g" % ((self.path_wakeups() - w0) /
                                       (float(res[unit[0]]) * unit[1]))
            res["cpu"] = "%.6g" % (float(res["cpu_s"]) /
                                   (float(res[unit[0]]) * unit[1]))
        return res, None

    # ---- availability probes --------------------------------------------
    def probe(self):
        for path, key in (("driver", "client"), ("run", "run"),
                          ("slirp", "slirp")):
            if not os.access(self.bin[key], os.X_OK):
                self.unavailable[path] = "%s not built" % self.bin[key]
                continue
            if path == "run":
                cmd = [self.bin["run"], "-v", "--vmm", self.vmm_sock, "--",
                       self.bin["client"], "--path", "direct", "--workload",
                       "rr", "--port", str(self.ports["echo"]),
                       "--seconds", "0.1"]
                try:
                    p = subprocess.run(cmd, capture_output=True, text=True,
                                       timeout=30)
                except subprocess.TimeoutExpired:
                    self.unavailable[path] = "hwsock-run probe timed out"
                    continue
                if p.returncode != 0 or parse_result(p.stdout) is None:
                    tail = (p.stderr.strip().splitlines() or ["?"])[-1]
                    self.unavailable[path] = "hwsock-run failed: " + tail
                elif "offload" not in p.stderr:
                    self.unavailable[path] = ("hwsock-run did not offload the "
                                              "connection (declined?)")
                continue
            cmd = self.client_cmd(path, "rr", self.ports["echo"], 1, 0.1)
            try:
                p = subprocess.run(cmd, capture_output=True, text=True,
                                   timeout=60)
            except subprocess.TimeoutExpired:
                self.unavailable[path] = "%s probe timed out" % path
                continue
            if p.returncode != 0 or parse_result(p.stdout) is None:
                tail = (p.stderr.strip().splitlines() or ["?"])[-1]
                self.unavailable[path] = "%s probe failed: %s" % (path, tail)
            elif path == "slirp":
                # its versions and the malloc thresholds it fixed
                self.slirp_info = p.stderr.strip().splitlines()[0].split(
                    ": ", 1)[-1]

    # ---- the workloads ----------------------------------------------------
    def control(self):
        """Short direct 1-byte round trip: shows a degraded machine."""
        res, err = self.run_once("direct", "rr", self.ports["echo"], 1,
                                 self.a.control_seconds)
        return float(res["p50_us"]) if res else float("nan")

    def idle_pause(self):
        time.sleep(self.a.idle)

    def run_workloads(self):
        self.controls = {}
        for name, portkey, msg, metric, _ in WORKLOADS:
            if self.a.only and name not in self.a.only:
                continue
            self.idle_pause()
            c = self.control()
            self.controls[name] = c
            log("[%s] control: direct 1-byte rr p50 %.1f us" % (name, c))
            wl = ("rr" if name.startswith("rr") else
                  "bulkzc" if name == "bulk1mzc" else
                  "bulk" if name.startswith("bulk") else
                  "cps" if name == "accept" else name)
            per = self.results.setdefault(name, {})
            paths = PATHS
            count = None
            if name == "conc":
                # lwIP + libslirp scan every connection per turn: not here
                paths, count = ["direct", "driver", "run"], CONC_COUNT
            if name == "bulk1mzc":
                paths = ["direct", "driver"]  # only the driver API has it
            if name == "accept":
                paths = ["direct"]
                why = self.unavailable.get("run")
                if why is None and self.run_server is None:
                    why = self.start_run_server()
                if why is None:
                    paths.append("run")
                else:
                    log("[accept] run: n/a (%s)" % why)
            for r in range(self.a.runs):
                for path in paths:
                    if path in self.unavailable:
                        continue
                    if "timed out" in per.get(path + "!err", []):
                        continue  # one hang per path and workload is enough
                    port = self.ports[portkey]
                    client_path = path
                    if name == "accept":
                        client_path = "direct"  # only the server differs
                        if path == "run":
                            port = self.run_ports[portkey]
                    res, err = self.run_once(client_path, wl, port,
                                             msg, self.a.seconds, name, count)
                    if res is None:
                        log("[%s] %s run %d failed: %s" % (name, path, r + 1,
                                                           err))
                        per.setdefault(path + "!err", []).append(err)
                        continue
                    per.setdefault(path, []).append(res)
                    log("[%s] %-6s run %d: %s %s" % (name, path, r + 1,
                                                     res.get(metric), metric))

    # ---- idle sockets: device memory per socket ---------------------------
    @staticmethod
    def rss(pid):
        """VmRSS, RssAnon, RssShmem in kB and Threads of a process."""
        out = {}
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssShmem", "Threads"):
                    out[k] = int(v.split()[0])
        return out

    def idle_sockets(self, path):
        # lwIP and libslirp scan every connection per loop turn, so opening
        # 10,000 through them takes ~40 s: --quick opens fewer there (the
        # figure is per socket).
        count = self.a.idle_count
        if path == "slirp" and self.a.quick:
            count = 1000
        cmd = self.client_cmd(path, "idle", self.ports["echo"], 1, 1, count)
        in_vmm = path in ("driver", "run")
        if in_vmm:
            self.restart_vmm()
        target_pid = self.vmm.pid if in_vmm else None
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        if target_pid is None:
            target_pid = p.pid  # slirp: the whole guest+VMM is this process
        before = self.rss(self.vmm.pid) if in_vmm else None

        def expect(word, timeout):
            r, _, _ = select.select([p.stdout], [], [], timeout)
            line = p.stdout.readline() if r else ""
            if not line.startswith(word):
                p.kill()
                err = p.stderr.read().strip().splitlines()
                raise RuntimeError("%s: expected %s, got %r (%s)" % (
                    path, word, line, err[-1] if err else "no stderr"))
            return line.split()

        try:
            expect("idle-ready", 60)
            ready = self.rss(target_pid)
            # under hwsock-run the client's pid is hwsock-run's (taskset
            # execs it): its own threads and memory with every socket open
            run_ready = self.rss(p.pid) if path == "run" else None
            p.stdin.write("go\n")
            p.stdin.flush()
            opened = expect("idle-open", 300)
            time.sleep(0.5)  # let the device settle (accepts, polls)
            full = self.rss(target_pid)
            run_full = self.rss(p.pid) if path == "run" else None
            p.stdin.write("close\n")
            p.stdin.flush()
            p.wait(120)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            p.kill()
            return {"error": str(e)}
        guests = -(-count // self.max_sockets) if in_vmm else 0
        out = {
            "sockets": count,
            "open_seconds": float(opened[2]),
            "per_socket_rss_bytes": (full["VmRSS"] - ready["VmRSS"]) * 1024.0
            / count,
            "per_socket_anon_bytes": (full["RssAnon"] - ready["RssAnon"])
            * 1024.0 / count,
        }
        if run_full is not None:
            out["run_threads"] = run_full["Threads"]
            out["run_threads_ready"] = run_ready["Threads"]
            out["run_rss_bytes_per_socket"] = (
                (run_full["VmRSS"] - run_ready["VmRSS"]) * 1024.0 / count)
        if before is not None:
            out["guests"] = guests
            out["per_guest_attach_rss_bytes"] = (
                (ready["VmRSS"] - before["VmRSS"]) * 1024.0 / guests)
            # the device's socket table is allocated at attach for all
            # --max-sockets ids: its share per id
            out["attach_bytes_per_id"] = (out["per_guest_attach_rss_bytes"]
                                          / self.max_sockets)
        return out

    # ---- kicks and interrupts per rr1 round trip -------------------------
    def counters(self):
        """Device counters of every attached guest: {guest id: dict}."""
        p = subprocess.run([self.stat, "--vmm", self.vmm_sock, "--counters",
                            "-j"], capture_output=True, text=True, timeout=10)
        if p.returncode != 0:
            raise RuntimeError("hwsock-stat: " + (
                p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1])
        out = {}
        for line in p.stdout.splitlines():
            if line.startswith("{"):
                d = json.loads(line)
                out[d["guest"]] = d
        return out

    def kicks(self, path):
        """Samples the device counters twice while a 1-byte rr runs (past
        its connect: steady state); every round trip is one SEND."""
        secs = self.a.kick_seconds
        cmd = self.client_cmd(path, "rr", self.ports["echo"], 1, secs)
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        try:
            time.sleep(0.5)
            c0 = self.counters()
            time.sleep(secs - 1.0)
            c1 = self.counters()
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
            p.kill()
            p.communicate()
            return {"error": str(e)}
        out, err = p.communicate(timeout=secs + 60)
        res = parse_result(out)
        if p.returncode != 0 or res is None:
            return {"error": (err.strip().splitlines() or ["?"])[-1]}
        best = None
        for g, d1 in c1.items():
            d0 = c0.get(g)
            if d0 is None:
                continue
            sends = (d1["requests_by_op"].get("SEND", 0) -
                     d0["requests_by_op"].get("SEND", 0))
            if best is None or sends > best["round_trips"]:
                best = {"round_trips": sends}
                for k in ("kicks", "notifies", "notifies_suppressed",
                          "requests"):
                    best[k] = d1.get(k, 0) - d0.get(k, 0)
                best["recv_requests"] = (
                    d1["requests_by_op"].get("RECV", 0) -
                    d0["requests_by_op"].get("RECV", 0))
        if not best or best["round_trips"] <= 0:
            return {"error": "no guest with SENDs between the samples"}
        n = float(best["round_trips"])
        best["kicks_per_rt"] = best["kicks"] / n
        best["interrupts_per_rt"] = best["notifies"] / n
        best["requests_per_rt"] = best["requests"] / n
        best["rr_p50_us"] = float(res["p50_us"])
        return best

    # ---- callgrind ---------------------------------------------------------
    def callgrind(self, mode, n, toggles):
        out = os.path.join(self.tmp, "cg.%s.%d" % (mode, n))
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out]
        cmd += ["--toggle-collect=" + t for t in toggles]
        cmd += [self.bin["cost"], mode, str(n)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(p.stderr.strip().splitlines()[-1])
        with open(out) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    return int(line.split()[1])
        raise RuntimeError("no totals in callgrind output")

    def costs(self):
        if shutil.which("valgrind") is None:
            return {"error": "valgrind not installed"}
        n1, n2 = self.a.cost_n
        res = {}
        specs = {
            "ring": ["hwsock__vq_*"],
            "device": ["hwsock_device_kick", "hwsock_device_flush"],
        }
        for mode, toggles in specs.items():
            try:
                i1 = self.callgrind(mode, n1, toggles)
                i2 = self.callgrind(mode, n2, toggles)
                res[mode] = (i2 - i1) / float(n2 - n1)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                res[mode + "!err"] = str(e)
        return res


def fmt(v):
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def summary(vals):
    med = statistics.median(vals)
    return med, min(vals), max(vals)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--only", nargs="*", help="workloads to run")
    ap.add_argument("--json", help="write the raw results here")
    ap.add_argument("--idle-count", type=int, dest="idle_override",
                    help="idle sockets to open (default 10000; --quick 5000)")
    a = ap.parse_args()
    if a.quick:
        a.runs, a.seconds, a.idle, a.control_seconds = 3, 0.5, 1.5, 0.3
        a.idle_count, a.cost_n = 5000, (2000, 12000)
        a.kick_seconds = 2.0
    else:
        a.runs, a.seconds, a.idle, a.control_seconds = 5, 2.0, 10.0, 0.5
        a.idle_count, a.cost_n = 10000, (10000, 110000)
        a.kick_seconds = 4.0
    if a.idle_override:
        a.idle_count = a.idle_override

    b = Bench(a)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    t_start = time.time()
    load0 = os.getloadavg()
    try:
        b.start_server()
        b.start_vmm()
        b.probe()
        log("hwsock bench %s, %s; %d runs x %gs per figure" % (
            time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "quick" if a.quick else "full", a.runs, a.seconds))
        if b.pin:
            log("pinning: server on CPU %s; client, hwsock-vmm, hwsock-run and "
                "the slirp process on CPU %s" % (SERVER_CPU, CLIENT_CPU))
        else:
            log("pinning: none (--no-pin)")
        for path, why in b.unavailable.items():
            log("path %s: n/a (%s)" % (path, why))
        if b.slirp_info:
            log("path slirp: " + b.slirp_info)
        b.run_workloads()
        idle = {}
        if not a.only or "idle" in a.only:
            b.idle_pause()
            for path in ("driver", "run", "slirp"):
                if path in b.unavailable:
                    idle[path] = {"error": b.unavailable[path]}
                    continue
                idle[path] = b.idle_sockets(path)
                log("[idle] %s: %s" % (path, idle[path]))
        kicks = {}
        if not a.only or "kicks" in a.only:
            b.idle_pause()
            for path in ("driver", "run"):
                if path in b.unavailable:
                    kicks[path] = {"error": b.unavailable[path]}
                    continue
                kicks[path] = b.kicks(path)
                log("[kicks] %s: %s" % (path, kicks[path]))
        costs = b.costs() if not a.only or "cost" in a.only else {}
    finally:
        b.stop_all()

    # ---- the table -----------------------------------------------------------
    log("")
    # columns wide enough for "conc (wake-ups per unit)" and
    # "1051610 [1014270-1052550]"
    log("%-31s" % "workload (unit)" + "".join("%-27s" % p for p in PATHS))
    rows = []
    for name, _, _, metric, _ in WORKLOADS:
        if name not in b.results:
            continue
        for m in [metric] + EXTRA_METRICS.get(name, []):
            cells = []
            for path in PATHS:
                vals = [float(r[m]) for r in b.results[name].get(path, [])
                        if m in r]
                if path in b.unavailable or not any(
                        k.startswith(path) for k in b.results[name]):
                    cells.append("n/a")  # not measured on this path
                elif not vals:
                    cells.append("failed")
                else:
                    med, lo, hi = summary(vals)
                    cells.append("%s [%s-%s]" % (fmt(med), fmt(lo), fmt(hi)))
            rows.append((name, m, cells))
            log("%-31s" % ("%s (%s)" % (name, UNITS[m])) +
                "".join("%-27s" % c for c in cells))
    log("(median [min-max] of %d runs; rr in microseconds, lower is better)"
        % a.runs)
    for path, why in b.unavailable.items():
        log("n/a (%s): %s" % (path, why))

    # ---- machine-readable lines -------------------------------------------
    med = {}
    for name, _, _, metric, _ in WORKLOADS:
        for path in PATHS:
            vals = [float(r[metric]) for r in
                    b.results.get(name, {}).get(path, [])]
            if vals:
                med[(name, path)] = statistics.median(vals)
    log("")
    for name, c in b.controls.items():
        log("control.%s.direct_rr1_p50_us %.2f" % (name, c))
    for name, _, _, metric, better in WORKLOADS:
        if (name, "direct") not in med:
            continue
        for m in EXTRA_METRICS.get(name, []):
            if m in ("cpu", "wakeups"):
                continue  # cpu.* and wakeups.* lines below
            vals = {p: [float(r[m]) for r in b.results[name].get(p, [])
                        if m in r] for p in PATHS}
            if not vals["direct"]:
                continue
            d_ = statistics.median(vals["direct"])
            for path in ("driver", "run", "slirp"):
                if vals[path] and d_ > 0:
                    log("ratio.%s.%s.%s_vs_direct %.3f" % (
                        name, m, path, statistics.median(vals[path]) / d_))
        for path in ("driver", "run", "slirp"):
            if (name, path) in med:
                log("ratio.%s.%s_vs_direct %.3f" % (
                    name, path, med[(name, path)] / med[(name, "direct")]))
            elif name in b.results:
                log("ratio.%s.%s_vs_direct n/a" % (name, path))
        for path in ("driver", "run"):
            if (name, path) in med and (name, "slirp") in med:
                log("ratio.%s.%s_vs_slirp %.3f" % (
                    name, path, med[(name, path)] / med[(name, "slirp")]))
            elif name in b.results:
                log("ratio.%s.%s_vs_slirp n/a" % (name, path))
    for t in TARGETS:
        name, which, op, bound = t[:4]
        metric = t[4] if len(t) > 4 else None
        a_, b_ = which.split("_vs_")
        label = name if metric is None else "%s.%s" % (name, metric)
        if metric is None:
            va, vb = med.get((name, a_)), med.get((name, b_))
        else:
            va, vb = (statistics.median(
                [float(r[metric]) for r in b.results.get(name, {}).get(p, [])
                 if metric in r] or [float("nan")]) for p in (a_, b_))
            if va != va or vb != vb:  # NaN: not measured on a path
                va = vb = None
        if va is None or vb is None:
            log("target ratio.%s.%s %s %g: n/a" % (label, which, op, bound))
            continue
        v = va / vb
        ok = v >= bound if op == ">=" else v <= bound
        log("target ratio.%s.%s %s %g: %s (%.3f)" % (
            label, which, op, bound, "met" if ok else "NOT met", v))
    for name, _, _, _, _ in WORKLOADS:
        unit = CPU_UNIT.get(name)
        if unit is None or name not in b.results:
            continue
        cm = {}
        for path in PATHS:
            vals = [float(r["cpu"]) for r in b.results[name].get(path, [])
                    if "cpu" in r]
            if vals:
                cm[path] = statistics.median(vals)
                log("cpu.%s.%s.cpu_seconds_per_%s %.4g" % (
                    name, path, unit[2].replace(" ", "_"), cm[path]))
            wv = [float(r["wakeups"]) for r in b.results[name].get(path, [])
                  if "wakeups" in r]
            if wv:
                log("wakeups.%s.%s.per_%s %.4g" % (
                    name, path, unit[2].replace(" ", "_"),
                    statistics.median(wv)))
        for path in ("driver", "run", "slirp"):
            if path in cm and "direct" in cm:
                v = cm[path] / cm["direct"]
                log("cpu.%s.%s_vs_direct %.3f" % (name, path, v))
                if path != "slirp":
                    log("target cpu.%s.%s_vs_direct <= %g: %s (%.3f)" % (
                        name, path, CPU_BOUND,
                        "met" if v <= CPU_BOUND else "NOT met", v))
    for path, d in kicks.items():
        if "error" in d:
            log("kicks.rr1.%s n/a (%s)" % (path, d["error"]))
            continue
        log("kicks.rr1.%s.round_trips %d" % (path, d["round_trips"]))
        for k in ("kicks_per_rt", "interrupts_per_rt", "requests_per_rt"):
            log("kicks.rr1.%s.%s %.3f" % (path, k, d[k]))
        for k, what in (("kicks_per_rt", "kick"),
                        ("interrupts_per_rt", "interrupt")):
            # The samples fall mid round trip: a window that starts
            # between a round trip's SEND and its interrupt counts the
            # interrupt without the SEND, so one more than the round trips
            # is the window's edge, not a second interrupt.
            cnt = d["kicks" if what == "kick" else "notifies"]
            log("target kicks.rr1.%s.%s <= 1: %s (%.4f: %d for %d)" % (
                path, k, "met" if cnt <= d["round_trips"] + 1 else
                "NOT met", d[k], cnt, d["round_trips"]))
    for path, d in idle.items():
        if "error" in d:
            log("mem.idle.%s n/a (%s)" % (path, d["error"]))
            continue
        log("mem.idle.%s.sockets %d" % (path, d["sockets"]))
        log("mem.idle.%s.rss_bytes_per_socket %.0f" % (
            path, d["per_socket_rss_bytes"]))
        log("mem.idle.%s.anon_bytes_per_socket %.0f" % (
            path, d["per_socket_anon_bytes"]))
        log("mem.idle.%s.open_seconds %.3f" % (path, d["open_seconds"]))
        if "run_threads" in d:
            log("threads.idle.run.hwsock_run %d (%d before the sockets "
                "opened)" % (d["run_threads"], d["run_threads_ready"]))
            log("mem.idle.run.hwsock_run_rss_bytes_per_socket %.0f" %
                d["run_rss_bytes_per_socket"])
        if "per_guest_attach_rss_bytes" in d:
            log("mem.idle.%s.rss_bytes_per_attached_guest %.0f (%d guests)" % (
                path, d["per_guest_attach_rss_bytes"], d["guests"]))
            log("mem.idle.%s.attach_bytes_per_socket_id %.0f (%d ids)" % (
                path, d["attach_bytes_per_id"], b.max_sockets))
            log("target mem.idle.%s.rss_bytes_per_socket <= 512: %s" % (
                path, "met" if d["per_socket_rss_bytes"] <= 512 else
                "NOT met"))
    for k, v in costs.items():
        if k.endswith("!err"):
            log("cost.%s.instructions_per_request n/a (%s)" % (k[:-4], v))
        else:
            log("cost.%s.instructions_per_request %.1f" % (k, v))
    log("load_average.start %.2f %.2f %.2f" % load0)
    log("load_average.end %.2f %.2f %.2f" % os.getloadavg())
    log("elapsed_seconds %.0f" % (time.time() - t_start))

    if a.json:
        with open(a.json, "w") as f:
            json.dump({"results": b.results, "controls": b.controls,
                       "idle": idle, "costs": costs, "kicks": kicks,
                       "unavailable": b.unavailable,
                       "quick": a.quick}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
