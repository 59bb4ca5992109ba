"""MQTT over WebSockets: every tool takes ``ws://`` and ``wss://``, against the real mosquitto with
the project's config and its optional WebSocket listener (``aurora_setup --websocket-port``).

The transport is one field of ``aurora.mqtt.MqttSettings``; nothing else in the tools changed for
it, which is what these tests prove from the outside.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aurora.errors import LoginRefused, PublishRefused
from aurora.mqtt import MqttConnection, MqttSettings, client_id

from tests.support import Broker, free_port, wait_for
from tests.support.bridge import DEMO_ID, READY_S, Bridge
from tests.support.broker import Collector, publish
from tests.support.processes import bare_env
from tests.support.sim import Sim
from tests.support.web import mqtt_env, web_tool

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
EXPECTED = "Heating Set Point (745): 68.0°F"  # the sim's demo unit


@pytest.fixture(scope="module")
def ws_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with Broker.start(tmp_path_factory.mktemp("ws-broker"), websockets=True) as broker:
        yield broker


def _settings(broker: Broker, user: str, scheme: str = "wss", **kwargs: str) -> MqttSettings:
    return MqttSettings.from_url(
        broker.url(user, scheme=scheme),
        password_file=str(broker.password_file(user)),
        ca_file=str(broker.ca_file),
        **kwargs,
    )


def test_the_setup_writes_a_wss_listener_with_the_same_tls_only_when_asked(ws_broker: Broker) -> None:
    conf = ws_broker.layout.broker_conf.read_text()
    assert "protocol websockets" in conf
    block = conf.split("protocol websockets", 1)[1]
    assert str(ws_broker.layout.broker_dir / "server.crt") in block  # TLS: the broker's certificate
    assert "tls_version tlsv1.2" in block


def test_fetch_reads_registers_over_wss(tmp_path: Path, ws_broker: Broker) -> None:
    with (
        Sim.start(tmp_path, "--tcp", "127.0.0.1:0") as sim,
        Bridge.start(tmp_path, ws_broker, sim.url),
    ):
        env = bare_env(
            "/usr/bin:/bin",
            AURORA_MQTT_PASSWORD_FILE=str(ws_broker.password_file("fetch")),
            AURORA_MQTT_CA_FILE=str(ws_broker.ca_file),
        )
        over_tls = subprocess.run(
            [str(BIN / "aurora_fetch"), ws_broker.url("fetch"), "745-747"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        over_ws = subprocess.run(
            [str(BIN / "aurora_fetch"), ws_broker.url("fetch", scheme="wss"), "745-747"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        named = subprocess.run(
            [
                str(BIN / "aurora_fetch"),
                ws_broker.url("fetch", "/mqtt", scheme="wss"),
                "745",
                "--mqtt-topic",
                f"homie/{DEMO_ID}/$modbus",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert 0 == over_ws.returncode, over_ws.stderr
    assert EXPECTED in over_ws.stdout.splitlines()
    assert over_tls.stdout == over_ws.stdout  # the same answer whichever way it came
    assert 0 == named.returncode, named.stderr
    assert [EXPECTED] == named.stdout.splitlines()


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_the_bridge_publishes_over_websockets(tmp_path: Path, ws_broker: Broker, scheme: str) -> None:
    """The bridge connects over ws:// or wss://; a client on the TLS listener sees its tree and
    a /set it sends there reaches the unit."""
    watch = Collector(ws_broker.client("homeassistant"), f"homie/{DEMO_ID}/+/+")
    with (
        Sim.start(tmp_path, "--tcp", "127.0.0.1:0") as sim,
        Bridge.start(tmp_path, ws_broker, sim.url, scheme=scheme, name=f"bridge-{scheme}") as bridge,
    ):
        assert any(a.startswith(f"{scheme}://bridge@") for a in bridge.argv)
        value = watch.wait_for(f"homie/{DEMO_ID}/+/+", 10)
        assert value.payload
        results = Collector(ws_broker.client("homeassistant"), f"homie/{DEMO_ID}/$write-result")
        publish(ws_broker.client("homeassistant"), f"homie/{DEMO_ID}/dhw/set-point/set", "121")
        answer = json.loads(results.wait_for(f"homie/{DEMO_ID}/$write-result", 20).payload)
        assert answer["result"] in ("applied", "unconfirmed"), answer
    connected = [
        json.loads(line) for line in bridge.log.read_text().splitlines() if '"mqtt_connected"' in line
    ]
    assert connected and connected[0]["broker"].startswith(f"{scheme}://")


def test_the_web_feed_runs_over_wss(tmp_path: Path, ws_broker: Broker) -> None:
    from tests.integration.test_web_mqtt import Session

    port = free_port()
    log = tmp_path / "web.log"
    with (
        Sim.start(tmp_path, "--tcp", "127.0.0.1:0") as sim,
        Bridge.start(tmp_path, ws_broker, sim.url),
        web_tool(
            [ws_broker.url("web", scheme="wss")],
            port=port,
            env=mqtt_env(ws_broker),
            log=log,
            deadline_s=READY_S,
        ),
    ):
        session = Session(f"http://127.0.0.1:{port}", ws_broker.password("web-ui"))

        def live() -> bool:
            state = session.json("/api/state")
            return state["device"] == DEMO_ID and state["state"] == "ready" and bool(state["nodes"])

        wait_for(live, READY_S, f"{DEMO_ID} ready in /api/state of a web tool on wss://")
        assert "AWL ID=2611000042&" in session.text("/config.cgi")  # a register read: the RPC over wss
    assert '"mqtt_connected"' in log.read_text()


def test_the_acl_and_the_passwords_hold_over_websockets(ws_broker: Broker) -> None:
    """fetch may not write a setting nor raw registers over wss:// either; a wrong password is refused."""
    fetch = MqttConnection(_settings(ws_broker, "fetch"), client_id("fetch"))
    fetch.connect(10)
    try:
        setting = fetch.publish(f"homie/{DEMO_ID}/dhw/set-point/set", "120", qos=1)
        raw = fetch.publish(f"homie/{DEMO_ID}/$modbus/745/set", "700", qos=1)
        for future in (setting, raw):
            with pytest.raises(PublishRefused, match="Not authorized"):
                future.result(10)
        # the control: what the ACL grants fetch goes through on the same connection
        fetch.publish(f"homie/{DEMO_ID}/$modbus/request/fetch/{fetch.client_id}", "{}", qos=1).result(10)
    finally:
        fetch.close()
    wrong = MqttSettings.from_url(
        ws_broker.url("fetch", scheme="wss").replace("fetch@", "fetch:not-the-password@"),
        ca_file=str(ws_broker.ca_file),
    )
    intruder = MqttConnection(wrong, client_id("fetch"))
    with pytest.raises(LoginRefused):
        intruder.connect(10)
    plain = MqttConnection(_settings(ws_broker, "fetch", scheme="ws"), client_id("fetch"))
    plain.connect(10)  # the tests' plain listener: the same passwords
    plain.close()


@pytest.mark.parametrize(
    ("scheme", "listener", "says"),
    [
        ("wss", "mqtts", "did not accept a WebSocket"),  # wss:// to the MQTT-over-TLS port
        ("ws", "wss", "expects TLS; use wss://"),  # ws:// to the TLS WebSocket port
        ("mqtts", "wss", "use ws:// or wss://"),  # mqtts:// to the WebSocket port
    ],
)
def test_the_wrong_listener_is_one_line_that_says_which_url_to_use(
    ws_broker: Broker, scheme: str, listener: str, says: str
) -> None:
    port = {"mqtts": ws_broker.tls_port, "wss": ws_broker.wss_port}[listener]
    url = f"{scheme}://fetch@{ws_broker.host}:{port}/"
    done = subprocess.run(
        [str(BIN / "aurora_fetch"), url, "745"],
        env=bare_env(
            "/usr/bin:/bin",
            AURORA_MQTT_PASSWORD_FILE=str(ws_broker.password_file("fetch")),
            AURORA_MQTT_CA_FILE=str(ws_broker.ca_file),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 1 == done.returncode
    (line,) = done.stderr.splitlines()
    print(line)  # shown with -s
    assert says in line, line
    assert "Traceback" not in done.stderr
