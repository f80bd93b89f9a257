"""Long lines: Docker's 16 KiB pieces are rejoined; NATS max_payload cuts, never drops."""

import os

from helpers import (CHUNK, DELIVERY_TIMEOUT, Entry, PartialMeta, next_time_ns, split_like_dockerd, text,
                     wait_until)


def _long(n: int, seed: int) -> bytes:
    base = b"%d-0123456789abcdefghijklmnopqrstuvwxyz|" % seed
    return (base * (n // len(base) + 1))[:n]


def test_16k_split_lines_are_rejoined_into_one_event(daemon, nats_server, subscriber_factory):
    c = daemon.container({"nats-servers": nats_server.url})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    lines = [("stdout", b"before"),
             ("stdout", _long(40_000, 1)),       # 16384 + 16384 + 7232(last)
             ("stderr", _long(CHUNK, 2)),        # 16384 + empty last piece
             ("stdout", _long(CHUNK + 1, 3)),    # 16384 + 1(last)
             ("stdout", _long(CHUNK - 1, 4)),    # not split at all
             ("stdout", "\u00e9".encode() * 20_000),  # 2-byte chars cut across chunk borders
             ("stdout", b"after")]
    per_line = [split_like_dockerd(source, line) for source, line in lines]
    c.send_entries([e for es in per_line for e in es])

    assert sub.wait_for(len(lines)), f"{sub.count()} events for {len(lines)} lines"
    sub.wait_quiet(1.0)
    events = sub.events()
    assert len(events) == len(lines), [(e.get("partial"), len(e["log"])) for e in events]
    for (source, line), es, ev in zip(lines, per_line, events):
        assert ev == c.expected(text(line), source, es[0].time_nano), \
            f"line of {len(line)} bytes: got log of {len(ev.get('log', ''))} chars, partial={ev.get('partial')}"
    c.stop()


def test_pieces_of_stderr_and_stdout_interleaved_are_rejoined_per_stream(daemon, nats_server,
                                                                         subscriber_factory):
    """stdout and stderr are separate copier goroutines: a whole stdout line can land
    between two pieces of a split stderr line in the FIFO."""
    c = daemon.container({"nats-servers": nats_server.url})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    long_err = _long(30_000, 7)
    pieces = split_like_dockerd("stderr", long_err)
    mid = Entry("stdout", b"between the pieces", next_time_ns())
    c.send_entries([pieces[0], mid, pieces[1]])
    assert sub.wait_for(2)
    sub.wait_quiet(1.0)
    events = sub.events()
    by_source = {e["source"]: e for e in events}
    assert len(events) == 2, [(e["source"], len(e["log"])) for e in events]
    assert by_source["stdout"] == c.expected("between the pieces", "stdout", mid.time_nano)
    assert by_source["stderr"] == c.expected(long_err.decode(), "stderr", pieces[0].time_nano)
    c.stop()


def test_unterminated_split_line_at_eof_arrives_marked_partial(daemon, nats_server, subscriber_factory):
    """`printf` of a long line without '\\n', then the container exits: no last=true ever comes."""
    c = daemon.container({"nats-servers": nats_server.url})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    line = _long(20_000, 9)
    pieces = split_like_dockerd("stdout", line, terminated=False)
    assert [p.meta.last for p in pieces] == [False, False]
    c.send_entries([Entry("stdout", b"first", next_time_ns())] + pieces)
    assert sub.wait_for(1)
    assert c.stop().status == 200  # EOF follows: the open sequence must be flushed
    assert sub.wait_for(2), f"the unterminated line never arrived ({sub.count()} events)"
    sub.wait_quiet(1.0)
    events = sub.events()
    assert events[0]["log"] == "first" and "partial" not in events[0]
    rest = events[1:]
    assert "".join(e["log"] for e in rest) == line.decode()
    assert all(e.get("partial") is True for e in rest), [e.get("partial") for e in rest]
    assert len(rest) == 1, f"merge on: expected one event for the unterminated line, got {len(rest)}"
    assert rest[0] == c.expected(line.decode(), "stdout", pieces[0].time_nano, partial=True)


def test_unterminated_short_line_at_eof_arrives_marked_partial(daemon, nats_server, subscriber_factory):
    """`printf foo` and exit: one partial=true, ordinal=1, last=false entry."""
    c = daemon.container({"nats-servers": nats_server.url})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    e = Entry("stdout", b"foo", next_time_ns(), True, PartialMeta(os.urandom(32).hex(), 1))
    c.send_entries([e])
    assert c.stop().status == 200
    assert sub.wait_for(1), "the unterminated short line never arrived"
    sub.wait_quiet(1.0)
    assert sub.events() == [c.expected("foo", "stdout", e.time_nano, partial=True)]


def test_with_partial_merge_false_pieces_arrive_separately_marked_partial(daemon, nats_server,
                                                                         subscriber_factory):
    c = daemon.container({"nats-servers": nats_server.url, "partial-merge": "false"})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    line = _long(40_000, 5)
    pieces = split_like_dockerd("stdout", line)
    after = Entry("stdout", b"whole line", next_time_ns())
    c.send_entries(pieces + [after])
    assert sub.wait_for(4), f"{sub.count()} events"
    sub.wait_quiet(1.0)
    events = sub.events()
    assert len(events) == 4, [(len(e["log"]), e.get("partial")) for e in events]
    for p, ev in zip(pieces, events):
        assert ev == c.expected(p.line.decode(), "stdout", p.time_nano, partial=True)
    assert events[3] == c.expected("whole line", "stdout", after.time_nano)
    c.stop()


def test_with_partial_merge_false_exact_16k_line(daemon, nats_server, subscriber_factory):
    """A line of exactly 16384 bytes ends with an empty last=true piece. Whether that empty
    piece becomes an event of its own is not fixed by the contract; the bytes must all arrive,
    every piece marked partial."""
    c = daemon.container({"nats-servers": nats_server.url, "partial-merge": "false"})
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    line = _long(CHUNK, 6)
    c.send_entries(split_like_dockerd("stdout", line) + [Entry("stdout", b"end", next_time_ns())])
    assert sub.wait_for(2)
    sub.wait_quiet(1.0)
    events = sub.events()
    assert events[-1]["log"] == "end" and "partial" not in events[-1]
    pieces = events[:-1]
    assert len(pieces) in (1, 2)
    assert "".join(e["log"] for e in pieces) == line.decode()
    assert all(e.get("partial") is True for e in pieces)
    c.stop()


# ---------------------------------------------------------------------------
# max_payload
# ---------------------------------------------------------------------------

def _check_cut(c, msgs, line: bytes, t: int, max_payload: int):
    """msgs make up `line`: several events, all partial, each within max_payload."""
    events = [m.event() for m in msgs]
    assert len(events) >= 2, f"a {len(line)}-byte line over max_payload={max_payload} gave {len(events)} event(s)"
    assert "".join(e["log"] for e in events) == text(line), "pieces do not concatenate to the line"
    for m, e in zip(msgs, events):
        assert len(m.data) <= max_payload
        assert e.get("partial") is True, "a cut piece is not marked partial"
        assert e == c.expected(e["log"], "stdout", t, partial=True)


def test_line_over_max_payload_arrives_as_several_partial_events(daemon, nats_factory, subscriber_factory):
    server = nats_factory(extra_config="max_payload: 4KB\n")
    c = daemon.container({"nats-servers": server.url})
    sub = subscriber_factory(server.url, c.short_id)
    c.start_ok()

    cases = [
        _long(20_000, 1),                               # plain ASCII (two daemon chunks)
        "\u00e9\u65e5\U0001F680".encode() * 2_000,      # multi-byte UTF-8: cut only between characters
        b'"' * 6_000,                                   # each byte doubles when JSON-escaped
        b"\x01" * 3_000,                                # each byte becomes \\u0001 (6 bytes)
    ]
    for n, line in enumerate(cases):
        start = sub.count()
        entries = c.log_lines([("stdout", line)])
        marker = c.log_lines([("stdout", b"marker %d" % n)])[0]
        needle = b'"log":"marker %d"' % n

        def seen():
            return any(needle in m.data for m in sub.snapshot()[start:])
        assert wait_until(seen, DELIVERY_TIMEOUT), \
            f"case {n}: the line after a {len(line)}-byte line never arrived ({sub.count() - start} events)"
        msgs = sub.snapshot()[start:]
        idx = next(i for i, m in enumerate(msgs) if needle in m.data)
        assert idx == len(msgs) - 1, "events after the marker"
        assert msgs[idx].event() == c.expected("marker %d" % n, "stdout", marker.time_nano)
        _check_cut(c, msgs[:idx], line, entries[0].time_nano, 4096)
    c.stop()
