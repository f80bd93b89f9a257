"""A NATS cluster on loopback: the node in use dies (SIGKILL) or enters lame-duck mode while a
container logs at ~50,000 lines/s; a subscriber on another node must still get every line, but
for the killed node's own loss (lines it had taken, and confirmed, but not yet forwarded to
the cluster: a subscriber on it shows which).

Re-sent events may arrive twice (at-least-once), so completeness is counted on unique lines,
and the order of first arrival must be the order written. Rates are paced, never asserted.
"""

import signal
import time

import pytest

from helpers import (DELIVERY_TIMEOUT, PROMPT, LogTracker, assert_accounting, first_occurrences, make_cluster, metric,
                     metric_samples, numbered_lines, paced_send, wait_until)

N = 200_000            # 4 s at ~50,000 lines/s
KILL_AFTER = 75_000    # ~1.5 s into the stream


def _node_in_use(nodes, timeout=15.0):
    found = []

    def look():
        found[:] = [n for n in nodes if n.alive() and "logrelay" in n.client_names()]
        return len(found) == 1
    assert wait_until(look, timeout, 0.1), \
        f"the plugin is not connected to exactly one node: {[n.client_names() for n in nodes if n.alive()]}"
    return found[0]


def _subscribe_on(node, in_use, subscriber_factory, subject):
    """A subscriber on `node`; returns once a probe published on the node in use reaches it
    (so the subscription's interest has spread through the cluster)."""
    sub = subscriber_factory(node.url, subject)
    probe = subscriber_factory(in_use.url, "lr-never")
    probe_subject = subject if subject != ">" else "lr-probe"
    got = lambda: any(m.data == b"probe" for m in sub.snapshot())  # noqa: E731

    def probed():
        probe.publish(probe_subject, b"probe")
        return wait_until(got, 0.3, 0.05)
    assert wait_until(probed, 15, 0.1), "the subscription never became visible on the node in use"
    with sub.cond:
        sub.msgs[:] = [m for m in sub.msgs if m.data != b"probe"]
    probe.close()
    return sub


def _server_complaints(nodes):
    """The nodes' log lines that say a client or route fell behind or broke (the cause when a
    subscriber misses lines the plugin had delivered)."""
    lines = []
    for n in nodes:
        text = n.log_path.read_text(errors="replace") if n.log_path.exists() else ""
        lines += [f"{n.dir.name}: {ln}" for ln in text.splitlines() 
                  if ("[ERR]" in ln or "Slow Consumer" in ln) and "connect to route" not in ln]
    return lines[-10:]


def _check_complete(tracker, entries, what, nodes, taken=None):
    """Every line arrived once at least, in order. `taken`: a LogTracker on a node that was
    killed. Core NATS confirms a PUB once that node has taken it, not once the cluster has:
    lines its own subscriber got that it had not yet forwarded when it died are the server's
    loss, the only one allowed; anything else missing was never taken by it (the plugin failed
    to send it again)."""
    expected = [e.line.decode() for e in entries]
    everything = set(expected)

    def lacking():
        tracker.update()
        return everything - tracker.unique - (taken.unique if taken and taken.update() else set())
    ok = wait_until(lambda: not lacking(), DELIVERY_TIMEOUT + 30, 0.25)
    missing = lacking()
    assert ok and not missing, (
        f"{what}: {len(missing)} of {len(expected)} lines never arrived "
        f"(first missing: {sorted(missing)[:5]}); "
        f"subscriber errors: {tracker.sub.errors[-5:]}; servers: {_server_complaints(nodes)}")
    tracker.sub.wait_quiet(1.0)
    tracker.update()
    assert tracker.unique <= everything, "lines that were never written arrived"
    server_lost = everything - tracker.unique
    assert first_occurrences(tracker.logs) == [x for x in expected if x not in server_lost], \
        f"{what}: lines arrived out of order"
    return len(tracker.logs) - len(tracker.unique)   # duplicates (re-sent events)


@pytest.mark.parametrize("urls", ["all-nodes", "one-node-discovers-the-rest"])
def test_node_in_use_killed_mid_stream_subscriber_on_another_node_gets_every_line(
        urls, daemon, plugin, nats_factory, subscriber_factory):
    nodes = make_cluster(nats_factory, 3)
    if urls == "all-nodes":
        servers = ",".join(n.url for n in nodes)
    else:
        servers = nodes[0].url        # the other two come from INFO connect_urls
    c = daemon.container({"nats-servers": servers, "buffer-size": "64m"})
    c.start_ok()
    in_use = _node_in_use(nodes)
    other = next(n for n in nodes if n is not in_use)
    sub = _subscribe_on(other, in_use, subscriber_factory, c.short_id)
    tracker = LogTracker(sub, c.short_id)
    witness = LogTracker(subscriber_factory(in_use.url, c.short_id), c.short_id)   # what the node in use took

    entries = numbered_lines(b"cluster", N)
    killed = []

    def kill_mid_stream(queued):
        if not killed and queued >= KILL_AFTER:
            tracker.update()
            killed.append(len(tracker.unique))
            in_use.kill(signal.SIGKILL)

    paced_send(c, entries, per_batch=500, interval=0.01, on_batch=kill_mid_stream)
    assert killed, "the node in use was never killed"
    assert killed[0] > 0, "nothing had arrived before the kill: not mid-stream"
    assert c.writer.flush(30), "the plugin stopped draining the FIFO during the failover"

    dups = _check_complete(tracker, entries, "after killing the node in use", nodes, taken=witness)
    new_node = _node_in_use(nodes)
    assert new_node is not in_use
    assert plugin.alive()
    assert wait_until(lambda: metric(plugin.socket, "logrelay_container_lines_published_total", c.name) == N, 10), \
        f"published_total {metric(plugin.socket, 'logrelay_container_lines_published_total', c.name)} != {N}"
    assert metric(plugin.socket, "logrelay_container_lines_dropped_total", c.name) in (0, None)
    resent = metric(plugin.socket, "logrelay_container_lines_resent_total", c.name) or 0
    assert dups <= resent, f"{dups} duplicates arrived but only {resent} events were counted as re-sent"
    reconnects = sum(v for _, v in metric_samples(plugin.socket, "logrelay_connection_reconnects_total"))
    assert reconnects >= 1, "the failover is not counted in logrelay_connection_reconnects_total"
    t0 = time.monotonic()
    assert_accounting(daemon.plugin.socket, c.name)
    assert not c.stop().failed
    assert time.monotonic() - t0 < PROMPT


def test_lame_duck_node_hands_the_stream_to_another_node_without_loss(
        daemon, plugin, nats_factory, subscriber_factory):
    nodes = make_cluster(nats_factory, 2, extra_config='lame_duck_duration: "30s"\n'
                                                      'lame_duck_grace_period: "1s"\n')
    c = daemon.container({"nats-servers": nodes[0].url})
    c.start_ok()
    in_use = _node_in_use(nodes)
    assert in_use is nodes[0]
    sub = _subscribe_on(nodes[1], in_use, subscriber_factory, c.short_id)
    tracker = LogTracker(sub, c.short_id)

    entries = numbered_lines(b"lameduck", 100_000)
    signalled = []

    def ldm(queued):
        if not signalled and queued >= 30_000:
            signalled.append(queued)
            import os
            os.kill(in_use.pid, signal.SIGUSR2)    # nats-server: SIGUSR2 = lame-duck mode

    paced_send(c, entries, per_batch=500, interval=0.01, on_batch=ldm)
    assert c.writer.flush(30)
    _check_complete(tracker, entries, "across lame-duck mode", nodes)
    assert wait_until(lambda: "logrelay" in nodes[1].client_names(), 15), \
        "the plugin did not move to the other node when its node entered lame-duck mode"
    # the node exits by itself once its last client is gone; the plugin must have left because
    # of the INFO ldm:true (not because the node closed its connection)
    assert "lame-duck" in plugin.stderr(), "the plugin's log does not mention lame-duck mode"
    assert_accounting(daemon.plugin.socket, c.name)
    assert not c.stop().failed
    assert plugin.alive()
