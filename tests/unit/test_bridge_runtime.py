"""The bridge's runtime without sockets: bus worker, poller, writes, partial failures.

A fake Unit and a DumpBus stand in for the device description and the line.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aurora.bridge.app import Bridge, BridgeConfig, EarlyMqtt
from aurora.bridge.poller import WordCache, read_words
from aurora.bridge.publisher import MqttCounters
from aurora.bridge.schedule import Idle, PollSchedule, ReadTiers, Reread
from aurora.bridge.spec import Tier
from aurora.bridge.worker import BusWorker, Priority
from aurora.dump import DumpBus
from aurora.errors import BusTimeout, UsageError
from aurora.mqtt import MqttSettings

from tests.support.logguard import ErrorLogGuard
from tests.support.processes import wait_for

TRANSACTION_S = 0.05


class SlowBus(DumpBus):
    """A DumpBus whose every transaction takes TRANSACTION_S and is recorded in order."""

    def __init__(self, registers: Mapping[int, int], silent: bool = False) -> None:
        super().__init__(registers)
        self.calls: list[tuple[str, Any]] = []
        self.silent = silent
        self.timeouts_after: int | None = None

    def _values(self, function: int, addresses: Sequence[int]) -> list[int]:
        self.calls.append(("read", tuple(addresses)))
        time.sleep(TRANSACTION_S)
        if self.silent or (self.timeouts_after is not None and len(self.calls) > self.timeouts_after):
            raise BusTimeout("no reply")
        return super()._values(function, addresses)

    def write_register(self, address: int, value: int) -> None:
        time.sleep(TRANSACTION_S)
        if self.silent:
            raise BusTimeout("no reply")
        self.calls.append(("write", (address, value)))
        super().write_register(address, value)


@pytest.fixture
def worker_and_bus() -> Any:
    bus = SlowBus({a: a % 100 for a in range(0, 2000)})
    worker = BusWorker(lambda: bus)
    worker.start()
    yield worker, bus
    worker.stop()


def test_a_write_waits_for_at_most_one_transaction_while_a_poll_runs(worker_and_bus: Any) -> None:
    """Issue 3: a write never waits for a whole poll cycle (the original held one lock for all of it)."""
    worker, bus = worker_and_bus
    addresses = range(0, 1000)  # ten chunks of 100 registers: ten transactions of 50 ms
    poll = threading.Thread(target=read_words, args=(worker, addresses))
    poll.start()
    while not bus.calls:  # the poll's first transaction is on the line
        time.sleep(0.001)
    submitted = time.monotonic()
    started: list[float] = []

    def write(b: Any) -> None:
        started.append(time.monotonic())
        b.write_register(1500, 7)

    worker.submit(write, Priority.WRITE).result(timeout=5)
    poll.join(5)
    assert started[0] - submitted < 2 * TRANSACTION_S
    order = [kind for kind, _ in bus.calls]
    assert order.index("write") <= 2  # after the one or two reads already on the line, not after ten
    assert 11 == len(order)
    assert 1 >= worker.most_polls_waited  # what $health reports: at most the poll read in flight


def test_a_refused_register_costs_only_its_own_value_and_is_not_asked_for_again() -> None:
    """docs/architecture.md#partial-failure: one missing register must not blank the other 150 (R1: the
    original exited)."""
    registers = {a: 1 for a in range(0, 300) if a != 150}
    bus = SlowBus(registers)
    worker = BusWorker(lambda: bus)
    worker.start()
    try:
        missing: set[int] = set()
        report = read_words(worker, [*range(100, 160), 200, 201], missing=missing)
        assert {150} == set(report.failed)
        assert set(range(100, 160)) - {150} | {200, 201} == set(report.words)
        assert {150} == missing
        bus.calls.clear()
        again = read_words(worker, [*range(100, 160), 200, 201], missing=missing)
        assert again.complete
        assert all(150 not in addresses for _, addresses in bus.calls)
    finally:
        worker.stop()


def test_a_silent_unit_fails_the_cycle_after_one_transaction() -> None:
    """A timeout before anything answered ends the cycle: waiting for every chunk only delays alert."""
    bus = SlowBus({a: 0 for a in range(1000)}, silent=True)
    worker = BusWorker(lambda: bus)
    worker.start()
    try:
        with pytest.raises(BusTimeout):
            read_words(worker, range(0, 1000))
        assert 1 == len(bus.calls)
    finally:
        worker.stop()


def test_a_timeout_after_an_answer_costs_only_that_chunk() -> None:
    bus = SlowBus({a: 3 for a in range(1000)})
    bus.timeouts_after = 1
    worker = BusWorker(lambda: bus)
    worker.start()
    try:
        report = read_words(worker, range(0, 300))
        assert set(range(0, 100)) == set(report.words)
        assert set(range(100, 300)) == set(report.failed)
        assert 2 == report.failed_chunks
    finally:
        worker.stop()


def test_tiers_due_together_are_read_in_one_pass_and_an_outage_does_not_cause_a_burst() -> None:
    schedule = PollSchedule({Tier.FAST: 5.0, Tier.MEDIUM: 30.0, Tier.SLOW: 300.0})
    assert ReadTiers((Tier.FAST, Tier.MEDIUM, Tier.SLOW)) == schedule.next(0.0)
    schedule.done([Tier.FAST, Tier.MEDIUM, Tier.SLOW], 0.0)
    assert Idle(1.0) == schedule.next(3.0)  # the poll thread looks again at least every second
    assert Idle(pytest.approx(0.1)) == schedule.next(4.9)
    assert [Tier.FAST] == schedule.due(5.0)
    schedule.done([Tier.FAST], 5.0)
    assert [Tier.FAST, Tier.MEDIUM] == schedule.due(30.0)
    schedule.done([Tier.FAST, Tier.MEDIUM], 1000.0)  # the line was down for 16 minutes
    assert 1005.0 == schedule.next_due[Tier.FAST]
    assert 1030.0 == schedule.next_due[Tier.MEDIUM]
    schedule.force_all()  # the line came back: everything now, and the poll thread woken
    assert schedule.wake.is_set()
    assert ReadTiers((Tier.FAST, Tier.MEDIUM, Tier.SLOW)) == schedule.next(1001.0)


def test_a_raw_write_makes_only_what_it_shows_in_due() -> None:
    """The schedule's answer to a raw write: the registers its effects name, before any tier,
    once; a write that shows only itself, or before the unit is known, makes nothing due."""

    class Effects:
        def reread(self, written: Any) -> list[int]:
            return [745] if 12619 in written else []

    schedule = PollSchedule({Tier.FAST: 5.0, Tier.MEDIUM: 30.0, Tier.SLOW: 300.0})
    assert not schedule.wrote([12619])  # no effects known yet
    schedule.effects = Effects()  # type: ignore[assignment]
    schedule.done(list(Tier), 0.0)
    assert not schedule.wrote([745])
    assert not schedule.wake.is_set()
    assert schedule.wrote([12619])
    assert schedule.wake.is_set()
    assert Reread((745,)) == schedule.next(5.0)  # before the fast tier, due at the same time
    assert ReadTiers((Tier.FAST,)) == schedule.next(5.0)
    assert {Tier.FAST: 5.0, Tier.MEDIUM: 30.0, Tier.SLOW: 300.0} == schedule.next_due  # untouched


def test_a_schedule_needs_every_tier() -> None:
    with pytest.raises(ValueError, match="slow"):
        PollSchedule({Tier.FAST: 5.0, Tier.MEDIUM: 30.0})


def test_the_word_cache_remembers_when_each_word_was_read() -> None:
    cache = WordCache()
    cache.update({745: 680}, at=12.5)
    assert (680, 12.5) == cache.lookup(745)
    assert cache.lookup(746) is None


# ---------------------------------------------------------------- the bridge with a fake unit


class FakeSetter:
    def writes(self, payload: str, words: Mapping[int, int]) -> list[tuple[int, int]]:
        try:
            value = float(payload)
        except ValueError:
            raise UsageError(f"{payload!r} is not a number") from None
        if not 100 <= value <= 140:
            raise UsageError(f"{value} is outside 100..140")
        return [(401, round(value * 10))]

    def readback(self) -> frozenset[int]:
        return frozenset({401})


class FakeSpec:
    """A property as the bridge's write path sees it: its setter and its current payload."""

    retained = True
    datatype = "float"

    def __init__(self, path: str, setter: FakeSetter | None) -> None:
        self.path, self.setter = path, setter

    def payload(self, words: Mapping[int, int]) -> str | None:
        return FakeUnit().values(words).get(self.path)


class FakeUnit:
    device_id = "aurora-42"
    name = "Test"
    explode = False
    nodes = ()

    def spec(self, node_prop: str) -> FakeSpec | None:
        if node_prop not in ("dhw/set-point", "abc/temperature"):
            return None
        return FakeSpec(node_prop, self.setter(node_prop))

    def registers(self, tier: Tier) -> frozenset[int]:
        return {Tier.FAST: frozenset({745, 746}), Tier.MEDIUM: frozenset({401}), Tier.SLOW: frozenset({2})}[
            tier
        ]

    def description(self) -> list[tuple[str, str]]:
        return [("$homie", "4.0.0"), ("dhw/set-point/$datatype", "float")]

    def values(self, words: Mapping[int, int]) -> dict[str, str]:
        if self.explode:
            raise ZeroDivisionError("a decoder bug")
        out = {}
        if 401 in words:
            out["dhw/set-point"] = f"{words[401] / 10:g}"
        if 745 in words:
            out["abc/temperature"] = str(words[745])
        return out

    def setter(self, node_prop: str) -> FakeSetter | None:
        return FakeSetter() if node_prop == "dhw/set-point" else None

    def settable(self) -> list[str]:
        return ["dhw/set-point"]

    def hass_discovery(self, **_: str) -> list[tuple[str, str]]:
        return []


class FakePublisher:
    """Records what the bridge would send; the MQTT side is proven by the integration tests."""

    def __init__(self) -> None:
        self.sent: dict[str, str] = {}
        self.state = "init"
        self.connected = True
        self.counters = MqttCounters()
        self.thread_alive = True
        self.restarts = 0
        self.kicks = 0
        self.messages: list[tuple[str, str]] = []  # everything sent, retained or not, in order

    def paho_thread_alive(self) -> bool:
        return self.thread_alive

    def restart_loop(self) -> None:
        self.restarts += 1

    def kick(self) -> None:
        self.kicks += 1

    def publish(self, topic: str, payload: str, *, qos: int = 1, retain: bool = False) -> None:
        self.messages.append((topic, payload))

    def outcomes(self) -> list[dict[str, Any]]:
        """The $write-result documents sent, in order."""
        import json

        return [json.loads(p) for t, p in self.messages if t == "homie/aurora-42/$write-result"]

    def retain(self, topic: str, payload: str, *, force: bool = False) -> bool:
        self.messages.append((topic, payload))
        if not force and self.sent.get(topic) == payload:
            return False
        self.sent[topic] = payload
        return True

    def retain_many(self, items: Any, *, force: bool = False) -> int:
        return sum(self.retain(t, p, force=force) for t, p in items)

    def set_state(self, state: str) -> None:
        self.state = state


def _bridge(bus: DumpBus) -> Bridge:
    config = BridgeConfig(port="unused", mqtt=MqttSettings(host="127.0.0.1", port=1, tls=False))
    bridge = Bridge(
        config,
        opener=lambda: bus,
        detect=lambda read, device_name: FakeUnit(),
    )
    bridge.shared.unit = FakeUnit()
    bridge.shared.root = "homie/aurora-42"
    bridge.shared.publisher = FakePublisher()  # type: ignore[assignment]
    bridge.ready.set()
    bridge.worker.start()
    return bridge


@pytest.mark.timing  # how soon the main thread takes the session
def test_the_early_session_is_taken_as_soon_as_its_retained_scan_ends() -> None:
    """A restart scans the tree an earlier run left, which often ends just after detection: the
    main thread takes the session once it is made, not at its next look half a second later
    (issue 15: restart to ready)."""
    bridge = _bridge(DumpBus({}))
    try:
        made: Future[EarlyMqtt | None] = Future()
        bridge._early_mqtt = made
        bridge._first_attempt_won = True
        unit = bridge.shared.unit
        session = EarlyMqtt("aurora-42", FakePublisher(), {"homie/aurora-42/$name": b"Test"})  # type: ignore[arg-type]
        threading.Timer(0.05, made.set_result, (session,)).start()
        started = time.monotonic()
        assert {"homie/aurora-42/$name": b"Test"} == bridge._take_early_mqtt(unit)  # type: ignore[arg-type]
        assert time.monotonic() - started < 0.3
        assert session.publisher is bridge.shared.publisher
    finally:
        bridge.worker.stop()


def _message(topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(topic=topic.encode())
    msg.payload = payload
    msg.retain = retain
    return msg


def test_a_poll_publishes_values_once_and_only_again_when_they_change() -> None:
    bus = DumpBus({2: 1, 745: 680, 746: 700, 401: 1200})
    bridge = _bridge(bus)
    try:
        assert bridge.polling.poll(list(Tier), time.monotonic())
        pub = bridge.shared.publisher
        assert {"homie/aurora-42/dhw/set-point": "120", "homie/aurora-42/abc/temperature": "680"} == pub.sent  # type: ignore[union-attr]
        assert 0 == bridge.shared.publish_values()
        bus.registers[745] = 681
        bridge.polling.poll([Tier.FAST], time.monotonic())
        assert "681" == pub.sent["homie/aurora-42/abc/temperature"]  # type: ignore[union-attr]
        assert "ready" == pub.state  # type: ignore[union-attr]
    finally:
        bridge.worker.stop()


def test_a_decoder_that_raises_is_logged_and_counted_and_the_bridge_carries_on(
    error_logs: ErrorLogGuard,
) -> None:
    """docs/architecture.md#original-bridge R1: the original exited on bad data."""
    bus = DumpBus({2: 1, 745: 680, 746: 700, 401: 1200})
    bridge = _bridge(bus)
    try:
        bridge.shared.unit.explode = True
        bridge.polling.poll([Tier.FAST], time.monotonic())
        assert "decoding failed" in (bridge.stats.last_error or "")
        assert ["values_failed"] == [r.event for r in error_logs.records]
        bridge.shared.unit.explode = False
        assert bridge.polling.poll([Tier.FAST], time.monotonic())
    finally:
        bridge.worker.stop()


def test_a_silent_unit_turns_the_state_to_alert_and_an_answer_back_to_ready() -> None:
    bus = SlowBus({2: 1, 745: 680, 746: 700, 401: 1200}, silent=True)
    bridge = _bridge(bus)
    try:
        assert not bridge.polling.poll([Tier.FAST], time.monotonic())
        assert "alert" == bridge.shared.publisher.state  # type: ignore[union-attr]
        assert 1 == bridge.stats.failed_cycles
        assert bridge.stats.last_error and "no reply" in json.loads(bridge.health())["last_error"]
        bus.silent = False
        assert bridge.polling.poll([Tier.FAST], time.monotonic())
        assert "ready" == bridge.shared.publisher.state  # type: ignore[union-attr]
        assert json.loads(bridge.health())["last_error"] is None  # what is wrong now, not once
    finally:
        bridge.worker.stop()


def test_a_valid_set_writes_the_register_reads_it_back_and_publishes_it() -> None:
    bus = DumpBus({2: 1, 745: 680, 746: 700, 401: 1200})
    bridge = _bridge(bus)
    try:
        bridge.polling.poll([Tier.MEDIUM], time.monotonic())
        bridge.writes.on_set(_message("homie/aurora-42/dhw/set-point/set", b"125.5"))
        pub = bridge.shared.publisher

        def published() -> bool:
            return pub.sent.get("homie/aurora-42/dhw/set-point") == "125.5"  # type: ignore[union-attr]

        deadline = time.monotonic() + 5
        while not pub.outcomes() and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.01)
        assert 1255 == bus.registers[401]
        assert published()
        assert 1 == bridge.stats.writes
        assert [
            {
                "property": "dhw/set-point",
                "payload": "125.5",
                "result": "applied",
                "value": "125.5",
                "written": [[401, 1255]],
            }
        ] == pub.outcomes()  # type: ignore[union-attr]
    finally:
        bridge.worker.stop()


def test_setting_the_current_value_concludes_and_republishes_it() -> None:
    """Issue 14: a write that changes nothing still ends in an outcome and the value, at once."""
    bus = DumpBus({2: 1, 745: 680, 746: 700, 401: 1200})
    bridge = _bridge(bus)
    try:
        bridge.polling.poll([Tier.MEDIUM], time.monotonic())
        pub = bridge.shared.publisher
        before = len(pub.messages)  # type: ignore[union-attr]
        bridge.writes.on_set(_message("homie/aurora-42/dhw/set-point/set", b"120"))
        deadline = time.monotonic() + 5
        while not pub.outcomes() and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.01)
        assert "applied" == pub.outcomes()[0]["result"]  # type: ignore[union-attr]
        assert ("homie/aurora-42/dhw/set-point", "120") in pub.messages[before:]  # type: ignore[union-attr]
    finally:
        bridge.worker.stop()


@pytest.mark.parametrize(
    ("topic", "payload", "retain"),
    [
        ("homie/aurora-42/dhw/set-point/set", b"hot", False),
        ("homie/aurora-42/dhw/set-point/set", b"500", False),
        ("homie/aurora-42/dhw/set-point/set", b"\xff\xfe", False),
        ("homie/aurora-42/dhw/set-point/set", b"120", True),
        ("homie/aurora-42/abc/temperature/set", b"70", False),
        # Homie's grammar, before the setter (whose float() takes all of these: issue 11 #9)
        ("homie/aurora-42/dhw/set-point/set", "١٢٥".encode(), False),
        ("homie/aurora-42/dhw/set-point/set", b" 125", False),
        ("homie/aurora-42/dhw/set-point/set", b"125\n", False),
        ("homie/aurora-42/dhw/set-point/set", b"125.", False),
        ("homie/aurora-42/dhw/set-point/set", b"+125", False),
        ("homie/aurora-42/dhw/set-point/set", b"1" * 5000, False),
    ],
    ids=[
        "not-a-number",
        "out-of-range",
        "not-utf8",
        "retained-command",
        "not-settable",
        "unicode-digits",
        "leading-space",
        "trailing-newline",
        "trailing-dot",
        "plus-sign",
        "5000-digits",
    ],
)
def test_a_bad_set_writes_nothing(topic: str, payload: bytes, retain: bool) -> None:
    bus = SlowBus({2: 1, 745: 680, 746: 700, 401: 1200})
    bridge = _bridge(bus)
    try:
        bridge.polling.poll([Tier.MEDIUM], time.monotonic())  # the line is up: only validation can refuse
        assert bridge.worker.line_up
        pub = bridge.shared.publisher
        before = len(pub.messages)  # type: ignore[union-attr]
        bridge.writes.on_set(_message(topic, payload, retain))
        bridge.worker.submit(lambda b: None, Priority.POLL).result(timeout=5)  # the queue is drained
        assert [] == [c for c in bus.calls if c[0] == "write"]
        assert 1200 == bus.registers[401]
        if retain:
            assert [] == pub.outcomes()  # type: ignore[union-attr]  # a replayed command is not answered
            return
        (outcome,) = pub.outcomes()  # type: ignore[union-attr]
        assert "refused" == outcome["result"] and outcome["reason"]
        if topic.endswith("dhw/set-point/set"):
            # the current value again, so a client that showed the new one snaps back at once
            assert ("homie/aurora-42/dhw/set-point", "120") in pub.messages[before:]  # type: ignore[union-attr]
            assert "120" == outcome["value"]
    finally:
        bridge.worker.stop()


def test_the_health_document_carries_bus_poll_and_worker_numbers() -> None:
    import json

    bus = DumpBus({2: 1, 745: 680, 746: 700, 401: 1200})
    bridge = _bridge(bus)
    try:
        bridge.polling.poll(list(Tier), time.monotonic())
        doc = json.loads(bridge.health())
        assert 1 == doc["poll"]["good_cycles"]
        assert doc["last_good_poll"].endswith("+00:00")
        assert {"transactions", "timeouts", "retries", "reconnects", "latency_ewma_s"} <= set(doc["bus"])
        assert {"longest_wait_s", "coalesced"} <= set(doc["worker"])
        assert doc["uptime_s"] >= 0
    finally:
        bridge.worker.stop()


def test_the_watchdog_reopens_a_line_on_which_no_poll_succeeded_for_several_intervals() -> None:
    """docs/architecture.md#original-bridge R3: the original could stall for hours without a word."""
    bus = DumpBus({2: 1, 745: 680, 746: 700, 401: 1200})
    opened: list[DumpBus] = []

    def opener() -> DumpBus:
        opened.append(bus)
        return bus

    bridge = _bridge(bus)
    bridge.worker._opener = opener
    try:
        bridge.polling.poll([Tier.FAST], time.monotonic())
        assert 1 == len(opened)
        now = time.monotonic()
        bridge.watchdog.check(now + 1)  # fresh: nothing to do
        assert 0 == bridge.stats.watchdog_resets
        bridge.watchdog.check(now + 6 * 5 + 1)  # six fast intervals without a good poll
        assert 1 == bridge.stats.watchdog_resets
        bridge.polling.poll([Tier.FAST], time.monotonic())
        assert 2 == len(opened)  # the line was dropped and opened again
        bridge.watchdog.check(now + 6 * 5 + 2)  # not again right away
        assert 1 == bridge.stats.watchdog_resets
    finally:
        bridge.worker.stop()


def test_the_watchdog_restarts_a_dead_mqtt_network_thread() -> None:
    """paho #785: the network thread can die while is_connected() still says True."""
    bridge = _bridge(DumpBus({2: 1}))
    try:
        pub = bridge.shared.publisher
        pub.thread_alive = False  # type: ignore[union-attr]
        bridge.watchdog.check(time.monotonic())
        assert 1 == pub.restarts  # type: ignore[union-attr]
    finally:
        bridge.worker.stop()


def test_a_write_while_the_line_stays_down_fails_after_the_wait_and_is_never_made_later(
    error_logs: ErrorLogGuard,
) -> None:
    bus = SlowBus({2: 1, 745: 680, 746: 700, 401: 1200})
    bridge = _bridge(bus)
    bridge.writes.line_wait_s = 0.3
    try:
        assert not bridge.worker.line_up
        asked = time.monotonic()
        bridge.writes.on_set(_message("homie/aurora-42/dhw/set-point/set", b"125"))
        pub = bridge.shared.publisher
        assert [] == pub.outcomes()  # type: ignore[union-attr]  # it waits for the line first
        wait_for(pub.outcomes, 10, "the outcome")  # type: ignore[union-attr]
        assert time.monotonic() - asked >= 0.3
        (outcome,) = pub.outcomes()  # type: ignore[union-attr]
        assert "failed" == outcome["result"]
        assert "no answer from the heat pump" in outcome["reason"]
        assert 1 == bridge.stats.writes_failed
        assert any(r.event.startswith("set_failed") for r in error_logs.records), error_logs.records
        bridge.polling.poll([Tier.MEDIUM], time.monotonic())  # the line is back: too late
        assert bridge.worker.line_up
        assert [] == [c for c in bus.calls if c[0] == "write"]
        assert 1 == len(pub.outcomes())  # type: ignore[union-attr]
    finally:
        bridge.worker.stop()


def test_a_write_while_the_line_is_down_is_made_once_when_the_line_answers_within_the_wait(
    error_logs: ErrorLogGuard,
) -> None:
    """The broker delivers a command a moment before the line, reopened after an outage, answers."""
    bus = SlowBus({2: 1, 745: 680, 746: 700, 401: 1200})
    bridge = _bridge(bus)
    bridge.writes.line_wait_s = 30.0
    try:
        bridge.writes.on_set(_message("homie/aurora-42/dhw/set-point/set", b"125"))
        bridge.writes.on_set(_message("homie/aurora-42/dhw/set-point/set", b"126"))
        assert [] == [c for c in bus.calls if c[0] == "write"]
        bridge.polling.poll([Tier.MEDIUM], time.monotonic())  # the unit answers: the line is up
        pub = bridge.shared.publisher
        wait_for(lambda: len(pub.outcomes()) == 2, 10, "both outcomes")  # type: ignore[union-attr]
        assert ["applied", "applied"] == [o["result"] for o in pub.outcomes()]  # type: ignore[union-attr]
        assert [("write", (401, 1250)), ("write", (401, 1260))] == [c for c in bus.calls if c[0] == "write"]
        assert 0 == bridge.stats.writes_failed
        assert [] == error_logs.records
    finally:
        bridge.worker.stop()


def test_a_write_while_the_unit_is_silent_on_an_open_line_waits_for_its_next_answer(
    error_logs: ErrorLogGuard,
) -> None:
    """A cut network: the line stays open, reads time out; the command is made once the unit
    answers again (after the watchdog reopened the line, or by itself), not tried into the silence."""
    bus = SlowBus({2: 1, 745: 680, 746: 700, 401: 1200})
    bridge = _bridge(bus)
    bridge.writes.line_wait_s = 30.0
    answers: list[bool] = []
    try:
        bridge.polling.poll([Tier.MEDIUM], time.monotonic())
        assert bridge.worker.answering
        bus.silent = True
        bridge.polling.poll([Tier.MEDIUM], time.monotonic())
        assert bridge.worker.line_up and not bridge.worker.answering  # open, but nobody answers
        bridge.writes.on_set(_message("homie/aurora-42/dhw/set-point/set", b"125"))
        assert [] == [c for c in bus.calls if c[0] == "write"]
        bus.silent = False
        bridge.polling.poll([Tier.MEDIUM], time.monotonic())
        pub = bridge.shared.publisher
        wait_for(pub.outcomes, 10, "the outcome")  # type: ignore[union-attr]
        assert ["applied"] == [o["result"] for o in pub.outcomes()]  # type: ignore[union-attr]
        assert [("write", (401, 1250))] == [c for c in bus.calls if c[0] == "write"]
        answers.append(bridge.worker.answering)
    finally:
        bridge.worker.stop()
    assert [True] == answers


def test_a_write_waiting_for_the_line_at_shutdown_fails_then(error_logs: ErrorLogGuard) -> None:
    bridge = _bridge(SlowBus({2: 1, 401: 1200}))
    try:
        bridge.writes.on_set(_message("homie/aurora-42/dhw/set-point/set", b"125"))
        bridge.writes.close()
        (outcome,) = bridge.shared.publisher.outcomes()  # type: ignore[union-attr]
        assert ("failed", "the bridge is stopping: nothing was written") == (
            outcome["result"],
            outcome["reason"],
        )
    finally:
        bridge.worker.stop()


def test_systemd_hears_ready_and_watchdog_through_notify_socket(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Type=notify + WatchdogSec= let systemd restart a bridge whose main loop hangs."""
    import socket

    from aurora.bridge.systemd import sd_notify

    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert sd_notify("READY=1")
        assert b"READY=1" == listener.recv(100)
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not sd_notify("WATCHDOG=1")


def test_the_watchdog_breaks_a_session_that_acknowledges_nothing() -> None:
    """A half-open TCP connection looks connected for a long time; no PUBACK for minutes is the tell."""
    bridge = _bridge(DumpBus({2: 1}))
    try:
        pub = bridge.shared.publisher
        now = time.monotonic()
        pub.counters.published, pub.counters.acked, pub.counters.last_ack = 50, 40, now  # type: ignore[union-attr]
        bridge.watchdog.check(now + 30)
        assert 0 == pub.kicks  # type: ignore[union-attr]
        bridge.watchdog.check(now + 200)
        assert 1 == pub.kicks  # type: ignore[union-attr]
        bridge.watchdog.check(now + 201)
        assert 1 == pub.kicks  # type: ignore[union-attr]
    finally:
        bridge.worker.stop()


def test_the_watchdog_leaves_a_line_alone_while_clients_get_answers() -> None:
    """Polls delayed behind busy $modbus clients are no stall: answered requests prove the line."""
    bus = DumpBus({2: 1, 745: 680, 746: 700, 401: 1200})
    bridge = _bridge(bus)
    try:
        bridge.polling.poll([Tier.FAST], time.monotonic())
        late = time.monotonic() + 6 * 5 + 1  # six fast intervals after the last good poll ...
        bridge.worker.submit(lambda b: b.read_registers([745])).result(timeout=5)
        bridge.worker.last_success = late - 1  # ... but a client's read was answered a second ago
        bridge.watchdog.check(late)
        assert 0 == bridge.stats.watchdog_resets
    finally:
        bridge.worker.stop()


@pytest.mark.error_log_expected("a dead poll thread and a wedged job are logged at ERROR as they are cured")
def test_the_watchdog_restarts_a_dead_poll_thread_and_closes_a_line_a_job_has_held_for_a_minute() -> None:
    class ClosedBus(DumpBus):
        closes = 0

        def close(self) -> None:
            self.closes += 1
            super().close()

    bus = ClosedBus({2: 1, 745: 680, 746: 700, 401: 1200})
    bridge = _bridge(bus)
    try:
        assert bridge.polling.poll(list(Tier), time.monotonic())  # the line is open
        bridge.watchdog.check(time.monotonic())
        assert bridge.polling.thread is None  # never started: nothing to restart
        dead = threading.Thread(target=lambda: None, name="poller")
        dead.start()
        dead.join()
        bridge.polling.thread = dead
        bridge.watchdog.check(time.monotonic())
        assert bridge.polling.thread is not dead and bridge.polling.alive()
        bridge.worker.busy_since = time.monotonic() - 61  # one job on the line for over a minute
        bridge.watchdog.check(time.monotonic())
        assert 1 == bus.closes
    finally:
        bridge.shared.stop.set()
        bridge.polling.join(5)
        bridge.worker.stop()
    assert not bridge.polling.alive()  # the stop ends the restarted thread too


class HangingBus(DumpBus):
    """A line whose reads hang until released: the unit answers slowly, or not at all."""

    def __init__(self) -> None:
        super().__init__({})
        self.reading = threading.Event()
        self.release = threading.Event()

    def _values(self, function: int, addresses: Sequence[int]) -> list[int]:
        self.reading.set()
        self.release.wait(30)
        raise BusTimeout("no reply")


def test_a_stop_during_detection_is_a_clean_stop_not_a_failure() -> None:
    """SIGTERM while detection waits for the unit: exit 0, logged at info ("detect_stopped",
    "bridge_stopped"), nothing at WARNING or above (the stop once looked like detect_failed)."""
    from structlog.testing import capture_logs

    bus = HangingBus()
    config = BridgeConfig(port="unused", mqtt=MqttSettings(host="127.0.0.1", port=1, tls=False))

    def detect(read: Any, device_name: str) -> FakeUnit:
        read([(0, 10)])
        return FakeUnit()

    bridge = Bridge(config, opener=lambda: bus, detect=detect)
    stop = threading.Event()
    result: list[int] = []
    with capture_logs() as logs:
        runner = threading.Thread(target=lambda: result.append(bridge.run(stop)))
        runner.start()
        try:
            assert bus.reading.wait(10), "detection never read"
            stop.set()  # the read in flight then ends one way or the other: both are the stop
        finally:
            bus.release.set()
            runner.join(15)
    assert [0] == result
    events = [(entry["log_level"], entry["event"]) for entry in logs]
    assert ("info", "detect_stopped") in events and ("info", "bridge_stopped") in events, events
    loud = [e for e in logs if e["log_level"] in ("warning", "error", "critical", "exception")]
    assert [] == loud
