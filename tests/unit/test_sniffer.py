"""The passive classifier behind aurora_monitor, on recorded conversations fed in every chunking.

The conversations are built from frames the simulated ABC answers, plus the spec's CRC-verified
examples (docs/protocol.md#exceptions, docs/protocol.md#function-codes), so every reply is byte-exact what a
board sends.
"""

from __future__ import annotations

import pytest
from aurora import rtu
from aurora.errors import IllegalAddress, IllegalFunction
from aurora.simulator import BoardQuirks, SimulatedAbc
from aurora.sniffer import Garbage, Sniffer, Transaction, iter_events

REGS = {
    745: 0x02A8,  # 68.0 °F heating set point
    746: 0x02DA,  # 73.0 °F cooling set point
    747: 0x02DA,  # 73.0 °F ambient
    1110: 0x01C7,  # 45.5 °F leaving water
    1111: 0x01F6,  # 50.2 °F entering water
    340: 3,  # blower only speed
    460: 0,
    461: 0,
    462: 0,
}


def exchange(abc: SimulatedAbc, request: rtu.Request) -> bytes:
    """Request bytes followed by the board's reply bytes, as both appear on the bus."""
    frame = request.encode()
    reply = abc.respond_to_frame(frame)
    assert reply is not None
    return frame + reply


def transactions(events: list[Transaction | Garbage]) -> list[Transaction]:
    return [e for e in events if isinstance(e, Transaction)]


def feed_in_chunks(data: bytes, size: int) -> list[Transaction | Garbage]:
    sniffer = Sniffer()
    events: list[Transaction | Garbage] = []
    for i in range(0, len(data), size):
        events += sniffer.feed(data[i : i + size])
    return events + sniffer.finish()


@pytest.fixture
def abc() -> SimulatedAbc:
    return SimulatedAbc(REGS)


@pytest.fixture
def conversation(abc: SimulatedAbc) -> bytes:
    """An AID tool's session: FC 65, 66, 3 reads, an FC 6 write, the AWL heartbeat, FC 67 and 68."""
    return b"".join(
        [
            exchange(abc, rtu.read_ranges([(745, 3), (1110, 2)])),
            exchange(abc, rtu.read_registers([340, 745])),
            exchange(abc, rtu.read_holding(745, 3)),
            exchange(abc, rtu.write_single(340, 2)),
            exchange(abc, rtu.write_multiple(460, [102, 0, 5])),
            exchange(abc, rtu.write_registers([(745, 690), (746, 740)])),
            exchange(abc, rtu.Request(1, rtu.FunctionCode.UNKNOWN_68, raw=bytes.fromhex("00010000"))),
        ]
    )


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 10_000])
def test_a_recorded_conversation_pairs_every_request_with_its_reply_in_any_chunking(
    conversation: bytes, size: int
) -> None:
    """A serial port hands bytes over in arbitrary pieces; the pairs must not depend on where it cuts."""
    events = feed_in_chunks(conversation, size)
    assert not [e for e in events if isinstance(e, Garbage)]
    got = [(t.outcome, t.function, t.words) for t in transactions(events)]
    assert [
        ("reply", 65, [(745, 680), (746, 730), (747, 730), (1110, 455), (1111, 502)]),
        ("reply", 66, [(340, 3), (745, 680)]),
        ("reply", 3, [(745, 680), (746, 730), (747, 730)]),
        ("reply", 6, [(340, 2)]),
        ("reply", 16, [(460, 102), (461, 0), (462, 5)]),
        ("reply", 67, [(745, 690), (746, 740)]),
        ("reply", 68, []),
    ] == got


def test_the_awl_heartbeat_is_recognised(conversation: bytes) -> None:
    """--ignore-awl-heartbeat hides FC 16 {460: 102, 461: 0, 462: 5} (docs/protocol.md#sniffer)."""
    heartbeats = [
        t.function for t in transactions(list(iter_events(iter([conversation])))) if t.is_awl_heartbeat
    ]
    assert [16] == heartbeats


def test_the_spec_fc16_example_decodes_as_a_confirmed_heartbeat() -> None:
    """docs/protocol.md#function-codes: the AWL heartbeat request and its reply, bytes as captured."""
    wire = bytes.fromhex("01 10 01 CC 00 03 06 00 66 00 00 00 05 EF 74") + bytes.fromhex(
        "01 10 01 CC 00 03 41 CB"
    )
    (t,) = transactions(feed_in_chunks(wire, 4))
    assert ("reply", True) == (t.outcome, t.is_awl_heartbeat)


def test_an_exception_reply_is_paired_with_its_request(abc: SimulatedAbc) -> None:
    """The original printed '**** new func 193' (docs/protocol.md#bugs-server); here a refused FC 65 names
    what was refused."""
    refusing = SimulatedAbc(REGS, quirks=BoardQuirks(refuse_wf_codes=True))
    wire = exchange(refusing, rtu.read_ranges([(745, 3)])) + exchange(abc, rtu.read_holding(748, 1))
    first, second = transactions(feed_in_chunks(wire, 3))
    assert ("exception", 65, [(745, 3)]) == (first.outcome, first.function, list(first.request.ranges))
    assert isinstance(first.error, IllegalFunction)
    assert ("exception", 3) == (second.outcome, second.function)
    assert isinstance(second.error, IllegalAddress)


def test_a_lost_reply_does_not_turn_the_next_request_into_a_response(abc: SimulatedAbc) -> None:
    """The original took the next request with the same uid and function for the reply
    (docs/protocol.md#bugs-server)."""
    first = rtu.read_ranges([(745, 3)]).encode()  # its reply never came
    wire = first + exchange(abc, rtu.read_ranges([(745, 3)])) + exchange(abc, rtu.read_holding(340, 1))
    got = [(t.outcome, t.function, t.words) for t in transactions(feed_in_chunks(wire, 1))]
    assert [
        ("unanswered", 65, []),
        ("reply", 65, [(745, 680), (746, 730), (747, 730)]),
        ("reply", 3, [(340, 3)]),
    ] == got


def test_a_lost_fc3_reply_leaves_the_next_fc3_request_a_request(abc: SimulatedAbc) -> None:
    """Same uid, same function, fixed length: still recognised, because a reply must carry the count."""
    wire = rtu.read_holding(745, 3).encode() + exchange(abc, rtu.read_holding(746, 1))
    got = [(t.outcome, t.words) for t in transactions(feed_in_chunks(wire, 2))]
    assert [("unanswered", []), ("reply", [(746, 730)])] == got


def test_stray_bytes_between_frames_are_reported_and_skipped(abc: SimulatedAbc) -> None:
    """Line noise between frames (a bus with a bad termination) costs nothing but a garbage note."""
    noise = bytes.fromhex("00 ff 7e")
    wire = noise + exchange(abc, rtu.read_holding(745, 1)) + noise + exchange(abc, rtu.read_holding(746, 1))
    events = feed_in_chunks(wire, 5)
    assert [noise, noise] == [e.data for e in events if isinstance(e, Garbage)]
    assert [[(745, 680)], [(746, 730)]] == [t.words for t in transactions(events)]


def test_a_corrupted_reply_is_garbage_and_its_request_unanswered(abc: SimulatedAbc) -> None:
    """A reply with a flipped bit is never decoded into values; the next exchange still pairs."""
    good = exchange(abc, rtu.read_holding(745, 1))
    bad = bytearray(exchange(abc, rtu.read_holding(746, 1)))
    bad[-3] ^= 0x10  # a data bit of the reply
    events = feed_in_chunks(bytes(bad) + good, 1)
    got = [(t.outcome, t.words) for t in transactions(events)]
    assert [("unanswered", []), ("reply", [(745, 680)])] == got
    assert any(isinstance(e, Garbage) for e in events)


def test_a_monitor_started_mid_conversation_reports_the_orphan_reply(abc: SimulatedAbc) -> None:
    """The first bytes heard may be a reply whose request went by before we listened."""
    whole = exchange(abc, rtu.read_holding(745, 3))
    tail = whole[8:]  # the reply only
    (orphan, paired) = transactions(feed_in_chunks(tail + whole, 4))
    assert ("orphan", None, (680, 730, 730)) == (orphan.outcome, orphan.request, orphan.reply.values)
    assert "reply" == paired.outcome


def test_an_orphan_exception_is_decoded_from_the_spec_example() -> None:
    """docs/protocol.md#exceptions: 01 C1 02 F0 51 is FC 65, illegal data address."""
    (t,) = transactions(feed_in_chunks(bytes.fromhex("01 C1 02 F0 51"), 1))
    assert ("orphan", 65) == (t.outcome, t.function)
    assert isinstance(t.error, IllegalAddress)


def test_a_request_without_reply_expires_after_the_reply_timeout(abc: SimulatedAbc) -> None:
    """With arrival times, silence settles a request: the monitor says so while the line is quiet."""
    sniffer = Sniffer(reply_timeout_s=0.5)
    assert [] == sniffer.feed(rtu.read_holding(745, 1).encode(), now=10.0)
    assert [] == sniffer.idle(10.4)
    (expired,) = sniffer.idle(10.6)
    assert ("unanswered", 10.6) == (expired.outcome, expired.at)
    assert [] == sniffer.finish(11.0)


def test_the_end_of_a_recording_settles_a_pending_request_and_leftover_bytes(abc: SimulatedAbc) -> None:
    """At EOF the monitor stops cleanly (the original spun at 100 % CPU, docs/protocol.md#bugs-server)."""
    wire = exchange(abc, rtu.read_holding(745, 1)) + rtu.read_holding(746, 1).encode() + b"\x01\x03"
    events = feed_in_chunks(wire, 3)
    assert ["reply", "unanswered"] == [t.outcome for t in transactions(events)]
    assert [b"\x01\x03"] == [e.data for e in events if isinstance(e, Garbage)]


def test_the_counters_add_up(conversation: bytes) -> None:
    """Requests, replies, exceptions and losses are counted for the monitor's summary."""
    sniffer = Sniffer()
    sniffer.feed(conversation + rtu.read_holding(745, 1).encode())
    sniffer.finish()
    assert {"requests": 8, "replies": 7, "exceptions": 0, "unanswered": 1, "orphans": 0} == sniffer.stats
