"""The HTTP side of ``web_aid_tool``: login, the AWL's CGI endpoints, the built-in UI and its JSON API.

Every path but the login page and the UI's own script and style sheet needs a session. Writes need
the session's CSRF token (UI) or a same-origin request (the AWL page's GET ``putregs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import structlog
from aiohttp import web
from aurora import registers
from aurora.errors import AuroraError, BusError, BusTimeout, ExceptionReply, UsageError
from aurora.query import parse_query
from aurora.render import render_line

from . import awl
from .auth import CSRF_HEADER, SESSION_COOKIE, SESSION_TTL_S, Authenticator, Session, csrf_ok, same_origin
from .feed import HomieFeed
from .gate import BusGate, read_browser, read_faults, read_serial, read_words, write_words
from .homie import HomieMirror

log = structlog.get_logger("aurora.web")

MAX_BROWSER_REGISTERS: Final = 4000  # "valid" (3065) fits; "all" would hold the bus for minutes
KEEPALIVE_S: Final = 15.0  # an SSE comment line this often keeps proxies and phones from hanging up
SNAPSHOT_DEBOUNCE_S: Final = 0.25  # a burst of attribute messages (bridge start) → one snapshot
QUEUE_SIZE: Final = 2000
SET_ACK_S: Final = 5.0
CLEAR_FAULT_HISTORY: Final = (47, 0x5555)  # aurora-bridge §6.4 faults/clear-history

PUBLIC_PATHS: Final = frozenset({"/login", "/ui/app.css", "/ui/icon.svg"})
UI_CSP: Final = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)

STATE_KEY: Final = web.AppKey("state", "WebState")


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
        for queue in list(self.queues):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        queue.get_nowait()
                queue.put_nowait(("meta", None))  # start over with a full snapshot

    def close(self) -> None:
        for queue in list(self.queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)


@dataclass(slots=True)
class WebState:
    """What the handlers share."""

    auth: Authenticator
    gate: BusGate
    html_dir: Path | None = None
    mirror: HomieMirror | None = None  # MQTT mode only: the live dashboard
    feed: HomieFeed | None = None
    hub: Hub = field(default_factory=Hub)
    serial: str | None = None

    @property
    def mode(self) -> str:
        return "mqtt" if self.mirror is not None else "direct"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _state(request: web.Request) -> WebState:
    return request.app[STATE_KEY]


def _session(request: web.Request) -> Session | None:
    return _state(request).auth.session(request.cookies.get(SESSION_COOKIE))


def _host(request: web.Request) -> str:
    return request.headers.get("Host", request.host)


# -------------------------------------------------------------------------------- middleware


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Headers that keep our pages out of frames and other sites' reach."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.path.startswith(("/ui/", "/api/", "/login")):
        response.headers.setdefault("Content-Security-Policy", UI_CSP)
    if request.path.startswith("/api/") or request.path.endswith(".cgi"):
        response.headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def require_login(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No session, no access: pages redirect to the login form, everything else answers 401."""
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    session = _session(request)
    if session is None:
        wants_page = request.method == "GET" and "text/html" in request.headers.get("Accept", "")
        if wants_page:
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/')}")
        raise web.HTTPUnauthorized(text="login required\n", content_type="text/plain")
    request["session"] = session
    return await handler(request)


_NO_TOKEN: Final = object()  # the AWL page's GET writes carry no token: same-origin only


def _check_write(request: web.Request, *, token: object = _NO_TOKEN) -> Session:
    """Refuse a write from another site's page, or without our CSRF token where one is due (403)."""
    session: Session = request["session"]
    if not same_origin(request.headers, _host(request)):
        raise web.HTTPForbidden(text="cross-site request refused\n", content_type="text/plain")
    if token is not _NO_TOKEN and not (isinstance(token, str) and csrf_ok(session, token)):
        raise web.HTTPForbidden(
            text="missing or wrong CSRF token: reload the page\n", content_type="text/plain"
        )
    return session


# -------------------------------------------------------------------------------- login


def _login_page(message: str = "", next_path: str = "/") -> str:
    notice = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Heat pump · log in</title><link rel="stylesheet" href="/ui/app.css">
<link rel="icon" href="/ui/icon.svg"></head>
<body class="login"><main class="card login-card">
<h1>Heat pump</h1>{notice}
<form method="post" action="/login">
<input type="hidden" name="next" value="{html.escape(next_path)}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>
<p class="hint">The password is in the file <code>web/ui-password</code>
that <code>aurora_setup</code> made.</p>
</main></body></html>
"""


def _safe_next(value: str | None) -> str:
    """Only local paths: ``next`` must not send a user to another site after logging in."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


async def login_form(request: web.Request) -> web.Response:
    """The login page."""
    return web.Response(
        text=_login_page(next_path=_safe_next(request.query.get("next"))), content_type="text/html"
    )


async def login(request: web.Request) -> web.Response:
    """Check the password; on success set the session cookie and go where the user was going."""
    state = _state(request)
    form = await request.post()
    next_path = _safe_next(str(form.get("next", "/")))
    client = request.remote or "?"
    if not same_origin(request.headers, _host(request)):
        raise web.HTTPForbidden(text="cross-site login refused\n", content_type="text/plain")
    if state.auth.locked_out(client):
        log.warning("login_locked_out", client=client)
        return web.Response(
            status=429,
            text=_login_page("Too many wrong passwords: wait a minute.", next_path),
            content_type="text/html",
        )
    session = state.auth.login(client, str(form.get("password", "")))
    if session is None:
        log.warning("login_failed", client=client)
        return web.Response(
            status=401, text=_login_page("Wrong password.", next_path), content_type="text/html"
        )
    log.info("login", client=client)
    response = web.HTTPSeeOther(next_path)
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=int(SESSION_TTL_S),
        httponly=True,
        samesite="Strict",
        path="/",
        secure=request.secure,
    )
    raise response


async def logout(request: web.Request) -> web.Response:
    """End the session (POST with the CSRF token, from the UI's menu)."""
    form = await request.post()
    _check_write(request, token=request.headers.get(CSRF_HEADER) or str(form.get("csrf", "")))
    _state(request).auth.logout(request.cookies.get(SESSION_COOKIE))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


# -------------------------------------------------------------------------------- AWL endpoints


def _awl(text: str, status: int = 200) -> web.Response:
    # text/plain, not the original's text/html: an echoed parameter can never become markup.
    return web.Response(status=status, text=text, content_type="text/plain")


def _error_status(err: AuroraError) -> int:
    if isinstance(err, UsageError):
        return 400
    if isinstance(err, BusTimeout):
        return 504
    return 502  # the unit refused (exception reply) or the line/broker is gone


async def getunits(request: web.Request) -> web.Response:
    """``units=<n>``: this browser's choice (0 °F, 1 °C)."""
    return _awl(awl.encode([("units", str(request["session"].units))]))


async def setunits(request: web.Request) -> web.Response:
    """Store this browser's units; ``error=0``. Same-origin only: it changes state."""
    session = _check_write(request)
    try:
        session.units = awl.parse_units(request.query.get("units"))
    except UsageError as err:
        return _awl(awl.encode([("error", str(err))]), status=400)
    return _awl("error=0")


async def _serial(state: WebState) -> str:
    if state.serial is None:
        try:
            state.serial = await state.gate.run(read_serial)
        except AuroraError as err:
            log.warning("serial_unreadable", error=str(err))
            return ""
    return state.serial


async def config(request: web.Request) -> web.Response:
    """``/config.cgi``: versions, units and the serial number; never the port argument (§11.5.2)."""
    state = _state(request)
    return _awl(awl.config_body(request["session"].units, await _serial(state)))


async def request_cgi(request: web.Request) -> web.Response:
    """``/request.cgi``: getregs, abcinfo, devices, putregs (aurora-protocol §8.4)."""
    state = _state(request)
    params = dict(request.query)  # MultiDict → dict keeps the last value of a repeated key
    if request.method == "POST":
        params.update({k: str(v) for k, v in (await request.post()).items()})
    try:
        parsed = awl.parse_request(params)
    except UsageError as err:
        return _awl(awl.echo_with_error(params, str(err)), status=400)
    if parsed is None:
        return _awl("")
    try:
        if parsed.is_write:
            _check_write(request)
            await state.gate.run(lambda bus: write_words(bus, parsed.writes))
            log.info("putregs", writes=[f"{a}={v}" for a, v in parsed.writes])
            return _awl(awl.write_body(parsed))
        values = await state.gate.run(lambda bus: read_words(bus, parsed.reads))
    except AuroraError as err:
        log.warning("request_failed", cmd=parsed.cmd, error=str(err))
        return _awl(awl.echo_with_error(params, str(err)), status=_error_status(err))
    return _awl(awl.read_body(parsed, values))


# -------------------------------------------------------------------------------- pages


async def root(request: web.Request) -> web.StreamResponse:
    """The AWL page when the user provided it (``--html``), else the built-in UI."""
    state = _state(request)
    if state.html_dir is not None and (state.html_dir / "index.htm").is_file():
        return web.FileResponse(state.html_dir / "index.htm")
    raise web.HTTPSeeOther("/ui/")


def _static_dir() -> Path:
    return Path(str(resources.files("aurora.web") / "static"))


async def ui_file(request: web.Request) -> web.StreamResponse:
    """The built-in UI's own files (index.html, app.js, app.css …) from the package."""
    name = request.match_info.get("name") or "index.html"
    path = _resolve(_static_dir(), name)
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path)


def _resolve(base: Path, name: str) -> Path | None:
    """``base/name`` when it is a file inside ``base`` (no ``..``, no symlink out of it)."""
    try:
        path = (base / name).resolve()
        if not path.is_relative_to(base.resolve()) or not path.is_file():
            return None
    except (OSError, ValueError):
        return None
    return path


async def awl_file(request: web.Request) -> web.StreamResponse:
    """A file of the user's AWL page (``--html``), e.g. /css/index.css or /js/indexc.js."""
    state = _state(request)
    if state.html_dir is None:
        raise web.HTTPNotFound(text="no AWL page files: start web_aid_tool with --html DIR\n")
    path = _resolve(state.html_dir, request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path)


# -------------------------------------------------------------------------------- JSON API


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _json_error(err: AuroraError) -> web.Response:
    return _json({"error": str(err)}, status=_error_status(err))


async def api_session(request: web.Request) -> web.Response:
    """What the UI needs first: the CSRF token, the mode and the device."""
    state = _state(request)
    session: Session = request["session"]
    return _json(
        {
            "csrf": session.csrf,
            "mode": state.mode,
            "device": state.mirror.device if state.mirror else None,
            "fault_names": {str(k): v for k, v in registers.FAULT_NAMES.items()},
        }
    )


def _needs_mirror(state: WebState) -> HomieMirror:
    if state.mirror is None:
        raise web.HTTPNotFound(
            text=json.dumps(
                {"error": "live values need the bridge: start web_aid_tool with an mqtt(s):// TARGET"}
            ),
            content_type="application/json",
        )
    return state.mirror


async def api_state(request: web.Request) -> web.Response:
    """The whole Homie tree as the dashboard shows it."""
    return _json(_needs_mirror(_state(request)).snapshot())


async def api_history(request: web.Request) -> web.Response:
    """Number histories for the trend charts; ``units=°F,W`` picks the series."""
    mirror = _needs_mirror(_state(request))
    units = request.query.get("units")
    return _json({"now": time.time(), "series": mirror.series(units.split(",") if units else None)})


async def api_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: one ``snapshot``, then ``values`` batches as the bridge publishes."""
    state = _state(request)
    mirror = _needs_mirror(state)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    queue = state.hub.subscribe()
    token = request.cookies.get(SESSION_COOKIE)

    async def send(event: str, data: Any) -> None:
        await response.write(f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode())

    try:
        await send("snapshot", mirror.snapshot())
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                if state.auth.session(token) is None:
                    break  # logged out or expired: the page reconnects and is sent to the login
                await response.write(b": keepalive\n\n")
                continue
            batch = [item]
            while not queue.empty():
                batch.append(queue.get_nowait())
            if None in batch:
                break  # shutting down
            if any(kind == "meta" for kind, _ in batch):
                await asyncio.sleep(SNAPSHOT_DEBOUNCE_S)  # let the burst finish, then send it whole
                while not queue.empty():
                    if queue.get_nowait() is None:
                        return response
                await send("snapshot", mirror.snapshot())
            else:
                await send("values", [data for _, data in batch])
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        state.hub.unsubscribe(queue)
    return response


async def api_registers(request: web.Request) -> web.Response:
    """The register browser: a fetch-style query → name, decoded value and raw word of each."""
    state = _state(request)
    text = request.query.get("q", "")
    try:
        query = parse_query(text)
        if len(query.addresses) > MAX_BROWSER_REGISTERS:
            raise UsageError(
                f"{text!r} names {len(query.addresses)} registers; the browser reads at most "
                f"{MAX_BROWSER_REGISTERS} at once (valid and known fit)"
            )
        result = await state.gate.run(lambda bus: read_browser(bus, query))
    except AuroraError as err:
        return _json_error(err)
    rows = []
    for address, raw in result.values.items():
        line = render_line(address, result.values)
        if line is None:
            continue  # the second word of a string or 32-bit value: shown with its first word
        marker = f"({address}): "
        rows.append(
            {
                "address": address,
                "name": registers.name_of(address) or "???",
                "value": line[line.index(marker) + len(marker) :],
                "raw": raw,
                "writable": registers.writable(address) is not None,
            }
        )
    failed = [{"address": a, "error": str(e)} for a, e in sorted(result.failed.items())]
    return _json({"query": text, "rows": rows, "failed": failed})


async def api_faults(request: web.Request) -> web.Response:
    """The current fault, the last lockout and every fault counter with its name."""
    state = _state(request)
    try:
        result = await state.gate.run(read_faults)
    except AuroraError as err:
        return _json_error(err)
    words = result.values
    history = []
    for address, raw in words.items():
        if address < 601 or raw in (0, 0xFFFF):
            continue  # 0xFFFF: a counter the unit does not keep (aurora-bridge §6.4)
        code = address - 600
        history.append({"code": code, "name": registers.FAULT_NAMES.get(code, f"E{code}"), "count": raw})
    current = registers.fault(words[25]) if 25 in words else None
    lockout = registers.last_lockout(words[26]) if 26 in words else None
    return _json(
        {
            "current": None
            if current is None
            else _fault(current, locked=bool(words[25] & registers.LOCKED_OUT)),
            "last_lockout": None if lockout is None else _fault(lockout),
            "history": history,
            "unreadable": len(result.failed),
        }
    )


async def api_clear_faults(request: web.Request) -> web.Response:
    """Reset the fault counters: through the bridge's ``faults/clear-history`` property, or in
    direct mode by writing register 47 = 0x5555 (the only value the map allows there)."""
    state = _state(request)
    _check_write(request, token=request.headers.get(CSRF_HEADER))
    try:
        if state.mirror is not None and state.feed is not None:
            payload = state.mirror.check_set("faults", "clear-history", "clear")
            future = state.feed.publish(state.mirror.set_topic("faults", "clear-history"), payload)
            await asyncio.wait_for(asyncio.wrap_future(future), SET_ACK_S)
        else:
            await state.gate.run(lambda bus: write_words(bus, [CLEAR_FAULT_HISTORY]))
    except TimeoutError:
        return _json({"error": "the broker did not acknowledge the command"}, status=504)
    except AuroraError as err:
        return _json_error(err)
    log.info("fault_history_cleared")
    return _json({"status": "sent"}, status=202)


def _fault(code: int, *, locked: bool = False) -> dict[str, Any]:
    name = "No fault" if code == 0 else registers.FAULT_NAMES.get(code, f"E{code}")
    return {"code": code, "name": name, "locked_out": locked}


async def api_set(request: web.Request) -> web.Response:
    """Change a settable Homie property: checked here, published to its ``/set`` topic, where the
    bridge checks it again and writes the register; the new value arrives as a normal update."""
    state = _state(request)
    _check_write(request, token=request.headers.get(CSRF_HEADER))
    mirror = _needs_mirror(state)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _json({"error": 'send JSON: {"node": …, "prop": …, "value": …}'}, status=400)
    if not isinstance(body, dict) or not {"node", "prop", "value"} <= body.keys():
        return _json({"error": 'send JSON: {"node": …, "prop": …, "value": …}'}, status=400)
    try:
        payload = mirror.check_set(str(body["node"]), str(body["prop"]), body["value"])
        assert state.feed is not None
        topic = mirror.set_topic(str(body["node"]), str(body["prop"]))
        future = state.feed.publish(topic, payload)
        await asyncio.wait_for(asyncio.wrap_future(future), SET_ACK_S)
    except TimeoutError:
        return _json({"error": "the broker did not acknowledge the command"}, status=504)
    except AuroraError as err:
        return _json_error(err)
    log.info("set", node=body["node"], prop=body["prop"], value=payload)
    return _json({"status": "sent", "node": body["node"], "prop": body["prop"], "value": payload}, status=202)


# -------------------------------------------------------------------------------- assembly


def build_app(state: WebState) -> web.Application:
    """The application with every route; ``state`` is shared by the handlers."""
    app = web.Application(middlewares=[security_headers, require_login], client_max_size=64 * 1024)
    app[STATE_KEY] = state
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", root)
    app.router.add_get("/getunits.cgi", getunits)
    app.router.add_get("/setunits.cgi", setunits)
    app.router.add_get("/config.cgi", config)
    app.router.add_route("GET", "/request.cgi", request_cgi)
    app.router.add_route("POST", "/request.cgi", request_cgi)
    app.router.add_get("/api/session", api_session)
    app.router.add_get("/api/state", api_state)
    app.router.add_get("/api/history", api_history)
    app.router.add_get("/api/events", api_events)
    app.router.add_get("/api/registers", api_registers)
    app.router.add_get("/api/faults", api_faults)
    app.router.add_post("/api/set", api_set)
    app.router.add_post("/api/faults/clear", api_clear_faults)
    app.router.add_get("/ui", lambda _r: _redirect("/ui/"))
    app.router.add_get("/ui/", ui_file)
    app.router.add_get("/ui/{name}", ui_file)
    app.router.add_get("/{path:.+}", awl_file)

    async def close_streams(_app: web.Application) -> None:
        state.hub.close()

    app.on_shutdown.append(close_streams)
    return app


async def _redirect(location: str) -> web.Response:
    raise web.HTTPSeeOther(location)


def apply_homie(state: WebState, topic: str, payload: str) -> None:
    """A message of the device's tree (on the event loop): update the mirror, tell the streams."""
    if state.mirror is None:
        return
    change = state.mirror.handle(topic, payload, time.time())
    if change is not None:
        state.hub.publish(change)


__all__ = ["BusError", "ExceptionReply", "WebState", "apply_homie", "build_app"]
