"""Shared machinery for logrelay's integration tests.

The tests play the Docker daemon against the standalone binary
(`logrelay --socket PATH`) and check, with an independent nats-py subscriber,
what arrives on real nats-server processes. Everything here follows the
project's protocol notes (shared/docs/docker-log-plugin-protocol.md):

* HTTP requests are built byte for byte like dockerd 20.10's Go client
  (empty Host, Go-http-client/1.1, Content-Length, Accept, no Content-Type),
  with Go-json-like bodies (sorted keys, <>& escaped, trailing newline).
* FIFOs are created and held like dockerd: mkfifo 0700, opened O_RDWR before
  StartLogging, every frame written with exactly one write(), StopLogging
  only after every write has finished, and the fd closed and the FIFO unlinked
  only after StopLogging answered.
* Frames are protobuf LogEntry messages encoded like gogo: fields in order
  1..5, proto3 defaults omitted, lines split at 16 KiB like daemon/logger/copier.go.

Only processes started here are ever stopped, always by their own pid.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import nats  # nats-py: the independent subscriber

REPO = Path(__file__).resolve().parents[2]

import sys as _sys  # noqa: E402

_sys.path.insert(0, str(REPO / "Tests" / "support"))
# One of each, shared with le_endpoint.py (and through it the e2e suite): Tests/support/.
from testkit import (PATIENT_WITH_SLOW_CLIENTS, NatsServer, cpu_seconds, fd_count, free_port,  # noqa: E402,F401
                     nats_server_binary, port_accepts, rss_kib, stop_process, thread_count, unix_accepts, wait_until)
from testpki import PKI, make_pki, nats_tls_block  # noqa: E402,F401

import pytest  # noqa: E402

# nats-server binaries for the tests that run on each version: Debian's 2.9.10 and the 2.10 /
# 2.15 that `make deps` extracts (Tests/support/engines.sh); those absent are left out.
_NATS_CANDIDATES = ["/usr/sbin/nats-server", str(REPO / "build/engines/trixie/usr/sbin/nats-server"),
                    str(REPO / "build/engines/sid/usr/sbin/nats-server")]


def _nats_version(path: str) -> tuple:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    return tuple(int(x) for x in out.strip().rsplit("v", 1)[-1].split("-")[0].split(".")[:3])


NATS_SERVERS = {p: _nats_version(p) for p in _NATS_CANDIDATES if os.access(p, os.X_OK)}


def nats_server_params(which: str = "all") -> list:
    """pytest params over NATS_SERVERS, oldest first, with ids like nats-2.10.27; `which` is
    "all" or "ends" (the oldest and the newest)."""
    ordered = sorted(NATS_SERVERS.items(), key=lambda kv: kv[1])
    if which == "ends":
        ordered = list({p: v for p, v in (ordered[:1] + ordered[-1:])}.items())
    return [pytest.param(p, id="nats-" + ".".join(map(str, v))) for p, v in ordered]


@pytest.fixture(params=nats_server_params())
def server_bin(request, monkeypatch):
    """Selects the nats-server binary for everything the test starts (import it into the test
    module; `@pytest.mark.parametrize("server_bin", nats_server_params("ends"), indirect=True)`
    narrows the versions)."""
    monkeypatch.setenv("NATS_SERVER", request.param)
    return request.param

# Generous bound for "it eventually arrives"; never a performance assertion.
DELIVERY_TIMEOUT = float(os.environ.get("LOGRELAY_IT_TIMEOUT", "30"))
# Bound for "the plugin answers promptly" (liveness, not performance).
PROMPT = 5.0

CHUNK = 16 * 1024  # dockerd's copier buffer: lines are cut into 16384-byte pieces


# ---------------------------------------------------------------------------
# small utilities
# ---------------------------------------------------------------------------

_last_ns = 0
_ns_lock = threading.Lock()


def next_time_ns() -> int:
    """Strictly increasing wall-clock nanoseconds (like the daemon's time.Now())."""
    global _last_ns
    with _ns_lock:
        t = max(time.time_ns(), _last_ns + 1)
        _last_ns = t
        return t


def rfc3339_nano(ns: int) -> str:
    """What the event's `time` must be: RFC 3339, UTC, always 9 fractional digits."""
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + ".%09dZ" % frac


TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


# Secrets used by tests; every plugin's stderr is checked for them at teardown.
SECRETS: set[str] = set()


def secret(value: str) -> str:
    SECRETS.add(value)
    return value


# ---------------------------------------------------------------------------
# protobuf LogEntry encoding (as dockerd / gogo does it)
# ---------------------------------------------------------------------------

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(tag: int, data: bytes) -> bytes:
    return bytes([tag]) + _varint(len(data)) + data


@dataclass
class PartialMeta:
    id: str
    ordinal: int
    last: bool = False


@dataclass
class Entry:
    """One LogEntry frame as the daemon writes it."""
    source: str
    line: bytes
    time_nano: int
    partial: bool = False
    meta: Optional[PartialMeta] = None

    def encode(self) -> bytes:
        pb = b""
        if self.source:
            pb += _ld(0x0A, self.source.encode())
        if self.time_nano:
            pb += b"\x10" + _varint(self.time_nano)
        if self.line:
            pb += _ld(0x1A, self.line)
        if self.partial:
            pb += b"\x20\x01"
        if self.meta is not None:
            m = b""
            if self.meta.last:
                m += b"\x08\x01"
            if self.meta.id:
                m += _ld(0x12, self.meta.id.encode())
            if self.meta.ordinal:
                m += b"\x18" + _varint(self.meta.ordinal)
            pb += _ld(0x2A, m)
        return struct.pack(">I", len(pb)) + pb


def split_like_dockerd(source: str, line: bytes, time_nano: Optional[int] = None,
                       terminated: bool = True) -> list[Entry]:
    """The entries dockerd's copier emits for one line of container output.

    A line shorter than 16 KiB is one complete entry. A longer one becomes
    16384-byte chunks (partial, same random id, ordinals 1.., first chunk's
    timestamp on all), ended by the remainder with last=true (possibly empty)
    when the line was terminated by '\\n'. An unterminated line (stream EOF)
    never gets a last=true piece.
    """
    t = time_nano if time_nano is not None else next_time_ns()
    if terminated and len(line) < CHUNK:
        return [Entry(source, line, t)]
    pid = os.urandom(32).hex()
    out: list[Entry] = []
    pos, ordinal = 0, 1
    while len(line) - pos >= CHUNK:
        out.append(Entry(source, line[pos:pos + CHUNK], t, True, PartialMeta(pid, ordinal)))
        pos += CHUNK
        ordinal += 1
    if terminated:
        out.append(Entry(source, line[pos:], t, True, PartialMeta(pid, ordinal, last=True)))
    elif pos < len(line):
        out.append(Entry(source, line[pos:], t, True, PartialMeta(pid, ordinal)))
    return out


# ---------------------------------------------------------------------------
# Go-json-like encoding of request bodies
# ---------------------------------------------------------------------------

def go_json(obj) -> bytes:
    """json.Encoder output: sorted map keys, compact, <>& and U+2028/9 escaped, '\\n' at the end."""
    s = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    s = (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
         .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return s.encode() + b"\n"


# ---------------------------------------------------------------------------
# HTTP over the plugin's unix socket, like dockerd's plugin client
# ---------------------------------------------------------------------------

class HTTPResponse:
    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def err(self) -> str:
        """The `Err` field, '' when absent (what dockerd treats as success)."""
        try:
            v = self.json()
        except Exception:
            return ""
        if isinstance(v, dict):
            for k, val in v.items():
                if k.lower() == "err" and isinstance(val, str):
                    return val
        return ""

    @property
    def failed(self) -> bool:
        """Failure as dockerd sees it: non-200, or 200 with a non-empty Err (or no JSON)."""
        if self.status != 200:
            return True
        try:
            self.json()
        except Exception:
            return True
        return self.err != ""

    def __repr__(self):
        return f"<HTTP {self.status} {self.body[:300]!r}>"


class ConnectionClosed(Exception):
    pass


def read_http_response(sock: socket.socket, buf: bytearray) -> HTTPResponse:
    """Reads one response from sock (buffered in buf). Supports Content-Length,
    chunked, and close-delimited bodies."""
    def fill() -> bool:
        data = sock.recv(65536)
        if not data:
            return False
        buf.extend(data)
        return True

    while b"\r\n\r\n" not in buf:
        if not fill():
            raise ConnectionClosed(f"connection closed before a full response head (got {bytes(buf)[:200]!r})")
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"^HTTP/1\.[01] (\d{3})(?: (.*))?$", lines[0])
    if not m:
        raise AssertionError(f"bad status line {lines[0]!r}")
    status, reason = int(m.group(1)), m.group(2) or ""
    headers: dict[str, str] = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            if not fill():
                raise ConnectionClosed("connection closed inside a response body")
        body = bytes(buf[:n])
        del buf[:n]
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            while b"\r\n" not in buf:
                if not fill():
                    raise ConnectionClosed("closed inside chunked body")
            size_line, _, _ = bytes(buf).partition(b"\r\n")
            del buf[:len(size_line) + 2]
            size = int(size_line.split(b";")[0], 16)
            while len(buf) < size + 2:
                if not fill():
                    raise ConnectionClosed("closed inside chunk")
            body += bytes(buf[:size])
            del buf[:size + 2]
            if size == 0:
                break
    else:
        while fill():
            pass
        body = bytes(buf)
        buf.clear()
        headers["connection"] = "close"
    return HTTPResponse(status, reason, headers, body)


def http_get(sock_path: str, path: str, timeout: float = 10.0) -> HTTPResponse:
    """A plain GET on its own connection (for /metrics)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: \r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n".encode())
        return read_http_response(s, bytearray())
    finally:
        s.close()


def metric(sock_path: str, name: str, container: str) -> Optional[float]:
    """The value of a per-container sample in GET /metrics, None when absent."""
    body = http_get(sock_path, "/metrics").body.decode("utf-8", "replace")
    for ln in body.splitlines():
        if ln.startswith(name + "{") and f'container="{container}"' in ln:
            return float(ln.rsplit(" ", 1)[1])
    return None


class DaemonClient:
    """One keep-alive connection to the plugin socket, used like Go's http.Client."""

    def __init__(self, sock_path: str, host: str = "", timeout: float = 30.0):
        self.sock_path = sock_path
        self.host = host
        self.timeout = timeout
        self.sock: Optional[socket.socket] = None
        self.buf = bytearray()
        self.connects = 0
        self.lock = threading.Lock()

    def _connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.sock_path)
        self.sock = s
        self.buf = bytearray()
        self.connects += 1

    @staticmethod
    def build_request(path: str, body: bytes, host: str = "") -> bytes:
        return (f"POST {path} HTTP/1.1\r\n"
                f"Host: {host}\r\n"
                f"User-Agent: Go-http-client/1.1\r\n"
                f"Content-Length: {len(body)}\r\n"
                f"Accept: application/vnd.docker.plugins.v1.2+json\r\n"
                f"\r\n").encode() + body

    def call(self, path: str, body=None) -> HTTPResponse:
        """POST path. body: None (empty, like Capabilities), bytes (raw), or an object (Go json)."""
        if body is None:
            raw = b""
        elif isinstance(body, (bytes, bytearray)):
            raw = bytes(body)
        else:
            raw = go_json(body)
        with self.lock:
            if self.sock is None:
                self._connect()
            self.sock.sendall(self.build_request(path, raw, self.host))
            resp = read_http_response(self.sock, self.buf)
            if resp.headers.get("connection", "").lower() == "close":
                self.close()
            return resp

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


# ---------------------------------------------------------------------------
# the plugin process (nats-server, stop_process, /proc readings: Tests/support/testkit.py)
# ---------------------------------------------------------------------------

def logrelay_binary() -> str:
    path = os.environ.get("LOGRELAY_BIN") or str(REPO / ".build" / "release" / "logrelay")
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(
            f"logrelay binary not found at {path}: run `make build` first "
            f"(or set LOGRELAY_BIN to the binary to test)")
    return path


class Plugin:
    """The standalone plugin process, its socket, its state dir, and its stdout and stderr
    (each in a file: info/debug go to stdout, warnings and errors to stderr)."""

    def __init__(self, workdir: Path, name: str = "plugin", driver: Optional[str] = None,
                 log_level: str = "debug", extra_env: Optional[dict] = None):
        self.binary = logrelay_binary()
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = str(self.dir / "logrelay.sock")
        self.state_dir = self.dir / "state"
        self.state_dir.mkdir(exist_ok=True)
        self.fifo_dir = self.dir / "logging"
        self.fifo_dir.mkdir(exist_ok=True)
        self.stderr_path = self.dir / "stderr.log"
        self.stdout_path = self.dir / "stdout.log"
        self.driver = driver
        self.env = dict(os.environ)
        self.env["LOG_LEVEL"] = log_level
        if extra_env:
            self.env.update(extra_env)
        self.proc: Optional[subprocess.Popen] = None
        self.start()

    def start(self):
        args = [self.binary, "--socket", self.socket, "--state-dir", str(self.state_dir)]
        if self.driver:
            args += ["--driver", self.driver]
        self._err = open(self.stderr_path, "ab")
        self._out = open(self.stdout_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, env=self.env)
        ok = wait_until(lambda: self.proc.poll() is not None or unix_accepts(self.socket), 10)
        if not ok or self.proc.poll() is not None:
            self.stop()
            raise AssertionError(f"logrelay did not listen on {self.socket} within 10 s "
                                 f"(exit={self.proc.returncode}); stderr: {self.stderr()[-3000:]}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, host: str = "") -> DaemonClient:
        return DaemonClient(self.socket, host=host)

    @staticmethod
    def _read(path: Path) -> str:
        try:
            return path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stderr(self) -> str:
        return self._read(self.stderr_path)

    def stdout(self) -> str:
        return self._read(self.stdout_path)

    def output(self) -> str:
        """Everything the plugin logged so far: stdout, then stderr."""
        return self.stdout() + self.stderr()

    def log_line_count(self) -> int:
        """Lines the plugin has written to stdout and stderr so far."""
        n = 0
        for path in (self.stdout_path, self.stderr_path):
            try:
                n += path.read_bytes().count(b"\n")
            except FileNotFoundError:
                pass
        return n

    def open_fds_to(self, path: str) -> list[str]:
        """The plugin's fds that point at `path` (via /proc)."""
        out = []
        try:
            for fd in os.listdir(f"/proc/{self.pid}/fd"):
                try:
                    if os.readlink(f"/proc/{self.pid}/fd/{fd}").startswith(path):
                        out.append(fd)
                except OSError:
                    pass
        except OSError:
            pass
        return out

    def kill_and_restart(self):
        """SIGKILL, then start again with the same socket path and state dir. Like the
        daemon after a plugin crash, the stale socket is removed first."""
        self.stop(sig=signal.SIGKILL)
        try:
            os.unlink(self.socket)
        except FileNotFoundError:
            pass
        self.start()

    def stop(self, sig=signal.SIGTERM, timeout: float = 15.0):
        if self.proc is not None:
            stop_process(self.proc, sig, timeout)
        for f in ("_err", "_out"):
            h = getattr(self, f, None)
            if h:
                h.close()
                setattr(self, f, None)


# ---------------------------------------------------------------------------
# a transparent TCP proxy: lets a test make a live nats-server unreachable
# ---------------------------------------------------------------------------

class TcpProxy:
    """Forwards 127.0.0.1:listen_port to 127.0.0.1:target_port while up.
    down() closes the listener and every forwarded connection (the client sees EOF)."""

    def __init__(self, listen_port: int, target_port: int):
        self.listen_port = listen_port
        self.target_port = target_port
        self.lsock: Optional[socket.socket] = None
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.thread: Optional[threading.Thread] = None
        self.running = False
        self.accepted = 0

    def up(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.listen_port))
        ls.listen(64)
        self.lsock = ls
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        pairs: dict[socket.socket, socket.socket] = {}
        while self.running:
            with self.lock:
                rl = [self.lsock] + list(pairs.keys())
            try:
                r, _, _ = select.select(rl, [], [], 0.1)
            except (OSError, ValueError):
                break
            for s in r:
                if s is self.lsock:
                    try:
                        c, _ = self.lsock.accept()
                        t = socket.create_connection(("127.0.0.1", self.target_port))
                    except OSError:
                        continue
                    self.accepted += 1
                    with self.lock:
                        pairs[c] = t
                        pairs[t] = c
                        self.conns += [c, t]
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                peer = pairs.get(s)
                if not data or peer is None:
                    for x in (s, peer):
                        if x is not None:
                            pairs.pop(x, None)
                            try:
                                x.close()
                            except OSError:
                                pass
                    continue
                try:
                    peer.sendall(data)
                except OSError:
                    pass
        for s in list(pairs):
            try:
                s.close()
            except OSError:
                pass

    def down(self):
        self.running = False
        if self.thread:
            self.thread.join(5)
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    c.close()
                except OSError:
                    pass
            self.conns = []
        if self.lsock:
            self.lsock.close()
            self.lsock = None


# ---------------------------------------------------------------------------
# the subscriber (nats-py on its own asyncio loop thread)
# ---------------------------------------------------------------------------

@dataclass
class Msg:
    subject: str
    data: bytes

    def event(self) -> dict:
        # strict JSON: control characters must be escaped by the plugin
        return json.loads(self.data.decode("utf-8"))


class Subscriber:
    NAME = "logrelay-it-subscriber"

    def __init__(self, url: str, subject: str = ">", **connect_kwargs):
        self.url = url
        self.subject = subject
        self.msgs: list[Msg] = []
        self.cond = threading.Condition()
        self.errors: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.nc = None
        self._run(self._connect(connect_kwargs), 15)

    def _run(self, coro, timeout):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _connect(self, kw):
        async def on_err(e):
            self.errors.append(repr(e))
        self.nc = await nats.connect(self.url, name=self.NAME, error_cb=on_err,
                                     max_reconnect_attempts=-1, reconnect_time_wait=0.2, **kw)

        async def cb(msg):
            with self.cond:
                self.msgs.append(Msg(msg.subject, msg.data))
                self.cond.notify_all()
        await self.nc.subscribe(self.subject, cb=cb, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await self.nc.flush()

    def count(self) -> int:
        with self.cond:
            return len(self.msgs)

    def publish(self, subject: str, data: bytes):
        """Publishes through this subscriber's own connection (e.g. a probe) and flushes."""
        async def go():
            await self.nc.publish(subject, data)
            await self.nc.flush()
        self._run(go(), 10)

    def wait_for(self, n: int, timeout: float = DELIVERY_TIMEOUT) -> bool:
        """True once at least n messages arrived; False after timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.msgs) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
            return True

    def wait_quiet(self, quiet: float = 1.0, timeout: float = DELIVERY_TIMEOUT):
        """Waits until no message arrived for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            c = self.count()
            if c == last:
                return
            last = c
            time.sleep(quiet)

    def snapshot(self) -> list[Msg]:
        with self.cond:
            return list(self.msgs)

    def events(self) -> list[dict]:
        return [m.event() for m in self.snapshot()]

    def close(self):
        if self.loop.is_closed():
            return   # already closed (close() is idempotent)
        try:
            if self.nc is not None and not self.nc.is_closed:
                self._run(self.nc.close(), 10)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


# ---------------------------------------------------------------------------
# playing the daemon: one Container = one logger instance (one FIFO)
# ---------------------------------------------------------------------------

class FifoWriter:
    """The daemon's side of a FIFO: opened O_RDWR, written by one thread,
    each frame in exactly one write() (several frames may share a write)."""

    def __init__(self, path: str):
        os.mkfifo(path, 0o700)
        self.path = path
        self.fd: Optional[int] = os.open(path, os.O_RDWR)
        self.q: queue.Queue = queue.Queue()
        self.error: Optional[BaseException] = None
        self.written = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                view = memoryview(item)
                while view:
                    n = os.write(self.fd, view)
                    view = view[n:]
                    self.written += n
            except BaseException as e:  # noqa: BLE001 — reported by flush()
                self.error = e

    def send(self, frames: Iterable[bytes], batch: int = 32768):
        """Queues frames; consecutive frames are grouped up to `batch` bytes per write."""
        cur = bytearray()
        for f in frames:
            if cur and len(cur) + len(f) > batch:
                self.q.put(bytes(cur))
                cur = bytearray()
            cur += f
        if cur:
            self.q.put(bytes(cur))

    def flush(self, timeout: float = DELIVERY_TIMEOUT) -> bool:
        """Waits until every queued write has completed (the plugin has taken it into the pipe)."""
        ev = threading.Event()
        self.q.put(ev)
        ok = ev.wait(timeout)
        if self.error:
            raise self.error
        return ok

    def close(self):
        """Closes the daemon's fd and unlinks the FIFO (after StopLogging, like dockerd)."""
        self.q.put(None)
        self.thread.join(2)
        if self.fd is not None and not self.thread.is_alive():
            os.close(self.fd)
            self.fd = None
        # if the writer is still blocked in write() we must not close its fd
        # (the number could be reused); it is a daemon thread and leaks.
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def make_info(container_id: str, name: str, config: dict, labels: Optional[dict] = None,
              env: Optional[list] = None, image_name: str = "alpine",
              image_id: Optional[str] = None, entrypoint: str = "sh",
              args: Optional[list] = None) -> dict:
    """All 12 Info keys, as dockerd 20.10 sends them."""
    return {
        "Config": config,
        "ContainerID": container_id,
        "ContainerName": name,
        "ContainerEntrypoint": entrypoint,
        "ContainerArgs": args if args is not None else ["-c", "echo hi"],
        "ContainerImageID": image_id or ("sha256:" + os.urandom(32).hex()),
        "ContainerImageName": image_name,
        "ContainerCreated": "2024-05-01T12:00:00.12345Z",
        "ContainerEnv": env if env is not None else
        ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "ContainerLabels": labels if labels is not None else {},
        "LogPath": "",
        "DaemonName": "docker",
    }


class Container:
    """One logger instance: a FIFO, an Info, StartLogging/StopLogging."""

    def __init__(self, plugin: Plugin, client: DaemonClient, config: dict,
                 name: Optional[str] = None, **info_kw):
        self.plugin = plugin
        self.client = client
        self.id = os.urandom(32).hex()
        self.short_id = self.id[:12]
        self.name = name or f"/c-{self.short_id[:6]}"
        self.file = str(plugin.fifo_dir / os.urandom(32).hex())
        self.info = make_info(self.id, self.name, config, **info_kw)
        self.writer: Optional[FifoWriter] = None
        self.started = False
        self.stopped = False
        self.sent: list[Entry] = []

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> HTTPResponse:
        self.writer = FifoWriter(self.file)
        resp = self.client.call("/LogDriver.StartLogging", {"File": self.file, "Info": self.info})
        self.started = not resp.failed
        return resp

    def start_ok(self) -> "Container":
        resp = self.start()
        assert not resp.failed, f"StartLogging failed: {resp!r}"
        assert resp.status == 200
        return self

    def stop(self, flush_timeout: float = DELIVERY_TIMEOUT) -> HTTPResponse:
        """Like dockerd: wait for every write, StopLogging, then close fd and unlink."""
        if self.writer is not None:
            ok = self.writer.flush(flush_timeout)
            assert ok, ("the plugin did not drain the FIFO: writes still blocked after "
                        f"{flush_timeout}s ({self.writer.written} bytes written)")
        resp = self.client.call("/LogDriver.StopLogging", {"File": self.file})
        self.stopped = True
        if self.writer is not None:
            self.writer.close()
        return resp

    def abandon(self):
        """Teardown for a container whose test failed midway."""
        if self.writer is not None and self.writer.fd is not None:
            if self.started and not self.stopped and self.plugin.alive():
                try:
                    self.client.call("/LogDriver.StopLogging", {"File": self.file})
                except Exception:
                    pass
            self.writer.close()

    # -- output ------------------------------------------------------------
    def send_entries(self, entries: list[Entry], batch: int = 32768):
        self.sent.extend(entries)
        self.writer.send((e.encode() for e in entries), batch=batch)

    def log_lines(self, lines: Iterable[tuple[str, bytes]], batch: int = 32768) -> list[Entry]:
        """Sends whole lines (split like dockerd when ≥16 KiB). Returns the entries."""
        entries: list[Entry] = []
        for source, line in lines:
            entries.extend(split_like_dockerd(source, line))
        self.send_entries(entries, batch=batch)
        return entries

    # -- expectations --------------------------------------------------------
    def expected(self, log: str, source: str, time_nano: int, tag: Optional[str] = None,
                 attrs: Optional[dict] = None, partial: bool = False) -> dict:
        ev = {
            "time": rfc3339_nano(time_nano),
            "source": source,
            "log": log,
            "tag": tag if tag is not None else self.short_id,
            "container_id": self.id,
            "container_name": self.name,
            "image_id": self.info["ContainerImageID"],
            "image_name": self.info["ContainerImageName"],
        }
        if attrs:
            ev["attrs"] = attrs
        if partial:
            ev["partial"] = True
        return ev


def logical_lines(entries: list[Entry]) -> list[tuple[str, bytes, int]]:
    """(source, full line bytes, time_nano) per logical line, rejoining partial chunks."""
    out = []
    open_: dict[str, tuple[str, bytearray, int]] = {}
    for e in entries:
        if not e.partial:
            out.append((e.source, e.line, e.time_nano))
            continue
        key = e.meta.id
        if key not in open_:
            open_[key] = (e.source, bytearray(), e.time_nano)
            out.append(open_[key])  # position of the first chunk
        open_[key][1].extend(e.line)
    return [(s, bytes(b), t) for s, b, t in out]


def text(b: bytes) -> str:
    """What the event's `log` must be for the line bytes b (invalid UTF-8 → U+FFFD)."""
    return b.decode("utf-8", "replace")


# ---------------------------------------------------------------------------
# TLS material, clusters, paced writing, JetStream capture, metrics samples
# ---------------------------------------------------------------------------

def tls_context(pki: PKI, client_cert: bool = False):
    """An ssl.SSLContext for the nats-py subscriber: trusts the test CA, optionally with the
    test client certificate (for servers that demand one)."""
    import ssl
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca))
    if client_cert:
        ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return ctx


def make_cluster(nats_factory, n: int = 3, extra_config: str = "", name: str = "node") -> list["NatsServer"]:
    """n nats-servers on loopback forming one cluster (full mesh of routes), each with
    monitoring, patient with slow clients; returns once every node has a route to every
    other node."""
    cports = [free_port() for _ in range(n)]
    nodes = []
    for i in range(n):
        routes = ", ".join(f'"nats://127.0.0.1:{p}"' for j, p in enumerate(cports) if j != i)
        conf = (f"server_name: {name}{i}\n"
                f"cluster {{\n  name: lrc\n  listen: 127.0.0.1:{cports[i]}\n  routes: [{routes}]\n}}\n"
                + PATIENT_WITH_SLOW_CLIENTS + extra_config)
        nodes.append(nats_factory(extra_config=conf, monitor=True, name=f"{name}{i}"))
    ok = wait_until(lambda: all(len(s.routez().get("routes") or []) >= n - 1 for s in nodes), 20, 0.2)
    assert ok, "the cluster did not form: routes " + str([len(s.routez().get("routes") or []) for s in nodes])
    return nodes


def paced_send(c: "Container", entries: list[Entry], per_batch: int = 500, interval: float = 0.01,
               on_batch: Optional[Callable[[int], None]] = None):
    """Writes entries into the container's FIFO in batches of `per_batch` frames, one batch
    every `interval` seconds (500 / 10 ms ≈ 50,000 lines/s), from the calling thread's clock.
    The writes themselves happen on the FIFO writer's thread (one write() per batch).
    on_batch(lines_queued_so_far) runs after each batch (e.g. to kill a server mid-stream)."""
    c.sent.extend(entries)
    t = time.monotonic()
    queued = 0
    for i in range(0, len(entries), per_batch):
        chunk = entries[i:i + per_batch]
        c.writer.q.put(b"".join(e.encode() for e in chunk))
        queued += len(chunk)
        if on_batch is not None:
            on_batch(queued)
        t += interval
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def numbered_lines(prefix: bytes, n: int, source: str = "stdout") -> list[Entry]:
    """n single-frame entries 'PREFIX 000000001' … with strictly increasing times."""
    return [Entry(source, b"%s %09d" % (prefix, i), next_time_ns()) for i in range(1, n + 1)]


def first_occurrences(values: Iterable) -> list:
    """values with repeats removed, keeping the first occurrence (re-sent duplicates are allowed;
    the order of first arrival must still be the order written)."""
    seen = set()
    out = []
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


class JetStream:
    """Admin and read access to a JetStream-enabled server with nats-py (own event loop per call).
    The stream is created with the wire notes' `$JS.API.STREAM.CREATE.<name>` request (§A9)."""

    def __init__(self, url: str, **connect_kwargs):
        self.url = url
        self.kw = connect_kwargs

    def _run(self, coro_fn, timeout: float = 120):
        async def main():
            nc = await nats.connect(self.url, name="logrelay-it-jetstream", connect_timeout=5,
                                    max_reconnect_attempts=3, **self.kw)
            try:
                return await coro_fn(nc)
            finally:
                await nc.close()
        return asyncio.run(asyncio.wait_for(main(), timeout))

    def create_stream(self, name: str, subjects: list[str], storage: str = "file") -> dict:
        async def go(nc):
            cfg = {"name": name, "subjects": subjects, "storage": storage, "retention": "limits",
                   "discard": "old", "max_msgs": -1, "max_bytes": -1, "max_age": 0, "num_replicas": 1,
                   "duplicate_window": 120_000_000_000}
            r = await nc.request(f"$JS.API.STREAM.CREATE.{name}", json.dumps(cfg).encode(), timeout=10)
            resp = json.loads(r.data)
            assert "error" not in resp, f"stream create failed: {resp}"
            return resp
        return self._run(go)

    def stream_info(self, name: str) -> dict:
        async def go(nc):
            r = await nc.request(f"$JS.API.STREAM.INFO.{name}", b"", timeout=10)
            resp = json.loads(r.data)
            assert "error" not in resp, f"stream info failed: {resp}"
            return resp
        return self._run(go)

    def messages(self, name: str) -> int:
        return int(self.stream_info(name)["state"]["messages"])

    def read_all(self, name: str, timeout: float = 60) -> list[bytes]:
        """Every payload stored in the stream, in stream order: an ephemeral push consumer
        (no acks, flow control answered) delivering into a plain subscription, which is
        much faster than nats-py's pull fetch for a few hundred thousand messages."""
        async def go(nc):
            info = json.loads((await nc.request(f"$JS.API.STREAM.INFO.{name}", b"", timeout=10)).data)
            total = int(info["state"]["messages"])
            out: list[bytes] = []
            done = asyncio.Event()
            if total == 0:
                return out
            inbox = nc.new_inbox()

            async def cb(m):
                status = m.headers.get("Status") if m.headers else None
                if status or (not m.data and m.reply):      # heartbeat / flow control request
                    if m.reply:
                        await nc.publish(m.reply, b"")
                    return
                out.append(m.data)
                if len(out) >= total:
                    done.set()
            sub = await nc.subscribe(inbox, cb=cb, pending_msgs_limit=-1, pending_bytes_limit=-1)
            cfg = {"stream_name": name, "config": {
                "deliver_subject": inbox, "ack_policy": "none", "deliver_policy": "all",
                "flow_control": True, "idle_heartbeat": 1_000_000_000, "inactive_threshold": 30_000_000_000}}
            r = json.loads((await nc.request(f"$JS.API.CONSUMER.CREATE.{name}", json.dumps(cfg).encode(),
                                             timeout=10)).data)
            assert "error" not in r, f"consumer create failed: {r}"
            try:
                await asyncio.wait_for(done.wait(), timeout)
            except asyncio.TimeoutError:
                raise AssertionError(f"read {len(out)} of {total} messages from stream {name} in {timeout}s")
            await sub.unsubscribe()
            return out[:total]
        return self._run(go, timeout + 30)


def metric_samples(sock_path: str, name: str) -> list[tuple[str, float]]:
    """(label text, value) of every sample of the metric family `name` in GET /metrics."""
    body = http_get(sock_path, "/metrics").body.decode("utf-8", "replace")
    out = []
    for ln in body.splitlines():
        if ln.startswith(name + "{"):
            labels, _, value = ln[len(name) + 1:].rpartition("} ")
            out.append((labels, float(value)))
    return out


def metrics_text(sock_path: str) -> str:
    return http_get(sock_path, "/metrics").body.decode("utf-8", "replace")


class LogTracker:
    """Incrementally decodes the `log` values a Subscriber received on one subject, so that
    waiting for hundreds of thousands of lines does not re-parse everything on each poll."""

    def __init__(self, sub: "Subscriber", subject: Optional[str] = None):
        self.sub = sub
        self.subject = subject
        self.logs: list[str] = []
        self.unique: set[str] = set()
        self._seen = 0

    def update(self) -> int:
        with self.sub.cond:
            new = self.sub.msgs[self._seen:]
            self._seen = len(self.sub.msgs)
        for m in new:
            if self.subject is None or m.subject == self.subject:
                v = m.event()["log"]
                self.logs.append(v)
                self.unique.add(v)
        return len(self.unique)


def accounting(sock_path: str, container: str) -> dict:
    """The container's line counters from GET /metrics (absent ones as 0)."""
    names = ("received", "published", "dropped", "rejected")
    out = {n: metric(sock_path, f"logrelay_container_lines_{n}_total", container) or 0 for n in names}
    out["buffered"] = metric(sock_path, "logrelay_container_buffer_lines", container) or 0
    return out


def assert_accounting(sock_path: str, container: str) -> dict:
    """received = published + dropped + rejected + buffered, the plugin's promise after any fault."""
    a = accounting(sock_path, container)
    assert a["received"] == a["published"] + a["dropped"] + a["rejected"] + a["buffered"], \
        f"the counters of {container} do not add up: {a}"
    return a
