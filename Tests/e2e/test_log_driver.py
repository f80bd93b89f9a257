"""`docker run --log-driver=<plugin alias>` against a real engine and a real nats-server."""
import re

from e2e_helpers import docker, free_port, unique_name

EVENT_KEYS = {"time", "source", "log", "tag", "container_id", "container_name",
              "image_id", "image_name", "attrs"}
RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
LINES = 100_000


def test_100k_lines_arrive_complete_and_in_order_on_the_container_subject(
        plugin, busybox, nats_server, subscribe, containers):
    name = unique_name("lr-e2e-seq")
    sub = subscribe(nats_server, name)  # subject = rendered tag = container name
    containers.append(name)
    run = docker("run", "-d", "--name", name, "--network=none",
                 f"--log-driver={plugin.alias}",
                 "--log-opt", f"nats-servers={nats_server.url}",
                 "--log-opt", "tag={{.Name}}",
                 "--log-opt", "labels=team", "--label", "team=core",
                 busybox, "seq", "1", str(LINES))
    assert run.returncode == 0, run.stderr
    assert docker("wait", name, timeout=300).stdout.strip() == "0"

    got = sub.wait_for(LINES, timeout=300)
    assert got == LINES, f"{got} of {LINES} events arrived\nplugin log:\n{plugin.log()}"

    inspect = docker("inspect", "-f", "{{.Id}} {{.Image}}", name, check=True).stdout.split()
    container_id, image_id = inspect
    events = sub.events()
    assert [e.get("log") for e in events] == [str(i) for i in range(1, LINES + 1)]
    for e in (events[0], events[LINES // 2], events[-1]):
        assert set(e) == EVENT_KEYS, e
    for e in events:
        assert e["source"] == "stdout"
        assert e["tag"] == name
        assert e["container_id"] == container_id
        assert e["container_name"] == "/" + name
        assert e["image_id"] == image_id
        assert e["image_name"] == busybox
        assert e["attrs"] == {"team": "core"}
        assert RFC3339_NANO.match(e["time"]), e["time"]
    times = [e["time"] for e in events]
    assert times == sorted(times)


def test_unknown_log_option_fails_docker_run_with_a_message_naming_it(plugin, busybox, nats_server,
                                                                      containers):
    name = unique_name("lr-e2e-bogus")
    containers.append(name)
    run = docker("run", "--rm", "--name", name, "--network=none",
                 f"--log-driver={plugin.alias}",
                 "--log-opt", f"nats-servers={nats_server.url}",
                 "--log-opt", "bogus=1",
                 busybox, "true", timeout=120)
    assert run.returncode != 0, run.stdout
    assert "bogus" in run.stderr, run.stderr


def test_unreachable_nats_server_does_not_hold_the_container(plugin, busybox, containers):
    port = free_port()  # bound and released: nothing listens there
    name = unique_name("lr-e2e-down")
    containers.append(name)
    run = docker("run", "--rm", "--name", name, "--network=none",
                 f"--log-driver={plugin.alias}",
                 "--log-opt", f"nats-servers=nats://127.0.0.1:{port}",
                 busybox, "echo", "hi", timeout=120)
    assert run.returncode == 0, f"{run.stderr}\nplugin log:\n{plugin.log()}"
    assert run.stdout.strip() == "hi"
