#!/usr/bin/env bash
# Point-in-time recovery benchmark: svcdash against pgBackRest, side by side in one
# run, on the same data and the same write load. It prints figures; it is not a
# test and passes or fails nothing but its own setup.
#
# For each of the two:
#   1. a PostgreSQL cluster archiving its write-ahead log (pgBackRest: a cluster
#      this script starts, archive_command = pgbackrest archive-push, zstd
#      compression, aes-256-cbc encryption, as an operator would set it up;
#      svcdash: an instance created with --continuous-archiving), filled with
#      bench/gen-data.sql rows up to BENCH_GIB;
#   2. a base backup (pgBackRest: backup --type=full; svcdash: a backup, which
#      takes the base backup and then the dump: both times are printed);
#   3. a write load of BENCH_WAL_GIB of write-ahead log (more gen-data.sql rows),
#      timed from its start to the moment the archive caught up with it: the
#      archive throughput in segments per second, and the lag after the load;
#   4. a restore to a moment just after the load (pgBackRest: restore --delta
#      --type=time --target-action=promote, then the server's start and replay
#      until it promoted; svcdash: POST /v1/instances/:id/pitr/restore, polled
#      until done), checked by counting the rows.
# Peak RSS: pgBackRest's processes under GNU time; svcdash's server VmHWM, reset
# before each step.
#
# Usage (from anywhere):
#   cargo build --release -p svcdash
#   bench/pitr.sh                         # 1 GiB database, 1 GiB of WAL
#   BENCH_GIB=0.25 BENCH_WAL_GIB=0.25 bench/pitr.sh
#
# Environment: SVCDASH_BIN (default target/release/svcdash), BENCH_GIB,
# BENCH_WAL_GIB, BENCH_OUT (a copy of the report, default bench/out),
# BENCH_KEEP_TMP=1 (keep the temporary folder).
#
# Needs root (pgBackRest's cluster runs as the postgres account), pgbackrest (Debian
# package pgbackrest),
# PostgreSQL 15, python3, curl, GNU time.

set -euo pipefail
export LC_ALL=C PSQLRC=/dev/null PGCONNECT_TIMEOUT=10 PGOPTIONS='-c client_min_messages=warning'

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
SVCDASH_BIN=${SVCDASH_BIN:-$ROOT/target/release/svcdash}
BENCH_GIB=${BENCH_GIB:-1}
BENCH_WAL_GIB=${BENCH_WAL_GIB:-1}
BENCH_OUT=${BENCH_OUT:-$BENCH/out}
PGBIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PATH="$PGBIN:$PATH"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
for t in pgbackrest psql python3 curl /usr/bin/time runuser; do command -v "$t" >/dev/null || die "$t not found"; done
[ "$(id -u)" = 0 ] || die "run as root: the pgBackRest cluster runs as the postgres account"
[ -x "$SVCDASH_BIN" ] || die "no svcdash binary at $SVCDASH_BIN (cargo build --release -p svcdash)"

TARGET_BYTES=$(awk -v g="$BENCH_GIB" 'BEGIN { printf "%d", g * 1073741824 }')
WAL_BYTES=$(awk -v g="$BENCH_WAL_GIB" 'BEGIN { printf "%d", g * 1073741824 }')
tmp=$(mktemp -d "${TMPDIR:-/tmp}/svcdash-pitr-bench.XXXXXX")
chmod 755 "$tmp"
SVC_PID=
PG_STARTED=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +eu
    [ -n "$PG_STARTED" ] && as_pg pg_ctl -D "$tmp/pgbr/data" -m immediate stop >/dev/null 2>&1
    if [ -n "$SVC_PID" ] && kill -0 "$SVC_PID" 2>/dev/null; then
        svcdash instances delete bench >/dev/null 2>&1
        sleep 3
        kill -TERM "$SVC_PID"; wait "$SVC_PID" 2>/dev/null
    fi
    if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_pg() { runuser -u postgres -- "$@"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
json() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# fill URI PSQL...: gen-data.sql batches until the database reaches TARGET_BYTES.
fill() {
    local size rows=50000
    while :; do
        "$@" -q -v ON_ERROR_STOP=1 -v rows="$rows" -f "$BENCH/gen-data.sql" >/dev/null
        size=$("$@" -Atqc 'SELECT pg_database_size(current_database())')
        [ "$size" -lt "$TARGET_BYTES" ] || break
        rows=200000
    done
    "$@" -q -c 'VACUUM (ANALYZE) bench_events, bench_documents, bench_api_keys' >/dev/null
    log "  database: $(mib "$size") MiB"
}

# load PSQL...: writes WAL_BYTES of write-ahead log; prints the LSN it ended at.
load() {
    local start lsn
    start=$("$@" -Atqc 'SELECT pg_current_wal_lsn()')
    while :; do
        "$@" -q -v ON_ERROR_STOP=1 -v rows=100000 -f "$BENCH/gen-data.sql" >/dev/null
        lsn=$("$@" -Atqc "SELECT pg_current_wal_lsn() - '$start'::pg_lsn")
        [ "${lsn%.*}" -lt "$WAL_BYTES" ] || break
    done
    "$@" -Atqc 'SELECT pg_current_wal_lsn()'
}

# caught_up PSQL...: waits until the archiver archived every file before the
# current one (after a switch); prints the number of files it archived so far.
caught_up() {
    local current
    current=$("$@" -Atqc "SELECT pg_walfile_name(pg_switch_wal())")
    for _ in $(seq 36000); do
        "$@" -Atqc "SELECT coalesce(last_archived_wal, '') >= '$current' FROM pg_stat_archiver" | grep -q t && break
        sleep 0.1
    done
    "$@" -Atqc 'SELECT archived_count FROM pg_stat_archiver'
}

declare -A R

# --- pgBackRest ------------------------------------------------------------------

log "pgBackRest $(pgbackrest version | awk '{ print $2 }'): cluster, stanza, data"
mkdir -p "$tmp/pgbr"/{repo,log,lock,spool,run}
chown -R postgres: "$tmp/pgbr"
PGBR_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/pgbr/pgbackrest.conf" <<EOF
[global]
repo1-path=$tmp/pgbr/repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=$(openssl rand -hex 24)
repo1-retention-full=2
compress-type=zst
compress-level=1
log-path=$tmp/pgbr/log
lock-path=$tmp/pgbr/lock
spool-path=$tmp/pgbr/spool
start-fast=y
process-max=2

[bench]
pg1-path=$tmp/pgbr/data
pg1-port=$PGBR_PORT
pg1-socket-path=$tmp/pgbr/run
EOF
chown postgres: "$tmp/pgbr/pgbackrest.conf"
PGBR=(pgbackrest --config="$tmp/pgbr/pgbackrest.conf" --stanza=bench)
as_pg initdb -D "$tmp/pgbr/data" -U postgres --auth=trust >/dev/null
cat >>"$tmp/pgbr/data/postgresql.auto.conf" <<EOF
port = $PGBR_PORT
listen_addresses = ''
unix_socket_directories = '$tmp/pgbr/run'
archive_mode = on
archive_command = '${PGBR[*]} archive-push %p'
archive_timeout = 60
EOF
as_pg pg_ctl -D "$tmp/pgbr/data" -l "$tmp/pgbr/log/postgres.log" -w start >/dev/null
PG_STARTED=1
as_pg "${PGBR[@]}" stanza-create >/dev/null
PGBR_PSQL=(runuser -u postgres -- psql -h "$tmp/pgbr/run" -p "$PGBR_PORT" -U postgres -d postgres)
fill "${PGBR_PSQL[@]}"

log "pgBackRest: full backup"
t0=$(now)
/usr/bin/time -f '%M' -o "$tmp/pgbr/backup.rss" runuser -u postgres -- "${PGBR[@]}" backup --type=full >/dev/null
R[pgbr_backup]=$(secs "$t0" "$(now)")
R[pgbr_backup_rss]=$(( $(cat "$tmp/pgbr/backup.rss") / 1024 ))

log "pgBackRest: $(mib "$WAL_BYTES") MiB of write-ahead log"
a0=$("${PGBR_PSQL[@]}" -Atqc 'SELECT archived_count FROM pg_stat_archiver')
t0=$(now)
load "${PGBR_PSQL[@]}" >/dev/null
t1=$(now)
a1=$(caught_up "${PGBR_PSQL[@]}")
t2=$(now)
R[pgbr_files]=$((a1 - a0))
R[pgbr_load]=$(secs "$t0" "$t1")
R[pgbr_lag]=$(secs "$t1" "$t2")
R[pgbr_rate]=$(awk -v n="${R[pgbr_files]}" -v s="$(secs "$t0" "$t2")" 'BEGIN { printf "%.1f", n / s }')
PGBR_ROWS=$("${PGBR_PSQL[@]}" -Atqc 'SELECT count(*) FROM bench_events')
sleep 1; TARGET=$(date -u +'%Y-%m-%d %H:%M:%S.%6N+00'); sleep 1
"${PGBR_PSQL[@]}" -q -c "INSERT INTO bench_events (created_at, trace_id, span_id, payload) VALUES (now(), 'x', 'y', '{}')"
caught_up "${PGBR_PSQL[@]}" >/dev/null

log "pgBackRest: restore to $TARGET"
as_pg pg_ctl -D "$tmp/pgbr/data" -m fast -w stop >/dev/null
PG_STARTED=
t0=$(now)
/usr/bin/time -f '%M' -o "$tmp/pgbr/restore.rss" runuser -u postgres -- "${PGBR[@]}" restore --delta \
    --type=time "--target=$TARGET" --target-action=promote >/dev/null
t1=$(now)
as_pg pg_ctl -D "$tmp/pgbr/data" -l "$tmp/pgbr/log/postgres.log" -w start >/dev/null
PG_STARTED=1
until [ "$("${PGBR_PSQL[@]}" -Atqc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do sleep 0.1; done
t2=$(now)
R[pgbr_restore]=$(secs "$t0" "$t2")
R[pgbr_restore_files]=$(secs "$t0" "$t1")
R[pgbr_restore_rss]=$(( $(cat "$tmp/pgbr/restore.rss") / 1024 ))
got=$("${PGBR_PSQL[@]}" -Atqc 'SELECT count(*) FROM bench_events')
[ "$got" = "$PGBR_ROWS" ] || die "pgBackRest restored $got rows of bench_events, $PGBR_ROWS were committed before the target"
as_pg pg_ctl -D "$tmp/pgbr/data" -m fast -w stop >/dev/null
PG_STARTED=

# --- svcdash ---------------------------------------------------------------------

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
svcdash() { SVCDASH_DATA="$tmp/data" "$SVCDASH_BIN" "$@" </dev/null; }
mkdir -p "$tmp/data"
log "svcdash: starting on $BASE"
SVCDASH_BROKER__USERNAME=bench SVCDASH_BROKER__PASSWORD=benchpw SVCDASH_DATA="$tmp/data" \
    "$SVCDASH_BIN" serve --listen "127.0.0.1:$PORT" --public-url "$BASE" >"$tmp/svcdash.log" 2>&1 &
SVC_PID=$!
for _ in $(seq 300); do curl -sf -o /dev/null -u bench:benchpw -H 'X-Broker-API-Version: 2.17' "$BASE/v2/catalog" && break; sleep 0.2; done
svcdash users create bench >/dev/null
svcdash users grant bench --tenant bench-org >/dev/null
TOKEN=$(svcdash token --user bench | tail -n 1)
svcdash instances create --service postgresql --plan single-small --tenant bench-org --continuous-archiving --wait bench >/dev/null
IID=$(svcdash instances show bench | awk '/^id:/ { print $2 }')
api() { curl -sS -H "Authorization: $TOKEN" -H 'Content-Type: application/json' "$@"; }
SERVICE_ID=$(curl -sS -u bench:benchpw -H 'X-Broker-API-Version: 2.17' "$BASE/v2/catalog" |
    json "next(s['id'] for s in d['services'] if s['name'] == 'postgresql')")
PLAN_ID=$(curl -sS -u bench:benchpw -H 'X-Broker-API-Version: 2.17' "$BASE/v2/catalog" |
    json "next(p['id'] for s in d['services'] if s['name'] == 'postgresql' for p in s['plans'] if p['name'] == 'single-small')")
URI=$(curl -sS -u bench:benchpw -H 'X-Broker-API-Version: 2.17' -H 'Content-Type: application/json' -X PUT \
    "$BASE/v2/service_instances/$IID/service_bindings/b1" --data "{\"service_id\": \"$SERVICE_ID\", \"plan_id\": \"$PLAN_ID\"}" |
    json 'd["credentials"]["uri"]')
SVC_PSQL=(psql "$URI")
log "svcdash: data"
fill "${SVC_PSQL[@]}"

reset_peak() { echo 5 >"/proc/$SVC_PID/clear_refs"; }
peak() { awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$SVC_PID/status"; }
# wait_task PATH: polls until done; dies when it failed.
wait_task() {
    local status
    for _ in $(seq 72000); do
        status=$(api "$BASE$1" | json 'd["status"]')
        case $status in done) return ;; failed|deleted) die "$1: $(api "$BASE$1")" ;; esac
        sleep 0.1
    done
    die "$1 did not finish"
}

log "svcdash: backup (base backup, then dump)"
reset_peak
t0=$(now)
n=$(api -X POST "$BASE/v1/instances/$IID/backups" | json 'd["id"]')
wait_task "/v1/instances/$IID/backups/$n"
R[svc_backup_job]=$(secs "$t0" "$(now)")
R[svc_backup_rss]=$(peak)
# The base backup's part: from the job's start to the log line that stored it.
R[svc_backup]=$(python3 - "$tmp/svcdash.log" <<'EOF'
import re, sys, datetime
start = end = None
for line in open(sys.argv[1], errors="replace"):
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    stamp = line.split(" ", 1)[0]
    if "job.kind=backup" in line and "job started" in line:
        start = stamp
    if "base backup stored" in line:
        end = stamp
parse = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
print(f"{(parse(end) - parse(start)).total_seconds():.1f}" if start and end else "?")
EOF
)

log "svcdash: $(mib "$WAL_BYTES") MiB of write-ahead log"
reset_peak
a0=$("${SVC_PSQL[@]}" -Atqc 'SELECT archived_count FROM pg_stat_archiver')
t0=$(now)
load "${SVC_PSQL[@]}" >/dev/null
t1=$(now)
# The bound user may not switch files: svcdash closes them every minute at most.
current=$("${SVC_PSQL[@]}" -Atqc 'SELECT pg_walfile_name(pg_current_wal_lsn())')
until "${SVC_PSQL[@]}" -Atqc "SELECT coalesce(last_archived_wal, '') >= '$current' FROM pg_stat_archiver" | grep -q t; do sleep 0.1; done
t2=$(now)
a1=$("${SVC_PSQL[@]}" -Atqc 'SELECT archived_count FROM pg_stat_archiver')
R[svc_files]=$((a1 - a0))
R[svc_load]=$(secs "$t0" "$t1")
R[svc_lag]=$(secs "$t1" "$t2")
R[svc_rate]=$(awk -v n="${R[svc_files]}" -v s="$(secs "$t0" "$t2")" 'BEGIN { printf "%.1f", n / s }')
R[svc_archive_rss]=$(peak)
SVC_ROWS=$("${SVC_PSQL[@]}" -Atqc 'SELECT count(*) FROM bench_events')
sleep 1; TARGET=$(date -u +'%Y-%m-%dT%H:%M:%S.%3NZ'); sleep 1
"${SVC_PSQL[@]}" -q -c "INSERT INTO bench_events (created_at, trace_id, span_id, payload) VALUES (now(), 'x', 'y', '{}')"

log "svcdash: restore to $TARGET"
for _ in $(seq 1200); do
    end=$(api "$BASE/v1/instances/$IID/pitr" | json 'd.get("end_time", "")')
    [[ "$end" > "$TARGET" ]] && break
    sleep 0.1
done
reset_peak
t0=$(now)
seq=$(api -X POST "$BASE/v1/instances/$IID/pitr/restore" --data "{\"target_time\": \"$TARGET\"}" | json 'd["id"]')
wait_task "/v1/instances/$IID/restores/$seq"
R[svc_restore]=$(secs "$t0" "$(now)")
R[svc_restore_rss]=$(peak)
got=$(psql "$URI" -Atqc 'SELECT count(*) FROM bench_events')
[ "$got" = "$SVC_ROWS" ] || die "svcdash restored $got rows of bench_events, $SVC_ROWS were committed before the target"

# --- report ----------------------------------------------------------------------

report() {
    echo "PITR benchmark: $(nproc) cores, database $BENCH_GIB GiB, write load $BENCH_WAL_GIB GiB of WAL, $(date -u +%F)"
    echo
    echo "| | pgBackRest 2.x (zst 1, aes-256-cbc) | svcdash (zstd, age) |"
    echo "|---|---|---|"
    echo "| base backup | ${R[pgbr_backup]} s, ${R[pgbr_backup_rss]} MiB | ${R[svc_backup]} s (the whole job with its dump: ${R[svc_backup_job]} s), ${R[svc_backup_rss]} MiB |"
    echo "| write load (WAL written) | ${R[pgbr_load]} s | ${R[svc_load]} s |"
    echo "| archive caught up after the load | ${R[pgbr_lag]} s | ${R[svc_lag]} s |"
    echo "| files archived, per second from the load's start | ${R[pgbr_files]}, ${R[pgbr_rate]}/s | ${R[svc_files]}, ${R[svc_rate]}/s (server peak ${R[svc_archive_rss]} MiB) |"
    echo "| restore to the end of the load, until promoted | ${R[pgbr_restore]} s (files: ${R[pgbr_restore_files]} s), ${R[pgbr_restore_rss]} MiB | ${R[svc_restore]} s (the whole job: checks, switch, restart), ${R[svc_restore_rss]} MiB |"
    echo
    echo "svcdash/pgBackRest restore: $(awk -v a="${R[svc_restore]}" -v b="${R[pgbr_restore]}" 'BEGIN { printf "%.2f", a / b }') (target <= 1.00)"
}
mkdir -p "$BENCH_OUT"
report | tee "$BENCH_OUT/pitr-$(date -u +%Y%m%dT%H%M%SZ).md"
