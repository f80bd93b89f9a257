#!/usr/bin/env bash
# `make push`: creates the plugin from a plugin dir under a registry reference and pushes it,
# so that users can `docker plugin install` it. Uses the engine the docker client reaches
# (DOCKER_HOST honoured); the engine must be able to reach the registry (and be logged in).
#   plugin/push.sh PLUGIN_DIR REGISTRY/NAME:TAG
#
# The plugin is created from a copy of the dir (hard links) with /etc/logrelay-release holding
# the reference: Docker refuses a second `plugin create` whose rootfs it already holds
# ("content sha256:...: already exists", on 20.10, 26 and 28), so the same dir can be pushed
# under several tags (v1, v2, latest). The local copy named REF is removed after the push
# (PUSH_KEEP=1 keeps it), so that `docker plugin install REF` works on the same engine.
set -euo pipefail

[ $# = 2 ] || { echo "usage: $0 PLUGIN_DIR REGISTRY/NAME:TAG" >&2; exit 2; }
DIR="$1"
REF="$2"
case "$REF" in
*@*) echo "push.sh: use a tag, not a digest: $REF" >&2; exit 2 ;;
*/*:*) ;;
*) echo "push.sh: the reference needs a registry and a tag, e.g. 127.0.0.1:5000/logrelay:v1 (got $REF)" >&2; exit 2 ;;
esac

[ -f "$DIR/config.json" ] && [ -d "$DIR/rootfs" ] || { echo "push.sh: $DIR is not a plugin dir (run: make plugin-dir)" >&2; exit 1; }
if ! version="$(timeout 20 docker version --format '{{.Server.Version}}' 2>/dev/null)"; then
    echo "push.sh: no Docker engine answers at ${DOCKER_HOST:-the default socket}." >&2
    exit 1
fi

if docker plugin inspect "$REF" >/dev/null 2>&1; then
    docker plugin disable -f "$REF" >/dev/null 2>&1 || true
    docker plugin rm -f "$REF" >/dev/null
fi
stage="$(mktemp -d "${TMPDIR:-/tmp}/logrelay-push.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
cp -al "$DIR/." "$stage/" 2>/dev/null || { rm -rf "${stage:?}"/*; cp -a "$DIR/." "$stage/"; }
mkdir -p "$stage/rootfs/etc"
rm -f "$stage/rootfs/etc/logrelay-release"
echo "$REF" >"$stage/rootfs/etc/logrelay-release"
docker plugin create "$REF" "$stage" >/dev/null
docker plugin push "$REF"
if [ "${PUSH_KEEP:-0}" != 1 ]; then
    docker plugin rm -f "$REF" >/dev/null
fi
cat <<EOT
push.sh: pushed $REF (from Docker $version). Install it with:
  docker plugin install --grant-all-permissions --alias nats $REF DRIVER=nats
  docker plugin install --grant-all-permissions --alias logentries $REF DRIVER=logentries
(on Docker 24 and older use another Logentries alias, e.g. --alias logentries-relay; see README)
EOT
