#!/usr/bin/env bash
# Import throughput (not part of the test suite), in one run:
#   - hashed keys: a file of ACCOUNTS masters of 4 keys (1,000,000 keys by
#     default), imported on SQLite and on PostgreSQL, keys/s and the
#     importer's peak memory (heap: RssAnon; and VmHWM, which also counts
#     the SQLite file's pages it touched);
#   - a rerun of the same file (everything skipped);
#   - plaintext keys, bound by argon2: keys/s against the limit
#     `cores / (one argon2 hash time)`, the hash timed before and after the
#     import (the mean of the two: a single-thread figure drifts).
# Targets: 20,000 keys/s hashed on each store, a ratio of 0.9 for plaintext.
#
#   bash benches/import.sh      # ACCOUNTS=250000 PLAIN_ACCOUNTS=200
#
# PostgreSQL: APIKEYS_TEST_POSTGRES_URL (default the project machines'
# postgres://postgres@127.0.0.1:5432/test), in a throw-away schema.
# Builds the server and one example in release mode. Exits 1 below a target.
set -euo pipefail
cd "$(dirname "$0")/.."

ACCOUNTS="${ACCOUNTS:-250000}"
PLAIN_ACCOUNTS="${PLAIN_ACCOUNTS:-200}"
PG_URL="${APIKEYS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
RELEASE="${CARGO_TARGET_DIR:-target}/release"
WORK="$(mktemp -d)"
SCHEMA="bench_import_$$"
cleanup() {
    psql -q "$PG_URL" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release --quiet -p apikeys-server
cargo build --release --quiet --example argon2_time
CORES="$(nproc)"
KEYS=$((ACCOUNTS * 4))
python3 benches/make_import_file.py "$WORK/hashed.jsonl" "$ACCOUNTS" 4
python3 benches/make_import_file.py "$WORK/plain.jsonl" "$PLAIN_ACCOUNTS" 4 --plaintext

# Runs an import, sampling its memory; prints "seconds heap_kib hwm_kib".
measure() {
    local start end pid heap=0 hwm=0 h w
    start="$(date +%s.%N)"
    "$RELEASE/apikeys-server" import "$@" --progress none 2>"$WORK/log" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        h="$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)"
        w="$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)"
        [ -n "$h" ] && [ "$h" -gt "$heap" ] && heap="$h"
        [ -n "$w" ] && [ "$w" -gt "$hwm" ] && hwm="$w"
        sleep 0.1
    done
    wait "$pid" || { cat "$WORK/log" >&2; exit 1; }
    end="$(date +%s.%N)"
    echo "$(echo "$end - $start" | bc -l) $heap $hwm"
}

fail=0
report() { # name keys seconds heap hwm target
    local rate
    rate="$(echo "$2 / $3" | bc -l)"
    printf '%-28s %9d keys in %6.1f s: %8.0f keys/s, heap %4d MiB, VmHWM %4d MiB (target %s)\n' \
        "$1" "$2" "$3" "$rate" $(($4 / 1024)) $(($5 / 1024)) "$6"
    if [ "$(echo "$rate < $6" | bc -l)" = 1 ]; then fail=1; fi
}

read -r s heap hwm < <(measure "$WORK/hashed.jsonl" --db "$WORK/keys.sqlite3")
report "sqlite, hashed" "$KEYS" "$s" "$heap" "$hwm" 20000
read -r s heap hwm < <(measure "$WORK/hashed.jsonl" --db "$WORK/keys.sqlite3")
printf '%-28s %9d lines skipped in %.1f s\n' "sqlite, rerun" "$ACCOUNTS" "$s"

if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || psql -q "$PG_URL" -c 'SELECT 1' >/dev/null 2>&1; then
    read -r s heap hwm < <(measure "$WORK/hashed.jsonl" --postgres "$PG_URL" --postgres-schema "$SCHEMA")
    report "postgres, hashed" "$KEYS" "$s" "$heap" "$hwm" 20000
else
    echo "postgres: no server at $PG_URL, skipped" >&2
    fail=1
fi

before="$("$RELEASE/examples/argon2_time")"
read -r s heap hwm < <(measure "$WORK/plain.jsonl" --db "$WORK/plain.sqlite3")
after="$("$RELEASE/examples/argon2_time")"
hash_ms="$(echo "($before + $after) / 2" | bc -l)"
plain_keys=$((PLAIN_ACCOUNTS * 4))
rate="$(echo "$plain_keys / $s" | bc -l)"
limit="$(echo "$CORES * 1000 / $hash_ms" | bc -l)"
ratio="$(echo "$rate / $limit" | bc -l)"
printf 'plaintext (sqlite)           %9d keys in %6.1f s: %6.1f keys/s; argon2 %.2f ms (%.2f before, %.2f after) x %d cores: limit %.1f keys/s; ratio %.3f (target 0.9)\n' \
    "$plain_keys" "$s" "$rate" "$hash_ms" "$before" "$after" "$CORES" "$limit" "$ratio"
if [ "$(echo "$ratio < 0.9" | bc -l)" = 1 ]; then fail=1; fi
exit "$fail"
