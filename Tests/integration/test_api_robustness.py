"""No container can freeze the plugin's API: hostile file paths, catastrophic regexes, idle
connections by the thousand, a process out of fds, half-sent requests; no error echoes a
secret; the state dir holds only what re-attaching needs.

The limits are generous on purpose: these tests catch hangs, not speed (speed: make bench).
"""

import json
import os
import resource
import shutil
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers import secret
from testkit import cpu_seconds, wait_until

HANG = 30.0  # seconds: far beyond any honest answer; only a hang takes this long


def tls_ca_config(path: str) -> dict:
    return {"nats-servers": "tls://127.0.0.1:1", "nats-tls-ca-cert": path}


@pytest.fixture
def hostile_paths(tmp_path):
    fifo = tmp_path / "ca.fifo"
    os.mkfifo(fifo)
    sparse = tmp_path / "sparse.pem"
    with open(sparse, "wb") as f:
        f.truncate(2 * 1024 ** 3)
    directory = tmp_path / "a-directory"
    directory.mkdir()
    return {
        "fifo": (str(fifo), "a FIFO"),
        "dev-zero": ("/dev/zero", "a character device"),
        "dev-ptmx": ("/dev/ptmx", "a character device"),
        "directory": (str(directory), "a directory"),
        "sparse-2g": (str(sparse), "larger than 1024 KiB"),
    }


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "dev-ptmx", "directory", "sparse-2g"])
def test_a_ca_file_that_is_not_a_small_regular_file_fails_start_logging_while_the_api_answers(
        plugin, daemon, hostile_paths, kind):
    path, why = hostile_paths[kind]
    c = daemon.container(tls_ca_config(path))
    result = {}

    def start():
        t0 = time.monotonic()
        result["resp"] = c.start()
        result["seconds"] = time.monotonic() - t0

    t = threading.Thread(target=start, daemon=True)
    t.start()
    probe = plugin.client()
    answered = 0
    # Capabilities on another connection keeps answering while StartLogging is validated.
    while t.is_alive() or answered < 3:
        t0 = time.monotonic()
        r = probe.call("/LogDriver.Capabilities")
        assert r.status == 200 and time.monotonic() - t0 < 5, "Capabilities stalled"
        answered += 1
        time.sleep(0.05)
        if answered > HANG / 0.05:
            break
    t.join(HANG)
    assert not t.is_alive(), f"StartLogging with nats-tls-ca-cert={path} never answered"
    resp = result["resp"]
    assert resp.failed, f"StartLogging accepted {path}"
    assert "nats-tls-ca-cert" in resp.err and path in resp.err and why in resp.err, resp.err
    probe.close()


def test_a_ca_file_readable_by_nobody_but_a_fifo_writer_does_not_hold_a_worker(plugin, daemon, tmp_path):
    """A FIFO with a writer attached would give bytes; it is refused before any read."""
    fifo = tmp_path / "ca-with-writer.fifo"
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(wfd, b"-----BEGIN CERTIFICATE-----\n")
        resp = daemon.container(tls_ca_config(str(fifo))).start()
        assert resp.failed and "a FIFO" in resp.err, resp.err
    finally:
        os.close(wfd)
        os.close(rfd)


# ---------------------------------------------------------------------------
# catastrophic regexes: linear time, and Go's answers
# ---------------------------------------------------------------------------

CATASTROPHIC = [r"^(a+)+$", r"(a|aa)+$", r"(a*)*b", r"^(\w+\s?)*$", r"(x+x+)+y",
                r"^(([a-z])+.)+[A-Z]([a-z])+$", r"(.*a){20}", r"^(a|a?)+$"]
KEYS = ["a" * 1024, "a" * 1023 + "!", "x" * 1024, "ab" * 512, "A" + "a" * 1023, "a " * 512,
        "x" * 1023 + "y", "b" * 1024]

GO_ORACLE = r'''
package main

import (
	"encoding/json"
	"os"
	"regexp"
)

func main() {
	var in struct{ Patterns, Keys []string }
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil { panic(err) }
	out := map[string][]string{}
	for _, p := range in.Patterns {
		re := regexp.MustCompile(p)
		out[p] = []string{}
		for _, k := range in.Keys {
			if re.MatchString(k) { out[p] = append(out[p], k) }
		}
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
'''


@pytest.fixture(scope="module")
def go_matches(tmp_path_factory):
    go = shutil.which("go")
    if not go:
        pytest.skip("Go is not installed (apt-get install golang-go)")
    d = tmp_path_factory.mktemp("go-oracle")
    (d / "main.go").write_text(GO_ORACLE)
    env = dict(os.environ, GOCACHE=str(d / "cache"), GOPATH=str(d / "gopath"), GO111MODULE="off")
    out = subprocess.run([go, "run", str(d / "main.go")], input=json.dumps({"Patterns": CATASTROPHIC, "Keys": KEYS}),
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_env_regex_against_1_kib_keys_answers_at_once_with_go_s_matches(
        plugin, daemon, nats_server, subscriber_factory, go_matches, pattern):
    sub = subscriber_factory(nats_server.url, "regex.>")
    c = daemon.container({"nats-servers": nats_server.url, "nats-subject": "regex.{{.ID}}", "env-regex": pattern},
                         env=[f"{k}=v{i}" for i, k in enumerate(KEYS)])
    t0 = time.monotonic()
    c.start_ok()
    assert time.monotonic() - t0 < HANG
    c.log_lines([("stdout", b"one line")])
    assert sub.wait_for(1), "the line did not arrive"
    attrs = sub.msgs[0].event().get("attrs", {})
    assert sorted(attrs) == sorted(go_matches[pattern]), f"{pattern}: ours {sorted(attrs)} != Go's"
    c.stop()


# ---------------------------------------------------------------------------
# connections: thousands idle, out of fds, slow clients
# ---------------------------------------------------------------------------

@pytest.fixture
def many_fds():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 16384)
    if want < 4500:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low for 2,000 connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_idle(sock_path: str, n: int) -> list[socket.socket]:
    out = []
    deadline = time.monotonic() + HANG
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(HANG)
        while True:
            try:
                s.connect(sock_path)
                break
            except BlockingIOError:  # the listen backlog is full until the plugin accepts
                assert time.monotonic() < deadline, f"the plugin stopped accepting after {len(out)} connections"
                time.sleep(0.001)
        out.append(s)
    return out


def test_with_2000_idle_connections_open_a_new_start_logging_succeeds(many_fds, plugin_factory, daemon_for,
                                                                      nats_server):
    plugin = plugin_factory()
    idle = open_idle(plugin.socket, 2000)
    try:
        d = daemon_for(plugin)
        t0 = time.monotonic()
        c = d.container({"nats-servers": nats_server.url})
        c.start_ok()
        assert time.monotonic() - t0 < HANG
        # no busy loop while they stay open
        cpu0 = cpu_seconds(plugin.pid)
        time.sleep(2)
        assert cpu_seconds(plugin.pid) - cpu0 < 1.0, "the plugin spins with many idle connections"
        c.stop()
    finally:
        for s in idle:
            s.close()


def test_out_of_fds_the_plugin_still_serves_a_new_client_and_does_not_spin(plugin, nats_server, daemon_for):
    # 64 fds for the whole plugin: its connection cap shrinks with the limit, the rest are
    # for FIFOs; past the cap, the connection idle the longest makes room.
    resource.prlimit(plugin.pid, resource.RLIMIT_NOFILE, (64, 64))
    idle = open_idle(plugin.socket, 200)
    try:
        cpu0 = cpu_seconds(plugin.pid)
        time.sleep(2)
        assert cpu_seconds(plugin.pid) - cpu0 < 1.0, "the plugin spins when out of fds"
        c = daemon_for(plugin).container({"nats-servers": nats_server.url})
        c.start_ok()
        c.stop()
    finally:
        for s in idle:
            s.close()


def test_idle_and_half_sent_connections_are_closed_after_their_timeouts(plugin_factory):
    plugin = plugin_factory(extra_env={"LOGRELAY_API_IDLE_TIMEOUT": "1", "LOGRELAY_API_IO_TIMEOUT": "1"})
    quiet, = open_idle(plugin.socket, 1)
    slow, = open_idle(plugin.socket, 1)
    slow.sendall(b"POST /LogDriver.Capabilities HTTP/1.1\r\nHost: x\r\n")  # never finished
    for s in (quiet, slow):
        s.settimeout(HANG)
        t0 = time.monotonic()
        data = s.recv(4096)
        assert data == b"" and time.monotonic() - t0 < HANG, "the connection was not closed"
        s.close()
    r = plugin.client().call("/LogDriver.Capabilities")
    assert r.status == 200


# ---------------------------------------------------------------------------
# secrets
# ---------------------------------------------------------------------------

CORPUS_SECRETS = [secret(s) for s in ("S3cretP,ass", "S3cretP", "Dave-SECRET-91", "Tok-SECRET-4f",
                                      "LE-Secret-Tok", "Sec:Ret-Colon")]
MALFORMED = [
    {"nats-servers": "nats://carol:S3cretP,ass@host"},
    {"nats-servers": "nats://dave:Dave-SECRET-91"},
    {"nats-servers": "nats://dave:Dave-SECRET-91/"},
    {"nats-servers": "nats://dave:Dave-SECRET-91@"},
    {"nats-servers": "nats://Tok-SECRET-4f@[::1"},
    {"nats-servers": "tls://Tok-SECRET-4f@h/x?y"},
    {"nats-servers": "nats://u:Sec:Ret-Colon"},
    {"nats-servers": "u:Dave-SECRET-91://h"},
    {"nats-servers": "nats://h:1,nats://dave:Dave-SECRET-91,nats://x"},
    {"nats-servers": "nats://u:%zzDave-SECRET-91@h"},
    {"nats-user": "u", "nats-pass": "Dave-SECRET-91", "nats-token": "Tok-SECRET-4f"},
    {"nats-pass": "Dave-SECRET-91"},
    {"nats-token": "Tok-SECRET-4f", "nats-subject": "a..b"},
    {"logentries-token": "LE-Secret-Tok"},
    {"logentries-token": "LE-Secret-Tok", "logentries-address": "LE-Secret-Tok:x"},
]


@pytest.mark.parametrize("config", MALFORMED, ids=[str(i) for i in range(len(MALFORMED))])
def test_no_secret_appears_in_the_answer_to_malformed_options(plugin, daemon, config):
    resp = daemon.container(config).start()
    assert resp.failed, f"accepted {config}"
    for s in CORPUS_SECRETS + ["Dave-SECRET", "SECRET-91", "ass@"]:
        assert s not in resp.err, f"{s!r} in {resp.err!r}"
    # the plugin's stdout and stderr are checked for every secret at teardown (conftest)


# ---------------------------------------------------------------------------
# state
# ---------------------------------------------------------------------------

def test_state_files_keep_only_the_selected_env_in_a_private_directory(plugin, daemon, nats_server):
    hidden = secret("Env-Secret-Not-Selected")
    c = daemon.container({"nats-servers": nats_server.url, "env": "KEEP_ME", "env-regex": "^PICK_"},
                         env=["KEEP_ME=1", "PICK_A=2", f"DB_PASSWORD={hidden}", "PATH=/bin"])
    c.start_ok()
    state = Path(plugin.state_dir)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    files = list(state.glob("*.json"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    saved = json.loads(files[0].read_text())
    assert sorted(saved["Info"]["ContainerEnv"]) == ["KEEP_ME=1", "PICK_A=2"]
    assert hidden not in files[0].read_text()
    c.stop()
    assert wait_until(lambda: not list(state.glob("*.json")), HANG)
