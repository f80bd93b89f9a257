"""Fixtures for logrelay's integration tests (see helpers.py for the machinery).

Every fixture cleans up after itself, also when the test fails: containers are
stopped and their FIFOs unlinked, then the plugin and the nats-servers started
by this test are stopped by pid, and the temp dir is removed. A plugin's stdout
and stderr (both go to files) are checked for every secret the tests used before
they are deleted, and their tails are printed when the test failed.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402
from helpers import Container, NatsServer, Plugin, Subscriber  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture
def workdir():
    # short paths: unix socket paths must stay under 108 bytes
    d = Path(tempfile.mkdtemp(prefix="lrit-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pki():
    """Throwaway TLS material (test CA, server cert for localhost/127.0.0.1, client cert, and an
    unrelated second CA), made once per session with openssl; see Tests/support/testpki.py."""
    d = Path(tempfile.mkdtemp(prefix="lrpki-", dir="/tmp"))
    yield helpers.make_pki(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def nats_factory(workdir):
    servers: list[NatsServer] = []

    def make(**kw) -> NatsServer:
        s = NatsServer(workdir, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def nats_server(nats_factory) -> NatsServer:
    return nats_factory(monitor=True)


@pytest.fixture
def subscriber_factory():
    subs: list[Subscriber] = []

    def make(url: str, subject: str = ">", **kw) -> Subscriber:
        s = Subscriber(url, subject, **kw)
        subs.append(s)
        return s

    yield make
    for s in subs:
        s.close()


@pytest.fixture
def plugin_factory(workdir, request):
    plugins: list[Plugin] = []
    containers: list[Container] = []

    def make(name: str = "plugin", **kw) -> Plugin:
        try:
            p = Plugin(workdir, name=f"{name}{len(plugins)}", **kw)
        except FileNotFoundError as e:
            pytest.fail(str(e), pytrace=False)
        p.containers = containers
        plugins.append(p)
        return p

    yield make

    for c in containers:
        try:
            c.abandon()
        except Exception:
            pass
    problems = []
    for p in plugins:
        p.stop()
        # the plugin logs info/debug to stdout and warnings/errors to stderr: check both
        for stream, out in (("stdout", p.stdout()), ("stderr", p.stderr())):
            leaked = sorted(s for s in helpers.SECRETS if s in out)
            if leaked:
                problems.append(f"{p.dir.name}: secret(s) {leaked} appear in the plugin's {stream}")
            if _failed(request):
                tail = "\n".join(out.splitlines()[-60:])
                print(f"\n----- {p.dir.name} {stream} (last 60 lines) -----\n{tail}\n", file=sys.stderr)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def plugin(plugin_factory) -> Plugin:
    return plugin_factory()


class Daemon:
    """Plays dockerd against one plugin: containers share one keep-alive client."""

    def __init__(self, plugin: Plugin):
        self.plugin = plugin
        self.client = plugin.client()

    def container(self, config: dict, client=None, **kw) -> Container:
        c = Container(self.plugin, client or self.client, config, **kw)
        self.plugin.containers.append(c)
        return c


@pytest.fixture
def daemon(plugin) -> Daemon:
    d = Daemon(plugin)
    yield d
    d.client.close()


@pytest.fixture
def daemon_for():
    """daemon_for(plugin) -> a Daemon for a plugin made with plugin_factory (e.g. with another
    log level or environment than the `plugin` fixture's)."""
    made: list[Daemon] = []

    def make(plugin: Plugin) -> Daemon:
        d = Daemon(plugin)
        made.append(d)
        return d

    yield make
    for d in made:
        d.client.close()
