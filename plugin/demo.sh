#!/usr/bin/env bash
# `make demo` after deps and plugin-dir: a local nats-server, a Docker engine (the reachable
# one, or a private one started here), the plugin installed as `nats` and `logentries`, one
# busybox container logging through --log-driver=nats, and the JSON events printed as NATS
# delivers them. Everything this script starts is stopped again on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_ALIAS="${NATS_ALIAS:-nats}"
LOGENTRIES_ALIAS="${LOGENTRIES_ALIAS:-auto}"
PLUGIN_DIR="${PLUGIN_DIR:-build/plugin}"
WORK="${DEMO_DIR:-/tmp/logrelay-demo}"
export DOCKERD_DIR="${DOCKERD_DIR:-$WORK/dockerd}"
IMAGE=busybox:local
NAME="logrelay-demo-$$"
LINES=5

mkdir -p "$WORK"
sub_pid=""
dockerd_mode=""
cleanup() {
    set +e
    [ -n "$sub_pid" ] && kill "$sub_pid" 2>/dev/null && wait "$sub_pid" 2>/dev/null
    [ -n "${DOCKER_HOST:-}" ] && docker rm -f "$NAME" >/dev/null 2>&1
    Tests/support/nats.sh stop "$WORK"
    [ "$dockerd_mode" = started ] && Tests/support/dockerd.sh stop
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }

step "nats-server on loopback"
port="$(Tests/support/nats.sh start "$WORK")"
server="nats://127.0.0.1:$port"
echo "$server (pid $(cat "$WORK/nats.pid"))"

step "Docker engine"
read -r host dockerd_mode < <(Tests/support/dockerd.sh start)
export DOCKER_HOST="$host"
echo "DOCKER_HOST=$DOCKER_HOST ($dockerd_mode, server $(docker version --format '{{.Server.Version}}'))"
Tests/support/busybox-image.sh "$IMAGE"

step "install the plugin as '$NATS_ALIAS' and the Logentries alias ('$LOGENTRIES_ALIAS': auto picks the name this Docker version needs)"
plugin/install.sh "$PLUGIN_DIR" "$NATS_ALIAS" DRIVER=nats
plugin/install.sh "$PLUGIN_DIR" "$LOGENTRIES_ALIAS" DRIVER=logentries
docker plugin ls

step "subscribe to '$NAME' (nats-py), then run a busybox container with --log-driver=$NATS_ALIAS"
ready="$WORK/sub.ready"
rm -f "$ready"
python3 Tests/support/nats-sub.py --server "$server" --subject "$NAME" --count "$LINES" --timeout 60 \
    --ready-file "$ready" &
sub_pid=$!
for ((i = 0; i < 200; i++)); do [ -f "$ready" ] && break; sleep 0.1; done
[ -f "$ready" ] || { echo "subscriber did not start" >&2; exit 1; }

cat <<EOT
docker run --rm --name $NAME --network=none \\
    --log-driver=$NATS_ALIAS --log-opt nats-servers=$server --log-opt tag='{{.Name}}' \\
    --label team=demo --log-opt labels=team \\
    $IMAGE sh -c 'for i in 1 2 3 4; do echo "hello from logrelay, line \$i"; done; echo "and one on stderr" >&2'

events as NATS delivers them:

EOT
docker run --rm --name "$NAME" --network=none \
    --log-driver="$NATS_ALIAS" --log-opt nats-servers="$server" --log-opt tag='{{.Name}}' \
    --label team=demo --log-opt labels=team \
    "$IMAGE" sh -c 'for i in 1 2 3 4; do echo "hello from logrelay, line $i"; done; echo "and one on stderr" >&2' >/dev/null 2>&1
ok=0
wait "$sub_pid" || ok=$?
sub_pid=""
if [ "$ok" != 0 ]; then
    echo "demo: not all $LINES events arrived. The plugin's log:" >&2
    id="$(docker plugin inspect -f '{{.Id}}' "$NATS_ALIAS")"
    if [ "$dockerd_mode" != external ]; then
        grep "plugin=$id" "$DOCKERD_DIR/log" | tail -n 30 >&2 || true
    else
        echo "  (in your dockerd's log, lines with plugin=$id)" >&2
    fi
    exit 1
fi

cat <<EOT

The plugin stays installed (docker plugin ls). Its own log is in dockerd's log, field plugin=<id>.
EOT
