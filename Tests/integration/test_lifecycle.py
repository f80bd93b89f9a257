"""StopLogging, duplicate StartLogging, FIFO ownership and SIGTERM."""

import os
import signal
import time

from helpers import DELIVERY_TIMEOUT, PROMPT, text, wait_until


def test_stop_logging_answers_at_once_and_everything_in_the_pipe_is_still_delivered(
        daemon, plugin, nats_server, subscriber_factory):
    c = daemon.container({"nats-servers": nats_server.url})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    # ~60 KB of frames in ONE burst: it fits the 64 KiB pipe, so it is all in the pipe
    # (or already read) by the time StopLogging is sent.
    lines = [("stdout" if i % 2 else "stderr", b"stop-test %04d " % i + b"x" * 40) for i in range(1000)]
    entries = c.log_lines(lines, batch=65536)
    assert c.writer.flush(10)
    t0 = time.monotonic()
    resp = c.client.call("/LogDriver.StopLogging", {"File": c.file})
    took = time.monotonic() - t0
    assert resp.status == 200 and not resp.failed, resp
    assert resp.json() == {} or resp.err == "", resp
    assert took < PROMPT, f"StopLogging took {took:.1f}s"
    c.stopped = True
    c.writer.close()  # the daemon closes its fd and unlinks only now

    assert sub.wait_for(len(entries)), f"{sub.count()} of {len(entries)} lines delivered after StopLogging"
    sub.wait_quiet(1.0)
    got = sub.events()
    assert [e["log"] for e in got] == [text(e.line) for e in entries]
    # after EOF the plugin lets go of the FIFO
    assert wait_until(lambda: not plugin.open_fds_to(c.file), 10), \
        f"plugin still holds the FIFO open after EOF: fds {plugin.open_fds_to(c.file)}"


def test_stop_logging_for_a_stream_whose_data_is_not_yet_read(daemon, plugin, nats_factory,
                                                             subscriber_factory):
    """Sink unreachable: the pipe data sits in the plugin; StopLogging still answers at once."""
    server = nats_factory()
    dead = f"nats://127.0.0.1:{server.port}"
    server.stop()
    c = daemon.container({"nats-servers": dead})
    c.start_ok()
    c.log_lines([("stdout", b"queued %d" % i) for i in range(500)])
    assert c.writer.flush(10), "the plugin does not drain the FIFO while the sink is down"
    t0 = time.monotonic()
    resp = c.stop()
    assert resp.status == 200 and not resp.failed, resp
    assert time.monotonic() - t0 < PROMPT + 1
    assert plugin.alive()


def test_stop_logging_is_always_200(daemon):
    client = daemon.client
    for body in ({"File": "/run/docker/logging/" + "0" * 64}, b"", b"{}"):
        r = client.call("/LogDriver.StopLogging", body)
        assert r.status == 200 and not r.failed, (body, r)
    c = daemon.container({"nats-servers": "nats://127.0.0.1:1"})
    c.start_ok()
    assert not c.stop().failed
    r = client.call("/LogDriver.StopLogging", {"File": c.file})  # repeated stop
    assert r.status == 200 and not r.failed, r


def test_duplicate_start_logging_succeeds_without_a_second_reader(daemon, plugin, nats_server,
                                                                  subscriber_factory):
    c = daemon.container({"nats-servers": nats_server.url})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    r = c.client.call("/LogDriver.StartLogging", {"File": c.file, "Info": c.info})
    assert not r.failed, f"a repeated StartLogging for an active File should succeed: {r!r}"
    entries = c.log_lines([("stdout", b"dup %d" % i) for i in range(2000)])
    assert sub.wait_for(len(entries))
    sub.wait_quiet(1.0)
    got = [e["log"] for e in sub.events()]
    assert got == [text(e.line) for e in entries], \
        f"{len(got)} events for {len(entries)} lines: lost, duplicated or reordered"
    assert len(plugin.open_fds_to(c.file)) == 1, plugin.open_fds_to(c.file)
    c.stop()


def test_failed_start_logging_leaves_the_fifo_closed(daemon, plugin):
    c = daemon.container({"no-such-option": "1"})
    r = c.start()
    assert r.failed
    time.sleep(0.3)
    assert plugin.open_fds_to(c.file) == [], "the plugin kept the FIFO of a failed StartLogging open"


def test_sigterm_flushes_what_was_written_and_exits_0(daemon, plugin, nats_server, subscriber_factory):
    containers = [daemon.container({"nats-servers": nats_server.url}) for _ in range(3)]
    sub = subscriber_factory(nats_server.url, ">")
    for c in containers:
        c.start_ok()
    total = 0
    for c in containers:
        total += len(c.log_lines([("stdout", b"%s before sigterm %d" % (c.short_id.encode(), i))
                                  for i in range(3000)]))
    for c in containers:
        assert c.writer.flush(DELIVERY_TIMEOUT)
    # every line is in the pipes (or already read); the streams are still active
    t0 = time.monotonic()
    os.kill(plugin.pid, signal.SIGTERM)
    try:
        rc = plugin.proc.wait(timeout=12)
    except Exception:
        raise AssertionError(f"plugin still running {time.monotonic() - t0:.0f}s after SIGTERM")
    assert rc == 0, f"exit status {rc} after SIGTERM"
    if not sub.wait_for(total, timeout=10):
        per = {c.short_id: sum(1 for m in sub.snapshot() if m.subject == c.short_id) for c in containers}
        raise AssertionError(f"{sub.count()} of {total} lines written before SIGTERM delivered "
                             f"(per stream, of {len(containers[0].sent)} each: {per}; "
                             f"delivered part is a prefix of what was sent: {_prefixes(sub, containers)})")
    sub.wait_quiet(1.0)
    for c in containers:
        got = [m.event()["log"] for m in sub.snapshot() if m.subject == c.short_id]
        assert got == [text(e.line) for e in c.sent], f"{c.short_id}: {len(got)} of {len(c.sent)}"
    for c in containers:
        c.stopped = True  # the plugin is gone: only close and unlink, like the daemon
        c.writer.close()


def test_after_a_crash_the_plugin_reattaches_to_active_streams(daemon, plugin, nats_server,
                                                               subscriber_factory):
    """The daemon restarts a crashed plugin but never repeats StartLogging: the plugin
    re-opens the FIFOs it persisted in its state dir. Lines written while it was dead
    wait in the pipe and must arrive, like those written after the restart."""
    c = daemon.container({"nats-servers": nats_server.url})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    first = c.log_lines([("stdout", b"before crash %d" % i) for i in range(100)])
    assert sub.wait_for(len(first))
    plugin.kill_and_restart()
    daemon.client.close()  # the old connection died with the process
    while_dead = c.log_lines([("stdout", b"while dead %d" % i) for i in range(100)])
    after = c.log_lines([("stdout", b"after restart %d" % i) for i in range(100)])
    total = len(first) + len(while_dead) + len(after)
    assert sub.wait_for(total), f"{sub.count() - len(first)} of {total - len(first)} lines after the crash arrived"
    sub.wait_quiet(1.0)
    assert [e["log"] for e in sub.events()] == [text(e.line) for e in first + while_dead + after]
    assert not c.stop().failed
    assert wait_until(lambda: not plugin.open_fds_to(c.file), 10), "reattached FIFO not released after EOF"


def test_after_a_crash_stopped_streams_are_not_reattached(daemon, plugin, nats_server):
    c = daemon.container({"nats-servers": nats_server.url})
    c.start_ok()
    assert not c.stop().failed
    plugin.kill_and_restart()
    time.sleep(1)
    assert plugin.alive()
    assert plugin.client().call("/LogDriver.Capabilities").status == 200


def _prefixes(sub, containers):
    out = {}
    for c in containers:
        got = [m.event()["log"] for m in sub.snapshot() if m.subject == c.short_id]
        out[c.short_id] = got == [text(e.line) for e in c.sent[:len(got)]]
    return out


def test_sigterm_drains_what_is_still_in_the_pipes(daemon, plugin, nats_server, subscriber_factory):
    """Deterministic variant: the plugin is stopped (SIGSTOP) while ~48 KB per stream go into
    the pipes, then gets SIGTERM and SIGCONT. Everything the daemon wrote before SIGTERM
    must still be read and delivered (protocol notes §8.9: drain, flush, exit)."""
    containers = [daemon.container({"nats-servers": nats_server.url}) for _ in range(3)]
    sub = subscriber_factory(nats_server.url, ">")
    for c in containers:
        c.start_ok()
        c.log_lines([("stdout", b"warm-up %d" % i) for i in range(100)])
    assert sub.wait_for(300), "warm-up lines did not arrive"
    os.kill(plugin.pid, signal.SIGSTOP)
    try:
        for c in containers:
            c.log_lines([("stdout", b"in the pipe %05d " % i + b"y" * 30) for i in range(800)], batch=4096)
        for c in containers:
            assert c.writer.flush(10), "could not fill the pipe (more than 64 KiB?)"
        os.kill(plugin.pid, signal.SIGTERM)
    finally:
        os.kill(plugin.pid, signal.SIGCONT)
    try:
        rc = plugin.proc.wait(timeout=12)
    except Exception:
        raise AssertionError("plugin still running 12 s after SIGTERM")
    assert rc == 0, f"exit status {rc} after SIGTERM"
    total = sum(len(c.sent) for c in containers)
    if not sub.wait_for(total, timeout=10):
        per = {c.short_id: sum(1 for m in sub.snapshot() if m.subject == c.short_id) for c in containers}
        raise AssertionError(f"{sub.count()} of {total} lines delivered (per stream, of {len(containers[0].sent)} "
                             f"each: {per}; delivered part is a prefix: {_prefixes(sub, containers)}): "
                             "what was in the pipe at SIGTERM was not drained")
    for c in containers:
        c.stopped = True
        c.writer.close()
