"""``--homie-root`` (``AURORA_HOMIE_ROOT``) in every tool that talks MQTT: a bridge publishing under
another root is found by fetch and by the web tool given the same root, and only by them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Broker, free_port, wait_for
from tests.support.bridge import DEMO_ID, READY_S, Bridge
from tests.support.broker import Collector
from tests.support.processes import bare_env
from tests.support.sim import Sim
from tests.support.web import mqtt_env, web_tool

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
ROOT = "site2"


def _fetch(broker: Broker, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "aurora_fetch"), broker.url("fetch"), "745", *args],
        env=bare_env(
            "/usr/bin:/bin",
            AURORA_MQTT_PASSWORD_FILE=str(broker.password_file("fetch")),
            AURORA_MQTT_CA_FILE=str(broker.ca_file),
            **(env or {}),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_tool_finds_the_bridge_under_its_homie_root(tmp_path: Path) -> None:
    from tests.integration.test_web_mqtt import Session

    with Broker.start(tmp_path, homie_root=ROOT) as broker:
        state = Collector(broker.client("homeassistant"), f"{ROOT}/{DEMO_ID}/$state")
        with (
            Sim.start(tmp_path, "--tcp", "127.0.0.1:0") as sim,
            Bridge.start(tmp_path, broker, sim.url, env={"AURORA_HOMIE_ROOT": ROOT}, ready_deadline_s=None),
        ):
            wait_for(
                lambda: any(m.payload == b"ready" and not m.retain for m in state.messages),
                READY_S,
                f"{ROOT}/{DEMO_ID}/$state ready",
            )
            by_option = _fetch(broker, "--homie-root", ROOT)
            by_env = _fetch(broker, env={"AURORA_HOMIE_ROOT": ROOT})
            by_topic = _fetch(broker, "--mqtt-topic", f"{ROOT}/{DEMO_ID}/$modbus")
            default = _fetch(broker)
            port = free_port()
            log = tmp_path / "web.log"
            with web_tool(
                [broker.url("web"), "--homie-root", ROOT],
                port=port,
                env=mqtt_env(broker),
                log=log,
                deadline_s=READY_S,
            ):
                session = Session(f"http://127.0.0.1:{port}", broker.password("web-ui"))

                def live() -> bool:
                    answer = session.json("/api/state")
                    return (
                        answer["device"] == DEMO_ID and answer["state"] == "ready" and bool(answer["nodes"])
                    )

                wait_for(live, READY_S, f"{DEMO_ID} ready in the web tool's /api/state under {ROOT}/")
    for done in (by_option, by_env, by_topic):
        assert 0 == done.returncode, done.stderr
        assert ["Heating Set Point (745): 68.0°F"] == done.stdout.splitlines()
    # the control: without the root, fetch looks under homie/ and says where it looked
    assert 1 == default.returncode
    assert "no aurora-* device under homie/" in default.stderr
