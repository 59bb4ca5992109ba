"""The HTTP side of ``web_aid_tool``: login, the AWL's CGI endpoints, the built-in UI and its JSON API.

Every path but the login page and the UI's own script and style sheet needs a session. Writes need
the session's CSRF token (UI) or a same-origin request (the AWL page's GET ``putregs``).
"""

from __future__ import annotations

import html
import re
from importlib import resources
from pathlib import Path
from typing import Final
from urllib.parse import quote, unquote

import structlog
from aiohttp import web

from . import api, awl_routes
from .auth import CSRF_HEADER, SESSION_COOKIE, SESSION_TTL_S, same_origin
from .context import STATE_KEY, Handler, WebState, check_write, host_of, resolve_file, session_of, state_of
from .guard import BODY_TIMEOUT_S, AllowedHosts, host_check, no_banner, request_middleware

log = structlog.get_logger("aurora.web")

PUBLIC_PATHS: Final = frozenset({"/login", "/ui/app.css", "/ui/icon.svg"})
UI_CSP: Final = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


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
    session = session_of(request)
    if session is None:
        wants_page = request.method == "GET" and "text/html" in request.headers.get("Accept", "")
        if wants_page:
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/')}")
        raise web.HTTPUnauthorized(text="login required\n", content_type="text/plain")
    request["session"] = session
    return await handler(request)


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


# A same-origin path and query, as ``quote`` leaves them: no scheme, no host, no backslash, no
# white space or control character (browsers drop tabs and newlines and read ``\`` as ``/``,
# so ``/\t/evil`` or ``/\evil`` would leave the site), no ``//`` at the start.
_LOCAL_PATH: Final = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")


def _safe_next(value: str | None) -> str:
    """Only a local path: ``next`` must not send a user to another site after logging in."""
    if not value or len(value) > 2000 or not _LOCAL_PATH.fullmatch(value):
        return "/"
    decoded = unquote(value)
    if decoded.startswith("//") or "\\" in decoded or any(ord(c) < 0x20 or c == "\x7f" for c in decoded):
        return "/"  # what a proxy or an old browser might decode first must be local too
    return value


async def login_form(request: web.Request) -> web.Response:
    """The login page."""
    return web.Response(
        text=_login_page(next_path=_safe_next(request.query.get("next"))), content_type="text/html"
    )


async def login(request: web.Request) -> web.Response:
    """Check the password; on success set the session cookie and go where the user was going."""
    state = state_of(request)
    form = await request.post()
    next_path = _safe_next(str(form.get("next", "/")))
    client = request.remote or "?"
    if not same_origin(request.headers, host_of(request)):
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
    check_write(request, token=request.headers.get(CSRF_HEADER) or str(form.get("csrf", "")))
    state_of(request).auth.logout(request.cookies.get(SESSION_COOKIE))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


# -------------------------------------------------------------------------------- AWL endpoints


async def root(request: web.Request) -> web.StreamResponse:
    """The AWL page when the user provided it (``--html``), else the built-in UI."""
    state = state_of(request)
    if state.html_dir is not None and (state.html_dir / "index.htm").is_file():
        return web.FileResponse(state.html_dir / "index.htm")
    raise web.HTTPSeeOther("/ui/")


def _static_dir() -> Path:
    return Path(str(resources.files("aurora.web") / "static"))


async def ui_file(request: web.Request) -> web.StreamResponse:
    """The built-in UI's own files (index.html, app.js, app.css …) from the package."""
    name = request.match_info.get("name") or "index.html"
    path = resolve_file(_static_dir(), name)
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path)


def build_app(
    state: WebState, allowed_hosts: AllowedHosts | None = None, body_timeout: float = BODY_TIMEOUT_S
) -> web.Application:
    """The application with every route; ``state`` is shared by the handlers.

    ``allowed_hosts`` (default: the local names only) are the ``Host`` names requests may address.
    """
    hosts = allowed_hosts or AllowedHosts.build("localhost")
    app = web.Application(
        middlewares=[request_middleware(body_timeout), security_headers, host_check(hosts), require_login],
        client_max_size=64 * 1024,
    )
    app.on_response_prepare.append(no_banner)
    app[STATE_KEY] = state
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", root)
    app.router.add_get("/getunits.cgi", awl_routes.getunits)
    app.router.add_get("/setunits.cgi", awl_routes.setunits)
    app.router.add_get("/config.cgi", awl_routes.config)
    app.router.add_route("GET", "/request.cgi", awl_routes.request_cgi)
    app.router.add_route("POST", "/request.cgi", awl_routes.request_cgi)
    app.router.add_get("/api/session", api.api_session)
    app.router.add_get("/api/state", api.api_state)
    app.router.add_get("/api/history", api.api_history)
    app.router.add_get("/api/events", api.api_events)
    app.router.add_get("/api/registers", api.api_registers)
    app.router.add_get("/api/faults", api.api_faults)
    app.router.add_post("/api/set", api.api_set)
    app.router.add_post("/api/faults/clear", api.api_clear_faults)
    app.router.add_get("/ui", lambda _r: _redirect("/ui/"))
    app.router.add_get("/ui/", ui_file)
    app.router.add_get("/ui/{name}", ui_file)
    app.router.add_get("/{path:.+}", awl_routes.awl_file)

    async def close_streams(_app: web.Application) -> None:
        state.hub.close()

    app.on_shutdown.append(close_streams)
    return app


async def _redirect(location: str) -> web.Response:
    raise web.HTTPSeeOther(location)
