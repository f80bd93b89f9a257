"""Multiline events (multiline-pattern, multiline-datetime-format): a Java stack trace, a Python
traceback and pretty-printed JSON between ordinary lines become exactly one event each, through
NATS and Logentries; stdout and stderr are grouped apart; the last event is sent after the flush
interval; the size cap cuts events into pieces marked partial; Docker's 16 KiB pieces are rejoined
first (partial-merge)."""

import json
import time
import uuid

import pytest

from helpers import DELIVERY_TIMEOUT, Container, Entry, next_time_ns, secret, split_like_dockerd
from le_endpoint import Endpoint

DATETIME = "%Y-%m-%d %H:%M:%S"

# What an application prints: every event starts with a timestamp.
SAMPLE = [
    "2024-05-01 10:00:00,123 INFO  app: starting",
    "2024-05-01 10:00:01,456 ERROR app: request failed",
    'java.lang.IllegalStateException: boom "quoted" \\ backslash',
    "\tat com.example.Foo.bar(Foo.java:42)",
    "\tat com.example.Main.main(Main.java:7)",
    "Caused by: java.io.IOException: disk full",
    "\t... 2 more",
    "2024-05-01 10:00:02,000 WARN  worker: python said",
    "Traceback (most recent call last):",
    '  File "app.py", line 3, in <module>',
    "    main()",
    "ZeroDivisionError: division by zero",
    "2024-05-01 10:00:03,000 INFO  api: payload {",
    '  "user": "ann \u00e9\u65e5",',
    '  "items": [',
    "    1,",
    "    2",
    "  ]",
    "}",
    "2024-05-01 10:00:04,000 INFO  app: done",
]
GROUPS = [(0, 1), (1, 7), (7, 12), (12, 19), (19, 20)]   # [start, end) of each event in SAMPLE


def send_sample(c: Container, sources=("stdout",)) -> dict:
    """Writes SAMPLE once per source, interleaving the sources line by line. Returns, per
    source, the expected (log, time_nano) of each event."""
    entries, times = [], {s: [] for s in sources}
    for line in SAMPLE:
        for s in sources:
            e = Entry(s, line.encode(), next_time_ns())
            entries.append(e)
            times[s].append(e.time_nano)
    c.send_entries(entries)
    return {s: [("\n".join(SAMPLE[a:b]), times[s][a]) for a, b in GROUPS] for s in sources}


def test_java_python_and_json_become_one_event_each_through_nats(daemon, nats_server, subscriber_factory):
    c = daemon.container({"nats-servers": nats_server.url, "multiline-datetime-format": DATETIME})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    want = send_sample(c, sources=("stdout", "stderr"))
    # The last event of each source is complete only when the stream ends (or goes quiet).
    assert sub.wait_for(8), f"{sub.count()} events"
    assert not c.stop().failed
    assert sub.wait_for(10)
    sub.wait_quiet(1.0)
    events = sub.events()
    assert len(events) == 10, [e["log"][:40] for e in events]
    for source in ("stdout", "stderr"):
        got = [e for e in events if e["source"] == source]
        assert got == [c.expected(log, source, t) for log, t in want[source]]


def test_multiline_pattern_through_logentries_json_and_raw_lines(plugin, workdir):
    ep = Endpoint(workdir)
    try:
        client = plugin.client()
        tokens = [secret(str(uuid.uuid4())) for _ in range(2)]
        cs = []
        for token, line_only in zip(tokens, ("false", "true")):
            cfg = {"logentries-token": token, "logentries-address": f"127.0.0.1:{ep.port}", "logentries-tls": "false",
                   "line-only": line_only, "multiline-pattern": r"^\d{4}-\d\d-\d\d "}
            c = Container(plugin, client, cfg)
            plugin.containers.append(c)
            cs.append(c.start_ok())
        wants = [send_sample(c)["stdout"] for c in cs]
        for c in cs:
            assert not c.stop().failed
        assert ep.wait_for(10, DELIVERY_TIMEOUT), ep.lines()
        ep.wait_quiet(1.0)
        by_token = {t: [] for t in tokens}
        for wire in ep.lines():
            t, _, rest = wire.partition(b" ")
            by_token[t.decode()].append(rest)
        # JSON events: the newlines are escaped inside "log".
        got = [json.loads(x) for x in by_token[tokens[0]]]
        assert got == [cs[0].expected(log, "stdout", t) for log, t in wants[0]]
        # Raw lines: one wire line per event, its newlines folded into U+2028.
        assert by_token[tokens[1]] == [log.replace("\n", "\u2028").encode() for log, _ in wants[1]]
        client.close()
    finally:
        ep.stop()


def test_last_event_is_sent_after_the_flush_interval(daemon, nats_server, subscriber_factory):
    c = daemon.container({"nats-servers": nats_server.url, "multiline-datetime-format": DATETIME,
                          "multiline-flush-interval": "1s"})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    first = Entry("stdout", b"2024-05-01 10:00:01 ERROR x", next_time_ns())
    c.send_entries([first, Entry("stdout", b"\tat y", next_time_ns())])
    t0 = time.monotonic()
    assert sub.wait_for(1, 10), "the held event was never flushed"
    waited = time.monotonic() - t0
    assert 0.9 <= waited <= 4, f"flushed after {waited:.1f} s for a 1 s interval"
    assert sub.events() == [c.expected("2024-05-01 10:00:01 ERROR x\n\tat y", "stdout", first.time_nano)]
    # A continuation after the flush starts an event of its own.
    late = Entry("stdout", b"\tat z", next_time_ns())
    c.send_entries([late])
    assert sub.wait_for(2, 10)
    assert sub.events()[1] == c.expected("\tat z", "stdout", late.time_nano)
    c.stop()


def test_size_cap_cuts_events_into_partial_pieces(daemon, nats_server, subscriber_factory):
    c = daemon.container({"nats-servers": nats_server.url, "multiline-datetime-format": DATETIME,
                          "multiline-max-bytes": "1k"})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    head = Entry("stdout", b"2024-05-01 10:00:01 ERROR deep recursion", next_time_ns())
    frames = [Entry("stdout", b"\tat com.example.R.f(R.java:%d)" % i, next_time_ns()) for i in range(100)]
    after = Entry("stdout", b"2024-05-01 10:00:02 INFO recovered", next_time_ns())
    c.send_entries([head] + frames + [after])
    c.stop()
    assert sub.wait_for(2)
    sub.wait_quiet(1.0)
    events = sub.events()
    pieces, last = events[:-1], events[-1]
    assert len(pieces) >= 3 and all(e["partial"] is True for e in pieces), [len(e["log"]) for e in pieces]
    assert all(len(e["log"].encode()) <= 1024 for e in pieces)
    assert all(e["time"] == pieces[0]["time"] for e in pieces), "pieces keep the first line's time"
    assert "\n".join(e["log"] for e in pieces) == "\n".join(x.line.decode() for x in [head] + frames)
    assert last == c.expected(after.line.decode(), "stdout", after.time_nano)


def test_16k_pieces_are_rejoined_before_grouping(daemon, nats_server, subscriber_factory):
    c = daemon.container({"nats-servers": nats_server.url, "multiline-datetime-format": DATETIME})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    long_frame = b"\tat " + b"x" * 40_000
    head = Entry("stdout", b"2024-05-01 10:00:01 ERROR big", next_time_ns())
    pieces = split_like_dockerd("stdout", long_frame)
    assert len(pieces) == 3
    tail = Entry("stdout", b"\tat end", next_time_ns())
    c.send_entries([head] + pieces + [tail])
    c.stop()
    assert sub.wait_for(1)
    sub.wait_quiet(1.0)
    assert sub.events() == [c.expected("\n".join([head.line.decode(), long_frame.decode(), "\tat end"]),
                                       "stdout", head.time_nano)]


@pytest.mark.parametrize("config,message", [
    ({"multiline-pattern": "(unclosed"}, "invalid multiline-pattern"),
    ({"multiline-datetime-format": "%Q"}, "%Q is not a supported directive"),
    ({"multiline-pattern": "^x", "multiline-datetime-format": DATETIME}, "set only one of them"),
    ({"multiline-flush-interval": "1s"}, "needs multiline-pattern or multiline-datetime-format"),
])
def test_bad_multiline_options_refuse_the_container(daemon, nats_server, config, message):
    c = daemon.container({"nats-servers": nats_server.url, **config})
    r = c.start()
    assert r.failed and message in r.err, r
