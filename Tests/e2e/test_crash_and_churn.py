"""Crash and churn with the real engine.

* The plugin process is SIGKILLed while a container logs 60,000 lines: the daemon restarts it,
  it re-attaches to the FIFO from its state dir, the container runs on and exits 0, at least
  99 % of the lines arrive (all of those written after the crash), and `docker plugin disable`
  works afterwards (the daemon's StopLogging succeeded, so the plugin is not "in use").
* Many short-lived containers in a row: the plugin's fd count, RSS and thread count do not
  grow. 100 by default (about 1 s per container with vfs storage, so the full 300 take 5 min);
  E2E_CHURN_CONTAINERS=300 for the full run.

The crash test installs its own alias (E2E_CRASH_ALIAS, default logrelay-e2e-crash) so the
kill and the final disable touch nothing the other tests use.
"""
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from e2e_helpers import docker, unique_name, wait_until

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "plugin" / "install.sh"
PLUGIN_DIR = Path(os.environ.get("PLUGIN_DIR", REPO / "build" / "plugin"))   # as conftest.py

CRASH_ALIAS = os.environ.get("E2E_CRASH_ALIAS", "logrelay-e2e-crash")
CHURN = int(os.environ.get("E2E_CHURN_CONTAINERS", "100"))
CHURN_WARMUP = min(30, max(CHURN // 10, 1))
LINES = 60_000
PHASE1_BATCHES = 30          # 1,000 lines each, paced, before the container waits for /p/go
PACE = os.environ.get("E2E_CRASH_PACE", "0.05")   # seconds between phase-1 batches


# ---------------------------------------------------------------------------
# the plugin's process on the host
# ---------------------------------------------------------------------------

def _cmdline(pid: str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _ppid(pid: str) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rfind(")") + 2:].split()[1]


def plugin_host_pid(plugin_id: str):
    """The plugin's host pid: the child of the containerd-shim whose command line has
    `-id <plugin id>` (dev-environment.md). None when there is none (yet)."""
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    shims = []
    for p in pids:
        args = _cmdline(p)
        if args and "containerd-shim" in os.path.basename(args[0]):
            for i, a in enumerate(args[:-1]):
                if a == "-id" and args[i + 1] == plugin_id:
                    shims.append(p)
    for p in pids:
        if _ppid(p) in shims:
            return int(p)
    return None


def proc_reading(pid: int) -> tuple[int, int, int]:
    """(open fds, VmRSS KiB, threads) of a host process."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = threads = 0
    for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
        if ln.startswith("VmRSS:"):
            rss = int(ln.split()[1])
        elif ln.startswith("Threads:"):
            threads = int(ln.split()[1])
    return fds, rss, threads


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def crash_plugin(engine):
    """The plugin under its own alias; force-removed afterwards whatever happened."""
    out = subprocess.run([str(INSTALL), str(PLUGIN_DIR), CRASH_ALIAS, "DRIVER=nats", "LOG_LEVEL=info"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"plugin install failed: {out.stdout}{out.stderr}"
    pid = docker("plugin", "inspect", "-f", "{{.Id}}", CRASH_ALIAS, check=True).stdout.strip()
    yield pid
    docker("plugin", "disable", "-f", CRASH_ALIAS, timeout=60)
    docker("plugin", "rm", "-f", CRASH_ALIAS, timeout=60)


# ---------------------------------------------------------------------------
# SIGKILL while logging
# ---------------------------------------------------------------------------

def test_sigkill_while_a_container_logs_60000_lines(engine, crash_plugin, busybox, nats_server, subscribe,
                                                     containers):
    plugin_id = crash_plugin
    name = unique_name("lr-e2e-crash")
    sub = subscribe(nats_server, name)
    containers.append(name)
    shared = Path(tempfile.mkdtemp(prefix="lr-crash-", dir="/tmp"))
    shared.chmod(0o777)
    # Phase 1: 30 paced batches of 1,000 lines, writing the batch number to /p/progress before
    # each; then it waits for /p/go (created by the test after the restarted plugin is back);
    # phase 2: lines 30,001-60,000.
    script = (f"for b in $(seq 0 {PHASE1_BATCHES - 1}); do echo $b > /p/progress; "
              f"seq $((b*1000+1)) $((b*1000+1000)); sleep {PACE}; done; echo wait > /p/progress; "
              f"while [ ! -e /p/go ]; do sleep 0.1; done; seq {PHASE1_BATCHES * 1000 + 1} {LINES}; "
              f"echo done > /p/progress")
    old_pid = plugin_host_pid(plugin_id)
    assert old_pid, "the plugin's host process was not found"
    run = docker("run", "-d", "--name", name, "--network=none", "-v", f"{shared}:/p",
                 f"--log-driver={CRASH_ALIAS}", "--log-opt", f"nats-servers={nats_server.url}",
                 "--log-opt", "tag={{.Name}}", busybox, "sh", "-c", script)
    assert run.returncode == 0, run.stderr

    # Kill it mid-stream.
    assert wait_until(lambda: sub.count() >= 5000, 120), f"only {sub.count()} lines before the kill"
    os.kill(old_pid, signal.SIGKILL)
    progress = (shared / "progress").read_text().strip()
    received_at_kill = sub.count()
    # Every batch after the one running now is written after the crash.
    after_crash_from = (int(progress) + 1) * 1000 + 1 if progress.isdigit() else PHASE1_BATCHES * 1000 + 1
    print(f"\nkilled plugin pid {old_pid} at {received_at_kill} lines received, container at batch {progress}")

    # The daemon restarts the plugin (same id); it re-attaches from its state dir.
    assert wait_until(lambda: (plugin_host_pid(plugin_id) or old_pid) != old_pid, 60), \
        "the daemon did not restart the plugin"
    new_pid = plugin_host_pid(plugin_id)
    if engine.private:
        assert wait_until(lambda: any("re-attached" in l for l in engine.log_lines(plugin_id)), 30), \
            "no re-attach in the plugin's log:\n" + "\n".join(engine.log_lines(plugin_id)[-30:])
    assert docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true", \
        "the container stopped when the plugin was killed"
    (shared / "go").write_text("")

    assert docker("wait", name, timeout=300).stdout.strip() == "0", "the container did not exit normally"
    assert (shared / "progress").read_text().strip() == "done"
    sub.wait_for(LINES, timeout=120)
    time.sleep(2)  # anything still on its way
    got = [int(l) for l in (e.get("log") for e in sub.events()) if l and l.isdigit()]
    unique = set(got)
    missing = sorted(set(range(1, LINES + 1)) - unique)
    print(f"restarted as pid {new_pid}; {len(unique)} of {LINES} lines arrived "
          f"({len(got) - len(unique)} duplicates); missing: "
          f"{missing[:5]}{'...' if len(missing) > 5 else ''}{missing[-5:] if len(missing) > 5 else ''}")
    assert len(unique) >= LINES * 99 // 100, f"only {len(unique)} of {LINES} lines arrived"
    lost_after = [n for n in missing if n >= after_crash_from]
    assert not lost_after, (f"{len(lost_after)} lines written after the crash (from {after_crash_from}) "
                            f"are missing: {lost_after[:10]}")
    assert unique <= set(range(1, LINES + 1))

    # The daemon's StopLogging reached the restarted plugin: the plugin is not "in use".
    out = docker("plugin", "disable", CRASH_ALIAS, timeout=60)
    assert out.returncode == 0, f"docker plugin disable failed: {out.stderr}"


# ---------------------------------------------------------------------------
# churn
# ---------------------------------------------------------------------------

def test_many_short_lived_containers_leak_no_fds_and_no_memory(plugin, busybox, nats_server, subscribe):
    prefix = unique_name("lr-churn")
    sub = subscribe(nats_server, prefix + ".>")
    pid = plugin_host_pid(plugin.id)
    assert pid, "the plugin's host process was not found"
    per = 3
    readings = []
    t0 = time.monotonic()
    for i in range(1, CHURN + 1):
        run = docker("run", "--rm", "--network=none", f"--log-driver={plugin.alias}",
                     "--log-opt", f"nats-servers={nats_server.url}",
                     "--log-opt", f"tag={prefix}.{{{{.ID}}}}",
                     busybox, "sh", "-c", f"echo churn {i} a; echo churn {i} b; echo churn {i} c", timeout=120)
        assert run.returncode == 0, f"container {i}: {run.stderr}\nplugin log:\n{plugin.log()}"
        if i in (CHURN_WARMUP, CHURN):
            assert sub.wait_for(per * i, timeout=120) >= per * i, f"{sub.count()} of {per * i} lines"
            time.sleep(1)  # streams end after EOF, shortly after the container
            assert plugin_host_pid(plugin.id) == pid, "the plugin was restarted during the churn"
            readings.append(proc_reading(pid))
    took = time.monotonic() - t0
    (fd0, rss0, th0), (fd1, rss1, th1) = readings
    print(f"\n{CHURN} containers in {took:.0f}s; after {CHURN_WARMUP}: {fd0} fds, {rss0} KiB RSS, "
          f"{th0} threads; after {CHURN}: {fd1} fds, {rss1} KiB RSS, {th1} threads")
    assert sub.count() == per * CHURN
    assert fd1 <= fd0 + 2, f"fds grew from {fd0} to {fd1}"
    assert th1 <= th0 + 2, f"threads grew from {th0} to {th1}"
    assert rss1 <= rss0 + max(4096, rss0 // 5), f"RSS grew from {rss0} KiB to {rss1} KiB"
