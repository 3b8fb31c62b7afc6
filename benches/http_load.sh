#!/usr/bin/env bash
# Load check of the HTTP server (not part of the test suite): requests per
# second of `POST /v1/authenticate` with a generated secret, and of
# `GET /v1/rest/whoami` with a REST Bearer token, each against the trivial
# `GET /healthz` of the same binary, in one run. Target: a ratio of at least
# 0.7 for both (a credential check costs little next to HTTP itself).
#
#   bash benches/http_load.sh    # ROUNDS=7 DURATION=4 CONNECTIONS=32 THREADS=1
#
# Loopback only, bounded in time (three 2-second warm-ups, then ROUNDS rounds
# of one DURATION-second run per endpoint: about a minute and a half
# by default).
# Needs `wrk` (installed from Debian's packages if missing) and `curl`.
# Builds the server in release mode. Exits 1 below the target.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-4}"
ROUNDS="${ROUNDS:-7}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-1}"
TARGET_RATIO="0.7"

. benches/server.sh
ensure_tools
cargo build --release --quiet -p apikeys-server
start_server "$WORK/bench.sqlite3"

json_field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
ACCOUNT="$(curl -sf -X POST "$URL/v1/accounts" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d '{"kind":"master"}' | json_field id | head -c 36)"
KEY="$(curl -sf -X POST "$URL/v1/accounts/$ACCOUNT/keys" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d '{"channel":"rest"}')"
IDENTIFIER="$(echo "$KEY" | json_field identifier)"
SECRET="$(echo "$KEY" | json_field secret)"
BODY="{\"channel\":\"rest\",\"identifier\":\"$IDENTIFIER\",\"secret\":\"$SECRET\"}"
curl -sf -X POST "$URL/v1/authenticate" -H 'Content-Type: application/json' -d "$BODY" >/dev/null \
    || { echo "authentication does not succeed before the run" >&2; exit 1; }

BEARER="$(curl -sf -u "$IDENTIFIER:$SECRET" "$URL/v1/rest/authentication" | json_field token)"
[ -n "$BEARER" ] || { echo "no token was issued before the run" >&2; exit 1; }
curl -sf "$URL/v1/rest/whoami" -H "Authorization: Bearer $BEARER" >/dev/null \
    || { echo "the token is not accepted before the run" >&2; exit 1; }

cat >"$WORK/authenticate.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
EOF
cat >"$WORK/bearer.lua" <<EOF
wrk.headers["Authorization"] = "Bearer $BEARER"
EOF

measure() { # measure <label> <wrk args...>: one timed run, prints requests per second
    local label="$1"; shift
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "$@" >"$WORK/$label.txt"
    if grep -q "Non-2xx" "$WORK/$label.txt"; then
        echo "$label: some responses were not 2xx:" >&2; cat "$WORK/$label.txt" >&2; exit 1
    fi
    awk '/^Requests\/sec:/ {print $2}' "$WORK/$label.txt"
}
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
run() { # run <endpoint> <round>: one timed run of that endpoint, prints requests per second
    case "$1" in
        healthz) measure "healthz-$2" "$URL/healthz" ;;
        authenticate) measure "authenticate-$2" -s "$WORK/authenticate.lua" "$URL/v1/authenticate" ;;
        bearer) measure "bearer-$2" -s "$WORK/bearer.lua" "$URL/v1/rest/whoami" ;;
    esac
}

# Warm-up, then ROUNDS rounds, each measuring the three endpoints back to
# back, in an order that turns every round so that none always runs first.
# This machine is shared and its speed drifts by tens of percent over
# seconds: the ratios are taken within each round, where all sides met the
# same conditions, and the median of those ratios is the result.
wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$URL/healthz" >/dev/null
wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$WORK/authenticate.lua" "$URL/v1/authenticate" >/dev/null
wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$WORK/bearer.lua" "$URL/v1/rest/whoami" >/dev/null
for f in trivial auth bearer ratio bratio; do : >"$WORK/$f.all"; done
ORDERS=("healthz authenticate bearer" "authenticate bearer healthz" "bearer healthz authenticate")
for round in $(seq 1 "$ROUNDS"); do
    t=""; a=""; b=""
    for endpoint in ${ORDERS[$((round % 3))]}; do
        v="$(run "$endpoint" "$round")"
        case "$endpoint" in healthz) t="$v" ;; authenticate) a="$v" ;; bearer) b="$v" ;; esac
    done
    r="$(awk -v a="$a" -v t="$t" 'BEGIN {printf "%.3f", a / t}')"
    br="$(awk -v b="$b" -v t="$t" 'BEGIN {printf "%.3f", b / t}')"
    echo "round $round: healthz $t, authenticate $a, bearer $b requests/s; ratios $r, $br"
    echo "$t" >>"$WORK/trivial.all"; echo "$a" >>"$WORK/auth.all"; echo "$b" >>"$WORK/bearer.all"
    echo "$r" >>"$WORK/ratio.all"; echo "$br" >>"$WORK/bratio.all"
done
TRIVIAL="$(median <"$WORK/trivial.all")"
AUTH="$(median <"$WORK/auth.all")"
BEARER_RPS="$(median <"$WORK/bearer.all")"
RATIO="$(median <"$WORK/ratio.all")"
BRATIO="$(median <"$WORK/bratio.all")"

echo "wrk: $THREADS thread(s), $CONNECTIONS connections, $ROUNDS x ${DURATION}s per endpoint, $(nproc) cores"
echo "GET  /healthz          : $TRIVIAL requests/s (median)"
echo "POST /v1/authenticate  : $AUTH requests/s (median; generated secret, SQLite store)"
echo "GET  /v1/rest/whoami   : $BEARER_RPS requests/s (median; REST Bearer token, SQLite store)"
echo "ratio authenticate/healthz: $RATIO (median of the rounds' ratios; target >= $TARGET_RATIO)"
echo "ratio bearer/healthz      : $BRATIO (median of the rounds' ratios; target >= $TARGET_RATIO)"
failed=0
awk -v r="$RATIO" -v t="$TARGET_RATIO" 'BEGIN {exit !(r >= t)}' || { echo "authenticate below target" >&2; failed=1; }
awk -v r="$BRATIO" -v t="$TARGET_RATIO" 'BEGIN {exit !(r >= t)}' || { echo "bearer below target" >&2; failed=1; }
exit "$failed"
