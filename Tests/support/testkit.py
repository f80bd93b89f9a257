"""Process and socket helpers shared by the test suites (standard library only).

Tests/integration/helpers.py re-exports all of this, and Tests/integration/le_endpoint.py
(which Tests/e2e also imports) uses it, so there is one of each:

* free_port(), wait_until(), port_accepts(), unix_accepts();
* stop_process(): stops exactly one process started by the tests, by its pid;
* nats_server_binary() and NatsServer: a nats-server on 127.0.0.1 with its own config file;
* /proc readings of a process: fd_count(), rss_kib(), thread_count(), cpu_seconds().

Only processes started by a test are ever signalled, always by their own pid.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Callable, Optional


# ---------------------------------------------------------------------------
# sockets and waiting
# ---------------------------------------------------------------------------


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(pred: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def unix_accepts(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------

def stop_process(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 15.0):
    """Stops exactly this process (by its pid) with `sig`, escalating to SIGKILL after
    `timeout` seconds, and reaps it."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------
# /proc readings (resource checks; never timing)
# ---------------------------------------------------------------------------

def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _status_field(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith(field + ":"):
                return int(ln.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def rss_kib(pid: int) -> int:
    return _status_field(pid, "VmRSS")


def thread_count(pid: int) -> int:
    return _status_field(pid, "Threads")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    fields = st[st.rfind(")") + 2:].split()   # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------
# nats-server
# ---------------------------------------------------------------------------

def nats_server_binary() -> str:
    for cand in (os.environ.get("NATS_SERVER"), "/usr/sbin/nats-server", "/usr/bin/nats-server"):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise AssertionError("nats-server not found (apt-get install nats-server, or `make deps`; "
                         "or set NATS_SERVER)")


# For cluster nodes: the tests' Python subscribers can fall far behind the plugin's replay
# after a failover, and a node that dropped one as a slow consumer would lose lines the
# plugin had delivered.
PATIENT_WITH_SLOW_CLIENTS = 'max_pending: 536870912\nwrite_deadline: "60s"\n'


class NatsServer:
    """A nats-server on 127.0.0.1 with its own config file in a temp dir.
    `extra_config` is appended to the config (authorization, max_payload, cluster, tls...)."""

    def __init__(self, workdir: Path, port: Optional[int] = None, extra_config: str = "",
                 monitor: bool = False, name: str = "nats"):
        self.port = port or free_port()
        self.http_port = free_port() if monitor else None
        self.dir = Path(workdir) / f"{name}-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = f"listen: 127.0.0.1:{self.port}\n"
        if self.http_port:
            conf += f"http: 127.0.0.1:{self.http_port}\n"
        conf += extra_config
        self.config_path = self.dir / "server.conf"
        self.config_path.write_text(conf)
        self.log_path = self.dir / "server.log"
        self.proc: Optional[subprocess.Popen] = None
        self.start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self):
        assert self.proc is None or self.proc.poll() is not None
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([nats_server_binary(), "-c", str(self.config_path)],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        ok = wait_until(lambda: self.proc.poll() is not None or port_accepts(self.port), 10)
        if not ok or self.proc.poll() is not None:
            self.stop()
            raise AssertionError(f"nats-server did not come up on {self.port}: "
                                 f"{self.log_path.read_text()[-2000:]}")
        if self.http_port:
            assert wait_until(lambda: port_accepts(self.http_port), 10)

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        """Kills exactly this server (by its pid) with `sig` and reaps it; start() brings it back
        with the same config, port and (JetStream) store dir."""
        if self.alive():
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=15)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def client_names(self) -> list[str]:
        """Names of the clients connected right now (GET /connz)."""
        return [c.get("name", "") for c in self.connz().get("connections") or []]

    def _monitor(self, path: str) -> dict:
        assert self.http_port, "start the server with monitor=True"
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
            return json.loads(r.read())

    def routez(self) -> dict:
        return self._monitor("/routez")

    def connz(self, state: str = "open") -> dict:
        """GET /connz; state "open", "closed" or "all" (closed ones are kept by the server)."""
        return self._monitor(f"/connz?state={state}&limit=1024")

    def varz(self) -> dict:
        return self._monitor("/varz")
