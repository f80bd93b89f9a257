#!/usr/bin/env bash
# Creates and enables the logrelay plugin from a plugin dir under one alias, in the engine
# the docker client reaches (DOCKER_HOST honoured). Re-runnable: an existing plugin of that
# name is force-disabled and removed first.
#
# Each alias is created from its own copy of the plugin dir (hard links) plus a file
# /etc/logrelay-alias: Docker 20.10 refuses a second `plugin create` whose rootfs blob it
# already holds ("content sha256:...: already exists"), so identical rootfs trees can't be
# installed under two names.
#   plugin/install.sh PLUGIN_DIR ALIAS [SETTING=VALUE ...]     e.g. DRIVER=nats
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 PLUGIN_DIR ALIAS [SETTING=VALUE ...]" >&2; exit 2; }
DIR="$1"
ALIAS="$2"
shift 2

[ -f "$DIR/config.json" ] && [ -d "$DIR/rootfs" ] || { echo "install-plugin.sh: $DIR is not a plugin dir (run: make plugin-dir)" >&2; exit 1; }
if ! timeout 20 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    echo "install-plugin.sh: no Docker engine answers at ${DOCKER_HOST:-the default socket}." >&2
    echo "  Set DOCKER_HOST, or start a private engine: export DOCKER_HOST=\$(Tests/support/dockerd.sh start | cut -d' ' -f1)" >&2
    exit 1
fi

if docker plugin inspect "$ALIAS" >/dev/null 2>&1; then
    docker plugin disable -f "$ALIAS" >/dev/null 2>&1 || true
    docker plugin rm -f "$ALIAS" >/dev/null
fi
stage="$(mktemp -d "${TMPDIR:-/tmp}/logrelay-plugin.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
cp -al "$DIR/." "$stage/" 2>/dev/null || { rm -rf "$stage"/*; cp -a "$DIR/." "$stage/"; }
rm -f "$stage/rootfs/etc/logrelay-alias"
echo "$ALIAS" >"$stage/rootfs/etc/logrelay-alias"
docker plugin create "$ALIAS" "$stage" >/dev/null
if [ $# -gt 0 ]; then
    docker plugin set "$ALIAS" "$@"
fi
docker plugin enable "$ALIAS" >/dev/null
echo "installed plugin $ALIAS ($*) id $(docker plugin inspect -f '{{.Id}}' "$ALIAS" | cut -c1-12)"
