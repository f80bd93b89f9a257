"""JetStream delivery (nats-jetstream=true): every line exactly once in the stream.

The plugin publishes each line with a reply subject and a Nats-Msg-Id derived from the line
itself (container id, time_nano, source, position among lines of the same time), releases it
on the stream's PubAck, and publishes again what was not acknowledged when something fails;
the stream drops replays inside its duplicate window (2 min). So after each failure below the
stream must hold every line exactly once: as many messages as lines, as many distinct
Nats-Msg-Ids, every line present. Failures: the R3 stream's leader node SIGKILLed mid-stream
at ~50,000 lines/s in a 3-node cluster and restarted; the only server SIGKILLed and
restarted; the plugin SIGKILLed and re-attached (lines the dead process had read but not yet
published are lost with it: they are allowed to be missing, never to be stored twice).
An independent nats-py subscriber checks the headers. Rates are paced, never asserted.
A user denied one container's subject gets that container's lines rejected once, never
published again. The single-server cases run on every nats-server binary there is (2.9.10,
and the 2.10 / 2.15 of `make deps`), the R3 cluster on the oldest and the newest.
"""

import asyncio
import json
import signal
import threading
import time
import uuid

import nats
import pytest

from helpers import (DELIVERY_TIMEOUT, PROMPT, Subscriber, assert_accounting, first_occurrences, free_port, metric,
                     nats_server_params, numbered_lines, paced_send, secret, server_bin,  # noqa: F401 (a fixture)
                     wait_until)

STREAM = "LOGS"
N = 200_000            # 4 s at ~50,000 lines/s
KILL_AFTER = 60_000


def _js_conf(workdir, name):
    store = workdir / f"{name}-store"
    store.mkdir(exist_ok=True)
    return f'jetstream {{\n  store_dir: "{store}"\n  max_memory_store: 64MB\n  max_file_store: 2GB\n}}\n'


def _js_cluster(nats_factory, workdir, n=3):
    """make_cluster's topology with a JetStream store per node."""
    cports = [free_port() for _ in range(n)]
    nodes = []
    for i in range(n):
        routes = ", ".join(f'"nats://127.0.0.1:{p}"' for j, p in enumerate(cports) if j != i)
        conf = (f"server_name: js{i}\n"
                f"cluster {{\n  name: lrjs\n  listen: 127.0.0.1:{cports[i]}\n  routes: [{routes}]\n}}\n"
                + _js_conf(workdir, f"js{i}"))
        nodes.append(nats_factory(extra_config=conf, monitor=True, name=f"js{i}"))
    assert wait_until(lambda: all(len(s.routez().get("routes") or []) >= n - 1 for s in nodes), 20, 0.2)
    return nodes


def _api(url, subject, body: dict | None = None, timeout=10):
    async def go():
        nc = await nats.connect(url, name="logrelay-it-jsapi", connect_timeout=5, max_reconnect_attempts=3)
        try:
            r = await nc.request(subject, json.dumps(body).encode() if body is not None else b"", timeout=timeout)
            return json.loads(r.data)
        finally:
            await nc.close()
    return asyncio.run(go())


def _create_stream(url, subjects, replicas=1):
    cfg = {"name": STREAM, "subjects": subjects, "storage": "file", "retention": "limits", "discard": "old",
           "max_msgs": -1, "max_bytes": -1, "max_age": 0, "num_replicas": replicas,
           "duplicate_window": 120_000_000_000}

    last = {}

    def ok():
        try:     # a new cluster answers once it has elected its meta leader
            last["r"] = _api(url, f"$JS.API.STREAM.CREATE.{STREAM}", cfg, timeout=3)
        except Exception as e:  # noqa: BLE001
            last["r"] = repr(e)
            return False
        return "error" not in last["r"] or last["r"]["error"].get("err_code") == 10058   # already exists
    assert wait_until(ok, 60, 1.0), f"stream create failed: {last}"


def _stream_info(urls):
    for u in urls:
        try:
            r = _api(u, f"$JS.API.STREAM.INFO.{STREAM}", timeout=5)
            if "error" not in r:
                return r
        except Exception:
            continue
    return None


def _read_stream(url, total, timeout=120):
    """(headers, payload) of every message in the stream, in stream order (an ephemeral push
    consumer without acks, flow control answered)."""
    async def go():
        nc = await nats.connect(url, name="logrelay-it-jsread", connect_timeout=5, max_reconnect_attempts=3)
        out = []
        done = asyncio.Event()
        inbox = nc.new_inbox()

        async def cb(m):
            status = m.headers.get("Status") if m.headers else None
            if status or (not m.data and m.reply):
                if m.reply:
                    await nc.publish(m.reply, b"")
                return
            out.append((dict(m.headers or {}), m.data))
            if len(out) >= total:
                done.set()
        sub = await nc.subscribe(inbox, cb=cb, pending_msgs_limit=-1, pending_bytes_limit=-1)
        cfg = {"stream_name": STREAM, "config": {
            "deliver_subject": inbox, "ack_policy": "none", "deliver_policy": "all", "flow_control": True,
            "idle_heartbeat": 1_000_000_000, "inactive_threshold": 30_000_000_000}}
        r = json.loads((await nc.request(f"$JS.API.CONSUMER.CREATE.{STREAM}", json.dumps(cfg).encode(), timeout=10)).data)
        assert "error" not in r, r
        try:
            await asyncio.wait_for(done.wait(), timeout)
        finally:
            await sub.unsubscribe()
            await nc.close()
        return out
    return asyncio.run(go())


def _counters(plugin, c):
    return {k: metric(plugin.socket, f"logrelay_container_{k}", c.name) or 0 for k in
            ("lines_received_total", "lines_published_total", "lines_dropped_total", "lines_rejected_total",
             "lines_resent_total", "lines_duplicate_total", "buffer_lines")}


def _settled(plugin, c, received):
    def ok():
        k = _counters(plugin, c)
        return k["lines_received_total"] >= received and k["buffer_lines"] == 0
    return ok


def _check_exactly_once(urls, entries, ordered=True):
    """The stream holds each line once: count, distinct ids and contents, and, when `ordered`,
    in the order written. Returns the count."""
    expected = [e.line.decode() for e in entries]
    info = _stream_info(urls)
    assert info, "no node answers STREAM.INFO"
    total = int(info["state"]["messages"])
    msgs = _read_stream(next(u for u in urls if _stream_info([u])), total)
    logs = [json.loads(d)["log"] for _, d in msgs]
    ids = [h.get("Nats-Msg-Id") for h, _ in msgs]
    assert None not in ids, "a stored message has no Nats-Msg-Id"
    assert len(set(ids)) == len(ids), f"{len(ids) - len(set(ids))} Nats-Msg-Ids stored twice"
    assert len(set(logs)) == len(logs), f"{len(logs) - len(set(logs))} lines stored twice"
    missing = set(expected) - set(logs)
    assert not missing, f"{len(missing)} lines are not in the stream (first: {sorted(missing)[:5]})"
    assert set(logs) <= set(expected), "the stream holds lines that were never written"
    if ordered:
        assert logs == expected, "lines stored out of order"
    return len(logs), len(set(ids))


def _leader(nodes):
    info = _stream_info([n.url for n in nodes if n.alive()])
    name = ((info or {}).get("cluster") or {}).get("leader")
    return next((n for n in nodes if n.dir.name.startswith(name + "-")), None) if name else None


@pytest.mark.parametrize("server_bin", nats_server_params("ends"), indirect=True)
def test_r3_stream_leader_killed_mid_stream_every_line_stored_exactly_once(server_bin, daemon, plugin, nats_factory, workdir):
    nodes = _js_cluster(nats_factory, workdir)
    urls = [n.url for n in nodes]
    c = daemon.container({"nats-servers": ",".join(urls), "nats-jetstream": "true",
                          "nats-expected-stream": STREAM, "buffer-size": "128m"})
    _create_stream(urls[0], [c.short_id], replicas=3)
    assert wait_until(lambda: _leader(nodes) is not None, 30, 0.5), "the stream has no leader"
    c.start_ok()
    leader = _leader(nodes)
    event: dict = {}

    def kill_and_restart():
        event["published_at_kill"] = _counters(plugin, c)["lines_published_total"]
        leader.kill(signal.SIGKILL)
        time.sleep(2)
        leader.start()
        event["restarted"] = True
    killer = threading.Thread(target=kill_and_restart, daemon=True)

    def on_batch(queued):
        if queued >= KILL_AFTER and "started" not in event:
            event["started"] = True
            killer.start()

    entries = numbered_lines(b"r3", N)
    paced_send(c, entries, per_batch=500, interval=0.01, on_batch=on_batch)
    killer.join(30)
    assert event.get("restarted"), event
    assert 0 < event["published_at_kill"] < N, f"the kill was not mid-stream: {event}"
    assert c.writer.flush(60)
    assert wait_until(_settled(plugin, c, N), DELIVERY_TIMEOUT + 60, 0.5), _counters(plugin, c)
    k = _counters(plugin, c)
    assert k["lines_published_total"] == N and k["lines_dropped_total"] == 0 and k["lines_rejected_total"] == 0, k
    # Not in order: messages the dying leader never stored can be published again only after
    # their PubAck timed out, behind later ones the new leader had already stored.
    count, ids = _check_exactly_once(urls, entries, ordered=False)
    assert count == N and ids == N
    print(f"R3 leader {leader.dir.name} killed at {event['published_at_kill']} published; stream holds {count} "
          f"messages, {ids} distinct ids; plugin counters {k}")
    assert not c.stop().failed


def test_only_server_killed_and_restarted_every_line_stored_exactly_once(server_bin, daemon, plugin, nats_factory, workdir):
    server = nats_factory(extra_config=_js_conf(workdir, "single"), monitor=True, name="single")
    c = daemon.container({"nats-servers": server.url, "nats-jetstream": "true", "buffer-size": "128m"})
    _create_stream(server.url, [c.short_id])
    c.start_ok()
    event: dict = {}

    def kill_and_restart():
        event["published_at_kill"] = _counters(plugin, c)["lines_published_total"]
        server.kill(signal.SIGKILL)
        time.sleep(1.5)
        server.start()
        event["restarted"] = True
    killer = threading.Thread(target=kill_and_restart, daemon=True)

    def on_batch(queued):
        if queued >= KILL_AFTER and "started" not in event:
            event["started"] = True
            killer.start()

    entries = numbered_lines(b"restart", N)
    paced_send(c, entries, per_batch=500, interval=0.01, on_batch=on_batch)
    killer.join(30)
    assert event.get("restarted") and 0 < event["published_at_kill"] < N, event
    assert c.writer.flush(60)
    assert wait_until(_settled(plugin, c, N), DELIVERY_TIMEOUT + 60, 0.5), _counters(plugin, c)
    k = _counters(plugin, c)
    assert k["lines_published_total"] == N and k["lines_dropped_total"] == 0, k
    count, ids = _check_exactly_once([server.url], entries)
    assert count == N and ids == N
    print(f"server killed at {event['published_at_kill']} published; stream holds {count} messages, "
          f"{ids} distinct ids; plugin counters {k}")
    assert not c.stop().failed


def test_plugin_killed_and_reattached_nothing_stored_twice(daemon, plugin, nats_factory, workdir):
    server = nats_factory(extra_config=_js_conf(workdir, "crash"), monitor=True, name="crash")
    c = daemon.container({"nats-servers": server.url, "nats-jetstream": "true", "buffer-size": "128m"})
    _create_stream(server.url, [c.short_id])
    c.start_ok()
    event: dict = {}

    def on_batch(queued):
        if queued >= KILL_AFTER and "killed" not in event:
            event["killed"] = queued
            plugin.kill_and_restart()           # re-attaches from its state dir
            daemon.client.close()               # the old connection died with the process

    entries = numbered_lines(b"crash", N)
    paced_send(c, entries, per_batch=500, interval=0.01, on_batch=on_batch)
    assert c.writer.flush(60), "the re-attached plugin does not drain the FIFO"
    # The new process counts from zero: what it read is everything after the kill.
    assert wait_until(lambda: (_counters(plugin, c)["buffer_lines"] == 0
                               and _counters(plugin, c)["lines_received_total"] > 0), DELIVERY_TIMEOUT + 60, 0.5)
    time.sleep(1)
    k = _counters(plugin, c)
    assert k["lines_published_total"] == k["lines_received_total"] and k["lines_dropped_total"] == 0, k
    expected = [e.line.decode() for e in entries]
    info = _stream_info([server.url])
    stored = int(info["state"]["messages"])
    # Lost with the dead process: what it had read but not published (at most its buffer and
    # the pipe), a contiguous run around the kill; everything else is there exactly once.
    assert stored >= N - 60_000, f"only {stored} of {N} lines stored"
    msgs = _read_stream(server.url, stored)
    logs = [json.loads(d)["log"] for _, d in msgs]
    ids = [h.get("Nats-Msg-Id") for h, _ in msgs]
    assert len(set(ids)) == len(ids) == len(set(logs)) == len(logs), "a line was stored twice"
    stored_set = set(logs)
    missing = [i for i, x in enumerate(expected) if x not in stored_set]
    if missing:
        assert missing == list(range(missing[0], missing[-1] + 1)), "lines missing outside the kill's window"
    assert logs == [x for x in expected if x in stored_set], "lines stored out of order"
    print(f"plugin killed after {event['killed']} lines queued; stream holds {stored} distinct lines, "
          f"{len(missing)} lost with the dead process; new process counters {k}")
    assert not c.stop().failed


def test_a_refused_subject_is_counted_rejected_not_published_again(server_bin, daemon, plugin, nats_factory, workdir):
    """A user whose publish permission denies one container's subject: the server answers each
    of its messages with -ERR and no PubAck. Its lines are rejected once, never published again;
    the other container on the same connection gets every line stored exactly once."""
    pw = secret("js-perm-" + uuid.uuid4().hex[:12])
    admin_pw = secret("js-admin-" + uuid.uuid4().hex[:12])
    server = nats_factory(monitor=True, name="perm", extra_config=_js_conf(workdir, "perm") + (
        "authorization {\n  users = [\n"
        f'    {{user: "u", password: "{pw}", permissions: {{publish: {{deny: ["logs.denied"]}}}}}}\n'
        f'    {{user: "admin", password: "{admin_pw}"}}\n'
        "  ]\n}\n"))
    admin_url = f"nats://admin:{admin_pw}@127.0.0.1:{server.port}"
    common = {"nats-servers": server.url, "nats-user": "u", "nats-pass": pw, "nats-jetstream": "true"}
    denied = daemon.container({**common, "nats-subject": "logs.denied"})
    allowed = daemon.container({**common, "nats-subject": "logs.allowed"})
    _create_stream(admin_url, ["logs.>"])
    denied.start_ok()
    allowed.start_ok()
    n = 3000
    denied_lines, allowed_lines = numbered_lines(b"denied", n), numbered_lines(b"allowed", n)
    for i in range(0, n, 500):     # both streams at once, so their messages share the window
        denied.send_entries(denied_lines[i:i + 500])
        allowed.send_entries(allowed_lines[i:i + 500])
    for c in (denied, allowed):
        assert wait_until(_settled(plugin, c, n), DELIVERY_TIMEOUT, 0.5), (c.name, _counters(plugin, c))
    kd, ka = _counters(plugin, denied), _counters(plugin, allowed)
    assert kd["lines_rejected_total"] == n and kd["lines_published_total"] == 0 and kd["lines_dropped_total"] == 0, kd
    assert ka["lines_published_total"] == n and ka["lines_rejected_total"] == 0, ka
    for c in (denied, allowed):
        assert_accounting(plugin.socket, c.name)

    # Nothing is published again: longer than the 3 s PubAck timeout that used to rewind it.
    def plugin_conns():     # open and closed: every connection the plugin made
        return [x for x in server.connz("all").get("connections") or [] if x.get("name") == "logrelay"]
    in_msgs = sum(x["in_msgs"] for x in plugin_conns())
    time.sleep(5)
    conns = plugin_conns()
    assert len(conns) == 1, f"{len(conns)} plugin connections: the refusals must not end the connection"
    assert conns[0]["in_msgs"] == in_msgs, f"the plugin published {conns[0]['in_msgs'] - in_msgs} more messages after settling"
    kd2 = _counters(plugin, denied)
    assert kd2 == kd and kd2["lines_resent_total"] == 0, (kd, kd2)
    count, ids = _check_exactly_once([admin_url], allowed_lines)
    assert count == n and ids == n
    said = [ln for ln in plugin.output().splitlines() if "refused to publish" in ln]
    assert len(said) == 1, f"the refusal is logged once per subject, not per line: {said[:3]} ({len(said)} lines)"
    assert "logs.denied" in said[0]
    assert not denied.stop().failed and not allowed.stop().failed


class _HeaderSubscriber(Subscriber):
    """The harness's subscriber, keeping each message's headers."""

    async def _connect(self, kw):
        self.headers: list[dict] = []
        self.nc = await nats.connect(self.url, name=self.NAME, max_reconnect_attempts=-1, reconnect_time_wait=0.2, **kw)

        async def cb(msg):
            with self.cond:
                self.headers.append(dict(msg.headers or {}))
                self.msgs.append(type("M", (), {"subject": msg.subject, "data": msg.data})())
                self.cond.notify_all()
        await self.nc.subscribe(self.subject, cb=cb, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await self.nc.flush()


@pytest.mark.parametrize("jetstream", [False, True])
def test_independent_subscriber_sees_headers_and_stable_ids(jetstream, server_bin, daemon, plugin, nats_factory, workdir):
    server = nats_factory(extra_config=_js_conf(workdir, "hdr"), monitor=True, name="hdr")
    config = {"nats-servers": server.url}
    if jetstream:
        config["nats-jetstream"] = "true"
    c = daemon.container(config)
    if jetstream:
        _create_stream(server.url, [c.short_id])
    sub = _HeaderSubscriber(server.url, c.short_id)
    try:
        c.start_ok()
        t = 1_800_000_000_000_000_000
        from helpers import Entry
        # Two lines with one time on stdout, one on stderr with the same time, then later ones:
        # the id counts lines of equal time per source.
        entries = [Entry("stdout", b"same time a", t), Entry("stdout", b"same time b", t),
                   Entry("stderr", b"same time c", t), Entry("stdout", b"later", t + 1),
                   Entry("stderr", b"later err", t + 1)]
        c.send_entries(entries)
        assert sub.wait_for(5), f"{sub.count()} of 5 messages"
        ids = [h["Nats-Msg-Id"] for h in sub.headers]
        assert ids == [f"{c.id}-{t}-stdout-0", f"{c.id}-{t}-stdout-1", f"{c.id}-{t}-stderr-0",
                       f"{c.id}-{t + 1}-stdout-0", f"{c.id}-{t + 1}-stderr-0"], ids
        for h in sub.headers:
            assert h["Logrelay-Container-Id"] == c.id
            assert h["Logrelay-Container-Name"] == c.name.lstrip("/")
        assert [h["Logrelay-Source"] for h in sub.headers] == ["stdout", "stdout", "stderr", "stdout", "stderr"]
        if jetstream:
            # The same lines again get the same ids: the stream recognises them; counted, not stored.
            c.send_entries(entries)
            assert wait_until(lambda: _counters(plugin, c)["lines_duplicate_total"] == 5, 15), _counters(plugin, c)
            assert int(_stream_info([server.url])["state"]["messages"]) == 5
        assert not c.stop().failed
    finally:
        sub.close()
