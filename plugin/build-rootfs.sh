#!/usr/bin/env bash
# Builds the plugin's root filesystem from a logrelay binary:
#   plugin/build-rootfs.sh BIN OUTDIR
# OUTDIR gets /usr/bin/logrelay, every shared library the binary loads (as `ldd` lists them,
# dynamic loader included), the CA bundle, and the directories and /etc files the plugin
# uses. Nothing else: the rootfs stays a few MB beside the binary. OUTDIR is replaced.
# STRIP=0 keeps the binary's symbol table (bigger, better backtraces).
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 BIN OUTDIR" >&2; exit 2; }
BIN="$1"
OUT="$2"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

die() { echo "build-rootfs.sh: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "$BIN is not an executable (run: make build)"
[ -f "$CA_BUNDLE" ] || die "$CA_BUNDLE missing (install ca-certificates)"
case "$OUT" in "" | / | /usr | /usr/*) die "refusing OUTDIR=$OUT" ;; esac

rm -rf "$OUT"
mkdir -p "$OUT"/{usr/bin,etc/ssl/certs,usr/lib/ssl,run/docker/plugins,run/docker/logging,tmp,host,proc,sys,dev}
chmod 1777 "$OUT/tmp"

install -m 0755 "$BIN" "$OUT/usr/bin/logrelay"
if [ "${STRIP:-1}" = 1 ] && command -v strip >/dev/null; then
    strip --strip-unneeded "$OUT/usr/bin/logrelay"
fi

# Shared libraries, at the paths the loader will look for them (the ones ldd printed).
# A fully static binary has none; a library ldd cannot find is an error, not a surprise
# at `docker plugin enable`.
if ldd_out="$(ldd "$BIN" 2>&1)"; then
    if grep -q 'not found' <<<"$ldd_out"; then
        die "unresolved libraries:"$'\n'"$(grep 'not found' <<<"$ldd_out")"
    fi
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$ldd_out" |
        sort -u | while read -r lib; do
            mkdir -p "$OUT$(dirname "$lib")"
            cp -L "$lib" "$OUT$lib"
        done
elif ! grep -qE 'not a dynamic executable|statically linked' <<<"$ldd_out"; then
    die "ldd $BIN failed: $ldd_out"
fi

# CA bundle at Debian's path, and where OpenSSL's compiled-in defaults look for it
# (SSL_CTX_set_default_verify_paths: OPENSSLDIR=/usr/lib/ssl).
cp -L "$CA_BUNDLE" "$OUT/etc/ssl/certs/ca-certificates.crt"
ln -s /etc/ssl/certs/ca-certificates.crt "$OUT/usr/lib/ssl/cert.pem"
ln -s /etc/ssl/certs "$OUT/usr/lib/ssl/certs"

# Minimal /etc. hosts and resolv.conf are mount points: with network type "host" the
# daemon binds the host's files over them.
echo 'root:x:0:0:root:/:/usr/sbin/nologin' >"$OUT/etc/passwd"
echo 'root:x:0:' >"$OUT/etc/group"
printf 'hosts: files dns\n' >"$OUT/etc/nsswitch.conf"
: >"$OUT/etc/hosts"
: >"$OUT/etc/resolv.conf"

# Self-check: the rootfs's own loader resolves every library from inside the rootfs.
if [ "$(id -u)" = 0 ] && command -v chroot >/dev/null; then
    loader="$(cd "$OUT" && ls lib64/ld-linux-*.so.* lib/ld-linux*.so.* 2>/dev/null | head -n1 || true)"
    if [ -n "$loader" ]; then
        if ! check="$(chroot "$OUT" "/$loader" --list /usr/bin/logrelay 2>&1)" ||
            grep -q 'not found' <<<"$check"; then
            die "the rootfs does not resolve the binary's libraries:"$'\n'"$check"
        fi
    fi
fi

echo "build-rootfs.sh: $OUT ($(du -sh "$OUT" | cut -f1))" >&2
