"""web_aid_tool across a broker restart, in headless Chromium: the page says when its values may be
old, and after the broker is back the live values and settings work again without a reload."""

from __future__ import annotations

import contextlib
import re
import sys
from pathlib import Path

import pytest

from tests.integration.test_bridge import RestartableBroker  # the project's broker, stoppable
from tests.support import Collector, free_port, running, wait_for
from tests.support.processes import tail
from tests.support.sim import Sim

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.integration]

BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEVICE = "aurora-2611000042"
READY_S = 30.0


def _write_log(path: Path) -> list[tuple[int, int]]:
    if not path.exists():
        return []
    return [(int(a), int(v)) for a, v in (line.split() for line in path.read_text().splitlines())]


def test_the_page_notices_a_broker_restart_and_recovers_without_a_reload(tmp_path: Path) -> None:
    """paho reconnects on its own; the feed must subscribe again and the /set path must still work."""
    expect = playwright_api.expect
    writes = tmp_path / "writes.log"
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(RestartableBroker.started(tmp_path))
        sim = stack.enter_context(Sim.start(tmp_path, "--tcp", "127.0.0.1:0", "--write-log", str(writes)))
        bridge_argv = [
            str(BIN / "aurora_mqtt_bridge"),
            sim.url,
            broker.url("bridge"),
            "--mqtt-ca-file",
            str(broker.ca_file),
            "--fast-interval",
            "1",
            "--medium-interval",
            "2",
        ]
        stack.enter_context(
            running(
                bridge_argv,
                env={"MQTT_PASSWORD_FILE": str(broker.password_file("bridge"))},
                log=tmp_path / "bridge.log",
            )
        )
        watch = Collector(broker.client("homeassistant"), f"homie/{DEVICE}/$state")
        wait_for(
            lambda: any(m.payload == b"ready" for m in watch.received(f"homie/{DEVICE}/$state")),
            READY_S,
            "the bridge's $state ready",
        )
        port = free_port()
        web_log = tmp_path / "web.log"
        web_env = {
            "AURORA_WEB_PASSWORD_FILE": str(broker.password_file("web-ui")),
            "MQTT_PASSWORD_FILE": str(broker.password_file("web")),
            "MQTT_CA_FILE": str(broker.ca_file),
        }
        web = stack.enter_context(
            running(
                [str(BIN / "web_aid_tool"), broker.url("web"), "--port", str(port)], env=web_env, log=web_log
            )
        )

        def listening() -> bool:
            if web.poll() is not None:
                raise AssertionError(f"web_aid_tool exited:\n{tail(web_log)}")
            return f"listening: http://127.0.0.1:{port}/" in web_log.read_text()

        wait_for(listening, READY_S, "web_aid_tool's listening line")
        url = f"http://127.0.0.1:{port}"
        playwright = stack.enter_context(playwright_api.sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        page = browser.new_page()
        page.goto(url + "/ui/")
        page.fill("#password", broker.password("web-ui"))
        page.click("button[type=submit]")
        status = page.locator("#live-status")
        expect(status).to_have_text("live", timeout=READY_S * 1000)

        broker.down()
        expect(status).to_have_text(re.compile("broker offline"), timeout=READY_S * 1000)
        broker.up()
        expect(status).to_have_text("live", timeout=READY_S * 1000)

        page.goto(url + "/ui/#settings")
        form = page.locator('form.setting[data-setting="dhw/set-point"]')
        expect(form.locator(".current")).not_to_have_text("–")
        form.locator("input").fill("126")
        form.locator("button").click()
        page.click("#confirm-ok")
        wait_for(lambda: (401, 1260) in _write_log(writes), 15, "401 = 1260 in the sim after the restart")
        expect(form.locator(".current")).to_have_text("126.0°F", timeout=READY_S * 1000)
        assert web.poll() is None
