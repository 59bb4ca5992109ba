"""Virtual-port framing and checks: bytes from a TCP client in, a decision out, no I/O.

Both ports carry the same requests, parsed with the suite's RTU code (aurora.rtu): the raw RTU
port as ser2net's raw mode carries them (uid, PDU, CRC), the Modbus/TCP port inside an MBAP header
(transaction id, protocol 0, length, unit id, PDU). A request becomes an RTU ``Request`` and is
checked here before anything reaches the line: the answer is either a bus job to run or an
exception code to send at once, or nothing (what a real board does with a frame it cannot read).

Exception codes a client sees without the board being asked (README "Virtual ports"):
1 illegal function: a function the bridge does not forward (68, unknown codes), a write on a
read-only port, a write to a register the map does not mark writable; 2 illegal data address:
a read past register 65535; 3 illegal data value: a count of 0 or over 100 registers, a value
outside the register's range, an MBAP request whose PDU does not fit its function's layout;
11 (Modbus/TCP only) gateway target failed to respond: the line is down, or the board did not
answer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from aurora import registers, rtu
from aurora.errors import FrameError

BOARD_SLAVE = 1  # the address the bridge's bus talks to (aurora.transport.SerialBus.slave)
MBAP_UNITS = (BOARD_SLAVE, 255)  # 255: "the device behind this gateway", as Modbus/TCP tools send
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 1, 2, 3
GATEWAY_NO_RESPONSE = 11
MBAP_HEADER = 7
MBAP_MAX_LENGTH = 254  # unit id + a PDU of at most 253 bytes (the RTU frame's 256 less uid and CRC)
MAX_WRITE_MULTIPLE = 123
MAX_WRITE_LIST = 63

READS = (rtu.FunctionCode.READ_HOLDING, rtu.FunctionCode.READ_RANGES, rtu.FunctionCode.READ_REGISTERS)
WRITES = (rtu.FunctionCode.WRITE_SINGLE, rtu.FunctionCode.WRITE_MULTIPLE, rtu.FunctionCode.WRITE_REGISTERS)

# Standard request lengths of function codes the board does not have (RTU frame, CRC included), so
# that a tool probing with them (FC 4 for input registers, say) gets exception 1, as from a board.
_FIXED_OTHER = {1: 8, 2: 8, 4: 8, 5: 8, 7: 4, 8: 8, 11: 4, 12: 4, 17: 4}
_COUNTED_OTHER = {15: 6, 23: 10}  # byte count at this offset; frame = offset + 1 + count + 2
_VARIABLE = (rtu.FunctionCode.READ_RANGES, rtu.FunctionCode.READ_REGISTERS, rtu.FunctionCode.WRITE_REGISTERS)
_PLAUSIBLE = frozenset({c.value for c in rtu.FunctionCode} | set(_FIXED_OTHER) | set(_COUNTED_OTHER))


@dataclass(frozen=True, slots=True)
class RtuFrame:
    """What the front of a raw RTU buffer holds: a request, an unknown function, or garbage."""

    used: int  # bytes to drop from the buffer
    request: rtu.Request | None = None  # a request of a function the suite knows
    unknown: tuple[int, int] | None = None  # (slave, function) of a valid frame of another function


def take_rtu(buf: bytes | bytearray) -> RtuFrame | None:
    """The first frame at the front of ``buf``, or None when more bytes are needed.

    A front that cannot start a valid frame yields ``RtuFrame(used=1)``: the caller drops that
    byte and tries again, which is how a board's receiver finds the next frame on a noisy line.
    """
    if len(buf) < 2:
        return None
    function = buf[1]
    if function not in _PLAUSIBLE:
        return RtuFrame(used=_next_plausible(buf))
    if function in _FIXED_OTHER or function in _COUNTED_OTHER:
        return _take_other(buf, function)
    if function in _VARIABLE:
        return _take_variable(buf)
    try:
        found = rtu.split_request(bytes(buf[: rtu.MAX_FRAME]))
    except FrameError:
        return RtuFrame(used=1)
    if found is None:
        return None
    request, used = found
    return RtuFrame(used=used, request=request)


def _take_variable(buf: bytes | bytearray) -> RtuFrame | None:
    """FC 65/66/67 carry no length: the shortest prefix with a valid CRC and layout, as
    ``rtu.split_request`` finds it, but with one running CRC over the buffer instead of one CRC per
    candidate end: a client dribbling bytes after ``01 41`` costs O(n) a time, not O(n²). All of
    ``buf`` is taken first when it is one request (``rtu.whole_variable_request``)."""
    whole = rtu.whole_variable_request(buf)
    if whole is not None:
        return RtuFrame(used=len(buf), request=whole)
    crc = 0xFFFF
    limit = min(len(buf), rtu.MAX_FRAME)
    for i in range(limit - 1):
        # crc covers buf[:i]; a frame ending at i + 2 has an even length of at least 6.
        if i >= 4 and i % 2 == 0 and crc == buf[i] | (buf[i + 1] << 8):
            try:
                return RtuFrame(used=i + 2, request=rtu.decode_request(bytes(buf[: i + 2])))
            except FrameError:
                pass
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ buf[i]) & 0xFF]
    if len(buf) >= rtu.MAX_FRAME:
        return RtuFrame(used=1)  # no request within a frame's length: this start was garbage
    return None


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()  # CRC-16/MODBUS a byte at a time (the same polynomial as rtu.crc16)


def _next_plausible(buf: bytes | bytearray) -> int:
    """Bytes to skip before the next place a frame can start (a known function code in 2nd place):
    a flood of garbage is dropped in one step, not one byte and one parse at a time."""
    for i in range(2, len(buf)):
        if buf[i] in _PLAUSIBLE:
            return i - 1
    return len(buf) - 1


def _take_other(buf: bytes | bytearray, function: int) -> RtuFrame | None:
    if function in _FIXED_OTHER:
        length = _FIXED_OTHER[function]
    else:
        offset = _COUNTED_OTHER[function]
        if len(buf) <= offset:
            return None
        length = offset + 1 + buf[offset] + 2
    if len(buf) < length:
        return None
    frame = bytes(buf[:length])
    if rtu.crc16(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
        return RtuFrame(used=1)
    return RtuFrame(used=length, unknown=(frame[0], function))


@dataclass(frozen=True, slots=True)
class MbapFrame:
    """One Modbus/TCP request: header fields and the PDU as an RTU request (or why it is none)."""

    used: int
    transaction: int
    unit: int
    function: int
    request: rtu.Request | None  # None: the PDU does not fit its function (answered with ``code``)
    code: int | None = None


class MbapError(ValueError):
    """The MBAP header is not Modbus/TCP: the connection is closed, as Modbus/TCP servers do."""


def take_mbap(buf: bytes | bytearray) -> MbapFrame | None:
    """The first request at the front of ``buf``, or None when more bytes are needed.

    Raises MbapError for a header no Modbus/TCP client sends (protocol id not 0, bad length):
    after that the stream cannot be framed any more.
    """
    if len(buf) < MBAP_HEADER:
        return None
    transaction, protocol, length, unit = struct.unpack(">HHHB", bytes(buf[:MBAP_HEADER]))
    if protocol != 0:
        raise MbapError(f"protocol id {protocol}, not 0 (Modbus)")
    if not 2 <= length <= MBAP_MAX_LENGTH:
        raise MbapError(f"MBAP length {length} outside 2..{MBAP_MAX_LENGTH}")
    used = MBAP_HEADER - 1 + length
    if len(buf) < used:
        return None
    pdu = bytes(buf[MBAP_HEADER:used])
    function = pdu[0]
    body = bytes((unit,)) + pdu
    try:
        request = rtu.decode_request(body + rtu.crc16(body).to_bytes(2, "little"))
    except FrameError:
        known = function in {c.value for c in rtu.FunctionCode}
        return MbapFrame(
            used, transaction, unit, function, None, ILLEGAL_VALUE if known else ILLEGAL_FUNCTION
        )
    return MbapFrame(used, transaction, unit, function, request)


def mbap_reply(frame: MbapFrame, rtu_reply: bytes) -> bytes:
    """The RTU reply's PDU under the client's transaction and unit id."""
    pdu = rtu_reply[1:-2]
    return struct.pack(">HHHB", frame.transaction, 0, len(pdu) + 1, frame.unit) + pdu


def mbap_exception(frame: MbapFrame, code: int) -> bytes:
    """An exception reply (function | 0x80, code) to an MBAP request."""
    return struct.pack(">HHHBBB", frame.transaction, 0, 3, frame.unit, (frame.function | 0x80) & 0xFF, code)


def rtu_exception(slave: int, function: int, code: int) -> bytes:
    """An RTU exception frame, CRC included."""
    return rtu.encode_exception(rtu.Request(slave, function), code)


def refusal(request: rtu.Request, *, read_only: bool, allow_raw_writes: bool) -> int | None:
    """The exception code a request gets without reaching the line, or None to forward it.

    Reads: 1..100 registers, no range of 0, none past 65535 (a board refuses the same with the
    same codes). Writes: the same rules as the JSON RPC's raw writes (registers.validate_raw_write):
    writable in the map and within range, unless ``allow_raw_writes``.
    """
    f = request.function
    if f in READS:
        if not 1 <= request.register_count <= rtu.MAX_READ_REGISTERS or any(n < 1 for _, n in request.ranges):
            return ILLEGAL_VALUE
        if any(start + n > 0x10000 for start, n in request.ranges):
            return ILLEGAL_ADDRESS
        return None
    if f not in WRITES:
        return ILLEGAL_FUNCTION  # 68 has no known meaning and the map says nothing of it
    if read_only:
        return ILLEGAL_FUNCTION
    limit = MAX_WRITE_LIST if f == rtu.FunctionCode.WRITE_REGISTERS else MAX_WRITE_MULTIPLE
    if not 1 <= len(request.writes) <= limit or any(a > 0xFFFF for a, _ in request.writes):
        return ILLEGAL_VALUE
    if allow_raw_writes:
        return None
    for address, raw in request.writes:
        rule = registers.writable(address)
        if rule is None:
            return ILLEGAL_FUNCTION
        if rule.problem(raw) is not None:
            return ILLEGAL_VALUE
    return None
