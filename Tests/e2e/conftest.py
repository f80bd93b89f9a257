"""Fixtures for the real-Docker suite (`make e2e`).

Session-wide: a Docker engine (the reachable one, else a private dockerd started by
Tests/support/dockerd.sh and stopped again by its pid), the `busybox:local` image, the plugin
from build/plugin installed under a test alias, and a nats-server on a free loopback port.
Per test: independent nats-py subscribers (Tests/support/nats-sub.py, one process each) and the
containers a test names, all removed afterwards.
"""
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e_helpers import IMAGE, docker, free_port, logentries_names, wait_until  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "Tests" / "support"
INSTALL = REPO / "plugin" / "install.sh"
PLUGIN_DIR = Path(os.environ.get("PLUGIN_DIR", REPO / "build" / "plugin"))
ALIAS = os.environ.get("E2E_ALIAS", "logrelay-e2e")
DOCKERD_DIR = os.environ.get("E2E_DOCKERD_DIR", "/tmp/logrelay-e2e/dockerd")
# the nats-server the suite starts (as in Tests/integration): NATS_SERVER=PATH selects another
NATS_SERVER = os.environ.get("NATS_SERVER", "nats-server")


@dataclass
class Engine:
    host: str
    mode: str  # external | started | reused (see Tests/support/dockerd.sh)
    dockerd_dir: str
    version: str = ""  # the server's version, e.g. 26.1.5+dfsg1

    @property
    def major(self):
        try:
            return int(self.version.split(".")[0])
        except ValueError:
            return 0

    @property
    def logentries(self):
        """(alias to install, --log-driver name) for the Logentries alias on this engine."""
        return logentries_names(self.version)

    @property
    def private(self):
        return self.mode in ("started", "reused")

    def log_lines(self, plugin_id=None):
        """dockerd's log (private engine only), optionally only the lines of one plugin."""
        path = Path(self.dockerd_dir) / "log"
        if not self.private or not path.exists():
            return []
        lines = path.read_text(errors="replace").splitlines()
        if plugin_id:
            lines = [l for l in lines if f"plugin={plugin_id}" in l]
        return lines

    def restart(self, extra_args=""):
        """Restarts the private dockerd with extra flags (e.g. a default --log-driver)."""
        assert self.mode == "started", "only a dockerd this suite started is restarted"
        env = dict(os.environ, DOCKERD_DIR=self.dockerd_dir, DOCKERD_EXTRA_ARGS=extra_args)
        out = subprocess.run([str(SCRIPTS / "dockerd.sh"), "restart"], env=env, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, f"dockerd restart failed: {out.stderr}"


@pytest.fixture(scope="session")
def engine():
    env = dict(os.environ, DOCKERD_DIR=DOCKERD_DIR)
    out = subprocess.run([str(SCRIPTS / "dockerd.sh"), "start"], env=env, capture_output=True,
                         text=True, timeout=300)
    sys.stderr.write(out.stderr)
    if out.returncode != 0:
        pytest.exit(f"no Docker engine: {out.stderr.strip()}", returncode=1)
    host, mode = out.stdout.split()
    os.environ["DOCKER_HOST"] = host
    version = docker("version", "-f", "{{.Server.Version}}", check=True).stdout.strip()
    eng = Engine(host=host, mode=mode, dockerd_dir=DOCKERD_DIR, version=version)
    nats_version = subprocess.run([NATS_SERVER, "--version"], capture_output=True, text=True).stdout.strip()
    sys.stderr.write(f"\ne2e: Docker engine {version} ({mode}) at {host}; {nats_version} ({NATS_SERVER})\n")
    yield eng
    if mode == "started":
        subprocess.run([str(SCRIPTS / "dockerd.sh"), "stop"], env=env, timeout=300)


@pytest.fixture(scope="session")
def busybox(engine):
    subprocess.run([str(SCRIPTS / "busybox-image.sh"), IMAGE], check=True, timeout=300)
    return IMAGE


@dataclass
class Plugin:
    alias: str
    id: str
    engine: Engine

    def log(self, last=40):
        lines = self.engine.log_lines(self.id)
        return "\n".join(lines[-last:]) if lines else "(plugin log not available)"


@pytest.fixture(scope="session")
def plugin(engine):
    binary = PLUGIN_DIR / "rootfs" / "usr" / "bin" / "logrelay"
    if not (PLUGIN_DIR / "config.json").is_file() or not binary.is_file():
        pytest.exit(f"{PLUGIN_DIR} is not a plugin dir: run `make plugin-dir` first", returncode=1)
    # hostfs.source=/tmp: the TLS tests keep their certificates in host temp dirs (the
    # default, /etc/logrelay, is test_privileges.py's, with its own install).
    out = subprocess.run([str(INSTALL), str(PLUGIN_DIR), ALIAS, "DRIVER=nats", "hostfs.source=/tmp"],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        pytest.exit(f"plugin install failed: {out.stdout}{out.stderr}", returncode=1)
    pid = docker("plugin", "inspect", "-f", "{{.Id}}", ALIAS, check=True).stdout.strip()
    yield Plugin(alias=ALIAS, id=pid, engine=engine)
    docker("plugin", "disable", "-f", ALIAS, timeout=60)
    docker("plugin", "rm", "-f", ALIAS, timeout=60)


@dataclass
class NatsServer:
    port: int
    proc: subprocess.Popen

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"


def _start_nats(tmp_dir):
    port = free_port()
    log = open(Path(tmp_dir) / f"nats-{port}.log", "wb")
    proc = subprocess.Popen([NATS_SERVER, "-a", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def listening():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return proc.poll() is not None

    wait_until(listening, 20)
    if proc.poll() is not None:
        raise RuntimeError(f"nats-server exited ({proc.returncode}), see {log.name}")
    return NatsServer(port=port, proc=proc)


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory):
    server = _start_nats(tmp_path_factory.mktemp("nats"))
    yield server
    _stop(server.proc)


@dataclass
class Subscriber:
    subject: str
    out: Path
    proc: subprocess.Popen

    def lines(self):
        if not self.out.exists():
            return []
        data = self.out.read_bytes()
        # only whole lines: the subscriber may be mid-write
        return data[: data.rfind(b"\n") + 1].splitlines()

    def count(self):
        if not self.out.exists():
            return 0
        return self.out.read_bytes().count(b"\n")

    def wait_for(self, n, timeout=300):
        wait_until(lambda: self.count() >= n, timeout, interval=0.5)
        return self.count()

    def events(self):
        return [json.loads(l) for l in self.lines()]


@pytest.fixture
def subscribe(tmp_path):
    """subscribe(server, subject) -> Subscriber, subscribed before it returns."""
    started = []

    def _subscribe(server, subject, *extra_args, label=None):
        """extra_args go to nats-sub.py (e.g. --tls-ca FILE); label names the output file when
        several subscribers share a subject."""
        name = label or subject
        out = tmp_path / f"sub-{name}.jsonl"
        ready = tmp_path / f"sub-{name}.ready"
        proc = subprocess.Popen([sys.executable, str(SCRIPTS / "nats-sub.py"), "--server", server.url,
                                 "--subject", subject, "--out", str(out), "--ready-file", str(ready),
                                 *extra_args],
                                stdin=subprocess.DEVNULL)
        started.append(proc)
        if not wait_until(lambda: ready.exists() or proc.poll() is not None, 30) or not ready.exists():
            raise RuntimeError(f"subscriber for {subject!r} did not become ready")
        return Subscriber(subject=subject, out=out, proc=proc)

    yield _subscribe
    for proc in started:
        _stop(proc)


@pytest.fixture
def containers(engine):
    """A list the test appends container names to; they are removed afterwards."""
    names = []
    yield names
    for name in names:
        docker("rm", "-f", name, timeout=60)

