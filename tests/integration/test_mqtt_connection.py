"""``aurora.mqtt.MqttConnection`` against the real mosquitto with the project's config: what its
users rely on it for (subscriptions across a broker restart, discovery, the network thread)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from aurora.mqtt import MqttConnection, MqttSettings, client_id

from tests.support import Broker, wait_for
from tests.support.broker import RestartableBroker, publish

pytestmark = pytest.mark.integration


def _connection(broker: Broker, user: str) -> MqttConnection:
    settings = MqttSettings.from_url(
        broker.url(user), password_file=str(broker.password_file(user)), ca_file=str(broker.ca_file)
    )
    return MqttConnection(settings, client_id(user))


def test_a_kept_subscription_survives_a_broker_restart(tmp_path: Path) -> None:
    with RestartableBroker.started(tmp_path) as broker:
        watcher = _connection(broker, "homeassistant")
        got: list[bytes] = []
        arrived = threading.Event()
        ups: list[bool] = []

        def on_message(msg: object) -> None:
            got.append(getattr(msg, "payload", b""))
            arrived.set()

        watcher.on_message = on_message
        watcher.on_connected = lambda first, _present: ups.append(first)
        watcher.connect(10)
        try:
            watcher.subscribe("homie/aurora-1/zone1/+/set", 1, keep=True)
            assert watcher.network_alive()
            broker.restart()  # a clean session: the broker forgot the subscription
            wait_for(lambda: len(ups) >= 2, 30, "the reconnect")
            assert ups[0] and not ups[-1]  # the second connect is a reconnect
            # the resubscription goes out with the reconnect; a publish after its SUBACK arrives
            watcher.subscribe("homie/aurora-1/$barrier", 0)
            publish(broker.client("homeassistant"), "homie/aurora-1/zone1/mode/set", "heat")
            assert arrived.wait(10)
            assert [b"heat"] == got
        finally:
            watcher.close()
        assert not watcher.network_alive()


def test_discovery_waits_for_a_device_that_comes_later_then_finds_every_retained_state(
    broker: Broker,
) -> None:
    admin = broker.client("admin")
    fetch = _connection(broker, "fetch")
    fetch.connect(10)
    try:
        assert {} == fetch.discover("homie", timeout_s=10)  # none there, and no waiting asked
        late: dict[str, str] = {}
        looking = threading.Thread(target=lambda: late.update(fetch.discover("homie", wait_s=30)))
        started = time.monotonic()
        looking.start()
        assert looking.is_alive()  # waiting: nothing is there yet
        publish(admin, "homie/aurora-9/$state", "ready", retain=True)
        looking.join(30)
        assert {"aurora-9": "ready"} == late
        assert time.monotonic() - started < 15  # it took the device's $state, not its 30 s
        for device, state in {"aurora-1": "ready", "aurora-2": "lost", "other-3": "init"}.items():
            publish(admin, f"homie/{device}/$state", state, retain=True)
        started = time.monotonic()
        found = fetch.discover("homie", timeout_s=10)
        assert {"aurora-1": "ready", "aurora-2": "lost", "other-3": "init", "aurora-9": "ready"} == found
        assert time.monotonic() - started < 5  # no quiet-time wait: the second SUBACK ends it
    finally:
        fetch.close()
