"""ModBus RTU frames with the WaterFurnace function codes 65-68: bytes in, values out, no I/O.

docs/protocol.md#frames, docs/protocol.md#function-codes. Requests and replies are small frozen values; the
same functions serve the client (encode request, decode reply), the simulator (decode request, encode reply)
and the monitor.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from enum import IntEnum
from typing import Final

from .errors import FrameError, Incomplete, exception_for
from .records import FrozenRecord

BYTE_TIME_S = 11 / 19200  # 1 start + 8 data + 1 parity + 1 stop bit at 19200 baud: 0.573 ms
MAX_FRAME = 256
DEFAULT_LATENCY_S = 0.5  # what the board and the network may add to the wire time of a reply
MAX_READ_REGISTERS = 100  # docs/protocol.md#fc65: the ABC's own limit per read (FC 3, 65, 66)


class FunctionCode(IntEnum):
    READ_HOLDING = 3
    WRITE_SINGLE = 6
    WRITE_MULTIPLE = 16
    READ_RANGES = 65  # 'A': list of (start, count)
    READ_REGISTERS = 66  # 'B': list of addresses
    WRITE_REGISTERS = 67  # 'C': list of (address, value)
    UNKNOWN_68 = 68  # 'D': 4 bytes in, 1 byte out, meaning unknown


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _frame(slave: int, function: int, data: bytes) -> bytes:
    body = bytes((slave, function)) + data
    return body + crc16(body).to_bytes(2, "little")


def _words(values: Sequence[int]) -> bytes:
    for v in values:
        if not 0 <= v <= 0xFFFF:
            raise ValueError(f"register value {v} is not a 16-bit word")
    return struct.pack(f">{len(values)}H", *values)


# ---------------------------------------------------------------- requests


class Request(FrozenRecord):
    """One request PDU, decoded. ``ranges`` is the (start, count) list every read reduces to."""

    _fields = ("slave", "function", "ranges", "writes", "raw")
    __slots__ = _fields
    slave: Final[int]
    function: Final[int]
    ranges: Final[tuple[tuple[int, int], ...]]  # reads: FC3 one pair, FC65 pairs, FC66 (addr, 1) each
    writes: Final[tuple[tuple[int, int], ...]]  # writes: (address, value) in request order
    raw: Final[bytes]  # the PDU data, for FC68 and unknown codes

    def __init__(
        self,
        slave: int,
        function: int,
        ranges: tuple[tuple[int, int], ...] = (),
        writes: tuple[tuple[int, int], ...] = (),
        raw: bytes = b"",
    ) -> None:
        self.slave, self.function, self.ranges, self.writes, self.raw = slave, function, ranges, writes, raw

    @property
    def addresses(self) -> list[int]:
        """Every register read, flattened in request order (duplicates kept)."""
        return [a for start, n in self.ranges for a in range(start, start + n)]

    @property
    def register_count(self) -> int:
        return sum(n for _, n in self.ranges)

    def encode(self) -> bytes:
        """The request frame, CRC included."""
        f = self.function
        if f == FunctionCode.READ_HOLDING:
            ((start, count),) = self.ranges
            return _frame(self.slave, f, struct.pack(">HH", start, count))
        if f == FunctionCode.READ_RANGES:
            return _frame(self.slave, f, b"".join(struct.pack(">HH", a, n) for a, n in self.ranges))
        if f == FunctionCode.READ_REGISTERS:
            return _frame(self.slave, f, b"".join(struct.pack(">H", a) for a, _ in self.ranges))
        if f == FunctionCode.WRITE_SINGLE:
            ((addr, value),) = self.writes
            return _frame(self.slave, f, struct.pack(">H", addr) + _words([value]))
        if f == FunctionCode.WRITE_MULTIPLE:
            start = self.writes[0][0]
            values = [v for _, v in self.writes]
            data = struct.pack(">HHB", start, len(values), 2 * len(values)) + _words(values)
            return _frame(self.slave, f, data)
        if f == FunctionCode.WRITE_REGISTERS:
            return _frame(self.slave, f, b"".join(struct.pack(">H", a) + _words([v]) for a, v in self.writes))
        return _frame(self.slave, f, self.raw)

    def expected_reply_length(self) -> int:
        """Bytes of a normal reply, CRC included (docs/protocol.md#timing, with 67/68 receivable)."""
        f = self.function
        if f in (FunctionCode.READ_HOLDING, FunctionCode.READ_RANGES, FunctionCode.READ_REGISTERS):
            return 5 + 2 * self.register_count
        if f in (FunctionCode.WRITE_SINGLE, FunctionCode.WRITE_MULTIPLE):
            return 8
        if f == FunctionCode.WRITE_REGISTERS:
            return 4
        if f == FunctionCode.UNKNOWN_68:
            return 5
        return 5


def read_holding(start: int, count: int, slave: int = 1) -> Request:
    """FC 3: one block of ``count`` registers."""
    _check_read(count)
    return Request(slave, FunctionCode.READ_HOLDING, ranges=((start, count),))


def read_ranges(ranges: Sequence[tuple[int, int]], slave: int = 1) -> Request:
    """FC 65: several (start, count) ranges in one request."""
    if not ranges:
        raise ValueError("FC 65 needs at least one range")
    _check_read(sum(n for _, n in ranges))
    return Request(slave, FunctionCode.READ_RANGES, ranges=tuple((a, n) for a, n in ranges))


def read_registers(addresses: Sequence[int], slave: int = 1) -> Request:
    """FC 66: a list of single addresses in one request."""
    if not addresses:
        raise ValueError("FC 66 needs at least one address")
    _check_read(len(addresses))
    return Request(slave, FunctionCode.READ_REGISTERS, ranges=tuple((a, 1) for a in addresses))


def write_single(address: int, value: int, slave: int = 1) -> Request:
    """FC 6: one register."""
    return Request(slave, FunctionCode.WRITE_SINGLE, writes=((address, value),))


def write_multiple(start: int, values: Sequence[int], slave: int = 1) -> Request:
    """FC 16: consecutive registers from ``start``."""
    if not 1 <= len(values) <= 123:
        raise ValueError("FC 16 writes 1 to 123 registers")
    return Request(
        slave, FunctionCode.WRITE_MULTIPLE, writes=tuple((start + i, v) for i, v in enumerate(values))
    )


def write_registers(pairs: Sequence[tuple[int, int]], slave: int = 1) -> Request:
    """FC 67: discontiguous (address, value) pairs."""
    if not 1 <= len(pairs) <= 63:
        raise ValueError("FC 67 writes 1 to 63 registers")
    return Request(slave, FunctionCode.WRITE_REGISTERS, writes=tuple(pairs))


def _check_read(count: int) -> None:
    if not 1 <= count <= MAX_READ_REGISTERS:
        raise ValueError(f"a read holds 1 to {MAX_READ_REGISTERS} registers, not {count}")


def decode_request(frame: bytes) -> Request:
    """Parse one complete request frame (CRC included), as a slave or a sniffer sees it.

    Raises FrameError for a bad CRC or a layout that does not fit the function
    (docs/protocol.md#function-codes).
    """
    _check_crc(frame)
    if len(frame) < 4:
        raise FrameError("frame too short")
    slave, f, data = frame[0], frame[1], frame[2:-2]
    if f == FunctionCode.READ_HOLDING and len(data) == 4:
        start, count = struct.unpack(">HH", data)
        return Request(slave, f, ranges=((start, count),))
    if f == FunctionCode.WRITE_SINGLE and len(data) == 4:
        addr, value = struct.unpack(">HH", data)
        return Request(slave, f, writes=((addr, value),))
    if f == FunctionCode.WRITE_MULTIPLE and len(data) >= 7:
        start, qty, nbytes = struct.unpack(">HHB", data[:5])
        if nbytes == 2 * qty == len(data) - 5 and qty:
            values = struct.unpack(f">{qty}H", data[5:])
            return Request(slave, f, writes=tuple((start + i, v) for i, v in enumerate(values)))
    if f == FunctionCode.READ_RANGES and data and len(data) % 4 == 0:
        pairs = struct.unpack(f">{len(data) // 2}H", data)
        return Request(slave, f, ranges=tuple(zip(pairs[::2], pairs[1::2], strict=True)))
    if f == FunctionCode.READ_REGISTERS and data and len(data) % 2 == 0:
        addrs = struct.unpack(f">{len(data) // 2}H", data)
        return Request(slave, f, ranges=tuple((a, 1) for a in addrs))
    if f == FunctionCode.WRITE_REGISTERS and data and len(data) % 4 == 0:
        words = struct.unpack(f">{len(data) // 2}H", data)
        return Request(slave, f, writes=tuple(zip(words[::2], words[1::2], strict=True)))
    if f == FunctionCode.UNKNOWN_68 and len(data) == 4:
        return Request(slave, f, raw=bytes(data))
    if f in {c.value for c in FunctionCode}:
        raise FrameError(f"function {f} request with {len(data)} data bytes does not fit its layout")
    return Request(slave, f, raw=bytes(data))


def request_length(buf: bytes) -> int | None:
    """Length of the request frame at the start of buf if its function fixes it, else None.

    FC 65/66/67 carry no count, so a slave finds their end by the CRC (see ``split_request``).
    """
    if len(buf) < 2:
        return None
    f = buf[1]
    if f in (FunctionCode.READ_HOLDING, FunctionCode.WRITE_SINGLE, FunctionCode.UNKNOWN_68):
        return 8
    if f == FunctionCode.WRITE_MULTIPLE:
        return 9 + buf[6] if len(buf) >= 7 else None
    return None


def split_request(buf: bytes) -> tuple[Request, int] | None:
    """Find the first complete, valid request at the front of buf -> (request, bytes used).

    Returns None when more bytes are needed. Raises FrameError when the front of buf cannot start
    a request (the caller drops a byte and tries again).
    """
    fixed = request_length(buf)
    if fixed is not None:
        if len(buf) < fixed:
            return None
        return decode_request(bytes(buf[:fixed])), fixed
    if len(buf) >= 2 and buf[1] == FunctionCode.WRITE_MULTIPLE:
        return None  # its length is known once the byte count (7th byte) has arrived
    if len(buf) >= 2 and buf[1] not in (
        FunctionCode.READ_RANGES,
        FunctionCode.READ_REGISTERS,
        FunctionCode.WRITE_REGISTERS,
    ):
        raise FrameError(f"function {buf[1]} is not a request this slave understands")
    whole = whole_variable_request(buf)
    if whole is not None:
        return whole, len(buf)
    # Variable-length requests: the shortest prefix with a valid CRC and a fitting layout.
    for end in range(6, min(len(buf), MAX_FRAME) + 1, 2):
        if crc16(bytes(buf[: end - 2])) == int.from_bytes(buf[end - 2 : end], "little"):
            try:
                return decode_request(bytes(buf[:end])), end
            except FrameError:
                continue
    if len(buf) >= MAX_FRAME:
        raise FrameError("no valid request within 256 bytes")
    return None


def whole_variable_request(buf: bytes | bytearray) -> Request | None:
    """All of ``buf`` as one FC 65/66/67 request, when it is one; else None.

    These carry no length, and a board ends a frame at the line's silence. The shortest prefix
    with a valid CRC is sometimes not the request: about 1 in 1,100 FC 66 reads of 50 addresses
    has one (tests/unit/test_rtu.py). A request that arrived whole (one read off a port, one TCP
    segment) is therefore taken whole before any prefix is; two requests back to back do not
    pass as one, as the second one's CRC does not cover the first."""
    if not 6 <= len(buf) <= MAX_FRAME or buf[1] not in _VARIABLE_LENGTH:
        return None
    if crc16(bytes(buf[:-2])) != int.from_bytes(buf[-2:], "little"):
        return None
    try:
        return decode_request(bytes(buf))
    except FrameError:
        return None


_VARIABLE_LENGTH = (FunctionCode.READ_RANGES, FunctionCode.READ_REGISTERS, FunctionCode.WRITE_REGISTERS)


# ---------------------------------------------------------------- replies


class Reply(FrozenRecord):
    """One normal reply: register values for reads, the echo for writes, a byte for FC 68."""

    _fields = ("slave", "function", "values", "echo", "raw")
    __slots__ = _fields
    slave: Final[int]
    function: Final[int]
    values: Final[tuple[int, ...]]
    echo: Final[tuple[int, int]]  # FC 6: (address, value); FC 16: (start, quantity)
    raw: Final[bytes]

    def __init__(
        self,
        slave: int,
        function: int,
        values: tuple[int, ...] = (),
        echo: tuple[int, int] = (0, 0),
        raw: bytes = b"",
    ) -> None:
        self.slave, self.function, self.values, self.echo, self.raw = slave, function, values, echo, raw


def encode_reply(request: Request, values: Sequence[int] = ()) -> bytes:
    """The normal reply frame a slave sends to ``request``; ``values`` for reads, in request order."""
    f, slave = request.function, request.slave
    if f in (FunctionCode.READ_HOLDING, FunctionCode.READ_RANGES, FunctionCode.READ_REGISTERS):
        if len(values) != request.register_count:
            raise ValueError("reply values do not match the request")
        return _frame(slave, f, bytes((2 * len(values),)) + _words(values))
    if f == FunctionCode.WRITE_SINGLE:
        ((addr, value),) = request.writes
        return _frame(slave, f, struct.pack(">HH", addr, value))
    if f == FunctionCode.WRITE_MULTIPLE:
        return _frame(slave, f, struct.pack(">HH", request.writes[0][0], len(request.writes)))
    if f == FunctionCode.WRITE_REGISTERS:
        return _frame(slave, f, b"")
    if f == FunctionCode.UNKNOWN_68:
        return _frame(slave, f, b"\x00")
    raise ValueError(f"no normal reply for function {f}")


def encode_exception(request: Request, code: int) -> bytes:
    """Exception reply: uid, function | 0x80, code."""
    return _frame(request.slave, request.function | 0x80, bytes((code,)))


def _check_crc(frame: bytes) -> None:
    if len(frame) < 4:
        raise FrameError(f"frame of {len(frame)} bytes is too short")
    if crc16(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
        raise FrameError(f"CRC mismatch in {frame.hex(' ')}")


def decode_reply(buf: bytes, request: Request) -> tuple[Reply, int]:
    """Parse the reply to ``request`` at the front of buf -> (reply, bytes used).

    Raises Incomplete when more bytes are needed, ExceptionReply for an exception frame, and
    FrameError for anything else that is not the expected reply (slave, function, count, CRC).
    """
    if len(buf) < 2:
        raise Incomplete("need slave and function")
    slave, f = buf[0], buf[1]
    if slave != request.slave:
        raise FrameError(f"reply from slave {slave}, expected {request.slave}")
    if f == request.function | 0x80:
        if len(buf) < 5:
            raise Incomplete("exception frame")
        _check_crc(bytes(buf[:5]))
        raise exception_for(request.function, buf[2])
    if f != request.function:
        raise FrameError(f"reply function {f}, expected {request.function}")
    n = request.expected_reply_length()
    if f in (FunctionCode.READ_HOLDING, FunctionCode.READ_RANGES, FunctionCode.READ_REGISTERS):
        if len(buf) < 3:
            raise Incomplete("byte count")
        if buf[2] != n - 5:
            raise FrameError(f"reply carries {buf[2]} bytes, expected {n - 5}")
    if len(buf) < n:
        raise Incomplete(f"{len(buf)} of {n} bytes")
    frame = bytes(buf[:n])
    _check_crc(frame)
    if f in (FunctionCode.READ_HOLDING, FunctionCode.READ_RANGES, FunctionCode.READ_REGISTERS):
        values = struct.unpack(f">{request.register_count}H", frame[3:-2])
        return Reply(slave, f, values=values), n
    if f in (FunctionCode.WRITE_SINGLE, FunctionCode.WRITE_MULTIPLE):
        a, b = struct.unpack(">HH", frame[2:6])
        expected = (
            request.writes[0]
            if f == FunctionCode.WRITE_SINGLE
            else (request.writes[0][0], len(request.writes))
        )
        if (a, b) != expected:
            raise FrameError(f"write echo {a},{b} does not match the request")
        return Reply(slave, f, echo=(a, b)), n
    return Reply(slave, f, raw=frame[2:-2]), n


def find_reply(buf: bytes, request: Request) -> tuple[Reply, int] | None:
    """The first valid reply to ``request`` anywhere in buf -> (reply, end offset), or None.

    Stray bytes before a reply are skipped. Raises ExceptionReply when an exception frame with a
    good CRC is found. None means: wait for more bytes (or give up at the deadline).
    """
    for start in range(len(buf) - 1):
        if buf[start] != request.slave or buf[start + 1] & 0x7F != request.function:
            continue
        try:
            reply, used = decode_reply(buf[start:], request)
        except Incomplete:
            continue
        except FrameError:
            continue
        return reply, start + used
    return None


def wire_time_s(n_bytes: int, byte_time_s: float = BYTE_TIME_S) -> float:
    """Time n bytes take on the line."""
    return n_bytes * byte_time_s
