"""The AWL page's CGI endpoints (docs/protocol.md#awl-cgi) over the Bus, and the user's AWL files."""

from __future__ import annotations

import structlog
from aiohttp import web
from aurora.errors import AuroraError, UsageError

from . import awl
from .context import WebState, check_write, error_status, resolve_file, state_of
from .gate import read_serial, read_words, write_words

log = structlog.get_logger("aurora.web")


def _awl(text: str, status: int = 200) -> web.Response:
    # text/plain, not the original's text/html: an echoed parameter can never become markup.
    return web.Response(status=status, text=text, content_type="text/plain")


async def getunits(request: web.Request) -> web.Response:
    """``units=<n>``: this browser's choice (0 °F, 1 °C)."""
    return _awl(awl.encode([("units", str(request["session"].units))]))


async def setunits(request: web.Request) -> web.Response:
    """Store this browser's units; ``error=0``. Same-origin only: it changes state."""
    session = check_write(request)
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
    """``/config.cgi``: versions, units and the serial number; never the port argument
    (docs/protocol.md#bugs-web)."""
    state = state_of(request)
    return _awl(awl.config_body(request["session"].units, await _serial(state)))


async def request_cgi(request: web.Request) -> web.Response:
    """``/request.cgi``: getregs, abcinfo, devices, putregs (docs/protocol.md#awl-cgi)."""
    state = state_of(request)
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
            check_write(request)
            await state.gate.run(lambda bus: write_words(bus, parsed.writes))
            log.info("putregs", writes=[f"{a}={v}" for a, v in parsed.writes])
            return _awl(awl.write_body(parsed))
        values = await state.gate.run(lambda bus: read_words(bus, parsed.reads))
    except AuroraError as err:
        log.warning("request_failed", cmd=parsed.cmd, error=str(err))
        return _awl(awl.echo_with_error(params, str(err)), status=error_status(err))
    return _awl(awl.read_body(parsed, values))


# -------------------------------------------------------------------------------- the AWL page itself


async def awl_file(request: web.Request) -> web.StreamResponse:
    """A file of the user's AWL page (``--html``), e.g. /css/index.css or /js/indexc.js."""
    state = state_of(request)
    if state.html_dir is None:
        raise web.HTTPNotFound(text="no AWL page files: start web_aid_tool with --html DIR\n")
    path = resolve_file(state.html_dir, request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path)
