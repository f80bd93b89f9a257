"""Authentication against nats-server (configs from the wire notes, §A8)."""

import time
import urllib.parse

import pytest

from helpers import PROMPT, http_get, secret, text

USER = "alice"
PASS = secret("s3cr3t-pw-9f2c")
TOKEN = secret("t0k3n-abc-71e4")
WRONG = secret("wr0ng-pw-d83a")


def _userpass_server(nats_factory):
    return nats_factory(extra_config=f'authorization {{\n  user: {USER}\n  password: "{PASS}"\n  timeout: 2\n}}\n')


def _token_server(nats_factory):
    return nats_factory(extra_config=f'authorization {{\n  token: "{TOKEN}"\n}}\n')


def _deliver(daemon, sub, config, n=200):
    c = daemon.container(config)
    c.start_ok()
    entries = c.log_lines([("stdout", b"auth line %d" % i) for i in range(n)])
    before = sub.count()
    assert sub.wait_for(before + n), f"{sub.count() - before} of {n} lines arrived"
    got = [m.event()["log"] for m in sub.snapshot() if m.subject == c.short_id]
    assert got == [text(e.line) for e in entries]
    assert not c.stop().failed
    return c


@pytest.mark.parametrize("how", ["options", "url"])
def test_user_and_password(how, daemon, nats_factory, subscriber_factory):
    server = _userpass_server(nats_factory)
    sub = subscriber_factory(server.url, ">", user=USER, password=PASS)
    if how == "options":
        config = {"nats-servers": server.url, "nats-user": USER, "nats-pass": PASS}
    else:
        config = {"nats-servers": f"nats://{USER}:{urllib.parse.quote(PASS)}@127.0.0.1:{server.port}"}
    _deliver(daemon, sub, config)


@pytest.mark.parametrize("how", ["options", "url"])
def test_token(how, daemon, nats_factory, subscriber_factory):
    server = _token_server(nats_factory)
    sub = subscriber_factory(server.url, ">", token=TOKEN)
    if how == "options":
        config = {"nats-servers": server.url, "nats-token": TOKEN}
    else:
        config = {"nats-servers": f"nats://{TOKEN}@127.0.0.1:{server.port}"}
    _deliver(daemon, sub, config)


def test_password_with_reserved_characters_in_url_is_percent_decoded(daemon, nats_factory, subscriber_factory):
    pw = secret("p@ss:w/rd%42-x1")
    server = nats_factory(extra_config=f'authorization {{\n  user: bob\n  password: "{pw}"\n}}\n')
    sub = subscriber_factory(server.url, ">", user="bob", password=pw)
    url = f"nats://bob:{urllib.parse.quote(pw, safe='')}@127.0.0.1:{server.port}"
    _deliver(daemon, sub, {"nats-servers": url}, n=20)


@pytest.mark.parametrize("how", ["options", "url"])
def test_wrong_password_delivers_nothing_but_start_succeeds_and_plugin_stays_alive(
        how, daemon, plugin, nats_factory, subscriber_factory):
    server = _userpass_server(nats_factory)
    sub = subscriber_factory(server.url, ">", user=USER, password=PASS)
    if how == "options":
        bad = {"nats-servers": server.url, "nats-user": USER, "nats-pass": WRONG}
    else:
        bad = {"nats-servers": f"nats://{USER}:{WRONG}@127.0.0.1:{server.port}"}
    c = daemon.container(bad)
    t0 = time.monotonic()
    r = c.start()
    assert not r.failed, f"StartLogging must not wait on or fail for the network: {r!r}"
    assert time.monotonic() - t0 < PROMPT
    c.log_lines([("stdout", b"should not arrive %d" % i) for i in range(100)])
    assert c.writer.flush(10), "the plugin stopped draining the FIFO of the rejected stream"
    time.sleep(3)
    assert sub.count() == 0, "lines arrived through a connection with a wrong password?!"
    assert plugin.alive()

    # other containers on the same plugin still work
    _deliver(daemon, sub, {"nats-servers": server.url, "nats-user": USER, "nats-pass": PASS}, n=50)
    assert all(m.subject != c.short_id for m in sub.snapshot())

    # the metrics (with the connection's last error) never show a secret
    m = http_get(plugin.socket, "/metrics")
    assert m.status == 200, m
    leaked = [s for s in (PASS, WRONG, TOKEN) if s.encode() in m.body]
    assert not leaked, f"secret(s) in /metrics: {leaked}"

    t0 = time.monotonic()
    assert not c.stop().failed
    assert time.monotonic() - t0 < PROMPT
    time.sleep(1)
    assert plugin.alive()
    # the plugin's stderr is checked for the secrets at teardown (conftest)
