"""The broker's ACL as a matrix: every user against every kind of access, proven by delivery.

mosquitto grants every SUBSCRIBE and silently drops a refused MQTT 3.1.1 PUBLISH, so neither a
SUBACK nor a PUBACK says anything. Each case therefore watches what actually arrives: an allowed
message is awaited, and a refused one is shown absent once a later retained message has come
through the same subscriber (``Collector.barrier``). See mosquitto/README.md for the design.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.support import Broker, Collector, MqttRefused, MQTTv5, publish

pytestmark = pytest.mark.integration

USERS = ("bridge", "fetch", "web", "homeassistant", "admin", "healthcheck")
STATE_READERS = {"bridge", "fetch", "web", "homeassistant", "admin"}
RPC_USERS = {"bridge", "fetch", "web", "admin"}
WRITERS = {"bridge", "admin"}  # raw register writes, by any topic
SYS_MARKER = "$SYS/broker/version"  # retained by mosquitto itself


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with Broker.start(tmp_path_factory.mktemp("acl")) as broker:
        yield broker


@dataclass
class Scene:
    """One device id per test; a bridge client that sees everything; the user under test."""

    broker: Broker
    user: str
    device: str
    bridge: mqtt.Client
    observer: Collector  # a second bridge client, subscribed to homie/# and homeassistant/#
    client: mqtt.Client
    client_id: str

    @property
    def root(self) -> str:
        return f"homie/{self.device}"

    def sync(self, seen: Collector, reader: str) -> None:
        """Return once everything queued for ``seen`` (a client of ``reader``) has arrived."""
        if reader not in STATE_READERS:
            seen.barrier(SYS_MARKER)  # mosquitto's own retained topic; nothing else matches it
            return
        token = uuid.uuid4().hex.encode()
        publish(self.bridge, f"{self.root}/$state", token, retain=True)
        seen.barrier(f"{self.root}/$state", payload=token)

    def delivered_to_user(self, topic: str, subscribe: str) -> bool:
        """The bridge publishes ``topic``; did the user, subscribed to ``subscribe``, get it?"""
        seen = Collector(self.client, subscribe)
        token = uuid.uuid4().hex
        publish(self.bridge, topic, token)
        self.sync(seen, self.user)
        return any(m.payload == token.encode() for m in seen.received(topic))

    def delivered_from_user(self, topic: str) -> bool:
        """The user publishes ``topic``; did the broker pass it on to a subscriber?"""
        token = uuid.uuid4().hex
        publish(self.client, topic, token)
        self.sync(self.observer, "bridge")
        return any(m.payload == token.encode() for m in self.observer.received(topic))


@pytest.fixture
def scene_for(acl_broker: Broker) -> Iterator[Callable[[str], Scene]]:
    def make(user: str) -> Scene:
        device = f"aurora-{uuid.uuid4().hex[:8]}"
        bridge = acl_broker.client("bridge")
        publish(bridge, f"homie/{device}/$state", "ready", retain=True)
        observer = Collector(acl_broker.client("bridge"), "homie/#", "homeassistant/#")
        client_id = f"{user}-{uuid.uuid4().hex[:12]}"
        client = acl_broker.client(user, client_id)
        return Scene(acl_broker, user, device, bridge, observer, client, client_id)

    yield make
    # Three connections per scene and a few hundred scenes: left open they exhaust the test
    # process's file descriptors and the broker stops answering CONNECTs in time.
    acl_broker.close_clients()


def _other_id(user: str = "fetch") -> str:
    return f"{user}-{uuid.uuid4().hex[:12]}"


def _other_user(user: str) -> str:
    """Another RPC account than ``user``."""
    return "web" if user == "fetch" else "fetch"


# (what, who may, how it is checked)
CASES: dict[str, tuple[set[str], Callable[[Scene], bool]]] = {
    "read a property value": (
        STATE_READERS,
        lambda s: s.delivered_to_user(f"{s.root}/abc/entering-water-temperature", f"{s.root}/+/+"),
    ),
    "read the bridge health": (
        STATE_READERS,
        lambda s: s.delivered_to_user(f"{s.root}/$health", f"{s.root}/+"),
    ),
    "read the answers to /set ($write-result)": (
        STATE_READERS,
        lambda s: s.delivered_to_user(f"{s.root}/$write-result", f"{s.root}/+"),
    ),
    "write $write-result": ({"bridge", "admin"}, lambda s: s.delivered_from_user(f"{s.root}/$write-result")),
    "read Home Assistant discovery": (
        {"bridge", "homeassistant", "admin"},
        lambda s: s.delivered_to_user(f"homeassistant/climate/{s.device}/zone1/config", "homeassistant/#"),
    ),
    "read property attributes": (
        {"bridge", "web", "homeassistant", "admin"},
        lambda s: s.delivered_to_user(f"{s.root}/zone1/heating-target-temperature/$format", f"{s.root}/#"),
    ),
    "write a property /set": (
        {"bridge", "web", "homeassistant", "admin"},
        lambda s: s.delivered_from_user(f"{s.root}/zone1/target-mode/set"),
    ),
    "write $state": ({"bridge", "admin"}, lambda s: s.delivered_from_user(f"{s.root}/$state")),
    "raw $modbus register write": (
        {"bridge", "admin"},
        lambda s: s.delivered_from_user(f"{s.root}/$modbus/745/set"),
    ),
    "legacy $modbus query": ({"bridge", "admin"}, lambda s: s.delivered_from_user(f"{s.root}/$modbus")),
    "legacy $modbus getregs": (
        {"bridge", "admin"},
        lambda s: s.delivered_from_user(f"{s.root}/$modbus/getregs"),
    ),
    "read legacy $modbus queries": (
        {"bridge", "admin"},
        lambda s: s.delivered_to_user(f"{s.root}/$modbus", f"{s.root}/#"),
    ),
    "read legacy $modbus answers": (
        {"bridge", "admin"},
        lambda s: s.delivered_to_user(f"{s.root}/$modbus/745", f"{s.root}/#"),
    ),
    "send a request on its own request topic": (
        RPC_USERS,
        lambda s: s.delivered_from_user(f"{s.root}/$modbus/request/{s.user}/{s.client_id}"),
    ),
    "read its own responses": (
        RPC_USERS,
        lambda s: s.delivered_to_user(
            f"{s.root}/$modbus/response/{s.user}/{s.client_id}", f"{s.root}/$modbus/#"
        ),
    ),
    "send on its own write topic (raw writes)": (
        WRITERS,
        lambda s: s.delivered_from_user(f"{s.root}/$modbus/write/{s.user}/{s.client_id}"),
    ),
    "send on another client's write topic": (
        WRITERS,
        lambda s: s.delivered_from_user(f"{s.root}/$modbus/write/admin/{_other_id('admin')}"),
    ),
    "send a request as another client of its user": (
        {"bridge", "admin"},
        lambda s: s.delivered_from_user(f"{s.root}/$modbus/request/{s.user}/{_other_id(s.user)}"),
    ),
    "send a request as another user under its own client id": (
        {"bridge", "admin"},
        lambda s: s.delivered_from_user(f"{s.root}/$modbus/request/{_other_user(s.user)}/{s.client_id}"),
    ),
    "send on the request topic layout without a user level": (
        {"bridge", "admin"},
        lambda s: s.delivered_from_user(f"{s.root}/$modbus/request/{s.client_id}"),
    ),
    "read another client's responses": (
        {"bridge", "admin"},
        lambda s: s.delivered_to_user(f"{s.root}/$modbus/response/fetch/{_other_id()}", "homie/#"),
    ),
    "read another user's responses under its own client id": (
        {"bridge", "admin"},
        lambda s: s.delivered_to_user(
            f"{s.root}/$modbus/response/{_other_user(s.user)}/{s.client_id}", "homie/#"
        ),
    ),
    "write a property /set-like topic under $modbus": (
        {"bridge", "admin"},
        lambda s: s.delivered_from_user(f"{s.root}/$modbus/write/set"),
    ),
    "write Home Assistant discovery": (
        {"bridge"},
        lambda s: s.delivered_from_user(f"homeassistant/climate/{s.device}/zone1/config"),
    ),
    "write homeassistant/status": (
        {"bridge", "homeassistant"},
        lambda s: s.delivered_from_user("homeassistant/status"),
    ),
}


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("case", list(CASES))
def test_each_user_gets_exactly_the_access_the_acl_designs(
    scene_for: Callable[[str], Scene], case: str, user: str
) -> None:
    """A user with too much access can write registers or read other tools' replies; too little
    breaks a service. mosquitto/README.md's table is the design this matrix checks."""
    allowed, attempt = CASES[case]
    scene = scene_for(user)
    assert (user in allowed) == attempt(scene), f"{user}: {case}"


def test_only_the_healthcheck_user_reads_the_broker_version(
    scene_for: Callable[[str], Scene],
) -> None:
    """The healthcheck account exists to read one $SYS topic; $SYS is not under anyone's '#'."""
    for user in USERS:
        scene = scene_for(user)
        seen = Collector(scene.client, "$SYS/#")
        scene.sync(seen, user)
        assert (user == "healthcheck") == bool(seen.received(SYS_MARKER)), user


def test_a_client_id_with_a_wildcard_gets_no_rpc_rights(acl_broker: Broker) -> None:
    """With client id '#', 'response/%c' would read every reply; mosquitto refuses such ids in
    pattern rules, so the wildcard id reads nothing under $modbus while state still works."""
    device = f"aurora-{uuid.uuid4().hex[:8]}"
    bridge = acl_broker.client("bridge")
    publish(bridge, f"homie/{device}/$state", "ready", retain=True)
    for user in ("fetch", "web"):
        for wildcard_id in ("#", "+"):
            seen = Collector(acl_broker.client(user, wildcard_id), "homie/#")
            publish(bridge, f"homie/{device}/$modbus/response/{user}/{_other_id(user)}", "secret")
            token = uuid.uuid4().hex.encode()
            publish(bridge, f"homie/{device}/$state", token, retain=True)
            seen.barrier(f"homie/{device}/$state", payload=token)
            assert [] == seen.received(f"homie/{device}/$modbus/#"), (user, wildcard_id)


def test_a_refused_publish_is_reported_to_mqtt5_clients(acl_broker: Broker) -> None:
    """Under MQTT 5 a QoS 1 PUBLISH the ACL refuses is answered 'Not authorized', which is what a
    tool should show its user; under 3.1.1 it is dropped in silence (docs/architecture.md#broker)."""
    ha = acl_broker.client("homeassistant", protocol=MQTTv5)
    answers: list[str] = []
    ha.on_publish = lambda _c, _u, _mid, reason, _p: answers.append(str(reason))
    publish(ha, "homie/aurora-1/$modbus/745/set", "0")
    publish(ha, "homie/aurora-1/zone1/target-mode/set", "heat")
    refused, allowed = answers
    assert "Not authorized" == refused
    assert allowed in ("Success", "No matching subscribers")


@pytest.mark.parametrize(
    ("user", "password"),
    [(None, None), ("homeassistant", "wrong"), ("bridge", ""), ("nobody", "x")],
    ids=["anonymous", "wrong password", "empty password", "unknown user"],
)
def test_logins_without_a_valid_password_are_refused(
    acl_broker: Broker, user: str | None, password: str | None
) -> None:
    """allow_anonymous false and a password for every account."""
    with pytest.raises(MqttRefused, match="Not authorized"):
        acl_broker.client(user, password=password)


def test_a_client_that_does_not_trust_the_suite_ca_is_refused(acl_broker: Broker) -> None:
    """The broker's certificate comes from the suite's own CA, not a public one."""
    with pytest.raises(ssl.SSLCertVerificationError):
        acl_broker.client("homeassistant", ca_file=None)


def test_plain_text_mqtt_on_the_tls_port_gets_no_answer(acl_broker: Broker) -> None:
    """There is no plain-text listener; a plain CONNECT on the TLS port is dropped."""
    connect = bytes.fromhex("101000044d5154540402003c0004") + b"test"
    with socket.create_connection((acl_broker.host, acl_broker.tls_port), timeout=5) as sock:
        sock.sendall(connect)
        try:
            answer = sock.recv(16)
        except ConnectionResetError:
            answer = b""
        assert b"" == answer  # closed by the broker (EOF or reset), no CONNACK


def test_tls_is_1_2_or_newer(acl_broker: Broker) -> None:
    """tls_version tlsv1.2 is the minimum; a modern client negotiates TLS 1.3."""
    context = ssl.create_default_context(cafile=str(acl_broker.ca_file))
    with (
        socket.create_connection((acl_broker.host, acl_broker.tls_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection((acl_broker.host, acl_broker.tls_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert "TLSv1.2" == tls.version()


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto-clients not installed")
def test_the_broker_healthcheck_logs_in_with_its_options_file(acl_broker: Broker, tmp_path: Path) -> None:
    """compose.yaml's broker healthcheck: mosquitto_sub with XDG_CONFIG_HOME, no password in argv."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(acl_broker.layout.healthcheck_dir)}
    argv = ["mosquitto_sub", "-p", str(acl_broker.tls_port), "-t", SYS_MARKER, "-C", "1", "-W", "5"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert 0 == done.returncode, done.stderr
    assert done.stdout.startswith("mosquitto version")
