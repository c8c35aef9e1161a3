#!/usr/bin/env bash
# Backup and restore benchmark: svcdash against the ways people back up
# PostgreSQL by hand. It prints figures; it is not a test and passes or fails
# nothing but its own setup.
#
# What it does:
#   1. starts `svcdash serve` on a fresh temporary data dir, provisions a
#      PostgreSQL instance through the Open Service Broker API and binds it;
#   2. fills the database with realistic rows (bench/gen-data.sql: random hex,
#      free text, small JSON documents; a plain dump compresses ~2.5-3:1 with
#      zstd -1) until pg_database_size reaches the target size;
#   3. backs it up, one method after another:
#        floor       pg_dump -Fc -Z0 > /dev/null          (the cost of reading)
#        floor-file  pg_dump -Fc -Z0 > file               (kept for its restore)
#        legacy      pg_dump | gzip | openssl enc -aes256 -md md5
#        standard    pg_dump -Fc -Z0 | zstd -1 -T0 | age -r RECIPIENT
#        svcdash     POST /v1/instances/:id/backups, polled until done
#      then restores each one into a new, empty database (svcdash restores
#      into the instance itself, so it goes last):
#        floor-file  pg_restore -d NEWDB file
#        legacy      openssl enc -d | gunzip | psql NEWDB
#        standard    age -d | zstd -d | pg_restore -d NEWDB
#        svcdash     POST /v1/instances/:id/backups/:n/restore, polled until done
#   4. prints wall time, CPU time, output size and peak RSS of each, the ratios
#      between them and whether svcdash meets its targets.
#
# How figures are taken:
#   - The shell methods run under bench/measure.py, which runs every pipeline
#     stage under GNU time. "RSS" is the SUM of the stages' peak RSS (they run
#     concurrently; an upper bound of the pipeline's footprint), the per-stage
#     peaks are listed next to it. CPU is user + system time of all stages.
#   - svcdash: wall time from the POST to the poll (every 0.1 s, by one
#     Python process, bench/svcdash_task.py) that sees `done`, so it is up to
#     ~0.1 s long; the server's own triggered_at ->
#     finished_at is printed too. RSS is the server's VmHWM from
#     /proc/PID/status, reset (clear_refs) just before the operation; the
#     VmHWM before the reset is printed as well. The pg_dump / pg_restore /
#     psql processes svcdash spawns are sampled at every poll, so their peak is
#     a lower bound. CPU is the server's utime + stime plus its reaped children's.
#   - The PostgreSQL server's own work (the backends serving the dump and the
#     restore) is in no figure; it is the same for every method.
#   - Every method reads a warm cache: the data was just written and vacuumed.
#
# Usage (from anywhere; paths are relative to the repository root):
#   cargo build --release -p svcdash          # the script builds nothing
#   bench/backup-restore.sh                   # 1 GiB database
#   BENCH_GIB=4 bench/backup-restore.sh
#   bench/backup-restore.sh --uri postgres://user:pw@host:5432/db
#       benchmarks an existing database (given as a URI, not key=value) with
#       the shell methods only (no svcdash); it adds the bench_* tables until the database reaches the
#       target size unless --no-load is given. Restores need CREATEDB.
#
# Environment:
#   SVCDASH_BIN         svcdash binary (default: target/release/svcdash)
#   BENCH_GIB           target database size in GiB (default 1; decimals allowed)
#   BENCH_MB            target size in MiB instead, for quick runs
#   BENCH_REPEAT        rounds of floor, standard and svcdash backups, and of the
#                       floor's and svcdash's restores (default 1); with more,
#                       the targets use each one's median
#   BENCH_SKIP_SVCDASH  1: skip svcdash's backup and restore (it still
#                       provisions the database unless --uri is given)
#   BENCH_URI           same as --uri
#   BENCH_RESTORE_URI   a connection to the same server that may CREATE
#                       DATABASE, if the benchmarked user may not
#   BENCH_PORT          port for svcdash (default: a free one)
#   BENCH_TASK_TIMEOUT  seconds to wait for a svcdash backup/restore (default 7200)
#   BENCH_OUT           directory for a copy of the report (default bench/out)
#   BENCH_KEEP_TMP      1: keep the temporary directory (dumps, logs)
#   BENCH_SERIES        N: instead of the comparison, N consecutive svcdash
#                       backups, each followed by a restore of it, printing the
#                       server's peak RSS during each and its RSS after each
#                       (does the footprint grow from one to the next?)
#   BENCH_SERVER_ENV         extra environment for the server, e.g.
#                       "MALLOC_ARENA_MAX=2" (space-separated NAME=VALUE)
#   PG_BINDIR           directory of the PostgreSQL client tools to use; their
#                       major version must be >= the server's
#
# Needs: psql, pg_dump, pg_restore, gzip, openssl, zstd, age, age-keygen,
# python3, GNU time (/usr/bin/time; without it small RSS figures read high),
# curl (svcdash only). Disk: about 4x the database size in the temp dir
# ($TMPDIR or /tmp).

set -euo pipefail
export LC_ALL=C PSQLRC=/dev/null

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
MEASURE=(python3 "$BENCH/measure.py")

SVCDASH_BIN=${SVCDASH_BIN:-$ROOT/target/release/svcdash}
# svcdash reads every SVCDASH_ variable as configuration, and "bin" is none of it.
export -n SVCDASH_BIN
BENCH_GIB=${BENCH_GIB:-1}
BENCH_MB=${BENCH_MB:-}
BENCH_SKIP_SVCDASH=${BENCH_SKIP_SVCDASH:-0}
BENCH_OUT=${BENCH_OUT:-$BENCH/out}
URI=${BENCH_URI:-}
LOAD=1

BROKER_USER=bench
BROKER_PASSWORD=benchpw
ORG=bench-org
SPACE=bench-space
SERVICE_NAME=postgresql
PLAN_NAME=single-small
RSS_TARGET_MIB=100
POLL_S=0.1
REPEAT=${BENCH_REPEAT:-1}
TASK_TIMEOUT_S=${BENCH_TASK_TIMEOUT:-7200}

usage() { sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
    case $1 in
        --uri) [ $# -ge 2 ] || usage 2; URI=$2; shift 2 ;;
        --uri=*) URI=${1#--uri=}; shift ;;
        --no-load) LOAD=0; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
done

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------

if [ -n "${PG_BINDIR:-}" ]; then
    PATH="$PG_BINDIR:$PATH"
elif ! command -v pg_dump >/dev/null; then
    # Debian keeps the versioned tools here when no wrapper is installed.
    newest=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    [ -x "$newest/pg_dump" ] && PATH="$newest:$PATH"
fi
needed=(psql pg_dump pg_restore gzip gunzip openssl zstd age age-keygen python3)
[ -z "$URI" ] && needed+=(curl)
for t in "${needed[@]}"; do
    command -v "$t" >/dev/null || die "$t not found"
done
[ -x /usr/bin/time ] || [ -n "${MEASURE_TIME:-}" ] ||
    log "GNU time (/usr/bin/time, Debian package 'time') is missing: RSS figures under ~15 MiB will read high"

if [ -n "$BENCH_MB" ]; then
    TARGET_BYTES=$((BENCH_MB * 1024 * 1024))
    TARGET_LABEL="$BENCH_MB MiB"
else
    TARGET_BYTES=$(awk -v g="$BENCH_GIB" 'BEGIN { printf "%d", g * 1073741824 }')
    TARGET_LABEL="$BENCH_GIB GiB"
fi

export PGCONNECT_TIMEOUT=10
export PGOPTIONS='-c client_min_messages=warning'

# --- state and cleanup ---------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/svcdash-bench.XXXXXX")
# svcdash runs its engines as an unprivileged user when it runs as root: it must be able to enter here.
chmod 755 "$tmp"
SVC_PID=
IID=
FLOOR_IID=   # a second instance the floor's restores load into, if need be
FLOOR_URI=
SERVICE_ID=
PLAN_ID=
RESTORE_DBS=()   # databases this script created, dropped on exit

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +eu
    for db in "${RESTORE_DBS[@]}"; do
        psql "$ADMIN_URI" -q -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1
    done
    if [ -n "$SVC_PID" ] && kill -0 "$SVC_PID" 2>/dev/null; then
        for iid in $IID $FLOOR_IID; do
            log "deprovisioning $iid"
            broker DELETE "/v2/service_instances/$iid?accepts_incomplete=true&service_id=$SERVICE_ID&plan_id=$PLAN_ID" >/dev/null 2>&1
            wait_deprovisioned "$iid"
        done
        local leftovers
        leftovers=$(descendants "$SVC_PID")
        log "stopping svcdash (pid $SVC_PID)"
        kill -TERM "$SVC_PID"
        for _ in $(seq 150); do kill -0 "$SVC_PID" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$SVC_PID" 2>/dev/null; then
            log "svcdash did not stop within 30 s; killing it"
            kill -KILL "$SVC_PID"
        fi
        wait "$SVC_PID" 2>/dev/null
        # Processes svcdash started and left behind (a PostgreSQL server, say)
        # would keep files open in the temp dir.
        for pid in $leftovers; do
            if kill -0 "$pid" 2>/dev/null; then
                log "svcdash left pid $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) running; stopping it"
                kill -TERM "$pid"
            fi
        done
        [ -n "$leftovers" ] && sleep 2
    fi
    if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then
        log "kept $tmp"
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers -------------------------------------------------------------------

# json EXPR: evaluates the Python expression EXPR on the JSON document d read
# from stdin and prints the result (python3 is always there; jq may not be).
json() {
    python3 -c 'import json, sys; d = json.load(sys.stdin); v = eval(sys.argv[1]); print(v if v is not None else "")' "$1"
}

# with_db URI DBNAME: URI with its database replaced.
with_db() {
    python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + u.quote(sys.argv[2]))))' "$1" "$2"
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
fsize() { stat -c %s "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# le A B: succeeds if A <= B (decimals).
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

db_size() { psql "$1" -Atqc 'SELECT pg_database_size(current_database())'; }

# Total number of rows in all user tables: a cheap check that a restore is whole.
row_count() {
    psql "$1" -Atqc "SELECT coalesce(sum((xpath('/row/c/text()', query_to_xml(
        format('SELECT count(*) AS c FROM %I.%I', schemaname, tablename), false, true, '')))[1]::text::bigint), 0)
        FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
}

# http METHOD URL [curl args...]: prints the status code; the body is in $tmp/body.
http() {
    local method=$1 url=$2; shift 2
    curl -sS -m 60 -o "$tmp/body" -w '%{http_code}' -X "$method" "$@" "$url"
}
broker() {
    local method=$1 path=$2; shift 2
    http "$method" "$BASE$path" -u "$BROKER_USER:$BROKER_PASSWORD" \
        -H 'X-Broker-API-Version: 2.17' -H 'Content-Type: application/json' "$@"
}
api() {
    local method=$1 path=$2; shift 2
    http "$method" "$BASE$path" -H "Authorization: $TOKEN" -H 'Content-Type: application/json' "$@"
}
body() { cat "$tmp/body"; }
expect() { # expect CODE... : dies unless the last http status is one of them
    local code=$1 ok; shift
    for ok in "$@"; do [ "$code" = "$ok" ] && return 0; done
    die "unexpected HTTP $code (wanted $*): $(head -c 1000 "$tmp/body")"
}

# The CLI on the benchmark data dir (stdin closed, so a prompt cannot hang it).
svcdash() { SVCDASH_DATA="$tmp/data" "$SVCDASH_BIN" "$@" </dev/null; }

# descendants PID: the pids of all processes below PID.
descendants() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            for (p in parent) {
                for (q = parent[p]; q > 1; q = (q in parent) ? parent[q] : 0)
                    if (q == root) { print p; break }
            }
        }'
}

vmhwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
rssfile_kib() { awk '/^RssFile:/ { print $2 }' "/proc/$1/status"; }
vmrss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# proc_cpu PID: user + system seconds of PID and of its reaped children.
proc_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13 + $14 + $15) / hz }' "/proc/$1/stat"
}

wait_deprovisioned() { # wait_deprovisioned IID
    local code state
    for _ in $(seq 300); do
        code=$(broker GET "/v2/service_instances/$1/last_operation?service_id=$SERVICE_ID&plan_id=$PLAN_ID") || return
        [ "$code" = 410 ] && return
        state=$(body | json 'd.get("state")' 2>/dev/null) || return
        [ "$state" = "in progress" ] || return
        sleep 0.2
    done
}

# --- results -------------------------------------------------------------------

ROWS=()
declare -A WALL CPU SIZE RSS STAGES ANON FILE
# record NAME WALL CPU SIZE_BYTES RSS_KIB STAGES_TEXT
record() {
    ROWS+=("$1"); WALL[$1]=$2; CPU[$1]=$3; SIZE[$1]=$4; RSS[$1]=$5; STAGES[$1]=$6
}

# median_wall NAME: the median wall time of NAME and its further rounds NAME#2...
median_wall() {
    local n=$1 r
    for ((r = 1; r <= REPEAT; r++)); do
        [ "$r" = 1 ] && echo "${WALL[$n]}" || echo "${WALL[$n#$r]:-}"
    done | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# run NAME [measure.py options] -- STAGE... [:: STAGE...]...
# Runs a pipeline under measure.py and records it; the output size is that of
# the --out file unless it is /dev/null.
run() {
    local name=$1 out='' args=("${@:2}") i
    for ((i = 0; i < ${#args[@]}; i++)); do
        [ "${args[i]}" = --out ] && out=${args[i + 1]}
        [ "${args[i]}" = -- ] && break
    done
    log "$name"
    if ! "${MEASURE[@]}" --report "$tmp/report" --err "$tmp/$name.err" "${args[@]}"; then
        tail -n 20 "$tmp/$name.err" >&2
        die "$name failed"
    fi
    local wall cpu _max sum per size=0
    read -r wall cpu _max sum per <"$tmp/report"
    [ -n "$out" ] && [ "$out" != /dev/null ] && size=$(fsize "$out")
    local stages
    stages=$(tr , '\n' <<<"$per" | awk '{ printf "%s%.1f", (NR > 1 ? " + " : ""), $1 / 1024 }')
    record "$name" "$wall" "$cpu" "$size" "$sum" "$stages"
    log "$name: ${wall} s, $(mib "$size") MiB, RSS $(mib $((sum * 1024))) MiB ($stages)"
}

# new_db NAME: creates an empty database on the benchmarked server and sets
# NEW_DB to its URI.
new_db() {
    if [ -n "$FLOOR_URI" ]; then
        # The bound user may not create databases: the second instance's
        # application database, emptied, stands in for a new one.
        psql "$FLOOR_URI" -q -c 'DROP SCHEMA public CASCADE' -c 'CREATE SCHEMA public' >/dev/null
        NEW_DB=$FLOOR_URI
        return
    fi
    psql "$ADMIN_URI" -q -c "DROP DATABASE IF EXISTS \"$1\"" -c "CREATE DATABASE \"$1\"" >/dev/null
    RESTORE_DBS+=("$1")
    NEW_DB=$(with_db "$ADMIN_URI" "$1")
}
drop_db() {
    if [ -n "$FLOOR_URI" ]; then
        psql "$FLOOR_URI" -q -c 'DROP SCHEMA public CASCADE' -c 'CREATE SCHEMA public' >/dev/null
        return
    fi
    psql "$ADMIN_URI" -q -c "DROP DATABASE IF EXISTS \"$1\"" >/dev/null
    local kept=() db
    for db in "${RESTORE_DBS[@]}"; do [ "$db" != "$1" ] && kept+=("$db"); done
    RESTORE_DBS=("${kept[@]}")
}
# settle NAME: waits until the database a svcdash restore replaced is gone (it is
# dropped after the job, in the background, which writes out the server's dirty
# pages), so that the next method does not share the disk with it; prints how long.
settle() {
    local t0=$EPOCHREALTIME n
    for _ in $(seq 600); do
        n=$(psql "$URI" -At -c "SELECT count(*) FROM pg_database WHERE datname = 'app_replaced'")
        [ "$n" = 0 ] && break
        sleep 0.1
    done
    log "$1: the replaced database was gone $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s after the job"
}
check_rows() { # check_rows NAME URI
    local n
    n=$(row_count "$2")
    [ "$n" = "$SOURCE_ROWS" ] || die "$1: restored $n rows, the source has $SOURCE_ROWS"
    log "$1: $n rows restored, as many as in the source"
}

# svcdash_task NAME POST_PATH POLL_PREFIX: triggers a backup or restore through
# the API, polls it until done (bench/svcdash_task.py, one process, so that the
# polling costs the measured server next to no CPU) and records it. Sets TASK_ID.
svcdash_task() {
    local name=$1 post=$2 poll=$3
    local hwm_start reset=no cpu0 cpu1 line wall child anon task file_start
    hwm_start=$(vmhwm_kib "$SVC_PID")
    file_start=$(rssfile_kib "$SVC_PID")
    # Linux >= 4.0: writing 5 resets the peak RSS to the current RSS.
    if { echo 5 >"/proc/$SVC_PID/clear_refs"; } 2>/dev/null; then reset=yes; fi
    cpu0=$(proc_cpu "$SVC_PID")
    log "$name"
    line=$(python3 "$BENCH/svcdash_task.py" "$BASE" "$TOKEN" "$SVC_PID" "$post" "$poll" \
        "$POLL_S" "$TASK_TIMEOUT_S") || die "$name failed"
    cpu1=$(proc_cpu "$SVC_PID")
    read -r wall child anon task <<<"$line"
    ANON[$name]=$anon FILE[$name]=$(rssfile_kib "$SVC_PID")
    printf '%s' "$task" >"$tmp/body"
    TASK_ID=$(body | json 'd["id"]')
    local hwm_end server_s size
    hwm_end=$(vmhwm_kib "$SVC_PID")
    server_s=$(body | json '(__import__("datetime").datetime.fromisoformat(d["finished_at"].replace("Z", "+00:00")) - __import__("datetime").datetime.fromisoformat(d["triggered_at"].replace("Z", "+00:00"))).total_seconds()' 2>/dev/null || echo "?")
    size=$(body | json 'd.get("size", 0)')
    local stages
    stages="server-side ${server_s} s; VmHWM before $(mib $((hwm_start * 1024))) MiB (reset: $reset); children >= $(mib $((child * 1024))) MiB (sampled); server RssAnon >= $(mib $((anon * 1024))) MiB (sampled), RssFile $(mib $((file_start * 1024))) -> $(mib $(($(rssfile_kib "$SVC_PID") * 1024))) MiB"
    record "$name" "$wall" "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')" "${size:-0}" "$hwm_end" "$stages"
    log "$name: ${wall} s (server: ${server_s} s), $(mib "${size:-0}") MiB, VmHWM $(mib $((hwm_start * 1024))) -> $(mib $((hwm_end * 1024))) MiB"
}

# --- svcdash: start, provision, bind ---------------------------------------------

# provision IID BID: provisions an instance of the plan and binds it (BOUND_URI).
provision() {
    local iid=$1 bid=$2 t0 code operation q i state
    log "provisioning instance $iid"
    t0=$EPOCHREALTIME
    code=$(broker PUT "/v2/service_instances/$iid?accepts_incomplete=true" --data "$(cat <<EOF
{"service_id": "$SERVICE_ID", "plan_id": "$PLAN_ID",
 "organization_guid": "$ORG", "space_guid": "$SPACE",
 "context": {"platform": "cloudfoundry", "organization_guid": "$ORG", "space_guid": "$SPACE"}}
EOF
)")
    expect "$code" 201 202
    if [ "$code" = 202 ]; then
        operation=$(body | json 'd.get("operation")')
        q="service_id=$SERVICE_ID&plan_id=$PLAN_ID"
        [ -n "$operation" ] && q="$q&operation=$(python3 -c 'import sys, urllib.parse as u; print(u.quote(sys.argv[1]))' "$operation")"
        for i in $(seq 1500); do   # 5 minutes
            code=$(broker GET "/v2/service_instances/$iid/last_operation?$q")
            expect "$code" 200
            state=$(body | json 'd["state"]')
            case $state in
                succeeded) break ;;
                failed) die "provisioning failed: $(body)" ;;
            esac
            [ "$i" = 1500 ] && die "provisioning still '$state' after 5 minutes"
            sleep 0.2
        done
    fi
    log "provisioned in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"

    code=$(broker PUT "/v2/service_instances/$iid/service_bindings/$bid" \
        --data "{\"service_id\": \"$SERVICE_ID\", \"plan_id\": \"$PLAN_ID\"}")
    expect "$code" 200 201
    BOUND_URI=$(body | json 'd["credentials"]["uri"]')
    log "bound: $(body | json 'd["credentials"]["username"] + "@" + d["credentials"]["host"] + ":" + str(d["credentials"]["port"])')"
}

if [ -z "$URI" ]; then
    [ -x "$SVCDASH_BIN" ] || die "no svcdash binary at $SVCDASH_BIN (build it first, or set SVCDASH_BIN)"
    PORT=${BENCH_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    BASE="http://127.0.0.1:$PORT"
    log "starting svcdash on $BASE (data: $tmp/data, log: $tmp/svcdash.log)"
    mkdir -p "$tmp/data"
    SVCDASH_BROKER__USERNAME=$BROKER_USER SVCDASH_BROKER__PASSWORD=$BROKER_PASSWORD \
        SVCDASH_DATA="$tmp/data" \
        env ${BENCH_SERVER_ENV:-} "$SVCDASH_BIN" serve --listen "127.0.0.1:$PORT" --public-url "$BASE" \
        >"$tmp/svcdash.log" 2>&1 &
    SVC_PID=$!

    for i in $(seq 300); do
        kill -0 "$SVC_PID" 2>/dev/null || { tail -n 30 "$tmp/svcdash.log" >&2; die "svcdash exited"; }
        code=$(broker GET /v2/catalog 2>/dev/null) || code=000
        [ "$code" = 200 ] && break
        [ "$i" = 300 ] && die "svcdash did not answer GET /v2/catalog with 200 within 60 s (last: $code)"
        sleep 0.2
    done
    SERVICE_ID=$(body | json "next(s['id'] for s in d['services'] if s['name'] == '$SERVICE_NAME')")
    PLAN_ID=$(body | json "next(p['id'] for s in d['services'] if s['name'] == '$SERVICE_NAME' for p in s['plans'] if p['name'] == '$PLAN_NAME')")
    log "service $SERVICE_NAME = $SERVICE_ID, plan $PLAN_NAME = $PLAN_ID"

    IID=$(python3 -c 'import uuid; print(uuid.uuid4())')
    BID=$(python3 -c 'import uuid; print(uuid.uuid4())')
    provision "$IID" "$BID"
    URI=$BOUND_URI

    if [ "$BENCH_SKIP_SVCDASH" != 1 ]; then
        svcdash users create bench >/dev/null
        svcdash users grant bench --tenant "$ORG" >/dev/null
        TOKEN=$(svcdash token --user bench | tail -n 1)
        case $TOKEN in [Bb]earer\ *) ;; *) die "svcdash token printed '$TOKEN', expected 'bearer <token>'" ;; esac
    fi
else
    BENCH_SKIP_SVCDASH=1
fi
ADMIN_URI=${BENCH_RESTORE_URI:-$URI}

# --- data ------------------------------------------------------------------------

log "server: $(psql "$URI" -Atqc 'SHOW server_version'), client: $(pg_dump --version)"
size=$(db_size "$URI")
if [ "$LOAD" = 1 ] && [ "$size" -lt "$TARGET_BYTES" ]; then
    log "loading data until the database is $TARGET_LABEL ($(mib "$TARGET_BYTES") MiB)"
    t0=$EPOCHREALTIME
    rows=20000          # first batch; later ones are sized from its growth
    batch_bytes=$((128 * 1024 * 1024))
    while :; do
        psql "$URI" -q -v ON_ERROR_STOP=1 -v rows="$rows" -f "$BENCH/gen-data.sql" >/dev/null
        new=$(db_size "$URI")
        per_row=$(( (new - size) / rows ))
        [ "$per_row" -gt 0 ] || per_row=1
        size=$new
        log "  $(mib "$size") / $(mib "$TARGET_BYTES") MiB"
        [ "$size" -lt "$TARGET_BYTES" ] || break
        left=$((TARGET_BYTES - size))
        [ "$left" -gt "$batch_bytes" ] && left=$batch_bytes
        rows=$((left / per_row + left / per_row / 20 + 1000))
    done
    psql "$URI" -q -c 'VACUUM (FREEZE, ANALYZE) bench_events, bench_documents, bench_api_keys'
    # Flush the load's dirty pages now rather than during the first backup
    # (needs superuser or pg_checkpoint; a bound user usually has neither).
    psql "$URI" -q -c CHECKPOINT >/dev/null 2>&1 || log "CHECKPOINT not allowed; continuing without"
    log "loaded in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s"
elif [ "$size" -lt "$TARGET_BYTES" ]; then
    log "database is $(mib "$size") MiB, below the target; benchmarking it as it is (--no-load)"
fi
DB_BYTES=$(db_size "$URI")
SOURCE_ROWS=$(row_count "$URI")
log "database: $(mib "$DB_BYTES") MiB on disk, $SOURCE_ROWS rows"

# --- series: does the footprint grow from one backup to the next? ------------------

if [ -n "${BENCH_SERIES:-}" ]; then
    [ "$BENCH_SKIP_SVCDASH" != 1 ] || die "BENCH_SERIES needs svcdash (no --uri, no BENCH_SKIP_SVCDASH)"
    mkdir -p "$BENCH_OUT"
    report="$BENCH_OUT/backup-series-$(date -u +%Y%m%dT%H%M%SZ).txt"
    {
        echo "svcdash backup/restore series, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, server env: ${BENCH_SERVER_ENV:-none}"
        echo "database: $(mib "$DB_BYTES") MiB on disk, $SOURCE_ROWS rows; RSS after start $(mib $(($(vmrss_kib "$SVC_PID") * 1024))) MiB, of which RssFile $(mib $(($(rssfile_kib "$SVC_PID") * 1024))) MiB"
        echo "peak: VmHWM during the operation; anon: the largest RssAnon seen (sampled, without program pages); file: RssFile after"
        printf '%-6s %9s %14s %13s %13s %13s %9s %14s %13s %13s\n' round 'backup s' 'backup peak' 'anon' 'file' 'RSS after' \
            'restore s' 'restore peak' 'anon' 'RSS after'
    } | tee "$report"
    for ((r = 1; r <= BENCH_SERIES; r++)); do
        svcdash_task "backup#$r" "/v1/instances/$IID/backups" "/v1/instances/$IID/backups"
        b_rss=$(vmrss_kib "$SVC_PID")
        svcdash_task "restore#$r" "/v1/instances/$IID/backups/$TASK_ID/restore" "/v1/instances/$IID/restores"
        r_rss=$(vmrss_kib "$SVC_PID")
        check_rows "restore#$r" "$URI"
        printf '%-6s %9.2f %10s MiB %9s MiB %9s MiB %9s MiB %9.2f %10s MiB %9s MiB %9s MiB\n' "$r" \
            "${WALL[backup#$r]}" "$(mib $((RSS[backup#$r] * 1024)))" "$(mib $((ANON[backup#$r] * 1024)))" \
            "$(mib $((FILE[backup#$r] * 1024)))" "$(mib $((b_rss * 1024)))" \
            "${WALL[restore#$r]}" "$(mib $((RSS[restore#$r] * 1024)))" "$(mib $((ANON[restore#$r] * 1024)))" \
            "$(mib $((r_rss * 1024)))" | tee -a "$report"
    done
    peaks=$(for ((r = 1; r <= BENCH_SERIES; r++)); do echo "${RSS[backup#$r]}"; echo "${RSS[restore#$r]}"; done | sort -n)
    {
        echo "peak over the series: $(mib $(($(tail -n 1 <<<"$peaks") * 1024))) MiB (lowest $(mib $(($(head -n 1 <<<"$peaks") * 1024))) MiB); target < $RSS_TARGET_MIB MiB and no growth"
    } | tee -a "$report"
    log "report saved to $report"
    exit 0
fi

# --- backups -----------------------------------------------------------------------

age-keygen -o "$tmp/age.key" 2>/dev/null
RECIPIENT=$(age-keygen -y "$tmp/age.key")
KEY=$(openssl rand -hex 24)

run floor --out /dev/null -- pg_dump -Fc -Z0 "$URI"
run floor-file --out "$tmp/floor.dump" -- pg_dump -Fc -Z0 "$URI"
run legacy --out "$tmp/legacy.out" -- pg_dump "$URI" :: gzip :: \
    openssl enc -aes256 -md md5 -pass "pass:$KEY"
run standard --out "$tmp/std.out" -- pg_dump -Fc -Z0 "$URI" :: zstd -1 -T0 :: \
    age -r "$RECIPIENT"
if [ "$BENCH_SKIP_SVCDASH" != 1 ]; then
    svcdash_task svcdash "/v1/instances/$IID/backups" "/v1/instances/$IID/backups"
    SVC_BACKUP=$TASK_ID
fi
# Further rounds of the fast methods, interleaved so that a slow phase of the
# machine hits them alike; the targets then use each method's median.
for ((r = 2; r <= REPEAT; r++)); do
    run "floor#$r" --out /dev/null -- pg_dump -Fc -Z0 "$URI"
    run "standard#$r" --out "$tmp/std.out" -- pg_dump -Fc -Z0 "$URI" :: zstd -1 -T0 :: \
        age -r "$RECIPIENT"
    [ "$BENCH_SKIP_SVCDASH" != 1 ] &&
        svcdash_task "svcdash#$r" "/v1/instances/$IID/backups" "/v1/instances/$IID/backups"
done

# --- restores ------------------------------------------------------------------------

RESTORES_OK=1
if ! psql "$ADMIN_URI" -q -c 'DROP DATABASE IF EXISTS bench_restore_probe' \
        -c 'CREATE DATABASE bench_restore_probe' -c 'DROP DATABASE bench_restore_probe' >/dev/null 2>"$tmp/probe.err"; then
    if [ -n "$SVC_PID" ]; then
        # A second instance of the same plan, on this machine, is where the shell
        # methods restore (the same engine and settings as svcdash's restore).
        log "the bound user cannot create databases: the shell restores load into a second instance"
        FLOOR_IID=$(python3 -c 'import uuid; print(uuid.uuid4())')
        provision "$FLOOR_IID" "$(python3 -c 'import uuid; print(uuid.uuid4())')"
        FLOOR_URI=$BOUND_URI
    else
        log "cannot create databases ($(head -n 1 "$tmp/probe.err")); skipping the shell restores (set BENCH_RESTORE_URI)"
        RESTORES_OK=0
    fi
fi
if [ "$RESTORES_OK" = 1 ]; then
    new_db bench_restore_floor
    run floor-file-restore -- pg_restore --no-owner --no-privileges --exit-on-error -d "$NEW_DB" "$tmp/floor.dump"
    check_rows floor-file-restore "$NEW_DB"; drop_db bench_restore_floor

    if [ -z "$FLOOR_URI" ]; then
        new_db bench_restore_legacy
        run legacy-restore --in "$tmp/legacy.out" --out /dev/null -- \
            openssl enc -d -aes256 -md md5 -pass "pass:$KEY" :: gunzip :: \
            psql -q -X -v ON_ERROR_STOP=1 -d "$NEW_DB"
        check_rows legacy-restore "$NEW_DB"; drop_db bench_restore_legacy
    else
        # The plain dump sets owners to the source's roles, which the second
        # instance does not have.
        log "legacy-restore skipped: it needs a database on the source's server"
    fi

    new_db bench_restore_standard
    run standard-restore --in "$tmp/std.out" -- age -d -i "$tmp/age.key" :: zstd -d :: \
        pg_restore --no-owner --no-privileges --exit-on-error -d "$NEW_DB"
    check_rows standard-restore "$NEW_DB"; drop_db bench_restore_standard
fi
if [ "$BENCH_SKIP_SVCDASH" != 1 ]; then
    svcdash_task svcdash-restore "/v1/instances/$IID/backups/$SVC_BACKUP/restore" \
        "/v1/instances/$IID/restores"
    check_rows svcdash-restore "$URI"
    settle svcdash-restore
fi
# Further rounds of the floor's and svcdash's restores, interleaved.
for ((r = 2; r <= REPEAT; r++)); do
    if [ "$RESTORES_OK" = 1 ]; then
        new_db bench_restore_floor
        run "floor-file-restore#$r" -- pg_restore --no-owner --no-privileges --exit-on-error -d "$NEW_DB" "$tmp/floor.dump"
        check_rows "floor-file-restore#$r" "$NEW_DB"; drop_db bench_restore_floor
    fi
    if [ "$BENCH_SKIP_SVCDASH" != 1 ]; then
        svcdash_task "svcdash-restore#$r" "/v1/instances/$IID/backups/$SVC_BACKUP/restore" \
            "/v1/instances/$IID/restores"
        check_rows "svcdash-restore#$r" "$URI"
        settle "svcdash-restore#$r"
    fi
done

# --- report --------------------------------------------------------------------------

mkdir -p "$BENCH_OUT"
report="$BENCH_OUT/backup-restore-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
    echo "svcdash backup/restore benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs"
    echo "database: $(mib "$DB_BYTES") MiB on disk (target $TARGET_LABEL), $SOURCE_ROWS rows; $(pg_dump --version)"
    echo "RSS: shell methods = sum of the pipeline stages' peaks (stages listed); svcdash = server VmHWM during the operation"
    echo
    printf '%-20s %9s %9s %11s %9s  %s\n' name 'wall s' 'cpu s' 'output MiB' 'RSS MiB' 'detail'
    for n in "${ROWS[@]}"; do
        size=${SIZE[$n]}
        printf '%-20s %9.2f %9.2f %11s %9s  %s\n' "$n" "${WALL[$n]}" "${CPU[$n]}" \
            "$([ "$size" -gt 0 ] && mib "$size" || echo -)" "$(mib $((RSS[$n] * 1024)))" "${STAGES[$n]}"
    done
    echo
    if [ "$REPEAT" -gt 1 ]; then
        echo "median wall of $REPEAT rounds: floor $(median_wall floor), standard $(median_wall standard)$(
            [ "$BENCH_SKIP_SVCDASH" != 1 ] && echo ", svcdash $(median_wall svcdash)") (ratios and targets below use these)"
        echo
    fi
    fd=${SIZE[floor-file]}
    echo "compression of the custom dump: standard (zstd -1) $(ratio "$fd" "${SIZE[standard]}"):1, legacy (plain SQL, gzip -6) $(ratio "$fd" "${SIZE[legacy]}"):1"
    echo "standard/floor wall $(ratio "$(median_wall standard)" "$(median_wall floor)"), legacy/standard wall $(ratio "${WALL[legacy]}" "$(median_wall standard)"), standard size / legacy size $(ratio "${SIZE[standard]}" "${SIZE[legacy]}")"
    if [ "$BENCH_SKIP_SVCDASH" != 1 ]; then
        sw=$(median_wall svcdash) ss=${SIZE[svcdash]} srss=${RSS[svcdash]}
        r_floor=$(ratio "$sw" "$(median_wall floor)")
        r_legacy=$(ratio "${WALL[legacy]}" "$sw")
        r_size=$(ratio "$ss" "${SIZE[legacy]}")
        r_std=$(ratio "$sw" "$(median_wall standard)")
        verdict() { if "$@"; then echo PASS; else echo MISS; fi; }
        echo
        echo "svcdash/floor wall       $r_floor"
        echo "legacy/svcdash wall      $r_legacy"
        echo "svcdash size/legacy size $r_size"
        echo "svcdash/standard wall    $r_std   (size $(ratio "$ss" "${SIZE[standard]}"), RSS $(ratio "$srss" "${RSS[standard]}"))"
        echo "svcdash-restore/standard-restore wall $([ -n "${WALL[standard-restore]:-}" ] && ratio "${WALL[svcdash-restore]}" "${WALL[standard-restore]}" || echo n/a)"
        r_restore=n/a
        if [ -n "${WALL[floor-file-restore]:-}" ]; then
            r_restore=$(ratio "$(median_wall svcdash-restore)" "$(median_wall floor-file-restore)")
            echo "svcdash-restore/floor-file-restore wall $r_restore (medians: $(median_wall svcdash-restore) / $(median_wall floor-file-restore) s)"
        fi
        echo
        echo "targets:"
        printf '  %-44s %s\n' "backup wall <= 1.5 x floor ($r_floor)" "$(verdict le "$r_floor" 1.5)"
        printf '  %-44s %s\n' "backup faster than standard tools ($r_std)" "$(verdict awk -v r="$r_std" 'BEGIN { exit !(r < 1) }')"
        printf '  %-44s %s\n' "backup >= 3 x faster than legacy ($r_legacy)" "$(verdict le 3 "$r_legacy")"
        printf '  %-44s %s\n' "output no larger than legacy's ($r_size)" "$(verdict le "$ss" "${SIZE[legacy]}")"
        [ "$r_restore" != n/a ] &&
            printf '  %-44s %s\n' "restore wall <= 0.8 x pg_restore of a file ($r_restore)" "$(verdict le "$r_restore" 0.8)"
        printf '  %-44s %s\n' "server peak RSS < $RSS_TARGET_MIB MiB ($(mib $((srss * 1024))))" "$(verdict awk -v k="$srss" -v t="$RSS_TARGET_MIB" 'BEGIN { exit !(k < t * 1024) }')"
    fi
} | tee "$report"
log "report saved to $report"
