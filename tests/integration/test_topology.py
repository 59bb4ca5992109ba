"""compose.yaml's services as local processes: the same commands and environment, with the
containers' paths moved to a temporary directory, their host names to 127.0.0.1 and their ports
to free ones. Then data must flow end to end: simulator -> bridge -> broker -> Home Assistant,
Home Assistant -> /set -> bridge -> simulator -> value, fetch -> RPC -> bridge, web -> broker.

What cannot be reproduced without a container engine: the image's user and file system, the
eclipse-mosquitto image, and service name resolution (hence the 127.0.0.1 rewrite).
"""

from __future__ import annotations

import contextlib
import grp
import http.cookiejar
import importlib.util
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.support import Broker, Collector, free_port, local_config, publish, running, wait_for
from tests.support.broker import MOSQUITTO
from tests.support.compose import Service, image_environment, load_compose
from tests.support.processes import exited_early, tail

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CONTAINER_GID = "1883"  # the eclipse-mosquitto image's group, named in compose.yaml
READY_S = 90.0  # detection and the first full poll at 19200-baud timing
SET_S = 30.0
FETCH_S = 60.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("aurora.bridge.cli") is None,
        reason="aurora.bridge.cli is not importable yet: the bridge has not landed",
    ),
]


@dataclass
class Localizer:
    """Rewrites container paths, host names and ports in a service's argv and environment."""

    root: Path
    ports: dict[str, int]  # container port -> local port
    paths: dict[str, Path] = field(default_factory=dict)  # container path -> local path

    def text(self, value: str) -> str:
        for target in sorted(self.paths, key=len, reverse=True):
            value = re.sub(rf"{re.escape(target)}(?=/|$|\s)", str(self.paths[target]), value)
        for host in ("broker", "sim", "web", "localhost", "0.0.0.0", "127.0.0.1"):
            for port, local in self.ports.items():
                value = value.replace(f"{host}:{port}", f"127.0.0.1:{local}")
        return "127.0.0.1" if value == "0.0.0.0" else value

    def argv(self, service: Service, *run_args: str) -> list[str]:
        """The service's command, or ``docker compose run SERVICE RUN_ARGS`` with arguments."""
        words = service.run_argv(*run_args)
        argv = [str(self.ports.get(arg, arg)) if arg.isdigit() else self.text(arg) for arg in words]
        argv[0] = shutil.which(argv[0], path=f"{BIN}{os.pathsep}{os.environ['PATH']}") or argv[0]
        return argv

    def env(self, service: Service, image_env: dict[str, str]) -> dict[str, str]:
        merged = {**image_env, **service.environment}
        merged.pop("PATH", None)
        return {key: self.text(value) for key, value in merged.items()}

    def healthcheck(self, service: Service) -> list[str]:
        assert service.healthcheck is not None
        argv = [str(self.ports.get(a, a)) if a.isdigit() else self.text(a) for a in service.healthcheck]
        return [sys.executable if a == "python" else a for a in argv]


def _localizer(services: dict[str, Service], root: Path) -> Localizer:
    """Each named volume becomes the directory the setup service sees it as, under ``root``."""
    ports = {"8883": free_port(), "2000": free_port(), "4567": free_port()}
    volumes: dict[str, Path] = {}
    for mount in services["setup"].mounts:
        relative = Path(mount.target).relative_to("/etc/aurora")
        volumes[mount.source] = root / relative
    localizer = Localizer(root, ports)
    for service in services.values():
        for mount in service.mounts:
            local = volumes.get(mount.source) or root / "volumes" / mount.source
            localizer.paths[mount.target] = local
    localizer.paths["/usr/share/aurora/mosquitto"] = REPO / "mosquitto"  # COPY in the Dockerfile
    return localizer


def _broker_group() -> str:
    """Group 1883 in the container; this machine's mosquitto group here."""
    try:
        grp.getgrgid(int(CONTAINER_GID))
        return CONTAINER_GID
    except KeyError:
        try:
            return str(grp.getgrnam("mosquitto").gr_gid)
        except KeyError:
            return str(os.getgid())


@dataclass
class Topology:
    services: dict[str, Service]
    local: Localizer
    image_env: dict[str, str]
    broker: Broker
    logs: Path

    def run_once(self, name: str, *run_args: str, timeout_s: float = FETCH_S) -> str:
        """``docker compose run --rm NAME RUN_ARGS``; returns its standard output."""
        service = self.services[name]
        log = self.logs / f"{name}.log"
        argv = self.local.argv(service, *run_args)
        env = {**os.environ, **self.local.env(service, self.image_env)}
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
        log.write_text(done.stdout + done.stderr)
        assert 0 == done.returncode, f"{argv} exited with {done.returncode}:\n{tail(log)}"
        return done.stdout

    def healthy(self, name: str) -> bool:
        argv = self.local.healthcheck(self.services[name])
        env = {**os.environ, **self.local.env(self.services[name], self.image_env)}
        if self.services[name].image.startswith("eclipse-mosquitto"):
            argv += ["-p", str(self.broker.tls_port)]  # its options file names the container port
        return 0 == subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False).returncode


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """setup runs to completion, then broker, sim, bridge and web run for the whole module."""
    tmp_path = tmp_path_factory.mktemp("topology")
    services = load_compose(REPO / "compose.yaml")
    image_env = image_environment(REPO / "docker" / "Dockerfile")
    root = Path(tempfile.mkdtemp(prefix="aurora-topology-"))
    root.chmod(0o711)  # mosquitto reads its directory after dropping to user mosquitto
    local = _localizer(services, root)
    try:
        setup = services["setup"]
        setup_env = local.env(setup, image_env) | {"AURORA_SETUP_BROKER_GROUP": _broker_group()}
        done = subprocess.run(
            local.argv(setup), env={**os.environ, **setup_env}, capture_output=True, text=True, timeout=60
        )
        (tmp_path / "setup.log").write_text(done.stdout + done.stderr)
        assert 0 == done.returncode, done.stdout + done.stderr
        (root / "volumes").mkdir(mode=0o711, exist_ok=True)
        data = Path(setup_env["AURORA_SETUP_BROKER_DATA"])
        data.mkdir(mode=0o700, exist_ok=True)
        _chown_to_mosquitto(data)

        broker_argv = local.argv(services["broker"])
        conf = Path(broker_argv[broker_argv.index("-c") + 1])
        local_conf = tmp_path / "mosquitto.conf"
        local_conf.write_text(local_config(conf.read_text(), local.ports["8883"]))
        broker_argv[broker_argv.index("-c") + 1] = str(local_conf)
        assert Path(broker_argv[0]).name == Path(MOSQUITTO).name
        with contextlib.ExitStack() as stack:
            process = stack.enter_context(running(broker_argv, log=tmp_path / "broker.log"))
            log = tmp_path / "broker.log"

            def started() -> bool:
                if (problem := exited_early(process, log)) is not None:
                    raise RuntimeError(problem)
                return " running" in tail(log)

            wait_for(started, 15, "mosquitto start")
            broker = Broker(root=root, tls_port=local.ports["8883"], log=tmp_path / "broker.log")
            stack.callback(broker.close_clients)
            for name in ("sim", "bridge", "web"):
                service = services[name]
                stack.enter_context(
                    running(
                        local.argv(service), env=local.env(service, image_env), log=tmp_path / f"{name}.log"
                    )
                )
            yield Topology(services, local, image_env, broker, tmp_path)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _chown_to_mosquitto(path: Path) -> None:
    """The broker writes its persistence file after dropping to user mosquitto."""
    if os.geteuid() == 0:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam("mosquitto")
            os.chown(path, entry.pw_uid, entry.pw_gid)


def _device(seen: Collector) -> str:
    ready = seen.wait_for("homie/+/$state", READY_S)
    wait_for(
        lambda: any(m.payload == b"ready" for m in seen.received("homie/+/$state")), READY_S, "$state ready"
    )
    return ready.topic.split("/")[1]


def _settable(seen: Collector, device: str) -> tuple[str, str, str]:
    """(property topic, current value, a different allowed value) of a settable enum property."""
    for message in seen.received(f"homie/{device}/+/+/$settable"):
        if message.payload != b"true":
            continue
        prop = message.topic.rsplit("/", 1)[0]
        datatype = seen.received(f"{prop}/$datatype")
        fmt = seen.received(f"{prop}/$format")
        values = seen.received(prop)
        if datatype and datatype[-1].payload == b"enum" and fmt and values:
            current = values[-1].payload.decode()
            choices = [c for c in fmt[-1].payload.decode().split(",") if c != current]
            if choices:
                return prop, current, choices[0]
    raise AssertionError(f"no settable enum property of {device} with a value and a format")


@pytest.fixture(scope="module")
def home_assistant(topology: Topology) -> Collector:
    """Home Assistant's view: everything under homie/ and homeassistant/ since the start."""
    client = topology.broker.client("homeassistant", protocol=mqtt.MQTTv5)
    return Collector(client, "homie/#", "homeassistant/#")


@pytest.fixture(scope="module")
def device(home_assistant: Collector) -> str:
    def ready() -> list[mqtt.MQTTMessage]:
        return [m for m in home_assistant.received("homie/+/$state") if m.payload == b"ready"]

    return wait_for(ready, READY_S, "a device with $state ready")[0].topic.split("/")[1]


def test_the_bridge_publishes_the_simulated_unit_to_home_assistant(
    home_assistant: Collector, device: str
) -> None:
    """sim -> bridge -> broker -> Home Assistant with compose's commands, TLS, passwords and ACL."""
    assert device.startswith("aurora-")

    def values() -> list[mqtt.MQTTMessage]:
        topics = home_assistant.received(f"homie/{device}/+/+")
        return [m for m in topics if not m.topic.split("/")[2].startswith("$")]

    wait_for(values, READY_S, "a property value")
    health = json.loads(home_assistant.wait_for(f"homie/{device}/$health", READY_S).payload)
    assert isinstance(health, dict)
    discovery = home_assistant.wait_for("homeassistant/#", READY_S)
    assert device in discovery.topic or device.encode() in discovery.payload


def test_a_set_from_home_assistant_reaches_the_unit_and_comes_back(
    home_assistant: Collector, device: str
) -> None:
    """Home Assistant -> /set -> bridge -> simulated unit -> the new value is published."""
    prop, _current, wanted = _settable(home_assistant, device)
    publish(home_assistant.client, f"{prop}/set", wanted)
    wait_for(
        lambda: home_assistant.received(prop)[-1].payload.decode() == wanted, SET_S, f"{prop} = {wanted}"
    )


@pytest.mark.skipif(
    importlib.util.find_spec("aurora.rpc_client") is None,
    reason="aurora.rpc_client (the MQTT side of aurora_fetch) is not importable yet",
)
def test_fetch_reads_registers_through_the_bridge(topology: Topology, device: str) -> None:
    """`docker compose run --rm fetch 745-747`: JSON RPC on fetch's own request/response topics."""
    out = topology.run_once("fetch", "745-747")
    assert re.search(r"\b745\b", out) and re.search(r"\b747\b", out), out


def test_the_web_tool_logs_in_and_shows_the_device(topology: Topology, device: str) -> None:
    """web -> broker as user web: the login password from its file, the Homie tree in /api/state."""
    web = f"http://127.0.0.1:{topology.local.ports['4567']}"
    wait_for(lambda: _answers(f"{web}/login"), READY_S, "the web tool's login page")
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = urllib.parse.urlencode({"password": topology.broker.password("web-ui"), "next": "/"}).encode()
    with opener.open(urllib.request.Request(f"{web}/login", data=form, headers={"Origin": web}), timeout=10):
        pass

    def state_has_device() -> bool:
        with opener.open(f"{web}/api/state", timeout=10) as reply:
            return device in reply.read().decode()

    wait_for(state_has_device, READY_S, f"{device} in the web tool's /api/state")


@pytest.mark.parametrize("name", ["broker", "sim", "bridge", "web"])
def test_each_compose_healthcheck_passes(topology: Topology, device: str, name: str) -> None:
    """The healthcheck commands in compose.yaml, run against the local processes. (Here every
    process shares one network namespace, so `connected 8883` also sees other clients' connections;
    in the bridge's container it sees only the bridge's.)"""
    wait_for(lambda: topology.healthy(name), 30, f"{name} healthy")


def test_no_service_is_configured_by_an_old_variable_name(topology: Topology, device: str) -> None:
    """compose.yaml gives the tools their variables by the names of docs/configuration.md: none of
    them warns of a name from before (each tool warns at start-up, before it serves)."""
    web = f"http://127.0.0.1:{topology.local.ports['4567']}"
    wait_for(lambda: _answers(f"{web}/login"), READY_S, "the web tool's login page")
    topology.run_once("fetch", "745")
    logs = {path.name: path.read_text(errors="replace") for path in topology.logs.glob("*.log")}
    assert {"setup.log", "bridge.log", "web.log", "fetch.log"} <= set(logs)
    assert "bridge_ready" in logs["bridge.log"]  # the logs are the tools' own
    assert [] == [name for name, text in logs.items() if "deprecated_variable" in text]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
