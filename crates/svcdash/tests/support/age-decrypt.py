#!/usr/bin/env python3
"""Decrypts a passphrase-encrypted age file with Debian's `age` binary.

    age-decrypt.py IN OUT    (the passphrase comes on standard input)

The age CLI reads a passphrase only from a terminal, so this runs it on a
pseudo-terminal and types the passphrase when it asks, as a person would.
"""

import os
import pty
import sys


def main() -> int:
    src, dst = sys.argv[1], sys.argv[2]
    passphrase = sys.stdin.readline().rstrip("\n")
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("age", ["age", "--decrypt", "--output", dst, src])
    seen = b""
    typed = False
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if not typed and b"passphrase" in seen.lower():
            os.write(fd, passphrase.encode() + b"\r")
            typed = True
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.stderr.write(seen.decode(errors="replace"))
    return code


if __name__ == "__main__":
    sys.exit(main())
