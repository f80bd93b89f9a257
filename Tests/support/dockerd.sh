#!/usr/bin/env bash
# Private Docker engine for the demo and the e2e suite, started only when no engine is reachable.
#
#   Tests/support/dockerd.sh start    prints "DOCKER_HOST MODE": the engine to use and how it was
#                               found. MODE is `external` (an engine already answered at
#                               $DOCKER_HOST or the default socket), `started` (a private
#                               dockerd started now: the caller stops it) or `reused` (a private
#                               dockerd from an earlier `start` still runs). Waits until
#                               `docker version` answers.
#   Tests/support/dockerd.sh stop     stops the private dockerd, only if this script started it (pid file).
#   Tests/support/dockerd.sh restart  stop + start of the private dockerd (DOCKERD_EXTRA_ARGS apply).
#   Tests/support/dockerd.sh host     prints the private engine's DOCKER_HOST.
#
# Environment: DOCKERD_DIR (default /tmp/logrelay-dockerd: data root, exec root, socket, pid
# file, log), DOCKERD_EXTRA_ARGS (extra dockerd flags, e.g. a default --log-driver),
# DOCKERD_FORCE_PRIVATE=1 (ignore a reachable engine), DOCKERD_WAIT (seconds, default 90).
#
# The flags are the ones this project's machines need (docs/dev-environment.md): no bridge,
# no iptables, vfs storage. Plugin sockets live under /run/docker/plugins whatever the exec
# root is, so run one plugin-using dockerd per machine at a time.
set -euo pipefail

DIR="${DOCKERD_DIR:-/tmp/logrelay-dockerd}"
SOCK="$DIR/docker.sock"
PIDFILE="$DIR/dockerd.pid"
OURS="$DIR/started-by-logrelay"
WAIT="${DOCKERD_WAIT:-90}"
PRIVATE_HOST="unix://$SOCK"

log() { echo "dockerd.sh: $*" >&2; }

answers() { # DOCKER_HOST value ("" = the client's default) -> 0 if an engine answers
    if [ -n "$1" ]; then
        DOCKER_HOST="$1" timeout 15 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
    else
        (unset DOCKER_HOST; timeout 15 docker version --format '{{.Server.Version}}' >/dev/null 2>&1)
    fi
}

alive() { # pid [name] -> 0 if running, not a zombie, and (given a name) running that program
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null &&
        { [ -z "${2:-}" ] || [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }
}

our_pid() {
    [ -f "$OURS" ] && [ -f "$PIDFILE" ] && cat "$PIDFILE" 2>/dev/null || true
}

start_private() {
    mkdir -p "$DIR"
    local pid
    pid="$(our_pid)"
    if alive "$pid" dockerd && answers "$PRIVATE_HOST"; then
        local running wanted
        running="$(readlink -f "/proc/$pid/exe" 2>/dev/null || true)"
        wanted="$(readlink -f "$(command -v dockerd)" 2>/dev/null || true)"
        if [ -n "$wanted" ] && [ "$running" != "$wanted" ]; then
            log "the private dockerd in $DIR (pid $pid) is $running, not $wanted: stop it first ($0 stop)"
            exit 1
        fi
        log "private dockerd already running (pid $pid)"
        echo "$PRIVATE_HOST reused"
        return 0
    fi
    if [ -f "$PIDFILE" ] && alive "$(cat "$PIDFILE")" dockerd; then
        log "a dockerd with pid file $PIDFILE is running but does not answer; not touching it"
        exit 1
    fi
    command -v dockerd >/dev/null || { log "dockerd not installed (run: make deps)"; exit 1; }
    local other
    for other in $(pgrep -x dockerd 2>/dev/null || true); do
        log "warning: another dockerd runs (pid $other: $(tr '\0' ' ' <"/proc/$other/cmdline" 2>/dev/null | cut -c1-160));" \
            "plugin sockets in /run/docker/plugins are shared, so plugins of two engines can collide"
    done
    rm -f "$PIDFILE" "$SOCK"
    touch "$OURS"
    log "starting private dockerd in $DIR (log: $DIR/log)"
    # shellcheck disable=SC2086  # DOCKERD_EXTRA_ARGS is a list of flags
    setsid dockerd --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
        --storage-driver=vfs --data-root="$DIR/root" --exec-root="$DIR/exec" \
        -H "$PRIVATE_HOST" -p "$PIDFILE" ${DOCKERD_EXTRA_ARGS:-} \
        </dev/null >>"$DIR/log" 2>&1 &
    local child=$! i
    for ((i = 0; i < WAIT * 2; i++)); do
        if answers "$PRIVATE_HOST"; then
            log "private dockerd ready (pid $(cat "$PIDFILE" 2>/dev/null || echo "$child"))"
            echo "$PRIVATE_HOST started"
            return 0
        fi
        if ! alive "$child"; then
            log "dockerd exited; last lines of $DIR/log:"
            tail -n 20 "$DIR/log" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
    log "dockerd did not answer within ${WAIT}s; stopping it"
    stop_private
    exit 1
}

stop_private() {
    local pid i cpid
    pid="$(our_pid)"
    if ! alive "$pid" dockerd; then
        rm -f "$OURS"
        return 0
    fi
    log "stopping private dockerd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 120; i++)); do
        alive "$pid" dockerd || break
        sleep 0.5
    done
    if alive "$pid" dockerd; then
        log "dockerd $pid still running after 60s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 1
    fi
    # The containerd that this dockerd started for itself normally exits with it.
    cpid="$(cat "$DIR/exec/containerd/containerd.pid" 2>/dev/null || true)"
    if alive "$cpid" containerd; then
        kill -TERM "$cpid" 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do alive "$cpid" containerd || break; sleep 0.5; done
    fi
    rm -f "$OURS" "$PIDFILE"
}

case "${1:-}" in
start)
    if [ "${DOCKERD_FORCE_PRIVATE:-0}" != 1 ] && answers "${DOCKER_HOST:-}"; then
        log "using the reachable Docker engine"
        echo "${DOCKER_HOST:-unix:///var/run/docker.sock} external"
        exit 0
    fi
    start_private
    ;;
stop) stop_private ;;
restart)
    stop_private
    start_private
    ;;
host) echo "$PRIVATE_HOST" ;;
*)
    echo "usage: $0 start|stop|restart|host" >&2
    exit 2
    ;;
esac
