#!/usr/bin/env python3
"""logrelay benchmark (`make bench`): the plugin at full speed and at a daemon's pace (with the
latency write → subscriber), through a real dockerd when one can run, against the machine's own
limits.

Plays the Docker daemon with bench/loadgen.c (pre-encoded LogEntry frames, written one frame per
write() like dockerd, or in ~64 KiB batches) into K FIFOs of a fresh `logrelay` process per
scenario, sinks into a real nats-server (with and without a subscriber) and a local Logentries
TLS endpoint, and measures in the same run what the machine can do without the plugin:
the generator into a plain reader, and nats-server's (and the TLS endpoint's) ingest of a
pre-built stream. Prints a markdown report and writes it into bench/README.md.

Python standard library only. Every process it starts is stopped by its own pid.

Environment (all optional):
  LOGRELAY_BIN        plugin binary (default .build/release/logrelay)
  NATS_SERVER         nats-server binary (default /usr/sbin/nats-server)
  BENCH_LINES         100-byte lines per scenario, over all containers (default 1000000)
  BENCH_LINES_2K      2 KiB lines per scenario, over all containers (default 100000)
  BENCH_CONTAINERS    the "many containers" count (default 100)
  BENCH_ONLY          regex: run only scenarios whose id matches (ids: nats-1c-100B-frame,
                      nats-100c-2048B-batch, natssub-1c-100B-frame, le-100c-100B-frame,
                      js-1c-100B-frame, ...)
  BENCH_BASELINE_RUNS each machine limit is the best of this many runs (default 3)
  BENCH_BUFFER_SIZE   the plugin's buffer-size option per container (default 8m, the default)
  BENCH_TIMEOUT       seconds to wait for a sink to receive everything (default 120)
  BENCH_IO            loadgen's writer: poll | threads (default: threads for 1 FIFO, poll for more)
  BENCH_README        where to write the report (default bench/README.md; "-" = nowhere)
  BENCH_KEEP          1 = keep the temp dir (plugin stderr, nats log) for inspection
  BENCH_PERF          1 = attach `perf stat` (syscalls, context switches) to the plugin during
                      each scenario and report them per line in the details (adds a little
                      overhead: off for the reference figures)
  BENCH_PERF_RECORD   a directory: `perf record -e cpu-clock` the plugin during each scenario
                      into DIR/<scenario>.data (user and kernel samples; `perf report -i ...`)
  BENCH_PACED_RATES   paced scenarios' rates, k lines/s in total over all containers (default 10,100,250)
  BENCH_PACED_SECONDS seconds per paced scenario (default 5)
  BENCH_LAT_EVERY     the subscriber keeps the latency of every Nth line (default 1: all)
  BENCH_DOCKER        0 = skip the through-dockerd section (default: run it when an engine can start)
  BENCH_DOCKER_WAIT   seconds to wait until no other dockerd runs on the machine (default 600)
  BENCH_DOCKER_LINES  lines per `docker run` (default 1000000); BENCH_DOCKER_RUNS runs each (default 2)
  BENCH_DOCKERD_DIR   the private dockerd's directory (default /tmp/logrelay-bench/dockerd)
  BENCH_REGEX_KEYS    1 KiB keys for the labels-regex / env-regex cost (default 64);
                      BENCH_REGEX_CALLS calls each (20), BENCH_REGEX_TIMEOUT s per call (5)
  BENCH_WRAP          command prefix for the plugin, for profiling, e.g.
                      BENCH_WRAP="valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p"
                      (figures are then the tool's, not the plugin's)
"""
from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import platform
import re
import selectors
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "bench"
BUILD_DIR = REPO / "build" / "bench"

LINES_100 = int(os.environ.get("BENCH_LINES", "1000000"))
LINES_2K = int(os.environ.get("BENCH_LINES_2K", "100000"))
MANY = int(os.environ.get("BENCH_CONTAINERS", "100"))
ONLY = os.environ.get("BENCH_ONLY", "")
BUFFER_SIZE = os.environ.get("BENCH_BUFFER_SIZE", "8m")
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "120"))
IO_MODE = os.environ.get("BENCH_IO", "")
README = os.environ.get("BENCH_README", str(BENCH_DIR / "README.md"))
KEEP = os.environ.get("BENCH_KEEP", "") == "1"
WRAP = shlex.split(os.environ.get("BENCH_WRAP", ""))
PERF = os.environ.get("BENCH_PERF", "") == "1"
PERF_RECORD = os.environ.get("BENCH_PERF_RECORD", "")
PERF_EVENTS = ["raw_syscalls:sys_enter", "context-switches", "task-clock"]
BASELINE_RUNS = max(1, int(os.environ.get("BENCH_BASELINE_RUNS", "3")))
POLL = 0.01  # seconds between sink polls (completion times are this precise)
PACED_RATES = [int(float(x) * 1000) for x in os.environ.get("BENCH_PACED_RATES", "10,100,250").split(",") if x]
PACED_SECONDS = float(os.environ.get("BENCH_PACED_SECONDS", "5"))
LAT_EVERY = max(1, int(os.environ.get("BENCH_LAT_EVERY", "1")))

README_MARKER = "<!-- everything below this line is rewritten by bench/bench.py -->"

# Budget (docs/design.md, "Performance budget"); informational only.
BUDGET_NATS_US = 1.5
BUDGET_JS_US = 1.0        # FIFO → NATS JetStream (nats-jetstream=true), 1 container, per-frame
BUDGET_LE_US = 2.5
BUDGET_RATE = 400_000
BUDGET_IDLE_MIB = 12
BUDGET_MANY_MIB = 32
BUDGET_FULL_US = 0.43     # FIFO → NATS, 1 container, per-frame, full speed (issue 14: not worse than today)
BUDGET_PACED_US = 0.5     # every paced scenario at >= 100 k lines/s, and through a real dockerd
BUDGET_P99_MS = 10.0      # added latency p99, every rate

CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTED: list = []  # every subprocess / multiprocessing.Process we started


def log(msg: str):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# small utilities
# ---------------------------------------------------------------------------------------------

def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_until(pred, timeout: float, interval: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(interval)


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads, dead ones included), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime, stime are fields 14, 15
    return int(fields[11]) + int(fields[12])


def cpu_split(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def vm_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith(key + ":"):
                return int(ln.split()[1])
    return 0


def stop_pid_proc(p):
    """Stops one process we started, by its pid (SIGTERM, then SIGKILL)."""
    if isinstance(p, subprocess.Popen):
        if p.poll() is not None:
            return
        try:
            os.kill(p.pid, signal.SIGTERM)
            p.wait(timeout=120 if WRAP else 15)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        except ProcessLookupError:
            pass
    else:  # multiprocessing.Process
        if p.is_alive():
            p.terminate()  # SIGTERM to p.pid
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join(5)


def forget(p):
    stop_pid_proc(p)
    if p in STARTED:
        STARTED.remove(p)


# ---------------------------------------------------------------------------------------------
# the load generator (C) and the plain reader
# ---------------------------------------------------------------------------------------------

def build_loadgen() -> str:
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    src, out = BENCH_DIR / "loadgen.c", BUILD_DIR / "loadgen"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        # gcc, else any C compiler around (the Swift toolchain brings clang)
        cc = next((c for c in (os.environ.get("CC"), "gcc", "cc", "clang") if c and shutil.which(c)), None)
        if cc is None:
            raise SystemExit("bench: no C compiler for bench/loadgen.c (apt-get install gcc, or set CC)")
        log(f"building {out.relative_to(REPO)} with {cc}")
        subprocess.run([cc, "-O2", "-Wall", "-pthread", "-o", str(out), str(src)], check=True)
    return str(out)


class Loadgen:
    """One `loadgen write` run: opens the FIFOs (O_RDWR), encodes, waits for go()."""

    def __init__(self, exe: str, fifos: list[str], lines: int, size: int, mode: str, rate: int = 0):
        args = [exe, "write", "--lines", str(lines), "--size", str(size), "--mode", mode]
        if rate:
            args += ["--rate", str(rate), "--stamp", "1"]
        elif IO_MODE:
            args += ["--io", IO_MODE]
        self.p = subprocess.Popen(args + fifos, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        STARTED.append(self.p)
        ln = self.p.stdout.readline().strip()
        if ln != "ready":
            raise RuntimeError(f"loadgen did not start: {ln!r}")

    def go(self):
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        self.started = True

    def wait_done(self) -> dict:
        ln = self.p.stdout.readline().split()
        if not ln or ln[0] != "done":
            raise RuntimeError(f"loadgen failed: {ln!r}")
        t0, t1, nbytes, writes, frames, cpu, behind = map(int, ln[1:8])
        return {"t0": t0, "t1": t1, "bytes": nbytes, "writes": writes, "frames": frames, "cpu_us": cpu,
                "behind_us": behind}

    started = False

    def close(self):
        """Like dockerd after StopLogging: close the FIFO fds (loadgen exits). Before go(),
        just stops it (by its pid): "close" would be taken for "go"."""
        if not self.started:
            forget(self.p)
            return
        try:
            self.p.stdin.write("close\n")
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        self.p.wait(timeout=30)
        forget(self.p)


def make_fifos(d: Path, k: int) -> list[str]:
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for _ in range(k):
        path = d / os.urandom(32).hex()
        os.mkfifo(path, 0o700)
        out.append(str(path))
    return out


def remove_fifos(fifos: list[str]):
    for f in fifos:
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------------------------------------
# nats-server, a raw NATS subscriber, a pre-built PUB stream
# ---------------------------------------------------------------------------------------------

def nats_server_binary() -> str:
    for c in (os.environ.get("NATS_SERVER"), "/usr/sbin/nats-server", "/usr/bin/nats-server",
              shutil.which("nats-server")):
        if c and os.access(c, os.X_OK):
            return c
    raise SystemExit("bench: nats-server not found (make deps, or set NATS_SERVER)")


class Nats:
    def __init__(self, workdir: Path, jetstream: bool = False):
        self.port, self.http_port = free_port(), free_port()
        name = "nats-server-js" if jetstream else "nats-server"
        self.logf = open(workdir / f"{name}.log", "wb")
        js = ["-js", "-sd", str(workdir / f"{name}-store")] if jetstream else []
        self.p = subprocess.Popen([nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port),
                                   "-m", str(self.http_port), *js],
                                  stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        STARTED.append(self.p)
        if not wait_until(lambda: port_accepts(self.port) and port_accepts(self.http_port), 10):
            raise SystemExit("bench: nats-server did not come up")
        self.mon = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)

    @property
    def pid(self):
        return self.p.pid

    def get(self, path: str) -> dict:
        for attempt in range(2):
            try:
                self.mon.request("GET", path)
                r = self.mon.getresponse()
                return json.loads(r.read())
            except (http.client.HTTPException, OSError):
                self.mon.close()
                self.mon = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
                if attempt:
                    raise
        return {}

    def varz(self) -> dict:
        return self.get("/varz")

    def in_msgs(self) -> int:
        return int(self.varz()["in_msgs"])

    def plugin_connections(self) -> int:
        conns = self.get("/connz?limit=1024").get("connections") or []
        return sum(1 for c in conns if not str(c.get("name", "")).startswith("bench-"))

    def js_request(self, subject: str, body: dict | None = None, timeout: float = 10) -> dict:
        """A JetStream API request over a raw connection; its JSON reply."""
        raw = json.dumps(body).encode() if body is not None else b""
        inbox = b"_INBOX.bench-" + uuid.uuid4().hex.encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            buf = _read_until(s, b"\r\n")
            s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"name":"bench-jsapi"}\r\n'
                      b"SUB %s 1\r\nPUB %s %s %d\r\n%s\r\n" % (inbox, subject.encode(), inbox, len(raw), raw))
            buf = _read_until(s, b"MSG " + inbox, buf)
            buf = buf[buf.index(b"MSG " + inbox):]
            buf = _read_until(s, b"\r\n", buf)
            line, _, rest = buf.partition(b"\r\n")
            n = int(line.split()[-1])
            while len(rest) < n:
                d = s.recv(65536)
                if not d:
                    raise ConnectionError("closed")
                rest += d
            return json.loads(rest[:n])

    def new_stream(self, subjects: list[str]):
        """An empty file-storage stream LOGS on `subjects` (deleted and made again)."""
        def create() -> bool:
            try:
                self.js_request("$JS.API.STREAM.DELETE.LOGS", timeout=2)
                r = self.js_request("$JS.API.STREAM.CREATE.LOGS", {
                    "name": "LOGS", "subjects": subjects, "storage": "file",
                    "duplicate_window": 120_000_000_000}, timeout=2)
                return "error" not in r
            except (OSError, ValueError):   # JetStream not up yet
                return False
        if not wait_until(create, 20, 0.2):
            raise RuntimeError("could not create the JetStream stream LOGS")

    def stored(self) -> int:
        """Messages stored in JetStream (/jsz: every stream of the server)."""
        return int(self.get("/jsz").get("messages", 0))

    def stop(self):
        forget(self.p)
        self.logf.close()


def _read_until(s: socket.socket, token: bytes, buf: bytes = b"") -> bytes:
    while token not in buf:
        d = s.recv(65536)
        if not d:
            raise ConnectionError("closed")
        buf += d
    return buf


# the write time that `loadgen write --stamp 1` puts in a line's first 19 bytes, as the event's
# JSON shows it (digits are never escaped)
STAMP_RE = re.compile(rb'"log":"(\d{19})')
STAMP_LEN = 26  # len('"log":"') + 19


def _nats_sub_main(port: int, subject: str, count, target, done_ns, ready, lat=None, lat_every: int = 1):
    """A raw-socket subscriber: counts `MSG ` in the byte stream (no parsing, to keep up).

    With `lat` (a shared array of 5 doubles): also the latency of each line, receive time
    (CLOCK_REALTIME once per recv) − the write time in the line's first 19 bytes, found by one
    regex scan per recv over the raw bytes (no per-message parsing); every `lat_every`-th
    stamp is kept. When `target` messages have arrived: done_ns, then lat = [p50 ms, p99 ms,
    max ms, samples, 1].
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    _read_until(s, b"\r\n")  # INFO
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"name":"bench-sub"}\r\n'
              b"SUB " + subject.encode() + b" 1\r\nPING\r\n")
    _read_until(s, b"PONG\r\n")
    ready.set()
    if lat is not None:
        return _nats_sub_latency(s, count, target, done_ns, lat, lat_every)
    # recv_into one buffer; its first 3 bytes carry the previous read's last 3, so a `MSG `
    # split across reads is counted once
    buf = bytearray(3 + (1 << 20))
    view = memoryview(buf)[3:]
    n = 0
    while True:
        r = s.recv_into(view)
        if not r:
            return
        n += buf.count(b"MSG ", 0, 3 + r)
        buf[0:3] = buf[r:r + 3]
        count.value = n
        t = target.value
        if t and n >= t and not done_ns.value:
            done_ns.value = time.monotonic_ns()


def _nats_sub_latency(s: socket.socket, count, target, done_ns, lat, every: int):
    from array import array
    # buf[0:carry] holds the previous read's last bytes (a stamp or `MSG ` cut by the read);
    # every complete stamp lies before them (it needs STAMP_LEN bytes), so none is seen twice
    buf = bytearray(64 + (1 << 20))
    mv = memoryview(buf)
    carry = 0
    samples = array("q")
    n = 0
    while True:
        r = s.recv_into(mv[carry:])
        if not r:
            return
        now = time.time_ns()
        end = carry + r
        n += buf.count(b"MSG ", max(0, carry - 3), end)
        stamps = STAMP_RE.findall(buf, 0, end)
        if every > 1:
            stamps = stamps[::every]
        samples.extend([now - int(x) for x in stamps])
        carry = min(STAMP_LEN - 1, end)
        buf[0:carry] = buf[end - carry:end]
        count.value = n
        t = target.value
        if t and n >= t and not done_ns.value:
            done_ns.value = time.monotonic_ns()
            v = sorted(samples)
            if v:
                lat[0] = v[len(v) // 2] / 1e6
                lat[1] = v[min(len(v) - 1, (len(v) * 99) // 100)] / 1e6
                lat[2] = v[-1] / 1e6
            lat[3] = len(v)
            lat[4] = 1


class CountingSink:
    """A counter process (NATS subscriber or TLS line sink) with shared counters."""

    def __init__(self, fn, *args, latency: bool = False, lat_every: int = 1):
        ctx = multiprocessing.get_context("fork")
        self.count = ctx.Value("q", 0, lock=False)
        self.target = ctx.Value("q", 0, lock=False)
        self.done_ns = ctx.Value("q", 0, lock=False)
        self.port = ctx.Value("i", 0, lock=False)
        self.lat = ctx.Array("d", 5, lock=False) if latency else None
        self.ready = ctx.Event()
        kw = {"lat": self.lat, "lat_every": lat_every} if latency else {}
        self.p = ctx.Process(target=fn, args=(*args, self.count, self.target, self.done_ns, self.ready),
                             kwargs=kw, daemon=True)
        self.p.start()
        STARTED.append(self.p)
        if not self.ready.wait(15):
            raise SystemExit("bench: a sink process did not start")

    @property
    def pid(self):
        return self.p.pid

    def latency(self, timeout: float = 60) -> Optional[tuple]:
        """(p50 ms, p99 ms, max ms, samples) once the subscriber has them, else None."""
        if self.lat is None or not wait_until(lambda: self.lat[4] != 0, timeout, 0.01):
            return None
        return self.lat[0], self.lat[1], self.lat[2], int(self.lat[3])

    def expect(self, n: int):
        self.done_ns.value = 0
        self.target.value = self.count.value + n
        self.base = self.count.value

    def received(self) -> int:
        return self.count.value - self.base

    def stop(self):
        forget(self.p)


def nats_event(line: bytes, k: int) -> bytes:
    """An event the size of the plugin's (same fields as docs/design.md "The event")."""
    return json.dumps({"time": "2026-11-23T08:00:09.215590730Z", "source": "stdout",
                       "log": line.decode(), "tag": f"bench.c{k}", "container_id": "a" * 64,
                       "container_name": f"/bench-c{k}", "image_id": "sha256:" + "b" * 64,
                       "image_name": "alpine"}, separators=(",", ":")).encode()


def bench_line(k: int, i: int, size: int) -> bytes:
    h = f"c{k} l{i} ".encode()[:size]
    return h + b"x" * (size - len(h))


# ---------------------------------------------------------------------------------------------
# a local Logentries endpoint: TLS server counting '\n'
# ---------------------------------------------------------------------------------------------

def make_pki(d: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl CLI)."""
    d.mkdir(parents=True, exist_ok=True)

    def ossl(*a):
        subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2", "-subj", "/CN=logrelay-bench-ca",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    (d / "server.ext").write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                                  "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "server-key.pem", "-out", "server.csr", "-subj", "/CN=localhost")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
         "-out", "server-cert.pem", "-days", "2", "-sha256", "-extfile", "server.ext")
    for f in d.glob("*.pem"):
        f.chmod(0o644)
    return d / "ca.pem", d / "server-cert.pem", d / "server-key.pem"


def _le_sink_main(cert: str, key: str, count, target, done_ns, ready, port=None):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1024)
    ls.setblocking(False)
    port.value = ls.getsockname()[1]
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    ready.set()
    n = 0
    buf = bytearray(1 << 20)
    while True:
        for key_, _ in sel.select(timeout=1.0):
            if key_.data is None:
                while True:
                    try:
                        c, _ = ls.accept()
                    except BlockingIOError:
                        break
                    c.setblocking(False)
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                    tc = ctx.wrap_socket(c, server_side=True, do_handshake_on_connect=False)
                    sel.register(tc, selectors.EVENT_READ, [False])
                continue
            tc, st = key_.fileobj, key_.data
            try:
                if not st[0]:
                    tc.do_handshake()
                    st[0] = True
                while True:
                    r = tc.recv_into(buf)
                    if not r:
                        sel.unregister(tc)
                        tc.close()
                        break
                    n += buf.count(b"\n", 0, r)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except (OSError, ssl.SSLError):
                sel.unregister(tc)
                tc.close()
            count.value = n
            t = target.value
            if t and n >= t and not done_ns.value:
                done_ns.value = time.monotonic_ns()


class LESink(CountingSink):
    def __init__(self, cert: Path, key: Path):
        ctx = multiprocessing.get_context("fork")
        self.count = ctx.Value("q", 0, lock=False)
        self.target = ctx.Value("q", 0, lock=False)
        self.done_ns = ctx.Value("q", 0, lock=False)
        self.port = ctx.Value("i", 0, lock=False)
        self.ready = ctx.Event()
        self.p = ctx.Process(target=_le_sink_main, args=(str(cert), str(key), self.count, self.target,
                                                         self.done_ns, self.ready),
                             kwargs={"port": self.port}, daemon=True)
        self.p.start()
        STARTED.append(self.p)
        if not self.ready.wait(15):
            raise SystemExit("bench: the TLS sink did not start")


# ---------------------------------------------------------------------------------------------
# the plugin
# ---------------------------------------------------------------------------------------------

def logrelay_binary() -> str:
    b = os.environ.get("LOGRELAY_BIN") or str(REPO / ".build" / "release" / "logrelay")
    if not os.access(b, os.X_OK):
        raise SystemExit(f"bench: no plugin binary at {b} (make build, or set LOGRELAY_BIN)")
    return b


class Plugin:
    def __init__(self, workdir: Path, name: str):
        self.dir = workdir / name
        (self.dir / "state").mkdir(parents=True, exist_ok=True)
        self.sock = str(self.dir / "logrelay.sock")
        env = dict(os.environ, LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "warn"), DRIVER="auto")
        self.errf = open(self.dir / "stderr.log", "wb")
        self.p = subprocess.Popen(WRAP + [logrelay_binary(), "--socket", self.sock, "--state-dir",
                                          str(self.dir / "state")],
                                  stdout=self.errf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        STARTED.append(self.p)
        ok = wait_until(lambda: self.p.poll() is not None or self._accepts(), 60 if WRAP else 10)
        if not ok or self.p.poll() is not None:
            raise SystemExit(f"bench: logrelay did not start: {self.stderr()[-2000:]}")
        self.conn: Optional[socket.socket] = None
        self.buf = b""

    def _accepts(self) -> bool:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(self.sock)
            return True
        except OSError:
            return False
        finally:
            s.close()

    @property
    def pid(self):
        return self.p.pid

    def stderr(self) -> str:
        try:
            return (self.dir / "stderr.log").read_text(errors="replace")
        except OSError:
            return ""

    def call(self, path: str, body: Optional[dict], timeout: float = 30, attempts: int = 2) -> tuple[int, dict]:
        """POST like dockerd's plugin client (HTTP/1.1 keep-alive over the unix socket)."""
        raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode() + b"\n"
        req = (f"POST {path} HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\n"
               f"Content-Length: {len(raw)}\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\n\r\n"
               ).encode() + raw
        for attempt in range(attempts):
            try:
                if self.conn is None:
                    self.conn = socket.socket(socket.AF_UNIX)
                    self.conn.connect(self.sock)
                    self.buf = b""
                self.conn.settimeout(timeout)
                self.conn.sendall(req)
                return self._response()
            except (OSError, ConnectionError):
                if self.conn:
                    self.conn.close()
                self.conn = None
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _response(self) -> tuple[int, dict]:
        while b"\r\n\r\n" not in self.buf:
            d = self.conn.recv(65536)
            if not d:
                raise ConnectionError("plugin closed the connection")
            self.buf += d
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        n = int(hdrs.get("content-length", "0"))
        while len(rest) < n:
            d = self.conn.recv(65536)
            if not d:
                raise ConnectionError("plugin closed the connection")
            rest += d
        body, self.buf = rest[:n], rest[n:]
        if hdrs.get("connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        try:
            return status, json.loads(body or b"{}")
        except ValueError:
            return status, {"Err": body.decode(errors="replace")}

    def dropped(self) -> int:
        """Sum of logrelay_container_lines_dropped_total (GET /metrics); -1 when unavailable."""
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(self.sock)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            s.close()
            total = 0
            for ln in data.decode(errors="replace").splitlines():
                if ln.startswith("logrelay_container_lines_dropped_total{"):
                    total += int(float(ln.rsplit(" ", 1)[1]))
            return total
        except (OSError, ValueError):
            return -1

    def stop(self):
        if self.conn:
            self.conn.close()
        forget(self.p)
        self.errf.close()


def info(k: int, config: dict) -> dict:
    cid = (f"{k:08x}" + uuid.uuid4().hex * 2)[:64]
    return {"Config": config, "ContainerID": cid, "ContainerName": f"/bench-c{k}",
            "ContainerEntrypoint": "sh", "ContainerArgs": ["-c", "yes"],
            "ContainerImageID": "sha256:" + "b" * 64, "ContainerImageName": "alpine",
            "ContainerCreated": "2024-05-01T12:00:00.12345Z",
            "ContainerEnv": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "ContainerLabels": {}, "LogPath": "", "DaemonName": "docker"}


# ---------------------------------------------------------------------------------------------
# scenarios
# ---------------------------------------------------------------------------------------------

@dataclass
class Scenario:
    sink: str        # nats | natssub | le | js (NATS JetStream, nats-jetstream=true)
    k: int           # containers (FIFOs)
    size: int        # line bytes
    mode: str        # frame | batch
    rate: int = 0    # paced: lines/s in total over the k containers (0: full speed)

    @property
    def id(self) -> str:
        if self.rate:
            return f"paced-{self.k}c-{self.rate // 1000}k"
        return f"{self.sink}-{self.k}c-{self.size}B-{self.mode}"

    @property
    def lines(self) -> int:
        """Lines per container."""
        if self.rate:
            return max(1, int(self.rate * PACED_SECONDS) // self.k)
        total = LINES_100 if self.size <= 100 else LINES_2K
        return max(1, total // self.k)

    @property
    def title(self) -> str:
        ctr = "1 container" if self.k == 1 else f"{self.k} containers"
        if self.rate:
            return f"paced {self.rate / 1000:g} k lines/s in total, {ctr}, {self.size} B → NATS + subscriber"
        sink = {"nats": "NATS", "natssub": "NATS + subscriber", "le": "Logentries TLS",
                "js": "NATS JetStream (file stream)"}[self.sink]
        size = "2 KiB" if self.size == 2048 else f"{self.size} B"
        mode = "per-frame" if self.mode == "frame" else "batched"
        return f"FIFO → {sink}, {ctr}, {size}, {mode}"


@dataclass
class Result:
    title: str
    lines: int = 0
    size: int = 0
    seconds: float = 0.0
    cpu_us: Optional[float] = None       # plugin (or reader) CPU per line
    sys_share: Optional[float] = None
    rss_mib: Optional[float] = None
    fifo_ratio: Optional[float] = None
    sink_ratio: Optional[float] = None
    note: str = ""
    details: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0

    @property
    def mbps(self) -> float:
        return self.lines * self.size / self.seconds / 1e6 if self.seconds > 0 else 0.0


def all_scenarios() -> list[Scenario]:
    out = []
    for k in (1, MANY):
        for size in (100, 2048):
            for mode in ("frame", "batch"):
                out.append(Scenario("nats", k, size, mode))
    for k in (1, MANY):
        out.append(Scenario("natssub", k, 100, "frame"))
    for k in (1, MANY):
        out.append(Scenario("le", k, 100, "frame"))
    for k in (1, MANY):
        out.append(Scenario("js", k, 100, "frame"))
    for k in (1, MANY):
        for rate in PACED_RATES:
            out.append(Scenario("natssub", k, 100, "frame", rate))
    if ONLY:
        out = [s for s in out if re.search(ONLY, s.id)]
    return out


def baseline_reader(exe: str, workdir: Path, k: int, lines: int, size: int, mode: str) -> Result:
    fifos = make_fifos(workdir / "reader-fifos", k)
    try:
        lg = Loadgen(exe, fifos, lines, size, mode)
        rd = subprocess.Popen([exe, "read", *fifos], stdout=subprocess.PIPE, text=True)
        STARTED.append(rd)
        assert rd.stdout.readline().strip() == "ready"
        lg.go()
        g = lg.wait_done()
        lg.close()
        out = rd.stdout.readline().split()
        rd.wait(30)
        forget(rd)
        t_end, nbytes, rcpu = int(out[1]), int(out[2]), int(out[3])
        if nbytes != g["bytes"]:
            raise RuntimeError(f"reader got {nbytes} of {g['bytes']} bytes")
        n = lines * k
        r = Result(f"generator → plain reader, {k} FIFO{'s' if k > 1 else ''}, "
                   f"{'2 KiB' if size == 2048 else f'{size} B'}, {'per-frame' if mode == 'frame' else 'batched'}",
                   lines=n, size=size, seconds=(t_end - g["t0"]) / 1e9, cpu_us=rcpu / n)
        r.note = "CPU = the reader's"
        r.details = {"gen_write_s": (g["t1"] - g["t0"]) / 1e9, "gen_cpu_us": g["cpu_us"] / n,
                     "writes": g["writes"]}
        return r
    finally:
        remove_fifos(fifos)


def baseline_nats_ingest(nats: Nats, size: int, total: int, with_sub: bool) -> Result:
    """nats-server's ingest of a pre-built PUB stream on one socket (PING/PONG or subscriber at the end)."""
    sub = CountingSink(_nats_sub_main, nats.port, "bench.>") if with_sub else None
    try:
        m = min(total, 20000 if size <= 100 else 4000)
        chunk = bytearray()
        for i in range(m):
            ev = nats_event(bench_line(0, i, size), 0)
            chunk += b"PUB bench.c0 %d\r\n%s\r\n" % (len(ev), ev)
        chunk = bytes(chunk)
        reps, rest = divmod(total, m)
        tail = b""  # the remainder: the first `rest` messages of the chunk
        if rest:
            off = 0
            for _ in range(rest):
                nl = chunk.index(b"\r\n", off)
                plen = int(chunk[off:nl].split()[2])
                off = nl + 2 + plen + 2
            tail = chunk[:off]
        s = socket.create_connection(("127.0.0.1", nats.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        _read_until(s, b"\r\n")
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"name":"bench-pub"}\r\nPING\r\n')
        _read_until(s, b"PONG\r\n")
        if sub:
            sub.expect(total)
        ncpu0 = cpu_ticks(nats.pid)
        subcpu0 = cpu_ticks(sub.pid) if sub else 0
        t0 = time.monotonic_ns()
        for _ in range(reps):
            s.sendall(chunk)
        if tail:
            s.sendall(tail)
        s.sendall(b"PING\r\n")
        _read_until(s, b"PONG\r\n")
        t1 = time.monotonic_ns()
        if sub:
            if not wait_until(lambda: sub.done_ns.value != 0, TIMEOUT, 0.005):
                raise RuntimeError(f"subscriber got {sub.received()} of {total}")
            t1 = sub.done_ns.value
        ncpu = (cpu_ticks(nats.pid) - ncpu0) * 1e6 / CLK_TCK
        subcpu = (cpu_ticks(sub.pid) - subcpu0) * 1e6 / CLK_TCK if sub else 0
        s.close()
        evsize = len(nats_event(bench_line(0, 0, size), 0))
        r = Result(f"nats-server ingest, pre-built PUB stream, {'2 KiB' if size == 2048 else f'{size} B'} lines"
                   f" ({evsize} B events){', + subscriber' if with_sub else ''}",
                   lines=total, size=size, seconds=(t1 - t0) / 1e9)
        r.note = f"nats-server CPU {ncpu / total:.2f} µs/msg" + (f", subscriber {subcpu / total:.2f}" if sub else "")
        return r
    finally:
        if sub:
            sub.stop()


def baseline_le_ingest(sink: LESink, ca: Path, size: int, total: int) -> Result:
    token = str(uuid.uuid4())
    m = min(total, 20000)
    chunk = b"".join(token.encode() + b" " + nats_event(bench_line(0, i, size), 0) + b"\n" for i in range(m))
    ctx = ssl.create_default_context(cafile=str(ca))
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", sink.port.value)), server_hostname="127.0.0.1")
    reps, rest = divmod(total, m)
    tail = b"".join(chunk.split(b"\n")[i] + b"\n" for i in range(rest)) if rest else b""
    sink.expect(total)
    scpu0 = cpu_ticks(sink.pid)
    t0 = time.monotonic_ns()
    for _ in range(reps):
        s.sendall(chunk)
    if tail:
        s.sendall(tail)
    if not wait_until(lambda: sink.done_ns.value != 0, TIMEOUT, 0.005):
        raise RuntimeError(f"TLS sink got {sink.received()} of {total}")
    t1 = sink.done_ns.value
    scpu = (cpu_ticks(sink.pid) - scpu0) * 1e6 / CLK_TCK
    s.close()
    r = Result(f"TLS line sink ingest, pre-built `TOKEN EVENT` lines on one connection, {size} B lines",
               lines=total, size=size, seconds=(t1 - t0) / 1e9)
    r.note = f"sink CPU {scpu / total:.2f} µs/line"
    return r


class PerfStat:
    """`perf stat` attached to one pid (BENCH_PERF=1); counts() after stop()."""

    def __init__(self, pid: int, out: Path, record: bool = False):
        self.out = out
        self.record = record
        args = (["perf", "record", "-q", "-e", "cpu-clock", "-F", "4999", "-o", str(out)] if record else
                ["perf", "stat", "-x", ",", "-o", str(out), "-e", ",".join(PERF_EVENTS)])
        self.p = subprocess.Popen(args + ["-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        STARTED.append(self.p)
        time.sleep(0.3)  # let it attach

    def stop(self) -> dict:
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGINT)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        forget(self.p)
        counts = {}
        if self.record:
            return counts
        try:
            for ln in self.out.read_text().splitlines():
                f = ln.split(",")
                if len(f) >= 3 and f[2] in PERF_EVENTS:
                    try:
                        counts[f[2]] = float(f[0])
                    except ValueError:
                        pass
        except OSError:
            pass
        return counts


def run_scenario(sc: Scenario, exe: str, workdir: Path, nats: Nats, pki, le_sink: Optional[LESink]) -> Result:
    res = Result(sc.title, size=sc.size)
    plugin = Plugin(workdir, sc.id)
    fifos = make_fifos(plugin.dir / "logging", sc.k)
    lg = None
    sub = None
    sink_pid = nats.pid
    try:
        if sc.sink == "natssub":
            sub = CountingSink(_nats_sub_main, nats.port, "bench.>", latency=bool(sc.rate), lat_every=LAT_EVERY)
        if sc.sink == "js":
            nats.new_stream(["bench.>"])
        lg = Loadgen(exe, fifos, sc.lines, sc.size, sc.mode, sc.rate)
        n = sc.lines * sc.k
        start_ms = []
        for k, f in enumerate(fifos):
            if sc.sink == "le":
                cfg = {"logentries-token": str(uuid.uuid4()),
                       "logentries-address": f"127.0.0.1:{le_sink.port.value}",
                       "logentries-tls-ca-cert": str(pki[0]), "tag": f"bench.c{k}",
                       "buffer-size": BUFFER_SIZE}
            else:
                cfg = {"nats-servers": f"nats://127.0.0.1:{nats.port}", "tag": f"bench.c{k}",
                       "buffer-size": BUFFER_SIZE}
                if sc.sink == "js":
                    # The stream stores more slowly than the generator writes: back-pressure into
                    # the FIFO (as a container feels it) instead of dropping what it cannot take.
                    cfg.update({"nats-jetstream": "true", "buffer-full": "block"})
            t_call = time.monotonic_ns()
            status, body = plugin.call("/LogDriver.StartLogging", {"File": f, "Info": info(k, cfg)})
            start_ms.append((time.monotonic_ns() - t_call) / 1e6)
            err = body.get("Err", "") if isinstance(body, dict) else ""
            if status != 200 or err:
                if sc.sink == "le":
                    res.note = f"n/a (driver not available: {err or status})"
                    return res
                raise RuntimeError(f"StartLogging failed: {status} {err}")
        if sc.sink == "le":
            sink_pid = le_sink.pid
            le_sink.expect(n)
        elif sub:
            sub.expect(n)
        base_msgs = nats.in_msgs()
        perf = PerfStat(plugin.pid, plugin.dir / "perf.csv") if PERF else None
        if PERF_RECORD:
            Path(PERF_RECORD).mkdir(parents=True, exist_ok=True)
            rec = PerfStat(plugin.pid, Path(PERF_RECORD) / f"{sc.id}.data", record=True)
        else:
            rec = None
        pcpu0 = cpu_split(plugin.pid)
        scpu0 = cpu_ticks(sink_pid)
        subcpu0 = cpu_ticks(sub.pid) if sub else 0
        load0 = loadavg()
        lg.go()
        g = lg.wait_done()
        conns = nats.plugin_connections() if sc.sink != "le" else None
        for f in fifos:
            plugin.call("/LogDriver.StopLogging", {"File": f})
        lg.close()
        lg = None

        if sc.sink == "nats":
            got = lambda: nats.in_msgs() - base_msgs  # noqa: E731
        elif sc.sink == "js":
            got = nats.stored
        else:
            snk = le_sink if sc.sink == "le" else sub
            got = snk.received
        t_done = None
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if sc.sink in ("nats", "js"):
                if got() >= n:
                    t_done = time.monotonic_ns()
                    break
            else:
                if snk.done_ns.value:
                    t_done = snk.done_ns.value
                    break
            if not plugin.p.poll() is None:
                break
            time.sleep(POLL)
        pcpu1 = cpu_split(plugin.pid) if plugin.p.poll() is None else pcpu0
        scpu1 = cpu_ticks(sink_pid)
        subcpu1 = cpu_ticks(sub.pid) if sub else 0
        load1 = loadavg()
        lat = sub.latency() if sub is not None and sc.rate and t_done_pending(sub) else None
        pc = perf.stop() if perf else {}
        if rec:
            rec.stop()
        res.rss_mib = vm_kib(plugin.pid, "VmHWM") / 1024 if plugin.p.poll() is None else None
        dropped = plugin.dropped()
        res.lines = n
        res.details = {"gen_write_s": (g["t1"] - g["t0"]) / 1e9, "gen_cpu_us": g["cpu_us"] / n,
                       "dropped": dropped, "nats_conns": conns,
                       "sink_cpu_us": (scpu1 - scpu0) * 1e6 / CLK_TCK / n,
                       "load": f"{load0} → {load1}", "start_ms": start_ms}
        if sub:
            res.details["sub_cpu_us"] = (subcpu1 - subcpu0) * 1e6 / CLK_TCK / n
        if sc.rate:
            res.details["target_rate"] = sc.rate
            res.details["gen_rate"] = n / ((g["t1"] - g["t0"]) / 1e9) if g["t1"] > g["t0"] else 0
            res.details["behind_ms"] = g["behind_us"] / 1e3
            res.details["latency"] = lat
        if pc:
            res.details["syscalls"] = pc.get("raw_syscalls:sys_enter", 0) / n
            res.details["cswitch"] = pc.get("context-switches", 0) / n
        if t_done is None:
            res.note = (f"INCOMPLETE: the sink got {got()} of {n} in {TIMEOUT:.0f} s"
                        + (f"; plugin exited {plugin.p.returncode}" if plugin.p.poll() is not None else "")
                        + (f"; {dropped} dropped" if dropped > 0 else ""))
            return res
        res.seconds = (t_done - g["t0"]) / 1e9
        res.details["tail_ms"] = (t_done - g["t1"]) / 1e6
        ut, st = pcpu1[0] - pcpu0[0], pcpu1[1] - pcpu0[1]
        res.cpu_us = (ut + st) * 1e6 / CLK_TCK / n
        res.sys_share = st / (ut + st) if ut + st else 0.0
        if dropped > 0:
            res.note = f"{dropped} lines dropped by the plugin"
        return res
    finally:
        if lg is not None:
            lg.close()
        if sub is not None:
            sub.stop()
        plugin.stop()
        remove_fifos(fifos)


# ---------------------------------------------------------------------------------------------
# through a real dockerd (Tests/support/dockerd.sh, busybox-image.sh, plugin/install.sh)
# ---------------------------------------------------------------------------------------------

DOCKER_ALIAS = "logrelay-bench"
DOCKERD_DIR = os.environ.get("BENCH_DOCKERD_DIR", "/tmp/logrelay-bench/dockerd")
DOCKER_MODE = os.environ.get("BENCH_DOCKER", "auto")      # auto | 0
DOCKER_LINES = int(os.environ.get("BENCH_DOCKER_LINES", "1000000"))
DOCKER_RUNS = max(1, int(os.environ.get("BENCH_DOCKER_RUNS", "2")))
DOCKER_WAIT = float(os.environ.get("BENCH_DOCKER_WAIT", "600"))
SUPPORT = REPO / "Tests" / "support"


def other_dockerds(own_pid: int = 0) -> list[str]:
    """`ps aux | grep [d]ockerd`: every running dockerd but ours."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    found = []
    for ln in out.splitlines():
        pid, _, args = ln.strip().partition(" ")
        prog = args.split()[0] if args.split() else ""
        if os.path.basename(prog) == "dockerd" and int(pid) != own_pid:
            found.append(ln.strip())
    return found


def proc_children(ppid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def plugin_host_pid(plugin_id: str) -> Optional[int]:
    """The child of the containerd-shim whose command line has `-id <plugin id>`."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            argv = open(f"/proc/{d}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in os.path.basename(argv[0]) and b"-id" in argv:
            i = argv.index(b"-id")
            if i + 1 < len(argv) and argv[i + 1].decode() == plugin_id:
                kids = proc_children(int(d))
                return kids[0] if kids else None
    return None


@dataclass
class DockerRun:
    workload: str
    driver: str
    run: int
    wall_s: float = 0.0
    at_nats_s: Optional[float] = None
    dockerd_cpu_s: float = 0.0
    plugin_cpu_s: Optional[float] = None
    lines_at_nats: Optional[int] = None
    load: str = ""
    note: str = ""


class DockerBench:
    """A private dockerd (only when no other dockerd runs), the plugin from a plugin dir built
    like `make plugin-dir`, `docker run -d … ; docker wait` per run."""

    def __init__(self, workdir: Path, nats: Nats):
        self.workdir, self.nats = workdir, nats
        self.env = dict(os.environ, DOCKERD_DIR=DOCKERD_DIR, DOCKERD_FORCE_PRIVATE="1")
        self.started = False
        self.plugin_installed = False
        self.runs: list[DockerRun] = []
        self.facts: dict = {}

    def docker(self, *args, check=True, timeout=300) -> str:
        out = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:3])}: {out.stderr.strip()[-500:]}")
        return out.stdout.strip()

    def skip_reason(self) -> Optional[str]:
        if DOCKER_MODE == "0":
            return "BENCH_DOCKER=0"
        if os.geteuid() != 0:
            return "not root: a private dockerd needs root"
        for exe in ("dockerd", "docker", "containerd"):
            if not shutil.which(exe):
                return f"no `{exe}` (make deps installs Debian's engine)"
        if not os.path.exists("/bin/busybox"):
            return "no /bin/busybox (make deps: busybox-static)"
        return None

    def own_pid(self) -> int:
        try:
            return int(Path(DOCKERD_DIR, "dockerd.pid").read_text().strip())
        except (OSError, ValueError):
            return 0

    def wait_for_machine(self) -> Optional[str]:
        """Only one dockerd running plugins per machine: wait until no other runs."""
        end = time.monotonic() + DOCKER_WAIT
        said = False
        while True:
            others = other_dockerds(self.own_pid() if Path(DOCKERD_DIR, "started-by-logrelay").exists() else 0)
            if not others:
                return None
            if time.monotonic() > end:
                return (f"another dockerd kept running for {DOCKER_WAIT:.0f} s (BENCH_DOCKER_WAIT): "
                        + "; ".join(o[:120] for o in others))
            if not said:
                log(f"docker: waiting (up to {DOCKER_WAIT:.0f} s) until no other dockerd runs: {others[0][:100]}")
                said = True
            time.sleep(2)

    def setup(self):
        Path(DOCKERD_DIR).mkdir(parents=True, exist_ok=True)
        out = subprocess.run([str(SUPPORT / "dockerd.sh"), "start"], env=self.env, capture_output=True,
                             text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"dockerd.sh start: {out.stderr.strip()[-800:]}")
        host, mode = out.stdout.split()
        self.started = mode in ("started", "reused")
        self.env["DOCKER_HOST"] = host
        self.dockerd_pid = self.own_pid()
        self.facts["engine"] = self.docker("version", "-f", "{{.Server.Version}}")
        subprocess.run([str(SUPPORT / "busybox-image.sh"), "busybox:local"], env=self.env, check=True,
                       capture_output=True, timeout=300)
        # the plugin dir exactly as `make plugin-dir` makes it (without its build step)
        pdir = self.workdir / "plugin-dir"
        subprocess.run([str(REPO / "plugin" / "build-rootfs.sh"), logrelay_binary(), str(pdir / "rootfs")],
                       check=True, capture_output=True, timeout=300)
        shutil.copy(REPO / "config.json", pdir / "config.json")
        out = subprocess.run([str(REPO / "plugin" / "install.sh"), str(pdir), DOCKER_ALIAS, "DRIVER=nats",
                              "LOG_LEVEL=warn"], env=self.env, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"plugin install: {out.stdout}{out.stderr}"[-800:])
        self.plugin_installed = True
        self.plugin_id = self.docker("plugin", "inspect", "-f", "{{.Id}}", DOCKER_ALIAS)
        self.plugin_pid = plugin_host_pid(self.plugin_id)
        if not self.plugin_pid:
            raise RuntimeError("the plugin's host pid was not found (containerd-shim -id <plugin id>)")
        time.sleep(1.0)
        self.facts["plugin_idle_rss"] = vm_kib(self.plugin_pid, "VmRSS") / 1024

    def one(self, workload: str, cmd: list[str], driver: str, i: int) -> DockerRun:
        r = DockerRun(workload, driver, i)
        opts = ["--log-driver", "json-file"] if driver == "json-file" else \
            ["--log-driver", DOCKER_ALIAS, "--log-opt", f"nats-servers=nats://127.0.0.1:{self.nats.port}",
             "--log-opt", "tag=bench.docker"]
        load0 = loadavg()
        d0 = cpu_ticks(self.dockerd_pid)
        p0 = cpu_ticks(self.plugin_pid)
        in0 = self.nats.in_msgs()
        t0 = time.monotonic()
        cid = self.docker("run", "-d", "--network=none", *opts, "busybox:local", *cmd)
        try:
            code = self.docker("wait", cid, timeout=TIMEOUT + 300)
            t1 = time.monotonic()
            r.wall_s = t1 - t0
            if code.strip() != "0":
                r.note = f"container exited {code.strip()}"
            if driver != "json-file":
                ok = wait_until(lambda: self.nats.in_msgs() - in0 >= DOCKER_LINES, TIMEOUT, POLL)
                r.at_nats_s = time.monotonic() - t0 if ok else None
                time.sleep(0.2)  # anything beyond the count shows up too
                r.lines_at_nats = self.nats.in_msgs() - in0
            r.dockerd_cpu_s = (cpu_ticks(self.dockerd_pid) - d0) / CLK_TCK
            r.plugin_cpu_s = (cpu_ticks(self.plugin_pid) - p0) / CLK_TCK
            r.load = f"{load0} → {loadavg()}"
        finally:
            self.docker("rm", "-f", cid, check=False)
        return r

    def run_all(self):
        n = DOCKER_LINES
        workloads = [("seq", ["seq", "1", str(n)]),
                     ("100 B", ["sh", "-c", f"yes {'x' * 100} | head -n {n}"])]
        for wname, cmd in workloads:
            for i in range(1, DOCKER_RUNS + 1):
                for driver in (DOCKER_ALIAS, "json-file"):
                    log(f"docker: {wname} lines, --log-driver={driver}, run {i}")
                    try:
                        r = self.one(wname, cmd, driver, i)
                    except Exception as e:  # noqa: BLE001 — a failed run is a row
                        r = DockerRun(wname, driver, i, note=f"ERROR: {e}")
                    self.runs.append(r)
                    log(f"  wall {r.wall_s:.2f} s, dockerd {r.dockerd_cpu_s:.2f} s, plugin {r.plugin_cpu_s or 0:.2f} s"
                        + (f", at NATS {r.lines_at_nats:,}" if r.lines_at_nats is not None else "") + f" {r.note}")
        if self.plugin_pid:
            self.facts["plugin_peak_rss"] = vm_kib(self.plugin_pid, "VmHWM") / 1024

    def teardown(self):
        if self.plugin_installed:
            self.docker("plugin", "disable", "-f", DOCKER_ALIAS, check=False, timeout=120)
            self.docker("plugin", "rm", "-f", DOCKER_ALIAS, check=False, timeout=120)
        if self.started:
            subprocess.run([str(SUPPORT / "dockerd.sh"), "stop"], env=self.env, capture_output=True, timeout=300)


def docker_section(workdir: Path, nats: Nats) -> tuple[Optional[DockerBench], str]:
    db = DockerBench(workdir, nats)
    why = db.skip_reason() or db.wait_for_machine()
    if why:
        return None, why
    try:
        db.setup()
        db.run_all()
    except Exception as e:  # noqa: BLE001 — no engine is a note, not a crash
        return (db if db.runs else None), f"ERROR: {e}"
    finally:
        db.teardown()
    return db, ""


def docker_report(db: Optional[DockerBench], why: str) -> tuple[list[str], list[str]]:
    """(report lines, budget lines)"""
    out = ["### Through a real dockerd", ""]
    if db is None:
        out += [f"Skipped: {why}.", ""]
        return out, [f"- plugin CPU per line through a real dockerd ≤ {BUDGET_PACED_US} µs: n/a ({why})"]
    out.append(f"Docker {db.facts.get('engine', '?')} (Debian's engine, a private dockerd: "
               f"Tests/support/dockerd.sh), the plugin as `{DOCKER_ALIAS}` from a plugin dir built like "
               f"`make plugin-dir`, into this run's nats-server; per run `docker run -d --network=none "
               f"--log-driver=… busybox:local CMD` then `docker wait` (no attach: the output goes only to the "
               f"log driver). CMD = `seq 1 {DOCKER_LINES}` (1–7-byte lines, as in issue 14) or "
               f"`sh -c 'yes x…x | head -n {DOCKER_LINES}'` (100-byte lines). wall = `docker run` → `docker wait` "
               f"returned (container create and start included); CPU from `/proc/PID/stat` of dockerd and of the "
               f"plugin's host process over the same span (and the drain into NATS). Plugin RSS idle "
               f"{db.facts.get('plugin_idle_rss', 0):.1f} MiB after enable, peak "
               f"{db.facts.get('plugin_peak_rss', 0):.1f} MiB (VmHWM) over all runs."
               + (f" {why}" if why else ""))
    out.append("")
    out.append("| lines | log driver | run | wall s | all lines at NATS s | dockerd CPU s | plugin CPU s | "
               "plugin CPU µs/line | lines at NATS | load (1 min) start → end | notes |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in db.runs:
        plug = r.driver != "json-file"
        out.append(f"| {r.workload} | `{r.driver}` | {r.run} | {r.wall_s:.2f} | "
                   f"{f'{r.at_nats_s:.2f}' if r.at_nats_s else '–'} | {r.dockerd_cpu_s:.2f} | "
                   f"{f'{r.plugin_cpu_s:.2f}' if plug and r.plugin_cpu_s is not None else '–'} | "
                   f"{f'{r.plugin_cpu_s * 1e6 / DOCKER_LINES:.2f}' if plug and r.plugin_cpu_s is not None else '–'} | "
                   f"{f'{r.lines_at_nats:,}' + (' ✅' if r.lines_at_nats == DOCKER_LINES else ' ❌') if r.lines_at_nats is not None else '–'} | "
                   f"{r.load} | {r.note} |")
    out.append("")
    budget = []
    for w in dict.fromkeys(r.workload for r in db.runs):
        v = [r.plugin_cpu_s * 1e6 / DOCKER_LINES for r in db.runs
             if r.workload == w and r.driver != "json-file" and r.plugin_cpu_s is not None and not r.note]
        if v:
            budget.append(f"- plugin CPU per line through a real dockerd ({w} lines, `docker run … {DOCKER_LINES:,} lines`) "
                          f"≤ {BUDGET_PACED_US} µs: {min(v):.2f}–{max(v):.2f} µs {mark(max(v) <= BUDGET_PACED_US)}")
    return out, budget


REGEX_KEYS = int(os.environ.get("BENCH_REGEX_KEYS", "64"))
REGEX_CALLS = int(os.environ.get("BENCH_REGEX_CALLS", "20"))
REGEX_TIMEOUT = float(os.environ.get("BENCH_REGEX_TIMEOUT", "5"))
CATASTROPHIC = "^(a+)+$"


def startlogging_bench(workdir: Path, nats: Nats) -> list[str]:
    """StartLogging → answer time on an idle plugin (the FIFO held open O_RDWR as dockerd does),
    then with labels-regex / env-regex `^(a+)+$` over REGEX_KEYS keys of 1 KiB that do not
    match (`a`×1017 + `b` + 6 digits: the worst case of a backtracking engine)."""
    plugin = Plugin(workdir, "startlogging")
    d = plugin.dir / "fifos"
    keys = [("a" * 1017 + f"b{i:06d}") for i in range(REGEX_KEYS)]
    base_cfg = {"nats-servers": f"nats://127.0.0.1:{nats.port}", "tag": "bench.start"}

    def calls(extra_cfg: dict, labels: dict, env: list) -> tuple[list[float], str]:
        times = []
        for i in range(REGEX_CALLS):
            f = make_fifos(d, 1)[0]
            fd = os.open(f, os.O_RDWR | os.O_NONBLOCK)
            try:
                inf = info(i, dict(base_cfg, **extra_cfg))
                inf["ContainerLabels"] = labels
                inf["ContainerEnv"] = inf["ContainerEnv"] + env
                t = time.monotonic_ns()
                try:
                    status, body = plugin.call("/LogDriver.StartLogging", {"File": f, "Info": inf},
                                               timeout=REGEX_TIMEOUT, attempts=1)
                except OSError:
                    return times, (f"no answer within {REGEX_TIMEOUT:g} s (BENCH_REGEX_TIMEOUT; a backtracking "
                                   f"engine: the plugin was stopped)")
                times.append((time.monotonic_ns() - t) / 1e6)
                if status != 200 or body.get("Err"):
                    return times, f"refused: {status} {body.get('Err', '')[:200]}"
                plugin.call("/LogDriver.StopLogging", {"File": f})
            finally:
                os.close(fd)
                remove_fifos([f])
        return times, ""

    def p50(v):
        v = sorted(v)
        return v[len(v) // 2] if v else float("nan")
    out = []
    try:
        calls({}, {}, [])  # warm-up: the shared NATS connection
        plain, err = calls({}, {}, [])
        out.append(f"- StartLogging answered in p50 {p50(plain):.2f} ms, max {max(plain):.2f} ms "
                   f"({len(plain)} calls on an idle plugin, NATS connection already up){'; ' + err if err else ''}")
        for opt, labels, env in (("labels-regex", {k: "v" for k in keys}, []),
                                 ("env-regex", {}, [f"{k}=v" for k in keys])):
            t, err = calls({opt: CATASTROPHIC}, labels, env)
            if t and not err:
                per_key = (p50(t) - p50(plain)) * 1000 / REGEX_KEYS
                out.append(f"- `{opt}={CATASTROPHIC}` over {REGEX_KEYS} non-matching 1 KiB keys: StartLogging p50 "
                           f"{p50(t):.2f} ms, max {max(t):.2f} ms → ≈ {max(per_key, 0):.1f} µs per key "
                           f"(p50 − plain p50, ÷ keys)")
            else:
                out.append(f"- `{opt}={CATASTROPHIC}` over {REGEX_KEYS} non-matching 1 KiB keys: {err}")
                if "no answer" in err:
                    break  # a plugin that hung is not asked again
    finally:
        plugin.stop()
    return out


def latency_floor(exe: str, nats: Nats, rate: int) -> Result:
    """The pipeline without the plugin: `loadgen pub` publishes stamped events (one PUB per
    write, the same pace) straight to nats-server, the same subscriber measures the latency."""
    n = max(1, int(rate * PACED_SECONDS))
    sub = CountingSink(_nats_sub_main, nats.port, "bench.floor", latency=True, lat_every=LAT_EVERY)
    lg = None
    try:
        p = subprocess.Popen([exe, "pub", "--port", str(nats.port), "--lines", str(n), "--size", "100",
                              "--rate", str(rate)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        STARTED.append(p)
        lg = p
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("loadgen pub did not start")
        sub.expect(n)
        load0 = loadavg()
        scpu0, subcpu0 = cpu_ticks(nats.pid), cpu_ticks(sub.pid)
        p.stdin.write("go\n")
        p.stdin.flush()
        ln = p.stdout.readline().split()
        t0, t1 = int(ln[1]), int(ln[2])
        if not wait_until(lambda: sub.done_ns.value != 0, TIMEOUT, POLL):
            raise RuntimeError(f"subscriber got {sub.received()} of {n}")
        r = Result(f"floor: loadgen pub → nats-server → subscriber, no plugin, {rate / 1000:g} k lines/s",
                   lines=n, size=100, seconds=(sub.done_ns.value - t0) / 1e9)
        r.details = {"latency": sub.latency(), "gen_rate": n / ((t1 - t0) / 1e9), "behind_ms": int(ln[7]) / 1e3,
                     "load": f"{load0} → {loadavg()}",
                     "sink_cpu_us": (cpu_ticks(nats.pid) - scpu0) * 1e6 / CLK_TCK / n,
                     "sub_cpu_us": (cpu_ticks(sub.pid) - subcpu0) * 1e6 / CLK_TCK / n}
        r.note = (f"nats-server CPU {r.details['sink_cpu_us']:.2f} µs/line, subscriber "
                  f"{r.details['sub_cpu_us']:.2f}")
        return r
    finally:
        if lg is not None:
            try:
                lg.stdin.write("close\n")
                lg.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            forget(lg)
        sub.stop()


def t_done_pending(sub: CountingSink) -> bool:
    return sub.done_ns.value != 0


def loadavg() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def idle_rss(workdir: Path) -> Result:
    p = Plugin(workdir, "idle")
    try:
        time.sleep(1.0)
        r = Result("plugin idle, 1 s after start, no containers")
        r.rss_mib = vm_kib(p.pid, "VmRSS") / 1024
        r.note = f"VmHWM {vm_kib(p.pid, 'VmHWM') / 1024:.1f} MiB"
        return r
    finally:
        p.stop()


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------

def fmt_int(v: float) -> str:
    return f"{v:,.0f}"


def row(r: Result) -> str:
    if r.seconds <= 0:
        cells = [r.title, fmt_int(r.lines) if r.lines else "–", "–", "–", "–",
                 f"{r.rss_mib:.1f}" if r.rss_mib is not None else "–", "–", "–", r.note]
        return "| " + " | ".join(cells) + " |"
    cpu = "–"
    if r.cpu_us is not None:
        cpu = f"{r.cpu_us:.2f}"
        if r.sys_share is not None:
            cpu += f" ({r.sys_share * 100:.0f}% sys)"
    cells = [r.title, fmt_int(r.lines), fmt_int(r.rate), f"{r.mbps:.1f}", cpu,
             f"{r.rss_mib:.1f}" if r.rss_mib is not None else "–",
             f"{r.fifo_ratio * 100:.0f}%" if r.fifo_ratio is not None else "–",
             f"{r.sink_ratio * 100:.0f}%" if r.sink_ratio is not None else "–", r.note]
    return "| " + " | ".join(cells) + " |"


HEADER = ("| scenario | lines | lines/s | MB/s (line bytes) | CPU µs/line | peak RSS MiB | "
          "÷ FIFO limit | ÷ sink limit | notes |\n|---|---:|---:|---:|---:|---:|---:|---:|---|")


def machine_facts() -> list[str]:
    model = "?"
    try:
        for ln in open("/proc/cpuinfo"):
            if ln.startswith("model name"):
                model = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nv = subprocess.run([nats_server_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nv = "?"
    load = open("/proc/loadavg").read().split()[:3]
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        rev = "?"
    return [f"nproc {os.cpu_count()}, CPU {model}", f"kernel {platform.release()}", nv,
            f"logrelay tree {rev}", f"load average at start {' '.join(load)}"]


def command_line() -> str:
    env = [f"{k}={v}" for k, v in sorted(os.environ.items())
           if k.startswith("BENCH_") and k not in ("BENCH_INVOKED_AS",)]
    if os.environ.get("LOGRELAY_BIN") and os.path.abspath(os.environ["LOGRELAY_BIN"]) != \
            str(REPO / ".build" / "release" / "logrelay"):
        env.append(f"LOGRELAY_BIN={os.environ['LOGRELAY_BIN']}")
    return " ".join(env + [os.environ.get("BENCH_INVOKED_AS", "python3 bench/bench.py")])


def mark(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("✅ pass" if ok else "❌ fail")


def main() -> int:
    exe = build_loadgen()
    logrelay_binary()
    scenarios = all_scenarios()
    facts = machine_facts()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t_start = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="logrelay-bench-"))
    results: dict[str, Result] = {}
    baselines: list[Result] = []
    nats = js_nats = le_sink = None
    floors: dict[int, Result] = {}
    docker_db, docker_why = None, "not run (an earlier error)"
    startlog: list[str] = []
    try:
        nats = Nats(workdir)
        js_nats = Nats(workdir, jetstream=True) if any(sc.sink == "js" for sc in scenarios) else None
        pki = make_pki(workdir / "pki")

        # -- the machine's limits, same run ------------------------------------------------------
        def measure(title: str, fn, *args) -> Result:
            """The best of BASELINE_RUNS runs: a limit is what the machine can do."""
            log(f"baseline: {title}")
            best = None
            for _ in range(BASELINE_RUNS):
                try:
                    r = fn(*args)
                except Exception as e:  # noqa: BLE001 — a failed baseline is a row, not a crash
                    r = Result(title, note=f"ERROR: {e}")
                if best is None or r.rate > best.rate:
                    best = r
            if BASELINE_RUNS > 1 and best.seconds > 0:
                best.note = (best.note + "; " if best.note else "") + f"best of {BASELINE_RUNS}"
            baselines.append(best)
            return best

        reader: dict[tuple, Result] = {}
        for sc in scenarios:
            if sc.rate:
                continue  # paced: the generator's own pace is the limit
            key = (sc.k, sc.size, sc.mode, sc.lines)
            if key not in reader:
                reader[key] = measure(f"generator → plain reader {key}", baseline_reader,
                                      exe, workdir, sc.k, sc.lines, sc.size, sc.mode)
        ingest: dict[tuple, Result] = {}
        for sc in scenarios:
            if sc.sink in ("nats", "natssub") and not sc.rate:
                key = (sc.size, sc.sink == "natssub")
                if key not in ingest:
                    ingest[key] = measure(f"nats-server ingest {key}", baseline_nats_ingest,
                                          nats, sc.size, sc.lines * sc.k, key[1])
        if any(sc.sink == "le" for sc in scenarios):
            le_sink = LESink(pki[1], pki[2])
            for sc in scenarios:
                key = ("le", sc.size)
                if sc.sink == "le" and key not in ingest:
                    ingest[key] = measure("TLS sink ingest", baseline_le_ingest,
                                          le_sink, pki[0], sc.size, sc.lines * sc.k)

        floors: dict[int, Result] = {}
        for sc in scenarios:
            if sc.rate and sc.rate not in floors:
                log(f"baseline: latency floor at {sc.rate:,} lines/s")
                try:
                    floors[sc.rate] = latency_floor(exe, nats, sc.rate)
                except Exception as e:  # noqa: BLE001
                    floors[sc.rate] = Result(f"floor, {sc.rate / 1000:g} k lines/s", note=f"ERROR: {e}")

        log("plugin idle RSS")
        idle = idle_rss(workdir)

        # -- the plugin --------------------------------------------------------------------------
        for sc in scenarios:
            log(f"scenario {sc.id}: {sc.k} × {sc.lines} lines of {sc.size} B")
            try:
                r = run_scenario(sc, exe, workdir, js_nats if sc.sink == "js" else nats, pki, le_sink)
            except Exception as e:  # noqa: BLE001 — a failed scenario is a row, not a crash
                r = Result(sc.title, size=sc.size, note=f"ERROR: {e}")
            if r.seconds > 0 and not sc.rate:
                rb = reader[(sc.k, sc.size, sc.mode, sc.lines)]
                r.fifo_ratio = r.rate / rb.rate if rb.rate > 0 else None
                sk = (sc.sink, sc.size) if sc.sink in ("le", "js") else (sc.size, sc.sink == "natssub")
                if sk in ingest and ingest[sk].rate > 0:
                    r.sink_ratio = r.rate / ingest[sk].rate
            results[sc.id] = r
            if r.seconds > 0:
                lat = r.details.get("latency")
                log(f"  {r.rate:,.0f} lines/s, {r.cpu_us:.2f} µs/line, {r.rss_mib:.1f} MiB"
                    + (f", latency p50 {lat[0]:.2f} ms p99 {lat[1]:.2f} ms max {lat[2]:.1f} ms" if lat else "")
                    + f", load {r.details.get('load')}")
            else:
                log(f"  {r.note}")

        # -- StartLogging latency and the regex cost per key (id "startlogging") ---------------------
        if not ONLY or re.search(ONLY, "startlogging"):
            log("StartLogging latency, labels-regex / env-regex cost")
            try:
                startlog = startlogging_bench(workdir, nats)
            except Exception as e:  # noqa: BLE001
                startlog = [f"- ERROR: {e}"]

        # -- through a real dockerd (id "docker" for BENCH_ONLY) ---------------------------------
        if not ONLY or re.search(ONLY, "docker"):
            log("docker: through a real dockerd")
            docker_db, docker_why = docker_section(workdir, nats)
            if docker_db is None:
                log(f"docker: skipped: {docker_why}")
        else:
            docker_db, docker_why = None, "not selected (BENCH_ONLY)"
    finally:
        if le_sink:
            le_sink.stop()
        if nats:
            nats.stop()
        if js_nats:
            js_nats.stop()
        for p in list(STARTED):
            forget(p)
        if KEEP:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    took = time.monotonic() - t_start
    docker_out, docker_budget = docker_report(docker_db, docker_why)

    # -- budget (informational) -----------------------------------------------------------------
    def get(i):
        r = results.get(i)
        return r if r and r.seconds > 0 else None
    budget = []
    r = get("nats-1c-100B-frame")
    budget.append(f"- plugin CPU per 100-byte line, FIFO → NATS (1 container, per-frame writes like dockerd) "
                  f"≤ {BUDGET_NATS_US} µs: " + (f"{r.cpu_us:.2f} µs {mark(r.cpu_us <= BUDGET_NATS_US)}" if r else "n/a"))
    r = get("js-1c-100B-frame")
    budget.append(f"- JetStream CPU per 100-byte line (FIFO → NATS JetStream, 1 container, per-frame) "
                  f"≤ {BUDGET_JS_US} µs: " + (f"{r.cpu_us:.2f} µs {mark(r.cpu_us <= BUDGET_JS_US)}" if r else "n/a"))
    r = get("le-1c-100B-frame")
    budget.append(f"- plugin CPU per 100-byte line, FIFO → Logentries over TLS ≤ {BUDGET_LE_US} µs: "
                  + (f"{r.cpu_us:.2f} µs {mark(r.cpu_us <= BUDGET_LE_US)}" if r else
                     "n/a" + (f" ({results['le-1c-100B-frame'].note})" if "le-1c-100B-frame" in results else "")))
    r = get("nats-1c-100B-frame")
    if r:
        per_core = 1e6 / r.cpu_us if r.cpu_us else 0
        budget.append(f"- one container, FIFO → NATS, ≥ {BUDGET_RATE:,} lines/s: measured {r.rate:,.0f} lines/s "
                      f"{mark(r.rate >= BUDGET_RATE)}; at one full core of plugin CPU ({r.cpu_us:.2f} µs/line) "
                      f"that is {per_core:,.0f} lines/s {mark(per_core >= BUDGET_RATE)}")
    else:
        budget.append(f"- one container, FIFO → NATS, ≥ {BUDGET_RATE:,} lines/s: n/a")
    r = get("nats-1c-100B-frame")
    budget.append(f"- plugin CPU per 100-byte line at full speed (FIFO → NATS, 1 container, per-frame) ≤ {BUDGET_FULL_US} µs: "
                  + (f"{r.cpu_us:.2f} µs {mark(r.cpu_us <= BUDGET_FULL_US)}" if r else "n/a"))
    for sc in scenarios:
        r = get(sc.id)
        if sc.rate and sc.rate >= 100_000:
            budget.append(f"- plugin CPU per 100-byte line, {sc.title} ≤ {BUDGET_PACED_US} µs: "
                          + (f"{r.cpu_us:.2f} µs {mark(r.cpu_us <= BUDGET_PACED_US)}" if r else "n/a"))
    for sc in scenarios:
        r = get(sc.id)
        if sc.rate:
            lat = r.details.get("latency") if r else None
            budget.append(f"- latency p99 write → subscriber ≤ {BUDGET_P99_MS:g} ms, {sc.title}: "
                          + (f"{lat[1]:.2f} ms {mark(lat[1] <= BUDGET_P99_MS)}" if lat else "n/a"))
    for line in docker_budget:
        budget.append(line)
    budget.append(f"- RSS idle ≤ {BUDGET_IDLE_MIB} MiB: {idle.rss_mib:.1f} MiB {mark(idle.rss_mib <= BUDGET_IDLE_MIB)}")
    many = [r for i, r in results.items() if f"-{MANY}c-" in i and r.rss_mib is not None]
    if many:
        worst = max(many, key=lambda r: r.rss_mib)
        budget.append(f"- RSS with {MANY} active containers ≤ {BUDGET_MANY_MIB} MiB: peak {worst.rss_mib:.1f} MiB "
                      f"({worst.title}) {mark(worst.rss_mib <= BUDGET_MANY_MIB)}")
    conns = [r.details.get("nats_conns") for i, r in results.items()
             if f"-{MANY}c-" in i and r.details.get("nats_conns") is not None]
    if conns:
        budget.append(f"- one NATS connection per distinct configuration ({MANY} containers, one config): "
                      f"{max(conns)} plugin connection(s) seen {mark(max(conns) == 1)}")

    out = []
    out.append(f"Run {started}, `{command_line()}`, {took:.0f} s.  ")
    out.append("Machine: " + "; ".join(facts) + ".")
    out.append("")
    out.append("### Plugin")
    out.append("")
    out.append(HEADER)
    out.append(row(idle))
    for sc in scenarios:
        if not sc.rate:
            out.append(row(results[sc.id]))
    out.append("")
    paced = [sc for sc in scenarios if sc.rate]
    if paced:
        out.append("### Paced: one frame per write at a daemon's pace, latency write → subscriber")
        out.append("")
        out.append(f"Rates are totals over all containers (100 containers at 100 k lines/s: 1,000 lines/s each), "
                   f"{PACED_SECONDS:g} s per scenario, 100-byte lines stamped with their write time; latency = "
                   f"the subscriber's receive time − the write time, over "
                   + ("every line" if LAT_EVERY == 1 else f"every {LAT_EVERY}th line") +
                   " (loadgen → FIFO → plugin → nats-server → a Python subscriber: an upper bound on the "
                   "plugin's added latency).")
        out.append("")
        out.append("| scenario | lines | target lines/s | written lines/s | delivered lines/s | CPU µs/line | "
                   "latency p50 ms | p99 ms | max ms | peak RSS MiB | load (1 min) start → end | notes |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for r in [*[results[sc.id] for sc in paced], *floors.values()]:
            sc = next((x for x in paced if results[x.id] is r), None)
            d = r.details
            lat = d.get("latency")
            cpu = f"{r.cpu_us:.2f} ({r.sys_share * 100:.0f}% sys)" if r.cpu_us is not None else "–"
            note = r.note
            if d.get("behind_ms", 0) >= 5:
                note = (note + "; " if note else "") + f"generator fell {d['behind_ms']:.0f} ms behind its schedule at worst"
            cells = [r.title, fmt_int(r.lines) if r.lines else "–",
                     fmt_int(sc.rate) if sc else fmt_int(r.lines / PACED_SECONDS),
                     fmt_int(d["gen_rate"]) if d.get("gen_rate") else "–",
                     fmt_int(r.rate) if r.seconds > 0 else "–", cpu]
            cells += [f"{lat[0]:.2f}", f"{lat[1]:.2f}", f"{lat[2]:.1f}"] if lat else ["–"] * 3
            cells += [f"{r.rss_mib:.1f}" if r.rss_mib is not None else "–", d.get("load", "–"), note]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out.extend(docker_out)
    if startlog:
        out += ["### StartLogging", ""] + startlog + [""]
    out.append("### Machine limits, measured in the same run")
    out.append("")
    out.append(HEADER)
    for b in baselines:
        out.append(row(b))
    out.append("")
    out.append("### Budget (docs/design.md; informational, never a test)")
    out.append("")
    out.extend(budget)
    out.append("")
    out.append("### Details")
    out.append("")
    perf_cols = any("syscalls" in r.details for r in results.values())
    out.append("| scenario | generator write time s | generator CPU µs/line | drain after last write ms | "
               "sink CPU µs/line | lines dropped | plugin NATS connections |"
               + (" plugin syscalls/line | plugin context switches/line |" if perf_cols else "")
               + " subscriber CPU µs/line | StartLogging ms p50 / max | load (1 min) start → end |")
    out.append("|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if perf_cols else "") + "---:|---:|---|")
    for sc in scenarios:
        r = results[sc.id]
        d = r.details
        if not d:
            continue
        out.append(f"| {r.title} | {d.get('gen_write_s', 0):.2f} | {d.get('gen_cpu_us', 0):.2f} | "
                   f"{d['tail_ms']:.0f} | " if "tail_ms" in d else
                   f"| {r.title} | {d.get('gen_write_s', 0):.2f} | {d.get('gen_cpu_us', 0):.2f} | – | ")
        out[-1] += (f"{d.get('sink_cpu_us', 0):.2f} | {d.get('dropped', '–')} | "
                    f"{d['nats_conns'] if d.get('nats_conns') is not None else '–'} |")
        if perf_cols:
            out[-1] += (f" {d['syscalls']:.3f} | {d['cswitch']:.3f} |" if "syscalls" in d else " – | – |")
        st = sorted(d.get("start_ms") or [])
        out[-1] += (f" {d['sub_cpu_us']:.2f} |" if "sub_cpu_us" in d else " – |")
        out[-1] += (f" {st[len(st) // 2]:.1f} / {st[-1]:.1f} |" if st else " – |")
        out[-1] += f" {d.get('load', '–')} |"
    report = "\n".join(out) + "\n"
    print(report)

    if README != "-":
        path = Path(README)
        head = ""
        if path.exists():
            text = path.read_text()
            if README_MARKER in text:
                head = text.split(README_MARKER, 1)[0]
        if not head:
            head = DEFAULT_README_HEAD
        path.write_text(head + README_MARKER + "\n\n" + report)
        log(f"report written to {path}")
    failed = [r for r in [*results.values(), *baselines] if r.note.startswith(("ERROR", "INCOMPLETE"))]
    if failed:
        log(f"{len(failed)} row(s) failed: " + "; ".join(f"{r.title}: {r.note}" for r in failed))
        return 1
    return 0


DEFAULT_README_HEAD = """# Benchmarks

`make bench` (after `make deps`) builds the release binary and runs `bench/bench.py`.
"""


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        for p in list(STARTED):
            forget(p)
        sys.exit(130)
