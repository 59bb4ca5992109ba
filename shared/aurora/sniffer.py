"""A passive listener's view of an RTU bus: bytes in, paired request/reply transactions out (no I/O).

Someone else (an AID tool, an AWL) is the master; we only hear both directions interleaved. Fixed
from the original's sniffer (docs/protocol.md#sniffer, docs/protocol.md#bugs-server): a frame is taken as the
reply to the pending request only if it decodes as exactly that reply (slave, function, byte count, CRC), so a
lost reply no longer makes the next request look like a response; exception replies are paired with
their request; a request left without a reply is reported, not silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

from . import rtu
from .errors import ExceptionReply, FrameError, Incomplete, exception_for

# docs/protocol.md#sniffer `--ignore-sensors`: registers that change on every poll.
SENSOR_REGISTERS: Final = frozenset(
    {16, 19, 20, 740, 900, 901, 903, 908, 909, 1109, 1105, 1106, 1107, 1108, 1110, 1111, 1114, 1117}
    | {1134, 1148, 1149, 1150, 1151, 1152, 1153, 1164, 1165, 3326, 3330}
)
# docs/protocol.md#sniffer `--ignore-awl-heartbeat`: the AWL's periodic FC 16 write to 460-462.
AWL_HEARTBEATS: Final = (((460, 102), (461, 0), (462, 5)), ((460, 102), (461, 0), (462, 1)))

REPLY_TIMEOUT_S: Final = 1.0  # a reply later than this after its request belongs to no one
_EXCEPTION_LENGTH: Final = 5

Outcome = Literal["reply", "exception", "unanswered", "orphan"]


@dataclass(frozen=True, slots=True)
class Transaction:
    """One request with what became of it.

    ``outcome``: ``reply`` (normal reply), ``exception`` (``error`` holds it), ``unanswered`` (the
    next request or the end came first), ``orphan`` (a reply or exception whose request we did not
    hear, e.g. the monitor started mid-conversation; ``request`` is None).
    """

    outcome: Outcome
    request: rtu.Request | None
    reply: rtu.Reply | None = None
    error: ExceptionReply | None = None
    at: float | None = None  # time the transaction ended (None when replaying bytes without times)
    slave: int = 0
    function: int = 0

    @property
    def words(self) -> list[tuple[int, int]]:
        """(address, raw value) pairs: read results, or the registers a confirmed write set."""
        if self.request is None:
            return []
        if self.request.function in _READS:
            if self.reply is None:
                return []
            return list(zip(self.request.addresses, self.reply.values, strict=True))
        return list(self.request.writes)

    @property
    def is_read(self) -> bool:
        """FC 3, 65 or 66."""
        return self.function in _READS

    @property
    def is_awl_heartbeat(self) -> bool:
        """The AWL's FC 16 keep-alive (docs/protocol.md#sniffer)."""
        return (
            self.request is not None
            and self.function == rtu.FunctionCode.WRITE_MULTIPLE
            and self.request.writes in AWL_HEARTBEATS
        )


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes that belong to no frame (line noise, a torn frame, a start mid-frame)."""

    data: bytes
    at: float | None = None


Event = Transaction | Garbage

_KNOWN_FUNCTIONS: Final = frozenset(int(f) for f in rtu.FunctionCode)

_READS: Final = (
    rtu.FunctionCode.READ_HOLDING,
    rtu.FunctionCode.READ_RANGES,
    rtu.FunctionCode.READ_REGISTERS,
)


@dataclass(slots=True)
class Sniffer:
    """Feed it the bus's bytes as they come; it yields transactions as soon as they are settled.

    ``feed(data, now)``: ``now`` (seconds, monotonic) lets a request expire after
    ``reply_timeout_s``; pass None when replaying a recording without times. ``idle(now)``
    reports an expired request while the line is silent, and ``finish()`` settles the rest at the
    end of the stream.
    """

    reply_timeout_s: float = REPLY_TIMEOUT_S
    _buf: bytearray = field(default_factory=bytearray)
    _pending: rtu.Request | None = None
    _pending_at: float | None = None
    _garbage: bytearray = field(default_factory=bytearray)
    stats: dict[str, int] = field(
        default_factory=lambda: {"requests": 0, "replies": 0, "exceptions": 0, "unanswered": 0, "orphans": 0}
    )

    def feed(self, data: bytes, now: float | None = None) -> list[Event]:
        """Add bytes heard on the line; return what they settled."""
        events = self._expire(now) if not self._buf else []
        self._buf += data
        events += self._parse(now, final=False)
        return events

    def idle(self, now: float) -> list[Event]:
        """The line has been silent until ``now``: report a request whose reply is overdue."""
        return self._expire(now) if not self._buf else []

    def finish(self, now: float | None = None) -> list[Event]:
        """The stream ended: whatever is left is garbage, a pending request went unanswered."""
        events = self._parse(now, final=True)
        if self._buf:
            self._garbage += self._buf
            self._buf.clear()
        events += self._flush_garbage(now)
        if self._pending is not None:
            events.append(self._unanswered(now))
        return events

    # ------------------------------------------------------------ parsing

    def _expire(self, now: float | None) -> list[Event]:
        if (
            self._pending is None
            or now is None
            or self._pending_at is None
            or now - self._pending_at <= self.reply_timeout_s
        ):
            return []
        return [self._unanswered(now)]

    def _parse(self, now: float | None, *, final: bool) -> list[Event]:
        events: list[Event] = []
        while self._buf:
            step = self._step(now)
            if step is None:
                if not final:
                    break
                # The stream ended inside something: drop a byte and look again.
                self._garbage.append(self._buf.pop(0))
                continue
            events += step
        return events

    def _step(self, now: float | None) -> list[Event] | None:
        """Settle the frame at the front of the buffer: events, [] after dropping a byte, None to wait."""
        buf = bytes(self._buf)
        if self._pending is not None:
            found = self._as_reply(buf, self._pending)
            if found == "wait":
                # So far these bytes are the start of the awaited reply. Were it the next request
                # instead (its reply lost), its own reply will break the CRC soon and we go on below;
                # trying the request first would let a coincidental CRC inside a long reply win.
                return None
            if found is not None:
                events, used = found
                return self._take(used, now, events)
        waiting = False
        try:
            split = split_request(buf)
        except FrameError:
            split = None
        else:
            waiting = split is None
        if split is not None:
            request, used = split
            events = []
            if self._pending is not None:
                events.append(self._unanswered(now))
            self._pending, self._pending_at = request, now
            self.stats["requests"] += 1
            return self._take(used, now, events)
        orphan = _orphan(buf)
        if orphan == "wait":
            waiting = True
        elif orphan is not None:
            transaction, used = orphan
            self.stats["orphans"] += 1
            return self._take(used, now, [_at(transaction, now)])
        if waiting:
            return None
        self._garbage.append(self._buf.pop(0))
        return []

    def _as_reply(self, buf: bytes, request: rtu.Request) -> tuple[list[Event], int] | Literal["wait"] | None:
        try:
            reply, used = rtu.decode_reply(buf, request)
        except Incomplete:
            return "wait"
        except ExceptionReply as err:
            self._pending = None
            self.stats["exceptions"] += 1
            t = Transaction("exception", request, error=err, slave=request.slave, function=request.function)
            return [t], _EXCEPTION_LENGTH
        except FrameError:
            return None
        self._pending = None
        self.stats["replies"] += 1
        t = Transaction("reply", request, reply=reply, slave=request.slave, function=request.function)
        return [t], used

    def _take(self, used: int, now: float | None, events: list[Event]) -> list[Event]:
        del self._buf[:used]
        out = self._flush_garbage(now)
        out += [_at(e, now) if isinstance(e, Transaction) else e for e in events]
        return out

    def _flush_garbage(self, now: float | None) -> list[Event]:
        if not self._garbage:
            return []
        junk = Garbage(bytes(self._garbage), now)
        self._garbage.clear()
        return [junk]

    def _unanswered(self, now: float | None) -> Transaction:
        request = self._pending
        assert request is not None
        self._pending = self._pending_at = None
        self.stats["unanswered"] += 1
        return Transaction("unanswered", request, at=now, slave=request.slave, function=request.function)


def split_request(buf: bytes) -> tuple[rtu.Request, int] | None:
    """``rtu.split_request``, waiting for an FC 16 request's byte count instead of refusing it.

    ``rtu.request_length`` knows an FC 16 frame's length only from byte 7 on; before that,
    ``rtu.split_request`` raises FrameError, which would drop a request that arrives in pieces.
    """
    if len(buf) >= 2 and buf[1] == rtu.FunctionCode.WRITE_MULTIPLE and len(buf) < 7:
        return None
    return rtu.split_request(buf)


def _at(t: Transaction, now: float | None) -> Transaction:
    if t.at is not None or now is None:
        return t
    return Transaction(t.outcome, t.request, t.reply, t.error, now, t.slave, t.function)


def _orphan(buf: bytes) -> tuple[Transaction, int] | Literal["wait"] | None:
    """A reply or exception whose request we did not hear, if one is at the front of buf."""
    if len(buf) < 2:
        return "wait"
    slave, f = buf[0], buf[1]
    if f & 0x80 and (f & 0x7F) in _KNOWN_FUNCTIONS:
        if len(buf) < _EXCEPTION_LENGTH:
            return "wait"
        if rtu.crc16(buf[:3]) == int.from_bytes(buf[3:5], "little"):
            err = exception_for(f & 0x7F, buf[2])
            return Transaction("orphan", None, error=err, slave=slave, function=f & 0x7F), _EXCEPTION_LENGTH
        return None
    if f in _READS:
        if len(buf) < 3:
            return "wait"
        n = 5 + buf[2]
        if buf[2] % 2 or n > rtu.MAX_FRAME:
            return None
        if len(buf) < n:
            return "wait"
        if rtu.crc16(buf[: n - 2]) == int.from_bytes(buf[n - 2 : n], "little"):
            values = tuple(int.from_bytes(buf[i : i + 2], "big") for i in range(3, n - 2, 2))
            reply = rtu.Reply(slave, f, values=values)
            return Transaction("orphan", None, reply=reply, slave=slave, function=f), n
    return None


def iter_events(chunks: Iterator[bytes]) -> Iterator[Event]:
    """Every event of a recorded byte stream (no times): the pure form of a replay."""
    sniffer = Sniffer()
    for chunk in chunks:
        yield from sniffer.feed(chunk)
    yield from sniffer.finish()
