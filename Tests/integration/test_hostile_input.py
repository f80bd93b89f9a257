"""Hostile input: whatever arrives on the plugin socket, in a FIFO or from a NATS server,
the plugin answers with a clear error (or drops and counts the bad part), keeps serving
everything else, and never crashes. Also: 300 short-lived streams leak neither fds nor memory.

Every case here is a row of the README's "Reliability" table.
"""

from __future__ import annotations

import random
import re
import socket
import time

import pytest

import hostile
from helpers import (DELIVERY_TIMEOUT, PROMPT, Entry, FifoWriter, make_info, metric, metric_samples,
                     metrics_text, next_time_ns, numbered_lines, text, wait_until)

HDR = b"Host: \r\nUser-Agent: Go-http-client/1.1\r\n"
MAX_HEADER = 16 * 1024          # the parser's header-section limit
MAX_BODY = 4 * 1024 * 1024      # the parser's body limit


def post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST " + path.encode() + b" HTTP/1.1\r\n" + HDR + extra
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def assert_serving(plugin, keepalive=None):
    """The plugin is alive, answers a new connection, and (if given) a keep-alive connection
    opened before the hostile input still works."""
    assert plugin.alive(), "the plugin died:\n" + plugin.stderr()[-3000:]
    assert plugin.client().call("/LogDriver.Capabilities").status == 200
    if keepalive is not None:
        assert keepalive.call("/LogDriver.Capabilities").status == 200
        assert keepalive.connects == 1


# ---------------------------------------------------------------------------
# malformed HTTP
# ---------------------------------------------------------------------------

MALFORMED = [
    # (case, raw request, status)
    ("not HTTP at all", b"THIS IS NOT HTTP\r\n\r\n", 400),
    ("request line without version", b"GET /\r\n\r\n", 400),
    ("two spaces in the request line", b"GET  / HTTP/1.1\r\n\r\n", 400),
    ("NUL in the target", b"GET /a\x00b HTTP/1.1\r\n\r\n", 400),
    ("non-token method", b"G{T / HTTP/1.1\r\n\r\n", 400),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    ("HTTP/3.0 version", b"GET / HTTP/3.0\r\n\r\n", 505),
    ("header without colon", b"POST /LogDriver.StopLogging HTTP/1.1\r\nHost \r\n\r\n", 400),
    ("obs-fold continuation line", b"GET / HTTP/1.1\r\nX-A: a\r\n  folded\r\n\r\n", 400),
    ("control byte in a header value", b"GET / HTTP/1.1\r\nX-A: a\x01b\r\n\r\n", 400),
    ("bare CR in a header value", b"GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 400),
    ("Content-Length not a number", b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
    ("negative Content-Length", b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
    ("conflicting Content-Lengths", b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400),
    ("Content-Length and chunked (smuggling)",
     b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("Transfer-Encoding gzip", b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ("empty Transfer-Encoding", b"POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n", 400),
    ("chunk size not hex", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ("chunk data longer than its size", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX\r\n", 400),
    ("chunk size line of 5 KiB", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 5000 + b"\r\n", 400),
    ("chunk size beyond 2^64", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 20 + b"\r\n", 413),
    ("Content-Length beyond 2^64", b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413),
]


@pytest.mark.parametrize("case,raw,status", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_http_gets_a_status_and_json_err_and_the_connection_is_closed(plugin, case, raw, status):
    keepalive = plugin.client()
    assert keepalive.call("/LogDriver.Capabilities").status == 200
    resp, closed = hostile.closed_after_response(plugin.socket, raw)
    assert resp.status == status, (case, resp)
    assert resp.json().get("Err"), (case, resp)
    assert closed, f"{case}: the connection stayed open after a {resp.status}"
    assert_serving(plugin, keepalive)
    assert "api: bad request" in plugin.stderr()


def test_binary_garbage_on_the_socket(plugin):
    keepalive = plugin.client()
    assert keepalive.call("/LogDriver.Capabilities").status == 200
    rng = random.Random(20261123)
    for n in (1, 17, 4096, 65536, 1 << 20):
        resp = hostile.raw_exchange(plugin.socket, rng.randbytes(n), shut_write=True)
        # An answer (4xx + Err) or a plain close: both fine, as long as nothing else breaks.
        if resp is not None:
            assert 400 <= resp.status < 500, (n, resp)
            assert resp.json().get("Err"), resp
    # Garbage without a single line feed is refused once it passes the header limit.
    resp = hostile.raw_exchange(plugin.socket, b"\xff" * (MAX_HEADER + 100))
    assert resp is not None and resp.status == 431, resp
    # NUL bytes only, then the peer vanishes.
    assert hostile.raw_exchange(plugin.socket, b"\0" * 1000, shut_write=True) is None or True
    assert_serving(plugin, keepalive)


def test_oversized_headers_get_431(plugin):
    keepalive = plugin.client()
    assert keepalive.call("/LogDriver.Capabilities").status == 200
    cases = {
        "one 20 KiB header": b"GET /metrics HTTP/1.1\r\nX-Big: " + b"v" * (20 * 1024) + b"\r\n\r\n",
        "2,000 small headers": b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(2000)) + b"\r\n",
        "a 20 KiB request target": b"GET /" + b"a" * (20 * 1024) + b" HTTP/1.1\r\n\r\n",
        # 1 MiB of header lines that never end: refused after 16 KiB, not buffered.
        "endless header section": b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * (1 << 17),
    }
    for case, raw in cases.items():
        resp = hostile.raw_exchange(plugin.socket, raw)
        assert resp is not None and resp.status == 431, (case, resp)
        assert "too large" in resp.json()["Err"], (case, resp)
    # Just under the limit still works.
    raw = b"GET /metrics HTTP/1.1\r\nX-Big: " + b"v" * (MAX_HEADER - 200) + b"\r\n\r\n"
    resp = hostile.raw_exchange(plugin.socket, raw)
    assert resp is not None and resp.status == 200, resp
    assert_serving(plugin, keepalive)


def test_oversized_bodies_get_413_before_the_body_is_read(plugin):
    keepalive = plugin.client()
    assert keepalive.call("/LogDriver.Capabilities").status == 200
    # Declared too large: refused from the head alone (nothing of the body is sent).
    head = (b"POST /LogDriver.StartLogging HTTP/1.1\r\n" + HDR
            + b"Content-Length: " + str(MAX_BODY + 1).encode() + b"\r\n\r\n")
    t0 = time.monotonic()
    resp = hostile.raw_exchange(plugin.socket, head)
    assert resp is not None and resp.status == 413, resp
    assert "too large" in resp.json()["Err"]
    assert time.monotonic() - t0 < PROMPT
    # Chunked, growing past the limit: refused once it gets there.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(PROMPT * 4)
    s.connect(plugin.socket)
    try:
        s.sendall(b"POST /LogDriver.StartLogging HTTP/1.1\r\n" + HDR + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b"[" * 0x10000 + b"\r\n"
        try:
            for _ in range(MAX_BODY // 0x10000 + 8):
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        from helpers import read_http_response
        resp = read_http_response(s, bytearray())
        assert resp.status == 413, resp
    finally:
        s.close()
    # Exactly at the limit: read and answered (a StopLogging padded with JSON whitespace).
    body = b'{"File":"/run/docker/logging/' + b"0" * 64 + b'"}'
    body += b" " * (MAX_BODY - len(body))
    resp = hostile.raw_exchange(plugin.socket, post("/LogDriver.StopLogging", body), timeout=30)
    assert resp is not None and resp.status == 200 and not resp.failed, resp
    assert_serving(plugin, keepalive)


def test_chunked_request_bodies_are_accepted(daemon, plugin, nats_server, subscriber_factory):
    """dockerd never sends chunked requests, but a chunked StartLogging/StopLogging works
    (extensions and trailers ignored), byte by byte too."""
    c = daemon.container({"nats-servers": nats_server.url})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.writer = FifoWriter(c.file)
    body = b'{"File":"' + c.file.encode() + b'","Info":' + __import__("json").dumps(c.info).encode() + b"}\n"
    chunks = b"".join(b"%x;ext=%d\r\n" % (len(body[i:i + 100]), i) + body[i:i + 100] + b"\r\n"
                      for i in range(0, len(body), 100))
    raw = (b"POST /LogDriver.StartLogging HTTP/1.1\r\n" + HDR + b"Transfer-Encoding: chunked\r\n\r\n"
           + chunks + b"0\r\nX-Trailer: yes\r\n\r\n")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(PROMPT)
    s.connect(plugin.socket)
    try:
        for i in range(0, len(raw), 13):
            s.sendall(raw[i:i + 13])
        from helpers import read_http_response
        resp = read_http_response(s, bytearray())
    finally:
        s.close()
    assert resp.status == 200 and not resp.failed, resp
    c.started = True
    entries = c.log_lines([("stdout", b"chunked-start %d" % i) for i in range(10)])
    assert sub.wait_for(len(entries)), f"{sub.count()} of {len(entries)}"
    stop = b'{"File":"' + c.file.encode() + b'"}\n'
    raw = (b"POST /LogDriver.StopLogging HTTP/1.1\r\n" + HDR + b"Transfer-Encoding: chunked\r\n\r\n"
           + b"%x\r\n" % len(stop) + stop + b"\r\n0\r\n\r\n")
    assert c.writer.flush(10)
    resp = hostile.raw_exchange(plugin.socket, raw)
    assert resp is not None and resp.status == 200 and not resp.failed, resp
    c.stopped = True
    c.writer.close()
    assert [e["log"] for e in sub.events()] == [text(e.line) for e in entries]


# ---------------------------------------------------------------------------
# StartLogging bodies and files
# ---------------------------------------------------------------------------

INVALID_BODIES = [
    ("empty (dockerd's retry)", b""),
    ("truncated JSON", b'{"File":"/run/docker/logging/x","Info":{'),
    ("null", b"null"),
    ("an array", b"[]"),
    ("not UTF-8", b"\xff\xfe\xfd"),
    ("File is a number", b'{"File":42}'),
    ("File is 1e999", b'{"File":1e999}'),
    ("no File", b'{"Info":{}}'),
    ("empty File", b'{"File":"","Info":{}}'),
    ("lone surrogate escape", b'{"File":"\\ud800"}'),
    ("two JSON values", b'{"File":"a"}\n{"File":"b"}'),
    ("Info of the wrong type", b'{"File":"/x","Info":[]}'),
    ("ContainerArgs of the wrong type", b'{"File":"/x","Info":{"ContainerArgs":"sh"}}'),
    ("Config value not a string", b'{"File":"/x","Info":{"Config":{"tag":1}}}'),
    ("100,000 nested arrays", b"[" * 100_000),
    ("50,000 nested objects", b'{"File":' * 50_000),
]


@pytest.mark.parametrize("case,body", INVALID_BODIES, ids=[c[0] for c in INVALID_BODIES])
def test_invalid_start_logging_bodies_are_400_with_err(plugin, case, body):
    r = plugin.client().call("/LogDriver.StartLogging", body)
    assert r.status == 400, (case, r)
    assert r.err, (case, r)
    assert "\n" not in r.err
    assert_serving(plugin)


def test_start_logging_for_a_file_that_is_not_a_fifo(plugin, workdir):
    regular = workdir / "regular-file"
    regular.write_bytes(b"\x00\x00\x00\x05hello")
    cases = {
        str(regular): "not a FIFO",
        str(workdir): "not a FIFO",
        "/dev/null": "not a FIFO",
        "/dev/zero": "not a FIFO",
        str(workdir / "missing" / ("a" * 64)): "No such file",
        "relative/" + "b" * 64: "No such file",
        "/" + "c" * 5000: "too long",
    }
    client = plugin.client()
    for path, part in cases.items():
        r = client.call("/LogDriver.StartLogging",
                        {"File": path, "Info": make_info("a" * 64, "/x", {"nats-servers": "nats://127.0.0.1:1"})})
        assert r.failed and part in r.err, (path[:80], r)
    assert_serving(plugin)
    # nothing was left open
    assert not plugin.open_fds_to(str(regular)) and not plugin.open_fds_to("/dev/zero")


HOSTILE_TAGS = [
    ("pad of 21 GB", "{{pad .Name 21000000000 0}}", "longer than 65536 bytes"),
    ("json 40 times", "{{.Name" + " | json" * 40 + "}}", "longer than 65536 bytes"),
    ("join of a split with a long separator", '{{join (split .FullID "") "' + "x" * 5000 + '"}}', "longer than"),
    ("many large pads", "{{pad .Name 60000 0}}" * 3, "longer than"),
    ("10,000 nested parentheses", "{{" + "(" * 10_000 + ".Name" + ")" * 10_000 + "}}", "nested too deeply"),
    ("newline after a backslash", '{{"\\\n"}}', "unknown escape"),
]


@pytest.mark.parametrize("case,tag,part", HOSTILE_TAGS, ids=[c[0] for c in HOSTILE_TAGS])
def test_hostile_tag_templates_fail_start_logging_with_a_clear_err(daemon, plugin, case, tag, part):
    """A container's own --log-opt tag reaches the plugin's memory: bounded, and reported."""
    c = daemon.container({"nats-servers": "nats://127.0.0.1:1", "tag": tag})
    r = c.start()
    assert r.failed and part in r.err, (case, r)
    assert "\n" not in r.err and len(r.err) < 2000, r.err[:300]
    assert_serving(plugin)


# ---------------------------------------------------------------------------
# corrupt frames in the FIFO
# ---------------------------------------------------------------------------

def corrupt_count(plugin, c) -> float:
    for labels, value in metric_samples(plugin.socket, "logrelay_container_corrupt_frames_total"):
        if f'container="{c.name}"' in labels:
            return value
    return -1


def test_corrupt_frames_in_the_middle_of_a_stream(daemon, plugin, nats_server, subscriber_factory):
    c = daemon.container({"nats-servers": nats_server.url})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    good: list[Entry] = []

    def lines(prefix: bytes, n: int = 100):
        e = numbered_lines(prefix, n)
        good.extend(e)
        c.writer.q.put(b"".join(x.encode() for x in e))

    lines(b"before")
    # 1. a frame of the right length whose protobuf is invalid (field 0): dropped, stream aligned
    c.writer.q.put(b"\x00\x00\x00\x0a" + b"\x00" * 10)
    lines(b"after-bad-protobuf")
    # 2. a LEN field running past the frame's end
    c.writer.q.put(b"\x00\x00\x00\x04\x1a\x7fab")
    lines(b"after-overrun")
    # 3. an unknown wire type (7)
    c.writer.q.put(b"\x00\x00\x00\x02\x0f\x00")
    lines(b"after-bad-wiretype")
    before = len(good)
    assert sub.wait_for(before), f"{sub.count()} of {before} good lines around bad frames"
    assert wait_until(lambda: corrupt_count(plugin, c) >= 3, 10), metrics_text(plugin.socket)
    assert [e["log"] for e in sub.events()] == [text(e.line) for e in good]
    assert c.stop().status == 200
    assert_serving(plugin)


@pytest.mark.parametrize("prefix", [b"\xff\xff\xff\xff", b"\x00\x10\x00\x01", b"\x7f\xff\xff\xff\x00\x00\x00"],
                         ids=["4 GiB", "1 MiB + 1", "2 GiB plus junk"])
def test_oversized_length_prefix_is_skipped_and_the_stream_resynchronises(
        daemon, plugin, nats_server, subscriber_factory, prefix):
    c = daemon.container({"nats-servers": nats_server.url})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    first = numbered_lines(b"first", 200)
    second = numbered_lines(b"second", 200)
    c.writer.q.put(b"".join(x.encode() for x in first))
    c.writer.q.put(prefix + b"some bytes that are not a frame \x00\x01\x02" * 20)
    c.writer.q.put(b"".join(x.encode() for x in second))
    assert sub.wait_for(400), f"{sub.count()} of 400 lines around an oversized length prefix"
    assert [e["log"] for e in sub.events()] == [text(e.line) for e in first + second]
    assert wait_until(lambda: corrupt_count(plugin, c) >= 1, 10), metrics_text(plugin.socket)
    assert c.stop().status == 200
    assert_serving(plugin)


def test_a_stream_of_pure_garbage_is_drained_not_blocked(daemon, plugin, nats_server):
    """Random bytes into the FIFO: the plugin keeps reading (the writer never blocks), counts
    what it drops, and serves other containers meanwhile."""
    c = daemon.container({"nats-servers": nats_server.url})
    c.start_ok()
    rng = random.Random(7)
    for _ in range(64):
        c.writer.q.put(rng.randbytes(64 * 1024))
    assert c.writer.flush(DELIVERY_TIMEOUT), "the plugin stopped draining a FIFO full of garbage"
    assert corrupt_count(plugin, c) >= 1
    other = daemon.container({"nats-servers": nats_server.url})
    other.start_ok()
    assert other.stop().status == 200
    assert c.stop().status == 200
    assert_serving(plugin)


# ---------------------------------------------------------------------------
# NATS servers that misbehave
# ---------------------------------------------------------------------------

BAD_SERVERS = [
    # (case, behaviour, what the plugin logs)
    ("garbage instead of INFO", hostile.sends_garbage, r"server sent an unknown operation"),
    ("2 MiB INFO line", hostile.sends_huge_info, r"server sent a line longer than 1048576 bytes"),
    ("INFO that is not JSON", hostile.sends_info_not_json, r"server sent an INFO that is not valid JSON"),
    ("INFO with wrong types", hostile.sends_info_wrong_types, r"server sent an INFO that is not valid JSON"),
    ("-ERR storm", hostile.err_storm, r"server refused the connection: Authorization Violation"),
    ("closes mid-handshake", hostile.closes_mid_handshake, r"connection closed by server|reset by peer"),
    ("never answers", hostile.never_answers, r"timed out"),
    ("MSG with a size of 2^63-1", hostile.msg_with_impossible_size, r"server sent a malformed MSG line"),
]


@pytest.mark.parametrize("case,behaviour,logged", BAD_SERVERS, ids=[c[0] for c in BAD_SERVERS])
def test_a_misbehaving_nats_server_is_an_error_for_its_streams_only(
        daemon, plugin, nats_server, subscriber_factory, case, behaviour, logged):
    bad = hostile.FakeNatsServer(behaviour)
    try:
        victim = daemon.container({"nats-servers": bad.url})
        victim.start_ok()   # StartLogging never waits on the network
        victim.log_lines([("stdout", b"to the bad server %d" % i) for i in range(50)])
        healthy = daemon.container({"nats-servers": nats_server.url})
        sub = subscriber_factory(nats_server.url, healthy.short_id)
        healthy.start_ok()
        entries = healthy.log_lines([("stdout", b"healthy %d" % i) for i in range(200)])

        assert wait_until(lambda: re.search(logged, plugin.stderr()) is not None, 30), \
            f"{case}: no {logged!r} in the plugin's log:\n{plugin.stderr()[-3000:]}"
        errors = [lb for lb, _ in metric_samples(plugin.socket, "logrelay_connection_last_error_info")
                  if str(bad.port) in lb]
        assert errors, f"{case}: the error is not in /metrics"
        assert sub.wait_for(len(entries)), f"{case}: {sub.count()} of {len(entries)} lines to the healthy server"
        assert [e["log"] for e in sub.events()] == [text(e.line) for e in entries]
        # the plugin keeps trying (it reconnects with backoff), and keeps draining the FIFO
        assert victim.writer.flush(10)
        t0 = time.monotonic()
        assert victim.stop().status == 200 and time.monotonic() - t0 < PROMPT
        assert healthy.stop().status == 200
        assert_serving(plugin)
    finally:
        bad.stop()


def test_a_server_announcing_a_tiny_max_payload_gets_its_lines_dropped_and_counted(daemon, plugin):
    # No event fits 16 bytes: sending them would only make the server close the connection
    # (a reconnect storm); they are dropped, counted, and the error is reported once.
    bad = hostile.FakeNatsServer(hostile.tiny_max_payload)
    try:
        c = daemon.container({"nats-servers": bad.url})
        c.start_ok()
        c.log_lines([("stdout", b"line %d of a server with max_payload 16" % i) for i in range(20)])
        assert wait_until(lambda: metric(plugin.socket, "logrelay_container_lines_dropped_total", c.name) == 20, 30), \
            metrics_text(plugin.socket)
        assert b"PUB " not in bad.received, bytes(bad.received[:500])
        assert metric(plugin.socket, "logrelay_container_lines_published_total", c.name) == 0
        assert bad.connections == 1, f"{bad.connections} connections: the limit is not a reason to reconnect"
        assert c.stop().status == 200
        assert_serving(plugin)
    finally:
        bad.stop()


# ---------------------------------------------------------------------------
# churn: 300 short-lived streams
# ---------------------------------------------------------------------------

def test_300_short_lived_streams_leak_no_fds_and_no_memory(daemon, plugin, nats_server, subscriber_factory):
    sub = subscriber_factory(nats_server.url, ">")
    pid = plugin.pid
    per_stream = 5
    total, warmup = 300, 30
    sent = 0

    def settle(expected: int):
        assert sub.wait_for(expected), f"{sub.count()} of {expected} lines delivered"
        # every ended stream has let go of its FIFO
        assert wait_until(lambda: not plugin.open_fds_to(str(plugin.fifo_dir)), 10), \
            f"FIFOs still open: {plugin.open_fds_to(str(plugin.fifo_dir))}"
        assert wait_until(lambda: "logrelay_container_lines_received_total{" not in metrics_text(plugin.socket), 10), \
            "ended streams still listed in /metrics"

    readings = []
    for i in range(total):
        c = daemon.container({"nats-servers": nats_server.url})
        c.start_ok()
        c.send_entries([Entry("stdout", b"churn %03d %d" % (i, k), next_time_ns()) for k in range(per_stream)])
        sent += per_stream
        assert c.stop().status == 200
        if i + 1 in (warmup, total):
            settle(sent)
            readings.append((hostile.fd_count(pid), hostile.rss_kib(pid), hostile.thread_count(pid)))
    (fd0, rss0, th0), (fd1, rss1, th1) = readings
    print(f"\nafter {warmup} streams: {fd0} fds, {rss0} KiB RSS, {th0} threads; "
          f"after {total}: {fd1} fds, {rss1} KiB RSS, {th1} threads")
    assert fd1 <= fd0 + 2, f"fds grew from {fd0} to {fd1} over {total - warmup} streams"
    assert th1 <= th0 + 2, f"threads grew from {th0} to {th1}"
    assert rss1 <= rss0 + max(4096, rss0 // 5), f"RSS grew from {rss0} KiB to {rss1} KiB"
    assert sub.count() == sent
    assert_serving(plugin)
