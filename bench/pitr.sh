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
#   3. a write load of BENCH_WAL_GIB of write-ahead log at one 16 MiB file a
#      second (updates of random stretches of bench_events), looking each second
#      how many complete files the archiver has not taken yet: the most it fell
#      behind, the time it needed after the load to take every complete file, and
#      files archived per second from the load's start;
#   4. BENCH_ROUNDS restores of each, alternating, to a moment just after the
#      load (pgBackRest: restore --delta --type=time --target-timeline=current
#      --target-action=promote, then the server's start and replay
#      until it promoted; svcdash: POST /v1/instances/:id/pitr/restore, polled
#      until done), checked against a fingerprint of bench_events (row count and
#      the sum of the times the load updated) taken before the target.
# Peak RSS: pgBackRest's processes under GNU time; svcdash's server VmHWM, reset
# before each step.
#
# Usage (from anywhere):
#   cargo build --release -p svcdash
#   bench/pitr.sh                         # 1 GiB database, 1 GiB of WAL
#   BENCH_GIB=0.25 BENCH_WAL_GIB=0.25 bench/pitr.sh
#
# BENCH_PLAN=cluster-small measures svcdash's restore of a three-node cluster
# (node 0 replays, then the other two copy it) against pgBackRest's single
# server; the report adds when node 0 served the restored data.
#
# Environment: SVCDASH_BIN (default target/release/svcdash), BENCH_GIB, BENCH_PLAN,
# BENCH_WAL_GIB, BENCH_ROUNDS (restores of each, alternating, default 3), BENCH_OUT (a copy of the report, default bench/out),
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
# svcdash reads every SVCDASH_ variable as configuration, and "bin" is none of it.
export -n SVCDASH_BIN
BENCH_GIB=${BENCH_GIB:-1}
BENCH_WAL_GIB=${BENCH_WAL_GIB:-1}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_PLAN=${BENCH_PLAN:-single-small}
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
        # Deleting is a job (it removes the instance's OS account too): let it finish.
        for _ in $(seq 120); do
            shown=$(svcdash instances show bench 2>/dev/null) || break
            grep -qE '^state: *(deleted|failed)' <<<"$shown" && break
            sleep 0.5
        done
        sleep 2
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

SEG=16777216
# fingerprint PSQL...: bench_events' row count and the sum of its times, which the
# load changes.
fingerprint() { "$@" -Atqc 'SELECT count(*) || $$:$$ || sum(extract(epoch FROM created_at)) FROM bench_events'; }

# seg_no: the number of the write-ahead log file named by the SQL expression $1.
seg_no() { echo "('x' || substr($1, 9, 8))::bit(32)::bigint * 256 + ('x' || substr($1, 17, 8))::bit(32)::bigint"; }

# behind PSQL...: how many complete write-ahead log files the archiver has not
# taken yet (the file being written is not complete).
behind() {
    "$@" -Atqc "SELECT $(seg_no 'pg_walfile_name(pg_current_wal_insert_lsn())') - 1
        - coalesce($(seg_no last_archived_wal), 0) FROM pg_stat_archiver"
}

# paced PSQL...: writes WAL_BYTES of write-ahead log at one 16 MiB file a second
# (updates of random stretches of bench_events, as an application changing its
# rows), and looks each second how far the archiver is behind. Sets P_late (the
# seconds in which the load could not write its file) and P_max_behind (files).
paced() {
    local n=$((WAL_BYTES / SEG)) i next b
    P_late=0 P_max_behind=0
    next=$(now)
    for ((i = 0; i < n; i++)); do
        next=$(awk -v t="$next" 'BEGIN { printf "%.3f", t + 1 }')
        "$@" -q -v ON_ERROR_STOP=1 -c "DO \$\$ DECLARE
                s pg_lsn := pg_current_wal_insert_lsn();
                top bigint := (SELECT max(id) FROM bench_events);
                lo bigint;
            BEGIN
                WHILE pg_current_wal_insert_lsn() - s < $SEG LOOP
                    lo := (random() * top)::bigint;
                    UPDATE bench_events SET created_at = created_at + interval '1 ms' WHERE id > lo AND id <= lo + 2000;
                END LOOP;
            END \$\$"
        b=$(behind "$@")
        [ "$b" -le "$P_max_behind" ] || P_max_behind=$b
        left=$(awk -v t="$next" -v n="$(now)" 'BEGIN { printf "%.3f", t - n }')
        case $left in -*) P_late=$((P_late + 1)) ;; *) sleep "$left" ;; esac
    done
}

# archived PSQL...: waits until the archiver took every complete file.
archived() {
    for _ in $(seq 36000); do
        [ "$(behind "$@")" -gt 0 ] || return 0
        sleep 0.1
    done
    die "the archiver did not catch up within an hour"
}

# caught_up PSQL...: switches to a new file (as a superuser) and waits until the
# archiver took the one it closed.
caught_up() {
    local current
    current=$("$@" -Atqc "SELECT pg_walfile_name(pg_switch_wal())")
    for _ in $(seq 36000); do
        "$@" -Atqc "SELECT coalesce(last_archived_wal, '') >= '$current' FROM pg_stat_archiver" | grep -q t && break
        sleep 0.1
    done
}

# write_load NAME PSQL...: the paced load and the archiver's figures, into R.
write_load() {
    local name=$1 a0 a1 t0 t1 t2
    shift
    a0=$("$@" -Atqc 'SELECT archived_count FROM pg_stat_archiver')
    t0=$(now)
    paced "$@"
    t1=$(now)
    archived "$@"
    t2=$(now)
    a1=$("$@" -Atqc 'SELECT archived_count FROM pg_stat_archiver')
    R[${name}_files]=$((a1 - a0))
    R[${name}_load]=$(secs "$t0" "$t1")
    R[${name}_late]=$P_late
    R[${name}_behind]=$P_max_behind
    R[${name}_lag]=$(secs "$t1" "$t2")
    R[${name}_rate]=$(awk -v n="$((a1 - a0))" -v s="$(secs "$t0" "$t2")" 'BEGIN { printf "%.2f", n / s }')
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

log "pgBackRest: $(mib "$WAL_BYTES") MiB of write-ahead log, a file a second"
write_load pgbr "${PGBR_PSQL[@]}"
PGBR_ROWS=$(fingerprint "${PGBR_PSQL[@]}")
sleep 1; TARGET=$(date -u +'%Y-%m-%d %H:%M:%S.%6N+00'); sleep 1
"${PGBR_PSQL[@]}" -q -c "INSERT INTO bench_events (created_at, trace_id, span_id, payload) VALUES (now(), 'x', 'y', '{}')"
caught_up "${PGBR_PSQL[@]}" >/dev/null

PGBR_TARGET=$TARGET
as_pg pg_ctl -D "$tmp/pgbr/data" -m fast -w stop >/dev/null
PG_STARTED=

# pgbr_restore: one restore to PGBR_TARGET, until promoted and checked; its times
# are added to R.
pgbr_restore() {
    local t0 t1 t2 got
    log "pgBackRest: restore to $PGBR_TARGET"
    t0=$(now)
    /usr/bin/time -f '%M' -o "$tmp/pgbr/restore.rss" runuser -u postgres -- "${PGBR[@]}" restore --delta \
        --type=time "--target=$PGBR_TARGET" --target-timeline=current --target-action=promote >/dev/null
    t1=$(now)
    as_pg pg_ctl -D "$tmp/pgbr/data" -l "$tmp/pgbr/log/postgres.log" -w start >/dev/null
    PG_STARTED=1
    until [ "$("${PGBR_PSQL[@]}" -Atqc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do
        as_pg pg_ctl -D "$tmp/pgbr/data" status >/dev/null || die "PostgreSQL stopped while replaying: $(tail -n 3 "$tmp/pgbr/log/postgres.log")"
        sleep 0.1
    done
    t2=$(now)
    R[pgbr_restore]+=" $(secs "$t0" "$t2")"
    R[pgbr_restore_files]+=" $(secs "$t0" "$t1")"
    R[pgbr_restore_rss]+=" $(( $(cat "$tmp/pgbr/restore.rss") / 1024 ))"
    got=$(fingerprint "${PGBR_PSQL[@]}")
    [ "$got" = "$PGBR_ROWS" ] || die "pgBackRest restored bench_events as $got, it was $PGBR_ROWS before the target"
    as_pg pg_ctl -D "$tmp/pgbr/data" -m fast -w stop >/dev/null
    PG_STARTED=
}

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
svcdash instances create --service postgresql --plan "$BENCH_PLAN" --tenant bench-org --continuous-archiving --wait bench >/dev/null
IID=$(svcdash instances show bench | awk '/^id:/ { print $2 }')
api() { curl -sS -H "Authorization: $TOKEN" -H 'Content-Type: application/json' "$@"; }
SERVICE_ID=$(curl -sS -u bench:benchpw -H 'X-Broker-API-Version: 2.17' "$BASE/v2/catalog" |
    json "next(s['id'] for s in d['services'] if s['name'] == 'postgresql')")
PLAN_ID=$(curl -sS -u bench:benchpw -H 'X-Broker-API-Version: 2.17' "$BASE/v2/catalog" |
    json "next(p['id'] for s in d['services'] if s['name'] == 'postgresql' for p in s['plans'] if p['name'] == '$BENCH_PLAN')")
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

log "svcdash: $(mib "$WAL_BYTES") MiB of write-ahead log, a file a second"
reset_peak
write_load svc "${SVC_PSQL[@]}"
R[svc_archive_rss]=$(peak)
SVC_ROWS=$(fingerprint "${SVC_PSQL[@]}")
sleep 1; TARGET=$(date -u +'%Y-%m-%dT%H:%M:%S.%3NZ'); sleep 1
"${SVC_PSQL[@]}" -q -c "INSERT INTO bench_events (created_at, trace_id, span_id, payload) VALUES (now(), 'x', 'y', '{}')"

log "svcdash: waiting for the window to reach $TARGET"
for _ in $(seq 1200); do
    end=$(api "$BASE/v1/instances/$IID/pitr" | json 'd.get("end_time", "")')
    [[ "$end" > "$TARGET" ]] && break
    sleep 0.1
done
SVC_TARGET=$TARGET

# svc_restore: one restore to SVC_TARGET through the API, until done and checked;
# then waits for the backup svcdash queues after it, outside the time.
svc_restore() {
    local t0 seq got newest
    log "svcdash: restore to $SVC_TARGET"
    reset_peak
    t0=$(now)
    seq=$(api -X POST "$BASE/v1/instances/$IID/pitr/restore" --data "{\"target_time\": \"$SVC_TARGET\"}" | json 'd["id"]')
    wait_task "/v1/instances/$IID/restores/$seq"
    R[svc_restore]+=" $(secs "$t0" "$(now)")"
    R[svc_restore_rss]+=" $(peak)"
    # A cluster: from the request to the log line saying node 0 serves the result.
    [ "$BENCH_PLAN" = single-small ] || R[svc_node0]+=" $(python3 - "$tmp/svcdash.log" "$t0" <<'EOF'
import re, sys, datetime
start = datetime.datetime.fromtimestamp(float(sys.argv[2]), datetime.timezone.utc)
served = None
for line in open(sys.argv[1], errors="replace"):
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    if "node 0 runs on the restored data" in line:
        served = datetime.datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00"))
print(f"{(served - start).total_seconds():.1f}" if served and served > start else "?")
EOF
)"
    got=$(fingerprint psql "$URI")
    [ "$got" = "$SVC_ROWS" ] || die "svcdash restored bench_events as $got, it was $SVC_ROWS before the target"
    newest=$(api "$BASE/v1/instances/$IID/backups" | json 'max(b["id"] for b in d)')
    wait_task "/v1/instances/$IID/backups/$newest"
}

# --- restores, in rounds -----------------------------------------------------------

for ((round = 1; round <= BENCH_ROUNDS; round++)); do
    log "round $round of $BENCH_ROUNDS"
    pgbr_restore
    svc_restore
done

# --- report ----------------------------------------------------------------------

# stats VALUES...: "median (min-max)", or the one value.
stats() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        if (NR == 1) printf "%s", v[1]; else printf "%.1f (%s-%s)", m, v[1], v[NR] }'
}
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

report() {
    local -a pr sr
    read -ra pr <<<"${R[pgbr_restore]}"
    read -ra sr <<<"${R[svc_restore]}"
    echo "PITR benchmark: $(nproc) cores, database $BENCH_GIB GiB, write load $BENCH_WAL_GIB GiB of WAL, $BENCH_ROUNDS restore rounds, svcdash plan $BENCH_PLAN, $(date -u +%F)"
    echo
    echo "| | pgBackRest $(pgbackrest version | awk '{ print $2 }') (zst 1, aes-256-cbc) | svcdash (zstd, age) |"
    echo "|---|---|---|"
    echo "| base backup | ${R[pgbr_backup]} s, ${R[pgbr_backup_rss]} MiB | ${R[svc_backup]} s (the whole job with its dump: ${R[svc_backup_job]} s), ${R[svc_backup_rss]} MiB |"
    echo "| write load: $((WAL_BYTES / SEG)) files, one a second | ${R[pgbr_load]} s (${R[pgbr_late]} s late) | ${R[svc_load]} s (${R[svc_late]} s late) |"
    echo "| archiver: most files behind during the load | ${R[pgbr_behind]} | ${R[svc_behind]} |"
    echo "| archiver: every complete file taken, after the load | ${R[pgbr_lag]} s | ${R[svc_lag]} s |"
    echo "| files archived, per second from the load's start | ${R[pgbr_files]}, ${R[pgbr_rate]}/s | ${R[svc_files]}, ${R[svc_rate]}/s (server peak ${R[svc_archive_rss]} MiB) |"
    echo "| restore to the end of the load, until promoted: median (min-max) | $(stats "${pr[@]}") s (files: $(stats ${R[pgbr_restore_files]}) s), $(stats ${R[pgbr_restore_rss]}) MiB | $(stats "${sr[@]}") s (the whole job: checks, switch, restart), $(stats ${R[svc_restore_rss]}) MiB |"
    echo
    echo "restore times, in order: pgBackRest ${pr[*]}; svcdash ${sr[*]}"
    [ -z "${R[svc_node0]:-}" ] || echo "svcdash: node 0 served the restored data after, in order:${R[svc_node0]} s (the rest: the other nodes copying it)"
    local ratios=() i
    for i in "${!pr[@]}"; do ratios+=("$(awk -v a="${sr[$i]}" -v b="${pr[$i]}" 'BEGIN { printf "%.2f", a / b }')"); done
    echo "svcdash/pgBackRest restore, by round: ${ratios[*]}; median $(median "${ratios[@]}") (target <= 1.00 in every round)"
}
mkdir -p "$BENCH_OUT"
report | tee "$BENCH_OUT/pitr-$(date -u +%Y%m%dT%H%M%SZ).md"
