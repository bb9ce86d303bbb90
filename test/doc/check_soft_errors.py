#!/usr/bin/env python3
"""The soft errors of datagram sockets (PROTOCOL.md §16.9) are one list in
three places: the document, hwsock_err_is_soft() in include/hwsock/common.h
(the device and hwsock-run, which once knew only three of them) and the
Linux guest module's hws_soft_errno() (written from the document alone).

  check_soft_errors.py docs/PROTOCOL.md include/hwsock/common.h \\
                       guest-driver/linux/sock.c

Fails naming each error one place has and another lacks."""
import re
import sys


def section(text, start):
    return text.split(start, 1)[1].split("\n### ", 1)[0]


def doc_list(path):
    sec = section(open(path, encoding="utf-8").read(),
                  "\n### 16.9 Soft errors of datagram sockets")
    # the paragraph that lists them: "... statuses is soft:\n\n`HWSOCK_...`"
    para = sec.split("statuses is soft:", 1)[1].strip().split("\n\n", 1)[0]
    para = para.split("(", 1)[0]  # the list ends where the remark begins
    return set(re.findall(r"`HWSOCK_(E[A-Z]+)`", para))


def function_cases(path, head, prefix):
    text = open(path, encoding="utf-8").read()
    m = re.search(re.escape(head) + r".*?\{(.*?)\n\}", text, re.S)
    if not m:
        print(f"{path}: {head} not found", file=sys.stderr)
        sys.exit(1)
    return set(re.findall(r"case\s+" + re.escape(prefix) + r"(E[A-Z]+)\s*:",
                          m.group(1)))


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    lists = {
        "PROTOCOL.md §16.9": doc_list(sys.argv[1]),
        "hwsock_err_is_soft()": function_cases(
            sys.argv[2], "static inline int hwsock_err_is_soft(int err)",
            "HWSOCK_"),
        "hws_soft_errno()": function_cases(
            sys.argv[3], "static bool hws_soft_errno(int err)", "-"),
    }
    bad = 0
    for name, got in lists.items():
        if not got:
            print(f"{name}: no errors found", file=sys.stderr)
            bad = 1
    every = set().union(*lists.values())
    for name, got in lists.items():
        for e in sorted(every - got):
            print(f"{name} lacks {e}", file=sys.stderr)
            bad = 1
    if not bad:
        print("soft errors agree:", " ".join(sorted(every)))
    return bad


if __name__ == "__main__":
    sys.exit(main())
