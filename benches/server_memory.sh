#!/usr/bin/env bash
# Peak memory of apikeys-server holding 1,000,000 keys in SQLite while
# serving authentications (not part of the test suite).
#
#   bash benches/server_memory.sh        # KEYS=1000000 DURATION=10
#
# Loopback only, bounded in time. Builds in release, fills a temporary
# database through examples/populate.rs, starts the server on it, runs wrk
# against POST /v1/authenticate (cycling through 100 keys spread over the
# database) and reads the server's VmHWM (peak resident set) and VmRSS from
# /proc. Needs wrk (installed from Debian's packages if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS="${KEYS:-1000000}"
DURATION="${DURATION:-10}"
. benches/server.sh
ensure_tools
cargo build --release --quiet -p apikeys-server
cargo build --release --quiet --example populate

"$RELEASE/examples/populate" "$WORK/keys.sqlite3" "$KEYS" 100 >"$WORK/samples.jsonl"
echo "database: $(du -h "$WORK/keys.sqlite3" | cut -f1) for $KEYS keys"
start_server "$WORK/keys.sqlite3"
rss() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$SERVER_PID/status"; }
echo "after start: VmRSS $(rss VmRSS) kB"

{
    echo 'local bodies = {'
    sed 's/.*/  [[&]],/' "$WORK/samples.jsonl"
    echo '}'
    echo 'local i = 0'
    echo 'wrk.method = "POST"'
    echo 'wrk.headers["Content-Type"] = "application/json"'
    echo 'request = function() i = i % #bodies + 1; return wrk.format(nil, nil, nil, bodies[i]) end'
} >"$WORK/auth.lua"

wrk -t1 -c32 -d"${DURATION}s" -s "$WORK/auth.lua" "$URL/v1/authenticate" >"$WORK/wrk.txt"
if grep -q "Non-2xx" "$WORK/wrk.txt"; then cat "$WORK/wrk.txt" >&2; exit 1; fi
echo "serving: $(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.txt") authentications/s over ${DURATION}s"
echo "peak resident memory (VmHWM): $(rss VmHWM) kB; now (VmRSS): $(rss VmRSS) kB"
