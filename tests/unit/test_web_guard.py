"""The web tool's defences that need no process: ``next`` after login, host names, hidden files,
bounded warnings. The same behaviour against the real process: tests/integration/test_web_hardening.py."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

import pytest
import structlog
from aurora.logs import configure_logging
from aurora.web.app import _safe_next
from aurora.web.context import resolve_file
from aurora.web.guard import AllowedHosts, Summary
from hypothesis import given
from hypothesis import strategies as st

ORIGIN = ("http", "127.0.0.1:4567")


def _browser_target(location: str) -> tuple[str, str]:
    """A browser's reading of Location (tabs and newlines dropped, ``\\`` as ``/``, C0 trimmed)."""
    cleaned = re.sub(r"[\t\n\r]", "", location).strip("".join(map(chr, range(0x21))))
    url = urlsplit(urljoin("http://127.0.0.1:4567/login", cleaned.replace("\\", "/")))
    return url.scheme, url.netloc


@given(st.text())
def test_any_next_lands_on_our_own_origin(value: str) -> None:
    """Whatever ``next`` holds, the redirect stays on the site."""
    location = _safe_next(value)
    assert ORIGIN == _browser_target(location)
    assert location.startswith("/") and not location.startswith(("//", "/\\"))


@given(
    st.sampled_from(["/", "//", "\\", "/\\", "%2F", "%5C", "\t", "\n", "\x00", " ", "evil", ":", "@", "."])
)
def test_the_usual_tricks_are_dropped(prefix: str) -> None:
    """A next made of separators and encodings that browsers fold into ``//`` never survives."""
    value = prefix + "/evil.example"
    if value.startswith("/") and value[1:2] not in ("/", "\\", "\t", "\n", "\x00", " ", "%"):
        return  # a plain local path: kept, and local
    assert "/" == _safe_next(value)


@given(st.lists(st.sampled_from(["ui", "api", "x y", "é", "a=b", "?q=1&r=2", "#f"]), min_size=1))
def test_our_own_paths_survive_the_login_round_trip(parts: list[str]) -> None:
    """What the login redirect sends (a path quoted as the middleware quotes it) comes back."""
    path = quote("/" + "/".join(parts), safe="/?=&")
    assert path == _safe_next(path)


@pytest.mark.parametrize(
    "value",
    [
        "/\t/evil.example",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "%2F%2Fevil",
        "/%09/evil",
        "/%2F%2Fevil",
        "/%5Cevil",
        "/\x00x",
        "/a\r\nSet-Cookie: x=1",
        "/\u3000x",
        "/" + "a" * 3000,
    ],
)
def test_the_issues_payloads_are_dropped(value: str) -> None:
    """Issue 11's list."""
    assert "/" == _safe_next(value)


def test_host_names_localhost_the_machine_ip_addresses_and_the_configured_ones() -> None:
    """DNS rebinding sends another site's name: only ours pass."""
    hosts = AllowedHosts.build("0.0.0.0", ["pump.lan, .home.arpa", "Other.LAN."])
    for host in (
        "localhost",
        "LOCALHOST:4567",
        "app.localhost",
        "127.0.0.1:4567",
        "[::1]:4567",
        "10.0.0.7",
        "pump.lan",
        "pump.lan.:80",
        "home.arpa",
        "x.home.arpa",
        "other.lan",
    ):
        assert hosts.allows(host), host
    for host in (
        "evil.example",
        "pump.lan.evil.example",
        "evilhome.arpa",
        "localhost.evil.example",
        "",
        ":80",
    ):
        assert not hosts.allows(host), host
    assert AllowedHosts.build("heatpump.local").allows("heatpump.local:4567")  # the --bind name
    assert AllowedHosts.build("127.0.0.1", ["*"]).allows("evil.example")


def test_hidden_files_and_directories_are_never_resolved(tmp_path: Path) -> None:
    """Under --html and the built-in UI's directory alike."""
    for name in ("index.htm", "js/app.js", ".env", ".git/config", "js/.map", ".well-known/x"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / ".env")
    assert tmp_path / "js" / "app.js" == resolve_file(tmp_path, "js/app.js")
    for name in (".env", ".git/config", "js/.map", ".well-known/x", "js/../.env", "link", "../x", "js"):
        assert resolve_file(tmp_path, name) is None, name


def test_a_repeated_warning_is_logged_once_per_period() -> None:
    """A flood costs one line per period, carrying how many were not logged."""
    now = [0.0]
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    # its own stream: what an earlier test configured (another stderr) must not decide this one
    configure_logging(fmt="json", stream=out)
    try:
        summary = Summary("flood", every_s=60.0, clock=lambda: now[0])
        logged = [summary.note(n=i) for i in range(1000)]
        now[0] = 61.0
        logged.append(summary.note(n=1000))
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = handlers, level
    assert [True] + [False] * 999 + [True] == logged
    assert 1001 == summary.total
    lines = [json.loads(line) for line in out.getvalue().splitlines() if "flood" in line]
    assert [("flood", 0), ("flood", 1000)] == [(line["event"], line["n"]) for line in lines]
    assert "not_logged" not in lines[0] and 999 == lines[1]["not_logged"]


def test_aiohttp_errors_are_bounded_and_ours_keep_their_traceback() -> None:
    """A malformed request is the client's mistake (no traceback, summarised); a handler's own
    failure passes with its traceback, at most once per period."""
    import logging
    import sys

    from aiohttp.http_exceptions import BadStatusLine
    from aurora.web.guard import _QuietServerLog

    now = [0.0]
    quiet = _QuietServerLog(clock=lambda: now[0])

    def record(exc: BaseException) -> logging.LogRecord:
        try:
            raise exc
        except BaseException:
            info = sys.exc_info()
        return logging.LogRecord(
            "aiohttp.server",
            logging.ERROR,
            __file__,
            1,
            "Error handling request from %s",
            ("127.0.0.1",),
            info,
        )

    assert not any(quiet.filter(record(BadStatusLine("GARBAGE"))) for _ in range(100))
    assert 100 == quiet.summary.total
    assert [True, False, False] == [quiet.filter(record(ValueError("bug"))) for _ in range(3)]
    now[0] = 61.0
    passed = record(ValueError("bug"))
    assert quiet.filter(passed)
    assert "2 more since the last one" in passed.getMessage() and passed.exc_info is not None
