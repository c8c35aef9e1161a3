#!/usr/bin/env python3
"""Trigger a svcdash backup or restore through the API and wait for it.

    svcdash_task.py BASE_URL TOKEN SERVER_PID POST_PATH POLL_PREFIX INTERVAL_S TIMEOUT_S

POSTs `{}` to BASE_URL + POST_PATH, then GETs BASE_URL + POLL_PREFIX/<id> every
INTERVAL_S seconds until the task is `done` (exit 0) or `failed`/`deleted` or
TIMEOUT_S passed (exit 1). Prints one line:

    wall_s child_peak_kib server_anon_peak_kib <the task's last JSON body>

wall_s runs from just before the POST to the poll that saw `done`.
child_peak_kib is the largest VmHWM seen among SERVER_PID's pg_dump /
pg_restore / psql descendants at the polls (a lower bound of their peak).
server_anon_peak_kib is the largest RssAnon of SERVER_PID seen at the polls:
its own memory, without the pages of its program and libraries that VmHWM
also counts (a lower bound of its peak).

Environment (both optional):
  SVCDASH_TASK_TOOLS  comma-separated process names to sample instead of the
                      PostgreSQL tools (e.g. mariadb-backup,mbstream)
  SVCDASH_TASK_TRACE  a file to write, at the end, one line per descendant
                      process of SERVER_PID seen at the polls:
                          pid comm first_seen last_seen
                      (Unix times, to the poll: a process lives from up to one
                      interval before first_seen to up to one after last_seen)

One process does all the polling: the shell would fork curl, ps, awk and
python at every poll, and on a small machine that steals a noticeable share of
the CPU from the very server being measured.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

TOOLS = {"pg_dump", "pg_dumpall", "pg_restore", "psql"}
if os.environ.get("SVCDASH_TASK_TOOLS"):
    TOOLS = set(os.environ["SVCDASH_TASK_TOOLS"].split(","))

# pid -> [comm, first_seen, last_seen] of every descendant seen (SVCDASH_TASK_TRACE).
SEEN: dict[int, list] = {}


def request(method: str, url: str, token: str) -> tuple[int, bytes]:
    data = b"{}" if method == "POST" else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", token)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def child_tool_peak(root: int) -> int:
    parent: dict[int, int] = {}
    comm: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        pid = int(name)
        comm[pid] = stat[stat.index("(") + 1 : stat.rindex(")")]
        parent[pid] = int(stat[stat.rindex(")") + 2 :].split()[1])
    peak = 0
    now = time.time()
    for pid, name in comm.items():
        if name not in TOOLS and not TRACE:
            continue
        p = parent.get(pid, 0)
        while p > 1 and p != root:
            p = parent.get(p, 0)
        if p != root:
            continue
        if TRACE:
            seen = SEEN.setdefault(pid, [name, now, now])
            seen[0], seen[2] = name, now
            if name not in TOOLS:
                continue
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
    return peak


TRACE = os.environ.get("SVCDASH_TASK_TRACE")


def rss_anon(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def write_trace() -> None:
    if TRACE:
        with open(TRACE, "w") as f:
            for pid, (name, first, last) in sorted(SEEN.items(), key=lambda kv: kv[1][1]):
                f.write(f"{pid} {name} {first:.3f} {last:.3f}\n")


def main(argv: list[str]) -> int:
    if len(argv) != 7:
        sys.stderr.write(__doc__)
        return 2
    base, token, server, post, poll, interval, timeout = argv
    server_pid, interval_s, timeout_s = int(server), float(interval), float(timeout)

    t0 = time.monotonic()
    code, body = request("POST", base + post, token)
    if code not in (200, 201, 202):
        sys.stderr.write(f"POST {post}: HTTP {code}: {body[:1000]!r}\n")
        return 1
    task_id = json.loads(body)["id"]
    peak = anon = 0
    while True:
        peak = max(peak, child_tool_peak(server_pid))
        anon = max(anon, rss_anon(server_pid))
        code, body = request("GET", f"{base}{poll}/{task_id}", token)
        if code != 200:
            sys.stderr.write(f"GET {poll}/{task_id}: HTTP {code}: {body[:1000]!r}\n")
            return 1
        task = json.loads(body)
        if task["status"] == "done":
            break
        if task["status"] in ("failed", "deleted"):
            sys.stderr.write(f"task {task_id} {task['status']}: {body.decode()}\n")
            return 1
        if time.monotonic() - t0 > timeout_s:
            sys.stderr.write(f"task {task_id} still {task['status']} after {timeout_s} s\n")
            return 1
        time.sleep(interval_s)
    wall = time.monotonic() - t0
    write_trace()
    print(f"{wall:.3f} {peak} {anon} {json.dumps(task)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
