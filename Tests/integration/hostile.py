"""Helpers for test_hostile_input.py and test_hostile_server.py: raw bytes on the plugin
socket and a NATS server that misbehaves on purpose (its behaviours are below).

Only sockets and threads started here are ever closed; no process is signalled.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Callable, Iterable, Iterator, Optional

from helpers import PROMPT, ConnectionClosed, HTTPResponse, read_http_response
# /proc readings of the plugin process, kept here under their old names (Tests/support/testkit.py)
from helpers import fd_count, rss_kib, thread_count  # noqa: F401


# ---------------------------------------------------------------------------
# the plugin socket, byte by byte
# ---------------------------------------------------------------------------

def raw_exchange(sock_path: str, data: bytes, timeout: float = PROMPT,
                 shut_write: bool = False) -> Optional[HTTPResponse]:
    """Sends `data` on a fresh connection and reads one response. None when the plugin
    closed the connection without answering (acceptable for bytes that are not HTTP)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the plugin answered and closed while we were still sending
        if shut_write:
            s.shutdown(socket.SHUT_WR)
        try:
            return read_http_response(s, bytearray())
        except (ConnectionClosed, ConnectionResetError):
            return None
    finally:
        s.close()


def closed_after_response(sock_path: str, data: bytes, timeout: float = PROMPT) -> tuple[HTTPResponse, bool]:
    """Sends `data`, reads one response, then reports whether the plugin closed the connection."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = bytearray()
        resp = read_http_response(s, buf)
        try:
            closed = not buf and s.recv(1) == b""
        except (socket.timeout, TimeoutError):
            closed = False
        except ConnectionResetError:
            closed = True
        return resp, closed
    finally:
        s.close()


# ---------------------------------------------------------------------------
# a NATS server that misbehaves on purpose
# ---------------------------------------------------------------------------

def info_line(**fields) -> bytes:
    info = {"server_id": "FAKE", "server_name": "fake", "version": "2.9.10", "proto": 1,
            "go": "go1.19.8", "host": "127.0.0.1", "port": 4222, "headers": True,
            "max_payload": 1048576, "client_id": 1}
    info.update(fields)
    return b"INFO " + json.dumps(info, separators=(",", ":")).encode() + b" \r\n"


def read_until(conn: socket.socket, token: bytes, buf: bytearray, timeout: float = 10.0) -> bool:
    """Reads into buf until `token` appears; False on EOF or timeout."""
    conn.settimeout(timeout)
    while token not in buf:
        try:
            d = conn.recv(65536)
        except OSError:
            return False
        if not d:
            return False
        buf += d
    return True


class FakeNatsServer:
    """Accepts TCP connections on 127.0.0.1 and hands each to `behaviour(conn, server)`
    on its own thread. Counts connections; stop() closes the listener and every connection."""

    def __init__(self, behaviour: Callable[[socket.socket, "FakeNatsServer"], None]):
        self.behaviour = behaviour
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.connections = 0
        self.accept_times: list[float] = []   # time.monotonic() of each accepted connection
        self.infos_sent = 0                   # async INFOs sent by behaviours that count them
        self.received = bytearray()     # everything any client sent (bounded)
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _accept(self):
        while self.running:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.accept_times.append(time.monotonic())
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket):
        try:
            self.behaviour(c, self)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def note(self, data: bytes):
        with self.lock:
            if len(self.received) < 1 << 20:
                self.received += data

    def wait_connections(self, n: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connections >= n:
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        self.running = False
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            for c in self.conns:
                for f in (lambda: c.shutdown(socket.SHUT_RDWR), c.close):
                    try:
                        f()
                    except OSError:
                        pass
            self.conns = []


def hold(conn: socket.socket, server: FakeNatsServer, seconds: float = 60.0):
    """Keeps a connection open (reading and discarding) until the peer or the server closes it."""
    deadline = time.monotonic() + seconds
    conn.settimeout(0.5)
    while server.running and time.monotonic() < deadline:
        try:
            d = conn.recv(65536)
        except (socket.timeout, TimeoutError):
            continue
        except OSError:
            return
        if not d:
            return
        server.note(d)


# Behaviours: each is what one misbehaving server does with a connection.

def sends_garbage(conn, server):
    conn.sendall(bytes(range(256)) * 4 + b"\r\n")
    hold(conn, server, 5)


def sends_huge_info(conn, server):
    # A valid INFO (JSON and all) of 2 MiB: longer than any line the client accepts.
    conn.sendall(info_line(server_name="x" * (2 << 20)))
    hold(conn, server, 5)


def sends_info_not_json(conn, server):
    conn.sendall(b"INFO this is not json\r\n")
    hold(conn, server, 5)


def sends_info_wrong_types(conn, server):
    conn.sendall(b'INFO {"max_payload":"huge","proto":"one","headers":"yes","connect_urls":7}\r\n')
    hold(conn, server, 5)


def err_storm(conn, server):
    # A normal INFO, then nothing but -ERR lines, as fast as the socket takes them.
    conn.sendall(info_line())
    storm = b"-ERR 'Authorization Violation'\r\n" * 2000
    for _ in range(20):
        conn.sendall(storm)


def closes_mid_handshake(conn, server):
    conn.sendall(info_line())
    buf = bytearray()
    read_until(conn, b"CONNECT", buf, 10)
    server.note(bytes(buf))
    # close without PONG (and with unread data, so the client may see a reset)


def never_answers(conn, server):
    hold(conn, server, 60)


def msg_with_impossible_size(conn, server):
    # Completes the handshake, then sends a MSG whose size overflows `n + 2`
    # (this crashed the plugin before the fix found by Tests/Fuzz).
    conn.sendall(info_line())
    buf = bytearray()
    if read_until(conn, b"PING\r\n", buf, 10):
        server.note(bytes(buf))
        conn.sendall(b"PONG\r\n")
        time.sleep(0.5)  # in the session, not in the handshake's last read
        conn.sendall(b"MSG a 1 9223372036854775807\r\n")
    hold(conn, server, 5)


def tiny_max_payload(conn, server):
    # Announces max_payload 16 (smaller than any event) and then behaves: +OK nothing,
    # answers every PING with PONG.
    conn.sendall(info_line(max_payload=16))
    buf = bytearray()
    conn.settimeout(0.5)
    deadline = time.monotonic() + 60
    while server.running and time.monotonic() < deadline:
        try:
            d = conn.recv(65536)
        except (socket.timeout, TimeoutError):
            continue
        if not d:
            return
        server.note(d)
        buf += d
        pings = buf.count(b"PING\r\n")
        if pings:
            conn.sendall(b"PONG\r\n" * pings)
            buf = buf[buf.rfind(b"PING\r\n") + 6:]


# Behaviours for test_hostile_server.py: servers that complete the handshake and then abuse it.

def handshake(conn, server, timeout: float = 10.0, **info) -> bool:
    """INFO (with `info` fields), then reads up to the client's first PING (after its CONNECT)
    and answers PONG: the client is connected. False when the client never got that far."""
    conn.sendall(info_line(**info))
    buf = bytearray()
    if not read_until(conn, b"PING\r\n", buf, timeout):
        return False
    server.note(bytes(buf))
    conn.sendall(b"PONG\r\n")
    return True


def answer_pings(conn, server, seconds: float = 120.0, after: Optional[Callable[[], None]] = None,
                 poll: float = 0.5):
    """Behaves from here on: reads (and notes) what the client sends and answers each PING
    with PONG, until the peer or the server closes or `seconds` pass. `after` runs after
    each read (e.g. to send something)."""
    buf = bytearray()
    conn.settimeout(poll)
    deadline = time.monotonic() + seconds
    while server.running and time.monotonic() < deadline:
        try:
            d = conn.recv(65536)
        except (socket.timeout, TimeoutError):
            d = None
        if d == b"":
            return
        if d:
            server.note(d)
            buf += d
            pings = buf.count(b"PING\r\n")
            if pings:
                conn.sendall(b"PONG\r\n" * pings)
                buf = buf[buf.rfind(b"PING\r\n") + 6:]
            elif len(buf) > 16:
                del buf[:-6]
        if after is not None:
            after()


def polite(conn, server):
    """A well-behaved server: handshake, then answers PINGs."""
    if handshake(conn, server):
        answer_pings(conn, server)


def flood(unit: bytes) -> Callable[[socket.socket, FakeNatsServer], None]:
    """Completes the handshake, then sends `unit` over and over, as fast as the socket takes
    it, and never reads again."""
    block = unit * max(1, 65536 // len(unit))

    def behaviour(conn, server):
        if not handshake(conn, server):
            return
        conn.settimeout(None)   # blocks while the client does not read; stop() unblocks it
        while server.running:
            conn.sendall(block)
    behaviour.__name__ = f"flood_{unit!r}"
    return behaviour


def blind_pongs(conn, server):
    """Never reads the socket: INFO, a PONG for the handshake PING it never read, and from
    then on PING + PONG every 50 ms (so there is always a PONG for no PING of the client)."""
    conn.settimeout(None)
    conn.sendall(info_line() + b"PONG\r\n" + b"PING\r\nPONG\r\n" * 10)
    while server.running:
        time.sleep(0.05)
        conn.sendall(b"PING\r\nPONG\r\n")


def auth_violation_after_handshake(conn, server):
    """Connects the client (INFO, PONG), then refuses it at once, and closes."""
    if handshake(conn, server):
        conn.sendall(b"-ERR 'Authorization Violation'\r\n")
        time.sleep(0.05)


def unreachable_ports(n: int, exclude: Iterable[int] = (), start: int = 1024) -> Iterator[int]:
    """Yields n loopback ports (cycling through 1024..32767, under the ephemeral range) on
    which nothing listens right now (per /proc/net/tcp*), skipping `exclude`."""
    busy = set(exclude) | listening_ports()
    port, made = start, 0
    while made < n:
        if port > 32767:
            port = 1024
        if port not in busy:
            yield port
            made += 1
        port += 1


def listening_ports() -> set[int]:
    out: set[int] = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for ln in f:
                    parts = ln.split()
                    if parts[3] == "0A":   # LISTEN
                        out.add(int(parts[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return out


def growing_connect_urls(every: float = 0.005, per_info: int = 10, exclude: Iterable[int] = ()):
    """Connects the client and then, every `every` seconds, sends an async INFO announcing
    `per_info` new, unreachable 127.0.0.1 URLs (a cluster that seems to grow without end);
    answers PINGs meanwhile."""
    ports = unreachable_ports(10 ** 9, exclude)
    lock = threading.Lock()

    def behaviour(conn, server):
        if not handshake(conn, server):
            return
        last = [time.monotonic()]

        def announce():
            now = time.monotonic()
            while now - last[0] >= every:
                with lock:
                    urls = [f"127.0.0.1:{next(ports)}" for _ in range(per_info)]
                conn.sendall(info_line(connect_urls=urls))
                server.infos_sent += 1
                last[0] += every
        answer_pings(conn, server, after=announce, poll=every)
    return behaviour


def announces_unreachable_then_closes(count: int = 40, exclude: Iterable[int] = (), closes: int = 2):
    """The first `closes` connections: INFO with `count` unreachable connect_urls, handshake,
    the same INFO again (async), then close. Every later connection: a well-behaved server."""
    urls = [f"127.0.0.1:{p}" for p in unreachable_ports(count, exclude)]
    served = [0]
    lock = threading.Lock()

    def behaviour(conn, server):
        with lock:
            served[0] += 1
            first = served[0] <= closes
        if first:
            # announced in the first INFO and again in an async INFO once connected
            if handshake(conn, server, connect_urls=urls):
                conn.sendall(info_line(connect_urls=urls))
                server.infos_sent += 1
                time.sleep(0.2)
            return
        polite(conn, server)
    return behaviour
