"""The line shared by many clients through the real broker and bridge (issue 15).

A flood of distinct reads is merged into few transactions, each client gets exactly its words,
polling and a /set go on meanwhile; a raw write re-reads what it affects and polls nothing
else. Counts and generous bounds only: these run on a loaded 2-core machine.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aurora.mqtt import MqttSettings
from aurora.ports import open_bus
from aurora.query import with_continuations
from aurora.rpc_client import MqttBus
from aurora.sim.cli import demo_registers

from tests.support import Broker, Collector, wait_for
from tests.support.bridge import DEMO_ID, Bridge
from tests.support.sim import Sim

pytestmark = pytest.mark.integration

ROOT = f"homie/{DEMO_ID}"
BASE = f"{ROOT}/$modbus"
HEALTH = f"{ROOT}/$health"
QUIET = ["--fast-interval", "3600", "--medium-interval", "3600", "--slow-interval", "3600"]
FAST_S = 2.0
POLLING = ["--fast-interval", f"{FAST_S:g}", "--medium-interval", "4", "--slow-interval", "6"]
CLIENTS = 50
FLOOD_S = 12.0
# Distinct single registers of the demo unit, one per client (401 is the /set's).
REGISTERS = sorted(a for a in demo_registers() if 200 <= a < 12000 and a != 401)[::3][:CLIENTS]


@dataclass
class Stack:
    broker: Broker
    sim: Sim
    health: Collector

    def settings(self, user: str) -> MqttSettings:
        return MqttSettings.from_url(
            self.broker.url(user, BASE),
            password_file=str(self.broker.password_file(user)),
            ca_file=str(self.broker.ca_file),
        )

    def fresh_health(self, after: int = 0) -> dict[str, Any]:
        """A $health published live (not the retained copy), the ``after``-th one or later."""

        def live() -> list[Any]:
            return [m for m in self.health.received(HEALTH) if not m.retain]

        wait_for(lambda: len(live()) > after, 30, "a fresh $health")
        doc: dict[str, Any] = json.loads(live()[-1].payload)
        return doc

    def live_count(self) -> int:
        return len([m for m in self.health.received(HEALTH) if not m.retain])


@contextlib.contextmanager
def stack(tmp: Path, poll: list[str]) -> Iterator[Stack]:
    with (
        Broker.start(tmp) as broker,
        Sim.start(tmp, "--tcp", "127.0.0.1:0", "--no-drift") as sim,
        Bridge.start(tmp, broker, sim.url, poll=poll),
    ):
        yield Stack(broker, sim, Collector(broker.client("fetch"), HEALTH))


def test_a_flood_of_distinct_reads_is_merged_and_polling_and_a_set_go_on(tmp_path: Path) -> None:
    with stack(tmp_path, POLLING) as s:
        direct = open_bus(s.sim.url)
        try:
            expected = {}
            for a in REGISTERS:
                words = with_continuations([a])
                expected[a] = dict(zip(words, direct.read_registers(words), strict=True))
        finally:
            direct.close()
        before = s.fresh_health()
        buses = [MqttBus.connect(s.settings("fetch" if n % 2 else "web")) for n in range(CLIENTS)]
        answers = [0] * CLIENTS
        wrong: list[Any] = []
        errors: list[str] = []
        end = time.monotonic() + FLOOD_S

        def client(n: int) -> None:
            address = REGISTERS[n]
            while time.monotonic() < end:
                try:
                    values = buses[n].query(str(address)).values
                except Exception as err:
                    errors.append(repr(err))
                    continue
                answers[n] += 1
                if values != expected[address]:
                    wrong.append((address, values))

        setpoint = f"{ROOT}/dhw/set-point"
        watch = Collector(s.broker.client("homeassistant"), setpoint)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(FLOOD_S / 3)  # the flood is on: a user changes the set point
            watch.client.publish(f"{setpoint}/set", "123", qos=1)
            wait_for(
                lambda: any(m.payload == b"123.0" for m in watch.received(setpoint)),
                FLOOD_S,
                "the set point's read-back during the flood",
            )
        finally:
            for thread in threads:
                thread.join(FLOOD_S + 30)
            for bus in buses:
                bus.close()
        after = s.fresh_health(s.live_count())
    assert not wrong, wrong[:5]
    assert not errors, errors[:5]
    assert min(answers) > 0  # every client was served
    requests = sum(answers)
    worker = after["worker"]
    merged = worker["merged_transactions"] - before["worker"]["merged_transactions"]
    jobs = worker["merged_jobs"] - before["worker"]["merged_jobs"]
    transactions = after["bus"]["transactions"] - before["bus"]["transactions"]
    assert merged > 0 and jobs >= 3 * merged, (jobs, merged)
    # One transaction a request before issue 15; the polls and the /set are in this count too.
    assert transactions * 3 < requests, (transactions, requests)
    assert worker["most_transactions_waited"] <= 1  # the /set went next
    # Polling went on (it used to stop for the whole flood): the fast tier's longest gap between
    # two good reads stays near its interval (the goal is 2 ×; this allows a loaded machine).
    assert after["poll"]["good_cycles"] >= before["poll"]["good_cycles"] + FLOOD_S / (4 * FAST_S)
    assert after["poll"]["longest_gap_s"]["fast"] <= 4 * FAST_S


def test_a_raw_write_rereads_what_it_affects_and_polls_nothing_else(tmp_path: Path) -> None:
    """Zone 1's heating set point is written at 21203 and read back from 31008/31009: the write
    re-reads those, not every tier (it used to make all three due at once)."""
    with stack(tmp_path, QUIET) as s:
        topic = f"{ROOT}/zone1/heating-target-temperature"
        homie = Collector(s.broker.client("homeassistant"), topic)
        first = homie.wait_for(topic, 30).payload.decode()
        wanted = "69.0" if first != "69.0" else "70.0"
        before = s.fresh_health()
        admin = MqttBus.connect(s.settings("admin"))
        try:
            admin.write_register(21203, round(float(wanted) * 10))
        finally:
            admin.close()
        wait_for(
            lambda: any(m.payload.decode() == wanted for m in homie.received(topic)),
            30,
            "the new set point in Homie",
        )
        after = s.fresh_health(s.live_count())
    assert after["poll"]["rereads"] == before["poll"]["rereads"] + 1
    assert after["poll"]["cycles"] == before["poll"]["cycles"]  # no tier was polled again
    # The write, and one read of what it affects; a poll of every tier is far more.
    spent = after["bus"]["transactions"] - before["bus"]["transactions"]
    assert spent <= 3, spent
    # 31008 and 31009 in one transaction (a full poll of this unit is three)
    assert after["poll"]["transactions"] - before["poll"]["transactions"] == 1


def test_the_retained_scan_ends_on_its_marker_with_every_retained_message(tmp_path: Path) -> None:
    """Start-up no longer waits 0.3 s of quiet after the retained topics (issue 15): a message
    the bridge sends itself after the SUBACK comes back behind all of them."""
    from aurora.bridge.publisher import Publisher

    with Broker.start(tmp_path) as broker:
        settings = MqttSettings.from_url(
            broker.url("bridge"),
            password_file=str(broker.password_file("bridge")),
            ca_file=str(broker.ca_file),
        )
        old = Publisher(settings, "bridge-old", state_topic=f"{ROOT}/$state")
        old.start()
        assert old.wait_connected(30)
        topics = {f"{ROOT}/node{n}/prop": str(n) for n in range(300)}
        for topic, payload in topics.items():
            old.retain(topic, payload)
        wait_for(lambda: old.counters.acked >= old.counters.published, 30, "the retained messages stored")
        old.stop()
        new = Publisher(settings, "bridge-new", state_topic=f"{ROOT}/$state")
        new.start()
        try:
            assert new.wait_connected(30)
            found = new.scan_retained([f"{ROOT}/#"], marker=f"{ROOT}/$modbus/response/bridge/scan")
            assert new.scan_marked
        finally:
            new.stop()
    assert {t: p.decode() for t, p in found.items() if t in topics} == topics


def test_start_up_reads_what_detection_did_not_and_logs_each_steps_time(tmp_path: Path) -> None:
    """Start to ready (issue 15): the words detection read count as the first poll's, so that poll
    reads only the rest (a full poll of the demo unit is three transactions), and the
    bridge_ready log line gives each start-up step's time since the process start."""
    with (
        Broker.start(tmp_path) as broker,
        Sim.start(tmp_path, "--tcp", "127.0.0.1:0", "--no-drift") as sim,
    ):
        health = Collector(broker.client("fetch"), HEALTH)
        with Bridge.start(tmp_path, broker, sim.url, poll=QUIET) as bridge:
            line = wait_for(
                lambda: next((x for x in bridge.log.read_text().splitlines() if '"bridge_ready"' in x), None),
                30,
                "the bridge_ready log line",
            )
            doc = json.loads(health.wait_for(HEALTH, 30).payload)
    ready = json.loads(line)
    steps = ready["steps_s"]
    # The broker session and the retained scan overlap detection (services/bridge/early.py):
    # each chain is in order, and both end before ready.
    for order in (
        ["detection_started", "detected", "first_poll_read", "ready"],
        ["mqtt_connected", "scanned", "ready"],
    ):
        assert [steps[s] for s in order] == sorted(steps[s] for s in order), steps
    assert 0 < steps["ready"] <= ready["since_process_start_s"] + 0.02  # /proc's clock ticks
    assert 1 <= doc["poll"]["transactions"] < 3, doc["poll"]
    assert doc["poll"]["good_cycles"] == 1
