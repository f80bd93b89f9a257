"""Throwaway TLS material for the integration and e2e suites (openssl CLI only).

make_pki(dir) writes, in dir:
  ca.pem / ca-key.pem               the test CA (signs everything below)
  server-cert.pem / server-key.pem  CN=localhost, SAN DNS:localhost,IP:127.0.0.1, serverAuth
  client-cert.pem / client-key.pem  CN=logrelay-client, clientAuth
  other-ca.pem / other-ca-key.pem   a second, unrelated CA (a "wrong CA" for the client)
  other-client-cert.pem / -key.pem  a client certificate signed by the unrelated CA
  wrongname-cert.pem / -key.pem     signed by the test CA, but only for DNS:not-this-host.example
Keys are EC P-256 (as in the wire notes, §A8), certificates valid for 2 days.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PKI:
    dir: Path
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    other_ca_key: Path
    other_client_cert: Path
    other_client_key: Path
    wrongname_cert: Path
    wrongname_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {p.stderr.strip()}")


def _ca(d: Path, name: str, cn: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}-key.pem", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def _leaf(d: Path, name: str, cn: str, ca: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
             "-CAcreateserial", "-out", f"{name}-cert.pem", "-days", "2", "-sha256",
             "-extfile", f"{name}.ext", cwd=d)


def make_pki(d: Path) -> PKI:
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    _ca(d, "ca", "logrelay-test-ca")
    _ca(d, "other-ca", "logrelay-unrelated-ca")
    _leaf(d, "server", "localhost", "ca",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
          "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _leaf(d, "client", "logrelay-client", "ca",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    _leaf(d, "other-client", "logrelay-other-client", "other-ca",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    _leaf(d, "wrongname", "not-this-host.example", "ca",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
          "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:not-this-host.example\n")
    for f in d.glob("*.pem"):
        f.chmod(0o644)   # readable by the plugin whoever runs it (throwaway material)
    return PKI(dir=d, ca=d / "ca.pem", ca_key=d / "ca-key.pem",
               server_cert=d / "server-cert.pem", server_key=d / "server-key.pem",
               client_cert=d / "client-cert.pem", client_key=d / "client-key.pem",
               other_ca=d / "other-ca.pem", other_ca_key=d / "other-ca-key.pem",
               other_client_cert=d / "other-client-cert.pem", other_client_key=d / "other-client-key.pem",
               wrongname_cert=d / "wrongname-cert.pem", wrongname_key=d / "wrongname-key.pem")


def nats_tls_block(pki: PKI, verify: bool = False, timeout: float = 2, cert=None, key=None) -> str:
    """A nats-server `tls { }` block (wire notes §A8); verify=True demands client certificates
    signed by the test CA. cert/key replace the server certificate (e.g. pki.wrongname_cert)."""
    lines = [f'  cert_file: "{cert or pki.server_cert}"', f'  key_file: "{key or pki.server_key}"',
             f"  timeout: {timeout}"]
    if verify:
        lines += [f'  ca_file: "{pki.ca}"', "  verify: true"]
    return "tls {\n" + "\n".join(lines) + "\n}\n"
