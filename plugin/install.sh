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
# It creates the plugin's host directory (/etc/logrelay, or hostfs.source=DIR) first.
#
# ALIAS `auto` picks the name that works on the engine's version (`docker version`):
# for DRIVER=logentries, `logentries-relay` on Docker 24 and older (their built-in logentries
# driver wins over a plugin of that name), `logentries` on 25 and newer (use it as
# --log-driver=logentries:latest on 25-27, which refuse the bare name; as logentries on 28+);
# for DRIVER=nats (or none), `nats`. The choice is printed.
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

if [ "$ALIAS" = auto ]; then
    version="$(docker version --format '{{.Server.Version}}')"
    major="${version%%.*}"
    [[ "$major" =~ ^[0-9]+$ ]] || major=0
    driver=""
    for s in "$@"; do case "$s" in DRIVER=*) driver="${s#DRIVER=}" ;; esac; done
    if [ "$driver" = logentries ]; then
        if [ "$major" -le 24 ]; then
            ALIAS=logentries-relay use=logentries-relay
            why="Docker $version has its own built-in logentries driver, which wins over a plugin of that name"
        elif [ "$major" -le 27 ]; then
            ALIAS=logentries use=logentries:latest
            why="Docker $version refuses the bare name logentries (deprecated and removed); logentries:latest reaches the plugin"
        else
            ALIAS=logentries use=logentries
            why="Docker $version passes logentries to the plugin"
        fi
    else
        ALIAS=nats use=nats
        why="Docker $version"
    fi
    echo "install.sh: $why: installing as '$ALIAS'; use --log-driver=$use"
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
# The plugin's one host directory (config.json's hostfs mount, or hostfs.source=DIR among the
# settings) must exist on the engine's host, or `docker plugin enable` fails to mount it.
# Made here when the engine is local (a unix socket); for a remote engine, make it there.
hostdir=/etc/logrelay
for s in "$@"; do case "$s" in hostfs.source=*) hostdir="${s#hostfs.source=}" ;; esac; done
case "${DOCKER_HOST:-unix://}" in
    unix://*) mkdir -p -m 0755 "$hostdir" ;;
    *) echo "install.sh: the engine is remote: make sure $hostdir exists on its host" ;;
esac
docker plugin create "$ALIAS" "$stage" >/dev/null
if [ $# -gt 0 ]; then
    docker plugin set "$ALIAS" "$@"
fi
docker plugin enable "$ALIAS" >/dev/null
echo "installed plugin $ALIAS ($*) id $(docker plugin inspect -f '{{.Id}}' "$ALIAS" | cut -c1-12)"
