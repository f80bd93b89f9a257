"""The daemon-facing HTTP/1.1 server on the unix socket."""

import json
import os
import socket
import threading
import time

from helpers import PROMPT, DaemonClient, read_http_response, unix_accepts


def _raw(plugin, data: bytes, timeout=PROMPT):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(plugin.socket)
    try:
        s.sendall(data)
        return read_http_response(s, bytearray())
    finally:
        s.close()


def test_capabilities_and_activate_bodies(plugin):
    client = plugin.client()
    r = client.call("/LogDriver.Capabilities")
    assert r.status == 200 and r.json() == {"Cap": {"ReadLogs": False}}, r
    r = client.call("/Plugin.Activate")
    assert r.status == 200 and r.json() == {"Implements": ["LogDriver"]}, r
    # moby ≥ 20.10.26 sends a dummy Host
    r = plugin.client(host="plugin.moby.localhost").call("/LogDriver.Capabilities")
    assert r.status == 200 and r.json() == {"Cap": {"ReadLogs": False}}, r


def test_keep_alive_serves_many_requests_on_one_connection(daemon):
    client = daemon.client
    for _ in range(3):
        assert client.call("/LogDriver.Capabilities").status == 200
        assert client.call("/LogDriver.StopLogging", {"File": "/run/docker/logging/" + "1" * 64}).status == 200
    c = daemon.container({"nats-servers": "nats://127.0.0.1:1"})
    c.start_ok()
    assert client.call("/LogDriver.Capabilities").status == 200
    assert not c.stop().failed
    assert client.call("/Plugin.Activate").status == 200
    assert client.connects == 1, f"the plugin closed the keep-alive connection ({client.connects} connects)"
    # an idle keep-alive connection is not closed on a timer
    time.sleep(3)
    assert client.call("/LogDriver.Capabilities").status == 200
    assert client.connects == 1, "the plugin closed an idle keep-alive connection"


def test_bare_connect_and_close_is_harmless(plugin):
    for _ in range(5):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(plugin.socket)
        s.close()
    time.sleep(0.2)
    assert plugin.alive()
    assert plugin.client().call("/LogDriver.Capabilities").status == 200


def test_idle_and_half_sent_connections_do_not_block_others(plugin):
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(plugin.socket)
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    half.connect(plugin.socket)
    half.sendall(b"POST /LogDriver.StartLogging HTTP/1.1\r\nHost: \r\nContent-Length: 500\r\n\r\n{\"Fi")
    try:
        t0 = time.monotonic()
        r = plugin.client().call("/LogDriver.Capabilities")
        assert r.status == 200
        assert time.monotonic() - t0 < PROMPT
    finally:
        idle.close()
        half.close()
    time.sleep(0.2)
    assert plugin.alive()


def test_request_arriving_in_small_pieces(plugin):
    body = b'{"File":"/run/docker/logging/' + b"2" * 64 + b'"}\n'
    req = DaemonClient.build_request("/LogDriver.StopLogging", body)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(PROMPT)
    s.connect(plugin.socket)
    try:
        for i in range(0, len(req), 7):
            s.sendall(req[i:i + 7])
            time.sleep(0.002)
        r = read_http_response(s, bytearray())
        assert r.status == 200 and not r.failed, r
    finally:
        s.close()


def test_malformed_requests_get_4xx_json(plugin):
    cases = [
        b"THIS IS NOT HTTP\r\n\r\n",
        b"POST /LogDriver.StartLogging HTTP/1.1\r\nHost: \r\nContent-Length: abc\r\n\r\n",
        b"POST /LogDriver.StartLogging HTTP/1.1\r\nHost: \r\nContent-Length: -5\r\n\r\n",
        b"POST /LogDriver.StartLogging HTTP/1.1\r\nHost \r\n\r\n",
    ]
    for raw in cases:
        r = _raw(plugin, raw)
        assert 400 <= r.status < 500, (raw, r)
        assert r.json().get("Err"), (raw, r)
    assert plugin.alive()
    assert plugin.client().call("/LogDriver.Capabilities").status == 200


def test_start_logging_with_empty_or_invalid_body_is_400_with_err(plugin):
    client = plugin.client()
    for body in (b"", b"{", b"[]", b'{"File":42}', b'{"Info":{}}', b"\xff\xfe"):
        r = client.call("/LogDriver.StartLogging", body)
        assert r.failed, (body, r)
        assert 400 <= r.status < 500, (body, r)
        assert r.err, (body, r)
        client = plugin.client()  # the server may close after a 4xx
    assert plugin.alive()


def test_start_logging_for_a_missing_fifo_fails(plugin):
    from helpers import make_info
    r = plugin.client().call("/LogDriver.StartLogging",
                             {"File": str(plugin.fifo_dir / ("9" * 64)),
                              "Info": make_info("a" * 64, "/x", {"nats-servers": "nats://127.0.0.1:1"})})
    assert r.failed and r.err, r


def test_unknown_path_is_404_json(plugin):
    client = plugin.client()
    r = client.call("/LogDriver.NoSuchMethod", b"{}\n")
    assert r.status == 404, r
    json.loads(r.body)
    r = _raw(plugin, b"GET /nope HTTP/1.1\r\nHost: \r\n\r\n")
    assert r.status == 404, r
    json.loads(r.body)


def test_large_info_body(daemon, nats_server):
    labels = {f"com.example.label.{i}": "v" * 50 for i in range(1500)}
    env = [f"VAR_{i}=" + "e" * 50 for i in range(1500)]
    c = daemon.container({"nats-servers": nats_server.url, "labels-regex": "^com"},
                         labels=labels, env=env)
    r = c.start()
    assert not r.failed, r
    assert not c.stop().failed


def test_json_escapes_in_the_body_are_decoded(daemon, nats_server, subscriber_factory):
    """Hand-written escapes incl. a surrogate pair: the parser must handle all of JSON."""
    c = daemon.container({"nats-servers": nats_server.url, "labels": "k"},
                         name="/esc", labels={"k": "x"})
    body = json.dumps({"File": c.file, "Info": c.info}, ensure_ascii=True, sort_keys=True)
    body = body.replace('"k": "x"', '"k": "\\ud83d\\ude80 \\u00e9 \\"q\\" \\/ \\t\\u0000"')
    sub = subscriber_factory(nats_server.url, c.short_id)
    from helpers import FifoWriter
    c.writer = FifoWriter(c.file)
    r = c.client.call("/LogDriver.StartLogging", body.encode() + b"\n")
    assert not r.failed, r
    c.started = True
    c.log_lines([("stdout", b"hi")])
    assert sub.wait_for(1)
    assert sub.events()[0].get("attrs") == {"k": "\U0001F680 \u00e9 \"q\" / \t\u0000"}
    c.stop()


def test_concurrent_connections(plugin):
    errors = []

    def worker():
        try:
            client = plugin.client()
            for _ in range(20):
                r = client.call("/LogDriver.Capabilities")
                assert r.status == 200 and r.json() == {"Cap": {"ReadLogs": False}}
            client.close()
        except BaseException as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors


def test_socket_is_a_unix_socket_and_serves(plugin):
    import stat
    assert stat.S_ISSOCK(os.stat(plugin.socket).st_mode)
    assert unix_accepts(plugin.socket)
