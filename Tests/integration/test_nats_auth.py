"""NKeys, .creds files (operator mode, JWTs made here) and TLS-first against real nats-servers.

Each test runs on every nats-server binary that exists (Debian's 2.9.10 and the 2.10 / 2.15
that `make deps` extracts), skipping with a reason where a version lacks the feature. Keys are
made with PyPI's `nkeys`; operator, account and user JWTs are signed here by hand (the JWT v2
layout: header {"typ":"JWT","alg":"ed25519-nkey"}, claims with iss/sub/nats.type, an Ed25519
signature by the issuer), and the server resolves accounts from memory (resolver MEMORY).
Seeds are registered with conftest's secret scan: they must never appear in the plugin's log.
"""

import base64
import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from helpers import (NATS_SERVERS, PROMPT, metrics_text, nats_tls_block, secret, server_bin,  # noqa: F401 (a fixture)
                     text, tls_context, wait_until)

nkeys = pytest.importorskip("nkeys", reason="pip install nkeys (makes the test keys)")
import nacl.signing  # noqa: E402  (nkeys depends on PyNaCl)


# ---------------------------------------------------------------------------
# keys and JWTs


class Key:
    def __init__(self, prefix: int):
        raw = bytes(nacl.signing.SigningKey.generate())
        self.seed = nkeys.encode_seed(raw, prefix).decode()
        self.kp = nkeys.from_seed(self.seed.encode())
        self.public = self.kp.public_key.decode()
        secret(self.seed)

    def sign(self, data: bytes) -> bytes:
        return self.kp.sign(data)


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def make_jwt(issuer: Key, subject: str, kind: str, nats: dict, name: str, exp=None) -> str:
    claims = {"iat": int(time.time()) - 60, "iss": issuer.public, "name": name, "sub": subject,
              "nats": dict(nats, type=kind, version=2)}
    if exp is not None:
        claims["exp"] = exp
    claims["jti"] = base64.b32encode(hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()).decode().rstrip("=")
    head = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(issuer.sign(f'{head}.{body}'.encode()))}"


def creds_text(jwt: str, seed: str) -> str:
    """What `nsc generate creds` writes."""
    return (f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n"
            "*************************************************************\n")


class Operator:
    """An operator, one account and users signed by it; `config` is the server's part."""

    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.op = Key(nkeys.PREFIX_BYTE_OPERATOR)
        self.acct = Key(nkeys.PREFIX_BYTE_ACCOUNT)
        self.op_jwt = make_jwt(self.op, self.op.public, "operator", {}, "lr-op")
        limits = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True,
                  "conn": -1, "leaf": -1}
        self.acct_jwt = make_jwt(self.op, self.acct.public, "account", {"limits": limits}, "lr-acct")
        (self.dir / "op.jwt").write_text(self.op_jwt)

    @property
    def config(self) -> str:
        return (f'operator: "{self.dir / "op.jwt"}"\nresolver: MEMORY\n'
                f"resolver_preload: {{\n  {self.acct.public}: \"{self.acct_jwt}\"\n}}\n")

    def user_creds(self, name: str, exp=None, signer=None) -> tuple[Path, Key]:
        u = Key(nkeys.PREFIX_BYTE_USER)
        jwt = make_jwt(self.acct, u.public, "user", {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1},
                       name, exp=exp)
        path = self.dir / f"{name}.creds"
        path.write_text(creds_text(jwt, (signer or u).seed))
        return path, u


def nkey_server_config(*users: Key) -> str:
    entries = "\n".join(f'    {{ nkey: "{u.public}" }}' for u in users)
    return f"authorization {{\n  users = [\n{entries}\n  ]\n}}\n"


def _deliver(daemon, sub, config, n=300, tag=b"nk"):
    c = daemon.container(config)
    c.start_ok()
    entries = c.log_lines([("stdout", tag + b" %d" % i) for i in range(n)])
    assert sub.wait_for(n), f"{sub.count()} of {n} lines arrived"
    got = [m.event()["log"] for m in sub.snapshot() if m.subject == c.short_id]
    assert got == [text(e.line) for e in entries]
    return c


def _last_error(plugin) -> str:
    return "\n".join(l for l in metrics_text(plugin.socket).splitlines() if "last_error_info{" in l)


# ---------------------------------------------------------------------------


def test_nkey_user_in_an_authorization_block(server_bin, daemon, plugin, nats_factory, subscriber_factory, workdir):
    user = Key(nkeys.PREFIX_BYTE_USER)
    server = nats_factory(extra_config=nkey_server_config(user), monitor=True)
    seed_file = Path(workdir) / "user.nk"
    seed_file.write_text(user.seed + "\n")
    sub = subscriber_factory(server.url, ">", nkeys_seed_str=user.seed)
    c = _deliver(daemon, sub, {"nats-servers": server.url, "nats-nkey": str(seed_file)})
    assert not c.stop().failed
    assert user.seed not in plugin.output()


def test_bad_key_files_fail_start_logging_without_showing_the_seed(server_bin, daemon, workdir):
    if server_bin != sorted(NATS_SERVERS, key=NATS_SERVERS.get)[0]:
        pytest.skip("StartLogging's file checks do not depend on the server version")
    user = Key(nkeys.PREFIX_BYTE_USER)
    bad = Path(workdir) / "bad.nk"
    bad.write_text(user.seed[:-3] + "AAA\n")          # a typo: the checksum fails
    account = Key(nkeys.PREFIX_BYTE_ACCOUNT)
    acct = Path(workdir) / "acct.nk"
    acct.write_text(account.seed)
    fifo = Path(workdir) / "a-fifo"
    os.mkfifo(fifo)
    cases = [({"nats-nkey": str(bad)}, "checksum"),
             ({"nats-nkey": str(acct)}, "account seed"),
             ({"nats-nkey": str(Path(workdir) / "missing.nk")}, "cannot read"),
             ({"nats-nkey": str(fifo)}, "not a regular file"),
             ({"nats-creds": str(bad)}, "no user JWT"),
             ({"nats-creds": str(bad), "nats-nkey": str(bad)}, "alternatives"),
             ({"nats-nkey": "relative.nk"}, "absolute path")]
    for config, expected in cases:
        r = daemon.container(config).start()
        assert r.failed and expected in r.err, f"{config}: {r!r}"
        assert user.seed[:20] not in r.err and account.seed[:20] not in r.err


def test_wrong_seed_gets_a_clear_error_once(server_bin, daemon, plugin, nats_factory, workdir):
    allowed = Key(nkeys.PREFIX_BYTE_USER)
    other = Key(nkeys.PREFIX_BYTE_USER)
    server = nats_factory(extra_config=nkey_server_config(allowed))
    seed_file = Path(workdir) / "other.nk"
    seed_file.write_text(other.seed)
    c = daemon.container({"nats-servers": server.url, "nats-nkey": str(seed_file)})
    t0 = time.monotonic()
    assert not c.start().failed
    assert time.monotonic() - t0 < PROMPT
    c.log_lines([("stdout", b"never %d" % i) for i in range(50)])
    assert wait_until(lambda: "Authorization Violation" in plugin.stderr(), 15), plugin.output()[-2000:]
    time.sleep(8)     # several reconnect attempts, each refused the same way
    refusals = [l for l in plugin.stderr().splitlines() if "Authorization Violation" in l]
    assert len(refusals) == 1, f"logged more than once per cause: {refusals}"
    assert "nats-nkey" in refusals[0] and str(seed_file) in refusals[0], refusals[0]
    assert "Authorization Violation" in _last_error(plugin)
    assert other.seed not in plugin.output() and other.seed not in metrics_text(plugin.socket)
    assert not c.stop().failed


def test_operator_mode_creds_file(server_bin, daemon, plugin, nats_factory, subscriber_factory, workdir):
    op = Operator(workdir)
    server = nats_factory(extra_config=op.config, monitor=True)
    creds, _ = op.user_creds("pub")
    sub_creds, _ = op.user_creds("sub")
    sub = subscriber_factory(server.url, ">", user_credentials=str(sub_creds))
    c = _deliver(daemon, sub, {"nats-servers": server.url, "nats-creds": str(creds)})
    assert not c.stop().failed


def test_expired_user_jwt_and_wrong_seed_in_creds_get_clear_errors(server_bin, daemon, plugin, nats_factory, workdir):
    op = Operator(workdir)
    server = nats_factory(extra_config=op.config)
    expired, _ = op.user_creds("old", exp=int(time.time()) - 3600)
    c = daemon.container({"nats-servers": server.url, "nats-creds": str(expired)})
    assert not c.start().failed, "an expired JWT is the server's to judge: StartLogging goes on"
    c.log_lines([("stdout", b"never")])
    assert wait_until(lambda: "expired at" in plugin.stderr(), 15), plugin.output()[-2000:]
    line = next(l for l in plugin.stderr().splitlines() if "expired at" in l)
    assert "nats-creds" in line and str(expired) in line, line
    assert not c.stop().failed

    stranger = Key(nkeys.PREFIX_BYTE_USER)
    wrong, _ = op.user_creds("wrongseed", signer=stranger)    # the JWT of one user, the seed of another
    c2 = daemon.container({"nats-servers": server.url, "nats-creds": str(wrong)})
    assert not c2.start().failed
    c2.log_lines([("stdout", b"never")])
    assert wait_until(lambda: "check that the seed in nats-creds" in plugin.stderr(), 15), plugin.output()[-2000:]
    assert not c2.stop().failed


def test_rotated_credentials_are_used_after_the_next_reconnect(server_bin, daemon, plugin, nats_factory,
                                                               subscriber_factory, workdir):
    old, new = Key(nkeys.PREFIX_BYTE_USER), Key(nkeys.PREFIX_BYTE_USER)
    reader = Key(nkeys.PREFIX_BYTE_USER)
    server = nats_factory(extra_config=nkey_server_config(old, reader), monitor=True)
    seed_file = Path(workdir) / "rotating.nk"
    seed_file.write_text(old.seed)
    sub = subscriber_factory(server.url, ">", nkeys_seed_str=reader.seed)
    c = _deliver(daemon, sub, {"nats-servers": server.url, "nats-nkey": str(seed_file)}, n=100, tag=b"before")

    # Rotation: the server now knows only the new key; the file on disk holds it.
    tmp = seed_file.with_suffix(".tmp")
    tmp.write_text(new.seed)
    tmp.replace(seed_file)
    server.kill()
    server.config_path.write_text(server.config_path.read_text().replace(old.public, new.public))
    server.start()
    assert wait_until(lambda: "logrelay" in server.client_names(), 20), plugin.output()[-2000:]
    sub2 = subscriber_factory(server.url, c.short_id, nkeys_seed_str=reader.seed)
    after = c.log_lines([("stdout", b"after %d" % i) for i in range(100)])
    assert sub2.wait_for(100), f"{sub2.count()} of 100 lines arrived with the rotated key"
    assert [m.event()["log"] for m in sub2.snapshot()] == [text(e.line) for e in after]
    assert not c.stop().failed


def test_tls_first(server_bin, daemon, plugin, nats_factory, subscriber_factory, pki):
    if NATS_SERVERS[server_bin] < (2, 10, 4):
        pytest.skip(f"handshake_first arrived in nats-server 2.10.4 (this one is {'.'.join(map(str, NATS_SERVERS[server_bin]))})")
    tls = nats_tls_block(pki).replace("tls {\n", "tls {\n  handshake_first: true\n")
    server = nats_factory(extra_config=tls, monitor=True)
    url = f"tls://127.0.0.1:{server.port}"
    sub = subscriber_factory(url, ">", tls=tls_context(pki), tls_handshake_first=True)
    c = _deliver(daemon, sub, {"nats-servers": url, "nats-tls-ca-cert": str(pki.ca), "nats-tls-first": "true"})
    assert not c.stop().failed

    # Without nats-tls-first the plaintext INFO never comes: a clear failure, not a hang.
    c2 = daemon.container({"nats-servers": url, "nats-tls-ca-cert": str(pki.ca)})
    assert not c2.start().failed
    assert wait_until(lambda: "nats" in plugin.stderr() and str(server.port) in plugin.stderr(), 15)
    assert not c2.stop().failed
