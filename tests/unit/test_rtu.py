"""RTU frames against the worked examples of docs/protocol.md#frames and docs/protocol.md#function-codes, and
a fuzz of the parsers."""

from __future__ import annotations

import contextlib

import pytest
from aurora import rtu
from aurora.errors import ExceptionReply, FrameError, IllegalAddress, IllegalFunction, Incomplete
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.frames import CRC_PREFIX


@pytest.mark.parametrize(
    ("frame", "crc"),
    [("01 03 00 00 00 01", "84 0A"), ("01 03 00 00 00 0A", "C5 CD"), ("11 03 00 6B 00 03", "76 87")],
)
def test_crc_matches_the_modbus_check_values(frame: str, crc: str) -> None:
    """docs/protocol.md#frames check values: CRC-16/MODBUS, low byte first."""
    assert bytes.fromhex(crc) == rtu.crc16(bytes.fromhex(frame)).to_bytes(2, "little")


@pytest.mark.parametrize(
    ("request_", "wire"),
    [
        (rtu.read_ranges([(745, 2), (1110, 2)]), "01 41 02 E9 00 02 04 56 00 02 FD A7"),
        (rtu.read_ranges([(2, 1), (8, 1), (88, 4)]), "01 41 00 02 00 01 00 08 00 01 00 58 00 04 65 B9"),
        (rtu.read_ranges([(745, 3)]), "01 41 02 E9 00 03 AD 88"),
        (rtu.read_registers([2, 8, 25]), "01 42 00 02 00 08 00 19 DA 0B"),
        (rtu.read_registers([813]), "01 42 03 2D 61 21"),
        (rtu.write_registers([(340, 3), (12619, 680)]), "01 43 01 54 00 03 31 4B 02 A8 EA CC"),
        (rtu.read_holding(745, 3), "01 03 02 E9 00 03 D5 87"),
        (rtu.write_single(340, 3), "01 06 01 54 00 03 89 E7"),
        (rtu.write_multiple(460, [102, 0, 5]), "01 10 01 CC 00 03 06 00 66 00 00 00 05 EF 74"),
        (rtu.Request(1, 68, raw=bytes.fromhex("00010000")), "01 44 00 01 00 00 A0 05"),
    ],
)
def test_requests_encode_as_in_the_spec_and_decode_back(request_: rtu.Request, wire: str) -> None:
    """Every function code the suite sends or sniffs: docs/protocol.md#fc65, docs/protocol.md#function-codes
    worked examples, both directions."""
    frame = bytes.fromhex(wire)
    assert frame == request_.encode()
    assert request_ == rtu.decode_request(frame)
    assert (request_, len(frame)) == rtu.split_request(frame + b"\x01\x02")


@pytest.mark.parametrize(
    ("request_", "wire", "values"),
    [
        (
            rtu.read_ranges([(745, 2), (1110, 2)]),
            "01 41 08 02 A8 02 DA 01 C7 01 F6 F7 3C",
            (680, 730, 455, 502),
        ),
        (
            rtu.read_ranges([(2, 1), (8, 1), (88, 4)]),
            "01 41 0C 01 32 00 00 41 42 43 56 53 50 20 20 30 03",
            (306, 0, 16706, 17238, 21328, 8224),
        ),
        (rtu.read_registers([2, 8, 25]), "01 42 06 01 32 00 00 00 00 DC 9C", (306, 0, 0)),
        (rtu.read_registers([813]), "01 42 02 00 CE 2D EC", (206,)),
        (rtu.read_holding(745, 3), "01 03 06 02 A8 02 DA 02 DA E1 F7", (680, 730, 730)),
    ],
)
def test_read_replies_decode_to_values_in_request_order(
    request_: rtu.Request, wire: str, values: tuple[int, ...]
) -> None:
    """docs/protocol.md#function-codes worked replies; encode_reply (the sim's side) produces the same
    bytes."""
    frame = bytes.fromhex(wire)
    reply, used = rtu.decode_reply(frame, request_)
    assert (values, len(frame)) == (reply.values, used)
    assert frame == rtu.encode_reply(request_, values)


def test_write_replies_are_checked_against_the_request() -> None:
    """FC 6 echoes, FC 16 start+quantity, FC 67 an empty PDU (docs/protocol.md#fc67), FC 68 one byte."""
    assert rtu.decode_reply(bytes.fromhex("01 06 01 54 00 03 89 E7"), rtu.write_single(340, 3))[1] == 8
    assert (
        rtu.decode_reply(bytes.fromhex("01 10 01 CC 00 03 41 CB"), rtu.write_multiple(460, [102, 0, 5]))[1]
        == 8
    )
    assert (
        rtu.decode_reply(bytes.fromhex("01 43 41 D1"), rtu.write_registers([(340, 3), (12619, 680)]))[1] == 4
    )
    assert rtu.decode_reply(bytes.fromhex("01 44 00 13 00"), rtu.Request(1, 68, raw=b"\0\1\0\0"))[1] == 5
    with pytest.raises(FrameError):
        rtu.decode_reply(rtu.encode_reply(rtu.write_single(340, 4)), rtu.write_single(340, 3))


@pytest.mark.parametrize(
    ("request_", "wire", "error"),
    [
        (rtu.read_ranges([(745, 1)]), "01 C1 02 F0 51", IllegalAddress),
        (rtu.read_registers([745]), "01 C2 01 B0 A0", IllegalFunction),
        (rtu.write_registers([(1, 1)]), "01 C3 01 B1 30", IllegalFunction),
        (rtu.Request(1, 68, raw=b"\0\0\0\0"), "01 C4 01 B3 00", IllegalFunction),
        (rtu.read_holding(745, 1), "01 83 02 C0 F1", IllegalAddress),
    ],
)
def test_exception_replies_raise_typed_errors(
    request_: rtu.Request, wire: str, error: type[ExceptionReply]
) -> None:
    """docs/protocol.md#exceptions: func | 0x80 with a code becomes IllegalAddress, IllegalFunction, ..."""
    with pytest.raises(error) as caught:
        rtu.decode_reply(bytes.fromhex(wire), request_)
    assert request_.function == caught.value.function


def test_a_bad_crc_a_foreign_slave_and_a_short_frame_are_told_apart() -> None:
    """A corrupt reply is a FrameError (retry), a partial one is Incomplete (keep reading)."""
    good = bytes.fromhex("01 03 06 02 A8 02 DA 02 DA E1 F7")
    request = rtu.read_holding(745, 3)
    with pytest.raises(FrameError):
        rtu.decode_reply(good[:-1] + b"\x00", request)
    with pytest.raises(FrameError):
        rtu.decode_reply(b"\x02" + good[1:], request)
    with pytest.raises(Incomplete):
        rtu.decode_reply(good[:7], request)


def test_a_reply_behind_stray_bytes_is_found() -> None:
    """Stray bytes between frames (a noisy line) do not hide the reply behind them."""
    request = rtu.read_ranges([(745, 2), (1110, 2)])
    reply = bytes.fromhex("01 41 08 02 A8 02 DA 01 C7 01 F6 F7 3C")
    found = rtu.find_reply(b"\x00\x01\x41\xff" + reply, request)
    assert found is not None
    assert found[0].values == (680, 730, 455, 502)


def test_reads_of_more_than_100_registers_are_refused_before_sending() -> None:
    """docs/protocol.md#fc65: the ABC reads at most 100 registers; the original sent 101."""
    with pytest.raises(ValueError, match="100"):
        rtu.read_ranges([(0, 101)])
    assert rtu.read_ranges([(0, 50), (100, 50)]).register_count == 100


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_raises_anything_but_a_protocol_error(garbage: bytes) -> None:
    """Whatever arrives on the line, the parsers raise only FrameError/ExceptionReply, or wait."""
    request = rtu.read_ranges([(745, 3)])
    for parse in (
        lambda: rtu.decode_reply(garbage, request),
        lambda: rtu.find_reply(garbage, request),
        lambda: rtu.split_request(garbage),
        lambda: rtu.decode_request(garbage),
    ):
        with contextlib.suppress(FrameError, ExceptionReply):
            parse()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(1, 10)), min_size=1, max_size=10))
def test_every_fc65_request_survives_a_round_trip(ranges: list[tuple[int, int]]) -> None:
    """Encoding then decoding a request gives the same request back (the sim and monitor rely on it)."""
    request = rtu.read_ranges(ranges)
    assert request == rtu.decode_request(request.encode())


def test_a_write_multiple_request_arriving_in_pieces_is_waited_for() -> None:
    """A slave reading FC 16 byte by byte must wait for the byte count, not drop the request."""
    frame = rtu.write_multiple(460, [102, 0, 5]).encode()
    for cut in range(1, len(frame)):
        assert rtu.split_request(frame[:cut]) is None
    assert (rtu.write_multiple(460, [102, 0, 5]), len(frame)) == rtu.split_request(frame)


def test_a_request_that_arrived_whole_is_taken_whole_though_a_prefix_has_a_valid_crc() -> None:
    """FC 65/66/67 carry no length: a whole buffer that is one request wins over the shortest
    prefix with a valid CRC (that prefix was once answered, and the reply did not fit)."""
    request = rtu.read_registers(CRC_PREFIX)
    frame = request.encode()
    assert rtu.crc16(frame[:38]) == int.from_bytes(frame[38:40], "little")  # the prefix is there
    assert (request, len(frame)) == rtu.split_request(frame)
    assert rtu.whole_variable_request(frame) == request


def test_two_variable_requests_back_to_back_are_still_two() -> None:
    first, second = rtu.read_registers([745, 746]), rtu.read_ranges([(88, 4)])
    buf = first.encode() + second.encode()
    assert rtu.whole_variable_request(buf) is None
    assert (first, len(first.encode())) == rtu.split_request(buf)
