"""Login, sessions and CSRF rules of web_aid_tool (docs/protocol.md#bugs-web had none)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aurora.errors import UsageError
from aurora.web.auth import MAX_FAILURES, SESSION_TTL_S, Authenticator, csrf_ok, read_password, same_origin


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_right_password_opens_a_session_and_a_wrong_one_does_not() -> None:
    """The session token is what the cookie carries; each login gets its own."""
    auth = Authenticator("correct horse")
    assert auth.login("10.0.0.2", "wrong") is None
    first = auth.login("10.0.0.2", "correct horse")
    second = auth.login("10.0.0.2", "correct horse")
    assert first is not None and second is not None
    assert first.token not in (second.token, first.csrf)
    assert first is auth.session(first.token)
    assert auth.session("forged") is None and auth.session(None) is None


def test_repeated_wrong_passwords_lock_the_address_out_for_a_minute() -> None:
    """Even the right password is refused while locked out; another address is not affected."""
    clock = Clock()
    auth = Authenticator("pw", clock=clock)
    for _ in range(MAX_FAILURES):
        assert auth.login("10.0.0.9", "guess") is None
    assert auth.locked_out("10.0.0.9")
    assert auth.login("10.0.0.9", "pw") is None
    assert auth.login("10.0.0.3", "pw") is not None
    clock.now += 61
    assert auth.login("10.0.0.9", "pw") is not None


def test_a_session_expires_and_logout_ends_it() -> None:
    """Cookies outlive nothing they should."""
    clock = Clock()
    auth = Authenticator("pw", clock=clock)
    old = auth.login("a", "pw")
    current = auth.login("a", "pw")
    assert old is not None and current is not None
    auth.logout(current.token)
    assert auth.session(current.token) is None
    clock.now += SESSION_TTL_S + 1
    assert auth.session(old.token) is None


def test_the_csrf_token_must_match_the_session() -> None:
    """A write without the page's token is refused."""
    auth = Authenticator("pw")
    session = auth.login("a", "pw")
    assert session is not None
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, None)
    assert not csrf_ok(session, "")
    assert not csrf_ok(session, session.token)


def test_same_origin_trusts_fetch_metadata_then_origin_then_referer() -> None:
    """A cross-site page can make a browser send a GET putregs; these headers give it away."""
    host = "pi.local:4567"
    assert same_origin({"Sec-Fetch-Site": "same-origin"}, host)
    assert not same_origin({"Sec-Fetch-Site": "cross-site", "Origin": "http://pi.local:4567"}, host)
    assert not same_origin({"Sec-Fetch-Site": "same-site"}, host)
    assert same_origin({"Origin": "http://pi.local:4567"}, host)
    assert not same_origin({"Origin": "http://evil.example"}, host)
    assert not same_origin({"Referer": "http://evil.example/page"}, host)
    assert same_origin({"Referer": "http://pi.local:4567/index.htm"}, host)
    assert same_origin({}, host)  # curl or a script: not a browser page, so no forgery


def test_the_password_file_must_exist_and_hold_a_password(tmp_path: Path) -> None:
    """A missing or empty secret is a clear message at start-up, never an open UI."""
    secret = tmp_path / "ui-password"
    secret.write_text("s3cret\n")
    assert "s3cret" == read_password(secret)
    secret.write_text("  \n")
    with pytest.raises(UsageError, match="empty"):
        read_password(secret)
    with pytest.raises(UsageError, match="cannot read"):
        read_password(tmp_path / "missing")
