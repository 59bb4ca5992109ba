"""Virtual ports in-process: frames, checks, and the server on loopback against a simulated board.

The bus is a real SerialBus on a scripted byte stream answered by the simulator's board
(SimulatedAbc), run by a real BusWorker, so every frame that reached "the line" is recorded:
a refused or garbled request must never be among them.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import structlog
import structlog.testing
import yaml
from aurora import registers, rtu
from aurora.bridge import vport
from aurora.bridge import vport_frames as vf
from aurora.bridge.cli import config_from_args, parse_args
from aurora.bridge.poller import read_words
from aurora.bridge.vport import VirtualPorts, VportConfig, parse_listen
from aurora.bridge.worker import BusWorker, Priority
from aurora.dump import DumpBus
from aurora.errors import BusError, FrameError
from aurora.sim.cli import demo_registers
from aurora.simulator import SimulatedAbc
from aurora.transport import SerialBus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import wait_for
from tests.support.frames import CRC_PREFIX
from tests.unit.fakeline import FakeLine

REGS = demo_registers()
HOST = "127.0.0.1"


class Board:
    """A simulated board behind a scripted line; ``frames`` is everything sent on the line."""

    def __init__(self) -> None:
        self.abc = SimulatedAbc(REGS)
        self.line = FakeLine(self._answer)

    def _answer(self, frame: bytes) -> list[bytes]:
        reply = self.abc.respond_to_frame(frame)
        return [reply] if reply else []

    @property
    def frames(self) -> list[bytes]:
        return list(self.line.written)


@pytest.fixture
def board() -> Board:
    return Board()


@contextlib.contextmanager
def serve(board: Board, **options: object) -> Iterator[VirtualPorts]:
    worker = BusWorker(lambda: SerialBus(board.line, "fake", latency_s=0.05))  # type: ignore[arg-type]
    worker.start()
    worker.submit(lambda bus: None).result(5)  # opened: the line is up
    config = VportConfig(rtu=(HOST, 0), modbus_tcp=(HOST, 0), **options)  # type: ignore[arg-type]
    ports = VirtualPorts(config, worker)
    ports.start()
    try:
        yield ports
    finally:
        ports.stop()
        worker.stop()


@pytest.fixture
def ports(board: Board) -> Iterator[VirtualPorts]:
    with serve(board) as p:
        yield p


def connect(ports: VirtualPorts, kind: str) -> socket.socket:
    return socket.create_connection(ports.addresses["rtu" if kind == "writer" else kind], timeout=5)


def ask(sock: socket.socket, frame: bytes, expect: int, deadline_s: float = 5.0) -> bytes:
    sock.sendall(frame)
    got = b""
    end = time.monotonic() + deadline_s
    sock.settimeout(0.05)
    while len(got) < expect and time.monotonic() < end:
        try:
            chunk = sock.recv(expect - len(got))
        except TimeoutError:
            continue
        if not chunk:
            break
        got += chunk
    return got


def silent(sock: socket.socket, frame: bytes, wait_s: float = 0.3) -> bool:
    """True when ``frame`` gets no reply within ``wait_s``."""
    return ask(sock, frame, 1, wait_s) == b""


def mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def allowed_on_line(frame: bytes) -> bool:
    """What may reach the line: reads, and writes the register map allows."""
    request = rtu.decode_request(frame)
    return vf.refusal(request, read_only=False, allow_raw_writes=False) is None


# ---------------------------------------------------------------- pure parts


def test_parse_listen() -> None:
    assert parse_listen("2000") == ("127.0.0.1", 2000)
    assert parse_listen("0.0.0.0:502") == ("0.0.0.0", 502)
    assert parse_listen("[::1]:2000") == ("::1", 2000)
    for bad in ("", "x", "70000", "host:", "0"):
        with pytest.raises(ValueError, match="PORT"):
            parse_listen(bad)


def test_take_rtu_frames() -> None:
    read = rtu.read_ranges([(745, 3)]).encode()
    assert vf.take_rtu(read[:5]) is None  # partial: wait for the rest
    taken = vf.take_rtu(read + b"\x01")
    assert taken is not None and taken.request == rtu.decode_request(read) and taken.used == len(read)
    bad_crc = read[:-1] + bytes([read[-1] ^ 1])
    fc3 = rtu.read_holding(745, 1).encode()
    assert vf.take_rtu(fc3[:-1] + bytes([fc3[-1] ^ 1])) == vf.RtuFrame(used=1)
    assert vf.take_rtu(b"\x01\x07\x00\x00") == vf.RtuFrame(used=1)  # FC 7 is 4 bytes: a bad CRC
    fc4 = b"\x01\x04\x02\xe9\x00\x01"
    fc4 += rtu.crc16(fc4).to_bytes(2, "little")
    assert vf.take_rtu(fc4) == vf.RtuFrame(used=8, unknown=(1, 4))
    assert vf.take_rtu(bad_crc) is None  # FC 65 is found by its CRC: more bytes may still come


def test_take_mbap() -> None:
    frame = vf.take_mbap(mbap(5, 1, struct.pack(">BHH", 3, 745, 2)))
    assert frame is not None and frame.transaction == 5 and frame.request == rtu.read_holding(745, 2)
    assert vf.take_mbap(mbap(5, 1, b"\x03\x02")[:8]) is None
    short = vf.take_mbap(mbap(6, 1, b"\x03\x02\xe9"))
    assert short is not None and short.request is None and short.code == vf.ILLEGAL_VALUE
    unknown = vf.take_mbap(mbap(6, 1, b"\x2b\x0e\x01\x00"))
    assert unknown is not None and unknown.request is not None  # refused as function 43 below
    assert vf.refusal(unknown.request, read_only=False, allow_raw_writes=True) == vf.ILLEGAL_FUNCTION
    with pytest.raises(vf.MbapError):
        vf.take_mbap(struct.pack(">HHHB", 1, 1, 6, 1) + b"\x03\x00\x00\x00\x01")
    with pytest.raises(vf.MbapError):
        vf.take_mbap(struct.pack(">HHHB", 1, 0, 300, 1))


def test_refusal_codes() -> None:
    def code(request: rtu.Request, **kw: bool) -> int | None:
        return vf.refusal(
            request, read_only=kw.get("read_only", False), allow_raw_writes=kw.get("raw", False)
        )

    assert code(rtu.read_holding(745, 100)) is None
    assert code(rtu.Request(1, 3, ranges=((745, 101),))) == 3
    assert code(rtu.Request(1, 3, ranges=((745, 0),))) == 3
    assert code(rtu.Request(1, 65, ranges=((745, 2), (1110, 0)))) == 3
    assert code(rtu.Request(1, 3, ranges=((65530, 10),))) == 2
    assert code(rtu.write_single(340, 5)) is None
    assert code(rtu.write_single(340, 5), read_only=True) == 1
    assert code(rtu.write_single(340, 13)) == 3
    assert code(rtu.write_single(745, 700)) == 1
    assert code(rtu.write_single(745, 700), raw=True) is None
    assert code(rtu.Request(1, 68, raw=b"\0\1\0\0"), raw=True) == 1
    assert code(rtu.Request(1, 4, raw=b"\0\1\0\1")) == 1
    assert registers.writable(340) is not None  # the map the expectations above rely on


# ---------------------------------------------------------------- the server


def test_rtu_reads_are_the_boards_frames(ports: VirtualPorts, board: Board) -> None:
    with connect(ports, "rtu") as sock:
        for request in (
            rtu.read_holding(745, 3),
            rtu.read_ranges([(745, 2), (88, 4)]),
            rtu.read_registers([2, 8]),
        ):
            expected = board.abc.respond(request)
            assert expected is not None
            assert ask(sock, request.encode(), len(expected)) == expected
        missing = rtu.read_holding(next(a for a in range(60000, 65536) if a not in REGS), 1)
        assert ask(sock, missing.encode(), 5) == rtu.encode_exception(missing, 2)


def test_garbage_partial_and_wrong_slave_get_no_reply(ports: VirtualPorts, board: Board) -> None:
    read = rtu.read_holding(745, 1)
    with connect(ports, "rtu") as sock:
        sent = len(board.frames)
        assert silent(sock, rtu.read_holding(745, 1, slave=7).encode())
        assert silent(sock, read.encode()[:-1] + b"\x00")  # bad CRC
        assert silent(sock, read.encode()[:5])  # partial: dropped after the gap
        # The partial frame is dropped after FRAME_GAP_S of silence, as on a real line.
        wait_for(lambda: ports.counters["garbage_bytes"] >= 5 + 8, 5, "the partial frame dropped")
        assert ask(sock, read.encode(), 7) == rtu.encode_reply(read, [REGS[745]])
        assert len(board.frames) == sent + 1


def test_modbus_tcp_transaction_ids_and_pipelining(ports: VirtualPorts) -> None:
    with connect(ports, "modbus_tcp") as sock:
        batch = b"".join(mbap(tid, 1, struct.pack(">BHH", 3, 745 + tid, 1)) for tid in range(3))
        replies = ask(sock, batch, 3 * 11)
        for tid in range(3):
            one = replies[tid * 11 : (tid + 1) * 11]
            assert one == struct.pack(">HHHBBBH", tid, 0, 5, 1, 3, 2, REGS[745 + tid])


def test_bad_mbap_header_closes_only_that_connection(ports: VirtualPorts) -> None:
    with connect(ports, "modbus_tcp") as bad, connect(ports, "modbus_tcp") as good:
        bad.sendall(struct.pack(">HHHB", 1, 9, 6, 1) + b"\x03\x02\xe9\x00\x01")
        bad.settimeout(5)
        assert bad.recv(10) == b""  # closed
        assert ask(good, mbap(1, 1, b"\x03\x02\xe9\x00\x01"), 11)[-2:] == REGS[745].to_bytes(2, "big")


def test_client_limit_and_idle_timeout(board: Board) -> None:
    with serve(board, max_clients=2, idle_timeout_s=1.0) as ports:
        a, b = connect(ports, "rtu"), connect(ports, "modbus_tcp")
        wait_for(lambda: ports.counters["clients"] == 2, 5, "two clients")
        third = connect(ports, "rtu")
        third.settimeout(5)
        assert third.recv(1) == b""
        assert ports.counters["refused_clients"] == 1
        for sock in (a, b):
            sock.settimeout(5)
            assert sock.recv(1) == b""  # idle for 1 s: closed
        wait_for(
            lambda: ports.counters["idle_closed"] == 2 and ports.counters["clients"] == 0, 5, "idle closes"
        )
        for sock in (a, b, third):
            sock.close()


def test_a_stalled_client_does_not_stall_others(ports: VirtualPorts) -> None:
    """One client holds a partial frame, another floods garbage without reading: a third is served."""
    with (
        connect(ports, "rtu") as stalled,
        connect(ports, "rtu") as flood,
        connect(ports, "modbus_tcp") as good,
    ):
        stalled.sendall(rtu.read_holding(745, 1).encode()[:4])
        flood.setblocking(False)
        try:
            for _ in range(200):
                flood.send(b"\xff" * 4096)
        except BlockingIOError:
            pass  # the bridge stopped reading it: TCP pushes back on the flooder alone
        for _ in range(5):
            assert ask(good, mbap(2, 1, b"\x03\x02\xe9\x00\x01"), 11)[-2:] == REGS[745].to_bytes(2, "big")


def test_writes_refused_on_a_read_only_port(board: Board) -> None:
    with serve(board, read_only=True) as ports:
        write = rtu.write_single(340, 5)
        with connect(ports, "rtu") as sock:
            assert ask(sock, write.encode(), 5) == rtu.encode_exception(write, 1)
        assert board.abc.writes == []
        assert ports.counters["refused_writes"] == 1


def test_allowed_writes_reach_the_board(ports: VirtualPorts, board: Board) -> None:
    with connect(ports, "rtu") as sock:
        single = rtu.write_single(340, 5)
        assert ask(sock, single.encode(), 8) == single.encode()
        block = rtu.write_multiple(340, [4, 6])
        assert ask(sock, block.encode(), 8) == rtu.encode_reply(block)
        listed = rtu.write_registers([(340, 7), (341, 3)])
        assert ask(sock, listed.encode(), 4) == rtu.encode_reply(listed)
    assert board.abc.writes == [(340, 5), (340, 4), (341, 6), (340, 7), (341, 3)]
    # Each as one transaction of the client's own function, byte for byte.
    assert [f for f in board.frames if f[1] in (6, 16, 67)] == [
        single.encode(),
        block.encode(),
        listed.encode(),
    ]


def test_requests_refused_while_the_line_is_down() -> None:
    def no_line() -> SerialBus:
        raise BusError("device missing")

    worker = BusWorker(no_line, max_backoff_s=0.05)
    worker.start()
    ports = VirtualPorts(VportConfig(rtu=(HOST, 0), modbus_tcp=(HOST, 0)), worker)
    ports.start()
    try:
        assert not worker.line_up
        with connect(ports, "modbus_tcp") as sock:
            reply = ask(sock, mbap(4, 1, struct.pack(">BHH", 6, 340, 5)), 9)
            assert reply == struct.pack(">HHHBBB", 4, 0, 3, 1, 0x86, 11)
        with connect(ports, "rtu") as sock:
            assert silent(sock, rtu.write_single(340, 5).encode())
        assert worker.pending() == 0  # nothing queued to run when the line comes back
        assert ports.counters["refused_writes"] == 2
    finally:
        ports.stop()
        worker.stop(0.5)


def test_a_write_queued_when_the_line_goes_down_is_never_made(board: Board) -> None:
    """Accepted while the line was up, still queued when it went down: refused at once, and not
    made when the line comes back (a stale raw write, issue 11)."""
    worker = BusWorker(lambda: SerialBus(board.line, "fake", latency_s=0.05))  # type: ignore[arg-type]
    worker.start()
    worker.submit(lambda bus: None).result(5)  # opened: the line is up
    ports = VirtualPorts(VportConfig(rtu=(HOST, 0), modbus_tcp=(HOST, 0)), worker)
    ports.start()
    holding, release = threading.Event(), threading.Event()

    def unplug(bus: object) -> None:  # the transaction in flight when the adapter goes
        holding.set()
        release.wait(10)
        raise BusError("the adapter was unplugged")

    try:
        busy = worker.submit(unplug, Priority.WRITE)
        assert holding.wait(5)
        with connect(ports, "modbus_tcp") as sock:
            sock.sendall(mbap(7, 1, struct.pack(">BHH", 6, 340, 5)))
            wait_for(lambda: worker.pending() == 1, 5, "the write queued behind the transaction")
            release.set()
            with pytest.raises(BusError):
                busy.result(5)
            assert ask(sock, b"", 9) == struct.pack(">HHHBBB", 7, 0, 3, 1, 0x86, 11)
        worker.mark_line_up()  # the line is back
        worker.submit(lambda bus: None).result(5)
        assert worker.pending() == 0
        assert board.abc.writes == []
        assert not [f for f in board.frames if f[1] == 6]
    finally:
        ports.stop()
        worker.stop(0.5)


# ---------------------------------------------------------------- fuzz


def _crc(body: bytes) -> bytes:
    return body + rtu.crc16(body).to_bytes(2, "little")


frames = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda s, f, d: _crc(bytes((s, f)) + d),
        st.sampled_from([0, 1, 2, 247]),
        st.integers(0, 255),
        st.binary(max_size=40),
    ),
    st.builds(
        lambda f, a, v: _crc(bytes((1, f)) + struct.pack(">HH", a, v)),
        st.sampled_from([3, 6, 65, 66, 67, 68]),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
    ),
)
mbap_frames = st.one_of(
    st.binary(max_size=300),
    st.builds(
        mbap,
        st.integers(0, 0xFFFF),
        st.sampled_from([0, 1, 255, 9]),
        st.binary(min_size=1, max_size=60),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rtu_bytes=st.lists(frames, max_size=4), tcp_bytes=st.lists(mbap_frames, max_size=4))
def test_fuzz_both_ports(
    fast_gap: None, ports: VirtualPorts, board: Board, rtu_bytes: list[bytes], tcp_bytes: list[bytes]
) -> None:
    """Whatever a client sends: only reads and allowed writes reach the line, and service goes on."""
    before = ports.counters["bytes_in"]
    with connect(ports, "rtu") as r, connect(ports, "modbus_tcp") as t:
        r.sendall(b"".join(rtu_bytes))
        t.sendall(b"".join(tcp_bytes))
        # Every byte taken in (a partial frame is dropped after the shortened gap) before the check:
        # writes go before reads on the worker, so any write they made is on the line by its reply.
        received = len(b"".join(rtu_bytes)) + len(b"".join(tcp_bytes))
        wait_for(
            lambda: ports.counters["bytes_in"] >= before + received and not any(c.buf for c in ports._conns),
            5,
            "the fuzz bytes taken in",
        )
        check = rtu.read_holding(745, 1)
        with connect(ports, "rtu") as sock:
            assert ask(sock, check.encode(), 7) == rtu.encode_reply(check, [REGS[745]])
    assert all(allowed_on_line(frame) for frame in board.frames)


@pytest.fixture
def fast_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Partial frames dropped after 20 ms, not 0.5 s, so that a fuzz example ends quickly."""
    monkeypatch.setattr(vport, "FRAME_GAP_S", 0.02)


@given(data=st.binary(min_size=0, max_size=300), cut=st.integers(0, 300))
def test_take_rtu_finds_what_split_request_finds(data: bytes, cut: int) -> None:
    """The running-CRC scan for FC 65/66/67 agrees with the suite's own rtu.split_request."""
    for buf in (data, bytes((1, 65)) + data, rtu.read_ranges([(745, 2), (88, 4)]).encode()[:cut] + data):
        if len(buf) < 2 or buf[1] not in (65, 66, 67):
            continue
        try:
            expected = rtu.split_request(buf[: rtu.MAX_FRAME])
        except FrameError:
            expected = "garbage"  # type: ignore[assignment]
        got = vf.take_rtu(buf)
        if expected is None:
            assert got is None
        elif expected == "garbage":
            assert got == vf.RtuFrame(used=1)
        else:
            request, used = expected
            assert got == vf.RtuFrame(used=used, request=request)


@pytest.mark.timing  # a 1 s budget
def test_dribbled_variable_frame_costs_little() -> None:
    """Re-scanning a 255-byte FC 65 prefix that never gets a valid CRC stays cheap."""
    buf = bytearray(b"\x01\x41")
    t0 = time.perf_counter()
    for i in range(253):
        buf.append(i & 0xFF)
        vf.take_rtu(buf)
    assert time.perf_counter() - t0 < 1.0


# ---------------------------------------------------------------- command line, fairness, start-up

URL = "mqtt://bridge@broker/"


def test_vport_options_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not config_from_args(parse_args(["/dev/ttyUSB0", URL])).vports.enabled  # off by default
    monkeypatch.setenv("AURORA_BRIDGE_VPORT_MODBUS_TCP", "0.0.0.0:5020")
    monkeypatch.setenv("AURORA_BRIDGE_VPORT_READ_ONLY", "true")
    config = config_from_args(
        parse_args(["/dev/ttyUSB0", URL, "--vport-rtu", "2000", "--vport-max-clients", "4"])
    )
    assert config.vports == VportConfig(
        rtu=("127.0.0.1", 2000), modbus_tcp=("0.0.0.0", 5020), read_only=True, max_clients=4
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--vport-rtu", "99999"], "port of 1..65535"),
        (["--vport-modbus-tcp", "host:"], "port of 1..65535"),
        (["--vport-max-clients", "0"], "--vport-max-clients: 0: outside 1..1000"),
        (["--vport-max-clients", "many"], "'many' is not a number of clients"),
        (["--vport-idle-timeout", "1"], "1 s: outside 5..86400 s"),
    ],
)
def test_bad_vport_options_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["/dev/ttyUSB0", URL, *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


class SlowBus(DumpBus):
    """Every transaction takes SLOW_S and is recorded: (register count, monotonic start)."""

    def __init__(self) -> None:
        super().__init__(dict(REGS))
        self.calls: list[int] = []

    def _values(self, function: int, addresses: Sequence[int]) -> list[int]:
        self.calls.append(len(addresses))
        time.sleep(SLOW_S)
        return super()._values(function, addresses)

    def write_register(self, address: int, value: int) -> None:
        self.calls.append(0)  # a write
        time.sleep(SLOW_S)
        super().write_register(address, value)


SLOW_S = 0.03


@pytest.mark.timing  # gaps between polls, in time
def test_back_to_back_clients_take_turns_with_polling() -> None:
    """Two clients reading and three writing as fast as they can do not shut the poller out: its
    chunks alternate with their requests, and an idle client's request waits for about one
    transaction."""
    bus = SlowBus()
    worker = BusWorker(lambda: bus)
    worker.start()
    worker.submit(lambda b: None).result(5)
    ports = VirtualPorts(VportConfig(rtu=(HOST, 0), modbus_tcp=(HOST, 0)), worker)
    ports.start()
    stop = threading.Event()

    def hammer(kind: str) -> None:
        with connect(ports, kind) as sock:
            while not stop.is_set():
                if kind == "rtu":
                    ask(sock, rtu.read_holding(745, 1).encode(), 7)
                elif kind == "modbus_tcp":
                    ask(sock, mbap(1, 1, b"\x03\x02\xe9\x00\x01"), 11)
                else:
                    ask(sock, rtu.write_single(340, 5).encode(), 8)

    kinds = ("rtu", "modbus_tcp", "writer", "writer", "writer")
    threads = [threading.Thread(target=hammer, args=(k,)) for k in kinds]
    try:
        for thread in threads:
            thread.start()
        wait_for(lambda: len(bus.calls) > 10, 10, "the clients reading")
        polled = read_words(worker, sorted(REGS)[:600])  # six 100-register chunks
        assert len(polled.words) == 600
        # The poll's transactions: its chunks, in pieces while the clients wait (they read one
        # register each), so its 600 registers in all and never a client's read among them.
        chunk_at = [i for i, n in enumerate(bus.calls) if n >= 2]
        assert sum(bus.calls[i] for i in chunk_at) == 600
        # Between two poll transactions the five clients get one request each, not the whole time.
        assert max(b - a for a, b in itertools.pairwise(chunk_at)) <= 6
        assert 0 in bus.calls  # the writer did write
        with connect(ports, "rtu") as sock:  # a new, quiet client: one transaction in flight, then its own
            t0 = time.monotonic()
            assert ask(sock, rtu.read_holding(746, 1).encode(), 7) == rtu.encode_reply(
                rtu.read_holding(746, 1), [REGS[746]]
            )
            assert time.monotonic() - t0 < 5 * SLOW_S
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        ports.stop()
        worker.stop()


def test_a_port_in_use_is_an_error_at_start(board: Board) -> None:
    with serve(board) as first:
        taken = first.addresses["rtu"]
        worker = BusWorker(lambda: SerialBus(board.line, "fake"))  # type: ignore[arg-type]
        second = VirtualPorts(VportConfig(rtu=taken), worker)
        with pytest.raises(OSError):
            second.start()


def test_client_caused_log_lines_are_bounded(board: Board) -> None:
    """A client connecting and writing garbage in a loop: a bounded number of log lines."""
    with structlog.testing.capture_logs() as logged, serve(board) as ports:
        refused = rtu.write_single(745, 1)
        for _ in range(3 * vport.LOG_BURST):
            with connect(ports, "rtu") as sock:
                assert ask(sock, refused.encode(), 5) == rtu.encode_exception(refused, 1)
        wait_for(lambda: ports.counters["connections"] == 3 * vport.LOG_BURST, 5, "all connections")
    events = [entry["event"] for entry in logged]
    assert events.count("vport_write_refused") == vport.LOG_BURST
    assert events.count("vport_client") + events.count("vport_client_left") <= vport.LOG_BURST
    assert ports.counters["refused_writes"] == 3 * vport.LOG_BURST  # counted all the same


def test_identical_reads_share_one_transaction() -> None:
    """Two clients asking the same while the line is busy: one transaction answers both."""
    bus = SlowBus()
    worker = BusWorker(lambda: bus)
    worker.start()
    worker.submit(lambda b: None).result(5)
    ports = VirtualPorts(VportConfig(rtu=(HOST, 0), modbus_tcp=(HOST, 0)), worker)
    ports.start()
    release = threading.Event()
    try:
        busy = worker.submit(lambda b: release.wait(5))  # the line is busy with something long
        with connect(ports, "rtu") as a, connect(ports, "modbus_tcp") as b:
            a.sendall(rtu.read_holding(88, 4).encode())
            b.sendall(mbap(9, 1, b"\x03\x00\x58\x00\x04"))
            wait_for(lambda: ports.counters["requests"] == 2, 5, "both requests queued")
            release.set()
            busy.result(5)
            values = [REGS[a] for a in range(88, 92)]
            assert ask(a, b"", 13) == rtu.encode_reply(rtu.read_holding(88, 4), values)
            assert ask(b, b"", 17) == struct.pack(">HHHBBB4H", 9, 0, 11, 1, 3, 8, *values)
        assert bus.calls == [4]  # one read of four registers
        assert worker.coalesced >= 1
    finally:
        release.set()
        ports.stop()
        worker.stop()


def test_dribbling_bytes_does_not_keep_a_connection(board: Board) -> None:
    """Garbage a byte at a time, never a request: closed at the idle timeout all the same."""
    with serve(board, idle_timeout_s=1.0) as ports, connect(ports, "rtu") as sock:
        sock.settimeout(0.2)
        end = time.monotonic() + 10
        closed = False
        while not closed and time.monotonic() < end:
            try:
                sock.sendall(b"\x01")  # 01 01 01...: always the start of a frame, never one
                closed = sock.recv(1) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
        assert closed
        assert ports.counters["idle_closed"] == 1


def test_a_client_that_does_not_read_its_replies_is_dropped(
    board: Board, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests sent, replies never read: the bridge drops that client once its replies pile up,
    and serves another meanwhile."""
    monkeypatch.setattr(vport, "MAX_OUT", 4096)
    with serve(board) as ports, connect(ports, "modbus_tcp") as good:
        greedy = socket.socket()
        greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        greedy.connect(ports.addresses["modbus_tcp"])
        greedy.settimeout(0.5)
        request = mbap(1, 1, b"\x03\x00\x00\x00\x64")  # 100 registers: a 209-byte reply
        dropped = False
        end = time.monotonic() + 30
        while not dropped and time.monotonic() < end:
            try:
                greedy.sendall(request * 10)
            except TimeoutError:
                pass  # the bridge stopped reading: it is working through what it has
            except OSError:
                dropped = True
            dropped = dropped or ports.counters["clients"] == 1
        greedy.close()
        assert dropped
        assert ask(good, mbap(2, 1, b"\x03\x02\xe9\x00\x01"), 11)[-2:] == REGS[745].to_bytes(2, "big")


def test_the_commented_out_compose_lines_work_once_uncommented() -> None:
    """compose.yaml's bridge service: uncommenting the virtual-port lines gives options the bridge
    takes and ports published on 127.0.0.1 only, to the ports the bridge listens on."""
    text = (Path(__file__).resolve().parents[2] / "compose.yaml").read_text()
    lines = [
        line
        for line in text.splitlines()
        if "VPORT" in line or "# ports:" in line or '#   - "127.0.0.1' in line
    ]
    assert len(lines) == 5, lines  # two variables, `ports:` and two published ports, all commented out
    assert "VPORT" not in "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    uncommented = re.sub(r"^(\s*)# (AURORA_BRIDGE_VPORT_)", r"\1\2", text, flags=re.M)
    uncommented = re.sub(r"^    # ports:", "    ports:", uncommented, flags=re.M)
    uncommented = re.sub(r'^    #   - "127', '      - "127', uncommented, flags=re.M)
    bridge = yaml.safe_load(uncommented)["services"]["bridge"]
    listens = {
        parse_listen(bridge["environment"][f"AURORA_BRIDGE_VPORT_{n}"])[1] for n in ("RTU", "MODBUS_TCP")
    }
    published = [p.split(":") for p in bridge["ports"]]
    assert all(host == "127.0.0.1" for host, _, _ in published)
    assert {int(target) for _, _, target in published} == listens


def test_a_request_whose_prefix_has_a_valid_crc_is_taken_whole() -> None:
    """A virtual-port client's FC 66 read that has a valid CRC after its first 18 addresses is
    one request when it arrives whole; two requests back to back are still two."""
    frame = rtu.read_registers(CRC_PREFIX).encode()
    assert vf.RtuFrame(used=len(frame), request=rtu.decode_request(frame)) == vf.take_rtu(frame)
    first = rtu.read_registers([745, 746]).encode()
    assert len(first) == vf.take_rtu(first + rtu.read_holding(745, 1).encode()).used
