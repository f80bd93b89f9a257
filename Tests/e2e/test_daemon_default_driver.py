"""The plugin as the daemon's default log driver: `dockerd --log-driver=ALIAS --log-opt ...`.

This needs a dockerd the suite may restart (its own private one): the daemon validates its
default log options against the plugin at start, so the plugin must already be installed,
and a second start with the extra flags is the only way in. The engine is restarted back
to its plain flags afterwards. Against an engine the suite did not start, the test skips.
"""
import pytest

from e2e_helpers import docker, unique_name


def test_containers_without_log_driver_use_the_plugin_and_the_daemon_log_opts(
        engine, plugin, busybox, nats_server, subscribe, containers):
    if engine.mode != "started":
        pytest.skip("needs a private dockerd started by this suite (the engine is restarted)")
    try:
        engine.restart(f"--log-driver={plugin.alias} --log-opt nats-servers={nats_server.url} "
                       "--log-opt tag={{.Name}} --log-opt labels=team")
        info = docker("info", "--format", "{{.LoggingDriver}}", check=True).stdout.strip()
        assert info == plugin.alias

        name = unique_name("lr-e2e-default")
        sub = subscribe(nats_server, name)
        containers.append(name)
        run = docker("run", "-d", "--name", name, "--network=none", "--label", "team=core",
                     busybox, "sh", "-c", "echo one; echo two; echo three >&2")
        assert run.returncode == 0, f"{run.stderr}\nplugin log:\n{plugin.log()}"
        assert docker("wait", name, timeout=120).stdout.strip() == "0"
        assert docker("inspect", "-f", "{{.HostConfig.LogConfig.Type}}", name,
                      check=True).stdout.strip() == plugin.alias

        got = sub.wait_for(3, timeout=120)
        assert got == 3, f"{got} of 3 events arrived\nplugin log:\n{plugin.log()}"
        events = sub.events()
        assert sorted((e["source"], e["log"]) for e in events) == [
            ("stderr", "three"), ("stdout", "one"), ("stdout", "two")]
        assert [e["log"] for e in events if e["source"] == "stdout"] == ["one", "two"]
        assert all(e["tag"] == name and e["attrs"] == {"team": "core"} for e in events)
    finally:
        engine.restart("")
