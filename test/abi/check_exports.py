#!/usr/bin/env python3
"""A shared library exports exactly what its public headers declare.

    check_exports.py --lib LIB.so --map LIB.map HEADER...

Compares three lists and names every difference:
  - the dynamic symbols LIB.so defines (nm -D --defined-only),
  - the functions and objects the HEADERs declare with HWSOCK_EXTERN,
  - the symbols the version script LIB.map lists (no globs allowed).
An export without a declaration is a symbol leaked by accident (or a
declaration forgotten); a declaration without an export is an API users
cannot link; a map entry without an export or an export outside the map
means the map drifted. Exit status 1 on any difference.

    check_exports.py --print HEADER...
prints the declared names, one a line (to write a map from).
"""
import argparse
import re
import subprocess
import sys

# Defined by the toolchain in every shared object, not by us.
TOOLCHAIN = {"_init", "_fini", "_edata", "_end", "__bss_start"}


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def declared(headers):
    """Names declared with HWSOCK_EXTERN: the identifier right before the
    parameter list (functions; `void(name)(...)` too) or before the ';'
    (objects)."""
    names = {}
    for path in headers:
        text = strip_comments(open(path, encoding="utf-8").read())
        # macro definitions are not declarations
        text = re.sub(r"^\s*#[^\n]*(\\\n[^\n]*)*", " ", text, flags=re.M)
        for m in re.finditer(r"\bHWSOCK_EXTERN\b([^;{]*)", text):
            decl = m.group(1)
            head = decl.split("(")[0] if "(" in decl else decl
            if re.search(r"\(\s*\*", decl.split(")")[0] + ")"):
                head = decl  # a function returning a function pointer: rare
            # `void(name)(args)`: the name is parenthesised
            paren = re.match(r"[^(]*\(\s*([A-Za-z_]\w*)\s*\)\s*\(", decl)
            if paren:
                name = paren.group(1)
            else:
                ids = re.findall(r"[A-Za-z_]\w*", head)
                if not ids:
                    continue
                name = ids[-1]
            names[name] = path
    return names


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        kind, sym = parts[-2], parts[-1]
        if kind == "A":  # a version node's own symbol
            continue
        name, _, version = sym.partition("@")
        version = version.lstrip("@")
        if name in TOOLCHAIN:
            continue
        syms[name] = version
    return syms


def mapped(path):
    """{symbol: node} from a version script; globs are refused."""
    text = strip_comments(open(path, encoding="utf-8").read())
    syms, errors = {}, []
    for node, body in re.findall(r"([A-Za-z_][\w.]*)\s*\{(.*?)\}", text, re.S):
        section = None
        for tok in re.split(r"[\s;]+", body):
            if not tok:
                continue
            if tok in ("global:", "local:"):
                section = tok
                continue
            if section == "local:":
                if tok != "*":
                    errors.append(f"{path}: node {node}: local entry {tok!r} "
                                  "(only 'local: *')")
                continue
            if re.search(r"[*?\[]", tok):
                errors.append(f"{path}: node {node}: glob {tok!r}: list every "
                              "exported symbol by name")
                continue
            if tok in syms:
                errors.append(f"{path}: {tok} listed in {syms[tok]} and {node}")
            syms[tok] = node
    return syms, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib")
    ap.add_argument("--map")
    ap.add_argument("--print", action="store_true")
    ap.add_argument("headers", nargs="+")
    a = ap.parse_args()
    decl = declared(a.headers)
    if a.print:
        for n in sorted(decl):
            print(n)
        return 0
    if not a.lib or not a.map:
        ap.error("--lib and --map are required")
    exp = exported(a.lib)
    mp, errors = mapped(a.map)
    lib = a.lib
    for n in sorted(set(exp) - set(decl)):
        errors.append(f"{lib}: exports {n} which no HWSOCK_EXTERN declaration "
                      "in the public headers declares")
    for n in sorted(set(decl) - set(exp)):
        errors.append(f"{decl[n]}: declares {n} which {lib} does not export")
    for n in sorted(set(mp) - set(exp)):
        errors.append(f"{a.map}: lists {n} ({mp[n]}) which {lib} does not "
                      "define")
    for n in sorted(set(exp) - set(mp)):
        errors.append(f"{lib}: exports {n} outside its version script")
    for n in sorted(set(exp) & set(mp)):
        if exp[n] != mp[n]:
            errors.append(f"{lib}: {n} has version {exp[n]!r}, the map says "
                          f"{mp[n]}")
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        return 1
    print(f"{lib}: {len(exp)} exports, each declared and versioned")
    return 0


if __name__ == "__main__":
    sys.exit(main())
