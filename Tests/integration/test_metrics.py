"""Metrics: METRICS_ADDRESS serves over TCP what the plugin socket serves at GET /metrics, in a
format a strict Prometheus text parser accepts (Tests/support/promtext.py), with HELP and TYPE
for every family, per-container and per-connection series with the documented labels, and
process metrics that agree with /proc."""

import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import (DELIVERY_TIMEOUT, Entry, cpu_seconds, fd_count, free_port, metrics_text, next_time_ns,
                     rss_kib, thread_count, wait_until)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
import promtext  # noqa: E402

CONTAINER_FAMILIES = [
    "logrelay_container_lines_received_total", "logrelay_container_bytes_received_total",
    "logrelay_container_lines_published_total", "logrelay_container_bytes_published_total",
    "logrelay_container_lines_dropped_total", "logrelay_container_bytes_dropped_total",
    "logrelay_container_lines_rejected_total", "logrelay_container_bytes_rejected_total",
    "logrelay_container_lines_resent_total", "logrelay_container_buffer_bytes",
    "logrelay_container_buffer_lines", "logrelay_container_buffer_limit_bytes",
    "logrelay_container_corrupt_frames_total",
]
CONNECTION_FAMILIES = [
    "logrelay_connection_up", "logrelay_connection_state", "logrelay_connection_connects_total",
    "logrelay_connection_reconnects_total", "logrelay_connection_lines_resent_total",
    "logrelay_connection_streams", "logrelay_connection_server_info", "logrelay_connection_last_error_info",
]
PROCESS_FAMILIES = [
    "logrelay_build_info", "logrelay_containers", "logrelay_connections", "logrelay_uptime_seconds",
    "process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
    "process_open_fds", "process_max_fds", "process_threads", "process_start_time_seconds",
]


def http(port: int, path: str = "/metrics", method: str = "GET") -> tuple[int, str, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def without_process(text: str) -> str:
    """The exposition minus what changes from one scrape to the next by itself."""
    moving = ("process_", "logrelay_uptime_seconds")
    return "\n".join(l for l in text.splitlines() if not l.startswith(moving) and
                     not any(l.startswith(f"# {k} {m}") for k in ("HELP", "TYPE") for m in moving))


@pytest.fixture
def metrics_plugin(plugin_factory):
    port = free_port()
    p = plugin_factory(extra_env={"METRICS_ADDRESS": f"127.0.0.1:{port}"})
    p.metrics_port = port
    return p


def test_metrics_address_serves_the_socket_text_per_container(metrics_plugin, daemon_for, nats_server,
                                                              subscriber_factory):
    plugin = metrics_plugin
    assert f"serving metrics on http://127.0.0.1:{plugin.metrics_port}/metrics" in plugin.stdout()
    daemon = daemon_for(plugin)
    # A name with every character a label value must escape.
    names = ['/web-1', '/we"ird\\name']
    cs = [daemon.container({"nats-servers": nats_server.url}, name=n) for n in names]
    subs = [subscriber_factory(nats_server.url, c.short_id) for c in cs]
    for k, c in enumerate(cs):
        c.start_ok()
        c.send_entries([Entry("stdout", b"line %d" % i, next_time_ns()) for i in range(10 * (k + 1))])
    for k, (c, s) in enumerate(zip(cs, subs)):
        assert s.wait_for(10 * (k + 1)), f"{s.count()} events"

    def scrape():
        status, ctype, body = http(plugin.metrics_port)
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, ctype)
        return promtext.parse(body)

    def published_all():
        f = scrape()["logrelay_container_lines_published_total"]
        return [f.value(container=c.name) for c in cs] == [10, 20]
    assert wait_until(published_all, 10), metrics_text(plugin.socket)

    # The same text on both listeners (minus what moves by itself between two scrapes).
    _, _, tcp = http(plugin.metrics_port)
    assert without_process(tcp) == without_process(metrics_text(plugin.socket))

    fams = scrape()
    for name in CONTAINER_FAMILIES + CONNECTION_FAMILIES + PROCESS_FAMILIES:
        assert name in fams, f"{name} missing from /metrics"
    for name in CONTAINER_FAMILIES:
        for labels, _ in fams[name].samples:
            assert set(labels) == {"container", "container_id", "driver"}, (name, labels)
    for k, c in enumerate(cs):
        n = 10 * (k + 1)
        bytes_ = sum(len(b"line %d" % i) for i in range(n))
        want = {"container": c.name, "container_id": c.short_id, "driver": "nats"}
        assert fams["logrelay_container_lines_received_total"].value(**want) == n
        assert fams["logrelay_container_bytes_received_total"].value(**want) == bytes_
        assert fams["logrelay_container_lines_published_total"].value(**want) == n
        assert fams["logrelay_container_bytes_published_total"].value(**want) == bytes_
        assert fams["logrelay_container_lines_dropped_total"].value(**want) == 0
        assert fams["logrelay_container_buffer_bytes"].value(**want) == 0
        assert fams["logrelay_container_buffer_limit_bytes"].value(**want) == 8 << 20

    ups = fams["logrelay_connection_up"].samples
    assert len(ups) == 1 and ups[0][1] == 1, ups
    conn = ups[0][0]
    assert set(conn) == {"driver", "connection"} and conn["driver"] == "nats"
    assert str(nats_server.port) in conn["connection"]
    states = {lb["state"]: v for lb, v in fams["logrelay_connection_state"].samples}
    assert states == {"idle": 0, "connecting": 0, "connected": 1, "disconnected": 0, "closed": 0}
    assert fams["logrelay_connection_streams"].value(**conn) == 2
    assert fams["logrelay_connection_connects_total"].value(**conn) == 1
    assert fams["logrelay_connection_reconnects_total"].value(**conn) == 0
    assert fams["logrelay_containers"].value() == 2

    # Process metrics agree with /proc.
    pid = plugin.pid
    assert fams["logrelay_build_info"].samples[0][0]["version"]
    assert abs(fams["process_threads"].value() - thread_count(pid)) <= 2
    assert abs(fams["process_open_fds"].value() - fd_count(pid)) <= 4
    assert abs(fams["process_resident_memory_bytes"].value() / 1024 - rss_kib(pid)) < 4096
    assert 0 <= fams["process_cpu_seconds_total"].value() <= cpu_seconds(pid) + 0.5
    start = fams["process_start_time_seconds"].value()
    assert abs(start - (time.time() - fams["logrelay_uptime_seconds"].value())) < 3
    assert time.time() - 600 < start <= time.time()
    assert fams["process_max_fds"].value() >= fams["process_open_fds"].value()

    # Only GET /metrics there.
    assert http(plugin.metrics_port, "/")[0] == 404
    assert http(plugin.metrics_port, "/LogDriver.StartLogging", "POST")[0] == 404
    assert http(plugin.metrics_port, "/metrics", "POST")[0] == 405

    # A stopped container's series go away with its stream.
    cs[0].stop()
    assert wait_until(lambda: scrape()["logrelay_container_lines_received_total"].value(container=cs[0].name) is None, 10)
    cs[1].stop()


def test_connection_errors_show_as_info_and_state(metrics_plugin, daemon_for):
    plugin = metrics_plugin
    daemon = daemon_for(plugin)
    dead = free_port()
    c = daemon.container({"nats-servers": f"nats://127.0.0.1:{dead}"}).start_ok()
    c.send_entries([Entry("stdout", b"nowhere", next_time_ns())])

    def failing():
        f = promtext.parse(http(plugin.metrics_port)[2])
        errs = f["logrelay_connection_last_error_info"].samples
        down = sum(v for lb, v in f["logrelay_connection_state"].samples
                   if lb["state"] in ("connecting", "disconnected"))
        return bool(errs) and down == 1 and f["logrelay_connection_up"].samples[0][1] == 0 \
            and f["logrelay_container_buffer_lines"].value(container=c.name) == 1
    assert wait_until(failing, 15), http(plugin.metrics_port)[2]
    f = promtext.parse(http(plugin.metrics_port)[2])
    (labels, _), = f["logrelay_connection_last_error_info"].samples
    assert str(dead) in labels["error"] and len(labels["error"]) <= 200, labels
    # the line and its few bytes of framing in the buffer
    assert len(b"nowhere") < f["logrelay_container_buffer_bytes"].value(container=c.name) <= len(b"nowhere") + 32


@pytest.mark.parametrize("address,why", [
    ("127.0.0.1", "needs a port"),
    ("localhost:9464", "IP address"),
    ("127.0.0.1:http", "port must be a number"),
])
def test_bad_metrics_address_stops_the_plugin_with_a_message(workdir, address, why):
    from helpers import logrelay_binary
    import subprocess
    env = dict(os.environ, METRICS_ADDRESS=address)
    r = subprocess.run([logrelay_binary(), "--socket", str(workdir / "s.sock"), "--state-dir", str(workdir)],
                       env=env, capture_output=True, timeout=20)
    assert r.returncode == 1, (r.returncode, r.stderr)
    err = r.stderr.decode()
    assert "METRICS_ADDRESS" in err and why in err, err


def test_metrics_port_in_use_is_reported(workdir):
    from helpers import logrelay_binary
    import subprocess
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        env = dict(os.environ, METRICS_ADDRESS=f"127.0.0.1:{port}")
        r = subprocess.run([logrelay_binary(), "--socket", str(workdir / "s.sock"), "--state-dir", str(workdir)],
                           env=env, capture_output=True, timeout=20)
    finally:
        s.close()
    assert r.returncode == 1
    assert "Address already in use" in r.stderr.decode(), r.stderr
