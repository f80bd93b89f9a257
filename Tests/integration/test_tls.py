"""NATS over TLS against real nats-servers (configs from the wire notes §A4/§A8).

Certificates come from the session's throwaway PKI (conftest `pki`): the test CA signs the
server certificate (SAN DNS:localhost, IP:127.0.0.1) and a client certificate; a second,
unrelated CA plays "the wrong CA". Every delivery is checked with an independent nats-py
subscriber that connects over TLS itself.
"""

import time
import urllib.parse

import pytest

from helpers import (PROMPT, metric, metric_samples, metrics_text, nats_tls_block, secret, text,
                     tls_context, wait_until)

USER = "tlsuser"
PASS = secret("tls-s3cr3t-pw-4b7d")
TOKEN = secret("tls-t0k3n-c2e9")


def _tls_server(nats_factory, pki, verify=False, extra="", **kw):
    return nats_factory(extra_config=nats_tls_block(pki, verify=verify, **kw) + extra, monitor=True)


def _sub(subscriber_factory, server, pki, client_cert=False, **kw):
    return subscriber_factory(f"tls://127.0.0.1:{server.port}", ">",
                              tls=tls_context(pki, client_cert=client_cert), **kw)


def _lines(tag: bytes, n: int):
    """n short lines with a few long ones (cut by the daemon at 16 KiB, rejoined by the
    plugin) so that events cross TLS record boundaries."""
    out = []
    for i in range(n):
        if i % 2500 == 1234:
            out.append(("stdout", tag + b" long %d " % i + b"L" * 40_000))
        else:
            out.append(("stderr" if i % 7 == 0 else "stdout", tag + b" %d" % i))
    return out


def _deliver_all(daemon, sub, config, n=20_000, tag=b"tls"):
    c = daemon.container(config)
    c.start_ok()
    entries = c.log_lines(_lines(tag, n))
    assert sub.wait_for(n), f"{sub.count()} of {n} lines arrived over TLS"
    sub.wait_quiet(1.0)
    got = [m.event() for m in sub.snapshot() if m.subject == c.short_id]
    assert [e["log"] for e in got] == [text(line) for _, line in _lines(tag, n)], \
        "lines over TLS missing, duplicated or out of order"
    assert all(e["container_id"] == c.id for e in got)
    assert len(entries) >= n
    assert not c.stop().failed
    return c


def _plugin_connection(server):
    conns = [x for x in server.connz().get("connections") or [] if x.get("name") == "logrelay"]
    assert conns, f"no connection named logrelay on the server: {server.client_names()}"
    return conns[0]


def _wait_error(plugin, needle: str, timeout: float = 15):
    """Waits for a logrelay_connection_last_error_info sample whose error mentions `needle`."""
    found = []

    def has():
        found[:] = [l for l, v in metric_samples(plugin.socket, "logrelay_connection_last_error_info")
                    if needle in l and v == 1]
        return bool(found)
    assert wait_until(has, timeout, 0.2), (
        f"no logrelay_connection_last_error_info mentioning {needle!r} in /metrics:\n"
        + "\n".join(l for l in metrics_text(plugin.socket).splitlines() if l.startswith("logrelay_connection")))
    return found[0]


def _nothing_delivered(daemon, plugin, sub, config, error_needle, log_needle=None, n=300):
    """StartLogging succeeds at once, the FIFO keeps draining, nothing is published, the error
    is in /metrics (connected 0) and in the plugin's log, and the plugin stays up."""
    c = daemon.container(config)
    t0 = time.monotonic()
    r = c.start()
    assert not r.failed, f"StartLogging must not fail on a TLS problem found on the network: {r!r}"
    assert time.monotonic() - t0 < PROMPT, "StartLogging waited on the network"
    c.log_lines([("stdout", b"must not arrive %d" % i) for i in range(n)])
    assert c.writer.flush(10), "the plugin stopped draining the FIFO of the failing stream"
    label = _wait_error(plugin, error_needle)
    print(f"error reported in /metrics: {label}")
    connected = metric_samples(plugin.socket, "logrelay_connection_up")
    assert connected and all(v == 0 for _, v in connected), \
        f"logrelay_connection_up should be 0 while the TLS handshake fails: {connected}"
    time.sleep(2)
    assert sub.count() == 0, f"{sub.count()} lines were published through a failing TLS connection"
    assert metric(plugin.socket, "logrelay_container_lines_published_total", c.name) in (0, None)
    needle = log_needle or error_needle
    assert wait_until(lambda: needle in plugin.stderr(), 5), \
        f"the plugin's log does not say {needle!r}"
    assert plugin.alive()
    return c, label


# ---------------------------------------------------------------------------
# server authentication: the right CA, a wrong CA, a wrong name
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["tls-scheme", "ca-option-only", "localhost-name"])
def test_right_ca_delivers_every_line_over_tls(how, daemon, nats_factory, subscriber_factory, pki):
    server = _tls_server(nats_factory, pki)
    sub = _sub(subscriber_factory, server, pki)
    url = {"tls-scheme": f"tls://127.0.0.1:{server.port}",
           "ca-option-only": f"nats://127.0.0.1:{server.port}",   # TLS asked for by nats-tls-ca-cert
           "localhost-name": f"tls://localhost:{server.port}"}[how]
    _deliver_all(daemon, sub, {"nats-servers": url, "nats-tls-ca-cert": str(pki.ca)})
    conn = _plugin_connection(server)
    assert conn.get("tls_version"), f"the plugin's connection is not TLS: {conn}"


def test_wrong_ca_publishes_nothing_reports_the_error_and_the_plugin_lives_on(
        daemon, plugin, nats_factory, subscriber_factory, pki):
    server = _tls_server(nats_factory, pki)
    sub = _sub(subscriber_factory, server, pki)
    bad, label = _nothing_delivered(
        daemon, plugin, sub,
        {"nats-servers": f"tls://127.0.0.1:{server.port}", "nats-tls-ca-cert": str(pki.other_ca)},
        "certificate verification failed")
    assert str(server.port) in label, f"the error does not say which server failed: {label}"
    assert "logrelay" not in server.client_names()

    # the same plugin still serves a container with the right CA
    _deliver_all(daemon, sub, {"nats-servers": f"tls://127.0.0.1:{server.port}",
                               "nats-tls-ca-cert": str(pki.ca)}, n=2000, tag=b"right-ca")
    assert all(m.subject != bad.short_id for m in sub.snapshot())
    t0 = time.monotonic()
    assert not bad.stop().failed
    assert time.monotonic() - t0 < PROMPT
    assert plugin.alive()


def test_no_ca_option_verifies_against_system_cas_and_refuses_the_test_ca(
        daemon, plugin, nats_factory, subscriber_factory, pki):
    """tls:// without nats-tls-ca-cert: verification is on by default (system CAs)."""
    server = _tls_server(nats_factory, pki)
    sub = _sub(subscriber_factory, server, pki)
    _nothing_delivered(daemon, plugin, sub, {"nats-servers": f"tls://127.0.0.1:{server.port}"},
                       "certificate verification failed")


def test_server_that_requires_tls_is_never_spoken_to_in_plaintext_or_unverified(
        daemon, plugin, nats_factory, subscriber_factory, pki):
    """nats:// to a TLS-required server: the plugin upgrades (as nats.go does), still verifying."""
    server = _tls_server(nats_factory, pki)
    sub = _sub(subscriber_factory, server, pki)
    _nothing_delivered(daemon, plugin, sub, {"nats-servers": f"nats://127.0.0.1:{server.port}"},
                       "certificate verification failed")


def test_certificate_for_another_name_is_refused(daemon, plugin, nats_factory, subscriber_factory, pki):
    server = _tls_server(nats_factory, pki, cert=pki.wrongname_cert, key=pki.wrongname_key)
    sub = subscriber_factory(f"tls://127.0.0.1:{server.port}", ">",
                             tls=tls_context(pki), tls_hostname="not-this-host.example")
    _nothing_delivered(daemon, plugin, sub,
                       {"nats-servers": f"tls://127.0.0.1:{server.port}", "nats-tls-ca-cert": str(pki.ca)},
                       "certificate verification failed")


def test_skip_verify_accepts_an_unverifiable_server(daemon, nats_factory, subscriber_factory, pki):
    server = _tls_server(nats_factory, pki, cert=pki.wrongname_cert, key=pki.wrongname_key)
    sub = subscriber_factory(f"tls://127.0.0.1:{server.port}", ">",
                             tls=tls_context(pki), tls_hostname="not-this-host.example")
    _deliver_all(daemon, sub, {"nats-servers": f"tls://127.0.0.1:{server.port}",
                               "nats-tls-ca-cert": str(pki.other_ca), "nats-tls-skip-verify": "true"},
                 n=2000)
    assert _plugin_connection(server).get("tls_version")


def test_tls_scheme_to_a_plaintext_server_is_refused(daemon, plugin, nats_factory, subscriber_factory, pki):
    """tls:// is local config: a server (or a MITM) that does not offer TLS gets nothing."""
    server = nats_factory(monitor=True)
    sub = subscriber_factory(server.url, ">")
    _nothing_delivered(daemon, plugin, sub,
                       {"nats-servers": f"tls://127.0.0.1:{server.port}", "nats-tls-ca-cert": str(pki.ca)},
                       "TLS")


def test_tls_optional_server_is_used_with_tls_when_asked(daemon, nats_factory, subscriber_factory, pki):
    server = _tls_server(nats_factory, pki, extra="allow_non_tls: true\n")
    sub = subscriber_factory(server.url, ">")   # plaintext subscriber on the same server
    _deliver_all(daemon, sub, {"nats-servers": f"tls://127.0.0.1:{server.port}",
                               "nats-tls-ca-cert": str(pki.ca)}, n=2000)
    assert _plugin_connection(server).get("tls_version"), "tls:// to a tls_available server went plaintext"


# ---------------------------------------------------------------------------
# mutual TLS: a server that demands client certificates
# ---------------------------------------------------------------------------

def test_mutual_tls_with_client_certificate_delivers_every_line(daemon, nats_factory, subscriber_factory, pki):
    server = _tls_server(nats_factory, pki, verify=True)
    sub = _sub(subscriber_factory, server, pki, client_cert=True)
    _deliver_all(daemon, sub, {"nats-servers": f"tls://127.0.0.1:{server.port}",
                               "nats-tls-ca-cert": str(pki.ca),
                               "nats-tls-cert": str(pki.client_cert), "nats-tls-key": str(pki.client_key)})
    assert _plugin_connection(server).get("tls_version")


@pytest.mark.parametrize("which", ["no-client-cert", "client-cert-of-unrelated-ca"])
def test_mutual_tls_without_an_acceptable_client_certificate_publishes_nothing(
        which, daemon, plugin, nats_factory, subscriber_factory, pki):
    server = _tls_server(nats_factory, pki, verify=True)
    sub = _sub(subscriber_factory, server, pki, client_cert=True)
    config = {"nats-servers": f"tls://127.0.0.1:{server.port}", "nats-tls-ca-cert": str(pki.ca)}
    if which == "client-cert-of-unrelated-ca":
        config.update({"nats-tls-cert": str(pki.other_client_cert), "nats-tls-key": str(pki.other_client_key)})
    # the server rejects the handshake: the error names the server, whatever OpenSSL calls it
    _nothing_delivered(daemon, plugin, sub, config, f"127.0.0.1:{server.port}")


# ---------------------------------------------------------------------------
# credentials over TLS
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["options", "url"])
def test_user_and_password_over_tls(how, daemon, nats_factory, subscriber_factory, pki):
    server = _tls_server(nats_factory, pki,
                         extra=f'authorization {{\n  user: {USER}\n  password: "{PASS}"\n}}\n')
    sub = _sub(subscriber_factory, server, pki, user=USER, password=PASS)
    if how == "options":
        config = {"nats-servers": f"tls://127.0.0.1:{server.port}", "nats-user": USER, "nats-pass": PASS}
    else:
        config = {"nats-servers": f"tls://{USER}:{urllib.parse.quote(PASS)}@127.0.0.1:{server.port}"}
    config["nats-tls-ca-cert"] = str(pki.ca)
    _deliver_all(daemon, sub, config, n=5000)


@pytest.mark.parametrize("how", ["options", "url"])
def test_token_over_tls(how, daemon, nats_factory, subscriber_factory, pki):
    server = _tls_server(nats_factory, pki, extra=f'authorization {{\n  token: "{TOKEN}"\n}}\n')
    sub = _sub(subscriber_factory, server, pki, token=TOKEN)
    if how == "options":
        config = {"nats-servers": f"tls://127.0.0.1:{server.port}", "nats-token": TOKEN}
    else:
        config = {"nats-servers": f"tls://{TOKEN}@127.0.0.1:{server.port}"}
    config["nats-tls-ca-cert"] = str(pki.ca)
    _deliver_all(daemon, sub, config, n=5000)


def test_mutual_tls_plus_user_and_password(daemon, plugin, nats_factory, subscriber_factory, pki):
    """The wire notes' tls.conf: client certificate demanded and user/password required."""
    server = _tls_server(nats_factory, pki, verify=True,
                         extra=f'authorization {{\n  user: {USER}\n  password: "{PASS}"\n}}\n')
    sub = _sub(subscriber_factory, server, pki, client_cert=True, user=USER, password=PASS)
    _deliver_all(daemon, sub, {"nats-servers": f"tls://127.0.0.1:{server.port}", "nats-user": USER,
                               "nats-pass": PASS, "nats-tls-ca-cert": str(pki.ca),
                               "nats-tls-cert": str(pki.client_cert), "nats-tls-key": str(pki.client_key)},
                 n=5000)
    body = metrics_text(plugin.socket)
    assert PASS not in body


# ---------------------------------------------------------------------------
# TLS files: bad files fail StartLogging naming the option
# ---------------------------------------------------------------------------

def _bad_files(pki, tmp):
    junk = tmp / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    empty = tmp / "empty.pem"
    empty.write_text("")
    return [
        ("ca not PEM", {"nats-tls-ca-cert": str(junk)}, "nats-tls-ca-cert"),
        ("ca empty", {"nats-tls-ca-cert": str(empty)}, "nats-tls-ca-cert"),
        ("ca is a directory", {"nats-tls-ca-cert": str(pki.dir)}, "nats-tls-ca-cert"),
        ("cert not PEM", {"nats-tls-ca-cert": str(pki.ca), "nats-tls-cert": str(junk),
                          "nats-tls-key": str(pki.client_key)}, "nats-tls-cert"),
        ("cert unreadable", {"nats-tls-ca-cert": str(pki.ca), "nats-tls-cert": "/nonexistent/c.pem",
                             "nats-tls-key": str(pki.client_key)}, "nats-tls-cert"),
        ("key unreadable", {"nats-tls-ca-cert": str(pki.ca), "nats-tls-cert": str(pki.client_cert),
                            "nats-tls-key": "/nonexistent/k.pem"}, "nats-tls-key"),
        ("key is a certificate", {"nats-tls-ca-cert": str(pki.ca), "nats-tls-cert": str(pki.client_cert),
                                  "nats-tls-key": str(pki.ca)}, "nats-tls-key"),
        ("key does not match cert", {"nats-tls-ca-cert": str(pki.ca), "nats-tls-cert": str(pki.client_cert),
                                     "nats-tls-key": str(pki.other_client_key)}, "nats-tls-key"),
        # an incomplete pair: naming either option of the pair is actionable
        ("key without cert", {"nats-tls-ca-cert": str(pki.ca), "nats-tls-key": str(pki.client_key)},
         ("nats-tls-cert", "nats-tls-key")),
        ("cert without key", {"nats-tls-ca-cert": str(pki.ca), "nats-tls-cert": str(pki.client_cert)},
         ("nats-tls-key", "nats-tls-cert")),
    ]


def test_bad_tls_files_fail_start_logging_naming_the_option(daemon, plugin, pki, workdir):
    failures = []
    for what, opts, option in _bad_files(pki, workdir):
        config = {"nats-servers": "tls://127.0.0.1:4222"}
        config.update(opts)
        c = daemon.container(config)
        t0 = time.monotonic()
        r = c.start()
        took = time.monotonic() - t0
        if not r.failed:
            failures.append(f"{what}: StartLogging succeeded")
            c.stop()
        elif not any(o in r.err for o in ((option,) if isinstance(option, str) else option)):
            failures.append(f"{what}: error {r.err!r} does not name {option}")
        if took >= PROMPT:
            failures.append(f"{what}: StartLogging took {took:.1f}s")
    assert not failures, "\n".join(failures)
    assert plugin.alive()
