"""compose.yaml run for real and checked as a user would: the image built from docker/Dockerfile,
``docker-compose up -d`` through podman's Docker API (tests/containers/conftest.py), then the
README's commands, the web UI, Home Assistant's account, faults across containers and the
hardening the compose file claims.

The broker image is a stand-in for eclipse-mosquitto:2 (tests/containers/images/: Debian's
mosquitto 2.0.11 on glibc instead of Alpine's newer 2.0.x; same uid/gid 1883 and paths), and the
Python base one for python:3.12-slim (Debian's 3.11): no registry can be reached here.

The tests share one stack and run in file order: the fault tests come last and each ends with
the stack as it was (all healthy, bridge ready).
"""

from __future__ import annotations

import http.cookiejar
import json
import math
import re
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.broker import Collector, MqttRefused
from tests.support.processes import wait_for

from .conftest import DEVICE, LONG_RUNNING, LOOK_S, Stack

pytestmark = [pytest.mark.containers, pytest.mark.timeout(900)]

ROOT = f"homie/{DEVICE}"
DHW_SET_POINT = f"{ROOT}/dhw/set-point"  # register 401, 100-140 °F, settable
READY_S = 180.0
PARTITION_S = 30.0
# one distinct DHW set point per fault, published while that fault lasts
OUTAGE_SETS = {
    "broker restart": 111.0,
    "bridge partition": 112.5,
    "sim killed": 121.0,
    "bridge stopped": 133.5,
}


# ------------------------------------------------------------------ helpers


def retained(stack: Stack, topic: str, deadline_s: float = 30.0) -> bytes:
    """The retained payload of ``topic`` as the admin account sees it now."""
    broker = stack.broker()
    try:
        seen = Collector(broker.client("admin"), topic)
        return seen.wait_for(topic, deadline_s).payload
    finally:
        broker.close_clients()


def wait_ready(stack: Stack, after: float | None = None, deadline_s: float = READY_S) -> float:
    """Seconds until the bridge is ``ready`` and every service healthy.

    ``after`` (a ``time.time()``): also wait for a ``$health`` document the bridge published
    later than that, connected. Only that proves its session works again after a fault: the
    retained ``$state`` still says ``ready`` while the broker holds a dead session of the bridge.
    """
    start = time.monotonic()

    def ready() -> bool:
        try:
            if retained(stack, f"{ROOT}/$state", deadline_s=5) != b"ready":
                return False
            if after is None:
                return True
            health = json.loads(retained(stack, f"{ROOT}/$health", deadline_s=5))
        except (OSError, TimeoutError, MqttRefused):
            return False  # the broker is not back yet
        published = datetime.fromisoformat(health["published_at"]).timestamp()
        return (
            published >= math.ceil(after) and health["state"] == "ready" and health["mqtt"]["connected"] == 1
        )

    wait_for(ready, deadline_s, "bridge $state ready", every_s=LOOK_S)
    stack.wait_healthy()
    return time.monotonic() - start


def fetch(stack: Stack, query: str) -> list[str]:
    """``docker compose run --rm fetch QUERY``: its output lines."""
    return stack.run("fetch", query).strip().splitlines()


def set_dhw(stack: Stack, value: float) -> None:
    """Publish a /set at QoS 1 as admin and wait for the PUBACK: the broker accepted it."""
    broker = stack.broker()
    try:
        client = broker.client("admin")
        info = client.publish(f"{DHW_SET_POINT}/set", f"{value:.1f}", qos=1)
        info.wait_for_publish(30)
        assert info.is_published()
    finally:
        broker.close_clients()


def _accepts_set(stack: Stack, value: float) -> bool:
    try:
        set_dhw(stack, value)
    except (OSError, TimeoutError, MqttRefused):
        return False
    return True


def applied(stack: Stack, value: float) -> int:
    """How many times the bridge logged a write of ``value`` to the DHW set point."""
    return _dhw_events(stack, "set_done", value)


def failed(stack: Stack, value: float) -> int:
    """How many times the bridge logged a /set of ``value`` to the DHW set point as failed."""
    return _dhw_events(stack, "set_failed", value)


def _dhw_events(stack: Stack, name: str, value: float) -> int:
    count = 0
    for line in stack.service_log("bridge").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == name and event.get("property") == "dhw/set-point":
            count += float(str(event.get("value"))) == value
    return count


def dhw_story(stack: Stack, value: float) -> str:
    """The bridge's log lines about ``value`` and its connections, for a failed assertion."""
    words = (f"{value:.1f}", "mqtt_", "bus_", "homie_state", "line")
    lines = [line for line in stack.service_log("bridge").splitlines() if any(w in line for w in words)]
    return "\n".join(lines[-80:])


def assert_recovered(stack: Stack, value: float) -> None:
    """After a fault: a /set reaches the unit once, and the retained value and the unit agree."""
    set_dhw(stack, value)
    assert_value_everywhere(stack, value)
    assert applied(stack, value) == 1


def assert_value_everywhere(stack: Stack, value: float) -> None:
    """The unit holds ``value`` (read through the bridge) and the retained topic says so."""

    def holds() -> bool:
        return retained(stack, DHW_SET_POINT) == f"{value:.1f}".encode()

    wait_for(holds, 60, f"retained {value}", every_s=LOOK_S)
    assert fetch(stack, "401") == [f"DHW Setpoint (401): {value:.1f}°F"]


def secrets(stack: Stack) -> dict[str, str]:
    """Every secret the setup made: passwords, the web login, the CA's and broker's keys."""
    found = {}
    for volume in ("setup", "bridge-secrets", "web-secrets", "fetch-secrets", "broker-config"):
        for path in stack.volume(volume).rglob("*"):
            if path.is_file() and (path.name in ("password", "ui-password") or path.suffix == ".key"):
                text = path.read_text().strip()
                body = [line for line in text.splitlines() if not line.startswith("-----")]
                found[f"{volume}/{path.relative_to(stack.volume(volume))}"] = body[1] if body[1:] else text
    return found


def proc_status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


# ------------------------------------------------------------------ the stack as it comes up


def test_every_long_running_service_becomes_healthy(stack: Stack) -> None:
    stack.wait_healthy()
    setup = stack.podman.inspect(stack.container("setup"))
    assert (setup["State"]["Status"], setup["State"]["ExitCode"]) == ("exited", 0)  # type: ignore[index]
    stack.figures["up_to_healthy_s"] = round(time.monotonic() - stack.figures["up_started_mono"], 1)


def test_the_bridge_reaches_ready_on_the_simulated_unit(stack: Stack) -> None:
    wait_ready(stack)
    stack.figures.setdefault("up_to_ready_s", round(time.monotonic() - stack.figures["up_started_mono"], 1))
    assert retained(stack, f"{ROOT}/$homie") == b"4.0.0"


def test_fetch_through_the_bridge_prints_the_three_lines(stack: Stack) -> None:
    lines = fetch(stack, "745-747")
    assert [line.split(":")[0] for line in lines] == [
        "Heating Set Point (745)",
        "Cooling Set Point (746)",
        "Ambient Temperature (747)",
    ]
    assert all(re.search(r": -?\d+\.\d°F$", line) for line in lines), lines


def test_the_web_ui_asks_for_its_password_then_shows_live_values(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.web_port}"
    no_redirects = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as asked:
        no_redirects.open(urllib.request.Request(f"{base}/ui/", headers={"Accept": "text/html"}), timeout=10)
    assert (asked.value.code, asked.value.headers["Location"]) == (303, "/login?next=/ui/")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{base}/api/state", timeout=10)
    assert refused.value.code == 401
    # as docker/README.md says to read it
    password = stack.compose("exec", "-T", "web", "cat", "/etc/aurora/web/ui-password").stdout.strip()
    assert password
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = urllib.parse.urlencode({"password": password, "next": "/ui/"}).encode()
    with opener.open(
        urllib.request.Request(f"{base}/login", data=form, headers={"Origin": base}), timeout=10
    ):
        pass
    with opener.open(f"{base}/api/state", timeout=10) as reply:
        state = json.load(reply)
    assert (state["device"], state["state"]) == (DEVICE, "ready")
    values = {
        f"{node['id']}/{prop['id']}": prop["value"] for node in state["nodes"] for prop in node["properties"]
    }
    # what the web UI shows is what the bridge has published
    assert values["dhw/set-point"] == retained(stack, DHW_SET_POINT).decode()


def test_home_assistant_logs_in_with_the_printed_password_and_sees_discovery(stack: Stack) -> None:
    shown = stack.run("setup", "--show-secrets")
    password = re.search(r"^\s*Password:\s+(\S+)$", shown, re.MULTILINE)
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", shown, re.DOTALL)
    assert password and pem, shown
    with tempfile.NamedTemporaryFile("w", suffix=".crt") as ca:
        ca.write(pem.group(0) + "\n")
        ca.flush()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ha-compose-test", protocol=mqtt.MQTTv5)
        client.username_pw_set("homeassistant", password.group(1))
        client.tls_set_context(ssl.create_default_context(cafile=ca.name))
        discovery: list[mqtt.MQTTMessage] = []
        got = threading.Event()
        topic = f"homeassistant/device/{DEVICE}/config"  # one document for the whole device

        def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
            if message.topic == topic:
                discovery.append(message)
                got.set()

        client.on_message = on_message
        client.connect("127.0.0.1", stack.broker_port)
        client.subscribe("homeassistant/#", qos=1)
        client.loop_start()
        try:
            assert got.wait(30), f"no {topic}"
        finally:
            client.disconnect()
            client.loop_stop()
    document = json.loads(discovery[0].payload)
    assert discovery[0].retain
    assert DEVICE in document["dev"]["ids"]  # discovery's abbreviated keys
    assert len(document["cmps"]) >= 20  # the demo unit's sensors, switches, numbers...
    assert f"{ROOT}/" in json.dumps(document["cmps"])  # they read the Homie tree


# ------------------------------------------------------------------ hardening and logs


def test_each_service_runs_read_only_without_root_or_capabilities(stack: Stack) -> None:
    for service in LONG_RUNNING:
        info = stack.podman.inspect(stack.container(service))
        assert info["HostConfig"]["ReadonlyRootfs"] is True, service  # type: ignore[index]
        write = stack.podman.run("exec", stack.container(service), "sh", "-c", "echo x > /probe", check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr, service
        for pid in stack.container_pids(service):
            status = proc_status(pid)
            uids = {int(u) for u in status["Uid"].split()}
            assert 0 not in uids, (service, pid, status["Uid"])
            assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0, (service, status)
            assert status["NoNewPrivs"] == "1", service


def test_each_service_sees_only_its_own_secrets(stack: Stack) -> None:
    every = secrets(stack)
    own = {  # the volumes compose.yaml mounts into each service
        "broker": ("broker-config/", "setup/healthcheck/"),
        "bridge": ("bridge-secrets/password",),
        "web": ("web-secrets/password", "web-secrets/ui-password"),
        "sim": (),
    }
    for service, mine in own.items():
        others = {name: value for name, value in every.items() if not name.startswith(mine or ("-",))}
        argv = ["exec", stack.container(service), "grep", "-rlsF"]
        for value in others.values():
            argv += ["-e", value]
        found = stack.podman.run(*argv, "/etc", "/tmp", "/run", "/var", "/mosquitto", "/opt", check=False)
        assert found.stdout == "", f"{service} can read another's secret in {found.stdout}"
    web_reads = stack.podman.run(
        "exec", stack.container("web"), "cat", "/etc/aurora/bridge/password", check=False
    )
    assert web_reads.returncode != 0


def test_no_secret_in_inspect_logs_or_environment(stack: Stack) -> None:
    every = secrets(stack)
    places = {"logs": stack.logs()}
    for service in (*LONG_RUNNING, "setup"):
        places[f"inspect {service}"] = stack.podman.run("inspect", stack.container(service)).stdout
    for service in LONG_RUNNING:
        for pid in stack.container_pids(service):
            places[f"environ {service} {pid}"] = (
                Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
            )
            places[f"cmdline {service} {pid}"] = (
                Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            )
    leaks = [
        (name, where) for name, value in every.items() for where, text in places.items() if value in text
    ]
    assert leaks == []


def test_every_service_has_log_rotation(stack: Stack) -> None:
    config = stack.compose("config").stdout
    import yaml

    services = yaml.safe_load(config)["services"]
    for name, service in services.items():
        logging = service.get("logging", {})
        assert logging.get("options", {}).get("max-size") and logging["options"].get("max-file"), name
    for service in (*LONG_RUNNING, "setup"):
        log_config = stack.podman.inspect(stack.container(service))["HostConfig"]["LogConfig"]  # type: ignore[index]
        assert log_config["Size"] == "10MB", (service, log_config)


# ------------------------------------------------------------------ faults across containers


@pytest.fixture
def recovered(stack: Stack) -> Stack:
    """The stack as a fault test expects it: everything up, healthy and ready (a fault test that
    failed half-way must not fail the next ones too)."""
    if not all(stack.health(s) == "running/healthy" for s in LONG_RUNNING):
        stack.compose("up", "-d", "--no-build", timeout=300)
    wait_ready(stack)
    return stack


def test_a_broker_restart_ends_in_ready(recovered: Stack) -> None:
    stack = recovered
    stack.compose("stop", "broker", timeout=120)
    stack.wait_health("bridge", "unhealthy", deadline_s=120)  # no broker: not healthy
    stack.compose("start", "broker", timeout=120)
    # as soon as the restarted broker takes it, possibly before the bridge is back
    wait_for(
        lambda: _accepts_set(stack, OUTAGE_SETS["broker restart"]),
        60,
        "the broker taking a /set",
        every_s=LOOK_S,
    )
    wait_ready(stack, after=time.time())
    assert_recovered(stack, 101.0)


def test_the_bridge_cut_off_from_the_broker_for_30_s_ends_in_ready(recovered: Stack) -> None:
    stack = recovered
    cut = time.monotonic()
    stack.podman.run("network", "disconnect", stack.network, stack.container("bridge"))
    try:
        set_dhw(stack, OUTAGE_SETS["bridge partition"])  # the broker accepts it; the bridge cannot see it
        time.sleep(max(0.0, PARTITION_S - (time.monotonic() - cut)))  # the partition is the scenario
    finally:
        stack.podman.run("network", "connect", stack.network, stack.container("bridge"))
    wait_ready(stack, after=time.time())
    assert_recovered(stack, 102.0)


def test_a_killed_sim_restarted_ends_in_ready(recovered: Stack) -> None:
    stack = recovered
    stack.podman.run("kill", stack.container("sim"))
    stack.wait_health("bridge", "unhealthy", deadline_s=120)  # no line: not healthy
    set_dhw(stack, OUTAGE_SETS["sim killed"])
    # it waits 10 s for the line (docs/writes.md), then fails; the unit comes back only after that
    wait_for(lambda: failed(stack, OUTAGE_SETS["sim killed"]) == 1, 60, "the /set failing", every_s=LOOK_S)
    stack.compose("start", "sim", timeout=120)
    wait_ready(stack, after=time.time())
    assert_recovered(stack, 103.0)


def test_a_restarted_bridge_container_ends_in_ready(recovered: Stack) -> None:
    stack = recovered
    stack.compose("stop", "bridge", timeout=120)
    set_dhw(stack, OUTAGE_SETS["bridge stopped"])
    stack.compose("start", "bridge", timeout=120)
    wait_ready(stack, after=time.time())
    assert_recovered(stack, 104.0)


@pytest.mark.parametrize("fault", ["broker restart", "bridge partition", "bridge stopped"])
def test_a_set_the_broker_accepted_during_a_fault_is_applied_exactly_once(stack: Stack, fault: str) -> None:
    assert applied(stack, OUTAGE_SETS[fault]) == 1, dhw_story(stack, OUTAGE_SETS[fault])


def test_a_set_while_the_line_is_down_is_refused_visibly_and_never_applied_later(stack: Stack) -> None:
    """With no heat pump to write to, the bridge answers the command once the line stayed down for
    10 s (``failed`` on $write-result, the old value republished) rather than keeping it to apply
    whenever the line is back."""
    assert applied(stack, OUTAGE_SETS["sim killed"]) == 0
    assert failed(stack, OUTAGE_SETS["sim killed"]) == 1


# ------------------------------------------------------------------ figures


def test_idle_figures(recovered: Stack) -> None:
    stack = recovered
    """Per-container RSS at idle (every process of the container, from this machine's /proc)."""
    wait_ready(stack)
    rss: dict[str, float] = {}
    for service in LONG_RUNNING:
        kb = 0
        for pid in stack.container_pids(service):
            kb += int(proc_status(pid).get("VmRSS", "0 kB").split()[0])
        rss[service] = round(kb / 1024, 1)
        assert kb > 0
    stack.figures["rss_mb"] = rss
    assert stack.figures["image_size_mb"] > 0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
