"""Every line arrives once, in order, as the design's JSON event."""

import time

from helpers import TIME_RE, Entry, rfc3339_nano, text

EVENT_KEYS = {"time", "source", "log", "tag", "container_id", "container_name",
              "image_id", "image_name"}

SPECIAL_LINES = [
    b"",                                                   # empty line: no field 3 in the frame
    "unicode: h\u00e9llo w\u00f6rld \u2014 \u65e5\u672c\u8a9e \U0001F680".encode(),
    b"invalid utf-8: \xff here, \xc3( there, lone continuation \x80 end",
    b"ctrl: \x00\x01\x07\x08\t\x0b\x0c\x1b[31mred\x1b[0m\x7f end\r",
    b'quotes " and \\ backslash </script> & \xe2\x80\xa8 \xe2\x80\xa9',
    b"   leading and trailing spaces   ",
    b"\r",
    b"{\"looks\":\"like json\"}",
]


def make_lines(n):
    lines = []
    for i in range(n):
        source = "stderr" if i % 3 == 0 else "stdout"
        if i % 1000 < len(SPECIAL_LINES):
            line = SPECIAL_LINES[i % 1000]
        else:
            line = b"line %05d " % i + b"abcdefghij" * (i % 7)
        lines.append((source, line))
    return lines


def test_every_line_arrives_once_in_order_with_the_designs_fields(daemon, nats_server, subscriber_factory):
    n = 20_000
    labels = {"team": "core & <ops> \u2028 \u65e5\u672c \U0001F680", "other": "not copied"}
    env = ["PATH=/usr/bin:/bin", "REGION=eu-west", "SECRET_NOT_COPIED=x", "NOEQUALS"]
    c = daemon.container({"nats-servers": nats_server.url, "labels": "team", "env": "REGION"},
                         name="/web-1", labels=labels, env=env,
                         image_name="registry.example.com/team/app:1.2")
    sub = subscriber_factory(nats_server.url, c.short_id)  # default subject = rendered default tag
    c.start_ok()

    # timestamps like the daemon's, with a few whose nanoseconds end in zeros
    base = (time.time_ns() // 1_000_000_000) * 1_000_000_000
    entries = []
    for i, (source, line) in enumerate(make_lines(n)):
        t = base + i * 1_000 + (0 if i % 10 == 0 else i % 997)
        entries.append(Entry(source, line, t))
    c.send_entries(entries)

    assert sub.wait_for(n), f"only {sub.count()} of {n} events arrived"
    sub.wait_quiet(1.0)
    msgs = sub.snapshot()
    assert len(msgs) == n, f"{len(msgs)} events for {n} lines (duplicates?)"

    attrs = {"team": labels["team"], "REGION": "eu-west"}
    for i, (m, e) in enumerate(zip(msgs, entries)):
        assert m.subject == c.short_id
        ev = m.event()
        assert TIME_RE.match(ev.get("time", "")), f"event {i}: bad time {ev.get('time')!r}"
        want = c.expected(text(e.line), e.source, e.time_nano, attrs=attrs)
        assert ev == want, f"event {i} (line {e.line[:80]!r}) differs:\n got  {ev}\n want {want}"
        assert set(ev) == EVENT_KEYS | {"attrs"}
    assert rfc3339_nano(base) in msgs[0].data.decode()  # 9 digits even when they are zeros

    assert c.stop().status == 200
    time.sleep(0.5)
    assert sub.count() == n


def test_attrs_follow_dockers_precedence(daemon, nats_server, subscriber_factory):
    labels = {"a": "label-a", "b1": "label-b1", "b2": "label-b2", "z": "label-z", "unlisted": "x"}
    env = ["a=env-a", "b1=env-b1", "c=env-c", "d=1", "d=2", "NOEQ", "e=x=y"]
    c = daemon.container({"nats-servers": nats_server.url,
                          "labels": "a,z,missing", "labels-regex": "^b",
                          "env": "a,d,e", "env-regex": "^b1$"},
                         labels=labels, env=env)
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    entries = c.log_lines([("stdout", b"one")])
    assert sub.wait_for(1)
    ev = sub.events()[0]
    assert ev.get("attrs") == {"a": "env-a", "z": "label-z", "b1": "env-b1", "b2": "label-b2",
                               "d": "2", "e": "x=y"}, ev
    assert ev == c.expected("one", "stdout", entries[0].time_nano, attrs=ev["attrs"])
    c.stop()


def test_no_attrs_key_when_nothing_selected(daemon, nats_server, subscriber_factory):
    c = daemon.container({"nats-servers": nats_server.url, "labels": "nope", "env": "NOPE"},
                         labels={"x": "y"}, env=["X=y"])
    sub = subscriber_factory(nats_server.url, c.short_id)
    c.start_ok()
    entries = c.log_lines([("stdout", b"plain")])
    assert sub.wait_for(1)
    ev = sub.events()[0]
    assert ev == c.expected("plain", "stdout", entries[0].time_nano), ev
    assert "attrs" not in ev and "partial" not in ev
    c.stop()


def test_tag_and_subject_templates(daemon, nats_server, subscriber_factory):
    image_id = "sha256:" + "0123456789abcdef" * 4
    tag = ('{{.Name}}|{{.ID}}|{{.FullID}}|{{.ImageID}}|{{.ImageFullID}}|{{.ImageName}}|'
           '{{.DaemonName}}|{{index .ContainerLabels "team"}}|{{upper .Name}}|{{.Command}}')
    c = daemon.container({"nats-servers": nats_server.url, "tag": tag,
                          "nats-subject": "logs.{{.Name}}.{{.ID}}"},
                         name="/api", image_name="alpine:3.19", image_id=image_id,
                         labels={"team": "core"}, entrypoint="sh", args=["-c", "echo hi"])
    sub = subscriber_factory(nats_server.url, "logs.>")
    c.start_ok()
    entries = c.log_lines([("stdout", b"hi")])
    assert sub.wait_for(1)
    m = sub.snapshot()[0]
    assert m.subject == f"logs.api.{c.short_id}"
    want_tag = f"api|{c.short_id}|{c.id}|0123456789ab|{image_id}|alpine:3.19|docker|core|API|sh -c echo hi"
    assert m.event() == c.expected("hi", "stdout", entries[0].time_nano, tag=want_tag)
    c.stop()


def test_subject_defaults_to_the_rendered_tag(daemon, nats_server, subscriber_factory):
    c = daemon.container({"nats-servers": nats_server.url, "tag": "svc.{{.Name}}"}, name="/db")
    sub = subscriber_factory(nats_server.url, ">")
    c.start_ok()
    entries = c.log_lines([("stderr", b"boom")])
    assert sub.wait_for(1)
    m = sub.snapshot()[0]
    assert m.subject == "svc.db"
    assert m.event() == c.expected("boom", "stderr", entries[0].time_nano, tag="svc.db")
    c.stop()
