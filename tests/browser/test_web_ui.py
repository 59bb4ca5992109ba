"""The built-in web UI end to end in headless Chromium: the real broker (TLS, passwords, ACL), the
demo sim drifting its temperatures and power, the bridge, and web_aid_tool started as the README
starts them. Screenshots at desktop and phone widths go to artifacts/web/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import Broker, free_port, wait_for
from tests.support.bridge import READY_S, Bridge
from tests.support.processes import bare_env
from tests.support.sim import Sim, write_log
from tests.support.web import mqtt_env, web_tool

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.integration]

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "web"
LIVE_S = 30.0  # a drifting value reaches the page within a few bridge polls (1 s fast tier)
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass
class Stack:
    """Everything running, and where to find it."""

    broker: Broker
    url: str  # web_aid_tool's base URL
    ui_password: str
    writes_log: Path
    web_log: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Broker, sim (drifting, logging writes), bridge and web_aid_tool, for the whole module."""
    tmp = tmp_path_factory.mktemp("webui")
    writes = tmp / "writes.log"
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(Broker.start(tmp))
        sim = stack.enter_context(Sim.start(tmp, "--tcp", "127.0.0.1:0", "--write-log", str(writes)))
        stack.enter_context(Bridge.start(tmp, broker, sim.url, ready_deadline_s=READY_S))
        port = free_port()
        web_log = tmp / "web.log"
        stack.enter_context(web_tool([broker.url("web")], port=port, env=mqtt_env(broker), log=web_log))
        yield Stack(broker, f"http://127.0.0.1:{port}", broker.password("web-ui"), writes, web_log)


def log_in(page: object, stack: Stack, password: str | None = None, path: str = "/ui/") -> None:
    page.goto(stack.url + path)  # type: ignore[attr-defined]
    page.fill("#password", stack.ui_password if password is None else password)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    if "#" in path and password is None:  # the fragment never reaches the server's redirect
        page.wait_for_url(stack.url + "/ui/")  # type: ignore[attr-defined]
        page.goto(stack.url + path)  # type: ignore[attr-defined]


def shot(page: object, name: str, *, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # type: ignore[attr-defined]  # sticky header at the top
    page.screenshot(path=str(path), full_page=full_page)  # type: ignore[attr-defined]
    return path


def cell(page: object, key: str, scope: str = "#nodes") -> object:
    return page.locator(f'{scope} [data-key="{key}"]')  # type: ignore[attr-defined]


def writes(stack: Stack) -> list[tuple[int, int]]:
    return write_log(stack.writes_log)


def test_a_wrong_password_is_refused(stack: Stack, page: object) -> None:
    """The login form says so, no session cookie is set, and the UI stays out of reach."""
    log_in(page, stack, password="not-the-password")
    expect = playwright_api.expect
    expect(page.locator(".error")).to_have_text("Wrong password.")  # type: ignore[attr-defined]
    assert [] == [c for c in page.context.cookies() if c["name"] == "aurora_session"]  # type: ignore[attr-defined]
    page.goto(stack.url + "/ui/")  # type: ignore[attr-defined]
    assert page.url.startswith(stack.url + "/login")  # type: ignore[attr-defined]


def test_the_dashboard_shows_values_as_the_sim_changes_them(stack: Stack, page: object) -> None:
    """Power drifts every second in the demo sim; the page must show the new value without reload."""
    expect = playwright_api.expect
    log_in(page, stack, path="/ui/#dashboard")  # the full list ("All values")
    expect(page.locator("#live-status")).to_have_text("live")  # type: ignore[attr-defined]
    watts = cell(page, "compressor/watts")
    expect(watts).not_to_have_text("–")
    first = watts.inner_text()  # type: ignore[attr-defined]
    assert first.endswith(" W")
    page.wait_for_function(  # type: ignore[attr-defined]
        '([key, first]) => document.querySelector(`#nodes [data-key="${key}"]`).textContent !== first',
        arg=["compressor/watts", first],
        timeout=LIVE_S * 1000,
    )
    for label in ("Mode", "Current fault", "Entering water", "Zone 1"):
        expect(page.locator("#summary .label", has_text=label)).to_have_count(1)  # type: ignore[attr-defined]
    for node in ("abc", "compressor", "blower", "pump", "dhw", "zone1"):
        expect(page.locator(f'#nodes [data-node="{node}"]')).to_have_count(1)  # type: ignore[attr-defined]
    assert "No fault" == cell(page, "faults/current", "#summary").inner_text()  # type: ignore[attr-defined]
    shot(page, "dashboard-desktop")
    page.set_viewport_size(PHONE)  # type: ignore[attr-defined]
    width = page.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
    assert width <= PHONE["width"], "the dashboard scrolls sideways on a phone"
    nav = page.evaluate("(n => [n.scrollWidth, n.clientWidth])(document.querySelector('#tabs'))")  # type: ignore[attr-defined]
    assert nav[0] <= nav[1], "some tabs are out of sight on a phone"
    shot(page, "dashboard-phone")
    shot(page, "dashboard-phone-screen", full_page=False)  # what a phone shows first


def test_a_set_point_change_is_confirmed_first_and_ends_in_the_sims_registers(
    stack: Stack, page: object
) -> None:
    """Cancel writes nothing; confirming sends it through the bridge to IZ2 zone 1's heating set
    point register (21203, tenths of °F), and the page shows the value the heat pump reports."""
    expect = playwright_api.expect
    log_in(page, stack, path="/ui/#settings")
    key = "zone1/heating-target-temperature"
    form = page.locator(f'form.setting[data-setting="{key}"]')  # type: ignore[attr-defined]
    current = form.locator(".current")
    expect(current).not_to_have_text("–")
    before = float(current.inner_text().rstrip("°F"))
    target = int(before) + 1 if before < 90 else int(before) - 1
    form.locator("input").fill(str(target))
    form.locator("button").click()
    dialog = page.locator("#confirm")  # type: ignore[attr-defined]
    expect(dialog).to_be_visible()
    shown = re.compile(rf"{target}(\.0)?°F")  # the bridge publishes it as an integer or a float
    expect(page.locator("#confirm-text")).to_contain_text(shown)  # type: ignore[attr-defined]
    page.set_viewport_size(PHONE)  # type: ignore[attr-defined]
    shot(page, "settings-confirm-phone")
    page.click("#confirm-cancel")  # type: ignore[attr-defined]
    expect(form.locator(".result")).to_have_text("Not changed.")
    count = len(writes(stack))
    form.locator("button").click()
    page.click("#confirm-ok")  # type: ignore[attr-defined]
    wait_for(lambda: (21203, target * 10) in writes(stack)[count:], 15, f"21203 = {target * 10} in the sim")
    assert [(21203, target * 10)] == writes(stack)[count:]  # nothing else was written
    expect(current).to_have_text(shown, timeout=LIVE_S * 1000)
    expect(form.locator(".result")).to_have_text(
        re.compile(rf"^Done: the heat pump now reports {target}\.0°F\.$")
    )
    page.set_viewport_size(DESKTOP)  # type: ignore[attr-defined]
    shot(page, "settings-desktop")


def test_a_setting_outside_its_range_is_refused_and_nothing_is_written(stack: Stack, page: object) -> None:
    """The page checks $format before it asks (and the server again before publishing); the user
    sees why."""
    expect = playwright_api.expect
    log_in(page, stack, path="/ui/#settings")
    form = page.locator('form.setting[data-setting="zone1/heating-target-temperature"]')  # type: ignore[attr-defined]
    expect(form.locator(".current")).not_to_have_text("–")
    count = len(writes(stack))
    form.locator("input").evaluate("(el) => { el.removeAttribute('max'); el.value = '150'; }")
    form.locator("button").click()
    expect(form.locator(".result")).to_have_text("Not sent: 150°F is outside 40.0..90.0°F.")
    expect(page.locator("#confirm")).to_be_hidden()  # type: ignore[attr-defined]  # nothing to confirm
    assert [] == writes(stack)[count:]


def test_trend_charts_draw_temperature_and_power_lines(stack: Stack, page: object) -> None:
    """The project's own SVG charts, no CDN: lines appear from the history and live values."""
    expect = playwright_api.expect
    log_in(page, stack, path="/ui/#trends")
    expect(page.locator("#chart-temperature polyline").first).to_be_attached(timeout=LIVE_S * 1000)  # type: ignore[attr-defined]
    expect(page.locator("#chart-power polyline").first).to_be_attached(timeout=LIVE_S * 1000)  # type: ignore[attr-defined]
    expect(page.locator("#legend-power li").first).to_be_visible()  # type: ignore[attr-defined]
    shot(page, "trends-desktop")
    page.set_viewport_size(PHONE)  # type: ignore[attr-defined]
    shot(page, "trends-phone")


def test_no_page_loads_anything_from_another_host(stack: Stack, page: object) -> None:
    """A Pi on a LAN without internet must get the whole UI from web_aid_tool itself."""
    hosts: set[str] = set()
    page.on("request", lambda r: hosts.add(r.url.split("/")[2]))  # type: ignore[attr-defined]
    log_in(page, stack)
    playwright_api.expect(page.locator("#live-status")).to_have_text("live")  # type: ignore[attr-defined]
    assert {stack.url.split("/")[2]} == hosts


def test_config_cgi_never_shows_the_mqtt_password(stack: Stack, page: object) -> None:
    """docs/protocol.md#bugs-web: the original published the mqtt:// port argument, password included."""
    log_in(page, stack)
    reply = page.request.get(stack.url + "/config.cgi")  # type: ignore[attr-defined]
    assert 200 == reply.status
    body = reply.text()
    assert "AWL ID=" in body
    assert stack.broker.password("web") not in body and "mqtt" not in body
    assert stack.broker.password("web") not in stack.web_log.read_text()


def test_the_register_browser_and_fault_history_read_through_the_broker(stack: Stack, page: object) -> None:
    """The fetch query grammar over the bridge's $modbus request/response topics."""
    pytest.importorskip("aurora.rpc_client")
    expect = playwright_api.expect
    log_in(page, stack, path="/ui/#registers")
    page.fill("#query", "745-747,813")  # type: ignore[attr-defined]
    page.click("#query-form button[type=submit]")  # type: ignore[attr-defined]
    row = page.locator('#register-table tr[data-address="745"]')  # type: ignore[attr-defined]
    expect(row).to_contain_text("Heating Set Point")
    expect(page.locator("#register-table tbody tr")).to_have_count(4)  # type: ignore[attr-defined]
    shot(page, "registers-desktop")
    page.goto(stack.url + "/ui/#faults")  # type: ignore[attr-defined]
    expect(page.locator("#fault-current")).not_to_have_text("–")  # type: ignore[attr-defined]
    shot(page, "faults-desktop")


def test_clearing_fault_history_asks_first_and_writes_register_47(stack: Stack, page: object) -> None:
    """Through the bridge's faults/clear-history property: 47 = 0x5555 in the sim, nothing else."""
    expect = playwright_api.expect
    log_in(page, stack, path="/ui/#faults")
    expect(page.locator("#fault-current")).not_to_have_text("–")  # type: ignore[attr-defined]
    count = len(writes(stack))
    page.click("#faults-clear")  # type: ignore[attr-defined]
    expect(page.locator("#confirm-title")).to_have_text("Clear fault history?")  # type: ignore[attr-defined]
    page.click("#confirm-cancel")  # type: ignore[attr-defined]
    expect(page.locator("#faults-status")).to_have_text("Not cleared.")  # type: ignore[attr-defined]
    page.click("#faults-clear")  # type: ignore[attr-defined]
    page.click("#confirm-ok")  # type: ignore[attr-defined]
    expect(page.locator("#faults-status")).to_contain_text("Sent")  # type: ignore[attr-defined]
    wait_for(lambda: (47, 0x5555) in writes(stack)[count:], 15, "47 = 0x5555 in the sim")
    assert [(47, 0x5555)] == writes(stack)[count:]


def test_a_write_without_the_pages_csrf_token_is_refused(stack: Stack, page: object) -> None:
    """Logged in is not enough: a script without the token (another tab, a forged form) gets 403."""
    log_in(page, stack)
    playwright_api.expect(page.locator("#live-status")).to_have_text("live")  # type: ignore[attr-defined]
    count = len(writes(stack))
    reply = page.request.post(  # type: ignore[attr-defined]
        stack.url + "/api/set",
        data={"node": "zone1", "prop": "heating-target-temperature", "value": "70"},
    )
    assert 403 == reply.status
    assert [] == writes(stack)[count:]


AWL_PAGE = """<!doctype html><html><head><script src="/js/indexc.js"></script></head>
<body><p id="out">loading</p></body></html>"""
# What the AWL's own script does (docs/protocol.md#awl-cgi): plain same-origin GETs, no token.
AWL_SCRIPT = """
window.addEventListener("load", async () => {
  const get = async (q) => (await fetch("/request.cgi?" + q)).text();
  const wrote = await get("cmd=putregs&id=1&regs=340,4");
  const read = await get("cmd=getregs&id=2&regs=340;745,2");
  const units = await (await fetch("/getunits.cgi")).text();
  document.getElementById("out").textContent = [wrote, read, units].join(" | ");
});
"""


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """web_aid_tool on a dump of the demo unit (direct mode) with a stand-in for the AWL's files."""
    tmp = tmp_path_factory.mktemp("direct")
    html = tmp / "html"
    (html / "js").mkdir(parents=True)
    (html / "index.htm").write_text(AWL_PAGE)
    (html / "js" / "indexc.js").write_text(AWL_SCRIPT)
    secret = tmp / "ui-password"
    secret.write_text("direct-mode-password\n")
    port = free_port()
    log = tmp / "web.log"
    dump = REPO / "services" / "sim" / "demo.yml"
    env = {"AURORA_WEB_PASSWORD_FILE": str(secret)}
    with web_tool([str(dump), "--html", str(html)], port=port, env=env, log=log, deadline_s=READY_S):
        yield f"http://127.0.0.1:{port}", "direct-mode-password"


def test_the_awl_page_works_unchanged_behind_the_login(direct: tuple[str, str], page: object) -> None:
    """The user's AWL files at /: their scripts' GET putregs/getregs pass the same-origin check."""
    url, password = direct
    page.goto(url + "/")  # type: ignore[attr-defined]
    page.fill("#password", password)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    playwright_api.expect(page.locator("#out")).to_have_text(  # type: ignore[attr-defined]
        "cmd=putregs&id=1&err= | cmd=getregs&id=2&err=&values=4,680,740 | units=0"
    )


def test_direct_mode_offers_the_register_browser_and_says_why_live_pages_are_missing(
    direct: tuple[str, str], page: object
) -> None:
    """On a serial port or dump there is no Homie tree: --help and the page both say so."""
    expect = playwright_api.expect
    url, password = direct
    page.goto(url + "/ui/")  # type: ignore[attr-defined]
    page.fill("#password", password)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    expect(page.locator("#direct-notice")).to_be_visible()  # type: ignore[attr-defined]
    expect(page.locator('#tabs a[data-tab="dashboard"]')).to_be_hidden()  # type: ignore[attr-defined]
    expect(page.locator("#registers")).to_be_visible()  # type: ignore[attr-defined]
    page.click('#registers button[data-query="known"]')  # type: ignore[attr-defined]
    expect(page.locator("#query-status")).to_contain_text("registers")  # type: ignore[attr-defined]
    expect(page.locator('#register-table tr[data-address="813"]')).to_contain_text("IZ2 Version")  # type: ignore[attr-defined]
    page.set_viewport_size(PHONE)  # type: ignore[attr-defined]
    table = page.evaluate("(w => [w.scrollWidth, w.clientWidth])(document.querySelector('.table-wrap'))")  # type: ignore[attr-defined]
    assert table[0] <= table[1], "the register table scrolls sideways on a phone"
    shot(page, "registers-direct-phone", full_page=False)


def test_the_awl_endpoints_reach_the_unit_through_the_broker(stack: Stack, page: object) -> None:
    """getregs over the bridge's $modbus requests in docs/protocol.md#awl-cgi's format; putregs refused: the
    web account writes only properties' /set topics, never raw registers (mosquitto/README.md)."""
    pytest.importorskip("aurora.rpc_client")
    log_in(page, stack)
    request = page.request  # type: ignore[attr-defined]
    same = {"Sec-Fetch-Site": "same-origin"}
    body = request.get(stack.url + "/request.cgi?cmd=getregs&id=7&regs=745,3;813").text()
    assert re.fullmatch(r"cmd=getregs&id=7&err=&values=\d+,\d+,\d+,206", body), body
    before = request.get(stack.url + "/request.cgi?cmd=getregs&regs=340").text()
    count = len(writes(stack))
    reply = request.get(stack.url + "/request.cgi?cmd=putregs&id=8&regs=340,4", headers=same)
    assert 400 == reply.status and reply.text().startswith("cmd=putregs&id=8&err="), reply.text()
    assert "may not write registers" in urllib.parse.unquote_plus(reply.text())
    reply = request.get(stack.url + "/request.cgi?cmd=putregs&id=9&regs=745,700", headers=same)
    assert 400 == reply.status and "not writable" in reply.text()
    assert before == request.get(stack.url + "/request.cgi?cmd=getregs&regs=340").text()
    assert [] == [w for w in writes(stack)[count:] if w[0] in (340, 745)]


def test_a_wrong_mqtt_password_ends_web_aid_tool_with_one_clear_line(stack: Stack, tmp_path: Path) -> None:
    """Exit status 1 (a broker error) and one line with the broker's answer, no traceback, no password."""
    wrong = tmp_path / "password"
    wrong.write_text("not-the-web-password\n")
    done = subprocess.run(
        [str(BIN / "web_aid_tool"), stack.broker.url("web"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=bare_env(
            BIN,
            AURORA_WEB_PASSWORD_FILE=str(stack.broker.password_file("web-ui")),
            AURORA_MQTT_PASSWORD_FILE=str(wrong),
            AURORA_MQTT_CA_FILE=str(stack.broker.ca_file),
        ),
    )
    assert 1 == done.returncode, done.stderr  # a broker error, as `web_aid_tool --help` says
    assert "refused the login as web" in done.stderr and "Traceback" not in done.stderr
    assert "not-the-web-password" not in done.stderr + done.stdout


def test_temperatures_can_be_shown_and_set_in_celsius(stack: Stack, page: object) -> None:
    """The AWL's units setting, per browser: the page converts; the heat pump still gets whole °F."""
    expect = playwright_api.expect
    log_in(page, stack, path="/ui/#dashboard")
    entering = cell(page, "abc/entering-water-temperature", "#summary")
    expect(entering).to_have_text(re.compile(r"°F$"))
    page.click("#units")  # type: ignore[attr-defined]
    expect(entering).to_have_text(re.compile(r"^-?\d+\.\d°C$"))
    assert "units=1" == page.request.get(stack.url + "/getunits.cgi").text()  # type: ignore[attr-defined]
    page.goto(stack.url + "/ui/#settings")  # type: ignore[attr-defined]
    form = page.locator('form.setting[data-setting="zone1/cooling-target-temperature"]')  # type: ignore[attr-defined]
    expect(form.locator(".current")).to_have_text(re.compile(r"°C$"))
    count = len(writes(stack))
    form.locator("input").fill("25")  # 77 °F
    form.locator("button").click()
    expect(page.locator("#confirm-text")).to_contain_text("to 25.0°C")  # type: ignore[attr-defined]
    page.click("#confirm-ok")  # type: ignore[attr-defined]
    wait_for(lambda: (21204, 770) in writes(stack)[count:], 15, "21204 = 770 (77 °F) in the sim")
    expect(form.locator(".current")).to_have_text("25.0°C", timeout=LIVE_S * 1000)
    page.set_viewport_size(PHONE)  # type: ignore[attr-defined]
    shot(page, "settings-celsius-phone", full_page=False)
