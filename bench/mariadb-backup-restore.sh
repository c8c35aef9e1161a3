#!/usr/bin/env bash
# Backup and restore benchmark for MariaDB: svcdash against the engine's own
# tools (mariadb-backup) by hand. The MariaDB counterpart of
# bench/backup-restore.sh (PostgreSQL). It prints figures; it is not a test and
# passes or fails nothing but its own setup.
#
# What it does:
#   1. starts `svcdash serve` on a fresh temporary data dir, provisions a
#      MariaDB instance (service mariadb, plan single-small) through the Open
#      Service Broker API and binds it;
#   2. fills database `app` with realistic rows (bench/mariadb-gen-data.sql:
#      random hex, free text, small JSON documents; a plain dump compresses
#      ~2.5-3:1 with zstd -1) through the binding's credentials over TCP until
#      data_length + index_length reaches the target size, then flushes
#      InnoDB's dirty pages (as root over the instance's socket);
#   3. backs it up, in rounds (each round runs every method once):
#        floor       mariadb-backup --backup --stream=xbstream > /dev/null
#        floor-file  the same > file              (round 1 only; kept for the
#                                                  engine's own restore)
#        ceiling     zstd -1 -T0 < the floor-file > /dev/null: compression alone,
#                    on every core, from the page cache (what the CPU allows
#                    a pipeline that compresses like the standard one)
#        standard    mariadb-backup ... | zstd -1 -T0 | age -r RECIPIENT > file
#        svcdash     POST /v1/instances/:id/backups, polled until done
#      mariadb-backup runs as svcdash runs it: as the instance's OS account
#      (setpriv: uid, gid, no supplementary groups), in the data folder (the
#      socket path ../../ephemeral/run/mysqld.sock is relative to it), with
#      svcdash's arguments (--target-dir=<run>/backup --tmpdir=<run>);
#   4. restores, in rounds:
#        engine-restore    mbstream -x -C DIR < plain xbstream      (extract)
#                          mariadb-backup --prepare --target-dir=DIR (prepare)
#        standard-restore  age -d | zstd -d | mbstream -x -C DIR     (extract)
#                          mariadb-backup --prepare --target-dir=DIR (prepare)
#        svcdash-restore   POST /v1/instances/:id/backups/:n/restore (of the
#                          first svcdash backup), polled until done; then the
#                          row count of every table must equal the source's
#      mbstream and --prepare run as the instance's account, as svcdash runs
#      them; DIR is a fresh folder in the temp dir, on the same file system as
#      svcdash's data. The engine and standard restores end with a prepared
#      folder, not a running server: svcdash's restore ALSO stops the server,
#      swaps the folders and starts the server on the restored data (waiting
#      until it answers). That part is taken from svcdash's log and printed
#      separately (see "phases" below);
#   5. prints wall time, CPU time, output size and peak RSS of each, medians and
#      min-max over the rounds, the ratios between them and whether svcdash
#      meets its targets:
#        backup:  svcdash median wall <= 1.2 x floor median
#        restore: svcdash median wall <= 1.1 x engine-restore median (extract +
#                 prepare)
#        memory:  svcdash's peak RSS < 150 MiB during every backup and restore
#      A target is met only if it holds for the medians AND in every round
#      (round r of svcdash against round r of its reference).
#
# How figures are taken:
#   - The shell methods run under bench/measure.py, which runs every pipeline
#     stage under GNU time. "RSS" is the SUM of the stages' peak RSS (an upper
#     bound of the pipeline's footprint); the per-stage peaks are listed next to
#     it. CPU is user + system time of all stages.
#   - svcdash: wall time from the POST to the poll (every 0.1 s, one Python
#     process, bench/svcdash_task.py) that sees `done`, so up to ~0.1 s long;
#     the server's own triggered_at -> finished_at is printed too. RSS is the
#     server's VmHWM, reset (clear_refs) just before the operation. The
#     mariadb-backup / mbstream processes svcdash spawns are sampled at every
#     poll, so their peak is a lower bound. CPU is the server's utime + stime
#     plus its reaped children's (mariadb-backup, mbstream); for a restore the
#     old mariadbd is reaped too, so its CPU up to the POST is subtracted (its
#     shutdown's CPU remains in).
#   - Restore phases of svcdash, from its JSON log and the process trace of
#     svcdash_task.py: load = job started -> "switching over" (download, check,
#     decrypt, decompress, mbstream -x); prepare = -> the last poll that saw
#     mariadb-backup --prepare (+- 0.1 s); stop = -> "engine process exited"
#     (reading the users, writing the init file, the server's shutdown);
#     switch = -> "engine started" (renames, spawn); start = -> "job done"
#     (until the server answers, removing the replaced data, re-owning orphaned
#     objects).
#   - The MariaDB server's own work (serving the backup) is in no RSS or CPU
#     figure, only in wall times. mariadb-backup reads the data files with
#     O_DIRECT, so the page cache does not favour later rounds.
#   - Before the measurements the script waits while rustc or cargo runs;
#     a build seen during the measurements is reported.
#
# Usage (from anywhere; run as root: svcdash makes an OS account per instance):
#   cargo build --release -p svcdash          # the script builds nothing
#   bench/mariadb-backup-restore.sh           # 1 GiB database
#   BENCH_MB=50 BENCH_REPEAT=1 bench/mariadb-backup-restore.sh   # quick check
#
# Environment:
#   SVCDASH_BIN         svcdash binary (default: target/release/svcdash)
#   BENCH_GIB           target size of `app` in GiB (default 1; decimals allowed)
#   BENCH_MB            target size in MiB instead, for quick runs
#   BENCH_REPEAT        rounds of every backup and restore method (default 1);
#                       with more, the targets use each one's median and every
#                       round
#   BENCH_PORT          port for svcdash (default: a free one)
#   BENCH_TASK_TIMEOUT  seconds to wait for a svcdash backup/restore (default 7200)
#   BENCH_OUT           directory for a copy of the report (default bench/out)
#   BENCH_KEEP_TMP      1: keep the temporary directory (backups, logs)
#
# Needs: mariadb (client), mariadb-backup, mbstream, zstd, age, age-keygen,
# python3, curl, setpriv, GNU time (/usr/bin/time). Disk: about 6x the
# database size in the temp dir ($TMPDIR or /tmp).

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
MEASURE=(python3 "$BENCH/measure.py")
GEN_SQL="$BENCH/mariadb-gen-data.sql"

SVCDASH_BIN=${SVCDASH_BIN:-$ROOT/target/release/svcdash}
# svcdash reads every SVCDASH_ variable as configuration, and "bin" is none of it.
export -n SVCDASH_BIN
BENCH_GIB=${BENCH_GIB:-1}
BENCH_MB=${BENCH_MB:-}
BENCH_OUT=${BENCH_OUT:-$BENCH/out}

BROKER_USER=bench
BROKER_PASSWORD=benchpw
ORG=bench-org
SPACE=bench-space
SERVICE_NAME=mariadb
PLAN_NAME=single-small
DATABASE=app
TABLES=(bench_api_keys bench_documents bench_events bench_words)
SOCKET=../../ephemeral/run/mysqld.sock   # relative to the data folder, as svcdash has it
RSS_TARGET_MIB=150
BACKUP_TARGET=1.2    # svcdash backup wall <= this x floor
RESTORE_TARGET=1.1   # svcdash restore wall <= this x engine-restore
POLL_S=0.1
REPEAT=${BENCH_REPEAT:-1}
TASK_TIMEOUT_S=${BENCH_TASK_TIMEOUT:-7200}

usage() { sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
case ${1:-} in
    -h|--help) usage ;;
    '') ;;
    *) echo "unknown argument: $1" >&2; usage 2 ;;
esac

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------

PATH="$PATH:/usr/sbin:/sbin"
for t in mariadb mariadb-backup mbstream zstd age age-keygen python3 curl setpriv; do
    command -v "$t" >/dev/null || die "$t not found"
done
[ "$(id -u)" = 0 ] || die "run as root (svcdash makes an OS account per instance, and the backups run as it)"
[ -x /usr/bin/time ] || [ -n "${MEASURE_TIME:-}" ] ||
    log "GNU time (/usr/bin/time, Debian package 'time') is missing: RSS figures under ~15 MiB will read high"

if [ -n "$BENCH_MB" ]; then
    TARGET_BYTES=$((BENCH_MB * 1024 * 1024))
    TARGET_LABEL="$BENCH_MB MiB"
else
    TARGET_BYTES=$(awk -v g="$BENCH_GIB" 'BEGIN { printf "%d", g * 1073741824 }')
    TARGET_LABEL="$BENCH_GIB GiB"
fi

# --- state and cleanup ---------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/svcdash-mariadb-bench.XXXXXX")
# svcdash runs its engines as an unprivileged account when it runs as root: it must be able to enter here.
chmod 755 "$tmp"
SVC_PID=
IID=
SERVICE_ID=
PLAN_ID=
ACCOUNT=
WATCH_PID=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +eu
    cd /
    [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null && wait "$WATCH_PID" 2>/dev/null
    if [ -n "$SVC_PID" ] && kill -0 "$SVC_PID" 2>/dev/null; then
        if [ -n "$IID" ]; then
            log "deprovisioning $IID"
            broker DELETE "/v2/service_instances/$IID?accepts_incomplete=true&service_id=$SERVICE_ID&plan_id=$PLAN_ID" >/dev/null 2>&1
            wait_deprovisioned
        fi
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
        # Processes svcdash started and left behind (a mariadbd, say) would
        # keep files open in the temp dir.
        for pid in $leftovers; do
            if kill -0 "$pid" 2>/dev/null; then
                log "svcdash left pid $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) running; stopping it"
                kill -TERM "$pid"
            fi
        done
        [ -n "$leftovers" ] && sleep 2
    fi
    # svcdash removes the instance's account when it deprovisions; say so if it did not.
    if [ -n "$ACCOUNT" ] && id "$ACCOUNT" >/dev/null 2>&1; then
        log "the instance's OS account $ACCOUNT is still there (deprovisioning failed?); remove it with: userdel $ACCOUNT"
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
# from stdin and prints the result.
json() {
    python3 -c 'import json, sys; d = json.load(sys.stdin); v = eval(sys.argv[1]); print(v if v is not None else "")' "$1"
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
fsize() { stat -c %s "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# le A B: succeeds if A <= B (decimals).
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
sub_s() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# sql ARGS: the mariadb client with the binding's credentials over TCP.
sql() { MYSQL_PWD=$DB_PASSWORD mariadb --no-defaults -h "$DB_HOST" -P "$DB_PORT" -u "$DB_USER" "$@"; }
q() { sql -N -B -e "$1" "${@:2}"; }
# rootq SQL: one statement as root over the instance's socket (unix_socket
# auth), from the data folder, since the socket path is relative to it.
rootq() { (cd "$DATADIR" && mariadb --no-defaults --socket="$SOCKET" -u root -N -B -e "$1"); }

# as_account CMD...: CMD as the instance's account, as svcdash runs its tools
# (uid and gid set, no supplementary groups, no PAM session).
as_account() { setpriv --reuid="$ACCOUNT" --regid="$ACCOUNT_GID" --clear-groups -- "$@"; }

db_bytes() {
    q "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = '$DATABASE'"
}
analyze() { q "ANALYZE TABLE $(IFS=,; echo "${TABLES[*]}")" "$DATABASE" >/dev/null; }
# row_counts: "table=count ..." of the benchmark tables.
row_counts() {
    local t out=()
    for t in "${TABLES[@]}"; do
        out+=("$t=$(q "SELECT COUNT(*) FROM \`$DATABASE\`.\`$t\`")")
    done
    echo "${out[*]}"
}

# settle: flushes InnoDB's dirty pages (up to 5 min), so that background
# flushing does not land in a measurement. Needs SUPER: root over the socket.
settle() {
    local dirty=1
    rootq 'SET GLOBAL innodb_max_dirty_pages_pct = 0'
    for _ in $(seq 600); do
        dirty=$(rootq "SELECT variable_value FROM information_schema.global_status WHERE variable_name = 'INNODB_BUFFER_POOL_PAGES_DIRTY'")
        [ "$dirty" = 0 ] && break
        sleep 0.5
    done
    rootq 'SET GLOBAL innodb_max_dirty_pages_pct = DEFAULT'
    [ "$dirty" = 0 ] || log "note: $dirty dirty pages still unflushed"
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

# proc_cpu PID: user + system seconds of PID and of its reaped children.
proc_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13 + $14 + $15) / hz }' "/proc/$1/stat"
}

# mariadbd_pid: the instance's running server (a child of svcdash).
mariadbd_pid() {
    local pid
    for pid in $(descendants "$SVC_PID"); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = mariadbd ] && { echo "$pid"; return; }
    done
}

wait_deprovisioned() {
    local code state
    for _ in $(seq 300); do
        code=$(broker GET "/v2/service_instances/$IID/last_operation?service_id=$SERVICE_ID&plan_id=$PLAN_ID") || return
        [ "$code" = 410 ] && return
        state=$(body | json 'd.get("state")' 2>/dev/null) || return
        [ "$state" = "in progress" ] || return
        sleep 0.2
    done
}

# wait_quiet WHAT: waits while someone compiles (rustc, cargo).
NOTES=()
busy() { pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; }
wait_quiet() {
    local waited=0
    while busy; do
        [ "$waited" = 0 ] && log "a build (rustc/cargo) is running; waiting for a quiet machine before $1"
        sleep 10
        waited=$((waited + 10))
    done
    [ "$waited" -gt 0 ] && NOTES+=("waited ${waited} s for a build to end before $1")
    return 0
}

# --- results -------------------------------------------------------------------

ROWS=()
declare -A WALL CPU SIZE RSS STAGES
# record NAME WALL CPU SIZE_BYTES RSS_KIB STAGES_TEXT
record() {
    ROWS+=("$1"); WALL[$1]=$2; CPU[$1]=$3; SIZE[$1]=$4; RSS[$1]=$5; STAGES[$1]=$6
}
# key NAME ROUND: the name of round ROUND of NAME (NAME, NAME#2, ...).
key() { [ "$2" = 1 ] && echo "$1" || echo "$1#$2"; }
# walls NAME: the wall times of every round of NAME, one a line.
walls() { local r; for ((r = 1; r <= REPEAT; r++)); do echo "${WALL[$(key "$1" "$r")]:-}"; done | awk 'NF'; }
median() { sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minmax() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo, hi }'; }
median_wall() { walls "$1" | median; }

# run NAME [measure.py options] -- STAGE... [:: STAGE...]...
# Runs a pipeline under measure.py (in the current directory) and records it;
# the output size is that of the --out file unless it is /dev/null.
run() {
    local name=$1 out='' args=("${@:2}") i
    for ((i = 0; i < ${#args[@]}; i++)); do
        [ "${args[i]}" = --out ] && out=${args[i + 1]}
        [ "${args[i]}" = -- ] && break
    done
    log "$name"
    local err="$tmp/${name//[\/#]/_}.err"
    if ! "${MEASURE[@]}" --report "$tmp/report" --err "$err" "${args[@]}"; then
        tail -n 20 "$err" >&2
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

# The backup command exactly as svcdash runs it (crates/engines/src/mariadb.rs).
backup_cmd() {
    BACKUP=(setpriv --reuid="$ACCOUNT" --regid="$ACCOUNT_GID" --clear-groups --
        mariadb-backup --no-defaults --backup --stream=xbstream --datadir="$DATADIR"
        --target-dir="$RUNDIR/backup" --tmpdir="$RUNDIR" --socket="$SOCKET" --user="$ACCOUNT")
}
# backup NAME [measure.py options] -- [:: STAGE...]: mariadb-backup, then the
# stages, run in the data folder (the socket path is relative to it).
backup() {
    local name=$1; shift
    local opts=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    rm -rf "$RUNDIR/backup"   # as svcdash does before each backup
    cd "$DATADIR"
    run "$name" "${opts[@]}" -- "${BACKUP[@]}" "$@"
    cd "$tmp"
}

# restore_dir NAME: a fresh folder owned by the account, as svcdash's staging folder is.
restore_dir() {
    local d="$tmp/$1"
    rm -rf "$d"
    mkdir -m 700 "$d"
    chown "$ACCOUNT:$ACCOUNT_GID" "$d"
    echo "$d"
}
check_prepared() { # check_prepared NAME DIR
    grep -Eq '^backup_type = (full-prepared|log-applied)' "$2/xtrabackup_checkpoints" ||
        die "$1: $2 is not a prepared backup ($(tr '\n' ' ' <"$2/xtrabackup_checkpoints"))"
}
# sum_rounds NAME PARTS...: records NAME as the sum of the walls and CPU of PARTS.
sum_rounds() {
    local name=$1 a=$2 b=$3
    record "$name" "$(awk -v a="${WALL[$a]}" -v b="${WALL[$b]}" 'BEGIN { printf "%.3f", a + b }')" \
        "$(awk -v a="${CPU[$a]}" -v b="${CPU[$b]}" 'BEGIN { printf "%.3f", a + b }')" 0 \
        "$(( RSS[$a] > RSS[$b] ? RSS[$a] : RSS[$b] ))" "extract ${WALL[$a]} s + prepare ${WALL[$b]} s (RSS: the larger)"
    log "$name: ${WALL[$name]} s"
}

# svcdash_task NAME POST_PATH POLL_PREFIX: triggers a backup or restore through
# the API, polls it until done (bench/svcdash_task.py) and records it. Sets
# TASK_ID; the processes svcdash ran are in $tmp/trace, its log from the POST on
# starts at byte LOG_OFFSET.
CPU_ADJUST=0   # seconds to subtract from the server's CPU (a reaped old mariadbd's)
svcdash_task() {
    local name=$1 post=$2 poll=$3
    local hwm_start reset=no cpu0 cpu1 line wall child anon task file_start
    hwm_start=$(vmhwm_kib "$SVC_PID")
    file_start=$(rssfile_kib "$SVC_PID")
    # Linux >= 4.0: writing 5 resets the peak RSS to the current RSS.
    if { echo 5 >"/proc/$SVC_PID/clear_refs"; } 2>/dev/null; then reset=yes; fi
    cpu0=$(proc_cpu "$SVC_PID")
    LOG_OFFSET=$(fsize "$tmp/svcdash.log")
    log "$name"
    line=$(SVCDASH_TASK_TOOLS=mariadb-backup,mbstream SVCDASH_TASK_TRACE="$tmp/trace" \
        python3 "$BENCH/svcdash_task.py" "$BASE" "$TOKEN" "$SVC_PID" "$post" "$poll" \
        "$POLL_S" "$TASK_TIMEOUT_S") || {
        log "svcdash's log since the POST:"
        tail -c +"$((LOG_OFFSET + 1))" "$tmp/svcdash.log" | tail -n 30 >&2
        die "$name failed"
    }
    cpu1=$(proc_cpu "$SVC_PID")
    read -r wall child anon task <<<"$line"
    printf '%s' "$task" >"$tmp/body"
    TASK_ID=$(body | json 'd["id"]')
    local hwm_end server_s size
    hwm_end=$(vmhwm_kib "$SVC_PID")
    server_s=$(body | json '(__import__("datetime").datetime.fromisoformat(d["finished_at"].replace("Z", "+00:00")) - __import__("datetime").datetime.fromisoformat(d["triggered_at"].replace("Z", "+00:00"))).total_seconds()' 2>/dev/null || echo "?")
    size=$(body | json 'd.get("size", 0)')
    local stages
    stages="server-side ${server_s} s; VmHWM before $(mib $((hwm_start * 1024))) MiB (reset: $reset); children >= $(mib $((child * 1024))) MiB (sampled); server RssAnon >= $(mib $((anon * 1024))) MiB (sampled), RssFile $(mib $((file_start * 1024))) -> $(mib $(($(rssfile_kib "$SVC_PID") * 1024))) MiB"
    record "$name" "$wall" "$(awk -v a="$cpu0" -v b="$cpu1" -v c="$CPU_ADJUST" 'BEGIN { printf "%.2f", b - a - c }')" "${size:-0}" "$hwm_end" "$stages"
    log "$name: ${wall} s (server: ${server_s} s), $(mib "${size:-0}") MiB, VmHWM $(mib $((hwm_start * 1024))) -> $(mib $((hwm_end * 1024))) MiB"
}

# restore_phases: prints "load prepare stop switch start prepare+stop" (seconds)
# of the restore job that svcdash's JSON log holds from LOG_OFFSET on, with the
# end of --prepare from the process trace (a prepare shorter than a poll may be
# missed: then prepare and stop are "?", prepare+stop is still known).
restore_phases() {
    python3 - "$tmp/svcdash.log" "$LOG_OFFSET" "$tmp/trace" <<'EOF'
import datetime, json, sys
path, offset, trace = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t = {}
with open(path, "rb") as f:
    f.seek(offset)
    for raw in f:
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        msg = line.get("fields", {}).get("message", "")
        ts = datetime.datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
        spans = line.get("spans", []) + [line.get("span", {})]
        in_restore = any(s.get("job.kind") == "restore" for s in spans)
        for key, wanted, restore_only in (("begin", "job started", True), ("loaded", "verified and loaded; switching over", False),
                                          ("exited", "engine process exited", False), ("started", "engine started", False),
                                          ("done", "job done", True)):
            if msg == wanted and (in_restore or not restore_only) and key not in t:
                t[key] = ts
prepared = None
for row in open(trace):
    pid, comm, first, last = row.split()
    if comm == "mariadb-backup" and float(first) >= t.get("loaded", 0) - 0.2:
        prepared = float(last)
if prepared is not None:
    t["prepared"] = prepared
def span(a, b):
    return f"{t[b] - t[a]:.2f}" if a in t and b in t else "?"
print(span("begin", "loaded"), span("loaded", "prepared"), span("prepared", "exited"),
      span("exited", "started"), span("started", "done"), span("loaded", "exited"))
EOF
}

# --- svcdash: start, provision, bind ---------------------------------------------

[ -x "$SVCDASH_BIN" ] || die "no svcdash binary at $SVCDASH_BIN (build it first, or set SVCDASH_BIN)"
PORT=${BENCH_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
BASE="http://127.0.0.1:$PORT"
log "starting svcdash on $BASE (data: $tmp/data, log: $tmp/svcdash.log)"
mkdir -p "$tmp/data"
# JSON log: the restore's phases are read from its timestamps.
SVCDASH_BROKER__USERNAME=$BROKER_USER SVCDASH_BROKER__PASSWORD=$BROKER_PASSWORD \
    SVCDASH_DATA="$tmp/data" SVCDASH_LOG__FORMAT=json \
    "$SVCDASH_BIN" serve --listen "127.0.0.1:$PORT" --public-url "$BASE" \
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
log "provisioning instance $IID"
t0=$EPOCHREALTIME
code=$(broker PUT "/v2/service_instances/$IID?accepts_incomplete=true" --data "$(cat <<EOF
{"service_id": "$SERVICE_ID", "plan_id": "$PLAN_ID",
 "organization_guid": "$ORG", "space_guid": "$SPACE",
 "context": {"platform": "cloudfoundry", "organization_guid": "$ORG", "space_guid": "$SPACE"}}
EOF
)")
expect "$code" 201 202
if [ "$code" = 202 ]; then
    operation=$(body | json 'd.get("operation")')
    qs="service_id=$SERVICE_ID&plan_id=$PLAN_ID"
    [ -n "$operation" ] && qs="$qs&operation=$(python3 -c 'import sys, urllib.parse as u; print(u.quote(sys.argv[1]))' "$operation")"
    for i in $(seq 1500); do   # 5 minutes
        code=$(broker GET "/v2/service_instances/$IID/last_operation?$qs")
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
log "provisioned in $(since "$t0") s"

code=$(broker PUT "/v2/service_instances/$IID/service_bindings/$BID" \
    --data "{\"service_id\": \"$SERVICE_ID\", \"plan_id\": \"$PLAN_ID\"}")
expect "$code" 200 201
DB_HOST=$(body | json 'd["credentials"]["host"]')
DB_PORT=$(body | json 'd["credentials"]["port"]')
DB_USER=$(body | json 'd["credentials"]["username"]')
DB_PASSWORD=$(body | json 'd["credentials"]["password"]')
DATABASE=$(body | json 'd["credentials"].get("database") or "app"')
log "bound: $DB_USER@$DB_HOST:$DB_PORT/$DATABASE"

svcdash users create bench >/dev/null
svcdash users grant bench --tenant "$ORG" >/dev/null
TOKEN=$(svcdash token --user bench | tail -n 1)
case $TOKEN in [Bb]earer\ *) ;; *) die "svcdash token printed '$TOKEN', expected 'bearer <token>'" ;; esac

# The instance's node: <data>/instances/<local name>/node-0.
nodes=("$tmp"/data/instances/*/node-0)
[ "${#nodes[@]}" = 1 ] && [ -d "${nodes[0]}" ] || die "expected one node folder under $tmp/data/instances, found: ${nodes[*]}"
NODE=${nodes[0]}
DATADIR=$NODE/persistent/data
RUNDIR=$NODE/ephemeral/run
ACCOUNT=$(stat -c %U "$DATADIR")
ACCOUNT_GID=$(id -g "$ACCOUNT")
[ "$ACCOUNT" != root ] || die "the data folder $DATADIR belongs to root; expected the instance's account"
log "node: $NODE, account $ACCOUNT (uid $(id -u "$ACCOUNT"), gid $ACCOUNT_GID)"
[ -S "$RUNDIR/mysqld.sock" ] || die "no socket at $RUNDIR/mysqld.sock"

# --- data ------------------------------------------------------------------------

log "server: $(q 'SELECT VERSION()'), $(mariadb-backup --version 2>&1 | head -n 1)"
size=$(db_bytes)
if [ "$size" -lt "$TARGET_BYTES" ]; then
    log "filling $DATABASE to $TARGET_LABEL ($(mib "$TARGET_BYTES") MiB) of data + index (bench/mariadb-gen-data.sql)"
    t0=$EPOCHREALTIME
    batch=20000          # bench_events rows of the first batch; later ones are sized from its growth
    events=0
    while [ "$size" -lt "$TARGET_BYTES" ]; do
        { echo "SET @rows = $batch;"; cat "$GEN_SQL"; } | sql "$DATABASE"
        events=$((events + batch))
        analyze
        size=$(db_bytes)
        log "  $events events rows: $(mib "$size") / $(mib "$TARGET_BYTES") MiB ($(since "$t0") s)"
        # Size the next batch from the bytes per bench_events row so far (+2 %),
        # at most 300k rows a transaction.
        batch=$(awk -v t="$TARGET_BYTES" -v s="$size" -v e="$events" \
            'BEGIN { n = int((t - s) / (s / e) * 1.02) + 1; if (n < 1000) n = 1000; if (n > 300000) n = 300000; print n }')
    done
    log "loaded in $(since "$t0") s; flushing dirty pages"
fi
settle
DB_BYTES=$(db_bytes)
DATADIR_BYTES=$(du -sb "$DATADIR" | cut -f1)
SOURCE_COUNTS=$(row_counts)
log "database: $(mib "$DB_BYTES") MiB data + index ($(mib "$DATADIR_BYTES") MiB data folder); rows: $SOURCE_COUNTS"

check_rows() { # check_rows NAME
    local counts
    counts=$(row_counts)
    [ "$counts" = "$SOURCE_COUNTS" ] || die "$1: restored rows ($counts) differ from the source ($SOURCE_COUNTS)"
    log "$1: every table has as many rows as the source"
}

# --- backups -----------------------------------------------------------------------

age-keygen -o "$tmp/age.key" 2>/dev/null
RECIPIENT=$(age-keygen -y "$tmp/age.key")
backup_cmd

wait_quiet "the measurements"
# A build that starts during the measurements is noted (checked every 2 s).
( while :; do busy && date -u +%H:%M:%S >>"$tmp/builds"; sleep 2; done ) &
WATCH_PID=$!

for ((r = 1; r <= REPEAT; r++)); do
    backup "$(key floor "$r")" --out /dev/null --
    if [ "$r" = 1 ]; then
        backup floor-file --out "$tmp/plain.xb" --
    fi
    run "$(key ceiling "$r")" --in "$tmp/plain.xb" --out /dev/null -- zstd -1 -T0 -q
    backup "$(key standard "$r")" --out "$tmp/std.xb.zst.age" -- :: zstd -1 -T0 -q :: age -r "$RECIPIENT"
    svcdash_task "$(key svcdash "$r")" "/v1/instances/$IID/backups" "/v1/instances/$IID/backups"
    if [ "$r" = 1 ]; then SVC_BACKUP=$TASK_ID; fi
done

# --- restores ------------------------------------------------------------------------


MBSTREAM=(setpriv --reuid="$ACCOUNT" --regid="$ACCOUNT_GID" --clear-groups -- mbstream -x -C)
PREPARE=(setpriv --reuid="$ACCOUNT" --regid="$ACCOUNT_GID" --clear-groups -- mariadb-backup --no-defaults --prepare)
declare -A PHASES
for ((r = 1; r <= REPEAT; r++)); do
    dir=$(restore_dir engine-restore)
    run "$(key engine-restore/extract "$r")" --in "$tmp/plain.xb" -- "${MBSTREAM[@]}" "$dir"
    run "$(key engine-restore/prepare "$r")" -- "${PREPARE[@]}" --target-dir="$dir"
    check_prepared engine-restore "$dir"
    sum_rounds "$(key engine-restore "$r")" "$(key engine-restore/extract "$r")" "$(key engine-restore/prepare "$r")"
    PREPARED_BYTES=$(du -sb "$dir" | cut -f1)
    rm -rf "$dir"

    dir=$(restore_dir standard-restore)
    run "$(key standard-restore/extract "$r")" --in "$tmp/std.xb.zst.age" -- age -d -i "$tmp/age.key" :: \
        zstd -d -q :: "${MBSTREAM[@]}" "$dir"
    run "$(key standard-restore/prepare "$r")" -- "${PREPARE[@]}" --target-dir="$dir"
    check_prepared standard-restore "$dir"
    sum_rounds "$(key standard-restore "$r")" "$(key standard-restore/extract "$r")" "$(key standard-restore/prepare "$r")"
    rm -rf "$dir"

    # svcdash reaps the old server during the restore: its CPU so far is not the restore's.
    old=$(mariadbd_pid)
    CPU_ADJUST=$( [ -n "$old" ] && proc_cpu "$old" || echo 0 )
    name=$(key svcdash-restore "$r")
    svcdash_task "$name" "/v1/instances/$IID/backups/$SVC_BACKUP/restore" "/v1/instances/$IID/restores"
    STAGES[$name]="${STAGES[$name]}; CPU less the old mariadbd's ${CPU_ADJUST} s"
    CPU_ADJUST=0
    PHASES[$name]=$(restore_phases)
    read -r p_load p_prep p_stop p_switch p_start p_prepstop <<<"${PHASES[$name]}"
    log "$name phases: load $p_load s, prepare $p_prep s, stop $p_stop s (prepare+stop $p_prepstop s), switch $p_switch s, start $p_start s"
    check_rows "$name"
done
kill "$WATCH_PID" 2>/dev/null; wait "$WATCH_PID" 2>/dev/null || true
WATCH_PID=
[ -s "$tmp/builds" ] && NOTES+=("a build (rustc/cargo) ran during the measurements, seen at $(sort -u "$tmp/builds" | head -n 5 | tr '\n' ' ')")

# --- report --------------------------------------------------------------------------

# per_round NAME REF: "a/b/c" of the round-by-round ratios NAME#r / REF#r.
per_round() {
    local r out=()
    for ((r = 1; r <= REPEAT; r++)); do out+=("$(ratio "${WALL[$(key "$1" "$r")]}" "${WALL[$(key "$2" "$r")]}")"); done
    (IFS=/; echo "${out[*]}")
}
# all_le RATIOS LIMIT: succeeds if every a/b/c ratio is <= LIMIT.
all_le() { tr / '\n' <<<"$1" | awk -v t="$2" '$1 > t || $1 == "n/a" { bad = 1 } END { exit bad }'; }
verdict() { if "$@"; then echo MET; else echo "NOT MET"; fi; }
# max_rss NAME: the largest RSS of every round of NAME, in KiB.
max_rss() { local r m=0 v; for ((r = 1; r <= REPEAT; r++)); do v=${RSS[$(key "$1" "$r")]}; [ "$v" -gt "$m" ] && m=$v; done; echo "$m"; }
rss_rounds() { local r out=(); for ((r = 1; r <= REPEAT; r++)); do out+=("$(mib $((RSS[$(key "$1" "$r")] * 1024)))"); done; (IFS=/; echo "${out[*]}"); }
phase_median() { # phase_median FIELD(1-6): median over the rounds of svcdash-restore; ? if unknown in any round
    local r v out=()
    for ((r = 1; r <= REPEAT; r++)); do
        v=$(awk -v f="$1" '{ print $f }' <<<"${PHASES[$(key svcdash-restore "$r")]}")
        case $v in ''|'?') echo '?'; return ;; esac
        out+=("$v")
    done
    printf '%s\n' "${out[@]}" | median
}

mkdir -p "$BENCH_OUT"
report="$BENCH_OUT/mariadb-backup-restore-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
    echo "svcdash MariaDB backup/restore benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, $REPEAT round(s)"
    echo "database: $(mib "$DB_BYTES") MiB data + index (target $TARGET_LABEL), data folder $(mib "$DATADIR_BYTES") MiB; rows: $SOURCE_COUNTS"
    echo "server $(q 'SELECT VERSION()'), mariadb-backup $(mariadb-backup --version 2>&1 | grep -o '[0-9][0-9.]*-MariaDB' | head -n 1); zstd $(zstd -V | grep -o 'v[0-9.]*'); age $(age --version)"
    echo "RSS: shell methods = sum of the pipeline stages' peaks (stages listed); svcdash = server VmHWM during the operation"
    echo
    printf '%-28s %9s %9s %11s %9s  %s\n' name 'wall s' 'cpu s' 'output MiB' 'RSS MiB' 'detail'
    for n in "${ROWS[@]}"; do
        size=${SIZE[$n]}
        printf '%-28s %9.2f %9.2f %11s %9s  %s\n' "$n" "${WALL[$n]}" "${CPU[$n]}" \
            "$([ "$size" -gt 0 ] && mib "$size" || echo -)" "$(mib $((RSS[$n] * 1024)))" "${STAGES[$n]}"
    done
    echo
    echo "wall time over $REPEAT round(s): median (min-max) [rounds]"
    for n in floor ceiling standard svcdash engine-restore/extract engine-restore/prepare engine-restore \
        standard-restore/extract standard-restore/prepare standard-restore svcdash-restore; do
        printf '  %-26s %7s  (%s)  [%s]\n' "$n" "$(median_wall "$n")" "$(walls "$n" | minmax)" "$(walls "$n" | tr '\n' ' ' | sed 's/ $//')"
    done
    echo
    echo "svcdash restore phases (median of the rounds, s; from svcdash's log and the process trace):"
    printf '  load (download, check, decrypt, decompress, mbstream -x) %s\n' "$(phase_median 1)"
    printf '  prepare (mariadb-backup --prepare; +-0.1 s)             %s\n' "$(phase_median 2)"
    printf '  stop (read users, write init file, server shutdown)      %s\n' "$(phase_median 3)"
    printf '  switch (rename folders, spawn the server)               %s\n' "$(phase_median 4)"
    printf '  start (until it answers; remove old data; orphans)      %s\n' "$(phase_median 5)"
    printf '  (prepare + stop, both from the log                       %s)\n' "$(phase_median 6)"
    for ((r = 1; r <= REPEAT; r++)); do
        echo "  round $r: load prepare stop switch start (prepare+stop) = ${PHASES[$(key svcdash-restore "$r")]}"
    done
    if [ "$(phase_median 3)" != '?' ] && [ "$(phase_median 5)" != '?' ]; then
        stopstart=$(awk -v a="$(phase_median 3)" -v b="$(phase_median 4)" -v c="$(phase_median 5)" 'BEGIN { printf "%.2f", a + b + c }')
        what="stopping the server, switching the folders and starting the server"
    else   # the prepare was too short for the trace: count it in
        stopstart=$(awk -v a="$(phase_median 6)" -v b="$(phase_median 4)" -v c="$(phase_median 5)" 'BEGIN { printf "%.2f", a + b + c }')
        what="(preparing,) stopping the server, switching the folders and starting the server"
    fi
    without=$(sub_s "$(median_wall svcdash-restore)" "$stopstart")
    echo "  svcdash's restore includes $what: ${stopstart} s of its"
    echo "  median $(median_wall svcdash-restore) s; the engine's own restore (extract + prepare) includes none of that."
    echo "  svcdash without that: ${without} s = $(ratio "$without" "$(median_wall engine-restore)") x engine-restore (median)"
    echo
    plain=${SIZE[floor-file]}
    echo "sizes: plain xbstream $(mib "$plain") MiB; standard (zstd -1 + age) $(mib "${SIZE[standard]}") MiB ($(ratio "$plain" "${SIZE[standard]}"):1); svcdash (zstd 2 + age) $(mib "${SIZE[svcdash]}") MiB ($(ratio "$plain" "${SIZE[svcdash]}"):1); prepared folder $(mib "$PREPARED_BYTES") MiB"
    r_floor=$(ratio "$(median_wall svcdash)" "$(median_wall floor)")
    pr_floor=$(per_round svcdash floor)
    r_std=$(ratio "$(median_wall svcdash)" "$(median_wall standard)")
    r_rest=$(ratio "$(median_wall svcdash-restore)" "$(median_wall engine-restore)")
    pr_rest=$(per_round svcdash-restore engine-restore)
    r_srest=$(ratio "$(median_wall svcdash-restore)" "$(median_wall standard-restore)")
    echo
    echo "svcdash/floor backup wall                 $r_floor (rounds $pr_floor)"
    echo "svcdash/standard backup wall              $r_std (rounds $(per_round svcdash standard))"
    echo "standard/floor backup wall                $(ratio "$(median_wall standard)" "$(median_wall floor)")"
    echo "ceiling/floor backup wall                 $(ratio "$(median_wall ceiling)" "$(median_wall floor)") (rounds $(per_round ceiling floor)): zstd -1 on every core, alone,"
    echo "  on the plain stream from the page cache; no pipeline that compresses as well can be faster here"
    echo "svcdash-restore/engine-restore wall       $r_rest (rounds $pr_rest)"
    echo "svcdash-restore/standard-restore wall     $r_srest (rounds $(per_round svcdash-restore standard-restore))"
    echo "svcdash peak RSS per round (MiB): backups $(rss_rounds svcdash), restores $(rss_rounds svcdash-restore)"
    rss_max=$(max_rss svcdash); rr=$(max_rss svcdash-restore); [ "$rr" -gt "$rss_max" ] && rss_max=$rr
    echo
    echo "targets (met only if the medians AND every round meet them):"
    printf '  %-66s %s\n' "backup wall <= $BACKUP_TARGET x floor (median $r_floor; rounds $pr_floor)" \
        "$(verdict all_le "$r_floor/$pr_floor" "$BACKUP_TARGET")"
    printf '  %-66s %s\n' "restore wall <= $RESTORE_TARGET x engine extract+prepare (median $r_rest; rounds $pr_rest)" \
        "$(verdict all_le "$r_rest/$pr_rest" "$RESTORE_TARGET")"
    printf '  %-66s %s\n' "server peak RSS < $RSS_TARGET_MIB MiB, every backup and restore (max $(mib $((rss_max * 1024))))" \
        "$(verdict awk -v k="$rss_max" -v t="$RSS_TARGET_MIB" 'BEGIN { exit !(k < t * 1024) }')"
    echo "  (svcdash's restore time includes stopping the server, switching the folders and starting it; the engine's does not)"
    if [ "${#NOTES[@]}" -gt 0 ]; then
        echo "notes: $(IFS=';'; echo "${NOTES[*]}" | sed 's/;/; /g')"
    else
        echo "notes: no build (rustc/cargo) ran before or during the measurements"
    fi
} | tee "$report"
log "report saved to $report"
