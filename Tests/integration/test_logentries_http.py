"""The logentries driver's HTTP transport (logentries-transport=http) against a local HTTPS
webhook endpoint (Tests/integration/le_http_endpoint.py: an independent Python program that
answers like Rapid7's `/v1/noformat/<token>` and records the lines of every batch it
confirms).

Every line arrives, in order, with its content; 503 for a while, then 204: nothing lost; a
lagging endpoint SIGKILLed and restarted: nothing lost (duplicates at most the batch in
flight); 400: the batch counts as rejected and is not retried; the token (in the URL path)
never appears in the plugin's output or metrics. After each fault: received = published +
dropped + rejected + buffered.
"""

import json
import time
import uuid

import pytest

from helpers import DELIVERY_TIMEOUT, Entry, http_get, metric, next_time_ns, secret, text, wait_until
from le_http_endpoint import HTTPEndpoint

# Per-container metric names (Sources/LogRelayCore/Driver/Metrics.swift).
RECEIVED = "logrelay_container_lines_received_total"
PUBLISHED = "logrelay_container_lines_published_total"
DROPPED = "logrelay_container_lines_dropped_total"
REJECTED = "logrelay_container_lines_rejected_total"
BUFFERED = "logrelay_container_buffer_lines"


def new_token() -> str:
    return secret(str(uuid.uuid4()))


@pytest.fixture
def endpoint(workdir, pki):
    e = HTTPEndpoint(workdir, cert=pki.server_cert, key=pki.server_key)
    yield e
    e.stop()


def http_config(ep: HTTPEndpoint, pki, token: str, **extra) -> dict:
    cfg = {"logentries-token": token, "logentries-transport": "http",
           "logentries-url": f"https://localhost:{ep.port}/v1/noformat/{token}",
           "logentries-tls-ca-cert": str(pki.ca)}
    cfg.update(extra)
    return cfg


def entries(n: int, tag: bytes = b"line") -> list[Entry]:
    base = next_time_ns()
    return [Entry("stdout" if i % 4 else "stderr", b"%s %06d " % (tag, i) + b"x" * (i % 40), base + i * 1000)
            for i in range(n)]


def logs(ep: HTTPEndpoint) -> list[str]:
    return [json.loads(l)["log"] for l in ep.lines()]


def first_seen(items: list[str]) -> list[str]:
    seen, out = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def counters(plugin, c) -> dict:
    return {k: metric(plugin.socket, name, c.name) for k, name in
            (("received", RECEIVED), ("published", PUBLISHED), ("dropped", DROPPED),
             ("rejected", REJECTED), ("buffered", BUFFERED))}


def assert_accounted(plugin, c, sent: int, published=None, rejected=0):
    """At a quiet moment: received = published + dropped + rejected + buffered."""
    def settled():
        m = counters(plugin, c)
        return m["received"] == sent and m["buffered"] == 0 and \
            (published is None or m["published"] == published) and m["rejected"] == rejected
    wait_until(settled, DELIVERY_TIMEOUT)
    m = counters(plugin, c)
    assert m["received"] == sent, m
    assert m["received"] == m["published"] + m["dropped"] + m["rejected"] + m["buffered"], m
    assert m["dropped"] == 0 and m["buffered"] == 0 and m["rejected"] == rejected, m
    if published is not None:
        assert m["published"] == published, m


def test_every_line_arrives_in_order_over_https_and_keep_alive(daemon, plugin, endpoint, pki):
    token = new_token()
    c = daemon.container(http_config(endpoint, pki, token, labels="team"), name="/le-http", labels={"team": "core"})
    c.start_ok()
    sent = entries(6000)
    c.send_entries(sent)
    assert endpoint.wait_for(len(sent), DELIVERY_TIMEOUT), f"{endpoint.count()} of {len(sent)} lines arrived"
    time.sleep(0.5)
    got = [json.loads(l) for l in endpoint.lines()]
    assert len(got) == len(sent), f"{len(got)} lines for {len(sent)} (duplicates without a fault?)"
    for i, (ev, e) in enumerate(zip(got, sent)):
        want = c.expected(text(e.line), e.source, e.time_nano, attrs={"team": "core"})
        assert ev == want, f"line {i}: got {ev}\nwant {want}"
    reqs = endpoint.requests()
    assert all(r["path"] == f"/v1/noformat/{token}" and r["status"] == 204 for r in reqs), reqs[:3]
    assert all(r["ctype"].startswith("text/plain") for r in reqs)
    assert len(reqs) < len(sent) / 50, f"{len(reqs)} requests for {len(sent)} lines: not batched"
    assert len({r["conn"] for r in reqs}) == 1, "batches did not share one kept-alive connection"
    assert_accounted(plugin, c, len(sent), published=len(sent))
    assert not c.stop().failed


def test_line_only_sends_the_raw_lines(daemon, endpoint, pki):
    token = new_token()
    c = daemon.container(http_config(endpoint, pki, token, **{"line-only": "true"}))
    c.start_ok()
    lines = [b"plain %d" % i for i in range(500)] + [b"first\nsecond", "\u00e9\U0001F680".encode()]
    c.log_lines([("stdout", l) for l in lines])
    assert endpoint.wait_for(len(lines), DELIVERY_TIMEOUT), f"{endpoint.count()} of {len(lines)}"
    got = endpoint.lines()
    assert got[:500] == lines[:500]
    assert got[500] == "first\u2028second".encode()   # one event, one body line
    assert got[501] == lines[501]
    c.stop()


def test_503_for_a_while_then_204_loses_nothing(daemon, plugin, endpoint, pki):
    endpoint.set_mode(status=503)
    token = new_token()
    c = daemon.container(http_config(endpoint, pki, token))
    c.start_ok()
    sent = entries(4000)
    c.send_entries(sent)
    assert wait_until(lambda: sum(r["status"] == 503 for r in endpoint.requests()) >= 3, DELIVERY_TIMEOUT)
    time.sleep(1)
    tried = len(endpoint.requests())
    assert tried < 40, f"{tried} requests in about 2 s of 503s: no backoff"
    assert endpoint.count() == 0 and counters(plugin, c)["published"] == 0
    endpoint.set_mode(status=204)
    assert endpoint.wait_for(len(sent), DELIVERY_TIMEOUT + 15), f"{endpoint.count()} of {len(sent)} after the 503s"
    time.sleep(0.5)
    got = logs(endpoint)
    assert got == [text(e.line) for e in sent], "lines lost, reordered or repeated across 503s"
    assert_accounted(plugin, c, len(sent), published=len(sent))
    c.stop()


def test_lagging_endpoint_killed_and_restarted_loses_nothing(daemon, plugin, endpoint, pki):
    # Slow reads and slow answers: batches wait in the endpoint's kernel and in its hands when
    # it is killed. Nothing unanswered may count as delivered.
    endpoint.set_mode(status=204, read_size=4096, read_pause=0.02, delay=0.3)
    token = new_token()
    c = daemon.container(http_config(endpoint, pki, token))
    c.start_ok()
    sent = entries(30000)
    c.send_entries(sent)
    assert wait_until(lambda: endpoint.count() > 0, DELIVERY_TIMEOUT)
    time.sleep(1.5)
    endpoint.kill()
    before = endpoint.count()
    assert before < len(sent), "everything arrived before the kill: the endpoint did not lag"
    published = counters(plugin, c)["published"]
    assert published <= before, f"{published} lines published but only {before} confirmed by the endpoint"
    time.sleep(2)
    endpoint.set_mode(status=204)
    endpoint.start()
    assert wait_until(lambda: len(set(logs(endpoint))) >= len(sent), DELIVERY_TIMEOUT + 20), \
        f"{len(set(logs(endpoint)))} of {len(sent)} distinct lines after the restart"
    time.sleep(0.5)
    got = logs(endpoint)
    assert first_seen(got) == [text(e.line) for e in sent], "lines lost or reordered"
    dup = len(got) - len(sent)
    assert dup <= 5000, f"{dup} duplicates: more than the batch in flight"
    assert_accounted(plugin, c, len(sent), published=len(sent))
    c.stop()


def test_400_counts_the_batch_as_rejected_without_retrying(daemon, plugin, endpoint, pki):
    endpoint.set_mode(status=400)
    token = new_token()
    c = daemon.container(http_config(endpoint, pki, token))
    c.start_ok()
    refused = entries(300, b"refused")
    c.send_entries(refused)
    assert wait_until(lambda: counters(plugin, c)["rejected"] == len(refused), DELIVERY_TIMEOUT), counters(plugin, c)
    time.sleep(2)
    reqs = endpoint.requests()
    assert sum(r["lines"] for r in reqs) == len(refused), f"rejected lines were sent again: {reqs}"
    assert wait_until(lambda: "HTTP 400" in plugin.output(), 10), "the status is not in the log"
    endpoint.set_mode(status=204)
    later = entries(200, b"later")
    c.send_entries(later)
    assert endpoint.wait_for(len(later), DELIVERY_TIMEOUT)
    assert logs(endpoint) == [text(e.line) for e in later]
    assert_accounted(plugin, c, len(refused) + len(later), published=len(later), rejected=len(refused))
    c.stop()


def test_the_token_never_appears_in_the_log_or_metrics(daemon, plugin, endpoint, pki):
    token = new_token()
    endpoint.set_mode(status=503)
    c = daemon.container(http_config(endpoint, pki, token))
    c.start_ok()
    c.send_entries(entries(50))
    assert wait_until(lambda: "HTTP 503" in plugin.output(), DELIVERY_TIMEOUT)
    body = http_get(plugin.socket, "/metrics").body.decode()
    assert token not in body and token not in plugin.output()
    assert f'driver="logentries",connection="https://localhost:{endpoint.port}"' in body, "no connection series"
    assert f"localhost:{endpoint.port}" in plugin.output()
    endpoint.set_mode(status=204)
    assert endpoint.wait_for(50, DELIVERY_TIMEOUT)
    c.stop()
    # The conftest's teardown also checks stdout and stderr for every secret().


@pytest.mark.parametrize("config, message", [
    ({"logentries-transport": "http"}, "needs logentries-region"),
    ({"logentries-transport": "ftp"}, "invalid logentries-transport"),
    ({"logentries-url": "https://localhost/x"}, "logentries-url needs logentries-transport=http"),
    ({"logentries-transport": "http", "logentries-url": "ftp://localhost/v1/noformat/"}, "https:// or http://"),
    ({"logentries-transport": "http", "logentries-address": "localhost:443", "logentries-region": "eu"},
     "logentries-address is for logentries-transport=tcp"),
    ({"logentries-transport": "http", "logentries-url": "http://127.0.0.1:9/v1/noformat/",
      "logentries-tls-ca-cert": "/etc/logrelay/ca.pem"}, "no effect with an http://"),
], ids=["no-endpoint", "bad-transport", "url-without-http", "bad-scheme", "address-with-http", "ca-with-http"])
def test_bad_http_options_fail_start_logging_without_the_token(config, message, daemon, plugin):
    token = new_token()
    cfg = {"logentries-token": token}
    cfg.update(config)
    resp = daemon.container(cfg).start()
    assert resp.failed and message in resp.err, resp.err
    assert token not in resp.err
