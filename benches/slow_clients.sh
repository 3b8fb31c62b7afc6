#!/usr/bin/env bash
# Slow clients against the release server on its defaults (not part of the
# test suite): how long a socket stuck in the middle of its headers stays
# open, and how long the server takes to exit on SIGTERM while slow clients
# are connected.
#
#   bash benches/slow_clients.sh      # CLIENTS=200
#
# 1. CLIENTS sockets each send half a request line and stop; the script
#    times when the server closes each (the default header timeout is 10 s).
# 2. CLIENTS new sockets stuck mid-headers, then SIGTERM: they have no
#    request in flight, so the server closes them and exits at once.
# 3. The same with CLIENTS more sockets in the middle of a declared body
#    (requests in flight): the server waits for them for the shutdown grace
#    (10 s by default), then closes them and exits.
# Each exit is timed and must have status 0. Loopback only; about 25
# seconds. Needs python3 and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS="${CLIENTS:-200}"
. benches/server.sh
cargo build --release --quiet -p apikeys-server

# slow_clients <mode> <addr> <pid>: the client side, in Python (sockets
# only); mode is `headers`, `sigterm` or `sigterm-body`.
slow_clients() {
python3 - "$1" "$2" "$CLIENTS" "$3" <<'PY'
import os, signal, socket, sys, time

mode, addr, clients, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
host, port = addr.rsplit(":", 1)

def open_stuck(payload):
    s = socket.create_connection((host, int(port)))
    s.sendall(payload)
    return s

def closed_after(socks, started, limit):
    """Seconds after `started` at which each socket was closed by the server."""
    done = {}
    for s in socks:
        s.settimeout(0.05)
    while len(done) < len(socks) and time.monotonic() < started + limit:
        for i, s in enumerate(socks):
            if i in done:
                continue
            try:
                if s.recv(4096) == b"":
                    done[i] = time.monotonic() - started
            except socket.timeout:
                pass
            except OSError:
                done[i] = time.monotonic() - started
    return sorted(done.values())

def exited(pid):
    # The server is the shell's child, not ours: it has exited once it is
    # gone or a zombie waiting for the shell.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True

if mode == "headers":
    started = time.monotonic()
    socks = [open_stuck(b"GET /heal") for _ in range(clients)]
    times = closed_after(socks, started, 30)
    if times:
        print(f"stuck mid-headers: {len(times)} of {clients} sockets closed by the server, "
              f"the first after {times[0]:.2f} s, the last after {times[-1]:.2f} s")
    else:
        print(f"stuck mid-headers: none of {clients} sockets closed within 30 s")
    sys.exit(0)

socks = [open_stuck(b"GET /healthz HTTP/1.1\r\nHost: x\r\n") for _ in range(clients)]
what = f"{clients} clients mid-headers"
if mode == "sigterm-body":
    socks += [open_stuck(b"POST /v1/authenticate HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"chan")
              for _ in range(clients)]
    what += f" and {clients} mid-body"
time.sleep(0.5)
started = time.monotonic()
os.kill(pid, signal.SIGTERM)
while not exited(pid):
    time.sleep(0.005)
print(f"SIGTERM with {what}: the server exited after {time.monotonic() - started:.2f} s")
PY
}

for mode in headers sigterm sigterm-body; do
    start_server "$WORK/slow-$mode.sqlite3"
    slow_clients "$mode" "${URL#http://}" "$SERVER_PID"
    if [ "$mode" = headers ]; then kill -TERM "$SERVER_PID"; fi
    status=0; wait "$SERVER_PID" || status=$?
    SERVER_PID=""
    [ "$status" -eq 0 ] || { echo "$mode: the server exited with status $status" >&2; cat "$WORK/stderr" >&2; exit 1; }
done
