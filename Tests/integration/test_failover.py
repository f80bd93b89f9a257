"""Server pool failover, a server that comes up late, and an outage in the middle."""

import time

from helpers import DELIVERY_TIMEOUT, PROMPT, TcpProxy, assert_accounting, free_port, metric, text, wait_until


def test_dead_first_server_fails_over_to_the_live_one(daemon, nats_server, subscriber_factory):
    dead = free_port()
    c = daemon.container({"nats-servers": f"nats://127.0.0.1:{dead},{nats_server.url}"})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    entries = c.log_lines([("stdout", b"failover %d" % i) for i in range(5000)])
    assert sub.wait_for(len(entries)), f"{sub.count()} of {len(entries)} arrived at the live server"
    sub.wait_quiet(1.0)
    assert [e["log"] for e in sub.events()] == [text(e.line) for e in entries]
    assert_accounting(daemon.plugin.socket, c.name)
    c.stop()


def test_server_down_at_start_logging_then_started_on_that_port(daemon, plugin, nats_factory,
                                                                subscriber_factory):
    port = free_port()
    c = daemon.container({"nats-servers": f"nats://127.0.0.1:{port}"})
    t0 = time.monotonic()
    r = c.start()
    took = time.monotonic() - t0
    assert not r.failed, f"a sink that is down is not an error for the container: {r!r}"
    assert took < PROMPT, f"StartLogging took {took:.1f}s with the server down"

    time.sleep(2)
    server = nats_factory(port=port)
    sub = subscriber_factory(server.url, c.short_id)
    entries = c.log_lines([("stdout", b"late server %d" % i) for i in range(2000)])
    assert sub.wait_for(len(entries)), \
        f"{sub.count()} of {len(entries)} lines written after the server came up arrived"
    sub.wait_quiet(1.0)
    assert [e["log"] for e in sub.events()] == [text(e.line) for e in entries]
    assert_accounting(daemon.plugin.socket, c.name)
    c.stop()


def test_lines_written_while_no_server_is_up_are_buffered_and_delivered(daemon, plugin, nats_server,
                                                                        subscriber_factory):
    """Outage from the start: the plugin's port is a proxy that is down; the subscriber is
    already on the real server, so nothing the plugin sends after reconnect can be missed."""
    port = free_port()
    proxy = TcpProxy(port, nats_server.port)
    sub = subscriber_factory(nats_server.url, ">")
    c = daemon.container({"nats-servers": f"nats://127.0.0.1:{port}"})
    c.start_ok()
    try:
        entries = c.log_lines([("stdout", b"during outage %d" % i) for i in range(3000)])
        assert c.writer.flush(10), "the plugin does not drain the FIFO while the sink is down"
        time.sleep(2)
        proxy.up()
        assert sub.wait_for(len(entries), timeout=DELIVERY_TIMEOUT + 30), \
            f"{sub.count()} of {len(entries)} lines written during the outage arrived"
        sub.wait_quiet(1.0)
        assert [e["log"] for e in sub.events()] == [text(e.line) for e in entries]
        assert_accounting(daemon.plugin.socket, c.name)
        c.stop()
    finally:
        proxy.down()


def test_outage_in_the_middle_buffered_lines_are_sent_after_reconnect_in_order(
        daemon, plugin, nats_server, subscriber_factory):
    port = free_port()
    proxy = TcpProxy(port, nats_server.port)
    proxy.up()
    sub = subscriber_factory(nats_server.url, ">")
    c = daemon.container({"nats-servers": f"nats://127.0.0.1:{port}"})
    c.start_ok()
    try:
        first = c.log_lines([("stdout", b"before outage %d" % i) for i in range(1000)])
        assert sub.wait_for(len(first)), f"{sub.count()} of {len(first)} arrived before the outage"
        proxy.down()
        time.sleep(1)  # the plugin sees EOF on its connection
        second = c.log_lines([("stdout", b"during outage %d" % i) for i in range(2000)])
        assert c.writer.flush(10)
        time.sleep(1)
        proxy = TcpProxy(port, nats_server.port)
        proxy.up()
        third = c.log_lines([("stdout", b"after outage %d" % i) for i in range(1000)])
        total = len(first) + len(second) + len(third)
        assert sub.wait_for(total, timeout=DELIVERY_TIMEOUT + 30), \
            f"{sub.count()} of {total} arrived (after-outage lines: " \
            f"{sum(1 for m in sub.snapshot() if b'after outage' in m.data)})"
        sub.wait_quiet(1.0)
        assert [e["log"] for e in sub.events()] == [text(e.line) for e in first + second + third]
        assert_accounting(daemon.plugin.socket, c.name)
        c.stop()
    finally:
        proxy.down()


# ---------------------------------------------------------------------------
# buffer-full policies while the sink is unreachable
# ---------------------------------------------------------------------------

def _outage_setup(daemon, nats_server, subscriber_factory, policy):
    port = free_port()
    proxy = TcpProxy(port, nats_server.port)
    sub = subscriber_factory(nats_server.url, ">")
    c = daemon.container({"nats-servers": f"nats://127.0.0.1:{port}", "buffer-size": "64k",
                          "buffer-full": policy})
    c.start_ok()
    return proxy, sub, c


F_GETPIPE_SZ = 1032


def _lines_beyond_pipe(c, tag: bytes):
    """Enough 100-byte lines to exceed the pipe (the plugin may enlarge it) plus the
    64k buffer twice over, so that the FIFO can only be drained by reading it."""
    import fcntl
    pipe = fcntl.fcntl(c.writer.fd, F_GETPIPE_SZ)
    n = 2 * (pipe + 64 * 1024) // 100 + 1000
    return [("stdout", tag + b" %06d " % i + b"z" * (100 - len(tag) - 8)) for i in range(n)]


def _is_subsequence(got, sent):
    it = iter(sent)
    return all(any(g == s for s in it) for g in got)


def _drops_counted(plugin, c, delivered):
    """Every line is delivered or counted as dropped."""
    def ok():
        d = metric(plugin.socket, "logrelay_container_lines_dropped_total", c.name)
        return d is not None and d + delivered == len(c.sent)
    assert wait_until(ok, 10), (f"delivered {delivered} + dropped "
                                f"{metric(plugin.socket, 'logrelay_container_lines_dropped_total', c.name)} "
                                f"!= {len(c.sent)} lines")


def test_drop_oldest_keeps_draining_the_fifo_and_delivers_the_newest(daemon, plugin, nats_server,
                                                                     subscriber_factory):
    proxy, sub, c = _outage_setup(daemon, nats_server, subscriber_factory, "drop-oldest")
    try:
        c.log_lines(_lines_beyond_pipe(c, b"drop-oldest"))
        assert c.writer.flush(10), "the FIFO was not drained while the sink is down"
        assert wait_until(lambda: (metric(plugin.socket, "logrelay_container_lines_dropped_total", c.name) or 0) > 0, 10), \
            "no drops counted in /metrics with a 64k buffer and 300 KB of lines"
        proxy.up()
        last = text(c.sent[-1].line)
        assert wait_until(lambda: any(m.event()["log"] == last for m in sub.snapshot()), DELIVERY_TIMEOUT), \
            "the newest line never arrived after the sink came back"
        sub.wait_quiet(1.0)
        got = [e["log"] for e in sub.events()]
        assert 0 < len(got) < len(c.sent)
        assert _is_subsequence(got, [text(e.line) for e in c.sent]), "delivered lines out of order or unknown"
        _drops_counted(plugin, c, len(got))
        assert_accounting(daemon.plugin.socket, c.name)
        c.stop()
    finally:
        proxy.down()


def test_drop_newest_keeps_the_oldest(daemon, plugin, nats_server, subscriber_factory):
    proxy, sub, c = _outage_setup(daemon, nats_server, subscriber_factory, "drop-newest")
    try:
        c.log_lines(_lines_beyond_pipe(c, b"drop-newest"))
        assert c.writer.flush(10), "the FIFO was not drained while the sink is down"
        assert wait_until(lambda: (metric(plugin.socket, "logrelay_container_lines_dropped_total", c.name) or 0) > 0, 10)
        proxy.up()
        first = text(c.sent[0].line)
        assert wait_until(lambda: any(m.event()["log"] == first for m in sub.snapshot()), DELIVERY_TIMEOUT), \
            "the oldest line never arrived after the sink came back"
        sub.wait_quiet(1.0)
        got = [e["log"] for e in sub.events()]
        assert 0 < len(got) < len(c.sent)
        assert got == [text(e.line) for e in c.sent[:len(got)]], "drop-newest must deliver a prefix"
        _drops_counted(plugin, c, len(got))
        assert_accounting(daemon.plugin.socket, c.name)
        c.stop()
    finally:
        proxy.down()


def test_block_pushes_back_into_the_fifo_and_loses_nothing(daemon, plugin, nats_server, subscriber_factory):
    proxy, sub, c = _outage_setup(daemon, nats_server, subscriber_factory, "block")
    try:
        import fcntl
        c.log_lines(_lines_beyond_pipe(c, b"block"))
        assert not c.writer.flush(3), (
            f"buffer-full=block with a 64k buffer and a dead sink took {c.writer.written} bytes without "
            f"back-pressure (pipe size {fcntl.fcntl(c.writer.fd, F_GETPIPE_SZ)})")
        proxy.up()
        assert sub.wait_for(len(c.sent)), f"{sub.count()} of {len(c.sent)} lines after the sink came back"
        sub.wait_quiet(1.0)
        assert [e["log"] for e in sub.events()] == [text(e.line) for e in c.sent]
        assert metric(plugin.socket, "logrelay_container_lines_dropped_total", c.name) in (0, None)
        assert_accounting(daemon.plugin.socket, c.name)
        c.stop()
    finally:
        proxy.down()
