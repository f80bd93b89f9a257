"""`docker run --log-driver=<name>` with the plugin installed as DRIVER=logentries, against a
local token endpoint (Tests/integration/le_endpoint.py, an independent Python program).

The name depends on the engine (e2e_helpers.logentries_names, as plugin/install.sh picks it):
Docker <= 24 still has its built-in `logentries` driver, which wins over a plugin alias of that
name, so the plugin is `logentries-relay` there; Docker 25-27 refuse `--log-driver=logentries`
but `logentries:latest` reaches the plugin installed as `logentries`; Docker 28 passes
`logentries` to the plugin. E2E_LOGENTRIES_ALIAS=NAME installs and uses NAME instead.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from e2e_helpers import docker, unique_name, wait_until

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Tests" / "integration"))
from le_endpoint import Endpoint, make_pki  # noqa: E402

INSTALL = REPO / "plugin" / "install.sh"
PLUGIN_DIR = Path(os.environ.get("PLUGIN_DIR", REPO / "build" / "plugin"))
ALIAS = os.environ.get("E2E_LOGENTRIES_ALIAS", "")
RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
LINES = 200_000


@pytest.fixture(scope="module")
def le_plugin(engine):
    """The plugin with DRIVER=logentries under the engine's Logentries alias (or ALIAS), removed
    again after this module. `alias` is the name for --log-driver, `installed` the plugin name."""
    binary = PLUGIN_DIR / "rootfs" / "usr" / "bin" / "logrelay"
    if not (PLUGIN_DIR / "config.json").is_file() or not binary.is_file():
        pytest.exit(f"{PLUGIN_DIR} is not a plugin dir: run `make plugin-dir` first", returncode=1)
    installed, driver = (ALIAS, ALIAS) if ALIAS else engine.logentries
    # hostfs.source=/tmp: the CA of these tests is in a host temp dir (not /etc/logrelay)
    out = subprocess.run([str(INSTALL), str(PLUGIN_DIR), installed, "DRIVER=logentries", "hostfs.source=/tmp"],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        pytest.fail(f"plugin install failed: {out.stdout}{out.stderr}")
    pid = docker("plugin", "inspect", "-f", "{{.Id}}", installed, check=True).stdout.strip()
    print(f"\nDocker {engine.version}: Logentries plugin installed as {installed!r}, "
          f"used as --log-driver={driver}")

    class P:
        alias = driver
        id = pid

        @staticmethod
        def log(last=40):
            lines = engine.log_lines(pid)
            return "\n".join(lines[-last:]) if lines else "(plugin log not available)"
    P.installed = installed
    yield P
    docker("plugin", "disable", "-f", installed, timeout=60)
    docker("plugin", "rm", "-f", installed, timeout=60)


@pytest.fixture(scope="module")
def le_dir():
    d = Path(tempfile.mkdtemp(prefix="lr-e2e-le-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def le_pki(le_dir):
    return make_pki(le_dir / "pki")


@pytest.fixture
def endpoints(le_dir):
    made = []

    def make(**kw):
        e = Endpoint(le_dir, **kw)
        made.append(e)
        return e
    yield make
    for e in made:
        e.stop()


def payloads(ep, token):
    prefix = token.encode() + b" "
    out = []
    for l in ep.lines():
        assert l.startswith(prefix), l[:80]
        assert len(l) + 1 < 65536
        out.append(l[len(prefix):])
    return out


def test_seq_200000_over_tls_arrives_complete_and_in_order(le_plugin, busybox, endpoints, le_pki, containers):
    ep = endpoints(cert=le_pki["server-cert"], key=le_pki["server-key"])
    token = str(uuid.uuid4())
    name = unique_name("lr-e2e-le-seq")
    containers.append(name)
    run = docker("run", "-d", "--name", name, "--network=none",
                 f"--log-driver={le_plugin.alias}",
                 "--log-opt", f"logentries-token={token}",
                 "--log-opt", f"logentries-address=localhost:{ep.port}",
                 "--log-opt", f"logentries-tls-ca-cert={le_pki['ca']}",
                 "--log-opt", "tag={{.Name}}",
                 "--log-opt", "labels=team", "--label", "team=core",
                 busybox, "seq", "1", str(LINES))
    assert run.returncode == 0, run.stderr
    assert docker("wait", name, timeout=300).stdout.strip() == "0"
    assert ep.wait_for(LINES, 300), f"{ep.count()} of {LINES} lines arrived\nplugin log:\n{le_plugin.log()}"
    ep.wait_quiet(1.0)

    container_id, image_id = docker("inspect", "-f", "{{.Id}} {{.Image}}", name, check=True).stdout.split()
    events = [json.loads(p) for p in payloads(ep, token)]
    assert [e["log"] for e in events] == [str(i) for i in range(1, LINES + 1)], "lost, duplicated or reordered"
    for e in (events[0], events[LINES // 2], events[-1]):
        assert e == {"time": e["time"], "source": "stdout", "log": e["log"], "tag": name,
                     "container_id": container_id, "container_name": "/" + name,
                     "image_id": image_id, "image_name": busybox, "attrs": {"team": "core"}}
        assert RFC3339_NANO.match(e["time"]), e["time"]
    times = [e["time"] for e in events]
    assert times == sorted(times)
    opened = ep.opened()
    assert len(opened) == 1 and opened[0]["tls"] and opened[0]["sni"] == "localhost", opened


def test_line_only_over_plain_tcp_with_multi_line_output(le_plugin, busybox, endpoints, containers):
    ep = endpoints()
    token = str(uuid.uuid4())
    name = unique_name("lr-e2e-le-raw")
    containers.append(name)
    run = docker("run", "--name", name, "--network=none",
                 f"--log-driver={le_plugin.alias}",
                 "--log-opt", f"logentries-token={token}",
                 "--log-opt", f"logentries-address=127.0.0.1:{ep.port}",
                 "--log-opt", "logentries-tls=false",
                 "--log-opt", "line-only=true",
                 busybox, "sh", "-c", r"echo first; printf 'cr\rinside\n'; echo; echo last",
                 timeout=120)
    assert run.returncode == 0, run.stderr
    assert ep.wait_for(3, 60), f"{ep.count()} lines\nplugin log:\n{le_plugin.log()}"
    ep.wait_quiet(1.0)
    # the empty line is not sent; the CR folds into U+2028
    assert payloads(ep, token) == [b"first", "cr\u2028inside".encode(), b"last"]


def test_missing_token_fails_docker_run_naming_the_option(le_plugin, busybox, containers):
    name = unique_name("lr-e2e-le-notoken")
    containers.append(name)
    run = docker("run", "--rm", "--name", name, "--network=none",
                 f"--log-driver={le_plugin.alias}", busybox, "true", timeout=120)
    assert run.returncode != 0, run.stdout
    assert "logentries-token" in run.stderr, run.stderr


def test_unreachable_endpoint_does_not_hold_the_container(le_plugin, busybox, containers):
    name = unique_name("lr-e2e-le-down")
    containers.append(name)
    s = __import__("socket").socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    run = docker("run", "--rm", "--name", name, "--network=none",
                 f"--log-driver={le_plugin.alias}",
                 "--log-opt", f"logentries-token={uuid.uuid4()}",
                 "--log-opt", f"logentries-address=127.0.0.1:{port}",
                 busybox, "sh", "-c", "seq 1 20000; echo done", timeout=120)
    assert run.returncode == 0, f"{run.stderr}\nplugin log:\n{le_plugin.log()}"
    assert run.stdout.strip().endswith("done")


def _deliver_three_lines(le_plugin, busybox, endpoints, containers, driver):
    ep = endpoints()
    token = str(uuid.uuid4())
    name = unique_name("lr-e2e-le-name")
    containers.append(name)
    run = docker("run", "--name", name, "--network=none", f"--log-driver={driver}",
                 "--log-opt", f"logentries-token={token}",
                 "--log-opt", f"logentries-address=127.0.0.1:{ep.port}",
                 "--log-opt", "logentries-tls=false", "--log-opt", "line-only=true",
                 busybox, "sh", "-c", "echo one; echo two; echo three", timeout=120)
    assert run.returncode == 0, f"--log-driver={driver}: {run.stderr}\nplugin log:\n{le_plugin.log()}"
    assert ep.wait_for(3, 60), f"{ep.count()} lines via --log-driver={driver}\nplugin log:\n{le_plugin.log()}"
    ep.wait_quiet(0.5)
    assert payloads(ep, token) == [b"one", b"two", b"three"]
    assert docker("inspect", "-f", "{{.HostConfig.LogConfig.Type}}", name,
                  check=True).stdout.strip() == driver


def test_the_logentries_name_this_engine_needs_delivers(engine, le_plugin, busybox, endpoints, containers):
    """28+: --log-driver=logentries reaches the plugin; 25-27: the bare name is refused by the
    daemon, logentries:latest delivers; <= 24: the bare name is Docker's built-in driver (not
    the plugin), the other alias delivers."""
    if ALIAS:
        pytest.skip(f"E2E_LOGENTRIES_ALIAS={ALIAS} overrides the per-engine name")
    print(f"\nDocker {engine.version}: --log-driver={le_plugin.alias}")
    if engine.major >= 28:
        assert le_plugin.alias == "logentries"
    elif engine.major >= 25:
        assert le_plugin.alias == "logentries:latest"
        name = unique_name("lr-e2e-le-bare")
        containers.append(name)
        run = docker("run", "--name", name, "--network=none", "--log-driver=logentries",
                     "--log-opt", f"logentries-token={uuid.uuid4()}", busybox, "true", timeout=120)
        assert run.returncode != 0 and "deprecated and removed" in run.stderr, (run.returncode, run.stderr)
    else:
        assert le_plugin.alias == "logentries-relay"
    _deliver_three_lines(le_plugin, busybox, endpoints, containers, le_plugin.alias)


def test_the_logentries_name_as_the_daemon_default_survives_daemon_restarts(
        engine, le_plugin, busybox, endpoints, containers):
    """`dockerd --log-driver=NAME` with this engine's Logentries name: a container created with
    it keeps that driver across a daemon restart (no `migrated deprecated logentries logging
    driver` to `local`, which Docker 25-27 do to the bare name `logentries`, shown here too on
    those versions) and delivers again when it is started again."""
    if engine.mode != "started":
        pytest.skip("needs a private dockerd started by this suite (the engine is restarted)")
    if ALIAS:
        pytest.skip(f"E2E_LOGENTRIES_ALIAS={ALIAS} overrides the per-engine name")
    ep = endpoints()
    token = str(uuid.uuid4())

    def flags(driver):
        return (f"--log-driver={driver} --log-opt logentries-token={token} "
                f"--log-opt logentries-address=127.0.0.1:{ep.port} --log-opt logentries-tls=false "
                "--log-opt line-only=true")

    def log_type(name):
        return docker("inspect", "-f", "{{.HostConfig.LogConfig.Type}}", name, check=True).stdout.strip()

    skip_lines = len(engine.log_lines())
    try:
        engine.restart(flags(le_plugin.alias))
        assert docker("info", "--format", "{{.LoggingDriver}}", check=True).stdout.strip() == le_plugin.alias
        name = unique_name("lr-e2e-le-default")
        containers.append(name)
        run = docker("run", "--name", name, "--network=none", busybox, "echo", "hello", timeout=120)
        assert run.returncode == 0, f"{run.stderr}\nplugin log:\n{le_plugin.log()}"
        assert ep.wait_for(1, 60), f"nothing arrived\nplugin log:\n{le_plugin.log()}"
        assert log_type(name) == le_plugin.alias

        engine.restart(flags(le_plugin.alias))
        assert log_type(name) == le_plugin.alias, "the daemon restart changed the container's log driver"
        migrated = [l for l in engine.log_lines()[skip_lines:] if "migrated deprecated logentries" in l]
        assert not migrated, migrated
        start = docker("start", "-a", name, timeout=120)
        assert start.returncode == 0, f"{start.stderr}\nplugin log:\n{le_plugin.log()}"
        assert ep.wait_for(2, 60), f"{ep.count()} of 2 lines after the restart\nplugin log:\n{le_plugin.log()}"
        ep.wait_quiet(0.5)
        assert payloads(ep, token) == [b"hello", b"hello"]
        print(f"\nDocker {engine.version}: dockerd --log-driver={le_plugin.alias} survives daemon restarts")

        if 25 <= engine.major < 28:
            # What the README warns about: the bare name as the daemon default creates containers
            # with driver `logentries`, which the next daemon restart rewrites to `local`.
            engine.restart(flags("logentries"))
            bare = unique_name("lr-e2e-le-bare-default")
            containers.append(bare)
            run = docker("run", "--name", bare, "--network=none", busybox, "echo", "bare", timeout=120)
            assert run.returncode == 0, f"{run.stderr}\nplugin log:\n{le_plugin.log()}"
            assert log_type(bare) == "logentries"
            engine.restart(flags("logentries"))
            assert log_type(bare) == "local", "Docker no longer migrates the bare name: update the README"
            assert any("migrated deprecated logentries" in l for l in engine.log_lines()[skip_lines:])
            print(f"Docker {engine.version}: dockerd --log-driver=logentries: the container was "
                  "migrated to `local` at the restart (README warning)")
    finally:
        engine.restart("")
