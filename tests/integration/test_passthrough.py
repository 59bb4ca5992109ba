"""``$modbus`` through the real broker: the bridge and the sim as processes, tools as MQTT clients.

One broker, one paced sim and one bridge serve the module (starting them takes seconds); tests
that need another bridge (``--allow-raw-writes``) start their own. Every wait has a deadline;
a message that must not arrive is shown absent behind a later one on the same path.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aurora import rpc
from aurora.errors import BusError, IllegalAddress, UsageError, WriteRefused
from aurora.mqtt import MqttSettings
from aurora.rpc_client import MqttBus
from aurora.sim.cli import demo_registers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support import Broker, Collector, MQTTv5, MQTTv311, RestartableBroker, publish, wait_for
from tests.support.bridge import BIN, READY_S, Bridge
from tests.support.bridge import DEMO_ID as DEVICE
from tests.support.sim import Sim, write_log

pytestmark = pytest.mark.integration

ROOT = f"homie/{DEVICE}"
BASE = f"{ROOT}/$modbus"
REPLY_S = 10.0
REGS = demo_registers()


@dataclass
class Stack:
    broker: Broker
    sim: Sim
    bridge: subprocess.Popen[bytes]
    writes: Path
    log: Path

    def settings(self, user: str = "fetch", path: str = BASE) -> MqttSettings:
        return MqttSettings.from_url(
            self.broker.url(user, path),
            password_file=str(self.broker.password_file(user)),
            ca_file=str(self.broker.ca_file),
        )

    def env(self, user: str = "fetch") -> dict[str, str]:
        return {
            "AURORA_MQTT_PASSWORD_FILE": str(self.broker.password_file(user)),
            "AURORA_MQTT_CA_FILE": str(self.broker.ca_file),
        }

    def written(self) -> list[tuple[int, int]]:
        return write_log(self.writes)


@contextlib.contextmanager
def bridge_stack(tmp: Path, *extra: str) -> Iterator[Stack]:
    """mosquitto, the demo sim over TCP (writes logged) and a bridge, ready."""
    writes = tmp / "writes.log"
    with (
        Broker.start(tmp) as broker,
        Sim.start(tmp, "--tcp", "127.0.0.1:0", "--no-drift", "--write-log", str(writes)) as sim,
        Bridge.start(tmp, broker, sim.url, *extra) as bridge,
    ):
        yield Stack(broker, sim, bridge.process, writes, bridge.log)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with bridge_stack(tmp_path_factory.mktemp("passthrough")) as running_stack:
        yield running_stack


class RpcClient:
    """A raw paho client of one user speaking the JSON protocol on its own topics."""

    def __init__(self, broker: Broker, user: str = "fetch", protocol: mqtt.MQTTProtocolVersion = MQTTv311):
        self.client_id = f"{user}-{uuid.uuid4().hex[:12]}"
        self.client = broker.client(user, self.client_id, protocol)
        self.protocol = protocol
        self.request_topic = rpc.request_topic(BASE, user, self.client_id)
        self.write_topic = rpc.write_topic(BASE, user, self.client_id)
        self.response_topic = rpc.response_topic(BASE, user, self.client_id)
        # Subscribed to every client's replies: the ACL must deliver only our own.
        self.replies = Collector(self.client, f"{BASE}/response/#")

    def send(self, payload: bytes | dict[str, Any], properties: Properties | None = None) -> None:
        """A dict with ``op: write`` goes to the write topic, as MqttBus sends it; the rest (and
        raw bytes) to the request topic."""
        data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        writing = isinstance(payload, dict) and payload.get("op") == "write"
        topic = self.write_topic if writing else self.request_topic
        info = self.client.publish(topic, data, qos=1, properties=properties)
        info.wait_for_publish(REPLY_S)

    def call(self, payload: bytes | dict[str, Any], properties: Properties | None = None) -> mqtt.MQTTMessage:
        """Send one request and return the next reply."""
        count = len(self.replies.messages) + 1
        self.send(payload, properties)
        return self.replies.wait_for(self.response_topic, REPLY_S, count=count)


def body(msg: mqtt.MQTTMessage) -> Any:
    return json.loads(msg.payload)


# ------------------------------------------------------------------ the original's three topics


def test_a_query_on_modbus_is_answered_per_register_in_the_originals_form(stack: Stack) -> None:
    """docs/architecture.md#modbus-passthrough, the README's example session, byte for byte."""
    admin = Collector(stack.broker.client("admin"), f"{BASE}/+")
    publish(admin.client, BASE, "745-747")
    lines = {n: admin.wait_for(f"{BASE}/{n}", REPLY_S).payload.decode() for n in (745, 746, 747)}
    assert "Heating Set Point (745): 68.0°F" == lines[745]
    assert lines[746].startswith("Cooling Set Point (746): ") and lines[746].endswith("°F")
    assert lines[747].startswith("Ambient Temperature (747): ")
    assert not any(m.retain for m in admin.messages)


def test_getregs_is_answered_on_the_shared_response_topic(stack: Stack) -> None:
    """docs/architecture.md#modbus-passthrough: ``id:values`` in request order, duplicates kept (the
    original's P3 fix)."""
    admin = Collector(stack.broker.client("admin"), f"{BASE}/getregs/response")
    publish(admin.client, f"{BASE}/getregs", "5b0e:745,3;813;745")
    reply = admin.wait_for(f"{BASE}/getregs/response", REPLY_S).payload.decode()
    assert f"5b0e:{REGS[745]},{REGS[746]},{REGS[747]},{REGS[813]},{REGS[745]}" == reply


def test_a_set_on_modbus_writes_decimal_and_hex_and_publishes_the_read_back(stack: Stack) -> None:
    """docs/architecture.md#modbus-passthrough: decimal as before; ``0x2`` is 2 (the original wrote 0, P1)."""
    admin = Collector(stack.broker.client("admin"), f"{BASE}/340")
    before = len(stack.written())
    publish(admin.client, f"{BASE}/340/set", "4")
    assert "Blower Only Speed (340): 4" == admin.wait_for(f"{BASE}/340", REPLY_S).payload.decode()
    publish(admin.client, f"{BASE}/340/set", "0x2")
    assert "Blower Only Speed (340): 2" == admin.wait_for(f"{BASE}/340", REPLY_S, count=2).payload.decode()
    wait_for(lambda: len(stack.written()) >= before + 2, REPLY_S, "both writes in the sim's log")
    assert [(340, 4), (340, 2)] == stack.written()[before:]


def test_a_hex_set_writes_that_word_when_raw_writes_are_allowed(tmp_path: Path) -> None:
    """P1 exactly: ``0x5555`` is 0x5555, and only ``--allow-raw-writes`` lets it past the map."""
    with bridge_stack(tmp_path, "--allow-raw-writes") as raw:
        admin = Collector(raw.broker.client("admin"), f"{BASE}/340")
        publish(admin.client, f"{BASE}/340/set", "0x5555")
        assert "Blower Only Speed (340): 21845" == admin.wait_for(f"{BASE}/340", REPLY_S).payload.decode()
        assert [(340, 0x5555)] == wait_for(raw.written, REPLY_S, "the write in the sim's log")


def test_a_valid_query_does_not_hold_up_other_clients(stack: Stack) -> None:
    """K2: the original held the bus for all 42 reads of `valid`; here another client's request
    is answered while the query has published only a few of its lines."""
    admin = Collector(stack.broker.client("admin"), f"{BASE}/+")
    client = RpcClient(stack.broker)
    publish(admin.client, BASE, "valid")
    reply = body(client.call({"id": "quick", "op": "read", "registers": [745]}))
    assert [REGS[745]] == reply["values"]
    lines_before_reply = len(admin.received(f"{BASE}/+"))  # lines stream in chunk by chunk

    def published() -> int | None:
        for line in stack.log.read_text().splitlines():
            if '"modbus_query_done"' in line and '"query": "valid"' in line:
                return int(json.loads(line)["published"])
        return None

    count = wait_for(published, READY_S, "the end of the valid query in the bridge's log")
    admin.wait_for(f"{BASE}/+", READY_S, count=count)
    lines = {m.topic.rsplit("/", 1)[1]: m.payload.decode() for m in admin.received(f"{BASE}/+")}
    assert count == len(lines)  # one message per register, none twice
    assert lines_before_reply < count // 2, "the other client waited for most of the query"
    assert "Heating Set Point (745): 68.0°F" == lines["745"]
    assert len(lines) > 1000
    assert stack.bridge.poll() is None


# ------------------------------------------------------------------ the JSON protocol


@pytest.mark.parametrize("protocol", [MQTTv311, MQTTv5], ids=["mqtt311", "mqtt5"])
def test_a_json_read_is_answered_on_the_clients_own_topic(stack: Stack, protocol: Any) -> None:
    client = RpcClient(stack.broker, "fetch", protocol)
    reply = client.call({"id": "r1", "op": "read", "ranges": [[745, 3], [813, 1]]})
    assert {"id": "r1", "ok": True, "values": [REGS[745], REGS[746], REGS[747], REGS[813]]} == body(reply)
    assert not reply.retain


def test_an_mqtt5_request_gets_its_correlation_data_back(stack: Stack) -> None:
    """mosquitto_rr and every MQTT 5 client match replies by correlation data, not by payload."""
    client = RpcClient(stack.broker, "web", MQTTv5)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = client.response_topic
    props.CorrelationData = b"\x00\x01corr"
    reply = client.call({"op": "query", "query": "745", "decode": True}, props)
    assert b"\x00\x01corr" == reply.properties.CorrelationData
    answer = body(reply)
    assert (None, True) == (answer["id"], answer["ok"])
    assert {"name": "Heating Set Point", "value": 68.0, "unit": "°F", "text": "68.0°F"} == answer["decoded"][
        "745"
    ]


def test_an_mqtt5_response_topic_elsewhere_is_refused_on_the_clients_own_topic(stack: Stack) -> None:
    client = RpcClient(stack.broker, "fetch", MQTTv5)
    spy = Collector(stack.broker.client("admin"), f"{ROOT}/zone1/#")
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = f"{ROOT}/zone1/target-mode/set"
    reply = client.call({"id": "evil", "op": "read", "registers": [745]}, props)
    assert ("evil", "bad_request") == (body(reply)["id"], body(reply)["error"]["code"])
    spy.barrier(f"{ROOT}/$state")
    assert [] == spy.received(f"{ROOT}/zone1/target-mode/set")


@pytest.mark.parametrize(
    ("request_body", "code"),
    [
        ({"id": "a", "op": "read", "registers": [5000]}, "illegal_address"),
        ({"id": "b", "op": "write", "writes": [[105, 0x4142]]}, "write_refused"),
        ({"id": "c", "op": "read", "registers": [70000]}, "bad_request"),
        ({"id": "d", "op": "dance"}, "bad_request"),
    ],
)
def test_every_failure_is_an_error_reply_with_a_code(stack: Stack, request_body: Any, code: str) -> None:
    reply = body(RpcClient(stack.broker, "admin").call(request_body))
    assert (request_body["id"], False, code) == (reply["id"], reply["ok"], reply["error"]["code"])
    assert reply["error"]["message"]


def test_a_write_outside_the_map_is_refused_and_never_reaches_the_sim(stack: Stack) -> None:
    """S1: the serial number, factory settings and component configuration stay untouched."""
    before = stack.written()
    bus = MqttBus.connect(stack.settings("admin"))
    try:
        with pytest.raises(WriteRefused, match="105"):
            bus.write_register(105, 0x4142)
        with pytest.raises(WriteRefused, match="340"):
            bus.write_registers([(340, 3), (340, 99)])
        admin = Collector(stack.broker.client("admin"), f"{BASE}/+")
        publish(admin.client, f"{BASE}/105/set", "0x4142")
        # A legal write afterwards is the barrier: writes run in order on the bus.
        assert {340: 3} == bus.write_registers([(340, 3)], readback=True)
        wait_for(lambda: len(stack.written()) > len(before), REPLY_S, "the legal write in the sim's log")
        assert [(340, 3)] == stack.written()[len(before) :]
        assert [REGS[a] for a in range(105, 110)] == bus.read_ranges([(105, 5)])
        assert [] == admin.received(f"{BASE}/105")
    finally:
        bus.close()


# ------------------------------------------------------------------ many clients


def test_twenty_clients_at_once_each_get_only_their_own_right_replies(stack: Stack) -> None:
    """The ACL's %c patterns and the bridge's per-client topics keep every answer private."""
    clients = [
        RpcClient(stack.broker, "fetch" if n % 2 else "web", MQTTv5 if n % 3 else MQTTv311) for n in range(20)
    ]
    addresses = [745, 746, 747, 813, 1110, 1111, 1114, 1117, 31003, 31005]
    expected: dict[str, list[int]] = {}
    go = threading.Barrier(len(clients))

    def run(n: int, client: RpcClient) -> None:
        go.wait(REPLY_S)
        for k in range(5):
            picked = [addresses[(n + k + j) % len(addresses)] for j in range(3)]
            rid = f"{client.client_id}-{k}"
            expected[rid] = [REGS[a] for a in picked]
            client.send({"id": rid, "op": "read", "registers": picked})

    threads = [threading.Thread(target=run, args=(n, c)) for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(REPLY_S)
    for client in clients:
        client.replies.wait_for(client.response_topic, REPLY_S, count=5)
    for client in clients:
        client.replies.barrier(f"{ROOT}/$state")
        got = client.replies.messages
        assert {client.response_topic} == {m.topic for m in got if m.topic != f"{ROOT}/$state"}
        replies = [body(m) for m in got if m.topic == client.response_topic]
        assert 5 == len(replies)
        for reply in replies:
            assert reply["id"].startswith(client.client_id)
            assert expected[reply["id"]] == reply["values"]


def test_mqtt_bus_is_thread_safe_with_several_requests_in_flight(stack: Stack) -> None:
    bus = MqttBus.connect(stack.settings("web"), client_prefix="web")
    try:
        results: dict[int, list[int]] = {}

        def read(address: int) -> None:
            results[address] = bus.read_registers([address, address + 1])

        starts = [a for a in sorted(REGS) if a + 1 in REGS][:10]
        threads = [threading.Thread(target=read, args=(a,)) for a in starts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(REPLY_S * 2)
        assert {a: [REGS[a], REGS[a + 1]] for a in starts} == results
        answer = bus.query("745-747,5000", decode=True, skip_missing=True)
        assert {745, 746, 747} == set(answer.values)
        assert isinstance(answer.failed[5000], IllegalAddress)
        assert "Heating Set Point" == answer.decoded[745]["name"]
        cached = bus.query("1110-1111", max_age_s=60)  # the bridge polls the water temperatures
        assert (2, 0) == (cached.cached, cached.transactions)
        assert {1110: REGS[1110], 1111: REGS[1111]} == cached.values
    finally:
        bus.close()


def test_mqtt_bus_over_mqtt311_matches_replies_by_id(stack: Stack) -> None:
    """Without MQTT 5 properties the echoed id is all a client has to find its reply."""
    bus = MqttBus.connect(stack.settings("fetch"), protocol=MQTTv311)
    try:
        assert [REGS[745], REGS[746], REGS[813]] == bus.read_ranges([(745, 2), (813, 1)])
        assert [REGS[745]] == bus.read_holding(745, 1)
        with pytest.raises(IllegalAddress):
            bus.read_registers([5000])
        assert DEVICE == bus.ping()["device"]
    finally:
        bus.close()


# ------------------------------------------------------------------ fuzz

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
_requests = st.one_of(
    st.binary(max_size=120),
    _json.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"op": st.sampled_from(["read", "query", "write", "ping", "erase", ""])},
        optional={
            k: _json
            for k in (
                "id",
                "ranges",
                "registers",
                "holding",
                "query",
                "decode",
                "max_age_s",
                "writes",
                "readback",
                "extra",
            )
        },
    ).map(lambda d: json.dumps(d).encode()),
)


def test_fuzzed_requests_on_every_topic_get_error_replies_and_write_nothing(stack: Stack) -> None:
    """Every malformed JSON request gets exactly one error reply; the original's topics refuse
    quietly; nothing is written and the bridge keeps running."""
    client = RpcClient(stack.broker, "fetch", MQTTv5)
    admin = Collector(stack.broker.client("admin"), f"{BASE}/340")
    before = stack.written()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        payload=_requests,
        legacy_query=st.binary(max_size=40),
        getregs=st.binary(max_size=40),
        set_level=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Cn")), max_size=8),
        set_payload=st.binary(max_size=12),
    )
    def one_round(
        payload: bytes, legacy_query: bytes, getregs: bytes, set_level: str, set_payload: bytes
    ) -> None:
        try:
            parsed: object = rpc.parse_request(payload)
        except rpc.BadRequest:
            parsed = None
        replies = len(client.replies.messages)
        reply = body(client.call(payload))  # on fetch's request topic, whatever the op
        if parsed is None:
            assert (False, "bad_request") == (reply["ok"], reply["error"]["code"])
        elif isinstance(parsed, rpc.WriteRequest):  # even a legal write: not on a read topic
            assert (False, "write_refused") == (reply["ok"], reply["error"]["code"])
        publish(admin.client, BASE, legacy_query)
        publish(admin.client, f"{BASE}/getregs", getregs)
        level = set_level if set_level and not set(set_level) & set("/+#") else "105"
        if level.isascii() and level.isdigit():
            level = "105"  # the serial number: never writable, whatever the value
        publish(admin.client, f"{BASE}/{level}/set", set_payload)
        assert replies + 1 == len(client.replies.messages)  # exactly one reply, and only ours

    one_round()
    # Barrier: the admin's messages are handled in order and writes run in order, so once this
    # legal write is in the sim's log, everything the fuzz sent has been dealt with.
    publish(admin.client, f"{BASE}/340/set", "2")
    admin.wait_for(f"{BASE}/340", REPLY_S)
    wait_for(lambda: len(stack.written()) > len(before), REPLY_S, "the barrier write in the sim's log")
    assert [(340, 2)] == stack.written()[len(before) :]
    assert stack.bridge.poll() is None
    assert [REGS[745]] == body(client.call({"id": "after", "op": "read", "registers": [745]}))["values"]
    assert "Traceback" not in stack.log.read_text()


# ------------------------------------------------------------------ aurora_fetch through the broker


def test_fetch_through_mqtt_prints_exactly_what_the_direct_path_prints(stack: Stack, tmp_path: Path) -> None:
    query = "745-747,813,1146,25,30,31003"
    with Sim.start(tmp_path, "--tcp", "127.0.0.1:0", "--no-drift") as direct_sim:
        direct = subprocess.run(
            [str(BIN / "aurora_fetch"), direct_sim.url, query], capture_output=True, text=True, timeout=60
        )
    assert 0 == direct.returncode, direct.stderr
    url = stack.broker.url("fetch", BASE)
    through = subprocess.run(
        [str(BIN / "aurora_fetch"), url, query],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **stack.env("fetch")},
    )
    assert 0 == through.returncode, through.stderr
    assert direct.stdout == through.stdout
    assert "Heating Set Point (745): 68.0°F" in through.stdout


def test_fetch_through_the_broker_names_a_register_the_unit_lacks(stack: Stack) -> None:
    """The same one line as on a direct line: the register, and the option that skips it."""
    done = subprocess.run(
        [str(BIN / "aurora_fetch"), stack.broker.url("fetch", BASE), "745-747,5000"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **stack.env("fetch")},
    )
    assert 1 == done.returncode
    expected = (
        "aurora_fetch: register 5000 is not on this unit (illegal data address); "
        "--ignore-missing-registers skips it\n"
    )
    assert expected == done.stderr


def test_fetch_finds_the_only_device_when_the_url_names_none(stack: Stack) -> None:
    for path in ("", "homie"):
        done = subprocess.run(
            [str(BIN / "aurora_fetch"), stack.broker.url("fetch", path), "745"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **stack.env("fetch")},
        )
        assert 0 == done.returncode, done.stderr
        assert "Heating Set Point (745): 68.0°F\n" == done.stdout


def test_with_two_devices_and_no_device_in_the_url_fetch_names_them(stack: Stack) -> None:
    other = "homie/aurora-999/$state"
    bridge_user = stack.broker.client("bridge")
    publish(bridge_user, other, "lost", retain=True)
    try:
        done = subprocess.run(
            [str(BIN / "aurora_fetch"), stack.broker.url("fetch"), "745"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **stack.env("fetch")},
        )
        assert 2 == done.returncode
        assert "aurora-2611000042 (ready)" in done.stderr and "aurora-999 (lost)" in done.stderr
        with pytest.raises(UsageError, match="2 aurora devices"):
            MqttBus.connect(stack.settings("fetch", "homie"))
    finally:
        publish(bridge_user, other, "", retain=True)


# ------------------------------------------------------------------ a broker restart (R5)


def test_after_a_broker_restart_every_modbus_topic_and_client_works_again(tmp_path: Path) -> None:
    """docs/architecture.md#original-bridge R5: the original never subscribed to $modbus again after a
    reconnect."""
    writes = tmp_path / "writes.log"
    with (
        RestartableBroker.started(tmp_path) as broker,
        Sim.start(tmp_path, "--tcp", "127.0.0.1:0", "--no-drift", "--write-log", str(writes)) as sim,
        Bridge.start(tmp_path, broker, sim.url) as bridge,
    ):
        settings = MqttSettings.from_url(
            broker.url("fetch", BASE),
            password_file=str(broker.password_file("fetch")),
            ca_file=str(broker.ca_file),
        )
        bus = MqttBus.connect(settings)
        try:
            broker.restart()
            state = Collector(broker.client("homeassistant"), f"{ROOT}/$state")
            wait_for(lambda: any(m.payload == b"ready" for m in state.messages), READY_S, "ready again")

            def answered() -> list[int] | None:
                try:
                    return bus.read_registers([745])
                except BusError:  # our own client is still reconnecting
                    return None

            assert [REGS[745]] == wait_for(answered, READY_S, "a read through the restarted broker")
            admin = Collector(broker.client("admin"), f"{BASE}/+")
            publish(admin.client, BASE, "745")
            assert (
                "Heating Set Point (745): 68.0°F" == admin.wait_for(f"{BASE}/745", REPLY_S).payload.decode()
            )
            publish(admin.client, f"{BASE}/340/set", "1")
            admin.wait_for(f"{BASE}/340", REPLY_S)
            assert (340, 1) in wait_for(
                lambda: [w for w in write_log(writes) if w == (340, 1)], REPLY_S, "write"
            )
            assert bridge.process.poll() is None
        finally:
            bus.close()


def test_a_wrong_password_or_a_missing_bridge_is_a_clear_connection_error(
    stack: Stack, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    done = subprocess.run(
        [str(BIN / "aurora_fetch"), stack.broker.url("fetch", BASE), "745"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **stack.env("fetch"), "AURORA_MQTT_PASSWORD_FILE": str(wrong)},
    )
    assert 1 == done.returncode
    assert "refused the login as fetch" in done.stderr
    assert "not-the-password" not in done.stderr + done.stdout
    with pytest.raises(BusError, match="no answer from the bridge of aurora-1 "):
        MqttBus.connect(stack.settings("fetch", "homie/aurora-1/$modbus"), timeout_s=1.0)


def test_a_json_write_updates_the_homie_value_without_waiting_for_a_poll(tmp_path: Path) -> None:
    """Home Assistant sees a raw write at once, not an interval later (polls here are an hour apart)."""
    slow = ["--fast-interval", "3600", "--medium-interval", "3600", "--slow-interval", "3600"]
    with bridge_stack(tmp_path, *slow) as quiet:
        topic = f"{ROOT}/blower/blower-only-speed"
        watch = Collector(quiet.broker.client("homeassistant"), topic)
        first = watch.wait_for(topic, REPLY_S).payload.decode()
        wanted = "5" if first != "5" else "6"
        client = RpcClient(quiet.broker, "admin")
        reply = body(client.call({"id": "w", "op": "write", "writes": [[340, int(wanted)]]}))
        assert reply["ok"], reply
        assert wanted == watch.wait_for(topic, REPLY_S, count=2).payload.decode()
