"""web_aid_tool across a broker restart, in headless Chromium: the page says when its values may be
old, and after the broker is back the live values and settings work again without a reload."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest

from tests.support import RestartableBroker, free_port, wait_for
from tests.support.bridge import READY_S, Bridge
from tests.support.sim import Sim, write_log
from tests.support.web import CHROMIUM, CHROMIUM_ARGS, mqtt_env, web_tool

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_the_page_notices_a_broker_restart_and_recovers_without_a_reload(tmp_path: Path) -> None:
    """paho reconnects on its own; the feed must subscribe again and the /set path must still work."""
    expect = playwright_api.expect
    writes = tmp_path / "writes.log"
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(RestartableBroker.started(tmp_path))
        sim = stack.enter_context(Sim.start(tmp_path, "--tcp", "127.0.0.1:0", "--write-log", str(writes)))
        poll = ("--fast-interval", "1", "--medium-interval", "2")  # the slow tier at its default
        stack.enter_context(Bridge.start(tmp_path, broker, sim.url, poll=poll, ready_deadline_s=READY_S))
        port = free_port()
        web_log = tmp_path / "web.log"
        web = stack.enter_context(web_tool([broker.url("web")], port=port, env=mqtt_env(broker), log=web_log))
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
        wait_for(lambda: (401, 1260) in write_log(writes), 15, "401 = 1260 in the sim after the restart")
        expect(form.locator(".current")).to_have_text("126.0°F", timeout=READY_S * 1000)
        assert web.poll() is None
