"""``aurora_fetch mqtts://…`` made short (issue 15) without losing what it checks.

The bus opens in one round trip (the SUBSCRIBEs go right behind CONNECT) and sends no ping
before the first request; the caller's thread drives paho (no network thread to wake on the
way); paho's unused imports are left unloaded. Still: a refused login fails
the open with its reason, a bridge that answers nothing fails the first
request with the same advice a ping gave, and each request gets exactly its own reply. The
timings are in the bench (tests/perf/bench_startup.py, bench_fetch.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aurora.errors import BusError, BusTimeout, LoginRefused
from aurora.mqtt import MqttSettings
from aurora.ports import open_bus
from aurora.rpc_client import DEFAULT_TIMEOUT_S, MqttBus

from tests.support import Broker, RestartableBroker
from tests.support.bridge import DEMO_ID, Bridge
from tests.support.sim import Sim

pytestmark = pytest.mark.integration

BASE = f"homie/{DEMO_ID}/$modbus"
QUIET = ["--fast-interval", "3600", "--medium-interval", "3600", "--slow-interval", "3600"]
# Loaded for real by paho's import unless deferred, or by our own modules once: a one-shot
# fetch never uses them.
UNUSED = (
    "urllib.request",
    "email",
    "http.client",
    "tempfile",
    "hashlib",
    "uuid",
    "structlog",
    "asyncio",
    "dataclasses",  # aurora.records instead (issue 15)
    "serial",  # pyserial and the serial transport: only serial ports need them
    "aurora.transport",
    "traceback",  # logging's, for formatting an exception (with linecache, tokenize, textwrap)
    "linecache",
    "platform",  # paho's one use, platform.system(), is answered without it
)

# aurora_fetch's main in this interpreter; then which modules were really loaded (a deferred
# one is a stand-in, a subclass of the module type, until first used).
PROBE = """
import json, sys, types
from aurora.fetch.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
sys.stdout.flush()
real = sorted(n for n, m in list(sys.modules.items()) if type(m) is types.ModuleType)
sys.stderr.write("\\nMODULES " + json.dumps(real) + "\\n")
raise SystemExit(code)
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    tmp = tmp_path_factory.mktemp("brokerpath")
    with (
        Broker.start(tmp) as broker,
        Sim.start(tmp, "--tcp", "127.0.0.1:0", "--no-drift") as sim,
        Bridge.start(tmp, broker, sim.url, poll=QUIET),
    ):
        yield broker


def settings(broker: Broker, user: str = "fetch", path: str = BASE, **kwargs: str) -> MqttSettings:
    return MqttSettings.from_url(
        broker.url(user, path),
        password_file=kwargs.get("password_file", str(broker.password_file(user))),
        ca_file=str(broker.ca_file),
    )


def _loaded(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def test_a_fetch_process_reads_through_the_broker_without_loading_what_it_does_not_use(
    setup: Broker,
) -> None:
    env = {
        **os.environ,
        "AURORA_MQTT_PASSWORD_FILE": str(setup.password_file("fetch")),
        "AURORA_MQTT_CA_FILE": str(setup.ca_file),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, setup.url("fetch", BASE), "745-747"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    head, _, listed = done.stderr.rpartition("\nMODULES ")
    modules = set(json.loads(listed))
    assert 0 == done.returncode, head
    assert "Heating Set Point (745): 68.0°F" == done.stdout.splitlines()[0]
    assert 3 == len(done.stdout.splitlines())
    assert _loaded(modules, "paho.mqtt.client") and _loaded(modules, "ssl")  # the control
    assert [] == [m for m in UNUSED if _loaded(modules, m)]


def test_without_a_ping_each_request_still_gets_exactly_its_reply(setup: Broker) -> None:
    bus = MqttBus.connect(settings(setup), ping=False)
    try:
        expected = {a: bus.read_ranges([(a, 1)])[0] for a in (745, 746, 747)}  # first reply: no ping before
        got: dict[int, list[int]] = {}
        errors: list[BaseException] = []

        def read(address: int) -> None:
            try:
                got[address] = [bus.read_ranges([(address, 1)])[0] for _ in range(5)]
            except BaseException as err:  # reported below
                errors.append(err)

        threads = [threading.Thread(target=read, args=(a,)) for a in expected]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert [] == errors
        assert {a: [v] * 5 for a, v in expected.items()} == got
        assert 680 == expected[745]  # the demo unit's 68.0 °F
    finally:
        bus.close()


def test_a_refused_login_fails_the_pipelined_open_with_its_reason(setup: Broker, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n", encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(LoginRefused):
        MqttBus.connect(settings(setup, password_file=str(wrong)), ping=False)
    assert time.monotonic() - started < 5  # the broker's answer, not a timeout


def test_a_bridge_that_answers_nothing_fails_the_first_request_with_the_advice(setup: Broker) -> None:
    """No bridge for this device (and no $state): not a retryable timeout, but what a ping said."""
    bus = MqttBus.connect(settings(setup, path="homie/aurora-nobody/$modbus"), ping=False, timeout_s=1)
    try:
        with pytest.raises(BusError, match="no answer from the bridge of aurora-nobody") as raised:
            bus.read_ranges([(745, 1)])
        assert not isinstance(raised.value, BusTimeout)
        assert "is aurora_mqtt_bridge running" in str(raised.value)
    finally:
        bus.close()


def test_the_tools_bus_runs_no_paho_thread_and_reads_in_the_callers_thread(setup: Broker) -> None:
    """``open_bus`` (aurora_fetch's): each request is written and its reply read by the caller."""
    before = set(threading.enumerate())
    bus = open_bus(setup.url("fetch", BASE), mqtt=settings(setup))
    assert isinstance(bus, MqttBus)
    try:
        assert [] == [t.name for t in set(threading.enumerate()) - before]
        assert [680, 740] == bus.read_ranges([(745, 2)])
        answer = bus.query("745-747")  # a whole query in one request, too
        assert [745, 746, 747] == sorted(answer.values)
    finally:
        bus.close()
    assert not bus._mqtt.connected


def test_a_broker_that_goes_away_fails_the_next_request_at_once(tmp_path: Path) -> None:
    """Without paho's thread nothing reconnects: the next request says the connection is gone
    instead of waiting out its timeout."""
    with (
        RestartableBroker.started(tmp_path) as broker,
        Sim.start(tmp_path, "--tcp", "127.0.0.1:0", "--no-drift") as sim,
        Bridge.start(tmp_path, broker, sim.url, poll=QUIET),
    ):
        bus = open_bus(broker.url("fetch", BASE), mqtt=settings(broker))
        try:
            assert [680] == bus.read_ranges([(745, 1)])
            broker.down()
            started = time.monotonic()
            with pytest.raises(BusError, match="connection"):
                bus.read_ranges([(745, 1)])
            assert time.monotonic() - started < DEFAULT_TIMEOUT_S / 2
        finally:
            bus.close()
