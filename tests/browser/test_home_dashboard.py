"""Issue 17: the homeowner's page in headless Chromium, at phone and desktop sizes, against the real
broker, the sim holding a known power (so the energy counters and COPs move within seconds), the
bridge and web_aid_tool as the README starts them. Screenshots go to artifacts/web/.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port, wait_for
from tests.support.bridge import READY_S, Bridge
from tests.support.broker import RestartableBroker
from tests.support.sim import Sim
from tests.support.web import CHROMIUM, CHROMIUM_ARGS, mqtt_env, web_tool

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "web"
LIVE_S = 40.0
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# 10 kW drawn, 100 000 BTU/h extracted: COP (29.3 kW + 9 kW) / 10 kW ≈ 3.8; 0.05 kWh (when the
# COP of the day starts to count) within 18 s
POWER = "compressor=9000,blower=500,aux=0,pump=500,extraction=100000"


@dataclass
class Stack:
    broker: RestartableBroker
    sim: Sim
    url: str
    password: str
    port: int
    web_log: Path
    restart_web: contextlib.ExitStack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path) as running:
        yield running


@contextlib.contextmanager
def running_stack(tmp_path: Path) -> Iterator[Stack]:
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(RestartableBroker.started(tmp_path))
        sim = stack.enter_context(Sim.start(tmp_path, "--tcp", "127.0.0.1:0", "--power", POWER))
        stack.enter_context(Bridge.start(tmp_path, broker, sim.url, ready_deadline_s=READY_S))
        port = free_port()
        web_log = tmp_path / "web.log"
        web = contextlib.ExitStack()
        web.enter_context(web_tool([broker.url("web")], port=port, env=mqtt_env(broker), log=web_log))
        stack.callback(web.close)
        yield Stack(broker, sim, f"http://127.0.0.1:{port}", broker.password("web-ui"), port, web_log, web)


@pytest.fixture
def page(stack: Stack) -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_context(viewport=DESKTOP).new_page()
        tab.set_default_timeout(15_000)
        yield tab
        browser.close()


def log_in(page: object, stack: Stack) -> None:
    page.goto(stack.url + "/ui/")  # type: ignore[attr-defined]
    page.fill("#password", stack.password)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]


def shot(page: object, name: str, *, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)  # type: ignore[attr-defined]


def kwh(page: object, tile: str) -> float:
    text = page.locator(f'[data-tile="{tile}"] .tile-value').inner_text()  # type: ignore[attr-defined]
    match = re.fullmatch(r"(\d+\.\d+) kWh", text)
    assert match, text
    return float(match.group(1))


def test_the_home_page_answers_what_how_well_and_how_much(stack: Stack, page: object) -> None:
    expect = playwright_api.expect
    log_in(page, stack)
    expect(page.locator("#home")).to_be_visible()  # type: ignore[attr-defined]
    expect(page.locator("#home-mode")).to_have_text("Heating", timeout=LIVE_S * 1000)  # type: ignore[attr-defined]
    expect(page.locator("#home-stage")).to_contain_text("compressor speed 6 of 12")  # type: ignore[attr-defined]
    expect(page.locator("#home-power")).to_have_text("10.00 kW")  # type: ignore[attr-defined]
    zones = page.locator("#zones [data-zone]")  # type: ignore[attr-defined]
    expect(zones).to_have_count(3)
    expect(zones.nth(0).locator(".zone-temp")).to_have_text(re.compile(r"^\d+\.\d°F$"))
    expect(zones.nth(0).locator(".zone-call")).to_have_text("calling for heat (stage 1)")
    expect(zones.nth(1).locator(".zone-call")).to_have_text("not calling")
    expect(zones.nth(0).locator(".zone-goal")).to_have_text("heat to 68.0°F")
    expect(page.locator('[data-check="fault"]')).to_contain_text("No fault")  # type: ignore[attr-defined]
    expect(page.locator('[data-check="ewt"]')).to_have_class(re.compile(r"\bok\b"))  # type: ignore[attr-defined]
    expect(page.locator('[data-check="delta-t"]')).to_contain_text("normal")  # type: ignore[attr-defined]
    expect(page.locator('[data-tile="cop-now"] .tile-value')).to_have_text(re.compile(r"^\d\.\d$"))  # type: ignore[attr-defined]
    expect(page.locator('[data-tile="cop-today"] .tile-value')).to_have_text(  # type: ignore[attr-defined]
        re.compile(r"^3\.[5-9]$"), timeout=LIVE_S * 1000
    )
    wait_for(lambda: kwh(page, "energy-today") >= 0.05, LIVE_S, "energy used today on the page")
    assert kwh(page, "heat-today") > 3 * kwh(page, "energy-today")
    assert kwh(page, "energy-week") >= kwh(page, "energy-today")
    expect(page.locator("#schematic svg text", has_text="Ground loop")).to_have_count(1)  # type: ignore[attr-defined]
    expect(page.locator("#stale-banner")).to_be_hidden()  # type: ignore[attr-defined]
    page.click("#units")  # type: ignore[attr-defined]  # °C: the home page follows the switch
    expect(zones.nth(0).locator(".zone-goal")).to_have_text("heat to 20.0°C")
    page.click("#units")  # type: ignore[attr-defined]
    expect(zones.nth(0).locator(".zone-goal")).to_have_text("heat to 68.0°F")
    shot(page, "home-desktop")
    page.set_viewport_size(PHONE)  # type: ignore[attr-defined]
    width = page.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
    assert width <= PHONE["width"], "the home page scrolls sideways on a phone"
    shot(page, "home-phone")
    shot(page, "home-phone-screen", full_page=False)
    page.set_viewport_size(DESKTOP)  # type: ignore[attr-defined]

    page.click('.more a[href="#dashboard"]')  # type: ignore[attr-defined]  # the full list, one click away
    energy = page.locator('#nodes [data-node="energy"]')  # type: ignore[attr-defined]
    expect(energy.locator('[data-key="energy/electrical-total"]')).to_have_text(
        re.compile(r"^\d+\.\d\d kWh$")
    )
    expect(energy.locator('[data-key="energy/history"]')).to_have_count(0)  # JSON: drawn as bars, not listed
    width = page.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
    assert width <= DESKTOP["width"], "the full list is wider than the window"

    page.goto(stack.url + "/ui/#trends")  # type: ignore[attr-defined]
    for chart in ("temperature", "power", "loop"):
        expect(page.locator(f"#chart-{chart} polyline").first).to_be_attached(timeout=LIVE_S * 1000)  # type: ignore[attr-defined]
    expect(page.locator("#chart-energy rect.bar.electrical")).to_have_count(1)  # type: ignore[attr-defined]
    colours = page.eval_on_selector_all(
        "#chart-power polyline", "ls => ls.map(l => l.getAttribute('stroke'))"
    )  # type: ignore[attr-defined]
    assert len(colours) >= 4 and len(set(colours)) == len(colours), colours
    shot(page, "trends-grouped-desktop")
    page.set_viewport_size(PHONE)  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]  # the charts redraw for the narrower page
        "() => Number(document.querySelector('#chart-power svg').viewBox.baseVal.width) <= 400"
    )
    shot(page, "trends-grouped-phone")


def test_the_alert_banner_shows_when_the_heat_pump_stops_answering(stack: Stack, page: object) -> None:
    expect = playwright_api.expect
    log_in(page, stack)
    expect(page.locator("#home-mode")).to_have_text("Heating", timeout=LIVE_S * 1000)  # type: ignore[attr-defined]
    expect(page.locator("#stale-banner")).to_be_hidden()  # type: ignore[attr-defined]
    stack.sim.stop()
    banner = page.locator("#stale-banner")  # type: ignore[attr-defined]
    expect(banner).to_be_visible(timeout=LIVE_S * 1000)
    expect(banner).to_contain_text("No answer from the heat pump")
    expect(page.locator('[data-check="data"]')).to_have_class(re.compile(r"\bwarn\b"))  # type: ignore[attr-defined]
    page.set_viewport_size(PHONE)  # type: ignore[attr-defined]
    shot(page, "home-alert-phone", full_page=False)
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)  # type: ignore[attr-defined]
        # Opened at a page's address (a bookmark, a reload), the page starts at its top, not under
        # the sticky header
        page.goto(stack.url + "/ui/#dashboard")  # type: ignore[attr-defined]
        expect(banner).to_be_visible(timeout=LIVE_S * 1000)
        expect(page.locator("#summary [data-key]").first).to_have_attribute("data-age", re.compile("^as of "))  # type: ignore[attr-defined]
        assert page.evaluate("window.scrollY") == 0  # type: ignore[attr-defined]
        # Each value's age stays inside its own cell of the summary
        overflowing = page.evaluate(  # type: ignore[attr-defined]
            "[...document.querySelectorAll('#summary [data-key]')]"
            ".filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.dataset.key)"
        )
        assert overflowing == [], overflowing
        # Scrolled down, the banner stays in sight without covering the tabs
        page.mouse.wheel(0, 800)  # type: ignore[attr-defined]
        page.wait_for_function("() => window.scrollY > 0")  # type: ignore[attr-defined]
        on_top = page.evaluate(  # type: ignore[attr-defined]
            """() => [...document.querySelectorAll('#tabs a'), document.querySelector('#stale-banner')]
            .map(e => { const r = e.getBoundingClientRect(), x = r.x + r.width / 2, y = r.y + r.height / 2;
                        return e.contains(document.elementFromPoint(x, y)); })"""
        )
        assert all(on_top), on_top
        page.click('#tabs a[data-tab="faults"]')  # type: ignore[attr-defined]
        page.wait_for_function("() => window.scrollY === 0")  # type: ignore[attr-defined]


def test_energy_history_survives_a_restart_of_the_web_tool(stack: Stack, page: object) -> None:
    """The page's energy figures come from the bridge's retained counters, not from the web
    tool's memory: a restarted web_aid_tool shows the same day at once."""
    expect = playwright_api.expect
    log_in(page, stack)
    wait_for(lambda: kwh(page, "energy-today") >= 0.02, LIVE_S, "energy used today on the page")
    before = kwh(page, "energy-today")
    stack.restart_web.close()
    stack.web_log.write_text("")
    stack.restart_web.enter_context(
        web_tool([stack.broker.url("web")], port=stack.port, env=mqtt_env(stack.broker), log=stack.web_log)
    )
    log_in(page, stack)
    expect(page.locator('[data-tile="energy-today"] .tile-value')).to_have_text(  # type: ignore[attr-defined]
        re.compile(r"\d"), timeout=LIVE_S * 1000
    )
    wait_for(lambda: kwh(page, "energy-today") >= before, LIVE_S, "today's energy as before the restart")
    page.goto(stack.url + "/ui/#trends")  # type: ignore[attr-defined]
    expect(page.locator("#chart-energy rect.bar.electrical")).to_have_count(1)  # type: ignore[attr-defined]


def test_a_week_of_counted_days_shows_as_bars_and_weekly_totals(tmp_path: Path) -> None:
    """A bridge that has counted for a week already (its state file, as it leaves it): six days
    of 10 kWh used and 35 kWh delivered, then today."""
    expect = playwright_api.expect
    today = dt.date.today()
    days = {
        (today - dt.timedelta(days=6 - i)).isoformat(): {
            "electrical-total": 10.0 * i,
            "thermal-heating": 35.0 * i,
        }
        for i in range(7)
    }
    state = {
        "version": 1,
        "totals": {"electrical-total": 60.0, "thermal-heating": 210.0},
        "days": days,
        "last": None,
    }
    (tmp_path / "energy-aurora-2611000042.json").write_text(json.dumps(state))  # where Bridge.start keeps it
    with running_stack(tmp_path) as stack, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport=DESKTOP).new_page()
        log_in(page, stack)
        wait_for(lambda: kwh(page, "energy-today") > 0, LIVE_S, "today's energy on the page")
        week = kwh(page, "energy-week")
        assert 60.0 <= week < 61.0  # shown to 0.1 kWh above 10 kWh
        assert 210.0 <= kwh(page, "heat-week") < 215.0
        expect(page.locator('[data-tile="cop-running"] .tile-value')).to_have_text(re.compile(r"^3\.[5-6]$"))
        page.goto(stack.url + "/ui/#trends")
        bars = page.locator("#chart-energy rect.bar.electrical")
        expect(bars).to_have_count(7)
        heights = page.eval_on_selector_all(
            "#chart-energy rect.bar.electrical", "rs => rs.map(r => +r.getAttribute('height'))"
        )
        assert len(set(heights[:6])) == 1 and heights[6] < heights[0]  # six full days, today just begun
        shot(page, "trends-week-desktop")
        browser.close()
