"""Least privilege on the real engine: the plugin as installed with its defaults runs with no
capability, no_new_privs and a seccomp filter; of the host it sees one directory, read-only,
without submounts, nosuid/nodev/noexec; TLS works with certificates from that directory, and
a path outside it fails `docker run` with a message naming the setting to change.

A plugin has no shell, so what it can write is read from the host: its /proc/<pid>/status and
/proc/<pid>/mountinfo.
"""
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import INSTALL, PLUGIN_DIR, SCRIPTS
from e2e_helpers import IMAGE, docker, unique_name, wait_until
from test_tls_and_cluster import Server, make_pki, nats_tls_block, plugin_host_pid

HOST_DIR = Path("/etc/logrelay")   # config.json's hostfs source
ALIAS = "logrelay-priv"


@pytest.fixture(scope="module")
def narrow(engine, busybox):
    """The plugin installed with config.json's defaults (the shared fixture widens hostfs for
    the tests that keep their certificates in /tmp)."""
    out = subprocess.run([str(INSTALL), str(PLUGIN_DIR), ALIAS, "DRIVER=nats"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, f"install failed: {out.stdout}{out.stderr}"
    assert HOST_DIR.is_dir(), "install.sh did not create the host directory"
    pid_ = docker("plugin", "inspect", "-f", "{{.Id}}", ALIAS, check=True).stdout.strip()
    assert wait_until(lambda: plugin_host_pid(pid_) is not None, 30), "the plugin process is not running"
    yield pid_
    docker("plugin", "disable", "-f", ALIAS, timeout=60)
    docker("plugin", "rm", "-f", ALIAS, timeout=60)


def status(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return fields


def mounts(pid):
    """(mount point, root, per-mount options, super options, fs type, source) per mountinfo line."""
    out = []
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        f = pre.split()
        fstype, source, super_opts = (post.split() + ["", "", ""])[:3]
        out.append({"point": f[4], "root": f[3], "opts": set(f[5].split(",")), "super": super_opts,
                    "fstype": fstype, "source": source})
    return out


def test_the_plugin_runs_with_no_capability_no_new_privs_and_a_seccomp_filter(narrow):
    pid = plugin_host_pid(narrow)
    s = status(pid)
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(s[cap], 16) == 0, f"{cap} is {s[cap]}: {s}"
    assert s["NoNewPrivs"] == "1"
    assert s["Seccomp"] == "2"
    assert s["Uid"].split()[0] == "0"  # root in its own mount namespace: the daemon's FIFOs are root's, mode 0700


def test_the_only_host_directory_it_sees_is_read_only_without_submounts(narrow):
    pid = plugin_host_pid(narrow)
    ms = mounts(pid)
    host = [m for m in ms if m["point"] == "/host"]
    assert len(host) == 1, f"no /host mount: {ms}"
    h = host[0]
    assert {"ro", "nosuid", "nodev", "noexec"} <= h["opts"], h
    assert h["root"].endswith(str(HOST_DIR)) or h["root"] == "/", h
    below = [m for m in ms if m["point"].startswith("/host/")]
    assert not below, f"submounts of the host directory are visible: {below}"
    # Every other mount from a host filesystem is read-only (/etc/hosts, /etc/resolv.conf),
    # or one the engine makes for the plugin and that is the plugin's own: its root filesystem
    # (in the engine's data root), its socket directory, and its propagated mount at
    # /run/docker/logging (config.json's propagatedMount: the daemon makes the FIFOs there, and
    # the state dir lives there, so that an upgrade, which replaces the rootfs, keeps both).
    # The rest are the plugin's own pseudo filesystems (proc, sysfs read-only, cgroups
    # read-only, tmpfs /dev and /dev/shm).
    pseudo = {"proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2"}
    for m in ms:
        if m["fstype"] in pseudo or "ro" in m["opts"]:
            continue
        own = (m["point"] == "/" and m["root"].endswith(f"/plugins/{narrow}/rootfs")) or \
              (m["point"] == "/run/docker/plugins" and m["root"].endswith(f"/plugins/{narrow}")) or \
              (m["point"] == "/run/docker/logging" and m["root"].endswith(f"/plugins/{narrow}/propagated-mount"))
        assert own, f"a writable host mount in the plugin: {m}"
    assert not [m for m in ms if m["fstype"] == "sysfs" and "ro" not in m["opts"]], "sysfs is writable"


@pytest.fixture
def host_pki():
    d = HOST_DIR / f"e2e-{secrets.token_hex(4)}"
    d.mkdir(parents=True)
    d.chmod(0o755)
    yield make_pki(d)
    shutil.rmtree(d, ignore_errors=True)


def test_lines_arrive_over_tls_with_certificates_from_the_host_directory(narrow, host_pki, tmp_path):
    server = Server(tmp_path, nats_tls_block(host_pki, verify=True), "priv-tls", scheme="tls")
    name = unique_name("lr-e2e-priv-tls")
    out = tmp_path / "sub.jsonl"
    ready = tmp_path / "sub.ready"
    sub = subprocess.Popen(["python3", str(SCRIPTS / "nats-sub.py"), "--server", server.url, "--subject", name,
                            "--out", str(out), "--ready-file", str(ready), "--tls-ca", str(host_pki.ca),
                            "--tls-cert", str(host_pki.client_cert), "--tls-key", str(host_pki.client_key)],
                           stdin=subprocess.DEVNULL)
    try:
        assert wait_until(ready.exists, 30), "subscriber not ready"
        r = docker("run", "--rm", "--name", name, "--network=none", "--log-driver", ALIAS,
                   "--log-opt", f"nats-servers={server.url}", "--log-opt", f"nats-subject={name}",
                   "--log-opt", f"nats-tls-ca-cert={host_pki.ca}",
                   "--log-opt", f"nats-tls-cert={host_pki.client_cert}",
                   "--log-opt", f"nats-tls-key={host_pki.client_key}",
                   IMAGE, "seq", "1", "500", timeout=120)
        assert r.returncode == 0, r.stderr

        def count():
            return out.read_bytes().count(b"\n") if out.exists() else 0
        assert wait_until(lambda: count() >= 500, 60), f"{count()} of 500 lines arrived over TLS"
        assert all(c.get("tls_version") for c in server.plugin_connections())
    finally:
        sub.terminate()
        sub.wait(10)
        server.stop()


def test_a_tls_path_outside_the_host_directory_fails_docker_run_naming_the_setting(narrow, tmp_path):
    outside = tmp_path / "ca.pem"
    outside.write_text("not used\n")
    r = docker("run", "--rm", "--network=none", "--log-driver", ALIAS,
               "--log-opt", "nats-servers=tls://127.0.0.1:1", "--log-opt", f"nats-tls-ca-cert={outside}",
               IMAGE, "true", timeout=120)
    assert r.returncode != 0
    assert str(outside) in r.stderr and "hostfs.source" in r.stderr and str(HOST_DIR) in r.stderr, r.stderr


def test_the_install_prompt_shows_the_narrow_mount(narrow):
    r = docker("plugin", "inspect", "-f", "{{json .Config.Mounts}}", ALIAS, check=True)
    assert str(HOST_DIR) in r.stdout and '"/"' not in r.stdout.replace('"/host"', ""), r.stdout
    assert os.path.isdir(HOST_DIR)
