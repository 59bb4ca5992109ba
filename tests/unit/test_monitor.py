"""aurora_monitor on recorded bus bytes: the original's output (docs/protocol.md#sniffer) with its bugs fixed.

Recordings are built from frames the simulated ABC answers; the monitor replays them from a file or
stdin, the way a user replays a capture taken with ``--record``.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from aurora import rtu
from aurora.monitor.cli import main
from aurora.simulator import BoardQuirks, SimulatedAbc

REGS = {
    25: 0x8005,  # E5, locked out
    340: 3,  # blower only speed
    460: 0,
    461: 0,
    462: 0,
    745: 0x02A8,  # 68.0 °F
    746: 0x02DA,  # 73.0 °F
    747: 0x02C8,  # 71.2 °F
    1110: 0x01C7,  # 45.5 °F leaving water (a sensor: hidden by -q)
    1111: 0x01F6,  # 50.2 °F entering water (a sensor)
    1146: 0x0000,  # compressor watts, high word
    1147: 0x0834,  # 2100 W, low word
}
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} ")


def exchange(abc: SimulatedAbc, request: rtu.Request) -> bytes:
    frame = request.encode()
    reply = abc.respond_to_frame(frame)
    assert reply is not None
    return frame + reply


def monitor(tmp_path: Path, wire: bytes, *args: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Replay ``wire`` through ``aurora_monitor FILE ARGS``; its stdout with timestamps as <time>."""
    recording = tmp_path / "bus.bin"
    recording.write_bytes(wire)
    assert 0 == main([str(recording), *args])
    return [_STAMP.sub("<time> ", line) for line in capsys.readouterr().out.splitlines()]


@pytest.fixture
def abc() -> SimulatedAbc:
    return SimulatedAbc(REGS)


def test_reads_and_writes_print_by_name_under_the_originals_headers(
    tmp_path: Path, abc: SimulatedAbc, capsys: pytest.CaptureFixture[str]
) -> None:
    """The headers and `Name (N): value` lines a user of the original knows."""
    wire = b"".join(
        [
            exchange(abc, rtu.read_ranges([(745, 3), (1146, 2)])),
            exchange(abc, rtu.read_registers([340, 25])),
            exchange(abc, rtu.write_single(340, 2)),
        ]
    )
    assert [
        "<time> ===== read multiple register ranges from 1",
        "Heating Set Point (745): 68.0°F",
        "Cooling Set Point (746): 73.0°F",
        "Ambient Temperature (747): 71.2°F",
        "Compressor Watts (1146): 2100W",
        "<time> ===== read discontiguous registers from 1",
        "Blower Only Speed (340): 3",
        "Last Fault Number (25): E5 (locked out)",
        "<time> ===== write register to 1:",
        "Blower Only Speed (340): 2",
    ] == monitor(tmp_path, wire, capsys=capsys)


def test_quiet_prints_only_changes_without_sensors_or_the_awl_heartbeat(
    tmp_path: Path, abc: SimulatedAbc, capsys: pytest.CaptureFixture[str]
) -> None:
    """-q = --diff-only --ignore-awl-heartbeat --ignore-sensors: a poll loop prints what moved."""
    poll = rtu.read_ranges([(745, 3), (1110, 2)])
    first = exchange(abc, poll)
    heartbeat = exchange(abc, rtu.write_multiple(460, [102, 0, 5]))
    same = exchange(abc, poll)
    abc.set(1111, 0x01F7)  # a sensor moves: still quiet
    abc.set(745, 0x02B2)  # the user turns the heating set point up to 69.0 °F
    changed = exchange(abc, poll)
    assert [
        "<time> ===== read",
        "Heating Set Point (745): 68.0°F",
        "Cooling Set Point (746): 73.0°F",
        "Ambient Temperature (747): 71.2°F",
        "<time> ===== read",
        "Heating Set Point (745): 69.0°F",
    ] == monitor(tmp_path, first + heartbeat + same + changed, "-q", capsys=capsys)


def test_diff_only_shows_a_32_bit_value_whose_low_word_alone_changed(
    tmp_path: Path, abc: SimulatedAbc, capsys: pytest.CaptureFixture[str]
) -> None:
    """The original crashed when only one word of a 32-bit pair changed (docs/protocol.md#bugs-decoding)."""
    poll = rtu.read_ranges([(1146, 2)])
    first = exchange(abc, poll)
    abc.set(1147, 0x0898)  # 2200 W
    second = exchange(abc, poll)
    assert [
        "<time> ===== read",
        "Compressor Watts (1146): 2100W",
        "<time> ===== read",
        "Compressor Watts (1146): 2200W",
    ] == monitor(tmp_path, first + second, "--diff-only", capsys=capsys)


def test_refusals_and_lost_replies_say_what_was_asked(
    tmp_path: Path, abc: SimulatedAbc, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not '**** new func 193' (docs/protocol.md#bugs-server): the request, the board and the exception by
    name."""
    refusing = SimulatedAbc(REGS, quirks=BoardQuirks(refuse_wf_codes=True))
    wire = (
        exchange(refusing, rtu.read_ranges([(745, 3), (1110, 2)]))
        + rtu.read_holding(745, 1).encode()  # no reply
        + exchange(abc, rtu.read_holding(745, 1))
    )
    assert [
        "<time> ===== read multiple register ranges 745-747,1110-1111 refused by 1: "
        "illegal function (function 65, code 1)",
        "<time> ===== no reply from 1 to read registers 745",
        "<time> ===== read registers from 1",
        "Heating Set Point (745): 68.0°F",
    ] == monitor(tmp_path, wire, capsys=capsys)


def test_bytes_outside_frames_show_with_debug_modbus(
    tmp_path: Path, abc: SimulatedAbc, capsys: pytest.CaptureFixture[str]
) -> None:
    """Noise is skipped silently unless asked for, and never spoils the frame after it."""
    wire = b"\x00\xff" + exchange(abc, rtu.read_holding(745, 1))
    lines = monitor(tmp_path, wire, "--debug-modbus", capsys=capsys)
    assert ["<time> ***** skipped 2 bytes: 00 ff", "<time> ===== read registers from 1"] == lines[:2]


def test_json_lines_carry_raw_words_names_and_lines(
    tmp_path: Path, abc: SimulatedAbc, capsys: pytest.CaptureFixture[str]
) -> None:
    """One JSON object per transaction, for scripts (the original had only Ruby inspect text)."""
    wire = exchange(abc, rtu.read_holding(745, 2))
    (line,) = monitor(tmp_path, wire, "--json", capsys=capsys)
    record = json.loads(line)
    assert ("reply", 3, [[745, 2]]) == (record["outcome"], record["function"], record["ranges"])
    assert {"raw": 680, "name": "Heating Set Point", "line": "Heating Set Point (745): 68.0°F"} == record[
        "registers"
    ]["745"]


def test_stdin_is_a_recording_too(
    abc: SimulatedAbc, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`socat … - | aurora_monitor -`: the stream's end ends the monitor with status 0."""
    wire = exchange(abc, rtu.read_holding(746, 1))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(wire)))
    assert 0 == main(["-"])
    assert "Cooling Set Point (746): 73.0°F" in capsys.readouterr().out.splitlines()


def test_a_port_that_cannot_be_opened_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Like aurora_fetch: a device error is exit 1 and a message, not a traceback."""
    assert 1 == main(["/dev/ttyNOSUCH"])
    err = capsys.readouterr().err
    assert "aurora_monitor: " in err and "/dev/ttyNOSUCH" in err
    assert "Traceback" not in err


def test_a_missing_port_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2 for the user's mistake (the original printed its help and exited 1)."""
    with pytest.raises(SystemExit) as exited:
        main([])
    assert 2 == exited.value.code


@pytest.mark.parametrize(
    ("port", "message"),
    [("mqtts://fetch@broker/homie/aurora-1/$modbus", "listens to a line"), ("DUMP", "is a register dump")],
)
def test_ports_that_carry_no_bus_are_usage_errors(
    tmp_path: Path, port: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The other tools take a dump or MQTT; the monitor says why it cannot, instead of printing nothing."""
    if port == "DUMP":
        dump = tmp_path / "unit.yml"
        dump.write_text("---\n745: 680\n")
        port = str(dump)
    assert 2 == main([port])
    assert message in capsys.readouterr().err
