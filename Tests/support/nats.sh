#!/usr/bin/env bash
# A throwaway nats-server on a free loopback port, for the demo and manual tests.
#
#   Tests/support/nats.sh start DIR   starts nats-server on 127.0.0.1:<free port>, prints the port;
#                               DIR gets nats.pid, nats.port and nats.log
#   Tests/support/nats.sh stop DIR    stops the server whose pid is in DIR/nats.pid
set -euo pipefail

cmd="${1:-}"
DIR="${2:-}"
[ -n "$cmd" ] && [ -n "$DIR" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

alive() { # pid -> 0 if that pid is a running nats-server
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = nats-server ]
}

case "$cmd" in
start)
    command -v nats-server >/dev/null || { echo "nats.sh: nats-server not installed (run: make deps)" >&2; exit 1; }
    mkdir -p "$DIR"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    setsid nats-server -a 127.0.0.1 -p "$port" </dev/null >"$DIR/nats.log" 2>&1 &
    pid=$!
    echo "$pid" >"$DIR/nats.pid"
    echo "$port" >"$DIR/nats.port"
    for ((i = 0; i < 100; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            exit 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "nats.sh: nats-server did not start; log:" >&2
    cat "$DIR/nats.log" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
    ;;
stop)
    pid="$(cat "$DIR/nats.pid" 2>/dev/null || true)"
    if alive "$pid"; then
        kill -TERM "$pid"
        for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/nats.pid"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
