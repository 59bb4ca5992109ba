"""What the web handlers share: the state, the event-stream hub, and the checks every write makes.

Writes need the session's CSRF token (our UI) or a same-origin request (the AWL page's GET
``putregs``, which carries no token).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import structlog
from aiohttp import web
from aurora.errors import AuroraError, BusTimeout, UsageError

from .auth import SESSION_COOKIE, Authenticator, Session, csrf_ok, same_origin
from .feed import HomieFeed
from .gate import BusGate
from .homie import HomieMirror

log = structlog.get_logger("aurora.web")

QUEUE_SIZE: Final = 2000  # changes waiting for one slow event stream before it is resynchronised


class Hub:
    """Fans changes out to every open event stream; a slow stream is resynchronised, never blocks."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[Any]] = set()

    def subscribe(self) -> asyncio.Queue[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_SIZE)
        self.queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Any]) -> None:
        self.queues.discard(queue)

    def publish(self, item: Any) -> None:
        """Queue a change for every stream; never waits."""
        for queue in list(self.queues):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        queue.get_nowait()
                queue.put_nowait(("meta", None))  # start over with a full snapshot

    def close(self) -> None:
        """Tell every stream to end (shutdown)."""
        for queue in list(self.queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)


class WriteWaiters:
    """Settings-page commands waiting for the bridge's ``$write-result`` answer (event loop only).

    Keyed by property and payload, as the bridge echoes them: two pages sending the same command
    at once both get the one answer, which is the truth for both.
    """

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], list[asyncio.Future[dict[str, Any]]]] = {}

    def expect(self, node_prop: str, payload: str) -> asyncio.Future[dict[str, Any]]:
        """A future for the next answer to ``payload`` on ``node_prop``; register before sending."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((node_prop, payload), []).append(future)
        return future

    def forget(self, node_prop: str, payload: str, future: asyncio.Future[dict[str, Any]]) -> None:
        """Stop waiting (the page gave up, or the answer came)."""
        waiting = self._waiting.get((node_prop, payload), [])
        with contextlib.suppress(ValueError):
            waiting.remove(future)
        if not waiting:
            self._waiting.pop((node_prop, payload), None)

    def deliver(self, answer: dict[str, Any]) -> None:
        """An answer from the bridge: resolve whoever waits for it."""
        key = (str(answer.get("property")), str(answer.get("payload")))
        for future in self._waiting.pop(key, []):
            if not future.done():
                future.set_result(answer)


@dataclass(slots=True)
class WebState:
    """What the handlers share."""

    auth: Authenticator
    gate: BusGate
    html_dir: Path | None = None
    mirror: HomieMirror | None = None  # MQTT mode only: the live dashboard
    feed: HomieFeed | None = None
    hub: Hub = field(default_factory=Hub)
    writes: WriteWaiters = field(default_factory=WriteWaiters)
    serial: str | None = None

    @property
    def mode(self) -> str:
        return "mqtt" if self.mirror is not None else "direct"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def state_of(request: web.Request) -> WebState:
    """The shared state of the application serving ``request``."""
    return request.app[STATE_KEY]


def session_of(request: web.Request) -> Session | None:
    """The live session of the request's cookie, or None."""
    return state_of(request).auth.session(request.cookies.get(SESSION_COOKIE))


def host_of(request: web.Request) -> str:
    """The host and port the browser addressed (compared with Origin and Referer)."""
    return request.headers.get("Host", request.host)


STATE_KEY: Final = web.AppKey("state", WebState)


NO_TOKEN: Final = object()  # the AWL page's GET writes carry no token: same-origin only


def check_write(request: web.Request, *, token: object = NO_TOKEN) -> Session:
    """Refuse a write from another site's page, or without our CSRF token where one is due (403)."""
    session: Session = request["session"]
    if not same_origin(request.headers, host_of(request)):
        raise web.HTTPForbidden(text="cross-site request refused\n", content_type="text/plain")
    if token is not NO_TOKEN and not (isinstance(token, str) and csrf_ok(session, token)):
        raise web.HTTPForbidden(
            text="missing or wrong CSRF token: reload the page\n", content_type="text/plain"
        )
    return session


def error_status(err: AuroraError) -> int:
    """The HTTP status for a failure: the user's mistake, a silent unit, or a refusal/lost line."""
    if isinstance(err, UsageError):
        return 400
    if isinstance(err, BusTimeout):
        return 504
    return 502  # the unit refused (exception reply) or the line/broker is gone


def resolve_file(base: Path, name: str) -> Path | None:
    """``base/name`` when it is a file inside ``base`` (no ``..``, no symlink out of it) and no
    part of its path is hidden (``.git/``, ``.env``, ``.htpasswd``: never served)."""
    try:
        root = base.resolve()
        path = (base / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        hidden = (part.startswith(".") for part in (*Path(name).parts, *path.relative_to(root).parts))
        if any(hidden):
            return None
    except (OSError, ValueError):
        return None
    return path


def apply_homie(state: WebState, topic: str, payload: str) -> None:
    """A message of the device's tree (on the event loop): update the mirror, tell the streams."""
    if state.mirror is None:
        return
    before = state.mirror.state
    change = state.mirror.handle(topic, payload, time.time())
    if state.mirror.state != before:
        log.info("device_state", device=state.mirror.device, state=state.mirror.state)
    if change is None:
        return
    if change[0] == "outcome":
        state.writes.deliver(change[1])  # answers go to the request that waits, not to the pages
    else:
        state.hub.publish(change)
