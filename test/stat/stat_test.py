#!/usr/bin/env python3
"""Observability end to end: hwsock-vmm's control socket, hwsock-stat, the
pcap capture and the guest driver's own table (hwsock_guest_dump), with
real processes and a real TCP echo server on 127.0.0.1.

  table    N guests each echo M bytes and hold their connection open; the
           socket table (hwsock-stat -j, parsed with json, and the text
           table), its filters, the counters, the latency histograms, the
           guests command and each guest's own dump describe exactly those
           connections; after the guests close, tshark finds N TCP streams
           carrying M bytes each way in the capture
  many     one guest with 300 connections and one with 1: the answer spans
           several 64 KiB chunks and still lists every socket once, whole,
           in (guest, id) order; the guest's own dump lists all 300
  openmetrics  two guests echo M bytes; hwsock-stat --openmetrics is
           checked line by line against the Prometheus text format (families
           contiguous, HELP and TYPE once before their samples, counters
           *_total, label syntax and escapes, no duplicate series, histogram
           buckets cumulative with increasing `le` ending at +Inf equal to
           _count, _sum present) and its values against --counters -j
  control  the control protocol's bounds: unknown commands and filters,
           an over-long command line, the 17th concurrent client, a client
           that never sends a command; the VMM serves on and its fd count
           returns to where it started

Every wait is bounded; a failure says what was expected."""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "vmm"))
import vmm_test  # noqa: E402  (Env, readline_within, Failure, check, ...)
from vmm_test import Failure, check, readline_within, wait_until  # noqa: E402

WAIT = vmm_test.WAIT
N = 3
M = 200000

# Rule 0 denies port 1, rule 1 (line OFFLOAD_LINE) offloads the loopback.
POLICY = """version: 1
default: deny
rules:
  - action: deny
    scheme: tcp
    to: 127.0.0.1
    ports: [1]
    error: EACCES
    reason: nothing listens there
  - action: offload
    scheme: tcp
    direction: outbound
    to: 127.0.0.0/8
    reason: the echo server
"""
OFFLOAD_LINE = 1 + POLICY.splitlines().index("  - action: offload")


class Env(vmm_test.Env):
    def stat(self, *args, expect_rc=0):
        p = subprocess.run([self.args.stat, "--vmm", self.sock, *args],
                           capture_output=True, text=True, timeout=WAIT)
        check(p.returncode == expect_rc,
              "hwsock-stat %s: exit %d (want %d)\nstdout: %s\nstderr: %s" %
              (" ".join(args), p.returncode, expect_rc, p.stdout, p.stderr))
        return p.stdout, p.stderr

    def control(self, line, timeout=WAIT):
        """Sends one command line, returns the whole answer."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.sock + ".ctl")
        try:
            s.sendall(line)
        except BrokenPipeError:
            # A refused client (too many) gets its error and the hang-up
            # at once, maybe before our command went out: read the error.
            pass
        data = b""
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                # The VMM closed with part of an over-long command unread:
                # the answer came before the reset.
                break
            if not b:
                break
            data += b
        s.close()
        return data.decode()

    def policy(self):
        path = os.path.join(self.dir, "policy.yaml")
        with open(path, "w") as f:
            f.write(POLICY)
        return path


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line]


def table_rows(text):
    lines = text.splitlines()
    check(lines and lines[0].split() ==
          ["Netid", "State", "Bytes-In", "Bytes-Out", "Local", "Peer",
           "Guest:Id", "Rule", "Backend", "Fd", "In-flight", "Age",
           "Identity"],
          "table header: %r" % (lines[:1],))
    return [line.split() for line in lines[1:]]


def table(env):
    port = env.echo_server()
    pcap = os.path.join(env.dir, "flows.pcap")
    env.start_vmm("--policy", env.policy(), "--pcap", pcap)
    clients, dumps = [], []
    for _ in range(N):
        p = env.spawn([env.args.client, "--hold", env.sock, str(port), str(M)],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE)
        clients.append(p)
    for p in clients:
        out = []
        while True:
            line = readline_within(p.stdout, WAIT, "a client's 'held' line")
            if line.startswith("held "):
                break
            if not line.startswith("progress "):
                out.append(line)
        dumps.append(out)
    peer = "tcp://127.0.0.1:%d" % port

    # The guest's own view: one ESTAB socket, M bytes each way.
    for out in dumps:
        check(out and out[0].split()[:3] == ["Id", "Netid", "State"],
              "hwsock_guest_dump header: %r" % out)
        rows = [line.split() for line in out[1:]]
        check(len(rows) == 1, "guest dump has %d sockets: %r" % (len(rows), out))
        check(rows[0] == ["0", "tcp", "ESTAB", "*", peer, str(M), str(M), "0"],
              "guest dump row: %r" % rows[0])

    # -j: one JSON object per socket per guest.
    socks = json_lines(env.stat("-j")[0])
    check(len(socks) == N, "hwsock-stat -j: %d sockets, want %d" % (len(socks), N))
    check(len({s["guest"] for s in socks}) == N, "guests not distinct: %r" % socks)
    for s in socks:
        want = {"scheme": "tcp", "state": "ESTAB", "backend": "tcp",
                "rule": 1, "rule_line": OFFLOAD_LINE, "remote": peer,
                "bytes_out": M, "bytes_in": M, "inflight": 0}
        got = {k: s.get(k) for k in want}
        check(got == want, "socket %r\nwant %r" % (s, want))
        check(s["host_fd"] >= 0 and s["local"].startswith("tcp://127.0.0.1:"),
              "host fd / local name: %r" % s)

    # The table: the same sockets, ss-like.
    rows = table_rows(env.stat()[0])
    check(len(rows) == N, "table rows: %r" % rows)
    for r in rows:
        check(r[0] == "tcp" and r[1] == "ESTAB" and r[2] == str(M) and
              r[3] == str(M) and r[5] == "127.0.0.1:%d" % port and
              r[7] == "2@%d" % OFFLOAD_LINE and r[8] == "tcp",
              "table row %r" % r)
    check(sorted(r[6] for r in rows) ==
          sorted("%d:%d" % (s["guest"], s["id"]) for s in socks),
          "Guest:Id column %r" % rows)

    # Filters, applied by the VMM to both forms.
    check(len(table_rows(env.stat("-t")[0])) == N, "-t lost tcp sockets")
    check(table_rows(env.stat("-u")[0]) == [], "-u shows tcp sockets")
    check(table_rows(env.stat("-x")[0]) == [], "-x shows tcp sockets")
    check(table_rows(env.stat("-l")[0]) == [], "-l shows connected sockets")
    check(len(json_lines(env.stat("-j", "-t")[0])) == N, "-j -t lost sockets")
    check(json_lines(env.stat("-j", "-u", "-x")[0]) == [], "-j -u -x not empty")
    check(json_lines(env.stat("-j", "-t", "-l")[0]) == [], "-j -t -l not empty")

    # Counters: JSON and text agree with what the guests did.
    cs = json_lines(env.stat("-j", "--counters")[0])
    check(len(cs) == N, "counters for %d guests" % len(cs))
    for c in cs:
        check(c["verdicts"] == {"offload": 1, "decline": 0, "deny": 0} and
              c["requests_by_op"]["CONNECT"] == 1 and
              c["requests_by_op"]["OPEN"] == 1 and
              c["bytes_out"] == M and c["bytes_in"] == M and
              c["sockets_offloaded"] == 1 and c["errors"] == 0,
              "counters %r" % c)
    text = env.stat("--counters")[0]
    sums = {}
    for key, pat in (("offload",
                      r"^  verdicts\s+offload (\d+)\s+decline 0\s+deny 0$"),
                     ("connect", r"^  by opcode\s+.*\bCONNECT (\d+)\b"),
                     ("out", r"^  bytes\s+out (\d+)\s+in %d$" % M),
                     ("guests", r"^guest (\d+)$")):
        found = re.findall(pat, text, re.M)
        check(len(found) == N, "--counters: %d matches of %r in\n%s" %
              (len(found), pat, text))
        sums[key] = sum(int(x) for x in found)
    check(sums["offload"] == N and sums["connect"] == N and
          sums["out"] == N * M, "--counters sums %r:\n%s" % (sums, text))
    check(sorted(int(x) for x in re.findall(r"^guest (\d+)$", text, re.M)) ==
          sorted(c["guest"] for c in cs), "--counters guests")

    # Latency: one histogram per opcode seen, buckets summing to its count.
    text = env.stat("--latency")[0]
    heads = re.findall(r"^guest (\d+) (\w+): (\d+) completions, p50 ~(\d+) us,"
                       r" p99 ~(\d+) us$", text, re.M)
    by = {(int(g), op): int(n) for g, op, n, _, _ in heads}
    for c in cs:
        for op in ("OPEN", "CONNECT", "SEND", "RECV"):
            check(by.get((c["guest"], op)) == c["requests_by_op"][op],
                  "--latency %s of guest %d: %r, requests %d\n%s" %
                  (op, c["guest"], by.get((c["guest"], op)),
                   c["requests_by_op"][op], text))
    blocks = re.split(r"^guest \d+ \w+: ", text, flags=re.M)[1:]
    check(len(blocks) == len(heads), "latency blocks")
    for (g, op, n, p50, p99), block in zip(heads, blocks):
        counts = [int(x) for x in re.findall(r"us\s+(\d+) \|", block)]
        check(sum(counts) == int(n), "%s histogram sums to %d, not %s:\n%s" %
              (op, sum(counts), n, block))
        check(int(p50) <= int(p99), "p50 > p99 for %s" % op)

    # guests: the pids of the clients, their memory, running.
    gs = json_lines(env.control(b"guests\n"))
    check(sorted(g["pid"] for g in gs) == sorted(p.pid for p in clients) and
          all(g["status"] == "running" and g["mem_bytes"] == 16 << 20 and
              g["sockets_offloaded"] == 1 for g in gs), "guests %r" % gs)

    # Release the clients: they close, detach, and the table empties.
    for p in clients:
        p.stdin.write(b"\n")
        p.stdin.flush()
    for p in clients:
        vmm_test.expect_ok(env, p, M, "a held client")
    wait_until(lambda: env.control(b"sockets\n") == "", "an empty table")
    env.vmm.send_signal(signal.SIGTERM)
    rc, _, _ = env.finish(env.vmm, "hwsock-vmm after SIGTERM")
    check(rc == 0, "hwsock-vmm exit %d" % rc)
    check(not os.path.exists(env.sock + ".ctl"), "control socket left behind")

    # The capture: N TCP streams, M payload bytes each way in each.
    t = subprocess.run([env.args.tshark, "-r", pcap, "-T", "fields",
                        "-e", "tcp.stream", "-e", "tcp.dstport", "-e",
                        "tcp.len", "-e", "tcp.flags.syn", "-e",
                        "tcp.flags.fin"],
                       capture_output=True, text=True, timeout=WAIT)
    check(t.returncode == 0, "tshark: %s" % t.stderr)
    to_srv, from_srv, syn, fin = {}, {}, {}, {}
    for line in t.stdout.splitlines():
        stream, dport, tlen, s, f = line.split("\t")
        d = to_srv if int(dport) == port else from_srv
        d[stream] = d.get(stream, 0) + int(tlen)
        syn[stream] = syn.get(stream, 0) + (s in ("1", "True"))
        fin[stream] = fin.get(stream, 0) + (f in ("1", "True"))
    check(len(syn) == N, "capture has %d TCP streams, want %d" % (len(syn), N))
    for st in syn:
        check(to_srv.get(st) == M and from_srv.get(st) == M,
              "stream %s carries %r/%r bytes, want %d each way" %
              (st, to_srv.get(st), from_srv.get(st), M))
        check(syn[st] == 2 and fin[st] >= 1,
              "stream %s: %d SYN, %d FIN" % (st, syn[st], fin[st]))


def many(env):
    """Answers longer than one 64 KiB chunk stay whole and ordered."""
    port = env.echo_server()
    env.start_vmm("--policy", env.policy())
    k = 300
    big = env.spawn([env.args.client, "--hold", "--conns", str(k), env.sock,
                     str(port), "1000"], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dump = []
    while True:
        line = readline_within(big.stdout, WAIT, "the client's 'held' line")
        if line.startswith("held "):
            break
        if not line.startswith("progress "):
            dump.append(line.split())
    check(len(dump) == k + 1 and
          all(r[1:3] == ["tcp", "ESTAB"] and r[5:7] == ["1000", "1000"]
              for r in dump[1:]) and
          [int(r[0]) for r in dump[1:]] == list(range(k)),
          "guest dump of %d connections: %r" % (k, dump[:3]))
    small = env.spawn([env.args.client, "--hold", env.sock, str(port), "10"],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE)
    while not readline_within(small.stdout, WAIT,
                              "the second client's 'held' line").startswith("held "):
        pass
    text = env.stat("-j")[0]
    check(len(text) > 64 << 10, "answer of %d bytes fits one chunk" % len(text))
    socks = json_lines(text)
    check([(s["guest"], s["id"]) for s in socks] ==
          [(1, i) for i in range(k)] + [(2, 0)],
          "sockets out of order or missing: %r" %
          [(s["guest"], s["id"]) for s in socks][:5])
    check(all(s["bytes_out"] == s["bytes_in"] == (1000 if s["guest"] == 1
                                                  else 10) for s in socks),
          "byte counts")
    check(len(table_rows(env.stat("-t")[0])) == k + 1, "table rows")
    for p, n in ((big, 1000), (small, 10)):
        p.stdin.write(b"\n")
        p.stdin.flush()
        vmm_test.expect_ok(env, p, n, "a held client")


def control(env):
    env.start_vmm()
    base = env.vmm_fds()

    def error_of(answer):
        lines = json_lines(answer)
        check(len(lines) == 1 and "error" in lines[0],
              "want one error line, got %r" % answer)
        return lines[0]["error"]

    check("unknown command" in error_of(env.control(b"frobnicate\n")),
          "unknown command")
    check("unknown filter" in error_of(env.control(b"sockets tcp bogus\n")),
          "unknown filter")
    check("no arguments" in error_of(env.control(b"counters tcp\n")),
          "arguments to counters")
    check("empty" in error_of(env.control(b"\n")), "empty command")
    check("too long" in error_of(env.control(b"s" * 300)), "300-byte command")
    # 256 bytes with the newline is still a command (an unknown one).
    check("unknown command" in error_of(env.control(b"x" * 255 + b"\n")),
          "255 bytes + newline")
    # A command without a newline, then EOF, is still answered.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(WAIT)
    s.connect(env.sock + ".ctl")
    s.sendall(b"guests")
    s.shutdown(socket.SHUT_WR)
    check(s.recv(100) == b"", "guests with no guest attached is empty")
    s.close()
    _, err = env.stat("--counters", "-t", expect_rc=2)
    check("filter the socket table" in err, "--counters -t: %r" % err)

    # 16 clients at once are served; the 17th is refused with an error.
    idle = []
    t0 = time.monotonic()
    for _ in range(16):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(WAIT)
        c.connect(env.sock + ".ctl")
        idle.append(c)
    # connect() returns once queued: wait until the VMM accepted all 16.
    wait_until(lambda: env.vmm_fds() == base + 16,
               "the VMM to accept 16 clients (fds %d, base %d)" %
               (env.vmm_fds(), base))
    check("too many" in error_of(env.control(b"guests\n")), "17th client")
    # A client that sends nothing is dropped after the bound (5 s).
    check(idle[0].recv(100) == b"", "idle client got data")
    waited = time.monotonic() - t0
    check(4.0 < waited < 10.0, "idle client dropped after %.1f s" % waited)
    for c in idle:
        c.close()
    wait_until(lambda: env.vmm_fds() == base,
               "the VMM's fd count to return to %d (now %d)" %
               (base, env.vmm_fds()))
    check(env.control(b"counters\n") == "", "counters with no guest")
    check(env.vmm.poll() is None, "hwsock-vmm died")


METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)\})? (\S+)$" %
                    (METRIC_NAME, LABEL, LABEL))
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_exposition(text):
    """A strict reader of the Prometheus text format (0.0.4). Returns
    {family: (type, [(name, labels dict, value)])}; raises Failure."""
    fams, order, current = {}, [], None
    helped = set()
    check(text.endswith("\n"), "output does not end with a newline")
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d %r" % (n, line)
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            check(re.fullmatch(METRIC_NAME, name) and name not in helped,
                  "bad or second HELP: " + where)
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            check(len(parts) == 4 and parts[3] in TYPES and
                  re.fullmatch(METRIC_NAME, parts[2]) and
                  parts[2] not in fams, "bad or second TYPE: " + where)
            check(parts[2] in helped, "TYPE before HELP: " + where)
            fams[parts[2]] = (parts[3], [])
            order.append(parts[2])
            current = parts[2]
            continue
        check(not line.startswith("#") and line.strip() == line and line,
              "stray line: " + where)
        m = SAMPLE.match(line)
        check(m, "not a sample: " + where)
        name, labels_s, value = m.group(1), m.group(2), m.group(m.lastindex)
        check(current is not None, "sample before any TYPE: " + where)
        typ = fams[current][0]
        allowed = {current}
        if typ == "histogram":
            allowed = {current + s for s in ("_bucket", "_sum", "_count")}
        check(name in allowed,
              "sample of another family (families must be contiguous): " +
              where)
        labels = dict(re.findall(LABEL, labels_s or ""))
        check(len(labels) == len(re.findall(LABEL, labels_s or "")),
              "repeated label: " + where)
        try:
            v = float(value)
        except ValueError:
            raise Failure("bad value: " + where)
        check(v >= 0 and v == v, "negative or NaN value: " + where)
        key = (name, tuple(sorted(labels.items())))
        check(key not in {(x[0], tuple(sorted(x[1].items())))
                          for x in fams[current][1]},
              "duplicate series: " + where)
        fams[current][1].append((name, labels, v))
    for fam, (typ, samples) in fams.items():
        check(samples, "family %s without samples" % fam)
        if typ == "counter":
            check(fam.endswith("_total"), "counter %s lacks _total" % fam)
        if typ != "histogram":
            continue
        series = {}
        for name, labels, v in samples:
            rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
            series.setdefault(rest, {"b": [], "sum": None, "count": None})
            e = series[rest]
            if name.endswith("_bucket"):
                check("le" in labels, "bucket without le in %s" % fam)
                e["b"].append((labels["le"], v))
            elif name.endswith("_sum"):
                e["sum"] = v
            else:
                e["count"] = v
        for rest, e in series.items():
            les = [le for le, _ in e["b"]]
            check(les and les[-1] == "+Inf", "%s %r: no +Inf" % (fam, rest))
            bounds = [float(x) for x in les[:-1]]
            check(bounds == sorted(bounds) and len(set(bounds)) == len(bounds),
                  "%s %r: le not increasing: %r" % (fam, rest, les))
            counts = [v for _, v in e["b"]]
            check(counts == sorted(counts),
                  "%s %r: buckets not cumulative: %r" % (fam, rest, counts))
            check(e["count"] == counts[-1] and e["sum"] is not None,
                  "%s %r: _count %r vs +Inf %r, _sum %r" %
                  (fam, rest, e["count"], counts[-1], e["sum"]))
    return fams


def openmetrics(env):
    port = env.echo_server()
    env.start_vmm("--policy", env.policy())
    clients = []
    for _ in range(2):
        p = env.spawn([env.args.client, "--hold", env.sock, str(port), str(M)],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE)
        clients.append(p)
    for p in clients:
        while not readline_within(p.stdout, WAIT,
                                  "a client's 'held' line").startswith("held "):
            pass
    text = env.stat("--openmetrics")[0]
    fams = parse_exposition(text)
    # Prometheus' own linter on the same text (scripts/deps installs
    # Debian's prometheus package for promtool).
    promtool = shutil.which("promtool")
    check(promtool is not None, "no promtool (scripts/deps: prometheus)")
    r = subprocess.run([promtool, "check", "metrics"],
                       input=text if isinstance(text, bytes) else text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=WAIT)
    check(r.returncode == 0, "promtool check metrics: %r" % r.stdout[-2000:])
    cs = {str(c["guest"]): c for c in json_lines(env.stat("-j", "--counters")[0])}
    check(len(cs) == 2, "counters for %d guests" % len(cs))

    def value(fam, _suffix="", **labels):
        got = [v for n, l, v in fams[fam][1] if n == fam + _suffix and
               all(l.get(k) == x for k, x in labels.items())]
        check(len(got) == 1, "%s %r: %d samples" % (fam, labels, len(got)))
        return got[0]

    for g, c in cs.items():
        check(value("hwsock_requests_total", guest=g) == c["requests"] and
              value("hwsock_sent_bytes_total", guest=g) == M and
              value("hwsock_received_bytes_total", guest=g) == M and
              value("hwsock_sockets_offloaded", guest=g) == 1 and
              value("hwsock_verdicts_total", guest=g, verdict="offload") == 1 and
              value("hwsock_requests_by_opcode_total", guest=g,
                    opcode="CONNECT") == 1,
              "guest %s: metrics disagree with %r" % (g, c))
        check(fams["hwsock_sockets_open"][0] == "gauge" and
              fams["hwsock_request_latency_seconds"][0] == "histogram",
              "types")
        n = value("hwsock_request_latency_seconds", "_bucket", guest=g,
                  opcode="CONNECT", le="+Inf")
        check(n == 1 and
              0 < value("hwsock_request_latency_seconds", "_sum", guest=g,
                        opcode="CONNECT") < 60,
              "CONNECT latency histogram of guest %s" % g)
        recvs = value("hwsock_request_latency_seconds", "_count", guest=g,
                      opcode="RECV")
        check(recvs == c["requests_by_op"]["RECV"],
              "RECV histogram count %r vs %r" % (recvs, c["requests_by_op"]))
    _, err = env.stat("--openmetrics", "--counters", expect_rc=2)
    check("format of its own" in err, "--openmetrics --counters: %r" % err)
    for p in clients:
        p.stdin.write(b"\n")
        p.stdin.flush()
    for p in clients:
        check(p.wait(timeout=WAIT) == 0, "a client failed")


SCENARIOS = {f.__name__: f for f in (table, many, control, openmetrics)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmm", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--echo", required=True)
    ap.add_argument("--stat", required=True)
    ap.add_argument("--tshark", required=True)
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    args = ap.parse_args()
    env = Env(args)
    try:
        SCENARIOS[args.scenario](env)
    except Failure as e:
        print("FAIL %s: %s" % (args.scenario, e), file=sys.stderr)
        if env.vmm is not None:
            print("--- hwsock-vmm stderr ---\n" + env.vmm_stderr(),
                  file=sys.stderr)
        return 1
    finally:
        env.cleanup()
    print("PASS %s" % args.scenario)
    return 0


if __name__ == "__main__":
    sys.exit(main())
