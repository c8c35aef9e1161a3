#!/usr/bin/env bash
# MariaDB backup format benchmark: a logical dump (mariadb-dump) against a
# physical backup (mariadb-backup --stream=xbstream), both compressed with
# zstd and encrypted with age, to choose the format svcdash uses for MariaDB.
# It prints figures; it is not a test and passes or fails nothing but its own
# setup. It does not use svcdash.
#
# What it does:
#   1. creates a throwaway MariaDB server in a fresh temp dir, run by a system
#      account made for the purpose (useradd --system, removed at the end):
#      mariadb-install-db, then mariadbd on 127.0.0.1 with a 256 MiB buffer
#      pool; everything connects as that account through the unix socket
#      (unix_socket auth maps OS user U to U@localhost);
#   2. fills database `app` with realistic rows (bench/mariadb-gen-data.sql:
#      random hex, free text, small JSON documents, integer primary keys and
#      a secondary index per table; a plain dump compresses ~2.5-3:1 with
#      zstd -1) until data_length + index_length reaches the target size,
#      then prints the zstd -1 ratio of a dump of every 20th row;
#   3. measures, in rounds (each round runs every method once, in this order):
#        floor-dump       mariadb-dump --single-transaction --routines --events
#                         --triggers app > /dev/null        (cost of reading)
#        dump-pipeline    mariadb-dump ... | zstd -1 -T2 | age -r RECIPIENT > file
#        floor-backup     mariadb-backup --backup --stream=xbstream > /dev/null
#        backup-pipeline  mariadb-backup ... | zstd -1 -T2 | age -r RECIPIENT > file
#        restore-dump     age -d | zstd -d | mariadb NEWDB   (new empty database
#                         on the same server; NEWDB is dropped after the round)
#        restore-backup   extract  age -d | zstd -d | mbstream -x -C DIR
#                         prepare  mariadb-backup --prepare --target-dir=DIR
#                         start    a second mariadbd on DIR (own port and
#                                  socket), until it answers SELECT COUNT(*)
#                                  on bench_events
#      every restore is checked: the row count of every table must equal the
#      source's;
#   4. prints a summary: median and min-max wall time, all rounds, output size
#      (compressed and uncompressed) and peak RSS.
#
# How figures are taken:
#   - Pipelines run under bench/measure.py, which runs every stage under GNU
#     time (python3's resource module without it). "RSS" is the SUM of the
#     stages' peak RSS (an upper bound of the pipeline's footprint); the
#     per-stage peaks are listed next to it. runuser waits for its child, so
#     a stage run through runuser reports the larger of the two.
#   - The "start" stage is timed by this script: from launching mariadbd to the
#     first successful SELECT COUNT(*) (polled every 0.05 s); its RSS is that
#     server's VmHWM at that moment. restore-backup's total is the sum of
#     extract, prepare and start.
#   - The server's own work (serving the dump, loading the restore) is in no
#     RSS or CPU figure, only in wall times.
#   - mariadb-dump reads through the server: a warm page cache (the data was
#     just written) but not a warm buffer pool (256 MiB, smaller than the
#     data). mariadb-backup opens the data files with O_DIRECT (seen with
#     strace), so it reads the disk, bypassing the page cache. Dirty pages are
#     flushed before the measurements and after each dump restore, so that
#     background flushing does not land in the next measurement.
#   - Before each measured operation the script waits while rustc, cargo or
#     `cargo test` runs (another user compiles on this machine), and says so;
#     a build that starts during a measurement (checked every second) marks
#     that round with * in the summary.
#
# Usage (from anywhere; run as root, since it creates a system account):
#   bench/mariadb-formats.sh                      # 1 GiB database, 3 rounds
#   BENCH_GIB=0.05 BENCH_REPEAT=1 bench/mariadb-formats.sh   # quick check
#
# Environment:
#   BENCH_GIB       target size of `app` in GiB (default 1; decimals allowed)
#   BENCH_REPEAT    rounds of every method (default 3)
#   BENCH_KEEP_TMP  1: keep the temporary directory (dumps, logs, datadirs)
#
# Needs: mariadb-server 10.11 (mariadbd, mariadb-install-db), mariadb-client
# (mariadb, mariadb-dump), mariadb-backup (mariadb-backup, mbstream), zstd,
# age, age-keygen, python3, runuser, useradd, GNU time (/usr/bin/time).
# Disk: about 4x the database size in the temp dir ($TMPDIR or /tmp).

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
MEASURE=(python3 "$BENCH/measure.py")
GEN_SQL="$BENCH/mariadb-gen-data.sql"

BENCH_GIB=${BENCH_GIB:-1}
REPEAT=${BENCH_REPEAT:-3}
BUFFER_POOL=256M
TABLES=(bench_api_keys bench_documents bench_events bench_words)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------

PATH="$PATH:/usr/sbin:/sbin"
for t in mariadbd mariadb-install-db mariadb mariadb-dump mariadb-backup mbstream \
    zstd age age-keygen python3 runuser useradd userdel pgrep; do
    command -v "$t" >/dev/null || die "$t not found"
done
[ "$(id -u)" = 0 ] || die "run as root (it creates a system account and runs the server as it)"
[ -x /usr/bin/time ] || log "GNU time (/usr/bin/time) is missing: RSS comes from python3's resource module and small figures read high"

TARGET_BYTES=$(awk -v g="$BENCH_GIB" 'BEGIN { printf "%d", g * 1073741824 }')

# --- state and cleanup -----------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mariadb-bench.XXXXXX")
chmod 755 "$tmp"                  # the account must be able to enter it
U=mdbbench$$                      # the system account (<= 32 characters)
USER_MADE=0
SERVER_RUNUSER=                   # pid of `runuser ... mariadbd` (main server)
SERVER2_RUNUSER=                  # same for the server on a restored backup
DATA=$tmp/data                    # main server's datadir
RUN=$tmp/run                      # sockets and pid files (must be writable by U)
OUT=$tmp/out                      # backup files (root)
SOCK=$RUN/main.sock
PIDF=$RUN/main.pid
SOCK2=$RUN/restored.sock
PIDF2=$RUN/restored.pid
RESTORE_DIR=$tmp/restored         # datadir built from the physical backup
BACKUP_TARGET=$tmp/backup-target  # mariadb-backup --target-dir (stays empty when streaming)
NEWDB=app_restore

# stop_server RUNUSER_PID PIDFILE: stops a server we started, by its pids.
# mariadbd gets the TERM (a clean shutdown); runuser exits with it. (A TERM to
# runuser would be passed on, but followed by a KILL 2 s later.)
stop_server() {
    local wrapper=$1 pidfile=$2 pid
    [ -n "$wrapper" ] || return 0
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; fi
    for _ in $(seq 600); do
        kill -0 "$wrapper" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$wrapper" 2>/dev/null; then
        log "mariadbd ($pidfile) did not stop within 60 s; killing it"
        if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null; else kill -TERM "$wrapper"; fi
    fi
    wait "$wrapper" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +eu
    [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null
    stop_server "$SERVER2_RUNUSER" "$PIDF2"
    stop_server "$SERVER_RUNUSER" "$PIDF"
    if [ "$USER_MADE" = 1 ]; then
        # Anything else still running as the account was started by this script.
        for pid in $(pgrep -u "$U"); do
            log "stopping leftover pid $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) of $U"
            kill -TERM "$pid" 2>/dev/null
        done
        sleep 1
        userdel "$U" || log "userdel $U failed; remove the account by hand"
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

as_u() { runuser -u "$U" -- "$@"; }
# sql [SOCKET] -- ARGS: the mariadb client as U; q: one query, tab-separated, no header.
sql_on() { local sock=$1; shift; as_u mariadb --no-defaults --socket="$sock" "$@"; }
sql() { sql_on "$SOCK" "$@"; }
q() { sql -N -B -e "$1" "${@:2}"; }

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
fsize() { stat -c %s "$1"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

# wait_quiet: waits while someone compiles (rustc, cargo, cargo test).
NOTES=()
busy() { pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null || pgrep -f 'cargo test' >/dev/null; }
wait_quiet() {
    local waited=0
    while busy; do
        [ "$waited" = 0 ] && log "note: a build (rustc/cargo) is running; waiting for a quiet machine before $1"
        sleep 10
        waited=$((waited + 10))
    done
    if [ "$waited" -gt 0 ]; then
        log "note: waited ${waited} s for a quiet machine before $1"
        NOTES+=("waited ${waited} s before $1")
    fi
}

# watch_start / watch_stop NAME ROUND: while a measurement runs, a background
# loop checks every second whether a build started; if one did, the round is
# marked with * in the summary.
declare -A DISTURBED
WATCH_PID=
watch_start() {
    rm -f "$tmp/disturbed"
    ( while :; do busy && : >"$tmp/disturbed"; sleep 1; done ) &
    WATCH_PID=$!
}
watch_stop() {
    kill "$WATCH_PID" 2>/dev/null
    wait "$WATCH_PID" 2>/dev/null || true
    WATCH_PID=
    if [ -e "$tmp/disturbed" ]; then
        DISTURBED[$1#$2]=1
        log "note: a build ran during $1 (round $2)"
        NOTES+=("a build ran during $1 (round $2)")
    fi
}

# start_server DATADIR PORT SOCKET PIDFILE LOG: starts mariadbd as U in the
# background and sets STARTED to the pid of its runuser wrapper.
start_server() {
    as_u mariadbd --no-defaults --datadir="$1" --port="$2" --bind-address=127.0.0.1 \
        --socket="$3" --pid-file="$4" --skip-name-resolve \
        --innodb-buffer-pool-size=$BUFFER_POOL >"$5" 2>&1 &
    STARTED=$!
}

# settle: flushes InnoDB's dirty pages (up to 5 min), so that background
# flushing does not land in the next measurement.
settle() {
    local dirty=1
    q 'SET GLOBAL innodb_max_dirty_pages_pct = 0'
    for _ in $(seq 600); do
        dirty=$(q "SELECT variable_value FROM information_schema.global_status WHERE variable_name = 'INNODB_BUFFER_POOL_PAGES_DIRTY'")
        [ "$dirty" = 0 ] && break
        sleep 0.5
    done
    q 'SET GLOBAL innodb_max_dirty_pages_pct = DEFAULT'
    [ "$dirty" = 0 ] || log "note: $dirty dirty pages still unflushed"
}

db_bytes() { # db_bytes DB: data_length + index_length of DB's tables
    q "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = '$1'"
}

# row_counts SOCKET DB: "table=count ..." of the benchmark tables.
row_counts() {
    local t out=()
    for t in "${TABLES[@]}"; do
        out+=("$t=$(sql_on "$1" -N -B -e "SELECT COUNT(*) FROM \`$2\`.\`$t\`")")
    done
    echo "${out[*]}"
}

# --- results -------------------------------------------------------------------

ROWS=()                     # method names, in order of first appearance
declare -A WALL SIZE RSS CPU STAGES
# record NAME ROUND WALL CPU SIZE_BYTES RSS_KIB STAGES_TEXT
record() {
    local key="$1#$2"
    [ "$2" = 1 ] && ROWS+=("$1")
    WALL[$key]=$3; CPU[$key]=$4; SIZE[$key]=$5; RSS[$key]=$6; STAGES[$key]=$7
}
rounds_of() { local r; for ((r = 1; r <= REPEAT; r++)); do echo "${WALL[$1#$r]}"; done; }
median() { sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minmax() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo, hi }'; }

# measure NAME ROUND [measure.py options] -- STAGE... [:: STAGE...]...: runs a
# pipeline under measure.py and records it; the size is that of the --out file
# unless it is /dev/null.
measure() {
    local name=$1 round=$2 out='' args=("${@:3}") i
    for ((i = 0; i < ${#args[@]}; i++)); do
        [ "${args[i]}" = --out ] && out=${args[i + 1]}
        [ "${args[i]}" = -- ] && break
    done
    wait_quiet "$name (round $round)"
    log "$name (round $round)"
    local err="$tmp/${name//\//_}.$round.err"
    watch_start
    if ! "${MEASURE[@]}" --report "$tmp/report" --err "$err" "${args[@]}"; then
        tail -n 20 "$err" >&2
        die "$name failed (stderr in $err)"
    fi
    watch_stop "$name" "$round"
    local wall cpu _max sum per size=0 stages
    read -r wall cpu _max sum per <"$tmp/report"
    [ -n "$out" ] && [ "$out" != /dev/null ] && size=$(fsize "$out")
    stages=$(tr , '\n' <<<"$per" | awk '{ printf "%s%.1f", (NR > 1 ? " + " : ""), $1 / 1024 }')
    record "$name" "$round" "$wall" "$cpu" "$size" "$sum" "$stages"
    log "$name: ${wall} s, CPU ${cpu} s, $(mib "$size") MiB, RSS $(mib $((sum * 1024))) MiB ($stages)"
}

# --- 1. the server -------------------------------------------------------------

log "creating system account $U"
useradd --system --no-create-home --shell /usr/sbin/nologin "$U"
USER_MADE=1
mkdir -p "$DATA" "$RUN" "$OUT" "$BACKUP_TARGET"
chown "$U:" "$DATA" "$RUN" "$BACKUP_TARGET"

log "mariadb-install-db into $DATA"
as_u mariadb-install-db --no-defaults --skip-test-db --datadir="$DATA" --user="$U" \
    >"$tmp/install.log" 2>&1 || { tail -n 20 "$tmp/install.log" >&2; die "mariadb-install-db failed"; }

PORT=$(free_port)
log "starting mariadbd on 127.0.0.1:$PORT (socket $SOCK, log $tmp/server.log)"
start_server "$DATA" "$PORT" "$SOCK" "$PIDF" "$tmp/server.log"
SERVER_RUNUSER=$STARTED
for i in $(seq 300); do
    kill -0 "$SERVER_RUNUSER" 2>/dev/null || { tail -n 20 "$tmp/server.log" >&2; die "mariadbd exited"; }
    q 'SELECT 1' >/dev/null 2>&1 && break
    [ "$i" = 300 ] && die "mariadbd did not answer within 30 s"
    sleep 0.1
done
log "$(q 'SELECT CONCAT(VERSION(), " as ", CURRENT_USER())')"
q 'CREATE DATABASE app'

# --- 2. data -------------------------------------------------------------------

analyze() { q "ANALYZE TABLE $(IFS=,; echo "${TABLES[*]}")" "$1" >/dev/null; }

log "filling app to $(mib "$TARGET_BYTES") MiB of data + index (bench/mariadb-gen-data.sql)"
t_fill=$(now)
batch=20000                # bench_events rows of the first batch; the rest is sized from it
events=0
size=0
while [ "$size" -lt "$TARGET_BYTES" ]; do
    { echo "SET @rows = $batch;"; cat "$GEN_SQL"; } | sql app
    events=$((events + batch))
    analyze app
    size=$(db_bytes app)
    log "  $events events rows: $(mib "$size") MiB ($(since "$t_fill") s)"
    # Size the next batch from the bytes per bench_events row so far (+2 %),
    # at most 300k rows a transaction.
    batch=$(awk -v t="$TARGET_BYTES" -v s="$size" -v e="$events" \
        'BEGIN { n = int((t - s) / (s / e) * 1.02) + 1; if (n < 1000) n = 1000; if (n > 300000) n = 300000; print n }')
done
FILL_S=$(since "$t_fill")
log "filled in $FILL_S s; flushing dirty pages"
settle
SOURCE_COUNTS=$(row_counts "$SOCK" app)
SOURCE_BYTES=$(db_bytes app)
log "app: $(mib "$SOURCE_BYTES") MiB data + index; rows: $SOURCE_COUNTS"
q "SELECT table_name, table_rows, ROUND(data_length / 1048576, 1) AS data_mib, ROUND(index_length / 1048576, 1) AS index_mib
   FROM information_schema.tables WHERE table_schema = 'app' ORDER BY table_name" | sed 's/^/    /' >&2

# A sample: every 20th row of every table, dumped and compressed with zstd -1.
as_u mariadb-dump --no-defaults --socket="$SOCK" --single-transaction --where='id % 20 = 0' app >"$tmp/sample.sql"
SAMPLE_RAW=$(fsize "$tmp/sample.sql")
SAMPLE_ZST=$(zstd -1 -c "$tmp/sample.sql" | wc -c)
SAMPLE_RATIO=$(ratio "$SAMPLE_RAW" "$SAMPLE_ZST")
log "sample dump (every 20th row): $(mib "$SAMPLE_RAW") MiB, zstd -1 ratio $SAMPLE_RATIO:1"
log "first line of a dump: $(head -n 1 "$tmp/sample.sql")"
rm -f "$tmp/sample.sql"

# --- 3. measurements -------------------------------------------------------------

age-keygen -o "$tmp/key.txt" 2>/dev/null
RECIPIENT=$(age-keygen -y "$tmp/key.txt")

DUMP=(runuser -u "$U" -- mariadb-dump --no-defaults --socket="$SOCK"
      --single-transaction --routines --events --triggers app)
# mariadb-backup finds the datadir by asking the server; it must run as an OS
# user that can read it, and its SQL user needs RELOAD and PROCESS. Streaming,
# it writes nothing to --target-dir or tmpdir; --prepare opens unnamed temp
# files (O_TMPFILE) in tmpdir (default $TMPDIR or /tmp; --tmpdir=DIR moves them).
BACKUP=(runuser -u "$U" -- mariadb-backup --no-defaults --backup --stream=xbstream
        --target-dir="$BACKUP_TARGET" --socket="$SOCK" --user="$U")
ZSTD=(zstd -1 -T2 -q)
AGE_ENC=(age -r "$RECIPIENT")
AGE_DEC=(age -d -i "$tmp/key.txt")
DUMP_FILE=$OUT/app.sql.zst.age
BACKUP_FILE=$OUT/app.xb.zst.age
PORT2=$(free_port)

check_counts() { # check_counts NAME COUNTS
    [ "$2" = "$SOURCE_COUNTS" ] || die "$1: restored rows ($2) differ from the source ($SOURCE_COUNTS)"
    log "$1: every table has as many rows as the source"
}

restore_backup_round() { # restore_backup_round ROUND
    local r=$1 t0 start_s wall kib pid
    rm -rf "$RESTORE_DIR"
    mkdir "$RESTORE_DIR"
    chown "$U:" "$RESTORE_DIR"
    measure restore-backup/extract "$r" --in "$BACKUP_FILE" -- "${AGE_DEC[@]}" :: zstd -d -q \
        :: runuser -u "$U" -- mbstream -x -C "$RESTORE_DIR"
    measure restore-backup/prepare "$r" -- runuser -u "$U" -- mariadb-backup --no-defaults \
        --prepare --target-dir="$RESTORE_DIR"
    RESTORED_BYTES=$(du -sb "$RESTORE_DIR" | cut -f1)
    wait_quiet "restore-backup/start (round $r)"
    log "restore-backup/start (round $r)"
    watch_start
    t0=$(now)
    start_server "$RESTORE_DIR" "$PORT2" "$SOCK2" "$PIDF2" "$tmp/restored.$r.log"
    SERVER2_RUNUSER=$STARTED
    while ! sql_on "$SOCK2" -N -B -e 'SELECT COUNT(*) FROM app.bench_events' >/dev/null 2>&1; do
        kill -0 "$SERVER2_RUNUSER" 2>/dev/null || { tail -n 20 "$tmp/restored.$r.log" >&2; die "mariadbd on the restored backup exited"; }
        awk -v s="$(since "$t0")" 'BEGIN { exit !(s > 600) }' && die "the restored server did not answer within 600 s"
        sleep 0.05
    done
    start_s=$(since "$t0")
    watch_stop restore-backup/start "$r"
    pid=$(cat "$PIDF2")
    kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
    record restore-backup/start "$r" "$start_s" 0 0 "$kib" "mariadbd VmHWM"
    log "restore-backup/start: ${start_s} s, mariadbd VmHWM $(mib $((kib * 1024))) MiB"
    check_counts "restore-backup (round $r)" "$(row_counts "$SOCK2" app)"
    wall=$(awk -v a="${WALL[restore-backup/extract#$r]}" -v b="${WALL[restore-backup/prepare#$r]}" -v c="$start_s" 'BEGIN { printf "%.3f", a + b + c }')
    record restore-backup/total "$r" "$wall" 0 0 0 "extract + prepare + start"
    [ -n "${DISTURBED[restore-backup/extract#$r]:-}${DISTURBED[restore-backup/prepare#$r]:-}${DISTURBED[restore-backup/start#$r]:-}" ] &&
        DISTURBED[restore-backup/total#$r]=1
    stop_server "$SERVER2_RUNUSER" "$PIDF2"
    SERVER2_RUNUSER=
    rm -rf "$RESTORE_DIR"
}

for ((r = 1; r <= REPEAT; r++)); do
    log "--- round $r of $REPEAT ---"
    measure floor-dump "$r" --out /dev/null -- "${DUMP[@]}"
    measure dump-pipeline "$r" --out "$DUMP_FILE" -- "${DUMP[@]}" :: "${ZSTD[@]}" :: "${AGE_ENC[@]}"
    measure floor-backup "$r" --out /dev/null -- "${BACKUP[@]}"
    measure backup-pipeline "$r" --out "$BACKUP_FILE" -- "${BACKUP[@]}" :: "${ZSTD[@]}" :: "${AGE_ENC[@]}"

    q "DROP DATABASE IF EXISTS $NEWDB; CREATE DATABASE $NEWDB"
    measure restore-dump "$r" --in "$DUMP_FILE" -- "${AGE_DEC[@]}" :: zstd -d -q \
        :: runuser -u "$U" -- mariadb --no-defaults --socket="$SOCK" "$NEWDB"
    check_counts "restore-dump (round $r)" "$(row_counts "$SOCK" "$NEWDB")"
    analyze "$NEWDB"
    NEWDB_BYTES=$(db_bytes "$NEWDB")
    q "DROP DATABASE $NEWDB"
    settle

    restore_backup_round "$r"
done

# Uncompressed sizes: the plain dump and the xbstream (not timed).
DUMP_RAW=$("${AGE_DEC[@]}" "$DUMP_FILE" | zstd -d -q | wc -c)
BACKUP_RAW=$("${AGE_DEC[@]}" "$BACKUP_FILE" | zstd -d -q | wc -c)

# --- 4. summary ------------------------------------------------------------------

echo
echo "MariaDB backup formats: app = $(mib "$SOURCE_BYTES") MiB data + index (target $BENCH_GIB GiB), filled in $FILL_S s"
echo "rows: $SOURCE_COUNTS"
echo "zstd -1 ratio of a sample dump (every 20th row): $SAMPLE_RATIO:1"
echo "$(nproc) cores, $REPEAT round(s), $(mariadbd --version | awk '{ print $3 }'), zstd $(zstd -V | grep -o 'v[0-9.]*'), age $(age --version)"
echo
printf '%-24s %8s %13s  %-26s %10s %10s  %s\n' method median min-max rounds size_MiB RSS_MiB "RSS by stage (MiB), last round"
for n in "${ROWS[@]}"; do
    rounds=
    for ((r = 1; r <= REPEAT; r++)); do
        rounds+="$(awk -v v="${WALL[$n#$r]}" 'BEGIN { printf "%.2f", v }')${DISTURBED[$n#$r]:+*} "
    done
    peak=0
    for ((r = 1; r <= REPEAT; r++)); do [ "${RSS[$n#$r]}" -gt "$peak" ] && peak=${RSS[$n#$r]}; done
    size=${SIZE[$n#$REPEAT]}
    printf '%-24s %8s %13s  %-26s %10s %10s  %s\n' "$n" "$(rounds_of "$n" | median)" "$(rounds_of "$n" | minmax)" \
        "$rounds" "$([ "$size" -gt 0 ] && mib "$size" || echo -)" "$([ "$peak" -gt 0 ] && mib $((peak * 1024)) || echo -)" \
        "${STAGES[$n#$REPEAT]}"
done
echo
DUMP_ZSIZE=$(fsize "$DUMP_FILE")
BACKUP_ZSIZE=$(fsize "$BACKUP_FILE")
printf '%-16s %14s %14s %8s\n' format uncompressed compressed ratio
printf '%-16s %10s MiB %10s MiB %7s:1\n' "dump (.sql)" "$(mib "$DUMP_RAW")" "$(mib "$DUMP_ZSIZE")" "$(ratio "$DUMP_RAW" "$DUMP_ZSIZE")"
printf '%-16s %10s MiB %10s MiB %7s:1\n' "backup (.xb)" "$(mib "$BACKUP_RAW")" "$(mib "$BACKUP_ZSIZE")" "$(ratio "$BACKUP_RAW" "$BACKUP_ZSIZE")"
echo "restored by the dump: $(mib "$NEWDB_BYTES") MiB data + index; prepared backup: $(mib "$RESTORED_BYTES") MiB on disk (before the server starts on it)"
echo "rounds marked * had a build (rustc/cargo) running at some point during the measurement."
echo "RSS = sum of the stages' peaks (GNU time); the servers' own memory is not included, except in restore-backup/start (that server's VmHWM)."
if [ "${#NOTES[@]}" -gt 0 ]; then
    echo "notes: $(IFS=';'; echo "${NOTES[*]}" | sed 's/;/; /g')"
else
    echo "notes: the machine was quiet before every measurement"
fi
