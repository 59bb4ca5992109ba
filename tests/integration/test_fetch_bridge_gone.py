"""``aurora_fetch mqtts://…`` when the bridge's retained ``$state`` says it is gone: one line at once,
not the full reply timeout.

A stopped bridge leaves ``disconnected``, a vanished one (killed, cut off) the will ``lost``; no
request can be answered then, so waiting ``rpc_client.DEFAULT_TIMEOUT_S`` (10 s) for a ping
tells the user nothing the retained state did not already say.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aurora.errors import BusError
from aurora.mqtt import MqttSettings
from aurora.rpc_client import DEFAULT_TIMEOUT_S, MqttBus

from tests.support import Broker, Collector, publish, wait_for
from tests.support.bridge import BIN, DEMO_ID, Bridge
from tests.support.sim import Sim

pytestmark = pytest.mark.integration

FAST_S = DEFAULT_TIMEOUT_S / 2  # at once, with room for a loaded machine; the old wait was the whole timeout


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with Broker.start(tmp_path_factory.mktemp("gone")) as running:
        yield running


def fetch(broker: Broker, path: str, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """``aurora_fetch`` as the README runs it through the broker, and how long it took."""
    env = {
        **os.environ,
        "AURORA_MQTT_PASSWORD_FILE": str(broker.password_file("fetch")),
        "AURORA_MQTT_CA_FILE": str(broker.ca_file),
        "AURORA_LOG_FORMAT": "json",
    }
    started = time.monotonic()
    done = subprocess.run(
        [str(BIN / "aurora_fetch"), broker.url("fetch", path), "745-747", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return done, time.monotonic() - started


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("aurora_fetch: ")]


@pytest.mark.parametrize(
    ("state", "says"),
    [("disconnected", "its bridge was stopped"), ("lost", "its bridge vanished from the broker")],
)
@pytest.mark.parametrize("named", [True, False], ids=["named", "discovered"])
def test_a_retained_gone_state_fails_at_once_with_one_line(
    broker: Broker, state: str, says: str, named: bool
) -> None:
    device = f"aurora-gone{state}{int(named)}"
    writer = broker.client("bridge")
    publish(writer, f"homie/{device}/$state", state, retain=True)
    try:
        done, took = fetch(broker, f"homie/{device}/$modbus" if named else "")
    finally:
        publish(writer, f"homie/{device}/$state", b"", retain=True)
    assert 1 == done.returncode, done.stderr
    assert "" == done.stdout
    expected = f"aurora_fetch: the heat pump {device} is not connected: {says} ($state {state} on mqtts://"
    lines = error_lines(done)
    assert 1 == len(lines) and lines[0].startswith(expected), done.stderr
    assert took < FAST_S, f"{took:.1f} s"


def test_a_bridge_that_stops_while_fetch_waits_fails_the_wait_at_once(broker: Broker) -> None:
    """``$state`` ``init`` (a bridge starting, or one that hangs): the ping waits; the live
    ``disconnected`` that follows ends the wait with the same error."""
    device = "aurora-stopping"
    writer = broker.client("bridge")
    publish(writer, f"homie/{device}/$state", "init", retain=True)
    settings = MqttSettings.from_url(
        broker.url("fetch", f"homie/{device}/$modbus"),
        password_file=str(broker.password_file("fetch")),
        ca_file=str(broker.ca_file),
    )
    stopped = threading.Timer(
        1.0, lambda: publish(writer, f"homie/{device}/$state", "disconnected", retain=True)
    )
    started = time.monotonic()
    stopped.start()
    try:
        with pytest.raises(
            BusError, match=f"the heat pump {device} is not connected: its bridge was stopped"
        ):
            MqttBus.connect(settings, timeout_s=60)
    finally:
        stopped.join()
        publish(writer, f"homie/{device}/$state", b"", retain=True)
    assert time.monotonic() - started < 30  # the 60 s timeout was not waited for


def test_a_real_bridge_stopped_or_killed_is_named_so_and_a_running_one_answers(
    broker: Broker, tmp_path: Path
) -> None:
    path = f"homie/{DEMO_ID}/$modbus"
    with Sim.start(tmp_path, "--tcp", "127.0.0.1:0") as sim:
        with Bridge.start(tmp_path, broker, sim.url) as bridge:
            done, _ = fetch(broker, path)
            assert 0 == done.returncode, done.stderr
            assert done.stdout.startswith("Heating Set Point (745): ")
            bridge.process.send_signal(signal.SIGTERM)
            bridge.process.wait(30)
        done, took = fetch(broker, path)
        assert error_lines(done) == [
            f"aurora_fetch: the heat pump {DEMO_ID} is not connected: its bridge was stopped "
            f"($state disconnected on mqtts://{broker.host}:{broker.tls_port}); start aurora_mqtt_bridge"
        ], done.stderr
        assert took < FAST_S
        states = Collector(broker.client("homeassistant"), f"homie/{DEMO_ID}/$state")
        with Bridge.start(tmp_path, broker, sim.url, name="bridge2") as bridge:
            bridge.process.kill()
            bridge.process.wait(30)
            # the broker publishes the will once it sees the connection drop
            wait_for(
                lambda: [m for m in states.received(f"homie/{DEMO_ID}/$state") if m.payload == b"lost"],
                30,
                "$state lost",
            )
            done, took = fetch(broker, "")
        assert 1 == done.returncode
        assert [
            f"($state lost on mqtts://{broker.host}:{broker.tls_port})" in line for line in error_lines(done)
        ] == [True], done.stderr
        assert took < FAST_S
