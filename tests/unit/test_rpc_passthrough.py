"""The bridge's ``$modbus`` pass-through without sockets: a real BusWorker over a DumpBus of the demo
unit, messages built the way paho hands them over, and a publish function that records."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aurora import rpc
from aurora.bridge.passthrough import PassThrough
from aurora.bridge.worker import BusWorker, Priority
from aurora.dump import DumpBus
from aurora.errors import BusTimeout
from aurora.render import render_line
from aurora.sim.cli import demo_registers
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = "homie/aurora-2611000042"
BASE = f"{ROOT}/$modbus"
WAIT_S = 5.0
REGS = demo_registers()  # the demo unit's words (slow to build: once per module)


@dataclass
class Sent:
    topic: str
    payload: str | bytes
    qos: int
    retain: bool
    properties: Properties | None

    def json(self) -> Any:
        return json.loads(self.payload)


class Recorder:
    """The bridge's publish(): records, never blocks."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._cond = threading.Condition()

    def __call__(
        self,
        topic: str,
        payload: str | bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        with self._cond:
            self.sent.append(Sent(topic, payload, qos, retain, properties))
            self._cond.notify_all()

    def on(self, topic: str) -> list[Sent]:
        with self._cond:
            return [s for s in self.sent if s.topic == topic]

    def wait(self, topic: str, count: int = 1, deadline_s: float = WAIT_S) -> list[Sent]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.on_unlocked(topic)) >= count, deadline_s):
                raise TimeoutError(f"no {count} messages on {topic}; got {[s.topic for s in self.sent]}")
            return self.on_unlocked(topic)

    def on_unlocked(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]


class GatedBus(DumpBus):
    """A DumpBus that records every call and can hold the worker inside a transaction."""

    def __init__(self, registers: Mapping[int, int]) -> None:
        super().__init__(registers)
        self.calls: list[tuple[str, Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def _values(self, function: int, addresses: Sequence[int]) -> list[int]:
        self.calls.append((f"fc{function}", tuple(addresses)))
        self.entered.set()
        self.gate.wait(WAIT_S)
        return super()._values(function, addresses)

    def write_register(self, address: int, value: int) -> None:
        self.calls.append(("write", (address, value)))
        super().write_register(address, value)


@dataclass
class Rig:
    bus: GatedBus
    worker: BusWorker
    sent: Recorder
    pt: PassThrough

    def hold(self) -> None:
        """Keep the worker busy in one transaction until ``release``."""
        self.bus.gate.clear()
        self.bus.entered.clear()
        self.worker.submit(lambda bus: bus.read_registers([1]), Priority.WRITE)
        assert self.bus.entered.wait(WAIT_S)

    def release(self) -> None:
        self.bus.gate.set()


def make_rig(**options: Any) -> Iterator[Rig]:
    bus = GatedBus(dict(REGS))
    worker = BusWorker(lambda: bus)
    worker.start()
    worker.submit(lambda bus: None).result(WAIT_S)  # the bridge detected the unit: the line is up
    sent = Recorder()
    pt = PassThrough(worker=worker, publish=sent, root=ROOT, **options)
    try:
        yield Rig(bus, worker, sent, pt)
    finally:
        bus.gate.set()
        worker.stop()


@pytest.fixture
def rig() -> Iterator[Rig]:
    yield from make_rig()


def message(
    topic: str,
    payload: bytes | str | dict[str, Any],
    *,
    retain: bool = False,
    v5: bool = False,
    correlation: bytes | None = None,
    response_topic: str | None = None,
) -> mqtt.MQTTMessage:
    """An incoming message as paho builds it (properties only on an MQTT 5 session)."""
    msg = mqtt.MQTTMessage(topic=topic.encode())
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    msg.payload = payload.encode() if isinstance(payload, str) else payload
    msg.retain = retain
    msg.qos = 1
    if v5:
        props = Properties(PacketTypes.PUBLISH)
        if correlation is not None:
            props.CorrelationData = correlation
        if response_topic is not None:
            props.ResponseTopic = response_topic
        msg.properties = props
    return msg


def ask(rig: Rig, client: str, body: dict[str, Any] | bytes, *, kind: str | None = None, **kw: Any) -> Sent:
    """Send one JSON request and wait for its one reply. ``client`` is ``<user>-<n>``; a write goes
    to its write topic (as the broker lets only writers do), anything else to its request topic."""
    user = client.split("-", 1)[0]
    if kind is None:
        kind = rpc.WRITE if isinstance(body, dict) and body.get("op") == "write" else rpc.REQUEST
    before = len(rig.sent.on(f"{BASE}/response/{user}/{client}"))
    rig.pt.handle(message(f"{BASE}/{kind}/{user}/{client}", body, **kw))
    return rig.sent.wait(f"{BASE}/response/{user}/{client}", before + 1)[before]


# ------------------------------------------------------------------ subscriptions


def test_the_bridge_subscribes_to_the_three_original_topics_and_the_request_topics(rig: Rig) -> None:
    expected = [BASE, f"{BASE}/getregs", f"{BASE}/+/set", f"{BASE}/request/+/+", f"{BASE}/write/+/+"]
    assert expected == rig.pt.subscriptions()


# ------------------------------------------------------------------ JSON requests


def test_a_read_is_answered_on_the_clients_own_topic_with_its_id(rig: Rig) -> None:
    reply = ask(rig, "fetch-1", {"id": "r1", "op": "read", "ranges": [[745, 3], [813, 1]]})
    regs = REGS
    assert {"id": "r1", "ok": True, "values": [regs[745], regs[746], regs[747], regs[813]]} == reply.json()
    assert (1, False) == (reply.qos, reply.retain)
    assert ("fc65", (745, 746, 747, 813)) == rig.bus.calls[-1]


def test_each_read_form_uses_its_function_code(rig: Rig) -> None:
    ask(rig, "fetch-1", {"id": 1, "op": "read", "registers": [813, 745]})
    ask(rig, "fetch-1", {"id": 2, "op": "read", "holding": [745, 2]})
    assert [("fc66", (813, 745)), ("fc3", (745, 746))] == rig.bus.calls[-2:]


def test_an_mqtt5_reply_carries_the_correlation_data(rig: Rig) -> None:
    reply = ask(rig, "fetch-1", {"op": "read", "registers": [745]}, v5=True, correlation=b"\x01corr")
    assert reply.properties is not None
    assert b"\x01corr" == reply.properties.CorrelationData
    assert "application/json" == reply.properties.ContentType
    assert reply.json()["ok"]


def test_a_response_topic_of_the_clients_own_is_honoured(rig: Rig) -> None:
    own = f"{BASE}/response/fetch/fetch-1"
    reply = ask(rig, "fetch-1", {"id": "a", "op": "ping"}, v5=True, correlation=b"c", response_topic=own)
    assert {"id": "a", "ok": True, "device": "aurora-2611000042"} == reply.json()


def test_a_foreign_response_topic_is_refused_and_nothing_is_published_there(rig: Rig) -> None:
    """Confused deputy: the bridge may write homie/#, so it must not write where a client says."""
    target = f"{ROOT}/zone1/target-mode/set"
    writes = len([c for c in rig.bus.calls if c[0] == "write"])
    reply = ask(
        rig, "fetch-1", {"id": "a", "op": "write", "writes": [[340, 3]]}, v5=True, response_topic=target
    )
    assert "bad_request" == reply.json()["error"]["code"]
    assert [] == rig.sent.on(target)
    assert writes == len([c for c in rig.bus.calls if c[0] == "write"])


def test_a_malformed_request_gets_an_error_reply_with_its_id(rig: Rig) -> None:
    reply = ask(rig, "fetch-1", {"id": "bad", "op": "read", "registers": [70000]})
    body = reply.json()
    assert ("bad", False, "bad_request") == (body["id"], body["ok"], body["error"]["code"])
    assert "65535" in body["error"]["message"]
    garbage = ask(rig, "fetch-1", b"\x00\xff not json")
    assert (None, "bad_request") == (garbage.json()["id"], garbage.json()["error"]["code"])


def test_an_unknown_register_is_an_illegal_address_error(rig: Rig) -> None:
    body = ask(rig, "fetch-1", {"id": "m", "op": "read", "registers": [5000]}).json()
    assert {"code": "illegal_address", "function": 66, "exception": 2} == {
        k: body["error"][k] for k in ("code", "function", "exception")
    }


def test_a_query_is_decoded_on_request(rig: Rig) -> None:
    body = ask(rig, "web-1", {"id": "q", "op": "query", "query": "745-746,1146", "decode": True}).json()
    regs = REGS
    assert {"745": regs[745], "746": regs[746], "1146": regs[1146], "1147": regs[1147]} == body["values"]
    assert {"745", "746", "1146"} == set(body["decoded"])
    assert "Heating Set Point" == body["decoded"]["745"]["name"]
    assert "°F" == body["decoded"]["745"]["unit"]
    assert regs[745] / 10 == body["decoded"]["745"]["value"]
    assert (0, 1, {}) == (body["cached"], body["transactions"], body["failed"])


def test_an_explicit_query_with_a_missing_register_fails_as_a_whole(rig: Rig) -> None:
    """As aurora_fetch does without --ignore-missing-registers (docs/protocol.md#fallback)."""
    body = ask(rig, "web-1", {"id": "q", "op": "query", "query": "745,5000"}).json()
    assert "illegal_address" == body["error"]["code"]


def test_a_query_with_skip_missing_lists_what_failed(rig: Rig) -> None:
    body = ask(
        rig, "web-1", {"id": "q", "op": "query", "query": "745,5000,5001-5002", "skip_missing": True}
    ).json()
    assert {"745": REGS[745]} == body["values"]
    assert {"5000-5002"} == set(body["failed"])  # consecutive equal failures share a range key
    assert {"illegal_address"} == {f["code"] for f in body["failed"].values()}
    # The chunk, its two items, the refused range's halves, then (both refused) its registers.
    assert 7 == body["transactions"]


def test_a_fresh_poll_cache_answers_without_the_bus(rig: Rig) -> None:
    now = time.monotonic()
    cache = {745: (111, now), 746: (222, now - 60)}
    for pt_rig in make_rig(cache=cache.get):
        body = ask(pt_rig, "web-1", {"id": "c", "op": "query", "query": "745-746", "max_age_s": 10}).json()
        assert {"745": 111, "746": REGS[746]} == body["values"]  # 746 was too old
        assert (1, 1) == (body["cached"], body["transactions"])
        assert ("fc66", (746,)) == pt_rig.bus.calls[-1]


def test_the_cache_is_not_used_for_a_register_written_since(rig: Rig) -> None:
    cache = {340: (1, time.monotonic())}
    for pt_rig in make_rig(cache=cache.get):
        ask(pt_rig, "web-1", {"id": "w", "op": "write", "writes": [[340, 3]]})
        body = ask(pt_rig, "web-1", {"id": "c", "op": "query", "query": "340", "max_age_s": 60}).json()
        assert ({"340": 3}, 0) == (body["values"], body["cached"])


def test_a_write_within_the_map_is_made_and_read_back(rig: Rig) -> None:
    body = ask(rig, "web-1", {"id": "w", "op": "write", "writes": [[340, 3]], "readback": True}).json()
    assert {"id": "w", "ok": True, "written": 1, "values": {"340": 3}} == body
    assert 3 == rig.bus.registers[340]


def test_a_write_outside_the_map_is_refused_and_nothing_is_written(rig: Rig) -> None:
    """S1: the original wrote anything anywhere (serial number, component configuration...)."""
    before = dict(rig.bus.registers)
    for writes in ([[340, 3], [105, 0x4142]], [[340, 9999]], [[800, 3]]):
        body = ask(rig, "web-1", {"id": "w", "op": "write", "writes": writes}).json()
        assert "write_refused" == body["error"]["code"], writes
    assert before == rig.bus.registers
    assert [] == [c for c in rig.bus.calls if c[0] == "write"]


def test_allow_raw_writes_lets_any_word_through() -> None:
    for raw_rig in make_rig(allow_raw_writes=True):
        body = ask(raw_rig, "fetch-1", {"id": "w", "op": "write", "writes": [[105, 0x4142]]}).json()
        assert body["ok"]
        assert 0x4142 == raw_rig.bus.registers[105]


def test_identical_reads_in_flight_share_one_transaction(rig: Rig) -> None:
    rig.hold()
    for n in range(5):
        rig.pt.handle(
            message(f"{BASE}/request/fetch/fetch-{n}", {"id": n, "op": "read", "ranges": [[745, 3]]})
        )
    rig.pt.flush()  # all five queued behind the held transaction
    rig.release()
    replies = [rig.sent.wait(f"{BASE}/response/fetch/fetch-{n}")[0].json() for n in range(5)]
    assert [r["values"] for r in replies] == [replies[0]["values"]] * 5
    assert 1 == rig.bus.calls.count(("fc65", (745, 746, 747)))


def test_a_long_query_lets_the_poller_in_between_its_chunks(rig: Rig) -> None:
    """K2: the original held the bus for a whole `valid` query; here a poll waits one chunk."""
    rig.hold()
    rig.pt.handle(message(f"{BASE}/request/web/web-1", {"id": "v", "op": "query", "query": "0-400"}))
    rig.release()
    # Let the query's first chunk start, then queue a poll read the way the poller does.
    time_limit = time.monotonic() + WAIT_S
    while not any(c == ("fc65", tuple(range(0, 100))) for c in rig.bus.calls):
        assert time.monotonic() < time_limit
        time.sleep(0.001)
    poll = rig.worker.submit(lambda bus: bus.read_registers([2]), Priority.POLL)
    poll.result(WAIT_S)
    rig.sent.wait(f"{BASE}/response/web/web-1")
    order = [c for c in rig.bus.calls if c in (("fc66", (2,)),) or (c[0] == "fc65" and len(c[1]) >= 2)]
    assert ("fc66", (2,)) in order[:3], order  # within a chunk or two, not after all five


def test_too_many_requests_of_one_client_get_busy() -> None:
    for small in make_rig(max_inflight_per_client=2):
        small.hold()
        for n in range(3):
            small.pt.handle(
                message(f"{BASE}/request/fetch/fetch-1", {"id": n, "op": "read", "registers": [745]})
            )
        busy = small.sent.wait(f"{BASE}/response/fetch/fetch-1")[0].json()
        assert (2, "busy") == (busy["id"], busy["error"]["code"])
        small.pt.handle(message(f"{BASE}/request/fetch/fetch-2", {"id": "other", "op": "ping"}))
        assert small.sent.wait(f"{BASE}/response/fetch/fetch-2")[0].json()["ok"]
        small.release()
        replies = small.sent.wait(f"{BASE}/response/fetch/fetch-1", 3)
        assert [True, True] == [r.json()["ok"] for r in replies[1:]]


def test_a_write_on_a_request_topic_is_refused_and_nothing_is_written(rig: Rig) -> None:
    """The broker lets every RPC account publish on its request topic; only writers reach the
    write topic. A write on a request topic is refused by the bridge too (defence in depth)."""
    for user in ("fetch", "web", "admin"):
        body = ask(
            rig, f"{user}-1", {"id": user, "op": "write", "writes": [[340, 3]]}, kind=rpc.REQUEST
        ).json()
        assert {"id": user, "ok": False} == {k: body[k] for k in ("id", "ok")}
        assert "write_refused" == body["error"]["code"]
        assert "/$modbus/write/" in body["error"]["message"]
    assert [] == [c for c in rig.bus.calls if c[0] == "write"]
    assert {} == rig.pt.inflight()
    # The same write on the write topic is applied, and every other op works there too.
    assert ask(rig, "admin-1", {"id": "w", "op": "write", "writes": [[340, 3]]}).json()["ok"]
    assert [("write", (340, 3))] == [c for c in rig.bus.calls if c[0] == "write"]
    assert ask(rig, "admin-1", {"id": "p", "op": "ping"}, kind=rpc.WRITE).json()["ok"]
    reply = ask(rig, "admin-1", {"id": "r", "op": "read", "registers": [745]}, kind=rpc.WRITE).json()
    assert [REGS[745]] == reply["values"]


def test_replies_go_to_the_user_and_client_of_the_request_topic(rig: Rig) -> None:
    rig.pt.handle(message(f"{BASE}/request/web/fetch-9", {"id": "x", "op": "ping"}))
    (reply,) = rig.sent.wait(f"{BASE}/response/web/fetch-9")
    assert reply.json()["ok"]
    assert [] == rig.sent.on(f"{BASE}/response/fetch/fetch-9")


def test_a_lost_line_is_answered_at_once(rig: Rig) -> None:
    rig.worker.line_up = False
    body = ask(rig, "fetch-1", {"id": "d", "op": "read", "registers": [745]}).json()
    assert "bus_down" == body["error"]["code"]


def test_retained_requests_are_ignored(rig: Rig) -> None:
    """A retained request would run again at every reconnect of the bridge."""
    rig.pt.handle(
        message(f"{BASE}/write/admin/admin-1", {"id": 1, "op": "write", "writes": [[340, 3]]}, retain=True)
    )
    rig.pt.handle(message(f"{BASE}/340/set", "3", retain=True))
    ask(rig, "fetch-1", {"id": 2, "op": "ping"})
    assert [] == [c for c in rig.bus.calls if c[0] == "write"]
    assert [2] == [s.json()["id"] for s in rig.sent.on(f"{BASE}/response/fetch/fetch-1")]


def test_garbage_topics_and_payloads_never_raise(rig: Rig) -> None:
    for topic, payload in [
        (f"{BASE}/request/", b"{}"),
        (f"{BASE}/request/a", b"{}"),
        (f"{BASE}/request/a/b/c", b"{}"),
        (f"{BASE}/write/a", b'{"op": "write", "writes": [[340, 3]]}'),
        (f"{BASE}/request//b", b"{}"),
        (f"{BASE}/response/fetch/set", b"{}"),
        (f"{BASE}/getregs/set", b"x:745"),
        (f"{BASE}/response/set", b"{}"),
        (f"{BASE}/abc/set", b"3"),
        (f"{BASE}/99999/set", b"3"),
        (BASE, b"\xff\xfe"),
        (BASE, b"abc"),
        (BASE, b"1" * 5000),
        (f"{BASE}/getregs", b"\xff"),
    ]:
        rig.pt.handle(message(topic, payload))
    assert [] == [c for c in rig.bus.calls if c[0] == "write"]
    assert [] == rig.sent.sent


# ------------------------------------------------------------------ the original's topics


def test_a_legacy_query_publishes_one_line_per_register(rig: Rig) -> None:
    rig.pt.handle(message(BASE, "745-747"))
    lines = {}
    for address in (745, 746, 747):
        (sent,) = rig.sent.wait(f"{BASE}/{address}")
        assert (1, False) == (sent.qos, sent.retain)
        lines[sent.topic] = sent.payload
    regs = REGS
    assert f"Heating Set Point (745): {regs[745] / 10:.1f}°F" == lines[f"{BASE}/745"]
    assert str(lines[f"{BASE}/747"]).startswith("Ambient Temperature (747): ")


def test_a_legacy_query_prints_a_sensor_that_is_not_fitted_as_fetch_does(rig: Rig) -> None:
    """0xD8F1: the same line as aurora_fetch and the register browser (docs/differences.md)."""
    rig.bus.registers[1114] = 0xD8F1
    rig.pt.handle(message(BASE, "1114"))
    (sent,) = rig.sent.wait(f"{BASE}/1114")
    assert "DHW Temperature (1114): -999.9°F" == sent.payload


def test_a_legacy_getregs_answers_on_the_shared_topic_in_request_order(rig: Rig) -> None:
    rig.pt.handle(message(f"{BASE}/getregs", "5b0e:745,3;813;745"))
    (sent,) = rig.sent.wait(f"{BASE}/getregs/response")
    regs = REGS
    assert f"5b0e:{regs[745]},{regs[746]},{regs[747]},{regs[813]},{regs[745]}" == sent.payload


def test_a_legacy_set_in_hex_writes_that_word(rig: Rig) -> None:
    """P1: 0x5555 was written as 0 by the original."""
    for raw_rig in make_rig(allow_raw_writes=True):
        raw_rig.pt.handle(message(f"{BASE}/3000/set", "0x5555"))
        (sent,) = raw_rig.sent.wait(f"{BASE}/3000")
        assert ("write", (3000, 0x5555)) in raw_rig.bus.calls
        assert 0x5555 == raw_rig.bus.registers[3000]
        assert render_line(3000, {3000: 0x5555}) == sent.payload


def test_a_legacy_set_within_the_map_writes_and_publishes_the_read_back(rig: Rig) -> None:
    rig.pt.handle(message(f"{BASE}/340/set", "3"))
    (sent,) = rig.sent.wait(f"{BASE}/340")
    assert "Blower Only Speed (340): 3" == sent.payload
    assert 3 == rig.bus.registers[340]


def test_a_legacy_set_outside_the_map_writes_nothing(rig: Rig) -> None:
    before = dict(rig.bus.registers)
    for topic, payload in [
        (f"{BASE}/105/set", "0x4142"),
        (f"{BASE}/340/set", "99"),
        (f"{BASE}/340/set", "3abc"),
    ]:
        rig.pt.handle(message(topic, payload))
    ask(rig, "fetch-1", {"id": 1, "op": "ping"})  # the handler is synchronous up to the submit
    rig.worker.submit(lambda bus: None, Priority.POLL).result(WAIT_S)  # and the worker is idle
    assert before == rig.bus.registers
    assert [] == rig.sent.on(f"{BASE}/105") + rig.sent.on(f"{BASE}/340")


def test_a_legacy_keyword_query_streams_its_lines_and_sends_each_once(rig: Rig) -> None:
    """`valid` is ~3000 messages: sent at the end in one burst they overflow the broker's queue
    for a subscriber; each chunk's lines go as soon as it is read, split 32-bit values at the end."""
    rig.pt.handle(message(BASE, "known"))
    expected = {a for a in REGS if render_line(a, REGS) is not None and a in set(known_addresses())}
    for address in expected:
        rig.sent.wait(f"{BASE}/{address}")
    topics = [s.topic for s in rig.sent.sent]
    assert len(topics) == len(set(topics)) == len(expected)
    assert (
        f"Compressor Watts (1146): {render_line(1146, REGS).split(': ')[1]}"
        == rig.sent.on(f"{BASE}/1146")[0].payload
    )


def known_addresses() -> list[int]:
    from aurora import registers

    return sorted(registers.KNOWN_ADDRESSES)


class BrokenWorker:
    """A worker with a bug: submit raises."""

    line_up = True

    def submit(self, run: Any, priority: Any = None, **kwargs: Any) -> Any:
        raise RuntimeError("bug in the worker")


@pytest.mark.error_log_expected("the worker's bug is logged with its traceback")
def test_a_bug_behind_the_request_still_gets_one_internal_error_reply() -> None:
    sent = Recorder()
    pt = PassThrough(worker=BrokenWorker(), publish=sent, root=ROOT)
    pt.handle(message(f"{BASE}/request/fetch/fetch-1", {"id": "b", "op": "read", "registers": [745]}))
    (reply,) = sent.wait(f"{BASE}/response/fetch/fetch-1")
    assert {
        "id": "b",
        "ok": False,
        "error": {"code": "internal", "message": "internal error"},
    } == reply.json()
    pt.handle(
        message(f"{BASE}/request/fetch/fetch-1", {"id": "c", "op": "ping"})
    )  # and nothing stays in flight
    assert 2 == len(sent.wait(f"{BASE}/response/fetch/fetch-1", 2))
    assert {} == pt.inflight()


class SilentBus(DumpBus):
    """A unit that stopped answering: every read times out."""

    def _values(self, function: int, addresses: Sequence[int]) -> list[int]:
        self.stats.transactions += 1
        raise BusTimeout("no reply")


def test_a_silent_unit_ends_a_keyword_query_with_a_timeout_after_two_silent_reads() -> None:
    """A lost line is not a list of missing registers: the query stops instead of trying them all."""
    bus = SilentBus(dict(REGS))
    worker = BusWorker(lambda: bus)
    worker.start()
    try:
        worker.submit(lambda b: None).result(WAIT_S)
        sent = Recorder()
        pt = PassThrough(worker=worker, publish=sent, root=ROOT)
        pt.handle(message(f"{BASE}/request/web/web-1", {"id": "v", "op": "query", "query": "valid"}))
        (reply,) = sent.wait(f"{BASE}/response/web/web-1")
        assert ("v", "timeout") == (reply.json()["id"], reply.json()["error"]["code"])
        assert bus.stats.transactions <= 3  # the first chunk, then its first two items at most
    finally:
        worker.stop()


def test_a_small_request_does_not_wait_for_the_preparation_thread(rig: Rig) -> None:
    """Issue 15: a small read, ping or write is parsed on paho's thread and goes straight to the
    bus worker; a query (its planning) and a large request still go through ``modbus-prep``."""
    busy, go = threading.Event(), threading.Event()
    rig.pt._prep.submit(lambda: (busy.set(), go.wait(WAIT_S)))
    assert busy.wait(WAIT_S)
    try:
        read = ask(rig, "fetch-1", {"id": "r", "op": "read", "ranges": [[745, 3]]})
        assert [REGS[745], REGS[746], REGS[747]] == read.json()["values"]
        assert {"id": "p", "ok": True, "device": "aurora-2611000042"} == ask(
            rig, "fetch-1", {"id": "p", "op": "ping"}
        ).json()
        assert "bad_request" == ask(rig, "fetch-1", b'{"id": "b", "op": "nonsense"}').json()["error"]["code"]
        large = json.dumps({"id": "l", "op": "read", "ranges": [[745, 1]]}) + " " * 1100
        assert len(large) > 1024
        reply_topic = f"{BASE}/response/fetch/fetch-2"
        rig.pt.handle(message(f"{BASE}/request/fetch/fetch-2", large))
        rig.pt.handle(message(f"{BASE}/request/fetch/fetch-3", {"id": "q", "op": "query", "query": "745"}))
        time.sleep(0.2)  # what would arrive if they did not wait for the preparation thread
        assert [] == rig.sent.on(reply_topic) == rig.sent.on(f"{BASE}/response/fetch/fetch-3")
    finally:
        go.set()
    assert [REGS[745]] == rig.sent.wait(reply_topic)[0].json()["values"]
    assert rig.sent.wait(f"{BASE}/response/fetch/fetch-3")[0].json()["ok"]
    assert {} == rig.pt.inflight()
