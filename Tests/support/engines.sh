#!/usr/bin/env bash
# The Docker engines (and nats-servers) of the e2e matrix.
#
#   Tests/support/engines.sh fetch [SUITE ...]  (make deps) downloads docker.io, docker-cli,
#        containerd, nats-server and tini(-static) of each Debian suite (default: trixie sid)
#        with a private apt configuration under build/apt/SUITE, and extracts them with
#        `dpkg-deb -x` into build/engines/SUITE/. Nothing is installed system-wide. Idempotent:
#        a suite already extracted is not fetched again (ENGINES_REFRESH=1 fetches anew).
#        Prints the versions and whether each engine runs on this machine.
#   Tests/support/engines.sh list               one line per engine: NAME DOCKER_VERSION NATS_VERSION STATUS DIR
#   Tests/support/engines.sh path ENGINE        the directory to put first on PATH for ENGINE
#        (build/engines/system/path links the system's binaries); ENGINE is `system`, a suite (`trixie`, `sid`) or a
#        version prefix (`20.10`, `26`, `28`). Exits 1 with the reason when the engine is not
#        available or cannot run here.
#   Tests/support/engines.sh nats SUITE|system  the nats-server binary of that suite
#
# The mirror is the one the machine's own apt sources name for its release (read from
# /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list at run time), or $APT_MIRROR.
# The suites' runc needs a newer glibc than Debian 12 has, so it is not fetched: each engine's
# PATH directory links the system runc (1.1.5).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${ENGINES_BUILD_DIR:-$ROOT/build}"
APT_DIR="$BUILD/apt"
ENG_DIR="$BUILD/engines"
SUITES_DEFAULT="trixie sid"
KEYRING="${APT_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"
# binaries an engine needs, and where they are in the extracted tree
ENGINE_BINS="usr/sbin/dockerd usr/sbin/docker-proxy usr/bin/docker-init usr/bin/containerd
             usr/bin/containerd-shim-runc-v2 usr/bin/ctr usr/bin/docker"

log() { echo "engines.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# --------------------------------------------------------------------------- mirror

codename() { . /etc/os-release && echo "${VERSION_CODENAME:-}"; }

# The URI of the machine's own Debian mirror: the first URI of a deb822 stanza or one-line
# entry whose suite is this release's codename.
mirror() {
    if [ -n "${APT_MIRROR:-}" ]; then echo "$APT_MIRROR"; return; fi
    local cn uri=""
    cn="$(codename)"
    [ -n "$cn" ] || die "cannot tell this machine's Debian release (/etc/os-release)"
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri="$(awk -v cn="$cn" '
            function flush() { if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " cn " ") && uris != "" && found == "") { split(uris, u, " "); found = u[1] } types = suites = uris = "" }
            /^[[:space:]]*#/ { next }
            /^[[:space:]]*$/ { flush(); next }
            tolower($1) == "types:"  { $1 = ""; types = $0 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            tolower($1) == "uris:"   { $1 = ""; uris = $0 }
            END { flush(); if (found != "") print found }' "$f")"
        uri="${uri# }"
        [ -n "$uri" ] && break
    done
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri="$(awk -v cn="$cn" '
            $1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                          if ($(i + 1) == cn) { print $i; exit } }' /etc/apt/sources.list)"
    fi
    [ -n "$uri" ] || die "no Debian mirror for '$cn' in /etc/apt/sources.list(.d); set APT_MIRROR"
    echo "${uri%/}"
}

# --------------------------------------------------------------------------- private apt

apt_opts() { # suite -> the options of its private apt configuration
    local d="$APT_DIR/$1"
    echo "-o Dir::State::Lists=$d/lists -o Dir::Cache=$d/cache -o Dir::State::status=$d/status
          -o Dir::Etc::sourcelist=$d/sources.list -o Dir::Etc::sourceparts=$d/sources.list.d
          -o Dir::Etc::preferences=$d/preferences -o Dir::Etc::preferencesparts=$d/preferences.d
          -o Dir::Etc::parts=$d/apt.conf.d -o APT::Sandbox::User=root -o Acquire::Languages=none
          -o APT::Architecture=$(dpkg --print-architecture) -o APT::Architectures=$(dpkg --print-architecture)"
}

setup_apt() { # suite mirror
    local d="$APT_DIR/$1"
    mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/sources.list.d" "$d/preferences.d" \
        "$d/apt.conf.d" "$d/debs"
    : >"$d/status"
    : >"$d/sources.list"
    : >"$d/preferences"
    cat >"$d/sources.list.d/$1.sources" <<EOF
Types: deb
URIs: $2
Suites: $1
Components: main
Signed-By: $KEYRING
EOF
}

pkg_version() { # suite package -> candidate version ("" when the suite has no such package)
    # shellcheck disable=SC2046
    apt-cache $(apt_opts "$1") show "$2" 2>/dev/null | awk '/^Version:/ && !v { v = $2 } END { print v }'
}

fetch_suite() { # suite
    local s="$1" root="$ENG_DIR/$1" d="$APT_DIR/$1" m
    if [ -f "$root/.complete" ] && [ "${ENGINES_REFRESH:-0}" != 1 ]; then
        log "$s: already extracted in ${root#"$ROOT"/} (ENGINES_REFRESH=1 fetches anew)"
        return 0
    fi
    m="$(mirror)"
    setup_apt "$s" "$m"
    log "$s: apt-get update (private lists in ${d#"$ROOT"/})"
    # shellcheck disable=SC2046
    apt-get $(apt_opts "$s") -q update >"$d/update.log" 2>&1 || { cat "$d/update.log" >&2; die "$s: apt-get update failed"; }
    local pkgs="docker.io docker-cli containerd nats-server" p v
    # docker-init links to tini-static: its own package in newer suites, inside tini before
    if [ -n "$(pkg_version "$s" tini-static)" ]; then pkgs="$pkgs tini-static"; else pkgs="$pkgs tini"; fi
    for p in $pkgs; do
        v="$(pkg_version "$s" "$p")"
        [ -n "$v" ] || die "$s: the suite has no package $p"
    done
    rm -f "$d/debs/"*.deb
    log "$s: apt-get download $pkgs"
    # shellcheck disable=SC2046
    (cd "$d/debs" && apt-get $(apt_opts "$s") -q download $pkgs) >"$d/download.log" 2>&1 ||
        { cat "$d/download.log" >&2; die "$s: apt-get download failed"; }
    rm -rf "$root"
    mkdir -p "$root"
    local deb
    for deb in "$d/debs/"*.deb; do
        dpkg-deb -x "$deb" "$root"
        dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb" >>"$root/packages.txt"
    done
    make_path_dir "$root"
    rm -f "$d/debs/"*.deb
    touch "$root/.complete"
}

make_path_dir() { # extracted root -> root/path: the engine's binaries plus the system runc
    local root="$1" b
    rm -rf "$root/path"
    mkdir -p "$root/path"
    for b in $ENGINE_BINS; do
        [ -e "$root/$b" ] || die "${root#"$ROOT"/}: $b missing after extraction"
        ln -s "../$b" "$root/path/$(basename "$b")"
    done
    local runc
    runc="$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v runc)" || die "system runc missing (apt-get install runc)"
    ln -s "$runc" "$root/path/runc"
}

# build/engines/system/path: the same for the system's engine (Debian 12's docker.io), so that
# an engine's PATH never depends on the caller's PATH
make_system_path() {
    local root="$ENG_DIR/system" b p
    rm -rf "$root/path"
    mkdir -p "$root/path"
    for b in dockerd docker-proxy docker-init containerd containerd-shim-runc-v2 ctr docker runc; do
        p="$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$b")" || continue
        ln -s "$p" "$root/path/$b"
    done
}

# --------------------------------------------------------------------------- status

# prints "DOCKER_VERSION NATS_VERSION STATUS" for an extracted suite (STATUS: ok or the reason)
probe() { # engine root (build/engines/system for the system's engine)
    local root="$1" dv nv err
    if [ "$root" = "$ENG_DIR/system" ]; then
        [ -d "$root/path" ] || make_system_path
        dv="$("$root/path/dockerd" --version 2>/dev/null | sed -n 's/^Docker version \([^ ,]*\).*/\1/p')"
        nv="$(PATH=/usr/sbin:/usr/bin:/sbin:/bin nats-server --version 2>/dev/null | sed -n 's/.*v\([0-9][^ ]*\).*/\1/p')"
        [ -n "$dv" ] || { echo "- ${nv:--} not-installed(make-deps)"; return; }
        echo "$dv ${nv:--} ok"
        return
    fi
    [ -f "$root/.complete" ] || { echo "- - not-fetched(make-deps)"; return; }
    nv="$("$root/usr/sbin/nats-server" --version 2>/dev/null | sed -n 's/.*v\([0-9][^ ]*\).*/\1/p')"
    if ! err="$("$root/path/dockerd" --version 2>&1)"; then
        echo "- ${nv:--} cannot-run:$(echo "$err" | head -n1 | tr ' ' '_')"
        return
    fi
    dv="$(echo "$err" | sed -n 's/^Docker version \([^ ,]*\).*/\1/p')"
    local b
    for b in containerd containerd-shim-runc-v2 docker; do
        if ! err="$("$root/path/$b" --version 2>&1 </dev/null)" && ! err="$("$root/path/$b" -v 2>&1 </dev/null)"; then
            echo "$dv ${nv:--} cannot-run:$b:$(echo "$err" | head -n1 | tr ' ' '_')"
            return
        fi
    done
    echo "$dv ${nv:--} ok"
}

list() {
    local s
    printf '%s %s %s\n' system "$(probe "$ENG_DIR/system")" "$ENG_DIR/system"
    for s in $(ls "$ENG_DIR" 2>/dev/null); do
        [ -d "$ENG_DIR/$s" ] && [ "$s" != system ] || continue
        printf '%s %s %s\n' "$s" "$(probe "$ENG_DIR/$s")" "$ENG_DIR/$s"
    done | sort -k2,2V
}

resolve() { # engine -> "NAME DOCKER_VERSION NATS_VERSION STATUS DIR" of the matching engine
    local want="$1" name dv nv st dir
    while read -r name dv nv st dir; do
        if [ "$want" = "$name" ] || { [ "$want" = bookworm ] && [ "$name" = system ]; } ||
            [[ "$dv" == "$want" || "$dv" == "$want".* ]]; then
            echo "$name $dv $nv $st $dir"
            return 0
        fi
    done < <(list)
    return 1
}

case "${1:-}" in
fetch)
    shift
    suites="${*:-$SUITES_DEFAULT}"
    make_system_path
    for s in $suites; do fetch_suite "$s"; done
    echo "engines (build/engines; PATH dir per engine: build/engines/SUITE/path):"
    list | while read -r name dv nv st dir; do
        printf '  %-8s docker %-16s nats-server %-8s %s\n' "$name" "$dv" "$nv" "$st"
        [ -f "$dir/packages.txt" ] && echo "           packages: $(paste -sd, "$dir/packages.txt" | sed 's/,/, /g')"
        if [ "$st" != ok ]; then
            echo "  !!! engine $name cannot run on this machine: $st -- make e2e will skip it !!!"
        fi
    done
    echo "nats-servers for the integration suite (make test NATS_SERVER=PATH):"
    echo "  system  $(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v nats-server || echo missing)"
    for s in $suites; do echo "  $s  $ENG_DIR/$s/usr/sbin/nats-server"; done
    ;;
list) list ;;
path)
    [ $# = 2 ] || die "usage: $0 path ENGINE"
    line="$(resolve "$2")" || die "no engine '$2' here: $(list | awk '{printf "%s%s=%s", sep, $1, $2; sep=", "}') (make deps fetches trixie and sid)"
    read -r name dv nv st dir <<<"$line"
    [ "$st" = ok ] || die "engine $2 ($name, docker $dv) cannot run here: $st"
    echo "$dir/path"
    ;;
nats)
    [ $# = 2 ] || die "usage: $0 nats SUITE|system"
    if [ "$2" = system ]; then PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v nats-server; else
        [ -x "$ENG_DIR/$2/usr/sbin/nats-server" ] || die "no nats-server for $2 (make deps)"
        echo "$ENG_DIR/$2/usr/sbin/nats-server"
    fi
    ;;
mirror) mirror ;;
*) die "usage: $0 fetch [SUITE ...] | list | path ENGINE | nats SUITE|system" ;;
esac
