"""Login, sessions and CSRF checks for the web AID tool (fixes docs/protocol.md#bugs-web).

One password (the secret file ``aurora_setup`` writes); sessions live in memory and end when the
process does. Writes need either the session's CSRF token (our UI) or, for the AWL page's GET
``putregs``, a same-origin request as the browser's fetch metadata or Origin/Referer tell it.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from aurora.errors import UsageError

SESSION_COOKIE: Final = "aurora_session"
CSRF_HEADER: Final = "X-CSRF-Token"
SESSION_TTL_S: Final = 30 * 24 * 3600.0  # a phone on the LAN should not log in every day
MAX_SESSIONS: Final = 256  # the oldest is dropped beyond this: bounded memory
FAILURE_WINDOW_S: Final = 60.0
MAX_FAILURES: Final = 5  # per client address and window: guessing a 32-character secret stays hopeless


def read_password(path: str | Path) -> str:
    """The password in ``path`` (surrounding white space stripped); UsageError when unusable."""
    try:
        password = Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise UsageError(f"cannot read the web password file {path}: {err.strerror}") from err
    except UnicodeDecodeError:
        raise UsageError(f"the web password file {path} is not text") from None
    if not password:
        raise UsageError(f"the web password file {path} is empty")
    return password


@dataclass(slots=True)
class Session:
    """A logged-in browser."""

    token: str
    csrf: str
    expires: float
    units: int = 0  # /setunits.cgi: per browser, not shared by every client (docs/protocol.md#bugs-web)


@dataclass(slots=True)
class Authenticator:
    """Checks the password, issues and looks up sessions, and slows down guessing."""

    password: str = field(repr=False)
    clock: Callable[[], float] = time.monotonic
    _sessions: dict[str, Session] = field(default_factory=dict)
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _now(self) -> float:
        return self.clock()

    def locked_out(self, client: str) -> bool:
        """Whether ``client`` (an address) failed too often in the last minute."""
        now = self._now()
        failures = self._failures.get(client)
        while failures and now - failures[0] > FAILURE_WINDOW_S:
            failures.popleft()
        return failures is not None and len(failures) >= MAX_FAILURES

    def login(self, client: str, password: str) -> Session | None:
        """A new session when ``password`` is right; None (and one more failure) otherwise."""
        if self.locked_out(client):
            return None
        if not hmac.compare_digest(password.encode(), self.password.encode()):
            self._failures.setdefault(client, deque()).append(self._now())
            if len(self._failures) > MAX_SESSIONS:  # bounded: forget the quietest address
                self._failures.pop(next(iter(self._failures)))
            return None
        self._failures.pop(client, None)
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), self._now() + SESSION_TTL_S)
        self._sessions[session.token] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
        return session

    def session(self, token: str | None) -> Session | None:
        """The live session for a cookie value, or None."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        if session.expires < self._now():
            del self._sessions[token]
            return None
        return session

    def logout(self, token: str | None) -> None:
        """Forget a session."""
        if token:
            self._sessions.pop(token, None)


def csrf_ok(session: Session, header: str | None) -> bool:
    """Whether a write carries the session's token (constant-time comparison)."""
    return header is not None and bool(header) and hmac.compare_digest(header.encode(), session.csrf.encode())


def same_origin(headers: Mapping[str, str], host: str) -> bool:
    """Whether a browser sent this request from one of our own pages.

    ``Sec-Fetch-Site`` decides when present (every current browser sends it). Otherwise Origin,
    then Referer, must name ``host``. A request with none of them is not from a browser page,
    so it is no cross-site forgery; the SameSite=Strict session cookie covers old browsers.
    """
    site = headers.get("Sec-Fetch-Site")
    if site is not None:
        return site == "same-origin"
    for name in ("Origin", "Referer"):
        value = headers.get(name)
        if value:
            return urlsplit(value).netloc == host
    return True
