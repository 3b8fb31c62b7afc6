# Sourced by the load scripts of this folder: what they share to run the
# release server on loopback. Not a script of its own.
#
#   ensure_tools             wrk (and curl), from Debian's packages if missing
#   RELEASE                  the release build folder
#   WORK                     a temporary folder, removed on exit with the server
#   start_server DB          starts apikeys-server on DB on a free loopback
#                            port (admin token $TOKEN); sets SERVER_PID and URL

ensure_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing ${missing[*]}..." >&2
        apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

RELEASE="${CARGO_TARGET_DIR:-target}/release"
WORK="$(mktemp -d)"
SERVER_PID=""
TOKEN="bench-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

start_server() {
    APIKEYS_ADMIN_TOKEN="$TOKEN" RUST_LOG=warn \
        "$RELEASE/apikeys-server" --listen 127.0.0.1:0 --db "$1" >"$WORK/stdout" 2>"$WORK/stderr" &
    SERVER_PID=$!
    local addr=""
    for _ in $(seq 1 100); do
        # The background job may not have opened its stdout yet.
        addr="$(sed -n 's#^apikeys-server listening on http://##p' "$WORK/stdout" 2>/dev/null)"
        [ -n "$addr" ] && break
        sleep 0.1
    done
    [ -n "$addr" ] || { echo "the server did not start:" >&2; cat "$WORK/stderr" >&2; exit 1; }
    URL="http://$addr"
}
