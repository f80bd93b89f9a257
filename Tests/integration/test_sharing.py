"""Many containers with the same connection options share one NATS connection."""

import threading

from helpers import DELIVERY_TIMEOUT, Subscriber, text


def _plugin_connections(server):
    conns = server.connz()["connections"]
    return [c for c in conns if c.get("name") != Subscriber.NAME]


def test_twenty_concurrent_streams_share_one_connection_and_all_lines_arrive(
        daemon, plugin, nats_server, subscriber_factory):
    n_streams, n_lines = 20, 2000
    sub = subscriber_factory(nats_server.url, ">")
    config = {"nats-servers": nats_server.url, "labels": "app"}
    # like dockerd at boot: concurrent StartLogging on concurrent connections
    containers = [daemon.container(config, client=plugin.client(), labels={"app": f"a{i}"})
                  for i in range(n_streams)]
    errors = []

    def run(c):
        try:
            c.start_ok()
            c.log_lines([("stdout" if i % 2 else "stderr", b"%s line %d" % (c.short_id.encode(), i))
                         for i in range(n_lines)])
            assert c.writer.flush(DELIVERY_TIMEOUT)
        except BaseException as e:  # noqa: BLE001
            errors.append(f"{c.short_id}: {e!r}")

    threads = [threading.Thread(target=run, args=(c,)) for c in containers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DELIVERY_TIMEOUT + 10)
    assert not errors, errors

    total = n_streams * n_lines
    assert sub.wait_for(total), f"{sub.count()} of {total} lines arrived"
    sub.wait_quiet(1.0)
    msgs = sub.snapshot()
    assert len(msgs) == total, f"{len(msgs)} events for {total} lines"
    for c in containers:
        got = [m.event() for m in msgs if m.subject == c.short_id]
        assert [e["log"] for e in got] == [text(e.line) for e in c.sent], \
            f"{c.short_id}: {len(got)} of {len(c.sent)} lines, or out of order"
        assert all(e["container_id"] == c.id and e["attrs"] == {"app": c.info["ContainerLabels"]["app"]}
                   for e in got)

    # while the streams are active: exactly one connection from the plugin
    conns = _plugin_connections(nats_server)
    ever = [c for c in nats_server.connz(state="all")["connections"] if c.get("name") != Subscriber.NAME]
    assert len(conns) == 1, (f"{len(conns)} open plugin connections (ever opened: {len(ever)}): "
                             + str([(c.get('name'), c.get('port'), c.get('in_msgs')) for c in conns]))
    assert conns[0]["in_msgs"] >= total

    stops = []
    stoppers = [threading.Thread(target=lambda c=c: stops.append(c.stop())) for c in containers]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join(DELIVERY_TIMEOUT)
    assert len(stops) == n_streams and not any(r.failed for r in stops), stops
    for c in containers:
        c.client.close()


def test_different_credentials_get_different_connections(daemon, plugin, nats_factory, subscriber_factory):
    server = nats_factory(monitor=True, extra_config="authorization {\n users = [\n"
                          " {user: a, password: pa}\n {user: b, password: pb}\n ]\n}\n")
    sub = subscriber_factory(server.url, ">", user="a", password="pa")
    ca = daemon.container({"nats-servers": server.url, "nats-user": "a", "nats-pass": "pa"}).start_ok()
    cb = daemon.container({"nats-servers": server.url, "nats-user": "b", "nats-pass": "pb"}).start_ok()
    ca2 = daemon.container({"nats-servers": server.url, "nats-user": "a", "nats-pass": "pa"}).start_ok()
    for c in (ca, cb, ca2):
        c.log_lines([("stdout", b"x %d" % i) for i in range(10)])
    assert sub.wait_for(30)
    assert len(_plugin_connections(server)) == 2
    for c in (ca, cb, ca2):
        c.stop()
