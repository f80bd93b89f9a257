"""The logentries driver against local token endpoints (Tests/integration/le_endpoint.py: an
independent Python program, plain TCP or TLS with a throwaway CA, that records every line).

Wire format (`TOKEN EVENT\\n`, `TOKEN LINE\\n`), U+2028 folding, cutting under 64 KiB,
TLS verification (wrong CA, system CAs, wrong host name), outages (endpoint down at
start, killed and restarted mid-stream, idle cut-offs), connection sharing, options.
"""

import json
import os
import signal
import threading
import time
import uuid

import pytest

from helpers import (DELIVERY_TIMEOUT, PROMPT, Container, Entry, assert_accounting, http_get, metric, next_time_ns, secret,
                     text, wait_until)
from le_endpoint import Endpoint, pki_paths

MAX_WIRE = 65536  # a wire line, "\n" included, stays under this


def new_token() -> str:
    return secret(str(uuid.uuid4()))


@pytest.fixture(scope="module")
def le_pki(pki):
    """The session's test PKI (conftest.py) as le_endpoint's dict of paths."""
    return pki_paths(pki)


@pytest.fixture
def endpoints(workdir):
    made = []

    def make(**kw) -> Endpoint:
        e = Endpoint(workdir, **kw)
        made.append(e)
        return e

    yield make
    for e in made:
        e.stop()


@pytest.fixture
def tls_endpoint(endpoints, le_pki):
    return endpoints(cert=le_pki["server-cert"], key=le_pki["server-key"])


def tls_config(ep: Endpoint, pki, token: str, **extra) -> dict:
    cfg = {"logentries-token": token, "logentries-address": f"localhost:{ep.port}",
           "logentries-tls-ca-cert": str(pki["ca"])}
    cfg.update(extra)
    return cfg


def plain_config(ep: Endpoint, token: str, **extra) -> dict:
    cfg = {"logentries-token": token, "logentries-address": f"127.0.0.1:{ep.port}",
           "logentries-tls": "false"}
    cfg.update(extra)
    return cfg


def container(plugin, client, config: dict) -> Container:
    """A container on a plugin made with plugin_factory (torn down by that fixture)."""
    c = Container(plugin, client, config)
    plugin.containers.append(c)
    return c


def split_wire(line: bytes, token: str) -> bytes:
    """The payload of one wire line, after checking it starts with the token and one space."""
    prefix = token.encode() + b" "
    assert line.startswith(prefix), f"wire line without its token: {line[:80]!r}"
    assert len(line) + 1 < MAX_WIRE, f"wire line of {len(line) + 1} bytes"
    assert b"\r" not in line
    return line[len(prefix):]


def events_of(ep: Endpoint, token: str) -> list[dict]:
    return [json.loads(split_wire(l, token)) for l in ep.lines()]


SPECIAL = [
    b"",
    "unicode: h\u00e9llo \u65e5\u672c \U0001F680".encode(),
    b"invalid utf-8: \xff here \xc3( there",
    b"ctrl: \x00\x01\x07\t\x1b[31mred\x1b[0m end",
    b'quotes " and \\ backslash \xe2\x80\xa8',
]


# ---------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------

def test_json_events_over_tls_verified_with_the_test_ca(daemon, plugin, tls_endpoint, le_pki):
    token = new_token()
    c = daemon.container(tls_config(tls_endpoint, le_pki, token, labels="team"), name="/le-web",
                         labels={"team": "core"})
    c.start_ok()
    n = 3000
    base = next_time_ns()
    entries = [Entry("stderr" if i % 3 == 0 else "stdout",
                     SPECIAL[i % 100] if i % 100 < len(SPECIAL) else b"line %05d " % i + b"x" * (i % 50),
                     base + i * 1000) for i in range(n)]
    c.send_entries(entries)
    assert tls_endpoint.wait_for(n, DELIVERY_TIMEOUT), f"{tls_endpoint.count()} of {n} lines arrived"
    tls_endpoint.wait_quiet(0.5)
    got = events_of(tls_endpoint, token)
    assert len(got) == n, f"{len(got)} lines for {n} (duplicates without an outage?)"
    for i, (ev, e) in enumerate(zip(got, entries)):
        want = c.expected(text(e.line), e.source, e.time_nano, attrs={"team": "core"})
        assert ev == want, f"line {i}: got {ev}\nwant {want}"
    opened = tls_endpoint.opened()
    assert len(opened) == 1 and opened[0]["tls"], opened
    assert opened[0]["sni"] == "localhost", f"SNI sent: {opened[0]['sni']!r}"
    assert not c.stop().failed


def test_line_only_over_plain_tcp_sends_the_raw_line(daemon, endpoints):
    ep = endpoints()
    token = new_token()
    c = daemon.container(plain_config(ep, token, **{"line-only": "true"}))
    c.start_ok()
    lines = [b"plain %d" % i for i in range(2000)] + [b"   spaces kept   ", b"tab\there",
                                                      "\u00e9\U0001F680".encode(), b"bad \xff byte"]
    c.log_lines([("stdout", l) for l in lines])
    assert ep.wait_for(len(lines), DELIVERY_TIMEOUT), f"{ep.count()} of {len(lines)}"
    ep.wait_quiet(0.5)
    got = [split_wire(l, token) for l in ep.lines()]
    assert got[:-1] == lines[:-1]
    assert got[-1] == "bad \ufffd byte".encode()
    assert not ep.opened()[0]["tls"]
    c.stop()


@pytest.mark.parametrize("line_only", [False, True], ids=["json", "line-only"])
def test_multi_line_entries_fold_into_one_wire_line(line_only, daemon, tls_endpoint, le_pki):
    token = new_token()
    cfg = tls_config(tls_endpoint, le_pki, token)
    if line_only:
        cfg["line-only"] = "true"
    c = daemon.container(cfg)
    c.start_ok()
    multi = [b"first\nsecond", b"crlf\r\nnext\r\n", b"cr\ronly", b"\n\nleading", b"trailing\n", b"one"]
    t = next_time_ns()
    c.send_entries([Entry("stdout", l, t + i) for i, l in enumerate(multi)])
    assert tls_endpoint.wait_for(len(multi), DELIVERY_TIMEOUT)
    tls_endpoint.wait_quiet(0.5)
    wire = tls_endpoint.lines()
    assert len(wire) == len(multi), f"embedded newlines split an entry: {wire!r}"
    for w, l in zip(wire, multi):
        payload = split_wire(w, token)
        if line_only:
            folded = l.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", "\u2028".encode())
            assert payload == folded, (payload, folded)
        else:
            assert json.loads(payload)["log"] == text(l)
    c.stop()


@pytest.mark.parametrize("line_only", [False, True], ids=["json", "line-only"])
def test_long_lines_are_cut_under_64k_with_the_token_on_every_piece(line_only, daemon, tls_endpoint, le_pki):
    token = new_token()
    cfg = tls_config(tls_endpoint, le_pki, token)
    if line_only:
        cfg["line-only"] = "true"
    c = daemon.container(cfg)
    c.start_ok()
    unit = "0123456789 \u00e9\u00e8 \u65e5\u672c\u8a9e \U0001F680 ".encode()
    big = (unit * (300_000 // len(unit) + 1))[:300_000]
    while True:  # end on a character boundary
        try:
            big.decode()
            break
        except UnicodeDecodeError:
            big = big[:-1]
    c.log_lines([("stdout", b"before"), ("stdout", big), ("stdout", b"after")])
    assert wait_until(lambda: any(b"after" in l for l in tls_endpoint.lines()[-1:]), DELIVERY_TIMEOUT), \
        f"{tls_endpoint.count()} wire lines"
    wire = [split_wire(l, token) for l in tls_endpoint.lines()]  # checks size and token on every piece
    pieces = wire[1:-1]
    assert len(pieces) >= 5, f"{len(pieces)} pieces for a 300 kB line"
    if line_only:
        assert wire[0] == b"before" and wire[-1] == b"after"
        assert b"".join(pieces) == big
        for p in pieces:
            p.decode()  # cut on character boundaries
    else:
        evs = [json.loads(p) for p in pieces]
        assert all(e.get("partial") is True for e in evs)
        assert "".join(e["log"] for e in evs) == big.decode()
        assert "partial" not in json.loads(wire[0]) and "partial" not in json.loads(wire[-1])
    c.stop()


# ---------------------------------------------------------------------------
# TLS verification
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["other CA", "system CAs", "wrong host name"])
def test_unverifiable_endpoint_gets_nothing_and_the_error_is_clear(case, daemon, plugin, endpoints, le_pki):
    if case == "wrong host name":
        ep = endpoints(cert=le_pki["wrongname-cert"], key=le_pki["wrongname-key"])
    else:
        ep = endpoints(cert=le_pki["server-cert"], key=le_pki["server-key"])
    token = new_token()
    cfg = {"logentries-token": token, "logentries-address": f"localhost:{ep.port}"}
    if case == "other CA":
        cfg["logentries-tls-ca-cert"] = str(le_pki["other-ca"])
    elif case == "wrong host name":
        cfg["logentries-tls-ca-cert"] = str(le_pki["ca"])
    c = daemon.container(cfg)
    c.start_ok()
    c.log_lines([("stdout", b"must not be sent %d" % i) for i in range(200)])
    assert c.writer.flush(10)
    assert wait_until(lambda: any(e["ev"] == "tls-error" for e in ep.events()), 15), ep.events()
    want = "certificate verification failed"
    assert wait_until(lambda: want in plugin.stderr(), 10), plugin.stderr()[-2000:]
    body = http_get(plugin.socket, "/metrics").body.decode()
    err = [l for l in body.splitlines() if l.startswith("logrelay_connection_last_error_info{")]
    assert err and want in err[0], err
    assert token not in body
    t0 = time.monotonic()
    assert not c.stop().failed
    assert time.monotonic() - t0 < PROMPT
    time.sleep(0.5)
    assert ep.count() == 0 and not ep.opened(), "lines reached an endpoint that failed verification"
    assert plugin.alive()


# ---------------------------------------------------------------------------
# outages
# ---------------------------------------------------------------------------

def test_endpoint_down_at_stream_start_and_up_3s_later_gets_every_line(daemon, plugin, endpoints, le_pki):
    ep = endpoints(cert=le_pki["server-cert"], key=le_pki["server-key"], start=False)
    token = new_token()
    c = daemon.container(tls_config(ep, le_pki, token))
    t0 = time.monotonic()
    c.start_ok()
    assert time.monotonic() - t0 < PROMPT, "StartLogging waited on the network"
    entries = c.log_lines([("stdout", b"while down %05d" % i) for i in range(10_000)])
    assert c.writer.flush(10), "the FIFO is not drained while the endpoint is down"
    time.sleep(3)
    ep.start()
    more = c.log_lines([("stdout", b"after up %05d" % i) for i in range(2000)])
    n = len(entries) + len(more)
    assert ep.wait_for(n, DELIVERY_TIMEOUT), f"{ep.count()} of {n} lines arrived"
    ep.wait_quiet(0.5)
    got = [json.loads(split_wire(l, token))["log"] for l in ep.lines()]
    assert got == [text(e.line) for e in entries + more]
    assert metric(plugin.socket, "logrelay_container_lines_dropped_total", c.name) == 0
    c.stop()


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "tcp"])
def test_endpoint_killed_and_restarted_mid_stream_gets_every_line(tls, daemon, plugin, endpoints, le_pki):
    if tls:
        ep = endpoints(cert=le_pki["server-cert"], key=le_pki["server-key"])
    else:
        ep = endpoints()
    token = new_token()
    c = daemon.container(tls_config(ep, le_pki, token) if tls else plain_config(ep, token))
    c.start_ok()
    n = 60_000
    sent = [b"seq %06d " % i + b"p" * 60 for i in range(n)]

    def paced():  # ~1.5 s of steady output, so the kill lands mid-stream
        for k in range(0, n, 1000):
            c.log_lines([("stdout", l) for l in sent[k:k + 1000]])
            time.sleep(0.025)
    writer = threading.Thread(target=paced, daemon=True)
    writer.start()
    assert wait_until(lambda: ep.count() >= 10_000, DELIVERY_TIMEOUT)
    ep.kill()
    killed_at = ep.count()
    time.sleep(1.0)
    ep.start()
    writer.join(DELIVERY_TIMEOUT)
    want = set(sent)

    def complete():
        got = {json.loads(split_wire(l, token))["log"].encode() for l in ep.lines()}
        return want <= got
    assert wait_until(complete, DELIVERY_TIMEOUT + 30, 0.5), \
        f"{len(want - {json.loads(split_wire(l, token))['log'].encode() for l in ep.lines()})} lines missing"
    logs = [json.loads(split_wire(l, token))["log"] for l in ep.lines()]  # every line whole
    assert len(logs) >= n
    assert len(ep.opened()) >= 2
    # after the reconnect everything arrives in order: the last occurrences are sorted
    last = {}
    for i, l in enumerate(logs):
        last[l] = i
    order = sorted(last, key=last.get)
    assert order == sorted(order), "lines out of order after the reconnect"
    assert killed_at < n, "the endpoint was killed after the stream had ended"
    assert metric(plugin.socket, "logrelay_container_lines_dropped_total", c.name) == 0
    body = http_get(plugin.socket, "/metrics").body.decode()
    kept = [l for l in body.splitlines() if l.startswith("logrelay_connection_lines_resent_total{")]
    print(f"killed at {killed_at} lines; {len(logs)} wire lines for {n}; unacknowledged resent "
          f"{metric(plugin.socket, 'logrelay_container_lines_resent_total', c.name)}; acknowledged resent {kept}")
    c.stop()


@pytest.mark.parametrize("lag", [
    ["--rcvbuf", "65536", "--read-size", "8192", "--read-pause", "0.002"],
    # 512 KiB waiting unread for over a second: far beyond any fixed grace period
    ["--rcvbuf", "524288", "--read-size", "8192", "--read-pause", "0.02"],
], ids=["64KiB-buffer", "512KiB-buffer-slow-reader"])
def test_lagging_endpoint_killed_with_acknowledged_lines_unread_gets_every_line(daemon, plugin, endpoints, lag):
    """A server that lags behind (a receive buffer, slow reader: lines acknowledged by its
    kernel but unread) is killed: every line still arrives, because the plugin keeps a copy of
    acknowledged lines until the window the endpoint advertises shows they were read. (The unit
    test testAcknowledgedButUnreadLinesAreSentAgainWhenTheEndpointResets pins down the copy.)"""
    ep = endpoints(extra_args=lag)
    token = new_token()
    c = daemon.container(plain_config(ep, token))
    c.start_ok()
    n = 40_000
    sent = [b"lag %06d " % i + b"q" * 60 for i in range(n)]

    def paced():
        for k in range(0, n, 1000):
            c.log_lines([("stdout", l) for l in sent[k:k + 1000]])
            time.sleep(0.02)
    writer = threading.Thread(target=paced, daemon=True)
    writer.start()
    assert wait_until(lambda: ep.count() >= 8000, DELIVERY_TIMEOUT)
    ep.kill()
    time.sleep(0.5)
    ep.extra_args = []
    ep.start()
    writer.join(DELIVERY_TIMEOUT)
    want = set(sent)

    def got():
        return {json.loads(split_wire(l, token))["log"].encode() for l in ep.lines()}
    if not wait_until(lambda: want <= got(), DELIVERY_TIMEOUT + 30, 0.5):
        missing = sorted(want - got())
        pytest.fail(f"{len(missing)} lines missing: {missing[0][:10]!r} … {missing[-1][:10]!r}; "
                    f"the endpoint had {ep.count()} wire lines")
    assert_accounting(plugin.socket, c.name)
    c.stop()


def test_server_idle_cut_off_is_survived(daemon, plugin, endpoints, le_pki):
    ep = endpoints(cert=le_pki["server-cert"], key=le_pki["server-key"], idle_close=1.0)
    token = new_token()
    c = daemon.container(tls_config(ep, le_pki, token))
    c.start_ok()
    c.log_lines([("stdout", b"before the cut-off %d" % i) for i in range(100)])
    assert ep.wait_for(100, DELIVERY_TIMEOUT)
    assert wait_until(lambda: any(e["ev"] == "close" for e in ep.events()), 10)
    c.log_lines([("stdout", b"after the cut-off %d" % i) for i in range(100)])
    assert ep.wait_for(200, DELIVERY_TIMEOUT), f"{ep.count()} of 200"
    ep.wait_quiet(0.5)
    got = [json.loads(split_wire(l, token))["log"] for l in ep.lines()]
    assert got[:100] == ["before the cut-off %d" % i for i in range(100)]
    assert set(got[100:]) == {"after the cut-off %d" % i for i in range(100)}
    c.stop()


def test_idle_connection_is_closed_by_the_plugin_and_reopened_for_new_lines(plugin_factory, endpoints, le_pki):
    p = plugin_factory(extra_env={"LOGRELAY_LOGENTRIES_IDLE_SECONDS": "1"})
    client = p.client()
    try:
        ep = endpoints(cert=le_pki["server-cert"], key=le_pki["server-key"])
        token = new_token()
        c = container(p, client, tls_config(ep, le_pki, token))
        c.start_ok()
        c.log_lines([("stdout", b"one %d" % i) for i in range(50)])
        assert ep.wait_for(50, DELIVERY_TIMEOUT)
        # the plugin closes it (the endpoint sees EOF, not an idle cut-off of its own)
        assert wait_until(lambda: [e["why"] for e in ep.events() if e["ev"] == "close"] == ["eof"], 10), ep.events()
        assert len(ep.opened()) == 1
        c.log_lines([("stdout", b"two %d" % i) for i in range(50)])
        assert ep.wait_for(100, DELIVERY_TIMEOUT)
        assert len(ep.opened()) == 2
        got = [json.loads(split_wire(l, token))["log"] for l in ep.lines()]
        assert got == ["one %d" % i for i in range(50)] + ["two %d" % i for i in range(50)]
        c.stop()
    finally:
        client.close()


def test_full_buffer_while_down_drops_oldest_and_counts_never_blocks(daemon, plugin, endpoints):
    ep = endpoints(start=False)
    token = new_token()
    c = daemon.container(plain_config(ep, token, **{"buffer-size": "64k"}))
    c.start_ok()
    lines = [b"drop me %06d " % i + b"d" * 100 for i in range(20_000)]  # ~2.3 MB
    c.log_lines([("stdout", l) for l in lines])
    assert c.writer.flush(DELIVERY_TIMEOUT), "the container was blocked by a down endpoint"
    assert wait_until(lambda: (metric(plugin.socket, "logrelay_container_lines_dropped_total", c.name) or 0) > 0, 10)
    ep.start()
    assert wait_until(lambda: ep.count() > 0, DELIVERY_TIMEOUT)
    ep.wait_quiet(1.0)
    got = [split_wire(l, token) for l in ep.lines()]
    dropped = metric(plugin.socket, "logrelay_container_lines_dropped_total", c.name)
    assert len(got) + dropped == len(lines), (len(got), dropped)
    assert json.loads(got[-1])["log"].encode() == lines[-1]  # drop-oldest keeps the newest
    c.stop()


# ---------------------------------------------------------------------------
# sharing, shutdown, options
# ---------------------------------------------------------------------------

def test_streams_to_one_endpoint_share_a_connection_each_line_with_its_token(daemon, plugin, tls_endpoint, le_pki):
    tokens = [new_token() for _ in range(3)]
    cs = [daemon.container(tls_config(tls_endpoint, le_pki, t, **({"line-only": "true"} if i == 1 else {})))
          for i, t in enumerate(tokens)]
    for c in cs:
        c.start_ok()
    for i, c in enumerate(cs):
        c.log_lines([("stdout", b"c%d line %d" % (i, j)) for j in range(1000)])
    assert tls_endpoint.wait_for(3000, DELIVERY_TIMEOUT), tls_endpoint.count()
    tls_endpoint.wait_quiet(0.5)
    by_token: dict[str, list[bytes]] = {t: [] for t in tokens}
    for l in tls_endpoint.lines():
        t, _, rest = l.partition(b" ")
        by_token[t.decode()].append(rest)
    assert [len(v) for v in by_token.values()] == [1000, 1000, 1000]
    assert by_token[tokens[1]] == [b"c1 line %d" % j for j in range(1000)]
    assert [json.loads(x)["log"] for x in by_token[tokens[2]]] == ["c2 line %d" % j for j in range(1000)]
    assert len(tls_endpoint.opened()) == 1, "one connection per endpoint, shared by its streams"
    body = http_get(plugin.socket, "/metrics").body.decode()
    conn = f'driver="logentries",connection="tls://localhost:{tls_endpoint.port}"'
    assert f'logrelay_connection_streams{{{conn}}} 3' in body, body
    assert f'logrelay_connection_up{{{conn}}} 1' in body
    assert f'logrelay_connection_state{{{conn},state="connected"}} 1' in body
    for t in tokens:
        assert t not in body
    for c in cs:
        c.stop()


def test_sigterm_delivers_what_the_daemon_wrote(daemon, plugin, tls_endpoint, le_pki):
    token = new_token()
    c = daemon.container(tls_config(tls_endpoint, le_pki, token))
    c.start_ok()
    entries = c.log_lines([("stdout", b"before sigterm %d" % i) for i in range(20_000)])
    assert c.writer.flush(10)
    os.kill(plugin.pid, signal.SIGTERM)
    plugin.proc.wait(15)
    assert plugin.proc.returncode == 0
    tls_endpoint.wait_for(len(entries), 5)
    got = [json.loads(split_wire(l, token))["log"] for l in tls_endpoint.lines()]
    assert got == [text(e.line) for e in entries]


def test_driver_logentries_setting_sends_to_logentries(plugin_factory, endpoints):
    p = plugin_factory(driver="logentries")
    client = p.client()
    try:
        ep = endpoints()
        token = new_token()
        c = container(p, client, plain_config(ep, token))
        c.start_ok()
        c.log_lines([("stdout", b"driver setting")])
        assert ep.wait_for(1, DELIVERY_TIMEOUT)
        assert json.loads(split_wire(ep.lines()[0], token))["log"] == "driver setting"
        # with DRIVER=logentries the token is required, and NATS options are unknown keys
        r = container(p, client, {"nats-servers": "nats://127.0.0.1:4222"}).start()
        assert r.failed and "nats-servers" in r.err, r
        c.stop()
    finally:
        client.close()


BAD = [
    ("missing token", {}, ["logentries-token"]),
    ("token not a UUID", {"logentries-token": secret("not-a-real-token-value")}, ["logentries-token"]),
    ("token too short", {"logentries-token": secret("2bfbea1e-10c3-4419-bdad-7e6435882e1")}, ["logentries-token"]),
    ("token with a space", {"logentries-token": secret("2bfbea1e-10c3-4419-bdad 7e6435882e1f")}, ["logentries-token"]),
    ("line-only not a bool", {"line-only": "sometimes"}, ["line-only"]),
    ("address without host", {"logentries-address": ":443"}, ["logentries-address"]),
    ("address and region", {"logentries-address": "h:1", "logentries-region": "eu"}, ["logentries-region"]),
    ("ca cert unreadable", {"logentries-tls-ca-cert": "/nonexistent/ca.pem"}, ["logentries-tls-ca-cert"]),
    ("ca cert relative", {"logentries-tls-ca-cert": "ca.pem"}, ["logentries-tls-ca-cert"]),
    ("nats option", {"nats-subject": "x"}, ["nats-subject"]),
]


@pytest.mark.parametrize("what,config,must_name", BAD, ids=[b[0] for b in BAD])
def test_bad_options_fail_start_logging(what, config, must_name, plugin_factory):
    p = plugin_factory(driver="logentries")
    client = p.client()
    try:
        cfg = {} if what == "missing token" else {"logentries-token": new_token()}
        cfg.update(config)
        t0 = time.monotonic()
        r = container(p, client, cfg).start()
        assert time.monotonic() - t0 < PROMPT
        assert r.failed, f"{what}: StartLogging should fail: {r!r}"
        for word in must_name:
            assert word in r.err, f"{what}: error does not name {word}: {r.err!r}"
        tok = cfg.get("logentries-token")
        assert not tok or tok not in r.err, "the token appears in the error"
        assert p.alive()
    finally:
        client.close()


def test_not_a_pem_ca_fails_start_logging(daemon, workdir):
    bad = workdir / "notpem.pem"
    bad.write_text("hello\n")
    r = daemon.container({"logentries-token": new_token(), "logentries-tls-ca-cert": str(bad)}).start()
    assert r.failed and "logentries-tls-ca-cert" in r.err, r
