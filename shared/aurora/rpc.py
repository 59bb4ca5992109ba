"""The ``$modbus`` JSON request/response protocol as pure code: topics, request parsing, replies.

A client with id ``C`` of account ``U`` publishes a JSON object to
``<root>/<dev>/$modbus/request/U/C`` (reads, queries, pings) or ``<root>/<dev>/$modbus/write/U/C``
(anything, raw writes included) and gets exactly one JSON reply on
``<root>/<dev>/$modbus/response/U/C``. mosquitto confines every account to its own request and
response topics with ``%u/%c`` patterns and grants the write topics to ``admin`` only, so who may
write registers is the broker's decision; the bridge refuses a write on a request topic too. No
paho here: the bridge (``aurora.bridge.passthrough``) and the client (``aurora.rpc_client``)
share these functions. The original's three text topics are here too.

Requests (``id`` is echoed, a string of at most 128 characters or an integer; MQTT 5 clients may
rely on CorrelationData instead)::

    {"id": "1", "op": "read", "ranges": [[745, 3], [813, 1]]}     one FC 65 transaction
    {"id": "2", "op": "read", "registers": [745, 813]}            one FC 66 transaction
    {"id": "3", "op": "read", "holding": [745, 3]}                one FC 3 transaction
    {"id": "4", "op": "query", "query": "745-747,valid", "decode": true, "max_age_s": 10,
     "skip_missing": false}                                       aurora_fetch's grammar, chunked
    {"id": "5", "op": "write", "writes": [[340, 3]], "readback": true}
    {"id": "6", "op": "ping"}

Replies: ``{"id": …, "ok": true, …}`` or ``{"id": …, "ok": false, "error": {"code": …, "message": …}}``
with ``code`` one of ``ERROR_CODES``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias

from . import registers, rtu
from .errors import (
    AuroraError,
    BusError,
    BusTimeout,
    ExceptionReply,
    FrameError,
    UsageError,
    WriteRefused,
    exception_for,
)
from .query import MAX_PAIRS, Query, parse_query
from .query import MAX_QUERY_CHARS as _MAX_QUERY_CHARS
from .readplan import Failures
from .records import FrozenRecord
from .render import render_line

# ------------------------------------------------------------------------------------------ topics

MODBUS: Final = "$modbus"
REQUEST: Final = "request"  # reads, queries and pings: every RPC account
WRITE: Final = "write"  # every op, raw writes included: the accounts the ACL lets write (admin)
RESPONSE: Final = "response"
REQUEST_KINDS: Final = (REQUEST, WRITE)
GETREGS: Final = "getregs"

MAX_QUERY_CHARS: Final = _MAX_QUERY_CHARS  # the longest query text (fetch keeps to it too)
MAX_PAYLOAD_BYTES: Final = 16384  # a query of every keyword and a few hundred ranges fits easily
MAX_ID_CHARS: Final = 128
MAX_WRITES: Final = 32  # one request's writes run as one bus job; keep it short for the poller
MAX_GETREGS_BYTES: Final = 4096
# A reply larger than this is refused (code "too_large") rather than built: a query reply holds its
# values, its failures grouped in ranges and, with decode, every printable register; ``valid`` with
# decode is some 220 kB on the demo unit, so this only stops something pathological.
MAX_REPLY_BYTES: Final = 1 << 20
MAX_TOPIC_BYTES: Final = 65535  # MQTT's limit for a topic name
_CLIENT_ID: Final = re.compile(r"^[^/+#\x00]+$")


def modbus_base(device_root: str) -> str:
    """``homie/aurora-1`` → ``homie/aurora-1/$modbus``."""
    return f"{device_root}/{MODBUS}"


def request_topic(base: str, user: str, client_id: str) -> str:
    """Where client ``client_id`` of account ``user`` sends reads, queries and pings (``base`` ends
    in ``$modbus``); a write sent here is refused."""
    return f"{base}/{REQUEST}/{user}/{client_id}"


def write_topic(base: str, user: str, client_id: str) -> str:
    """Where a client sends raw writes (and anything else); the ACL grants it to ``admin`` only."""
    return f"{base}/{WRITE}/{user}/{client_id}"


def response_topic(base: str, user: str, client_id: str) -> str:
    """Where client ``client_id`` of ``user`` gets its replies; the only topic the bridge answers it on."""
    return f"{base}/{RESPONSE}/{user}/{client_id}"


def topic_user(username: str | None) -> str:
    """The account level of a client's topics: its user name (mosquitto's ``%u``), or
    ``anonymous`` on a broker without logins (where no ACL tells anyone apart anyway)."""
    return username or "anonymous"


def valid_client_id(client_id: str, base: str = "", user: str = "anonymous") -> bool:
    """Whether the id can be one topic level (no ``/``, no wildcard, not empty) of a reply topic
    under ``base`` that MQTT can carry (any length the broker let the client connect with)."""
    if not _CLIENT_ID.match(client_id) or not _CLIENT_ID.match(user):
        return False
    try:
        size = len(response_topic(base, user, client_id).encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return size <= MAX_TOPIC_BYTES


class RequestTopic(FrozenRecord):
    """A JSON request's topic, taken apart: what it may carry, and whom to answer."""

    _fields = ("kind", "user", "client_id")
    __slots__ = _fields
    kind: Final[str]  # REQUEST or WRITE
    user: Final[str]
    client_id: Final[str]

    def __init__(self, kind: str, user: str, client_id: str) -> None:
        self.kind, self.user, self.client_id = kind, user, client_id

    @property
    def writable(self) -> bool:
        """Whether raw writes may arrive here (the broker let only writers publish on it)."""
        return self.kind == WRITE

    @property
    def client(self) -> str:
        """``user/client-id``: one requester, for in-flight limits and logs."""
        return f"{self.user}/{self.client_id}"


def parse_request_topic(base: str, topic: str) -> RequestTopic | None:
    """``<base>/request/<user>/<client-id>`` or ``<base>/write/…`` → its parts; None for any other
    topic, or one whose reply topic could not be published."""
    if not topic.startswith(f"{base}/"):
        return None
    parts = topic[len(base) + 1 :].split("/")
    if len(parts) != 3 or parts[0] not in REQUEST_KINDS:
        return None
    kind, user, client_id = parts
    if not valid_client_id(client_id, base, user):
        return None
    return RequestTopic(kind, user, client_id)


# ------------------------------------------------------------------------------------------ errors

ErrorCode: TypeAlias = Literal[
    "bad_request",  # malformed JSON, unknown op or key, wrong type, out of range: the client's bug
    "write_refused",  # the register map does not allow this write (and nothing was written)
    "illegal_function",  # the board answered exception 1
    "illegal_address",  # the board answered exception 2: no such register on this unit
    "illegal_value",  # the board answered exception 3
    "device_exception",  # another exception code from the board
    "timeout",  # the board did not answer in time (after the bus's own retries)
    "frame_error",  # only garbled replies
    "bus_down",  # the bridge has lost the line to the heat pump
    "busy",  # too many requests of this client in flight
    "too_large",  # the reply would exceed MAX_REPLY_BYTES: ask for fewer registers
    "internal",  # a bug in the bridge; its log has the details
]
ERROR_CODES: Final[tuple[str, ...]] = ErrorCode.__args__  # type: ignore[attr-defined]


class BadRequest(UsageError):
    """A request the bridge cannot run; ``request_id`` is its id when that much could be read."""

    def __init__(self, message: str, request_id: str | int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class RemoteError(AuroraError):
    """An error reply whose code has no closer local type (``busy``, ``internal``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def error_code(err: BaseException) -> ErrorCode:
    """The protocol's code for an exception raised while serving a request."""
    if isinstance(err, RemoteError) and err.code in ERROR_CODES:
        return err.code  # type: ignore[return-value]
    if isinstance(err, WriteRefused):
        return "write_refused"
    if isinstance(err, UsageError):
        return "bad_request"
    if isinstance(err, ExceptionReply):
        return {1: "illegal_function", 2: "illegal_address", 3: "illegal_value"}.get(  # type: ignore[return-value]
            err.code, "device_exception"
        )
    if isinstance(err, BusTimeout):
        return "timeout"
    if isinstance(err, FrameError):
        return "frame_error"
    if isinstance(err, BusError):
        return "bus_down"
    return "internal"


def error_object(err: BaseException) -> dict[str, Any]:
    """``{"code", "message"}`` for an exception, plus ``function`` and ``exception`` for the board's."""
    code = error_code(err)
    out: dict[str, Any] = {"code": code, "message": str(err) if code != "internal" else "internal error"}
    if isinstance(err, ExceptionReply):
        out["function"] = err.function
        out["exception"] = err.code
    return out


def error_from_object(obj: Any) -> AuroraError:
    """The local exception for an ``error`` object of a reply (the inverse of ``error_object``)."""
    if not isinstance(obj, Mapping):
        return RemoteError("internal", f"malformed error reply: {obj!r}")
    code, message = str(obj.get("code")), str(obj.get("message", ""))
    if code in ("illegal_function", "illegal_address", "illegal_value", "device_exception"):
        function, exc = obj.get("function"), obj.get("exception")
        default = {"illegal_function": 1, "illegal_address": 2, "illegal_value": 3}.get(code, 4)
        return exception_for(
            function if isinstance(function, int) else 0, exc if isinstance(exc, int) else default
        )
    simple: dict[str, type[AuroraError]] = {
        "bad_request": UsageError,
        "write_refused": WriteRefused,
        "timeout": BusTimeout,
        "frame_error": FrameError,
        "bus_down": BusError,
    }
    if code in simple:
        return simple[code](message)
    return RemoteError(code, message)


# ------------------------------------------------------------------------------------------ requests

RequestId: TypeAlias = str | int | None
ReadFunction: TypeAlias = Literal["ranges", "registers", "holding"]


class ReadRequest(FrozenRecord):
    """One bus transaction: FC 65 (``ranges``), FC 66 (``registers``) or FC 3 (``holding``)."""

    _fields = ("id", "function", "items")
    __slots__ = _fields
    id: Final[RequestId]
    function: Final[ReadFunction]
    items: Final[tuple[tuple[int, int], ...]]  # (start, count); count 1 for ``registers``

    def __init__(self, id: RequestId, function: ReadFunction, items: tuple[tuple[int, int], ...]) -> None:
        self.id, self.function, self.items = id, function, items

    @property
    def count(self) -> int:
        return sum(n for _, n in self.items)


class QueryRequest(FrozenRecord):
    """aurora_fetch's grammar, read chunk by chunk; from the poll cache where fresh enough."""

    _fields = ("id", "text", "query", "decode", "max_age_s", "skip_missing")
    __slots__ = _fields
    id: Final[RequestId]
    text: Final[str]
    query: Final[Query]
    decode: Final[bool]
    max_age_s: Final[float | None]
    skip_missing: Final[bool]

    def __init__(
        self,
        id: RequestId,
        text: str,
        query: Query,
        *,
        decode: bool = False,
        max_age_s: float | None = None,
        skip_missing: bool = False,
    ) -> None:
        self.id, self.text, self.query = id, text, query
        self.decode, self.max_age_s, self.skip_missing = decode, max_age_s, skip_missing


class WriteRequest(FrozenRecord):
    """Raw words to write in order, all checked before the first is written."""

    _fields = ("id", "writes", "readback")
    __slots__ = _fields
    id: Final[RequestId]
    writes: Final[tuple[tuple[int, int], ...]]
    readback: Final[bool]

    def __init__(self, id: RequestId, writes: tuple[tuple[int, int], ...], readback: bool = False) -> None:
        self.id, self.writes, self.readback = id, writes, readback


class PingRequest(FrozenRecord):
    """Is the bridge there? Answered at once, without the bus."""

    _fields = ("id",)
    __slots__ = _fields
    id: Final[RequestId]

    def __init__(self, id: RequestId) -> None:
        self.id = id


Request: TypeAlias = ReadRequest | QueryRequest | WriteRequest | PingRequest

_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "read": frozenset({"id", "op", "ranges", "registers", "holding"}),
    "query": frozenset({"id", "op", "query", "decode", "max_age_s", "skip_missing"}),
    "write": frozenset({"id", "op", "writes", "readback"}),
    "ping": frozenset({"id", "op"}),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _address(value: Any, what: str, rid: RequestId) -> int:
    if not _is_int(value) or not 0 <= value <= 0xFFFF:
        raise BadRequest(f"{what} must be a register address 0..65535, not {value!r}", rid)
    return int(value)


def _pair(value: Any, what: str, rid: RequestId) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise BadRequest(f"{what} must be [start, count], not {value!r}", rid)
    start = _address(value[0], f"{what} start", rid)
    count = value[1]
    if not _is_int(count) or not 1 <= count <= rtu.MAX_READ_REGISTERS:
        raise BadRequest(f"{what} count must be 1..{rtu.MAX_READ_REGISTERS}, not {count!r}", rid)
    if start + count > 0x10000:
        raise BadRequest(f"{what} runs beyond register 65535", rid)
    return start, int(count)


def _bool(obj: Mapping[str, Any], key: str, rid: RequestId) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{key} must be true or false, not {value!r}", rid)
    return value


def _request_id(obj: Mapping[str, Any]) -> RequestId:
    rid = obj.get("id")
    if rid is None:
        return None
    if isinstance(rid, str) and len(rid) <= MAX_ID_CHARS:
        if not _encodable(rid):
            # Valid JSON ("\ud800"), but no UTF-8 reply could carry it back: refuse, id-less.
            raise BadRequest("id must be text without lone UTF-16 surrogates")
        return rid
    if _is_int(rid) and abs(rid) < 2**53:  # exact in every JSON implementation
        return int(rid)
    raise BadRequest(f"id must be a string of at most {MAX_ID_CHARS} characters or an integer")


def parse_request(payload: bytes) -> Request:
    """A typed request from a message payload; BadRequest (carrying the id when known) otherwise."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise BadRequest(f"request of {len(payload)} bytes is larger than {MAX_PAYLOAD_BYTES}")
    try:
        obj = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadRequest("request is not UTF-8 text") from None
    except (ValueError, RecursionError) as err:
        raise BadRequest(f"request is not JSON: {err}") from None
    if not isinstance(obj, dict):
        raise BadRequest('request must be a JSON object like {"id": "1", "op": "read", ...}')
    rid = _request_id(obj)
    op = obj.get("op")
    if not isinstance(op, str) or op not in _KEYS:
        raise BadRequest(f"op must be one of {', '.join(_KEYS)}, not {op!r}", rid)
    unknown = sorted(str(k) for k in obj if k not in _KEYS[op])
    if unknown:
        raise BadRequest(f"unknown key(s) for op {op}: {', '.join(unknown)}", rid)
    if op == "read":
        return _parse_read(obj, rid)
    if op == "query":
        return _parse_query(obj, rid)
    if op == "write":
        return _parse_write(obj, rid)
    return PingRequest(rid)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def peek_id(payload: bytes) -> RequestId:
    """The request's id if it can be read cheaply and safely, else None; never raises.

    For replies that must go out before (or instead of) a full parse, such as ``busy``.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        obj = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
        return _request_id(obj) if isinstance(obj, dict) else None
    except (ValueError, RecursionError, UsageError):
        return None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _parse_read(obj: Mapping[str, Any], rid: RequestId) -> ReadRequest:
    given = [k for k in ("ranges", "registers", "holding") if k in obj]
    if len(given) != 1:
        raise BadRequest("a read names exactly one of ranges, registers or holding", rid)
    function: ReadFunction = given[0]  # type: ignore[assignment]
    value = obj[function]
    items: tuple[tuple[int, int], ...]
    if function == "holding":
        items = (_pair(value, "holding", rid),)
    else:
        if not isinstance(value, list) or not value:
            raise BadRequest(f"{function} must be a non-empty list", rid)
        limit = MAX_PAIRS if function == "ranges" else rtu.MAX_READ_REGISTERS
        if len(value) > limit:
            raise BadRequest(f"{function} holds at most {limit} items, not {len(value)}", rid)
        if function == "ranges":
            items = tuple(_pair(v, f"ranges[{i}]", rid) for i, v in enumerate(value))
        else:
            items = tuple((_address(v, f"registers[{i}]", rid), 1) for i, v in enumerate(value))
    total = sum(n for _, n in items)
    if total > rtu.MAX_READ_REGISTERS:
        raise BadRequest(
            f"one read holds at most {rtu.MAX_READ_REGISTERS} registers, not {total}; "
            "use op query to read more",
            rid,
        )
    return ReadRequest(rid, function, items)


def _parse_query(obj: Mapping[str, Any], rid: RequestId) -> QueryRequest:
    text = obj.get("query")
    if not isinstance(text, str):
        raise BadRequest('query must be a string like "745-747,813" or "valid"', rid)
    if len(text) > MAX_QUERY_CHARS:
        raise BadRequest(f"query is longer than {MAX_QUERY_CHARS} characters", rid)
    try:
        query = parse_query(text)
    except UsageError as err:
        raise BadRequest(str(err), rid) from None
    max_age = obj.get("max_age_s")
    if max_age is not None and (
        isinstance(max_age, bool)
        or not isinstance(max_age, int | float)
        or not math.isfinite(max_age)
        or not 0 <= max_age <= 86400
    ):
        raise BadRequest(f"max_age_s must be seconds 0..86400 or null, not {max_age!r}", rid)
    return QueryRequest(
        rid,
        text,
        query,
        decode=_bool(obj, "decode", rid),
        max_age_s=None if max_age is None else float(max_age),
        skip_missing=_bool(obj, "skip_missing", rid),
    )


def _parse_write(obj: Mapping[str, Any], rid: RequestId) -> WriteRequest:
    value = obj.get("writes")
    if not isinstance(value, list) or not value:
        raise BadRequest("writes must be a non-empty list of [address, value]", rid)
    if len(value) > MAX_WRITES:
        raise BadRequest(f"writes holds at most {MAX_WRITES} items, not {len(value)}", rid)
    writes = []
    for i, item in enumerate(value):
        if not isinstance(item, list) or len(item) != 2:
            raise BadRequest(f"writes[{i}] must be [address, value], not {item!r}", rid)
        address = _address(item[0], f"writes[{i}] address", rid)
        writes.append((address, _word(item[1], f"writes[{i}] value", rid)))
    return WriteRequest(rid, tuple(writes), readback=_bool(obj, "readback", rid))


def _word(value: Any, what: str, rid: RequestId) -> int:
    """A raw word; -32768..-1 is taken as two's complement (signed registers)."""
    if not _is_int(value) or not -0x8000 <= value <= 0xFFFF:
        raise BadRequest(f"{what} must be a 16-bit word (-32768..65535), not {value!r}", rid)
    return int(value) & 0xFFFF


# ------------------------------------------------------------------------------------------ encoding


def encode(obj: Mapping[str, Any]) -> bytes:
    """Compact JSON, UTF-8 (names such as ``°F`` stay readable).

    Text UTF-8 cannot carry (a lone surrogate echoed from a request) is written as ``\\u`` escapes
    instead of failing: a reply must always go out.
    """
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def ok_reply(request_id: RequestId, **fields: Any) -> bytes:
    """A success reply."""
    return encode({"id": request_id, "ok": True, **fields})


def error_reply(request_id: RequestId, err: BaseException, **fields: Any) -> bytes:
    """An error reply for ``err`` (``error_object``), with optional extra fields."""
    return encode({"id": request_id, "ok": False, "error": error_object(err), **fields})


def words_object(words: Mapping[int, int]) -> dict[str, int]:
    """``{"745": 680}`` in address order (JSON object keys are strings)."""
    return {str(a): words[a] for a in sorted(words)}


def failed_object(failed: Mapping[int, BaseException]) -> dict[str, dict[str, Any]]:
    """``{"5": {"code": "illegal_address", …}, "7-99": {…}}`` in address order.

    Consecutive addresses that failed with the same error share one ``"A-B"`` key: an ``all``
    query has some 62,000 missing registers, one entry each would be megabytes. A
    ``readplan.Failures`` is read span by span, never address by address.
    """
    spans = failed.spans() if isinstance(failed, Failures) else ((a, 1, failed[a]) for a in sorted(failed))
    out: dict[str, dict[str, Any]] = {}
    run: list[Any] = []  # [first, last, error object]
    for start, count, err in spans:
        obj = error_object(err)
        if run and start == run[1] + 1 and obj == run[2]:
            run[1] = start + count - 1
            continue
        if run:
            out[_span(run[0], run[1])] = run[2]
        run = [start, start + count - 1, obj]
    if run:
        out[_span(run[0], run[1])] = run[2]
    return out


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _json_value(value: registers.Value | None) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def decoded_object(words: Mapping[int, int]) -> dict[str, dict[str, Any]]:
    """Name, decoded value, unit and printed text of every printable register among ``words``."""
    out: dict[str, dict[str, Any]] = {}
    for address in sorted(words):
        line = render_line(address, words)
        if line is None:
            continue
        register = registers.REGISTERS.get(address)
        marker = f"({address}): "
        out[str(address)] = {
            "name": register.name if register else None,
            "value": _json_value(registers.decode(address, words)),
            "unit": register.unit if register else None,
            "text": line.split(marker, 1)[1] if marker in line else line,
        }
    return out


def read_body(function: ReadFunction, items: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """The body of a ``read`` request without its id (client side)."""
    if function == "holding":
        start, count = items[0]
        return {"op": "read", "holding": [start, count]}
    if function == "registers":
        return {"op": "read", "registers": [a for a, _ in items]}
    return {"op": "read", "ranges": [[a, n] for a, n in items]}


# ------------------------------------------------------------------------------------------ replies


class Reply(FrozenRecord):
    """A parsed reply (client side): ``error`` is set when ``ok`` is false."""

    _fields = ("id", "ok", "body", "error")
    __slots__ = _fields
    _unhashed = ("body",)
    id: Final[RequestId]
    ok: Final[bool]
    body: Final[Mapping[str, Any]]
    error: Final[AuroraError | None]

    def __init__(
        self, id: RequestId, ok: bool, body: Mapping[str, Any], error: AuroraError | None = None
    ) -> None:
        self.id, self.ok, self.body, self.error = id, ok, body, error


def parse_reply(payload: bytes) -> Reply:
    """A reply object; FrameError when the payload is not one (a broken or foreign bridge)."""
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise FrameError(f"reply is not JSON: {err}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("ok"), bool):
        raise FrameError("reply is not an object with ok: true/false")
    rid = obj.get("id")
    if not (rid is None or isinstance(rid, str) or _is_int(rid)):
        raise FrameError(f"reply id {rid!r} is neither a string nor an integer")
    error = None if obj["ok"] else error_from_object(obj.get("error"))
    return Reply(rid, obj["ok"], obj, error)


class QueryAnswer(FrozenRecord):
    """The answer to a ``query`` request: raw words, why others are missing, and decoded values."""

    _fields = ("values", "failed", "decoded", "cached", "transactions")
    __slots__ = _fields
    _unhashed = ("values", "failed", "decoded")
    values: Final[dict[int, int]]
    failed: Final[Mapping[int, AuroraError]]  # spans, read as a mapping
    decoded: Final[dict[int, dict[str, Any]]]
    cached: Final[int]  # words taken from the bridge's poll cache
    transactions: Final[int]  # bus transactions this request ran itself (shared ones not counted)

    def __init__(
        self,
        values: dict[int, int],
        failed: Mapping[int, AuroraError] | None = None,
        decoded: dict[int, dict[str, Any]] | None = None,
        cached: int = 0,
        transactions: int = 0,
    ) -> None:
        self.values = values
        self.failed = Failures() if failed is None else failed
        self.decoded = {} if decoded is None else decoded
        self.cached, self.transactions = cached, transactions


def _int_keys(obj: Any, what: str) -> dict[int, Any]:
    if not isinstance(obj, Mapping):
        raise FrameError(f"reply {what} is not an object")
    try:
        return {int(k): v for k, v in obj.items()}
    except ValueError:
        raise FrameError(f"reply {what} has a key that is not an address") from None


def query_answer(body: Mapping[str, Any]) -> QueryAnswer:
    """A QueryAnswer from a successful query reply; FrameError when it is malformed."""
    values = _int_keys(body.get("values", {}), "values")
    if not all(_is_int(v) and 0 <= v <= 0xFFFF for v in values.values()):
        raise FrameError("reply values are not 16-bit words")
    spans: list[tuple[int, int, AuroraError]] = []
    raw_failed = body.get("failed", {})
    if not isinstance(raw_failed, Mapping):
        raise FrameError("reply failed is not an object")
    for key, obj in raw_failed.items():
        first, _, last = str(key).partition("-")
        try:
            start, end = int(first), int(last or first)
        except ValueError:
            raise FrameError(f"reply failed has a key {str(key)[:32]!r} that is not an address") from None
        if not 0 <= start <= end <= 0xFFFF:
            raise FrameError(f"reply failed has a range {str(key)[:32]!r} beyond the register space")
        spans.append((start, end - start + 1, error_from_object(obj)))
    failed = Failures(spans)
    decoded = _int_keys(body.get("decoded", {}), "decoded")
    cached, transactions = body.get("cached", 0), body.get("transactions", 0)
    return QueryAnswer(
        values,
        failed,
        decoded,
        cached if _is_int(cached) else 0,
        transactions if _is_int(transactions) else 0,
    )


# ------------------------------------------------------------------------------------------ legacy


_GETREGS_ITEM: Final = re.compile(r"^\s*(\d{1,5})\s*(?:,\s*(\d{1,3})\s*)?$", re.ASCII)


def parse_getregs(payload: bytes) -> tuple[str, tuple[tuple[int, int], ...]]:
    """``<id>:<a>;<start>,<count>;…`` (docs/architecture.md#modbus-passthrough) → (id, (start, count) items).

    Unlike the original, malformed items and reads over 100 registers are refused (P7).
    """
    if len(payload) > MAX_GETREGS_BYTES:
        raise UsageError(f"getregs request of {len(payload)} bytes is too long")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("getregs request is not UTF-8 text") from None
    rid, colon, rest = text.partition(":")
    if not colon or not rid:
        raise UsageError("getregs request must be <id>:<registers>")
    items: list[tuple[int, int]] = []
    for piece in rest.split(";"):
        m = _GETREGS_ITEM.match(piece)
        if m is None:
            raise UsageError(f"getregs item {piece[:32]!r} is neither <address> nor <start>,<count>")
        start, count = int(m.group(1)), int(m.group(2) or 1)
        if start > 0xFFFF or not 1 <= count <= rtu.MAX_READ_REGISTERS or start + count > 0x10000:
            raise UsageError(f"getregs item {piece[:32]!r} is out of range")
        items.append((start, count))
    if len(items) > MAX_PAIRS or sum(n for _, n in items) > rtu.MAX_READ_REGISTERS:
        raise UsageError(f"getregs reads at most {rtu.MAX_READ_REGISTERS} registers in {MAX_PAIRS} items")
    return rid, tuple(items)


def getregs_reply(request_id: str, values: Sequence[int]) -> str:
    """``<id>:<v1>,<v2>,…``: one raw decimal per requested address, duplicates kept (P3)."""
    return f"{request_id}:{','.join(str(v) for v in values)}"


_SET_VALUE: Final = re.compile(r"^(?:(-?\d{1,6})|0[xX]([0-9a-fA-F]{1,4}))$", re.ASCII)


def parse_set_value(payload: bytes) -> int:
    """The raw word of a ``$modbus/<N>/set`` payload: decimal (``-5`` is two's complement) or hex.

    ``0x5555`` is 0x5555, not 0 as in the original (docs/architecture.md#original-bridge P1); ``12abc`` is
    refused.
    """
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UsageError("value is not UTF-8 text") from None
    m = _SET_VALUE.match(text)
    if m is None:
        raise UsageError(f"{text[:32]!r} is not a decimal or 0x hex 16-bit value")
    value = int(m.group(1)) if m.group(1) is not None else int(m.group(2), 16)
    if not -0x8000 <= value <= 0xFFFF:
        raise UsageError(f"{value} is not a 16-bit value")
    return value & 0xFFFF


def parse_set_register(level: str) -> int:
    """The register of ``$modbus/<level>/set``; UsageError for anything but a decimal address."""
    if not level.isascii() or not level.isdigit() or len(level) > 5 or int(level) > 0xFFFF:
        raise UsageError(f"{level[:32]!r} is not a register address 0..65535")
    return int(level)
