#!/usr/bin/env python3
"""A stand-in for Rapid7's webhook log ingestion (POST /v1/noformat/<token>, answered 204),
independent of logrelay.

As a program (one process, so a test can SIGKILL and restart it like a crashing server):

    le_http_endpoint.py --port P --dir D [--cert C --key K]

It serves HTTP/1.1 with keep-alive, over TLS when given a certificate (Python's http.server
and ssl). Before every answer it reads D/mode (JSON, optional): {"status": 204, "delay": 0,
"read_pause": 0, "read_size": 65536}: the status to answer, seconds to wait before answering,
and how slowly to read the body (read_size bytes, then read_pause seconds: a lagging
endpoint). The body's lines are appended to D/lines only when the answer is a 2xx, before it
is sent (a process killed in between has recorded lines it never confirmed: a duplicate, never
a loss). Every request adds {"status", "lines", "path", "conn"} to D/requests.

As a module: `HTTPEndpoint` runs that program for a test (start, kill -9, restart, set the
mode, read what arrived).
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1] / "support"))
from testkit import free_port, stop_process, wait_until  # noqa: E402


def _serve(args) -> None:
    d = Path(args.dir)
    lock = threading.Lock()
    conns = [0]

    def mode() -> dict:
        try:
            return json.loads((d / "mode").read_text() or "{}")
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            with lock:
                conns[0] += 1
                self.conn_id = conns[0]

        def log_message(self, *a):  # quiet
            pass

        def do_POST(self):
            m = mode()
            n = int(self.headers.get("Content-Length", "0"))
            size = int(m.get("read_size", 65536))
            pause = float(m.get("read_pause", 0))
            body = bytearray()
            while len(body) < n:
                chunk = self.rfile.read(min(size, n - len(body)))
                if not chunk:
                    return
                body += chunk
                if pause:
                    time.sleep(pause)
            if m.get("delay"):
                time.sleep(float(m["delay"]))
            status = int(m.get("status", 204))
            lines = bytes(body).split(b"\n")
            assert lines[-1] == b"", "body does not end in a newline"
            with lock:
                if 200 <= status < 300:
                    with open(d / "lines", "ab") as f:
                        f.write(bytes(body))
                with open(d / "requests", "a") as f:
                    f.write(json.dumps({"status": status, "lines": len(lines) - 1, "path": self.path,
                                        "conn": self.conn_id, "ctype": self.headers.get("Content-Type")}) + "\n")
            self.send_response(status)
            if status == 204:
                self.send_header("Cache-Control", "no-cache, no-store, must-revalidate")
                self.end_headers()
            else:
                msg = b"refused\n"
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    Path(args.ready).touch()
    srv.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--ready", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    _serve(p.parse_args())


class HTTPEndpoint:
    """The endpoint program on 127.0.0.1:port, started by this object and stopped by its pid.
    What arrived survives restarts (files in one directory, appended to)."""

    def __init__(self, workdir: Path, cert: Optional[Path] = None, key: Optional[Path] = None,
                 port: Optional[int] = None):
        self.port = port or free_port()
        self.dir = Path(workdir) / f"le-http-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        for f in ("lines", "requests"):
            (self.dir / f).touch()
        self.cert, self.key = cert, key
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self._log = None
        self.start()

    def start(self):
        assert self.proc is None or self.proc.poll() is not None
        ready = self.dir / f"ready-{self.starts}"
        args = [sys.executable, str(HERE), "--port", str(self.port), "--dir", str(self.dir), "--ready", str(ready)]
        if self.cert:
            args += ["--cert", str(self.cert), "--key", str(self.key)]
        self._log = open(self.dir / "stderr", "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        self.starts += 1
        ok = wait_until(lambda: ready.exists() or self.proc.poll() is not None, 15)
        if not ok or self.proc.poll() is not None:
            self.stop()
            raise AssertionError(f"le_http_endpoint did not start on {self.port}: "
                                 f"{(self.dir / 'stderr').read_text()[-2000:]}")

    def kill(self):
        """SIGKILL, like a crashing server: its kernel resets the connections."""
        self.stop(signal.SIGKILL)

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None:
            stop_process(self.proc, sig, timeout=10)
        if self._log:
            self._log.close()
            self._log = None

    def set_mode(self, **mode):
        tmp = self.dir / "mode.tmp"
        tmp.write_text(json.dumps(mode))
        os.replace(tmp, self.dir / "mode")

    def lines(self) -> list[bytes]:
        return (self.dir / "lines").read_bytes().split(b"\n")[:-1]

    def count(self) -> int:
        return (self.dir / "lines").read_bytes().count(b"\n")

    def requests(self) -> list[dict]:
        return [json.loads(l) for l in (self.dir / "requests").read_text().splitlines() if l.strip()]

    def wait_for(self, n: int, timeout: float) -> bool:
        return wait_until(lambda: self.count() >= n, timeout, 0.1)


if __name__ == "__main__":
    main()
