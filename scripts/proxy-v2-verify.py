#!/usr/bin/env python3
"""Checks the PROXY protocol v2 header hwsock-vmm puts on a connection
(docs/IDENTITY.md): parses it, and with the VMM's key verifies its
HMAC-SHA256 TLV (0xE1), which covers the whole header with that TLV's value
set to zeros.

  proxy-v2-verify.py [--key FILE] [FILE]
      reads one header from FILE (default: stdin; raw bytes, data may
      follow) and prints it as one JSON line
  proxy-v2-verify.py [--key FILE] --listen HOST:PORT [--count N]
      a tiny server: for each of N connections (default 1) reads the header
      and what follows until the client's EOF (at most 64 KiB, 10 s) and
      prints one JSON line with both

JSON members: family ("tcp4"/"tcp6"), src, dst, src_port, dst_port, name
(TLV 0xE0), unique_id (TLV 0x05, hex), hmac ("ok", "bad", "absent", or
"unchecked" without --key), header (hex); with --listen also data (hex of
the bytes after the header).

Exit status: 0 when every header parsed and, with --key, carries a valid
HMAC; 1 when one did not (malformed, tampered, wrong key, no HMAC); 2 on a
usage error. The key file's exact bytes are the key.

As a library: parse(header) -> dict, verify(header, key) -> bool,
read_header(sock_or_file) -> bytes. Python 3 standard library only."""
import argparse
import hashlib
import hmac
import ipaddress
import json
import socket
import struct
import sys

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
TLV_UNIQUE_ID = 0x05
TLV_VM_NAME = 0xE0
TLV_HMAC = 0xE1
HMAC_LEN = 32
MAX_HEADER = 16 + 65535


class Malformed(ValueError):
    pass


def _read_exact(read, n):
    buf = b""
    while len(buf) < n:
        chunk = read(n - len(buf))
        if not chunk:
            raise Malformed("end of stream after %d of %d header bytes"
                            % (len(buf), n))
        buf += chunk
    return buf


def read_header(src):
    """Reads exactly one header (16 bytes, then the length they give) from
    a socket or a binary file; nothing after it."""
    read = src.recv if hasattr(src, "recv") else src.read
    fixed = _read_exact(read, 16)
    if fixed[:12] != SIG:
        raise Malformed("no PROXY v2 signature")
    (length,) = struct.unpack("!H", fixed[14:16])
    return fixed + _read_exact(read, length)


def parse(h):
    """The header's fields; raises Malformed on anything the spec (or this
    VMM's use of it) does not allow."""
    if len(h) < 16 or h[:12] != SIG:
        raise Malformed("no PROXY v2 signature")
    if h[12] != 0x21:
        raise Malformed("version/command 0x%02x, not 0x21 (v2, PROXY)" % h[12])
    (length,) = struct.unpack("!H", h[14:16])
    if len(h) != 16 + length:
        raise Malformed("length %d, header holds %d" % (length, len(h) - 16))
    out = {}
    if h[13] == 0x11:
        if length < 12:
            raise Malformed("short TCP4 addresses")
        out["family"] = "tcp4"
        out["src"] = str(ipaddress.IPv4Address(h[16:20]))
        out["dst"] = str(ipaddress.IPv4Address(h[20:24]))
        out["src_port"], out["dst_port"] = struct.unpack("!HH", h[24:28])
        off = 28
    elif h[13] == 0x21:
        if length < 36:
            raise Malformed("short TCP6 addresses")
        out["family"] = "tcp6"
        out["src"] = str(ipaddress.IPv6Address(h[16:32]))
        out["dst"] = str(ipaddress.IPv6Address(h[32:48]))
        out["src_port"], out["dst_port"] = struct.unpack("!HH", h[48:52])
        off = 52
    else:
        raise Malformed("family/protocol 0x%02x, not TCP4/TCP6" % h[13])
    seen = set()
    while off < len(h):
        if off + 3 > len(h):
            raise Malformed("truncated TLV at byte %d" % off)
        typ = h[off]
        (tlen,) = struct.unpack("!H", h[off + 1:off + 3])
        val = h[off + 3:off + 3 + tlen]
        if len(val) != tlen:
            raise Malformed("TLV 0x%02x runs past the header" % typ)
        if typ in seen and typ in (TLV_UNIQUE_ID, TLV_VM_NAME, TLV_HMAC):
            raise Malformed("TLV 0x%02x twice" % typ)
        seen.add(typ)
        if typ == TLV_VM_NAME:
            out["name"] = val.decode("utf-8")
        elif typ == TLV_UNIQUE_ID:
            if not 1 <= tlen <= 128:
                raise Malformed("unique id of %d bytes" % tlen)
            out["unique_id"] = val.hex()
        elif typ == TLV_HMAC:
            if tlen != HMAC_LEN:
                raise Malformed("HMAC TLV of %d bytes" % tlen)
            out["_hmac_at"] = off + 3
        off += 3 + tlen
    return out


def verify(h, key):
    """True when the header's HMAC TLV is HMAC-SHA256(key, header with the
    TLV's value zeroed). False when absent, malformed or wrong."""
    try:
        at = parse(h).get("_hmac_at")
    except (Malformed, UnicodeDecodeError):
        return False
    if at is None:
        return False
    zeroed = h[:at] + bytes(HMAC_LEN) + h[at + HMAC_LEN:]
    want = hmac.new(key, zeroed, hashlib.sha256).digest()
    return hmac.compare_digest(want, h[at:at + HMAC_LEN])


def report(h, key, data=None):
    """One JSON-able dict for a header; (dict, ok)."""
    try:
        info = parse(h)
    except (Malformed, UnicodeDecodeError) as e:
        out = {"error": str(e), "header": h.hex()}
        if data is not None:
            out["data"] = data.hex()
        return out, False
    at = info.pop("_hmac_at", None)
    if key is None:
        info["hmac"] = "unchecked" if at is not None else "absent"
        ok = True
    elif at is None:
        info["hmac"] = "absent"
        ok = False
    else:
        ok = verify(h, key)
        info["hmac"] = "ok" if ok else "bad"
    info["header"] = h.hex()
    if data is not None:
        info["data"] = data.hex()
    return info, ok


def serve(addr, key, count):
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(8)
    print("listening", flush=True)
    all_ok = True
    for _ in range(count):
        c, _ = ls.accept()
        c.settimeout(10)
        with c:
            try:
                h = read_header(c)
            except (Malformed, OSError) as e:
                print(json.dumps({"error": str(e)}), flush=True)
                all_ok = False
                continue
            data = b""
            try:
                while len(data) < 65536:
                    chunk = c.recv(65536 - len(data))
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            info, ok = report(h, key, data)
            all_ok = all_ok and ok
            print(json.dumps(info, sort_keys=True), flush=True)
    ls.close()
    return all_ok


def main():
    ap = argparse.ArgumentParser(
        description="Check a hwsock-vmm PROXY v2 identity header.")
    ap.add_argument("--key", help="the VMM's --identity-key file")
    ap.add_argument("--listen", metavar="HOST:PORT",
                    help="accept connections and check each one's header")
    ap.add_argument("--count", type=int, default=1,
                    help="connections to accept with --listen (default 1)")
    ap.add_argument("file", nargs="?", help="a header (default: stdin)")
    a = ap.parse_args()
    key = None
    if a.key is not None:
        with open(a.key, "rb") as f:
            key = f.read()
    if a.listen:
        return 0 if serve(a.listen, key, a.count) else 1
    src = open(a.file, "rb") if a.file and a.file != "-" else sys.stdin.buffer
    with src:
        try:
            h = read_header(src)
        except Malformed as e:
            print(json.dumps({"error": str(e)}))
            return 1
    info, ok = report(h, key)
    print(json.dumps(info, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
