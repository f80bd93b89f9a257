#!/usr/bin/env python3
"""A stand-in for a Logentries / Rapid7 Insight token-TCP endpoint, independent of logrelay.

As a program (one process, so a test can SIGKILL and restart it like a crashing server):

    le_endpoint.py --port P --out LINES --events EVENTS [--cert C --key K] [--idle-close S]

It accepts plain TCP or TLS (Python's ssl module: TLS 1.2/1.3, session tickets sent, SNI
recorded), never sends a byte of application data (like the real service), and appends
every complete line it receives ("\\n"-terminated) to LINES as soon as it is read. A
connection's unterminated tail when it ends is not a line: it is counted in EVENTS (so is a
line torn by a previous, killed endpoint process, which is cut from LINES at start).
EVENTS gets one JSON object per line: {"ev":"open","conn":N,"sni":...},
{"ev":"close","conn":N,"why":...,"tail":BYTES,"lines":N}, {"ev":"tls-error",...}.
--idle-close S closes connections that sent nothing for S seconds (a server's idle cut-off);
--rcvbuf, --read-size and --read-pause make a server that lags behind (data waits unread in
its kernel, already acknowledged to the sender, and is lost when the process is killed).

As a module: `Endpoint` runs that program for a test (start, kill -9, restart, read what
arrived); `make_pki` / `pki_paths` give the shared test PKI (Tests/support/testpki.py) as a
dict of paths. free_port, wait_until and stop_process come from Tests/support/testkit.py.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve()

sys.path.insert(0, str(HERE.parents[1] / "support"))
import testpki  # noqa: E402
from testkit import free_port, stop_process, wait_until  # noqa: E402
from testpki import PKI  # noqa: E402


# ---------------------------------------------------------------------------
# the endpoint program
# ---------------------------------------------------------------------------

def _drop_torn_tail(path: str) -> int:
    """A previous endpoint killed inside a write() may have left part of a line at the end of
    the file: cut it (those bytes were lost with that process). Returns the bytes cut."""
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        pos = size
        while pos > 0:
            step = min(pos, 65536)
            f.seek(pos - step)
            block = f.read(step)
            nl = block.rfind(b"\n")
            if nl >= 0:
                pos = pos - step + nl + 1
                break
            pos -= step
        f.truncate(pos)
        return size - pos


def _serve(args) -> None:
    out_fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    ev_fd = os.open(args.events, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    out_lock = threading.Lock()
    ev_lock = threading.Lock()

    def event(**kw):
        data = (json.dumps(kw) + "\n").encode()
        with ev_lock:
            os.write(ev_fd, data)

    torn = _drop_torn_tail(args.out)
    if torn:
        event(ev="torn-tail", bytes=torn)

    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        tl = threading.local()

        def sni_cb(sslobj, name, _ctx):
            tl.sni = name
        ctx.sni_callback = sni_cb

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if args.rcvbuf:  # inherited by accepted sockets: bounds what waits unread in the kernel
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
    ls.bind((args.host, args.port))
    ls.listen(128)
    counter = [0]

    def handle(raw: socket.socket, n: int):
        sni = None
        sock = raw
        if ctx is not None:
            tl.sni = None
            raw.settimeout(10)
            try:
                sock = ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as e:
                event(ev="tls-error", conn=n, error=str(e))
                raw.close()
                return
            sni = tl.sni
        sock.settimeout(args.idle_close if args.idle_close else None)
        event(ev="open", conn=n, sni=sni, tls=ctx is not None)
        pending = b""
        lines = 0
        why = "eof"
        try:
            while True:
                if args.read_pause:
                    time.sleep(args.read_pause)
                try:
                    data = sock.recv(args.read_size)
                except socket.timeout:
                    why = "idle-close"
                    break
                if not data:
                    break
                pending += data
                cut = pending.rfind(b"\n")
                if cut >= 0:
                    chunk, pending = pending[:cut + 1], pending[cut + 1:]
                    lines += chunk.count(b"\n")
                    with out_lock:
                        os.write(out_fd, chunk)
        except (OSError, ssl.SSLError) as e:
            why = f"error: {e}"
        event(ev="close", conn=n, why=why, tail=len(pending), lines=lines)
        try:
            sock.close()
        except OSError:
            pass

    if args.ready:
        Path(args.ready).write_text(str(os.getpid()))
    while True:
        c, _ = ls.accept()
        counter[0] += 1
        threading.Thread(target=handle, args=(c, counter[0]), daemon=True).start()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--idle-close", type=float, default=0)
    p.add_argument("--ready")
    p.add_argument("--rcvbuf", type=int, default=0, help="SO_RCVBUF of the connections")
    p.add_argument("--read-size", type=int, default=65536)
    p.add_argument("--read-pause", type=float, default=0, help="seconds to sleep before each read (a lagging server)")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    _serve(args)


# ---------------------------------------------------------------------------
# for tests
# ---------------------------------------------------------------------------

class Endpoint:
    """The endpoint program on 127.0.0.1:port, started by this object and stopped by its pid.
    The received lines survive restarts (one file, appended to)."""

    def __init__(self, workdir: Path, port: Optional[int] = None, cert: Optional[Path] = None,
                 key: Optional[Path] = None, idle_close: float = 0, start: bool = True,
                 name: str = "le", extra_args: Optional[list] = None):
        self.port = port or free_port()
        self.dir = Path(workdir) / f"{name}-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.out = self.dir / "lines"
        self.events_path = self.dir / "events"
        self.out.touch()
        self.events_path.touch()
        self.cert, self.key, self.idle_close = cert, key, idle_close
        self.extra_args = list(extra_args or [])
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        if start:
            self.start()

    @property
    def tls(self) -> bool:
        return self.cert is not None

    def start(self):
        assert self.proc is None or self.proc.poll() is not None
        ready = self.dir / f"ready-{self.starts}"
        args = [sys.executable, str(HERE), "--port", str(self.port), "--out", str(self.out),
                "--events", str(self.events_path), "--ready", str(ready)]
        if self.cert:
            args += ["--cert", str(self.cert), "--key", str(self.key)]
        if self.idle_close:
            args += ["--idle-close", str(self.idle_close)]
        args += self.extra_args
        self._log = open(self.dir / "stderr", "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        self.starts += 1
        ok = wait_until(lambda: ready.exists() or self.proc.poll() is not None, 15)
        if not ok or self.proc.poll() is not None:
            self.stop()
            raise AssertionError(f"le_endpoint did not start on {self.port}: "
                                 f"{(self.dir / 'stderr').read_text()[-2000:]}")

    def kill(self):
        """SIGKILL, like a crashing server: its kernel resets the connections."""
        self.stop(signal.SIGKILL)

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None:
            stop_process(self.proc, sig, timeout=10)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    # -- what arrived ---------------------------------------------------------
    def raw(self) -> bytes:
        return self.out.read_bytes()

    def lines(self) -> list[bytes]:
        """Complete wire lines, without their "\\n"."""
        data = self.raw()
        return data.split(b"\n")[:-1]

    def count(self) -> int:
        return self.raw().count(b"\n")

    def wait_for(self, n: int, timeout: float) -> bool:
        return wait_until(lambda: self.count() >= n, timeout, 0.1)

    def wait_quiet(self, quiet: float = 1.0, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            c = self.count()
            if c == last:
                return
            last = c
            time.sleep(quiet)

    def events(self) -> list[dict]:
        return [json.loads(l) for l in self.events_path.read_text().splitlines() if l.strip()]

    def opened(self) -> list[dict]:
        return [e for e in self.events() if e["ev"] == "open"]


def pki_paths(pki: PKI) -> dict[str, Path]:
    """The files of the shared test PKI (Tests/support/testpki.py) under the names these tests
    use: ca, other-ca, server-cert, server-key (DNS:localhost, IP:127.0.0.1), wrongname-cert,
    wrongname-key (signed by the test CA, but only for DNS:not-this-host.example)."""
    return {"ca": pki.ca, "other-ca": pki.other_ca, "server-cert": pki.server_cert,
            "server-key": pki.server_key, "wrongname-cert": pki.wrongname_cert,
            "wrongname-key": pki.wrongname_key}


def make_pki(d: Path) -> dict[str, Path]:
    """Makes the shared test PKI in d (testpki.make_pki) and returns pki_paths() of it."""
    return pki_paths(testpki.make_pki(d))


if __name__ == "__main__":
    main()
