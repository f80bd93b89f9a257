"""A plugin upgrade while a container logs loses nothing and never stalls the container.

Docker's only upgrade path (20.10 to 28) is `docker plugin disable -f`, `docker plugin
upgrade`, `docker plugin enable`; it replaces the plugin's root filesystem and never repeats
StartLogging. config.json's `propagatedMount` (/run/docker/logging) puts the FIFOs and the
plugin's state dir under `<plugin dir>/propagated-mount/`, outside that rootfs, so the
upgraded plugin re-attaches from its state and reads on where the old one stopped.

A container writes 30,000 numbered lines at about 1,000 lines/s while the plugin is disabled,
upgraded to a second tag from a local registry and enabled; every line must arrive, in
order (first occurrences: a line being published at the moment of the stop may come twice),
and the longest gap between consecutive lines' daemon timestamps shows whether the
container stalled.
"""
import time
from datetime import datetime

from e2e_helpers import docker, unique_name
from test_registry_install import _push, _remove, registry  # noqa: F401  (registry is a fixture)

LINES = 30_000


def _ns(rfc3339: str) -> int:
    whole, frac = rfc3339.rstrip("Z").split(".")
    t = datetime.fromisoformat(whole + "+00:00").timestamp()
    return int(t) * 1_000_000_000 + int(frac.ljust(9, "0"))


def test_upgrade_while_a_container_logs_loses_no_line_and_never_stalls_it(
        engine, registry, busybox, nats_server, subscribe, containers):  # noqa: F811
    repo = f"{registry}/logrelay-e2e/upgrade"
    v1, v2 = f"{repo}:v1", f"{repo}:v2"
    alias = "logrelay-e2e-upgrade"
    _remove(alias)
    _push(v1)
    _push(v2)
    try:
        out = docker("plugin", "install", "--grant-all-permissions", "--alias", alias, v1, "DRIVER=nats", timeout=300)
        assert out.returncode == 0, f"docker plugin install {v1}: {out.stderr}"
        name = unique_name("lr-e2e-upgrade")
        sub = subscribe(nats_server, name)
        containers.append(name)
        # 20 lines every 20 ms: about 1,000 lines/s for 30 s.
        script = f"i=0; while [ $i -lt {LINES // 20} ]; do seq $((i*20+1)) $((i*20+20)); i=$((i+1)); usleep 20000; done"
        run = docker("run", "-d", "--name", name, "--network=none", f"--log-driver={alias}",
                     "--log-opt", f"nats-servers={nats_server.url}", "--log-opt", "tag={{.Name}}",
                     busybox, "sh", "-c", script, timeout=120)
        assert run.returncode == 0, run.stderr
        time.sleep(5)

        t0 = time.monotonic()
        assert docker("plugin", "disable", "-f", alias, timeout=60).returncode == 0
        up = docker("plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check", alias, v2, timeout=300)
        assert up.returncode == 0 and "Upgraded plugin" in up.stdout, f"{up.stdout}{up.stderr}"
        assert docker("plugin", "enable", alias, timeout=120).returncode == 0
        print(f"\nDocker {engine.version}: disable, upgrade and enable took {time.monotonic() - t0:.1f} s")

        assert docker("wait", name, timeout=300).stdout.strip() == "0"
        got = sub.wait_for(LINES, timeout=120)
        events = sub.events()
        first, seen = [], set()
        for e in events:
            if e["log"] not in seen:
                seen.add(e["log"])
                first.append(e)
        logs = [e["log"] for e in first]
        assert logs == [str(i) for i in range(1, LINES + 1)], \
            f"{len(logs)} distinct of {LINES} lines ({got} events); first missing: " \
            f"{next((i for i in range(1, LINES + 1) if str(i) not in seen), None)}"
        times = [_ns(e["time"]) for e in first]
        gap = max(b - a for a, b in zip(times, times[1:])) / 1e9
        print(f"Docker {engine.version}: {LINES} lines, {got - LINES} duplicates, longest gap between lines {gap:.2f} s")
        assert gap < 5, f"the container stalled for {gap:.1f} s during the upgrade"
    finally:
        for n in list(containers):
            docker("rm", "-f", n, timeout=60)
        containers.clear()
        _remove(alias)
