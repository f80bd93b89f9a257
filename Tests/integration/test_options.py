"""Option validation: StartLogging fails with a message naming the bad key; secrets never leak."""

import time

import pytest

from helpers import PROMPT, secret

PW = secret("Opt-Secret-Pass-5d1e")
TOK = secret("Opt-Secret-Token-a9c0")
URLPW = secret("Url-Secret-Pass-77b3")

# every bad config also carries credentials, which must not show up in the error
CREDS = {"nats-user": "alice", "nats-pass": PW}

BAD = [
    ("unknown key", {"nats-nope": "1"}, ["nats-nope", "nats"]),
    ("unknown key (common typo)", {"lables": "a"}, ["lables", "nats"]),
    ("buffer-size not a size", {"buffer-size": "12q"}, ["buffer-size"]),
    ("buffer-size negative", {"buffer-size": "-5m"}, ["buffer-size"]),
    ("buffer-full unknown", {"buffer-full": "sometimes"}, ["buffer-full"]),
    ("partial-merge not a bool", {"partial-merge": "maybe"}, ["partial-merge"]),
    ("labels-regex invalid", {"labels-regex": "("}, ["labels-regex"]),
    ("env-regex invalid", {"env-regex": "[a-"}, ["env-regex"]),
    ("subject with empty token", {"nats-subject": "a..b"}, ["nats-subject"]),
    ("subject with space", {"nats-subject": "foo bar"}, ["nats-subject"]),
    ("subject wildcard *", {"nats-subject": "*"}, ["nats-subject"]),
    ("subject wildcard >", {"nats-subject": "logs.>"}, ["nats-subject"]),
    ("subject leading dot", {"nats-subject": ".logs"}, ["nats-subject"]),
    ("tag unknown field", {"tag": "{{.NoSuchField}}"}, ["tag"]),
    ("tag unclosed", {"tag": "{{.ID"}, ["tag"]),
    ("tag unknown function", {"tag": "{{frobnicate .ID}}"}, ["tag"]),
    ("servers bad scheme", {"nats-servers": "http://127.0.0.1:4222"}, ["nats-servers"]),
    ("servers bad port", {"nats-servers": "nats://127.0.0.1:notaport"}, ["nats-servers"]),
    ("servers port out of range", {"nats-servers": "nats://127.0.0.1:99999"}, ["nats-servers"]),
    ("servers bad URL carrying a password",
     {"nats-servers": f"nats://alice:{URLPW}@127.0.0.1:notaport"}, ["nats-servers"]),
    ("max-reconnect not a number", {"nats-max-reconnect": "often"}, ["nats-max-reconnect"]),
    ("tls-skip-verify not a bool", {"nats-tls-skip-verify": "perhaps"}, ["nats-tls-skip-verify"]),
    ("tls ca cert unreadable", {"nats-tls-ca-cert": "/nonexistent/ca.pem"}, ["nats-tls-ca-cert"]),
    ("tls ca cert relative path", {"nats-tls-ca-cert": "ca.pem"}, ["nats-tls-ca-cert"]),
]


@pytest.mark.parametrize("what,config,must_name", BAD, ids=[b[0] for b in BAD])
def test_bad_option_fails_start_logging_naming_the_key(what, config, must_name, daemon, plugin):
    cfg = dict(CREDS)
    cfg["nats-servers"] = "nats://127.0.0.1:4222"
    cfg.update(config)
    if what == "unknown key":
        cfg["nats-token"] = TOK  # user+pass+token: the unknown key must still be what is reported
    c = daemon.container(cfg)
    r = c.start()
    assert r.failed, f"{what}: StartLogging succeeded with {config}"
    assert r.status in (200, 400, 422) or 400 <= r.status < 500, r
    msg = r.err
    assert msg, f"{what}: no Err message in {r!r}"
    for word in must_name:
        assert word in msg, f"{what}: message {msg!r} does not name {word!r}"
    for s in (PW, TOK, URLPW):
        assert s not in msg, f"{what}: secret in the error message {msg!r}"
    assert plugin.alive()


def test_error_body_never_echoes_the_token(daemon):
    """The whole response body (not only Err) must be free of the token."""
    bad_tok = secret("bad token with spaces \u00e9 Q7x")
    c = daemon.container({"nats-servers": "nats://127.0.0.1:4222", "nats-token": bad_tok,
                          "nats-nope": "1"})
    r = c.start()
    assert r.failed and bad_tok not in r.body.decode("utf-8", "replace")


def test_daemon_consumed_keys_and_good_values_are_accepted(daemon):
    c = daemon.container({
        "nats-servers": "nats://127.0.0.1:4222,tls://127.0.0.1:4443",
        "mode": "non-blocking", "max-buffer-size": "4m", "cache-disabled": "false",
        "cache-max-size": "20m", "cache-max-file": "5", "cache-compress": "true",
        "max-size": "10m", "max-file": "3", "compress": "false",
        "tag": "{{.Name}}/{{.ID}}", "nats-subject": "logs.{{.ID}}",
        "labels": "a,b", "labels-regex": "^com\\.example\\.", "env": "A", "env-regex": "^X_",
        "buffer-size": "16m", "buffer-full": "drop-newest", "partial-merge": "false",
        "nats-max-reconnect": "-1", "nats-user": "u", "nats-pass": PW,
    })
    r = c.start()
    assert not r.failed, r
    assert r.status == 200
    assert not c.stop().failed


@pytest.mark.parametrize("value", ["64k", "512K", "8m", "1g", "65536", "2M"])
def test_buffer_size_accepts_docker_size_suffixes(value, daemon):
    c = daemon.container({"nats-servers": "nats://127.0.0.1:4222", "buffer-size": value})
    r = c.start()
    assert not r.failed, (value, r)
    c.stop()


@pytest.mark.parametrize("value", ["drop-oldest", "drop-newest", "block"])
def test_buffer_full_values(value, daemon):
    c = daemon.container({"nats-servers": "nats://127.0.0.1:4222", "buffer-full": value})
    r = c.start()
    assert not r.failed, (value, r)
    c.stop()


def test_config_null_like_very_old_containers_uses_defaults(daemon):
    c = daemon.container(None)
    r = c.start()
    assert not r.failed, f"Config null must mean defaults: {r!r}"
    c.stop()


def test_bad_options_answer_promptly(daemon):
    c = daemon.container({"nats-servers": "nats://10.255.255.1:4222", "nats-subject": "a..b"})
    t0 = time.monotonic()
    r = c.start()
    assert r.failed
    assert time.monotonic() - t0 < PROMPT
