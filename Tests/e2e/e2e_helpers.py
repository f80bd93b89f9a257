"""Helpers shared by the e2e tests and their fixtures."""
import shlex
import socket
import subprocess
import time
import uuid

IMAGE = "busybox:local"


def docker(*args, timeout=120, check=False):
    """Runs the docker CLI against the suite's engine; returns the CompletedProcess."""
    p = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"docker {shlex.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def unique_name(prefix):
    # Container names double as NATS subjects: letters, digits and dashes only.
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def logentries_names(server_version):
    """(alias to install, name for --log-driver) of the Logentries alias on a Docker engine of
    this version (plugin/install.sh picks the same):
    * <= 24: the built-in `logentries` driver wins over a plugin of that name: another alias;
    * 25-27: the daemon refuses the bare name `logentries` ("deprecated and removed") before it
      looks for a plugin, but `logentries:latest` reaches a plugin installed as `logentries`;
    * >= 28: `logentries` reaches the plugin."""
    try:
        major = int(server_version.split(".")[0])
    except ValueError:
        major = 0
    if major < 25:
        return "logentries-relay", "logentries-relay"
    if major < 28:
        return "logentries", "logentries:latest"
    return "logentries", "logentries"
