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
