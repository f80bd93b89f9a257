"""Install like users do: from a registry, under two aliases, then upgrade.

A local registry (Debian's `docker-registry serve CONFIG`, storage in the test's temp dir, a
free loopback port: Docker talks plain HTTP to 127.0.0.1 registries) receives the plugin from
`plugin/push.sh` (what `make push` runs) as `:v1` and `:v2`. The engine then installs `:v1`
twice from the same reference, as users do:

    docker plugin install --grant-all-permissions --alias nats REF:v1 DRIVER=nats
    docker plugin install --grant-all-permissions --alias LOGENTRIES REF:v1 DRIVER=logentries

(LOGENTRIES is the engine's Logentries alias, e2e_helpers.logentries_names), logs through both
(a nats-server on loopback with an independent subscriber; a local token endpoint), upgrades
each alias to `:v2` (`docker plugin disable -f`, `docker plugin upgrade --skip-remote-check`,
`docker plugin enable`; the settings stay) and logs through both again. Tags only: `docker plugin install`
by digest crashes dockerd 20.10.

The aliases are `nats` and the engine's Logentries name on a private engine; on an engine the
suite did not start, prefixed ones (E2E_REGISTRY_PREFIX) so a user's plugins are not touched.
"""
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from e2e_helpers import docker, free_port, unique_name, wait_until

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Tests" / "integration"))
from le_endpoint import Endpoint  # noqa: E402

PUSH = REPO / "plugin" / "push.sh"
PLUGIN_DIR = Path(os.environ.get("PLUGIN_DIR", REPO / "build" / "plugin"))   # as conftest.py
REGISTRY = os.environ.get("DOCKER_REGISTRY_BIN", "docker-registry")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """host:port of a docker-registry on loopback, stopped by its pid afterwards."""
    d = tmp_path_factory.mktemp("registry")
    port = free_port()
    conf = d / "config.yml"
    conf.write_text(f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {d / "storage"}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: logrelay-e2e-{uuid.uuid4().hex}
""")
    log = open(d / "registry.log", "wb")
    try:
        proc = subprocess.Popen([REGISTRY, "serve", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        pytest.fail(f"{REGISTRY} not installed (make deps installs Debian's docker-registry)")

    def up():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as r:
                return r.status == 200
        except OSError:
            return proc.poll() is not None
    wait_until(up, 30)
    if proc.poll() is not None:
        pytest.fail(f"docker-registry exited: {(d / 'registry.log').read_text()[-2000:]}")
    yield f"127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _host_dir():
    """The host directory of config.json's `hostfs` mount, which must exist on the engine's host
    before the plugin is enabled (as plugin/install.sh makes it); None when there is none."""
    conf = json.loads((PLUGIN_DIR / "config.json").read_text())
    for m in conf.get("mounts", []):
        if m.get("name") == "hostfs" and m.get("source"):
            return m["source"]
    return None


def _push(ref):
    out = subprocess.run([str(PUSH), str(PLUGIN_DIR), ref], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"plugin/push.sh {ref} failed:\n{out.stdout}{out.stderr}"
    assert docker("plugin", "inspect", ref).returncode != 0, "push.sh left the local plugin behind"


def _remove(name):
    docker("plugin", "disable", "-f", name, timeout=60)
    docker("plugin", "rm", "-f", name, timeout=60)


def _plugin_log(engine, name):
    pid = docker("plugin", "inspect", "-f", "{{.Id}}", name).stdout.strip()
    lines = engine.log_lines(pid) if pid else []
    return "\n".join(lines[-30:]) if lines else "(plugin log not available)"


def _log_via_nats(engine, alias, busybox, nats_server, subscribe, containers, label):
    name = unique_name(f"lr-e2e-reg-{label}")
    sub = subscribe(nats_server, name)
    containers.append(name)
    run = docker("run", "--name", name, "--network=none", f"--log-driver={alias}",
                 "--log-opt", f"nats-servers={nats_server.url}", "--log-opt", "tag={{.Name}}",
                 busybox, "sh", "-c", f"echo {label} one; echo {label} two; echo {label} three >&2",
                 timeout=120)
    assert run.returncode == 0, f"--log-driver={alias}: {run.stderr}\nplugin log:\n{_plugin_log(engine, alias)}"
    got = sub.wait_for(3, timeout=60)
    assert got == 3, f"{got} of 3 events via {alias}\nplugin log:\n{_plugin_log(engine, alias)}"
    events = sub.events()
    assert sorted((e["source"], e["log"]) for e in events) == [
        ("stderr", f"{label} three"), ("stdout", f"{label} one"), ("stdout", f"{label} two")]
    assert all(e["tag"] == name and e["container_name"] == "/" + name for e in events)


def _log_via_logentries(engine, installed, driver, busybox, endpoint, containers, label):
    token = str(uuid.uuid4())
    name = unique_name(f"lr-e2e-reg-le-{label}")
    containers.append(name)
    before = endpoint.count()
    run = docker("run", "--name", name, "--network=none", f"--log-driver={driver}",
                 "--log-opt", f"logentries-token={token}",
                 "--log-opt", f"logentries-address=127.0.0.1:{endpoint.port}",
                 "--log-opt", "logentries-tls=false", "--log-opt", "line-only=true",
                 busybox, "sh", "-c", f"echo {label} one; echo {label} two", timeout=120)
    assert run.returncode == 0, f"--log-driver={driver}: {run.stderr}\nplugin log:\n{_plugin_log(engine, installed)}"
    assert endpoint.wait_for(before + 2, 60), \
        f"{endpoint.count() - before} of 2 lines via {driver}\nplugin log:\n{_plugin_log(engine, installed)}"
    endpoint.wait_quiet(0.5)
    mine = [l for l in endpoint.lines() if l.startswith(token.encode() + b" ")]
    assert mine == [f"{token} {label} one".encode(), f"{token} {label} two".encode()], mine


def _diff_ids(name):
    return docker("plugin", "inspect", "-f", "{{json .Config.Rootfs.DiffIds}}", name, check=True).stdout.strip()


def _release(engine, name):
    """The reference push.sh wrote into the installed plugin's rootfs (/etc/logrelay-release),
    read from the private engine's data root; None on an engine the suite did not start."""
    if not engine.private:
        return None
    pid = docker("plugin", "inspect", "-f", "{{.Id}}", name, check=True).stdout.strip()
    path = Path(engine.dockerd_dir) / "root" / "plugins" / pid / "rootfs" / "etc" / "logrelay-release"
    return path.read_text().strip() if path.exists() else f"({path} missing)"


def _env(name):
    return docker("plugin", "inspect", "-f", "{{json .Settings.Env}}", name, check=True).stdout


def test_push_install_two_aliases_from_one_reference_log_and_upgrade(
        engine, registry, busybox, nats_server, subscribe, containers, tmp_path):
    t0 = time.monotonic()
    repo = f"{registry}/logrelay-e2e/logrelay"
    v1, v2 = f"{repo}:v1", f"{repo}:v2"
    le_installed, le_driver = engine.logentries
    nats_alias = "nats"
    if not engine.private:
        prefix = os.environ.get("E2E_REGISTRY_PREFIX", "logrelay-e2e-reg-")
        nats_alias, le_installed = prefix + "nats", prefix + "logentries"
        le_driver = le_installed
    aliases = [nats_alias, le_installed]
    for a in aliases:
        _remove(a)

    _push(v1)
    _push(v2)  # the same plugin dir under a second tag
    print(f"\nDocker {engine.version}: pushed {v1} and {v2}; aliases {nats_alias}, {le_installed} "
          f"(--log-driver={le_driver})")
    host_dir = _host_dir()
    if host_dir and os.environ.get("DOCKER_HOST", "unix://").startswith("unix://"):
        os.makedirs(host_dir, mode=0o755, exist_ok=True)
    endpoint = Endpoint(tmp_path)
    try:
        for alias, setting in ((nats_alias, "DRIVER=nats"), (le_installed, "DRIVER=logentries")):
            out = docker("plugin", "install", "--grant-all-permissions", "--alias", alias, v1, setting,
                         timeout=300)
            assert out.returncode == 0, f"docker plugin install --alias {alias} {v1}: {out.stderr}"
            assert docker("plugin", "inspect", "-f", "{{.Enabled}} {{.PluginReference}}", alias,
                          check=True).stdout.split() == ["true", v1]
            assert f"DRIVER={setting.split('=')[1]}" in _env(alias)

        _log_via_nats(engine, nats_alias, busybox, nats_server, subscribe, containers, "v1")
        _log_via_logentries(engine, le_installed, le_driver, busybox, endpoint, containers, "v1")
        layers_v1 = {a: _diff_ids(a) for a in aliases}
        for a in aliases:
            assert _release(engine, a) in (None, v1)

        for alias in aliases:
            assert docker("plugin", "disable", "-f", alias, timeout=60).returncode == 0
            # --skip-remote-check: else the CLI asks "Plugin images do not match, are you
            # sure? [y/N]" whenever the new reference differs from the old one and, with no
            # terminal, takes no for an answer and exits 0 without upgrading.
            up = docker("plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check", alias, v2,
                        timeout=300)
            assert up.returncode == 0 and "Upgraded plugin" in up.stdout, \
                f"docker plugin upgrade {alias} {v2}: {up.stdout}{up.stderr}"
            out = docker("plugin", "enable", alias, timeout=120)
            assert out.returncode == 0, f"docker plugin enable {alias} after the upgrade: {out.stderr}"
            assert docker("plugin", "inspect", "-f", "{{.PluginReference}}", alias,
                          check=True).stdout.strip() == v2
            assert _diff_ids(alias) != layers_v1[alias], f"{alias}: the rootfs did not change"
            assert _release(engine, alias) in (None, v2)
        assert "DRIVER=nats" in _env(nats_alias), "the upgrade lost the setting"
        assert "DRIVER=logentries" in _env(le_installed), "the upgrade lost the setting"

        _log_via_nats(engine, nats_alias, busybox, nats_server, subscribe, containers, "v2")
        _log_via_logentries(engine, le_installed, le_driver, busybox, endpoint, containers, "v2")
        print(f"registry install, logging and upgrade on Docker {engine.version} in "
              f"{time.monotonic() - t0:.0f}s")
    finally:
        endpoint.stop()
        for name in list(containers):
            docker("rm", "-f", name, timeout=60)
        containers.clear()
        for a in aliases:
            _remove(a)
