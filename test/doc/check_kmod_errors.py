#!/usr/bin/env python3
"""The Linux guest module (guest-driver/linux) is written from PROTOCOL.md
alone, without the project's headers. Its status table must know every
errno-valued status that PROTOCOL.md §11 lists: a code the module lacks
reaches the program as EIO although the device said exactly what failed.

  check_kmod_errors.py docs/PROTOCOL.md guest-driver/linux/vq.c

Fails naming each §11 name (value < 1000, i.e. a Linux errno) missing from
the `known[]` array of hws_status_to_errno()."""
import re
import sys


def doc_errnos(path):
    text = open(path, encoding="utf-8").read()
    sec = text.split("\n## 11.", 1)[1].split("\n## ", 1)[0]
    names = {}
    for m in re.finditer(r"^\| `HWSOCK_(E[A-Z]+)` \| (\d+) \| `(E[A-Z]+)` \|",
                         sec, re.M):
        if int(m.group(2)) < 1000:
            names[m.group(1)] = int(m.group(2))
    return names


def module_known(path):
    text = open(path, encoding="utf-8").read()
    m = re.search(r"hws_status_to_errno\(u32 st\)\s*\{.*?known\[\]\s*=\s*\{(.*?)\};",
                  text, re.S)
    if not m:
        sys.exit("%s: no known[] table in hws_status_to_errno()" % path)
    return set(re.findall(r"\b(E[A-Z]+)\b", m.group(1)))


def main():
    doc, mod = sys.argv[1], sys.argv[2]
    want = doc_errnos(doc)
    if len(want) < 10:
        sys.exit("%s: §11 table not found or too short (%d rows)" % (doc, len(want)))
    have = module_known(mod)
    missing = sorted(set(want) - have, key=want.get)
    for n in missing:
        print("%s: status %s (%d) from PROTOCOL.md §11 is not in known[]: "
              "the program would see EIO" % (mod, n, want[n]))
    if missing:
        sys.exit(1)
    print("%d errno statuses of PROTOCOL.md §11 known to the module" % len(want))


main()
