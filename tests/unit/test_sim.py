"""The simulated ABC answers like the board: limits, missing registers, writes, slaves, quirks."""

from __future__ import annotations

import threading

import pytest
from aurora import rtu
from aurora.errors import IllegalAddress, IllegalFunction, IllegalValue
from aurora.sim.line import LineFaults, Responder, Timing
from aurora.simulator import BoardQuirks, Drift, SimulatedAbc

from tests.support.frames import CRC_PREFIX

REGS = {a: a % 7 for a in range(0, 200)} | {
    745: 680,
    746: 730,
    12619: 0,
    12620: 0,
    21203: 0,
    31008: 0,
    31009: 0,
}


def ask(abc: SimulatedAbc, request: rtu.Request) -> rtu.Reply:
    frame = abc.respond(request)
    assert frame is not None
    return rtu.decode_reply(frame, request)[0]


def test_reads_of_every_kind_return_the_dump_values() -> None:
    """FC 3, 65 and 66 give the same words (docs/protocol.md#function-codes)."""
    abc = SimulatedAbc(REGS)
    assert ask(abc, rtu.read_holding(745, 2)).values == (680, 730)
    assert ask(abc, rtu.read_ranges([(745, 2), (10, 1)])).values == (680, 730, 3)
    assert ask(abc, rtu.read_registers([746, 745])).values == (730, 680)


def test_a_read_beyond_100_registers_or_a_missing_register_is_refused() -> None:
    """Like the board: illegal data value over 100 registers, illegal data address where nothing is."""
    abc = SimulatedAbc(REGS)
    request = rtu.Request(1, 65, ranges=((0, 101),))
    with pytest.raises(IllegalValue):
        ask(abc, request)
    with pytest.raises(IllegalAddress):
        ask(abc, rtu.read_registers([5000]))


def test_writes_persist_read_back_and_mirror_into_the_read_registers() -> None:
    """A thermostat set point written to 12619 reads back at 745, as the AID tool shows it."""
    abc = SimulatedAbc(REGS)
    ask(abc, rtu.write_single(12619, 700))
    ask(abc, rtu.write_multiple(10, [1, 2, 3]))
    ask(abc, rtu.write_registers([(20, 9), (12620, 760)]))
    assert tuple(abc.get(a) for a in (745, 746, 10, 11, 12, 20)) == (700, 760, 1, 2, 3, 9)
    assert abc.writes == [(12619, 700), (10, 1), (11, 2), (12, 3), (20, 9), (12620, 760)]


def test_a_zone_heating_set_point_is_split_across_the_zone_configuration_words() -> None:
    """docs/protocol.md#conversions: five bits in configuration 2, the sixth (carry) in configuration 1."""
    abc = SimulatedAbc(REGS)
    ask(abc, rtu.write_single(21203, 700))  # 70 °F: 70 - 36 = 34 = 0b100010
    c1, c2 = abc.get(31008) or 0, abc.get(31009) or 0
    assert (((c1 & 1) << 5) | ((c2 & 0xF800) >> 11)) + 36 == 70


def test_function_68_and_the_awl_slave_are_answered_and_other_slaves_are_not() -> None:
    """Slave 2 is the AWL's; FC 68 answers one byte; slave 5 stays silent."""
    abc = SimulatedAbc(REGS)
    assert ask(abc, rtu.Request(1, 68, raw=b"\0\1\0\0")).raw == b"\x00"
    assert ask(abc, rtu.read_holding(745, 1, slave=2)).values == (680,)
    assert abc.respond(rtu.read_holding(745, 1, slave=5)) is None


def test_boards_that_refuse_or_ignore_the_waterfurnace_codes() -> None:
    """Commercial boards: IllegalFunction for 65/66, or silence; FC 3 still works."""
    refusing = SimulatedAbc(REGS, quirks=BoardQuirks(refuse_wf_codes=True))
    with pytest.raises(IllegalFunction):
        ask(refusing, rtu.read_ranges([(745, 1)]))
    silent = SimulatedAbc(REGS, quirks=BoardQuirks(silent_wf_codes=True))
    assert silent.respond(rtu.read_registers([745])) is None
    assert ask(silent, rtu.read_holding(745, 1)).values == (680,)


def test_drift_moves_the_demo_values_but_keeps_them_plausible() -> None:
    """Temperatures follow slow waves: different at different times, within a few degrees."""
    abc = SimulatedAbc({1111: 480, 1110: 420, 1146: 0, 1147: 0})
    drift = Drift(abc)
    drift.step(0)
    first = abc.get(1111)
    drift.step(200)
    assert first != abc.get(1111)
    assert 400 < (abc.get(1111) or 0) < 560
    assert (abc.get(1147) or 0) > 0


def _serve(responder: Responder, incoming: list[bytes]) -> list[bytes]:
    sent: list[bytes] = []
    stop = threading.Event()

    def recv(timeout: float) -> bytes | None:
        if incoming:
            return incoming.pop(0)
        if not stop.is_set():
            stop.set()
            return b""
        return None

    responder.serve(recv, sent.append, stop)
    return sent


def test_the_line_discards_garbage_and_answers_the_request_behind_it() -> None:
    """Stray bytes before a request do not stop the board from answering it."""
    request = rtu.read_holding(745, 2)
    responder = Responder(SimulatedAbc(REGS), Timing(byte_time_s=0, turnaround_s=0))
    sent = _serve(responder, [b"\xff\x00", request.encode()])
    assert rtu.encode_reply(request, [680, 730]) == b"".join(sent)


def test_a_request_whose_prefix_has_a_valid_crc_is_answered_whole() -> None:
    """The bridge's merged reads once stalled the bench for 1.4 s: the sim answered a prefix of
    such a request, the reply did not fit, and the bridge retried the same request four times."""
    request = rtu.read_registers(CRC_PREFIX)
    frame = request.encode()
    assert rtu.crc16(frame[:38]) == int.from_bytes(frame[38:40], "little")  # the prefix is there
    words = {a: (a * 7) % 65536 for a in CRC_PREFIX}
    responder = Responder(SimulatedAbc(words), Timing(byte_time_s=0, turnaround_s=0))
    assert rtu.encode_reply(request, [words[a] for a in CRC_PREFIX]) == b"".join(_serve(responder, [frame]))


def test_line_faults_drop_and_corrupt_the_chosen_fraction_of_replies() -> None:
    """Seeded faults: with drop=1 nothing is sent; with corrupt=1 the CRC no longer matches."""
    request = rtu.read_holding(745, 2)
    dropped = Responder(SimulatedAbc(REGS), Timing(0, 0), LineFaults(drop=1.0, seed=1))
    assert _serve(dropped, [request.encode()]) == []
    corrupt = Responder(SimulatedAbc(REGS), Timing(0, 0), LineFaults(corrupt=1.0, seed=1))
    reply = b"".join(_serve(corrupt, [request.encode()]))
    assert len(reply) == 9
    assert rtu.encode_reply(request, [680, 730]) != reply
