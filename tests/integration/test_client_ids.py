"""No account can take the bridge's client id: takeover attempts by every account, the bridge kept.

mosquitto closes the older of two connections with one client id, whoever logs in second, and its
password file and ACL cannot tie an id to a user (mosquitto/README.md). The bridge's id is
therefore one that only its password gives (``aurora.mqtt.bridge_client_id``). Here every account
connects under every id it could know or work out; the bridge must keep its connection (no
``lost``, no reconnect) and still answer. A last control connects under the real id, to show that
these checks do see a takeover when there is one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aurora.mqtt import MqttSettings, bridge_client_id
from aurora.rpc_client import MqttBus

from tests.support import Broker, Collector, MQTTv5, MQTTv311, publish, wait_for
from tests.support.bridge import DEMO_ID as DEVICE
from tests.support.bridge import Bridge
from tests.support.sim import Sim

pytestmark = pytest.mark.integration

USERS = ("bridge", "fetch", "web", "homeassistant", "admin", "healthcheck")
SERIAL = DEVICE.removeprefix("aurora-")
ROOT = f"homie/{DEVICE}"
STATE = f"{ROOT}/$state"


@dataclass
class Stack:
    broker: Broker
    bridge: Bridge
    states: Collector  # homeassistant's view of $state, subscribed before any attempt

    @property
    def real_id(self) -> str:
        return bridge_client_id(SERIAL, "bridge", self.broker.password("bridge"))

    def lost(self) -> list[bytes]:
        return [m.payload for m in self.states.received(STATE) if m.payload == b"lost"]

    def bridge_events(self, event: str) -> int:
        count = 0
        for line in self.bridge.log.read_text(errors="replace").splitlines():
            try:
                count += json.loads(line).get("event") == event
            except (json.JSONDecodeError, AttributeError):
                continue
        return count

    def ping(self, user: str = "fetch") -> dict[str, object]:
        settings = MqttSettings.from_url(
            self.broker.url(user, f"{ROOT}/$modbus"),
            password_file=str(self.broker.password_file(user)),
            ca_file=str(self.broker.ca_file),
        )
        bus = MqttBus.connect(settings, timeout_s=10.0)
        try:
            return bus.ping()
        finally:
            bus.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("client-ids")
    with (
        Broker.start(tmp) as broker,
        Sim.start(tmp, "--tcp", "127.0.0.1:0", "--no-drift") as sim,
    ):
        states = Collector(broker.client("homeassistant"), STATE)
        # --debug-modbus: paho's DEBUG lines too (its CONNECT line names the client id).
        with Bridge.start(tmp, broker, sim.url, "--debug-modbus") as bridge:
            yield Stack(broker, bridge, states)


def _guesses(broker: Broker, user: str) -> list[str]:
    """Every bridge id an account could know or work out with what it has.

    For the ``bridge`` account itself: the bridge of another heat pump sharing the account (who
    holds the bridge's password is the bridge, and can work out its id).
    """
    own = broker.password(user)
    if user == "bridge":
        return [f"bridge-{SERIAL}", bridge_client_id("2611000043", "bridge", own)]
    return [
        f"bridge-{SERIAL}",  # the id before this fix, the one the field reports took over
        "bridge",
        DEVICE,
        f"bridge-{SERIAL}-",
        bridge_client_id(SERIAL, "bridge", own),  # the derivation, with the only password it has
        bridge_client_id(SERIAL, user, own),
        bridge_client_id(SERIAL, None, None),
    ]


@pytest.mark.parametrize("protocol", [MQTTv311, MQTTv5], ids=["mqtt311", "mqtt5"])
@pytest.mark.parametrize("user", USERS)
def test_no_account_takes_the_bridges_client_id(stack: Stack, user: str, protocol: int) -> None:
    connects = stack.bridge_events("mqtt_connected")
    for cid in _guesses(stack.broker, user):
        assert cid != stack.real_id
        intruder = stack.broker.client(user, cid, protocol)  # CONNACK: the broker took the login
        publish(intruder, f"{ROOT}/$aurora-probe", b"x")  # a round trip after the CONNECT
        intruder.disconnect()
        intruder.loop_stop()
    # The bridge still answers, over the connection it had before the attempts.
    assert stack.ping()["device"] == DEVICE
    assert stack.lost() == [], "the broker published the bridge's will: its connection was taken"
    assert stack.bridge_events("mqtt_disconnected") == 0
    assert stack.bridge_events("mqtt_connected") == connects
    broker_log = stack.broker.log.read_text(errors="replace")
    assert f"Client {stack.real_id} already connected" not in broker_log
    assert f"Client {stack.real_id} disconnected" not in broker_log


def test_no_account_can_read_the_bridges_client_id(stack: Stack) -> None:
    """The id never shows in a topic or payload (admin reads the most), nor in the bridge's log."""
    seen = Collector(stack.broker.client("admin"), "#")
    token = uuid.uuid4().hex.encode()
    publish(stack.broker.client("admin"), f"{ROOT}/$aurora-probe", token, retain=True)
    seen.barrier(f"{ROOT}/$aurora-probe", payload=token)
    # A request and its reply go by too (admin reads every client's replies).
    assert stack.ping()["device"] == DEVICE
    wait_for(lambda: any("/$modbus/response/" in m.topic for m in seen.messages), 10.0, "an RPC reply")
    secret = stack.real_id.rsplit("-", 1)[1]
    assert len(seen.messages) > 100  # the whole retained tree and discovery
    for message in seen.messages:
        assert secret not in message.topic
        assert secret.encode() not in bytes(message.payload)
    bridge_log = stack.bridge.log.read_text(errors="replace")
    assert "Sending CONNECT" in bridge_log
    assert "client_id=b'bridge-2611000042-\\u2026'" in bridge_log  # "…", as JSON writes it
    assert secret not in bridge_log


def test_control_the_real_id_would_take_the_connection(stack: Stack) -> None:
    """Whoever knows the id kicks the bridge: the checks above would have seen it. Runs last."""
    assert stack.lost() == []
    intruder = stack.broker.client("healthcheck", stack.real_id)
    try:
        wait_for(stack.lost, 15.0, "the bridge's will (lost) after a takeover with its real id")
        assert f"Client {stack.real_id} already connected" in stack.broker.log.read_text(errors="replace")
    finally:
        intruder.disconnect()
        intruder.loop_stop()
    # The bridge comes back on its own once the id is free again.
    wait_for(
        lambda: [m.payload for m in stack.states.received(STATE)][-1:] == [b"ready"],
        30.0,
        "$state ready again",
    )
    assert stack.ping()["device"] == DEVICE
