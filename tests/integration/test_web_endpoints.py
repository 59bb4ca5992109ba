"""web_aid_tool's HTTP contract, against the real process on a YAML dump (direct mode).

The AWL endpoints are checked byte for byte against docs/protocol.md#awl-cgi, with the
docs/protocol.md#bugs-web fixes: a login, CSRF/same-origin checks on writes, the register map's write rules,
errors in ``err``.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.support import free_port
from tests.support.processes import bare_env
from tests.support.web import web_tool

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
PASSWORD = "correct-horse-battery-staple"
SERIAL = "2611000042"


def _string_words(text: str, words: int) -> list[int]:
    data = text.ljust(words * 2).encode()
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def _dump() -> dict[int, int]:
    registers = {
        2: 308,  # ABC program version 3.08
        8: 0,
        25: 0,  # no fault
        26: 0x8005,  # last lockout: fault 5
        340: 3,  # Blower Only Speed, writable 1..12
        745: 680,
        746: 730,
        747: 730,
        813: 206,
        1114: 0xD8F1,  # DHW Temperature: no sensor fitted
        **dict(zip(range(88, 92), _string_words("ABCVSP", 4), strict=True)),
        **dict(zip(range(105, 110), _string_words(SERIAL, 5), strict=True)),
        **dict.fromkeys((800, 803, 806, 807, 808, 812, 815, 818, 824), 3),
        **dict.fromkeys(range(601, 700), 0xFFFF),
    }
    registers[605] = 2  # Freeze Detect FP1, twice
    registers[699] = 1  # System Reset
    return registers


@dataclass
class Tool:
    """A running web_aid_tool and what it logged."""

    port: int
    log: Path

    def client(self) -> Browser:
        return Browser(self.port)


@dataclass
class Browser:
    """A tiny HTTP client with one cookie jar; it never follows redirects (tests look at them)."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        text = response.read().decode("utf-8", errors="replace")
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel.value:
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text

    def get(self, path: str, **headers: str) -> tuple[int, dict[str, str], str]:
        return self.request("GET", path, headers={k.replace("_", "-"): v for k, v in headers.items()})

    def login(self, password: str = PASSWORD) -> tuple[int, dict[str, str], str]:
        form = urlencode({"password": password, "next": "/ui/"}).encode()
        return self.request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})

    def same_origin(self, path: str) -> tuple[int, dict[str, str], str]:
        return self.get(path, Sec_Fetch_Site="same-origin")


@pytest.fixture(scope="module")
def tool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tool]:
    """web_aid_tool on a dump, with an AWL page directory, as the README starts it."""
    root = tmp_path_factory.mktemp("web")
    dump = root / "unit.yml"
    dump.write_text("".join(f"{a}: {v}\n" for a, v in sorted(_dump().items())))
    secret = root / "ui-password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    html = root / "html"
    (html / "js").mkdir(parents=True)
    (html / "index.htm").write_text("<html>AWL page</html>")
    (html / "js" / "indexc.js").write_text("// AWL script")
    port = free_port()
    log = root / "web.log"
    env = {"AURORA_WEB_PASSWORD_FILE": str(secret)}
    args = [str(dump), "--html", str(html)]
    with web_tool(args, port=port, env=env, log=log, deadline_s=15, what="web_aid_tool listening line"):
        yield Tool(port, log)


@pytest.fixture
def browser(tool: Tool) -> Browser:
    """A client that has logged in."""
    client = tool.client()
    assert 303 == client.login()[0]
    return client


def test_every_path_but_the_login_page_needs_a_session(tool: Tool) -> None:
    """docs/protocol.md#bugs-web: the original had no authentication at all."""
    client = tool.client()
    for path in ("/config.cgi", "/getunits.cgi", "/request.cgi?cmd=getregs&regs=745", "/api/registers?q=745"):
        status, _, body = client.get(path)
        assert (401, "login required\n") == (status, body), path
    status, headers, _ = client.get("/ui/", Accept="text/html")
    assert (303, "/login?next=/ui/") == (status, headers["location"])
    status, _, _ = client.request("POST", "/api/set", b"{}", {"Content-Type": "application/json"})
    assert 401 == status
    assert 200 == client.get("/login")[0]


def test_a_wrong_password_is_refused_and_the_right_one_sets_a_strict_http_only_cookie(tool: Tool) -> None:
    """The cookie cannot be read by scripts nor sent by other sites' pages."""
    client = tool.client()
    status, _, body = client.login("wrong")
    assert 401 == status and "Wrong password." in body
    assert {} == client.cookies
    conn = http.client.HTTPConnection("127.0.0.1", tool.port, timeout=10)
    form = urlencode({"password": PASSWORD, "next": "//evil.example/"})
    conn.request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    cookie = response.headers["Set-Cookie"]
    assert 303 == response.status
    assert "/" == response.headers["Location"]  # never off-site after logging in
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie


def test_getregs_answers_raw_values_in_request_order(browser: Browser) -> None:
    """docs/protocol.md#awl-cgi's example, byte for byte, plus a repeated address kept in place."""
    status, headers, body = browser.get("/request.cgi?cmd=getregs&id=7&regs=745,3;813")
    assert (200, "cmd=getregs&id=7&err=&values=680,730,730,206") == (status, body)
    assert headers["content-type"].startswith("text/plain")
    assert (
        "cmd=getregs&err=&values=730,680,730" == browser.get("/request.cgi?cmd=getregs&regs=746;745;746")[2]
    )


def test_abcinfo_and_devices_read_their_fixed_registers(browser: Browser) -> None:
    """docs/protocol.md#awl-cgi aliases: regs the client sends are ignored."""
    program = ",".join(str(w) for w in _string_words("ABCVSP", 4))
    assert (
        f"cmd=abcinfo&id=1&err=&values=308,0,{program}"
        == browser.get("/request.cgi?cmd=abcinfo&id=1&regs=745")[2]
    )
    assert "cmd=devices&err=&values=3,3,3,3,3,3,3,3,3" == browser.get("/request.cgi?cmd=devices")[2]


def test_an_unknown_cmd_answers_an_empty_body(browser: Browser) -> None:
    """docs/protocol.md#awl-cgi: any other or missing cmd: HTTP 200, empty body."""
    assert (200, "") == browser.get("/request.cgi?cmd=reboot")[::2]


def test_malformed_regs_and_missing_registers_are_reported_in_err(browser: Browser) -> None:
    """docs/protocol.md#bugs-web: the original gave a bare HTTP 500 and never filled err."""
    status, _, body = browser.get("/request.cgi?cmd=getregs&id=2&regs=745;abc")
    assert 400 == status
    assert body.startswith("cmd=getregs&id=2&err=register 'abc' is not a number")
    status, _, body = browser.get("/request.cgi?cmd=getregs&id=3&regs=745;9999")
    assert 502 == status
    assert body.startswith("cmd=getregs&id=3&err=illegal data address")


def test_config_names_the_serial_number_and_never_the_target(browser: Browser) -> None:
    """docs/protocol.md#bugs-web: AWL ID used to be the port argument, an mqtt:// URL with its password."""
    status, _, body = browser.get("/config.cgi")
    assert 200 == status
    assert f"AWL Version=1.6.4&Local Web Version=1.08&SSID=&Units=0&AWL ID={SERIAL}&AWL ID CRC=" == body


def test_units_belong_to_one_browser_and_change_only_from_our_own_pages(tool: Tool, browser: Browser) -> None:
    """docs/protocol.md#bugs-web: units were global; a cross-site page could also change them with a GET."""
    assert (403, "cross-site request refused\n") == browser.get(
        "/setunits.cgi?units=1", Sec_Fetch_Site="cross-site"
    )[::2]
    assert "units=0" == browser.get("/getunits.cgi")[2]
    assert (200, "error=0") == browser.same_origin("/setunits.cgi?units=1")[::2]
    assert "units=1" == browser.get("/getunits.cgi")[2]
    assert "Units=1" in browser.get("/config.cgi")[2]
    other = tool.client()
    other.login()
    assert "units=0" == other.get("/getunits.cgi")[2]
    assert 400 == browser.same_origin("/setunits.cgi?units=7")[0]


def test_putregs_writes_registers_the_map_allows_and_reads_back(browser: Browser) -> None:
    """docs/protocol.md#awl-cgi putregs answers the echo; the value is there on the next read."""
    status, _, body = browser.same_origin("/request.cgi?cmd=putregs&id=8&regs=340,5")
    assert (200, "cmd=putregs&id=8&err=") == (status, body)
    assert "cmd=getregs&err=&values=5" == browser.get("/request.cgi?cmd=getregs&regs=340")[2]
    browser.same_origin("/request.cgi?cmd=putregs&regs=340,3")


def test_putregs_outside_the_writable_map_writes_nothing(browser: Browser) -> None:
    """docs/protocol.md#bugs-web: the original wrote any register (clear history, manual operation,
    components). One refused pair refuses the whole request."""
    status, _, body = browser.same_origin("/request.cgi?cmd=putregs&id=9&regs=340,6;745,700")
    assert 400 == status
    assert body.startswith("cmd=putregs&id=9&err=register 745 (Heating Set Point) is not writable")
    status, _, body = browser.same_origin("/request.cgi?cmd=putregs&regs=340,13")
    assert 400 == status and "outside 1..12" in body
    assert "cmd=getregs&err=&values=3,680" == browser.get("/request.cgi?cmd=getregs&regs=340;745")[2]


def test_putregs_from_another_site_is_refused(browser: Browser) -> None:
    """A page elsewhere can make the browser send the GET; fetch metadata or Referer give it away."""
    status, _, _ = browser.get("/request.cgi?cmd=putregs&regs=340,7", Sec_Fetch_Site="cross-site")
    assert 403 == status
    status, _, _ = browser.get("/request.cgi?cmd=putregs&regs=340,7", Referer="http://evil.example/x")
    assert 403 == status
    assert "cmd=getregs&err=&values=3" == browser.get("/request.cgi?cmd=getregs&regs=340")[2]


def test_the_users_awl_files_are_served_after_login_and_nothing_outside_them(
    tool: Tool, browser: Browser
) -> None:
    """--html DIR is the AWL page; a path must not climb out of it."""
    assert (200, "<html>AWL page</html>") == browser.get("/")[::2]
    assert (200, "// AWL script") == browser.get("/js/indexc.js")[::2]
    for path in ("/%2e%2e/ui-password", "/js/%2e%2e/%2e%2e/ui-password", "/../unit.yml"):
        status, _, body = browser.get(path)
        assert 404 == status and PASSWORD not in body, path
    assert 401 == tool.client().get("/js/indexc.js")[0]


def test_the_register_browser_returns_name_decoded_value_and_raw(browser: Browser) -> None:
    """The fetch query grammar; unknown and missing registers are told apart."""
    status, _, body = browser.get("/api/registers?q=745-747,813")
    assert 200 == status
    rows = json.loads(body)["rows"]
    assert {
        "address": 745,
        "name": "Heating Set Point",
        "value": "68.0°F",
        "raw": 680,
        "writable": False,
    } == rows[0]
    assert [745, 746, 747, 813] == [r["address"] for r in rows]
    status, _, body = browser.get("/api/registers?q=1114")
    (row,) = json.loads(body)["rows"]
    assert ("-999.9°F", 0xD8F1) == (row["value"], row["raw"])  # as aurora_fetch prints it
    status, _, body = browser.get("/api/registers?q=745,,x")
    assert 400 == status and "is not a register" in json.loads(body)["error"]
    status, _, body = browser.get("/api/registers?q=all")
    assert 400 == status and "at most" in json.loads(body)["error"]


def test_fault_history_names_each_fault(browser: Browser) -> None:
    """Counters 600+N with the names of docs/protocol.md#faults; 0xFFFF counters are not kept."""
    status, _, body = browser.get("/api/faults")
    assert 200 == status
    faults = json.loads(body)
    assert {"code": 0, "name": "No fault", "locked_out": False} == faults["current"]
    assert {"code": 5, "name": "Freeze Detect FP1", "locked_out": False} == faults["last_lockout"]
    assert [
        {"code": 5, "name": "Freeze Detect FP1", "count": 2},
        {"code": 99, "name": "System Reset", "count": 1},
    ] == faults["history"]


def test_live_pages_explain_that_they_need_the_bridge_in_direct_mode(browser: Browser) -> None:
    """--help documents it; the API says it too instead of an empty dashboard."""
    status, _, body = browser.get("/api/state")
    assert 404 == status and "mqtt(s)://" in json.loads(body)["error"]
    assert "direct" == json.loads(browser.get("/api/session")[2])["mode"]


def test_writes_from_the_ui_need_the_csrf_token(browser: Browser) -> None:
    """Logging out is a write too: without the token the session survives."""
    setting = json.dumps({"node": "dhw", "prop": "set-point", "value": "120"}).encode()
    for headers in ({}, {"X-CSRF-Token": "forged"}, {"Sec-Fetch-Site": "same-origin"}):
        status, _, body = browser.request(
            "POST", "/api/set", setting, {"Content-Type": "application/json", **headers}
        )
        assert 403 == status and "CSRF" in body, headers
    status, _, _ = browser.request(
        "POST", "/logout", b"csrf=nope", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert 403 == status
    csrf = json.loads(browser.get("/api/session")[2])["csrf"]
    status, headers, _ = browser.request(
        "POST", "/logout", f"csrf={csrf}".encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert (303, "/login") == (status, headers["location"])
    assert 401 == browser.get("/config.cgi")[0]


def test_pages_are_not_framed_sniffed_or_scripted_from_elsewhere(browser: Browser) -> None:
    """Clickjacking and content sniffing are closed on every response."""
    _, headers, _ = browser.get("/ui/")
    assert "DENY" == headers["x-frame-options"]
    assert "nosniff" == headers["x-content-type-options"]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "no-store" == browser.get("/api/session")[1]["cache-control"]


def test_the_password_never_appears_in_the_log(tool: Tool, browser: Browser) -> None:
    """Logins (right and wrong) are logged without what was typed."""
    tool.client().login("a-wrong-guess")
    text = tool.log.read_text()
    assert re.search(r'"event": "login_failed"', text)
    assert PASSWORD not in text and "a-wrong-guess" not in text


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "web_aid_tool"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=bare_env(BIN, **(env or {})),
        check=False,
    )


def test_starting_without_a_password_file_is_a_usage_error(tmp_path: Path) -> None:
    """Authentication is on by default: there is no way to start an open UI by forgetting it."""
    done = _run(str(tmp_path / "unit.yml"), "--port", "0")
    assert 2 == done.returncode
    assert "--password-file is required" in done.stderr and "Traceback" not in done.stderr


def test_a_bad_target_or_password_file_is_one_clear_line(tmp_path: Path) -> None:
    """User mistakes end with a message and exit status 2, never a traceback."""
    secret = tmp_path / "pw"
    secret.write_text("x\n")
    bad_dump = tmp_path / "bad.yml"
    bad_dump.write_text("- not a map\n")
    cases = [
        ([str(bad_dump), "--password-file", str(secret)], "a register dump is a map"),
        ([str(bad_dump), "--password-file", str(tmp_path / "missing")], "cannot read the web password file"),
        (
            [str(bad_dump), "--password-file", str(secret), "--port", "99999"],
            "--port: 99999: outside 0..65535",
        ),
    ]
    for argv, message in cases:
        done = _run(*argv, "--port", "0") if "--port" not in argv else _run(*argv)
        assert 2 == done.returncode, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr


def test_clearing_fault_history_needs_the_token_and_writes_register_47(browser: Browser) -> None:
    """Register 47 takes only 0x5555 (docs/architecture.md#homie-tree); the UI's button is the only way to
    it."""
    status, _, _ = browser.request("POST", "/api/faults/clear", b"", {"Sec-Fetch-Site": "same-origin"})
    assert 403 == status
    assert 502 == browser.get("/request.cgi?cmd=getregs&regs=47")[0]  # not in the dump yet
    csrf = json.loads(browser.get("/api/session")[2])["csrf"]
    status, _, body = browser.request("POST", "/api/faults/clear", b"", {"X-CSRF-Token": csrf})
    assert (202, {"status": "sent"}) == (status, json.loads(body))
    assert "cmd=getregs&err=&values=21845" == browser.get("/request.cgi?cmd=getregs&regs=47")[2]
