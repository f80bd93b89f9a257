#!/usr/bin/env bash
# `make e2e`: the real-Docker suite (Tests/e2e) on each engine of the matrix, one at a time.
#
#   Tests/support/e2e-matrix.sh [PYTEST_ARGS ...]
#
# Environment:
#   E2E_ENGINES   engines to run, in order (default "20.10 26 28"): a version prefix, a suite
#                 name (system, trixie, sid; see Tests/support/engines.sh) or `external` (the
#                 engine DOCKER_HOST or the default socket reaches, as it is).
#   E2E_WORK      per-engine directories (default /tmp/logrelay-e2e): WORK/ENGINE/dockerd holds
#                 that engine's data root, exec root, socket, pid file and log.
#   E2E_STRICT=1  an engine that is missing or cannot run here fails the run (default: it is
#                 skipped with a loud message; a run that ran no engine always fails).
#   E2E_CHURN_CONTAINERS_EXTRA  churn test size on every engine after the first (default: as
#                 the first, E2E_CHURN_CONTAINERS or 100).
#   E2E_SUITE_NATS=1  each engine's tests use the nats-server of the same suite (2.10 with
#                 trixie's 26, 2.15 with sid's 28) instead of NATS_SERVER / the one on PATH.
#   PLUGIN_DIR    the plugin dir (make plugin-dir).
#   E2E_LOCK      lock file (default /tmp/logrelay-e2e.lock): each engine's run holds it, so
#                 two `make e2e` on one machine take turns instead of sharing dockerds and
#                 /run/docker/plugins.
#
# Each engine is a private dockerd (Tests/support/dockerd.sh, DOCKERD_FORCE_PRIVATE=1) with the
# engine's directory of binaries first on PATH (dockerd finds containerd, the shim, runc and
# docker-init through PATH; runc is the system's). Per-engine results are printed at the end.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ENGINES="${E2E_ENGINES:-20.10 26 28}"
WORK="${E2E_WORK:-/tmp/logrelay-e2e}"
PYTHON="${PYTHON:-python3}"
RESULTS="$ROOT/build/e2e"
mkdir -p "$RESULTS"

summary=()
ran=0
failed=0
first=1

counts() { # junit xml -> "P passed, F failed, E errors, S skipped"
    "$PYTHON" - "$1" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    r = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("no result file"); sys.exit()
s = r if r.tag == "testsuite" else r.find("testsuite")
t, f, e, k = (int(s.get(a, 0)) for a in ("tests", "failures", "errors", "skipped"))
print(f"{t - f - e - k} passed, {f} failed, {e} errors, {k} skipped")
EOF
}

LOCK="${E2E_LOCK:-/tmp/logrelay-e2e.lock}"
exec 9>>"$LOCK"

lock() {
    if ! flock -n 9; then
        echo "e2e: waiting for another e2e run on this machine (lock $LOCK: $(cat "$LOCK" 2>/dev/null))"
        flock 9
    fi
    echo "pid $$ ($(date -u +%H:%M:%S) UTC, engine $1, $ROOT)" >"$LOCK"
}

for engine in $ENGINES; do
    lock "$engine"
    t0=$SECONDS
    env_path="$PATH"
    force=1
    if [ "$engine" = external ]; then
        force=0
    else
        if ! dir="$("$ROOT/Tests/support/engines.sh" path "$engine" 2>&1)"; then
            echo
            echo "!!! e2e: SKIPPING engine $engine: $dir"
            echo "!!!      (Tests/support/engines.sh list shows what make deps fetched)"
            summary+=("$(printf '%-8s SKIPPED: %s' "$engine" "$dir")")
            [ "${E2E_STRICT:-0}" = 1 ] && failed=1
            flock -u 9
            continue
        fi
        [ -n "$dir" ] && env_path="$dir:$PATH"
    fi
    version="$(PATH="$env_path" dockerd --version 2>/dev/null | sed -n 's/^Docker version \([^ ,]*\).*/\1/p')"
    [ "$engine" = external ] && version="(reachable engine)"
    echo
    echo "=== e2e on Docker $engine: dockerd $version, $(PATH="$env_path" command -v dockerd) ==="
    nats=()
    if [ "${E2E_SUITE_NATS:-0}" = 1 ] && [ "$engine" != external ] && [ -x "$(dirname "$dir")/usr/sbin/nats-server" ]; then
        nats=(NATS_SERVER="$(dirname "$dir")/usr/sbin/nats-server")
        echo "    (nats-server of the same suite: ${nats[0]#NATS_SERVER=})"
    fi
    churn=()
    if [ $first = 0 ] && [ -n "${E2E_CHURN_CONTAINERS_EXTRA:-}" ]; then
        churn=(E2E_CHURN_CONTAINERS="$E2E_CHURN_CONTAINERS_EXTRA")
    fi
    first=0
    xml="$RESULTS/e2e-$engine.xml"
    rm -f "$xml"
    dockerd_dir="$WORK/$engine/dockerd"
    mkdir -p "$dockerd_dir"
    env PATH="$env_path" E2E_DOCKERD_DIR="$dockerd_dir" DOCKERD_FORCE_PRIVATE="$force" \
        E2E_ENGINE="$engine" PLUGIN_DIR="${PLUGIN_DIR:-$ROOT/build/plugin}" "${nats[@]}" "${churn[@]}" \
        "$PYTHON" -m pytest "$@" --junitxml="$xml" "$ROOT/Tests/e2e"
    rc=$?
    # the suite stops the dockerd it started; make sure, by its pid file only
    [ $force = 1 ] && PATH="$env_path" DOCKERD_DIR="$dockerd_dir" "$ROOT/Tests/support/dockerd.sh" stop
    flock -u 9
    took=$((SECONDS - t0))
    ran=$((ran + 1))
    result="$(counts "$xml")"
    status=passed
    if [ $rc != 0 ]; then status="FAILED (pytest exit $rc)"; failed=1; fi
    summary+=("$(printf '%-8s %-16s %s in %ds: %s' "$engine" "$version" "$status" "$took" "$result")")
done

echo
echo "=== e2e per engine ==="
for line in "${summary[@]}"; do echo "  $line"; done
if [ $ran = 0 ]; then
    echo "e2e: FAILED: no engine ran (E2E_ENGINES=\"$ENGINES\"; run make deps)"
    exit 1
fi
exit $failed
