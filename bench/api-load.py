#!/usr/bin/env python3
"""API load benchmark: svcdash's authenticated listing under wrk, against the
least an authenticated route costs. It prints figures; it is not a test and
passes or fails nothing but its own setup.

What it does:
  1. starts a release `svcdash serve` on a fresh temporary data dir, provisions
     two Redis instances through the Open Service Broker API, makes a local
     user with a bearer token, and takes one real backup of each;
  2. seeds the state store (SQLite, while svcdash runs) with copies of those
     backups, so that the listed instances have BENCH_LISTED backups (20 and
     100 by default), and with copies of the instance, BENCH_PER_INSTANCE
     backups each: first to BENCH_SMALL backups in all, then to BENCH_LARGE.
     The copies are listed `failed` ("seeded: no engine"), so that svcdash does
     not try to start engines that do not exist; their rows are as large as
     real ones;
  3. at each size, for every connection count and every round, runs wrk
     (BENCH_DURATION seconds each) against, in turn:
       api-N     GET /v1/instances/:id/backups of the instance with N backups
                 (bearer token)
       page-N    GET /service-instances/:id/backups, the Backups page (bearer)
       baseline  GET /v1/instances/:id/backups on the auth_baseline example:
                 the same bearer check on the same state, then an empty list
  4. prints each answer's size, then req/s, p50 and p99 latency and errors
     (non-2xx, socket errors) of each, as the median and the range over the
     rounds; each api's and page's throughput as a share of the baseline's;
     and whether the targets hold in every round: >= 50 % of baseline,
     p99 < 10 ms, no error.

Usage (from anywhere; paths are relative to the repository root):
  cargo build --release -p svcdash --bin svcdash --example auth_baseline
  bench/api-load.py

Environment:
  SVCDASH_BIN          svcdash binary (default target/release/svcdash)
  BASELINE_BIN         the baseline (default target/release/examples/auth_baseline)
  BENCH_SMALL          backups in the state at the first size (default 1000)
  BENCH_LARGE          backups at the second size (default 100000)
  BENCH_PER_INSTANCE   backups per seeded instance (default 100)
  BENCH_LISTED         backups of the listed instances (default "20 100")
  BENCH_CONNECTIONS    wrk connection counts (default "64 256")
  BENCH_DURATION       seconds per wrk run (default 10)
  BENCH_ROUNDS         rounds per size and connection count (default 3)
  BENCH_WRK_THREADS    wrk threads (default 2)
  BENCH_OUT            directory for a copy of the report (default bench/out)
  BENCH_KEEP_TMP       1: keep the temporary directory

Needs: wrk (Debian package `wrk`), python3, redis-server. wrk, svcdash and
the baseline share the machine's cores; every figure is taken the same way.
"""

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SVCDASH_BIN = os.environ.get("SVCDASH_BIN", f"{ROOT}/target/release/svcdash")
BASELINE_BIN = os.environ.get("BASELINE_BIN", f"{ROOT}/target/release/examples/auth_baseline")
SMALL = int(os.environ.get("BENCH_SMALL", "1000"))
LARGE = int(os.environ.get("BENCH_LARGE", "100000"))
PER_INSTANCE = int(os.environ.get("BENCH_PER_INSTANCE", "100"))
LISTED = [int(n) for n in os.environ.get("BENCH_LISTED", "20 100").split()]
CONNECTIONS = [int(c) for c in os.environ.get("BENCH_CONNECTIONS", "64 256").split()]
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WRK_THREADS = int(os.environ.get("BENCH_WRK_THREADS", "2"))
OUT = os.environ.get("BENCH_OUT", f"{ROOT}/bench/out")

BROKER = ("bench", "benchpw")
ORG, SPACE = "bench-org", "bench-space"
TARGET_SHARE, TARGET_P99_MS = 0.50, 10.0

REPORT: list[str] = []


def log(msg: str) -> None:
    print(f"==> {msg}", file=sys.stderr, flush=True)


def say(line: str = "") -> None:
    print(line, flush=True)
    REPORT.append(line)


def die(msg: str) -> None:
    raise SystemExit(f"error: {msg}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body=None, headers=None, auth=None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    req.add_header("X-Broker-API-Version", "2.17")
    if auth:
        import base64

        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def answers(url: str, **kwargs) -> bool:
    """Whether a GET of url answers 200 (a server still starting refuses)."""
    try:
        return http("GET", url, **kwargs)[0] == 200
    except OSError:
        return False


def wait_until(what: str, check, timeout_s: float, every_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            die(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(every_s)


class Bench:
    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="svcdash-api-bench.")
        # svcdash runs its engines as unprivileged users when it runs as root.
        os.chmod(self.tmp, 0o755)
        self.data = f"{self.tmp}/data"
        os.makedirs(self.data)
        # svcdash reads every SVCDASH_ variable as configuration: SVCDASH_BIN is not.
        inherited = {k: v for k, v in os.environ.items() if k != "SVCDASH_BIN"}
        self.env = dict(
            inherited,
            SVCDASH_DATA=self.data,
            SVCDASH_BROKER__USERNAME=BROKER[0],
            SVCDASH_BROKER__PASSWORD=BROKER[1],
        )
        self.server = None
        self.baseline = None
        self.listed: dict[int, str] = {}  # backups -> instance id

    # --- processes ----------------------------------------------------------

    def start(self) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        log(f"starting svcdash on {self.base} (data: {self.data})")
        self.server = subprocess.Popen(
            [SVCDASH_BIN, "serve", "--listen", f"127.0.0.1:{port}", "--public-url", self.base],
            env=self.env,
            stdout=open(f"{self.tmp}/svcdash.log", "w"),
            stderr=subprocess.STDOUT,
        )
        url = f"{self.base}/v2/catalog"
        wait_until("svcdash answering", lambda: self.alive(self.server) and answers(url, auth=BROKER), 60)

    def start_baseline(self) -> None:
        port = free_port()
        self.baseline_base = f"http://127.0.0.1:{port}"
        log(f"starting the baseline on {self.baseline_base}")
        self.baseline = subprocess.Popen(
            [BASELINE_BIN, f"127.0.0.1:{port}"],
            env=dict(self.env, SVCDASH_LOG__LEVEL="warn"),
            stdout=open(f"{self.tmp}/baseline.log", "w"),
            stderr=subprocess.STDOUT,
        )
        url = f"{self.baseline_base}/v1/instances/{self.listed[LISTED[0]]}/backups"
        wait_until(
            "baseline answering",
            lambda: self.alive(self.baseline) and answers(url, headers={"Authorization": self.token}),
            60,
        )

    def alive(self, proc) -> bool:
        if proc.poll() is not None:
            die(f"{proc.args[0]} exited with {proc.returncode}; see {self.tmp}")
        return True

    def cli(self, *args: str) -> str:
        out = subprocess.run([SVCDASH_BIN, *args], env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if out.returncode != 0:
            die(f"svcdash {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def stop(self) -> None:
        for proc in (self.baseline, self.server):
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if os.environ.get("BENCH_KEEP_TMP") == "1":
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # --- the real instance and backup --------------------------------------

    def provision(self) -> None:
        code, body = http("GET", f"{self.base}/v2/catalog", auth=BROKER)
        catalog = json.loads(body)
        service = next(s for s in catalog["services"] if s["name"] == "redis")
        plan = next(p for p in service["plans"] if p["name"] == "single-small")
        instances = [self.provision_one(service["id"], plan["id"]) for _ in LISTED]
        self.cli("users", "create", "bench")
        self.cli("users", "grant", "bench", "--tenant", ORG)
        self.token = self.cli("token", "--user", "bench").strip().splitlines()[-1]
        if not self.token.lower().startswith("bearer "):
            die(f"svcdash token printed {self.token!r}")
        for instance in instances:
            self.back_up(instance)
        self.listed = dict(zip(LISTED, instances))

    def provision_one(self, service_id: str, plan_id: str) -> str:
        instance = str(uuid.uuid4())
        log(f"provisioning Redis instance {instance}")
        code, body = http(
            "PUT",
            f"{self.base}/v2/service_instances/{instance}?accepts_incomplete=true",
            {
                "service_id": service_id,
                "plan_id": plan_id,
                "organization_guid": ORG,
                "space_guid": SPACE,
                "context": {"platform": "cloudfoundry", "organization_guid": ORG, "space_guid": SPACE},
            },
            auth=BROKER,
        )
        if code not in (201, 202):
            die(f"provisioning: HTTP {code}: {body[:500]!r}")
        url = f"{self.base}/v2/service_instances/{instance}/last_operation?service_id={service_id}&plan_id={plan_id}"

        def provisioned():
            code, body = http("GET", url, auth=BROKER)
            state = json.loads(body).get("state") if code == 200 else None
            if state == "failed":
                die(f"provisioning failed: {body!r}")
            return state == "succeeded"

        wait_until("provisioning", provisioned, 300)
        return instance

    def back_up(self, instance: str) -> None:
        log(f"taking a real backup of {instance}")
        api = {"Authorization": self.token}
        code, body = http("POST", f"{self.base}/v1/instances/{instance}/backups", {}, headers=api)
        if code != 200:
            die(f"backup: HTTP {code}: {body[:500]!r}")
        seq = json.loads(body)["id"]

        def backed_up():
            code, body = http("GET", f"{self.base}/v1/instances/{instance}/backups/{seq}", headers=api)
            status = json.loads(body).get("status") if code == 200 else None
            if status in ("failed", "deleted"):
                die(f"backup {status}: {body!r}")
            return status == "done"

        wait_until("the backup", backed_up, 120)

    # --- seeding ------------------------------------------------------------

    def seed(self, total_backups: int) -> tuple[int, int]:
        """Copies the real instances and backups until the listed instances have
        their LISTED backups and the state holds total_backups backups,
        PER_INSTANCE per seeded instance."""
        db = sqlite3.connect(f"{self.data}/svcdash.db", timeout=60)
        db.row_factory = sqlite3.Row
        cols = {t: [r["name"] for r in db.execute(f"PRAGMA table_info({t})")] for t in ("instances", "jobs", "backups")}
        real = db.execute("SELECT * FROM instances WHERE guid = ?", (self.listed[LISTED[0]],)).fetchone()

        def insert(table: str, row: dict) -> int:
            names = [c for c in cols[table] if c != "id"]
            sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
            return db.execute(sql, [row.get(c) for c in names]).lastrowid

        def add_backups(instance_id: int, upto: int) -> None:
            have = db.execute("SELECT coalesce(max(seq), 0) FROM backups WHERE instance_id = ?", (instance_id,)).fetchone()[0]
            first = "SELECT * FROM backups WHERE instance_id = ? ORDER BY seq LIMIT 1"
            real_backup = db.execute(first, (instance_id,)).fetchone() or db.execute(first, (real["id"],)).fetchone()
            real_job = db.execute("SELECT * FROM jobs WHERE id = ?", (real_backup["job_id"],)).fetchone()
            for seq in range(have + 1, upto + 1):
                job = dict(real_job)
                job["instance_id"] = instance_id
                job_id = insert("jobs", job)
                backup = dict(real_backup)
                backup.update(instance_id=instance_id, seq=seq, job_id=job_id)
                backup["object_key"] = f"{real_backup['object_key']}.seed-{instance_id}-{seq}"
                insert("backups", backup)

        with db:
            for backups, guid in self.listed.items():
                add_backups(db.execute("SELECT id FROM instances WHERE guid = ?", (guid,)).fetchone()[0], backups)
            instances = db.execute("SELECT count(*) FROM instances").fetchone()[0]
            n = instances
            while db.execute("SELECT count(*) FROM backups").fetchone()[0] < total_backups:
                copy = dict(real)
                copy.update(
                    guid=str(uuid.uuid4()),
                    name=f"seed-{n}",
                    backup_guid=str(uuid.uuid4()),
                    local_name=f"seed-{n}",
                    tenant_id=f"seed-org-{n % 100}",
                    subtenant_id=f"seed-space-{n}",
                    state="failed",
                    state_reason="seeded: no engine",
                )
                add_backups(insert("instances", copy), PER_INSTANCE)
                n += 1
        counts = db.execute("SELECT (SELECT count(*) FROM instances), (SELECT count(*) FROM backups)").fetchone()
        db.execute("PRAGMA optimize")
        db.close()
        return counts[0], counts[1]

    # --- load ---------------------------------------------------------------

    def wrk(self, url: str, connections: int, accept: str) -> dict:
        out = subprocess.run(
            [
                "wrk",
                f"-t{WRK_THREADS}",
                f"-c{connections}",
                f"-d{DURATION}s",
                "--latency",
                "-H",
                f"Authorization: {self.token}",
                "-H",
                f"Accept: {accept}",
                url,
            ],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            die(f"wrk: {out.stderr.strip()}")
        return parse_wrk(out.stdout)


def to_ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if not m:
        die(f"cannot read wrk latency {value!r}")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def parse_wrk(text: str) -> dict:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    total = re.search(r"(\d+) requests in", text)
    if not (rps and p50 and p99 and total):
        die(f"cannot read wrk's output:\n{text}")
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return {
        "rps": float(rps.group(1)),
        "p50": to_ms(p50.group(1)),
        "p99": to_ms(p99.group(1)),
        "errors": errors,
        "requests": int(total.group(1)),
    }


def spread(values: list[float], fmt: str) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def measure(bench: Bench, label: str) -> None:
    targets = {}
    for n, guid in bench.listed.items():
        targets[f"api-{n}"] = (f"{bench.base}/v1/instances/{guid}/backups", "application/json")
        targets[f"page-{n}"] = (f"{bench.base}/service-instances/{guid}/backups", "text/html")
    guid = bench.listed[LISTED[0]]
    targets["baseline"] = (f"{bench.baseline_base}/v1/instances/{guid}/backups", "application/json")
    apis = [name for name in targets if name != "baseline"]
    sizes = {}
    # Every answer has to be right before it is counted.
    for name, (url, accept) in targets.items():
        code, body = http("GET", url, headers={"Authorization": bench.token, "Accept": accept})
        if code != 200:
            die(f"{name}: HTTP {code}: {body[:300]!r}")
        if name.startswith("api-") and len(json.loads(body)) != int(name[4:]):
            die(f"{name} listed {len(json.loads(body))} backups")
        if name.startswith("page-") and body.count(b"<tr data-backup=") != int(name[5:]):
            die(f"{name} shows {body.count(b'<tr data-backup=')} backups")
        sizes[name] = len(body)
    say()
    say(f"## {label}")
    say()
    say("| connections | route | answer KB | req/s | p50 ms | p99 ms | errors | share of baseline |")
    say("|---|---|---|---|---|---|---|---|")
    verdicts = []
    for connections in CONNECTIONS:
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        for r in range(ROUNDS):
            for name, (url, accept) in targets.items():
                result = bench.wrk(url, connections, accept)
                runs[name].append(result)
                log(
                    f"{label}, {connections} connections, round {r + 1}, {name}: {result['rps']:.0f} req/s, "
                    f"p50 {result['p50']:.2f} ms, p99 {result['p99']:.2f} ms, {result['errors']} errors"
                )
        shares = {api: [a["rps"] / b["rps"] for a, b in zip(runs[api], runs["baseline"])] for api in apis}
        for name in targets:
            rs = runs[name]
            share = spread([s * 100 for s in shares[name]], "{:.0f} %") if name in apis else ""
            say(
                f"| {connections} | {name} | {sizes[name] / 1024:.1f} | {spread([x['rps'] for x in rs], '{:.0f}')} | "
                f"{spread([x['p50'] for x in rs], '{:.2f}')} | {spread([x['p99'] for x in rs], '{:.2f}')} | "
                f"{sum(x['errors'] for x in rs)} | {share} |"
            )
        for api in apis:
            verdicts.append(
                (
                    f"{connections} connections, {api}",
                    all(s >= TARGET_SHARE for s in shares[api]),
                    all(x["p99"] < TARGET_P99_MS for x in runs[api]),
                    all(x["errors"] == 0 for rs in runs.values() for x in rs),
                )
            )
    say()
    for what, share_ok, p99_ok, no_errors in verdicts:
        say(
            f"- {what}: >= {TARGET_SHARE:.0%} of baseline in every round: "
            f"{'met' if share_ok else 'MISSED'}; p99 < {TARGET_P99_MS:.0f} ms in every round: "
            f"{'met' if p99_ok else 'MISSED'}; no error: {'met' if no_errors else 'MISSED'}"
        )


def main() -> int:
    for tool in ("wrk",):
        if not shutil.which(tool):
            die(f"{tool} not found (Debian package {tool})")
    for binary in (SVCDASH_BIN, BASELINE_BIN):
        if not os.access(binary, os.X_OK):
            die(f"no binary at {binary}: cargo build --release -p svcdash --bin svcdash --example auth_baseline")
    bench = Bench()
    try:
        bench.start()
        bench.provision()
        bench.start_baseline()
        say(f"# svcdash API under load ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs)")
        say()
        say(
            f"wrk -t{WRK_THREADS} -d{DURATION}s, {ROUNDS} rounds; figures are medians "
            "(range over the rounds); api-N and page-N list an instance with N backups"
        )
        for size in (SMALL, LARGE):
            instances, backups = bench.seed(size)
            measure(bench, f"{backups} backups of {instances} instances in the state")
    finally:
        bench.stop()
    os.makedirs(OUT, exist_ok=True)
    path = f"{OUT}/api-load-{time.strftime('%Y%m%d-%H%M%S')}.md"
    with open(path, "w") as f:
        f.write("\n".join(REPORT) + "\n")
    log(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
