#!/usr/bin/env python3
"""Holds docs/PROTOCOL.md to the public headers.

Usage: check_protocol_doc.py WIRE_DUMP PROTOCOL.md

WIRE_DUMP is the test/doc/wire_dump program: it prints "KEY VALUE" lines
(see wire_dump.c). The document's tables are read in two regular forms:

  Constant tables: the header row's first cell is "name". Each row's first
  cell is a `KEY` in backticks. The column "value" is checked against KEY;
  the columns "bit", "errno" and "message" against KEY.bit, KEY.errno and
  KEY.message. Other columns are free text.

  Layout tables: preceded (blank lines allowed) by the comment
  <!-- layout: STRUCT --> and with the header cells "offset", "size" and
  "field". Each row's field cell is a `field` (an array suffix such as
  `reserved[3]` is allowed); its offset and size are checked against
  offsetof(STRUCT.field) and sizeof(STRUCT.field). A size cell of a
  flexible array member (no size printed) is free text.

Fails (exit 1), naming the line, when a documented value differs, when the
document names a constant the program does not print, when a constant the
program prints is missing from the document, or when the headers define a
protocol constant that wire_dump does not print (so that a constant added
to a header cannot slip past both the program and the document).
"""
import os
import re
import subprocess
import sys

CHECKED_COLUMNS = ("value", "bit", "errno", "message")
LAYOUT_MARK = re.compile(r"^<!--\s*layout:\s*([A-Za-z_][A-Za-z0-9_]*)\s*-->$")
INT = re.compile(r"^-?\d+$")

# Headers whose object-like HWSOCK_* macros and enum constants are protocol
# constants wire_dump must print. Not uri.h: of it only HWSOCK_URI_MAX and
# HWSOCK_ZONE_MAX bound the wire; the rest is C API.
SCANNED_HEADERS = ("wire.h", "loopback.h", "device.h")
# Headers whose named structs are wire layouts (device.h's are C API).
LAYOUT_HEADERS = ("wire.h", "loopback.h")
NOT_CONSTANTS = re.compile(r"^HWSOCK_[A-Z0-9_]*_H$")  # include guards


def fail_list():
    errors = []

    def err(where, msg):
        errors.append(f"{where}: {msg}")

    return errors, err


def run_dump(path):
    try:
        out = subprocess.run([path], check=True, capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        print(f"{path}: cannot run: {e}", file=sys.stderr)
        sys.exit(1)
    values = {}
    for n, line in enumerate(out.splitlines(), 1):
        key, sep, val = line.partition(" ")
        if not sep or not key or key in values:
            print(f"{path}: output line {n} malformed or repeated: {line!r}",
                  file=sys.stderr)
            sys.exit(1)
        values[key] = val
    if not values:
        print(f"{path}: printed nothing", file=sys.stderr)
        sys.exit(1)
    return values


def cells(line):
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|"):
        s = s[:-1]
    return [c.strip() for c in s.split("|")]


def unquote(cell):
    c = cell.strip()
    if len(c) >= 2 and c[0] == c[-1] and c[0] in "`\"":
        c = c[1:-1]
    return c


def backticked(cell):
    m = re.fullmatch(r"`([^`]+)`", cell.strip())
    return m.group(1) if m else None


def tables(lines):
    """Yields (start line number, header cells, [(line number, cells)],
    layout struct or None) for every markdown table."""
    i = 0
    while i < len(lines):
        if not lines[i].lstrip().startswith("|"):
            i += 1
            continue
        start = i
        # the layout mark: the last non-blank line before the table
        mark = None
        j = start - 1
        while j >= 0 and lines[j].strip() == "":
            j -= 1
        if j >= 0:
            m = LAYOUT_MARK.match(lines[j].strip())
            if m:
                mark = m.group(1)
        block = []
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            block.append((i + 1, cells(lines[i])))
            i += 1
        header = [h.lower() for h in block[0][1]]
        rows = [r for r in block[1:]
                if not all(re.fullmatch(r":?-+:?", c) for c in r[1])]
        yield start + 1, header, rows, mark


def compare(err, where, key, want, cell):
    got = unquote(cell)
    if INT.match(want):
        try:
            n = int(got.replace("_", ""), 0)
        except ValueError:
            err(where, f"{key}: '{cell}' is not a number (headers: {want})")
            return
        if n != int(want):
            err(where, f"{key} is {want} in the headers, the document says "
                       f"{got}")
    elif got != want:
        err(where, f"{key} is '{want}' in the headers, the document says "
                   f"'{got}'")


def check_doc(doc_path, values, err):
    with open(doc_path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    seen = set()
    for start, header, rows, mark in tables(lines):
        if header and header[0] == "name":
            for n, row in rows:
                where = f"{doc_path}:{n}"
                key = backticked(row[0]) if row else None
                if key is None:
                    err(where, "a row of a 'name' table must start with a "
                               "`NAME` in backticks")
                    continue
                for col, cell in zip(header[1:], row[1:]):
                    if col not in CHECKED_COLUMNS:
                        continue
                    k = key if col == "value" else f"{key}.{col}"
                    if k not in values:
                        err(where, f"{k} is not a constant of the headers "
                                   f"(not printed by wire_dump)")
                        continue
                    seen.add(k)
                    compare(err, where, k, values[k], cell)
        elif {"offset", "size", "field"} <= set(header):
            if mark is None:
                err(f"{doc_path}:{start}", "layout table without a "
                    "'<!-- layout: STRUCT -->' line before it")
                continue
            if f"sizeof({mark})" not in values:
                err(f"{doc_path}:{start}", f"layout of unknown struct {mark}")
                continue
            io, isz, ifd = (header.index(h) for h in ("offset", "size",
                                                      "field"))
            for n, row in rows:
                where = f"{doc_path}:{n}"
                if len(row) <= max(io, isz, ifd):
                    err(where, "layout row has too few cells")
                    continue
                name = backticked(row[ifd])
                if name is None:
                    err(where, "a layout row's field must be a `field` in "
                               "backticks")
                    continue
                name = re.sub(r"\[[^\]]*\]$", "", name)
                ko, ks = f"offsetof({mark}.{name})", f"sizeof({mark}.{name})"
                if ko not in values:
                    err(where, f"{mark} has no field '{name}'")
                    continue
                seen.add(ko)
                compare(err, where, ko, values[ko], row[io])
                if ks in values:
                    seen.add(ks)
                    compare(err, where, ks, values[ks], row[isz])
    for k in values:
        if k not in seen:
            err(doc_path, f"{k} = {values[k]} is missing from the document")


def header_constants(include_dir, err):
    names = set()
    for h in SCANNED_HEADERS:
        path = os.path.join(include_dir, h)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            err(path, f"cannot read: {e}")
            continue
        for m in re.finditer(r"^#define\s+(HWSOCK_[A-Z0-9_]+)(\(?)", text,
                             re.M):
            if m.group(2) != "(" and not NOT_CONSTANTS.match(m.group(1)):
                names.add((m.group(1), path))
        for body in re.findall(r"\benum\s+\w*\s*\{([^}]*)\}", text):
            for m in re.finditer(r"\b(HWSOCK_[A-Z0-9_]+)\s*=", body):
                names.add((m.group(1), path))
        # fields of the named wire structs: offsetof(STRUCT.field)
        if h not in LAYOUT_HEADERS:
            continue
        for st, body in re.findall(
                r"typedef\s+struct\s+(hwsock_\w+)\s*\{([^}]*)\}", text):
            body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
            for decl in body.split(";"):
                m = re.match(r"\s*(?:const\s+)?\w+\s+(.+)$", decl.strip(),
                             re.S)
                if not m:
                    continue
                for var in m.group(1).split(","):
                    var = re.sub(r"\[.*?\]", "", var).strip(" *\n")
                    if var:
                        names.add((f"offsetof({st}.{var})", path))
    return names


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    dump, doc = sys.argv[1], sys.argv[2]
    values = run_dump(dump)
    errors, err = fail_list()
    check_doc(doc, values, err)
    include_dir = os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(doc))), "include", "hwsock")
    for name, path in sorted(header_constants(include_dir, err)):
        if name not in values:
            err(path, f"{name} is defined but wire_dump does not print it "
                      f"(add it to test/doc/wire_dump.c and to the document)")
    for e in errors:
        print(e)
    if errors:
        print(f"FAIL: {len(errors)} difference(s) between {doc} and the "
              f"headers")
        return 1
    print(f"ok: {len(values)} values of the headers match {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
