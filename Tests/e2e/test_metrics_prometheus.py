"""Metrics and multiline events on a real engine: a real Prometheus (Debian's `prometheus`,
started here on loopback with its own data dir, stopped by its pid) scrapes the managed plugin
through METRICS_ADDRESS (set with `docker plugin set`); per-container series are read back
through Prometheus' HTTP API; the example alert rules pass `promtool check rules` and load; every
metric the example dashboard and rules name exists in a scrape. Then a container printing Java and
Python stack traces and pretty-printed JSON yields exactly one event per message."""
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from e2e_helpers import docker, free_port, unique_name, wait_until

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "examples" / "prometheus" / "logrelay-alerts.yml"
DASHBOARD = REPO / "examples" / "grafana" / "logrelay-dashboard.json"
sys.path.insert(0, str(REPO / "Tests" / "support"))
import promtext  # noqa: E402

METRIC_NAME = re.compile(r"\b((?:logrelay|process)_[a-z_]+)\b")


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def set_metrics_address(alias, value):
    """METRICS_ADDRESS can only change while the plugin is disabled."""
    docker("plugin", "disable", "-f", alias, timeout=120, check=True)
    docker("plugin", "set", alias, f"METRICS_ADDRESS={value}", timeout=60, check=True)
    docker("plugin", "enable", alias, timeout=120, check=True)


@pytest.fixture(scope="module")
def metrics_port(plugin):
    port = free_port()
    set_metrics_address(plugin.alias, f"127.0.0.1:{port}")
    ok = wait_until(lambda: _scrapes(port), 30)
    assert ok, f"nothing serves /metrics on 127.0.0.1:{port}\nplugin log:\n{plugin.log()}"
    yield port
    set_metrics_address(plugin.alias, "")


def _scrapes(port):
    try:
        return "logrelay_build_info" in http_get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    except OSError:
        return False


class Prometheus:
    def __init__(self, port, proc, log):
        self.port, self.proc, self.log = port, proc, log

    def query(self, expr):
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = json.loads(http_get(url))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr):
        """The one sample's value, or None."""
        r = self.query(expr)
        assert len(r) <= 1, r
        return float(r[0]["value"][1]) if r else None


@pytest.fixture(scope="module")
def prometheus(metrics_port, tmp_path_factory):
    binary = shutil.which("prometheus")
    if not binary:
        pytest.fail("prometheus is not installed (make deps installs Debian's package)")
    d = tmp_path_factory.mktemp("prometheus")
    shutil.copy(RULES, d / "rules.yml")
    (d / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "rule_files: [rules.yml]\n"
        "scrape_configs:\n  - job_name: logrelay\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics_port}']\n")
    port = free_port()
    log = open(d / "log", "wb")
    proc = subprocess.Popen([binary, f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=d)

    def ready():
        try:
            return "Ready" in http_get(f"http://127.0.0.1:{port}/-/ready", timeout=2)
        except OSError:
            return proc.poll() is not None
    wait_until(ready, 60)
    assert proc.poll() is None, (d / "log").read_text()[-3000:]
    yield Prometheus(port, proc, d / "log")
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    log.close()


def test_promtool_accepts_the_example_rules():
    out = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 6 rules found" in out.stdout
    # The rules' own unit tests: a failing connection alternating between connecting and
    # disconnected alerts after 5 minutes; drops and a filling buffer alert.
    out = subprocess.run(["promtool", "test", "rules", RULES.with_name("logrelay-alerts.test.yml").name],
                         capture_output=True, text=True, timeout=60, cwd=RULES.parent)
    assert out.returncode == 0, out.stdout + out.stderr


def test_prometheus_scrapes_per_container_series(plugin, busybox, nats_server, subscribe, containers,
                                                 metrics_port, prometheus):
    names = [unique_name("lr-e2e-prom-a"), unique_name("lr-e2e-prom-b")]
    counts = [300, 700]
    subs = [subscribe(nats_server, n) for n in names]
    ids = []
    for name, n in zip(names, counts):
        containers.append(name)
        # The container stays up after printing: its series exist while it logs through the plugin.
        run = docker("run", "-d", "--name", name, "--network=none", f"--log-driver={plugin.alias}",
                     "--log-opt", f"nats-servers={nats_server.url}", "--log-opt", "tag={{.Name}}",
                     busybox, "sh", "-c", f"seq 1 {n}; exec sleep 600")
        assert run.returncode == 0, run.stderr
        ids.append(run.stdout.strip()[:12])
    for sub, n in zip(subs, counts):
        assert sub.wait_for(n, timeout=120) == n, f"plugin log:\n{plugin.log()}"

    assert wait_until(lambda: prometheus.value('up{job="logrelay"}') == 1, 30), prometheus.log.read_text()[-2000:]
    for name, cid, n in zip(names, ids, counts):
        sel = f'container="/{name}",container_id="{cid}",driver="nats"'
        assert wait_until(lambda: prometheus.value(f"logrelay_container_lines_published_total{{{sel}}}") == n, 30), \
            prometheus.query(f'{{container="/{name}"}}')
        assert prometheus.value(f"logrelay_container_lines_received_total{{{sel}}}") == n
        assert prometheus.value(f"logrelay_container_lines_dropped_total{{{sel}}}") == 0
        assert prometheus.value(f"logrelay_container_buffer_bytes{{{sel}}}") == 0
        want_bytes = sum(len(str(i)) for i in range(1, n + 1))
        assert prometheus.value(f"logrelay_container_bytes_published_total{{{sel}}}") == want_bytes
    assert prometheus.value(f'logrelay_connection_up{{driver="nats",connection="{nats_server.url}"}}') == 1
    assert prometheus.value(f'logrelay_connection_streams{{driver="nats",connection="{nats_server.url}"}}') >= 2
    assert prometheus.value(f'logrelay_connection_state{{connection="{nats_server.url}",state="connected"}}') == 1
    assert prometheus.value("process_resident_memory_bytes") > 1 << 20
    assert prometheus.value("process_threads") >= 3
    assert 0 < prometheus.value("time() - process_start_time_seconds") < 3600
    assert len(prometheus.query("logrelay_build_info")) == 1

    # The rules loaded, and none fires while everything flows (a connection an earlier test left
    # to a dead server may make one pending).
    rules = json.loads(http_get(f"http://127.0.0.1:{prometheus.port}/api/v1/rules"))["data"]["groups"]
    assert sorted(r["name"] for g in rules for r in g["rules"]) == sorted(
        ["LogrelayDown", "LogrelayLinesDropped", "LogrelayLinesRejected", "LogrelaySinkDisconnected",
         "LogrelayBufferFilling", "LogrelayCorruptFrames"])
    assert not [r["name"] for g in rules for r in g["rules"] if r["state"] == "firing"], rules

    # Every metric the dashboard and the rules name is in a scrape, with HELP and TYPE.
    fams = promtext.parse(http_get(f"http://127.0.0.1:{metrics_port}/metrics"))
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    named = {m for e in exprs + [RULES.read_text()] for m in METRIC_NAME.findall(e)}
    assert len(named) >= 20, named
    missing = sorted(named - set(fams))
    assert not missing, f"named by the dashboard or the rules but not served: {missing}"

    for name in names:
        docker("rm", "-f", name, timeout=60)
    # A container's series end with its stream.
    assert wait_until(lambda: prometheus.query(f'logrelay_container_lines_received_total{{container="/{names[0]}"}}') == [], 30)


JAVA_PY_JSON = "\n".join([
    "2024-05-01 10:00:00,123 INFO  app: starting",
    "2024-05-01 10:00:01,456 ERROR app: request failed",
    'java.lang.IllegalStateException: boom "quoted"',
    "\tat com.example.Foo.bar(Foo.java:42)",
    "\tat com.example.Main.main(Main.java:7)",
    "Caused by: java.io.IOException: disk full",
    "\t... 2 more",
    "2024-05-01 10:00:02,000 WARN  worker: python said",
    "Traceback (most recent call last):",
    '  File "app.py", line 3, in <module>',
    "    main()",
    "ZeroDivisionError: division by zero",
    "2024-05-01 10:00:03,000 INFO  api: payload {",
    '  "user": "ann \u00e9",',
    '  "items": [1, 2]',
    "}",
    "2024-05-01 10:00:04,000 INFO  app: done",
])
JAVA_PY_JSON_EVENTS = ["\n".join(JAVA_PY_JSON.split("\n")[a:b]) for a, b in [(0, 1), (1, 7), (7, 12), (12, 16), (16, 17)]]


def test_stack_traces_and_json_are_one_event_each(plugin, busybox, nats_server, subscribe, containers):
    name = unique_name("lr-e2e-multiline")
    sub = subscribe(nats_server, name)
    containers.append(name)
    run = docker("run", "--name", name, "--network=none", f"--log-driver={plugin.alias}",
                 "--log-opt", f"nats-servers={nats_server.url}", "--log-opt", "tag={{.Name}}",
                 "--log-opt", "multiline-datetime-format=%Y-%m-%d %H:%M:%S",
                 "-e", f"OUT={JAVA_PY_JSON}", busybox, "sh", "-c", 'echo "$OUT"; echo "$OUT" >&2', timeout=120)
    assert run.returncode == 0, run.stderr
    assert sub.wait_for(10, timeout=60) == 10, f"{sub.count()} events\nplugin log:\n{plugin.log()}"
    time.sleep(1)
    events = sub.events()
    assert len(events) == 10, [e["log"][:30] for e in events]
    for source in ("stdout", "stderr"):
        got = [e for e in events if e["source"] == source]
        assert [e["log"] for e in got] == JAVA_PY_JSON_EVENTS
        assert not any(e.get("partial") for e in got)
        times = [e["time"] for e in got]
        assert times == sorted(times)
