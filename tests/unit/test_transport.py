"""SerialBus on a scripted line: timeouts, retries, stale bytes, confirmed writes, FC 3 fallback."""

from __future__ import annotations

import pytest
from aurora import rtu
from aurora.errors import BusError, BusTimeout, IllegalAddress, UsageError
from aurora.simulator import BoardQuirks, SimulatedAbc
from aurora.transport import SerialBus
from aurora.transport.port_urls import for_pyserial, open_error
from aurora.urls import redact

from .fakeline import FakeLine

REGS = {745: 680, 746: 730, 747: 730, 1110: 455, 1111: 502, 340: 3}


def sim_script(
    abc: SimulatedAbc, chunk: int = 1000, lose: set[int] | None = None, garble: set[int] | None = None
):
    """Answer like the sim; lose or garble the n-th reply (1-based)."""
    count = 0

    def script(frame: bytes) -> list[bytes]:
        nonlocal count
        count += 1
        reply = abc.respond_to_frame(frame)
        if reply is None or count in (lose or set()):
            return []
        if count in (garble or set()):
            reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
        return [reply[i : i + chunk] for i in range(0, len(reply), chunk)]

    return script


def bus_on(script, **kw) -> tuple[SerialBus, FakeLine]:
    line = FakeLine(script)
    return SerialBus(line, "fake", latency_s=0.03, **kw), line  # type: ignore[arg-type]


def test_a_reply_split_across_reads_is_reassembled() -> None:
    """docs/protocol.md#fc65 worked example delivered three bytes at a time."""
    bus, _ = bus_on(sim_script(SimulatedAbc(REGS), chunk=3))
    assert bus.read_ranges([(745, 2), (1110, 2)]) == [680, 730, 455, 502]


def test_stale_bytes_are_flushed_before_each_request() -> None:
    """A late reply from an earlier request is never taken for this one (docs/protocol.md#bugs-transport)."""
    stale = rtu.encode_reply(rtu.read_ranges([(745, 1)]), [999])
    line = FakeLine(sim_script(SimulatedAbc(REGS)), stale=stale)
    bus = SerialBus(line, "fake", latency_s=0.03)  # type: ignore[arg-type]
    assert bus.read_ranges([(745, 1)]) == [680]
    assert line.flushes == 1


def test_a_lost_reply_is_retried_and_counted() -> None:
    """A timeout costs one attempt (wire time + allowance), not the original's 15 s."""
    bus, line = bus_on(sim_script(SimulatedAbc(REGS), lose={1}))
    assert bus.read_ranges([(745, 3)]) == [680, 730, 730]
    assert (len(line.written), bus.stats.retries, bus.stats.timeouts) == (2, 1, 1)


def test_a_garbled_reply_is_retried() -> None:
    """A CRC error is detected at once and retried."""
    bus, line = bus_on(sim_script(SimulatedAbc(REGS), garble={1}))
    assert bus.read_ranges([(1110, 2)]) == [455, 502]
    assert (len(line.written), bus.stats.frame_errors) == (2, 1)


def test_a_silent_line_gives_up_after_the_attempts() -> None:
    """Three attempts, then BusTimeout; the caller decides what comes next."""
    bus, line = bus_on(lambda frame: [])
    with pytest.raises(BusTimeout):
        bus.read_holding(745, 1)
    assert len(line.written) == 3


def test_an_exception_reply_is_never_retried() -> None:
    """Illegal data address is an answer, not a failure of the line."""
    bus, line = bus_on(sim_script(SimulatedAbc(REGS)))
    with pytest.raises(IllegalAddress):
        bus.read_ranges([(9000, 1)])
    assert len(line.written) == 1


def test_a_write_whose_reply_is_lost_is_confirmed_by_reading_back() -> None:
    """Never repeat a write blindly: the register is read back, and it holds the new value."""
    abc = SimulatedAbc(REGS)
    bus, line = bus_on(sim_script(abc, lose={1}))
    bus.write_register(340, 5)
    assert [f[1] for f in line.written] == [rtu.FunctionCode.WRITE_SINGLE, rtu.FunctionCode.READ_HOLDING]
    assert abc.writes == [(340, 5)]


def test_a_write_list_is_one_fc67_and_a_lost_reply_is_confirmed_with_fc66() -> None:
    """FC 67 (the virtual ports forward it): one transaction; its lost reply is settled by reading
    the listed registers back, not by writing again."""
    abc = SimulatedAbc(REGS)
    bus, line = bus_on(sim_script(abc, lose={1}))
    bus.write_list([(340, 4), (745, 700)])
    assert [f[1] for f in line.written] == [rtu.FunctionCode.WRITE_REGISTERS, rtu.FunctionCode.READ_REGISTERS]
    assert abc.writes == [(340, 4), (745, 700)]


def test_a_write_that_did_not_arrive_is_sent_again_after_the_read_back_says_so() -> None:
    """The request itself was lost: the read-back shows the old value, so the write is repeated."""
    abc = SimulatedAbc(REGS)
    calls = {"n": 0}
    inner = sim_script(abc)

    def script(frame: bytes) -> list[bytes]:
        calls["n"] += 1
        return [] if calls["n"] == 1 else inner(frame)  # the first request never reaches the board

    bus, line = bus_on(script)
    bus.write_register(340, 7)
    assert abc.writes == [(340, 7)]
    assert [f[1] for f in line.written] == [6, 3, 6]


def test_a_board_that_refuses_65_and_66_is_read_with_function_3() -> None:
    """Commercial 17X553 boards answer IllegalFunction to 65/66 (the original's issue 124)."""
    abc = SimulatedAbc(REGS, quirks=BoardQuirks(refuse_wf_codes=True))
    bus, line = bus_on(sim_script(abc))
    assert bus.read_ranges([(745, 2), (1110, 2)]) == [680, 730, 455, 502]
    assert bus.wf_codes is False
    sent_before = len(line.written)
    assert bus.read_registers([340]) == [3]
    assert [f[1] for f in line.written[sent_before:]] == [3]  # straight to FC 3, no new probe


def test_a_board_silent_on_65_and_66_is_read_with_function_3() -> None:
    """Boards that ignore the WaterFurnace codes (the original's issue 123) still give every value."""
    abc = SimulatedAbc(REGS, quirks=BoardQuirks(silent_wf_codes=True))
    bus, _ = bus_on(sim_script(abc))
    assert bus.read_ranges([(745, 3)]) == [680, 730, 730]
    assert bus.wf_codes is False
    assert bus.read_registers([340, 745]) == [3, 680]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("tcp://pi.local:2000/", "tcp://pi.local:2000/"),
        ("rfc2217://pi.local:2217/", "rfc2217://pi.local:2217?ign_set_control"),
        ("telnet://pi.local/", "rfc2217://pi.local:23?ign_set_control"),
    ],
)
def test_network_urls_map_to_pyserial_urls(url: str, expected: str) -> None:
    """The user's document's URL forms, with RFC 2217 defaulting to port 23."""
    assert expected == for_pyserial(url)[0]


def test_a_tcp_url_without_a_port_is_a_usage_error() -> None:
    """The original crashed on tcp:// with no port (docs/protocol.md#bugs-transport)."""
    with pytest.raises(UsageError):
        for_pyserial("tcp://pi.local/")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Could not open port socket://h:2000: [Errno 111] Connection refused",
            "Connection refused - tcp://h:2000/",
        ),
        ("Could not open port socket://h:2000: timed out", "Timeout connecting to tcp://h:2000/"),
    ],
)
def test_connection_failures_read_as_the_users_document_words_them(message: str, expected: str) -> None:
    """network-serial-connections.md, Troubleshooting."""
    assert expected == str(open_error("tcp://h:2000/", BusError(message)))


def test_passwords_are_redacted_from_urls() -> None:
    """Secrets never appear in logs or messages."""
    assert redact("mqtts://web:s3cret@broker:8883/x") == "mqtts://web:***@broker:8883/x"


@pytest.mark.parametrize("url", ["tcp://pi.local:99999/", "rfc2217://pi.local:70000/", "tcp://pi.local:x/"])
def test_a_port_number_out_of_range_is_a_usage_error(url: str) -> None:
    """A typo in the URL is the user's mistake, not a traceback."""
    with pytest.raises(UsageError):
        for_pyserial(url)
