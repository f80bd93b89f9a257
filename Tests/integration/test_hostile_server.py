"""NATS servers (fake ones from hostile.py, and real ones configured to refuse) that abuse a
connection the plugin made, for ~16 s per case, while the plugin is watched from outside.

In every case, besides the row's own expectation:
  * the plugin's RSS (VmRSS, sampled every 0.5 s) stays under 64 MiB; past 1 GiB the plugin
    (which this test started) is killed by its pid and the case fails;
  * a bystander container on a real nats-server (another connection) delivers every line
    it wrote, in order (independent nats-py subscriber);
  * the hostile stream's FIFO keeps being drained: every write of the daemon's side completes;
  * StopLogging of the hostile stream answers within 5 s;
  * reconnects back off: the connections the server accepted stay a handful (<= 15);
  * the plugin's own log (stdout + stderr) stays small (<= 60 lines over the case);
  * the hostile stream's counters in GET /metrics add up:
    received == published + dropped + rejected + buffered.

These are bounds that catch floods, storms and hangs, never speed. Every failure message
prints the measured figure.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional

import pytest

import hostile
from helpers import (PROMPT, DaemonClient, Entry, cpu_seconds, fd_count, http_get, next_time_ns,
                     rss_kib, secret, text, wait_until)
from le_endpoint import Endpoint, pki_paths

# ---------------------------------------------------------------------------
# metric names (one place to rename them)
# ---------------------------------------------------------------------------

LINES_RECEIVED = "logrelay_container_lines_received_total"
EVENTS_PUBLISHED = "logrelay_container_lines_published_total"
EVENTS_DROPPED = "logrelay_container_lines_dropped_total"
LINES_REJECTED = "logrelay_container_lines_rejected_total"
BUFFER_BYTES = "logrelay_container_buffer_bytes"
BUFFER_LINES = "logrelay_container_buffer_lines"          # used for the "buffered" term when exposed
NATS_RECONNECTS = "logrelay_connection_reconnects_total"
STREAM_METRICS = (LINES_RECEIVED, EVENTS_PUBLISHED, EVENTS_DROPPED, LINES_REJECTED, BUFFER_BYTES, BUFFER_LINES)

# idle closes, shortened for the fd test (the names the plugin reads)
NATS_IDLE_ENV = ("LOGRELAY_NATS_IDLE_SECONDS", "LOGRELAY_UNUSED_CLOSE_SECONDS")
LOGENTRIES_IDLE_ENV = ("LOGRELAY_LOGENTRIES_IDLE_SECONDS", "LOGRELAY_UNUSED_CLOSE_SECONDS")
IDLE_SECONDS = 2

# ---------------------------------------------------------------------------
# bounds
# ---------------------------------------------------------------------------

CASE_SECONDS = 16
SAMPLE_EVERY = 0.5
RSS_LIMIT_KIB = 64 * 1024
RSS_KILL_KIB = 1024 * 1024          # protects the machine: the plugin is killed past this
MAX_CONNECTIONS = 15                # accepted by the hostile server over the case
MAX_LOG_LINES = 60                  # the plugin's stdout + stderr over the case
MAX_CPU_SHARE = 0.5                 # of one core, for the growing connect_urls case
MAX_BACKLOG = 5                     # hostile FIFO writes (one a second) waiting at once
LOG_LEVEL = "info"                  # the plugin's default (config.json)


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB" if kib < 1024 * 1024 else f"{kib / 1024 / 1024:.2f} GiB"


# ---------------------------------------------------------------------------
# watching the plugin
# ---------------------------------------------------------------------------

class Watch:
    """Samples the plugin's RSS and CPU every 0.5 s on its own thread; kills the plugin (by
    its pid, through Plugin.stop) if its RSS passes RSS_KILL_KIB."""

    def __init__(self, plugin):
        self.plugin = plugin
        self.pid = plugin.pid
        self.max_rss = rss_kib(self.pid)
        self.samples = 0
        self.killed_at: Optional[int] = None
        self.cpu0 = cpu_seconds(self.pid)
        self.t0 = time.monotonic()
        self.cpu = 0.0
        self.wall = 0.0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _sample(self):
        try:
            r = rss_kib(self.pid)
            self.cpu = cpu_seconds(self.pid) - self.cpu0
            self.wall = time.monotonic() - self.t0
        except (OSError, AssertionError):
            return
        self.samples += 1
        self.max_rss = max(self.max_rss, r)
        if r > RSS_KILL_KIB and self.killed_at is None:
            self.killed_at = r
            self.plugin.stop(sig=signal.SIGKILL, timeout=5)

    def _run(self):
        while not self._stop.wait(SAMPLE_EVERY):
            self._sample()

    def stop(self):
        self._sample()
        self._stop.set()
        self.thread.join(5)

    @property
    def killed(self) -> bool:
        return self.killed_at is not None

    def kill_message(self) -> str:
        return (f"RSS {mib(self.killed_at)} > {mib(RSS_KILL_KIB)} safety cap after {self.wall:.1f} s: "
                f"the plugin was killed")


def stream_metrics(sock: str, container: str) -> dict[str, Optional[float]]:
    """The per-container samples of STREAM_METRICS (None: not exposed for this container)."""
    body = http_get(sock, "/metrics").body.decode("utf-8", "replace")
    out: dict[str, Optional[float]] = {n: None for n in STREAM_METRICS}
    for ln in body.splitlines():
        for n in STREAM_METRICS:
            if ln.startswith(n + "{") and f'container="{container}"' in ln:
                out[n] = float(ln.rsplit(" ", 1)[1])
    return out


def connection_samples(sock: str, name: str, server_part: str) -> list[float]:
    """Values of a per-connection metric whose labels mention `server_part` (e.g. a port)."""
    body = http_get(sock, "/metrics").body.decode("utf-8", "replace")
    return [float(ln.rsplit(" ", 1)[1]) for ln in body.splitlines()
            if ln.startswith(name + "{") and server_part in ln.rsplit(" ", 1)[0]]


def balance(m: dict[str, Optional[float]]) -> tuple[bool, str]:
    """Whether received == published + dropped + rejected + buffered, and the figures."""
    v = {k: (x if x is not None else 0) for k, x in m.items()}
    rec, pub, drop, rej = v[LINES_RECEIVED], v[EVENTS_PUBLISHED], v[EVENTS_DROPPED], v[LINES_REJECTED]
    figures = (f"received {rec:g}, published {pub:g}, dropped {drop:g}, rejected {rej:g}"
               + ("" if m[LINES_REJECTED] is not None else f" ({LINES_REJECTED} absent)")
               + f", buffer {v[BUFFER_BYTES]:g} bytes"
               + (f" / {v[BUFFER_LINES]:g} lines" if m[BUFFER_LINES] is not None else ""))
    if m[LINES_RECEIVED] is None:
        return False, f"no {LINES_RECEIVED} for the container"
    if m[BUFFER_LINES] is not None:
        return rec == pub + drop + rej + v[BUFFER_LINES], figures
    if v[BUFFER_BYTES] == 0:
        return rec == pub + drop + rej, figures
    # lines are still buffered and their number is not exposed: the rest must account for them
    return rec > pub + drop + rej, figures


# ---------------------------------------------------------------------------
# one case
# ---------------------------------------------------------------------------

@dataclass
class Result:
    problems: list[str] = field(default_factory=list)
    watch: Optional[Watch] = None
    hostile_written: int = 0
    metrics: dict = field(default_factory=dict)
    log_lines: int = 0
    log_text: str = ""
    stop_seconds: Optional[float] = None
    extra_delivered: Optional[int] = None
    max_backlog: int = 0        # writes queued for the hostile FIFO and not completed, at worst

    def fail_if_any(self, case: str):
        if self.problems:
            pytest.fail(f"{case}: " + "; ".join(self.problems), pytrace=False)


def hostile_lines(start: int, n: int) -> list[Entry]:
    return [Entry("stdout", b"hostile line %06d " % i + b"x" * 80, next_time_ns())
            for i in range(start, start + n)]


def run_case(*args, **kw) -> Result:
    """Runs one hostile case (_run_case) and checks what is common to every case. When the
    plugin had to be killed for its RSS, that is the result, whatever failed after it."""
    res = Result()
    try:
        _run_case(res, *args, **kw)
    except Exception:
        if res.watch is None or not res.watch.killed:
            raise
        res.watch.stop()
        res.problems = [res.watch.kill_message()]
    return res


def _run_case(res: Result, daemon, plugin, nats_server, subscriber_factory, hostile_config: dict,
              seconds: float = CASE_SECONDS, per_second: int = 100, total: Optional[int] = None,
              extra: Optional[tuple[dict, Callable]] = None) -> None:
    """One hostile case.

    hostile_config: the hostile container's log options. Its lines are written `per_second`
    a second (about 10 KiB/s of frames, beyond the pipe's 64 KiB over the case), or `total`
    lines at once at the start. extra = (config, subscriber factory): a second container on
    the hostile connection whose lines must all arrive (row 10)."""
    watch = res.watch = Watch(plugin)
    log0 = plugin.log_line_count()

    # the bystander: a real server, another connection
    by = daemon.container({"nats-servers": nats_server.url})
    by_sub = subscriber_factory(nats_server.url, by.short_id)
    by.start_ok()
    by_sent: list[Entry] = []

    hclient = DaemonClient(plugin.socket, timeout=30)
    try:
        h = daemon.container(hostile_config, client=hclient)
        h.start_ok()
        ex = ex_sub = None
        ex_sent: list[Entry] = []
        if extra is not None:
            ex_cfg, make_sub = extra
            ex = daemon.container(ex_cfg, client=hclient)
            ex_sub = make_sub(ex)
            ex.start_ok()

        if total is not None:
            h.send_entries(hostile_lines(0, total))
            res.hostile_written = total
        t_end = time.monotonic() + seconds
        tick = 0
        while time.monotonic() < t_end and not watch.killed:
            res.max_backlog = max(res.max_backlog, h.writer.q.qsize())
            if total is None:
                h.send_entries(hostile_lines(res.hostile_written, per_second))
                res.hostile_written += per_second
            es = [Entry("stdout", b"bystander %04d %03d" % (tick, k), next_time_ns()) for k in range(20)]
            by.send_entries(es)
            by_sent += es
            if ex is not None:
                es = [Entry("stdout", b"allowed %04d %03d" % (tick, k), next_time_ns()) for k in range(20)]
                ex.send_entries(es)
                ex_sent += es
            tick += 1
            time.sleep(max(0.0, min(1.0, t_end - time.monotonic())))

        if watch.killed:
            res.problems.append(watch.kill_message())
            watch.stop()
            return

        # the FIFO keeps being drained: one write a second, none left waiting for long
        if res.max_backlog > MAX_BACKLOG:
            res.problems.append(f"the hostile stream's FIFO was not drained: up to {res.max_backlog} writes "
                                f"(one a second) waited at once (> {MAX_BACKLOG})")
        if not h.writer.flush(10):
            res.problems.append(f"the hostile stream's FIFO writer blocked: {h.writer.written} bytes of "
                                f"{sum(len(e.encode()) for e in h.sent)} written after the case + 10 s")
        elif h.writer.error:
            res.problems.append(f"the hostile FIFO writer failed: {h.writer.error!r}")

        # the counters, before the stream ends (ended streams leave /metrics)
        m: dict = {}

        def settled():
            m.clear()
            m.update(stream_metrics(plugin.socket, h.name))
            return (m[LINES_RECEIVED] or 0) >= res.hostile_written and balance(m)[0]
        wait_until(settled, 10, 0.5)
        res.metrics = dict(m)
        ok, figures = balance(m)
        if (m[LINES_RECEIVED] or 0) != res.hostile_written:
            res.problems.append(f"{LINES_RECEIVED} is {m[LINES_RECEIVED]} for {res.hostile_written} lines written")
        if not ok:
            res.problems.append(f"counters do not add up: {figures}")

        # StopLogging answers promptly
        t0 = time.monotonic()
        try:
            resp = hclient.call("/LogDriver.StopLogging", {"File": h.file})
            res.stop_seconds = time.monotonic() - t0
            if resp.failed:
                res.problems.append(f"StopLogging of the hostile stream failed: {resp!r}")
        except OSError as e:
            res.stop_seconds = time.monotonic() - t0
            res.problems.append(f"StopLogging of the hostile stream got no answer: {e!r} "
                                f"after {res.stop_seconds:.1f} s")
        h.stopped = True
        h.writer.close()   # (a writer still blocked in write() keeps its fd: FifoWriter.close)
        if res.stop_seconds is not None and res.stop_seconds >= PROMPT:
            res.problems.append(f"StopLogging of the hostile stream took {res.stop_seconds:.1f} s (>= {PROMPT} s)")

        if ex is not None:
            ok_ex = ex_sub.wait_for(len(ex_sent), 30)
            got = [e["log"] for e in ex_sub.events()]
            res.extra_delivered = len(got)
            if not ok_ex or got != [text(e.line) for e in ex_sent]:
                res.problems.append(f"the second stream on the hostile connection delivered {len(got)} of "
                                    f"{len(ex_sent)} lines" + ("" if len(got) != len(ex_sent) else " (out of order)"))
            ex.stop(flush_timeout=10)
    finally:
        hclient.close()

    # the bystander delivered everything, in order
    if not watch.killed:
        by_ok = by_sub.wait_for(len(by_sent), 30)
        got = [e["log"] for e in by_sub.events()]
        if not by_ok or got != [text(e.line) for e in by_sent]:
            res.problems.append(f"the bystander on a real server delivered {len(got)} of {len(by_sent)} lines"
                                + ("" if len(got) != len(by_sent) else " (out of order)"))
        by.stop(flush_timeout=10)

    watch.stop()
    if watch.killed and watch.kill_message() not in res.problems:
        res.problems.insert(0, watch.kill_message())
    if watch.max_rss >= RSS_LIMIT_KIB:
        res.problems.append(f"RSS {mib(watch.max_rss)} > {mib(RSS_LIMIT_KIB)}")
    res.log_lines = plugin.log_line_count() - log0
    res.log_text = plugin.output()
    if res.log_lines > MAX_LOG_LINES:
        res.problems.append(f"the plugin logged {res.log_lines} lines during the case (> {MAX_LOG_LINES})")


def check_connections(res: Result, accepted: int, what: str = "the hostile server accepted"):
    if accepted > MAX_CONNECTIONS:
        res.problems.append(f"{accepted} reconnects: {what} {accepted} connections in "
                            f"{res.watch.wall:.0f} s (> {MAX_CONNECTIONS})")


# ---------------------------------------------------------------------------
# rows 1-6, 8, 9: fake servers
# ---------------------------------------------------------------------------

def expect_nothing_published_for_unread_lines(res: Result, fake) -> None:
    pub = res.metrics.get(EVENTS_PUBLISHED)
    if pub:
        res.problems.append(f"published {pub:g} of {res.hostile_written} lines a server that never reads "
                            f"the socket could not have received (an unsolicited PONG is no acknowledgement)")


def expect_no_spinning(res: Result, fake) -> None:
    w = res.watch
    share = w.cpu / w.wall if w.wall else 0
    if share >= MAX_CPU_SHARE:
        res.problems.append(f"plugin CPU {w.cpu:.1f} s over {w.wall:.1f} s ({share:.0%} of a core, "
                            f">= {MAX_CPU_SHARE:.0%}) while the server announced ever more URLs")


def expect_explicit_url_retried(res: Result, fake) -> None:
    """The fake closed its first two connections after announcing 40 unreachable servers:
    after each, the explicit URL must be tried again within 15 s (on every pass)."""
    def enough():
        t = fake.accept_times
        return len(t) >= 3 or not t or time.monotonic() - t[-1] > 15
    wait_until(enough, 16, 0.2)
    t = list(fake.accept_times)
    gaps = [b - a for a, b in zip(t, t[1:3])]
    if len(t) < 3:
        res.problems.append(f"the explicit server was tried again only {len(t) - 1} times after closing 2 "
                            f"connections (gaps {[round(g, 1) for g in gaps]} s, then > 15 s of nothing; "
                            f"the 40 servers it announced are unreachable)")
    elif max(gaps) > 15:
        res.problems.append(f"the explicit server was tried again only {max(gaps):.1f} s after it closed "
                            f"(> 15 s; gaps {[round(g, 1) for g in gaps]} s)")


def _bystander_ports(nats_server) -> list[int]:
    return [p for p in (nats_server.port, nats_server.http_port) if p]


FAKE_CASES = [
    # (id, behaviour factory(nats_server), lines: dict(per_second=..)/(total=..), extra check)
    ("1 PING flood", lambda ns: hostile.flood(b"PING\r\n"), {}, None),
    ("2 +OK flood", lambda ns: hostile.flood(b"+OK\r\n"), {}, None),
    ("3 -ERR 'x' flood", lambda ns: hostile.flood(b"-ERR 'x'\r\n"), {}, None),
    ("4 MSG flood for no subscription", lambda ns: hostile.flood(b"MSG foo 1 5\r\nhello\r\n"), {}, None),
    ("5 never reads, blind PONGs", lambda ns: hostile.blind_pongs, {"total": 50},
     expect_nothing_published_for_unread_lines),
    ("6 Authorization Violation after the handshake", lambda ns: hostile.auth_violation_after_handshake, {},
     None),
    ("8 connect_urls growing with every INFO",
     lambda ns: hostile.growing_connect_urls(exclude=_bystander_ports(ns)), {}, expect_no_spinning),
    ("9 40 announced servers unreachable",
     lambda ns: hostile.announces_unreachable_then_closes(40, exclude=_bystander_ports(ns)), {},
     expect_explicit_url_retried),
]


@pytest.mark.parametrize("case,make,lines,expect", FAKE_CASES, ids=[c[0] for c in FAKE_CASES])
def test_a_hostile_fake_server_is_contained(plugin_factory, daemon_for, nats_server, subscriber_factory,
                                            case, make, lines, expect):
    plugin = plugin_factory(log_level=LOG_LEVEL)
    daemon = daemon_for(plugin)
    fake = hostile.FakeNatsServer(make(nats_server))
    try:
        res = run_case(daemon, plugin, nats_server, subscriber_factory, {"nats-servers": fake.url}, **lines)
        if not res.watch.killed and expect is not None:
            expect(res, fake)       # (with the fake still up)
        accepted = fake.connections
    finally:
        fake.stop()
    if not res.watch.killed:
        check_connections(res, accepted)
    gaps = [round(b - a, 1) for a, b in zip(fake.accept_times, fake.accept_times[1:4])]
    stop = f"{res.stop_seconds:.3f} s" if res.stop_seconds is not None else "-"
    print(f"\n{case}: max RSS {mib(res.watch.max_rss)}, CPU {res.watch.cpu:.1f} s / {res.watch.wall:.1f} s, "
          f"{accepted} connections (first gaps {gaps} s), {fake.infos_sent} async INFOs, "
          f"{res.log_lines} log lines, StopLogging {stop}, metrics {res.metrics}")
    res.fail_if_any(case)


# ---------------------------------------------------------------------------
# row 7: a real server with max_payload 200 (no event fits)
# ---------------------------------------------------------------------------

def plugin_connections(server, exclude_name: str = "logrelay-it-subscriber") -> int:
    """Connections the server accepted over its life (open and closed), except the test's own
    subscribers."""
    cz = server.connz("all")
    conns = cz.get("connections") or []
    if cz.get("total", len(conns)) > len(conns):
        return int(cz["total"])
    return sum(1 for c in conns if c.get("name") != exclude_name)


def test_a_server_whose_max_payload_no_event_fits_drops_counted_without_a_storm(
        plugin_factory, daemon_for, nats_server, nats_factory, subscriber_factory):
    plugin = plugin_factory(log_level=LOG_LEVEL)
    daemon = daemon_for(plugin)
    small = nats_factory(extra_config="max_payload: 200\n", monitor=True, name="small")
    res = run_case(daemon, plugin, nats_server, subscriber_factory, {"nats-servers": small.url})
    case = "7 max_payload 200"
    if not res.watch.killed:
        check_connections(res, plugin_connections(small), "the max_payload 200 server accepted")
        dropped = res.metrics.get(EVENTS_DROPPED)
        if dropped != res.hostile_written:
            res.problems.append(f"dropped {dropped} of {res.hostile_written} lines that can never fit in "
                                f"max_payload 200 (published {res.metrics.get(EVENTS_PUBLISHED)})")
        said = [ln for ln in res.log_text.splitlines() if re.search(r"payload", ln, re.I)]
        if not 1 <= len(said) <= 5:
            res.problems.append(f"the plugin logged the max_payload problem {len(said)} times (want 1 to 5): "
                                f"{said[:3]}")
    print(f"\n{case}: max RSS {mib(res.watch.max_rss)}, {res.log_lines} log lines, metrics {res.metrics}")
    res.fail_if_any(case)


# ---------------------------------------------------------------------------
# row 10: Permissions Violation for the subject (a real server)
# ---------------------------------------------------------------------------

def test_a_subject_the_user_may_not_publish_to_counts_rejected_lines_and_keeps_the_connection(
        plugin_factory, daemon_for, nats_server, nats_factory, subscriber_factory):
    plugin = plugin_factory(log_level=LOG_LEVEL)
    daemon = daemon_for(plugin)
    pw = secret("perm-" + uuid.uuid4().hex[:12])
    perm = nats_factory(monitor=True, name="perm", extra_config=(
        'authorization {\n  users = [\n'
        f'    {{user: "u", password: "{pw}", permissions: {{publish: {{deny: ["logs.denied"]}}}}}}\n'
        '  ]\n}\n'))
    common = {"nats-servers": perm.url, "nats-user": "u", "nats-pass": pw}
    extra = ({**common, "nats-subject": "logs.allowed"},
             lambda c: subscriber_factory(perm.url, "logs.allowed", user="u", password=pw))
    res = run_case(daemon, plugin, nats_server, subscriber_factory, {**common, "nats-subject": "logs.denied"},
                   total=1000, extra=extra)
    case = "10 Permissions Violation"
    if not res.watch.killed:
        m = res.metrics
        if m.get(LINES_REJECTED) != 1000:
            res.problems.append(f"{LINES_REJECTED} is {m.get(LINES_REJECTED)} for 1000 lines the server refused")
        if m.get(EVENTS_PUBLISHED) != 0:
            res.problems.append(f"published {m.get(EVENTS_PUBLISHED)} of 1000 refused lines")
        if m.get(EVENTS_DROPPED) != 0:
            res.problems.append(f"dropped {m.get(EVENTS_DROPPED)} (refused lines are rejected, not dropped)")
        n = plugin_connections(perm)
        if n > 3:
            res.problems.append(f"the connection did not stay up: {n} connections to the server (> 3)")
    print(f"\n{case}: max RSS {mib(res.watch.max_rss)}, {res.log_lines} log lines, "
          f"second stream {res.extra_delivered} lines, metrics {res.metrics}")
    res.fail_if_any(case)


# ---------------------------------------------------------------------------
# fds stay flat over 100 connect -> idle-close cycles
# ---------------------------------------------------------------------------

FD_CYCLES = 100
FD_SLACK = 2


def fd_kinds(pid: int) -> dict[str, int]:
    """What the process's fds are: socket, pipe, eventfd, ... or the directory of a file."""
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        k = re.sub(r"[:\[].*", "", target) if not target.startswith("/") else os.path.dirname(target)
        if target.startswith("anon_inode:"):
            k = target
        kinds[k] = kinds.get(k, 0) + 1
    return kinds


def _fds_return(plugin, fd0: int, what: str) -> None:
    settle = IDLE_SECONDS * 3 + 15
    now = [fd_count(plugin.pid)]

    def back():
        now[0] = fd_count(plugin.pid)
        return abs(now[0] - fd0) <= FD_SLACK
    assert wait_until(back, settle, 0.5), \
        (f"{what}: {now[0]} fds {settle} s after the last stream ended, {fd0} before (+-{FD_SLACK}); "
         f"open now: {fd_kinds(plugin.pid)}")


def test_nats_fds_stay_flat_over_100_connect_idle_close_cycles(plugin_factory, daemon_for, nats_server,
                                                               subscriber_factory):
    plugin = plugin_factory(log_level=LOG_LEVEL, extra_env={k: str(IDLE_SECONDS) for k in NATS_IDLE_ENV})
    daemon = daemon_for(plugin)
    sub = subscriber_factory(nats_server.url, ">")

    def cycle(i: int):
        # a distinct connection configuration each time: another user name in the URL
        # (the server requires no auth and accepts any)
        c = daemon.container({"nats-servers": f"nats://cycle{i}:x@127.0.0.1:{nats_server.port}"})
        c.start_ok()
        c.send_entries([Entry("stdout", b"cycle %03d" % i, next_time_ns())])
        assert c.stop(flush_timeout=10).status == 200

    cycle(0)        # warm-up: whatever the plugin opens once and keeps
    assert sub.wait_for(1), "the warm-up line did not arrive"
    fd_start = fd_count(plugin.pid)
    # its connection closes after IDLE_SECONDS (if it does not, the check below fails)
    wait_until(lambda: fd_count(plugin.pid) < fd_start, IDLE_SECONDS * 3 + 15, 0.5)
    fd0 = fd_count(plugin.pid)
    for i in range(1, FD_CYCLES + 1):
        cycle(i)
    assert sub.wait_for(FD_CYCLES + 1), f"{sub.count()} of {FD_CYCLES + 1} lines arrived"
    peak = fd_count(plugin.pid)
    print(f"\nfds: {fd_start} with the warm-up connection, {fd0} after its idle close, {peak} after "
          f"{FD_CYCLES} cycles")
    _fds_return(plugin, fd0, f"NATS, {FD_CYCLES} connect -> idle-close cycles (peak {peak})")


def test_logentries_fds_stay_flat_over_100_connect_idle_close_cycles(plugin_factory, daemon_for, workdir,
                                                                     pki):
    plugin = plugin_factory(log_level=LOG_LEVEL,
                            extra_env={k: str(IDLE_SECONDS) for k in LOGENTRIES_IDLE_ENV})
    daemon = daemon_for(plugin)
    paths = pki_paths(pki)
    ep = Endpoint(workdir, cert=paths["server-cert"], key=paths["server-key"])
    try:
        token = secret(str(uuid.uuid4()))
        cas = workdir / "cas"
        cas.mkdir()

        def cycle(i: int):
            # a distinct connection configuration each time: another copy of the CA file
            ca = cas / f"ca-{i}.pem"
            shutil.copyfile(paths["ca"], ca)
            c = daemon.container({"logentries-token": token, "logentries-address": f"localhost:{ep.port}",
                                  "logentries-tls-ca-cert": str(ca)})
            c.start_ok()
            c.send_entries([Entry("stdout", b"cycle %03d" % i, next_time_ns())])
            assert c.stop(flush_timeout=10).status == 200

        cycle(0)
        assert ep.wait_for(1, 30), "the warm-up line did not arrive"
        fd_start = fd_count(plugin.pid)
        wait_until(lambda: fd_count(plugin.pid) < fd_start, IDLE_SECONDS * 3 + 15, 0.5)
        fd0 = fd_count(plugin.pid)
        for i in range(1, FD_CYCLES + 1):
            cycle(i)
        assert ep.wait_for(FD_CYCLES + 1, 60), f"{ep.count()} of {FD_CYCLES + 1} lines arrived"
        peak = fd_count(plugin.pid)
        print(f"\nfds: {fd_start} with the warm-up connection, {fd0} after its idle close, {peak} after "
              f"{FD_CYCLES} cycles; the endpoint saw {len(ep.opened())} connections")
        _fds_return(plugin, fd0, f"logentries, {FD_CYCLES} connect -> idle-close cycles (peak {peak})")
    finally:
        ep.stop()
