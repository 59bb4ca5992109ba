"""SerialBus on a misbehaving line, and ser2net's in-band text, with scripted bytes (no sockets).

The field faults of peers.md B2.1: replies lost, garbled, cut short, or preceded by noise. The bus
must never return a wrong value, should not wait out its whole allowance for a reply it already
knows is broken, and must tell ser2net's refusals apart from data (docs/protocol.md#ser2net).
"""

from __future__ import annotations

import time

import pytest
from aurora.errors import BusTimeout
from aurora.simulator import SimulatedAbc
from aurora.transport import PortBusy, SerialBus, preload_retries
from aurora.transport.ser2net import raise_for_ser2net_text
from aurora.transport.serial_bus import _read_size

from .fakeline import FakeLine

REGS = {745: 0x02A8, 746: 0x02DA, 747: 0x02C8}  # 68.0, 73.0, 71.2 °F
LATENCY_S = 0.25


def scripted(*faults: str) -> tuple[SerialBus, FakeLine]:
    """A bus whose n-th reply suffers faults[n] ('lost', 'garbled', 'cut', 'noise', 'ok')."""
    abc = SimulatedAbc(REGS)
    plan = list(faults)

    def script(frame: bytes) -> list[bytes]:
        reply = abc.respond_to_frame(frame)
        assert reply is not None
        fault = plan.pop(0) if plan else "ok"
        if fault == "lost":
            return []
        if fault == "garbled":
            return [reply[:3] + bytes([reply[3] ^ 0x04]) + reply[4:]]
        if fault == "cut":
            return [reply[: len(reply) // 2]]
        if fault == "noise":
            return [b"\x00\xfe", reply]
        return [reply]

    line = FakeLine(script)
    return SerialBus(line, "fake", latency_s=LATENCY_S), line  # type: ignore[arg-type]


def test_a_garbled_reply_is_retried_as_soon_as_the_line_falls_quiet() -> None:
    """A flipped bit fails the CRC; the retry starts ~0.1 s later, not after the allowance."""
    preload_retries()  # as the bridge does: the first retry of a fresh process pays no import
    bus, _ = scripted("garbled")
    started = time.monotonic()
    assert [680, 730, 712] == bus.read_holding(745, 3)
    assert time.monotonic() - started < LATENCY_S
    assert (1, 1, 0) == (bus.stats.frame_errors, bus.stats.retries, bus.stats.timeouts)


def test_noise_before_a_reply_is_skipped_without_a_retry() -> None:
    """Stray bytes between frames (a bus without termination) cost nothing."""
    bus, line = scripted("noise")
    assert [680] == bus.read_holding(745, 1)
    assert (1, 0) == (len(line.written), bus.stats.retries)


def test_garbled_and_cut_replies_earn_extra_attempts_beyond_three() -> None:
    """A board that answers, badly, gets five tries; only silent tries count against the three."""
    bus, line = scripted("garbled", "cut", "lost", "garbled")
    assert [730] == bus.read_holding(746, 1)
    assert 5 == len(line.written)
    assert (3, 1) == (bus.stats.frame_errors, bus.stats.timeouts)


def test_three_silent_attempts_give_up() -> None:
    """A board that says nothing is not asked forever: three allowances, then BusTimeout."""
    bus, line = scripted("lost", "lost", "lost", "ok")
    with pytest.raises(BusTimeout):
        bus.read_holding(745, 1)
    assert 3 == len(line.written)


def test_an_exception_reply_is_read_without_waiting_for_a_normal_replys_length() -> None:
    """Ask the port for 5 bytes first: a refusal (5 bytes) must not sit a read slice in the buffer."""
    assert 5 == _read_size(0, 205, 0)
    assert 200 == _read_size(5, 205, 0)
    assert 4 == _read_size(0, 4, 0)  # FC 67: its whole 4-byte reply
    assert 64 == _read_size(10, 11, 64)  # whatever already waits


def test_ser2net_refusals_in_band_become_clear_errors() -> None:
    """The bytes ser2net 4.3.11 sent on the RFC 2217 port while the raw one held the device."""
    telnet = b"\xff\xfb\x03\xff\xfd\x03\xff\xfb\x01\xff\xfe\x01\xff\xfd\x00\xff\xfb\x00\xff\xfd,"
    with pytest.raises(PortBusy) as busy:
        raise_for_ser2net_text("rfc2217://pi:2217/", telnet + b"Port's device already in use\r\n")
    assert str(busy.value).startswith(
        "Serial port busy - rfc2217://pi:2217/: ser2net answered 'Port's device already in use'"
    )
    with pytest.raises(Exception, match="'Device open failure: Value or file not found'"):
        raise_for_ser2net_text("tcp://pi:2000/", b"Device open failure: Value or file not found\r\n")
    raise_for_ser2net_text("tcp://pi:2000/", bytes.fromhex("01 03 02 02 a8 b8 fa"))  # data: no error


class SlowBoard:
    """A port whose board answers each request after a set delay: replies can arrive late."""

    def __init__(self, abc: SimulatedAbc, delays_s: list[float]) -> None:
        self.abc = abc
        self.delays_s = delays_s
        self.timeout = 0.01
        self._due: list[tuple[float, bytes]] = []  # (arrival time, reply)
        self._buf = bytearray()

    def _arrive(self) -> None:
        now = time.monotonic()
        self._buf += b"".join(r for t, r in self._due if t <= now)
        self._due = [(t, r) for t, r in self._due if t > now]

    @property
    def in_waiting(self) -> int:
        self._arrive()
        return len(self._buf)

    def reset_input_buffer(self) -> None:
        self._arrive()
        self._buf.clear()

    def write(self, frame: bytes) -> int:
        reply = self.abc.respond_to_frame(frame)
        assert reply is not None
        self._due.append((time.monotonic() + self.delays_s.pop(0), reply))
        return len(frame)

    def read(self, n: int) -> bytes:
        end = time.monotonic() + self.timeout
        while len(self._buf) < n and time.monotonic() < end:
            time.sleep(0.001)
            self._arrive()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def close(self) -> None:
        pass


def test_a_late_reply_is_never_taken_for_the_next_requests_reply() -> None:
    """docs/protocol.md#bugs-transport: 745's reply arrives after its timeout, while 746 is being asked.

    Both are single-register FC 3 reads, so the frames look alike: without waiting for the line
    to fall quiet, 746 would be given 745's value (68.0 °F instead of 73.0 °F).
    """
    port = SlowBoard(SimulatedAbc(REGS), delays_s=[0.2, 0.08])
    bus = SerialBus(port, "slow", latency_s=0.15, attempts=1)  # type: ignore[arg-type]
    with pytest.raises(BusTimeout):
        bus.read_holding(745, 1)
    assert [730] == bus.read_holding(746, 1)
    assert 7 == bus.stats.extra["late_bytes"]  # 745's whole reply, dropped
