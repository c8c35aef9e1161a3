#!/usr/bin/env bash
# Both backup/restore benchmarks in one run, so that both engines' figures come
# from the same machine state: bench/backup-restore.sh (PostgreSQL), then
# bench/mariadb-backup-restore.sh, with the same BENCH_GIB / BENCH_MB /
# BENCH_REPEAT, and then both reports together.
#
# Before each engine it waits while rustc or cargo runs (another user may be
# compiling on this machine).
#
# Usage (from anywhere; run as root, as the MariaDB benchmark needs):
#   bench/all.sh                                # 1 GiB, 1 round
#   BENCH_GIB=1 BENCH_REPEAT=3 bench/all.sh
#
# Environment: BENCH_GIB, BENCH_MB, BENCH_REPEAT, SVCDASH_BIN, BENCH_KEEP_TMP,
# BENCH_OUT and the rest are passed on to both scripts (see their headers).
# Each script's report is also saved in BENCH_OUT (default bench/out); this
# script saves the two together as BENCH_OUT/all-<time>.txt.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
export BENCH_GIB=${BENCH_GIB:-1}
export BENCH_REPEAT=${BENCH_REPEAT:-1}
[ -n "${BENCH_MB:-}" ] && export BENCH_MB
BENCH_OUT=${BENCH_OUT:-$BENCH/out}
export BENCH_OUT

log() { printf '==> %s\n' "$*" >&2; }

busy() { pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; }
wait_quiet() {
    local waited=0
    while busy; do
        [ "$waited" = 0 ] && log "a build (rustc/cargo) is running; waiting for it to end before $1"
        sleep 10
        waited=$((waited + 10))
    done
    [ "$waited" -gt 0 ] && log "waited ${waited} s before $1"
    return 0
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/svcdash-bench-all.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

status=0
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
wait_quiet "PostgreSQL"
log "PostgreSQL: bench/backup-restore.sh (${BENCH_MB:+BENCH_MB=$BENCH_MB}${BENCH_MB:-BENCH_GIB=$BENCH_GIB} BENCH_REPEAT=$BENCH_REPEAT)"
"$BENCH/backup-restore.sh" >"$tmp/postgresql.txt" || { status=$?; log "bench/backup-restore.sh failed (exit $status)"; }
wait_quiet "MariaDB"
log "MariaDB: bench/mariadb-backup-restore.sh"
"$BENCH/mariadb-backup-restore.sh" >"$tmp/mariadb.txt" || { s=$?; status=$s; log "bench/mariadb-backup-restore.sh failed (exit $s)"; }

mkdir -p "$BENCH_OUT"
report="$BENCH_OUT/all-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
    echo "svcdash backup/restore benchmarks, one run started $started: ${BENCH_MB:+BENCH_MB=$BENCH_MB}${BENCH_MB:-BENCH_GIB=$BENCH_GIB} BENCH_REPEAT=$BENCH_REPEAT"
    echo
    echo "=================================== PostgreSQL ==================================="
    if [ -s "$tmp/postgresql.txt" ]; then cat "$tmp/postgresql.txt"; else echo "(no report: the benchmark failed)"; fi
    echo
    echo "===================================== MariaDB ====================================="
    if [ -s "$tmp/mariadb.txt" ]; then cat "$tmp/mariadb.txt"; else echo "(no report: the benchmark failed)"; fi
} | tee "$report"
log "both reports saved to $report"
exit "$status"
