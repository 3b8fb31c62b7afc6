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
# 2. CLIENTS new sockets: half of them stuck mid-headers, half in the middle
#    of a declared body; then SIGTERM. The script times the server's exit
#    (the default shutdown grace is 10 s) and checks it exited with 0.
# Loopback only; about 25 seconds. Needs python3 and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS="${CLIENTS:-200}"
. benches/server.sh
cargo build --release --quiet -p apikeys-server
start_server "$WORK/slow.sqlite3"
ADDR="${URL#http://}"

python3 - "$ADDR" "$CLIENTS" "$SERVER_PID" <<'PY'
import os, signal, socket, sys, time

host, port = sys.argv[1].rsplit(":", 1)
clients, pid = int(sys.argv[2]), int(sys.argv[3])

def open_stuck(payload):
    s = socket.create_connection((host, int(port)))
    s.sendall(payload)
    return s

def closed_after(socks, started, limit):
    """Seconds after `started` at which each socket was closed by the server."""
    done = {}
    deadline = started + limit
    for s in socks:
        s.settimeout(0.05)
    while len(done) < len(socks) and time.monotonic() < deadline:
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
    return done

# 1. Stuck in the middle of the request line.
started = time.monotonic()
socks = [open_stuck(b"GET /heal") for _ in range(clients)]
done = closed_after(socks, started, 30)
times = sorted(done.values())
print(f"stuck mid-headers: {len(done)} of {clients} sockets closed by the server; "
      f"first after {times[0]:.2f} s, last after {times[-1]:.2f} s" if times else
      f"stuck mid-headers: none of {clients} closed within 30 s")
for s in socks:
    s.close()

# 2. Slow clients connected, then SIGTERM.
half = clients // 2
socks = [open_stuck(b"GET /healthz HTTP/1.1\r\nHost: x\r\n") for _ in range(half)]
socks += [open_stuck(b"POST /v1/authenticate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"chan") for _ in range(clients - half)]
time.sleep(0.5)
started = time.monotonic()
os.kill(pid, signal.SIGTERM)
def exited(pid):
    # The server is the shell's child, not ours: it has exited once it is
    # gone or a zombie waiting for the shell.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
while not exited(pid):
    time.sleep(0.005)
print(f"SIGTERM with {clients} slow clients connected ({half} mid-headers, "
      f"{clients - half} mid-body): the server exited after {time.monotonic() - started:.2f} s")
PY
wait "$SERVER_PID" && status=0 || status=$?
SERVER_PID=""
echo "exit status: $status"
grep -i -E "shut|signal|grace" "$WORK/stderr" | tail -3 || true
[ "$status" -eq 0 ]
