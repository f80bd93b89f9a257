#!/usr/bin/env bash
# Imports `busybox:local` (or $1) into the reachable Docker engine from the host's static
# busybox (Debian's busybox-static), since no registry is reachable. Idempotent.
set -euo pipefail

IMAGE="${1:-busybox:local}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    exit 0
fi
[ -x "$BUSYBOX" ] || { echo "busybox-image.sh: $BUSYBOX missing (run: make deps)" >&2; exit 1; }
if ! "$BUSYBOX" --list >/dev/null 2>&1 || ldd "$BUSYBOX" >/dev/null 2>&1; then
    echo "busybox-image.sh: $BUSYBOX is not a static busybox (install busybox-static)" >&2
    exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/tmp" "$tmp/etc"
cp "$BUSYBOX" "$tmp/bin/busybox"
for c in $("$BUSYBOX" --list); do
    [ "$c" = busybox ] || ln -sf busybox "$tmp/bin/$c"
done
chmod 1777 "$tmp/tmp"
echo 'root:x:0:0:root:/root:/bin/sh' >"$tmp/etc/passwd"
echo 'root:x:0:' >"$tmp/etc/group"
tar -C "$tmp" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - "$IMAGE" >/dev/null
echo "busybox-image.sh: imported $IMAGE" >&2
