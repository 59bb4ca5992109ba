"""The built-in UI's JSON API and its Server-Sent Events stream."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from aiohttp import web
from aurora import registers
from aurora.errors import AuroraError, BusError, UsageError
from aurora.query import parse_query
from aurora.render import render_line

from .auth import CSRF_HEADER, SESSION_COOKIE, Session
from .context import WebState, check_write, error_status, state_of
from .gate import read_browser, read_faults, write_words
from .homie import HomieMirror

log = structlog.get_logger("aurora.web")

MAX_BROWSER_REGISTERS: Final = 4000  # "valid" (3065) fits; "all" would hold the bus for minutes
KEEPALIVE_S: Final = 15.0  # an SSE comment line this often keeps proxies and phones from hanging up
SNAPSHOT_DEBOUNCE_S: Final = 0.25  # a burst of attribute messages (bridge start) → one snapshot
SET_ACK_S: Final = 5.0
# The bridge answers each command after the write and its read-back (tens of ms), or after the
# bus timeout when the unit is silent (about 2 s); past this, the page says nobody answered.
SET_ANSWER_S: Final = 15.0
CLEAR_FAULT_HISTORY: Final = (47, 0x5555)  # docs/architecture.md#homie-tree faults/clear-history


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _json_error(err: AuroraError) -> web.Response:
    return _json({"error": str(err)}, status=error_status(err))


def _read_error(state: WebState, err: AuroraError) -> web.Response:
    """A failed read through the bridge, with its cause when the bridge has told it: a silent
    heat pump (``$state`` alert: ``since`` is its last good poll) or a bridge that is gone."""
    mirror = state.mirror
    body: dict[str, Any] = {"error": str(err)}
    if mirror is not None and mirror.state in ("alert", "lost", "disconnected"):
        since = mirror.health.get("last_good_poll")
        if mirror.state == "alert":
            body["cause"] = "no answer from the heat pump"
        else:
            body["cause"] = "the bridge is offline"
            since = since or (_iso(mirror.state_since) if mirror.state_since else None)
        body["since"] = since
        body["error"] = f"{body['cause']} ({err})"
    return _json(body, status=error_status(err))


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds")


async def api_session(request: web.Request) -> web.Response:
    """What the UI needs first: the CSRF token, the mode and the device."""
    state = state_of(request)
    session: Session = request["session"]
    return _json(
        {
            "csrf": session.csrf,
            "units": session.units,  # 0 °F, 1 °C: the AWL's /setunits.cgi, shared with the AWL page
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
    return _json(_needs_mirror(state_of(request)).snapshot())


async def api_history(request: web.Request) -> web.Response:
    """Number histories for the trend charts; ``units=°F,W`` picks the series."""
    mirror = _needs_mirror(state_of(request))
    units = request.query.get("units")
    return _json({"now": time.time(), "series": mirror.series(units.split(",") if units else None)})


async def api_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: one ``snapshot``, then ``values`` batches as the bridge publishes."""
    state = state_of(request)
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
                values = [data for kind, data in batch if kind == "value"]
                if values:
                    await send("values", values)
                healths = [data for kind, data in batch if kind == "health"]
                if healths:
                    await send("health", healths[-1])  # the bridge's last poll, for the stale banner
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        state.hub.unsubscribe(queue)
    return response


async def api_registers(request: web.Request) -> web.Response:
    """The register browser: a fetch-style query → name, decoded value and raw word of each."""
    state = state_of(request)
    text = request.query.get("q", "")
    try:
        query = parse_query(text)
        if len(query.addresses) > MAX_BROWSER_REGISTERS:
            raise UsageError(
                f"{text!r} names {len(query.addresses)} registers; the browser reads at most "
                f"{MAX_BROWSER_REGISTERS} at once (valid and known fit)"
            )
        result = await state.gate.run(lambda bus: read_browser(bus, query))
    except UsageError as err:
        return _json_error(err)
    except AuroraError as err:
        return _read_error(state, err)
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
    state = state_of(request)
    try:
        result = await state.gate.run(read_faults)
    except AuroraError as err:
        return _read_error(state, err)
    words = result.values
    history = []
    for address, raw in words.items():
        if address < 601 or raw in (0, 0xFFFF):
            continue  # 0xFFFF: a counter the unit does not keep (docs/architecture.md#homie-tree)
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
    state = state_of(request)
    check_write(request, token=request.headers.get(CSRF_HEADER))
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
    """Change a settable Homie property: checked here, published to its ``/set`` topic, and
    answered with the bridge's outcome (docs/writes.md) within SET_ANSWER_S: 200 ``applied`` with
    the value read back, 422 ``refused`` with the reason, 504 ``failed`` or ``no-answer``."""
    state = state_of(request)
    check_write(request, token=request.headers.get(CSRF_HEADER))
    mirror = _needs_mirror(state)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _json({"error": 'send JSON: {"node": …, "prop": …, "value": …}'}, status=400)
    if not isinstance(body, dict) or not {"node", "prop", "value"} <= body.keys():
        return _json({"error": 'send JSON: {"node": …, "prop": …, "value": …}'}, status=400)
    node, prop = str(body["node"]), str(body["prop"])
    path = f"{node}/{prop}"
    try:
        payload = mirror.check_set(node, prop, body["value"])
        if state.feed is None:  # only while starting: the server listens once the feed is up
            raise BusError("not connected to the broker yet")
        if mirror.state in ("lost", "disconnected"):
            raise BusError(f"the bridge is offline ($state {mirror.state}): nothing would write it")
    except AuroraError as err:
        return _json_error(err)
    answer = state.writes.expect(path, payload)
    started = time.monotonic()
    try:
        future = state.feed.publish(mirror.set_topic(node, prop), payload)
        await asyncio.wait_for(asyncio.wrap_future(future), SET_ACK_S)
        log.info("set", node=node, prop=prop, value=payload)
        outcome = await asyncio.wait_for(answer, SET_ANSWER_S - (time.monotonic() - started))
    except TimeoutError:
        return _json(
            {
                "status": "no-answer",
                "node": node,
                "prop": prop,
                "value": payload,
                "error": f"no answer from the bridge within {SET_ANSWER_S:g} s",
            },
            status=504,
        )
    except AuroraError as err:
        return _json_error(err)
    finally:
        state.writes.forget(path, payload, answer)
    result = str(outcome.get("result"))
    reply = {"status": result, "node": node, "prop": prop, "sent": payload, "value": outcome.get("value")}
    if result in ("applied", "unconfirmed"):
        if outcome.get("reason"):
            reply["warning"] = outcome["reason"]
        return _json(reply)
    reply["error"] = str(outcome.get("reason") or result)
    return _json(reply, status=422 if result == "refused" else 504)
