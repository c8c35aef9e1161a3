#!/usr/bin/env python3
"""Run a command or a pipeline and report its wall time, CPU time and peak RSS.

    measure.py [--in FILE] [--out FILE] [--err FILE] [--report FILE] -- CMD... [:: CMD...]...

Stages are separated by a lone `::` argument and connected stdout to stdin,
like a shell pipeline, but without a shell: arguments are passed as they are,
so a connection URI with odd characters needs no quoting. --in feeds the first
stage from FILE, --out writes the last stage's stdout to FILE (default: this
process's stdout), --err appends every stage's stderr to FILE.

Peak RSS is measured per stage. Each stage runs under GNU time
(/usr/bin/time, or $MEASURE_TIME), which reports its child's ru_maxrss. Without
GNU time each stage is reaped with wait4() and its own rusage is used; then a
stage's figure is at least this Python process's RSS at the time of the fork
(~10-15 MiB: Linux carries the forking process's high-water mark over exec), so
small stages read high. The report is one line:

    wall_s cpu_s max_rss_kib sum_rss_kib rss_kib_per_stage(comma-separated)

max_rss_kib is the largest single process; sum_rss_kib adds up the stages'
peaks, an upper bound of the pipeline's footprint (the stages run at the same
time, but need not peak at the same time). cpu_s is user + system time of all
stages. The exit status is 0 if every stage succeeded, else the first failing
stage's status (like `set -o pipefail`); failures are also printed on stderr.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

GNU_TIME = os.environ.get("MEASURE_TIME", "/usr/bin/time")


def usage() -> None:
    sys.stderr.write(__doc__)
    sys.exit(2)


def main(argv: list[str]) -> int:
    opts = {"--in": None, "--out": None, "--err": None, "--report": None}
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] not in opts or i + 1 >= len(argv):
            usage()
        opts[argv[i]] = argv[i + 1]
        i += 2
    stages: list[list[str]] = [[]]
    for arg in argv[i + 1:]:
        if arg == "::":
            stages.append([])
        else:
            stages[-1].append(arg)
    if i >= len(argv) or any(not s for s in stages):
        usage()

    stdin = open(opts["--in"], "rb") if opts["--in"] else None
    stdout = open(opts["--out"], "wb") if opts["--out"] else None
    stderr = open(opts["--err"], "ab") if opts["--err"] else None

    use_time = os.access(GNU_TIME, os.X_OK)
    tmpdir = tempfile.mkdtemp(prefix="measure.")
    reports = [os.path.join(tmpdir, str(n)) for n in range(len(stages))]

    start = time.monotonic()
    procs: list[subprocess.Popen] = []
    prev = stdin
    for n, cmd in enumerate(stages):
        last = n == len(stages) - 1
        if use_time:
            cmd = [GNU_TIME, "-f", "%M %U %S", "-o", reports[n], "--"] + cmd
        p = subprocess.Popen(
            cmd,
            stdin=prev,
            stdout=stdout if last else subprocess.PIPE,
            stderr=stderr,
        )
        if prev is not None and prev is not stdin:
            prev.close()  # only the next stage holds the read end now
        prev = p.stdout
        procs.append(p)

    rss, cpu, status = [], 0.0, 0
    for n, p in enumerate(procs):
        _, wstatus, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(wstatus)
        kib, utime, stime = ru.ru_maxrss, ru.ru_utime, ru.ru_stime  # KiB on Linux
        if use_time:
            # GNU time puts "Command exited with non-zero status N" before the
            # format's line when the command fails; the figures come last.
            try:
                with open(reports[n]) as f:
                    kib, utime, stime = f.read().splitlines()[-1].split()
            except (OSError, IndexError, ValueError):
                pass  # time itself was killed: keep the wait4() figures
        rss.append(int(kib))
        cpu += float(utime) + float(stime)
        if p.returncode != 0:
            sys.stderr.write(f"measure.py: stage {n + 1} ({stages[n][0]}) exited with {p.returncode}\n")
            if status == 0:
                status = p.returncode if p.returncode > 0 else 128 - p.returncode
    wall = time.monotonic() - start
    shutil.rmtree(tmpdir, ignore_errors=True)

    line = f"{wall:.3f} {cpu:.3f} {max(rss)} {sum(rss)} {','.join(map(str, rss))}\n"
    if opts["--report"]:
        with open(opts["--report"], "w") as f:
            f.write(line)
    else:
        sys.stderr.write(line)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
