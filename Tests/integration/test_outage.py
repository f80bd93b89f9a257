"""Outages of a real nats-server, with a JetStream stream (file storage) as the witness.

A subscriber cannot see what a restarted server received before the subscriber got back,
so these tests let the server itself keep every message: a stream with file storage on the
container's subject, created with the wire notes' `$JS.API.STREAM.CREATE` request (§A9). It
survives the server's SIGKILL and restart; afterwards every stored `log` value is read back
and counted. Re-sent events may be stored twice (at-least-once): completeness is counted on
unique lines, and the order of first occurrence must be the order written.
"""

import fcntl
import os
import signal
import threading
import time

import pytest

from helpers import (DELIVERY_TIMEOUT, PROMPT, JetStream, assert_accounting, first_occurrences, metric,
                     numbered_lines, paced_send, wait_until)

STREAM = "LOGS"


def _js_server(nats_factory, workdir, name="js"):
    store = workdir / f"{name}-store"
    store.mkdir(exist_ok=True)
    return nats_factory(extra_config=f'jetstream {{\n  store_dir: "{store}"\n  max_memory_store: 64MB\n'
                                     f'  max_file_store: 2GB\n}}\n', monitor=True, name=name)


def _stored_logs(server, expect_at_least: int) -> list[str]:
    js = JetStream(server.url)
    assert wait_until(lambda: js.messages(STREAM) >= expect_at_least, DELIVERY_TIMEOUT, 0.5), \
        f"the stream holds {js.messages(STREAM)} messages, expected at least {expect_at_least}"
    import json
    return [json.loads(d)["log"] for d in js.read_all(STREAM)]


def _settled(plugin, c):
    """Every line received by the plugin is either confirmed by the server or counted as dropped,
    and nothing is left in its buffer."""
    def ok():
        rec = metric(plugin.socket, "logrelay_container_lines_received_total", c.name) or 0
        pub = metric(plugin.socket, "logrelay_container_lines_published_total", c.name) or 0
        drop = metric(plugin.socket, "logrelay_container_lines_dropped_total", c.name) or 0
        buf = metric(plugin.socket, "logrelay_container_buffer_bytes", c.name) or 0
        return rec == len(c.sent) and pub + drop >= rec and buf == 0
    return ok


def _counters(plugin, c):
    return {k: metric(plugin.socket, f"logrelay_container_{k}", c.name) for k in
            ("lines_received_total", "lines_published_total", "lines_dropped_total",
             "lines_resent_total", "buffer_bytes")}


def test_sigkill_and_restart_of_the_only_server_while_200k_lines_flow_loses_nothing(
        daemon, plugin, nats_factory, workdir):
    server = _js_server(nats_factory, workdir)
    c = daemon.container({"nats-servers": server.url, "buffer-size": "128m"})
    JetStream(server.url).create_stream(STREAM, [c.short_id], storage="file")
    c.start_ok()
    assert wait_until(lambda: "logrelay" in server.client_names(), 15), "the plugin never connected"

    n = 200_000
    entries = numbered_lines(b"sigkill", n)
    outage: dict = {}

    def kill_and_restart():
        outage["published_at_kill"] = metric(plugin.socket, "logrelay_container_lines_published_total", c.name)
        server.kill(signal.SIGKILL)
        time.sleep(1.5)
        try:
            server.start()
        except BaseException as e:  # noqa: BLE001 — reported below
            outage["error"] = e
        outage["restarted"] = True

    killer = threading.Thread(target=kill_and_restart, daemon=True)

    def on_batch(queued):
        if queued >= 50_000 and not killer.is_alive() and "published_at_kill" not in outage:
            killer.start()

    paced_send(c, entries, per_batch=500, interval=0.01, on_batch=on_batch)
    killer.join(30)
    assert outage.get("restarted") and "error" not in outage, f"server restart failed: {outage}"
    assert 0 < (outage["published_at_kill"] or 0) < n, f"the kill was not mid-stream: {outage}"
    assert c.writer.flush(30), "the plugin stopped draining the FIFO during the outage"

    assert wait_until(_settled(plugin, c), DELIVERY_TIMEOUT + 30, 0.5), \
        f"the plugin did not deliver its buffer after the restart: {_counters(plugin, c)}"
    counters = _counters(plugin, c)
    assert counters["lines_dropped_total"] in (0, None), f"lines were dropped: {counters}"
    assert counters["lines_published_total"] == n, counters

    print(f"plugin counters {counters}; published when the server was killed: {outage['published_at_kill']}")
    logs = _stored_logs(server, n)
    expected = [e.line.decode() for e in entries]
    missing = set(expected) - set(logs)
    assert not missing, (f"{len(missing)} of {n} lines are not in the stream after SIGKILL + restart "
                         f"(first missing: {sorted(missing)[:5]}; plugin counters {counters}; "
                         f"published when the server was killed: {outage['published_at_kill']})")
    assert set(logs) == set(expected), "the stream holds lines that were never written"
    assert first_occurrences(logs) == expected, "lines stored out of order"
    assert len(logs) - n <= (counters["lines_resent_total"] or 0), \
        f"{len(logs) - n} duplicates stored, more than the {counters['events_resent_total']} re-sent events"
    assert plugin.alive()
    t0 = time.monotonic()
    assert not c.stop().failed
    assert time.monotonic() - t0 < PROMPT


def test_server_down_when_the_container_starts_all_lines_arrive_once_it_comes_up(
        daemon, plugin, nats_factory, workdir):
    server = _js_server(nats_factory, workdir)
    c = daemon.container({"nats-servers": server.url})
    JetStream(server.url).create_stream(STREAM, [c.short_id], storage="file")
    server.stop()                                  # the stream stays in the store dir

    t0 = time.monotonic()
    r = c.start()
    assert not r.failed, f"a server that is down is not an error for the container: {r!r}"
    assert time.monotonic() - t0 < PROMPT, "StartLogging waited on the network"
    n = 20_000
    entries = numbered_lines(b"late", n)
    paced_send(c, entries, per_batch=1000, interval=0.01)
    assert c.writer.flush(10), "the plugin does not drain the FIFO while the server is down"
    time.sleep(3)
    assert metric(plugin.socket, "logrelay_container_lines_published_total", c.name) in (0, None)

    server.start()
    assert wait_until(_settled(plugin, c), DELIVERY_TIMEOUT + 30, 0.5), \
        f"the buffered lines were not delivered once the server came up: {_counters(plugin, c)}"
    counters = _counters(plugin, c)
    assert counters["lines_published_total"] == n and counters["lines_dropped_total"] in (0, None), counters
    logs = _stored_logs(server, n)
    assert first_occurrences(logs) == [e.line.decode() for e in entries], \
        "lines written while the server was down are missing or out of order"
    assert_accounting(plugin.socket, c.name)
    assert not c.stop().failed
    assert plugin.alive()


def test_sigterm_while_the_server_is_down_spools_and_every_line_arrives_after_the_restart(
        daemon, plugin, nats_factory, workdir):
    server = _js_server(nats_factory, workdir)
    c = daemon.container({"nats-servers": server.url})
    JetStream(server.url).create_stream(STREAM, [c.short_id], storage="file")
    c.start_ok()
    assert wait_until(lambda: "logrelay" in server.client_names(), 15), "the plugin never connected"
    server.stop()
    before = numbered_lines(b"before sigterm", 5000)
    c.send_entries(before)
    assert c.writer.flush(10)
    assert wait_until(lambda: metric(plugin.socket, "logrelay_container_lines_received_total", c.name) == 5000, 10)
    assert_accounting(plugin.socket, c.name)

    os.kill(plugin.pid, signal.SIGTERM)
    assert plugin.proc.wait(timeout=15) == 0
    assert "spooled 5000 undelivered line(s)" in plugin.output(), plugin.output()[-2000:]
    # The daemon keeps writing meanwhile; the restarted plugin re-attaches (state dir) and
    # sends the spool first, then what is in the pipe.
    after = numbered_lines(b"after restart", 1000)
    c.send_entries(after)
    server.start()
    plugin.stop()
    os.unlink(plugin.socket)
    plugin.start()
    daemon.client.close()  # the old connection died with the process
    logs = _stored_logs(server, 6000)
    assert first_occurrences(logs) == [e.line.decode() for e in before + after], \
        "spooled lines are missing, duplicated beyond the stream's window, or out of order"
    assert wait_until(lambda: assert_accounting(plugin.socket, c.name)["published"] == 6000, 10), \
        assert_accounting(plugin.socket, c.name)
    assert not c.stop().failed


F_GETPIPE_SZ = 1032


@pytest.mark.parametrize("policy", ["drop-oldest", "drop-newest"])
def test_buffer_overflow_dropped_count_in_metrics_equals_the_lines_missing(
        policy, daemon, plugin, nats_factory, workdir):
    server = _js_server(nats_factory, workdir)
    c = daemon.container({"nats-servers": server.url, "buffer-size": "64k", "buffer-full": policy})
    JetStream(server.url).create_stream(STREAM, [c.short_id], storage="file")
    c.start_ok()

    # phase 1: the server is up and confirms everything
    first = numbered_lines(b"before", 1000)
    paced_send(c, first, per_batch=1000)
    assert wait_until(lambda: metric(plugin.socket, "logrelay_container_lines_published_total", c.name) == len(first),
                      DELIVERY_TIMEOUT), f"phase 1 not confirmed: {_counters(plugin, c)}"

    # phase 2: the server is dead; far more than the pipe plus the 64k buffer is written
    server.kill(signal.SIGKILL)
    pipe = fcntl.fcntl(c.writer.fd, F_GETPIPE_SZ)
    n2 = 3 * (pipe + 64 * 1024) // 100 + 2000
    second = [e for e in numbered_lines(b"during-outage-" + b"x" * 60, n2)]
    paced_send(c, second, per_batch=2000, interval=0.005)
    assert c.writer.flush(30), f"{policy}: the FIFO was not drained while the server is dead"
    assert wait_until(lambda: (metric(plugin.socket, "logrelay_container_lines_dropped_total", c.name) or 0) > 0, 10), \
        f"{policy}: nothing dropped with a 64k buffer and {n2} lines: {_counters(plugin, c)}"
    assert wait_until(lambda: metric(plugin.socket, "logrelay_container_lines_received_total", c.name) == len(first) + n2,
                      10), f"{policy}: the plugin did not read all {len(first) + n2} lines: {_counters(plugin, c)}"

    # phase 3: the server comes back with the stream; what was kept is delivered
    server.start()
    assert wait_until(_settled(plugin, c), DELIVERY_TIMEOUT, 0.5), \
        f"{policy}: the buffer was not delivered after the restart: {_counters(plugin, c)}"
    counters = _counters(plugin, c)
    dropped = int(counters["lines_dropped_total"])
    sent = [e.line.decode() for e in first + second]
    logs = _stored_logs(server, len(sent) - dropped)
    stored = set(logs)
    assert stored <= set(sent), "the stream holds lines that were never written"
    missing = [s for s in sent if s not in stored]
    assert len(missing) == dropped, (
        f"{policy}: {len(missing)} lines are missing from the stream but /metrics counts {dropped} "
        f"dropped ({counters})")
    assert counters["lines_published_total"] + dropped == len(sent), counters
    assert not any(m.startswith("before") for m in missing), "lines confirmed before the outage were lost"
    kept = first_occurrences(logs)
    assert kept == [s for s in sent if s in stored], f"{policy}: kept lines out of order"
    if policy == "drop-oldest":
        assert sent[-1] in stored, "drop-oldest lost the newest line"
        assert missing == sent[len(first):len(first) + len(missing)], \
            "drop-oldest must drop the oldest lines of the outage (a contiguous run)"
    else:
        assert second[0].line.decode() in stored, "drop-newest lost the oldest line of the outage"
        assert missing == sent[len(sent) - len(missing):], "drop-newest must drop the newest lines"
    assert not c.stop().failed
    assert plugin.alive()
